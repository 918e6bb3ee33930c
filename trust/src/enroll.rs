//! An agent's or proxy's certificate: joined once with the join token, kept in its data
//! directory (`tls/identity.pem`: certificate and key, owner-only; `tls/ca.crt`), and renewed over
//! mutual TLS at two thirds of its life.

use crate::ca::new_key_and_csr;
use crate::client::ClientTls;
use crate::identity::PeerKind;
use crate::token::JoinToken;
use crate::{files, TrustError};
use berth_proto::v1::certificates_client::CertificatesClient;
use berth_proto::v1::{CertificateReply, JoinRequest, RenewCertificateRequest};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const IDENTITY_FILE: &str = "tls/identity.pem";
pub const CA_FILE: &str = "tls/ca.crt";

/// How to get (or find) this process's certificate.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The control plane, `https://HOST:PORT`.
    pub server: String,
    /// The agent's or proxy's data directory.
    pub dir: PathBuf,
    pub kind: PeerKind,
    /// Needed only when there is no certificate in `dir` yet.
    pub join_token: Option<String>,
    /// The cluster CA file; without it the join token's fingerprint pins the CA.
    pub ca_file: Option<PathBuf>,
    /// A node id the agent already has.
    pub requested_id: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads a join token from a file (trailing whitespace ignored).
pub fn read_token_file(path: &Path) -> Result<String, TrustError> {
    Ok(files::read(path)?.trim().to_string())
}

impl Enrollment {
    /// The certificate in `dir`, or a new one from `Join`. Retries while the control plane is
    /// unreachable; fails at once when it refuses the token.
    pub async fn load_or_join(&self) -> Result<ClientTls, TrustError> {
        let identity = self.dir.join(IDENTITY_FILE);
        let mut requested_id = self.requested_id.clone();
        if identity.exists() {
            let tls = ClientTls::with_ca_pem(&files::read(&self.dir.join(CA_FILE))?)?;
            let pem = files::read(&identity)?;
            tls.set_identity(&pem, &pem)?;
            let expired = tls.validity_ms().is_some_and(|(_, end)| end <= now_ms());
            if !expired {
                return Ok(tls);
            }
            if self.join_token.is_none() {
                return Err(TrustError::Expired {
                    path: identity,
                    dir: self.dir.join("tls"),
                });
            }
            // Offline past its certificate's life: join again as the same node.
            tracing::warn!("the certificate has expired; joining again with the join token");
            if let Some(who) = tls.identity() {
                requested_id = who.id;
            }
        }
        let raw = self.join_token.as_deref().ok_or(TrustError::NoJoinToken {
            dir: self.dir.clone(),
        })?;
        let token = JoinToken::parse(raw).ok_or(TrustError::MalformedJoinToken)?;
        let tls = match &self.ca_file {
            Some(f) => ClientTls::with_ca_pem(&files::read(f)?)?,
            None => ClientTls::pinned(&token.ca_fingerprint),
        };
        let (key_pem, csr_pem) = new_key_and_csr()?;
        let request = JoinRequest {
            join_token: raw.trim().to_string(),
            csr_pem,
            kind: self.kind.as_str().into(),
            requested_id,
        };
        let mut backoff =
            crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        // Several servers (comma-separated): each in turn until one answers.
        let servers = server_list(&self.server);
        let mut attempt = 0;
        let reply = loop {
            let server = servers[attempt % servers.len()];
            attempt += 1;
            let endpoint = tls.endpoint(server)?;
            match join_once(&tls, endpoint, request.clone()).await {
                Outcome::Joined(reply) => break reply,
                Outcome::Refused(why) => return Err(TrustError::Refused(why)),
                Outcome::Unreachable(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(%server, error = %e, retry_in = ?wait, "cannot reach the control plane to join");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        tls.set_ca_pem(&reply.ca_pem)?;
        if tls.ca_fingerprint() != token.ca_fingerprint && self.ca_file.is_none() {
            return Err(TrustError::Refused(
                "the control plane answered with a CA the join token does not name".into(),
            ));
        }
        save(&self.dir, &reply, &key_pem)?;
        tls.set_identity(&reply.certificate_pem, &key_pem)?;
        tracing::info!(identity = %reply.identity, "joined the cluster; certificate saved");
        Ok(tls)
    }
}

enum Outcome {
    Joined(CertificateReply),
    Refused(String),
    Unreachable(String),
}

async fn join_once(
    tls: &ClientTls,
    endpoint: tonic::transport::Endpoint,
    request: JoinRequest,
) -> Outcome {
    let channel = match tls.connect(endpoint).await {
        Ok(c) => c,
        Err(e) => {
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why = format!("{why}: {c}");
                cause = c.source();
            }
            // A server that fails verification will not pass on a retry.
            if why.contains("certificate") || why.contains("join token") {
                return Outcome::Refused(format!("cannot verify the control plane: {why}"));
            }
            return Outcome::Unreachable(why);
        }
    };
    match CertificatesClient::new(channel).join(request).await {
        Ok(r) => Outcome::Joined(r.into_inner()),
        Err(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown) => {
            Outcome::Unreachable(s.message().to_string())
        }
        Err(s) => Outcome::Refused(s.message().to_string()),
    }
}

fn save(dir: &Path, reply: &CertificateReply, key_pem: &str) -> Result<(), TrustError> {
    files::write_public(&dir.join(CA_FILE), &reply.ca_pem)?;
    files::write_secret(
        &dir.join(IDENTITY_FILE),
        &format!("{}{}", reply.certificate_pem, key_pem),
    )
}

/// When to renew: at two thirds of the certificate's life.
pub fn renew_at_ms(not_before: i64, not_after: i64) -> i64 {
    not_before + (not_after - not_before) * 2 / 3
}

/// Renews the certificate before it expires, over mutual TLS with the current one. Runs until
/// its task is aborted.
pub async fn renew_forever(tls: ClientTls, server: String, dir: PathBuf) {
    loop {
        let Some((not_before, not_after)) = tls.validity_ms() else {
            return;
        };
        let wait = (renew_at_ms(not_before, not_after) - now_ms()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let mut renewed = Err(TrustError::Refused("no server".into()));
        for one in server_list(&server) {
            renewed = renew_once(&tls, one, &dir).await;
            if renewed.is_ok() {
                break;
            }
        }
        match renewed {
            Ok(reply) => {
                tracing::info!(identity = %reply.identity, expires_at_ms = reply.expires_at_ms, "certificate renewed");
            }
            Err(e) => {
                let left = (not_after - now_ms()).max(0) as u64;
                let retry = Duration::from_millis(left / 10)
                    .clamp(Duration::from_secs(1), Duration::from_secs(30));
                tracing::warn!(error = %e, retry_in = ?retry, "certificate renewal failed");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// The servers of a `--server` value: one URL, or several comma-separated.
fn server_list(servers: &str) -> Vec<&str> {
    let list: Vec<&str> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        vec![servers]
    } else {
        list
    }
}

async fn renew_once(
    tls: &ClientTls,
    server: &str,
    dir: &Path,
) -> Result<CertificateReply, TrustError> {
    let (key_pem, csr_pem) = new_key_and_csr()?;
    let endpoint = tls.endpoint(server)?.timeout(Duration::from_secs(10));
    let channel = tls
        .connect(endpoint)
        .await
        .map_err(|e| TrustError::Refused(format!("cannot reach {server}: {e}")))?;
    let reply = CertificatesClient::new(channel)
        .renew_certificate(RenewCertificateRequest { csr_pem })
        .await
        .map_err(|s| TrustError::Refused(s.message().to_string()))?
        .into_inner();
    save(dir, &reply, &key_pem)?;
    tls.set_identity(&reply.certificate_pem, &key_pem)?;
    Ok(reply)
}
