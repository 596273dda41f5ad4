//! The proxy: routing a request to a backend, the exchange with it, passive
//! ejection and re-probing.

use crate::body::{ProxyBody, UpstreamBody};
use crate::config::EdgeConfig;
use crate::exchange::{self, Failure};
use crate::headers::{app_of_host, write_request_head, ClientIp, Forwarding, RequestBody, RequestHead};
use crate::metrics::Tracker;
use crate::pages;
use crate::response::ResponseHead;
use crate::routes::{AppStats, Backend, Routes};
use crate::tls;
use crate::tunnel;
use crate::upstream::{self, Conn, PoolLimits};
use easydeploy_core::ports::{LoadMetrics, TrafficFigures, TrafficSwitch, Upstream};
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body, Incoming, SizeHint};
use hyper::upgrade::OnUpgrade;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often ejected backends are re-probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the proxy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The TLS certificate or key could not be loaded.
    #[error("TLS certificate or key: {0}")]
    Tls(String),
}

/// The edge reverse proxy and load balancer. Routes are changed through its
/// [`TrafficSwitch`] implementation.
pub struct EdgeProxy {
    pub(crate) config: EdgeConfig,
    /// `.`-free lowercase apps domain.
    domain: String,
    routes: Routes,
    pub(crate) limits: PoolLimits,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) threads: usize,
    /// Set once the workers steer connections by CPU.
    pub(crate) steering: std::sync::OnceLock<Arc<crate::steer::Steering>>,
}

impl std::fmt::Debug for EdgeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeProxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EdgeProxy {
    /// Makes a proxy with an empty route table. A TLS certificate that
    /// cannot be loaded is logged and TLS left off; use [`Self::try_new`]
    /// to get the error instead.
    pub fn new(config: EdgeConfig) -> Arc<Self> {
        match Self::try_new(config.clone()) {
            Ok(proxy) => proxy,
            Err(error) => {
                tracing::error!(%error, "edge proxy serves without TLS");
                Self::try_new(EdgeConfig {
                    tls_cert: None,
                    tls_key: None,
                    ..config
                })
                .expect("no TLS, no error")
            }
        }
    }

    /// Makes a proxy with an empty route table, loading its TLS certificate
    /// when one is configured.
    pub fn try_new(config: EdgeConfig) -> Result<Arc<Self>, EdgeError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            (None, None) => None,
            _ => return Err(EdgeError::Tls("tls_cert and tls_key go together".into())),
        };
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let limits = PoolLimits {
            max_idle: config.pool_max_idle_per_backend.div_ceil(threads).max(1),
            idle_timeout: config.idle_timeout,
        };
        let domain = config.apps_domain.trim_matches('.').to_ascii_lowercase();
        let routes = Routes::new(threads, config.dial_in_namespace);
        Ok(Arc::new(Self {
            config,
            domain,
            routes,
            limits,
            tls,
            threads,
            steering: std::sync::OnceLock::new(),
        }))
    }

    /// The settings the proxy was made with.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Whether the workers are pinned to CPUs and steer connections to the
    /// worker of the CPU their packets arrive on (see
    /// [`EdgeConfig::cpu_locality`]); known once serving.
    pub fn steers_by_cpu(&self) -> bool {
        self.steering.get().is_some()
    }

    /// Client connections moved from one worker to another so far.
    pub fn connections_moved(&self) -> u64 {
        self.steering.get().map_or(0, |s| s.moved())
    }

    /// The client connections each worker serves now, where workers steer
    /// by CPU (empty otherwise).
    pub fn connections_by_worker(&self) -> Vec<usize> {
        self.steering.get().map_or_else(Vec::new, |s| s.held())
    }

    /// Request counters of an app, or `None` if it has no route (always
    /// zero when [`EdgeConfig::metrics`] is off).
    pub fn app_stats(&self, app: &str) -> Option<AppStats> {
        self.routes.traffic(app).as_ref().map(AppStats::from)
    }

    /// Answers one client request served by hyper.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        client: ClientIp,
        tls: bool,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        let route = self.route(&RequestHead::of(&parts), Some(body), on_upgrade, client, tls);
        drop(parts);
        match route {
            Route::Forward(routed) => self.forward(routed).await.into_response(),
            Route::Answered(res) => res,
        }
    }

    /// Routes a client request (`body`: `None` when it has none) to its
    /// app and writes the head its backends get, or answers it at once
    /// (unknown app, body declared too large).
    pub(crate) fn route(
        &self,
        req: &RequestHead<'_>,
        body: Option<Incoming>,
        on_upgrade: Option<OnUpgrade>,
        client: ClientIp,
        tls: bool,
    ) -> Route {
        let host = match req.host() {
            Ok(Some(host)) => host,
            Ok(None) => return Route::Answered(pages::unknown_app(None, None)),
            Err(problem) => return Route::Answered(pages::bad_host(problem)),
        };
        let Some(app) = app_of_host(host, &self.domain) else {
            return Route::Answered(pages::unknown_app(None, Some(host)));
        };
        let Some(pool) = self.routes.pool(&app) else {
            return Route::Answered(pages::unknown_app(Some(&app), None));
        };
        let mut tracker = Tracker::new(pool, self.config.metrics);
        let fwd = Forwarding {
            host,
            client,
            tls,
            trust: self.config.trust_forwarded_headers,
        };
        let mut head = Vec::with_capacity(512);
        match self.prepare(&mut head, req, body, on_upgrade, &fwd) {
            Some(prepared) => Route::Forward(Routed {
                tracker,
                head: head.into(),
                prepared,
            }),
            None => Route::Answered(page(&mut tracker, pages::too_large(self.config.max_body_bytes))),
        }
    }

    /// Writes the head the backends get; `None` when the body is declared
    /// larger than the limit.
    fn prepare(
        &self,
        head: &mut Vec<u8>,
        req: &RequestHead<'_>,
        body: Option<Incoming>,
        on_upgrade: Option<OnUpgrade>,
        fwd: &Forwarding<'_>,
    ) -> Option<Prepared> {
        let hint = body
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0));
        let framing = match hint.exact() {
            _ if body.as_ref().is_none_or(Body::is_end_stream) => RequestBody::Empty,
            Some(n) => RequestBody::Length(n),
            None => RequestBody::Chunked,
        };
        if hint.lower() > self.config.max_body_bytes {
            return None;
        }
        // Only a connection that can be handed over asks for an upgrade (the
        // proxy's own HTTP/1.1 server never gets one: it passes them to hyper).
        let upgrade = on_upgrade.is_some().then(|| req.upgrade()).flatten();
        write_request_head(head, req, framing, upgrade, fwd);
        Some(Prepared {
            replayable: is_idempotent(req.method) && framing == RequestBody::Empty,
            head_request: *req.method == Method::HEAD,
            framing,
            sent: 0,
            body: body.filter(|_| framing != RequestBody::Empty),
            on_upgrade: on_upgrade.filter(|_| upgrade.is_some()),
        })
    }

    /// Sends the request to the pool's next healthy backend, moving on to
    /// the following one when a connection fails and the request can be
    /// replayed (idempotent method, no body).
    pub(crate) fn forward(&self, routed: Routed) -> impl Future<Output = Answer> + Send + '_ {
        let mut routed = routed;
        // Uses `routed` in place: an `async fn` would hold its argument
        // twice (rust-lang/rust#62958), and the future would no longer fit
        // the allocator's small size classes.
        async move {
            let _answering = crate::serve::Answering::begin();
            let pool = routed.tracker.pool.clone();
            let (t, req, head) = (&mut routed.tracker, &mut routed.prepared, &routed.head);
            let app = &*pool.app;
            let mut attempted = false;
            for backend in pool.rotation() {
                if !backend.is_healthy() {
                    continue;
                }
                if attempted && !req.replayable {
                    break;
                }
                attempted = true;
                t.attempt(backend.begin());
                let result = self.exchange_with(backend, head, req).await;
                t.bytes_in = req.sent;
                match result {
                    Ok((conn, res)) => {
                        return self.respond(app, conn, res, routed.tracker, req.on_upgrade.take())
                    }
                    Err(Failure::Connect(error)) => {
                        backend.healthy.store(false, Relaxed);
                        tracing::warn!(app, backend = %backend.addr, %error, "edge ejected backend");
                    }
                    Err(Failure::TooLarge) => {
                        return Answer::Built(page(t, pages::too_large(self.config.max_body_bytes)))
                    }
                    Err(Failure::Timeout) => {
                        tracing::debug!(app, backend = %backend.addr, "edge upstream timed out");
                        return Answer::Built(page(t, pages::upstream_timeout(app)));
                    }
                    Err(Failure::Client(error)) => {
                        tracing::debug!(app, %error, "edge client request body failed");
                        return Answer::Built(page(t, pages::bad_request()));
                    }
                    // The backend died before answering (killed mid-request):
                    // a replayable request goes to the next backend. One that
                    // answered garbage is not asked again.
                    Err(Failure::Upstream(error) | Failure::NotSent(error))
                        if req.replayable && error.kind() != std::io::ErrorKind::InvalidData =>
                    {
                        tracing::debug!(app, backend = %backend.addr, %error, "edge upstream failed; retrying elsewhere");
                    }
                    Err(Failure::Upstream(error) | Failure::NotSent(error)) => {
                        tracing::debug!(app, backend = %backend.addr, %error, "edge upstream failed");
                        return Answer::Built(page(t, pages::upstream_error(app)));
                    }
                }
            }
            Answer::Built(if attempted {
                page(t, pages::upstream_unreachable(app))
            } else {
                page(t, pages::no_healthy_replica(app))
            })
        }
    }

    /// One exchange with `backend` on a pooled connection, or on a new one
    /// when the pooled one turns out closed before anything was sent.
    async fn exchange_with(
        &self,
        backend: &Backend,
        head: &bytes::Bytes,
        req: &mut Prepared,
    ) -> Result<(Conn, ResponseHead), Failure> {
        let head_request = req.head_request;
        let (timeout, max_body) = (self.config.upstream_timeout, self.config.max_body_bytes);
        if let Some(mut conn) = upstream::checkout(backend.addr, self.limits, req.replayable) {
            match exchange::run(&mut conn, head, req.body_mut(), timeout, max_body, head_request).await {
                Ok(res) => return Ok((conn, res)),
                // Closed by the backend while idle: nothing was answered, so
                // a new connection can carry the request (if it is intact).
                Err(Failure::NotSent(_)) => {}
                Err(Failure::Upstream(_)) if conn.buf.is_empty() && req.replayable => {}
                Err(failure) => return Err(failure),
            }
        }
        let mut conn = Box::pin(Conn::connect(
            backend.addr,
            backend.netns.as_ref(),
            self.config.connect_timeout,
        ))
        .await
        .map_err(Failure::Connect)?;
        let res = Box::pin(exchange::run(
            &mut conn,
            head,
            req.body_mut(),
            timeout,
            max_body,
            head_request,
        ))
        .await?;
        Ok((conn, res))
    }

    fn respond(
        &self,
        app: &str,
        conn: Conn,
        head: ResponseHead,
        mut tracker: Tracker,
        on_upgrade: Option<OnUpgrade>,
    ) -> Answer {
        if head.status == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(on_upgrade), Some(protocol)) = (on_upgrade, head.upgrade.clone()) else {
                tracing::debug!(app, "edge upstream switched protocols unasked");
                return Answer::Built(page(&mut tracker, pages::upstream_error(app)));
            };
            tracker.respond(head.status);
            if let Some(guard) = tracker.into_guard() {
                tunnel::spawn(on_upgrade, conn, guard, self.config.client_idle_timeout);
            }
            let mut res = Response::new(ProxyBody::Page(None));
            *res.status_mut() = head.status;
            *res.headers_mut() = head.headers();
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            res.headers_mut().insert(UPGRADE, protocol);
            return Answer::Built(res);
        }
        tracker.respond(head.status);
        let body = UpstreamBody::new(conn, head.framing, head.keep_alive, self.limits, tracker);
        Answer::Upstream(head, body)
    }

    /// Every [`PROBE_INTERVAL`], tries a TCP connect to each ejected backend
    /// and puts back in rotation those that accept.
    pub(crate) async fn probe_ejected(self: Arc<Self>, shutdown: CancellationToken) {
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
                    let dial = upstream::dial(backend.addr, backend.netns.as_ref());
                    if let Ok(Ok(_)) = tokio::time::timeout(limit, dial).await {
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

/// Answers with a page of the proxy's own, recorded by `tracker`.
fn page(tracker: &mut Tracker, res: Response<ProxyBody>) -> Response<ProxyBody> {
    tracker.respond(res.status());
    tracker.bytes_out = res.body().size_hint().exact().unwrap_or(0);
    res
}

/// What routing made of a request.
// Never stored: matched at once.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Route {
    /// To be forwarded to the app's backends.
    Forward(Routed),
    /// Answered by the proxy itself.
    Answered(Response<ProxyBody>),
}

/// A request routed to an app, with the head its backends get.
pub(crate) struct Routed {
    tracker: Tracker,
    head: bytes::Bytes,
    prepared: Prepared,
}

/// What the proxy answers a forwarded request with.
#[allow(clippy::large_enum_variant)] // Never stored: matched at once.
pub(crate) enum Answer {
    /// A backend's response: its head as received, and its body.
    Upstream(ResponseHead, UpstreamBody),
    /// A page of the proxy's own, or a response built for hyper.
    Built(Response<ProxyBody>),
}

impl Answer {
    /// As a response for hyper (the backend's fields become a header map).
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        match self {
            Self::Upstream(head, body) => {
                let mut res = Response::new(ProxyBody::Upstream(body));
                *res.status_mut() = head.status;
                *res.headers_mut() = head.headers();
                res
            }
            Self::Built(res) => res,
        }
    }
}

/// A checked request, ready to be sent to a backend.
struct Prepared {
    /// Can be sent again to another backend (idempotent, no body).
    replayable: bool,
    head_request: bool,
    framing: RequestBody,
    /// Body bytes sent so far.
    sent: u64,
    /// The client's body, until it is sent.
    body: Option<Incoming>,
    on_upgrade: Option<OnUpgrade>,
}

impl Prepared {
    fn body_mut(&mut self) -> exchange::Outgoing<'_> {
        exchange::Outgoing {
            body: &mut self.body,
            chunked: self.framing == RequestBody::Chunked,
            sent: &mut self.sent,
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

impl TrafficSwitch for EdgeProxy {
    fn set_upstreams(&self, app: &str, upstreams: Vec<Upstream>) {
        self.routes.set(app, upstreams);
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

/// Figures since the app was first given backends (all zero when
/// [`EdgeConfig::metrics`] is off). Replicas are keyed `ip:port`; those
/// taken out of rotation are listed until read once after they drained.
impl LoadMetrics for EdgeProxy {
    fn requests_total(&self, app: &str) -> Option<u64> {
        self.routes.traffic(app).map(|f| f.requests)
    }

    fn responses_by_class(&self, app: &str) -> Option<[u64; 4]> {
        self.routes.traffic(app).map(|f| f.responses_by_class)
    }

    fn traffic(&self, app: &str) -> Option<TrafficFigures> {
        self.routes.traffic(app)
    }

    fn traffic_by_replica(&self, app: &str) -> Vec<(String, TrafficFigures)> {
        let replicas = self.routes.traffic_by_replica(app);
        replicas
            .into_iter()
            .map(|(addr, f)| (addr.to_string(), f))
            .collect()
    }
}
