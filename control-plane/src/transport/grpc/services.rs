//! `berth.v1.Services` and `berth.v1.NodeAdmin`.

use super::blocking;
use crate::live::sessions::Sessions;
use crate::state::State;
use crate::{model::scaling, model::services};
use berth_proto::v1::node_admin_server::NodeAdmin;
use berth_proto::v1::services_server::Services;
use berth_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ServicesApi {
    pub state: State,
    /// What the proxies report: DescribeService's Service Connect callers.
    pub proxies: Arc<crate::live::proxies::Proxies>,
}

/// The window Service Connect call rates are taken over.
const CALLS_WINDOW_MS: i64 = 60_000;

#[tonic::async_trait]
impl Services for ServicesApi {
    async fn create_service(
        &self,
        req: Request<CreateServiceRequest>,
    ) -> Result<Response<ServiceReply>, Status> {
        let r = req.into_inner();
        let service = blocking(&self.state, move |s| services::create(s, r)).await?;
        Ok(Response::new(ServiceReply {
            service: Some(service),
            ..Default::default()
        }))
    }

    async fn update_service(
        &self,
        req: Request<UpdateServiceRequest>,
    ) -> Result<Response<ServiceReply>, Status> {
        let r = req.into_inner();
        let service = blocking(&self.state, move |s| services::update(s, r)).await?;
        Ok(Response::new(ServiceReply {
            service: Some(service),
            ..Default::default()
        }))
    }

    async fn stop_service_deployment(
        &self,
        req: Request<StopServiceDeploymentRequest>,
    ) -> Result<Response<ServiceReply>, Status> {
        let r = req.into_inner();
        let service = blocking(&self.state, move |s| services::stop_deployment(s, r)).await?;
        Ok(Response::new(ServiceReply {
            service: Some(service),
            ..Default::default()
        }))
    }

    async fn describe_service(
        &self,
        req: Request<DescribeServiceRequest>,
    ) -> Result<Response<ServiceReply>, Status> {
        let r = req.into_inner();
        let service = blocking(&self.state, move |s| {
            services::find(s, &r.cluster, &r.service)
        })
        .await?;
        let connect_callers = self
            .proxies
            .callers_of(
                &service.service_arn,
                CALLS_WINDOW_MS,
                crate::time::now_millis(),
            )
            .into_iter()
            .map(|c| ConnectCallerRate {
                caller: c.caller,
                requests_per_second: c.requests_per_second,
                errors_per_second: c.errors_per_second,
                requests_total: c.requests_total,
                errors_total: c.errors_total,
            })
            .collect();
        Ok(Response::new(ServiceReply {
            service: Some(service),
            connect_callers,
        }))
    }

    async fn list_services(
        &self,
        req: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesReply>, Status> {
        let r = req.into_inner();
        let services = blocking(&self.state, move |s| services::list(s, &r.cluster)).await?;
        Ok(Response::new(ListServicesReply { services }))
    }

    async fn delete_service(
        &self,
        req: Request<DeleteServiceRequest>,
    ) -> Result<Response<ServiceReply>, Status> {
        let r = req.into_inner();
        let service = blocking(&self.state, move |s| {
            services::delete(s, &r.cluster, &r.service, r.force)
        })
        .await?;
        Ok(Response::new(ServiceReply {
            service: Some(service),
            ..Default::default()
        }))
    }

    async fn put_scaling_policy(
        &self,
        req: Request<PutScalingPolicyRequest>,
    ) -> Result<Response<ServiceReply>, Status> {
        let r = req.into_inner();
        let service = blocking(&self.state, move |s| scaling::put_policy(s, r)).await?;
        Ok(Response::new(ServiceReply {
            service: Some(service),
            ..Default::default()
        }))
    }
}

pub struct NodeAdminApi {
    pub state: State,
    pub sessions: Arc<Sessions>,
}

#[tonic::async_trait]
impl NodeAdmin for NodeAdminApi {
    async fn update_node_status(
        &self,
        req: Request<UpdateNodeStatusRequest>,
    ) -> Result<Response<NodeReply>, Status> {
        let r = req.into_inner();
        let sessions = self.sessions.clone();
        let n = blocking(&self.state, move |s| {
            crate::model::nodes::set_status(s, &sessions, &r.node, &r.status)
        })
        .await?;
        Ok(Response::new(NodeReply {
            container_instance: Some(n),
        }))
    }
}
