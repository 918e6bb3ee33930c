//! ARNs in ECS's shape, under Berth's own partition: `arn:berth:ecs:local:000000000000:…`.

const PREFIX: &str = "arn:berth:ecs:local:000000000000";

pub fn cluster(name: &str) -> String {
    format!("{PREFIX}:cluster/{name}")
}

pub fn task_definition(family: &str, revision: i32) -> String {
    format!("{PREFIX}:task-definition/{family}:{revision}")
}

pub fn task(cluster: &str, id: &str) -> String {
    format!("{PREFIX}:task/{cluster}/{id}")
}

/// Nodes serve every cluster, so their ARN names no cluster.
pub fn container_instance(id: &str) -> String {
    format!("{PREFIX}:container-instance/{id}")
}

pub fn service(cluster: &str, name: &str) -> String {
    format!("{PREFIX}:service/{cluster}/{name}")
}

/// The last path segment of an ARN, or the text itself when it is a bare name or id.
pub fn last_segment(s: &str) -> &str {
    if s.starts_with("arn:") {
        s.rsplit('/').next().unwrap_or(s)
    } else {
        s
    }
}

/// The cluster name of a `cluster/NAME` ARN or a bare name.
pub fn cluster_name(s: &str) -> &str {
    s.rsplit_once(":cluster/").map_or(s, |(_, n)| n)
}
