//! Alerts: a crash-looping app fires `crash_loop` to a local webhook
//! receiver with a valid signature (retried after a failed attempt), the
//! app's status shows it while it fires, and it resolves once a healthy
//! version is deployed.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1; fails the very first request with a 500 (so
    /// the sender must retry), accepts the rest.
    async fn start() -> (Self, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) for an accepted notification of `rule` with `status`.
    async fn wait_for(&self, rule: &str, status: &str, within: Duration) -> (Received, Value) {
        let deadline = Instant::now() + within;
        loop {
            let found = self.all().into_iter().find_map(|r| {
                let body: Value = serde_json::from_slice(&r.body).ok()?;
                (r.answered == 200 && body["rule"] == rule && body["status"] == status).then_some((r, body))
            });
            if let Some(found) = found {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {rule} {status} notification within {within:?}; got: {:?}",
                self.all()
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut got = receiver.got.lock().unwrap();
    let answered = if got.is_empty() { 500 } else { 200 };
    got.push(Received {
        at: Instant::now(),
        headers,
        body,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

fn signature_valid(secret: &str, received: &Received) -> bool {
    let Some(header) = received
        .headers
        .get("x-easydeploy-signature-256")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(sig) = hex::decode(header) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&received.body);
    mac.verify_slice(&sig).is_ok()
}

/// Serves for a few seconds (long enough to pass its health check), then
/// exits 1; restarted in the same container it exits at once: a crash loop.
fn crash_looping_app() -> Vec<(&'static str, Vec<u8>)> {
    busybox_app_with(
        "crashes soon",
        r#"CMD ["/busybox", "sh", "-c", "if [ -f /tmp/started ]; then exit 1; fi; /busybox touch /tmp/started; /busybox httpd -f -p 8080 -h /www & /busybox sleep 6; exit 1"]"#,
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_looping_app_fires_a_signed_alert_then_resolves() {
    let server = spawn_app().await;
    let (receiver, url) = Receiver::start().await;
    let app = unique("alert");
    let repo = git_repo(&crash_looping_app());
    let path = repo.path().to_str().unwrap().to_owned();
    let deployed = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(deployed.success, "{deployed:?}");

    // Bad settings are refused with stable codes.
    let alerts = format!("/apps/{app}/alerts");
    for (body, code) in [
        (json!({}), "webhook_url_required"),
        (
            json!({"webhook_url": "ftp://example.com/x"}),
            "invalid_webhook_url",
        ),
        (
            json!({"webhook_url": url, "error_ratio_percent": 150}),
            "invalid_error_ratio",
        ),
        (
            json!({"webhook_url": url, "crash_loop_restarts": 0}),
            "invalid_crash_loop",
        ),
        (json!({"webhook_url": url, "window_secs": 1}), "invalid_window"),
    ] {
        let (status, e) = server.call(reqwest::Method::PUT, &alerts, Some(body)).await;
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some(code)), "{e}");
    }
    let (status, off) = server.get(&alerts).await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["enabled"], false);
    assert_eq!(off["rules"]["crash_loop_restarts"], 3, "defaults: {off}");
    assert_eq!(off["rules"]["error_ratio_percent"], 5.0);
    assert_eq!(off["rules"]["window_secs"], 300);
    assert_eq!(off["rules"]["latency_p95_ms"], 1000);

    // Turn alerts on: the secret comes back once, masked afterwards.
    let (status, on) = server
        .call(reqwest::Method::PUT, &alerts, Some(json!({"webhook_url": url})))
        .await;
    assert_eq!(status, 200, "{on}");
    let secret = on["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{on}");
    let (_, shown) = server.get(&alerts).await;
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["webhook_url"], url.as_str());
    assert!(
        !shown.to_string().contains(&secret),
        "the secret is shown once: {shown}"
    );
    let cli = server.cli(&["alerts", &app]).await;
    assert!(cli.success && cli.stdout.contains(&url), "{cli:?}");
    assert!(!cli.stdout.contains(&secret), "{cli:?}");

    // The replica crash-loops: crash_loop fires, signed.
    let (firing, body) = receiver
        .wait_for("crash_loop", "firing", Duration::from_secs(90))
        .await;
    assert_eq!(body["app"], app.as_str(), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("crash-looping"),
        "{body}"
    );
    assert!(body["at"].as_str().is_some(), "{body}");
    assert!(
        signature_valid(&secret, &firing),
        "bad signature: {:?}",
        firing.headers
    );
    assert!(!signature_valid("not the secret", &firing));
    assert_eq!(firing.headers["x-easydeploy-event"], "alert");
    assert_eq!(firing.headers["content-type"], "application/json");
    // The first delivery was refused (500) and retried after a backoff.
    let all = receiver.all();
    assert_eq!(all[0].answered, 500);
    let retried = all.iter().find(|r| r.answered == 200 && r.body == all[0].body);
    let retried = retried.expect("the refused notification is delivered again");
    assert!(retried.at.duration_since(all[0].at) >= Duration::from_millis(900));

    // While it fires, the app's status shows it.
    let (_, detail) = server.get(&format!("/apps/{app}")).await;
    assert!(
        detail["alerts_firing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "crash_loop"),
        "{detail}"
    );
    let status = server.cli(&["status", &app]).await;
    assert!(status.success, "{status:?}");
    assert!(
        status.stdout.contains("ALERT") && status.stdout.contains("crash_loop"),
        "{}",
        status.stdout
    );
    let (_, events) = server.get(&format!("/apps/{app}/events")).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "alert" && e["message"].as_str().unwrap().starts_with("crash_loop firing")),
        "{events}"
    );

    // A healthy version: the alert resolves.
    commit(repo.path(), &busybox_app("fixed"), "fix the crash");
    let fixed = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(fixed.success, "{fixed:?}");
    let (resolved, body) = receiver
        .wait_for("crash_loop", "resolved", Duration::from_secs(60))
        .await;
    assert!(signature_valid(&secret, &resolved));
    assert_eq!(body["app"], app.as_str());
    assert!(resolved.at > firing.at, "resolved after firing");
    let (_, detail) = server.get(&format!("/apps/{app}")).await;
    assert!(
        !detail["alerts_firing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "crash_loop"),
        "{detail}"
    );
    let status = server.cli(&["status", &app]).await;
    assert!(
        !status.stdout.contains("ALERT     crash_loop"),
        "{}",
        status.stdout
    );

    // Off: nothing more is evaluated or shown.
    let off = server.cli(&["alerts", &app, "--off"]).await;
    assert!(off.success, "{off:?}");
    let (_, shown) = server.get(&alerts).await;
    assert_eq!(shown["enabled"], false, "{shown}");
    assert!(server.cli(&["destroy", &app]).await.success);
}
