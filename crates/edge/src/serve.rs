//! Serving clients: one worker thread per core, each with a single-threaded
//! runtime accepting from the shared listener and owning its connections
//! and its backend pool; TLS told apart from plain HTTP by the first byte.

use crate::proxy::EdgeProxy;
use crate::tls;
use crate::upstream;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

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
        let mut workers = Vec::with_capacity(self.threads);
        for (index, listener) in worker_listeners(listener, self.threads).into_iter().enumerate() {
            let (done, finished) = oneshot::channel::<()>();
            let (proxy, shutdown) = (self.clone(), shutdown.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("edge-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime");
                    runtime.block_on(proxy.worker(listener, shutdown));
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

    /// One worker: accepts and serves connections until shutdown, then
    /// waits for them to end.
    async fn worker(self: Arc<Self>, listener: std::net::TcpListener, shutdown: CancellationToken) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "edge worker listener");
                return;
            }
        };
        let builder = self.http_builder();
        let graceful = GracefulShutdown::new();
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
                _ = sweep.tick() => {
                    upstream::sweep(self.limits);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let proxy = self.clone();
            let (builder, watcher) = (builder.clone(), graceful.watcher());
            tokio::spawn(async move { proxy.connection(stream, peer, builder, watcher).await });
        }
        drop(listener);
        graceful.shutdown().await;
    }

    fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .writev(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(self.config.client_idle_timeout / 2)
            .keep_alive_timeout(self.config.header_read_timeout);
        builder
    }

    /// Serves one client connection, after the TLS handshake if it starts one.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        builder: auto::Builder<TokioExecutor>,
        watcher: Watcher,
    ) {
        let Some(acceptor) = self.tls.clone().map(tokio_rustls::TlsAcceptor::from) else {
            return self.http(stream, peer, false, &builder, watcher).await;
        };
        let mut first = [0u8; 1];
        let limit = self.config.header_read_timeout;
        match tokio::time::timeout(limit, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == tls::HANDSHAKE => {}
            Ok(Ok(1)) => return self.http(stream, peer, false, &builder, watcher).await,
            _ => return,
        }
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.http(tls, peer, true, &builder, watcher).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "edge TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "edge TLS handshake timed out"),
        }
    }

    async fn http<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        tls: bool,
        builder: &auto::Builder<TokioExecutor>,
        watcher: Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |req| {
            let proxy = self.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, tls).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        if let Err(error) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(%peer, %error, "edge connection ended with an error");
        }
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
