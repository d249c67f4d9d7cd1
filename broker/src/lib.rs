//! A durable, single-node broker that speaks the Apache Kafka wire protocol.
//!
//! Real Kafka clients (librdkafka, kcat, kafka-python, Filebeat, Logstash) produce to and consume from it
//! unchanged. Record batches are stored exactly as producers sent them, in segment files per partition,
//! and an `acks=-1` produce is acknowledged only once its bytes are fsynced.
//!
//! - `config`: the `[broker]` section, with Kafka's names and defaults.
//! - `storage`: partition logs (segments, indexes, recovery, retention, idempotent producers).
//! - `group`: the group coordinator and durable committed offsets.
//! - `protocol`: framing and request decoding (pure; no I/O besides the frame reader).
//! - `handlers`: one module per Kafka API, registered in one table.
//! - `security`: listeners' security protocols, TLS, SASL, the SCRAM credentials store.
//! - `server`: accept loop, listeners, connections, shutdown.
//! - `group_retention`: retention that waits for listed groups, and what groups lost to it.
//! - `report`: what the broker reports to the admin endpoint ([`Broker::report`]).

mod broker;
mod config;
mod error;
mod group;
mod group_retention;
mod handlers;
mod protocol;
mod report;
mod security;
mod server;
mod storage;

pub use broker::{now_ms, Broker, NodeInfo};
pub use config::BrokerConfig;
pub use error::{Error, Result};
pub use group_retention::GroupRetention;
pub use report::{BrokerReport, CommittedState, GroupState, PartitionState, TopicState};
pub use server::Server;
pub use storage::DiskShortage;

/// The SCRAM credentials store under `log_dirs`, for `logpipe users` (usable while no broker runs).
pub mod users {
    pub use crate::security::credentials::{add_user, delete_user, list_users, FILE_NAME};
    pub use crate::security::scram::{ScramMechanism, MIN_ITERATIONS};
}

/// The request decoder and the version table, for the cargo-fuzz target in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::handlers::supported_versions;
    pub use crate::protocol::decode_request;
    pub use crate::security::scram::fuzz_exchange as scram_exchange;
}

/// Unit tests run on the same allocator as the binary; see the note in `src/main.rs` on why the
/// request decoder relies on it.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
