//! The offsets file format, as pure bytes in and out: the magic, CRC-framed payloads, the records a
//! payload holds (commit, offset deletion, group deletion, group meta), and replaying frames into the
//! in-memory state. File handling, fsync and compaction are in the parent module.
//!
//! Integers are big-endian; strings are a `u32` length then UTF-8; an absent `i64` is written as -1.

use std::io;

use super::{CommittedOffset, GroupMeta, State, TopicPartition};

pub(super) const MAGIC: &[u8; 8] = b"LPOFFS\x00\x01";
/// Frames larger than this are treated as corruption on replay (a real commit of 10k partitions with
/// 4 KiB metadata each stays well below it).
const MAX_FRAME_BYTES: u32 = 256 << 20;

const REC_COMMIT: u8 = 1;
pub(super) const REC_DELETE_OFFSET: u8 = 2;
pub(super) const REC_DELETE_GROUP: u8 = 3;
const REC_GROUP_META: u8 = 4;

pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Applies every valid frame of `bytes` to `state`; returns the length of the valid prefix.
pub(super) fn replay(bytes: &[u8], state: &mut State) -> io::Result<usize> {
    if bytes.len() < MAGIC.len() {
        // Only a crash while creating the file leaves it this short (it is created by rename).
        return Ok(0);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a logpipe committed-offsets file (bad magic); move it away to start with no committed offsets",
        ));
    }
    let mut pos = MAGIC.len();
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else { return Ok(pos) };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_FRAME_BYTES {
            return Ok(pos);
        }
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len as usize) else { return Ok(pos) };
        if crc32c::crc32c(payload) != crc {
            return Ok(pos);
        }
        // Decode fully before applying, so a frame that does not decode changes nothing.
        let Some(records) = decode_frame(payload) else { return Ok(pos) };
        for record in records {
            apply(state, record);
        }
        pos += 8 + len as usize;
    }
}

enum Record {
    Commit(String, TopicPartition, CommittedOffset),
    DeleteOffset(String, TopicPartition),
    DeleteGroup(String),
    Meta(String, GroupMeta),
}

fn apply(state: &mut State, record: Record) {
    match record {
        Record::Commit(group, tp, c) => {
            state.offsets.entry(group).or_default().insert(tp, c);
        }
        Record::DeleteOffset(group, tp) => {
            if let Some(offsets) = state.offsets.get_mut(&group) {
                offsets.remove(&tp);
                if offsets.is_empty() {
                    state.offsets.remove(&group);
                }
            }
        }
        Record::DeleteGroup(group) => {
            state.offsets.remove(&group);
            state.meta.remove(&group);
        }
        Record::Meta(group, meta) => {
            state.meta.insert(group, meta);
        }
    }
}

pub(super) fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

pub(super) fn encode_commit(buf: &mut Vec<u8>, group: &str, tp: &TopicPartition, c: &CommittedOffset) {
    buf.push(REC_COMMIT);
    put_str(buf, group);
    put_str(buf, &tp.topic);
    buf.extend_from_slice(&tp.partition.to_be_bytes());
    buf.extend_from_slice(&c.offset.to_be_bytes());
    buf.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_str(buf, &c.metadata);
    buf.extend_from_slice(&c.commit_timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&c.expire_timestamp_ms.unwrap_or(-1).to_be_bytes());
}

pub(super) fn encode_meta(buf: &mut Vec<u8>, group: &str, meta: &GroupMeta) {
    buf.push(REC_GROUP_META);
    put_str(buf, group);
    match &meta.protocol_type {
        Some(t) => {
            buf.push(1);
            put_str(buf, t);
        }
        None => buf.push(0),
    }
    buf.extend_from_slice(&meta.empty_since_ms.unwrap_or(-1).to_be_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_frame(payload: &[u8]) -> Option<Vec<Record>> {
    let mut r = Reader(payload);
    let mut records = Vec::new();
    while !r.0.is_empty() {
        let record = match r.u8()? {
            REC_COMMIT => {
                let group = r.string()?;
                let tp = TopicPartition { topic: r.string()?, partition: r.i32()? };
                let offset = r.i64()?;
                let leader_epoch = r.i32()?;
                let metadata = r.string()?;
                let commit_timestamp_ms = r.i64()?;
                let expire = r.i64()?;
                let c = CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                    expire_timestamp_ms: (expire >= 0).then_some(expire),
                };
                Record::Commit(group, tp, c)
            }
            REC_DELETE_OFFSET => {
                let group = r.string()?;
                Record::DeleteOffset(group, TopicPartition { topic: r.string()?, partition: r.i32()? })
            }
            REC_DELETE_GROUP => Record::DeleteGroup(r.string()?),
            REC_GROUP_META => {
                let group = r.string()?;
                let protocol_type = match r.u8()? {
                    0 => None,
                    1 => Some(r.string()?),
                    _ => return None,
                };
                let since = r.i64()?;
                Record::Meta(group, GroupMeta { protocol_type, empty_since_ms: (since >= 0).then_some(since) })
            }
            _ => return None,
        };
        records.push(record);
    }
    Some(records)
}
