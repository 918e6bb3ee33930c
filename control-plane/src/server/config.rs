//! What a control plane is started with: where it keeps its data and listens, its timings,
//! trust, store (embedded or etcd) and limits.

use crate::control::controller::ControllerConfig;
use crate::model::auth::trust::TrustConfig;
use crate::transport::grpc::SessionTimings;
use crate::transport::http;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the control plane keeps its data and listens.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub sessions: SessionTimings,
    /// How long a stopped task stays visible before it is forgotten.
    pub task_retention: Duration,
    pub controller: ControllerConfig,
    /// Mutual TLS and tokens; `None` serves plaintext without auth (`berth dev`).
    pub trust: Option<TrustConfig>,
    /// Keep state in etcd (several replicas, one leader) instead of the embedded store in `data_dir`.
    pub etcd: Option<crate::store::EtcdOptions>,
    /// The leader's lease: a leader cut off from etcd stops acting within it.
    pub leader_ttl: Duration,
    /// The gRPC URL other replicas and `berth server list` show for this one.
    pub advertise: Option<String>,
    /// Bounds on what one request may ask for (`--max-desired-count`).
    pub limits: crate::Limits,
    /// The HTTP port's connection bounds, `Host` rule and TLS choice.
    pub http: http::HttpConfig,
    /// Open connections on the gRPC port at most; more are closed when accepted.
    pub grpc_max_connections: usize,
    /// The region and 12-digit account in ARNs (`arn:aws:ecs:REGION:ACCOUNT:…`).
    pub region: String,
    pub account_id: String,
}

impl Config {
    /// Defaults for everything but where to keep data and listen.
    pub fn new(data_dir: PathBuf, grpc_listen: SocketAddr, http_listen: SocketAddr) -> Self {
        Self {
            data_dir,
            grpc_listen,
            http_listen,
            sessions: SessionTimings::default(),
            task_retention: Duration::from_secs(24 * 3600),
            controller: ControllerConfig::default(),
            trust: None,
            etcd: None,
            leader_ttl: Duration::from_secs(5),
            advertise: None,
            limits: crate::Limits::default(),
            http: http::HttpConfig::default(),
            grpc_max_connections: 4096,
            region: berth_core::arn::DEFAULT_REGION.into(),
            account_id: berth_core::arn::DEFAULT_ACCOUNT.into(),
        }
    }

    /// The part of the configuration the leader reads.
    pub fn leader(&self) -> crate::control::leader::LeaderConfig {
        crate::control::leader::LeaderConfig {
            data_dir: self.data_dir.clone(),
            etcd: self.etcd.clone(),
            leader_ttl: self.leader_ttl,
            advertise: self.advertise.clone(),
            http_plaintext: self.http.plaintext,
        }
    }
}
