//! The HTTPS part of the routing table: each HTTPS listener port with its certificates, keys
//! opened here for the proxies (the table goes only to them), and the ACME challenges the
//! proxies answer while an order is being validated.

use crate::model::certificates;
use crate::model::elb::tls::https_listeners;
use crate::state::error::Result;
use crate::state::State;
use berth_proto::v1::{AcmeChallenge, TlsListener};

pub use crate::model::certificates::CHALLENGES;

pub(super) fn listeners(state: &State) -> Result<Vec<TlsListener>> {
    let mut out = Vec::new();
    for l in https_listeners(state)? {
        let mut certs = Vec::new();
        for arn in &l.certificate_arns {
            if let Some(c) = certificates::get(state, arn)?
                .as_ref()
                .and_then(certificates::for_proxy)
            {
                certs.push(c);
            }
        }
        out.push(TlsListener {
            port: l.port,
            ssl_policy: l.ssl_policy.clone(),
            certificates: certs,
        });
    }
    out.sort_by_key(|l| l.port);
    Ok(out)
}

pub(super) fn challenges(state: &State) -> Result<Vec<AcmeChallenge>> {
    let mut out = Vec::new();
    for k in state.scan_keys(CHALLENGES)? {
        if let Some(raw) = state.get_raw(&k)? {
            let token = k[CHALLENGES.len()..].to_string();
            out.push(AcmeChallenge {
                token,
                key_authorization: String::from_utf8_lossy(&raw).into_owned(),
            });
        }
    }
    Ok(out)
}
