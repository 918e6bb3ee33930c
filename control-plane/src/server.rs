//! `spawn`: the control plane as one running thing (gRPC + HTTP), started in-process by tests
//! and by the `berth` binary alike.

use crate::api::StacksApi;
use crate::api::{
    AgentSessionsApi, CertificatesApi, ClustersApi, EndpointsApi, NodeAdminApi, NodesApi,
    ServicesApi, SessionTimings, TaskDefinitionsApi, TasksApi, TokensApi,
};
use crate::auth::{AuthLayer, Authorizer};
use crate::controller::{self, ControllerConfig};
use crate::endpoints::health::Proxies;
use crate::error::Error;
use crate::nodes::Sessions;
use crate::state::State;
use crate::trust::{Trust, TrustConfig};
use crate::{clusters, http};
use berth_proto::agent::v1::agent_sessions_server::AgentSessionsServer;
use berth_proto::v1::certificates_server::CertificatesServer;
use berth_proto::v1::clusters_server::ClustersServer;
use berth_proto::v1::endpoints_server::EndpointsServer;
use berth_proto::v1::node_admin_server::NodeAdminServer;
use berth_proto::v1::nodes_server::NodesServer;
use berth_proto::v1::services_server::ServicesServer;
use berth_proto::v1::stacks_server::StacksServer;
use berth_proto::v1::task_definitions_server::TaskDefinitionsServer;
use berth_proto::v1::tasks_server::TasksServer;
use berth_proto::v1::tokens_server::TokensServer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long `ControlPlane::shutdown` waits for in-flight calls. Streams end at once, so this
/// only bounds unary calls and clients that do not hang up: `berth server` and `berth dev` are
/// to be gone within 5 s of SIGTERM, long before a supervisor's stop timeout.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Where the control plane keeps its data and listens.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub sessions: SessionTimings,
    /// How long a stopped task stays visible before it is forgotten.
    pub task_retention: Duration,
    pub controller: ControllerConfig,
    /// Mutual TLS and tokens; `None` serves plaintext without auth (`berth dev`).
    pub trust: Option<TrustConfig>,
    /// Keep state in etcd (several replicas, one leader) instead of sled in `data_dir`.
    pub etcd: Option<crate::store::EtcdOptions>,
    /// The leader's lease: a leader cut off from etcd stops acting within it.
    pub leader_ttl: Duration,
    /// The gRPC URL other replicas and `berth server list` show for this one.
    pub advertise: Option<String>,
    /// Bounds on what one request may ask for (`--max-desired-count`).
    pub limits: crate::Limits,
    /// The HTTP port's connection bounds, `Host` rule and TLS choice.
    pub http: http::HttpConfig,
    /// Open connections on the gRPC port at most; more are closed when accepted.
    pub grpc_max_connections: usize,
    /// The region and 12-digit account in ARNs (`arn:aws:ecs:REGION:ACCOUNT:…`).
    pub region: String,
    pub account_id: String,
}

impl Config {
    /// Defaults for everything but where to keep data and listen.
    pub fn new(data_dir: PathBuf, grpc_listen: SocketAddr, http_listen: SocketAddr) -> Self {
        Self {
            data_dir,
            grpc_listen,
            http_listen,
            sessions: SessionTimings::default(),
            task_retention: Duration::from_secs(24 * 3600),
            controller: ControllerConfig::default(),
            trust: None,
            etcd: None,
            leader_ttl: Duration::from_secs(5),
            advertise: None,
            limits: crate::Limits::default(),
            http: http::HttpConfig::default(),
            grpc_max_connections: 4096,
            region: crate::arn::DEFAULT_REGION.into(),
            account_id: crate::arn::DEFAULT_ACCOUNT.into(),
        }
    }
}

/// A running control plane. Dropping it starts the same shutdown without waiting for it; call
/// `shutdown` to wait.
pub struct ControlPlane {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub state: State,
    pub sessions: Arc<Sessions>,
    pub proxies: Arc<Proxies>,
    /// Components in the same process add their metrics to `/metrics` here.
    pub extra_metrics: http::ExtraMetrics,
    /// Who may call what; the JSON HTTP API calls `auth.authorize` too.
    pub auth: Arc<Authorizer>,
    /// The CA and tokens, when the server runs with TLS.
    pub trust: Option<Arc<Trust>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] Error),
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SpawnError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SpawnError::Listen { addr, source })
}

/// What the control plane keeps in its data directory, made owner-only on every start.
const OWNED: &[&str] = &["store", "ca.crt", "ca.key", "admin.token", "join.token"];

/// Opens the store, then serves gRPC and HTTP until `shutdown`.
pub async fn spawn(config: Config) -> Result<ControlPlane, SpawnError> {
    // Owner-only: the store holds environment values, secrets among them.
    berth_trust::files::owner_only(&config.data_dir, OWNED).map_err(|source| {
        SpawnError::DataDir {
            dir: config.data_dir.clone(),
            source,
        }
    })?;
    let grpc = bind(config.grpc_listen).await?;
    let http_listener = bind(config.http_listen).await?;
    let grpc_addr = grpc.local_addr().map_err(|source| SpawnError::Listen {
        addr: config.grpc_listen,
        source,
    })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| SpawnError::Listen {
            addr: config.http_listen,
            source,
        })?;

    crate::arn::configure(&config.region, &config.account_id);
    let (store, election) = crate::leader::open_store(&config).await?;
    let store_kind = if config.etcd.is_some() {
        "etcd"
    } else {
        "sled"
    };
    let state = State::new(store).with_limits(config.limits);
    {
        let s = state.clone();
        tokio::task::spawn_blocking(move || {
            let n = crate::arn_upgrade::upgrade(&s)?;
            if n > 0 {
                tracing::info!(
                    records = n,
                    "stored ARNs rewritten to this server's region and account"
                );
            }
            clusters::ensure_default(&s)?;
            let indexed = crate::tasks::index_existing(&s)?;
            if indexed > 0 {
                tracing::info!(tasks = indexed, "indexed tasks stored by an older version");
            }
            // What an older version stored out of today's bounds is named, then left alone.
            crate::services::report_invalid(&s)
        })
        .await
        .map_err(|e| Error::Client(format!("opening store: {e}")))??;
    }

    let trust = match config.trust.clone() {
        Some(t) => {
            let (dir, s) = (config.data_dir.clone(), state.clone());
            let listen = config.grpc_listen;
            let shared = config.etcd.is_some();
            let opened = tokio::task::spawn_blocking(move || {
                if shared {
                    crate::trust::share_ca(&dir, &s)?;
                }
                Trust::open(&dir, &t, listen, s)
            })
            .await
            .map_err(|e| Error::Client(format!("opening trust: {e}")))??;
            Some(Arc::new(opened))
        }
        None => None,
    };
    // The store's files (and the CA's) exist now: owner-only too, also when an older version
    // made them readable.
    berth_trust::files::owner_only(&config.data_dir, OWNED).map_err(|source| {
        SpawnError::DataDir {
            dir: config.data_dir.clone(),
            source,
        }
    })?;
    let auth = trust
        .as_ref()
        .map_or_else(|| Arc::new(Authorizer::off()), |t| t.auth.clone());

    let (stop, stopped) = watch::channel(false);
    let (health, health_service) = tonic_health::server::health_reporter();
    // Serving only now that the store is open.
    health.set_serving::<ClustersServer<ClustersApi>>().await;
    health
        .set_serving::<TaskDefinitionsServer<TaskDefinitionsApi>>()
        .await;
    health.set_serving::<TasksServer<TasksApi>>().await;
    health.set_serving::<NodesServer<NodesApi>>().await;
    health.set_serving::<ServicesServer<ServicesApi>>().await;
    health.set_serving::<StacksServer<StacksApi>>().await;
    let sessions = Sessions::new();
    let proxies = Proxies::new();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(berth_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Client(format!("reflection: {e}")))?;

    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = &trust {
        builder = builder
            .tls_config(t.server_tls.clone())
            .map_err(|e| Error::Client(format!("TLS: {e}")))?;
    }
    let router = builder
        .layer(AuthLayer::new(auth.clone()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ClustersServer::new(ClustersApi {
            state: state.clone(),
        }))
        .add_service(TaskDefinitionsServer::new(TaskDefinitionsApi {
            state: state.clone(),
        }))
        .add_service(TasksServer::new(TasksApi {
            state: state.clone(),
            sessions: sessions.clone(),
        }))
        .add_service(NodesServer::new(NodesApi {
            state: state.clone(),
            sessions: sessions.clone(),
        }))
        .add_service(ServicesServer::new(ServicesApi {
            state: state.clone(),
        }))
        .add_service(EndpointsServer::new(EndpointsApi {
            state: state.clone(),
            proxies: proxies.clone(),
            stop: stopped.clone(),
        }))
        .add_service(NodeAdminServer::new(NodeAdminApi {
            state: state.clone(),
            sessions: sessions.clone(),
        }))
        .add_service(StacksServer::new(StacksApi {
            state: state.clone(),
        }))
        .add_service(berth_proto::v1::servers_server::ServersServer::new(
            crate::api::ServersApi {
                state: state.clone(),
                store: store_kind,
            },
        ))
        .add_service(AgentSessionsServer::new(AgentSessionsApi {
            state: state.clone(),
            sessions: sessions.clone(),
            timings: config.sessions,
            stop: stopped.clone(),
        }))
        .add_service(TokensServer::new(TokensApi { auth: auth.clone() }))
        .add_optional_service(trust.as_ref().map(|t| {
            CertificatesServer::new(CertificatesApi {
                ca: t.ca.clone(),
                auth: auth.clone(),
                lifetime: t.cert_lifetime,
            })
        }));
    let mut grpc_stop = stopped.clone();
    let grpc_max_connections = config.grpc_max_connections;
    let grpc_task = tokio::spawn(async move {
        let incoming = http::capped::incoming(grpc, grpc_max_connections);
        let shutdown = async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    });
    let extra_metrics = http::ExtraMetrics::default();
    crate::metrics::register(&extra_metrics, &state, &sessions);
    let http_task = tokio::spawn(http::serve(
        http_listener,
        state.clone(),
        extra_metrics.clone(),
        crate::http_api::router_with(state.clone(), sessions.clone(), http_check(auth.clone()))
            .merge(crate::ecs_api::router(
                state.clone(),
                sessions.clone(),
                auth.clone(),
            )),
        config.http.clone(),
        trust
            .as_ref()
            .filter(|_| !config.http.plaintext)
            .map(|t| t.http_tls.clone()),
        stopped.clone(),
    ));
    let gc_task = tokio::spawn(forget_stopped_tasks(
        state.clone(),
        config.task_retention,
        stopped.clone(),
    ));
    let me = crate::leader::me(&config, grpc_addr, http_addr, trust.is_some(), &state).await?;
    let (role_tx, role) = watch::channel(crate::leader::Role::default());
    crate::leader::register_metrics(&extra_metrics, role.clone(), me.id.clone());
    let mut more = Vec::new();
    if config.etcd.is_some() {
        more.push(tokio::spawn(crate::replicas::run(
            state.clone(),
            sessions.clone(),
            proxies.clone(),
            me.id.clone(),
            stopped.clone(),
        )));
    }
    let election_task = tokio::spawn(crate::leader::run(election, me, role_tx, stopped.clone()));
    let controller_task = tokio::spawn(controller::run_while_leading(
        state.clone(),
        sessions.clone(),
        proxies.clone(),
        config.controller,
        role,
        stopped,
    ));
    tracing::info!(grpc = %grpc_addr, http = %http_addr, data = %config.data_dir.display(), "control plane serving");
    Ok(ControlPlane {
        grpc_addr,
        http_addr,
        state,
        sessions,
        proxies,
        extra_metrics,
        auth,
        trust,
        stop,
        tasks: [
            grpc_task,
            http_task,
            gc_task,
            controller_task,
            election_task,
        ]
        .into_iter()
        .chain(more)
        .collect(),
    })
}

/// Stopped tasks stay visible for the retention, then their records go.
async fn forget_stopped_tasks(
    state: State,
    retention: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let s = state.clone();
        let retention_ms = retention.as_millis() as i64;
        let res = tokio::task::spawn_blocking(move || {
            // Deleted task definitions go once nothing uses them any more.
            let _ = crate::taskdef::sweep_deleted(&s);
            crate::tasks::forget_stopped(&s, crate::time::now_millis(), retention_ms)
        })
        .await;
        if let Ok(Ok(n)) = res {
            if n > 0 {
                tracing::info!(tasks = n, "forgot stopped tasks past their retention");
            }
        }
    }
}

impl ControlPlane {
    /// The URL a client on this host uses: `https://` with TLS, 127.0.0.1 for an unspecified
    /// listen address.
    pub fn local_url(&self) -> String {
        let mut addr = self.grpc_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.trust.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    }

    /// Stops accepting, ends the agents' and proxies' streams, lets in-flight calls finish for
    /// at most `DRAIN`, then drops whatever is left: a stuck client must not keep the process
    /// past its supervisor's stop timeout. Tasks keep running; the next start adopts them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + DRAIN;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                tracing::warn!(drain = ?DRAIN, "calls still open after the drain; dropping them");
                t.abort();
                let _ = t.await;
            }
        }
    }
}

/// The JSON HTTP API's check: the same bearer-token rules as gRPC for the method each request
/// stands for; the caller's `Access` goes on to the handler as it does over gRPC.
fn http_check(auth: Arc<Authorizer>) -> crate::http_api::Check {
    Arc::new(move |mut req: tonic::Request<()>| {
        let method = req
            .extensions()
            .get::<crate::http_api::GrpcMethod>()
            .map(|m| m.0.clone())
            .unwrap_or_default();
        let access = auth.authorize(req.metadata(), &method)?;
        req.extensions_mut().insert(access);
        Ok(req)
    })
}
