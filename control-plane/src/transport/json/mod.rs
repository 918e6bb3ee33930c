//! The JSON HTTP API and the web console on the HTTP port: one service layer, two transports.
//!
//! `POST /api/v1/{Service}/{Method}` takes the camelCase JSON of the `berth.v1` request message
//! and answers with the reply message's, by calling the very tonic service implementations the
//! gRPC port serves, so validation and errors are the same. A `tonic::Status` becomes an HTTP
//! status and `{"code": "...", "message": "..."}`. `Authorization` is passed on as gRPC metadata,
//! and every request first goes through the same `Check` a gRPC interceptor would apply.

mod logs;
mod status;
mod unknown;

use crate::live::proxies::Proxies;
use crate::live::sessions::Sessions;
use crate::state::State;
use crate::transport::grpc::{
    ClustersApi, LoadBalancersApi, NodeAdminApi, NodesApi, ServicesApi, TaskDefinitionsApi,
    TasksApi,
};
use axum::body::Bytes;
use axum::extract::{Path, State as Ax};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_proto::v1::clusters_server::Clusters;
use berth_proto::v1::load_balancers_server::LoadBalancers;
use berth_proto::v1::node_admin_server::NodeAdmin;
use berth_proto::v1::nodes_server::Nodes;
use berth_proto::v1::services_server::Services;
use berth_proto::v1::task_definitions_server::TaskDefinitions;
use berth_proto::v1::tasks_server::Tasks;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use tonic::metadata::{MetadataMap, MetadataValue};

pub use status::{http_status, status_response};

/// What a tonic interceptor does, applied to each HTTP request's metadata before its handler
/// runs: give `router_with` the gRPC server's interceptor and both transports check alike.
pub type Check =
    Arc<dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;

/// The gRPC method an HTTP request stands for (`/berth.v1.Clusters/CreateCluster`), in the
/// extensions of the request `Check` sees, so the check can authorize it as gRPC would.
#[derive(Debug, Clone)]
pub struct GrpcMethod(pub String);

/// The gRPC service implementations the HTTP handlers call.
pub struct Api {
    check: Check,
    clusters: ClustersApi,
    taskdefs: TaskDefinitionsApi,
    tasks: TasksApi,
    nodes: NodesApi,
    node_admin: NodeAdminApi,
    services: ServicesApi,
    load_balancers: LoadBalancersApi,
}

impl Api {
    pub fn new(state: State, sessions: Arc<Sessions>, proxies: Arc<Proxies>, check: Check) -> Self {
        Self {
            check,
            clusters: ClustersApi {
                state: state.clone(),
            },
            taskdefs: TaskDefinitionsApi {
                state: state.clone(),
            },
            tasks: TasksApi {
                state: state.clone(),
                sessions: sessions.clone(),
            },
            nodes: NodesApi {
                state: state.clone(),
                sessions: sessions.clone(),
            },
            node_admin: NodeAdminApi {
                state: state.clone(),
                sessions,
            },
            load_balancers: LoadBalancersApi {
                state: state.clone(),
                proxies: proxies.clone(),
            },
            services: ServicesApi { state, proxies },
        }
    }
}

/// `/api/v1/...` and the console's pages, ready to merge into the HTTP port's router. Requests
/// reach the handlers with only their metadata passed on (the handlers decide).
pub fn router(state: State, sessions: Arc<Sessions>) -> Router {
    router_with(state, sessions, Proxies::new(), Arc::new(Ok))
}

/// As `router`, with the proxies' reports (target health) and each request first passed through
/// `check`.
pub fn router_with(
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    check: Check,
) -> Router {
    Router::new()
        .route("/api/v1/{service}/{method}", post(dispatch))
        .with_state(Arc::new(Api::new(state, sessions, proxies, check)))
        .merge(crate::transport::console::router())
        .route("/api/v1", get(methods))
}

/// Every method the API answers, for people finding their way.
const METHODS: &[&str] = &[
    "Clusters/CreateCluster",
    "Clusters/DescribeCluster",
    "Clusters/ListClusters",
    "Clusters/DeleteCluster",
    "TaskDefinitions/RegisterTaskDefinition",
    "TaskDefinitions/DescribeTaskDefinition",
    "TaskDefinitions/ListTaskDefinitions",
    "TaskDefinitions/DeregisterTaskDefinition",
    "Tasks/RunTask",
    "Tasks/StopTask",
    "Tasks/DescribeTask",
    "Tasks/ListTasks",
    "Tasks/ListSchedules",
    "Tasks/GetLogs",
    "Nodes/ListNodes",
    "Nodes/DescribeNode",
    "NodeAdmin/UpdateNodeStatus",
    "Services/CreateService",
    "Services/UpdateService",
    "Services/DescribeService",
    "Services/ListServices",
    "Services/DeleteService",
    "Services/StopServiceDeployment",
    "LoadBalancers/ListLoadBalancers",
    "LoadBalancers/ListTargetGroups",
    "LoadBalancers/DescribeTargetGroup",
];

async fn methods() -> Response {
    let paths: Vec<String> = METHODS.iter().map(|m| format!("/api/v1/{m}")).collect();
    axum::Json(serde_json::json!({ "post": paths })).into_response()
}

async fn dispatch(
    Ax(api): Ax<Arc<Api>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_json(&headers) {
        return unsupported_media_type();
    }
    let mut extensions = tonic::Extensions::default();
    extensions.insert(GrpcMethod(format!("/berth.v1.{service}/{method}")));
    let md = match (api.check)(tonic::Request::from_parts(
        metadata(&headers),
        extensions,
        (),
    )) {
        Ok(r) => r,
        Err(s) => return status_response(&s),
    };
    let a = &*api;
    match (service.as_str(), method.as_str()) {
        ("Clusters", "CreateCluster") => call(md, &body, |r| a.clusters.create_cluster(r)).await,
        ("Clusters", "DescribeCluster") => {
            call(md, &body, |r| a.clusters.describe_cluster(r)).await
        }
        ("Clusters", "ListClusters") => call(md, &body, |r| a.clusters.list_clusters(r)).await,
        ("Clusters", "DeleteCluster") => call(md, &body, |r| a.clusters.delete_cluster(r)).await,
        ("TaskDefinitions", "RegisterTaskDefinition") => {
            call(md, &body, |r| a.taskdefs.register_task_definition(r)).await
        }
        ("TaskDefinitions", "DescribeTaskDefinition") => {
            call(md, &body, |r| a.taskdefs.describe_task_definition(r)).await
        }
        ("TaskDefinitions", "ListTaskDefinitions") => {
            call(md, &body, |r| a.taskdefs.list_task_definitions(r)).await
        }
        ("TaskDefinitions", "DeregisterTaskDefinition") => {
            call(md, &body, |r| a.taskdefs.deregister_task_definition(r)).await
        }
        ("Tasks", "RunTask") => call(md, &body, |r| a.tasks.run_task(r)).await,
        ("Tasks", "StopTask") => call(md, &body, |r| a.tasks.stop_task(r)).await,
        ("Tasks", "DescribeTask") => call(md, &body, |r| a.tasks.describe_task(r)).await,
        ("Tasks", "ListTasks") => call(md, &body, |r| a.tasks.list_tasks(r)).await,
        ("Tasks", "ListSchedules") => call(md, &body, |r| a.tasks.list_schedules(r)).await,
        ("Tasks", "GetLogs") => match parse(md, &body) {
            Ok((req, _)) => logs::collect(&a.tasks, req).await,
            Err(s) => status_response(&s),
        },
        ("Nodes", "ListNodes") => call(md, &body, |r| a.nodes.list_nodes(r)).await,
        ("Nodes", "DescribeNode") => call(md, &body, |r| a.nodes.describe_node(r)).await,
        ("NodeAdmin", "UpdateNodeStatus") => {
            call(md, &body, |r| a.node_admin.update_node_status(r)).await
        }
        ("Services", "CreateService") => call(md, &body, |r| a.services.create_service(r)).await,
        ("Services", "UpdateService") => call(md, &body, |r| a.services.update_service(r)).await,
        ("Services", "DescribeService") => {
            call(md, &body, |r| a.services.describe_service(r)).await
        }
        ("Services", "ListServices") => call(md, &body, |r| a.services.list_services(r)).await,
        ("Services", "DeleteService") => call(md, &body, |r| a.services.delete_service(r)).await,
        ("Services", "StopServiceDeployment") => {
            call(md, &body, |r| a.services.stop_service_deployment(r)).await
        }
        ("LoadBalancers", "ListLoadBalancers") => {
            call(md, &body, |r| a.load_balancers.list_load_balancers(r)).await
        }
        ("LoadBalancers", "ListTargetGroups") => {
            call(md, &body, |r| a.load_balancers.list_target_groups(r)).await
        }
        ("LoadBalancers", "DescribeTargetGroup") => {
            call(md, &body, |r| a.load_balancers.describe_target_group(r)).await
        }
        _ => status_response(&tonic::Status::unimplemented(format!(
            "no method {service}/{method}; GET /api/v1 lists them"
        ))),
    }
}

/// Only JSON is taken: a browser cannot send it from another site without asking first (CORS,
/// which this API never allows), so a page elsewhere cannot forge calls through a user's browser.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn unsupported_media_type() -> Response {
    let body = serde_json::json!({
        "code": "InvalidArgument",
        "message": "send the request message as JSON with Content-Type: application/json",
    });
    (
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        axum::Json(body),
    )
        .into_response()
}

/// The caller's credentials, as a gRPC client would send them.
fn metadata(headers: &HeaderMap) -> MetadataMap {
    let mut md = MetadataMap::new();
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| MetadataValue::try_from(v.as_bytes()).ok())
    {
        md.insert("authorization", v);
    }
    md
}

/// The request message from the body's JSON (an empty body is the default message), and the
/// fields of the JSON that the message has not.
fn parse<T: DeserializeOwned + Default + Serialize>(
    checked: tonic::Request<()>,
    body: &[u8],
) -> Result<(tonic::Request<T>, Vec<String>), tonic::Status> {
    let bad = |e: serde_json::Error| {
        tonic::Status::invalid_argument(format!(
            "request body: {} (send the request message as camelCase JSON)",
            crate::state::error::cut(&e.to_string())
        ))
    };
    let (msg, unknown) = if body.iter().all(u8::is_ascii_whitespace) {
        (T::default(), Vec::new())
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                tonic::Status::invalid_argument(format!(
                    "request body: nested deeper than {} levels, the most a request may be ({e})",
                    berth_core::limits::JSON_DEPTH
                ))
            } else {
                bad(e)
            }
        })?;
        // The field path (`loadBalancers[0].containerPort`) as the ECS API's errors name it.
        let msg: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                bad(inner)
            } else {
                tonic::Status::invalid_argument(format!(
                    "{path}: {} (send the request message as camelCase JSON)",
                    crate::state::error::cut(&inner.to_string())
                ))
            }
        })?;
        let back = serde_json::to_value(&msg).unwrap_or_default();
        let unknown = unknown::unknown_fields(&value, &back);
        (msg, unknown)
    };
    let (md, extensions, ()) = checked.into_parts();
    Ok((tonic::Request::from_parts(md, extensions, msg), unknown))
}

/// The answer, naming the request's unknown fields (`"ignoredFields": ["clusterNme"]`) so a
/// misspelling is not silently a different call.
fn answer(
    status: axum::http::StatusCode,
    mut body: serde_json::Value,
    unknown: Vec<String>,
) -> Response {
    if !unknown.is_empty() {
        if let serde_json::Value::Object(m) = &mut body {
            m.insert("ignoredFields".into(), serde_json::json!(unknown));
        }
    }
    (status, axum::Json(body)).into_response()
}

/// Parses, calls one tonic method, and answers with its reply's JSON or its status.
async fn call<Req, Rep, F, Fut>(md: tonic::Request<()>, body: &[u8], f: F) -> Response
where
    Req: DeserializeOwned + Default + Serialize,
    Rep: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Rep>, tonic::Status>>,
{
    let (req, unknown) = match parse(md, body) {
        Ok(r) => r,
        Err(s) => return status_response(&s),
    };
    match f(req).await {
        Ok(reply) => {
            let mut body = serde_json::to_value(reply.into_inner()).unwrap_or_default();
            crate::model::taskdef::unmodeled::merge_into(&mut body);
            answer(axum::http::StatusCode::OK, body, unknown)
        }
        Err(s) => answer(http_status(s.code()), status::status_body(&s), unknown),
    }
}

#[cfg(test)]
mod tests;
