//! Image builds on the local engine from a tar of the build context.

use crate::dockerignore::DockerIgnore;
use crate::engine::{bounded, engine_error, is_not_found, within};
use crate::{LABEL_APP, LABEL_DEPLOYMENT};
use async_trait::async_trait;
use bollard::errors::Error;
use bollard::image::BuildImageOptions;
use bollard::Docker;
use easydeploy_core::ports::{BackendError, BackendResult, BuildRequest, BuiltImage, ImageBuilder, LogSink};
use easydeploy_core::PipelineFiles;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds images with the engine's builder, streaming its output.
#[derive(Clone)]
pub struct DockerBuilder {
    docker: Docker,
    build_timeout: Duration,
}

impl DockerBuilder {
    /// Builds on the engine behind `docker`; a build may take 30 minutes.
    pub fn new(docker: Docker) -> Self {
        Self {
            docker,
            build_timeout: Duration::from_secs(30 * 60),
        }
    }

    /// Sets how long one build may take.
    pub fn with_build_timeout(mut self, timeout: Duration) -> Self {
        self.build_timeout = timeout;
        self
    }
}

#[async_trait]
impl ImageBuilder for DockerBuilder {
    async fn find(&self, reference: &str) -> BackendResult<Option<BuiltImage>> {
        let what = format!("look up the image {reference}");
        match within(&what, CALL_TIMEOUT, self.docker.inspect_image(reference)).await? {
            Ok(image) => Ok(Some(BuiltImage {
                reference: reference.to_owned(),
                id: image.id.unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_error(&what, e)),
        }
    }

    async fn build(&self, request: &BuildRequest, log: &dyn LogSink) -> BackendResult<BuiltImage> {
        let dir = request.context_dir.clone();
        let pipeline = request.pipeline.clone();
        let context = tokio::task::spawn_blocking(move || context_tar(&dir, &pipeline))
            .await
            .map_err(|e| BackendError::transient(format!("the build context could not be packed: {e}")))?
            .map_err(|e| BackendError::permanent(format!("the build context could not be read: {e}")))?;
        log.line(&format!(
            "Sending a build context of {} to the Docker engine",
            human_size(context.len())
        ));

        let options = BuildImageOptions {
            dockerfile: request.pipeline.dockerfile_name().to_owned(),
            t: request.tag.clone(),
            rm: true,
            forcerm: true,
            labels: HashMap::from([
                (LABEL_APP.to_owned(), request.app.to_string()),
                (LABEL_DEPLOYMENT.to_owned(), request.deployment.clone()),
            ]),
            ..Default::default()
        };
        let _building = crate::engine::BUILDS.read().await;
        let mut output = self.docker.build_image(options, None, Some(context.into()));
        let deadline = tokio::time::Instant::now() + self.build_timeout;
        loop {
            let item = match tokio::time::timeout_at(deadline, output.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    return Err(BackendError::permanent(format!(
                        "the image build failed: it took longer than {}s",
                        self.build_timeout.as_secs()
                    )))
                }
            };
            match item {
                Ok(info) => {
                    for text in [info.stream, info.status].into_iter().flatten() {
                        log_lines(log, &text);
                    }
                }
                Err(Error::DockerStreamError { error }) => {
                    log_lines(log, &error);
                    return Err(BackendError::permanent(format!(
                        "the image build failed: {}",
                        error.trim()
                    )));
                }
                Err(Error::DockerResponseServerError { status_code, message }) if status_code != 503 => {
                    log_lines(log, &message);
                    return Err(BackendError::permanent(format!(
                        "the image build failed: {}",
                        message.trim()
                    )));
                }
                Err(e) => return Err(engine_error("build the image", e)),
            }
        }
        let what = format!("look up the built image {}", request.tag);
        let image = bounded(&what, CALL_TIMEOUT, self.docker.inspect_image(&request.tag)).await?;
        Ok(BuiltImage {
            reference: request.tag.clone(),
            id: image.id.unwrap_or_default(),
        })
    }
}

/// Sends each line of an engine message to the log.
fn log_lines(log: &dyn LogSink, text: &str) {
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return;
    }
    for line in text.split('\n') {
        log.line(line.strip_suffix('\r').unwrap_or(line));
    }
}

fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1 << 10) as f64),
        b => format!("{b} B"),
    }
}

/// Packs the build context: the files of `dir` (without `.git/` and what
/// `.dockerignore` excludes; symlinks kept as symlinks), then the pipeline's
/// extra files and generated Dockerfile, which replace same-named files.
pub(crate) fn context_tar(dir: &Path, pipeline: &PipelineFiles) -> io::Result<Vec<u8>> {
    let ignore = DockerIgnore::parse(&pipeline.dockerignore);
    let mut added: Vec<(String, &[u8])> = pipeline
        .extra_files
        .iter()
        .map(|(name, bytes)| (clean_name(name), bytes.as_slice()))
        .collect();
    if !pipeline.own_dockerfile {
        added.push((
            pipeline.dockerfile_name().to_owned(),
            pipeline.dockerfile.as_bytes(),
        ));
    }
    let context = Context {
        ignore,
        replaced: added.iter().map(|(name, _)| name.clone()).collect(),
        keep: pipeline.dockerfile_name(),
    };

    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    context.add_dir(&mut tar, dir, "")?;
    for (name, bytes) in added {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(tar::DETERMINISTIC_TIMESTAMP);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &name, bytes)?;
    }
    tar.into_inner()
}

struct Context {
    ignore: DockerIgnore,
    /// Files the pipeline adds, so the checkout's copies are left out.
    replaced: HashSet<String>,
    /// The Dockerfile, never excluded.
    keep: &'static str,
}

impl Context {
    fn add_dir(&self, tar: &mut tar::Builder<Vec<u8>>, dir: &Path, prefix: &str) -> io::Result<()> {
        let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            if rel == ".git"
                || self.replaced.contains(&rel)
                || (rel != self.keep && self.ignore.excludes(&rel))
            {
                continue;
            }
            let path = entry.path();
            let kind = std::fs::symlink_metadata(&path)?.file_type();
            if kind.is_dir() {
                tar.append_dir(&rel, &path)?;
                self.add_dir(tar, &path, &rel)?;
            } else if kind.is_file() || kind.is_symlink() {
                tar.append_path_with_name(&path, &rel)?;
            }
            // Sockets, pipes and devices have no place in an image.
        }
        Ok(())
    }
}

/// A context-relative name: no leading `./` or `/`.
fn clean_name(name: &str) -> String {
    let mut name = name;
    loop {
        let trimmed = name.trim_start_matches('/').trim_start_matches("./");
        if trimmed == name {
            return name.to_owned();
        }
        name = trimmed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use easydeploy_core::Port;

    fn pipeline(own: bool, ignore: &str) -> PipelineFiles {
        PipelineFiles {
            dockerfile: "FROM scratch\n".into(),
            dockerignore: ignore.into(),
            buildspec: String::new(),
            extra_files: vec![("./.easydeploy/run.sh".into(), b"#!/bin/sh\n".to_vec())],
            own_dockerfile: own,
            port: Port::new(8080),
        }
    }

    fn entries(tar: Vec<u8>) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let mut archive = tar::Archive::new(io::Cursor::new(tar));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned();
                let kind = e.header().entry_type();
                let mut body = Vec::new();
                io::Read::read_to_end(&mut e, &mut body).unwrap();
                (path, kind, body)
            })
            .collect()
    }

    #[test]
    fn packs_the_context_with_exclusions_symlinks_and_pipeline_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("app.py", "print(1)"),
            ("Dockerfile.easydeploy", "stale"),
            (".git/HEAD", "ref"),
            ("node_modules/x/index.js", "x"),
            ("src/node_modules/y.js", "y"),
            ("src/main.py", "main"),
            ("build/out.js", "out"),
            ("lib/build/keep.js", "keep"),
            ("secret.pyc", "pyc"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), body).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", root.join("escape")).unwrap();

        let tar = context_tar(root, &pipeline(false, "node_modules\n/build/\n*.pyc\n")).unwrap();
        let entries = entries(tar);
        let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "app.py",
                "escape",
                "lib",
                "lib/build",
                "lib/build/keep.js",
                "src",
                "src/main.py",
                ".easydeploy/run.sh",
                "Dockerfile.easydeploy"
            ]
        );
        let escape = &entries[1];
        assert_eq!(escape.1, tar::EntryType::Symlink, "symlinks are not followed");
        assert!(escape.2.is_empty());
        let dockerfile = entries.last().unwrap();
        assert_eq!(
            dockerfile.2, b"FROM scratch\n",
            "the generated Dockerfile replaces the checkout's"
        );
    }

    #[test]
    fn own_dockerfile_is_kept_even_if_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM own").unwrap();
        std::fs::write(dir.path().join("notes.md"), "x").unwrap();
        let entries = entries(context_tar(dir.path(), &pipeline(true, "Dockerfile\n*.md\n")).unwrap());
        let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["Dockerfile", ".easydeploy/run.sh"]);
        assert_eq!(entries[0].2, b"FROM own");
    }

    #[test]
    fn log_lines_split_engine_messages() {
        struct Lines(std::sync::Mutex<Vec<String>>);
        impl LogSink for Lines {
            fn line(&self, line: &str) {
                self.0.lock().unwrap().push(line.to_owned());
            }
        }
        let sink = Lines(Default::default());
        log_lines(&sink, "Step 1/2 : FROM scratch\n");
        log_lines(&sink, " ---> Running\r\nhello\n\nworld");
        log_lines(&sink, "\n");
        assert_eq!(
            *sink.0.lock().unwrap(),
            ["Step 1/2 : FROM scratch", " ---> Running", "hello", "", "world"]
        );
        assert_eq!(clean_name("/./a/b"), "a/b");
    }
}
