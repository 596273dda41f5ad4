//! ECR: a repository per app (scan on push, lifecycle policy keeping the
//! last N images). CodeBuild pushes, so `push` only names the image.

use crate::clients::AwsClients;
use crate::error::{aws_error, code_of, err};
use crate::infra::Infrastructure;
use crate::{names, TAG_APP, TAG_INFRA};
use async_trait::async_trait;
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability, Tag};
use easydeploy_core::ports::{BackendResult, BuiltImage, ImageRegistry, LogSink};
use easydeploy_core::AppName;
use std::sync::Arc;

/// Images in an ECR repository per app, `<prefix>-<app>`.
#[derive(Clone)]
pub struct EcrRegistry {
    clients: AwsClients,
    infra: Arc<Infrastructure>,
    keep_images: u32,
}

impl EcrRegistry {
    /// Repositories on `infra`, each keeping its last `keep_images` images.
    pub fn new(clients: AwsClients, infra: Arc<Infrastructure>, keep_images: u32) -> Self {
        Self {
            clients,
            infra,
            keep_images: keep_images.max(1),
        }
    }

    /// The repository name of an app.
    pub fn repository_name(&self, app: &str) -> String {
        names::app_resource(&self.infra.prefix, app)
    }

    fn lifecycle_policy(&self) -> String {
        serde_json::json!({
            "rules": [{
                "rulePriority": 1,
                "description": format!("keep the last {} images", self.keep_images),
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": self.keep_images},
                "action": {"type": "expire"}
            }]
        })
        .to_string()
    }

    /// Deletes the app's repository and its images; absent is fine.
    pub(crate) async fn delete_repository(&self, app: &str) -> BackendResult<()> {
        let name = self.repository_name(app);
        match self
            .clients
            .ecr
            .delete_repository()
            .repository_name(&name)
            .force(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("RepositoryNotFoundException") => Ok(()),
            Err(e) => Err(aws_error(&format!("delete the ECR repository {name}"), e)),
        }
    }
}

#[async_trait]
impl ImageRegistry for EcrRegistry {
    async fn ensure_repository(&self, app: &AppName) -> BackendResult<String> {
        let ecr = &self.clients.ecr;
        let name = self.repository_name(app.as_str());
        let uri = match ecr.describe_repositories().repository_names(&name).send().await {
            Ok(out) => out
                .repositories()
                .first()
                .and_then(|r| r.repository_uri())
                .unwrap_or_default()
                .to_owned(),
            Err(e) if code_of(&e) == Some("RepositoryNotFoundException") => {
                let created = ecr
                    .create_repository()
                    .repository_name(&name)
                    .image_tag_mutability(ImageTagMutability::Mutable)
                    .image_scanning_configuration(
                        ImageScanningConfiguration::builder().scan_on_push(true).build(),
                    )
                    .tags(
                        Tag::builder()
                            .key(TAG_INFRA)
                            .value(&self.infra.prefix)
                            .build()
                            .map_err(|e| easydeploy_core::ports::BackendError::permanent(e.to_string()))?,
                    )
                    .tags(
                        Tag::builder()
                            .key(TAG_APP)
                            .value(app.as_str())
                            .build()
                            .map_err(|e| easydeploy_core::ports::BackendError::permanent(e.to_string()))?,
                    )
                    .send()
                    .await;
                match created {
                    Ok(out) => {
                        tracing::info!(repository = %name, "created the ECR repository");
                        out.repository()
                            .and_then(|r| r.repository_uri())
                            .unwrap_or_default()
                            .to_owned()
                    }
                    Err(e) if code_of(&e) == Some("RepositoryAlreadyExistsException") => ecr
                        .describe_repositories()
                        .repository_names(&name)
                        .send()
                        .await
                        .map_err(err("look up the ECR repository"))?
                        .repositories()
                        .first()
                        .and_then(|r| r.repository_uri())
                        .unwrap_or_default()
                        .to_owned(),
                    Err(e) => return Err(aws_error(&format!("create the ECR repository {name}"), e)),
                }
            }
            Err(e) => return Err(aws_error(&format!("look up the ECR repository {name}"), e)),
        };
        // Putting the same policy again is a no-op.
        ecr.put_lifecycle_policy()
            .repository_name(&name)
            .lifecycle_policy_text(self.lifecycle_policy())
            .send()
            .await
            .map_err(err("set the ECR repository's lifecycle policy"))?;
        Ok(uri)
    }

    async fn push(&self, image: &BuiltImage, log: &dyn LogSink) -> BackendResult<String> {
        log.line(&format!("{} was pushed to ECR by CodeBuild", image.reference));
        Ok(image.reference.clone())
    }

    async fn prune(&self, app: &AppName, keep: &[String]) -> BackendResult<()> {
        let ecr = &self.clients.ecr;
        let name = self.repository_name(app.as_str());
        let keep_tags: Vec<&str> = keep
            .iter()
            .filter_map(|r| names::split_reference(r).map(|(_, tag)| tag))
            .collect();
        let mut token = None;
        let mut doomed = Vec::new();
        let mut listed = Vec::new();
        loop {
            let page = match ecr
                .list_images()
                .repository_name(&name)
                .set_next_token(token)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) if code_of(&e) == Some("RepositoryNotFoundException") => return Ok(()),
                Err(e) => return Err(aws_error("list the app's images", e)),
            };
            listed.extend(page.image_ids().iter().cloned());
            for id in page.image_ids() {
                let kept = id.image_tag().is_some_and(|t| keep_tags.contains(&t))
                    || id.image_digest().is_some_and(|d| keep.iter().any(|k| k == d));
                if !kept {
                    doomed.push(id.clone());
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        // A tagged entry loses only its tag (a kept tag may share its digest);
        // an untagged one goes unless a kept tag points at its digest.
        let kept_digests: Vec<String> = listed
            .iter()
            .filter(|id| id.image_tag().is_some_and(|t| keep_tags.contains(&t)))
            .filter_map(|id| id.image_digest().map(str::to_owned))
            .collect();
        let doomed: Vec<ImageIdentifier> = doomed
            .into_iter()
            .filter_map(|id| match id.image_tag() {
                Some(tag) => Some(ImageIdentifier::builder().image_tag(tag).build()),
                None if id
                    .image_digest()
                    .is_some_and(|d| kept_digests.iter().any(|k| k == d)) =>
                {
                    None
                }
                None => Some(id),
            })
            .collect();
        for chunk in doomed.chunks(100) {
            ecr.batch_delete_image()
                .repository_name(&name)
                .set_image_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(err("delete old images of the app"))?;
        }
        Ok(())
    }
}
