//! Easy Deploy's AWS adapters, on the official AWS SDK for Rust: tenants as
//! IAM users, builds on CodeBuild from an S3 source, images in ECR, releases
//! as ECS services behind the shared ALB with Application Auto Scaling,
//! artifacts in S3, logs from CloudWatch Logs and resource use and traffic
//! from CloudWatch metrics. [`bootstrap()`] makes the
//! shared infrastructure they run on.

mod artifacts;
mod backends;
mod bootstrap;
mod builder;
mod clients;
mod config;
mod error;
mod infra;
mod metrics;
mod names;
mod registry;
mod runtime;
mod source;
mod tenants;

pub use artifacts::S3Artifacts;
pub use backends::{backends, AwsBackends};
pub use bootstrap::{bootstrap, BootstrapOptions};
pub use builder::{
    BuildOutcome, BuildStatus, BuildWatcher, CodeBuildBuilder, CodeBuildWatcher, SimulatedBuilds,
    StartedBuild,
};
pub use clients::AwsClients;
pub use config::{AwsConfig, Workspace};
pub use error::aws_error;
pub use infra::Infrastructure;
pub use metrics::AlbTraffic;
pub use registry::EcrRegistry;
pub use runtime::{EcsRolloutWatcher, EcsRuntime, RolloutWatcher};
pub use source::zip_context;
pub use tenants::{AccessKeyCipher, AwsTenants, TenantAccessKey};

/// Tag naming the app a resource belongs to.
pub const TAG_APP: &str = "easydeploy:app";
/// Tag naming the tenant that owns a resource.
pub const TAG_TENANT: &str = "easydeploy:tenant";
/// Tag naming the deployment that made a resource.
pub const TAG_DEPLOYMENT: &str = "easydeploy:deployment";
/// Tag naming the shared infrastructure (its prefix) a resource is part of.
pub const TAG_INFRA: &str = "easydeploy:infrastructure";
/// Tag naming the role of a shared resource (`public-0`, `alb`...).
pub const TAG_ROLE: &str = "easydeploy:role";
