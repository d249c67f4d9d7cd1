//! A batch: the `_bulk` body for a run of consumed records, plus what the rest of the pipeline needs to
//! know about each item (index, `_id`, where its record came from) and, per partition, the last offset the
//! batch covers. Records that produce no document (dropped as unmatched, empty values) still belong to
//! the batch, so their offsets are committed with it.
//!
//! [`Processor`] turns one record into one item: decode, filters, route, encode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::bulk::{BulkRequest, DocId};
use crate::config::Compiled;
use crate::route::Routed;
use crate::tracker::{BatchId, TopicPartition};

/// One document of a batch, in bulk order.
#[derive(Debug, Clone)]
pub struct Item {
    pub index: String,
    pub id: String,
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug)]
pub struct Batch {
    pub id: BatchId,
    pub bulk: BulkRequest,
    pub items: Vec<Item>,
    /// Last offset covered per partition, documents or not.
    pub covers: BTreeMap<TopicPartition, i64>,
    /// Records consumed into this batch (documents plus dropped records).
    pub records: usize,
    /// When the first record arrived, for the batch timeout.
    pub opened: Option<Instant>,
}

impl Batch {
    pub fn new(id: BatchId) -> Self {
        Self { id, bulk: BulkRequest::new(), items: Vec::new(), covers: BTreeMap::new(), records: 0, opened: None }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The document (second NDJSON line) of item `i`.
    pub fn document(&self, i: usize) -> &[u8] {
        let item = self.bulk.item(i).unwrap_or_default();
        // The action line's strings are JSON-escaped, so its first newline ends it.
        let start = item.iter().position(|b| *b == b'\n').map_or(0, |n| n + 1);
        let doc = &item[start..];
        doc.strip_suffix(b"\n").unwrap_or(doc)
    }

    fn cover(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.records += 1;
        self.opened.get_or_insert_with(Instant::now);
        // Records of a partition arrive in order, so the last one seen is the highest.
        let key = TopicPartition { topic: topic.to_string(), partition };
        self.covers.insert(key, offset);
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

/// Decodes, filters, routes and encodes records into batches.
pub struct Processor {
    compiled: Compiled,
    index: String,
}

impl Processor {
    pub fn new(compiled: Compiled) -> Self {
        Self { compiled, index: String::new() }
    }

    /// Adds the record at `topic`/`partition`/`offset` to `batch`. A record without a value (a
    /// tombstone) is decoded as an empty message, like any other bad input: it is indexed, not lost.
    pub fn process(&mut self, value: Option<&[u8]>, topic: &Arc<str>, partition: i32, offset: i64, batch: &mut Batch) -> Processed {
        batch.cover(topic, partition, offset);
        let mut event = self.compiled.codec.decode(value.unwrap_or_default(), Utc::now());
        self.compiled.filters.apply(&mut event);
        if self.compiled.routes.route(&event, &mut self.index) == Routed::Dropped {
            return Processed::Dropped;
        }
        let id = DocId::of(&event, topic, partition, offset);
        let id_text = id.to_string();
        batch
            .bulk
            .push(&self.index, id, &event)
            .expect("a JSON map always serializes");
        batch.items.push(Item { index: self.index.clone(), id: id_text, topic: topic.clone(), partition, offset });
        Processed::Document
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IndexerConfig;

    fn processor(toml: &str) -> Processor {
        use figment::providers::{Format, Toml};
        let config: IndexerConfig = figment::Figment::from(Toml::string(toml)).extract().unwrap();
        Processor::new(Compiled::try_from(&config).unwrap())
    }

    #[test]
    fn records_become_items_and_covers() {
        let mut p = processor(
            r#"
            drop_unmatched = true
            [[routes]]
            when = { tag = "access" }
            index = "a-%{+YYYY.MM.dd}"
            "#,
        );
        let topic: Arc<str> = "nginx".into();
        let mut batch = Batch::new(7);
        let access = br#"{"@timestamp":"2026-11-20T23:59:59.000Z","tags":["access"],"message":"m","event":{"id":"e1"}}"#;
        assert_eq!(p.process(Some(access), &topic, 1, 40, &mut batch), Processed::Document);
        assert_eq!(p.process(Some(br#"{"tags":["other"]}"#), &topic, 1, 41, &mut batch), Processed::Dropped);
        assert_eq!(p.process(Some(br#"{"tags":["access"]}"#), &topic, 0, 3, &mut batch), Processed::Document);
        assert_eq!(batch.records, 3);
        assert_eq!(batch.items.len(), 2);
        assert_eq!(batch.items[0].index, "a-2026.11.20");
        assert_eq!(batch.items[0].id, "e1");
        assert_eq!(batch.items[1].id, "nginx-0-3");
        assert_eq!(
            batch.covers,
            BTreeMap::from([
                (TopicPartition { topic: "nginx".into(), partition: 0 }, 3),
                (TopicPartition { topic: "nginx".into(), partition: 1 }, 41)
            ])
        );
        assert_eq!(
            batch.document(0),
            br#"{"@timestamp":"2026-11-20T23:59:59.000Z","event":{"id":"e1"},"message":"m","tags":["access"]}"#
        );
    }

    #[test]
    fn bad_input_is_indexed_not_lost() {
        let mut p = processor("");
        let topic: Arc<str> = "t".into();
        let mut batch = Batch::new(1);
        p.process(None, &topic, 0, 0, &mut batch);
        p.process(Some(b"not json {"), &topic, 0, 1, &mut batch);
        assert_eq!(batch.items.len(), 2);
        let doc: serde_json::Value = serde_json::from_slice(batch.document(1)).unwrap();
        assert_eq!(doc["message"], "not json {");
        assert_eq!(doc["tags"][0], "_jsonparsefailure");
    }
}
