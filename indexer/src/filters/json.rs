//! `type = "json"`: what Logstash's `json` filter does: parse the JSON text in `source` (default
//! `message`) and put the result under `target`, or, without a target, merge its keys into the event's
//! top level. Text that is not JSON (or, without a target, JSON that is not an object) is tagged
//! `_jsonparsefailure` unless `skip_on_invalid_json` is set; the event is kept either way.

use serde_json::Value;

use super::Filter;
use crate::event::{Event, FieldRef};

/// Tag on events whose `source` was not JSON.
pub const JSON_PARSE_FAILURE: &str = "_jsonparsefailure";

#[derive(Debug, Clone)]
pub struct Json {
    pub source: FieldRef,
    /// `None`: the object's keys go to the top level.
    pub target: Option<FieldRef>,
    /// Leave invalid JSON alone, without tagging.
    pub skip_on_invalid_json: bool,
    pub tag_on_failure: Vec<String>,
}

impl Json {
    pub fn new(source: FieldRef) -> Self {
        Self { source, target: None, skip_on_invalid_json: false, tag_on_failure: vec![JSON_PARSE_FAILURE.into()] }
    }

    fn fail(&self, event: &mut Event) {
        if !self.skip_on_invalid_json {
            self.tag_on_failure.iter().for_each(|t| event.add_tag(t));
        }
    }
}

impl Filter for Json {
    fn apply(&self, event: &mut Event) {
        let Some(text) = event.get_str(&self.source) else { return };
        let parsed = match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(_) => return self.fail(event),
        };
        match (&self.target, parsed) {
            (Some(target), value) => event.insert(target, value),
            (None, Value::Object(fields)) => {
                let map = event.as_map_mut();
                for (k, v) in fields {
                    map.insert(k, v);
                }
            }
            (None, _) => self.fail(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        Event::from_map(v.as_object().unwrap().clone())
    }

    fn f(s: &str) -> FieldRef {
        FieldRef::parse(s).unwrap()
    }

    #[test]
    fn merges_an_object_into_the_top_level() {
        let mut e = event(json!({"message": r#"{"user": {"id": 7}, "level": "warn"}"#, "level": "info"}));
        Json::new(f("message")).apply(&mut e);
        assert_eq!(e.as_map()["user"]["id"], json!(7));
        assert_eq!(e.as_map()["level"], json!("warn"));
        assert!(e.as_map().get("tags").is_none());
    }

    #[test]
    fn puts_any_value_under_a_target() {
        let mut e = event(json!({"payload": "[1, 2]"}));
        Json { target: Some(f("[doc][items]")), ..Json::new(f("payload")) }.apply(&mut e);
        assert_eq!(e.as_map()["doc"]["items"], json!([1, 2]));
    }

    #[test]
    fn tags_invalid_json_unless_skipped() {
        let mut e = event(json!({"message": "not json"}));
        Json::new(f("message")).apply(&mut e);
        assert_eq!(e.tags().collect::<Vec<_>>(), [JSON_PARSE_FAILURE]);
        assert_eq!(e.as_map()["message"], json!("not json"));

        let mut e = event(json!({"message": "[1]"}));
        Json { tag_on_failure: vec!["bad".into()], ..Json::new(f("message")) }.apply(&mut e);
        assert_eq!(e.tags().collect::<Vec<_>>(), ["bad"], "an array cannot merge into the top level");

        let mut e = event(json!({"message": "{oops"}));
        Json { skip_on_invalid_json: true, ..Json::new(f("message")) }.apply(&mut e);
        assert_eq!(e.tags().count(), 0);
    }

    #[test]
    fn a_missing_source_is_left_alone() {
        let mut e = event(json!({"other": 1}));
        Json::new(f("message")).apply(&mut e);
        assert_eq!(Value::Object(e.into_map()), json!({"other": 1}));
    }
}
