//! The value-changing operations of `mutate`, in Logstash's order after `replace`: `convert`, `gsub`,
//! `uppercase`, `lowercase`. Each works on a string (or number/boolean for `convert`) or on every item
//! of a list; objects and missing fields are left alone.
//!
//! `convert` follows Logstash: `integer` and `float` read the leading number of a string (commas are
//! thousands separators, `"3.7"` is 3, text without a number is 0) and take `true`/`false` as 1/0;
//! `boolean` takes `true t yes y 1 1.0` and `false f no n 0 0.0` (any case; `""` is false) and leaves
//! other values as they are; `string` writes any value as text.

use std::borrow::Cow;

use regex::Regex;
use serde_json::{Number, Value};

use crate::event::{Event, FieldRef};

/// A `convert` target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Integer,
    Float,
    String,
    Boolean,
}

impl Conversion {
    /// `integer`, `float`, `string` or `boolean`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "integer" => Self::Integer,
            "float" => Self::Float,
            "string" => Self::String,
            "boolean" => Self::Boolean,
            _ => return None,
        })
    }

    fn convert(self, value: &mut Value) {
        let new = match (self, &*value) {
            (_, Value::Object(_) | Value::Null | Value::Array(_)) => return,
            (Self::String, Value::String(_)) => return,
            (Self::String, other) => Value::String(other.to_string()),
            (Self::Integer, Value::Bool(b)) => Value::from(i64::from(*b)),
            (Self::Integer, Value::Number(n)) if n.is_f64() => Value::from(n.as_f64().unwrap_or(0.0).trunc() as i64),
            (Self::Integer, Value::Number(_)) => return,
            (Self::Integer, Value::String(s)) => Value::from(leading_integer(&s.replace(',', ""))),
            (Self::Float, Value::Bool(b)) => float(f64::from(u8::from(*b))),
            (Self::Float, Value::Number(n)) => float(n.as_f64().unwrap_or(0.0)),
            (Self::Float, Value::String(s)) => float(leading_float(&s.replace(',', ""))),
            (Self::Boolean, Value::Bool(_)) => return,
            (Self::Boolean, Value::Number(n)) => match boolean(&n.to_string()) {
                Some(b) => Value::Bool(b),
                None => return,
            },
            (Self::Boolean, Value::String(s)) => match boolean(s) {
                Some(b) => Value::Bool(b),
                None => return,
            },
        };
        *value = new;
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Ruby's `String#to_i`: optional spaces and sign, then digits (and `_` between them); 0 if none.
fn leading_integer(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for c in digits.chars().take_while(|c| c.is_ascii_digit() || *c == '_').filter(char::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(c as u8 - b'0'));
    }
    if negative {
        -n
    } else {
        n
    }
}

/// Ruby's `String#to_f`: the longest leading decimal number (sign, digits, fraction, exponent); 0.0 if
/// none.
fn leading_float(s: &str) -> f64 {
    let s = s.trim_start();
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut end = digits(usize::from(matches!(b.first(), Some(b'-' | b'+'))));
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'-' | b'+')));
        if b.get(end + 1 + sign).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1 + sign);
        }
    }
    s[..end].parse::<f64>().ok().filter(|f| f.is_finite()).unwrap_or(0.0)
}

fn boolean(s: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "t", "yes", "y", "1", "1.0"];
    const FALSE: [&str; 6] = ["false", "f", "no", "n", "0", "0.0"];
    if s.is_empty() || FALSE.iter().any(|f| f.eq_ignore_ascii_case(s)) {
        Some(false)
    } else if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(true)
    } else {
        None
    }
}

/// One `gsub` rule: every match of `pattern` in the field becomes `replacement` (`$1`, `${name}` refer
/// to groups).
#[derive(Debug, Clone)]
pub struct Gsub {
    pub field: FieldRef,
    pub pattern: Regex,
    pub replacement: String,
}

#[derive(Debug, Clone, Default)]
pub struct MutateValues {
    pub convert: Vec<(FieldRef, Conversion)>,
    pub gsub: Vec<Gsub>,
    pub uppercase: Vec<FieldRef>,
    pub lowercase: Vec<FieldRef>,
}

/// Calls `change` on the value at `field`, or on each item if it is a list.
fn each(event: &mut Event, field: &FieldRef, mut change: impl FnMut(&mut Value)) {
    match event.get_mut(field) {
        Some(Value::Array(items)) => items.iter_mut().for_each(change),
        Some(value) => change(value),
        None => {}
    }
}

/// Calls `change` on each string at `field`; a `Some` result replaces the string.
fn each_string(event: &mut Event, field: &FieldRef, mut change: impl FnMut(&str) -> Option<String>) {
    each(event, field, |v| {
        if let Value::String(s) = v {
            if let Some(new) = change(s) {
                *s = new;
            }
        }
    })
}

impl MutateValues {
    pub fn is_empty(&self) -> bool {
        self.convert.is_empty() && self.gsub.is_empty() && self.uppercase.is_empty() && self.lowercase.is_empty()
    }

    pub fn apply(&self, event: &mut Event) {
        for (field, to) in &self.convert {
            each(event, field, |v| to.convert(v));
        }
        for g in &self.gsub {
            each_string(event, &g.field, |s| match g.pattern.replace_all(s, g.replacement.as_str()) {
                Cow::Borrowed(_) => None,
                Cow::Owned(new) => Some(new),
            });
        }
        for field in &self.uppercase {
            each_string(event, field, |s| s.chars().any(char::is_lowercase).then(|| s.to_uppercase()));
        }
        for field in &self.lowercase {
            each_string(event, field, |s| s.chars().any(char::is_uppercase).then(|| s.to_lowercase()));
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

    fn converted(to: &str, value: Value) -> Value {
        let m = MutateValues { convert: vec![(f("v"), Conversion::parse(to).unwrap())], ..Default::default() };
        let mut e = Event::from_map(json!({ "v": value }).as_object().unwrap().clone());
        m.apply(&mut e);
        e.into_map()["v"].clone()
    }

    #[test]
    fn convert_follows_logstash() {
        for (to, from, want) in [
            ("integer", json!("1,234"), json!(1234)),
            ("integer", json!("3.7"), json!(3)),
            ("integer", json!("-12abc"), json!(-12)),
            ("integer", json!("-"), json!(0)),
            ("integer", json!(true), json!(1)),
            ("integer", json!(9.9), json!(9)),
            ("integer", json!(["1", "2"]), json!([1, 2])),
            ("float", json!("2.5"), json!(2.5)),
            ("float", json!("1,000.5kg"), json!(1000.5)),
            ("float", json!("x"), json!(0.0)),
            ("float", json!(3), json!(3.0)),
            ("string", json!(200), json!("200")),
            ("string", json!(false), json!("false")),
            ("boolean", json!("YES"), json!(true)),
            ("boolean", json!("0.0"), json!(false)),
            ("boolean", json!(""), json!(false)),
            ("boolean", json!(1), json!(true)),
            ("boolean", json!("maybe"), json!("maybe")),
            ("integer", json!({"a": "1"}), json!({"a": "1"})),
        ] {
            assert_eq!(converted(to, from.clone()), want, "{to} {from}");
        }
        assert_eq!(Conversion::parse("int"), None);
    }

    #[test]
    fn gsub_then_case_on_strings_and_lists() {
        let m = MutateValues {
            gsub: vec![
                Gsub { field: f("path"), pattern: Regex::new("/+").unwrap(), replacement: "_".into() },
                Gsub { field: f("name"), pattern: Regex::new(r"(\w+)@(\w+)").unwrap(), replacement: "$2:$1".into() },
            ],
            uppercase: vec![f("level")],
            lowercase: vec![f("[host][name]"), f("missing")],
            ..Default::default()
        };
        let mut e = Event::from_map(
            json!({"path": "/a//b", "name": ["bob@web", 3], "level": "warn", "host": {"name": "WEB-01"}})
                .as_object()
                .unwrap()
                .clone(),
        );
        m.apply(&mut e);
        assert_eq!(
            Value::Object(e.into_map()),
            json!({"path": "_a_b", "name": ["web:bob", 3], "level": "WARN", "host": {"name": "web-01"}})
        );
    }
}
