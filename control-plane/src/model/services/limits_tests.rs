//! Every bounded field of a service, past its bound, names the field, the value and the limit.

use super::new_service;
use berth_core::limits::Limits;
use berth_core::service::check_load_balancers;
use berth_proto::v1::*;

/// The messages `new_service` gives `req`.
fn errors(req: CreateServiceRequest) -> Vec<String> {
    let (_, errs) = new_service("demo", &req, &Limits::default());
    errs.iter().map(ToString::to_string).collect()
}

fn service() -> CreateServiceRequest {
    CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web:1".into(),
        desired_count: 1,
        ..Default::default()
    }
}

#[test]
fn desired_count_names_the_value_and_the_servers_maximum() {
    let errs = errors(CreateServiceRequest {
        desired_count: 6000,
        ..service()
    });
    assert_eq!(
        errs,
        ["desiredCount: 6000 is over the maximum of 5000 (tasks per service: the server's --max-desired-count)"]
    );
    let (_, errs) = new_service(
        "demo",
        &CreateServiceRequest {
            desired_count: 11,
            ..service()
        },
        &Limits {
            max_desired_count: 10,
            ..Limits::default()
        },
    );
    assert!(errs[0].to_string().contains("11 is over the maximum of 10"));
}

#[test]
fn deployment_percents_and_grace_period_name_their_limits() {
    let errs = errors(CreateServiceRequest {
        deployment_configuration: Some(DeploymentConfiguration {
            minimum_healthy_percent: Some(150),
            maximum_percent: Some(500),
            ..Default::default()
        }),
        health_check_grace_period_seconds: -5,
        ..service()
    });
    for want in [
        "healthCheckGracePeriodSeconds: -5 seconds is under the minimum of 0 seconds",
        "deploymentConfiguration.minimumHealthyPercent: 150% is over the maximum of 100%",
        "deploymentConfiguration.maximumPercent: 500% is over the maximum of 400%",
    ] {
        assert!(errs.iter().any(|e| e == want), "{want} in {errs:?}");
    }
    let errs = errors(CreateServiceRequest {
        deployment_configuration: Some(DeploymentConfiguration {
            maximum_percent: Some(50),
            ..Default::default()
        }),
        ..service()
    });
    assert_eq!(
        errs,
        ["deploymentConfiguration.maximumPercent: 50% is under the minimum of 100%"]
    );
}

/// The messages `check_load_balancers` gives one load balancer on a container mapping port 80.
fn lb_errors(lb: LoadBalancer) -> Vec<String> {
    let td = TaskDefinition {
        container_definitions: vec![ContainerDefinition {
            name: "web".into(),
            port_mappings: vec![PortMapping {
                container_port: 80,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut errs = Vec::new();
    check_load_balancers(&mut errs, &[lb], &td);
    errs.iter().map(ToString::to_string).collect()
}

fn lb() -> LoadBalancer {
    LoadBalancer {
        container_name: "web".into(),
        container_port: 80,
        listener_port: 8080,
        ..Default::default()
    }
}

#[test]
fn load_balancer_ports_and_timings_name_their_limits() {
    assert!(lb_errors(lb()).is_empty(), "{:?}", lb_errors(lb()));
    assert_eq!(
        lb_errors(LoadBalancer {
            listener_port: 70000,
            ..lb()
        }),
        ["loadBalancers[0].listenerPort: 70000 is over the maximum of 65535"]
    );
    assert_eq!(
        lb_errors(LoadBalancer {
            priority: 60000,
            drain_timeout_seconds: Some(4000),
            ..lb()
        }),
        [
            "loadBalancers[0].priority: 60000 is over the maximum of 50000",
            "loadBalancers[0].drainTimeoutSeconds: 4000 seconds is over the maximum of 3600 seconds"
        ]
    );
    let checks = |hc: TargetHealthCheck| {
        lb_errors(LoadBalancer {
            health_check: Some(TargetHealthCheck {
                path: "/".into(),
                ..hc
            }),
            ..lb()
        })
    };
    assert_eq!(
        checks(TargetHealthCheck {
            interval_seconds: Some(400),
            healthy_threshold: Some(11),
            ..Default::default()
        }),
        [
            "loadBalancers[0].healthCheck.intervalSeconds: 400 seconds is over the maximum of 300 seconds",
            "loadBalancers[0].healthCheck.healthyThreshold: 11 is over the maximum of 10"
        ]
    );
    assert_eq!(
        checks(TargetHealthCheck {
            interval_seconds: Some(5),
            timeout_seconds: Some(6),
            ..Default::default()
        }),
        ["loadBalancers[0].healthCheck.timeoutSeconds: 6 seconds is over the maximum of 5 seconds (at most 120, and not more than the interval of 5 seconds)"]
    );
}
