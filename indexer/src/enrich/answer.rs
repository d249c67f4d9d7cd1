//! A cached enrichment answer (the fields a user-agent parse or a GeoIP/ASN lookup adds) and how it goes
//! into an event.
//!
//! Merging the answer into the event's target object deep-copies it: a dozen strings and maps per event,
//! then their serialisation in the bulk body. That was most of the enrichment's cost, more than the
//! lookups. So the answer also keeps, built once on first use, the finished target object (what was there
//! before, plus the answer) as a [`SharedObject`]: when the next event's target object is the same as that
//! first one's (for the ECS defaults it is: `user_agent` holds only `original`, the cache key; `source`
//! holds `address` and `ip`, from the cached address), the event gets the finished object by reference,
//! and its JSON is copied into the bulk body as bytes. Any other event is merged as before.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::event::{Event, FieldRef, SharedObject};

#[derive(Debug, Default)]
pub struct Answer {
    fields: Map<String, Value>,
    /// From the first event this answer went into: the target object before the merge, and after it.
    finished: OnceLock<Finished>,
}

#[derive(Debug)]
struct Finished {
    before: Option<Value>,
    object: Arc<SharedObject>,
    /// The object's key and `before`, when that is an object of strings, for
    /// [`Answer::shared_if_before_strings`].
    strings: Option<Strings>,
}

/// A key and the members of an object of strings (in key order) in one buffer, each string after its
/// length. [`Answer::shared_if_before_strings`] compares an event's strings with it, reading one run of
/// memory: reading them from the first event's map and the shared object touched a tree node and two
/// strings per member, each likely cold in a cache of many answers (`perf` put that check at 5 % of the
/// indexer's CPU, where callgrind counted 460 instructions per event).
#[derive(Debug)]
struct Strings(Box<[u8]>);

impl Strings {
    /// `None` when `before` is not an object of strings.
    fn of(key: &str, before: Option<&Value>) -> Option<Self> {
        let mut buffer = Vec::new();
        let mut put = |s: &str| {
            buffer.extend_from_slice(&s.len().to_le_bytes());
            buffer.extend_from_slice(s.as_bytes());
        };
        put(key);
        for (k, v) in before?.as_object()? {
            put(k);
            put(v.as_str()?);
        }
        Some(Self(buffer.into_boxed_slice()))
    }

    /// Whether this is `key` and the members `strings`.
    fn is(&self, key: &str, strings: &[(&str, &str)]) -> bool {
        let mut rest = &*self.0;
        let mut next = |s: &str| match rest.split_first_chunk::<{ usize::BITS as usize / 8 }>() {
            Some((len, tail)) if usize::from_le_bytes(*len) == s.len() && tail.starts_with(s.as_bytes()) => {
                rest = &tail[s.len()..];
                true
            }
            _ => false,
        };
        next(key) && strings.iter().all(|(k, v)| next(k) && next(v)) && rest.is_empty()
    }
}

impl Answer {
    pub fn new(fields: Map<String, Value>) -> Arc<Self> {
        Arc::new(Self { fields, finished: OnceLock::new() })
    }

    /// The fields this answer adds.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// Merges the answer into the object at `target` (made if missing; a non-object there is replaced),
    /// as [`Event::merge_into`] does; by reference when the target is a top-level object that was
    /// the same in the event this answer first went into.
    pub fn merge_into(&self, event: &mut Event, target: &FieldRef) {
        let [key] = target.parts() else { return event.merge_into(target.parts(), &self.fields) };
        let before = event.get_path(target.parts());
        let finished = self.finished.get_or_init(|| self.finish(key, before.cloned()));
        if finished.before.as_ref() == before {
            event.insert_shared(finished.object.clone());
        } else {
            event.merge_into(target.parts(), &self.fields);
        }
    }

    /// The finished top-level object `key` for [`Answer::merge_into`] to put in by reference, for an
    /// event whose `key` (not yet in the event) would be an object of the strings `before` (in key
    /// order), found without building or parsing that object: `Some` when it is the object the first
    /// event held, `None` otherwise (the caller then merges as for any event).
    pub fn shared_if_before_strings(&self, key: &str, before: &[(&str, &str)]) -> Option<Arc<SharedObject>> {
        let f = self.finished.get_or_init(|| {
            let object = before.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
            self.finish(key, Some(Value::Object(object)))
        });
        f.strings.as_ref().is_some_and(|s| s.is(key, before)).then(|| f.object.clone())
    }

    /// The finished object at `key`: `before`, with the answer's fields merged in.
    fn finish(&self, key: &str, before: Option<Value>) -> Finished {
        let mut object = before.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
        object.extend(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        let strings = Strings::of(key, before.as_ref());
        Finished { before, object: SharedObject::new(key, object), strings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        Event::from_map(v.as_object().unwrap().clone())
    }

    fn json(e: &Event) -> String {
        let mut out = Vec::new();
        e.write_json(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_document_by_reference_or_by_merge() {
        let answer =
            Answer::new(json!({"geo": {"city_name": "Paris"}, "as": {"number": 3215}}).as_object().unwrap().clone());
        let source = FieldRef::parse("source").unwrap();
        let raw = json!({"@timestamp": "t", "source": {"address": "1.1.1.1", "ip": "1.1.1.1"}, "url": {"path": "/"}});
        let want = json!({"@timestamp": "t", "url": {"path": "/"},
            "source": {"address": "1.1.1.1", "ip": "1.1.1.1", "geo": {"city_name": "Paris"}, "as": {"number": 3215}}});
        for _ in 0..2 {
            let mut e = event(raw.clone());
            answer.merge_into(&mut e, &source);
            assert_eq!(json(&e), serde_json::to_string(&want).unwrap());
            assert_eq!(e.get_path(&["source", "geo", "city_name"]), Some(&json!("Paris")));
            assert!(e.contains_key("source"));
        }
        // A different object before: merged, keeping what it held.
        let mut e = event(json!({"source": {"ip": "1.1.1.1", "port": 5}}));
        answer.merge_into(&mut e, &source);
        assert_eq!(
            json(&e),
            r#"{"source":{"as":{"number":3215},"geo":{"city_name":"Paris"},"ip":"1.1.1.1","port":5}}"#
        );
        // Writing under a shared object copies it first; the next event still gets the original.
        let mut e = event(raw.clone());
        answer.merge_into(&mut e, &source);
        e.insert_path(&["source", "geo", "city_name"], json!("Lyon"));
        e.remove_path(&["source", "as"]);
        assert_eq!(e.get_path(&["source", "geo"]), Some(&json!({"city_name": "Lyon"})));
        assert_eq!(
            e.clone().into_map()["source"],
            json!({"address": "1.1.1.1", "ip": "1.1.1.1", "geo": {"city_name": "Lyon"}})
        );
        let mut again = event(raw.clone());
        answer.merge_into(&mut again, &source);
        assert_eq!(json(&again), serde_json::to_string(&want).unwrap());
        // Replacing the shared object whole drops it from the event, not from the cache.
        again.insert_path(&["source"], json!("gone"));
        assert_eq!(json(&again), r#"{"@timestamp":"t","source":"gone","url":{"path":"/"}}"#);
        let mut third = event(raw.clone());
        answer.merge_into(&mut third, &source);
        assert_eq!(json(&third), serde_json::to_string(&want).unwrap());
        // A deeper target is always merged.
        let mut e = event(json!({"client": {"source": {"ip": "1.1.1.1"}}}));
        answer.merge_into(&mut e, &FieldRef::parse("[client][source]").unwrap());
        assert_eq!(e.get_path(&["client", "source", "as", "number"]), Some(&json!(3215)));
    }

    #[test]
    fn shared_entries_are_written_in_key_order() {
        let answer = Answer::new(json!({"name": "curl"}).as_object().unwrap().clone());
        let ua = FieldRef::parse("user_agent").unwrap();
        for raw in
            [json!({}), json!({"a": 1}), json!({"z": 1}), json!({"a": 1, "user_agent": {"original": "x"}, "z": [2]})]
        {
            let mut e = event(raw.clone());
            answer.merge_into(&mut e, &ua);
            let mut merged = event(raw);
            merged.merge_into(&["user_agent"], answer.fields());
            assert_eq!(json(&e), serde_json::to_string(&merged.into_map()).unwrap());
        }
    }

    #[test]
    fn strings_match_exactly() {
        let before = json!({"address": "10.0.0.1", "ip": "10.0.0.1"});
        let strings = Strings::of("source", Some(&before)).unwrap();
        assert!(strings.is("source", &[("address", "10.0.0.1"), ("ip", "10.0.0.1")]));
        for (key, members) in [
            ("sourc", &[("address", "10.0.0.1"), ("ip", "10.0.0.1")][..]),
            ("source", &[("address", "10.0.0.1")]),
            ("source", &[("address", "10.0.0.1"), ("ip", "10.0.0.2")]),
            ("source", &[("address", "10.0.0.1"), ("ipx", "10.0.0.1")]),
            ("source", &[("addres", "s10.0.0.1"), ("ip", "10.0.0.1")]),
            ("source", &[("address", "10.0.0.1"), ("ip", "10.0.0.1"), ("x", "")]),
        ] {
            assert!(!strings.is(key, members), "{key} {members:?}");
        }
        assert!(Strings::of("source", Some(&json!({"port": 1}))).is_none());
        assert!(Strings::of("source", Some(&json!("x"))).is_none());
        assert!(Strings::of("source", None).is_none());
        assert!(Strings::of("k", Some(&json!({}))).unwrap().is("k", &[]));
    }
}
