//! Capacity providers as node pools: CreateCapacityProvider, DescribeCapacityProviders,
//! UpdateCapacityProvider, DeleteCapacityProvider and PutClusterCapacityProviders
//! (`model::capacity`). ECS's shape has an Auto Scaling group where Berth has a selector over
//! node attributes: it is the tag `berth:selector` (a memberOf expression such as
//! `attribute:pool == a`); without it a provider takes the nodes whose attribute
//! `berth.capacity-provider` is its name. `autoScalingGroupProvider` is kept and echoed.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{paging, shapes, Ctx};
use crate::model::capacity;
use crate::model::ecs_extras::{self, Extras, Tag};
use crate::state::error::Error;
use crate::state::keys;
use berth_proto::v1::{CapacityProvider, CapacityProviderStrategyItem};
use serde_json::{json, Value};

/// The tag that holds a provider's selector.
pub const SELECTOR_TAG: &str = "berth:selector";

/// `capacityProviderStrategy` (or another field of that shape) as the request gives it.
pub fn strategy(input: &Input, name: &str) -> EcsResult<Vec<CapacityProviderStrategyItem>> {
    input
        .objects(name)?
        .iter()
        .map(|it| {
            Ok(CapacityProviderStrategyItem {
                capacity_provider: it.required("capacityProvider")?,
                weight: it.int_in("weight", 0..=1_000)?.unwrap_or(0),
                base: it.int_in("base", 0..=100_000)?.unwrap_or(0),
            })
        })
        .collect()
}

fn shape(ctx: &Ctx<'_>, p: &CapacityProvider, with_tags: bool) -> EcsResult<Value> {
    let extras = ecs_extras::get(ctx.state, &keys::capacity_provider(&p.name))?;
    let mut v = json!({
        "capacityProviderArn": p.capacity_provider_arn,
        "name": p.name,
        "status": p.status,
        "type": "EC2_AUTOSCALING",
    });
    if !p.update_status.is_empty() {
        v["updateStatus"] = json!(p.update_status);
    }
    if let Some(asg) = extras.fields.get("autoScalingGroupProvider") {
        v["autoScalingGroupProvider"] = asg.clone();
    }
    // The selector is shown as the tag it is set by, even when it is the default.
    let mut tags = extras.tags.clone();
    if !tags.iter().any(|t| t.key == SELECTOR_TAG) {
        tags.push(Tag {
            key: SELECTOR_TAG.into(),
            value: p.selector.clone(),
        });
    }
    if with_tags {
        v["tags"] = json!(tags);
    }
    Ok(v)
}

fn selector_of(tags: &[Tag]) -> String {
    tags.iter()
        .find(|t| t.key == SELECTOR_TAG)
        .map(|t| t.value.clone())
        .unwrap_or_default()
}

pub fn create(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("name")?;
    let tags = input.tags("tags")?;
    let errs = ecs_extras::check_tags("tags", &tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs).into());
    }
    if input.has("managedInstancesProvider") {
        return Err(EcsError::new(
            "UnsupportedFeatureException",
            "managedInstancesProvider: ECS Managed Instances are AWS's own hosts; on Berth a capacity provider is a pool of your nodes, chosen by the tag berth:selector",
        ));
    }
    let extras = Extras {
        tags: tags.clone(),
        fields: input.rest(&["name", "tags", "cluster"]),
    };
    let p = capacity::create(ctx.state, &name, &selector_of(&tags), |p| {
        vec![ecs_extras::put_op(
            &keys::capacity_provider(&p.name),
            &extras,
        )]
    })?;
    Ok(json!({ "capacityProvider": shape(ctx, &p, true)? }))
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let names = input.strings("capacityProviders")?;
    let with_tags = input.strings("include")?.iter().any(|i| i == "TAGS");
    let (found, failures) = if names.is_empty() {
        (capacity::list(ctx.state)?, Vec::new())
    } else {
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for n in &names {
            match capacity::get(ctx.state, n)? {
                Some(p) => found.push(p),
                None => failures.push(shapes::failure(
                    &berth_core::arn::capacity_provider(berth_core::arn::last_segment(n)),
                    "MISSING",
                    "",
                )),
            }
        }
        (found, failures)
    };
    let items = found
        .iter()
        .map(|p| shape(ctx, p, with_tags))
        .collect::<EcsResult<Vec<_>>>()?;
    let mut out = paging::page(input, items, "capacityProviders", 10, 10)?;
    out["failures"] = json!(failures);
    Ok(out)
}

/// UpdateCapacityProvider: a new selector from the `berth:selector` tag of the request's
/// `tags` (Berth's extension; ECS's update has no tags) or kept; the Auto Scaling group fields
/// are kept and echoed.
pub fn update(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("name")?;
    let current = capacity::get(ctx.state, &name)?
        .filter(|p| p.status == "ACTIVE")
        .ok_or_else(|| {
            EcsError::new(
                "ClientException",
                format!("The specified capacity provider does not exist: {name}"),
            )
        })?;
    let tags = input.tags("tags")?;
    let selector = match tags.iter().any(|t| t.key == SELECTOR_TAG) {
        true => selector_of(&tags),
        false => current.selector.clone(),
    };
    let p = capacity::update(ctx.state, &name, &selector)?;
    let key = keys::capacity_provider(&p.name);
    let add = Extras {
        fields: input.rest(&["name", "tags", "cluster"]),
        tags: tags.into_iter().filter(|t| t.key == SELECTOR_TAG).collect(),
    };
    ecs_extras::merge(ctx.state, &key, add)?;
    Ok(json!({ "capacityProvider": shape(ctx, &p, true)? }))
}

pub fn delete(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let name = input.required("capacityProvider")?;
    let p = capacity::delete(ctx.state, &name)?;
    Ok(json!({ "capacityProvider": shape(ctx, &p, true)? }))
}

pub fn put_cluster(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = input.required("cluster")?;
    if !input.has("capacityProviders") {
        return Err(EcsError::invalid(
            "capacityProviders",
            "is required (an empty list takes every provider off the cluster)",
        ));
    }
    if !input.has("defaultCapacityProviderStrategy") {
        return Err(EcsError::invalid(
            "defaultCapacityProviderStrategy",
            "is required (an empty list: no default strategy)",
        ));
    }
    let names = input.strings("capacityProviders")?;
    let default = strategy(input, "defaultCapacityProviderStrategy")?;
    let c = capacity::put_cluster(ctx.state, &cluster, &names, &default).map_err(|e| match e {
        // ECS answers a provider taken away from under a service this way.
        Error::Client(m) if m.contains("is in use") => EcsError::new("ResourceInUseException", m),
        e => e.into(),
    })?;
    let c = crate::model::clusters::describe(ctx.state, &c.cluster_name)?;
    let extras = ecs_extras::get(ctx.state, &keys::cluster(&c.cluster_name))?;
    Ok(json!({ "cluster": shapes::cluster(&c, &extras) }))
}
