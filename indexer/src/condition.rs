//! Conditions, the `when` of filters and routes: Logstash's `if "access" in [tags]`, `[f] == "v"`,
//! `[f] =~ /re/`, `and`, `or`, `not`. Compiled once at load (regexes included).

use regex::Regex;
use serde_json::Value;

use crate::event::{Event, FieldRef};

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `tags` contains this tag.
    Tag(String),
    /// The field exists (any value, including null).
    Exists(FieldRef),
    /// The field equals this JSON value exactly (`200` and `"200"` differ).
    Equals(FieldRef, Value),
    /// The field is a string (or number, compared as its text) that the regex matches.
    Matches(FieldRef, Regex),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Condition::Tag(tag) => event.has_tag(tag),
            Condition::Exists(field) => event.get(field).is_some(),
            Condition::Equals(field, value) => event.get(field) == Some(value),
            Condition::Matches(field, re) => match event.get(field) {
                Some(Value::String(s)) => re.is_match(s),
                Some(Value::Number(n)) => re.is_match(&n.to_string()),
                _ => false,
            },
            Condition::And(all) => all.iter().all(|c| c.matches(event)),
            Condition::Or(any) => any.iter().any(|c| c.matches(event)),
            Condition::Not(c) => !c.matches(event),
        }
    }

    /// Whether the condition reads nothing but `tags`.
    pub fn reads_only_tags(&self) -> bool {
        match self {
            Condition::Tag(_) => true,
            Condition::Exists(_) | Condition::Equals(..) | Condition::Matches(..) => false,
            Condition::And(all) | Condition::Or(all) => all.iter().all(Condition::reads_only_tags),
            Condition::Not(c) => c.reads_only_tags(),
        }
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
    fn combinators() {
        let e = Event::from_map(
            json!({"tags": ["access"], "http": {"response": {"status_code": 404}}, "m": "GET /x"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(Condition::Tag("access".into()).matches(&e));
        assert!(!Condition::Tag("error".into()).matches(&e));
        assert!(Condition::Equals(f("[http][response][status_code]"), json!(404)).matches(&e));
        assert!(!Condition::Equals(f("[http][response][status_code]"), json!("404")).matches(&e));
        assert!(Condition::Matches(f("http.response.status_code"), Regex::new("^4").unwrap()).matches(&e));
        assert!(Condition::Matches(f("m"), Regex::new("^GET ").unwrap()).matches(&e));
        assert!(!Condition::Matches(f("nope"), Regex::new("").unwrap()).matches(&e));
        assert!(Condition::Exists(f("m")).matches(&e));
        let both = Condition::And(vec![
            Condition::Tag("access".into()),
            Condition::Not(Box::new(Condition::Tag("error".into()))),
        ]);
        assert!(both.matches(&e));
        assert!(Condition::Or(vec![Condition::Tag("x".into()), both]).matches(&e));
        assert!(!Condition::Or(vec![]).matches(&e));
        assert!(Condition::And(vec![]).matches(&e));
    }
}
