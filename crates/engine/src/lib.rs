//! The deploy engine: a bounded pool of workers that claim queued
//! deployments from the store and run the pipeline through the backends,
//! plus recovery after a restart and app destruction.

mod alerts;
mod autoscale;
mod heal;
mod log;
mod metrics;
mod ops;
mod runner;

pub use log::{DeploymentLog, LOG_ARTIFACT};

use easydeploy_core::ports::{Backends, HealthCheck, Limits, ReleaseSpec, Tenant};
use easydeploy_core::{detect, AppName, BaseImages, Branch, Detection, Framework, GitSource, RootDir};
use easydeploy_store::{Deployment, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Deployments run at the same time (of different apps).
    pub workers: usize,
    /// Where checkouts live (`<data-dir>/workspaces`).
    pub workspaces: PathBuf,
    /// Base images of generated Dockerfiles.
    pub base_images: BaseImages,
    /// CA bundle every build trusts.
    pub ca_bundle: Option<Vec<u8>>,
    /// Health check defaults.
    pub health: HealthCheck,
    /// Replica limits.
    pub limits: Limits,
    /// Images of this many recent releases are kept per app.
    pub keep_images: usize,
    /// How often live releases are compared with what runs (self-healing).
    pub reconcile_interval: Duration,
    /// How often the autoscaler looks at request rates.
    pub autoscale_interval: Duration,
    /// Window over which the request rate is averaged.
    pub autoscale_window: Duration,
    /// Low load must last this long before replicas are removed.
    pub scale_in_delay: Duration,
    /// How often alert rules are evaluated.
    pub alert_interval: Duration,
    /// How often request and resource metrics are sampled and stored.
    pub metrics_interval: Duration,
}

impl EngineConfig {
    /// Defaults for a data dir: one worker per core (at least two).
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()).max(2),
            workspaces: data_dir.join("workspaces"),
            base_images: BaseImages::default(),
            ca_bundle: None,
            health: HealthCheck::default(),
            limits: Limits::default(),
            keep_images: 5,
            reconcile_interval: Duration::from_secs(5),
            autoscale_interval: Duration::from_secs(1),
            autoscale_window: Duration::from_secs(5),
            scale_in_delay: Duration::from_secs(60),
            alert_interval: Duration::from_secs(5),
            metrics_interval: Duration::from_secs(10),
        }
    }
}

/// An engine failure outside a deployment (those are recorded on the deployment).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] easydeploy_store::StoreError),
    /// A backend failed.
    #[error(transparent)]
    Backend(#[from] easydeploy_core::ports::BackendError),
    /// Detection refused the checkout.
    #[error("{0}")]
    Detect(#[from] easydeploy_core::framework::DetectError),
}

/// The deploy engine.
pub struct Engine {
    store: Store,
    backends: Backends,
    config: EngineConfig,
    wake: Notify,
    owner: String,
    /// One release, scale or heal at a time per app.
    app_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Request counts for the autoscaler.
    load: std::sync::OnceLock<Arc<dyn easydeploy_core::ports::LoadMetrics>>,
    /// The git host of connected apps (credentials, commit statuses).
    source_host: std::sync::OnceLock<Arc<dyn easydeploy_core::ports::SourceHost>>,
}

/// Lease of a claimed deployment; renewed while it runs.
const LEASE_MS: i64 = 60_000;

impl Engine {
    /// Creates the engine; call [`Engine::recover`] then [`Engine::start`].
    pub fn new(store: Store, backends: Backends, config: EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            backends,
            config,
            wake: Notify::new(),
            owner: format!("engine-{}", std::process::id()),
            app_locks: Default::default(),
            load: std::sync::OnceLock::new(),
            source_host: std::sync::OnceLock::new(),
        })
    }

    /// Feeds the autoscaler with request counts (set once, at wiring).
    pub fn set_load_metrics(&self, load: Arc<dyn easydeploy_core::ports::LoadMetrics>) {
        let _ = self.load.set(load);
    }

    /// Gives fetch credentials and takes commit statuses of apps connected
    /// to a git host (set once, at wiring).
    pub fn set_source_host(&self, host: Arc<dyn easydeploy_core::ports::SourceHost>) {
        let _ = self.source_host.set(host);
    }

    /// The git host of connected apps, when one is wired.
    pub fn source_host(&self) -> Option<&Arc<dyn easydeploy_core::ports::SourceHost>> {
        self.source_host.get()
    }

    /// Credentials to fetch `source` for `app`, when its git host gives any.
    pub async fn source_credentials(
        &self,
        app: &AppName,
        source: &GitSource,
    ) -> Result<Option<easydeploy_core::ports::SourceCredentials>, EngineError> {
        match self.source_host() {
            Some(host) => Ok(host.credentials(app, source).await?),
            None => Ok(None),
        }
    }

    /// The lock serializing what changes an app's running replicas.
    pub(crate) fn app_lock(&self, app: &AppName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.app_locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(app.to_string()).or_default())
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The backends the engine drives.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// After a start: fails deployments a previous process left in flight,
    /// removes replicas that are not live, and makes every live release serve.
    pub async fn recover(&self) -> Result<(), EngineError> {
        let interrupted = self.store.fail_interrupted().await?;
        if !interrupted.is_empty() {
            tracing::warn!(
                count = interrupted.len(),
                "failed deployments interrupted by a restart"
            );
        }
        let live = self.store.live_deployments().await?;
        let keep = self.store.active_deployment_ids().await?;
        let removed = self.backends.runtime.remove_orphans(&keep).await?;
        if removed > 0 {
            tracing::info!(removed, "removed replicas that were not live");
        }
        for deployment in &live {
            let Some(spec) = self.release_spec(deployment).await? else {
                continue;
            };
            match self.backends.runtime.adopt(&spec).await {
                Ok(replicas) => {
                    tracing::info!(app = %deployment.app, replicas = replicas.len(), "live release serving")
                }
                Err(e) => {
                    tracing::error!(app = %deployment.app, error = %e, "could not restore the live release")
                }
            }
        }
        Ok(())
    }

    /// Starts the worker pool, the reconciler, the autoscaler, the alert
    /// evaluator and the metrics sampler; they stop
    /// when `shutdown` is cancelled.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinSet<()> {
        let mut workers = tokio::task::JoinSet::new();
        for n in 0..self.config.workers {
            let engine = Arc::clone(self);
            let shutdown = shutdown.clone();
            workers.spawn(async move { engine.work(n, shutdown).await });
        }
        workers.spawn(heal::run(Arc::clone(self), shutdown.clone()));
        workers.spawn(alerts::run(Arc::clone(self), shutdown.clone()));
        workers.spawn(metrics::run(Arc::clone(self), shutdown.clone()));
        workers.spawn(autoscale::run(Arc::clone(self), shutdown));
        workers
    }

    /// Tells idle workers that a deployment was queued.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    async fn work(self: Arc<Self>, n: usize, shutdown: CancellationToken) {
        let owner = format!("{}-w{n}", self.owner);
        loop {
            match self.store.claim(&owner, LEASE_MS).await {
                Ok(Some(deployment)) => {
                    runner::run(&self, &owner, deployment).await;
                    // Another app's work may have waited for this one.
                    self.wake();
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "claiming a deployment failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// The release a live deployment runs, if it got as far as an image.
    pub async fn release_spec(&self, deployment: &Deployment) -> Result<Option<ReleaseSpec>, EngineError> {
        let Some(image) = deployment
            .image
            .clone()
            .or_else(|| deployment.reuse_image.clone())
        else {
            return Ok(None);
        };
        let app = self.store.app(&deployment.app).await?;
        let port = match (deployment.port, deployment.settings.port) {
            (Some(port), _) => easydeploy_core::Port::new(port),
            (None, Some(port)) => port,
            (None, None) => {
                let detected = deployment
                    .framework
                    .as_deref()
                    .and_then(|f| Framework::parse(f).ok());
                easydeploy_core::Port::new(detected.map_or(8080, |f| f.defaults().port))
            }
        };
        let mut spec = self.spec(&app.tenant, deployment, image, port);
        // Scaling changes the app's replica count after the deployment was made.
        spec.replicas = app.settings.replicas.get();
        spec.autoscale = app.settings.autoscale;
        Ok(Some(spec))
    }

    fn spec(
        &self,
        tenant: &str,
        deployment: &Deployment,
        image: String,
        port: easydeploy_core::Port,
    ) -> ReleaseSpec {
        let mut health = self.config.health.clone();
        health.path = deployment.settings.health_path.clone();
        let s = &deployment.settings;
        if let Some(grace) = s.health_grace_secs {
            health.grace = Duration::from_secs(grace.max(1));
        }
        if let Some(ms) = s.health_interval_ms {
            health.interval = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = s.health_timeout_ms {
            health.timeout = Duration::from_millis(ms.max(10));
        }
        if let Some(n) = s.healthy_threshold {
            health.healthy_threshold = n.max(1);
        }
        if let Some(n) = s.unhealthy_threshold {
            health.unhealthy_threshold = n.max(1);
        }
        ReleaseSpec {
            tenant: Tenant {
                id: tenant.to_owned(),
            },
            app: deployment.app.clone(),
            deployment: deployment.id.clone(),
            image,
            port,
            env: deployment.settings.env.clone(),
            replicas: deployment.settings.replicas.get(),
            autoscale: deployment.settings.autoscale,
            health,
            limits: self.config.limits,
        }
    }

    /// Checks a repository out into a temporary folder and detects its
    /// framework, without deploying anything.
    pub async fn analyze(
        &self,
        source: &GitSource,
        branch: &Branch,
        root: &RootDir,
        framework: Option<Framework>,
    ) -> Result<(String, Detection), EngineError> {
        tokio::fs::create_dir_all(&self.config.workspaces)
            .await
            .map_err(|e| {
                easydeploy_core::ports::BackendError::transient(format!(
                    "cannot create the workspaces folder: {e}"
                ))
            })?;
        let tmp = self.config.workspaces.join(format!(".analyze-{}", uuid_like()));
        let result = async {
            let checkout = self.backends.source.fetch(source, branch, None, &tmp).await?;
            let root = root.clone();
            let path = checkout.path.clone();
            let detection = tokio::task::spawn_blocking(move || detect(&path, &root, framework))
                .await
                .map_err(|e| easydeploy_core::ports::BackendError::transient(e.to_string()))??;
            Ok((checkout.commit, detection))
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        result
    }

    /// Removes an app entirely: its record and history, replicas, images,
    /// route, artifacts and workspace.
    pub async fn destroy(&self, app: &AppName) -> Result<(), EngineError> {
        // Wait for a release in progress to finish launching or promoting,
        // so nothing it starts outlives the app.
        let lock = self.app_lock(app);
        let _guard = lock.lock().await;
        let deployments = self.store.delete_app(app).await?;
        if let Err(e) = self.backends.runtime.destroy(app).await {
            // The app is gone from the store: the reconciler removes what is left.
            tracing::warn!(app = %app, error = %e, "replicas not removed yet; the reconciler will");
        }
        self.backends.artifacts.remove(&deployments).await?;
        let workspace = self.workspace(app);
        if let Err(e) = tokio::fs::remove_dir_all(&workspace).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(app = %app, error = %e, "could not remove the workspace");
            }
        }
        Ok(())
    }

    fn workspace(&self, app: &AppName) -> PathBuf {
        self.config.workspaces.join(app.as_str())
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", std::process::id())
}
