//! Service discovery, decided purely: whether an ECS task is a Cloud Map instance of the
//! service it runs for, and at which address and port, from its status, health and bindings.

use berth_proto::v1::{ContainerInstance, Task};

/// Where an ECS service's registry points in its tasks (ECS's `serviceRegistries[]` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// The container whose port the instance gives (empty: the first with a binding).
    pub container_name: String,
    /// Its container port (0: its first binding).
    pub container_port: i32,
}

/// The instance a task is: its address and port (0 with no binding). None while the task is not
/// serving: not RUNNING, asked to stop, deregistered, or — when its definition has a health
/// check (`checked`) — not HEALTHY. A stopping task leaves at once, so DNS stops naming it
/// before its containers are told to stop.
pub fn instance_of(
    task: &Task,
    registry: &Registry,
    node: Option<&ContainerInstance>,
    checked: bool,
) -> Option<(String, i32)> {
    if task.last_status != "RUNNING"
        || task.desired_status == "STOPPED"
        || !task.deregistered_at.is_empty()
    {
        return None;
    }
    if task.health_status == "UNHEALTHY" || (checked && task.health_status != "HEALTHY") {
        return None;
    }
    let node_address = node.map(|n| n.address.clone()).unwrap_or_default();
    let binding = task
        .containers
        .iter()
        .filter(|c| registry.container_name.is_empty() || c.name == registry.container_name)
        .flat_map(|c| c.network_bindings.iter())
        .find(|b| registry.container_port == 0 || b.container_port == registry.container_port);
    let (address, port) = match binding {
        // A task on its own address (a task network) is reached there; a published port on
        // the node's address.
        Some(b) => match b.bind_ip.as_str() {
            "" | "0.0.0.0" | "::" => (node_address, b.host_port),
            own => (own.to_string(), b.host_port),
        },
        None => (node_address, 0),
    };
    (!address.is_empty()).then_some((address, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::{Container, NetworkBinding};

    fn task(status: &str, desired: &str, health: &str, bind_ip: &str) -> Task {
        Task {
            last_status: status.into(),
            desired_status: desired.into(),
            health_status: health.into(),
            containers: vec![
                Container {
                    name: "side".into(),
                    network_bindings: vec![NetworkBinding {
                        bind_ip: "0.0.0.0".into(),
                        container_port: 9000,
                        host_port: 39000,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                Container {
                    name: "api".into(),
                    network_bindings: vec![NetworkBinding {
                        bind_ip: bind_ip.into(),
                        container_port: 8080,
                        host_port: 32001,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn node() -> ContainerInstance {
        ContainerInstance {
            address: "10.0.0.7".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_serving_task_is_found_at_its_binding() {
        let reg = Registry {
            container_name: "api".into(),
            container_port: 8080,
        };
        let cases = [
            // (status, desired, health, bind ip, checked) → instance
            (
                "RUNNING",
                "RUNNING",
                "HEALTHY",
                "0.0.0.0",
                true,
                Some(("10.0.0.7", 32001)),
            ),
            (
                "RUNNING",
                "RUNNING",
                "UNKNOWN",
                "0.0.0.0",
                false,
                Some(("10.0.0.7", 32001)),
            ),
            ("RUNNING", "RUNNING", "UNKNOWN", "0.0.0.0", true, None),
            ("RUNNING", "RUNNING", "UNHEALTHY", "0.0.0.0", false, None),
            (
                "RUNNING",
                "RUNNING",
                "HEALTHY",
                "172.30.0.5",
                true,
                Some(("172.30.0.5", 32001)),
            ),
            ("RUNNING", "STOPPED", "HEALTHY", "0.0.0.0", true, None),
            ("PENDING", "RUNNING", "HEALTHY", "0.0.0.0", true, None),
            ("STOPPED", "STOPPED", "HEALTHY", "0.0.0.0", true, None),
        ];
        for (status, desired, health, ip, checked, want) in cases {
            let t = task(status, desired, health, ip);
            let got = instance_of(&t, &reg, Some(&node()), checked);
            assert_eq!(
                got,
                want.map(|(a, p)| (a.to_string(), p)),
                "{status} {desired} {health} {ip} checked={checked}"
            );
        }
    }

    #[test]
    fn no_named_container_means_the_first_binding_or_no_port() {
        let t = task("RUNNING", "RUNNING", "HEALTHY", "0.0.0.0");
        let any = instance_of(&t, &Registry::default(), Some(&node()), true);
        assert_eq!(any, Some(("10.0.0.7".into(), 39000)));
        let missing = Registry {
            container_name: "nope".into(),
            container_port: 1,
        };
        assert_eq!(
            instance_of(&t, &missing, Some(&node()), true),
            Some(("10.0.0.7".into(), 0))
        );
        assert_eq!(instance_of(&t, &missing, None, true), None);
    }
}
