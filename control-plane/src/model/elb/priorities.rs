//! SetRulePriorities: several rules of one listener get new priorities at once, checked
//! together (each 1-50000, no two the same, none taken by another rule of the listener), so a
//! swap of two priorities is one call.

use super::check::{invalid, priority};
use super::{keys, rule_parts, same};
use crate::state::error::{Error, Result};
use crate::state::{put, State};
use berth_proto::v1::ElbRule;

/// `(RuleArn, Priority)` pairs; answers the changed rules.
pub fn set(state: &State, pairs: &[(String, i32)]) -> Result<Vec<ElbRule>> {
    if pairs.is_empty() {
        return Err(invalid(
            "RulePriorities: give at least one RuleArn and Priority",
        ));
    }
    let mut listener = None;
    for (i, (arn, p)) in pairs.iter().enumerate() {
        let at = format!("RulePriorities.member.{}", i + 1);
        priority(*p).map_err(|_| invalid(format!("{at}.Priority: {p} must be 1-50000")))?;
        let (lb, l, _) = rule_parts(arn).ok_or_else(|| super::rule_not_found(arn))?;
        match &listener {
            None => listener = Some((lb.to_string(), l.to_string())),
            Some((a, b)) if a == lb && b == l => {}
            Some(_) => {
                return Err(invalid(format!(
                    "{at}.RuleArn: every rule of one call must be on the same listener"
                )))
            }
        }
        if pairs[..i].iter().any(|(a, _)| a == arn) {
            return Err(invalid(format!("{at}.RuleArn: the rule is given twice")));
        }
        if pairs[..i].iter().any(|(_, q)| q == p) {
            return Err(Error::elb(
                "PriorityInUse",
                format!("{at}.Priority: {p} is given to two rules; give each its own"),
            ));
        }
    }
    let (lb, lid) = listener.unwrap_or_default();
    state.update(|tx| {
        let rules: Vec<ElbRule> = tx.scan(&keys::rules_of(&lb, &lid))?;
        let mut ops = Vec::new();
        let mut out = Vec::new();
        for (i, (arn, p)) in pairs.iter().enumerate() {
            let Some(mut r) = rules.iter().find(|r| same(&r.arn, arn)).cloned() else {
                if super::get_rule(tx.state(), arn).is_ok_and(|r| super::is_default(&r)) {
                    return Err(Error::elb(
                        "OperationNotPermitted",
                        format!("RulePriorities.member.{}.RuleArn: a listener's default rule has no priority to set", i + 1),
                    ));
                }
                return Err(super::rule_not_found(arn));
            };
            let taken = rules
                .iter()
                .find(|o| o.priority == *p && !pairs.iter().any(|(a, _)| same(&o.arn, a)));
            if let Some(o) = taken {
                return Err(Error::elb(
                    "PriorityInUse",
                    format!(
                        "RulePriorities.member.{}.Priority: {p} is rule {}'s on this listener; pick another",
                        i + 1,
                        o.arn
                    ),
                ));
            }
            r.priority = *p;
            let (_, _, id) = rule_parts(&r.arn).unwrap_or_default();
            ops.push(put(keys::rule(&lb, &lid, id), &r));
            out.push(r);
        }
        Ok((out, ops))
    })
}
