//! The HTTP port: `/metrics` (Prometheus text), and the routes given to `serve` (`/healthz`, the
//! JSON API and the console), within the connection bounds of `listener` and the request
//! rules of `guard`.

pub mod capped;
mod guard;
pub mod listener;

pub use guard::is_loopback_host;
pub use listener::{ConnLimits, Serving};

use crate::state::metrics::SharedRegistry;
use axum::extract::State as Ax;
use axum::routing::get;
use axum::Router;
use guard::Guard;
use std::sync::Arc;
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
    registry: SharedRegistry,
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
        .route("/metrics", get(metrics))
        .with_state(registry)
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

/// `/healthz`: 200 `ok`, or 503 naming why the store's writes fail (a full disk): reads still
/// answer, so a balancer sends writes elsewhere and a person sees the reason at once.
pub fn healthz(store: Arc<dyn crate::store::Store>) -> Router {
    Router::new()
        .route("/healthz", get(store_health))
        .with_state(store)
}

async fn store_health(
    Ax(store): Ax<Arc<dyn crate::store::Store>>,
) -> (axum::http::StatusCode, String) {
    match store.health().degraded {
        None => (axum::http::StatusCode::OK, "ok\n".into()),
        Some(why) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: {why}\n"),
        ),
    }
}

async fn metrics(Ax(registry): Ax<SharedRegistry>) -> impl axum::response::IntoResponse {
    // Collectors read the store: off the async workers.
    let text = tokio::task::spawn_blocking(move || crate::state::metrics::encode_shared(&registry))
        .await
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::state::metrics::CONTENT_TYPE,
        )],
        text,
    )
}
