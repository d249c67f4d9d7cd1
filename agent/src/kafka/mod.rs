//! The Kafka output: a [`Sink`] over logpipe's own producer ([`native`], the default) or librdkafka
//! ([`librdkafka`], `client = "librdkafka"`, for its extra properties). Both report into [`Shared`]:
//! delivered records become [`Ack`]s, refused ones wait here and are sent again.
//!
//! Durability choices:
//! - `acks=all` and idempotence by default, so the producer's own retries neither duplicate nor reorder
//!   records within a partition.
//! - No delivery timeout: while the cluster is unreachable records wait in the producer and are retried
//!   with capped backoff, forever. Reading pauses once `queue_max_bytes` are unacknowledged, so the file
//!   stays the buffer.
//! - A record the cluster refuses for good (too large on its own, a missing topic, no right to write) is
//!   kept and sent again with capped exponential backoff; a too-large one has its message cut first and
//!   is tagged `message_truncated`. Nothing is dropped.
//! - The cluster's state is logged once per change (unreachable / reachable again), not per attempt; so
//!   is each topic's (delivery failing, e.g. a topic that does not exist, / delivering again).
//! - At shutdown, what is left unacknowledged is summarised in one line rather than one line per event.

mod librdkafka;
mod native;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use self::librdkafka::client_config;
use crate::config::{KafkaClient, OutputConfig};
use crate::error::Result;
use crate::sink::{Ack, Record, Sink};
use crate::stalls::{Ongoing, Stall, StallKind};

/// Longest wait between two resends of a record that failed permanently.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);
/// Refusals of one topic closer together than this are one round of the resend backoff.
const REFUSAL_ROUND: Duration = Duration::from_millis(50);

pub struct KafkaSink {
    client: Client,
    shared: Arc<Shared>,
}

enum Client {
    Native(native::Native),
    Librdkafka(librdkafka::Librdkafka),
    /// After drop took the client.
    Closed,
}

/// Why the cluster refused a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    UnknownTopic,
    TooLarge,
    Unauthorized,
    /// Any other error, as the client words it.
    Other(String),
}

struct Shared {
    acks: Sender<Vec<Ack>>,
    failed: Mutex<VecDeque<Failed>>,
    down: AtomicBool,
    /// Events whose message was cut after the broker refused them as too large.
    too_large: AtomicU64,
    /// Topics whose deliveries fail (logged once when it starts and once when it clears).
    stalled: Mutex<Ongoing>,
    /// Whether `stalled` may be non-empty: spares the lock on every acknowledgement.
    any_stalled: AtomicBool,
    /// Events the client gave back unsent when it was stopped at shutdown.
    purged: AtomicU64,
    /// Rounds of refusals in a row per topic and when the last began, for the resend backoff; cleared
    /// when the topic delivers again.
    refusals: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Shared {
    /// Records of `topic` were acknowledged: their acks go to the tailer in one message.
    fn delivered(&self, topic: &str, acks: Vec<Ack>) {
        self.reachable();
        if self.any_stalled.load(Ordering::Relaxed) {
            let mut stalled = self.stalled.lock().unwrap_or_else(PoisonError::into_inner);
            if stalled.clear(topic) {
                tracing::info!(topic, "topic {topic} accepts events again; delivering");
                self.refusals.lock().unwrap_or_else(PoisonError::into_inner).remove(topic);
            }
            self.any_stalled.store(!stalled.is_empty(), Ordering::Relaxed);
        }
        let _ = self.acks.send(acks);
    }

    /// No broker could be reached: logged once until one answers again.
    fn unreachable(&self, reason: &str) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("all Kafka brokers are unreachable ({reason}); retrying, events wait in the queue");
        }
    }

    fn reachable(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Kafka brokers reachable again");
        }
    }

    /// The cluster refused a record of `topic`: keep it to send again, and log it if the topic was
    /// flowing until now.
    /// It is sent again after a backoff that doubles with each refusal in a row for the topic.
    fn refused(&self, topic: &str, key: Option<Vec<u8>>, payload: Vec<u8>, ack: Ack, refusal: Refusal) {
        self.log_refusal(topic, &refusal);
        let now = Instant::now();
        let rounds = {
            let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            let (rounds, last) = refusals.entry(topic.to_string()).or_insert((0, now));
            // The records of one batch are refused together: they count as one round.
            if *rounds == 0 || now.duration_since(*last) > REFUSAL_ROUND {
                *rounds += 1;
                *last = now;
            }
            *rounds
        };
        let backoff = Duration::from_millis(100u64 << rounds.saturating_sub(1).min(9)).min(MAX_RETRY_BACKOFF);
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).push_back(Failed {
            topic: topic.to_string(),
            key,
            payload,
            ack,
            refusal,
            not_before: now + backoff,
        });
    }

    fn log_refusal(&self, topic: &str, refusal: &Refusal) {
        if !self.stalled.lock().unwrap_or_else(PoisonError::into_inner).start(topic, stall_reason(refusal)) {
            tracing::debug!(topic, ?refusal, "delivery failed again; will resend");
            return;
        }
        self.any_stalled.store(true, Ordering::Relaxed);
        match refusal {
            Refusal::UnknownTopic => tracing::warn!(
                topic,
                "topic {topic} does not exist and the cluster does not create topics on first use \
                 (auto_create_topics_enable = false on logpipe's broker, auto.create.topics.enable on Kafka): its \
                 events wait and are resent; create it with `logpipe topics create {topic} --partitions N`, or \
                 enable auto-creation"
            ),
            Refusal::TooLarge => tracing::warn!(
                topic,
                "topic {topic} refused an event as too large: such events are cut, tagged message_truncated and \
                 resent; raise max_message_bytes (and the broker's message_max_bytes) to keep them whole"
            ),
            Refusal::Unauthorized => tracing::warn!(
                topic,
                "not authorized to write to topic {topic}: its events wait and are resent; grant the agent's \
                 principal WRITE on it"
            ),
            Refusal::Other(error) => tracing::warn!(
                topic,
                error = %error,
                "delivery to topic {topic} failing: its events wait and are resent (logged again when it recovers)"
            ),
        }
    }

    /// The topics whose deliveries fail now.
    fn stalls(&self) -> Vec<Stall> {
        if !self.any_stalled.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.stalled.lock().unwrap_or_else(PoisonError::into_inner).stalls(StallKind::Topic).collect()
    }
}

/// The few words `logpipe status` shows for a topic stalled by `refusal`.
fn stall_reason(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::UnknownTopic => "does not exist (auto-create off); create it with `logpipe topics create`",
        Refusal::TooLarge => "refuses too large events; they are cut and resent",
        Refusal::Unauthorized => "not authorized; grant the agent WRITE on it",
        Refusal::Other(_) => "deliveries fail; events wait and are resent",
    }
}

struct Failed {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    ack: Ack,
    refusal: Refusal,
    not_before: Instant,
}

impl KafkaSink {
    /// A producer for `config`, acknowledging delivered records on `acks`. `queue_max_bytes` sizes
    /// librdkafka's queue (with that client) so it never refuses what the tailer's budget allows.
    pub fn new(config: &OutputConfig, queue_max_bytes: usize, acks: Sender<Vec<Ack>>) -> Result<Self> {
        let shared = Arc::new(Shared {
            acks,
            failed: Mutex::new(VecDeque::new()),
            down: AtomicBool::new(false),
            too_large: AtomicU64::new(0),
            stalled: Mutex::new(Ongoing::default()),
            any_stalled: AtomicBool::new(false),
            purged: AtomicU64::new(0),
            refusals: Mutex::new(HashMap::new()),
        });
        let client = match config.client {
            KafkaClient::Logpipe => Client::Native(native::Native::new(config, shared.clone())?),
            KafkaClient::Librdkafka => {
                Client::Librdkafka(librdkafka::Librdkafka::new(config, queue_max_bytes, shared.clone())?)
            }
        };
        Ok(Self { client, shared })
    }

    fn send_raw(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], ack: Ack) {
        match &self.client {
            Client::Native(native) => native.send(topic, key, payload, ack),
            Client::Librdkafka(librdkafka) => librdkafka.send(&self.shared, topic, key, payload, ack),
            Client::Closed => {}
        }
    }

    fn resend_failed(&self) {
        let now = Instant::now();
        let due: Vec<Failed> = {
            let mut failed = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner);
            let (due, wait): (Vec<_>, Vec<_>) = failed.drain(..).partition(|f| f.not_before <= now);
            failed.extend(wait);
            due
        };
        for mut f in due {
            if f.refusal == Refusal::TooLarge {
                f.payload = shrink(&f.payload);
                self.shared.too_large.fetch_add(1, Ordering::Relaxed);
            }
            self.send_raw(&f.topic, f.key.as_deref(), &f.payload, f.ack);
        }
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, record: Record<'_>) {
        self.send_raw(record.topic, record.key, record.payload, record.ack);
    }

    fn too_large(&self) -> u64 {
        self.shared.too_large.load(Ordering::Relaxed)
    }

    fn stalls(&self) -> Vec<Stall> {
        self.shared.stalls()
    }

    fn poll(&mut self) {
        if !self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
            self.resend_failed();
        }
    }

    fn flush(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
            let client_done = match &self.client {
                Client::Native(native) => native.flush(left),
                Client::Librdkafka(librdkafka) => librdkafka.flush(left),
                Client::Closed => true,
            };
            let done = client_done && self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
            if done || Instant::now() >= deadline {
                return done;
            }
        }
    }
}

impl Drop for KafkaSink {
    /// Stops the client and says in one line how many events were left unacknowledged.
    fn drop(&mut self) {
        let unreported = match std::mem::replace(&mut self.client, Client::Closed) {
            Client::Native(native) => native.close() as u64,
            Client::Librdkafka(librdkafka) => {
                librdkafka.purge();
                0
            }
            Client::Closed => 0,
        };
        let waiting = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
        let undelivered = unreported + self.shared.purged.load(Ordering::Relaxed) + waiting;
        if undelivered > 0 {
            tracing::warn!(
                undelivered,
                "stopped with {undelivered} event(s) not acknowledged by Kafka; events of file inputs are read \
                 again at the next start (the registry moved only over acknowledged lines), those of exec and \
                 stdin inputs are lost"
            );
        }
    }
}

/// Halves the message of an encoded event refused as too large and tags it `message_truncated`.
fn shrink(payload: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return payload[..payload.len() / 2].to_vec();
    };
    if let Some(msg) = v.get("message").and_then(|m| m.as_str()) {
        let mut keep = msg.len() / 2;
        while !msg.is_char_boundary(keep) {
            keep -= 1;
        }
        v["message"] = serde_json::Value::String(msg[..keep].to_string());
    }
    if let Some(tags) = v.get_mut("tags").and_then(|t| t.as_array_mut()) {
        if !tags.iter().any(|t| t == "message_truncated") {
            tags.push("message_truncated".into());
        }
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| payload[..payload.len() / 2].to_vec())
}
