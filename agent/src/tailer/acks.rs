//! Acknowledgements and the registry. An ack releases its bytes from the in-flight budget and marks
//! its byte range done in the file's [`AckedRanges`](crate::registry::AckedRanges); only the contiguous
//! acknowledged prefix is written to the registry, so a restart resends at most what was not
//! acknowledged. Acks of `exec` and `stdin` events go to their stream input instead.

use std::time::Instant;

use super::Tailer;
use crate::error::Result;
use crate::registry::{Entry, RegistryFile, REGISTRY_VERSION};
use crate::sink::{Ack, Sink};
use crate::stream::STREAM_SOURCE;

impl<S: Sink> Tailer<S> {
    pub(super) fn drain_acks(&mut self) {
        while let Ok(ack) = self.acks.try_recv() {
            self.on_ack(ack);
        }
    }

    pub(super) fn on_ack(&mut self, ack: Ack) {
        self.in_flight = self.in_flight.saturating_sub(ack.bytes);
        self.totals.events_acked += 1;
        self.totals.bytes_acked += ack.bytes as u64;
        if ack.source & STREAM_SOURCE != 0 {
            let index = (ack.source & !STREAM_SOURCE) as usize;
            if let Some(stream) = self.streams.iter_mut().find(|s| s.index() == index) {
                stream.on_ack(&ack);
            }
            return;
        }
        // Acks of a forgotten state (inode reuse, truncation of a small file) only release bytes.
        if let Some(state) = self.files.get_mut(&ack.source) {
            state.stats.events_acked += 1;
            if state.acked.ack(ack.start, ack.end) {
                self.dirty = true;
            }
        }
    }

    /// Writes the registry if something changed and `registry_flush` has passed since the last write.
    /// Called between read chunks as well as once per turn, so long catch-up turns keep the schedule.
    pub(super) fn maybe_checkpoint(&mut self) {
        if self.dirty && self.last_checkpoint.elapsed() >= self.registry_flush {
            self.checkpoint();
        }
    }

    pub(super) fn checkpoint(&mut self) {
        // Shipping goes on either way; the write is retried every `registry_flush` while something is
        // dirty. Said once per change of state, not once a second while a disk stays full (issue #16).
        match self.save_registry() {
            Ok(()) if self.registry_failing => {
                self.registry_failing = false;
                tracing::info!(path = %self.registry_path.display(), "the registry is written again");
            }
            Ok(()) => {}
            Err(e) if !self.registry_failing => {
                self.registry_failing = true;
                tracing::error!(
                    error = %e,
                    "cannot write the registry; shipping goes on and the write is retried every registry_flush \
                     (a restart now would resend what was sent since the last successful write)"
                );
            }
            Err(_) => {}
        }
        self.last_checkpoint = Instant::now();
    }

    pub(super) fn save_registry(&mut self) -> Result<()> {
        let mut entries: Vec<Entry> = self
            .by_identity
            .iter()
            .filter_map(|(id, slot)| self.files.get(slot).map(|s| (id, s)))
            .map(|(identity, s)| {
                let (head_len, head_hash) = match &s.harvester {
                    Some(h) => (h.head.len(), h.head.hash()),
                    None => (s.head_len, s.head_hash),
                };
                Entry {
                    identity: *identity,
                    path: s.path.clone(),
                    offset: s.acked.offset(),
                    dev: s.dev,
                    ino: s.ino,
                    head_len,
                    head_hash,
                    last_seen_ms: s.last_seen_ms,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        RegistryFile { version: REGISTRY_VERSION, entries }.save(&self.registry_path)?;
        self.dirty = false;
        Ok(())
    }
}
