//! One partition's records in a Fetch answer, as the consumer hands them on: whole record batches
//! decoded (`kafka-protocol`: CRC, lz4, zstd, snappy, gzip), without what a consumer never sees.
//!
//! - Records before the offset asked for: a batch may start before it.
//! - Control batches (transaction markers).
//! - Under `read_committed`, the batches of aborted transactions. The answer lists each aborted
//!   transaction by its producer and first offset; a producer's transactional batches are skipped from
//!   that offset until its abort marker, as the Java consumer does. The broker answers only up to the
//!   last stable offset, so nothing of an open transaction arrives.
//! - A batch the broker cut short at the end of the answer (its size limit): the next fetch starts at it.
//!
//! `next` is the offset after the last whole batch, so the next fetch does not ask again for a batch
//! whose last records were compacted away.

use bytes::{Buf, Bytes};
use kafka_protocol::records::RecordBatchDecoder;

/// Where the record batch header's fields are (magic 2).
const BASE_OFFSET: usize = 0;
const LENGTH: usize = 8;
const MAGIC: usize = 16;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const PRODUCER_ID: usize = 43;
const HEADER_SIZE: usize = 61;
/// The batch length counts the bytes after the base offset and the length.
const LENGTH_END: usize = 12;

const TRANSACTIONAL: u16 = 1 << 4;
const CONTROL: u16 = 1 << 5;
/// A control record's key: version (i16), then the type, 0 for an abort marker.
const ABORT_MARKER: i16 = 0;

/// One record handed on: its offset and value.
#[derive(Debug)]
pub(super) struct Value {
    pub offset: i64,
    pub value: Option<Bytes>,
}

/// A partition's part of a Fetch answer.
#[derive(Debug)]
pub(super) struct Fetched {
    pub values: Vec<Value>,
    /// The offset to fetch next; the offset asked for when no whole batch came.
    pub next: i64,
}

/// An aborted transaction as the answer lists it: its producer and first offset.
#[derive(Debug, Clone, Copy)]
pub(super) struct Aborted {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// The header fields the filtering needs, read before decoding.
struct Header {
    base_offset: i64,
    last_offset: i64,
    producer_id: i64,
    transactional: bool,
    control: bool,
}

fn header(batch: &[u8]) -> Result<Header, String> {
    if batch.len() < HEADER_SIZE {
        return Err(format!("a record batch of {} bytes, shorter than its header", batch.len()));
    }
    if batch[MAGIC] != 2 {
        return Err(format!("a record batch of format v{} (only v2, Kafka 0.11 and later, is read)", batch[MAGIC]));
    }
    let i64_at = |at: usize| i64::from_be_bytes(batch[at..at + 8].try_into().expect("8 bytes"));
    let i32_at = |at: usize| i32::from_be_bytes(batch[at..at + 4].try_into().expect("4 bytes"));
    let attributes = u16::from_be_bytes([batch[ATTRIBUTES], batch[ATTRIBUTES + 1]]);
    let base_offset = i64_at(BASE_OFFSET);
    Ok(Header {
        base_offset,
        last_offset: base_offset + i64::from(i32_at(LAST_OFFSET_DELTA)),
        producer_id: i64_at(PRODUCER_ID),
        transactional: attributes & TRANSACTIONAL != 0,
        control: attributes & CONTROL != 0,
    })
}

/// The whole batches of `records`, in order (a broker may cut the last one short).
fn whole_batches(mut records: Bytes) -> impl Iterator<Item = Result<Bytes, String>> {
    std::iter::from_fn(move || {
        let length = i32::from_be_bytes(records.get(LENGTH..LENGTH_END)?.try_into().ok()?);
        let Ok(length) = usize::try_from(length) else {
            records.clear();
            return Some(Err(format!("a record batch of length {length}")));
        };
        let size = LENGTH_END + length;
        (records.remaining() >= size).then(|| Ok(records.split_to(size)))
    })
}

/// The records of one partition's answer from offset `from` on. `aborted` is the answer's list of
/// aborted transactions, `None` under `read_uncommitted`.
pub(super) fn decode(records: Bytes, from: i64, aborted: Option<&[Aborted]>) -> Result<Fetched, String> {
    let mut fetched = Fetched { values: Vec::new(), next: from };
    let mut aborted: Vec<Aborted> = aborted.map(<[Aborted]>::to_vec).unwrap_or_default();
    aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
    // Producers whose aborted transaction has started at or before the current batch, until their marker.
    let mut aborting: Vec<i64> = Vec::new();
    for batch in whole_batches(records) {
        let mut batch = batch?;
        let header = header(&batch)?;
        fetched.next = fetched.next.max(header.last_offset + 1);
        if header.last_offset < from {
            continue;
        }
        while aborted.last().is_some_and(|a| a.first_offset <= header.last_offset) {
            aborting.push(aborted.pop().expect("checked").producer_id);
        }
        let mut set = RecordBatchDecoder::decode(&mut batch)
            .map_err(|e| format!("a record batch at offset {} does not decode: {e:#}", header.base_offset))?;
        if header.control {
            if set.records.iter().any(|r| r.key.as_ref().is_some_and(|k| is_abort_marker(k))) {
                aborting.retain(|&p| p != header.producer_id);
            }
            continue;
        }
        if header.transactional && aborting.contains(&header.producer_id) {
            continue;
        }
        // Each value taken out of its record in place: a `kafka-protocol` record is large (its header
        // fields, key, value and a map of headers), and moving every one out of the set, in a vector
        // grown as it went, was 1 % of the indexer's CPU in `memmove` (perf).
        fetched.values.reserve(set.records.len());
        let values = set.records.iter_mut().filter(|r| r.offset >= from);
        fetched.values.extend(values.map(|r| Value { offset: r.offset, value: r.value.take() }));
    }
    Ok(fetched)
}

fn is_abort_marker(key: &[u8]) -> bool {
    key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == ABORT_MARKER
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn record(offset: i64, value: &str, producer_id: i64, transactional: bool, control: bool) -> Record {
        Record {
            transactional,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder ends a batch where offset − sequence changes.
            sequence: offset as i32,
            timestamp: 0,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
        }
    }

    fn marker(offset: i64, producer_id: i64, kind: i16) -> Record {
        let mut key = 0i16.to_be_bytes().to_vec();
        key.extend(kind.to_be_bytes());
        Record {
            key: Some(key.into()),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            ..record(offset, "", producer_id, true, true)
        }
    }

    /// Encodes each slice as one batch, lz4-compressed, end to end.
    fn batches(sets: &[Vec<Record>]) -> BytesMut {
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::Lz4 };
        for set in sets {
            RecordBatchEncoder::encode(&mut out, set.iter(), &options).unwrap();
        }
        out
    }

    fn offsets(fetched: &Fetched) -> Vec<i64> {
        fetched.values.iter().map(|v| v.offset).collect()
    }

    #[test]
    fn records_from_the_offset_asked_for() {
        let plain = |o| record(o, "line", -1, false, false);
        let bytes = batches(&[vec![plain(0), plain(1), plain(2)], vec![plain(3), plain(4)]]).freeze();
        let fetched = decode(bytes.clone(), 1, None).unwrap();
        assert_eq!(offsets(&fetched), [1, 2, 3, 4]);
        assert_eq!(fetched.values[0].value.as_deref(), Some(&b"line"[..]));
        assert_eq!(fetched.next, 5);
        assert!(decode(bytes, 5, None).unwrap().values.is_empty());
    }

    #[test]
    fn a_batch_cut_short_is_left_for_the_next_fetch() {
        let plain = |o| record(o, "line", -1, false, false);
        let bytes = batches(&[vec![plain(0), plain(1)], vec![plain(2), plain(3)]]);
        let cut = bytes.len() - 3;
        let fetched = decode(bytes.freeze().slice(..cut), 0, None).unwrap();
        assert_eq!(offsets(&fetched), [0, 1]);
        assert_eq!(fetched.next, 2);
        let nothing = decode(Bytes::new(), 7, None).unwrap();
        assert_eq!((nothing.values.len(), nothing.next), (0, 7));
    }

    #[test]
    fn aborted_transactions_and_markers_are_left_out() {
        // Producer 7 aborts offsets 1–2 (marker at 3); producer 8 commits 4 (marker at 5).
        let bytes = batches(&[
            vec![record(0, "plain", -1, false, false)],
            vec![record(1, "aborted", 7, true, false), record(2, "aborted", 7, true, false)],
            vec![marker(3, 7, 0)],
            vec![record(4, "committed", 8, true, false)],
            vec![marker(5, 8, 1)],
            vec![record(6, "later", 7, true, false)],
        ])
        .freeze();
        let aborted = [Aborted { producer_id: 7, first_offset: 1 }];
        let committed = decode(bytes.clone(), 0, Some(&aborted)).unwrap();
        assert_eq!(offsets(&committed), [0, 4, 6], "read_committed");
        assert_eq!(committed.next, 7);
        let uncommitted = decode(bytes, 0, None).unwrap();
        assert_eq!(offsets(&uncommitted), [0, 1, 2, 4, 6], "read_uncommitted: markers only left out");
    }

    #[test]
    fn a_negative_batch_length_is_an_error() {
        let mut bytes = batches(&[vec![record(0, "x", -1, false, false)]]);
        bytes[LENGTH..LENGTH_END].copy_from_slice(&(-5i32).to_be_bytes());
        let e = decode(bytes.freeze(), 0, None).unwrap_err();
        assert!(e.contains("length -5"), "{e}");
    }

    #[test]
    fn an_old_message_format_is_an_error_that_says_so() {
        let mut bytes = batches(&[vec![record(0, "x", -1, false, false)]]);
        bytes[MAGIC] = 1;
        let e = decode(bytes.freeze(), 0, None).unwrap_err();
        assert!(e.contains("format v1"), "{e}");
    }
}
