//! `easydeploy aws bootstrap`: creates the shared infrastructure, idempotently
//! (every resource is looked up by its name or `easydeploy:*` tags before it
//! is created), and returns its IDs.

mod cluster;
mod network;
mod roles;
mod storage;

use crate::clients::AwsClients;
use crate::error::err;
use crate::infra::Infrastructure;
use easydeploy_core::ports::BackendResult;

/// What to bootstrap.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Prefix of every shared resource's name and its `easydeploy:infrastructure` tag.
    pub prefix: String,
    /// Apps are served at `APP.<apps_domain>`.
    pub apps_domain: String,
    /// CIDR block of the VPC (a /16; subnets are /20s inside it).
    pub vpc_cidr: String,
    /// ACM certificate for an HTTPS listener (HTTP then redirects to it).
    pub certificate_arn: Option<String>,
    /// Bucket name; defaults to `<prefix>-artifacts-<account>-<region>`.
    pub bucket: Option<String>,
    /// Create a NAT gateway so tasks in the private subnets reach ECR and the internet.
    pub nat_gateway: bool,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            prefix: "easydeploy".into(),
            apps_domain: "localhost".into(),
            vpc_cidr: "10.0.0.0/16".into(),
            certificate_arn: None,
            bucket: None,
            nat_gateway: true,
        }
    }
}

/// Creates whatever is missing of the shared infrastructure and returns the
/// IDs of all of it; running it again changes nothing.
pub async fn bootstrap(clients: &AwsClients, options: &BootstrapOptions) -> BackendResult<Infrastructure> {
    let prefix = options.prefix.as_str();
    let region = clients.region();
    let net = network::ensure(clients, options).await?;
    let alb = cluster::ensure_load_balancer(clients, options, &net).await?;
    let cluster_name = cluster::ensure_cluster(clients, prefix).await?;
    let bucket = match &options.bucket {
        Some(bucket) => bucket.clone(),
        None => {
            let identity = clients
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(err("read the AWS account id"))?;
            format!(
                "{prefix}-artifacts-{}-{region}",
                identity.account().unwrap_or("account")
            )
        }
    };
    storage::ensure_bucket(clients, prefix, &bucket, &region).await?;
    let (file_system_id, mount_target_ids) = storage::ensure_file_system(clients, prefix, &net).await?;
    let codebuild_role_arn = roles::ensure_codebuild_role(clients, prefix, &bucket).await?;
    let execution_role_arn = roles::ensure_execution_role(clients, prefix).await?;
    let infra = Infrastructure {
        prefix: prefix.to_owned(),
        region,
        apps_domain: options.apps_domain.clone(),
        vpc_id: net.vpc_id,
        public_subnet_ids: net.public_subnets,
        private_subnet_ids: net.private_subnets,
        alb_security_group_id: net.alb_sg,
        tasks_security_group_id: net.tasks_sg,
        efs_security_group_id: net.efs_sg,
        load_balancer_arn: alb.arn,
        load_balancer_dns: alb.dns,
        listener_arn: alb.listener_arn,
        http_listener_arn: alb.http_listener_arn,
        cluster_name,
        bucket,
        file_system_id,
        mount_target_ids,
        codebuild_role_arn,
        execution_role_arn,
    };
    tracing::info!(prefix, vpc = %infra.vpc_id, alb = %infra.load_balancer_dns, "AWS infrastructure ready");
    Ok(infra)
}

pub(crate) use roles::ensure_role as ensure_role_public;
