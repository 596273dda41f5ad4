//! Bad input and failing apps: a clear 4xx or non-zero exit naming the
//! problem, nothing created or changed, the previous version still serving.

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_before_anything_is_created() {
    let server = spawn_app().await;
    let repo = git_repo(&busybox_app("x"));
    let path = repo.path().to_str().unwrap().to_owned();
    let app = unique("bad");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["deploy", &path, "--name", "Not_A_Label"], "invalid app name"),
        (
            vec!["deploy", &path, "--name", &app, "--framework", "cobol"],
            "unknown framework 'cobol'",
        ),
        (
            vec!["deploy", &path, "--name", &app, "--port", "70000"],
            "port 70000 is out of range",
        ),
        (
            vec!["deploy", &path, "--name", &app, "--env", "1BAD=x"],
            "invalid environment variable name",
        ),
        (
            vec!["deploy", &path, "--name", &app, "--env", "NOVALUE"],
            "must look like NAME=value",
        ),
        (
            vec!["deploy", &path, "--name", &app, "--root", "../outside"],
            "must stay inside the repository",
        ),
        (
            vec!["deploy", &path, "--name", &app, "--replicas", "0"],
            "replicas must be between 1 and 20",
        ),
        (
            vec!["deploy", &path, "--name", &app, "--branch", "no-such-branch"],
            "branch 'no-such-branch' does not exist",
        ),
        (
            vec!["deploy", "/no/such/repo", "--name", &app],
            "neither a git URL nor an existing folder",
        ),
        (
            vec!["deploy", "file:///no/such/repo", "--name", &app],
            "cannot reach the repository",
        ),
        (
            vec!["deploy", "ftp://example.com/x", "--name", &app],
            "use an https, http, ssh, git or file URL",
        ),
    ];
    for (args, expected) in cases {
        let out = server.cli(&args).await;
        assert!(!out.success, "{args:?} must fail");
        assert!(
            out.stderr.contains(expected),
            "{args:?}: expected '{expected}' in {}",
            out.stderr
        );
    }
    // The same through the API: 4xx with stable codes.
    let api_cases = [
        (json!({"name": "UPPER", "source": path}), 400, "invalid_app_name"),
        (
            json!({"name": app, "source": path, "port": 0}),
            400,
            "invalid_port",
        ),
        (
            json!({"name": app, "source": path, "env": ["A=b\nRUN rm -rf /"]}),
            400,
            "invalid_env",
        ),
        (
            json!({"name": app, "source": path, "run_command": "a\nb"}),
            400,
            "invalid_command",
        ),
        (
            json!({"name": app, "source": path, "branch": "nope"}),
            422,
            "unknown_branch",
        ),
        (
            json!({"name": app, "source": "/no/such/repo"}),
            422,
            "repository_unreachable",
        ),
        (json!({"name": app}), 400, "missing_source"),
        (
            json!({"name": app, "source": path, "colour": "red"}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in api_cases {
        let (got, answer) = server.post("/apps", body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} → {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, apps) = server.get("/apps").await;
    assert_eq!(apps, json!([]), "nothing was created");

    // A taken name says so without naming the owner.
    let (status, _) = server.post("/apps", json!({"name": app, "source": path})).await;
    assert_eq!(status, 201);
    let (status, answer) = server.post("/apps", json!({"name": app, "source": path})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("name_taken"))
    );
    let (status, _) = server.get("/apps/nonexistent-app").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/deployments/not-a-uuid!").await;
    assert_eq!(status, 404);
}

/// Deploys a good version, then `bad` files; asserts the failure and that
/// the good version still serves.
async fn fails_and_keeps_serving(
    server: &TestServer,
    bad: Vec<(&str, Vec<u8>)>,
    args: &[&str],
    step: &str,
    reason: &str,
) {
    let app = unique("keep");
    let repo = git_repo(&busybox_app("good version"));
    let path = repo.path().to_str().unwrap().to_owned();
    let out = server.cli(&["deploy", &path, "--name", &app]).await;
    assert!(out.success, "{out:?}");
    commit(repo.path(), &bad, "broken version");
    let mut deploy = vec!["deploy", &path, "--name", &app];
    deploy.extend_from_slice(args);
    let out = server.cli(&deploy).await;
    assert!(!out.success, "the broken version must fail");
    assert!(
        out.stderr.contains(&format!("failed while {step}")),
        "step '{step}' named: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(reason),
        "reason '{reason}' given: {}",
        out.stderr
    );
    assert!(!out.stdout.contains("http://"), "no URL printed on failure");
    assert_eq!(
        server.fetch(&app, "/").await,
        (200, "good version".into()),
        "previous version serving"
    );
    let (_, list) = server.get(&format!("/apps/{app}/deployments")).await;
    assert_eq!(list[0]["state"], "failed");
    assert_eq!(list[1]["state"], "live");
    let replicas = server.containers(&app);
    assert_eq!(
        replicas.len(),
        1,
        "the failed release left no container: {replicas:?}"
    );
    server.cli(&["destroy", &app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_build_failure_fails_the_deploy_and_the_old_version_keeps_serving() {
    let server = spawn_app().await;
    let bad = busybox_app_with(
        "bad",
        r#"CMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
        "RUN [\"/busybox\", \"false\"]\n",
    );
    fails_and_keeps_serving(&server, bad, &[], "building image", "the image build failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_that_exits_at_start_fails_the_deploy() {
    let server = spawn_app().await;
    let bad = busybox_app_with(
        "bad",
        r#"CMD ["/busybox", "sh", "-c", "echo missing DATABASE_URL >&2; exit 3"]"#,
        "",
    );
    fails_and_keeps_serving(&server, bad, &[], "health-checking", "missing DATABASE_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_that_never_becomes_healthy_fails_the_deploy() {
    let server = spawn_app_with(|c| c.health_timeout = 4).await;
    let bad = busybox_app_with("bad", r#"CMD ["/busybox", "sleep", "1000"]"#, "");
    fails_and_keeps_serving(
        &server,
        bad,
        &[],
        "health-checking",
        "did not become healthy within 4s",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_root_folder_or_unknown_layout_fails_detection() {
    let server = spawn_app().await;
    let good = busybox_app("good version");
    fails_and_keeps_serving(
        &server,
        good.clone(),
        &["--root", "missing"],
        "detecting framework",
        "the root folder 'missing' does not exist",
    )
    .await;
    let app = unique("nothing");
    let repo = git_repo(&[("README.md", b"just text".to_vec())]);
    let out = server
        .cli(&["deploy", repo.path().to_str().unwrap(), "--name", &app])
        .await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("could not detect the framework") && out.stderr.contains("--framework"),
        "{}",
        out.stderr
    );
    server.cli(&["destroy", &app]).await;
}
