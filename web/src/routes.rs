//! The console's HTTP routes: the page and its assets at `/`, and the JSON APIs under `/api/` (listed in
//! README.md). The pages read `/status` for the live numbers; these APIs add what a status report does
//! not hold. Changes (an offset reset, a re-send) are POSTs with a JSON body: a browser never sends that
//! cross-site without a CORS preflight, which this endpoint does not answer, so another web page cannot
//! trigger them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use logpipe_console::ResetTarget;
use logpipe_indexer::retention::IndexList;
use logpipe_status::Sources;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::kafka::{KafkaAccess, Seek};
use crate::lag_history::LagHistory;
use logpipe_search as search;

/// Everything the console reads from.
pub struct Console {
    /// The parts of this process (the same as `/status`).
    pub sources: Sources,
    /// The Kafka cluster the pipeline uses (the indexer's input, or this process's broker).
    pub kafka: Option<KafkaAccess>,
    /// The indexer's store, for the Indices page.
    pub indices: Option<IndexList>,
    /// The file output's directory, searched by the Search page.
    pub file_dir: Option<PathBuf>,
    /// Elasticsearch/OpenSearch to search instead: hosts, the indexer's HTTP client, index pattern.
    pub elasticsearch: Option<ElasticsearchSearch>,
    /// The indexer's source topics and its dead-letter suffix (`-dlq`).
    pub source_topics: Vec<String>,
    pub dead_letter_suffix: Option<String>,
    /// `[indexer.retention] delete_after`.
    pub retention: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ElasticsearchSearch {
    pub hosts: Vec<String>,
    /// The indexer's client ([`logpipe_indexer`]'s `ElasticsearchConfig::http_client`): the same TLS trust and
    /// credentials (`api_key`, or `user` and `password`).
    pub client: reqwest::Client,
    pub pattern: String,
}

impl Console {
    /// The console of an appliance: `broker` is this process's broker address, if it runs one.
    pub fn for_appliance(
        sources: Sources,
        broker: Option<String>,
        indexer: Option<&logpipe_indexer::Indexer>,
    ) -> Result<Self, String> {
        let mut console = Console {
            sources,
            kafka: broker.map(|bootstrap| KafkaAccess { bootstrap, properties: Vec::new() }),
            indices: None,
            file_dir: None,
            elasticsearch: None,
            source_topics: Vec::new(),
            dead_letter_suffix: None,
            retention: None,
        };
        let Some(indexer) = indexer else { return Ok(console) };
        let config = indexer.config();
        console.kafka = Some(kafka_access(config)?);
        console.source_topics = config.input.topics.clone();
        console.retention = config.retention.as_ref().map(|r| r.delete_after);
        console.indices = Some(IndexList::open(indexer).map_err(|e| e.to_string())?);
        match &config.output.elasticsearch {
            Some(es) => {
                console.dead_letter_suffix = Some(es.dead_letter_topic_suffix.clone());
                console.elasticsearch = Some(ElasticsearchSearch {
                    hosts: es.hosts.clone(),
                    client: es.http_client().map_err(|e| e.to_string())?,
                    pattern: "*,-.*".to_owned(),
                });
            }
            None => {
                console.file_dir =
                    Some(config.output.file.as_ref().map(|f| f.path.clone()).unwrap_or_else(|| "data/indices".into()))
            }
        }
        Ok(console)
    }
}

/// The indexer's input cluster as the console reaches it: the connection properties of `[indexer.input]`'s
/// `librdkafka` table over those of its `security`, `sasl` and `ssl` tables. The table goes last, as the
/// agent's does, so that an imported config's `security.protocol` there is not overridden by the
/// `security` table's default (PLAINTEXT).
fn kafka_access(config: &logpipe_indexer::IndexerConfig) -> Result<KafkaAccess, String> {
    let input = &config.input;
    const SHARED: [&str; 6] = ["security.", "sasl.", "ssl.", "socket.", "broker.", "client."];
    let properties = input.client_properties().map_err(|e| e.to_string())?;
    let properties = properties
        .into_iter()
        .filter(|(k, _)| SHARED.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Ok(KafkaAccess { bootstrap: input.brokers.join(","), properties })
}

#[derive(Clone)]
struct App {
    console: Arc<Console>,
    history: LagHistory,
}

/// The console's routes; the lag history is sampled until `stop`.
pub fn router(console: Console, stop: CancellationToken) -> Router {
    let history = LagHistory::start(console.sources.clone(), stop);
    let app = App { console: Arc::new(console), history };
    Router::new()
        .route("/", get(|| async { crate::assets::page() }))
        .route("/app.js", get(|| async { crate::assets::script() }))
        .route("/app.css", get(|| async { crate::assets::style() }))
        .route("/api/console", get(about))
        .route("/api/topics/{topic}/configs", get(configs))
        .route("/api/topics/{topic}/messages", get(messages))
        .route("/api/groups/{group}", get(group))
        .route("/api/groups/{group}/reset", post(reset))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/dead-letters/resend", post(resend))
        .route("/api/indices", get(indices))
        .route("/api/search", get(run_search))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn no_kafka() -> Response {
    error(StatusCode::NOT_FOUND, "this process has no Kafka cluster configured (no broker or indexer)")
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::BAD_GATEWAY, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// What the console can do here: which pages have data.
async fn about(State(app): State<App>) -> Json<Value> {
    let c = &app.console;
    Json(json!({
        "kafka": c.kafka.as_ref().map(|k| k.bootstrap.clone()),
        "search": if c.elasticsearch.is_some() { "elasticsearch" } else if c.file_dir.is_some() { "file" } else { "none" },
        "file_dir": c.file_dir.as_ref().map(|d| d.display().to_string()),
        "source_topics": c.source_topics,
        "dead_letter_topics": c.dead_letter_suffix.as_ref().map(|s| c.source_topics.iter().map(|t| format!("{t}{s}")).collect::<Vec<_>>()),
        "retention_s": c.retention.map(|d| d.as_secs()),
        "lag_sample_s": crate::lag_history::INTERVAL.as_secs(),
    }))
}

async fn configs(State(app): State<App>, Path(topic): Path<String>) -> Response {
    let Some(access) = app.console.kafka.clone() else { return no_kafka() };
    match access.configs(&topic).await {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    partition: i32,
    offset: Option<i64>,
    /// Milliseconds since the epoch, or an RFC 3339 time.
    time: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    filter: String,
}

async fn messages(State(app): State<App>, Path(topic): Path<String>, Query(q): Query<MessagesQuery>) -> Response {
    let Some(access) = app.console.kafka.clone() else { return no_kafka() };
    let seek = match (&q.time, q.offset) {
        (Some(t), _) if !t.trim().is_empty() => {
            match t.trim().parse::<i64>().ok().or_else(|| logpipe_search::query::instant_ms(t.trim())) {
                Some(ms) => Seek::Time(ms),
                None => {
                    return error(StatusCode::BAD_REQUEST, format!("time `{t}`: give milliseconds or an RFC 3339 time"))
                }
            }
        }
        (_, Some(o)) => Seek::Offset(o),
        _ => Seek::Offset(0),
    };
    let limit = q.limit.unwrap_or(20).min(500);
    match blocking(move || access.browse(&topic, q.partition, seek, limit, &q.filter)).await {
        Ok(page) => Json(page).into_response(),
        Err(r) => r,
    }
}

async fn group(State(app): State<App>, Path(group): Path<String>) -> Response {
    let history = app.history.of(&group);
    let members = match &app.console.kafka {
        Some(access) => match logpipe_console::group_members(access.connection(), group.clone()).await {
            Ok((state, members)) => json!({
                "state": state,
                "members": members.iter().map(|m| json!({
                    "id": m.id, "host": m.host, "client_id": m.client_id,
                    "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "error": e.to_string() }),
        },
        None => json!({ "error": "no Kafka cluster configured" }),
    };
    Json(json!({ "group_id": group, "lag_history": history, "describe": members })).into_response()
}

#[derive(Deserialize)]
struct ResetRequest {
    topics: Vec<String>,
    /// `earliest`, `latest`, `offset` (with `value`) or `time` (with `value`, ms or RFC 3339).
    to: String,
    value: Option<Value>,
    #[serde(default)]
    execute: bool,
}

async fn reset(State(app): State<App>, Path(group): Path<String>, Json(r): Json<ResetRequest>) -> Response {
    let Some(access) = app.console.kafka.clone() else { return no_kafka() };
    let value_i64 =
        || r.value.as_ref().and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())));
    let target = match r.to.as_str() {
        "earliest" => ResetTarget::Earliest,
        "latest" => ResetTarget::Latest,
        "offset" => match value_i64() {
            Some(o) => ResetTarget::Offset(o),
            None => return error(StatusCode::BAD_REQUEST, "to = offset needs a numeric value"),
        },
        "time" => match value_i64()
            .or_else(|| r.value.as_ref().and_then(Value::as_str).and_then(logpipe_search::query::instant_ms))
        {
            Some(ms) => ResetTarget::Timestamp(ms),
            None => return error(StatusCode::BAD_REQUEST, "to = time needs milliseconds or an RFC 3339 time"),
        },
        other => {
            return error(StatusCode::BAD_REQUEST, format!("to = `{other}`: use earliest, latest, offset or time"))
        }
    };
    if r.topics.is_empty() {
        return error(StatusCode::BAD_REQUEST, "name at least one topic to reset");
    }
    match logpipe_console::reset_group_offsets(access.connection(), group.clone(), r.topics, target, r.execute).await {
        Ok(plan) => Json(json!({
            "group_id": group,
            "executed": r.execute,
            "plan": plan.iter().map(|(t, p, o)| json!({"topic": t, "partition": p, "offset": o})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e @ logpipe_console::Error::GroupActive { .. }) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn dead_letters(State(app): State<App>) -> Response {
    let Some(access) = app.console.kafka.clone() else { return no_kafka() };
    let Some(suffix) = app.console.dead_letter_suffix.clone() else {
        return Json(json!({ "topics": [], "items": [] })).into_response();
    };
    let topics: Vec<String> = app.console.source_topics.iter().map(|t| format!("{t}{suffix}")).collect();
    let listed = topics.clone();
    let items = blocking(move || {
        let mut items = Vec::new();
        for topic in &listed {
            if access.partitions(topic)?.is_empty() {
                continue; // nothing dead-lettered yet: the topic does not exist
            }
            for record in access.dead_letters(topic, 100)? {
                let letter: Value = serde_json::from_str(&record.value).unwrap_or(Value::Null);
                items.push(json!({
                    "dlq_topic": topic, "partition": record.partition, "offset": record.offset,
                    "timestamp_ms": record.timestamp_ms, "reason": letter["reason"], "index": letter["index"],
                    "_id": letter["_id"], "topic": letter["topic"], "event": letter["event"],
                }));
            }
        }
        Ok(items)
    })
    .await;
    match items {
        Ok(items) => Json(json!({ "topics": topics, "items": items })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ResendRequest {
    dlq_topic: String,
    partition: i32,
    offset: i64,
}

async fn resend(State(app): State<App>, Json(r): Json<ResendRequest>) -> Response {
    let Some(access) = app.console.kafka.clone() else { return no_kafka() };
    match access.resend(&r.dlq_topic, r.partition, r.offset).await {
        Ok((topic, partition, offset)) => {
            tracing::info!(dlq = %r.dlq_topic, from = r.offset, %topic, partition, offset, "dead letter re-sent from the web console");
            Json(json!({ "topic": topic, "partition": partition, "offset": offset })).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

async fn indices(State(app): State<App>) -> Response {
    let Some(list) = &app.console.indices else {
        return Json(json!({ "store": "none", "indices": [] })).into_response();
    };
    let now = chrono::Utc::now();
    match list.list().await {
        Ok(rows) => {
            let mut rows: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let retention = app.console.retention;
                    json!({
                        "index": r.index, "docs": r.docs, "bytes": r.bytes,
                        "day_start_ms": r.period.map(|(s, _)| s.timestamp_millis()),
                        "age_s": r.period.map(|(s, _)| (now - s).num_seconds()),
                        "deleted_at_ms": r.period.zip(retention).and_then(|((_, end), keep)|
                            chrono::Duration::from_std(keep).ok().map(|k| (end + k).timestamp_millis())),
                        "expired": retention.is_some_and(|keep| r.expired(now, keep)),
                    })
                })
                .collect();
            rows.sort_by(|a, b| {
                b["day_start_ms"]
                    .as_i64()
                    .cmp(&a["day_start_ms"].as_i64())
                    .then(a["index"].as_str().cmp(&b["index"].as_str()))
            });
            let store = if app.console.elasticsearch.is_some() { "elasticsearch" } else { "file" };
            Json(json!({ "store": store, "retention_s": app.console.retention.map(|d| d.as_secs()), "indices": rows }))
                .into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn run_search(State(app): State<App>, Query(request): Query<search::Request>) -> Response {
    if let Some(es) = &app.console.elasticsearch {
        let mut last = String::from("no hosts");
        for host in &es.hosts {
            match crate::elasticsearch::search(&es.client, host, &es.pattern, &request).await {
                Ok(answer) => return Json(answer).into_response(),
                Err(e) => last = e,
            }
        }
        return error(StatusCode::BAD_GATEWAY, last);
    }
    let Some(dir) = app.console.file_dir.clone() else {
        return error(StatusCode::NOT_FOUND, "this process has no indexer: nothing to search");
    };
    if let Err(e) = logpipe_search::query::parse(&request.q) {
        return error(StatusCode::BAD_REQUEST, format!("query: {e}"));
    }
    match blocking(move || search::scan_files(&dir, &request)).await {
        Ok(answer) => Json(answer).into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logpipe_admin::{AdminServer, Protection};

    #[tokio::test]
    async fn pages_search_and_refusals() {
        let dir = std::env::temp_dir().join(format!("logpipe-web-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("web-2026.12.04.ndjson"),
            "{\"@timestamp\":\"2026-12-04T10:00:00Z\",\"url\":{\"path\":\"/a\"}}\n\
             {\"@timestamp\":\"2026-12-04T10:00:01Z\",\"url\":{\"path\":\"/b\"}}\n",
        )
        .unwrap();
        let console = Console {
            sources: Sources::default(),
            kafka: None,
            indices: None,
            file_dir: Some(dir.clone()),
            elasticsearch: None,
            source_topics: Vec::new(),
            dead_letter_suffix: None,
            retention: None,
        };
        let stop = CancellationToken::new();
        let server = AdminServer::bind("127.0.0.1:0", Protection::default()).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let serving = tokio::spawn(server.serve(router(console, stop.clone()), stop.clone()));
        let http = reqwest::Client::new();

        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
        assert!(page.text().await.unwrap().contains("app.js"));
        for asset in ["app.js", "app.css"] {
            assert_eq!(http.get(format!("{base}/{asset}")).send().await.unwrap().status(), 200, "{asset}");
        }

        let found: Value =
            http.get(format!("{base}/api/search?q=url.path:/a")).send().await.unwrap().json().await.unwrap();
        assert_eq!(found["total"], 1, "{found}");
        let bad = http.get(format!("{base}/api/search?q=(")).send().await.unwrap();
        assert_eq!(bad.status(), 400);
        assert!(bad.text().await.unwrap().contains("query: "));

        let no_kafka = http.get(format!("{base}/api/topics/t/messages")).send().await.unwrap();
        assert_eq!(no_kafka.status(), 404);
        // A cross-site form post (not JSON) never reaches the reset.
        let form = http
            .post(format!("{base}/api/groups/g/reset"))
            .header("content-type", "text/plain")
            .body("{\"topics\":[\"t\"],\"to\":\"earliest\",\"execute\":true}")
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 415);

        stop.cancel();
        serving.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An appliance console for an indexer with this config.
    fn console_for(config: logpipe_indexer::IndexerConfig) -> Console {
        let indexer = logpipe_indexer::Indexer::new(logpipe_config::Valid::new(config).unwrap()).unwrap();
        Console::for_appliance(Sources::default(), None, Some(&indexer)).unwrap()
    }

    #[test]
    fn the_librdkafka_table_wins_over_the_security_tables_default() {
        // What `logpipe import` writes for a Logstash kafka input with SASL_SSL: librdkafka properties only.
        let mut config = logpipe_indexer::IndexerConfig::default();
        config.output.elasticsearch = Some(Default::default()); // not the file output, which makes its directory
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "indexer"),
            ("sasl.password", "pw"),
        ] {
            config.input.librdkafka.insert(key.into(), value.into());
        }
        let kafka = console_for(config).kafka.unwrap();
        // librdkafka keeps the last value set of a key.
        let effective: std::collections::BTreeMap<&str, &str> =
            kafka.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(effective["security.protocol"], "SASL_SSL", "{:?}", effective.keys());
        assert_eq!(effective["sasl.mechanism"], "SCRAM-SHA-512");
    }

    /// Answers `_search` requests with no hits, handing each request's headers to the receiver.
    fn elasticsearch_answering(
        listener: tokio::net::TcpListener,
    ) -> (tokio::task::JoinHandle<()>, tokio::sync::mpsc::UnboundedReceiver<axum::http::HeaderMap>) {
        let (heard, requests) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let _ = heard.send(headers);
            async { axum::Json(serde_json::json!({"hits": {"total": {"value": 0}, "hits": []}})) }
        });
        (tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }), requests)
    }

    #[tokio::test]
    async fn search_uses_the_indexers_elasticsearch_credentials() {
        let elasticsearch = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = logpipe_indexer::IndexerConfig::default();
        let es = config.output.elasticsearch.insert(Default::default());
        es.hosts = vec![format!("http://{}", elasticsearch.local_addr().unwrap())];
        es.api_key = Some("aWQ6c2VjcmV0".into());
        let console = console_for(config);

        let stop = CancellationToken::new();
        let server = AdminServer::bind("127.0.0.1:0", Protection::default()).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let serving = tokio::spawn(server.serve(router(console, stop.clone()), stop.clone()));
        let (answering, mut requests) = elasticsearch_answering(elasticsearch);

        let found = reqwest::get(format!("{base}/api/search?q=x")).await.unwrap();
        assert_eq!(found.status(), 200);
        let headers = requests.recv().await.unwrap();
        assert_eq!(
            headers.get("authorization").map(|v| v.to_str().unwrap()),
            Some("ApiKey aWQ6c2VjcmV0"),
            "{headers:?}"
        );

        stop.cancel();
        serving.await.unwrap();
        answering.abort();
    }
}
