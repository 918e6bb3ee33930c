//! The `Store` contract, checked the same way on the log store, on sled and on a real etcd (Debian's
//! `etcd-server`, started here on free ports in a temp dir and ended when the test ends).

use berth_control_plane::store::{
    Compare, EtcdOptions, EtcdStore, LogStore, Op, SledStore, Store, StoreError, TxnOutcome,
};
use std::time::{Duration, Instant};

mod common;
use common::etcd::Etcd;

fn put(k: &str, v: &[u8]) -> Op {
    Op::Put(k.into(), v.to_vec())
}

/// What every store must do.
fn contract(s: &dyn Store) {
    let r1 = s
        .commit(vec![
            put("a/1", b"one"),
            put("a/2", b"two"),
            put("b/1", b"x"),
        ])
        .unwrap();
    let got = s.get("a/1").unwrap().unwrap();
    assert_eq!(got.value, b"one".to_vec());
    assert_eq!(
        got.mod_revision, r1,
        "a value carries the revision that wrote it"
    );
    let keys: Vec<String> = s.scan("a/").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec!["a/1", "a/2"],
        "a scan is in key order, under its prefix only"
    );

    // A compare on a key that moved on commits nothing.
    let stale = Compare::ModRevision {
        key: "a/1".into(),
        revision: r1,
    };
    assert!(matches!(
        s.txn(std::slice::from_ref(&stale), vec![put("a/1", b"1b")])
            .unwrap(),
        TxnOutcome::Committed(_)
    ));
    assert_eq!(
        s.txn(&[stale], vec![put("a/1", b"1c"), put("c/1", b"")])
            .unwrap(),
        TxnOutcome::Conflict
    );
    assert_eq!(s.get("a/1").unwrap().unwrap().value, b"1b".to_vec());
    assert_eq!(
        s.get("c/1").unwrap(),
        None,
        "a conflicting txn writes none of its ops"
    );

    // Revision 0: the key must not exist.
    let absent = Compare::ModRevision {
        key: "new".into(),
        revision: 0,
    };
    assert!(matches!(
        s.txn(std::slice::from_ref(&absent), vec![put("new", b"")])
            .unwrap(),
        TxnOutcome::Committed(_)
    ));
    assert_eq!(
        s.txn(&[absent], vec![put("new", b"again")]).unwrap(),
        TxnOutcome::Conflict
    );

    // A prefix compare fails on a key written under the prefix after its revision.
    let (_, seen) = s.scan_with_revision("n/").unwrap();
    let guard = Compare::PrefixUnchangedSince {
        prefix: "n/".into(),
        revision: seen,
    };
    assert!(matches!(
        s.txn(std::slice::from_ref(&guard), vec![put("x", b"")])
            .unwrap(),
        TxnOutcome::Committed(_)
    ));
    s.commit(vec![put("n/1", b"")]).unwrap();
    assert_eq!(
        s.txn(&[guard], vec![put("y", b"")]).unwrap(),
        TxnOutcome::Conflict
    );

    // The feed carries each commit's keys and revision, in order, and resumes from one.
    let mut feed = s.subscribe();
    let r = s
        .commit(vec![put("w/1", b""), Op::Delete("b/1".into())])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let change = loop {
        match feed.try_recv() {
            Ok(c) if c.revision == r => break c,
            Ok(_) => {}
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "no change for revision {r} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let mut keys = change.keys.clone();
    keys.sort();
    assert_eq!(keys, vec!["b/1", "w/1"]);
    let since = s.changes_since(r - 1).unwrap();
    assert_eq!(since.last().map(|c| c.revision), Some(r));
    assert!(s.changes_since(r).unwrap().is_empty());
}

#[test]
fn sled_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SledStore::open(dir.path()).unwrap());
}

#[test]
fn the_log_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&LogStore::open(dir.path()).unwrap());
}

#[test]
fn etcd_keeps_the_store_contract() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(EtcdOptions {
        endpoints: vec![etcd.url.clone()],
        prefix: "/contract/".into(),
        ..Default::default()
    })
    .expect("connect to etcd");
    contract(&store);
}

#[test]
fn etcd_splits_a_large_unconditional_batch_and_refuses_a_large_guarded_one() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(EtcdOptions {
        endpoints: vec![etcd.url.clone()],
        prefix: "/big/".into(),
        ..Default::default()
    })
    .expect("connect to etcd");
    let ops: Vec<Op> = (0..300).map(|i| put(&format!("k/{i:04}"), b"v")).collect();
    store
        .commit(ops)
        .expect("an unconditional batch over 128 ops is split");
    assert_eq!(store.scan("k/").unwrap().len(), 300);
    let guarded: Vec<Op> = (0..200).map(|i| put(&format!("g/{i:04}"), b"v")).collect();
    let err = store
        .txn(
            &[Compare::ModRevision {
                key: "g".into(),
                revision: 0,
            }],
            guarded,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(m) if m.contains("over etcd's limit of 128")));
    assert!(
        store.scan("g/").unwrap().is_empty(),
        "nothing of the refused txn landed"
    );
}

#[test]
fn a_lost_etcd_is_a_clear_error() {
    let etcd = Etcd::start();
    let store = EtcdStore::connect(EtcdOptions {
        endpoints: vec![etcd.url.clone()],
        prefix: "/lost/".into(),
        ..Default::default()
    })
    .expect("connect to etcd");
    store.commit(vec![put("a", b"1")]).unwrap();
    drop(etcd);
    let err = store.commit(vec![put("a", b"2")]).unwrap_err();
    assert!(err.to_string().starts_with("store I/O: etcd:"), "{err}");
}
