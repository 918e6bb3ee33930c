//! When a stopping load-balanced task leaves the load balancer: once every watching proxy has
//! drained it, or its deregistration delay has passed, or no proxy is watching at all. Only then
//! does its agent stop it.

use super::{ServicePlan, ServiceView};
use crate::status::TaskState;
use crate::time;
use berth_proto::v1::LoadBalancer;

/// How long a deregistered target drains when its load balancer does not say.
pub const DEFAULT_DRAIN_TIMEOUT_S: i32 = 30;

/// A load balancer's drain timeout, in seconds.
pub fn drain_timeout_s(lb: &LoadBalancer) -> i32 {
    lb.drain_timeout_seconds.unwrap_or(DEFAULT_DRAIN_TIMEOUT_S)
}

pub(super) fn deregistrations(p: &mut ServicePlan, view: &ServiceView, now: i64) {
    let delay_ms = i64::from(
        p.service
            .load_balancers
            .first()
            .map_or(DEFAULT_DRAIN_TIMEOUT_S, drain_timeout_s),
    ) * 1000;
    for t in view
        .tasks
        .iter()
        .filter(|t| t.load_balanced && t.is_stopping() && t.deregistered_at.is_empty())
    {
        let since = time::parse_rfc3339(&t.stopping_at).unwrap_or(now);
        let why = if !view.lb_watched {
            "no proxy routes to it"
        } else if view.drained.contains(&t.task_arn) {
            "drained by every proxy"
        } else if now - since >= delay_ms {
            "drain timeout reached"
        } else {
            continue;
        };
        p.deregister.push((t.task_arn.clone(), why));
    }
}
