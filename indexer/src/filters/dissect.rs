//! `type = "dissect"`: what Logstash's `dissect` filter does: split a field by the literal text between
//! `%{…}` fields, without regexes. `mapping = { message = "%{ts} %{+ts} %{level->} %{msg}" }`.
//!
//! Field syntax, as in Logstash: `%{name}` (or `%{[a][b]}`) sets a field; `%{}` and `%{?name}` skip;
//! `%{+name}` appends to `name` with `append_separator` (default a space), `%{+name/2}` in that order;
//! `%{?key}` with `%{&key}` sets the field named by the first's value to the second's; a `->` suffix
//! skips repeats of the text after the field (padding). The last field takes the rest of the line.
//! A line that does not fit is tagged `_dissectfailure` and left as it was.

use std::fmt;

use serde_json::Value;

use super::Filter;
use crate::event::{Event, FieldRef};

/// Tag on events a dissect pattern did not fit.
pub const DISSECT_FAILURE: &str = "_dissectfailure";

/// A pattern that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

/// One `%{…}` and the text that must follow it (empty for the last: the rest of the line).
#[derive(Debug, Clone)]
struct Step {
    delimiter: String,
    pad: bool,
}

/// Where captured values go.
#[derive(Debug, Clone)]
enum Output {
    /// The steps' values, joined by the separator when there are several (`%{a} %{+a}`).
    Set { field: FieldRef, steps: Vec<usize> },
    /// `%{?key}` … `%{&key}`: the field named by one step's value gets the other's.
    Indirect { name_step: usize, value_step: usize },
}

/// One compiled pattern for one source field.
#[derive(Debug, Clone)]
pub struct Dissection {
    source: FieldRef,
    prefix: String,
    steps: Vec<Step>,
    outputs: Vec<Output>,
}

/// A field as written between `%{` and `}`.
struct Spec<'p> {
    modifier: Option<char>,
    name: &'p str,
    ordinal: Option<u32>,
    pad: bool,
}

fn spec(inner: &str) -> Result<Spec<'_>, PatternError> {
    let (inner, pad) = match inner.strip_suffix("->") {
        Some(rest) => (rest, true),
        None => (inner, false),
    };
    let (modifier, name) = match inner.chars().next() {
        Some(c @ ('+' | '?' | '&' | '*')) => (Some(c), &inner[1..]),
        _ => (None, inner),
    };
    let (name, ordinal) = match (modifier, name.rsplit_once('/')) {
        (Some('+'), Some((name, n))) => {
            let n =
                n.parse().map_err(|_| PatternError(format!("%{{{inner}}}: the order after '/' must be a number")))?;
            (name, Some(n))
        }
        _ => (name, None),
    };
    if name.is_empty() && modifier.is_some() {
        return Err(PatternError(format!("%{{{inner}}}: the modifier needs a field name")));
    }
    Ok(Spec { modifier, name, ordinal, pad })
}

impl Dissection {
    /// Compiles `pattern` for the text in `source`.
    pub fn new(source: FieldRef, pattern: &str) -> Result<Self, PatternError> {
        let field = |name: &str| FieldRef::parse(name).map_err(|e| PatternError(format!("%{{{name}}}: {e}")));
        let (prefix, mut rest) = match pattern.find("%{") {
            Some(at) => (pattern[..at].to_string(), &pattern[at..]),
            None => return Err(PatternError("has no %{field}".into())),
        };
        let mut steps = Vec::new();
        // (field, ordinal, step) of every value that lands in a named field, in pattern order.
        let mut sets: Vec<(String, u32, usize)> = Vec::new();
        let mut keys: Vec<(String, usize)> = Vec::new();
        let mut refs: Vec<(String, usize)> = Vec::new();
        while let Some(open) = rest.strip_prefix("%{") {
            let close = open.find('}').ok_or_else(|| PatternError("a %{ is not closed by }".into()))?;
            let spec = spec(&open[..close])?;
            rest = &open[close + 1..];
            let end = rest.find("%{").unwrap_or(rest.len());
            let delimiter = &rest[..end];
            rest = &rest[end..];
            if delimiter.is_empty() && !rest.is_empty() {
                return Err(PatternError(format!(
                    "%{{{}}} is followed directly by another field: dissect needs text between fields",
                    &open[..close]
                )));
            }
            let step = steps.len();
            steps.push(Step { delimiter: delimiter.to_string(), pad: spec.pad });
            match spec.modifier {
                _ if spec.name.is_empty() => {}
                None => sets.push((spec.name.to_string(), 0, step)),
                Some('+') => sets.push((spec.name.to_string(), spec.ordinal.unwrap_or(0), step)),
                Some('?' | '*') => keys.push((spec.name.to_string(), step)),
                Some(_) => refs.push((spec.name.to_string(), step)),
            }
        }
        let mut outputs: Vec<Output> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (name, _, _) in &sets {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        for name in names {
            let mut parts: Vec<(u32, usize)> =
                sets.iter().filter(|(n, _, _)| n == name).map(|(_, ordinal, step)| (*ordinal, *step)).collect();
            parts.sort_by_key(|(ordinal, _)| *ordinal);
            outputs.push(Output::Set { field: field(name)?, steps: parts.into_iter().map(|(_, s)| s).collect() });
        }
        for (name, value_step) in refs {
            let Some((_, name_step)) = keys.iter().find(|(k, _)| *k == name) else {
                return Err(PatternError(format!("%{{&{name}}} needs a %{{?{name}}} that names the field")));
            };
            outputs.push(Output::Indirect { name_step: *name_step, value_step });
        }
        Ok(Self { source, prefix, steps, outputs })
    }

    /// The byte range of each step's value in `text`, or `None` if the text does not fit.
    fn split(&self, text: &str, ranges: &mut Vec<(usize, usize)>) -> Option<()> {
        let mut at = self.prefix.len();
        if !text.starts_with(&self.prefix) {
            return None;
        }
        for step in &self.steps {
            if step.delimiter.is_empty() {
                ranges.push((at, text.len()));
                at = text.len();
                continue;
            }
            let found = at + text[at..].find(&step.delimiter)?;
            ranges.push((at, found));
            at = found + step.delimiter.len();
            if step.pad {
                while text[at..].starts_with(&step.delimiter) {
                    at += step.delimiter.len();
                }
            }
        }
        Some(())
    }

    /// Applies the pattern; `false` if the source is missing or does not fit.
    fn apply(&self, event: &mut Event, separator: &str) -> bool {
        let Some(text) = event.get_str(&self.source) else { return false };
        let mut ranges = Vec::with_capacity(self.steps.len());
        if self.split(text, &mut ranges).is_none() {
            return false;
        }
        let value = |step: usize| &text[ranges[step].0..ranges[step].1];
        let mut found: Vec<(Option<&FieldRef>, String, Value)> = Vec::with_capacity(self.outputs.len());
        for output in &self.outputs {
            match output {
                Output::Set { field, steps } => {
                    let joined = match steps.as_slice() {
                        [one] => value(*one).to_string(),
                        many => many.iter().map(|s| value(*s)).collect::<Vec<_>>().join(separator),
                    };
                    found.push((Some(field), String::new(), Value::String(joined)));
                }
                Output::Indirect { name_step, value_step } => {
                    let name = value(*name_step);
                    if !name.is_empty() {
                        found.push((None, name.to_string(), Value::String(value(*value_step).to_string())));
                    }
                }
            }
        }
        for (field, name, value) in found {
            match field {
                Some(field) => event.insert(field, value),
                None => event.insert_path(&[name], value),
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
pub struct Dissect {
    pub dissections: Vec<Dissection>,
    /// Between the parts of an appended field. Default a space.
    pub append_separator: String,
    pub tag_on_failure: Vec<String>,
}

impl Dissect {
    pub fn new(dissections: Vec<Dissection>) -> Self {
        Self { dissections, append_separator: " ".into(), tag_on_failure: vec![DISSECT_FAILURE.into()] }
    }
}

impl Filter for Dissect {
    fn apply(&self, event: &mut Event) {
        for d in &self.dissections {
            if !d.apply(event, &self.append_separator) {
                self.tag_on_failure.iter().for_each(|t| event.add_tag(t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dissect(pattern: &str, message: &str) -> Value {
        let d = Dissect::new(vec![Dissection::new(FieldRef::parse("message").unwrap(), pattern).unwrap()]);
        let mut e = Event::from_map(json!({ "message": message }).as_object().unwrap().clone());
        d.apply(&mut e);
        let mut map = e.into_map();
        map.remove("message");
        Value::Object(map)
    }

    #[test]
    fn fields_skips_and_the_rest_of_the_line() {
        assert_eq!(
            dissect("%{ts} [%{[log][level]}] %{} %{?ignored}: %{msg}", "10:00 [WARN] x y: disk almost full"),
            json!({"ts": "10:00", "log": {"level": "WARN"}, "msg": "disk almost full"})
        );
    }

    #[test]
    fn append_in_order_and_padding() {
        assert_eq!(
            dissect("%{+ts/2} %{+ts/1} %{level->} %{msg}", "10:00:00 2026-12-04 INFO     started"),
            json!({"ts": "2026-12-04 10:00:00", "level": "INFO", "msg": "started"})
        );
        assert_eq!(dissect("%{a} %{+a} %{+a}|%{b}", "x y z|w"), json!({"a": "x y z", "b": "w"}));
    }

    #[test]
    fn indirect_field_names() {
        assert_eq!(
            dissect("%{?k}=%{&k} %{?k2}=%{&k2}", "user=bob role=admin"),
            json!({"user": "bob", "role": "admin"})
        );
    }

    #[test]
    fn a_prefix_and_text_that_does_not_fit_tag_the_event() {
        assert_eq!(dissect("<%{pri}>%{msg}", "<13>hello"), json!({"pri": "13", "msg": "hello"}));
        assert_eq!(dissect("<%{pri}>%{msg}", "13 hello"), json!({"tags": [DISSECT_FAILURE]}));
        assert_eq!(dissect("%{a} %{b} %{c}", "only two"), json!({"tags": [DISSECT_FAILURE]}));
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = |p: &str| Dissection::new(FieldRef::parse("m").unwrap(), p).unwrap_err().to_string();
        assert!(err("no fields").contains("has no %{field}"));
        assert!(err("%{a").contains("not closed"));
        assert!(err("%{a}%{b}").contains("text between fields"));
        assert!(err("%{&k} %{x}").contains("%{?k}"));
        assert!(err("%{+a/x} %{b}").contains("number"));
        assert!(err("%{[a} %{b}").contains("%{[a}"));
    }
}
