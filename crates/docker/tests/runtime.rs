//! Releases on the real engine: launch, verify, promote, adopt, status,
//! logs, orphans and destroy.

mod support;

use bollard::container::ListContainersOptions;
use easydeploy_core::ports::{ImageBuilder, Runtime, TrafficSwitch};
use easydeploy_core::AppName;
use easydeploy_docker::{DockerBuilder, DockerRuntime};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn runtime(docker: &bollard::Docker) -> (DockerRuntime, Arc<Traffic>) {
    let traffic = Arc::new(Traffic::default());
    let switch: Arc<dyn TrafficSwitch> = traffic.clone();
    (
        DockerRuntime::new(docker.clone(), switch, Duration::from_secs(5)),
        traffic,
    )
}

/// Names of the app's containers, in any state.
async fn container_names(docker: &bollard::Docker, app: &AppName) -> Vec<String> {
    let options = ListContainersOptions {
        all: true,
        filters: HashMap::from([("label".to_owned(), vec![format!("easydeploy.app={app}")])]),
        ..Default::default()
    };
    let mut names: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.names.unwrap()[0].trim_start_matches('/').to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn launches_verifies_and_promotes_replicas_then_destroys_the_app() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("rollout");
    let _cleanup = Cleanup(app.clone());
    let image = build_image(&docker, &app, HTTPD).await.unwrap();
    let (runtime, traffic) = runtime(&docker);

    // First release: two replicas, both serving the page on their bridge address.
    let first = release(&app, &deployment(), &image.reference, 2);
    let old = runtime.launch(&first).await.unwrap();
    assert_eq!(old.len(), 2);
    let short = &first.deployment[..8];
    assert_eq!(old[0].name, format!("ed-{app}-{short}-1"));
    assert_eq!(old[1].name, format!("ed-{app}-{short}-2"));
    runtime.verify(&first, &old).await.unwrap();
    for replica in &old {
        let (status, body) = http_get(replica.addr.expect("a bridge address"), "/").await;
        assert_eq!((status, body.as_str()), (200, INDEX), "{replica:?}");
    }
    let info = docker.inspect_container(&old[0].id, None).await.unwrap();
    let config = info.config.unwrap();
    assert!(config.env.unwrap().iter().any(|e| e == "PORT=8080"));
    let labels = config.labels.unwrap();
    assert_eq!(labels["easydeploy.tenant"], TENANT);
    assert_eq!(labels["easydeploy.replica"], "1");
    let host = info.host_config.unwrap();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.network_mode.as_deref(), Some("easydeploy-edtest"));

    // Launching again is idempotent: same names, fresh containers.
    let again = runtime.launch(&first).await.unwrap();
    assert_eq!(
        again.iter().map(|r| &r.name).collect::<Vec<_>>(),
        old.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
    assert_eq!(container_names(&docker, &app).await.len(), 2);
    runtime.verify(&first, &again).await.unwrap();
    runtime.promote(&first, &again).await.unwrap();
    let mut routed = traffic.backends(&app).unwrap();
    routed.sort();
    let mut expected: Vec<_> = again.iter().filter_map(|r| r.addr).collect();
    expected.sort();
    assert_eq!(routed, expected);

    // Second release: its replica goes live, the first release's replicas go away.
    let second = release(&app, &deployment(), &image.reference, 1);
    let new = runtime.launch(&second).await.unwrap();
    runtime.verify(&second, &new).await.unwrap();
    runtime.promote(&second, &new).await.unwrap();
    assert_eq!(traffic.backends(&app).unwrap(), vec![new[0].addr.unwrap()]);
    assert_eq!(container_names(&docker, &app).await, vec![new[0].name.clone()]);
    // The edge may dial it from inside its network namespace: Docker's
    // sandbox key, a file that names that namespace.
    let info = docker.inspect_container(&new[0].id, None).await.unwrap();
    let sandbox = info.network_settings.unwrap().sandbox_key.unwrap();
    let upstream = traffic.upstreams(&app).unwrap().remove(0);
    assert_eq!(upstream.netns.as_deref(), Some(std::path::Path::new(&sandbox)));
    assert!(std::fs::metadata(&sandbox).is_ok(), "{sandbox}");

    let status = runtime.status(&app).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, new[0].name);
    assert_eq!(status[0].deployment, second.deployment);
    assert_eq!(status[0].state, "running");
    assert!(status[0].healthy);
    assert_eq!(status[0].restarts, 0);
    assert_eq!(status[0].addr, new[0].addr.map(|a| a.to_string()));

    runtime.destroy(&app).await.unwrap();
    assert!(container_names(&docker, &app).await.is_empty());
    assert_eq!(traffic.backends(&app), None);
    assert_eq!(
        DockerBuilder::new(docker.clone())
            .find(&image.reference)
            .await
            .unwrap(),
        None
    );
    assert!(runtime.status(&app).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_app_that_exits_fails_verification() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("exits");
    let _cleanup = Cleanup(app.clone());
    let cmd = r#"["/busybox","sh","-c","echo starting up; echo missing DATABASE_URL >&2; exit 3"]"#;
    let image = build_image(&docker, &app, cmd).await.unwrap();
    let (runtime, _traffic) = runtime(&docker);
    let spec = release(&app, &deployment(), &image.reference, 1);
    let replicas = runtime.launch(&spec).await.unwrap();
    let err = runtime.verify(&spec, &replicas).await.unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message.starts_with("the app exited at start ("),
        "{}",
        err.message
    );
    let how = ["(exit code 3)", "(it restarted"];
    assert!(how.iter().any(|h| err.message.contains(h)), "{}", err.message);
    assert!(err.message.contains("last output:\n"), "{}", err.message);
    assert!(err.message.contains("starting up"), "{}", err.message);
    assert!(err.message.contains("missing DATABASE_URL"), "{}", err.message);

    runtime.discard(&replicas).await.unwrap();
    assert!(container_names(&docker, &app).await.is_empty());
    runtime.destroy(&app).await.unwrap();
}

#[tokio::test]
async fn an_app_that_never_listens_fails_verification_after_the_grace_period() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("silent");
    let _cleanup = Cleanup(app.clone());
    let image = build_image(
        &docker,
        &app,
        r#"["/busybox","sh","-c","echo waiting forever; exec /busybox sleep 1000"]"#,
    )
    .await
    .unwrap();
    let (runtime, _traffic) = runtime(&docker);
    let mut spec = release(&app, &deployment(), &image.reference, 1);
    spec.health.grace = Duration::from_secs(3);
    spec.health.path = "/healthz".into();
    let replicas = runtime.launch(&spec).await.unwrap();
    let started = std::time::Instant::now();
    let err = runtime.verify(&spec, &replicas).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        err.message.starts_with(
            "the app did not become healthy within 3s: GET /healthz on port 8080 failed: connection refused"
        ),
        "{}",
        err.message
    );
    assert!(err.message.contains("waiting forever"), "{}", err.message);
    runtime.destroy(&app).await.unwrap();
    assert!(container_names(&docker, &app).await.is_empty());
}

#[tokio::test]
async fn a_server_error_keeps_the_app_unhealthy() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("broken");
    let _cleanup = Cleanup(app.clone());
    // busybox httpd passes on the status line a CGI script prints.
    let dockerfile =
        format!("FROM scratch\nCOPY busybox /busybox\nCOPY www /www\nCOPY busybox /bin/sh\nCMD {HTTPD}\n");
    let context = busybox_context(&dockerfile);
    write(
        context.path(),
        "www/cgi-bin/health",
        "#!/bin/sh\nprintf 'HTTP/1.0 503 Service Unavailable\\r\\n\\r\\ndown\\n'\n",
    );
    std::fs::set_permissions(
        context.path().join("www/cgi-bin/health"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let request = build_request(&app, context.path(), own_pipeline(&dockerfile));
    let image = DockerBuilder::new(docker.clone())
        .build(&request, &Lines::default())
        .await
        .unwrap();
    let (runtime, _traffic) = runtime(&docker);
    let mut spec = release(&app, &deployment(), &image.reference, 1);
    // Long enough for the capped replica's first CGI answer on a loaded machine.
    spec.health.grace = Duration::from_secs(5);
    spec.health.path = "/cgi-bin/health".into();
    let replicas = runtime.launch(&spec).await.unwrap();
    let err = runtime.verify(&spec, &replicas).await.unwrap_err();
    assert!(
        err.message.starts_with(
            "the app did not become healthy within 5s: GET /cgi-bin/health on port 8080 answered 503"
        ),
        "{}",
        err.message
    );
    runtime.destroy(&app).await.unwrap();
}

#[tokio::test]
async fn logs_return_what_the_app_printed() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("logs");
    let _cleanup = Cleanup(app.clone());
    let cmd = r#"["/busybox","sh","-c","echo hello; echo oops >&2; exec /busybox httpd -f -p 8080 -h /www"]"#;
    let image = build_image(&docker, &app, cmd).await.unwrap();
    let (runtime, _traffic) = runtime(&docker);
    let spec = release(&app, &deployment(), &image.reference, 1);
    let replicas = runtime.launch(&spec).await.unwrap();
    runtime.verify(&spec, &replicas).await.unwrap();

    let lines: Vec<_> = runtime.logs(&app, 100, false).await.unwrap().collect().await;
    let seen: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| (l.replica.as_str(), l.stream.as_str(), l.line.as_str()))
        .collect();
    let name = replicas[0].name.as_str();
    assert!(seen.contains(&(name, "stdout", "hello")), "{seen:?}");
    assert!(seen.contains(&(name, "stderr", "oops")), "{seen:?}");

    let tail: Vec<_> = runtime.logs(&app, 1, false).await.unwrap().collect().await;
    assert_eq!(tail.len(), 1, "{tail:?}");

    // Following keeps the stream open after the existing lines.
    let mut follow = runtime.logs(&app, 100, true).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), follow.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.replica, name);
    let more = tokio::time::timeout(Duration::from_secs(1), async {
        while follow.next().await.is_some() {}
    })
    .await;
    assert!(more.is_err(), "a followed stream stays open");
    drop(follow);

    runtime.destroy(&app).await.unwrap();
}

#[tokio::test]
async fn adopt_starts_missing_replicas_and_routes_them() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("adopt");
    let _cleanup = Cleanup(app.clone());
    let image = build_image(&docker, &app, HTTPD).await.unwrap();
    let (runtime, traffic) = runtime(&docker);
    let one = release(&app, &deployment(), &image.reference, 1);
    let launched = runtime.launch(&one).await.unwrap();
    runtime.verify(&one, &launched).await.unwrap();

    // After a restart the server wants two replicas of the same deployment.
    let two = release(&app, &one.deployment, &image.reference, 2);
    let adopted = runtime.adopt(&two).await.unwrap();
    assert_eq!(adopted.len(), 2);
    assert_eq!(adopted[0], launched[0], "the running replica is kept");
    runtime.verify(&two, &adopted).await.unwrap();
    let mut routed = traffic.backends(&app).unwrap();
    routed.sort();
    let mut expected: Vec<_> = adopted.iter().filter_map(|r| r.addr).collect();
    expected.sort();
    assert_eq!(routed, expected);
    for addr in routed {
        assert_eq!(http_get(addr, "/").await, (200, INDEX.to_owned()));
    }

    // Adopting again changes nothing.
    assert_eq!(runtime.adopt(&two).await.unwrap(), adopted);
    runtime.destroy(&app).await.unwrap();
}

#[tokio::test]
async fn remove_orphans_removes_containers_of_deployments_not_kept() {
    // Sees every container on the engine: run alone among these tests.
    let _alone = ENGINE.write().await;
    let docker = docker().await;
    let app = app_name("orphans");
    let _cleanup = Cleanup(app.clone());
    let image = build_image(&docker, &app, HTTPD).await.unwrap();
    let (runtime, _traffic) = runtime(&docker);
    let kept = release(&app, &deployment(), &image.reference, 1);
    let orphan = release(&app, &deployment(), &image.reference, 2);
    let kept_replicas = runtime.launch(&kept).await.unwrap();
    runtime.launch(&orphan).await.unwrap();

    // Keep every deployment on the engine (other users') except the orphan.
    let options = ListContainersOptions::<String> {
        all: true,
        ..Default::default()
    };
    let mut keep: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.labels?.get("easydeploy.deployment").cloned())
        .filter(|d| *d != orphan.deployment)
        .collect();
    keep.sort();
    keep.dedup();
    assert!(keep.contains(&kept.deployment));

    assert_eq!(runtime.remove_orphans(&keep).await.unwrap(), 2);
    assert_eq!(
        container_names(&docker, &app).await,
        vec![kept_replicas[0].name.clone()]
    );
    assert_eq!(runtime.remove_orphans(&keep).await.unwrap(), 0);
    runtime.destroy(&app).await.unwrap();
}

#[tokio::test]
async fn stats_report_cpu_memory_and_network_of_running_replicas() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let app = app_name("stats");
    let _cleanup = Cleanup(app.clone());
    // A busy loop beside the server: the replica uses CPU all the time.
    let cmd = r#"["/busybox","sh","-c","while :; do :; done & exec /busybox httpd -f -p 8080 -h /www"]"#;
    let image = build_image(&docker, &app, cmd).await.unwrap();
    let (runtime, _traffic) = runtime(&docker);
    let spec = release(&app, &deployment(), &image.reference, 1);
    let replicas = runtime.launch(&spec).await.unwrap();
    runtime.verify(&spec, &replicas).await.unwrap();
    let addr = replicas[0].addr.unwrap();
    for _ in 0..5 {
        assert_eq!(http_get(addr, "/").await.0, 200);
    }

    let stats = runtime.stats(&app).await.unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    let s = &stats[0];
    assert_eq!(s.replica, replicas[0].name);
    // The loop is capped at half a CPU by the release's limits.
    assert!(s.cpu_percent > 5.0 && s.cpu_percent < 80.0, "{s:?}");
    assert!(s.memory_bytes > 0, "{s:?}");
    assert_eq!(s.memory_limit_bytes, 64 * 1024 * 1024);
    // Five responses carrying the page went out.
    assert!(s.net_tx_bytes >= 5 * INDEX.len() as u64, "{s:?}");
    assert!(s.net_rx_bytes > 0, "{s:?}");

    // Stopped replicas have no figures.
    docker.stop_container(&replicas[0].id, None).await.unwrap();
    assert!(runtime.stats(&app).await.unwrap().is_empty());
    runtime.destroy(&app).await.unwrap();
}

#[tokio::test]
async fn destroying_a_tenants_last_app_does_not_break_a_launch_of_another() {
    let _shared = ENGINE.read().await;
    let docker = docker().await;
    let (leaving, arriving) = (app_name("leaving"), app_name("arriving"));
    let _cleanup = (Cleanup(leaving.clone()), Cleanup(arriving.clone()));
    let (runtime, _traffic) = runtime(&docker);
    let tenant = easydeploy_core::ports::Tenant {
        id: format!("edtest-{}", &deployment()[..8]),
    };
    // The leaving app's destroy removes the tenant network as it finds no
    // container on it, while the arriving app's replicas are being created
    // on that network: each round starts the launch a little later so that
    // some round hits that window.
    for round in 0..8 {
        // Destroy removes an app's images: build them again (from cache).
        let (left, arrived) = tokio::join!(
            build_image(&docker, &leaving, HTTPD),
            build_image(&docker, &arriving, HTTPD)
        );
        let (left, arrived) = (left.unwrap().reference, arrived.unwrap().reference);
        let mut leaving_release = release(&leaving, &deployment(), &left, 1);
        leaving_release.tenant = tenant.clone();
        let mut arriving_release = release(&arriving, &deployment(), &arrived, 3);
        arriving_release.tenant = tenant.clone();
        runtime.launch(&leaving_release).await.unwrap();
        let later = async {
            tokio::time::sleep(Duration::from_millis(40 * round)).await;
            runtime.launch(&arriving_release).await
        };
        let (destroyed, launched) = tokio::join!(runtime.destroy(&leaving), later);
        destroyed.unwrap();
        let replicas = launched.unwrap_or_else(|e| panic!("round {round}: {e}"));
        runtime.verify(&arriving_release, &replicas).await.unwrap();
        runtime.destroy(&arriving).await.unwrap();
    }
    let network = format!("easydeploy-{}", tenant.id);
    assert!(
        docker.inspect_network::<String>(&network, None).await.is_err(),
        "the network goes with the tenant's last app"
    );
}
