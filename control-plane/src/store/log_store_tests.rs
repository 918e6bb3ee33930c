use super::*;

fn put(k: &str, v: &[u8]) -> Op {
    Op::Put(k.into(), v.to_vec())
}

fn all(s: &LogStore) -> Vec<(String, Vec<u8>, u64)> {
    s.scan("")
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.value, v.mod_revision))
        .collect()
}

fn newest_segment(dir: &Path) -> PathBuf {
    let files = wal::list(dir).unwrap();
    wal::segment(dir, *files.segments.last().unwrap())
}

#[test]
fn a_committed_batch_is_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let r2 = {
        let s = LogStore::open(dir.path()).unwrap();
        s.commit(vec![
            put("a/1", b"one"),
            put("a/2", b"two"),
            put("b/1", b"x"),
        ])
        .unwrap();
        s.commit(vec![Op::Delete("a/2".into())]).unwrap()
    };
    let s = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        all(&s),
        vec![
            ("a/1".to_string(), b"one".to_vec(), 2),
            ("b/1".to_string(), b"x".to_vec(), 2)
        ]
    );
    assert_eq!(s.revision().unwrap(), r2, "the revision survives a reopen");
    assert_eq!(s.get("a/2").unwrap(), None);
}

#[test]
fn a_second_process_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _s = LogStore::open(dir.path()).unwrap();
    let e = LogStore::open(dir.path()).err().expect("refused");
    assert!(e.to_string().contains("in use"), "{e}");
}

#[test]
fn a_record_torn_by_a_crash_is_cut_and_the_log_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path()).unwrap();
        s.commit(vec![put("k/1", b"kept")]).unwrap();
        s.commit(vec![put("k/2", b"torn")]).unwrap();
    }
    // The second record loses its last bytes, as a crash mid-write leaves it.
    let seg = newest_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    {
        let s = LogStore::open(dir.path()).unwrap();
        assert_eq!(s.get("k/1").unwrap().unwrap().value, b"kept".to_vec());
        assert_eq!(
            s.get("k/2").unwrap(),
            None,
            "a torn batch is not half-applied"
        );
        s.commit(vec![put("k/3", b"after")]).unwrap();
    }
    let s = LogStore::open(dir.path()).unwrap();
    let keys: Vec<String> = all(&s).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(keys, vec!["k/1", "k/3"], "writes after the cut survive");
}

#[test]
fn a_snapshot_taken_while_commits_go_on_reopens_to_the_exact_state() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let s = Arc::new(LogStore::open(dir.path()).unwrap());
        for i in 0..5000 {
            s.commit(vec![put(&format!("t/{i:05}"), &[1; 64])]).unwrap();
        }
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..3000u32 {
                    // Rewrites, deletes and new keys, racing the copy.
                    let k = format!("t/{:05}", (i * 7) % 6000);
                    if i % 3 == 0 {
                        s.commit(vec![Op::Delete(k)]).unwrap();
                    } else {
                        s.commit(vec![put(&k, &i.to_le_bytes())]).unwrap();
                    }
                }
            })
        };
        s.snapshot_now().unwrap();
        writer.join().unwrap();
        let files = wal::list(dir.path()).unwrap();
        assert!(files.snapshot.is_some());
        assert!(
            files
                .segments
                .iter()
                .all(|seg| *seg >= files.snapshot.unwrap()),
            "segments before the snapshot are gone: {files:?}"
        );
        (all(&s), s.revision().unwrap())
    };
    let s = LogStore::open(dir.path()).unwrap();
    assert_eq!((all(&s), s.revision().unwrap()), expected);
}

#[test]
fn compares_hold_on_revisions_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let s = LogStore::open(dir.path()).unwrap();
    let r1 = s.commit(vec![put("node/a/1", b"")]).unwrap();
    let stale = Compare::ModRevision {
        key: "node/a/1".into(),
        revision: r1,
    };
    let guard = Compare::PrefixUnchangedSince {
        prefix: "node/a/".into(),
        revision: r1,
    };
    assert!(matches!(
        s.txn(&[stale.clone(), guard.clone()], vec![put("x", b"")])
            .unwrap(),
        TxnOutcome::Committed(_)
    ));
    s.commit(vec![put("node/a/2", b"")]).unwrap();
    assert_eq!(
        s.txn(&[guard], vec![put("y", b"")]).unwrap(),
        TxnOutcome::Conflict
    );
    s.commit(vec![put("node/a/1", b"again")]).unwrap();
    assert_eq!(
        s.txn(&[stale], vec![put("y", b"")]).unwrap(),
        TxnOutcome::Conflict
    );
    assert_eq!(s.get("y").unwrap(), None, "a conflict writes nothing");
}

#[test]
fn grouped_commits_from_many_threads_reach_the_feed_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(LogStore::open(dir.path()).unwrap());
    let mut feed = s.subscribe();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| s.commit(vec![put(&format!("w{w}/{i}"), b"v")]).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut acked: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(acked.len(), 400);
    let mut sent = Vec::new();
    while let Ok(c) = feed.try_recv() {
        sent.push(c.revision);
    }
    assert_eq!(sent, acked, "each change once, oldest first");
    assert_eq!(s.changes_since(acked[398]).unwrap().len(), 1);
}

#[test]
fn a_scan_wider_than_a_slice_sees_every_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = LogStore::open(dir.path()).unwrap();
    let n = SLICE * 2 + 17;
    let ops = (0..n).map(|i| put(&format!("s/{i:06}"), b"")).collect();
    s.commit(ops).unwrap();
    s.commit(vec![put("t/0", b"")]).unwrap();
    let mut seen = Vec::new();
    s.scan_each("s/", &mut |k, _| {
        seen.push(k.to_string());
        true
    })
    .unwrap();
    assert_eq!(seen.len(), n);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let mut first = 0;
    s.scan_each("s/", &mut |_, _| {
        first += 1;
        first < 5
    })
    .unwrap();
    assert_eq!(first, 5, "a scan stops when asked");
}

#[test]
fn a_data_directory_on_sled_is_carried_over_with_its_revisions() {
    let data = tempfile::tempdir().unwrap();
    let (r1, r2) = {
        let sled = super::super::SledStore::open(&data.path().join("store")).unwrap();
        let r1 = sled.commit(vec![put("a/1", b"one")]).unwrap();
        let r2 = sled
            .commit(vec![put("a/2", b"two"), put("b/1", b"other")])
            .unwrap();
        (r1, r2)
    };
    // sled lets go of its directory a moment after the handle is dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let s = loop {
        match LogStore::open_in(data.path()) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        all(&s),
        vec![
            ("a/1".to_string(), b"one".to_vec(), r1),
            ("a/2".to_string(), b"two".to_vec(), r2),
            ("b/1".to_string(), b"other".to_vec(), r2),
        ]
    );
    assert_eq!(s.revision().unwrap(), r2);
    let r3 = s.commit(vec![Op::Delete("a/1".into())]).unwrap();
    assert_eq!(r3, r2 + 1, "revisions go on from sled's");
    drop(s);
    // Carried over once: the log store's own state is what opens next time.
    let s = LogStore::open_in(data.path()).unwrap();
    assert_eq!(s.get("a/1").unwrap(), None);
    assert_eq!(s.revision().unwrap(), r3);
}

#[test]
fn a_snapshot_and_the_log_after_it_load_as_the_writes_left_them() {
    use super::log_open::Loader;
    use crate::store::record::Rec;
    use crate::store::wal::Entry;
    let put = |k: &str, v: &str, r: u64| Entry::Put(Rec::new(k, v.as_bytes(), r));
    let mut loader = Loader::default();
    // A snapshot, in key order, in two records.
    loader.apply(vec![put("a", "1", 1), put("b", "1", 1)]);
    loader.apply(vec![put("c", "1", 1), put("e", "1", 1)]);
    // The log: a key written again, a delete, a new key between and after, a key written
    // twice, and a key deleted then written again.
    loader.apply(vec![put("b", "2", 2), Entry::Delete("c".into())]);
    loader.apply(vec![put("d", "3", 3), put("f", "3", 3), put("d", "4", 4)]);
    loader.apply(vec![Entry::Delete("a".into()), put("a", "5", 5)]);
    loader.apply(vec![Entry::Delete("zz".into())]);
    let got: Vec<(String, String, u64)> = loader
        .finish()
        .ordered()
        .iter()
        .map(|r| {
            let v = String::from_utf8(r.value().to_vec()).unwrap();
            (r.key().to_string(), v, r.revision())
        })
        .collect();
    let want = [
        ("a", "5", 5),
        ("b", "2", 2),
        ("d", "4", 4),
        ("e", "1", 1),
        ("f", "3", 3),
    ];
    let want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(k, v, r)| (k.to_string(), v.to_string(), *r))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_lent_read_sees_what_a_copied_read_sees() {
    let dir = tempfile::tempdir().unwrap();
    let s = LogStore::open(dir.path()).unwrap();
    let r = s.commit(vec![put("k/1", b"one")]).unwrap();
    let mut seen = None;
    assert!(s
        .get_with("k/1", &mut |v, at| seen = Some((v.to_vec(), at)))
        .unwrap());
    assert_eq!(seen, Some((b"one".to_vec(), r)));
    let got = s.get("k/1").unwrap().unwrap();
    assert_eq!((got.value, got.mod_revision), (b"one".to_vec(), r));
    assert!(!s
        .get_with("k/2", &mut |_, _| panic!("no such key"))
        .unwrap());
}
