//! Observability end to end: live log streams, request metrics and
//! deployment statistics on a deployed app.

mod support;

use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_stream_live_and_metrics_and_stats_count_what_happened() {
    let server = spawn_app().await;
    let app = unique("observe");
    let repo = git_repo(&busybox_app("observed"));
    let path = repo.path().to_str().unwrap().to_owned();
    let out = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(out.success, "{out:?}");

    // The deployment's own log replays as Server-Sent Events, ending with its state.
    let (_, list) = server.get(&format!("/apps/{app}/deployments")).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let sse = server
        .get_response(&format!("/api/v1/deployments/{id}/logs/stream"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        sse.contains("event: log") && sse.contains("==> building image"),
        "{sse}"
    );
    assert!(sse.trim_end().ends_with("event: end\ndata: live"), "{sse}");

    // A request's log line arrives on a follow stream.
    let mut stream = server
        .get_response(&format!("/api/v1/apps/{app}/logs/stream?tail=0&follow=true"))
        .await;
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let requested = Instant::now();
    let (mut seen, mut marked) = (String::new(), 0);
    // busybox httpd -v logs each response as `[client]: response:200`. The
    // stream attaches to the replica's output when its body is first read,
    // so a request is repeated until one's line arrives.
    while !seen.contains("response:200") {
        assert!(
            requested.elapsed() < Duration::from_secs(20),
            "a log line arrives: {seen}"
        );
        assert_eq!(server.fetch(&app, "/?marker=hello-stream").await.0, 200);
        marked += 1;
        if let Ok(chunk) = tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
    }
    eprintln!("log line followed after {:?}", requested.elapsed());
    assert!(seen.contains(&format!("\"replica\":\"ed-{app}")), "{seen}");

    // N requests through the proxy show as N in /metrics (after the ones above).
    for _ in 0..24 {
        assert_eq!(server.fetch(&app, "/").await.0, 200);
    }
    assert_eq!(server.fetch(&app, "/missing").await.0, 404);
    let metrics = server.get_response("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "easydeploy_app_requests_total{{app=\"{app}\"}} {}",
            marked + 25
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "easydeploy_app_responses_total{{app=\"{app}\",class=\"2xx\"}} {}",
            marked + 24
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "easydeploy_app_responses_total{{app=\"{app}\",class=\"4xx\"}} 1"
        )),
        "{metrics}"
    );
    assert_eq!(
        server
            .http
            .get(format!("{}/metrics", server.api))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Statistics count a failed and a successful deploy.
    let broken = busybox_app_with(
        "x",
        r#"CMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
        "RUN [\"/busybox\", \"false\"]\n",
    );
    commit(repo.path(), &broken, "broken");
    assert!(!server.cli(&["deploy", &path, "--name", &app]).await.success);
    let (status, stats) = server.get(&format!("/apps/{app}/stats")).await;
    assert_eq!(status, 200);
    assert_eq!(stats["total"], 2);
    assert_eq!(stats["by_state"]["live"], 1);
    assert_eq!(stats["by_state"]["failed"], 1);
    assert_eq!(stats["success_rate"], 0.5);
    assert_eq!(stats["steps"]["building"]["count"], 2);
    let out = server.cli(&["stats", &app]).await;
    assert!(out.success && out.stdout.contains("success rate 50%"), "{out:?}");
    let out = server.cli(&["logs", &app, "--tail", "5"]).await;
    assert!(
        out.success && out.stdout.contains(&format!("ed-{app}")),
        "{out:?}"
    );
    server.cli(&["destroy", &app]).await;
}

/// Polls the app's metrics series until `done` accepts it (bounded).
async fn metrics_until(
    server: &TestServer,
    app: &str,
    query: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = server.get(&format!("/apps/{app}/metrics?{query}")).await;
        assert_eq!(status, 200, "{v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "the series never got there: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sampled_metrics_count_the_requests_and_show_replica_figures() {
    let server = spawn_app_with(|c| c.metrics_interval = 1).await;
    let app = unique("metrics");
    let repo = git_repo(&busybox_app("measured"));
    let path = repo.path().to_str().unwrap().to_owned();
    let out = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(out.success, "{out:?}");

    // N requests through the proxy: 11 found, 1 missing.
    for _ in 0..11 {
        assert_eq!(server.fetch(&app, "/").await.0, 200);
    }
    assert_eq!(server.fetch(&app, "/missing").await.0, 404);

    // The sampler (every second here) stores them; the series adds up to N.
    let v = metrics_until(&server, &app, "window=10m&step=1m", |v| {
        v["totals"]["requests"] == 12 && !v["replicas"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(v["window_secs"], 600);
    assert_eq!(v["step_secs"], 60);
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    let sum = |key: &str| points.iter().map(|p| p[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("requests"), 12);
    assert_eq!(sum("responses_2xx"), 11);
    assert_eq!(sum("responses_4xx"), 1);
    assert_eq!(sum("responses_5xx"), 0);
    assert_eq!(v["totals"]["responses_2xx"], 11);
    let busiest = points
        .iter()
        .find(|p| p["requests"].as_u64().unwrap() > 0)
        .unwrap();
    assert!(busiest["request_rate"].as_f64().unwrap() > 0.0, "{busiest}");
    assert!(busiest["memory_bytes"].as_f64().unwrap() > 0.0, "{busiest}");
    // Steps without any sample have no gauges.
    assert!(points
        .iter()
        .any(|p| p["samples"] == 0 && p["cpu_percent"].is_null()));

    // Current figures of the one replica.
    let replicas = v["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 1, "{v}");
    let replica = replicas[0]["replica"].as_str().unwrap().to_owned();
    assert!(replica.starts_with(&format!("ed-{app}-")), "{replica}");
    assert_eq!(replicas[0]["memory_limit_bytes"], 256 * 1024 * 1024);
    assert!(replicas[0]["memory_bytes"].as_u64().unwrap() > 0);
    assert!(replicas[0]["net_tx_bytes"].as_u64().unwrap() > 0);

    // Prometheus: per-replica series labelled with the app and the replica.
    let metrics = server.get_response("/metrics").await.text().await.unwrap();
    let labels = format!("{{app=\"{app}\",replica=\"{replica}\"}}");
    for series in [
        "easydeploy_replica_cpu_percent",
        "easydeploy_replica_memory_bytes",
        "easydeploy_replica_network_receive_bytes_total",
        "easydeploy_replica_network_transmit_bytes_total",
    ] {
        assert!(
            metrics.contains(&format!("{series}{labels} ")),
            "no {series} in {metrics}"
        );
    }
    assert!(
        metrics.contains(&format!("easydeploy_app_requests_total{{app=\"{app}\"}} 12")),
        "{metrics}"
    );

    // Bad windows and steps are refused with stable codes.
    for (query, code) in [
        ("window=1w", "invalid_duration"),
        ("window=1h&step=2h", "step_exceeds_window"),
        ("window=1d&step=1s", "too_many_points"),
        ("window=90d", "window_too_long"),
    ] {
        let (status, body) = server.get(&format!("/apps/{app}/metrics?{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, _) = server.get("/apps/no-such-app/metrics").await;
    assert_eq!(status, 404);
    let (_, openapi) = server.get("/openapi.json").await;
    let documented = &openapi["paths"]["/api/v1/apps/{app}/metrics"]["get"];
    assert_eq!(documented["tags"][0], "observability", "{documented}");
    assert!(openapi["components"]["schemas"]["AppMetrics"].is_object());

    // The CLI shows the figures and sparklines, and fails clearly on a bad step.
    let out = server
        .cli(&["metrics", &app, "--window", "10m", "--step", "1m"])
        .await;
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("12 requests (11 2xx"), "{}", out.stdout);
    assert!(out.stdout.contains(&replica), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("requests/s") && l.contains('█')),
        "{}",
        out.stdout
    );
    let out = server
        .cli(&["metrics", &app, "--window", "1h", "--step", "2h"])
        .await;
    assert!(!out.success);
    assert!(out.stderr.contains("step_exceeds_window"), "{out:?}");
    server.cli(&["destroy", &app]).await;
}
