//! Request and resource metrics as a bounded time series: raw samples at the
//! sampling interval (kept an hour), one-minute roll-ups (kept a day) and
//! one-hour roll-ups (kept 30 days). A roll-up sums counters (requests,
//! status classes, bytes, latency histogram buckets) and averages (weighted
//! by samples) or takes the maximum of gauges (in-flight, CPU, memory).

use crate::{from_json, to_json, Store, StoreResult};
use easydeploy_core::AppName;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// How finely samples are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Resolution {
    /// One row per sample, at the sampling interval.
    Raw,
    /// One row per minute.
    Minute,
    /// One row per hour.
    Hour,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Raw, Resolution::Minute, Resolution::Hour];

    /// Length of one roll-up period in ms (0 for raw samples).
    pub fn period_ms(self) -> i64 {
        match self {
            Resolution::Raw => 0,
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// How long rows of this resolution are kept, in ms.
    pub fn retention_ms(self) -> i64 {
        match self {
            Resolution::Raw => 3_600_000,
            Resolution::Minute => 24 * 3_600_000,
            Resolution::Hour => 30 * 24 * 3_600_000,
        }
    }

    fn code(self) -> i64 {
        self.period_ms() / 1000
    }
}

/// Traffic and resource figures over a period: one sample, or the sum of several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Unix ms: when a raw sample was taken, or where a roll-up's period starts.
    pub at_ms: i64,
    /// Seconds of traffic the figures cover.
    pub secs: f64,
    /// Samples folded in (the weight of the gauge averages).
    pub samples: u64,
    /// Requests received.
    pub requests: u64,
    /// Responses by class: 2xx, 3xx, 4xx, 5xx.
    pub responses_by_class: [u64; 4],
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Responses per latency bucket (see `easydeploy_core::ports::LATENCY_BUCKETS_MS`); empty when unknown.
    pub latency_buckets: Vec<u64>,
    /// Sum of response latencies, ms.
    pub latency_sum_ms: f64,
    /// Mean requests in flight.
    pub in_flight_avg: f64,
    /// Most requests in flight.
    pub in_flight_max: f64,
    /// Mean CPU use of the app's replicas together, percent of one core.
    pub cpu_percent_avg: f64,
    /// Highest CPU use.
    pub cpu_percent_max: f64,
    /// Mean memory use of the app's replicas together, bytes.
    pub memory_bytes_avg: f64,
    /// Highest memory use.
    pub memory_bytes_max: f64,
    /// Bytes the replicas received on the network.
    pub net_rx_bytes: u64,
    /// Bytes the replicas sent on the network.
    pub net_tx_bytes: u64,
}

impl MetricSample {
    /// Folds `other` in: counters add up, gauge means are weighted by
    /// samples, maxima take the larger. `at_ms` stays.
    pub fn merge(&mut self, other: &MetricSample) {
        let weight = self.samples + other.samples;
        let mean = |a: f64, wa: u64, b: f64, wb: u64| {
            if weight == 0 {
                0.0
            } else {
                (a * wa as f64 + b * wb as f64) / weight as f64
            }
        };
        self.in_flight_avg = mean(
            self.in_flight_avg,
            self.samples,
            other.in_flight_avg,
            other.samples,
        );
        self.cpu_percent_avg = mean(
            self.cpu_percent_avg,
            self.samples,
            other.cpu_percent_avg,
            other.samples,
        );
        self.memory_bytes_avg = mean(
            self.memory_bytes_avg,
            self.samples,
            other.memory_bytes_avg,
            other.samples,
        );
        self.in_flight_max = self.in_flight_max.max(other.in_flight_max);
        self.cpu_percent_max = self.cpu_percent_max.max(other.cpu_percent_max);
        self.memory_bytes_max = self.memory_bytes_max.max(other.memory_bytes_max);
        self.samples = weight;
        self.secs += other.secs;
        self.requests += other.requests;
        for (mine, theirs) in self.responses_by_class.iter_mut().zip(other.responses_by_class) {
            *mine += theirs;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        if self.latency_buckets.len() < other.latency_buckets.len() {
            self.latency_buckets.resize(other.latency_buckets.len(), 0);
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine += theirs;
        }
        self.latency_sum_ms += other.latency_sum_ms;
        self.net_rx_bytes += other.net_rx_bytes;
        self.net_tx_bytes += other.net_tx_bytes;
    }

    /// Latency quantile `q` (0..=1) from the histogram; `None` without responses in it.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        easydeploy_core::ports::latency_quantile_ms(&self.latency_buckets, q)
    }
}

/// The latest resource and traffic figures of one replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaFigures {
    /// Replica name.
    pub replica: String,
    /// Address the proxy dials, when known.
    pub addr: Option<String>,
    /// Requests the proxy sent it since the platform started, when known.
    pub requests: Option<u64>,
    /// Its 5xx responses since the platform started, when known.
    pub responses_5xx: Option<u64>,
    /// CPU use, percent of one core.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes (0 when unlimited).
    pub memory_limit_bytes: u64,
    /// Bytes received since the replica started.
    pub net_rx_bytes: u64,
    /// Bytes sent since the replica started.
    pub net_tx_bytes: u64,
}

fn sample_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<MetricSample> {
    let int = |name: &str| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(name)?.max(0) as u64) };
    Ok(MetricSample {
        at_ms: row.try_get("at")?,
        secs: row.try_get("secs")?,
        samples: int("samples")?,
        requests: int("requests")?,
        responses_by_class: [
            int("responses_2xx")?,
            int("responses_3xx")?,
            int("responses_4xx")?,
            int("responses_5xx")?,
        ],
        bytes_in: int("bytes_in")?,
        bytes_out: int("bytes_out")?,
        latency_buckets: from_json(&row.try_get::<String, _>("latency_buckets")?)?,
        latency_sum_ms: row.try_get("latency_sum_ms")?,
        in_flight_avg: row.try_get("in_flight_avg")?,
        in_flight_max: row.try_get("in_flight_max")?,
        cpu_percent_avg: row.try_get("cpu_percent_avg")?,
        cpu_percent_max: row.try_get("cpu_percent_max")?,
        memory_bytes_avg: row.try_get("memory_bytes_avg")?,
        memory_bytes_max: row.try_get("memory_bytes_max")?,
        net_rx_bytes: int("net_rx_bytes")?,
        net_tx_bytes: int("net_tx_bytes")?,
    })
}

/// SQLite integers are signed: counters saturate at `i64::MAX`.
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn upsert(
    tx: &mut sqlx::SqliteConnection,
    app: &AppName,
    resolution: Resolution,
    s: &MetricSample,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO metric_samples (app, resolution, at, secs, samples, requests, \
         responses_2xx, responses_3xx, responses_4xx, responses_5xx, bytes_in, bytes_out, \
         latency_buckets, latency_sum_ms, in_flight_avg, in_flight_max, cpu_percent_avg, \
         cpu_percent_max, memory_bytes_avg, memory_bytes_max, net_rx_bytes, net_tx_bytes) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(app.as_str())
    .bind(resolution.code())
    .bind(s.at_ms)
    .bind(s.secs)
    .bind(signed(s.samples))
    .bind(signed(s.requests))
    .bind(signed(s.responses_by_class[0]))
    .bind(signed(s.responses_by_class[1]))
    .bind(signed(s.responses_by_class[2]))
    .bind(signed(s.responses_by_class[3]))
    .bind(signed(s.bytes_in))
    .bind(signed(s.bytes_out))
    .bind(to_json(&s.latency_buckets))
    .bind(s.latency_sum_ms)
    .bind(s.in_flight_avg)
    .bind(s.in_flight_max)
    .bind(s.cpu_percent_avg)
    .bind(s.cpu_percent_max)
    .bind(s.memory_bytes_avg)
    .bind(s.memory_bytes_max)
    .bind(signed(s.net_rx_bytes))
    .bind(signed(s.net_tx_bytes))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores one raw sample (taken at `sample.at_ms`) and folds it into the
    /// minute and hour roll-ups it falls in.
    pub async fn record_metrics(&self, app: &AppName, sample: &MetricSample) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let raw = MetricSample {
            samples: sample.samples.max(1),
            ..sample.clone()
        };
        upsert(&mut tx, app, Resolution::Raw, &raw).await?;
        for resolution in [Resolution::Minute, Resolution::Hour] {
            let start = raw.at_ms.div_euclid(resolution.period_ms()) * resolution.period_ms();
            let existing =
                sqlx::query("SELECT * FROM metric_samples WHERE app = ? AND resolution = ? AND at = ?")
                    .bind(app.as_str())
                    .bind(resolution.code())
                    .bind(start)
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut rolled = match existing {
                Some(row) => sample_from_row(&row)?,
                None => MetricSample {
                    at_ms: start,
                    ..Default::default()
                },
            };
            rolled.merge(&raw);
            upsert(&mut tx, app, resolution, &rolled).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes rows older than their resolution keeps them (relative to
    /// `now_ms`); returns how many went.
    pub async fn prune_metrics(&self, now_ms: i64) -> StoreResult<u64> {
        let mut removed = 0;
        for resolution in Resolution::ALL {
            // A roll-up goes once its whole period is older than the retention.
            let before = now_ms - resolution.retention_ms() - resolution.period_ms();
            let done = sqlx::query("DELETE FROM metric_samples WHERE resolution = ? AND at < ?")
                .bind(resolution.code())
                .bind(before)
                .execute(&self.writer)
                .await?;
            removed += done.rows_affected();
        }
        Ok(removed)
    }

    /// An app's rows of one resolution with `from_ms <= at < to_ms`, oldest first.
    pub async fn metric_samples(
        &self,
        app: &AppName,
        resolution: Resolution,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<MetricSample>> {
        let rows = sqlx::query(
            "SELECT * FROM metric_samples WHERE app = ? AND resolution = ? AND at >= ? AND at < ? ORDER BY at",
        )
        .bind(app.as_str())
        .bind(resolution.code())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sample_from_row).collect()
    }

    /// Rows kept for an app at one resolution.
    pub async fn metric_rows(&self, app: &AppName, resolution: Resolution) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM metric_samples WHERE app = ? AND resolution = ?")
                .bind(app.as_str())
                .bind(resolution.code())
                .fetch_one(&self.pool)
                .await?;
        Ok(n.max(0) as u64)
    }

    /// Every figure of an app over the last `window_ms` before `now_ms`,
    /// summed from the finest resolution that still covers the window.
    pub async fn metrics_over(
        &self,
        app: &AppName,
        now_ms: i64,
        window_ms: i64,
    ) -> StoreResult<MetricSample> {
        let resolution = Resolution::ALL
            .into_iter()
            .find(|r| r.retention_ms() >= window_ms)
            .unwrap_or(Resolution::Hour);
        // Roll-ups are found by their period start: include the period holding the window's start.
        let from = now_ms - window_ms;
        let from = match resolution {
            Resolution::Raw => from + 1,
            r => from.div_euclid(r.period_ms()) * r.period_ms(),
        };
        let mut total = MetricSample {
            at_ms: from,
            ..Default::default()
        };
        for sample in self.metric_samples(app, resolution, from, now_ms + 1).await? {
            total.merge(&sample);
        }
        Ok(total)
    }

    /// Replaces the latest per-replica figures of an app (taken at `at_ms`).
    pub async fn set_replica_figures(
        &self,
        app: &AppName,
        at_ms: i64,
        figures: &[ReplicaFigures],
    ) -> StoreResult<()> {
        sqlx::query("INSERT OR REPLACE INTO metric_replicas (app, at, figures) VALUES (?, ?, ?)")
            .bind(app.as_str())
            .bind(at_ms)
            .bind(to_json(&figures))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The latest per-replica figures of an app and when they were taken (unix ms).
    pub async fn replica_figures(&self, app: &AppName) -> StoreResult<Option<(i64, Vec<ReplicaFigures>)>> {
        let row = sqlx::query("SELECT at, figures FROM metric_replicas WHERE app = ?")
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok((
                row.try_get("at")?,
                from_json(&row.try_get::<String, _>("figures")?)?,
            ))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_sums_counters_weights_means_and_keeps_maxima() {
        let mut a = MetricSample {
            samples: 1,
            secs: 10.0,
            requests: 10,
            responses_by_class: [8, 0, 1, 1],
            latency_buckets: vec![1, 2],
            cpu_percent_avg: 10.0,
            cpu_percent_max: 10.0,
            ..Default::default()
        };
        let b = MetricSample {
            samples: 3,
            secs: 30.0,
            requests: 5,
            responses_by_class: [5, 0, 0, 0],
            latency_buckets: vec![0, 1, 4],
            cpu_percent_avg: 50.0,
            cpu_percent_max: 90.0,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.samples, 4);
        assert_eq!(a.secs, 40.0);
        assert_eq!(a.requests, 15);
        assert_eq!(a.responses_by_class, [13, 0, 1, 1]);
        assert_eq!(a.latency_buckets, vec![1, 3, 4]);
        assert_eq!(a.cpu_percent_avg, 40.0);
        assert_eq!(a.cpu_percent_max, 90.0);
    }
}
