//! The top-level entries of a decoded record kept as the record's own JSON text until something reads or
//! writes them. Most of an agent envelope passes through the indexer untouched (`host`, `agent`, `log`,
//! `input`, the `message` a parser only reads): building a `serde_json` tree for each, dropping it and
//! writing it out again was a large part of the cost per event. An entry is parsed the first time a
//! filter, condition or route reads it (once), moved into the event's map when one writes under it, and
//! otherwise copied into the bulk document byte for byte.
//!
//! Only records that `serde_json` is certain to parse the same way lazily as eagerly take this path (see
//! [`RawEntries::split`]); any other record is parsed whole, as before.
//!
//! The split finds the entries with a scanner of its own rather than `serde_json`'s deserializer (which
//! took 6,600 of the 11,500 instructions a split cost per agent envelope): one vector pass
//! ([`Marks::survey`]) refuses control bytes and deep nesting and marks every `"` and `\`, `simdutf8`
//! checks the text, then one walk over the object skips each string to its next mark (records longer
//! than the marks cover: eight bytes at a time) and checks every value as `serde_json` checks one it
//! skips: escapes, numbers (`-`, no leading zero, digits after `.` and `e`, but any size),
//! `true`/`false`/`null`, and the commas, colons and brackets of nested values. It accepts the same
//! records as the `serde_json` split did and finds the same spans: the tests keep that split as their
//! reference and compare both, and `serde_json::from_slice::<Value>`, on generated records, valid and
//! broken, each split twice (the second time, [`crate::split_memo`] knows it). What the split remembers of
//! the last records on its thread spares it checking again a short object it has just checked in the same
//! place, and comparing keys it has just sorted in the same order.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::ops::Range;

use serde_json::Value;

use crate::json_marks::Marks;
use crate::split_memo::{with_split_memo, CheckedValues, KeyOrder, PLACES};

/// Nesting allowed before a record is parsed whole: `serde_json` refuses deeper than 128 levels when it
/// builds a `Value` but not when it skips, so a deeper record must fail where it always failed.
const MAX_BRACKETS: u32 = 127;

/// Room in the text for the entries filters add (the nginx parser's come to about 700 bytes).
const SPARE: usize = 2048;

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
    /// The key's [`KeyPrefix`], which tells most keys apart without reading `text`.
    prefix: KeyPrefix,
    /// The value's JSON in `text`.
    value: Range<usize>,
    parsed: OnceCell<Value>,
}

impl RawEntry {
    /// This entry's key against `key` (whose prefix is `prefix`) in the entries' order: by prefix, then
    /// by bytes, which is byte order. The split sorts by it and `insert_with` searches by it, so both
    /// use this one. `key` is only called when the prefixes are equal. Always inlined: left to the
    /// compiler, it cost 70 more instructions per agent envelope (callgrind).
    #[inline(always)]
    fn order<'k>(&self, text: &[u8], prefix: KeyPrefix, key: impl FnOnce() -> &'k [u8]) -> Ordering {
        self.prefix.cmp(&prefix).then_with(|| key_cmp(&text[self.key.clone()], key()))
    }
}

impl RawEntries {
    /// Splits a JSON object into its top-level entries without parsing their values, or `None` when the
    /// record is to be parsed whole: not UTF-8, not an object, a key with escapes, a repeated key, or
    /// anything the lazy path could read differently from `serde_json::from_slice::<Value>`: control
    /// bytes (also newlines between tokens, which must not reach an NDJSON line), the bytes `\u` (a `\u`
    /// escape, whose lone surrogate is only refused when parsed, or an escaped backslash before a `u`),
    /// more than [`MAX_BRACKETS`] `{` and `[` (in strings too), whitespace between a key, its `:` and its
    /// value, or invalid JSON.
    pub fn split(value: &[u8]) -> Option<Self> {
        let marks = Marks::survey(value, MAX_BRACKETS)?;
        let text = simdutf8::basic::from_utf8(value).ok()?;
        let bytes = text.as_bytes();
        let mut entries = Vec::with_capacity(12);
        with_split_memo(|memo| {
            top_level_entries(bytes, &marks, &mut memo.values, &mut entries)?;
            sort_entries(bytes, &mut entries, &mut memo.order).then_some(())
        })?;
        // Room for what filters add (see `insert_with`), so the text is not copied to grow.
        let mut owned = String::with_capacity(text.len() + SPARE);
        owned.push_str(text);
        Some(Self { text: owned, entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, entry: &RawEntry) -> &str {
        &self.text[entry.key.clone()]
    }

    /// Where `key` is: a scan of a dozen entries comparing prefixes is cheaper than a binary search, and
    /// most lookups are for keys a filter is about to add. Always inlined, as is [`RawEntries::json`]:
    /// most callers look up a literal key, whose prefix is then worked out when compiling (a call to
    /// `memcpy` and 160 instructions per lookup otherwise, callgrind).
    #[inline(always)]
    fn find(&self, key: &str) -> Option<usize> {
        let (text, prefix) = (self.text.as_bytes(), KeyPrefix::of(key.as_bytes()));
        self.entries.iter().position(|e| e.prefix == prefix && key_eq(&text[e.key.clone()], key.as_bytes()))
    }

    /// Inlined, as `find` is.
    #[inline(always)]
    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The JSON text of the entry `key`'s value, as the record (or the filter that inserted it) wrote it.
    #[inline(always)]
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
        self.insert_with(key, value_json.len(), |text| text.push_str(value_json));
    }

    /// [`RawEntries::insert`] of the value `write` appends to the text it is given (about `len` bytes).
    pub fn insert_with(&mut self, key: &str, len: usize, write: impl FnOnce(&mut String)) {
        debug_assert!(!crate::json_text::needs_escape(key.as_bytes()), "key {key:?} needs escaping");
        // Where the key is, or would go: the entries are sorted by key.
        let (text, prefix) = (self.text.as_bytes(), KeyPrefix::of(key.as_bytes()));
        let at = self.entries.binary_search_by(|e| e.order(text, prefix, || key.as_bytes()));
        // Filters add a few entries of a few hundred bytes each: grow once for all of them.
        let needed = key.len() + len + 3;
        if self.text.capacity() - self.text.len() < needed {
            self.text.reserve(needed.max(SPARE));
        }
        self.text.push('"');
        let start = self.text.len();
        self.text.push_str(key);
        let key_range = start..self.text.len();
        self.text.push_str("\":");
        let start = self.text.len();
        write(&mut self.text);
        let entry = RawEntry { key: key_range, prefix, value: start..self.text.len(), parsed: OnceCell::new() };
        match at {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
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

    /// Every entry's key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| self.key(e))
    }

    /// `(key, "key":value)` of every entry in key order: the JSON of each as an object member, the
    /// record's own bytes.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (self.key(e), &self.text[e.key.start - 1..e.value.end]))
    }

    /// [`RawEntries::members`] with each key's prefix, for placing other keys among them.
    pub(crate) fn members_with_prefixes(&self) -> impl Iterator<Item = (KeyPrefix, &str, &str)> {
        self.entries.iter().map(|e| (e.prefix, self.key(e), &self.text[e.key.start - 1..e.value.end]))
    }
}

/// Sorts `entries` (in the record's order) by key: into the order `order` kept, when the record's keys
/// are those it knows; else by comparing them, keeping their order for the next record. `false` when two
/// keys are the same.
fn sort_entries(text: &[u8], entries: &mut [RawEntry], order: &mut KeyOrder) -> bool {
    if let Some(sorted) = order.known(entries.iter().map(|e| e.prefix)) {
        gather(entries, sorted);
        return true;
    }
    let mut prefixes = [KeyPrefix::literal(""); PLACES];
    let fits = entries.len() <= PLACES;
    if fits {
        prefixes.iter_mut().zip(entries.iter()).for_each(|(p, e)| *p = e.prefix);
    }
    entries.sort_unstable_by(|a, b| a.order(text, b.prefix, || &text[b.key.clone()]));
    if entries.windows(2).any(|w| key_eq(&text[w[0].key.clone()], &text[w[1].key.clone()])) {
        return false;
    }
    if fits {
        // An entry's place is the number of keys before its own in the record.
        let mut sorted = [0u8; PLACES];
        for (place, e) in sorted.iter_mut().zip(entries.iter()) {
            *place = entries.iter().filter(|other| other.key.start < e.key.start).count() as u8;
        }
        order.remember(&prefixes[..entries.len()], &sorted[..entries.len()]);
    }
    true
}

/// Puts the entry at place `sorted[k]` at place `k`, for every `k`, following each cycle of the
/// permutation with swaps.
fn gather(entries: &mut [RawEntry], sorted: &[u8]) {
    let mut done = 0u32;
    for start in 0..sorted.len() {
        let mut at = start;
        while done & (1 << at) == 0 {
            done |= 1 << at;
            let from = usize::from(sorted[at]);
            if from == start {
                break;
            }
            entries.swap(at, from);
            at = from;
        }
    }
}

/// The order of two keys (or other short strings), byte by byte as `<[u8]>::cmp` orders them, compared
/// inline: the call to `memcmp` that slice comparisons make, for strings of a few bytes, was 9 % of the
/// indexer's CPU (sorting, searching and merging entries by key, several dozen times per event).
pub(crate) fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    a.iter().cmp(b.iter())
}

/// A key's first eight bytes as a big-endian number, zero-padded. Two different prefixes order two keys
/// as their bytes do (a key that ends early is padded with the smallest byte); only keys whose prefixes
/// are equal, mostly the same key, need their bytes compared (350 fewer instructions per agent envelope
/// through `nginx_access` than comparing bytes: a sort of eight keys and a few dozen lookups among a
/// dozen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyPrefix(u64);

impl KeyPrefix {
    /// [`KeyPrefix::of`] a literal key, worked out when compiling.
    pub(crate) const fn literal(key: &str) -> Self {
        let (key, mut prefix, mut i) = (key.as_bytes(), 0u64, 0);
        while i < key.len() && i < 8 {
            prefix |= (key[i] as u64) << (56 - 8 * i);
            i += 1;
        }
        Self(prefix)
    }

    /// The order of the keys `a` and `b`, whose prefixes these are (see [`key_cmp`]).
    pub(crate) fn order(self, a: &str, other: Self, b: &str) -> Ordering {
        self.cmp(&other).then_with(|| key_cmp(a.as_bytes(), b.as_bytes()))
    }

    /// The prefix of the key at `key` in `text`: its first eight bytes read at once when the text goes on
    /// that far (a key is followed by at least `":` and a value), the bytes past the key masked off.
    /// [`KeyPrefix::of`] copies a short key into a zeroed array, a call to `memcpy` for each key of
    /// each record.
    fn in_text(text: &[u8], key: Range<usize>) -> Self {
        match text.get(key.start..).and_then(<[u8]>::first_chunk::<8>) {
            Some(first) => {
                let len = key.len().min(8);
                let mask = if len == 0 { 0 } else { !0u64 << (8 * (8 - len)) };
                Self(u64::from_be_bytes(*first) & mask)
            }
            None => Self::of(&text[key]),
        }
    }

    fn of(key: &[u8]) -> Self {
        let mut first = [0u8; 8];
        let n = key.len().min(8);
        first[..n].copy_from_slice(&key[..n]);
        Self(u64::from_be_bytes(first))
    }
}

/// Whether two keys (or other short strings) are equal, compared inline (see [`key_cmp`]).
pub(crate) fn key_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A value the split accepted. `serde_json` skips a number too large for an `f64` (`1e400`) that it
/// refuses to parse: such a value reads as its JSON text rather than failing the event this late.
pub fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_string()))
}

/// Finds the entries of the object `b` is, pushing them in the record's order; `None` unless `b` is one
/// object with nothing but spaces around it, every key without escapes and followed by `":` and its value
/// with nothing between, and every value valid JSON as `serde_json` validates it when it skips one
/// (numbers of any size). `b` has no control byte (so the only whitespace is the space) and no more
/// than [`MAX_BRACKETS`] brackets.
fn top_level_entries(b: &[u8], marks: &Marks, checked: &mut CheckedValues, entries: &mut Vec<RawEntry>) -> Option<()> {
    let mut pos = spaces(b, 0);
    if *b.get(pos)? != b'{' {
        return None;
    }
    pos = spaces(b, pos + 1);
    if *b.get(pos)? == b'}' {
        pos += 1;
    } else {
        loop {
            if *b.get(pos)? != b'"' {
                return None;
            }
            let key = pos + 1..marks.next(b, pos + 1)?;
            if b[key.end] != b'"' || b.get(key.end + 1) != Some(&b':') {
                return None;
            }
            let start = key.end + 2;
            let place = entries.len();
            pos = match checked.known(place, &b[start..]) {
                Some(len) => start + len,
                None => {
                    let end = skip_marked_value(b, marks, start)?;
                    checked.remember(place, &b[start..end]);
                    end
                }
            };
            let prefix = KeyPrefix::in_text(b, key.clone());
            entries.push(RawEntry { key, prefix, value: start..pos, parsed: OnceCell::new() });
            pos = spaces(b, pos);
            match *b.get(pos)? {
                b',' => pos = spaces(b, pos + 1),
                b'}' => {
                    pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (spaces(b, pos) == b.len()).then_some(())
}

/// The end of the JSON value that starts at `pos` (not at a space), or `None` when it is not one.
pub(crate) fn skip_value(b: &[u8], pos: usize) -> Option<usize> {
    skip_marked_value(b, &Marks::NONE, pos)
}

/// [`skip_value`] with `b`'s [`Marks`]. Nesting is tracked in a 128-bit stack, one bit per open bracket:
/// 1 for an object, 0 for an array.
fn skip_marked_value(b: &[u8], marks: &Marks, mut pos: usize) -> Option<usize> {
    let (mut stack, mut depth) = (0u128, 0u32);
    loop {
        match *b.get(pos)? {
            b'"' => pos = skip_marked_string(b, marks, pos + 1)?,
            b'-' | b'0'..=b'9' => pos = skip_number(b, pos)?,
            b't' => pos = skip_literal(b, pos, b"true")?,
            b'f' => pos = skip_literal(b, pos, b"false")?,
            b'n' => pos = skip_literal(b, pos, b"null")?,
            open @ (b'{' | b'[') => {
                let object = open == b'{';
                pos = spaces(b, pos + 1);
                if *b.get(pos)? == open + 2 {
                    // `{}` or `[]`: `}` and `]` are two bytes after `{` and `[`.
                    pos += 1;
                } else {
                    // Never reached while `split` counts brackets first; keeps the stack's bits whole.
                    if depth == MAX_BRACKETS {
                        return None;
                    }
                    (stack, depth) = (stack << 1 | u128::from(object), depth + 1);
                    pos = if object { skip_member_key(b, marks, pos)? } else { pos };
                    continue;
                }
            }
            _ => return None,
        }
        // After a value: close what ends here, then a comma leads to the next value.
        loop {
            if depth == 0 {
                return Some(pos);
            }
            pos = spaces(b, pos);
            let object = stack & 1 == 1;
            match *b.get(pos)? {
                b',' => {
                    pos = spaces(b, pos + 1);
                    pos = if object { skip_member_key(b, marks, pos)? } else { pos };
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            (pos, stack, depth) = (pos + 1, stack >> 1, depth - 1);
        }
    }
}

/// Past `"key" :` and the spaces after it, in a nested object, from the key's opening quote.
fn skip_member_key(b: &[u8], marks: &Marks, pos: usize) -> Option<usize> {
    if *b.get(pos)? != b'"' {
        return None;
    }
    let pos = spaces(b, skip_marked_string(b, marks, pos + 1)?);
    (*b.get(pos)? == b':').then(|| spaces(b, pos + 1))
}

/// Past the closing quote of the string whose text starts at `pos`. Any escape but `\u` is two bytes;
/// a `\u` escape, or an escaped backslash followed by `u`, ends the split: the record's bytes hold
/// `\u`, which is parsed whole (see [`RawEntries::split`]).
pub(crate) fn skip_string(b: &[u8], pos: usize) -> Option<usize> {
    skip_marked_string(b, &Marks::NONE, pos)
}

/// [`skip_string`] with `b`'s [`Marks`]. Inlined: called for every string of a record, its call cost
/// a fifth of what it does.
#[inline(always)]
fn skip_marked_string(b: &[u8], marks: &Marks, mut pos: usize) -> Option<usize> {
    loop {
        pos = marks.next(b, pos)?;
        if b[pos] == b'"' {
            return Some(pos + 1);
        }
        match *b.get(pos + 1)? {
            b'\\' if b.get(pos + 2) == Some(&b'u') => return None,
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => pos += 2,
            _ => return None,
        }
    }
}

/// Past a number as JSON writes one: `-`, then `0` or digits not starting with `0`, then maybe `.` and
/// digits, then maybe `e` or `E`, a sign and digits. Its size is not checked, as `serde_json` does not
/// check it when skipping.
fn skip_number(b: &[u8], mut pos: usize) -> Option<usize> {
    let digits = |pos: usize| pos + b[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b[pos] == b'-' {
        pos += 1;
    }
    pos = match *b.get(pos)? {
        b'0' => pos + 1,
        b'1'..=b'9' => digits(pos + 1),
        _ => return None,
    };
    if b.get(pos) == Some(&b'.') {
        let end = digits(pos + 1);
        pos = if end > pos + 1 { end } else { return None };
    }
    if let Some(b'e' | b'E') = b.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = b.get(pos) {
            pos += 1;
        }
        let end = digits(pos);
        pos = if end > pos { end } else { return None };
    }
    Some(pos)
}

fn skip_literal(b: &[u8], pos: usize, literal: &[u8]) -> Option<usize> {
    let end = pos + literal.len();
    (b.get(pos..end)? == literal).then_some(end)
}

/// Past the spaces at `pos`.
pub(crate) fn spaces(b: &[u8], pos: usize) -> usize {
    pos + b[pos..].iter().take_while(|&&c| c == b' ').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_marks::plain_and_shallow;
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_json::json;
    use serde_json::value::RawValue;

    /// The split as it was done with `serde_json` (its deserializer, collecting `&RawValue` spans): what
    /// the scanner must agree with on every record.
    fn split_with_serde_json(value: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
        if value.iter().any(|&b| b < 0x20)
            || value.iter().filter(|&&b| b == b'{' || b == b'[').count() > MAX_BRACKETS as usize
            || memchr::memmem::find(value, b"\\u").is_some()
        {
            return None;
        }
        let text = std::str::from_utf8(value).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let mut spans = (&mut de).deserialize_map(SpanVisitor { text }).ok()?;
        de.end().ok()?;
        spans.sort_unstable_by(|a, b| value[a.0.clone()].cmp(&value[b.0.clone()]));
        if spans.windows(2).any(|w| value[w[0].0.clone()] == value[w[1].0.clone()]) {
            return None;
        }
        Some(spans)
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

    #[test]
    fn literal_key_prefixes_are_those_of_the_keys() {
        for key in ["", "a", "event", "category", "user_agent", "@timestamp"] {
            assert_eq!(KeyPrefix::literal(key), KeyPrefix::of(key.as_bytes()), "{key}");
        }
    }

    /// A key's prefix read from the record's text is the one copied from the key alone, whether the text
    /// goes on eight bytes past the key's start or not.
    #[test]
    fn key_prefixes_read_in_the_text() {
        let text = b"abcdefghijkl\":1";
        for start in 0..text.len() {
            for end in start..text.len() {
                assert_eq!(KeyPrefix::in_text(text, start..end), KeyPrefix::of(&text[start..end]), "{start}..{end}");
            }
        }
    }

    /// Records of one to sixty keys, in scrambled order, some sharing their first eight bytes: the entries
    /// come out in byte order.
    #[test]
    fn entries_are_sorted_by_key() {
        for n in [1, 2, 3, 12, 31, 32, 33, 60] {
            let keys: Vec<String> = (0..n)
                .map(|i| if i % 3 == 0 { format!("same_prefix_{}", (i * 7) % n) } else { format!("k{}", (i * 13) % n) })
                .collect();
            let record = format!("{{{}}}", keys.iter().map(|k| format!("\"{k}\":1")).collect::<Vec<_>>().join(","));
            let entries = RawEntries::split(record.as_bytes()).unwrap();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(entries.keys().collect::<Vec<_>>(), sorted, "{record}");
        }
    }

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

    /// A value the split checked before, in the same place, is taken as it was only when the text goes on
    /// as a record should after it: records that hold it and are broken after it, or in it, or hold more
    /// than it, are still refused.
    #[test]
    fn values_checked_before_do_not_let_broken_records_through() {
        let seen = br#"{"a":{"x":[1,{"y":"z"}]},"b":[true]}"#;
        check(seen).unwrap();
        for record in [
            &br#"{"a":{"x":[1,{"y":"z"}]},"b":[true]}"#[..],
            br#"{"a":{"x":[1,{"y":"z"}]}x,"b":[true]}"#,
            br#"{"a":{"x":[1,{"y":"z"}]}}}"#,
            br#"{"a":{"x":[1,{"y":"z"}],"b":[true]}"#,
            br#"{"a":{"x":[1,{"y":"z"}]},"b":[true]"#,
            br#"{"a":{"x":[1,{"y":"z"}]},"b":[true]]}"#,
            br#"{"a":{"x":[1,{"y":"z"}]},"b":[true],"c":{"x":[1,{"y":"z"}]}}"#,
            br#"{"c":{"x":[1,{"y":"z"}]},"a":{"x":[1,{"y":"z"}]}}"#,
        ] {
            check(seen).unwrap();
            check(record).unwrap();
        }
    }

    #[test]
    fn a_number_serde_json_refuses_reads_as_its_text() {
        let entries = RawEntries::split(br#"{"big":1e400}"#).unwrap();
        assert_eq!(entries.get("big"), Some(&json!("1e400")));
    }

    /// The scanner's spans, as `split_with_serde_json` gives them.
    fn spans(value: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
        let entries = RawEntries::split(value)?;
        Some(entries.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect())
    }

    /// The rule the split keeps, on one record: the same spans as `serde_json` finds (or `None` for
    /// both); when it splits, `serde_json::from_slice::<Value>` reads the same map as parsing each entry,
    /// or refuses only a number too large for an `f64`, which `serde_json` skips without complaint.
    fn check(record: &[u8]) -> Result<(), String> {
        let shown = String::from_utf8_lossy(record);
        let (ours, theirs) = (spans(record), split_with_serde_json(record));
        if ours != theirs {
            return Err(format!("{shown}: scanner {ours:?}, serde_json {theirs:?}"));
        }
        // Again, now that the split has this record's values and key order in its memo.
        let again = spans(record);
        if again != theirs {
            return Err(format!("{shown}: scanner again {again:?}, serde_json {theirs:?}"));
        }
        let whole = serde_json::from_slice::<Value>(record);
        match (RawEntries::split(record), whole) {
            (Some(mut entries), Ok(whole)) => {
                let lazy: serde_json::Map<String, Value> = entries.drain().collect();
                if Value::Object(lazy.clone()) != whole {
                    return Err(format!("{shown}: split reads {lazy:?}, serde_json {whole:?}"));
                }
            }
            (Some(_), Err(e)) if !e.to_string().contains("number out of range") => {
                return Err(format!("{shown}: split, but serde_json refuses it: {e}"));
            }
            (None, Ok(Value::Object(_)))
                if !record.iter().any(|&b| b <= b' ' || b == b'\\') && plain_and_shallow(record, MAX_BRACKETS) =>
            {
                // Without whitespace, escapes or deep nesting only a repeated key keeps a valid object whole.
                let keys = sorted_keys(record).ok_or_else(|| format!("{shown}: a plain object parsed whole"))?;
                if !keys.windows(2).any(|w| w[0] == w[1]) {
                    return Err(format!("{shown}: a plain object with unique keys parsed whole"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The sorted top-level keys of a valid object, repeats kept.
    fn sorted_keys(record: &[u8]) -> Option<Vec<String>> {
        let mut entries = Vec::new();
        let mut checked = CheckedValues::EMPTY;
        top_level_entries(record, &Marks::NONE, &mut checked, &mut entries)?;
        let mut keys: Vec<String> =
            entries.iter().map(|e| String::from_utf8_lossy(&record[e.key.clone()]).into_owned()).collect();
        keys.sort();
        Some(keys)
    }

    use proptest::prelude::*;

    /// Space between tokens: mostly none, as the agent writes, sometimes spaces or other whitespace.
    fn gap() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            12 => Just(""),
            2 => Just(" "),
            1 => prop::sample::select(vec!["  ", "\n", "\t", "\r"]),
        ]
    }

    /// Numbers, literals and strings, valid or not.
    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "0",
                "-0",
                "7",
                "-12",
                "1.5",
                "-0.25",
                "1e5",
                "1E+2",
                "2e-3",
                "1e400",
                "-1.0e-7",
                "123456789012345678901",
                "01",
                "1.",
                "-",
                ".5",
                "1e",
                "1e+",
                "+1",
                "--1",
                "1.e3",
                "0x1",
                "00",
                "-01",
                "1.5.",
                "1ee2",
                "NaN",
                "true",
                "false",
                "null",
                "tru",
                "nul",
                "falsee",
                "True",
                "nulll",
                "t",
            ])
            .prop_map(String::from),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            // Strings with escapes valid and not, `\u` and `\\u`, brackets and UTF-8.
            r#""([a-z /{}\[\]:,é"]|\\["\\/bfnrtux]|\\\\u){0,8}""#.prop_map(|s| s.replace("\"\"", "\\\"")),
            r#""[a-z]{0,3}"?"#,
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        scalar().prop_recursive(4, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec((gap(), inner.clone(), gap()), 0..4).prop_map(|items| {
                    let items: Vec<String> = items.into_iter().map(|(a, v, b)| format!("{a}{v}{b}")).collect();
                    format!("[{}]", items.join(","))
                }),
                prop::collection::vec((key(), gap(), inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members.into_iter().map(|(k, g, v)| format!("{k}{g}:{g}{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// Keys: a few, so they repeat; some with escapes.
    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            r#""a""#,
            r#""b""#,
            r#""message""#,
            r#""@timestamp""#,
            r#""host""#,
            r#""""#,
            r#""é""#,
            r#""a\"b""#,
            r#""a\\b""#,
            r#""{[""#,
        ])
    }

    /// A top-level object like the agent's envelope, with an occasional gap where the agent writes none.
    fn record() -> impl Strategy<Value = String> {
        (gap(), prop::collection::vec((key(), gap(), gap(), value(), gap()), 0..6), gap()).prop_map(
            |(outer, members, end)| {
                let members: Vec<String> =
                    members.into_iter().map(|(k, a, b, v, c)| format!("{k}{a}:{b}{v}{c}")).collect();
                format!("{outer}{{{}}}{end}", members.join(","))
            },
        )
    }

    /// A record broken (or not) in one place: cut short, a byte put in, taken out or replaced.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let bytes = prop::sample::select(vec![
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'-', b'.', b'e', b'x', b'u', 0xff, 0xc3,
            b'\n',
        ]);
        (record(), 0..4u8, any::<prop::sample::Index>(), bytes).prop_map(|(record, how, at, byte)| {
            let mut record = record.into_bytes();
            let at = at.index(record.len() + 1);
            match how {
                0 => record.truncate(at),
                1 => record.insert(at, byte),
                2 if at < record.len() => drop(record.remove(at)),
                3 if at < record.len() => record[at] = byte,
                _ => {}
            }
            record
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn agrees_with_serde_json_on_generated_records(record in record()) {
            check(record.as_bytes()).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn agrees_with_serde_json_on_broken_records(record in mutated()) {
            check(&record).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        let cases = [
            r#"{"a":1}"#,
            r#" {"a":1} "#,
            r#"{ "a":1 , "b":[ 1 , { "c" : 2 } ] }"#,
            r#"{"a":1 ,"b":2}"#,
            r#"{"a" :1}"#,
            r#"{"a":1,}"#,
            r#"{,"a":1}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a":[1}"#,
            r#"{"a":[1}}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[{]}}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{"b":}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":"x\"}"#,
            r#"{"a":"\\u"}"#,
            r#"{"a":"\\\\u"}"#,
            r#"{"a":"\\"}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":-}"#,
            r#"{"a":-0.0e-0}"#,
            r#"{"a":1e400}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            r#"{"a":truex}"#,
            r#"{"a":nulll}"#,
            r#"{"a":[tru]}"#,
            r#"{"a":{"b":01}}"#,
            r#"{"a":[]}"#,
            r#"{"a":{}}"#,
            r#"{"a":[ ]}"#,
            r#"{"a":{ }}"#,
            r#"{}"#,
            r#" { } "#,
            r#"{"#,
            r#"}"#,
            "",
            " ",
            r#"{"a""#,
            r#"{"a":"#,
            r#"{"a":1"#,
            r#"{"a":1}}"#,
            r#"{"a":1}{"#,
            r#"{"a":1} x"#,
            r#"{"":1}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"b":1,"a":2,"b":3}"#,
            r#"[1]"#,
            r#""s""#,
            "1",
            "null",
            r#"{"a":"é"}"#,
            r#"{"é":"ü"}"#,
        ];
        for case in cases.iter().map(|c| c.to_string()).chain([deep(125), deep(126), deep(127), deep(130)]) {
            check(case.as_bytes()).unwrap();
        }
        let brackets_in_strings = format!(r#"{{"a":"{}"}}"#, "[".repeat(127));
        check(brackets_in_strings.as_bytes()).unwrap();
    }
}
