//! Services: CreateService, UpdateService, DescribeServices (deployments, events, counts),
//! ListServices, DeleteService (force), ListServiceDeployments, DescribeServiceDeployments.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{each, paging, shapes, Ctx};
use crate::model::ecs_extras::{self, Extras};
use crate::state::error::Error;
use crate::{model::clusters, model::services};
use berth_core::arn;
use berth_proto::v1::*;
use serde_json::{json, Value};

/// CreateService fields Berth acts on; the rest is kept and echoed.
const USED: &[&str] = &[
    "cluster",
    "serviceName",
    "taskDefinition",
    "desiredCount",
    "deploymentConfiguration",
    "placementStrategy",
    "placementConstraints",
    "schedulingStrategy",
    "healthCheckGracePeriodSeconds",
    "tags",
    "clientToken",
    "loadBalancers",
    "capacityProviderStrategy",
    "deploymentController",
];

/// `loadBalancers[{targetGroupArn, containerName, containerPort}]`: the service's tasks join
/// those ELBv2 target groups. Classic load balancers (`loadBalancerName`) are not served.
fn load_balancers(input: &Input) -> EcsResult<Vec<LoadBalancer>> {
    let mut out = Vec::new();
    for (i, lb) in input.objects("loadBalancers")?.iter().enumerate() {
        if lb.has("loadBalancerName") {
            return Err(EcsError::invalid(
                &format!("loadBalancers[{i}].loadBalancerName"),
                "classic load balancers are not served; give the targetGroupArn of an ELBv2 target group",
            ));
        }
        let target_group_arn = lb.required("targetGroupArn")?;
        let container_port = lb.int_in("containerPort", 1..=65535)?.ok_or_else(|| {
            EcsError::invalid(&format!("loadBalancers[{i}].containerPort"), "is required")
        })?;
        out.push(LoadBalancer {
            container_name: lb.required("containerName")?,
            container_port,
            target_group_arn,
            ..Default::default()
        });
    }
    Ok(out)
}

fn cluster_of(input: &Input) -> EcsResult<String> {
    Ok(input
        .str("cluster")?
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| clusters::DEFAULT_CLUSTER.to_string()))
}

fn deployment_configuration(input: &Input) -> EcsResult<Option<DeploymentConfiguration>> {
    let Some(dc) = input.object("deploymentConfiguration")? else {
        return Ok(None);
    };
    let breaker = match dc.object("deploymentCircuitBreaker")? {
        Some(cb) => Some(DeploymentCircuitBreaker {
            enable: cb.bool("enable")?.unwrap_or(false),
            rollback: cb.bool("rollback")?.unwrap_or(false),
            threshold: 0,
        }),
        None => None,
    };
    let canary = match dc.object("canaryConfiguration")? {
        Some(c) => Some(CanaryConfiguration {
            canary_percent: c.number_in("canaryPercent", 0.1..=100.0)?.unwrap_or(10.0),
            canary_bake_time_in_minutes: c
                .int_in("canaryBakeTimeInMinutes", 0..=1440)?
                .unwrap_or(10),
            canary_bake_time_seconds: None,
        }),
        None => None,
    };
    let linear = match dc.object("linearConfiguration")? {
        Some(l) => Some(LinearConfiguration {
            step_percent: l.number_in("stepPercent", 3.0..=100.0)?.unwrap_or(10.0),
            step_bake_time_in_minutes: l.int_in("stepBakeTimeInMinutes", 0..=1440)?.unwrap_or(6),
            step_bake_time_seconds: None,
        }),
        None => None,
    };
    let hooks = dc
        .objects("lifecycleHooks")?
        .iter()
        .map(|h| {
            let timeout = h.object("timeoutConfiguration")?;
            let (timeout_in_minutes, timeout_action) = match timeout {
                Some(t) => (
                    t.int_in("timeoutInMinutes", 1..=1440)?.unwrap_or(0),
                    t.choice("action", &["CONTINUE", "ROLLBACK"])?
                        .unwrap_or_default(),
                ),
                None => (0, String::new()),
            };
            Ok(DeploymentLifecycleHook {
                timeout_in_minutes,
                timeout_action,
                target_type: h.text("targetType")?,
                hook_target_arn: h.text("hookTargetArn")?,
                role_arn: h.text("roleArn")?,
                lifecycle_stages: h.strings("lifecycleStages")?,
                hook_details: h
                    .object("hookDetails")?
                    .map_or(String::new(), |d| d.value().to_string()),
            })
        })
        .collect::<EcsResult<Vec<_>>>()?;
    Ok(Some(DeploymentConfiguration {
        lifecycle_hooks: hooks,
        minimum_healthy_percent: dc.int_in("minimumHealthyPercent", 0..=100)?,
        maximum_percent: dc.int_in("maximumPercent", 0..=400)?,
        deployment_circuit_breaker: breaker,
        strategy: dc
            .choice("strategy", &["ROLLING", "BLUE_GREEN", "CANARY", "LINEAR"])?
            .unwrap_or_default(),
        bake_time_in_minutes: dc.int_in("bakeTimeInMinutes", 0..=1440)?.unwrap_or(0),
        canary_configuration: canary,
        linear_configuration: linear,
        ..Default::default()
    }))
}

fn key_of(s: &Service) -> String {
    services::key(arn::cluster_name(&s.cluster_arn), &s.service_name)
}

fn shape(ctx: &Ctx<'_>, s: &Service, with_tags: bool) -> EcsResult<Value> {
    let mut extras = ecs_extras::get(ctx.state, &key_of(s))?;
    if !with_tags {
        extras.tags.clear();
    }
    let mut v = shapes::service(s, &extras);
    if s.deployment_controller == "EXTERNAL" {
        v["deploymentController"] = json!({"type": "EXTERNAL"});
        let sets = s
            .task_sets
            .iter()
            .map(|ts| super::tasksets::shape(ctx, s, ts))
            .collect::<EcsResult<Vec<_>>>()?;
        v["taskSets"] = json!(sets);
        if let Some(m) = v.as_object_mut() {
            m.remove("deployments");
            if s.task_definition.is_empty() {
                m.remove("taskDefinition");
            }
        }
    }
    Ok(v)
}

/// `serviceRegistries`: each entry names a Cloud Map service that exists, so a typo is refused
/// before anything is written rather than registering nothing.
fn check_registries(ctx: &Ctx<'_>, input: &Input) -> EcsResult<()> {
    for (i, r) in input.objects("serviceRegistries")?.iter().enumerate() {
        let field = |f: &str| format!("serviceRegistries[{i}].{f}");
        let arn = r.required("registryArn")?;
        for port in ["port", "containerPort"] {
            r.int_in(port, 1..=65535)?;
        }
        let found = crate::model::discovery::services::find(ctx.state, &arn)
            .map_err(|e| EcsError::server(e.message))?;
        if found.is_none() {
            return Err(EcsError::invalid(
                &field("registryArn"),
                format!("{arn} is not a Cloud Map service; make one with `aws servicediscovery create-service` and give its ARN"),
            ));
        }
    }
    Ok(())
}

pub fn create(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let name = input.required("serviceName")?;
    check_registries(ctx, input)?;
    let deployment_controller = match input.object("deploymentController")? {
        Some(dc) => dc
            .choice("type", &["ECS", "CODE_DEPLOY", "EXTERNAL"])?
            .unwrap_or_default(),
        None => String::new(),
    };
    // An EXTERNAL service's task sets name their own task definitions.
    let task_definition = if deployment_controller == "EXTERNAL" {
        input.text("taskDefinition")?
    } else {
        input.required("taskDefinition")?
    };
    let tags = input.tags("tags")?;
    let errs = ecs_extras::check_tags("tags", &tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs).into());
    }
    let service_connect =
        super::service_connect::check(ctx, input, &cluster, &name, &task_definition)?;
    let (placement_strategy, placement_constraints) = super::input::placement(input)?;
    let req = CreateServiceRequest {
        cluster,
        service_name: name,
        task_definition,
        desired_count: input
            .int_in("desiredCount", 0..=i64::from(i32::MAX))?
            .unwrap_or(0),
        scheduling_strategy: input
            .choice("schedulingStrategy", &["REPLICA", "DAEMON"])?
            .unwrap_or_default(),
        deployment_configuration: deployment_configuration(input)?,
        placement_strategy,
        placement_constraints,
        health_check_grace_period_seconds: input
            .int_in("healthCheckGracePeriodSeconds", 0..=2_147_483_647)?
            .unwrap_or(0),
        load_balancers: load_balancers(input)?,
        capacity_provider_strategy: super::capacity::strategy(input, "capacityProviderStrategy")?,
        deployment_controller,
        service_connect,
    };
    let extras = Extras {
        tags,
        fields: input.rest(USED),
    };
    let svc = services::create_with(ctx.state, req, "", |s| {
        Ok(vec![ecs_extras::put_op(&key_of(s), &extras)])
    })?;
    Ok(json!({ "service": shape(ctx, &svc, true)? }))
}

pub fn update(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    check_registries(ctx, input)?;
    let set_placement = input.has("placementStrategy") || input.has("placementConstraints");
    let (placement_strategy, placement_constraints) = super::input::placement(input)?;
    let mut req = UpdateServiceRequest {
        cluster: cluster.clone(),
        service: service.clone(),
        task_definition: input.text("taskDefinition")?,
        desired_count: input.int_in("desiredCount", 0..=i64::from(i32::MAX))?,
        force_new_deployment: input.bool("forceNewDeployment")?.unwrap_or(false),
        deployment_configuration: deployment_configuration(input)?,
        health_check_grace_period_seconds: input
            .int_in("healthCheckGracePeriodSeconds", 0..=2_147_483_647)?,
        set_placement,
        placement_strategy,
        placement_constraints,
        set_capacity_provider_strategy: input.has("capacityProviderStrategy"),
        capacity_provider_strategy: super::capacity::strategy(input, "capacityProviderStrategy")?,
        ..Default::default()
    };
    clusters::get_active(ctx.state, &cluster)?;
    // A new configuration, or a new task definition under the kept one: the aliases' ports are
    // resolved again.
    let kept = super::service_connect::kept(ctx, &cluster, &service)?;
    if input.has("serviceConnectConfiguration")
        || (kept.is_some() && !req.task_definition.is_empty())
    {
        let current = services::find(ctx.state, &cluster, &service)?;
        let td = if req.task_definition.is_empty() {
            current.task_definition.clone()
        } else {
            req.task_definition.clone()
        };
        let resolved = match (
            super::service_connect::check(ctx, input, &cluster, &current.service_name, &td)?,
            kept,
        ) {
            (Some(r), _) => Some(r),
            (None, Some(config)) => Some(super::service_connect::resolve(
                ctx,
                &config,
                &cluster,
                &current.service_name,
                &td,
            )?),
            (None, None) => None,
        };
        req.set_service_connect = true;
        req.service_connect = resolved;
    }
    let svc = services::update(ctx.state, req)?;
    let key = key_of(&svc);
    let rest = input.rest(&[
        "cluster",
        "service",
        "taskDefinition",
        "desiredCount",
        "forceNewDeployment",
        "deploymentConfiguration",
        "healthCheckGracePeriodSeconds",
        "placementStrategy",
        "placementConstraints",
        "capacityProviderStrategy",
    ]);
    if !rest.is_empty() {
        let add = Extras {
            fields: rest,
            ..Extras::default()
        };
        ecs_extras::merge(ctx.state, &key, add)?;
    }
    Ok(json!({ "service": shape(ctx, &svc, true)? }))
}

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let names = input.required_strings("services")?;
    if names.len() > 10 {
        return Err(EcsError::invalid(
            "services",
            format!("{} given; at most 10 a call", names.len()),
        ));
    }
    let with_tags = input.strings("include")?.iter().any(|i| i == "TAGS");
    clusters::describe(ctx.state, &cluster)?;
    let (found, failures) = each(
        &names,
        |n| services::find(ctx.state, &cluster, n),
        |n| arn::service(arn::cluster_name(&cluster), arn::last_segment(n)),
    )?;
    let services = found
        .iter()
        .map(|s| shape(ctx, s, with_tags))
        .collect::<EcsResult<Vec<_>>>()?;
    Ok(json!({ "services": services, "failures": failures }))
}

pub fn list(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let strategy = input.choice("schedulingStrategy", &["REPLICA", "DAEMON"])?;
    input.choice(
        "launchType",
        &["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"],
    )?;
    clusters::get_active(ctx.state, &cluster)?;
    let items = services::list(ctx.state, &cluster)?
        .into_iter()
        .filter(|s| {
            strategy
                .as_ref()
                .is_none_or(|x| *x == s.scheduling_strategy)
        })
        .map(|s| Value::String(s.service_arn))
        .collect();
    paging::page(input, items, "serviceArns", 10, 100)
}

pub fn delete(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    let force = input.bool("force")?.unwrap_or(false);
    clusters::describe(ctx.state, &cluster)?;
    let svc = services::delete(ctx.state, &cluster, &service, force)?;
    Ok(json!({ "service": shape(ctx, &svc, true)? }))
}

/// A Berth deployment as ECS's service deployment status.
/// ECS's `ServiceDeploymentStatus` values, the only ones a `status` filter may name.
const DEPLOYMENT_STATUSES: &[&str] = &[
    "PENDING",
    "SUCCESSFUL",
    "STOPPED",
    "STOP_REQUESTED",
    "IN_PROGRESS",
    "ROLLBACK_REQUESTED",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_SUCCESSFUL",
    "ROLLBACK_FAILED",
];

/// ECS's limit on the ARNs of one DescribeServiceDeployments.
const MAX_DESCRIBED_DEPLOYMENTS: usize = 20;

fn deployment_status(d: &Deployment) -> &'static str {
    match (d.status.as_str(), d.rollout_state.as_str()) {
        (_, "COMPLETED") => "SUCCESSFUL",
        (_, "FAILED") => "STOPPED",
        ("PRIMARY", _) => "IN_PROGRESS",
        _ => "STOPPED",
    }
}

fn brief(s: &Service, d: &Deployment) -> Value {
    let finished = deployment_status(d) != "IN_PROGRESS";
    shapes::prune(json!({
        "serviceDeploymentArn": shapes::service_deployment_arn(s, &d.id),
        "serviceArn": s.service_arn,
        "clusterArn": s.cluster_arn,
        "createdAt": shapes::epoch(&d.created_at),
        "startedAt": shapes::epoch(&d.created_at),
        "finishedAt": if finished { shapes::epoch(&d.updated_at) } else { Value::Null },
        "targetServiceRevisionArn": revision_arn(s, d),
        "status": deployment_status(d),
        "statusReason": d.rollout_state_reason,
    }))
}

pub(super) fn revision_arn(s: &Service, d: &Deployment) -> String {
    let id = d.id.strip_prefix("ecs-svc/").unwrap_or(&d.id);
    format!(
        "{}:service-revision/{}/{}/{id}",
        arn::prefix(),
        arn::cluster_name(&s.cluster_arn),
        s.service_name
    )
}

pub fn list_deployments(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let cluster = cluster_of(input)?;
    let service = input.required("service")?;
    let wanted = input.strings("status")?;
    for (i, w) in wanted.iter().enumerate() {
        if !DEPLOYMENT_STATUSES.contains(&w.as_str()) {
            return Err(EcsError::invalid(
                &format!("status[{i}]"),
                format!(
                    "{} must be one of {}",
                    crate::state::error::quote(w),
                    DEPLOYMENT_STATUSES.join(", ")
                ),
            ));
        }
    }
    let (after, before) = match input.object("createdAt")? {
        None => (None, None),
        Some(c) => (
            c.number_in("after", 0.0..=f64::MAX)?,
            c.number_in("before", 0.0..=f64::MAX)?,
        ),
    };
    let created_within = |d: &Deployment| {
        let at = crate::time::parse_rfc3339(&d.created_at).map_or(0.0, |ms| ms as f64 / 1000.0);
        after.is_none_or(|a| at >= a) && before.is_none_or(|b| at <= b)
    };
    clusters::describe(ctx.state, &cluster)?;
    let svc = services::find(ctx.state, &cluster, &service)?;
    let items = svc
        .deployments
        .iter()
        .filter(|d| wanted.is_empty() || wanted.iter().any(|w| w == deployment_status(d)))
        .filter(|d| created_within(d))
        .map(|d| brief(&svc, d))
        .collect();
    paging::page(input, items, "serviceDeployments", 20, 100)
}

/// StopServiceDeployment: ROLLBACK (the default) or ABORT the deployment an ARN names.
pub fn stop_deployment(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let a = input.required("serviceDeploymentArn")?;
    let stop_type = input
        .choice("stopType", &["ABORT", "ROLLBACK"])?
        .unwrap_or_else(|| "ROLLBACK".into());
    let parts: Vec<&str> = arn::resource(&a)
        .and_then(|r| r.strip_prefix("service-deployment/"))
        .map(|r| r.split('/').collect())
        .unwrap_or_default();
    let [cluster, service, id] = parts[..] else {
        return Err(EcsError::invalid(
            "serviceDeploymentArn",
            format!("{a:?} is not a service deployment ARN (arn:aws:ecs:REGION:ACCOUNT:service-deployment/CLUSTER/SERVICE/ID)"),
        ));
    };
    // The cluster first, as ECS checks it.
    clusters::describe(ctx.state, cluster)?;
    services::stop_deployment(
        ctx.state,
        StopServiceDeploymentRequest {
            cluster: cluster.into(),
            service: service.into(),
            deployment: id.into(),
            stop_type,
        },
    )?;
    Ok(json!({ "serviceDeploymentArn": a }))
}

pub fn describe_deployments(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let arns = input.required_strings("serviceDeploymentArns")?;
    if arns.len() > MAX_DESCRIBED_DEPLOYMENTS {
        return Err(EcsError::invalid(
            "serviceDeploymentArns",
            format!(
                "{} ARNs; at most {MAX_DESCRIBED_DEPLOYMENTS} in one call",
                arns.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for a in &arns {
        let parts: Vec<&str> = arn::resource(a)
            .and_then(|r| r.strip_prefix("service-deployment/"))
            .map(|r| r.split('/').collect())
            .unwrap_or_default();
        let [cluster, service, id] = parts[..] else {
            return Err(EcsError::invalid(
                "serviceDeploymentArns",
                format!("{a:?} is not a service deployment ARN"),
            ));
        };
        let found = match services::find(ctx.state, cluster, service) {
            Ok(s) => s
                .deployments
                .iter()
                .find(|d| d.id.strip_prefix("ecs-svc/").unwrap_or(&d.id) == id)
                .map(|d| describe_one(&s, d)),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        match found {
            Some(v) => out.push(v),
            None => failures.push(shapes::failure(a, "MISSING", "")),
        }
    }
    Ok(json!({ "serviceDeployments": out, "failures": failures }))
}

fn describe_one(s: &Service, d: &Deployment) -> Value {
    let mut v = brief(s, d);
    let sources: Vec<Value> = s
        .deployments
        .iter()
        .filter(|o| o.id != d.id)
        .map(|o| {
            json!({"arn": revision_arn(s, o), "requestedTaskCount": o.desired_count,
                   "runningTaskCount": o.running_count, "pendingTaskCount": o.pending_count})
        })
        .collect();
    let cb = s
        .deployment_configuration
        .as_ref()
        .and_then(|c| c.deployment_circuit_breaker)
        .unwrap_or_default();
    v["updatedAt"] = shapes::epoch(&d.updated_at);
    if !d.lifecycle_stage.is_empty() {
        v["lifecycleStage"] = json!(d.lifecycle_stage);
    }
    let hooks = super::hooks::details(s, d);
    if !hooks.is_empty() {
        v["lifecycleHookDetails"] = json!(hooks);
    }
    v["sourceServiceRevisions"] = json!(sources);
    v["targetServiceRevision"] = json!({
        "arn": revision_arn(s, d),
        "requestedTaskCount": d.desired_count,
        "runningTaskCount": d.running_count,
        "pendingTaskCount": d.pending_count,
    });
    v["deploymentCircuitBreaker"] = json!({
        "status": if !cb.enable { "DISABLED" } else if d.rollout_state == "FAILED" { "TRIGGERED" } else { "MONITORING" },
        "failureCount": d.failed_tasks,
        "threshold": berth_core::plan::rollout::breaker_threshold(s),
    });
    v
}

/// ListServicesByNamespace: the services registered in, or connected through, a Cloud Map
/// namespace (named by name or ARN).
pub fn list_by_namespace(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    use crate::model::discovery::{by_namespace, namespaces};
    let name = input.required("namespace")?;
    let cm = |e: crate::model::discovery::CmError| EcsError::server(e.message);
    let ns = namespaces::find(ctx.state, &name).map_err(cm)?.ok_or_else(|| {
        EcsError::new(
            "NamespaceNotFoundException",
            format!("namespace: {name} is not a Cloud Map namespace; `aws servicediscovery list-namespaces` shows them"),
        )
    })?;
    let items = by_namespace::ecs_services_in(ctx.state, &ns)
        .map_err(cm)?
        .into_iter()
        .map(|s| Value::String(s.service_arn))
        .collect();
    paging::page(input, items, "serviceArns", 10, 100)
}
