//! The IDs of the shared infrastructure the adapters run on.

use easydeploy_core::ports::BackendError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What [`crate::bootstrap()`] made (or the Terraform module output): every
/// ID the adapters need. Stored as JSON (`<data-dir>/aws-infrastructure.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Infrastructure {
    /// Prefix of the shared resources' names.
    pub prefix: String,
    /// Region.
    pub region: String,
    /// Apps are served at `APP.<apps_domain>`.
    pub apps_domain: String,
    /// The VPC.
    pub vpc_id: String,
    /// Two public subnets (the ALB), in two AZs.
    pub public_subnet_ids: Vec<String>,
    /// Two private subnets (tasks, EFS mount targets), in two AZs.
    pub private_subnet_ids: Vec<String>,
    /// Security group of the ALB (HTTP/HTTPS from anywhere).
    pub alb_security_group_id: String,
    /// Security group of the tasks (any TCP port from the ALB).
    pub tasks_security_group_id: String,
    /// Security group of the EFS mount targets (NFS from the tasks).
    pub efs_security_group_id: String,
    /// The internet-facing ALB.
    pub load_balancer_arn: String,
    /// Its DNS name (point `*.<apps_domain>` at it).
    pub load_balancer_dns: String,
    /// The listener apps' host rules go on (HTTPS when a certificate was given, else HTTP).
    pub listener_arn: String,
    /// The HTTP listener (redirects to HTTPS when there is an HTTPS listener).
    pub http_listener_arn: String,
    /// The ECS cluster's name.
    pub cluster_name: String,
    /// The artifacts and sources bucket.
    pub bucket: String,
    /// The EFS file system.
    pub file_system_id: String,
    /// Its mount targets (one per private subnet).
    pub mount_target_ids: Vec<String>,
    /// Role CodeBuild projects run as.
    pub codebuild_role_arn: String,
    /// Role ECS uses to pull images and write logs.
    pub execution_role_arn: String,
}

impl Infrastructure {
    /// Reads a stored infrastructure file.
    pub fn load(path: &Path) -> Result<Self, BackendError> {
        let bytes = std::fs::read(path).map_err(|e| {
            BackendError::permanent(format!(
                "cannot read the AWS infrastructure file {}: {e}; run `easydeploy aws bootstrap` first",
                path.display()
            ))
            .with_code("aws_not_bootstrapped")
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            BackendError::permanent(format!(
                "the AWS infrastructure file {} is invalid: {e}",
                path.display()
            ))
            .with_code("aws_not_bootstrapped")
        })
    }

    /// Writes the infrastructure file (pretty JSON).
    pub fn save(&self, path: &Path) -> Result<(), BackendError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        let json = serde_json::to_vec_pretty(self).expect("plain data serializes");
        std::fs::write(path, json).map_err(|e| {
            BackendError::permanent(format!(
                "cannot write the AWS infrastructure file {}: {e}",
                path.display()
            ))
        })
    }

    /// Adopts infrastructure from `terraform output -json` of `deploy/terraform`
    /// (`{"vpc_id": {"value": ...}, ...}`; outputs are named like the fields).
    pub fn from_terraform_outputs(json: &[u8]) -> Result<Self, BackendError> {
        let outputs: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(json).map_err(|e| {
                BackendError::permanent(format!(
                    "the Terraform outputs are not `terraform output -json`: {e}"
                ))
            })?;
        let values: serde_json::Map<String, serde_json::Value> = outputs
            .into_iter()
            .map(|(name, output)| match output {
                serde_json::Value::Object(mut o) if o.contains_key("value") => {
                    (name, o.remove("value").unwrap_or_default())
                }
                other => (name, other),
            })
            .collect();
        serde_json::from_value(serde_json::Value::Object(values)).map_err(|e| {
            BackendError::permanent(format!(
                "the Terraform outputs do not describe Easy Deploy's infrastructure: {e}; \
                 apply deploy/terraform and pass its `terraform output -json`"
            ))
        })
    }
}
