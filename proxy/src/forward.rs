//! One request through the proxy: find the rule and an available target, set the forwarding
//! headers, send it over the pooled upstream connections, retry once on another target when nothing
//! reached the first, and turn an `Upgrade` (WebSocket) exchange into a byte tunnel. A request whose
//! body is in hand goes through Berth's own HTTP/1.1 client (`upstream`); a streamed body or an
//! upgrade goes through hyper's.

use crate::body::{DownBody, Reply, UpBody};
use crate::conn::{ConnGuard, ConnState};
use crate::error::Failure;
use crate::metrics::ListenerStats;
use crate::pattern::host_without_port;
use crate::table::Service;
use crate::target::TargetGuard;
use crate::upstream::{self, ExchangeError};
use crate::worker::UpstreamClient;
use crate::Shared;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::request::Parts;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::error::Error as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Request bodies of idempotent requests up to this size are buffered so a retry can resend them.
const REPLAY_LIMIT: u64 = 64 * 1024;

/// What every request on one client connection shares, built once per connection.
pub(crate) struct ConnCtx {
    pub shared: Arc<Shared>,
    pub port: u16,
    /// `X-Forwarded-Port`.
    pub port_header: HeaderValue,
    /// The client's IP, for `X-Forwarded-For`.
    pub client_ip: HeaderValue,
    pub conn: Arc<ConnState>,
    pub listener: Arc<ListenerStats>,
    /// The pool of the worker this connection runs on.
    pub client: UpstreamClient,
}

/// hyper's service function: never fails; every failure is an HTTP answer.
pub(crate) async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<DownBody>, Infallible> {
    let conn = ctx.conn.enter();
    let service = {
        let snapshot = ctx.shared.snapshot.load();
        snapshot
            .route(ctx.port, request_host(&req), req.uri().path())
            .cloned()
    };
    let Some(service) = service else {
        ctx.listener.unmatched.fetch_add(1, Relaxed);
        let failure = Failure::NoRoute {
            port: ctx.port,
            host: request_host(&req).to_string(),
            path: req.uri().path().to_string(),
        };
        tracing::debug!("{failure}");
        return Ok(local(&failure, conn));
    };
    Ok(match forward(&ctx, &service, req).await {
        Ok((response, target)) => {
            service.stats.responses.record(response.status().as_u16());
            response.map(|body| DownBody::upstream(body, conn, target))
        }
        Err(failure) => {
            tracing::debug!("{failure}");
            let response = local(&failure, conn);
            service.stats.responses.record(response.status().as_u16());
            response
        }
    })
}

fn local(failure: &Failure, conn: ConnGuard) -> Response<DownBody> {
    failure
        .to_response()
        .map(|body| DownBody::local(body, conn))
}

/// The host the rules see: the Host header (or, on HTTP/2, the URI's authority) without its port.
fn request_host(req: &Request<Incoming>) -> &str {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(Authority::as_str))
        .unwrap_or("");
    host_without_port(host)
}

/// One attempt's failure, and whether another target may be tried.
struct Attempt {
    failure: Failure,
    /// Nothing reached the target, or it closed the connection before any response byte.
    retryable: bool,
}

async fn forward(
    ctx: &ConnCtx,
    service: &Service,
    mut req: Request<Incoming>,
) -> Result<(Response<Reply>, Option<TargetGuard>), Failure> {
    let upgrade = wants_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    prepare_request(ctx, &mut parts, upgrade);
    let mut body = RequestBody::new(body, &parts.method).await?;

    let first = service.pick(None).ok_or_else(|| Failure::NoHealthyTarget {
        service: service.name.clone(),
    })?;
    // Copy the request only when a retry could use it.
    let spare =
        (body.replayable() && service.targets.targets.len() > 1).then(|| copy_parts(&parts));
    let (mut response, target) =
        match send(ctx, service, &first, parts, body.attempt(), upgrade).await {
            Ok(response) => (response, first),
            Err(Attempt { failure, retryable }) => {
                let Some(parts) = spare.filter(|_| retryable) else {
                    return Err(failure);
                };
                let Some(second) = service.pick(Some(first.target())) else {
                    return Err(failure);
                };
                drop(first);
                tracing::debug!("{failure}; retrying on {}", second.authority);
                match send(ctx, service, &second, parts, body.attempt(), upgrade).await {
                    Ok(response) => (response, second),
                    Err(attempt) => return Err(attempt.failure),
                }
            }
        };

    if let Some(client_upgrade) = client_upgrade {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            ctx.conn.set_upgraded();
            // The tunnel keeps the target's request in flight, so draining waits for it.
            tokio::spawn(async move {
                let (client, upstream) = tokio::join!(client_upgrade, upstream_upgrade);
                match (client, upstream) {
                    (Ok(client), Ok(upstream)) => {
                        let (mut client, mut upstream) =
                            (TokioIo::new(client), TokioIo::new(upstream));
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    (Err(e), _) | (_, Err(e)) => tracing::debug!("upgrade failed: {e}"),
                }
                drop(target);
            });
            return Ok((response, None));
        }
    }
    strip_hop_by_hop(response.headers_mut());
    Ok((response, Some(target)))
}

/// What one attempt's client reported.
enum SendError {
    Direct(ExchangeError),
    Hyper(hyper_util::client::legacy::Error),
}

async fn send(
    ctx: &ConnCtx,
    service: &Service,
    target: &TargetGuard,
    mut parts: Parts,
    body: UpBody,
    upgrade: bool,
) -> Result<Response<Reply>, Attempt> {
    let started = Instant::now();
    let after = ctx.shared.config.upstream_timeout;
    let in_hand = match &body {
        UpBody::Empty => Some(None),
        UpBody::Full(Some(bytes)) => Some(Some(bytes.clone())),
        _ => None,
    };
    let result = match in_hand.filter(|_| !upgrade && parts.method != Method::CONNECT) {
        Some(bytes) => {
            let exchange = upstream::exchange(
                &target.authority,
                ctx.shared.config.connect_timeout,
                &parts,
                bytes.as_deref(),
            );
            tokio::time::timeout(after, exchange).await.map(|r| {
                r.map(|response| response.map(Reply::Direct))
                    .map_err(SendError::Direct)
            })
        }
        None => {
            parts.uri = upstream_uri(&target.authority, &parts.uri);
            parts.version = Version::HTTP_11;
            let request = ctx.client.request(Request::from_parts(parts, body));
            tokio::time::timeout(after, request).await.map(|r| {
                r.map(|response| response.map(Reply::Hyper))
                    .map_err(SendError::Hyper)
            })
        }
    };
    let (failure, retryable) = match result {
        Ok(Ok(response)) => {
            target
                .metrics
                .record(response.status().as_u16(), started.elapsed());
            return Ok(response);
        }
        Ok(Err(e)) => {
            let (reason, connect, retryable) = match &e {
                SendError::Direct(ExchangeError::Connect(io)) => (describe_io(io), true, true),
                SendError::Direct(ExchangeError::Closed(io)) => (describe_io(io), false, true),
                SendError::Direct(ExchangeError::Failed(io)) => (describe_io(io), false, false),
                SendError::Hyper(e) => (describe(e), e.is_connect(), closed_before_response(e)),
            };
            let service = service.name.clone();
            let at = target.authority.to_string();
            if connect {
                target.eject(&reason);
                let failure = Failure::UpstreamConnect {
                    service,
                    target: at,
                    reason,
                };
                (failure, true)
            } else {
                let failure = Failure::Upstream {
                    service,
                    target: at,
                    reason,
                };
                (failure, retryable)
            }
        }
        Err(_) => {
            let failure = Failure::UpstreamTimeout {
                service: service.name.clone(),
                target: target.authority.to_string(),
                after,
            };
            (failure, false)
        }
    };
    let status = failure.to_response().status().as_u16();
    target.metrics.record(status, started.elapsed());
    Err(Attempt { failure, retryable })
}

/// The request body, kept so that a retry can send it again when that is safe.
enum RequestBody {
    Empty,
    Buffered(Bytes),
    /// Sent as it streams in: no retry.
    Stream(Option<Incoming>),
}

impl RequestBody {
    async fn new(body: Incoming, method: &Method) -> Result<Self, Failure> {
        if body.is_end_stream() {
            return Ok(RequestBody::Empty);
        }
        let idempotent = matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        let small = body.size_hint().exact().is_some_and(|n| n <= REPLAY_LIMIT);
        if !(idempotent && small) {
            return Ok(RequestBody::Stream(Some(body)));
        }
        match body.collect().await {
            Ok(collected) => Ok(RequestBody::Buffered(collected.to_bytes())),
            Err(e) => Err(Failure::ClientBody {
                reason: e.to_string(),
            }),
        }
    }

    fn replayable(&self) -> bool {
        !matches!(self, RequestBody::Stream(_))
    }

    fn attempt(&mut self) -> UpBody {
        match self {
            RequestBody::Empty => UpBody::Empty,
            RequestBody::Buffered(bytes) => UpBody::Full(Some(bytes.clone())),
            RequestBody::Stream(body) => body.take().map_or(UpBody::Empty, UpBody::Stream),
        }
    }
}

fn copy_parts(parts: &Parts) -> Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

fn upstream_uri(authority: &Authority, original: &Uri) -> Uri {
    let mut parts = hyper::http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(
        original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| original.clone())
}

/// An HTTP/1.1 request asking to switch protocols (`Connection: upgrade` with `Upgrade: …`).
fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the headers that describe one hop, not the message (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(TE);
    headers.remove(TRAILER);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(UPGRADE);
}

fn prepare_request(ctx: &ConnCtx, parts: &mut Parts, upgrade: bool) {
    let headers = &mut parts.headers;
    let upgrade_to = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade_to {
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // HTTP/2 carries the host in the URI; an HTTP/1.1 upstream needs it as a header.
    if !headers.contains_key(HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(HOST, host);
        }
    }
    let forwarded_for = {
        let mut prior = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
        if prior.peek().is_none() {
            ctx.client_ip.clone()
        } else {
            let mut value = Vec::with_capacity(64);
            for v in prior {
                value.extend_from_slice(v.as_bytes());
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(ctx.client_ip.as_bytes());
            HeaderValue::from_bytes(&value).unwrap_or_else(|_| ctx.client_ip.clone())
        }
    };
    headers.insert(&X_FORWARDED_FOR, forwarded_for);
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(&X_FORWARDED_PORT, ctx.port_header.clone());
}

/// The target closed the connection (or reset it) before any response byte: nothing was answered,
/// so trying elsewhere is safe for a request that may be repeated.
fn closed_before_response(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
            ) {
                return true;
            }
        }
        source = s.source();
    }
    false
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
fn describe_io(io: &std::io::Error) -> String {
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
    fn hop_by_hop_headers_do_not_cross() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn the_upstream_uri_keeps_path_and_query() {
        let a = Authority::from_static("10.0.0.1:3000");
        let u = upstream_uri(&a, &"/a/b?c=d".parse().unwrap());
        assert_eq!(u.to_string(), "http://10.0.0.1:3000/a/b?c=d");
        let u = upstream_uri(&a, &"http://front.example/x".parse().unwrap());
        assert_eq!(u.to_string(), "http://10.0.0.1:3000/x");
    }
}
