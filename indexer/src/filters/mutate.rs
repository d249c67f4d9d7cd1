//! The `mutate` filter, in Logstash's order: `rename`, `replace`, `convert`/`gsub`/`uppercase`/`lowercase`
//! (in `mutate_values.rs`), then the common options `add_field`, `remove_field`, `add_tag`, `remove_tag`. Values of `add_field`/`replace` are sprintf templates
//! (`%{[host][name]}`), rendered in UTC.

use chrono_tz::Tz;
use serde_json::Value;

use super::mutate_values::MutateValues;
use super::Filter;
use crate::event::{Event, FieldRef};
use crate::template::Template;

#[derive(Debug, Default, Clone)]
pub struct Mutate {
    /// (from, to): moves a value; missing sources are skipped.
    pub rename: Vec<(FieldRef, FieldRef)>,
    /// Sets the field, replacing any value.
    pub replace: Vec<(FieldRef, Template)>,
    /// `convert`, `gsub`, `uppercase`, `lowercase`.
    pub values: MutateValues,
    /// Sets the field; if it already has a value the two become a list, as in Logstash.
    pub add_field: Vec<(FieldRef, Template)>,
    pub remove_field: Vec<FieldRef>,
    pub add_tag: Vec<String>,
    pub remove_tag: Vec<String>,
}

impl Filter for Mutate {
    fn apply(&self, event: &mut Event) {
        for (from, to) in &self.rename {
            if let Some(v) = event.remove(from) {
                event.insert(to, v);
            }
        }
        for (field, template) in &self.replace {
            let value = template.render_to_string(event, Tz::UTC);
            event.insert(field, Value::String(value));
        }
        if !self.values.is_empty() {
            self.values.apply(event);
        }
        for (field, template) in &self.add_field {
            let value = Value::String(template.render_to_string(event, Tz::UTC));
            let merged = match event.remove(field) {
                None => value,
                Some(Value::Array(mut list)) => {
                    list.push(value);
                    Value::Array(list)
                }
                Some(old) => Value::Array(vec![old, value]),
            };
            event.insert(field, merged);
        }
        for field in &self.remove_field {
            event.remove(field);
        }
        self.add_tag.iter().for_each(|t| event.add_tag(t));
        self.remove_tag.iter().for_each(|t| event.remove_tag(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> FieldRef {
        FieldRef::parse(s).unwrap()
    }

    #[test]
    fn operations_in_logstash_order() {
        let m = Mutate {
            rename: vec![(f("old"), f("[new][place]")), (f("missing"), f("x"))],
            replace: vec![(f("r"), Template::parse("%{[new][place]}!").unwrap())],
            values: MutateValues::default(),
            add_field: vec![
                (f("a"), Template::parse("v2").unwrap()),
                (f("b"), Template::parse("%{[host][name]}").unwrap()),
            ],
            remove_field: vec![f("gone"), f("[new][place]")],
            add_tag: vec!["t1".into()],
            remove_tag: vec!["drop".into()],
        };
        let mut e = Event::from_map(
            json!({"old": "o", "a": "v1", "gone": 1, "host": {"name": "web-01"}, "tags": ["drop", "keep"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        m.apply(&mut e);
        assert_eq!(
            serde_json::Value::Object(e.into_map()),
            json!({"new": {}, "r": "o!", "a": ["v1", "v2"], "b": "web-01", "host": {"name": "web-01"}, "tags": ["keep", "t1"]})
        );
    }
}
