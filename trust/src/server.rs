//! TLS for a server port that is not gRPC (the control plane's HTTP port): the same serving
//! certificate as gRPC, no client certificates (callers there present bearer tokens).

use crate::{files, TrustError};
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use std::sync::Arc;

/// A rustls server configuration for `chain_pem` and its `key_pem`, speaking HTTP/1.1.
pub fn http_server_config(chain_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TrustError> {
    let chain: Vec<CertificateDer<'static>> = files::pem_certificates(chain_pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = files::pem_private_key(key_pem)
        .ok_or_else(|| TrustError::Certificate("the serving key does not parse".into()))?;
    let mut config = ServerConfig::builder_with_provider(crate::client::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TrustError::Certificate(format!("serving certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
