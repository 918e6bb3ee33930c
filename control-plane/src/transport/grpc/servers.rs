//! `berth.v1.Servers`: the control-plane replicas and which one leads, from the store.

use super::blocking;
use crate::control::leader;
use crate::state::State;
use berth_proto::v1::servers_server::Servers;
use berth_proto::v1::*;
use tonic::{Request, Response, Status};

pub struct ServersApi {
    pub state: State,
    /// "embedded" or "etcd".
    pub store: &'static str,
}

#[tonic::async_trait]
impl Servers for ServersApi {
    async fn list_servers(
        &self,
        _req: Request<ListServersRequest>,
    ) -> Result<Response<ListServersReply>, Status> {
        let (all, leading) = blocking(&self.state, leader::replicas).await?;
        let servers = all
            .into_iter()
            .map(|r| {
                let lead = leading.as_ref().filter(|l| l.id == r.id);
                ServerInfo {
                    leader: lead.is_some(),
                    leader_since: lead.map(|l| l.leader_since.clone()).unwrap_or_default(),
                    id: r.id,
                    grpc: r.grpc,
                    http: r.http,
                    started_at: r.started_at,
                }
            })
            .collect();
        Ok(Response::new(ListServersReply {
            servers,
            store: self.store.to_string(),
        }))
    }
}
