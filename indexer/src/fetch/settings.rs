//! The fetcher's settings, from `[indexer.input]`: TLS and SASL as librdkafka's properties name them,
//! and the librdkafka fetch properties a Logstash or librdkafka user may have set in
//! `[indexer.input.librdkafka]`, which mean the same here.
//!
//! | property | default here | librdkafka's |
//! |---|---|---|
//! | `isolation.level` | `read_committed` | the same |
//! | `fetch.wait.max.ms` | 500 | the same |
//! | `fetch.min.bytes` | 1 | the same |
//! | `fetch.max.bytes` | 256 KiB | 50 MiB |
//! | `max.partition.fetch.bytes` (or `fetch.message.max.bytes`) | 256 KiB | 1 MiB |
//! | `queued.max.messages.kbytes` | 1,024: fetched values waiting to be handed on, beyond which nothing more is fetched | 64 MiB of prefetched messages |
//!
//! The byte limits go up to 32 MiB. These keys are not passed on to librdkafka, which does not fetch.
//!
//! The byte limits are small for the appliance's memory: an lz4 batch of envelopes is about a fifth of
//! its values, so 256 KiB fetched is about 1.25 MiB of records.

use std::time::Duration;

use logpipe_producer::Security;

use crate::config::InputConfig;
use crate::error::{Error, Result};

/// The most a fetch may ask for: a connection refuses answers over 64 MiB, and a broker may send one
/// batch beyond the limit.
const MAX_FETCH_BYTES: i32 = 32 << 20;

/// The property both the fetcher and `logpipe replay`'s librdkafka consumer read.
pub const ISOLATION_LEVEL: &str = "isolation.level";

/// The `[indexer.input.librdkafka]` keys that are the fetch path's, kept from librdkafka (which would
/// refuse some of its values, e.g. a `fetch.max.bytes` below its `message.max.bytes`).
pub const FETCH_KEYS: [&str; 7] = [
    ISOLATION_LEVEL,
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.message.max.bytes",
    "queued.max.messages.kbytes",
];

/// How every link connects, and what its requests ask for.
pub(super) struct Settings {
    pub security: Security,
    pub client_id: String,
    /// 1 for `read_committed`, 0 for `read_uncommitted`.
    pub isolation_level: i8,
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Fetched values waiting to be handed on, in bytes, beyond which nothing more is fetched.
    pub ready_limit: usize,
}

impl Settings {
    /// Reads the PEM files now; a bad value is an error naming its key.
    pub fn new(input: &InputConfig) -> Result<Settings> {
        let properties = input.client_properties()?;
        let security = Security::from_properties(&properties, "indexer.input").map_err(Error::Config)?;
        let get = |key: &str| input.librdkafka.get(key).map(String::as_str);
        let number = |keys: &[&str], default: i32, min: i32, max: i32| -> Result<i32> {
            let Some((key, value)) = keys.iter().find_map(|k| get(k).map(|v| (k, v))) else { return Ok(default) };
            match value.trim().parse::<i32>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(Error::Config(format!(
                    "indexer.input.librdkafka.{key}: `{value}` must be a whole number from {min} to {max}"
                ))),
            }
        };
        let isolation_level = match get(ISOLATION_LEVEL) {
            None | Some("read_committed") => 1,
            Some("read_uncommitted") => 0,
            Some(other) => {
                return Err(Error::Config(format!(
                    "indexer.input.librdkafka.isolation.level: `{other}` must be read_committed or read_uncommitted"
                )))
            }
        };
        Ok(Settings {
            security,
            client_id: input.client_id.clone(),
            isolation_level,
            max_wait: Duration::from_millis(number(&["fetch.wait.max.ms"], 500, 0, 300_000)? as u64),
            min_bytes: number(&["fetch.min.bytes"], 1, 1, MAX_FETCH_BYTES)?,
            max_bytes: number(&["fetch.max.bytes"], 256 << 10, 1, MAX_FETCH_BYTES)?,
            partition_max_bytes: number(
                &["max.partition.fetch.bytes", "fetch.message.max.bytes"],
                256 << 10,
                1,
                MAX_FETCH_BYTES,
            )?,
            ready_limit: number(&["queued.max.messages.kbytes"], 1024, 1, 2_097_151)? as usize * 1024,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pairs: &[(&str, &str)]) -> InputConfig {
        let librdkafka = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        InputConfig { librdkafka, ..InputConfig::default() }
    }

    #[test]
    fn defaults_and_librdkafka_properties() {
        let s = Settings::new(&input(&[])).unwrap();
        assert_eq!((s.isolation_level, s.max_wait, s.min_bytes), (1, Duration::from_millis(500), 1));
        assert_eq!((s.max_bytes, s.partition_max_bytes, s.ready_limit), (256 << 10, 256 << 10, 1 << 20));
        let s = Settings::new(&input(&[
            ("isolation.level", "read_uncommitted"),
            ("fetch.wait.max.ms", "100"),
            ("fetch.max.bytes", "33554432"),
            ("fetch.message.max.bytes", "1048576"),
            ("queued.max.messages.kbytes", "8192"),
        ]))
        .unwrap();
        assert_eq!((s.isolation_level, s.max_wait), (0, Duration::from_millis(100)));
        assert_eq!((s.max_bytes, s.partition_max_bytes, s.ready_limit), (32 << 20, 1 << 20, 8 << 20));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Settings::new(&input(&[("fetch.max.bytes", "lots")])).err().unwrap().to_string();
        assert!(e.contains("indexer.input.librdkafka.fetch.max.bytes: `lots`"), "{e}");
        let e = Settings::new(&input(&[("max.partition.fetch.bytes", "104857600")])).err().unwrap().to_string();
        assert!(e.contains("from 1 to 33554432"), "{e}");
        let e = Settings::new(&input(&[("isolation.level", "dirty")])).err().unwrap().to_string();
        assert!(e.contains("isolation.level: `dirty`"), "{e}");
    }
}
