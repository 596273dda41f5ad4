//! The app's target group (type ip) and its host-header rule on the shared listener.

use super::EcsRuntime;
use crate::error::{aws_error, code_of, err};
use crate::{names, TAG_APP};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, ProtocolEnum, Rule, RuleCondition, Tag,
    TargetTypeEnum,
};
use easydeploy_core::ports::{BackendError, BackendResult, ReleaseSpec};
use easydeploy_core::AppName;

/// The target group of the release's app (created if missing; its health
/// check follows the release's); returns its ARN.
pub(crate) async fn ensure_target_group(
    runtime: &EcsRuntime,
    release: &ReleaseSpec,
) -> BackendResult<String> {
    let elb = &runtime.clients.elb;
    let name = names::target_group(&runtime.infra.prefix, release.app.as_str());
    let health = &release.health;
    let interval = health.interval.as_secs().clamp(5, 300) as i32;
    let timeout = (health.timeout.as_secs().clamp(2, 120) as i32)
        .min(interval - 1)
        .max(2);
    if let Some(arn) = find_target_group(runtime, &release.app).await? {
        elb.modify_target_group()
            .target_group_arn(&arn)
            .health_check_path(&health.path)
            .health_check_interval_seconds(interval)
            .health_check_timeout_seconds(timeout)
            .send()
            .await
            .map_err(err("update the target group's health check"))?;
        return Ok(arn);
    }
    let out = elb
        .create_target_group()
        .name(&name)
        .protocol(ProtocolEnum::Http)
        .port(i32::from(release.port.get()))
        .vpc_id(&runtime.infra.vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .health_check_enabled(true)
        .health_check_path(&health.path)
        .health_check_interval_seconds(interval)
        .health_check_timeout_seconds(timeout)
        .healthy_threshold_count(2)
        .unhealthy_threshold_count(3)
        .matcher(Matcher::builder().http_code("200-399").build())
        .tags(Tag::builder().key(TAG_APP).value(release.app.as_str()).build())
        .send()
        .await
        .map_err(err(&format!("create the target group {name}")))?;
    out.target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .map(str::to_owned)
        .ok_or_else(|| BackendError::transient("ELB created a target group without an ARN"))
}

/// The app's target group ARN, if it exists.
pub(crate) async fn find_target_group(runtime: &EcsRuntime, app: &AppName) -> BackendResult<Option<String>> {
    target_group_arn(&runtime.clients.elb, &runtime.infra.prefix, app.as_str()).await
}

/// The ARN of the target group named after `app`, if it exists.
pub(crate) async fn target_group_arn(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    prefix: &str,
    app: &str,
) -> BackendResult<Option<String>> {
    let name = names::target_group(prefix, app);
    match elb.describe_target_groups().names(&name).send().await {
        Ok(out) => Ok(out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .map(str::to_owned)),
        Err(e) if code_of(&e) == Some("TargetGroupNotFound") => Ok(None),
        Err(e) => Err(aws_error(&format!("look up the target group {name}"), e)),
    }
}

/// The host the app is served at.
pub(crate) fn host(runtime: &EcsRuntime, app: &AppName) -> String {
    format!("{app}.{}", runtime.infra.apps_domain)
}

/// The listener rule routing the app's host, if any.
pub(crate) async fn find_rule(runtime: &EcsRuntime, app: &AppName) -> BackendResult<Option<Rule>> {
    let host = host(runtime, app);
    let rules = all_rules(runtime).await?;
    Ok(rules.into_iter().find(|r| {
        r.conditions()
            .iter()
            .filter_map(|c| c.host_header_config())
            .any(|h| h.values().contains(&host))
    }))
}

async fn all_rules(runtime: &EcsRuntime) -> BackendResult<Vec<Rule>> {
    let mut rules = Vec::new();
    let mut marker = None;
    loop {
        let page = runtime
            .clients
            .elb
            .describe_rules()
            .listener_arn(&runtime.infra.listener_arn)
            .set_marker(marker)
            .send()
            .await
            .map_err(err("list the load balancer's rules"))?;
        rules.extend(page.rules().iter().cloned());
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            return Ok(rules);
        }
    }
}

/// Routes `APP.<apps-domain>` to the target group.
pub(crate) async fn ensure_rule(
    runtime: &EcsRuntime,
    app: &AppName,
    target_group: &str,
) -> BackendResult<String> {
    let elb = &runtime.clients.elb;
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group)
        .build();
    if let Some(rule) = find_rule(runtime, app).await? {
        let arn = rule.rule_arn().unwrap_or_default().to_owned();
        let forwards_here = rule
            .actions()
            .iter()
            .any(|a| a.target_group_arn() == Some(target_group));
        if !forwards_here {
            elb.modify_rule()
                .rule_arn(&arn)
                .actions(forward)
                .send()
                .await
                .map_err(err("point the app's rule at its target group"))?;
        }
        return Ok(arn);
    }
    let taken: Vec<i32> = all_rules(runtime)
        .await?
        .iter()
        .filter_map(|r| r.priority().and_then(|p| p.parse().ok()))
        .collect();
    let priority = (1..=50_000).find(|p| !taken.contains(p)).unwrap_or(50_000);
    let condition = RuleCondition::builder()
        .field("host-header")
        .host_header_config(
            HostHeaderConditionConfig::builder()
                .values(host(runtime, app))
                .build(),
        )
        .build();
    let out = elb
        .create_rule()
        .listener_arn(&runtime.infra.listener_arn)
        .priority(priority)
        .conditions(condition)
        .actions(forward)
        .tags(Tag::builder().key(TAG_APP).value(app.as_str()).build())
        .send()
        .await
        .map_err(err(&format!("route {} to the app", host(runtime, app))))?;
    Ok(out
        .rules()
        .first()
        .and_then(|r| r.rule_arn())
        .unwrap_or_default()
        .to_owned())
}

/// `app/<lb-name>/<id>/targetgroup/<tg-name>/<id>`, the ALBRequestCountPerTarget label.
pub(crate) fn resource_label(load_balancer_arn: &str, target_group_arn: &str) -> String {
    let lb = load_balancer_arn
        .split_once(":loadbalancer/")
        .map_or("", |(_, s)| s);
    let tg = target_group_arn.rsplit_once(':').map_or("", |(_, s)| s);
    format!("{lb}/{tg}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn resource_labels() {
        assert_eq!(
            super::resource_label(
                "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/ed/50dc6c495c0c9188",
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/ed-shop/73e2d6bc24d8a067"
            ),
            "app/ed/50dc6c495c0c9188/targetgroup/ed-shop/73e2d6bc24d8a067"
        );
    }
}
