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
        .http
        .get(format!("{}/api/v1/deployments/{id}/logs/stream", server.api))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap()
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
        .http
        .get(format!(
            "{}/api/v1/apps/{app}/logs/stream?tail=0&follow=true",
            server.api
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let requested = Instant::now();
    assert_eq!(server.fetch(&app, "/?marker=hello-stream").await.0, 200);
    let mut seen = String::new();
    // busybox httpd -v logs each response as `[client]: response:200`.
    while !seen.contains("response:200") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("a log line arrives")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    eprintln!("log line followed after {:?}", requested.elapsed());
    assert!(seen.contains(&format!("\"replica\":\"ed-{app}")), "{seen}");

    // N requests through the proxy show as N in /metrics (after the one above).
    for _ in 0..24 {
        assert_eq!(server.fetch(&app, "/").await.0, 200);
    }
    assert_eq!(server.fetch(&app, "/missing").await.0, 404);
    let metrics = server
        .http
        .get(format!("{}/metrics", server.api))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(&format!("easydeploy_app_requests_total{{app=\"{app}\"}} 26")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "easydeploy_app_responses_total{{app=\"{app}\",class=\"2xx\"}} 25"
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
