//! Changing an existing topic: more partitions (CreatePartitions), new configs (AlterConfigs and
//! IncrementalAlterConfigs) and a moved log start (DeleteRecords). Like creation, each change is
//! serialized by the manager's admin lock and persisted in `topics.json` (or the log-start checkpoint)
//! before it is visible.
//!
//! References: KIP-195 (CreatePartitions), KIP-339 (IncrementalAlterConfigs), KIP-107 (DeleteRecords).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::config::TopicConfig;
use super::error::TopicError;
use super::log_manager::{partition_dir, wall_clock_ms, LogManager};
use super::partition_log::{Failure, OpenParams, PartitionLog};
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
        let now_ms = wall_clock_ms();
        let mut opened: Vec<Arc<PartitionLog>> = Vec::new();
        for p in meta.partitions..partitions {
            let dir = partition_dir(&self.shared.dir, name, p);
            let params = OpenParams {
                dir,
                topic: name.to_owned(),
                topic_id: meta.id,
                partition: p,
                config,
                clean: true,
                recovery_point: None,
                log_start_offset: None,
                now_ms,
            };
            match PartitionLog::open(params, self.queue.clone(), self.data_arrived.clone()) {
                Ok(log) => opened.push(log),
                Err(e) => {
                    self.remove_new_partitions(&opened);
                    return Err(e.into());
                }
            }
        }
        next.topics.insert(name.to_owned(), grown.clone());
        if let Err(e) = next.save(&self.shared.dir) {
            self.remove_new_partitions(&opened);
            return Err(e.into());
        }
        *write(&self.meta) = next;
        write(&self.shared.partitions).entry(name.to_owned()).or_default().extend(opened);
        tracing::info!(topic = name, from = meta.partitions, to = partitions, "added partitions");
        Ok(grown)
    }

    fn remove_new_partitions(&self, opened: &[Arc<PartitionLog>]) {
        for log in opened {
            log.shut_down(Failure::closed("partition creation was rolled back"));
            let _ = std::fs::remove_dir_all(log.dir());
        }
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
