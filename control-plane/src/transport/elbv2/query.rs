//! The AWS Query protocol's request side: a form-encoded body (`Action=CreateRule&Version=
//! 2015-12-01&Conditions.member.1.Field=path-pattern&…`) read into ELBv2's shapes. Lists are
//! `NAME.member.N` (1-based); fields the model has that Berth has no use for are ignored.

use crate::model::elb::HealthInput;
use crate::state::error::{quote, Error, Result};
use berth_core::limits::{QUERY_KEY_CHARS, QUERY_LIST_INDEX};
use berth_proto::v1::{
    ElbAction, ElbCondition, ElbFixedResponse, ElbRedirect, ElbTargetWeight, KeyValuePair,
};
use std::collections::BTreeMap;

pub const VERSION: &str = "2015-12-01";

/// One request's parameters.
#[derive(Debug, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

fn invalid(message: String) -> Error {
    Error::elb("ValidationError", message)
}

impl Params {
    pub fn parse(body: &[u8]) -> Self {
        Self {
            map: form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    pub fn required(&self, name: &str) -> Result<String> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(invalid(format!("{name}: is required"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i32>> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<i32>()
                    .map_err(|_| invalid(format!("{name}: {} must be a whole number", quote(v))))
            })
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(invalid(format!(
                "{name}: {} must be true or false",
                quote(v)
            ))),
        }
    }

    /// Every parameter name is of a sane length and every list index in it (`….member.N…`) a
    /// whole number in range, so that no entry is silently dropped by the readers below.
    pub fn check_members(&self) -> Result<()> {
        for key in self.map.keys() {
            QUERY_KEY_CHARS
                .check(key.chars().count() as i64)
                .map_err(|e| {
                    invalid(format!(
                        "{}: parameter name of {e}",
                        crate::state::error::cut(key)
                    ))
                })?;
            let mut rest = key.as_str();
            while let Some(at) = rest.find(".member.") {
                rest = &rest[at + ".member.".len()..];
                let n = rest.split('.').next().unwrap_or_default();
                let name = &key[..key.len() - rest.len() + n.len()];
                let index = n.parse::<i64>().map_err(|_| {
                    invalid(format!(
                        "{}: the list index {} is not a whole number 1-{}",
                        crate::state::error::cut(name),
                        quote(n),
                        QUERY_LIST_INDEX.max
                    ))
                })?;
                QUERY_LIST_INDEX.check(index).map_err(|e| {
                    invalid(format!(
                        "{}: list index {e}",
                        crate::state::error::cut(name)
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// The 1-based indexes N of `PREFIX.member.N…`, in order.
    fn members(&self, prefix: &str) -> Vec<usize> {
        let head = format!("{prefix}.member.");
        let mut out: Vec<usize> = self
            .map
            .range(head.clone()..)
            .take_while(|(k, _)| k.starts_with(&head))
            .filter_map(|(k, _)| k[head.len()..].split('.').next()?.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `PREFIX.member.1`, `PREFIX.member.2`, … as strings.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.members(prefix)
            .into_iter()
            .filter_map(|i| {
                self.get(&format!("{prefix}.member.{i}"))
                    .map(str::to_string)
            })
            .collect()
    }

    pub fn has_list(&self, prefix: &str) -> bool {
        !self.members(prefix).is_empty()
    }

    /// Actions (`DefaultActions`, `Actions`): a single TargetGroupArn or ForwardConfig's
    /// weighted target groups; the two, when both given, must agree.
    pub fn actions(&self, prefix: &str) -> Result<Vec<ElbAction>> {
        let mut out = Vec::new();
        for i in self.members(prefix) {
            let at = format!("{prefix}.member.{i}");
            let r#type = self
                .get(&format!("{at}.Type"))
                .ok_or_else(|| {
                    invalid(format!(
                        "{at}.Type: is required (forward, redirect or fixed-response)"
                    ))
                })?
                .to_string();
            let single = self.text(&format!("{at}.TargetGroupArn"));
            let fc = format!("{at}.ForwardConfig.TargetGroups");
            let mut groups = Vec::new();
            for j in self.members(&fc) {
                let m = format!("{fc}.member.{j}");
                let arn = self.required(&format!("{m}.TargetGroupArn"))?;
                let weight = self.int(&format!("{m}.Weight"))?.unwrap_or(1);
                groups.push(ElbTargetWeight {
                    target_group_arn: arn,
                    weight,
                });
            }
            if !single.is_empty() && !groups.is_empty() {
                let agrees = groups.len() == 1 && groups[0].target_group_arn == single;
                if !agrees {
                    return Err(invalid(format!(
                        "{at}: TargetGroupArn and ForwardConfig.TargetGroups name different target groups; give one of them"
                    )));
                }
            }
            let is_single = groups.is_empty() && !single.is_empty();
            if is_single {
                groups.push(ElbTargetWeight {
                    target_group_arn: single,
                    weight: 1,
                });
            }
            let stick = format!("{at}.ForwardConfig.TargetGroupStickinessConfig");
            let rc = format!("{at}.RedirectConfig");
            let redirect = self.has_prefix(&rc).then(|| ElbRedirect {
                protocol: self.text(&format!("{rc}.Protocol")),
                port: self.text(&format!("{rc}.Port")),
                host: self.text(&format!("{rc}.Host")),
                path: self.text(&format!("{rc}.Path")),
                query: self.text(&format!("{rc}.Query")),
                status_code: self.text(&format!("{rc}.StatusCode")),
            });
            let fc = format!("{at}.FixedResponseConfig");
            let fixed_response = self.has_prefix(&fc).then(|| ElbFixedResponse {
                status_code: self.text(&format!("{fc}.StatusCode")),
                content_type: self.text(&format!("{fc}.ContentType")),
                message_body: self.text(&format!("{fc}.MessageBody")),
            });
            out.push(ElbAction {
                redirect,
                fixed_response,
                group_stickiness: self.bool(&format!("{stick}.Enabled"))?.unwrap_or(false),
                group_stickiness_seconds: self
                    .int(&format!("{stick}.DurationSeconds"))?
                    .unwrap_or(0),
                r#type,
                target_groups: groups,
                order: match self.int(&format!("{at}.Order"))? {
                    Some(o) => {
                        crate::model::elb::check_order(&format!("{at}.Order"), o).map(|()| o)?
                    }
                    None => 0,
                },
                single: is_single,
            });
        }
        Ok(out)
    }

    /// Whether any parameter starts with `PREFIX.` (a structure was given).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let head = format!("{prefix}.");
        self.map
            .range(head.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&head))
    }

    /// Conditions: `Field` with `Values` (host-header and path-pattern), or with its kind's
    /// config: `HostHeaderConfig`, `PathPatternConfig`, `HttpHeaderConfig` (`HttpHeaderName`),
    /// `QueryStringConfig` (`Key`/`Value` pairs), `HttpRequestMethodConfig`, `SourceIpConfig`.
    pub fn conditions(&self, prefix: &str) -> Result<Vec<ElbCondition>> {
        let mut out = Vec::new();
        for i in self.members(prefix) {
            let at = format!("{prefix}.member.{i}");
            let field = self
                .get(&format!("{at}.Field"))
                .ok_or_else(|| {
                    invalid(format!(
                        "{at}.Field: is required (host-header, path-pattern, http-header, query-string, http-request-method or source-ip)"
                    ))
                })?
                .to_string();
            let mut values = self.list(&format!("{at}.Values"));
            let mut c = ElbCondition::default();
            match field.as_str() {
                "host-header" => values.extend(self.list(&format!("{at}.HostHeaderConfig.Values"))),
                "path-pattern" => {
                    values.extend(self.list(&format!("{at}.PathPatternConfig.Values")))
                }
                "http-header" => {
                    let hc = format!("{at}.HttpHeaderConfig");
                    c.header_name = self.text(&format!("{hc}.HttpHeaderName"));
                    values.extend(self.list(&format!("{hc}.Values")));
                }
                "http-request-method" => {
                    values.extend(self.list(&format!("{at}.HttpRequestMethodConfig.Values")))
                }
                "source-ip" => values.extend(self.list(&format!("{at}.SourceIpConfig.Values"))),
                "query-string" => {
                    let qc = format!("{at}.QueryStringConfig.Values");
                    for j in self.members(&qc) {
                        let m = format!("{qc}.member.{j}");
                        let pair = KeyValuePair {
                            name: self.text(&format!("{m}.Key")),
                            value: self.text(&format!("{m}.Value")),
                        };
                        values.push(format!("{}={}", pair.name, pair.value));
                        c.query.push(pair);
                    }
                }
                _ => {}
            }
            values.dedup();
            c.field = field;
            c.values = values;
            out.push(c);
        }
        Ok(out)
    }

    /// The health check fields of CreateTargetGroup and ModifyTargetGroup.
    pub fn health(&self) -> Result<HealthInput> {
        if let Some(p) = self
            .get("HealthCheckProtocol")
            .filter(|p| !matches!(*p, "HTTP" | "TCP"))
        {
            return Err(invalid(format!(
                "HealthCheckProtocol: {} is not served by Berth's proxy; use HTTP, or TCP for a TCP target group",
                quote(p)
            )));
        }
        if let Some(p) = self.get("HealthCheckPort").filter(|p| *p != "traffic-port") {
            return Err(invalid(format!(
                "HealthCheckPort: {} is not served; Berth checks each target on its traffic port (traffic-port)",
                quote(p)
            )));
        }
        if self.bool("HealthCheckEnabled")? == Some(false) {
            return Err(invalid(
                "HealthCheckEnabled: Berth's proxy always checks targets; leave it true".into(),
            ));
        }
        Ok(HealthInput {
            path: self.get("HealthCheckPath").map(str::to_string),
            interval_seconds: self.int("HealthCheckIntervalSeconds")?,
            timeout_seconds: self.int("HealthCheckTimeoutSeconds")?,
            healthy_threshold: self.int("HealthyThresholdCount")?,
            unhealthy_threshold: self.int("UnhealthyThresholdCount")?,
            matcher: self.get("Matcher.HttpCode").map(str::to_string),
            protocol: self.get("HealthCheckProtocol").map(str::to_string),
        })
    }
}
