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

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{Decompressor, Gzip, Snappy, Zstd};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

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
        let mut set = RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress))
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

/// A record batch's records, decompressed: lz4 straight into one buffer (below), the others by
/// `kafka-protocol`.
fn decompress(records: &mut Bytes, compression: Compression) -> anyhow::Result<Bytes> {
    let whole = |decompressed: &mut Bytes| Ok(std::mem::take(decompressed));
    match compression {
        Compression::None => Ok(std::mem::take(records)),
        Compression::Lz4 => lz4_frame(records),
        Compression::Gzip => Gzip::decompress(records, whole),
        Compression::Snappy => Snappy::decompress(records, whole),
        Compression::Zstd => Zstd::decompress(records, whole),
    }
}

/// An lz4 frame's contents, decompressed into one buffer sized from the frame's content size when it
/// has one (logpipe's agent writes it; the Java client's and librdkafka's frames may not), else four
/// times the frame, grown as it is read.
///
/// Why: `kafka-protocol`'s own copies the frame out through `io::copy`'s 8 KiB buffer, smaller than a
/// block, so each 64 KiB block is decompressed into lz4's own buffer, copied into that one and then into
/// a `BytesMut` that grows by doubling. This one takes three quarters of that time on a 1 MiB batch of
/// agent envelopes (docs/PERFORMANCE.md).
fn lz4_frame(frame: &mut Bytes) -> anyhow::Result<Bytes> {
    /// A content size is believed up to this many times the frame (lz4 cannot do better than about
    /// 255): a frame that claims more is sized by the guess and grows as it is read.
    const MOST_PER_BYTE: usize = 255;
    // Magic number (4 bytes), FLG (bit 3: an 8-byte content size follows BD), BD.
    let declared = match frame.get(..14) {
        Some(header) if header[4] & 0x08 != 0 => {
            usize::try_from(u64::from_le_bytes(header[6..14].try_into().expect("8 bytes"))).ok()
        }
        _ => None,
    };
    let declared = declared.filter(|&n| n <= frame.len().saturating_mul(MOST_PER_BYTE));
    let mut out = Vec::with_capacity(declared.unwrap_or(frame.len().saturating_mul(4)));
    lz4::Decoder::new(std::mem::take(frame).reader())?.read_to_end(&mut out)?;
    if let Some(declared) = declared.filter(|&n| n != out.len()) {
        anyhow::bail!("the lz4 frame declares {declared} bytes of records but holds {}", out.len());
    }
    Ok(out.into())
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

    /// Batches of each compression `kafka-protocol` writes read back as written, lz4 through our own
    /// decompressor, with and without a content size in the frame.
    #[test]
    fn every_compression_reads_back() {
        let values: Vec<String> = (0..300).map(|i| format!("line {i} {}", "x".repeat(i % 97))).collect();
        let set: Vec<Record> = values.iter().enumerate().map(|(i, v)| record(i as i64, v, -1, false, false)).collect();
        for compression in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let mut out = BytesMut::new();
            let options = RecordEncodeOptions { version: 2, compression };
            RecordBatchEncoder::encode(&mut out, set.iter(), &options).unwrap();
            let fetched = decode(out.freeze(), 0, None).unwrap();
            let read: Vec<&[u8]> = fetched.values.iter().map(|v| v.value.as_deref().unwrap()).collect();
            assert_eq!(read, values.iter().map(|v| v.as_bytes()).collect::<Vec<_>>(), "{compression:?}");
        }
        let text: Vec<u8> = values.concat().into_bytes();
        for content_size in [false, true] {
            let declared = if content_size { text.len() as u64 } else { 0 };
            let mut encoder = lz4::EncoderBuilder::new().content_size(declared).build(Vec::new()).unwrap();
            std::io::Write::write_all(&mut encoder, &text).unwrap();
            let (frame, result) = encoder.finish();
            result.unwrap();
            // Without a content size the buffer starts at four times the frame and has to grow.
            assert!(text.len() > 4 * frame.len(), "{} from {}", text.len(), frame.len());
            assert_eq!(lz4_frame(&mut Bytes::from(frame.clone())).unwrap(), text, "content size {content_size}");
            if content_size {
                let mut cut = Bytes::copy_from_slice(&frame[..frame.len() / 2]);
                let error = lz4_frame(&mut cut).unwrap_err().to_string();
                assert!(error.contains(&format!("declares {} bytes", text.len())), "{error}");
            }
        }
        assert!(lz4_frame(&mut Bytes::from_static(b"not a frame")).is_err());
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
