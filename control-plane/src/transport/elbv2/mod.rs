//! The ELBv2 wire API on `POST /` of the HTTP port, beside the ECS API: the AWS Query protocol
//! (`Content-Type: application/x-www-form-urlencoded`, `Action=…&Version=2015-12-01`), XML
//! replies and errors as botocore's elbv2 model defines them, SigV4 checked by the same
//! `Authorizer` as ECS. A transport only: `ops` decodes, calls `crate::model::elb`, shapes the reply.

mod certs;
mod ctx;
mod iac;
mod ops;
mod query;
mod shapes;
mod xml;

use crate::live::proxies::Proxies;
use crate::model::auth::{Authorizer, AwsDenied};
use crate::state::error::Error;
use crate::state::State;
use crate::transport::sigv4;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use query::Params;
use std::sync::Arc;

pub use query::VERSION;

/// Whether a `POST /` without `X-Amz-Target` is a Query-protocol call.
pub fn is_query(content_type: &str, body: &[u8]) -> bool {
    content_type.starts_with("application/x-www-form-urlencoded") || body.starts_with(b"Action=")
}

/// What an error reply carries.
struct Fault {
    status: StatusCode,
    code: String,
    message: String,
}

impl Fault {
    fn sender(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for Fault {
    fn from(e: Error) -> Self {
        match e {
            Error::Elb { code, message } => Fault::sender(code, message),
            Error::Invalid(_) | Error::NotFound { .. } | Error::Client(_) => {
                Fault::sender("ValidationError", e.to_string())
            }
            other => Fault {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "InternalFailure".into(),
                message: other.to_string(),
            },
        }
    }
}

impl From<AwsDenied> for Fault {
    fn from(d: AwsDenied) -> Self {
        let (code, message) = match d {
            AwsDenied::Unsigned => ("MissingAuthenticationToken", "this Berth server needs SigV4-signed requests: create a key with `berth token create --aws` and give it to the aws CLI (aws configure) or the SDK".to_string()),
            AwsDenied::UnknownKey(id) => ("InvalidClientTokenId", format!("the access key id {id} is not valid for this server; `berth token create --aws` makes one")),
            AwsDenied::BadSignature(why) => ("SignatureDoesNotMatch", format!("the request signature does not match: {why}. Check the secret access key")),
            AwsDenied::Forbidden(why) => ("AccessDenied", why),
        };
        Fault {
            status: StatusCode::FORBIDDEN,
            code: code.into(),
            message,
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn request_id() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Serves one Query-protocol request.
pub async fn serve(
    state: State,
    proxies: Arc<Proxies>,
    auth: &Authorizer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let id = request_id();
    match run(state, proxies, auth, method, uri, headers, body, &id).await {
        Ok(xml) => reply(StatusCode::OK, xml),
        Err(f) => {
            if f.status.is_server_error() {
                tracing::error!(code = %f.code, error = %f.message, "ELBv2 API fault");
            }
            let sender = !f.status.is_server_error();
            reply(f.status, xml::error(&f.code, &f.message, sender, &id))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    state: State,
    proxies: Arc<Proxies>,
    auth: &Authorizer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    id: &str,
) -> Result<String, Fault> {
    let params = Params::parse(body);
    let action = params.text("Action");
    let handler = operation(&action, params.get("Version"))?;
    let req = sigv4::SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    let path = format!("/elasticloadbalancing.v2015-12-01/{action}");
    match sigv4::authorize(auth, &req, Some("elasticloadbalancing"), &path) {
        Ok(_) => {}
        Err(sigv4::Refusal::OtherService(wanted)) => {
            let message = sigv4::Refusal::other_service_message(wanted);
            return Err(Fault::sender("SignatureDoesNotMatch", &message));
        }
        Err(sigv4::Refusal::Denied(refused)) => return Err(refused.into()),
    }
    params.check_members()?;
    let id = id.to_string();
    crate::foreground::blocking(move || {
        let ctx = ops::Ctx {
            state: &state,
            proxies: &proxies,
        };
        let mut out = Ok(());
        let xml = xml::response(&action, &id, |x| out = handler(&ctx, &params, x));
        out.map(|_| xml).map_err(Fault::from)
    })
    .await
    .map_err(|e| Fault {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "InternalFailure".into(),
        message: format!("the handler failed: {e}"),
    })?
}

/// The handler for `action`, or the error that says why there is none.
fn operation(action: &str, version: Option<&str>) -> Result<ops::Handler, Fault> {
    if action.is_empty() {
        return Err(Fault::sender(
            "MissingAction",
            "Action: is required (Action=DescribeLoadBalancers&Version=2015-12-01)",
        ));
    }
    if let Some((_, h)) = ops::OPERATIONS.iter().find(|(n, _)| *n == action) {
        return match version {
            Some(VERSION) => Ok(*h),
            Some(v) => Err(Fault::sender(
                "InvalidAction",
                format!("Version: {v:?} is not served; this endpoint speaks Elastic Load Balancing v2 ({VERSION}) and Amazon ECS"),
            )),
            None => Err(Fault::sender(
                "MissingParameter",
                format!("Version: is required ({VERSION})"),
            )),
        };
    }
    let names: Vec<&str> = ops::OPERATIONS.iter().map(|(n, _)| *n).collect();
    Err(Fault::sender(
        "InvalidAction",
        format!(
            "Action {:?} is not served here; Berth answers the ELBv2 actions {} and the Amazon ECS API (AWS JSON 1.1, X-Amz-Target)",
            crate::state::error::cut(action),
            names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests;
