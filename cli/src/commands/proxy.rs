//! `berth proxy`: the load balancer alone (one per edge host, several at once), fed by the control
//! plane at `--server`, with `/metrics` and `/healthz` on its own HTTP port; drains on a signal.
//! A second `berth proxy` started on the same handoff socket takes over the listening sockets of
//! the running one, which stops accepting once the new one serves, drains and exits: restarts and
//! upgrades drop no request.

use anyhow::Context;
use hyper::StatusCode;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
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
    /// The unix socket through which a new `berth proxy` takes over this one's listening sockets
    /// [default: DATA/handoff.sock].
    #[arg(long)]
    pub handoff: Option<PathBuf>,
    /// On SIGTERM or a takeover, how long open connections may take to finish their requests.
    #[arg(long, default_value = "10s", value_parser = super::flags::parse_duration)]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub join: super::flags::JoinArgs,
    #[command(flatten)]
    pub http_limits: super::flags::HttpLimitArgs,
    #[command(flatten)]
    pub lb_limits: super::flags::LbLimitArgs,
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
    config.shutdown_grace = args.drain_timeout;
    // From here on SIGHUP (reload) starts a successor once this one serves; it never kills.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    let handoff = args
        .handoff
        .clone()
        .unwrap_or_else(|| args.data.join("handoff.sock"));
    let takeover = take_over(&handoff, &args.data).await?;
    let inherited = takeover.as_ref().map(|t| t.inherited());
    let http = bind_http(args.http, inherited.as_deref())?;
    let http_addr = http.local_addr()?;
    // A copy of the telemetry socket, for the next process that takes over.
    let http_copy = std::net::TcpListener::from(http.as_fd().try_clone_to_owned()?);
    let proxy = berth_proxy::spawn_inheriting(config, inherited).await?;
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

    let handed_over = match wait_serving(&proxy, server).await {
        Serving::Signalled => None,
        Serving::Ready => {
            if let Some(takeover) = takeover {
                let from = takeover.inherited().from_pid();
                takeover.finish().await?;
                crate::say!("berth proxy: took over from pid {from}, which now drains");
            }
            proxy
                .offer_handoff(&handoff, vec![http_copy])
                .context("the handoff socket (--handoff)")?;
            crate::say!(
                "berth proxy: listener ports {}",
                describe_ports(&proxy.listening_ports())
            );
            crate::say!("berth proxy: ready");
            notify_systemd();
            Some(serve_until_done(&proxy, hangups).await)
        }
    };
    match handed_over {
        Some(true) => crate::say!("berth proxy: a new process took over the listeners; draining"),
        Some(false) => {
            crate::say!("berth proxy: draining");
            // Ours: a successor that took over would have bound its own.
            let _ = std::fs::remove_file(&handoff);
        }
        // Still the previous process's socket, if it was taken over from.
        None => crate::say!("berth proxy: draining"),
    }
    let _ = stop_http.send(true);
    telemetry.abort();
    proxy.shutdown().await;
    Ok(())
}

/// Serves until SIGTERM / Ctrl-C (false) or until a new process took over (true). SIGHUP starts
/// that new process: this binary's path as it was invoked (so an upgraded file is the new
/// binary), with the same arguments.
async fn serve_until_done(
    proxy: &berth_proxy::Proxy,
    mut hangups: tokio::signal::unix::Signal,
) -> bool {
    loop {
        tokio::select! {
            _ = super::lifecycle::wait_for_signal() => return false,
            _ = proxy.handed_over() => return true,
            _ = hangups.recv() => match super::lifecycle::start_successor() {
                Ok(pid) => crate::say!("berth proxy: SIGHUP: started pid {pid} to take over"),
                Err(e) => crate::say!("berth proxy: SIGHUP: cannot start a new process: {e:#}"),
            },
        }
    }
}

/// Takes over the listening sockets of the proxy serving the handoff socket, if one does.
pub(super) async fn take_over(
    handoff: &Path,
    data: &Path,
) -> anyhow::Result<Option<berth_proxy::Takeover>> {
    if let Some(dir) = handoff.parent().filter(|d| !d.as_os_str().is_empty()) {
        let made = if dir == data {
            berth_trust::files::owner_only(data, &[])
        } else {
            std::fs::create_dir_all(dir)
        };
        made.with_context(|| {
            format!(
                "--handoff {}: creating {}",
                handoff.display(),
                dir.display()
            )
        })?;
    }
    let takeover = berth_proxy::handoff::take_over(handoff)
        .await
        .context("taking over the running proxy (--handoff)")?;
    if let Some(t) = &takeover {
        let inherited = t.inherited();
        let addrs: Vec<String> = inherited
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        crate::say!(
            "berth proxy: taking over from pid {} through {}: {}",
            inherited.from_pid(),
            handoff.display(),
            addrs.join(", ")
        );
    }
    Ok(takeover)
}

/// The `--http` socket: the previous process's when it had the same address, else a new one.
fn bind_http(
    addr: SocketAddr,
    inherited: Option<&berth_proxy::Inherited>,
) -> anyhow::Result<TcpListener> {
    let socket = match inherited.and_then(|i| i.take_listener(addr)) {
        Some(socket) => socket,
        None => std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} (--http)"))?,
    };
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket)?)
}

enum Serving {
    Ready,
    Signalled,
}

/// Waits for the first routing table (the listeners are open then), or a signal.
async fn wait_serving(proxy: &berth_proxy::Proxy, server: &str) -> Serving {
    let mut waiting = std::pin::pin!(proxy.first_table());
    tokio::select! {
        _ = &mut waiting => Serving::Ready,
        _ = tokio::time::sleep(Duration::from_secs(2)) => {
            crate::say!("berth proxy: waiting for the routing table from {server}");
            tokio::select! {
                _ = &mut waiting => Serving::Ready,
                _ = super::lifecycle::wait_for_signal() => Serving::Signalled,
            }
        }
        _ = super::lifecycle::wait_for_signal() => Serving::Signalled,
    }
}

/// Under systemd (`Type=notify`, `NotifyAccess=all`): ready, and this process is now the
/// service's main one — also when it was started by `ExecReload` to take over from it.
fn notify_systemd() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("READY=1\nMAINPID={}\n", std::process::id());
    let sent = (|| {
        let datagram = std::os::unix::net::UnixDatagram::unbound()?;
        let path = Path::new(&socket);
        match socket.to_str().and_then(|s| s.strip_prefix('@')) {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                datagram.send_to_addr(message.as_bytes(), &addr)
            }
            None => datagram.send_to(message.as_bytes(), path),
        }
    })();
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd at {socket:?}: {e}");
    }
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
    let registry = berth_control_plane::state::metrics::SharedRegistry::default();
    berth_control_plane::state::metrics::register_with(&registry, |r| {
        telemetry.register_metrics(r)
    });
    std::sync::Arc::new(move |req| match req.uri().path() {
        "/metrics" => super::metrics_http::metrics(&registry),
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
