//! Searching Elasticsearch/OpenSearch for the Search page: the same request and answer as the file
//! output's scan ([`logpipe_search`]), sent as `_search` with a `query_string` query.

use logpipe_search::query;
use logpipe_search::{Answer, Hit, Request};
use serde_json::Value;

/// Searches Elasticsearch/OpenSearch: `_search` with a `query_string` query, a `@timestamp` range filter,
/// newest first, and a `date_histogram` aggregation. `client` carries the credentials.
pub async fn search(client: &reqwest::Client, host: &str, pattern: &str, request: &Request) -> Result<Answer, String> {
    let started = std::time::Instant::now();
    query::parse(&request.q)?; // the same syntax errors as the file output
    let size = request.size.unwrap_or(50).min(500);
    let mut range = serde_json::Map::new();
    if let Some(from) = request.from {
        range.insert("gte".into(), from.into());
    }
    if let Some(to) = request.to {
        range.insert("lt".into(), to.into());
    }
    let filter: Vec<Value> = if range.is_empty() {
        Vec::new()
    } else {
        range.insert("format".into(), "epoch_millis".into());
        vec![serde_json::json!({"range": {"@timestamp": range}})]
    };
    let query_text = if request.q.trim().is_empty() { "*".to_owned() } else { request.q.clone() };
    let interval_ms = match (request.from, request.to) {
        (Some(from), Some(to)) if to > from => ((to - from) / request.buckets.unwrap_or(60).max(1) as i64).max(1000),
        _ => 3_600_000,
    };
    let body = serde_json::json!({
        "size": size,
        "track_total_hits": true,
        "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "date"}}],
        "query": {"bool": {
            "must": [{"query_string": {"query": query_text, "default_operator": "AND"}}],
            "filter": filter,
        }},
        "aggs": {"histogram": {"date_histogram": {"field": "@timestamp", "fixed_interval": format!("{interval_ms}ms")}}},
    });
    let url = format!("{}/{}/_search", host.trim_end_matches('/'), pattern);
    let response = client.post(&url).json(&body).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {}", answer["error"]["reason"].as_str().unwrap_or("no reason given")));
    }
    let hits = answer["hits"]["hits"].as_array().cloned().unwrap_or_default();
    Ok(Answer {
        total: answer["hits"]["total"]["value"].as_u64().unwrap_or(hits.len() as u64),
        histogram: answer["aggregations"]["histogram"]["buckets"]
            .as_array()
            .map(|b| b.iter().map(|b| (b["key"].as_i64().unwrap_or(0), b["doc_count"].as_u64().unwrap_or(0))).collect())
            .unwrap_or_default(),
        hits: hits
            .iter()
            .map(|h| Hit {
                time_ms: h["_source"]["@timestamp"].as_str().and_then(query::instant_ms).unwrap_or(0),
                index: h["_index"].as_str().unwrap_or("").to_owned(),
                source: h["_source"].to_string(),
            })
            .collect(),
        files: 1,
        bytes: 0,
        took_ms: started.elapsed().as_millis() as u64,
    })
}
