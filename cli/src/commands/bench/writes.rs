//! `berth bench writes`: write latency of the control plane on its embedded store and on a three-member etcd,
//! in one run — RegisterTaskDefinition and UpdateService over real gRPC, each acknowledged only
//! once durable (the embedded store's log synced; etcd committed by a quorum). The etcd members are this host's
//! `etcd`, on loopback, in a temp dir, ended when the bench ends.

use crate::output::{self, Format, Table};
use anyhow::Context;
use berth_control_plane as cp;
use berth_proto::v1::clusters_client::ClustersClient;
use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::*;
use serde::Serialize;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct BenchWritesArgs {
    /// Writes of each kind on each store.
    #[arg(long, default_value_t = 200)]
    pub writes: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    store: String,
    call: String,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
}

/// Three etcd members on loopback, ended one PID at a time when dropped (their data with them).
struct Members {
    children: Vec<Child>,
    _data: tempfile::TempDir,
}

impl Drop for Members {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn etcd_members() -> anyhow::Result<(Members, Vec<String>)> {
    let dir = tempfile::tempdir()?;
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((port()?, port()?)))
        .collect::<anyhow::Result<_>>()?;
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for (i, (c, p)) in ports.iter().enumerate() {
        let url = format!("http://127.0.0.1:{c}");
        let child = Command::new("etcd")
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(dir.path().join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{p}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{p}"),
            ])
            .args([
                "--initial-cluster",
                &cluster,
                "--initial-cluster-state",
                "new",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (Debian: apt-get install etcd-server)")?;
        children.push(child);
        urls.push(url);
    }
    Ok((
        Members {
            children,
            _data: dir,
        },
        urls,
    ))
}

async fn plane(
    etcd: Option<Vec<String>>,
    dir: &std::path::Path,
) -> anyhow::Result<cp::ControlPlane> {
    let any = "127.0.0.1:0".parse()?;
    let mut config = cp::Config::new(dir.to_path_buf(), any, any);
    config.etcd = etcd.map(|endpoints| cp::store::EtcdOptions {
        endpoints,
        prefix: "/bench/".into(),
        ..Default::default()
    });
    Ok(cp::spawn(config).await?)
}

/// Milliseconds of each call, sorted.
async fn measure(url: &str, writes: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect()
        .await?;
    ClustersClient::new(channel.clone())
        .create_cluster(CreateClusterRequest {
            cluster_name: "bench".into(),
        })
        .await?;
    let mut defs = TaskDefinitionsClient::new(channel.clone());
    let def = || TaskDefinition {
        family: "bench".into(),
        container_definitions: vec![ContainerDefinition {
            name: "web".into(),
            image: "berth-demo:latest".into(),
            memory: 16,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut register = Vec::with_capacity(writes);
    for _ in 0..writes {
        let started = Instant::now();
        defs.register_task_definition(RegisterTaskDefinitionRequest {
            task_definition: Some(def()),
            ..Default::default()
        })
        .await?;
        register.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut services = ServicesClient::new(channel);
    services
        .create_service(CreateServiceRequest {
            cluster: "bench".into(),
            service_name: "web".into(),
            task_definition: "bench".into(),
            desired_count: 0,
            ..Default::default()
        })
        .await?;
    let mut update = Vec::with_capacity(writes);
    for i in 0..writes {
        let started = Instant::now();
        services
            .update_service(UpdateServiceRequest {
                cluster: "bench".into(),
                service: "web".into(),
                health_check_grace_period_seconds: Some((i % 2) as i32),
                ..Default::default()
            })
            .await?;
        update.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    register.sort_by(f64::total_cmp);
    update.sort_by(f64::total_cmp);
    Ok((register, update))
}

fn row(store: &str, call: &str, ms: &[f64]) -> Row {
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Row {
        store: store.into(),
        call: call.into(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
    }
}

pub async fn run(args: BenchWritesArgs, format: Format) -> anyhow::Result<()> {
    let writes = args.writes.max(10);
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    eprintln!("bench writes: the embedded store, {writes} of each call…");
    let embedded = plane(None, &dir.path().join("embedded")).await?;
    let (reg, upd) = measure(&embedded.local_url(), writes).await?;
    embedded.shutdown().await;
    rows.push(row("embedded", "RegisterTaskDefinition", &reg));
    rows.push(row("embedded", "UpdateService", &upd));
    eprintln!("bench writes: etcd (3 members on loopback), {writes} of each call…");
    let (members, urls) = etcd_members()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let plane_etcd = loop {
        match plane(Some(urls.clone()), &dir.path().join("etcd")).await {
            Ok(p) => break p,
            Err(e) if Instant::now() > deadline => return Err(e.context("etcd did not come up")),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    let (reg, upd) = measure(&plane_etcd.local_url(), writes).await?;
    plane_etcd.shutdown().await;
    drop(members);
    rows.push(row("etcd x3", "RegisterTaskDefinition", &reg));
    rows.push(row("etcd x3", "UpdateService", &upd));
    if format == Format::Json {
        return output::json(&serde_json::json!({ "writes": writes, "rows": rows }));
    }
    let mut t = Table::new(&["STORE", "CALL", "P50 MS", "P99 MS", "MEAN MS"]);
    for r in &rows {
        t.row(vec![
            r.store.clone(),
            r.call.clone(),
            format!("{:.2}", r.p50_ms),
            format!("{:.2}", r.p99_ms),
            format!("{:.2}", r.mean_ms),
        ]);
    }
    t.print();
    for call in ["RegisterTaskDefinition", "UpdateService"] {
        let p50 = |s: &str| {
            rows.iter()
                .find(|r| r.store.starts_with(s) && r.call == call)
                .map_or(0.0, |r| r.p50_ms)
        };
        crate::outln!(
            "{call}: etcd/embedded p50 {:.2}x",
            p50("etcd") / p50("embedded").max(0.001)
        );
    }
    Ok(())
}
