//! The composition root: configuration, adapters wired behind the engine's
//! ports, the API and the edge proxy on their listeners.

use anyhow::Context;
use easydeploy_api::{ApiState, GithubOAuth, Quotas, RateLimiter};
use easydeploy_core::ports::Backends;
use easydeploy_core::BaseImages;
use easydeploy_edge::{EdgeConfig, EdgeProxy};
use easydeploy_engine::{Engine, EngineConfig};
use easydeploy_store::{FileArtifacts, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// `easydeploy server` settings; every flag has an `EASYDEPLOY_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Where apps run: `docker` (this machine) or `aws` (ECS; run `easydeploy aws bootstrap` first).
    #[arg(long, env = "EASYDEPLOY_RUNTIME", default_value = "docker", value_parser = ["docker", "aws"])]
    pub runtime: String,
    /// Where state, artifacts, workspaces and the admin token live.
    #[arg(long, env = "EASYDEPLOY_DATA_DIR", default_value = ".easydeploy")]
    pub data_dir: PathBuf,
    /// Address of the API.
    #[arg(long, env = "EASYDEPLOY_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,
    /// Address of the edge proxy that serves the apps.
    #[arg(long, env = "EASYDEPLOY_PROXY_ADDR", default_value = "127.0.0.1:8000")]
    pub proxy_addr: SocketAddr,
    /// Apps are served at `APP.<apps-domain>`.
    #[arg(long, env = "EASYDEPLOY_APPS_DOMAIN", default_value = "localhost")]
    pub apps_domain: String,
    /// Settings of the edge proxy.
    #[command(flatten)]
    pub edge: EdgeArgs,
    /// Deployments run at the same time (default: one per core, at least 2).
    #[arg(long, env = "EASYDEPLOY_WORKERS")]
    pub workers: Option<usize>,
    /// Base image of generated Python Dockerfiles.
    #[arg(
        long,
        env = "EASYDEPLOY_BASE_IMAGE_PYTHON",
        default_value = "python:3.12-slim"
    )]
    pub base_image_python: String,
    /// Base image of generated Node (and frontend) Dockerfiles.
    #[arg(long, env = "EASYDEPLOY_BASE_IMAGE_NODE", default_value = "node:20-slim")]
    pub base_image_node: String,
    /// Base image of generated Java Dockerfiles (JDK + Maven/Gradle).
    #[arg(
        long,
        env = "EASYDEPLOY_BASE_IMAGE_JAVA",
        default_value = "maven:3-eclipse-temurin-17"
    )]
    pub base_image_java: String,
    /// Base image of generated PHP Dockerfiles.
    #[arg(long, env = "EASYDEPLOY_BASE_IMAGE_PHP", default_value = "php:8.3-cli")]
    pub base_image_php: String,
    /// PEM CA bundle every build trusts (pip, npm, maven, composer, curl).
    #[arg(long, env = "EASYDEPLOY_BUILD_CA_BUNDLE")]
    pub build_ca_bundle: Option<PathBuf>,
    /// Seconds a new release may take to answer its health check.
    #[arg(long, env = "EASYDEPLOY_HEALTH_TIMEOUT", default_value_t = 60)]
    pub health_timeout: u64,
    /// Seconds old replicas get to finish in-flight requests.
    #[arg(long, env = "EASYDEPLOY_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout: u64,
    /// Memory limit of each replica, in MiB.
    #[arg(long, env = "EASYDEPLOY_REPLICA_MEMORY_MB", default_value_t = 512)]
    pub replica_memory_mb: i64,
    /// Public URL of the API, for webhook URLs (default `http://<api-addr>`).
    #[arg(long, env = "EASYDEPLOY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds between self-healing passes (replace crashed replicas, remove strays).
    #[arg(long, env = "EASYDEPLOY_RECONCILE_INTERVAL", default_value_t = 5)]
    pub reconcile_interval: u64,
    /// Seconds of low load before the autoscaler removes a replica.
    #[arg(long, env = "EASYDEPLOY_SCALE_IN_DELAY", default_value_t = 60)]
    pub scale_in_delay: u64,
    /// Seconds between evaluations of alert rules.
    #[arg(long, env = "EASYDEPLOY_ALERT_INTERVAL", default_value_t = 5)]
    pub alert_interval: u64,
    /// Email of the administrator account (signed in with `<data-dir>/admin.token`).
    #[arg(long, env = "EASYDEPLOY_ADMIN_EMAIL", default_value = "admin@localhost")]
    pub admin_email: String,
    /// Apps per tenant (a user or a team).
    #[arg(long, env = "EASYDEPLOY_QUOTA_APPS", default_value_t = 25)]
    pub quota_apps: usize,
    /// Replicas per tenant, each app counted at its peak (autoscaling maximum).
    #[arg(long, env = "EASYDEPLOY_QUOTA_REPLICAS", default_value_t = 50)]
    pub quota_replicas: u32,
    /// Memory per tenant in MiB (replicas × the replica memory limit).
    #[arg(long, env = "EASYDEPLOY_QUOTA_MEMORY_MIB", default_value_t = 25_600)]
    pub quota_memory_mib: u64,
    /// Sign-up and sign-in attempts per client address per minute.
    #[arg(long, env = "EASYDEPLOY_SIGN_IN_RATE", default_value_t = 10)]
    pub sign_in_rate: u32,
    /// GitHub's web base URL (GitHub Enterprise: `https://HOST`).
    #[arg(long, env = "EASYDEPLOY_GITHUB_URL", default_value = "https://github.com")]
    pub github_url: String,
    /// GitHub's API base URL (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(
        long,
        env = "EASYDEPLOY_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// Client id of the GitHub OAuth app (turns sign-in with GitHub on).
    #[arg(long, env = "EASYDEPLOY_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    /// Client secret of the GitHub OAuth app.
    #[arg(long, env = "EASYDEPLOY_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,
    /// Seconds between samples of request and resource metrics.
    #[arg(long, env = "EASYDEPLOY_METRICS_INTERVAL", default_value_t = 10)]
    pub metrics_interval: u64,
    /// Settings of `--runtime aws`.
    #[command(flatten)]
    pub aws: crate::aws::AwsServerArgs,
}

/// `easydeploy server` settings of the edge proxy (`--runtime docker`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct EdgeArgs {
    /// How the edge proxy reaches local replicas: `namespace` opens each
    /// connection inside the replica's network namespace (its loopback
    /// path: less kernel work per request; needs root, else falls back) or
    /// `bridge` dials the replica's bridge address from the host.
    #[arg(long, env = "EASYDEPLOY_EDGE_DIAL", default_value = "namespace", value_parser = ["namespace", "bridge"])]
    pub edge_dial: String,
    /// PEM certificate chain: with `--edge-tls-key`, clients that start a
    /// TLS handshake get TLS (HTTP/2 or 1.1 by ALPN) on the edge's listener.
    #[arg(long, env = "EASYDEPLOY_EDGE_TLS_CERT", requires = "edge_tls_key")]
    pub edge_tls_cert: Option<PathBuf>,
    /// PEM private key of `--edge-tls-cert`.
    #[arg(long, env = "EASYDEPLOY_EDGE_TLS_KEY", requires = "edge_tls_cert")]
    pub edge_tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers (defeats slowloris;
    /// also how long an HTTP/1 keep-alive connection may sit idle).
    #[arg(long, env = "EASYDEPLOY_EDGE_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub edge_header_timeout: u64,
    /// Seconds a WebSocket tunnel or HTTP/2 connection may stay silent.
    #[arg(long, env = "EASYDEPLOY_EDGE_IDLE_TIMEOUT", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub edge_idle_timeout: u64,
    /// Seconds to open a connection to a replica.
    #[arg(long, env = "EASYDEPLOY_EDGE_CONNECT_TIMEOUT", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub edge_connect_timeout: u64,
    /// Seconds a replica has to send its response headers (504 past them).
    #[arg(long, env = "EASYDEPLOY_EDGE_UPSTREAM_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub edge_upstream_timeout: u64,
    /// Most idle keep-alive connections the edge keeps to each replica.
    #[arg(long, env = "EASYDEPLOY_EDGE_POOL_MAX_IDLE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub edge_pool_max_idle: u64,
    /// Seconds an idle keep-alive connection to a replica is kept.
    #[arg(long, env = "EASYDEPLOY_EDGE_POOL_IDLE_TIMEOUT", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..))]
    pub edge_pool_idle_timeout: u64,
    /// Largest request body in MiB (413 past it).
    #[arg(long, env = "EASYDEPLOY_EDGE_MAX_BODY_MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub edge_max_body_mib: u64,
    /// Under heavy load (32+ requests of a worker waiting on replicas), a
    /// worker whose sends are not batched (`--edge-sends each`, or no
    /// io_uring) first lets work gather for 200 µs before it sleeps
    /// (`coalesce`) or wakes for every event (`each`).
    #[arg(long, env = "EASYDEPLOY_EDGE_WAKEUPS", default_value = "coalesce", value_parser = ["coalesce", "each"])]
    pub edge_wakeups: String,
    /// Request heads and small responses a worker sends in one round go
    /// out together through io_uring (`batch`) or one system call each
    /// (`each`).
    #[arg(long, env = "EASYDEPLOY_EDGE_SENDS", default_value = "batch", value_parser = ["batch", "each"])]
    pub edge_sends: String,
    /// Edge worker threads (0: one per core). Fewer workers than cores
    /// trade requests per second for a shorter latency tail where the apps
    /// share the cores (measured with one worker on two cores; see "Edge
    /// proxy benchmark" in the README and docs/edge-proxy-benchmark.md).
    #[arg(long, env = "EASYDEPLOY_EDGE_WORKERS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub edge_workers: u64,
    /// With one edge worker per CPU: each worker pinned to its CPU, serving
    /// the connections whose packets arrive there, so a client and its
    /// worker wake each other on one core (`pinned`); or workers free to
    /// run on any CPU, connections spread by hash (`free`).
    #[arg(long, env = "EASYDEPLOY_EDGE_CPUS", default_value = "pinned", value_parser = ["pinned", "free"])]
    pub edge_cpus: String,
}

impl Default for EdgeArgs {
    fn default() -> Self {
        Self {
            edge_dial: "namespace".into(),
            edge_tls_cert: None,
            edge_tls_key: None,
            edge_header_timeout: 10,
            edge_idle_timeout: 300,
            edge_connect_timeout: 2,
            edge_upstream_timeout: 60,
            edge_pool_max_idle: 1024,
            edge_pool_idle_timeout: 90,
            edge_max_body_mib: 1024,
            edge_wakeups: "coalesce".into(),
            edge_sends: "batch".into(),
            edge_workers: 0,
            edge_cpus: "pinned".into(),
        }
    }
}

impl EdgeArgs {
    /// The edge proxy's settings, serving apps at `APP.<apps_domain>`.
    pub fn config(&self, apps_domain: &str) -> EdgeConfig {
        EdgeConfig {
            apps_domain: apps_domain.to_owned(),
            dial_in_namespace: self.edge_dial != "bridge",
            tls_cert: self.edge_tls_cert.clone(),
            tls_key: self.edge_tls_key.clone(),
            header_read_timeout: Duration::from_secs(self.edge_header_timeout),
            client_idle_timeout: Duration::from_secs(self.edge_idle_timeout),
            connect_timeout: Duration::from_secs(self.edge_connect_timeout),
            upstream_timeout: Duration::from_secs(self.edge_upstream_timeout),
            max_body_bytes: self.edge_max_body_mib << 20,
            pool_max_idle_per_backend: usize::try_from(self.edge_pool_max_idle).unwrap_or(usize::MAX),
            idle_timeout: Duration::from_secs(self.edge_pool_idle_timeout),
            coalesce_wakeups: self.edge_wakeups != "each",
            batch_sends: self.edge_sends != "each",
            threads: usize::try_from(self.edge_workers).unwrap_or(0),
            cpu_locality: self.edge_cpus != "free",
            ..EdgeConfig::default()
        }
    }
}

/// A started server.
pub struct RunningServer {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Where the edge proxy listens.
    pub proxy_addr: SocketAddr,
    /// Cancel to stop.
    pub shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight work finish (bounded), leaves apps running.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

/// Starts the server; returns once it is ready (recovered and listening).
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let admin_digest = easydeploy_api::load_or_create_admin_token(&data_dir.join("admin.token"))
        .context("cannot create the admin token")?;
    let store = Store::open(&data_dir.join("state.db"))
        .await
        .context("cannot open the state database")?;
    let admin = store
        .ensure_admin(&config.admin_email)
        .await
        .context("cannot create the administrator account")?;
    store
        .add_token(
            &admin.id,
            easydeploy_api::ADMIN_TOKEN_ID,
            "admin.token",
            &admin_digest,
        )
        .await
        .context("cannot register the admin token")?;
    let ca_bundle = match &config.build_ca_bundle {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the build CA bundle {}", path.display()))?,
        ),
        None => None,
    };

    let edge =
        EdgeProxy::try_new(config.edge.config(&config.apps_domain)).context("cannot start the edge proxy")?;
    let (backends, aws_load) = match config.runtime.as_str() {
        "aws" => {
            let (backends, load) = crate::aws::backends(data_dir, &config.apps_domain, &config.aws).await?;
            (backends, Some(load))
        }
        _ => (docker_backends(&config, &edge).await?, None),
    };
    let mut engine_config = EngineConfig::new(data_dir);
    if let Some(workers) = config.workers {
        engine_config.workers = workers.max(1);
    }
    engine_config.base_images = BaseImages {
        python: config.base_image_python.clone(),
        node: config.base_image_node.clone(),
        java: config.base_image_java.clone(),
        php: config.base_image_php.clone(),
    };
    engine_config.ca_bundle = ca_bundle;
    engine_config.health.grace = Duration::from_secs(config.health_timeout.max(1));
    engine_config.limits.memory_bytes = config.replica_memory_mb.max(16) * 1024 * 1024;
    engine_config.reconcile_interval = Duration::from_secs(config.reconcile_interval.max(1));
    engine_config.scale_in_delay = Duration::from_secs(config.scale_in_delay);
    engine_config.alert_interval = Duration::from_secs(config.alert_interval.max(1));
    engine_config.metrics_interval = Duration::from_secs(config.metrics_interval.max(1));
    let engine = Engine::new(store, backends, engine_config);
    // On AWS the ALB serves the apps: their traffic comes from CloudWatch.
    let load: Arc<dyn easydeploy_core::ports::LoadMetrics> = match aws_load {
        Some(load) => load,
        None => edge.clone(),
    };
    engine.set_load_metrics(Arc::clone(&load));

    let proxy_listener = tokio::net::TcpListener::bind(config.proxy_addr)
        .await
        .with_context(|| format!("cannot listen on the proxy address {}", config.proxy_addr))?;
    let api_listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("cannot listen on the API address {}", config.api_addr))?;
    let (api_addr, proxy_addr) = (api_listener.local_addr()?, proxy_listener.local_addr()?);

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(edge.serve(proxy_listener, shutdown.clone()));
    engine
        .recover()
        .await
        .context("recovering after the last run failed")?;
    let mut workers = engine.start(shutdown.clone());
    tasks.spawn(async move { while workers.join_next().await.is_some() {} });

    let state = ApiState {
        engine,
        apps_domain: config.apps_domain.clone(),
        proxy_port: proxy_addr.port(),
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api_addr}"))
            .trim_end_matches('/')
            .to_owned(),
        load: Some(load),
        quotas: Quotas {
            max_apps: config.quota_apps,
            max_replicas: config.quota_replicas,
            max_memory_mib: config.quota_memory_mib,
            replica_memory_mib: config.replica_memory_mb.max(16) as u64,
        },
        github: github_oauth(&config)?,
        sign_in_limit: Arc::new(RateLimiter::new(
            config.sign_in_rate.max(1),
            Duration::from_secs(60),
        )),
    };
    if let Some(github) = &state.github {
        let host = easydeploy_api::GithubSourceHost::new(
            state.engine.store().clone(),
            &github.api_url,
            &state.app_url("{app}"),
        )
        .map_err(|e| anyhow::anyhow!("EASYDEPLOY_GITHUB_API_URL: {e}"))?;
        state.engine.set_source_host(Arc::new(host));
    }
    let router = easydeploy_api::router(state);
    let api_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let serve = axum::serve(
            api_listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { api_shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });
    tracing::info!(%api_addr, %proxy_addr, data_dir = %data_dir.display(), "easydeploy server ready");
    Ok(RunningServer {
        api_addr,
        proxy_addr,
        shutdown,
        tasks,
    })
}

/// Sign-in with GitHub when a client id and secret are configured.
fn github_oauth(config: &ServerConfig) -> anyhow::Result<Option<Arc<GithubOAuth>>> {
    match (&config.github_client_id, &config.github_client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok(Some(Arc::new(GithubOAuth {
            web_url: config.github_url.trim_end_matches('/').to_owned(),
            api_url: config.github_api_url.trim_end_matches('/').to_owned(),
            client_id: id.clone(),
            client_secret: secret.clone(),
        }))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "set both EASYDEPLOY_GITHUB_CLIENT_ID and EASYDEPLOY_GITHUB_CLIENT_SECRET (or neither)"
        ),
    }
}

/// This data dir's instance id (created once), labelling its containers.
fn instance_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("instance.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_owned());
        }
    }
    let id = format!("{:016x}", rand_u64());
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The embedded defaults: Docker engine, edge proxy, files under the data dir.
async fn docker_backends(config: &ServerConfig, edge: &Arc<EdgeProxy>) -> anyhow::Result<Backends> {
    let docker = easydeploy_docker::connect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let data_dir = &config.data_dir;
    let runtime = easydeploy_docker::DockerRuntime::new(
        docker.clone(),
        edge.clone(),
        Duration::from_secs(config.drain_timeout),
    )
    .with_instance(instance_id(data_dir)?);
    Ok(Backends {
        tenants: Arc::new(easydeploy_docker::DockerTenants::new(docker.clone())),
        source: Arc::new(easydeploy_git::GitFetcher::new()),
        builder: Arc::new(easydeploy_docker::DockerBuilder::new(docker.clone())),
        registry: Arc::new(easydeploy_docker::DockerRegistry::new(docker)),
        runtime: Arc::new(runtime),
        artifacts: Arc::new(FileArtifacts::new(data_dir.join("artifacts"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        edge: EdgeArgs,
    }

    fn parse(args: &[&str]) -> Result<EdgeArgs, clap::Error> {
        Flags::try_parse_from(std::iter::once("server").chain(args.iter().copied())).map(|f| f.edge)
    }

    #[test]
    fn edge_flags_default_as_documented_and_are_checked() {
        assert_eq!(parse(&[]).unwrap(), EdgeArgs::default());
        let config = parse(&[
            "--edge-max-body-mib",
            "2",
            "--edge-header-timeout",
            "3",
            "--edge-dial",
            "bridge",
            "--edge-pool-max-idle",
            "8",
            "--edge-pool-idle-timeout",
            "5",
            "--edge-wakeups",
            "each",
            "--edge-sends",
            "each",
            "--edge-workers",
            "1",
            "--edge-cpus",
            "free",
        ])
        .unwrap()
        .config("apps.test");
        assert_eq!(config.max_body_bytes, 2 << 20);
        assert_eq!(config.pool_max_idle_per_backend, 8);
        assert_eq!(config.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.header_read_timeout, Duration::from_secs(3));
        assert!(!config.dial_in_namespace);
        assert!(!config.coalesce_wakeups);
        assert!(!config.batch_sends);
        assert_eq!(config.threads, 1);
        assert!(!config.cpu_locality);
        let defaults = parse(&[]).unwrap().config("x");
        assert!(defaults.coalesce_wakeups && defaults.batch_sends && defaults.cpu_locality);
        assert_eq!(defaults.threads, 0, "one worker per core");
        assert_eq!(config.apps_domain, "apps.test");
        for bad in [
            &["--edge-header-timeout", "0"][..],
            &["--edge-max-body-mib", "0"],
            &["--edge-pool-max-idle", "0"],
            &["--edge-dial", "tunnel"],
            &["--edge-wakeups", "never"],
            &["--edge-sends", "some"],
            &["--edge-cpus", "bound"],
            &["--edge-workers", "-1"],
            &["--edge-workers", "many"],
            &["--edge-tls-cert", "cert.pem"],
        ] {
            let error = parse(bad).unwrap_err();
            assert_ne!(error.kind(), clap::error::ErrorKind::DisplayHelp, "{bad:?}");
        }
    }
}
