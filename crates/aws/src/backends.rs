//! The composition of the AWS adapters into the engine's [`Backends`].

use crate::artifacts::S3Artifacts;
use crate::builder::{BuildWatcher, CodeBuildBuilder, CodeBuildWatcher, SimulatedBuilds};
use crate::clients::AwsClients;
use crate::config::AwsConfig;
use crate::infra::Infrastructure;
use crate::metrics::AlbTraffic;
use crate::registry::EcrRegistry;
use crate::runtime::{EcsRolloutWatcher, EcsRuntime, RolloutWatcher};
use crate::tenants::{AccessKeyCipher, AwsTenants};
use easydeploy_core::ports::{Backends, LoadMetrics};
use std::sync::Arc;
use std::time::Duration;

/// The AWS adapters, typed (tests and the CLI reach the concrete ones).
#[derive(Clone)]
pub struct AwsBackends {
    /// IAM tenants.
    pub tenants: AwsTenants,
    /// CodeBuild builds.
    pub builder: CodeBuildBuilder,
    /// ECR repositories.
    pub registry: EcrRegistry,
    /// ECS services.
    pub runtime: EcsRuntime,
    /// S3 artifacts.
    pub artifacts: S3Artifacts,
    /// The apps' traffic from the ALB's CloudWatch metrics.
    pub traffic: AlbTraffic,
}

impl AwsBackends {
    /// The adapters on `infra`, waiting on builds and rollouts with the given
    /// watchers (`None`: poll CodeBuild, or simulate builds when the config
    /// says so, and poll ECS).
    pub fn new(
        config: &AwsConfig,
        clients: &AwsClients,
        infra: Infrastructure,
        cipher: Option<AccessKeyCipher>,
        build_watcher: Option<Arc<dyn BuildWatcher>>,
        rollout_watcher: Option<Arc<dyn RolloutWatcher>>,
    ) -> Self {
        let infra = Arc::new(infra);
        let build_watcher = build_watcher.unwrap_or_else(|| match config.simulated_builds {
            Some(status) => Arc::new(SimulatedBuilds::new(clients.ecr.clone(), status)),
            None => Arc::new(CodeBuildWatcher::new(
                clients.codebuild.clone(),
                config.poll_interval,
            )),
        });
        let rollout_watcher = rollout_watcher.unwrap_or_else(|| {
            Arc::new(EcsRolloutWatcher::new(
                clients.ecs.clone(),
                config.poll_interval.max(Duration::from_secs(1)),
            ))
        });
        let tenants = AwsTenants::new(clients.clone(), Arc::clone(&infra), cipher);
        let registry = EcrRegistry::new(clients.clone(), Arc::clone(&infra), config.keep_images);
        let builder = CodeBuildBuilder::new(
            clients.clone(),
            Arc::clone(&infra),
            build_watcher,
            config.build_timeout,
        )
        .with_workspace(config.workspace.clone());
        let runtime = EcsRuntime::new(
            clients.clone(),
            Arc::clone(&infra),
            tenants.clone(),
            registry.clone(),
            rollout_watcher,
            config,
        );
        let artifacts = S3Artifacts::new(clients.clone(), infra.bucket.clone());
        let traffic = AlbTraffic::new(clients.clone(), Arc::clone(&infra), config.metrics_refresh);
        Self {
            tenants,
            builder,
            registry,
            runtime,
            artifacts,
            traffic,
        }
    }

    /// The engine's backends; sources are fetched with the local git fetcher.
    pub fn into_backends(self) -> Backends {
        Backends {
            tenants: Arc::new(self.tenants),
            source: Arc::new(easydeploy_git::GitFetcher::new()),
            builder: Arc::new(self.builder),
            registry: Arc::new(self.registry),
            runtime: Arc::new(self.runtime),
            artifacts: Arc::new(self.artifacts),
        }
    }
}

/// The engine's backends on AWS for `config` and the stored `infra`
/// (see [`crate::bootstrap()`]), polling CodeBuild and ECS for outcomes, and
/// the apps' traffic for the autoscaler and the observability API.
pub async fn backends(
    config: &AwsConfig,
    infra: Infrastructure,
    cipher: Option<AccessKeyCipher>,
) -> (Backends, Arc<dyn LoadMetrics>) {
    let clients = AwsClients::connect(config).await;
    let aws = AwsBackends::new(config, &clients, infra, cipher, None, None);
    let traffic: Arc<dyn LoadMetrics> = Arc::new(aws.traffic.clone());
    (aws.into_backends(), traffic)
}
