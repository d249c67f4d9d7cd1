//! The producer's thread: a single-threaded tokio runtime that hands full batches to the compression
//! thread ([`crate::sealer`]), learns the cluster's metadata, keeps one pipelined connection per partition
//! leader, and reports each batch's fate.
//!
//! Per partition, batches go out in the order they were handed over for sealing, up to [`MAX_IN_FLIGHT`]
//! at a time (the broker remembers the last five batches of each producer for duplicate detection). With
//! idempotence (`acks=all`) each batch is stamped with its sequence number when it is sent:
//! - after the last batch in flight (`its sequence + its records`), or
//! - when nothing is in flight, at `acked`: the sequence the broker expects next.
//!
//! When a batch fails, nothing more is sent on that partition until every batch in flight there has been
//! answered; the failed ones go back into the queue in their order and, since nothing is in flight then,
//! are stamped again from `acked`. That one rule covers retries (same sequences: a batch the broker did
//! write comes back as a duplicate, which counts as delivered), batches refused for good (the later ones
//! move down over the gap they leave) and splits of batches refused as too large. A broker that lost the
//! producer's state (`UNKNOWN_PRODUCER_ID`, or `OUT_OF_ORDER_SEQUENCE` on the batch it expects next) gets
//! a new producer id, and each partition starts again at sequence 0 once its batches in flight are in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::mpsc;

use crate::accumulator::Full;
use crate::batch::{sequence_after, ProducerStamp, Sealed};
use crate::connection::{Connection, ConnectionError};
use crate::control::{ClusterView, Contact, TopicView};
use crate::link::{self, Event, Link, Outgoing};
use crate::producer::{FailedRecord, ProduceError, ProducerConfig, Report, Shared};
use crate::sealer::{Ready, Sealer};

/// Batches in flight per partition at most (Kafka keeps the last five per producer for deduplication).
const MAX_IN_FLIGHT: usize = 5;
/// Produce versions this producer speaks: record batches (v3) up to the last with topic names (v12).
const PRODUCE_VERSIONS: (i16, i16) = (3, 9);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often the metadata is refreshed while all is well (Kafka's `metadata.max.age.ms`).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

pub(crate) type Reporter<T> = Box<dyn FnMut(Report<T>) + Send>;

/// Runs the sender until the producer is closed; returns how many records were never reported.
pub(crate) fn run<T: Send + 'static>(
    config: ProducerConfig,
    shared: Arc<Shared<T>>,
    sealer: Sealer<T>,
    report: Reporter<T>,
) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(Sender::new(config, shared, sealer, report).run())
}

/// Results of the background tasks the sender starts.
enum Done {
    Metadata(Result<ClusterView, String>),
    ProducerId(Result<(i64, i16), String>),
    Connected { node: i32, result: Result<Connection, ConnectionError> },
}

struct Queued<T> {
    order: u64,
    batch: Sealed<T>,
}

struct InFlight<T> {
    token: u64,
    order: u64,
    sequence: i32,
    batch: Sealed<T>,
}

struct PartitionState<T> {
    leader: Option<i32>,
    queue: VecDeque<Queued<T>>,
    in_flight: VecDeque<InFlight<T>>,
    /// The sequence the broker expects next from `generation`'s producer id.
    acked: i32,
    generation: u64,
    /// A batch failed: send nothing more until the batches in flight are answered.
    draining: bool,
    not_before: Option<Instant>,
    failures: u32,
}

impl<T> PartitionState<T> {
    fn new(leader: Option<i32>) -> Self {
        Self {
            leader,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            acked: 0,
            generation: 0,
            draining: false,
            not_before: None,
            failures: 0,
        }
    }

    /// Puts a batch back in its place in the queue (the queue is in seal order).
    fn requeue(&mut self, order: u64, batch: Sealed<T>) {
        let at = self.queue.partition_point(|q| q.order <= order);
        self.queue.insert(at, Queued { order, batch });
    }

    fn back_off(&mut self, now: Instant) {
        self.failures += 1;
        self.not_before = Some(now + backoff(self.failures));
    }
}

enum LinkState {
    Connecting,
    Up { id: u64, link: Link },
    Down { until: Instant, failures: u32 },
}

struct Sender<T> {
    config: ProducerConfig,
    shared: Arc<Shared<T>>,
    sealer: Sealer<T>,
    report: Reporter<T>,
    events: mpsc::UnboundedReceiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    done: mpsc::UnboundedReceiver<Done>,
    done_tx: mpsc::UnboundedSender<Done>,
    brokers: HashMap<i32, String>,
    partitions: HashMap<(Arc<str>, u32), PartitionState<T>>,
    /// Which partition and link each request in flight belongs to.
    tokens: HashMap<u64, (Arc<str>, u32, u64)>,
    links: HashMap<i32, LinkState>,
    link_nodes: HashMap<u64, i32>,
    produce_version: HashMap<i32, i16>,
    producer: Option<(i64, i16)>,
    generation: u64,
    producer_id_pending: bool,
    producer_id_not_before: Option<Instant>,
    producer_id_failures: u32,
    /// Topics whose metadata is wanted; the fetch in progress, if any.
    metadata_wanted: HashSet<Arc<str>>,
    metadata_pending: bool,
    metadata_not_before: Option<Instant>,
    metadata_failures: u32,
    metadata_fetched: Instant,
    unreachable: bool,
    next_token: u64,
    next_order: u64,
    next_link: u64,
}

impl<T: Send + 'static> Sender<T> {
    fn new(config: ProducerConfig, shared: Arc<Shared<T>>, sealer: Sealer<T>, report: Reporter<T>) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (done_tx, done) = mpsc::unbounded_channel();
        Self {
            config,
            shared,
            sealer,
            report,
            events,
            events_tx,
            done,
            done_tx,
            brokers: HashMap::new(),
            partitions: HashMap::new(),
            tokens: HashMap::new(),
            links: HashMap::new(),
            link_nodes: HashMap::new(),
            produce_version: HashMap::new(),
            producer: None,
            generation: 0,
            producer_id_pending: false,
            producer_id_not_before: None,
            producer_id_failures: 0,
            metadata_wanted: HashSet::new(),
            metadata_pending: false,
            metadata_not_before: None,
            metadata_failures: 0,
            metadata_fetched: Instant::now(),
            unreachable: false,
            next_token: 0,
            next_order: 0,
            next_link: 0,
        }
    }

    async fn run(mut self) -> usize {
        let mut full = Vec::new();
        loop {
            let now = Instant::now();
            let (next_linger, closed) = {
                let mut accumulator = self.shared.lock();
                let next = accumulator.take_due(now, self.config.linger, &mut full);
                self.metadata_wanted.extend(accumulator.new_topics.drain(..));
                (next, accumulator.closed)
            };
            if closed {
                return self.shared.lock().pending;
            }
            for batch in full.drain(..) {
                self.hand_off(batch);
            }
            self.fetch_metadata(now);
            self.fetch_producer_id(now);
            self.dispatch(now);
            let wake_at = [next_linger, self.next_retry(now)].into_iter().flatten().min();
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.shared.wake.notified() => {}
                Some(event) = self.events.recv() => self.on_event(event),
                Some(done) = self.done.recv() => self.on_done(done),
                Some(ready) = self.sealer.next() => self.on_sealed(ready),
                () = sleep => {}
            }
            while let Ok(event) = self.events.try_recv() {
                self.on_event(event);
            }
            while let Ok(done) = self.done.try_recv() {
                self.on_done(done);
            }
            while let Some(ready) = self.sealer.try_next() {
                self.on_sealed(ready);
            }
        }
    }

    /// Gives a full batch to the compression thread; it comes back to [`Self::on_sealed`].
    fn hand_off(&mut self, full: Full<T>) {
        let order = self.next_order;
        self.next_order += 1;
        if !self.partitions.contains_key(&(full.topic.clone(), full.partition)) {
            self.metadata_wanted.insert(full.topic.clone());
        }
        self.sealer.seal(order, full);
    }

    /// Queues a sealed batch on its partition. Batches come back in the order they were handed over, so
    /// the queue stays in that order (a batch put back for a retry came earlier still).
    fn on_sealed(&mut self, ready: Ready<T>) {
        let state = self.partitions.entry((ready.topic, ready.partition)).or_insert_with(|| PartitionState::new(None));
        state.queue.push_back(Queued { order: ready.order, batch: ready.batch });
    }

    /// The earliest time a backoff ends.
    fn next_retry(&self, now: Instant) -> Option<Instant> {
        let partitions = self.partitions.values().filter(|p| !p.queue.is_empty()).filter_map(|p| p.not_before);
        let links = self.links.values().filter_map(|l| match l {
            LinkState::Down { until, .. } => Some(*until),
            _ => None,
        });
        let refresh = Some(self.metadata_fetched + METADATA_MAX_AGE);
        partitions
            .chain(links)
            .chain(self.metadata_not_before)
            .chain(self.producer_id_not_before)
            .chain(refresh)
            .map(|at| at.max(now + Duration::from_millis(1)))
            .min()
    }

    /// The bootstrap brokers, then every broker the metadata named, for Metadata and InitProducerId.
    fn contact(&self) -> Contact {
        let mut addresses: Vec<String> = self.config.brokers.clone();
        for address in self.brokers.values() {
            if !addresses.contains(address) {
                addresses.push(address.clone());
            }
        }
        Contact {
            addresses,
            security: self.config.security.clone(),
            client_id: self.config.client_id.clone(),
            timeout: self.config.request_timeout,
        }
    }

    fn fetch_metadata(&mut self, now: Instant) {
        if now >= self.metadata_fetched + METADATA_MAX_AGE {
            self.metadata_wanted.extend(self.partitions.keys().map(|(topic, _)| topic.clone()));
            self.metadata_fetched = now;
        }
        if self.metadata_pending || self.metadata_wanted.is_empty() || self.metadata_not_before.is_some_and(|t| now < t)
        {
            return;
        }
        self.metadata_pending = true;
        let mut topics: Vec<String> = self.metadata_wanted.iter().map(|t| t.to_string()).collect();
        // Ask for every topic known, so a leader change anywhere is seen at once.
        for (topic, _) in self.partitions.keys() {
            if !topics.iter().any(|t| **t == **topic) {
                topics.push(topic.to_string());
            }
        }
        let (contact, done) = (self.contact(), self.done_tx.clone());
        tokio::spawn(async move {
            let _ = done.send(Done::Metadata(contact.metadata(&topics).await));
        });
    }

    fn fetch_producer_id(&mut self, now: Instant) {
        if !self.config.idempotent()
            || self.producer.is_some()
            || self.producer_id_pending
            || self.producer_id_not_before.is_some_and(|t| now < t)
        {
            return;
        }
        self.producer_id_pending = true;
        let (contact, done) = (self.contact(), self.done_tx.clone());
        tokio::spawn(async move {
            let _ = done.send(Done::ProducerId(contact.init_producer_id().await));
        });
    }

    fn on_done(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Metadata(Ok(view)) => {
                self.metadata_pending = false;
                self.metadata_failures = 0;
                self.metadata_not_before = None;
                self.metadata_fetched = now;
                self.reachable();
                self.apply_metadata(view, now);
            }
            Done::Metadata(Err(reason)) => {
                self.metadata_pending = false;
                self.metadata_failures += 1;
                self.metadata_not_before = Some(now + backoff(self.metadata_failures));
                self.unreachable(reason);
            }
            Done::ProducerId(Ok(producer)) => {
                self.producer_id_pending = false;
                self.producer_id_failures = 0;
                self.producer_id_not_before = None;
                self.producer = Some(producer);
                self.reachable();
                tracing::debug!(producer_id = producer.0, epoch = producer.1, "idempotent producer id");
            }
            Done::ProducerId(Err(reason)) => {
                self.producer_id_pending = false;
                self.producer_id_failures += 1;
                self.producer_id_not_before = Some(now + backoff(self.producer_id_failures));
                self.unreachable(reason);
            }
            Done::Connected { node, result } => match result {
                Ok(connection) => {
                    let Some(version) = connection.version(ApiKey::Produce, PRODUCE_VERSIONS) else {
                        let reason = format!(
                            "{}: the broker supports no Produce version in 3..=9 (record batches need Kafka 0.11 or \
                             later)",
                            connection.broker()
                        );
                        self.link_failed(node, reason, now);
                        return;
                    };
                    let id = self.next_link;
                    self.next_link += 1;
                    let link = link::start(
                        id,
                        connection,
                        version,
                        self.config.acks != 0,
                        self.config.request_timeout + Duration::from_secs(5),
                        self.events_tx.clone(),
                    );
                    self.produce_version.insert(node, version);
                    self.link_nodes.insert(id, node);
                    self.links.insert(node, LinkState::Up { id, link });
                    self.reachable();
                }
                Err(error) => self.link_failed(node, error.to_string(), now),
            },
        }
    }

    fn link_failed(&mut self, node: i32, reason: String, now: Instant) {
        let failures = match self.links.get(&node) {
            Some(LinkState::Down { failures, .. }) => failures + 1,
            _ => 1,
        };
        self.links.insert(node, LinkState::Down { until: now + backoff(failures), failures });
        // The leader may have moved.
        let topics: Vec<Arc<str>> =
            self.partitions.iter().filter(|(_, p)| p.leader == Some(node)).map(|((t, _), _)| t.clone()).collect();
        self.metadata_wanted.extend(topics);
        if !self.links.values().any(|l| matches!(l, LinkState::Up { .. })) {
            self.unreachable(reason);
        } else {
            tracing::warn!(node, "cannot connect to broker {node}: {reason}; retrying");
        }
    }

    fn apply_metadata(&mut self, view: ClusterView, now: Instant) {
        self.brokers = view.brokers;
        for (topic, state) in view.topics {
            let name: Arc<str> = Arc::from(topic.as_str());
            match state {
                TopicView::Partitions(leaders) => {
                    self.metadata_wanted.remove(&name);
                    for (index, leader) in leaders.iter().enumerate() {
                        let key = (name.clone(), index as u32);
                        let state = self.partitions.entry(key).or_insert_with(|| PartitionState::new(None));
                        state.leader = *leader;
                        if leader.is_none() {
                            self.metadata_wanted.insert(name.clone());
                        }
                    }
                    let mut accumulator = self.shared.lock();
                    let waiting = accumulator.set_partitions(&topic, leaders.len() as u32);
                    for w in waiting {
                        accumulator.append(&topic, w.timestamp, w.key.as_deref(), &w.value, w.opaque);
                    }
                }
                TopicView::NotReady { code } => {
                    tracing::debug!(topic, code, "topic metadata not ready; asking again");
                    self.metadata_not_before = Some(now + backoff(self.metadata_failures.max(1)));
                }
                TopicView::Refused { code } => {
                    self.metadata_wanted.remove(&name);
                    let error = ProduceError::new(code, None);
                    let waiting = self.shared.lock().take_waiting(&topic);
                    let mut refused = Vec::new();
                    for w in waiting {
                        refused.push(FailedRecord {
                            topic: name.clone(),
                            key: w.key,
                            value: w.value,
                            opaque: w.opaque,
                            error: error.clone(),
                        });
                    }
                    // Batches queued for a topic that went away are refused too; those in flight get
                    // their own answer, and one still being compressed is refused once it is queued and
                    // the metadata asked again.
                    for ((t, _), state) in self.partitions.iter_mut().filter(|((t, _), _)| **t == *topic) {
                        for queued in state.queue.drain(..) {
                            for (key, value, opaque) in queued.batch.into_records() {
                                refused.push(FailedRecord {
                                    topic: t.clone(),
                                    key,
                                    value,
                                    opaque,
                                    error: error.clone(),
                                });
                            }
                        }
                        state.draining = !state.in_flight.is_empty();
                    }
                    self.fail(refused);
                }
            }
        }
        // Topics asked about but not answered for: ask again later.
        if !self.metadata_wanted.is_empty() && self.metadata_not_before.is_none() {
            self.metadata_not_before = Some(now + MIN_BACKOFF);
        }
    }

    /// Sends what can be sent: per partition, in order, while its leader's link is up.
    fn dispatch(&mut self, now: Instant) {
        let idempotent = self.config.idempotent();
        if idempotent && self.producer.is_none() {
            return;
        }
        let mut connect = Vec::new();
        let mut want_metadata = Vec::new();
        for ((topic, partition), state) in &mut self.partitions {
            if state.queue.is_empty() || state.draining || state.not_before.is_some_and(|t| now < t) {
                continue;
            }
            let Some(leader) = state.leader else {
                want_metadata.push(topic.clone());
                continue;
            };
            let (link_id, link) = match self.links.get(&leader) {
                Some(LinkState::Up { id, link }) => (*id, link),
                Some(LinkState::Connecting) => continue,
                Some(LinkState::Down { until, .. }) if now < *until => continue,
                _ => {
                    connect.push(leader);
                    continue;
                }
            };
            while state.in_flight.len() < MAX_IN_FLIGHT {
                let Some(Queued { order, mut batch }) = state.queue.pop_front() else { break };
                let mut sequence = -1;
                if let Some((id, epoch)) = self.producer.filter(|_| idempotent) {
                    sequence = match state.in_flight.back() {
                        None => {
                            if state.generation != self.generation {
                                state.generation = self.generation;
                                state.acked = 0;
                            }
                            state.acked
                        }
                        Some(_) if state.generation != self.generation => {
                            state.queue.push_front(Queued { order, batch });
                            break;
                        }
                        Some(last) => sequence_after(last.sequence, last.batch.len() as i32),
                    };
                    batch.set_producer(ProducerStamp { id, epoch, sequence });
                }
                let token = self.next_token;
                self.next_token += 1;
                let request = produce_request(
                    topic,
                    *partition,
                    batch.wire.clone(),
                    self.config.acks,
                    self.config.request_timeout,
                );
                if link.requests.send(Outgoing { token, request }).is_err() {
                    // The link's writer is gone; its closing event is on its way.
                    state.queue.push_front(Queued { order, batch });
                    break;
                }
                self.tokens.insert(token, (topic.clone(), *partition, link_id));
                state.in_flight.push_back(InFlight { token, order, sequence, batch });
            }
        }
        self.metadata_wanted.extend(want_metadata);
        for node in connect {
            self.connect(node);
        }
    }

    fn connect(&mut self, node: i32) {
        let Some(address) = self.brokers.get(&node).cloned() else {
            self.metadata_wanted
                .extend(self.partitions.iter().filter(|(_, p)| p.leader == Some(node)).map(|((t, _), _)| t.clone()));
            return;
        };
        self.links.insert(node, LinkState::Connecting);
        let config = self.config.clone();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = Connection::open(&address, &config.security, &config.client_id, config.request_timeout).await;
            let _ = done.send(Done::Connected { node, result });
        });
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Answered { token, response } => {
                let Some((topic, partition, _)) = self.tokens.remove(&token) else { return };
                let answer = match response {
                    None => (0, None),
                    Some(response) => partition_answer(&response, &topic, partition),
                };
                self.on_answer(topic, partition, token, answer, now);
            }
            Event::Closed { link, reason } => {
                let Some(node) = self.link_nodes.remove(&link) else { return };
                if matches!(self.links.get(&node), Some(LinkState::Up { id, .. }) if *id == link) {
                    self.links.insert(node, LinkState::Down { until: now + MIN_BACKOFF, failures: 0 });
                }
                let lost: Vec<(u64, Arc<str>, u32)> = self
                    .tokens
                    .iter()
                    .filter(|(_, (_, _, l))| *l == link)
                    .map(|(token, (topic, partition, _))| (*token, topic.clone(), *partition))
                    .collect();
                if !lost.is_empty() {
                    tracing::debug!(node, requests = lost.len(), "connection lost with requests in flight: {reason}");
                }
                let network = ResponseError::NetworkException.code();
                for (token, topic, partition) in lost {
                    self.tokens.remove(&token);
                    self.on_answer(topic, partition, token, (network, Some(reason.clone())), now);
                }
                self.metadata_wanted.extend(self.partitions.keys().map(|(t, _)| t.clone()));
            }
        }
    }

    fn on_answer(&mut self, topic: Arc<str>, partition: u32, token: u64, answer: (i16, Option<String>), now: Instant) {
        let (code, message) = answer;
        let Some(state) = self.partitions.get_mut(&(topic.clone(), partition)) else { return };
        let Some(at) = state.in_flight.iter().position(|f| f.token == token) else { return };
        let sent = state.in_flight.remove(at).expect("a batch in flight");
        let error = ResponseError::try_from_code(code);
        let mut refused = Vec::new();
        let mut delivered = None;
        match error {
            None | Some(ResponseError::DuplicateSequenceNumber) => {
                if sent.sequence >= 0 {
                    state.acked = sequence_after(sent.sequence, sent.batch.len() as i32);
                }
                state.failures = 0;
                state.not_before = None;
                delivered = Some(sent.batch.opaques);
            }
            Some(ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge) => {
                state.draining = true;
                match sent.batch.split(ProducerStamp::NONE) {
                    Ok((first, second)) => {
                        tracing::debug!(topic = &*topic, partition, "batch refused as too large; splitting it");
                        // Equal orders queue after each other: the first half goes in first.
                        state.requeue(sent.order, first);
                        state.requeue(sent.order, second);
                    }
                    Err(single) => {
                        let error = ProduceError::new(code, message);
                        for (key, value, opaque) in single.into_records() {
                            refused.push(FailedRecord {
                                topic: topic.clone(),
                                key,
                                value,
                                opaque,
                                error: error.clone(),
                            });
                        }
                    }
                }
            }
            Some(
                e @ (ResponseError::OutOfOrderSequenceNumber
                | ResponseError::UnknownProducerId
                | ResponseError::InvalidProducerEpoch),
            ) if !state.draining && sent.sequence == state.acked => {
                // The broker lost this producer's state (log truncation, retention): start again with a new id.
                tracing::warn!(
                    topic = &*topic,
                    partition,
                    "broker answered {e:?} to the batch it expects next; getting a new producer id"
                );
                state.draining = true;
                state.requeue(sent.order, sent.batch);
                self.producer = None;
                self.generation += 1;
            }
            Some(e) if e.is_retriable() || state.draining || is_sequence_error(e) => {
                if matches!(
                    e,
                    ResponseError::NotLeaderOrFollower
                        | ResponseError::LeaderNotAvailable
                        | ResponseError::UnknownTopicOrPartition
                        | ResponseError::KafkaStorageError
                        | ResponseError::NetworkException
                        | ResponseError::FencedLeaderEpoch
                ) {
                    self.metadata_wanted.insert(topic.clone());
                }
                tracing::debug!(topic = &*topic, partition, error = ?e, "produce failed; retrying");
                state.draining = true;
                state.requeue(sent.order, sent.batch);
                state.back_off(now);
            }
            Some(_) => {
                state.draining = true;
                let error = ProduceError::new(code, message);
                for (key, value, opaque) in sent.batch.into_records() {
                    refused.push(FailedRecord { topic: topic.clone(), key, value, opaque, error: error.clone() });
                }
            }
        }
        if state.in_flight.is_empty() {
            state.draining = false;
        }
        if let Some(opaques) = delivered {
            let count = opaques.len();
            (self.report)(Report::Delivered { topic, opaques });
            self.reported(count);
        }
        self.fail(refused);
    }

    /// Gives refused records back to the owner.
    fn fail(&mut self, refused: Vec<FailedRecord<T>>) {
        if refused.is_empty() {
            return;
        }
        let count = refused.len();
        for record in refused {
            (self.report)(Report::Failed(record));
        }
        self.reported(count);
    }

    fn reported(&self, count: usize) {
        self.shared.lock().pending -= count;
        self.shared.reported.notify_all();
    }

    fn unreachable(&mut self, reason: String) {
        if !self.unreachable {
            self.unreachable = true;
            (self.report)(Report::Unreachable(reason));
        } else {
            tracing::debug!("still no broker reachable: {reason}");
        }
    }

    fn reachable(&mut self) {
        if self.unreachable {
            self.unreachable = false;
            (self.report)(Report::Reachable);
        }
    }
}

fn is_sequence_error(e: ResponseError) -> bool {
    matches!(e, ResponseError::OutOfOrderSequenceNumber | ResponseError::UnknownProducerId)
}

fn backoff(failures: u32) -> Duration {
    (MIN_BACKOFF * 2u32.saturating_pow(failures.saturating_sub(1).min(10))).min(MAX_BACKOFF)
}

fn produce_request(topic: &str, partition: u32, records: bytes::Bytes, acks: i16, timeout: Duration) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition as i32)
                .with_records(Some(records))])])
}

/// The error code and message for one partition in a Produce response (a missing partition is a
/// network-level failure: retried).
fn partition_answer(response: &ProduceResponse, topic: &str, partition: u32) -> (i16, Option<String>) {
    response
        .responses
        .iter()
        .filter(|t| &*t.name.0 == topic)
        .flat_map(|t| &t.partition_responses)
        .find(|p| p.index == partition as i32)
        .map_or((ResponseError::NetworkException.code(), Some("no answer for the partition".into())), |p| {
            (p.error_code, p.error_message.as_ref().map(|m| m.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeued_batches_keep_their_order_and_halves_stay_in_order() {
        let batch = |opaque: u32| {
            let mut open = crate::batch::OpenBatch::new(64);
            open.push(0, None, b"v", opaque);
            open.seal(crate::batch::Codec::None, ProducerStamp::NONE)
        };
        let mut state = PartitionState::new(Some(1));
        state.queue.push_back(Queued { order: 5, batch: batch(5) });
        state.requeue(2, batch(2));
        state.requeue(3, batch(30));
        state.requeue(3, batch(31));
        state.requeue(1, batch(1));
        let opaques: Vec<u32> = state.queue.iter().map(|q| q.batch.opaques[0]).collect();
        assert_eq!(opaques, [1, 2, 30, 31, 5]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), MIN_BACKOFF);
        assert_eq!(backoff(2), MIN_BACKOFF * 2);
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
