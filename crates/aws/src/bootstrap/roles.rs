//! The CodeBuild service role and the ECS task execution role.

use crate::clients::AwsClients;
use crate::error::{aws_error, built, code_of, err};
use crate::TAG_INFRA;
use easydeploy_core::ports::BackendResult;

const EXECUTION_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

/// A role `name` that `service` (`ecs-tasks.amazonaws.com`) may assume,
/// created if missing; returns its ARN.
pub(crate) async fn ensure_role(
    clients: &AwsClients,
    name: &str,
    service: &str,
    tags: &[(&str, &str)],
) -> BackendResult<String> {
    let iam = &clients.iam;
    match iam.get_role().role_name(name).send().await {
        Ok(out) => return Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default()),
        Err(e) if code_of(&e) == Some("NoSuchEntity") => {}
        Err(e) => return Err(aws_error(&format!("look up the IAM role {name}"), e)),
    }
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    });
    let mut create = iam
        .create_role()
        .role_name(name)
        .path("/easydeploy/")
        .assume_role_policy_document(trust.to_string());
    for (key, value) in tags {
        create = create.tags(built(
            aws_sdk_iam::types::Tag::builder().key(*key).value(*value).build(),
        )?);
    }
    match create.send().await {
        Ok(out) => {
            tracing::info!(role = name, "created an IAM role");
            Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
        }
        Err(e) if code_of(&e) == Some("EntityAlreadyExists") => {
            let out = iam
                .get_role()
                .role_name(name)
                .send()
                .await
                .map_err(err("look up an IAM role"))?;
            Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
        }
        Err(e) => Err(aws_error(&format!("create the IAM role {name}"), e)),
    }
}

pub(crate) async fn ensure_execution_role(clients: &AwsClients, prefix: &str) -> BackendResult<String> {
    let name = format!("{prefix}-task-execution");
    let arn = ensure_role(clients, &name, "ecs-tasks.amazonaws.com", &[(TAG_INFRA, prefix)]).await?;
    // Attaching twice is a no-op.
    clients
        .iam
        .attach_role_policy()
        .role_name(&name)
        .policy_arn(EXECUTION_POLICY)
        .send()
        .await
        .map_err(err("attach the ECS task execution policy"))?;
    Ok(arn)
}

pub(crate) async fn ensure_codebuild_role(
    clients: &AwsClients,
    prefix: &str,
    bucket: &str,
) -> BackendResult<String> {
    let name = format!("{prefix}-codebuild");
    let arn = ensure_role(clients, &name, "codebuild.amazonaws.com", &[(TAG_INFRA, prefix)]).await?;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketLocation"],
             "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]},
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {"Effect": "Allow", "Action": [
                "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
                "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite",
                "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
                "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeDhcpOptions", "ec2:DescribeVpcs",
                "ec2:CreateNetworkInterfacePermission"],
             "Resource": "*"}
        ]
    });
    clients
        .iam
        .put_role_policy()
        .role_name(&name)
        .policy_name("easydeploy-codebuild")
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(err("give the CodeBuild role its permissions"))?;
    Ok(arn)
}
