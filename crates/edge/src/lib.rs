//! Easy Deploy edge proxy.
//!
//! Routes `<app>.<apps-domain>` requests to the app's replicas (round robin
//! over healthy backends), streams bodies both ways, ejects backends that
//! refuse connections and re-probes them in the background, and counts
//! requests per app. The route table is swapped atomically
//! ([`arc_swap::ArcSwap`]), so the request path takes no lock.
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

mod body;
mod config;
mod headers;
mod pages;
mod proxy;
mod routes;

pub use config::EdgeConfig;
pub use proxy::EdgeProxy;
pub use routes::AppStats;
