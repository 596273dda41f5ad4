use std::path::PathBuf;
use std::time::Duration;

/// Settings of the edge proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Apps are served at `<app>.<apps_domain>` (default `localhost`).
    pub apps_domain: String,
    /// Limit for opening a TCP connection to a backend (default 2 s); also
    /// used by the background re-probe of ejected backends.
    pub connect_timeout: Duration,
    /// Limit for a backend to send its response headers once it has the
    /// whole request (default 60 s); past it the client gets a 504.
    pub upstream_timeout: Duration,
    /// Limit for a client to send a request's headers (default 10 s). It
    /// defeats slowloris clients and also bounds how long an HTTP/1
    /// keep-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// How long an idle pooled connection to a backend is kept (default 90 s).
    pub idle_timeout: Duration,
    /// A WebSocket (or other upgraded) tunnel with no traffic either way
    /// for this long is closed (default 5 min); an HTTP/2 client is pinged
    /// every half of it and dropped if it does not answer within
    /// `header_read_timeout`.
    pub client_idle_timeout: Duration,
    /// Largest request body accepted (default 1 GiB); larger ones get a 413
    /// (at once when `Content-Length` says so, else when the limit is hit).
    pub max_body_bytes: u64,
    /// Most idle keep-alive connections kept per backend (default 1024).
    pub pool_max_idle_per_backend: usize,
    /// Keep the `X-Forwarded-For`/`Forwarded` chain clients send and append
    /// to it (default `false`: only what the proxy saw is forwarded). Turn
    /// on only behind another proxy that sets these headers itself.
    pub trust_forwarded_headers: bool,
    /// PEM certificate chain; with `tls_key`, clients starting a TLS
    /// handshake get TLS (ALPN `h2`, `http/1.1`) on the same listener as
    /// plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Threads accepting and serving client connections, each with its own
    /// single-threaded runtime and backend pools (default 0: one per core).
    pub threads: usize,
    /// Collect traffic figures per app and replica (default `true`). Off,
    /// every figure stays zero, the autoscaler included; only the in-flight
    /// counts used for draining are kept. The switch exists to measure the
    /// cost of the figures.
    pub metrics: bool,
    /// Open connections to a replica from inside its network namespace
    /// when the runtime names it (default `true`; see
    /// [`Upstream::netns`](easydeploy_core::ports::Upstream::netns)). Needs
    /// `CAP_SYS_ADMIN`; without it, or off, replicas are dialed at their
    /// bridge address from the edge's namespace.
    pub dial_in_namespace: bool,
    /// Under heavy load, let work gather before sleeping (default `true`;
    /// only on workers whose sends are not batched, see `batch_sends`): a
    /// worker about to wait for events while many of its requests are
    /// waiting on replicas first pauses [`COALESCE_WINDOW`](crate::COALESCE_WINDOW),
    /// so the answers and requests arriving meanwhile are handled in one
    /// batch instead of each waking it (and being preempted by it) alone.
    pub coalesce_wakeups: bool,
    /// Send request heads and whole small responses in batches (default
    /// `true`): each worker collects the sends its tasks make in one round
    /// and submits them together with io_uring, so the replicas and
    /// clients they wake are woken once per batch rather than preempting
    /// the worker after each send. Where io_uring is unavailable the
    /// worker sends directly.
    pub batch_sends: bool,
    /// Keep each connection on one CPU (default `true`): when there is one
    /// worker per CPU the process may use, each worker is pinned to its
    /// CPU, new connections go to the worker of the CPU their packets
    /// arrive on, and a plain HTTP/1.1 keep-alive connection whose packets
    /// come to arrive on another CPU moves to that CPU's worker between
    /// two requests. A client and the worker serving it then wake each
    /// other on one core instead of across cores.
    pub cpu_locality: bool,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            apps_domain: "localhost".to_owned(),
            connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            client_idle_timeout: Duration::from_secs(300),
            max_body_bytes: 1 << 30,
            pool_max_idle_per_backend: 1024,
            trust_forwarded_headers: false,
            tls_cert: None,
            tls_key: None,
            threads: 0,
            metrics: true,
            dial_in_namespace: true,
            coalesce_wakeups: true,
            batch_sends: true,
            cpu_locality: true,
        }
    }
}
