//! What ACME orders write: a certificate issued (or renewed) with its new key sealed, a failed
//! attempt (FAILED after a few in a row, with ACM's FailureReason), the HTTP-01 challenges the
//! proxies answer meanwhile, and the ACME account's credentials (sealed: they sign for it).
//! Each is one `State::update`, so only the fenced leader's commits land.

use super::{key_of, pem, put_op, seal_key, CertificateRecord, CHALLENGES};
use crate::model::secrets::{key, now};
use crate::state::error::{Error, Result};
use crate::state::State;
use crate::store::Op;
use serde::{Deserialize, Serialize};

/// Attempts in a row before a certificate that was never issued is FAILED.
pub const ATTEMPTS: u32 = 3;

const ACCOUNT: &str = "acm/account";

fn load(state: &State, id: &str) -> Result<Option<CertificateRecord>> {
    Ok(state
        .get_raw(&key_of(id))?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Changes the record `id` by `f` (nothing when it was deleted meanwhile).
fn change(state: &State, id: &str, f: impl Fn(&mut CertificateRecord) -> Result<()>) -> Result<()> {
    let key = key_of(id);
    state.update(|tx| {
        let Some(mut r) = tx
            .get_raw(&key)?
            .and_then(|b| serde_json::from_slice::<CertificateRecord>(&b).ok())
        else {
            return Ok(((), vec![]));
        };
        f(&mut r)?;
        Ok(((), vec![put_op(&r)]))
    })
}

/// The certificate chain an order gave (leaf first) and the key made for it: issued.
pub fn issued(state: &State, id: &str, chain_pem: &str, key_pem: &str) -> Result<()> {
    let (leaf, rest) = split_leaf(chain_pem);
    let material = pem::read(&leaf, &rest, key_pem)
        .map_err(|e| Error::Client(format!("the CA's certificate: {}", e.message)))?;
    let renewing = load(state, id)?.is_some_and(|r| r.issued.is_some());
    change(state, id, |r| {
        let mut m = material.clone();
        r.generation += 1;
        m.sealed_key =
            seal_key(&r.id, r.generation, key_pem).map_err(|e| Error::Client(e.message))?;
        r.status = "ISSUED".into();
        r.issued_at = Some(now());
        r.failure_reason = None;
        r.failure_detail.clear();
        if let Some(v) = r.validation.as_mut() {
            v.status = "SUCCESS".into();
            v.failures = 0;
            v.retry_after = 0.0;
        }
        let until = m.not_after;
        r.issued = Some(m);
        if renewing {
            r.renewal = Some(("SUCCESS".into(), now(), None));
            r.push_event(format!(
                "renewed; the new certificate is valid until {until:.0}"
            ));
        } else {
            r.push_event(format!("issued; valid until {until:.0}"));
        }
        Ok(())
    })
}

/// An order that failed: retried later, and FAILED (or, for a renewal, the renewal FAILED)
/// after `ATTEMPTS` in a row.
pub fn failed(state: &State, id: &str, reason: &str, detail: &str) -> Result<()> {
    change(state, id, |r| {
        let v = r.validation.get_or_insert_with(Default::default);
        v.failures += 1;
        // 5 s, 20 s, 80 s… up to an hour.
        let wait = (5.0 * 4f64.powi(v.failures as i32 - 1)).min(3600.0);
        v.retry_after = now() + wait;
        let last = v.failures >= ATTEMPTS;
        let attempt = v.failures;
        if r.issued.is_some() {
            let status = if last {
                "FAILED"
            } else {
                "PENDING_AUTO_RENEWAL"
            };
            r.renewal = Some((status.into(), now(), Some(reason.to_string())));
        } else if last {
            r.status = "FAILED".into();
            r.failure_reason = Some(reason.to_string());
            if let Some(v) = r.validation.as_mut() {
                v.status = "FAILED".into();
            }
        }
        r.failure_detail = detail.to_string();
        r.push_event(format!(
            "ACME order failed (attempt {attempt} of {ATTEMPTS}): {detail}"
        ));
        Ok(())
    })
}

/// Publishes HTTP-01 answers for the proxies (key authorizations are public by design).
pub fn offer_challenges(state: &State, answers: &[(String, String)]) -> Result<()> {
    let ops = answers
        .iter()
        .map(|(token, auth)| Op::Put(format!("{CHALLENGES}{token}"), auth.as_bytes().to_vec()))
        .collect();
    state.commit(ops)
}

pub fn withdraw_challenges(state: &State, tokens: &[String]) -> Result<()> {
    let ops = tokens
        .iter()
        .map(|t| Op::Delete(format!("{CHALLENGES}{t}")))
        .collect();
    state.commit(ops)
}

#[derive(Serialize, Deserialize)]
struct Account {
    directory: String,
    sealed: String,
}

/// The ACME account credentials (JSON) kept for `directory`, if any.
pub fn account(state: &State, directory: &str) -> Result<Option<String>> {
    let Some(raw) = state.get_raw(ACCOUNT)? else {
        return Ok(None);
    };
    let Ok(a) = serde_json::from_slice::<Account>(&raw) else {
        return Ok(None);
    };
    if a.directory != directory {
        return Ok(None);
    }
    Ok(key::open(ACCOUNT, &a.sealed)
        .ok()
        .and_then(|b| String::from_utf8(b).ok()))
}

pub fn keep_account(state: &State, directory: &str, credentials: &str) -> Result<()> {
    let sealed = key::seal(ACCOUNT, credentials.as_bytes()).map_err(Error::Client)?;
    let a = Account {
        directory: directory.to_string(),
        sealed,
    };
    state.commit(vec![Op::Put(
        ACCOUNT.to_string(),
        serde_json::to_vec(&a).unwrap_or_default(),
    )])
}

/// The leaf (first PEM certificate) and the rest of a chain.
fn split_leaf(chain: &str) -> (String, String) {
    const END: &str = "-----END CERTIFICATE-----";
    match chain.find(END) {
        Some(i) => {
            let cut = i + END.len();
            (
                chain[..cut].to_string() + "\n",
                chain[cut..].trim_start().to_string(),
            )
        }
        None => (chain.to_string(), String::new()),
    }
}

/// What is due now: requested certificates waiting for an order, and issued ACME certificates
/// past two thirds of their lifetime.
pub fn due(state: &State) -> Result<Vec<CertificateRecord>> {
    let t = now();
    Ok(super::list(state)?
        .into_iter()
        .filter(|r| r.kind == "AMAZON_ISSUED")
        .filter(|r| r.validation.as_ref().is_none_or(|v| v.retry_after <= t))
        .filter(|r| match (&r.issued, r.status.as_str()) {
            (None, "PENDING_VALIDATION") => true,
            (Some(i), _) => {
                let renew_at = i.not_before + (i.not_after - i.not_before) * 2.0 / 3.0;
                t >= renew_at && r.renewal.as_ref().is_none_or(|(s, _, _)| s != "FAILED")
            }
            _ => false,
        })
        .collect())
}
