//! Controllers: level-triggered loops that compare what is wanted with what is, woken by store
//! changes and a periodic resync, never trusting the edge that woke them.

mod headers;
mod hooks;
mod pace;
mod scaling;
mod service;
mod sources;
mod wake;

use crate::live::proxies::Proxies;
use crate::live::sessions::Sessions;
use crate::state::error::Result;
use crate::state::{keys, State};
use crate::time;
use berth_core::plan;
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
    /// When each service woken by a change may run again.
    pace: pace::Pace,
    /// The services the sweep under way has yet to run, a slice each pass.
    sweep: pace::Sweep,
}

/// Timings of the controllers.
#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    pub resync: Duration,
    /// A node disconnected this long is lost: its tasks are stopped and replaced elsewhere.
    pub lost_node_timeout: Duration,
    /// A node whose agent's connection closed without a goodbye (a crash: the kernel closes a
    /// dead process's sockets) and has not reconnected this long is lost, without waiting out
    /// the timeout. A paused or cut-off agent keeps its connection open and never gets here.
    pub crash_grace: Duration,
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
            crash_grace: Duration::from_secs(3),
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
        let (next_due, sweeping) = {
            let c = lock(&caches);
            (c.pace.next_due(), !c.sweep.is_empty())
        };
        // A crashed agent's grace may end between ticks: its node is marked lost then.
        let crash_due = crash_deadline(&sessions, config.crash_grace);
        tokio::select! {
            _ = tick.tick() => {
                woken.lost_nodes = true;
                woken.everything = !sweeping && sweeps.due(config.resync);
            }
            _ = until_due(crash_due) => woken.lost_nodes = true,
            _ = until_due(next_due) => {}
            // A sweep under way goes on pass after pass, with what changed meanwhile.
            _ = std::future::ready(()), if sweeping => drain(&state, &mut changes, &mut woken),
            c = changes.recv() => match c {
                Ok(change) => {
                    woken.add(&change);
                    // Coalesce a burst of writes into one pass.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    drain(&state, &mut changes, &mut woken);
                }
                Err(RecvError::Lagged(_)) => resume(&state, &mut woken),
                Err(RecvError::Closed) => return,
            },
            _ = until_stopped(&mut stopped) => return,
        }
        seen = woken.revision;
        // Services held back by their pace run once due, with whatever else woke.
        let due = lock(&caches).pace.take_due(std::time::Instant::now());
        woken.keys.extend(due);
        let (s, sess, prox, own) = (
            state.clone(),
            sessions.clone(),
            proxies.clone(),
            caches.clone(),
        );
        let mut mem = std::mem::take(&mut memory);
        if woken.everything {
            sweeps.start();
        }
        let halt = stopped.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut caches = lock(&own);
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
        if lock(&caches).sweep.is_empty() {
            sweeps.finish();
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
    /// When the sweep under way started.
    started: Option<std::time::Instant>,
}

impl Sweeps {
    fn due(&self, resync: Duration) -> bool {
        self.started.is_none()
            && self
                .last
                .is_none_or(|(at, took)| at.elapsed() >= resync.max(took * SWEEP_SHARE))
    }

    fn start(&mut self) {
        self.started = Some(std::time::Instant::now());
    }

    /// The sweep's last service ran (a no-op when none is under way).
    fn finish(&mut self) {
        if let Some(started) = self.started.take() {
            self.last = Some((std::time::Instant::now(), started.elapsed()));
        }
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
    mut role: watch::Receiver<crate::control::leader::Role>,
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
        let schedules = tokio::spawn(crate::control::schedules::run(
            fenced.clone(),
            sessions.clone(),
            stop_rx.clone(),
        ));
        let acme = tokio::spawn(crate::control::acme::run(fenced.clone(), stop_rx.clone()));
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
        if !done {
            // Said at once: every commit is already fenced by the lost term, whatever pass is
            // still in flight (which may wait out one etcd call's timeout before it ends).
            tracing::warn!("no longer leading: stopping the controllers");
        }
        let stopping = std::time::Instant::now();
        let _ = running.await;
        let _ = hooks.await;
        let _ = schedules.await;
        let _ = acme.await;
        if done {
            return;
        }
        tracing::info!(
            took_ms = stopping.elapsed().as_millis() as u64,
            "controllers stopped"
        );
    }
}

/// Takes every change already waiting, without waiting for more.
fn drain(
    state: &State,
    changes: &mut tokio::sync::broadcast::Receiver<Arc<crate::store::Change>>,
    woken: &mut wake::Woken,
) {
    loop {
        match changes.try_recv() {
            Ok(change) => woken.add(&change),
            Err(TryRecvError::Lagged(_)) => resume(state, woken),
            Err(_) => break,
        }
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
            crate::control::lost::mark_lost_nodes(
                self.state,
                self.sessions,
                crate::control::lost::LostAfter {
                    timeout: self.config.lost_node_timeout,
                    crash_grace: self.config.crash_grace,
                },
                self.started_ms,
                now,
            )?;
            // Registered targets whose deregistration delay has passed leave their group.
            if let Err(e) = crate::model::elb::registered::sweep(self.state, now) {
                tracing::warn!(error = %e, "removing drained targets failed; retrying next tick");
            }
        }
        if woken.everything {
            let all = self.sweep_start(caches, memory, now)?;
            caches.sweep.fill(all);
        }
        caches.headers.catch_up(self.state)?;
        let woken_services = caches
            .owners
            .services_of(self.state, &woken, &caches.headers)?;
        let src = sources::Sources::new(self.sessions, self.proxies, self.config.plan());
        let clock = std::time::Instant::now();
        for key in woken_services {
            if self.halted() {
                return Ok(());
            }
            if caches.pace.admit(&key, clock) {
                caches.sweep.ran(&key);
                self.reconcile(&key, &src, caches, memory, now);
            }
        }
        let until = std::time::Instant::now() + pace::SWEEP_SLICE;
        while std::time::Instant::now() < until && !self.halted() {
            let Some(key) = caches.sweep.next() else {
                break;
            };
            self.reconcile(&key, &src, caches, memory, now);
        }
        Ok(())
    }

    /// A sweep's upkeep (caches forget what is gone, auto scaling runs); returns the services
    /// it is to run.
    fn sweep_start(
        &self,
        caches: &mut Caches,
        memory: &mut HashMap<String, ServiceMemory>,
        now: i64,
    ) -> Result<Vec<String>> {
        // Each remembered task is looked up (they are few: the headers cache holds the
        // services' own), never a set of every task key built.
        let exists = |k: &str| self.state.get_raw(k).map_or(true, |v| v.is_some());
        caches.owners.retain(&exists, &caches.headers);
        self.proxies.retain_tasks(&|arn| {
            crate::model::placement::apply::task_key(arn).is_some_and(|k| exists(&k))
                || crate::model::elb::registered::known_key(self.state, arn)
        });
        let all = self.state.scan::<Service>(keys::SERVICES)?;
        self.scale(&all, now, memory);
        let live: Vec<&Service> = all.iter().filter(|s| s.status != "INACTIVE").collect();
        let keys: HashSet<String> = live
            .iter()
            .map(|s| crate::model::services::key_of(s))
            .collect();
        memory.retain(|k, _| keys.contains(k));
        caches.pace.retain(|k| keys.contains(k));
        let groups: HashSet<String> = live
            .iter()
            .map(|s| {
                let cluster = berth_core::arn::cluster_name(&s.cluster_arn);
                keys::group_tasks(cluster, &format!("service:{}", s.service_name))
            })
            .collect();
        caches.headers.retain(|prefix| groups.contains(prefix));
        Ok(keys.into_iter().collect())
    }

    /// One service's pass; its memory kept for the next.
    fn reconcile(
        &self,
        key: &str,
        src: &sources::Sources<'_>,
        caches: &mut Caches,
        memory: &mut HashMap<String, ServiceMemory>,
        now: i64,
    ) {
        let mem = memory.remove(key).unwrap_or_default();
        match service::reconcile(self.state, key, src, &mut caches.headers, mem.clone(), now) {
            Ok(passed) => {
                let at = std::time::Instant::now();
                caches.pace.ran(key, passed.read, at);
                if passed.replacing {
                    let wait = pace::gap(passed.read).max(pace::REVISIT);
                    caches.pace.revisit(key, at + wait);
                }
                memory.insert(key.to_string(), passed.memory);
            }
            Err(e) => {
                memory.insert(key.to_string(), mem);
                tracing::warn!(service = %key, error = %e, "service reconcile failed");
            }
        }
    }

    fn halted(&self) -> bool {
        self.halt.as_ref().is_some_and(|h| *h.borrow())
    }

    fn scale(&self, all: &[Service], now: i64, memory: &mut HashMap<String, ServiceMemory>) {
        for svc in all.iter().filter(|s| s.status != "INACTIVE") {
            let mem = memory
                .entry(crate::model::services::key_of(svc))
                .or_default();
            let res = scaling::evaluate(
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

fn lock(caches: &std::sync::Mutex<Caches>) -> std::sync::MutexGuard<'_, Caches> {
    caches.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves when the next held-back service is due (never, when none is).
/// When the first crashed agent's grace still to come runs out (a moment after, so the pass
/// sees it past), as an instant.
fn crash_deadline(sessions: &Sessions, grace: Duration) -> Option<std::time::Instant> {
    let now = time::now_millis();
    let due = sessions.next_crash_deadline(grace.as_millis() as i64, now)?;
    Some(std::time::Instant::now() + Duration::from_millis((due - now + 5) as u64))
}

async fn until_due(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves once shutdown is asked for (the watch guard never lives across an await).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
