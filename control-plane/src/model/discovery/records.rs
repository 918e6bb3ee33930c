//! The DNS records node resolvers serve, derived for the endpoint stream like the routes: per
//! ECS service (re-derived when it, its extras or one of its tasks change), joined with the
//! Cloud Map services of DNS namespaces and the instances registered through the API.

use super::derive::{names, of_service, Derived};
use super::{scan, DService, Instance, Namespace, INSTANCES, NAMESPACES, SERVICES};
use crate::state::error::Result;
use crate::state::{keys, State};
use berth_proto::v1::{DiscoveryRecord, Service};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the records are made of, kept between changes.
#[derive(Debug, Default)]
pub struct Records {
    /// ECS service key → (registry ARN, instance) of its serving tasks.
    ecs: BTreeMap<String, Vec<(String, Derived)>>,
    /// Task key → its ECS service key, for the services with registries.
    owners: HashMap<String, String>,
    /// Cloud Map services in DNS namespaces, with their namespace's name.
    services: Vec<(DService, String)>,
    /// Instances registered through the API.
    registered: Vec<Instance>,
}

impl Records {
    pub fn refresh_all(&mut self, state: &State) -> Result<()> {
        self.ecs.clear();
        self.owners.clear();
        for svc in state.scan::<Service>(keys::SERVICES)? {
            self.refresh_ecs(state, &crate::model::services::key_of(&svc), Some(svc))?;
        }
        self.refresh_cloud_map(state)
    }

    fn refresh_cloud_map(&mut self, state: &State) -> Result<()> {
        let namespaces: HashMap<String, Namespace> = scan::<Namespace>(state, NAMESPACES)?
            .into_iter()
            .filter(Namespace::is_dns)
            .map(|n| (n.id.clone(), n))
            .collect();
        self.services = scan::<DService>(state, SERVICES)?
            .into_iter()
            .filter_map(|s| {
                let ns = namespaces.get(&s.namespace_id)?.name.clone();
                Some((s, ns))
            })
            .collect();
        self.registered = scan(state, INSTANCES)?;
        Ok(())
    }

    fn refresh_ecs(&mut self, state: &State, key: &str, svc: Option<Service>) -> Result<()> {
        self.owners.retain(|_, s| s != key);
        self.ecs.remove(key);
        let Some(svc) = svc else { return Ok(()) };
        let (found, tasks) = of_service(state, &svc)?;
        if tasks.is_empty() && found.is_empty() {
            // No registry (or no task yet): a task's change is found through the group index.
            return Ok(());
        }
        for t in tasks {
            self.owners.insert(t, key.to_string());
        }
        self.ecs.insert(key.to_string(), found);
        Ok(())
    }

    /// Re-derives what `changed` keys touch; true when the records may have changed.
    pub fn refresh(&mut self, state: &State, changed: &[String]) -> Result<bool> {
        if changed.iter().any(|k| k.starts_with(keys::NODES)) {
            self.refresh_all(state)?;
            return Ok(true);
        }
        let mut moved = false;
        if changed.iter().any(|k| super::is_discovery_key(k)) {
            self.refresh_cloud_map(state)?;
            moved = true;
        }
        let mut services = BTreeSet::new();
        for k in changed {
            let k = k.strip_prefix("ecs/").unwrap_or(k);
            if k.starts_with(keys::SERVICES) {
                services.insert(k.to_string());
            } else if let Some(rest) = k.strip_prefix(keys::GROUP_INDEX) {
                let mut parts = rest.splitn(2, '/');
                let cluster = parts.next().unwrap_or_default();
                let group = parts.next().and_then(|g| g.rsplit_once('/')).map(|g| g.0);
                if let Some(name) = group.and_then(|g| g.strip_prefix("service:")) {
                    services.insert(crate::model::services::key(cluster, name));
                }
            } else if let Some(svc) = self.owners.get(k) {
                services.insert(svc.clone());
            }
        }
        for key in &services {
            let svc = state.get::<Service>(key)?;
            self.refresh_ecs(state, key, svc)?;
        }
        Ok(moved || !services.is_empty())
    }

    /// The records, in a stable order.
    pub fn records(&self) -> Vec<DiscoveryRecord> {
        let mut out = Vec::new();
        for (s, ns) in &self.services {
            let (types, ttl) = s.dns_records();
            let record = |id: &str, address: &str, port: i32| DiscoveryRecord {
                namespace: ns.clone(),
                service: s.name.clone(),
                instance_id: id.to_string(),
                address: address.to_string(),
                port,
                record_types: types.clone(),
                ttl_seconds: ttl,
            };
            let mut ids = BTreeSet::new();
            for i in self.registered.iter().filter(|i| i.service_id == s.id) {
                let attr = |k: &str| i.attributes.get(k).and_then(Value::as_str).unwrap_or("");
                let port = attr("AWS_INSTANCE_PORT").parse().unwrap_or(0);
                if !attr("AWS_INSTANCE_IPV4").is_empty() {
                    ids.insert(i.id.clone());
                    out.push(record(&i.id, attr("AWS_INSTANCE_IPV4"), port));
                }
            }
            for (registry, d) in self.ecs.values().flatten() {
                if names(registry, s) && ids.insert(d.id.clone()) {
                    out.push(record(&d.id, &d.address, d.port));
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.namespace, &a.service, &a.instance_id).cmp(&(
                &b.namespace,
                &b.service,
                &b.instance_id,
            ))
        });
        out
    }
}
