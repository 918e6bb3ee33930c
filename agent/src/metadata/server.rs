//! The HTTP side of the metadata endpoint: `/v4/TOKEN` (and `/v3/TOKEN`) answer the container,
//! `/task` its task, `/stats` and `/task/stats` Docker's stats of the container or of each of
//! the task's containers by Docker id; `/api/TOKEN/task-protection/v1/state` is ECS's agent API
//! (`protection`). An unknown token is a 404 that says nothing more.

use super::{shapes, Registry};
use crate::runtime::ContainerRuntime;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};
use std::sync::Arc;

struct Shared<R> {
    registry: Arc<Registry>,
    rt: Arc<R>,
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve<R: ContainerRuntime>(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    rt: Arc<R>,
) {
    let shared = Arc::new(Shared { registry, rt });
    let app = axum::Router::new().fallback(answer::<R>).with_state(shared);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "task metadata endpoint stopped");
    }
}

async fn answer<R: ContainerRuntime>(State(s): State<Arc<Shared<R>>>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    if let Some(rest) = path.strip_prefix("/api/") {
        return match rest.split_once('/') {
            Some((token, "task-protection/v1/state")) => {
                let method = req.method().clone();
                let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
                    return (StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB\n").into_response();
                };
                super::protection::answer(&s.registry, token, &method, &body).await
            }
            _ => not_found(),
        };
    }
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (Some("v4" | "v3"), Some(token)) = (parts.next(), parts.next()) else {
        return not_found();
    };
    let rest = parts.next().unwrap_or("");
    let Some((meta, name)) = s.registry.resolve(token) else {
        return not_found();
    };
    let names: Vec<String> = meta
        .definition
        .container_definitions
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let id_of = |n: &str| meta.docker_ids.get(n).cloned().unwrap_or_default();
    match rest {
        "" => {
            let i = s.rt.inspect_json(&id_of(&name)).await;
            Json(shapes::container(&meta, &name, i.as_ref())).into_response()
        }
        "task" => {
            let mut containers = Vec::new();
            for n in &names {
                let i = s.rt.inspect_json(&id_of(n)).await;
                containers.push(shapes::container(&meta, n, i.as_ref()));
            }
            // Containers that joined the task's network namespace show the task's networks.
            let shared = containers.iter().find_map(|c| c.get("Networks").cloned());
            if let Some(nets) = shared {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    c.entry("Networks").or_insert(nets.clone());
                }
            }
            Json(shapes::task(&meta, containers)).into_response()
        }
        "stats" => {
            Json(s.rt.stats_json(&id_of(&name)).await.unwrap_or(Value::Null)).into_response()
        }
        "task/stats" => {
            let mut out = Map::new();
            for n in &names {
                let id = id_of(n);
                if id.is_empty() {
                    continue;
                }
                let stats = s.rt.stats_json(&id).await.unwrap_or(Value::Null);
                out.insert(id, stats);
            }
            Json(Value::Object(out)).into_response()
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
