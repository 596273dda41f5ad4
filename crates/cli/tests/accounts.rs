//! Accounts and tenant isolation end to end: every app and deployment
//! route against a stranger (404), a team viewer and deployer (403 where
//! their role does not reach), with nothing changed by refused requests;
//! tokens revocable; quotas; secrets neither stored nor logged in plaintext;
//! tenants' containers unable to reach each other.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;

/// Every app- and deployment-scoped route: method, path (`{app}`, `{id}`
/// replaced), body, and the least role it needs.
fn routes() -> Vec<(Method, &'static str, Option<Value>, &'static str)> {
    use Method as M;
    vec![
        (M::GET, "/apps/{app}", None, "viewer"),
        (M::GET, "/apps/{app}/logs?tail=1", None, "viewer"),
        (
            M::GET,
            "/apps/{app}/logs/stream?tail=1&follow=false",
            None,
            "viewer",
        ),
        (M::GET, "/apps/{app}/deployments", None, "viewer"),
        (M::GET, "/apps/{app}/releases", None, "viewer"),
        (M::GET, "/apps/{app}/env", None, "viewer"),
        (M::GET, "/apps/{app}/events", None, "viewer"),
        (M::GET, "/apps/{app}/alerts", None, "viewer"),
        (M::GET, "/apps/{app}/stats", None, "viewer"),
        (M::GET, "/apps/{app}/metrics?window=10m&step=1m", None, "viewer"),
        (M::GET, "/deployments/{id}", None, "viewer"),
        (M::GET, "/deployments/{id}/logs", None, "viewer"),
        (M::GET, "/deployments/{id}/logs/stream", None, "viewer"),
        (M::GET, "/deployments/{id}/artifacts", None, "viewer"),
        (M::GET, "/deployments/{id}/artifacts/Dockerfile", None, "viewer"),
        (M::GET, "/apps/{app}/env?reveal=true", None, "deployer"),
        (M::GET, "/apps/{app}/webhook", None, "deployer"),
        (M::POST, "/apps/{app}/deployments", Some(json!({})), "deployer"),
        (M::POST, "/apps/{app}/rollback", Some(json!({})), "deployer"),
        (
            M::PATCH,
            "/apps/{app}/env",
            Some(json!({"set": ["INTRUDER=1"]})),
            "deployer",
        ),
        (
            M::POST,
            "/apps/{app}/scale",
            Some(json!({"replicas": 3})),
            "deployer",
        ),
        (
            M::PUT,
            "/apps/{app}/autoscale",
            Some(json!({"min": 1, "max": 4, "target_rps": 5.0})),
            "deployer",
        ),
        (M::DELETE, "/apps/{app}/autoscale", None, "deployer"),
        (
            M::PUT,
            "/apps/{app}/alerts",
            Some(json!({"webhook_url": "http://127.0.0.1:9/x"})),
            "deployer",
        ),
        (M::DELETE, "/apps/{app}/alerts", None, "deployer"),
        (M::DELETE, "/apps/{app}", None, "owner"),
    ]
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 1,
        "deployer" => 2,
        "owner" => 3,
        _ => 0,
    }
}

/// What can be observed of an app: settings, releases, deployments, alerts.
async fn snapshot(app: &TestServer, name: &str) -> Value {
    let (_, detail) = app.get(&format!("/apps/{name}")).await;
    let (_, deployments) = app.get(&format!("/apps/{name}/deployments")).await;
    let (_, env) = app.get(&format!("/apps/{name}/env?reveal=true")).await;
    let (_, alerts) = app.get(&format!("/apps/{name}/alerts")).await;
    json!({
        "settings": detail["app"],
        "deployments": deployments.as_array().map(|d| d.iter().map(|d| d["id"].clone()).collect::<Vec<_>>()),
        "env": env,
        "alerts": alerts["enabled"],
    })
}

#[tokio::test]
async fn tenants_cannot_see_or_touch_each_others_apps() {
    let app = spawn_app().await;
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let carl = app.sign_up("carl@example.com").await;
    let dave = app.sign_up("dave@example.com").await;

    // Ann's team: Carl views, Dave deploys.
    let (s, b) = app
        .call_as(&ann, Method::POST, "/teams", Some(json!({"name": "ops"})))
        .await;
    assert_eq!(s, 201, "{b}");
    for (email, role) in [("carl@example.com", "viewer"), ("dave@example.com", "deployer")] {
        let body = json!({"email": email, "role": role});
        let (s, b) = app
            .call_as(&ann, Method::POST, "/teams/ops/members", Some(body))
            .await;
        assert_eq!(s, 200, "{b}");
    }

    let repo = git_repo(&busybox_app("team app"));
    let name = unique("team");
    let create = json!({"name": name, "source": path_of(&repo), "team": "ops", "env": ["DB_PASSWORD=p4ss-word-value"]});
    let (s, b) = app
        .call_as(&carl, Method::POST, "/apps", Some(create.clone()))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "viewers cannot create team apps"
    );
    let (s, b) = app
        .call_as(&bob, Method::POST, "/apps", Some(create.clone()))
        .await;
    assert_eq!(s, 404, "a stranger cannot tell the team exists: {b}");
    let (s, b) = app.call_as(&ann, Method::POST, "/apps", Some(create)).await;
    assert_eq!(s, 201, "{b}");
    let (s, d) = app
        .call_as(
            &ann,
            Method::POST,
            &format!("/apps/{name}/deployments"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_deployment(&id).await["state"], "live");

    // A name is unique platform-wide; the refusal does not say whose it is.
    let (s, b) = app
        .call_as(
            &bob,
            Method::POST,
            "/apps",
            Some(json!({"name": name, "source": path_of(&repo)})),
        )
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("name_taken")));
    assert!(
        !b.to_string().contains("ann") && !b.to_string().contains("ops"),
        "{b}"
    );

    let before = snapshot(&app, &name).await;
    let path_of_route = |p: &str| p.replace("{app}", &name).replace("{id}", &id);
    for (method, path, body, needed) in routes() {
        let path = path_of_route(path);
        let (s, b) = app.call_as(&bob, method.clone(), &path, body.clone()).await;
        assert_eq!(s, 404, "stranger {method} {path}: {b}");
        assert_eq!(b["error"]["code"], "not_found", "{method} {path}");
        for (who, token, role) in [("viewer", &carl, "viewer"), ("deployer", &dave, "deployer")] {
            if rank(role) >= rank(needed) {
                continue;
            }
            let (s, b) = app.call_as(token, method.clone(), &path, body.clone()).await;
            assert_eq!(s, 403, "{who} {method} {path}: {b}");
            assert_eq!(b["error"]["code"], "forbidden");
        }
    }
    // Unauthenticated and forged tokens.
    let (s, b) = app.call_as("", Method::GET, &format!("/apps/{name}"), None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("missing_token")));
    let (s, _) = app
        .call_as("ed_0123456789abcdef_00", Method::GET, "/apps", None)
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        snapshot(&app, &name).await,
        before,
        "refused requests changed nothing"
    );

    // What each may read.
    for (token, role) in [(&carl, "viewer"), (&dave, "deployer")] {
        for (method, path, _, needed) in routes() {
            if method != Method::GET || rank(needed) > rank(role) {
                continue;
            }
            let path = path_of_route(path);
            let (s, b) = app.call_as(token, method, &path, None).await;
            assert_eq!(s, 200, "{role} GET {path}: {b}");
        }
        let (_, env) = app
            .call_as(token, Method::GET, &format!("/apps/{name}/env"), None)
            .await;
        assert_eq!(env[0]["value"], "********", "values are masked without reveal");
    }
    let (_, env) = app
        .call_as(&dave, Method::GET, &format!("/apps/{name}/env?reveal=true"), None)
        .await;
    assert_eq!(env[0]["value"], "p4ss-word-value");
    let (_, apps) = app.call_as(&bob, Method::GET, "/apps", None).await;
    assert_eq!(apps, json!([]), "strangers list nothing");
    let (_, apps) = app.call_as(&carl, Method::GET, "/apps", None).await;
    assert_eq!(apps.as_array().unwrap().len(), 1);
    let (_, stats) = app.call_as(&bob, Method::GET, "/stats", None).await;
    assert_eq!(stats["total"], 0, "{stats}");
    let (s, _) = app.call_as(&bob, Method::GET, "/teams/ops", None).await;
    assert_eq!(s, 404);
    let (s, _) = app
        .call_as(
            &carl,
            Method::POST,
            "/teams/ops/members",
            Some(json!({"email": "bob@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(s, 403, "viewers do not manage members");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.api))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 403, "platform metrics are for administrators");

    // The deployer deploys; the owner deletes.
    let (s, b) = app
        .call_as(
            &dave,
            Method::PATCH,
            &format!("/apps/{name}/env"),
            Some(json!({"set": ["FEATURE=on"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    if let Some(id) = b["deployment"]["id"].as_str() {
        app.wait_deployment(id).await;
    }
    let (s, _) = app
        .call_as(&ann, Method::DELETE, &format!("/apps/{name}"), None)
        .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_revocable() {
    let app = spawn_app().await;
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let (s, me) = app.call_as(&ann, Method::GET, "/me", None).await;
    assert_eq!(s, 200);
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["admin"], false);
    let (_, tokens) = app.call_as(&ann, Method::GET, "/tokens", None).await;
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert!(
        !tokens.to_string().contains(ann.rsplit('_').next().unwrap()),
        "no secret listed"
    );
    let id = me["token_id"].as_str().unwrap();
    let (s, _) = app
        .call_as(&bob, Method::DELETE, &format!("/tokens/{id}"), None)
        .await;
    assert_eq!(s, 404, "another user's token cannot be revoked");
    let (s, _) = app
        .call_as(&ann, Method::DELETE, &format!("/tokens/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, b) = app.call_as(&ann, Method::GET, "/me", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("invalid_token")));

    // Sign-in failures do not say which part was wrong; duplicates and weak passwords are refused.
    let wrong = json!({"email": "ann@example.com", "password": "not the password at all"});
    let (s, b) = app.call_as("", Method::POST, "/tokens", Some(wrong)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let nobody = json!({"email": "nobody@example.com", "password": "not the password at all"});
    let (s, _) = app.call_as("", Method::POST, "/tokens", Some(nobody)).await;
    assert_eq!(s, 401);
    let dup = json!({"email": "ANN@example.com", "password": "another good passphrase"});
    let (s, b) = app.call_as("", Method::POST, "/users", Some(dup)).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("email_taken")));
    let weak = json!({"email": "eve@example.com", "password": "password1"});
    let (s, b) = app.call_as("", Method::POST, "/users", Some(weak)).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("weak_password")));

    // The admin token of the data dir is the administrator's.
    let (_, me) = app.get("/me").await;
    assert_eq!(
        (me["admin"].as_bool(), me["token_id"].as_str()),
        (Some(true), Some("admin"))
    );
}

#[tokio::test]
async fn sign_in_is_rate_limited_and_answers_carry_security_headers() {
    let app = spawn_app_with(|c| c.sign_in_rate = 3).await;
    let wrong = json!({"email": "x@example.com", "password": "not the password at all"});
    for _ in 0..3 {
        let (s, _) = app
            .call_as("", Method::POST, "/tokens", Some(wrong.clone()))
            .await;
        assert_eq!(s, 401);
    }
    let response = app
        .http
        .post(format!("{}/api/v1/tokens", app.api))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Other routes are not limited, and carry the headers.
    let response = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(response.headers()[name], value);
    }
    let big = "x".repeat(2 * 1024 * 1024);
    let response = app
        .http
        .post(format!("{}/api/v1/analyze", app.api))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "bodies are limited");
}

#[tokio::test]
async fn quotas_refuse_what_a_tenant_may_not_have() {
    let app = spawn_app_with(|c| {
        c.quota_apps = 1;
        c.quota_replicas = 3;
    })
    .await;
    let ann = app.sign_up("ann@example.com").await;
    let repo = git_repo(&busybox_app("q"));
    let first = json!({"name": unique("qa"), "source": path_of(&repo), "replicas": 2});
    let (s, b) = app
        .call_as(&ann, Method::POST, "/apps", Some(first.clone()))
        .await;
    assert_eq!(s, 201, "{b}");
    let second = json!({"name": unique("qb"), "source": path_of(&repo)});
    let (s, b) = app.call_as(&ann, Method::POST, "/apps", Some(second)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("quota_exceeded")),
        "{b}"
    );
    assert!(b["error"]["message"].as_str().unwrap().contains("apps"));
    let name = first["name"].as_str().unwrap();
    let (s, b) = app
        .call_as(
            &ann,
            Method::PUT,
            &format!("/apps/{name}/autoscale"),
            Some(json!({"min": 1, "max": 5, "target_rps": 10.0})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("quota_exceeded")),
        "{b}"
    );
    let (_, apps) = app.call_as(&ann, Method::GET, "/apps", None).await;
    assert_eq!(apps.as_array().unwrap().len(), 1, "nothing was created");
    // Another tenant has its own quota.
    let bob = app.sign_up("bob@example.com").await;
    let other = json!({"name": unique("qc"), "source": path_of(&repo)});
    let (s, _) = app.call_as(&bob, Method::POST, "/apps", Some(other)).await;
    assert_eq!(s, 201);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn env_values_are_neither_stored_nor_logged_in_plaintext() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let server = ServerProcess::start(
        data.path(),
        Some(&log),
        &[("RUST_LOG", "debug,sqlx=warn,bollard=warn,hyper=warn")],
    );
    let repo = git_repo(&busybox_app("secret app"));
    let name = unique("sec");
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_easydeploy"))
            .args(&args)
            .env("EASYDEPLOY_URL", &server.url)
            .env("EASYDEPLOY_DATA_DIR", data.path())
            .env("EASYDEPLOY_CONFIG_DIR", "/nonexistent")
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {text}");
        text
    };
    let source = path_of(&repo).display().to_string();
    let secrets = ["first-s3cr3t-value", "second-s3cr3t-value", "third-s3cr3t-value"];
    run(vec![
        "deploy".into(),
        source,
        "--name".into(),
        name.clone(),
        "-e".into(),
        format!("A_KEY={}", secrets[0]),
    ]);
    let listed = run(vec![
        "env".into(),
        "set".into(),
        name.clone(),
        format!("B_KEY={}", secrets[1]),
        format!("C_KEY={}", secrets[2]),
    ]);
    let masked = run(vec!["env".into(), "list".into(), name.clone()]);
    assert!(masked.contains("A_KEY=********"), "{masked}");
    let revealed = run(vec!["env".into(), "list".into(), name.clone(), "--reveal".into()]);
    assert!(revealed.contains(&format!("B_KEY={}", secrets[1])), "{revealed}");
    run(vec!["destroy".into(), name.clone()]);
    server.stop();

    let log_text = std::fs::read(&log).unwrap();
    assert!(contains(&log_text, &name), "the log is the server's");
    let mut raw = Vec::new();
    for file in ["state.db", "state.db-wal"] {
        raw.extend(std::fs::read(data.path().join(file)).unwrap_or_default());
    }
    let mut artifacts = Vec::new();
    for entry in walk(&data.path().join("artifacts")) {
        artifacts.extend(std::fs::read(entry).unwrap());
    }
    for secret in secrets {
        assert!(!contains(&raw, secret), "{secret} is in the database file");
        assert!(!contains(&log_text, secret), "{secret} is in the server log");
        assert!(
            !contains(&artifacts, secret),
            "{secret} is in a build log or artifact"
        );
        assert!(!listed.contains(secret), "{secret} echoed by `env set`");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Each tenant's containers sit on their own network: one tenant's
/// container reaches its own app but not another tenant's.
#[tokio::test]
async fn tenant_networks_keep_containers_apart() {
    let app = spawn_app().await;
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let repo = git_repo(&busybox_app("isolated"));
    let mut names = Vec::new();
    for token in [&ann, &bob] {
        let name = unique("net");
        let (s, b) = app
            .call_as(
                token,
                Method::POST,
                "/apps",
                Some(json!({"name": name, "source": path_of(&repo)})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (_, d) = app
            .call_as(
                token,
                Method::POST,
                &format!("/apps/{name}/deployments"),
                Some(json!({})),
            )
            .await;
        assert_eq!(
            app.wait_deployment(d["id"].as_str().unwrap()).await["state"],
            "live"
        );
        names.push(name);
    }
    let (_, ann_app) = app.get(&format!("/apps/{}", names[0])).await;
    let (_, bob_app) = app.get(&format!("/apps/{}", names[1])).await;
    let addr = |v: &Value| v["replica_status"][0]["addr"].as_str().unwrap().to_owned();
    let container = |v: &Value| v["replica_status"][0]["name"].as_str().unwrap().to_owned();
    // busybox's nc: a raw HTTP request, 3 s to connect and answer.
    let fetch_from = |from: String, to: String| async move {
        let (ip, port) = to.rsplit_once(':').unwrap();
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /busybox nc -w 3 {ip} {port}");
        let out = tokio::process::Command::new("docker")
            .args(["exec", &from, "/busybox", "sh", "-c", &script])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success() && text.contains("200 OK"), text)
    };
    let (ok, body) = fetch_from(container(&ann_app), addr(&ann_app)).await;
    assert!(
        ok && body.contains("isolated"),
        "a container reaches its own tenant's app: {body}"
    );
    let (ok, _) = fetch_from(container(&ann_app), addr(&bob_app)).await;
    assert!(!ok, "a container must not reach another tenant's app");
    let (ok, _) = fetch_from(container(&bob_app), addr(&ann_app)).await;
    assert!(!ok, "nor the other way round");
    // Containers are labelled with their tenant.
    let (_, me) = app.call_as(&ann, Method::GET, "/me", None).await;
    let labelled = containers_with_label(&format!("easydeploy.tenant={}", me["tenant"].as_str().unwrap()));
    assert!(labelled.contains(&container(&ann_app)), "{labelled:?}");
    let network = format!("easydeploy-{}", me["tenant"].as_str().unwrap());
    let exists = |network: String| async move {
        let out = tokio::process::Command::new("docker")
            .args(["network", "inspect", &network])
            .output()
            .await
            .unwrap();
        out.status.success()
    };
    assert!(exists(network.clone()).await);
    for (token, name) in [(&ann, &names[0]), (&bob, &names[1])] {
        let (s, _) = app
            .call_as(token, Method::DELETE, &format!("/apps/{name}"), None)
            .await;
        assert_eq!(s, 204);
    }
    assert!(
        !exists(network).await,
        "a tenant's network goes with its last app"
    );
}

/// The CLI's account commands: signup signs in and keeps the token in the
/// config dir (0600); whoami and team commands use it; logout revokes it.
/// Runs the CLI with a config dir and no other credentials.
async fn cli_as_user(
    api: String,
    config: std::path::PathBuf,
    args: Vec<&'static str>,
    password: Option<&'static str>,
) -> (bool, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_easydeploy"));
    command
        .args(&args)
        .env("EASYDEPLOY_URL", api)
        .env("EASYDEPLOY_CONFIG_DIR", config)
        .env("EASYDEPLOY_DATA_DIR", "/nonexistent")
        .env_remove("EASYDEPLOY_TOKEN");
    match password {
        Some(p) => command.env("EASYDEPLOY_PASSWORD", p),
        None => command.env_remove("EASYDEPLOY_PASSWORD"),
    };
    let output = command.output().await.unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn the_cli_signs_up_in_and_out() {
    let app = spawn_app().await;
    let config = tempfile::tempdir().unwrap();
    let run = |args: Vec<&'static str>, password: Option<&'static str>| {
        cli_as_user(app.api.clone(), config.path().to_path_buf(), args, password)
    };
    let (ok, text) = run(vec!["whoami"], None).await;
    assert!(!ok && text.contains("missing_token"), "{text}");
    let (ok, text) = run(vec!["signup", "--email", "cli@example.com"], Some("short")).await;
    assert!(
        !ok && text.contains("weak_password"),
        "weak passwords are refused: {text}"
    );
    let (ok, text) = run(
        vec!["signup", "--email", "cli@example.com"],
        Some("a long enough passphrase"),
    )
    .await;
    assert!(ok, "{text}");
    let saved = config.path().join("credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (ok, text) = run(vec!["whoami"], None).await;
    assert!(ok && text.contains("cli@example.com"), "{text}");
    let (ok, text) = run(vec!["teams", "create", "crew"], None).await;
    assert!(ok, "{text}");
    let (ok, text) = run(vec!["whoami"], None).await;
    assert!(ok && text.contains("team crew: owner"), "{text}");
    let token: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let (ok, text) = run(vec!["logout"], None).await;
    assert!(ok, "{text}");
    assert!(!saved.exists());
    let (s, _) = app.call_as(&token, Method::GET, "/me", None).await;
    assert_eq!(s, 401, "logout revoked the token");
    let (ok, text) = run(
        vec!["login", "--email", "cli@example.com"],
        Some("the wrong passphrase"),
    )
    .await;
    assert!(!ok && text.contains("invalid_credentials"), "{text}");
    let (ok, text) = run(
        vec!["login", "--email", "cli@example.com"],
        Some("a long enough passphrase"),
    )
    .await;
    assert!(ok, "{text}");
    let (ok, text) = run(vec!["tokens", "list"], None).await;
    assert!(ok && text.lines().count() == 1, "one live token: {text}");
}
