//! Application load balancers as resources (the ELBv2 model) over the built-in proxy: load
//! balancers, their listeners and rules, and target groups that services attach to by ARN. This
//! is the service layer every transport calls (the ELBv2 Query API, the CLI's gRPC); it validates,
//! then commits through `State::update`. Routes are derived from these records by `endpoints`.

pub mod attributes;
mod check;
mod ops;
pub mod priorities;
pub mod registered;
mod rule_check;
pub mod tags;
mod targets;
mod tcp;
pub mod tls;
mod views;

pub use check::{HealthInput, NewListener, NewRule, NewTargetGroup};
pub use ops::*;
pub(crate) use rule_check::order as check_order;
pub use targets::{
    attach, attached_services, check_targets, service_targets, target_health, TargetHealthRow,
    TargetStates,
};
pub use tls::{add_listener_certificates, listener_certificates, remove_listener_certificates};
pub use views::{load_balancer_view, target_group_view};

use crate::state::error::{Error, Result};
use crate::state::State;
use berth_proto::v1::{ElbListener, ElbLoadBalancer, ElbRule, ElbTargetGroup};

/// Key layout under `elbv2/`.
pub mod keys {
    pub const ALL: &str = "elbv2/";
    pub const LOAD_BALANCERS: &str = "elbv2/lb/";
    pub const TARGET_GROUPS: &str = "elbv2/tg/";
    pub const LISTENERS: &str = "elbv2/listener/";
    pub const RULES: &str = "elbv2/rule/";
    pub fn load_balancer(name: &str) -> String {
        format!("{LOAD_BALANCERS}{name}")
    }
    pub fn target_group(name: &str) -> String {
        format!("{TARGET_GROUPS}{name}")
    }
    pub fn listeners_of(lb: &str) -> String {
        format!("{LISTENERS}{lb}/")
    }
    pub fn listener(lb: &str, id: &str) -> String {
        format!("{LISTENERS}{lb}/{id}")
    }
    pub fn rules_of(lb: &str, listener: &str) -> String {
        format!("{RULES}{lb}/{listener}/")
    }
    pub fn rules_of_lb(lb: &str) -> String {
        format!("{RULES}{lb}/")
    }
    pub fn rule(lb: &str, listener: &str, id: &str) -> String {
        format!("{RULES}{lb}/{listener}/{id}")
    }
}

/// `arn:aws:elasticloadbalancing:REGION:ACCOUNT`, the region and account of the server's ARNs.
pub fn arn_prefix() -> String {
    berth_core::arn::prefix().replacen(":ecs:", ":elasticloadbalancing:", 1)
}

/// A new 16-hex-digit id, as ELBv2 ARNs end in.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The part of an ELBv2 ARN after `arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:`, split on
/// `/`: `["loadbalancer", "app", NAME, ID]`. Any region and account, as ECS ARNs are read.
fn resource(arn: &str) -> Option<Vec<&str>> {
    let mut parts = arn.splitn(6, ':');
    let (a, _, service, _, _) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (a == "arn" && service == "elasticloadbalancing").then_some(())?;
    Some(parts.next()?.split('/').collect())
}

/// The resource part (`loadbalancer/app/web/ID`) that two ARNs of one object share whatever
/// region and account a client addressed.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let tail = |s: &str| s.splitn(6, ':').nth(5).map(str::to_string);
    tail(a).is_some() && tail(a) == tail(b)
}

/// The id a load balancer's ARN ends in (listener and rule ARNs repeat it).
fn lb_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

/// Where a load balancer's ARN points: its name.
fn lb_name(arn: &str) -> Option<&str> {
    match resource(arn)?.as_slice() {
        ["loadbalancer", "app" | "net", name, _id] => Some(name),
        _ => None,
    }
}

fn tg_name(arn: &str) -> Option<&str> {
    match resource(arn)?.as_slice() {
        ["targetgroup", name, _id] => Some(name),
        _ => None,
    }
}

/// A listener's key parts: load balancer name and listener id.
fn listener_parts(arn: &str) -> Option<(&str, &str)> {
    match resource(arn)?.as_slice() {
        ["listener", "app" | "net", lb, _lbid, id] => Some((lb, id)),
        _ => None,
    }
}

fn rule_parts(arn: &str) -> Option<(&str, &str, &str)> {
    match resource(arn)?.as_slice() {
        ["listener-rule", "app" | "net", lb, _lbid, listener, id] => Some((lb, listener, id)),
        _ => None,
    }
}

pub(crate) fn lb_not_found(arn: &str) -> Error {
    Error::elb(
        "LoadBalancerNotFound",
        format!(
            "load balancer {} not found; `aws elbv2 describe-load-balancers` lists them",
            crate::state::error::quote(arn)
        ),
    )
}

pub(crate) fn tg_not_found(arn: &str) -> Error {
    Error::elb(
        "TargetGroupNotFound",
        format!(
            "target group {} not found; `aws elbv2 describe-target-groups` lists them",
            crate::state::error::quote(arn)
        ),
    )
}

pub(crate) fn listener_not_found(arn: &str) -> Error {
    Error::elb(
        "ListenerNotFound",
        format!(
            "listener {} not found; `aws elbv2 describe-listeners --load-balancer-arn ARN` lists them",
            crate::state::error::quote(arn)
        ),
    )
}

pub(crate) fn rule_not_found(arn: &str) -> Error {
    Error::elb(
        "RuleNotFound",
        format!(
            "rule {} not found; `aws elbv2 describe-rules --listener-arn ARN` lists them",
            crate::state::error::quote(arn)
        ),
    )
}

/// The key a load balancer ARN (or bare name) is stored under.
pub(crate) fn lb_key(arn: &str) -> Result<String> {
    let name = if arn.starts_with("arn:") {
        lb_name(arn).ok_or_else(|| lb_not_found(arn))?
    } else {
        arn
    };
    Ok(keys::load_balancer(name))
}

pub(crate) fn tg_key(arn: &str) -> Result<String> {
    let name = if arn.starts_with("arn:") {
        tg_name(arn).ok_or_else(|| tg_not_found(arn))?
    } else {
        arn
    };
    Ok(keys::target_group(name))
}

pub(crate) fn listener_key(arn: &str) -> Result<String> {
    let (lb, id) = listener_parts(arn).ok_or_else(|| listener_not_found(arn))?;
    Ok(keys::listener(lb, id))
}

pub(crate) fn rule_key(arn: &str) -> Result<String> {
    let (lb, listener, id) = rule_parts(arn).ok_or_else(|| rule_not_found(arn))?;
    Ok(keys::rule(lb, listener, id))
}

/// A load balancer by ARN or name.
pub fn get_load_balancer(state: &State, arn: &str) -> Result<ElbLoadBalancer> {
    state
        .get::<ElbLoadBalancer>(&lb_key(arn)?)?
        .filter(|lb| !arn.starts_with("arn:") || same(&lb.arn, arn))
        .ok_or_else(|| lb_not_found(arn))
}

/// A target group by ARN or name.
pub fn get_target_group(state: &State, arn: &str) -> Result<ElbTargetGroup> {
    state
        .get::<ElbTargetGroup>(&tg_key(arn)?)?
        .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
        .ok_or_else(|| tg_not_found(arn))
}

pub fn get_listener(state: &State, arn: &str) -> Result<ElbListener> {
    state
        .get::<ElbListener>(&listener_key(arn)?)?
        .filter(|l| same(&l.arn, arn))
        .ok_or_else(|| listener_not_found(arn))
}

/// A rule by ARN; a listener's default rule is made up from the listener.
pub fn get_rule(state: &State, arn: &str) -> Result<ElbRule> {
    if let Some(rule) = state
        .get::<ElbRule>(&rule_key(arn)?)?
        .filter(|r| same(&r.arn, arn))
    {
        return Ok(rule);
    }
    let (lb, listener, _) = rule_parts(arn).ok_or_else(|| rule_not_found(arn))?;
    state
        .get::<ElbListener>(&keys::listener(lb, listener))?
        .filter(|l| same(&l.default_rule_arn, arn))
        .map(|l| default_rule(&l))
        .ok_or_else(|| rule_not_found(arn))
}

/// The default rule of a listener: no conditions, its default actions, evaluated last.
pub fn default_rule(l: &ElbListener) -> ElbRule {
    ElbRule {
        arn: l.default_rule_arn.clone(),
        listener_arn: l.arn.clone(),
        priority: 0,
        conditions: Vec::new(),
        actions: l.default_actions.clone(),
        ..Default::default()
    }
}

pub fn is_default(rule: &ElbRule) -> bool {
    rule.priority == 0 && rule.conditions.is_empty()
}

pub fn list_load_balancers(state: &State) -> Result<Vec<ElbLoadBalancer>> {
    state.scan(keys::LOAD_BALANCERS)
}

pub fn list_target_groups(state: &State) -> Result<Vec<ElbTargetGroup>> {
    state.scan(keys::TARGET_GROUPS)
}

/// A load balancer's listeners, by port.
pub fn listeners_of(state: &State, lb: &ElbLoadBalancer) -> Result<Vec<ElbListener>> {
    let mut out: Vec<ElbListener> = state.scan(&keys::listeners_of(&lb.name))?;
    out.sort_by_key(|l| l.port);
    Ok(out)
}

/// A listener's rules by priority, its default rule last.
pub fn rules_of(state: &State, l: &ElbListener) -> Result<Vec<ElbRule>> {
    let (lb, id) = listener_parts(&l.arn).ok_or_else(|| listener_not_found(&l.arn))?;
    let mut out: Vec<ElbRule> = state.scan(&keys::rules_of(lb, id))?;
    out.sort_by_key(|r| r.priority);
    out.push(default_rule(l));
    Ok(out)
}

/// Where people reach a load balancer: `HOST:PORT` of its first listener, or the host alone
/// before it has one.
pub fn dns_name(lb: &ElbLoadBalancer, listeners: &[ElbListener]) -> String {
    match listeners.iter().map(|l| l.port).min() {
        Some(port) => format!("{}:{port}", lb.dns_host),
        None => lb.dns_host.clone(),
    }
}

/// Whether a load balancer is a network one (TCP listeners and target groups).
pub fn is_network(lb: &ElbLoadBalancer) -> bool {
    lb.r#type == "network"
}

/// The ARN segment of a load balancer's kind: `app` or `net`.
pub(crate) fn arn_kind(lb: &ElbLoadBalancer) -> &'static str {
    if is_network(lb) {
        "net"
    } else {
        "app"
    }
}

/// The target groups an action list forwards to.
pub fn forwarded(actions: &[berth_proto::v1::ElbAction]) -> impl Iterator<Item = &str> {
    actions
        .iter()
        .flat_map(|a| a.target_groups.iter().map(|t| t.target_group_arn.as_str()))
}

/// The load balancers whose listeners or rules forward to `tg`.
pub fn load_balancers_of(state: &State, tg: &ElbTargetGroup) -> Result<Vec<String>> {
    let mut out = std::collections::BTreeSet::new();
    for l in state.scan::<ElbListener>(keys::LISTENERS)? {
        if forwarded(&l.default_actions).any(|a| same(a, &tg.arn)) {
            out.insert(l.load_balancer_arn.clone());
        }
    }
    for r in state.scan::<ElbRule>(keys::RULES)? {
        if forwarded(&r.actions).any(|a| same(a, &tg.arn)) {
            if let Some((lb, _, _)) = rule_parts(&r.arn) {
                if let Some(lb) = state.get::<ElbLoadBalancer>(&keys::load_balancer(lb))? {
                    out.insert(lb.arn);
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_iac;
#[cfg(test)]
mod tests_rules;
