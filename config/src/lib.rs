//! Value types every section of a pipeline file and every console tool shares, so that `"500ms"`,
//! `acks = "all"` and `compression = "lz4"` mean the same wherever they are written.
//!
//! **Durations, one convention.** A key named after a Kafka or librdkafka property keeps that
//! property's name and unit: `linger_ms = 5`, `session_timeout_ms = 45000` are integers of
//! milliseconds, because that is what Kafka users type. Every other duration is a string with a unit,
//! `ms`, `s`, `m`, `h` or `d` (`"500ms"`, `"1.5s"`, `"24h"`); a bare number means seconds, as in
//! Filebeat.

mod duration;
mod kafka_security;
mod producer;
mod secret;
mod valid;

pub use duration::{duration, parse_duration};
pub use kafka_security::{KafkaSecurity, Location, SaslTable, SecurityTable, SslTable};
pub use producer::{Acks, Compression};
pub use secret::names_secret;
pub use valid::{Valid, Validate};
