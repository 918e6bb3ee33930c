//! The control plane's trust when it runs with TLS (`berth server`): the cluster CA in the data
//! directory, the tokens, the serving certificate for the names clients use, and certificates for
//! clients in this same process (its own proxy), renewed like any other.

use crate::auth::{Authorizer, AwsKeys, Tokens, ADMIN_TOKEN_FILE};
use crate::error::Error;
use crate::state::State;
use berth_trust::{Ca, ClientTls, PeerIdentity, PeerKind};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Mutual TLS and tokens. Without it (`berth dev`) the server is plaintext and open.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// Names and addresses on the serving certificate besides the defaults (the hostname,
    /// localhost, 127.0.0.1 and the listen address's IP when it is not unspecified).
    pub tls_sans: Vec<String>,
    /// How long agent and proxy certificates last (renewed at two thirds).
    pub cert_lifetime: Duration,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            tls_sans: Vec::new(),
            cert_lifetime: Duration::from_secs(30 * 86400),
        }
    }
}

pub struct Trust {
    pub ca: Arc<Ca>,
    pub auth: Arc<Authorizer>,
    pub server_tls: ServerTlsConfig,
    pub cert_lifetime: Duration,
}

pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The serving certificate's names: the defaults, then `extra`, without repeats.
pub fn server_names(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = hostname().into_iter().collect();
    names.push("localhost".into());
    names.push("127.0.0.1".into());
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Client(format!("trust: {e}"))
}

impl Trust {
    /// Blocking: reads or creates the CA and tokens under `data_dir`.
    pub fn open(
        data_dir: &Path,
        config: &TrustConfig,
        listen: SocketAddr,
        state: State,
    ) -> Result<Self, Error> {
        let ca = Ca::load_or_create(data_dir).map_err(err)?;
        let tokens = Tokens::open(state.clone(), data_dir, ca.fingerprint())?;
        let aws_keys = AwsKeys::open(state, data_dir)?;
        let admin_file = std::path::absolute(data_dir.join(ADMIN_TOKEN_FILE))
            .unwrap_or_else(|_| data_dir.join(ADMIN_TOKEN_FILE));
        let auth = Authorizer::on(tokens, ca.fingerprint().to_string(), admin_file)
            .with_aws_keys(aws_keys);
        let names = server_names(listen, &config.tls_sans);
        let (chain, key) = ca
            .issue_server(&names, Duration::from_secs(365 * 86400))
            .map_err(err)?;
        let server_tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(chain, key))
            .client_ca_root(Certificate::from_pem(ca.cert_pem()))
            .client_auth_optional(true)
            // A peer that never finishes its handshake does not hold a connection for long.
            .timeout(Duration::from_secs(10));
        tracing::info!(names = ?names, ca = %ca.fingerprint(), "TLS on; clients verify with DATA/ca.crt");
        Ok(Self {
            ca: Arc::new(ca),
            auth: Arc::new(auth),
            server_tls,
            cert_lifetime: config.cert_lifetime,
        })
    }

    /// TLS material for a client in this process, re-issued at two thirds of its life until the
    /// process ends.
    pub fn local_client(&self, kind: PeerKind, id: &str) -> Result<ClientTls, Error> {
        let tls = ClientTls::with_ca_pem(self.ca.cert_pem()).map_err(err)?;
        let who = PeerIdentity::new(kind, id);
        let (issued, key) = self.ca.issue_local(&who, self.cert_lifetime).map_err(err)?;
        tls.set_identity(&issued.certificate_pem, &key)
            .map_err(err)?;
        let (ca, lifetime, renewed) = (self.ca.clone(), self.cert_lifetime, tls.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lifetime * 2 / 3).await;
                match ca.issue_local(&who, lifetime) {
                    Ok((issued, key)) => {
                        if renewed.set_identity(&issued.certificate_pem, &key).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, identity = %who, "cannot renew"),
                }
            }
        });
        Ok(tls)
    }
}
