use super::query::Params;
use super::*;

#[test]
fn lists_and_forward_configs_come_from_member_indexes() {
    let body = b"Action=CreateRule&Version=2015-12-01&ListenerArn=arn%3Al&Priority=10\
&Conditions.member.1.Field=path-pattern&Conditions.member.1.PathPatternConfig.Values.member.2=%2Fv2%2F*\
&Conditions.member.1.PathPatternConfig.Values.member.1=%2Fapi%2F*\
&Conditions.member.2.Field=host-header&Conditions.member.2.Values.member.1=a.example\
&Actions.member.1.Type=forward\
&Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=arn%3Ablue\
&Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight=80\
&Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=arn%3Agreen\
&Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=20";
    let p = Params::parse(body);
    let c = p.conditions("Conditions").unwrap();
    assert_eq!(c[0].field, "path-pattern");
    assert_eq!(c[0].values, ["/api/*", "/v2/*"]);
    assert_eq!(c[1].values, ["a.example"]);
    let a = p.actions("Actions").unwrap();
    assert_eq!(a.len(), 1);
    let w: Vec<(&str, i32)> = a[0]
        .target_groups
        .iter()
        .map(|t| (t.target_group_arn.as_str(), t.weight))
        .collect();
    assert_eq!(w, [("arn:blue", 80), ("arn:green", 20)]);
    assert!(!a[0].single);
}

#[test]
fn a_single_target_group_arn_is_one_weighted_entry() {
    let p = Params::parse(
        b"DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn=arn%3Ablue",
    );
    let a = p.actions("DefaultActions").unwrap();
    assert!(a[0].single);
    assert_eq!(a[0].target_groups[0].weight, 1);
    let clash = Params::parse(
        b"A.member.1.Type=forward&A.member.1.TargetGroupArn=x\
&A.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=y",
    );
    let e = clash.actions("A").unwrap_err().to_string();
    assert!(e.starts_with("ValidationError: A.member.1:"), "{e}");
}

#[test]
fn bad_numbers_and_health_protocols_name_the_field() {
    let p = Params::parse(b"Port=eighty&HealthCheckProtocol=HTTPS");
    assert!(p
        .int("Port")
        .unwrap_err()
        .to_string()
        .contains("Port: \"eighty\""));
    assert!(p
        .health()
        .unwrap_err()
        .to_string()
        .contains("HealthCheckProtocol"));
    assert!(Params::parse(b"")
        .required("Name")
        .unwrap_err()
        .to_string()
        .contains("Name: is required"));
}

#[test]
fn replies_and_errors_are_in_the_query_protocols_shape() {
    let body = xml::response("DeleteRule", "rid", |_| {});
    assert_eq!(
        body,
        format!("<DeleteRuleResponse xmlns=\"{}\"><DeleteRuleResult></DeleteRuleResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></DeleteRuleResponse>", xml::NAMESPACE)
    );
    let e = xml::error("RuleNotFound", "rule <x> & y", true, "rid");
    assert!(e.contains("<Code>RuleNotFound</Code>"), "{e}");
    assert!(
        e.contains("<Message>rule &lt;x&gt; &amp; y</Message>"),
        "{e}"
    );
    assert!(e.contains("<Type>Sender</Type>"), "{e}");
    let mut x = xml::Xml::default();
    x.strings("Values", &["/a".to_string(), "/b".to_string()]);
    assert_eq!(
        x.into_string(),
        "<Values><member>/a</member><member>/b</member></Values>"
    );
}

#[test]
fn unknown_actions_and_versions_are_refused() {
    let f = operation("DescribeInstances", Some(VERSION)).err().unwrap();
    assert_eq!(f.code, "InvalidAction");
    assert!(f.message.contains("DescribeLoadBalancers"));
    let f = operation("DescribeLoadBalancers", Some("2012-06-01"))
        .err()
        .unwrap();
    assert_eq!(f.code, "InvalidAction");
    assert_eq!(
        operation("DescribeLoadBalancers", None).err().unwrap().code,
        "MissingParameter"
    );
    assert!(operation("DescribeLoadBalancers", Some(VERSION)).is_ok());
    assert!(is_query(
        "application/x-www-form-urlencoded; charset=utf-8",
        b""
    ));
}
