//! The agent's side of its stream: hello, heartbeats, the desired set in, reports and logs out;
//! exec requests start `exec` on their own calls.
//! The session loop alone owns the table of runners; runners alone own their tasks.

use crate::runner::{self, labels, Desired, RunnerContext};
use crate::runtime::ContainerRuntime;
use crate::Config;
use berth_proto::agent::v1::agent_sessions_client::AgentSessionsClient;
use berth_proto::agent::v1::*;
use berth_proto::v1::Attribute;
use berth_trust::backoff::Backoff;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

struct RunnerHandle {
    desired: watch::Sender<Desired>,
    report: watch::Receiver<TaskReport>,
    join: JoinHandle<()>,
}

/// State that outlives one connection: the runners keep going while the server is away.
pub struct Session<R> {
    pub rt: Arc<R>,
    pub config: Config,
    pub node_id: String,
    runners: HashMap<String, RunnerHandle>,
    changed_tx: mpsc::UnboundedSender<String>,
    changed_rx: mpsc::UnboundedReceiver<String>,
    logs: HashMap<String, JoinHandle<()>>,
    last_sweep: std::time::Instant,
    last_orphan_check: std::time::Instant,
    /// The last desired set's tasks and retained stopped tasks: containers of anything else
    /// that is not running may go.
    known: HashSet<String>,
    have_desired: bool,
    /// The desired set as this stream has sent it (changes apply onto it); none before the
    /// stream's first whole set.
    desired: Option<crate::desired::DesiredSet>,
    usage: crate::usage::UsageSampler,
    metrics: Arc<crate::metrics::AgentMetrics>,
    /// The task metadata endpoint's registry, when it is on.
    pub metadata: Option<Arc<crate::metadata::Registry>>,
    /// The node resolver's address, given to tasks as their DNS server (None: Docker's DNS).
    pub dns: Option<String>,
    /// The node's Service Connect address (`crate::connect`), for tasks' alias hosts.
    pub connect: Option<String>,
}

/// How often the agent looks for running containers of tasks it no longer runs.
/// What this agent tells the control plane it understands (see `Hello.capabilities`).
const DESIRED_TASKS_CHANGE: &str = "desired-tasks-change";

const ORPHAN_CHECK: Duration = Duration::from_secs(5);

enum End {
    Shutdown,
    Disconnected(String),
}

/// How a connection ended, and whether it got as far as being welcomed.
struct Ended {
    end: End,
    welcomed: bool,
}

impl<R: ContainerRuntime> Session<R> {
    pub fn new(
        rt: Arc<R>,
        config: Config,
        node_id: String,
        metrics: Arc<crate::metrics::AgentMetrics>,
    ) -> Self {
        let (changed_tx, changed_rx) = mpsc::unbounded_channel();
        Self {
            rt,
            config,
            node_id,
            runners: HashMap::new(),
            changed_tx,
            changed_rx,
            logs: HashMap::new(),
            last_sweep: std::time::Instant::now(),
            last_orphan_check: std::time::Instant::now(),
            known: HashSet::new(),
            have_desired: false,
            desired: None,
            usage: Default::default(),
            metrics,
            metadata: None,
            dns: None,
            connect: None,
        }
    }

    /// Connects, serves the stream, and reconnects with backoff until shutdown.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let Ended { end, welcomed } = self.connect_once(&mut shutdown).await;
            if welcomed {
                backoff.reset();
            }
            let wait = backoff.next_wait();
            match end {
                End::Shutdown => return,
                End::Disconnected(why) => {
                    self.metrics.disconnected();
                    tracing::warn!(server = %self.config.server, error = %why, retry_in = ?wait, "control plane unreachable; tasks keep running");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut shutdown) => return,
            }
            // Reports produced meanwhile are resent in full on the next connection.
            while self.changed_rx.try_recv().is_ok() {}
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            node_id: self.node_id.clone(),
            name: self.config.name.clone(),
            address: self.config.advertise_addr.clone(),
            cpu: self.config.cpu,
            memory_mib: self.config.memory_mib,
            reserved_ports: self.config.reserved_ports.clone(),
            attributes: self
                .config
                .attributes
                .iter()
                .map(|(k, v)| Attribute {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![DESIRED_TASKS_CHANGE.into()],
            allow_host_paths: self
                .config
                .allow_host_paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        }
    }

    async fn connect_once(&mut self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let mut welcomed = false;
        self.desired = None;
        let end = self.serve_stream(shutdown, &mut welcomed).await;
        Ended { end, welcomed }
    }

    async fn serve_stream(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        welcomed: &mut bool,
    ) -> End {
        let channel = match connect(&self.config).await {
            Ok(c) => c,
            Err(e) => return End::Disconnected(e),
        };
        // Execs dial back on the same connection, so they reach the server holding this session.
        let exec_channel = channel.clone();
        let (out, out_rx) = mpsc::channel::<AgentMessage>(256);
        let send = |body| AgentMessage { body: Some(body) };
        let _ = out
            .send(send(agent_message::Body::Hello(self.hello())))
            .await;
        let mut inbound = match AgentSessionsClient::new(channel)
            .session(ReceiverStream::new(out_rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(e) => return End::Disconnected(e.message().to_string()),
        };
        let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = stopped(shutdown) => {
                    // A planned stop: the control plane keeps the node's tasks where they are
                    // (a stream that just ends reads as a crash, lost after a short grace).
                    if out.send(send(agent_message::Body::Goodbye(Goodbye {}))).await.is_ok() {
                        drop(out);
                        // The server ends the stream once it has the goodbye.
                        let _ = tokio::time::timeout(GOODBYE_WAIT, async {
                            while let Some(Ok(_)) = inbound.next().await {}
                        })
                        .await;
                    }
                    return End::Shutdown;
                }
                m = inbound.next() => {
                    let m = match m {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return End::Disconnected(e.message().to_string()),
                        None => return End::Disconnected("stream closed by the control plane".into()),
                    };
                    match m.body {
                        Some(server_message::Body::Welcome(w)) => {
                            heartbeat = self.welcome(w, &exec_channel, &out).await;
                            *welcomed = true;
                        }
                        Some(server_message::Body::DesiredTasks(d)) if *welcomed => {
                            let set = crate::desired::DesiredSet::whole(d);
                            let message = set.to_message();
                            self.desired = Some(set);
                            self.reconcile(message).await;
                        }
                        Some(server_message::Body::DesiredTasksChange(c)) if *welcomed => {
                            // The first message of a stream is always a whole set, so a
                            // change always has one to apply onto.
                            if let Some(set) = self.desired.as_mut() {
                                set.apply(c);
                                let message = set.to_message();
                                self.reconcile(message).await;
                            }
                        }
                        Some(server_message::Body::LogRequest(req)) => self.start_logs(req, out.clone()),
                        Some(server_message::Body::ExecRequest(req)) => {
                            tokio::spawn(crate::exec::run(self.rt.clone(), exec_channel.clone(), req));
                        }
                        Some(server_message::Body::LogCancel(c)) => {
                            if let Some(h) = self.logs.remove(&c.request_id) {
                                h.abort();
                            }
                        }
                        _ => {}
                    }
                }
                Some(arn) = self.changed_rx.recv() => {
                    if let Some(h) = self.runners.get(&arn) {
                        let r = h.report.borrow().clone();
                        if out.send(send(agent_message::Body::TaskReport(r))).await.is_err() {
                            return End::Disconnected("stream closed".into());
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let running = self.running_containers();
                    let task_usage = self.usage.poll(&self.rt, running);
                    if out.send(send(agent_message::Body::Heartbeat(Heartbeat { task_usage }))).await.is_err() {
                        return End::Disconnected("stream closed".into());
                    }
                    self.logs.retain(|_, h| !h.is_finished());
                    if *welcomed && self.last_orphan_check.elapsed() >= ORPHAN_CHECK {
                        self.last_orphan_check = std::time::Instant::now();
                        self.stop_orphans().await;
                    }
                    if self.last_sweep.elapsed() >= self.config.sweep_interval {
                        self.last_sweep = std::time::Instant::now();
                        self.sweep().await;
                    }
                }
            }
        }
    }

    /// Takes the control plane's welcome: the node id it knows this node by, the heartbeat and
    /// usage intervals (the heartbeat timer is returned), and sends every task's report in full,
    /// since the server may have missed some.
    async fn welcome(
        &mut self,
        w: Welcome,
        exec_channel: &tonic::transport::Channel,
        out: &mpsc::Sender<AgentMessage>,
    ) -> tokio::time::Interval {
        if w.node_id != self.node_id {
            self.node_id = w.node_id.clone();
            if let Err(e) = crate::save_node_id(&self.config.data_dir, &self.node_id) {
                tracing::error!(error = %e, "cannot persist the node id");
            }
        }
        let every = Duration::from_millis(w.heartbeat_interval_ms.max(100) as u64);
        self.usage.set_interval(w.usage_interval_ms);
        if let Some(m) = &self.metadata {
            m.set_control(exec_channel.clone(), self.node_id.clone());
        }
        self.metrics.welcomed();
        tracing::info!(node = %self.config.name, id = %self.node_id, "registered with the control plane");
        for h in self.runners.values() {
            let r = h.report.borrow().clone();
            if !r.last_status.is_empty() {
                let body = agent_message::Body::TaskReport(r);
                let _ = out.send(AgentMessage { body: Some(body) }).await;
            }
        }
        tokio::time::interval(every)
    }

    /// Makes the runners match the desired set, and stops containers of tasks nobody wants.
    async fn reconcile(&mut self, set: DesiredTasks) {
        let mut wanted = HashSet::new();
        self.known = set.retained_task_arns.iter().cloned().collect();
        self.known.extend(
            set.tasks
                .iter()
                .filter_map(|a| a.task.as_ref().map(|t| t.task_arn.clone())),
        );
        self.have_desired = true;
        for a in set.tasks {
            let (Some(task), Some(definition)) = (a.task, a.task_definition) else {
                continue;
            };
            let arn = task.task_arn.clone();
            wanted.insert(arn.clone());
            let desired = Desired {
                task,
                definition,
                wanted: true,
                secrets: Arc::new(crate::runner::Resolved {
                    secrets: a.secrets,
                    logins: a.registry_logins,
                    error: a.resolve_error,
                    connect_hosts: a.connect_hosts,
                }),
            };
            match self.runners.get(&arn) {
                Some(h) => {
                    h.desired.send_if_modified(|cur| {
                        let differs = cur.task.desired_status != desired.task.desired_status
                            || cur.task.deregistered_at != desired.task.deregistered_at
                            || !cur.wanted;
                        *cur = desired.clone();
                        differs
                    });
                }
                None => {
                    let (dtx, drx) = watch::channel(desired);
                    let (rtx, rrx) = watch::channel(TaskReport::default());
                    let ctx = RunnerContext {
                        node_id: self.node_id.clone(),
                        default_stop_timeout: self.config.default_stop_timeout,
                        poll: self.config.poll,
                        task_network: self.config.task_network.clone(),
                        metrics: self.metrics.clone(),
                        allow_host_paths: Arc::new(self.config.allow_host_paths.clone()),
                        metadata: self.metadata.clone(),
                        powers: self.config.powers,
                        dns: self.dns.clone(),
                        connect: self.connect.clone(),
                    };
                    let join = tokio::spawn(runner::run(
                        self.rt.clone(),
                        ctx,
                        drx,
                        rtx,
                        self.changed_tx.clone(),
                    ));
                    self.runners.insert(
                        arn,
                        RunnerHandle {
                            desired: dtx,
                            report: rrx,
                            join,
                        },
                    );
                }
            }
        }
        // Runners of tasks no longer in the set: stop them if still going; forget them when done.
        self.runners.retain(|arn, h| {
            if wanted.contains(arn) {
                return true;
            }
            if h.join.is_finished() {
                self.metrics.forget_task(arn);
                return false;
            }
            h.desired.send_modify(|d| d.wanted = false);
            true
        });
        self.stop_orphans().await;
        self.sweep().await;
    }

    /// Stops running containers of this node whose task has no runner: the control plane no
    /// longer wants them (it forgot the task, or placed it elsewhere while we were away).
    /// Each running task's running containers, for the CPU sampler.
    fn running_containers(&self) -> Vec<(String, Vec<String>)> {
        self.runners
            .iter()
            .filter_map(|(arn, h)| {
                let r = h.report.borrow();
                (r.last_status == "RUNNING").then(|| {
                    let ids = r
                        .containers
                        .iter()
                        .filter(|c| c.last_status == "RUNNING" && !c.runtime_id.is_empty())
                        .map(|c| c.runtime_id.clone())
                        .collect();
                    (arn.clone(), ids)
                })
            })
            .collect()
    }

    async fn stop_orphans(&mut self) {
        let node_id = self.node_id.clone();
        match self.rt.list(&[(labels::NODE, &node_id)]).await {
            Ok(list) => {
                for c in list.into_iter().filter(|c| c.running) {
                    let arn = c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default();
                    if !self.runners.contains_key(&arn) {
                        tracing::info!(container = %c.name, task = %arn, "stopping a container of a task the control plane no longer wants");
                        let rt = self.rt.clone();
                        let t = self.config.default_stop_timeout.as_secs() as i64;
                        tokio::spawn(async move {
                            let _ = rt.stop(&c.id, t).await;
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list this node's containers"),
        }
    }

    /// Removes this node's stopped containers whose task the control plane neither runs nor
    /// retains: the control plane alone decides how long a stopped task is kept.
    async fn sweep(&mut self) {
        if !self.have_desired {
            return;
        }
        let node_id = self.node_id.clone();
        let Ok(list) = self.rt.list(&[(labels::NODE, &node_id)]).await else {
            return;
        };
        for c in list.into_iter().filter(|c| !c.running) {
            let arn = c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default();
            if self.known.contains(&arn)
                || self
                    .runners
                    .get(&arn)
                    .is_some_and(|h| !h.join.is_finished())
            {
                continue;
            }
            tracing::info!(container = %c.name, task = %arn, "removing the container of a task the control plane no longer keeps");
            let _ = self.rt.remove(&c.id).await;
        }
        self.sweep_task_volumes(&node_id).await;
    }

    /// Removes the volumes made for single tasks that are gone (the engine refuses one still
    /// mounted, which the next sweep tries again).
    async fn sweep_task_volumes(&self, node_id: &str) {
        let Ok(volumes) = self.rt.task_volumes(node_id).await else {
            return;
        };
        for v in volumes {
            let running = self
                .runners
                .get(&v.task_arn)
                .is_some_and(|h| !h.join.is_finished());
            if !running && !self.known.contains(&v.task_arn) {
                tracing::info!(volume = %v.name, task = %v.task_arn, "removing the volume of a task the control plane no longer keeps");
                let _ = self.rt.remove_volume(&v.name).await;
            }
        }
    }

    fn start_logs(&mut self, req: LogRequest, out: mpsc::Sender<AgentMessage>) {
        let name = runner::container_name(&req.task_arn, &req.container);
        let opts = crate::runtime::LogOptions {
            follow: req.follow,
            tail: req.tail,
            since: req.since,
            timestamps: req.timestamps,
        };
        let mut stream = self.rt.logs(&name, opts);
        let id = req.request_id.clone();
        let handle = tokio::spawn(async move {
            let chunk = |data: Vec<u8>, eof: bool, error: String| AgentMessage {
                body: Some(agent_message::Body::LogChunk(LogChunk {
                    request_id: id.clone(),
                    data,
                    eof,
                    error,
                })),
            };
            while let Some(item) = stream.next().await {
                let msg = match item {
                    Ok(bytes) => chunk(bytes, false, String::new()),
                    Err(e) => {
                        let _ = out.send(chunk(Vec::new(), true, e.to_string())).await;
                        return;
                    }
                };
                if out.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = out.send(chunk(Vec::new(), true, String::new())).await;
        });
        self.logs.insert(req.request_id, handle);
    }
}

impl<R> Drop for Session<R> {
    fn drop(&mut self) {
        for h in self.logs.values() {
            h.abort();
        }
    }
}

/// Resolves once shutdown is asked for (the watch guard never lives across an await).
/// How long a stopping agent waits for the control plane to take its goodbye.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// The server tried first on the next connect: the one that last answered.
static PREFERRED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Connects to one of the control-plane servers (`--server` takes several, comma-separated):
/// the one that answered last, then each other in turn.
pub(crate) async fn connect(config: &Config) -> Result<tonic::transport::Channel, String> {
    use std::sync::atomic::Ordering;
    let servers: Vec<&str> = config
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let start = PREFERRED.load(Ordering::Relaxed);
    let mut errors = Vec::new();
    for i in 0..servers.len().max(1) {
        let n = (start + i) % servers.len().max(1);
        let url = servers.get(n).copied().unwrap_or_default();
        match connect_to(config, url).await {
            Ok(c) => {
                PREFERRED.store(n, Ordering::Relaxed);
                return Ok(c);
            }
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(errors.join("; "))
}

/// Plaintext, or mutual TLS with the certificate current at this connect.
async fn connect_to(config: &Config, url: &str) -> Result<tonic::transport::Channel, String> {
    let endpoint = match &config.tls {
        Some(tls) => tls.endpoint(url).map_err(|e| e.to_string())?,
        None => tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("bad server URL: {e}"))?,
    }
    .connect_timeout(Duration::from_secs(3))
    .tcp_nodelay(true)
    // HTTP/2 pings notice a control plane cut off by the network (no reset ever comes), so the
    // agent reconnects, and hears what changed, as soon as the path heals.
    .http2_keep_alive_interval(Duration::from_secs(2))
    .keep_alive_timeout(Duration::from_secs(3))
    .keep_alive_while_idle(true);
    let connected = match &config.tls {
        Some(tls) => tls.connect(endpoint).await,
        None => endpoint.connect().await,
    };
    connected.map_err(|e| match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    })
}
