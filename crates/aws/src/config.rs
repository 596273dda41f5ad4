//! Configuration of the AWS backends.

use crate::builder::BuildStatus;
use std::path::PathBuf;
use std::time::Duration;

/// Where CodeBuild reads a build's context from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Workspace {
    /// Zipped to `s3://<bucket>/sources/<tenant>/<app>/<commit>.zip` (CodeBuild S3 source).
    #[default]
    S3,
    /// Copied to `<path>/<tenant>/<app>/<commit>/`, where `path` is this
    /// machine's mount of the bootstrap's EFS file system; CodeBuild mounts
    /// the same file system and builds there (no source download).
    Efs {
        /// Where the EFS file system's root is mounted on this machine.
        path: PathBuf,
    },
}

/// Where and how the AWS backends run. Region, credentials and endpoint come
/// from the standard AWS environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, profiles) unless set here.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Region; `None` reads the AWS environment.
    pub region: Option<String>,
    /// Endpoint of every service (moto, LocalStack); `None` reads `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Static credentials (access key id, secret); `None` uses the AWS credential chain.
    pub credentials: Option<(String, String)>,
    /// Apps are served at `APP.<apps_domain>` by the shared ALB.
    pub apps_domain: String,
    /// Prefix of the shared infrastructure's names (`easydeploy`).
    pub prefix: String,
    /// Attempts of one AWS call (throttling and 5xx are retried with backoff).
    pub max_attempts: u32,
    /// How long one CodeBuild build may take.
    pub build_timeout: Duration,
    /// How often a build's status is polled.
    pub poll_interval: Duration,
    /// ECR keeps this many images per app (lifecycle policy).
    pub keep_images: u32,
    /// Without an autoscaling policy on the app, Application Auto Scaling
    /// may run up to this many times the app's replicas (1: a fixed count).
    pub max_scale_factor: u32,
    /// Target average CPU (percent) of the CPU scaling policy.
    pub target_cpu_percent: f64,
    /// Requests per replica per minute (ALBRequestCountPerTarget) the
    /// request-count scaling policy aims at for apps without a policy.
    pub target_requests_per_replica: f64,
    /// Where build contexts go.
    pub workspace: Workspace,
    /// For AWS stand-ins whose CodeBuild runs nothing (moto): builds are not
    /// awaited but end with this status (see [`crate::SimulatedBuilds`]).
    pub simulated_builds: Option<BuildStatus>,
    /// How long CloudWatch traffic figures are reused before being read again.
    pub metrics_refresh: Duration,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            credentials: None,
            apps_domain: "localhost".into(),
            prefix: "easydeploy".into(),
            max_attempts: 5,
            build_timeout: Duration::from_secs(60 * 60),
            poll_interval: Duration::from_secs(5),
            keep_images: 10,
            max_scale_factor: 4,
            target_cpu_percent: 60.0,
            target_requests_per_replica: 1000.0,
            workspace: Workspace::S3,
            simulated_builds: None,
            metrics_refresh: Duration::from_secs(30),
        }
    }
}

impl AwsConfig {
    /// The defaults with region and endpoint read from `AWS_REGION` /
    /// `AWS_DEFAULT_REGION` and `AWS_ENDPOINT_URL`, and the apps domain and
    /// prefix from `EASYDEPLOY_APPS_DOMAIN` / `EASYDEPLOY_AWS_PREFIX`, and
    /// simulated builds from `EASYDEPLOY_AWS_SIMULATED_BUILDS` (a build status,
    /// e.g. `SUCCEEDED`; invalid values are ignored with a warning).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = Self {
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            endpoint_url: var("AWS_ENDPOINT_URL"),
            ..Self::default()
        };
        if let Some(domain) = var("EASYDEPLOY_APPS_DOMAIN") {
            config.apps_domain = domain;
        }
        if let Some(prefix) = var("EASYDEPLOY_AWS_PREFIX") {
            config.prefix = prefix;
        }
        if let Some(status) = var("EASYDEPLOY_AWS_SIMULATED_BUILDS") {
            match status.parse() {
                Ok(status) => {
                    tracing::warn!(%status, "CodeBuild builds are simulated (EASYDEPLOY_AWS_SIMULATED_BUILDS)");
                    config.simulated_builds = Some(status);
                }
                Err(e) => tracing::warn!(error = %e, "EASYDEPLOY_AWS_SIMULATED_BUILDS ignored"),
            }
        }
        config
    }
}
