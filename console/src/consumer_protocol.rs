//! The consumer protocol's member assignment (`ConsumerProtocolAssignment`), as found in the member
//! assignment bytes of DescribeGroups/SyncGroup: which partitions a group member owns.
//!
//! Written by hand rather than with `kafka-protocol`'s decoder because only the leading topic array is
//! wanted and the tail (user data) varies between clients and assignors; see [`parse_assignment`].
//!
//! References: `ConsumerProtocolAssignment.json` in Apache Kafka (versions 0–3, not flexible), KIP-429.

use bytes::Buf;

/// Decodes a member's assignment (ConsumerProtocolAssignment, versions 0–3) into (topic, partition) pairs.
///
/// Only the leading version and topic array are read. Later versions only append fields, and the
/// user-data tail differs between assignors, so ignoring what follows keeps this working for every
/// client (Kafka's own ConsumerProtocol reads newer versions the same way). An empty buffer is a member
/// still waiting for its assignment in a rebalance.
pub(crate) fn parse_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>, String> {
    fn need(buf: &[u8], n: usize, what: &str) -> Result<(), String> {
        if buf.remaining() < n {
            Err(format!("assignment truncated in {what}"))
        } else {
            Ok(())
        }
    }
    let mut buf = bytes;
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    need(buf, 2, "version")?;
    let version = buf.get_i16();
    if version < 0 {
        return Err(format!("bad assignment version {version}"));
    }
    need(buf, 4, "topic count")?;
    let topics = buf.get_i32().max(0);
    let mut assigned = Vec::new();
    for _ in 0..topics {
        need(buf, 2, "topic name length")?;
        let len = usize::try_from(buf.get_i16()).map_err(|_| "null topic name in assignment".to_owned())?;
        need(buf, len, "topic name")?;
        let topic = String::from_utf8_lossy(&buf[..len]).into_owned();
        buf.advance(len);
        need(buf, 4, "partition count")?;
        let count = buf.get_i32().max(0);
        for _ in 0..count {
            need(buf, 4, "partition")?;
            assigned.push((topic.clone(), buf.get_i32()));
        }
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded_assignment(version: i16, user_data: Option<&'static [u8]>) -> Vec<u8> {
        let assignment = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_static_str("nginx")))
                    .with_partitions(vec![0, 2]),
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_static_str("dlq")))
                    .with_partitions(vec![1]),
            ])
            .with_user_data(user_data.map(bytes::Bytes::from_static));
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, version);
        assignment.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    #[test]
    fn parses_consumer_protocol_assignments() {
        for version in 0..=3 {
            for user_data in [None, Some(&b"sticky"[..])] {
                assert_eq!(
                    parse_assignment(&encoded_assignment(version, user_data)).unwrap(),
                    vec![("nginx".into(), 0), ("nginx".into(), 2), ("dlq".into(), 1)],
                    "v{version}"
                );
            }
        }
    }

    #[test]
    fn empty_assignment_means_none_yet() {
        assert_eq!(parse_assignment(&[]).unwrap(), vec![]);
        // Version 0, zero topics, null user data.
        assert_eq!(parse_assignment(&[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).unwrap(), vec![]);
    }

    #[test]
    fn truncated_assignments_are_errors_not_panics() {
        let full = encoded_assignment(1, None);
        // Cutting inside the topic array must fail; cutting after it (in user data) is fine.
        let array_end = full.len() - 4;
        for cut in 1..array_end {
            assert!(parse_assignment(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_assignment(&[0xff, 0xff, 0, 0, 0, 0]).is_err());
    }
}
