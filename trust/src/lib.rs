//! Berth's trust: the cluster CA (`ca`), the identities certificates carry (`identity`), token
//! formats (`token`), TLS to the control plane for every client (`client`), and how agents and
//! proxies get and renew their certificates (`enroll`), and the reconnect `backoff` every client
//! of the control plane shares.

pub mod backoff;
pub mod ca;
pub mod client;
pub mod enroll;
pub mod files;
pub mod identity;
pub mod server;
pub mod token;

pub use ca::Ca;
pub use client::ClientTls;
pub use identity::{PeerIdentity, PeerKind};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "no certificate in {dir}/tls yet: pass --join-token or --join-token-file (the server writes it to DATA/join.token)",
        dir = dir.display()
    )]
    NoJoinToken { dir: PathBuf },
    #[error(
        "the join token is not of the form BERTHJOIN1-… (copy DATA/join.token from the server)"
    )]
    MalformedJoinToken,
    #[error("the control plane refused: {0}")]
    Refused(String),
    #[error(
        "the certificate in {path} has expired; start again with --join-token or --join-token-file (or remove {dir})",
        path = path.display(),
        dir = dir.display()
    )]
    Expired { path: PathBuf, dir: PathBuf },
}
