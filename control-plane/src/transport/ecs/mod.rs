//! The Amazon ECS wire API on `POST /` of the HTTP port, so the aws CLI, boto3 and other ECS
//! tools work against Berth: AWS JSON 1.1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.Op`,
//! SigV4 checked by the same `Authorizer` as gRPC and the JSON API. A transport only: each
//! operation decodes its input, calls the model (`model::clusters`, `taskdef`, `tasks`,
//! `services`, `nodes`, `ecs_extras`, `capacity`) and shapes the reply the way ECS does.

mod account;
pub mod acm;
mod capacity;
mod clusters;
mod error;
pub mod events;
mod hooks;
mod input;
mod instances;
mod paging;
mod protection;
mod revisions;
pub mod schedule_target;
pub mod scheduler;
pub mod secrets;
mod service_connect;
mod services;
mod shapes;
mod tags;
mod taskdefs;
mod tasks;
mod tasksets;

pub use error::{EcsError, CONTENT_TYPE};

use crate::live::proxies::Proxies;
use crate::live::sessions::Sessions;
use crate::model::auth::Authorizer;
use crate::state::State;
use crate::transport::sigv4;
use axum::body::Bytes;
use axum::extract::State as Ax;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use error::EcsResult;
use input::Input;
use serde_json::Value;
use std::sync::Arc;

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";

/// What the handlers of one request share.
pub(crate) struct Ctx<'a> {
    pub state: &'a State,
    pub sessions: &'a Sessions,
}

type Handler = fn(&Ctx<'_>, &Input) -> EcsResult<Value>;

/// Every operation Berth answers, with its handler.
const OPERATIONS: &[(&str, Handler)] = &[
    ("CreateCluster", clusters::create),
    ("DescribeClusters", clusters::describe),
    ("ListClusters", clusters::list),
    ("UpdateCluster", clusters::update),
    ("UpdateClusterSettings", clusters::update),
    ("DeleteCluster", clusters::delete),
    ("RegisterTaskDefinition", taskdefs::register),
    ("DescribeTaskDefinition", taskdefs::describe),
    ("ListTaskDefinitions", taskdefs::list),
    ("ListTaskDefinitionFamilies", taskdefs::families),
    ("DeregisterTaskDefinition", taskdefs::deregister),
    ("DeleteTaskDefinitions", taskdefs::delete),
    ("RunTask", tasks::run),
    ("StartTask", tasks::start),
    ("StopTask", tasks::stop),
    ("DescribeTasks", tasks::describe),
    ("ListTasks", tasks::list),
    ("CreateService", services::create),
    ("UpdateService", services::update),
    ("DescribeServices", services::describe),
    ("ListServices", services::list),
    ("ListServicesByNamespace", services::list_by_namespace),
    ("DeleteService", services::delete),
    ("ListServiceDeployments", services::list_deployments),
    ("DescribeServiceDeployments", services::describe_deployments),
    ("StopServiceDeployment", services::stop_deployment),
    ("ListContainerInstances", instances::list),
    ("DescribeContainerInstances", instances::describe),
    ("UpdateContainerInstancesState", instances::update_state),
    ("DeregisterContainerInstance", instances::deregister),
    ("PutAttributes", instances::put_attributes),
    ("DeleteAttributes", instances::delete_attributes),
    ("ListAttributes", instances::list_attributes),
    ("ListTagsForResource", tags::list),
    ("TagResource", tags::tag),
    ("UntagResource", tags::untag),
    // Issue 35c: account settings, service revisions, PAUSE hooks.
    ("PutAccountSetting", account::put),
    ("PutAccountSettingDefault", account::put_default),
    ("DeleteAccountSetting", account::delete),
    ("ListAccountSettings", account::list),
    ("DescribeServiceRevisions", revisions::describe),
    ("ContinueServiceDeployment", hooks::continue_deployment),
    // Issue 35b: capacity providers as node pools, task scale-in protection, task sets.
    ("CreateCapacityProvider", capacity::create),
    ("DescribeCapacityProviders", capacity::describe),
    ("UpdateCapacityProvider", capacity::update),
    ("DeleteCapacityProvider", capacity::delete),
    ("PutClusterCapacityProviders", capacity::put_cluster),
    ("GetTaskProtection", protection::get),
    ("UpdateTaskProtection", protection::update),
    ("CreateTaskSet", tasksets::create),
    ("DescribeTaskSets", tasksets::describe),
    ("UpdateTaskSet", tasksets::update),
    ("DeleteTaskSet", tasksets::delete),
    ("UpdateServicePrimaryTaskSet", tasksets::primary),
];

/// ECS operations Berth does not have: told apart from names ECS does not know at all.
const NOT_IN_BERTH: &[&str] = &[
    "AssociateGatewayWithCluster",
    "CreateDaemon",
    "CreateExpressGatewayService",
    "CreateGateway",
    "DeleteDaemon",
    "DeleteDaemonTaskDefinition",
    "DeleteExpressGatewayService",
    "DeleteGateway",
    "DescribeDaemon",
    "DescribeDaemonDeployments",
    "DescribeDaemonRevisions",
    "DescribeDaemonTaskDefinition",
    "DescribeExpressGatewayService",
    "DescribeGateway",
    "DescribeGatewayResources",
    "DescribeGatewayRoute",
    "DisassociateGatewayFromCluster",
    "DiscoverPollEndpoint",
    "ExecuteCommand",
    "ListDaemonDeployments",
    "ListDaemonTaskDefinitions",
    "ListDaemons",
    "ListGatewayClusterAssociations",
    "ListGatewayRoutes",
    "ListGateways",
    "RegisterContainerInstance",
    "RegisterDaemonTaskDefinition",
    "SubmitAttachmentStateChanges",
    "SubmitContainerStateChange",
    "SubmitTaskStateChange",
    "UpdateContainerAgent",
    "UpdateDaemon",
    "UpdateExpressGatewayService",
    "UpdateGateway",
];

struct Ecs {
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    auth: Arc<Authorizer>,
}

/// `POST /`, ready to merge into the HTTP port's router: the ECS API, and the ELBv2 API for
/// Query-protocol requests (`crate::transport::elbv2`).
pub fn router(
    state: State,
    sessions: Arc<Sessions>,
    proxies: Arc<Proxies>,
    auth: Arc<Authorizer>,
) -> Router {
    let scheduler = scheduler::router(state.clone(), auth.clone());
    Router::new()
        .route("/", post(handle))
        .route("/service/{service}/operation/{op}", post(handle_rpc_v2))
        .with_state(Arc::new(Ecs {
            state,
            sessions,
            proxies,
            auth,
        }))
        .merge(scheduler)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The operation an `X-Amz-Target` names, or the error that says why it is not one of ours.
fn operation(target: &str) -> EcsResult<Handler> {
    let Some((prefix, op)) = target.split_once('.') else {
        return Err(EcsError::new(
            "UnknownOperationException",
            format!("X-Amz-Target: {target:?} must be {TARGET_PREFIX}.OPERATION"),
        ));
    };
    if prefix != TARGET_PREFIX {
        return Err(EcsError::new(
            "UnknownOperationException",
            format!("X-Amz-Target: {prefix}.{op} is for another AWS service; this endpoint serves only Amazon ECS ({TARGET_PREFIX}.*)"),
        ));
    }
    if let Some((_, h)) = OPERATIONS.iter().find(|(name, _)| *name == op) {
        return Ok(*h);
    }
    if NOT_IN_BERTH.contains(&op) {
        return Err(EcsError::new(
            "UnsupportedFeatureException",
            format!("{op} is an ECS operation Berth does not implement"),
        ));
    }
    Err(EcsError::new(
        "UnknownOperationException",
        format!(
            "X-Amz-Target: ECS has no operation {op:?}; Berth answers {}",
            OPERATIONS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// The SigV4 check every JSON 1.1 API on this port shares: a bad signature is refused when keys
/// are enforced, and the key (or its absence) is authorized for `path`
/// (`/{service}.{prefix}/{Operation}`), the name the token check reads.
pub(crate) fn authorize_signed(
    auth: &Authorizer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    path: &str,
) -> Result<(), EcsError> {
    let req = sigv4::SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    sigv4::authorize(auth, &req, None, path)
        .map(|_| ())
        .map_err(EcsError::from)
}

impl From<sigv4::Refusal> for EcsError {
    fn from(r: sigv4::Refusal) -> Self {
        match r {
            sigv4::Refusal::OtherService(wanted) => EcsError::new(
                "InvalidSignatureException",
                sigv4::Refusal::other_service_message(wanted),
            ),
            sigv4::Refusal::Denied(d) => d.into(),
        }
    }
}

/// The region and account the client addressed: the SigV4 scope's region (else the server's),
/// and a 12-digit access key id as the account (else the server's), as LocalStack does.
fn addressed_prefix(signed: Option<&sigv4::Signed>) -> String {
    let server = berth_core::arn::prefix();
    let Some(s) = signed else {
        return server;
    };
    let mut parts: Vec<&str> = server.split(':').collect();
    if parts.len() == 5 {
        if berth_core::arn::is_region(&s.region) {
            parts[3] = &s.region;
        }
        if berth_core::arn::is_account_id(&s.access_key_id) {
            parts[4] = &s.access_key_id;
        }
    }
    parts.join(":")
}

/// Every ARN in the reply under the prefix the client addressed.
fn readdress(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.starts_with(from) => *s = format!("{to}{}", &s[from.len()..]),
        Value::Array(a) => a.iter_mut().for_each(|x| readdress(x, from, to)),
        Value::Object(m) => m.values_mut().for_each(|x| readdress(x, from, to)),
        _ => {}
    }
}

fn is_json_1x(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    ct.eq_ignore_ascii_case("application/x-amz-json-1.1")
        || ct.eq_ignore_ascii_case("application/x-amz-json-1.0")
        || ct.eq_ignore_ascii_case("application/json")
}

async fn handle(
    Ax(ecs): Ax<Arc<Ecs>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        // Too large (over 2 MiB) or cut short: still an answer in ECS's shape.
        Err(e) => {
            return EcsError::new("InvalidParameterException", format!("request body: {e}"))
                .into_response()
        }
    };
    let target = header_text(&headers, "x-amz-target").to_string();
    if target.is_empty() {
        let ct = header_text(&headers, "content-type");
        if crate::transport::elbv2::is_query(ct, &body) {
            let (state, proxies) = (ecs.state.clone(), ecs.proxies.clone());
            return crate::transport::elbv2::serve(
                state, proxies, &ecs.auth, &method, &uri, &headers, &body,
            )
            .await;
        }
        return EcsError::new(
            "UnknownOperationException",
            format!("X-Amz-Target is required: POST / is the Amazon ECS API ({TARGET_PREFIX}.OPERATION with Content-Type: {CONTENT_TYPE})"),
        )
        .into_response();
    }
    if crate::transport::servicediscovery::serves(&target) {
        use crate::transport::servicediscovery as cm;
        let op = target.split_once('.').map_or("", |(_, op)| op);
        let state = ecs.state.clone();
        return cm::serve(
            state,
            &ecs.auth,
            cm::Wire::Json,
            op,
            &method,
            &uri,
            &headers,
            &body,
        )
        .await;
    }
    if events::serves(&target) {
        let state = ecs.state.clone();
        return events::serve(state, &ecs.auth, &method, &uri, &headers, &body, &target).await;
    }
    if acm::serves(&target) {
        let state = ecs.state.clone();
        return acm::serve(state, &ecs.auth, &method, &uri, &headers, &body, &target).await;
    }
    if secrets::serves(&target) {
        let state = ecs.state.clone();
        return secrets::serve(state, &ecs.auth, &method, &uri, &headers, &body, &target).await;
    }
    match serve(&ecs, &method, &uri, &headers, body, &target).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(target = %target, error = %e.message, "ECS API fault");
            }
            e.into_response()
        }
    }
}

/// Smithy RPC v2 CBOR requests (`/service/SERVICE/operation/OP`): Cloud Map's.
async fn handle_rpc_v2(
    Ax(ecs): Ax<Arc<Ecs>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    use crate::transport::servicediscovery as cm;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return cm::error(
                cm::Wire::Cbor,
                "InvalidInput",
                &format!("request body: {e}"),
                400,
            )
        }
    };
    let op = match cm::cbor_operation(uri.path()) {
        Ok(op) => op,
        Err(why) => return cm::error(cm::Wire::Cbor, "UnknownOperationException", &why, 400),
    };
    let state = ecs.state.clone();
    cm::serve(
        state,
        &ecs.auth,
        cm::Wire::Cbor,
        &op,
        &method,
        &uri,
        &headers,
        &body,
    )
    .await
}

async fn serve(
    ecs: &Arc<Ecs>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    target: &str,
) -> EcsResult<Response> {
    let handler = operation(target)?;
    if !is_json_1x(header_text(headers, "content-type")) {
        return Err(EcsError::new(
            "InvalidParameterException",
            format!("Content-Type: must be {CONTENT_TYPE} (AWS JSON 1.1)"),
        ));
    }
    let op = target.rsplit('.').next().unwrap_or("");
    let req = sigv4::SignedRequest {
        method,
        uri,
        headers,
        body: &body,
    };
    let signed = sigv4::authorize(
        &ecs.auth,
        &req,
        Some("ecs"),
        &format!("/ecs.{TARGET_PREFIX}/{op}"),
    )?;
    let input = Input::parse(&body)?;
    let to = addressed_prefix(signed.as_ref());
    let (state, sessions) = (ecs.state.clone(), ecs.sessions.clone());
    let mut reply = crate::foreground::blocking(move || {
        handler(
            &Ctx {
                state: &state,
                sessions: &sessions,
            },
            &input,
        )
    })
    .await
    .map_err(|e| EcsError::server(format!("the {op} handler failed: {e}")))??;
    let from = berth_core::arn::prefix();
    if from != to {
        readdress(&mut reply, &format!("{from}:"), &format!("{to}:"));
    }
    let mut r = (StatusCode::OK, reply.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(r)
}

/// Runs `f` for each name, collecting what it found and ECS's `failures` for the rest.
pub(crate) fn each<T>(
    names: &[String],
    mut f: impl FnMut(&str) -> crate::state::error::Result<T>,
    mut missing_arn: impl FnMut(&str) -> String,
) -> EcsResult<(Vec<T>, Vec<Value>)> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for n in names {
        match f(n) {
            Ok(v) => found.push(v),
            Err(crate::state::error::Error::NotFound { .. }) => {
                failures.push(shapes::failure(&missing_arn(n), "MISSING", ""))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((found, failures))
}

#[cfg(test)]
mod tests;
