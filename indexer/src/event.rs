//! An event: one JSON object (`serde_json::Map`), addressed by Logstash field references (`[a][b]`) or
//! dotted paths (`a.b`), with the conventions every filter shares: `tags` is a list of strings, and
//! `@timestamp` is an RFC 3339 UTC string with milliseconds, as Elasticsearch and Kibana expect.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::json_text;
use crate::raw_entries::{key_cmp, key_eq, parse as parse_json, RawEntries};

/// `@timestamp`, the event's own time.
pub const TIMESTAMP: &str = "@timestamp";
/// Where the previous `@timestamp` (the agent's read time) goes when a filter sets the event's own time.
pub const CREATED: [&str; 2] = ["event", "created"];

/// A parsed field reference: `[http][response][status_code]`, `http.response.status_code` or `message`.
/// Parse once at load time; lookups then walk the path without allocating.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FieldRef {
    parts: Box<[String]>,
}

impl FieldRef {
    /// Parses `[a][b]` (Logstash syntax, each bracketed part taken literally) or `a.b` (dotted path).
    pub fn parse(reference: &str) -> Result<Self> {
        let bad = |why| Err(Error::FieldRef { reference: reference.to_string(), why });
        if reference.is_empty() {
            return bad("empty");
        }
        let parts: Vec<String> = if reference.starts_with('[') {
            let mut parts = Vec::new();
            let mut rest = reference;
            while !rest.is_empty() {
                let Some(inner) = rest.strip_prefix('[') else { return bad("expected '[' after ']'") };
                let Some(end) = inner.find(']') else { return bad("missing ']'") };
                let part = &inner[..end];
                if part.is_empty() || part.contains('[') {
                    return bad("empty or nested part");
                }
                parts.push(part.to_string());
                rest = &inner[end + 1..];
            }
            parts
        } else {
            if reference.contains(['[', ']']) {
                return bad("mixes [brackets] and a plain name");
            }
            let parts: Vec<String> = reference.split('.').map(str::to_string).collect();
            if parts.iter().any(String::is_empty) {
                return bad("empty part between dots");
            }
            parts
        };
        Ok(Self { parts: parts.into_boxed_slice() })
    }

    /// The path's parts, outermost first.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// Whether writing this field can change `event.id`: it is `event.id`, a field below it, or `event`.
    pub fn covers_event_id(&self) -> bool {
        self.parts.iter().zip(["event", "id"]).all(|(part, id)| part == id)
    }
}

impl fmt::Debug for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts.iter().try_for_each(|p| write!(f, "[{p}]"))
    }
}

/// A top-level object shared by many events: an enrichment cache's finished answer (the whole
/// `user_agent` or `source` object), with its JSON written once. Putting it in an event is a reference
/// count, not a deep copy of a dozen strings and maps, and encoding it is one copy of bytes: together that
/// was most of the enrichment's cost per event (`Event::merge_into` cloning the cached map into each event).
#[derive(Debug, PartialEq)]
pub struct SharedObject {
    key: Box<str>,
    value: Value,
    /// `"key":{...}`, as `serde_json` writes that entry of the enclosing object.
    entry_json: Arc<[u8]>,
}

impl SharedObject {
    pub fn new(key: &str, object: Map<String, Value>) -> Arc<Self> {
        let value = Value::Object(object);
        let mut entry_json = serde_json::to_vec(key).expect("a string serializes");
        entry_json.push(b':');
        serde_json::to_writer(&mut entry_json, &value).expect("a JSON object serializes");
        Arc::new(Self { key: key.into(), value, entry_json: entry_json.into() })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether its key is `key`.
    pub fn is(&self, key: &str) -> bool {
        key_eq(self.key.as_bytes(), key.as_bytes())
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// `"key":{...}`, as `serde_json` writes that entry of the enclosing object.
    pub fn entry_json(&self) -> &[u8] {
        &self.entry_json
    }

    /// [`SharedObject::entry_json`], shared: for a table that writes the entry and nothing else, which
    /// then reads its bytes without reading this object first.
    pub fn shared_entry_json(&self) -> Arc<[u8]> {
        self.entry_json.clone()
    }
}

/// One log event.
///
/// Its fields are one JSON object, held in three places, each top-level key in one of them: `fields`
/// (parsed, and everything written), `shared` ([`SharedObject`]s an enrichment put in by reference) and
/// `raw` (the decoded record's entries still as its JSON text, see [`RawEntries`]). Reads see all three
/// (a raw entry is parsed on its first read); any write under a shared or raw key, or a mutable view of
/// the whole map, first moves that entry into `fields` (copy on write), so filters never see the
/// difference. Only [`Event::write_json`] reads the shared and raw entries' JSON text.
#[derive(Debug, Clone, Default)]
pub struct Event {
    fields: Map<String, Value>,
    /// Sorted by key; usually empty, at most one per enrichment.
    shared: Vec<Arc<SharedObject>>,
    raw: RawEntries,
}

/// Events are equal when their fields are, however they are held.
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_map(fields: Map<String, Value>) -> Self {
        Self { fields, ..Self::default() }
    }

    /// A JSON object record as an event whose entries stay JSON text until used, or `None` when the
    /// record is to be parsed whole (see [`RawEntries::split`]).
    pub fn from_json_text(record: &[u8]) -> Option<Self> {
        RawEntries::split(record).map(|raw| Self { raw, ..Self::default() })
    }

    /// The whole event as one map: borrowed, or a copy with the shared entries in when it has some.
    pub fn as_map(&self) -> Cow<'_, Map<String, Value>> {
        if self.shared.is_empty() && self.raw.is_empty() {
            return Cow::Borrowed(&self.fields);
        }
        Cow::Owned(self.clone().into_map())
    }

    /// The whole event as one map, to change (shared and raw entries copied in first).
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        for shared in std::mem::take(&mut self.shared) {
            self.fields.insert(shared.key.to_string(), shared.value.clone());
        }
        self.fields.extend(self.raw.drain());
        &mut self.fields
    }

    pub fn into_map(mut self) -> Map<String, Value> {
        self.as_map_mut();
        self.fields
    }

    /// The record's entries, when the event holds nothing else: as decoded from a JSON record that
    /// [`RawEntries::split`] took, before any filter wrote to it.
    pub fn raw_only(&self) -> Option<&RawEntries> {
        (self.fields.is_empty() && self.shared.is_empty()).then_some(&self.raw)
    }

    /// Whether the event has a top-level `key` (without parsing it).
    ///
    /// Inlined, so that a literal `key`'s prefix is worked out when compiling (see `RawEntries::find`;
    /// `Codec::decode`'s check for `@timestamp` cost 147 instructions per record otherwise).
    #[inline]
    pub fn contains_key(&self, key: &str) -> bool {
        self.raw.contains(key) || self.fields.contains_key(key) || self.shared.iter().any(|s| s.is(key))
    }

    /// Puts `object` at its top-level key, replacing what was there, by reference.
    pub fn insert_shared(&mut self, object: Arc<SharedObject>) {
        self.fields.remove(object.key());
        self.raw.remove(object.key());
        match self.shared.binary_search_by(|s| key_cmp(s.key().as_bytes(), object.key().as_bytes())) {
            Ok(i) => self.shared[i] = object,
            Err(i) => self.shared.insert(i, object),
        }
    }

    /// The top-level entry `key`, wherever it is held.
    fn top(&self, key: &str) -> Option<&Value> {
        match self.shared.iter().find(|s| s.is(key)) {
            Some(s) => Some(s.value()),
            None => self.raw.get(key).or_else(|| self.fields.get(key)),
        }
    }

    /// Moves the shared or raw entry `key`, if there is one, into `fields`, before a write under it.
    fn unshare(&mut self, key: &str) {
        if let Some(i) = self.shared.iter().position(|s| s.is(key)) {
            let shared = self.shared.remove(i);
            self.fields.insert(shared.key.to_string(), shared.value.clone());
        } else if let Some(value) = self.raw.take(key) {
            self.fields.insert(key.to_string(), value);
        }
    }

    /// The value at `path` (e.g. `&["http", "response", "status_code"]` or `FieldRef::parts`).
    pub fn get_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut value = self.top(first.as_ref())?;
        for part in rest {
            value = value.as_object()?.get(part.as_ref())?;
        }
        Some(value)
    }

    /// The string at `path`, read from the record's JSON text when it is still text (nothing parsed,
    /// and borrowed unless it has escapes), else as [`Event::get_path`] gives it.
    pub fn get_str_path<S: AsRef<str>>(&self, path: &[S]) -> Option<Cow<'_, str>> {
        let (first, rest) = path.split_first()?;
        if let Some(mut text) = self.raw.json_unparsed(first.as_ref()) {
            let mut found = true;
            for part in rest {
                match json_text::member(text, part.as_ref()) {
                    Some(Some(value)) => text = value,
                    Some(None) => return None,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                return json_text::string(text);
            }
        }
        self.get_path(path)?.as_str().map(Cow::Borrowed)
    }

    pub fn get(&self, field: &FieldRef) -> Option<&Value> {
        self.get_path(field.parts())
    }

    /// The value at `field` if it is a string.
    pub fn get_str(&self, field: &FieldRef) -> Option<&str> {
        self.get(field)?.as_str()
    }

    /// The value at `field`, to change in place (no copy of the value, no new key).
    pub fn get_mut(&mut self, field: &FieldRef) -> Option<&mut Value> {
        let (last, parents) = field.parts().split_last()?;
        self.unshare(field.parts().first()?);
        let mut map = &mut self.fields;
        for part in parents {
            map = map.get_mut(part.as_str())?.as_object_mut()?;
        }
        map.get_mut(last.as_str())
    }

    /// The object at `path`, made if missing (a non-object there is replaced), to write into.
    fn object_at<S: AsRef<str>>(&mut self, path: &[S]) -> &mut Map<String, Value> {
        if let Some(first) = path.first() {
            self.unshare(first.as_ref());
        }
        let mut map = &mut self.fields;
        for part in path {
            let slot = map.entry(part.as_ref()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            map = slot.as_object_mut().expect("made an object above");
        }
        map
    }

    /// Sets the value at `path`, creating objects on the way. A non-object in the way is replaced by an
    /// object: a filter writing `[source][ip]` wins over an earlier scalar `source`.
    pub fn insert_path<S: AsRef<str>>(&mut self, path: &[S], value: Value) {
        let Some((last, parents)) = path.split_last() else { return };
        if parents.is_empty() {
            // Replaced whole: the shared or raw entry goes without being copied in first.
            self.shared.retain(|s| s.key() != last.as_ref());
            self.raw.remove(last.as_ref());
        }
        self.object_at(parents).insert(last.as_ref().to_string(), value);
    }

    /// Copies every entry of `fields` into the object at `path` (made if missing; a non-object there is
    /// replaced), keeping what the object already holds under other keys.
    pub fn merge_into<S: AsRef<str>>(&mut self, path: &[S], fields: &Map<String, Value>) {
        let map = self.object_at(path);
        for (k, v) in fields {
            map.insert(k.clone(), v.clone());
        }
    }

    pub fn insert(&mut self, field: &FieldRef, value: Value) {
        self.insert_path(field.parts(), value)
    }

    /// Removes and returns the value at `path`. Emptied parent objects are left in place, as Logstash does.
    pub fn remove_path<S: AsRef<str>>(&mut self, path: &[S]) -> Option<Value> {
        let (last, parents) = path.split_last()?;
        self.unshare(path.first()?.as_ref());
        let mut map = &mut self.fields;
        for part in parents {
            map = map.get_mut(part.as_ref())?.as_object_mut()?;
        }
        map.remove(last.as_ref())
    }

    pub fn remove(&mut self, field: &FieldRef) -> Option<Value> {
        self.remove_path(field.parts())
    }

    /// The event's tags. A single string `tags` (as some shippers send) counts as one tag.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        let (list, single) = match self.top("tags") {
            Some(Value::Array(a)) => (a.as_slice(), None),
            Some(Value::String(s)) => (&[][..], Some(s.as_str())),
            _ => (&[][..], None),
        };
        list.iter().filter_map(Value::as_str).chain(single)
    }

    /// Whether the event has `tag`, read from the record's text while `tags` is still text (conditions and
    /// routes ask this of every event).
    pub fn has_tag(&self, tag: &str) -> bool {
        if let Some(found) = self.raw.json_unparsed("tags").and_then(|text| json_text::holds_str(text, tag)) {
            return found;
        }
        self.tags().any(|t| t == tag)
    }

    /// Adds `tag` unless present. A non-list `tags` becomes a list (keeping a string as its first tag).
    pub fn add_tag(&mut self, tag: &str) {
        if self.has_tag(tag) {
            return;
        }
        self.unshare("tags");
        let slot = self.fields.entry("tags").or_insert_with(|| Value::Array(Vec::new()));
        match slot {
            Value::Array(a) => a.push(Value::String(tag.to_string())),
            Value::String(s) => *slot = Value::Array(vec![Value::String(std::mem::take(s)), Value::String(tag.into())]),
            other => *other = Value::Array(vec![Value::String(tag.to_string())]),
        }
    }

    pub fn remove_tag(&mut self, tag: &str) {
        self.unshare("tags");
        match self.fields.get_mut("tags") {
            Some(Value::Array(a)) => a.retain(|t| t.as_str() != Some(tag)),
            Some(Value::String(s)) if s == tag => {
                self.fields.remove("tags");
            }
            _ => {}
        }
    }

    /// `@timestamp` parsed, if present and RFC 3339 (read from the record's text while it is still text).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        parse_timestamp(&self.get_str_path(&[TIMESTAMP])?)
    }

    /// Sets `@timestamp` to the event's own time. The previous value (the agent's read time) moves to
    /// `event.created` unless that is already set, so a second date filter keeps the original read time.
    /// When both are still the record's JSON text, they stay text: nothing is parsed.
    pub fn set_timestamp(&mut self, time: DateTime<Utc>) {
        if let Some(old) = self.replace_timestamp(time) {
            if !self.try_merge_json(CREATED[0], &[(CREATED[1], &old)]) {
                self.insert_path(&CREATED, parse_json(&old));
            }
        }
    }

    /// [`Event::set_timestamp`], except that when the previous `@timestamp` is still the record's JSON
    /// text and is to move to `event.created`, that text is returned for the caller to write there, with
    /// the other `event` fields it adds (the nginx parser: one merge into `event` instead of two).
    pub fn replace_timestamp(&mut self, time: DateTime<Utc>) -> Option<String> {
        let new = format_timestamp(time);
        if let Some(old) = self.raw.json(TIMESTAMP).map(str::to_string) {
            self.raw.insert_with(TIMESTAMP, new.len() + 2, |text| {
                text.push('"');
                text.push_str(&new);
                text.push('"');
            });
            return (!self.has_created()).then_some(old);
        }
        self.unshare(TIMESTAMP);
        if let Some(old) = self.fields.insert(TIMESTAMP.to_string(), Value::String(new)) {
            if !self.has_created() {
                self.insert_path(&CREATED, old);
            }
        }
        None
    }

    /// Whether `event.created` is set, read from the record's text while `event` is still text.
    fn has_created(&self) -> bool {
        if let Some(found) = self.raw.json_unparsed(CREATED[0]).and_then(|text| json_text::member(text, CREATED[1])) {
            return found.is_some();
        }
        self.get_path(&CREATED).is_some()
    }

    /// Adds `members` to the top-level object `key`, as [`Event::insert_path`] of each of their leaves
    /// would (an object member merges into the object there, anything else replaces what was there).
    /// `members` are `(member key, value as compact JSON)`, sorted by key, each key unique and written by
    /// JSON as itself (as ECS names are).
    ///
    /// When `key` is missing, or is still the record's JSON text and shares no member key, the object is
    /// kept as JSON text: nothing is parsed or built, and the bulk encoder copies it. That is how the
    /// nginx parser adds its two dozen ECS fields (building them as `serde_json` maps, then writing and
    /// freeing them, was most of its cost).
    pub(crate) fn merge_json_members(&mut self, key: &str, members: &[(&str, &str)]) {
        if self.try_merge_json(key, members) {
            return;
        }
        for (member, json) in members {
            self.insert_leaves(&mut vec![key.to_string(), member.to_string()], parse_json(json));
        }
    }

    /// [`Event::merge_json_members`] as JSON text, or `false` (the event unchanged) when that is not
    /// possible: `key` parsed or written already, not an object, or sharing a member key.
    fn try_merge_json(&mut self, key: &str, members: &[(&str, &str)]) -> bool {
        // The callers' keys are literals (ECS names), checked here in debug builds only: scanning every
        // key of every event was 1 % of the indexer core's instructions.
        debug_assert!(members.windows(2).all(|w| w[0].0 < w[1].0), "members sorted and unique");
        debug_assert!(
            [key].into_iter().chain(members.iter().map(|(k, _)| *k)).all(|k| !json_text::needs_escape(k.as_bytes())),
            "keys JSON writes as themselves"
        );
        fn push(object: &mut String, member: &str) {
            object.push(if object.ends_with(':') { '{' } else { ',' });
            object.push_str(member);
        }
        fn push_new(object: &mut String, (k, v): &(&str, &str)) {
            push(object, "\"");
            object.push_str(k);
            object.push_str("\":");
            object.push_str(v);
        }
        let new_len = members.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2;
        let Some(existing) = self.raw.json(key) else {
            if self.fields.contains_key(key) || self.shared.iter().any(|s| s.is(key)) {
                return false;
            }
            // Written straight into the entries' text (`push` opens the object after the key's `:`).
            self.raw.insert_with(key, new_len, |text| {
                members.iter().for_each(|m| push_new(text, m));
                if text.ends_with(':') {
                    text.push('{');
                }
                text.push('}');
            });
            return true;
        };
        let Some(old) = json_text::sorted_members(existing) else { return false };
        // `:` stands for the key before the object, so that `push` opens it as in the text.
        let mut object = String::with_capacity(existing.len() + new_len + 1);
        object.push(':');
        let mut new = members.iter().peekable();
        for (old_key, old_member, _) in old {
            while let Some(m) = new.next_if(|(k, _)| key_cmp(k.as_bytes(), old_key.as_bytes()).is_lt()) {
                push_new(&mut object, m);
            }
            if new.peek().is_some_and(|(k, _)| key_eq(k.as_bytes(), old_key.as_bytes())) {
                return false;
            }
            push(&mut object, old_member);
        }
        new.for_each(|m| push_new(&mut object, m));
        if object.ends_with(':') {
            object.push('{');
        }
        object.push('}');
        self.raw.insert(key, &object[1..]);
        true
    }

    /// Inserts `value` at `path`, or, for a non-empty object, each of its entries below `path`.
    fn insert_leaves(&mut self, path: &mut Vec<String>, value: Value) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(k);
                    self.insert_leaves(path, v);
                    path.pop();
                }
            }
            other => self.insert_path(path, other),
        }
    }

    /// Appends the event as JSON: what `serde_json::to_writer` writes for the map [`Event::into_map`]
    /// would give (keys in order), except that each shared entry's JSON is copied in, and so is each raw
    /// entry's, as the record had it (the same bytes unless the record spelled a value differently from
    /// `serde_json`, e.g. `1.50` or a space inside an object).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        if self.shared.is_empty() && self.raw.is_empty() {
            return write_value(out, &self.fields);
        }
        // The entries held as JSON text, in key order (a key is in one place only).
        let mut shared = self.shared.iter().map(|s| (s.key(), &*s.entry_json)).peekable();
        let mut raw = self.raw.members().map(|(k, json)| (k, json.as_bytes())).peekable();
        let mut text = std::iter::from_fn(|| match (shared.peek(), raw.peek()) {
            (Some(s), Some(r)) if key_cmp(s.0.as_bytes(), r.0.as_bytes()).is_lt() => shared.next(),
            (Some(_), None) => shared.next(),
            _ => raw.next(),
        })
        .peekable();
        let mut separator = b'{';
        for (key, value) in &self.fields {
            while let Some((_, json)) = text.next_if(|(k, _)| key_cmp(k.as_bytes(), key.as_bytes()).is_lt()) {
                out.push(std::mem::replace(&mut separator, b','));
                out.extend_from_slice(json);
            }
            out.push(std::mem::replace(&mut separator, b','));
            write_value(out, key)?;
            out.push(b':');
            write_value(out, value)?;
        }
        for (_, json) in text {
            out.push(std::mem::replace(&mut separator, b','));
            out.extend_from_slice(json);
        }
        if separator == b'{' {
            out.push(b'{');
        }
        out.push(b'}');
        Ok(())
    }
}

/// Compact JSON of `value`, as `serde_json::to_writer` writes it; strings are escaped by `sonic_rs`, whose
/// SIMD scan copies runs of plain bytes where `serde_json` looks each byte up in a table (that was most
/// of the bulk encoding's instructions).
fn write_value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    sonic_rs::to_writer(out, value).map_err(serde::ser::Error::custom)
}

/// An RFC 3339 time, as `DateTime::parse_from_rfc3339` reads it. The shape [`format_timestamp`] writes
/// (and the agent sends), `2026-11-21T08:15:30.123Z`, is read by hand: routing reads every event's time
/// for its daily index, and chrono's general parser was most of that.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let shaped = b.len() == 24
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')]
            .iter()
            .all(|&(i, c)| b[i] == c);
    let digits = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let fast = || {
        let date = chrono::NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
        // A leap second (`:60`) is left to chrono.
        let second = digits(17..19).filter(|s| *s < 60)?;
        Some(date.and_hms_milli_opt(digits(11..13)?, digits(14..16)?, second, digits(20..23)?)?.and_utc())
    };
    match shaped.then(fast).flatten() {
        Some(time) => Some(time),
        None => DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc)),
    }
}

/// `2026-11-21T08:15:30.123Z`: UTC with milliseconds, the shape Elasticsearch's default date mapping and
/// the agent both use. Written by hand for years 0 to 9999 (what `to_rfc3339_opts` gives for them, at a
/// tenth of its cost: it was a third of setting the time); chrono writes any other.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // A leap second (nanoseconds past 10^9) too.
    if !(0..=9999).contains(&time.year()) || time.nanosecond() >= 1_000_000_000 {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    // Read from the naive time: each accessor of a `DateTime` converts it to local time first.
    let millis = time.timestamp_subsec_millis();
    let time = time.naive_utc();
    let parts = [
        (time.year() as u32, 4, b'-'),
        (time.month(), 2, b'-'),
        (time.day(), 2, b'T'),
        (time.hour(), 2, b':'),
        (time.minute(), 2, b':'),
        (time.second(), 2, b'.'),
        (millis, 3, b'Z'),
    ];
    let mut out = Vec::with_capacity(24);
    for (mut n, width, then) in parts {
        let start = out.len();
        for _ in 0..width {
            out.push(b'0' + (n % 10) as u8);
            n /= 10;
        }
        out[start..].reverse();
        out.push(then);
    }
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        Event::from_map(v.as_object().unwrap().clone())
    }

    #[test]
    fn field_refs_parse_both_syntaxes() {
        assert_eq!(FieldRef::parse("[a][b]").unwrap().parts(), ["a", "b"]);
        assert_eq!(FieldRef::parse("a.b").unwrap().parts(), ["a", "b"]);
        assert_eq!(FieldRef::parse("@timestamp").unwrap().parts(), ["@timestamp"]);
        assert_eq!(FieldRef::parse("[log.level]").unwrap().parts(), ["log.level"]);
        for bad in ["", "[a", "[a]b", "a..b", "[]", "a[b]", "[a][[b]]", ".a"] {
            assert!(FieldRef::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FieldRef::parse("a.b").unwrap().to_string(), "[a][b]");
        for (field, covers) in [("event.id", true), ("event", true), ("[event][id][x]", true), ("event.kind", false)] {
            assert_eq!(FieldRef::parse(field).unwrap().covers_event_id(), covers, "{field}");
        }
        assert!(!FieldRef::parse("id").unwrap().covers_event_id());
    }

    #[test]
    fn get_insert_remove() {
        let mut e = event(json!({"source": "x", "http": {"version": "1.1"}}));
        let f = FieldRef::parse("[http][response][status_code]").unwrap();
        e.insert(&f, json!(200));
        assert_eq!(e.get(&f), Some(&json!(200)));
        assert_eq!(e.get_path(&["http", "version"]), Some(&json!("1.1")));
        e.insert_path(&["source", "ip"], json!("1.2.3.4"));
        assert_eq!(e.get_str(&FieldRef::parse("source.ip").unwrap()), Some("1.2.3.4"));
        assert_eq!(e.remove(&f), Some(json!(200)));
        assert_eq!(e.get(&f), None);
        assert_eq!(e.get_path(&["http", "version", "x"]), None);
        assert_eq!(e.remove_path(&["nope", "x"]), None);
    }

    #[test]
    fn tags() {
        let mut e = Event::new();
        assert!(!e.has_tag("a"));
        e.add_tag("a");
        e.add_tag("a");
        e.add_tag("b");
        assert_eq!(e.tags().collect::<Vec<_>>(), ["a", "b"]);
        e.remove_tag("a");
        assert_eq!(e.tags().collect::<Vec<_>>(), ["b"]);
        let mut e = event(json!({"tags": "access"}));
        assert!(e.has_tag("access"));
        e.add_tag("x");
        assert_eq!(e.as_map()["tags"], json!(["access", "x"]));
        let mut e = event(json!({"tags": 5}));
        e.add_tag("x");
        assert_eq!(e.as_map()["tags"], json!(["x"]));
    }

    #[test]
    fn raw_and_shared_entries_interleave_in_key_order() {
        let record = br#"{"zone":"z","agent":{"type":"logpipe"},"source":{"ip":"1.1.1.1"},"message":"m"}"#;
        let mut e = Event::from_json_text(record).expect("kept as text");
        let mut ua = Map::new();
        ua.insert("name".into(), json!("Firefox"));
        e.insert_shared(SharedObject::new("user_agent", ua));
        let mut geo = Map::new();
        geo.insert("ip".into(), json!("8.8.8.8"));
        // Replaces the raw `source` entry without parsing it.
        e.insert_shared(SharedObject::new("source", geo));
        e.insert_path(&["event", "kind"], json!("event"));
        let mut out = Vec::new();
        e.write_json(&mut out).unwrap();
        let want = r#"{"agent":{"type":"logpipe"},"event":{"kind":"event"},"message":"m","source":{"ip":"8.8.8.8"},"user_agent":{"name":"Firefox"},"zone":"z"}"#;
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(serde_json::to_string(&e.as_map()).unwrap(), want);
        // A mutable view of the whole map holds every entry, parsed.
        let map = e.as_map_mut();
        assert_eq!(map.len(), 6);
        map.remove("zone");
        assert_eq!(e.get_path(&["agent", "type"]), Some(&json!("logpipe")));
        assert!(!e.contains_key("zone"));
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let start = DateTime::parse_from_rfc3339("2026-11-21T08:15:30.123456Z").unwrap().with_timezone(&Utc);
        let mut times: Vec<DateTime<Utc>> =
            (0..2000).map(|i| start + chrono::Duration::milliseconds(i * 987_654_321 + i * 7)).collect();
        for text in
            ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "1970-01-01T00:00:00.001Z", "-0001-06-01T00:00:00Z"]
        {
            times.push(DateTime::parse_from_rfc3339(text).unwrap_or_else(|_| start.into()).with_timezone(&Utc));
        }
        times.push(chrono::NaiveDate::from_ymd_opt(-1, 6, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc());
        times.push(chrono::NaiveDate::from_ymd_opt(10000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc());
        times.push(
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_milli_opt(23, 59, 59, 1500)
                .unwrap()
                .and_utc(),
        );
        for t in times {
            assert_eq!(format_timestamp(t), t.to_rfc3339_opts(SecondsFormat::Millis, true), "{t:?}");
        }
    }

    /// The hand-read shape gives what chrono gives, and anything else is chrono's.
    #[test]
    fn timestamps_are_read_as_chrono_reads_them() {
        let start = DateTime::parse_from_rfc3339("2026-11-21T08:15:30.123Z").unwrap().with_timezone(&Utc);
        let mut texts: Vec<String> = (0..2000)
            .map(|i| format_timestamp(start + chrono::Duration::milliseconds(i * 987_654_321 + i * 7)))
            .collect();
        texts.extend(
            [
                "2016-12-31T23:59:60.500Z",
                "2026-02-30T00:00:00.000Z",
                "2026-11-21T24:00:00.000Z",
                "2026-11-21T08:60:00.000Z",
                "2026-11-21t08:15:30.123z",
                "2026-11-21T08:15:30.123+01:00",
                "2026-11-21T08:15:30Z",
                "2026-11-21T08:15:30.12Z",
                "2026-1a-21T08:15:30.123Z",
                "+026-11-21T08:15:30.123Z",
                "",
            ]
            .map(String::from),
        );
        for text in texts {
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&Utc));
            assert_eq!(parse_timestamp(&text), chrono, "{text}");
        }
    }

    #[test]
    fn set_timestamp_moves_read_time_once() {
        let mut e = event(json!({"@timestamp": "2026-11-21T08:15:30.123Z"}));
        let t1 = DateTime::parse_from_rfc3339("2026-11-20T23:59:59Z").unwrap().with_timezone(&Utc);
        e.set_timestamp(t1);
        assert_eq!(e.as_map()["@timestamp"], json!("2026-11-20T23:59:59.000Z"));
        assert_eq!(e.get_path(&CREATED), Some(&json!("2026-11-21T08:15:30.123Z")));
        e.set_timestamp(t1 + chrono::Duration::seconds(1));
        assert_eq!(e.get_path(&CREATED), Some(&json!("2026-11-21T08:15:30.123Z")));
        assert_eq!(e.timestamp(), Some(t1 + chrono::Duration::seconds(1)));
    }
}
