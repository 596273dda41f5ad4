//! The proxy's own HTTP/1.1 server for the common case: plain-text
//! requests without a body, kept alive. A connection holds no buffer while
//! it is idle; each request head is read into a small buffer and its
//! fields are passed on as bytes from there (no header map), and each
//! response head goes out with the first body bytes in one write. The header read timeout runs on
//! one timer per connection, re-armed at most once a second.
//!
//! Anything else — TLS, HTTP/2, a request body, `Expect`, `Upgrade`, `TE`,
//! HTTP/1.0, `CONNECT`, a malformed or very large head — hands the
//! connection over, with the bytes read so far, to the TLS acceptor or
//! hyper, which serve it from then on.

use crate::batch;
use crate::body::ProxyBody;
use crate::fields::{self, FieldSpans, Span};
use crate::headers::{put, ClientIp, RequestHead};
use crate::proxy::{Answer, EdgeProxy, Route};
use crate::timer;
use crate::tls;
use crate::upstream;
use bytes::{Buf, Bytes, BytesMut};
use http::header;
use http::{Method, StatusCode, Uri, Version};
use hyper::body::Body;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest request head served here (longer ones go to hyper).
const MAX_HEAD: usize = 16 * 1024;
/// Most header fields served here.
const MAX_HEADERS: usize = 64;
/// Read buffer of a request head.
const READ_SIZE: usize = 1024;
/// Body bytes copied behind the head into one write rather than written apart.
const COPY_MAX: usize = 16 * 1024;
/// A connection's CPU is checked after its first request and every this
/// many requests after.
const STEER_EVERY: u64 = 16;

/// What a connection speaks, once its first bytes have been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tls,
    Http2,
    Http1,
}

/// How [`serve`] left the connection.
#[derive(Debug)]
pub(crate) enum Served {
    /// Done: close it.
    Closed,
    /// To be served by another server, which first reads these bytes.
    Handoff(Protocol, Bytes),
    /// Between two requests, to be served by this other worker (the one
    /// of the CPU its packets arrive on).
    Moved(usize),
}

/// A request head read by this server: its bytes, with where its target
/// and fields lie in them.
#[derive(Debug)]
struct RawRequest {
    bytes: Bytes,
    method: Method,
    target: Span,
    fields: FieldSpans,
}

impl RawRequest {
    /// The head as routing and forwarding read it.
    fn head(&self) -> RequestHead<'_> {
        let at = |span: Span| span.of(&self.bytes);
        RequestHead {
            method: &self.method,
            version: Version::HTTP_11,
            // Checked to be ASCII (a valid origin-form target) when parsed.
            target: std::str::from_utf8(at(self.target)).unwrap_or("/"),
            authority: None,
            fields: self
                .fields
                .iter()
                .map(|&(name, value)| (at(name), at(value)))
                .collect(),
        }
    }
}

/// What parsing found at the start of the buffer.
#[allow(clippy::large_enum_variant)] // Never stored: matched at once.
enum Parsed {
    Request(RawRequest, bool),
    Partial,
    /// Not for this server; the bytes are left in the buffer.
    Other,
}

/// Serves `stream` until it closes, times out, the proxy shuts down, or a
/// request needs another server.
///
/// This future is most of what an idle keep-alive connection holds, so it
/// is kept small: a request's head and route, and the answer's head, live
/// in blocks that end before the next wait (a local borrowed across an
/// `.await` keeps its space in the future), the forwarding and the sending
/// are boxed futures, and the wait for the next head polls the socket, the
/// shutdown and the timer directly. Written as `async move` over its
/// arguments: an `async fn` would hold each twice (rust-lang/rust#62958).
#[allow(clippy::manual_async_fn)] // An `async fn` would hold its arguments twice.
pub(crate) fn serve<'a>(
    proxy: &'a EdgeProxy,
    stream: &'a mut TcpStream,
    client: &'a ClientIp,
    shutdown: &'a CancellationToken,
) -> impl Future<Output = Served> + Send + 'a {
    async move {
        let cancelled = shutdown.cancelled();
        let timer = tokio::time::sleep(proxy.config.header_read_timeout);
        tokio::pin!(cancelled, timer);
        let mut buf = BytesMut::new();
        let mut sniffed = false;
        let mut served = 0u64;
        loop {
            let deadline = Instant::now() + proxy.config.header_read_timeout;
            let (pending, head_request, close) = {
                let (req, close) = loop {
                    if !buf.is_empty() {
                        if !sniffed {
                            match sniff(&buf) {
                                Some(Protocol::Http1) => sniffed = true,
                                Some(other) => return Served::Handoff(other, buf.freeze()),
                                None => {}
                            }
                        }
                        if sniffed {
                            match parse(&mut buf) {
                                Parsed::Request(req, close) => break (req, close),
                                Parsed::Partial if buf.len() <= MAX_HEAD => {}
                                _ => return Served::Handoff(Protocol::Http1, buf.freeze()),
                            }
                        }
                    } else {
                        // Idle: hold no memory.
                        buf = BytesMut::new();
                    }
                    let idle = buf.is_empty();
                    let readable = poll_fn(|cx| {
                        if let Poll::Ready(ready) = stream.poll_read_ready(cx) {
                            return Poll::Ready(ready.is_ok());
                        }
                        if idle && cancelled.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(false);
                        }
                        timer::poll_expiry(timer.as_mut(), deadline, cx).map(|()| false)
                    });
                    if !readable.await {
                        return Served::Closed;
                    }
                    if buf.capacity() - buf.len() < READ_SIZE / 2 {
                        buf.reserve(READ_SIZE);
                    }
                    let room = buf.capacity() - buf.len();
                    match stream.try_read_buf(&mut buf) {
                        Ok(0) => return Served::Closed,
                        Ok(n) if n < room => upstream::drained(stream),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Served::Closed,
                    }
                };
                let pending = match proxy.route(&req.head(), None, None, *client, false) {
                    // Boxed: the connection's future then stays small.
                    Route::Forward(routed) => Pending::Forward(Box::pin(proxy.forward(routed))),
                    Route::Answered(res) => Pending::Answered(Box::new(res)),
                };
                (pending, req.method == Method::HEAD, close)
            };
            let answer = match pending {
                Pending::Forward(forwarding) => forwarding.await,
                Pending::Answered(res) => Answer::Built(*res),
            };
            let close = close || shutdown.is_cancelled();
            let sending = {
                let Outgoing { out, body, chunked } = response_head(answer, head_request, close);
                Box::pin(send(stream, out, body, chunked))
            };
            if sending.await.is_err() || close {
                return Served::Closed;
            }
            served += 1;
            if served % STEER_EVERY == 1 && buf.is_empty() {
                if let Some(worker) = proxy.steering.get().and_then(|s| s.elsewhere(stream)) {
                    return Served::Moved(worker);
                }
            }
        }
    }
}

/// A routed request on its way to an answer: being forwarded, or answered
/// by the proxy itself (boxed: rare, and kept small while forwarding).
enum Pending<F> {
    Forward(Pin<Box<F>>),
    Answered(Box<http::Response<ProxyBody>>),
}

/// What the first bytes of a connection say it speaks; `None` while they
/// are a partial HTTP/2 preface.
fn sniff(buf: &[u8]) -> Option<Protocol> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if buf[0] == tls::HANDSHAKE {
        return Some(Protocol::Tls);
    }
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Parses a request head at the start of `buf`, consuming it only when it
/// is one this server handles. The second value: the client asked to close.
fn parse(buf: &mut BytesMut) -> Parsed {
    let mut slots = fields::slots::<MAX_HEADERS>();
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let Ok(method) = Method::from_bytes(req.method.unwrap_or_default().as_bytes()) else {
        return Parsed::Other;
    };
    let path = req.path.unwrap_or_default();
    if req.version != Some(1) || method == Method::CONNECT || !path.starts_with('/') {
        return Parsed::Other;
    }
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") {
            if h.value.trim_ascii() != b"0" {
                return Parsed::Other;
            }
        } else if is("transfer-encoding") || is("expect") || is("upgrade") || is("te") {
            return Parsed::Other;
        } else if is("connection") {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Other;
                }
            }
        }
    }
    let target = fields::span_in(buf, path.as_bytes());
    let fields = fields::spans_of(buf, req.headers);
    let bytes = buf.split_to(len).freeze();
    // The target as `http` would take it (hyper gets those it would refuse).
    if Uri::from_maybe_shared(target.slice(&bytes)).is_err() {
        let mut all = BytesMut::with_capacity(bytes.len() + buf.len());
        all.extend_from_slice(&bytes);
        all.extend_from_slice(buf);
        *buf = all;
        return Parsed::Other;
    }
    Parsed::Request(
        RawRequest {
            bytes,
            method,
            target,
            fields,
        },
        close,
    )
}

/// A response to send: its head written, and its body unless it has none.
struct Outgoing {
    out: Vec<u8>,
    body: Option<ProxyBody>,
    chunked: bool,
}

/// Writes the response head (with `content-length` or chunked framing,
/// `date`, and `connection: close` when closing). A backend's fields go
/// out as it sent them.
fn response_head(answer: Answer, head_request: bool, close: bool) -> Outgoing {
    let mut out = Vec::with_capacity(512);
    let (status, has_length, has_date, body) = match answer {
        Answer::Upstream(head, body) => {
            status_line(&mut out, head.status);
            head.write_fields(&mut out);
            (
                head.status,
                head.has_length,
                head.has_date,
                ProxyBody::Upstream(body),
            )
        }
        Answer::Built(res) => {
            let (parts, body) = res.into_parts();
            status_line(&mut out, parts.status);
            for (name, value) in &parts.headers {
                put(&mut out, name.as_str().as_bytes(), value.as_bytes());
            }
            let has = |name| parts.headers.contains_key(name);
            (parts.status, has(header::CONTENT_LENGTH), has(header::DATE), body)
        }
    };
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut chunked = false;
    if !no_body && !has_length {
        match body.size_hint().exact() {
            Some(n) => {
                let _ = write!(out, "content-length: {n}\r\n");
            }
            None => {
                chunked = true;
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
        }
    }
    if !has_date {
        put(&mut out, b"date", &http_date());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Outgoing {
        out,
        body: (!no_body).then_some(body),
        chunked,
    }
}

/// Sends a response: `out` (its head), then `body` if there is one,
/// chunked if so asked. The body is used in place: moved out of the
/// argument, it would be held twice and the boxed future would outgrow
/// the allocator's small size classes.
async fn send(
    stream: &mut TcpStream,
    mut out: Vec<u8>,
    mut body: Option<ProxyBody>,
    chunked: bool,
) -> io::Result<()> {
    let Some(body) = body.as_mut() else {
        return batch::write_all(stream, &out.into()).await;
    };
    loop {
        // Take what the body has ready; before waiting for more, send what is written.
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(error)) => return Err(error),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        if chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if data.len() <= COPY_MAX {
            out.extend_from_slice(&data);
        } else {
            write_two(stream, &out, &data).await?;
            out.clear();
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= 4 * COPY_MAX {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    batch::write_all(stream, &out.into()).await
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes `a` then `b`, vectored.
async fn write_two(stream: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() {
        let n = stream.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    stream.write_all(b).await
}

/// The current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
/// formatted once a second per thread.
fn http_date() -> [u8; 29] {
    thread_local! {
        static CACHE: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let (at, text) = cache.get();
        if at == now {
            return text;
        }
        let text = format_date(now);
        cache.set((now, text));
        text
    })
}

fn format_date(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 29];
    let mut cursor = io::Cursor::new(&mut out[..]);
    let _ = write!(
        cursor,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    out
}

/// A stream whose first reads return bytes already read from it.
pub(crate) struct Rewind<S> {
    pre: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(inner: S, pre: Bytes) -> Self {
        Self { pre, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated;
    use crate::headers::{write_request_head, Forwarding, RequestBody};

    fn parsed(text: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        (parse(&mut buf), buf)
    }

    #[test]
    fn simple_requests_are_parsed_in_place() {
        let (p, rest) =
            parsed("GET /a?b=1 HTTP/1.1\r\nHost: x.localhost\r\nX-A: 1\r\nX-A: 2\r\n\r\nGET /next");
        let Parsed::Request(req, close) = p else {
            panic!("parsed")
        };
        assert!(!close);
        let head = req.head();
        assert_eq!((head.method, head.target), (&Method::GET, "/a?b=1"));
        assert_eq!(head.host(), Ok(Some("x.localhost")));
        let fields: Vec<_> = head.fields.iter().map(|&(n, v)| (n, v)).collect();
        assert_eq!(
            fields,
            [
                (&b"Host"[..], &b"x.localhost"[..]),
                (b"X-A", b"1"),
                (b"X-A", b"2")
            ],
            "as sent, in order"
        );
        assert_eq!(&rest[..], b"GET /next", "pipelined bytes stay");

        let (p, _) = parsed("POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: keep-alive, close\r\n\r\n");
        assert!(matches!(p, Parsed::Request(_, true)));
        assert!(matches!(parsed("GET / HTTP/1.1\r\nHost: a").0, Parsed::Partial));
    }

    #[test]
    fn every_field_up_to_the_limit_is_parsed_and_more_go_to_hyper() {
        let head = |fields: usize| {
            let mut text = String::from("GET / HTTP/1.1\r\n");
            for i in 0..fields {
                text.push_str(&format!("X-{i}: v{i}\r\n"));
            }
            text + "\r\n"
        };
        let (p, rest) = parsed(&head(MAX_HEADERS));
        let Parsed::Request(req, _) = p else {
            panic!("parsed")
        };
        let fields = req.head().fields;
        assert_eq!(fields.len(), MAX_HEADERS);
        assert_eq!(fields[0], (&b"X-0"[..], &b"v0"[..]));
        let last = MAX_HEADERS - 1;
        assert_eq!(
            fields[last],
            (format!("X-{last}").as_bytes(), format!("v{last}").as_bytes())
        );
        assert!(rest.is_empty());

        let text = head(MAX_HEADERS + 1);
        let (p, rest) = parsed(&text);
        assert!(matches!(p, Parsed::Other));
        assert_eq!(&rest[..], text.as_bytes(), "nothing consumed");
    }

    #[test]
    fn other_requests_are_left_for_hyper() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Bad: a\x7fb\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            let (p, rest) = parsed(text);
            assert!(matches!(p, Parsed::Other), "{text:?}");
            assert_eq!(&rest[..], text.as_bytes(), "nothing consumed: {text:?}");
        }
    }

    /// Fields the proxy writes itself into a backend's request head.
    const OWN: [&str; 7] = [
        "host",
        "content-length",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ];

    #[test]
    fn generated_requests_reach_every_outcome() {
        let mut seen = [0; 3];
        for raw in generated::sample(generated::request(), 2000) {
            let outcome = match parse(&mut BytesMut::from(&raw[..])) {
                Parsed::Request(..) => 0,
                Parsed::Partial => 1,
                Parsed::Other => 2,
            };
            seen[outcome] += 1;
        }
        assert!(seen.iter().all(|&n| n >= 200), "served, partial, other: {seen:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Whatever a client sends, this server either leaves every byte
        /// for hyper (or for more bytes) or serves a bodiless HTTP/1.1
        /// request whose head it consumed exactly, and then writes a
        /// backend head that parses, keeps the client's other fields as
        /// sent and in order, and carries no hop-by-hop field, no field
        /// the client's `Connection` lists, and only the proxy's own
        /// forwarding fields (the client's are not trusted by default).
        #[test]
        fn requests_are_served_only_when_simple_and_forwarded_clean(raw in generated::request()) {
            use generated::{connection_tokens, crlf_only, named, owned, passed_on};
            use proptest::prelude::*;
            let mut buf = BytesMut::from(&raw[..]);
            let (req, close) = match parse(&mut buf) {
                Parsed::Request(req, close) => (req, close),
                Parsed::Partial | Parsed::Other => {
                    prop_assert_eq!(&buf[..], &raw[..], "nothing consumed");
                    return Ok(());
                }
            };
            let mut slots = [httparse::EMPTY_HEADER; 100];
            let mut sent = httparse::Request::new(&mut slots);
            let len = generated::whole(sent.parse(&raw), &String::from_utf8_lossy(&raw))?;
            prop_assert_eq!(&buf[..], &raw[len..], "the head consumed, the rest left");
            let fields = owned(sent.headers);
            prop_assert_eq!(sent.version, Some(1));
            prop_assert!(sent.path.is_some_and(|p| p.starts_with('/')));
            prop_assert_ne!(sent.method, Some("CONNECT"));
            for (name, value) in &fields {
                prop_assert!(!named(name, &["transfer-encoding", "expect", "upgrade", "te"]));
                if named(name, &["content-length"]) {
                    prop_assert_eq!(value.trim_ascii(), b"0");
                }
            }
            let tokens = connection_tokens(&fields);
            prop_assert!(!tokens.iter().any(|t| t == b"upgrade"));
            prop_assert_eq!(close, tokens.iter().any(|t| t == b"close"));

            let forwarding = Forwarding {
                host: "app.localhost",
                client: ClientIp::new([10, 0, 0, 7].into()),
                tls: false,
                trust: false,
            };
            let mut out = Vec::new();
            write_request_head(&mut out, &req.head(), RequestBody::Empty, None, &forwarding);
            prop_assert!(crlf_only(&out), "lines end in CRLF: {:?}", String::from_utf8_lossy(&out));
            let mut slots = [httparse::EMPTY_HEADER; 100];
            let mut forwarded = httparse::Request::new(&mut slots);
            prop_assert_eq!(forwarded.parse(&out), Ok(httparse::Status::Complete(out.len())));
            prop_assert_eq!(forwarded.method, sent.method);
            prop_assert_eq!(forwarded.path, sent.path);
            let out_fields = owned(forwarded.headers);
            let copied: Vec<_> = out_fields.iter().filter(|(n, _)| !named(n, &OWN)).cloned().collect();
            prop_assert_eq!(copied, passed_on(&fields, &OWN));
            let own = |name: &str| -> Vec<&[u8]> {
                out_fields.iter().filter(|(n, _)| named(n, &[name])).map(|(_, v)| &v[..]).collect()
            };
            prop_assert_eq!(own("host"), [b"app.localhost"]);
            prop_assert_eq!(own("x-forwarded-for"), [b"10.0.0.7"]);
            prop_assert_eq!(own("x-forwarded-proto"), [b"http"]);
            prop_assert_eq!(own("x-forwarded-host"), [b"app.localhost"]);
            prop_assert_eq!(own("forwarded"), [&b"for=10.0.0.7;host=\"app.localhost\";proto=http"[..]]);
            let with_body = ["POST", "PUT", "PATCH"].contains(&sent.method.unwrap_or_default());
            let lengths = own("content-length");
            prop_assert_eq!(lengths, if with_body { vec![&b"0"[..]] } else { vec![] });
        }
    }

    #[test]
    fn first_bytes_name_the_protocol() {
        assert_eq!(sniff(&[0x16, 3, 1]), Some(Protocol::Tls));
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(Protocol::Http2));
        assert_eq!(sniff(b"PRI * HTTP"), None);
        assert_eq!(sniff(b"GET / HTTP/1.1"), Some(Protocol::Http1));
        assert_eq!(sniff(b"P"), None);
    }

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&format_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&format_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
