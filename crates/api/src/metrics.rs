//! Request and resource metrics of an app as a JSON time series, and the
//! per-app traffic and per-replica series of the Prometheus `/metrics` page.

use crate::extract::Query;
use crate::{ApiError, ApiState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use easydeploy_core::ports::{LoadMetrics, TrafficFigures, LATENCY_BUCKETS_MS};
use easydeploy_store::{MetricSample, ReplicaFigures, Resolution};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Most points one answer may hold.
pub const MAX_POINTS: i64 = 1000;
/// Longest window: what the hourly roll-ups keep.
const MAX_WINDOW_SECS: i64 = 30 * 24 * 3600;

/// Time series options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MetricsQuery {
    /// How far back: a number with a unit `s`, `m`, `h` or `d` (default `1h`, at most `30d`).
    pub window: Option<String>,
    /// Width of one point, same format (default: the window / 60, at least `1s`).
    pub step: Option<String>,
}

/// Figures of one step of the series (or of the whole window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MetricPoint {
    /// Start of the step (RFC 3339).
    pub at: String,
    /// Requests received.
    pub requests: u64,
    /// 2xx responses.
    pub responses_2xx: u64,
    /// 3xx responses.
    pub responses_3xx: u64,
    /// 4xx responses.
    pub responses_4xx: u64,
    /// 5xx responses.
    pub responses_5xx: u64,
    /// Requests per second over the time the samples cover.
    pub request_rate: f64,
    /// Median latency (ms) from the latency histogram; null without data.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency (ms); null without data.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency (ms); null without data.
    pub latency_p99_ms: Option<f64>,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Mean requests in flight; null without samples.
    pub in_flight: Option<f64>,
    /// Mean CPU use of the replicas together, percent of one core; null without samples.
    pub cpu_percent: Option<f64>,
    /// Mean memory use of the replicas together, bytes; null without samples.
    pub memory_bytes: Option<f64>,
    /// Samples the step holds.
    pub samples: u64,
}

impl MetricPoint {
    fn of(at_ms: i64, s: &MetricSample) -> Self {
        let sampled = s.samples > 0;
        let gauge = |v: f64| sampled.then_some(v);
        Self {
            at: rfc3339(at_ms),
            requests: s.requests,
            responses_2xx: s.responses_by_class[0],
            responses_3xx: s.responses_by_class[1],
            responses_4xx: s.responses_by_class[2],
            responses_5xx: s.responses_by_class[3],
            request_rate: if s.secs > 0.0 {
                s.requests as f64 / s.secs
            } else {
                0.0
            },
            latency_p50_ms: s.latency_quantile_ms(0.50),
            latency_p95_ms: s.latency_quantile_ms(0.95),
            latency_p99_ms: s.latency_quantile_ms(0.99),
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            in_flight: gauge(s.in_flight_avg),
            cpu_percent: gauge(s.cpu_percent_avg),
            memory_bytes: gauge(s.memory_bytes_avg),
            samples: s.samples,
        }
    }
}

/// An app's metrics over a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AppMetrics {
    /// The app.
    pub app: String,
    /// Window length, seconds.
    pub window_secs: i64,
    /// Step width, seconds.
    pub step_secs: i64,
    /// Resolution of the stored rows the series is made of, seconds (0: raw samples).
    pub resolution_secs: i64,
    /// Start of the first step (RFC 3339).
    pub from: String,
    /// End of the last step (RFC 3339).
    pub to: String,
    /// The whole window summed.
    pub totals: MetricPoint,
    /// One point per step, oldest first.
    pub points: Vec<MetricPoint>,
    /// When the replica figures were taken (RFC 3339); null before the first sample.
    pub sampled_at: Option<String>,
    /// The latest figures of each running replica.
    pub replicas: Vec<ReplicaFigures>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Parses `90s`, `15m`, `1h`, `7d` (or bare seconds) into seconds.
pub fn parse_duration(what: &str, raw: &str) -> Result<i64, ApiError> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(bad(
                "invalid_duration",
                format!("{what} '{raw}' has an unknown unit: use s, m, h or d (e.g. 90s, 15m, 1h, 7d)"),
            ))
        }
    };
    let n: i64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        bad(
            "invalid_duration",
            format!("{what} '{raw}' must be a positive whole number with a unit (e.g. 90s, 15m, 1h, 7d)"),
        )
    })?;
    n.checked_mul(unit_secs)
        .filter(|secs| *secs <= MAX_WINDOW_SECS)
        .ok_or_else(|| {
            bad(
                "window_too_long",
                format!("{what} '{raw}' is longer than 30 days"),
            )
        })
}

/// Validated window and step, in seconds.
pub fn window_and_step(window: Option<&str>, step: Option<&str>) -> Result<(i64, i64), ApiError> {
    let window = window.map_or(Ok(3600), |w| parse_duration("window", w))?;
    let step = step.map_or(Ok((window / 60).max(1)), |s| parse_duration("step", s))?;
    if step > window {
        return Err(bad(
            "step_exceeds_window",
            format!("the step ({step} s) is longer than the window ({window} s)"),
        ));
    }
    let points = (window + step - 1) / step;
    if points > MAX_POINTS {
        return Err(bad(
            "too_many_points",
            format!("a {window} s window in {step} s steps makes {points} points; at most {MAX_POINTS} are allowed: use a longer step"),
        ));
    }
    Ok((window, step))
}

/// The stored resolution a series is made of: the coarsest one that still
/// covers the window and is no wider than a step (the finest covering one
/// when every covering one is wider).
pub fn resolution_for(window_secs: i64, step_secs: i64) -> Resolution {
    let covering: Vec<Resolution> = Resolution::ALL
        .into_iter()
        .filter(|r| r.retention_ms() >= window_secs * 1000)
        .collect();
    covering
        .iter()
        .rev()
        .find(|r| r.period_ms() <= step_secs * 1000)
        .or(covering.first())
        .copied()
        .unwrap_or(Resolution::Hour)
}

/// The app's request and resource metrics over a window, one point per step,
/// with the latest figures of each replica.
#[utoipa::path(get, path = "/api/v1/apps/{app}/metrics", tag = "observability",
    params(("app" = String, Path), MetricsQuery),
    responses((status = 200, body = AppMetrics),
        (status = 400, description = "`invalid_duration`, `step_exceeds_window`, `too_many_points` or `window_too_long`", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn app_metrics(
    State(state): State<ApiState>,
    _caller: crate::auth::Caller,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<AppMetrics>, ApiError> {
    let name = app.name;
    let (window, step) = window_and_step(q.window.as_deref(), q.step.as_deref())?;
    let store = state.engine.store();
    let resolution = resolution_for(window, step);
    let step_ms = step * 1000;
    let now = chrono::Utc::now().timestamp_millis();
    let count = (window + step - 1) / step;
    let end = (now.div_euclid(step_ms) + 1) * step_ms;
    let start = end - count * step_ms;
    let mut sums: Vec<MetricSample> = (0..count)
        .map(|i| MetricSample {
            at_ms: start + i * step_ms,
            ..Default::default()
        })
        .collect();
    let mut totals = MetricSample::default();
    for row in store.metric_samples(&name, resolution, start, end).await? {
        let i = ((row.at_ms - start) / step_ms) as usize;
        if let Some(slot) = sums.get_mut(i) {
            slot.merge(&row);
            totals.merge(&row);
        }
    }
    let (sampled_at, replicas) = match store.replica_figures(&name).await? {
        Some((at, figures)) => (Some(rfc3339(at)), figures),
        None => (None, Vec::new()),
    };
    Ok(Json(AppMetrics {
        app: name.to_string(),
        window_secs: window,
        step_secs: step,
        resolution_secs: resolution.period_ms() / 1000,
        from: rfc3339(start),
        to: rfc3339(end),
        totals: MetricPoint::of(start, &totals),
        points: sums.iter().map(|s| MetricPoint::of(s.at_ms, s)).collect(),
        sampled_at,
        replicas,
    }))
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the per-app traffic series (latency histogram, bytes, in-flight)
/// of apps whose proxy gives every figure, and the per-replica series.
pub(crate) async fn write_prometheus(
    state: &ApiState,
    apps: &[easydeploy_store::App],
    out: &mut String,
) -> Result<(), ApiError> {
    let traffic: Vec<(String, TrafficFigures)> = match &state.load {
        Some(load) => apps
            .iter()
            .filter_map(|a| load.traffic(a.name.as_str()).map(|t| (a.name.to_string(), t)))
            .collect(),
        None => Vec::new(),
    };
    write_traffic(out, &traffic);
    let mut replicas = Vec::new();
    for app in apps {
        if let Some((_, figures)) = state.engine.store().replica_figures(&app.name).await? {
            replicas.push((app.name.to_string(), figures));
        }
    }
    write_replicas(out, &replicas, state.load.as_deref());
    Ok(())
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Per-app latency histogram (seconds), bytes and in-flight requests.
pub(crate) fn write_traffic(out: &mut String, apps: &[(String, TrafficFigures)]) {
    if apps.is_empty() {
        return;
    }
    let name = "easydeploy_app_request_duration_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from a request's arrival at the edge proxy to its response.",
    );
    for (app, t) in apps {
        let app = label(app);
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += t.latency_buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{app=\"{app}\",le=\"{}\"}} {cumulative}",
                bound / 1000.0
            );
        }
        let count: u64 = t.latency_buckets.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{app=\"{app}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{app=\"{app}\"}} {}", t.latency_sum_ms / 1000.0);
        let _ = writeln!(out, "{name}_count{{app=\"{app}\"}} {count}");
    }
    type Counter = fn(&TrafficFigures) -> u64;
    let counters: [(&str, &str, Counter); 2] = [
        (
            "easydeploy_app_request_bytes_total",
            "Request body bytes received from clients.",
            |t| t.bytes_in,
        ),
        (
            "easydeploy_app_response_bytes_total",
            "Response body bytes sent to clients.",
            |t| t.bytes_out,
        ),
    ];
    for (metric, help, value) in counters {
        family(out, metric, "counter", help);
        for (app, t) in apps {
            let _ = writeln!(out, "{metric}{{app=\"{}\"}} {}", label(app), value(t));
        }
    }
    let metric = "easydeploy_app_requests_in_flight";
    family(out, metric, "gauge", "Requests being served now.");
    for (app, t) in apps {
        let _ = writeln!(out, "{metric}{{app=\"{}\"}} {}", label(app), t.in_flight);
    }
}

/// Per-replica requests, CPU, memory and network, labelled `app` and `replica`.
pub(crate) fn write_replicas(
    out: &mut String,
    apps: &[(String, Vec<ReplicaFigures>)],
    load: Option<&dyn LoadMetrics>,
) {
    if apps.iter().all(|(_, r)| r.is_empty()) {
        return;
    }
    // Live request counts when the proxy has them, else the last sample's.
    let live: Vec<(String, Vec<(String, TrafficFigures)>)> = match load {
        Some(load) => apps
            .iter()
            .map(|(app, _)| (app.clone(), load.traffic_by_replica(app)))
            .collect(),
        None => Vec::new(),
    };
    let requests = |app: &str, r: &ReplicaFigures| -> Option<u64> {
        let by_addr = live.iter().find(|(a, _)| a == app).map(|(_, t)| t);
        let fresh = r
            .addr
            .as_ref()
            .and_then(|addr| by_addr?.iter().find(|(a, _)| a == addr))
            .map(|(_, t)| t.requests);
        fresh.or(r.requests)
    };
    type Figure = fn(&ReplicaFigures) -> f64;
    let series: [(&str, &str, &str, Figure); 5] = [
        (
            "easydeploy_replica_cpu_percent",
            "gauge",
            "CPU use of a replica, percent of one core.",
            |r| r.cpu_percent,
        ),
        (
            "easydeploy_replica_memory_bytes",
            "gauge",
            "Memory a replica uses.",
            |r| r.memory_bytes as f64,
        ),
        (
            "easydeploy_replica_memory_limit_bytes",
            "gauge",
            "Memory limit of a replica (0: unlimited).",
            |r| r.memory_limit_bytes as f64,
        ),
        (
            "easydeploy_replica_network_receive_bytes_total",
            "counter",
            "Bytes a replica received since it started.",
            |r| r.net_rx_bytes as f64,
        ),
        (
            "easydeploy_replica_network_transmit_bytes_total",
            "counter",
            "Bytes a replica sent since it started.",
            |r| r.net_tx_bytes as f64,
        ),
    ];
    let known: Vec<(&str, &ReplicaFigures, u64)> = apps
        .iter()
        .flat_map(|(app, rs)| rs.iter().map(move |r| (app.as_str(), r)))
        .filter_map(|(app, r)| requests(app, r).map(|n| (app, r, n)))
        .collect();
    if !known.is_empty() {
        let metric = "easydeploy_replica_requests_total";
        family(
            out,
            metric,
            "counter",
            "Requests the edge proxy sent to a replica.",
        );
        for (app, r, n) in known {
            let _ = writeln!(
                out,
                "{metric}{{app=\"{}\",replica=\"{}\"}} {n}",
                label(app),
                label(&r.replica)
            );
        }
    }
    for (metric, kind, help, value) in series {
        family(out, metric, kind, help);
        for (app, rs) in apps {
            for r in rs {
                let _ = writeln!(
                    out,
                    "{metric}{{app=\"{}\",replica=\"{}\"}} {}",
                    label(app),
                    label(&r.replica),
                    value(r)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: ApiError) -> (u16, &'static str) {
        (e.status.as_u16(), e.code)
    }

    #[test]
    fn windows_and_steps_are_validated_with_stable_codes() {
        assert_eq!(window_and_step(None, None).unwrap(), (3600, 60));
        assert_eq!(window_and_step(Some("1h"), Some("60s")).unwrap(), (3600, 60));
        assert_eq!(
            window_and_step(Some("7d"), Some("1h")).unwrap(),
            (7 * 86_400, 3600)
        );
        assert_eq!(window_and_step(Some("90"), Some("1m")).unwrap(), (90, 60));
        assert_eq!(
            code(window_and_step(Some("1w"), None).unwrap_err()),
            (400, "invalid_duration")
        );
        assert_eq!(
            code(window_and_step(Some("h"), None).unwrap_err()),
            (400, "invalid_duration")
        );
        assert_eq!(
            code(window_and_step(Some("0s"), None).unwrap_err()),
            (400, "invalid_duration")
        );
        assert_eq!(
            code(window_and_step(Some("-5m"), None).unwrap_err()),
            (400, "invalid_duration")
        );
        assert_eq!(
            code(window_and_step(Some("99999999999999999999d"), None).unwrap_err()),
            (400, "invalid_duration")
        );
        assert_eq!(
            code(window_and_step(Some("31d"), None).unwrap_err()),
            (400, "window_too_long")
        );
        assert_eq!(
            code(window_and_step(Some("1h"), Some("2h")).unwrap_err()),
            (400, "step_exceeds_window")
        );
        assert_eq!(
            code(window_and_step(Some("1d"), Some("10s")).unwrap_err()),
            (400, "too_many_points")
        );
    }

    #[test]
    fn the_series_reads_the_coarsest_resolution_that_fits() {
        assert_eq!(resolution_for(3600, 10), Resolution::Raw);
        assert_eq!(resolution_for(3600, 60), Resolution::Minute);
        assert_eq!(resolution_for(86_400, 300), Resolution::Minute);
        assert_eq!(resolution_for(86_400, 3600), Resolution::Hour);
        assert_eq!(resolution_for(7 * 86_400, 3600), Resolution::Hour);
        // Raw samples are gone after an hour: minutes, even for a finer step.
        assert_eq!(resolution_for(6 * 3600, 30), Resolution::Minute);
    }

    #[test]
    fn prometheus_histograms_are_cumulative_in_seconds() {
        let mut buckets = vec![0u64; LATENCY_BUCKETS_MS.len() + 1];
        buckets[0] = 2; // <= 1 ms
        buckets[3] = 3; // 5-10 ms
        buckets[LATENCY_BUCKETS_MS.len()] = 1; // beyond 30 s
        let t = TrafficFigures {
            requests: 6,
            responses_by_class: [6, 0, 0, 0],
            in_flight: 2,
            bytes_in: 10,
            bytes_out: 2048,
            latency_buckets: buckets,
            latency_sum_ms: 31_500.0,
        };
        let mut out = String::new();
        write_traffic(&mut out, &[("shop".into(), t)]);
        let n = "easydeploy_app_request_duration_seconds";
        assert!(out.contains(&format!("# TYPE {n} histogram\n")), "{out}");
        for line in [
            format!("{n}_bucket{{app=\"shop\",le=\"0.001\"}} 2"),
            format!("{n}_bucket{{app=\"shop\",le=\"0.0025\"}} 2"),
            format!("{n}_bucket{{app=\"shop\",le=\"0.01\"}} 5"),
            format!("{n}_bucket{{app=\"shop\",le=\"30\"}} 5"),
            format!("{n}_bucket{{app=\"shop\",le=\"+Inf\"}} 6"),
            format!("{n}_sum{{app=\"shop\"}} 31.5"),
            format!("{n}_count{{app=\"shop\"}} 6"),
            "easydeploy_app_request_bytes_total{app=\"shop\"} 10".into(),
            "easydeploy_app_response_bytes_total{app=\"shop\"} 2048".into(),
            "easydeploy_app_requests_in_flight{app=\"shop\"} 2".into(),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
    }

    #[test]
    fn replica_series_carry_app_and_replica_labels() {
        let r = ReplicaFigures {
            replica: "ed-shop-ab-1".into(),
            addr: Some("10.0.0.2:8080".into()),
            requests: Some(7),
            cpu_percent: 12.5,
            memory_bytes: 1024,
            memory_limit_bytes: 4096,
            net_rx_bytes: 5,
            net_tx_bytes: 6,
            ..Default::default()
        };
        let mut out = String::new();
        write_replicas(&mut out, &[("shop".into(), vec![r])], None);
        for line in [
            "easydeploy_replica_requests_total{app=\"shop\",replica=\"ed-shop-ab-1\"} 7",
            "easydeploy_replica_cpu_percent{app=\"shop\",replica=\"ed-shop-ab-1\"} 12.5",
            "easydeploy_replica_memory_bytes{app=\"shop\",replica=\"ed-shop-ab-1\"} 1024",
            "easydeploy_replica_memory_limit_bytes{app=\"shop\",replica=\"ed-shop-ab-1\"} 4096",
            "easydeploy_replica_network_receive_bytes_total{app=\"shop\",replica=\"ed-shop-ab-1\"} 5",
            "easydeploy_replica_network_transmit_bytes_total{app=\"shop\",replica=\"ed-shop-ab-1\"} 6",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
        let mut empty = String::new();
        write_replicas(&mut empty, &[("shop".into(), vec![])], None);
        assert!(empty.is_empty());
    }
}
