//! Where events go. The tailer is generic over [`Sink`] so tests drive it without Kafka (vector
//! `file_server.rs`); [`MemorySink`] is such a sink.
//!
//! A sink never drops a record. It reports each record's fate by sending its [`Ack`] back on the channel
//! it was built with, once the record is durably stored (for Kafka: acknowledged with `acks=all`). The
//! tailer counts unacknowledged bytes against `queue_max_bytes`, so a slow sink pauses reading.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Identifies one event's bytes: which file state (`source`) and which byte range of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub source: u64,
    pub start: u64,
    pub end: u64,
    /// Encoded size, counted against `queue_max_bytes` until acknowledged.
    pub bytes: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub ack: Ack,
}

pub trait Sink: Send {
    /// Takes over one record. Must not block for long and must not drop it: retries are the sink's job.
    fn send(&mut self, record: Record<'_>);

    /// Called on every turn of the tailer loop: a chance to resend, poll, or log state changes.
    fn poll(&mut self) {}

    /// Waits up to `timeout` for every record sent so far to be acknowledged. Returns whether all were.
    fn flush(&mut self, timeout: Duration) -> bool;

    /// Events the output had to cut after the cluster refused them as too large.
    fn too_large(&self) -> u64 {
        0
    }

    /// Destinations the output cannot deliver to now (a topic that does not exist, ...).
    fn stalls(&self) -> Vec<crate::stalls::Stall> {
        Vec::new()
    }
}

/// A record as a [`MemorySink`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub ack: Ack,
}

/// Keeps every record in memory and acknowledges it at once, or holds acknowledgements while
/// [`MemorySink::hold_acks`] is on (a broker that stopped answering).
#[derive(Debug, Clone)]
pub struct MemorySink {
    inner: Arc<Mutex<MemoryInner>>,
    acks: Sender<Ack>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    sent: Vec<Sent>,
    hold: bool,
    held: Vec<Ack>,
}

impl MemorySink {
    pub fn new(acks: Sender<Ack>) -> Self {
        Self { inner: Arc::default(), acks }
    }

    /// Every record received so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().sent.clone()
    }

    pub fn sent_count(&self) -> usize {
        self.inner.lock().unwrap().sent.len()
    }

    /// While on, records are stored but not acknowledged. Turning it off acknowledges the held ones.
    pub fn hold_acks(&self, hold: bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.hold = hold;
        if !hold {
            for ack in inner.held.drain(..) {
                let _ = self.acks.send(ack);
            }
        }
    }

    /// Forgets held acknowledgements, as a crash would.
    pub fn drop_held(&self) {
        self.inner.lock().unwrap().held.clear();
    }

    /// A sink sharing this one's records but acknowledging to a different tailer.
    pub fn with_acks(&self, acks: Sender<Ack>) -> Self {
        Self { inner: self.inner.clone(), acks }
    }
}

impl Sink for MemorySink {
    fn send(&mut self, record: Record<'_>) {
        let mut inner = self.inner.lock().unwrap();
        inner.sent.push(Sent {
            topic: record.topic.to_string(),
            key: record.key.map(<[u8]>::to_vec),
            payload: record.payload.to_vec(),
            ack: record.ack,
        });
        if inner.hold {
            inner.held.push(record.ack);
        } else {
            let _ = self.acks.send(record.ack);
        }
    }

    fn flush(&mut self, _timeout: Duration) -> bool {
        self.inner.lock().unwrap().held.is_empty()
    }
}
