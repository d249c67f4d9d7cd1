//! Where records wait between the caller's `send` and the sender thread: one open batch per partition,
//! and the batches that are full. The caller encodes each record straight into its partition's open
//! batch under one short lock; the sender takes full batches, and open ones whose linger is over, and
//! hands them to the compression thread (`sealer`).
//!
//! A topic whose partition count is not known yet (first use, before the sender's metadata answer) keeps
//! its records aside, copied, until it is ([`Accumulator::set_partitions`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::OpenBatch;
use crate::partitioner;

/// A batch handed from the accumulator to the sender.
pub(crate) struct Full<T> {
    pub topic: Arc<str>,
    pub partition: u32,
    pub batch: OpenBatch<T>,
}

/// A record kept aside until its topic's partition count is known.
pub(crate) struct Waiting<T> {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub opaque: T,
}

struct Open<T> {
    batch: OpenBatch<T>,
    since: Instant,
}

struct TopicBatches<T> {
    topic: Arc<str>,
    /// 0 until the metadata gives it.
    partitions: u32,
    sticky: Option<u32>,
    open: Vec<Option<Open<T>>>,
    waiting: Vec<Waiting<T>>,
}

/// What the sender should do after an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing new for it.
    No,
    /// A batch is full, a linger clock started, or a topic needs metadata.
    Yes,
}

pub(crate) struct Accumulator<T> {
    topics: Vec<TopicBatches<T>>,
    /// Index in `topics` by name.
    by_name: HashMap<Arc<str>, usize>,
    /// The topic of the last append: records come in runs of one topic, so this spares the hashing.
    last: usize,
    full: Vec<Full<T>>,
    batch_bytes: usize,
    /// Records appended and not yet reported.
    pub pending: usize,
    /// Topics seen for the first time, whose metadata the sender must fetch.
    pub new_topics: Vec<Arc<str>>,
    /// Set by `flush`: seal every open batch now instead of after its linger.
    pub flushing: bool,
    /// Set when the producer is closed: the sender stops.
    pub closed: bool,
}

impl<T> Accumulator<T> {
    pub(crate) fn new(batch_bytes: usize) -> Self {
        Self {
            topics: Vec::new(),
            by_name: HashMap::new(),
            last: 0,
            full: Vec::new(),
            batch_bytes,
            pending: 0,
            new_topics: Vec::new(),
            flushing: false,
            closed: false,
        }
    }

    pub(crate) fn append(&mut self, topic: &str, timestamp: i64, key: Option<&[u8]>, value: &[u8], opaque: T) -> Wake {
        self.pending += 1;
        let index = self.index(topic);
        let state = &mut self.topics[index];
        if state.partitions == 0 {
            // The first record set aside (for a new topic, or one the cluster refused before) asks the
            // sender for the topic's metadata.
            let ask = state.waiting.is_empty() && !self.new_topics.contains(&state.topic);
            if ask {
                self.new_topics.push(state.topic.clone());
            }
            state.waiting.push(Waiting { timestamp, key: key.map(<[u8]>::to_vec), value: value.to_vec(), opaque });
            return if self.new_topics.is_empty() { Wake::No } else { Wake::Yes };
        }
        let size = value.len() + key.map_or(0, <[u8]>::len) + crate::batch::RECORD_OVERHEAD;
        let mut wake = Wake::No;
        let mut partition = pick(state, key);
        if let Some(open) = &state.open[partition as usize] {
            if open.batch.bytes() + size > self.batch_bytes {
                self.full.push(seal_open(state, partition));
                wake = Wake::Yes;
                if key.is_none() {
                    partition = pick(state, None);
                }
            }
        }
        let batch_bytes = self.batch_bytes;
        let open = state.open[partition as usize].get_or_insert_with(|| {
            wake = Wake::Yes;
            Open { batch: OpenBatch::new(batch_bytes.min(1 << 20) + 256), since: Instant::now() }
        });
        open.batch.push(timestamp, key, value, opaque);
        if open.batch.bytes() >= self.batch_bytes {
            self.full.push(seal_open(state, partition));
            wake = Wake::Yes;
        }
        wake
    }

    /// The index of `topic` in `topics`, adding it if new.
    fn index(&mut self, topic: &str) -> usize {
        if self.topics.get(self.last).is_some_and(|state| &*state.topic == topic) {
            return self.last;
        }
        let index = match self.by_name.get(topic) {
            Some(&index) => index,
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.by_name.insert(name.clone(), self.topics.len());
                self.topics.push(TopicBatches {
                    topic: name,
                    partitions: 0,
                    sticky: None,
                    open: Vec::new(),
                    waiting: Vec::new(),
                });
                self.topics.len() - 1
            }
        };
        self.last = index;
        index
    }

    fn get_mut(&mut self, topic: &str) -> Option<&mut TopicBatches<T>> {
        let index = *self.by_name.get(topic)?;
        Some(&mut self.topics[index])
    }

    /// Takes the full batches and the open ones whose linger is over (all of them while flushing or
    /// closed). Returns when the next open batch will be due.
    pub(crate) fn take_due(&mut self, now: Instant, linger: Duration, out: &mut Vec<Full<T>>) -> Option<Instant> {
        out.append(&mut self.full);
        let everything = self.flushing || self.closed;
        let mut next: Option<Instant> = None;
        for state in &mut self.topics {
            for partition in 0..state.open.len() {
                let Some(open) = &state.open[partition] else { continue };
                let due = open.since + linger;
                if everything || due <= now {
                    out.push(seal_open(state, partition as u32));
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        next
    }

    /// Sets `topic`'s partition count (from metadata) and returns the records kept aside for it, to be
    /// appended again.
    pub(crate) fn set_partitions(&mut self, topic: &str, partitions: u32) -> Vec<Waiting<T>> {
        let Some(&index) = self.by_name.get(topic) else { return Vec::new() };
        let state = &mut self.topics[index];
        if partitions == 0 || partitions == state.partitions {
            return Vec::new();
        }
        let mut moved = Vec::new();
        if (partitions as usize) < state.open.len() {
            // Partitions never shrink on Kafka; should the metadata say so, re-route their open batches.
            for partition in partitions as usize..state.open.len() {
                if let Some(open) = state.open[partition].take() {
                    moved.push(open.batch);
                }
            }
        }
        state.open.resize_with(partitions as usize, || None);
        state.partitions = partitions;
        if state.sticky.is_some_and(|s| s >= partitions) {
            state.sticky = None;
        }
        let waiting = std::mem::take(&mut state.waiting);
        self.pending -= waiting.len();
        if !moved.is_empty() {
            tracing::warn!(topic, partitions, "topic has fewer partitions than before; moving its open batches");
            let topic: Arc<str> = state.topic.clone();
            for batch in moved {
                self.full.push(Full { topic: topic.clone(), partition: 0, batch });
            }
        }
        waiting
    }

    /// Takes the records kept aside for `topic` (the cluster refused it: they are reported as failed,
    /// and stop counting as pending when they are).
    pub(crate) fn take_waiting(&mut self, topic: &str) -> Vec<Waiting<T>> {
        self.get_mut(topic).map(|s| std::mem::take(&mut s.waiting)).unwrap_or_default()
    }
}

fn pick<T>(state: &mut TopicBatches<T>, key: Option<&[u8]>) -> u32 {
    match key {
        Some(key) => partitioner::keyed(key, state.partitions),
        None => *state.sticky.get_or_insert_with(|| partitioner::next_sticky(None, state.partitions)),
    }
}

/// Takes `partition`'s open batch; the topic's keyless records move on to another partition.
fn seal_open<T>(state: &mut TopicBatches<T>, partition: u32) -> Full<T> {
    let open = state.open[partition as usize].take().expect("an open batch");
    if state.sticky == Some(partition) {
        state.sticky = Some(partitioner::next_sticky(Some(partition), state.partitions));
    }
    Full { topic: state.topic.clone(), partition, batch: open.batch }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_wait_for_the_partition_count_then_fill_batches() {
        let mut acc = Accumulator::new(100);
        assert_eq!(acc.append("t", 1, None, b"first", 0), Wake::Yes);
        assert_eq!(acc.new_topics.len(), 1);
        let waiting = acc.set_partitions("t", 1);
        assert_eq!(waiting.len(), 1);
        assert_eq!(acc.pending, 0);
        for w in waiting {
            acc.append("t", w.timestamp, w.key.as_deref(), &w.value, w.opaque);
        }
        for i in 1..10 {
            acc.append("t", 1, None, b"0123456789012345678901234567890123456789", i);
        }
        let mut out = Vec::new();
        let next = acc.take_due(Instant::now(), Duration::from_secs(60), &mut out);
        assert!(next.is_some(), "an open batch waits for its linger");
        assert!(out.len() >= 3, "batches of at most 100 bytes: {}", out.len());
        assert!(out.iter().all(|f| f.batch.bytes() <= 100));
        acc.flushing = true;
        let mut rest = Vec::new();
        assert!(acc.take_due(Instant::now(), Duration::from_secs(60), &mut rest).is_none());
        let records: usize = out.iter().chain(&rest).map(|f| f.batch.len()).sum();
        assert_eq!(records, 10);
        assert_eq!(acc.pending, 10);
    }

    #[test]
    fn a_refused_topic_asks_for_metadata_again_with_its_next_record() {
        let mut acc = Accumulator::new(100);
        acc.append("t", 1, None, b"first", 0);
        assert_eq!(acc.new_topics.len(), 1);
        acc.new_topics.clear();
        assert_eq!(acc.take_waiting("t").len(), 1, "the cluster refused the topic");
        assert_eq!(acc.pending, 1, "pending until the sender reports the record");
        acc.pending -= 1;
        assert_eq!(acc.append("t", 1, None, b"again", 1), Wake::Yes);
        assert_eq!(acc.new_topics.len(), 1);
        acc.append("t", 1, None, b"and again", 2);
        assert_eq!(acc.new_topics.len(), 1, "asked once per records set aside");
    }

    #[test]
    fn keyed_records_follow_murmur2_and_keyless_ones_stick() {
        let mut acc = Accumulator::new(1 << 20);
        acc.append("t", 1, None, b"x", 0);
        acc.set_partitions("t", 8);
        for i in 0..20 {
            acc.append("t", 1, Some(b"foobar"), b"v", i);
            acc.append("t", 1, None, b"v", i);
        }
        acc.flushing = true;
        let mut out = Vec::new();
        acc.take_due(Instant::now(), Duration::ZERO, &mut out);
        let keyed = partitioner::keyed(b"foobar", 8);
        assert!(out.len() <= 2, "one batch for the key's partition, one for the sticky one");
        assert!(out.iter().any(|f| f.partition == keyed));
    }
}
