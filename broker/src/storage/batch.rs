//! Record batch v2 headers: parsing, validation of a produce payload, and the in-place rewrites the broker
//! is allowed to make.
//!
//! The broker stores batches exactly as producers sent them: it never decompresses or re-encodes records.
//! It only reads the fixed 61-byte header, checks the CRC32C over everything after the CRC field, and
//! overwrites `baseOffset` (deliberately outside the CRC) with the offset it assigns.
//!
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records...
//! ```
//!
//! References: https://kafka.apache.org/documentation/#recordbatch

use super::error::AppendError;

/// `baseOffset` + `batchLength`: the bytes that precede what `batchLength` counts.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// The fixed v2 header, up to and including `recordsCount`.
pub(crate) const HEADER_LEN: usize = 61;
/// Smallest legal `batchLength`: a header without records.
const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;

const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// none, gzip, snappy, lz4, zstd.
const MAX_COMPRESSION_CODEC: i16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why bytes are not a valid batch. Storage-neutral: append maps it to an [`AppendError`], recovery to a
/// truncation point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BatchError {
    #[error("truncated: {need} bytes needed, {have} available")]
    Truncated { need: usize, have: usize },
    #[error("batchLength {0} is smaller than the {MIN_BATCH_LENGTH}-byte v2 header")]
    BadLength(i32),
    #[error("magic {0}")]
    Magic(i8),
    #[error("CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the fixed header from the start of `buf`. Checks what the header alone can tell: that
    /// `batchLength` is plausible and the magic is 2. Does not check that the whole batch is present.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < LOG_OVERHEAD + 5 {
            return Err(BatchError::Truncated { need: LOG_OVERHEAD + 5, have: buf.len() });
        }
        // The magic byte sits at offset 16 in every message format version, so an old client's v0/v1
        // message set is recognised as such rather than reported as garbage.
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let batch_length = i32_at(buf, 8);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength(batch_length));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated { need: HEADER_LEN, have: buf.len() });
        }
        Ok(Self {
            base_offset: i64_at(buf, 0),
            batch_length,
            partition_leader_epoch: i32_at(buf, 12),
            magic,
            crc: i32_at(buf, CRC_OFFSET) as u32,
            attributes: i16_at(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            records_count: i32_at(buf, 57),
        })
    }

    /// Bytes of the whole batch, including `baseOffset` and `batchLength`.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Sequence of the last record; sequences wrap from `i32::MAX` to 0, as in Kafka.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences are non-negative and wrap to 0.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Checks the CRC32C of a whole batch (`batch` must be exactly one batch).
pub(crate) fn check_crc(batch: &[u8]) -> Result<(), BatchError> {
    let stored = i32_at(batch, CRC_OFFSET) as u32;
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if stored != computed {
        return Err(BatchError::Crc { stored, computed });
    }
    Ok(())
}

/// A batch of a produce payload that passed validation: where it starts in the payload, and its header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValidBatch {
    pub pos: usize,
    pub header: BatchHeader,
}

/// Validates every batch of one produce payload before anything is written, so a request is appended
/// whole or not at all.
pub(crate) fn validate_produce(records: &[u8], max_message_bytes: i32) -> Result<Vec<ValidBatch>, AppendError> {
    if records.is_empty() {
        return Err(AppendError::InvalidRecord("the produce request holds no record batch".into()));
    }
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let corrupt = |what: String| AppendError::CorruptMessage(format!("batch at byte {pos}: {what}"));
        if rest.len() < LOG_OVERHEAD {
            return Err(corrupt(format!("{} trailing bytes are too few for a batch header", rest.len())));
        }
        let declared = i32_at(rest, 8);
        if declared < 0 || LOG_OVERHEAD + declared as usize > rest.len() {
            return Err(corrupt(format!(
                "batchLength {declared} runs past the end of the payload ({} bytes left)",
                rest.len()
            )));
        }
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(BatchError::Magic(m)) => return Err(AppendError::UnsupportedMagic(m)),
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let size = header.size();
        if size > max_message_bytes.max(0) as usize {
            return Err(AppendError::MessageTooLarge { size, max: max_message_bytes });
        }
        check_crc(&rest[..size]).map_err(|e| corrupt(e.to_string()))?;
        if header.is_transactional() || header.is_control() {
            return Err(AppendError::TransactionsUnsupported);
        }
        if header.records_count < 1 {
            return Err(AppendError::InvalidRecord(format!(
                "batch at byte {pos} has recordsCount {}",
                header.records_count
            )));
        }
        if i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
            return Err(AppendError::InvalidRecord(format!(
                "batch at byte {pos}: lastOffsetDelta {} does not match recordsCount {}",
                header.last_offset_delta, header.records_count
            )));
        }
        if header.compression() > MAX_COMPRESSION_CODEC {
            return Err(AppendError::InvalidRecord(format!(
                "batch at byte {pos}: unknown compression codec {}",
                header.compression()
            )));
        }
        batches.push(ValidBatch { pos, header });
        pos += size;
    }
    Ok(batches)
}

/// Overwrites `baseOffset`; it lies outside the CRC, so the producer's checksum stays valid.
pub(crate) fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[..8].copy_from_slice(&offset.to_be_bytes());
}

/// Stamps a batch with the broker's clock for `message.timestamp.type=LogAppendTime`, as Kafka does:
/// timestampType bit and maxTimestamp change, so the CRC is recomputed.
pub(crate) fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds real v2 batches for tests: a correct header and CRC32C over opaque record bytes.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct TestBatch {
    pub records: i32,
    pub timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub payload: usize,
    pub attributes: i16,
}

#[cfg(test)]
impl TestBatch {
    pub fn new(records: i32) -> Self {
        Self {
            records,
            timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            payload: 20,
            attributes: 0,
        }
    }
    pub fn ts(mut self, ts: i64) -> Self {
        self.timestamp = ts;
        self
    }
    pub fn payload(mut self, n: usize) -> Self {
        self.payload = n;
        self
    }
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        (self.producer_id, self.producer_epoch, self.base_sequence) = (id, epoch, base_sequence);
        self
    }
    pub fn build(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + self.payload);
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
        b.extend_from_slice(&self.attributes.to_be_bytes());
        b.extend_from_slice(&(self.records - 1).to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.producer_id.to_be_bytes());
        b.extend_from_slice(&self.producer_epoch.to_be_bytes());
        b.extend_from_slice(&self.base_sequence.to_be_bytes());
        b.extend_from_slice(&self.records.to_be_bytes());
        b.extend((0..self.payload).map(|i| (i % 251) as u8));
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_builder_writes() {
        let b = TestBatch::new(3).ts(42).producer(7, 1, 10).payload(5).build();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.size(), b.len());
        assert_eq!((h.records_count, h.last_offset_delta, h.max_timestamp), (3, 2, 42));
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence()), (7, 1, 10, 12));
        check_crc(&b).unwrap();
    }

    #[test]
    fn validates_a_multi_batch_payload() {
        let mut p = TestBatch::new(1).build();
        p.extend(TestBatch::new(4).build());
        let v = validate_produce(&p, 1 << 20).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].pos, v[0].header.size());
    }

    #[test]
    fn rejects_bad_batches_with_the_right_error() {
        let good = TestBatch::new(2).build();
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(validate_produce(&bad_crc, 1 << 20), Err(AppendError::CorruptMessage(_))));
        let mut magic1 = good.clone();
        magic1[16] = 1;
        assert!(matches!(validate_produce(&magic1, 1 << 20), Err(AppendError::UnsupportedMagic(1))));
        assert!(matches!(validate_produce(&good[..good.len() - 1], 1 << 20), Err(AppendError::CorruptMessage(_))));
        assert!(matches!(validate_produce(&good, 10), Err(AppendError::MessageTooLarge { max: 10, .. })));
        let mut short_len = good.clone();
        short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(validate_produce(&short_len, 1 << 20), Err(AppendError::CorruptMessage(_))));
        let mut txn = TestBatch::new(1);
        txn.attributes = TRANSACTIONAL_BIT;
        assert!(matches!(validate_produce(&txn.build(), 1 << 20), Err(AppendError::TransactionsUnsupported)));
        let mut ctl = TestBatch::new(1);
        ctl.attributes = CONTROL_BIT;
        assert!(matches!(validate_produce(&ctl.build(), 1 << 20), Err(AppendError::TransactionsUnsupported)));
        assert!(matches!(validate_produce(&TestBatch::new(0).build(), 1 << 20), Err(AppendError::InvalidRecord(_))));
        let mut delta = TestBatch::new(3).build();
        delta[23..27].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&delta[ATTRIBUTES_OFFSET..]);
        delta[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate_produce(&delta, 1 << 20), Err(AppendError::InvalidRecord(_))));
        assert!(matches!(validate_produce(&[], 1 << 20), Err(AppendError::InvalidRecord(_))));
        // A bad second batch rejects the whole payload.
        let mut two = good.clone();
        two.extend(&bad_crc);
        assert!(validate_produce(&two, 1 << 20).is_err());
    }

    #[test]
    fn rewrites_keep_the_crc_valid() {
        let mut b = TestBatch::new(2).build();
        set_base_offset(&mut b, 1234);
        check_crc(&b).unwrap();
        assert_eq!(BatchHeader::parse(&b).unwrap().base_offset, 1234);
        set_log_append_time(&mut b, 99);
        check_crc(&b).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.max_timestamp, 99);
        assert_ne!(h.attributes & TIMESTAMP_TYPE_BIT, 0);
    }

    #[test]
    fn sequences_wrap_to_zero() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }
}
