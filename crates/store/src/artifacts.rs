//! Build artifacts as files: `<root>/<deployment>/<name>`.

use async_trait::async_trait;
use easydeploy_core::ports::{ArtifactStore, BackendError, BackendResult};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Artifacts kept under a folder of the data dir.
#[derive(Debug, Clone)]
pub struct FileArtifacts {
    root: PathBuf,
}

impl FileArtifacts {
    /// Keeps artifacts under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, deployment: &str, name: Option<&str>) -> BackendResult<PathBuf> {
        let safe = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !safe(deployment) || !name.is_none_or(safe) {
            return Err(BackendError::permanent("invalid artifact name"));
        }
        let dir = self.root.join(deployment);
        Ok(match name {
            Some(name) => dir.join(name),
            None => dir,
        })
    }
}

fn io_error(path: &Path, e: std::io::Error) -> BackendError {
    BackendError::transient(format!("cannot access artifact {}: {e}", path.display()))
}

#[async_trait]
impl ArtifactStore for FileArtifacts {
    async fn put(&self, deployment: &str, name: &str, bytes: &[u8]) -> BackendResult<()> {
        let path = self.path(deployment, Some(name))?;
        let dir = self.path(deployment, None)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error(&dir, e))?;
        let tmp = dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| io_error(&tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io_error(&path, e))
    }

    async fn append(&self, deployment: &str, name: &str, bytes: &[u8]) -> BackendResult<()> {
        let path = self.path(deployment, Some(name))?;
        let dir = self.path(deployment, None)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error(&dir, e))?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        file.write_all(bytes).await.map_err(|e| io_error(&path, e))?;
        // tokio writes in the background: wait until the bytes reached the file.
        file.flush().await.map_err(|e| io_error(&path, e))
    }

    async fn get(&self, deployment: &str, name: &str, offset: u64) -> BackendResult<Option<Vec<u8>>> {
        let path = self.path(deployment, Some(name))?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path, e)),
        };
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .await
            .map_err(|e| io_error(&path, e))?;
        Ok(Some(bytes))
    }

    async fn list(&self, deployment: &str) -> BackendResult<Vec<String>> {
        let dir = self.path(deployment, None)?;
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(io_error(&dir, e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(&dir, e))? {
            if let Some(name) = entry.file_name().to_str().filter(|n| !n.ends_with(".tmp")) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    async fn remove(&self, deployments: &[String]) -> BackendResult<()> {
        for deployment in deployments {
            let dir = self.path(deployment, None)?;
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&dir, e)),
            }
        }
        Ok(())
    }
}
