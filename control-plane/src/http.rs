//! The HTTP port: `/healthz`, `/metrics` (Prometheus text), and the routes given to `serve`
//! (the JSON API and the console).

use crate::state::{keys, State};
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

pub async fn serve(
    listener: TcpListener,
    state: State,
    extra: ExtraMetrics,
    routes: Router,
    mut stopped: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state((state, extra))
        .merge(routes);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP server stopped");
    }
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
