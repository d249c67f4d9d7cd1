//! Where events go. The tailer is generic over [`Sink`] so tests drive it without Kafka; the `testkit`
//! feature's `MemorySink` is such a sink.
//!
//! A sink never drops a record. It reports each record's fate by sending its [`Ack`] back on the channel
//! it was built with, once the record is durably stored (for Kafka: acknowledged with `acks=all`). The
//! tailer counts unacknowledged bytes against `queue_max_bytes`, so a slow sink pauses reading.

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
