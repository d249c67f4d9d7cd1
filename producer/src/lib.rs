//! A Kafka producer written against the wire protocol, for the agent's hot path.
//!
//! - [`security`]: TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256/512) settings, from librdkafka's property names.
//! - `connection`: one broker connection: TLS, SASL, API version negotiation, framing, pipelined requests.
//! - `batch`: record batches (magic 2): records appended in place, compression, CRC-32C.
//! - `partitioner`: Java-compatible murmur2 for keyed records, sticky partitioning for keyless ones.

mod connection;
mod scram;
pub mod security;

pub use security::Security;
