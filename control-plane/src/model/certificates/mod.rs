//! ACM certificates: imported ones and ones Berth obtains by ACME, stored as JSON under
//! `acm/cert/ID` with the private key sealed (`secrets::key`, the same at-rest protection as
//! secrets), served in ACM's wire shapes (`ops`), and opened only to build the routing table for
//! proxies (`for_proxies`). No description, list, event or log carries a key.

pub mod ops;
pub mod orders;
pub mod pem;
#[cfg(test)]
mod tests;

use crate::model::secrets::{arn_prefix, key, now, AwsError, AwsResult};
use crate::state::error::Result;
use crate::state::State;
use crate::store::Op;
use berth_proto::v1::TlsCertificate;
use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "acm/cert/";

/// Keys under which the leader keeps the HTTP-01 challenges of orders in progress.
pub const CHALLENGES: &str = "acm/challenge/";

/// Who serves a certificate (the load balancers whose listeners hold it), given by the caller:
/// load balancers know their certificates, certificates do not know load balancers.
#[derive(Clone, Copy)]
pub struct Users {
    pub now: fn(&State, &str) -> Result<Vec<String>>,
    /// The same, read as part of a commit (it decides again if a listener changed).
    pub in_commit: fn(&mut crate::state::Tx<'_>, &str) -> Result<Vec<String>>,
}

pub fn key_of(id: &str) -> String {
    format!("{PREFIX}{id}")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// What a certificate's PEM says about it, read once when it is stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Issued {
    /// The leaf certificate, PEM.
    pub certificate_pem: String,
    /// The intermediates after it, PEM (may be empty).
    pub chain_pem: String,
    /// The private key, sealed under `seal_name(id, generation)`.
    pub sealed_key: String,
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: f64,
    pub not_after: f64,
    pub key_algorithm: String,
    pub signature_algorithm: String,
    pub names: Vec<String>,
}

/// An ACME order's progress, for a certificate Berth requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Validation {
    /// HTTP (HTTP-01) or DNS (DNS-01 through the configured webhook).
    pub method: String,
    /// PENDING_VALIDATION, SUCCESS or FAILED per domain, as ACM's DomainValidation says.
    pub status: String,
    /// When the next order may be tried (after a failure, backing off).
    #[serde(default)]
    pub retry_after: f64,
    /// Failed attempts in a row.
    #[serde(default)]
    pub failures: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertificateRecord {
    pub id: String,
    pub arn: String,
    pub domain_name: String,
    pub sans: Vec<String>,
    /// IMPORTED or AMAZON_ISSUED (obtained by ACME).
    pub kind: String,
    /// PENDING_VALIDATION, ISSUED, FAILED, EXPIRED.
    pub status: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Why it failed, in words (ACM's FailureReason is an enum; this goes in the event).
    #[serde(default)]
    pub failure_detail: String,
    pub created_at: f64,
    #[serde(default)]
    pub imported_at: Option<f64>,
    #[serde(default)]
    pub issued_at: Option<f64>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub issued: Option<Issued>,
    #[serde(default)]
    pub validation: Option<Validation>,
    /// Renewal of an issued ACME certificate: PENDING_AUTO_RENEWAL, SUCCESS or FAILED, and when.
    #[serde(default)]
    pub renewal: Option<(String, f64, Option<String>)>,
    /// The key algorithm a requested certificate's key is made with (EC_prime256v1, EC_secp384r1).
    #[serde(default)]
    pub key_algorithm: String,
    /// Bumped at each new key: what the key is sealed under.
    pub generation: u64,
    /// The token of RequestCertificate's IdempotencyToken, to answer a retry with the same ARN.
    #[serde(default)]
    pub idempotency_token: String,
    /// What happened to it, newest last (a few): renewals, failures.
    #[serde(default)]
    pub events: Vec<(f64, String)>,
}

impl CertificateRecord {
    pub fn push_event(&mut self, message: String) {
        tracing::info!(certificate = %self.arn, "{message}");
        self.events.push((now(), message));
        let extra = self.events.len().saturating_sub(20);
        self.events.drain(..extra);
    }
}

/// What a key is sealed under: the certificate and its key's generation, so a sealed key copied
/// to another record or generation does not open.
pub fn seal_name(id: &str, generation: u64) -> String {
    format!("acm/{id}/{generation}")
}

pub fn seal_key(id: &str, generation: u64, key_pem: &str) -> AwsResult<String> {
    key::seal(&seal_name(id, generation), key_pem.as_bytes())
        .map_err(|e| AwsError::new("InvalidParameterException", e))
}

pub fn arn_of(id: &str) -> String {
    format!("{}:certificate/{id}", arn_prefix("acm"))
}

/// The id an ACM ARN ends in; any region and account, as other ARNs are read.
pub fn id_of(arn: &str) -> Option<&str> {
    let (head, id) = arn.rsplit_once(":certificate/")?;
    (head.starts_with("arn:") && head.contains(":acm:") && !id.is_empty() && !id.contains('/'))
        .then_some(id)
}

fn load(state: &State, key: &str) -> Result<Option<CertificateRecord>> {
    Ok(state
        .get_raw(key)?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

pub fn put_op(r: &CertificateRecord) -> Op {
    Op::Put(key_of(&r.id), serde_json::to_vec(r).unwrap_or_default())
}

pub fn list(state: &State) -> Result<Vec<CertificateRecord>> {
    let mut out = Vec::new();
    for k in state.scan_keys(PREFIX)? {
        if let Some(r) = load(state, &k)? {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    Ok(out)
}

pub fn get(state: &State, arn: &str) -> Result<Option<CertificateRecord>> {
    match id_of(arn) {
        Some(id) => Ok(load(state, &key_of(id))?.filter(|r| r.id == id)),
        None => Ok(None),
    }
}

/// Two ARNs of one certificate, whatever region and account a client addressed.
pub fn same(a: &str, b: &str) -> bool {
    id_of(a).is_some() && id_of(a) == id_of(b)
}

/// A certificate as a proxy serves it: chain and opened key. None when it has no usable
/// material (not issued yet, or its key does not open with this server's key).
pub fn for_proxy(r: &CertificateRecord) -> Option<TlsCertificate> {
    let issued = r.issued.as_ref()?;
    let key = match key::open(&seal_name(&r.id, r.generation), &issued.sealed_key) {
        Ok(k) => String::from_utf8(k).ok()?,
        Err(e) => {
            tracing::warn!(certificate = %r.arn, "cannot serve this certificate: {e}");
            return None;
        }
    };
    Some(TlsCertificate {
        arn: r.arn.clone(),
        chain_pem: format!("{}{}", issued.certificate_pem, issued.chain_pem),
        key_pem: key,
        names: issued.names.clone(),
    })
}
