//! Tenants as IAM users: an inline policy scoped to the tenant's resources
//! (`easydeploy:tenant` tag, S3 prefix), an access key stored encrypted in
//! the bucket, and an ECS task role for the tenant's apps.

use crate::clients::AwsClients;
use crate::error::{aws_error, built, code_of, err};
use crate::infra::Infrastructure;
use crate::{names, TAG_INFRA, TAG_TENANT};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use easydeploy_core::ports::{BackendError, BackendResult, Tenant, TenantHandle, TenantIdentity};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const POLICY_NAME: &str = "easydeploy-tenant";

/// Encrypts tenants' secret access keys (ChaCha20-Poly1305) with a key the
/// platform's operator gives.
#[derive(Clone)]
pub struct AccessKeyCipher {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for AccessKeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKeyCipher(..)")
    }
}

impl AccessKeyCipher {
    /// A cipher from a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// A cipher from 64 hex digits (`EASYDEPLOY_AWS_SECRET_KEY`).
    pub fn from_hex(hex_key: &str) -> Result<Self, BackendError> {
        let bytes = hex::decode(hex_key.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                BackendError::permanent("the access-key encryption key must be 64 hex digits (32 bytes)")
            })?;
        Ok(Self::new(&bytes))
    }

    fn seal(&self, plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("encryption of a short secret cannot fail");
        (nonce.to_vec(), sealed)
    }

    fn open(&self, nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if nonce.len() != 12 {
            return None;
        }
        self.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()
    }
}

/// A tenant's access key, decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantAccessKey {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for TenantAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TenantAccessKey({}, ..)", self.access_key_id)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    access_key_id: String,
    nonce: String,
    sealed_secret: String,
}

/// Tenant identities as IAM users `<prefix>-tenant-<id>`.
#[derive(Clone)]
pub struct AwsTenants {
    clients: AwsClients,
    infra: Arc<Infrastructure>,
    cipher: Option<AccessKeyCipher>,
}

impl AwsTenants {
    /// Tenants on `infra`; with a cipher each tenant also gets an access key,
    /// stored encrypted at `s3://<bucket>/tenants/<id>/access-key.json`.
    pub fn new(clients: AwsClients, infra: Arc<Infrastructure>, cipher: Option<AccessKeyCipher>) -> Self {
        Self {
            clients,
            infra,
            cipher,
        }
    }

    fn key_object(tenant: &str) -> String {
        format!("tenants/{tenant}/access-key.json")
    }

    /// ARN of the task role of a tenant's apps, created if missing.
    pub async fn task_role(&self, tenant: &str) -> BackendResult<String> {
        let name = names::tenant_task_role(&self.infra.prefix, tenant);
        crate::bootstrap::ensure_role_public(
            &self.clients,
            &name,
            "ecs-tasks.amazonaws.com",
            &[(TAG_INFRA, &self.infra.prefix), (TAG_TENANT, tenant)],
        )
        .await
    }

    /// The tenant's access key, decrypted; `None` without a cipher or key.
    pub async fn access_key(&self, tenant: &str) -> BackendResult<Option<TenantAccessKey>> {
        let Some(cipher) = &self.cipher else {
            return Ok(None);
        };
        let Some(stored) = self.stored_key(tenant).await? else {
            return Ok(None);
        };
        let nonce = hex::decode(&stored.nonce).unwrap_or_default();
        let sealed = hex::decode(&stored.sealed_secret).unwrap_or_default();
        let secret = cipher.open(&nonce, &sealed).ok_or_else(|| {
            BackendError::permanent(format!(
                "the stored access key of tenant {tenant} cannot be decrypted with the configured key"
            ))
        })?;
        Ok(Some(TenantAccessKey {
            access_key_id: stored.access_key_id,
            secret_access_key: String::from_utf8_lossy(&secret).into_owned(),
        }))
    }

    async fn stored_key(&self, tenant: &str) -> BackendResult<Option<StoredKey>> {
        let got = self
            .clients
            .s3
            .get_object()
            .bucket(&self.infra.bucket)
            .key(Self::key_object(tenant))
            .send()
            .await;
        match got {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| {
                        BackendError::transient(format!("cannot read the tenant's stored key: {e}"))
                    })?
                    .into_bytes();
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(e) if code_of(&e) == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(aws_error("read the tenant's stored access key", e)),
        }
    }

    async fn ensure_user(&self, tenant: &str) -> BackendResult<String> {
        let iam = &self.clients.iam;
        let name = names::tenant_user(&self.infra.prefix, tenant);
        let arn = match iam.get_user().user_name(&name).send().await {
            Ok(out) => out.user().map(|u| u.arn().to_owned()).unwrap_or_default(),
            Err(e) if code_of(&e) == Some("NoSuchEntity") => {
                let created = iam
                    .create_user()
                    .user_name(&name)
                    .path("/easydeploy/")
                    .tags(built(
                        aws_sdk_iam::types::Tag::builder()
                            .key(TAG_INFRA)
                            .value(&self.infra.prefix)
                            .build(),
                    )?)
                    .tags(built(
                        aws_sdk_iam::types::Tag::builder()
                            .key(TAG_TENANT)
                            .value(tenant)
                            .build(),
                    )?)
                    .send()
                    .await;
                match created {
                    Ok(out) => {
                        tracing::info!(tenant, user = %name, "created the tenant's IAM user");
                        out.user().map(|u| u.arn().to_owned()).unwrap_or_default()
                    }
                    Err(e) if code_of(&e) == Some("EntityAlreadyExists") => iam
                        .get_user()
                        .user_name(&name)
                        .send()
                        .await
                        .map_err(err("look up the tenant's IAM user"))?
                        .user()
                        .map(|u| u.arn().to_owned())
                        .unwrap_or_default(),
                    Err(e) => return Err(aws_error(&format!("create the IAM user {name}"), e)),
                }
            }
            Err(e) => return Err(aws_error(&format!("look up the IAM user {name}"), e)),
        };
        let bucket = &self.infra.bucket;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "TenantResources", "Effect": "Allow",
                 "Action": ["ecs:Describe*", "ecs:List*", "ecs:UpdateService", "codebuild:BatchGetBuilds",
                            "codebuild:StartBuild", "ecr:Describe*", "ecr:List*", "ecr:BatchGetImage",
                            "logs:GetLogEvents", "logs:FilterLogEvents"],
                 "Resource": "*",
                 "Condition": {"StringEquals": {format!("aws:ResourceTag/{TAG_TENANT}"): tenant}}},
                {"Sid": "TenantSources", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                 "Resource": format!("arn:aws:s3:::{bucket}/sources/{tenant}/*")}
            ]
        });
        iam.put_user_policy()
            .user_name(&name)
            .policy_name(POLICY_NAME)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(err("give the tenant's IAM user its policy"))?;
        Ok(arn)
    }

    /// Makes sure the tenant has an access key whose secret is stored encrypted.
    async fn ensure_access_key(&self, tenant: &str, cipher: &AccessKeyCipher) -> BackendResult<()> {
        let iam = &self.clients.iam;
        let user = names::tenant_user(&self.infra.prefix, tenant);
        let keys = iam
            .list_access_keys()
            .user_name(&user)
            .send()
            .await
            .map_err(err("list the tenant's access keys"))?;
        let existing: Vec<String> = keys
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(str::to_owned))
            .collect();
        if let Some(stored) = self.stored_key(tenant).await? {
            if existing.contains(&stored.access_key_id) {
                return Ok(());
            }
        }
        // Keys whose secret was lost are useless: replace them.
        for id in existing {
            iam.delete_access_key()
                .user_name(&user)
                .access_key_id(&id)
                .send()
                .await
                .map_err(err("delete a lost access key of the tenant"))?;
        }
        let created = iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .map_err(err("create the tenant's access key"))?;
        let key = created
            .access_key()
            .ok_or_else(|| BackendError::transient("IAM returned no access key"))?;
        let (nonce, sealed) = cipher.seal(key.secret_access_key().as_bytes());
        let stored = StoredKey {
            access_key_id: key.access_key_id().to_owned(),
            nonce: hex::encode(nonce),
            sealed_secret: hex::encode(sealed),
        };
        self.clients
            .s3
            .put_object()
            .bucket(&self.infra.bucket)
            .key(Self::key_object(tenant))
            .body(ByteStream::from(
                serde_json::to_vec(&stored).expect("plain data serializes"),
            ))
            .send()
            .await
            .map_err(err("store the tenant's encrypted access key"))?;
        Ok(())
    }

    /// Removes the tenant's IAM user (keys, policy), task role and stored key.
    pub async fn remove(&self, tenant: &str) -> BackendResult<()> {
        let iam = &self.clients.iam;
        let user = names::tenant_user(&self.infra.prefix, tenant);
        match iam.list_access_keys().user_name(&user).send().await {
            Ok(keys) => {
                for key in keys.access_key_metadata() {
                    if let Some(id) = key.access_key_id() {
                        iam.delete_access_key()
                            .user_name(&user)
                            .access_key_id(id)
                            .send()
                            .await
                            .map_err(err("delete the tenant's access key"))?;
                    }
                }
                ignore_missing(
                    iam.delete_user_policy()
                        .user_name(&user)
                        .policy_name(POLICY_NAME)
                        .send()
                        .await,
                    "remove the tenant's policy",
                )?;
                ignore_missing(
                    iam.delete_user().user_name(&user).send().await,
                    "delete the tenant's IAM user",
                )?;
            }
            Err(e) if code_of(&e) == Some("NoSuchEntity") => {}
            Err(e) => return Err(aws_error("list the tenant's access keys", e)),
        }
        let role = names::tenant_task_role(&self.infra.prefix, tenant);
        ignore_missing(
            iam.delete_role().role_name(&role).send().await,
            "delete the tenant's task role",
        )?;
        self.clients
            .s3
            .delete_object()
            .bucket(&self.infra.bucket)
            .key(Self::key_object(tenant))
            .send()
            .await
            .map_err(err("delete the tenant's stored key"))?;
        tracing::info!(tenant, "removed the tenant's IAM identity");
        Ok(())
    }
}

/// `Ok` for a success or a NoSuchEntity error.
fn ignore_missing<T, E>(
    result: Result<T, aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>>,
    what: &str,
) -> BackendResult<()>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some("NoSuchEntity") => Ok(()),
        Err(e) => Err(aws_error(what, e)),
    }
}

#[async_trait]
impl TenantIdentity for AwsTenants {
    async fn ensure(&self, tenant: &Tenant) -> BackendResult<TenantHandle> {
        let arn = self.ensure_user(&tenant.id).await?;
        if let Some(cipher) = &self.cipher {
            self.ensure_access_key(&tenant.id, cipher).await?;
        }
        self.task_role(&tenant.id).await?;
        Ok(TenantHandle { resource: arn })
    }
}
