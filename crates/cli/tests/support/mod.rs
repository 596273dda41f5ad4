//! Shared helpers for end-to-end tests: a real server on free ports with a
//! temporary data dir, real git repositories, the real CLI binary.
#![allow(dead_code)]

use easydeploy::server::{self, RunningServer, ServerConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A deployment's states from queued to live, in order.
pub const STEPS: [&str; 10] = [
    "queued",
    "preparing_tenant",
    "fetching_source",
    "detecting",
    "generating_pipeline",
    "building",
    "pushing",
    "releasing",
    "verifying",
    "live",
];

/// The admin token a server keeps in its data dir.
pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A running platform for one test.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub config: ServerConfig,
    pub api: String,
    pub proxy: SocketAddr,
    pub token: String,
    pub http: reqwest::Client,
}

/// The configuration tests run with: free ports, Debian-made base images,
/// the host's CA bundle, short timeouts.
pub fn test_config(data_dir: &Path) -> ServerConfig {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    ServerConfig {
        runtime: "docker".into(),
        public_url: None,
        data_dir: data_dir.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        proxy_addr: "127.0.0.1:0".parse().unwrap(),
        apps_domain: "localhost".into(),
        edge: Default::default(),
        workers: Some(2),
        base_image_python: env("EASYDEPLOY_BASE_IMAGE_PYTHON", "easydeploy/python:bookworm"),
        base_image_node: env("EASYDEPLOY_BASE_IMAGE_NODE", "easydeploy/node:bookworm"),
        base_image_java: "maven:3-eclipse-temurin-17".into(),
        base_image_php: "php:8.3-cli".into(),
        build_ca_bundle: ca.exists().then(|| ca.to_path_buf()),
        health_timeout: 30,
        drain_timeout: 5,
        replica_memory_mb: 256,
        reconcile_interval: 1,
        scale_in_delay: 60,
        alert_interval: 1,
        admin_email: "admin@localhost".into(),
        quota_apps: 25,
        quota_replicas: 50,
        quota_memory_mib: 25_600,
        sign_in_rate: 1000,
        github_url: "https://github.com".into(),
        github_api_url: "https://api.github.com".into(),
        github_client_id: None,
        github_client_secret: None,
        // The default: tests about metrics shorten it.
        metrics_interval: 10,
        aws: Default::default(),
    }
}

/// Starts a server with the test configuration.
pub async fn spawn_app() -> TestServer {
    spawn_app_with(|_| {}).await
}

/// Starts a server with a tweaked test configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    start(dir, config).await
}

async fn start(dir: tempfile::TempDir, config: ServerConfig) -> TestServer {
    let server = server::start(config.clone()).await.expect("the server starts");
    let token = admin_token(dir.path());
    TestServer {
        api: format!("http://{}", server.api_addr),
        proxy: server.proxy_addr,
        server: Some(server),
        dir,
        config,
        token,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

impl TestServer {
    /// Stops the server (apps keep running) and starts a new one on the same data dir.
    pub async fn restart(self) -> TestServer {
        let TestServer {
            server,
            dir,
            mut config,
            ..
        } = self;
        if let Some(server) = server {
            server.stop().await;
        }
        // Keep the proxy on a fresh port; state and apps come from the data dir.
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.proxy_addr = "127.0.0.1:0".parse().unwrap();
        start(dir, config).await
    }

    /// Calls the API as the administrator; returns the status and the JSON body (Null when empty).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// Calls the API with a token (empty: none).
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}/api/v1{path}", self.api));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Signs up a user with a good password and signs in; returns the token.
    pub async fn sign_up(&self, email: &str) -> String {
        let credentials = serde_json::json!({ "email": email, "password": "correct horse battery staple" });
        let (status, body) = self
            .call_as("", reqwest::Method::POST, "/users", Some(credentials.clone()))
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .call_as("", reqwest::Method::POST, "/tokens", Some(credentials))
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// GET of a path of the server (`/metrics`, `/api/v1/...`) as the administrator.
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// Waits until a deployment is live or ended; returns it with its transitions.
    pub async fn wait_deployment(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let (status, d) = self.get(&format!("/deployments/{id}")).await;
            assert_eq!(status, 200, "{d}");
            let state = d["state"].as_str().unwrap();
            if matches!(state, "live" | "failed" | "cancelled" | "superseded") {
                return d;
            }
            assert!(Instant::now() < deadline, "deployment {id} still {state}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until a deployment reaches `state` (or fails the test after a while).
    pub async fn wait_state(&self, id: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (_, d) = self.get(&format!("/deployments/{id}")).await;
            if d["state"] == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} never reached {wanted}: {d}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET through the edge proxy with `Host: <app>.localhost`.
    pub async fn fetch(&self, app: &str, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.proxy))
            .header("host", format!("{app}.localhost"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Runs the real CLI against this server.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_easydeploy"))
            .args(args)
            .env("EASYDEPLOY_URL", &self.api)
            .env("EASYDEPLOY_TOKEN", &self.token)
            .output()
            .await
            .unwrap();
        CliOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// States a deployment went through, in order.
    pub async fn history(&self, id: &str) -> Vec<String> {
        let (_, d) = self.get(&format!("/deployments/{id}")).await;
        states(&d)
    }

    /// Containers of an app on the engine (any state), by name.
    pub fn containers(&self, app: &str) -> Vec<String> {
        containers_with_label(&format!("easydeploy.app={app}"))
    }
}

/// States a deployment (as the API returns it) went through, in order.
pub fn states(deployment: &Value) -> Vec<String> {
    deployment["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect()
}

/// What the CLI did.
#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Container names with a label, via the docker CLI.
pub fn containers_with_label(label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How many containers of an app run now, via the docker CLI.
pub fn running_containers(app: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=easydeploy.app={app}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A unique app name for this test run.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}", (n as u64) & 0xff_ffff)
}

/// A git repository with one commit on `main` holding `files`.
pub fn git_repo(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init_opts(
        dir.path(),
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    drop(repo);
    commit(dir.path(), files, "first version");
    dir
}

/// Writes `files` and commits them on the current branch; returns the commit id.
pub fn commit(repo_dir: &Path, files: &[(&str, Vec<u8>)], message: &str) -> String {
    let repo = git2::Repository::open(repo_dir).unwrap();
    for (name, body) in files {
        let path = repo_dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        if name == &"busybox" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut index = repo.index().unwrap();
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
        .to_string()
}

/// Files of an app with its own Dockerfile: a static busybox httpd FROM scratch.
pub fn busybox_app(index_html: &str) -> Vec<(&'static str, Vec<u8>)> {
    busybox_app_with(
        index_html,
        r#"CMD ["/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"]"#,
        "",
    )
}

/// Same, with a custom CMD line and extra Dockerfile lines before it.
pub fn busybox_app_with(index_html: &str, cmd: &str, extra: &str) -> Vec<(&'static str, Vec<u8>)> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let dockerfile =
        format!("FROM scratch\nCOPY busybox /busybox\nCOPY www /www\n{extra}EXPOSE 8080\n{cmd}\n");
    vec![
        ("Dockerfile", dockerfile.into_bytes()),
        ("busybox", busybox),
        ("www/index.html", index_html.as_bytes().to_vec()),
    ]
}

/// Path of a repository as the CLI is given it.
pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

/// Steady load through the edge proxy: `concurrency` clients in a loop.
pub struct Load {
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

/// One request's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the request was sent.
    pub at: Instant,
    /// When its answer (or error) was complete.
    pub done: Instant,
    pub result: Result<(u16, String), String>,
}

impl Load {
    /// Stops the clients and returns every outcome, oldest first.
    pub async fn finish(self) -> Vec<Outcome> {
        self.stop.cancel();
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_by_key(|o| o.at);
        all
    }
}

/// Failed requests among outcomes (transport errors and non-2xx).
pub fn failures(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.result {
            Ok((200, _)) => None,
            Ok((status, body)) => Some(format!("{status}: {body}")),
            Err(e) => Some(e.clone()),
        })
        .collect()
}

impl TestServer {
    /// Starts `concurrency` clients requesting `/` of the app, pausing
    /// `pause` between requests.
    pub fn load(&self, app: &str, concurrency: usize, pause: Duration) -> Load {
        let stop = tokio_util::sync::CancellationToken::new();
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, proxy, host) = (stop.clone(), self.proxy, format!("{app}.localhost"));
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while !stop.is_cancelled() {
                        let at = Instant::now();
                        let result = match http
                            .get(format!("http://{proxy}/"))
                            .header("host", &host)
                            .send()
                            .await
                        {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                r.text().await.map(|t| (status, t)).map_err(|e| e.to_string())
                            }
                            Err(e) => Err(format!("{e:?}")),
                        };
                        outcomes.push(Outcome {
                            at,
                            done: Instant::now(),
                            result,
                        });
                        tokio::time::sleep(pause).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, tasks }
    }
}

pub use easydeploy_testkit::free_port;

/// `easydeploy server` as a child process on fresh ports, its output
/// (logs at `RUST_LOG`, default info) appended to `log` when given.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub url: String,
    pub proxy: u16,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, log: Option<&Path>, extra_env: &[(&str, &str)]) -> ServerProcess {
        use std::process::{Command, Stdio};
        let (api, proxy) = (free_port(), free_port());
        let config = test_config(data_dir);
        let output = || match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::null(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_easydeploy"))
            .arg("server")
            .env("EASYDEPLOY_DATA_DIR", data_dir)
            .env("EASYDEPLOY_API_ADDR", format!("127.0.0.1:{api}"))
            .env("EASYDEPLOY_PROXY_ADDR", format!("127.0.0.1:{proxy}"))
            .env("EASYDEPLOY_WORKERS", "1")
            .env("EASYDEPLOY_BASE_IMAGE_PYTHON", &config.base_image_python)
            .env("EASYDEPLOY_BASE_IMAGE_NODE", &config.base_image_node)
            .envs(extra_env.iter().copied())
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{api}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::blocking::get(format!("{url}/healthz"))
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited ({status}) before answering");
            }
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        ServerProcess { child, url, proxy }
    }

    /// Stops it with SIGTERM and waits.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
