//! A deployment's log: pipeline messages and build output, appended to the
//! `build.log` artifact in order by one writer task.

use easydeploy_core::ports::{ArtifactStore, LogSink};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Name of the log artifact.
pub const LOG_ARTIFACT: &str = "build.log";

/// Collects lines and appends them to the deployment's log artifact.
pub struct DeploymentLog {
    tx: mpsc::UnboundedSender<String>,
    writer: tokio::task::JoinHandle<()>,
}

impl DeploymentLog {
    /// Starts the writer for `deployment`.
    pub fn start(artifacts: Arc<dyn ArtifactStore>, deployment: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = first;
                while let Ok(more) = rx.try_recv() {
                    batch.push_str(&more);
                }
                if let Err(e) = artifacts
                    .append(&deployment, LOG_ARTIFACT, batch.as_bytes())
                    .await
                {
                    tracing::warn!(deployment_id = %deployment, error = %e, "could not write the deployment log");
                }
            }
        });
        Self { tx, writer }
    }

    /// Waits until every line is written.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.writer.await;
    }
}

impl LogSink for DeploymentLog {
    fn line(&self, line: &str) {
        let _ = self.tx.send(format!("{line}\n"));
    }
}
