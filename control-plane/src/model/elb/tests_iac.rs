//! Tags, attributes and registered targets: what IaC tools call after a create.

use super::tests::{code, message, state, tg};
use super::*;
use berth_proto::v1::KeyValuePair;

fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair {
        name: k.into(),
        value: v.into(),
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn tags_are_added_overwritten_removed_and_checked() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let g = tg(&s, "blue");
    let arns = vec![lb.arn.clone(), g.arn.clone()];
    tags::add(&s, &arns, &[kv("env", "dev"), kv("team", "a")]).unwrap();
    tags::add(&s, std::slice::from_ref(&g.arn), &[kv("env", "prod")]).unwrap();
    let d = tags::describe(&s, &arns).unwrap();
    assert_eq!(d[0].1, vec![kv("env", "dev"), kv("team", "a")]);
    assert_eq!(d[1].1, vec![kv("env", "prod"), kv("team", "a")]);
    tags::remove(&s, &arns, &["team".into()]).unwrap();
    assert_eq!(
        tags::describe(&s, &arns).unwrap()[0].1,
        vec![kv("env", "dev")]
    );
    for (bad, field) in [
        (vec![kv("aws:x", "1")], "Tags.member.1.Key"),
        (vec![kv("", "1")], "Tags.member.1.Key"),
        (vec![kv("a", "1"), kv("a", "2")], "Tags.member.2.Key"),
    ] {
        let e = tags::add(&s, &arns, &bad).unwrap_err();
        assert!(message(e).contains(field), "{field}");
    }
    let many: Vec<KeyValuePair> = (0..51).map(|i| kv(&format!("k{i}"), "")).collect();
    assert_eq!(
        code(tags::add(&s, &arns, &many).unwrap_err()),
        "TooManyTags"
    );
    let gone = format!("{}:targetgroup/nope/00", arn_prefix());
    assert_eq!(
        code(tags::add(&s, &[lb.arn.clone(), gone], &[kv("x", "1")]).unwrap_err()),
        "TargetGroupNotFound"
    );
    assert_eq!(
        tags::describe(&s, std::slice::from_ref(&lb.arn)).unwrap()[0].1,
        vec![kv("env", "dev")],
        "a failed call changes no resource"
    );
}

#[test]
fn attributes_come_from_one_table_and_are_checked() {
    let (_d, s) = state();
    let lb = create_load_balancer(&s, "web", "").unwrap();
    let g = tg(&s, "blue");
    let set = attributes::modify_target_group(
        &s,
        &g.arn,
        &pairs(&[
            ("deregistration_delay.timeout_seconds", "5"),
            ("slow_start.duration_seconds", "30"),
            (
                "load_balancing.algorithm.type",
                "least_outstanding_requests",
            ),
        ]),
    )
    .unwrap();
    let get = |k: &str| set.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(get("deregistration_delay.timeout_seconds"), "5");
    assert_eq!(get("stickiness.enabled"), "false", "defaults are described");
    assert_eq!(
        get_target_group(&s, &g.arn)
            .unwrap()
            .deregistration_delay_seconds,
        5
    );
    for (bad, field) in [
        (
            ("slow_start.duration_seconds", "10"),
            "Attributes.member.1.Value",
        ),
        (
            ("deregistration_delay.timeout_seconds", "4000"),
            "Attributes.member.1.Value",
        ),
        (
            ("load_balancing.algorithm.type", "random"),
            "Attributes.member.1.Value",
        ),
        (
            ("idle_timeout.timeout_seconds", "10"),
            "Attributes.member.1.Key",
        ),
    ] {
        let e = attributes::modify_target_group(&s, &g.arn, &pairs(&[bad])).unwrap_err();
        assert!(message(e).contains(field), "{bad:?}");
    }
    assert_eq!(
        attributes::target_group(&get_target_group(&s, &g.arn).unwrap())[1].1,
        "30",
        "nothing changed by the refused calls"
    );
    attributes::modify_load_balancer(
        &s,
        &lb.arn,
        &pairs(&[("deletion_protection.enabled", "true")]),
    )
    .unwrap();
    assert_eq!(
        code(delete_load_balancer(&s, &lb.arn).unwrap_err()),
        "OperationNotPermitted"
    );
}

#[test]
fn registered_targets_drain_for_the_delay_then_go() {
    let (_d, s) = state();
    let g = create_target_group(
        &s,
        NewTargetGroup {
            name: "ext".into(),
            port: Some(8080),
            target_type: "ip".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let instance = tg(&s, "tasks");
    assert_eq!(
        code(registered::register(&s, &instance.arn, &[("10.0.0.1".into(), None)]).unwrap_err()),
        "InvalidTarget"
    );
    let e = registered::register(&s, &g.arn, &[("not an address".into(), None)]).unwrap_err();
    assert!(message(e).contains("Targets.member.1.Id"));
    registered::register(
        &s,
        &g.arn,
        &[("127.0.0.1".into(), Some(9000)), ("10.0.0.2".into(), None)],
    )
    .unwrap();
    let g = get_target_group(&s, &g.arn).unwrap();
    let now = crate::time::now_millis();
    let targets = registered::routing_targets(&g, now);
    assert_eq!(targets.len(), 2);
    assert_eq!(
        (targets[1].address.as_str(), targets[1].port),
        ("10.0.0.2", 8080)
    );
    attributes::modify_target_group(
        &s,
        &g.arn,
        &pairs(&[("deregistration_delay.timeout_seconds", "2")]),
    )
    .unwrap();
    registered::deregister(&s, &g.arn, &[("10.0.0.2".into(), None)]).unwrap();
    assert_eq!(
        code(registered::deregister(&s, &g.arn, &[("10.9.9.9".into(), None)]).unwrap_err()),
        "InvalidTarget"
    );
    let g = get_target_group(&s, &g.arn).unwrap();
    let now = crate::time::now_millis();
    assert!(registered::routing_targets(&g, now)[1].draining);
    assert_eq!(registered::sweep(&s, now).unwrap(), 0, "still draining");
    assert_eq!(
        registered::sweep(&s, now + 2_500).unwrap(),
        1,
        "the delay is over"
    );
    let g = get_target_group(&s, &g.arn).unwrap();
    assert_eq!(g.registered.len(), 1);
}
