//! Idempotent-producer state of one partition: the epoch and the last five batches of each producer id.
//!
//! An idempotent producer numbers its records per partition. When a produce times out it resends the same
//! batch; the broker must recognise the retry and answer with the offsets of the first copy instead of
//! appending it twice. Kafka keeps the last five batches per producer because a producer has at most five
//! requests in flight (`max.in.flight.requests.per.connection` ≤ 5 with idempotence).
//!
//! The state is loaded at start from the snapshot written at a clean shutdown. After a crash it is the
//! snapshot written at the last segment roll plus the batch headers after it (`producer_snapshot.rs`),
//! so retries of batches written just before a roll are still recognised. Without any snapshot only the
//! active segment is replayed: a producer whose batches only live in older segments is then "unknown";
//! its next batch is accepted with any sequence and tracking starts again.
//!
//! References: KIP-98 (https://cwiki.apache.org/confluence/display/KAFKA/KIP-98+-+Exactly+Once+Delivery+and+Transactional+Messaging)

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::batch::{increment_sequence, BatchHeader};
use super::error::AppendError;
use super::util::{annotate, read_optional, write_atomic};

/// Batches remembered per producer, as in Kafka.
const CACHED_BATCHES: usize = 5;
/// Producers silent this long are forgotten (Kafka's `producer.id.expiration.ms` default, one day), so
/// state does not grow with every producer that ever connected.
pub(crate) const PRODUCER_EXPIRATION_MS: i64 = 86_400_000;
pub(crate) const SNAPSHOT_FILE: &str = "producer-state.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's maxTimestamp as stored (the broker's stamp under LogAppendTime); -1 in snapshots
    /// written before it was recorded.
    #[serde(default = "no_timestamp")]
    pub max_timestamp: i64,
}

fn no_timestamp() -> i64 {
    -1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub last_append_ms: i64,
}

/// What to do with one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    Append,
    /// A retry of a batch already in the log, at these offsets, stored with this maxTimestamp.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
    },
}

/// Changes for the batches of one request, applied only once the whole request is written.
pub(crate) type Staged = HashMap<i64, ProducerEntry>;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
}

fn tracked(h: &BatchHeader) -> bool {
    // Plain producers send producerId -1; a batch without a sequence carries nothing to deduplicate.
    h.producer_id >= 0 && h.base_sequence >= 0
}

impl ProducerStateMap {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Decides whether `h` is appended, is a retry, or is rejected; `staged` holds the effect of earlier
    /// batches of the same request.
    pub fn check(&self, staged: &Staged, h: &BatchHeader) -> Result<SeqCheck, AppendError> {
        if !tracked(h) {
            return Ok(SeqCheck::Append);
        }
        let pid = h.producer_id;
        let Some(entry) = staged.get(&pid).or_else(|| self.producers.get(&pid)) else {
            return Ok(SeqCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: pid,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch starts a new sequence space.
            if h.base_sequence != 0 {
                return Err(AppendError::OutOfOrderSequence { producer_id: pid, expected: 0, got: h.base_sequence });
            }
            return Ok(SeqCheck::Append);
        }
        let last_seq = h.last_sequence();
        if let Some(b) = entry.batches.iter().find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq) {
            let (base_offset, last_offset, max_timestamp) = (b.base_offset, b.last_offset, b.max_timestamp);
            return Ok(SeqCheck::Duplicate { base_offset, last_offset, max_timestamp });
        }
        let expected = entry.batches.back().map_or(h.base_sequence, |b| increment_sequence(b.last_seq, 1));
        if h.base_sequence != expected {
            return Err(AppendError::OutOfOrderSequence { producer_id: pid, expected, got: h.base_sequence });
        }
        Ok(SeqCheck::Append)
    }

    /// Records that `h` will be appended at `[base_offset, last_offset]` with `max_timestamp` stored.
    pub fn stage(&self, staged: &mut Staged, h: &BatchHeader, offsets: (i64, i64), max_timestamp: i64, now_ms: i64) {
        if !tracked(h) {
            return;
        }
        let entry = staged.entry(h.producer_id).or_insert_with(|| {
            self.producers.get(&h.producer_id).cloned().unwrap_or(ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
            })
        });
        observe(entry, h, offsets, max_timestamp, now_ms);
    }

    pub fn commit(&mut self, staged: Staged) {
        self.producers.extend(staged);
    }

    /// Replays a batch found in the log at start.
    pub fn replay(&mut self, h: &BatchHeader, now_ms: i64) {
        if !tracked(h) {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_append_ms: now_ms,
        });
        observe(entry, h, (h.base_offset, h.last_offset()), h.max_timestamp, now_ms);
    }

    /// Forgets producers idle for longer than [`PRODUCER_EXPIRATION_MS`]; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| now_ms - e.last_append_ms <= PRODUCER_EXPIRATION_MS);
        before - self.producers.len()
    }

    /// Writes the snapshot used at the next clean start instead of a scan.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join(SNAPSHOT_FILE);
        write_atomic(&path, &self.to_json(&path)?)
    }

    /// The snapshot's bytes; `path` only names the file in an error.
    pub fn to_json(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| annotate(std::io::Error::other(e), path))
    }

    /// Loads the clean-shutdown snapshot; None when there is none or it cannot be parsed.
    pub fn load(dir: &Path) -> std::io::Result<Option<Self>> {
        Self::load_file(&dir.join(SNAPSHOT_FILE))
    }

    /// Loads a snapshot file; None when there is none or it cannot be parsed (a torn write cannot parse:
    /// JSON ends with a closing brace).
    pub fn load_file(path: &Path) -> std::io::Result<Option<Self>> {
        let Some(bytes) = read_optional(path)? else { return Ok(None) };
        match serde_json::from_slice(&bytes) {
            Ok(state) => Ok(Some(state)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable producer state snapshot");
                Ok(None)
            }
        }
    }
}

fn observe(entry: &mut ProducerEntry, h: &BatchHeader, offsets: (i64, i64), max_timestamp: i64, now_ms: i64) {
    if h.producer_epoch != entry.epoch {
        entry.epoch = h.producer_epoch;
        entry.batches.clear();
    }
    entry.batches.push_back(BatchMetadata {
        first_seq: h.base_sequence,
        last_seq: h.last_sequence(),
        base_offset: offsets.0,
        last_offset: offsets.1,
        max_timestamp,
    });
    while entry.batches.len() > CACHED_BATCHES {
        entry.batches.pop_front();
    }
    entry.last_append_ms = entry.last_append_ms.max(now_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::TestBatch;

    fn header(records: i32, pid: i64, epoch: i16, seq: i32) -> BatchHeader {
        BatchHeader::parse(&TestBatch::new(records).producer(pid, epoch, seq).build()).unwrap()
    }

    /// Checks and, if accepted, commits a batch at `offset`.
    fn apply(state: &mut ProducerStateMap, h: &BatchHeader, offset: i64) -> Result<SeqCheck, AppendError> {
        let mut staged = Staged::new();
        let r = state.check(&staged, h)?;
        if r == SeqCheck::Append {
            state.stage(&mut staged, h, (offset, offset + i64::from(h.last_offset_delta)), h.max_timestamp, 0);
            state.commit(staged);
        }
        Ok(r)
    }

    #[test]
    fn in_order_sequences_append_and_retries_are_duplicates() {
        let mut s = ProducerStateMap::default();
        assert_eq!(apply(&mut s, &header(3, 1, 0, 0), 0).unwrap(), SeqCheck::Append);
        assert_eq!(apply(&mut s, &header(2, 1, 0, 3), 3).unwrap(), SeqCheck::Append);
        let retry = header(3, 1, 0, 0);
        assert_eq!(
            apply(&mut s, &retry, 9).unwrap(),
            SeqCheck::Duplicate { base_offset: 0, last_offset: 2, max_timestamp: retry.max_timestamp }
        );
        assert!(matches!(
            apply(&mut s, &header(1, 1, 0, 7), 5),
            Err(AppendError::OutOfOrderSequence { producer_id: 1, expected: 5, got: 7 })
        ));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStateMap::default();
        apply(&mut s, &header(1, 1, 3, 0), 0).unwrap();
        assert!(matches!(
            apply(&mut s, &header(1, 1, 2, 1), 1),
            Err(AppendError::InvalidProducerEpoch { current: 3, .. })
        ));
        assert!(matches!(
            apply(&mut s, &header(1, 1, 4, 5), 1),
            Err(AppendError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(apply(&mut s, &header(1, 1, 4, 0), 1).unwrap(), SeqCheck::Append);
        assert_eq!(apply(&mut s, &header(1, 1, 4, 1), 2).unwrap(), SeqCheck::Append);
    }

    #[test]
    fn unknown_producers_start_anywhere_and_sequences_wrap() {
        let mut s = ProducerStateMap::default();
        assert_eq!(apply(&mut s, &header(2, 9, 0, i32::MAX - 1), 0).unwrap(), SeqCheck::Append);
        assert_eq!(apply(&mut s, &header(1, 9, 0, 0), 2).unwrap(), SeqCheck::Append);
        assert_eq!(apply(&mut s, &header(1, -1, -1, -1), 3).unwrap(), SeqCheck::Append);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStateMap::default();
        for i in 0..7 {
            apply(&mut s, &header(1, 1, 0, i), i64::from(i)).unwrap();
        }
        assert!(matches!(apply(&mut s, &header(1, 1, 0, 2), 9).unwrap(), SeqCheck::Duplicate { base_offset: 2, .. }));
        assert!(apply(&mut s, &header(1, 1, 0, 1), 9).is_err());
    }

    #[test]
    fn snapshot_round_trips_and_expiry_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateMap::default();
        s.replay(&header(1, 5, 0, 0), 1_000);
        s.save(dir.path()).unwrap();
        let mut loaded = ProducerStateMap::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.producers, s.producers);
        assert_eq!(loaded.expire(1_000 + PRODUCER_EXPIRATION_MS + 1), 1);
    }

    #[test]
    fn snapshots_without_batch_timestamps_still_load() {
        let json = r#"{"first_seq":0,"last_seq":1,"base_offset":4,"last_offset":5}"#;
        assert_eq!(serde_json::from_str::<BatchMetadata>(json).unwrap().max_timestamp, -1);
    }
}
