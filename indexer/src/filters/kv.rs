//! `type = "kv"`: what Logstash's `kv` filter does: split `source` (default `message`) into
//! `key=value` pairs and set each key under `target` (default: the top level). `field_split` and
//! `value_split` are sets of characters, as in Logstash (`"&?"` splits on `&` or `?`). A value in
//! quotes (`"…"`, `'…'`) or, with `include_brackets`, in `(…)`, `[…]` or `<…>` is taken whole without
//! them. `trim_key`/`trim_value` are characters stripped from both ends. A key seen twice becomes a
//! list unless `allow_duplicate_values` is off. Text without pairs adds nothing.

use serde_json::{Map, Value};

use super::Filter;
use crate::event::{Event, FieldRef};

#[derive(Debug, Clone)]
pub struct Kv {
    pub source: FieldRef,
    /// `None`: the pairs go to the top level.
    pub target: Option<FieldRef>,
    pub field_split: Vec<char>,
    pub value_split: Vec<char>,
    /// Only these keys (after trimming, before `prefix`); empty: all.
    pub include_keys: Vec<String>,
    pub exclude_keys: Vec<String>,
    pub trim_key: Vec<char>,
    pub trim_value: Vec<char>,
    /// Put before every key.
    pub prefix: String,
    pub include_brackets: bool,
    pub allow_duplicate_values: bool,
}

impl Kv {
    /// Logstash's defaults: `message` split on spaces and `=`, into the top level.
    pub fn new(source: FieldRef) -> Self {
        Self {
            source,
            target: None,
            field_split: vec![' '],
            value_split: vec!['='],
            include_keys: Vec::new(),
            exclude_keys: Vec::new(),
            trim_key: Vec::new(),
            trim_value: Vec::new(),
            prefix: String::new(),
            include_brackets: true,
            allow_duplicate_values: true,
        }
    }

    fn wanted(&self, key: &str) -> bool {
        !key.is_empty()
            && (self.include_keys.is_empty() || self.include_keys.iter().any(|k| k == key))
            && !self.exclude_keys.iter().any(|k| k == key)
    }

    /// The closing character of a value that starts with `open`, if it is a wrapper.
    fn closing(&self, open: char) -> Option<char> {
        match open {
            '"' | '\'' => Some(open),
            '(' if self.include_brackets => Some(')'),
            '[' if self.include_brackets => Some(']'),
            '<' if self.include_brackets => Some('>'),
            _ => None,
        }
    }

    /// Calls `pair(key, value)` for each pair of `text`, in order.
    fn pairs<'t>(&self, text: &'t str, mut pair: impl FnMut(&'t str, &'t str)) {
        let is_field_split = |c: char| self.field_split.contains(&c);
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches(is_field_split);
            if rest.is_empty() {
                return;
            }
            // The key runs to a value separator; a field separator first means a word without a value.
            let Some(at) = rest.find(|c: char| is_field_split(c) || self.value_split.contains(&c)) else { return };
            let key = &rest[..at];
            let sep = rest[at..].chars().next().expect("found above");
            rest = &rest[at + sep.len_utf8()..];
            if is_field_split(sep) {
                continue;
            }
            let value;
            match rest.chars().next().and_then(|open| self.closing(open).map(|close| (open, close))) {
                Some((open, close)) if rest[open.len_utf8()..].contains(close) => {
                    let inner = &rest[open.len_utf8()..];
                    let end = inner.find(close).expect("checked above");
                    value = &inner[..end];
                    rest = &inner[end + close.len_utf8()..];
                }
                _ => {
                    let end = rest.find(is_field_split).unwrap_or(rest.len());
                    value = &rest[..end];
                    rest = &rest[end..];
                }
            }
            pair(key, value);
        }
    }
}

impl Filter for Kv {
    fn apply(&self, event: &mut Event) {
        let Some(text) = event.get_str(&self.source) else { return };
        let mut found = Map::new();
        self.pairs(text, |key, value| {
            let key = key.trim_matches(self.trim_key.as_slice());
            let value = value.trim_matches(self.trim_value.as_slice());
            if value.is_empty() || !self.wanted(key) {
                return;
            }
            let key = if self.prefix.is_empty() { key.to_string() } else { format!("{}{key}", self.prefix) };
            let value = Value::String(value.to_string());
            match found.get_mut(&key) {
                None => {
                    found.insert(key, value);
                }
                Some(Value::Array(list)) if self.allow_duplicate_values => list.push(value),
                Some(old) if self.allow_duplicate_values => *old = Value::Array(vec![old.take(), value]),
                Some(old) if old.is_array() => {
                    let list = old.as_array_mut().expect("checked");
                    if !list.contains(&value) {
                        list.push(value);
                    }
                }
                Some(old) => {
                    if *old != value {
                        *old = Value::Array(vec![old.take(), value]);
                    }
                }
            }
        });
        if found.is_empty() {
            return;
        }
        match &self.target {
            Some(target) => event.merge_into(target.parts(), &found),
            None => event.as_map_mut().extend(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(kv: &Kv, message: &str) -> Value {
        let mut e = Event::from_map(json!({ "message": message }).as_object().unwrap().clone());
        kv.apply(&mut e);
        let mut map = e.into_map();
        map.remove("message");
        Value::Object(map)
    }

    fn kv() -> Kv {
        Kv::new(FieldRef::parse("message").unwrap())
    }

    #[test]
    fn splits_pairs_with_quotes_and_brackets() {
        let got = run(&kv(), r#"user=alice  msg="hello world" ids=[1 2] word level='warn' empty= a=1 a=2"#);
        assert_eq!(got, json!({"user": "alice", "msg": "hello world", "ids": "1 2", "level": "warn", "a": ["1", "2"]}));
    }

    #[test]
    fn character_sets_target_prefix_and_trimming() {
        let k = Kv {
            target: Some(FieldRef::parse("[url][query]").unwrap()),
            field_split: vec!['&', '?'],
            value_split: vec![':', '='],
            trim_key: vec![' '],
            trim_value: vec!['<', '>', ','],
            prefix: "q_".into(),
            include_brackets: false,
            ..kv()
        };
        assert_eq!(run(&k, "?a=1& b :<two>,&c=3"), json!({"url": {"query": {"q_a": "1", "q_b": "two", "q_c": "3"}}}));
    }

    #[test]
    fn include_and_exclude_keys() {
        let k = Kv { include_keys: vec!["a".into(), "b".into()], exclude_keys: vec!["b".into()], ..kv() };
        assert_eq!(run(&k, "a=1 b=2 c=3"), json!({"a": "1"}));
    }

    #[test]
    fn duplicates_without_allow_duplicate_values_keep_distinct_values() {
        let k = Kv { allow_duplicate_values: false, ..kv() };
        assert_eq!(run(&k, "a=1 a=1 a=2 a=2 b=x"), json!({"a": ["1", "2"], "b": "x"}));
    }

    #[test]
    fn an_unclosed_quote_is_part_of_the_value_and_text_without_pairs_adds_nothing() {
        assert_eq!(run(&kv(), r#"a="open b=2"#), json!({"a": "\"open", "b": "2"}));
        assert_eq!(run(&kv(), "just words here"), json!({}));
        assert_eq!(run(&kv(), "ünï=çødé x=1"), json!({"ünï": "çødé", "x": "1"}));
    }
}
