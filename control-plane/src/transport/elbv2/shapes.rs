//! Berth's ELBv2 records in the shapes of botocore's elbv2 model (`LoadBalancer`, `TargetGroup`,
//! `Listener`, `Rule`, `Action`, `TargetHealthDescription`).

use super::xml::Xml;
use crate::model::elb::{self, TargetHealthRow};
use berth_proto::v1::{
    ElbAction, ElbCondition, ElbListener, ElbLoadBalancer, ElbRule, ElbTargetGroup,
};

pub fn load_balancer(x: &mut Xml, lb: &ElbLoadBalancer, listeners: &[ElbListener]) {
    x.text("LoadBalancerArn", &lb.arn);
    x.text("DNSName", &elb::dns_name(lb, listeners));
    x.text("CreatedTime", &lb.created_at);
    x.text("LoadBalancerName", &lb.name);
    x.text("Scheme", &lb.scheme);
    x.open("State");
    x.text("Code", "active");
    x.close("State");
    x.text(
        "Type",
        if elb::is_network(lb) {
            "network"
        } else {
            "application"
        },
    );
    x.list::<()>("AvailabilityZones", &[], |_, _| {});
    x.list::<()>("SecurityGroups", &[], |_, _| {});
    x.text("IpAddressType", "ipv4");
}

pub fn target_group(x: &mut Xml, tg: &ElbTargetGroup, load_balancers: &[String]) {
    let hc = berth_core::lb::health_check_with_defaults(tg.health_check.as_ref());
    x.text("TargetGroupArn", &tg.arn);
    x.text("TargetGroupName", &tg.name);
    x.text("Protocol", &tg.protocol);
    x.text("Port", &tg.port.to_string());
    x.opt("VpcId", &tg.vpc_id);
    x.text(
        "HealthCheckProtocol",
        if hc.protocol.is_empty() {
            "HTTP"
        } else {
            &hc.protocol
        },
    );
    x.text("HealthCheckPort", "traffic-port");
    x.text("HealthCheckEnabled", "true");
    let n = |v: Option<i32>| v.unwrap_or_default().to_string();
    x.text("HealthCheckIntervalSeconds", &n(hc.interval_seconds));
    x.text("HealthCheckTimeoutSeconds", &n(hc.timeout_seconds));
    x.text("HealthyThresholdCount", &n(hc.healthy_threshold));
    x.text("UnhealthyThresholdCount", &n(hc.unhealthy_threshold));
    if hc.protocol != "TCP" {
        x.text("HealthCheckPath", &hc.path);
        x.open("Matcher");
        x.text("HttpCode", &hc.matcher);
        x.close("Matcher");
    }
    x.strings("LoadBalancerArns", load_balancers);
    x.text("TargetType", &tg.target_type);
    if tg.protocol != "TCP" {
        x.text("ProtocolVersion", "HTTP1");
    }
    x.text("IpAddressType", "ipv4");
}

pub fn action(x: &mut Xml, a: &ElbAction) {
    x.text("Type", &a.r#type);
    if a.single {
        if let Some(t) = a.target_groups.first() {
            x.text("TargetGroupArn", &t.target_group_arn);
        }
    }
    if a.order > 0 {
        x.text("Order", &a.order.to_string());
    }
    if let Some(r) = &a.redirect {
        x.open("RedirectConfig");
        x.text("Protocol", or(&r.protocol, "#{protocol}"));
        x.text("Port", or(&r.port, "#{port}"));
        x.text("Host", or(&r.host, "#{host}"));
        x.text("Path", or(&r.path, "/#{path}"));
        x.text("Query", or(&r.query, "#{query}"));
        x.text("StatusCode", &r.status_code);
        x.close("RedirectConfig");
    }
    if let Some(f) = &a.fixed_response {
        x.open("FixedResponseConfig");
        x.opt("MessageBody", &f.message_body);
        x.text("StatusCode", &f.status_code);
        x.opt("ContentType", &f.content_type);
        x.close("FixedResponseConfig");
    }
    if a.r#type != "forward" {
        return;
    }
    x.open("ForwardConfig");
    x.list("TargetGroups", &a.target_groups, |x, t| {
        x.text("TargetGroupArn", &t.target_group_arn);
        x.text("Weight", &t.weight.to_string());
    });
    x.open("TargetGroupStickinessConfig");
    x.text("Enabled", if a.group_stickiness { "true" } else { "false" });
    if a.group_stickiness {
        x.text("DurationSeconds", &a.group_stickiness_seconds.to_string());
    }
    x.close("TargetGroupStickinessConfig");
    x.close("ForwardConfig");
}

pub fn listener(x: &mut Xml, l: &ElbListener) {
    x.text("ListenerArn", &l.arn);
    x.text("LoadBalancerArn", &l.load_balancer_arn);
    x.text("Port", &l.port.to_string());
    x.text("Protocol", &l.protocol);
    if l.protocol == "HTTPS" {
        // Describes name the default certificate only, as ELBv2's do.
        x.list(
            "Certificates",
            &l.certificate_arns[..1.min(l.certificate_arns.len())],
            |x, c| x.text("CertificateArn", c),
        );
        x.text("SslPolicy", &l.ssl_policy);
        x.strings("AlpnPolicy", &["HTTP2Preferred".to_string()]);
    }
    x.list("DefaultActions", &l.default_actions, action);
}

pub fn rule(x: &mut Xml, r: &ElbRule) {
    let default = elb::is_default(r);
    x.text("RuleArn", &r.arn);
    x.text(
        "Priority",
        &if default {
            "default".to_string()
        } else {
            r.priority.to_string()
        },
    );
    x.list("Conditions", &r.conditions, condition);
    x.list("Actions", &r.actions, action);
    x.text("IsDefault", if default { "true" } else { "false" });
}

/// A condition as ELBv2 describes it: `Values` for host-header and path-pattern (as given),
/// and the kind's config.
fn condition(x: &mut Xml, c: &ElbCondition) {
    x.text("Field", &c.field);
    let config = match c.field.as_str() {
        "host-header" => "HostHeaderConfig",
        "path-pattern" => "PathPatternConfig",
        "http-header" => "HttpHeaderConfig",
        "query-string" => "QueryStringConfig",
        "http-request-method" => "HttpRequestMethodConfig",
        _ => "SourceIpConfig",
    };
    if matches!(c.field.as_str(), "host-header" | "path-pattern") {
        x.strings("Values", &c.values);
    }
    x.open(config);
    if c.field == "http-header" {
        x.text("HttpHeaderName", &c.header_name);
    }
    if c.field == "query-string" {
        x.list("Values", &c.query, |x, p| {
            x.opt("Key", &p.name);
            x.text("Value", &p.value);
        });
    } else {
        x.strings("Values", &c.values);
    }
    x.close(config);
}

/// `v`, or `default` when empty.
fn or<'a>(v: &'a str, default: &'a str) -> &'a str {
    if v.is_empty() {
        default
    } else {
        v
    }
}

pub fn target_health(x: &mut Xml, t: &TargetHealthRow) {
    x.open("Target");
    x.text("Id", &t.address);
    x.text("Port", &t.port.to_string());
    x.close("Target");
    x.text("HealthCheckPort", &t.port.to_string());
    x.open("TargetHealth");
    x.text("State", &t.state);
    x.opt("Reason", &t.reason);
    x.opt("Description", &t.description);
    x.close("TargetHealth");
}
