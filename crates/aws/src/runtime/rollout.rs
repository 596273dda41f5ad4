//! Waiting for an ECS rollout, bounded, behind a trait so that tests can
//! decide the outcome (moto's rollouts never change on their own).

use crate::error::err;
use async_trait::async_trait;
use easydeploy_core::ports::{BackendError, BackendResult};
use std::time::Duration;

/// Waits until a service runs a task definition healthily.
#[async_trait]
pub trait RolloutWatcher: Send + Sync {
    /// `Ok` once `service` runs `task_definition` at its desired count with a
    /// completed rollout; fails with the reason when the rollout fails, is
    /// rolled back, or takes longer than `timeout`.
    async fn wait(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        timeout: Duration,
    ) -> BackendResult<()>;
}

/// Polls `describe_services`.
#[derive(Clone, Debug)]
pub struct EcsRolloutWatcher {
    ecs: aws_sdk_ecs::Client,
    interval: Duration,
}

impl EcsRolloutWatcher {
    /// Polls every `interval`.
    pub fn new(ecs: aws_sdk_ecs::Client, interval: Duration) -> Self {
        Self { ecs, interval }
    }
}

#[async_trait]
impl RolloutWatcher for EcsRolloutWatcher {
    async fn wait(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        timeout: Duration,
    ) -> BackendResult<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let out = self
                .ecs
                .describe_services()
                .cluster(cluster)
                .services(service)
                .send()
                .await
                .map_err(err("read the rollout's state"))?;
            let Some(svc) = out.services().first() else {
                return Err(BackendError::permanent(format!(
                    "the ECS service {service} disappeared during its rollout"
                )));
            };
            let events: Vec<&str> = svc.events().iter().take(3).filter_map(|e| e.message()).collect();
            // Ours is the deployment running `task_definition`, or the PRIMARY one
            // while the service is on it (moto keeps one deployment entry).
            let ours = svc
                .deployments()
                .iter()
                .find(|d| d.task_definition() == Some(task_definition))
                .or_else(|| {
                    (svc.task_definition() == Some(task_definition))
                        .then(|| svc.deployments().iter().find(|d| d.status() == Some("PRIMARY")))
                        .flatten()
                });
            let last = match ours {
                None => {
                    return Err(BackendError::permanent(format!(
                        "the release was rolled back by ECS (its deployment circuit breaker stopped it){}",
                        events_suffix(&events)
                    ))
                    .with_code("rollout_failed"))
                }
                Some(d) => {
                    let state = d.rollout_state().map(|s| s.as_str()).unwrap_or("UNKNOWN");
                    let reason = d.rollout_state_reason().unwrap_or_default();
                    if state == "FAILED" {
                        return Err(BackendError::permanent(format!(
                            "the release's rollout failed: {reason}{}",
                            events_suffix(&events)
                        ))
                        .with_code("rollout_failed"));
                    }
                    if state == "COMPLETED" && d.running_count() >= d.desired_count() {
                        return Ok(());
                    }
                    format!(
                        "{state}, {} of {} replicas running, {} failed",
                        d.running_count(),
                        d.desired_count(),
                        d.failed_tasks()
                    )
                }
            };
            if tokio::time::Instant::now() + self.interval > deadline {
                return Err(BackendError::permanent(format!(
                    "the release did not become healthy within {} s ({last}){}",
                    timeout.as_secs(),
                    events_suffix(&events)
                ))
                .with_code("rollout_timeout"));
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

fn events_suffix(events: &[&str]) -> String {
    if events.is_empty() {
        String::new()
    } else {
        format!("; recent ECS events: {}", events.join(" | "))
    }
}
