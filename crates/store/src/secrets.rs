//! Secrets at rest: AES-256-GCM with a master key from
//! `EASYDEPLOY_MASTER_KEY` (64 hex characters) or a key file generated in
//! the data dir (mode 0600). Sealed values read `enc:v1:<hex nonce+ciphertext>`.

use crate::{StoreError, StoreResult};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::path::Path;

const PREFIX: &str = "enc:v1:";

/// The key sealing every secret the store keeps.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&bytes.into()),
        }
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> StoreResult<Self> {
        let text = text.trim();
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<_>>()
            .unwrap_or_default();
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            StoreError::Key(
                "the master key must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`"
                    .into(),
            )
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// `EASYDEPLOY_MASTER_KEY` when set, else the key file at `path`,
    /// created (mode 0600) with a random key when missing.
    pub fn from_env_or_file(path: &Path) -> StoreResult<Self> {
        if let Ok(value) = std::env::var("EASYDEPLOY_MASTER_KEY") {
            if !value.trim().is_empty() {
                return Self::from_hex(&value);
            }
        }
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Key(format!("cannot read {}: {e}", path.display()))),
        }
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(format!("{hex}\n").as_bytes()))
            .map_err(|e| StoreError::Key(format!("cannot create {}: {e}", path.display())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Encrypts `plain`; `purpose` (e.g. `env`) is authenticated with it,
    /// so a value cannot be moved to another kind of field.
    pub fn seal(&self, purpose: &str, plain: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: purpose.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = String::with_capacity(PREFIX.len() + 2 * (12 + sealed.len()));
        out.push_str(PREFIX);
        for b in nonce.iter().chain(sealed.iter()) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Decrypts a value made by [`MasterKey::seal`]; values stored before
    /// encryption (without the prefix) are returned as they are.
    pub fn open(&self, purpose: &str, stored: &str) -> StoreResult<String> {
        let Some(hex) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect();
        let wrong = || {
            StoreError::Key(format!(
                "a stored {purpose} secret cannot be decrypted: is EASYDEPLOY_MASTER_KEY (or master.key) the one it was written with?"
            ))
        };
        let bytes = bytes.filter(|b| b.len() > 12).ok_or_else(wrong)?;
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_purpose() {
        let key = MasterKey::generate();
        let sealed = key.seal("env", "hunter2");
        assert!(MasterKey::is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, key.seal("env", "hunter2"), "nonces differ");
        assert_eq!(key.open("env", &sealed).unwrap(), "hunter2");
        assert!(key.open("webhook", &sealed).is_err(), "purpose is authenticated");
        assert!(
            MasterKey::generate().open("env", &sealed).is_err(),
            "another key fails"
        );
        assert_eq!(key.open("env", "legacy").unwrap(), "legacy");
        assert!(key.open("env", "enc:v1:zz").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::from_env_or_file(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = MasterKey::from_env_or_file(&path).unwrap();
        assert_eq!(again.open("x", &first.seal("x", "v")).unwrap(), "v");
        assert!(MasterKey::from_hex("abc").is_err());
    }
}
