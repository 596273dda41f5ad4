//! CloudWatch metrics: the ECS service's CPU and memory for
//! [`easydeploy_core::ports::Runtime::stats`], and the ALB's per-app traffic
//! as [`LoadMetrics`], cached and refreshed in the background.

use crate::clients::AwsClients;
use crate::error::err;
use crate::infra::Infrastructure;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use easydeploy_core::ports::{BackendError, BackendResult, LoadMetrics, TrafficFigures, LATENCY_BUCKETS_MS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Period of the datapoints read, in seconds.
const PERIOD: i32 = 60;
/// CloudWatch may still add datapoints this long after they happened; older
/// minutes are counted once and never read again.
const SETTLE: Duration = Duration::from_secs(5 * 60);
/// Traffic older than this before the first read is not counted.
const MAX_BACKLOG: Duration = Duration::from_secs(24 * 60 * 60);

/// One statistic of a metric with its dimensions.
pub(crate) struct Query<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub metric: &'a str,
    pub stat: &'a str,
    pub dimensions: &'a [(&'a str, &'a str)],
}

/// Datapoints (epoch seconds of the period's start, value) per query id,
/// oldest first, between `start` and `end`.
pub(crate) async fn read(
    clients: &AwsClients,
    queries: &[Query<'_>],
    start: SystemTime,
    end: SystemTime,
) -> BackendResult<HashMap<String, Vec<(i64, f64)>>> {
    let mut request = clients
        .cloudwatch
        .get_metric_data()
        .start_time(DateTime::from(start))
        .end_time(DateTime::from(end))
        .scan_by(ScanBy::TimestampAscending);
    for q in queries {
        let dimensions = q
            .dimensions
            .iter()
            .map(|(name, value)| Dimension::builder().name(*name).value(*value).build())
            .collect();
        let metric = Metric::builder()
            .namespace(q.namespace)
            .metric_name(q.metric)
            .set_dimensions(Some(dimensions))
            .build();
        request = request.metric_data_queries(
            MetricDataQuery::builder()
                .id(q.id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(PERIOD)
                        .stat(q.stat)
                        .build(),
                )
                .return_data(true)
                .build(),
        );
    }
    let mut out: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = request
            .clone()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(err("read CloudWatch metrics"))?;
        for result in page.metric_data_results() {
            let points = out.entry(result.id().unwrap_or_default().to_owned()).or_default();
            points.extend(
                result
                    .timestamps()
                    .iter()
                    .map(|t| t.secs())
                    .zip(result.values().iter().copied()),
            );
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for points in out.values_mut() {
        points.sort_by_key(|(t, _)| *t);
    }
    Ok(out)
}

/// `app/NAME/ID` of `arn:...:loadbalancer/app/NAME/ID` (and
/// `targetgroup/NAME/ID` of a target group ARN): the ALB metrics' dimensions.
pub(crate) fn arn_dimension(arn: &str) -> Option<&str> {
    let (_, resource) = arn.split_once(':')?;
    let resource = resource.rsplit(':').next()?;
    Some(resource.strip_prefix("loadbalancer/").unwrap_or(resource))
}

/// Counts of one window, summed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    requests: u64,
    by_class: [u64; 4],
    buckets: Vec<u64>,
    latency_sum_ms: f64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.latency_sum_ms += other.latency_sum_ms;
    }

    /// From the datapoints of the traffic queries: sums, and a latency
    /// histogram with each period's responses in the bucket of its average.
    fn from_points(points: &HashMap<String, Vec<(i64, f64)>>) -> Self {
        let sum = |id: &str| -> u64 {
            points
                .get(id)
                .map_or(0.0, |p| p.iter().map(|(_, v)| v.max(0.0)).sum::<f64>())
                .round() as u64
        };
        let mut totals = Totals {
            requests: sum("requests"),
            by_class: [sum("c2xx"), sum("c3xx"), sum("c4xx"), sum("c5xx")],
            buckets: vec![0; LATENCY_BUCKETS_MS.len() + 1],
            latency_sum_ms: 0.0,
        };
        let counts: HashMap<i64, f64> = points.get("samples").into_iter().flatten().copied().collect();
        for (t, average_s) in points.get("latency").into_iter().flatten() {
            let count = counts.get(t).copied().unwrap_or(0.0).max(0.0).round() as u64;
            if count == 0 {
                continue;
            }
            let ms = average_s.max(0.0) * 1000.0;
            let bucket = LATENCY_BUCKETS_MS
                .iter()
                .position(|bound| ms <= *bound)
                .unwrap_or(LATENCY_BUCKETS_MS.len());
            totals.buckets[bucket] += count;
            totals.latency_sum_ms += ms * count as f64;
        }
        totals
    }

    fn figures(&self) -> TrafficFigures {
        TrafficFigures {
            requests: self.requests,
            responses_by_class: self.by_class,
            latency_buckets: self.buckets.clone(),
            latency_sum_ms: self.latency_sum_ms,
            ..TrafficFigures::default()
        }
    }
}

/// What is known of one app's traffic.
#[derive(Default)]
struct AppTraffic {
    /// Minutes that will not change any more, counted once.
    settled: Totals,
    /// End of the settled minutes; `None` before the first read.
    settled_until: Option<SystemTime>,
    /// Settled plus the recent minutes, as last read.
    figures: Option<TrafficFigures>,
    /// When the last read started.
    read_at: Option<Instant>,
    /// A read is running.
    reading: bool,
}

/// The ALB's CloudWatch metrics of each app's target group (RequestCount,
/// HTTPCode_Target_2XX..5XX_Count, TargetResponseTime) as [`LoadMetrics`],
/// counted from when this value was made. Callers get the cached figures at
/// once; a stale entry (older than the refresh interval) is read again in
/// the background, so the first call for an app returns `None`. The latency
/// histogram is approximate: each minute's responses fall in the bucket of
/// that minute's average response time. `in_flight` and byte counts are not
/// known (0).
#[derive(Clone)]
pub struct AlbTraffic {
    inner: Arc<Inner>,
}

struct Inner {
    clients: AwsClients,
    infra: Arc<Infrastructure>,
    refresh: Duration,
    started: SystemTime,
    runtime: Option<tokio::runtime::Handle>,
    apps: Mutex<HashMap<String, AppTraffic>>,
}

impl AlbTraffic {
    /// Traffic of the apps on `infra`, read at most every `refresh`. Must be
    /// made inside a Tokio runtime (background reads are spawned on it).
    pub fn new(clients: AwsClients, infra: Arc<Infrastructure>, refresh: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                clients,
                infra,
                refresh,
                started: SystemTime::now(),
                runtime: tokio::runtime::Handle::try_current().ok(),
                apps: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reads the app's figures now (what the background refresh does).
    pub async fn refresh(&self, app: &str) -> BackendResult<Option<TrafficFigures>> {
        Inner::refresh(&self.inner, app).await
    }

    fn cached(&self, app: &str) -> Option<TrafficFigures> {
        let mut apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        let entry = apps.entry(app.to_owned()).or_default();
        let stale = entry.read_at.is_none_or(|at| at.elapsed() >= self.inner.refresh);
        if stale && !entry.reading {
            if let Some(runtime) = &self.inner.runtime {
                entry.reading = true;
                entry.read_at = Some(Instant::now());
                let (inner, app) = (Arc::clone(&self.inner), app.to_owned());
                runtime.spawn(async move {
                    if let Err(e) = Inner::refresh(&inner, &app).await {
                        tracing::warn!(app, error = %e, "reading the app's CloudWatch traffic failed");
                    }
                    let mut apps = inner.apps.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = apps.get_mut(&app) {
                        entry.reading = false;
                    }
                });
            }
        }
        entry.figures.clone()
    }
}

impl Inner {
    async fn refresh(self: &Arc<Self>, app: &str) -> BackendResult<Option<TrafficFigures>> {
        let Some(target_group) = self.target_group(app).await? else {
            return Ok(None);
        };
        let load_balancer = arn_dimension(&self.infra.load_balancer_arn)
            .ok_or_else(|| BackendError::permanent("the load balancer ARN is not an ARN"))?
            .to_owned();
        let target_group = arn_dimension(&target_group)
            .ok_or_else(|| BackendError::permanent("the target group ARN is not an ARN"))?
            .to_owned();
        let dimensions = [
            ("LoadBalancer", load_balancer.as_str()),
            ("TargetGroup", target_group.as_str()),
        ];
        let query = |id, metric, stat| Query {
            id,
            namespace: "AWS/ApplicationELB",
            metric,
            stat,
            dimensions: &dimensions,
        };
        let queries = [
            query("requests", "RequestCount", "Sum"),
            query("c2xx", "HTTPCode_Target_2XX_Count", "Sum"),
            query("c3xx", "HTTPCode_Target_3XX_Count", "Sum"),
            query("c4xx", "HTTPCode_Target_4XX_Count", "Sum"),
            query("c5xx", "HTTPCode_Target_5XX_Count", "Sum"),
            query("latency", "TargetResponseTime", "Average"),
            query("samples", "TargetResponseTime", "SampleCount"),
        ];

        let now = SystemTime::now();
        let cutoff = minute_floor(now.checked_sub(SETTLE).unwrap_or(UNIX_EPOCH));
        let settled_until = {
            let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
            apps.get(app).and_then(|a| a.settled_until)
        };
        let from = settled_until
            .unwrap_or(self.started)
            .max(now.checked_sub(MAX_BACKLOG).unwrap_or(UNIX_EPOCH));
        let newly_settled = if from < cutoff {
            Some(Totals::from_points(
                &read(&self.clients, &queries, from, cutoff).await?,
            ))
        } else {
            None
        };
        // The recent window ends a period ahead: datapoints of this very
        // second count (an end in the future is fine for CloudWatch).
        let recent_from = from.max(cutoff);
        let ahead = now + Duration::from_secs(PERIOD as u64);
        let recent = Totals::from_points(&read(&self.clients, &queries, recent_from, ahead).await?);

        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        let entry = apps.entry(app.to_owned()).or_default();
        if let Some(settled) = newly_settled {
            entry.settled.add(&settled);
            entry.settled_until = Some(cutoff);
        } else if entry.settled_until.is_none() {
            entry.settled_until = Some(from);
        }
        let mut total = entry.settled.clone();
        total.add(&recent);
        let figures = total.figures();
        entry.figures = Some(figures.clone());
        Ok(Some(figures))
    }

    /// ARN of the app's target group, if it has one.
    async fn target_group(&self, app: &str) -> BackendResult<Option<String>> {
        crate::runtime::routing::target_group_arn(&self.clients.elb, &self.infra.prefix, app).await
    }
}

fn minute_floor(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60)
}

impl LoadMetrics for AlbTraffic {
    fn requests_total(&self, app: &str) -> Option<u64> {
        self.cached(app).map(|f| f.requests)
    }

    fn responses_by_class(&self, app: &str) -> Option<[u64; 4]> {
        self.cached(app).map(|f| f.responses_by_class)
    }

    fn traffic(&self, app: &str) -> Option<TrafficFigures> {
        self.cached(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alb_dimensions_come_from_arns() {
        assert_eq!(
            arn_dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123:loadbalancer/app/ed-alb/50dc6c495c0c9188"
            ),
            Some("app/ed-alb/50dc6c495c0c9188")
        );
        assert_eq!(
            arn_dimension("arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/ed-shop/73e2d6bc24d8a067"),
            Some("targetgroup/ed-shop/73e2d6bc24d8a067")
        );
        assert_eq!(arn_dimension("nonsense"), None);
    }

    #[test]
    fn minutes_fall_in_the_bucket_of_their_average() {
        let points: HashMap<String, Vec<(i64, f64)>> = [
            ("requests", vec![(0, 10.0), (60, 5.0)]),
            ("c2xx", vec![(0, 9.0), (60, 5.0)]),
            ("c5xx", vec![(0, 1.0)]),
            ("latency", vec![(0, 0.004), (60, 0.2)]),
            ("samples", vec![(0, 10.0), (60, 5.0)]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let totals = Totals::from_points(&points);
        assert_eq!(totals.requests, 15);
        assert_eq!(totals.by_class, [14, 0, 0, 1]);
        assert_eq!(totals.buckets[2], 10, "4 ms is in the 2.5..5 ms bucket");
        assert_eq!(totals.buckets[7], 5, "200 ms is in the 100..250 ms bucket");
        assert!((totals.latency_sum_ms - (40.0 + 1000.0)).abs() < 1e-6);
        let mut twice = totals.clone();
        twice.add(&totals);
        assert_eq!(twice.requests, 30);
        assert_eq!(twice.buckets[7], 10);
    }
}
