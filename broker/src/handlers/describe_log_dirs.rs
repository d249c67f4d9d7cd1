//! DescribeLogDirs: size on disk per partition (what `logpipe topics describe` shows as SizeOnDisk).
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DescribeLogDirs>, KIP-113.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, TopicName};

use super::str_bytes;
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 4);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DescribeLogDirsRequest,
) -> impl Future<Output = DescribeLogDirsResponse> + Send + 'static {
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics.into_iter().map(|t| (t.topic.to_string(), Some(t.partitions))).collect(),
        None => broker.logs.topics().into_iter().map(|meta| (meta.name, None)).collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(name, partitions)| {
            let meta = broker.logs.topic(&name)?;
            let partitions = partitions
                .unwrap_or_else(|| (0..meta.partitions).collect())
                .into_iter()
                .filter_map(|index| {
                    let log = broker.logs.partition(&name, index)?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(index)
                            .with_partition_size(log.size_bytes() as i64),
                    )
                })
                .collect();
            Some(DescribeLogDirsTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(partitions))
        })
        .collect();
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(broker.config.log_dirs.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    ready(DescribeLogDirsResponse::default().with_results(vec![result]))
}
