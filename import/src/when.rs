//! logpipe's `when` conditions (`{ tag = "x" }`, `{ field = "[f]", equals = v }`, `and`/`or`/`not`), as
//! the translators build them from Logstash conditionals and Filebeat/Flume routing.

use crate::draft::{inline, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum When {
    Tag(String),
    Exists(String),
    Equals(String, Value),
    Matches(String, String),
    And(Vec<When>),
    Or(Vec<When>),
    Not(Box<When>),
}

impl When {
    /// All of `items`, flattened; `None` when there are none (always true).
    pub fn all(items: impl IntoIterator<Item = When>) -> Option<When> {
        let mut flat = Vec::new();
        for w in items {
            match w {
                When::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(When::And(flat)),
        }
    }

    pub fn any(items: Vec<When>) -> When {
        let mut flat = Vec::new();
        for w in items {
            match w {
                When::Or(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        if flat.len() == 1 {
            flat.pop().expect("one")
        } else {
            When::Or(flat)
        }
    }

    pub fn negate(self) -> When {
        match self {
            When::Not(inner) => *inner,
            other => When::Not(Box::new(other)),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            When::Tag(t) => inline([("tag", t.as_str())]),
            When::Exists(f) => inline([("exists", f.as_str())]),
            When::Equals(f, v) => inline([("field", Value::String(f.clone())), ("equals", v.clone())]),
            When::Matches(f, re) => inline([("field", f.as_str()), ("matches", re.as_str())]),
            When::And(items) => inline([("and", Value::Array(items.iter().map(When::to_value).collect()))]),
            When::Or(items) => inline([("or", Value::Array(items.iter().map(When::to_value).collect()))]),
            When::Not(inner) => inline([("not", inner.to_value())]),
        }
    }
}
