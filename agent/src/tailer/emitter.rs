//! The one place an output record is built: events of file and stream inputs alike are encoded into the
//! envelope, keyed, handed to the [`Sink`] with the [`Ack`] that will come back for them, and counted
//! against the `queue_max_bytes` budget until that ack arrives.

use crate::envelope::{Encoder, EventParts, InputMeta, KeyField};
use crate::sink::{Ack, Record, Sink};

/// Owns the sink and everything between an event and the sink: the encoder, the partition key, the
/// reused encoding buffer, and the bytes in flight.
pub(crate) struct Emitter<S: Sink> {
    sink: S,
    encoder: Encoder,
    key: Option<KeyField>,
    buf: Vec<u8>,
    /// Encoded bytes handed to the sink and not acknowledged yet.
    in_flight: usize,
    queue_max_bytes: usize,
    totals: Totals,
}

/// Counts over every input, for the summary and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) events_sent: u64,
    pub(crate) events_acked: u64,
    pub(crate) bytes_acked: u64,
}

/// Where an event comes from and which bytes it stands for: the [`Ack`] it carries, less its size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// A file slot, or `STREAM_SOURCE | input index`.
    pub(crate) source: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// What became of one sent event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// Its message was cut to fit `max_message_bytes`.
    pub(crate) too_large: bool,
}

impl<S: Sink> Emitter<S> {
    pub(crate) fn new(sink: S, encoder: Encoder, key: Option<KeyField>, queue_max_bytes: usize) -> Self {
        Self { sink, encoder, key, buf: Vec::new(), in_flight: 0, queue_max_bytes, totals: Totals::default() }
    }

    /// Encodes one event of an input with metadata `meta`, and sends it to `topic`.
    pub(crate) fn send(&mut self, meta: &InputMeta, topic: &str, parts: &EventParts<'_>, origin: Origin) -> Sent {
        let cut_before = self.encoder.message_truncated;
        self.encoder.encode(meta, parts, &mut self.buf);
        let too_large = self.encoder.message_truncated > cut_before;
        let key = self.key.as_ref().and_then(|k| k.value(meta, parts));
        let ack = Ack { source: origin.source, start: origin.start, end: origin.end, bytes: self.buf.len() };
        self.sink.send(Record { topic, key: key.as_deref(), payload: &self.buf, ack });
        self.in_flight += self.buf.len();
        self.totals.events_sent += 1;
        Sent { too_large }
    }

    /// Acknowledgements came back: `events` events, `bytes` encoded bytes in all, leave the budget.
    pub(crate) fn acked(&mut self, events: u64, bytes: usize) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.totals.events_acked += events;
        self.totals.bytes_acked += bytes as u64;
    }

    /// Whether the queue budget allows sending more.
    pub(crate) fn has_room(&self) -> bool {
        self.in_flight < self.queue_max_bytes
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(crate) fn totals(&self) -> Totals {
        self.totals
    }

    /// What keeps the sink from delivering (a topic that refuses deliveries), for the status snapshot.
    pub(crate) fn sink_stalls(&self) -> Vec<crate::stalls::Stall> {
        self.sink.stalls()
    }

    /// Messages cut to fit `max_message_bytes`: by the encoder, and by the sink (records still too large).
    pub(crate) fn message_truncated(&self) -> u64 {
        self.encoder.message_truncated + self.sink.too_large()
    }

    /// Messages cut by the encoder.
    pub(crate) fn encoder_truncated(&self) -> u64 {
        self.encoder.message_truncated
    }

    pub(crate) fn sink(&self) -> &S {
        &self.sink
    }

    pub(crate) fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }
}
