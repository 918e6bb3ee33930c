//! `spawn`: the control plane as one running thing (gRPC + HTTP), started in-process by tests
//! and by the `berth` binary alike.

mod config;

pub use config::Config;

use crate::control::controller;
use crate::live::proxies::Proxies;
use crate::live::sessions::Sessions;
use crate::model::auth::trust::Trust;
use crate::model::auth::Authorizer;
use crate::state::error::Error;
use crate::state::State;
use crate::transport::grpc::auth_layer::AuthLayer;
use crate::transport::grpc::StacksApi;
use crate::transport::grpc::{
    AgentSessionsApi, CertificatesApi, ClustersApi, EndpointsApi, NodeAdminApi, NodesApi,
    ServicesApi, TaskDefinitionsApi, TasksApi, TokensApi,
};
use crate::{model::clusters, transport::http};
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

/// A running control plane. Dropping it starts the same shutdown without waiting for it; call
/// `shutdown` to wait.
pub struct ControlPlane {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub state: State,
    pub sessions: Arc<Sessions>,
    pub proxies: Arc<Proxies>,
    /// Components in the same process add their metrics to `/metrics` here.
    pub metrics: crate::state::metrics::SharedRegistry,
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
const OWNED: &[&str] = &[
    "log",
    "store",
    "ca.crt",
    "ca.key",
    "admin.token",
    "join.token",
];

/// Opens the store, then serves gRPC and HTTP until `shutdown`.
pub async fn spawn(mut config: Config) -> Result<ControlPlane, SpawnError> {
    owner_only(&config)?;
    let grpc = bind(config.grpc_listen).await?;
    let http_listener = bind(config.http_listen).await?;
    let grpc_addr = local_addr(&grpc, config.grpc_listen)?;
    let http_addr = local_addr(&http_listener, config.http_listen)?;
    // No load balancer listener may take these (it could never listen there).
    let own = &mut config.limits.own_ports;
    own.add(grpc_addr.port(), "this server's gRPC port (--listen)");
    own.add(
        http_addr.port(),
        "this server's HTTP port (--http: API, console, metrics)",
    );
    berth_core::arn::configure(&config.region, &config.account_id);
    let (state, election) = open_state(&config).await?;
    let trust = open_trust(&config, &state).await?;
    // The store's files (and the CA's) exist now: owner-only too, also when an older version
    // made them readable.
    owner_only(&config)?;
    let auth = trust
        .as_ref()
        .map_or_else(|| Arc::new(Authorizer::off()), |t| t.auth.clone());
    let (stop, stopped) = watch::channel(false);
    let parts = Parts {
        state: state.clone(),
        sessions: Sessions::new(),
        proxies: Proxies::new(),
        auth: auth.clone(),
        trust: trust.clone(),
        stopped,
    };
    let metrics = crate::state::metrics::SharedRegistry::default();
    crate::live::metrics::register(&metrics, &state, &parts.sessions);
    crate::state::metrics::register_with(&metrics, |r| {
        crate::store::register_metrics(r, state.store().clone())
    });
    let mut tasks = vec![
        serve_grpc(&parts, &config, grpc).await?,
        serve_http(&parts, &config, http_listener, &metrics),
        tokio::spawn(forget_stopped_tasks(
            state.clone(),
            config.task_retention,
            parts.stopped.clone(),
        )),
    ];
    if trust.is_some() {
        tasks.push(tokio::spawn(crate::live::revocations::follow(
            state.clone(),
            parts.sessions.clone(),
            parts.stopped.clone(),
        )));
    }
    let me = crate::control::leader::me(
        &config.leader(),
        grpc_addr,
        http_addr,
        trust.is_some(),
        &state,
    )
    .await?;
    tasks.extend(lead_when_elected(&parts, &config, election, me, &metrics));
    tracing::info!(grpc = %grpc_addr, http = %http_addr, data = %config.data_dir.display(), "control plane serving");
    Ok(ControlPlane {
        grpc_addr,
        http_addr,
        state,
        sessions: parts.sessions,
        proxies: parts.proxies,
        metrics,
        auth,
        trust,
        stop,
        tasks,
    })
}

/// The handles every part of a running control plane shares.
struct Parts {
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    auth: Arc<Authorizer>,
    trust: Option<Arc<Trust>>,
    stopped: watch::Receiver<bool>,
}

/// Owner-only: the store holds environment values, secrets among them.
fn owner_only(config: &Config) -> Result<(), SpawnError> {
    berth_trust::files::owner_only(&config.data_dir, OWNED).map_err(|source| SpawnError::DataDir {
        dir: config.data_dir.clone(),
        source,
    })
}

fn local_addr(l: &TcpListener, asked: SocketAddr) -> Result<SocketAddr, SpawnError> {
    l.local_addr().map_err(|source| SpawnError::Listen {
        addr: asked,
        source,
    })
}

/// Opens the store and brings what an older version stored up to date.
async fn open_state(
    config: &Config,
) -> Result<(State, crate::control::leader::Election), SpawnError> {
    let (store, election) = crate::control::leader::open_store(&config.leader()).await?;
    let state = State::new(store).with_limits(config.limits);
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let n = crate::model::arn_upgrade::upgrade(&s)?;
        if n > 0 {
            tracing::info!(
                records = n,
                "stored ARNs rewritten to this server's region and account"
            );
        }
        clusters::ensure_default(&s)?;
        let indexed = crate::model::tasks::index_existing(&s)?;
        if indexed > 0 {
            tracing::info!(tasks = indexed, "indexed tasks stored by an older version");
        }
        // What an older version stored out of today's bounds is named, then left alone.
        crate::model::services::report_invalid(&s)
    })
    .await
    .map_err(|e| Error::Client(format!("opening store: {e}")))??;
    Ok((state, election))
}

/// The CA and tokens, when the server runs with TLS (one CA for all servers on etcd).
async fn open_trust(config: &Config, state: &State) -> Result<Option<Arc<Trust>>, SpawnError> {
    let Some(t) = config.trust.clone() else {
        return Ok(None);
    };
    let (dir, s) = (config.data_dir.clone(), state.clone());
    let listen = config.grpc_listen;
    let shared = config.etcd.is_some();
    let opened = tokio::task::spawn_blocking(move || {
        if shared {
            crate::model::auth::trust::share_ca(&dir, &s)?;
        }
        Trust::open(&dir, &t, listen, s)
    })
    .await
    .map_err(|e| Error::Client(format!("opening trust: {e}")))??;
    Ok(Some(Arc::new(opened)))
}

/// Every gRPC service, behind the authorizer (and TLS), on the capped listener.
/// Marks the API's services as serving: only now, once the store is open.
async fn report_serving(health: &tonic_health::server::HealthReporter) {
    health.set_serving::<ClustersServer<ClustersApi>>().await;
    health
        .set_serving::<TaskDefinitionsServer<TaskDefinitionsApi>>()
        .await;
    health.set_serving::<TasksServer<TasksApi>>().await;
    health.set_serving::<NodesServer<NodesApi>>().await;
    health.set_serving::<ServicesServer<ServicesApi>>().await;
    health.set_serving::<StacksServer<StacksApi>>().await;
}

async fn serve_grpc(
    p: &Parts,
    config: &Config,
    grpc: TcpListener,
) -> Result<JoinHandle<()>, SpawnError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    report_serving(&health).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(berth_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Client(format!("reflection: {e}")))?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = &p.trust {
        builder = builder
            .tls_config(t.server_tls.clone())
            .map_err(|e| Error::Client(format!("TLS: {e}")))?;
    }
    let (state, sessions) = (&p.state, &p.sessions);
    let router = builder
        .layer(AuthLayer::new(p.auth.clone()))
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
            proxies: p.proxies.clone(),
        }))
        .add_service(EndpointsServer::new(EndpointsApi {
            state: state.clone(),
            proxies: p.proxies.clone(),
            stop: p.stopped.clone(),
        }))
        .add_service(NodeAdminServer::new(NodeAdminApi {
            state: state.clone(),
            sessions: sessions.clone(),
        }))
        .add_service(StacksServer::new(StacksApi {
            state: state.clone(),
        }))
        .add_service(berth_proto::v1::secrets_server::SecretsServer::new(
            crate::transport::grpc::secrets::SecretsApi {
                state: state.clone(),
            },
        ))
        .add_service(
            berth_proto::v1::load_balancers_server::LoadBalancersServer::new(
                crate::transport::grpc::LoadBalancersApi {
                    state: state.clone(),
                    proxies: p.proxies.clone(),
                },
            ),
        )
        .add_service(berth_proto::v1::servers_server::ServersServer::new(
            crate::transport::grpc::ServersApi {
                state: state.clone(),
                store: if config.etcd.is_some() {
                    "etcd"
                } else {
                    "embedded"
                },
            },
        ))
        .add_service(AgentSessionsServer::new(AgentSessionsApi {
            state: state.clone(),
            sessions: sessions.clone(),
            timings: config.sessions,
            stop: p.stopped.clone(),
        }))
        .add_service(TokensServer::new(TokensApi {
            auth: p.auth.clone(),
        }))
        .add_service(
            berth_proto::v1::operator_server::OperatorServer::new(
                crate::transport::grpc::OperatorApi {
                    state: state.clone(),
                },
            )
            .max_encoding_message_size(4 << 20),
        )
        .add_optional_service(p.trust.as_ref().map(|t| {
            CertificatesServer::new(CertificatesApi {
                ca: t.ca.clone(),
                auth: p.auth.clone(),
                lifetime: t.cert_lifetime,
            })
        }));
    let mut grpc_stop = p.stopped.clone();
    let max = config.grpc_max_connections;
    Ok(tokio::spawn(async move {
        let incoming = http::capped::incoming(grpc, max);
        let shutdown = async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    }))
}

/// The HTTP port: health, metrics, the console's JSON API and the ECS API.
fn serve_http(
    p: &Parts,
    config: &Config,
    listener: TcpListener,
    metrics: &crate::state::metrics::SharedRegistry,
) -> JoinHandle<()> {
    let routes = crate::transport::json::router_with(
        p.state.clone(),
        p.sessions.clone(),
        p.proxies.clone(),
        http_check(p.auth.clone()),
    )
    .merge(crate::transport::ecs::router(
        p.state.clone(),
        p.sessions.clone(),
        p.proxies.clone(),
        p.auth.clone(),
    ))
    .merge(http::healthz(p.state.store().clone()));
    let tls = p
        .trust
        .as_ref()
        .filter(|_| !config.http.plaintext)
        .map(|t| t.http_tls.clone());
    tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        routes,
        config.http.clone(),
        tls,
        p.stopped.clone(),
    ))
}

/// Election, the sharing of what only this replica hears (several servers), and the
/// controllers, which run only while this replica leads.
fn lead_when_elected(
    p: &Parts,
    config: &Config,
    election: crate::control::leader::Election,
    me: crate::control::leader::Replica,
    metrics: &crate::state::metrics::SharedRegistry,
) -> Vec<JoinHandle<()>> {
    let (role_tx, role) = watch::channel(crate::control::leader::Role::default());
    crate::control::leader::register_metrics(metrics, role.clone(), me.id.clone());
    let mut tasks = Vec::new();
    if config.etcd.is_some() {
        tasks.push(tokio::spawn(crate::live::replicas::run(
            p.state.clone(),
            p.sessions.clone(),
            p.proxies.clone(),
            me.id.clone(),
            p.stopped.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::control::leader::run(
        election,
        me,
        role_tx,
        p.stopped.clone(),
    )));
    tasks.push(tokio::spawn(controller::run_while_leading(
        p.state.clone(),
        p.sessions.clone(),
        p.proxies.clone(),
        config.controller,
        role,
        p.stopped.clone(),
    )));
    tasks
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
            let _ = crate::model::taskdef::sweep_deleted(&s);
            crate::model::tasks::forget_stopped(&s, crate::time::now_millis(), retention_ms)
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
fn http_check(auth: Arc<Authorizer>) -> crate::transport::json::Check {
    Arc::new(move |mut req: tonic::Request<()>| {
        let method = req
            .extensions()
            .get::<crate::transport::json::GrpcMethod>()
            .map(|m| m.0.clone())
            .unwrap_or_default();
        let access = auth.authorize(req.metadata(), &method)?;
        req.extensions_mut().insert(access);
        Ok(req)
    })
}
