//! The objects an nginx access line adds to its document, written straight as JSON text for the direct
//! encoder ([`crate::direct`]): the same text as [`ParsedAccess::fields`] written through
//! [`crate::filters::new_fields::NewFields`], which the event path uses (the direct encoder's tests compare
//! the two paths' documents byte for byte).
//!
//! Why: the fields as a list of paths, grouped back into objects key by key as they are written, cost
//! about 3,300 instructions per nginx document (the list, its grouping, writing each key); each object
//! written here from its literal parts costs a fraction of that.

use super::ParsedAccess;
use crate::event::SharedObject;
use crate::json_text::write_str;

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
    pub fn key(self) -> &'static str {
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
    /// The enrichments' finished objects, when they stand for the line's `source` and `user_agent`.
    source: Option<&'p SharedObject>,
    user_agent: Option<&'p SharedObject>,
}

impl<'p, 'a> Objects<'p, 'a> {
    pub fn new(
        parsed: &'p ParsedAccess<'a>,
        created: Option<&'p str>,
        source: Option<&'p SharedObject>,
        user_agent: Option<&'p SharedObject>,
    ) -> Self {
        debug_assert!(source.is_none_or(|s| s.key() == "source") && user_agent.is_none_or(|u| u.key() == "user_agent"));
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

    /// The members of `event` it writes, in key order.
    pub fn event_members(&self) -> impl Iterator<Item = EventMember<'p>> {
        let outcome = if self.parsed.access.status >= 400 {
            EventMember::Literal("outcome", r#""outcome":"failure""#)
        } else {
            EventMember::Literal("outcome", r#""outcome":"success""#)
        };
        [
            Some(EventMember::Literal("category", r#""category":["web"]"#)),
            self.created.map(EventMember::Created),
            Some(EventMember::Literal("dataset", r#""dataset":"nginx.access""#)),
            Some(EventMember::Literal("kind", r#""kind":"event""#)),
            Some(EventMember::Literal("module", r#""module":"nginx""#)),
            Some(outcome),
            Some(EventMember::Literal("type", r#""type":["access"]"#)),
        ]
        .into_iter()
        .flatten()
    }

    /// Appends `"key":{...}` of `object`, one of [`Objects::present`] other than `event`.
    pub fn write(&self, object: Object, out: &mut Vec<u8>) {
        let shared = match object {
            Object::Source => self.source,
            Object::UserAgent => self.user_agent,
            _ => None,
        };
        if let Some(shared) = shared {
            return out.extend_from_slice(shared.entry_json());
        }
        let p = self.parsed;
        let a = &p.access;
        match object {
            Object::Event => unreachable!("the caller writes `event` from `event_members`, merged with the record's"),
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

/// A member of `event` the filter writes. Most are written whole from one literal: key by key, writing
/// them was 900 instructions per document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventMember<'p> {
    /// Its key and `"key":value`.
    Literal(&'static str, &'static str),
    /// `created`, and the JSON of its value.
    Created(&'p str),
}

impl EventMember<'_> {
    pub fn key(&self) -> &'static str {
        match self {
            EventMember::Literal(key, _) => key,
            EventMember::Created(_) => "created",
        }
    }

    /// Appends `"key":value`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            EventMember::Literal(_, member) => out.extend_from_slice(member.as_bytes()),
            EventMember::Created(json) => {
                out.extend_from_slice(br#""created":"#);
                out.extend_from_slice(json.as_bytes());
            }
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
