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
