//! Turning a Kafka record value into an [`Event`], as Logstash's `json` and `plain` codecs do. Decoding
//! never fails and never drops: a record that is not a JSON object keeps its raw text in `message` and is
//! tagged `_jsonparsefailure`, so it is indexed and can be found.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{format_timestamp, Event, TIMESTAMP};

/// Tag on events whose record was not a JSON object under the `json` codec.
pub const JSON_PARSE_FAILURE: &str = "_jsonparsefailure";

/// Tag on events whose `@timestamp` was not an RFC 3339 time, as Logstash tags them.
pub const TIMESTAMP_PARSE_FAILURE: &str = "_timestampparsefailure";

/// Where such an event's `@timestamp` goes, as in Logstash.
const TIMESTAMP_FAILURE_FIELD: &str = "_@timestamp";

/// How record values become events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// A JSON object per record: the agent's envelope, Filebeat's, or any other.
    #[default]
    Json,
    /// The record value (UTF-8, invalid bytes replaced) becomes `message`.
    Plain,
}

impl Codec {
    /// Decodes one record value. `stamp` (the record's Kafka timestamp) fills `@timestamp` when the record
    /// has none; one that is not a time (epoch milliseconds, no zone, any text) moves to `_@timestamp` and
    /// the event is tagged `_timestampparsefailure`, as Logstash does. Without that, its daily index would
    /// be named after the template's text (`nginx-%{+YYYY.MM.dd}`), which Elasticsearch refuses.
    pub fn decode(self, value: &[u8], stamp: DateTime<Utc>) -> Event {
        let mut event = match self {
            // Entries kept as JSON text until a filter uses them, unless the record must be parsed whole.
            Codec::Json => {
                Event::from_json_text(value).unwrap_or_else(|| match serde_json::from_slice::<Value>(value) {
                    Ok(Value::Object(map)) => Event::from_map(map),
                    _ => {
                        let mut event = plain(value);
                        event.add_tag(JSON_PARSE_FAILURE);
                        event
                    }
                })
            }
            Codec::Plain => plain(value),
        };
        if event.timestamp().is_none() {
            // `null` counts as none, as in Logstash.
            if let Some(unreadable) = event.remove_path(&[TIMESTAMP]).filter(|v| !v.is_null()) {
                event.insert_path(&[TIMESTAMP_FAILURE_FIELD], unreadable);
                event.add_tag(TIMESTAMP_PARSE_FAILURE);
            }
            event.insert_path(&[TIMESTAMP], Value::String(format_timestamp(stamp)));
        }
        event
    }
}

fn plain(value: &[u8]) -> Event {
    let mut map = Map::new();
    map.insert("message".into(), Value::String(String::from_utf8_lossy(value).into_owned()));
    Event::from_map(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T08:15:30.5Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn json_envelope_is_kept_as_is() {
        let raw =
            br#"{"@timestamp":"2026-11-21T08:15:30.123Z","message":"GET /","tags":["access"],"event":{"id":"ab"}}"#;
        let e = Codec::Json.decode(raw, now());
        assert_eq!(e.as_map()["@timestamp"], json!("2026-11-21T08:15:30.123Z"));
        assert!(e.has_tag("access"));
        assert_eq!(e.get_path(&["event", "id"]), Some(&json!("ab")));
    }

    #[test]
    fn an_unreadable_timestamp_is_kept_aside_and_tagged_as_in_logstash() {
        for (raw, kept) in [
            (&br#"{"@timestamp":1795250130123,"message":"a"}"#[..], json!(1795250130123_i64)),
            (br#"{"@timestamp":"2026-11-21T08:15:30","message":"a"}"#, json!("2026-11-21T08:15:30")),
            (br#"{"@timestamp":"yesterday","message":"a"}"#, json!("yesterday")),
        ] {
            let e = Codec::Json.decode(raw, now());
            assert_eq!(e.as_map()["@timestamp"], json!("2026-11-21T08:15:30.500Z"), "{raw:?}");
            assert_eq!(e.as_map()["_@timestamp"], kept);
            assert!(e.has_tag(TIMESTAMP_PARSE_FAILURE), "{raw:?}");
            assert_eq!(e.as_map()["message"], json!("a"));
        }
        // `null` counts as none, as in Logstash.
        let e = Codec::Json.decode(br#"{"@timestamp":null}"#, now());
        assert!(!e.has_tag(TIMESTAMP_PARSE_FAILURE) && !e.contains_key("_@timestamp"));
        assert_eq!(e.timestamp(), Some(now()));
        let e = Codec::Json.decode(br#"{"@timestamp":"2026-11-21T09:15:30.5+01:00"}"#, now());
        assert!(!e.has_tag(TIMESTAMP_PARSE_FAILURE) && !e.contains_key("_@timestamp"));
        assert_eq!(e.timestamp(), Some(now()));
    }

    #[test]
    fn malformed_json_keeps_raw_text_and_is_tagged() {
        for raw in [&b"{\"message\": \"cut"[..], b"[1,2]", b"42", b"", b"\xff\xfe{", b"nul\0byte"] {
            let e = Codec::Json.decode(raw, now());
            assert!(e.has_tag(JSON_PARSE_FAILURE), "{raw:?}");
            assert_eq!(e.as_map()["message"], json!(String::from_utf8_lossy(raw)));
            assert_eq!(e.as_map()["@timestamp"], json!("2026-11-21T08:15:30.500Z"));
        }
    }

    #[test]
    fn entries_kept_as_text_read_write_and_encode_as_if_parsed() {
        let raw = r#"{"message":"GET \"/\" \\ é","tags":["access"],"host":{"name":"web-01"},"event":{"id":"ab"},"@timestamp":"2026-11-21T08:15:30.123Z","n":[1,2.5,{"x":null}]}"#.as_bytes();
        assert!(Event::from_json_text(raw).is_some(), "kept as text");
        let lazy = Codec::Json.decode(raw, now());
        let eager = Event::from_map(serde_json::from_slice::<Value>(raw).unwrap().as_object().unwrap().clone());
        assert_eq!(lazy, eager);
        let json = |e: &Event| {
            let mut out = Vec::new();
            e.write_json(&mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(json(&lazy), serde_json::to_string(&eager.as_map()).unwrap());
        for mut e in [lazy, eager.clone()] {
            assert!(e.has_tag("access"));
            assert_eq!(e.get_path(&["host", "name"]), Some(&json!("web-01")));
            e.add_tag("x");
            e.insert_path(&["event", "kind"], json!("event"));
            e.insert_path(&["n"], json!(0));
            e.insert_path(&["url", "path"], json!("/"));
            assert_eq!(e.remove_path(&["host", "name"]), Some(json!("web-01")));
            e.set_timestamp(now());
            let want = json!({"@timestamp": "2026-11-21T08:15:30.500Z", "host": {}, "message": "GET \"/\" \\ é",
                "tags": ["access", "x"], "n": 0, "url": {"path": "/"},
                "event": {"id": "ab", "kind": "event", "created": "2026-11-21T08:15:30.123Z"}});
            assert_eq!(Value::Object(e.as_map().into_owned()), want);
            assert_eq!(json(&e), serde_json::to_string(&want).unwrap());
        }
        // A record with no @timestamp gets one either way.
        assert_eq!(Codec::Json.decode(br#"{"a":1}"#, now()).as_map()["@timestamp"], json!("2026-11-21T08:15:30.500Z"));
    }

    #[test]
    fn plain_takes_the_value_as_message() {
        let e = Codec::Plain.decode(b"{\"a\":1}", now());
        assert_eq!(e.as_map()["message"], json!("{\"a\":1}"));
        assert!(!e.has_tag(JSON_PARSE_FAILURE));
        assert_eq!(e.as_map().len(), 2);
    }
}
