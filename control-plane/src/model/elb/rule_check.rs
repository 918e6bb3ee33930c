//! The checks of a rule's actions and conditions, in ALB's ranges and botocore's patterns: one
//! terminal action (forward, redirect or fixed-response) and 1-5 conditions of the six ALB kinds.
//! Every error names the request's field (`Actions.member.1.RedirectConfig.StatusCode`).

use super::check::invalid;
use crate::state::error::{quote, Error, Result};
use berth_core::limits::ElbQuotas;
use berth_proto::v1::{ElbAction, ElbCondition, ElbFixedResponse, ElbRedirect};

/// The content types a fixed response may declare (ALB's list).
const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

/// The parts of a request a redirect's templates may name.
const TEMPLATES: &[&str] = &["protocol", "host", "port", "path", "query"];

fn unsupported(at: &str, what: &str) -> Error {
    Error::elb(
        "InvalidLoadBalancerAction",
        format!(
            "{at}.Type: {} is not served by Berth's proxy; use forward, redirect or fixed-response",
            quote(what)
        ),
    )
}

/// Exactly one action: forward, redirect or fixed-response (authenticate actions are not
/// served). `field` is the request's name for the list (`DefaultActions`, `Actions`).
pub(crate) fn actions(field: &str, actions: &[ElbAction], quotas: &ElbQuotas) -> Result<()> {
    let [action] = actions else {
        return Err(invalid(format!(
            "{field}: give exactly one action (Type=forward, redirect or fixed-response); got {}",
            actions.len()
        )));
    };
    let at = format!("{field}.member.1");
    if action.order != 0 {
        order(&format!("{at}.Order"), action.order)?;
    }
    let extra = |config: &str| {
        Error::elb(
            "InvalidLoadBalancerAction",
            format!(
                "{at}.{config}: not allowed on a {} action; remove it or change Type",
                action.r#type
            ),
        )
    };
    match action.r#type.as_str() {
        "forward" => {
            if action.redirect.is_some() {
                return Err(extra("RedirectConfig"));
            }
            if action.fixed_response.is_some() {
                return Err(extra("FixedResponseConfig"));
            }
            forward(&at, action, quotas)
        }
        "redirect" => {
            if !action.target_groups.is_empty() {
                return Err(extra("TargetGroupArn"));
            }
            if action.fixed_response.is_some() {
                return Err(extra("FixedResponseConfig"));
            }
            let r = action.redirect.as_ref().ok_or_else(|| {
                invalid(format!(
                    "{at}.RedirectConfig: a redirect action needs RedirectConfig (StatusCode=HTTP_301 or HTTP_302)"
                ))
            })?;
            redirect(&format!("{at}.RedirectConfig"), r)
        }
        "fixed-response" => {
            if !action.target_groups.is_empty() {
                return Err(extra("TargetGroupArn"));
            }
            if action.redirect.is_some() {
                return Err(extra("RedirectConfig"));
            }
            let f = action.fixed_response.as_ref().ok_or_else(|| {
                invalid(format!(
                    "{at}.FixedResponseConfig: a fixed-response action needs FixedResponseConfig (StatusCode, e.g. 200)"
                ))
            })?;
            fixed_response(&format!("{at}.FixedResponseConfig"), f)
        }
        other => Err(unsupported(&at, other)),
    }
}

/// One forward action, to 1-5 target groups (the quota) each named once, with weights 0-999
/// (not all 0), and a stickiness duration of 1-604800 s when stickiness is on.
fn forward(at: &str, action: &ElbAction, quotas: &ElbQuotas) -> Result<()> {
    if action.target_groups.is_empty() {
        return Err(invalid(format!(
            "{at}: a forward action needs TargetGroupArn or ForwardConfig.TargetGroups"
        )));
    }
    let most = quotas.target_groups_per_action;
    if action.target_groups.len() > most {
        return Err(Error::elb(
            "TooManyTargetGroups",
            format!(
                "{at}.ForwardConfig.TargetGroups: {} target groups; the quota of target groups per action is {most}",
                action.target_groups.len()
            ),
        ));
    }
    for (i, t) in action.target_groups.iter().enumerate() {
        let earlier = action.target_groups[..i]
            .iter()
            .position(|e| e.target_group_arn == t.target_group_arn);
        if let Some(j) = earlier {
            return Err(invalid(format!(
                "{at}.ForwardConfig.TargetGroups.member.{}.TargetGroupArn: {} is member.{} already; name each target group once",
                i + 1,
                quote(&t.target_group_arn),
                j + 1
            )));
        }
        if !(0..=999).contains(&t.weight) {
            return Err(invalid(format!(
                "{at}.ForwardConfig.TargetGroups.member.{}.Weight: {} must be 0-999",
                i + 1,
                t.weight
            )));
        }
    }
    if action.target_groups.iter().all(|t| t.weight == 0) {
        return Err(invalid(format!(
            "{at}.ForwardConfig.TargetGroups: at least one weight must be above 0"
        )));
    }
    if action.group_stickiness && !(1..=604_800).contains(&action.group_stickiness_seconds) {
        return Err(invalid(format!(
            "{at}.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds: {} must be 1-604800 when stickiness is enabled",
            action.group_stickiness_seconds
        )));
    }
    Ok(())
}

/// Every `#{…}` in `v` is one of the five templates.
fn templates(at: &str, v: &str) -> Result<()> {
    let mut rest = v;
    while let Some(i) = rest.find("#{") {
        let tail = &rest[i + 2..];
        let Some(end) = tail.find('}') else {
            return Err(invalid(format!(
                "{at}: {} opens #{{ without closing it",
                quote(v)
            )));
        };
        let name = &tail[..end];
        if !TEMPLATES.contains(&name) {
            return Err(invalid(format!(
                "{at}: #{{{name}}} is not a template; use #{{protocol}}, #{{host}}, #{{port}}, #{{path}} or #{{query}}"
            )));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

fn redirect(at: &str, r: &ElbRedirect) -> Result<()> {
    if !matches!(r.status_code.as_str(), "HTTP_301" | "HTTP_302") {
        return Err(invalid(format!(
            "{at}.StatusCode: {} must be HTTP_301 or HTTP_302",
            quote(&r.status_code)
        )));
    }
    if !matches!(r.protocol.as_str(), "" | "HTTP" | "HTTPS" | "#{protocol}") {
        return Err(invalid(format!(
            "{at}.Protocol: {} must be HTTP, HTTPS or #{{protocol}}",
            quote(&r.protocol)
        )));
    }
    let port_ok = r.port.is_empty()
        || r.port == "#{port}"
        || r.port
            .parse::<u32>()
            .is_ok_and(|p| (1..=65535).contains(&p));
    if !port_ok {
        return Err(invalid(format!(
            "{at}.Port: {} must be 1-65535 or #{{port}}",
            quote(&r.port)
        )));
    }
    let text = |name: &str, v: &str, min: usize| -> Result<()> {
        let f = format!("{at}.{name}");
        if v.chars().count() < min || v.chars().count() > 128 || v.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{f}: {} must be {min}-128 characters, no control characters",
                quote(v)
            )));
        }
        templates(&f, v)
    };
    if !r.host.is_empty() {
        text("Host", &r.host, 1)?;
    }
    if !r.path.is_empty() {
        text("Path", &r.path, 1)?;
        if !r.path.starts_with('/') {
            return Err(invalid(format!(
                "{at}.Path: {} must start with / (e.g. /#{{path}})",
                quote(&r.path)
            )));
        }
    }
    text("Query", &r.query, 0)?;
    if r.query.starts_with('?') {
        return Err(invalid(format!(
            "{at}.Query: {} must not start with ?; give what follows it",
            quote(&r.query)
        )));
    }
    let keeps = |v: &str, t: &str| v.is_empty() || v == t;
    if keeps(&r.protocol, "#{protocol}")
        && keeps(&r.port, "#{port}")
        && keeps(&r.host, "#{host}")
        && keeps(&r.path, "/#{path}")
        && keeps(&r.query, "#{query}")
    {
        return Err(invalid(format!(
            "{at}: the redirect would send the client back to the same URL; change Protocol, Port, Host, Path or Query"
        )));
    }
    Ok(())
}

fn fixed_response(at: &str, f: &ElbFixedResponse) -> Result<()> {
    let code = f.status_code.as_bytes();
    if !(code.len() == 3 && b"245".contains(&code[0]) && code.iter().all(u8::is_ascii_digit)) {
        return Err(invalid(format!(
            "{at}.StatusCode: {} must be a 2XX, 4XX or 5XX code, e.g. 200 or 503",
            quote(&f.status_code)
        )));
    }
    if !f.content_type.is_empty() && !CONTENT_TYPES.contains(&f.content_type.as_str()) {
        return Err(invalid(format!(
            "{at}.ContentType: {} must be one of {}",
            quote(&f.content_type),
            CONTENT_TYPES.join(", ")
        )));
    }
    if f.message_body.len() > 1024 {
        return Err(invalid(format!(
            "{at}.MessageBody: {} bytes; at most 1024",
            f.message_body.len()
        )));
    }
    Ok(())
}

/// An action's `Order`, in ELBv2's range.
pub(crate) fn order(at: &str, order: i32) -> Result<()> {
    if !(1..=50_000).contains(&order) {
        return Err(invalid(format!("{at}: {order} must be 1-50000")));
    }
    Ok(())
}

/// The kinds a rule may hold once; http-header and query-string may repeat.
const ONCE: &[&str] = &[
    "host-header",
    "path-pattern",
    "http-request-method",
    "source-ip",
];

/// 1-5 conditions of ALB's kinds, with 1-5 values in all (the quota of condition values per
/// rule).
pub(crate) fn conditions(conditions: &[ElbCondition], quotas: &ElbQuotas) -> Result<()> {
    if conditions.is_empty() {
        return Err(invalid(
            "Conditions: a rule needs at least one condition (the listener's default actions take everything else)",
        ));
    }
    let mut seen = Vec::new();
    let mut values = 0;
    for (i, c) in conditions.iter().enumerate() {
        let at = format!("Conditions.member.{}", i + 1);
        let kinds = [
            "host-header",
            "path-pattern",
            "http-header",
            "query-string",
            "http-request-method",
            "source-ip",
        ];
        if !kinds.contains(&c.field.as_str()) {
            return Err(invalid(format!(
                "{at}.Field: {} is not a condition; use one of {}",
                quote(&c.field),
                kinds.join(", ")
            )));
        }
        if ONCE.contains(&c.field.as_str()) && seen.contains(&c.field) {
            return Err(invalid(format!(
                "{at}.Field: {} is given twice; put every value in one condition",
                c.field
            )));
        }
        seen.push(c.field.clone());
        if c.field == "http-header" {
            header_name(
                &format!("{at}.HttpHeaderConfig.HttpHeaderName"),
                &c.header_name,
            )?;
        }
        if c.values.is_empty() {
            return Err(invalid(format!("{at}.Values: give at least one value")));
        }
        values += c.values.len();
        for (j, v) in c.values.iter().enumerate() {
            let at = match c.field.as_str() {
                "http-header" => format!("{at}.HttpHeaderConfig.Values.member.{}", j + 1),
                "query-string" => format!("{at}.QueryStringConfig.Values.member.{}", j + 1),
                "http-request-method" => {
                    format!("{at}.HttpRequestMethodConfig.Values.member.{}", j + 1)
                }
                "source-ip" => format!("{at}.SourceIpConfig.Values.member.{}", j + 1),
                _ => format!("{at}.Values.member.{}", j + 1),
            };
            value(&at, &c.field, v)?;
        }
    }
    let most = quotas.condition_values_per_rule;
    if values > most {
        return Err(invalid(format!(
            "Conditions: {values} values; the quota of condition values per rule is {most}"
        )));
    }
    Ok(())
}

/// An RFC 9110 token of at most 40 characters, not Host (host-header covers it).
fn header_name(at: &str, name: &str) -> Result<()> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 40 || !name.chars().all(token) {
        return Err(invalid(format!(
            "{at}: {} must be a header name of 1-40 letters, digits and !#$%&'*+-.^_`|~, e.g. X-Version",
            quote(name)
        )));
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(invalid(format!(
            "{at}: Host is matched by a host-header condition; use Field=host-header"
        )));
    }
    Ok(())
}

fn value(at: &str, field: &str, v: &str) -> Result<()> {
    let short = !v.is_empty() && v.chars().count() <= 128 && !v.chars().any(char::is_control);
    let (ok, how) = match field {
        "host-header" => (
            short && v.chars().all(|c| c.is_ascii_alphanumeric() || "-.*?".contains(c)),
            "a host name with optional * and ? wildcards, e.g. *.example.com",
        ),
        "path-pattern" => (
            short && v.starts_with('/') && !v.chars().any(char::is_whitespace),
            "a path starting with / (wildcards * and ?; no spaces or control characters), at most 128 characters, e.g. /api/*",
        ),
        "http-header" => (short, "1-128 characters (wildcards * and ?), e.g. beta*"),
        "query-string" => (
            short && v.split_once('=').is_some_and(|(_, value)| !value.is_empty()),
            "a Value (with an optional Key) of at most 128 characters, e.g. Key=version,Value=2",
        ),
        "http-request-method" => (
            short
                && v.len() <= 40
                && v.chars().all(|c| c.is_ascii_uppercase() || c == '-' || c == '_'),
            "a method name of A-Z, - and _ (at most 40 characters), e.g. GET",
        ),
        _ => (
            cidr(v),
            "a CIDR block, e.g. 192.0.2.0/24 or 2001:db8::/32",
        ),
    };
    if ok {
        return Ok(());
    }
    Err(invalid(format!("{at}: {} must be {how}", quote(v))))
}

/// `ADDRESS/BITS` with BITS within the address family's length.
pub(crate) fn cidr(v: &str) -> bool {
    let Some((ip, bits)) = v.split_once('/') else {
        return false;
    };
    match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
        _ => false,
    }
}
