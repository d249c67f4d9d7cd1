//! Reading typed settings out of Logstash values, with an error that says what was expected and what
//! was found (the caller adds the file, line and column).

use super::ast::{Plugin, Value};

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Plugin(_) => "a plugin",
        Value::Bareword(_) => "a bareword",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Array(_) => "an array",
        Value::Hash(_) => "a hash",
    }
}

/// A scalar's text: strings, barewords and numbers.
pub fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.text.clone()),
        Value::Bareword(s) | Value::Number(s) => Ok(s.clone()),
        Value::Array(items) if items.len() == 1 => text(&items[0]),
        other => Err(format!("expected a string, found {}", kind(other))),
    }
}

/// A list of strings; a single string is a list of one.
pub fn list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| text(i).map_err(|_| format!("expected an array of strings, found {} in it", kind(i))))
            .collect(),
        Value::String(_) | Value::Bareword(_) | Value::Number(_) => Ok(vec![text(v)?]),
        other => Err(format!("expected an array of strings, found {}", kind(other))),
    }
}

/// Key/value pairs from a hash, or from the older flat array form `["key", "value", ...]`.
pub fn pairs(v: &Value) -> Result<Vec<(String, Value)>, String> {
    match v {
        Value::Hash(entries) => Ok(entries.iter().map(|e| (e.key.text().to_string(), e.value.clone())).collect()),
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|c| Ok((text(&c[0]).map_err(|e| format!("in a key/value array: {e}"))?, c[1].clone())))
            .collect(),
        other => Err(format!("expected a hash (`{{ \"key\" => \"value\" }}`), found {}", kind(other))),
    }
}

pub fn boolean(v: &Value) -> Result<bool, String> {
    match text(v).as_deref() {
        Ok("true") => Ok(true),
        Ok("false") => Ok(false),
        _ => Err(format!("expected true or false, found {}", describe(v))),
    }
}

pub fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.parse().map_err(|_| format!("expected a number, found {n}")),
        Value::String(s) => s.text.trim().parse().map_err(|_| format!("expected a number, found \"{}\"", s.text)),
        other => Err(format!("expected a number, found {}", kind(other))),
    }
}

/// `json`, `"json"` or `json { ... }` → `json`.
pub fn codec_name(v: &Value) -> Result<String, String> {
    match v {
        Value::Plugin(Plugin { name, .. }) => Ok(name.clone()),
        other => text(other).map_err(|_| format!("expected a codec name, found {}", kind(other))),
    }
}

fn describe(v: &Value) -> String {
    match text(v) {
        Ok(t) => format!("{} `{t}`", kind(v)),
        Err(_) => kind(v).to_string(),
    }
}

/// `${VAR}` or `${VAR:default}`: a Logstash keystore or environment reference.
pub fn is_reference(s: &str) -> bool {
    s.contains("${")
}
