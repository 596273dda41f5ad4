//! The internet-facing ALB with its listeners, and the ECS cluster.

use super::network::Network;
use super::BootstrapOptions;
use crate::clients::AwsClients;
use crate::error::{aws_error, code_of, err};
use crate::TAG_INFRA;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, FixedResponseActionConfig, IpAddressType, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum, Tag,
};
use easydeploy_core::ports::{BackendError, BackendResult};

/// The load balancer part of the infrastructure.
pub(crate) struct LoadBalancer {
    pub arn: String,
    pub dns: String,
    pub listener_arn: String,
    pub http_listener_arn: String,
}

fn not_found() -> BackendResult<Action> {
    Ok(Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code("404")
                .content_type("text/plain")
                .message_body("No app is deployed at this address.")
                .build(),
        )
        .build())
}

pub(crate) async fn ensure_load_balancer(
    clients: &AwsClients,
    options: &BootstrapOptions,
    net: &Network,
) -> BackendResult<LoadBalancer> {
    let elb = &clients.elb;
    let name = crate::names::fit(&options.prefix, 32);
    let found = match elb.describe_load_balancers().names(&name).send().await {
        Ok(out) => out.load_balancers().first().cloned(),
        Err(e) if code_of(&e) == Some("LoadBalancerNotFound") => None,
        Err(e) => return Err(aws_error("look up the load balancer", e)),
    };
    let lb = match found {
        Some(lb) => lb,
        None => {
            let out = elb
                .create_load_balancer()
                .name(&name)
                .set_subnets(Some(net.public_subnets.clone()))
                .security_groups(&net.alb_sg)
                .scheme(LoadBalancerSchemeEnum::InternetFacing)
                .r#type(LoadBalancerTypeEnum::Application)
                .ip_address_type(IpAddressType::Ipv4)
                .tags(Tag::builder().key(TAG_INFRA).value(&options.prefix).build())
                .send()
                .await
                .map_err(err("create the load balancer"))?;
            tracing::info!(name, "created the load balancer");
            out.load_balancers()
                .first()
                .cloned()
                .ok_or_else(|| BackendError::transient("ELB created no load balancer"))?
        }
    };
    let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
    let dns = lb.dns_name().unwrap_or_default().to_owned();

    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&arn)
        .send()
        .await
        .map_err(err("look up the load balancer's listeners"))?;
    let on_port = |port: i32| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(port))
            .and_then(|l| l.listener_arn())
            .map(str::to_owned)
    };
    let https = match (&options.certificate_arn, on_port(443)) {
        (_, Some(existing)) => Some(existing),
        (Some(certificate), None) => {
            let out = elb
                .create_listener()
                .load_balancer_arn(&arn)
                .protocol(ProtocolEnum::Https)
                .port(443)
                .certificates(Certificate::builder().certificate_arn(certificate).build())
                .default_actions(not_found()?)
                .send()
                .await
                .map_err(err("create the HTTPS listener"))?;
            out.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .map(str::to_owned)
        }
        (None, None) => None,
    };
    let http = match on_port(80) {
        Some(existing) => existing,
        None => {
            let action = if https.is_some() {
                Action::builder()
                    .r#type(ActionTypeEnum::Redirect)
                    .redirect_config(
                        RedirectActionConfig::builder()
                            .protocol("HTTPS")
                            .port("443")
                            .status_code(RedirectActionStatusCodeEnum::Http301)
                            .build(),
                    )
                    .build()
            } else {
                not_found()?
            };
            let out = elb
                .create_listener()
                .load_balancer_arn(&arn)
                .protocol(ProtocolEnum::Http)
                .port(80)
                .default_actions(action)
                .send()
                .await
                .map_err(err("create the HTTP listener"))?;
            out.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .unwrap_or_default()
                .to_owned()
        }
    };
    Ok(LoadBalancer {
        arn,
        dns,
        listener_arn: https.unwrap_or_else(|| http.clone()),
        http_listener_arn: http,
    })
}

pub(crate) async fn ensure_cluster(clients: &AwsClients, prefix: &str) -> BackendResult<String> {
    let ecs = &clients.ecs;
    let found = ecs
        .describe_clusters()
        .clusters(prefix)
        .send()
        .await
        .map_err(err("look up the ECS cluster"))?;
    if found.clusters().iter().any(|c| c.status() == Some("ACTIVE")) {
        return Ok(prefix.to_owned());
    }
    ecs.create_cluster()
        .cluster_name(prefix)
        .capacity_providers("FARGATE")
        .capacity_providers("FARGATE_SPOT")
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(TAG_INFRA)
                .value(prefix)
                .build(),
        )
        .settings(
            aws_sdk_ecs::types::ClusterSetting::builder()
                .name(aws_sdk_ecs::types::ClusterSettingName::ContainerInsights)
                .value("enabled")
                .build(),
        )
        .send()
        .await
        .map_err(err("create the ECS cluster"))?;
    tracing::info!(cluster = prefix, "created the ECS cluster");
    Ok(prefix.to_owned())
}
