//! Resource use of running containers, from the engine's stats endpoint.

use bollard::container::{MemoryStatsStats, Stats, StatsOptions};
use bollard::Docker;
use easydeploy_core::ports::ReplicaStats;
use futures_util::StreamExt;
use std::time::Duration;

/// Whether a failure to read stats was logged as a warning already.
static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Bound on one stats call (the engine waits for two CPU readings, about a second).
const STATS_TIMEOUT: Duration = Duration::from_secs(10);

/// One reading of a running container: CPU between the engine's two
/// samples, memory in use (without reclaimable page cache), network totals.
/// `None` when the container is gone or the engine does not answer in time.
pub(crate) async fn container_stats(docker: &Docker, name: String) -> Option<ReplicaStats> {
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    let mut stream = docker.stats(&name, Some(options));
    let reading = match tokio::time::timeout(STATS_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(stats))) => stats,
        Ok(Some(Err(e))) => {
            // Said once loudly (e.g. an engine whose stats this client cannot
            // read), then quietly: the sampler asks every few seconds.
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(container = %name, error = %e, "cannot read container stats: replicas show no CPU, memory or network figures");
            } else {
                tracing::debug!(container = %name, error = %e, "no stats for a container");
            }
            return None;
        }
        Ok(None) | Err(_) => return None,
    };
    Some(figures(name, &reading))
}

/// The figures of a stats reading.
pub(crate) fn figures(replica: String, stats: &Stats) -> ReplicaStats {
    let (rx, tx) = stats
        .networks
        .iter()
        .flat_map(|n| n.values())
        .chain(stats.network.iter())
        .fold((0u64, 0u64), |(rx, tx), n| (rx + n.rx_bytes, tx + n.tx_bytes));
    let memory = &stats.memory_stats;
    let cache = match memory.stats {
        Some(MemoryStatsStats::V1(v1)) => v1.total_inactive_file,
        Some(MemoryStatsStats::V2(v2)) => v2.inactive_file,
        None => 0,
    };
    let usage = memory.usage.unwrap_or(0);
    ReplicaStats {
        replica,
        cpu_percent: cpu_percent(stats),
        memory_bytes: usage.saturating_sub(cache),
        memory_limit_bytes: memory.limit.unwrap_or(0),
        net_rx_bytes: rx,
        net_tx_bytes: tx,
    }
}

/// CPU use between the reading and the one before it, in percent of one
/// core (the `docker stats` formula); 0 without a previous reading.
fn cpu_percent(stats: &Stats) -> f64 {
    let (now, before) = (&stats.cpu_stats, &stats.precpu_stats);
    let used = now
        .cpu_usage
        .total_usage
        .saturating_sub(before.cpu_usage.total_usage);
    let system = now
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(before.system_cpu_usage.unwrap_or(0));
    if used == 0 || system == 0 {
        return 0.0;
    }
    let cpus = now
        .online_cpus
        .filter(|n| *n > 0)
        .or_else(|| now.cpu_usage.percpu_usage.as_ref().map(|p| p.len() as u64))
        .unwrap_or(1)
        .max(1);
    used as f64 / system as f64 * cpus as f64 * 100.0
}
