//! Revoked agent and proxy identities (`berth node revoke`, `berth cert revoke`), stored at
//! `trust/revoked/KIND/ID`. Every peer call reads the key (no cache), so a revoked certificate
//! is refused on its next call on every server sharing the store; `live::revocations` ends the
//! streams this server holds for it as soon as the revoke commits, wherever it was made.

use crate::state::error::{Error, Result};
use crate::state::{put, State};
use crate::time;
use berth_proto::v1::{ContainerInstance, RevokedIdentity};
use berth_trust::{PeerIdentity, PeerKind};

pub(crate) const PREFIX: &str = "trust/revoked/";

fn key(who: &PeerIdentity) -> String {
    format!("{PREFIX}{}/{}", who.kind.as_str(), who.id)
}

pub(crate) fn from_key(key: &str) -> Option<PeerIdentity> {
    let (kind, id) = key.strip_prefix(PREFIX)?.split_once('/')?;
    Some(PeerIdentity::new(PeerKind::parse(kind)?, id))
}

/// The revocation of `who`, if it was revoked.
pub fn revoked(state: &State, who: &PeerIdentity) -> Result<Option<RevokedIdentity>> {
    state.get(&key(who))
}

/// The message a revoked peer is refused with.
pub fn refusal(r: &RevokedIdentity) -> tonic::Status {
    let reason = if r.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.reason)
    };
    tonic::Status::permission_denied(format!(
        "the certificate of {} was revoked at {}{reason}; this host may join again only as a new node or proxy (a fresh --data directory and --join-token)",
        r.identity, r.revoked_at
    ))
}

/// `node:ID`, `proxy:ID`, or a node's id or name alone.
pub fn resolve(state: &State, given: &str) -> Result<PeerIdentity> {
    if let Some(who) = PeerIdentity::parse(given) {
        return Ok(who);
    }
    let nodes: Vec<ContainerInstance> = state.scan(crate::state::keys::NODES)?;
    let matching: Vec<_> = nodes
        .iter()
        .filter(|n| n.ec2_instance_id == given || n.name == given)
        .collect();
    match matching.as_slice() {
        [one] => Ok(PeerIdentity::new(PeerKind::Node, &one.ec2_instance_id)),
        [] => Err(Error::NotFound {
            kind: "Node",
            name: crate::state::error::cut(given),
            hint: "give a node's id or name (`berth node list`), or node:ID / proxy:ID".into(),
        }),
        many => Err(Error::Client(format!(
            "identity: {} nodes are named {}; give the id ({})",
            many.len(),
            crate::state::error::quote(given),
            many.iter()
                .map(|n| n.ec2_instance_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Revokes `who` (kept if already revoked).
pub fn revoke(state: &State, who: &PeerIdentity, reason: &str) -> Result<RevokedIdentity> {
    let k = key(who);
    state.update(|tx| {
        if let Some(r) = tx.get::<RevokedIdentity>(&k)? {
            return Ok((r, Vec::new()));
        }
        let r = RevokedIdentity {
            identity: who.common_name(),
            revoked_at: time::now(),
            reason: crate::state::error::cut(reason),
        };
        let op = put(k.clone(), &r);
        Ok((r, vec![op]))
    })
}

pub fn list(state: &State) -> Result<Vec<RevokedIdentity>> {
    state.scan(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_keys_name_the_identity() {
        let who = PeerIdentity::new(PeerKind::Proxy, "p1");
        assert_eq!(key(&who), "trust/revoked/proxy/p1");
        assert_eq!(from_key(&key(&who)), Some(who));
        assert_eq!(from_key("trust/join"), None);
    }
}
