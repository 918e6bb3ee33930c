//! The HTTP port: `/healthz`, `/metrics` (Prometheus text), and the routes given to `serve`
//! (the JSON API and the console), within the connection bounds of `listener` and the request
//! rules of `guard`.

pub mod api;
pub mod capped;
mod guard;
pub mod listener;

pub use guard::is_loopback_host;
pub use listener::{ConnLimits, Serving};

use crate::state::{keys, State};
use guard::Guard;
use std::sync::{Arc, Mutex};

/// More Prometheus text for `/metrics`, from components running in the same process (the proxy).
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The extra sources, shared with whoever starts those components.
pub type ExtraMetrics = Arc<Mutex<Vec<MetricsSource>>>;
use axum::extract::State as Ax;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the HTTP port serves: its connection bounds, which `Host`s it answers, and whether it
/// stays plaintext when the control plane has TLS.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    pub limits: ConnLimits,
    /// `Some`: loopback names and these only (`berth dev`, against DNS rebinding).
    pub allowed_hosts: Option<Vec<String>>,
    /// Plaintext even with TLS on the gRPC port (`--http-insecure`).
    pub plaintext: bool,
}

/// The routes as one hyper service for the listener.
#[derive(Clone)]
struct App(Router);

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for App {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        // A Router is always ready.
        tower_service::Service::call(&mut self.0.clone(), req)
    }
}

/// Serves `/healthz`, `/metrics` and `routes` until `stopped`, every connection within
/// `config`'s bounds and every request past its guard.
pub async fn serve(
    listener: TcpListener,
    state: State,
    extra: ExtraMetrics,
    routes: Router,
    config: HttpConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    stopped: watch::Receiver<bool>,
) {
    let guard = Arc::new(Guard {
        allowed_hosts: config.allowed_hosts.clone(),
        max_body: config.limits.max_body,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state((state, extra))
        .merge(routes)
        .layer(axum::extract::DefaultBodyLimit::max(config.limits.max_body))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check));
    let app = App(app);
    let serving = Serving {
        limits: config.limits,
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        service: Arc::new(move |_| app.clone()),
        name: "HTTP",
    };
    listener::serve(listener, serving, stopped).await;
}

async fn metrics(Ax((state, extra)): Ax<(State, ExtraMetrics)>) -> String {
    // Sources may read the store: off the async workers, like the counts.
    let (counts, more) = tokio::task::spawn_blocking(move || {
        let store = state.store();
        let n = |p: &str| store.scan(p).map(|v| v.len()).unwrap_or(0);
        let sources: Vec<MetricsSource> = extra.lock().map(|v| v.clone()).unwrap_or_default();
        let more: String = sources.iter().map(|f| f()).collect();
        ((n(keys::CLUSTERS), n(keys::TASK_DEFINITIONS)), more)
    })
    .await
    .unwrap_or_default();
    format!(
        "{more}# HELP berth_clusters Clusters stored (any status).\n# TYPE berth_clusters gauge\nberth_clusters {}\n\
         # HELP berth_task_definitions Task definition revisions stored.\n# TYPE berth_task_definitions gauge\nberth_task_definitions {}\n",
        counts.0, counts.1
    )
}
