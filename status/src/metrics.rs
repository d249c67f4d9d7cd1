//! The appliance's Prometheus metrics: the agent's own families (`logpipe_agent_*`) followed by the
//! broker's (`logpipe_broker_*`: topic sizes, group lag) and the indexer's (`logpipe_indexer_*`).

use logpipe_admin::{Exposition, Kind};

use crate::report::{IndexReport, Sources};

/// The text exposition of everything `sources` hold.
pub fn render(sources: &Sources) -> String {
    let mut page = Exposition::new();
    if let Some(snapshot) = &sources.agent {
        page.append(logpipe_agent::snapshot::render(
            &snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
    }
    let report = sources.collect();
    let partition = |topic: &str, p: i32| [("topic", topic.to_string()), ("partition", p.to_string())];
    page.family(
        "logpipe_broker_partition_size_bytes",
        Kind::Gauge,
        "Bytes of log segments per partition.",
        report.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (partition(&t.name, p.partition), p.size_bytes))),
    );
    page.family(
        "logpipe_broker_partition_log_end_offset",
        Kind::Gauge,
        "Offset after the last durable record per partition.",
        report
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (partition(&t.name, p.partition), p.log_end_offset))),
    );
    page.family(
        "logpipe_broker_group_lag",
        Kind::Gauge,
        "Records between a group's committed offset and the log end, per partition.",
        report.groups.iter().flat_map(|g| {
            g.partitions.iter().map(|p| {
                (
                    [("group", g.group_id.clone()), ("topic", p.topic.clone()), ("partition", p.partition.to_string())],
                    p.lag,
                )
            })
        }),
    );
    page.family(
        "logpipe_broker_group_lag_at_risk",
        Kind::Gauge,
        "1 if the group's committed offset is within [broker.retention] lag_at_risk_records of the log start, \
         with records left to read.",
        report.groups.iter().flat_map(|g| {
            g.partitions.iter().map(|p| {
                (
                    [("group", g.group_id.clone()), ("topic", p.topic.clone()), ("partition", p.partition.to_string())],
                    u8::from(p.at_risk),
                )
            })
        }),
    );
    page.family(
        "logpipe_broker_group_records_lost_total",
        Kind::Counter,
        "Records retention deleted before the group consumed them, in total across broker restarts.",
        report.groups.iter().map(|g| ([("group", g.group_id.clone())], g.records_lost)),
    );
    if let Some(ix) = &report.indexer {
        let index = |i: &IndexReport| [("index", i.index.clone())];
        type Counter = (&'static str, &'static str, fn(&IndexReport) -> u64);
        let counters: [Counter; 3] = [
            ("logpipe_indexer_documents_indexed_total", "Documents accepted (created, or already present).", |i| {
                i.indexed
            }),
            ("logpipe_indexer_documents_retried_total", "Item retries after 429/5xx item answers.", |i| i.retried),
            ("logpipe_indexer_documents_dead_lettered_total", "Documents written to the dead-letter topic.", |i| {
                i.dead_lettered
            }),
        ];
        for (name, help, value) in counters {
            page.family(name, Kind::Counter, help, ix.indices.iter().map(|i| (index(i), value(i))));
        }
        page.single("logpipe_indexer_records_consumed_total", Kind::Counter, "Records consumed.", ix.records_consumed);
        page.single("logpipe_indexer_bulk_requests_total", Kind::Counter, "Bulk requests answered.", ix.bulk_requests);
        page.family(
            "logpipe_indexer_host_up",
            Kind::Gauge,
            "1 if the last request to the Elasticsearch host worked.",
            ix.hosts.iter().map(|h| ([("host", h.url.clone())], u8::from(h.healthy))),
        );
    }
    page.finish()
}
