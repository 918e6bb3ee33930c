//! Simulated agents for `bench fleet`: each speaks the real agent protocol on its own stream
//! (hello, heartbeats with task usage, a report per observed change), many streams sharing one
//! HTTP/2 connection. Their "containers" start at once: a task sent to run is reported RUNNING,
//! a task sent to stop is reported STOPPED. Nothing on the control plane's side knows.

use berth_proto::agent::v1::agent_sessions_client::AgentSessionsClient;
use berth_proto::agent::v1::*;
use berth_proto::v1::{Attribute, Container, Task};
use berth_trust::backoff::Backoff;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Streams per HTTP/2 connection (below hyper's default concurrent-stream limit of 200).
pub const AGENTS_PER_CONNECTION: usize = 100;
/// Each simulated node's size: enough room that placement, not capacity, is measured.
pub const NODE_CPU: i64 = 16_384;
pub const NODE_MEMORY_MIB: i64 = 65_536;
pub const ZONES: [&str; 3] = ["a", "b", "c"];

/// What the whole fleet has reported, for progress and convergence.
#[derive(Debug, Default)]
pub struct Counters {
    /// Services' tasks the live agents last reported RUNNING (the probe's RunTask tasks are not
    /// counted: they are no service's).
    pub running: AtomicI64,
    pub reports: AtomicU64,
    pub connected: AtomicI64,
    /// The control plane child's pid, for the progress line (a restart starts a new one).
    pub control_plane_pid: std::sync::atomic::AtomicU32,
}

/// One simulated node, as the bench sees it.
pub struct Agent {
    pub zone: &'static str,
    /// The id the control plane gave the node (set on its welcome).
    pub node_id: Arc<Mutex<String>>,
    stop: watch::Sender<bool>,
}

impl Agent {
    /// Drops the stream at once, without a goodbye, as a crashed agent's kernel would.
    pub fn kill(&self) {
        let _ = self.stop.send(true);
    }

    pub fn id(&self) -> String {
        self.node_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Connects `n` agents to `url`, `AGENTS_PER_CONNECTION` streams to a connection.
pub async fn start(url: &str, n: usize, counters: Arc<Counters>) -> anyhow::Result<Vec<Agent>> {
    let mut agents = Vec::with_capacity(n);
    let mut channel = None;
    for i in 0..n {
        if i.is_multiple_of(AGENTS_PER_CONNECTION) {
            channel = Some(Channel::from_shared(url.to_string())?.connect().await?);
        }
        let ch = channel.clone().expect("a channel per group");
        let zone = ZONES[i % ZONES.len()];
        let name = format!("sim-{i:05}");
        let (stop, stopped) = watch::channel(false);
        let node_id = Arc::new(Mutex::new(String::new()));
        let sim = Sim {
            name: name.clone(),
            zone,
            node_id: node_id.clone(),
            counters: counters.clone(),
            known: HashMap::new(),
        };
        tokio::spawn(sim.run(ch, stopped));
        agents.push(Agent {
            zone,
            node_id,
            stop,
        });
    }
    Ok(agents)
}

/// What one agent "runs": task ARN → last status it reported.
struct Sim {
    name: String,
    zone: &'static str,
    node_id: Arc<Mutex<String>>,
    counters: Arc<Counters>,
    known: HashMap<String, Seen>,
}

/// A task's last reported status, and whether it is a service's.
#[derive(Clone, Copy)]
struct Seen {
    status: &'static str,
    service: bool,
}

impl Seen {
    /// Whether it counts in `Counters::running`.
    fn counts(&self) -> bool {
        self.service && self.status == "RUNNING"
    }
}

fn send(body: agent_message::Body) -> AgentMessage {
    AgentMessage { body: Some(body) }
}

/// How one stream ended.
struct Session {
    /// The node was killed (the benchmark stops it for good).
    killed: bool,
    /// The control plane accepted the stream (the backoff starts over).
    opened: bool,
}

impl Sim {
    /// Connects, serves the stream, and reconnects with the agent's jittered backoff until
    /// killed; a killed node's tasks stop counting as running.
    async fn run(mut self, channel: Channel, mut stopped: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        loop {
            let Session { killed, opened } = self.session(channel.clone(), &mut stopped).await;
            if killed || *stopped.borrow() {
                break;
            }
            if opened {
                backoff.reset();
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_wait()) => {}
                _ = until(&mut stopped) => break,
            }
        }
        let running = self.known.values().filter(|s| s.counts()).count() as i64;
        self.counters.running.fetch_sub(running, Ordering::Relaxed);
    }

    /// One stream, until it ends or the node is killed.
    async fn session(&mut self, channel: Channel, stopped: &mut watch::Receiver<bool>) -> Session {
        let (out, rx) = mpsc::channel(1024);
        let hello = Hello {
            node_id: self.id(),
            name: self.name.clone(),
            address: "127.0.0.1".into(),
            cpu: NODE_CPU,
            memory_mib: NODE_MEMORY_MIB,
            attributes: vec![Attribute {
                name: "zone".into(),
                value: self.zone.into(),
            }],
            version: "sim".into(),
            capabilities: vec![berth_control_plane::live::sessions::DESIRED_TASKS_CHANGE.into()],
            ..Default::default()
        };
        let _ = out.send(send(agent_message::Body::Hello(hello))).await;
        let mut client = AgentSessionsClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let mut inbound = match client.session(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                eprintln!("{}: session refused: {}", self.name, e.message());
                return Session {
                    killed: false,
                    opened: false,
                };
            }
        };
        self.counters.connected.fetch_add(1, Ordering::Relaxed);
        // As the real agent: what it observed while away is reported again in full.
        for (arn, seen) in &self.known {
            let r = TaskReport {
                task_arn: arn.clone(),
                last_status: seen.status.to_string(),
                ..Default::default()
            };
            let _ = out.send(send(agent_message::Body::TaskReport(r))).await;
        }
        let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
        // As the real agent: usage only as often as the server asks for it.
        let mut usage_every = Duration::ZERO;
        let mut usage_sent: Option<tokio::time::Instant> = None;
        let killed = loop {
            tokio::select! {
                m = inbound.message() => match m {
                    Ok(Some(m)) => {
                        if let Some(server_message::Body::Welcome(w)) = &m.body {
                            usage_every = Duration::from_millis(w.usage_interval_ms.max(0) as u64);
                        }
                        if self.on_message(m, &out, &mut heartbeat).await.is_err() {
                            break false;
                        }
                    }
                    _ => break false,
                },
                _ = heartbeat.tick() => {
                    let due = usage_sent.is_none_or(|at| at.elapsed() >= usage_every);
                    let task_usage = if due {
                        usage_sent = Some(tokio::time::Instant::now());
                        self.known
                            .iter()
                            .filter(|(_, s)| s.status == "RUNNING")
                            .map(|(arn, _)| TaskUsage { task_arn: arn.clone(), cpu_cores: 0.01 })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    if out.send(send(agent_message::Body::Heartbeat(Heartbeat { task_usage }))).await.is_err() {
                        break false;
                    }
                }
                _ = until(stopped) => break true,
            }
        };
        self.counters.connected.fetch_sub(1, Ordering::Relaxed);
        Session {
            killed,
            opened: true,
        }
    }

    fn id(&self) -> String {
        self.node_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn on_message(
        &mut self,
        m: ServerMessage,
        out: &mpsc::Sender<AgentMessage>,
        heartbeat: &mut tokio::time::Interval,
    ) -> Result<(), ()> {
        match m.body {
            Some(server_message::Body::Welcome(w)) => {
                *self.node_id.lock().unwrap_or_else(|p| p.into_inner()) = w.node_id;
                let every = Duration::from_millis(w.heartbeat_interval_ms.max(100) as u64);
                *heartbeat = tokio::time::interval(every);
                Ok(())
            }
            Some(server_message::Body::DesiredTasks(set)) => self.on_desired(set, out).await,
            Some(server_message::Body::DesiredTasksChange(c)) => self.on_change(c, out).await,
            _ => Ok(()),
        }
    }

    /// Level-triggered, as the real agent: run what is wanted, stop what is asked to stop,
    /// forget what is no longer sent.
    async fn on_desired(
        &mut self,
        set: DesiredTasks,
        out: &mpsc::Sender<AgentMessage>,
    ) -> Result<(), ()> {
        let mut seen = std::collections::HashSet::with_capacity(set.tasks.len());
        for t in set.tasks.iter().filter_map(|a| a.task.as_ref()) {
            seen.insert(t.task_arn.as_str());
            self.act(t, out).await?;
        }
        let retained: std::collections::HashSet<&str> =
            set.retained_task_arns.iter().map(String::as_str).collect();
        let counters = &self.counters;
        self.known.retain(|arn, s| {
            let keep = seen.contains(arn.as_str()) || retained.contains(arn.as_str());
            if !keep && s.counts() {
                counters.running.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
        Ok(())
    }
}

impl Sim {
    /// Starts (at once) or stops what one task asks for, and reports the change.
    async fn act(&mut self, t: &Task, out: &mpsc::Sender<AgentMessage>) -> Result<(), ()> {
        let was = self.known.get(t.task_arn.as_str()).map(|s| s.status);
        let next = if t.desired_status == "STOPPED" {
            "STOPPED"
        } else {
            "RUNNING"
        };
        if was == Some(next) || was == Some("STOPPED") {
            return Ok(());
        }
        self.counters.reports.fetch_add(1, Ordering::Relaxed);
        let service = t.group.starts_with("service:");
        if service {
            let delta = i64::from(next == "RUNNING") - i64::from(was == Some("RUNNING"));
            self.counters.running.fetch_add(delta, Ordering::Relaxed);
        }
        let seen = Seen {
            status: next,
            service,
        };
        self.known.insert(t.task_arn.clone(), seen);
        out.send(send(agent_message::Body::TaskReport(report(t, next))))
            .await
            .map_err(|_| ())
    }

    /// A change to the set, applied as the real agent applies it (onto the last set): only the
    /// tasks it names are looked at.
    async fn on_change(
        &mut self,
        c: DesiredTasksChange,
        out: &mpsc::Sender<AgentMessage>,
    ) -> Result<(), ()> {
        for t in c.upserted.iter().filter_map(|a| a.task.as_ref()) {
            self.act(t, out).await?;
        }
        for arn in &c.removed_task_arns {
            if self.known.remove(arn).is_some_and(|s| s.counts()) {
                self.counters.running.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn report(t: &Task, status: &str) -> TaskReport {
    let now = berth_proto::time::now();
    let containers = t
        .containers
        .iter()
        .map(|c| Container {
            last_status: status.into(),
            exit_code: (status == "STOPPED").then_some(0),
            ..c.clone()
        })
        .collect();
    TaskReport {
        task_arn: t.task_arn.clone(),
        last_status: status.into(),
        health_status: "UNKNOWN".into(),
        started_at: now.clone(),
        stopped_at: if status == "STOPPED" {
            now
        } else {
            String::new()
        },
        stop_code: if status == "STOPPED" {
            "EssentialContainerExited".into()
        } else {
            String::new()
        },
        stopped_reason: String::new(),
        containers,
    }
}

async fn until(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await.map(|_| ());
}
