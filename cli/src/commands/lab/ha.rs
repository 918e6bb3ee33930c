//! `berth lab up --ha`: three etcd members (this host's `etcd`, imported offline as an image) and
//! three servers on them, one of which leads; agents and the proxy know all three.

use super::engine::Member;
use super::{free_port, GRPC, HTTP};
use std::path::Path;

pub const ETCD_CLIENT: u16 = 2379;
const ETCD_PEER: u16 = 2380;
pub const MEMBERS: usize = 3;

/// The etcd members, each with its data under `dir/etcd-N`.
pub fn etcd_members(net: &str, dir: &Path) -> anyhow::Result<Vec<Member>> {
    let name = |i: usize| format!("{net}-etcd-{i}");
    let cluster = (1..=MEMBERS)
        .map(|i| format!("etcd-{i}=http://{}:{ETCD_PEER}", name(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = Vec::new();
    for i in 1..=MEMBERS {
        let data = dir.join(format!("etcd-{i}"));
        std::fs::create_dir_all(&data)?;
        out.push(Member {
            name: name(i),
            role: "etcd",
            args: vec![
                "--name".into(),
                format!("etcd-{i}"),
                "--data-dir".into(),
                "/data".into(),
                "--listen-client-urls".into(),
                format!("http://0.0.0.0:{ETCD_CLIENT}"),
                "--advertise-client-urls".into(),
                format!("http://{}:{ETCD_CLIENT}", name(i)),
                "--listen-peer-urls".into(),
                format!("http://0.0.0.0:{ETCD_PEER}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://{}:{ETCD_PEER}", name(i)),
                "--initial-cluster".into(),
                cluster.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                net.to_string(),
            ],
            binds: vec![(data.display().to_string(), "/data".into())],
            // Reached on the lab network only.
            published: vec![],
        });
    }
    Ok(out)
}

/// The etcd client URLs on the lab network.
pub fn etcd_urls(net: &str) -> String {
    (1..=MEMBERS)
        .map(|i| format!("http://{net}-etcd-{i}:{ETCD_CLIENT}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The servers' names: `NET-cp-1` … `NET-cp-3`.
pub fn server_names(net: &str) -> Vec<String> {
    (1..=MEMBERS).map(|i| format!("{net}-cp-{i}")).collect()
}

/// What agents and the proxy are given: every server.
pub fn server_urls(net: &str) -> String {
    server_names(net)
        .iter()
        .map(|n| format!("https://{n}:{GRPC}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The flags that put a lab server on the lab's etcd.
pub fn server_flags(net: &str, me: &str) -> Vec<String> {
    vec![
        "--etcd".into(),
        etcd_urls(net),
        "--advertise".into(),
        format!("https://{me}:{GRPC}"),
        "--leader-ttl".into(),
        "3s".into(),
    ]
}

/// The ports a server publishes.
pub fn server_ports() -> anyhow::Result<Vec<(u16, u16)>> {
    Ok(vec![(GRPC, free_port()?), (HTTP, free_port()?)])
}
