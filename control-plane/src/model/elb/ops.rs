//! Creating, changing and deleting ELBv2 resources: each one optimistic transaction that reads
//! what its decision rests on (names, ports, priorities, the target groups it forwards to), so a
//! rejected request changes nothing and two racing ones cannot both win.

use super::check::{self, invalid, HealthInput, NewListener, NewRule, NewTargetGroup};
use super::{keys, new_id, same};
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State, Tx};
use crate::store::Op;
use berth_core::limits::{ElbQuotas, Limits};
use berth_proto::v1::{
    ElbAction, ElbCondition, ElbListener, ElbLoadBalancer, ElbRule, ElbTargetGroup, Service,
};
use std::sync::RwLock;

static DNS_HOST: RwLock<Option<String>> = RwLock::new(None);

/// The host new load balancers are reached at (`--lb-host-name`; 127.0.0.1 by default).
pub fn configure_dns_host(host: &str) {
    *DNS_HOST.write().unwrap_or_else(|p| p.into_inner()) = Some(host.to_string());
}

fn dns_host() -> String {
    DNS_HOST
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into())
}

pub fn create_load_balancer(state: &State, name: &str, scheme: &str) -> Result<ElbLoadBalancer> {
    create_load_balancer_of(state, name, scheme, "application")
}

/// `kind`: application (HTTP) or network (TCP).
pub fn create_load_balancer_of(
    state: &State,
    name: &str,
    scheme: &str,
    kind: &str,
) -> Result<ElbLoadBalancer> {
    check::name("Name", name)?;
    let kind = match kind {
        "" | "application" => "application",
        "network" => "network",
        other => {
            return Err(invalid(format!(
                "Type: {} is not served by Berth's proxy; use application (HTTP) or network (TCP)",
                quote(other)
            )))
        }
    };
    let scheme = match scheme {
        "" => "internet-facing",
        s @ ("internet-facing" | "internal") => s,
        other => {
            return Err(invalid(format!(
                "Scheme: {} must be internet-facing or internal",
                quote(other)
            )))
        }
    };
    let key = keys::load_balancer(name);
    state.update(|tx| {
        if let Some(existing) = tx.get::<ElbLoadBalancer>(&key)? {
            if existing.scheme == scheme && super::is_network(&existing) == (kind == "network") {
                // ELBv2 answers a repeated create with the same settings with what exists.
                return Ok((existing, Vec::new()));
            }
            return Err(Error::elb(
                "DuplicateLoadBalancerName",
                format!("Name: a load balancer named {name} already exists (scheme {}, type {}); pick another name or delete it first", existing.scheme, if existing.r#type.is_empty() { "application" } else { &existing.r#type }),
            ));
        }
        let lb = ElbLoadBalancer {
            arn: format!(
                "{}:loadbalancer/{}/{name}/{}",
                super::arn_prefix(),
                if kind == "network" { "net" } else { "app" },
                new_id()
            ),
            name: name.to_string(),
            scheme: scheme.to_string(),
            created_at: crate::time::now(),
            dns_host: dns_host(),
            r#type: if kind == "network" { kind.to_string() } else { String::new() },
            ..Default::default()
        };
        Ok((lb.clone(), vec![put(key.clone(), &lb)]))
    })
}

/// Deletes a load balancer with its listeners and their rules.
pub fn delete_load_balancer(state: &State, arn: &str) -> Result<()> {
    let key = super::lb_key(arn)?;
    state.update(|tx| {
        let lb = tx
            .get::<ElbLoadBalancer>(&key)?
            .filter(|lb| !arn.starts_with("arn:") || same(&lb.arn, arn))
            .ok_or_else(|| super::lb_not_found(arn))?;
        super::attributes::deletable(&lb)?;
        let mut ops = vec![Op::Delete(key.clone())];
        for k in tx.scan_keys(&keys::listeners_of(&lb.name))? {
            ops.push(Op::Delete(k));
        }
        for k in tx.scan_keys(&keys::rules_of_lb(&lb.name))? {
            ops.push(Op::Delete(k));
        }
        Ok(((), ops))
    })
}

pub fn create_target_group(state: &State, req: NewTargetGroup) -> Result<ElbTargetGroup> {
    check::name("Name", &req.name)?;
    let protocol = if req.protocol.is_empty() {
        "HTTP"
    } else {
        &req.protocol
    };
    check::target_group_protocol("Protocol", protocol)?;
    let target_type = match req.target_type.as_str() {
        "" => "instance",
        t @ ("instance" | "ip") => t,
        other => {
            return Err(invalid(format!(
                "TargetType: {} is not served by Berth's proxy; use instance or ip (tasks register by address either way)",
                quote(other)
            )))
        }
    };
    let port = req.port.ok_or_else(|| {
        invalid("Port: is required for a target group of instances or IP addresses (1-65535)")
    })?;
    check::port("Port", port)?;
    // A TCP target group checks by connecting unless told to check over HTTP (NLB's default).
    let base = berth_proto::v1::TargetHealthCheck {
        protocol: if protocol == "TCP" {
            "TCP".into()
        } else {
            String::new()
        },
        ..Default::default()
    };
    let hc = req
        .health
        .over(&berth_core::lb::health_check_with_defaults(Some(&base)));
    check::health(&hc)?;
    check::health_protocol(protocol, &hc.protocol)?;
    let delay = req
        .deregistration_delay_seconds
        .unwrap_or(berth_core::plan::drain::DEFAULT_DRAIN_TIMEOUT_S);
    check::deregistration_delay(delay)?;
    let key = keys::target_group(&req.name);
    state.update(|tx| {
        if let Some(existing) = tx.get::<ElbTargetGroup>(&key)? {
            if existing.port == port
                && existing.protocol == protocol
                && existing.health_check.as_ref() == Some(&hc)
            {
                return Ok((existing, Vec::new()));
            }
            return Err(Error::elb(
                "DuplicateTargetGroupName",
                format!(
                    "Name: a target group named {} already exists with other settings; pick another name or change it with modify-target-group",
                    req.name
                ),
            ));
        }
        let tg = ElbTargetGroup {
            arn: format!(
                "{}:targetgroup/{}/{}",
                super::arn_prefix(),
                req.name,
                new_id()
            ),
            name: req.name.clone(),
            protocol: protocol.to_string(),
            port,
            target_type: target_type.to_string(),
            vpc_id: req.vpc_id.clone(),
            health_check: Some(hc.clone()),
            deregistration_delay_seconds: delay,
            created_at: crate::time::now(),
            ..Default::default()
        };
        Ok((tg.clone(), vec![put(key.clone(), &tg)]))
    })
}

/// Changes a target group's health check; proxies pick it up with the next routing table.
pub fn modify_target_group(
    state: &State,
    arn: &str,
    health: &HealthInput,
    deregistration_delay_seconds: Option<i32>,
) -> Result<ElbTargetGroup> {
    let key = super::tg_key(arn)?;
    state.update(|tx| {
        let mut tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
            .ok_or_else(|| super::tg_not_found(arn))?;
        let hc = health.over(&tg.health_check.clone().unwrap_or_default());
        check::health(&hc)?;
        check::health_protocol(&tg.protocol, &hc.protocol)?;
        tg.health_check = Some(hc);
        if let Some(d) = deregistration_delay_seconds {
            check::deregistration_delay(d)?;
            tg.deregistration_delay_seconds = d;
        }
        Ok((tg.clone(), vec![put(key.clone(), &tg)]))
    })
}

/// Deletes a target group no listener, rule or active service uses.
pub fn delete_target_group(state: &State, arn: &str) -> Result<()> {
    let key = super::tg_key(arn)?;
    state.update(|tx| {
        let tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
            .ok_or_else(|| super::tg_not_found(arn))?;
        let in_use = |what: String| {
            Error::elb(
                "ResourceInUse",
                format!(
                    "target group {} is in use by {what}; remove it from there first",
                    tg.name
                ),
            )
        };
        for l in tx.scan::<ElbListener>(keys::LISTENERS)? {
            if super::forwarded(&l.default_actions).any(|a| same(a, &tg.arn)) {
                return Err(in_use(format!("listener {}", l.arn)));
            }
        }
        for r in tx.scan::<ElbRule>(keys::RULES)? {
            if super::forwarded(&r.actions).any(|a| same(a, &tg.arn)) {
                return Err(in_use(format!("rule {}", r.arn)));
            }
        }
        for s in tx.scan::<Service>(crate::state::keys::SERVICES)? {
            let attached = s
                .load_balancers
                .iter()
                .any(|l| same(&l.target_group_arn, &tg.arn));
            if attached && s.status != "INACTIVE" {
                return Err(in_use(format!("service {}", s.service_arn)));
            }
        }
        Ok(((), vec![Op::Delete(key.clone())]))
    })
}

/// Every target group the actions name exists; its ARN is rewritten to the stored one.
fn resolve_actions(
    tx: &mut Tx<'_>,
    quotas: &ElbQuotas,
    field: &str,
    actions: &[ElbAction],
) -> Result<Vec<ElbAction>> {
    super::rule_check::actions(field, actions, quotas)?;
    let mut out = actions.to_vec();
    for a in &mut out {
        for t in &mut a.target_groups {
            let key = super::tg_key(&t.target_group_arn)?;
            let tg = tx
                .get::<ElbTargetGroup>(&key)?
                .filter(|tg| {
                    !t.target_group_arn.starts_with("arn:") || same(&tg.arn, &t.target_group_arn)
                })
                .ok_or_else(|| super::tg_not_found(&t.target_group_arn))?;
            t.target_group_arn = tg.arn;
        }
    }
    Ok(out)
}

/// `port` is not one this server serves on itself, no other listener's, nor a service's own
/// `--lb-port` (every load balancer shares the proxies' ports); where this process runs a proxy,
/// no other process may hold it either.
fn port_free(tx: &mut Tx<'_>, limits: &Limits, port: i32, except: &str) -> Result<()> {
    if let Some(owner) = limits.own_ports.owner(port) {
        return Err(Error::elb(
            "InvalidConfigurationRequest",
            format!("Port: {port} is {owner}; pick another port for the listener"),
        ));
    }
    for l in tx.scan::<ElbListener>(keys::LISTENERS)? {
        if l.port == port && l.arn != except {
            return Err(Error::elb(
                "DuplicateListener",
                format!("Port: {port} already has listener {} (the proxies' ports are shared by every load balancer); pick another port", l.arn),
            ));
        }
    }
    for s in tx.scan::<Service>(crate::state::keys::SERVICES)? {
        if s.status != "INACTIVE" && s.load_balancers.iter().any(|l| l.listener_port == port) {
            return Err(Error::elb(
                "DuplicateListener",
                format!(
                    "Port: {port} is the listener port of service {}; pick another port",
                    s.service_name
                ),
            ));
        }
    }
    if let Some(ip) = limits.listener_bind {
        held_elsewhere(ip, port)?;
    }
    Ok(())
}

/// Binds `ip:port` for a moment: a port another process listens on could never be served.
fn held_elsewhere(ip: std::net::IpAddr, port: i32) -> Result<()> {
    let Ok(p) = u16::try_from(port) else {
        return Ok(());
    };
    match std::net::TcpListener::bind((ip, p)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::elb(
            "InvalidConfigurationRequest",
            format!("Port: {port} is held by another process on {ip} (the load balancer could never listen there); pick another port or stop that process"),
        )),
        _ => Ok(()),
    }
}

pub fn create_listener(state: &State, req: NewListener) -> Result<ElbListener> {
    check::port("Port", req.port)?;
    let lb_key = super::lb_key(&req.load_balancer_arn)?;
    let limits = state.limits();
    state.update(|tx| {
        let lb = tx
            .get::<ElbLoadBalancer>(&lb_key)?
            .filter(|lb| {
                !req.load_balancer_arn.starts_with("arn:") || same(&lb.arn, &req.load_balancer_arn)
            })
            .ok_or_else(|| super::lb_not_found(&req.load_balancer_arn))?;
        let protocol = match req.protocol.as_str() {
            "" if super::is_network(&lb) => "TCP",
            "" => "HTTP",
            p => p,
        };
        check::listener_protocol("Protocol", &lb, protocol)?;
        let actions = resolve_actions(tx, &limits.elb, "DefaultActions", &req.default_actions)?;
        super::tcp::same_protocol(tx, "DefaultActions", protocol, &actions)?;
        let most = limits.elb.listeners_per_load_balancer;
        let have = tx.scan_keys(&keys::listeners_of(&lb.name))?.len();
        if have >= most {
            return Err(Error::elb(
                "TooManyListeners",
                format!(
                    "LoadBalancerArn: load balancer {} already has {have} listeners, the quota of listeners per load balancer ({most}); delete one first",
                    lb.name
                ),
            ));
        }
        port_free(tx, limits, req.port, "")?;
        let (certificate_arns, ssl_policy) =
            super::tls::settle(tx, protocol, &req.certificates, req.ssl_policy.as_deref())?;
        let id = new_id();
        let lb_id = super::lb_id(&lb.arn);
        let listener = ElbListener {
            arn: format!(
                "{}:listener/{}/{}/{lb_id}/{id}",
                super::arn_prefix(),
                super::arn_kind(&lb),
                lb.name
            ),
            load_balancer_arn: lb.arn.clone(),
            port: req.port,
            protocol: protocol.to_string(),
            default_actions: actions,
            default_rule_arn: format!(
                "{}:listener-rule/{}/{}/{lb_id}/{id}/{}",
                super::arn_prefix(),
                super::arn_kind(&lb),
                lb.name,
                new_id()
            ),
            certificate_arns,
            ssl_policy,
            ..Default::default()
        };
        let key = keys::listener(&lb.name, &id);
        Ok((listener.clone(), vec![put(key, &listener)]))
    })
}

/// What ModifyListener may change.
#[derive(Debug, Clone, Default)]
pub struct ListenerChange {
    pub port: Option<i32>,
    pub protocol: Option<String>,
    pub default_actions: Option<Vec<ElbAction>>,
    /// The default certificate (ModifyListener's `Certificates`).
    pub certificates: Option<Vec<String>>,
    pub ssl_policy: Option<String>,
}

pub fn modify_listener(state: &State, arn: &str, change: &ListenerChange) -> Result<ElbListener> {
    let key = super::listener_key(arn)?;
    if let Some(p) = change.port {
        check::port("Port", p)?;
    }
    state.update(|tx| {
        let mut l = tx
            .get::<ElbListener>(&key)?
            .filter(|l| same(&l.arn, arn))
            .ok_or_else(|| super::listener_not_found(arn))?;
        if let Some(p) = change.port.filter(|p| *p != l.port) {
            port_free(tx, state.limits(), p, &l.arn)?;
            l.port = p;
        }
        if let Some(p) = &change.protocol {
            let lb = tx
                .get::<ElbLoadBalancer>(&super::lb_key(&l.load_balancer_arn)?)?
                .ok_or_else(|| super::lb_not_found(&l.load_balancer_arn))?;
            check::listener_protocol("Protocol", &lb, p)?;
            l.protocol = p.clone();
        }
        if l.protocol != "HTTPS" {
            if change.protocol.is_some() && change.certificates.is_none() {
                l.certificate_arns.clear();
                l.ssl_policy.clear();
            }
            let certs = change.certificates.clone().unwrap_or_default();
            super::tls::settle(tx, &l.protocol, &certs, change.ssl_policy.as_deref())?;
        } else {
            // The default certificate changes; the SNI ones stay.
            let default = match &change.certificates {
                Some(c) => c.clone(),
                None => l.certificate_arns.first().cloned().into_iter().collect(),
            };
            let policy = change
                .ssl_policy
                .clone()
                .or_else(|| Some(l.ssl_policy.clone()).filter(|p| !p.is_empty()));
            let (arns, policy) = super::tls::settle(tx, "HTTPS", &default, policy.as_deref())?;
            let rest: Vec<String> = l
                .certificate_arns
                .iter()
                .skip(1)
                .filter(|c| !crate::model::certificates::same(c, &arns[0]))
                .cloned()
                .collect();
            l.certificate_arns = arns.into_iter().chain(rest).collect();
            l.ssl_policy = policy;
        }
        if let Some(a) = &change.default_actions {
            l.default_actions = resolve_actions(tx, &state.limits().elb, "DefaultActions", a)?;
        }
        super::tcp::same_protocol(tx, "DefaultActions", &l.protocol, &l.default_actions)?;
        Ok((l.clone(), vec![put(key.clone(), &l)]))
    })
}

/// Deletes a listener and its rules.
pub fn delete_listener(state: &State, arn: &str) -> Result<()> {
    let key = super::listener_key(arn)?;
    let (lb, id) = super::listener_parts(arn).ok_or_else(|| super::listener_not_found(arn))?;
    let rules = keys::rules_of(lb, id);
    state.update(|tx| {
        tx.get::<ElbListener>(&key)?
            .filter(|l| same(&l.arn, arn))
            .ok_or_else(|| super::listener_not_found(arn))?;
        let mut ops = vec![Op::Delete(key.clone())];
        ops.extend(tx.scan_keys(&rules)?.into_iter().map(Op::Delete));
        Ok(((), ops))
    })
}

pub fn create_rule(state: &State, req: NewRule) -> Result<ElbRule> {
    let quotas = &state.limits().elb;
    check::priority(req.priority)?;
    super::rule_check::conditions(&req.conditions, quotas)?;
    let key = super::listener_key(&req.listener_arn)?;
    let (lb, lid) = super::listener_parts(&req.listener_arn)
        .ok_or_else(|| super::listener_not_found(&req.listener_arn))?;
    state.update(|tx| {
        let l = tx
            .get::<ElbListener>(&key)?
            .filter(|l| same(&l.arn, &req.listener_arn))
            .ok_or_else(|| super::listener_not_found(&req.listener_arn))?;
        if l.protocol == "TCP" {
            return Err(Error::elb(
                "InvalidConfigurationRequest",
                "ListenerArn: a TCP listener has only its default action (no rules); change it with modify-listener --default-actions",
            ));
        }
        let actions = resolve_actions(tx, quotas, "Actions", &req.actions)?;
        super::tcp::same_protocol(tx, "Actions", &l.protocol, &actions)?;
        let most = quotas.rules_per_load_balancer;
        let have = tx.scan_keys(&keys::rules_of_lb(lb))?.len();
        if have >= most {
            return Err(Error::elb(
                "TooManyRules",
                format!(
                    "ListenerArn: load balancer {lb} already has {have} rules, the quota of rules per load balancer ({most}, not counting default rules); delete one first"
                ),
            ));
        }
        for r in tx.scan::<ElbRule>(&keys::rules_of(lb, lid))? {
            if r.priority == req.priority {
                return Err(Error::elb(
                    "PriorityInUse",
                    format!(
                        "Priority: {} is rule {}'s on this listener; pick another",
                        req.priority, r.arn
                    ),
                ));
            }
        }
        let id = new_id();
        let lb_id = super::lb_id(&l.load_balancer_arn);
        let rule = ElbRule {
            arn: format!(
                "{}:listener-rule/app/{lb}/{lb_id}/{lid}/{id}",
                super::arn_prefix()
            ),
            listener_arn: l.arn.clone(),
            priority: req.priority,
            conditions: req.conditions.clone(),
            actions,
            ..Default::default()
        };
        Ok((rule.clone(), vec![put(keys::rule(lb, lid, &id), &rule)]))
    })
}

/// Changes a rule's conditions or actions; on the default rule, only its actions.
pub fn modify_rule(
    state: &State,
    arn: &str,
    conditions: Option<Vec<ElbCondition>>,
    actions: Option<Vec<ElbAction>>,
) -> Result<ElbRule> {
    let current = super::get_rule(state, arn)?;
    if super::is_default(&current) {
        if conditions.is_some() {
            return Err(Error::elb(
                "OperationNotPermitted",
                "Conditions: the default rule has none; change its actions only (or modify-listener --default-actions)",
            ));
        }
        let change = ListenerChange {
            default_actions: actions,
            ..Default::default()
        };
        let l = modify_listener(state, &current.listener_arn, &change)?;
        return Ok(super::default_rule(&l));
    }
    if let Some(c) = &conditions {
        super::rule_check::conditions(c, &state.limits().elb)?;
    }
    let key = super::rule_key(arn)?;
    state.update(|tx| {
        let mut r = tx
            .get::<ElbRule>(&key)?
            .filter(|r| same(&r.arn, arn))
            .ok_or_else(|| super::rule_not_found(arn))?;
        if let Some(c) = &conditions {
            r.conditions = c.clone();
        }
        if let Some(a) = &actions {
            r.actions = resolve_actions(tx, &state.limits().elb, "Actions", a)?;
        }
        Ok((r.clone(), vec![put(key.clone(), &r)]))
    })
}

pub fn delete_rule(state: &State, arn: &str) -> Result<()> {
    let current = super::get_rule(state, arn)?;
    if super::is_default(&current) {
        return Err(Error::elb(
            "OperationNotPermitted",
            "RuleArn: a listener's default rule cannot be deleted; delete the listener instead",
        ));
    }
    let key = super::rule_key(arn)?;
    state.update(|tx| {
        tx.get::<ElbRule>(&key)?
            .filter(|r| same(&r.arn, arn))
            .ok_or_else(|| super::rule_not_found(arn))?;
        Ok(((), vec![Op::Delete(key.clone())]))
    })
}
