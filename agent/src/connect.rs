//! Service Connect on a node: the address its Service Connect proxy listens on for every alias,
//! which the tasks of Service Connect services get in /etc/hosts for each alias name of their
//! namespace. The proxy itself is the `berth-proxy` library, which the `berth` binary starts
//! beside the agent on this address (the agent does not depend on the proxy).
//!
//! The address is the node resolver's choice (`dns::node_addresses`): the task network's
//! gateway, else the default bridge's, else (a `berth lab` agent) the agent's own address on the
//! task network: the first of them this host can listen on.

use crate::dns::{node_addresses, NodeDns};
use crate::runtime::ContainerRuntime;
use crate::Config;
use std::net::{IpAddr, SocketAddr};

/// Where the node's Service Connect proxy listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectListen {
    /// No Service Connect on this node: tasks get no alias hosts.
    Off,
    /// The node resolver's address (or, with it off, the address it would choose).
    #[default]
    Auto,
    At(IpAddr),
}

impl std::str::FromStr for ConnectListen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(Self::Off),
            "auto" => Ok(Self::Auto),
            a => a
                .parse::<IpAddr>()
                .map(Self::At)
                .map_err(|_| format!("{a:?}: give off, auto or an IP address")),
        }
    }
}

/// Whether this host can listen on `ip` (a TCP socket on an ephemeral port binds there).
fn local(ip: IpAddr) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The address for this node's Service Connect proxy; None (with a warning) when off or when
/// no candidate is an address of this host.
pub async fn address<R: ContainerRuntime>(
    config: &Config,
    rt: &R,
    dns: Option<&NodeDns>,
) -> Option<IpAddr> {
    let candidates = match config.connect {
        ConnectListen::Off => return None,
        ConnectListen::At(ip) => vec![ip],
        ConnectListen::Auto => match dns {
            Some(d) if d.listening.port() == 53 => vec![d.listening.ip()],
            _ => node_addresses(config, rt).await,
        },
    };
    let chosen = candidates.iter().copied().find(|ip| local(*ip));
    if chosen.is_none() {
        tracing::warn!(
            tried = ?candidates,
            "Service Connect off on this node: no address to listen on (set --service-connect-addr IP)"
        );
    }
    chosen
}
