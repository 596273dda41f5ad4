//! GitHub: sign-in with the OAuth web flow, browsing repositories through
//! the user's token, connecting an app (push hook, authenticated clone,
//! commit statuses) and push-to-deploy, against a local fake of GitHub's
//! API whose repositories are real ones served by `git http-backend`.

#[path = "support/fake_github.rs"]
mod fake_github;
mod support;

use easydeploy_core::ports::{SourceCredentials, SourceFetcher};
use fake_github::FakeGithub;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;
use support::*;

const CLIENT_ID: &str = "Iv1.testclient";
const CLIENT_SECRET: &str = "test-client-secret";

async fn spawn_with_github(fake: &FakeGithub) -> TestServer {
    let (url, api) = (fake.url.clone(), fake.api_url.clone());
    spawn_app_with(move |c| {
        c.github_client_id = Some(CLIENT_ID.into());
        c.github_client_secret = Some(CLIENT_SECRET.into());
        c.github_url = url;
        c.github_api_url = api;
    })
    .await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Follows the sign-in flow by hand; returns the callback URL GitHub sent
/// the browser to.
async fn authorize(server: &TestServer, fake: &FakeGithub) -> String {
    let http = no_redirects();
    let login = http
        .get(format!("{}/auth/github/login", server.api))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 302);
    let to_github = location(&login);
    assert!(
        to_github.starts_with(&format!("{}/login/oauth/authorize?", fake.url)),
        "{to_github}"
    );
    let query: Vec<(String, String)> = url::Url::parse(&to_github)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        param("redirect_uri"),
        Some(format!("{}/auth/github/callback", server.api))
    );
    assert!(param("state").is_some_and(|s| s.len() >= 32));
    let back = http.get(&to_github).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = location(&back);
    assert!(callback.starts_with(&format!("{}/auth/github/callback?", server.api)));
    callback
}

/// Signs in with GitHub; returns the Easy Deploy token.
async fn sign_in_with_github(server: &TestServer, fake: &FakeGithub) -> String {
    let callback = authorize(server, fake).await;
    let response = server.http.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

fn github_tokens(fake: &FakeGithub) -> Vec<String> {
    fake.state.lock().unwrap().tokens.clone()
}

/// Every file under `dir`, as bytes.
fn all_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push((path.clone(), std::fs::read(&path).unwrap_or_default())),
                _ => {}
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_in_with_github_links_the_account_and_keeps_the_token_sealed() {
    let fake = FakeGithub::start(CLIENT_ID, CLIENT_SECRET).await;
    let server = spawn_with_github(&fake).await;

    let callback = authorize(&server, &fake).await;
    let response = server.http.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let issued: Value = response.json().await.unwrap();
    let token = issued["token"].as_str().unwrap();
    let (status, me) = server.call_as(token, Method::GET, "/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["github_login"], "octocat");
    assert_eq!(
        me["email"], "octocat@github.example",
        "the primary verified email"
    );

    // The same callback again: the state was used up.
    let reused = server.http.get(&callback).send().await.unwrap();
    assert_eq!(reused.status(), 400);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_oauth_state");
    // A state this server never gave out.
    let forged = server
        .http
        .get(format!(
            "{}/auth/github/callback?code=code1&state={}",
            server.api,
            "ab".repeat(24)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_oauth_state");

    let access = github_tokens(&fake);
    assert_eq!(access.len(), 1);
    let db: Vec<u8> = ["state.db", "state.db-wal"]
        .iter()
        .flat_map(|f| std::fs::read(server.dir.path().join(f)).unwrap_or_default())
        .collect();
    assert!(!db.is_empty());
    assert!(
        !contains(&db, &access[0]),
        "the GitHub token is in the database file in plaintext"
    );

    // A user without GitHub access cannot browse; a revoked token says so; a rate limit says when.
    let plain = server.sign_up("plain@example.com").await;
    let (status, body) = server.call_as(&plain, Method::GET, "/github/repos", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("github_not_linked")),
        "{body}"
    );
    fake.state.lock().unwrap().rate_limited = true;
    let (status, body) = server.call_as(token, Method::GET, "/github/repos", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("github_rate_limited")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("resets at"),
        "{body}"
    );
    fake.state.lock().unwrap().rate_limited = false;
    fake.revoke_tokens();
    let (status, body) = server.call_as(token, Method::GET, "/github/repos", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("github_token_invalid")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sign in with GitHub again"));
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers a push event the way GitHub does for a hook.
async fn deliver(server: &TestServer, url: &str, delivery: &str, body: &Value, secret: &str) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let response = server
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/fake")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(secret, &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn push_event(fake: &FakeGithub, branch: &str, before: &str, after: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {
            "id": 4000, "name": "shop", "full_name": "octocat/shop", "private": true,
            "owner": {"login": "octocat", "id": 583231},
            "html_url": format!("{}/octocat/shop", fake.url),
            "clone_url": fake.clone_url("octocat", "shop"),
            "default_branch": "main"
        },
        "pusher": {"name": "octocat", "email": "octocat@github.example"},
        "head_commit": {"id": after, "message": "change the page"}
    })
}

async fn wait_for_statuses(fake: &FakeGithub, sha: &str, last: &str) -> Vec<(String, Value)> {
    for _ in 0..600 {
        let statuses = fake.statuses("octocat/shop", sha);
        if statuses.last().is_some_and(|(s, _)| s == last) {
            return statuses;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no {last} status for {sha}: {:?}",
        fake.statuses("octocat/shop", sha)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connected_github_repository_deploys_on_push_and_reports_statuses() {
    let fake = FakeGithub::start(CLIENT_ID, CLIENT_SECRET).await;
    let repo = git_repo(&busybox_app("version one"));
    {
        let git = git2::Repository::open(repo.path()).unwrap();
        let head = git.head().unwrap().peel_to_commit().unwrap();
        git.branch("other", &head, false).unwrap();
        git.branch("staging", &head, false).unwrap();
    }
    let first = git2::Repository::open(repo.path())
        .unwrap()
        .head()
        .unwrap()
        .peel_to_commit()
        .unwrap()
        .id()
        .to_string();
    let (side_a, side_b) = (
        git_repo(&[("README.md", b"a".to_vec())]),
        git_repo(&[("README.md", b"b".to_vec())]),
    );
    fake.add_repo("octocat", "shop", true, repo.path());
    fake.add_repo("octocat", "notes", false, side_a.path());
    fake.add_repo("octo-org", "site", false, side_b.path());
    let server = spawn_with_github(&fake).await;
    let token = sign_in_with_github(&server, &fake).await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let token = token.clone();
        let server = &server;
        async move { server.call_as(&token, method, &path, body).await }
    };

    // Browse: repositories over two pages (the fake serves two a page).
    let (status, page1) = call(Method::GET, "/github/repos".into(), None).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["repos"].as_array().unwrap().len(), 2);
    assert_eq!(page1["next_page"], 2);
    let (_, page2) = call(Method::GET, "/github/repos?page=2".into(), None).await;
    assert_eq!(page2["repos"][0]["full_name"], "octo-org/site");
    assert!(page2["next_page"].is_null());
    let (status, meta) = call(Method::GET, "/github/repos/octocat/shop".into(), None).await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(
        (meta["default_branch"].as_str(), meta["private"].as_bool()),
        (Some("main"), Some(true))
    );
    let (status, body) = call(Method::GET, "/github/repos/octocat/missing".into(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("github_not_found"))
    );
    let (status, body) = call(Method::GET, "/github/repos/octocat/bad%20name".into(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_github_repo"))
    );
    // Branches across pages (Link header followed).
    let (_, branches) = call(Method::GET, "/github/repos/octocat/shop/branches".into(), None).await;
    let names: Vec<&str> = branches
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "other", "staging"]);
    assert_eq!(branches[0]["commit"], first.as_str());
    // The same through the CLI.
    let cli = |args: &'static [&'static str]| {
        let (api, token) = (server.api.clone(), token.clone());
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_easydeploy"))
                .args(args)
                .env("EASYDEPLOY_URL", api)
                .env("EASYDEPLOY_TOKEN", token)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let listed = cli(&["github", "repos"]).await;
    assert!(
        listed.contains("octocat/shop") && listed.contains("private"),
        "{listed}"
    );
    assert!(listed.contains("--page 2"), "{listed}");
    let listed = cli(&["github", "branches", "octocat/shop"]).await;
    assert!(
        listed.contains("staging") && listed.contains(first.as_str()),
        "{listed}"
    );
    let (status, latest) = call(
        Method::GET,
        "/github/repos/octocat/shop/commits/main".into(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["sha"], first.as_str());
    assert_eq!(latest["message"], "first version");
    assert_eq!(latest["author"], "Test");
    assert!(latest["date"].as_str().is_some());
    let (status, body) = call(
        Method::GET,
        "/github/repos/octocat/shop/commits/nope".into(),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("github_not_found")),
        "{body}"
    );
    let (_, top) = call(Method::GET, "/github/repos/octocat/shop/tree/main".into(), None).await;
    let entries: Vec<(&str, &str)> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("dir", "www"), ("file", "Dockerfile"), ("file", "busybox")]
    );
    let (_, www) = call(
        Method::GET,
        "/github/repos/octocat/shop/tree/main?path=www".into(),
        None,
    )
    .await;
    assert_eq!(www[0]["path"], "www/index.html");
    let (status, body) = call(
        Method::GET,
        "/github/repos/octocat/shop/tree/main?path=../etc".into(),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_root"))
    );
    let (status, body) = call(
        Method::GET,
        "/github/repos/octocat/shop/tree/main?path=nowhere".into(),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, analysis) = call(
        Method::POST,
        "/github/repos/octocat/shop/analyze".into(),
        Some(json!({"branch": "main", "root": ""})),
    )
    .await;
    assert_eq!(status, 200, "{analysis}");
    assert_eq!(analysis["commit"], first.as_str());
    assert_eq!(analysis["detection"]["framework"], "dockerfile");
    assert_eq!(
        analysis["detection"]["defaults"]["port"], 8080,
        "EXPOSE read from the fetched Dockerfile"
    );
    let (status, body) = call(
        Method::POST,
        "/github/repos/octocat/shop/analyze".into(),
        Some(json!({"branch": "main", "root": "www"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["detection"]["framework"], "static");

    // The clone needs the token, and the token is not written into the checkout.
    let clone_url = fake.clone_url("octocat", "shop");
    let source = easydeploy_core::GitSource::parse(&clone_url).unwrap();
    let main = easydeploy_core::Branch::parse("main").unwrap();
    let fetcher = easydeploy_git::GitFetcher::new();
    let scratch = tempfile::tempdir().unwrap();
    let refused = fetcher
        .fetch(&source, &main, None, &scratch.path().join("anon"))
        .await;
    assert!(refused.is_err(), "the fake serves git only with a token");
    let github_token = github_tokens(&fake)[0].clone();
    let credentials = SourceCredentials {
        username: "x-access-token".into(),
        password: github_token.clone(),
    };
    let checkout = fetcher
        .fetch_with(
            &source,
            &main,
            None,
            &scratch.path().join("co"),
            Some(&credentials),
        )
        .await
        .unwrap();
    assert_eq!(checkout.commit, first);
    for (path, bytes) in all_bytes(&scratch.path().join("co/.git")) {
        assert!(
            !contains(&bytes, &github_token),
            "token written to {}",
            path.display()
        );
    }
    let config = std::fs::read_to_string(scratch.path().join("co/.git/config")).unwrap();
    assert!(
        !config.contains("x-access-token") && !config.contains("127.0.0.1"),
        "{config}"
    );

    // Connect the repository: an app and a push hook signed with its secret.
    let app = unique("gh");
    let (status, created) = call(
        Method::POST,
        "/apps".into(),
        Some(json!({"name": app, "github": "octocat/shop"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], clone_url.as_str());
    assert_eq!(created["branch"], "main");
    let (_, webhook) = call(Method::GET, format!("/apps/{app}/webhook"), None).await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let hooks = fake.hooks();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.repo, "octocat/shop");
    assert_eq!(hook.body["name"], "web");
    assert_eq!(hook.body["active"], true);
    assert_eq!(hook.body["events"], json!(["push"]));
    assert_eq!(hook.body["config"]["content_type"], "json");
    assert_eq!(hook.body["config"]["insecure_ssl"], "0");
    assert_eq!(hook.body["config"]["secret"], secret.as_str());
    let hook_url = hook.body["config"]["url"].as_str().unwrap().to_owned();
    assert_eq!(hook_url, format!("{}/webhooks/github", server.api));

    // First deployment: cloned with the token; pending then success on the commit.
    let (status, d) = call(Method::POST, format!("/apps/{app}/deployments"), Some(json!({}))).await;
    assert_eq!(status, 202, "{d}");
    let d = server.wait_deployment(d["id"].as_str().unwrap()).await;
    assert_eq!(d["state"], "live", "{d}");
    assert_eq!(server.fetch(&app, "/").await, (200, "version one".into()));
    let statuses = wait_for_statuses(&fake, &first, "success").await;
    let states: Vec<&str> = statuses.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["pending", "success"]);
    let success = &statuses[1].1;
    assert_eq!(success["context"], "easydeploy/deploy");
    assert_eq!(
        success["target_url"],
        format!("http://{app}.localhost:{}", server.proxy.port())
    );

    // Push a change and deliver GitHub's signed event.
    let count = |v: &Value| v.as_array().unwrap().len();
    let deployments = || async {
        call(Method::GET, format!("/apps/{app}/deployments"), None)
            .await
            .1
    };
    let second = commit(
        repo.path(),
        &[("www/index.html", b"version two".to_vec())],
        "change the page",
    );
    let event = push_event(&fake, "main", &first, &second);
    let (status, bad) = deliver(&server, &hook_url, "delivery-bad", &event, "not the secret").await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    assert_eq!(count(&deployments().await), 1, "a bad signature deploys nothing");
    let (status, answer) = deliver(&server, &hook_url, "delivery-1", &event, &secret).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (202, Some("deployed")),
        "{answer}"
    );
    let id = answer["deployments"][0]["id"].as_str().unwrap().to_owned();
    let (status, again) = deliver(&server, &hook_url, "delivery-1", &event, &secret).await;
    assert_eq!((status, again["result"].as_str()), (200, Some("duplicate")));
    let other = push_event(&fake, "other", &first, &second);
    let (status, ignored) = deliver(&server, &hook_url, "delivery-2", &other, &secret).await;
    assert_eq!(
        (status, ignored["result"].as_str()),
        (202, Some("ignored")),
        "{ignored}"
    );
    let d = server.wait_deployment(&id).await;
    assert_eq!(
        (d["state"].as_str(), d["commit"].as_str()),
        (Some("live"), Some(second.as_str())),
        "{d}"
    );
    assert_eq!(server.fetch(&app, "/").await, (200, "version two".into()));
    let statuses = wait_for_statuses(&fake, &second, "success").await;
    let states: Vec<&str> = statuses.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["pending", "success"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&deployments().await), 2, "one deployment per accepted push");

    // A push that cannot build: a failure status naming the step.
    let broken = commit(
        repo.path(),
        &[("Dockerfile", b"FROM scratch\nRUN /no-such-program\n".to_vec())],
        "break the build",
    );
    let (status, answer) = deliver(
        &server,
        &hook_url,
        "delivery-3",
        &push_event(&fake, "main", &second, &broken),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let d = server
        .wait_deployment(answer["deployments"][0]["id"].as_str().unwrap())
        .await;
    assert_eq!(d["state"], "failed", "{d}");
    let statuses = wait_for_statuses(&fake, &broken, "failure").await;
    let failure = &statuses.last().unwrap().1;
    assert!(
        failure["description"]
            .as_str()
            .unwrap()
            .starts_with("building image failed"),
        "{failure}"
    );
    assert!(failure["description"].as_str().unwrap().chars().count() <= 140);
    assert_eq!(
        server.fetch(&app, "/").await,
        (200, "version two".into()),
        "the live release keeps serving"
    );

    // The token is nowhere in the data dir: database, logs, artifacts, workspaces.
    for (path, bytes) in all_bytes(server.dir.path()) {
        assert!(
            !contains(&bytes, &github_token),
            "GitHub token found in {}",
            path.display()
        );
    }
    let (_, app_view) = call(Method::GET, format!("/apps/{app}"), None).await;
    assert!(!app_view.to_string().contains(&github_token));

    // Deleting the app removes the hook.
    let (status, _) = call(Method::DELETE, format!("/apps/{app}"), None).await;
    assert_eq!(status, 204);
    // The user's tenant network is not removed with the app: free it (Docker has few address pools).
    let (_, me) = call(Method::GET, "/me".into(), None).await;
    let _ = std::process::Command::new("docker")
        .args([
            "network",
            "rm",
            &format!("easydeploy-{}", me["tenant"].as_str().unwrap()),
        ])
        .output();
    assert!(fake.hooks()[0].deleted, "the hook was removed on GitHub");

    // A source URL on the GitHub host connects the app too; a hook already
    // gone on GitHub does not stop the app's deletion.
    let notes = unique("notes");
    let (status, created) = call(
        Method::POST,
        "/apps".into(),
        Some(json!({"name": notes, "source": format!("{}/octocat/notes", fake.url)})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let hooks = fake.hooks();
    assert_eq!((hooks.len(), hooks[1].repo.as_str()), (2, "octocat/notes"));
    fake.state.lock().unwrap().hooks[1].deleted = true;
    let (status, _) = call(Method::DELETE, format!("/apps/{notes}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = call(
        Method::POST,
        "/apps".into(),
        Some(json!({"name": unique("x"), "github": "octocat/shop", "source": "/srv/x"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("conflicting_source"))
    );
    let plain = server.sign_up("nogithub@example.com").await;
    let (status, body) = server
        .call_as(
            &plain,
            Method::POST,
            "/apps",
            Some(json!({"name": unique("y"), "github": "octocat/shop"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("github_not_linked"))
    );

    let openapi: Value = server
        .http
        .get(format!("{}/api/v1/openapi.json", server.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/api/v1/github/repos", "get"),
        ("/api/v1/github/repos/{owner}/{repo}", "get"),
        ("/api/v1/github/repos/{owner}/{repo}/branches", "get"),
        ("/api/v1/github/repos/{owner}/{repo}/commits/{branch}", "get"),
        ("/api/v1/github/repos/{owner}/{repo}/tree/{branch}", "get"),
        ("/api/v1/github/repos/{owner}/{repo}/analyze", "post"),
    ] {
        let op = &openapi["paths"][path][method];
        assert_eq!(op["tags"], json!(["github"]), "{path}");
        assert!(
            op["responses"]["409"].is_object(),
            "{path} documents github_not_linked"
        );
    }
}
