//! A service's deployment strategy and its settings, checked: ECS's names and ranges for
//! BLUE_GREEN, CANARY and LINEAR, the rollback thresholds, the test header and the lifecycle
//! hooks; and what an update that names no strategy keeps.

use crate::error::{quote, FieldError};
use crate::limits::{HOOK_DETAILS_CHARS, HOOK_URL_CHARS};
use berth_proto::v1::{DeploymentConfiguration, DeploymentLifecycleHook, Service};

/// An update that names no strategy keeps the service's, with its settings; one that does
/// brings its own (unset parts take ECS's defaults).
pub fn keep_unset_shift_settings(dc: &mut DeploymentConfiguration, cur: &DeploymentConfiguration) {
    if dc.strategy.is_empty() {
        dc.strategy = cur.strategy.clone();
        dc.bake_time_in_minutes = cur.bake_time_in_minutes;
        dc.bake_time_seconds = cur.bake_time_seconds;
        dc.canary_configuration = dc.canary_configuration.or(cur.canary_configuration);
        dc.linear_configuration = dc.linear_configuration.or(cur.linear_configuration);
    }
    dc.traffic_rollback = dc.traffic_rollback.or(cur.traffic_rollback);
    if dc.test_traffic_header.is_empty() {
        dc.test_traffic_header = cur.test_traffic_header.clone();
    }
    if dc.lifecycle_hooks.is_empty() {
        dc.lifecycle_hooks = cur.lifecycle_hooks.clone();
    }
}

const FIELD: &str = "deploymentConfiguration";

/// The deployment strategy and its settings: ECS's names and ranges; shifting traffic needs a
/// load balancer (the proxies are what shift it) and a REPLICA service.
pub fn check_strategy(errs: &mut Vec<FieldError>, svc: &Service) {
    let Some(dc) = svc.deployment_configuration.as_ref() else {
        return;
    };
    let shifting = match dc.strategy.as_str() {
        "" | "ROLLING" => false,
        "BLUE_GREEN" | "CANARY" | "LINEAR" => true,
        other => {
            errs.push(FieldError::new(
                format!("{FIELD}.strategy"),
                format!(
                    "{} must be ROLLING, BLUE_GREEN, CANARY or LINEAR",
                    quote(other)
                ),
            ));
            return;
        }
    };
    bake(
        errs,
        "bakeTimeInMinutes",
        dc.bake_time_in_minutes,
        dc.bake_time_seconds,
    );
    check_steps(errs, dc);
    check_rollback(errs, dc);
    check_test_header(errs, dc);
    check_hooks(errs, dc, shifting);
    if shifting {
        check_shiftable(errs, svc, dc);
    }
}

/// `deploymentConfiguration.PATH` within lo..=hi.
fn range(errs: &mut Vec<FieldError>, path: &str, v: f64, lo: f64, hi: f64) {
    if !(lo..=hi).contains(&v) {
        errs.push(FieldError::new(
            format!("{FIELD}.{path}"),
            format!("{v} must be {lo}-{hi}"),
        ));
    }
}

/// A bake time: ECS's minutes (0-1440), and Berth's seconds when given (0-86400).
fn bake(errs: &mut Vec<FieldError>, path: &str, minutes: i32, seconds: Option<i32>) {
    range(errs, path, f64::from(minutes), 0.0, 1440.0);
    if let Some(s) = seconds {
        range(
            errs,
            &format!("{path} (seconds)"),
            f64::from(s),
            0.0,
            86_400.0,
        );
    }
}

/// CANARY and LINEAR need their configuration, within ECS's ranges.
fn check_steps(errs: &mut Vec<FieldError>, dc: &DeploymentConfiguration) {
    match dc.strategy.as_str() {
        "CANARY" => match dc.canary_configuration {
            None => errs.push(FieldError::new(
                format!("{FIELD}.canaryConfiguration"),
                "is required with strategy CANARY (canaryPercent, canaryBakeTimeInMinutes)",
            )),
            Some(c) => {
                range(
                    errs,
                    "canaryConfiguration.canaryPercent",
                    c.canary_percent,
                    0.1,
                    100.0,
                );
                bake(
                    errs,
                    "canaryConfiguration.canaryBakeTimeInMinutes",
                    c.canary_bake_time_in_minutes,
                    c.canary_bake_time_seconds,
                );
            }
        },
        "LINEAR" => match dc.linear_configuration {
            None => errs.push(FieldError::new(
                format!("{FIELD}.linearConfiguration"),
                "is required with strategy LINEAR (stepPercent, stepBakeTimeInMinutes)",
            )),
            Some(l) => {
                range(
                    errs,
                    "linearConfiguration.stepPercent",
                    l.step_percent,
                    3.0,
                    100.0,
                );
                bake(
                    errs,
                    "linearConfiguration.stepBakeTimeInMinutes",
                    l.step_bake_time_in_minutes,
                    l.step_bake_time_seconds,
                );
            }
        },
        _ => {}
    }
}

fn check_rollback(errs: &mut Vec<FieldError>, dc: &DeploymentConfiguration) {
    let Some(r) = dc.traffic_rollback else {
        return;
    };
    range(
        errs,
        "trafficRollback.errorPercent",
        r.error_percent,
        0.0,
        100.0,
    );
    range(errs, "trafficRollback.p99Ratio", r.p99_ratio, 0.0, 1000.0);
    range(
        errs,
        "trafficRollback.minRequests",
        f64::from(r.min_requests),
        0.0,
        1e9,
    );
}

/// "name" or "name: value", with a name HTTP allows.
fn check_test_header(errs: &mut Vec<FieldError>, dc: &DeploymentConfiguration) {
    let header = dc.test_traffic_header.trim();
    if header.is_empty() {
        return;
    }
    let name = header.split_once(':').map_or(header, |(n, _)| n).trim();
    if name.is_empty() || http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        errs.push(FieldError::new(
            format!("{FIELD}.testTrafficHeader"),
            format!(
                "{} is not a header; give \"name\" or \"name: value\"",
                quote(header)
            ),
        ));
    }
}

/// Shifting traffic takes a REPLICA service behind a load balancer.
fn check_shiftable(errs: &mut Vec<FieldError>, svc: &Service, dc: &DeploymentConfiguration) {
    if svc.scheduling_strategy == "DAEMON" {
        errs.push(FieldError::new(
            format!("{FIELD}.strategy"),
            "a DAEMON service deploys ROLLING only (there is one task per node to shift between)",
        ));
    } else if svc.load_balancers.is_empty() && !super::connect_routes::routed(svc) {
        errs.push(FieldError::new(
            format!("{FIELD}.strategy"),
            format!(
                "{} shifts traffic through a load balancer or Service Connect aliases; give the service one (--lb-port, a target group, or serviceConnectConfiguration services) or deploy ROLLING",
                dc.strategy
            ),
        ));
    }
}

/// Whether a URL's authority has userinfo (`http://user:pass@host/`).
fn has_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .is_some_and(|authority| authority.contains('@'))
}

/// Lifecycle hooks: http:// webhooks at ECS's stages, with a shifting strategy.
fn check_hooks(errs: &mut Vec<FieldError>, dc: &DeploymentConfiguration, shifting: bool) {
    use crate::plan::shift::HOOK_STAGES;
    const MAX_HOOKS: usize = 10;
    if dc.lifecycle_hooks.len() > MAX_HOOKS {
        errs.push(FieldError::new(
            "deploymentConfiguration.lifecycleHooks",
            format!("at most {MAX_HOOKS} hooks"),
        ));
    }
    if !dc.lifecycle_hooks.is_empty() && !shifting {
        errs.push(FieldError::new(
            "deploymentConfiguration.lifecycleHooks",
            "hooks run at the stages of a BLUE_GREEN, CANARY or LINEAR deployment; set strategy too",
        ));
    }
    for (i, h) in dc.lifecycle_hooks.iter().enumerate() {
        let at = |f: &str| format!("deploymentConfiguration.lifecycleHooks[{i}].{f}");
        if !matches!(h.target_type.as_str(), "" | "HTTP" | "AWS_LAMBDA" | "PAUSE") {
            errs.push(FieldError::new(
                at("targetType"),
                format!(
                    "{} is not supported: PAUSE, or leave it out for an HTTP webhook",
                    quote(&h.target_type)
                ),
            ));
        }
        if !matches!(h.timeout_action.as_str(), "" | "CONTINUE" | "ROLLBACK") {
            errs.push(FieldError::new(
                at("timeoutConfiguration.action"),
                format!("{} must be CONTINUE or ROLLBACK", quote(&h.timeout_action)),
            ));
        }
        if !(0..=crate::plan::pause::DEFAULT_TIMEOUT_MINUTES).contains(&h.timeout_in_minutes) {
            errs.push(FieldError::new(
                at("timeoutConfiguration.timeoutInMinutes"),
                format!(
                    "{} must be 1 to {} minutes",
                    h.timeout_in_minutes,
                    crate::plan::pause::DEFAULT_TIMEOUT_MINUTES
                ),
            ));
        }
        if crate::plan::pause::is_pause(h) {
            check_pause(errs, h, &at);
            continue;
        }
        let url = h.hook_target_arn.trim();
        let ok = url
            .parse::<http::Uri>()
            .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
        if let Err(e) = HOOK_URL_CHARS.check(url.chars().count() as i64) {
            errs.push(FieldError::new(at("hookTargetArn"), e));
        } else if has_credentials(url) {
            // Not quoted: the reply must not carry the credentials back.
            errs.push(FieldError::new(
                at("hookTargetArn"),
                "carries credentials (user:password@); Berth stores and shows hook URLs, so give the webhook a URL without them",
            ));
        } else if !ok {
            errs.push(FieldError::new(
                at("hookTargetArn"),
                format!(
                    "{} is not an http:// URL; Berth POSTs the stage to a webhook (where ECS calls a Lambda function)",
                    quote(url)
                ),
            ));
        }
        if h.lifecycle_stages.is_empty() {
            errs.push(FieldError::new(
                at("lifecycleStages"),
                format!("name at least one of {}", HOOK_STAGES.join(", ")),
            ));
        }
        for (k, stage) in h.lifecycle_stages.iter().enumerate() {
            if !HOOK_STAGES.contains(&stage.as_str()) {
                errs.push(FieldError::new(
                    at(&format!("lifecycleStages[{k}]")),
                    format!("{} must be one of {}", quote(stage), HOOK_STAGES.join(", ")),
                ));
            }
        }
        if let Err(e) = HOOK_DETAILS_CHARS.check(h.hook_details.chars().count() as i64) {
            errs.push(FieldError::new(at("hookDetails"), e));
        } else if !h.hook_details.is_empty()
            && serde_json::from_str::<serde_json::Value>(&h.hook_details).is_err()
        {
            errs.push(FieldError::new(at("hookDetails"), "must be JSON"));
        }
    }
}

/// A PAUSE hook has no target, and ECS refuses it at the two traffic-moving stages.
fn check_pause(
    errs: &mut Vec<FieldError>,
    h: &DeploymentLifecycleHook,
    at: &dyn Fn(&str) -> String,
) {
    use crate::plan::shift::{HOOK_STAGES, PRODUCTION_TRAFFIC_SHIFT, TEST_TRAFFIC_SHIFT};
    if !h.hook_target_arn.trim().is_empty() {
        errs.push(FieldError::new(
            at("hookTargetArn"),
            "a PAUSE hook has no target; leave hookTargetArn out",
        ));
    }
    if h.lifecycle_stages.is_empty() {
        errs.push(FieldError::new(
            at("lifecycleStages"),
            format!("name at least one of {}", HOOK_STAGES.join(", ")),
        ));
    }
    for (k, stage) in h.lifecycle_stages.iter().enumerate() {
        if stage == TEST_TRAFFIC_SHIFT || stage == PRODUCTION_TRAFFIC_SHIFT {
            errs.push(FieldError::new(
                at(&format!("lifecycleStages[{k}]")),
                format!("PAUSE hooks cannot run at {stage}; pause at the stage before or after it"),
            ));
        } else if !HOOK_STAGES.contains(&stage.as_str()) {
            errs.push(FieldError::new(
                at(&format!("lifecycleStages[{k}]")),
                format!("{} must be one of {}", quote(stage), HOOK_STAGES.join(", ")),
            ));
        }
    }
}
