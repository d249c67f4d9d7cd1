//! Producer-state snapshots taken at segment rolls, and rebuilding producer state after a crash.
//!
//! Each roll writes `{base_offset:020}.snapshot`: the idempotent-producer state covering every offset
//! below the new segment's base. It is written to a temporary file and renamed (so it is whole or
//! absent), and fsynced by the flusher together with the sealed segment and the directory, before any
//! offset of the new segment becomes durable; appends never wait for an fsync. The newest
//! [`KEPT_SNAPSHOTS`] are kept.
//!
//! After a crash the state is the newest readable snapshot at or below the recovered log end offset,
//! plus the batch headers from its offset to the end of the log. A snapshot at or below the log end
//! describes only batches that survived recovery (the log is a prefix of what was written); snapshots
//! above it describe batches that were cut off and are deleted before anything new is appended, so a
//! later roll at the same offset can never meet a stale one. Without any usable snapshot only the active
//! segment is replayed.
//!
//! References: KIP-98 (https://cwiki.apache.org/confluence/display/KAFKA/KIP-98+-+Exactly+Once+Delivery+and+Transactional+Messaging)

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::producer_state::ProducerStateMap;
use super::scan::{BatchScanner, ScanError};
use super::segment::{file_name, Segment};
use super::util::annotate;

pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Snapshots kept per partition; older ones are deleted at each roll.
pub(crate) const KEPT_SNAPSHOTS: usize = 3;

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset, SNAPSHOT_SUFFIX))
}

/// Writes the snapshot for a roll at `offset` (tmp, then rename) and prunes old ones. Returns the file
/// for the caller to fsync with the rolled segment; the rename needs the directory fsynced too.
pub(crate) fn write_roll_snapshot(dir: &Path, offset: i64, state: &ProducerStateMap) -> io::Result<Arc<File>> {
    let path = snapshot_path(dir, offset);
    let bytes = state.to_json(&path)?;
    let mut tmp_name = path.clone().into_os_string();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| annotate(e, &tmp))?;
    file.write_all(&bytes).map_err(|e| annotate(e, &tmp))?;
    fs::rename(&tmp, &path).map_err(|e| annotate(e, &path))?;
    // Housekeeping only: a snapshot left behind is harmless (see the module docs), so this cannot fail
    // the roll.
    if let Err(e) = prune(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot delete old producer-state snapshots");
    }
    Ok(Arc::new(file))
}

/// Offsets of the snapshots in `dir`, ascending.
pub(crate) fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| annotate(e, dir))? {
        let entry = entry.map_err(|e| annotate(e, dir))?;
        let name = entry.file_name();
        let Some((stem, suffix)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
        if suffix == SNAPSHOT_SUFFIX && stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(offset) = stem.parse::<i64>() {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

fn remove(dir: &Path, offset: i64) -> io::Result<()> {
    let path = snapshot_path(dir, offset);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(annotate(e, &path)),
        _ => Ok(()),
    }
}

fn prune(dir: &Path) -> io::Result<()> {
    let offsets = list_snapshots(dir)?;
    let excess = offsets.len().saturating_sub(KEPT_SNAPSHOTS);
    offsets[..excess].iter().try_for_each(|o| remove(dir, *o))
}

/// Deletes snapshots above `log_end_offset`: they describe batches recovery cut off. Returns whether any
/// was deleted (the caller then fsyncs the directory).
pub(crate) fn remove_snapshots_above(dir: &Path, log_end_offset: i64) -> io::Result<bool> {
    let stale: Vec<i64> = list_snapshots(dir)?.into_iter().filter(|o| *o > log_end_offset).collect();
    for offset in &stale {
        tracing::warn!(path = %snapshot_path(dir, *offset).display(), "removing a producer-state snapshot past the recovered log end");
        remove(dir, *offset)?;
    }
    Ok(!stale.is_empty())
}

/// Producer state after a crash: the newest readable snapshot at or below `log_end_offset` plus the
/// batches after it, or the active segment's batches alone. Also returns the snapshot's offset.
pub(crate) fn rebuild_producers(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_end_offset: i64,
    now_ms: i64,
) -> io::Result<(ProducerStateMap, Option<i64>)> {
    for offset in list_snapshots(dir)?.into_iter().rev().filter(|o| *o <= log_end_offset) {
        if let Some(mut state) = ProducerStateMap::load_file(&snapshot_path(dir, offset))? {
            // From the segment holding `offset` (or the first one, if retention removed it) to the end.
            let first = segments.range(..=offset).next_back().map_or(i64::MIN, |(b, _)| *b);
            for seg in segments.range(first..).map(|(_, s)| s) {
                replay_segment(&mut state, seg, offset, now_ms)?;
            }
            return Ok((state, Some(offset)));
        }
    }
    let mut state = ProducerStateMap::default();
    if let Some(active) = segments.values().next_back() {
        replay_segment(&mut state, active, i64::MIN, now_ms)?;
    }
    Ok((state, None))
}

/// Replays the headers of a segment's batches at or after `from` into `state`.
fn replay_segment(state: &mut ProducerStateMap, seg: &Segment, from: i64, now_ms: i64) -> io::Result<()> {
    let log = seg.log();
    let start = if from > seg.base_offset { seg.position_for(from)? } else { 0 };
    let mut scanner = BatchScanner::new(&log, start, seg.size());
    loop {
        match scanner.next_batch(false) {
            Ok(Some(b)) if b.header.base_offset < from => {}
            Ok(Some(b)) => state.replay(&b.header, now_ms),
            Ok(None) => return Ok(()),
            Err(ScanError::Io(e)) => return Err(annotate(e, seg.log_path())),
            Err(ScanError::Invalid { pos, reason }) => {
                let msg = format!("corrupt batch at position {pos} after recovery: {reason}");
                return Err(annotate(io::Error::new(io::ErrorKind::InvalidData, msg), seg.log_path()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, partition, sync_append};
    use crate::storage::AppendError;

    fn config(dir: &Path) -> crate::storage::LogConfig {
        // Every append after the first in a segment rolls: one batch per segment.
        config_with(dir, |c| c.segment_bytes = 1)
    }

    fn producer_batch(seq: i32) -> Vec<u8> {
        TestBatch::new(1).producer(7, 0, seq).build()
    }

    #[test]
    fn a_retry_of_a_batch_before_a_roll_is_a_duplicate_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config(dir.path()));
        let log = partition(&mgr, "t", &[]);
        let first = sync_append(&log, &producer_batch(0));
        sync_append(&log, &TestBatch::new(1).build());
        sync_append(&log, &TestBatch::new(1).build());
        assert_eq!(log.segment_count(), 3);
        drop((log, mgr)); // a crash: no close()

        let mgr = manager(config(dir.path()));
        assert!(!mgr.clean_start());
        let log = mgr.partition("t", 0).unwrap();
        let report = log.recovery_report();
        assert!(report.producer_state_scanned);
        assert_eq!(report.producer_snapshot, Some(2));
        let retry = log.append(&producer_batch(0), 0).unwrap();
        assert!(retry.duplicate, "the producer's batch lives two segments back");
        assert_eq!((retry.base_offset, log.log_end_offset()), (first.base_offset, 3));
        assert!(matches!(log.append(&producer_batch(5), 0), Err(AppendError::OutOfOrderSequence { expected: 1, .. })));
    }

    #[test]
    fn old_snapshots_are_pruned_and_ones_past_a_cut_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config(dir.path()));
        let log = partition(&mgr, "t", &[]);
        for seq in 0..6 {
            sync_append(&log, &producer_batch(seq));
        }
        let pdir = log.dir().to_owned();
        assert_eq!(list_snapshots(&pdir).unwrap(), vec![3, 4, 5]);
        drop((log, mgr));

        // Corrupt the batch at offset 3: recovery cuts there and drops the later segments, so snapshots
        // 4 and 5 describe batches that no longer exist.
        let seg3 = pdir.join(file_name(3, "log"));
        let mut bytes = fs::read(&seg3).unwrap();
        bytes[30] ^= 0xff;
        fs::write(&seg3, &bytes).unwrap();
        let mgr = manager(config(dir.path()));
        let log = mgr.partition("t", 0).unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(list_snapshots(&pdir).unwrap(), vec![3]);
        assert_eq!(log.recovery_report().producer_snapshot, Some(3));
        assert_eq!(log.append(&producer_batch(2), 0).unwrap().base_offset, 2, "still a duplicate");
        let again = log.append(&producer_batch(3), 0).unwrap();
        assert!(!again.duplicate, "the lost batch is appended again");
        assert_eq!(again.base_offset, 3);
    }

    #[test]
    fn an_unreadable_snapshot_falls_back_to_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config(dir.path()));
        let log = partition(&mgr, "t", &[]);
        for seq in 0..3 {
            sync_append(&log, &producer_batch(seq));
        }
        let pdir = log.dir().to_owned();
        drop((log, mgr));
        fs::write(snapshot_path(&pdir, 2), b"{\"producers\":{").unwrap();
        let mgr = manager(config(dir.path()));
        let log = mgr.partition("t", 0).unwrap();
        assert_eq!(log.recovery_report().producer_snapshot, Some(1));
        assert!(log.append(&producer_batch(0), 0).unwrap().duplicate);
        assert!(log.append(&producer_batch(2), 0).unwrap().duplicate);
    }
}
