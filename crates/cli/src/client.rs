//! Client commands: they talk only to the server's `/api/v1` API.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// A connection to the API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    url: String,
    token: Option<String>,
}

/// Where the API is and how to authenticate: `EASYDEPLOY_TOKEN`, else the
/// token saved by `easydeploy login`, else `<EASYDEPLOY_DATA_DIR or .easydeploy>/admin.token`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientConfig {
    /// URL of the Easy Deploy API.
    #[arg(
        long,
        env = "EASYDEPLOY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API token (default: the one saved by `easydeploy login`, else the admin token in the data dir).
    #[arg(long, env = "EASYDEPLOY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Data dir holding admin.token when no token is given.
    #[arg(
        long = "client-data-dir",
        env = "EASYDEPLOY_DATA_DIR",
        default_value = ".easydeploy",
        global = true,
        hide = true
    )]
    pub data_dir: PathBuf,
}

impl Client {
    /// Connects with the given settings.
    pub fn new(config: &ClientConfig) -> anyhow::Result<Self> {
        let url = config.url.trim_end_matches('/').to_owned();
        let token = match &config.token {
            Some(token) => Some(token.trim().to_owned()),
            None => crate::account::saved_token(&url).or_else(|| {
                std::fs::read_to_string(config.data_dir.join("admin.token"))
                    .ok()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
            }),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            base: format!("{url}/api/v1"),
            url,
            token,
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the Easy Deploy server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the server refused the request");
        let code = body["error"]["code"].as_str().unwrap_or("error");
        Err(ApiFailure {
            status: status.as_u16(),
            code: code.to_owned(),
            message: message.to_owned(),
        }
        .into())
    }

    pub(crate) async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let response = self.send(method, path, body).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(response.json().await?)
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json(reqwest::Method::GET, path, None).await
    }
}

/// An error answer from the API.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: String,
    /// Message.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}
impl std::error::Error for ApiFailure {}

/// `easydeploy deploy` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// Git URL (https, ssh, git, file) or path to a local git repository.
    #[arg(required_unless_present = "github", conflicts_with = "github")]
    pub source: Option<String>,
    /// A GitHub repository `OWNER/REPO` of your GitHub account (after signing
    /// in with GitHub): cloned with your token, deployed on every push, with
    /// commit statuses.
    #[arg(long)]
    pub github: Option<String>,
    /// App name (a DNS label: lowercase letters, digits, hyphens).
    #[arg(long)]
    pub name: String,
    /// Branch to deploy.
    #[arg(long)]
    pub branch: Option<String>,
    /// Folder of the app inside the repository.
    #[arg(long)]
    pub root: Option<String>,
    /// Framework instead of detection (see `easydeploy frameworks`).
    #[arg(long)]
    pub framework: Option<String>,
    /// Port the app listens on.
    #[arg(long)]
    pub port: Option<i64>,
    /// Environment variable NAME=value (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Command run at build time.
    #[arg(long)]
    pub build_command: Option<String>,
    /// Command that starts the app.
    #[arg(long)]
    pub run_command: Option<String>,
    /// Number of replicas.
    #[arg(long)]
    pub replicas: Option<i64>,
    /// Path of the HTTP health check.
    #[arg(long)]
    pub health_path: Option<String>,
    /// Seconds a new replica may take to pass its first health check.
    #[arg(long)]
    pub health_grace: Option<i64>,
    /// Milliseconds between health checks.
    #[arg(long)]
    pub health_interval_ms: Option<i64>,
    /// Milliseconds one health check may take.
    #[arg(long)]
    pub health_timeout_ms: Option<i64>,
    /// Consecutive passing checks before a new replica takes traffic.
    #[arg(long)]
    pub healthy_threshold: Option<i64>,
    /// Consecutive failing checks before a live replica is replaced.
    #[arg(long)]
    pub unhealthy_threshold: Option<i64>,
    /// Show the build log as it happens.
    #[arg(long, short = 'v')]
    pub build_log: bool,
    /// Team that owns a new app (default: your own account).
    #[arg(long)]
    pub team: Option<String>,
}

/// Local paths become absolute paths; URLs pass through.
fn source_argument(raw: &str) -> anyhow::Result<String> {
    let is_url = raw.contains("://")
        || (raw.contains('@') && raw.contains(':') && !raw.starts_with('/') && !raw.starts_with('.'));
    if is_url {
        return Ok(raw.to_owned());
    }
    let path = std::fs::canonicalize(raw)
        .with_context(|| format!("the source '{raw}' is neither a git URL nor an existing folder"))?;
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the path {} is not UTF-8", path.display()))
}

/// Deploys and follows the deployment until it is live or failed.
pub async fn deploy(client: &Client, args: DeployArgs) -> anyhow::Result<()> {
    let mut settings = match &args.source {
        Some(source) => json!({ "source": source_argument(source)? }),
        None => json!({}),
    };
    let fields = [
        ("branch", args.branch.map(Value::from)),
        ("root", args.root.map(Value::from)),
        ("framework", args.framework.map(Value::from)),
        ("port", args.port.map(Value::from)),
        ("build_command", args.build_command.map(Value::from)),
        ("run_command", args.run_command.map(Value::from)),
        ("replicas", args.replicas.map(Value::from)),
        ("health_path", args.health_path.map(Value::from)),
        ("health_grace_secs", args.health_grace.map(Value::from)),
        ("health_interval_ms", args.health_interval_ms.map(Value::from)),
        ("health_timeout_ms", args.health_timeout_ms.map(Value::from)),
        ("healthy_threshold", args.healthy_threshold.map(Value::from)),
        ("unhealthy_threshold", args.unhealthy_threshold.map(Value::from)),
        (
            "env",
            (!args.env.is_empty()).then(|| Value::from(args.env.clone())),
        ),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            settings[key] = value;
        }
    }
    let app_path = format!("/apps/{}", urlencode(&args.name));
    let exists = match client.get(&app_path).await {
        Ok(_) => true,
        Err(e) if e.downcast_ref::<ApiFailure>().is_some_and(|f| f.status == 404) => false,
        Err(e) => return Err(e),
    };
    let body = if exists {
        settings
    } else {
        let mut create = settings.clone();
        create["name"] = Value::from(args.name.clone());
        if let Some(repo) = &args.github {
            create["github"] = Value::from(repo.clone());
        }
        if let Some(team) = &args.team {
            create["team"] = Value::from(team.clone());
        }
        client.json(reqwest::Method::POST, "/apps", Some(create)).await?;
        json!({})
    };
    let deployment = client
        .json(
            reqwest::Method::POST,
            &format!("{app_path}/deployments"),
            Some(body),
        )
        .await?;
    let id = deployment["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server answered without a deployment id"))?
        .to_owned();
    follow_deployment(client, &id, args.build_log).await
}

/// Prints each step as it completes; returns an error naming the failed step.
pub async fn follow_deployment(client: &Client, id: &str, build_log: bool) -> anyhow::Result<()> {
    let interactive = std::io::stderr().is_terminal();
    let spinner = interactive.then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    });
    let say = |line: String| match &spinner {
        Some(pb) => pb.println(line),
        None => eprintln!("{line}"),
    };
    let finish = || {
        if let Some(pb) = &spinner {
            pb.finish_and_clear();
        }
    };
    let mut printed = 0usize;
    let mut log_offset = 0u64;
    loop {
        let d = client.get(&format!("/deployments/{id}")).await?;
        if build_log {
            let chunk = client
                .get(&format!("/deployments/{id}/logs?offset={log_offset}"))
                .await?;
            log_offset = chunk["next_offset"].as_u64().unwrap_or(log_offset);
            for line in chunk["text"].as_str().unwrap_or("").lines() {
                say(format!("    │ {line}"));
            }
        }
        let transitions = d["transitions"].as_array().cloned().unwrap_or_default();
        // A step is done when the next transition exists.
        while printed + 1 < transitions.len() {
            let (this, next) = (&transitions[printed], &transitions[printed + 1]);
            let state = this["state"].as_str().unwrap_or("");
            let next_state = next["state"].as_str().unwrap_or("");
            if state != "queued" && !matches!(next_state, "failed" | "cancelled") {
                say(format!("  ✔ {}", step_done(state, &d, this, next)));
            }
            printed += 1;
        }
        let state = d["state"].as_str().unwrap_or("");
        if let Some(pb) = &spinner {
            pb.set_message(match state {
                "queued" => "waiting for a worker".to_owned(),
                s => s.replace('_', " "),
            });
        }
        match state {
            "live" => {
                finish();
                println!("{}", d["url"].as_str().unwrap_or(""));
                return Ok(());
            }
            "failed" | "cancelled" | "superseded" | "rolled_back" => {
                finish();
                let step = d["failed_step"]
                    .as_str()
                    .and_then(easydeploy_core::DeploymentState::parse)
                    .map_or("an unknown step", |s| s.label());
                let reason = d["reason"].as_str().unwrap_or("no reason recorded");
                if state == "failed" {
                    say(format!("  ✘ {step}"));
                    bail!("deployment #{} failed while {step}: {reason}", d["number"]);
                }
                bail!("deployment #{} was {state}: {reason}", d["number"]);
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn seconds_between(a: &Value, b: &Value) -> Option<f64> {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v["at"].as_str()?).ok();
    Some((parse(b)? - parse(a)?).num_milliseconds() as f64 / 1000.0)
}

fn step_done(state: &str, d: &Value, this: &Value, next: &Value) -> String {
    let took = seconds_between(this, next)
        .map(|s| format!(" ({s:.1} s)"))
        .unwrap_or_default();
    match state {
        "preparing_tenant" => "preparing tenant".into(),
        "fetching_source" => {
            let commit = d["commit"].as_str().unwrap_or("");
            format!("fetching source ({})", commit.get(..7).unwrap_or(commit))
        }
        "detecting" => format!(
            "detected {} ({})",
            d["framework"].as_str().unwrap_or("?"),
            d["evidence"].as_str().unwrap_or("")
        ),
        "generating_pipeline" => "pipeline generated".into(),
        "building" => format!("image built{took}"),
        "pushing" => "image stored".into(),
        "releasing" => "released".into(),
        "verifying" => format!("healthy{took}"),
        other => other.replace('_', " "),
    }
}

pub fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `easydeploy apps`.
pub async fn apps(client: &Client) -> anyhow::Result<()> {
    let apps = client.get("/apps").await?;
    let apps = apps.as_array().cloned().unwrap_or_default();
    if apps.is_empty() {
        println!("no apps yet: deploy one with `easydeploy deploy SOURCE --name APP`");
        return Ok(());
    }
    println!("{:<24} {:<10} URL", "NAME", "LIVE");
    for app in apps {
        let live = if app["live_deployment"].is_null() {
            "no"
        } else {
            "yes"
        };
        println!(
            "{:<24} {:<10} {}",
            app["name"].as_str().unwrap_or(""),
            live,
            app["url"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `easydeploy status APP`.
pub async fn status(client: &Client, app: &str) -> anyhow::Result<()> {
    let a = client.get(&format!("/apps/{}", urlencode(app))).await?;
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    println!("app       {}", s(&a["name"]));
    println!("url       {}", s(&a["url"]));
    println!(
        "source    {} (branch {}, root '{}')",
        s(&a["source"]),
        s(&a["branch"]),
        a["root"].as_str().unwrap_or("")
    );
    match a["live"].as_object() {
        Some(live) => println!(
            "release   #{} {} {} ({}), image {}",
            live["number"],
            live["framework"].as_str().unwrap_or("-"),
            live["commit"]
                .as_str()
                .map(|c| c.get(..7).unwrap_or(c))
                .unwrap_or("-"),
            live["commit_summary"].as_str().unwrap_or(""),
            live["image"].as_str().unwrap_or("-")
        ),
        None => println!("release   none live"),
    }
    println!("replicas  {} wanted", a["replicas"]);
    for r in a["replica_status"].as_array().cloned().unwrap_or_default() {
        println!(
            "  {:<36} {:<10} {:<9} restarts {} {}",
            s(&r["name"]),
            s(&r["state"]),
            if r["healthy"].as_bool() == Some(true) {
                "healthy"
            } else {
                "unhealthy"
            },
            r["restarts"],
            r["addr"].as_str().unwrap_or("")
        );
    }
    if let Some(auto) = a["autoscale"].as_object() {
        println!(
            "autoscale {}-{} replicas at {} req/s each",
            auto["min"], auto["max"], auto["target_rps"]
        );
    }
    if a["alerts_firing"].as_array().is_some_and(|f| !f.is_empty()) {
        crate::alerts::print_firing(client, s(&a["name"]).as_str()).await?;
    }
    println!("deployments");
    for d in a["deployments"].as_array().cloned().unwrap_or_default() {
        let reason = d["reason"].as_str().map(|r| format!("  {r}")).unwrap_or_default();
        println!(
            "  #{:<4} {:<20} {}{}",
            d["number"],
            s(&d["state"]),
            s(&d["created_at"]),
            reason
        );
    }
    Ok(())
}

/// `easydeploy logs APP`.
pub async fn logs(client: &Client, app: &str, build: bool, follow: bool, tail: usize) -> anyhow::Result<()> {
    let app = urlencode(app);
    if build {
        let list = client.get(&format!("/apps/{app}/deployments?limit=1")).await?;
        let id = list[0]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the app has no deployment yet"))?
            .to_owned();
        let mut offset = 0u64;
        loop {
            let chunk = client
                .get(&format!("/deployments/{id}/logs?offset={offset}"))
                .await?;
            print!("{}", chunk["text"].as_str().unwrap_or(""));
            std::io::stdout().flush()?;
            offset = chunk["next_offset"].as_u64().unwrap_or(offset);
            if !follow || chunk["finished"].as_bool() == Some(true) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let path = format!("/apps/{app}/logs/stream?tail={tail}&follow={follow}");
    let mut response = client.send(reqwest::Method::GET, &path, None).await?;
    let mut out = std::io::stdout();
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await? {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Server-Sent Events: one `data:` line per log line.
        while let Some(newline) = pending.find('\n') {
            let line: String = pending.drain(..=newline).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                let v: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                let replica = v["replica"].as_str().unwrap_or("?");
                writeln!(out, "{replica} | {}", v["line"].as_str().unwrap_or(""))?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// `easydeploy destroy APP`.
pub async fn destroy(client: &Client, app: &str) -> anyhow::Result<()> {
    client
        .json(
            reqwest::Method::DELETE,
            &format!("/apps/{}", urlencode(app)),
            None,
        )
        .await?;
    eprintln!("destroyed {app}: its replicas, images, route, workspace and history are gone");
    Ok(())
}

/// `easydeploy frameworks`.
pub async fn frameworks(client: &Client) -> anyhow::Result<()> {
    let list = client.get("/frameworks").await?;
    println!("{:<12} {:<6} DETECTED BY", "FRAMEWORK", "PORT");
    for f in list.as_array().cloned().unwrap_or_default() {
        println!(
            "{:<12} {:<6} {}",
            f["id"].as_str().unwrap_or(""),
            f["defaults"]["port"],
            f["detected_by"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `easydeploy releases APP`.
pub async fn releases(client: &Client, app: &str) -> anyhow::Result<()> {
    let list = client.get(&format!("/apps/{}/releases", urlencode(app))).await?;
    println!(
        "{:<8} {:<12} {:<9} {:<9} {:<25} IMAGE",
        "RELEASE", "STATE", "KIND", "COMMIT", "WHEN"
    );
    for r in list.as_array().cloned().unwrap_or_default() {
        let commit = r["commit"].as_str().unwrap_or("-");
        println!(
            "v{:<7} {:<12} {:<9} {:<9} {:<25} {}",
            r["release"],
            r["state"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            commit.get(..7).unwrap_or(commit),
            r["created_at"].as_str().unwrap_or(""),
            r["image"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}

/// `easydeploy rollback APP [--to N]`: waits until the earlier release serves.
pub async fn rollback(client: &Client, app: &str, to: Option<i64>) -> anyhow::Result<()> {
    let body = match to {
        Some(n) => json!({ "to": n }),
        None => json!({}),
    };
    let d = client
        .json(
            reqwest::Method::POST,
            &format!("/apps/{}/rollback", urlencode(app)),
            Some(body),
        )
        .await?;
    let id = d["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server answered without a deployment id"))?;
    follow_deployment(client, id, false).await
}

/// `easydeploy env set|unset|list APP`.
pub async fn env(
    client: &Client,
    app: &str,
    set: Vec<String>,
    unset: Vec<String>,
    reveal: bool,
) -> anyhow::Result<()> {
    let path = format!("/apps/{}/env", urlencode(app));
    if set.is_empty() && unset.is_empty() {
        let query = if reveal { "?reveal=true" } else { "" };
        for v in client
            .get(&format!("{path}{query}"))
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            println!(
                "{}={}",
                v["name"].as_str().unwrap_or(""),
                v["value"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    let changed = client
        .json(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "set": set, "unset": unset })),
        )
        .await?;
    match changed["deployment"]["id"].as_str() {
        Some(id) => follow_deployment(client, id, false).await,
        None => {
            eprintln!("saved; it applies to the next deployment");
            Ok(())
        }
    }
}

/// `easydeploy scale APP --replicas N`.
pub async fn scale(client: &Client, app: &str, replicas: i64) -> anyhow::Result<()> {
    let serving = client
        .json(
            reqwest::Method::POST,
            &format!("/apps/{}/scale", urlencode(app)),
            Some(json!({ "replicas": replicas })),
        )
        .await?;
    let serving = serving.as_array().cloned().unwrap_or_default();
    println!("{app} runs {} replica(s)", serving.len());
    for r in serving {
        println!(
            "  {} {}",
            r["name"].as_str().unwrap_or(""),
            r["addr"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `easydeploy autoscale APP --min A --max B --target-rps R` (or `--off`).
pub async fn autoscale(client: &Client, app: &str, bounds: Option<(i64, i64, f64)>) -> anyhow::Result<()> {
    let path = format!("/apps/{}/autoscale", urlencode(app));
    match bounds {
        Some((min, max, target_rps)) => {
            let body = json!({ "min": min, "max": max, "target_rps": target_rps });
            client.json(reqwest::Method::PUT, &path, Some(body)).await?;
            println!("{app} autoscales between {min} and {max} replicas at {target_rps} req/s per replica");
        }
        None => {
            client.json(reqwest::Method::DELETE, &path, None).await?;
            println!("{app} no longer autoscales");
        }
    }
    Ok(())
}

/// `easydeploy stats [APP]`: deployment statistics.
pub async fn stats(client: &Client, app: Option<&str>) -> anyhow::Result<()> {
    let path = match app {
        Some(app) => format!("/apps/{}/stats", urlencode(app)),
        None => "/stats".to_owned(),
    };
    let s = client.get(&path).await?;
    println!("deployments  {}", s["total"]);
    if let Some(rate) = s["success_rate"].as_f64() {
        println!("success rate {:.0}%", rate * 100.0);
    }
    if let Some(states) = s["by_state"].as_object() {
        let line: Vec<String> = states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("by state     {}", line.join(", "));
    }
    println!("{:<22} {:>6} {:>9} {:>9}", "STEP", "COUNT", "MEAN s", "P95 s");
    for step in easydeploy_core::state::STEPS.iter().map(|s| s.as_str()) {
        let figures = &s["steps"][step];
        if figures.is_object() {
            println!(
                "{step:<22} {:>6} {:>9.2} {:>9.2}",
                figures["count"],
                figures["mean_secs"].as_f64().unwrap_or(0.0),
                figures["p95_secs"].as_f64().unwrap_or(0.0)
            );
        }
    }
    if let Some(days) = s["per_day"].as_object() {
        for (day, n) in days {
            println!("{day}   {n} deployment(s)");
        }
    }
    Ok(())
}
