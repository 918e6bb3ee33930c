//! What one agent report costs the control plane: 100 nodes, 100 load-balanced services, and
//! 1,000 then 10,000 tasks, in a real sled store. One task report is applied, and then
//! everything it wakes runs — its service's planner, the desired set of its node, the routing
//! table of its service — counting the keys each reads. Run with
//! `cargo bench -p berth-control-plane --bench wakeup` (`-- --json` for one JSON line per size).

use berth_control_plane::control::controller::{self, Caches, ControllerConfig};
use berth_control_plane::live::proxies::Proxies;
use berth_control_plane::live::sessions::Sessions;
use berth_control_plane::model::endpoints::Routes;
use berth_control_plane::model::placement::{apply, view};
use berth_control_plane::state::State;
use berth_control_plane::store::SledStore;
use berth_control_plane::{model::clusters, model::services, model::taskdef, model::tasks, time};
use berth_proto::agent::v1::{Hello, TaskReport};
use berth_proto::v1::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const NODES: usize = 100;
const SERVICES: usize = 100;
const REPORTS: usize = 20;

struct Cost {
    tasks: usize,
    apply: f64,
    planner: f64,
    desired_set: f64,
    routes: f64,
    ms: f64,
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let costs: Vec<Cost> = [1_000, 10_000].into_iter().map(measure).collect();
    if json {
        for c in &costs {
            println!(
                "{{\"tasks\":{},\"nodes\":{NODES},\"services\":{SERVICES},\"keysPerReport\":{{\"report\":{:.1},\"planner\":{:.1},\"desiredSet\":{:.1},\"routes\":{:.1},\"total\":{:.1}}},\"msPerReport\":{:.2}}}",
                c.tasks, c.apply, c.planner, c.desired_set, c.routes,
                c.apply + c.planner + c.desired_set + c.routes, c.ms
            );
        }
        return;
    }
    println!(
        "keys read per task report ({NODES} nodes, {SERVICES} services, mean of {REPORTS} reports)"
    );
    println!(
        "{:>7}  {:>6}  {:>7}  {:>11}  {:>6}  {:>6}  {:>9}",
        "TASKS", "REPORT", "PLANNER", "DESIRED SET", "ROUTES", "TOTAL", "MS/REPORT"
    );
    for c in &costs {
        println!(
            "{:>7}  {:>6.1}  {:>7.1}  {:>11.1}  {:>6.1}  {:>6.1}  {:>9.2}",
            c.tasks,
            c.apply,
            c.planner,
            c.desired_set,
            c.routes,
            c.apply + c.planner + c.desired_set + c.routes,
            c.ms
        );
    }
}

fn measure(total_tasks: usize) -> Cost {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = State::new(Arc::new(SledStore::open(dir.path()).expect("store")));
    let (sessions, proxies) = (Sessions::new(), Proxies::new());
    let config = ControllerConfig::default();
    let node_ids = populate(&state, total_tasks);
    let mut caches = Caches::default();
    let mut memory = HashMap::new();
    let mut routes = Routes::default();
    routes.refresh_all(&state).expect("routes");
    // Warm up: one pass over every service, so each is steady before the reports.
    let all = berth_control_plane::store::Change {
        revision: 0,
        keys: (0..SERVICES)
            .map(|s| services::key("bench", &format!("svc{s}")))
            .collect(),
        resync: false,
    };
    controller::react(
        &state,
        &sessions,
        &proxies,
        &config,
        &all,
        &mut caches,
        &mut memory,
    )
    .expect("warm-up pass");

    let mut feed = state.store().subscribe();
    let (mut apply_k, mut plan_k, mut set_k, mut route_k) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for i in 0..REPORTS {
        let svc =
            services::find(&state, "bench", &format!("svc{}", i * 7 % SERVICES)).expect("service");
        let group = view::service_tasks(&state, &svc).expect("tasks");
        let t = &group[i % group.len()];
        let node = berth_core::arn::last_segment(&t.container_instance_arn).to_string();
        let report = TaskReport {
            task_arn: t.task_arn.clone(),
            last_status: "RUNNING".into(),
            health_status: if t.health_status == "HEALTHY" {
                "UNKNOWN"
            } else {
                "HEALTHY"
            }
            .into(),
            ..Default::default()
        };
        let k0 = state.keys_read();
        let applied = berth_control_plane::live::reports::apply_report(&state, &node, &report)
            .expect("report");
        assert!(applied, "report changed nothing: {t:?} on {node}");
        let k1 = state.keys_read();
        let change = loop {
            let c = feed.try_recv().expect("the report's change");
            if c.keys.iter().any(|k| k.starts_with("task/")) {
                break c;
            }
        };
        controller::react(
            &state,
            &sessions,
            &proxies,
            &config,
            &change,
            &mut caches,
            &mut memory,
        )
        .expect("pass");
        while feed.try_recv().is_ok() {}
        let k2 = state.keys_read();
        berth_control_plane::live::desired::desired_for_node(&state, &node).expect("desired set");
        let k3 = state.keys_read();
        routes.refresh(&state, &change.keys).expect("routes");
        let k4 = state.keys_read();
        apply_k += k1 - k0;
        plan_k += k2 - k1;
        set_k += k3 - k2;
        route_k += k4 - k3;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / REPORTS as f64;
    drop(node_ids);
    let n = REPORTS as f64;
    Cost {
        tasks: total_tasks,
        apply: apply_k as f64 / n,
        planner: plan_k as f64 / n,
        desired_set: set_k as f64 / n,
        routes: route_k as f64 / n,
        ms,
    }
}

/// 100 nodes, a task definition, 100 services behind a load balancer, and their tasks RUNNING,
/// spread over the nodes, written with the same ops the applier uses.
fn populate(state: &State, total_tasks: usize) -> Vec<String> {
    clusters::create(state, "bench").expect("cluster");
    let td = taskdef::register(
        state,
        TaskDefinition {
            family: "bench".into(),
            container_definitions: vec![ContainerDefinition {
                name: "web".into(),
                image: "berth-demo:latest".into(),
                memory: 16,
                port_mappings: vec![PortMapping {
                    container_port: 80,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .expect("task definition")
    .task_definition;
    let node_ids: Vec<String> = (0..NODES)
        .map(|i| {
            berth_control_plane::model::nodes::register(
                state,
                &Hello {
                    name: format!("node-{i}"),
                    node_id: format!("n{i:03}"),
                    cpu: 1 << 20,
                    memory_mib: 1 << 24,
                    address: format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    ..Default::default()
                },
            )
            .expect("node")
            .ec2_instance_id
        })
        .collect();
    let per_service = total_tasks / SERVICES;
    let demand = berth_core::capacity::demand(&td);
    for s in 0..SERVICES {
        let svc = services::create(
            state,
            CreateServiceRequest {
                cluster: "bench".into(),
                service_name: format!("svc{s}"),
                task_definition: td.task_definition_arn.clone(),
                desired_count: per_service as i32,
                load_balancers: vec![LoadBalancer {
                    container_name: "web".into(),
                    container_port: 80,
                    listener_port: 10_000 + s as i32,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("service");
        let mut ops = Vec::new();
        for i in 0..per_service {
            let node = &node_ids[(s * per_service + i) % NODES];
            let mut t = tasks::build_task(
                "bench",
                &td,
                node,
                &demand,
                format!("service:svc{s}"),
                svc.deployments[0].id.clone(),
                true,
            );
            t.last_status = "RUNNING".into();
            t.started_at = time::rfc3339(time::now_millis() - 3_600_000);
            t.containers = vec![Container {
                name: "web".into(),
                last_status: "RUNNING".into(),
                network_bindings: vec![NetworkBinding {
                    container_port: 80,
                    host_port: 30_000 + i as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }];
            ops.extend(apply::create_ops(&t, &demand));
        }
        state.commit(ops).expect("tasks");
    }
    node_ids
}
