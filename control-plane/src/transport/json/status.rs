//! The one mapping from `tonic::Status` to an HTTP answer: a status code and
//! `{"code": "InvalidArgument", "message": "..."}`, the message exactly as gRPC clients see it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// The HTTP status that means what the gRPC code means.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        // What nginx answers for a client that went away.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"code", "message"}`: what every error answer carries.
pub fn status_body(s: &tonic::Status) -> serde_json::Value {
    serde_json::json!({
        "code": format!("{:?}", s.code()),
        "message": s.message(),
    })
}

/// `{"code", "message"}` with the matching HTTP status.
pub fn status_response(s: &tonic::Status) -> Response {
    (http_status(s.code()), axum::Json(status_body(s))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_http_status_of_the_same_meaning() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
