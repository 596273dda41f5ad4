//! End to end on AWS (moto): `easydeploy aws bootstrap`, then the real
//! `easydeploy server --runtime aws` (Engine + Store + AWS adapters) deploys a
//! git repository; every resource is asserted with the SDK through redeploy,
//! env change, scale and destroy. moto's CodeBuild runs nothing: builds are
//! simulated at the adapter boundary (`EASYDEPLOY_AWS_SIMULATED_BUILDS`),
//! which puts the image the buildspec would push in ECR.

mod support;

use aws_sdk_applicationautoscaling::types::ServiceNamespace;
use easydeploy::aws::INFRASTRUCTURE_FILE;
use easydeploy_aws::{AwsClients, AwsConfig, Infrastructure};
use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{commit, free_port, git_repo, states, STEPS};

const MOTO: &str = "/opt/easydeploy-moto/bin/moto_server";

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// moto with every ECS service reporting 5 running tasks (rollouts complete).
fn start_moto() -> (Process, String) {
    assert!(
        Path::new(MOTO).exists(),
        "{MOTO} is missing: run scripts/setup.sh (it installs moto[server] in /opt/easydeploy-moto)"
    );
    let port = free_port();
    let child = Command::new(MOTO)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .env("MOTO_ECS_SERVICE_RUNNING", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start moto_server");
    let process = Process(child);
    wait_port(port, "moto");
    (process, format!("http://127.0.0.1:{port}"))
}

/// The `easydeploy` binary with the AWS environment pointed at moto.
fn easydeploy(endpoint: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_easydeploy"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EASYDEPLOY_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("EASYDEPLOY_DATA_DIR", data_dir)
        .env("EASYDEPLOY_APPS_DOMAIN", "apps.example.com");
    command
}

struct Api {
    url: String,
    token: String,
    http: reqwest::Client,
    bin_env: Vec<(String, String)>,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Runs the CLI against the server; panics with its output when it fails.
    async fn cli(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_easydeploy"))
            .args(args)
            .envs(self.bin_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert!(
            output.status.success(),
            "easydeploy {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// The app's latest deployment, once it ended; it must be live.
    async fn latest_live(&self, app: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let list = self.get(&format!("/apps/{app}/deployments?limit=1")).await;
            let id = list[0]["id"].as_str().unwrap().to_owned();
            let d = self.get(&format!("/deployments/{id}")).await;
            match d["state"].as_str().unwrap() {
                "live" => return d,
                "failed" | "cancelled" => panic!("deployment {id} ended {}: {d}", d["state"]),
                state => assert!(Instant::now() < deadline, "deployment {id} still {state}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn app_files(html: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "Dockerfile",
            b"FROM scratch\nCOPY www /www\nEXPOSE 8080\nCMD [\"/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\"]\n".to_vec(),
        ),
        ("www/index.html", html.as_bytes().to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_deploys_to_aws_through_the_engine() {
    let (_moto, endpoint) = start_moto();
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("ed{}", &uuid_like()[..8]);

    // Bootstrap with the real CLI.
    let out = easydeploy(&endpoint, data.path())
        .args(["aws", "bootstrap", "--prefix", &prefix, "--no-nat-gateway"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let infra = Infrastructure::load(&data.path().join(INFRASTRUCTURE_FILE)).unwrap();
    assert_eq!(infra.prefix, prefix);

    // The real server, on AWS.
    let (api_port, proxy_port) = (free_port(), free_port());
    let log = std::fs::File::create(data.path().join("server.log")).unwrap();
    let server = easydeploy(&endpoint, data.path())
        .args([
            "server",
            "--runtime",
            "aws",
            "--api-addr",
            &format!("127.0.0.1:{api_port}"),
            "--proxy-addr",
            &format!("127.0.0.1:{proxy_port}"),
            "--reconcile-interval",
            "1",
        ])
        .env("EASYDEPLOY_AWS_SIMULATED_BUILDS", "SUCCEEDED")
        .env("EASYDEPLOY_AWS_SECRET_KEY", "07".repeat(32))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _server = Process(server);
    wait_port(api_port, "the server");
    let token = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let url = format!("http://127.0.0.1:{api_port}");
    let api = Api {
        bin_env: vec![
            ("EASYDEPLOY_URL".into(), url.clone()),
            ("EASYDEPLOY_TOKEN".into(), token.clone()),
        ],
        url,
        token,
        http: reqwest::Client::new(),
    };
    let clients = AwsClients::connect(&AwsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.clone()),
        credentials: Some(("testing".into(), "testing".into())),
        ..AwsConfig::default()
    })
    .await;

    // Deploy a git repository with the CLI.
    let repo = git_repo(&app_files("one"));
    let path = repo.path().to_str().unwrap().to_owned();
    api.cli(&[
        "deploy",
        &path,
        "--name",
        "shop",
        "--env",
        "GREETING=hi",
        "--replicas",
        "2",
    ])
    .await;
    let first = api.latest_live("shop").await;
    assert_eq!(states(&first), STEPS);
    let commit1 = first["commit"].as_str().unwrap().to_owned();
    let image1 = first["image"].as_str().unwrap().to_owned();
    let repo_name = format!("{prefix}-shop");
    assert!(image1.contains(&format!("/{repo_name}:")), "{image1}");

    // The tenant: IAM user with its scoped policy and an access key.
    let user = format!("{prefix}-tenant-default");
    let policy = clients
        .iam
        .get_user_policy()
        .user_name(&user)
        .policy_name("easydeploy-tenant")
        .send()
        .await
        .unwrap();
    assert!(policy.policy_document().contains("ResourceTag"));
    let keys = clients
        .iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.access_key_metadata().len(), 1);

    // The sources, filed under the app's tenant and the commit.
    let key1 = format!("sources/default/shop/{commit1}.zip");
    let source = clients
        .s3
        .get_object()
        .bucket(&infra.bucket)
        .key(&key1)
        .send()
        .await
        .unwrap();
    let zip = source.body.collect().await.unwrap().into_bytes();
    let zip = zip_names(&zip);
    for name in ["Dockerfile", "www/index.html", "buildspec.yml"] {
        assert!(zip.iter().any(|n| n == name), "{name} in {zip:?}");
    }

    // The ECR repository with the (simulated) pushed image, the CodeBuild project and one build.
    let tag1 = image1.rsplit_once(':').unwrap().1;
    let images = clients
        .ecr
        .describe_images()
        .repository_name(&repo_name)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(images.image_details()[0]
        .image_digest()
        .unwrap()
        .starts_with("sha256:"));
    let projects = clients
        .codebuild
        .batch_get_projects()
        .names(&repo_name)
        .send()
        .await
        .unwrap();
    assert_eq!(projects.projects()[0].source().unwrap().r#type().as_str(), "S3");
    let builds = |clients: AwsClients, project: String| async move {
        clients
            .codebuild
            .list_builds_for_project()
            .project_name(project)
            .send()
            .await
            .unwrap()
            .ids()
            .len()
    };
    assert_eq!(builds(clients.clone(), repo_name.clone()).await, 1);

    // The task definition, the service, the target group, the listener rule, the scalable target.
    let service = describe_service(&clients, &infra).await.expect("the service");
    assert_eq!(service.desired_count(), 2);
    let td1 = service.task_definition().unwrap().to_owned();
    assert!(td1.ends_with(&format!("task-definition/{repo_name}:1")), "{td1}");
    assert_eq!(
        container_env(&clients, &td1).await,
        [("PORT".into(), "8080".into()), ("GREETING".into(), "hi".into())]
    );
    let target_group = clients
        .elb
        .describe_target_groups()
        .names(&repo_name)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_owned();
    assert_eq!(
        service.load_balancers()[0].target_group_arn(),
        Some(target_group.as_str())
    );
    let rules = clients
        .elb
        .describe_rules()
        .listener_arn(&infra.listener_arn)
        .send()
        .await
        .unwrap();
    let rule = rules
        .rules()
        .iter()
        .find(|r| {
            r.conditions().iter().any(|c| {
                c.field() == Some("host-header")
                    && (c.values().iter().any(|v| v == "shop.apps.example.com")
                        || c.host_header_config()
                            .is_some_and(|h| h.values().iter().any(|v| v == "shop.apps.example.com")))
            })
        })
        .expect("a host-header rule for shop.apps.example.com");
    assert_eq!(rule.actions()[0].target_group_arn(), Some(target_group.as_str()));
    assert_eq!(scalable_target(&clients, &infra).await, Some((2, 8)));

    // Redeploy a new commit: a new build and a new task definition revision.
    commit(repo.path(), &[("www/index.html", b"two".to_vec())], "second");
    api.cli(&["deploy", &path, "--name", "shop"]).await;
    let second = api.latest_live("shop").await;
    assert_eq!(states(&second), STEPS);
    let commit2 = second["commit"].as_str().unwrap().to_owned();
    assert_ne!(commit2, commit1);
    clients
        .s3
        .head_object()
        .bucket(&infra.bucket)
        .key(format!("sources/default/shop/{commit2}.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(builds(clients.clone(), repo_name.clone()).await, 2);
    let service = describe_service(&clients, &infra).await.unwrap();
    let td2 = service.task_definition().unwrap().to_owned();
    assert!(td2.ends_with(&format!("{repo_name}:2")), "{td2}");
    let image2 = second["image"].as_str().unwrap().to_owned();
    assert_ne!(image2, image1);

    // An env change: a new revision of the same image, no CodeBuild build.
    api.cli(&["env", "set", "shop", "GREETING=hello"]).await;
    let third = api.latest_live("shop").await;
    assert_ne!(third["id"], second["id"]);
    assert_eq!(third["image"].as_str(), Some(image2.as_str()));
    assert_eq!(
        builds(clients.clone(), repo_name.clone()).await,
        2,
        "no new build"
    );
    let service = describe_service(&clients, &infra).await.unwrap();
    let td3 = service.task_definition().unwrap().to_owned();
    assert!(td3.ends_with(&format!("{repo_name}:3")), "{td3}");
    assert_eq!(
        container_env(&clients, &td3).await,
        [
            ("PORT".into(), "8080".into()),
            ("GREETING".into(), "hello".into())
        ]
    );

    // Scale: the desired count and the scalable target follow.
    api.cli(&["scale", "shop", "--replicas", "3"]).await;
    let service = describe_service(&clients, &infra).await.unwrap();
    assert_eq!(service.desired_count(), 3);
    assert_eq!(service.task_definition(), Some(td3.as_str()), "same release");
    assert_eq!(scalable_target(&clients, &infra).await, Some((3, 12)));

    // Application Auto Scaling scales out (done here by hand: moto runs no
    // scaling): the reconciler, which runs every second, keeps a count
    // within the bounds and brings one beyond them back to the nearest end.
    let set_desired = |count: i32| {
        let clients = clients.clone();
        let cluster = infra.cluster_name.clone();
        async move {
            clients
                .ecs
                .update_service()
                .cluster(cluster)
                .service("shop")
                .desired_count(count)
                .send()
                .await
                .unwrap();
        }
    };
    let newest = api.get("/apps/shop/events").await[0]["at"]
        .as_str()
        .unwrap()
        .to_owned();
    set_desired(7).await;
    // Two passes after the change (moto runs no tasks, so each pass repairs
    // and says so): the reconciler saw the new count.
    wait_for_events_after(&api, &newest, "of 3-12 wanted", 2).await;
    assert_eq!(
        describe_service(&clients, &infra).await.unwrap().desired_count(),
        7
    );
    // A new release keeps the scaled-out count too.
    api.cli(&["env", "set", "shop", "GREETING=scaled"]).await;
    let fourth = api.latest_live("shop").await;
    assert_ne!(fourth["id"], third["id"]);
    assert_eq!(
        describe_service(&clients, &infra).await.unwrap().desired_count(),
        7
    );
    set_desired(20).await;
    let (mut desired, started) = (20, Instant::now());
    while started.elapsed() < Duration::from_secs(60) {
        desired = describe_service(&clients, &infra).await.unwrap().desired_count();
        if desired != 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(desired, 12, "beyond the maximum: back to it");

    // The app's own autoscaling policy gives the bounds and the request
    // target (per second → the ALB's per minute); the engine's autoscaler
    // leaves the app to Application Auto Scaling.
    api.cli(&[
        "autoscale",
        "shop",
        "--min",
        "2",
        "--max",
        "5",
        "--target-rps",
        "50",
    ])
    .await;
    assert_eq!(scalable_target(&clients, &infra).await, Some((2, 5)));
    assert_eq!(
        describe_service(&clients, &infra).await.unwrap().desired_count(),
        5
    );
    let policies = clients
        .autoscaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(format!("service/{}/shop", infra.cluster_name))
        .send()
        .await
        .unwrap();
    let requests = policies
        .scaling_policies()
        .iter()
        .find(|p| p.policy_name() == "shop-requests")
        .and_then(|p| p.target_tracking_scaling_policy_configuration())
        .map(|c| c.target_value());
    assert_eq!(requests, Some(3000.0));

    // Destroy: nothing of the app is left.
    api.cli(&["destroy", "shop"]).await;
    assert!(
        describe_service(&clients, &infra).await.is_none(),
        "the service is gone"
    );
    let found = clients
        .elb
        .describe_target_groups()
        .names(&repo_name)
        .send()
        .await;
    assert!(found.is_err(), "the target group is gone: {found:?}");
    let rules = clients
        .elb
        .describe_rules()
        .listener_arn(&infra.listener_arn)
        .send()
        .await
        .unwrap();
    assert!(
        rules.rules().iter().all(|r| r.is_default().unwrap_or(false)),
        "{rules:?}"
    );
    assert_eq!(scalable_target(&clients, &infra).await, None);
    assert!(clients
        .ecr
        .describe_repositories()
        .repository_names(&repo_name)
        .send()
        .await
        .is_err());
    let projects = clients
        .codebuild
        .batch_get_projects()
        .names(&repo_name)
        .send()
        .await
        .unwrap();
    assert!(projects.projects().is_empty());
    let active = clients
        .ecs
        .list_task_definitions()
        .family_prefix(&repo_name)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(active.task_definition_arns().is_empty(), "{active:?}");
    let sources = clients
        .s3
        .list_objects_v2()
        .bucket(&infra.bucket)
        .prefix("sources/default/shop/")
        .send()
        .await
        .unwrap();
    assert_eq!(sources.key_count(), Some(0));
    let users = clients.iam.get_user().user_name(&user).send().await;
    assert!(users.is_err(), "the tenant had no other app: its user is gone");
}

/// Waits until `count` of the app's events newer than `after` (an event's
/// `at`) contain `text`.
async fn wait_for_events_after(api: &Api, after: &str, text: &str, count: usize) {
    // Passes run every second; a loaded machine's moto answers slowly.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let events = api.get("/apps/shop/events").await;
        let found = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["at"].as_str().unwrap() > after && e["message"].as_str().unwrap().contains(text))
            .count();
        if found >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {count} events after {after} say {text:?}");
}

fn uuid_like() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:016x}", (n as u64) ^ u64::from(std::process::id()))
}

fn zip_names(bytes: &[u8]) -> Vec<String> {
    // Central directory file headers: signature 0x02014b50, name length at +28, name at +46.
    let mut names = Vec::new();
    let mut i = 0;
    while i + 46 <= bytes.len() {
        if bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let len = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            let extra = u16::from_le_bytes([bytes[i + 30], bytes[i + 31]]) as usize;
            let comment = u16::from_le_bytes([bytes[i + 32], bytes[i + 33]]) as usize;
            if let Some(name) = bytes.get(i + 46..i + 46 + len) {
                names.push(String::from_utf8_lossy(name).into_owned());
            }
            i += 46 + len + extra + comment;
        } else {
            i += 1;
        }
    }
    names
}

async fn describe_service(
    clients: &AwsClients,
    infra: &Infrastructure,
) -> Option<aws_sdk_ecs::types::Service> {
    let out = clients
        .ecs
        .describe_services()
        .cluster(&infra.cluster_name)
        .services("shop")
        .send()
        .await
        .unwrap();
    out.services()
        .iter()
        .find(|s| s.status() == Some("ACTIVE"))
        .cloned()
}

async fn container_env(clients: &AwsClients, task_definition: &str) -> Vec<(String, String)> {
    let out = clients
        .ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .unwrap();
    out.task_definition().unwrap().container_definitions()[0]
        .environment()
        .iter()
        .map(|kv| (kv.name().unwrap().to_owned(), kv.value().unwrap().to_owned()))
        .collect()
}

/// Min and max capacity of the service's scalable target.
async fn scalable_target(clients: &AwsClients, infra: &Infrastructure) -> Option<(i32, i32)> {
    let out = clients
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(format!("service/{}/shop", infra.cluster_name))
        .send()
        .await
        .unwrap();
    out.scalable_targets()
        .first()
        .map(|t| (t.min_capacity(), t.max_capacity()))
}
