//! The headers a proxy rewrites: hop-by-hop headers (RFC 9110 §7.6.1) stay on their hop, and the
//! target learns the client through `X-Forwarded-For`, `-Proto` and `-Port`, as behind an ALB.

use crate::rules::Xff;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::request::Parts;
use hyper::{Request, Version};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// What the target learns about the client, as `X-Forwarded-For`, `-Port` and `-Proto`.
pub(crate) struct Forwarded<'a> {
    pub client_ip: &'a [u8],
    pub port: &'a [u8],
    /// http or https: the listener's protocol.
    pub proto: &'a [u8],
    /// What becomes of the client's own `X-Forwarded-For`.
    pub xff: crate::rules::Xff,
}

pub(crate) static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub(crate) static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A header that describes one hop, not the message; also dropped: any header named in
/// `Connection`, which `strip_hop_by_hop` handles.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// An HTTP/1.1 request asking to switch protocols (`Connection: upgrade` with `Upgrade: …`).
pub(crate) fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

pub(crate) fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the headers that describe one hop, not the message (RFC 9110 §7.6.1).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// Readies a request for hyper's client: hop-by-hop headers dropped (an upgrade's kept), `Host`
/// set, and the client's address (`client_ip`) and the listener's port (`port`) forwarded.
pub(crate) fn prepare_request(forwarded: &Forwarded<'_>, parts: &mut Parts, upgrade: bool) {
    let client_ip = &HeaderValue::from_bytes(forwarded.client_ip)
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
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
            client_ip.clone()
        } else {
            let mut value = Vec::with_capacity(64);
            for v in prior {
                value.extend_from_slice(v.as_bytes());
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&value).unwrap_or_else(|_| client_ip.clone())
        }
    };
    match forwarded.xff {
        Xff::Append => {
            headers.insert(&X_FORWARDED_FOR, forwarded_for);
        }
        Xff::Preserve => {}
        Xff::Remove => {
            headers.remove(&X_FORWARDED_FOR);
        }
    }
    let proto = HeaderValue::from_bytes(forwarded.proto)
        .unwrap_or_else(|_| HeaderValue::from_static("http"));
    headers.insert(&X_FORWARDED_PROTO, proto);
    if let Ok(port) = HeaderValue::from_bytes(forwarded.port) {
        headers.insert(&X_FORWARDED_PORT, port);
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
}
