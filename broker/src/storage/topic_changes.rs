//! Changing an existing topic: more partitions (CreatePartitions), new configs (AlterConfigs and
//! IncrementalAlterConfigs) and a moved log start (DeleteRecords). Like creation, each change is
//! serialized by the manager's admin lock and persisted in `topics.json` (or the log-start checkpoint)
//! before it is visible.
//!
//! References: KIP-195 (CreatePartitions), KIP-339 (IncrementalAlterConfigs), KIP-107 (DeleteRecords).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::config::TopicConfig;
use super::error::TopicError;
use super::log_manager::LogManager;
use super::partition_log::{Failure, PartitionLog};
use super::topic::TopicMeta;
use super::util::{lock, read, write};

/// Why DeleteRecords did not move a partition's log start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeleteRecordsError {
    #[error("offset {offset} is past the high watermark {high_watermark}")]
    OffsetOutOfRange { offset: i64, high_watermark: i64 },
}

impl LogManager {
    /// Grows `name` to `partitions` partitions; new ones start empty with the topic's configs.
    pub fn create_partitions(&self, name: &str, partitions: i32, validate_only: bool) -> Result<TopicMeta, TopicError> {
        let _admin = lock(&self.admin);
        self.check_open()?;
        let mut next = read(&self.meta).clone();
        let Some(meta) = next.topics.get(name).cloned() else {
            return Err(TopicError::UnknownTopic(name.to_owned()));
        };
        if partitions <= meta.partitions {
            return Err(TopicError::CannotShrink {
                topic: name.to_owned(),
                current: meta.partitions,
                requested: partitions,
            });
        }
        if partitions > super::error::MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        let grown = TopicMeta { partitions, ..meta.clone() };
        if validate_only {
            return Ok(grown);
        }
        let config = TopicConfig::resolve(&self.config, &meta.configs)?;
        let added = meta.partitions..partitions;
        let opened = match self.open_partitions(&grown, &config, added.clone()) {
            Ok(logs) => logs,
            Err(e) => {
                self.remove_partition_dirs(name, added);
                return Err(e.into());
            }
        };
        next.topics.insert(name.to_owned(), grown.clone());
        if let Err(e) = next.save(&self.shared.dir) {
            self.remove_partition_dirs(name, added);
            return Err(e.into());
        }
        *write(&self.meta) = next;
        write(&self.shared.partitions).entry(name.to_owned()).or_default().extend(opened);
        tracing::info!(topic = name, from = meta.partitions, to = partitions, "added partitions");
        Ok(grown)
    }

    /// Replaces the topic's configs with `configs` (validated as at creation) and applies them to every
    /// partition at once. Returns the previous configs.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, TopicError> {
        let config = TopicConfig::resolve(&self.config, &configs)?;
        let _admin = lock(&self.admin);
        self.check_open()?;
        let mut next = read(&self.meta).clone();
        let Some(meta) = next.topics.get_mut(name) else {
            return Err(TopicError::UnknownTopic(name.to_owned()));
        };
        if validate_only {
            return Ok(meta.configs.clone());
        }
        let previous = std::mem::replace(&mut meta.configs, configs);
        next.save(&self.shared.dir)?;
        *write(&self.meta) = next;
        for log in read(&self.shared.partitions).get(name).into_iter().flatten() {
            log.set_config(config);
        }
        tracing::info!(topic = name, "altered topic configs");
        Ok(previous)
    }

    /// Moves the log start of one partition to `offset` (-1: the high watermark), as
    /// `kafka-delete-records` asks; returns the new log start (Kafka's "low watermark"). Segments wholly
    /// below it go at the next retention round; reads below it are out of range at once.
    pub fn delete_records(&self, log: &PartitionLog, offset: i64) -> Result<i64, DeleteRecordsError> {
        let high_watermark = log.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(DeleteRecordsError::OffsetOutOfRange { offset, high_watermark });
        }
        let start = log.advance_log_start(target);
        if let Err(e) = self.shared.write_log_start_checkpoint() {
            tracing::error!(error = %e, "cannot persist the log start after DeleteRecords; it is kept in memory");
        }
        Ok(start)
    }

    fn check_open(&self) -> Result<(), TopicError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TopicError::Io(Failure::closed("the log manager is closed").to_io()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, partition, sync_append};

    #[test]
    fn grown_altered_and_trimmed_topics_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), |_| {});
        {
            let mgr = manager(config.clone());
            let log = partition(&mgr, "t", &[]);
            for _ in 0..5 {
                sync_append(&log, &TestBatch::new(1).build());
            }
            assert!(matches!(mgr.create_partitions("t", 1, false), Err(TopicError::CannotShrink { current: 1, .. })));
            assert_eq!(mgr.create_partitions("t", 3, true).unwrap().partitions, 3);
            assert!(mgr.partition("t", 1).is_none(), "validate_only changes nothing");
            assert_eq!(mgr.create_partitions("t", 3, false).unwrap().partitions, 3);
            assert_eq!(mgr.partition("t", 2).unwrap().high_watermark(), 0);

            let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
            mgr.alter_topic_configs("t", configs, false).unwrap();
            assert_eq!(mgr.partition("t", 2).unwrap().config().retention_ms, 1000, "applied to every partition");
            let bad = BTreeMap::from([("retention.mss".to_string(), "1".to_string())]);
            assert!(matches!(mgr.alter_topic_configs("t", bad, false), Err(TopicError::InvalidConfig { .. })));

            assert_eq!(mgr.delete_records(&log, 3), Ok(3));
            assert_eq!(mgr.delete_records(&log, 1), Ok(3), "the log start never moves back");
            assert_eq!(
                mgr.delete_records(&log, 9),
                Err(DeleteRecordsError::OffsetOutOfRange { offset: 9, high_watermark: 5 })
            );
            mgr.close().unwrap();
        }
        let mgr = manager(config);
        assert_eq!(mgr.topic("t").unwrap().partitions, 3);
        assert_eq!(mgr.topic("t").unwrap().configs["retention.ms"], "1000");
        assert_eq!(mgr.partition("t", 0).unwrap().log_start_offset(), 3);
        assert_eq!(mgr.partition("t", 0).unwrap().config().retention_ms, 1000);
    }
}
