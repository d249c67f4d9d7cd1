//! What the fetcher asks librdkafka, the group member: the group's committed offsets and the partitions'
//! leaders. These calls block the consumer's thread (up to [`LOOKUP_TIMEOUT`]); they come after an
//! assignment or a failure, not per fetch, and no rebalance callback runs inside them (librdkafka waits
//! for their answers on queues of their own).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::{link, Fetcher, Link, Position, RETRY_LATER, RETRY_SOON};
use crate::config::AutoOffsetReset;
use crate::error::{Error, Result};
use crate::tracker::TopicPartition;

/// How long a look-up may block the consumer's thread.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Fetcher {
    /// Looks up what the assigned partitions need before they are fetched: committed offsets and
    /// leaders. An error only when `auto_offset_reset = none` finds no offset to start at.
    pub fn prepare<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let now = Instant::now();
        self.look_up_committed(consumer, now);
        if self.reset == AutoOffsetReset::None {
            let topics: BTreeSet<&str> =
                self.partitions.values().filter(|p| p.position == Position::Reset).map(|p| &*p.topic).collect();
            if !topics.is_empty() {
                let topics = topics.into_iter().collect::<Vec<_>>().join(", ");
                return Err(Error::NoCommittedOffset { group: self.group.clone(), topics });
            }
        }
        self.look_up_leaders(consumer, now);
        Ok(())
    }

    /// The committed offset of each partition still without a position. A partition the answer has an
    /// error for is asked for again later, never taken as having no offset: `latest` would skip records.
    fn look_up_committed<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, now: Instant) {
        let mut list = TopicPartitionList::new();
        for (tp, p) in &self.partitions {
            if p.position == Position::Committed && !p.waiting(now) {
                list.add_partition(&tp.topic, tp.partition);
            }
        }
        if list.count() == 0 {
            return;
        }
        let mut failed = Vec::new();
        match consumer.committed_offsets(list.clone(), LOOKUP_TIMEOUT) {
            Ok(committed) => {
                for e in committed.elements() {
                    let tp = TopicPartition { topic: e.topic().to_string(), partition: e.partition() };
                    if let Err(error) = e.error() {
                        failed.push((tp, error.to_string()));
                        continue;
                    }
                    if let Some(p) = self.partitions.get_mut(&tp) {
                        p.position = match e.offset() {
                            Offset::Offset(n) if n >= 0 => Position::At(n),
                            _ => Position::Reset,
                        };
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                failed.extend(
                    list.elements().iter().map(|e| {
                        (TopicPartition { topic: e.topic().to_string(), partition: e.partition() }, why.clone())
                    }),
                );
            }
        }
        for (tp, why) in failed {
            self.warn(
                "committed offsets".to_owned(),
                format!("cannot read the group's committed offset of {tp}: {why}; asking again"),
            );
            if let Some(p) = self.partitions.get_mut(&tp) {
                p.not_before = Some(now + RETRY_LATER);
            }
        }
    }

    /// The leaders of the partitions without one, and a link to each broker the metadata names (again
    /// when its address changed).
    fn look_up_leaders<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, now: Instant) {
        let topics: BTreeSet<Arc<str>> = self
            .partitions
            .values()
            .filter(|p| p.leader.is_none() && !p.waiting(now))
            .map(|p| p.topic.clone())
            .collect();
        for topic in topics {
            let metadata = match consumer.fetch_metadata(Some(&topic), LOOKUP_TIMEOUT) {
                Ok(m) => m,
                Err(e) => {
                    self.warn(
                        "metadata".to_owned(),
                        format!("cannot read the metadata of topic {topic}: {e}; asking again"),
                    );
                    for p in self.partitions.values_mut().filter(|p| *p.topic == *topic && p.leader.is_none()) {
                        p.not_before = Some(now + RETRY_LATER);
                    }
                    continue;
                }
            };
            for broker in metadata.brokers() {
                let address = format!("{}:{}", broker.host(), broker.port());
                if self.links.get(&broker.id()).is_none_or(|l| l.address != address) {
                    let serial = self.next_link;
                    self.next_link += 1;
                    let answers = self.answers_to.clone();
                    let orders = link::start(&self.runtime, serial, address.clone(), self.settings.clone(), answers);
                    self.links.insert(broker.id(), Link { serial, address, orders, busy: 0, turn: 0 });
                }
            }
            for t in metadata.topics().iter().filter(|t| t.name() == &*topic) {
                for m in t.partitions() {
                    let tp = TopicPartition { topic: topic.to_string(), partition: m.id() };
                    if let Some(p) = self.partitions.get_mut(&tp) {
                        p.leader = (m.leader() >= 0 && self.links.contains_key(&m.leader())).then_some(m.leader());
                        if p.leader.is_none() {
                            p.not_before = Some(now + RETRY_SOON);
                        }
                    }
                }
            }
        }
    }
}
