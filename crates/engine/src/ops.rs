//! Operations on a live app that do not build: rollback, configuration
//! changes, scaling and autoscaling settings.

use crate::{Engine, EngineError};
use easydeploy_core::ports::{BackendError, Replica};
use easydeploy_core::{AppName, Autoscale, EnvVar, Replicas};
use easydeploy_store::{Deployment, DeploymentKind, NewDeployment, StoreError};

impl Engine {
    /// Re-releases an earlier release's image and configuration (the one
    /// before the live release by default) through the same rolling update.
    pub async fn rollback(
        &self,
        app: &AppName,
        to: Option<i64>,
        who: &str,
    ) -> Result<Deployment, EngineError> {
        let current = self.store.app(app).await?;
        let releases = self.store.releases(app, 1000).await?;
        let live_number = releases
            .iter()
            .find(|r| Some(&r.id) == current.live_deployment.as_ref())
            .and_then(|r| r.release);
        let target = match to {
            Some(number) => self.store.release(app, number).await?,
            None => releases
                .iter()
                .find(|r| r.release < live_number && r.release.is_some())
                .cloned()
                .ok_or_else(|| {
                    StoreError::NotFound(format!("an earlier release of '{app}' to roll back to"))
                })?,
        };
        if Some(&target.id) == current.live_deployment.as_ref() {
            return Err(BackendError::permanent(format!(
                "release v{} is already live",
                target.release.unwrap_or(0)
            ))
            .with_code("already_live")
            .into());
        }
        let (Some(image), Some(port)) = (target.image.clone(), target.port) else {
            return Err(BackendError::permanent("that release has no image to roll back to").into());
        };
        let mut settings = target.settings.clone();
        settings.replicas = current.settings.replicas;
        settings.autoscale = current.settings.autoscale;
        self.store.update_settings(app, &settings).await?;
        let new = NewDeployment {
            commit: target.commit.clone(),
            kind: DeploymentKind::Rollback,
            reuse_image: Some(image),
            port: Some(port),
            created_by: who.to_owned(),
        };
        let deployment = self.store.enqueue(app, &settings, &new).await?;
        let message = format!(
            "rollback to release v{} requested by {who}",
            target.release.unwrap_or(0)
        );
        self.store.add_event(app, "rollback", &message).await?;
        self.wake();
        Ok(deployment)
    }

    /// Sets and unsets environment variables. With a live release this
    /// makes a new release of the same image (no rebuild); returns it.
    pub async fn set_env(
        &self,
        app: &AppName,
        set: Vec<EnvVar>,
        unset: &[String],
        who: &str,
    ) -> Result<Option<Deployment>, EngineError> {
        let current = self.store.app(app).await?;
        let mut settings = current.settings.clone();
        settings.env.retain(|v| !unset.contains(&v.name));
        let names: Vec<String> = set.iter().map(|v| v.name.clone()).collect();
        settings.merge_env(set);
        if settings == current.settings {
            return Ok(None);
        }
        self.store.update_settings(app, &settings).await?;
        let mut changed = names;
        changed.extend(unset.iter().cloned());
        self.store
            .add_event(
                app,
                "config",
                &format!("environment changed by {who}: {}", changed.join(", ")),
            )
            .await?;
        let Some(live) = current.live_deployment else {
            return Ok(None);
        };
        let live = self.store.deployment(&live).await?;
        let (Some(image), Some(port)) = (live.image.clone(), live.port) else {
            return Ok(None);
        };
        let new = NewDeployment {
            commit: live.commit.clone(),
            kind: DeploymentKind::Config,
            reuse_image: Some(image),
            port: Some(port),
            created_by: who.to_owned(),
        };
        let deployment = self.store.enqueue(app, &settings, &new).await?;
        self.wake();
        Ok(Some(deployment))
    }

    /// Sets the replica count (turning autoscaling off) and applies it to
    /// the live release: new replicas are health-checked before they take
    /// traffic, removed ones are drained.
    pub async fn scale(
        &self,
        app: &AppName,
        replicas: Replicas,
        who: &str,
    ) -> Result<Vec<Replica>, EngineError> {
        let mut settings = self.store.app(app).await?.settings;
        let was_autoscaled = settings.autoscale.take().is_some();
        let from = settings.replicas.get();
        settings.replicas = replicas;
        self.store.update_settings(app, &settings).await?;
        let mut message = format!("scaled from {from} to {} replica(s) by {who}", replicas.get());
        if was_autoscaled {
            message.push_str("; autoscaling turned off");
        }
        self.store.add_event(app, "scale", &message).await?;
        self.apply_replicas(app).await
    }

    /// Turns target-tracking autoscaling on (or off with `None`).
    pub async fn set_autoscale(
        &self,
        app: &AppName,
        autoscale: Option<Autoscale>,
        who: &str,
    ) -> Result<(), EngineError> {
        let mut settings = self.store.app(app).await?.settings;
        settings.autoscale = autoscale;
        if let Some(a) = autoscale {
            let clamped = settings.replicas.get().clamp(a.min, a.max);
            settings.replicas = Replicas::parse(i64::from(clamped))?;
        }
        self.store.update_settings(app, &settings).await?;
        let message = match autoscale {
            Some(a) => format!(
                "autoscaling on by {who}: {}-{} replicas at {} req/s each",
                a.min, a.max, a.target_rps
            ),
            None => format!("autoscaling off by {who}"),
        };
        self.store.add_event(app, "autoscale", &message).await?;
        self.apply_replicas(app).await?;
        Ok(())
    }

    /// Makes the live release run the app's current replica count.
    pub(crate) async fn apply_replicas(&self, app: &AppName) -> Result<Vec<Replica>, EngineError> {
        let lock = self.app_lock(app);
        let _guard = lock.lock().await;
        let current = self.store.app(app).await?;
        let Some(live) = current.live_deployment else {
            return Ok(Vec::new());
        };
        let live = self.store.deployment(&live).await?;
        let Some(spec) = self.release_spec(&live).await? else {
            return Ok(Vec::new());
        };
        Ok(self.backends.runtime.adopt(&spec).await?)
    }
}

impl From<easydeploy_core::InputError> for EngineError {
    fn from(e: easydeploy_core::InputError) -> Self {
        EngineError::Backend(BackendError::permanent(e.message).with_code(e.code))
    }
}
