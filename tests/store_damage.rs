//! The embedded store against damage and crashes, through a real `berth dev`: a flipped byte
//! in a log segment or a snapshot stops it (file and offset named, the file unchanged) until
//! `berth store repair`; a torn tail loses nothing acknowledged; and `kill -9` while writes and
//! snapshots run loses nothing acknowledged and leaves no gap.

mod common;

use common::berth;
use common::store::{dev_refuses, flip, register, revisions, segments, snapshot, Dev};
use std::collections::BTreeMap;
use std::time::Duration;

/// Registers `n` revisions of `family` one after another: each acknowledged image by revision.
async fn register_n(dev: &Dev, family: &str, n: usize) -> BTreeMap<i32, String> {
    let channel = dev.channel().await;
    let mut acked = BTreeMap::new();
    for i in 0..n {
        let image = format!("img:{i}");
        let r = register(channel.clone(), family, &image)
            .await
            .expect("acknowledged");
        acked.insert(r, image);
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_segment_stops_dev_unchanged_and_repair_keeps_every_record_before_it() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(data.path(), &[]);
    let acked = register_n(&dev, "web", 100).await;
    dev.stop();

    let seg = segments(data.path()).pop().expect("a segment");
    let len = std::fs::metadata(&seg).unwrap().len() as usize;
    let flipped = flip(&seg, len / 2);
    let (code, said) = dev_refuses(data.path());
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains(&seg.display().to_string()),
        "the file is named: {said}"
    );
    assert!(said.contains("at offset "), "the offset is named: {said}");
    assert!(said.contains("the last good revision is"), "{said}");
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        flipped,
        "the segment is unchanged"
    );

    let check = berth(
        "unused",
        &["store", "check", "--data", data.path().to_str().unwrap()],
    );
    assert_eq!(
        check.code,
        Some(1),
        "check fails on damage: {}",
        check.stdout
    );
    assert!(
        check.stderr.contains(&seg.display().to_string()),
        "{}",
        check.stderr
    );

    let dry = berth(
        "unused",
        &["store", "repair", "--data", data.path().to_str().unwrap()],
    );
    assert!(!dry.ok && dry.stderr.contains("--yes"), "{}", dry.stderr);
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        flipped,
        "no cut without --yes"
    );
    let cut = berth(
        "unused",
        &[
            "store",
            "repair",
            "--data",
            data.path().to_str().unwrap(),
            "--yes",
        ],
    );
    assert!(cut.ok, "{}{}", cut.stdout, cut.stderr);
    assert!(
        cut.stdout.contains("records after it (revisions"),
        "{}",
        cut.stdout
    );

    let dev = Dev::start(data.path(), &[]);
    let kept = revisions(dev.channel().await, "web").await;
    let n = kept.len();
    // Every registration before the bad record, and nothing after a gap.
    assert!((30..70).contains(&n), "{n} revisions kept");
    let expected: Vec<(i32, String)> = acked.into_iter().take(n).collect();
    assert_eq!(kept, expected, "revisions 1..={n} exactly as acknowledged");
    eprintln!(
        "flipped byte at {} of {len}: {n} of 100 registrations kept by repair",
        len / 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_snapshot_stops_dev_unchanged() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(data.path(), &[("BERTH_SNAPSHOT_AFTER", "8192")]);
    register_n(&dev, "web", 150).await;
    let snap = common::wait_for(Duration::from_secs(30), "a snapshot", || {
        snapshot(data.path())
    });
    dev.stop();
    let snap = snapshot(data.path()).unwrap_or(snap);
    let len = std::fs::metadata(&snap).unwrap().len() as usize;
    let flipped = flip(&snap, len / 2);
    let (code, said) = dev_refuses(data.path());
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains(&snap.display().to_string()), "{said}");
    assert!(said.contains("at offset "), "{said}");
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        flipped,
        "the snapshot is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_record_after_the_last_acknowledged_write_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(data.path(), &[]);
    let acked = register_n(&dev, "web", 20).await;
    dev.kill9();
    let seg = segments(data.path()).pop().unwrap();
    let mut raw = std::fs::read(&seg).unwrap();
    // A header promising 300 bytes, and 40 of them: a write the crash cut short.
    raw.extend_from_slice(&300u32.to_le_bytes());
    raw.extend_from_slice(&[0xab; 44]);
    std::fs::write(&seg, &raw).unwrap();
    let dev = Dev::start(data.path(), &[]);
    let found: BTreeMap<i32, String> = revisions(dev.channel().await, "web")
        .await
        .into_iter()
        .collect();
    assert_eq!(found, acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_writes_and_snapshots_run_loses_nothing_acknowledged() {
    const ROUNDS: usize = 8;
    let data = tempfile::tempdir().unwrap();
    let env = [("BERTH_SNAPSHOT_AFTER", "16384")];
    let mut acked: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut snapshots = std::collections::BTreeSet::new();
    for round in 0..ROUNDS {
        let mut dev = Dev::start(data.path(), &env);
        let channel = dev.channel().await;
        // Everything acknowledged so far is there, every family without a gap.
        for w in 0..3 {
            let family = format!("fam{w}");
            let found = revisions(channel.clone(), &family).await;
            let revs: Vec<i32> = found.iter().map(|(r, _)| *r).collect();
            assert_eq!(
                revs,
                (1..=revs.len() as i32).collect::<Vec<_>>(),
                "round {round}: {family} has a gap"
            );
            for ((f, r), image) in acked.iter().filter(|((f, _), _)| *f == family) {
                let got = found.iter().find(|(rev, _)| rev == r).map(|(_, i)| i);
                assert_eq!(got, Some(image), "round {round}: {f}:{r} lost");
            }
        }
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let channel = channel.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0.. {
                        let family = format!("fam{w}");
                        let image = format!("img:{round}-{i}");
                        match register(channel.clone(), &family, &image).await {
                            Ok(r) => mine.push(((family, r), image)),
                            Err(_) => break,
                        }
                    }
                    mine
                })
            })
            .collect();
        // Killed at a different moment each round, mid-write.
        tokio::time::sleep(Duration::from_millis(700 + 137 * round as u64)).await;
        snapshots.extend(snapshot(data.path()));
        dev.kill9();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
    }
    let dev = Dev::start(data.path(), &env);
    let channel = dev.channel().await;
    let mut found = BTreeMap::new();
    for w in 0..3 {
        let family = format!("fam{w}");
        for (r, image) in revisions(channel.clone(), &family).await {
            found.insert((family.clone(), r), image);
        }
    }
    let lost = acked
        .iter()
        .filter(|(k, image)| found.get(*k) != Some(*image))
        .count();
    eprintln!(
        "{ROUNDS} kill -9 rounds: {} acknowledged writes, {lost} lost; {} snapshots taken",
        acked.len(),
        snapshots.len()
    );
    assert_eq!(lost, 0);
    assert!(snapshots.len() >= 2, "snapshots taken: {snapshots:?}");
}
