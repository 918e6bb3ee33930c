//! A hostile client against a real `berth server`, on the parsers and quotas: expressions and
//! bodies nested or long past their bounds are refused naming the field and the limit (and the
//! server lives on, no bigger), listeners cannot take the server's own ports, and ELBv2's
//! quotas hold and give memory back. The table of AWS errors is `hardening_errors.rs`.

mod common;

use common::aws::ecs_call;
use common::hardening::*;
use common::*;
use serde_json::{json, Value};

#[test]
fn a_deep_or_long_placement_expression_is_refused_on_every_transport_and_the_server_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--no-proxy"]);
    let (url, http) = (server.grpc.as_str(), server.http.as_str());
    assert!(berth(url, &["taskdef", "register", "-f", &web_json()]).ok);
    let before = rss_kib(server.pid());

    let deep = format!("{}zone == a{}", "(".repeat(2_500), ")".repeat(2_500));
    let flat = vec!["attribute:zone == a"; 11_000].join(" and ");
    assert!(flat.len() > 220_000);
    let field = "placementConstraints[0].expression";
    let limit = "over the maximum of 2000 characters";
    for expr in [&deep, &flat] {
        let constraints = json!([{"type": "memberOf", "expression": expr}]);
        // The ECS API: RunTask and CreateService.
        for (op, body) in [
            (
                "RunTask",
                json!({"taskDefinition": "web", "placementConstraints": constraints}),
            ),
            (
                "CreateService",
                json!({"serviceName": "s", "taskDefinition": "web", "desiredCount": 1,
                       "placementConstraints": constraints}),
            ),
        ] {
            let (status, _, v) = ecs_call(http, op, &body.to_string());
            assert_eq!(status, 400, "{op}: {v}");
            assert_eq!(v["__type"], "InvalidParameterException", "{op}: {v}");
            let m = v["message"].as_str().unwrap();
            assert!(m.contains(field) && m.contains(limit), "{op}: {m}");
        }
        // The JSON API (the gRPC handlers behind it): RunTask and CreateService.
        for (method, body) in [
            (
                "Tasks/RunTask",
                json!({"taskDefinition": "web", "placementConstraints": constraints}),
            ),
            (
                "Services/CreateService",
                json!({"serviceName": "s", "taskDefinition": "web", "desiredCount": 1,
                       "placementConstraints": constraints}),
            ),
        ] {
            let (status, v) = api(http, method, &body.to_string());
            assert_eq!(status, 400, "{method}: {v}");
            let m = v["message"].as_str().unwrap();
            assert!(m.contains(field) && m.contains(limit), "{method}: {m}");
        }
        // gRPC: a dry-run apply of a stack.
        let td: Value =
            serde_json::from_str(&std::fs::read_to_string(web_json()).unwrap()).unwrap();
        let stack = json!({"name": "deep", "taskDefinitions": [td], "services": [
            {"name": "s", "taskDefinition": "web", "desiredCount": 1,
             "placementConstraints": constraints}]});
        let file = dir.path().join("stack.json");
        std::fs::write(&file, stack.to_string()).unwrap();
        let r = berth(url, &["apply", "--dry-run", "-f", file.to_str().unwrap()]);
        assert!(!r.ok, "accepted: {}", r.stdout);
        assert!(
            r.stderr.contains(&format!("services[0].{field}")) && r.stderr.contains(limit),
            "{}",
            r.stderr
        );
    }
    // gRPC: service create with the deep one (the flat one is past what one argv may hold).
    let r = berth(
        url,
        &[
            "service",
            "create",
            "--name",
            "s",
            "--taskdef",
            "web",
            "--constraint",
            &format!("memberOf:{deep}"),
        ],
    );
    assert!(!r.ok, "accepted: {}", r.stdout);
    assert!(
        r.stderr.contains(field) && r.stderr.contains(limit),
        "{}",
        r.stderr
    );
    // Nesting within the length is bounded too, and named.
    let nested = format!("{}zone == a{}", "(".repeat(40), ")".repeat(40));
    let (status, v) = api(
        http,
        "Tasks/RunTask",
        &json!({"taskDefinition": "web",
                "placementConstraints": [{"type": "memberOf", "expression": nested}]})
        .to_string(),
    );
    assert_eq!(status, 400, "{v}");
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains(field) && m.contains("nested more than 32 levels deep"),
        "{m}"
    );

    // Nothing was stored, the server answers, and it has not grown.
    let r = berth(url, &["service", "list"]);
    assert!(
        r.ok && !r.stdout.contains(" s "),
        "{}{}",
        r.stdout,
        r.stderr
    );
    healthz(http);
    let after = rss_kib(server.pid());
    eprintln!("server RSS {before} KiB before, {after} KiB after");
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn deeply_nested_json_and_yaml_bodies_are_refused_naming_the_depth_on_every_parser() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--no-proxy"]);
    let (url, http) = (server.grpc.as_str(), server.http.as_str());
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));

    // The JSON API: the limit is named.
    let (status, v) = api(http, "Clusters/ListClusters", &deep_json);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 128 levels"),
        "{v}"
    );
    // A task definition's JSON inside a JSON API request, parsed by the server.
    let (status, v) = api(
        http,
        "TaskDefinitions/RegisterTaskDefinition",
        &json!({"taskDefinitionJson": deep_json}).to_string(),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("recursion limit"),
        "{v}"
    );
    // The ECS API.
    let (status, _, v) = ecs_call(http, "ListClusters", &deep_json);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["__type"], "InvalidParameterException", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("recursion limit"),
        "{v}"
    );
    // ELBv2 reads forms, not nested documents: a key of 50,000 list levels is one bad index.
    let key = format!("Names{}", ".member.1".repeat(50_000));
    let m = elb_refused(
        http,
        &[("Action", "DescribeLoadBalancers"), (&key, "x")],
        "ValidationError",
        &["parameter name of 450005 characters is over the maximum of 256 characters"],
    );
    assert!(m.len() < 1_000, "{} bytes", m.len());

    // A YAML stack, block and flow style, and a JSON one: the CLI refuses each naming why.
    let block: String = (0..1_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let flow = format!("name: {}x{}\n", "[".repeat(100_000), "]".repeat(100_000));
    for (name, text, why) in [
        ("block.yaml", &block, "budget breached: Depth { depth: 65 }"),
        ("flow.yaml", &flow, "recursion limit exceeded"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let r = berth(url, &["apply", "--dry-run", "-f", file.to_str().unwrap()]);
        assert!(!r.ok, "{name} accepted: {}", r.stdout);
        assert!(
            r.stderr.contains("at most 64 levels of nesting") && r.stderr.contains(why),
            "{name}: {}",
            r.stderr
        );
    }
    let file = dir.path().join("deep.json");
    std::fs::write(&file, &deep_json).unwrap();
    let r = berth(url, &["apply", "--dry-run", "-f", file.to_str().unwrap()]);
    assert!(
        !r.ok && r.stderr.contains("recursion limit"),
        "{}",
        r.stderr
    );
    // And a stack file past CloudFormation's size.
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, format!("name: {}\n", "x".repeat(2 << 20))).unwrap();
    let r = berth(url, &["apply", "--dry-run", "-f", file.to_str().unwrap()]);
    assert!(
        !r.ok && r.stderr.contains("over the maximum of 1048576 bytes"),
        "{}",
        r.stderr
    );
    healthz(http);
    assert!(berth(url, &["cluster", "list"]).ok);
}

#[test]
fn a_listener_cannot_take_the_servers_own_port_nor_one_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);
    let http = server.http.as_str();
    let (lb, tg) = balancer(http, "own");
    let grpc_port = server.grpc.rsplit(':').next().unwrap().to_string();
    let http_port = http.rsplit(':').next().unwrap().to_string();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port().to_string();
    for (port, owner) in [
        (&http_port, "this server's HTTP port"),
        (&grpc_port, "this server's gRPC port"),
        (&held_port, "held by another process"),
    ] {
        let (status, xml) = listener(http, &lb, port, &tg);
        assert_eq!(status, 400, "{xml}");
        assert_eq!(tag(&xml, "Code"), "InvalidConfigurationRequest", "{xml}");
        let m = tag(&xml, "Message");
        assert!(
            m.contains(&format!("Port: {port} is")) && m.contains(owner),
            "{m}"
        );
    }
    // Nothing was stored.
    let xml = elb_ok(
        http,
        &[("Action", "DescribeListeners"), ("LoadBalancerArn", &lb)],
    );
    assert!(!xml.contains("<ListenerArn>"), "{xml}");
    drop(held);
}

/// Creates `n` rules (priorities from `first`) on `listener`, forwarding to `tg`; their ARNs.
fn create_rules(http: &str, listener: &str, tg: &str, first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|p| {
            let priority = p.to_string();
            let path = format!("/r{p}/*");
            let xml = elb_ok(
                http,
                &[
                    ("Action", "CreateRule"),
                    ("ListenerArn", listener),
                    ("Priority", &priority),
                    ("Conditions.member.1.Field", "path-pattern"),
                    ("Conditions.member.1.Values.member.1", &path),
                    ("Actions.member.1.Type", "forward"),
                    ("Actions.member.1.TargetGroupArn", tg),
                ],
            );
            tag(&xml, "RuleArn")
        })
        .collect()
}

#[test]
fn the_rule_quota_holds_and_memory_returns_once_rules_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);
    let http = server.http.as_str();
    let (lb, tg) = balancer(http, "many");
    let listener = free_listener(http, &lb, &tg);

    // A warm-up round, so the baseline holds what any server holds after its first rules.
    for arn in create_rules(http, &listener, &tg, 1, 100) {
        elb_ok(http, &[("Action", "DeleteRule"), ("RuleArn", &arn)]);
    }
    let start = rss_kib(server.pid());
    let mut arns = Vec::new();
    for round in 0..10 {
        arns = create_rules(http, &listener, &tg, 1, 100);
        if round == 0 {
            // The 101st is refused, naming the quota.
            elb_refused(
                http,
                &[
                    ("Action", "CreateRule"),
                    ("ListenerArn", &listener),
                    ("Priority", "101"),
                    ("Conditions.member.1.Field", "path-pattern"),
                    ("Conditions.member.1.Values.member.1", "/x"),
                    ("Actions.member.1.Type", "forward"),
                    ("Actions.member.1.TargetGroupArn", &tg),
                ],
                "TooManyRules",
                &["the quota of rules per load balancer (100"],
            );
        }
        if round < 9 {
            for arn in &arns {
                elb_ok(http, &[("Action", "DeleteRule"), ("RuleArn", arn)]);
            }
        }
    }
    assert_eq!(arns.len(), 100);
    for arn in &arns {
        elb_ok(http, &[("Action", "DeleteRule"), ("RuleArn", arn)]);
    }
    let end = rss_kib(server.pid());
    eprintln!("server RSS {start} KiB at the start, {end} KiB after ten rounds of 100 rules");
    assert!(
        end < start + 20 * 1024,
        "RSS grew from {start} KiB to {end} KiB"
    );
    healthz(http);
}

#[test]
fn the_listener_and_target_quotas_are_the_servers_flags() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            "--no-proxy",
            "--elb-max-listeners-per-lb",
            "1",
            "--elb-max-targets-per-tg",
            "3",
        ],
    );
    let http = server.http.as_str();
    let (lb, tg) = balancer(http, "one");
    free_listener(http, &lb, &tg);
    let (status, xml) = listener(http, &lb, &free_port().to_string(), &tg);
    assert_eq!(status, 400, "{xml}");
    assert_eq!(tag(&xml, "Code"), "TooManyListeners", "{xml}");
    assert!(
        tag(&xml, "Message").contains("the quota of listeners per load balancer (1)"),
        "{xml}"
    );

    // Targets: the desired tasks of the services attached to a target group, in all.
    assert!(berth(&server.grpc, &["taskdef", "register", "-f", &web_json()]).ok);
    let create = |name: &str, desired: i32| {
        api(
            http,
            "Services/CreateService",
            &json!({"serviceName": name, "taskDefinition": "web", "desiredCount": desired,
                    "loadBalancers": [{"targetGroupArn": tg, "containerName": "web",
                                       "containerPort": 80}]})
            .to_string(),
        )
    };
    let quota = "over the quota of targets per target group (3)";
    let (status, v) = create("four", 4);
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains(quota), "{v}");
    let (status, v) = create("two", 2);
    assert_eq!(status, 200, "{v}");
    let (status, v) = create("other", 2);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("4 targets (2 of this service, 2 of others)"),
        "{v}"
    );
    let update = |desired: i32| {
        api(
            http,
            "Services/UpdateService",
            &json!({"service": "two", "desiredCount": desired}).to_string(),
        )
    };
    assert_eq!(update(3).0, 200);
    let (status, v) = update(4);
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains(quota), "{v}");
    let r = berth(&server.grpc, &["service", "describe", "two", "-o", "json"]);
    assert_eq!(r.json()["service"]["desiredCount"], 3, "{}", r.stdout);
}
