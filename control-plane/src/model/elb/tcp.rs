//! What network load balancers add to the ELBv2 model: a listener forwards only to target
//! groups of its own protocol, and a target group's attributes (`proxy_protocol_v2.enabled`,
//! `deregistration_delay.timeout_seconds`) read and change as ELBv2's key/value pairs.

use super::check::{self, invalid};
use super::same;
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State, Tx};
use berth_proto::v1::{ElbAction, ElbTargetGroup};

/// Every target group the (resolved) actions forward to speaks `protocol`: an HTTP listener
/// cannot forward to a TCP target group, nor a TCP listener to an HTTP one.
pub(crate) fn same_protocol(
    tx: &mut Tx<'_>,
    field: &str,
    protocol: &str,
    actions: &[ElbAction],
) -> Result<()> {
    for a in actions {
        for t in &a.target_groups {
            let key = super::tg_key(&t.target_group_arn)?;
            let Some(tg) = tx.get::<ElbTargetGroup>(&key)? else {
                continue;
            };
            if same(&tg.arn, &t.target_group_arn) && tg.protocol != protocol {
                return Err(Error::elb(
                    "IncompatibleProtocols",
                    format!(
                        "{field}: target group {} is {} and the listener is {protocol}; forward to a {protocol} target group",
                        tg.name, tg.protocol
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The target group's attributes as ELBv2 names them.
pub fn attributes(tg: &ElbTargetGroup) -> Vec<(String, String)> {
    let mut out = vec![(
        "deregistration_delay.timeout_seconds".to_string(),
        tg.deregistration_delay_seconds.to_string(),
    )];
    if tg.protocol == "TCP" {
        out.push((
            "proxy_protocol_v2.enabled".into(),
            tg.proxy_protocol_v2.to_string(),
        ));
        out.push(("preserve_client_ip.enabled".into(), "false".into()));
    } else {
        out.push(("load_balancing.algorithm.type".into(), "round_robin".into()));
    }
    out.push(("stickiness.enabled".into(), "false".into()));
    out
}

/// Changes the attributes given (all or none): `proxy_protocol_v2.enabled` on TCP target groups
/// and `deregistration_delay.timeout_seconds`; any other key is refused by name. Returns every
/// attribute after the change.
pub fn modify_attributes(
    state: &State,
    arn: &str,
    changes: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let key = super::tg_key(arn)?;
    state.update(|tx| {
        let mut tg = tx
            .get::<ElbTargetGroup>(&key)?
            .filter(|tg| !arn.starts_with("arn:") || same(&tg.arn, arn))
            .ok_or_else(|| super::tg_not_found(arn))?;
        for (k, v) in changes {
            match k.as_str() {
                "proxy_protocol_v2.enabled" if tg.protocol == "TCP" => {
                    tg.proxy_protocol_v2 = boolean(k, v)?;
                }
                "proxy_protocol_v2.enabled" => {
                    return Err(invalid(format!(
                        "Attributes: {k} applies to TCP target groups; {} is {}",
                        tg.name, tg.protocol
                    )))
                }
                "deregistration_delay.timeout_seconds" => {
                    let d = v.trim().parse::<i32>().map_err(|_| {
                        invalid(format!(
                            "Attributes: {k} {} must be a whole number of seconds (0-3600)",
                            quote(v)
                        ))
                    })?;
                    check::deregistration_delay(d)?;
                    tg.deregistration_delay_seconds = d;
                }
                other => {
                    return Err(invalid(format!(
                        "Attributes: {} is not served by Berth's proxy; it changes proxy_protocol_v2.enabled (TCP target groups) and deregistration_delay.timeout_seconds",
                        quote(other)
                    )))
                }
            }
        }
        Ok((attributes(&tg), vec![put(key.clone(), &tg)]))
    })
}

fn boolean(key: &str, v: &str) -> Result<bool> {
    match v.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(format!(
            "Attributes: {key} {} must be true or false",
            quote(other)
        ))),
    }
}
