//! The composition root: configuration, adapters wired behind the engine's
//! ports, the API and the edge proxy on their listeners.

use anyhow::Context;
use easydeploy_api::{AdminToken, ApiState};
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
    let token =
        AdminToken::load_or_create(&data_dir.join("admin.token")).context("cannot create the admin token")?;
    let store = Store::open(&data_dir.join("state.db"))
        .await
        .context("cannot open the state database")?;
    let ca_bundle = match &config.build_ca_bundle {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the build CA bundle {}", path.display()))?,
        ),
        None => None,
    };

    let edge = EdgeProxy::new(EdgeConfig {
        apps_domain: config.apps_domain.clone(),
        ..EdgeConfig::default()
    });
    let backends = match config.runtime.as_str() {
        "aws" => crate::aws::backends(data_dir, &config.apps_domain).await?,
        _ => docker_backends(&config, &edge).await?,
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
    let engine = Engine::new(store, backends, engine_config);
    let load: Arc<dyn easydeploy_core::ports::LoadMetrics> = edge.clone();
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
        token: Arc::new(token),
        apps_domain: config.apps_domain.clone(),
        proxy_port: proxy_addr.port(),
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api_addr}"))
            .trim_end_matches('/')
            .to_owned(),
        load: Some(load),
    };
    let router = easydeploy_api::router(state);
    let api_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let serve = axum::serve(api_listener, router)
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
