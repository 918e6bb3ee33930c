//! Load balancer settings of a service: its container and port against the task definition,
//! ALB's rule and target group ranges, and health check matchers.

use crate::error::FieldError;
use crate::limits::{Bound, HEALTH_PATH_CHARS, MATCHER_CHARS};
use berth_proto::v1::{LoadBalancer, TaskDefinition};

pub fn check_load_balancers(errs: &mut Vec<FieldError>, lbs: &[LoadBalancer], td: &TaskDefinition) {
    for (i, lb) in lbs.iter().enumerate() {
        let Some(c) = td
            .container_definitions
            .iter()
            .find(|c| c.name == lb.container_name)
        else {
            errs.push(FieldError::new(
                format!("loadBalancers[{i}].containerName"),
                format!(
                    "{} is not a container of {}:{}",
                    crate::error::quote(&lb.container_name),
                    td.family,
                    td.revision
                ),
            ));
            continue;
        };
        if !c
            .port_mappings
            .iter()
            .any(|p| p.container_port == lb.container_port)
        {
            errs.push(FieldError::new(
                format!("loadBalancers[{i}].containerPort"),
                format!(
                    "container {} maps no port {}; add it to portMappings",
                    c.name, lb.container_port
                ),
            ));
        }
        if !lb.target_group_arn.is_empty() {
            // The target group's listeners, rules and health check apply (`crate::model::elb`).
            let own = lb.listener_port != 0
                || !lb.host_patterns.is_empty()
                || !lb.path_patterns.is_empty()
                || lb.health_check.is_some();
            if own {
                errs.push(FieldError::new(
                    format!("loadBalancers[{i}].targetGroupArn"),
                    "a service attached to a target group takes its listener, rules and health check from the target group; drop listenerPort, hostPatterns, pathPatterns and healthCheck",
                ));
            }
            continue;
        }
        crate::limits::LISTENER_PORT.push(
            errs,
            format!("loadBalancers[{i}].listenerPort"),
            lb.listener_port.into(),
        );
        check_lb_settings(errs, i, lb);
    }
}

/// Rules and target group settings, in ALB's ranges (the health interval may go down to 1 s).
fn check_lb_settings(errs: &mut Vec<FieldError>, i: usize, lb: &LoadBalancer) {
    let p = |f: &str| format!("loadBalancers[{i}].{f}");
    for (j, h) in lb.host_patterns.iter().enumerate() {
        let ok = !h.is_empty()
            && h.len() <= 128
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.*?".contains(c));
        if !ok {
            errs.push(FieldError::new(
                p(&format!("hostPatterns[{j}]")),
                format!(
                    "{} must be a host name with optional * and ? wildcards, e.g. *.example.com",
                    crate::error::quote(h)
                ),
            ));
        }
    }
    for (j, path) in lb.path_patterns.iter().enumerate() {
        if !path.starts_with('/') || path.len() > 128 || path.chars().any(char::is_whitespace) {
            errs.push(FieldError::new(
                p(&format!("pathPatterns[{j}]")),
                format!(
                    "{} must start with / (wildcards * and ?), e.g. /api/*",
                    crate::error::quote(path)
                ),
            ));
        }
    }
    Bound::new(0, 50_000, "").push(errs, p("priority"), lb.priority.into());
    if !matches!(
        lb.algorithm.as_str(),
        "" | "round_robin" | "least_outstanding"
    ) {
        errs.push(FieldError::new(
            p("algorithm"),
            format!(
                "{} must be round_robin or least_outstanding",
                crate::error::quote(&lb.algorithm)
            ),
        ));
    }
    if let Some(d) = lb.drain_timeout_seconds {
        Bound::new(0, 3600, " seconds").push(errs, p("drainTimeoutSeconds"), d.into());
    }
    let hc = crate::lb::health_check_with_defaults(lb.health_check.as_ref());
    let interval = hc.interval_seconds.unwrap_or(5);
    let timeout = hc.timeout_seconds.unwrap_or(2);
    if let Err(e) = HEALTH_PATH_CHARS.check(hc.path.chars().count() as i64) {
        errs.push(FieldError::new(p("healthCheck.path"), e));
    } else if !hc.path.starts_with('/') || hc.path.chars().any(char::is_control) {
        errs.push(FieldError::new(
            p("healthCheck.path"),
            format!(
                "{} must start with / and hold no control characters",
                crate::error::quote(&hc.path)
            ),
        ));
    }
    let seconds = |max| Bound::new(1, max, " seconds");
    seconds(300).push(errs, p("healthCheck.intervalSeconds"), interval.into());
    if let Err(e) = seconds(120.min(interval.into())).check(timeout.into()) {
        errs.push(FieldError::new(
            p("healthCheck.timeoutSeconds"),
            format!("{e} (at most 120, and not more than the interval of {interval} seconds)"),
        ));
    }
    for (f, v) in [
        ("healthyThreshold", hc.healthy_threshold.unwrap_or(2)),
        ("unhealthyThreshold", hc.unhealthy_threshold.unwrap_or(2)),
    ] {
        Bound::new(1, 10, "").push(errs, p(&format!("healthCheck.{f}")), v.into());
    }
    if let Err(e) = MATCHER_CHARS.check(hc.matcher.chars().count() as i64) {
        errs.push(FieldError::new(p("healthCheck.matcher"), e));
    } else if crate::lb::parse_matcher(&hc.matcher).is_none() {
        errs.push(FieldError::new(
            p("healthCheck.matcher"),
            format!(
                "{} must be codes or ranges of 200-599, e.g. 200-399 or 200,204",
                crate::error::quote(&hc.matcher)
            ),
        ));
    }
}
