//! `Store` on etcd v3: keys under a prefix, a transaction as etcd's `Txn` with `mod_revision`
//! compares (a prefix compare is a range compare), and the change feed as a watch of the prefix
//! resumed from the last revision seen. A compacted or lost watch is told to watchers as a
//! resync (`Change::resync`), never a silent gap.
//!
//! etcd's limits: a request of at most 1.5 MiB and a txn of at most 128 operations by default.
//! Berth's values are bounded far below 1.5 MiB (a task definition at 64 KiB, a service's events
//! at 100). A transaction with compares over `max_txn_ops` operations or compares is refused (the
//! planner sizes each pass to fit, `ServiceView::op_budget`); an unconditional batch over it is
//! split into batches of that size.
//!
//! The `Store` trait is synchronous (callers run it off the async workers); this runs the etcd
//! client on a runtime of its own and waits for each call, so it is safe from any thread.

use super::{Change, Compare, Op, Store, StoreError, TxnOutcome, Versioned};
use etcd_client as etcd;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;
const HISTORY: usize = 8192;

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// Every key lives under it (`/berth/` by default).
    pub prefix: String,
    pub user: Option<(String, String)>,
    /// CA, and optionally a client certificate and key, all PEM.
    pub ca_pem: Option<Vec<u8>>,
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub max_txn_ops: usize,
}

/// The etcd store. Cheap to share behind an `Arc`.
pub struct EtcdStore {
    client: etcd::Client,
    /// Each member on its own, for reading a member's last state when there is no quorum.
    members: Vec<String>,
    options: etcd::ConnectOptions,
    prefix: String,
    max_txn_ops: usize,
    rt: OwnRuntime,
    feed: Arc<Feed>,
}

/// The client's runtime; shut down in the background when the store goes, so the store may be
/// dropped anywhere (an async context included).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

struct Feed {
    tx: broadcast::Sender<Arc<Change>>,
    state: Mutex<FeedState>,
}

#[derive(Default)]
struct FeedState {
    revision: u64,
    history: VecDeque<Arc<Change>>,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("etcd: {e}"))
}

impl EtcdStore {
    /// Connects, reads the current revision, and starts the watch.
    pub fn connect(opts: EtcdOptions) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("berth-etcd")
            .enable_all()
            .build()
            .map_err(io)?;
        let rt = OwnRuntime(Some(rt));
        let prefix = if opts.prefix.is_empty() {
            "/berth/".to_string()
        } else {
            opts.prefix.clone()
        };
        let mut connect = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(3));
        if let Some((u, p)) = &opts.user {
            connect = connect.with_user(u.clone(), p.clone());
        }
        if opts.ca_pem.is_some() || opts.identity_pem.is_some() {
            let mut tls = etcd::TlsOptions::new();
            if let Some(ca) = &opts.ca_pem {
                tls = tls.ca_certificate(etcd::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &opts.identity_pem {
                tls = tls.identity(etcd::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(tls);
        }
        let endpoints = opts.endpoints.clone();
        let options = connect.clone();
        let client = rt
            .get()
            .block_on(etcd::Client::connect(endpoints, Some(connect)))
            .map_err(|e| io(format!("connecting to {}: {e}", opts.endpoints.join(","))))?;
        let (tx, _) = broadcast::channel(4096);
        let feed = Arc::new(Feed {
            tx,
            state: Mutex::new(FeedState::default()),
        });
        let store = Self {
            client,
            members: opts.endpoints.clone(),
            options,
            prefix,
            max_txn_ops: if opts.max_txn_ops == 0 {
                DEFAULT_MAX_TXN_OPS
            } else {
                opts.max_txn_ops
            },
            rt,
            feed,
        };
        let start = store.current_revision()?;
        store.feed.lock().revision = start;
        store.rt.get().spawn(watch(
            store.client.clone(),
            store.prefix.clone(),
            store.feed.clone(),
            start,
        ));
        Ok(store)
    }

    /// The client, for leader election and server registration on the same connection.
    pub fn client(&self) -> etcd::Client {
        self.client.clone()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs a future on the store's runtime and waits for it, from any thread.
    pub fn run<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (done, wait) = std::sync::mpsc::channel();
        self.rt.get().spawn(async move {
            let _ = done.send(f.await);
        });
        wait.recv().expect("the etcd runtime outlives its store")
    }

    /// A linearizable read; when the cluster has no quorum, the member's last state (a
    /// serializable read), so reads still answer while writes fail.
    fn read(&self, key: String, opts: etcd::GetOptions) -> Result<etcd::GetResponse, StoreError> {
        let mut c = self.client.clone();
        let (k, o) = (key.clone(), opts.clone());
        let first = self.run(async move {
            tokio::time::timeout(Duration::from_secs(3), c.get(k, Some(o))).await
        });
        let err = match first {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 3 s".to_string(),
        };
        // No quorum (or no answer): the last state of whichever member still answers.
        let (members, options) = (self.members.clone(), self.options.clone());
        let opts = opts.with_serializable();
        self.run(async move {
            for m in members {
                let connect = etcd::Client::connect(
                    [m],
                    Some(
                        options
                            .clone()
                            .with_connect_timeout(Duration::from_millis(1500)),
                    ),
                );
                let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), connect).await
                else {
                    continue;
                };
                let got = tokio::time::timeout(
                    Duration::from_secs(2),
                    c.get(key.clone(), Some(opts.clone())),
                )
                .await;
                if let Ok(Ok(r)) = got {
                    return Ok(r);
                }
            }
            Err(io(format!("no etcd member answered a read: {err}")))
        })
    }

    fn current_revision(&self) -> Result<u64, StoreError> {
        let mut c = self.client.clone();
        let key = format!("{}\u{0}revision", self.prefix);
        let got = self
            .run(async move { c.get(key, None).await })
            .map_err(io)?;
        Ok(got.header().map_or(0, |h| h.revision()) as u64)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn compare(&self, c: &Compare) -> etcd::Compare {
        match c {
            Compare::ModRevision { key, revision } => etcd::Compare::mod_revision(
                self.full(key),
                etcd::CompareOp::Equal,
                *revision as i64,
            ),
            Compare::PrefixUnchangedSince { prefix, revision } => etcd::Compare::mod_revision(
                self.full(prefix),
                etcd::CompareOp::Less,
                *revision as i64 + 1,
            )
            .with_prefix(),
        }
    }

    fn op(&self, op: Op) -> etcd::TxnOp {
        match op {
            Op::Put(k, v) => etcd::TxnOp::put(self.full(&k), v, None),
            Op::Delete(k) => etcd::TxnOp::delete(self.full(&k), None),
        }
    }

    fn commit_one(&self, compares: &[Compare], ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let txn = etcd::Txn::new()
            .when(compares.iter().map(|c| self.compare(c)).collect::<Vec<_>>())
            .and_then(ops.into_iter().map(|o| self.op(o)).collect::<Vec<_>>());
        let mut c = self.client.clone();
        let resp = self.run(async move { c.txn(txn).await }).map_err(|e| {
            io(format!(
                "the write was not committed (is a quorum of etcd members up and reachable?): {e}"
            ))
        })?;
        if !resp.succeeded() {
            return Ok(TxnOutcome::Conflict);
        }
        Ok(TxnOutcome::Committed(
            resp.header().map_or(0, |h| h.revision()) as u64,
        ))
    }
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, change: Change) {
        let change = Arc::new(change);
        {
            let mut s = self.lock();
            s.revision = s.revision.max(change.revision);
            if change.resync {
                s.history.clear();
            } else {
                if s.history.len() == HISTORY {
                    s.history.pop_front();
                }
                s.history.push_back(change.clone());
            }
        }
        let _ = self.tx.send(change);
    }
}

/// Watches the prefix from `from`, forever: each revision's keys become one change; a lost or
/// compacted watch is a resync, then watching goes on from the current revision.
async fn watch(mut client: etcd::Client, prefix: String, feed: Arc<Feed>, from: u64) {
    let mut next = from + 1;
    loop {
        let opts = etcd::WatchOptions::new()
            .with_prefix()
            .with_start_revision(next as i64);
        let mut stream = match client.watch(prefix.clone(), Some(opts)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "etcd watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp.compact_revision() > 0 || resp.canceled() {
                        tracing::warn!(
                            compacted = resp.compact_revision(),
                            "etcd watch lost its place; resyncing"
                        );
                        let now = resp.header().map_or(next, |h| h.revision() as u64);
                        feed.publish(Change::resync_at(now));
                        next = now + 1;
                        break;
                    }
                    let mut by_rev: BTreeMap<u64, Vec<String>> = BTreeMap::new();
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key());
                        let Some(k) = key.strip_prefix(&prefix) else {
                            continue;
                        };
                        if k.starts_with('\u{0}') {
                            continue;
                        }
                        by_rev
                            .entry(kv.mod_revision() as u64)
                            .or_default()
                            .push(k.to_string());
                    }
                    for (revision, keys) in by_rev {
                        next = next.max(revision + 1);
                        feed.publish(Change {
                            revision,
                            keys,
                            resync: false,
                        });
                    }
                }
                Ok(None) | Err(_) => {
                    // The stream ended (etcd restarted, the member went away): resume.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let k = self.full(key);
        let mut resp = self.read(k, etcd::GetOptions::new())?;
        Ok(resp.take_kvs().into_iter().next().map(|kv| Versioned {
            mod_revision: kv.mod_revision() as u64,
            value: kv.value().to_vec(),
        }))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        Ok(self.scan_with_revision(prefix)?.0)
    }

    fn scan_with_revision(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(String, Versioned)>, u64), StoreError> {
        let mut c = self.client.clone();
        let k = self.full(prefix);
        let opts = etcd::GetOptions::new().with_prefix();
        let mut resp = self
            .run(async move { c.get(k, Some(opts)).await })
            .map_err(io)?;
        let revision = resp.header().map_or(0, |h| h.revision()) as u64;
        let out = resp
            .take_kvs()
            .into_iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let k = key.strip_prefix(&self.prefix)?.to_string();
                (!k.starts_with('\u{0}')).then(|| {
                    (
                        k,
                        Versioned {
                            mod_revision: kv.mod_revision() as u64,
                            value: kv.value().to_vec(),
                        },
                    )
                })
            })
            .collect();
        Ok((out, revision))
    }

    fn txn(&self, compares: &[Compare], ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        if ops.len() <= self.max_txn_ops && compares.len() <= self.max_txn_ops {
            return self.commit_one(compares, ops);
        }
        if !compares.is_empty() {
            return Err(StoreError::Io(format!(
                "a transaction of {} operations and {} compares is over etcd's limit of {}",
                ops.len(),
                compares.len(),
                self.max_txn_ops
            )));
        }
        // An unconditional batch: its parts need not land together.
        let mut last = TxnOutcome::Committed(0);
        let mut ops = ops;
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(self.max_txn_ops));
            last = self.commit_one(&[], ops)?;
            ops = rest;
        }
        Ok(last)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.feed.lock().revision)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.feed.tx.subscribe()
    }

    fn changes_since(&self, revision: u64) -> Result<Vec<Arc<Change>>, StoreError> {
        let s = self.feed.lock();
        match s.history.front() {
            _ if revision >= s.revision => Ok(Vec::new()),
            Some(first) if first.revision <= revision + 1 => Ok(s
                .history
                .iter()
                .filter(|c| c.revision > revision)
                .cloned()
                .collect()),
            _ => Err(StoreError::Compacted(revision)),
        }
    }

    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }
}
