//! The app's ECS service: created or updated per release, marked live when
//! promoted, reverted to its live task definition when a release is discarded.

use super::{EcsRuntime, CONTAINER, TAG_LIVE_TASK_DEFINITION};
use crate::error::err;
use crate::{names, TAG_APP, TAG_DEPLOYMENT, TAG_TENANT};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, LaunchType,
    LoadBalancer, NetworkConfiguration, PropagateTags, Service, Tag,
};
use easydeploy_core::ports::{BackendResult, ReleaseSpec, Runtime};
use easydeploy_core::AppName;
use std::ops::RangeInclusive;

/// The app's service unless missing or deleted.
pub(crate) async fn describe(runtime: &EcsRuntime, app: &AppName) -> BackendResult<Option<Service>> {
    let out = runtime
        .clients
        .ecs
        .describe_services()
        .cluster(&runtime.infra.cluster_name)
        .services(names::service(app.as_str()))
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(err(&format!("look up the ECS service of {app}")))?;
    Ok(out
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .cloned())
}

pub(crate) fn tag<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

pub(crate) async fn create_or_update(
    runtime: &EcsRuntime,
    release: &ReleaseSpec,
    task_definition: &str,
    target_group: &str,
) -> BackendResult<()> {
    let ecs = &runtime.clients.ecs;
    let infra = &runtime.infra;
    let app = release.app.as_str();
    let name = names::service(app);
    let deployment_config = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .minimum_healthy_percent(100)
        .maximum_percent(200)
        .build();
    let grace = release.health.grace.as_secs().min(i32::MAX as u64) as i32;
    if let Some(service) = describe(runtime, &release.app).await? {
        // Keep a count Application Auto Scaling chose while it is in bounds.
        let desired = fit(service.desired_count(), &runtime.replica_bounds(release));
        ecs.update_service()
            .cluster(&infra.cluster_name)
            .service(&name)
            .task_definition(task_definition)
            .desired_count(desired)
            .deployment_configuration(deployment_config)
            .health_check_grace_period_seconds(grace)
            .send()
            .await
            .map_err(err(&format!("update the ECS service of {app}")))?;
        tracing::info!(app, task_definition, "updated the ECS service");
        return Ok(());
    }
    let network = NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(infra.private_subnet_ids.clone()))
                .security_groups(&infra.tasks_security_group_id)
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .map_err(|e| easydeploy_core::ports::BackendError::permanent(e.to_string()))?,
        )
        .build();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    ecs.create_service()
        .cluster(&infra.cluster_name)
        .service_name(&name)
        .task_definition(task_definition)
        .desired_count(release.replicas as i32)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network)
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(target_group)
                .container_name(CONTAINER)
                .container_port(i32::from(release.port.get()))
                .build(),
        )
        .health_check_grace_period_seconds(grace)
        .deployment_configuration(deployment_config)
        .propagate_tags(PropagateTags::TaskDefinition)
        .enable_ecs_managed_tags(true)
        .client_token(names::fit(&format!("{}-{}", release.deployment, app), 36))
        .tags(tag(TAG_APP, app))
        .tags(tag(TAG_TENANT, &release.tenant.id))
        .send()
        .await
        .map_err(err(&format!("create the ECS service of {app}")))?;
    tracing::info!(app, task_definition, "created the ECS service");
    Ok(())
}

/// Records the live task definition and deployment on the service.
pub(crate) async fn mark_live(
    runtime: &EcsRuntime,
    release: &ReleaseSpec,
    task_definition: &str,
) -> BackendResult<()> {
    let Some(service) = describe(runtime, &release.app).await? else {
        return Ok(());
    };
    let arn = service.service_arn().unwrap_or_default();
    runtime
        .clients
        .ecs
        .tag_resource()
        .resource_arn(arn)
        .tags(
            Tag::builder()
                .key(TAG_LIVE_TASK_DEFINITION)
                .value(task_definition)
                .build(),
        )
        .tags(
            Tag::builder()
                .key(TAG_DEPLOYMENT)
                .value(&release.deployment)
                .build(),
        )
        .send()
        .await
        .map_err(err("mark the app's live release"))?;
    Ok(())
}

/// The app of a task definition ARN `.../<prefix>-<app>:<revision>`, found
/// through the task definition's tags.
async fn app_of(runtime: &EcsRuntime, task_definition: &str) -> BackendResult<Option<AppName>> {
    let out = runtime
        .clients
        .ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(err("look up a task definition"))?;
    Ok(out
        .tags()
        .iter()
        .find(|t| t.key() == Some(TAG_APP))
        .and_then(|t| t.value())
        .and_then(|v| AppName::parse(v).ok()))
}

/// Puts the service back on its live task definition (or at zero replicas
/// when it never had one) if it runs `task_definition`, which is then deregistered.
pub(crate) async fn revert(runtime: &EcsRuntime, task_definition: &str) -> BackendResult<()> {
    let Some(app) = app_of(runtime, task_definition).await? else {
        return Ok(());
    };
    if let Some(service) = describe(runtime, &app).await? {
        if service.task_definition() == Some(task_definition) {
            let update = runtime
                .clients
                .ecs
                .update_service()
                .cluster(&runtime.infra.cluster_name)
                .service(names::service(app.as_str()));
            let update = match tag(&service, TAG_LIVE_TASK_DEFINITION) {
                Some(live) => update.task_definition(live),
                None => update.desired_count(0),
            };
            update
                .send()
                .await
                .map_err(err(&format!("put {app} back on its live release")))?;
            tracing::info!(%app, task_definition, "reverted the service to its live release");
        }
    }
    super::task_definition::deregister(runtime, task_definition).await
}

/// Brings the app's `service` (as just described) desired count into
/// `bounds` (the nearest end) unless it is already inside.
pub(crate) async fn fit_desired_count(
    runtime: &EcsRuntime,
    app: &AppName,
    service: &Service,
    bounds: &RangeInclusive<u32>,
) -> BackendResult<()> {
    let desired = fit(service.desired_count(), bounds);
    if service.desired_count() == desired {
        return Ok(());
    }
    runtime
        .clients
        .ecs
        .update_service()
        .cluster(&runtime.infra.cluster_name)
        .service(names::service(app.as_str()))
        .desired_count(desired)
        .send()
        .await
        .map_err(err(&format!("scale the ECS service of {app}")))?;
    tracing::info!(%app, desired, "set the ECS service's desired count");
    Ok(())
}

/// `count` moved into `bounds`.
fn fit(count: i32, bounds: &RangeInclusive<u32>) -> i32 {
    let (low, high) = super::scaling::capacity(bounds);
    count.clamp(low, high)
}

/// Stops one task; one that is already gone is fine.
pub(crate) async fn stop_task(runtime: &EcsRuntime, task: &str) -> BackendResult<()> {
    let stopped = runtime
        .clients
        .ecs
        .stop_task()
        .cluster(&runtime.infra.cluster_name)
        .task(task)
        .reason("replaced by Easy Deploy")
        .send()
        .await;
    match stopped {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                crate::error::code_of(&e),
                Some("InvalidParameterException" | "ResourceNotFoundException")
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(crate::error::aws_error("stop a task", e)),
    }
}

/// After a restart: services running a release that never went live (its
/// deployment is not in `keep`) go back to their live task definition.
pub(crate) async fn revert_unverified(runtime: &EcsRuntime, keep: &[String]) -> BackendResult<usize> {
    let ecs = &runtime.clients.ecs;
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_services()
            .cluster(&runtime.infra.cluster_name)
            .set_next_token(token)
            .send()
            .await
            .map_err(err("list the cluster's services"))?;
        arns.extend(page.service_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut reverted = 0;
    for chunk in arns.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(&runtime.infra.cluster_name)
            .set_services(Some(chunk.to_vec()))
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(err("look up the cluster's services"))?;
        for service in out.services() {
            let (Some(live), Some(deployment), Some(current)) = (
                tag(service, TAG_LIVE_TASK_DEFINITION),
                tag(service, TAG_DEPLOYMENT),
                service.task_definition(),
            ) else {
                continue;
            };
            if current != live && keep.iter().any(|k| k == deployment) {
                revert(runtime, current).await?;
                reverted += 1;
            }
        }
    }
    Ok(reverted)
}
