//! Test doubles for the agent's own tests and for crates that test against it (feature `testkit`): a
//! [`MemorySink`] that keeps what the tailer sends and acknowledges it on command.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::sink::{Ack, Record, Sink};

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
    acks: Sender<Vec<Ack>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    sent: Vec<Sent>,
    hold: bool,
    held: Vec<Ack>,
}

impl MemorySink {
    pub fn new(acks: Sender<Vec<Ack>>) -> Self {
        Self { inner: Arc::default(), acks }
    }

    /// Every record received so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).sent.clone()
    }

    pub fn sent_count(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).sent.len()
    }

    /// While on, records are stored but not acknowledged. Turning it off acknowledges the held ones.
    pub fn hold_acks(&self, hold: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.hold = hold;
        if !hold {
            for ack in inner.held.drain(..) {
                let _ = self.acks.send(vec![ack]);
            }
        }
    }

    /// Forgets held acknowledgements, as a crash would.
    pub fn drop_held(&self) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).held.clear();
    }

    /// A sink sharing this one's records but acknowledging to a different tailer.
    pub fn with_acks(&self, acks: Sender<Vec<Ack>>) -> Self {
        Self { inner: self.inner.clone(), acks }
    }
}

impl Sink for MemorySink {
    fn send(&mut self, record: Record<'_>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.sent.push(Sent {
            topic: record.topic.to_string(),
            key: record.key.map(<[u8]>::to_vec),
            payload: record.payload.to_vec(),
            ack: record.ack,
        });
        if inner.hold {
            inner.held.push(record.ack);
        } else {
            let _ = self.acks.send(vec![record.ack]);
        }
    }

    fn flush(&mut self, _timeout: Duration) -> bool {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).held.is_empty()
    }
}
