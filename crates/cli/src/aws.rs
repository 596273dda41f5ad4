//! `easydeploy aws ...` and the AWS backends of `easydeploy server --runtime aws`.

use anyhow::Context;
use easydeploy_aws::{AccessKeyCipher, AwsClients, AwsConfig, BootstrapOptions, Infrastructure, Workspace};
use easydeploy_core::ports::{Backends, LoadMetrics};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the infrastructure file in the data dir.
pub const INFRASTRUCTURE_FILE: &str = "aws-infrastructure.json";

/// `easydeploy aws` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AwsCommand {
    /// Create (idempotently) the shared AWS infrastructure, or adopt the Terraform module's.
    Bootstrap(BootstrapArgs),
}

/// `easydeploy aws bootstrap` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BootstrapArgs {
    /// Where the infrastructure's IDs are stored (`aws-infrastructure.json`).
    #[arg(long, env = "EASYDEPLOY_DATA_DIR", default_value = ".easydeploy")]
    pub data_dir: PathBuf,
    /// Apps are served at `APP.<apps-domain>`.
    #[arg(long, env = "EASYDEPLOY_APPS_DOMAIN", default_value = "localhost")]
    pub apps_domain: String,
    /// Prefix of the shared resources' names.
    #[arg(long, env = "EASYDEPLOY_AWS_PREFIX", default_value = "easydeploy")]
    pub prefix: String,
    /// ACM certificate for an HTTPS listener.
    #[arg(long, env = "EASYDEPLOY_AWS_CERTIFICATE_ARN")]
    pub certificate_arn: Option<String>,
    /// Bucket name (default `<prefix>-artifacts-<account>-<region>`).
    #[arg(long, env = "EASYDEPLOY_AWS_BUCKET")]
    pub bucket: Option<String>,
    /// CIDR block of the VPC (a /16).
    #[arg(long, default_value = "10.0.0.0/16")]
    pub vpc_cidr: String,
    /// Don't create a NAT gateway (tasks then need VPC endpoints to reach ECR).
    #[arg(long)]
    pub no_nat_gateway: bool,
    /// Adopt the infrastructure of `terraform output -json` (deploy/terraform) instead.
    #[arg(long, value_name = "OUTPUTS_JSON")]
    pub from_terraform: Option<PathBuf>,
}

/// `easydeploy server` settings of `--runtime aws`.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsServerArgs {
    /// Where build contexts go: `s3` (zipped, CodeBuild S3 source) or `efs`
    /// (copied to the bootstrap's EFS file system, mounted at `--efs-path`).
    #[arg(long, env = "EASYDEPLOY_WORKSPACE", default_value = "s3", value_parser = ["s3", "efs"])]
    pub workspace: String,
    /// Where the bootstrap's EFS file system is mounted on this machine (`--workspace efs`).
    #[arg(long, env = "EASYDEPLOY_EFS_PATH", default_value = "/mnt/easydeploy-efs")]
    pub efs_path: PathBuf,
}

impl Default for AwsServerArgs {
    fn default() -> Self {
        Self {
            workspace: "s3".into(),
            efs_path: PathBuf::from("/mnt/easydeploy-efs"),
        }
    }
}

/// Runs an `easydeploy aws` subcommand.
pub async fn run(command: AwsCommand) -> anyhow::Result<()> {
    match command {
        AwsCommand::Bootstrap(args) => bootstrap(args).await,
    }
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let infra = match &args.from_terraform {
        Some(path) => {
            let json = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Infrastructure::from_terraform_outputs(&json)?
        }
        None => {
            let config = AwsConfig {
                apps_domain: args.apps_domain.clone(),
                prefix: args.prefix.clone(),
                ..AwsConfig::from_env()
            };
            let clients = AwsClients::connect(&config).await;
            let options = BootstrapOptions {
                prefix: args.prefix.clone(),
                apps_domain: args.apps_domain.clone(),
                vpc_cidr: args.vpc_cidr.clone(),
                certificate_arn: args.certificate_arn.clone(),
                bucket: args.bucket.clone(),
                nat_gateway: !args.no_nat_gateway,
            };
            easydeploy_aws::bootstrap(&clients, &options).await?
        }
    };
    let path = args.data_dir.join(INFRASTRUCTURE_FILE);
    infra.save(&path)?;
    println!("{}", serde_json::to_string_pretty(&infra)?);
    eprintln!(
        "stored in {}; point *.{} at {}",
        path.display(),
        infra.apps_domain,
        infra.load_balancer_dns
    );
    Ok(())
}

/// The engine's backends for `--runtime aws` and the apps' traffic (ALB
/// metrics): the infrastructure from `<data-dir>/aws-infrastructure.json`,
/// region/credentials/endpoint from the AWS environment, tenants' access keys
/// encrypted with `EASYDEPLOY_AWS_SECRET_KEY` (64 hex digits) when set.
pub async fn backends(
    data_dir: &Path,
    apps_domain: &str,
    args: &AwsServerArgs,
) -> anyhow::Result<(Backends, Arc<dyn LoadMetrics>)> {
    let infra = Infrastructure::load(&data_dir.join(INFRASTRUCTURE_FILE))?;
    let workspace = match args.workspace.as_str() {
        "efs" => {
            std::fs::create_dir_all(&args.efs_path).with_context(|| {
                format!(
                    "the EFS workspace {} is not usable (mount the EFS file system {} there)",
                    args.efs_path.display(),
                    infra.file_system_id
                )
            })?;
            Workspace::Efs {
                path: args.efs_path.clone(),
            }
        }
        _ => Workspace::S3,
    };
    let config = AwsConfig {
        apps_domain: apps_domain.to_owned(),
        prefix: infra.prefix.clone(),
        workspace,
        ..AwsConfig::from_env()
    };
    let cipher = match std::env::var("EASYDEPLOY_AWS_SECRET_KEY") {
        Ok(key) if !key.is_empty() => Some(AccessKeyCipher::from_hex(&key)?),
        _ => None,
    };
    Ok(easydeploy_aws::backends(&config, infra, cipher).await)
}
