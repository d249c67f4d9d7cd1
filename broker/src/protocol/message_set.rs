//! Message format v0 and v1 ("message sets", magic 0 and 1), which clients older than Kafka 0.11 still
//! send in Produce v0–v2 and expect back from Fetch v0–v3.
//!
//! The log stores only record batches (magic 2). As Kafka does, a message set is converted up on append
//! ([`up_convert`]: offsets assigned by the log, the codec kept, timestamps as the message carried them,
//! none for magic 0) and a batch converted down for an old fetcher ([`down_convert`], Kafka's
//! `message.downconversion.enable`). Down-conversion writes uncompressed messages and is bounded: it
//! stops at the byte limit of the fetch (after at least one message, so a consumer always progresses),
//! and it only ever sees what the log read under that same limit.
//!
//! A message is `offset int64, size int32, crc int32, magic int8, attributes int8, [timestamp int64 in
//! v1], key bytes, value bytes`; the CRC (IEEE) covers magic to the end. A compressed message's value is
//! itself a message set (the "wrapper"); in v1 its inner offsets are relative, in v0 they are ignored.
//! lz4 in magic 0 carries a frame header checksum computed the wrong way (KAFKA-3160); it is corrected
//! before decoding.
//!
//! References: <https://kafka.apache.org/documentation/#messageset>, KIP-31, KIP-32, KIP-57, KIP-283.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
};

/// Where the magic byte sits in both a message and a record batch.
const MAGIC_OFFSET: usize = 16;
/// offset + size + crc + magic + attributes + key length + value length.
const V0_OVERHEAD: usize = 8 + 4 + 4 + 1 + 1 + 4 + 4;
const V1_OVERHEAD: usize = V0_OVERHEAD + 8;
/// Where a record batch (magic 2) holds its maxTimestamp.
const BATCH_MAX_TIMESTAMP_OFFSET: usize = 35;
const CODEC_MASK: i8 = 0x07;
const LOG_APPEND_TIME_FLAG: i8 = 0x08;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageSetError {
    #[error("message set truncated at byte {0}")]
    Truncated(usize),
    #[error("message at byte {at} fails its CRC check")]
    Crc { at: usize },
    #[error("message at byte {at} has magic {magic}; a message set holds magic 0 or 1")]
    Magic { at: usize, magic: i8 },
    #[error("message at byte {at} uses unknown compression codec {codec}")]
    Codec { at: usize, codec: i8 },
    #[error("compressed message at byte {at} cannot be decompressed: {reason}")]
    Decompress { at: usize, reason: String },
    #[error("compressed message at byte {0} wraps another compressed message")]
    NestedCompression(usize),
    #[error("empty message set")]
    Empty,
    #[error("stored batch cannot be decoded: {0}")]
    Batch(String),
}

/// The magic byte of a produce payload or stored data: 0 or 1 for a message set, 2 for record batches.
pub fn magic(records: &[u8]) -> Option<i8> {
    records.get(MAGIC_OFFSET).map(|&b| b as i8)
}

/// One message of a set, its compression already undone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

/// Converts a produce payload in message format v0 or v1 into one record batch (magic 2) with relative
/// offsets from 0, which the log then places. The batch keeps the producer's codec.
pub fn up_convert(records: &[u8]) -> Result<Bytes, MessageSetError> {
    let (messages, codec) = decode_set(records)?;
    if messages.is_empty() {
        return Err(MessageSetError::Empty);
    }
    let records: Vec<Record> = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder cuts a batch where `offset - sequence` changes; this keeps one batch whose
            // base sequence is NO_SEQUENCE (-1): a producer without idempotence.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp: m.timestamp,
            key: m.key,
            value: m.value,
            headers: IndexMap::new(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, &records, &RecordEncodeOptions { version: 2, compression: codec })
        .map_err(|e| MessageSetError::Batch(e.to_string()))?;
    Ok(out.freeze())
}

/// Converts stored record batches to a message set of `magic` (0 or 1) for an old fetcher: messages
/// from `fetch_offset` on, uncompressed, until `max_bytes` is reached (always at least one message).
/// Control records and headers are dropped, as Kafka does. Every message of a LogAppendTime batch gets the
/// batch's maxTimestamp (the time the broker stamped), as Kafka's `RecordsUtil.convertRecordBatch` does.
pub fn down_convert(batches: &Bytes, magic: i8, fetch_offset: i64, max_bytes: usize) -> Result<Bytes, MessageSetError> {
    let mut out = BytesMut::new();
    let mut buf = batches.clone();
    while buf.remaining() > MAGIC_OFFSET {
        // Read before decoding: the decoder skips it.
        let max_timestamp = buf
            .get(BATCH_MAX_TIMESTAMP_OFFSET..BATCH_MAX_TIMESTAMP_OFFSET + 8)
            .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")));
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| MessageSetError::Batch(e.to_string()))?;
        for record in set.records.iter().filter(|r| !r.control && r.offset >= fetch_offset) {
            let size = if magic == 0 { V0_OVERHEAD } else { V1_OVERHEAD }
                + record.key.as_ref().map_or(0, |k| k.len())
                + record.value.as_ref().map_or(0, |v| v.len());
            if !out.is_empty() && out.len() + size > max_bytes {
                return Ok(out.freeze());
            }
            let log_append = record.timestamp_type == TimestampType::LogAppend;
            let attributes = if magic == 1 && log_append { LOG_APPEND_TIME_FLAG } else { 0 };
            let time = if log_append { max_timestamp.unwrap_or(record.timestamp) } else { record.timestamp };
            let timestamp = (magic == 1).then_some(time);
            put_message(
                &mut out,
                record.offset,
                magic,
                attributes,
                timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
            );
        }
    }
    Ok(out.freeze())
}

/// Writes one message: offset, size, then the CRC'd body.
fn put_message(
    out: &mut BytesMut,
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: Option<i64>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let mut body = BytesMut::new();
    body.put_i8(magic);
    body.put_i8(attributes);
    if let Some(t) = timestamp {
        body.put_i64(t);
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                body.put_i32(b.len() as i32);
                body.put_slice(b);
            }
            None => body.put_i32(-1),
        }
    }
    out.put_i64(offset);
    out.put_i32(4 + body.len() as i32);
    out.put_u32(crc32fast::hash(&body));
    out.put_slice(&body);
}

/// Every message of a set, wrappers decompressed, with the codec of the (first) wrapper.
fn decode_set(records: &[u8]) -> Result<(Vec<Message>, Compression), MessageSetError> {
    let mut messages = Vec::new();
    let mut codec = Compression::None;
    for_each_message(records, 0, &mut |at, magic, attributes, message| {
        let code = attributes & CODEC_MASK;
        if code == 0 {
            messages.push(message);
            return Ok(());
        }
        let (wrapper_codec, inner) = decompress(at, magic, code, message.value.unwrap_or_default())?;
        codec = wrapper_codec;
        let wrapper_time = message.timestamp;
        let log_append = attributes & LOG_APPEND_TIME_FLAG != 0;
        for_each_message(&inner, at, &mut |inner_at, _, inner_attributes, mut inner_message| {
            if inner_attributes & CODEC_MASK != 0 {
                return Err(MessageSetError::NestedCompression(inner_at));
            }
            if log_append {
                inner_message.timestamp = wrapper_time;
            }
            messages.push(inner_message);
            Ok(())
        })
    })?;
    Ok((messages, codec))
}

/// Calls `f(position, magic, attributes, message)` for each message of a set, checking CRCs.
fn for_each_message(
    set: &[u8],
    base: usize,
    f: &mut dyn FnMut(usize, i8, i8, Message) -> Result<(), MessageSetError>,
) -> Result<(), MessageSetError> {
    let mut pos = 0;
    while pos < set.len() {
        let at = base + pos;
        if set.len() - pos < 12 {
            return Err(MessageSetError::Truncated(at));
        }
        let size = i32::from_be_bytes(set[pos + 8..pos + 12].try_into().expect("4 bytes"));
        let start = pos + 12;
        let Some(end) =
            usize::try_from(size).ok().and_then(|s| start.checked_add(s)).filter(|&e| e <= set.len() && size >= 14)
        else {
            return Err(MessageSetError::Truncated(at));
        };
        let mut body = &set[start..end];
        let crc = body.get_u32();
        if crc32fast::hash(body) != crc {
            return Err(MessageSetError::Crc { at });
        }
        let magic = body.get_i8();
        let attributes = body.get_i8();
        let timestamp = match magic {
            0 => NO_TIMESTAMP,
            1 if body.remaining() >= 8 => body.get_i64(),
            1 => return Err(MessageSetError::Truncated(at)),
            _ => return Err(MessageSetError::Magic { at, magic }),
        };
        let key = bytes_field(&mut body).ok_or(MessageSetError::Truncated(at))?;
        let value = bytes_field(&mut body).ok_or(MessageSetError::Truncated(at))?;
        f(at, magic, attributes, Message { timestamp, key, value })?;
        pos = end;
    }
    Ok(())
}

/// A length-prefixed byte field; length -1 is null. `None` if truncated.
fn bytes_field(body: &mut &[u8]) -> Option<Option<Bytes>> {
    if body.remaining() < 4 {
        return None;
    }
    let len = body.get_i32();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if body.remaining() < len {
        return None;
    }
    let field = Bytes::copy_from_slice(&body[..len]);
    body.advance(len);
    Some(Some(field))
}

fn decompress(at: usize, magic: i8, code: i8, value: Bytes) -> Result<(Compression, Bytes), MessageSetError> {
    let fail = |e: anyhow::Error| MessageSetError::Decompress { at, reason: e.to_string() };
    let take = |b: &mut Bytes| Ok(b.split_to(b.len()));
    let mut value = value;
    match code {
        1 => Gzip::decompress(&mut value, take).map(|b| (Compression::Gzip, b)).map_err(fail),
        2 => Snappy::decompress(&mut value, take).map(|b| (Compression::Snappy, b)).map_err(fail),
        3 => {
            let mut frame = if magic == 0 { fix_lz4_header_checksum(&value) } else { value };
            Lz4::decompress(&mut frame, take).map(|b| (Compression::Lz4, b)).map_err(fail)
        }
        codec => Err(MessageSetError::Codec { at, codec }),
    }
}

/// Kafka before 0.10 computed the lz4 frame's header checksum over the magic number too (KAFKA-3160);
/// recompute it over the frame descriptor, as the lz4 frame format defines.
fn fix_lz4_header_checksum(frame: &Bytes) -> Bytes {
    const FLG: usize = 4;
    let Some(&flg) = frame.get(FLG) else { return frame.clone() };
    let descriptor_len = 2 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
    let hc = FLG + descriptor_len;
    if frame.len() <= hc {
        return frame.clone();
    }
    let mut fixed = BytesMut::from(&frame[..]);
    fixed[hc] = ((xxhash_rust::xxh32::xxh32(&frame[FLG..hc], 0) >> 8) & 0xff) as u8;
    fixed.freeze()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// (key, value, timestamp) of a test message.
    type TestMessage<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

    fn set(magic: i8, messages: &[TestMessage]) -> BytesMut {
        let mut out = BytesMut::new();
        for (i, (key, value, ts)) in messages.iter().enumerate() {
            put_message(&mut out, i as i64, magic, 0, (magic == 1).then_some(*ts), *key, *value);
        }
        out
    }

    fn wrap(magic: i8, codec: i8, inner: &[u8]) -> BytesMut {
        let compressed = match codec {
            1 => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(inner).unwrap();
                e.finish().unwrap()
            }
            _ => unreachable!(),
        };
        let mut out = BytesMut::new();
        put_message(&mut out, 0, magic, codec, (magic == 1).then_some(7), None, Some(&compressed));
        out
    }

    fn decoded(batch: &[u8]) -> Vec<Record> {
        RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch)).unwrap().records
    }

    #[test]
    fn magic_reads_the_format_of_a_payload() {
        assert_eq!(magic(&set(0, &[(None, Some(b"v"), 0)])), Some(0));
        assert_eq!(magic(&set(1, &[(None, Some(b"v"), 0)])), Some(1));
        assert_eq!(magic(b"short"), None);
    }

    #[test]
    fn v1_up_converts_with_keys_values_and_timestamps() {
        let batch = up_convert(&set(
            1,
            &[(Some(b"k"), Some(b"one"), 100), (None, Some(b"two"), 200), (Some(b"k3"), None, 300)],
        ))
        .unwrap();
        assert_eq!(magic(&batch), Some(2));
        let records = decoded(&batch);
        assert_eq!(records.len(), 3);
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(records.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [100, 200, 300]);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[1].key, None);
        assert_eq!(records[2].value, None);
    }

    #[test]
    fn v0_up_converts_without_timestamps() {
        let records = decoded(&up_convert(&set(0, &[(None, Some(b"a"), 0), (None, Some(b"b"), 0)])).unwrap());
        assert_eq!(records.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [NO_TIMESTAMP, NO_TIMESTAMP]);
        assert_eq!(records[1].value.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn compressed_wrappers_keep_their_codec() {
        for magic in [0, 1] {
            let inner = set(magic, &[(None, Some(b"x"), 5), (None, Some(b"y"), 6)]);
            let batch = up_convert(&wrap(magic, 1, &inner)).unwrap();
            let set = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
            assert_eq!(set.compression, Compression::Gzip, "magic {magic}");
            assert_eq!(
                set.records.iter().map(|r| r.value.clone().unwrap()).collect::<Vec<_>>(),
                [&b"x"[..], &b"y"[..]]
            );
        }
    }

    #[test]
    fn corrupt_and_truncated_sets_are_refused() {
        let mut bad = set(1, &[(None, Some(b"value"), 1)]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(up_convert(&bad), Err(MessageSetError::Crc { at: 0 }));
        let good = set(1, &[(None, Some(b"value"), 1)]);
        assert_eq!(up_convert(&good[..good.len() - 2]), Err(MessageSetError::Truncated(0)));
        assert_eq!(up_convert(&[]), Err(MessageSetError::Empty));
    }

    #[test]
    fn down_convert_round_trips_and_respects_the_offset_and_the_bound() {
        let batch = up_convert(&set(
            1,
            &[(Some(b"k"), Some(b"one"), 100), (None, Some(b"two"), 200), (None, Some(b"three"), 300)],
        ))
        .unwrap();
        for magic in [0, 1] {
            let all = down_convert(&batch, magic, 0, usize::MAX).unwrap();
            assert_eq!(magic_of_set(&all), magic);
            let (messages, codec) = decode_set(&all).unwrap();
            assert_eq!(codec, Compression::None);
            assert_eq!(
                messages.iter().map(|m| m.value.clone().unwrap()).collect::<Vec<_>>(),
                [&b"one"[..], &b"two"[..], &b"three"[..]]
            );
            let want_ts = if magic == 1 { vec![100, 200, 300] } else { vec![NO_TIMESTAMP; 3] };
            assert_eq!(messages.iter().map(|m| m.timestamp).collect::<Vec<_>>(), want_ts);
            // From offset 1, and a bound that holds only one message: still one message.
            let some = down_convert(&batch, magic, 1, 1).unwrap();
            let (messages, _) = decode_set(&some).unwrap();
            assert_eq!(messages.len(), 1);
            assert_eq!(i64::from_be_bytes(some[..8].try_into().unwrap()), 1);
        }
    }

    #[test]
    fn down_convert_gives_every_message_of_a_log_append_time_batch_the_append_time() {
        let batch = up_convert(&set(1, &[(None, Some(b"one"), 100), (None, Some(b"two"), 200)])).unwrap();
        // Stamped as the log does: timestamp type bit in the attributes, maxTimestamp, CRC32C.
        let mut stamped = batch.to_vec();
        stamped[22] |= LOG_APPEND_TIME_FLAG as u8;
        stamped[BATCH_MAX_TIMESTAMP_OFFSET..BATCH_MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&5_000i64.to_be_bytes());
        let crc = crc32c::crc32c(&stamped[21..]);
        stamped[17..21].copy_from_slice(&crc.to_be_bytes());
        let stamped = Bytes::from(stamped);

        let all = down_convert(&stamped, 1, 0, usize::MAX).unwrap();
        let (messages, _) = decode_set(&all).unwrap();
        assert_eq!(messages.iter().map(|m| m.timestamp).collect::<Vec<_>>(), [5_000, 5_000]);
        // offset, size, crc, magic, then the attributes of the first message.
        assert_eq!(all[17] as i8 & LOG_APPEND_TIME_FLAG, LOG_APPEND_TIME_FLAG);
        let (messages, _) = decode_set(&down_convert(&batch, 1, 0, usize::MAX).unwrap()).unwrap();
        assert_eq!(messages.iter().map(|m| m.timestamp).collect::<Vec<_>>(), [100, 200], "CreateTime unchanged");
    }

    fn magic_of_set(set: &[u8]) -> i8 {
        set[MAGIC_OFFSET] as i8
    }

    #[test]
    fn lz4_header_checksum_is_recomputed() {
        // magic, FLG (version 01, block independence), BD (64 KiB), HC (wrong), then an end mark.
        let frame = Bytes::from_static(&[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x00, 0, 0, 0, 0]);
        let fixed = fix_lz4_header_checksum(&frame);
        assert_eq!(fixed[6], ((xxhash_rust::xxh32::xxh32(&[0x60, 0x40], 0) >> 8) & 0xff) as u8);
        assert_eq!(&fixed[..6], &frame[..6]);
    }
}
