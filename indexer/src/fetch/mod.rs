//! The indexer's own fetch path. librdkafka stays the group member (joining, heartbeats, assignment,
//! committed offsets, commits, metadata), but every partition it assigns is paused at once, so it never
//! fetches: the [`Fetcher`] reads the records with plain Fetch requests and decodes whole record batches.
//!
//! Why: librdkafka hands records on one at a time, each a queued operation of its own. Reading the
//! benchmark's records cost `kcat -G` about 1.0 µs of CPU per record, decoding them whole about 0.2 µs
//! (`examples/fetch_baseline.rs`), and the indexer's whole budget is about 2.4 µs (see
//! docs/PERFORMANCE.md).
//!
//! What a consumer does, done here:
//! - **Where to start.** A newly assigned partition starts at the group's committed offset (asked through
//!   librdkafka). Without one, or when a fetch answers OFFSET_OUT_OF_RANGE, `auto_offset_reset` decides:
//!   `earliest` or `latest` by ListOffsets to the leader, `none` stops the indexer with
//!   [`Error::NoCommittedOffset`].
//! - **Leaders.** From librdkafka's metadata, asked again for a partition whose leader moved
//!   (NOT_LEADER_OR_FOLLOWER and the like) or whose broker could not be reached.
//! - **Isolation.** `isolation.level` as librdkafka reads it (`[indexer.input.librdkafka]`), by default
//!   `read_committed`: aborted transactions are left out (`records`).
//! - **Back-pressure.** Nothing is fetched while more than `queued.max.messages.kbytes` of fetched
//!   values wait to be handed on (`settings`): the flow takes none while its open batch is full and
//!   `concurrency` batches are in flight. The group keeps this member while
//!   it waits, because the consumer loop still polls librdkafka.
//! - **Revocation.** A revoked partition's fetched values are dropped and its answers in flight ignored;
//!   the next owner starts after the last committed offset.
//!
//! One task per broker ([`link`]) holds the connection and has at most one order in flight, so a
//! partition is fetched from one offset at a time and the answers of a broker come in order.

mod link;
mod records;
mod settings;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{AutoOffsetReset, InputConfig};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::tracker::TopicPartition;
use link::{Answer, Asked, Got, Order};
use records::Value;
use settings::Settings;

/// How long a look-up through librdkafka (committed offsets, metadata) may block the consumer's thread.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a partition waits after its leader moved or its broker failed, before asking again.
const RETRY_SOON: Duration = Duration::from_millis(100);
/// How long it waits after a refusal that may last (authorization, a corrupt batch, settings).
const RETRY_LATER: Duration = Duration::from_secs(1);

/// Where a partition is to be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Assigned: its committed offset is to be looked up.
    Committed,
    /// No usable offset: `auto_offset_reset` decides.
    Reset,
    At(i64),
}

#[derive(Debug)]
struct Partition {
    topic: Arc<str>,
    position: Position,
    /// The leader's node id, once known.
    leader: Option<i32>,
    /// Whether an order naming it is in flight.
    in_flight: bool,
    /// Not asked for again before this.
    not_before: Option<Instant>,
}

impl Partition {
    fn waiting(&self, now: Instant) -> bool {
        self.in_flight || self.not_before.is_some_and(|t| now < t)
    }
}

/// One broker's task, and how many orders it has in flight.
struct Link {
    address: String,
    orders: UnboundedSender<Order>,
    busy: usize,
}

/// Values of one partition from one answer, handed on from `next`.
struct Ready {
    topic: Arc<str>,
    partition: i32,
    values: Vec<Value>,
    next: usize,
    bytes: usize,
}

pub struct Fetcher {
    runtime: Handle,
    settings: Arc<Settings>,
    reset: AutoOffsetReset,
    group: String,
    partitions: BTreeMap<TopicPartition, Partition>,
    /// By node id.
    links: HashMap<i32, Link>,
    answers: Receiver<Answer>,
    answers_to: Sender<Answer>,
    ready: VecDeque<Ready>,
    ready_bytes: usize,
    /// Rotates which partition a Fetch names first: the broker fills its answer in the order asked.
    turn: usize,
    /// The last problem logged, so that one that repeats is logged once.
    last_warning: Option<String>,
}

impl Fetcher {
    /// Reads the TLS and SASL settings (the PEM files now) and the fetch properties.
    pub fn new(input: &InputConfig, runtime: Handle) -> Result<Fetcher> {
        let settings = Arc::new(Settings::new(input)?);
        let (answers_to, answers) = channel();
        Ok(Fetcher {
            runtime,
            settings,
            reset: input.auto_offset_reset,
            group: input.group_id.clone(),
            partitions: BTreeMap::new(),
            links: HashMap::new(),
            answers,
            answers_to,
            ready: VecDeque::new(),
            ready_bytes: 0,
            turn: 0,
            last_warning: None,
        })
    }

    /// Newly assigned partitions: each starts at its committed offset, looked up by [`Fetcher::prepare`].
    pub fn assign(&mut self, assigned: impl IntoIterator<Item = TopicPartition>) {
        for tp in assigned {
            let topic: Arc<str> = tp.topic.as_str().into();
            let partition =
                Partition { topic, position: Position::Committed, leader: None, in_flight: false, not_before: None };
            self.partitions.insert(tp, partition);
        }
    }

    /// Revoked partitions: their fetched values are dropped, their answers in flight will be ignored.
    pub fn revoke(&mut self, revoked: &BTreeSet<TopicPartition>) {
        for tp in revoked {
            self.partitions.remove(tp);
        }
        let is_revoked = |r: &Ready| revoked.iter().any(|tp| tp.partition == r.partition && *tp.topic == *r.topic);
        self.ready.retain(|r| !is_revoked(r));
        self.ready_bytes = self.ready.iter().map(|r| r.bytes).sum();
    }

    /// Looks up, through librdkafka, what the assigned partitions need before they are fetched: committed
    /// offsets and leaders. These calls block the consumer's thread; they come after an assignment or a
    /// failure, not per fetch. An error only when `auto_offset_reset = none` finds no offset to start at.
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
        match consumer.committed_offsets(list.clone(), LOOKUP_TIMEOUT) {
            Ok(committed) => {
                for e in committed.elements() {
                    let tp = TopicPartition { topic: e.topic().to_string(), partition: e.partition() };
                    let Some(p) = self.partitions.get_mut(&tp) else { continue };
                    p.position = match e.offset() {
                        Offset::Offset(n) if n >= 0 => Position::At(n),
                        _ => Position::Reset,
                    };
                }
            }
            Err(e) => {
                self.warn(format!("cannot read the group's committed offsets: {e}; asking again"));
                for e in list.elements() {
                    let tp = TopicPartition { topic: e.topic().to_string(), partition: e.partition() };
                    if let Some(p) = self.partitions.get_mut(&tp) {
                        p.not_before = Some(now + RETRY_LATER);
                    }
                }
            }
        }
    }

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
                    self.warn(format!("cannot read the metadata of topic {topic}: {e}; asking again"));
                    self.back_off(|p| *p.topic == *topic && p.leader.is_none(), now + RETRY_LATER);
                    continue;
                }
            };
            for broker in metadata.brokers() {
                let address = format!("{}:{}", broker.host(), broker.port());
                if self.links.get(&broker.id()).is_none_or(|l| l.address != address) {
                    let orders = link::start(
                        &self.runtime,
                        broker.id(),
                        address.clone(),
                        self.settings.clone(),
                        self.answers_to.clone(),
                    );
                    self.links.insert(broker.id(), Link { address, orders, busy: 0 });
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

    /// Sends orders to the brokers that have none in flight: ListOffsets for partitions to reset, and,
    /// while the fetched values waiting are below their bound, a Fetch for the partitions each leads.
    pub fn request(&mut self) {
        let now = Instant::now();
        let timestamp = match self.reset {
            AutoOffsetReset::Earliest => -2,
            AutoOffsetReset::Latest | AutoOffsetReset::None => -1,
        };
        let fetch = self.ready_bytes < self.settings.ready_limit;
        // By leader: the partitions to reset, and those to fetch.
        let mut orders: HashMap<i32, (Vec<Asked>, Vec<Asked>)> = HashMap::new();
        let mut entries: Vec<(&TopicPartition, &mut Partition)> = self.partitions.iter_mut().collect();
        // Each partition is named first in its turn.
        self.turn = self.turn.wrapping_add(1);
        let turn = self.turn % entries.len().max(1);
        entries.rotate_left(turn);
        for (tp, p) in entries {
            let Some(id) = p.leader else { continue };
            if p.waiting(now) || self.links.get(&id).is_none_or(|l| l.busy > 0) {
                continue;
            }
            let asked = |offset| Asked { topic: p.topic.clone(), partition: tp.partition, offset };
            let (resets, fetches) = orders.entry(id).or_default();
            match p.position {
                Position::Reset => resets.push(asked(timestamp)),
                Position::At(offset) if fetch => fetches.push(asked(offset)),
                Position::At(_) | Position::Committed => continue,
            }
            p.in_flight = true;
        }
        for (id, (resets, fetches)) in orders {
            let link = self.links.get_mut(&id).expect("a link for each leader");
            for order in [
                (!resets.is_empty()).then_some(Order::ListOffsets(resets)),
                (!fetches.is_empty()).then_some(Order::Fetch(fetches)),
            ]
            .into_iter()
            .flatten()
            {
                // The task ends only when its channel closes, with the fetcher.
                if link.orders.send(order).is_ok() {
                    link.busy += 1;
                }
            }
        }
    }

    /// Waits up to `timeout` for an answer, then takes in every answer that has come.
    pub fn receive(&mut self, timeout: Duration) {
        let first = match self.answers.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        };
        self.take_in(first);
        while let Ok(answer) = self.answers.try_recv() {
            self.take_in(answer);
        }
    }

    /// Hands fetched values to the flow, in the order they came, until its open batch is full.
    pub fn feed(&mut self, flow: &mut Flow) {
        while let Some(ready) = self.ready.front_mut() {
            while ready.next < ready.values.len() {
                if flow.is_full() {
                    return;
                }
                let v = &ready.values[ready.next];
                flow.add(&ready.topic, ready.partition, v.offset, v.value.as_deref());
                ready.next += 1;
            }
            self.ready_bytes -= ready.bytes;
            self.ready.pop_front();
        }
    }

    fn take_in(&mut self, answer: Answer) {
        let now = Instant::now();
        let address = match self.links.get_mut(&answer.broker) {
            Some(link) => {
                link.busy = link.busy.saturating_sub(1);
                link.address.clone()
            }
            None => answer.broker.to_string(),
        };
        let got = match answer.outcome {
            Ok(got) => got,
            Err(link::Failed { asked, error: e }) => {
                let what = if answer.was_fetch { "fetching" } else { "listing offsets" };
                self.warn(format!("{what} failed: {e}; retrying"));
                let retry = if e.is_retriable() { RETRY_SOON } else { RETRY_LATER };
                for a in asked {
                    if let Some(p) = in_flight(&mut self.partitions, &a) {
                        p.in_flight = false;
                        p.leader = None;
                        p.not_before = Some(now + retry);
                    }
                }
                return;
            }
        };
        let mut fetched_any = false;
        for (asked, got) in got {
            let reset = self.reset;
            let Some(p) = in_flight(&mut self.partitions, &asked) else { continue };
            p.in_flight = false;
            let tp = || format!("{}/{}", asked.topic, asked.partition);
            let warning = match got {
                Got::Records(fetched) if p.position == Position::At(asked.offset) => {
                    p.position = Position::At(fetched.next);
                    fetched_any = true;
                    if !fetched.values.is_empty() {
                        let bytes = fetched.values.iter().map(|v| v.value.as_ref().map_or(0, |b| b.len())).sum();
                        self.ready_bytes += bytes;
                        self.ready.push_back(Ready {
                            topic: asked.topic.clone(),
                            partition: asked.partition,
                            values: fetched.values,
                            next: 0,
                            bytes,
                        });
                    }
                    None
                }
                Got::Offset(offset) if p.position == Position::Reset => {
                    p.position = Position::At(offset);
                    tracing::info!(partition = %tp(), offset, "starting where auto_offset_reset = {} says", reset.name());
                    None
                }
                // Stale: the partition was given up and assigned again meanwhile.
                Got::Records(_) | Got::Offset(_) => None,
                Got::Refused(code) => match ResponseError::try_from_code(code) {
                    Some(ResponseError::OffsetOutOfRange) => {
                        let offset = match p.position {
                            Position::At(o) => o,
                            _ => asked.offset,
                        };
                        p.position = Position::Reset;
                        Some(format!(
                            "{}: offset {offset} is out of range on the broker; going on where auto_offset_reset = {} says",
                            tp(),
                            reset.name()
                        ))
                    }
                    Some(
                        ResponseError::NotLeaderOrFollower
                        | ResponseError::LeaderNotAvailable
                        | ResponseError::UnknownTopicOrPartition
                        | ResponseError::FencedLeaderEpoch
                        | ResponseError::UnknownLeaderEpoch
                        | ResponseError::ReplicaNotAvailable
                        | ResponseError::KafkaStorageError
                        | ResponseError::OffsetNotAvailable,
                    ) => {
                        tracing::debug!(partition = %tp(), code, "leader moved or not ready; reading the metadata again");
                        p.leader = None;
                        p.not_before = Some(now + RETRY_SOON);
                        None
                    }
                    other => {
                        p.not_before = Some(now + RETRY_LATER);
                        let what = other.map_or_else(|| format!("error code {code}"), |e| format!("{e:?}"));
                        Some(format!("broker {address} refused to serve {}: {what}; retrying", tp()))
                    }
                },
                Got::Corrupt(why) => {
                    p.not_before = Some(now + RETRY_LATER);
                    Some(format!("{} from broker {address}: {why}; fetching it again", tp()))
                }
            };
            if let Some(warning) = warning {
                self.warn(warning);
            }
        }
        if fetched_any && self.last_warning.take().is_some() {
            tracing::info!("fetching again");
        }
    }

    fn back_off(&mut self, which: impl Fn(&Partition) -> bool, until: Instant) {
        for p in self.partitions.values_mut().filter(|p| which(p)) {
            p.not_before = Some(until);
        }
    }

    /// Logs a problem, once while it repeats.
    fn warn(&mut self, warning: String) {
        if self.last_warning.as_deref() != Some(warning.as_str()) {
            tracing::warn!("consumer: {warning}");
            self.last_warning = Some(warning);
        }
    }
}

/// The partition `asked` names, if it is still assigned and waiting for an answer.
fn in_flight<'a>(partitions: &'a mut BTreeMap<TopicPartition, Partition>, asked: &Asked) -> Option<&'a mut Partition> {
    let tp = TopicPartition { topic: asked.topic.to_string(), partition: asked.partition };
    partitions.get_mut(&tp).filter(|p| p.in_flight)
}
