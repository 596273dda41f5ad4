//! The artifacts bucket (versioned, encrypted, private) and the EFS file
//! system with a mount target per private subnet.

use super::network::Network;
use crate::clients::AwsClients;
use crate::error::{aws_error, built, code_of, err};
use crate::TAG_INFRA;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use easydeploy_core::ports::{BackendError, BackendResult};
use std::time::Duration;

pub(crate) async fn ensure_bucket(
    clients: &AwsClients,
    prefix: &str,
    bucket: &str,
    region: &str,
) -> BackendResult<()> {
    let s3 = &clients.s3;
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e) if matches!(code_of(&e), Some("NotFound" | "NoSuchBucket")) || is_404(&e) => {
            let mut create = s3.create_bucket().bucket(bucket);
            if region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            match create.send().await {
                Ok(_) => tracing::info!(bucket, "created the artifacts bucket"),
                Err(e) if code_of(&e) == Some("BucketAlreadyOwnedByYou") => {}
                Err(e) => return Err(aws_error(&format!("create the bucket {bucket}"), e)),
            }
        }
        Err(e) => return Err(aws_error(&format!("look up the bucket {bucket}"), e)),
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(err("turn on the bucket's versioning"))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(built(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build(),
        )?)
        .build();
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(built(
            ServerSideEncryptionConfiguration::builder().rules(rule).build(),
        )?)
        .send()
        .await
        .map_err(err("turn on the bucket's encryption"))?;
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(err("block public access to the bucket"))?;
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(built(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(built(
                    aws_sdk_s3::types::Tag::builder()
                        .key(TAG_INFRA)
                        .value(prefix)
                        .build(),
                )?)
                .build(),
        )?)
        .send()
        .await
        .map_err(err("tag the bucket"))?;
    Ok(())
}

fn is_404<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

pub(crate) async fn ensure_file_system(
    clients: &AwsClients,
    prefix: &str,
    net: &Network,
) -> BackendResult<(String, Vec<String>)> {
    let efs = &clients.efs;
    let found = efs
        .describe_file_systems()
        .creation_token(prefix)
        .send()
        .await
        .map_err(err("look up the EFS file system"))?;
    let id = match found.file_systems().first() {
        Some(fs) => fs.file_system_id().to_owned(),
        None => {
            let fs = efs
                .create_file_system()
                .creation_token(prefix)
                .encrypted(true)
                .performance_mode(aws_sdk_efs::types::PerformanceMode::GeneralPurpose)
                .tags(built(
                    aws_sdk_efs::types::Tag::builder()
                        .key(TAG_INFRA)
                        .value(prefix)
                        .build(),
                )?)
                .tags(built(
                    aws_sdk_efs::types::Tag::builder()
                        .key("Name")
                        .value(format!("{prefix}-workspaces"))
                        .build(),
                )?)
                .send()
                .await
                .map_err(err("create the EFS file system"))?;
            tracing::info!(file_system = fs.file_system_id(), "created the EFS file system");
            fs.file_system_id().to_owned()
        }
    };
    wait_available(clients, &id).await?;
    let targets = efs
        .describe_mount_targets()
        .file_system_id(&id)
        .send()
        .await
        .map_err(err("look up the EFS mount targets"))?;
    let mut ids = Vec::new();
    for subnet in &net.private_subnets {
        if let Some(t) = targets.mount_targets().iter().find(|t| t.subnet_id() == subnet) {
            ids.push(t.mount_target_id().to_owned());
            continue;
        }
        let target = efs
            .create_mount_target()
            .file_system_id(&id)
            .subnet_id(subnet)
            .security_groups(&net.efs_sg)
            .send()
            .await
            .map_err(err("create an EFS mount target"))?;
        ids.push(target.mount_target_id().to_owned());
    }
    Ok((id, ids))
}

/// Mount targets need the file system available: wait for it, at most 2 minutes.
async fn wait_available(clients: &AwsClients, id: &str) -> BackendResult<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let out = clients
            .efs
            .describe_file_systems()
            .file_system_id(id)
            .send()
            .await
            .map_err(err("look up the EFS file system"))?;
        let state = out
            .file_systems()
            .first()
            .map(|f| f.life_cycle_state().as_str().to_owned());
        if state.as_deref() == Some("available") {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BackendError::transient(format!(
                "the EFS file system {id} is still {} after 2 minutes",
                state.unwrap_or_else(|| "missing".into())
            )));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
