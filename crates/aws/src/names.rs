//! Deterministic names of the AWS resources of apps and tenants.

use sha2::{Digest, Sha256};

/// `name` when it fits in `max` characters, else its start plus a short hash
/// so that different long names stay different.
pub(crate) fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    let keep = max - hash.len() - 1;
    format!("{}-{hash}", name[..keep].trim_end_matches('-'))
}

/// ECR repository, CodeBuild project, task definition family: `<prefix>-<app>`.
pub(crate) fn app_resource(prefix: &str, app: &str) -> String {
    fit(&format!("{prefix}-{app}"), 140)
}

/// ECS service of an app.
pub(crate) fn service(app: &str) -> String {
    fit(app, 255)
}

/// ALB target group of an app (32 characters at most).
pub(crate) fn target_group(prefix: &str, app: &str) -> String {
    fit(&format!("{prefix}-{app}"), 32)
}

/// CloudWatch log group of an app's replicas.
pub(crate) fn app_log_group(prefix: &str, app: &str) -> String {
    format!("/{prefix}/apps/{app}")
}

/// CloudWatch log group of the builds.
pub(crate) fn build_log_group(prefix: &str) -> String {
    format!("/{prefix}/builds")
}

/// IAM user of a tenant (64 characters at most).
pub(crate) fn tenant_user(prefix: &str, tenant: &str) -> String {
    fit(&format!("{prefix}-tenant-{tenant}"), 64)
}

/// ECS task role of a tenant's apps (64 characters at most).
pub(crate) fn tenant_task_role(prefix: &str, tenant: &str) -> String {
    fit(&format!("{prefix}-tenant-{tenant}-task"), 64)
}

/// S3 key prefix of an app's zipped sources.
pub(crate) fn sources_prefix(tenant: &str, app: &str) -> String {
    format!("sources/{tenant}/{app}/")
}

/// Splits an image reference `REPO_URI:TAG` into the repository name (what
/// follows the registry host) and the tag.
pub(crate) fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let (repo, tag) = reference.rsplit_once(':')?;
    if tag.contains('/') {
        return None;
    }
    let name = repo.split_once('/').map_or(repo, |(_, name)| name);
    Some((name, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_their_limits() {
        assert_eq!(target_group("easydeploy", "shop"), "easydeploy-shop");
        let long = target_group("easydeploy", "a-very-long-application-name-indeed");
        assert!(long.len() <= 32, "{long}");
        assert_ne!(
            long,
            target_group("easydeploy", "a-very-long-application-name-indeee")
        );
    }

    #[test]
    fn references_split() {
        assert_eq!(
            split_reference("123.dkr.ecr.us-east-1.amazonaws.com/easydeploy-shop:abc"),
            Some(("easydeploy-shop", "abc"))
        );
        assert_eq!(split_reference("localhost:5000/x"), None);
    }
}
