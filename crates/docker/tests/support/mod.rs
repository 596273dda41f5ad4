//! Helpers shared by the engine tests: a recording traffic switch, busybox
//! images built from scratch, releases and a tiny HTTP client.
#![allow(dead_code)]

use bollard::Docker;
use easydeploy_core::ports::{
    BackendResult, BuildRequest, BuiltImage, HealthCheck, ImageBuilder, Limits, LogSink, ReleaseSpec, Tenant,
    TrafficSwitch, Upstream,
};
use easydeploy_core::{AppName, EnvVar, PipelineFiles, Port};
use easydeploy_docker::DockerBuilder;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Tenant every test app belongs to (one network, reused across runs).
pub const TENANT: &str = "edtest";

/// Serializes `remove_orphans` (which sees every container) with the rest.
pub static ENGINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn docker() -> Docker {
    easydeploy_docker::connect()
        .await
        .expect("the Docker engine is reachable")
}

/// A unique app name.
pub fn app_name(prefix: &str) -> AppName {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    AppName::parse(&format!("{prefix}-{}", &suffix[..8])).unwrap()
}

/// A unique deployment id.
pub fn deployment() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Records what the runtime routes.
#[derive(Default)]
pub struct Traffic {
    pub routes: Mutex<HashMap<String, Vec<Upstream>>>,
}

impl Traffic {
    pub fn backends(&self, app: &AppName) -> Option<Vec<SocketAddr>> {
        let upstreams = self.upstreams(app)?;
        Some(upstreams.into_iter().map(|u| u.addr).collect())
    }

    pub fn upstreams(&self, app: &AppName) -> Option<Vec<Upstream>> {
        self.routes.lock().unwrap().get(app.as_str()).cloned()
    }
}

impl TrafficSwitch for Traffic {
    fn set_upstreams(&self, app: &str, upstreams: Vec<Upstream>) {
        self.routes.lock().unwrap().insert(app.to_owned(), upstreams);
    }
    fn remove(&self, app: &str) {
        self.routes.lock().unwrap().remove(app);
    }
    fn in_flight(&self, _backend: SocketAddr) -> usize {
        0
    }
    fn is_healthy(&self, backend: SocketAddr) -> bool {
        let routes = self.routes.lock().unwrap();
        routes.values().flatten().any(|u| u.addr == backend)
    }
}

/// Collects log lines.
#[derive(Default)]
pub struct Lines(pub Mutex<Vec<String>>);

impl LogSink for Lines {
    fn line(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

impl Lines {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// The page the test images serve.
pub const INDEX: &str = "<h1>hello from easydeploy</h1>\n";

/// The busybox httpd command line, JSON-encoded for a Dockerfile `CMD`.
pub const HTTPD: &str = r#"["/busybox","httpd","-f","-p","8080","-h","/www"]"#;

/// A build context with `busybox`, `www/index.html` and the given Dockerfile.
pub fn busybox_context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
    write(dir.path(), "www/index.html", INDEX);
    write(dir.path(), "Dockerfile", dockerfile);
    dir
}

pub fn write(root: &Path, path: &str, body: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// A Dockerfile serving `/www` with busybox, running `cmd` (a JSON array).
pub fn scratch_dockerfile(cmd: &str) -> String {
    format!("FROM scratch\nCOPY busybox /busybox\nCOPY www /www\nCMD {cmd}\n")
}

/// The repository's own Dockerfile, as pipeline files.
pub fn own_pipeline(dockerfile: &str) -> PipelineFiles {
    PipelineFiles {
        own_dockerfile: true,
        dockerfile: dockerfile.to_owned(),
        dockerignore: String::new(),
        buildspec: String::new(),
        extra_files: vec![],
        port: Port::new(8080),
    }
}

pub fn build_request(app: &AppName, context: &Path, pipeline: PipelineFiles) -> BuildRequest {
    let deployment = deployment();
    BuildRequest {
        tenant: Tenant { id: "default".into() },
        app: app.clone(),
        commit: deployment.clone(),
        tag: format!("easydeploy/{app}:{}", &deployment[..8]),
        deployment,
        context_dir: context.to_path_buf(),
        pipeline,
    }
}

/// Builds a busybox image for `app` whose command is `cmd`.
pub async fn build_image(docker: &Docker, app: &AppName, cmd: &str) -> BackendResult<BuiltImage> {
    let dockerfile = scratch_dockerfile(cmd);
    let context = busybox_context(&dockerfile);
    let request = build_request(app, context.path(), own_pipeline(&dockerfile));
    DockerBuilder::new(docker.clone())
        .build(&request, &Lines::default())
        .await
}

/// A release of `image` with a quick health check.
pub fn release(app: &AppName, deployment: &str, image: &str, replicas: u32) -> ReleaseSpec {
    ReleaseSpec {
        tenant: Tenant { id: TENANT.into() },
        app: app.clone(),
        deployment: deployment.to_owned(),
        image: image.to_owned(),
        port: Port::new(8080),
        env: vec![EnvVar::new("GREETING", "hi").unwrap()],
        replicas,
        autoscale: None,
        health: HealthCheck {
            path: "/".into(),
            grace: Duration::from_secs(20),
            timeout: Duration::from_secs(2),
            interval: Duration::from_millis(100),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
        },
        limits: Limits {
            memory_bytes: 64 * 1024 * 1024,
            millicpus: 500,
        },
    }
}

/// `GET path` over HTTP/1.0: the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("no answer in time")
        .unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Removes whatever a test left of its app, even when it panicked.
pub struct Cleanup(pub AppName);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=easydeploy.app={}", self.0);
        let script = format!(
            // One container at a time: see `network_change` in src/engine.rs;
            // images without their parents, another test's build cache.
            "docker ps -aq --filter {label} | xargs -r -n1 docker rm -f >/dev/null 2>&1; \
             docker images -q --filter {label} | sort -u | xargs -r docker rmi -f --no-prune >/dev/null 2>&1; true"
        );
        let _ = std::process::Command::new("sh").arg("-c").arg(script).status();
    }
}
