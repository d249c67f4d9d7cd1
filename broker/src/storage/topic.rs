//! Topic metadata: names, ids, partition counts and configs, persisted in one file with the cluster id.
//!
//! Creating and deleting topics (`LogManager::create_topic`, `delete_topic`) lives here too.
//!
//! `<log_dirs>/topics.json` is the source of truth for which topics exist. It is rewritten atomically
//! (tmp → fsync → rename → fsync dir) on every create and delete, so a crash leaves either the old or the
//! new topic set. The cluster id is generated once, on first start, and kept in the same file: clients
//! (and Kafka tooling) expect it to stay the same across restarts.
//!
//! References: https://kafka.apache.org/documentation/#basic_ops_add_topic (topic naming rules)

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::TopicConfig;
use super::error::{TopicError, MAX_PARTITIONS};
use super::log_manager::{partition_dir, wall_clock_ms, LogManager, DELETE_SUFFIX};
use super::partition_log::{Failure, OpenParams, PartitionLog};
use super::util::{annotate, lock, read, read_optional, sync_dir, write, write_atomic};

pub(crate) const META_FILE: &str = "topics.json";
const VERSION: u32 = 1;
const MAX_NAME_LEN: usize = 249;

#[derive(Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Per-topic overrides with Kafka's dotted names (`retention.ms`, `segment.bytes`, ...).
    pub configs: BTreeMap<String, String>,
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..` (they would
/// name the log directory itself or its parent).
pub(crate) fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |reason: &str| Err(TopicError::InvalidName { name: name.to_owned(), reason: reason.to_owned() });
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return bad(&format!("character {c:?} is not allowed; use ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// Kafka refuses topics whose names differ only in '.' versus '_', because metric names map both to '_'.
pub(crate) fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: uuid::Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaFile {
    version: u32,
    cluster_id: String,
    topics: Vec<TopicRecord>,
}

/// The persisted state: cluster id plus topics.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
}

impl Metadata {
    /// Loads `<dir>/topics.json`, or starts a new cluster (fresh id, no topics) when there is none. An
    /// unreadable file is an error: guessing would silently drop every topic.
    pub fn load_or_init(dir: &Path) -> io::Result<(Self, bool)> {
        let path = dir.join(META_FILE);
        let Some(bytes) = read_optional(&path)? else {
            return Ok((Self { cluster_id: new_cluster_id(), topics: BTreeMap::new() }, true));
        };
        let file: MetaFile = serde_json::from_slice(&bytes).map_err(|e| {
            annotate(io::Error::new(io::ErrorKind::InvalidData, format!("{e}; restore it from a backup")), &path)
        })?;
        if file.version != VERSION {
            let msg = format!("unsupported metadata version {} (this broker reads {VERSION})", file.version);
            return Err(annotate(io::Error::new(io::ErrorKind::InvalidData, msg), &path));
        }
        let topics = file
            .topics
            .into_iter()
            .map(|t| {
                (t.name.clone(), TopicMeta { name: t.name, id: t.id, partitions: t.partitions, configs: t.configs })
            })
            .collect();
        Ok((Self { cluster_id: file.cluster_id, topics }, false))
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(META_FILE);
        let file = MetaFile {
            version: VERSION,
            cluster_id: self.cluster_id.clone(),
            topics: self
                .topics
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions,
                    configs: t.configs.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| annotate(io::Error::other(e), &path))?;
        write_atomic(&path, &bytes)
    }
}

/// Refuses a new topic `name` that exists, or whose name collides with an existing one.
fn check_unused(meta: &Metadata, name: &str) -> Result<(), TopicError> {
    if meta.topics.contains_key(name) {
        return Err(TopicError::AlreadyExists(name.to_owned()));
    }
    if let Some(other) = meta.topics.keys().find(|other| collides(other, name)) {
        let reason =
            format!("collides with existing topic '{other}' ('.' and '_' are interchangeable in metric names)");
        return Err(TopicError::InvalidName { name: name.to_owned(), reason });
    }
    Ok(())
}

impl LogManager {
    /// Every check `create_topic` makes before it writes anything: the name, the partition count, the
    /// configs (resolved over the broker defaults) and the existing topics. Creates nothing; this is
    /// CreateTopics with `validate_only`.
    pub(crate) fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicError> {
        validate_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        let topic_config = TopicConfig::resolve(&self.config, configs)?;
        check_unused(&read(&self.meta), name)?;
        Ok(topic_config)
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, TopicError> {
        let topic_config = self.validate_new_topic(name, partitions, &configs)?;
        let _admin = lock(&self.admin);
        if self.closed.load(Ordering::Acquire) {
            return Err(TopicError::Io(Failure::closed("the log manager is closed").to_io()));
        }
        let mut next = read(&self.meta).clone();
        // Again under the admin lock: another creation may have come in between.
        check_unused(&next, name)?;
        let meta = TopicMeta { name: name.to_owned(), id: uuid::Uuid::new_v4(), partitions, configs };
        let logs = match self.open_partitions(&meta, &topic_config, 0..partitions) {
            Ok(logs) => logs,
            Err(e) => {
                self.remove_partition_dirs(name, 0..partitions);
                return Err(e.into());
            }
        };
        next.topics.insert(name.to_owned(), meta.clone());
        if let Err(e) = next.save(&self.shared.dir) {
            self.remove_partition_dirs(name, 0..partitions);
            return Err(e.into());
        }
        *write(&self.meta) = next;
        write(&self.shared.partitions).insert(name.to_owned(), logs);
        tracing::info!(topic = name, partitions, "created topic");
        Ok(meta)
    }

    /// Opens new, empty partition logs `indexes` of `meta` (all of them for a new topic, the added ones
    /// when a topic grows).
    pub(super) fn open_partitions(
        &self,
        meta: &TopicMeta,
        config: &TopicConfig,
        indexes: std::ops::Range<i32>,
    ) -> io::Result<Vec<Arc<PartitionLog>>> {
        let now_ms = wall_clock_ms();
        indexes
            .map(|p| {
                let dir = partition_dir(&self.shared.dir, &meta.name, p);
                // Leftovers of a topic of the same name whose deletion or creation was interrupted.
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(|e| annotate(e, &dir))?;
                }
                let params = OpenParams {
                    dir,
                    topic: meta.name.clone(),
                    topic_id: meta.id,
                    partition: p,
                    config: *config,
                    clean: true,
                    recovery_point: None,
                    log_start_offset: None,
                    now_ms,
                };
                PartitionLog::open(params, self.queue.clone(), self.data_arrived.clone())
            })
            .collect()
    }

    pub(super) fn remove_partition_dirs(&self, name: &str, indexes: std::ops::Range<i32>) {
        for p in indexes {
            let dir = partition_dir(&self.shared.dir, name, p);
            if let Err(e) = fs::remove_dir_all(&dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove partition directory");
                }
            }
        }
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let _admin = lock(&self.admin);
        let mut next = read(&self.meta).clone();
        let Some(meta) = next.topics.remove(name) else {
            return Err(TopicError::UnknownTopic(name.to_owned()));
        };
        // Metadata first: once it is saved the topic is gone, whatever happens to its files. On a full
        // disk the metadata cannot be written until the topic's files are gone, and deleting a topic is
        // how an operator frees space: then the files go first (a crash in between brings the topic
        // back, empty, and it can be deleted again).
        let saved = match next.save(&self.shared.dir) {
            Err(e) if super::full_disk::is_full(&e) => {
                tracing::warn!(topic = name, error = %e, "disk full: removing the topic's files before its metadata");
                false
            }
            other => other.map(|()| true)?,
        };
        let logs = write(&self.shared.partitions).remove(name).unwrap_or_default();
        for log in &logs {
            log.shut_down(Failure::closed(&format!("topic '{name}' was deleted")));
        }
        if saved {
            *write(&self.meta) = next.clone();
        }
        // Rename, then remove: a crash midway leaves only `*-delete` directories, cleaned at the next open.
        let mut renamed = Vec::new();
        for p in 0..meta.partitions {
            let from = partition_dir(&self.shared.dir, name, p);
            let to = self.shared.dir.join(format!("{name}-{p}.{}{DELETE_SUFFIX}", meta.id.simple()));
            match fs::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(annotate(e, &from).into()),
            }
        }
        sync_dir(&self.shared.dir)?;
        for dir in renamed {
            fs::remove_dir_all(&dir).map_err(|e| annotate(e, &dir))?;
        }
        if !saved {
            next.save(&self.shared.dir)?;
            *write(&self.meta) = next;
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }
}

/// A Kafka-style cluster id: a random UUID in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, sync_append};

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["logs", "nginx_access", "a.b-c_D9", &"x".repeat(249)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "has space", "slash/y", "ü", &"x".repeat(250)] {
            assert!(matches!(validate_name(bad), Err(TopicError::InvalidName { .. })), "{bad:?}");
        }
        assert!(collides("a.b", "a_b"));
        assert!(!collides("a.b", "a.b"));
    }

    #[test]
    fn metadata_round_trips_with_a_stable_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, fresh) = Metadata::load_or_init(dir.path()).unwrap();
        assert!(fresh);
        assert_eq!(m.cluster_id.len(), 22);
        let t = TopicMeta {
            name: "logs".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 3,
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
        };
        m.topics.insert(t.name.clone(), t.clone());
        m.save(dir.path()).unwrap();
        let (again, fresh) = Metadata::load_or_init(dir.path()).unwrap();
        assert!(!fresh);
        assert_eq!(again.cluster_id, m.cluster_id);
        assert_eq!(again.topics["logs"], t);
    }

    #[test]
    fn corrupt_metadata_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), b"garbage").unwrap();
        let e = Metadata::load_or_init(dir.path()).unwrap_err();
        assert!(e.to_string().contains(META_FILE), "{e}");
    }

    #[test]
    fn create_validates_like_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        for name in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(
                matches!(mgr.create_topic(name, 1, BTreeMap::new()), Err(TopicError::InvalidName { .. })),
                "{name:?}"
            );
        }
        for n in [0, -1, MAX_PARTITIONS + 1] {
            assert!(
                matches!(mgr.create_topic("t", n, BTreeMap::new()), Err(TopicError::InvalidPartitions(p)) if p == n)
            );
        }
        let bad = mgr.create_topic("t", 1, configs(&[("segment.bytes", "lots")]));
        assert!(matches!(bad, Err(TopicError::InvalidConfig { key, .. }) if key == "segment.bytes"));
        assert!(mgr.topics().is_empty(), "failed creates leave nothing behind");
        mgr.create_topic("a.b", 1, BTreeMap::new()).unwrap();
        assert!(matches!(mgr.create_topic("a.b", 1, BTreeMap::new()), Err(TopicError::AlreadyExists(_))));
        assert!(matches!(mgr.create_topic("a_b", 1, BTreeMap::new()), Err(TopicError::InvalidName { .. })));
        assert!(matches!(mgr.delete_topic("missing"), Err(TopicError::UnknownTopic(_))));
    }

    #[tokio::test]
    async fn delete_removes_data_and_a_new_topic_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        mgr.create_topic("t", 2, BTreeMap::new()).unwrap();
        let old = mgr.partition("t", 1).unwrap();
        sync_append(&old, &TestBatch::new(3).build());
        let pending = old.append(&TestBatch::new(1).build(), 0).unwrap();
        mgr.delete_topic("t").unwrap();
        assert!(old.wait_durable(pending.last_offset).await.is_err(), "waiters of a deleted topic are released");
        assert!(old.append(&TestBatch::new(1).build(), 0).is_err());
        assert!(mgr.topic("t").is_none() && mgr.partition("t", 0).is_none());
        assert!(!dir.path().join("t-0").exists() && !dir.path().join("t-1").exists());
        let fresh = mgr.create_topic("t", 1, BTreeMap::new()).unwrap();
        assert_eq!(mgr.partition("t", 0).unwrap().log_end_offset(), 0);
        drop(mgr);
        let mgr = manager(config_with(dir.path(), |_| {}));
        assert_eq!(mgr.topics(), vec![fresh]);
    }
}
