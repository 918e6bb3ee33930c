//! `berth dev` and `berth server`: start the libraries, print where they listen, drain on a signal.

use super::serve_args::{Mode, ServeArgs};
use berth_control_plane as cp;
use std::path::PathBuf;
use std::time::Duration;

/// `berth server`: run one, or (`list`) ask one about all of them.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerCommand {
    #[command(subcommand)]
    pub action: Option<ServerAction>,
    #[command(flatten)]
    pub args: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServerAction {
    /// The control-plane replicas, their addresses, which one leads and since when.
    List,
}

/// `berth server list`.
pub async fn list(server: &str, fmt: crate::output::Format) -> anyhow::Result<()> {
    use berth_proto::v1::servers_client::ServersClient;
    let channel = crate::client::connect(server).await?;
    let reply = ServersClient::new(channel)
        .list_servers(berth_proto::v1::ListServersRequest {})
        .await?
        .into_inner();
    if fmt == crate::output::Format::Json {
        return crate::output::json(&reply);
    }
    let mut t =
        crate::output::Table::new(&["ID", "GRPC", "HTTP", "ROLE", "LEADER SINCE", "STARTED"]);
    for s in &reply.servers {
        t.row(vec![
            s.id.clone(),
            s.grpc.clone(),
            s.http.clone(),
            if s.leader { "leader" } else { "follower" }.into(),
            if s.leader_since.is_empty() {
                "-".into()
            } else {
                s.leader_since.clone()
            },
            s.started_at.clone(),
        ]);
    }
    t.print();
    eprintln!("store: {}", reply.store);
    Ok(())
}

/// Loads the key that seals secret values. It is made only at the default path: a named key file
/// that is missing is an error, not a new key that opens none of the stored values.
fn install_secrets_key(args: &ServeArgs) -> anyhow::Result<()> {
    use cp::model::secrets::key;
    let key_file = args
        .secrets_key_file
        .clone()
        .unwrap_or_else(|| key::default_path(&args.data));
    match key::install(&key_file, args.secrets_key_file.is_none()) {
        Ok(()) => Ok(()),
        Err(e) if args.secrets_key_file.is_some() => Err(anyhow::Error::msg(e)),
        // Without a key the server still runs; only the secret store refuses, saying why.
        Err(e) => {
            tracing::warn!("{e}; secrets are unavailable until --secrets-key-file is given");
            Ok(())
        }
    }
}

pub async fn run(args: ServeArgs, mode: Mode) -> anyhow::Result<()> {
    cp::control::acme::configure(cp::control::acme::AcmeConfig {
        directory: args.acme_directory.clone().unwrap_or_default(),
        email: args.acme_email.clone(),
        ca_root: args.acme_ca_root.clone(),
        dns_hook: args.acme_dns_hook.clone(),
    });
    let name = match mode {
        Mode::Dev => "berth dev",
        Mode::Server => "berth server",
    };
    let (config, secure) = config_of(&args, mode, name)?;
    install_secrets_key(&args)?;
    // A running dev/server on this data directory hands over its load balancer first.
    let taken = super::serve_handoff::take_over(&args, mode, &config, name).await?;
    let plane = match super::serve_handoff::spawn_plane(config, taken.is_some()).await {
        Ok(p) => p,
        Err(e) => {
            if let Some(p) = taken {
                p.shutdown().await;
            }
            return Err(e);
        }
    };
    let http_scheme = if secure && !args.limits.http_insecure {
        "https"
    } else {
        "http"
    };
    crate::say!(
        "{name}: control plane on {} ({}), {http_scheme}://{} (console, API, health, metrics), data in {}",
        plane.grpc_addr,
        if secure { "gRPC+TLS" } else { "gRPC" },
        plane.http_addr,
        args.data.display()
    );
    if secure {
        let d = args.data.display();
        crate::say!("{name}: CA certificate {d}/ca.crt; admin token in {d}/admin.token; join token in {d}/join.token (owner-only files)");
    }
    // Either failing stops the control plane too, and waits for it.
    let proxy = match taken {
        Some(p) => {
            let telemetry = p.telemetry();
            cp::state::metrics::register_with(&plane.metrics, |r| telemetry.register_metrics(r));
            Some(p)
        }
        None => match start_proxy(&args, mode, &plane, name).await {
            Ok(p) => p,
            Err(e) => {
                plane.shutdown().await;
                return Err(e);
            }
        },
    };
    let handoff = super::serve_handoff::handoff_path(&args);
    if let Some(p) = &proxy {
        if let Err(e) = p.offer_handoff(&handoff, Vec::new()) {
            crate::say!("{name}: no handoff socket ({e}); a restart will drop requests in flight");
        }
    }
    let local_agent = match mode {
        Mode::Server => None,
        Mode::Dev => match start_local_agent(&args, &plane, name).await {
            Ok(a) => a,
            Err(e) => {
                plane.shutdown().await;
                return Err(e);
            }
        },
    };
    if secure {
        crate::say!(
            "{name}: try `BERTH_TOKEN=$(cat {d}/admin.token) berth --server {} --ca {d}/ca.crt cluster list`",
            plane.local_url(),
            d = args.data.display()
        );
    } else {
        crate::say!(
            "{name}: try `berth cluster list --server {}`",
            plane.local_url()
        );
    }
    crate::say!("{name}: ready");
    let handed_over = serve_until_done(proxy.as_ref(), name).await;
    if handed_over {
        crate::say!("{name}: a new process took over the load balancer; shutting down for it");
    } else {
        if proxy.is_some() {
            let _ = std::fs::remove_file(&handoff);
        }
        crate::say!("{name}: shutting down (tasks keep running; the next start adopts them)");
    }
    shut_down(name, local_agent, proxy, plane).await;
    Ok(())
}

/// Stops the local agent and proxy first, side by side, so they leave before the control plane
/// does rather than retrying it; each bounded, so the whole stays well within 5 s.
async fn shut_down(
    name: &str,
    local_agent: Option<super::connect_proxy::Node>,
    proxy: Option<berth_proxy::Proxy>,
    plane: cp::ControlPlane,
) {
    let started = std::time::Instant::now();
    let local = async {
        if let Some(a) = local_agent {
            a.shutdown().await;
        }
    };
    let proxy = async {
        if let Some(p) = proxy {
            p.shutdown().await;
        }
    };
    if tokio::time::timeout(LOCAL_DRAIN, async { tokio::join!(local, proxy) })
        .await
        .is_err()
    {
        crate::say!(
            "{name}: the local agent or proxy did not stop within {LOCAL_DRAIN:?}; leaving it"
        );
    }
    plane.shutdown().await;
    crate::say!(
        "{name}: stopped in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The control plane's configuration from the flags, and whether it runs with TLS and auth.
fn config_of(args: &ServeArgs, mode: Mode, name: &str) -> anyhow::Result<(cp::Config, bool)> {
    let mut config = cp::Config::new(args.data.clone(), args.listen, args.http);
    if !args.etcd.is_empty() {
        if matches!(mode, Mode::Dev) {
            anyhow::bail!(
                "--etcd: berth dev keeps its state in its data directory; run berth server --etcd"
            );
        }
        config.etcd = Some(etcd_options(args)?);
    }
    config.leader_ttl = args.leader_ttl;
    config.advertise = args.advertise.clone();
    config.sessions.heartbeat = args.heartbeat;
    config.sessions.heartbeat_timeout = args.heartbeat_timeout;
    config.task_retention = args.task_retention;
    config.controller.resync = args.resync;
    config.controller.lost_node_timeout = args.lost_node_timeout;
    config.controller.crash_grace = args.crash_grace;
    config.controller.min_healthy_time = args.min_healthy_time;
    config.controller.scaling_interval = args.scaling_interval;
    config.region = args.region.clone();
    config.account_id = args.account_id.clone();
    let secure = match mode {
        Mode::Dev => args.secure,
        Mode::Server => !args.insecure,
    };
    let at = super::flags::Listening {
        grpc: args.listen,
        http: args.http,
        proxy_bind: args.proxy_bind,
    };
    args.limits
        .apply(matches!(mode, Mode::Dev), secure, &at, &mut config)?;
    // The proxy in this process binds here: a listener port another process holds is refused.
    config.limits.listener_bind =
        (!args.no_proxy).then(|| super::serve_handoff::proxy_bind(args, mode));
    if !secure && !args.listen.ip().is_loopback() {
        match mode {
            Mode::Dev => anyhow::bail!(
                "--listen {}: berth dev serves without auth, so only on loopback (127.0.0.1); use --secure, or berth server",
                args.listen
            ),
            Mode::Server => crate::say!(
                "{name}: WARNING: --insecure on {}: anyone who reaches this port controls the cluster",
                args.listen
            ),
        }
    }
    if secure {
        config.trust = Some(cp::TrustConfig {
            tls_sans: args.tls_sans.clone(),
            cert_lifetime: args.cert_lifetime,
        });
    }
    Ok((config, secure))
}

/// Waits for SIGTERM / Ctrl-C (false) or for a new process to take over the proxy (true); SIGHUP
/// starts that new process (this binary, as invoked, with the same arguments).
async fn serve_until_done(proxy: Option<&berth_proxy::Proxy>, name: &str) -> bool {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let handed = async {
            match proxy {
                Some(p) => p.handed_over().await,
                None => std::future::pending().await,
            }
        };
        let hangup = async {
            match hangups.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = super::lifecycle::wait_for_signal() => return false,
            _ = handed => return true,
            _ = hangup => match super::lifecycle::start_successor() {
                Ok(pid) => crate::say!("{name}: SIGHUP: started pid {pid} to take over"),
                Err(e) => crate::say!("{name}: SIGHUP: cannot start a new process: {e:#}"),
            },
        }
    }
}

/// The load balancer in this process, unless --no-proxy.
async fn start_proxy(
    args: &ServeArgs,
    mode: Mode,
    plane: &cp::ControlPlane,
    name: &str,
) -> anyhow::Result<Option<berth_proxy::Proxy>> {
    if args.no_proxy {
        return Ok(None);
    }
    {
        let bind = super::serve_handoff::proxy_bind(args, mode);
        let id = format!("{}-{}", args.node_name, std::process::id());
        let mut cfg = berth_proxy::Config::new(plane.local_url(), bind, id.clone());
        args.limits.lb.apply(&mut cfg);
        if let Some(trust) = &plane.trust {
            cfg.tls = Some(trust.local_client(berth_trust::PeerKind::Proxy, &id)?);
        }
        match berth_proxy::spawn(cfg).await {
            Ok(p) => {
                let telemetry = p.telemetry();
                cp::state::metrics::register_with(&plane.metrics, |r| {
                    telemetry.register_metrics(r)
                });
                crate::say!("{name}: load balancer listening on {bind} (each service's --lb-port)");
                Ok(Some(p))
            }
            Err(e) => anyhow::bail!("the load balancer cannot start: {e}"),
        }
    }
}

/// dev's own agent on the Docker engine (it builds the demo image if missing).
async fn start_local_agent(
    args: &ServeArgs,
    plane: &cp::ControlPlane,
    name: &str,
) -> anyhow::Result<Option<super::connect_proxy::Node>> {
    {
        match berth_agent::ensure_demo_image().await {
            Ok(berth_agent::runtime::image::ImageOutcome::Built) => {
                crate::say!("{name}: built {}", berth_agent::DEMO_IMAGE)
            }
            Ok(_) => {}
            Err(e) => crate::say!("{name}: warning: {e}"),
        }
        let agent_dir = args.data.join("agent");
        let mut cfg =
            args.node
                .config(plane.local_url(), args.node_name.clone(), agent_dir.clone());
        if let Some(trust) = &plane.trust {
            let mut id = berth_agent::read_node_id(&agent_dir);
            if id.is_empty() {
                id = berth_trust::token::random_hex(16);
            }
            cfg.tls = Some(trust.local_client(berth_trust::PeerKind::Node, &id)?);
        }
        match berth_agent::spawn(cfg).await {
            Ok(a) => {
                cp::state::metrics::register_with(&plane.metrics, |r| a.register_metrics(r));
                crate::say!(
                    "{name}: local agent (node {}) on the Docker engine",
                    args.node_name
                );
                let id = format!("connect-{}-{}", args.node_name, std::process::id());
                let tls = match &plane.trust {
                    Some(trust) => Some(trust.local_client(berth_trust::PeerKind::Proxy, &id)?),
                    None => None,
                };
                let node = super::connect_proxy::Node::start(
                    a,
                    &plane.local_url(),
                    &id,
                    tls,
                    Some(&args.limits.lb),
                )
                .await;
                Ok(Some(node))
            }
            Err(e) => anyhow::bail!("the local agent cannot start: {e}"),
        }
    }
}

/// How long the in-process agent and proxy get to stop; the control plane then has its own
/// `berth_control_plane::server::DRAIN`.
const LOCAL_DRAIN: Duration = Duration::from_millis(1500);

/// etcd's connection, TLS and auth options, read from the flags and files they name.
fn etcd_options(args: &ServeArgs) -> anyhow::Result<cp::store::EtcdOptions> {
    use anyhow::Context;
    let read = |p: &PathBuf, flag: &str| {
        std::fs::read(p).with_context(|| format!("{flag} {}: cannot read it", p.display()))
    };
    let user = match &args.etcd_user {
        Some(u) => {
            let pw = std::env::var("BERTH_ETCD_PASSWORD")
                .context("--etcd-user: set its password in BERTH_ETCD_PASSWORD")?;
            Some((u.clone(), pw))
        }
        None => None,
    };
    let identity = match (&args.etcd_cert, &args.etcd_key) {
        (Some(c), Some(k)) => Some((read(c, "--etcd-cert")?, read(k, "--etcd-key")?)),
        _ => None,
    };
    Ok(cp::store::EtcdOptions {
        endpoints: args.etcd.clone(),
        prefix: args.etcd_prefix.clone(),
        user,
        ca_pem: args
            .etcd_cacert
            .as_ref()
            .map(|p| read(p, "--etcd-cacert"))
            .transpose()?,
        identity_pem: identity,
        max_txn_ops: args.etcd_max_txn_ops,
    })
}
