//! Serving clients: one worker thread per core, each with a single-threaded
//! runtime, its own `SO_REUSEPORT` listener, its connections and its backend
//! pool. A connection's first bytes say whether it is TLS, HTTP/2 (prior
//! knowledge) or HTTP/1; TLS connections then pick HTTP/2 or 1.1 by ALPN.
//! Plain HTTP/1.1 is served by the proxy's own server ([`crate::h1`]) as
//! long as requests are simple, by hyper otherwise.

use crate::body::ProxyBody;
use crate::h1::{self, Protocol, Rewind, Served};
use crate::headers::ClientIp;
use crate::proxy::EdgeProxy;
use crate::steer::{Moved, Steering};
use crate::upstream;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often a worker closes its expired idle backend connections.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl EdgeProxy {
    /// Serves HTTP/1.1 and HTTP/2 (cleartext, or over TLS when a certificate
    /// is configured) on `listener` until `shutdown` is cancelled, then
    /// stops accepting and waits for open connections to finish their
    /// requests. Also runs the re-probe of ejected backends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let prober = tokio::spawn(self.clone().probe_ejected(shutdown.clone()));
        let listener = match listener.into_std() {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "edge listener unusable");
                return;
            }
        };
        let listeners = worker_listeners(listener, self.threads);
        let mut moved_to = self.steer(&listeners);
        let mut workers = Vec::with_capacity(self.threads);
        for (index, listener) in listeners.into_iter().enumerate() {
            let (done, finished) = oneshot::channel::<()>();
            let (proxy, shutdown) = (self.clone(), shutdown.clone());
            let moved = moved_to.get_mut(index).and_then(Option::take);
            let spawned = std::thread::Builder::new()
                .name(format!("edge-{index}"))
                .spawn(move || {
                    crate::metrics::pin_thread(index);
                    if let Some(steering) = proxy.steering.get() {
                        steering.enter(index);
                    }
                    let flusher = proxy.config.batch_sends.then(crate::batch::start).flatten();
                    let mut runtime = tokio::runtime::Builder::new_current_thread();
                    runtime.enable_all();
                    if coalesces(proxy.config.coalesce_wakeups, flusher.is_some()) {
                        runtime.on_thread_park(before_sleep);
                    }
                    let runtime = runtime.build().expect("a current-thread runtime");
                    runtime.block_on(proxy.worker(listener, shutdown, flusher, moved));
                    drop(done);
                });
            match spawned {
                Ok(_) => workers.push(finished),
                Err(error) => tracing::error!(%error, "edge worker {index} not started"),
            }
        }
        for finished in workers {
            let _ = finished.await;
        }
        let _ = prober.await;
    }

    /// Sets up steering by CPU where it applies (see
    /// [`EdgeConfig::cpu_locality`](crate::EdgeConfig::cpu_locality)):
    /// each worker's receiver of the connections moved to it.
    fn steer(&self, listeners: &[std::net::TcpListener]) -> Vec<Option<UnboundedReceiver<Moved>>> {
        if !self.config.cpu_locality || listeners.len() != self.threads {
            return Vec::new();
        }
        let Some((steering, receivers)) = Steering::new(self.threads) else {
            return Vec::new();
        };
        if let Err(error) = steering.attach(&listeners[0]) {
            // Connections still move to their CPU's worker after a request.
            tracing::info!(%error, "edge: new connections spread by hash, not by CPU");
        }
        if self.steering.set(steering).is_err() {
            return Vec::new();
        }
        receivers.into_iter().map(Some).collect()
    }

    /// One worker: accepts and serves connections (and those moved to it)
    /// until shutdown, then asks them to finish and waits for them.
    async fn worker(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        shutdown: CancellationToken,
        flusher: Option<impl Future<Output = ()> + Send + 'static>,
        mut moved: Option<UnboundedReceiver<Moved>>,
    ) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "edge worker listener");
                return;
            }
        };
        let protocols = Arc::new(self.protocols());
        let shutdown = shutdown.child_token();
        let connections = TaskTracker::new();
        let mut trim = Trim::default();
        if let Some(flusher) = flusher {
            tokio::spawn(flusher);
        }
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(%error, "edge accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                Some(moved) = next_moved(&mut moved) => match TcpStream::from_std(moved.stream) {
                    Ok(stream) => (stream, moved.peer),
                    Err(_) => continue,
                },
                _ = sweep.tick() => {
                    upstream::sweep(self.limits);
                    trim.tick();
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = Client {
                proxy: self.clone(),
                peer,
                protocols: protocols.clone(),
                shutdown: shutdown.clone(),
            };
            connections.spawn(conn.serve(stream));
        }
        drop(listener);
        connections.close();
        connections.wait().await;
    }

    fn protocols(&self) -> Protocols {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .writev(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .keep_alive_interval(self.config.client_idle_timeout / 2)
            .keep_alive_timeout(self.config.header_read_timeout);
        Protocols { h1, h2 }
    }
}

thread_local! {
    /// Requests this worker thread has answered.
    static ANSWERED: Cell<u64> = const { Cell::new(0) };
    /// Requests of this worker waiting for their response head.
    static WAITING: Cell<usize> = const { Cell::new(0) };
    /// `ANSWERED` when this worker last got ready to sleep.
    static ANSWERED_AT_PARK: Cell<u64> = const { Cell::new(0) };
}

/// How long a busy worker lets events gather before it sleeps (see
/// [`EdgeConfig::coalesce_wakeups`](crate::EdgeConfig::coalesce_wakeups)).
pub const COALESCE_WINDOW: Duration = Duration::from_micros(200);

/// Requests a worker must have waiting on replicas for it to pause.
const COALESCE_MIN_WAITING: usize = 32;

/// A request of this worker thread, from its head to its response head.
pub(crate) struct Answering(());

impl Answering {
    /// Counts a request answered by this worker thread.
    pub(crate) fn begin() -> Self {
        ANSWERED.with(|n| n.set(n.get().wrapping_add(1)));
        WAITING.with(|n| n.set(n.get() + 1));
        Self(())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        WAITING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Whether a worker lets events gather before it sleeps: when asked to and
/// its sends are not batched. Batched sends already wake the peers once
/// per round; the pause on top made 2–5 % fewer requests per second.
fn coalesces(wanted: bool, sends_batched: bool) -> bool {
    wanted && !sends_batched
}

/// Whether a worker about to sleep should first let events gather: it
/// started requests since it last slept and many are still waiting. At low
/// concurrency the pause would only add latency, so it is not taken.
fn should_coalesce(waiting: usize, answered_since_last_park: bool) -> bool {
    answered_since_last_park && waiting >= COALESCE_MIN_WAITING
}

/// Runs on a worker thread when its runtime is about to wait for events.
///
/// With many requests in flight the proxy would otherwise wake for every
/// single answer or request (each wake-up preempting the task that sent
/// it), a stable state in which every process on the machine handles one
/// message per time slice; pausing briefly lets them batch instead.
fn before_sleep() {
    if let Some(pause) = pause_before_sleep() {
        std::thread::sleep(pause);
    }
}

/// How long this worker should pause before it sleeps, if at all; notes
/// that it got ready to sleep.
fn pause_before_sleep() -> Option<Duration> {
    let now = ANSWERED.with(Cell::get);
    let answered = ANSWERED_AT_PARK.with(|at| at.replace(now) != now);
    should_coalesce(WAITING.with(Cell::get), answered).then_some(COALESCE_WINDOW)
}

/// Gives freed memory back to the system once a worker went a whole sweep
/// interval without answering a request after answering some (a burst of
/// connections leaves the allocator holding its peak otherwise); never
/// under steady load, where the memory would be taken again at once.
#[derive(Debug, Default)]
struct Trim {
    last: u64,
    trimmed_at: u64,
}

impl Trim {
    fn tick(&mut self) {
        let now = ANSWERED.with(Cell::get);
        if now == self.last && now != self.trimmed_at {
            upstream::release_memory();
            self.trimmed_at = now;
        }
        self.last = now;
    }
}

/// The HTTP/1 and HTTP/2 settings of a worker.
struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// One client connection.
struct Client {
    proxy: Arc<EdgeProxy>,
    peer: SocketAddr,
    protocols: Arc<Protocols>,
    shutdown: CancellationToken,
}

impl Client {
    /// Serves the connection: plain HTTP/1.1 by the proxy's own server
    /// until a request needs hyper, TLS after its handshake, HTTP/2 by hyper.
    /// (`async move` rather than `async fn`, which would hold `self` and
    /// `stream` twice: rust-lang/rust#62958; this future is what an idle
    /// connection costs.)
    #[allow(clippy::manual_async_fn)] // An `async fn` would hold its arguments twice.
    fn serve(self, mut stream: TcpStream) -> impl Future<Output = ()> + Send {
        async move {
            let proxy = self.proxy.clone();
            if let Some((worker, steering)) = proxy.steering.get().and_then(|s| Some((s.overflow()?, s))) {
                steering.hand_over(worker, stream, self.peer);
                return;
            }
            let _held = proxy.steering.get().and_then(|s| s.hold());
            let client = ClientIp::new(self.peer.ip());
            let (protocol, read) = match h1::serve(&self.proxy, &mut stream, &client, &self.shutdown).await {
                Served::Closed => return,
                Served::Moved(worker) => {
                    if let Some(steering) = proxy.steering.get() {
                        steering.hand_over(worker, stream, self.peer);
                    }
                    return;
                }
                Served::Handoff(protocol, read) => (protocol, read),
            };
            let stream = Rewind::new(stream, read);
            // Boxed, and matched before the wait: nothing of the match is
            // kept in this future.
            let serving: Pin<Box<dyn Future<Output = ()> + Send>> = match (protocol, self.proxy.tls.clone()) {
                (Protocol::Tls, Some(config)) => Box::pin(self.serve_tls(stream, config)),
                (Protocol::Http2, _) => Box::pin(self.http2(stream, false)),
                _ => Box::pin(self.http1(stream, false)),
            };
            serving.await;
        }
    }

    async fn serve_tls(self, stream: Rewind<TcpStream>, config: Arc<rustls::ServerConfig>) {
        let limit = self.proxy.config.header_read_timeout;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => self.http2(tls, true).await,
            Ok(Ok(tls)) => self.http1(tls, true).await,
            Ok(Err(error)) => tracing::debug!(peer = %self.peer, %error, "edge TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "edge TLS handshake timed out"),
        }
    }

    fn service(
        &self,
        tls: bool,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<ProxyBody>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
    > + Clone {
        let (proxy, client) = (self.proxy.clone(), ClientIp::new(self.peer.ip()));
        service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, client, tls).await) }
        })
    }

    async fn http1<I>(self, io: I, tls: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self
            .protocols
            .h1
            .serve_connection(TokioIo::new(io), self.service(tls))
            .with_upgrades();
        tokio::pin!(conn);
        let result = until_shutdown(conn, &self.shutdown, |c| c.graceful_shutdown()).await;
        if let Err(error) = result {
            tracing::debug!(peer = %self.peer, %error, "edge connection ended with an error");
        }
    }

    async fn http2<I>(self, io: I, tls: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self
            .protocols
            .h2
            .serve_connection(TokioIo::new(io), self.service(tls));
        tokio::pin!(conn);
        let result = until_shutdown(conn, &self.shutdown, |c| c.graceful_shutdown()).await;
        if let Err(error) = result {
            tracing::debug!(peer = %self.peer, %error, "edge HTTP/2 connection ended with an error");
        }
    }
}

/// Runs a hyper connection to its end; once `shutdown` fires, asks it to
/// finish the requests under way (`graceful`) and waits for that.
async fn until_shutdown<C: Future>(
    mut conn: std::pin::Pin<&mut C>,
    shutdown: &CancellationToken,
    graceful: fn(std::pin::Pin<&mut C>),
) -> C::Output {
    tokio::select! {
        output = conn.as_mut() => output,
        () = shutdown.cancelled() => {
            graceful(conn.as_mut());
            conn.await
        }
    }
}

/// The next connection moved to this worker; never, for a worker that
/// does not steer.
async fn next_moved(moved: &mut Option<UnboundedReceiver<Moved>>) -> Option<Moved> {
    match moved {
        Some(moved) => moved.recv().await,
        None => std::future::pending().await,
    }
}

/// One listener per worker. Extra sockets join the given one in a
/// `SO_REUSEPORT` group, so the kernel spreads new connections evenly over
/// the workers; where that is refused, workers share the given socket.
fn worker_listeners(listener: std::net::TcpListener, count: usize) -> Vec<std::net::TcpListener> {
    let mut listeners = Vec::with_capacity(count);
    let reuse = socket2::SockRef::from(&listener).set_reuse_port(true);
    let addr = listener.local_addr();
    for _ in 1..count {
        let own = match (&reuse, &addr) {
            (Ok(()), Ok(addr)) => reuse_port_listener(*addr),
            _ => Err(std::io::Error::other("SO_REUSEPORT unavailable")),
        };
        match own.or_else(|_| listener.try_clone()) {
            Ok(own) => listeners.push(own),
            Err(error) => tracing::error!(%error, "edge worker listener"),
        }
    }
    listeners.insert(0, listener);
    listeners
}

fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use easydeploy_core::ports::TrafficSwitch;

    /// A backend answering every request head it reads with `ok`.
    async fn ok_backend() -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
                    loop {
                        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            got.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if conn.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `request` on a new connection, closes the sending side and
    /// returns everything the proxy answered.
    async fn exchange(proxy: SocketAddr, request: &[u8]) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = TcpStream::connect(proxy).await.unwrap();
        // The proxy may answer and close before it has read everything.
        let _ = conn.write_all(request).await;
        let _ = conn.shutdown().await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer));
        let _ = read.await.expect("an answer or a close within the timeouts");
        answer
    }

    /// Generated requests (valid, malformed, cut short; half of them for a
    /// deployed app) sent to a running proxy in front of a real backend:
    /// each gets an HTTP/1.x answer or a close, no worker panics, and the
    /// proxy still serves a plain request afterwards.
    #[tokio::test]
    async fn generated_requests_get_an_answer_or_a_close_and_the_proxy_stays_up() {
        static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("edge-"))
            {
                PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            previous(info);
        }));
        let config = crate::EdgeConfig {
            header_read_timeout: Duration::from_secs(2),
            ..crate::EdgeConfig::default()
        };
        let proxy = EdgeProxy::try_new(config).unwrap();
        proxy.set_backends("app", vec![ok_backend().await]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(proxy.clone().serve(listener, shutdown.clone()));

        let requests = crate::generated::sample(crate::generated::request(), 400);
        let mut answered = 0;
        for (i, mut request) in requests.into_iter().enumerate() {
            if i % 2 == 0 {
                if let Some(line_end) = request.iter().position(|&b| b == b'\n') {
                    request.splice(
                        line_end + 1..line_end + 1,
                        b"Host: app.localhost\r\n".iter().copied(),
                    );
                }
            }
            let answer = exchange(addr, &request).await;
            if !answer.is_empty() {
                answered += 1;
                assert!(
                    answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
                    "{:?} got {:?}",
                    String::from_utf8_lossy(&request),
                    String::from_utf8_lossy(&answer)
                );
            }
        }
        assert!(answered >= 200, "most requests are answered: {answered} of 400");
        let plain = exchange(addr, b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n").await;
        assert!(
            plain.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{:?}",
            String::from_utf8_lossy(&plain)
        );
        assert!(plain.ends_with(b"\r\n\r\nok"));
        assert_eq!(
            PANICS.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "no edge worker panicked"
        );
        shutdown.cancel();
    }

    /// What an idle keep-alive connection holds in user space is mostly its
    /// task: this future, plus tokio's task header and trailer (about 112
    /// bytes; the task is allocated in multiples of 128). Kept at 528 bytes
    /// or less, the task takes 640 bytes, a third of what it took when the
    /// request's head and route stayed in it.
    #[tokio::test]
    async fn an_idle_connection_holds_a_small_future() {
        let proxy = EdgeProxy::try_new(crate::EdgeConfig::default()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let stream = TcpStream::connect(peer).await.unwrap();
        let client = Client {
            protocols: Arc::new(proxy.protocols()),
            proxy,
            peer,
            shutdown: CancellationToken::new(),
        };
        let serving = client.serve(stream);
        let size = std::mem::size_of_val(&serving);
        assert!(size <= 528, "a connection's future takes {size} bytes");
    }

    #[test]
    fn workers_batching_their_sends_do_not_pause_before_sleeping() {
        assert!(coalesces(true, false));
        assert!(!coalesces(true, true));
        assert!(!coalesces(false, false));
    }

    #[test]
    fn only_a_worker_with_many_requests_waiting_lets_work_gather() {
        assert!(should_coalesce(COALESCE_MIN_WAITING, true));
        assert!(
            !should_coalesce(COALESCE_MIN_WAITING - 1, true),
            "low concurrency: no pause"
        );
        assert!(!should_coalesce(1000, false), "nothing new since the last sleep");
    }

    #[test]
    fn requests_are_counted_while_they_wait_for_their_response_head() {
        // Thread-locals: this test's thread is a worker of its own.
        let waiting = || WAITING.with(Cell::get);
        let started = ANSWERED.with(Cell::get);
        let answering: Vec<Answering> = (0..COALESCE_MIN_WAITING).map(|_| Answering::begin()).collect();
        assert_eq!(waiting(), COALESCE_MIN_WAITING);
        assert_eq!(ANSWERED.with(Cell::get), started + COALESCE_MIN_WAITING as u64);
        assert_eq!(
            pause_before_sleep(),
            Some(COALESCE_WINDOW),
            "busy with many waiting"
        );
        assert_eq!(
            pause_before_sleep(),
            None,
            "no request started since the last time"
        );
        let one_more = Answering::begin();
        assert_eq!(pause_before_sleep(), Some(COALESCE_WINDOW));
        drop((answering, one_more));
        assert_eq!(waiting(), 0);
        let last = Answering::begin();
        assert_eq!(pause_before_sleep(), None, "one request waiting: no pause");
        drop(last);
    }
}
