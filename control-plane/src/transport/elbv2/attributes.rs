//! DescribeTargetGroupAttributes and ModifyTargetGroupAttributes: a target group's attributes as
//! ELBv2's `Attributes.member.N.Key/Value` pairs (botocore's `TargetGroupAttributes`).

use super::query::Params;
use super::xml::Xml;
use crate::model::elb;
use crate::state::error::{Error, Result};
use crate::state::State;

fn write(x: &mut Xml, attributes: &[(String, String)]) {
    x.list("Attributes", attributes, |x, (k, v)| {
        x.text("Key", k);
        x.text("Value", v);
    });
}

pub(super) fn describe_target_group_attributes(
    state: &State,
    p: &Params,
    x: &mut Xml,
) -> Result<()> {
    let tg = elb::get_target_group(state, &p.required("TargetGroupArn")?)?;
    write(x, &elb::attributes(&tg));
    Ok(())
}

pub(super) fn modify_target_group_attributes(state: &State, p: &Params, x: &mut Xml) -> Result<()> {
    let arn = p.required("TargetGroupArn")?;
    let changes: Vec<(String, String)> = (1..=100)
        .map_while(|i| {
            let key = p.get(&format!("Attributes.member.{i}.Key"))?;
            let value = p
                .get(&format!("Attributes.member.{i}.Value"))
                .unwrap_or_default();
            Some((key.to_string(), value.to_string()))
        })
        .collect();
    if changes.is_empty() {
        return Err(Error::elb(
            "ValidationError",
            "Attributes: give at least one Key=…,Value=… (e.g. Key=proxy_protocol_v2.enabled,Value=true)",
        ));
    }
    write(x, &elb::modify_attributes(state, &arn, &changes)?);
    Ok(())
}
