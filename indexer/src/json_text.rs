//! Reading an event's entries that are still JSON text without parsing them into `serde_json` values:
//! finding an object's members, and a string's contents. The values are skipped with the scanner
//! [`crate::raw_entries::RawEntries::split`] uses; the text is a record that split accepted or what a
//! filter wrote, so it only declines (and the caller parses) where split would: a `\u` escape.
//!
//! Why: reading `event.id` for the document id, or the members of `event` to add the nginx fields, by
//! parsing the whole object cost more than all the rest of the event's fields.

use crate::raw_entries::{skip_string, skip_value, spaces};

/// The members of the object `text` as `(key, "key":value, value)`, in their order, or `None` when `text` is
/// not an object, a key is written with escapes (its text is not the key) or a string has a `\u` escape.
pub fn members(text: &str) -> Option<Vec<(&str, &str, &str)>> {
    let mut out = Vec::with_capacity(12);
    walk(text, |member| out.push(member))?;
    Some(out)
}

/// The value of member `key` of the object `text` (the last one, as `serde_json` keeps the last of
/// repeated keys): `Some(None)` when it has none, `None` when that cannot be told without parsing (see
/// [`members`]).
pub fn member<'t>(text: &'t str, key: &str) -> Option<Option<&'t str>> {
    let mut found = None;
    walk(text, |(k, _, value)| {
        if k == key {
            found = Some(value);
        }
    })?;
    Some(found)
}

/// Calls `visit` with each member of the object `text`; `None` as for [`members`].
fn walk<'t>(text: &'t str, mut visit: impl FnMut((&'t str, &'t str, &'t str))) -> Option<()> {
    let b = text.as_bytes();
    let mut at = spaces(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    at = spaces(b, at + 1);
    if b.get(at) == Some(&b'}') {
        return Some(());
    }
    loop {
        let key_start = at;
        if b.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, at + 1)?;
        let key = &text[key_start + 1..key_end - 1];
        if key.contains('\\') {
            return None;
        }
        at = spaces(b, key_end);
        if b.get(at) != Some(&b':') {
            return None;
        }
        let value_start = spaces(b, at + 1);
        let value_end = skip_value(b, value_start)?;
        visit((key, &text[key_start..value_end], &text[value_start..value_end]));
        at = spaces(b, value_end);
        match b.get(at) {
            Some(b',') => at = spaces(b, at + 1),
            Some(b'}') => return Some(()),
            _ => return None,
        }
    }
}

/// The contents of the JSON string `text` when it has no escapes; `None` for anything else.
pub fn plain_str(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// The contents of the JSON string `text` (valid JSON, quotes included), its escapes undone, or `None`
/// for anything that is not a string. Copies the runs between backslashes (`serde_json` builds the string
/// byte by byte); a string with a `\u` escape (surrogate pairs) is left to `serde_json`.
pub fn unescape(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains("\\u") {
        return serde_json::from_str(text).ok();
    }
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\\', &b[at..]) {
        out.push_str(&inner[at..at + i]);
        out.push(match b.get(at + i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        });
        at += i + 2;
    }
    out.push_str(&inner[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_objects() {
        let text = r#"{"id":"a\"b","n":-1.5e3,"o":{"x":["}",{"y":"]"}]},"t":true, "s" : "x" }"#;
        let m = members(text).unwrap();
        let keys: Vec<_> = m.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, ["id", "n", "o", "t", "s"]);
        assert_eq!(m[0].1, r#""id":"a\"b""#);
        assert_eq!(m[1].2, "-1.5e3");
        assert_eq!(m[2].2, r#"{"x":["}",{"y":"]"}]}"#);
        assert_eq!(m[3].2, "true");
        assert_eq!(m[4].2, r#""x""#);
        assert_eq!(member(text, "o"), Some(Some(r#"{"x":["}",{"y":"]"}]}"#)));
        assert_eq!(member(text, "nope"), Some(None));
        assert_eq!(member(r#"{"id":"a","id":"b"}"#, "id"), Some(Some(r#""b""#)), "the last, as serde_json");
        assert_eq!(members("{}").unwrap(), []);
        for not in ["[1]", "\"s\"", r#"{"a\"b":1}"#, "{\"a\":1", "{\"a\" 1}"] {
            assert_eq!(members(not), None, "{not}");
        }
        assert_eq!(plain_str(r#""abc""#), Some("abc"));
        assert_eq!(plain_str(r#""a\"c""#), None);
        assert_eq!(plain_str("12"), None);
    }

    #[test]
    fn unescapes_as_serde_json_does() {
        let strings = ["", "plain", "a\"b", "\\", "/", "\u{8}\u{c}\n\r\t", "é \u{1F600}", "\\u0041", "\u{1}"];
        for s in strings {
            for t in [s.to_string(), format!("x{s}y{s}"), format!("{s}{s}{s}")] {
                let text = serde_json::to_string(&t).unwrap();
                assert_eq!(unescape(&text).as_deref(), Some(t.as_str()), "{text}");
                let solidus = text.replace('/', "\\/");
                assert_eq!(unescape(&solidus), serde_json::from_str::<String>(&solidus).ok(), "{solidus}");
            }
        }
        for text in [r#""\u00e9\ud83d\ude00""#, r#""a\u0022b""#] {
            assert_eq!(unescape(text), serde_json::from_str::<String>(text).ok(), "{text}");
        }
        assert_eq!(unescape("12"), None);
    }

    /// Every member the scan finds is what serde_json parses, over objects nested in many ways.
    #[test]
    fn agrees_with_serde_json() {
        let values = [
            r#""plain""#,
            r#""esc \" \\ \/ \n""#,
            "0",
            "-12.5E+3",
            "true",
            "null",
            "[]",
            r#"[1,"]",{"a":"}"}]"#,
            r#"{"k":{"k":{"k":[[[]]]}}}"#,
            r#"{ "spaced" : [ 1 , 2 ] }"#,
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i..] {
                let text = format!(r#"{{"a":{a},"b" : {b} ,"c":{a}}}"#);
                let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
                let m = members(&text).unwrap_or_else(|| panic!("{text}"));
                assert_eq!(m.len(), 3, "{text}");
                for (key, _, value) in m {
                    assert_eq!(serde_json::from_str::<serde_json::Value>(value).unwrap(), parsed[key], "{text}");
                }
            }
        }
    }
}
