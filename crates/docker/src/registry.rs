//! The local "registry": images stay in the engine that runs them.

use crate::engine::{bounded, engine_error, status_of, within};
use crate::LABEL_APP;
use async_trait::async_trait;
use bollard::image::{ListImagesOptions, RemoveImageOptions};
use bollard::Docker;
use easydeploy_core::ports::{BackendResult, BuiltImage, ImageRegistry, LogSink};
use easydeploy_core::AppName;
use std::collections::HashMap;
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Keeps images in the local engine, tagged `easydeploy/<app>`.
#[derive(Clone)]
pub struct DockerRegistry {
    docker: Docker,
}

impl DockerRegistry {
    /// The registry of the engine behind `docker`.
    pub fn new(docker: Docker) -> Self {
        Self { docker }
    }
}

#[async_trait]
impl ImageRegistry for DockerRegistry {
    async fn ensure_repository(&self, app: &AppName) -> BackendResult<String> {
        Ok(format!("easydeploy/{app}"))
    }

    async fn push(&self, image: &BuiltImage, log: &dyn LogSink) -> BackendResult<String> {
        log.line(&format!(
            "{} stays in the local Docker engine; nothing to push",
            image.reference
        ));
        Ok(image.reference.clone())
    }

    async fn prune(&self, app: &AppName, keep: &[String]) -> BackendResult<()> {
        let Ok(_no_build) = crate::engine::BUILDS.try_write() else {
            tracing::info!(%app, "an image build is running: old images are pruned after a later release");
            return Ok(());
        };
        remove_app_images(&self.docker, app, keep, true).await
    }
}

/// Removes the images labelled with `app`, except those in `keep` (tags or
/// ids), with their untagged parents when `with_parents` (hold
/// [`BUILDS`](crate::engine::BUILDS) alone then); images still used by a
/// container are left alone.
pub(crate) async fn remove_app_images(
    docker: &Docker,
    app: &AppName,
    keep: &[String],
    with_parents: bool,
) -> BackendResult<()> {
    let options = ListImagesOptions {
        all: false,
        filters: HashMap::from([("label".to_owned(), vec![format!("{LABEL_APP}={app}")])]),
        ..Default::default()
    };
    let what = format!("list the images of {app}");
    let images = bounded(&what, CALL_TIMEOUT, docker.list_images(Some(options))).await?;
    for image in images {
        if keep.contains(&image.id) || image.repo_tags.iter().any(|t| keep.contains(t)) {
            continue;
        }
        let mut names: Vec<&str> = image
            .repo_tags
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "<none>:<none>")
            .collect();
        if names.is_empty() {
            names.push(&image.id);
        }
        for name in names {
            let what = format!("remove the image {name}");
            let options = RemoveImageOptions {
                force: false,
                noprune: !with_parents,
            };
            match within(
                &what,
                CALL_TIMEOUT,
                docker.remove_image(name, Some(options), None),
            )
            .await?
            {
                Ok(_) => tracing::info!(image = name, "removed an image"),
                // In use by a container, or already gone.
                Err(e) if matches!(status_of(&e), Some(404 | 409)) => {}
                Err(e) => return Err(engine_error(&what, e)),
            }
        }
    }
    Ok(())
}
