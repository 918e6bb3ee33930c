//! What every request to the HTTP port passes before its route: the `Host` check that keeps a
//! DNS-rebound page off `berth dev`'s open API, and the body limit, answered with the same JSON
//! error as every other status.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// The port's request rules.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// `Some`: only loopback names and addresses, and these, are answered (`berth dev`).
    pub allowed_hosts: Option<Vec<String>>,
    /// Bytes of one request body at most.
    pub max_body: usize,
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({ "code": code, "message": message });
    (status, axum::Json(body)).into_response()
}

/// `localhost`, `*.localhost`, and loopback addresses (`127.0.0.1`, `[::1]`), with any port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn host_allowed(allowed: &[String], host: &str) -> bool {
    let bare = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    is_loopback_host(host)
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(bare))
}

pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Some(allowed) = &guard.allowed_hosts {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        if let Some(host) = host.filter(|h| !host_allowed(allowed, h)) {
            return error(
                StatusCode::FORBIDDEN,
                "PermissionDenied",
                format!(
                    "Host {} is not this machine: berth dev answers only loopback names (localhost, 127.0.0.1, [::1]); to use another name, start it with --allow-host NAME",
                    crate::state::error::quote(&host)
                ),
            );
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > guard.max_body as u64) {
        return too_large(guard.max_body);
    }
    let res = next.run(req).await;
    // A chunked body that grew past the limit: the extractor's plain-text 413, as JSON.
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(guard.max_body);
    }
    res
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "InvalidArgument",
        format!("the request body is larger than this server takes ({max} bytes, the server's --http-max-body)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_with_or_without_ports_are_local() {
        for h in [
            "localhost",
            "localhost:7080",
            "api.localhost:7080",
            "127.0.0.1",
            "127.0.0.1:7080",
            "127.9.9.9",
            "[::1]:7080",
            "LOCALHOST.",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example.com",
            "evil.example.com:7080",
            "10.0.0.1:7080",
            "localhost.evil.com",
            "[::2]",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        let allowed = vec!["devbox.lan".to_string()];
        assert!(host_allowed(&allowed, "devbox.lan:7080"));
        assert!(!host_allowed(&allowed, "evil.example.com"));
    }
}
