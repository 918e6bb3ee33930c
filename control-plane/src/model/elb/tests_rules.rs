//! Table tests of rule actions and conditions: every bad one is refused with an error naming its
//! field, and nothing is written.

use super::tests::{code, forward, message, state, tg};
use super::*;
use berth_proto::v1::{ElbAction, ElbCondition, ElbFixedResponse, ElbRedirect, KeyValuePair};

fn redirect(r: ElbRedirect) -> ElbAction {
    ElbAction {
        r#type: "redirect".into(),
        redirect: Some(r),
        ..Default::default()
    }
}

fn to_https() -> ElbRedirect {
    ElbRedirect {
        protocol: "HTTPS".into(),
        port: "443".into(),
        status_code: "HTTP_301".into(),
        ..Default::default()
    }
}

fn fixed(status: &str, content_type: &str, body: &str) -> ElbAction {
    ElbAction {
        r#type: "fixed-response".into(),
        fixed_response: Some(ElbFixedResponse {
            status_code: status.into(),
            content_type: content_type.into(),
            message_body: body.into(),
        }),
        ..Default::default()
    }
}

fn cond(field: &str, values: &[&str]) -> ElbCondition {
    ElbCondition {
        field: field.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

fn header(name: &str, values: &[&str]) -> ElbCondition {
    ElbCondition {
        header_name: name.into(),
        ..cond("http-header", values)
    }
}

#[test]
fn bad_actions_name_their_field_and_write_nothing() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let g = tg(&s, "blue");
    refused_writing_nothing(
        &s,
        &lb,
        vec![
            ("no action", vec![], "DefaultActions"),
            (
                "two actions",
                vec![fixed("200", "", ""), fixed("404", "", "")],
                "DefaultActions",
            ),
            (
                "authenticate",
                vec![ElbAction {
                    r#type: "authenticate-oidc".into(),
                    ..Default::default()
                }],
                "DefaultActions.member.1.Type",
            ),
            (
                "fixed status",
                vec![fixed("302", "", "")],
                "FixedResponseConfig.StatusCode",
            ),
            (
                "fixed content type",
                vec![fixed("200", "image/png", "")],
                "FixedResponseConfig.ContentType",
            ),
            (
                "fixed body",
                vec![fixed("200", "text/plain", &"x".repeat(1025))],
                "FixedResponseConfig.MessageBody",
            ),
            (
                "forward with a redirect config",
                vec![ElbAction {
                    redirect: Some(to_https()),
                    ..forward(&g.arn).remove(0)
                }],
                "DefaultActions.member.1.RedirectConfig",
            ),
            (
                "stickiness without duration",
                vec![ElbAction {
                    group_stickiness: true,
                    ..forward(&g.arn).remove(0)
                }],
                "TargetGroupStickinessConfig.DurationSeconds",
            ),
        ],
    );
}

#[test]
fn bad_redirects_name_their_field_and_write_nothing() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    refused_writing_nothing(
        &s,
        &lb,
        vec![
            (
                "redirect without config",
                vec![ElbAction {
                    r#type: "redirect".into(),
                    ..Default::default()
                }],
                "DefaultActions.member.1.RedirectConfig",
            ),
            (
                "redirect status",
                vec![redirect(ElbRedirect {
                    status_code: "HTTP_307".into(),
                    ..to_https()
                })],
                "RedirectConfig.StatusCode",
            ),
            (
                "redirect protocol",
                vec![redirect(ElbRedirect {
                    protocol: "FTP".into(),
                    ..to_https()
                })],
                "RedirectConfig.Protocol",
            ),
            (
                "redirect port",
                vec![redirect(ElbRedirect {
                    port: "70000".into(),
                    ..to_https()
                })],
                "RedirectConfig.Port",
            ),
            (
                "redirect path",
                vec![redirect(ElbRedirect {
                    path: "no-slash".into(),
                    ..to_https()
                })],
                "RedirectConfig.Path",
            ),
            (
                "redirect template",
                vec![redirect(ElbRedirect {
                    host: "#{hostname}".into(),
                    ..to_https()
                })],
                "RedirectConfig.Host",
            ),
            (
                "redirect loop",
                vec![redirect(ElbRedirect {
                    status_code: "HTTP_302".into(),
                    ..Default::default()
                })],
                "same URL",
            ),
        ],
    );
}

/// Each listener's default actions are refused naming the field, and no listener is written.
fn refused_writing_nothing(
    s: &State,
    lb: &ElbLoadBalancer,
    cases: Vec<(&str, Vec<ElbAction>, &str)>,
) {
    for (port, (what, actions, field)) in (8100..).zip(cases) {
        let e = create_listener(
            s,
            NewListener {
                load_balancer_arn: lb.arn.clone(),
                port,
                protocol: "HTTP".into(),
                default_actions: actions,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(message(e).contains(field), "{what}: names {field}");
    }
    assert!(listeners_of(s, lb).unwrap().is_empty(), "nothing written");
}

#[test]
fn bad_conditions_name_their_field_and_write_nothing() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let g = tg(&s, "blue");
    let l = create_listener(
        &s,
        NewListener {
            load_balancer_arn: lb.arn.clone(),
            port: 8080,
            protocol: "HTTP".into(),
            default_actions: forward(&g.arn),
            ..Default::default()
        },
    )
    .unwrap();
    let cases: Vec<(&str, Vec<ElbCondition>, &str)> = vec![
        ("none", vec![], "Conditions"),
        (
            "unknown field",
            vec![cond("cookie", &["a"])],
            "Conditions.member.1.Field",
        ),
        (
            "method twice",
            vec![
                cond("http-request-method", &["GET"]),
                cond("http-request-method", &["PUT"]),
            ],
            "Conditions.member.2.Field",
        ),
        (
            "header without name",
            vec![header("", &["a"])],
            "HttpHeaderConfig.HttpHeaderName",
        ),
        (
            "header named Host",
            vec![header("Host", &["a"])],
            "host-header",
        ),
        (
            "header name with space",
            vec![header("X Version", &["a"])],
            "HttpHeaderName",
        ),
        (
            "header without values",
            vec![header("X-Version", &[])],
            "Values",
        ),
        (
            "lower-case method",
            vec![cond("http-request-method", &["get"])],
            "HttpRequestMethodConfig.Values.member.1",
        ),
        (
            "bad CIDR",
            vec![cond("source-ip", &["10.0.0.0/33"])],
            "SourceIpConfig.Values.member.1",
        ),
        (
            "address without bits",
            vec![cond("source-ip", &["10.0.0.1"])],
            "SourceIpConfig.Values.member.1",
        ),
        (
            "query without value",
            vec![cond("query-string", &["version="])],
            "QueryStringConfig.Values.member.1",
        ),
        (
            "too many values",
            vec![
                cond("path-pattern", &["/a", "/b", "/c"]),
                header("X-A", &["1", "2", "3"]),
            ],
            "quota of condition values",
        ),
    ];
    for (priority, (what, conditions, field)) in (1..).zip(cases) {
        let e = create_rule(
            &s,
            NewRule {
                listener_arn: l.arn.clone(),
                priority,
                conditions,
                actions: forward(&g.arn),
            },
        )
        .unwrap_err();
        assert!(message(e).contains(field), "{what}: names {field}");
    }
    assert_eq!(rules_of(&s, &l).unwrap().len(), 1, "only the default rule");
}

#[test]
fn good_actions_and_conditions_are_kept_and_priorities_swap_in_one_call() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let g = tg(&s, "blue");
    let l = create_listener(
        &s,
        NewListener {
            load_balancer_arn: lb.arn.clone(),
            port: 8080,
            protocol: "HTTP".into(),
            default_actions: vec![redirect(to_https())],
            ..Default::default()
        },
    )
    .unwrap();
    let rule = |priority, conditions, actions| {
        create_rule(
            &s,
            NewRule {
                listener_arn: l.arn.clone(),
                priority,
                conditions,
                actions,
            },
        )
        .unwrap()
    };
    let a = rule(
        1,
        vec![
            header("X-Version", &["beta*"]),
            cond("source-ip", &["10.0.0.0/8", "::1/128"]),
        ],
        forward(&g.arn),
    );
    let query = ElbCondition {
        query: vec![KeyValuePair {
            name: "v".into(),
            value: "2".into(),
        }],
        ..cond("query-string", &["v=2"])
    };
    let b = rule(
        2,
        vec![query, cond("http-request-method", &["GET", "HEAD"])],
        vec![fixed("503", "text/plain", "down for maintenance")],
    );
    let swapped = priorities::set(&s, &[(a.arn.clone(), 2), (b.arn.clone(), 1)]).unwrap();
    assert_eq!(swapped.len(), 2);
    let rules = rules_of(&s, &l).unwrap();
    assert_eq!(rules[0].arn, b.arn);
    assert_eq!(rules[1].arn, a.arn);
    assert_eq!(
        rules[0].actions[0]
            .fixed_response
            .as_ref()
            .unwrap()
            .message_body,
        "down for maintenance"
    );
    let e = priorities::set(&s, &[(a.arn.clone(), 1)]).unwrap_err();
    assert_eq!(code(e), "PriorityInUse");
    let e = priorities::set(&s, &[(l.default_rule_arn.clone(), 5)]).unwrap_err();
    assert_eq!(code(e), "OperationNotPermitted");
}
