//! Image builds on CodeBuild: the build context zipped to S3 or copied to the
//! EFS workspace, a privileged project per app running the generated buildspec
//! (which pushes to ECR), a bounded wait for the outcome, and the build log
//! from CloudWatch Logs.

mod logs;
mod watcher;

pub use watcher::{BuildOutcome, BuildStatus, BuildWatcher, CodeBuildWatcher, SimulatedBuilds, StartedBuild};

use crate::clients::AwsClients;
use crate::config::Workspace;
use crate::error::{aws_error, built, code_of, err};
use crate::infra::Infrastructure;
use crate::{names, TAG_APP, TAG_INFRA, TAG_TENANT};
use async_trait::async_trait;
use aws_sdk_codebuild::types::{
    ArtifactsType, CloudWatchLogsConfig, ComputeType, EnvironmentType, EnvironmentVariable, FileSystemType,
    LogsConfig, LogsConfigStatusType, ProjectArtifacts, ProjectEnvironment, ProjectFileSystemLocation,
    ProjectSource, SourceType, Tag, VpcConfig,
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
    workspace: Workspace,
    timeout: Duration,
}

/// Where CodeBuild mounts the EFS workspace, and the identifier of the mount.
const EFS_MOUNT_POINT: &str = "/mnt/easydeploy-workspace";
const EFS_IDENTIFIER: &str = "WORKSPACE";

impl CodeBuildBuilder {
    /// Builds on `infra`, waiting for outcomes with `watcher` for at most
    /// `timeout`; build contexts go to S3.
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
            workspace: Workspace::S3,
            timeout,
        }
    }

    /// Sets where build contexts go.
    pub fn with_workspace(mut self, workspace: Workspace) -> Self {
        self.workspace = workspace;
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
        source: &BuildSource,
        buildspec: &str,
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
        let efs = matches!(source, BuildSource::Efs);
        if let Some(project) = found.projects().first() {
            let is_efs = project.source().map(|s| s.r#type()) == Some(&SourceType::NoSource);
            if is_efs == efs {
                return Ok(name);
            }
            // The source type, EFS mount and VPC go together: the project is
            // made again for the other workspace (CodeBuild keeps the builds
            // of a deleted project readable).
            self.clients
                .codebuild
                .delete_project()
                .name(&name)
                .send()
                .await
                .map_err(err(&format!(
                    "replace the CodeBuild project {name} for the other workspace"
                )))?;
            tracing::info!(project = %name, efs, "replacing the CodeBuild project for the other workspace");
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
        let mut create = self
            .clients
            .codebuild
            .create_project()
            .name(&name)
            .description(format!("Easy Deploy builds of {}", request.app));
        create = match source {
            BuildSource::S3(location) => create.source(built(
                ProjectSource::builder()
                    .r#type(SourceType::S3)
                    .location(location)
                    .buildspec(buildspec)
                    .build(),
            )?),
            BuildSource::Efs => create
                .source(built(
                    ProjectSource::builder()
                        .r#type(SourceType::NoSource)
                        .buildspec(buildspec)
                        .build(),
                )?)
                .file_system_locations(self.efs_location())
                .vpc_config(self.vpc()),
        };
        let created = create
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
            .tags(Tag::builder().key(TAG_TENANT).value(&request.tenant.id).build())
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(project = %name, "created the CodeBuild project"),
            Err(e) if code_of(&e) == Some("ResourceAlreadyExistsException") => {}
            Err(e) => return Err(aws_error(&format!("create the CodeBuild project {name}"), e)),
        }
        Ok(name)
    }

    /// The private subnets and the tasks' security group (allowed to EFS).
    fn vpc(&self) -> VpcConfig {
        VpcConfig::builder()
            .vpc_id(&self.infra.vpc_id)
            .set_subnets(Some(self.infra.private_subnet_ids.clone()))
            .security_group_ids(&self.infra.tasks_security_group_id)
            .build()
    }

    /// The bootstrap's EFS file system, mounted at [`EFS_MOUNT_POINT`] in builds.
    fn efs_location(&self) -> ProjectFileSystemLocation {
        ProjectFileSystemLocation::builder()
            .r#type(FileSystemType::Efs)
            .location(format!(
                "{}.efs.{}.amazonaws.com:/",
                self.infra.file_system_id, self.infra.region
            ))
            .mount_point(EFS_MOUNT_POINT)
            .identifier(EFS_IDENTIFIER)
            .mount_options("nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2")
            .build()
    }

    /// Puts the build context where CodeBuild reads it; returns the
    /// project's source and the buildspec to run.
    async fn stage(&self, request: &BuildRequest, log: &dyn LogSink) -> BackendResult<(BuildSource, String)> {
        let rel = format!(
            "{}/{}/{}",
            segment("tenant", &request.tenant.id)?,
            segment("app", request.app.as_str())?,
            segment("commit", &request.commit)?
        );
        let dir = request.context_dir.clone();
        let pipeline = request.pipeline.clone();
        match &self.workspace {
            Workspace::S3 => {
                let zip = tokio::task::spawn_blocking(move || crate::source::zip_context(&dir, &pipeline))
                    .await
                    .map_err(|e| {
                        BackendError::transient(format!("the build context could not be packed: {e}"))
                    })?
                    .map_err(|e| {
                        BackendError::permanent(format!("the build context could not be read: {e}"))
                    })?;
                let key = format!("sources/{rel}.zip");
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
                let location = format!("{}/{key}", self.infra.bucket);
                Ok((BuildSource::S3(location), request.pipeline.buildspec.clone()))
            }
            Workspace::Efs { path } => {
                let dest = path.join(&rel);
                log.line(&format!(
                    "Writing the build context to the EFS workspace {}",
                    dest.display()
                ));
                let target = dest.clone();
                tokio::task::spawn_blocking(move || crate::source::write_context(&dir, &pipeline, &target))
                    .await
                    .map_err(|e| {
                        BackendError::transient(format!("the build context could not be written: {e}"))
                    })?
                    .map_err(|e| {
                        BackendError::permanent(format!(
                            "the build context could not be written to the EFS workspace {}: {e}",
                            dest.display()
                        ))
                    })?;
                let inside = format!("{EFS_MOUNT_POINT}/{rel}");
                let buildspec = crate::source::efs_buildspec(&request.pipeline.buildspec, &inside)
                    .map_err(BackendError::permanent)?;
                Ok((BuildSource::Efs, buildspec))
            }
        }
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

/// Where one build reads its context.
enum BuildSource {
    /// `bucket/key` of the zip.
    S3(String),
    /// The EFS workspace (the buildspec `cd`s into the commit's folder).
    Efs,
}

/// `value` when it can be one folder name of a path, else a clear error.
fn segment<'a>(what: &str, value: &'a str) -> BackendResult<&'a str> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value)
    } else {
        Err(BackendError::permanent(format!(
            "the {what} {value:?} cannot name a folder of the build workspace"
        )))
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

        let (source, buildspec) = self.stage(request, log).await?;
        self.ensure_log_group().await?;
        let project = self
            .ensure_project(request, &source, &buildspec, repository_uri)
            .await?;
        let env =
            |name: &str, value: &str| built(EnvironmentVariable::builder().name(name).value(value).build());
        let start = self
            .clients
            .codebuild
            .start_build()
            .project_name(&project)
            .buildspec_override(&buildspec)
            .privileged_mode_override(true)
            .environment_variables_override(env("IMAGE_TAG", tag)?)
            .environment_variables_override(env("REPOSITORY_URI", repository_uri)?)
            .environment_variables_override(env("EASYDEPLOY_DEPLOYMENT", &request.deployment)?)
            .idempotency_token(names::fit(&format!("{}-{tag}", request.deployment), 64));
        let start = match &source {
            BuildSource::S3(location) => start
                .source_type_override(SourceType::S3)
                .source_location_override(location),
            BuildSource::Efs => start.source_type_override(SourceType::NoSource),
        };
        let started = start
            .send()
            .await
            .map_err(err(&format!("start the CodeBuild build of {}", request.app)))?;
        let build_id = started
            .build_value()
            .and_then(|b| b.id())
            .ok_or_else(|| BackendError::transient("CodeBuild started a build without an id"))?
            .to_owned();
        log.line(&format!("CodeBuild build {build_id} started"));

        let started = StartedBuild {
            id: build_id.clone(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        };
        let outcome = self.watcher.wait(&started, self.timeout).await?;
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
        self.image(repository, tag, reference).await?.ok_or_else(|| {
            BackendError::permanent(format!(
                "CodeBuild build {build_id} succeeded but ECR has no image tagged {tag} in {repository}; \
                 check that the buildspec pushes $REPOSITORY_URI:$IMAGE_TAG"
            ))
            .with_code("build_failed")
        })
    }
}
