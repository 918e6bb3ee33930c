//! `berth service scaling`: a service's target-tracking auto scaling policy.

use super::service_view::describe_scaling;
use crate::client::Conn as Channel;
use crate::output::{self, Format};
use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::*;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ScalingArgs {
    pub service: String,
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// Fewest tasks auto scaling leaves running.
    #[arg(long, required_unless_present = "off")]
    pub min: Option<i32>,
    /// Most tasks auto scaling starts.
    #[arg(long, required_unless_present = "off")]
    pub max: Option<i32>,
    /// Keep the tasks' average CPU near this percent (of each task's CPU, or of a core).
    #[arg(long, conflicts_with = "target_requests_per_task")]
    pub target_cpu: Option<f64>,
    /// Keep the requests per second per task, as the proxies count them, near this.
    #[arg(long)]
    pub target_requests_per_task: Option<f64>,
    /// Wait at least this long after a scale-out before scaling out again (default 30s).
    #[arg(long, value_parser = super::flags::parse_duration)]
    pub scale_out_cooldown: Option<Duration>,
    /// Wait at least this long after any scaling, or after setting the policy, before scaling
    /// in (default 120s).
    #[arg(long, value_parser = super::flags::parse_duration)]
    pub scale_in_cooldown: Option<Duration>,
    /// Turn auto scaling off (the desired count stays where it is).
    #[arg(long, conflicts_with_all = ["min", "max", "target_cpu", "target_requests_per_task"])]
    pub off: bool,
}

fn seconds(d: Option<Duration>) -> i32 {
    d.map_or(0, |d| d.as_secs().clamp(1, i32::MAX as u64) as i32)
}

pub async fn run(a: ScalingArgs, channel: Channel, fmt: Format) -> anyhow::Result<()> {
    let mut client = ServicesClient::new(channel);
    let policy = (!a.off).then(|| ScalingPolicy {
        min_capacity: a.min.unwrap_or_default(),
        max_capacity: a.max.unwrap_or_default(),
        target_cpu_percent: a.target_cpu,
        target_requests_per_task: a.target_requests_per_task,
        scale_out_cooldown_seconds: seconds(a.scale_out_cooldown),
        scale_in_cooldown_seconds: seconds(a.scale_in_cooldown),
        ..Default::default()
    });
    let reply = client
        .put_scaling_policy(PutScalingPolicyRequest {
            cluster: a.cluster,
            service: a.service,
            policy,
        })
        .await?
        .into_inner();
    if fmt == Format::Json {
        return output::json(&reply);
    }
    let svc = reply.service.unwrap_or_default();
    match &svc.scaling_policy {
        Some(_) => describe_scaling(&svc),
        None => crate::outln!(
            "service {}: auto scaling off, desired count {}",
            svc.service_name,
            svc.desired_count
        ),
    }
    Ok(())
}
