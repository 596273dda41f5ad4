//! Build artifacts in the bucket: `artifacts/<deployment>/<name>`.

use crate::clients::AwsClients;
use crate::error::{aws_error, code_of, err};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use easydeploy_core::ports::{ArtifactStore, BackendError, BackendResult};

/// Artifacts as S3 objects; `append` reads, extends and rewrites the object
/// (the engine appends a deployment's log from one writer).
#[derive(Clone)]
pub struct S3Artifacts {
    clients: AwsClients,
    bucket: String,
}

impl S3Artifacts {
    /// Artifacts in `bucket`.
    pub fn new(clients: AwsClients, bucket: impl Into<String>) -> Self {
        Self {
            clients,
            bucket: bucket.into(),
        }
    }

    fn key(deployment: &str, name: &str) -> String {
        format!("artifacts/{deployment}/{name}")
    }

    async fn read(&self, key: &str, offset: u64) -> BackendResult<Option<Vec<u8>>> {
        let mut get = self.clients.s3.get_object().bucket(&self.bucket).key(key);
        if offset > 0 {
            get = get.range(format!("bytes={offset}-"));
        }
        match get.send().await {
            Ok(out) => {
                let bytes =
                    out.body.collect().await.map_err(|e| {
                        BackendError::transient(format!("cannot read the artifact {key}: {e}"))
                    })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if code_of(&e) == Some("NoSuchKey") => Ok(None),
            // Reading from the end (or past it) of an existing object.
            Err(e) if code_of(&e) == Some("InvalidRange") => Ok(Some(Vec::new())),
            Err(e) => Err(aws_error(&format!("read the artifact {key}"), e)),
        }
    }
}

#[async_trait]
impl ArtifactStore for S3Artifacts {
    async fn put(&self, deployment: &str, name: &str, bytes: &[u8]) -> BackendResult<()> {
        self.clients
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(Self::key(deployment, name))
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(err(&format!("store the artifact {name}")))?;
        Ok(())
    }

    async fn append(&self, deployment: &str, name: &str, bytes: &[u8]) -> BackendResult<()> {
        let key = Self::key(deployment, name);
        let mut all = self.read(&key, 0).await?.unwrap_or_default();
        all.extend_from_slice(bytes);
        self.put(deployment, name, &all).await
    }

    async fn get(&self, deployment: &str, name: &str, offset: u64) -> BackendResult<Option<Vec<u8>>> {
        self.read(&Self::key(deployment, name), offset).await
    }

    async fn list(&self, deployment: &str) -> BackendResult<Vec<String>> {
        let prefix = format!("artifacts/{deployment}/");
        let keys = list_keys(&self.clients, &self.bucket, &prefix).await?;
        Ok(keys.into_iter().map(|k| k[prefix.len()..].to_owned()).collect())
    }

    async fn remove(&self, deployments: &[String]) -> BackendResult<()> {
        for deployment in deployments {
            delete_prefix(&self.clients, &self.bucket, &format!("artifacts/{deployment}/")).await?;
        }
        Ok(())
    }
}

/// Every key under `prefix`.
pub(crate) async fn list_keys(
    clients: &AwsClients,
    bucket: &str,
    prefix: &str,
) -> BackendResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(err("list objects in the bucket"))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// Deletes every object under `prefix`.
pub(crate) async fn delete_prefix(clients: &AwsClients, bucket: &str, prefix: &str) -> BackendResult<()> {
    let keys = list_keys(clients, bucket, prefix).await?;
    for chunk in keys.chunks(1000) {
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::permanent(e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| BackendError::permanent(e.to_string()))?;
        clients
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(err(&format!("delete the objects under {prefix}")))?;
    }
    Ok(())
}
