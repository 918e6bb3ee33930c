//! The control plane's trust when it runs with TLS (`berth server`): the cluster CA in the data
//! directory, the tokens, the serving certificate for the names clients use, and certificates for
//! clients in this same process (its own proxy), renewed like any other.

use crate::model::auth::{Authorizer, AwsKeys, Tokens, ADMIN_TOKEN_FILE};
use crate::state::error::Error;
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
    /// The same certificate for the HTTP port.
    pub http_tls: Arc<rustls::ServerConfig>,
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

/// Where several servers on one store keep their one cluster CA.
const SHARED_CA: &str = "trust/ca";

/// With several servers on etcd, one cluster CA for all: the first to start puts its CA in the
/// store (create-if-absent); every other writes that one into its data directory before
/// loading it, so any server's certificate verifies against any server's `ca.crt`.
pub fn share_ca(data_dir: &Path, state: &State) -> Result<(), Error> {
    use crate::store::{Compare, Op};
    let (cert_path, key_path) = (
        data_dir.join(berth_trust::ca::CA_CERT_FILE),
        data_dir.join(berth_trust::ca::CA_KEY_FILE),
    );
    let stored = |state: &State| -> Result<Option<(String, String)>, Error> {
        Ok(state
            .get_raw(SHARED_CA)?
            .and_then(|v| serde_json::from_slice::<(String, String)>(&v).ok()))
    };
    let pair = match stored(state)? {
        Some(p) => p,
        None => {
            Ca::load_or_create(data_dir).map_err(err)?;
            let read = |p: &Path| std::fs::read_to_string(p).map_err(err);
            let mine = (read(&cert_path)?, read(&key_path)?);
            let value = serde_json::to_vec(&mine).map_err(err)?;
            let absent = Compare::ModRevision {
                key: SHARED_CA.into(),
                revision: 0,
            };
            if state.txn(&[absent], vec![Op::Put(SHARED_CA.into(), value)])? {
                mine
            } else {
                stored(state)?.ok_or_else(|| err("the shared CA vanished"))?
            }
        }
    };
    berth_trust::files::write_secret(&key_path, &pair.1).map_err(err)?;
    std::fs::write(&cert_path, &pair.0).map_err(err)?;
    Ok(())
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
        let http_tls = berth_trust::server::http_server_config(&chain, &key).map_err(err)?;
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
            http_tls,
            cert_lifetime: config.cert_lifetime,
        })
    }

    /// TLS material for a client in this process, re-issued at two thirds of its life until the
    /// process ends.
    pub fn local_client(&self, kind: PeerKind, id: &str) -> Result<ClientTls, Error> {
        local_client(self.ca.clone(), self.cert_lifetime, kind, id)
    }
}

/// A client certificate from `ca` for a client in this process (its own proxy), re-issued at two
/// thirds of its life until the process ends.
pub fn local_client(
    ca: Arc<Ca>,
    lifetime: Duration,
    kind: PeerKind,
    id: &str,
) -> Result<ClientTls, Error> {
    let tls = ClientTls::with_ca_pem(ca.cert_pem()).map_err(err)?;
    let who = PeerIdentity::new(kind, id);
    let (issued, key) = ca.issue_local(&who, lifetime).map_err(err)?;
    tls.set_identity(&issued.certificate_pem, &key)
        .map_err(err)?;
    let renewed = tls.clone();
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

/// As `local_client`, with the CA read from `data_dir` (before the control plane has opened
/// it: a successor's proxy, taking over while the old process still holds the store).
pub fn local_client_from_dir(
    data_dir: &Path,
    lifetime: Duration,
    kind: PeerKind,
    id: &str,
) -> Result<ClientTls, Error> {
    let ca = Ca::load_or_create(data_dir).map_err(err)?;
    local_client(Arc::new(ca), lifetime, kind, id)
}
