//! A node's Service Connect proxy: the `berth-proxy` library following the control plane's
//! Service Connect routes, listening for every alias on the address the agent chose
//! (`berth_agent::connect`), which its tasks' /etc/hosts map the aliases to. `berth agent` and
//! the local agent of `berth dev` start it beside the agent.

/// An agent with its Service Connect proxy; they stop together.
pub struct Node {
    pub agent: berth_agent::Agent,
    connect: Option<berth_proxy::Proxy>,
}

impl Node {
    /// Starts the proxy on the agent's Service Connect address, if it has one. `tls`: the
    /// certificate the proxy presents (the node's, or in `berth dev` a local one). A proxy that
    /// cannot start is said and left out: the node runs its tasks without it.
    pub async fn start(
        agent: berth_agent::Agent,
        server: &str,
        id: &str,
        tls: Option<berth_trust::ClientTls>,
        limits: Option<&super::flags::LbLimitArgs>,
    ) -> Self {
        let Some(ip) = agent.service_connect_addr() else {
            return Node {
                agent,
                connect: None,
            };
        };
        let mut cfg = berth_proxy::Config::new(server, ip, id);
        if let Some(l) = limits {
            l.apply(&mut cfg);
        }
        cfg.tls = tls;
        cfg.service_connect = true;
        // The aliases of one node: one data-plane thread is plenty.
        cfg.workers = 1;
        let connect = match berth_proxy::spawn(cfg).await {
            Ok(p) => {
                crate::say!(
                    "Service Connect: aliases answered on {ip} (the tasks' /etc/hosts name it)"
                );
                Some(p)
            }
            Err(e) => {
                crate::say!("Service Connect: the proxy cannot start on {ip}: {e}");
                None
            }
        };
        Node { agent, connect }
    }

    pub async fn shutdown(self) {
        let proxy = async {
            if let Some(p) = self.connect {
                p.shutdown().await;
            }
        };
        tokio::join!(self.agent.shutdown(), proxy);
    }
}
