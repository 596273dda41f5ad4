//! Alerts: every app whose alerts are on has its rules evaluated
//! periodically (crash loop, 5xx ratio over a window, p95 latency, no
//! healthy replica). A rule that starts or stops firing is recorded (state +
//! `alert` event) and POSTed to the app's webhook as signed JSON, with
//! retries and backoff, in order, without blocking the evaluation.

use crate::Engine;
use easydeploy_core::ports::ReplicaStatus;
use easydeploy_core::AppName;
use easydeploy_store::{AlertRules, AlertSettings};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Rule names.
pub const CRASH_LOOP: &str = "crash_loop";
/// 5xx responses above a percentage over a window.
pub const ERROR_RATIO: &str = "error_ratio";
/// p95 latency above a threshold.
pub const LATENCY_P95: &str = "latency_p95";
/// A live app with no healthy running replica.
pub const NO_HEALTHY_REPLICA: &str = "no_healthy_replica";

/// Responses needed in the window before the 5xx ratio means anything.
const MIN_RESPONSES: u64 = 10;
/// A replica that restarted less recently than this (and runs) is no longer crash-looping.
const CRASH_QUIET: Duration = Duration::from_secs(120);
/// Consecutive passes without a healthy replica before `no_healthy_replica` fires.
const UNHEALTHY_PASSES: u32 = 2;
/// Waits before the retries of a failed delivery.
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Easydeploy-Signature-256";
/// Header naming the kind of notification.
pub const EVENT_HEADER: &str = "X-Easydeploy-Event";

/// What the evaluator remembers of an app between passes.
#[derive(Default)]
struct Track {
    /// (when, responses, 5xx responses) since the proxy started.
    samples: VecDeque<(Instant, u64, u64)>,
    /// Per replica: restarts last seen and when they last went up.
    replicas: HashMap<String, (i64, Option<Instant>)>,
    /// Consecutive passes with a replica of the live release not running.
    down_passes: i64,
    /// Consecutive passes without a healthy running replica.
    unhealthy_passes: u32,
}

/// What one pass observed of an app.
#[derive(Debug, Default, Clone)]
pub(crate) struct Observation {
    /// Replicas of the live release, with whether each restarted recently.
    pub replicas: Vec<(ReplicaStatus, bool)>,
    /// Consecutive passes with a replica of the live release not running.
    pub down_passes: i64,
    /// Consecutive passes without a healthy running replica.
    pub unhealthy_passes: u32,
    /// (responses, 5xx responses) over the window, with the seconds it covers.
    pub responses: Option<(u64, u64, u64)>,
    /// p95 latency in ms, when known.
    pub latency_p95_ms: Option<f64>,
}

/// Each rule with `Some(message)` when it fires, `None` when it does not.
pub(crate) fn evaluate(rules: &AlertRules, seen: &Observation) -> Vec<(&'static str, Option<String>)> {
    let threshold = rules.crash_loop_restarts.max(1);
    let crash = seen
        .replicas
        .iter()
        .find(|(r, recent)| r.restarts >= threshold && (*recent || r.state != "running"))
        .map(|(r, _)| {
            format!(
                "{} is crash-looping: restarted {} times (state {})",
                r.name, r.restarts, r.state
            )
        })
        .or_else(|| {
            (seen.down_passes >= threshold).then(|| {
                format!(
                    "replicas keep stopping: not running for {} checks in a row",
                    seen.down_passes
                )
            })
        });
    let errors = seen.responses.and_then(|(total, errors, secs)| {
        let percent = errors as f64 * 100.0 / total.max(1) as f64;
        (total >= MIN_RESPONSES && percent > rules.error_ratio_percent).then(|| {
            format!(
                "{percent:.1}% of responses were 5xx ({errors} of {total}) over the last {secs} s (threshold {}%)",
                rules.error_ratio_percent
            )
        })
    });
    let latency = seen.latency_p95_ms.and_then(|p95| {
        (p95 > rules.latency_p95_ms as f64).then(|| {
            format!(
                "p95 latency is {p95:.0} ms (threshold {} ms)",
                rules.latency_p95_ms
            )
        })
    });
    let unhealthy = (rules.no_healthy_replica && seen.unhealthy_passes >= UNHEALTHY_PASSES).then(|| {
        let running = seen.replicas.iter().filter(|(r, _)| r.state == "running").count();
        format!(
            "no healthy replica: {running} of {} running, none answering",
            seen.replicas.len()
        )
    });
    vec![
        (CRASH_LOOP, crash),
        (ERROR_RATIO, errors),
        (LATENCY_P95, latency),
        (NO_HEALTHY_REPLICA, unhealthy),
    ]
}

/// The `X-Easydeploy-Signature-256` value of a body.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A notification waiting for delivery.
struct Notice {
    url: String,
    secret: String,
    body: Vec<u8>,
    rule: &'static str,
    status: &'static str,
}

/// Runs until `shutdown`.
pub(crate) async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "alerts are off: no HTTP client");
            return;
        }
    };
    let mut tracks: HashMap<String, Track> = HashMap::new();
    let mut queues: HashMap<String, mpsc::UnboundedSender<Notice>> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.config.alert_interval) => {}
        }
        match engine.evaluate_alerts(&mut tracks).await {
            Ok(notices) => {
                for (app, notice) in notices {
                    enqueue(&engine, &http, &mut queues, app, notice);
                }
            }
            Err(e) => tracing::warn!(error = %e, "evaluating alerts failed"),
        }
    }
}

/// Hands a notice to its app's delivery task (started on demand), which
/// delivers one at a time so that `resolved` never overtakes `firing`.
fn enqueue(
    engine: &Arc<Engine>,
    http: &reqwest::Client,
    queues: &mut HashMap<String, mpsc::UnboundedSender<Notice>>,
    app: AppName,
    notice: Notice,
) {
    let notice = match queues.get(app.as_str()) {
        Some(queue) => match queue.send(notice) {
            Ok(()) => return,
            // Its task ended: start another.
            Err(mpsc::error::SendError(notice)) => notice,
        },
        None => notice,
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
    let _ = tx.send(notice);
    queues.insert(app.to_string(), tx);
    let (engine, http) = (Arc::clone(engine), http.clone());
    tokio::spawn(async move {
        while let Some(notice) = rx.recv().await {
            if let Err(why) = deliver(&http, &notice).await {
                let message = format!(
                    "could not deliver the {} {} notification after {} attempts: {why}",
                    notice.rule,
                    notice.status,
                    BACKOFF.len() + 1
                );
                tracing::warn!(app = %app, %message);
                if let Err(e) = engine
                    .store
                    .add_event(&app, "alert_delivery_failed", &message)
                    .await
                {
                    tracing::warn!(app = %app, error = %e, "could not record the failed delivery");
                }
            }
        }
    });
}

/// POSTs a notice, retrying with exponential backoff; the last failure on error.
async fn deliver(http: &reqwest::Client, notice: &Notice) -> Result<(), String> {
    let signature = sign(&notice.secret, &notice.body);
    let mut last = String::new();
    for attempt in 0..=BACKOFF.len() {
        if attempt > 0 {
            tokio::time::sleep(BACKOFF[attempt - 1]).await;
        }
        let sent = http
            .post(&notice.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .header(EVENT_HEADER, "alert")
            .header(reqwest::header::USER_AGENT, "easydeploy-alerts")
            .body(notice.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => last = format!("the receiver answered {}", response.status()),
            // Without the URL: it may carry a token.
            Err(e) => last = describe(e),
        }
    }
    Err(last)
}

fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}: {}", e.without_url())
}

impl Engine {
    /// One pass over every app whose alerts are on: records rules that start
    /// or stop firing and returns the notices to deliver.
    async fn evaluate_alerts(
        &self,
        tracks: &mut HashMap<String, Track>,
    ) -> Result<Vec<(AppName, Notice)>, crate::EngineError> {
        let all = self.store.all_alert_settings().await?;
        let on: HashSet<&str> = all.iter().map(|s| s.app.as_str()).collect();
        tracks.retain(|app, _| on.contains(app.as_str()));
        let mut notices = Vec::new();
        for settings in &all {
            let Ok(app) = AppName::parse(&settings.app) else {
                continue;
            };
            let track = tracks.entry(settings.app.clone()).or_default();
            let results = match self.observe(&app, &settings.rules, track).await {
                Ok(Some(seen)) => evaluate(&settings.rules, &seen),
                Err(e) => {
                    tracing::warn!(app = %app, error = %e, "cannot evaluate the app's alerts");
                    continue;
                }
                // No live release: nothing can be wrong with it.
                Ok(None) => [CRASH_LOOP, ERROR_RATIO, LATENCY_P95, NO_HEALTHY_REPLICA]
                    .into_iter()
                    .map(|rule| (rule, None))
                    .collect(),
            };
            let firing: HashMap<String, String> = self
                .store
                .firing_alerts(&app)
                .await?
                .into_iter()
                .map(|s| (s.rule, s.message))
                .collect();
            for (rule, fires) in results {
                let (status, message) = match (fires, firing.get(rule)) {
                    (Some(message), None) => {
                        if !self.store.fire_alert(&app, rule, &message).await? {
                            continue;
                        }
                        tracing::warn!(app = %app, rule, %message, "alert firing");
                        ("firing", message)
                    }
                    (None, Some(was)) => {
                        let message = format!("resolved (was: {was})");
                        if !self.store.resolve_alert(&app, rule, &message).await? {
                            continue;
                        }
                        tracing::info!(app = %app, rule, "alert resolved");
                        ("resolved", message)
                    }
                    _ => continue,
                };
                notices.push((app.clone(), notice(settings, rule, status, &message)));
            }
        }
        Ok(notices)
    }

    /// What the runtime and the proxy say about an app's live release; `None`
    /// when it has none.
    async fn observe(
        &self,
        app: &AppName,
        rules: &AlertRules,
        track: &mut Track,
    ) -> Result<Option<Observation>, crate::EngineError> {
        let stored = self.store.app(app).await?;
        let Some(live) = stored.live_deployment else {
            *track = Track::default();
            return Ok(None);
        };
        let now = Instant::now();
        let replicas: Vec<ReplicaStatus> = self
            .backends
            .runtime
            .status(app)
            .await?
            .into_iter()
            .filter(|r| r.deployment == live)
            .collect();
        track
            .replicas
            .retain(|name, _| replicas.iter().any(|r| &r.name == name));
        let replicas: Vec<(ReplicaStatus, bool)> = replicas
            .into_iter()
            .map(|r| {
                let (seen, went_up) = track.replicas.entry(r.name.clone()).or_insert((r.restarts, None));
                if r.restarts > *seen {
                    *went_up = Some(now);
                }
                *seen = r.restarts;
                let recent = went_up.is_some_and(|at| now.duration_since(at) < CRASH_QUIET);
                (r, recent)
            })
            .collect();
        if replicas.iter().any(|(r, _)| r.state != "running") {
            track.down_passes += 1;
        } else {
            track.down_passes = 0;
        }
        if replicas.iter().any(|(r, _)| r.state == "running" && r.healthy) {
            track.unhealthy_passes = 0;
        } else {
            track.unhealthy_passes += 1;
        }
        let window = Duration::from_secs(rules.window_secs.max(1) as u64);
        let responses = self
            .load
            .get()
            .and_then(|load| load.responses_by_class(app.as_str()))
            .and_then(|classes| {
                let total: u64 = classes.iter().sum();
                track.samples.push_back((now, total, classes[3]));
                // Keep one sample at or before the window's start as the baseline.
                while track.samples.len() > 1 && now.duration_since(track.samples[1].0) >= window {
                    track.samples.pop_front();
                }
                let (first_at, first_total, first_errors) = track.samples[0];
                (track.samples.len() > 1).then(|| {
                    (
                        total.saturating_sub(first_total),
                        classes[3].saturating_sub(first_errors),
                        now.duration_since(first_at).as_secs(),
                    )
                })
            });
        let latency_p95_ms = stored_p95(
            &self.store,
            app,
            rules.window_secs,
            chrono::Utc::now().timestamp_millis(),
        )
        .await?;
        Ok(Some(Observation {
            replicas,
            down_passes: track.down_passes,
            unhealthy_passes: track.unhealthy_passes,
            responses,
            latency_p95_ms,
        }))
    }
}

/// The p95 latency over the rule's window (ending at `now_ms`), from the
/// latency histogram the metrics sampler stored; `None` with fewer than
/// [`MIN_RESPONSES`] responses in it (or no latency data at all).
pub(crate) async fn stored_p95(
    store: &easydeploy_store::Store,
    app: &AppName,
    window_secs: i64,
    now_ms: i64,
) -> Result<Option<f64>, easydeploy_store::StoreError> {
    let window = store.metrics_over(app, now_ms, window_secs.max(1) * 1000).await?;
    if window.latency_buckets.iter().sum::<u64>() < MIN_RESPONSES {
        return Ok(None);
    }
    Ok(window.latency_quantile_ms(0.95))
}

fn notice(settings: &AlertSettings, rule: &'static str, status: &'static str, message: &str) -> Notice {
    let body = serde_json::json!({
        "app": settings.app,
        "rule": rule,
        "status": status,
        "message": message,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    Notice {
        url: settings.webhook_url.clone(),
        secret: settings.secret.clone(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
        rule,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(name: &str, state: &str, restarts: i64, healthy: bool) -> ReplicaStatus {
        ReplicaStatus {
            id: name.into(),
            name: name.into(),
            deployment: "d1".into(),
            state: state.into(),
            healthy,
            restarts,
            addr: None,
        }
    }

    fn firing(results: &[(&'static str, Option<String>)]) -> Vec<&'static str> {
        results
            .iter()
            .filter(|(_, m)| m.is_some())
            .map(|(r, _)| *r)
            .collect()
    }

    #[test]
    fn healthy_replicas_fire_nothing() {
        let seen = Observation {
            replicas: vec![(replica("a-1", "running", 0, true), false)],
            responses: Some((1000, 10, 300)),
            ..Default::default()
        };
        assert!(firing(&evaluate(&AlertRules::default(), &seen)).is_empty());
    }

    #[test]
    fn a_replica_restarting_often_is_a_crash_loop_until_it_settles() {
        let rules = AlertRules::default();
        let looping = Observation {
            replicas: vec![(replica("a-1", "restarting", 4, false), true)],
            ..Default::default()
        };
        let results = evaluate(&rules, &looping);
        assert_eq!(firing(&results), vec![CRASH_LOOP]);
        assert!(results[0].1.as_deref().unwrap().contains("restarted 4 times"));
        // Running with the same count, no recent restart: settled.
        let settled = Observation {
            replicas: vec![(replica("a-1", "running", 4, true), false)],
            ..Default::default()
        };
        assert!(firing(&evaluate(&rules, &settled)).is_empty());
        // Below the threshold.
        let few = Observation {
            replicas: vec![(replica("a-1", "restarting", 2, false), true)],
            ..Default::default()
        };
        assert!(firing(&evaluate(&rules, &few)).is_empty());
        // Stopped for several passes in a row.
        let down = Observation {
            replicas: vec![(replica("a-1", "exited", 0, false), false)],
            down_passes: 3,
            ..Default::default()
        };
        assert_eq!(firing(&evaluate(&rules, &down)), vec![CRASH_LOOP]);
    }

    #[test]
    fn the_error_ratio_needs_enough_responses_above_the_threshold() {
        let rules = AlertRules::default();
        let with = |total, errors| Observation {
            replicas: vec![(replica("a-1", "running", 0, true), false)],
            responses: Some((total, errors, 300)),
            ..Default::default()
        };
        assert_eq!(firing(&evaluate(&rules, &with(100, 6))), vec![ERROR_RATIO]);
        assert!(firing(&evaluate(&rules, &with(100, 5))).is_empty());
        assert!(
            firing(&evaluate(&rules, &with(5, 5))).is_empty(),
            "too few responses"
        );
    }

    #[test]
    fn latency_stays_quiet_without_data() {
        let rules = AlertRules::default();
        let mut seen = Observation {
            replicas: vec![(replica("a-1", "running", 0, true), false)],
            ..Default::default()
        };
        assert!(firing(&evaluate(&rules, &seen)).is_empty());
        seen.latency_p95_ms = Some(1500.0);
        assert_eq!(firing(&evaluate(&rules, &seen)), vec![LATENCY_P95]);
    }

    /// A stored 10-second sample at `at_ms`: `fast` responses under 5 ms, `slow` ones of 1-2.5 s.
    fn latency_sample(at_ms: i64, fast: u64, slow: u64) -> easydeploy_store::MetricSample {
        let mut buckets = vec![0; easydeploy_core::ports::LATENCY_BUCKETS_MS.len() + 1];
        buckets[2] = fast;
        buckets[10] = slow;
        easydeploy_store::MetricSample {
            at_ms,
            secs: 10.0,
            samples: 1,
            requests: fast + slow,
            responses_by_class: [fast + slow, 0, 0, 0],
            latency_buckets: buckets,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn p95_latency_comes_from_the_stored_histogram_over_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = easydeploy_store::Store::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        let app = AppName::parse("shop").unwrap();
        let settings = easydeploy_core::AppSettings::new(
            easydeploy_core::GitSource::parse("/srv/repo").unwrap(),
            easydeploy_core::Branch::parse("main").unwrap(),
        );
        store.create_app(&app, "t", &settings).await.unwrap();
        let rules = AlertRules {
            window_secs: 60,
            latency_p95_ms: 1000,
            ..Default::default()
        };
        let now = 1_800_000_000_000_i64;
        let p95 = |store: easydeploy_store::Store, app: AppName| async move {
            stored_p95(&store, &app, rules.window_secs, now).await.unwrap()
        };
        // No data: quiet.
        assert_eq!(p95(store.clone(), app.clone()).await, None);
        // Slow responses, but before the window: still quiet.
        store
            .record_metrics(&app, &latency_sample(now - 120_000, 0, 100))
            .await
            .unwrap();
        assert_eq!(p95(store.clone(), app.clone()).await, None);
        // Fast responses in the window: p95 under 5 ms, nothing fires.
        for i in 0..5 {
            store
                .record_metrics(&app, &latency_sample(now - 50_000 + i * 10_000, 20, 0))
                .await
                .unwrap();
        }
        let fast = p95(store.clone(), app.clone()).await.unwrap();
        assert!(fast <= 5.0, "{fast}");
        let seen = |p95| Observation {
            replicas: vec![(replica("a-1", "running", 0, true), false)],
            latency_p95_ms: p95,
            ..Default::default()
        };
        assert!(firing(&evaluate(&rules, &seen(Some(fast)))).is_empty());
        // 10 of 110 responses in the window took over a second: p95 is above 1000 ms.
        store
            .record_metrics(&app, &latency_sample(now, 0, 10))
            .await
            .unwrap();
        let slow = p95(store.clone(), app.clone()).await.unwrap();
        assert!((1000.0..=2500.0).contains(&slow), "{slow}");
        let results = evaluate(&rules, &seen(Some(slow)));
        assert_eq!(firing(&results), vec![LATENCY_P95]);
        assert!(results[2].1.as_deref().unwrap().contains("threshold 1000 ms"));
        // Too few responses to judge: quiet.
        let other = AppName::parse("tiny").unwrap();
        store.create_app(&other, "t", &settings).await.unwrap();
        store
            .record_metrics(&other, &latency_sample(now, 0, 5))
            .await
            .unwrap();
        assert_eq!(p95(store.clone(), other).await, None);
    }

    #[test]
    fn no_healthy_replica_waits_two_passes_and_can_be_off() {
        let mut rules = AlertRules::default();
        let mut seen = Observation {
            replicas: vec![(replica("a-1", "running", 0, false), false)],
            unhealthy_passes: 1,
            ..Default::default()
        };
        assert!(firing(&evaluate(&rules, &seen)).is_empty());
        seen.unhealthy_passes = 2;
        assert_eq!(firing(&evaluate(&rules, &seen)), vec![NO_HEALTHY_REPLICA]);
        rules.no_healthy_replica = false;
        assert!(firing(&evaluate(&rules, &seen)).is_empty());
    }

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
