//! Offset store tests on real files: durability without a close, torn and corrupt tails, compaction at
//! open and at run time (alongside concurrent commits, and when it fails), expiry, topic deletion, and
//! refusing a file that is not an offsets file.

use super::*;

fn offset(offset: i64, ts: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 3,
        metadata: format!("meta-{offset}"),
        commit_timestamp_ms: ts,
        expire_timestamp_ms: None,
    }
}

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn data_file(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[tokio::test]
async fn acknowledged_commits_survive_drop_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    let s1 = store.commit("g1", &[(tp("logs", 0), offset(10, 1)), (tp("logs", 1), offset(20, 1))]).unwrap();
    let s2 = store.commit("g1", &[(tp("logs", 0), offset(11, 2))]).unwrap();
    let s3 = store.commit("g2", &[(tp("other", 0), offset(5, 3))]).unwrap();
    store.put_meta("g1", &GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: Some(7) }).unwrap();
    // Group commit: all three waits share fsyncs and all succeed.
    let (a, b, c) = tokio::join!(store.wait_durable(s1), store.wait_durable(s2), store.wait_durable(s3));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    drop(store); // no close()

    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g1", &tp("logs", 0)), Some(offset(11, 2)));
    assert_eq!(store.get("g1", &tp("logs", 1)), Some(offset(20, 1)));
    assert_eq!(store.get("g2", &tp("other", 0)), Some(offset(5, 3)));
    assert_eq!(store.meta("g1"), Some(GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: Some(7) }));
    let mut groups = store.groups();
    groups.sort();
    assert_eq!(groups, vec!["g1", "g2"]);
}

#[test]
fn torn_tail_is_dropped_and_later_commits_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
    store.commit("g", &[(tp("t", 0), offset(2, 2)), (tp("t", 1), offset(9, 2))]).unwrap();
    drop(store);

    // Tear the last frame in half, as a crash during write would.
    let path = data_file(dir.path());
    let len = fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);

    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)), "the torn commit is not applied");
    assert_eq!(store.get("g", &tp("t", 1)), None, "a torn frame is dropped as a whole");
    // Writes after the recovery must not sit behind garbage.
    store.commit("g", &[(tp("t", 1), offset(3, 3))]).unwrap();
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)));
    assert_eq!(store.get("g", &tp("t", 1)), Some(offset(3, 3)));
}

#[test]
fn corrupt_frame_and_everything_after_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
    let before = store.file_len();
    store.commit("g", &[(tp("t", 0), offset(2, 2))]).unwrap();
    store.commit("g", &[(tp("t", 0), offset(3, 3))]).unwrap();
    drop(store);

    let path = data_file(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    // Flip a payload byte of the second frame: its CRC no longer matches.
    bytes[before as usize + 12] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)));

    // Garbage that is not even a frame header is also just a tail.
    drop(store);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0xff; 5]).unwrap();
    drop(f);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)));
}

#[test]
fn compaction_keeps_latest_values_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open_with(dir.path(), 1024).unwrap();
    for i in 0..500 {
        store.commit("g", &[(tp("t", 0), offset(i, i)), (tp("t", 1), offset(i * 2, i))]).unwrap();
    }
    store.commit("gone", &[(tp("t", 0), offset(1, 1))]).unwrap();
    store.delete_group("gone").unwrap();
    store.commit("partial", &[(tp("t", 0), offset(1, 1)), (tp("t", 1), offset(1, 1))]).unwrap();
    store.delete("partial", &[tp("t", 1)]).unwrap();
    assert!(store.needs_compaction());
    let big = store.file_len();
    store.compact().unwrap();
    assert!(store.file_len() < big / 50, "{} vs {big}", store.file_len());
    assert!(!store.needs_compaction());
    // Appends continue in the new file.
    store.commit("g", &[(tp("t", 2), offset(7, 7))]).unwrap();
    drop(store);

    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(499, 499)));
    assert_eq!(store.get("g", &tp("t", 1)), Some(offset(998, 499)));
    assert_eq!(store.get("g", &tp("t", 2)), Some(offset(7, 7)));
    assert!(!store.has_offsets("gone"));
    assert_eq!(store.get("partial", &tp("t", 0)), Some(offset(1, 1)));
    assert_eq!(store.get("partial", &tp("t", 1)), None);
    assert!(!dir.path().join(TMP_NAME).exists());
}

#[test]
fn open_compacts_and_forgets_meta_of_groups_without_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    for i in 0..100 {
        store.commit("g", &[(tp("t", 0), offset(i, i))]).unwrap();
    }
    store.put_meta("lonely", &GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: None }).unwrap();
    let big = store.file_len();
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert!(store.file_len() < big / 10);
    assert_eq!(store.meta("lonely"), None);
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(99, 99)));
}

#[test]
fn runtime_compaction_keeps_meta_written_before_the_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    let active = GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: None };
    store.put_meta("g", &active).unwrap();
    store.compact().unwrap();
    store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.meta("g"), Some(active));
}

#[test]
fn expire_deletes_matching_offsets_durably() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    store.commit("g", &[(tp("a", 0), offset(1, 100)), (tp("b", 0), offset(1, 200))]).unwrap();
    assert_eq!(store.expire("g", |_, c| c.commit_timestamp_ms < 150).unwrap(), 1);
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("a", 0)), None);
    assert!(store.get("g", &tp("b", 0)).is_some());
}

#[test]
fn commits_proceed_and_are_kept_while_compaction_rewrites_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open_with(dir.path(), 1024).unwrap();
    for i in 0..300 {
        store.commit("g", &[(tp("t", 0), offset(i, i))]).unwrap();
    }
    store.commit("gone", &[(tp("t", 0), offset(1, 1))]).unwrap();
    assert!(store.needs_compaction());
    let meta = GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: Some(9) };
    store
        .compact_with(|step| match step {
            1 => {
                // The snapshot is being written without the state lock: commits, deletions and their
                // acknowledgement (fsync of the old file) all go through.
                assert!(store.inner.try_lock().is_ok(), "state lock held during the rewrite");
                let seq = store.commit("g", &[(tp("t", 0), offset(1000, 1000))]).unwrap();
                store.delete_group("gone").unwrap();
                store.wait_durable_blocking(seq).unwrap();
                assert!(store.synced_seq.load(Ordering::Acquire) >= seq);
            }
            2 => {
                // After the catch-up: still accepted, just not acknowledged until the swap is durable.
                assert!(store.inner.try_lock().is_ok());
                store.commit("g", &[(tp("t", 1), offset(5, 5))]).unwrap();
                store.put_meta("g", &meta).unwrap();
            }
            _ => unreachable!(),
        })
        .unwrap();
    assert_eq!(store.synced_seq.load(Ordering::Acquire), store.lock().written_seq, "the swap synced everything");
    assert!(store.lock().capture.is_none());
    assert!(!store.needs_compaction());
    let live = store.file_len();
    assert_eq!(live, fs::metadata(data_file(dir.path())).unwrap().len(), "tracked length matches the file");
    store.commit("g", &[(tp("t", 2), offset(7, 7))]).unwrap();
    drop(store);

    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1000, 1000)));
    assert_eq!(store.get("g", &tp("t", 1)), Some(offset(5, 5)));
    assert_eq!(store.get("g", &tp("t", 2)), Some(offset(7, 7)));
    assert!(!store.has_offsets("gone"));
    assert_eq!(store.meta("g"), Some(meta));
}

#[test]
fn concurrent_commits_and_compactions_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open_with(dir.path(), 0).unwrap();
    std::thread::scope(|s| {
        for w in 0..2 {
            let store = &store;
            s.spawn(move || {
                for i in 0..400 {
                    let seq = store.commit(&format!("g{w}"), &[(tp("t", i % 3), offset(i64::from(i), 1))]).unwrap();
                    if i % 50 == 0 {
                        store.wait_durable_blocking(seq).unwrap();
                    }
                }
            });
        }
        s.spawn(|| {
            for _ in 0..20 {
                store.compact().unwrap();
            }
        });
    });
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    for w in 0..2 {
        for p in 0..3 {
            let last = (0..400).filter(|i| i % 3 == p).max().unwrap();
            assert_eq!(store.get(&format!("g{w}"), &tp("t", p)), Some(offset(i64::from(last), 1)));
        }
    }
}

#[test]
fn failed_compaction_leaves_the_store_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
    // Something in the way of the temp file: the rewrite fails before touching the live file.
    fs::create_dir(dir.path().join(TMP_NAME)).unwrap();
    fs::write(dir.path().join(TMP_NAME).join("x"), b"x").unwrap();
    assert!(store.compact().is_err());
    assert!(store.lock().capture.is_none(), "no frame capture left running");
    let seq = store.commit("g", &[(tp("t", 0), offset(2, 2))]).unwrap();
    store.wait_durable_blocking(seq).unwrap();
    fs::remove_dir_all(dir.path().join(TMP_NAME)).unwrap();
    store.compact().unwrap();
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("g", &tp("t", 0)), Some(offset(2, 2)));
}

#[test]
fn delete_topic_removes_every_groups_offsets_durably() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    let three = [(tp("t", 0), offset(1, 1)), (tp("t", 1), offset(1, 1)), (tp("u", 0), offset(1, 1))];
    store.commit("a", &three).unwrap();
    store.commit("b", &[(tp("t", 0), offset(2, 2))]).unwrap();
    store.commit("c", &[(tp("u", 0), offset(3, 3))]).unwrap();
    let (mut groups, deleted, seq) = store.delete_topic("t").unwrap();
    groups.sort();
    assert_eq!((groups, deleted), (vec!["a".to_owned(), "b".to_owned()], 3));
    store.wait_durable_blocking(seq).unwrap();
    assert_eq!(store.delete_topic("t").unwrap(), (vec![], 0, 0), "nothing left to delete");
    drop(store);
    let store = OffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.get("a", &tp("t", 0)), None);
    assert_eq!(store.get("a", &tp("t", 1)), None);
    assert_eq!(store.get("a", &tp("u", 0)), Some(offset(1, 1)));
    assert!(!store.has_offsets("b"));
    assert_eq!(store.get("c", &tp("u", 0)), Some(offset(3, 3)));
}

#[test]
fn close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = OffsetStore::open(dir.path()).unwrap();
    store.close().unwrap();
    store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
    store.close().unwrap();
    store.close().unwrap();
    assert_eq!(store.synced_seq.load(Ordering::Acquire), 1);
}

#[test]
fn foreign_file_is_refused_not_discarded() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(data_file(dir.path()), b"something else entirely").unwrap();
    assert!(OffsetStore::open(dir.path()).is_err());
}
