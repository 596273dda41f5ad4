//! End to end: deploy real apps from real git repositories through the real
//! server, Docker engine and edge proxy.

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_with_its_own_dockerfile_is_deployed_redeployed_and_destroyed() {
    let server = spawn_app().await;
    let app = unique("own");
    let repo = git_repo(&busybox_app("<h1>version one</h1>"));
    let path = repo.path().to_str().unwrap().to_owned();

    let out = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(out.success, "{out:?}");
    let url = out.stdout.lines().last().unwrap();
    assert_eq!(url, format!("http://{app}.localhost:{}", server.proxy.port()));
    for shown in [
        "fetching source",
        "detected dockerfile (Dockerfile)",
        "image built",
        "healthy",
    ] {
        assert!(
            out.stderr.contains(shown),
            "progress shows '{shown}': {}",
            out.stderr
        );
    }
    assert_eq!(
        server.fetch(&app, "/").await,
        (200, "<h1>version one</h1>".into())
    );

    // The whole state history is persisted in order, and the artifacts are kept.
    let (_, list) = server.get(&format!("/apps/{app}/deployments")).await;
    let first = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(server.history(&first).await, STEPS);
    let (_, artifacts) = server.get(&format!("/deployments/{first}/artifacts")).await;
    for name in [
        "Dockerfile",
        ".dockerignore",
        "buildspec.yml",
        "build.log",
        "imageDetail.json",
    ] {
        assert!(
            artifacts.as_array().unwrap().iter().any(|a| a == name),
            "{name} in {artifacts}"
        );
    }
    let (_, d) = server.get(&format!("/deployments/{first}")).await;
    assert_eq!(d["framework"], "dockerfile");
    assert_eq!(d["commit"].as_str().unwrap().len(), 40);

    // A new commit is a new version; the old one is superseded.
    commit(
        repo.path(),
        &[("www/index.html", b"<h1>version two</h1>".to_vec())],
        "second version",
    );
    let out = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(
        server.fetch(&app, "/").await,
        (200, "<h1>version two</h1>".into())
    );
    let (_, d) = server.get(&format!("/deployments/{first}")).await;
    assert_eq!(d["state"], "superseded");
    // Drained, then stopped (up to 10 s after SIGTERM) and removed.
    let started = std::time::Instant::now();
    while server.containers(&app).len() != 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the old replica is stopped: {:?}",
            server.containers(&app)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let out = server.cli(&["apps"]).await;
    assert!(out.success && out.stdout.contains(&app), "{out:?}");
    let out = server.cli(&["status", &app]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("healthy") && out.stdout.contains("#2"),
        "{}",
        out.stdout
    );
    let out = server.cli(&["logs", &app, "--build"]).await;
    assert!(
        out.success && out.stdout.contains("==> building image"),
        "{out:?}"
    );
    let out = server.cli(&["logs", &app]).await;
    assert!(
        out.success && out.stdout.contains(&format!("ed-{app}")),
        "{out:?}"
    );

    let out = server.cli(&["destroy", &app]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(server.fetch(&app, "/").await.0, 404);
    assert!(server.containers(&app).is_empty());
    assert_eq!(server.get(&format!("/apps/{app}")).await.0, 404);
    assert_eq!(server.get(&format!("/deployments/{first}")).await.0, 404);
    let images = std::process::Command::new("docker")
        .args(["images", "-q", &format!("easydeploy/{app}")])
        .output()
        .unwrap();
    assert!(images.stdout.is_empty(), "images removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flask_app_is_detected_built_on_the_debian_base_and_served() {
    let server = spawn_app().await;
    let app = unique("flask");
    let repo = git_repo(&[
        ("service/requirements.txt", b"flask\n".to_vec()),
        (
            "service/app.py",
            b"import os\nfrom flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return f\"flask says {os.environ['GREETING']} on {os.environ['PORT']}\"\n".to_vec(),
        ),
        ("README.md", b"monorepo".to_vec()),
    ]);
    let path = repo.path().to_str().unwrap().to_owned();
    let out = server
        .cli(&[
            "deploy",
            &path,
            "--name",
            &app,
            "--root",
            "service",
            "--env",
            "GREETING=hello there",
        ])
        .await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stderr.contains("detected flask (requirements.txt: flask)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        server.fetch(&app, "/").await,
        (200, "flask says hello there on 5000".into())
    );
    let (_, detail) = server.get(&format!("/apps/{app}")).await;
    assert_eq!(detail["env"][0]["value"], "********", "values are not shown");
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_express_app_is_detected_built_on_the_debian_base_and_served() {
    let server = spawn_app().await;
    let app = unique("express");
    let repo = git_repo(&[
        ("package.json", br#"{"name":"shop","version":"1.0.0","dependencies":{"express":"^4.19.0"}}"#.to_vec()),
        (
            "app.js",
            b"const express = require('express');\nconst app = express();\napp.get('/', (req, res) => res.send('express on ' + process.env.PORT));\napp.listen(process.env.PORT);\n".to_vec(),
        ),
    ]);
    let path = repo.path().to_str().unwrap().to_owned();
    let out = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stderr.contains("detected express (package.json: express)"),
        "{}",
        out.stderr
    );
    assert_eq!(server.fetch(&app, "/").await, (200, "express on 3000".into()));
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apps_deployed_at_the_same_time_both_go_live() {
    let server = spawn_app().await;
    let (a, b) = (unique("twin-a"), unique("twin-b"));
    // A slow build step makes the overlap certain.
    let files = |text: &str| {
        busybox_app_with(
            text,
            r#"CMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
            "RUN [\"/busybox\", \"sleep\", \"2\"]\n",
        )
    };
    let (repo_a, repo_b) = (git_repo(&files("A")), git_repo(&files("B")));
    let mut ids = Vec::new();
    for (app, repo) in [(&a, &repo_a), (&b, &repo_b)] {
        let (status, body) = server
            .post("/apps", json!({"name": app, "source": repo.path()}))
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, d) = server.post(&format!("/apps/{app}/deployments"), json!({})).await;
        assert_eq!(status, 202, "{d}");
        ids.push(d["id"].as_str().unwrap().to_owned());
    }
    let (da, db) = tokio::join!(server.wait_deployment(&ids[0]), server.wait_deployment(&ids[1]));
    assert_eq!(
        (da["state"].as_str(), db["state"].as_str()),
        (Some("live"), Some("live")),
        "{da}\n{db}"
    );
    // They overlapped: each started building before the other went live.
    let at = |d: &serde_json::Value, state: &str| {
        d["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["state"] == state)
            .unwrap()["at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        at(&da, "building") < at(&db, "live") && at(&db, "building") < at(&da, "live"),
        "{da}\n{db}"
    );
    assert_eq!(server.fetch(&a, "/").await, (200, "A".into()));
    assert_eq!(server.fetch(&b, "/").await, (200, "B".into()));
    server.cli(&["destroy", &a]).await;
    server.cli(&["destroy", &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warm_redeploy_reuses_the_image_and_the_api_documents_itself() {
    let server = spawn_app().await;
    let app = unique("warm");
    let repo = git_repo(&busybox_app("warm"));
    let path = repo.path().to_str().unwrap().to_owned();
    assert!(server.cli(&["deploy", &path, "--name", &app]).await.success);
    let out = server.cli(&["deploy", &path, "--name", &app, "-v"]).await;
    assert!(out.success, "{out:?}");
    assert!(out.stderr.contains("is up to date; reusing it"), "{}", out.stderr);

    let openapi: serde_json::Value = server
        .http
        .get(format!("{}/api/v1/openapi.json", server.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/apps",
        "/api/v1/apps/{app}/deployments",
        "/api/v1/deployments/{id}",
        "/api/v1/frameworks",
        "/api/v1/analyze",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} documented");
    }
    let (status, frameworks) = server.get("/frameworks").await;
    assert_eq!(status, 200);
    assert_eq!(frameworks.as_array().unwrap().len(), 13);
    let (status, analysis) = server.post("/analyze", json!({"source": repo.path()})).await;
    assert_eq!(status, 200, "{analysis}");
    assert_eq!(analysis["detection"]["framework"], "dockerfile");
    assert_eq!(analysis["detection"]["defaults"]["port"], 8080);
    let unauthenticated = server
        .http
        .get(format!("{}/api/v1/apps", server.api))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    server.cli(&["destroy", &app]).await;
}
