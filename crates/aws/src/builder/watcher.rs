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

/// Waits for a build to end.
#[async_trait]
pub trait BuildWatcher: Send + Sync {
    /// The build's outcome; fails when it has not ended within `timeout`.
    async fn wait(&self, build_id: &str, timeout: Duration) -> BackendResult<BuildOutcome>;
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
    async fn wait(&self, build_id: &str, timeout: Duration) -> BackendResult<BuildOutcome> {
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
