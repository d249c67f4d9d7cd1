//! Which offsets may be committed. Batches finish out of order (several bulk requests are in flight), but
//! a partition's committed offset may only move past an event once it and every event before it in that
//! partition are safe: indexed, answered 409, or written to the dead-letter topic.
//!
//! Each dispatched batch registers, per partition it holds, the last offset it covers. A partition's
//! entries form a queue in offset order; when the oldest entries are done, the offset after the last of
//! them becomes committable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Identifies a dispatched batch.
pub type BatchId = u64;

#[derive(Debug)]
struct Pending {
    batch: BatchId,
    last_offset: i64,
    done: bool,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<TopicPartition, VecDeque<Pending>>,
    /// Offsets that became committable since the last [`take_committable`](Self::take_committable).
    committable: BTreeMap<TopicPartition, i64>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `batch` covers `partition` up to and including `last_offset`. Batches must be
    /// registered in the order their records were consumed. The offsets of a partition grow, except
    /// after a reset by `auto_offset_reset` (its log was truncated or made again under the consumer):
    /// the later batch's offset is then committed after the earlier one's, as it was read.
    pub fn register(&mut self, batch: BatchId, partition: TopicPartition, last_offset: i64) {
        let queue = self.partitions.entry(partition).or_default();
        queue.push_back(Pending { batch, last_offset, done: false });
    }

    /// Marks `batch` safe. Entries of partitions forgotten since (revoked) are ignored.
    pub fn complete(&mut self, batch: BatchId) {
        for (partition, queue) in &mut self.partitions {
            for pending in queue.iter_mut().filter(|p| p.batch == batch) {
                pending.done = true;
            }
            let mut advanced = None;
            while queue.front().is_some_and(|p| p.done) {
                advanced = queue.pop_front().map(|p| p.last_offset);
            }
            if let Some(last) = advanced {
                self.committable.insert(partition.clone(), last + 1);
            }
        }
    }

    /// The offsets to commit (the next offset to read, as Kafka commits), each at most once.
    pub fn take_committable(&mut self) -> BTreeMap<TopicPartition, i64> {
        std::mem::take(&mut self.committable)
    }

    /// Whether any registered batch is not yet done.
    #[cfg(test)]
    pub fn has_pending(&self) -> bool {
        self.has_pending_in(None)
    }

    /// Whether a batch holding records of `partitions` (any partition if `None`) is not yet done.
    pub fn has_pending_in(&self, partitions: Option<&BTreeSet<TopicPartition>>) -> bool {
        self.partitions.iter().any(|(p, q)| !q.is_empty() && partitions.is_none_or(|set| set.contains(p)))
    }

    /// Drops everything known about `partition` (revoked or lost): completions of its batches no longer
    /// move anything, and whatever was committable but not yet committed is forgotten.
    pub fn forget(&mut self, partition: &TopicPartition) {
        self.partitions.remove(partition);
        self.committable.remove(partition);
    }

    /// [`forget`](Self::forget)s every partition (the consumer that read them is gone).
    pub fn forget_all(&mut self) {
        self.partitions.clear();
        self.committable.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition { topic: "t".into(), partition: p }
    }

    #[test]
    fn out_of_order_completion_waits_for_the_oldest() {
        let mut t = OffsetTracker::new();
        t.register(1, tp(0), 9);
        t.register(2, tp(0), 19);
        t.register(3, tp(0), 29);
        t.complete(2);
        assert!(t.take_committable().is_empty(), "batch 1 is still in flight");
        t.complete(1);
        assert_eq!(t.take_committable(), BTreeMap::from([(tp(0), 20)]));
        t.complete(3);
        assert_eq!(t.take_committable(), BTreeMap::from([(tp(0), 30)]));
        assert!(!t.has_pending());
    }

    #[test]
    fn partitions_advance_independently() {
        let mut t = OffsetTracker::new();
        t.register(1, tp(0), 4);
        t.register(1, tp(1), 7);
        t.register(2, tp(1), 8);
        t.register(2, tp(2), 100);
        t.complete(2);
        assert_eq!(t.take_committable(), BTreeMap::from([(tp(2), 101)]));
        t.complete(1);
        assert_eq!(t.take_committable(), BTreeMap::from([(tp(0), 5), (tp(1), 9)]));
    }

    #[test]
    fn forgotten_partitions_ignore_late_completions() {
        let mut t = OffsetTracker::new();
        t.register(1, tp(0), 4);
        t.register(1, tp(1), 4);
        t.forget(&tp(0));
        t.complete(1);
        assert_eq!(t.take_committable(), BTreeMap::from([(tp(1), 5)]));
        // Reassigned later: new batches start a fresh queue.
        t.register(5, tp(0), 6);
        t.complete(1);
        assert!(t.take_committable().is_empty());
        assert!(t.has_pending());
    }

    #[test]
    fn forget_all_starts_over_from_older_offsets() {
        // A replaced consumer reads again from the committed offsets, below what the tracker saw.
        let mut t = OffsetTracker::new();
        t.register(1, tp(0), 49);
        t.register(2, tp(1), 9);
        t.complete(2);
        t.forget_all();
        assert!(t.take_committable().is_empty() && !t.has_pending());
        t.complete(1);
        assert!(t.take_committable().is_empty(), "a late completion moves nothing");
        t.register(3, tp(0), 19);
        t.complete(3);
        assert_eq!(t.take_committable(), BTreeMap::from([(tp(0), 20)]));
    }
}
