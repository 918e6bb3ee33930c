use super::*;
use crate::store::LogStore;
use berth_proto::v1::{ElbAction, ElbCondition, ElbTargetWeight};

pub(super) fn state() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    (dir, State::new(std::sync::Arc::new(store)))
}

pub(super) fn code(e: Error) -> &'static str {
    match e {
        Error::Elb { code, .. } => code,
        other => panic!("not an ELBv2 error: {other}"),
    }
}

pub(super) fn message(e: Error) -> String {
    e.to_string()
}

pub(super) fn forward(arn: &str) -> Vec<ElbAction> {
    vec![ElbAction {
        r#type: "forward".into(),
        target_groups: vec![ElbTargetWeight {
            target_group_arn: arn.into(),
            weight: 1,
        }],
        order: 0,
        single: true,
        ..Default::default()
    }]
}

pub(super) fn tg(state: &State, name: &str) -> berth_proto::v1::ElbTargetGroup {
    create_target_group(
        state,
        NewTargetGroup {
            name: name.into(),
            port: Some(80),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn arns_name_their_keys_whatever_region_a_client_used() {
    let lb =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/0123456789abcdef";
    assert_eq!(lb_key(lb).unwrap(), "elbv2/lb/web");
    let l = "arn:aws:elasticloadbalancing:us-east-1:000000000000:listener/app/web/0123/aa";
    assert_eq!(listener_key(l).unwrap(), "elbv2/listener/web/aa");
    let r = "arn:aws:elasticloadbalancing:us-east-1:000000000000:listener-rule/app/web/0123/aa/bb";
    assert_eq!(rule_key(r).unwrap(), "elbv2/rule/web/aa/bb");
    assert_eq!(
        code(tg_key("arn:aws:ecs:x:y:cluster/c").unwrap_err()),
        "TargetGroupNotFound"
    );
    assert!(same(
        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/a/1",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/a/1"
    ));
}

#[test]
fn names_follow_albs_rule() {
    let (_d, s) = state();
    for bad in ["", "-web", "web-", "a_b", &"x".repeat(33), "internal-web"] {
        let e = create_load_balancer(&s, bad, "").unwrap_err();
        assert_eq!(code(e), "ValidationError", "{bad:?}");
    }
    let e = create_load_balancer(&s, "web", "public").unwrap_err();
    assert!(message(e).contains("Scheme"));
    assert!(
        list_load_balancers(&s).unwrap().is_empty(),
        "nothing written"
    );
}

#[test]
fn a_second_load_balancer_with_other_settings_is_a_duplicate() {
    let (_d, s) = state();
    let a = create_load_balancer(&s, "web", "").unwrap();
    assert_eq!(a.scheme, "internet-facing");
    assert_eq!(create_load_balancer(&s, "web", "").unwrap().arn, a.arn);
    let e = create_load_balancer(&s, "web", "internal").unwrap_err();
    assert_eq!(code(e), "DuplicateLoadBalancerName");
}

#[test]
fn a_listener_needs_a_free_port_and_existing_target_groups() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let missing = format!("{}:targetgroup/nope/0000000000000000", arn_prefix());
    let req = |port, arn: &str| NewListener {
        load_balancer_arn: lb.arn.clone(),
        port,
        protocol: "HTTP".into(),
        default_actions: forward(arn),
        ..Default::default()
    };
    assert_eq!(
        code(create_listener(&s, req(8080, &missing)).unwrap_err()),
        "TargetGroupNotFound"
    );
    let g = tg(&s, "blue");
    assert_eq!(
        code(create_listener(&s, req(0, &g.arn)).unwrap_err()),
        "ValidationError"
    );
    let l = create_listener(&s, req(8080, &g.arn)).unwrap();
    assert_eq!(dns_name(&lb, std::slice::from_ref(&l)), "127.0.0.1:8080");
    let other = create_load_balancer(&s, "api", "").unwrap();
    let e = create_listener(
        &s,
        NewListener {
            load_balancer_arn: other.arn,
            ..req(8080, &g.arn)
        },
    )
    .unwrap_err();
    assert_eq!(code(e), "DuplicateListener");
    let https = NewListener {
        protocol: "HTTPS".into(),
        ..req(8443, &g.arn)
    };
    assert_eq!(
        code(create_listener(&s, https).unwrap_err()),
        "CertificateNotFound"
    );
    // The target group is in use now.
    assert_eq!(
        code(delete_target_group(&s, &g.arn).unwrap_err()),
        "ResourceInUse"
    );
    assert_eq!(load_balancers_of(&s, &g).unwrap(), vec![lb.arn.clone()]);
}

#[test]
fn rules_take_unique_priorities_and_the_default_rule_stays() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let (blue, green) = (tg(&s, "blue"), tg(&s, "green"));
    let l = create_listener(
        &s,
        NewListener {
            load_balancer_arn: lb.arn.clone(),
            port: 8080,
            protocol: String::new(),
            default_actions: forward(&blue.arn),
            ..Default::default()
        },
    )
    .unwrap();
    let rule = |priority, path: &str| NewRule {
        listener_arn: l.arn.clone(),
        priority,
        conditions: vec![ElbCondition {
            field: "path-pattern".into(),
            values: vec![path.into()],
            ..Default::default()
        }],
        actions: forward(&green.arn),
    };
    let r = create_rule(&s, rule(10, "/api/*")).unwrap();
    assert_eq!(
        code(create_rule(&s, rule(10, "/v2/*")).unwrap_err()),
        "PriorityInUse"
    );
    assert!(message(create_rule(&s, rule(11, "api")).unwrap_err())
        .contains("Conditions.member.1.Values.member.1"));
    let rules = rules_of(&s, &l).unwrap();
    assert_eq!(rules.len(), 2);
    assert!(is_default(&rules[1]));
    assert_eq!(
        code(delete_rule(&s, &rules[1].arn).unwrap_err()),
        "OperationNotPermitted"
    );
    delete_rule(&s, &r.arn).unwrap();
    assert_eq!(code(delete_rule(&s, &r.arn).unwrap_err()), "RuleNotFound");
    delete_load_balancer(&s, &lb.arn).unwrap();
    assert!(s
        .scan_keys(keys::ALL)
        .unwrap()
        .iter()
        .all(|k| k.starts_with(keys::TARGET_GROUPS)));
}

#[test]
fn weights_and_health_checks_stay_in_albs_ranges() {
    let (_d, s) = state();
    let g = tg(&s, "blue");
    let mut a = forward(&g.arn);
    a[0].target_groups[0].weight = 1000;
    assert!(
        message(super::rule_check::actions("Actions", &a, &Default::default()).unwrap_err())
            .contains("Weight")
    );
    a[0].target_groups[0].weight = 0;
    assert!(
        super::rule_check::actions("Actions", &a, &Default::default()).is_err(),
        "all weights 0"
    );
    let e = modify_target_group(
        &s,
        &g.arn,
        &HealthInput {
            interval_seconds: Some(2),
            timeout_seconds: Some(5),
            ..Default::default()
        },
        None,
    )
    .unwrap_err();
    assert!(message(e).contains("HealthCheckTimeoutSeconds"));
    let ok = modify_target_group(
        &s,
        &g.arn,
        &HealthInput {
            path: Some("/healthz".into()),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(ok.health_check.unwrap().path, "/healthz");
}

#[test]
fn network_load_balancers_take_tcp_listeners_and_target_groups_only() {
    let (_d, state) = state();
    let nlb = create_load_balancer_of(&state, "net", "", "network").unwrap();
    assert!(nlb.arn.contains(":loadbalancer/net/net/"), "{}", nlb.arn);
    let alb = create_load_balancer(&state, "app", "").unwrap();
    let tcp = create_target_group(
        &state,
        NewTargetGroup {
            name: "tcp".into(),
            protocol: "TCP".into(),
            port: Some(6379),
            ..Default::default()
        },
    )
    .unwrap();
    let hc = tcp.health_check.clone().unwrap();
    assert_eq!(
        hc.protocol, "TCP",
        "a TCP target group checks by connecting"
    );
    let http = tg(&state, "web");
    let listener = |lb: &str, protocol: &str, tg: &str, port: i32| {
        create_listener(
            &state,
            NewListener {
                load_balancer_arn: lb.into(),
                port,
                protocol: protocol.into(),
                default_actions: forward(tg),
                ..Default::default()
            },
        )
    };
    let e = listener(&alb.arn, "TCP", &tcp.arn, 18001).unwrap_err();
    assert_eq!(code(e), "UnsupportedProtocol");
    let e = listener(&nlb.arn, "HTTP", &http.arn, 18002).unwrap_err();
    assert_eq!(code(e), "UnsupportedProtocol");
    let e = listener(&nlb.arn, "TCP", &http.arn, 18003).unwrap_err();
    assert!(message(e).contains("DefaultActions: target group web is HTTP"));
    let l = listener(&nlb.arn, "", &tcp.arn, 18004).unwrap();
    assert_eq!(l.protocol, "TCP", "a network listener defaults to TCP");
    assert!(l.arn.contains(":listener/net/net/"), "{}", l.arn);
    assert_eq!(get_listener(&state, &l.arn).unwrap().port, 18004);
    // Rules belong to HTTP listeners.
    let e = create_rule(
        &state,
        NewRule {
            listener_arn: l.arn.clone(),
            priority: 1,
            conditions: vec![ElbCondition {
                field: "path-pattern".into(),
                values: vec!["/x".into()],
                ..Default::default()
            }],
            actions: forward(&tcp.arn),
        },
    )
    .unwrap_err();
    assert!(message(e).contains("ListenerArn: a TCP listener"));

    let on = [("proxy_protocol_v2.enabled".to_string(), "true".to_string())];
    let e = crate::model::elb::attributes::modify_target_group(&state, &http.arn, &on).unwrap_err();
    assert!(message(e).contains("applies to TCP target groups"));
    let attrs = crate::model::elb::attributes::modify_target_group(&state, &tcp.arn, &on).unwrap();
    assert!(attrs.contains(&on[0]));
    let e = crate::model::elb::attributes::modify_target_group(
        &state,
        &tcp.arn,
        &[("stickiness.type".into(), "x".into())],
    )
    .unwrap_err();
    assert!(message(e).contains("stickiness.type must be"));
}
