//! Request and response bodies.

use crate::{ApiError, ApiState};
use easydeploy_core::framework::Framework;
use easydeploy_core::ports::ReplicaStatus;
use easydeploy_core::{
    AppSettings, Branch, DeploymentState, EnvVar, GitSource, Port, Replicas, RootDir, ShellCommand,
};
use easydeploy_store::{App, Deployment, Transition};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// App settings as sent by clients; every field is optional on a deploy
/// (omitted ones keep their current value).
/// Unknown fields are refused by the requests that embed it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SettingsInput {
    /// Git URL (https, ssh, git, file) or absolute path to a local repository.
    pub source: Option<String>,
    /// Branch to deploy (default `main`).
    pub branch: Option<String>,
    /// Folder of the app inside the repository.
    pub root: Option<String>,
    /// Framework to use instead of detection (see `/frameworks`).
    pub framework: Option<String>,
    /// Port the app listens on.
    pub port: Option<i64>,
    /// Environment variables as `NAME=value`, merged into the app's.
    pub env: Option<Vec<String>>,
    /// Build command override.
    pub build_command: Option<String>,
    /// Run command override.
    pub run_command: Option<String>,
    /// Number of replicas (1-20).
    pub replicas: Option<i64>,
    /// Path of the HTTP health check (default `/`).
    pub health_path: Option<String>,
    /// Seconds a new replica may take to pass its first health check (1-3600).
    pub health_grace_secs: Option<i64>,
    /// Milliseconds between health checks (10-60000).
    pub health_interval_ms: Option<i64>,
    /// Milliseconds one health check may take (10-60000).
    pub health_timeout_ms: Option<i64>,
    /// Consecutive passing checks before a new replica takes traffic (1-10).
    pub healthy_threshold: Option<i64>,
    /// Consecutive failing checks before a live replica is replaced (1-100).
    pub unhealthy_threshold: Option<i64>,
}

impl SettingsInput {
    /// Validates the input onto `base` (or onto nothing for a new app).
    pub fn apply(self, base: Option<AppSettings>) -> Result<AppSettings, ApiError> {
        let mut settings = match (base, self.source.as_deref()) {
            (Some(mut base), source) => {
                if let Some(source) = source {
                    base.source = GitSource::parse(source)?;
                }
                base
            }
            (None, Some(source)) => AppSettings::new(GitSource::parse(source)?, Branch::parse("main")?),
            (None, None) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "missing_source",
                    "a new app needs a source: a git URL or a path to a git repository",
                ))
            }
        };
        if let Some(branch) = self.branch {
            settings.branch = Branch::parse(&branch)?;
        }
        if let Some(root) = self.root {
            settings.root = RootDir::parse(&root)?;
        }
        if let Some(framework) = self.framework {
            settings.framework = match framework.as_str() {
                "" | "auto" => None,
                f => Some(Framework::parse(f)?),
            };
        }
        if let Some(port) = self.port {
            settings.port = Some(Port::parse(port)?);
        }
        if let Some(env) = self.env {
            let vars = env
                .iter()
                .map(|raw| EnvVar::parse(raw))
                .collect::<Result<Vec<_>, _>>()?;
            settings.merge_env(vars);
        }
        if let Some(cmd) = self.build_command {
            settings.build_command = if cmd.trim().is_empty() {
                None
            } else {
                Some(ShellCommand::parse(&cmd)?)
            };
        }
        if let Some(cmd) = self.run_command {
            settings.run_command = if cmd.trim().is_empty() {
                None
            } else {
                Some(ShellCommand::parse(&cmd)?)
            };
        }
        if let Some(replicas) = self.replicas {
            settings.replicas = Replicas::parse(replicas)?;
        }
        if let Some(path) = self.health_path {
            if !path.starts_with('/')
                || path.len() > 512
                || path.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_health_path",
                    "the health check path must start with '/' and contain no spaces",
                ));
            }
            settings.health_path = path;
        }
        if let Some(grace) = self.health_grace_secs {
            if !(1..=3600).contains(&grace) {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_health_grace",
                    "the health check grace period must be 1 to 3600 seconds",
                ));
            }
            settings.health_grace_secs = Some(grace as u64);
        }
        let ranged =
            |value: Option<i64>, range: std::ops::RangeInclusive<i64>, code: &'static str, what: &str| {
                match value {
                    Some(v) if !range.contains(&v) => Err(ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        code,
                        format!("{what} must be between {} and {}", range.start(), range.end()),
                    )),
                    other => Ok(other),
                }
            };
        if let Some(v) = ranged(
            self.health_interval_ms,
            10..=60_000,
            "invalid_health_interval",
            "the health check interval (ms)",
        )? {
            settings.health_interval_ms = Some(v as u64);
        }
        if let Some(v) = ranged(
            self.health_timeout_ms,
            10..=60_000,
            "invalid_health_timeout",
            "the health check timeout (ms)",
        )? {
            settings.health_timeout_ms = Some(v as u64);
        }
        if let Some(v) = ranged(
            self.healthy_threshold,
            1..=10,
            "invalid_healthy_threshold",
            "the healthy threshold",
        )? {
            settings.healthy_threshold = Some(v as u32);
        }
        if let Some(v) = ranged(
            self.unhealthy_threshold,
            1..=100,
            "invalid_unhealthy_threshold",
            "the unhealthy threshold",
        )? {
            settings.unhealthy_threshold = Some(v as u32);
        }
        Ok(settings)
    }
}

/// An environment variable as shown (value masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvView {
    /// Name.
    pub name: String,
    /// Always `********`: values are never shown.
    pub value: String,
}

/// An app.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    /// Unique name (its host name).
    pub name: String,
    /// Where it is served.
    pub url: String,
    /// Repository (credentials masked).
    pub source: String,
    /// Branch deployed.
    pub branch: String,
    /// Folder inside the repository.
    pub root: String,
    /// Framework chosen by the user, if any.
    pub framework: Option<String>,
    /// Port override, if any.
    pub port: Option<u16>,
    /// Replica count.
    pub replicas: u32,
    /// Health check path.
    pub health_path: String,
    /// Autoscaling, when on.
    pub autoscale: Option<easydeploy_core::Autoscale>,
    /// Environment variables (values masked).
    pub env: Vec<EnvView>,
    /// Deployment serving traffic.
    pub live_deployment: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl AppView {
    /// Builds the view of an app.
    pub fn new(state: &ApiState, app: &App) -> Self {
        let s = &app.settings;
        Self {
            name: app.name.to_string(),
            url: state.app_url(app.name.as_str()),
            source: s.source.redacted(),
            branch: s.branch.to_string(),
            root: s.root.to_string(),
            framework: s.framework.map(|f| f.id().to_owned()),
            port: s.port.map(|p| p.get()),
            replicas: s.replicas.get(),
            health_path: s.health_path.clone(),
            autoscale: s.autoscale,
            env: s
                .env
                .iter()
                .map(|v| EnvView {
                    name: v.name.clone(),
                    value: "********".into(),
                })
                .collect(),
            live_deployment: app.live_deployment.clone(),
            created_at: app.created_at.clone(),
            updated_at: app.updated_at.clone(),
        }
    }
}

/// An app with its replicas and recent deployments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppDetail {
    /// The app.
    #[serde(flatten)]
    pub app: AppView,
    /// Replicas as they are now.
    pub replica_status: Vec<ReplicaStatus>,
    /// The live deployment.
    pub live: Option<DeploymentView>,
    /// Most recent deployments, newest first.
    pub deployments: Vec<DeploymentView>,
    /// Alert rules firing now (see `/apps/{app}/alerts`).
    pub alerts_firing: Vec<String>,
}

/// A deployment.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    /// Id.
    pub id: String,
    /// App.
    pub app: String,
    /// Per-app number.
    pub number: i64,
    /// Current state.
    pub state: DeploymentState,
    /// Step that failed.
    pub failed_step: Option<DeploymentState>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Commit deployed.
    pub commit: Option<String>,
    /// Its message's first line.
    pub commit_summary: Option<String>,
    /// Framework used.
    pub framework: Option<String>,
    /// Why that framework.
    pub evidence: Option<String>,
    /// Image.
    pub image: Option<String>,
    /// `deploy`, `config` (env change) or `rollback`.
    pub kind: easydeploy_store::DeploymentKind,
    /// Release number, once it went live.
    pub release: Option<i64>,
    /// Who asked for it.
    pub created_by: String,
    /// Where the app is served.
    pub url: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Every state transition with its time (on single-deployment answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<Transition>>,
}

impl DeploymentView {
    /// Builds the view of a deployment.
    pub fn new(state: &ApiState, d: &Deployment, transitions: Option<Vec<Transition>>) -> Self {
        Self {
            id: d.id.clone(),
            app: d.app.to_string(),
            number: d.number,
            state: d.state,
            failed_step: d.failed_step,
            reason: d.reason.clone(),
            commit: d.commit.clone(),
            commit_summary: d.commit_summary.clone(),
            framework: d.framework.clone(),
            evidence: d.evidence.clone(),
            image: d.image.clone(),
            kind: d.kind,
            release: d.release,
            created_by: d.created_by.clone(),
            url: state.app_url(d.app.as_str()),
            created_at: d.created_at.clone(),
            updated_at: d.updated_at.clone(),
            transitions,
        }
    }
}

/// A piece of a deployment's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogChunk {
    /// Byte offset this text starts at.
    pub offset: u64,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// The text.
    pub text: String,
    /// The deployment has ended: no more text will come.
    pub finished: bool,
}
