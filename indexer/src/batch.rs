//! Batches. The consumer thread gathers records into a [`RecordBatch`] (their bytes, and per partition
//! the last offset covered), which is cheap; a worker then turns it into a [`Batch`]: the `_bulk` body
//! plus what the rest of the pipeline needs to know about each item (index, `_id`, where its record
//! came from). Records that produce no document (dropped as unmatched) still belong to their batch, so
//! their offsets are committed with it.
//!
//! Splitting the two lets several batches be decoded, filtered and encoded in parallel while offsets are
//! still registered in consumption order. [`Processor`] does the per-record work: decode, filters,
//! route, encode.

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::bulk::{BodyPool, BulkRequest, DocId};
use crate::config::Compiled;
use crate::direct::{Encoded, Memo, SharedObjects};
use crate::event::Event;
use crate::route::Routed;
use crate::tracker::{BatchId, TopicPartition};

/// A record of a [`RecordBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp in milliseconds; negative when it has none.
    pub timestamp: i64,
    pub value: Option<&'a [u8]>,
}

/// Records gathered on the consumer thread, not yet processed, their topics kept once.
///
/// A value comes in one of two ways. The fetch path hands over the `Bytes` it decoded (a slice of its
/// record batch's decompressed buffer), which the batch keeps as it is ([`push_shared`](Self::push_shared)):
/// copying it into a buffer of the batch's own was 2 % of the indexer's CPU in `memcpy` (perf), and the
/// reference is the one the decoder counted, now dropped by the worker instead of the consumer thread.
/// Any other value (a librdkafka message's, a test's) is copied end to end into one buffer
/// ([`push`](Self::push)): gathering it allocates nothing, and the batch is freed at once.
#[derive(Debug, Default)]
pub struct RecordBatch {
    records: Vec<Gathered>,
    topics: Vec<Arc<str>>,
    values: Vec<u8>,
    /// Last offset per partition, by index in `topics` (few partitions per batch: a list beats a map).
    covers: Vec<(usize, i32, i64)>,
    /// Value bytes plus a per-record allowance for the action line, for the byte bound.
    pub bytes: usize,
    /// When the first record arrived, for the batch timeout.
    pub opened: Option<Instant>,
}

/// A record as a [`RecordBatch`] keeps it.
#[derive(Debug)]
struct Gathered {
    /// In the batch's `topics`.
    topic: usize,
    partition: i32,
    offset: i64,
    timestamp: i64,
    value: Option<Stored>,
}

/// Where a gathered record's value is.
#[derive(Debug)]
enum Stored {
    /// In the batch's `values`.
    Copied(Range<usize>),
    /// Kept as the fetch path decoded it.
    Shared(Bytes),
}

impl Stored {
    fn len(&self) -> usize {
        match self {
            Stored::Copied(range) => range.len(),
            Stored::Shared(bytes) => bytes.len(),
        }
    }
}

/// Per-record allowance for the bulk action line and `_id`.
const ACTION_BYTES: usize = 96;

impl RecordBatch {
    /// An empty batch to gather after this one, with room for as many records and a quarter more copied
    /// values than this one holds: a batch is mostly about as large as the last, and growing a buffer
    /// would copy it.
    pub fn next(&self) -> Self {
        let bytes = self.values.len();
        Self {
            records: Vec::with_capacity(self.records.len()),
            values: Vec::with_capacity(bytes + bytes / 4),
            ..Self::default()
        }
    }

    /// Adds a copy of a record (`value` `None` for a tombstone).
    pub fn push(&mut self, topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64, value: Option<&[u8]>) {
        let value = value.map(|v| {
            let start = self.values.len();
            self.values.extend_from_slice(v);
            Stored::Copied(start..self.values.len())
        });
        self.gather(topic, partition, offset, timestamp, value);
    }

    /// Adds a record, keeping its value as it is (`None` for a tombstone).
    pub fn push_shared(&mut self, topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64, value: Option<Bytes>) {
        self.gather(topic, partition, offset, timestamp, value.map(Stored::Shared));
    }

    fn gather(&mut self, topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64, value: Option<Stored>) {
        self.opened.get_or_insert_with(Instant::now);
        self.bytes += ACTION_BYTES + value.as_ref().map_or(0, Stored::len);
        let topic = match self.topics.iter().position(|t| Arc::ptr_eq(t, topic) || **t == **topic) {
            Some(i) => i,
            None => {
                self.topics.push(topic.clone());
                self.topics.len() - 1
            }
        };
        // Records of a partition arrive in order, so the last one seen is the highest.
        match self.covers.iter_mut().find(|(t, p, _)| *p == partition && *t == topic) {
            Some(cover) => cover.2 = offset,
            None => self.covers.push((topic, partition, offset)),
        }
        self.records.push(Gathered { topic, partition, offset, timestamp, value });
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The records, in the order they were pushed.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.records.iter().map(|r| Record {
            topic: &self.topics[r.topic],
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            value: r.value.as_ref().map(|stored| match stored {
                Stored::Copied(range) => &self.values[range.clone()],
                Stored::Shared(bytes) => &bytes[..],
            }),
        })
    }

    /// The last offset covered per partition.
    pub fn covers(&self) -> impl Iterator<Item = (TopicPartition, i64)> + '_ {
        let topics = &self.topics;
        self.covers.iter().map(|(t, p, o)| (TopicPartition { topic: topics[*t].to_string(), partition: *p }, *o))
    }
}

/// One document of a batch: where it goes and where its record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub index: &'a str,
    pub id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A processed batch: the bulk body and its items.
#[derive(Debug)]
pub struct Batch {
    pub id: BatchId,
    pub bulk: BulkRequest,
    /// The items, in bulk order. Their ids are kept end to end in `ids`, and their index names and
    /// topics once per run in `indices` and `topics`: an item allocates nothing and counts no
    /// reference, and the batch, which the output drops on another thread, is freed at once.
    items: Vec<Kept>,
    ids: String,
    indices: Vec<Box<str>>,
    topics: Vec<Arc<str>>,
    /// Records consumed into this batch (documents plus dropped records).
    pub records: usize,
    /// Records dropped as unmatched.
    pub dropped: usize,
    /// Where the body's buffer goes back to once the batch is done.
    bodies: Option<Arc<BodyPool>>,
}

/// An [`Item`] as a [`Batch`] keeps it.
#[derive(Debug)]
struct Kept {
    /// In the batch's `indices` and `topics`.
    index: u32,
    topic: u32,
    /// Where its id ends in the batch's `ids` (the item before it ends where it starts).
    id_end: usize,
    partition: i32,
    offset: i64,
}

impl Batch {
    pub fn new(id: BatchId) -> Self {
        Self {
            id,
            bulk: BulkRequest::new(),
            items: Vec::new(),
            ids: String::new(),
            indices: Vec::new(),
            topics: Vec::new(),
            records: 0,
            dropped: 0,
            bodies: None,
        }
    }

    /// Item `i`.
    pub fn item(&self, i: usize) -> Item<'_> {
        let kept = &self.items[i];
        let id_start = if i == 0 { 0 } else { self.items[i - 1].id_end };
        Item {
            index: &self.indices[kept.index as usize],
            id: &self.ids[id_start..kept.id_end],
            topic: &self.topics[kept.topic as usize],
            partition: kept.partition,
            offset: kept.offset,
        }
    }

    /// Every item, in bulk order.
    pub fn items(&self) -> impl ExactSizeIterator<Item = Item<'_>> {
        (0..self.items.len()).map(|i| self.item(i))
    }

    /// Adds the item of the document just appended to the body.
    fn push_item(&mut self, index: &str, id: &str, record: &Record<'_>) {
        if self.indices.last().is_none_or(|last| **last != *index) {
            self.indices.push(index.into());
        }
        if self.topics.last().is_none_or(|last| !Arc::ptr_eq(last, record.topic)) {
            self.topics.push(record.topic.clone());
        }
        self.ids.push_str(id);
        self.items.push(Kept {
            index: (self.indices.len() - 1) as u32,
            topic: (self.topics.len() - 1) as u32,
            id_end: self.ids.len(),
            partition: record.partition,
            offset: record.offset,
        });
    }

    /// The document (second NDJSON line) of item `i`.
    pub fn document(&self, i: usize) -> &[u8] {
        let item = self.bulk.item(i).unwrap_or_default();
        // The action line's strings are JSON-escaped, so its first newline ends it.
        let start = item.iter().position(|b| *b == b'\n').map_or(0, |n| n + 1);
        let doc = &item[start..];
        doc.strip_suffix(b"\n").unwrap_or(doc)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(bodies) = self.bodies.take() {
            bodies.put(std::mem::take(&mut self.bulk).into_buffer());
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Added as a document.
    Document,
    /// No route took it and the config drops such events.
    Dropped,
}

/// What a batch's records reuse from one to the next; it then goes back to the [`Processor`]'s pool for a
/// later batch.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The index name's buffer (routing allocates only when a name outgrows it).
    index: String,
    direct: Memo,
    shared: SharedObjects,
}

/// Decodes, filters, routes and encodes records into batches. Shared by the workers.
pub struct Processor {
    compiled: Compiled,
    bodies: Option<Arc<BodyPool>>,
    /// No filter can change `event.id`, so the document id is read before the filters run.
    id_before_filters: bool,
    /// Scratches of finished batches, one per batch processed at once at most: what the direct encoder
    /// keeps ([`SharedObjects`]) serves the next batches too.
    scratches: Mutex<Vec<Scratch>>,
}

impl Processor {
    pub fn new(compiled: Compiled) -> Self {
        let id_before_filters = compiled.filters.keeps_event_id();
        Self { compiled, bodies: None, id_before_filters, scratches: Mutex::default() }
    }

    /// Reuses the body buffers of finished batches, keeping them only while the bodies alive plus those
    /// kept are fewer than `in_flight`, the batches that may be in flight at once (see [`BodyPool`]).
    pub fn reusing_bodies(self, in_flight: usize) -> Self {
        Self { bodies: Some(Arc::new(BodyPool::new(in_flight))), ..self }
    }

    /// Processes every record of `records` into batch `id`.
    pub fn build(&self, id: BatchId, records: RecordBatch) -> Batch {
        let mut batch = Batch::new(id);
        // Sized for the body, so it is never copied to grow: an nginx access record becomes a bulk item of
        // about 2.6 times its bytes once the ECS and enrichment fields are in (bench-indexer.sh: 1,490 B
        // from 485 + 96). A new body this large is mapped fresh, and pages it does not reach are never
        // touched, so reserving more than is written costs no memory.
        let capacity = records.bytes * 3;
        batch.bulk = match &self.bodies {
            Some(bodies) => {
                batch.bodies = Some(bodies.clone());
                BulkRequest::from_buffer(bodies.take(capacity))
            }
            None => BulkRequest::with_capacity(capacity),
        };
        batch.items.reserve(records.len());
        // An event's id is 32 characters as the agent writes it.
        batch.ids.reserve(records.len() * 32);
        let now = Utc::now();
        let mut scratch = self.scratches().pop().unwrap_or_default();
        for record in records.records() {
            if self.process(&record, now, &mut scratch, &mut batch) == Processed::Dropped {
                batch.dropped += 1;
            }
        }
        self.scratches().push(scratch);
        batch
    }

    fn scratches(&self) -> std::sync::MutexGuard<'_, Vec<Scratch>> {
        self.scratches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `record` to `batch`. A record without a value (a tombstone) is decoded as an empty message,
    /// like any other bad input: it is indexed, not lost. `now` fills a missing `@timestamp`; `scratch`
    /// is reused from record to record.
    pub fn process(
        &self,
        record: &Record<'_>,
        now: chrono::DateTime<Utc>,
        scratch: &mut Scratch,
        batch: &mut Batch,
    ) -> Processed {
        batch.records += 1;
        // An event without a readable `@timestamp` takes its record's: a record read again (after a crash
        // before the commit, or by `logpipe replay`) then lands in the same daily index under the same `_id`.
        // The time of reading only when the record has none.
        let stamp = (record.timestamp >= 0).then(|| DateTime::from_timestamp_millis(record.timestamp)).flatten();
        let mut event = self.compiled.codec.decode(record.value.unwrap_or_default(), stamp.unwrap_or(now));
        if let Some(direct) = &self.compiled.direct {
            let (memo, shared) = (&mut scratch.direct, &mut scratch.shared);
            match direct.encode(&event, record, &self.compiled.routes, memo, shared, &mut batch.bulk) {
                Some(Encoded::Dropped) => return Processed::Dropped,
                Some(Encoded::Document) => {
                    batch.push_item(scratch.direct.index(), scratch.direct.id(), record);
                    return Processed::Document;
                }
                None => {}
            }
        }
        let index = &mut scratch.index;
        let doc_id = |event: &Event| DocId::of(event, record).into_string();
        let early_id = self.id_before_filters.then(|| doc_id(&event));
        self.compiled.filters.apply(&mut event);
        match self.compiled.routes.route(&event, index) {
            Routed::Dropped => return Processed::Dropped,
            Routed::Route(i) => {
                if let Some(ds) = &self.compiled.routes.routes()[i].data_stream {
                    ds.mark(&mut event);
                }
            }
            Routed::Default => {}
        }
        let id = early_id.unwrap_or_else(|| doc_id(&event));
        batch.bulk.push(index, &id, &event).expect("a JSON map always serializes");
        batch.push_item(index, &id, record);
        Processed::Document
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::IndexerConfig;

    pub(crate) fn processor(toml: &str) -> Processor {
        use figment::providers::{Format, Toml};
        let config: IndexerConfig = figment::Figment::from(Toml::string(toml)).extract().unwrap();
        Processor::new(Compiled::try_from(&config).unwrap())
    }

    pub(crate) fn records(topic: &Arc<str>, values: &[(i32, i64, Option<&[u8]>)]) -> RecordBatch {
        let mut batch = RecordBatch::default();
        for (partition, offset, value) in values {
            batch.push(topic, *partition, *offset, -1, *value);
        }
        batch
    }

    #[test]
    fn an_event_without_a_time_takes_its_records_so_a_reread_lands_in_the_same_index() {
        let processor = processor("default_index = \"logs-%{+YYYY.MM.dd}\"\n");
        let topic: Arc<str> = "t".into();
        let written = DateTime::parse_from_rfc3339("2026-11-21T23:59:59.250Z").unwrap().timestamp_millis();
        for _ in 0..2 {
            let mut records = RecordBatch::default();
            records.push(&topic, 0, 5, written, Some(b"not json"));
            records.push(&topic, 0, 6, written, Some(br#"{"@timestamp":1795250130123}"#));
            let batch = processor.build(1, records);
            for (i, id) in [(0, "t-0-5-1795305599250"), (1, "t-0-6-1795305599250")] {
                assert_eq!(batch.item(i).index, "logs-2026.11.21");
                assert_eq!(batch.item(i).id, id);
                assert!(
                    String::from_utf8_lossy(batch.document(i)).contains(r#""@timestamp":"2026-11-21T23:59:59.250Z""#)
                );
            }
        }
    }

    #[test]
    fn copied_and_shared_values_read_back_alike_in_order() {
        let topic: Arc<str> = "t".into();
        let fetched = Bytes::from_static(b"{\"a\":1}{\"b\":2}");
        let mut batch = RecordBatch::default();
        batch.push(&topic, 0, 10, -1, Some(b"{\"c\":3}"));
        batch.push_shared(&topic, 1, 20, -1, Some(fetched.slice(0..7)));
        batch.push_shared(&topic, 1, 21, -1, None);
        batch.push(&topic, 0, 11, -1, None);
        batch.push_shared(&topic, 1, 22, -1, Some(fetched.slice(7..)));
        let read: Vec<_> = batch.records().map(|r| (r.partition, r.offset, r.value.map(<[u8]>::to_vec))).collect();
        let expected: [(i32, i64, Option<&[u8]>); 5] = [
            (0, 10, Some(b"{\"c\":3}")),
            (1, 20, Some(b"{\"a\":1}")),
            (1, 21, None),
            (0, 11, None),
            (1, 22, Some(b"{\"b\":2}")),
        ];
        assert_eq!(read, expected.map(|(p, o, v)| (p, o, v.map(<[u8]>::to_vec))));
        assert_eq!(batch.bytes, 3 * 7 + 5 * ACTION_BYTES, "copied and shared values count alike");
        assert_eq!(batch.covers().map(|(tp, o)| (tp.partition, o)).collect::<Vec<_>>(), [(0, 11), (1, 22)]);
        let next = batch.next();
        assert!(next.is_empty() && next.records.capacity() >= 5 && next.values.capacity() >= 7);
    }

    #[test]
    fn records_become_items_and_covers() {
        let p = processor(
            r#"
            drop_unmatched = true
            [[routes]]
            when = { tag = "access" }
            index = "a-%{+YYYY.MM.dd}"
            "#,
        );
        let topic: Arc<str> = "nginx".into();
        let access: &[u8] =
            br#"{"@timestamp":"2026-11-20T23:59:59.000Z","tags":["access"],"message":"m","event":{"id":"e1"}}"#;
        let raw = records(
            &topic,
            &[(1, 40, Some(access)), (1, 41, Some(br#"{"tags":["other"]}"#)), (0, 3, Some(br#"{"tags":["access"]}"#))],
        );
        let covers: Vec<(TopicPartition, i64)> = raw.covers().collect();
        assert_eq!(
            covers,
            [
                (TopicPartition { topic: "nginx".into(), partition: 1 }, 41),
                (TopicPartition { topic: "nginx".into(), partition: 0 }, 3)
            ]
        );
        let batch = p.build(7, raw);
        assert_eq!((batch.id, batch.records, batch.dropped), (7, 3, 1));
        assert_eq!(batch.items().len(), 2);
        assert_eq!(batch.item(0).index, "a-2026.11.20");
        assert_eq!(batch.item(0).id, "e1");
        assert_eq!(batch.item(1).id, "nginx-0-3");
        assert_eq!(
            batch.document(0),
            br#"{"@timestamp":"2026-11-20T23:59:59.000Z","event":{"id":"e1"},"message":"m","tags":["access"]}"#
        );
    }

    /// The document id is `event.id` as the filters leave it, whether it is read before them (no filter
    /// can change it) or after.
    #[test]
    fn the_id_is_event_id_after_the_filters() {
        let line = r#"203.0.113.9 - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0""#;
        let record = serde_json::to_vec(&serde_json::json!({"message": line, "event": {"id": "e1"}})).unwrap();
        let topic: Arc<str> = "t".into();
        let cases = [
            ("[[filters]]\ntype = \"nginx_access\"\n", true, "e1"),
            ("[[filters]]\ntype = \"date\"\nmatch = [\"[event][id]\", \"ISO8601\"]\n", true, "e1"),
            ("[[filters]]\ntype = \"mutate\"\nreplace = { \"[event][id]\" = \"e2\" }\n", false, "e2"),
            ("[[filters]]\ntype = \"mutate\"\nremove_field = [\"event\"]\n", false, "t-0-0"),
            ("[[filters]]\ntype = \"nginx_error\"\nsource = \"[event][id]\"\n", false, "e1"),
        ];
        for (filters, before, id) in cases {
            let p = processor(filters);
            assert_eq!(p.id_before_filters, before, "{filters}");
            let batch = p.build(1, records(&topic, &[(0, 0, Some(&record))]));
            assert_eq!(batch.item(0).id, id, "{filters}");
        }
    }

    #[test]
    fn bad_input_is_indexed_not_lost() {
        let p = processor("");
        let topic: Arc<str> = "t".into();
        let batch = p.build(1, records(&topic, &[(0, 0, None), (0, 1, Some(b"not json {"))]));
        assert_eq!(batch.items().len(), 2);
        let doc: serde_json::Value = serde_json::from_slice(batch.document(1)).unwrap();
        assert_eq!(doc["message"], "not json {");
        assert_eq!(doc["tags"][0], "_jsonparsefailure");
    }
}
