//! TLS termination with rustls (ring): certificate loading and ALPN.

use crate::proxy::EdgeError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// First byte of a TLS handshake record: how a TLS client is told apart
/// from a plain HTTP one on the same listener.
pub(crate) const HANDSHAKE: u8 = 0x16;

/// A server configuration for the PEM certificate chain and key, offering
/// HTTP/2 and HTTP/1.1 through ALPN.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, EdgeError> {
    let error = |what: &Path, e: &dyn std::fmt::Display| EdgeError::Tls(format!("{}: {e}", what.display()));
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(cert, &e))?;
    if certs.is_empty() {
        return Err(error(cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| error(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EdgeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| EdgeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
