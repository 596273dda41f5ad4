//! Target-tracking autoscaler: replicas follow the request rate the edge
//! proxy measures; scale-out is fast, scale-in waits for sustained low load.

use crate::Engine;
use easydeploy_core::Replicas;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Request-count samples and the time low load started, per app.
#[derive(Default)]
struct Track {
    samples: VecDeque<(Instant, u64)>,
    low_since: Option<Instant>,
}

/// Runs until `shutdown`.
pub(crate) async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut tracks: HashMap<String, Track> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.config.autoscale_interval) => {}
        }
        if let Err(e) = engine.autoscale_once(&mut tracks).await {
            tracing::warn!(error = %e, "autoscaling failed");
        }
    }
}

impl Engine {
    async fn autoscale_once(&self, tracks: &mut HashMap<String, Track>) -> Result<(), crate::EngineError> {
        let Some(load) = self.load.get() else {
            return Ok(());
        };
        if self.backends.runtime.scales_itself() {
            // The runtime follows the apps' policies on its own (AWS).
            return Ok(());
        }
        let now = Instant::now();
        for app in self.store.apps().await? {
            let Some(policy) = app.settings.autoscale else {
                tracks.remove(app.name.as_str());
                continue;
            };
            if app.live_deployment.is_none() {
                continue;
            }
            let Some(total) = load.requests_total(app.name.as_str()) else {
                continue;
            };
            let track = tracks.entry(app.name.to_string()).or_default();
            track.samples.push_back((now, total));
            while track.samples.len() > 2
                && now.duration_since(track.samples[0].0) > self.config.autoscale_window
            {
                track.samples.pop_front();
            }
            let (first_at, first) = track.samples[0];
            let elapsed = now.duration_since(first_at).as_secs_f64();
            if elapsed < 0.5 {
                continue;
            }
            let rps = total.saturating_sub(first) as f64 / elapsed;
            let current = app.settings.replicas.get();
            let desired = policy.desired(rps);
            let target = if desired > current {
                track.low_since = None;
                desired
            } else if desired < current {
                let since = *track.low_since.get_or_insert(now);
                if now.duration_since(since) < self.config.scale_in_delay {
                    continue;
                }
                track.low_since = None;
                // Scale in one step at a time.
                current - 1
            } else {
                track.low_since = None;
                continue;
            };
            let mut settings = app.settings.clone();
            settings.replicas = Replicas::parse(i64::from(target))?;
            self.store.update_settings(&app.name, &settings).await?;
            let message = format!("autoscaled from {current} to {target} replica(s): {rps:.1} req/s against a target of {} per replica", policy.target_rps);
            tracing::info!(app = %app.name, %message);
            self.store.add_event(&app.name, "autoscale", &message).await?;
            if let Err(e) = self.apply_replicas(&app.name).await {
                self.store
                    .add_event(&app.name, "autoscale_failed", &format!("could not apply: {e}"))
                    .await?;
            }
        }
        Ok(())
    }
}
