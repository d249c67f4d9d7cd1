//! One broker's side of the fetcher: a task on the runtime that holds a connection to the broker (opened
//! at the first order, and again after a failure), carries out each order in turn, and sends the answer
//! back to the consumer's thread; every order is answered, a failure or a panic included. Fetch answers are decoded here, on the runtime's workers, so the
//! consumer's thread only copies values into the open batch.
//!
//! The connection is the agent's producer's ([`Connection`]): TLS and SASL as `[indexer.input]` says,
//! API versions negotiated. Fetch v4–v12 name topics (v13 and later name them by id); ListOffsets v1–v7.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use logpipe_producer::{Connection, ConnectionError, Phase};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::records::{self, Aborted, Fetched};
use super::settings::Settings;

const FETCH_VERSIONS: (i16, i16) = (4, 12);
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 7);
/// Beyond `fetch.wait.max.ms`, how long a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition, and the offset to fetch from or the time to list an offset for (-2 earliest, -1 latest).
/// `order` numbers the order it was named in, so that an answer to an older one is recognised.
#[derive(Debug, Clone)]
pub(super) struct Asked {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub order: u64,
}

#[derive(Debug)]
pub(super) enum Order {
    Fetch(Vec<Asked>),
    ListOffsets(Vec<Asked>),
}

impl Order {
    fn asked(&self) -> &[Asked] {
        match self {
            Order::Fetch(asked) | Order::ListOffsets(asked) => asked,
        }
    }
}

/// What one partition got.
#[derive(Debug)]
pub(super) enum Got {
    Records(Fetched),
    Offset(i64),
    /// The broker's error code for the partition (or for the whole request).
    Refused(i16),
    /// The records do not decode.
    Corrupt(String),
}

#[derive(Debug)]
pub(super) struct Answer {
    /// The link's serial number ([`start`]): a link replaced since (its broker moved) is told apart.
    pub link: u64,
    pub was_fetch: bool,
    /// Each partition asked for, and what it got; or the connection's failure, for all of them.
    pub outcome: Result<Vec<(Asked, Got)>, Failed>,
}

/// A connection's failure, and the partitions the order named.
#[derive(Debug)]
pub(super) struct Failed {
    pub asked: Vec<Asked>,
    pub error: ConnectionError,
}

/// Starts a broker's task, numbered `link`; orders go into the returned channel, answers come out of
/// `answers`.
pub(super) fn start(
    runtime: &Handle,
    link: u64,
    address: String,
    settings: Arc<Settings>,
    answers: Sender<Answer>,
) -> UnboundedSender<Order> {
    let (orders, received) = unbounded_channel();
    runtime.spawn(serve(link, address, settings, received, answers));
    orders
}

async fn serve(
    link: u64,
    address: String,
    settings: Arc<Settings>,
    mut orders: UnboundedReceiver<Order>,
    answers: Sender<Answer>,
) {
    let mut connection: Option<Connection> = None;
    while let Some(order) = orders.recv().await {
        let was_fetch = matches!(order, Order::Fetch(_));
        let asked = order.asked().to_vec();
        // A panic here would leave the order unanswered and its partitions waiting for good: it is
        // answered as a failure instead.
        let carried = AssertUnwindSafe(carry_out(&mut connection, &address, &settings, order)).catch_unwind().await;
        let (outcome, throttle) = carried.unwrap_or_else(|_| {
            let message = "the fetch task failed (a bug); the partitions are fetched again".to_owned();
            let error =
                ConnectionError::Protocol { broker: address.clone(), during: Phase::Request(ApiKey::Fetch), message };
            (Err(Failed { asked, error }), Duration::ZERO)
        });
        if outcome.is_err() {
            // Out of step or broken: the next order opens a new one.
            connection = None;
        }
        if answers.send(Answer { link, was_fetch, outcome }).is_err() {
            return;
        }
        // A broker over its quota says how long to wait before the next request (KIP-219).
        if !throttle.is_zero() {
            tokio::time::sleep(throttle).await;
        }
    }
}

/// Carries out `order` on the connection, opening one if there is none. A connection kept from before
/// that fails at once (the broker closed it while it was idle, as brokers do after
/// `connections.max.idle.ms`) is replaced once, quietly. Also returns how long the broker asked to be
/// left alone.
async fn carry_out(
    connection: &mut Option<Connection>,
    address: &str,
    settings: &Settings,
    order: Order,
) -> (Result<Vec<(Asked, Got)>, Failed>, Duration) {
    let asked = order.asked();
    let failed = |error| (Err(Failed { asked: asked.to_vec(), error }), Duration::ZERO);
    let mut kept = connection.is_some();
    loop {
        let open = match connection {
            Some(c) => c,
            None => match Connection::open(address, &settings.security, &settings.client_id, REQUEST_TIMEOUT).await {
                Ok(c) => connection.insert(c),
                Err(error) => return failed(error),
            },
        };
        let done = match &order {
            Order::Fetch(asked) => fetch(open, settings, asked).await,
            Order::ListOffsets(asked) => list_offsets(open, settings, asked).await.map(|got| (got, Duration::ZERO)),
        };
        match done {
            Ok((got, throttle)) => return (Ok(got), throttle),
            Err(error) if kept && matches!(error, ConnectionError::Closed { .. }) => {
                tracing::debug!("{error}; connecting again");
                *connection = None;
                kept = false;
            }
            Err(error) => return failed(error),
        }
    }
}

/// Names each topic once, with its partitions, in the order asked.
fn by_topic<T>(asked: &[Asked], mut entry: impl FnMut(&Asked) -> T) -> Vec<(TopicName, Vec<T>)> {
    let mut topics: Vec<(TopicName, Vec<T>)> = Vec::new();
    for a in asked {
        let name = TopicName(StrBytes::from_string(a.topic.to_string()));
        match topics.iter_mut().find(|(n, _)| *n == name) {
            Some((_, entries)) => entries.push(entry(a)),
            None => topics.push((name, vec![entry(a)])),
        }
    }
    topics
}

/// Pairs each partition asked for with what the answer says of it, or `missing` when it says nothing.
fn pair<'a, R>(
    asked: &'a [Asked],
    mut answered: HashMap<(&'a str, i32), R>,
    got: impl Fn(&Asked, R) -> Got,
    missing: impl Fn(&Asked) -> Got,
) -> Vec<(Asked, Got)> {
    asked
        .iter()
        .map(|a| {
            let result = match answered.remove(&(&*a.topic, a.partition)) {
                Some(r) => got(a, r),
                None => missing(a),
            };
            (a.clone(), result)
        })
        .collect()
}

/// A Fetch, and how long the broker asked to be left alone (its throttle time).
async fn fetch(
    connection: &mut Connection,
    settings: &Settings,
    asked: &[Asked],
) -> Result<(Vec<(Asked, Got)>, Duration), ConnectionError> {
    let version = connection.require_version(ApiKey::Fetch, FETCH_VERSIONS)?;
    let topics = by_topic(asked, |a| {
        let partition = FetchPartition::default().with_partition(a.partition).with_fetch_offset(a.offset);
        partition.with_partition_max_bytes(settings.partition_max_bytes)
    });
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(settings.max_wait.as_millis().try_into().unwrap_or(i32::MAX))
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.max_bytes)
        .with_isolation_level(settings.isolation_level)
        .with_topics(
            topics.into_iter().map(|(name, p)| FetchTopic::default().with_topic(name).with_partitions(p)).collect(),
        );
    let response = connection.call(&request, version, settings.max_wait + REQUEST_TIMEOUT).await?;
    let throttle = Duration::from_millis(response.throttle_time_ms.max(0) as u64);
    if response.error_code != 0 {
        // The whole request was refused (fetch sessions, v7 and later, which this client does not use).
        return Ok((asked.iter().map(|a| (a.clone(), Got::Refused(response.error_code))).collect(), throttle));
    }
    let mut answered = HashMap::new();
    for topic in &response.responses {
        for p in &topic.partitions {
            answered.insert((topic.topic.0.as_str(), p.partition_index), p);
        }
    }
    let read_committed = settings.isolation_level == 1;
    // A partition the answer leaves out got nothing new.
    let nothing = |a: &Asked| Got::Records(Fetched { values: Vec::new(), next: a.offset, at_end: true });
    let got = |a: &Asked, p: &PartitionData| {
        if p.error_code != 0 {
            return Got::Refused(p.error_code);
        }
        let aborted: Option<Vec<Aborted>> = read_committed.then(|| {
            let listed = p.aborted_transactions.iter().flatten();
            listed.map(|t| Aborted { producer_id: t.producer_id.0, first_offset: t.first_offset }).collect()
        });
        let end = if read_committed && p.last_stable_offset >= 0 { p.last_stable_offset } else { p.high_watermark };
        match records::decode(p.records.clone().unwrap_or_default(), a.offset, aborted.as_deref()) {
            Ok(fetched) => Got::Records(fetched.at(end)),
            Err(e) => Got::Corrupt(e),
        }
    };
    Ok((pair(asked, answered, got, nothing), throttle))
}

async fn list_offsets(
    connection: &mut Connection,
    settings: &Settings,
    asked: &[Asked],
) -> Result<Vec<(Asked, Got)>, ConnectionError> {
    let version = connection.require_version(ApiKey::ListOffsets, LIST_OFFSETS_VERSIONS)?;
    let topics =
        by_topic(asked, |a| ListOffsetsPartition::default().with_partition_index(a.partition).with_timestamp(a.offset));
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(settings.isolation_level)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, p)| ListOffsetsTopic::default().with_name(name).with_partitions(p))
                .collect(),
        );
    let response = connection.call(&request, version, REQUEST_TIMEOUT).await?;
    let mut answered = HashMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            answered.insert((topic.name.0.as_str(), p.partition_index), p);
        }
    }
    let got = |_: &Asked, p: &ListOffsetsPartitionResponse| match p.error_code {
        0 => Got::Offset(p.offset),
        code => Got::Refused(code),
    };
    Ok(pair(asked, answered, got, |_| Got::Refused(ResponseError::UnknownTopicOrPartition.code())))
}
