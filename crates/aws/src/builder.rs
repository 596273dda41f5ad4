//! Image builds on CodeBuild: the build context zipped to S3, a privileged
//! project per app running the generated buildspec (which pushes to ECR),
//! a bounded wait for the outcome, and the build log from CloudWatch Logs.

mod logs;
mod watcher;

pub use watcher::{BuildOutcome, BuildStatus, BuildWatcher, CodeBuildWatcher};

use crate::clients::AwsClients;
use crate::error::{aws_error, built, code_of, err};
use crate::infra::Infrastructure;
use crate::{names, TAG_APP, TAG_INFRA, TAG_TENANT};
use async_trait::async_trait;
use aws_sdk_codebuild::types::{
    ArtifactsType, CloudWatchLogsConfig, ComputeType, EnvironmentType, EnvironmentVariable, LogsConfig,
    LogsConfigStatusType, ProjectArtifacts, ProjectEnvironment, ProjectSource, SourceType, Tag,
};
use aws_sdk_s3::primitives::ByteStream;
use easydeploy_core::ports::{BackendError, BackendResult, BuildRequest, BuiltImage, ImageBuilder, LogSink};
use std::sync::Arc;
use std::time::Duration;

/// CodeBuild's standard Linux image (Docker included).
const BUILD_IMAGE: &str = "aws/codebuild/standard:7.0";

/// Builds images with a CodeBuild project per app.
#[derive(Clone)]
pub struct CodeBuildBuilder {
    clients: AwsClients,
    infra: Arc<Infrastructure>,
    watcher: Arc<dyn BuildWatcher>,
    tenant: String,
    timeout: Duration,
}

impl CodeBuildBuilder {
    /// Builds on `infra`, waiting for outcomes with `watcher` for at most `timeout`.
    pub fn new(
        clients: AwsClients,
        infra: Arc<Infrastructure>,
        watcher: Arc<dyn BuildWatcher>,
        timeout: Duration,
    ) -> Self {
        Self {
            clients,
            infra,
            watcher,
            tenant: "default".into(),
            timeout,
        }
    }

    /// The tenant sources are filed under (`sources/<tenant>/...`); a build
    /// request does not name its tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// The CodeBuild project of an app.
    pub fn project_name(&self, app: &str) -> String {
        names::app_resource(&self.infra.prefix, app)
    }

    async fn ensure_log_group(&self) -> BackendResult<()> {
        ensure_log_group(&self.clients, &names::build_log_group(&self.infra.prefix)).await
    }

    async fn ensure_project(
        &self,
        request: &BuildRequest,
        source: &str,
        repository_uri: &str,
    ) -> BackendResult<String> {
        let name = self.project_name(request.app.as_str());
        let found = self
            .clients
            .codebuild
            .batch_get_projects()
            .names(&name)
            .send()
            .await
            .map_err(err("look up the CodeBuild project"))?;
        if !found.projects().is_empty() {
            return Ok(name);
        }
        let environment = built(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image(BUILD_IMAGE)
                .compute_type(ComputeType::BuildGeneral1Small)
                .privileged_mode(true)
                .environment_variables(built(
                    EnvironmentVariable::builder()
                        .name("REPOSITORY_URI")
                        .value(repository_uri)
                        .build(),
                )?)
                .build(),
        )?;
        let logs = LogsConfig::builder()
            .cloud_watch_logs(built(
                CloudWatchLogsConfig::builder()
                    .status(LogsConfigStatusType::Enabled)
                    .group_name(names::build_log_group(&self.infra.prefix))
                    .stream_name(request.app.as_str())
                    .build(),
            )?)
            .build();
        let created = self
            .clients
            .codebuild
            .create_project()
            .name(&name)
            .description(format!("Easy Deploy builds of {}", request.app))
            .source(built(
                ProjectSource::builder()
                    .r#type(SourceType::S3)
                    .location(source)
                    .buildspec(&request.pipeline.buildspec)
                    .build(),
            )?)
            .artifacts(built(
                ProjectArtifacts::builder()
                    .r#type(ArtifactsType::NoArtifacts)
                    .build(),
            )?)
            .environment(environment)
            .service_role(&self.infra.codebuild_role_arn)
            .logs_config(logs)
            .timeout_in_minutes((self.timeout.as_secs() / 60).clamp(5, 480) as i32)
            .tags(Tag::builder().key(TAG_INFRA).value(&self.infra.prefix).build())
            .tags(Tag::builder().key(TAG_APP).value(request.app.as_str()).build())
            .tags(Tag::builder().key(TAG_TENANT).value(&self.tenant).build())
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(project = %name, "created the CodeBuild project"),
            Err(e) if code_of(&e) == Some("ResourceAlreadyExistsException") => {}
            Err(e) => return Err(aws_error(&format!("create the CodeBuild project {name}"), e)),
        }
        Ok(name)
    }

    /// The image tagged `tag` in ECR repository `repository`, if any.
    async fn image(&self, repository: &str, tag: &str, reference: &str) -> BackendResult<Option<BuiltImage>> {
        let found = self
            .clients
            .ecr
            .describe_images()
            .repository_name(repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build(),
            )
            .send()
            .await;
        match found {
            Ok(out) => Ok(out.image_details().first().map(|d| BuiltImage {
                reference: reference.to_owned(),
                id: d.image_digest().unwrap_or_default().to_owned(),
            })),
            Err(e)
                if matches!(
                    code_of(&e),
                    Some("ImageNotFoundException" | "RepositoryNotFoundException")
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error(&format!("look up the image {reference}"), e)),
        }
    }
}

/// Creates a CloudWatch log group unless it exists.
pub(crate) async fn ensure_log_group(clients: &AwsClients, group: &str) -> BackendResult<()> {
    match clients.logs.create_log_group().log_group_name(group).send().await {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(e) => Err(aws_error(&format!("create the log group {group}"), e)),
    }
}

fn bad_reference(reference: &str) -> BackendError {
    BackendError::permanent(format!(
        "the image reference {reference} is not REPOSITORY_URI:TAG of an ECR repository"
    ))
}

#[async_trait]
impl ImageBuilder for CodeBuildBuilder {
    async fn find(&self, reference: &str) -> BackendResult<Option<BuiltImage>> {
        let (repository, tag) = names::split_reference(reference).ok_or_else(|| bad_reference(reference))?;
        self.image(repository, tag, reference).await
    }

    async fn build(&self, request: &BuildRequest, log: &dyn LogSink) -> BackendResult<BuiltImage> {
        let reference = request.tag.as_str();
        let (repository, tag) = names::split_reference(reference).ok_or_else(|| bad_reference(reference))?;
        let repository_uri = reference.rsplit_once(':').map_or(reference, |(uri, _)| uri);

        let dir = request.context_dir.clone();
        let pipeline = request.pipeline.clone();
        let zip = tokio::task::spawn_blocking(move || crate::source::zip_context(&dir, &pipeline))
            .await
            .map_err(|e| BackendError::transient(format!("the build context could not be packed: {e}")))?
            .map_err(|e| BackendError::permanent(format!("the build context could not be read: {e}")))?;
        let key = format!(
            "{}{tag}.zip",
            names::sources_prefix(&self.tenant, request.app.as_str())
        );
        log.line(&format!(
            "Uploading a build context of {} KiB to s3://{}/{key}",
            zip.len().div_ceil(1024),
            self.infra.bucket
        ));
        self.clients
            .s3
            .put_object()
            .bucket(&self.infra.bucket)
            .key(&key)
            .body(ByteStream::from(zip))
            .content_type("application/zip")
            .send()
            .await
            .map_err(err("upload the build context to S3"))?;
        let source = format!("{}/{key}", self.infra.bucket);

        self.ensure_log_group().await?;
        let project = self.ensure_project(request, &source, repository_uri).await?;
        let env =
            |name: &str, value: &str| built(EnvironmentVariable::builder().name(name).value(value).build());
        let started = self
            .clients
            .codebuild
            .start_build()
            .project_name(&project)
            .source_type_override(SourceType::S3)
            .source_location_override(&source)
            .buildspec_override(&request.pipeline.buildspec)
            .privileged_mode_override(true)
            .environment_variables_override(env("IMAGE_TAG", tag)?)
            .environment_variables_override(env("REPOSITORY_URI", repository_uri)?)
            .environment_variables_override(env("EASYDEPLOY_DEPLOYMENT", &request.deployment)?)
            .idempotency_token(names::fit(&format!("{}-{tag}", request.deployment), 64))
            .send()
            .await
            .map_err(err(&format!("start the CodeBuild build of {}", request.app)))?;
        let build_id = started
            .build_value()
            .and_then(|b| b.id())
            .ok_or_else(|| BackendError::transient("CodeBuild started a build without an id"))?
            .to_owned();
        log.line(&format!("CodeBuild build {build_id} started"));

        let outcome = self.watcher.wait(&build_id, self.timeout).await?;
        logs::copy_build_log(&self.clients, &outcome, log).await;
        if outcome.status != BuildStatus::Succeeded {
            return Err(BackendError::permanent(format!(
                "the image build failed: CodeBuild build {build_id} ended {}{}",
                outcome.status,
                outcome
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
            .with_code("build_failed"));
        }
        let _ = repository;
        self.image(repository, tag, reference).await?.ok_or_else(|| {
            BackendError::permanent(format!(
                "CodeBuild build {build_id} succeeded but ECR has no image tagged {tag} in {repository}; \
                 check that the buildspec pushes $REPOSITORY_URI:$IMAGE_TAG"
            ))
            .with_code("build_failed")
        })
    }
}
