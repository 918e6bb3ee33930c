//! Traffic-shifting deployments (BLUE_GREEN, CANARY, LINEAR), decided purely. The new revision
//! starts beside the old one with none of the production traffic; once all of its tasks are
//! healthy, traffic moves to it by weight through the proxies, a step at a time with a bake after
//! each; after the last step both revisions stay up for the bake time, and only then do the old
//! tasks go. While traffic shifts or bakes, the new revision's answers as the proxies measured
//! them are compared with the old revision's: crossing a threshold moves all traffic back in the
//! same pass, to tasks that never stopped.

use super::judge::Judgement;
use super::pause;
use super::{Event, ServicePlan, ServiceView};
use crate::status::{end_rollout, rollout, DeploymentStatus, RolloutState};
use crate::time;
use berth_proto::v1::{
    DeploymentConfiguration, DeploymentLifecycleHook, HookRun, RevisionFigures, Service,
    TrafficRollback,
};

/// How a service moves to a new revision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Rolling,
    BlueGreen,
    Canary { percent: f64, bake_ms: i64 },
    Linear { step: f64, bake_ms: i64 },
}

/// Requests a revision must have answered before its figures are judged, unless configured.
const DEFAULT_MIN_REQUESTS: u64 = 20;
/// A p99 below this never counts as slower: the buckets are too coarse to compare below it.
const P99_FLOOR_MS: f64 = 5.0;

fn seconds_or_minutes(seconds: Option<i32>, minutes: i32) -> i64 {
    seconds.map_or(i64::from(minutes) * 60_000, |s| i64::from(s) * 1000)
}

impl Strategy {
    pub fn of(dc: Option<&DeploymentConfiguration>) -> Self {
        let Some(dc) = dc else {
            return Strategy::Rolling;
        };
        match dc.strategy.as_str() {
            "BLUE_GREEN" => Strategy::BlueGreen,
            "CANARY" => {
                let c = dc.canary_configuration.unwrap_or_default();
                Strategy::Canary {
                    percent: c.canary_percent,
                    bake_ms: seconds_or_minutes(
                        c.canary_bake_time_seconds,
                        c.canary_bake_time_in_minutes,
                    ),
                }
            }
            "LINEAR" => {
                let l = dc.linear_configuration.unwrap_or_default();
                Strategy::Linear {
                    step: l.step_percent,
                    bake_ms: seconds_or_minutes(
                        l.step_bake_time_seconds,
                        l.step_bake_time_in_minutes,
                    ),
                }
            }
            _ => Strategy::Rolling,
        }
    }

    pub fn shifts(self) -> bool {
        self != Strategy::Rolling
    }

    /// The share of production traffic after `now_pct` once its step has baked.
    fn next(self, now_pct: f64) -> f64 {
        match self {
            Strategy::Rolling | Strategy::BlueGreen => 100.0,
            Strategy::Canary { percent, .. } if now_pct <= 0.0 => percent.clamp(0.0, 100.0),
            Strategy::Canary { .. } => 100.0,
            Strategy::Linear { step, .. } => (now_pct + step.max(0.1)).min(100.0),
        }
    }

    fn step_bake_ms(self) -> i64 {
        match self {
            Strategy::Canary { bake_ms, .. } | Strategy::Linear { bake_ms, .. } => bake_ms,
            _ => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Rolling => "ROLLING",
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Canary { .. } => "CANARY",
            Strategy::Linear { .. } => "LINEAR",
        }
    }
}

/// ECS's lifecycle stages of a traffic-shifting deployment.
pub const SCALE_UP: &str = "SCALE_UP";
pub const TEST_TRAFFIC_SHIFT: &str = "TEST_TRAFFIC_SHIFT";
pub const PRODUCTION_TRAFFIC_SHIFT: &str = "PRODUCTION_TRAFFIC_SHIFT";
pub const BAKE_TIME: &str = "BAKE_TIME";
pub const CLEAN_UP: &str = "CLEAN_UP";

/// The primary deployment is mid-shift and in progress: the old revision's tasks stay until
/// the bake is over.
pub fn holds_old(svc: &Service) -> bool {
    mid_shift(svc) && rollout(&svc.deployments[0]) == RolloutState::InProgress
}

/// The primary deployment stopped (or is) somewhere before its clean-up: the old revision's
/// tasks still run, so going back is moving the traffic back.
pub fn mid_shift(svc: &Service) -> bool {
    let Some(d) = svc.deployments.first() else {
        return false;
    };
    Strategy::of(svc.deployment_configuration.as_ref()).shifts()
        && svc.deployments.len() >= 2
        && matches!(
            d.lifecycle_stage.as_str(),
            SCALE_UP | TEST_TRAFFIC_SHIFT | PRODUCTION_TRAFFIC_SHIFT | BAKE_TIME
        )
}

/// ECS's lifecycle hook stages, in the order a shift reaches them.
pub const HOOK_STAGES: [&str; 7] = [
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    TEST_TRAFFIC_SHIFT,
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    PRODUCTION_TRAFFIC_SHIFT,
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// Where a deployment stands with the lifecycle hooks of one stage.
#[derive(Debug, PartialEq)]
enum Gate {
    Open,
    Waiting,
    Failed(String),
}

/// The hooks of `stage` (at `step`) for the primary deployment: open once every one answered
/// SUCCEEDED; a webhook not yet asked is recorded PENDING for the hook runner to call, a PAUSE
/// hook AWAITING_ACTION for ContinueServiceDeployment (or its timeout).
fn gate(p: &mut ServicePlan, stage: &str, step: i32, now: i64) -> Gate {
    let svc = &mut p.service;
    let hooks: Vec<(String, DeploymentLifecycleHook)> = svc
        .deployment_configuration
        .as_ref()
        .map(|d| {
            d.lifecycle_hooks
                .iter()
                .enumerate()
                .filter(|(_, h)| h.lifecycle_stages.iter().any(|s| s == stage))
                .map(|(i, h)| (pause::hook_key(i, h), h.clone()))
                .collect()
        })
        .unwrap_or_default();
    let name = svc.service_name.clone();
    let dep = &mut svc.deployments[0];
    let mut out = Gate::Open;
    for (url, hook) in hooks {
        let run = dep
            .hooks
            .iter_mut()
            .find(|r| r.stage == stage && r.step == step && r.url == url);
        let Some(run) = run else {
            let paused = pause::is_pause(&hook);
            let r = HookRun {
                stage: stage.into(),
                step,
                url: url.clone(),
                status: if paused { pause::AWAITING } else { "PENDING" }.into(),
                called_at: if paused {
                    time::rfc3339(now)
                } else {
                    String::new()
                },
                ..Default::default()
            };
            p.events.push(Event::Message(if paused {
                format!(
                    "(service {name}) (deployment {}) paused at {stage} (hookId {}): continue or roll back with ContinueServiceDeployment.",
                    dep.id,
                    pause::hook_id(&r)
                )
            } else {
                format!(
                    "(service {name}) (deployment {}) waiting for lifecycle hook {url} at {stage}.",
                    dep.id
                )
            }));
            dep.hooks.push(r);
            out = Gate::Waiting;
            continue;
        };
        if run.status == pause::AWAITING {
            let began = time::parse_rfc3339(&run.called_at).unwrap_or(now);
            match pause::timed_out(&hook, began, now) {
                None => {}
                Some(true) => {
                    run.status = "SUCCEEDED".into();
                    run.reason = "timed out; the timeout action continues".into();
                }
                Some(false) => {
                    run.status = "FAILED".into();
                    run.reason = "timed out; the timeout action rolls back".into();
                }
            }
        }
        match (run.status.as_str(), run.reason.clone()) {
            ("SUCCEEDED", _) => {}
            ("FAILED", reason) => {
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                };
                let what = if pause::is_pause(&hook) {
                    format!("PAUSE hook {}", pause::hook_id(run))
                } else {
                    format!("lifecycle hook {url}")
                };
                return Gate::Failed(format!("{what} answered FAILED at {stage}{why}"));
            }
            _ => out = Gate::Waiting,
        }
    }
    out
}

/// The new revision's tasks may start: no shift under way, or its PRE_SCALE_UP hooks passed.
pub fn scale_up_allowed(svc: &Service) -> bool {
    if !holds_old(svc) || svc.deployments[0].lifecycle_stage != SCALE_UP {
        return true;
    }
    let Some(dc) = svc.deployment_configuration.as_ref() else {
        return true;
    };
    dc.lifecycle_hooks
        .iter()
        .enumerate()
        .filter(|(_, h)| h.lifecycle_stages.iter().any(|s| s == "PRE_SCALE_UP"))
        .all(|(i, h)| {
            let key = pause::hook_key(i, h);
            svc.deployments[0]
                .hooks
                .iter()
                .any(|r| r.stage == "PRE_SCALE_UP" && r.url == key && r.status == "SUCCEEDED")
        })
}

/// Test traffic reaches the primary deployment now (its header, when one is configured).
pub fn takes_test_traffic(svc: &Service) -> bool {
    holds_old(svc) && svc.deployments[0].lifecycle_stage != SCALE_UP
}

/// Moves the primary deployment's shift on; true when it was rolled back (the primary changed).
pub(super) fn advance(p: &mut ServicePlan, view: &ServiceView, j: &Judgement, now: i64) -> bool {
    let svc = &mut p.service;
    let strategy = Strategy::of(svc.deployment_configuration.as_ref());
    if !strategy.shifts()
        || svc.deployments.len() < 2
        || rollout(&svc.deployments[0]) != RolloutState::InProgress
    {
        return false;
    }
    let previous = svc.deployments[1].id.clone();
    let name = svc.service_name.clone();
    let id = svc.deployments[0].id.clone();
    let at = time::rfc3339(now);
    if svc.deployments[0].lifecycle_stage.is_empty() {
        if !j.old().any(|t| t.started_by == previous) {
            // Nothing runs to shift from: the new revision simply starts.
            svc.deployments[0].traffic_percent = 100.0;
            return false;
        }
        set_traffic(svc, 0.0, &at);
        svc.deployments[0].lifecycle_stage = SCALE_UP.into();
        p.events.push(Event::Message(format!(
            "(service {name}) (deployment {id}) {} deployment: starting the new revision beside deployment {previous}; production traffic stays there until the new tasks are healthy.",
            strategy.name()
        )));
    }
    let figures = view.revisions.get(&id).copied().unwrap_or_default();
    let before = view.revisions.get(&previous).copied().unwrap_or_default();
    let dep = &mut svc.deployments[0];
    if dep.figures != Some(figures) || dep.previous_figures != Some(before) {
        dep.figures = Some(figures);
        dep.previous_figures = Some(before);
    }
    let stage = dep.lifecycle_stage.clone();
    let since = time::parse_rfc3339(&dep.traffic_shifted_at).unwrap_or(now);
    let test = svc
        .deployment_configuration
        .as_ref()
        .map(|d| d.test_traffic_header.clone())
        .unwrap_or_default();
    let healthy = j.primary().filter(|t| j.is_healthy(t)).count() as i64;
    let desired = i64::from(svc.desired_count.max(1));
    let step = svc.deployments[0].traffic_step;
    // Each gate either lets the shift go on in this pass, holds it, or rolls it back.
    macro_rules! pass {
        ($stage:expr, $step:expr) => {
            match gate(p, $stage, $step, now) {
                Gate::Open => {}
                Gate::Waiting => return false,
                Gate::Failed(why) => {
                    let msg = roll_back(&mut p.service, &why, now);
                    p.events.extend(msg.map(Event::Message));
                    return true;
                }
            }
        };
    }
    match stage.as_str() {
        SCALE_UP => {
            pass!("PRE_SCALE_UP", 0);
            if healthy < desired {
                return false;
            }
            pass!("POST_SCALE_UP", 0);
            if !test.is_empty() {
                let dep = &mut p.service.deployments[0];
                dep.lifecycle_stage = TEST_TRAFFIC_SHIFT.into();
                dep.updated_at = at;
                p.events.push(Event::Message(format!(
                    "(service {name}) (deployment {id}) test traffic (requests with header {test}) reaches the new revision."
                )));
                return false;
            }
            pass!("PRE_PRODUCTION_TRAFFIC_SHIFT", 1);
            shift_to(p, strategy, strategy.next(0.0), &at);
        }
        TEST_TRAFFIC_SHIFT => {
            pass!(TEST_TRAFFIC_SHIFT, 0);
            pass!("POST_TEST_TRAFFIC_SHIFT", 0);
            pass!("PRE_PRODUCTION_TRAFFIC_SHIFT", 1);
            shift_to(p, strategy, strategy.next(0.0), &at);
        }
        PRODUCTION_TRAFFIC_SHIFT | BAKE_TIME => {
            let rollback = svc
                .deployment_configuration
                .as_ref()
                .and_then(|d| d.traffic_rollback)
                .unwrap_or_default();
            if let Some(why) = verdict(&rollback, &figures, &before) {
                let msg = roll_back(svc, &format!("the new revision {why}"), now);
                p.events.extend(msg.map(Event::Message));
                return true;
            }
            pass!(PRODUCTION_TRAFFIC_SHIFT, step);
            let pct = p.service.deployments[0].traffic_percent;
            if stage == BAKE_TIME {
                pass!("POST_PRODUCTION_TRAFFIC_SHIFT", 0);
                if now - since >= bake_ms(&p.service) {
                    let dep = &mut p.service.deployments[0];
                    dep.lifecycle_stage = CLEAN_UP.into();
                    dep.updated_at = at;
                    p.events.push(Event::Message(format!(
                        "(service {name}) (deployment {id}) bake time over: stopping deployment {previous}'s tasks."
                    )));
                }
            } else if now - since >= strategy.step_bake_ms() {
                pass!("PRE_PRODUCTION_TRAFFIC_SHIFT", step + 1);
                shift_to(p, strategy, strategy.next(pct), &at);
            }
        }
        _ => {}
    }
    false
}

/// Moves production traffic to `pct` (the bake starts at 100), with its event.
fn shift_to(p: &mut ServicePlan, strategy: Strategy, pct: f64, at: &str) {
    let svc = &mut p.service;
    set_traffic(svc, pct, at);
    let dep = &mut svc.deployments[0];
    dep.traffic_step += 1;
    dep.lifecycle_stage = if pct >= 100.0 {
        BAKE_TIME
    } else {
        PRODUCTION_TRAFFIC_SHIFT
    }
    .into();
    dep.updated_at = at.to_string();
    let (name, id) = (svc.service_name.clone(), dep.id.clone());
    let bake = if pct >= 100.0 {
        bake_ms(svc)
    } else {
        strategy.step_bake_ms()
    };
    p.events.push(Event::Message(format!(
        "(service {name}) (deployment {id}) {} of production traffic shifted to the new revision; next step after {}.",
        percent(pct),
        humantime::format_duration(std::time::Duration::from_millis(bake.max(0) as u64))
    )));
}

/// The primary deployment takes `pct` of production traffic, the previous one the rest, any
/// older one none.
fn set_traffic(svc: &mut Service, pct: f64, at: &str) {
    for (i, d) in svc.deployments.iter_mut().enumerate() {
        d.traffic_percent = match i {
            0 => pct,
            1 => 100.0 - pct,
            _ => 0.0,
        };
    }
    svc.deployments[0].traffic_shifted_at = at.to_string();
}

fn bake_ms(svc: &Service) -> i64 {
    svc.deployment_configuration.as_ref().map_or(0, |d| {
        seconds_or_minutes(d.bake_time_seconds, d.bake_time_in_minutes)
    })
}

/// Why the new revision's figures call for a rollback, if they do.
fn verdict(r: &TrafficRollback, new: &RevisionFigures, old: &RevisionFigures) -> Option<String> {
    let min = u64::try_from(r.min_requests)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MIN_REQUESTS);
    if new.requests < min {
        return None;
    }
    let rate = |f: &RevisionFigures| f.errors_5xx as f64 * 100.0 / f.requests.max(1) as f64;
    if r.error_percent > 0.0 && rate(new) > r.error_percent && rate(new) > rate(old) {
        return Some(format!(
            "answered 5xx to {} of {} requests (threshold {}; the previous revision {} of {})",
            percent(rate(new)),
            new.requests,
            percent(r.error_percent),
            percent(rate(old)),
            old.requests
        ));
    }
    if r.p99_ratio > 0.0
        && old.requests >= min
        && old.p99_ms > 0.0
        && new.p99_ms >= P99_FLOOR_MS
        && new.p99_ms > r.p99_ratio * old.p99_ms
    {
        return Some(format!(
            "answered with a p99 latency of {:.1} ms over {} requests, more than {}× the previous revision's {:.1} ms",
            new.p99_ms, new.requests, r.p99_ratio, old.p99_ms
        ));
    }
    None
}

/// "10%", "2.5%".
pub fn percent(p: f64) -> String {
    let s = format!("{p:.1}");
    format!("{}%", s.strip_suffix(".0").unwrap_or(&s))
}

/// Ends a shifting primary deployment as FAILED and makes the previous one (whose tasks still
/// run) the primary again with all the traffic; its event, or None when there is nothing to go
/// back to. The API's StopServiceDeployment and a crossed threshold both come here.
pub fn roll_back(svc: &mut Service, why: &str, now: i64) -> Option<String> {
    if !mid_shift(svc) || rollout(&svc.deployments[0]) == RolloutState::Completed {
        return None;
    }
    let at = time::rfc3339(now);
    let name = svc.service_name.clone();
    let failed = &mut svc.deployments[0];
    end_rollout(failed, RolloutState::Failed);
    failed.status = DeploymentStatus::Active.to_string();
    failed.rollout_state_reason = format!("Rolled back: {why}.");
    failed.updated_at = at.clone();
    let failed_id = failed.id.clone();
    svc.deployments.swap(0, 1);
    set_traffic(svc, 100.0, &at);
    let back = &mut svc.deployments[0];
    back.status = DeploymentStatus::Primary.to_string();
    back.updated_at = at;
    let back_id = back.id.clone();
    svc.task_definition = back.task_definition.clone();
    Some(format!(
        "(service {name}) (deployment {failed_id}) rolled back: {why}. All traffic is back on deployment {back_id}."
    ))
}
