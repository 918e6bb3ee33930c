//! ELBv2 rule conditions beyond host and path (http-header, query-string, http-request-method,
//! source-ip) and the actions the proxy answers itself (redirect, fixed-response), compiled
//! once per routing table.

use crate::pattern::Pattern;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{HeaderMap, Method, Response, StatusCode, Uri};
use std::net::IpAddr;

/// What a request offers the conditions.
pub(crate) struct Facts<'a> {
    pub headers: &'a HeaderMap,
    pub method: &'a Method,
    pub query: &'a str,
    pub client: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Any value of the header matches any pattern (case-insensitive).
    Header(http::HeaderName, Vec<Pattern>),
    /// Any `key=value` pair of the query matches one of these (key None: any key).
    Query(Vec<(Option<Pattern>, Pattern)>),
    Method(Vec<String>),
    SourceIp(Vec<(IpAddr, u8)>),
}

impl Condition {
    /// None for a condition this proxy cannot read (a newer control plane's): such a route
    /// matches nothing rather than everything.
    pub fn parse(c: &berth_proto::v1::RouteCondition) -> Option<Self> {
        match c.field.as_str() {
            "http-header" => Some(Condition::Header(
                http::HeaderName::from_bytes(c.name.as_bytes()).ok()?,
                c.values.iter().map(|v| Pattern::host(v)).collect(),
            )),
            "query-string" => Some(Condition::Query(
                c.values
                    .iter()
                    .map(|v| {
                        let (k, v) = v.split_once('=').unwrap_or(("", v));
                        let key = (!k.is_empty()).then(|| Pattern::host(k));
                        (key, Pattern::host(v))
                    })
                    .collect(),
            )),
            "http-request-method" => Some(Condition::Method(c.values.clone())),
            "source-ip" => c
                .values
                .iter()
                .map(|v| {
                    let (ip, bits) = v.split_once('/')?;
                    Some((ip.parse().ok()?, bits.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()
                .map(Condition::SourceIp),
            _ => None,
        }
    }

    pub fn holds(&self, f: &Facts<'_>) -> bool {
        match self {
            Condition::Header(name, patterns) => f.headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| patterns.iter().any(|p| p.matches(v.trim())))
            }),
            Condition::Query(pairs) => f.query.split('&').any(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                pairs
                    .iter()
                    .any(|(pk, pv)| pk.as_ref().is_none_or(|pk| pk.matches(k)) && pv.matches(v))
            }),
            Condition::Method(methods) => methods.iter().any(|m| m == f.method.as_str()),
            Condition::SourceIp(blocks) => blocks
                .iter()
                .any(|(net, bits)| within(f.client, *net, *bits)),
        }
    }
}

/// Whether `ip` is in `net/bits` (an IPv4-mapped IPv6 client counts as IPv4).
fn within(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// What the proxy answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Redirect {
        status: StatusCode,
        protocol: String,
        host: String,
        port: String,
        path: String,
        query: String,
    },
    Fixed {
        status: StatusCode,
        content_type: String,
        body: Bytes,
    },
}

impl Answer {
    pub fn parse(a: &berth_proto::v1::RouteAnswer) -> Option<Self> {
        let status = StatusCode::from_u16(u16::try_from(a.status).ok()?).ok()?;
        match a.r#type.as_str() {
            "redirect" => Some(Answer::Redirect {
                status,
                protocol: a.protocol.clone(),
                host: a.host.clone(),
                port: a.port.clone(),
                path: a.path.clone(),
                query: a.query.clone(),
            }),
            "fixed-response" => Some(Answer::Fixed {
                status,
                content_type: a.content_type.clone(),
                body: Bytes::from(a.body.clone()),
            }),
            _ => None,
        }
    }

    /// The response to a request that reached the listener on `port` over `scheme` (http or
    /// https), asking for `host` (without its port) and `uri`.
    pub fn respond(&self, scheme: &str, host: &str, port: u16, uri: &Uri) -> Response<Full<Bytes>> {
        match self {
            Answer::Fixed {
                status,
                content_type,
                body,
            } => {
                let mut r = Response::new(Full::new(body.clone()));
                *r.status_mut() = *status;
                if let Ok(v) = HeaderValue::from_str(if content_type.is_empty() {
                    "text/plain; charset=utf-8"
                } else {
                    content_type
                }) {
                    r.headers_mut().insert(CONTENT_TYPE, v);
                }
                r
            }
            Answer::Redirect {
                status,
                protocol,
                host: to_host,
                port: to_port,
                path,
                query,
            } => {
                let path_now = uri.path().trim_start_matches('/');
                let query_now = uri.query().unwrap_or("");
                let port_now = port.to_string();
                let fill = |template: &str, default: &str| -> String {
                    let t = if template.is_empty() {
                        default
                    } else {
                        template
                    };
                    t.replace("#{protocol}", scheme)
                        .replace("#{host}", host)
                        .replace("#{port}", &port_now)
                        .replace("#{path}", path_now)
                        .replace("#{query}", query_now)
                };
                let scheme_to = fill(protocol, "#{protocol}").to_ascii_lowercase();
                let port_to = fill(to_port, "#{port}");
                let default_port = matches!(
                    (scheme_to.as_str(), port_to.as_str()),
                    ("http", "80") | ("https", "443")
                );
                let mut location = format!("{scheme_to}://{}", fill(to_host, "#{host}"));
                if !default_port {
                    location.push(':');
                    location.push_str(&port_to);
                }
                location.push_str(&fill(path, "/#{path}"));
                let q = fill(query, "#{query}");
                if !q.is_empty() {
                    location.push('?');
                    location.push_str(&q);
                }
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = *status;
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(LOCATION, v);
                }
                r
            }
        }
    }
}

/// `routing.http.drop_invalid_header_fields.enabled`: ALB keeps header names of letters, digits
/// and hyphens only.
pub(crate) fn drop_invalid_header_fields(headers: &mut HeaderMap) {
    let bad: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| {
            !n.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .cloned()
        .collect();
    for name in bad {
        headers.remove(name);
    }
}

/// The load balancer cookie's name, as ALB's.
pub(crate) const STICKY_COOKIE: &str = "AWSALB";

/// The cookie value naming a target: a hash of its service and key (the same on every proxy and
/// after restarts, and telling a client nothing of the address).
pub(crate) fn sticky_token(service_arn: &str, key: &crate::target::TargetKey) -> String {
    // FNV-1a: stable across processes, unlike std's randomly seeded hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        service_arn,
        &key.task_arn,
        &key.address,
        &key.port.to_string(),
    ] {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The AWSALB cookie's value in a request, if any.
pub(crate) fn sticky_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == STICKY_COOKIE).then_some(v)
        })
}

/// `Set-Cookie` pinning the client to `token` for `ttl`.
pub(crate) fn set_sticky_cookie(token: &str, ttl: std::time::Duration) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{STICKY_COOKIE}={token}; Max-Age={}; Path=/",
        ttl.as_secs()
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(protocol: &str, port: &str, path: &str) -> Answer {
        Answer::Redirect {
            status: StatusCode::MOVED_PERMANENTLY,
            protocol: protocol.into(),
            host: String::new(),
            port: port.into(),
            path: path.into(),
            query: String::new(),
        }
    }

    fn location(a: &Answer, uri: &str) -> String {
        let r = a.respond("http", "app.test", 8080, &uri.parse().unwrap());
        r.headers()[LOCATION].to_str().unwrap().to_string()
    }

    #[test]
    fn a_redirect_fills_its_templates_from_the_request() {
        let to_https = redirect("HTTPS", "443", "");
        assert_eq!(location(&to_https, "/a/b?x=1"), "https://app.test/a/b?x=1");
        assert_eq!(
            location(&redirect("", "", "/new/#{path}"), "/old"),
            "http://app.test:8080/new/old"
        );
        assert_eq!(
            location(&redirect("HTTPS", "8443", ""), "/"),
            "https://app.test:8443/"
        );
    }

    #[test]
    fn conditions_match_as_alb_does() {
        let h = |name: &str, v: &str| {
            let mut m = HeaderMap::new();
            m.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
            m
        };
        let c = Condition::parse(&berth_proto::v1::RouteCondition {
            field: "http-header".into(),
            name: "X-Version".into(),
            values: vec!["beta*".into()],
        })
        .unwrap();
        fn facts<'a>(headers: &'a HeaderMap, q: &'a str, ip: &str) -> Facts<'a> {
            Facts {
                headers,
                method: &Method::GET,
                query: q,
                client: ip.parse().unwrap(),
            }
        }
        let beta = h("x-version", "Beta-2");
        let other = h("x-version", "stable");
        assert!(c.holds(&facts(&beta, "", "10.0.0.1")));
        assert!(!c.holds(&facts(&other, "", "10.0.0.1")));
        let q = Condition::parse(&berth_proto::v1::RouteCondition {
            field: "query-string".into(),
            values: vec!["version=2".into(), "=debug".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(q.holds(&facts(&other, "a=1&version=2", "10.0.0.1")));
        assert!(q.holds(&facts(&other, "x=DEBUG", "10.0.0.1")));
        assert!(!q.holds(&facts(&other, "version=3", "10.0.0.1")));
        let ip = Condition::parse(&berth_proto::v1::RouteCondition {
            field: "source-ip".into(),
            values: vec!["10.1.0.0/16".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(ip.holds(&facts(&other, "", "10.1.200.3")));
        assert!(ip.holds(&facts(&other, "", "::ffff:10.1.0.9")));
        assert!(!ip.holds(&facts(&other, "", "10.2.0.1")));
    }
}

/// What a route adds to a rule beyond host, path and target groups: its other conditions, the
/// answer it gives itself, and how forwarded requests are dressed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edge {
    /// All must hold. A condition this proxy cannot read makes `unreadable` true.
    pub conditions: Vec<Condition>,
    pub unreadable: bool,
    pub answer: Option<Answer>,
    /// `X-Forwarded-Proto`: http or https, from the listener's protocol.
    pub scheme: &'static str,
    pub drop_invalid_header_fields: bool,
    pub xff: Xff,
    /// lb_cookie stickiness: how long an AWSALB cookie keeps a client on its target.
    pub sticky: Option<std::time::Duration>,
    /// The listener's connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
}

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Xff {
    #[default]
    Append,
    Preserve,
    Remove,
}

impl Edge {
    pub fn from_route(r: &berth_proto::v1::Route) -> Self {
        let parsed: Vec<Option<Condition>> = r.conditions.iter().map(Condition::parse).collect();
        Self {
            unreadable: parsed.iter().any(Option::is_none),
            conditions: parsed.into_iter().flatten().collect(),
            answer: r.answer.as_ref().and_then(Answer::parse),
            scheme: if r.listener_protocol.eq_ignore_ascii_case("HTTPS") {
                "https"
            } else {
                "http"
            },
            drop_invalid_header_fields: r.drop_invalid_header_fields,
            xff: match r.xff_mode.as_str() {
                "preserve" => Xff::Preserve,
                "remove" => Xff::Remove,
                _ => Xff::Append,
            },
            sticky: u64::try_from(r.stickiness_seconds)
                .ok()
                .filter(|s| *s > 0)
                .map(std::time::Duration::from_secs),
            proxy_protocol: r.accept_proxy_protocol,
        }
    }

    pub fn holds(&self, f: &Facts<'_>) -> bool {
        !self.unreadable && self.conditions.iter().all(|c| c.holds(f))
    }
}
