//! Capacity providers as node pools: a provider is a name and a selector (a memberOf expression
//! over node attributes, by default `attribute:berth.capacity-provider == NAME`); a cluster lists
//! the providers its tasks may use and its default strategy (PutClusterCapacityProviders); a
//! service or RunTask names a strategy, or takes the cluster's default. The split of tasks over
//! providers is `berth_core::scheduler::providers`; placement keeps each task on its provider's
//! nodes.

use crate::model::clusters;
use crate::state::error::{quote, Error, FieldError, Result};
use crate::state::{keys, put, State};
use crate::store::Op;
use crate::time;
use berth_core::arn;
use berth_core::scheduler::providers;
use berth_proto::v1::{CapacityProvider, CapacityProviderStrategyItem as Item, Cluster, Service};
use std::collections::HashMap;

/// ECS's rule for a provider name: 1-255 letters, digits, underscores and hyphens, and not
/// starting with `aws`, `ecs` or `fargate`, which AWS keeps for itself.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            "name",
            format!(
                "{} must be 1-255 letters, digits, hyphens or underscores",
                quote(name)
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if ["aws", "ecs", "fargate"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(Error::invalid(
            "name",
            format!("{} may not start with aws, ecs or fargate", quote(name)),
        ));
    }
    Ok(())
}

/// The selector a provider places by: the one given, checked, else the default.
fn selector_of(name: &str, given: &str) -> Result<String> {
    let selector = if given.trim().is_empty() {
        providers::default_selector(name)
    } else {
        given.trim().to_string()
    };
    berth_core::scheduler::parse_constraint("memberOf", &selector).map_err(|e| {
        Error::invalid(
            "selector",
            format!("{e}; a selector is a memberOf expression such as `attribute:pool == a`"),
        )
    })?;
    Ok(selector)
}

fn not_found(name: &str) -> Error {
    Error::Client(format!(
        "The specified capacity provider does not exist: {name}; create it with `aws ecs create-capacity-provider --name {name}` or `berth capacity-provider create {name}`"
    ))
}

/// Creates a provider; `also` adds writes to the same commit (its tags). A provider of the
/// same name that is ACTIVE refuses it; an INACTIVE one (deleted) is replaced.
pub fn create(
    state: &State,
    name: &str,
    selector: &str,
    mut also: impl FnMut(&CapacityProvider) -> Vec<Op>,
) -> Result<CapacityProvider> {
    check_name(name)?;
    let selector = selector_of(name, selector)?;
    state.update(|tx| {
        if let Some(p) = tx.get::<CapacityProvider>(&keys::capacity_provider(name))? {
            if p.status == "ACTIVE" {
                return Err(Error::Client(format!(
                    "The specified capacity provider already exists: {name}; change it with UpdateCapacityProvider"
                )));
            }
        }
        let p = CapacityProvider {
            name: name.to_string(),
            capacity_provider_arn: arn::capacity_provider(name),
            status: "ACTIVE".into(),
            selector: selector.clone(),
            update_status: String::new(),
            created_at: time::now(),
        };
        let mut ops = vec![put(keys::capacity_provider(name), &p)];
        ops.extend(also(&p));
        Ok((p, ops))
    })
}

/// A provider by name or ARN, whatever its status.
pub fn get(state: &State, name_or_arn: &str) -> Result<Option<CapacityProvider>> {
    state.get(&keys::capacity_provider(arn::last_segment(name_or_arn)))
}

/// The ACTIVE providers, by name.
pub fn list(state: &State) -> Result<Vec<CapacityProvider>> {
    Ok(state
        .scan::<CapacityProvider>(keys::CAPACITY_PROVIDERS)?
        .into_iter()
        .filter(|p| p.status == "ACTIVE")
        .collect())
}

/// Changes a provider's selector (empty: back to the default). Tasks already placed stay
/// where they are; new ones go by the new selector.
pub fn update(state: &State, name_or_arn: &str, selector: &str) -> Result<CapacityProvider> {
    let name = arn::last_segment(name_or_arn).to_string();
    let selector = selector_of(&name, selector)?;
    state.update(|tx| {
        let mut p = match tx.get::<CapacityProvider>(&keys::capacity_provider(&name))? {
            Some(p) if p.status == "ACTIVE" => p,
            _ => return Err(not_found(&name)),
        };
        p.selector = selector.clone();
        p.update_status = "UPDATE_COMPLETE".into();
        Ok((p.clone(), vec![put(keys::capacity_provider(&name), &p)]))
    })
}

/// Deletes a provider no cluster lists any more (ECS's rule: take it off the clusters first).
pub fn delete(state: &State, name_or_arn: &str) -> Result<CapacityProvider> {
    let name = arn::last_segment(name_or_arn).to_string();
    state.update(|tx| {
        let mut p = match tx.get::<CapacityProvider>(&keys::capacity_provider(&name))? {
            Some(p) if p.status == "ACTIVE" => p,
            _ => return Err(not_found(&name)),
        };
        // Compared at commit: a cluster that takes the provider meanwhile refuses the delete.
        let users: Vec<String> = tx
            .scan::<Cluster>(keys::CLUSTERS)?
            .into_iter()
            .filter(|c| c.status == "ACTIVE" && c.capacity_providers.contains(&name))
            .map(|c| c.cluster_name)
            .collect();
        if !users.is_empty() {
            return Err(Error::Client(format!(
                "The specified capacity provider is in use and cannot be removed: cluster {} still lists {name}; take it off with PutClusterCapacityProviders first",
                users.join(", ")
            )));
        }
        p.status = "INACTIVE".into();
        p.update_status = "DELETE_COMPLETE".into();
        Ok((p.clone(), vec![put(keys::capacity_provider(&name), &p)]))
    })
}

/// Sets the providers a cluster may use and its default strategy, as
/// PutClusterCapacityProviders does: every provider exists, the strategy names only listed
/// ones, and a provider an ACTIVE service's strategy uses is not taken away.
pub fn put_cluster(
    state: &State,
    cluster: &str,
    names: &[String],
    default_strategy: &[Item],
) -> Result<Cluster> {
    // ECS's order: an unknown cluster is said before anything about the request.
    clusters::get_active(state, cluster)?;
    let mut errs = providers::check("defaultCapacityProviderStrategy", default_strategy);
    for (i, it) in default_strategy.iter().enumerate() {
        if !it.capacity_provider.is_empty() && !names.contains(&it.capacity_provider) {
            errs.push(FieldError::new(
                format!("defaultCapacityProviderStrategy[{i}].capacityProvider"),
                format!(
                    "{} is not in capacityProviders; list it there too",
                    quote(&it.capacity_provider)
                ),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let names: Vec<String> = names
        .iter()
        .map(|n| arn::last_segment(n).to_string())
        .collect();
    state.update(|tx| {
        let c = clusters::get_active(tx.state(), cluster)?;
        let key = keys::cluster(&c.cluster_name);
        let Some(mut c) = tx.get::<Cluster>(&key)? else {
            return Err(clusters::get_active(tx.state(), cluster).err().unwrap_or_else(
                || Error::Conflict(format!("cluster {cluster} changed")),
            ));
        };
        for n in &names {
            match tx.get::<CapacityProvider>(&keys::capacity_provider(n))? {
                Some(p) if p.status == "ACTIVE" => {}
                _ => return Err(not_found(n)),
            }
        }
        let removed: Vec<&String> = c
            .capacity_providers
            .iter()
            .filter(|n| !names.contains(n))
            .collect();
        if !removed.is_empty() {
            let services = tx.scan::<Service>(&keys::services_of(&c.cluster_name))?;
            for s in services.iter().filter(|s| s.status != "INACTIVE") {
                if let Some(it) = s
                    .capacity_provider_strategy
                    .iter()
                    .find(|it| removed.contains(&&it.capacity_provider))
                {
                    return Err(Error::Client(format!(
                        "The specified capacity provider is in use and cannot be removed: service {} places by {}",
                        s.service_name, it.capacity_provider
                    )));
                }
            }
        }
        c.capacity_providers = names.clone();
        c.default_capacity_provider_strategy = default_strategy.to_vec();
        Ok((c.clone(), vec![put(key, &c)]))
    })
}

/// The strategy a service or RunTask in `cluster` places by: the one `given` (checked against
/// the cluster's providers), else the cluster's default (empty when it has none).
pub fn resolve(state: &State, cluster: &str, path: &str, given: &[Item]) -> Result<Vec<Item>> {
    let c = clusters::get_active(state, cluster)?;
    if given.is_empty() {
        return Ok(c.default_capacity_provider_strategy);
    }
    let mut errs = providers::check(path, given);
    for (i, it) in given.iter().enumerate() {
        if !it.capacity_provider.is_empty() && !c.capacity_providers.contains(&it.capacity_provider)
        {
            errs.push(FieldError::new(
                format!("{path}[{i}].capacityProvider"),
                format!(
                    "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster: {}. Associate it with PutClusterCapacityProviders or name another",
                    quote(&it.capacity_provider)
                ),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    Ok(given.to_vec())
}

/// The selector of each ACTIVE provider `strategy` names, by name (a missing one is left out).
pub fn selectors(state: &State, strategy: &[Item]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for it in strategy {
        if let Some(p) = get(state, &it.capacity_provider)? {
            if p.status == "ACTIVE" {
                out.insert(p.name, p.selector);
            }
        }
    }
    Ok(out)
}

/// The capacity provider strategy a service places by: the one given, else the cluster's
/// default. A DAEMON service runs on every node and takes none, as in ECS.
pub(crate) fn service_strategy(
    state: &State,
    cluster: &str,
    svc: &Service,
    given: &[berth_proto::v1::CapacityProviderStrategyItem],
) -> Result<Vec<berth_proto::v1::CapacityProviderStrategyItem>> {
    if svc.scheduling_strategy == "DAEMON" {
        if !given.is_empty() {
            return Err(Error::invalid(
                "capacityProviderStrategy",
                "a DAEMON service runs a task on every node and takes no capacity provider strategy; use placementConstraints to choose nodes",
            ));
        }
        return Ok(Vec::new());
    }
    resolve(state, cluster, "capacityProviderStrategy", given)
}
