//! A server killed mid-deploy (SIGKILL) and started again loses nothing:
//! the interrupted deployment ends failed with its step, queued work runs,
//! the live release keeps serving, no orphan container is left.

mod support;

use serde_json::json;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::*;

/// `easydeploy server` as a child process on fresh ports, a client of its
/// API with the admin token, and its proxy's port.
fn start_server(data_dir: &std::path::Path) -> (Child, Api, u16) {
    let server = ServerProcess::start(data_dir, None, &[]);
    let api = Api {
        url: server.url,
        token: admin_token(data_dir),
        http: reqwest::blocking::Client::new(),
    };
    (server.child, api, server.proxy)
}

struct Api {
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return serde_json::Value::Null;
        }
        response.json().unwrap()
    }
    /// Creates the app with the repository as its source.
    fn create_app(&self, app: &str, repo: &std::path::Path) {
        self.call(
            reqwest::Method::POST,
            "/apps",
            Some(json!({"name": app, "source": repo})),
        );
    }
    /// Creates the app from a new repository of `busybox_app(index_html)`
    /// and deploys it; returns the repository once the deployment is live.
    fn create_and_deploy(&self, app: &str, index_html: &str) -> (tempfile::TempDir, String) {
        let repo = git_repo(&busybox_app(index_html));
        self.create_app(app, repo.path());
        let id = self.deploy(app);
        self.wait(&id, &["live"]);
        (repo, id)
    }
    fn deploy(&self, app: &str) -> String {
        let d = self.call(
            reqwest::Method::POST,
            &format!("/apps/{app}/deployments"),
            Some(json!({})),
        );
        d["id"].as_str().unwrap().to_owned()
    }
    fn deployment(&self, id: &str) -> serde_json::Value {
        self.call(reqwest::Method::GET, &format!("/deployments/{id}"), None)
    }
    fn wait(&self, id: &str, wanted: &[&str]) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let d = self.deployment(id);
            if wanted.contains(&d["state"].as_str().unwrap()) {
                return d;
            }
            assert!(Instant::now() < deadline, "{id} never reached {wanted:?}: {d}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn fetch(proxy: u16, app: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{proxy}/"))
        .header("host", format!("{app}.localhost"))
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn a_killed_server_restarts_without_stuck_deployments_or_orphans() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, api, proxy) = start_server(data.path());
    let (app, other) = (unique("crash"), unique("queued"));

    let (repo, first) = api.create_and_deploy(&app, "stable");
    assert_eq!(fetch(proxy, &app), (200, "stable".into()));

    // A slow build, and behind it (one worker) two deployments of another app.
    let slow = busybox_app_with(
        "never",
        r#"CMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
        "RUN [\"/busybox\", \"sleep\", \"20\"]\n",
    );
    commit(repo.path(), &slow, "slow build");
    let interrupted = api.deploy(&app);
    let other_repo = git_repo(&busybox_app("other"));
    api.create_app(&other, other_repo.path());
    let superseded = api.deploy(&other);
    let queued = api.deploy(&other);
    let d = api.deployment(&superseded);
    assert_eq!(d["state"], "cancelled");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("superseded by deployment #2"),
        "{d}"
    );
    api.wait(&interrupted, &["building"]);

    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();

    let (mut server, api, proxy) = start_server(data.path());
    let d = api.deployment(&interrupted);
    assert_eq!(d["state"], "failed", "{d}");
    assert_eq!(d["failed_step"], "building");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("server stopped while building image"),
        "{d}"
    );
    let history: Vec<&str> = d["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(history.last(), Some(&"failed"));
    assert_eq!(
        fetch(proxy, &app),
        (200, "stable".into()),
        "the live release serves through the new proxy"
    );
    let d = api.wait(&queued, &["live", "failed"]);
    assert_eq!(d["state"], "live", "queued work survived the restart: {d}");
    assert_eq!(fetch(proxy, &other), (200, "other".into()));
    let stuck = &STEPS[..STEPS.len() - 1]; // all but live
    for id in [&first, &interrupted, &superseded, &queued] {
        let state = api.deployment(id)["state"].as_str().unwrap().to_owned();
        assert!(!stuck.contains(&state.as_str()), "{id} stuck in {state}");
    }
    assert_eq!(
        containers_with_label(&format!("easydeploy.app={app}")).len(),
        1,
        "only the live replica"
    );

    for name in [&app, &other] {
        api.call(reqwest::Method::DELETE, &format!("/apps/{name}"), None);
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn sigterm_stops_the_server_gracefully_and_leaves_apps_running() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, api, _) = start_server(data.path());
    let app = unique("graceful");
    let (_repo, _) = api.create_and_deploy(&app, "still here");

    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server stops within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
    assert_eq!(running_containers(&app), 1, "the app kept running");

    let (mut server, api, proxy) = start_server(data.path());
    assert_eq!(
        fetch(proxy, &app),
        (200, "still here".into()),
        "served again after the restart"
    );
    api.call(reqwest::Method::DELETE, &format!("/apps/{app}"), None);
    server.kill().unwrap();
    server.wait().unwrap();
}
