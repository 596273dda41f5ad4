//! Shared helpers of the edge proxy tests: real upstream servers and the
//! proxy on loopback, a client, raw-socket helpers.
#![allow(dead_code)]

use bytes::Bytes;
use easydeploy_edge::{EdgeConfig, EdgeProxy};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub type UpBody = BoxBody<Bytes, Infallible>;

/// Starts an upstream named `name` on a fresh loopback port.
pub async fn upstream(name: &'static str) -> SocketAddr {
    upstream_counted(name).await.0
}

/// Same, also counting the connections it accepts.
pub async fn upstream_counted(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    serve_upstream_counting(listener, name, accepted.clone());
    (addr, accepted)
}

/// Serves the upstream routes on `listener`.
pub fn serve_upstream(listener: TcpListener, name: &'static str) {
    serve_upstream_counting(listener, name, Arc::new(AtomicUsize::new(0)));
}

/// Upstream routes: `/count` answers the request body's length, `/slow`
/// waits before answering, `/slow-body` sends headers then the body later,
/// `/chunks` sends a chunked body in three parts, `/download/N` streams N
/// bytes, `/hop` answers with hop-by-hop headers, `/missing` is a 404,
/// `/ws` is a WebSocket echo, `/close` answers then closes the connection
/// a moment later (while it sits idle in the proxy's pool), `/fail` is a
/// 500, `/sleep/N` answers after N ms; anything else
/// answers the name then the request headers as `name: value` lines.
fn serve_upstream_counting(listener: TcpListener, name: &'static str, accepted: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let closing = CancellationToken::new();
                let close = closing.clone();
                let service = service_fn(move |req| upstream_answer(name, req, close.clone()));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::select! {
                    _ = conn => {}
                    () = async { closing.cancelled().await; tokio::time::sleep(Duration::from_millis(50)).await } => {}
                }
            });
        }
    });
}

pub fn text(body: impl Into<Bytes>) -> Response<UpBody> {
    Response::new(Full::new(body.into()).boxed())
}

async fn upstream_answer(
    name: &'static str,
    req: Request<Incoming>,
    close: CancellationToken,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let res = match path.as_str() {
        "/count" => {
            let mut body = req.into_body();
            let mut count = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.expect("request body").into_data() {
                    count += data.len();
                }
            }
            text(count.to_string())
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            text(name)
        }
        "/slow-body" => {
            let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = tx.send_data(Bytes::from(name)).await;
            });
            Response::new(body.boxed())
        }
        "/chunks" => {
            let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                for part in ["one,", "two,", "three"] {
                    let _ = tx.send_data(Bytes::from(part)).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            Response::new(body.boxed())
        }
        "/hop" => {
            let mut res = text(name);
            let h = res.headers_mut();
            h.insert("connection", "x-drop-me".parse().unwrap());
            h.insert("x-drop-me", "1".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("proxy-connection", "keep-alive".parse().unwrap());
            h.insert("x-kept", "1".parse().unwrap());
            res
        }
        "/missing" => {
            let mut res = text("missing");
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
        "/ws" => websocket_echo(req),
        "/fail" => {
            let mut res = text("failed");
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res
        }
        p if p.starts_with("/sleep/") => {
            let ms: u64 = p["/sleep/".len()..].parse().unwrap();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(name)
        }
        "/close" => {
            close.cancel();
            text(name)
        }
        p if p.starts_with("/download/") => {
            let size: u64 = p["/download/".len()..].parse().unwrap();
            let mut res = Response::new(Repeat::new(size).boxed());
            res.headers_mut().insert("content-length", size.into());
            res
        }
        _ => {
            let mut out = format!("{name}\n");
            for (key, value) in req.headers() {
                out.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
            }
            text(out)
        }
    };
    Ok(res)
}

/// A body of `left` zero bytes in 64 KiB frames that share one buffer.
pub struct Repeat {
    left: u64,
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl Repeat {
    pub fn new(size: u64) -> Self {
        Self { left: size }
    }
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(ZEROS.len() as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&ZEROS[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    );
    base64(digest.as_ref())
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Answers a WebSocket handshake, then echoes each message frame back
/// (unmasked, as a server sends) until a close frame.
fn websocket_echo(mut req: Request<Incoming>) -> Response<UpBody> {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|k| k.to_str().ok())
    else {
        let mut res = text("not a websocket request");
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    };
    let accept = websocket_accept(key);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut io = TokioIo::new(upgraded);
        while let Ok((opcode, payload)) = read_frame(&mut io).await {
            if write_frame(&mut io, opcode, &payload, None).await.is_err() || opcode == 8 {
                return;
            }
        }
    });
    let mut res = Response::new(Full::default().boxed());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert("connection", "Upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    res
}

/// Reads one WebSocket frame (unmasking it); returns its opcode and payload.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(io: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await?;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(io.read_u16().await?),
        127 => io.read_u64().await?,
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((head[0] & 0x0f, payload))
}

/// Writes one final WebSocket frame, masked when `mask` is given (clients must mask).
pub async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    io: &mut W,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(bit | n as u8),
        n if n <= 0xffff => {
            frame.push(bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    io.write_all(&frame).await?;
    io.flush().await
}

pub struct Edge {
    pub proxy: Arc<EdgeProxy>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

pub async fn start_edge(config: EdgeConfig) -> Edge {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = EdgeProxy::try_new(config).expect("a valid configuration");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(proxy.clone().serve(listener, shutdown.clone()));
    Edge {
        proxy,
        addr,
        shutdown,
        task,
    }
}

pub async fn edge() -> Edge {
    start_edge(EdgeConfig::default()).await
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The first line of an upstream answer: the upstream's name.
    pub fn name(&self) -> &str {
        self.body.lines().next().unwrap_or_default()
    }

    /// The request headers the upstream echoed, by name.
    pub fn echoed(&self) -> HashMap<String, Vec<String>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for line in self.body.lines().skip(1) {
            let (key, value) = line.split_once(": ").unwrap();
            map.entry(key.to_owned()).or_default().push(value.to_owned());
        }
        map
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn request(edge: &Edge, method: Method, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", edge.addr))
        .header("host", host)
}

pub async fn send(req: Request<Full<Bytes>>) -> Answer {
    let res = client().request(req).await.expect("proxy answers");
    read(res).await
}

/// An HTTP/2 client over `io` (h2c on a TCP stream, or TLS with ALPN h2);
/// the connection runs on its own task.
pub async fn h2_sender<I>(io: I) -> hyper::client::conn::http2::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

pub async fn read(res: Response<Incoming>) -> Answer {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub async fn get(edge: &Edge, host: &str, path: &str) -> Answer {
    send(
        request(edge, Method::GET, host, path)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// Waits up to 3 s for `cond` to hold.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A loopback address nothing listens on.
pub async fn refused_addr() -> SocketAddr {
    // Below the ephemeral range: no connection to it can be a
    // self-connection, and no client socket takes the port meanwhile.
    SocketAddr::from(([127, 0, 0, 1], easydeploy_testkit::free_port()))
}

/// Sends `request` as is on a new connection to `addr` and reads the
/// response head (text) and what followed it.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_raw_head(&mut stream).await
}

/// Reads from a raw connection until a full response head has arrived;
/// returns the head (text) and what followed it.
pub async fn read_raw_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = got.split_off(end + 4);
            return (String::from_utf8(got).unwrap(), rest);
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}
