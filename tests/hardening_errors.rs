//! A hostile client's bad filters, list indexes, orders, sizes and URLs against a real `berth
//! server`: each gets the 400 AWS gives (its error type), with a message naming the field and
//! the limit, and changes nothing.

mod common;

use common::aws::ecs_call;
use common::hardening::*;
use common::*;
use serde_json::{json, Value};

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
