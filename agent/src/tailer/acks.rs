//! Acknowledgements. An ack releases its bytes from the in-flight budget ([`Emitter`](super::emitter))
//! and marks its byte range done in the file's [`AckedRanges`](crate::registry::AckedRanges); only the
//! contiguous acknowledged prefix is written to the registry, so a restart resends at most what was not
//! acknowledged. Acks of `exec` and `stdin` events go to their stream input instead.

use super::Tailer;
use crate::sink::{Ack, Sink};
use crate::stream::STREAM_SOURCE;

impl<S: Sink> Tailer<S> {
    /// Takes in the acknowledgements waiting in the channel, without blocking.
    pub(super) fn drain_acks(&mut self) {
        while let Ok(acks) = self.acks.try_recv() {
            self.on_acks(acks);
        }
    }

    pub(super) fn on_acks(&mut self, acks: Vec<Ack>) {
        for ack in acks {
            self.on_ack(ack);
        }
    }

    pub(super) fn on_ack(&mut self, ack: Ack) {
        self.emitter.acked(&ack);
        if ack.source & STREAM_SOURCE != 0 {
            let index = (ack.source & !STREAM_SOURCE) as usize;
            if let Some(stream) = self.streams.iter_mut().find(|s| s.index() == index) {
                stream.on_ack(&ack);
            }
            return;
        }
        // Acks of a forgotten state (inode reuse, truncation of a small file) only release bytes.
        if let Some(state) = self.files.get_mut(ack.source) {
            state.stats.events_acked += 1;
            if state.acked.ack(ack.start, ack.end) {
                self.files.mark_unsaved();
            }
        }
    }
}
