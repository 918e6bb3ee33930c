//! The flags of a traffic-shifting deployment (`--deployment-strategy canary --canary 10%:5m …`)
//! and `berth service rollback`.

use super::flags::parse_duration;
use berth_proto::v1::{
    CanaryConfiguration, DeploymentConfiguration, DeploymentLifecycleHook, LinearConfiguration,
    TrafficRollback,
};
use std::time::Duration;

#[derive(Debug, Default, clap::Args)]
pub struct ShiftArgs {
    /// How a new revision replaces the old one: rolling (default), blue-green, canary or
    /// linear. The last three start it beside the old one and shift traffic through the proxies.
    #[arg(long, value_parser = parse_strategy)]
    pub deployment_strategy: Option<String>,
    /// CANARY: the canary's share of traffic and how long it bakes, PERCENT:DURATION (10%:5m).
    #[arg(long, value_parser = parse_step)]
    pub canary: Option<(f64, Duration)>,
    /// LINEAR: the share added per step and each step's bake, PERCENT:DURATION (25%:1m).
    #[arg(long, value_parser = parse_step)]
    pub linear: Option<(f64, Duration)>,
    /// How long both revisions stay up once all traffic has moved (bakeTimeInMinutes).
    #[arg(long, value_parser = parse_duration)]
    pub bake: Option<Duration>,
    /// Roll back when more than this share of the new revision's answers are 5xx (1%).
    #[arg(long = "rollback-on-5xx", value_parser = parse_percent)]
    pub rollback_on_5xx: Option<f64>,
    /// Roll back when the new revision's p99 latency exceeds this multiple of the old one's (2x).
    #[arg(long, value_parser = parse_ratio)]
    pub rollback_on_p99: Option<f64>,
    /// Requests the new revision must answer before it is judged (default 20).
    #[arg(long)]
    pub rollback_min_requests: Option<i32>,
    /// Requests with this header ('name' or 'name: value') reach the new revision as soon as it
    /// is healthy, before production traffic moves.
    #[arg(long)]
    pub test_header: Option<String>,
    /// A lifecycle hook, URL=STAGE[,STAGE…] (repeatable): Berth POSTs the deployment's stage to
    /// the http:// URL and waits for {"hookStatus": "SUCCEEDED"}; FAILED rolls back. Stages:
    /// PRE_SCALE_UP, POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT,
    /// PRE_PRODUCTION_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT.
    #[arg(long = "hook", value_parser = parse_hook)]
    pub hooks: Vec<DeploymentLifecycleHook>,
}

fn parse_hook(s: &str) -> Result<DeploymentLifecycleHook, String> {
    let (url, stages) = s.rsplit_once('=').ok_or_else(|| {
        format!("{s:?} is not URL=STAGE[,STAGE…] like http://ci:9000/check=POST_SCALE_UP")
    })?;
    Ok(DeploymentLifecycleHook {
        hook_target_arn: url.trim().to_string(),
        lifecycle_stages: stages
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect(),
        ..Default::default()
    })
}

fn parse_strategy(s: &str) -> Result<String, String> {
    let upper = s.trim().to_ascii_uppercase().replace('-', "_");
    match upper.as_str() {
        "ROLLING" | "BLUE_GREEN" | "CANARY" | "LINEAR" => Ok(upper),
        _ => Err(format!(
            "{s:?} is not a strategy: rolling, blue-green, canary or linear"
        )),
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    s.trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("{s:?} is not a percentage 0-100 like 10%"))
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    s.trim()
        .trim_end_matches(['x', 'X'])
        .parse::<f64>()
        .ok()
        .filter(|r| *r > 0.0)
        .ok_or_else(|| format!("{s:?} is not a ratio like 2x"))
}

fn parse_step(s: &str) -> Result<(f64, Duration), String> {
    let (pct, bake) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not PERCENT:DURATION like 10%:5m"))?;
    Ok((parse_percent(pct)?, parse_duration(bake)?))
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn minutes(d: Duration) -> i32 {
    seconds(d) / 60
}

impl ShiftArgs {
    fn any(&self) -> bool {
        self.deployment_strategy.is_some()
            || self.canary.is_some()
            || self.linear.is_some()
            || self.bake.is_some()
            || self.rollback_on_5xx.is_some()
            || self.rollback_on_p99.is_some()
            || self.rollback_min_requests.is_some()
            || self.test_header.is_some()
            || !self.hooks.is_empty()
    }

    /// Writes the flags given into `dc`; false when none was. --canary or --linear alone
    /// imply their strategy.
    pub fn fill(&self, dc: &mut DeploymentConfiguration) -> bool {
        if !self.any() {
            return false;
        }
        let implied = match (self.canary, self.linear) {
            (Some(_), _) => "CANARY",
            (_, Some(_)) => "LINEAR",
            _ => "",
        };
        dc.strategy = self
            .deployment_strategy
            .clone()
            .unwrap_or_else(|| implied.to_string());
        if let Some((pct, bake)) = self.canary {
            dc.canary_configuration = Some(CanaryConfiguration {
                canary_percent: pct,
                canary_bake_time_in_minutes: minutes(bake),
                canary_bake_time_seconds: Some(seconds(bake)),
            });
        }
        if let Some((pct, bake)) = self.linear {
            dc.linear_configuration = Some(LinearConfiguration {
                step_percent: pct,
                step_bake_time_in_minutes: minutes(bake),
                step_bake_time_seconds: Some(seconds(bake)),
            });
        }
        if let Some(bake) = self.bake {
            dc.bake_time_in_minutes = minutes(bake);
            dc.bake_time_seconds = Some(seconds(bake));
        }
        if self.rollback_on_5xx.is_some()
            || self.rollback_on_p99.is_some()
            || self.rollback_min_requests.is_some()
        {
            dc.traffic_rollback = Some(TrafficRollback {
                error_percent: self.rollback_on_5xx.unwrap_or(0.0),
                p99_ratio: self.rollback_on_p99.unwrap_or(0.0),
                min_requests: self.rollback_min_requests.unwrap_or(0),
            });
        }
        if let Some(h) = &self.test_header {
            dc.test_traffic_header = h.clone();
        }
        dc.lifecycle_hooks = self.hooks.clone();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_percentages_and_ratios_parse_as_written_and_say_what_is_wrong() {
        assert_eq!(parse_step("10%:5m"), Ok((10.0, Duration::from_secs(300))));
        assert_eq!(parse_ratio("2x"), Ok(2.0));
        assert_eq!(parse_percent("1.5%"), Ok(1.5));
        assert_eq!(parse_strategy("blue-green").as_deref(), Ok("BLUE_GREEN"));
        assert!(parse_step("10%").unwrap_err().contains("PERCENT:DURATION"));
        assert!(parse_percent("120%").unwrap_err().contains("0-100"));
        assert!(parse_strategy("swap").unwrap_err().contains("canary"));
    }

    #[test]
    fn canary_alone_implies_its_strategy() {
        let args = ShiftArgs {
            canary: Some((10.0, Duration::from_secs(90))),
            ..Default::default()
        };
        let mut dc = DeploymentConfiguration::default();
        assert!(args.fill(&mut dc));
        assert_eq!(dc.strategy, "CANARY");
        let c = dc.canary_configuration.unwrap();
        assert_eq!(
            (c.canary_bake_time_in_minutes, c.canary_bake_time_seconds),
            (1, Some(90))
        );
        assert!(!ShiftArgs::default().fill(&mut DeploymentConfiguration::default()));
    }
}
