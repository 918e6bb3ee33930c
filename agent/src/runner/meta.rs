//! A runner's part in the task metadata endpoint: the URIs its containers are given, and what
//! it tells the endpoint each time it publishes the task.

use super::{cluster_of, Runner};
use crate::metadata::TaskMeta;
use crate::runtime::ContainerRuntime;
use berth_proto::agent::v1::TaskReport;

impl<R: ContainerRuntime> Runner<R> {
    /// ECS_CONTAINER_METADATA_URI_V4, ECS_CONTAINER_METADATA_URI and ECS_AGENT_URI for container
    /// `i`; none
    /// with networkMode none (nothing to reach the agent over) or with the endpoint off.
    pub(super) fn metadata_env(&self, i: usize) -> Vec<(String, String)> {
        let Some(m) = &self.ctx.metadata else {
            return Vec::new();
        };
        let network = match self.def.network_mode.as_str() {
            "none" => return Vec::new(),
            "host" => "host".to_string(),
            _ => self.ctx.task_network.clone().unwrap_or_default(),
        };
        match m.uris(&network, &self.arn, &self.container(i).name) {
            Some([v4, v3, agent]) => vec![
                ("ECS_CONTAINER_METADATA_URI_V4".into(), v4),
                ("ECS_CONTAINER_METADATA_URI".into(), v3),
                ("ECS_AGENT_URI".into(), agent),
            ],
            None => Vec::new(),
        }
    }

    pub(super) fn publish_metadata(&self, report: &TaskReport) {
        let Some(m) = &self.ctx.metadata else {
            return;
        };
        // Adopted containers (after an agent restart) keep the URIs they were created with:
        // their tokens resolve again once known.
        for c in &self.def.container_definitions {
            m.token(&self.arn, &c.name);
        }
        let stopping = matches!(report.last_status.as_str(), "STOPPING" | "STOPPED");
        m.update(TaskMeta {
            task_arn: self.arn.clone(),
            cluster: cluster_of(&self.arn).to_string(),
            definition: self.def.clone(),
            desired_status: if stopping { "STOPPED" } else { "RUNNING" }.into(),
            known_status: report.last_status.clone(),
            started_at: report.started_at.clone(),
            docker_ids: self.ids.clone(),
            container_status: report
                .containers
                .iter()
                .map(|c| (c.name.clone(), c.last_status.clone()))
                .collect(),
        });
    }
}
