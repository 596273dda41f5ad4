//! Metrics time series: roll-up arithmetic, the bound kept by pruning,
//! window sums, per-replica figures and the schema upgrade of an existing database.

use easydeploy_store::{MetricSample, ReplicaFigures, Resolution, Store};

mod common;
use common::{name, settings, store_with_app};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// A 10-second sample at `at_ms` with `requests` requests (one 5xx), all
/// in latency bucket `bucket`, and the given CPU and in-flight gauges.
fn sample(at_ms: i64, requests: u64, bucket: usize, cpu: f64, in_flight: f64) -> MetricSample {
    let mut buckets = vec![0; 15];
    buckets[bucket] = requests;
    MetricSample {
        at_ms,
        secs: 10.0,
        samples: 1,
        requests,
        responses_by_class: [requests.saturating_sub(1), 0, 0, requests.min(1)],
        bytes_in: requests * 100,
        bytes_out: requests * 1000,
        latency_buckets: buckets,
        latency_sum_ms: requests as f64 * 3.0,
        in_flight_avg: in_flight,
        in_flight_max: in_flight,
        cpu_percent_avg: cpu,
        cpu_percent_max: cpu,
        memory_bytes_avg: 1000.0,
        memory_bytes_max: 1000.0,
        net_rx_bytes: 7,
        net_tx_bytes: 11,
    }
}

#[tokio::test]
async fn roll_ups_sum_counters_and_average_gauges() {
    let (_d, store, app) = store_with_app("shop").await;
    // An hour boundary + 5 s: six samples in the first minute, two in the next.
    let base = 1_700_002_800_000_i64; // a whole hour
    assert_eq!(base % HOUR, 0);
    let cpus = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 90.0];
    for (i, cpu) in cpus.iter().enumerate() {
        let at = base + 5_000 + i as i64 * 10_000;
        let bucket = if i == 7 { 8 } else { 2 };
        store
            .record_metrics(&app, &sample(at, 10 + i as u64, bucket, *cpu, i as f64))
            .await
            .unwrap();
    }
    let raw = store
        .metric_samples(&app, Resolution::Raw, base, base + HOUR)
        .await
        .unwrap();
    assert_eq!(raw.len(), 8);

    let minutes = store
        .metric_samples(&app, Resolution::Minute, base, base + HOUR)
        .await
        .unwrap();
    assert_eq!(
        minutes.iter().map(|m| m.at_ms).collect::<Vec<_>>(),
        [base, base + MINUTE]
    );
    let first = &minutes[0];
    assert_eq!(first.samples, 6);
    assert_eq!(first.secs, 60.0);
    assert_eq!(first.requests, 10 + 11 + 12 + 13 + 14 + 15);
    assert_eq!(first.responses_by_class, [75 - 6, 0, 0, 6]);
    assert_eq!(first.bytes_in, 7500);
    assert_eq!(first.bytes_out, 75_000);
    assert_eq!(first.latency_buckets[2], 75);
    assert_eq!(first.latency_sum_ms, 225.0);
    assert_eq!(first.cpu_percent_avg, 35.0);
    assert_eq!(first.cpu_percent_max, 60.0);
    assert_eq!(first.in_flight_avg, 2.5);
    assert_eq!(first.in_flight_max, 5.0);
    assert_eq!(first.memory_bytes_avg, 1000.0);
    assert_eq!(first.net_rx_bytes, 42);
    assert_eq!(first.net_tx_bytes, 66);
    let second = &minutes[1];
    assert_eq!((second.samples, second.requests), (2, 16 + 17));
    assert_eq!(second.cpu_percent_avg, 80.0);
    assert_eq!(second.latency_buckets[8], 17);

    let hours = store
        .metric_samples(&app, Resolution::Hour, base - HOUR, base + 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(hours.len(), 1);
    let hour = &hours[0];
    assert_eq!(hour.at_ms, base);
    assert_eq!(hour.samples, 8);
    assert_eq!(hour.requests, raw.iter().map(|s| s.requests).sum::<u64>());
    assert_eq!(hour.cpu_percent_avg, cpus.iter().sum::<f64>() / 8.0);
    assert_eq!(hour.cpu_percent_max, 90.0);
    assert_eq!(hour.latency_buckets[2], 75 + 16);
    assert_eq!(hour.latency_buckets[8], 17);

    // The p95 of the hour falls in the slow bucket (17 of 108 responses, 250-500 ms).
    let p95 = hour.latency_quantile_ms(0.95).unwrap();
    assert!((250.0..=500.0).contains(&p95), "{p95}");
    let p50 = hour.latency_quantile_ms(0.5).unwrap();
    assert!((2.5..=5.0).contains(&p50), "{p50}");

    // A window sums what it covers: the last 25 s hold the last two samples.
    let now = base + 5_000 + 7 * 10_000;
    let last = store.metrics_over(&app, now, 25_000).await.unwrap();
    assert_eq!((last.samples, last.requests), (3, 15 + 16 + 17));
    let all = store.metrics_over(&app, now, HOUR).await.unwrap();
    assert_eq!(all.requests, hour.requests);
    // Beyond the raw retention the minute roll-ups answer, with the same sum.
    let day = store.metrics_over(&app, now, 6 * HOUR).await.unwrap();
    assert_eq!(day.requests, hour.requests);
    assert_eq!(day.latency_buckets, hour.latency_buckets);
}

#[tokio::test]
async fn pruning_keeps_the_series_bounded() {
    let (_d, store, app) = store_with_app("shop").await;
    let now = 1_800_000_000_000_i64;
    // Two hours of 10-second samples, then a sample every 6 hours for 40 days.
    let mut ats: Vec<i64> = (0..720).map(|i| now - i * 10_000).collect();
    ats.extend((0..160).map(|i| now - 2 * HOUR - i * 6 * HOUR));
    for at in &ats {
        store
            .record_metrics(&app, &sample(*at, 1, 0, 1.0, 0.0))
            .await
            .unwrap();
    }
    assert_eq!(store.metric_rows(&app, Resolution::Raw).await.unwrap(), 880);
    let removed = store.prune_metrics(now).await.unwrap();
    assert!(removed > 0);
    let raw = store.metric_rows(&app, Resolution::Raw).await.unwrap();
    let minutes = store.metric_rows(&app, Resolution::Minute).await.unwrap();
    let hours = store.metric_rows(&app, Resolution::Hour).await.unwrap();
    // An hour of raw samples (and the one on its edge), a day of minutes, 30 days of hours.
    assert!((360..=361).contains(&raw), "{raw}");
    assert!(minutes <= 24 * 60 + 1, "{minutes}");
    assert!(hours <= 30 * 24 + 1, "{hours}");
    // What is left is what the retention promises: raw samples of the last hour...
    let kept = store
        .metric_samples(&app, Resolution::Raw, 0, now + 1)
        .await
        .unwrap();
    assert!(kept.iter().all(|s| s.at_ms >= now - HOUR - 1));
    // ...and hour roll-ups reaching back 30 days but no further.
    let oldest = store
        .metric_samples(&app, Resolution::Hour, 0, now + 1)
        .await
        .unwrap()[0]
        .at_ms;
    assert!(
        oldest >= now - 30 * 24 * HOUR - HOUR && oldest < now - 29 * 24 * HOUR,
        "{oldest}"
    );
    // Pruning again removes nothing more.
    assert_eq!(store.prune_metrics(now).await.unwrap(), 0);
}

#[tokio::test]
async fn replica_figures_are_replaced_and_go_with_the_app() {
    let (_d, store, app) = store_with_app("shop").await;
    assert!(store.replica_figures(&app).await.unwrap().is_none());
    let one = ReplicaFigures {
        replica: "ed-shop-1".into(),
        cpu_percent: 12.5,
        memory_bytes: 1 << 20,
        ..Default::default()
    };
    store
        .set_replica_figures(&app, 1, std::slice::from_ref(&one))
        .await
        .unwrap();
    let two = ReplicaFigures {
        replica: "ed-shop-2".into(),
        ..one.clone()
    };
    store
        .set_replica_figures(&app, 2, &[one.clone(), two.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.replica_figures(&app).await.unwrap(),
        Some((2, vec![one, two]))
    );
    store
        .record_metrics(&app, &sample(5, 1, 0, 1.0, 0.0))
        .await
        .unwrap();
    store.delete_app(&app).await.unwrap();
    assert!(store.replica_figures(&app).await.unwrap().is_none());
    assert_eq!(store.metric_rows(&app, Resolution::Raw).await.unwrap(), 0);
}

#[tokio::test]
async fn a_version_one_database_gains_the_metrics_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let app = name("old");
    {
        let store = Store::open(&path).await.unwrap();
        store.create_app(&app, "t", &settings()).await.unwrap();
    }
    // Make it look like a database of the previous version.
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("DROP TABLE metric_samples; DROP TABLE metric_replicas; PRAGMA user_version = 1")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.app(&app).await.unwrap().name, app);
    store
        .record_metrics(&app, &sample(5, 3, 0, 1.0, 0.0))
        .await
        .unwrap();
    assert_eq!(store.metric_rows(&app, Resolution::Raw).await.unwrap(), 1);
}
