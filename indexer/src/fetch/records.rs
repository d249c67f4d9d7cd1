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
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const HEADER_SIZE: usize = 61;
/// The batch length counts the bytes after the base offset and the length.
const LENGTH_END: usize = 12;

/// The batch's timestamps are the broker's (`message.timestamp.type=LogAppendTime`): its max timestamp.
const LOG_APPEND_TIME: u16 = 1 << 3;
const TRANSACTIONAL: u16 = 1 << 4;
const CONTROL: u16 = 1 << 5;
/// A control record's key: version (i16), then the type, 0 for an abort marker.
const ABORT_MARKER: i16 = 0;

/// One record handed on: its offset, timestamp (milliseconds) and value.
#[derive(Debug)]
pub(super) struct Value {
    pub offset: i64,
    pub timestamp: i64,
    pub value: Option<Bytes>,
}

/// A partition's part of a Fetch answer.
#[derive(Debug)]
pub(super) struct Fetched {
    pub values: Vec<Value>,
    /// The offset to fetch next; the offset asked for when no whole batch came.
    pub next: i64,
    /// Whether `next` reached the end of what the partition's leader could serve (see [`Fetched::at`]).
    pub at_end: bool,
}

impl Fetched {
    /// Marks whether the answer reached `end`: the high watermark, or under `read_committed` the last
    /// stable offset when the answer gives one.
    pub fn at(mut self, end: i64) -> Fetched {
        self.at_end = self.next >= end;
        self
    }
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
    /// The time the broker stamped, for every record of a LogAppendTime batch. The decoder gives each
    /// record its producer's time (base timestamp plus delta) whatever the batch says; librdkafka and the
    /// Java client, and so `logpipe replay`, give the batch's max timestamp, as Kafka means.
    log_append_time: Option<i64>,
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
        log_append_time: (attributes & LOG_APPEND_TIME != 0).then(|| i64_at(MAX_TIMESTAMP)),
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
    let mut fetched = Fetched { values: Vec::new(), next: from, at_end: false };
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
        fetched.values.extend(values.map(|r| Value {
            offset: r.offset,
            timestamp: header.log_append_time.unwrap_or(r.timestamp),
            value: r.value.take(),
        }));
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
/// has one (logpipe's agent writes it; the Java client's and librdkafka's frames may not), else from
/// its blocks ([`Lz4Header::blocks_hold_at_most`]).
///
/// Why: `kafka-protocol`'s own copies the frame out through `io::copy`'s 8 KiB buffer, smaller than a
/// block, so each 64 KiB block is decompressed into lz4's own buffer, copied into that one and then into
/// a `BytesMut` that grows by doubling. This one takes three quarters of that time on a 1 MiB batch of
/// agent envelopes (docs/PERFORMANCE.md).
fn lz4_frame(frame: &mut Bytes) -> anyhow::Result<Bytes> {
    let header = Lz4Header::read(frame);
    let declared = header.as_ref().and_then(|h| h.content_size).and_then(|n| usize::try_from(n).ok());
    let declared = declared.filter(|&n| n <= frame.len().saturating_mul(LZ4_MOST_PER_BYTE));
    let capacity =
        declared.or_else(|| header.and_then(|h| h.blocks_hold_at_most(frame))).unwrap_or(frame.len().saturating_mul(4));
    let mut out = Vec::with_capacity(capacity);
    lz4::Decoder::new(std::mem::take(frame).reader())?.read_to_end(&mut out)?;
    if let Some(declared) = declared.filter(|&n| n != out.len()) {
        anyhow::bail!("the lz4 frame declares {declared} bytes of records but holds {}", out.len());
    }
    Ok(out.into())
}

/// lz4 cannot make a block more than about 255 times smaller: a content size or block that claims more
/// is not believed when sizing the buffer (the frame then grows it as it is read, or fails to decode).
const LZ4_MOST_PER_BYTE: usize = 255;

/// What an lz4 frame's header says (lz4 frame format: magic number, FLG, BD, the content size and the
/// dictionary id if FLG says so, a checksum of the header).
struct Lz4Header {
    content_size: Option<u64>,
    /// The most a block holds (BD).
    block_max: usize,
    /// Whether each block is followed by a four-byte checksum.
    block_checksum: bool,
    /// Where the first block starts.
    len: usize,
}

impl Lz4Header {
    /// `None` when the frame does not start with a header this reads.
    fn read(frame: &[u8]) -> Option<Self> {
        const BLOCK_CHECKSUM: u8 = 1 << 4;
        const CONTENT_SIZE: u8 = 1 << 3;
        const DICTIONARY_ID: u8 = 1;
        let (flags, block_max) = (*frame.get(4)?, *frame.get(5)?);
        // BD's bits 4 to 6: 4 is 64 KiB, 5 256 KiB, 6 1 MiB, 7 4 MiB.
        let block_max = match (block_max >> 4) & 0x07 {
            code @ 4..=7 => 1usize << (8 + 2 * usize::from(code)),
            _ => return None,
        };
        let content_size = match flags & CONTENT_SIZE {
            0 => None,
            _ => Some(u64::from_le_bytes(frame.get(6..14)?.try_into().expect("8 bytes"))),
        };
        let dictionary_id = if flags & DICTIONARY_ID != 0 { 4 } else { 0 };
        let len = 7 + if content_size.is_some() { 8 } else { 0 } + dictionary_id;
        Some(Self { content_size, block_max, block_checksum: flags & BLOCK_CHECKSUM != 0, len })
    }

    /// The most the blocks of `frame` (the frame this header was read from) can hold, from their headers:
    /// each block is its length in four bytes, then its bytes; the high bit marks one stored as it is.
    /// `None` when the blocks do not read as such.
    ///
    /// Why: a frame without a content size (librdkafka's and the Java client's) was read into a buffer of
    /// a guessed four times its size. Kafka batches of log lines compress about five times, so the buffer
    /// filled, and growing it copied the whole batch into a new allocation: 1.3 % of the indexer's CPU on
    /// librdkafka's batches (perf, bench-indexer.sh), and the new allocation's page faults. A bound larger
    /// than what is written costs no memory: pages never written are never touched.
    fn blocks_hold_at_most(&self, frame: &[u8]) -> Option<usize> {
        const UNCOMPRESSED: u32 = 1 << 31;
        let checksum = if self.block_checksum { 4 } else { 0 };
        let (mut at, mut most) = (self.len, 0usize);
        loop {
            let header = u32::from_le_bytes(frame.get(at..at + 4)?.try_into().expect("4 bytes"));
            if header == 0 {
                return Some(most);
            }
            let len = (header & !UNCOMPRESSED) as usize;
            most += match header & UNCOMPRESSED {
                0 => self.block_max.min(len.saturating_mul(LZ4_MOST_PER_BYTE)),
                _ => len,
            };
            at = at.checked_add(4 + len + checksum).filter(|&end| end <= frame.len())?;
        }
    }
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

    /// Every record of a LogAppendTime batch has the time the broker stamped (the batch's max timestamp),
    /// as librdkafka reads it, not its producer's.
    #[test]
    fn log_append_time_batches_give_every_record_the_brokers_time() {
        let stamped = |offset: i64, timestamp: i64, timestamp_type| Record {
            timestamp,
            timestamp_type,
            ..record(offset, "v", -1, false, false)
        };
        let set = vec![stamped(0, 100, TimestampType::LogAppend), stamped(1, 200, TimestampType::LogAppend)];
        let mut stamped_batch = batches(&[set]);
        // The encoder leaves the timestamp type out: set it, and the CRC that covers it, as a broker does.
        stamped_batch[ATTRIBUTES + 1] |= LOG_APPEND_TIME as u8;
        let crc = crc32c::crc32c(&stamped_batch[ATTRIBUTES..]);
        stamped_batch[ATTRIBUTES - 4..ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
        let created = vec![stamped(2, 300, TimestampType::Creation), stamped(3, 400, TimestampType::Creation)];
        stamped_batch.extend_from_slice(&batches(&[created]));
        let fetched = decode(stamped_batch.freeze(), 0, None).unwrap();
        let times: Vec<i64> = fetched.values.iter().map(|v| v.timestamp).collect();
        assert_eq!(times, [200, 200, 300, 400]);
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
            // More than four times smaller: the buffer's old guess without a content size.
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

    fn blocks_hold_at_most(frame: &[u8]) -> Option<usize> {
        Lz4Header::read(frame)?.blocks_hold_at_most(frame)
    }

    /// Frames as the lz4 library writes them, with each block size and checksum setting, compressible and
    /// not (stored blocks): the bound from the block headers holds what the frame decodes to, and at most
    /// one block more. A frame cut short or with a block size it does not name has none.
    #[test]
    fn the_blocks_bound_what_a_frame_holds_within_a_block() {
        use lz4::liblz4::BlockChecksum;
        use lz4::{BlockMode, BlockSize, ContentChecksum};
        let lines: Vec<u8> =
            (0..40_000).flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 37)).into_bytes()).collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let sizes = [(BlockSize::Max64KB, 64 << 10), (BlockSize::Max256KB, 256 << 10), (BlockSize::Max1MB, 1 << 20)];
        for text in [&lines[..], &noise[..], &lines[..100], &[][..]] {
            for (size, block_max) in &sizes {
                for (block_checksum, mode) in [
                    (BlockChecksum::NoBlockChecksum, BlockMode::Independent),
                    (BlockChecksum::BlockChecksumEnabled, BlockMode::Linked),
                ] {
                    let mut encoder = lz4::EncoderBuilder::new()
                        .block_size(size.clone())
                        .block_mode(mode)
                        .block_checksum(block_checksum)
                        .checksum(ContentChecksum::ChecksumEnabled)
                        .build(Vec::new())
                        .unwrap();
                    std::io::Write::write_all(&mut encoder, text).unwrap();
                    let (frame, result) = encoder.finish();
                    result.unwrap();
                    if text.len() == noise.len() {
                        assert!(frame.len() > text.len(), "noise is stored, not compressed");
                    }
                    let most = blocks_hold_at_most(&frame).unwrap();
                    assert!(most >= text.len() && most < text.len() + block_max, "{most} for {}", text.len());
                    assert_eq!(lz4_frame(&mut Bytes::from(frame.clone())).unwrap(), text);
                    assert_eq!(blocks_hold_at_most(&frame[..frame.len() - 8]), None, "cut short");
                }
            }
        }
        assert_eq!(blocks_hold_at_most(b"not a frame"), None);
        assert_eq!(blocks_hold_at_most(&[0x04, 0x22, 0x4d, 0x18, 0x60, 0x30, 0, 0, 0, 0, 0]), None, "block size 3");
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
