//! Leadership: which replica runs the controllers (planners, lost-node timers, auto scaling).
//!
//! On the embedded store there is one replica and it always leads. On etcd each replica holds a lease (kept
//! alive every third of its TTL), registers itself under `servers/ID` on it, and campaigns for
//! `election/leader` with a create-if-absent transaction on the same lease. The winner's fence is
//! the leader key's revision: every commit its controllers make compares it, so a deposed
//! leader's late writes fail instead of landing. A leader that cannot renew its lease steps
//! down after two thirds of the TTL, before the lease can expire and anyone else be elected.

use crate::store::{Compare, EtcdStore};
use crate::time;
use etcd_client as etcd;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const LEADER_KEY: &str = "election/leader";
pub const SERVERS: &str = "servers/";

/// One control-plane replica, as `berth server list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    pub id: String,
    pub grpc: String,
    pub http: String,
    pub started_at: String,
    /// When it became leader (in the leader key's copy).
    #[serde(default)]
    pub leader_since: String,
}

/// This replica's role as it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    pub leader: bool,
    /// The compare every commit of the leader's controllers carries (None on the embedded store).
    pub fence: Option<Compare>,
    /// Times this replica has become leader.
    pub terms: u64,
}

/// Elects on etcd, or always leads.
pub enum Election {
    Solo,
    Etcd {
        store: Arc<EtcdStore>,
        ttl: Duration,
    },
}

/// Runs until `stopped`: publishes this replica's role on `role`.
pub async fn run(
    election: Election,
    me: Replica,
    role: watch::Sender<Role>,
    mut stopped: watch::Receiver<bool>,
) {
    match election {
        Election::Solo => {
            let _ = role.send(Role {
                leader: true,
                fence: None,
                terms: 1,
            });
            stop_asked(&mut stopped).await;
        }
        Election::Etcd { store, ttl } => {
            let client = store.client();
            let prefix = store.prefix().to_string();
            campaign_forever(client, prefix, me, ttl, role.clone(), stopped).await;
            role.send_modify(|r| {
                r.leader = false;
                r.fence = None;
            });
        }
    }
}

async fn campaign_forever(
    client: etcd::Client,
    prefix: String,
    me: Replica,
    ttl: Duration,
    role: watch::Sender<Role>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        match term(client.clone(), &prefix, &me, ttl, &role, &mut stopped).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "leadership lost or not reachable; campaigning again")
            }
        }
        role.send_modify(|r| {
            r.leader = false;
            r.fence = None;
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Resolves once shutdown is asked for (no watch guard lives across an await).
async fn stop_asked(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// One lease's life: register, campaign while following, lead while the lease holds. Returns
/// Ok once shutdown is asked for (the lease revoked, so another replica leads at once).
async fn term(
    mut client: etcd::Client,
    prefix: &str,
    me: &Replica,
    ttl: Duration,
    role: &watch::Sender<Role>,
    stopped: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let ttl_s = ttl.as_secs().max(2) as i64;
    let lease = client
        .lease_grant(ttl_s, None)
        .await
        .map_err(|e| e.to_string())?
        .id();
    let (mut keeper, mut acks) = client
        .lease_keep_alive(lease)
        .await
        .map_err(|e| e.to_string())?;
    let put = etcd::PutOptions::new().with_lease(lease);
    let me_json = serde_json::to_vec(me).map_err(|e| e.to_string())?;
    client
        .put(
            format!("{prefix}{SERVERS}{}", me.id),
            me_json,
            Some(put.clone()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let key = format!("{prefix}{LEADER_KEY}");
    let mut last_renewed = Instant::now();
    let step_down_after = ttl * 2 / 3;
    let mut tick = tokio::time::interval(ttl / 3);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop_asked(stopped) => {
                role.send_modify(|r| { r.leader = false; r.fence = None; });
                let _ = tokio::time::timeout(Duration::from_secs(1), client.lease_revoke(lease)).await;
                return Ok(());
            }
        }
        // Renew, bounded: a renewal that does not come back in time counts as missed.
        let renewed = tokio::time::timeout(ttl / 3, async {
            keeper.keep_alive().await.ok()?;
            acks.message().await.ok().flatten().filter(|a| a.ttl() > 0)
        })
        .await
        .ok()
        .flatten();
        if renewed.is_some() {
            last_renewed = Instant::now();
        } else if last_renewed.elapsed() >= step_down_after {
            return Err(format!(
                "lease not renewed for {:?}",
                last_renewed.elapsed()
            ));
        }
        let fence = role.borrow().fence.clone();
        if let Some(Compare::ModRevision { revision, .. }) = fence {
            // Still leading only while the leader key is the one this term wrote. Bounded like
            // the renewal: a leader cut off from etcd must reach the step-down check above on
            // time, not wait out the client's own timeout.
            let held = tokio::time::timeout(ttl / 3, client.get(key.clone(), None))
                .await
                .map(|r| {
                    r.map(|r| r.kvs().first().map(|kv| kv.mod_revision() as u64) == Some(revision))
                });
            match held {
                Ok(Ok(false)) => return Err("the leader key is no longer this replica's".into()),
                _ => continue,
            }
        }
        let mut mine = me.clone();
        mine.leader_since = time::now();
        let value = serde_json::to_vec(&mine).map_err(|e| e.to_string())?;
        let txn = etcd::Txn::new()
            .when(vec![etcd::Compare::create_revision(
                key.clone(),
                etcd::CompareOp::Equal,
                0,
            )])
            .and_then(vec![etcd::TxnOp::put(
                key.clone(),
                value,
                Some(put.clone()),
            )]);
        let Ok(Ok(resp)) = tokio::time::timeout(ttl / 3, client.txn(txn)).await else {
            continue;
        };
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision()) as u64;
            tracing::info!(replica = %me.id, revision, "became leader");
            role.send_modify(|r| {
                r.leader = true;
                r.terms += 1;
                r.fence = Some(Compare::ModRevision {
                    key: LEADER_KEY.to_string(),
                    revision,
                });
            });
        }
    }
}

/// The replicas registered, and which leads, from the store.
pub fn replicas(
    state: &crate::state::State,
) -> crate::state::error::Result<(Vec<Replica>, Option<Replica>)> {
    let decode = |v: &[u8]| serde_json::from_slice::<Replica>(v).ok();
    let mut all: Vec<Replica> = state
        .store()
        .scan(SERVERS)?
        .into_iter()
        .filter_map(|(_, v)| decode(&v.value))
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let leader = state
        .store()
        .get(LEADER_KEY)?
        .and_then(|v| decode(&v.value));
    Ok((all, leader))
}

/// What the leader needs of the server's configuration.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Where the embedded store and the replica id live.
    pub data_dir: std::path::PathBuf,
    /// etcd to elect a leader on; `None` for the embedded store (one server, always leader).
    pub etcd: Option<crate::store::EtcdOptions>,
    /// The leader's lease on etcd.
    pub leader_ttl: Duration,
    /// The gRPC URL other servers and clients reach this one at, when not its listen address.
    pub advertise: Option<String>,
    /// The HTTP listener speaks plain HTTP even when gRPC has TLS.
    pub http_plaintext: bool,
}

/// Opens the store the config names, and how this replica is elected on it.
pub async fn open_store(
    config: &LeaderConfig,
) -> crate::state::error::Result<(Arc<dyn crate::store::Store>, Election)> {
    use crate::state::error::Error;
    let opened = match config.etcd.clone() {
        Some(opts) => {
            let store = tokio::task::spawn_blocking(move || EtcdStore::connect(opts))
                .await
                .map_err(|e| Error::Client(format!("connecting to etcd: {e}")))?
                .map_err(Error::from)?;
            let store = Arc::new(store);
            let election = Election::Etcd {
                store: store.clone(),
                ttl: config.leader_ttl,
            };
            (store as Arc<dyn crate::store::Store>, election)
        }
        None => {
            let dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || crate::store::LogStore::open_in(&dir))
                .await
                .map_err(|e| Error::Client(format!("opening store: {e}")))?
                .map_err(Error::from)?;
            (
                Arc::new(store) as Arc<dyn crate::store::Store>,
                Election::Solo,
            )
        }
    };
    Ok(opened)
}

/// This replica: a stable id kept in the data directory, and the URLs it is reached at. On
/// the embedded store it is the only one, recorded (and recorded as leader) at start.
pub async fn me(
    config: &LeaderConfig,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    tls: bool,
    state: &crate::state::State,
) -> crate::state::error::Result<Replica> {
    use crate::state::error::Error;
    let id_file = config.data_dir.join("replica.id");
    let id = match std::fs::read_to_string(&id_file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            let id = berth_core::ids::new_id(12);
            std::fs::write(&id_file, &id)
                .map_err(|e| Error::Client(format!("writing {}: {e}", id_file.display())))?;
            id
        }
    };
    let host = |a: std::net::SocketAddr| {
        if a.ip().is_unspecified() {
            let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let name = name.trim();
            format!(
                "{}:{}",
                if name.is_empty() { "127.0.0.1" } else { name },
                a.port()
            )
        } else {
            a.to_string()
        }
    };
    let scheme = if tls { "https" } else { "http" };
    let me = Replica {
        id,
        grpc: config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", host(grpc))),
        http: format!(
            "{}://{}",
            if tls && !config.http_plaintext {
                "https"
            } else {
                "http"
            },
            host(http)
        ),
        started_at: time::now(),
        leader_since: String::new(),
    };
    if config.etcd.is_none() {
        let mut lead = me.clone();
        lead.leader_since = me.started_at.clone();
        let s = state.clone();
        let ops = vec![
            crate::store::Op::Put(
                format!("{SERVERS}{}", me.id),
                serde_json::to_vec(&me).unwrap_or_default(),
            ),
            crate::store::Op::Put(
                LEADER_KEY.into(),
                serde_json::to_vec(&lead).unwrap_or_default(),
            ),
        ];
        tokio::task::spawn_blocking(move || {
            let stale: Vec<crate::store::Op> = s
                .store()
                .scan(SERVERS)?
                .into_iter()
                .map(|(k, _)| crate::store::Op::Delete(k))
                .collect();
            s.commit(stale.into_iter().chain(ops).collect())
        })
        .await
        .map_err(|e| Error::Client(format!("recording this server: {e}")))??;
    }
    Ok(me)
}

/// `/metrics`: whether this replica leads, and how often it has become leader, read from its
/// role when scraped.
#[derive(Debug)]
struct RoleMetrics {
    role: watch::Receiver<Role>,
    replica: String,
}

impl prometheus_client::collector::Collector for RoleMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::metrics::MetricType;
        let (leader, terms) = {
            let r = self.role.borrow();
            (i64::from(r.leader), r.terms)
        };
        let labels = [("replica", self.replica.as_str())];
        encoder
            .encode_descriptor(
                "berth_leader",
                "1 when this replica leads the control plane.",
                None,
                MetricType::Gauge,
            )?
            .encode_family(&labels)?
            .encode_gauge(&leader)?;
        encoder
            .encode_descriptor(
                "berth_leader_terms",
                "Times this replica has become leader.",
                None,
                MetricType::Counter,
            )?
            .encode_family(&labels)?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&terms, None)
    }
}

/// Adds the role's metrics to the registry.
pub fn register_metrics(
    registry: &crate::state::metrics::SharedRegistry,
    role: watch::Receiver<Role>,
    id: String,
) {
    crate::state::metrics::register_with(registry, |r| {
        r.register_collector(Box::new(RoleMetrics { role, replica: id }))
    });
}
