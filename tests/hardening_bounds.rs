//! A hostile client against a real `berth server`, on the parsers and quotas: expressions and
//! bodies nested or long past their bounds are refused naming the field and the limit (and the
//! server lives on, no bigger), listeners cannot take the server's own ports, ELBv2's quotas
//! hold and give memory back, and bad filters, indexes, orders and URLs get AWS's error types.

mod common;

use common::aws::ecs_call;
use common::*;
use serde_json::{json, Value};

use std::path::Path;
use std::time::Duration;

/// One JSON API call: (status, body).
fn api(addr: &str, method: &str, body: &str) -> (u16, Value) {
    let a = http::exchange(
        addr,
        "POST",
        &format!("/api/v1/{method}"),
        &[("Host", "localhost"), ("Content-Type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{method}: {e}"));
    let v = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{method}: {e}: {}", a.body));
    (a.status, v)
}

/// One ELBv2 Query call, form-encoded: (status, body XML).
fn elb(addr: &str, params: &[(&str, &str)]) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("Version", "2015-12-01")
        .extend_pairs(params)
        .finish();
    let (status, _, text) = aws::post(
        addr,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    (status, text)
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
fn tag(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or(0);
    let end = xml[start..].find(&format!("</{tag}>")).unwrap_or(0);
    xml[start..start + end]
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The action and the start of each parameter, for failure messages (some are huge).
fn brief(params: &[(&str, &str)]) -> String {
    let cut = |s: &str| s.chars().take(80).collect::<String>();
    params
        .iter()
        .map(|(k, v)| format!("{}={} ", cut(k), cut(v)))
        .collect()
}

fn elb_ok(addr: &str, params: &[(&str, &str)]) -> String {
    let (status, xml) = elb(addr, params);
    assert_eq!(status, 200, "{}: {xml}", brief(params));
    xml
}

/// Asserts a 400 with AWS's error `code` and a message holding each of `words`.
fn elb_refused(addr: &str, params: &[(&str, &str)], code: &str, words: &[&str]) -> String {
    let (status, xml) = elb(addr, params);
    assert_eq!(status, 400, "{}: {xml}", brief(params));
    assert_eq!(tag(&xml, "Code"), code, "{xml}");
    let message = tag(&xml, "Message");
    for w in words {
        assert!(message.contains(w), "{w:?} not in {message}");
    }
    message
}

fn server(dir: &Path, extra: &[&str]) -> ServerProcess {
    let flags = [&["--insecure", "--resync", "100ms"], extra].concat();
    ServerProcess::start_with("server", &dir.join("data"), &flags)
}

/// A load balancer and a target group of `name` (and `name-tg`): their ARNs.
fn balancer(http: &str, name: &str) -> (String, String) {
    let xml = elb_ok(http, &[("Action", "CreateLoadBalancer"), ("Name", name)]);
    let lb = tag(&xml, "LoadBalancerArn");
    (lb, target_group(http, &format!("{name}-tg")))
}

fn target_group(http: &str, name: &str) -> String {
    let params = [
        ("Action", "CreateTargetGroup"),
        ("Name", name),
        ("Port", "80"),
    ];
    tag(&elb_ok(http, &params), "TargetGroupArn")
}

/// CreateListener on `port`, forwarding to `tg`: (status, XML).
fn listener(http: &str, lb: &str, port: &str, tg: &str) -> (u16, String) {
    elb(
        http,
        &[
            ("Action", "CreateListener"),
            ("LoadBalancerArn", lb),
            ("Port", port),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", tg),
        ],
    )
}

/// A listener on a free port: its ARN.
fn free_listener(http: &str, lb: &str, tg: &str) -> String {
    let (status, xml) = listener(http, lb, &free_port().to_string(), tg);
    assert_eq!(status, 200, "{xml}");
    tag(&xml, "ListenerArn")
}

fn healthz(addr: &str) {
    let (status, body) = http::get_addr(addr, "/healthz").expect("/healthz answers");
    assert_eq!((status, body.trim()), (200, "ok"));
}

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

/// One case of the table: what was sent, the error type a client must see, and words the
/// message must hold (the field, the limit).
struct Case {
    what: &'static str,
    send: Box<dyn Fn() -> (u16, String, String)>,
    code: &'static str,
    words: Vec<String>,
}

#[test]
fn bad_filters_indexes_orders_sizes_and_urls_each_get_awss_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--no-proxy"]);
    let http = server.http.clone();
    assert!(berth(&server.grpc, &["taskdef", "register", "-f", &web_json()]).ok);
    let (lb, tg0) = balancer(&http, "t");
    let mut tgs = vec![tg0];
    tgs.extend((1..6).map(|i| target_group(&http, &format!("t{i}"))));
    let listener = free_listener(&http, &lb, &tgs[0]);

    // Each sender gives (status, error type, message).
    let elb_case = |extra: Vec<(String, String)>| -> Box<dyn Fn() -> (u16, String, String)> {
        let http = http.clone();
        Box::new(move || {
            let pairs: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (status, xml) = elb(&http, &pairs);
            (status, tag(&xml, "Code"), tag(&xml, "Message"))
        })
    };
    let rule = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut p = vec![
            ("Action", "CreateRule"),
            ("ListenerArn", listener.as_str()),
            ("Priority", "7"),
            ("Conditions.member.1.Field", "path-pattern"),
            ("Actions.member.1.Type", "forward"),
        ];
        p.extend_from_slice(extra);
        p.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    };
    let ecs_case = |op: &'static str, body: Value| -> Box<dyn Fn() -> (u16, String, String)> {
        let http = http.clone();
        Box::new(move || {
            let (status, _, v) = ecs_call(&http, op, &body.to_string());
            let m = v["message"].as_str().unwrap_or_default().to_string();
            (status, v["__type"].as_str().unwrap_or_default().into(), m)
        })
    };
    let api_case = |method: &'static str, body: Value| -> Box<dyn Fn() -> (u16, String, String)> {
        let http = http.clone();
        Box::new(move || {
            let (status, v) = api(&http, method, &body.to_string());
            let m = v["message"].as_str().unwrap_or_default().to_string();
            (status, v["code"].as_str().unwrap_or_default().into(), m)
        })
    };
    let hook_service = |url: String| {
        json!({"serviceName": "hooked", "taskDefinition": "web", "desiredCount": 1,
               "deploymentConfiguration": {"strategy": "BLUE_GREEN", "lifecycleHooks": [
                   {"hookTargetArn": url, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]}})
    };
    let w = |words: &[&str]| words.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let tg = |i: usize| tgs[i].as_str();
    let arns: Vec<String> = (0..5_000)
        .map(|i| format!("arn:aws:ecs:us-east-1:000000000000:service-deployment/default/s/{i}"))
        .collect();
    let cases = vec![
        Case {
            what: "a JSON API field of the wrong type",
            send: api_case(
                "Services/CreateService",
                json!({"serviceName": "x", "taskDefinition": "web", "desiredCount": "3"}),
            ),
            code: "InvalidArgument",
            words: w(&["desiredCount: invalid type: string \"3\""]),
        },
        Case {
            what: "a nested JSON API field of the wrong type",
            send: api_case(
                "Services/CreateService",
                json!({"serviceName": "x", "taskDefinition": "web",
                       "loadBalancers": [{"containerPort": "eighty"}]}),
            ),
            code: "InvalidArgument",
            words: w(&["loadBalancers[0].containerPort: invalid type"]),
        },
        Case {
            what: "an unknown deployment status filter",
            send: ecs_case(
                "ListServiceDeployments",
                json!({"service": "s", "status": ["IN_PROGRESS", "BOGUS"]}),
            ),
            code: "InvalidParameterException",
            words: w(&["status[1]", "\"BOGUS\" must be one of PENDING"]),
        },
        Case {
            what: "a createdAt filter that is not a date",
            send: ecs_case(
                "ListServiceDeployments",
                json!({"service": "s", "createdAt": {"after": "yesterday"}}),
            ),
            code: "InvalidParameterException",
            words: w(&["createdAt.after", "must be a number"]),
        },
        Case {
            what: "more deployment ARNs than ECS takes",
            send: ecs_case(
                "DescribeServiceDeployments",
                json!({"serviceDeploymentArns": arns}),
            ),
            code: "InvalidParameterException",
            words: w(&["serviceDeploymentArns", "5000 ARNs; at most 20"]),
        },
        Case {
            what: "a 100k-character hook URL",
            send: ecs_case(
                "CreateService",
                hook_service(format!("http://h/{}", "a".repeat(100_000))),
            ),
            code: "InvalidParameterException",
            words: w(&[
                "lifecycleHooks[0].hookTargetArn: 100009 characters is over the maximum of 2048 characters",
            ]),
        },
        Case {
            what: "half a megabyte of hook details",
            send: ecs_case("CreateService", {
                let mut body = hook_service("http://hooks.internal/stage".into());
                body["deploymentConfiguration"]["lifecycleHooks"][0]["hookDetails"] =
                    json!({"pad": "x".repeat(500_000)});
                body
            }),
            code: "InvalidParameterException",
            words: w(&["lifecycleHooks[0].hookDetails: 500010 characters is over the maximum of 16384 characters"]),
        },
        Case {
            what: "a hook URL carrying credentials",
            send: ecs_case(
                "CreateService",
                hook_service("http://admin:s3cret@hooks.internal/stage".into()),
            ),
            code: "InvalidParameterException",
            words: w(&["lifecycleHooks[0].hookTargetArn: carries credentials"]),
        },
        Case {
            what: "a list index past any list",
            send: elb_case(vec![
                ("Action".into(), "DescribeLoadBalancers".into()),
                ("Names.member.99999999999999999999999".into(), "x".into()),
            ]),
            code: "ValidationError",
            words: w(&["Names.member.99999999999999999999999", "not a whole number 1-1000"]),
        },
        Case {
            what: "a list index of 0",
            send: elb_case(vec![
                ("Action".into(), "DescribeLoadBalancers".into()),
                ("Names.member.0".into(), "x".into()),
            ]),
            code: "ValidationError",
            words: w(&["Names.member.0: list index 0 is under the minimum of 1"]),
        },
        Case {
            what: "a path pattern with NUL",
            send: elb_case(rule(&[
                ("Conditions.member.1.Values.member.1", "/a\0b"),
                ("Actions.member.1.TargetGroupArn", tg(0)),
            ])),
            code: "ValidationError",
            words: w(&["Conditions.member.1.Values.member.1", "control characters"]),
        },
        Case {
            what: "a path pattern with a control character",
            send: elb_case(rule(&[
                ("Conditions.member.1.Values.member.1", "/a\u{1b}[31m"),
                ("Actions.member.1.TargetGroupArn", tg(0)),
            ])),
            code: "ValidationError",
            words: w(&["Conditions.member.1.Values.member.1", "control characters"]),
        },
        Case {
            what: "a negative action Order",
            send: elb_case(rule(&[
                ("Conditions.member.1.Values.member.1", "/a"),
                ("Actions.member.1.TargetGroupArn", tg(0)),
                ("Actions.member.1.Order", "-5"),
            ])),
            code: "ValidationError",
            words: w(&["Actions.member.1.Order: -5 must be 1-50000"]),
        },
        Case {
            what: "one target group twice in a ForwardConfig",
            send: elb_case(rule(&[
                ("Conditions.member.1.Values.member.1", "/a"),
                ("Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn", tg(0)),
                ("Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn", tg(0)),
            ])),
            code: "ValidationError",
            words: w(&[
                "Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn",
                "is member.1 already",
            ]),
        },
        Case {
            what: "six target groups in one action",
            send: elb_case(
                rule(&[("Conditions.member.1.Values.member.1", "/a")])
                    .into_iter()
                    .chain((0..6).map(|i| {
                        (
                            format!("Actions.member.1.ForwardConfig.TargetGroups.member.{}.TargetGroupArn", i + 1),
                            tgs[i].clone(),
                        )
                    }))
                    .collect(),
            ),
            code: "TooManyTargetGroups",
            words: w(&["the quota of target groups per action is 5"]),
        },
        Case {
            what: "a 600 KB health check matcher",
            send: elb_case(vec![
                ("Action".into(), "CreateTargetGroup".into()),
                ("Name".into(), "big-matcher".into()),
                ("Port".into(), "80".into()),
                ("Matcher.HttpCode".into(), "200,".repeat(150_000)),
            ]),
            code: "ValidationError",
            words: w(&["Matcher.HttpCode: 600000 characters is over the maximum of 256 characters"]),
        },
    ];
    for c in &cases {
        let (status, code, message) = (c.send)();
        assert_eq!(status, 400, "{}: {code} {message}", c.what);
        assert_eq!(code, c.code, "{}: {message}", c.what);
        for word in &c.words {
            assert!(
                message.contains(word.as_str()),
                "{}: {word:?} not in {message}",
                c.what
            );
        }
        assert!(
            !message.contains("s3cret"),
            "{}: the password echoed: {message}",
            c.what
        );
        assert!(message.len() < 2_000, "{}: {} bytes", c.what, message.len());
    }
    // Nothing was stored by any of them.
    let xml = elb_ok(
        &http,
        &[("Action", "DescribeRules"), ("ListenerArn", &listener)],
    );
    assert_eq!(
        xml.matches("<RuleArn>").count(),
        1,
        "only the default rule: {xml}"
    );
    let r = berth(&server.grpc, &["service", "list"]);
    assert!(!r.stdout.contains("hooked"), "{}", r.stdout);
    healthz(&http);
}
