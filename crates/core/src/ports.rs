//! Port traits owned by the engine. Each backend (local Docker, AWS) has one
//! adapter per trait, wired once in the composition root.

use crate::{AppName, Branch, EnvVar, GitSource, PipelineFiles, Port};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A failure in a backend, with whether retrying may help and a sentence a
/// person can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// A transient failure (network, throttling) worth retrying.
    pub retryable: bool,
    /// What went wrong, for the deployment's failure reason.
    pub message: String,
    /// Stable code for API clients (`backend_error` unless more is known).
    pub code: &'static str,
}

impl BackendError {
    /// A failure that will happen again if retried (bad input, build error).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
            code: "backend_error",
        }
    }
    /// A transient failure.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
            code: "backend_unavailable",
        }
    }

    /// The same error with a more precise stable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// Receives log lines as work happens (build output, pipeline messages).
pub trait LogSink: Send + Sync {
    /// Appends one line (without its trailing newline).
    fn line(&self, line: &str);
}

/// A tenant: the owner of apps, isolated from other tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stable identifier (a DNS-label-like string).
    pub id: String,
}

/// What a backend made for a tenant (network, IAM user...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantHandle {
    /// The backend's name for the isolation boundary (docker network, IAM user).
    pub resource: String,
}

/// Ensures a tenant's isolated identity exists. Idempotent.
#[async_trait]
pub trait TenantIdentity: Send + Sync {
    /// Creates the tenant's identity if missing and returns it.
    async fn ensure(&self, tenant: &Tenant) -> BackendResult<TenantHandle>;
}

/// A checked-out commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// Full commit id.
    pub commit: String,
    /// First line of the commit message.
    pub summary: String,
    /// The checkout's top folder.
    pub path: PathBuf,
}

/// HTTP credentials for one fetch (e.g. a GitHub user's token), given to
/// the git host only when it asks and never written to disk. `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceCredentials {
    /// User name (`x-access-token` for a GitHub token).
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for SourceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceCredentials({}:***)", self.username)
    }
}

/// Checks out code.
#[async_trait]
pub trait SourceFetcher: Send + Sync {
    /// Resolves `branch` on the remote to a commit without checking it out;
    /// used to refuse unreachable repositories and unknown branches early.
    async fn resolve(&self, source: &GitSource, branch: &Branch) -> BackendResult<String>;
    /// Shallow-clones `branch` (or the given commit of it) into `dest`,
    /// which must not exist yet.
    async fn fetch(
        &self,
        source: &GitSource,
        branch: &Branch,
        commit: Option<&str>,
        dest: &Path,
    ) -> BackendResult<Checkout>;
    /// [`SourceFetcher::resolve`] with credentials; adapters that cannot use
    /// them ignore them.
    async fn resolve_with(
        &self,
        source: &GitSource,
        branch: &Branch,
        _credentials: Option<&SourceCredentials>,
    ) -> BackendResult<String> {
        self.resolve(source, branch).await
    }
    /// [`SourceFetcher::fetch`] with credentials; adapters that cannot use
    /// them ignore them.
    async fn fetch_with(
        &self,
        source: &GitSource,
        branch: &Branch,
        commit: Option<&str>,
        dest: &Path,
        _credentials: Option<&SourceCredentials>,
    ) -> BackendResult<Checkout> {
        self.fetch(source, branch, commit, dest).await
    }
}

/// Where an app's code comes from when a git host knows it: credentials to
/// fetch it and commit statuses to report deployments. Apps the host does
/// not know get `None` and no statuses.
#[async_trait]
pub trait SourceHost: Send + Sync {
    /// Credentials to fetch `source` for the app: only when it is the
    /// repository the app was connected with.
    async fn credentials(
        &self,
        app: &AppName,
        source: &GitSource,
    ) -> BackendResult<Option<SourceCredentials>>;
    /// Reports a deployment's progress on a commit of the app's repository.
    async fn commit_status(&self, app: &AppName, commit: &str, status: &CommitStatus) -> BackendResult<()>;
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// The deployment is under way.
    Pending,
    /// The commit is live.
    Success,
    /// The deployment failed.
    Failure,
}

/// A deployment's status on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// Pending, success or failure.
    pub state: CommitState,
    /// A short sentence (what happened, or which step failed).
    pub description: String,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The tenant that owns the app (where remote backends file the sources).
    pub tenant: Tenant,
    /// The app.
    pub app: AppName,
    /// The commit being built (names the uploaded sources).
    pub commit: String,
    /// The deployment id (for labels).
    pub deployment: String,
    /// Folder whose files form the build context (checkout + root folder).
    pub context_dir: PathBuf,
    /// Generated (or the repo's own) pipeline files; written into the context.
    pub pipeline: PipelineFiles,
    /// Image reference to tag the result with, e.g. `easydeploy/shop:3f2a…`.
    pub tag: String,
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    /// Reference it is tagged with.
    pub reference: String,
    /// Content id / digest.
    pub id: String,
}

/// Builds images.
#[async_trait]
pub trait ImageBuilder: Send + Sync {
    /// The image tagged `reference`, if it already exists (warm redeploys skip the build).
    async fn find(&self, reference: &str) -> BackendResult<Option<BuiltImage>>;
    /// Builds the image, streaming output lines to `log`.
    async fn build(&self, request: &BuildRequest, log: &dyn LogSink) -> BackendResult<BuiltImage>;
}

/// Stores images where the runtime can pull them.
#[async_trait]
pub trait ImageRegistry: Send + Sync {
    /// The repository images of `app` are tagged into, created if missing.
    async fn ensure_repository(&self, app: &AppName) -> BackendResult<String>;
    /// Makes `image` available to the runtime; returns the pullable reference.
    async fn push(&self, image: &BuiltImage, log: &dyn LogSink) -> BackendResult<String>;
    /// Removes every image of `app` except those in `keep`.
    async fn prune(&self, app: &AppName, keep: &[String]) -> BackendResult<()>;
}

/// HTTP health check of a replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Path requested, e.g. `/`.
    pub path: String,
    /// How long a replica may take to answer its first check.
    pub grace: Duration,
    /// Timeout of one check.
    pub timeout: Duration,
    /// Pause between checks.
    pub interval: Duration,
    /// Consecutive passing checks before a replica takes traffic.
    pub healthy_threshold: u32,
    /// Consecutive failing checks before a live replica is replaced.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/".into(),
            grace: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            interval: Duration::from_millis(100),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
        }
    }
}

/// Memory and CPU limits of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of memory.
    pub memory_bytes: i64,
    /// Thousandths of a CPU.
    pub millicpus: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 * 1024 * 1024,
            millicpus: 1000,
        }
    }
}

/// A release: an image plus its configuration.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    /// The tenant that owns the app.
    pub tenant: Tenant,
    /// The app.
    pub app: AppName,
    /// The deployment that makes this release (labels, names).
    pub deployment: String,
    /// Image reference to run.
    pub image: String,
    /// Port the app listens on (also given as `PORT`).
    pub port: Port,
    /// The user's environment variables.
    pub env: Vec<EnvVar>,
    /// Number of replicas.
    pub replicas: u32,
    /// The app's autoscaling policy, for runtimes that scale by themselves
    /// (see [`Runtime::replica_bounds`]).
    pub autoscale: Option<crate::Autoscale>,
    /// How replicas are checked.
    pub health: HealthCheck,
    /// Resource limits.
    pub limits: Limits,
}

/// A running copy of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Backend id (container id, task ARN).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Where the proxy reaches it.
    pub addr: Option<SocketAddr>,
}

/// A replica as observed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    /// Backend id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Deployment that started it.
    pub deployment: String,
    /// `running`, `exited`, `restarting`...
    pub state: String,
    /// Whether it answers its health check (as last seen by the proxy).
    pub healthy: bool,
    /// Times the engine restarted it.
    pub restarts: i64,
    /// Address the proxy dials.
    pub addr: Option<String>,
}

/// One line of an app's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Replica name.
    pub replica: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its newline.
    pub line: String,
}

/// Runs releases.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Starts the release's replicas without sending them traffic yet.
    async fn launch(&self, release: &ReleaseSpec) -> BackendResult<Vec<Replica>>;
    /// Waits until every replica passes its health check; fails with the
    /// last check's response or error, or the app's exit, otherwise.
    async fn verify(&self, release: &ReleaseSpec, replicas: &[Replica]) -> BackendResult<()>;
    /// Sends the app's traffic to `replicas`, then drains and stops every
    /// other replica of the app.
    async fn promote(&self, release: &ReleaseSpec, replicas: &[Replica]) -> BackendResult<()>;
    /// Stops and removes replicas that will not go live.
    async fn discard(&self, replicas: &[Replica]) -> BackendResult<()>;
    /// Makes the live release serve with `release.replicas` replicas (a
    /// count within [`Runtime::replica_bounds`]): adopts running ones, replaces stopped or missing ones
    /// (health-checked before they take traffic), drains and removes extras,
    /// and routes to the result. Used after a restart, to scale and to heal.
    async fn adopt(&self, release: &ReleaseSpec) -> BackendResult<Vec<Replica>>;
    /// Replica counts the live release may run with. Runtimes that scale
    /// by themselves (AWS Application Auto Scaling) answer a range; the
    /// reconciler leaves a count inside it alone and the engine's own
    /// autoscaler stays out. Default: exactly `release.replicas`.
    fn replica_bounds(&self, release: &ReleaseSpec) -> std::ops::RangeInclusive<u32> {
        release.replicas..=release.replicas
    }
    /// Whether the runtime scales replicas itself (then the engine's
    /// autoscaler does not). Default: no.
    fn scales_itself(&self) -> bool {
        false
    }
    /// Removes every replica whose deployment is not in `keep`.
    async fn remove_orphans(&self, keep: &[String]) -> BackendResult<usize>;
    /// The app's replicas as they are now.
    async fn status(&self, app: &AppName) -> BackendResult<Vec<ReplicaStatus>>;
    /// One active health check of a running replica: `None` when it passes,
    /// the reason when it fails. Backends whose load balancer checks
    /// replicas itself keep the default (always passing).
    async fn probe(&self, _release: &ReleaseSpec, _replica: &ReplicaStatus) -> BackendResult<Option<String>> {
        Ok(None)
    }
    /// The app's output: the last `tail` lines, then new ones while `follow`.
    async fn logs(
        &self,
        app: &AppName,
        tail: usize,
        follow: bool,
    ) -> BackendResult<BoxStream<'static, LogLine>>;
    /// Stops everything of the app and removes its route.
    async fn destroy(&self, app: &AppName) -> BackendResult<()>;
    /// Resource use of each running replica of the app. Backends without
    /// per-replica figures keep the default (none).
    async fn stats(&self, _app: &AppName) -> BackendResult<Vec<ReplicaStats>> {
        Ok(Vec::new())
    }
}

/// Keeps build artifacts (pipeline files, image detail, build log) per deployment.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Writes (replaces) an artifact.
    async fn put(&self, deployment: &str, name: &str, bytes: &[u8]) -> BackendResult<()>;
    /// Appends to an artifact (logs).
    async fn append(&self, deployment: &str, name: &str, bytes: &[u8]) -> BackendResult<()>;
    /// Reads an artifact from a byte offset; `None` if it does not exist.
    async fn get(&self, deployment: &str, name: &str, offset: u64) -> BackendResult<Option<Vec<u8>>>;
    /// Names of a deployment's artifacts.
    async fn list(&self, deployment: &str) -> BackendResult<Vec<String>>;
    /// Removes every artifact of the given deployments.
    async fn remove(&self, deployments: &[String]) -> BackendResult<()>;
}

/// The set of backends the engine drives.
#[derive(Clone)]
pub struct Backends {
    /// Tenant identities.
    pub tenants: Arc<dyn TenantIdentity>,
    /// Source checkouts.
    pub source: Arc<dyn SourceFetcher>,
    /// Image builds.
    pub builder: Arc<dyn ImageBuilder>,
    /// Image registry.
    pub registry: Arc<dyn ImageRegistry>,
    /// Replicas and traffic.
    pub runtime: Arc<dyn Runtime>,
    /// Build artifacts.
    pub artifacts: Arc<dyn ArtifactStore>,
}

/// Where the edge proxy reaches one replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    /// The replica's address on its network.
    pub addr: SocketAddr,
    /// A file naming the replica's network namespace (Docker's sandbox
    /// key), when the edge may open its connections to `addr` from inside
    /// that namespace: they then take the namespace's loopback path instead
    /// of crossing the bridge (same destination, less kernel work per
    /// packet).
    pub netns: Option<PathBuf>,
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Self {
        Self { addr, netns: None }
    }
}

/// The edge's view of where an app's traffic goes; implemented by the edge
/// proxy and used by the local runtime.
pub trait TrafficSwitch: Send + Sync {
    /// Routes the app's requests to these replicas (round robin).
    fn set_upstreams(&self, app: &str, upstreams: Vec<Upstream>);
    /// Routes the app's requests to these replica addresses, dialed as they are.
    fn set_backends(&self, app: &str, backends: Vec<SocketAddr>) {
        self.set_upstreams(app, backends.into_iter().map(Upstream::from).collect());
    }
    /// Forgets the app: its host answers 404.
    fn remove(&self, app: &str);
    /// Requests currently being served by a backend, for draining.
    fn in_flight(&self, backend: SocketAddr) -> usize;
    /// Whether the proxy considers a backend healthy.
    fn is_healthy(&self, backend: SocketAddr) -> bool;
}

/// Request counts per app, read by the autoscaler (the edge proxy locally,
/// CloudWatch on AWS).
pub trait LoadMetrics: Send + Sync {
    /// Requests the app has received since the process started, if known.
    fn requests_total(&self, app: &str) -> Option<u64>;

    /// Responses by status class (2xx, 3xx, 4xx, 5xx) since the process started, if known.
    fn responses_by_class(&self, _app: &str) -> Option<[u64; 4]> {
        None
    }

    /// Every traffic figure of the app since the process started, if known.
    fn traffic(&self, _app: &str) -> Option<TrafficFigures> {
        None
    }

    /// The same figures per replica, keyed by the address the proxy dials.
    fn traffic_by_replica(&self, _app: &str) -> Vec<(String, TrafficFigures)> {
        Vec::new()
    }
}

/// Upper bounds (milliseconds) of the latency histogram buckets; a last,
/// unbounded bucket follows.
pub const LATENCY_BUCKETS_MS: [f64; 14] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

/// Cumulative traffic figures of an app or a replica, as seen by the proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficFigures {
    /// Requests received.
    pub requests: u64,
    /// Responses by status class: 2xx, 3xx, 4xx, 5xx.
    pub responses_by_class: [u64; 4],
    /// Requests being served now.
    pub in_flight: u64,
    /// Request body bytes received from clients.
    pub bytes_in: u64,
    /// Response body bytes sent to clients.
    pub bytes_out: u64,
    /// Responses per latency bucket (not cumulative): one count per bound
    /// of [`LATENCY_BUCKETS_MS`], then the unbounded bucket. Empty when unknown.
    pub latency_buckets: Vec<u64>,
    /// Sum of every response's latency, in milliseconds.
    pub latency_sum_ms: f64,
}

impl TrafficFigures {
    /// The latency below which a fraction `q` (0..=1) of responses fell,
    /// interpolated inside its bucket; `None` without responses.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        latency_quantile_ms(&self.latency_buckets, q)
    }
}

/// Quantile `q` of a latency histogram laid out as in [`TrafficFigures::latency_buckets`].
pub fn latency_quantile_ms(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, &count) in buckets.iter().enumerate() {
        if count == 0 {
            continue;
        }
        if (seen + count) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS_MS[i - 1] };
            let Some(&upper) = LATENCY_BUCKETS_MS.get(i) else {
                return Some(lower);
            };
            let within = (rank - seen as f64) / count as f64;
            return Some(lower + (upper - lower) * within);
        }
        seen += count;
    }
    None
}

/// Resource use of one replica, sampled by the runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaStats {
    /// Replica name.
    pub replica: String,
    /// CPU use in percent of one core.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes (0 when unlimited).
    pub memory_limit_bytes: u64,
    /// Bytes received on the network since the replica started.
    pub net_rx_bytes: u64,
    /// Bytes sent on the network since the replica started.
    pub net_tx_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let mut buckets = vec![0u64; LATENCY_BUCKETS_MS.len() + 1];
        assert_eq!(latency_quantile_ms(&buckets, 0.5), None);
        buckets[3] = 100; // 5..10 ms
        let p50 = latency_quantile_ms(&buckets, 0.5).unwrap();
        assert!((p50 - 7.5).abs() < 1e-9, "{p50}");
        buckets[LATENCY_BUCKETS_MS.len()] = 100; // beyond the last bound
        assert_eq!(latency_quantile_ms(&buckets, 0.99), Some(30000.0));
        assert!(latency_quantile_ms(&buckets, 0.25).unwrap() < 10.0);
    }
}
