//! The attributes of load balancers, target groups and listeners (Describe/Modify…Attributes):
//! one table of every key Berth knows, with its default and the values it takes. A record stores
//! only what was set; describes fill in the defaults. Keys with an effect reach the proxies
//! through the routes (`endpoints::elb`); the rest are accepted so IaC tools that always send
//! them (Terraform's `aws_lb`) work, and say so in `effect`.

use super::check::invalid;
use super::same;
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State};
use berth_core::plan::drain::DEFAULT_DRAIN_TIMEOUT_S;
use berth_proto::v1::{ElbListener, ElbLoadBalancer, ElbTargetGroup, Service};
use std::collections::HashMap;

/// Which resource an attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LoadBalancer,
    TargetGroup,
    Listener,
}

/// The values an attribute takes.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    Bool,
    /// A whole number in this range.
    Range(i64, i64),
    /// 0, or a whole number in this range (slow start: off, or 30-900 s).
    ZeroOr(i64, i64),
    OneOf(&'static [&'static str]),
}

pub struct Attribute {
    pub kind: Kind,
    pub key: &'static str,
    pub default: &'static str,
    pub values: Values,
    /// What Berth does with it (for the docs and this table's readers).
    pub effect: &'static str,
}

const fn row(
    kind: Kind,
    key: &'static str,
    default: &'static str,
    values: Values,
    effect: &'static str,
) -> Attribute {
    Attribute {
        kind,
        key,
        default,
        values,
        effect,
    }
}

use Kind::{Listener as L, LoadBalancer as Lb, TargetGroup as Tg};

/// Every attribute Berth accepts. Add a row to serve a new key.
pub const ATTRIBUTES: &[Attribute] = &[
    row(Lb, "idle_timeout.timeout_seconds", "60", Values::Range(1, 4000), "stored; the proxy's idle timeout is per process"),
    row(Lb, "routing.http.drop_invalid_header_fields.enabled", "false", Values::Bool, "header names that are not RFC 9110 tokens are dropped before forwarding"),
    row(Lb, "routing.http.xff_header_processing.mode", "append", Values::OneOf(&["append", "preserve", "remove"]), "append: the client's address is added to X-Forwarded-For; preserve: the client's header is sent as it came; remove: none is sent"),
    row(Lb, "deletion_protection.enabled", "false", Values::Bool, "delete-load-balancer is refused while true"),
    row(Lb, "routing.http2.enabled", "true", Values::Bool, "stored; the proxy always offers HTTP/2"),
    row(Lb, "access_logs.s3.enabled", "false", Values::OneOf(&["false"]), "Berth keeps no S3 access logs"),
    row(Tg, "deregistration_delay.timeout_seconds", "30", Values::Range(0, 3600), "how long a leaving target drains"),
    row(Tg, "slow_start.duration_seconds", "0", Values::ZeroOr(30, 900), "a new healthy target's share ramps up over this long"),
    row(Tg, "load_balancing.algorithm.type", "round_robin", Values::OneOf(&["round_robin", "least_outstanding_requests"]), "how the proxy picks a target"),
    row(Tg, "stickiness.enabled", "false", Values::Bool, "with stickiness.type lb_cookie, an AWSALB cookie keeps a client on its target"),
    row(Tg, "stickiness.type", "lb_cookie", Values::OneOf(&["lb_cookie", "app_cookie"]), "lb_cookie is served; app_cookie is stored only"),
    row(Tg, "proxy_protocol_v2.enabled", "false", Values::Bool, "TCP target groups: each connection to a target starts with a PROXY protocol v2 header naming the client"),
    row(Tg, "stickiness.lb_cookie.duration_seconds", "86400", Values::Range(1, 604_800), "the AWSALB cookie's lifetime"),
    row(L, "routing.http.response.server.enabled", "true", Values::Bool, "stored"),
    row(L, "berth.proxy_protocol.inbound.enabled", "false", Values::Bool, "connections must start with a PROXY v1/v2 header naming the client (Berth behind another load balancer)"),
];

/// The attributes of `kind` with `stored` over the defaults, in table order.
pub fn effective(kind: Kind, stored: &HashMap<String, String>) -> Vec<(String, String)> {
    ATTRIBUTES
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| {
            let v = stored.get(a.key).map_or(a.default, String::as_str);
            (a.key.to_string(), v.to_string())
        })
        .collect()
}

/// One attribute's value as stored (or its default).
pub fn value<'a>(kind: Kind, stored: &'a HashMap<String, String>, key: &str) -> &'a str {
    stored.get(key).map(String::as_str).unwrap_or_else(|| {
        ATTRIBUTES
            .iter()
            .find(|a| a.kind == kind && a.key == key)
            .map_or("", |a| a.default)
    })
}

/// Checks each `(key, value)` of a Modify…Attributes request; errors name
/// `Attributes.member.N.Key` or `.Value`.
pub fn check(kind: Kind, given: &[(String, String)]) -> Result<()> {
    if given.is_empty() {
        return Err(invalid("Attributes: give at least one Key and Value"));
    }
    for (i, (key, v)) in given.iter().enumerate() {
        let at = format!("Attributes.member.{}", i + 1);
        let Some(a) = ATTRIBUTES.iter().find(|a| a.kind == kind && a.key == key) else {
            let known: Vec<&str> = ATTRIBUTES
                .iter()
                .filter(|a| a.kind == kind)
                .map(|a| a.key)
                .collect();
            return Err(invalid(format!(
                "{at}.Key: {} is not an attribute Berth serves here; use one of {}",
                quote(key),
                known.join(", ")
            )));
        };
        let n = v.trim().parse::<i64>().ok();
        let (ok, how) = match a.values {
            Values::Bool => (
                matches!(v.as_str(), "true" | "false"),
                "true or false".to_string(),
            ),
            Values::Range(lo, hi) => (
                n.is_some_and(|n| (lo..=hi).contains(&n)),
                format!("{lo}-{hi}"),
            ),
            Values::ZeroOr(lo, hi) => (
                n.is_some_and(|n| n == 0 || (lo..=hi).contains(&n)),
                format!("0 (off) or {lo}-{hi}"),
            ),
            Values::OneOf(set) => (set.contains(&v.as_str()), set.join(" or ")),
        };
        if !ok {
            return Err(invalid(format!(
                "{at}.Value: {} for {key} must be {how}",
                quote(v)
            )));
        }
    }
    Ok(())
}

/// A target group's attributes: the deregistration delay lives in its own field (the drain
/// path reads it), the rest in `attributes`.
pub fn target_group(tg: &ElbTargetGroup) -> Vec<(String, String)> {
    let mut stored = tg.attributes.clone();
    stored.insert(
        "deregistration_delay.timeout_seconds".into(),
        tg.deregistration_delay_seconds.to_string(),
    );
    effective(Kind::TargetGroup, &stored)
}

pub fn modify_target_group(
    state: &State,
    arn: &str,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    check(Kind::TargetGroup, given)?;
    let key = super::tg_key(arn)?;
    state.update(|tx| {
        let mut tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
            .ok_or_else(|| super::tg_not_found(arn))?;
        let mut ops = Vec::new();
        for (k, v) in given {
            if k == "proxy_protocol_v2.enabled" && tg.protocol != "TCP" {
                return Err(invalid(format!(
                    "Attributes: {k} applies to TCP target groups; {} is {}",
                    tg.name, tg.protocol
                )));
            }
            if k == "deregistration_delay.timeout_seconds" {
                let delay: i32 = v.trim().parse().unwrap_or(DEFAULT_DRAIN_TIMEOUT_S);
                tg.deregistration_delay_seconds = delay;
                // Attached services keep the delay their drains wait (set at attach).
                for s in tx.scan::<Service>(crate::state::keys::SERVICES)? {
                    let mut s2 = s.clone();
                    let mut touched = false;
                    for lb in &mut s2.load_balancers {
                        if same(&lb.target_group_arn, &tg.arn)
                            && lb.drain_timeout_seconds != Some(delay)
                        {
                            lb.drain_timeout_seconds = Some(delay);
                            touched = true;
                        }
                    }
                    if touched && s.status != "INACTIVE" {
                        let key = crate::state::keys::service(
                            berth_core::arn::cluster_name(&s2.cluster_arn),
                            &s2.service_name,
                        );
                        ops.push(put(key, &s2));
                    }
                }
            } else {
                tg.attributes.insert(k.clone(), v.clone());
            }
        }
        ops.push(put(key.clone(), &tg));
        Ok((target_group(&tg), ops))
    })
}

pub fn modify_load_balancer(
    state: &State,
    arn: &str,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    check(Kind::LoadBalancer, given)?;
    let key = super::lb_key(arn)?;
    state.update(|tx| {
        let mut lb = tx
            .get::<ElbLoadBalancer>(&key)?
            .filter(|lb| !arn.starts_with("arn:") || same(&lb.arn, arn))
            .ok_or_else(|| super::lb_not_found(arn))?;
        lb.attributes.extend(given.iter().cloned());
        Ok((
            effective(Kind::LoadBalancer, &lb.attributes),
            vec![put(key.clone(), &lb)],
        ))
    })
}

pub fn modify_listener(
    state: &State,
    arn: &str,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    check(Kind::Listener, given)?;
    let key = super::listener_key(arn)?;
    state.update(|tx| {
        let mut l = tx
            .get::<ElbListener>(&key)?
            .filter(|l| same(&l.arn, arn))
            .ok_or_else(|| super::listener_not_found(arn))?;
        l.attributes.extend(given.iter().cloned());
        Ok((
            effective(Kind::Listener, &l.attributes),
            vec![put(key.clone(), &l)],
        ))
    })
}

/// Refuses to delete a load balancer with deletion protection on.
pub fn deletable(lb: &ElbLoadBalancer) -> Result<()> {
    if value(
        Kind::LoadBalancer,
        &lb.attributes,
        "deletion_protection.enabled",
    ) == "true"
    {
        return Err(Error::elb(
            "OperationNotPermitted",
            format!(
                "load balancer {} has deletion protection; turn it off first: aws elbv2 modify-load-balancer-attributes --attributes Key=deletion_protection.enabled,Value=false",
                lb.name
            ),
        ));
    }
    Ok(())
}
