//! Fetch responses (v4–v12) encoded with their record batches shared, not copied.
//!
//! A Fetch response is almost all record batches, read from the log into `Bytes`. Encoding it with
//! `kafka-protocol` copies every batch into the frame, a second copy of every byte served, and the frame
//! grows by reallocation as it goes. Here the small fields are written into one buffer and each
//! partition's records stay the `Bytes` they were read into: the frame is a list of parts that the
//! connection writes one after the other (`server::connection`). The bytes on the wire are exactly those
//! of `kafka-protocol`'s encoder, which `tests` checks for every version.
//!
//! On a plaintext connection a partition's records may instead still be in their segment file
//! (`FileRecords`): the frame then holds a `Part::File` there, with its length already in the frame, and
//! the connection sends it with `sendfile`.
//!
//! Only what the broker fills in is written this way; a response that carries anything else (tagged
//! fields, a diverging epoch, a current leader or snapshot id, a preferred replica below v11) returns
//! `None` and goes through the generic encoder.
//!
//! Reference: <https://kafka.apache.org/protocol#The_Messages_Fetch>

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use super::Part;
use crate::storage::FileRecords;

/// Record sets shorter than this are copied into the frame: a separate write is not worth it.
const SHARE_FROM: usize = 4096;

/// The frame of a Fetch response as parts to write in order (the first holds the size prefix), or `None`
/// when the response needs the generic encoder. `files` has one entry per partition in order: where it is
/// `Some`, that partition's records are sent from the file and its `records` field is ignored.
pub fn encode(
    version: i16,
    correlation_id: i32,
    response: &FetchResponse,
    files: &[Option<FileRecords>],
) -> anyhow::Result<Option<Vec<Part>>> {
    if !(4..=12).contains(&version) || !plain(response, version) {
        return Ok(None);
    }
    let flexible = version >= 12;
    let mut frame = Frame { meta: BytesMut::with_capacity(256), shared: Vec::new(), flexible };
    frame.meta.put_i32(0); // size, patched in `Frame::finish`
    let header_version = if flexible { 1 } else { 0 };
    ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut frame.meta, header_version)?;
    frame.meta.put_i32(response.throttle_time_ms);
    if version >= 7 {
        frame.meta.put_i16(response.error_code);
        frame.meta.put_i32(response.session_id);
    }
    frame.array_len(response.responses.len())?;
    let mut files = files.iter();
    for topic in &response.responses {
        frame.string(&topic.topic.0)?;
        frame.array_len(topic.partitions.len())?;
        for partition in &topic.partitions {
            frame.partition(partition, files.next().and_then(Option::as_ref), version)?;
        }
        frame.no_tagged_fields();
    }
    frame.no_tagged_fields();
    Ok(Some(frame.finish()))
}

/// The response with every partition's records in memory, read from the files that hold them (for the
/// generic encoder).
pub fn with_records_read(response: &FetchResponse, files: &[Option<FileRecords>]) -> std::io::Result<FetchResponse> {
    let mut response = response.clone();
    let mut files = files.iter();
    for partition in response.responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if let Some(file) = files.next().and_then(Option::as_ref) {
            partition.records = Some(file.read()?);
        }
    }
    Ok(response)
}

/// Whether the response holds only fields this encoder writes.
fn plain(response: &FetchResponse, version: i16) -> bool {
    let plain_partition = |p: &PartitionData| {
        p.unknown_tagged_fields.is_empty()
            && p.diverging_epoch == Default::default()
            && p.current_leader == Default::default()
            && p.snapshot_id == Default::default()
            && (version >= 11 || p.preferred_read_replica == -1)
            && p.aborted_transactions.iter().flatten().all(|a| a.unknown_tagged_fields.is_empty())
    };
    let plain_topic =
        |t: &FetchableTopicResponse| t.unknown_tagged_fields.is_empty() && t.partitions.iter().all(plain_partition);
    response.unknown_tagged_fields.is_empty()
        && response.node_endpoints.is_empty()
        && (version >= 7 || response.session_id == 0)
        && response.responses.iter().all(plain_topic)
}

/// The fields so far, and where in them each shared record set goes.
struct Frame {
    meta: BytesMut,
    /// Record sets that are parts of their own, and where in `meta` each goes.
    shared: Vec<(usize, Part)>,
    /// v12+: compact lengths (unsigned varint of length + 1) and tagged fields (KIP-482).
    flexible: bool,
}

impl Frame {
    fn partition(&mut self, p: &PartitionData, file: Option<&FileRecords>, version: i16) -> anyhow::Result<()> {
        self.meta.put_i32(p.partition_index);
        self.meta.put_i16(p.error_code);
        self.meta.put_i64(p.high_watermark);
        self.meta.put_i64(p.last_stable_offset);
        if version >= 5 {
            self.meta.put_i64(p.log_start_offset);
        }
        match &p.aborted_transactions {
            None => self.null_len(),
            Some(aborted) => {
                self.array_len(aborted.len())?;
                for a in aborted {
                    self.meta.put_i64(a.producer_id.0);
                    self.meta.put_i64(a.first_offset);
                    self.no_tagged_fields();
                }
            }
        }
        if version >= 11 {
            self.meta.put_i32(p.preferred_read_replica.0);
        }
        match (file, &p.records) {
            (Some(file), _) => {
                self.bytes_len(usize::try_from(file.len())?)?;
                self.shared.push((self.meta.len(), Part::File(file.clone())));
            }
            (None, None) => self.null_len(),
            (None, Some(records)) => {
                self.bytes_len(records.len())?;
                if records.len() >= SHARE_FROM {
                    self.shared.push((self.meta.len(), Part::Bytes(records.clone())));
                } else {
                    self.meta.put_slice(records);
                }
            }
        }
        self.no_tagged_fields();
        Ok(())
    }

    fn string(&mut self, s: &str) -> anyhow::Result<()> {
        if self.flexible {
            self.uvarint(u32::try_from(s.len() + 1)?);
        } else {
            self.meta.put_i16(i16::try_from(s.len())?);
        }
        self.meta.put_slice(s.as_bytes());
        Ok(())
    }

    fn array_len(&mut self, len: usize) -> anyhow::Result<()> {
        self.bytes_len(len)
    }

    /// The length of an array or of bytes (the two are written alike).
    fn bytes_len(&mut self, len: usize) -> anyhow::Result<()> {
        if self.flexible {
            self.uvarint(u32::try_from(len + 1)?);
        } else {
            self.meta.put_i32(i32::try_from(len)?);
        }
        Ok(())
    }

    /// A null array or null bytes.
    fn null_len(&mut self) {
        if self.flexible {
            self.uvarint(0);
        } else {
            self.meta.put_i32(-1);
        }
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }

    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.meta.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.meta.put_u8(v as u8);
    }

    /// Patches the size prefix and cuts the fields around the shared record sets.
    fn finish(mut self) -> Vec<Part> {
        let size = self.meta.len() - 4 + self.shared.iter().map(|(_, r)| r.len()).sum::<usize>();
        self.meta[..4].copy_from_slice(&(size as i32).to_be_bytes());
        let meta = self.meta.freeze();
        let mut parts = Vec::with_capacity(2 * self.shared.len() + 1);
        let mut from = 0;
        for (at, records) in self.shared {
            parts.push(Part::Bytes(meta.slice(from..at)));
            parts.push(records);
            from = at;
        }
        if from < meta.len() {
            parts.push(Part::Bytes(meta.slice(from..)));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_response_parts;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset};
    use kafka_protocol::messages::{ApiKey, BrokerId, ProducerId, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn generic(version: i16, correlation_id: i32, response: &FetchResponse) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        let header_version = ApiKey::Fetch.response_header_version(version);
        ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut buf, header_version).unwrap();
        response.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.to_vec()
    }

    /// The frame's bytes, reading the parts that are still in files.
    fn bytes_of(parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File(f) => out.extend_from_slice(&f.read().unwrap()),
            }
        }
        out
    }

    fn partition(index: i32, records: Option<Bytes>) -> PartitionData {
        PartitionData::default()
            .with_partition_index(index)
            .with_high_watermark(1_000 + i64::from(index))
            .with_last_stable_offset(999)
            .with_log_start_offset(7)
            .with_records(records)
    }

    fn sample() -> FetchResponse {
        let big = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let topic = |name: &str, partitions| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(partitions)
        };
        FetchResponse::default().with_throttle_time_ms(3).with_responses(vec![
            topic(
                "logs",
                vec![
                    partition(0, Some(big.slice(..70_000))),
                    partition(1, Some(Bytes::from_static(b"small"))),
                    partition(2, Some(Bytes::new())),
                    partition(3, None).with_error_code(1).with_aborted_transactions(None),
                    partition(4, Some(big.slice(5..))).with_aborted_transactions(Some(vec![
                        AbortedTransaction::default().with_producer_id(ProducerId(9)).with_first_offset(11),
                    ])),
                ],
            ),
            topic("empty", vec![]),
            topic("other", vec![partition(0, Some(big.clone()))]),
        ])
    }

    #[test]
    fn same_bytes_as_the_generic_encoder_for_every_version() {
        let response = sample();
        for version in 4..=12 {
            let parts = encode(version, 42, &response, &[]).unwrap().expect("plain response");
            assert_eq!(bytes_of(&parts), generic(version, 42, &response), "Fetch v{version}");
            let shared = parts.iter().filter(|p| p.len() >= 70_000).count();
            assert_eq!(shared, 3, "the large record sets are their own parts (v{version})");
        }
    }

    #[test]
    fn encode_response_parts_uses_it_and_keeps_the_same_bytes() {
        let response = sample();
        for version in 4..=12 {
            let parts =
                encode_response_parts(ApiKey::Fetch, version, 5, &ResponseKind::Fetch(response.clone()), &[]).unwrap();
            assert!(parts.len() > 1, "v{version} shares its record sets");
            assert_eq!(bytes_of(&parts), generic(version, 5, &response));
        }
    }

    #[test]
    fn anything_else_goes_to_the_generic_encoder() {
        let diverging = sample().with_responses(vec![FetchableTopicResponse::default()
            .with_partitions(vec![partition(0, None).with_diverging_epoch(EpochEndOffset::default().with_epoch(3))])]);
        assert!(encode(12, 1, &diverging, &[]).unwrap().is_none());
        assert!(encode(3, 1, &sample(), &[]).unwrap().is_none(), "legacy versions have their own encoder");
        assert!(encode(13, 1, &sample(), &[]).unwrap().is_none(), "topic ids from v13");
        let replica = sample().with_responses(vec![FetchableTopicResponse::default()
            .with_partitions(vec![partition(0, None).with_preferred_read_replica(BrokerId(2))])]);
        assert!(encode(10, 1, &replica, &[]).unwrap().is_none());
        assert!(encode(11, 1, &replica, &[]).unwrap().is_some());
    }

    /// `sample()` with the records of "logs" partitions 0 and 4 left in a file at an offset, and the same
    /// response with those records in memory.
    fn sample_in_file() -> (FetchResponse, Vec<Option<FileRecords>>, FetchResponse) {
        let records = Bytes::from((0..50_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>());
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &[b'x'; 100]).unwrap();
        std::io::Write::write_all(&mut file, &records).unwrap();
        let in_file = FileRecords::new(std::sync::Arc::new(file), std::path::Path::new("test.log"), 100, 50_000);
        let (mut placeholders, mut in_memory) = (sample(), sample());
        for partition in [0, 4] {
            placeholders.responses[0].partitions[partition].records = Some(Bytes::new());
            in_memory.responses[0].partitions[partition].records = Some(records.clone());
        }
        (placeholders, vec![Some(in_file.clone()), None, None, None, Some(in_file)], in_memory)
    }

    #[test]
    fn records_in_files_are_parts_with_their_length_in_the_frame() {
        let (response, files, in_memory) = sample_in_file();
        for version in 4..=12 {
            let parts = encode(version, 42, &response, &files).unwrap().expect("plain response");
            assert_eq!(bytes_of(&parts), generic(version, 42, &in_memory), "Fetch v{version}");
            assert_eq!(parts.iter().filter(|p| matches!(p, Part::File(_))).count(), 2);
        }
    }

    #[test]
    fn the_generic_encoder_gets_records_in_files_read() {
        let (response, files, in_memory) = sample_in_file();
        let parts = encode_response_parts(ApiKey::Fetch, 3, 9, &ResponseKind::Fetch(response), &files).unwrap();
        let expected = crate::protocol::encode_response(ApiKey::Fetch, 3, 9, &ResponseKind::Fetch(in_memory)).unwrap();
        assert_eq!(bytes_of(&parts), expected);
    }
}
