//! The top-level entries of a decoded record kept as the record's own JSON text until something reads or
//! writes them. Most of an agent envelope passes through the indexer untouched (`host`, `agent`, `log`,
//! `input`, the `message` a parser only reads): building a `serde_json` tree for each, dropping it and
//! writing it out again was a large part of the cost per event. An entry is parsed the first time a
//! filter, condition or route reads it (once), moved into the event's map when one writes under it, and
//! otherwise copied into the bulk document byte for byte.
//!
//! Only records that `serde_json` is certain to parse the same way lazily as eagerly take this path (see
//! [`RawEntries::split`]); any other record is parsed whole, as before.

use std::cell::OnceCell;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// Nesting allowed before a record is parsed whole: `serde_json` refuses deeper than 128 levels when it
/// builds a `Value` but not when it skips, so a deeper record must fail where it always failed.
const MAX_BRACKETS: u32 = 127;

/// A record's text and its top-level entries, sorted by key, each unique. Entries a filter writes as JSON
/// text ([`RawEntries::insert`]) are appended to the same text.
#[derive(Debug, Clone, Default)]
pub struct RawEntries {
    text: String,
    entries: Vec<RawEntry>,
}

#[derive(Debug, Clone)]
struct RawEntry {
    /// The key, without its quotes, in `text` (it has no escapes).
    key: Range<usize>,
    /// The value's JSON in `text`.
    value: Range<usize>,
    parsed: OnceCell<Value>,
}

impl RawEntries {
    /// Splits a JSON object into its top-level entries without parsing their values, or `None` when the
    /// record is to be parsed whole: not UTF-8, not an object, a key with escapes, a repeated key, or
    /// anything the lazy path could read differently from `serde_json::from_slice::<Value>`: control
    /// bytes (also newlines between tokens, which must not reach an NDJSON line), `\u` escapes (a lone
    /// surrogate is only refused when parsed) or deep nesting.
    pub fn split(value: &[u8]) -> Option<Self> {
        // Counted without branches, so the loop runs over many bytes at a time.
        let (controls, brackets) = value.iter().fold((0u32, 0u32), |(controls, brackets), &b| {
            (controls + u32::from(b < 0x20), brackets + u32::from(b == b'{' || b == b'['))
        });
        if controls > 0 || brackets > MAX_BRACKETS || memchr::memmem::find(value, b"\\u").is_some() {
            return None;
        }
        let text = std::str::from_utf8(value).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let spans = (&mut de).deserialize_map(SpanVisitor { text }).ok()?;
        de.end().ok()?;
        let mut entries: Vec<RawEntry> =
            spans.into_iter().map(|(key, value)| RawEntry { key, value, parsed: OnceCell::new() }).collect();
        let bytes = text.as_bytes();
        entries.sort_unstable_by(|a, b| bytes[a.key.clone()].cmp(&bytes[b.key.clone()]));
        if entries.windows(2).any(|w| bytes[w[0].key.clone()] == bytes[w[1].key.clone()]) {
            return None;
        }
        Some(Self { text: text.to_string(), entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, entry: &RawEntry) -> &str {
        &self.text[entry.key.clone()]
    }

    /// Where `key` is: a scan of a dozen entries that compares lengths first is cheaper than a binary
    /// search comparing strings, and most lookups are for keys a filter is about to add.
    fn find(&self, key: &str) -> Option<usize> {
        let text = self.text.as_bytes();
        self.entries.iter().position(|e| &text[e.key.clone()] == key.as_bytes())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The JSON text of the entry `key`'s value, as the record (or the filter that inserted it) wrote it.
    pub fn json(&self, key: &str) -> Option<&str> {
        Some(&self.text[self.entries[self.find(key)?].value.clone()])
    }

    /// [`RawEntries::json`] while the entry has not been parsed yet (once it has, reading the parsed
    /// value is cheaper).
    pub fn json_unparsed(&self, key: &str) -> Option<&str> {
        let entry = &self.entries[self.find(key)?];
        entry.parsed.get().is_none().then(|| &self.text[entry.value.clone()])
    }

    /// Puts the entry `key` with `value_json`, replacing any entry `key`. `value_json` must be one valid,
    /// compact JSON value, and `key` a string JSON writes as itself (no quote, backslash or control byte).
    pub fn insert(&mut self, key: &str, value_json: &str) {
        debug_assert!(!key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20), "key {key:?} needs escaping");
        self.remove(key);
        // Filters add a few entries of a few hundred bytes each: grow once for all of them.
        let needed = key.len() + value_json.len() + 3;
        if self.text.capacity() - self.text.len() < needed {
            self.text.reserve(needed.max(2048));
        }
        self.text.push('"');
        let start = self.text.len();
        self.text.push_str(key);
        let key_range = start..self.text.len();
        self.text.push_str("\":");
        let start = self.text.len();
        self.text.push_str(value_json);
        let entry = RawEntry { key: key_range, value: start..self.text.len(), parsed: OnceCell::new() };
        let text = self.text.as_bytes();
        let at = self.entries.partition_point(|e| &text[e.key.clone()] < key.as_bytes());
        self.entries.insert(at, entry);
    }

    /// The entry `key`, parsed on first use.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let entry = &self.entries[self.find(key)?];
        Some(entry.parsed.get_or_init(|| parse(&self.text[entry.value.clone()])))
    }

    /// Removes the entry `key` and returns it parsed.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        let mut entry = self.entries.remove(self.find(key)?);
        Some(entry.parsed.take().unwrap_or_else(|| parse(&self.text[entry.value])))
    }

    /// Removes the entry `key` without parsing it.
    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.find(key) {
            self.entries.remove(i);
        }
    }

    /// Every entry, parsed, in key order; leaves none.
    pub fn drain(&mut self) -> impl Iterator<Item = (String, Value)> + '_ {
        let text = &self.text;
        self.entries.drain(..).map(|mut e| {
            let value = e.parsed.take().unwrap_or_else(|| parse(&text[e.value.clone()]));
            (text[e.key].to_string(), value)
        })
    }

    /// `(key, "key":value)` of every entry in key order: the JSON of each as an object member, the
    /// record's own bytes.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (self.key(e), &self.text[e.key.start - 1..e.value.end]))
    }
}

/// A value the split accepted. `serde_json` skips a number too large for an `f64` (`1e400`) that it
/// refuses to parse: such a value reads as its JSON text rather than failing the event this late.
pub fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_string()))
}

/// Collects `(key, value)` spans of a top-level object, borrowing both from `text`.
struct SpanVisitor<'t> {
    text: &'t str,
}

impl<'t> SpanVisitor<'t> {
    fn span(&self, part: &str) -> Range<usize> {
        let start = part.as_ptr() as usize - self.text.as_ptr() as usize;
        start..start + part.len()
    }
}

impl<'de> Visitor<'de> for SpanVisitor<'de> {
    /// Spans of each key (without quotes) and value, with the `:` and the key's closing quote between
    /// them: `"key":value` is `text[key.start - 1..value.end]` only when nothing else is, which the
    /// visitor checks.
    type Value = Vec<(Range<usize>, Range<usize>)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut spans = Vec::with_capacity(map.size_hint().unwrap_or(12));
        while let Some((key, value)) = map.next_entry::<&'de str, &'de RawValue>()? {
            let (key, value) = (self.span(key), self.span(value.get()));
            if self.text.get(key.end..value.start) != Some("\":") {
                return Err(serde::de::Error::custom("whitespace between key and value"));
            }
            spans.push((key, value));
        }
        Ok(spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_and_parses_on_demand() {
        let raw = br#"{"message":"GET \"/\"","host":{"name":"web-01"},"@timestamp":"t","n":1.50}"#;
        let mut entries = RawEntries::split(raw).unwrap();
        let members: Vec<_> = entries.members().collect();
        assert_eq!(
            members,
            [
                ("@timestamp", r#""@timestamp":"t""#),
                ("host", r#""host":{"name":"web-01"}"#),
                ("message", r#""message":"GET \"/\"""#),
                ("n", r#""n":1.50"#)
            ]
        );
        assert_eq!(entries.get("message"), Some(&json!("GET \"/\"")));
        assert_eq!(entries.get("nope"), None);
        assert_eq!(entries.take("host"), Some(json!({"name": "web-01"})));
        entries.remove("n");
        let rest: Vec<_> = entries.drain().collect();
        assert_eq!(rest, [("@timestamp".to_string(), json!("t")), ("message".to_string(), json!("GET \"/\""))]);
        assert!(entries.is_empty());
    }

    #[test]
    fn records_parsed_whole() {
        for raw in [
            &br#"{"a":"\u00e9"}"#[..],
            b"{\"a\":\n1}",
            b"{\"a\":\"tab\there\"}",
            br#"{"a": 1}"#,
            br#"{"a\"b":1}"#,
            br#"{"a":1,"a":2}"#,
            b"[1]",
            b"\"s\"",
            b"{\"a\":\"\xff\"}",
            br#"{"a":1"#,
            br#"{"a":1} x"#,
        ] {
            assert!(RawEntries::split(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(130), "]".repeat(130));
        assert!(RawEntries::split(deep.as_bytes()).is_none());
        assert!(RawEntries::split(b"{}").unwrap().is_empty());
    }

    #[test]
    fn a_number_serde_json_refuses_reads_as_its_text() {
        let entries = RawEntries::split(br#"{"big":1e400}"#).unwrap();
        assert_eq!(entries.get("big"), Some(&json!("1e400")));
    }
}
