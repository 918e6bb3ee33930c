//! Targets registered by hand (RegisterTargets, DeregisterTargets): any address and port a
//! person wants behind a load balancer, beside the tasks of attached services, in `ip` target
//! groups. A deregistered target drains for the target group's deregistration delay (the proxies
//! send it no new request), then the leader's sweep removes it.

use super::check::invalid;
use super::{keys, same};
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State};
use berth_proto::v1::{ElbRegisteredTarget, ElbTargetGroup, Target};

/// The id the proxies and DescribeTargetHealth know a registered target by (where a task's ARN
/// would be).
pub fn target_key(tg: &ElbTargetGroup, t: &ElbRegisteredTarget) -> String {
    format!("{}/{}:{}", tg.arn, t.id, t.port)
}

/// Whether `key` is a registered target's (`target_key`) whose target group still exists: the
/// proxies' reports of it are kept like those of live tasks.
pub fn known_key(state: &State, key: &str) -> bool {
    let Some(at) = key.find(":targetgroup/") else {
        return false;
    };
    let tg_arn: String = {
        let rest = &key[at + ":targetgroup/".len()..];
        let mut parts = rest.splitn(3, '/');
        let (Some(name), Some(id)) = (parts.next(), parts.next()) else {
            return false;
        };
        format!("{}:targetgroup/{name}/{id}", &key[..at])
    };
    super::get_target_group(state, &tg_arn).is_ok()
}

/// An IP address, or a host name of letters, digits, hyphens and dots.
fn check_id(at: &str, id: &str) -> Result<()> {
    let host = !id.is_empty()
        && id.len() <= 253
        && id.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if id.parse::<std::net::IpAddr>().is_ok() || host {
        return Ok(());
    }
    Err(invalid(format!(
        "{at}.Id: {} must be an IP address (or a host name) the proxies can reach, e.g. 10.0.0.5",
        quote(id)
    )))
}

/// `(Id, Port)` pairs as a request gave them; a missing port is the target group's.
pub fn register(state: &State, arn: &str, targets: &[(String, Option<i32>)]) -> Result<()> {
    if targets.is_empty() {
        return Err(invalid(
            "Targets: give at least one target (Id=ADDRESS,Port=PORT)",
        ));
    }
    for (i, (id, port)) in targets.iter().enumerate() {
        let at = format!("Targets.member.{}", i + 1);
        check_id(&at, id)?;
        if let Some(p) = port {
            super::check::port(&format!("{at}.Port"), *p)?;
        }
    }
    let key = super::tg_key(arn)?;
    let most = state.limits().elb.targets_per_target_group;
    state.update(|tx| {
        let mut tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
            .ok_or_else(|| super::tg_not_found(arn))?;
        if tg.target_type != "ip" {
            return Err(Error::elb(
                "InvalidTarget",
                format!(
                    "TargetGroupArn: target group {} has target type {}; Berth registers the tasks of attached services there. Register addresses in a target group made with --target-type ip",
                    tg.name, tg.target_type
                ),
            ));
        }
        for (id, port) in targets {
            let port = port.unwrap_or(tg.port);
            match tg.registered.iter_mut().find(|t| t.id == *id && t.port == port) {
                // Registering a draining target again takes it back.
                Some(t) => t.deregistered_at.clear(),
                None => tg.registered.push(ElbRegisteredTarget {
                    id: id.clone(),
                    port,
                    registered_at: crate::time::now(),
                    deregistered_at: String::new(),
                }),
            }
        }
        if tg.registered.len() > most {
            return Err(Error::elb(
                "TooManyTargets",
                format!(
                    "Targets: {} registered targets is over the quota of targets per target group ({most})",
                    tg.registered.len()
                ),
            ));
        }
        Ok(((), vec![put(key.clone(), &tg)]))
    })
}

/// Starts the drain of each target; one not registered is an error naming it.
pub fn deregister(state: &State, arn: &str, targets: &[(String, Option<i32>)]) -> Result<()> {
    if targets.is_empty() {
        return Err(invalid(
            "Targets: give at least one target (Id=ADDRESS,Port=PORT)",
        ));
    }
    let key = super::tg_key(arn)?;
    state.update(|tx| {
        let mut tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
            .ok_or_else(|| super::tg_not_found(arn))?;
        let now = crate::time::now();
        for (i, (id, port)) in targets.iter().enumerate() {
            let port = port.unwrap_or(tg.port);
            let Some(t) = tg.registered.iter_mut().find(|t| t.id == *id && t.port == port) else {
                return Err(Error::elb(
                    "InvalidTarget",
                    format!(
                        "Targets.member.{}: {id}:{port} is not registered in target group {}; `aws elbv2 describe-target-health` lists its targets",
                        i + 1,
                        tg.name
                    ),
                ));
            };
            if t.deregistered_at.is_empty() {
                t.deregistered_at = now.clone();
            }
        }
        Ok(((), vec![put(key.clone(), &tg)]))
    })
}

/// Whether a deregistered target's drain is over at `now_ms`.
fn drained(tg: &ElbTargetGroup, t: &ElbRegisteredTarget, now_ms: i64) -> bool {
    !t.deregistered_at.is_empty()
        && berth_core::time::parse_rfc3339(&t.deregistered_at)
            .is_some_and(|at| now_ms - at >= i64::from(tg.deregistration_delay_seconds) * 1000)
}

/// A target group's registered targets as routing targets: draining ones stay until their drain
/// is over.
pub fn routing_targets(tg: &ElbTargetGroup, now_ms: i64) -> Vec<Target> {
    tg.registered
        .iter()
        .filter(|t| !drained(tg, t, now_ms))
        .map(|t| Target {
            task_arn: target_key(tg, t),
            address: t.id.clone(),
            port: t.port,
            draining: !t.deregistered_at.is_empty(),
        })
        .collect()
}

/// Removes the targets whose drain is over (run by the leader every few seconds).
pub fn sweep(state: &State, now_ms: i64) -> Result<usize> {
    let mut removed = 0;
    for tg in state.scan::<ElbTargetGroup>(keys::TARGET_GROUPS)? {
        if !tg.registered.iter().any(|t| drained(&tg, t, now_ms)) {
            continue;
        }
        let key = keys::target_group(&tg.name);
        removed += state.update(|tx| {
            let Some(mut tg) = tx.get::<ElbTargetGroup>(&key)? else {
                return Ok((0, Vec::new()));
            };
            let before = tg.registered.len();
            let copy = tg.clone();
            tg.registered.retain(|t| !drained(&copy, t, now_ms));
            let n = before - tg.registered.len();
            Ok((
                n,
                if n == 0 {
                    Vec::new()
                } else {
                    vec![put(key.clone(), &tg)]
                },
            ))
        })?;
    }
    Ok(removed)
}
