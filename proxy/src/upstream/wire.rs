//! The HTTP/1.1 bytes of Berth's upstream client: the request head written in one buffer with the
//! forwarding headers, and the response head parsed for what the proxy needs.

use super::framing::Framing;
use super::Forwarded;
use crate::headers::{is_hop_by_hop, X_FORWARDED_FOR, X_FORWARDED_PORT, X_FORWARDED_PROTO};
use crate::rules::Xff;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use std::io;
use std::mem::MaybeUninit;

/// The most header fields in a response head.
const MAX_HEADERS: usize = 100;

/// The request line and headers, then the body, in one buffer. The client's headers go as they
/// came, less hop-by-hop ones (the caller has already dropped those named in `Connection`) and the
/// forwarding headers, which are written anew: `X-Forwarded-For` appends the client to what came.
pub(super) fn write_head(
    out: &mut Vec<u8>,
    parts: &Parts,
    body: Option<&[u8]>,
    forwarded: &Forwarded<'_>,
) {
    let field = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = false;
    let mut prior_for = false;
    for (name, value) in &parts.headers {
        if is_hop_by_hop(name)
            // The whole body is in hand: nothing to wait for, and its length is known.
            || name == CONTENT_LENGTH
            || name == EXPECT
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_PORT
        {
            continue;
        }
        if name == X_FORWARDED_FOR {
            prior_for = true;
            continue;
        }
        host |= name == HOST;
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    // HTTP/2 carries the host in the URI; an HTTP/1.1 target needs the header.
    if let (false, Some(authority)) = (host, parts.uri.authority()) {
        field(out, b"host", authority.as_str().as_bytes());
    }
    match forwarded.xff {
        Xff::Append => {
            out.extend_from_slice(b"x-forwarded-for: ");
            if prior_for {
                for value in parts.headers.get_all(&X_FORWARDED_FOR) {
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b", ");
                }
            }
            out.extend_from_slice(forwarded.client_ip);
            out.extend_from_slice(b"\r\n");
        }
        Xff::Preserve => {
            for value in parts.headers.get_all(&X_FORWARDED_FOR) {
                field(out, b"x-forwarded-for", value.as_bytes());
            }
        }
        Xff::Remove => {}
    }
    field(out, b"x-forwarded-proto", forwarded.proto);
    field(out, b"x-forwarded-port", forwarded.port);
    let len = body.map_or(0, <[u8]>::len);
    let bodiless = matches!(parts.method, Method::GET | Method::HEAD | Method::DELETE);
    if len > 0 || !bodiless || parts.headers.contains_key(CONTENT_LENGTH) {
        field(out, b"content-length", len.to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

/// What the proxy needs from a response head.
pub(super) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub keep_alive: bool,
}

pub(super) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Parses a complete response head: its length, what the proxy needs, and the body's framing.
pub(super) fn parse_head(
    buf: &[u8],
    head_request: bool,
) -> io::Result<Option<(usize, Head, Framing)>> {
    // Uninitialised slots: zeroing a hundred of them per response costs more than the parse.
    let mut fields = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parse = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    );
    let len = match parse {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("malformed response head: {e}"))),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid("bad status code"))?;
    let mut keep_alive = parsed.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut listed = false;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| invalid("bad header name"))?;
        if name == CONTENT_LENGTH {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| invalid("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting content-length"));
            }
            length = Some(n);
        } else if name == hyper::header::TRANSFER_ENCODING {
            // Chunked must be the last coding; anything else is read until close.
            let last = field
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONNECTION {
            for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    listed = true;
                }
            }
        }
        if is_hop_by_hop(&name) {
            continue;
        }
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| invalid("bad header value"))?;
        headers.append(name, value);
    }
    if listed {
        // Headers named in `Connection` belong to this hop too.
        let connection = parsed
            .headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("connection"));
        for field in connection {
            for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if let Ok(name) = HeaderName::from_bytes(token) {
                    headers.remove(name);
                }
            }
        }
    }
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        Framing::Length(0)
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    if chunked.is_some() {
        // The client gets the body with hyper's own framing.
        headers.remove(CONTENT_LENGTH);
    }
    let head = Head {
        status,
        headers,
        keep_alive,
    };
    Ok(Some((len, head, framing)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::upstream::tests::FORWARDED;

    pub fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = hyper::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_request_goes_out_with_its_body_and_length() {
        let mut out = Vec::new();
        let p = parts(
            Method::PUT,
            "http://front/a?b=c",
            &[
                ("host", "front"),
                ("content-length", "99"),
                ("expect", "100-continue"),
            ],
        );
        write_head(&mut out, &p, Some(b"hello"), &FORWARDED);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "PUT /a?b=c HTTP/1.1\r\nhost: front\r\nx-forwarded-for: 10.0.0.9\r\n\
             x-forwarded-proto: http\r\nx-forwarded-port: 8080\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn forwarding_headers_replace_the_clients_and_hop_by_hop_ones_stay_behind() {
        let mut out = Vec::new();
        let p = parts(
            Method::GET,
            "http://front.example/x",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-port", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("x-kept", "yes"),
            ],
        );
        write_head(&mut out, &p, None, &FORWARDED);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nx-kept: yes\r\nhost: front.example\r\n\
             x-forwarded-for: 1.1.1.1, 10.0.0.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-port: 8080\r\n\r\n"
        );
    }

    #[test]
    fn response_hop_by_hop_headers_are_left_out() {
        let head = "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-private\r\nx-private: 1\r\n\
                    keep-alive: timeout=5\r\ncontent-length: 0\r\nx-kept: 1\r\n\r\n";
        let (_, head, _) = parse_head(head.as_bytes(), false).unwrap().unwrap();
        let mut names: Vec<_> = head.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
        assert!(head.keep_alive);
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |head: &str, head_request: bool| {
            parse_head(head.as_bytes(), head_request)
                .unwrap()
                .map(|(_, h, f)| (f, h.keep_alive))
        };
        let ok = "HTTP/1.1 200 OK\r\n";
        assert_eq!(
            framing(&format!("{ok}content-length: 12\r\n\r\n"), false),
            Some((Framing::Length(12), true))
        );
        assert_eq!(
            framing(&format!("{ok}content-length: 12\r\n\r\n"), true),
            Some((Framing::Length(0), true))
        );
        assert_eq!(
            framing(
                &format!("{ok}transfer-encoding: gzip, chunked\r\n\r\n"),
                false
            ),
            Some((Framing::Chunked, true))
        );
        assert_eq!(
            framing(&format!("{ok}connection: close\r\n\r\n"), false),
            Some((Framing::Close, false))
        );
        assert_eq!(
            framing("HTTP/1.0 204 No Content\r\n\r\n", false),
            Some((Framing::Length(0), false))
        );
        assert_eq!(framing(ok, false), None, "the head is not complete yet");
        assert!(parse_head(
            format!("{ok}content-length: 1\r\ncontent-length: 2\r\n\r\n").as_bytes(),
            false
        )
        .is_err());
    }
}
