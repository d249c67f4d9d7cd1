//! A grok-style filter: Logstash's `%{PATTERN:field}` syntax over `regex` crate named captures. Patterns
//! are expanded and compiled once, at load; a pattern referencing an unknown name is a config error.
//!
//! `%{NAME}` matches without capturing, `%{NAME:field}` writes the match to `field` (a field reference,
//! `[http][response][status_code]` or `http.response.status_code`), and `%{NAME:field:int}` (or `:float`)
//! writes a number. Plain `(?<name>...)` groups also write to `name`. Patterns are tried in order; with
//! `break_on_match` (the default) the first match wins. No match tags the event (`_grokparsefailure`).
//!
//! References: Logstash grok filter; logstash-patterns-core `grok-patterns` (a subset, simplified).

use std::collections::{BTreeMap, HashMap};

use regex::Regex;
use serde_json::Value;

use super::{Filter, GROK_PARSE_FAILURE};
use crate::error::{Error, Result};
use crate::event::{Event, FieldRef};

/// The built-in pattern library (name, regex), a subset of logstash-patterns-core.
pub const PATTERNS: &[(&str, &str)] = &[
    ("USERNAME", r"[a-zA-Z0-9._-]+"),
    ("USER", r"%{USERNAME}"),
    ("INT", r"[+-]?[0-9]+"),
    ("BASE10NUM", r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"),
    ("NUMBER", r"%{BASE10NUM}"),
    ("POSINT", r"\b[1-9][0-9]*\b"),
    ("NONNEGINT", r"\b[0-9]+\b"),
    ("WORD", r"\b\w+\b"),
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("QUOTEDSTRING", r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#),
    ("QS", r"%{QUOTEDSTRING}"),
    (
        "IPV4",
        r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    ),
    ("IPV6", r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:%{IPV4}|[0-9A-Fa-f]{0,4})(?:%[0-9A-Za-z]+)?"),
    ("IP", r"%{IPV6}|%{IPV4}"),
    ("HOSTNAME", r"\b[0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\.?"),
    ("IPORHOST", r"%{IP}|%{HOSTNAME}"),
    (
        "MONTH",
        r"\b(?:[Jj]an(?:uary)?|[Ff]eb(?:ruary)?|[Mm]ar(?:ch)?|[Aa]pr(?:il)?|[Mm]ay|[Jj]une?|[Jj]uly?|[Aa]ug(?:ust)?|[Ss]ep(?:tember)?|[Oo]ct(?:ober)?|[Nn]ov(?:ember)?|[Dd]ec(?:ember)?)\b",
    ),
    ("MONTHNUM", r"0?[1-9]|1[0-2]"),
    ("MONTHDAY", r"0[1-9]|[12][0-9]|3[01]|[1-9]"),
    ("YEAR", r"(?:\d\d){1,2}"),
    ("HOUR", r"2[0123]|[01]?[0-9]"),
    ("MINUTE", r"[0-5][0-9]"),
    ("SECOND", r"(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?"),
    ("TIME", r"%{HOUR}:%{MINUTE}:%{SECOND}"),
    ("ISO8601_TIMEZONE", r"Z|[+-]%{HOUR}(?::?%{MINUTE})"),
    ("TIMESTAMP_ISO8601", r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?"),
    ("HTTPDATE", r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}"),
    (
        "LOGLEVEL",
        r"[Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo|INFO|[Ww]arn(?:ing)?|WARN(?:ING)?|[Ee]rr(?:or)?|ERR(?:OR)?|[Cc]rit(?:ical)?|CRIT(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE|[Ee]merg(?:ency)?|EMERG(?:ENCY)?",
    ),
];

/// Nesting deeper than this is a definition cycle (`A` → `B` → `A`).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Convert {
    None,
    Int,
    Float,
}

#[derive(Debug)]
struct Capture {
    group: String,
    field: FieldRef,
    convert: Convert,
}

#[derive(Debug)]
struct Compiled {
    regex: Regex,
    captures: Vec<Capture>,
}

/// A compiled grok filter.
#[derive(Debug)]
pub struct Grok {
    source: FieldRef,
    patterns: Vec<Compiled>,
    break_on_match: bool,
    tag_on_failure: Vec<String>,
}

impl Grok {
    /// Compiles `patterns` to match against `source`; `definitions` add to (or override) [`PATTERNS`].
    pub fn new(source: FieldRef, patterns: &[String], definitions: &BTreeMap<String, String>) -> Result<Self> {
        let mut library: HashMap<&str, &str> = PATTERNS.iter().copied().collect();
        library.extend(definitions.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let patterns = patterns.iter().map(|p| compile(p, &library)).collect::<Result<_>>()?;
        Ok(Self { source, patterns, break_on_match: true, tag_on_failure: vec![GROK_PARSE_FAILURE.into()] })
    }

    /// With `false`, every pattern is tried and all matches are written. Default `true`.
    pub fn break_on_match(mut self, yes: bool) -> Self {
        self.break_on_match = yes;
        self
    }

    /// Tags added when no pattern matches. Default `["_grokparsefailure"]`.
    pub fn tag_on_failure(mut self, tags: Vec<String>) -> Self {
        self.tag_on_failure = tags;
        self
    }
}

fn compile(pattern: &str, library: &HashMap<&str, &str>) -> Result<Compiled> {
    let bad = |why: String| Error::Grok { pattern: pattern.to_string(), why };
    let mut captures = Vec::new();
    let expanded = expand(pattern, library, &mut captures, 0).map_err(bad)?;
    let regex = Regex::new(&expanded).map_err(|e| bad(e.to_string()))?;
    for name in regex.capture_names().flatten() {
        if !name.starts_with("__grok") {
            let field = FieldRef::parse(name).map_err(|e| bad(e.to_string()))?;
            captures.push(Capture { group: name.to_string(), field, convert: Convert::None });
        }
    }
    Ok(Compiled { regex, captures })
}

fn expand(
    pattern: &str,
    library: &HashMap<&str, &str>,
    captures: &mut Vec<Capture>,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err("pattern definitions nest too deep (a cycle?)".into());
    }
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut rest = pattern;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("'%{' is not closed by '}'")?;
        let mut spec = after[..end].splitn(3, ':');
        let name = spec.next().unwrap_or_default();
        let definition = library.get(name).ok_or_else(|| format!("unknown pattern %{{{name}}}"))?;
        let inner = expand(definition, library, captures, depth + 1)?;
        match spec.next() {
            Some(field) => {
                let field = FieldRef::parse(field).map_err(|e| e.to_string())?;
                let convert = match spec.next() {
                    None => Convert::None,
                    Some("int") => Convert::Int,
                    Some("float") => Convert::Float,
                    Some(other) => return Err(format!("unknown conversion {other:?}; use int or float")),
                };
                let group = format!("__grok{}", captures.len());
                out.push_str(&format!("(?P<{group}>{inner})"));
                captures.push(Capture { group, field, convert });
            }
            None => out.push_str(&format!("(?:{inner})")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Filter for Grok {
    fn apply(&self, event: &mut Event) {
        let mut found: Vec<(&FieldRef, Value)> = Vec::new();
        let mut matched = false;
        if let Some(text) = event.get_str(&self.source) {
            for compiled in &self.patterns {
                let Some(caps) = compiled.regex.captures(text) else { continue };
                matched = true;
                for capture in &compiled.captures {
                    let Some(m) = caps.name(&capture.group) else { continue };
                    let s = m.as_str();
                    let value = match capture.convert {
                        Convert::Int => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(s)),
                        Convert::Float => s
                            .parse::<f64>()
                            .ok()
                            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                            .unwrap_or_else(|| Value::from(s)),
                        Convert::None => Value::from(s),
                    };
                    found.push((&capture.field, value));
                }
                if self.break_on_match {
                    break;
                }
            }
        }
        if !matched {
            self.tag_on_failure.iter().for_each(|t| event.add_tag(t));
        }
        for (field, value) in found {
            event.insert(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grok(patterns: &[&str]) -> Grok {
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Grok::new(FieldRef::parse("message").unwrap(), &patterns, &BTreeMap::new()).unwrap()
    }

    fn event(message: &str) -> Event {
        Event::from_map(json!({ "message": message }).as_object().unwrap().clone())
    }

    #[test]
    fn library_patterns_capture_into_fields() {
        let g = grok(&[
            r#"^%{IP:[source][ip]} %{WORD:[http][request][method]} %{NOTSPACE:url.original} %{INT:[http][response][status_code]:int} %{NUMBER:dur:float} \[%{HTTPDATE:ts}\] %{QS:agent} %{DATA:d}\|%{GREEDYDATA:rest}$"#,
        ]);
        let mut e =
            event(r#"2001:db8::1 GET /a?b=c 404 0.25 [21/Nov/2026:08:15:30 +0000] "curl/8 \"x\"" lazy|tail end"#);
        g.apply(&mut e);
        let m = e.as_map();
        assert!(!e.has_tag(GROK_PARSE_FAILURE));
        assert_eq!(m["source"]["ip"], json!("2001:db8::1"));
        assert_eq!(m["http"], json!({"request": {"method": "GET"}, "response": {"status_code": 404}}));
        assert_eq!(m["url"]["original"], json!("/a?b=c"));
        assert_eq!(m["dur"], json!(0.25));
        assert_eq!(m["ts"], json!("21/Nov/2026:08:15:30 +0000"));
        assert_eq!(m["agent"], json!(r#""curl/8 \"x\"""#));
        assert_eq!(m["d"], json!("lazy"));
        assert_eq!(m["rest"], json!("tail end"));

        let mut e = event("10.1.2.3 GET");
        grok(&[r"%{IP:ip} %{WORD}"]).apply(&mut e);
        assert_eq!(e.as_map()["ip"], json!("10.1.2.3"));
        assert_eq!(e.as_map().len(), 2);
    }

    #[test]
    fn first_matching_pattern_wins_and_failures_are_tagged() {
        let g = grok(&[r"^%{INT:n:int}$", r"^(?<word>\w+)$"]);
        let mut e = event("42");
        g.apply(&mut e);
        assert_eq!(e.as_map()["n"], json!(42));
        let mut e = event("abc");
        g.apply(&mut e);
        assert_eq!(e.as_map()["word"], json!("abc"));
        let mut e = event("a b");
        g.apply(&mut e);
        assert!(e.has_tag(GROK_PARSE_FAILURE));
        assert_eq!(e.as_map()["message"], json!("a b"));
        let mut e = Event::new();
        g.apply(&mut e);
        assert!(e.has_tag(GROK_PARSE_FAILURE));
    }

    #[test]
    fn custom_definitions_and_load_errors() {
        let defs = BTreeMap::from([("METHOD".to_string(), "GET|POST".to_string())]);
        let g = Grok::new(FieldRef::parse("message").unwrap(), &["%{METHOD:m}".into()], &defs).unwrap();
        let mut e = event("x POST y");
        g.apply(&mut e);
        assert_eq!(e.as_map()["m"], json!("POST"));

        let err = |p: &str, defs: &BTreeMap<String, String>| {
            Grok::new(FieldRef::parse("message").unwrap(), &[p.into()], defs).unwrap_err().to_string()
        };
        assert!(err("%{NOPE:x}", &BTreeMap::new()).contains("unknown pattern %{NOPE}"));
        assert!(err("%{INT:x:bool}", &BTreeMap::new()).contains("unknown conversion"));
        assert!(err("%{INT:[x}", &BTreeMap::new()).contains("[x"));
        assert!(err("(unclosed", &BTreeMap::new()).contains("(unclosed"));
        let cycle = BTreeMap::from([("A".to_string(), "%{B}".to_string()), ("B".to_string(), "%{A}".to_string())]);
        assert!(err("%{A}", &cycle).contains("cycle"));
    }
}
