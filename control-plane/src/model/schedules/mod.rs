//! Scheduled tasks: EventBridge rules and EventBridge Scheduler schedules with ECS targets, one
//! `Schedule` record each (`keys::schedule`), and Scheduler's schedule groups. Users write the
//! definition through the transports; only the leader's ticks (`fire`) write `last_tick_ms` and
//! `runs`, in the same transaction as the tasks they start, so a tick runs once.

pub mod fire;
pub mod view;

use crate::state::error::{Error, FieldError, Result};
use crate::state::{keys, put, State};
use crate::store::Op;
use crate::time;
use berth_core::schedule::{self, Expr};
use berth_proto::v1::{KeyValuePair, Schedule, ScheduleGroup, ScheduleTarget};

pub const RULE: &str = "rule";
pub const SCHEDULE: &str = "schedule";
/// The event bus of every rule, and Scheduler's group when none is named.
pub const DEFAULT_GROUP: &str = "default";
/// Targets a rule may have (EventBridge's limit).
pub const MAX_TARGETS: usize = 5;

/// How a write treats a record already there.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Scheduler's CreateSchedule: refused if the name is taken.
    Create,
    /// Scheduler's UpdateSchedule: refused if the name is not.
    Update,
    /// EventBridge's PutRule: either.
    Upsert,
}

pub fn key(s: &Schedule) -> String {
    keys::schedule(&s.kind, &s.group, &s.name)
}

fn noun(kind: &str) -> &'static str {
    if kind == RULE {
        "Rule"
    } else {
        "Schedule"
    }
}

/// A stored schedule's timing (checked when it was written).
pub fn timing(s: &Schedule) -> Result<schedule::Timing> {
    schedule::Timing::new(
        &s.expression,
        s.kind == SCHEDULE,
        &s.timezone,
        s.anchor_ms,
        s.start_ms,
        s.end_ms,
    )
    .map_err(|e| Error::invalid("ScheduleExpression", e))
}

/// Every problem with what a client sent, each with its field.
pub fn check(s: &Schedule) -> Result<()> {
    let mut errs = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !name_ok(&s.name) {
        errs.push(FieldError::new(
            "Name",
            format!("{:?} must be 1-64 letters, digits, '.', '-' or '_'", s.name),
        ));
    }
    if !name_ok(&s.group) {
        errs.push(FieldError::new(
            "GroupName",
            "must be 1-64 letters, digits, '.', '-' or '_'",
        ));
    }
    if let Err(e) = schedule::parse(&s.expression, s.kind == SCHEDULE) {
        errs.push(FieldError::new("ScheduleExpression", e));
    }
    if let Err(e) = schedule::zone(&s.timezone) {
        errs.push(FieldError::new("ScheduleExpressionTimezone", e));
    }
    if !matches!(s.state.as_str(), "ENABLED" | "DISABLED") {
        errs.push(FieldError::new(
            "State",
            format!("{:?} must be ENABLED or DISABLED", s.state),
        ));
    }
    if s.kind == SCHEDULE {
        match s.flexible_mode.as_str() {
            "OFF" => {}
            "FLEXIBLE" if (1..=1440).contains(&s.flexible_minutes) => {}
            "FLEXIBLE" => errs.push(FieldError::new(
                "FlexibleTimeWindow.MaximumWindowInMinutes",
                "must be 1-1440 with Mode FLEXIBLE",
            )),
            m => errs.push(FieldError::new(
                "FlexibleTimeWindow.Mode",
                format!("{m:?} must be OFF or FLEXIBLE"),
            )),
        }
        if s.start_ms != 0 && s.end_ms != 0 && s.end_ms <= s.start_ms {
            errs.push(FieldError::new("EndDate", "must be after StartDate"));
        }
        if !matches!(s.action_after_completion.as_str(), "" | "NONE" | "DELETE") {
            errs.push(FieldError::new(
                "ActionAfterCompletion",
                "must be NONE or DELETE",
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errs))
    }
}

/// Where a new or changed expression's ticks start: a rule's rate first fires one period after
/// it is put; Scheduler's rate at its StartDate, or at once.
fn anchor(s: &Schedule, now_ms: i64) -> i64 {
    match schedule::parse(&s.expression, true) {
        Ok(Expr::Rate { period_ms }) if s.kind == RULE => now_ms + period_ms,
        _ if s.start_ms != 0 => s.start_ms,
        _ => now_ms,
    }
}

/// Creates or replaces a schedule's definition; what the ticks wrote (the last tick, the runs)
/// and a rule's targets stay. Returns the stored record.
pub fn put_definition(state: &State, s: Schedule, how: Write, now_ms: i64) -> Result<Schedule> {
    check(&s)?;
    let key = key(&s);
    state.update(|tx| {
        if s.kind == SCHEDULE && s.group != DEFAULT_GROUP {
            tx.get::<ScheduleGroup>(&keys::schedule_group(&s.group))?
                .ok_or_else(|| Error::not_found("Schedule group", &s.group, "create it first"))?;
        }
        let old = tx.get::<Schedule>(&key)?;
        let mut out = s.clone();
        match (&old, how) {
            (Some(_), Write::Create) => {
                return Err(Error::Client(format!(
                    "Schedule {} already exists.",
                    s.name
                )))
            }
            (None, Write::Update) => {
                return Err(Error::not_found(noun(&s.kind), &s.name, "create it first"))
            }
            _ => {}
        }
        out.updated_at = time::rfc3339(now_ms);
        match old {
            Some(o) => {
                out.created_at = o.created_at;
                out.runs = o.runs;
                out.last_tick_ms = if o.state != "ENABLED" && s.state == "ENABLED" {
                    // Ticks that passed while it was off are not owed.
                    o.last_tick_ms.max(now_ms)
                } else {
                    o.last_tick_ms
                };
                if s.kind == RULE {
                    out.targets = o.targets;
                    out.tags = if s.tags.is_empty() {
                        o.tags
                    } else {
                        s.tags.clone()
                    };
                }
                out.anchor_ms = if o.expression == s.expression && o.start_ms == s.start_ms {
                    o.anchor_ms
                } else {
                    anchor(&s, now_ms)
                };
            }
            None => {
                out.created_at = time::rfc3339(now_ms);
                out.anchor_ms = anchor(&s, now_ms);
                // Ticks before now are not owed; a rate's first tick at `now` is.
                out.last_tick_ms = now_ms - 1;
            }
        }
        Ok((out.clone(), vec![put(key.clone(), &out)]))
    })
}

pub fn get(state: &State, kind: &str, group: &str, name: &str) -> Result<Schedule> {
    state
        .get::<Schedule>(&keys::schedule(kind, group, name))?
        .ok_or_else(|| Error::not_found(noun(kind), name, "see list-rules / list-schedules"))
}

/// Every schedule of `kind` (empty: both), by group then name.
pub fn list(state: &State, kind: &str) -> Result<Vec<Schedule>> {
    let prefix = if kind.is_empty() {
        keys::SCHEDULES.to_string()
    } else {
        format!("{}{kind}/", keys::SCHEDULES)
    };
    state.scan::<Schedule>(&prefix)
}

/// Deletes a schedule. A rule with targets stays unless `force`, as EventBridge refuses.
pub fn delete(state: &State, kind: &str, group: &str, name: &str, force: bool) -> Result<()> {
    let key = keys::schedule(kind, group, name);
    state.update(|tx| {
        let Some(s) = tx.get::<Schedule>(&key)? else {
            return if kind == RULE {
                // EventBridge's DeleteRule of a missing rule succeeds.
                Ok(((), vec![]))
            } else {
                Err(Error::not_found("Schedule", name, "see list-schedules"))
            };
        };
        if kind == RULE && !s.targets.is_empty() && !force {
            return Err(Error::invalid(
                "Name",
                "Rule can't be deleted since it has targets. Remove them first (remove-targets).",
            ));
        }
        Ok(((), vec![Op::Delete(key.clone())]))
    })
}

/// Turns a rule on or off.
pub fn set_state(state: &State, kind: &str, group: &str, name: &str, on: bool) -> Result<()> {
    let key = keys::schedule(kind, group, name);
    state.update(|tx| {
        let mut s = tx
            .get::<Schedule>(&key)?
            .ok_or_else(|| Error::not_found(noun(kind), name, "see list-rules"))?;
        if on && s.state != "ENABLED" {
            // Ticks that passed while it was off are not owed.
            s.last_tick_ms = s.last_tick_ms.max(time::now_millis());
        }
        s.state = if on { "ENABLED" } else { "DISABLED" }.into();
        s.updated_at = time::now();
        Ok(((), vec![put(key.clone(), &s)]))
    })
}

/// Adds or replaces a rule's targets by id (at most `MAX_TARGETS` in all).
pub fn put_targets(state: &State, rule: &str, targets: Vec<ScheduleTarget>) -> Result<()> {
    let key = keys::schedule(RULE, DEFAULT_GROUP, rule);
    state.update(|tx| {
        let mut s = tx
            .get::<Schedule>(&key)?
            .ok_or_else(|| Error::not_found("Rule", rule, "put-rule first"))?;
        for t in &targets {
            match s.targets.iter_mut().find(|o| o.id == t.id) {
                Some(o) => *o = t.clone(),
                None => s.targets.push(t.clone()),
            }
        }
        if s.targets.len() > MAX_TARGETS {
            return Err(Error::invalid(
                "Targets",
                format!("a rule has at most {MAX_TARGETS} targets"),
            ));
        }
        s.updated_at = time::now();
        Ok(((), vec![put(key.clone(), &s)]))
    })
}

/// Removes a rule's targets; returns the ids it did not have.
pub fn remove_targets(state: &State, rule: &str, ids: &[String]) -> Result<Vec<String>> {
    let key = keys::schedule(RULE, DEFAULT_GROUP, rule);
    state.update(|tx| {
        let mut s = tx
            .get::<Schedule>(&key)?
            .ok_or_else(|| Error::not_found("Rule", rule, "see list-rules"))?;
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !s.targets.iter().any(|t| &t.id == *id))
            .cloned()
            .collect();
        s.targets.retain(|t| !ids.contains(&t.id));
        Ok((missing, vec![put(key.clone(), &s)]))
    })
}

/// The schedule an ARN names.
pub fn by_arn(state: &State, arn: &str) -> Result<Schedule> {
    list(state, "")?
        .into_iter()
        .find(|s| s.arn == arn)
        .ok_or_else(|| Error::not_found("Resource", arn, "see list-rules"))
}

/// Adds or replaces tags (`add`), or removes the keys named (`remove`), on the rule `arn`.
pub fn tag(state: &State, arn: &str, add: &[KeyValuePair], remove: &[String]) -> Result<()> {
    let key = key(&by_arn(state, arn)?);
    state.update(|tx| {
        let mut s = tx
            .get::<Schedule>(&key)?
            .ok_or_else(|| Error::not_found("Resource", arn, "see list-rules"))?;
        s.tags.retain(|t| !remove.contains(&t.name));
        for t in add {
            match s.tags.iter_mut().find(|o| o.name == t.name) {
                Some(o) => o.value = t.value.clone(),
                None => s.tags.push(t.clone()),
            }
        }
        Ok(((), vec![put(key.clone(), &s)]))
    })
}

/// Creates a Scheduler schedule group.
pub fn create_group(state: &State, g: ScheduleGroup) -> Result<ScheduleGroup> {
    let key = keys::schedule_group(&g.name);
    state.update(|tx| {
        if g.name == DEFAULT_GROUP || tx.get::<ScheduleGroup>(&key)?.is_some() {
            return Err(Error::Client(format!(
                "Schedule group {} already exists.",
                g.name
            )));
        }
        Ok((g.clone(), vec![put(key.clone(), &g)]))
    })
}

/// The group `name`; `default` always exists.
pub fn get_group(
    state: &State,
    name: &str,
    default_arn: impl Fn() -> String,
) -> Result<ScheduleGroup> {
    if name == DEFAULT_GROUP {
        return Ok(ScheduleGroup {
            name: DEFAULT_GROUP.into(),
            arn: default_arn(),
            ..Default::default()
        });
    }
    state
        .get::<ScheduleGroup>(&keys::schedule_group(name))?
        .ok_or_else(|| Error::not_found("Schedule group", name, "see list-schedule-groups"))
}

pub fn list_groups(state: &State) -> Result<Vec<ScheduleGroup>> {
    state.scan::<ScheduleGroup>(keys::SCHEDULE_GROUPS)
}

/// Deletes a group and, as Scheduler does, every schedule in it.
pub fn delete_group(state: &State, name: &str) -> Result<()> {
    if name == DEFAULT_GROUP {
        return Err(Error::invalid(
            "Name",
            "the default group cannot be deleted",
        ));
    }
    let key = keys::schedule_group(name);
    let prefix = format!("{}{SCHEDULE}/{name}/", keys::SCHEDULES);
    state.update(|tx| {
        tx.get::<ScheduleGroup>(&key)?
            .ok_or_else(|| Error::not_found("Schedule group", name, "see list-schedule-groups"))?;
        let mut ops: Vec<Op> = tx.scan_keys(&prefix)?.into_iter().map(Op::Delete).collect();
        ops.push(Op::Delete(key.clone()));
        Ok(((), ops))
    })
}

#[cfg(test)]
mod tests;
