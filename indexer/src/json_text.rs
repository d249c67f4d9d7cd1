//! Reading an event's entries that are still JSON text without parsing them into `serde_json` values:
//! finding an object's members, an array's strings (the tags), and a string's contents; and writing a
//! string as JSON. The values are skipped with the scanner
//! [`crate::raw_entries::RawEntries::split`] uses; the text is a record that split accepted or what a
//! filter wrote, so it only declines (and the caller parses) where split would: a `\u` escape.
//!
//! Why: reading `event.id` for the document id, or the members of `event` to add the nginx fields, by
//! parsing the whole object cost more than all the rest of the event's fields.

use std::borrow::Cow;

use smallvec::SmallVec;
use wide::u8x16;

use crate::raw_entries::{key_cmp, key_eq, skip_string, skip_value, spaces};

/// An object's members as `(key, "key":value, value)`; the few of most objects (the agent's `event` has
/// one or two) kept in place rather than allocated for each event.
pub type Members<'t> = SmallVec<[(&'t str, &'t str, &'t str); 4]>;

/// The members of the object `text` as `(key, "key":value, value)`, in their order, or `None` when `text` is
/// not an object, a key is written with escapes (its text is not the key) or a string has a `\u` escape.
pub fn members(text: &str) -> Option<Members<'_>> {
    let mut out = Members::new();
    walk(text, |member| out.push(member))?;
    Some(out)
}

/// [`members`] sorted by key, or `None` also when a key is repeated (which of them `serde_json` keeps
/// depends on their order, so they cannot be merged as text).
pub fn sorted_members(text: &str) -> Option<Members<'_>> {
    let mut members = members(text)?;
    members.sort_unstable_by(|a, b| key_cmp(a.0.as_bytes(), b.0.as_bytes()));
    let repeated = members.windows(2).any(|w| key_eq(w[0].0.as_bytes(), w[1].0.as_bytes()));
    (!repeated).then_some(members)
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

/// Whether `s` is one of the strings [`crate::event::Event::tags`] reads from the JSON value `text`: an
/// array's strings, or the string itself; `None` when that cannot be told without parsing (a string
/// with escapes before `s` was found, or `text` not valid).
pub fn holds_str(text: &str, s: &str) -> Option<bool> {
    let b = text.as_bytes();
    let mut at = spaces(b, 0);
    match b.get(at) {
        Some(b'"') => return plain_str(text.trim_matches(' ')).map(|t| t == s),
        Some(b'[') => {}
        _ => return Some(false),
    }
    at = spaces(b, at + 1);
    if b.get(at) == Some(&b']') {
        return Some(false);
    }
    // `s` written as JSON is `"s"` when it needs no escape: then an element whose bytes are those is `s`
    // (no byte of it can escape the closing quote), found without reading the element as a string.
    let literal = (!needs_escape(s.as_bytes())).then_some(s.as_bytes());
    loop {
        if let Some(literal) = literal {
            let after = at + 1 + literal.len();
            if b[at] == b'"' && b.get(at + 1..after) == Some(literal) && b.get(after) == Some(&b'"') {
                return Some(true);
            }
        }
        let end = skip_value(b, at)?;
        if b[at] == b'"' && plain_str(&text[at..end])? == s {
            return Some(true);
        }
        at = spaces(b, end);
        match b.get(at) {
            Some(b',') => at = spaces(b, at + 1),
            Some(b']') => return Some(false),
            _ => return None,
        }
    }
}

/// Appends `s` as a JSON string, as `serde_json` writes it. Most strings need no escaping and are copied
/// as they are (`sonic_rs`, which escapes the others, reserves six times a string's length before each
/// write, and growing the buffer for that was a tenth of the nginx fields' cost).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        sonic_rs::to_writer(out, s).expect("writing a string to a Vec does not fail")
    }
}

/// Whether JSON escapes any byte of `s`: a control byte, `"` or `\`. Checked 16 bytes at a time with
/// SSE2 compares (`wide`), a short string's tail padded with spaces: most strings written are a few
/// bytes long (`GET`, `1.1`, a path), and their bytes checked one at a time were most of this check's
/// 900 instructions per nginx document (callgrind).
pub fn needs_escape(s: &[u8]) -> bool {
    let (quote, backslash, highest_control) = (u8x16::splat(b'"'), u8x16::splat(b'\\'), u8x16::splat(0x1f));
    let escaped = |bytes: [u8; 16]| {
        let v = u8x16::new(bytes);
        (v.cmp_eq(quote) | v.cmp_eq(backslash) | v.min(highest_control).cmp_eq(v)).any()
    };
    let mut chunks = s.chunks_exact(16);
    if chunks.any(|chunk| escaped(chunk.try_into().expect("sixteen bytes"))) {
        return true;
    }
    let mut tail = [b' '; 16];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    escaped(tail)
}

/// The contents of the JSON string `text`, borrowed when it has no escapes, or `None` for anything that is
/// not a string (see [`unescape`]).
pub fn string(text: &str) -> Option<Cow<'_, str>> {
    match plain_str(text) {
        Some(plain) => Some(Cow::Borrowed(plain)),
        None => unescape(text).map(Cow::Owned),
    }
}

/// The contents of the JSON string `text` when it has no escapes; `None` for anything else. (`memchr`'s
/// search, not `str::contains`, whose byte search is not vectorised: 140 instructions for an nginx line
/// against 40.)
pub fn plain_str(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    memchr::memchr(b'\\', inner.as_bytes()).is_none().then_some(inner)
}

/// The contents of the JSON string `text` (valid JSON, quotes included), its escapes undone, or `None`
/// for anything that is not a string. Copies the runs between backslashes (`serde_json` builds the string
/// byte by byte); a string with a `\u` escape (surrogate pairs) is left to `serde_json`.
pub fn unescape(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
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
            b'u' => return serde_json::from_str(text).ok(),
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
        assert!(members("{}").unwrap().is_empty());
        for not in ["[1]", "\"s\"", r#"{"a\"b":1}"#, "{\"a\":1", "{\"a\" 1}"] {
            assert_eq!(members(not), None, "{not}");
        }
        assert_eq!(plain_str(r#""abc""#), Some("abc"));
        assert_eq!(plain_str(r#""a\"c""#), None);
        assert_eq!(plain_str("12"), None);
    }

    #[test]
    fn writes_strings_as_serde_json_does() {
        for len in [0, 1, 15, 16, 17, 33, 100] {
            for at in 0..len {
                for c in ['"', '\\', '\n', '\u{1}', '\u{7f}', 'é'] {
                    let mut s: String = "a".repeat(len);
                    s.replace_range(at..at + 1, &c.to_string());
                    let mut out = Vec::new();
                    write_str(&mut out, &s);
                    assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn finds_tags_as_parsing_does() {
        let texts = [
            r#"["access","x"]"#,
            r#"[ "x" , "access" ]"#,
            r#"["x"]"#,
            "[]",
            r#""access""#,
            r#""x""#,
            "5",
            r#"[1,{"a":"access"},"access"]"#,
            r#"["acc\"ess","access"]"#,
            r#"["access","acc\"ess"]"#,
            "null",
        ];
        for text in texts {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let event = crate::event::Event::from_map([("tags".to_string(), value)].into_iter().collect());
            let parsed = event.tags().any(|t| t == "access");
            assert!(holds_str(text, "access").is_none_or(|found| found == parsed), "{text}");
        }
        assert_eq!(holds_str(r#"["x","access"]"#, "access"), Some(true));
        assert_eq!(holds_str(r#"["access2","accessaccess","acces","access"]"#, "access"), Some(true));
        assert_eq!(holds_str(r#"["access2","accessaccess","acces"]"#, "access"), Some(false));
        assert_eq!(holds_str(r#"["a\"b"]"#, "a\\"), None);
        assert_eq!(holds_str(r#"["a\\b","a\"b"]"#, "a\"b"), None);
        assert_eq!(holds_str(r#"["acc\"ess","access"]"#, "access"), None);
    }

    /// The vector check says what checking each byte says, for the byte at every position of strings of
    /// every length around the sixteen-byte chunks, among bytes that need no escape.
    #[test]
    fn needs_escape_checks_every_byte() {
        for len in 0..50 {
            for at in 0..=len {
                for byte in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    if at < len {
                        b[at] = byte;
                    }
                    let expected = b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
                    assert_eq!(needs_escape(&b), expected, "{b:?}");
                }
            }
        }
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
