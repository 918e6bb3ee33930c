//! Ends this server's agent streams of identities revoked anywhere (`model::auth::revoked`
//! keeps the records).

use super::sessions::Sessions;
use crate::model::auth::revoked::{from_key, list, refusal, revoked};
use crate::state::error::Result;
use crate::state::State;
use crate::store::Change;
use berth_proto::v1::RevokedIdentity;
use berth_trust::{PeerIdentity, PeerKind};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Ends this server's streams of every identity revoked from now on (and, on a resync, of any
/// revoked one still connected), until `stop`.
pub async fn follow(state: State, sessions: Arc<Sessions>, mut stop: watch::Receiver<bool>) {
    let mut changes = state.store().subscribe();
    loop {
        let change: Arc<Change> = tokio::select! {
            c = changes.recv() => match c {
                Ok(c) => c,
                Err(broadcast::error::RecvError::Lagged(_)) => Arc::new(Change::resync_at(0)),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = super::shutting_down(&mut stop) => return,
        };
        let keys: Vec<PeerIdentity> = change.keys.iter().filter_map(|k| from_key(k)).collect();
        if !change.resync && keys.is_empty() {
            continue;
        }
        let s = state.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<RevokedIdentity>> {
            if change.resync {
                return list(&s);
            }
            let found = keys.iter().map(|who| revoked(&s, who));
            Ok(found
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect())
        });
        let Ok(Ok(records)) = read.await else {
            continue;
        };
        for r in records {
            let Some(who) = PeerIdentity::parse(&r.identity).filter(|w| w.kind == PeerKind::Node)
            else {
                continue;
            };
            if sessions.end(&who.id, refusal(&r)) {
                tracing::warn!(identity = %who, "certificate revoked: agent stream closed");
            }
        }
    }
}
