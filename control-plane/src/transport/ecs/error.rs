//! The ECS API's errors and their one mapping to the wire: HTTP 400 (5xx for a server fault) with
//! `{"__type": "<ExceptionName>", "message": "..."}`, as ECS and botocore's JSON protocol have it.

use crate::model::auth::AwsDenied;
use crate::state::error::Error;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsError {
    /// ECS's exception name (`ClusterNotFoundException`).
    pub kind: &'static str,
    pub message: String,
    pub status: StatusCode,
}

impl EcsError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// `InvalidParameterException` naming the field.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new("InvalidParameterException", format!("{field}: {message}"))
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self {
            kind: "ServerException",
            message: message.into(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Berth's message without the exception name it starts with (the name goes in `__type`).
fn message_of(e: &Error) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((head, rest)) if head.ends_with("Exception") => rest.to_string(),
        _ => text,
    }
}

/// `FAMILY:REV` or a task definition ARN ending in one: a reference to one revision.
fn names_revision(reference: &str) -> bool {
    reference
        .rsplit_once(':')
        .is_some_and(|(_, rev)| !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_digit()))
}

impl From<Error> for EcsError {
    fn from(e: Error) -> Self {
        let message = match &e {
            // AWS's own words, which clients (ecs-deploy, Ansible, SDK waiters) match on.
            Error::NotFound {
                kind: "Cluster", ..
            } => "Cluster not found.".to_string(),
            Error::NotFound {
                kind: "Service", ..
            } => "Service not found.".to_string(),
            Error::NotFound {
                kind: "TaskDefinition",
                name,
                ..
            } if names_revision(name) => "Revision is missing.".to_string(),
            _ => message_of(&e),
        };
        let kind = match &e {
            Error::Invalid(_) => "InvalidParameterException",
            Error::NotFound { kind, .. } => match *kind {
                "Cluster" => "ClusterNotFoundException",
                "Service" => "ServiceNotFoundException",
                // ECS answers an unknown task definition, task or instance this way.
                "TaskDefinition" => "ClientException",
                "Task" | "ContainerInstance" => "InvalidParameterException",
                "Attribute" | "Target" => "TargetNotFoundException",
                "ServiceDeployment" => "ServiceDeploymentNotFoundException",
                _ => "ResourceNotFoundException",
            },
            Error::ClusterContainsServices(..) => "ClusterContainsServicesException",
            Error::ClusterContainsTasks(..) => "ClusterContainsTasksException",
            Error::ServiceNotActive(..) => "ServiceNotActiveException",
            Error::Client(_) => "ClientException",
            // A service naming a target group that is not there, as ECS answers it.
            Error::Elb { .. } => "InvalidParameterException",
            Error::Store(_) | Error::Conflict(_) => return EcsError::server(message),
        };
        EcsError::new(kind, message)
    }
}

impl From<AwsDenied> for EcsError {
    fn from(d: AwsDenied) -> Self {
        match d {
            AwsDenied::Unsigned => EcsError::new(
                "MissingAuthenticationTokenException",
                "this Berth server needs SigV4-signed requests: create a key with `berth token create --aws` and give it to the aws CLI (aws configure) or the SDK",
            ),
            AwsDenied::UnknownKey(id) => EcsError::new(
                "UnrecognizedClientException",
                format!("the access key id {id} is not valid for this server; `berth token create --aws` makes one"),
            ),
            AwsDenied::BadSignature(why) => EcsError::new(
                "InvalidSignatureException",
                format!("the request signature does not match: {why}. Check the secret access key"),
            ),
            AwsDenied::Forbidden(why) => EcsError::new("AccessDeniedException", why),
        }
    }
}

impl IntoResponse for EcsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.kind, "message": self.message });
        let mut r = (self.status, body.to_string()).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(v) = HeaderValue::from_str(self.kind) {
            h.insert("x-amzn-errortype", v);
        }
        r
    }
}

pub type EcsResult<T> = Result<T, EcsError>;
