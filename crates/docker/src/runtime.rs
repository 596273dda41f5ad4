//! Releases as containers on the tenant's bridge network, routed by the
//! edge proxy through a [`TrafficSwitch`].

mod logs;
mod probe;
mod stats;

use crate::engine::{bounded, engine_error, is_missing_network, is_not_found, network_change, within};
use crate::tenants::ensure_network;
use crate::{LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE, LABEL_PORT, LABEL_REPLICA, LABEL_TENANT};
use async_trait::async_trait;
use bollard::container::{
    Config, CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::models::{
    ContainerInspectResponse, ContainerSummary, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::network::DisconnectNetworkOptions;
use bollard::Docker;
use easydeploy_core::ports::{
    BackendError, BackendResult, LogLine, ReleaseSpec, Replica, ReplicaStats, ReplicaStatus, Runtime,
    TrafficSwitch, Upstream,
};
use easydeploy_core::AppName;
use futures_util::future::{join_all, try_join_all};
use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Bound on one ordinary engine call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds a replica gets to stop after SIGTERM.
const STOP_SECONDS: i64 = 10;
/// Lines of output quoted in failure reasons.
const OUTPUT_LINES: usize = 10;

/// Runs each replica as a container on the tenant's network, named
/// `ed-<app>-<deployment prefix>-<n>`, and routes traffic to their bridge
/// addresses through the edge proxy, naming each replica's network
/// namespace so the edge can dial it from inside.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    traffic: Arc<dyn TrafficSwitch>,
    drain_timeout: Duration,
    instance: Option<String>,
    /// The network namespace (Docker's sandbox key) of each replica started
    /// and not yet routed, by container id, taken by its first routing: a
    /// release goes live and gets traffic with no engine call in between,
    /// so `live` is not read before the edge sends the release traffic.
    /// Later routings inspect (a restarted container gets a new sandbox).
    launched: Arc<Mutex<HashMap<String, PathBuf>>>,
}

impl DockerRuntime {
    /// Runs on the engine behind `docker`, routing through `traffic`; old
    /// replicas get up to `drain_timeout` to finish their requests.
    pub fn new(docker: Docker, traffic: Arc<dyn TrafficSwitch>, drain_timeout: Duration) -> Self {
        Self {
            docker,
            traffic,
            drain_timeout,
            instance: None,
            launched: Arc::default(),
        }
    }

    /// Scopes this runtime to the containers it labels with `instance`, so
    /// several platforms (or test servers) can share one Docker engine.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The app's containers (all states) matching extra label filters.
    async fn containers(&self, mut labels: Vec<String>) -> BackendResult<Vec<ContainerSummary>> {
        if let Some(instance) = &self.instance {
            labels.push(format!("{LABEL_INSTANCE}={instance}"));
        }
        let options = ListContainersOptions {
            all: true,
            filters: HashMap::from([("label".to_owned(), labels)]),
            ..Default::default()
        };
        bounded(
            "list containers",
            CALL_TIMEOUT,
            self.docker.list_containers(Some(options)),
        )
        .await
    }

    async fn inspect(&self, id: &str) -> BackendResult<Option<ContainerInspectResponse>> {
        let what = format!("inspect the container {id}");
        let call = self.docker.inspect_container(id, None::<InspectContainerOptions>);
        match within(&what, CALL_TIMEOUT, call).await? {
            Ok(info) => Ok(Some(info)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_error(&what, e)),
        }
    }

    /// Routes the app's traffic to `replicas`: their bridge addresses, which
    /// the edge dials from inside each replica's network namespace (Docker's
    /// sandbox key) when it can open it.
    async fn route(&self, app: &str, replicas: &[Replica]) {
        let upstreams = replicas.iter().filter_map(|r| Some((r.id.as_str(), r.addr?)));
        let upstreams = join_all(upstreams.map(|(id, addr)| async move {
            let launched = self.launched.lock().unwrap().remove(id);
            let netns = match launched {
                Some(netns) => Some(netns),
                None => self.inspect(id).await.ok().flatten().as_ref().and_then(namespace),
            };
            Upstream { addr, netns }
        }))
        .await;
        self.traffic.set_upstreams(app, upstreams);
    }

    /// Removes a container, running or not; a missing one is fine.
    async fn force_remove(&self, id: &str) -> BackendResult<()> {
        self.launched.lock().unwrap().remove(id);
        let what = format!("remove the container {id}");
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let _network_change = network_change().await;
        match within(
            &what,
            CALL_TIMEOUT,
            self.docker.remove_container(id, Some(options)),
        )
        .await?
        {
            Ok(()) => Ok(()),
            // Gone already, or its removal is under way.
            Err(e) if is_not_found(&e) || crate::engine::status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(engine_error(&what, e)),
        }
    }

    /// Stops a container gracefully, then removes it. It leaves its networks
    /// first (it is drained by then): see [`network_change`] for why.
    async fn stop_and_remove(&self, id: &str) -> BackendResult<()> {
        self.leave_networks(id).await;
        let what = format!("stop the container {id}");
        let limit = CALL_TIMEOUT + Duration::from_secs(STOP_SECONDS as u64);
        let call = self
            .docker
            .stop_container(id, Some(StopContainerOptions { t: STOP_SECONDS }));
        match within(&what, limit, call).await? {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => tracing::warn!(container = id, error = %e, "could not stop a container; removing it"),
        }
        self.force_remove(id).await
    }

    /// Disconnects a container from its networks, one change at a time; a
    /// failure is logged (the removal that follows takes it off anyway).
    async fn leave_networks(&self, id: &str) {
        let Ok(Some(info)) = self.inspect(id).await else {
            return;
        };
        let networks = info.network_settings.and_then(|s| s.networks).unwrap_or_default();
        for network in networks.keys() {
            let options = DisconnectNetworkOptions {
                container: id.to_owned(),
                force: true,
            };
            let _network_change = network_change().await;
            let call = self.docker.disconnect_network(network, options);
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if is_not_found(&e) => {}
                Ok(Err(e)) => {
                    tracing::warn!(container = id, %network, error = %e, "could not leave a network")
                }
                Err(_) => tracing::warn!(container = id, %network, "leaving a network timed out"),
            }
        }
    }

    /// Creates and starts replica `index` of a release on its tenant's
    /// network (replacing a leftover container of the same name).
    async fn launch_one(&self, release: &ReleaseSpec, index: u32) -> BackendResult<Replica> {
        let name = container_name(&release.app, &release.deployment, index);
        let port = release.port.get();
        let mut env = vec![format!("PORT={port}")];
        env.extend(release.env.iter().map(|v| format!("{}={}", v.name, v.value)));
        let mut labels = HashMap::from([
            (LABEL_APP.to_owned(), release.app.to_string()),
            (LABEL_DEPLOYMENT.to_owned(), release.deployment.clone()),
            (LABEL_TENANT.to_owned(), release.tenant.id.clone()),
            (LABEL_REPLICA.to_owned(), index.to_string()),
            (LABEL_PORT.to_owned(), port.to_string()),
        ]);
        if let Some(instance) = &self.instance {
            labels.insert(LABEL_INSTANCE.to_owned(), instance.clone());
        }
        let config = Config {
            image: Some(release.image.clone()),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                memory: Some(release.limits.memory_bytes),
                nano_cpus: Some(release.limits.millicpus * 1_000_000),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                // Bounded output per replica: 3 files of 10 MB.
                log_config: Some(bollard::models::HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_owned(), "10m".to_owned()),
                        ("max-file".to_owned(), "3".to_owned()),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Destroying the tenant's last app removes its network once no
        // container is attached, which a created but not yet started replica
        // is not: when the network went away in that window, make it again.
        let mut network_gone_before = false;
        let created = loop {
            self.force_remove(&name).await?;
            let mut config = config.clone();
            // By name: the network may be made again between two attempts.
            if let Some(host) = config.host_config.as_mut() {
                host.network_mode = Some(ensure_network(&self.docker, &release.tenant.id).await?);
            }
            let what = format!("create the container {name}");
            let options = CreateContainerOptions {
                name: name.clone(),
                platform: None,
            };
            let created = bounded(
                &what,
                CALL_TIMEOUT,
                self.docker.create_container(Some(options), config),
            )
            .await?;
            let what = format!("start the container {name}");
            let start = self
                .docker
                .start_container(&created.id, None::<StartContainerOptions<String>>);
            let started = {
                let _network_change = network_change().await;
                within(&what, CALL_TIMEOUT, start).await
            };
            let error = match started {
                Ok(Ok(())) => break created,
                Ok(Err(e)) if is_missing_network(&e) && !network_gone_before => {
                    tracing::info!(container = %name, "the tenant network was removed meanwhile; making it again");
                    network_gone_before = true;
                    continue;
                }
                Ok(Err(e)) => engine_error(&what, e),
                Err(timeout) => timeout,
            };
            let _ = self.force_remove(&created.id).await;
            return Err(error);
        };
        let info = self.inspect(&created.id).await?;
        if let Some(netns) = info.as_ref().and_then(namespace) {
            self.launched.lock().unwrap().insert(created.id.clone(), netns);
        }
        let addr = info.and_then(|info| inspect_addr(&info, port));
        Ok(Replica {
            id: created.id,
            name,
            addr,
        })
    }

    /// The last lines a container printed, for failure reasons.
    async fn last_output(&self, id: &str) -> String {
        let lines = logs::container_lines(&self.docker, id.to_owned(), OUTPUT_LINES, false);
        let lines = tokio::time::timeout(Duration::from_secs(5), lines.collect::<Vec<_>>())
            .await
            .unwrap_or_default();
        if lines.is_empty() {
            "(nothing)".to_owned()
        } else {
            lines.into_iter().map(|l| l.line).collect::<Vec<_>>().join("\n")
        }
    }

    /// Waits until nothing is in flight to `addr` or the drain timeout passes.
    async fn drain(&self, addr: Option<SocketAddr>) {
        let Some(addr) = addr else { return };
        let deadline = Instant::now() + self.drain_timeout;
        while self.traffic.in_flight(addr) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Checks one replica once: `Ok(true)` when it answered well, `Ok(false)`
    /// (with `last` updated) when not yet, an error when it exited.
    async fn check(
        &self,
        release: &ReleaseSpec,
        replica: &Replica,
        last: &mut String,
    ) -> BackendResult<bool> {
        let info = self.inspect(&replica.id).await?.ok_or_else(|| {
            BackendError::permanent(format!(
                "the replica {} disappeared while being checked",
                replica.name
            ))
        })?;
        let state = info.state.clone().unwrap_or_default();
        let restarts = info.restart_count.unwrap_or(0);
        let running = state.running == Some(true) && state.restarting != Some(true);
        if !running || restarts > 0 {
            let code = state.exit_code.unwrap_or(0);
            let how = if running {
                format!("it restarted {restarts} times")
            } else if state.oom_killed == Some(true) {
                format!("exit code {code}, out of memory: raise its memory limit")
            } else {
                format!("exit code {code}")
            };
            return Err(BackendError::permanent(format!(
                "the app exited at start ({how}); last output:\n{}",
                self.last_output(&replica.id).await
            )));
        }
        let Some(addr) = replica.addr.or_else(|| inspect_addr(&info, release.port.get())) else {
            *last = "failed: the replica has no address on its network".to_owned();
            return Ok(false);
        };
        let path = if release.health.path.starts_with('/') {
            release.health.path.clone()
        } else {
            format!("/{}", release.health.path)
        };
        match probe::get_status(addr, &path, release.health.timeout).await {
            Ok(status) if status < 500 => Ok(true),
            Ok(status) => {
                *last = format!("answered {status}");
                Ok(false)
            }
            Err(why) => {
                *last = why;
                Ok(false)
            }
        }
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn launch(&self, release: &ReleaseSpec) -> BackendResult<Vec<Replica>> {
        let mut replicas = Vec::new();
        for index in 1..=release.replicas {
            match self.launch_one(release, index).await {
                Ok(replica) => replicas.push(replica),
                Err(e) => {
                    let _ = self.discard(&replicas).await;
                    return Err(e);
                }
            }
        }
        tracing::info!(app = %release.app, deployment = %release.deployment, replicas = replicas.len(), "started replicas");
        Ok(replicas)
    }

    async fn verify(&self, release: &ReleaseSpec, replicas: &[Replica]) -> BackendResult<()> {
        let deadline = Instant::now() + release.health.grace;
        let mut healthy = HashSet::new();
        let mut passes = vec![0u32; replicas.len()];
        let mut last = (0, "was not checked".to_owned());
        loop {
            for (i, replica) in replicas.iter().enumerate() {
                if healthy.contains(&i) {
                    continue;
                }
                let mut why = String::new();
                if self.check(release, replica, &mut why).await? {
                    passes[i] += 1;
                    if passes[i] >= release.health.healthy_threshold.max(1) {
                        healthy.insert(i);
                    }
                } else {
                    passes[i] = 0;
                    last = (i, why);
                }
            }
            if healthy.len() == replicas.len() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let output = self.last_output(&replicas[last.0].id).await;
                return Err(BackendError::permanent(format!(
                    "the app did not become healthy within {}: GET {} on port {} {}; last output:\n{output}",
                    seconds(release.health.grace),
                    release.health.path,
                    release.port,
                    last.1
                )));
            }
            tokio::time::sleep(release.health.interval.min(deadline - now)).await;
        }
    }

    async fn promote(&self, release: &ReleaseSpec, replicas: &[Replica]) -> BackendResult<()> {
        let app = release.app.as_str();
        self.route(app, replicas).await;
        let new: HashSet<&str> = replicas
            .iter()
            .flat_map(|r| [r.id.as_str(), r.name.as_str()])
            .collect();
        let old: Vec<ContainerSummary> = self
            .containers(vec![format!("{LABEL_APP}={app}")])
            .await?
            .into_iter()
            .filter(|c| {
                !new.contains(c.id.as_deref().unwrap_or_default()) && !new.contains(summary_name(c).as_str())
            })
            .collect();
        every(old.iter().map(|c| async move {
            self.drain(summary_addr(c)).await;
            self.stop_and_remove(c.id.as_deref().unwrap_or_default()).await
        }))
        .await?;
        tracing::info!(app, deployment = %release.deployment, stopped = old.len(), "promoted a release");
        Ok(())
    }

    async fn discard(&self, replicas: &[Replica]) -> BackendResult<()> {
        every(replicas.iter().map(|r| self.force_remove(&r.id))).await
    }

    async fn adopt(&self, release: &ReleaseSpec) -> BackendResult<Vec<Replica>> {
        let existing = self
            .containers(vec![
                format!("{LABEL_APP}={}", release.app),
                format!("{LABEL_DEPLOYMENT}={}", release.deployment),
            ])
            .await?;
        let (mut serving, mut present, mut extras, mut stopped) =
            (Vec::new(), HashSet::new(), Vec::new(), Vec::new());
        for c in &existing {
            let index: u32 = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_REPLICA))
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let replica = Replica {
                id: c.id.clone().unwrap_or_default(),
                name: summary_name(c),
                addr: summary_addr(c),
            };
            match c.state.as_deref() {
                _ if index == 0 || index > release.replicas => extras.push(replica),
                Some("running") => {
                    present.insert(replica.name.clone());
                    serving.push(replica);
                }
                // The engine is restarting it with its own backoff: leave it be, unrouted.
                Some("restarting") => {
                    present.insert(replica.name.clone());
                }
                _ => stopped.push(replica),
            }
        }
        every(stopped.iter().map(|r| self.force_remove(&r.id))).await?;
        let mut fresh = Vec::new();
        for index in 1..=release.replicas {
            if !present.contains(&container_name(&release.app, &release.deployment, index)) {
                fresh.push(self.launch_one(release, index).await?);
            }
        }
        if !fresh.is_empty() {
            if let Err(e) = self.verify(release, &fresh).await {
                let _ = self.discard(&fresh).await;
                self.route(release.app.as_str(), &serving).await;
                return Err(e);
            }
            serving.extend(fresh);
        }
        serving.sort_by(|a, b| a.name.cmp(&b.name));
        self.route(release.app.as_str(), &serving).await;
        every(extras.iter().map(|r| async move {
            self.drain(r.addr).await;
            self.stop_and_remove(&r.id).await
        }))
        .await?;
        if !stopped.is_empty() || !extras.is_empty() {
            tracing::info!(app = %release.app, replaced = stopped.len(), removed = extras.len(), serving = serving.len(), "adopted the release");
        }
        Ok(serving)
    }

    async fn remove_orphans(&self, keep: &[String]) -> BackendResult<usize> {
        let orphans: Vec<String> = self
            .containers(vec![LABEL_DEPLOYMENT.to_owned()])
            .await?
            .into_iter()
            .filter(|c| {
                let deployment = c.labels.as_ref().and_then(|l| l.get(LABEL_DEPLOYMENT));
                deployment.is_some_and(|d| !keep.contains(d))
            })
            .filter_map(|c| c.id)
            .collect();
        every(orphans.iter().map(|id| self.force_remove(id))).await?;
        if !orphans.is_empty() {
            tracing::info!(count = orphans.len(), "removed orphan containers");
        }
        Ok(orphans.len())
    }

    async fn status(&self, app: &AppName) -> BackendResult<Vec<ReplicaStatus>> {
        let containers = self.containers(vec![format!("{LABEL_APP}={app}")]).await?;
        let infos = try_join_all(
            containers
                .iter()
                .filter_map(|c| c.id.as_deref())
                .map(|id| self.inspect(id)),
        )
        .await?;
        let mut statuses: Vec<ReplicaStatus> = infos
            .into_iter()
            .flatten()
            .map(|info| {
                let labels = info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                let port = labels.get(LABEL_PORT).and_then(|p| p.parse().ok()).unwrap_or(0);
                let addr = inspect_addr(&info, port);
                let state = info.state.clone().unwrap_or_default();
                let running = state.running == Some(true);
                ReplicaStatus {
                    id: info.id.clone().unwrap_or_default(),
                    name: info
                        .name
                        .as_deref()
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned(),
                    deployment: labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
                    state: state.status.map(|s| s.to_string()).unwrap_or_default(),
                    healthy: running && addr.is_some_and(|a| self.traffic.is_healthy(a)),
                    restarts: info.restart_count.unwrap_or(0),
                    addr: addr.map(|a| a.to_string()),
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(statuses)
    }

    async fn probe(&self, release: &ReleaseSpec, replica: &ReplicaStatus) -> BackendResult<Option<String>> {
        let Some(addr) = replica.addr.as_deref().and_then(|a| a.parse::<SocketAddr>().ok()) else {
            return Ok(Some("it has no address".into()));
        };
        Ok(
            match probe::get_status(addr, &release.health.path, release.health.timeout).await {
                Ok(status) if status < 500 => None,
                Ok(status) => Some(format!("GET {} answered {status}", release.health.path)),
                Err(why) => Some(format!("GET {} {why}", release.health.path)),
            },
        )
    }

    async fn logs(
        &self,
        app: &AppName,
        tail: usize,
        follow: bool,
    ) -> BackendResult<BoxStream<'static, LogLine>> {
        let containers = self.containers(vec![format!("{LABEL_APP}={app}")]).await?;
        let streams = containers
            .iter()
            .map(|c| logs::container_lines(&self.docker, summary_name(c), tail, follow));
        Ok(stream::select_all(streams).boxed())
    }

    async fn stats(&self, app: &AppName) -> BackendResult<Vec<ReplicaStats>> {
        let containers = self.containers(vec![format!("{LABEL_APP}={app}")]).await?;
        let running = containers
            .iter()
            .filter(|c| c.state.as_deref() == Some("running"))
            .map(|c| stats::container_stats(&self.docker, summary_name(c)));
        let mut all: Vec<ReplicaStats> = join_all(running).await.into_iter().flatten().collect();
        all.sort_by(|a, b| a.replica.cmp(&b.replica));
        Ok(all)
    }

    async fn destroy(&self, app: &AppName) -> BackendResult<()> {
        self.traffic.remove(app.as_str());
        let containers = self.containers(vec![format!("{LABEL_APP}={app}")]).await?;
        every(
            containers
                .iter()
                .filter_map(|c| c.id.as_deref())
                .map(|id| self.force_remove(id)),
        )
        .await?;
        // Their parents too, unless a build may be using them as its cache.
        let no_build = crate::engine::BUILDS.try_write().ok();
        crate::registry::remove_app_images(&self.docker, app, &[], no_build.is_some()).await?;
        let tenants: std::collections::BTreeSet<&String> = containers
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get(LABEL_TENANT))
            .collect();
        for tenant in tenants {
            crate::tenants::remove_network_if_unused(&self.docker, tenant).await;
        }
        tracing::info!(%app, containers = containers.len(), "destroyed the app");
        Ok(())
    }
}

/// Runs every action to its end (one failure does not abandon the others);
/// returns the first error.
async fn every(
    actions: impl IntoIterator<Item = impl Future<Output = BackendResult<()>>>,
) -> BackendResult<()> {
    join_all(actions).await.into_iter().collect()
}

/// `ed-<app>-<first 8 characters of the deployment>-<n>`.
fn container_name(app: &AppName, deployment: &str, index: u32) -> String {
    let short: String = deployment
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("ed-{app}-{short}-{index}")
}

fn summary_name(container: &ContainerSummary) -> String {
    let name = container
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(String::as_str)
        .unwrap_or_default();
    name.trim_start_matches('/').to_owned()
}

/// The bridge address of a listed container (on the network it runs in).
fn summary_addr(container: &ContainerSummary) -> Option<SocketAddr> {
    let port = container.labels.as_ref()?.get(LABEL_PORT)?.parse().ok()?;
    let mode = container.host_config.as_ref()?.network_mode.as_deref()?;
    let networks = container.network_settings.as_ref()?.networks.as_ref()?;
    let ip = networks
        .get(mode)
        .or_else(|| networks.values().next())?
        .ip_address
        .as_deref()?;
    Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port))
}

/// A container's network namespace (its sandbox key), while it runs.
fn namespace(info: &ContainerInspectResponse) -> Option<PathBuf> {
    let key = info.network_settings.as_ref()?.sandbox_key.as_deref()?;
    (!key.is_empty()).then(|| PathBuf::from(key))
}

/// The bridge address of an inspected container, if it has one now.
fn inspect_addr(info: &ContainerInspectResponse, port: u16) -> Option<SocketAddr> {
    let mode = info.host_config.as_ref()?.network_mode.as_deref()?;
    let networks = info.network_settings.as_ref()?.networks.as_ref()?;
    let ip = networks
        .get(mode)
        .or_else(|| networks.values().next())?
        .ip_address
        .as_deref()?;
    if port == 0 {
        return None;
    }
    Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port))
}

/// `3s`, or `1.5s` for fractions.
fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        let app = AppName::parse("shop").unwrap();
        assert_eq!(
            container_name(&app, "3f2a9b1c-7d4e-4f00-9c1a-000000000000", 2),
            "ed-shop-3f2a9b1c-2"
        );
        assert_eq!(container_name(&app, "a-b", 1), "ed-shop-ab-1");
        assert_eq!(seconds(Duration::from_secs(3)), "3s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }
}
