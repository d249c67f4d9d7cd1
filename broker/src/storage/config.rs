//! Storage settings: the broker-wide [`LogConfig`] and the effective per-topic [`TopicConfig`].
//!
//! Topic configs use Kafka's dotted names (`retention.ms`, `segment.bytes`, ...) so that CreateTopics and
//! DescribeConfigs from `kafka-topics.sh`, kcat or an admin client work unchanged. They are validated once,
//! when the topic is created, and resolved into typed values that the log uses from then on.
//!
//! References: https://kafka.apache.org/documentation/#topicconfigs

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::BrokerConfig;

use super::error::TopicError;

/// Storage settings, taken from the broker config; topic configs (`retention.ms`, ...) override per topic.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub roll_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub message_max_bytes: i32,
    pub flush_interval_ms: u64,
}

impl LogConfig {
    pub fn from_broker(c: &BrokerConfig) -> Self {
        Self {
            dir: c.log_dirs.clone(),
            segment_bytes: c.log_segment_bytes,
            roll_ms: c.log_roll_hours.saturating_mul(3_600_000),
            retention_ms: c.log_retention_ms(),
            retention_bytes: c.log_retention_bytes,
            index_interval_bytes: c.log_index_interval_bytes,
            message_max_bytes: c.message_max_bytes,
            flush_interval_ms: c.log_flush_interval_ms,
        }
    }
}

/// The settings one partition log runs with: broker defaults overlaid with its topic's configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    pub segment_bytes: u64,
    pub roll_ms: i64,
    /// -1: keep forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub max_message_bytes: i32,
    /// `message.timestamp.type=LogAppendTime`: the broker stamps each batch with its own clock.
    pub log_append_time: bool,
}

/// The topic configs a client may set at creation, in Kafka's names.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// Kafka's smallest `segment.bytes` (the size of the smallest legacy record); anything smaller could not
/// hold a single batch.
const MIN_SEGMENT_BYTES: i64 = 14;

impl TopicConfig {
    /// Validates `overrides` against Kafka's rules and resolves them over the broker defaults.
    pub fn resolve(defaults: &LogConfig, overrides: &BTreeMap<String, String>) -> Result<Self, TopicError> {
        let mut c = TopicConfig {
            segment_bytes: defaults.segment_bytes,
            roll_ms: defaults.roll_ms,
            retention_ms: defaults.retention_ms,
            retention_bytes: defaults.retention_bytes,
            index_interval_bytes: defaults.index_interval_bytes,
            max_message_bytes: defaults.message_max_bytes,
            log_append_time: false,
        };
        for (key, value) in overrides {
            let v = value.trim();
            match key.as_str() {
                "cleanup.policy" => {
                    if !v.split(',').all(|p| p.trim() == "delete") {
                        return invalid(
                            key,
                            &format!("'{value}' is not supported: only 'delete' (compaction is not implemented)"),
                        );
                    }
                }
                // Accepted so DescribeConfigs output can be fed back, but not applied per topic: every partition
                // is synced within the broker-wide `log_flush_interval_ms` (the default shown), and acks=all
                // is acknowledged only after an fsync whatever this says.
                "flush.ms" => {
                    int(key, v, 0, i64::MAX)?;
                }
                "index.interval.bytes" => c.index_interval_bytes = int(key, v, 0, i32::MAX as i64)? as u64,
                "max.message.bytes" => c.max_message_bytes = int(key, v, 0, i32::MAX as i64)? as i32,
                "message.timestamp.type" => {
                    c.log_append_time = match v {
                        "CreateTime" => false,
                        "LogAppendTime" => true,
                        _ => return invalid(key, &format!("'{value}' must be CreateTime or LogAppendTime")),
                    }
                }
                // A single node holds the only replica; accepted so tools that always send it keep working.
                "min.insync.replicas" => {
                    int(key, v, 1, i32::MAX as i64)?;
                }
                "retention.bytes" => c.retention_bytes = int(key, v, -1, i64::MAX)?,
                "retention.ms" => c.retention_ms = int(key, v, -1, i64::MAX)?,
                "segment.bytes" => c.segment_bytes = int(key, v, MIN_SEGMENT_BYTES, i32::MAX as i64)? as u64,
                "segment.ms" => c.roll_ms = int(key, v, 1, i64::MAX)?,
                _ => {
                    return invalid(key, &format!("unknown topic config; supported: {}", TOPIC_CONFIG_KEYS.join(", ")));
                }
            }
        }
        Ok(c)
    }
}

fn invalid<T>(key: &str, reason: &str) -> Result<T, TopicError> {
    Err(TopicError::InvalidConfig { key: key.to_owned(), reason: reason.to_owned() })
}

fn int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, TopicError> {
    let n: i64 = value.parse().or_else(|_| invalid(key, &format!("'{value}' is not an integer")))?;
    if n < min || n > max {
        return invalid(key, &format!("{n} is out of range [{min}, {max}]"));
    }
    Ok(n)
}

/// The effective topic configs of a topic without overrides, with Kafka's names (for DescribeConfigs).
pub fn default_topic_config(c: &LogConfig) -> BTreeMap<String, String> {
    let pairs = [
        ("cleanup.policy", "delete".to_owned()),
        ("index.interval.bytes", c.index_interval_bytes.to_string()),
        ("max.message.bytes", c.message_max_bytes.to_string()),
        ("message.timestamp.type", "CreateTime".to_owned()),
        ("min.insync.replicas", "1".to_owned()),
        ("retention.bytes", c.retention_bytes.to_string()),
        ("retention.ms", c.retention_ms.to_string()),
        ("segment.bytes", c.segment_bytes.to_string()),
        ("segment.ms", c.roll_ms.to_string()),
        ("flush.ms", c.flush_interval_ms.to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> LogConfig {
        LogConfig::from_broker(&BrokerConfig::default())
    }

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_apply_over_defaults() {
        let c = TopicConfig::resolve(
            &defaults(),
            &cfg(&[("retention.ms", "1000"), ("segment.bytes", "4096"), ("message.timestamp.type", "LogAppendTime")]),
        )
        .unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.segment_bytes, 4096);
        assert!(c.log_append_time);
        assert_eq!(c.max_message_bytes, 1_048_588);
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (k, v) in [
            ("retention.ms", "soon"),
            ("retention.bytes", "-2"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "compact"),
            ("message.timestamp.type", "Now"),
            ("min.insync.replicas", "0"),
            ("flush.ms", "-1"),
            ("max.message.bytes", "99999999999"),
            ("retention.hours", "1"),
        ] {
            match TopicConfig::resolve(&defaults(), &cfg(&[(k, v)])) {
                Err(TopicError::InvalidConfig { key, .. }) => assert_eq!(key, k),
                other => panic!("{k}={v}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn defaults_use_kafka_names() {
        let d = default_topic_config(&defaults());
        assert_eq!(d["cleanup.policy"], "delete");
        assert_eq!(d["retention.ms"], (168 * 3_600_000i64).to_string());
        assert_eq!(d["segment.bytes"], (1u64 << 30).to_string());
        // Every default must itself be a valid override (DescribeConfigs output can be fed back).
        assert!(d.keys().all(|k| TOPIC_CONFIG_KEYS.contains(&k.as_str())));
        TopicConfig::resolve(&defaults(), &d).unwrap();
    }
}
