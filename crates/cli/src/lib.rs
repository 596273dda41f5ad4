//! The `easydeploy` program: the server (control plane + edge proxy) and the
//! client commands that talk to its API.

pub mod account;
pub mod alerts;
pub mod aws;
pub mod client;
pub mod metrics;
pub mod server;
