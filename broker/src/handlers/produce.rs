//! Produce: validate, append, and (for `acks=-1`) wait for the group-commit fsync.
//!
//! Batches are appended here, synchronously, so pipelined produce requests on one connection keep their
//! order (idempotent producers depend on it). Only the durability wait is deferred to the future, so
//! several in-flight requests share one fsync.
//!
//! `acks=0` requests get no response at all; the connection handles that (see `server::connection`).
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_Produce>, KIP-98 (idempotent producer),
//! KIP-467 (per-record errors, v8+).

use std::future::Future;
use std::sync::Arc;

use futures::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{now_ms, Broker};
use crate::protocol::message_set;
use crate::storage::AppendError;

pub const VERSIONS: (i16, i16) = (0, 9);

/// Result of the synchronous append of one partition's records.
enum Appended {
    Failed(ResponseError, Option<String>),
    /// Appended (or recognised as an idempotent retry); acknowledged once `durable` resolves.
    Ok {
        base_offset: i64,
        log_start_offset: i64,
        /// The broker's stamp on a LogAppendTime topic, else -1.
        log_append_time: i64,
        durable: Option<DurableWait>,
    },
}

type DurableWait = std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: ProduceRequest,
) -> impl Future<Output = ProduceResponse> + Send + 'static {
    let version = header.request_api_version;
    let acks = request.acks;
    let transactional = request.transactional_id.is_some();
    let now = now_ms();

    let mut appended: Vec<(kafka_protocol::messages::TopicName, Vec<(i32, Appended)>)> = Vec::new();
    for topic in request.topic_data {
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let outcome = if transactional {
                Appended::Failed(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".into()),
                )
            } else if !(-1..=1).contains(&acks) {
                Appended::Failed(ResponseError::InvalidRequiredAcks, None)
            } else {
                append(broker, &topic.name, data.index, data.records.as_deref(), acks, version, now)
            };
            partitions.push((data.index, outcome));
        }
        appended.push((topic.name, partitions));
    }

    async move {
        let mut responses = Vec::with_capacity(appended.len());
        for (name, partitions) in appended {
            let partition_responses = join_all(partitions.into_iter().map(|(index, outcome)| async move {
                let response = PartitionProduceResponse::default().with_index(index).with_log_append_time_ms(-1);
                match outcome {
                    Appended::Ok { base_offset, log_start_offset, log_append_time, durable } => {
                        let synced = match durable {
                            Some(wait) => wait.await,
                            None => Ok(()),
                        };
                        match synced {
                            Ok(()) => response
                                .with_base_offset(base_offset)
                                .with_log_start_offset(log_start_offset)
                                .with_log_append_time_ms(log_append_time),
                            Err(e) => {
                                tracing::error!(error = %e, "fsync failed; produce not acknowledged");
                                with_error(response, ResponseError::KafkaStorageError, Some(e.to_string()), version)
                            }
                        }
                    }
                    Appended::Failed(error, message) => with_error(response, error, message, version),
                }
            }))
            .await;
            responses
                .push(TopicProduceResponse::default().with_name(name).with_partition_responses(partition_responses));
        }
        ProduceResponse::default().with_responses(responses)
    }
}

fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: Option<&[u8]>,
    acks: i16,
    version: i16,
    now: i64,
) -> Appended {
    let Some(log) = broker.logs.partition(topic, partition) else {
        return Appended::Failed(ResponseError::UnknownTopicOrPartition, None);
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Appended::Failed(ResponseError::CorruptMessage, Some("produce request without records".into()));
    };
    // Message format v0/v1 (Produce v0–v2 from pre-0.11 clients) is stored as a record batch.
    let converted;
    let records = match message_set::magic(records) {
        Some(0 | 1) => match message_set::up_convert(records) {
            Ok(batch) => {
                converted = batch;
                &converted[..]
            }
            Err(e) => return Appended::Failed(ResponseError::CorruptMessage, Some(e.to_string())),
        },
        _ => records,
    };
    match log.append(records, now) {
        Ok(outcome) => Appended::Ok {
            base_offset: outcome.base_offset,
            log_start_offset: outcome.log_start_offset,
            log_append_time: outcome.log_append_time,
            durable: (acks == -1).then(|| Box::pin(log.wait_durable(outcome.last_offset)) as DurableWait),
        },
        Err(e) => {
            // A full disk is logged once per partition by the log itself, not once per request.
            if !matches!(e, AppendError::OutOfOrderSequence { .. }) && !e.is_disk_full() {
                tracing::warn!(topic, partition, error = %e, "produce rejected");
            }
            Appended::Failed(append_error_code(&e, version), Some(e.to_string()))
        }
    }
}

fn append_error_code(error: &AppendError, version: i16) -> ResponseError {
    match error {
        AppendError::CorruptMessage(_) => ResponseError::CorruptMessage,
        AppendError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        // INVALID_RECORD exists from v8 (KIP-467); older clients only know CORRUPT_MESSAGE.
        AppendError::InvalidRecord(_) if version >= 8 => ResponseError::InvalidRecord,
        AppendError::InvalidRecord(_) => ResponseError::CorruptMessage,
        AppendError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::TransactionsUnsupported => ResponseError::TransactionalIdAuthorizationFailed,
        AppendError::Io(_) => ResponseError::KafkaStorageError,
    }
}

fn with_error(
    response: PartitionProduceResponse,
    error: ResponseError,
    message: Option<String>,
    version: i16,
) -> PartitionProduceResponse {
    let response = response.with_error_code(code(error)).with_base_offset(-1);
    if version >= 8 {
        response.with_error_message(message.map(str_bytes))
    } else {
        response
    }
}
