//! What ELBv2 requests carry, and their checks in ALB's ranges: every error names the request's
//! field as the ELBv2 API spells it (`HealthCheckIntervalSeconds`, `Conditions.member.1.Values`).

use crate::state::error::{quote, Error, Result};
use berth_core::limits::{ElbQuotas, HEALTH_PATH_CHARS, MATCHER_CHARS};
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

/// Berth's proxy serves plain HTTP.
pub(crate) fn protocol(field: &str, p: &str) -> Result<()> {
    match p {
        "HTTP" => Ok(()),
        "HTTPS" => Err(Error::elb(
            "UnsupportedProtocol",
            format!("{field}: HTTPS needs certificates Berth's proxy does not hold; use HTTP"),
        )),
        other => Err(Error::elb(
            "UnsupportedProtocol",
            format!(
                "{field}: {} is not an application load balancer protocol; use HTTP",
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

/// One forward action, to 1-5 target groups (the quota) each named once, with weights 0-999
/// (not all 0) and an `Order` of 1-50000 when given. `field` is the request's name for the list
/// (`DefaultActions`, `Actions`).
pub(crate) fn actions(field: &str, actions: &[ElbAction], quotas: &ElbQuotas) -> Result<()> {
    let [action] = actions else {
        return Err(invalid(format!(
            "{field}: give exactly one action (Type=forward); got {}",
            actions.len()
        )));
    };
    let at = format!("{field}.member.1");
    if action.r#type != "forward" {
        return Err(Error::elb(
            "InvalidLoadBalancerAction",
            format!(
                "{at}.Type: {} is not served by Berth's proxy; use forward",
                quote(&action.r#type)
            ),
        ));
    }
    if action.target_groups.is_empty() {
        return Err(invalid(format!(
            "{at}: a forward action needs TargetGroupArn or ForwardConfig.TargetGroups"
        )));
    }
    if action.order != 0 {
        order(&format!("{at}.Order"), action.order)?;
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
    Ok(())
}

/// An action's `Order`, in ELBv2's range.
pub(crate) fn order(at: &str, order: i32) -> Result<()> {
    if !(1..=50_000).contains(&order) {
        return Err(invalid(format!("{at}: {order} must be 1-50000")));
    }
    Ok(())
}

/// 1-5 conditions, host-header and path-pattern at most once each, with 1-5 values in all (the
/// quota of condition values per rule).
pub(crate) fn conditions(conditions: &[ElbCondition], quotas: &ElbQuotas) -> Result<()> {
    if conditions.is_empty() {
        return Err(invalid(
            "Conditions: a rule needs a host-header or path-pattern condition (the listener's default actions take everything else)",
        ));
    }
    let mut seen = Vec::new();
    let mut values = 0;
    for (i, c) in conditions.iter().enumerate() {
        let at = format!("Conditions.member.{}", i + 1);
        if !matches!(c.field.as_str(), "host-header" | "path-pattern") {
            return Err(invalid(format!(
                "{at}.Field: {} is not served by Berth's proxy; use host-header or path-pattern",
                quote(&c.field)
            )));
        }
        if seen.contains(&c.field) {
            return Err(invalid(format!(
                "{at}.Field: {} is given twice; put every value in one condition",
                c.field
            )));
        }
        seen.push(c.field.clone());
        if c.values.is_empty() {
            return Err(invalid(format!("{at}.Values: give at least one value")));
        }
        values += c.values.len();
        for (j, v) in c.values.iter().enumerate() {
            value(&format!("{at}.Values.member.{}", j + 1), &c.field, v)?;
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

fn value(at: &str, field: &str, v: &str) -> Result<()> {
    let ok = if field == "host-header" {
        !v.is_empty()
            && v.len() <= 128
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.*?".contains(c))
    } else {
        v.starts_with('/')
            && v.len() <= 128
            && !v.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if ok {
        return Ok(());
    }
    let how = if field == "host-header" {
        "a host name with optional * and ? wildcards, e.g. *.example.com"
    } else {
        "a path starting with / (wildcards * and ?; no spaces or control characters), at most 128 characters, e.g. /api/*"
    };
    Err(invalid(format!("{at}: {} must be {how}", quote(v))))
}

pub(crate) fn priority(p: i32) -> Result<()> {
    if !(1..=50_000).contains(&p) {
        return Err(invalid(format!("Priority: {p} must be 1-50000")));
    }
    Ok(())
}
