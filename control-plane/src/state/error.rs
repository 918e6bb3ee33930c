//! The control plane's errors and their one mapping to `tonic::Status`.
//!
//! Messages carry ECS's exception names so users of ECS recognise them, name the field or object
//! at fault, and say what to do about it.

use crate::store::StoreError;

pub use berth_core::error::{cut, quote, FieldError, MAX_QUOTE};

/// Everything a control-plane request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("InvalidParameterException: {}", join(.0))]
    Invalid(Vec<FieldError>),
    #[error("{kind}NotFoundException: {kind} '{name}' not found{}", hint_text(.hint))]
    NotFound {
        kind: &'static str,
        name: String,
        hint: String,
    },
    #[error("ClusterContainsServicesException: cluster '{0}' still has {1} active service(s); delete them first (berth service delete NAME --cluster {0} --force)")]
    ClusterContainsServices(String, usize),
    #[error("ClusterContainsTasksException: cluster '{0}' still has {1} running task(s); stop them first (berth task stop ID)")]
    ClusterContainsTasks(String, usize),
    #[error("ServiceNotActiveException: service {0} is {1}")]
    ServiceNotActive(String, String),
    #[error("ClientException: {0}")]
    Client(String),
    #[error("ServerException: {0}")]
    Store(#[from] StoreError),
    /// An ELBv2 error, with its code as botocore's elbv2 model names it (`TargetGroupNotFound`,
    /// `ResourceInUse`, `ValidationError`, …).
    #[error("{code}: {message}")]
    Elb { code: &'static str, message: String },
    /// What a decision read changed before it committed; `State::update` decides again.
    #[error("ConflictException: {0}; try again")]
    Conflict(String),
}

/// The errors shown in one message; a request with more hears how many more there are.
const MAX_SHOWN: usize = 20;

fn join(errors: &[FieldError]) -> String {
    let mut s = errors
        .iter()
        .take(MAX_SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > MAX_SHOWN {
        s.push_str(&format!("; and {} more", errors.len() - MAX_SHOWN));
    }
    s
}

fn hint_text(h: &str) -> String {
    if h.is_empty() {
        String::new()
    } else {
        format!("; {h}")
    }
}

impl Error {
    /// An ELBv2 error with botocore's code.
    pub fn elb(code: &'static str, message: impl Into<String>) -> Self {
        Error::Elb {
            code,
            message: message.into(),
        }
    }

    /// A single invalid field.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(path, message)])
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>, hint: impl Into<String>) -> Self {
        let (name, hint) = (name.into(), hint.into());
        let short = cut(&name);
        // A hint that repeats a long name repeats it cut too.
        let hint = if short.len() < name.len() {
            hint.replace(&name, &short)
        } else {
            hint
        };
        Error::NotFound {
            kind,
            name: short,
            hint,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::Invalid(_) => tonic::Status::invalid_argument(msg),
            Error::NotFound { .. } => tonic::Status::not_found(msg),
            Error::ClusterContainsServices(..) | Error::ClusterContainsTasks(..) => {
                tonic::Status::failed_precondition(msg)
            }
            Error::Client(_) | Error::ServiceNotActive(..) => {
                tonic::Status::failed_precondition(msg)
            }
            Error::Elb { code, .. } if code.ends_with("NotFound") => tonic::Status::not_found(msg),
            // A quota or a port the load balancer could never use is the request's fault (400),
            // as ELBv2 answers them.
            Error::Elb { code, .. }
                if matches!(code, "ValidationError" | "InvalidConfigurationRequest")
                    || code.starts_with("TooMany") =>
            {
                tonic::Status::invalid_argument(msg)
            }
            Error::Elb { .. } => tonic::Status::failed_precondition(msg),
            Error::Store(_) => tonic::Status::internal(msg),
            Error::Conflict(_) => tonic::Status::aborted(msg),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_input_is_quoted_cut_to_a_hundred_characters() {
        assert_eq!(quote("web"), "\"web\"");
        let long = "x".repeat(1_000_000);
        let q = quote(&long);
        assert!(q.len() < 130, "{q}");
        assert!(q.ends_with("… (1000000 characters)"), "{q}");
    }
}
