//! The Elasticsearch `_bulk` body: for each event an NDJSON action line
//! `{"create":{"_index":"…","_id":"…"}}` and the document line, appended to one reused buffer. The
//! `create` action with a stable `_id` is what makes replays harmless: an id already indexed answers 409.
//!
//! Each item's byte range is kept, so the items a response says to retry can be copied into the next
//! request without encoding them again.
//!
//! References: Elasticsearch "Bulk API" (NDJSON body, `create` action, `_id`).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use crate::batch::Record;
use crate::error::Result;
use crate::event::Event;
use crate::json_text::write_str;

/// The document id of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocId<'a> {
    /// The agent's stable `event.id`.
    Event(Cow<'a, str>),
    /// `<topic>-<partition>-<offset>-<timestamp>`, for events without one (e.g. from Filebeat): stable per
    /// record. The timestamp (milliseconds; left out when the record has none) tells apart the records of a
    /// topic deleted and made again, or of a log cut back, whose offsets start over: with the coordinates
    /// alone a new record would meet an old one's `_id`, answer 409 and be counted as indexed.
    Record { topic: &'a str, partition: i32, offset: i64, timestamp: i64 },
}

/// The longest `_id` Elasticsearch and OpenSearch accept, in UTF-8 bytes. A longer one fails the whole `_bulk`
/// request (HTTP 400 `action_request_validation_exception`), which would be retried forever.
const MAX_ID_BYTES: usize = 512;

impl<'a> DocId<'a> {
    /// `event.id` if it is a non-empty string of at most 512 bytes, else the record's coordinates.
    pub fn of(event: &'a Event, record: &Record<'a>) -> Self {
        Self::with_event_id(event.get_str_path(&["event", "id"]), record)
    }

    /// [`DocId::of`] an event whose `event.id`, if it is a string, is `event_id`.
    pub fn with_event_id(event_id: Option<Cow<'a, str>>, record: &Record<'a>) -> Self {
        match event_id {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_BYTES => DocId::Event(id),
            _ => DocId::Record {
                topic: record.topic,
                partition: record.partition,
                offset: record.offset,
                timestamp: record.timestamp,
            },
        }
    }

    /// The id as text; `event.id` without going through `fmt`.
    pub fn into_string(self) -> String {
        match self {
            DocId::Event(id) => id.into_owned(),
            record => record.to_string(),
        }
    }

    /// Puts the id as text in `out`, in place of what it held.
    pub fn write_into(&self, out: &mut String) {
        out.clear();
        match self {
            DocId::Event(id) => out.push_str(id),
            record => {
                use fmt::Write;
                write!(out, "{record}").expect("a String takes any text");
            }
        }
    }
}

impl fmt::Display for DocId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Event(id) => f.write_str(id),
            DocId::Record { topic, partition, offset, timestamp } if *timestamp >= 0 => {
                write!(f, "{topic}-{partition}-{offset}-{timestamp}")
            }
            DocId::Record { topic, partition, offset, .. } => write!(f, "{topic}-{partition}-{offset}"),
        }
    }
}

/// A `_bulk` request body under construction. `clear` keeps the allocation for the next batch.
#[derive(Debug, Default)]
pub struct BulkRequest {
    body: Vec<u8>,
    items: Vec<Range<usize>>,
}

impl BulkRequest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(bytes: usize) -> Self {
        Self::from_buffer(Vec::with_capacity(bytes))
    }

    /// A request writing into `buffer` (emptied first), as [`BodyPool::take`] gives it.
    pub fn from_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        Self { body: buffer, items: Vec::new() }
    }

    /// The body's buffer, to give back to a [`BodyPool`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.body
    }

    /// Appends a `create` of `event` into `index` with `id` (a [`DocId`], formatted once by the caller,
    /// who keeps it). On error (not possible for a JSON map, but kept honest) the body is left as it was.
    pub fn push(&mut self, index: &str, id: &str, event: &Event) -> Result<()> {
        let start = self.body.len();
        let result = self.encode(index, id, event);
        match result {
            Ok(()) => self.items.push(start..self.body.len()),
            Err(_) => self.body.truncate(start),
        }
        result
    }

    fn encode(&mut self, index: &str, id: &str, event: &Event) -> Result<()> {
        self.action(index, id);
        event.write_json(&mut self.body)?;
        self.body.push(b'\n');
        Ok(())
    }

    /// Appends a `create` into `index` with `id` of the document `write` appends (one line of JSON).
    pub fn push_written(&mut self, index: &str, id: &str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.body.len();
        self.action(index, id);
        write(&mut self.body);
        self.body.push(b'\n');
        self.items.push(start..self.body.len());
    }

    fn action(&mut self, index: &str, id: &str) {
        self.body.extend_from_slice(br#"{"create":{"_index":"#);
        write_str(&mut self.body, index);
        self.body.extend_from_slice(br#","_id":"#);
        write_str(&mut self.body, id);
        self.body.extend_from_slice(b"}}\n");
    }

    /// Appends an item (both lines) taken from another request's [`item`](Self::item).
    pub fn push_encoded(&mut self, item: &[u8]) {
        let start = self.body.len();
        self.body.extend_from_slice(item);
        self.items.push(start..self.body.len());
    }

    /// The bytes of item `i` (action and document lines), as numbered in the response's `items`.
    pub fn item(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|r| &self.body[r.clone()])
    }

    /// The request body (`Content-Type: application/x-ndjson`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Body size in bytes, for the batch's byte bound.
    pub fn bytes(&self) -> usize {
        self.body.len()
    }

    pub fn clear(&mut self) {
        self.body.clear();
        self.items.clear();
    }
}

/// The buffers of finished batches' bodies, kept for the next batches, within a bound on the bodies held.
///
/// Why: a full batch's body is reserved at about 8.7 MiB (5,000 nginx events), above jemalloc's
/// `oversize_threshold` (8 MiB), so freeing it handed its pages back to the kernel, and the next body
/// page-faulted every page in again, zeroed: half a fault per event, 12 % of the indexer's CPU in
/// `scripts/bench-indexer.sh`.
///
/// Memory: a kept buffer's pages stay resident, so buffers are kept only while the bodies alive plus
/// those kept are fewer than `limit` (the batches that may be in flight at once): never more bodies are
/// held than could be alive without the pool. Keeping one more regardless raised the appliance's peak
/// RSS in a full-speed catch-up by 5.5 MiB on average (docs/PERFORMANCE.md, "Where the whole indexer's
/// CPU goes"). A kept buffer much larger than the body asked for is freed instead, so a quiet flow's
/// small batches give back a burst's large ones.
#[derive(Debug)]
pub struct BodyPool {
    limit: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    /// Buffers taken and not yet given back.
    alive: usize,
    kept: Vec<Vec<u8>>,
}

impl BodyPool {
    /// A kept buffer more than this many times the capacity asked for (and over 1 MiB) is not reused.
    const OVERSIZED: usize = 4;

    /// A pool for at most `limit` bodies alive or kept at once.
    pub fn new(limit: usize) -> Self {
        Self { limit, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer of at least `capacity` bytes: a kept one that fits, else a new one (freeing a
    /// kept one if the bound needs it).
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let fits = |b: &Vec<u8>| {
            b.capacity() >= capacity && b.capacity() <= capacity.saturating_mul(Self::OVERSIZED).max(1 << 20)
        };
        let (reused, freed) = {
            let mut state = self.state();
            state.alive += 1;
            match state.kept.iter().position(fits) {
                Some(i) => (Some(state.kept.swap_remove(i)), None),
                None if state.alive + state.kept.len() > self.limit => (None, state.kept.pop()),
                None => (None, None),
            }
        };
        drop(freed);
        reused.unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Gives back a buffer [`take`](Self::take) gave: kept if the bound allows, else freed.
    pub fn put(&self, mut buffer: Vec<u8>) {
        let mut state = self.state();
        state.alive = state.alive.saturating_sub(1);
        if state.alive + state.kept.len() < self.limit {
            buffer.clear();
            state.kept.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn event(v: serde_json::Value) -> Event {
        Event::from_map(v.as_object().unwrap().clone())
    }

    #[test]
    fn exact_ndjson_bytes() {
        let mut bulk = BulkRequest::new();
        let a = event(
            json!({"message": "GET \"/\"\n", "event": {"id": "0123456789abcdef0123456789abcdef"}, "@timestamp": "2026-11-21T08:15:30.000Z"}),
        );
        let b = event(json!({"message": "plain"}));
        let topic: Arc<str> = "nginx".into();
        bulk.push("nginx_access-2026.11.21", &DocId::of(&a, &at(&topic, 2, 41, -1)).to_string(), &a).unwrap();
        bulk.push("logs-2026.11.21", &DocId::of(&b, &at(&topic, 2, 42, -1)).to_string(), &b).unwrap();
        let want = concat!(
            r#"{"create":{"_index":"nginx_access-2026.11.21","_id":"0123456789abcdef0123456789abcdef"}}"#,
            "\n",
            r#"{"@timestamp":"2026-11-21T08:15:30.000Z","event":{"id":"0123456789abcdef0123456789abcdef"},"message":"GET \"/\"\n"}"#,
            "\n",
            r#"{"create":{"_index":"logs-2026.11.21","_id":"nginx-2-42"}}"#,
            "\n",
            r#"{"message":"plain"}"#,
            "\n",
        );
        assert_eq!(std::str::from_utf8(bulk.body()).unwrap(), want);
        assert_eq!(bulk.len(), 2);
        assert_eq!(bulk.bytes(), want.len());

        let mut retry = BulkRequest::new();
        retry.push_encoded(bulk.item(1).unwrap());
        assert_eq!(retry.body(), &want.as_bytes()[want.find(r#"{"create":{"_index":"logs"#).unwrap()..]);
        assert!(bulk.item(2).is_none());

        let cap = bulk.body().len();
        bulk.clear();
        assert!(bulk.is_empty() && bulk.body().is_empty() && bulk.body.capacity() >= cap);
    }

    #[test]
    fn body_pool_keeps_buffers_only_within_its_bound() {
        let pool = BodyPool::new(2);
        let kept = |pool: &BodyPool| pool.state().kept.iter().map(|b| b.as_ptr()).collect::<Vec<_>>();
        let first = pool.take(8 << 20);
        let second = pool.take(8 << 20);
        let (a, b) = (first.as_ptr(), second.as_ptr());
        // Both given back before another is taken: both kept (0 alive + 2 kept).
        pool.put(first);
        pool.put(second);
        assert_eq!(kept(&pool), [a, b]);
        let mut again = pool.take(6 << 20);
        assert!(again.is_empty() && [a, b].contains(&again.as_ptr()), "a kept buffer");
        let other = pool.take(6 << 20);
        assert!(kept(&pool).is_empty());
        // Three alive (the third new): one given back leaves two alive, so it is freed, not kept.
        let third = pool.take(6 << 20);
        again.extend_from_slice(b"body");
        pool.put(again);
        assert!(kept(&pool).is_empty());
        pool.put(third);
        assert_eq!(kept(&pool).len(), 1, "one alive + one kept");
        pool.put(other);
        assert_eq!(kept(&pool).len(), 2);
        assert!(pool.state().kept.iter().all(Vec::is_empty));
        // A body that fits none of the kept buffers frees one, so alive + kept stays within the bound.
        let small = pool.take(100 << 10);
        assert!(small.capacity() < 8 << 20, "a far larger buffer is not reused");
        let alive = pool.state().alive;
        assert_eq!((alive, kept(&pool).len()), (1, 1));
        // With no room (limit 0), nothing is kept.
        let pool = BodyPool::new(0);
        let one = pool.take(1 << 20);
        pool.put(one);
        assert!(kept(&pool).is_empty());
    }

    /// A record of `topic` at these coordinates.
    fn at(topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64) -> Record<'_> {
        Record { topic, partition, offset, timestamp, value: None }
    }

    #[test]
    fn doc_id_falls_back_to_record_coordinates() {
        let t: Arc<str> = "t".into();
        let e = event(json!({"event": {"id": ""}}));
        assert_eq!(DocId::of(&e, &at(&t, 0, 7, -1)).to_string(), "t-0-7");
        let e = event(json!({"event": {"id": 5}}));
        assert_eq!(DocId::of(&e, &at(&t, 1, 8, -1)).to_string(), "t-1-8");
        assert_eq!(DocId::of(&e, &at(&t, 1, 8, -1)).into_string(), "t-1-8");
        // A topic made again starts its offsets over: the record's time tells its records apart.
        assert_eq!(DocId::of(&e, &at(&t, 1, 8, 1795250130123)).into_string(), "t-1-8-1795250130123");
        assert_ne!(DocId::of(&e, &at(&t, 1, 8, 1795250130123)), DocId::of(&e, &at(&t, 1, 8, 1795336530456)));
        let e = event(json!({"event": {"id": "abc"}}));
        assert_eq!(DocId::of(&e, &at(&t, 1, 8, 5)).into_string(), "abc");
        let e = event(json!({"event": {"id": "x\"y"}}));
        let mut bulk = BulkRequest::new();
        bulk.push("i", &DocId::of(&e, &at(&t, 0, 0, -1)).to_string(), &e).unwrap();
        assert!(bulk.body().starts_with(br#"{"create":{"_index":"i","_id":"x\"y"}}"#));
    }

    #[test]
    fn doc_id_longer_than_512_bytes_falls_back_to_record_coordinates() {
        let t: Arc<str> = "t".into();
        let longest = "a".repeat(512);
        let e = event(json!({"event": {"id": longest}}));
        assert_eq!(DocId::of(&e, &at(&t, 0, 7, -1)).into_string(), longest);
        let e = event(json!({"event": {"id": "a".repeat(513)}}));
        assert_eq!(DocId::of(&e, &at(&t, 0, 7, -1)).into_string(), "t-0-7");
        // The limit is in UTF-8 bytes: 171 three-byte characters are 171 characters but 513 bytes.
        let wide = "€".repeat(171);
        assert_eq!(wide.len(), 513);
        let e = event(json!({"event": {"id": wide}}));
        assert_eq!(DocId::of(&e, &at(&t, 2, 9, -1)).to_string(), "t-2-9");
        let mut id = String::from("stale");
        DocId::with_event_id(Some(Cow::Owned("b".repeat(600))), &at(&t, 1, 3, 4)).write_into(&mut id);
        assert_eq!(id, "t-1-3-4");
    }
}
