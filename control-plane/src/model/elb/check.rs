//! What ELBv2 requests carry, and their checks in ALB's ranges: every error names the request's
//! field as the ELBv2 API spells it (`HealthCheckIntervalSeconds`, `Conditions.member.1.Values`).

use crate::state::error::{quote, Error, Result};
use berth_core::limits::{HEALTH_PATH_CHARS, MATCHER_CHARS};
use berth_proto::v1::{ElbAction, ElbCondition, TargetHealthCheck};

/// Health check settings a request gave; the rest keep their defaults (or, on modify, their
/// current values).
#[derive(Debug, Clone, Default)]
pub struct HealthInput {
    pub path: Option<String>,
    pub interval_seconds: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub healthy_threshold: Option<i32>,
    pub unhealthy_threshold: Option<i32>,
    pub matcher: Option<String>,
    /// HTTP or TCP.
    pub protocol: Option<String>,
}

impl HealthInput {
    /// `base` with what this input sets.
    pub fn over(&self, base: &TargetHealthCheck) -> TargetHealthCheck {
        TargetHealthCheck {
            path: self.path.clone().unwrap_or_else(|| base.path.clone()),
            interval_seconds: self.interval_seconds.or(base.interval_seconds),
            timeout_seconds: self.timeout_seconds.or(base.timeout_seconds),
            healthy_threshold: self.healthy_threshold.or(base.healthy_threshold),
            unhealthy_threshold: self.unhealthy_threshold.or(base.unhealthy_threshold),
            matcher: self.matcher.clone().unwrap_or_else(|| base.matcher.clone()),
            protocol: self
                .protocol
                .clone()
                .unwrap_or_else(|| base.protocol.clone()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewTargetGroup {
    pub name: String,
    pub protocol: String,
    pub port: Option<i32>,
    pub target_type: String,
    pub vpc_id: String,
    pub health: HealthInput,
    pub deregistration_delay_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default)]
pub struct NewListener {
    pub load_balancer_arn: String,
    pub port: i32,
    pub protocol: String,
    pub default_actions: Vec<ElbAction>,
    /// HTTPS: `Certificates.member.N.CertificateArn`; the first is the default.
    pub certificates: Vec<String>,
    pub ssl_policy: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewRule {
    pub listener_arn: String,
    pub priority: i32,
    pub conditions: Vec<ElbCondition>,
    pub actions: Vec<ElbAction>,
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::elb("ValidationError", message)
}

/// Load balancer and target group names: 1-32 letters, digits and hyphens, no hyphen first or
/// last (ALB's rule).
pub(crate) fn name(field: &str, name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(invalid(format!(
            "{field}: {} must be 1-32 letters, digits and hyphens, not starting or ending with a hyphen",
            quote(name)
        )));
    }
    if name.starts_with("internal-") {
        return Err(invalid(format!(
            "{field}: {} must not start with \"internal-\"",
            quote(name)
        )));
    }
    Ok(())
}

pub(crate) fn port(field: &str, port: i32) -> Result<()> {
    if !(1..=65535).contains(&port) {
        return Err(invalid(format!("{field}: {port} must be 1-65535")));
    }
    Ok(())
}

/// Berth's proxy serves HTTP, and HTTPS with ACM certificates (`super::tls`).
pub(crate) fn protocol(field: &str, p: &str) -> Result<()> {
    match p {
        "HTTP" | "HTTPS" => Ok(()),
        other => Err(Error::elb(
            "UnsupportedProtocol",
            format!(
                "{field}: {} is not an application load balancer protocol; use HTTP or HTTPS",
                quote(other)
            ),
        )),
    }
}

/// A target group's protocol: HTTP (behind an application load balancer) or TCP (behind a
/// network one).
pub(crate) fn target_group_protocol(field: &str, p: &str) -> Result<()> {
    match p {
        "TCP" => Ok(()),
        "UDP" | "TLS" | "TCP_UDP" => Err(Error::elb(
            "UnsupportedProtocol",
            format!("{field}: {p} is not served by Berth's proxy; use TCP (network) or HTTP (application)"),
        )),
        other => protocol(field, other),
    }
}

/// HTTP listeners on application load balancers, TCP listeners on network ones.
pub(crate) fn listener_protocol(
    field: &str,
    lb: &berth_proto::v1::ElbLoadBalancer,
    p: &str,
) -> Result<()> {
    if super::is_network(lb) {
        return match p {
            "TCP" => Ok(()),
            other => Err(Error::elb(
                "UnsupportedProtocol",
                format!(
                    "{field}: {} is not a network load balancer protocol Berth serves; use TCP",
                    quote(other)
                ),
            )),
        };
    }
    match p {
        "TCP" => Err(Error::elb(
            "UnsupportedProtocol",
            format!("{field}: TCP listeners belong on a network load balancer (create-load-balancer --type network); use HTTP here"),
        )),
        other => protocol(field, other),
    }
}

/// How a target group's targets are checked: HTTP for HTTP target groups, TCP or HTTP for TCP
/// ones (NLB's choices that Berth serves).
pub(crate) fn health_protocol(tg_protocol: &str, p: &str) -> Result<()> {
    match (tg_protocol, p) {
        (_, "" | "HTTP") | ("TCP", "TCP") => Ok(()),
        ("TCP", other) => Err(invalid(format!(
            "HealthCheckProtocol: {} is not served for a TCP target group; use TCP or HTTP",
            quote(other)
        ))),
        (_, other) => Err(invalid(format!(
            "HealthCheckProtocol: {} is not served for an HTTP target group; use HTTP",
            quote(other)
        ))),
    }
}

/// Health check ranges: ALB's, except that the interval may go down to 1 s for fast feedback.
pub(crate) fn health(hc: &TargetHealthCheck) -> Result<()> {
    let interval = hc.interval_seconds.unwrap_or(5);
    let timeout = hc.timeout_seconds.unwrap_or(2);
    if !hc.path.starts_with('/')
        || HEALTH_PATH_CHARS
            .check(hc.path.chars().count() as i64)
            .is_err()
        || hc.path.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "HealthCheckPath: {} must start with / (at most 1024 characters, no control characters)",
            quote(&hc.path)
        )));
    }
    if !(1..=300).contains(&interval) {
        return Err(invalid(format!(
            "HealthCheckIntervalSeconds: {interval} must be 1-300"
        )));
    }
    if !(1..=120).contains(&timeout) || timeout > interval {
        return Err(invalid(format!(
            "HealthCheckTimeoutSeconds: {timeout} must be 1-120 and not more than HealthCheckIntervalSeconds ({interval})"
        )));
    }
    for (field, v) in [
        ("HealthyThresholdCount", hc.healthy_threshold.unwrap_or(2)),
        (
            "UnhealthyThresholdCount",
            hc.unhealthy_threshold.unwrap_or(2),
        ),
    ] {
        if !(1..=10).contains(&v) {
            return Err(invalid(format!("{field}: {v} must be 1-10")));
        }
    }
    if let Err(e) = MATCHER_CHARS.check(hc.matcher.chars().count() as i64) {
        return Err(invalid(format!("Matcher.HttpCode: {e}")));
    }
    if berth_core::lb::parse_matcher(&hc.matcher).is_none() {
        return Err(invalid(format!(
            "Matcher.HttpCode: {} must be codes or ranges of 200-599, e.g. 200 or 200-399",
            quote(&hc.matcher)
        )));
    }
    Ok(())
}

pub(crate) fn deregistration_delay(v: i32) -> Result<()> {
    if !(0..=3600).contains(&v) {
        return Err(invalid(format!(
            "deregistration_delay.timeout_seconds: {v} must be 0-3600"
        )));
    }
    Ok(())
}

pub(crate) fn priority(p: i32) -> Result<()> {
    if !(1..=50_000).contains(&p) {
        return Err(invalid(format!("Priority: {p} must be 1-50000")));
    }
    Ok(())
}
