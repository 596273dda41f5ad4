use std::time::Duration;

/// Settings of the edge proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Apps are served at `<app>.<apps_domain>` (default `localhost`).
    pub apps_domain: String,
    /// Limit for opening a TCP connection to a backend (default 2 s); also
    /// used by the background re-probe of ejected backends.
    pub connect_timeout: Duration,
    /// Limit for a backend to send its response headers (default 60 s);
    /// past it the client gets a 504.
    pub upstream_timeout: Duration,
    /// Limit for a client to send a request's headers (default 10 s).
    pub header_read_timeout: Duration,
    /// How long an idle pooled connection to a backend is kept (default 90 s).
    pub idle_timeout: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            apps_domain: "localhost".to_owned(),
            connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
        }
    }
}
