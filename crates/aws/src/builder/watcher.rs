//! Waiting for a CodeBuild build to end, behind a trait so that tests (and
//! moto, whose builds run nothing) can decide the outcome.

use crate::error::err;
use async_trait::async_trait;
use easydeploy_core::ports::{BackendError, BackendResult};
use std::fmt;
use std::time::Duration;

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    /// The image was built and pushed.
    Succeeded,
    /// A command of the buildspec failed.
    Failed,
    /// CodeBuild itself failed.
    Fault,
    /// The build took longer than the project allows.
    TimedOut,
    /// Someone stopped it.
    Stopped,
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Fault => "FAULT",
            Self::TimedOut => "TIMED_OUT",
            Self::Stopped => "STOPPED",
        })
    }
}

/// The end of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// How it ended.
    pub status: BuildStatus,
    /// Why, when it failed: the failed phase and its message.
    pub reason: Option<String>,
    /// CloudWatch log group of the build's output.
    pub log_group: Option<String>,
    /// CloudWatch log stream of the build's output.
    pub log_stream: Option<String>,
}

/// A build CodeBuild has started, and the image it is to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBuild {
    /// CodeBuild's build id.
    pub id: String,
    /// ECR repository name the buildspec pushes to.
    pub repository: String,
    /// Tag it pushes.
    pub tag: String,
}

/// Waits for a build to end.
#[async_trait]
pub trait BuildWatcher: Send + Sync {
    /// The build's outcome; fails when it has not ended within `timeout`.
    async fn wait(&self, build: &StartedBuild, timeout: Duration) -> BackendResult<BuildOutcome>;
}

/// Polls `batch_get_builds` until the build completes.
#[derive(Clone, Debug)]
pub struct CodeBuildWatcher {
    codebuild: aws_sdk_codebuild::Client,
    interval: Duration,
}

impl CodeBuildWatcher {
    /// Polls every `interval`.
    pub fn new(codebuild: aws_sdk_codebuild::Client, interval: Duration) -> Self {
        Self { codebuild, interval }
    }
}

#[async_trait]
impl BuildWatcher for CodeBuildWatcher {
    async fn wait(&self, build: &StartedBuild, timeout: Duration) -> BackendResult<BuildOutcome> {
        let build_id = build.id.as_str();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let out = self
                .codebuild
                .batch_get_builds()
                .ids(build_id)
                .send()
                .await
                .map_err(err("read the build's status"))?;
            let build = out.builds().first().ok_or_else(|| {
                BackendError::permanent(format!("CodeBuild does not know the build {build_id}"))
            })?;
            if build.build_complete() {
                let status = match build.build_status().map(|s| s.as_str()) {
                    Some("SUCCEEDED") => BuildStatus::Succeeded,
                    Some("FAULT") => BuildStatus::Fault,
                    Some("TIMED_OUT") => BuildStatus::TimedOut,
                    Some("STOPPED") => BuildStatus::Stopped,
                    _ => BuildStatus::Failed,
                };
                let reason = build
                    .phases()
                    .iter()
                    .find(|p| p.phase_status().is_some_and(|s| s.as_str() != "SUCCEEDED"))
                    .map(|p| {
                        let phase = p.phase_type().map(|t| t.as_str().to_owned()).unwrap_or_default();
                        let message = p
                            .contexts()
                            .iter()
                            .filter_map(|c| c.message())
                            .collect::<Vec<_>>()
                            .join("; ");
                        format!(
                            "phase {phase} {}: {message}",
                            p.phase_status().map(|s| s.as_str()).unwrap_or("")
                        )
                    });
                let logs = build.logs();
                return Ok(BuildOutcome {
                    status,
                    reason,
                    log_group: logs.and_then(|l| l.group_name()).map(str::to_owned),
                    log_stream: logs.and_then(|l| l.stream_name()).map(str::to_owned),
                });
            }
            if tokio::time::Instant::now() + self.interval > deadline {
                return Err(BackendError::permanent(format!(
                    "the image build failed: CodeBuild build {build_id} did not finish within {} s",
                    timeout.as_secs()
                ))
                .with_code("build_timeout"));
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// For AWS stand-ins whose CodeBuild runs nothing (moto, LocalStack): every
/// build ends with a fixed status and, when it succeeds, the image the
/// buildspec would push is put in ECR (a manifest whose digest depends only
/// on the repository and tag). Chosen with `EASYDEPLOY_AWS_SIMULATED_BUILDS`;
/// never use it against AWS.
#[derive(Clone, Debug)]
pub struct SimulatedBuilds {
    ecr: aws_sdk_ecr::Client,
    status: BuildStatus,
}

impl SimulatedBuilds {
    /// Builds end with `status`.
    pub fn new(ecr: aws_sdk_ecr::Client, status: BuildStatus) -> Self {
        Self { ecr, status }
    }
}

impl std::str::FromStr for BuildStatus {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "SUCCEEDED" => Ok(Self::Succeeded),
            "FAILED" => Ok(Self::Failed),
            "FAULT" => Ok(Self::Fault),
            "TIMED_OUT" => Ok(Self::TimedOut),
            "STOPPED" => Ok(Self::Stopped),
            _ => Err(BackendError::permanent(format!(
                "{s:?} is not a build status (SUCCEEDED, FAILED, FAULT, TIMED_OUT, STOPPED)"
            ))),
        }
    }
}

#[async_trait]
impl BuildWatcher for SimulatedBuilds {
    async fn wait(&self, build: &StartedBuild, _timeout: Duration) -> BackendResult<BuildOutcome> {
        if self.status == BuildStatus::Succeeded {
            use sha2::{Digest, Sha256};
            let config = Sha256::digest(format!("{}:{}", build.repository, build.tag).as_bytes());
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": 1024,
                    "digest": format!("sha256:{}", hex::encode(config)),
                },
                "layers": []
            });
            let put = self
                .ecr
                .put_image()
                .repository_name(&build.repository)
                .image_tag(&build.tag)
                .image_manifest(manifest.to_string())
                .send()
                .await;
            match put {
                Ok(_) => {}
                Err(e) if crate::error::code_of(&e) == Some("ImageAlreadyExistsException") => {}
                Err(e) => return Err(crate::error::aws_error("put the simulated image in ECR", e)),
            }
        }
        Ok(BuildOutcome {
            status: self.status,
            reason: (self.status != BuildStatus::Succeeded)
                .then(|| format!("simulated build {} ended {}", build.id, self.status)),
            log_group: None,
            log_stream: None,
        })
    }
}
