//! With several servers on etcd, what one replica alone hears and the leader must know: which
//! nodes' agents it holds (`presence/NODE`) and what the proxies watching through it report
//! (`proxyhealth/PROXY`). Every replica refreshes its own records every two seconds and reads
//! the others', so node connectivity and target health are judged the same wherever an agent or
//! a proxy is connected. A record not refreshed for `PRESENCE_FRESH_MS` is not believed: a dead
//! replica's agents and proxies count as gone until they reconnect elsewhere.

use crate::live::proxies::Proxies;
use crate::live::sessions::{Sessions, PRESENCE_FRESH_MS};
use crate::state::error::Result;
use crate::state::{put, State};
use crate::time;
use berth_proto::v1::{Presence, ProxyHealth, ReportedTarget, TargetHealth};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const PRESENCE: &str = "presence/";
pub const PROXY_HEALTH: &str = "proxyhealth/";
const EVERY: Duration = Duration::from_secs(2);

/// Runs until `stopped`.
pub async fn run(
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    me: String,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let (s, sess, prox, id) = (state.clone(), sessions.clone(), proxies.clone(), me.clone());
        let res = tokio::task::spawn_blocking(move || {
            sync_once(&s, &sess, &prox, &id, time::now_millis())
        })
        .await;
        if let Ok(Err(e)) = res {
            tracing::warn!(error = %e, "cannot share presence and target health with the other servers");
        }
    }
}

/// Writes this replica's records, then takes in the other replicas'.
pub fn sync_once(
    state: &State,
    sessions: &Sessions,
    proxies: &Proxies,
    me: &str,
    now: i64,
) -> Result<()> {
    let mut ops = Vec::new();
    for node in sessions.local_nodes() {
        let p = Presence {
            server: me.to_string(),
            at_ms: now,
        };
        ops.push(put(format!("{PRESENCE}{node}"), &p));
    }
    for (proxy, targets) in proxies.local_reports() {
        let record = ProxyHealth {
            server: me.to_string(),
            at_ms: now,
            revisions: proxies.local_revisions(&proxy),
            targets: targets
                .into_iter()
                .map(|(t, at)| ReportedTarget {
                    task_arn: t.task_arn,
                    state: t.state,
                    reason: t.reason,
                    at_ms: at,
                })
                .collect(),
        };
        ops.push(put(format!("{PROXY_HEALTH}{proxy}"), &record));
    }
    state.commit(ops)?;
    let fresh = |at: i64| now - at < PRESENCE_FRESH_MS;
    let mut remote = HashMap::new();
    for (key, p) in scan::<Presence>(state, PRESENCE)? {
        if p.server != me && fresh(p.at_ms) {
            remote.insert(key, p.at_ms);
        }
    }
    sessions.set_remote(remote);
    for (proxy, h) in scan::<ProxyHealth>(state, PROXY_HEALTH)? {
        if h.server == me || !fresh(h.at_ms) {
            continue;
        }
        proxies.absorb_remote_revisions(&proxy, h.at_ms, h.revisions);
        let targets = h
            .targets
            .into_iter()
            .map(|t| {
                let at = t.at_ms;
                (
                    TargetHealth {
                        task_arn: t.task_arn,
                        state: t.state,
                        reason: t.reason,
                        ..Default::default()
                    },
                    at,
                )
            })
            .collect();
        proxies.absorb_remote(&proxy, h.at_ms, targets);
    }
    Ok(())
}

fn scan<T: prost::Message + Default>(state: &State, prefix: &str) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for (k, v) in state.store().scan(prefix)? {
        if let (Some(name), Ok(m)) = (k.strip_prefix(prefix), T::decode(v.value.as_slice())) {
            out.push((name.to_string(), m));
        }
    }
    Ok(out)
}
