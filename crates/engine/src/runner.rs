//! Runs one claimed deployment through the pipeline steps. Every step is
//! idempotent; transient backend failures are retried with backoff; any
//! failure is recorded with its step and a reason, and leaves the previous
//! release serving.

use crate::log::DeploymentLog;
use crate::{Engine, LEASE_MS};
use easydeploy_core::ports::{BackendError, BuildRequest, CommitState, CommitStatus, LogSink, Replica};
use easydeploy_core::{detect, pipeline, DeploymentState as S, PipelineOptions};
use easydeploy_store::{Deployment, DeploymentFacts, StoreError};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Why the run stopped early.
enum Stop {
    /// The step failed; record it.
    Failed(String),
    /// The deployment is no longer ours (cancelled, app destroyed).
    Gone,
}

impl From<BackendError> for Stop {
    fn from(e: BackendError) -> Self {
        Stop::Failed(e.message)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Stale(..) | StoreError::NotFound(_) => Stop::Gone,
            other => Stop::Failed(format!("the platform's database failed: {other}")),
        }
    }
}

/// Runs a claimed deployment to live, failed or gone.
pub(crate) async fn run(engine: &Arc<Engine>, owner: &str, deployment: Deployment) {
    let span = tracing::info_span!("deployment", app = %deployment.app, deployment_id = %deployment.id);
    async {
        let log = DeploymentLog::start(Arc::clone(&engine.backends.artifacts), deployment.id.clone());
        let heartbeat = {
            let (engine, id, owner) = (Arc::clone(engine), deployment.id.clone(), owner.to_owned());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 4)).await;
                    let _ = engine.store.heartbeat(&id, &owner, LEASE_MS).await;
                }
            })
        };
        let mut run = Run {
            engine,
            owner,
            deployment: &deployment,
            log: &log,
            replicas: Vec::new(),
            started: Instant::now(),
            progress: std::sync::Mutex::new((S::PreparingTenant, None)),
        };
        let outcome = run.pipeline().await;
        heartbeat.abort();
        // The commit status is posted once the outcome is recorded.
        let (step, reported) = run.progress();
        let status = reported.map(|commit| {
            let (state, description) = match &outcome {
                Ok(()) => (
                    CommitState::Success,
                    format!("live after {:.0} s", run.started.elapsed().as_secs_f64()),
                ),
                Err(Stop::Failed(reason)) => {
                    (CommitState::Failure, format!("{} failed: {reason}", step.label()))
                }
                Err(Stop::Gone) => (CommitState::Failure, "the deployment was cancelled".to_owned()),
            };
            (commit, state, description)
        });
        match outcome {
            Ok(()) => {
                log.line(&format!(
                    "==> live after {:.1} s",
                    run.started.elapsed().as_secs_f64()
                ));
                tracing::info!(
                    elapsed_ms = run.started.elapsed().as_millis() as u64,
                    "deployment live"
                );
            }
            Err(stop) => {
                if !run.replicas.is_empty() {
                    if let Err(e) = engine.backends.runtime.discard(&run.replicas).await {
                        tracing::warn!(error = %e, "could not remove the replicas of a failed deployment");
                    }
                }
                match stop {
                    Stop::Failed(reason) => {
                        log.line(&format!("==> failed: {reason}"));
                        tracing::warn!(%reason, "deployment failed");
                        if let Err(e) = engine.store.fail(&deployment.id, owner, &reason).await {
                            tracing::warn!(error = %e, "could not record the failure");
                        }
                    }
                    Stop::Gone => {
                        log.line("==> stopped: the deployment was cancelled or its app removed");
                        tracing::info!("deployment stopped: cancelled or app removed");
                        if engine.store.app(&deployment.app).await.is_err() {
                            let _ = engine.backends.runtime.destroy(&deployment.app).await;
                        }
                    }
                }
            }
        }
        if let Some((commit, state, description)) = status {
            run.report(&commit, state, description).await;
        }
        log.finish().await;
    }
    .instrument(span)
    .await
}

struct Run<'a> {
    engine: &'a Arc<Engine>,
    owner: &'a str,
    deployment: &'a Deployment,
    log: &'a DeploymentLog,
    replicas: Vec<Replica>,
    started: Instant,
    /// The step under way and the commit whose status was reported pending.
    progress: std::sync::Mutex<(S, Option<String>)>,
}

/// Retries transient failures: 3 attempts, 1 s then 2 s apart.
async fn retry<T, F, Fut>(log: &DeploymentLog, what: &str, mut call: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let mut delay = Duration::from_secs(1);
    for attempt in 1.. {
        match call().await {
            Err(e) if e.retryable && attempt < 3 => {
                log.line(&format!(
                    "    {what} failed ({e}); retrying in {} s",
                    delay.as_secs()
                ));
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

/// GitHub's limit on a status description.
const STATUS_DESCRIPTION_CHARS: usize = 140;

impl Run<'_> {
    fn progress(&self) -> (S, Option<String>) {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reports the deployment on `commit` to the app's git host, if it has
    /// one; a failure to report is logged and never fails the deployment.
    async fn report(&self, commit: &str, state: CommitState, description: String) {
        let Some(host) = self.engine.source_host() else {
            return;
        };
        let description = match description.char_indices().nth(STATUS_DESCRIPTION_CHARS - 1) {
            Some((cut, _)) => format!("{}…", &description[..cut]),
            None => description,
        };
        let status = CommitStatus { state, description };
        if let Err(e) = host.commit_status(&self.deployment.app, commit, &status).await {
            tracing::warn!(error = %e, "could not post the commit status");
            self.log
                .line(&format!("    warning: could not post the commit status: {e}"));
        }
    }

    /// Reports `pending` on `commit`, once per deployment.
    async fn report_pending(&self, commit: &str) {
        {
            let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            if progress.1.is_some() {
                return;
            }
            progress.1 = Some(commit.to_owned());
        }
        self.report(commit, CommitState::Pending, "deploying".into())
            .await;
    }

    async fn step(&self, state: S, message: Option<&str>) -> Result<Instant, Stop> {
        self.engine
            .store
            .advance(&self.deployment.id, self.owner, state, message)
            .await?;
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).0 = state;
        self.log.line(&format!("==> {}", state.label()));
        Ok(Instant::now())
    }

    fn done(&self, since: Instant, what: &str) {
        self.log
            .line(&format!("    {what} ({} ms)", since.elapsed().as_millis()));
    }

    async fn pipeline(&mut self) -> Result<(), Stop> {
        let engine = self.engine;
        let backends = &engine.backends;
        let d = self.deployment;
        let app = engine.store.app(&d.app).await?;
        let log = self.log;

        if let Some(commit) = d.commit.as_deref().filter(|c| is_full_sha(c)) {
            self.report_pending(commit).await;
        }

        // preparing_tenant (entered by the claim)
        log.line("==> preparing tenant");
        let t = Instant::now();
        let tenant = easydeploy_core::ports::Tenant {
            id: app.tenant.clone(),
        };
        let handle = retry(log, "preparing the tenant", || backends.tenants.ensure(&tenant)).await?;
        self.done(t, &format!("tenant {} ready ({})", tenant.id, handle.resource));

        let (reference, port) = match (&d.reuse_image, d.port) {
            (Some(image), Some(port)) => {
                self.skip_build(image, port).await?;
                (image.clone(), easydeploy_core::Port::new(port))
            }
            _ => self.build(&tenant).await?,
        };

        // Releasing changes what serves the app: one release (or scale) at a time.
        let lock = engine.app_lock(&d.app);
        let _guard = lock.lock().await;
        let t = self.step(S::Releasing, None).await?;
        let current = engine.store.app(&d.app).await?;
        let mut spec = engine.spec(&app.tenant, d, reference, port);
        spec.replicas = current.settings.replicas.get();
        self.replicas = backends.runtime.launch(&spec).await?;
        self.done(
            t,
            &format!("started {} replica(s) on port {}", self.replicas.len(), spec.port),
        );

        let t = self.step(S::Verifying, None).await?;
        backends.runtime.verify(&spec, &self.replicas).await?;
        self.done(t, "every replica answers its health check");

        engine.store.go_live(&d.id, self.owner).await?;
        let replicas = std::mem::take(&mut self.replicas);
        if let Err(e) = backends.runtime.promote(&spec, &replicas).await {
            tracing::warn!(error = %e, "switching traffic or stopping old replicas failed");
            log.line(&format!("    warning: {e}"));
        }
        self.prune_images(&spec.image).await;
        Ok(())
    }

    /// Steps that skip building: the release reuses an existing image.
    async fn skip_build(&self, image: &str, port: u16) -> Result<(), Stop> {
        let why = format!("skipped: releasing the existing image {image}");
        for step in [
            S::FetchingSource,
            S::Detecting,
            S::GeneratingPipeline,
            S::Building,
            S::Pushing,
        ] {
            self.step(step, Some(&why)).await?;
        }
        let facts = DeploymentFacts {
            image: Some(image.to_owned()),
            port: Some(port),
            ..Default::default()
        };
        self.engine.store.record(&self.deployment.id, &facts).await?;
        self.log.line(&format!("    {why}"));
        Ok(())
    }

    /// Fetching the source through pushing the image; returns the image
    /// reference and the port it listens on.
    async fn build(
        &mut self,
        tenant: &easydeploy_core::ports::Tenant,
    ) -> Result<(String, easydeploy_core::Port), Stop> {
        let engine = self.engine;
        let backends = &engine.backends;
        let d = self.deployment;
        let settings = &d.settings;
        let log = self.log;
        let t = self.step(S::FetchingSource, None).await?;
        let workspace = engine.workspace(&d.app);
        let credentials = match engine.source_host() {
            Some(host) => host.credentials(&d.app, &settings.source).await?,
            None => None,
        };
        let checkout = retry(log, "fetching the source", || async {
            remove_dir(&workspace).await?;
            backends
                .source
                .fetch_with(
                    &settings.source,
                    &settings.branch,
                    d.commit.as_deref(),
                    &workspace,
                    credentials.as_ref(),
                )
                .await
        })
        .await?;
        self.report_pending(&checkout.commit).await;
        engine
            .store
            .record(
                &d.id,
                &DeploymentFacts {
                    commit: Some((checkout.commit.clone(), checkout.summary.clone())),
                    ..Default::default()
                },
            )
            .await?;
        self.done(
            t,
            &format!(
                "{} @ {} ({})",
                settings.branch,
                short(&checkout.commit),
                checkout.summary
            ),
        );

        let t = self.step(S::Detecting, None).await?;
        let (path, root, forced) = (checkout.path.clone(), settings.root.clone(), settings.framework);
        let detection = tokio::task::spawn_blocking(move || detect(&path, &root, forced))
            .await
            .map_err(|e| Stop::Failed(format!("detection crashed: {e}")))?
            .map_err(|e| Stop::Failed(e.to_string()))?;
        engine
            .store
            .record(
                &d.id,
                &DeploymentFacts {
                    framework: Some((detection.framework.id().to_owned(), detection.evidence.clone())),
                    ..Default::default()
                },
            )
            .await?;
        self.done(
            t,
            &format!("detected {} ({})", detection.framework, detection.evidence),
        );

        let t = self.step(S::GeneratingPipeline, None).await?;
        let repository = retry(log, "preparing the image repository", || {
            backends.registry.ensure_repository(&d.app)
        })
        .await?;
        let options = PipelineOptions {
            base_images: engine.config.base_images.clone(),
            ca_bundle: engine.config.ca_bundle.clone(),
            port: settings.port,
            build_command: settings.build_command.clone(),
            run_command: settings.run_command.clone(),
            repository: repository.clone(),
        };
        let files = pipeline::generate(&detection, &options);
        let artifacts = &backends.artifacts;
        artifacts
            .put(&d.id, "Dockerfile", files.dockerfile.as_bytes())
            .await?;
        artifacts
            .put(&d.id, ".dockerignore", files.dockerignore.as_bytes())
            .await?;
        artifacts
            .put(&d.id, "buildspec.yml", files.buildspec.as_bytes())
            .await?;
        let detection_json = serde_json::to_vec_pretty(&detection).unwrap_or_default();
        artifacts.put(&d.id, "detection.json", &detection_json).await?;
        self.done(
            t,
            if files.own_dockerfile {
                "using the repository's Dockerfile"
            } else {
                "Dockerfile, .dockerignore and buildspec.yml generated"
            },
        );

        let t = self.step(S::Building, None).await?;
        let tag = format!(
            "{repository}:{}",
            content_tag(&checkout.commit, settings.root.as_str(), &files)
        );
        let context_dir = settings.root.join_onto(&checkout.path);
        let image = match backends.builder.find(&tag).await? {
            Some(image) => {
                self.done(t, &format!("image {tag} is up to date; reusing it"));
                image
            }
            None => {
                let request = BuildRequest {
                    tenant: tenant.clone(),
                    app: d.app.clone(),
                    commit: checkout.commit.clone(),
                    deployment: d.id.clone(),
                    context_dir,
                    pipeline: files.clone(),
                    tag: tag.clone(),
                };
                let image = retry(log, "the build", || backends.builder.build(&request, log)).await?;
                self.done(t, &format!("built {tag}"));
                image
            }
        };
        remove_dir(&workspace).await.ok();

        let t = self.step(S::Pushing, None).await?;
        let reference = retry(log, "pushing the image", || backends.registry.push(&image, log)).await?;
        engine
            .store
            .record(
                &d.id,
                &DeploymentFacts {
                    image: Some(reference.clone()),
                    port: Some(files.port.get()),
                    ..Default::default()
                },
            )
            .await?;
        let detail =
            serde_json::json!({ "ImageURI": reference, "ImageId": image.id, "Commit": checkout.commit });
        artifacts
            .put(&d.id, "imageDetail.json", detail.to_string().as_bytes())
            .await?;
        self.done(t, &format!("image available as {reference}"));

        Ok((reference, files.port))
    }

    /// Keeps the images of the app's most recent releases, removes older ones.
    async fn prune_images(&self, current: &str) {
        let engine = self.engine;
        let keep_n = engine.config.keep_images.max(1);
        let Ok(recent) = engine.store.deployments(&self.deployment.app, 100).await else {
            return;
        };
        // A newer deployment may have built an image it has not released
        // yet: leave pruning to the last deployment of a busy period.
        if recent
            .iter()
            .any(|d| d.id != self.deployment.id && (d.state == S::Queued || d.state.is_in_flight()))
        {
            return;
        }
        let mut keep: Vec<String> = vec![current.to_owned()];
        for image in recent
            .iter()
            .filter(|d| matches!(d.state, S::Live | S::Superseded | S::RolledBack))
            .filter_map(|d| d.image.clone())
        {
            if keep.len() >= keep_n {
                break;
            }
            if !keep.contains(&image) {
                keep.push(image);
            }
        }
        if let Err(e) = engine.backends.registry.prune(&self.deployment.app, &keep).await {
            tracing::warn!(error = %e, "pruning old images failed");
        }
    }
}

async fn remove_dir(path: &std::path::Path) -> Result<(), BackendError> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackendError::transient(format!(
            "cannot clear the workspace {}: {e}",
            path.display()
        ))),
    }
}

fn is_full_sha(commit: &str) -> bool {
    commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// Image tag derived from everything that goes into the build, so an
/// unchanged app reuses its image instead of rebuilding.
fn content_tag(commit: &str, root: &str, files: &easydeploy_core::PipelineFiles) -> String {
    let mut hash = Sha256::new();
    for part in [commit, root, &files.dockerfile, &files.dockerignore] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    for (name, bytes) in &files.extra_files {
        hash.update(name.as_bytes());
        hash.update(bytes);
    }
    hex::encode(&hash.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_tags_change_with_any_input() {
        let files = easydeploy_core::PipelineFiles {
            dockerfile: "FROM x".into(),
            dockerignore: String::new(),
            buildspec: String::new(),
            extra_files: vec![],
            own_dockerfile: false,
            port: easydeploy_core::Port::new(80),
        };
        let base = content_tag("abc", "", &files);
        assert_eq!(base, content_tag("abc", "", &files));
        assert_eq!(base.len(), 16);
        assert_ne!(base, content_tag("abd", "", &files));
        assert_ne!(base, content_tag("abc", "web", &files));
        let mut other = files.clone();
        other.extra_files.push(("ca".into(), b"x".to_vec()));
        assert_ne!(base, content_tag("abc", "", &other));
    }
}
