//! The Elasticsearch output: `_bulk` requests over `reqwest`, round robin over `hosts` with failover, and
//! the retry rules of [`crate::retry`] applied until every item of a batch is settled (indexed, already
//! there, or handed back for the dead-letter topic).
//!
//! - A host that fails to connect or times out is skipped for [`DEAD_HOST_RETRY`]; when another host is
//!   alive the request moves there at once.
//! - Whole-request failures (transport errors, 429, 5xx, unreadable answers) are retried forever with
//!   capped exponential backoff and jitter; meanwhile no new batches start, so consumption pauses and the
//!   backlog waits in the broker. State changes are logged once, not per attempt.
//! - Items answered 429/5xx are sent again alone, with the same backoff.
//!
//! References: Elasticsearch "Bulk API" and "Index templates" (`PUT _index_template/<name>`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;

use super::index_template::{self, Install};
use super::{count_by_index, DeadLetters};
use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::bulk::BulkRequest;
use crate::config::ElasticsearchConfig;
use crate::error::{Error, Result};
use crate::retry::{decide, BulkOutcome};
use crate::stats::{IndexCounts, Stats};

/// How long a host that could not be reached is skipped while others are alive.
pub const DEAD_HOST_RETRY: Duration = Duration::from_secs(5);

struct Host {
    url: String,
    dead_until: Mutex<Option<Instant>>,
}

impl Host {
    fn alive(&self, now: Instant) -> bool {
        self.dead_until.lock().unwrap_or_else(PoisonError::into_inner).is_none_or(|t| t <= now)
    }

    fn mark_dead(&self, dead: bool) {
        *self.dead_until.lock().unwrap_or_else(PoisonError::into_inner) =
            dead.then(|| Instant::now() + DEAD_HOST_RETRY);
    }
}

pub struct Elasticsearch {
    client: reqwest::Client,
    hosts: Vec<Host>,
    next: AtomicUsize,
    compression: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// The config, when the index template is managed.
    template: Option<Box<ElasticsearchConfig>>,
    /// Whether the last request failed, so failures and recovery are logged once each.
    failing: AtomicBool,
    /// Some documents were refused for now (per item 429, 5xx, 403, ...) and are being retried: said once
    /// when it starts and once when they are taken.
    items_retrying: AtomicBool,
    /// The largest request body to send: [`MAX_REQUEST_BYTES`], or less once the cluster answered 413.
    request_bytes: AtomicUsize,
    stats: Arc<Stats>,
}

/// Logstash's `TARGET_BULK_BYTES`: a batch's items go in requests of at most this many bytes (an item
/// larger than that alone goes alone). A cluster whose `http.max_content_length` is smaller (10 MiB on
/// some hosted ones) answers 413; the requests are then halved until they fit, and stay that size.
const MAX_REQUEST_BYTES: usize = 20 << 20;

/// Why a request settled nothing.
enum Failure {
    /// The host could not be reached; another may be.
    Transport(String),
    /// The host answered, but the whole request must be sent again.
    Retry(String),
}

impl ElasticsearchConfig {
    /// The HTTP client these settings make: TLS trust (`ca_file`, `ca_trusted_fingerprint`), timeouts, and
    /// the credentials (`api_key`, or `user` and `password`) sent with every request. The output and the web
    /// console's Search page both use it, so the console reaches the cluster exactly as the indexer does.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let bad = |key: &str, why: String| Error::Config(format!("indexer.output.elasticsearch.{key}: {why}"));
        let mut headers = HeaderMap::new();
        let credentials = match (&self.api_key, &self.user) {
            (Some(key), _) => Some(("api_key", format!("ApiKey {key}"))),
            (None, Some(user)) => {
                let pair = format!("{user}:{}", self.password.as_deref().unwrap_or(""));
                Some(("user", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))))
            }
            (None, None) => None,
        };
        if let Some((key, credentials)) = credentials {
            // The error names the key only: its text would hold the secret.
            let mut value = HeaderValue::from_str(&credentials).map_err(|e| bad(key, e.to_string()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(self.request_timeout)
            .connect_timeout(self.request_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(fingerprint) = &self.ca_trusted_fingerprint {
            let fingerprint =
                super::tls::parse_fingerprint(fingerprint).map_err(|e| bad("ca_trusted_fingerprint", e))?;
            let ca =
                self.ca_file.as_deref().map(super::tls::read_ca_file).transpose().map_err(|e| bad("ca_file", e))?;
            let tls =
                super::tls::pinned_client_config(ca, fingerprint).map_err(|e| bad("ca_trusted_fingerprint", e))?;
            builder = builder.use_preconfigured_tls(tls);
        } else if let Some(path) = &self.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| bad("ca_file", format!("cannot read {}: {e}", path.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad("ca_file", e.to_string()))? {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().map_err(|e| bad("hosts", e.to_string()))
    }
}

impl Elasticsearch {
    pub fn new(config: &ElasticsearchConfig, stats: Arc<Stats>) -> Result<Self> {
        let client = config.http_client()?;
        let hosts: Vec<Host> = config
            .hosts
            .iter()
            .map(|h| Host { url: h.trim_end_matches('/').to_string(), dead_until: Mutex::new(None) })
            .collect();
        for host in &hosts {
            stats.host(&host.url, None);
        }
        Ok(Self {
            client,
            hosts,
            next: AtomicUsize::new(0),
            compression: config.compression,
            initial_backoff: config.retry_initial_backoff,
            max_backoff: config.retry_max_backoff,
            template: config.manage_template.then(|| Box::new(config.clone())),
            failing: AtomicBool::new(false),
            items_retrying: AtomicBool::new(false),
            request_bytes: AtomicUsize::new(MAX_REQUEST_BYTES),
            stats,
        })
    }

    /// Installs the index template (if `manage_template`) with ECS mappings for every index the routes can
    /// name (`nginx_access-%{+YYYY.MM.dd}` → `nginx_access-*`), unless the same template is already there
    /// ([`index_template::decide`]). Retries while the cluster is unreachable; a refusal (4xx) is an error.
    /// Returns `Ok(false)` if `stop` fired first.
    /// With `data_stream`, the template (named `<template_name>-data-streams`) makes the patterns data
    /// streams.
    pub async fn install_template(
        &self,
        index_patterns: &[String],
        data_stream: bool,
        stop: &CancellationToken,
    ) -> Result<bool> {
        let Some(config) = &self.template else { return Ok(true) };
        if index_patterns.is_empty() {
            return Ok(true);
        }
        let name = &index_template::name(config, data_stream);
        let ours = index_template::body(index_patterns, config, data_stream);
        let body = serde_json::to_vec(&ours)?;
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff);
        loop {
            let host = self.pick_host();
            match self.install_once(host, name, &ours, &body).await {
                Ok(Ok(install)) => {
                    self.recovered(host);
                    match install {
                        Install::Put => {
                            tracing::info!(template = %name, version = index_template::TEMPLATE_VERSION, patterns = ?index_patterns, "index template installed")
                        }
                        Install::UpToDate => tracing::info!(template = %name, "index template is up to date"),
                        Install::Newer(version) => tracing::warn!(
                            template = %name, version, ours = index_template::TEMPLATE_VERSION,
                            "a newer index template is installed; keeping it"
                        ),
                    }
                    return Ok(true);
                }
                Ok(Err((status, text))) => {
                    return Err(Error::Elasticsearch(template_refused(&host.url, name, status, &text)))
                }
                Err(failure) => {
                    let transport = matches!(failure, Failure::Transport(_));
                    self.failed(host, failure);
                    if (!transport || !self.another_host_alive(host))
                        && !sleep_or_stop(backoff.next_delay(), stop).await
                    {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// One look at the installed template and, if needed, one `PUT`. The outer `Err` is worth retrying; the
    /// inner one is a refusal (4xx other than 429): its status and answer.
    async fn install_once(
        &self,
        host: &Host,
        name: &str,
        ours: &serde_json::Value,
        body: &[u8],
    ) -> std::result::Result<std::result::Result<Install, (u16, String)>, Failure> {
        let url = format!("{}/_index_template/{name}", host.url);
        let response = self.client.get(&url).send().await.map_err(|e| Failure::Transport(transport_reason(&e)))?;
        let status = response.status();
        let existing: Option<serde_json::Value> = match status.as_u16() {
            404 => None,
            s if status.is_success() => {
                let unreadable =
                    |e: String| Failure::Retry(format!("index template: unreadable answer to GET ({s}): {e}"));
                let raw = response.bytes().await.map_err(|e| unreadable(e.to_string()))?;
                Some(serde_json::from_slice(&raw).map_err(|e| unreadable(e.to_string()))?)
            }
            s if status.is_client_error() && s != 429 => {
                return Ok(Err((s, response.text().await.unwrap_or_default())))
            }
            _ => return Err(Failure::Retry(format!("index template: GET HTTP {status}"))),
        };
        let install = index_template::decide(existing.as_ref(), ours);
        if install != Install::Put {
            return Ok(Ok(install));
        }
        let response = self
            .client
            .put(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure::Transport(transport_reason(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(Ok(Install::Put))
        } else if status.is_client_error() && status.as_u16() != 429 {
            Ok(Err((status.as_u16(), response.text().await.unwrap_or_default())))
        } else {
            Err(Failure::Retry(format!("index template: PUT HTTP {status}")))
        }
    }

    /// The open indices matching `patterns` (e.g. `nginx_access-*`): name, documents and bytes. One
    /// attempt per host; for `logpipe indices` and retention, which run again later.
    pub async fn list_indices(&self, patterns: &[String]) -> Result<Vec<(String, u64, u64)>> {
        if patterns.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(serde::Deserialize)]
        struct Row {
            index: String,
            #[serde(rename = "docs.count")]
            docs: Option<String>,
            #[serde(rename = "store.size")]
            bytes: Option<String>,
        }
        let path = format!(
            "/_cat/indices/{}?format=json&h=index,docs.count,store.size&bytes=b&expand_wildcards=open",
            patterns.join(",")
        );
        let raw = self.admin(reqwest::Method::GET, &path).await?;
        let rows: Vec<Row> = serde_json::from_slice(&raw)?;
        let number = |s: Option<String>| s.and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut out: Vec<_> = rows.into_iter().map(|r| (r.index, number(r.docs), number(r.bytes))).collect();
        out.sort();
        Ok(out)
    }

    /// Deletes one index by its exact name (never a wildcard, which Elasticsearch 8+ refuses by default).
    pub async fn delete_index(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.contains(['*', ',', '/']) || name.starts_with(['-', '_']) {
            return Err(Error::Elasticsearch(format!("refusing to delete {name:?}: not a single index name")));
        }
        self.admin(reqwest::Method::DELETE, &format!("/{name}")).await.map(drop)
    }

    /// One administrative request, tried on each host in turn until one answers; a 404 reads as `[]`.
    async fn admin(&self, method: reqwest::Method, path: &str) -> Result<Bytes> {
        let mut last = String::new();
        for _ in 0..self.hosts.len() {
            let host = self.pick_host();
            match self.client.request(method.clone(), format!("{}{path}", host.url)).send().await {
                Ok(r) if r.status().is_success() => {
                    return r.bytes().await.map_err(|e| Error::Elasticsearch(transport_reason(&e)))
                }
                Ok(r) if r.status().as_u16() == 404 => return Ok(Bytes::from_static(b"[]")),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    return Err(Error::Elasticsearch(format!(
                        "{} answered {method} {path} with {status}: {text}",
                        host.url
                    )));
                }
                Err(e) => last = format!("{}: {}", host.url, transport_reason(&e)),
            }
        }
        Err(Error::Elasticsearch(format!("{method} {path}: no host answered ({last})")))
    }

    /// Sends `batch` until every item is settled, in requests of at most `request_bytes`. Returns the
    /// items for the dead-letter topic with their reasons, or `None` if `stop` fired first (nothing of the
    /// batch may then be committed).
    pub async fn deliver(&self, batch: &Arc<Batch>, stop: &CancellationToken) -> Option<DeadLetters> {
        let mut dead = DeadLetters::new();
        // A request of every item sends the batch's body itself, shared rather than copied.
        let whole = Bytes::from_owner(BulkBody(batch.clone()));
        // Batch positions of the items still to send, in bulk order; each request takes the first of them.
        let mut pending: Vec<usize> = (0..batch.items().len()).collect();
        let mut body = BulkRequest::new();
        let mut retried = Vec::new();
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff);
        while !pending.is_empty() {
            let host = self.pick_host();
            let (sent, bytes) = first_request(batch, &pending, self.request_bytes.load(Ordering::Relaxed));
            let request = if sent == batch.items().len() {
                whole.clone()
            } else {
                body.clear();
                for &i in &pending[..sent] {
                    body.push_encoded(batch.bulk.item(i).expect("pending items exist"));
                }
                Bytes::copy_from_slice(body.body())
            };
            match self.send(host, request, sent).await {
                Ok(BulkOutcome::Done) => {
                    pending.drain(..sent);
                }
                Ok(BulkOutcome::Partial { retry, retry_reason, dead_letter, ok: _ }) => {
                    dead.extend(dead_letter.into_iter().map(|(i, reason)| (pending[i], reason)));
                    let retrying: Vec<usize> = retry.into_iter().map(|i| pending[i]).collect();
                    retried.extend_from_slice(&retrying);
                    let first_refusal = !self.items_retrying.swap(true, Ordering::Relaxed);
                    if let Some(reason) = retry_reason.filter(|_| first_refusal) {
                        let items = retrying.len();
                        tracing::warn!(
                            host = %host.url, items, %reason,
                            "elasticsearch refused documents for now; retrying them until it takes them"
                        );
                    }
                    let waits = !retrying.is_empty();
                    pending.splice(..sent, retrying);
                    if waits && !sleep_or_stop(backoff.next_delay(), stop).await {
                        return None;
                    }
                }
                Ok(BulkOutcome::TooLarge { reason }) if sent == 1 => {
                    // No request can be smaller: this document alone is over the cluster's limit.
                    let reason = format!(
                        "{reason}: the document alone ({bytes} bytes) is larger than Elasticsearch takes in one \
                         request (its http.max_content_length)"
                    );
                    dead.push((pending.remove(0), reason));
                }
                Ok(BulkOutcome::TooLarge { reason }) => {
                    let smaller = bytes / 2;
                    if self.request_bytes.fetch_min(smaller, Ordering::Relaxed) > smaller {
                        tracing::warn!(
                            host = %host.url, bytes, limit = smaller, %reason,
                            "elasticsearch refused a bulk request as too large; sending smaller ones"
                        );
                    }
                }
                Ok(BulkOutcome::Retry { reason }) => {
                    self.failed(host, Failure::Retry(reason));
                    if !sleep_or_stop(backoff.next_delay(), stop).await {
                        return None;
                    }
                }
                Err(reason) => {
                    self.failed(host, Failure::Transport(reason));
                    if !self.another_host_alive(host) && !sleep_or_stop(backoff.next_delay(), stop).await {
                        return None;
                    }
                }
            }
            if stop.is_cancelled() && !pending.is_empty() {
                return None;
            }
        }
        if !retried.is_empty() && self.items_retrying.swap(false, Ordering::Relaxed) {
            tracing::info!("elasticsearch took the retried documents");
        }
        self.count(batch, &dead, &retried);
        Some(dead)
    }

    /// One `_bulk` request. `Err` is a transport failure; an answer of any status is decided on.
    async fn send(&self, host: &Host, body: Bytes, items: usize) -> std::result::Result<BulkOutcome, String> {
        let mut request = self.client.post(format!("{}/_bulk", host.url)).header(CONTENT_TYPE, "application/x-ndjson");
        request = if self.compression {
            let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            gz.write_all(&body)
                .and_then(|_| gz.finish())
                .map(|b| request.header(CONTENT_ENCODING, "gzip").body(b))
                .map_err(|e| e.to_string())?
        } else {
            request.body(body)
        };
        let response = request.send().await.map_err(|e| transport_reason(&e))?;
        let status = response.status().as_u16();
        let answer = response.bytes().await.map_err(|e| transport_reason(&e))?;
        let outcome = decide(status, &answer, items);
        self.stats.bulk_request(matches!(outcome, BulkOutcome::Retry { .. }));
        if !matches!(outcome, BulkOutcome::Retry { .. }) {
            self.recovered(host);
        }
        Ok(outcome)
    }

    /// The next host in round robin that is alive, or the next one at all if none is.
    fn pick_host(&self) -> &Host {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let n = self.hosts.len();
        (0..n).map(|k| &self.hosts[(start + k) % n]).find(|h| h.alive(now)).unwrap_or(&self.hosts[start % n])
    }

    fn another_host_alive(&self, host: &Host) -> bool {
        let now = Instant::now();
        self.hosts.iter().any(|h| !std::ptr::eq(h, host) && h.alive(now))
    }

    fn failed(&self, host: &Host, failure: Failure) {
        let reason = match failure {
            Failure::Transport(reason) => {
                host.mark_dead(true);
                reason
            }
            Failure::Retry(reason) => reason,
        };
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(host = %host.url, %reason, "elasticsearch is not accepting bulk requests; retrying with backoff, consumption pauses");
        }
        self.stats.host(&host.url, Some(reason));
    }

    fn recovered(&self, host: &Host) {
        host.mark_dead(false);
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(host = %host.url, "elasticsearch accepts bulk requests again");
        }
        self.stats.host(&host.url, None);
    }

    fn count(&self, batch: &Batch, dead: &DeadLetters, retried: &[usize]) {
        let mut counts = count_by_index(batch, |c| c.indexed += 1);
        for (i, _) in dead {
            let c = counts.entry(batch.item(*i).index).or_insert_with(IndexCounts::default);
            c.indexed -= 1;
            c.dead_lettered += 1;
        }
        for &i in retried {
            counts.entry(batch.item(i).index).or_default().retried += 1;
        }
        self.stats.add(counts);
    }
}

/// A batch's bulk body as [`Bytes`] without a copy.
struct BulkBody(Arc<Batch>);

impl AsRef<[u8]> for BulkBody {
    fn as_ref(&self) -> &[u8] {
        self.0.bulk.body()
    }
}

/// How many of the `pending` items (batch positions) the next request takes, and its bytes: as many as
/// fit in `limit`, and at least one.
fn first_request(batch: &Batch, pending: &[usize], limit: usize) -> (usize, usize) {
    let whole = batch.bulk.body().len();
    if pending.len() == batch.items().len() && whole <= limit {
        return (pending.len(), whole);
    }
    let mut bytes = 0;
    for (taken, &i) in pending.iter().enumerate() {
        let item = batch.bulk.item(i).map_or(0, <[u8]>::len);
        if taken > 0 && bytes + item > limit {
            return (taken, bytes);
        }
        bytes += item;
    }
    (pending.len(), bytes)
}

fn transport_reason(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason
}

/// Waits `delay`; false if `stop` fired first.
pub(crate) async fn sleep_or_stop(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop.cancelled() => false,
    }
}
/// A response body for a one-line message: Elasticsearch's `error.reason` when it is one, else the
/// text with its whitespace collapsed (a proxy's HTML page), at most 200 characters.
fn one_line(text: &str) -> String {
    let reason = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.pointer("/error/reason").and_then(|r| r.as_str()).map(str::to_owned));
    let flat = reason.unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "));
    match flat.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Why Elasticsearch refused the index template, and what to change. 401 and 403 are about who the
/// indexer is, so their message is about credentials and names the keys to set; turning
/// `manage_template` off would only move the same refusal to the first `_bulk` request.
fn template_refused(host: &str, name: &str, status: u16, text: &str) -> String {
    let text = &one_line(text);
    const KEYS: &str = "indexer.output.elasticsearch.user and .password, or .api_key";
    match status {
        401 => format!(
            "{host} rejected the indexer's credentials (401 Unauthorized: {text}); set {KEYS} to an account of \
             that cluster"
        ),
        403 => format!(
            "{host} refused the indexer's account (403 Forbidden: {text}); the account in {KEYS} needs the \
             manage_index_templates cluster privilege and create_doc on the indices"
        ),
        _ => {
            format!("{host} refused index template {name:?} ({status}): {text}; fix it or set manage_template = false")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of header `name` in the one request `client` sends, read by a server on loopback.
    async fn header_sent(client: reqwest::Client, name: &str) -> Option<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (heard, mut requests) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let _ = heard.send(headers);
            async { "{}" }
        });
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        client.get(url).send().await.unwrap();
        let headers = requests.recv().await.unwrap();
        server.abort();
        headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    /// A batch of `sizes.len()` documents whose messages have these lengths.
    fn batch_of(sizes: &[usize]) -> Arc<Batch> {
        let topic: Arc<str> = "t".into();
        let values: Vec<Vec<u8>> =
            sizes.iter().map(|n| format!(r#"{{"message":"{}"}}"#, "x".repeat(*n)).into()).collect();
        let listed: Vec<_> = values.iter().enumerate().map(|(i, v)| (0, i as i64, Some(&v[..]))).collect();
        let processor = crate::batch::tests::processor("default_index = \"logs\"\n");
        Arc::new(processor.build(1, crate::batch::tests::records(&topic, &listed)))
    }

    #[tokio::test]
    async fn requests_over_the_clusters_limit_are_split_and_a_document_over_it_is_dead_lettered() {
        const LIMIT: usize = 64 << 10;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // An Elasticsearch whose http.max_content_length is 64 KiB: it keeps the ids of what it indexed.
        let indexed = Arc::new(Mutex::new(Vec::<String>::new()));
        let (kept, sizes) = (indexed.clone(), Arc::new(Mutex::new(Vec::new())));
        let sizes_seen = sizes.clone();
        let app = axum::Router::new().fallback(move |body: Bytes| {
            sizes_seen.lock().unwrap().push(body.len());
            let answer = if body.len() > LIMIT {
                (axum::http::StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"Request Entity Too Large"}"#.to_string())
            } else {
                let actions: Vec<serde_json::Value> =
                    body.split(|b| *b == b'\n').step_by(2).filter_map(|l| serde_json::from_slice(l).ok()).collect();
                let ids = actions.iter().map(|a| a["create"]["_id"].as_str().unwrap().to_string());
                kept.lock().unwrap().extend(ids);
                (axum::http::StatusCode::OK, r#"{"errors":false,"items":[]}"#.to_string())
            };
            async move { answer }
        });
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let config = ElasticsearchConfig { hosts: vec![url], manage_template: false, ..ElasticsearchConfig::default() };
        let output = Elasticsearch::new(&config, Arc::default()).unwrap();
        // 300 documents of about 1 KiB (about 330 KiB in all), and one of 100 KiB, alone over the limit.
        let mut messages = vec![1000; 300];
        messages[120] = 100 << 10;
        let batch = batch_of(&messages);
        assert!(batch.bulk.body().len() > 4 * LIMIT);
        let dead = output.deliver(&batch, &CancellationToken::new()).await.expect("not stopped");

        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].0, 120);
        assert!(dead[0].1.contains("413") && dead[0].1.contains("http.max_content_length"), "{}", dead[0].1);
        let mut indexed = indexed.lock().unwrap().clone();
        indexed.sort();
        let mut want: Vec<String> = (0..300).filter(|i| *i != 120).map(|i| batch.item(i).id.to_string()).collect();
        want.sort();
        assert_eq!(indexed, want, "every other document indexed once");
        // The requests were halved until one fitted; from then on only the lone document went over.
        let sizes = sizes.lock().unwrap().clone();
        let fitted = sizes.iter().position(|n| *n <= LIMIT).unwrap();
        assert!(sizes[..fitted].windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
        assert_eq!(sizes[fitted..].iter().filter(|n| **n > LIMIT).count(), 1, "{sizes:?}");
        server.abort();
    }

    #[tokio::test]
    async fn the_client_sends_the_configured_credentials_and_hides_them() {
        let api_key = ElasticsearchConfig { api_key: Some("aWQ6c2VjcmV0".into()), ..ElasticsearchConfig::default() };
        let client = api_key.http_client().unwrap();
        assert!(!format!("{client:?}").contains("aWQ6c2VjcmV0"), "{client:?}");
        assert_eq!(header_sent(client, "authorization").await.as_deref(), Some("ApiKey aWQ6c2VjcmV0"));

        let basic = ElasticsearchConfig {
            user: Some("elastic".into()),
            password: Some("changeme".into()),
            ..ElasticsearchConfig::default()
        };
        let client = basic.http_client().unwrap();
        assert!(!format!("{client:?}").contains("ZWxhc3RpYzpjaGFuZ2VtZQ"), "{client:?}");
        // base64("elastic:changeme")
        assert_eq!(header_sent(client, "authorization").await.as_deref(), Some("Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="));

        let anonymous = ElasticsearchConfig::default().http_client().unwrap();
        assert_eq!(header_sent(anonymous, "authorization").await, None);
    }
}
