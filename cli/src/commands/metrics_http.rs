//! A small HTTP port serving `/metrics` (Prometheus text) and `/healthz`, for components that
//! have no HTTP port of their own (`berth agent --metrics-addr`, `berth proxy --http`), with the
//! same connection bounds as the control plane's HTTP port.

use berth_control_plane::state::metrics::{self, SharedRegistry};
use berth_control_plane::transport::http::{listener, ConnLimits, Serving};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Answers one request: (status, content type, body).
pub type Respond =
    Arc<dyn Fn(&Request<Incoming>) -> (StatusCode, &'static str, String) + Send + Sync>;

/// `/metrics`: the registry as Prometheus text.
pub fn metrics(registry: &SharedRegistry) -> (StatusCode, &'static str, String) {
    (
        StatusCode::OK,
        metrics::CONTENT_TYPE,
        metrics::encode_shared(registry),
    )
}

/// `/metrics` from `registry`, `/healthz` always ok.
pub fn metrics_only(registry: SharedRegistry) -> Respond {
    Arc::new(move |req| match req.uri().path() {
        "/metrics" => metrics(&registry),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    })
}

/// Serves until `stopped` turns true.
pub async fn serve(
    listener: TcpListener,
    limits: ConnLimits,
    respond: Respond,
    stopped: watch::Receiver<bool>,
) {
    let serving = Serving {
        limits,
        tls: None,
        service: Arc::new(move |_| {
            let respond = respond.clone();
            service_fn(move |req: Request<Incoming>| {
                let (status, content_type, body) = respond(&req);
                let mut res = Response::new(Full::new(Bytes::from(body)));
                *res.status_mut() = status;
                res.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(content_type),
                );
                async move { Ok::<_, Infallible>(res) }
            })
        }),
        name: "metrics",
    };
    listener::serve(listener, serving, stopped).await;
}
