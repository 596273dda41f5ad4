//! The proxy: accept loop, request forwarding, passive ejection and re-probing.

use crate::body::ProxyBody;
use crate::config::EdgeConfig;
use crate::headers::{app_of_host, forward_request_headers, request_host, strip_hop_by_hop};
use crate::pages;
use crate::routes::{AppStats, Pool, Routes};
use bytes::Bytes;
use easydeploy_core::ports::TrafficSwitch;
use http::{Method, Request, Response, Uri, Version};
use http_body_util::{Either, Empty};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Body sent to backends: the client's stream, or nothing (replayable).
type UpstreamBody = Either<Incoming, Empty<Bytes>>;

/// How often ejected backends are re-probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The edge reverse proxy and load balancer. Routes are changed through its
/// [`TrafficSwitch`] implementation.
pub struct EdgeProxy {
    config: EdgeConfig,
    /// `.`-free lowercase apps domain.
    domain: String,
    routes: Routes,
    client: Client<HttpConnector, UpstreamBody>,
}

impl std::fmt::Debug for EdgeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeProxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EdgeProxy {
    /// Makes a proxy with an empty route table.
    pub fn new(config: EdgeConfig) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let domain = config.apps_domain.trim_matches('.').to_ascii_lowercase();
        Arc::new(Self {
            config,
            domain,
            routes: Routes::default(),
            client,
        })
    }

    /// The settings the proxy was made with.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Request counters of an app, or `None` if it has no route.
    pub fn app_stats(&self, app: &str) -> Option<AppStats> {
        self.routes.stats(app)
    }

    /// Serves HTTP/1.1 and cleartext HTTP/2 on `listener` until `shutdown`
    /// is cancelled, then stops accepting and waits for open connections to
    /// finish their requests. Also runs the re-probe of ejected backends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let prober = tokio::spawn(self.clone().probe_ejected(shutdown.clone()));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
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
            };
            let _ = stream.set_nodelay(true);
            let proxy = self.clone();
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%peer, %error, "edge connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
        let _ = prober.await;
    }

    /// Answers one client request.
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let Some(host) = request_host(&req).map(str::to_owned) else {
            return pages::unknown_app(None, None);
        };
        let Some(app) = app_of_host(&host, &self.domain) else {
            return pages::unknown_app(None, Some(&host));
        };
        let Some(pool) = self.routes.pool(&app) else {
            return pages::unknown_app(Some(&app), None);
        };
        pool.counters.request();
        let res = self.forward(&pool, &app, &host, req, peer).await;
        pool.counters.response(res.status());
        res
    }

    /// Sends the request to the pool's next healthy backend, moving on to
    /// the following one when a connection fails and the request can be
    /// replayed (idempotent method, no body).
    async fn forward(
        &self,
        pool: &Pool,
        app: &str,
        host: &str,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let replayable = is_idempotent(&parts.method) && body.is_end_stream();
        let mut body = (!replayable).then_some(body);
        forward_request_headers(&mut parts.headers, host, peer);
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut attempted = false;
        for backend in pool.rotation() {
            if !backend.is_healthy() {
                continue;
            }
            if attempted && !replayable {
                break;
            }
            attempted = true;
            let Ok(uri) = Uri::try_from(format!("http://{}{path}", backend.addr)) else {
                return pages::upstream_error(app);
            };
            let mut upstream = Request::new(match body.take() {
                Some(body) => Either::Left(body),
                None => Either::Right(Empty::new()),
            });
            *upstream.method_mut() = parts.method.clone();
            *upstream.uri_mut() = uri;
            *upstream.version_mut() = Version::HTTP_11;
            *upstream.headers_mut() = parts.headers.clone();

            let guard = backend.begin();
            let sent = tokio::time::timeout(self.config.upstream_timeout, self.client.request(upstream));
            match sent.await {
                Ok(Ok(res)) => {
                    let (mut parts, inner) = res.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let body = ProxyBody::Upstream {
                        inner,
                        guard: Some(guard),
                    };
                    return Response::from_parts(parts, body);
                }
                Ok(Err(error)) if error.is_connect() => {
                    backend.healthy.store(false, Relaxed);
                    tracing::warn!(app, backend = %backend.addr, error = %error_chain(&error), "edge ejected backend");
                }
                Ok(Err(error)) => {
                    tracing::debug!(app, backend = %backend.addr, error = %error_chain(&error), "edge upstream failed");
                    return pages::upstream_error(app);
                }
                Err(_) => {
                    tracing::debug!(app, backend = %backend.addr, "edge upstream timed out");
                    return pages::upstream_timeout(app);
                }
            }
        }
        if attempted {
            pages::upstream_unreachable(app)
        } else {
            pages::no_healthy_replica(app)
        }
    }

    /// Every [`PROBE_INTERVAL`], tries a TCP connect to each ejected backend
    /// and puts back in rotation those that accept.
    async fn probe_ejected(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(PROBE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let table = self.routes.snapshot();
            let mut probes = JoinSet::new();
            for backend in table.values().flat_map(|p| p.backends.iter()) {
                if backend.is_healthy() {
                    continue;
                }
                let backend = backend.clone();
                let limit = self.config.connect_timeout;
                probes.spawn(async move {
                    if let Ok(Ok(_)) = tokio::time::timeout(limit, TcpStream::connect(backend.addr)).await {
                        backend.healthy.store(true, Relaxed);
                        tracing::info!(backend = %backend.addr, "edge restored backend");
                    }
                });
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = async { while probes.join_next().await.is_some() {} } => {}
            }
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// An error with its causes, `a: b: c`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl TrafficSwitch for EdgeProxy {
    fn set_backends(&self, app: &str, backends: Vec<SocketAddr>) {
        self.routes.set(app, backends);
    }

    fn remove(&self, app: &str) {
        self.routes.remove(app);
    }

    fn in_flight(&self, backend: SocketAddr) -> usize {
        self.routes.in_flight(backend)
    }

    fn is_healthy(&self, backend: SocketAddr) -> bool {
        self.routes.is_healthy(backend)
    }
}
