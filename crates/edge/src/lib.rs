//! Easy Deploy edge proxy.
//!
//! Routes `<app>.<apps-domain>` requests to the app's replicas (round robin
//! over healthy backends), streams bodies both ways, passes WebSocket (and
//! other `Upgrade`) connections through, ejects backends that refuse
//! connections and re-probes them in the background, and keeps traffic
//! figures per app and replica (requests, status classes, bytes, in-flight,
//! latency histogram; see [`easydeploy_core::ports::LoadMetrics`]).
//! Clients speak HTTP/1.1 or HTTP/2 (cleartext, or TLS with ALPN when a
//! certificate is configured); backends get HTTP/1.1 over pooled
//! keep-alive connections.
//!
//! Built for speed: one worker thread per core with its own runtime and
//! backend pool (no lock on the request path; the route table is swapped
//! atomically with [`arc_swap::ArcSwap`]; traffic counters are sharded per
//! worker), plain HTTP/1.1 requests without a body served by the proxy's
//! own small server (hyper serves the rest) with no header maps: the
//! client's fields go into the backend's head as bytes and the backend's
//! head is passed on in runs of bytes as it came, response bodies read from the backend by the client connection's
//! own task, coarse per-connection timers, local replicas dialed from
//! inside their network namespace (see
//! [`Upstream::netns`](easydeploy_core::ports::Upstream::netns)), the small
//! writes of a worker's round of tasks sent together through io_uring, so
//! the replicas and clients they wake are woken once per batch
//! ([`EdgeConfig::batch_sends`]), and, where sends are not batched, a
//! short pause before a busy worker sleeps so that events are handled in
//! batches ([`EdgeConfig::coalesce_wakeups`]); with one worker per CPU,
//! each pinned to its CPU and serving the connections whose packets
//! arrive there ([`EdgeConfig::cpu_locality`]).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use easydeploy_core::ports::TrafficSwitch;
//! use easydeploy_edge::{EdgeConfig, EdgeProxy};
//!
//! let proxy = EdgeProxy::new(EdgeConfig::default());
//! proxy.set_backends("shop", vec!["10.0.0.2:8080".parse().unwrap()]);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:80").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! proxy.serve(listener, shutdown).await;
//! # Ok(())
//! # }
//! ```

mod batch;
mod body;
mod chunked;
mod config;
mod exchange;
mod fields;
#[cfg(test)]
mod generated;
mod h1;
mod headers;
mod metrics;
mod netns;
mod pages;
mod proxy;
mod response;
mod routes;
mod serve;
mod steer;
mod timer;
mod tls;
mod tunnel;
mod upstream;

pub use config::EdgeConfig;
pub use proxy::{EdgeError, EdgeProxy};
pub use routes::AppStats;
pub use serve::COALESCE_WINDOW;
