//! The store's key layout: one prefix per kind of record, and the index keys beside them.
//! Every layer builds keys here, so a prefix is spelled once.

pub fn cluster(name: &str) -> String {
    format!("cluster/{name}")
}
pub const CLUSTERS: &str = "cluster/";
pub const FAMILIES: &str = "family/";
pub fn family_counter(family: &str) -> String {
    format!("family/{family}")
}
pub fn task_definition(family: &str, revision: i32) -> String {
    format!("taskdef/{family}/{revision:010}")
}
pub fn task_definitions_of(family: &str) -> String {
    format!("taskdef/{family}/")
}
pub const TASK_DEFINITIONS: &str = "taskdef/";
pub const SERVICES: &str = "service/";
pub fn services_of(cluster: &str) -> String {
    format!("service/{cluster}/")
}
/// A service's record.
pub fn service(cluster: &str, name: &str) -> String {
    format!("{}{name}", services_of(cluster))
}
pub fn tasks_of(cluster: &str) -> String {
    format!("task/{cluster}/")
}
pub fn task(cluster: &str, id: &str) -> String {
    format!("task/{cluster}/{id}")
}
pub const TASKS: &str = "task/";
pub fn node(id: &str) -> String {
    format!("node/{id}")
}
pub const NODES: &str = "node/";
/// Index of a group's tasks (a service's tasks are the group `service:NAME`): empty values.
pub fn group_tasks(cluster: &str, group: &str) -> String {
    format!("bygroup/{cluster}/{group}/")
}
pub fn group_task(cluster: &str, group: &str, id: &str) -> String {
    format!("bygroup/{cluster}/{group}/{id}")
}
pub const GROUP_INDEX: &str = "bygroup/";
/// A node's claims (`NodeClaim`), one per task placed on it.
pub fn node_claims(node_id: &str) -> String {
    format!("bynode/{node_id}/")
}
pub fn node_claim(node_id: &str, cluster: &str, id: &str) -> String {
    format!("bynode/{node_id}/{cluster}/{id}")
}
pub const NODE_INDEX: &str = "bynode/";
/// Where a shared Docker volume's data is (`VolumeHome`).
pub fn volume_home(cluster: &str, name: &str) -> String {
    format!("volumehome/{cluster}/{name}")
}
/// The task key a `bygroup/…/ID` or `bynode/…/ID` index key stands for.
pub fn task_of_index(index_key: &str) -> Option<String> {
    let (rest, id) = index_key.rsplit_once('/')?;
    let cluster = if let Some(r) = rest.strip_prefix("bynode/") {
        r.split_once('/')?.1
    } else {
        let r = rest.strip_prefix("bygroup/")?;
        r.split_once('/')?.0
    };
    Some(task(cluster, id))
}
/// Cloud Map: namespaces (`discovery/ns/ID`), services (`discovery/svc/ID`), instances registered
/// through the API (`discovery/inst/SERVICE/ID`) and operations (`discovery/op/ID`), as JSON.
pub const DISCOVERY: &str = "discovery/";

/// Scheduled tasks: `schedule/{rule|schedule}/{group}/{name}`.
pub const SCHEDULES: &str = "schedule/";
pub fn schedule(kind: &str, group: &str, name: &str) -> String {
    format!("{SCHEDULES}{kind}/{group}/{name}")
}
/// Scheduler's schedule groups.
pub const SCHEDULE_GROUPS: &str = "schedule-group/";
pub fn schedule_group(name: &str) -> String {
    format!("{SCHEDULE_GROUPS}{name}")
}

/// A capacity provider (node pool) by name: account-wide, as ECS's are.
pub fn capacity_provider(name: &str) -> String {
    format!("capacityprovider/{name}")
}
pub const CAPACITY_PROVIDERS: &str = "capacityprovider/";
