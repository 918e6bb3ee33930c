//! `berth proxy`: the load balancer alone (one per edge host, several at once), fed by the control
//! plane at `--server`, with `/metrics` and `/healthz` on its own HTTP port; drains on a signal.

use anyhow::Context;
use hyper::StatusCode;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Listener ports bind on this address.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Where `/metrics` (Prometheus) and `/healthz` are served.
    #[arg(long, default_value = "127.0.0.1:7081")]
    pub http: SocketAddr,
    /// This proxy's id in health reports [default: proxy-HOSTNAME-PID].
    #[arg(long)]
    pub id: Option<String>,
    /// Where the proxy keeps its certificate (with a TLS control plane).
    #[arg(long, env = "BERTH_PROXY_DATA", default_value = "./berth-proxy-data")]
    pub data: std::path::PathBuf,
    #[command(flatten)]
    pub join: super::agent::JoinArgs,
    #[command(flatten)]
    pub http_limits: super::limits::HttpLimitArgs,
    #[command(flatten)]
    pub lb_limits: super::limits::LbLimitArgs,
}

pub async fn run(args: ProxyArgs, server: &str) -> anyhow::Result<()> {
    let id = args.id.unwrap_or_else(default_id);
    let mut config = berth_proxy::Config::new(server, args.bind, id.clone());
    args.lb_limits.apply(&mut config);
    config.tls = args
        .join
        .enroll(
            server,
            &args.data,
            berth_trust::PeerKind::Proxy,
            String::new(),
        )
        .await?;
    if let Some(tls) = &config.tls {
        // Its key: owner-only, like every data directory.
        berth_trust::files::owner_only(&args.data, &["tls"])
            .with_context(|| format!("--data {}", args.data.display()))?;
        tokio::spawn(berth_trust::enroll::renew_forever(
            tls.clone(),
            server.to_string(),
            args.data.clone(),
        ));
    }
    let http = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", args.http))?;
    let http_addr = http.local_addr()?;
    let proxy = berth_proxy::spawn(config).await?;
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let telemetry = tokio::spawn(super::metrics_http::serve(
        http,
        args.http_limits.limits(),
        telemetry_answers(proxy.telemetry()),
        http_stopped,
    ));
    crate::say!(
        "berth proxy: {id} on {}, routes from {server}, http://{http_addr}/metrics",
        args.bind
    );

    let signalled = {
        let mut waiting = std::pin::pin!(proxy.first_table());
        tokio::select! {
            _ = &mut waiting => false,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                crate::say!("berth proxy: waiting for the routing table from {server}");
                tokio::select! {
                    _ = &mut waiting => false,
                    _ = super::serve::wait_for_signal() => true,
                }
            }
            _ = super::serve::wait_for_signal() => true,
        }
    };
    if !signalled {
        crate::say!(
            "berth proxy: listener ports {}",
            describe_ports(&proxy.listening_ports())
        );
        crate::say!("berth proxy: ready");
        super::serve::wait_for_signal().await;
    }
    crate::say!("berth proxy: draining");
    let _ = stop_http.send(true);
    telemetry.abort();
    proxy.shutdown().await;
    Ok(())
}

fn describe_ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none yet".into();
    }
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("proxy-{host}-{}", std::process::id())
}

/// `/metrics`, and `/healthz` ok once the first routing table is in.
fn telemetry_answers(telemetry: berth_proxy::Telemetry) -> super::metrics_http::Respond {
    std::sync::Arc::new(move |req| match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            telemetry.metrics_text(),
        ),
        "/healthz" if telemetry.tables_applied() > 0 => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        "/healthz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "waiting for the routing table\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    })
}
