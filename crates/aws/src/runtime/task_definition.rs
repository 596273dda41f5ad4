//! Task definition revisions: one per release.

use super::{EcsRuntime, CONTAINER};
use crate::error::{built, err};
use crate::{names, TAG_APP, TAG_DEPLOYMENT, TAG_TENANT};
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, KeyValuePair, LogConfiguration, LogDriver, NetworkMode, PortMapping,
    TaskDefinitionStatus, TransportProtocol,
};
use easydeploy_core::ports::{BackendError, BackendResult, Limits, ReleaseSpec};
use easydeploy_core::AppName;

/// Fargate's CPU units and memory (MiB) nearest above the limits.
pub(crate) fn fargate_size(limits: &Limits) -> (i32, i32) {
    let wanted_cpu = (limits.millicpus.max(1) * 1024 + 999) / 1000;
    let cpu = [256, 512, 1024, 2048, 4096]
        .into_iter()
        .find(|c| *c >= wanted_cpu)
        .unwrap_or(4096) as i32;
    let (min, max) = match cpu {
        256 => (512, 2048),
        512 => (1024, 4096),
        1024 => (2048, 8192),
        2048 => (4096, 16384),
        _ => (8192, 30720),
    };
    let wanted = (limits.memory_bytes.max(1) as u64).div_ceil(1024 * 1024) as i32;
    let memory = if cpu == 256 && wanted <= 512 {
        512
    } else {
        ((wanted + 1023) / 1024 * 1024).clamp(min, max)
    };
    (cpu, memory)
}

/// Registers the release's task definition; returns its ARN.
pub(crate) async fn register(runtime: &EcsRuntime, release: &ReleaseSpec) -> BackendResult<String> {
    let infra = &runtime.infra;
    let app = release.app.as_str();
    let group = names::app_log_group(&infra.prefix, app);
    crate::builder::ensure_log_group(&runtime.clients, &group).await?;
    let task_role = runtime.tenants.task_role(&release.tenant.id).await?;
    let port = i32::from(release.port.get());

    let mut env = vec![KeyValuePair::builder()
        .name("PORT")
        .value(port.to_string())
        .build()];
    for var in &release.env {
        env.push(KeyValuePair::builder().name(&var.name).value(&var.value).build());
    }
    let logs = built(
        LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .options("awslogs-group", &group)
            .options("awslogs-region", &infra.region)
            .options("awslogs-stream-prefix", CONTAINER)
            .build(),
    )?;
    let container = ContainerDefinition::builder()
        .name(CONTAINER)
        .image(&release.image)
        .essential(true)
        .port_mappings(
            PortMapping::builder()
                .container_port(port)
                .protocol(TransportProtocol::Tcp)
                .name("http")
                .build(),
        )
        .set_environment(Some(env))
        .log_configuration(logs)
        .build();
    let (cpu, memory) = fargate_size(&release.limits);
    let tag = |k: &str, v: &str| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build();
    let out = runtime
        .clients
        .ecs
        .register_task_definition()
        .family(names::app_resource(&infra.prefix, app))
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu(cpu.to_string())
        .memory(memory.to_string())
        .execution_role_arn(&infra.execution_role_arn)
        .task_role_arn(task_role)
        .container_definitions(container)
        .tags(tag(TAG_APP, app))
        .tags(tag(TAG_TENANT, &release.tenant.id))
        .tags(tag(TAG_DEPLOYMENT, &release.deployment))
        .send()
        .await
        .map_err(err(&format!("register the task definition of {app}")))?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned)
        .ok_or_else(|| BackendError::transient("ECS registered a task definition without an ARN"))
}

/// ARNs of the app's active task definitions, oldest first.
pub(crate) async fn list(runtime: &EcsRuntime, app: &AppName) -> BackendResult<Vec<String>> {
    let family = names::app_resource(&runtime.infra.prefix, app.as_str());
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = runtime
            .clients
            .ecs
            .list_task_definitions()
            .family_prefix(&family)
            .status(TaskDefinitionStatus::Active)
            .set_next_token(token)
            .send()
            .await
            .map_err(err("list the app's task definitions"))?;
        // The family prefix also matches longer families (`shop` and `shop-api`).
        arns.extend(
            page.task_definition_arns()
                .iter()
                .filter(|a| {
                    a.rsplit_once(':')
                        .is_some_and(|(f, _)| f.ends_with(&format!("/{family}")))
                })
                .cloned(),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    arns.sort_by_key(|a| super::revision_of(a).parse::<u64>().unwrap_or(0));
    Ok(arns)
}

/// Deregisters revisions older than the last few (kept for rollbacks).
pub(crate) async fn deregister_old(runtime: &EcsRuntime, app: &AppName, current: &str) -> BackendResult<()> {
    let arns = list(runtime, app).await?;
    let keep = runtime.settings.keep_revisions;
    let excess = arns.len().saturating_sub(keep);
    for arn in arns.iter().take(excess).filter(|a| a.as_str() != current) {
        deregister(runtime, arn).await?;
    }
    Ok(())
}

pub(crate) async fn deregister(runtime: &EcsRuntime, arn: &str) -> BackendResult<()> {
    runtime
        .clients
        .ecs
        .deregister_task_definition()
        .task_definition(arn)
        .send()
        .await
        .map_err(err("deregister an old task definition"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_up_to_fargate_sizes() {
        let mib = 1024 * 1024;
        assert_eq!(
            fargate_size(&Limits {
                memory_bytes: 512 * mib,
                millicpus: 250
            }),
            (256, 512)
        );
        assert_eq!(
            fargate_size(&Limits {
                memory_bytes: 512 * mib,
                millicpus: 1000
            }),
            (1024, 2048)
        );
        assert_eq!(
            fargate_size(&Limits {
                memory_bytes: 3000 * mib,
                millicpus: 500
            }),
            (512, 3072)
        );
        assert_eq!(
            fargate_size(&Limits {
                memory_bytes: 64000 * mib,
                millicpus: 8000
            }),
            (4096, 30720)
        );
    }
}
