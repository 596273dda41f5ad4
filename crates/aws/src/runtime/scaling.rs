//! Application Auto Scaling of a service's DesiredCount: a scalable target
//! and target-tracking policies on CPU and requests per replica.

use super::EcsRuntime;
use crate::error::{aws_error, code_of, err};
use aws_sdk_applicationautoscaling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use easydeploy_core::ports::{BackendError, BackendResult, ReleaseSpec, Runtime};
use easydeploy_core::AppName;
use std::ops::RangeInclusive;

pub(crate) fn resource_id(runtime: &EcsRuntime, app: &AppName) -> String {
    format!(
        "service/{}/{}",
        runtime.infra.cluster_name,
        crate::names::service(app.as_str())
    )
}

pub(crate) fn policy_names(app: &AppName) -> [String; 2] {
    [format!("{app}-cpu"), format!("{app}-requests")]
}

/// Scales the app within [`Runtime::replica_bounds`]: towards the CPU
/// target and the requests per replica of the app's policy (per second,
/// ×60 for the ALB's per-minute count) or the platform's default.
pub(crate) async fn ensure(
    runtime: &EcsRuntime,
    release: &ReleaseSpec,
    target_group: &str,
) -> BackendResult<()> {
    let aas = &runtime.clients.autoscaling;
    let app = &release.app;
    let resource = resource_id(runtime, app);
    let bounds = runtime.replica_bounds(release);
    let (min, max) = capacity(&bounds);
    let requests_per_minute = release
        .autoscale
        .map_or(runtime.settings.target_requests_per_replica, |p| {
            p.target_rps * 60.0
        });
    aas.register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(&resource)
        .min_capacity(min)
        .max_capacity(max)
        .send()
        .await
        .map_err(err("register the app's auto-scaling target"))?;
    let [cpu_name, requests_name] = policy_names(app);
    let label = super::routing::resource_label(&runtime.infra.load_balancer_arn, target_group);
    let policies = [
        (
            cpu_name,
            MetricType::EcsServiceAverageCpuUtilization,
            None,
            runtime.settings.target_cpu_percent,
        ),
        (
            requests_name,
            MetricType::AlbRequestCountPerTarget,
            Some(label),
            requests_per_minute,
        ),
    ];
    for (name, metric, label, target) in policies {
        let spec = PredefinedMetricSpecification::builder()
            .predefined_metric_type(metric)
            .set_resource_label(label)
            .build()
            .map_err(|e| BackendError::permanent(e.to_string()))?;
        let config = TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(target)
            .predefined_metric_specification(spec)
            .scale_in_cooldown(300)
            .scale_out_cooldown(60)
            .build()
            .map_err(|e| BackendError::permanent(e.to_string()))?;
        aas.put_scaling_policy()
            .policy_name(&name)
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(&resource)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(config)
            .send()
            .await
            .map_err(err(&format!("put the scaling policy {name}")))?;
    }
    Ok(())
}

/// `bounds` as the (min, max) capacity AWS takes: i32, max never below min.
pub(crate) fn capacity(bounds: &RangeInclusive<u32>) -> (i32, i32) {
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let min = count(*bounds.start());
    (min, count(*bounds.end()).max(min))
}

/// Removes the policies and the scalable target; absent is fine.
pub(crate) async fn remove(runtime: &EcsRuntime, app: &AppName) -> BackendResult<()> {
    let aas = &runtime.clients.autoscaling;
    let resource = resource_id(runtime, app);
    for name in policy_names(app) {
        let deleted = aas
            .delete_scaling_policy()
            .policy_name(&name)
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(&resource)
            .send()
            .await;
        match deleted {
            Ok(_) => {}
            Err(e) if absent(&e) => {}
            Err(e) => return Err(aws_error(&format!("delete the scaling policy {name}"), e)),
        }
    }
    let deregistered = aas
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(&resource)
        .send()
        .await;
    match deregistered {
        Ok(_) => Ok(()),
        Err(e) if absent(&e) => Ok(()),
        Err(e) => Err(aws_error("deregister the app's auto-scaling target", e)),
    }
}

/// Whether the policy or target does not exist (AWS says ObjectNotFound;
/// some implementations a ValidationException naming it).
fn absent<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    match code_of(e) {
        Some("ObjectNotFoundException") => true,
        Some("ValidationException") => {
            let message = match e {
                SdkError::ServiceError(s) => s.err().message().unwrap_or_default().to_ascii_lowercase(),
                _ => String::new(),
            };
            message.contains("no scaling policy found") || message.contains("no scalable target")
        }
        _ => false,
    }
}
