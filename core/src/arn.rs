//! ARNs as AWS tools parse them: `arn:aws:ecs:<region>:<account>:cluster/NAME`, … The region
//! and account are the server's (`--region`, `--account-id`), set once at start. Parsing takes
//! any prefix, so records written by older versions (`arn:berth:ecs:local:000000000000:…`) and
//! ARNs an ECS client rewrote for its own region still resolve.

use std::sync::RwLock;

pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT: &str = "000000000000";

static PREFIX: RwLock<Option<String>> = RwLock::new(None);

/// Sets the region and account every ARN made from now on names.
pub fn configure(region: &str, account: &str) {
    *PREFIX.write().unwrap_or_else(|p| p.into_inner()) = Some(prefix_for(region, account));
}

/// `arn:aws:ecs:REGION:ACCOUNT`.
pub fn prefix_for(region: &str, account: &str) -> String {
    format!("arn:aws:ecs:{region}:{account}")
}

/// The prefix of the ARNs this server makes.
pub fn prefix() -> String {
    PREFIX
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| prefix_for(DEFAULT_REGION, DEFAULT_ACCOUNT))
}

/// Whether `s` is a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` looks like an AWS region name (`us-east-1`, `eu-central-2`, `local`).
pub fn is_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn cluster(name: &str) -> String {
    format!("{}:cluster/{name}", prefix())
}

pub fn task_definition(family: &str, revision: i32) -> String {
    format!("{}:task-definition/{family}:{revision}", prefix())
}

pub fn task(cluster: &str, id: &str) -> String {
    format!("{}:task/{cluster}/{id}", prefix())
}

/// Nodes serve every cluster, so their stored ARN names no cluster; the ECS API shows them
/// under the cluster asked about (`container-instance/CLUSTER/ID`).
pub fn container_instance(id: &str) -> String {
    format!("{}:container-instance/{id}", prefix())
}

pub fn service(cluster: &str, name: &str) -> String {
    format!("{}:service/{cluster}/{name}", prefix())
}

pub fn capacity_provider(name: &str) -> String {
    format!("{}:capacity-provider/{name}", prefix())
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

/// The part of an ARN after `arn:PARTITION:ecs:REGION:ACCOUNT:` (`cluster/demo`), or `None`
/// when `s` is not an ECS ARN.
pub fn resource(s: &str) -> Option<&str> {
    let mut parts = s.splitn(6, ':');
    let (arn, _partition, service, _region, _account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn" && service == "ecs").then_some(())?;
    parts.next()
}

/// The id at the end of a task ARN (or the id itself).
pub fn task_id(task: &str) -> &str {
    last_segment(task)
}

/// The cluster named in a task ARN `…:task/CLUSTER/ID`.
pub fn task_cluster(task_arn: &str) -> Option<&str> {
    let rest = task_arn.rsplit_once(":task/")?.1;
    Some(rest.split_once('/')?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_new_arns_parse_alike() {
        for p in [
            "arn:berth:ecs:local:000000000000",
            "arn:aws:ecs:eu-west-1:123456789012",
        ] {
            assert_eq!(cluster_name(&format!("{p}:cluster/demo")), "demo");
            assert_eq!(last_segment(&format!("{p}:task/demo/abc")), "abc");
            assert_eq!(
                resource(&format!("{p}:service/demo/web")),
                Some("service/demo/web")
            );
        }
        assert_eq!(resource("demo"), None);
        assert_eq!(resource("arn:aws:s3:::bucket"), None);
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("AKIAEXAMPLE"));
    }
}
