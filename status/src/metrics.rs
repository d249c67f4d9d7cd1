//! The appliance's Prometheus metrics: the agent's own families (`logpipe_agent_*`) followed by the
//! broker's (`logpipe_broker_*`: topic sizes, group lag) and the indexer's (`logpipe_indexer_*`).

use std::fmt::Write as _;

use crate::report::Sources;

/// The text exposition of everything `sources` hold.
pub fn render(sources: &Sources) -> String {
    let mut out = match &sources.agent {
        Some(snapshot) => logpipe_agent::metrics::render(&snapshot.lock().unwrap_or_else(|e| e.into_inner())),
        None => String::new(),
    };
    let report = sources.collect();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let partition = |topic: &str, p: i32| format!("{{topic=\"{}\",partition=\"{p}\"}}", escape(topic));
    family(
        "logpipe_broker_partition_size_bytes",
        "gauge",
        "Bytes of log segments per partition.",
        report.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (partition(&t.name, p.partition), p.size_bytes.to_string()))).collect(),
    );
    family(
        "logpipe_broker_partition_log_end_offset",
        "gauge",
        "Offset after the last durable record per partition.",
        report.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (partition(&t.name, p.partition), p.log_end_offset.to_string()))).collect(),
    );
    family(
        "logpipe_broker_group_lag",
        "gauge",
        "Records between a group's committed offset and the log end, per partition.",
        report
            .groups
            .iter()
            .flat_map(|g| {
                g.partitions.iter().map(|p| {
                    (format!("{{group=\"{}\",topic=\"{}\",partition=\"{}\"}}", escape(&g.group_id), escape(&p.topic), p.partition), p.lag.to_string())
                })
            })
            .collect(),
    );
    if let Some(ix) = &report.indexer {
        let index = |i: &str| format!("{{index=\"{}\"}}", escape(i));
        type Counter = (&'static str, &'static str, fn(&crate::report::IndexReport) -> u64);
        let counters: [Counter; 3] = [
            ("logpipe_indexer_documents_indexed_total", "Documents accepted (created, or already present).", |i| i.indexed),
            ("logpipe_indexer_documents_retried_total", "Item retries after 429/5xx item answers.", |i| i.retried),
            ("logpipe_indexer_documents_dead_lettered_total", "Documents written to the dead-letter topic.", |i| i.dead_lettered),
        ];
        for (name, help, value) in counters {
            family(name, "counter", help, ix.indices.iter().map(|i| (index(&i.index), value(i).to_string())).collect());
        }
        family("logpipe_indexer_records_consumed_total", "counter", "Records consumed.", vec![(String::new(), ix.records_consumed.to_string())]);
        family("logpipe_indexer_bulk_requests_total", "counter", "Bulk requests answered.", vec![(String::new(), ix.bulk_requests.to_string())]);
        family(
            "logpipe_indexer_host_up",
            "gauge",
            "1 if the last request to the Elasticsearch host worked.",
            ix.hosts.iter().map(|h| (format!("{{host=\"{}\"}}", escape(&h.url)), u8::from(h.healthy).to_string())).collect(),
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
