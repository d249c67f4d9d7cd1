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

    /// Takes in one delivery's acknowledgements. Consecutive events of one file arrive as adjacent
    /// byte ranges, so they are taken in as one range: the file's state is looked up and its acked
    /// ranges moved once per run rather than once per line.
    pub(super) fn on_acks(&mut self, acks: Vec<Ack>) {
        for run in (AckRuns { acks: acks.into_iter(), next: None }) {
            self.on_ack_run(run);
        }
    }

    fn on_ack_run(&mut self, run: AckRun) {
        self.emitter.acked(run.events, run.bytes);
        if run.source & STREAM_SOURCE != 0 {
            let index = (run.source & !STREAM_SOURCE) as usize;
            if let Some(stream) = self.streams.iter_mut().find(|s| s.index() == index) {
                stream.on_acks(run.events, run.end.saturating_sub(run.start));
            }
            return;
        }
        // Acks of a forgotten state (inode reuse, truncation of a small file) only release bytes.
        if let Some(state) = self.files.get_mut(run.source) {
            state.stats.events_acked += run.events;
            if state.acked.ack(run.start, run.end) {
                self.files.mark_unsaved();
            }
        }
    }
}

/// Acknowledgements in runs: each of one source, with byte ranges that follow one another.
struct AckRuns {
    acks: std::vec::IntoIter<Ack>,
    /// The first acknowledgement of the run after the one last given.
    next: Option<AckRun>,
}

impl Iterator for AckRuns {
    type Item = AckRun;

    fn next(&mut self) -> Option<AckRun> {
        let mut run = self.next.take().or_else(|| self.acks.next().map(AckRun::of))?;
        for ack in self.acks.by_ref() {
            if let Err(next) = run.extend(ack) {
                self.next = Some(next);
                break;
            }
        }
        Some(run)
    }
}

/// Acknowledged events of one source whose byte ranges follow one another.
#[derive(Debug, PartialEq, Eq)]
struct AckRun {
    source: u64,
    start: u64,
    end: u64,
    events: u64,
    bytes: usize,
}

impl AckRun {
    fn of(ack: Ack) -> Self {
        Self { source: ack.source, start: ack.start, end: ack.end, events: 1, bytes: ack.bytes }
    }

    /// Takes in `ack` if it continues this run, or gives it back as the start of the next one.
    fn extend(&mut self, ack: Ack) -> Result<(), Self> {
        if ack.source != self.source || ack.start != self.end {
            return Err(Self::of(ack));
        }
        self.end = ack.end;
        self.events += 1;
        self.bytes += ack.bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(source: u64, start: u64, end: u64) -> Ack {
        Ack { source, start, end, bytes: 10 }
    }

    fn runs(acks: Vec<Ack>) -> Vec<AckRun> {
        AckRuns { acks: acks.into_iter(), next: None }.collect()
    }

    #[test]
    fn adjacent_ranges_of_one_source_join_and_anything_else_starts_a_run() {
        let got = runs(vec![ack(1, 0, 5), ack(1, 5, 9), ack(1, 9, 20), ack(2, 20, 30), ack(1, 25, 30), ack(1, 30, 31)]);
        let run = |source, start, end, events| AckRun { source, start, end, events, bytes: 10 * events as usize };
        assert_eq!(got, vec![run(1, 0, 20, 3), run(2, 20, 30, 1), run(1, 25, 31, 2)]);
        assert_eq!(runs(vec![]), vec![]);
    }
}
