//! The app's replicas: its service's tasks and their target health.

use super::EcsRuntime;
use crate::error::err;
use crate::{names, TAG_DEPLOYMENT};
use easydeploy_core::ports::{BackendResult, ReplicaStatus};
use easydeploy_core::AppName;
use std::collections::HashMap;

pub(crate) async fn replicas(runtime: &EcsRuntime, app: &AppName) -> BackendResult<Vec<ReplicaStatus>> {
    let ecs = &runtime.clients.ecs;
    if super::service::describe(runtime, app).await?.is_none() {
        return Ok(Vec::new());
    }
    let tasks = ecs
        .list_tasks()
        .cluster(&runtime.infra.cluster_name)
        .service_name(names::service(app.as_str()))
        .send()
        .await
        .map_err(err("list the app's tasks"))?;
    if tasks.task_arns().is_empty() {
        return Ok(Vec::new());
    }
    let described = ecs
        .describe_tasks()
        .cluster(&runtime.infra.cluster_name)
        .set_tasks(Some(tasks.task_arns().to_vec()))
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .map_err(err("look up the app's tasks"))?;
    let health = target_health(runtime, app).await?;
    Ok(described
        .tasks()
        .iter()
        .map(|task| {
            let arn = task.task_arn().unwrap_or_default();
            let ip = task
                .attachments()
                .iter()
                .flat_map(|a| a.details())
                .find(|d| d.name() == Some("privateIPv4Address"))
                .and_then(|d| d.value())
                .map(str::to_owned);
            let healthy = match ip.as_ref().and_then(|ip| health.get(ip)) {
                Some(state) => state == "healthy",
                None => task.health_status().map(|h| h.as_str()) == Some("HEALTHY"),
            };
            ReplicaStatus {
                id: arn.to_owned(),
                name: arn.rsplit('/').next().unwrap_or(arn).to_owned(),
                deployment: task
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(TAG_DEPLOYMENT))
                    .and_then(|t| t.value())
                    .unwrap_or_default()
                    .to_owned(),
                state: task.last_status().unwrap_or("unknown").to_ascii_lowercase(),
                healthy,
                restarts: 0,
                addr: ip.map(|ip| format!("{ip}:{}", task_port(task).unwrap_or(0))),
            }
        })
        .collect())
}

fn task_port(task: &aws_sdk_ecs::types::Task) -> Option<i32> {
    task.containers()
        .iter()
        .flat_map(|c| c.network_bindings())
        .find_map(|b| b.container_port())
}

/// Target health by target IP.
async fn target_health(runtime: &EcsRuntime, app: &AppName) -> BackendResult<HashMap<String, String>> {
    let Some(target_group) = super::routing::find_target_group(runtime, app).await? else {
        return Ok(HashMap::new());
    };
    let out = runtime
        .clients
        .elb
        .describe_target_health()
        .target_group_arn(target_group)
        .send()
        .await
        .map_err(err("read the app's target health"))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let ip = d.target().and_then(|t| t.id()).map(str::to_owned)?;
            let state = d
                .target_health()
                .and_then(|h| h.state())
                .map(|s| s.as_str().to_owned())?;
            Some((ip, state))
        })
        .collect())
}
