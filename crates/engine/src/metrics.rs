//! The metrics sampler: every interval, for each app, reads the proxy's
//! cumulative traffic figures and the runtime's resource figures, and
//! stores what changed since the last tick as one sample (plus the latest
//! per-replica figures). Counters restart from zero with the platform: a
//! counter that went down counts its new value as the change.

use crate::Engine;
use easydeploy_core::ports::{LoadMetrics, ReplicaStats, TrafficFigures};
use easydeploy_core::AppName;
use easydeploy_store::{MetricSample, ReplicaFigures};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the sampler last saw of an app.
#[derive(Default)]
struct Last {
    at: Option<Instant>,
    traffic: Option<TrafficFigures>,
    /// Per replica: (received, sent) network bytes.
    network: HashMap<String, (u64, u64)>,
}

/// Runs until `shutdown`.
pub(crate) async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut last: HashMap<String, Last> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.config.metrics_interval) => {}
        }
        if let Err(e) = engine.sample_metrics(&mut last).await {
            tracing::warn!(error = %e, "sampling metrics failed");
        }
    }
}

/// The app's cumulative traffic: every figure when the proxy has them,
/// else requests and status classes alone.
pub(crate) fn traffic_of(load: &dyn LoadMetrics, app: &str) -> Option<TrafficFigures> {
    if let Some(all) = load.traffic(app) {
        return Some(all);
    }
    let requests = load.requests_total(app)?;
    Some(TrafficFigures {
        requests,
        responses_by_class: load.responses_by_class(app).unwrap_or_default(),
        ..Default::default()
    })
}

/// Change of a cumulative counter; a counter that went down was reset, and
/// its new value is the change.
fn change(before: u64, now: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

/// The traffic between two readings of cumulative figures (`before` is
/// `None` on the first reading: everything counted so far is new).
/// In-flight is a gauge and is taken as is.
pub(crate) fn traffic_change(before: Option<&TrafficFigures>, now: &TrafficFigures) -> TrafficFigures {
    let zero = TrafficFigures::default();
    let before = before.unwrap_or(&zero);
    // A reset shows on the request counter first: then every counter restarted.
    let reset = now.requests < before.requests;
    let d = |b: u64, n: u64| if reset { n } else { change(b, n) };
    let mut classes = [0; 4];
    for (i, class) in classes.iter_mut().enumerate() {
        *class = d(before.responses_by_class[i], now.responses_by_class[i]);
    }
    let buckets = now
        .latency_buckets
        .iter()
        .enumerate()
        .map(|(i, n)| d(before.latency_buckets.get(i).copied().unwrap_or(0), *n))
        .collect();
    let sum = if reset || now.latency_sum_ms < before.latency_sum_ms {
        now.latency_sum_ms
    } else {
        now.latency_sum_ms - before.latency_sum_ms
    };
    TrafficFigures {
        requests: d(before.requests, now.requests),
        responses_by_class: classes,
        in_flight: now.in_flight,
        bytes_in: d(before.bytes_in, now.bytes_in),
        bytes_out: d(before.bytes_out, now.bytes_out),
        latency_buckets: buckets,
        latency_sum_ms: sum,
    }
}

/// Apps read at the same time in one pass (the runtime's stats take about a second).
const CONCURRENT_READS: usize = 8;

/// What one pass read of an app.
struct Reading {
    traffic: Option<TrafficFigures>,
    stats: Vec<ReplicaStats>,
}

impl Last {
    /// The sample of a reading taken `secs` after the previous one (at
    /// `at_ms`); remembers the reading for the next.
    fn next_sample(&mut self, reading: Reading, secs: f64, at_ms: i64) -> MetricSample {
        let delta = reading
            .traffic
            .as_ref()
            .map(|t| traffic_change(self.traffic.as_ref(), t))
            .unwrap_or_default();
        let (mut rx, mut tx) = (0u64, 0u64);
        let mut network = HashMap::new();
        for s in &reading.stats {
            // A replica seen for the first time counts everything since it started.
            let (before_rx, before_tx) = self.network.get(&s.replica).copied().unwrap_or((0, 0));
            rx += change(before_rx, s.net_rx_bytes);
            tx += change(before_tx, s.net_tx_bytes);
            network.insert(s.replica.clone(), (s.net_rx_bytes, s.net_tx_bytes));
        }
        let cpu: f64 = reading.stats.iter().map(|s| s.cpu_percent).sum();
        let memory: f64 = reading.stats.iter().map(|s| s.memory_bytes as f64).sum();
        let in_flight = delta.in_flight as f64;
        // Without a reading (the proxy forgot the app for a while) the last one stays the baseline.
        if reading.traffic.is_some() {
            self.traffic = reading.traffic;
        }
        self.network = network;
        MetricSample {
            at_ms,
            secs,
            samples: 1,
            requests: delta.requests,
            responses_by_class: delta.responses_by_class,
            bytes_in: delta.bytes_in,
            bytes_out: delta.bytes_out,
            latency_buckets: delta.latency_buckets,
            latency_sum_ms: delta.latency_sum_ms,
            in_flight_avg: in_flight,
            in_flight_max: in_flight,
            cpu_percent_avg: cpu,
            cpu_percent_max: cpu,
            memory_bytes_avg: memory,
            memory_bytes_max: memory,
            net_rx_bytes: rx,
            net_tx_bytes: tx,
        }
    }
}

impl Engine {
    /// One sampling pass over every app: the proxy's figures of every app
    /// first (same instant), then the runtime's, several apps at a time;
    /// then the samples are stored and old rows pruned.
    async fn sample_metrics(&self, last: &mut HashMap<String, Last>) -> Result<(), crate::EngineError> {
        use futures_util::StreamExt;
        let apps = self.store.apps().await?;
        last.retain(|name, _| apps.iter().any(|a| a.name.as_str() == name));
        let now = Instant::now();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let load = self.load.get();
        let traffic: Vec<Option<TrafficFigures>> = apps
            .iter()
            .map(|app| load.and_then(|load| traffic_of(load.as_ref(), app.name.as_str())))
            .collect();
        let wanted: Vec<(AppName, bool)> = apps
            .iter()
            .map(|a| (a.name.clone(), a.live_deployment.is_some()))
            .collect();
        let runtime = Arc::clone(&self.backends.runtime);
        let stats: Vec<Vec<ReplicaStats>> = futures_util::stream::iter(wanted)
            .map(move |(app, live)| {
                let runtime = Arc::clone(&runtime);
                async move {
                    if !live {
                        return Vec::new();
                    }
                    match runtime.stats(&app).await {
                        Ok(stats) => stats,
                        Err(e) => {
                            tracing::debug!(app = %app, error = %e, "no replica figures");
                            Vec::new()
                        }
                    }
                }
            })
            .buffered(CONCURRENT_READS)
            .collect()
            .await;
        for ((app, traffic), stats) in apps.iter().zip(traffic).zip(stats) {
            let live = app.live_deployment.is_some();
            if traffic.is_none() && !live {
                continue;
            }
            let seen = last.entry(app.name.to_string()).or_default();
            let secs = seen
                .at
                .map_or(self.config.metrics_interval, |at| now.duration_since(at))
                .as_secs_f64();
            let figures = if live {
                Some(self.replica_figures(&app.name, &stats).await)
            } else {
                None
            };
            let sample = seen.next_sample(Reading { traffic, stats }, secs, at_ms);
            seen.at = Some(now);
            let stored = async {
                self.store.record_metrics(&app.name, &sample).await?;
                if let Some(figures) = figures {
                    self.store.set_replica_figures(&app.name, at_ms, &figures).await?;
                }
                Ok::<_, easydeploy_store::StoreError>(())
            };
            if let Err(e) = stored.await {
                tracing::warn!(app = %app.name, error = %e, "could not store the app's metrics");
            }
        }
        self.store.prune_metrics(at_ms).await?;
        Ok(())
    }

    /// Resource figures joined with the proxy's per-replica traffic (keyed by address).
    async fn replica_figures(&self, app: &AppName, stats: &[ReplicaStats]) -> Vec<ReplicaFigures> {
        let by_addr: HashMap<String, TrafficFigures> = self
            .load
            .get()
            .map(|load| load.traffic_by_replica(app.as_str()).into_iter().collect())
            .unwrap_or_default();
        let addrs: HashMap<String, Option<String>> = match self.backends.runtime.status(app).await {
            Ok(replicas) => replicas.into_iter().map(|r| (r.name, r.addr)).collect(),
            Err(_) => HashMap::new(),
        };
        stats
            .iter()
            .map(|s| {
                let addr = addrs.get(&s.replica).cloned().flatten();
                let traffic = addr.as_ref().and_then(|a| by_addr.get(a));
                ReplicaFigures {
                    replica: s.replica.clone(),
                    addr,
                    requests: traffic.map(|t| t.requests),
                    responses_5xx: traffic.map(|t| t.responses_by_class[3]),
                    cpu_percent: s.cpu_percent,
                    memory_bytes: s.memory_bytes,
                    memory_limit_bytes: s.memory_limit_bytes,
                    net_rx_bytes: s.net_rx_bytes,
                    net_tx_bytes: s.net_tx_bytes,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(requests: u64, errors: u64, slow: u64, in_flight: u64) -> TrafficFigures {
        let mut buckets = vec![0; 15];
        buckets[2] = requests - slow;
        buckets[9] = slow;
        TrafficFigures {
            requests,
            responses_by_class: [requests - errors, 0, 0, errors],
            in_flight,
            bytes_in: requests * 10,
            bytes_out: requests * 100,
            latency_buckets: buckets,
            latency_sum_ms: requests as f64,
        }
    }

    #[test]
    fn changes_between_readings_are_stored_and_a_reset_counts_from_zero() {
        // The first reading: everything so far is new.
        let first = figures(10, 1, 0, 3);
        assert_eq!(traffic_change(None, &first), first);
        // Later: the difference, with in-flight as read.
        let second = figures(25, 2, 5, 1);
        let d = traffic_change(Some(&first), &second);
        assert_eq!(d.requests, 15);
        assert_eq!(d.responses_by_class, [14, 0, 0, 1]);
        assert_eq!((d.bytes_in, d.bytes_out), (150, 1500));
        assert_eq!(d.latency_buckets[2], 10);
        assert_eq!(d.latency_buckets[9], 5);
        assert_eq!(d.latency_sum_ms, 15.0);
        assert_eq!(d.in_flight, 1);
        // The platform restarted: counters went down and start again.
        let after_restart = figures(4, 0, 1, 0);
        let d = traffic_change(Some(&second), &after_restart);
        assert_eq!(d, after_restart);
        // A histogram appearing later (proxy upgraded) counts from zero.
        let mut without = figures(5, 0, 0, 0);
        without.latency_buckets.clear();
        let d = traffic_change(Some(&without), &figures(8, 0, 2, 0));
        assert_eq!(d.requests, 3);
        assert_eq!(d.latency_buckets[9], 2);
    }

    struct CountsOnly;
    impl LoadMetrics for CountsOnly {
        fn requests_total(&self, app: &str) -> Option<u64> {
            (app == "shop").then_some(7)
        }
        fn responses_by_class(&self, _app: &str) -> Option<[u64; 4]> {
            Some([6, 0, 0, 1])
        }
    }

    fn stats(replica: &str, cpu: f64, memory: u64, rx: u64, tx: u64) -> ReplicaStats {
        ReplicaStats {
            replica: replica.into(),
            cpu_percent: cpu,
            memory_bytes: memory,
            memory_limit_bytes: 1 << 30,
            net_rx_bytes: rx,
            net_tx_bytes: tx,
        }
    }

    #[test]
    fn samples_sum_replicas_and_count_network_changes_per_replica() {
        let mut last = Last::default();
        let first = last.next_sample(
            Reading {
                traffic: Some(figures(10, 1, 2, 4)),
                stats: vec![
                    stats("a-1", 10.0, 100, 1000, 2000),
                    stats("a-2", 30.0, 300, 500, 500),
                ],
            },
            10.0,
            1,
        );
        assert_eq!((first.at_ms, first.secs, first.samples), (1, 10.0, 1));
        assert_eq!(first.requests, 10);
        assert_eq!(first.latency_buckets[9], 2);
        assert_eq!((first.in_flight_avg, first.in_flight_max), (4.0, 4.0));
        assert_eq!((first.cpu_percent_avg, first.cpu_percent_max), (40.0, 40.0));
        assert_eq!(first.memory_bytes_avg, 400.0);
        assert_eq!((first.net_rx_bytes, first.net_tx_bytes), (1500, 2500));

        // a-2 was replaced by a-3 (counting from its start); a-1 moved on.
        let second = last.next_sample(
            Reading {
                traffic: Some(figures(30, 1, 2, 0)),
                stats: vec![stats("a-1", 5.0, 150, 1100, 2600), stats("a-3", 1.0, 50, 40, 60)],
            },
            10.0,
            2,
        );
        assert_eq!(second.requests, 20);
        assert_eq!(second.responses_by_class[3], 0);
        assert_eq!(second.latency_buckets[9], 0);
        assert_eq!(second.cpu_percent_avg, 6.0);
        assert_eq!(second.memory_bytes_avg, 200.0);
        assert_eq!((second.net_rx_bytes, second.net_tx_bytes), (140, 660));

        // The proxy knows nothing of the app: a sample of resources alone.
        let third = last.next_sample(
            Reading {
                traffic: None,
                stats: vec![stats("a-1", 5.0, 150, 1100, 2600)],
            },
            10.0,
            3,
        );
        assert_eq!(third.requests, 0);
        assert!(third.latency_buckets.is_empty());
        assert_eq!((third.net_rx_bytes, third.net_tx_bytes), (0, 0));
        // ...and when it comes back lower (a restart), it counts from zero.
        let fourth = last.next_sample(
            Reading {
                traffic: Some(figures(3, 0, 0, 0)),
                stats: vec![],
            },
            10.0,
            4,
        );
        assert_eq!(fourth.requests, 3);
    }

    #[test]
    fn a_proxy_without_full_figures_still_gives_requests_and_classes() {
        let t = traffic_of(&CountsOnly, "shop").unwrap();
        assert_eq!(t.requests, 7);
        assert_eq!(t.responses_by_class, [6, 0, 0, 1]);
        assert!(t.latency_buckets.is_empty());
        assert!(traffic_of(&CountsOnly, "other").is_none());
    }
}
