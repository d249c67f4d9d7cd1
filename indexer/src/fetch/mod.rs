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
//!   librdkafka, `lookup`). Without one, or when a fetch answers OFFSET_OUT_OF_RANGE,
//!   `auto_offset_reset` decides: `earliest` or `latest` by ListOffsets to the leader, `none` stops the
//!   indexer with [`Error::NoCommittedOffset`](crate::Error::NoCommittedOffset).
//! - **Leaders.** From librdkafka's metadata, asked again for a partition whose leader moved
//!   (NOT_LEADER_OR_FOLLOWER and the like) or whose broker could not be reached.
//! - **Isolation.** `isolation.level` as librdkafka reads it (`[indexer.input.librdkafka]`), by default
//!   `read_committed`: aborted transactions are left out (`records`).
//! - **Back-pressure.** No Fetch is sent while `queued.max.messages.kbytes` or more of fetched values
//!   wait to be handed on (`settings`); the flow takes none while its open batch is full. One answer in
//!   flight per broker may still come on top. The group keeps this member while it waits, because the
//!   consumer loop still polls librdkafka.
//! - **Revocation.** A revoked partition's fetched values are dropped and the answers to its orders
//!   ignored; the next owner starts after the last committed offset.
//!
//! One task per broker ([`link`]) holds the connection and carries out its orders in turn. A broker gets
//! new orders only once it has answered the last ones (a ListOffsets and a Fetch may go together), and
//! each partition is named in one order at a time: every order is numbered, and an answer counts only
//! for the partitions still waiting for that order, so one that was revoked, assigned again and asked for
//! elsewhere in the meantime is not confused by an old answer.

mod link;
mod lookup;
mod records;
mod settings;

pub use settings::{FETCH_KEYS, ISOLATION_LEVEL};

#[cfg(test)]
mod tests;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{AutoOffsetReset, InputConfig};
use crate::error::Result;
use crate::flow::Flow;
use crate::tracker::TopicPartition;
use link::{Answer, Asked, Got, Order};
use records::{Fetched, Value};
use settings::Settings;

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
    /// The number of the order naming it that is in flight, if one is.
    in_flight: Option<u64>,
    /// Not asked for again before this.
    not_before: Option<Instant>,
    /// Whether its last answer reached the end of the partition as its leader then knew it.
    at_end: bool,
}

impl Partition {
    fn new(topic: Arc<str>) -> Partition {
        Partition {
            topic,
            position: Position::Committed,
            leader: None,
            in_flight: None,
            not_before: None,
            at_end: false,
        }
    }

    fn waiting(&self, now: Instant) -> bool {
        self.in_flight.is_some() || self.not_before.is_some_and(|t| now < t)
    }
}

/// One broker's task.
struct Link {
    /// Numbers this link among all started, so that answers of one replaced since are told apart.
    serial: u64,
    address: String,
    orders: UnboundedSender<Order>,
    /// Orders sent and not answered yet.
    busy: usize,
    /// Rotates which partition its Fetch names first: the broker fills the answer in the order asked.
    turn: usize,
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
    /// The numbers the next link and the next order get.
    next_link: u64,
    next_order: u64,
    answers: Receiver<Answer>,
    answers_to: Sender<Answer>,
    ready: VecDeque<Ready>,
    ready_bytes: usize,
    /// The last problem logged about each broker, partition or look-up, so that one that repeats is
    /// logged once, until that broker or partition answers again.
    warnings: HashMap<String, String>,
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
            next_link: 0,
            next_order: 0,
            answers,
            answers_to,
            ready: VecDeque::new(),
            ready_bytes: 0,
            warnings: HashMap::new(),
        })
    }

    /// Newly assigned partitions: each starts at its committed offset, looked up by [`Fetcher::prepare`].
    pub fn assign(&mut self, assigned: impl IntoIterator<Item = TopicPartition>) {
        for tp in assigned {
            let partition = Partition::new(tp.topic.as_str().into());
            self.partitions.insert(tp, partition);
        }
    }

    /// Revoked partitions: their fetched values are dropped, the answers to their orders will be ignored.
    pub fn revoke(&mut self, revoked: &BTreeSet<TopicPartition>) {
        for tp in revoked {
            self.partitions.remove(tp);
        }
        let is_revoked = |r: &Ready| revoked.iter().any(|tp| tp.partition == r.partition && *tp.topic == *r.topic);
        self.ready.retain(|r| !is_revoked(r));
        self.ready_bytes = self.ready.iter().map(|r| r.bytes).sum();
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
        // By leader: the partitions to reset, and those to fetch, in the map's order.
        let mut orders: HashMap<i32, (Vec<&TopicPartition>, Vec<&TopicPartition>)> = HashMap::new();
        for (tp, p) in self.partitions.iter_mut() {
            let Some(id) = p.leader else { continue };
            let Some(link) = self.links.get(&id) else {
                // Its link was dropped (see `send`): the leader is looked up again.
                p.leader = None;
                continue;
            };
            if p.waiting(now) || link.busy > 0 {
                continue;
            }
            let (resets, fetches) = orders.entry(id).or_default();
            match p.position {
                Position::Reset => resets.push(tp),
                Position::At(_) if fetch => fetches.push(tp),
                Position::At(_) | Position::Committed => {}
            }
        }
        let orders: Vec<(i32, Vec<TopicPartition>, Vec<TopicPartition>)> = orders
            .into_iter()
            .map(|(id, (r, f))| (id, r.into_iter().cloned().collect(), f.into_iter().cloned().collect()))
            .collect();
        for (id, resets, mut fetches) in orders {
            if let Some(link) = self.links.get_mut(&id).filter(|_| !fetches.is_empty()) {
                let turn = link.turn % fetches.len();
                link.turn = link.turn.wrapping_add(1);
                fetches.rotate_left(turn);
            }
            for (named, kind) in [(resets, Order::ListOffsets as fn(_) -> _), (fetches, Order::Fetch)] {
                if !named.is_empty() {
                    self.send(id, &named, timestamp, kind);
                }
            }
        }
    }

    /// Sends one order naming `named` to broker `id`. A link whose task has ended is dropped, and its
    /// partitions look their leader up again.
    fn send(&mut self, id: i32, named: &[TopicPartition], timestamp: i64, kind: fn(Vec<Asked>) -> Order) {
        let order = self.next_order;
        self.next_order += 1;
        let mut asked = Vec::with_capacity(named.len());
        for tp in named {
            let p = self.partitions.get_mut(tp).expect("named from the map");
            let offset = match p.position {
                Position::At(offset) => offset,
                Position::Reset | Position::Committed => timestamp,
            };
            asked.push(Asked { topic: p.topic.clone(), partition: tp.partition, offset, order });
            p.in_flight = Some(order);
        }
        if let Some(link) = self.links.get_mut(&id) {
            if link.orders.send(kind(asked)).is_ok() {
                link.busy += 1;
                return;
            }
            self.links.remove(&id);
        }
        for tp in named {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.in_flight = None;
                p.leader = None;
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

    /// Whether every value the brokers held at their last answers has been handed on: nothing waits here,
    /// and each assigned partition's last answer reached its end. The open batch then holds all there is
    /// for now, and waiting longer only adds latency (see `consumer`).
    pub fn caught_up(&self) -> bool {
        self.ready.is_empty() && !self.partitions.is_empty() && self.partitions.values().all(|p| p.at_end)
    }

    /// Hands fetched values to `sink` (the flow), in the order they came, until it is full.
    pub fn feed(&mut self, sink: &mut impl Sink) {
        while let Some(ready) = self.ready.front_mut() {
            while ready.next < ready.values.len() {
                if sink.is_full() {
                    return;
                }
                let v = &mut ready.values[ready.next];
                sink.add(&ready.topic, ready.partition, v.offset, v.timestamp, v.value.take());
                ready.next += 1;
            }
            self.ready_bytes -= ready.bytes;
            self.ready.pop_front();
        }
    }

    fn take_in(&mut self, answer: Answer) {
        let now = Instant::now();
        let link = self.links.iter_mut().find(|(_, l)| l.serial == answer.link);
        let address = match link {
            Some((_, link)) => {
                link.busy = link.busy.saturating_sub(1);
                link.address.clone()
            }
            None => "a broker since replaced".to_owned(),
        };
        let broker = format!("broker {address}");
        let got = match answer.outcome {
            Ok(got) => got,
            Err(link::Failed { asked, error }) => {
                let what = if answer.was_fetch { "fetching" } else { "listing offsets" };
                self.warn(broker, format!("{what} failed: {error}; retrying"));
                return self.retry(asked, error.is_retriable(), now);
            }
        };
        if self.warnings.remove(&broker).is_some() {
            tracing::info!("consumer: {broker} answers again");
        }
        for (asked, got) in got {
            self.take_partition(asked, got, &address, now);
        }
    }

    /// An order failed on its connection: its partitions look their leader up again, after a while.
    fn retry(&mut self, asked: Vec<Asked>, retriable: bool, now: Instant) {
        let retry = if retriable { RETRY_SOON } else { RETRY_LATER };
        for a in asked {
            if let Some(p) = waiting_for(&mut self.partitions, &a) {
                p.in_flight = None;
                p.leader = None;
                p.not_before = Some(now + retry);
                p.at_end = false;
            }
        }
    }

    /// What one partition got, if it was waiting for it.
    fn take_partition(&mut self, asked: Asked, got: Got, address: &str, now: Instant) {
        let reset = self.reset;
        let Some(p) = waiting_for(&mut self.partitions, &asked) else { return };
        p.in_flight = None;
        p.at_end = matches!(got, Got::Records(Fetched { at_end: true, .. }));
        let tp = format!("{}/{}", asked.topic, asked.partition);
        let warning = match got {
            Got::Records(fetched) => {
                p.position = Position::At(fetched.next);
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
            Got::Offset(offset) => {
                p.position = Position::At(offset);
                tracing::info!(partition = %tp, offset, "starting where auto_offset_reset = {} says", reset.name());
                None
            }
            Got::Refused(code) => match ResponseError::try_from_code(code) {
                Some(ResponseError::OffsetOutOfRange) => {
                    p.position = Position::Reset;
                    Some(format!(
                        "{tp}: offset {} is out of range on the broker; going on where auto_offset_reset = {} says",
                        asked.offset,
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
                    tracing::debug!(partition = %tp, code, "leader moved or not ready; reading the metadata again");
                    p.leader = None;
                    p.not_before = Some(now + RETRY_SOON);
                    None
                }
                other => {
                    p.not_before = Some(now + RETRY_LATER);
                    let what = other.map_or_else(|| format!("error code {code}"), |e| format!("{e:?}"));
                    Some(format!("broker {address} refused to serve {tp}: {what}; retrying"))
                }
            },
            Got::Corrupt(why) => {
                p.not_before = Some(now + RETRY_LATER);
                Some(format!("{tp} at offset {} from broker {address}: {why}; fetching it again", asked.offset))
            }
        };
        match warning {
            Some(warning) => self.warn(tp, warning),
            None => {
                if self.warnings.remove(&tp).is_some() {
                    tracing::info!("consumer: {tp} is read again");
                }
            }
        }
    }

    /// Logs a problem, once while it repeats for the same broker, partition or look-up (`about`).
    fn warn(&mut self, about: String, warning: String) {
        if self.warnings.get(&about) != Some(&warning) {
            tracing::warn!("consumer: {warning}");
            self.warnings.insert(about, warning);
        }
    }
}

/// Where fetched values go: the flow's open batch.
pub trait Sink {
    /// Whether it takes no more now.
    fn is_full(&self) -> bool;
    fn add(&mut self, topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64, value: Option<Bytes>);
}

impl Sink for Flow {
    fn is_full(&self) -> bool {
        Flow::is_full(self)
    }

    fn add(&mut self, topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64, value: Option<Bytes>) {
        Flow::add(self, topic, partition, offset, timestamp, value);
    }
}

/// The partition `asked` names, if it is still assigned and waiting for the answer to that order.
fn waiting_for<'a>(
    partitions: &'a mut BTreeMap<TopicPartition, Partition>,
    asked: &Asked,
) -> Option<&'a mut Partition> {
    let tp = TopicPartition { topic: asked.topic.to_string(), partition: asked.partition };
    partitions.get_mut(&tp).filter(|p| p.in_flight == Some(asked.order))
}
