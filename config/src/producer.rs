//! The producer settings the agent's `[agent.output]` and `logpipe produce` share, with Kafka's
//! spellings: `acks` is `all` (or `-1`), `1` or `0`; `compression` is a codec name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The producer's `acks` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Acks {
    /// Wait for all in-sync replicas (and, on logpipe's broker, the fsync).
    #[default]
    #[cfg_attr(feature = "clap", value(name = "all", alias = "-1"))]
    All,
    /// Wait for the leader only.
    #[cfg_attr(feature = "clap", value(name = "1"))]
    Leader,
    /// Do not wait.
    #[cfg_attr(feature = "clap", value(name = "0"))]
    None,
}

impl Acks {
    /// The value of librdkafka's and the Java client's `acks` property.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }

    /// Idempotence needs `acks=all`; with it, the producer enables idempotence as Kafka 3.0+ does.
    pub fn allows_idempotence(self) -> bool {
        self == Acks::All
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_config())
    }
}

impl FromStr for Acks {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            other => Err(format!("{other:?} is not one of all, -1, 1, 0")),
        }
    }
}

impl<'de> Deserialize<'de> for Acks {
    /// `"all"`, `"-1"`, `"1"`, `"0"`, or the integers -1, 1, 0 (Kafka's properties files write them bare).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(n) => n.to_string(),
            Raw::Text(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Record batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type` (and Kafka's `compression.type`).
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_config())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Output {
        acks: Acks,
        compression: Compression,
    }

    fn parse(json: &str) -> Result<Output, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn acks_takes_kafka_spellings_as_strings_and_integers() {
        for (raw, want) in [
            (r#""all""#, Acks::All),
            (r#""-1""#, Acks::All),
            ("-1", Acks::All),
            (r#""1""#, Acks::Leader),
            ("1", Acks::Leader),
            ("0", Acks::None),
        ] {
            let out = parse(&format!(r#"{{"acks":{raw},"compression":"lz4"}}"#)).unwrap();
            assert_eq!(out.acks, want, "{raw}");
        }
        let err = parse(r#"{"acks":"2","compression":"lz4"}"#).unwrap_err().to_string();
        assert!(err.contains("not one of all, -1, 1, 0"), "{err}");
    }

    #[test]
    fn compression_names_are_librdkafkas() {
        for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let out = parse(&format!(r#"{{"acks":"all","compression":"{c}"}}"#)).unwrap();
            assert_eq!(out.compression, c);
        }
        assert!(parse(r#"{"acks":"all","compression":"brotli"}"#).is_err());
    }
}
