//! The bounds on what one request may ask for, so that no number or size a user sends can make
//! the control plane allocate or work in proportion to it. Most are fixed (ECS's quotas where
//! ECS has one); the desired count per service is configurable (`--max-desired-count`).

/// ECS's quota on tasks per service.
pub const DEFAULT_MAX_DESIRED_COUNT: i32 = 5000;
/// ECS's RunTask `count` limit.
pub const MAX_RUN_COUNT: i32 = 10;
/// Port mappings of one container, and of one task: each published port costs the host a
/// docker-proxy process.
pub const MAX_PORTS_PER_CONTAINER: usize = 100;
pub const MAX_PORTS_PER_TASK: usize = 100;
/// Environment entries of one container.
pub const MAX_ENVIRONMENT: usize = 1000;
/// Arguments of `command` or `entryPoint`, and bytes of one argument.
pub const MAX_COMMAND_ARGS: usize = 1000;
pub const MAX_ARG_BYTES: usize = 8192;
/// ECS's limit on a task definition: 64 KiB of JSON.
pub const MAX_TASK_DEFINITION_BYTES: usize = 64 * 1024;

/// AWS's limit on a cluster query expression (a `memberOf` constraint, a ListContainerInstances
/// filter), checked before the expression is tokenized.
pub const EXPRESSION_CHARS: Bound =
    Bound::new(0, 2_000, " characters").noting("ECS's limit on a cluster query expression");
/// How deep parentheses and `not` may nest in one expression: the parser recurses once a level,
/// so this keeps a hostile expression from overflowing a worker thread's stack.
pub const MAX_EXPRESSION_DEPTH: usize = 32;

/// Services one cluster may hold (deleted ones count until they are forgotten).
pub const MAX_SERVICES_PER_CLUSTER: usize = 2_000;
/// Agents one control plane serves at once.
pub const MAX_NODES: usize = 10_000;

/// An inclusive range a number must lie in, and its unit, so that every bounded field says the
/// same thing the same way: `memory: 5000000 MiB is over the maximum of 4194304 MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub min: i64,
    pub max: i64,
    /// Written after each number (" MiB", " seconds"); "" for a plain count.
    pub unit: &'static str,
    /// Why the bound is what it is, or what a special value means; "" for nothing.
    pub note: &'static str,
}

impl Bound {
    pub const fn new(min: i64, max: i64, unit: &'static str) -> Self {
        Self {
            min,
            max,
            unit,
            note: "",
        }
    }

    pub const fn noting(self, note: &'static str) -> Self {
        Self { note, ..self }
    }

    /// The value, the limit it breaks and (when known) why, or `Ok`.
    pub fn check(&self, v: i64) -> Result<(), String> {
        let u = self.unit;
        let broken = if v < self.min {
            format!("{v}{u} is under the minimum of {}{u}", self.min)
        } else if v > self.max {
            format!("{v}{u} is over the maximum of {}{u}", self.max)
        } else {
            return Ok(());
        };
        if self.note.is_empty() {
            Err(broken)
        } else {
            Err(format!("{broken} ({})", self.note))
        }
    }

    /// `check`, pushed as a field error of `path`.
    pub fn push(&self, errs: &mut Vec<crate::error::FieldError>, path: impl Into<String>, v: i64) {
        if let Err(e) = self.check(v) {
            errs.push(crate::error::FieldError::new(path, e));
        }
    }
}

/// Task-level `cpu`: ECS's range on EC2 (128 units to 192 vCPUs).
pub const TASK_CPU: Bound = Bound::new(128, 196_608, " CPU units").noting("1024 units a core");
/// Task-level `memory`, and a container's `memory` (hard limit) when set: from Docker's
/// minimum to 4 TiB, past any host ECS offers.
pub const MEMORY: Bound = Bound::new(6, 4_194_304, " MiB");
/// A container's `memoryReservation` (soft limit).
pub const MEMORY_RESERVATION: Bound = Bound::new(0, 4_194_304, " MiB");
/// A container's `cpu` share.
pub const CONTAINER_CPU: Bound = Bound::new(0, 196_608, " CPU units").noting("1024 units a core");
/// A container's `stopTimeout`.
pub const STOP_TIMEOUT: Bound = Bound::new(0, 3600, " seconds");
pub const CONTAINER_PORT: Bound = Bound::new(1, 65_535, "");
pub const HOST_PORT: Bound = Bound::new(0, 65_535, "").noting("0 lets Docker pick a free port");
/// A container `healthCheck`'s fields, in ECS's ranges.
pub const HEALTH_INTERVAL: Bound = Bound::new(5, 300, " seconds");
pub const HEALTH_TIMEOUT: Bound = Bound::new(2, 60, " seconds");
pub const HEALTH_RETRIES: Bound = Bound::new(1, 10, "");
pub const HEALTH_START_PERIOD: Bound = Bound::new(0, 300, " seconds");
/// RunTask's `count`.
pub const RUN_COUNT: Bound = Bound::new(1, MAX_RUN_COUNT as i64, "").noting("ECS's RunTask limit");
/// A service's deployment configuration.
pub const MIN_HEALTHY_PERCENT: Bound = Bound::new(0, 100, "%");
pub const MAX_PERCENT: Bound = Bound::new(100, 400, "%");
/// ECS's `healthCheckGracePeriodSeconds` (an int32).
pub const GRACE_PERIOD: Bound = Bound::new(0, i32::MAX as i64, " seconds");
/// A load balancer's listener port.
pub const LISTENER_PORT: Bound = Bound::new(1, 65_535, "");

/// A target group health check's `Matcher.HttpCode` (`200-399`, `200,204`): far more than any
/// list of codes needs, so the matcher is never parsed at a size a client picks.
pub const MATCHER_CHARS: Bound = Bound::new(1, 256, " characters");
/// A health check's path: ALB's limit.
pub const HEALTH_PATH_CHARS: Bound = Bound::new(1, 1_024, " characters");

/// The N of a Query API list entry (`Names.member.N`): no list Berth serves comes near it, and an
/// index past it is refused rather than dropped (which would turn a filter into "everything").
pub const QUERY_LIST_INDEX: Bound = Bound::new(1, 1_000, "");
/// A Query API parameter's name: the longest ELBv2 has
/// (`Actions.member.N.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds`) is under 100.
pub const QUERY_KEY_CHARS: Bound = Bound::new(1, 256, " characters");

/// A lifecycle hook's URL: browsers' and proxies' common limit on a URL.
pub const HOOK_URL_CHARS: Bound = Bound::new(0, 2_048, " characters");
/// A lifecycle hook's `hookDetails` (JSON sent with every call of the hook): ample for any
/// payload a webhook takes, and small enough to store and send on every stage.
pub const HOOK_DETAILS_CHARS: Bound = Bound::new(0, 16_384, " characters");

/// How deep a JSON body (JSON API, ECS API, a stack) may nest: serde_json's own recursion limit,
/// which every JSON parse here relies on, named so errors can say it.
pub const JSON_DEPTH: usize = 128;
/// How deep a YAML stack file may nest (the CLI reads it before sending it as JSON); a stack
/// needs about ten levels.
pub const YAML_DEPTH: usize = 64;
/// The largest stack file the CLI reads: CloudFormation's limit on a template body.
pub const STACK_FILE_BYTES: usize = 1024 * 1024;

/// ELBv2's quotas on application load balancers, named as AWS's quota page names them, with
/// AWS's defaults; `berth server --elb-max-*` changes the configurable ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElbQuotas {
    /// Rules per load balancer, not counting each listener's default rule.
    pub rules_per_load_balancer: usize,
    pub listeners_per_load_balancer: usize,
    /// Target groups one forward action spreads over.
    pub target_groups_per_action: usize,
    /// Condition values per rule, over all its conditions.
    pub condition_values_per_rule: usize,
    /// Targets per target group: the desired tasks of every service attached to it.
    pub targets_per_target_group: usize,
}

impl Default for ElbQuotas {
    fn default() -> Self {
        Self {
            rules_per_load_balancer: 100,
            listeners_per_load_balancer: 50,
            target_groups_per_action: 5,
            condition_values_per_rule: 5,
            targets_per_target_group: 1_000,
        }
    }
}

/// The ports this server serves on itself, each with its owner's name, which no load balancer
/// listener may take. A fixed array keeps `Limits` a plain copyable value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnPorts([Option<(u16, &'static str)>; 4]);

impl OwnPorts {
    /// Records `port` as `owner`'s; past the array's room the port is not recorded.
    pub fn add(&mut self, port: u16, owner: &'static str) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some((port, owner));
        }
    }

    /// Who owns `port`, if this server does.
    pub fn owner(&self, port: i32) -> Option<&'static str> {
        self.0
            .iter()
            .flatten()
            .find(|(p, _)| i32::from(*p) == port)
            .map(|(_, o)| *o)
    }
}

/// The configurable bounds, held by `State` so every transport checks the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest `desiredCount` a service may have.
    pub max_desired_count: i32,
    pub elb: ElbQuotas,
    /// Ports of this server's own that listeners may not take.
    pub own_ports: OwnPorts,
    /// Where this process's own load balancer binds its listeners, so that a new listener's
    /// port can be tried first (held by another process: refused). `None`: no proxy here.
    pub listener_bind: Option<std::net::IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_desired_count: DEFAULT_MAX_DESIRED_COUNT,
            elb: ElbQuotas::default(),
            own_ports: OwnPorts::default(),
            listener_bind: None,
        }
    }
}

/// `desiredCount` against the limit, in the words of every transport's error.
pub fn check_desired_count(limits: &Limits, desired: i32) -> Result<(), String> {
    Bound::new(0, i64::from(limits.max_desired_count), "")
        .noting("tasks per service: the server's --max-desired-count")
        .check(i64::from(desired))
}

/// The error for one service too many in `cluster`.
pub fn services_full(cluster: &str, have: usize) -> Option<String> {
    (have >= MAX_SERVICES_PER_CLUSTER).then(|| {
        format!(
            "cluster {cluster} already holds {have} services, the most one cluster may \
             ({MAX_SERVICES_PER_CLUSTER}); delete one or use another cluster"
        )
    })
}

/// The error for an agent past the most nodes one control plane serves.
pub fn nodes_full(connected: usize) -> Option<String> {
    (connected >= MAX_NODES).then(|| {
        format!(
            "this control plane already serves {connected} agents, the most it may \
             ({MAX_NODES}); run another cluster's control plane for more"
        )
    })
}

/// Whether a fleet of this size is within the limits (for `bench fleet`).
pub fn check_fleet(nodes: usize, services: usize, tasks_per_service: usize) -> Result<(), String> {
    if nodes > MAX_NODES {
        return Err(format!("--nodes {nodes}: at most {MAX_NODES}"));
    }
    if services >= MAX_SERVICES_PER_CLUSTER {
        return Err(format!(
            "--services {services}: at most {} (one more is the rolling service)",
            MAX_SERVICES_PER_CLUSTER - 1
        ));
    }
    if tasks_per_service > DEFAULT_MAX_DESIRED_COUNT as usize {
        return Err(format!(
            "--tasks-per-service {tasks_per_service}: at most {DEFAULT_MAX_DESIRED_COUNT}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn a_bound_names_the_value_the_limit_and_the_unit() {
        assert_eq!(
            MEMORY.check(5_000_000).unwrap_err(),
            "5000000 MiB is over the maximum of 4194304 MiB"
        );
        assert_eq!(
            MEMORY.check(4).unwrap_err(),
            "4 MiB is under the minimum of 6 MiB"
        );
        assert!(MEMORY.check(4_194_304).is_ok() && MEMORY.check(6).is_ok());
        assert_eq!(
            HOST_PORT.check(70_000).unwrap_err(),
            "70000 is over the maximum of 65535 (0 lets Docker pick a free port)"
        );
        assert_eq!(
            RUN_COUNT.check(11).unwrap_err(),
            "11 is over the maximum of 10 (ECS's RunTask limit)"
        );
    }

    #[test]
    fn desired_count_names_the_servers_limit() {
        let limits = Limits::default();
        assert_eq!(
            check_desired_count(&limits, 5001).unwrap_err(),
            "5001 is over the maximum of 5000 (tasks per service: the server's --max-desired-count)"
        );
        assert_eq!(
            check_desired_count(&limits, -1).unwrap_err(),
            "-1 is under the minimum of 0 (tasks per service: the server's --max-desired-count)"
        );
        assert!(check_desired_count(&limits, 5000).is_ok());
    }
}

#[cfg(test)]
mod fleet_tests {
    use super::*;

    #[test]
    fn fleet_limits_say_the_maximum_and_the_fix() {
        assert!(services_full("demo", 1_999).is_none());
        assert!(services_full("demo", 2_000).unwrap().contains("delete one"));
        assert!(nodes_full(9_999).is_none());
        assert!(nodes_full(10_000).is_some());
        assert!(check_fleet(10_000, 1_000, 1_000).is_ok());
        assert!(check_fleet(10_001, 1, 1).is_err());
        assert!(check_fleet(1, 1, 5_001).is_err());
    }
}
