//! The fields a parser adds to an event, written straight to JSON text: each top-level object once, in
//! key order, through [`Event::merge_json_members`]. The event then holds them as text, as it holds the
//! record's own entries, until something reads or writes under them; the bulk encoder copies the text.
//!
//! Why: inserting the two dozen ECS fields of an nginx access line one path at a time into `serde_json`
//! maps (a `String` per key, a `BTreeMap` node per object), then serialising and freeing them, was more
//! than a third of the indexer's instructions per event. Here the values are borrowed from the parsed line until they are
//! written, and the only allocation is the text.

use crate::event::Event;
use crate::json_text::{needs_escape, write_str};
use crate::raw_entries::key_eq;

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf<'a> {
    Str(&'a str),
    U64(u64),
    /// An array of strings.
    Strs(Vec<&'a str>),
    /// A value already written as compact JSON, e.g. a constant `["web"]`.
    Json(&'a str),
}

impl Leaf<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Leaf::Str(s) => write_str(out, s),
            Leaf::U64(n) => sonic_rs::to_writer(out, n).expect("writing a number to a Vec does not fail"),
            Leaf::Strs(list) => {
                out.push(b'[');
                for (i, s) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, s);
                }
                out.push(b']');
            }
            Leaf::Json(json) => out.extend_from_slice(json.as_bytes()),
        }
    }
}

/// Fields by path, e.g. `(&["http", "response", "status_code"], Leaf::U64(200))`, pushed in path order
/// (so that each object is written once, in key order, as `serde_json` writes a map). No path may be a
/// prefix of another, and none may repeat.
#[derive(Debug, Default)]
pub struct NewFields<'a> {
    fields: Vec<(&'static [&'static str], Leaf<'a>)>,
}

impl<'a> NewFields<'a> {
    pub fn with_capacity(n: usize) -> Self {
        Self { fields: Vec::with_capacity(n) }
    }

    pub fn push(&mut self, path: &'static [&'static str], leaf: Leaf<'a>) {
        debug_assert!(path.len() >= 2, "top-level fields are set with Event::insert_path");
        debug_assert!(
            self.fields.last().is_none_or(|(last, _)| *last < path && !path.starts_with(last)),
            "{path:?} pushed out of order, repeated or below another field"
        );
        self.fields.push((path, leaf));
    }

    /// Writes every field into `event`, as [`Event::insert_path`] of each would: every member's value
    /// written into one buffer first, then each top-level object's members merged into the event.
    pub fn insert_into(self, event: &mut Event) {
        let mut text = Vec::with_capacity(1024);
        // Per object, how many members; per member, its key and where its value is in `text`.
        let (mut counts, mut ranges) = (Vec::with_capacity(8), Vec::with_capacity(self.fields.len()));
        for object in self.objects() {
            let before = ranges.len();
            for member in object.members() {
                ranges.push(member.write_value(&mut text));
            }
            counts.push(ranges.len() - before);
        }
        let json = std::str::from_utf8(&text).expect("JSON written from strings is UTF-8");
        let members: Vec<(&str, &str)> = ranges.into_iter().map(|(key, range)| (key, &json[range])).collect();
        let mut rest = &members[..];
        for (object, count) in self.objects().zip(counts) {
            let (these, next) = rest.split_at(count);
            event.merge_json_members(object.key(), these);
            rest = next;
        }
    }

    /// The top-level objects, in key order.
    pub fn objects(&self) -> impl Iterator<Item = Entry<'_, 'a>> {
        self.fields.chunk_by(|a, b| same_part(a.0[0], b.0[0])).map(|fields| Entry { fields, depth: 1 })
    }
}

/// The fields under one key: a top-level object (depth 1) or one of its members (depth 2).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'f, 'a> {
    /// Each with the same first `depth` path parts.
    fields: &'f [(&'static [&'static str], Leaf<'a>)],
    depth: usize,
}

impl<'f, 'a> Entry<'f, 'a> {
    pub fn key(&self) -> &'static str {
        self.fields[0].0[self.depth - 1]
    }

    /// Appends the value; returns the key and where the value is in `out`.
    fn write_value(&self, out: &mut Vec<u8>) -> (&'static str, std::ops::Range<usize>) {
        let start = out.len();
        write_value(out, self.fields, self.depth);
        (self.key(), start..out.len())
    }

    /// The entries one level down, in key order.
    pub fn members(&self) -> impl Iterator<Item = Entry<'f, 'a>> {
        let depth = self.depth;
        self.fields
            .chunk_by(move |a, b| same_part(a.0[depth], b.0[depth]))
            .map(move |fields| Entry { fields, depth: depth + 1 })
    }
}

/// The value of the fields in `group`, which share their first `depth` path parts: the one field's
/// leaf, or an object of the next parts.
fn write_value(out: &mut Vec<u8>, group: &[(&[&str], Leaf)], depth: usize) {
    if let [(path, leaf)] = group {
        if path.len() == depth {
            return leaf.write(out);
        }
    }
    out.push(b'{');
    for (i, inner) in group.chunk_by(|a, b| same_part(a.0[depth], b.0[depth])).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, inner[0].0[depth]);
        out.push(b':');
        write_value(out, inner, depth + 1);
    }
    out.push(b'}');
}

/// Whether two path parts are the same. They are literals, mostly the same one (`"event"`), so the
/// pointers are compared first.
fn same_part(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || key_eq(a.as_bytes(), b.as_bytes())
}

/// A path part as a JSON key: a literal ECS name, which JSON writes as itself (checked in debug builds).
fn write_key(out: &mut Vec<u8>, key: &str) {
    debug_assert!(!needs_escape(key.as_bytes()), "{key:?} needs escaping");
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn leaf_value(leaf: &Leaf) -> Value {
        let mut out = Vec::new();
        leaf.write(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    fn document(e: &Event) -> String {
        let mut out = Vec::new();
        e.write_json(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The same event, document and fields as inserting each path into the parsed map, whatever the
    /// event held before: nothing, the record's text, parsed objects, a scalar in the way, a collision.
    #[test]
    fn same_as_inserting_each_path() {
        let fields = || {
            let mut f = NewFields::with_capacity(8);
            f.push(&["event", "category"], Leaf::Json(r#"["web"]"#));
            f.push(&["event", "kind"], Leaf::Str("event"));
            f.push(&["http", "request", "method"], Leaf::Str("GET"));
            f.push(&["http", "response", "status_code"], Leaf::U64(404));
            f.push(&["http", "version"], Leaf::Str("1.1"));
            f.push(&["related", "ip"], Leaf::Strs(vec!["1.1.1.1", "2.2.2.2"]));
            f.push(&["url", "original"], Leaf::Str("/a?\"q\"=\u{e9}\\ \u{1}"));
            f
        };
        let records: [&[u8]; 6] = [
            br#"{"message":"m"}"#,
            br#"{"event":{"id":"x","original":"o"},"url":{"domain":"d"}}"#,
            br#"{"event":{"kind":"alert","id":"x"}}"#,
            br#"{"http":{"request":{"bytes":5}},"url":"scalar"}"#,
            br#"{"event": {"id":"spaced"}}"#,
            br#"{"related":{"ip":["9.9.9.9"],"user":["u"]},"event":[1]}"#,
        ];
        for record in records {
            let mut fast = Event::from_json_text(record).unwrap_or_else(|| {
                Event::from_map(serde_json::from_slice::<Value>(record).unwrap().as_object().unwrap().clone())
            });
            let parsed = serde_json::from_slice::<Value>(record).unwrap();
            let mut slow = Event::from_map(parsed.as_object().unwrap().clone());
            for (path, leaf) in &fields().fields {
                slow.insert_path(path, leaf_value(leaf));
            }
            fields().insert_into(&mut fast);
            let record = String::from_utf8_lossy(record);
            assert_eq!(fast, slow, "{record}");
            assert_eq!(document(&fast), document(&slow), "{record}");
            // A parsed event takes the slow path and still agrees.
            let mut parsed_first = Event::from_map(parsed.as_object().unwrap().clone());
            fields().insert_into(&mut parsed_first);
            assert_eq!(document(&parsed_first), document(&slow), "{record}");
        }
    }

    #[test]
    fn kept_as_text_when_nothing_is_in_the_way() {
        let mut e = Event::from_json_text(br#"{"event":{"id":"x"},"message":"m"}"#).unwrap();
        let mut f = NewFields::with_capacity(2);
        f.push(&["event", "kind"], Leaf::Str("event"));
        f.push(&["http", "response", "body", "bytes"], Leaf::U64(5316));
        f.insert_into(&mut e);
        assert_eq!(
            document(&e),
            r#"{"event":{"id":"x","kind":"event"},"http":{"response":{"body":{"bytes":5316}}},"message":"m"}"#
        );
        assert_eq!(e.get_path(&["http", "response", "body", "bytes"]), Some(&json!(5316)));
    }
}
