//! Deployment statistics: counts by state, success rate, step durations
//! (mean and p95) and deploys per day, computed from the stored history.

use crate::{Store, StoreResult};
use easydeploy_core::{AppName, DeploymentState};
use serde::Serialize;
use std::collections::BTreeMap;

/// Statistics over a set of deployments.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DeployStats {
    /// Deployments counted.
    pub total: u64,
    /// Deployments by current state.
    pub by_state: BTreeMap<String, u64>,
    /// Share of finished deployments that went live (0-1); null before any finished.
    pub success_rate: Option<f64>,
    /// Time spent in each step, in seconds.
    pub steps: BTreeMap<String, StepStats>,
    /// Deployments created per day (UTC date → count).
    pub per_day: BTreeMap<String, u64>,
}

/// Durations of one step.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct StepStats {
    /// Times the step was completed.
    pub count: u64,
    /// Mean seconds.
    pub mean_secs: f64,
    /// 95th percentile seconds.
    pub p95_secs: f64,
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_milliseconds() as f64 / 1000.0)
}

impl Store {
    /// Statistics over the given apps' deployments (every app when `None`).
    pub async fn deploy_stats(&self, apps: Option<&[AppName]>) -> StoreResult<DeployStats> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT d.id, d.app, d.state, d.created_at FROM deployments d ORDER BY d.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let wanted = |app: &str| apps.is_none_or(|list| list.iter().any(|a| a.as_str() == app));
        let ids: Vec<&(String, String, String, String)> = rows.iter().filter(|r| wanted(&r.1)).collect();
        let mut stats = DeployStats::default();
        let (mut live, mut finished) = (0u64, 0u64);
        for (_, _, state, created) in &ids {
            stats.total += 1;
            *stats.by_state.entry(state.clone()).or_default() += 1;
            match DeploymentState::parse(state) {
                Some(DeploymentState::Live | DeploymentState::Superseded | DeploymentState::RolledBack) => {
                    live += 1;
                    finished += 1;
                }
                Some(DeploymentState::Failed) => finished += 1,
                _ => {}
            }
            *stats
                .per_day
                .entry(created.get(..10).unwrap_or("").to_owned())
                .or_default() += 1;
        }
        stats.success_rate = (finished > 0).then(|| live as f64 / finished as f64);

        let transitions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT deployment, state, at FROM deployment_transitions ORDER BY deployment, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let counted: std::collections::HashSet<&str> = ids.iter().map(|r| r.0.as_str()).collect();
        let mut durations: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for pair in transitions.windows(2) {
            let ((d1, state, at), (d2, _, next_at)) = (&pair[0], &pair[1]);
            if d1 != d2 || !counted.contains(d1.as_str()) {
                continue;
            }
            if let Some(secs) = seconds_between(at, next_at) {
                durations.entry(state.clone()).or_default().push(secs.max(0.0));
            }
        }
        for (state, mut values) in durations {
            values.sort_by(f64::total_cmp);
            let count = values.len();
            let mean = values.iter().sum::<f64>() / count as f64;
            let p95 = values[((count as f64 * 0.95).ceil() as usize).clamp(1, count) - 1];
            stats.steps.insert(
                state,
                StepStats {
                    count: count as u64,
                    mean_secs: mean,
                    p95_secs: p95,
                },
            );
        }
        Ok(stats)
    }
}
