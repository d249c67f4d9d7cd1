//! Record batches (magic 2), as the Produce request carries them.
//!
//! Records are encoded once, straight into the open batch's buffer, when the caller hands them over
//! ([`OpenBatch::push`]). Sealing compresses that buffer and writes the 61-byte batch header in front
//! ([`Sealed`]). The uncompressed records stay with the sealed batch until it is acknowledged, so a batch
//! the broker refuses as too large can be split ([`Sealed::split`]), and the producer id and sequence in
//! the header can be rewritten before a resend ([`Sealed::set_producer`]), which only recomputes the CRC.
//!
//! Layout (Kafka's `DefaultRecordBatch`): base offset (8), length (4), partition leader epoch (4),
//! magic (1), CRC-32C (4) of everything after it, attributes (2), last offset delta (4), first and max
//! timestamps (8 + 8), producer id (8), producer epoch (2), base sequence (4), record count (4), records.
//! Each record: its length, attributes, timestamp delta, offset delta, key and value lengths (varints,
//! zig-zag) and bytes, and a header count of 0.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Snappy, Zstd};

/// Bytes of the batch header before the first record.
pub(crate) const HEADER_BYTES: usize = 61;
/// Offset of the CRC field, and of the first byte it covers (the attributes).
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const PRODUCER_ID_AT: usize = 43;
/// Most bytes a record's framing adds to its key and value (five varints, attributes, header count).
pub(crate) const RECORD_OVERHEAD: usize = 1 + 10 + 5 + 5 + 5 + 5 + 1;

/// Record batch compression, as the attributes' low three bits give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

/// Who wrote a batch, for the broker's duplicate detection: producer id, epoch and the sequence number
/// of the batch's first record. `NONE` when idempotence is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerStamp {
    pub id: i64,
    pub epoch: i16,
    pub sequence: i32,
}

impl ProducerStamp {
    pub(crate) const NONE: Self = Self { id: -1, epoch: -1, sequence: -1 };
}

/// The sequence `count` records after `sequence`. As Kafka's `DefaultRecordBatch.incrementSequence`:
/// sequences are never negative and wrap from `i32::MAX` to 0, where the broker expects them.
pub(crate) fn sequence_after(sequence: i32, count: i32) -> i32 {
    if sequence > i32::MAX - count {
        count - (i32::MAX - sequence) - 1
    } else {
        sequence + count
    }
}

/// Records being added to one partition's next batch.
pub(crate) struct OpenBatch<T> {
    records: Vec<u8>,
    count: i32,
    first_timestamp: i64,
    max_timestamp: i64,
    opaques: Vec<T>,
}

impl<T> OpenBatch<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: Vec::with_capacity(capacity),
            count: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            opaques: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Encoded size of the records so far (before compression).
    pub(crate) fn bytes(&self) -> usize {
        self.records.len()
    }

    /// Appends one record stamped `timestamp` (milliseconds since the epoch).
    pub(crate) fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: &[u8], opaque: T) {
        if self.count == 0 {
            self.first_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        encode_record(&mut self.records, timestamp - self.first_timestamp, self.count, key, value);
        self.count += 1;
        self.opaques.push(opaque);
    }

    /// Compresses the records and puts the header in front.
    pub(crate) fn seal(self, codec: Codec, producer: ProducerStamp) -> Sealed<T> {
        let wire = frame(&self.records, self.count, self.first_timestamp, self.max_timestamp, codec, producer);
        Sealed {
            wire: wire.freeze(),
            records: self.records,
            count: self.count,
            first_timestamp: self.first_timestamp,
            codec,
            opaques: self.opaques,
        }
    }
}

/// A batch ready to send: its bytes on the wire and what it stands for.
pub(crate) struct Sealed<T> {
    /// Header and (compressed) records.
    pub wire: Bytes,
    records: Vec<u8>,
    count: i32,
    first_timestamp: i64,
    codec: Codec,
    /// One per record, in order.
    pub opaques: Vec<T>,
}

impl<T> Sealed<T> {
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Rewrites the producer id, epoch and base sequence, and the CRC that covers them. Copies the bytes
    /// only when a request still holds them (never: requests are dropped once written).
    pub(crate) fn set_producer(&mut self, producer: ProducerStamp) {
        let mut wire =
            std::mem::take(&mut self.wire).try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let at = PRODUCER_ID_AT;
        wire[at..at + 8].copy_from_slice(&producer.id.to_be_bytes());
        wire[at + 8..at + 10].copy_from_slice(&producer.epoch.to_be_bytes());
        wire[at + 10..at + 14].copy_from_slice(&producer.sequence.to_be_bytes());
        let crc = crc32c::crc32c(&wire[ATTRIBUTES_AT..]);
        wire[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.wire = wire.freeze();
    }

    /// The records, given back to the caller after the cluster refused them: key, value and opaque.
    pub(crate) fn into_records(self) -> Vec<(Option<Vec<u8>>, Vec<u8>, T)> {
        decode_records(&self.records)
            .zip(self.opaques)
            .map(|(record, opaque)| (record.key.map(<[u8]>::to_vec), record.value.to_vec(), opaque))
            .collect()
    }

    /// Two batches holding the first and the second half of the records (for a batch refused as too
    /// large), or the batch back when it holds a single record.
    pub(crate) fn split(self, producer: ProducerStamp) -> Result<(Sealed<T>, Sealed<T>), Sealed<T>> {
        if self.count < 2 {
            return Err(self);
        }
        let half = self.count / 2;
        let mut opaques = self.opaques.into_iter();
        let mut first = OpenBatch::new(self.records.len() / 2 + 64);
        let mut second = OpenBatch::new(self.records.len() / 2 + 64);
        for (index, record) in decode_records(&self.records).enumerate() {
            let opaque = opaques.next().expect("one opaque per record");
            let batch = if (index as i32) < half { &mut first } else { &mut second };
            batch.push(self.first_timestamp + record.timestamp_delta, record.key, record.value, opaque);
        }
        let second_producer = if producer.id < 0 {
            producer
        } else {
            ProducerStamp { sequence: sequence_after(producer.sequence, half), ..producer }
        };
        Ok((first.seal(self.codec, producer), second.seal(self.codec, second_producer)))
    }
}

/// Writes the header and the records, compressed with `codec`.
fn frame(
    records: &[u8],
    count: i32,
    first_timestamp: i64,
    max_timestamp: i64,
    codec: Codec,
    producer: ProducerStamp,
) -> BytesMut {
    let mut wire = BytesMut::with_capacity(HEADER_BYTES + records.len() / 2 + 64);
    wire.put_i64(0); // base offset: the broker assigns offsets
    wire.put_i32(0); // length, below
    wire.put_i32(-1); // partition leader epoch
    wire.put_i8(2); // magic
    wire.put_u32(0); // CRC, below
    wire.put_i16(codec as i16); // attributes: codec; create time; not transactional
    wire.put_i32(count - 1);
    wire.put_i64(first_timestamp);
    wire.put_i64(max_timestamp);
    wire.put_i64(producer.id);
    wire.put_i16(producer.epoch);
    wire.put_i32(producer.sequence);
    wire.put_i32(count);
    debug_assert_eq!(wire.len(), HEADER_BYTES);
    compress(codec, records, &mut wire);
    let length = (wire.len() - 12) as i32;
    wire[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&wire[ATTRIBUTES_AT..]);
    wire[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    wire
}

/// Appends `records` compressed with `codec` to `out`.
fn compress(codec: Codec, records: &[u8], out: &mut BytesMut) {
    // Compressing into memory cannot fail but for a bug in the codec; an error here would be a bug.
    let fill = |tmp: &mut BytesMut| {
        tmp.extend_from_slice(records);
        Ok(())
    };
    match codec {
        Codec::None => out.extend_from_slice(records),
        Codec::Lz4 => compress_lz4(records, out),
        Codec::Gzip => Gzip::compress(out, fill).expect("gzip into memory"),
        Codec::Snappy => Snappy::compress(out, fill).expect("snappy into memory"),
        Codec::Zstd => Zstd::compress(out, fill).expect("zstd into memory"),
    }
}

/// LZ4F reads a negative compression level as an acceleration factor (`lz4 --fast=2`): it skips ahead
/// faster where it finds no match. The lz4 crate hands its `u32` level to LZ4F's `int` as it is, so
/// this is -2. On agent envelopes of nginx lines, in 1 MB batches, it compresses 1.2 times as fast as
/// the default level (1,540 against 1,270 MB/s, alternated in one process) into frames 4.5 % larger
/// (4.92 against 5.15 times smaller), and compression was a third of the agent's CPU
/// (docs/PERFORMANCE.md, "The agent"). Any lz4 reader reads the frames: the format is the same.
const LZ4_ACCELERATION_2: u32 = -2i32 as u32;

/// lz4 frame with independent 64 KiB blocks, as librdkafka and the Java client write it, at lz4's fast
/// level with acceleration 2. (`kafka-protocol`'s own lz4 compressor uses the HC level 4, several times
/// slower.)
///
/// Unlike theirs, the frame states its content size, an optional field of the lz4 frame format that
/// librdkafka and the Java client read or skip. Without it librdkafka's consumer (the indexer's) guesses
/// four times the compressed size and grows its buffer by three quarters, copying, until the batch fits:
/// a megabyte of agent envelopes of nginx lines is about five times its lz4 frame (`lz4 -1 -B4`: 189 KiB).
fn compress_lz4(records: &[u8], out: &mut BytesMut) {
    let mut encoder = lz4::EncoderBuilder::new()
        .content_size(records.len() as u64)
        .level(LZ4_ACCELERATION_2)
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .checksum(lz4::ContentChecksum::NoChecksum)
        // The lz4 crate checksums every block by default (xxh32, a tenth of the compression's cost);
        // Kafka's record batch has its own CRC.
        .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
        .build(out.writer())
        .expect("lz4 encoder");
    encoder.write_all(records).expect("lz4 into memory");
    let (_, result) = encoder.finish();
    result.expect("lz4 into memory");
}

fn encode_record(out: &mut Vec<u8>, timestamp_delta: i64, offset_delta: i32, key: Option<&[u8]>, value: &[u8]) {
    let key_len = key.map_or(0, <[u8]>::len);
    let mut head = [0u8; RECORD_OVERHEAD];
    let mut at = 0;
    head[at] = 0; // attributes
    at += 1;
    at += put_varlong(&mut head[at..], timestamp_delta);
    at += put_varlong(&mut head[at..], i64::from(offset_delta));
    at += put_varlong(&mut head[at..], key.map_or(-1, |k| k.len() as i64));
    let body = at + key_len + varlong_len(value.len() as i64) + value.len() + 1;
    out.reserve(body + 5);
    let mut length = [0u8; 10];
    let n = put_varlong(&mut length, body as i64);
    out.extend_from_slice(&length[..n]);
    out.extend_from_slice(&head[..at]);
    if let Some(key) = key {
        out.extend_from_slice(key);
    }
    let n = put_varlong(&mut length, value.len() as i64);
    out.extend_from_slice(&length[..n]);
    out.extend_from_slice(value);
    out.push(0); // no headers
}

/// Writes `value` zig-zag encoded as a varint; returns its length.
fn put_varlong(out: &mut [u8], value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// One record as [`decode_records`] reads it back.
pub(crate) struct RecordView<'a> {
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Reads back records this module encoded (no headers).
pub(crate) fn decode_records(mut records: &[u8]) -> impl Iterator<Item = RecordView<'_>> {
    std::iter::from_fn(move || {
        if records.is_empty() {
            return None;
        }
        let length = take_varlong(&mut records) as usize;
        let (mut record, rest) = records.split_at(length);
        records = rest;
        record = &record[1..]; // attributes
        let timestamp_delta = take_varlong(&mut record);
        let _offset_delta = take_varlong(&mut record);
        let key_len = take_varlong(&mut record);
        let key = (key_len >= 0).then(|| {
            let (key, rest) = record.split_at(key_len as usize);
            record = rest;
            key
        });
        let value_len = take_varlong(&mut record) as usize;
        Some(RecordView { timestamp_delta, key, value: &record[..value_len] })
    })
}

fn take_varlong(buf: &mut &[u8]) -> i64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = buf[0];
        *buf = &buf[1..];
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn sequences_wrap_to_zero_as_in_kafka() {
        assert_eq!(sequence_after(40, 10), 50);
        assert_eq!(sequence_after(i32::MAX - 10, 10), i32::MAX);
        assert_eq!(sequence_after(i32::MAX - 10, 11), 0);
        assert_eq!(sequence_after(i32::MAX, 5), 4);
    }

    fn batch(codec: Codec, values: &[&str]) -> Sealed<usize> {
        let mut open = OpenBatch::new(1024);
        for (i, v) in values.iter().enumerate() {
            let key = (i % 2 == 1).then_some(b"k".as_slice());
            open.push(1_700_000_000_000 + i as i64, key, v.as_bytes(), i);
        }
        open.seal(codec, ProducerStamp { id: 7, epoch: 1, sequence: 40 })
    }

    /// `kafka-protocol`'s decoder checks the CRC, the length and every record, as a broker would.
    fn decode(wire: &Bytes) -> Vec<kafka_protocol::records::Record> {
        let mut bytes = wire.clone();
        RecordBatchDecoder::decode(&mut bytes).expect("valid batch").records
    }

    #[test]
    fn every_codec_decodes_with_kafka_protocol() {
        let values: Vec<String> = (0..300).map(|i| format!("{{\"message\":\"line {i} é\"}}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let sealed = batch(codec, &values);
            let records = decode(&sealed.wire);
            assert_eq!(records.len(), values.len(), "{codec:?}");
            for (i, record) in records.iter().enumerate() {
                assert_eq!(record.value.as_deref(), Some(values[i].as_bytes()));
                assert_eq!(record.key.as_deref(), (i % 2 == 1).then_some(b"k".as_slice()));
                assert_eq!(record.timestamp, 1_700_000_000_000 + i as i64);
                assert_eq!(record.producer_id, 7);
                assert_eq!(record.sequence, 40 + i as i32);
                assert_eq!(record.offset, i as i64);
            }
            assert_eq!(sealed.wire[ATTRIBUTES_AT + 1] & 7, codec as u8);
        }
    }

    /// The lz4 frame states the uncompressed size of the records (FLG bit 3, then eight bytes after BD).
    #[test]
    fn lz4_frames_state_their_content_size() {
        let values: Vec<String> = (0..500).map(|i| format!("line {i}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let sealed = batch(Codec::Lz4, &values);
        let frame = &sealed.wire[HEADER_BYTES..];
        assert_eq!(frame[..4], [0x04, 0x22, 0x4d, 0x18], "lz4 frame magic");
        assert_eq!(frame[4] & 0x08, 0x08, "content size flag");
        let stated = u64::from_le_bytes(frame[6..14].try_into().unwrap());
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut lz4::Decoder::new(frame).unwrap(), &mut decoded).unwrap();
        assert_eq!(stated, decoded.len() as u64);
        assert_eq!(decode(&sealed.wire).len(), values.len());
    }

    /// The acceleration took. The records fit in one 64 KiB block, so at the default level the frame
    /// would be lz4's block plus 23 bytes (a 15-byte header, the block's length, the end mark); and a
    /// level LZ4F did not read as negative would be clamped to the slow HC level 12, smaller still.
    #[test]
    fn lz4_frames_are_written_with_acceleration() {
        let records: Vec<u8> = (0..1000)
            .flat_map(|i| {
                format!(
                    "{{\"message\":\"10.0.{}.{} - - GET /item/{} HTTP/1.1 200\"}}\n",
                    i % 7,
                    i % 251,
                    i * 7919 % 10007
                )
                .into_bytes()
            })
            .collect();
        assert!(records.len() < 64 * 1024);
        let mut ours = BytesMut::new();
        compress_lz4(&records, &mut ours);
        let default_level = lz4::block::compress(&records, None, false).unwrap().len() + 23;
        assert!(
            ours.len() > default_level,
            "{} bytes at acceleration 2, {default_level} at the default level",
            ours.len()
        );
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut lz4::Decoder::new(&ours[..]).unwrap(), &mut decoded).unwrap();
        assert_eq!(decoded, records);
    }

    #[test]
    fn set_producer_rewrites_the_stamp_and_keeps_the_crc_valid() {
        let mut sealed = batch(Codec::Lz4, &["a", "b", "c"]);
        sealed.set_producer(ProducerStamp { id: 99, epoch: 3, sequence: 1000 });
        let records = decode(&sealed.wire);
        assert_eq!(records.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1000, 1001, 1002]);
        assert!(records.iter().all(|r| r.producer_id == 99 && r.producer_epoch == 3));
    }

    #[test]
    fn split_halves_records_opaques_and_sequences() {
        let values = ["a", "bb", "ccc", "dddd", "eeeee"];
        let stamp = ProducerStamp { id: 7, epoch: 1, sequence: 40 };
        let (first, second) = batch(Codec::Lz4, &values).split(stamp).ok().unwrap();
        assert_eq!(first.opaques, [0, 1]);
        assert_eq!(second.opaques, [2, 3, 4]);
        let a = decode(&first.wire);
        let b = decode(&second.wire);
        assert_eq!(a.iter().map(|r| r.value.clone().unwrap()).collect::<Vec<_>>(), [&b"a"[..], b"bb"]);
        assert_eq!(b.iter().map(|r| r.sequence).collect::<Vec<_>>(), [42, 43, 44]);
        assert_eq!(b[0].timestamp, 1_700_000_000_002);
        assert_eq!(b[1].key.as_deref(), Some(&b"k"[..]));
        assert!(batch(Codec::None, &["only"]).split(stamp).is_err());
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [0i64, -1, 1, 63, -64, 64, 8191, -8192, 8192, i32::MAX as i64, i64::MIN, i64::MAX] {
            let mut buf = [0u8; 10];
            let n = put_varlong(&mut buf, v);
            assert_eq!(n, varlong_len(v), "{v}");
            let mut slice = &buf[..n];
            assert_eq!(take_varlong(&mut slice), v);
            assert!(slice.is_empty());
        }
    }
}
