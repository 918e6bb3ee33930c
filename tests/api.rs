//! The gRPC API over a real socket (127.0.0.1:0) with the embedded store in a temp dir: clusters, task
//! definitions, ECS's error meanings, health and reflection.

use berth_control_plane::state::{keys, put};
use berth_proto::v1::clusters_client::ClustersClient;
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::*;
use std::net::SocketAddr;
use tonic::transport::Channel;
use tonic::Code;

struct Plane {
    cp: berth_control_plane::ControlPlane,
    channel: Channel,
    _dir: tempfile::TempDir,
}

async fn start() -> Plane {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let cp = berth_control_plane::spawn(berth_control_plane::Config::new(
        dir.path().to_path_buf(),
        any,
        any,
    ))
    .await
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", cp.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Plane {
        cp,
        channel,
        _dir: dir,
    }
}

fn container(name: &str) -> ContainerDefinition {
    ContainerDefinition {
        name: name.into(),
        image: "berth-demo:latest".into(),
        memory: 64,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_default_cluster_exists_from_the_start_and_create_is_idempotent() {
    let p = start().await;
    let mut c = ClustersClient::new(p.channel.clone());
    let list = c
        .list_clusters(ListClustersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.clusters.len(), 1);
    assert_eq!(list.clusters[0].cluster_name, "default");
    let a = c
        .create_cluster(CreateClusterRequest {
            cluster_name: "demo".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    let b = c
        .create_cluster(CreateClusterRequest {
            cluster_name: "demo".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(
        a.created_at, b.created_at,
        "create of an existing name returns it"
    );
    let by_arn = c
        .describe_cluster(DescribeClusterRequest {
            cluster: a.cluster_arn.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(by_arn.cluster_name, "demo");
    let bad = c
        .create_cluster(CreateClusterRequest {
            cluster_name: "no spaces".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("clusterName"), "{}", bad.message());
    p.cp.shutdown().await;
}

#[tokio::test]
async fn a_cluster_with_services_or_live_tasks_cannot_be_deleted() {
    let p = start().await;
    let mut c = ClustersClient::new(p.channel.clone());
    c.create_cluster(CreateClusterRequest {
        cluster_name: "busy".into(),
    })
    .await
    .unwrap();
    // Observed state as agents and the service controller will write it.
    let task = Task {
        task_arn: "t1".into(),
        last_status: "RUNNING".into(),
        desired_status: "RUNNING".into(),
        ..Default::default()
    };
    let service = Service {
        service_name: "web".into(),
        status: "ACTIVE".into(),
        ..Default::default()
    };
    p.cp.state
        .commit(vec![
            put(format!("{}t1", keys::tasks_of("busy")), &task),
            put(format!("{}web", keys::services_of("busy")), &service),
        ])
        .unwrap();
    let err = c
        .delete_cluster(DeleteClusterRequest {
            cluster: "busy".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .starts_with("ClusterContainsServicesException"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("berth service delete"),
        "{}",
        err.message()
    );

    p.cp.state
        .commit(vec![put(
            format!("{}web", keys::services_of("busy")),
            &Service {
                status: "INACTIVE".into(),
                ..service
            },
        )])
        .unwrap();
    let err = c
        .delete_cluster(DeleteClusterRequest {
            cluster: "busy".into(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("ClusterContainsTasksException"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("berth task stop"),
        "{}",
        err.message()
    );
    // Nothing changed: still ACTIVE.
    let still = c
        .describe_cluster(DescribeClusterRequest {
            cluster: "busy".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(still.status, "ACTIVE");
    assert_eq!(still.running_tasks_count, 1);

    p.cp.state
        .commit(vec![put(
            format!("{}t1", keys::tasks_of("busy")),
            &Task {
                last_status: "STOPPED".into(),
                desired_status: "STOPPED".into(),
                ..task
            },
        )])
        .unwrap();
    let gone = c
        .delete_cluster(DeleteClusterRequest {
            cluster: "busy".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(gone.status, "INACTIVE");
    p.cp.shutdown().await;
}

#[tokio::test]
async fn revisions_grow_per_family_even_after_deregistering() {
    let p = start().await;
    let mut t = TaskDefinitionsClient::new(p.channel.clone());
    let def = TaskDefinition {
        family: "web".into(),
        container_definitions: vec![container("web")],
        ..Default::default()
    };
    for expected in 1..=3 {
        let reg = t
            .register_task_definition(RegisterTaskDefinitionRequest {
                task_definition: Some(def.clone()),
                task_definition_json: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .task_definition
            .unwrap();
        assert_eq!(reg.revision, expected);
        assert_eq!(reg.network_mode, "bridge", "defaults are filled");
    }
    t.deregister_task_definition(DeregisterTaskDefinitionRequest {
        task_definition: "web:3".into(),
    })
    .await
    .unwrap();
    let next = t
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: Some(def.clone()),
            task_definition_json: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(
        next.revision, 4,
        "a deregistered revision number is never reused"
    );
    // Another family starts at 1.
    let other = t
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: Some(TaskDefinition {
                family: "webhook".into(),
                ..def.clone()
            }),
            task_definition_json: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(other.revision, 1);
    let only_web = t
        .list_task_definitions(ListTaskDefinitionsRequest {
            family: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definitions;
    let revs: Vec<i32> = only_web.iter().map(|d| d.revision).collect();
    assert_eq!(revs, vec![1, 2, 4], "ACTIVE only, exact family");
    let missing = t
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let needs_rev = t
        .deregister_task_definition(DeregisterTaskDefinitionRequest {
            task_definition: "web".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(needs_rev.code(), Code::InvalidArgument);
    assert!(
        needs_rev.message().contains("web:1"),
        "{}",
        needs_rev.message()
    );
    p.cp.shutdown().await;
}

#[tokio::test]
async fn an_invalid_message_reports_every_field_and_stores_nothing() {
    let p = start().await;
    let mut t = TaskDefinitionsClient::new(p.channel.clone());
    let mut bad = container("web");
    bad.port_mappings = vec![PortMapping {
        container_port: 0,
        ..Default::default()
    }];
    bad.memory_reservation = 100;
    let err = t
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: Some(TaskDefinition {
                family: "web".into(),
                container_definitions: vec![bad, ContainerDefinition::default()],
                ..Default::default()
            }),
            task_definition_json: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for fragment in [
        "containerDefinitions[0].portMappings[0].containerPort: 0 is under the minimum of 1",
        "containerDefinitions[0].memoryReservation",
        "containerDefinitions[1].name: is required",
        "containerDefinitions[1].image: is required",
    ] {
        assert!(
            err.message().contains(fragment),
            "{fragment} missing from {}",
            err.message()
        );
    }
    let all = t
        .list_task_definitions(ListTaskDefinitionsRequest {
            status: "ALL".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(all.task_definitions.is_empty());
    // And the family's counter did not move: the first good registration is revision 1.
    let ok = t
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: Some(TaskDefinition {
                family: "web".into(),
                container_definitions: vec![container("web")],
                ..Default::default()
            }),
            task_definition_json: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.task_definition.unwrap().revision, 1);
    p.cp.shutdown().await;
}

#[tokio::test]
async fn health_serves_and_reflection_lists_the_services() {
    let p = start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(p.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "berth.v1.Clusters".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut refl = ServerReflectionClient::new(p.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "berth.v1.Clusters",
        "berth.v1.TaskDefinitions",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == s), "{s} not in {names:?}");
    }
    p.cp.shutdown().await;
}

#[tokio::test]
async fn service_requests_are_validated_field_by_field_and_change_nothing() {
    use berth_proto::v1::services_client::ServicesClient;
    let p = start().await;
    let mut t = TaskDefinitionsClient::new(p.channel.clone());
    let mut web = container("web");
    web.port_mappings = vec![PortMapping {
        container_port: 80,
        ..Default::default()
    }];
    t.register_task_definition(RegisterTaskDefinitionRequest {
        task_definition: Some(TaskDefinition {
            family: "web".into(),
            container_definitions: vec![web],
            ..Default::default()
        }),
        task_definition_json: String::new(),
    })
    .await
    .unwrap();
    let mut s = ServicesClient::new(p.channel.clone());
    let base = CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: 2,
        ..Default::default()
    };
    let cases: Vec<(CreateServiceRequest, &str)> = vec![
        (
            CreateServiceRequest {
                service_name: "no spaces".into(),
                ..base.clone()
            },
            "serviceName",
        ),
        (
            CreateServiceRequest {
                desired_count: -1,
                ..base.clone()
            },
            "desiredCount: -1 is under the minimum of 0",
        ),
        (
            CreateServiceRequest {
                deployment_configuration: Some(DeploymentConfiguration {
                    minimum_healthy_percent: Some(150),
                    ..Default::default()
                }),
                ..base.clone()
            },
            "deploymentConfiguration.minimumHealthyPercent: 150% is over the maximum of 100%",
        ),
        (
            CreateServiceRequest {
                placement_strategy: vec![PlacementStrategy {
                    r#type: "binpack".into(),
                    field: "disk".into(),
                }],
                ..base.clone()
            },
            "placementStrategy[0]",
        ),
        (
            CreateServiceRequest {
                placement_constraints: vec![PlacementConstraint {
                    r#type: "memberOf".into(),
                    expression: "attribute:zone ==".into(),
                }],
                ..base.clone()
            },
            "placementConstraints[0]",
        ),
        (
            CreateServiceRequest {
                load_balancers: vec![LoadBalancer {
                    container_name: "api".into(),
                    container_port: 80,
                    listener_port: 8080,
                    ..Default::default()
                }],
                ..base.clone()
            },
            "loadBalancers[0].containerName: \"api\" is not a container",
        ),
        (
            CreateServiceRequest {
                load_balancers: vec![LoadBalancer {
                    container_name: "web".into(),
                    container_port: 80,
                    listener_port: 8080,
                    health_check: Some(TargetHealthCheck {
                        matcher: "ok".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..base.clone()
            },
            "loadBalancers[0].healthCheck.matcher",
        ),
        (
            CreateServiceRequest {
                scheduling_strategy: "SOMETIMES".into(),
                ..base.clone()
            },
            "schedulingStrategy",
        ),
    ];
    for (req, fragment) in cases {
        let err = s.create_service(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains(fragment),
            "{fragment} missing from {}",
            err.message()
        );
    }
    let none = s
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        none.services.is_empty(),
        "a rejected create stored something"
    );
    let missing = s
        .create_service(CreateServiceRequest {
            task_definition: "nope".into(),
            ..base.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let created = s
        .create_service(base.clone())
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(created.deployments.len(), 1);
    assert_eq!(created.deployments[0].rollout_state, "IN_PROGRESS");
    let again = s.create_service(base.clone()).await.unwrap_err();
    assert!(
        again.message().contains("already exists"),
        "{}",
        again.message()
    );
    let refuse = s
        .delete_service(DeleteServiceRequest {
            service: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(refuse.message().contains("--force"), "{}", refuse.message());
    p.cp.shutdown().await;
}
