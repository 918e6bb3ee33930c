//! HTTPS listeners: their ACM certificates (the first the default, the rest chosen by SNI) and
//! security policy, checked inside the listener's commit so a certificate deleted meanwhile
//! makes the decision run again; Add/Remove/DescribeListenerCertificates.

use super::{keys, same};
use crate::model::certificates::{self, CertificateRecord};
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State, Tx};
use berth_core::tls::{policy, DEFAULT_POLICY, POLICIES};
use berth_proto::v1::ElbListener;

/// Certificates a listener may hold besides its default (ALB's quota).
pub const CERTIFICATES_PER_LISTENER: usize = 25;

fn certificate_not_found(arn: &str, why: &str) -> Error {
    Error::elb(
        "CertificateNotFound",
        format!(
            "Certificates: certificate {} {why}; `aws acm list-certificates` lists them",
            quote(arn)
        ),
    )
}

/// The certificate `arn` names, read as part of the commit; it must be issued.
fn issued(tx: &mut Tx<'_>, arn: &str) -> Result<String> {
    let Some(id) = certificates::id_of(arn) else {
        return Err(certificate_not_found(arn, "is not an ACM certificate ARN"));
    };
    let r: Option<CertificateRecord> = tx
        .get_raw(&certificates::key_of(id))?
        .and_then(|b| serde_json::from_slice(&b).ok());
    match r {
        None => Err(certificate_not_found(arn, "does not exist")),
        Some(r) if r.issued.is_none() => Err(Error::elb(
            "UnsupportedCertificate",
            format!(
                "Certificates: certificate {} is {}; attach it once it is ISSUED (aws acm wait certificate-validated)",
                r.arn, r.status
            ),
        )),
        Some(r) => Ok(r.arn),
    }
}

/// The policy a request names (the default when none), if Berth serves it.
pub(crate) fn ssl_policy(name: Option<&str>) -> Result<String> {
    let name = name.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_POLICY);
    if policy(name).is_none() {
        let known: Vec<&str> = POLICIES.iter().map(|p| p.name).collect();
        return Err(Error::elb(
            "SSLPolicyNotFound",
            format!(
                "SslPolicy: {} is not served by Berth's proxy (rustls has no CBC ciphers, RSA key exchange or TLS 1.0/1.1); use one of {}",
                quote(name),
                known.join(", ")
            ),
        ));
    }
    Ok(name.to_string())
}

/// A listener's certificates and policy for `protocol`: HTTPS needs at least one certificate
/// (each issued), HTTP takes none.
pub(crate) fn settle(
    tx: &mut Tx<'_>,
    protocol: &str,
    certs: &[String],
    policy: Option<&str>,
) -> Result<(Vec<String>, String)> {
    if protocol != "HTTPS" {
        if !certs.is_empty() || policy.is_some_and(|p| !p.is_empty()) {
            return Err(Error::elb(
                "ValidationError",
                "Certificates: an HTTP listener takes no certificate or SslPolicy; use Protocol HTTPS",
            ));
        }
        return Ok((Vec::new(), String::new()));
    }
    let [default, ..] = certs else {
        return Err(Error::elb(
            "CertificateNotFound",
            "Certificates: an HTTPS listener needs a certificate (Certificates=CertificateArn=ARN); import one with `aws acm import-certificate` or request one with `aws acm request-certificate`",
        ));
    };
    if certs.len() > 1 {
        return Err(Error::elb(
            "ValidationError",
            "Certificates: give one default certificate here; add the others with add-listener-certificates",
        ));
    }
    let arn = issued(tx, default)?;
    Ok((vec![arn], ssl_policy(policy)?))
}

fn listener(tx: &mut Tx<'_>, arn: &str) -> Result<(String, ElbListener)> {
    let key = super::listener_key(arn)?;
    let l = tx
        .get::<ElbListener>(&key)?
        .filter(|l| same(&l.arn, arn))
        .ok_or_else(|| super::listener_not_found(arn))?;
    Ok((key, l))
}

/// Adds SNI certificates to an HTTPS listener; adding one it has is a no-op, as in ELBv2.
pub fn add_listener_certificates(
    state: &State,
    arn: &str,
    certs: &[String],
) -> Result<Vec<(String, bool)>> {
    if certs.is_empty() {
        return Err(Error::elb(
            "ValidationError",
            "Certificates: give at least one CertificateArn",
        ));
    }
    state.update(|tx| {
        let (key, mut l) = listener(tx, arn)?;
        if l.protocol != "HTTPS" {
            return Err(Error::elb(
                "ValidationError",
                format!(
                    "ListenerArn: {} is an {} listener; certificates go on HTTPS listeners",
                    l.arn, l.protocol
                ),
            ));
        }
        let mut added = Vec::new();
        for c in certs {
            let arn = issued(tx, c)?;
            if !l
                .certificate_arns
                .iter()
                .any(|h| certificates::same(h, &arn))
            {
                l.certificate_arns.push(arn.clone());
            }
            added.push((arn, false));
        }
        if l.certificate_arns.len() > CERTIFICATES_PER_LISTENER + 1 {
            return Err(Error::elb(
                "TooManyCertificates",
                format!(
                    "Certificates: a listener holds at most {CERTIFICATES_PER_LISTENER} certificates besides its default"
                ),
            ));
        }
        Ok((added, vec![put(key, &l)]))
    })
}

/// Removes SNI certificates; the default one is changed with ModifyListener, not removed.
pub fn remove_listener_certificates(state: &State, arn: &str, certs: &[String]) -> Result<()> {
    state.update(|tx| {
        let (key, mut l) = listener(tx, arn)?;
        for c in certs {
            if l.certificate_arns
                .first()
                .is_some_and(|d| certificates::same(d, c))
            {
                return Err(Error::elb(
                    "OperationNotPermitted",
                    format!(
                        "Certificates: {} is the listener's default certificate; change it with modify-listener --certificates",
                        quote(c)
                    ),
                ));
            }
            l.certificate_arns.retain(|h| !certificates::same(h, c));
        }
        Ok(((), vec![put(key, &l)]))
    })
}

/// A listener's certificates, the default first (IsDefault true).
pub fn listener_certificates(state: &State, arn: &str) -> Result<Vec<(String, bool)>> {
    let l = super::get_listener(state, arn)?;
    Ok(l.certificate_arns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i == 0))
        .collect())
}

/// The HTTPS listeners, for the routing table.
pub fn https_listeners(state: &State) -> Result<Vec<ElbListener>> {
    Ok(state
        .scan::<ElbListener>(keys::LISTENERS)?
        .into_iter()
        .filter(|l| l.protocol == "HTTPS")
        .collect())
}

/// The load balancers whose listeners serve the certificate `arn` (ACM's InUseBy).
pub fn certificate_users(state: &State, arn: &str) -> Result<Vec<String>> {
    users_of(state.scan(keys::LISTENERS)?, arn)
}

/// `certificate_users`, read as part of a commit.
pub fn certificate_users_in(tx: &mut Tx<'_>, arn: &str) -> Result<Vec<String>> {
    users_of(tx.scan(keys::LISTENERS)?, arn)
}

fn users_of(listeners: Vec<ElbListener>, arn: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = listeners
        .into_iter()
        .filter(|l| {
            l.certificate_arns
                .iter()
                .any(|c| certificates::same(c, arn))
        })
        .map(|l| l.load_balancer_arn)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// What certificates need to know of load balancers.
pub const USERS: certificates::Users = certificates::Users {
    now: certificate_users,
    in_commit: certificate_users_in,
};
