//! The producer's requests that are not Produce: Metadata (partitions and their leaders) and
//! InitProducerId (the idempotent producer's id and epoch). Each is one call on a fresh connection to the
//! first broker that answers, tried in turn: they are rare (first use of a topic, a leader change, an
//! error), so no connection is kept for them.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::connection::{Connection, ConnectionError};
use crate::security::Security;

/// Metadata versions this producer speaks (v4+ can ask the broker to create topics on first use).
const METADATA_VERSIONS: (i16, i16) = (4, 12);
/// InitProducerId versions this producer speaks.
const INIT_PRODUCER_ID_VERSIONS: (i16, i16) = (0, 4);

/// What the producer needs to know of the cluster.
#[derive(Debug, Default)]
pub(crate) struct ClusterView {
    /// `host:port` by node id.
    pub brokers: HashMap<i32, String>,
    pub topics: HashMap<String, TopicView>,
}

#[derive(Debug)]
pub(crate) enum TopicView {
    /// The leader of each partition, by index (`None`: leader not available now).
    Partitions(Vec<Option<i32>>),
    /// The cluster refused the topic: unknown (and not created), unauthorized, invalid.
    Refused { code: i16 },
    /// The answer said to try again (a leader election, a topic being created).
    NotReady { code: i16 },
}

/// Where to connect and how.
pub(crate) struct Contact {
    pub addresses: Vec<String>,
    pub security: Security,
    pub client_id: String,
    pub timeout: Duration,
}

impl Contact {
    /// Opens a connection to the first address that answers. The error is the last one seen.
    async fn connect(&self) -> Result<Connection, ConnectionError> {
        let mut last = None;
        for address in &self.addresses {
            match Connection::open(address, &self.security, &self.client_id, self.timeout).await {
                Ok(connection) => return Ok(connection),
                Err(error) if error.is_retriable() => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.expect("at least one broker address"))
    }

    /// Partitions and leaders of `topics`, asking the cluster to create them on first use (it does when
    /// its auto-creation is on).
    pub(crate) async fn metadata(&self, topics: &[String]) -> Result<ClusterView, String> {
        let mut connection = self.connect().await.map_err(|e| e.to_string())?;
        let version = connection
            .version(ApiKey::Metadata, METADATA_VERSIONS)
            .ok_or_else(|| format!("{}: the broker supports no Metadata version in 4..=12", connection.broker()))?;
        let request = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                .collect(),
        ));
        let response = connection.call(&request, version, self.timeout).await.map_err(|e| e.to_string())?;
        let mut view = ClusterView::default();
        for broker in response.brokers {
            view.brokers.insert(broker.node_id.0, format!("{}:{}", &*broker.host, broker.port));
        }
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let state = match ResponseError::try_from_code(topic.error_code) {
                None => {
                    let count = topic.partitions.iter().map(|p| p.partition_index + 1).max().unwrap_or(0).max(0);
                    let mut leaders = vec![None; count as usize];
                    for p in &topic.partitions {
                        if p.partition_index >= 0 && p.leader_id.0 >= 0 {
                            leaders[p.partition_index as usize] = Some(p.leader_id.0);
                        }
                    }
                    if leaders.is_empty() {
                        TopicView::NotReady { code: ResponseError::LeaderNotAvailable.code() }
                    } else {
                        TopicView::Partitions(leaders)
                    }
                }
                // Asked with auto-creation on, a cluster that does not create topics answers this: the
                // topic is missing (Kafka calls the error retriable, for a topic still propagating).
                Some(ResponseError::UnknownTopicOrPartition) => TopicView::Refused { code: topic.error_code },
                // Being created, a leader being elected: ask again shortly.
                Some(e) if e.is_retriable() => TopicView::NotReady { code: topic.error_code },
                Some(_) => TopicView::Refused { code: topic.error_code },
            };
            view.topics.insert(name.0.to_string(), state);
        }
        Ok(view)
    }

    /// A new producer id and epoch for an idempotent producer.
    pub(crate) async fn init_producer_id(&self) -> Result<(i64, i16), String> {
        let mut connection = self.connect().await.map_err(|e| e.to_string())?;
        let version = connection.version(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSIONS).ok_or_else(|| {
            format!(
                "{}: the broker supports no InitProducerId version (Kafka 0.11 or later is needed for acks=all with \
                 idempotence)",
                connection.broker()
            )
        })?;
        let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
        let response = connection.call(&request, version, self.timeout).await.map_err(|e| e.to_string())?;
        match ResponseError::try_from_code(response.error_code) {
            None => Ok((response.producer_id.0, response.producer_epoch)),
            Some(error) => Err(format!("{}: InitProducerId refused: {error:?}", connection.broker())),
        }
    }
}
