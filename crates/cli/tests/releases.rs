//! Releases that never take an app down: rolling updates under load,
//! failed health checks, rollback, environment changes, scaling,
//! self-healing and autoscaling, against the real engine and proxy.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

async fn deploy_ok(server: &TestServer, path: &str, app: &str, extra: &[&str]) {
    let mut args = vec!["deploy", path, "--name", app];
    args.extend_from_slice(extra);
    let out = server.cli(&args).await;
    assert!(out.success, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redeploy_under_load_fails_no_request_and_switches_content() {
    let server = spawn_app().await;
    let app = unique("rolling");
    let repo = git_repo(&busybox_app("version one"));
    let path = repo.path().to_str().unwrap().to_owned();
    deploy_ok(&server, &path, &app, &["--replicas", "2"]).await;

    let load = server.load(&app, 4, Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    commit(repo.path(), &[("www/index.html", b"version two".to_vec())], "v2");
    deploy_ok(&server, &path, &app, &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;

    assert!(outcomes.len() > 100, "the load ran: {} requests", outcomes.len());
    assert_eq!(
        failures(&outcomes),
        Vec::<String>::new(),
        "no request failed during the rollout"
    );
    let bodies: Vec<&str> = outcomes
        .iter()
        .map(|o| o.result.as_ref().unwrap().1.as_str())
        .collect();
    assert_eq!(bodies.first(), Some(&"version one"));
    assert_eq!(bodies.last(), Some(&"version two"));
    // Requests in flight at the switch may be routed either way (one sent
    // earlier can reach the proxy later); one sent after a "version two"
    // answer came back was routed after the switch.
    let switched = outcomes
        .iter()
        .filter(|o| o.result.as_ref().unwrap().1 == "version two")
        .map(|o| o.done)
        .min()
        .unwrap();
    assert!(
        outcomes
            .iter()
            .filter(|o| o.at > switched)
            .all(|o| o.result.as_ref().unwrap().1 == "version two"),
        "once switched, only the new version answers"
    );
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_failing_its_health_check_under_load_changes_nothing() {
    let server = spawn_app().await;
    let app = unique("unhealthy");
    let repo = git_repo(&busybox_app("stable"));
    let path = repo.path().to_str().unwrap().to_owned();
    deploy_ok(&server, &path, &app, &[]).await;

    let load = server.load(&app, 4, Duration::from_millis(5));
    let broken = busybox_app_with(
        "broken",
        r#"CMD ["/busybox", "httpd", "-f", "-p", "9999", "-h", "/www"]"#,
        "",
    );
    commit(repo.path(), &broken, "listens on the wrong port");
    let out = server
        .cli(&["deploy", &path, "--name", &app, "--health-grace", "3"])
        .await;
    let outcomes = load.finish().await;
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("did not become healthy within 3s: GET / on port 8080 failed: connection refused"),
        "{}",
        out.stderr
    );
    assert_eq!(failures(&outcomes), Vec::<String>::new());
    assert!(outcomes.iter().all(|o| o.result.as_ref().unwrap().1 == "stable"));
    assert_eq!(server.fetch(&app, "/").await, (200, "stable".into()));
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_and_env_changes_release_without_building() {
    let server = spawn_app().await;
    let app = unique("rollback");
    let start = r#"CMD ["/busybox", "sh", "-c", "echo \"$VERSION greeting=$GREETING\" > /www/index.html; exec /busybox httpd -f -p 8080 -h /www"]"#;
    let repo = git_repo(&busybox_app_with("", start, ""));
    let path = repo.path().to_str().unwrap().to_owned();
    deploy_ok(
        &server,
        &path,
        &app,
        &["--env", "VERSION=one", "--env", "GREETING=hi"],
    )
    .await;
    deploy_ok(&server, &path, &app, &["--env", "VERSION=two"]).await;
    assert_eq!(server.fetch(&app, "/").await.1, "two greeting=hi\n");

    // An env change is a new release of the same image.
    let out = server.cli(&["env", "set", &app, "GREETING=hello"]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(server.fetch(&app, "/").await.1, "two greeting=hello\n");
    let out = server.cli(&["env", "list", &app]).await;
    assert!(
        out.stdout.contains("GREETING=********") && !out.stdout.contains("hello"),
        "{}",
        out.stdout
    );

    // Rollback to the previous release: earlier image and config, no build.
    let out = server.cli(&["rollback", &app]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(server.fetch(&app, "/").await.1, "two greeting=hi\n");
    let (_, releases) = server.get(&format!("/apps/{app}/releases")).await;
    let releases = releases.as_array().unwrap();
    assert_eq!(
        releases
            .iter()
            .map(|r| r["release"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    assert_eq!(releases[0]["kind"], "rollback");
    assert_eq!(releases[1]["kind"], "config");
    assert_eq!(releases[1]["state"], "rolled_back");
    let (_, d) = server
        .get(&format!("/deployments/{}", releases[0]["id"].as_str().unwrap()))
        .await;
    let building = d["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "building")
        .unwrap();
    assert!(
        building["message"].as_str().unwrap().starts_with("skipped"),
        "{building}"
    );

    let started = Instant::now();
    let out = server.cli(&["rollback", &app, "--to", "1"]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(server.fetch(&app, "/").await.1, "one greeting=hi\n");
    eprintln!("rollback to v1 served in {:?}", started.elapsed());
    let out = server.cli(&["releases", &app]).await;
    assert!(
        out.success && out.stdout.contains("v5") && out.stdout.contains("rollback"),
        "{}",
        out.stdout
    );
    let (status, err) = server
        .post(&format!("/apps/{app}/rollback"), json!({"to": 99}))
        .await;
    assert_eq!(status, 404, "{err}");
    server.cli(&["destroy", &app]).await;
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_and_self_healing_keep_every_request_served() {
    let server = spawn_app().await;
    let app = unique("heal");
    let repo = git_repo(&busybox_app("alive"));
    deploy_ok(&server, repo.path().to_str().unwrap(), &app, &[]).await;
    let out = server.cli(&["scale", &app, "--replicas", "3"]).await;
    assert!(out.success && out.stdout.contains("runs 3 replica(s)"), "{out:?}");
    assert_eq!(running_containers(&app), 3);

    let load = server.load(&app, 4, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = server.containers(&app)[0].clone();
    let killed = std::process::Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap();
    assert!(killed.status.success());
    let healed = wait_until(
        "the reconciler replaces the killed replica",
        Duration::from_secs(30),
        || running_containers(&app) == 3,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;
    assert_eq!(
        failures(&outcomes),
        Vec::<String>::new(),
        "the pool routed around the dead replica"
    );
    eprintln!(
        "replica replaced after {healed:?}; {} requests served",
        outcomes.len()
    );
    let (_, events) = server.get(&format!("/apps/{app}/events")).await;
    assert!(
        events.as_array().unwrap().iter().any(|e| e["kind"] == "replaced"),
        "{events}"
    );

    let out = server.cli(&["scale", &app, "--replicas", "1"]).await;
    assert!(out.success, "{out:?}");
    wait_until("scaled in", Duration::from_secs(20), || {
        running_containers(&app) == 1
    })
    .await;
    assert_eq!(server.fetch(&app, "/").await, (200, "alive".into()));
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn autoscaling_follows_a_load_step_out_and_back() {
    let server = spawn_app_with(|c| c.scale_in_delay = 3).await;
    let app = unique("auto");
    let repo = git_repo(&busybox_app("scaled"));
    deploy_ok(&server, repo.path().to_str().unwrap(), &app, &[]).await;
    let out = server
        .cli(&[
            "autoscale",
            &app,
            "--min",
            "1",
            "--max",
            "3",
            "--target-rps",
            "10",
        ])
        .await;
    assert!(out.success, "{out:?}");

    // Up to 100 req/s against 10 per replica: the maximum from 21 req/s on
    // (a loaded machine's slower answers still leave a wide margin).
    let load = server.load(&app, 2, Duration::from_millis(20));
    let out_took = wait_until("scale-out to 3 replicas", Duration::from_secs(30), || {
        running_containers(&app) == 3
    })
    .await;
    let outcomes = load.finish().await;
    assert_eq!(failures(&outcomes), Vec::<String>::new());
    let in_took = wait_until("scale-in back to 1 replica", Duration::from_secs(60), || {
        running_containers(&app) == 1
    })
    .await;
    eprintln!("scale-out took {out_took:?}, scale-in {in_took:?}");
    let (_, events) = server.get(&format!("/apps/{app}/events")).await;
    let autoscaled = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "autoscale")
        .count();
    assert!(autoscaled >= 3, "decisions are recorded as events: {events}");
    let out = server.cli(&["autoscale", &app, "--off"]).await;
    assert!(out.success, "{out:?}");
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_stops_answering_is_replaced() {
    let server = spawn_app().await;
    let app = unique("hung");
    // httpd (a busybox copy named /httpd, so killall finds it) runs in the
    // background; the container lives on when it dies.
    let cmd = r#"CMD ["/busybox", "sh", "-c", "/httpd httpd -p 8080 -h /www; exec /busybox sleep 100000"]"#;
    let repo = git_repo(&busybox_app_with("answering", cmd, "COPY busybox /httpd\n"));
    deploy_ok(
        &server,
        repo.path().to_str().unwrap(),
        &app,
        &["--unhealthy-threshold", "2"],
    )
    .await;
    let victim = server.containers(&app)[0].clone();
    let killed = std::process::Command::new("docker")
        .args(["exec", &victim, "/busybox", "killall", "httpd"])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let id_of = |name: &str| {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.Id}}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let victim_id = id_of(&victim);
    // The replacement keeps the replica's name (same slot) but is a new container.
    wait_until("the silent replica is replaced", Duration::from_secs(30), || {
        let names = server.containers(&app);
        names.len() == 1 && !id_of(&names[0]).is_empty() && id_of(&names[0]) != victim_id
    })
    .await;
    // It takes traffic once it passes its health check.
    let started = Instant::now();
    while server.fetch(&app, "/").await != (200, "answering".into()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replacement serves within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(running_containers(&app), 1);
    let (_, events) = server.get(&format!("/apps/{app}/events")).await;
    let unhealthy = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "unhealthy")
        .cloned();
    assert!(
        unhealthy.is_some_and(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("failed 2 health checks in a row")),
        "{events}"
    );
    server.cli(&["destroy", &app]).await;
}
