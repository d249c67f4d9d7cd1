//! The `json`, `kv` and `dissect` filters (logpipe's filters of the same names) and the `geoip` and
//! `useragent` filters (logpipe's `geoip` and `user_agent`, which read `[indexer.enrichment]`).

use super::ast::*;
use super::translate::{new_filter, on_success, Translator};
use super::values::text;
use crate::draft::{inline, strings, Table, Value as Toml};
use crate::when::When;

/// Settings every filter has that logpipe needs no equivalent for.
const IGNORED: &[&str] = &["id", "enable_metric", "periodic_flush", "ecs_compatibility"];
/// Settings every filter applies on success; `on_success` turns them into a mutate filter.
const ON_SUCCESS: &[&str] = &["add_field", "add_tag", "remove_field", "remove_tag"];

fn common(name: &str) -> bool {
    IGNORED.contains(&name) || ON_SUCCESS.contains(&name)
}

/// Pushes `table` and the mutate filter its add_*/remove_* settings become.
fn finish(t: &mut Translator, p: &Plugin, when: &Option<When>, table: Table, failure: &[String], out: &mut Vec<Table>) {
    out.push(table);
    if let Some(follow) = on_success(t, p, when, failure) {
        out.push(follow);
    }
}

fn not_translated(t: &mut Translator, p: &Plugin, attr: &Attribute, instead: &str) {
    let origin = t.origin(attr.pos);
    t.report.warn(origin, format!("{} `{}` is not translated: {instead}", p.name, attr.name));
}

pub(crate) fn json(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "json filter";
    let mut table = new_filter(t, p, "json", &when);
    let mut failure = vec!["_jsonparsefailure".to_string()];
    for attr in &p.attributes {
        match attr.name.as_str() {
            "source" | "target" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set(&attr.name, v);
                }
            }
            "skip_on_invalid_json" => {
                if let Some(v) = t.attr_bool(P, attr) {
                    table.set("skip_on_invalid_json", v);
                }
            }
            "tag_on_failure" => {
                if let Some(v) = t.attr_list(P, attr) {
                    table.set("tag_on_failure", strings(&v));
                    failure = v;
                }
            }
            name if common(name) => {}
            _ => not_translated(
                t,
                p,
                attr,
                "logpipe's json filter has source, target, skip_on_invalid_json, tag_on_failure",
            ),
        }
    }
    let Some(Toml::String(source)) = table.get("source").cloned() else {
        return t.left_out(p.pos, "json filter", "it has no `source` (Logstash requires one)");
    };
    // Without its source the filter neither fails nor succeeds.
    let ran = When::all(when.iter().cloned().chain([When::Exists(source)]));
    finish(t, p, &ran, table, &failure, out);
}

/// kv's character-set settings: Logstash takes them as written (a string of characters).
const KV_TEXT: &[&str] = &["source", "target", "field_split", "value_split", "trim_key", "trim_value", "prefix"];

pub(crate) fn kv(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "kv filter";
    let mut table = new_filter(t, p, "kv", &when);
    for attr in &p.attributes {
        let name = attr.name.as_str();
        match name {
            _ if KV_TEXT.contains(&name) => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set(name, v);
                }
            }
            // The names older Logstash versions used.
            "trim" | "trimkey" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set(if name == "trim" { "trim_value" } else { "trim_key" }, v);
                }
            }
            "include_keys" | "exclude_keys" => {
                if let Some(v) = t.attr_list(P, attr) {
                    table.set(name, strings(v));
                }
            }
            "include_brackets" | "allow_duplicate_values" => {
                if let Some(v) = t.attr_bool(P, attr) {
                    table.set(name, v);
                }
            }
            "tag_on_failure" | "tag_on_timeout" | "timeout_millis" => {
                let origin = t.origin(attr.pos);
                t.report.info(origin, format!("kv `{name}`: logpipe's kv has no timeout and never fails (ignored)"));
            }
            _ if common(name) => {}
            _ => not_translated(
                t,
                p,
                attr,
                "logpipe's kv has source, target, field_split, value_split, include_keys, exclude_keys, trim_key, \
                 trim_value, prefix, include_brackets, allow_duplicate_values",
            ),
        }
    }
    let source = match table.get("source") {
        Some(Toml::String(s)) => s.clone(),
        _ => "message".to_string(),
    };
    // Without its source the filter neither fails nor succeeds.
    let ran = When::all(when.iter().cloned().chain([When::Exists(source)]));
    finish(t, p, &ran, table, &[], out);
}

pub(crate) fn dissect(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "dissect filter";
    let mut table = new_filter(t, p, "dissect", &when);
    let mut failure = vec!["_dissectfailure".to_string()];
    let mut mapping: Vec<(String, Toml)> = Vec::new();
    let mut convert: Vec<(String, Toml)> = Vec::new();
    for attr in &p.attributes {
        match attr.name.as_str() {
            "mapping" => {
                let Some(entries) = t.attr_pairs(P, attr) else { continue };
                for (field, value) in entries {
                    match text(&value) {
                        Ok(pattern) => mapping.push((field, Toml::String(pattern))),
                        Err(e) => t.bad_value(P, attr, format!("`{field}`: {e}")),
                    }
                }
            }
            "append_separator" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set("append_separator", v);
                }
            }
            "tag_on_failure" => {
                if let Some(v) = t.attr_list(P, attr) {
                    table.set("tag_on_failure", strings(&v));
                    failure = v;
                }
            }
            "convert_datatype" => {
                let Some(entries) = t.attr_pairs(P, attr) else { continue };
                for (field, value) in entries {
                    match text(&value).as_deref() {
                        Ok("int") => convert.push((field, "integer".into())),
                        Ok("float") => convert.push((field, "float".into())),
                        _ => t.bad_value(P, attr, format!("`{field}`: expected \"int\" or \"float\"")),
                    }
                }
            }
            name if common(name) => {}
            _ => not_translated(t, p, attr, "logpipe's dissect has mapping, append_separator, tag_on_failure"),
        }
    }
    if mapping.is_empty() {
        return t.left_out(p.pos, "dissect filter", "it has no `mapping`");
    }
    table.set("mapping", inline(mapping));
    out.push(table);
    if !convert.is_empty() {
        // convert_datatype runs only when the pattern fit: a mutate convert after it, gated likewise.
        let mut follow = new_filter(t, p, "mutate", &None);
        follow.comments = vec![format!("convert_datatype of the dissect filter at {}", t.origin(p.pos))];
        let gate = When::all(when.iter().cloned().chain(failure.iter().map(|f| When::Tag(f.clone()).negate())));
        if let Some(w) = gate {
            follow.set("when", w.to_value());
        }
        follow.set("convert", inline(convert));
        out.push(follow);
    }
    if let Some(follow) = on_success(t, p, &when, &failure) {
        out.push(follow);
    }
}

/// `[a][b][ip]` → `[a][b]`; ECS-mode Logstash puts the lookup next to the address.
fn parent_of_ip(source: &str) -> Option<String> {
    source.strip_suffix("[ip]").filter(|parent| parent.starts_with('[') && !parent.is_empty()).map(str::to_string)
}

pub(crate) fn geoip(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "geoip filter";
    let mut table = new_filter(t, p, "geoip", &when);
    let (mut source, mut target) = (None, None);
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "source" => source = t.attr_text(P, attr),
            "target" => target = t.attr_text(P, attr),
            "database" => {
                let Some(path) = t.attr_text(P, attr) else { continue };
                let asn = path.to_ascii_lowercase().contains("asn");
                let key = if asn { "geoip_asn" } else { "geoip_city" };
                let enrichment =
                    t.draft.enrichment.get_or_insert_with(|| Table::from(&origin, "databases of the geoip filter"));
                let mut paths = enrichment.get(key).and_then(|v| v.as_array().cloned()).unwrap_or_default();
                if !paths.contains(&Toml::String(path.clone())) {
                    paths.push(Toml::String(path.clone()));
                }
                enrichment.set(key, Toml::Array(paths));
                t.report.info(
                    origin,
                    format!(
                        "geoip database {path}: becomes [indexer.enrichment] {key}, which every geoip filter reads \
                         (logpipe loads GeoLite2/DB-IP City .mmdb and ASN .mmdb or CSV files)"
                    ),
                );
            }
            "default_database_type" => t.report.info(
                origin,
                "geoip default_database_type: logpipe's geoip looks an address up in the City and the ASN data \
                 both, writing geo.* and as.*",
            ),
            "fields" => t.report.warn(origin, "geoip `fields`: logpipe writes every ECS geo.* and as.* field it finds"),
            "tag_on_failure" => t.report.info(
                origin,
                "geoip tag_on_failure: logpipe's geoip adds nothing for an address it does not know, and no tag",
            ),
            "cache_size" => t.report.info(origin, "geoip cache_size: see [indexer.enrichment] cache_size"),
            name if common(name) => {}
            _ => not_translated(t, p, attr, "logpipe's geoip has source and target"),
        }
    }
    let Some(source) = source else {
        return t.left_out(p.pos, "geoip filter", "it has no `source` (Logstash requires one)");
    };
    let target = target.or_else(|| parent_of_ip(&source)).unwrap_or_else(|| {
        let origin = t.origin(p.pos);
        t.report.info(origin, "geoip without a target: the lookup goes under `geoip`, as Logstash's legacy mode");
        "geoip".to_string()
    });
    table.set("source", source);
    table.set("target", target);
    if p.attributes.iter().any(|a| ON_SUCCESS.contains(&a.name.as_str())) {
        let origin = t.origin(p.pos);
        t.report.warn(origin, "geoip add_*/remove_*: applied to every event, found in the databases or not");
    }
    finish(t, p, &when, table, &[], out);
}

pub(crate) fn useragent(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    const P: &str = "useragent filter";
    let mut table = new_filter(t, p, "user_agent", &when);
    let mut has_source = false;
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "source" | "target" => {
                if let Some(v) = t.attr_text(P, attr) {
                    has_source |= attr.name == "source";
                    table.set(&attr.name, v);
                }
            }
            "regexes" => {
                let Some(path) = t.attr_text(P, attr) else { continue };
                let enrichment =
                    t.draft.enrichment.get_or_insert_with(|| Table::from(&origin, "rules of the useragent filter"));
                enrichment.set("user_agent_regexes", path.clone());
                t.report.info(
                    origin,
                    format!(
                        "useragent regexes {path}: becomes [indexer.enrichment] user_agent_regexes (uap-core YAML)"
                    ),
                );
            }
            "lru_cache_size" => t.report.info(origin, "useragent lru_cache_size: see [indexer.enrichment] cache_size"),
            "prefix" => {
                not_translated(t, p, attr, "logpipe writes ECS names (name, version, os.*, device.name) under target")
            }
            name if common(name) => {}
            _ => not_translated(t, p, attr, "logpipe's user_agent has source and target"),
        }
    }
    if !has_source {
        return t.left_out(p.pos, "useragent filter", "it has no `source` (Logstash requires one)");
    }
    if table.get("target").is_none() {
        // Logstash in ECS mode writes to `user_agent`, which is logpipe's default too.
        table.set("target", "user_agent");
    }
    finish(t, p, &when, table, &[], out);
}

/// `mutate { convert => ... }`: field → type, as logpipe's mutate `convert`.
pub(crate) fn mutate_convert(t: &mut Translator, attr: &Attribute, table: &mut Table) {
    const P: &str = "mutate filter";
    let Some(entries) = t.attr_pairs(P, attr) else { return };
    let mut convert: Vec<(String, Toml)> = Vec::new();
    for (field, value) in entries {
        match text(&value).as_deref() {
            Ok(kind @ ("integer" | "float" | "string" | "boolean")) => convert.push((field, kind.into())),
            Ok(kind @ ("integer_eu" | "float_eu")) => t.left_out(
                attr.pos,
                format!("mutate convert `{field}` to {kind}"),
                "logpipe reads numbers with '.' decimals only; gsub the separators first, then convert to integer or float",
            ),
            Ok(other) => t.bad_value(P, attr, format!("`{field}`: {other:?} is not a type mutate converts to")),
            Err(e) => t.bad_value(P, attr, format!("`{field}`: {e}")),
        }
    }
    if !convert.is_empty() {
        table.set("convert", inline(convert));
    }
}

/// Ruby's replacement text (`\1`, `\k<name>`) as the regex crate's (`${1}`, `${name}`, `$$`).
fn replacement(ruby: &str) -> String {
    let mut out = String::with_capacity(ruby.len());
    let mut chars = ruby.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('k') => {
                    let rest: String = chars.clone().collect();
                    match rest.strip_prefix("k<").and_then(|r| r.split_once('>')) {
                        Some((name, _)) => {
                            out.push_str(&format!("${{{name}}}"));
                            for _ in 0..name.len() + 3 {
                                chars.next();
                            }
                        }
                        None => out.push('\\'),
                    }
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `mutate { gsub => [field, regex, replacement, ...] }` as logpipe's `gsub = [[field, regex, replacement]]`.
pub(crate) fn mutate_gsub(t: &mut Translator, attr: &Attribute, table: &mut Table) {
    const P: &str = "mutate filter";
    let Some(items) = t.attr_list(P, attr) else { return };
    if items.len() % 3 != 0 {
        return t.bad_value(
            P,
            attr,
            format!("expected [field, regex, replacement, ...], found {} strings", items.len()),
        );
    }
    let mut rules = table.get("gsub").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    for rule in items.chunks(3) {
        let [field, pattern, with] = rule else { unreachable!("chunks of 3") };
        if let Err(e) = regex::Regex::new(pattern) {
            t.left_out(
                attr.pos,
                format!("mutate gsub on `{field}` with /{pattern}/"),
                format!("the regex does not compile in logpipe (no look-around or backreferences): {e}"),
            );
            continue;
        }
        if with.contains("%{") {
            t.left_out(
                attr.pos,
                format!("mutate gsub on `{field}` with replacement \"{with}\""),
                "logpipe's gsub takes a fixed replacement, not %{field} references",
            );
            continue;
        }
        rules.push(strings([field.as_str(), pattern.as_str(), replacement(with).as_str()]));
    }
    if !rules.is_empty() {
        table.set("gsub", Toml::Array(rules));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_replacements_become_regex_crate_ones() {
        assert_eq!(replacement(r"\2-\1"), "${2}-${1}");
        assert_eq!(replacement(r"\k<user>@x"), "${user}@x");
        assert_eq!(replacement("cost: $5"), "cost: $$5");
        assert_eq!(replacement(r"a\\b\n"), r"a\b\n");
    }

    #[test]
    fn the_parent_of_an_ip_field_is_the_ecs_target() {
        assert_eq!(parent_of_ip("[client][ip]").as_deref(), Some("[client]"));
        assert_eq!(parent_of_ip("clientip"), None);
    }
}
