//! The `grok` and `date` filters, with the patterns and formats logpipe's filters need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ast::*;
use super::joda::to_strftime;
use super::translate::{on_success, Translator};
use super::values::list;
use crate::draft::{inline, strings, Table, Value as Toml};
use crate::when::When;

const COMMON: &[&str] = &[
    "id",
    "enable_metric",
    "periodic_flush",
    "ecs_compatibility",
    "add_field",
    "add_tag",
    "remove_field",
    "remove_tag",
];

/// Logstash's grok patterns that logpipe's grok does not carry, written out here so a pattern naming
/// them loads (field names as Logstash's ECS mode sets them).
const EXTRA_PATTERNS: &[(&str, &str)] = &[
    (
        "HTTPD_COMMONLOG",
        r#"%{IPORHOST:[source][address]} (?:-|%{USER:[apache][access][user][identity]}) (?:-|%{USER:[user][name]}) \[%{HTTPDATE:timestamp}\] "(?:%{WORD:[http][request][method]} %{NOTSPACE:[url][original]}(?: HTTP/%{NUMBER:[http][version]})?|%{DATA})" (?:-|%{INT:[http][response][status_code]:int}) (?:-|%{INT:[http][response][body][bytes]:int})"#,
    ),
    (
        "HTTPD_COMBINEDLOG",
        r#"%{HTTPD_COMMONLOG} "(?:-|%{DATA:[http][request][referrer]})" "(?:-|%{DATA:[user_agent][original]})""#,
    ),
    ("COMMONAPACHELOG", "%{HTTPD_COMMONLOG}"),
    ("COMBINEDAPACHELOG", "%{HTTPD_COMBINEDLOG}"),
    (
        "LOGLEVEL",
        r"(?i:alert|trace|debug|notice|info(?:rmation)?|warn(?:ing)?|err(?:or)?|crit(?:ical)?|fatal|severe|emerg(?:ency)?)",
    ),
    ("SYSLOGTIMESTAMP", r"%{MONTH} +%{MONTHDAY} %{TIME}"),
    ("PROG", r"[\x21-\x5a\x5c\x5e-\x7e]+"),
    ("SYSLOGPROG", r"%{PROG:[process][name]}(?:\[%{POSINT:[process][pid]:int}\])?"),
    ("SYSLOGHOST", r"%{IPORHOST}"),
    ("SYSLOGBASE", r"%{SYSLOGTIMESTAMP:timestamp} %{SYSLOGHOST:[host][hostname]} %{SYSLOGPROG}:"),
    ("JAVACLASS", r"(?:[a-zA-Z$_][a-zA-Z$_0-9]*\.)*[a-zA-Z$_][a-zA-Z$_0-9]*"),
    ("UUID", r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}"),
    ("URIPATH", r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+"),
    ("URIPARAM", r"\?[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*"),
    ("URIPATHPARAM", r"%{URIPATH}(?:%{URIPARAM})?"),
    ("EMAILLOCALPART", r"[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]+)*"),
    ("EMAILADDRESS", r"%{EMAILLOCALPART}@%{HOSTNAME}"),
];

fn referenced(pattern: &str) -> Vec<String> {
    let re = regex::Regex::new(r"%\{(\w+)(?::[^}]*)?\}").expect("static regex");
    re.captures_iter(pattern).map(|c| c[1].to_string()).collect()
}

/// Pattern files of `patterns_dir`: lines `NAME regex`, `#` comments.
fn read_patterns_dir(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for file in files.into_iter().filter(|f| f.is_file()) {
        for line in std::fs::read_to_string(&file)?.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, pattern)) = line.split_once(char::is_whitespace) {
                out.insert(name.to_string(), pattern.trim().to_string());
            }
        }
    }
    Ok(out)
}

pub(crate) fn grok(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "grok filter";
    let mut matches: Vec<(String, Vec<String>, Pos)> = Vec::new();
    let mut available: BTreeMap<String, String> = BTreeMap::new();
    let mut defined: BTreeMap<String, String> = BTreeMap::new();
    let mut extra: Vec<(String, Toml)> = Vec::new();
    let mut tag_on_failure = vec!["_grokparsefailure".to_string()];
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "match" => {
                let Some(pairs) = t.attr_pairs(P, attr) else { continue };
                for (field, value) in pairs {
                    match list(&value) {
                        Ok(patterns) => matches.push((field, patterns, attr.pos)),
                        Err(e) => t.bad_value(P, attr, format!("`{field}`: {e}")),
                    }
                }
            }
            "pattern_definitions" => {
                if let Some(Toml::Table(m)) = t.attr_string_map(P, attr) {
                    for (k, v) in m {
                        defined.insert(k, v.as_str().unwrap_or_default().to_string());
                    }
                }
            }
            "patterns_dir" => {
                let Some(dirs) = t.attr_list(P, attr) else { continue };
                for dir in dirs {
                    match read_patterns_dir(Path::new(&dir)) {
                        Ok(found) => {
                            t.report.info(
                                origin.clone(),
                                format!(
                                    "grok patterns_dir {dir}: the patterns used are copied into pattern_definitions"
                                ),
                            );
                            available.extend(found);
                        }
                        Err(e) => t.report.warn(
                            origin.clone(),
                            format!(
                                "grok patterns_dir {dir} cannot be read here ({e}): run the import where it exists, \
                                 or copy the patterns it defines into pattern_definitions"
                            ),
                        ),
                    }
                }
            }
            "patterns_files_glob" => {}
            "tag_on_failure" => {
                if let Some(v) = t.attr_list(P, attr) {
                    tag_on_failure = v;
                }
            }
            "break_on_match" => {
                if let Some(v) = t.attr_bool(P, attr) {
                    extra.push(("break_on_match".into(), Toml::Boolean(v)));
                }
            }
            "overwrite" => {
                t.report.info(origin, "grok overwrite: logpipe's grok always replaces the fields it captures")
            }
            "named_captures_only" | "keep_empty_captures" | "timeout_millis" | "timeout_scope" | "tag_on_timeout" => {
                t.report.info(origin, format!("grok `{}` is not needed in logpipe (ignored)", attr.name))
            }
            name if COMMON.contains(&name) => {}
            name => t.report.warn(origin, format!("grok `{name}` is not translated")),
        }
    }
    if matches.is_empty() {
        return t.left_out(p.pos, "grok filter", "it has no `match`");
    }
    if matches.len() > 1 {
        let origin = t.origin(p.pos);
        t.report.warn(
            origin,
            "grok with several fields in `match` becomes one grok filter per field; each tags its own failure",
        );
    }
    for (field, patterns, _) in &matches {
        let mut table = Table::from(&t.origin(p.pos), P);
        table.set("type", "grok");
        if let Some(w) = &when {
            table.set("when", w.to_value());
        }
        table.set("match", inline([(field.clone(), strings(patterns))]));
        // Definitions the patterns need, transitively: the user's, then patterns_dir's, then ours.
        let mut needed: BTreeMap<String, String> = BTreeMap::new();
        let mut queue: Vec<String> = patterns.iter().flat_map(|p| referenced(p)).collect();
        let mut seen = BTreeSet::new();
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let def = defined
                .get(&name)
                .or_else(|| available.get(&name))
                .cloned()
                .or_else(|| EXTRA_PATTERNS.iter().find(|(n, _)| *n == name).map(|(_, d)| d.to_string()));
            if let Some(def) = def {
                queue.extend(referenced(&def));
                needed.insert(name, def);
            }
        }
        if !needed.is_empty() {
            table.set("pattern_definitions", inline(needed));
        }
        for (k, v) in &extra {
            table.set(k, v.clone());
        }
        table.set("tag_on_failure", strings(&tag_on_failure));
        out.push(table);
    }
    if let Some(follow) = on_success(t, p, &when, &tag_on_failure) {
        out.push(follow);
    }
}

pub(crate) fn date(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "date filter";
    let mut table = Table::from(&t.origin(p.pos), P);
    table.set("type", "date");
    if let Some(w) = &when {
        table.set("when", w.to_value());
    }
    let mut tag_on_failure = vec!["_dateparsefailure".to_string()];
    let mut has_match = false;
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "match" => {
                let Some(items) = t.attr_list(P, attr) else { continue };
                let Some((field, formats)) = items.split_first() else {
                    t.bad_value(P, attr, "expected [field, format, ...], found an empty array".into());
                    continue;
                };
                let mut converted = vec![field.clone()];
                for f in formats {
                    match to_strftime(f) {
                        Ok(s) => converted.push(s),
                        Err(why) => t.left_out(attr.pos, format!("date format \"{f}\""), why),
                    }
                }
                if converted.len() == 1 {
                    t.left_out(p.pos, "date filter", "none of its formats translates");
                    return;
                }
                table.set("match", strings(converted));
                has_match = true;
            }
            "timezone" => {
                if let Some(v) = t.attr_text(P, attr) {
                    if v.contains("%{") {
                        t.left_out(
                            attr.pos,
                            "date timezone from a field",
                            "logpipe's date filter takes one fixed zone",
                        );
                    } else {
                        table.set("timezone", v);
                    }
                }
            }
            "target" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set("target", v);
                }
            }
            "tag_on_failure" => {
                if let Some(v) = t.attr_list(P, attr) {
                    tag_on_failure = v;
                    table.set("tag_on_failure", strings(&tag_on_failure));
                }
            }
            "locale" => t.report.info(origin, "date locale: logpipe reads English month and day names"),
            name if COMMON.contains(&name) => {}
            name => t.report.warn(origin, format!("date `{name}` is not translated")),
        }
    }
    if !has_match {
        return t.left_out(p.pos, "date filter", "it has no `match`");
    }
    out.push(table);
    if let Some(follow) = on_success(t, p, &when, &tag_on_failure) {
        out.push(follow);
    }
}
