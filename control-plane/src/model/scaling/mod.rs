//! Target-tracking auto scaling of a service's desired count, as ECS Application Auto Scaling
//! does it: the policy (stored on the service), its validation, and the pure decision
//! `desired = ceil(metric total / target)` clamped to [min, max], fast out, slow in. The
//! controller's resync runs `control::controller::scaling::evaluate`, which gathers the metrics
//! and commits what it decides.

use crate::model::services::{self, push_event};
use crate::state::error::{Error, FieldError, Result};
use crate::state::{put, State};
use berth_core::limits::Bound;
use berth_proto::v1::{PutScalingPolicyRequest, ScalingPolicy, Service};

/// Berth's default cooldowns: scale out soon after the last action, scale in only after a
/// longer quiet spell, so a brief dip in traffic does not remove tasks that are needed again.
pub const DEFAULT_SCALE_OUT_COOLDOWN_S: i32 = 30;
pub const DEFAULT_SCALE_IN_COOLDOWN_S: i32 = 120;
/// The largest desired count a policy may reach.
pub const MAX_CAPACITY: i32 = 1000;

/// Every problem with a policy, each with its field.
pub fn validate(p: &ScalingPolicy) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let capacity =
        |min| Bound::new(min, MAX_CAPACITY.into(), "").noting("tasks a policy may reach");
    capacity(0).push(&mut errs, "minCapacity", p.min_capacity.into());
    capacity(1).push(&mut errs, "maxCapacity", p.max_capacity.into());
    if p.max_capacity < p.min_capacity && p.max_capacity >= 1 {
        errs.push(FieldError::new(
            "maxCapacity",
            format!(
                "{} is under minCapacity ({}); it must be at least that",
                p.max_capacity, p.min_capacity
            ),
        ));
    }
    match (p.target_cpu_percent, p.target_requests_per_task) {
        (None, None) | (Some(_), Some(_)) => errs.push(FieldError::new(
            "targetCpuPercent",
            "set exactly one target: --target-cpu PERCENT or --target-requests-per-task N",
        )),
        (Some(c), None) if !(c > 0.0 && c <= 100.0) => errs.push(FieldError::new(
            "targetCpuPercent",
            format!("{c} must be more than 0 and at most 100"),
        )),
        (None, Some(r)) if !(r > 0.0 && r.is_finite()) => errs.push(FieldError::new(
            "targetRequestsPerTask",
            format!("{r} must be more than 0"),
        )),
        _ => {}
    }
    for (field, v) in [
        ("scaleOutCooldownSeconds", p.scale_out_cooldown_seconds),
        ("scaleInCooldownSeconds", p.scale_in_cooldown_seconds),
    ] {
        Bound::new(0, 86_400, " seconds").push(&mut errs, field, v.into());
    }
    errs
}

/// Stores (or with no policy removes) a service's policy. The desired count is brought inside
/// [min, max] at once; the controller does the rest.
pub fn put_policy(state: &State, req: PutScalingPolicyRequest) -> Result<Service> {
    state.update(|tx| {
        let found = services::find(tx.state(), &req.cluster, &req.service)?;
        let key = services::key(
            berth_core::arn::cluster_name(&found.cluster_arn),
            &found.service_name,
        );
        let Some(mut svc) = tx.get::<Service>(&key)? else {
            return Err(services::not_found(&req.cluster, &req.service));
        };
        if svc.status != "ACTIVE" {
            return Err(Error::ServiceNotActive(svc.service_name, svc.status));
        }
        let name = svc.service_name.clone();
        match req.policy.clone() {
            None => {
                if svc.scaling_policy.take().is_some() {
                    let desired = svc.desired_count;
                    push_event(
                        &mut svc,
                        format!(
                        "(service {name}) auto scaling turned off; desired count stays {desired}."
                    ),
                    );
                }
            }
            Some(mut p) => {
                if svc.scheduling_strategy == "DAEMON" {
                    return Err(Error::invalid(
                        "service",
                        "a DAEMON service runs one task per node; it cannot auto scale",
                    ));
                }
                let mut errs = validate(&p);
                if let Err(e) =
                    berth_core::limits::check_desired_count(tx.state().limits(), p.max_capacity)
                {
                    errs.push(FieldError::new("maxCapacity", e));
                }
                if !errs.is_empty() {
                    return Err(Error::Invalid(errs));
                }
                if let Some(old) = &svc.scaling_policy {
                    p.last_scale_out_at = old.last_scale_out_at.clone();
                    p.last_scale_in_at = old.last_scale_in_at.clone();
                }
                p.set_at = crate::time::now();
                let clamped = svc.desired_count.clamp(p.min_capacity, p.max_capacity);
                if clamped != svc.desired_count {
                    set_desired(&mut svc, clamped);
                }
                push_event(
                    &mut svc,
                    format!(
                        "(service {name}) auto scaling on: {} between {} and {} tasks.",
                        describe_target(&p),
                        p.min_capacity,
                        p.max_capacity
                    ),
                );
                svc.scaling_policy = Some(p);
            }
        }
        let ops = vec![put(key, &svc)];
        Ok((svc, ops))
    })
}

/// The service's and its primary deployment's desired count.
pub fn set_desired(svc: &mut Service, desired: i32) {
    svc.desired_count = desired;
    for dep in svc.deployments.iter_mut().filter(|d| d.status == "PRIMARY") {
        dep.desired_count = desired;
    }
}

/// "target 50 requests/s per task" or "target CPU 60%".
pub fn describe_target(p: &ScalingPolicy) -> String {
    match (p.target_cpu_percent, p.target_requests_per_task) {
        (Some(c), _) => format!("target CPU {c}%"),
        (_, Some(r)) => format!("target {r} requests/s per task"),
        _ => "no target".into(),
    }
}

/// The metric's name as events show it.
pub fn metric_name(p: &ScalingPolicy) -> &'static str {
    if p.target_cpu_percent.is_some() {
        "CPUUtilization"
    } else {
        "RequestCountPerTask"
    }
}

/// What the policy asks for now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Stay at the current count (inside the range, cooling down, or a deployment is running).
    Hold {
        wanted: i32,
        why: &'static str,
    },
    ScaleOut(i32),
    ScaleIn(i32),
}

/// Everything `decide` looks at; it reads no clock and no store.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub policy: &'a ScalingPolicy,
    pub current: i32,
    /// The metric summed over the service: requests/s, or CPU percent points of all tasks.
    pub metric_total: f64,
    pub now_ms: i64,
    pub last_scale_out_ms: Option<i64>,
    pub last_scale_in_ms: Option<i64>,
    /// When the policy was set: scale-in waits its cooldown from then as from an action.
    pub policy_set_ms: Option<i64>,
    /// A deployment is rolling out: scaling in now could stop the tasks it relies on.
    pub deploying: bool,
}

pub fn target(p: &ScalingPolicy) -> f64 {
    p.target_cpu_percent
        .or(p.target_requests_per_task)
        .unwrap_or(1.0)
}

/// Target tracking: ceil(total / target) within [min, max]. Out waits the scale-out cooldown
/// after the last scale-out; in waits the scale-in cooldown after any action (and after the
/// policy was set) and never happens during a deployment. A count outside [min, max] is corrected at once.
pub fn decide(i: &Inputs) -> Decision {
    let p = i.policy;
    let raw = (i.metric_total / target(p)).ceil();
    let raw = if raw.is_finite() { raw.max(0.0) } else { 0.0 };
    let wanted = (raw.min(f64::from(MAX_CAPACITY)) as i32).clamp(p.min_capacity, p.max_capacity);
    if i.current < p.min_capacity {
        return Decision::ScaleOut(p.min_capacity);
    }
    if i.current > p.max_capacity {
        return Decision::ScaleIn(p.max_capacity);
    }
    let cooldown =
        |secs: i32, default: i32| i64::from(if secs > 0 { secs } else { default }) * 1000;
    let out_cd = cooldown(p.scale_out_cooldown_seconds, DEFAULT_SCALE_OUT_COOLDOWN_S);
    let in_cd = cooldown(p.scale_in_cooldown_seconds, DEFAULT_SCALE_IN_COOLDOWN_S);
    let since = |t: Option<i64>| t.map_or(i64::MAX, |t| i.now_ms - t);
    if wanted > i.current {
        if since(i.last_scale_out_ms) < out_cd {
            return Decision::Hold {
                wanted,
                why: "scale-out cooldown",
            };
        }
        return Decision::ScaleOut(wanted);
    }
    if wanted < i.current {
        if i.deploying {
            return Decision::Hold {
                wanted,
                why: "deployment in progress",
            };
        }
        let quiet = since(i.last_scale_out_ms)
            .min(since(i.last_scale_in_ms))
            .min(since(i.policy_set_ms));
        if quiet < in_cd {
            return Decision::Hold {
                wanted,
                why: "scale-in cooldown",
            };
        }
        return Decision::ScaleIn(wanted);
    }
    Decision::Hold {
        wanted,
        why: "at target",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_capacities_and_cooldowns_name_their_limits() {
        let policy = ScalingPolicy {
            min_capacity: 2,
            max_capacity: 2000,
            target_cpu_percent: Some(50.0),
            scale_out_cooldown_seconds: 90_000,
            ..Default::default()
        };
        let errs: Vec<String> = validate(&policy).iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            [
                "maxCapacity: 2000 is over the maximum of 1000 (tasks a policy may reach)",
                "scaleOutCooldownSeconds: 90000 seconds is over the maximum of 86400 seconds"
            ]
        );
    }

    fn policy(min: i32, max: i32, rps: f64) -> ScalingPolicy {
        ScalingPolicy {
            min_capacity: min,
            max_capacity: max,
            target_requests_per_task: Some(rps),
            scale_out_cooldown_seconds: 30,
            scale_in_cooldown_seconds: 120,
            ..Default::default()
        }
    }

    fn inputs(p: &ScalingPolicy, current: i32, total: f64) -> Inputs<'_> {
        Inputs {
            policy: p,
            current,
            metric_total: total,
            now_ms: 1_000_000,
            last_scale_out_ms: None,
            last_scale_in_ms: None,
            policy_set_ms: None,
            deploying: false,
        }
    }

    #[test]
    fn scales_out_to_ceil_of_total_over_target_capped_at_max() {
        let p = policy(1, 4, 50.0);
        assert_eq!(decide(&inputs(&p, 1, 120.0)), Decision::ScaleOut(3));
        assert_eq!(decide(&inputs(&p, 1, 300.0)), Decision::ScaleOut(4));
    }

    #[test]
    fn scales_in_to_min_when_idle_but_not_during_cooldown_or_deployment() {
        let p = policy(1, 4, 50.0);
        assert_eq!(decide(&inputs(&p, 4, 0.0)), Decision::ScaleIn(1));
        let mut i = inputs(&p, 4, 0.0);
        i.last_scale_out_ms = Some(i.now_ms - 60_000);
        assert!(matches!(
            decide(&i),
            Decision::Hold {
                why: "scale-in cooldown",
                ..
            }
        ));
        i.last_scale_out_ms = Some(i.now_ms - 121_000);
        i.policy_set_ms = Some(i.now_ms - 5_000);
        assert!(matches!(
            decide(&i),
            Decision::Hold {
                why: "scale-in cooldown",
                ..
            }
        ));
        i.policy_set_ms = None;
        i.deploying = true;
        assert!(matches!(
            decide(&i),
            Decision::Hold {
                why: "deployment in progress",
                ..
            }
        ));
    }

    #[test]
    fn scale_out_waits_for_its_cooldown() {
        let p = policy(1, 10, 50.0);
        let mut i = inputs(&p, 2, 400.0);
        i.last_scale_out_ms = Some(i.now_ms - 10_000);
        assert!(matches!(decide(&i), Decision::Hold { wanted: 8, .. }));
        i.last_scale_out_ms = Some(i.now_ms - 31_000);
        assert_eq!(decide(&i), Decision::ScaleOut(8));
    }

    #[test]
    fn a_count_outside_the_range_is_corrected_at_once() {
        let p = policy(2, 4, 50.0);
        let mut i = inputs(&p, 0, 0.0);
        i.last_scale_out_ms = Some(i.now_ms);
        assert_eq!(decide(&i), Decision::ScaleOut(2));
        i.current = 9;
        assert_eq!(decide(&i), Decision::ScaleIn(4));
    }

    #[test]
    fn cpu_target_uses_percent_points() {
        let p = ScalingPolicy {
            min_capacity: 1,
            max_capacity: 10,
            target_cpu_percent: Some(50.0),
            ..Default::default()
        };
        // Three tasks at 90% each: 270 points / 50 → 6 tasks.
        assert_eq!(decide(&inputs(&p, 3, 270.0)), Decision::ScaleOut(6));
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut p = policy(5, 2, 50.0);
        p.target_cpu_percent = Some(40.0);
        p.scale_in_cooldown_seconds = -1;
        let paths: Vec<String> = validate(&p).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            ["maxCapacity", "targetCpuPercent", "scaleInCooldownSeconds"]
        );
        assert!(validate(&policy(1, 4, 50.0)).is_empty());
    }
}
