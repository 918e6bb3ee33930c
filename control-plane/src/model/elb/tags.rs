//! Tags on load balancers, target groups, listeners and rules (AddTags, RemoveTags,
//! DescribeTags): kept on each record, checked as ELBv2 checks them (keys 1-128 characters not
//! starting with `aws:`, values up to 256, at most 50 per resource), all resources of one call
//! changed in one transaction or none.

use super::check::invalid;
use super::same;
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State, Tx};
use crate::store::Op;
use berth_proto::v1::{ElbListener, ElbLoadBalancer, ElbRule, ElbTargetGroup, KeyValuePair};

/// Tags per resource (ELBv2's quota).
pub const MOST: usize = 50;

pub fn check(tags: &[KeyValuePair]) -> Result<()> {
    for (i, t) in tags.iter().enumerate() {
        let at = format!("Tags.member.{}", i + 1);
        if t.name.is_empty() || t.name.chars().count() > 128 {
            return Err(invalid(format!(
                "{at}.Key: {} must be 1-128 characters",
                quote(&t.name)
            )));
        }
        if t.name.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(format!(
                "{at}.Key: {} must not start with aws: (reserved)",
                quote(&t.name)
            )));
        }
        if t.value.chars().count() > 256 {
            return Err(invalid(format!("{at}.Value: at most 256 characters")));
        }
        if tags[..i].iter().any(|e| e.name == t.name) {
            return Err(Error::elb(
                "DuplicateTagKeys",
                format!(
                    "{at}.Key: {} is given twice; give each key once",
                    quote(&t.name)
                ),
            ));
        }
    }
    Ok(())
}

/// A resource's record as read in a transaction, with its tags to change and write back.
enum Record {
    Lb(String, ElbLoadBalancer),
    Tg(String, ElbTargetGroup),
    Listener(String, ElbListener),
    Rule(String, ElbRule),
}

impl Record {
    fn tags(&mut self) -> &mut Vec<KeyValuePair> {
        match self {
            Record::Lb(_, r) => &mut r.tags,
            Record::Tg(_, r) => &mut r.tags,
            Record::Listener(_, r) => &mut r.tags,
            Record::Rule(_, r) => &mut r.tags,
        }
    }

    fn write(&self) -> Op {
        match self {
            Record::Lb(k, r) => put(k.clone(), r),
            Record::Tg(k, r) => put(k.clone(), r),
            Record::Listener(k, r) => put(k.clone(), r),
            Record::Rule(k, r) => put(k.clone(), r),
        }
    }
}

/// The record an ELBv2 ARN names, by the kind its resource part says.
fn read(tx: &mut Tx<'_>, arn: &str) -> Result<Record> {
    let kind = super::resource(arn).and_then(|r| r.first().map(|s| s.to_string()));
    match kind.as_deref() {
        Some("loadbalancer") => {
            let k = super::lb_key(arn)?;
            let r = tx.get::<ElbLoadBalancer>(&k)?.filter(|r| same(&r.arn, arn));
            Ok(Record::Lb(k, r.ok_or_else(|| super::lb_not_found(arn))?))
        }
        Some("targetgroup") => {
            let k = super::tg_key(arn)?;
            let r = tx.get::<ElbTargetGroup>(&k)?.filter(|r| same(&r.arn, arn));
            Ok(Record::Tg(k, r.ok_or_else(|| super::tg_not_found(arn))?))
        }
        Some("listener") => {
            let k = super::listener_key(arn)?;
            let r = tx.get::<ElbListener>(&k)?.filter(|r| same(&r.arn, arn));
            Ok(Record::Listener(
                k,
                r.ok_or_else(|| super::listener_not_found(arn))?,
            ))
        }
        Some("listener-rule") => {
            let k = super::rule_key(arn)?;
            match tx.get::<ElbRule>(&k)?.filter(|r| same(&r.arn, arn)) {
                Some(r) => Ok(Record::Rule(k, r)),
                None => Err(Error::elb(
                    "RuleNotFound",
                    format!(
                        "rule {} not found, or it is a listener's default rule (tag the listener instead)",
                        quote(arn)
                    ),
                )),
            }
        }
        _ => Err(invalid(format!(
            "ResourceArns: {} is not the ARN of a load balancer, target group, listener or rule",
            quote(arn)
        ))),
    }
}

fn resources(arns: &[String]) -> Result<()> {
    if arns.is_empty() {
        return Err(invalid("ResourceArns: give at least one ARN"));
    }
    if arns.len() > 20 {
        return Err(invalid(format!(
            "ResourceArns: {} ARNs; at most 20 per call",
            arns.len()
        )));
    }
    Ok(())
}

/// Adds (or overwrites) `tags` on every resource.
pub fn add(state: &State, arns: &[String], tags: &[KeyValuePair]) -> Result<()> {
    resources(arns)?;
    if tags.is_empty() {
        return Err(invalid("Tags: give at least one Key"));
    }
    check(tags)?;
    state.update(|tx| {
        let mut ops = Vec::new();
        for arn in arns {
            let mut r = read(tx, arn)?;
            let have = r.tags();
            for t in tags {
                match have.iter_mut().find(|h| h.name == t.name) {
                    Some(h) => h.value = t.value.clone(),
                    None => have.push(t.clone()),
                }
            }
            if have.len() > MOST {
                return Err(Error::elb(
                    "TooManyTags",
                    format!(
                        "{arn} would have {} tags; at most {MOST} per resource",
                        have.len()
                    ),
                ));
            }
            ops.push(r.write());
        }
        Ok(((), ops))
    })
}

pub fn remove(state: &State, arns: &[String], tag_keys: &[String]) -> Result<()> {
    resources(arns)?;
    if tag_keys.is_empty() {
        return Err(invalid("TagKeys: give at least one key"));
    }
    state.update(|tx| {
        let mut ops = Vec::new();
        for arn in arns {
            let mut r = read(tx, arn)?;
            r.tags().retain(|t| !tag_keys.contains(&t.name));
            ops.push(r.write());
        }
        Ok(((), ops))
    })
}

/// Each resource's ARN (as stored) and tags.
pub fn describe(state: &State, arns: &[String]) -> Result<Vec<(String, Vec<KeyValuePair>)>> {
    resources(arns)?;
    state.update(|tx| {
        let mut out = Vec::new();
        for arn in arns {
            let mut r = read(tx, arn)?;
            let stored = match &r {
                Record::Lb(_, x) => x.arn.clone(),
                Record::Tg(_, x) => x.arn.clone(),
                Record::Listener(_, x) => x.arn.clone(),
                Record::Rule(_, x) => x.arn.clone(),
            };
            out.push((stored, r.tags().clone()));
        }
        Ok((out, Vec::new()))
    })
}
