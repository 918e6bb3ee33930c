//! Placement quality over the converged fleet, read back through ListTasks: spread over the
//! three zones within ±1 task, distinctInstance and memberOf never violated.

use super::Bench;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::ListTasksRequest;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quality {
    pub services_checked: usize,
    /// The largest (most − fewest) tasks per allowed zone of any spread service.
    pub spread_max_skew: usize,
    /// Tasks sharing a node with another task of their distinctInstance service.
    pub distinct_instance_violations: usize,
    /// Tasks of a `memberOf(attribute:zone != c)` service in zone c.
    pub member_of_violations: usize,
    /// Nodes the binpack services' tasks occupy, over all of them.
    pub binpack_nodes_used: usize,
}

impl Quality {
    pub fn ok(&self) -> bool {
        self.spread_max_skew <= 1
            && self.distinct_instance_violations == 0
            && self.member_of_violations == 0
    }
}

pub async fn check(b: &Bench) -> anyhow::Result<Quality> {
    let zone_of: HashMap<String, &str> = b.agents.iter().map(|a| (a.id(), a.zone)).collect();
    let mut tasks = TasksClient::new(b.channel.clone()).max_decoding_message_size(256 << 20);
    let mut q = Quality::default();
    let mut binpacked = HashSet::new();
    for (i, name) in b.services.iter().enumerate() {
        let kind = super::kind(i, b);
        let listed = tasks
            .list_tasks(ListTasksRequest {
                service_name: name.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks;
        let nodes: Vec<String> = listed
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .map(|t| berth_core::arn::last_segment(&t.container_instance_arn).to_string())
            .collect();
        let mut per_zone: HashMap<&str, usize> = HashMap::new();
        for n in &nodes {
            *per_zone
                .entry(zone_of.get(n).copied().unwrap_or("?"))
                .or_default() += 1;
        }
        let allowed: &[&str] = if kind == 3 {
            &["a", "b"]
        } else {
            &["a", "b", "c"]
        };
        if kind != 1 {
            let counts: Vec<usize> = allowed
                .iter()
                .map(|z| per_zone.get(z).copied().unwrap_or(0))
                .collect();
            let skew = counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0);
            q.spread_max_skew = q.spread_max_skew.max(skew);
        } else {
            binpacked.extend(nodes.iter().cloned());
        }
        if kind == 2 {
            let distinct: HashSet<&String> = nodes.iter().collect();
            q.distinct_instance_violations += nodes.len() - distinct.len();
        }
        if kind == 3 {
            q.member_of_violations += per_zone.get("c").copied().unwrap_or(0);
        }
        q.services_checked += 1;
    }
    q.binpack_nodes_used = binpacked.len();
    Ok(q)
}
