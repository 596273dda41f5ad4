//! Removing an app, in an order that never leaves a dangling reference:
//! listener rule → scaling → service → target group → task definitions →
//! CodeBuild project → ECR repository → sources and logs → tenant (with its last app).

use super::{service, EcsRuntime};
use crate::error::{aws_error, code_of, err};
use crate::{names, TAG_TENANT};
use easydeploy_core::ports::BackendResult;
use easydeploy_core::AppName;

pub(crate) async fn app(runtime: &EcsRuntime, app: &AppName) -> BackendResult<()> {
    let clients = &runtime.clients;
    let infra = &runtime.infra;
    if let Some(rule) = super::routing::find_rule(runtime, app).await? {
        clients
            .elb
            .delete_rule()
            .rule_arn(rule.rule_arn().unwrap_or_default())
            .send()
            .await
            .map_err(err("remove the app's load balancer rule"))?;
    }
    super::scaling::remove(runtime, app).await?;

    let existing = service::describe(runtime, app).await?;
    let tenant = existing
        .as_ref()
        .and_then(|s| service::tag(s, TAG_TENANT))
        .unwrap_or("default")
        .to_owned();
    if existing.is_some() {
        let name = names::service(app.as_str());
        clients
            .ecs
            .update_service()
            .cluster(&infra.cluster_name)
            .service(&name)
            .desired_count(0)
            .send()
            .await
            .map_err(err("scale the app's service to zero"))?;
        match clients
            .ecs
            .delete_service()
            .cluster(&infra.cluster_name)
            .service(&name)
            .force(true)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some("ServiceNotFoundException") => {}
            Err(e) => return Err(aws_error("delete the app's ECS service", e)),
        }
    }
    if let Some(target_group) = super::routing::find_target_group(runtime, app).await? {
        clients
            .elb
            .delete_target_group()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(err("delete the app's target group"))?;
    }
    for arn in super::task_definition::list(runtime, app).await? {
        super::task_definition::deregister(runtime, &arn).await?;
    }
    let project = names::app_resource(&infra.prefix, app.as_str());
    match clients.codebuild.delete_project().name(&project).send().await {
        Ok(_) => {}
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {}
        Err(e) => return Err(aws_error("delete the app's CodeBuild project", e)),
    }
    runtime.registry.delete_repository(app.as_str()).await?;
    crate::artifacts::delete_prefix(
        clients,
        &infra.bucket,
        &names::sources_prefix(&tenant, app.as_str()),
    )
    .await?;
    let group = names::app_log_group(&infra.prefix, app.as_str());
    match clients
        .logs
        .delete_log_group()
        .log_group_name(&group)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {}
        Err(e) => return Err(aws_error("delete the app's log group", e)),
    }
    if !tenant_has_apps(runtime, &tenant).await? {
        runtime.tenants.remove(&tenant).await?;
    }
    tracing::info!(%app, "removed the app from AWS");
    Ok(())
}

/// Whether any service in the cluster still belongs to `tenant`.
async fn tenant_has_apps(runtime: &EcsRuntime, tenant: &str) -> BackendResult<bool> {
    let ecs = &runtime.clients.ecs;
    let mut token = None;
    loop {
        let page = ecs
            .list_services()
            .cluster(&runtime.infra.cluster_name)
            .set_next_token(token)
            .send()
            .await
            .map_err(err("list the cluster's services"))?;
        for chunk in page.service_arns().chunks(10) {
            let out = ecs
                .describe_services()
                .cluster(&runtime.infra.cluster_name)
                .set_services(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .map_err(err("look up the cluster's services"))?;
            if out
                .services()
                .iter()
                .filter(|s| s.status() == Some("ACTIVE"))
                .any(|s| service::tag(s, TAG_TENANT) == Some(tenant))
            {
                return Ok(true);
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(false);
        }
    }
}
