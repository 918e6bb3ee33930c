//! One request through the proxy: find the rule and an available target, set the forwarding
//! headers, send it over the pooled upstream connections, retry once on another target when nothing
//! reached the first, and turn an `Upgrade` (WebSocket) exchange into a byte tunnel. A request whose
//! body is in hand goes through Berth's own HTTP/1.1 client (`upstream`); a streamed body or an
//! upgrade goes through hyper's.

use crate::body::{DownBody, Reply, UpBody};
use crate::conn::{ConnGuard, ConnState};
use crate::counters::ListenerStats;
use crate::error::{describe, describe_io, Failure};
use crate::headers::{prepare_request, strip_hop_by_hop, wants_upgrade};
use crate::pattern::host_without_port;
use crate::table::{Facts, Service};
use crate::target::TargetGuard;
use crate::upstream::{self, ExchangeError};
use crate::upstream::{Forwarded, Timeouts};
use crate::worker::UpstreamClient;
use crate::Shared;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::http::request::Parts;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::error::Error as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

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
    /// The same, for source-ip conditions.
    pub peer: std::net::IpAddr,
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
    if let Some(answer) = crate::tls::acme_answer(&ctx.shared, req.uri().path()) {
        let body = http_body_util::Full::new(bytes::Bytes::from(answer));
        return Ok(Response::new(DownBody::local(body, conn)));
    }
    let service = {
        let snapshot = ctx.shared.snapshot.load();
        let facts = Facts {
            headers: req.headers(),
            method: req.method(),
            query: req.uri().query().unwrap_or(""),
            client: ctx.peer,
        };
        snapshot
            .route(ctx.port, request_host(&req), req.uri().path(), &facts)
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
    if let Some(answer) = &service.edge.answer {
        let response = answer.respond(service.edge.scheme, request_host(&req), ctx.port, req.uri());
        service
            .stats
            .record(response.status().as_u16(), std::time::Duration::ZERO);
        return Ok(response.map(|body| DownBody::local(body, conn)));
    }
    let version = req.version();
    let started = std::time::Instant::now();
    let mut response = match forward(&ctx, &service, req).await {
        Ok((response, target)) => {
            service
                .stats
                .record(response.status().as_u16(), started.elapsed());
            response.map(|body| DownBody::upstream(body, conn, target))
        }
        Err(failure) => {
            tracing::debug!("{failure}");
            let response = local(&failure, conn);
            service
                .stats
                .record(response.status().as_u16(), started.elapsed());
            response
        }
    };
    if let Some(calls) = &ctx.shared.calls {
        calls.record(&service.arn, ctx.peer, response.status().is_server_error());
    }
    // Draining: the client learns from this answer to take its next request elsewhere.
    if ctx.conn.is_draining()
        && version < Version::HTTP_2
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
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
    if service.edge.drop_invalid_header_fields {
        crate::rules::drop_invalid_header_fields(&mut parts.headers);
    }
    let body = RequestBody::new(body, &parts.method).await?;

    let sticky = service.sticky_pick(&parts.headers);
    let pinned = sticky
        .as_ref()
        .map(|t| crate::rules::sticky_token(&service.arn, &t.key));
    let first = sticky
        .or_else(|| service.pick(None))
        .ok_or_else(|| Failure::NoHealthyTarget {
            service: service.name.clone(),
        })?;
    let mut out = match body.in_hand() {
        Some(bytes) if !upgrade && parts.method != Method::CONNECT => {
            if parts.headers.contains_key(CONNECTION) {
                strip_hop_by_hop(&mut parts.headers);
            }
            Outgoing::Direct { parts, body: bytes }
        }
        _ => {
            let forwarded = Forwarded {
                client_ip: ctx.client_ip.as_bytes(),
                port: ctx.port_header.as_bytes(),
                proto: service.edge.scheme.as_bytes(),
                xff: service.edge.xff,
            };
            prepare_request(&forwarded, &mut parts, upgrade);
            // Copy the request only when a retry could use it.
            let spare = (body.replayable() && service.targets.targets.len() > 1)
                .then(|| Box::new(copy_parts(&parts)));
            Outgoing::Hyper {
                parts: Some(parts),
                spare,
                body,
            }
        }
    };
    let (mut response, target) = match send(ctx, service, &first, &mut out).await {
        Ok(response) => (response, first),
        Err(Attempt { failure, retryable }) => {
            if !(retryable && out.can_retry()) {
                return Err(failure);
            }
            let Some(second) = service.pick(Some(first.target())) else {
                return Err(failure);
            };
            drop(first);
            tracing::debug!("{failure}; retrying on {}", second.authority);
            match send(ctx, service, &second, &mut out).await {
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
    if matches!(response.body(), Reply::Hyper(_)) {
        // Berth's own client leaves them out as it reads the head.
        strip_hop_by_hop(response.headers_mut());
    }
    if let Some(ttl) = service.edge.sticky {
        // A client already on this target keeps its cookie; any other gets one naming it.
        let token = crate::rules::sticky_token(&service.arn, &target.key);
        if pinned.as_deref() != Some(token.as_str()) {
            if let Some(v) = crate::rules::set_sticky_cookie(&token, ttl) {
                response.headers_mut().append(hyper::header::SET_COOKIE, v);
            }
        }
    }
    Ok((response, Some(target)))
}

/// The request as it goes to a target, on each attempt.
enum Outgoing {
    /// The body is in hand: Berth's client writes the head, forwarding headers included, from the
    /// client's parts on every attempt.
    Direct { parts: Parts, body: Option<Bytes> },
    /// hyper's client takes the (rewritten) parts; a copy is kept when a retry could use it.
    Hyper {
        parts: Option<Parts>,
        spare: Option<Box<Parts>>,
        body: RequestBody,
    },
}

impl Outgoing {
    fn can_retry(&self) -> bool {
        match self {
            Outgoing::Direct { .. } => true,
            Outgoing::Hyper { spare, .. } => spare.is_some(),
        }
    }
}

/// What one attempt's client reported.
enum SendError {
    Direct(ExchangeError),
    Hyper(hyper_util::client::legacy::Error),
    TimedOut,
}

async fn send(
    ctx: &ConnCtx,
    service: &Service,
    target: &TargetGuard,
    out: &mut Outgoing,
) -> Result<Response<Reply>, Attempt> {
    let started = Instant::now();
    let after = ctx.shared.config.upstream_timeout;
    let result = match out {
        Outgoing::Direct { parts, body } => {
            let forwarded = Forwarded {
                client_ip: ctx.client_ip.as_bytes(),
                port: ctx.port_header.as_bytes(),
                proto: service.edge.scheme.as_bytes(),
                xff: service.edge.xff,
            };
            let timeouts = Timeouts {
                connect: ctx.shared.config.connect_timeout,
                upstream: after,
            };
            let exchange = upstream::exchange(
                target.target(),
                timeouts,
                parts,
                body.as_deref(),
                &forwarded,
            );
            match exchange.await {
                Ok(response) => Ok(response.map(Reply::Direct)),
                Err(ExchangeError::TimedOut) => Err(SendError::TimedOut),
                Err(e) => Err(SendError::Direct(e)),
            }
        }
        Outgoing::Hyper { parts, spare, body } => {
            let Some(mut parts) = parts.take().or_else(|| spare.take().map(|p| *p)) else {
                let failure = Failure::Upstream {
                    service: service.name.clone(),
                    target: target.authority.to_string(),
                    reason: "the request was already sent".into(),
                };
                return Err(Attempt {
                    failure,
                    retryable: false,
                });
            };
            parts.uri = upstream_uri(&target.authority, &parts.uri);
            parts.version = Version::HTTP_11;
            let request = ctx
                .client
                .request(Request::from_parts(parts, body.attempt()));
            match tokio::time::timeout(after, request).await {
                Ok(Ok(response)) => Ok(response.map(Reply::Hyper)),
                Ok(Err(e)) => Err(SendError::Hyper(e)),
                Err(_) => Err(SendError::TimedOut),
            }
        }
    };
    let failed = |reason: String, connect: bool, retryable: bool| {
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
    };
    let (failure, retryable) = match result {
        Ok(response) => {
            target
                .metrics
                .record(response.status().as_u16(), started.elapsed());
            return Ok(response);
        }
        Err(SendError::TimedOut | SendError::Direct(ExchangeError::TimedOut)) => {
            let failure = Failure::UpstreamTimeout {
                service: service.name.clone(),
                target: target.authority.to_string(),
                after,
            };
            (failure, false)
        }
        Err(SendError::Direct(ExchangeError::Connect(io))) => failed(describe_io(&io), true, true),
        Err(SendError::Direct(ExchangeError::Closed { error, retryable })) => {
            failed(describe_io(&error), false, retryable)
        }
        Err(SendError::Direct(ExchangeError::Failed(io))) => failed(describe_io(&io), false, false),
        Err(SendError::Hyper(e)) => {
            failed(describe(&e), e.is_connect(), closed_before_response(&e))
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

    /// The whole body, when there is no stream left to read (`Some(None)`: no body).
    fn in_hand(&self) -> Option<Option<Bytes>> {
        match self {
            RequestBody::Empty => Some(None),
            RequestBody::Buffered(bytes) => Some(Some(bytes.clone())),
            RequestBody::Stream(_) => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_uri_keeps_path_and_query() {
        let a = Authority::from_static("10.0.0.1:3000");
        let u = upstream_uri(&a, &"/a/b?c=d".parse().unwrap());
        assert_eq!(u.to_string(), "http://10.0.0.1:3000/a/b?c=d");
        let u = upstream_uri(&a, &"http://front.example/x".parse().unwrap());
        assert_eq!(u.to_string(), "http://10.0.0.1:3000/x");
    }
}
