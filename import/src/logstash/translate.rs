//! A parsed Logstash pipeline as logpipe sections: the kafka input becomes `[indexer.input]`, `file` and
//! `stdin` inputs become agent inputs, filters become `[[indexer.filters]]` with `when` taken from the
//! conditionals around them, and `elasticsearch` outputs become `[[indexer.routes]]` plus one
//! `[indexer.output.elasticsearch]`. What has no equivalent goes in the report.

use std::collections::BTreeMap;

use super::ast::*;
use super::values::{boolean, codec_name, is_reference, list, number, pairs, text};
use super::{conditions, inputs, outputs, plugins};
use crate::draft::{inline, strings, Draft, Table, Value as Toml};
use crate::report::{Origin, Report};
use crate::when::When;

/// One source file's parsed config.
pub struct Source<'a> {
    pub file: &'a str,
    pub config: &'a Config,
}

/// State shared by the translation of every file of one Logstash pipeline.
pub(crate) struct Translator<'a> {
    pub draft: &'a mut Draft,
    pub report: &'a mut Report,
    pub file: String,
    /// Conditions of `if [x] { drop {} }`, applied to the routes at the end.
    pub drops: Vec<(Origin, When)>,
    /// Tags, type and fields every input adds (applied as a first mutate filter).
    pub input_fields: Vec<Table>,
    /// Where a `beats` input was seen.
    pub beats: Option<Origin>,
    /// Whether file/stdin inputs need a queue between agent and indexer.
    pub agent_inputs: usize,
}

impl<'a> Translator<'a> {
    pub fn origin(&self, pos: Pos) -> Origin {
        Origin::at(&self.file, pos.line, pos.col)
    }

    /// Records an item left out (with `--bypass-errors`) and why.
    pub fn left_out(&mut self, pos: Pos, what: impl Into<String>, why: impl Into<String>) {
        let origin = self.origin(pos);
        let what = what.into();
        let why = why.into();
        self.report.error(origin.clone(), format!("{what}: {why}"));
        self.draft.left_out.push((origin, what));
    }

    /// A setting whose value has the wrong type.
    pub fn bad_value(&mut self, plugin: &str, attr: &Attribute, why: String) {
        let origin = self.origin(attr.pos);
        self.report.error(origin.clone(), format!("{plugin} `{}`: {why}", attr.name));
        self.draft.left_out.push((origin, format!("{plugin} `{}`", attr.name)));
    }

    pub fn attr_text(&mut self, plugin: &str, attr: &Attribute) -> Option<String> {
        text(&attr.value).map_err(|e| self.bad_value(plugin, attr, e)).ok()
    }

    pub fn attr_list(&mut self, plugin: &str, attr: &Attribute) -> Option<Vec<String>> {
        list(&attr.value).map_err(|e| self.bad_value(plugin, attr, e)).ok()
    }

    pub fn attr_bool(&mut self, plugin: &str, attr: &Attribute) -> Option<bool> {
        boolean(&attr.value).map_err(|e| self.bad_value(plugin, attr, e)).ok()
    }

    pub fn attr_number(&mut self, plugin: &str, attr: &Attribute) -> Option<f64> {
        number(&attr.value).map_err(|e| self.bad_value(plugin, attr, e)).ok()
    }

    pub fn attr_pairs(&mut self, plugin: &str, attr: &Attribute) -> Option<Vec<(String, Value)>> {
        pairs(&attr.value).map_err(|e| self.bad_value(plugin, attr, e)).ok()
    }

    pub fn attr_codec(&mut self, plugin: &str, attr: &Attribute) -> Option<String> {
        codec_name(&attr.value).map_err(|e| self.bad_value(plugin, attr, e)).ok()
    }

    /// A string map (`add_field`, `rename`) as a TOML inline table.
    pub fn attr_string_map(&mut self, plugin: &str, attr: &Attribute) -> Option<Toml> {
        let pairs = self.attr_pairs(plugin, attr)?;
        let mut out = Vec::new();
        for (k, v) in pairs {
            match text(&v) {
                Ok(t) => out.push((k, Toml::String(t))),
                Err(e) => {
                    self.bad_value(plugin, attr, format!("`{k}`: {e}"));
                    return None;
                }
            }
        }
        Some(inline(out))
    }

    /// A literal secret, or `None` with a note when it is a `${VAR}` reference.
    pub fn secret(&mut self, plugin: &str, attr: &Attribute, env: &str) -> Option<String> {
        let value = self.attr_text(plugin, attr)?;
        if is_reference(&value) {
            let origin = self.origin(attr.pos);
            self.report.warn(
                origin,
                format!(
                    "{plugin} `{}` is the keystore or environment reference {value}; logpipe reads it from the \
                     environment variable {env} instead (not written to the pipeline file)",
                    attr.name
                ),
            );
            return None;
        }
        let origin = self.origin(attr.pos);
        self.report.warn(
            origin,
            format!(
                "{plugin} `{}` is written into the pipeline file: keep it mode 0600, or set {env} instead",
                attr.name
            ),
        );
        Some(value)
    }
}

pub(crate) fn translate(sources: &[Source], draft: &mut Draft, report: &mut Report) {
    let mut t = Translator {
        draft,
        report,
        file: String::new(),
        drops: Vec::new(),
        input_fields: Vec::new(),
        beats: None,
        agent_inputs: 0,
    };
    let mut filters = Vec::new();
    for source in sources {
        t.file = source.file.to_string();
        for section in &source.config.sections {
            match section.kind {
                SectionKind::Input => walk(&mut t, &section.body, &Path::default(), &mut |t, p, _| inputs::input(t, p)),
                SectionKind::Filter => {
                    walk(&mut t, &section.body, &Path::default(), &mut |t, p, when| filter(t, p, when, &mut filters))
                }
                SectionKind::Output => walk(&mut t, &section.body, &Path::default(), &mut outputs::output),
            }
        }
    }
    // Fields and tags the inputs add come first, as Logstash adds them when the event is read.
    let mut first = std::mem::take(&mut t.input_fields);
    first.extend(filters);
    t.draft.filters.extend(first);
    apply_drops(&mut t);
    t.draft.beats_input = t.beats.clone();
    outputs::finish(&mut t);
}

/// The conditions around an item: each `Ok` is a translated condition (all must hold); an `Err` says
/// why one could not be translated (everything under it is then left out).
#[derive(Clone, Default)]
pub(crate) struct Path {
    pub conditions: Vec<When>,
    pub failed: Option<String>,
}

impl Path {
    pub fn when(&self) -> Option<When> {
        When::all(self.conditions.clone())
    }
}

type Visit<'v, 'a> = dyn FnMut(&mut Translator<'a>, &Plugin, Option<When>) + 'v;

fn walk<'a>(t: &mut Translator<'a>, items: &[Item], path: &Path, visit: &mut Visit<'_, 'a>) {
    for item in items {
        match item {
            Item::Plugin(p) => match &path.failed {
                Some(why) => {
                    let why = why.clone();
                    t.left_out(p.pos, format!("`{}` under a condition", p.name), why)
                }
                None => visit(t, p, path.when()),
            },
            Item::Branch(b) => {
                let mut previous: Vec<When> = Vec::new();
                let mut previous_failed: Option<String> = None;
                for arm in &b.arms {
                    let mut arm_path = path.clone();
                    arm_path.conditions.extend(previous.iter().cloned().map(When::negate));
                    if arm_path.failed.is_none() {
                        arm_path.failed = previous_failed.clone();
                    }
                    match conditions::translate(&arm.condition) {
                        Ok(w) => {
                            arm_path.conditions.push(w.clone());
                            previous.push(w);
                        }
                        Err(why) => {
                            let mut printed = String::new();
                            super::print::condition(&mut printed, &arm.condition);
                            let why = format!("condition `{printed}` at {}: {why}", t.origin(arm.pos));
                            if arm_path.failed.is_none() {
                                arm_path.failed = Some(why.clone());
                            }
                            previous_failed.get_or_insert(why);
                        }
                    }
                    walk(t, &arm.body, &arm_path, visit);
                }
                if let Some(body) = &b.otherwise {
                    let mut else_path = path.clone();
                    else_path.conditions.extend(previous.into_iter().map(When::negate));
                    if else_path.failed.is_none() {
                        else_path.failed = previous_failed;
                    }
                    walk(t, body, &else_path, visit);
                }
            }
        }
    }
}

/// Settings every filter takes and applies after a successful match (Logstash's common options).
const COMMON_ON_SUCCESS: &[&str] = &["add_field", "add_tag", "remove_field", "remove_tag"];
const IGNORED_COMMON: &[&str] = &["id", "enable_metric", "periodic_flush", "ecs_compatibility"];

pub(crate) fn new_filter(t: &Translator, p: &Plugin, kind: &str, when: &Option<When>) -> Table {
    let mut table = Table::from(&t.origin(p.pos), &format!("{} filter", p.name));
    table.set("type", kind);
    if let Some(w) = when {
        table.set("when", w.to_value());
    }
    table
}

fn filter(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    match p.name.as_str() {
        "grok" => super::filters::grok(t, p, when, out),
        "date" => super::filters::date(t, p, when, out),
        "mutate" => mutate(t, p, when, out),
        "json" => super::text_filters::json(t, p, when, out),
        "kv" => super::text_filters::kv(t, p, when, out),
        "dissect" => super::text_filters::dissect(t, p, when, out),
        "geoip" => super::text_filters::geoip(t, p, when, out),
        "useragent" => super::text_filters::useragent(t, p, when, out),
        "drop" => match when {
            Some(w) => {
                let origin = t.origin(p.pos);
                t.report.info(
                    origin.clone(),
                    "drop: events matching its condition are left out of every route (`drop_unmatched = true`); \
                     the condition is tested after all filters ran",
                );
                t.drops.push((origin, w));
            }
            None => t.left_out(p.pos, "drop filter", plugins::filter_advice("drop")),
        },
        name if plugins::FILTERS.contains(&name) => t.left_out(
            p.pos,
            format!("filter `{name}`"),
            format!("no equivalent in logpipe: {}", plugins::filter_advice(name)),
        ),
        name => t.left_out(
            p.pos,
            format!("filter `{name}`"),
            "unknown filter plugin: not one Logstash bundles; expected grok, date, mutate, json, kv, dissect, geoip, \
             useragent, drop or another Logstash filter",
        ),
    }
}

/// The `add_field`/`add_tag`/`remove_*` a filter applies after it succeeded, as a mutate filter after it
/// that runs only when the filter's failure tags are absent.
pub(crate) fn on_success(
    t: &mut Translator,
    p: &Plugin,
    when: &Option<When>,
    failure_tags: &[String],
) -> Option<Table> {
    let mut table = new_filter(t, p, "mutate", &None);
    table.comments = vec![format!("{} settings of the {} filter at {}", "add_*/remove_*", p.name, t.origin(p.pos))];
    mutate_common(t, p, &mut table);
    if table.entries.len() == 1 {
        return None;
    }
    let mut conditions: Vec<When> = when.iter().cloned().collect();
    conditions.extend(failure_tags.iter().map(|tag| When::Tag(tag.clone()).negate()));
    if let Some(w) = When::all(conditions) {
        table.set("when", w.to_value());
        // `when` must come right after `type` for readability; order does not matter to TOML.
    }
    Some(table)
}

fn mutate_common(t: &mut Translator, p: &Plugin, table: &mut Table) {
    let name = format!("{} filter", p.name);
    for attr in &p.attributes {
        match attr.name.as_str() {
            "add_field" => {
                if let Some(v) = t.attr_string_map(&name, attr) {
                    table.set("add_field", v);
                }
            }
            "add_tag" | "remove_tag" | "remove_field" => {
                if let Some(v) = t.attr_list(&name, attr) {
                    table.set(&attr.name, strings(v));
                }
            }
            _ => {}
        }
    }
}

fn mutate(t: &mut Translator, p: &Plugin, when: Option<When>, out: &mut Vec<Table>) {
    let mut table = new_filter(t, p, "mutate", &when);
    for attr in &p.attributes {
        match attr.name.as_str() {
            "rename" | "replace" => {
                if let Some(v) = t.attr_string_map("mutate filter", attr) {
                    table.set(&attr.name, v);
                }
            }
            name if COMMON_ON_SUCCESS.contains(&name) => {}
            name if IGNORED_COMMON.contains(&name) => {}
            "update" => {
                let origin = t.origin(attr.pos);
                t.report.warn(origin, "mutate `update` (set only if the field exists) becomes `replace` (always set)");
                if let Some(v) = t.attr_string_map("mutate filter", attr) {
                    table.set("replace", v);
                }
            }
            "convert" => super::text_filters::mutate_convert(t, attr, &mut table),
            "gsub" => super::text_filters::mutate_gsub(t, attr, &mut table),
            "lowercase" | "uppercase" => {
                if let Some(v) = t.attr_list("mutate filter", attr) {
                    table.set(&attr.name, strings(v));
                }
            }
            name @ ("capitalize" | "strip" | "split" | "join" | "merge" | "copy" | "coerce") => t.left_out(
                attr.pos,
                format!("mutate `{name}`"),
                "no equivalent in logpipe's mutate (rename, replace, convert, gsub, lowercase, uppercase, add_field, \
                 remove_field, add_tag, remove_tag)",
            ),
            name => t.left_out(attr.pos, format!("mutate `{name}`"), "not a mutate setting"),
        }
    }
    mutate_common(t, p, &mut table);
    let has_when = table.get("when").is_some();
    if table.entries.len() > 1 + usize::from(has_when) {
        out.push(table);
    }
}

/// `if [x] { drop {} }`: every route takes only events no drop condition holds for (events no route
/// takes are not stored, as in Logstash: see `outputs::finish`).
fn apply_drops(t: &mut Translator) {
    let Some(keep) = When::all(t.drops.iter().map(|(_, w)| w.clone().negate())) else { return };
    for route in &mut t.draft.routes {
        let combined = match route.get("when").cloned() {
            Some(w) => inline([("and", Toml::Array(vec![w, keep.to_value()]))]),
            None => keep.to_value(),
        };
        route.set("when", combined);
    }
}

/// Common input settings (`tags`, `type`, `add_field`) as a mutate filter.
pub(crate) fn input_fields(t: &mut Translator, p: &Plugin) {
    let name = format!("{} input", p.name);
    let mut table = Table::from(&t.origin(p.pos), &format!("tags, type and add_field of the {name}"));
    table.set("type", "mutate");
    let mut fields: BTreeMap<String, Toml> = BTreeMap::new();
    for attr in &p.attributes {
        match attr.name.as_str() {
            "tags" => {
                if let Some(v) = t.attr_list(&name, attr) {
                    table.set("add_tag", strings(v));
                }
            }
            "type" => {
                if let Some(v) = t.attr_text(&name, attr) {
                    fields.insert("type".into(), Toml::String(v));
                }
            }
            "add_field" => {
                if let Some(Toml::Table(m)) = t.attr_string_map(&name, attr) {
                    fields.extend(m);
                }
            }
            _ => {}
        }
    }
    if !fields.is_empty() {
        table.set("add_field", Toml::Table(fields.into_iter().collect()));
    }
    if table.entries.len() > 1 {
        t.input_fields.push(table);
    }
}
