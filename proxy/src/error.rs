//! What can go wrong: `ProxyError` for starting the proxy and opening listeners, `Failure` for one
//! proxied request, `Failure::to_response`, the one mapping from a failure to the HTTP answer,
//! and `describe`, the reason an upstream error gives (in a 502 and in a target's health).

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

/// Why the proxy (or one of its listeners) cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid control plane address {server:?}: {source}")]
    InvalidServer {
        server: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot start the proxy's worker threads: {0}")]
    Workers(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why one request got no answer from a target.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no rule on listener port {port} matches host {host:?} and path {path:?}")]
    NoRoute {
        port: u16,
        host: String,
        path: String,
    },
    #[error("no healthy target for service {service}")]
    NoHealthyTarget { service: String },
    #[error("cannot connect to {target} (service {service}): {reason}")]
    UpstreamConnect {
        service: String,
        target: String,
        reason: String,
    },
    #[error("{target} (service {service}) failed: {reason}")]
    Upstream {
        service: String,
        target: String,
        reason: String,
    },
    #[error("{target} (service {service}) did not answer within {after:?}")]
    UpstreamTimeout {
        service: String,
        target: String,
        after: Duration,
    },
    #[error("cannot read the request body: {reason}")]
    ClientBody { reason: String },
}

impl Failure {
    /// The one place a failure becomes an HTTP answer: no matching rule 404, no healthy target 503
    /// naming the service, upstream connect or protocol failure 502, upstream too slow 504, an
    /// unreadable request body 400.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let (status, body) = match self {
            Failure::NoRoute { .. } => (
                StatusCode::NOT_FOUND,
                "no rule matches this request\n".into(),
            ),
            Failure::NoHealthyTarget { service } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no healthy target for service {service}\n"),
            ),
            Failure::UpstreamConnect { service, .. } | Failure::Upstream { service, .. } => (
                StatusCode::BAD_GATEWAY,
                format!("bad gateway: service {service} did not answer\n"),
            ),
            Failure::UpstreamTimeout { service, .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                format!("gateway timeout: service {service} did not answer in time\n"),
            ),
            Failure::ClientBody { .. } => (
                StatusCode::BAD_REQUEST,
                "cannot read the request body\n".to_string(),
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// A short reason for an upstream error, worded like ALB's target health reasons.
pub(crate) fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return describe_io(io);
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return "Connection closed before the response".into();
            }
        }
        source = s.source();
    }
    match e.source() {
        Some(s) => format!("Request failed: {s}"),
        None => format!("Request failed: {e}"),
    }
}

/// The same reasons for an IO error from Berth's own client.
pub(crate) fn describe_io(io: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => "Connection refused".into(),
        TimedOut => "Request timed out".into(),
        ConnectionReset => "Connection reset by peer".into(),
        UnexpectedEof => "Connection closed before the response".into(),
        InvalidData => format!("Invalid response: {io}"),
        _ => format!("Connection failed: {io}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_maps_to_its_status() {
        let cases = [
            (
                Failure::NoRoute {
                    port: 80,
                    host: "x".into(),
                    path: "/".into(),
                },
                404,
            ),
            (
                Failure::NoHealthyTarget {
                    service: "web".into(),
                },
                503,
            ),
            (
                Failure::UpstreamConnect {
                    service: "web".into(),
                    target: "t".into(),
                    reason: "Connection refused".into(),
                },
                502,
            ),
            (
                Failure::UpstreamTimeout {
                    service: "web".into(),
                    target: "t".into(),
                    after: Duration::from_secs(1),
                },
                504,
            ),
        ];
        for (failure, status) in cases {
            assert_eq!(failure.to_response().status().as_u16(), status, "{failure}");
        }
    }

    #[test]
    fn no_healthy_target_names_the_service() {
        use http_body_util::BodyExt;
        let response = Failure::NoHealthyTarget {
            service: "web".into(),
        }
        .to_response();
        let body = poll_once(response.into_body().collect());
        assert_eq!(
            body.unwrap().to_bytes(),
            "no healthy target for service web\n"
        );
    }

    /// `Full` is ready at once, so one poll completes it; no runtime needed.
    fn poll_once<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("a Full body is always ready"),
        }
    }
}
