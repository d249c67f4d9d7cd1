//! The objects an nginx access line adds to its document, written straight as JSON text for the direct
//! encoder ([`crate::direct`]): the same text as [`ParsedAccess::fields`] written through
//! [`crate::filters::new_fields::NewFields`], which the event path uses (the direct encoder's tests compare
//! the two paths' documents byte for byte).
//!
//! Why: the fields as a list of paths, grouped back into objects key by key as they are written, cost
//! about 3,300 instructions per nginx document (the list, its grouping, writing each key); each object
//! written here from its literal parts costs a fraction of that.

use super::ParsedAccess;
use crate::json_text::write_str;
use crate::raw_entries::{key_cmp, KeyPrefix};

/// The members the filter writes into `event`, besides `created` (which it writes after the first).
pub(crate) const EVENT_MEMBERS: [&str; 6] = ["category", "dataset", "kind", "module", "outcome", "type"];

/// `event.category`, the first member of `event` the filter writes.
const CATEGORY: &str = r#""category":["web"]"#;
/// The members of `event` it writes after `created`, each followed by a comma (the last one's is not
/// written), for a success and a failure; `REST_KEYS` are their keys and `REST_STARTS` where each starts
/// (and the end), the same in both.
const REST_SUCCESS: &str =
    r#""dataset":"nginx.access","kind":"event","module":"nginx","outcome":"success","type":["access"],"#;
const REST_FAILURE: &str =
    r#""dataset":"nginx.access","kind":"event","module":"nginx","outcome":"failure","type":["access"],"#;
const REST_KEYS: &[&str] = EVENT_MEMBERS.split_at(1).1;
const REST_STARTS: [usize; 6] = [0, 25, 40, 57, 77, 95];

/// A top-level object the filter writes, in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Event,
    Http,
    Nginx,
    Related,
    Source,
    Url,
    User,
    UserAgent,
}

impl Object {
    /// Every one, in key order.
    const ALL: [Object; 8] = [
        Object::Event,
        Object::Http,
        Object::Nginx,
        Object::Related,
        Object::Source,
        Object::Url,
        Object::User,
        Object::UserAgent,
    ];

    /// The keys of the objects other than `event`: a record that has one of them already is left to the
    /// event path, which merges into it.
    pub(crate) const OTHER_KEYS: [&'static str; 7] = {
        let mut keys = [""; 7];
        let mut i = 0;
        while i < keys.len() {
            keys[i] = Self::ALL[i + 1].key();
            i += 1;
        }
        keys
    };

    /// [`Object::key`]'s prefix, for placing it among a record's keys.
    pub fn prefix(self) -> KeyPrefix {
        const PREFIXES: [KeyPrefix; 8] = {
            let mut prefixes = [KeyPrefix::literal(""); 8];
            let mut i = 0;
            while i < prefixes.len() {
                prefixes[i] = KeyPrefix::literal(Object::ALL[i].key());
                i += 1;
            }
            prefixes
        };
        PREFIXES[self as usize]
    }

    pub const fn key(self) -> &'static str {
        match self {
            Object::Event => "event",
            Object::Http => "http",
            Object::Nginx => "nginx",
            Object::Related => "related",
            Object::Source => "source",
            Object::Url => "url",
            Object::User => "user",
            Object::UserAgent => "user_agent",
        }
    }
}

/// What the filter writes for one line, as [`ParsedAccess::fields`] takes it.
pub(crate) struct Objects<'p, 'a> {
    parsed: &'p ParsedAccess<'a>,
    /// The JSON of `event.created`, when the filter sets it.
    created: Option<&'p str>,
    /// The enrichments' finished objects, when they stand for the line's `source` and `user_agent`: their
    /// [`entry_json`](crate::event::SharedObject::entry_json).
    source: Option<&'p [u8]>,
    user_agent: Option<&'p [u8]>,
}

impl<'p, 'a> Objects<'p, 'a> {
    pub fn new(
        parsed: &'p ParsedAccess<'a>,
        created: Option<&'p str>,
        source: Option<&'p [u8]>,
        user_agent: Option<&'p [u8]>,
    ) -> Self {
        debug_assert!(
            source.is_none_or(|s| s.starts_with(br#""source":"#))
                && user_agent.is_none_or(|u| u.starts_with(br#""user_agent":"#))
        );
        Self { parsed, created, source, user_agent }
    }

    /// The objects written, in key order: `event`, `http` and `source` always, the others when they have
    /// a field or an enrichment's object stands for them.
    pub fn present(&self) -> impl Iterator<Item = Object> + '_ {
        let p = self.parsed;
        let user = p.access.remote_user != "-";
        [
            (Object::Event, true),
            (Object::Http, true),
            (Object::Nginx, !p.forwarded.is_empty()),
            (Object::Related, !p.related.is_empty() || user),
            (Object::Source, true),
            (Object::Url, p.url.is_some()),
            (Object::User, user),
            (Object::UserAgent, p.user_agent().is_some() || self.user_agent.is_some()),
        ]
        .into_iter()
        .filter_map(|(object, present)| present.then_some(object))
    }

    /// Appends `"event":{...}`: the members the filter writes and `old`, the record's (in key order, none
    /// of them one the filter writes), merged in key order. The filter's members are cut from one string,
    /// so that each run of them between two of the record's is one copy (writing them one by one was
    /// 800 instructions per document).
    pub fn write_event(&self, out: &mut Vec<u8>, old: &[(&str, &str, &str)]) {
        let rest = if self.parsed.access.status >= 400 { REST_FAILURE } else { REST_SUCCESS };
        let mut merge = Merge { out, old: old.iter().peekable(), separator: b'{' };
        merge.old_before("category");
        merge.put(&[CATEGORY]);
        if let Some(created) = self.created {
            merge.old_before("created");
            merge.put(&[r#""created":"#, created]);
        }
        let mut first = 0;
        while first < REST_KEYS.len() {
            merge.old_before(REST_KEYS[first]);
            // The run goes on up to the next member the record has one before.
            let end =
                (first + 1..REST_KEYS.len()).find(|&i| merge.old_comes_before(REST_KEYS[i])).unwrap_or(REST_KEYS.len());
            merge.put(&[&rest[REST_STARTS[first]..REST_STARTS[end] - 1]]);
            first = end;
        }
        merge.old_rest();
        merge.out.push(b'}');
    }

    /// Appends `"key":{...}` of `object`, one of [`Objects::present`] other than `event`.
    pub fn write(&self, object: Object, out: &mut Vec<u8>) {
        let shared = match object {
            Object::Source => self.source,
            Object::UserAgent => self.user_agent,
            _ => None,
        };
        if let Some(entry_json) = shared {
            return out.extend_from_slice(entry_json);
        }
        let p = self.parsed;
        let a = &p.access;
        match object {
            Object::Event => unreachable!("the caller writes `event` with the record's members (`write_event`)"),
            Object::Http => {
                out.extend_from_slice(br#""http":{"#);
                let referrer = Some(a.referrer).filter(|r| *r != "-");
                if p.method.is_some() || referrer.is_some() {
                    out.extend_from_slice(br#""request":"#);
                    self.members(out, [("method", p.method), ("referrer", referrer)]);
                    out.push(b',');
                }
                out.extend_from_slice(br#""response":{"body":{"bytes":"#);
                out.extend_from_slice(itoa::Buffer::new().format(a.bytes).as_bytes());
                out.extend_from_slice(br#"},"status_code":"#);
                out.extend_from_slice(itoa::Buffer::new().format(a.status).as_bytes());
                out.push(b'}');
                if let Some(version) = p.version {
                    out.extend_from_slice(br#","version":"#);
                    self.string(out, version);
                }
                out.push(b'}');
            }
            Object::Nginx => {
                out.extend_from_slice(br#""nginx":{"access":{"remote_ip_list":"#);
                self.strs(out, p.forwarded.iter().copied());
                out.extend_from_slice(b"}}");
            }
            Object::Related => {
                out.extend_from_slice(br#""related":{"#);
                if !p.related.is_empty() {
                    out.extend_from_slice(br#""ip":"#);
                    self.strs(out, p.related.iter().map(|(text, _)| *text));
                }
                if a.remote_user != "-" {
                    if !p.related.is_empty() {
                        out.push(b',');
                    }
                    out.extend_from_slice(br#""user":"#);
                    self.strs(out, [a.remote_user]);
                }
                out.push(b'}');
            }
            Object::Source => {
                out.extend_from_slice(br#""source":"#);
                self.members(out, [("address", Some(p.client)), ("ip", p.client_ip.map(|_| p.client))]);
            }
            Object::Url => {
                let url = p.url.expect("present only with a url");
                let (path, query) = match memchr::memchr(b'?', url.as_bytes()) {
                    Some(at) => (&url[..at], Some(&url[at + 1..])),
                    None => (url, None),
                };
                out.extend_from_slice(br#""url":"#);
                self.members(
                    out,
                    [("original", Some(url)), ("path", Some(path)), ("query", query.filter(|q| !q.is_empty()))],
                );
            }
            Object::User => {
                out.extend_from_slice(br#""user":{"name":"#);
                self.string(out, a.remote_user);
                out.push(b'}');
            }
            Object::UserAgent => {
                out.extend_from_slice(br#""user_agent":{"original":"#);
                self.string(out, a.user_agent);
                out.push(b'}');
            }
        }
    }
}

/// `event`'s members being written: the record's still to come, and the separator before the next.
struct Merge<'o, 'm> {
    out: &'o mut Vec<u8>,
    old: std::iter::Peekable<std::slice::Iter<'m, (&'m str, &'m str, &'m str)>>,
    separator: u8,
}

impl Merge<'_, '_> {
    /// Appends the member whose text is `parts`, joined.
    fn put(&mut self, parts: &[&str]) {
        self.out.push(std::mem::replace(&mut self.separator, b','));
        parts.iter().for_each(|part| self.out.extend_from_slice(part.as_bytes()));
    }

    /// Whether the record's next member comes before `key`.
    fn old_comes_before(&mut self, key: &str) -> bool {
        self.old.peek().is_some_and(|(k, ..)| key_cmp(k.as_bytes(), key.as_bytes()).is_lt())
    }

    /// Appends the record's members still to come.
    fn old_rest(&mut self) {
        while let Some((_, json, _)) = self.old.next() {
            self.put(&[json]);
        }
    }

    /// Appends the record's members that come before `key`.
    fn old_before(&mut self, key: &str) {
        while self.old_comes_before(key) {
            let (_, json, _) = self.old.next().expect("peeked");
            self.put(&[json]);
        }
    }
}

impl Objects<'_, '_> {
    /// `"s"`: as it is when the line was read in its JSON string, whose fields have no byte JSON escapes
    /// (no quote or backslash, or it was unescaped first; no control byte, or the split refused the
    /// record), without looking for one (500 instructions per document).
    fn string(&self, out: &mut Vec<u8>, s: &str) {
        if self.parsed.in_json {
            debug_assert!(!crate::json_text::needs_escape(s.as_bytes()), "{s:?}");
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        } else {
            write_str(out, s);
        }
    }

    /// `{"key":"value",...}` of the members that have a value; at least one has.
    fn members<const N: usize>(&self, out: &mut Vec<u8>, members: [(&str, Option<&str>); N]) {
        let mut separator = b'{';
        for (key, value) in members {
            if let Some(value) = value {
                out.push(std::mem::replace(&mut separator, b','));
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                self.string(out, value);
            }
        }
        out.push(b'}');
    }

    /// `["a","b"]`.
    fn strs<'s>(&self, out: &mut Vec<u8>, list: impl IntoIterator<Item = &'s str>) {
        let mut separator = b'[';
        for s in list {
            out.push(std::mem::replace(&mut separator, b','));
            self.string(out, s);
        }
        if separator == b'[' {
            out.push(b'[');
        }
        out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listed in key order, each at its own place, so that the prefixes are found by position.
    #[test]
    fn objects_are_listed_in_key_order() {
        for (i, object) in Object::ALL.iter().enumerate() {
            assert_eq!(*object as usize, i, "{object:?}");
            assert_eq!(object.prefix(), KeyPrefix::literal(object.key()), "{object:?}");
        }
        assert!(Object::ALL.windows(2).all(|w| w[0].key() < w[1].key()));
        assert!(!Object::OTHER_KEYS.contains(&"event"));
    }

    /// The members after `created` are cut at the places and keys given for them, each followed by a comma.
    #[test]
    fn the_joined_members_are_cut_where_they_start() {
        for rest in [REST_SUCCESS, REST_FAILURE] {
            assert_eq!(rest.len(), REST_STARTS[REST_KEYS.len()]);
            for (i, key) in REST_KEYS.iter().enumerate() {
                let member = &rest[REST_STARTS[i]..REST_STARTS[i + 1]];
                assert!(member.starts_with(&format!("\"{key}\":")) && member.ends_with(','), "{member}");
            }
        }
    }
}
