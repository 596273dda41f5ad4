//! Resource use of the app's service from CloudWatch (ECS CPUUtilization
//! and MemoryUtilization): one entry for the whole service, as CloudWatch
//! has no per-task figures without Container Insights.

use super::EcsRuntime;
use crate::error::err;
use crate::metrics::{read, Query};
use crate::names;
use easydeploy_core::ports::{BackendResult, ReplicaStats};
use easydeploy_core::AppName;
use std::time::{Duration, SystemTime};

/// How far back the latest datapoint is looked for.
const WINDOW: Duration = Duration::from_secs(10 * 60);

pub(crate) async fn service(runtime: &EcsRuntime, app: &AppName) -> BackendResult<Vec<ReplicaStats>> {
    let Some(service) = super::service::describe(runtime, app).await? else {
        return Ok(Vec::new());
    };
    let name = names::service(app.as_str());
    let dimensions = [
        ("ClusterName", runtime.infra.cluster_name.as_str()),
        ("ServiceName", name.as_str()),
    ];
    let query = |id, metric| Query {
        id,
        namespace: "AWS/ECS",
        metric,
        stat: "Average",
        dimensions: &dimensions,
    };
    let now = SystemTime::now();
    let points = read(
        &runtime.clients,
        &[
            query("cpu", "CPUUtilization"),
            query("memory", "MemoryUtilization"),
        ],
        now.checked_sub(WINDOW).unwrap_or(now),
        // A period ahead: datapoints of this very second count.
        now + Duration::from_secs(60),
    )
    .await?;
    let latest = |id: &str| points.get(id).and_then(|p| p.last()).map(|(_, v)| *v);
    let (cpu, memory) = (latest("cpu"), latest("memory"));
    if cpu.is_none() && memory.is_none() {
        return Ok(Vec::new());
    }
    // The utilizations are percentages of the task size.
    let (cpu_units, memory_mib) = match service.task_definition() {
        Some(arn) => {
            let out = runtime
                .clients
                .ecs
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(err("look up the app's task definition"))?;
            let td = out.task_definition();
            let parse = |v: Option<&str>| v.and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (
                parse(td.and_then(|t| t.cpu())),
                parse(td.and_then(|t| t.memory())),
            )
        }
        None => (0.0, 0.0),
    };
    let mib = 1024.0 * 1024.0;
    Ok(vec![ReplicaStats {
        replica: name,
        cpu_percent: cpu.unwrap_or(0.0) * cpu_units / 1024.0,
        memory_bytes: (memory.unwrap_or(0.0) / 100.0 * memory_mib * mib).round() as u64,
        memory_limit_bytes: (memory_mib * mib) as u64,
        net_rx_bytes: 0,
        net_tx_bytes: 0,
    }])
}
