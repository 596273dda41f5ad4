//! The reconciler: compares what should run (the store) with what runs
//! (the runtime) and repairs the difference, periodically.

use crate::Engine;
use easydeploy_core::ports::Replica;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Restarts above which a replica is reported as crash-looping.
const CRASH_LOOP_RESTARTS: i64 = 3;

/// Runs until `shutdown`.
pub(crate) async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut memory = Memory::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.config.reconcile_interval) => {}
        }
        if let Err(e) = engine.reconcile(&mut memory).await {
            tracing::warn!(error = %e, "reconciling failed");
        }
    }
}

/// What the reconciler remembers between passes, per replica name.
#[derive(Default)]
pub(crate) struct Memory {
    /// Restart count last reported as a crash loop.
    crash_reported: HashMap<String, i64>,
    /// Consecutive failed active health checks.
    failing: HashMap<String, u32>,
    /// Restart count of each running replica when last seen.
    restarts_seen: HashMap<String, i64>,
}

impl Memory {
    /// Forgets the replicas not in `present` (removed since), so what is
    /// remembered does not grow with every deployment.
    fn keep_only(&mut self, present: &HashSet<String>) {
        self.crash_reported.retain(|name, _| present.contains(name));
        self.failing.retain(|name, _| present.contains(name));
        self.restarts_seen.retain(|name, _| present.contains(name));
    }
}

impl Engine {
    /// One pass: for every app with a live release and nothing in flight,
    /// replaces stopped or missing replicas, removes replicas of ended
    /// deployments, and reports crash loops as events.
    pub(crate) async fn reconcile(&self, memory: &mut Memory) -> Result<(), crate::EngineError> {
        let active = self.store.active_deployment_ids().await?;
        // Replicas of live deployments seen in this pass; `every_app`: no
        // app was skipped, so the memory of the others can go.
        let (mut present, mut every_app) = (HashSet::new(), true);
        for live in self.store.live_deployments().await? {
            let app = &live.app;
            let lock = self.app_lock(app);
            let Ok(_guard) = lock.try_lock() else {
                every_app = false;
                continue;
            };
            if self.store.has_in_flight(app).await? {
                every_app = false;
                continue;
            }
            let Some(spec) = self.release_spec(&live).await? else {
                every_app = false;
                continue;
            };
            let replicas = self.backends.runtime.status(app).await?;
            let stale: Vec<Replica> = replicas
                .iter()
                .filter(|r| !active.contains(&r.deployment))
                .map(|r| Replica {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    addr: None,
                })
                .collect();
            if !stale.is_empty() {
                self.backends.runtime.discard(&stale).await?;
                tracing::info!(app = %app, removed = stale.len(), "removed replicas of ended deployments");
            }
            let mut unhealthy = Vec::new();
            for r in replicas
                .iter()
                .filter(|r| r.deployment == live.id && r.state == "running")
            {
                match self.backends.runtime.probe(&spec, r).await? {
                    None => {
                        memory.failing.remove(&r.name);
                    }
                    Some(why) => {
                        let failures = memory.failing.entry(r.name.clone()).or_default();
                        *failures += 1;
                        if *failures >= spec.health.unhealthy_threshold {
                            memory.failing.remove(&r.name);
                            let message = format!(
                                "{} failed {} health checks in a row ({why}); replacing it",
                                r.name, spec.health.unhealthy_threshold
                            );
                            self.store.add_event(app, "unhealthy", &message).await?;
                            unhealthy.push(Replica {
                                id: r.id.clone(),
                                name: r.name.clone(),
                                addr: None,
                            });
                        }
                    }
                }
            }
            let replicas = if unhealthy.is_empty() {
                replicas
            } else {
                self.backends.runtime.discard(&unhealthy).await?;
                self.backends.runtime.status(app).await?
            };
            let mine: Vec<_> = replicas.iter().filter(|r| r.deployment == live.id).collect();
            present.extend(mine.iter().map(|r| r.name.clone()));
            for r in &mine {
                let seen = memory.crash_reported.entry(r.name.clone()).or_default();
                if r.restarts >= CRASH_LOOP_RESTARTS && r.restarts > *seen {
                    *seen = r.restarts;
                    let message = format!("{} is crash-looping: restarted {} times", r.name, r.restarts);
                    self.store.add_event(app, "crash_loop", &message).await?;
                }
            }
            // A replica the engine restarted in place may have come back with
            // another address or network namespace: adopting the release
            // routes it again (also when first seen already restarted: it
            // may have restarted before this process looked).
            let mut restarted = false;
            for r in mine.iter().filter(|r| r.state == "running") {
                let seen = memory.restarts_seen.insert(r.name.clone(), r.restarts);
                restarted |= r.restarts > seen.unwrap_or(0);
            }
            let running = mine.iter().filter(|r| r.state == "running").count();
            let restarting = mine.iter().filter(|r| r.state == "restarting").count();
            let broken = mine.len() - running - restarting;
            let bounds = self.backends.runtime.replica_bounds(&spec);
            let counted = u32::try_from(running + restarting).unwrap_or(u32::MAX);
            let heal = !bounds.contains(&counted) || broken > 0;
            if heal || restarted {
                match self.backends.runtime.adopt(&spec).await {
                    Ok(_) if !heal => tracing::info!(app = %app, "routed restarted replicas again"),
                    Ok(serving) => {
                        let message = format!(
                            "{} replica(s) were running of {} wanted; now serving {}",
                            running,
                            wanted(&bounds),
                            serving.len()
                        );
                        tracing::info!(app = %app, %message, "healed");
                        self.store.add_event(app, "replaced", &message).await?;
                    }
                    Err(e) => {
                        let message = format!("could not replace replicas: {e}");
                        self.store.add_event(app, "heal_failed", &message).await?;
                    }
                }
            }
        }
        if every_app {
            memory.keep_only(&present);
        }
        Ok(())
    }
}

/// `3` or `2-8`.
fn wanted(bounds: &std::ops::RangeInclusive<u32>) -> String {
    if bounds.start() == bounds.end() {
        bounds.start().to_string()
    } else {
        format!("{}-{}", bounds.start(), bounds.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_removed_replicas_is_forgotten() {
        let mut memory = Memory::default();
        for name in ["ed-a-1111-1", "ed-a-2222-1"] {
            memory.crash_reported.insert(name.into(), 4);
            memory.failing.insert(name.into(), 1);
            memory.restarts_seen.insert(name.into(), 4);
        }
        memory.keep_only(&HashSet::from(["ed-a-2222-1".to_owned()]));
        for map in [&memory.crash_reported, &memory.restarts_seen] {
            assert_eq!(map.keys().collect::<Vec<_>>(), ["ed-a-2222-1"]);
        }
        assert_eq!(memory.failing.keys().collect::<Vec<_>>(), ["ed-a-2222-1"]);
    }
}
