//! Shared helpers of the AWS tests: a moto server per test, clients pointed
//! at it, injected build and rollout outcomes, and injected AWS errors.
#![allow(dead_code)]

use async_trait::async_trait;
use aws_sdk_s3::config::SharedInterceptor;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use easydeploy_aws::{
    bootstrap, AwsClients, AwsConfig, BootstrapOptions, BuildOutcome, BuildStatus, BuildWatcher,
    Infrastructure, RolloutWatcher, StartedBuild,
};
use easydeploy_core::ports::{BackendError, BackendResult};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MOTO: &str = "/opt/easydeploy-moto/bin/moto_server";

/// A moto server on a free port, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto (every ECS service reports 2 running tasks) and waits until it answers.
    pub fn start() -> Self {
        assert!(
            Path::new(MOTO).exists(),
            "{MOTO} is missing: run scripts/setup.sh (it installs moto[server] in /opt/easydeploy-moto)"
        );
        let port = easydeploy_testkit::free_port();
        let mut child = Command::new(MOTO)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("MOTO_ECS_SERVICE_RUNNING", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start moto_server");
        easydeploy_testkit::wait_listening(&mut child, port, Duration::from_secs(60), "moto_server");
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Configuration pointing at this server, with dummy credentials.
    pub fn config(&self) -> AwsConfig {
        AwsConfig {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some(("testing".into(), "testing".into())),
            apps_domain: "apps.example.com".into(),
            max_attempts: 2,
            poll_interval: Duration::from_millis(50),
            ..AwsConfig::default()
        }
    }

    /// Clients on this server.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::connect(&self.config()).await
    }

    /// Clients on this server whose calls of `operation` (e.g. `CreateService`)
    /// are answered with the AWS error `code` instead.
    pub async fn failing_clients(
        &self,
        operation: &str,
        status: u16,
        code: &str,
        message: &str,
    ) -> AwsClients {
        let fault = Fault {
            operation: operation.to_owned(),
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            hits: Arc::new(Mutex::new(0)),
        };
        AwsClients::connect_with(&self.config(), &[SharedInterceptor::new(fault)]).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers one JSON-protocol operation with an AWS error.
#[derive(Debug, Clone)]
struct Fault {
    operation: String,
    status: u16,
    code: String,
    message: String,
    hits: Arc<Mutex<u32>>,
}

impl Intercept for Fault {
    fn name(&self) -> &'static str {
        "Fault"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_name(cfg);
        if operation != self.operation {
            return Ok(());
        }
        *self.hits.lock().unwrap() += 1;
        let body = serde_json::json!({"__type": self.code, "message": self.message}).to_string();
        let mut response =
            aws_smithy_runtime_api::http::Response::new(self.status.try_into().unwrap(), SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        response
            .headers_mut()
            .insert("x-amzn-errortype", self.code.clone());
        *context.response_mut() = response;
        Ok(())
    }
}

/// The name of the operation a call makes (e.g. `CreateProject`).
fn operation_name(cfg: &ConfigBag) -> String {
    cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

/// Status, reason, repository and tag of the next build.
pub type NextBuild = (BuildStatus, Option<String>, String, String);

/// Build outcomes decided by the test: on success it puts a (fake) image in
/// ECR as CodeBuild's buildspec would.
pub struct InjectedBuilds {
    pub ecr: aws_sdk_ecr::Client,
    /// The next build's outcome and the (repository, tag) it pushes.
    pub next: Mutex<Option<NextBuild>>,
}

impl InjectedBuilds {
    pub fn new(clients: &AwsClients) -> Arc<Self> {
        Arc::new(Self {
            ecr: clients.ecr.clone(),
            next: Mutex::new(None),
        })
    }

    /// The next build ends with `status` (and pushes `reference` on success).
    pub fn expect(&self, status: BuildStatus, reason: Option<&str>, reference: &str) {
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        let repo = repo.split_once('/').unwrap().1;
        *self.next.lock().unwrap() =
            Some((status, reason.map(str::to_owned), repo.to_owned(), tag.to_owned()));
    }
}

#[async_trait]
impl BuildWatcher for InjectedBuilds {
    async fn wait(&self, build: &StartedBuild, _timeout: Duration) -> BackendResult<BuildOutcome> {
        let build_id = &build.id;
        let (status, reason, repo, tag) = self
            .next
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| BackendError::permanent(format!("the test expected no build ({build_id})")))?;
        if status == BuildStatus::Succeeded {
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                           "digest": format!("sha256:{:0>64}", tag.len())},
                "layers": []
            });
            self.ecr
                .put_image()
                .repository_name(repo)
                .image_tag(tag)
                .image_manifest(manifest.to_string())
                .send()
                .await
                .map_err(|e| easydeploy_aws::aws_error("put the fake image", e))?;
        }
        Ok(BuildOutcome {
            status,
            reason,
            log_group: None,
            log_stream: None,
        })
    }
}

/// A rollout that fails with a reason.
pub struct FailingRollout(pub &'static str);

#[async_trait]
impl RolloutWatcher for FailingRollout {
    async fn wait(&self, _: &str, service: &str, _: &str, _: Duration) -> BackendResult<()> {
        Err(BackendError::permanent(format!(
            "the release of {service} failed its health checks: {}",
            self.0
        ))
        .with_code("rollout_failed"))
    }
}

/// Collects log lines.
#[derive(Default)]
pub struct Lines(pub Mutex<Vec<String>>);

impl easydeploy_core::ports::LogSink for Lines {
    fn line(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

/// Shared infrastructure bootstrapped in moto under a fresh prefix (no NAT
/// gateway), its apps at `APP.<apps_domain>`.
pub async fn infrastructure(clients: &AwsClients, apps_domain: &str) -> Infrastructure {
    bootstrap(
        clients,
        &BootstrapOptions {
            prefix: unique("ed"),
            apps_domain: apps_domain.to_owned(),
            nat_gateway: false,
            ..BootstrapOptions::default()
        },
    )
    .await
    .unwrap()
}

/// A unique lowercase name for a test's resources.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The cluster's ECS services named `shop`, inactive ones included.
pub async fn shop_services(clients: &AwsClients, infra: &Infrastructure) -> Vec<aws_sdk_ecs::types::Service> {
    let described = clients
        .ecs
        .describe_services()
        .cluster(&infra.cluster_name)
        .services("shop")
        .send()
        .await
        .unwrap();
    described.services.unwrap_or_default()
}

/// The rules of the load balancer's listener, its default rule included.
pub async fn listener_rules(
    clients: &AwsClients,
    infra: &Infrastructure,
) -> Vec<aws_sdk_elasticloadbalancingv2::types::Rule> {
    let described = clients
        .elb
        .describe_rules()
        .listener_arn(&infra.listener_arn)
        .send()
        .await
        .unwrap();
    described.rules.unwrap_or_default()
}

/// The CodeBuild projects named `name`: none once it is deleted.
pub async fn projects(clients: &AwsClients, name: &str) -> Vec<aws_sdk_codebuild::types::Project> {
    let found = clients
        .codebuild
        .batch_get_projects()
        .names(name)
        .send()
        .await
        .unwrap();
    found.projects.unwrap_or_default()
}

/// Records the JSON bodies of the calls it sees, by operation, and gives
/// NO_SOURCE CodeBuild projects the source location moto insists on (AWS
/// takes none).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Recorder {
    /// Bodies of the calls of `operation`, oldest first.
    pub fn bodies(&self, operation: &str) -> Vec<serde_json::Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_name(cfg);
        let request = context.request_mut();
        let Some(mut body) = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        else {
            return Ok(());
        };
        self.calls.lock().unwrap().push((operation.clone(), body.clone()));
        if operation == "CreateProject"
            && body["source"]["type"] == "NO_SOURCE"
            && body["source"].get("location").is_none()
        {
            body["source"]["location"] = serde_json::json!("moto-needs-a-location");
            let bytes = body.to_string().into_bytes();
            request
                .headers_mut()
                .insert("content-length", bytes.len().to_string());
            *request.body_mut() = SdkBody::from(bytes);
        }
        Ok(())
    }
}

impl Moto {
    /// Clients on this server whose JSON calls `recorder` sees.
    pub async fn recording_clients(&self, config: &AwsConfig, recorder: &Recorder) -> AwsClients {
        AwsClients::connect_with(config, &[SharedInterceptor::new(recorder.clone())]).await
    }
}
