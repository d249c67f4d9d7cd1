//! A Kafka producer written against the wire protocol, for the agent's hot path: records are encoded
//! once, straight into their partition's batch, and everything else (compression, requests, answers)
//! happens on the producer's own thread.
//!
//! - [`producer`]: [`Producer`], its settings and what it reports.
//! - [`security`]: TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256/512) settings, from librdkafka's property names.
//! - `accumulator`: the open batch of each partition, filled by the caller's thread.
//! - `sender`: the producer's thread: metadata, idempotent sequencing, retries.
//! - `sealer`: the compression thread, which seals full batches in the order the sender hands them over.
//! - `link`: one broker's pipelined Produce requests; `control`: Metadata and InitProducerId.
//! - `connection`: one broker connection: TLS, SASL, API version negotiation, framing; [`Connection`] is
//!   public for the console tools' admin requests.
//! - `batch`: record batches (magic 2): compression, CRC-32C, splitting.
//! - `partitioner`: Java-compatible murmur2 for keyed records, sticky partitioning for keyless ones.

mod accumulator;
mod batch;
mod connection;
mod control;
mod link;
mod partitioner;
pub mod producer;
mod scram;
mod sealer;
pub mod security;
mod sender;

pub use batch::Codec;
pub use connection::{Connection, ConnectionError, Phase};
pub use producer::{FailedRecord, ProduceError, Producer, ProducerConfig, Report};
pub use security::Security;
