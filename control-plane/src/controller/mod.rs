//! Controllers: level-triggered loops that compare what is wanted with what is, woken by store
//! changes and a periodic resync, never trusting the edge that woke them.

pub mod apply;
mod headers;
mod hooks;
pub mod plan;
mod service;
pub mod view;
mod wake;

use crate::endpoints::health::Proxies;
use crate::error::Result;
use crate::nodes::Sessions;
use crate::state::{keys, State};
use crate::time;
use berth_proto::v1::Service;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

pub use headers::Headers;
pub use plan::{ServiceMemory, ServicePlan, ServiceView};
pub use wake::Owners;

/// What the controllers keep between passes beside each service's memory: hints brought up to
/// date from the store's change history, never trusted past a commit's compares.
#[derive(Debug, Default)]
pub struct Caches {
    /// Which service a task key wakes.
    pub owners: Owners,
    /// The planner's view of each service's tasks.
    pub headers: Headers,
}

/// Timings of the controllers.
#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    pub resync: Duration,
    /// A node disconnected this long is lost: its tasks are stopped and replaced elsewhere.
    pub lost_node_timeout: Duration,
    /// A task counts as healthy only after running (and passing its checks) this long, so a
    /// revision that crashes a moment after starting cannot complete a deployment.
    pub min_healthy_time: Duration,
    /// How often auto scaling policies are evaluated (over a metric window just as long).
    pub scaling_interval: Duration,
}

impl ControllerConfig {
    /// What the planner judges by.
    pub fn plan(&self) -> plan::PlanConfig {
        plan::PlanConfig {
            min_healthy_time_ms: self.min_healthy_time.as_millis() as i64,
            ..Default::default()
        }
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(2),
            lost_node_timeout: Duration::from_secs(10),
            min_healthy_time: Duration::from_secs(5),
            scaling_interval: Duration::from_secs(10),
        }
    }
}

/// Runs until `stopped` turns true. A change wakes only the services it touches (a task's
/// report wakes its service); the periodic resync, a node change or a lagging feed runs every
/// service once, with lost-node detection and auto scaling.
pub async fn run(
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    config: ControllerConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let mut changes = state.store().subscribe();
    let mut memory: HashMap<String, ServiceMemory> = HashMap::new();
    let caches = Arc::new(std::sync::Mutex::new(Caches::default()));
    let started_ms = time::now_millis();
    let mut tick = tokio::time::interval(config.resync);
    let mut seen = state.store().revision().unwrap_or(0);
    let mut sweeps = Sweeps::default();
    loop {
        let mut woken = wake::Woken {
            revision: seen,
            ..Default::default()
        };
        tokio::select! {
            _ = tick.tick() => {
                woken.lost_nodes = true;
                woken.everything = sweeps.due(config.resync);
            }
            c = changes.recv() => match c {
                Ok(change) => {
                    woken.add(&change);
                    // Coalesce a burst of writes into one pass.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    loop {
                        match changes.try_recv() {
                            Ok(change) => woken.add(&change),
                            Err(TryRecvError::Lagged(_)) => resume(&state, &mut woken),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => resume(&state, &mut woken),
                Err(RecvError::Closed) => return,
            },
            _ = until_stopped(&mut stopped) => return,
        }
        seen = woken.revision;
        let (s, sess, prox, own) = (
            state.clone(),
            sessions.clone(),
            proxies.clone(),
            caches.clone(),
        );
        let mut mem = std::mem::take(&mut memory);
        let sweep = woken.everything.then(std::time::Instant::now);
        let halt = stopped.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut caches = own.lock().unwrap_or_else(|p| p.into_inner());
            let pass = Pass {
                state: &s,
                sessions: &sess,
                proxies: &prox,
                config: &config,
                started_ms,
                halt: Some(halt),
            };
            let r = pass.run(woken, &mut caches, &mut mem);
            (r, mem)
        })
        .await;
        if let Some(started) = sweep {
            sweeps.ran(started.elapsed());
        }
        match res {
            Ok((r, mem)) => {
                memory = mem;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "reconcile failed; retrying on the next pass");
                }
            }
            Err(e) => tracing::error!(error = %e, "reconcile panicked"),
        }
    }
}

/// When the periodic sweep over every service is due. Targeted wake-ups do the work; the
/// sweep is the level-triggered safety net, so it may not cost more than a fifth of the
/// controller's time: a sweep that took 2 s waits 10 s for the next one (kube's controllers
/// resync over minutes for the same reason). Lost nodes are checked on every tick regardless.
#[derive(Debug, Default)]
struct Sweeps {
    last: Option<(std::time::Instant, Duration)>,
}

impl Sweeps {
    fn due(&self, resync: Duration) -> bool {
        self.last
            .is_none_or(|(at, took)| at.elapsed() >= resync.max(took * SWEEP_SHARE))
    }

    fn ran(&mut self, took: Duration) {
        self.last = Some((std::time::Instant::now(), took));
    }
}

/// The sweep's period, as a multiple of what the last one cost.
const SWEEP_SHARE: u32 = 5;

/// Runs the controllers only while this replica leads, with every commit fenced by its term;
/// stops them (and waits for them) as soon as it does not.
pub async fn run_while_leading(
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    config: ControllerConfig,
    mut role: watch::Receiver<crate::leader::Role>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let term = tokio::select! {
            r = role.wait_for(|r| r.leader) => match r {
                Ok(r) => r.clone(),
                Err(_) => return,
            },
            _ = until_stopped(&mut stopped) => return,
        };
        tracing::info!(terms = term.terms, "leading: controllers start");
        let (stop, stop_rx) = watch::channel(false);
        let fenced = state.fenced(term.fence.clone());
        let hooks = tokio::spawn(hooks::run(fenced.clone(), stop_rx.clone()));
        let running = tokio::spawn(run(
            fenced,
            sessions.clone(),
            proxies.clone(),
            config,
            stop_rx,
        ));
        let done = tokio::select! {
            _ = role.wait_for(|r| !r.leader || r.terms != term.terms) => false,
            _ = until_stopped(&mut stopped) => true,
        };
        let _ = stop.send(true);
        let _ = running.await;
        let _ = hooks.await;
        if done {
            return;
        }
        tracing::warn!("no longer leading: controllers stopped");
    }
}

/// A feed that lagged resumes from the last revision seen; when the store no longer holds
/// those changes, every service runs.
fn resume(state: &State, woken: &mut wake::Woken) {
    match state.store().changes_since(woken.revision) {
        Ok(missed) => missed.iter().for_each(|c| woken.add(c)),
        Err(_) => woken.everything = true,
    }
}

/// Runs, now and on this thread, the service passes that one committed change wakes (the
/// wake-up benchmark measures what a report costs with it).
pub fn react(
    state: &State,
    sessions: &Sessions,
    proxies: &Proxies,
    config: &ControllerConfig,
    change: &crate::store::Change,
    caches: &mut Caches,
    memory: &mut HashMap<String, ServiceMemory>,
) -> Result<()> {
    let mut woken = wake::Woken::default();
    woken.add(change);
    let pass = Pass {
        state,
        sessions,
        proxies,
        config,
        started_ms: time::now_millis(),
        halt: None,
    };
    pass.run(woken, caches, memory)
}

/// One pass of the controllers over what woke them.
struct Pass<'a> {
    state: &'a State,
    sessions: &'a Sessions,
    proxies: &'a Proxies,
    config: &'a ControllerConfig,
    started_ms: i64,
    /// Turns true when the controllers are to stop (a leader that lost its lease): the pass
    /// ends before its next step rather than waiting out every store call it has left.
    halt: Option<watch::Receiver<bool>>,
}

impl Pass<'_> {
    fn run(
        &self,
        woken: wake::Woken,
        caches: &mut Caches,
        memory: &mut HashMap<String, ServiceMemory>,
    ) -> Result<()> {
        let now = time::now_millis();
        if self.halted() {
            return Ok(());
        }
        if woken.lost_nodes || woken.everything {
            crate::nodes::lost::mark_lost_nodes(
                self.state,
                self.sessions,
                self.config.lost_node_timeout,
                self.started_ms,
                now,
            )?;
        }
        let services: Vec<String> = if woken.everything {
            let live: HashSet<String> = self
                .state
                .scan_keys(keys::GROUP_INDEX)?
                .iter()
                .filter_map(|k| keys::task_of_index(k))
                .collect();
            caches.owners.retain(&live, &caches.headers);
            self.proxies.retain_tasks(&|arn| {
                crate::controller::apply::task_key(arn).is_some_and(|k| live.contains(&k))
            });
            let all = self.state.scan::<Service>(keys::SERVICES)?;
            self.scale(&all, now, memory);
            memory.retain(|k, _| {
                all.iter()
                    .any(|s| &crate::services::key_of(s) == k && s.status != "INACTIVE")
            });
            let groups: HashSet<String> = all
                .iter()
                .filter(|s| s.status != "INACTIVE")
                .map(|s| {
                    let cluster = crate::arn::cluster_name(&s.cluster_arn);
                    keys::group_tasks(cluster, &format!("service:{}", s.service_name))
                })
                .collect();
            caches.headers.retain(|prefix| groups.contains(prefix));
            all.iter()
                .filter(|s| s.status != "INACTIVE")
                .map(crate::services::key_of)
                .collect()
        } else {
            caches.headers.catch_up(self.state)?;
            caches
                .owners
                .services_of(self.state, &woken, &caches.headers)?
        };
        let src = view::Sources::new(self.sessions, self.proxies, self.config.plan());
        for key in services {
            if self.halted() {
                return Ok(());
            }
            let mem = memory.remove(&key).unwrap_or_default();
            match service::reconcile(
                self.state,
                &key,
                &src,
                &mut caches.headers,
                mem.clone(),
                now,
            ) {
                Ok(next) => {
                    memory.insert(key, next);
                }
                Err(e) => {
                    memory.insert(key.clone(), mem);
                    tracing::warn!(service = %key, error = %e, "service reconcile failed");
                }
            }
        }
        Ok(())
    }

    fn halted(&self) -> bool {
        self.halt.as_ref().is_some_and(|h| *h.borrow())
    }

    fn scale(&self, all: &[Service], now: i64, memory: &mut HashMap<String, ServiceMemory>) {
        for svc in all.iter().filter(|s| s.status != "INACTIVE") {
            let mem = memory.entry(crate::services::key_of(svc)).or_default();
            let res = crate::scaling::evaluate(
                self.state,
                self.sessions,
                self.proxies,
                svc,
                now,
                self.config,
                mem,
            );
            if let Err(e) = res {
                tracing::warn!(service = %svc.service_name, error = %e, "auto scaling failed");
            }
        }
    }
}

/// Resolves once shutdown is asked for (the watch guard never lives across an await).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
