//! Releases as ECS services on Fargate behind the shared ALB: a task
//! definition revision per release, the service created or updated (circuit
//! breaker with rollback), a host-header rule `APP.<apps-domain>` to the
//! app's target group, and Application Auto Scaling target tracking.

mod destroy;
mod logs;
mod rollout;
pub(crate) mod routing;
mod scaling;
mod service;
mod stats;
mod status;
mod task_definition;

pub use rollout::{EcsRolloutWatcher, RolloutWatcher};

use crate::clients::AwsClients;
use crate::infra::Infrastructure;
use crate::registry::EcrRegistry;
use crate::tenants::AwsTenants;
use async_trait::async_trait;
use easydeploy_core::ports::{
    BackendResult, LogLine, ReleaseSpec, Replica, ReplicaStats, ReplicaStatus, Runtime,
};
use easydeploy_core::AppName;
use futures_util::stream::BoxStream;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

/// Name of the app's container in its task definitions.
pub(crate) const CONTAINER: &str = "app";
/// Tag on a service naming its live task definition (set when promoted).
pub(crate) const TAG_LIVE_TASK_DEFINITION: &str = "easydeploy:live-task-definition";

/// How the ECS runtime scales and waits.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeSettings {
    pub rollout_timeout: Duration,
    pub max_scale_factor: u32,
    pub target_cpu_percent: f64,
    pub target_requests_per_replica: f64,
    pub keep_revisions: usize,
}

/// Runs releases as ECS services in the shared cluster.
#[derive(Clone)]
pub struct EcsRuntime {
    clients: AwsClients,
    infra: Arc<Infrastructure>,
    tenants: AwsTenants,
    registry: EcrRegistry,
    watcher: Arc<dyn RolloutWatcher>,
    settings: RuntimeSettings,
}

impl EcsRuntime {
    /// The runtime on `infra`; `watcher` decides when a rollout is done.
    pub fn new(
        clients: AwsClients,
        infra: Arc<Infrastructure>,
        tenants: AwsTenants,
        registry: EcrRegistry,
        watcher: Arc<dyn RolloutWatcher>,
        config: &crate::AwsConfig,
    ) -> Self {
        Self {
            clients,
            infra,
            tenants,
            registry,
            watcher,
            settings: RuntimeSettings {
                rollout_timeout: Duration::from_secs(15 * 60),
                max_scale_factor: config.max_scale_factor.max(1),
                target_cpu_percent: config.target_cpu_percent,
                target_requests_per_replica: config.target_requests_per_replica,
                keep_revisions: 5,
            },
        }
    }

    /// Sets the longest wait for a rollout to complete.
    pub fn with_rollout_timeout(mut self, timeout: Duration) -> Self {
        self.settings.rollout_timeout = timeout;
        self
    }

    /// The app's URL (the ALB answers for `APP.<apps-domain>`).
    pub fn url(&self, app: &AppName) -> String {
        format!("http://{app}.{}", self.infra.apps_domain)
    }
}

#[async_trait]
impl Runtime for EcsRuntime {
    async fn launch(&self, release: &ReleaseSpec) -> BackendResult<Vec<Replica>> {
        let task_definition = task_definition::register(self, release).await?;
        let target_group = routing::ensure_target_group(self, release).await?;
        service::create_or_update(self, release, &task_definition, &target_group).await?;
        Ok(vec![Replica {
            id: task_definition.clone(),
            name: format!("{}@{}", release.app, revision_of(&task_definition)),
            addr: None,
        }])
    }

    async fn verify(&self, release: &ReleaseSpec, replicas: &[Replica]) -> BackendResult<()> {
        let Some(task_definition) = replicas.first().map(|r| r.id.as_str()) else {
            return Ok(());
        };
        let timeout = self.settings.rollout_timeout.max(release.health.grace);
        self.watcher
            .wait(
                &self.infra.cluster_name,
                &crate::names::service(release.app.as_str()),
                task_definition,
                timeout,
            )
            .await
    }

    async fn promote(&self, release: &ReleaseSpec, replicas: &[Replica]) -> BackendResult<()> {
        let target_group = routing::ensure_target_group(self, release).await?;
        routing::ensure_rule(self, &release.app, &target_group).await?;
        scaling::ensure(self, release, &target_group).await?;
        if let Some(task_definition) = replicas.first() {
            service::mark_live(self, release, &task_definition.id).await?;
            task_definition::deregister_old(self, &release.app, &task_definition.id).await?;
        }
        Ok(())
    }

    /// A release's replica (a task definition) is reverted; a task (from
    /// [`Runtime::status`], e.g. an unhealthy one) is stopped and ECS
    /// replaces it from the service's task definition.
    async fn discard(&self, replicas: &[Replica]) -> BackendResult<()> {
        for replica in replicas {
            if replica.id.contains(":task/") {
                service::stop_task(self, &replica.id).await?;
            } else {
                service::revert(self, &replica.id).await?;
            }
        }
        Ok(())
    }

    async fn adopt(&self, release: &ReleaseSpec) -> BackendResult<Vec<Replica>> {
        // One description of the service: its task definition and count.
        let described = service::describe(self, &release.app).await?.and_then(|s| {
            let task_definition = s.task_definition()?.to_owned();
            Some((s, task_definition))
        });
        if let Some((service, task_definition)) = described {
            service::fit_desired_count(self, &release.app, &service, &self.replica_bounds(release)).await?;
            if let Some(target_group) = routing::find_target_group(self, &release.app).await? {
                scaling::ensure(self, release, &target_group).await?;
            }
            return Ok(vec![Replica {
                name: format!("{}@{}", release.app, revision_of(&task_definition)),
                id: task_definition,
                addr: None,
            }]);
        }
        let replicas = self.launch(release).await?;
        self.promote(release, &replicas).await?;
        Ok(replicas)
    }

    /// The app's autoscaling bounds, or `replicas` up to `replicas ×
    /// max_scale_factor` without a policy: Application Auto Scaling moves
    /// the desired count inside them.
    fn replica_bounds(&self, release: &ReleaseSpec) -> RangeInclusive<u32> {
        match release.autoscale {
            Some(policy) => policy.min..=policy.max,
            None => {
                let floor = release.replicas.max(1);
                floor..=floor.saturating_mul(self.settings.max_scale_factor)
            }
        }
    }

    fn scales_itself(&self) -> bool {
        true
    }

    async fn remove_orphans(&self, keep: &[String]) -> BackendResult<usize> {
        service::revert_unverified(self, keep).await
    }

    async fn status(&self, app: &AppName) -> BackendResult<Vec<ReplicaStatus>> {
        status::replicas(self, app).await
    }

    async fn logs(
        &self,
        app: &AppName,
        tail: usize,
        follow: bool,
    ) -> BackendResult<BoxStream<'static, LogLine>> {
        logs::stream(self, app, tail, follow).await
    }

    async fn destroy(&self, app: &AppName) -> BackendResult<()> {
        destroy::app(self, app).await
    }

    /// One entry for the whole service (CloudWatch's service averages; ECS
    /// has no per-task figures without Container Insights); none before
    /// CloudWatch has datapoints.
    async fn stats(&self, app: &AppName) -> BackendResult<Vec<ReplicaStats>> {
        stats::service(self, app).await
    }
}

/// `7` of `arn:...:task-definition/easydeploy-shop:7`.
pub(crate) fn revision_of(task_definition_arn: &str) -> &str {
    task_definition_arn
        .rsplit(':')
        .next()
        .unwrap_or(task_definition_arn)
}
