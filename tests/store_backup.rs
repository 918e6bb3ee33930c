//! Backups: `berth operator snapshot save` under write load, `inspect`, `restore` into a new
//! data directory, and `berth dev` on it serving every write acknowledged before the save
//! began.

mod common;

use common::berth;
use common::store::{register, revisions, Dev};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_saved_under_write_load_restores_every_write_acknowledged_before_it() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let channel = dev.channel().await;
    let made = berth(&dev.grpc, &["cluster", "create", "prod"]);
    assert!(made.ok, "{}", made.stderr);
    let acked: Arc<Mutex<BTreeSet<(String, i32, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (channel, acked, stop) = (channel.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let family = format!("fam{w}");
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Acquire) {
                        break;
                    }
                    let image = format!("img:{i}");
                    let r = register(channel.clone(), &family, &image).await.unwrap();
                    acked.lock().unwrap().insert((family.clone(), r, image));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = acked.lock().unwrap().clone();
    let backup = data.path().join("nightly.snap");
    let (server, file) = (dev.grpc.clone(), backup.to_str().unwrap().to_string());
    let saved = tokio::task::spawn_blocking(move || {
        berth(
            &server,
            &["operator", "snapshot", "save", &file, "-o", "json"],
        )
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    for w in writers {
        w.await.unwrap();
    }
    assert!(saved.ok, "{}", saved.stderr);
    let saved = saved.json();
    let inspected = berth(
        "unused",
        &[
            "operator",
            "snapshot",
            "inspect",
            backup.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(inspected.ok, "{}", inspected.stderr);
    let inspected = inspected.json();
    assert_eq!(saved, inspected, "save and inspect agree");
    assert!(inspected["checksum"]
        .as_str()
        .unwrap()
        .starts_with("crc32:"));

    let restored = tempfile::tempdir().unwrap();
    let r = berth(
        "unused",
        &[
            "operator",
            "snapshot",
            "restore",
            backup.to_str().unwrap(),
            "--data",
            restored.path().to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json(), inspected, "restore reports what inspect does");
    let check = berth(
        "unused",
        &[
            "store",
            "check",
            "--data",
            restored.path().to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(check.ok, "{}", check.stderr);
    assert_eq!(
        check.json()["snapshot"],
        inspected,
        "the restored store is the snapshot"
    );

    let again = berth(
        "unused",
        &[
            "operator",
            "snapshot",
            "restore",
            backup.to_str().unwrap(),
            "--data",
            restored.path().to_str().unwrap(),
        ],
    );
    assert!(
        !again.ok && again.stderr.contains("already holds a store"),
        "{}",
        again.stderr
    );

    let dev2 = Dev::start(restored.path(), &[]);
    let channel2 = dev2.channel().await;
    let mut found = BTreeSet::new();
    for w in 0..3 {
        let family = format!("fam{w}");
        for (r, image) in revisions(channel2.clone(), &family).await {
            found.insert((family.clone(), r, image));
        }
    }
    let missing: Vec<_> = before.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged before the save are missing: {missing:?}",
        missing.len()
    );
    let cluster = berth(&dev2.grpc, &["cluster", "describe", "prod", "-o", "json"]);
    assert!(cluster.ok, "{}", cluster.stderr);
    eprintln!(
        "saved at revision {} with {} keys while writing: {} registrations acknowledged before the save, {} restored",
        inspected["revision"],
        inspected["keys"],
        before.len(),
        found.len()
    );
    drop(dev);
}

#[test]
fn an_etcd_store_saved_with_the_admin_token_restores_into_an_empty_prefix() {
    let etcd = common::etcd::Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let source = common::ServerProcess::start_with(
        "server",
        &dir.path().join("s1"),
        &["--no-proxy", "--etcd", &etcd.url],
    );
    assert!(berth(&source.grpc, &["cluster", "create", "prod"]).ok);
    let td = dir.path().join("web.json");
    std::fs::write(
        &td,
        r#"{"family":"web","containerDefinitions":[{"name":"c","image":"img:1"}]}"#,
    )
    .unwrap();
    let r = berth(
        &source.grpc,
        &["taskdef", "register", "-f", td.to_str().unwrap()],
    );
    assert!(r.ok, "{}", r.stderr);

    // Only the admin token may take a copy of everything.
    let r = berth(&source.grpc, &["token", "create", "--read-only"]);
    assert!(r.ok, "{}", r.stderr);
    let read_only = r.stdout.lines().last().unwrap().trim().to_string();
    let ca = dir.path().join("s1").join("ca.crt");
    let backup = dir.path().join("etcd.snap");
    let file = backup.to_str().unwrap();
    let refused = common::berth_with(
        &source.grpc,
        &[
            ("BERTH_TOKEN", &read_only),
            ("BERTH_CA", ca.to_str().unwrap()),
        ],
        &["operator", "snapshot", "save", file],
    );
    assert!(
        !refused.ok && refused.stderr.contains("admin"),
        "{}",
        refused.stderr
    );
    assert!(!backup.exists());

    let saved = berth(
        &source.grpc,
        &["operator", "snapshot", "save", file, "-o", "json"],
    );
    assert!(saved.ok, "{}", saved.stderr);
    let restore = |prefix: &str| {
        berth(
            "unused",
            &[
                "operator",
                "snapshot",
                "restore",
                file,
                "--etcd",
                &etcd.url,
                "--etcd-prefix",
                prefix,
                "-o",
                "json",
            ],
        )
    };
    let r = restore("/restored/");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json()["keys"], saved.json()["keys"]);
    let again = restore("/restored/");
    assert!(
        !again.ok && again.stderr.contains("already holds keys"),
        "{}",
        again.stderr
    );

    let restored = common::ServerProcess::start_with(
        "server",
        &dir.path().join("s2"),
        &[
            "--no-proxy",
            "--insecure",
            "--etcd",
            &etcd.url,
            "--etcd-prefix",
            "/restored/",
        ],
    );
    let c = berth(&restored.grpc, &["cluster", "describe", "prod"]);
    assert!(c.ok, "{}", c.stderr);
    let t = berth(
        &restored.grpc,
        &["taskdef", "describe", "web", "-o", "json"],
    );
    assert!(
        t.ok && t.stdout.contains("img:1"),
        "{}{}",
        t.stdout,
        t.stderr
    );
}
