//! Reading the topics out of a consumer's JoinGroup protocol metadata.
//!
//! For `protocol_type = "consumer"` the metadata is a `ConsumerProtocolSubscription`: `version: i16`,
//! `topics: [string]`, then fields that vary by version (user data, owned partitions, generation, rack).
//! The topics come first in every version, so reading only them also works for versions newer than this
//! code knows. The coordinator needs them for OffsetDelete (GROUP_SUBSCRIBED_TO_TOPIC), for the expiry
//! of offsets of topics a stable group no longer consumes (KIP-211), and to tell whether a restarted
//! static member changed its subscription (KIP-345).
//!
//! References:
//! - <https://github.com/apache/kafka/blob/trunk/clients/src/main/resources/common/message/ConsumerProtocolSubscription.json>
//! - KIP-496 (OffsetDelete): <https://cwiki.apache.org/confluence/display/KAFKA/KIP-496%3A+Administrative+API+to+delete+consumer+offsets>

/// `protocol_type` of the Java/librdkafka consumer protocol.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The subscribed topics, or `None` if the bytes are not a consumer subscription.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata;
    let version = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(&mut buf, 4)?.try_into().ok()?);
    // Each topic needs at least its 2-byte length, which bounds a bogus count before allocating.
    if count < 0 || count as usize > buf.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
        if len < 0 {
            return None;
        }
        let name = std::str::from_utf8(take(&mut buf, len as usize)?).ok()?;
        topics.push(name.to_owned());
    }
    Some(topics)
}

/// Whether two consumer subscriptions subscribe to the same topics (in any order), whatever else they
/// carry: the Java consumer's metadata also holds its generation, the partitions it owns, its
/// assignor's user data and its rack, which all change when a process restarts. Metadata that is not a
/// consumer subscription is compared byte for byte.
pub fn same_topics(a: &[u8], b: &[u8]) -> bool {
    match (subscribed_topics(a), subscribed_topics(b)) {
        (Some(mut x), Some(mut y)) => {
            for topics in [&mut x, &mut y] {
                topics.sort_unstable();
                topics.dedup();
            }
            x == y
        }
        _ => a == b,
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

#[cfg(test)]
pub(crate) fn encode_subscription(version: i16, topics: &[&str]) -> bytes::Bytes {
    encode_full_subscription(version, topics, None, &[], -1)
}

/// A `ConsumerProtocolSubscription` with every field of its version: what a Java consumer sends
/// (`ConsumerCoordinator.metadata`), with the user data, owned partitions (v1+) and generation (v2+)
/// given, and a null rack (v3+).
#[cfg(test)]
pub(crate) fn encode_full_subscription(
    version: i16,
    topics: &[&str],
    user_data: Option<&[u8]>,
    owned: &[(&str, &[i32])],
    generation: i32,
) -> bytes::Bytes {
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        string(&mut out, t);
    }
    match user_data {
        Some(data) => {
            out.extend_from_slice(&(data.len() as i32).to_be_bytes());
            out.extend_from_slice(data);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    if version >= 1 {
        out.extend_from_slice(&(owned.len() as i32).to_be_bytes());
        for (topic, partitions) in owned {
            string(&mut out, topic);
            out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
    }
    if version >= 2 {
        out.extend_from_slice(&generation.to_be_bytes());
    }
    if version >= 3 {
        out.extend_from_slice(&(-1i16).to_be_bytes()); // null rack
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_of_every_version() {
        for version in 0..=3 {
            let bytes = encode_subscription(version, &["nginx", "logs"]);
            assert_eq!(subscribed_topics(&bytes), Some(vec!["nginx".to_owned(), "logs".to_owned()]), "v{version}");
        }
    }

    #[test]
    fn same_topics_ignores_what_a_restart_changes() {
        let before =
            encode_full_subscription(3, &["nginx", "logs"], Some(&7i32.to_be_bytes()), &[("logs", &[0, 1])], 7);
        let restarted = encode_full_subscription(3, &["logs", "nginx"], Some(&(-1i32).to_be_bytes()), &[], -1);
        assert_ne!(before, restarted);
        assert!(same_topics(&before, &restarted));
        assert!(same_topics(&before, &encode_subscription(0, &["logs", "nginx"])), "the version does not matter");
        assert!(!same_topics(&before, &encode_subscription(3, &["logs"])));
        assert!(!same_topics(&before, &encode_subscription(3, &["logs", "nginx", "other"])));
        // Not a subscription: the bytes themselves.
        assert!(same_topics(b"\xff\xff-opaque", b"\xff\xff-opaque"));
        assert!(!same_topics(b"\xff\xff-opaque", b"\xff\xff-other"));
        assert!(!same_topics(&before, b"\xff\xff-opaque"));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(subscribed_topics(b""), None);
        assert_eq!(subscribed_topics(b"\x00\x00\x7f\xff\xff\xff"), None);
        assert_eq!(subscribed_topics(b"\x00\x00\x00\x00\x00\x01\x00\x09abc"), None);
        assert_eq!(subscribed_topics(b"\xff\xff\x00\x00\x00\x00"), None);
    }
}
