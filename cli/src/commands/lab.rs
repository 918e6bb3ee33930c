//! `berth lab up|down`: a whole Berth cluster on this Docker engine, from nothing — one control
//! plane, N agent hosts and one proxy, each a container with its own address on a private
//! network — for trying multi-node Berth and for the fault tests.
//!
//! The agents share this engine through its socket (this engine refuses privileged containers,
//! so there is no Docker-in-Docker): each runs its tasks on the lab network (`--task-network`),
//! where every task has its own address, as `awsvpc` gives each ECS task its own ENI.

mod engine;
mod ha;

use crate::output::{self, Format, Table};
use anyhow::Context;
use engine::{Engine, Member};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build the images, start the lab's containers, and (unless --no-demo) a demo service of
    /// 3 behind the proxy; prints where to reach them.
    Up(UpArgs),
    /// Remove the lab's containers, the tasks its agents started, and its network.
    Down(NameArgs),
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The lab's name; containers are named berth-NAME-cp, berth-NAME-agent-N, berth-NAME-proxy.
    #[arg(long, default_value = "lab")]
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub lab: NameArgs,
    /// Agent hosts to start.
    #[arg(long, default_value_t = 3)]
    pub agents: u8,
    /// Where the containers keep their data (mounted into them) [default: ./berth-lab/NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Listener ports of the proxy to publish on 127.0.0.1 (repeatable).
    #[arg(long = "lb-port", default_values_t = [8080u16])]
    pub lb_ports: Vec<u16>,
    /// A node disconnected this long is lost and its tasks are replaced.
    #[arg(long, default_value = "5s")]
    pub lost_node_timeout: String,
    /// Do not create the demo service.
    #[arg(long)]
    pub no_demo: bool,
    /// Three etcd members and three servers on them (one leads) instead of one server on its embedded store.
    #[arg(long)]
    pub ha: bool,
}

/// What `lab up` started, for people and (`-o json`) for programs such as the fault tests.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabInfo {
    pub name: String,
    pub network: String,
    /// The control plane's gRPC address on this host (`--server`): every server's, with --ha.
    pub server: String,
    /// Its HTTP address (console, health, metrics).
    pub http: String,
    /// The cluster CA clients verify the server with (`--ca`, `BERTH_CA`).
    pub ca: String,
    /// The admin token's file (`BERTH_TOKEN=$(cat FILE)`).
    pub admin_token_file: String,
    pub data_dir: String,
    /// listener port → address on this host
    pub listeners: Vec<Listener>,
    pub members: Vec<MemberInfo>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub port: u16,
    pub address: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    pub container: String,
    pub role: String,
    pub address: String,
}

const GRPC: u16 = 7070;
const HTTP: u16 = 7080;
const PROXY_HTTP: u16 = 7081;

pub async fn run(cmd: LabCommand, format: Format) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Up(args) => up(args, format).await,
        LabCommand::Down(args) => down(args).await,
    }
}

fn prefix(name: &str) -> String {
    format!("berth-{name}")
}

async fn engine(name: &str) -> anyhow::Result<Engine> {
    let rt = berth_agent::runtime::DockerRuntime::connect().await?;
    Ok(Engine::new(rt.client().clone(), name))
}

async fn down(args: NameArgs) -> anyhow::Result<()> {
    let engine = engine(&args.name).await?;
    let removed = engine.remove_all(&prefix(&args.name)).await?;
    eprintln!(
        "lab {}: removed {removed} containers and the network",
        args.name
    );
    Ok(())
}

/// A free port on 127.0.0.1, never one this process handed out before (a port is released
/// before Docker binds it, so the OS could offer it twice).
fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        let port = l.local_addr()?.port();
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
}

fn progress(name: &str, line: &str) {
    eprintln!("lab {name}: {line}");
}

async fn up(args: UpArgs, format: Format) -> anyhow::Result<()> {
    let name = args.lab.name.clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        anyhow::bail!("--name {name:?}: use letters, digits and '-'");
    }
    if !(1..=9).contains(&args.agents) {
        anyhow::bail!("--agents {}: choose 1 to 9", args.agents);
    }
    let net = prefix(&name);
    let engine = engine(&name).await?;
    if !engine.members().await?.is_empty() {
        anyhow::bail!("lab {name} is already up; `berth lab down --name {name}` removes it");
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("berth-lab").join(&name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;

    let mut images = vec![
        (
            berth_agent::BERTH_IMAGE,
            berth_agent::ensure_berth_image().await?,
        ),
        (
            berth_agent::DEMO_IMAGE,
            berth_agent::ensure_demo_image().await?,
        ),
    ];
    if args.ha {
        images.push((
            berth_agent::ETCD_IMAGE,
            berth_agent::ensure_etcd_image().await?,
        ));
    }
    for (image, outcome) in images {
        if outcome == berth_agent::runtime::image::ImageOutcome::Built {
            progress(&name, &format!("built {image}"));
        }
    }
    engine.create_network(&net).await?;
    let members = plan(&args, &net, &dir)?;
    // etcd, then the first server (it writes the CA and join token the others present), then
    // the other servers, then agents and the proxy.
    let (stores, rest): (Vec<&Member>, Vec<&Member>) =
        members.iter().partition(|m| m.role == "etcd");
    let (servers, rest): (Vec<&Member>, Vec<&Member>) =
        rest.into_iter().partition(|m| m.role == "control-plane");
    let (first, others) = servers.split_first().expect("the plan has a control plane");
    if let Err(e) = start_all(&engine, &stores, &net, &name).await {
        let _ = engine.remove_all(&net).await;
        return Err(e);
    }
    if let Err(e) = start_all(&engine, &[*first], &net, &name).await {
        let _ = engine.remove_all(&net).await;
        return Err(e);
    }
    let info = describe(&engine, &name, &net, &dir, &members).await;
    let ready = async {
        wait_control_plane(&info).await?;
        start_all(&engine, others, &net, &name).await?;
        start_all(&engine, &rest, &net, &name).await?;
        wait_agents(&info, args.agents).await
    };
    if let Err(e) = ready.await {
        anyhow::bail!("{e:#}\n(the lab stays up for inspection: `docker logs {net}-cp`; `berth lab down --name {name}` removes it)");
    }
    progress(&name, &format!("{} agents connected", args.agents));
    // Every member has its address now.
    let info = describe(&engine, &name, &net, &dir, &members).await;
    if !args.no_demo {
        demo(&info).await?;
    }
    match format {
        Format::Json => output::json(&info)?,
        Format::Table => print(&info),
    }
    Ok(())
}

fn plan(args: &UpArgs, net: &str, dir: &Path) -> anyhow::Result<Vec<Member>> {
    let names = if args.ha {
        ha::server_names(net)
    } else {
        vec![format!("{net}-cp")]
    };
    let cp = names[0].clone();
    let server = if args.ha {
        ha::server_urls(net)
    } else {
        format!("https://{cp}:{GRPC}")
    };
    let join = ["--join-token-file", "/cp/join.token"].map(String::from);
    let data = |sub: &str| -> anyhow::Result<String> {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        Ok(d.display().to_string())
    };
    let cp_dir = data("cp")?;
    let mut members = if args.ha {
        ha::etcd_members(net, dir)?
    } else {
        Vec::new()
    };
    for (i, me) in names.iter().enumerate() {
        let me_dir = if i == 0 {
            cp_dir.clone()
        } else {
            data(&format!("cp-{}", i + 1))?
        };
        members.push(server_member(args, me, me_dir)?);
    }
    for i in 1..=args.agents {
        let host = format!("{net}-agent-{i}");
        members.push(Member {
            name: host.clone(),
            role: "agent",
            args: [
                "agent",
                "--server",
                &server,
                "--name",
                &format!("agent-{i}"),
                "--data",
                "/data",
                "--task-network",
                net,
                "--advertise-addr",
                &host,
                "--attribute",
                &format!("zone=zone-{i}"),
                "--stop-timeout",
                "10s",
            ]
            .map(String::from)
            .into_iter()
            .chain(join.clone())
            .collect(),
            binds: vec![
                (cp_dir.clone(), "/cp:ro".into()),
                (data(&format!("agent-{i}"))?, "/data".into()),
                (docker_socket(), "/var/run/docker.sock".into()),
            ],
            published: vec![],
        });
    }
    let mut published = vec![(PROXY_HTTP, free_port()?)];
    for p in &args.lb_ports {
        published.push((*p, free_port()?));
    }
    members.push(Member {
        name: format!("{net}-proxy"),
        role: "proxy",
        args: [
            "proxy",
            "--server",
            &server,
            "--bind",
            "0.0.0.0",
            "--http",
            &format!("0.0.0.0:{PROXY_HTTP}"),
            "--id",
            &format!("{net}-proxy"),
            "--data",
            "/data",
        ]
        .map(String::from)
        .into_iter()
        .chain(join)
        .collect(),
        binds: vec![(cp_dir, "/cp:ro".into()), (data("proxy")?, "/data".into())],
        published,
    });
    Ok(members)
}

/// One server: on the embedded store in its data directory, or (--ha) on the lab's etcd.
fn server_member(args: &UpArgs, me: &str, data_dir: String) -> anyhow::Result<Member> {
    let mut flags: Vec<String> = [
        "server",
        "--data",
        "/data",
        "--listen",
        &format!("0.0.0.0:{GRPC}"),
        "--http",
        &format!("0.0.0.0:{HTTP}"),
        // Published on the host's loopback only, for the console and the health wait.
        "--http-insecure",
        "--no-proxy",
        "--heartbeat",
        "1s",
        "--heartbeat-timeout",
        "3s",
        "--lost-node-timeout",
        &args.lost_node_timeout,
        "--tls-san",
        me,
    ]
    .map(String::from)
    .to_vec();
    if args.ha {
        let net = me.rsplit_once("-cp-").map_or(me, |(n, _)| n);
        flags.extend(ha::server_flags(net, me));
    }
    Ok(Member {
        name: me.to_string(),
        role: "control-plane",
        args: flags,
        binds: vec![(data_dir, "/data".into())],
        published: ha::server_ports()?,
    })
}

/// The engine's socket on this host, which the agents mount.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

async fn start_all(
    engine: &Engine,
    members: &[&Member],
    net: &str,
    name: &str,
) -> anyhow::Result<()> {
    for m in members {
        let image = if m.role == "etcd" {
            berth_agent::ETCD_IMAGE
        } else {
            berth_agent::BERTH_IMAGE
        };
        engine.start(m, net, image).await?;
        progress(name, &format!("started {} ({})", m.name, m.role));
    }
    Ok(())
}

async fn describe(
    engine: &Engine,
    name: &str,
    net: &str,
    dir: &Path,
    members: &[Member],
) -> LabInfo {
    let published = |m: &Member, inside: u16| {
        m.published
            .iter()
            .find(|p| p.0 == inside)
            .map(|p| format!("127.0.0.1:{}", p.1))
            .unwrap_or_default()
    };
    let servers: Vec<&Member> = members
        .iter()
        .filter(|m| m.role == "control-plane")
        .collect();
    let cp = servers[0];
    let proxy = members.last().expect("the plan has a proxy");
    let mut infos = Vec::new();
    for m in members {
        infos.push(MemberInfo {
            container: m.name.clone(),
            role: m.role.to_string(),
            address: engine.address(&m.name, net).await.unwrap_or_default(),
        });
    }
    LabInfo {
        name: name.to_string(),
        network: net.to_string(),
        server: servers
            .iter()
            .map(|m| format!("https://{}", published(m, GRPC)))
            .collect::<Vec<_>>()
            .join(","),
        http: format!("http://{}", published(cp, HTTP)),
        ca: dir.join("cp/ca.crt").display().to_string(),
        admin_token_file: dir.join("cp/admin.token").display().to_string(),
        data_dir: dir.display().to_string(),
        listeners: proxy
            .published
            .iter()
            .filter(|p| p.0 != PROXY_HTTP)
            .map(|p| Listener {
                port: p.0,
                address: format!("127.0.0.1:{}", p.1),
            })
            .collect(),
        members: infos,
    }
}

/// Waits for the control plane to answer on its HTTP port and to have written its credentials.
async fn wait_control_plane(info: &LabInfo) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = format!("{}/healthz", info.http);
    loop {
        let written = Path::new(&info.admin_token_file).exists();
        if written && super::demo::check(&health).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the control plane did not answer {health} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for every agent to connect.
async fn wait_agents(info: &LabInfo, agents: u8) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connected = connected_nodes(info).unwrap_or(0);
        if connected >= usize::from(agents) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{connected} of {agents} agents connected within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn connected_nodes(info: &LabInfo) -> anyhow::Result<usize> {
    let out = client(info, &["node", "list", "-o", "json"])
        .stderr(std::process::Stdio::null())
        .output()?;
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(nodes["containerInstances"].as_array().map_or(0, |ns| {
        ns.iter().filter(|n| n["agentConnected"] == true).count()
    }))
}

/// Registers the demo task definition and a service of 3 behind the first listener, waits for
/// it, and checks it answers through the proxy.
async fn demo(info: &LabInfo) -> anyhow::Result<()> {
    let listener = info
        .listeners
        .first()
        .context("the demo service needs a listener: keep one --lb-port")?;
    let file = Path::new(&info.data_dir).join("web.json");
    std::fs::write(&file, include_str!("../../../deploy/examples/web.json"))?;
    let file = file.display().to_string();
    let port = listener.port.to_string();
    berth(info, &["taskdef", "register", "--file", &file])?;
    berth(
        info,
        &[
            "service",
            "create",
            "--name",
            "web",
            "--taskdef",
            "web",
            "--desired",
            "3",
            "--strategy",
            "spread:attribute:zone",
            "--lb-port",
            &port,
            "--lb-container",
            "web:80",
            "--health-path",
            "/health",
            "--wait",
            "--timeout",
            "120s",
        ],
    )?;
    let url = format!("http://{}/", listener.address);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = super::demo::check(&url).await {
        if Instant::now() > deadline {
            anyhow::bail!("the demo service does not answer at {url}: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    progress(&info.name, &format!("service web answers at {url}"));
    Ok(())
}

/// This very binary as a client of the lab: its server, CA and admin token.
fn client(info: &LabInfo, args: &[&str]) -> std::process::Command {
    let token = std::fs::read_to_string(&info.admin_token_file).unwrap_or_default();
    let mut cmd = std::process::Command::new(
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth")),
    );
    cmd.arg("--server")
        .arg(&info.server)
        .args(args)
        .env("BERTH_CA", &info.ca)
        .env("BERTH_TOKEN", token.trim())
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs a client command, its output going to the user as progress.
fn berth(info: &LabInfo, args: &[&str]) -> anyhow::Result<()> {
    let status = client(info, args)
        // Progress, not the result: stdout stays for `lab up`'s own output.
        .stdout(std::io::stderr())
        .stderr(std::process::Stdio::inherit())
        .status()?;
    if !status.success() {
        anyhow::bail!("`berth {}` failed", args.join(" "));
    }
    Ok(())
}

fn print(info: &LabInfo) {
    let mut t = Table::new(&["CONTAINER", "ROLE", "ADDRESS"]);
    for m in &info.members {
        t.row(vec![m.container.clone(), m.role.clone(), m.address.clone()]);
    }
    t.print();
    crate::outln!();
    crate::outln!("control plane: {}, console {}/", info.server, info.http);
    crate::outln!(
        "as its admin: export BERTH_SERVER={} BERTH_CA={} BERTH_TOKEN=$(cat {})",
        info.server,
        info.ca,
        info.admin_token_file
    );
    for l in &info.listeners {
        crate::outln!("proxy listener {}: http://{}/", l.port, l.address);
    }
    crate::outln!("data: {}", info.data_dir);
    crate::outln!("remove it all: berth lab down --name {}", info.name);
}
