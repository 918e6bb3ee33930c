//! `berth dev` and `berth server` restarted or upgraded without dropping a load-balanced
//! request: a new process on the same data directory takes over the running one's proxy
//! listeners (through DATA/handoff.sock, as `berth proxy` does) before it starts its own control
//! plane. Its proxy first follows the running control plane, which is still serving; once it has
//! the routing table and its listeners open the old process stops accepting, drains, and shuts
//! down, releasing the store; the new control plane then opens it on the same addresses, and the
//! proxy's connection moves over to it. Requests are served throughout from the last table.

use super::serve_args::{Mode, ServeArgs};
use berth_control_plane as cp;
use std::time::{Duration, Instant};

/// How long the new process waits for the old one to give up the store and its ports.
const OLD_EXITS_WITHIN: Duration = Duration::from_secs(60);
/// How long the new proxy waits for a routing table from the running control plane.
const TABLE_WITHIN: Duration = Duration::from_secs(30);

pub fn handoff_path(args: &ServeArgs) -> std::path::PathBuf {
    args.data.join("handoff.sock")
}

/// Where this process's proxy listeners bind.
pub fn proxy_bind(args: &ServeArgs, mode: Mode) -> std::net::IpAddr {
    args.proxy_bind.unwrap_or(match mode {
        Mode::Dev => std::net::Ipv4Addr::LOCALHOST.into(),
        Mode::Server => std::net::Ipv4Addr::UNSPECIFIED.into(),
    })
}

/// Takes over a running dev/server's proxy on this data directory, if one offers it: the new
/// proxy, serving on the inherited listeners with the running control plane's table.
pub async fn take_over(
    args: &ServeArgs,
    mode: Mode,
    config: &cp::Config,
    name: &str,
) -> anyhow::Result<Option<berth_proxy::Proxy>> {
    if args.no_proxy || args.listen.port() == 0 {
        return Ok(None);
    }
    let Some(takeover) = super::proxy::take_over(&handoff_path(args), &args.data).await? else {
        return Ok(None);
    };
    let mut grpc = config.grpc_listen;
    if grpc.ip().is_unspecified() {
        grpc.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if config.trust.is_some() {
        "https"
    } else {
        "http"
    };
    let id = format!("{}-{}", args.node_name, std::process::id());
    let mut cfg = berth_proxy::Config::new(
        format!("{scheme}://{grpc}"),
        proxy_bind(args, mode),
        id.clone(),
    );
    args.limits.lb.apply(&mut cfg);
    if let Some(t) = &config.trust {
        cfg.tls = Some(cp::model::auth::trust::local_client_from_dir(
            &args.data,
            t.cert_lifetime,
            berth_trust::PeerKind::Proxy,
            &id,
        )?);
    }
    let from = takeover.inherited().from_pid();
    let proxy = berth_proxy::spawn_inheriting(cfg, Some(takeover.inherited())).await?;
    if tokio::time::timeout(TABLE_WITHIN, proxy.first_table())
        .await
        .is_err()
    {
        proxy.shutdown().await;
        anyhow::bail!(
            "the running process (pid {from}) gave no routing table within {TABLE_WITHIN:?}; it keeps serving"
        );
    }
    takeover.finish().await?;
    crate::say!("{name}: took over the load balancer's listeners from pid {from}, which now drains and stops");
    Ok(Some(proxy))
}

/// Starts the control plane; after a takeover, retries while the old process still holds the
/// store or the ports.
pub async fn spawn_plane(config: cp::Config, took_over: bool) -> anyhow::Result<cp::ControlPlane> {
    let started = Instant::now();
    loop {
        match cp::spawn(config.clone()).await {
            Ok(plane) => return Ok(plane),
            Err(e) if took_over && started.elapsed() < OLD_EXITS_WITHIN => {
                tracing::debug!(error = %e, "the previous process has not let go yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(damaged_store(e.into())),
        }
    }
}

/// A damaged store says so alone (file, offset, last good revision, what to run), not wrapped
/// in the API's error names.
fn damaged_store(e: anyhow::Error) -> anyhow::Error {
    let damage = e.chain().find_map(|c| match c.downcast_ref() {
        Some(cp::store::StoreError::Corrupt(m)) => Some(m.clone()),
        _ => None,
    });
    damage.map_or(e, anyhow::Error::msg)
}
