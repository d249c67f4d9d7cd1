//! filebeat.yml (and modules.d files): `filebeat.inputs` (log, filestream, stdin) become agent inputs,
//! `filebeat.modules` (nginx) become inputs plus the indexer's nginx filters, `output.kafka` becomes
//! `[agent.output]`, and the processors that map become input fields, tags or indexer filters.

use serde_yaml::{Mapping, Value as Yaml};

use crate::draft::{inline, strings, Draft, Table, Value as Toml};
use crate::error::{Error, Result};
use crate::report::{Origin, Report};
use crate::when::When;

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    draft: &'a mut Draft,
    report: &'a mut Report,
}

impl Ctx<'_> {
    fn left_out(&mut self, origin: Origin, what: impl Into<String>, why: impl Into<String>) {
        let what = what.into();
        self.report.error(origin.clone(), format!("{what}: {}", why.into()));
        self.draft.left_out.push((origin, what));
    }

    /// The first line at or after `from` whose text (trimmed) starts with `prefix`.
    fn line_of(&self, prefix: &str, from: usize) -> usize {
        self.text
            .lines()
            .enumerate()
            .skip(from.saturating_sub(1))
            .find(|(_, l)| l.trim_start().trim_start_matches("- ").starts_with(prefix))
            .map(|(i, _)| i + 1)
            .unwrap_or(from.max(1))
    }

    /// Lines where the items of the block list under `key:` start.
    fn item_lines(&self, key: &str) -> Vec<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        let Some(start) = lines.iter().position(|l| l.trim_start().starts_with(&format!("{key}:"))) else {
            return Vec::new();
        };
        let key_indent = indent(lines[start]);
        let mut items = Vec::new();
        let mut item_indent = None;
        for (i, line) in lines.iter().enumerate().skip(start + 1) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let ind = indent(line);
            if trimmed.starts_with("- ") || trimmed == "-" {
                if ind < key_indent {
                    break;
                }
                match item_indent {
                    None => {
                        item_indent = Some(ind);
                        items.push(i + 1);
                    }
                    Some(x) if x == ind => items.push(i + 1),
                    _ => {}
                }
            } else if ind <= key_indent {
                break;
            }
        }
        items
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Filebeat reads `output.kafka.hosts: x` and nested maps alike: dotted keys are expanded into maps.
fn expand(v: Yaml) -> Yaml {
    match v {
        Yaml::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in m {
                let v = expand(v);
                match k.as_str() {
                    Some(key) if key.contains('.') => {
                        let mut parts: Vec<&str> = key.split('.').collect();
                        let mut value = v;
                        while parts.len() > 1 {
                            let last = parts.pop().expect("more than one");
                            let mut m = Mapping::new();
                            m.insert(Yaml::String(last.to_string()), value);
                            value = Yaml::Mapping(m);
                        }
                        merge(&mut out, Yaml::String(parts[0].to_string()), value);
                    }
                    _ => merge(&mut out, k, v),
                }
            }
            Yaml::Mapping(out)
        }
        Yaml::Sequence(s) => Yaml::Sequence(s.into_iter().map(expand).collect()),
        other => other,
    }
}

fn merge(into: &mut Mapping, k: Yaml, v: Yaml) {
    match (into.get_mut(&k), v) {
        (Some(Yaml::Mapping(existing)), Yaml::Mapping(new)) => {
            for (k2, v2) in new {
                merge(existing, k2, v2);
            }
        }
        (_, v) => {
            into.insert(k, v);
        }
    }
}

fn get<'a>(v: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn texts(v: &Yaml) -> Option<Vec<String>> {
    match v {
        Yaml::Sequence(s) => s.iter().map(text).collect(),
        other => text(other).map(|s| vec![s]),
    }
}

fn truthy(v: Option<&Yaml>, default: bool) -> bool {
    match v {
        Some(Yaml::Bool(b)) => *b,
        Some(Yaml::String(s)) => s == "true",
        _ => default,
    }
}

pub(crate) fn to_toml(v: &Yaml) -> Toml {
    match v {
        Yaml::Null => Toml::String(String::new()),
        Yaml::Bool(b) => Toml::Boolean(*b),
        Yaml::Number(n) => n
            .as_i64()
            .map(Toml::Integer)
            .or_else(|| n.as_f64().map(Toml::Float))
            .unwrap_or_else(|| Toml::String(n.to_string())),
        Yaml::String(s) => Toml::String(s.clone()),
        Yaml::Sequence(s) => Toml::Array(s.iter().map(to_toml).collect()),
        Yaml::Mapping(m) => Toml::Table(
            m.iter().filter_map(|(k, v)| Some((text(k)?, to_toml(v)))).collect::<toml::map::Map<String, Toml>>(),
        ),
        Yaml::Tagged(t) => to_toml(&t.value),
    }
}

/// Duration strings pass through ("5m", "10s" mean the same to logpipe); numbers are seconds.
fn duration(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Number(n) => Some(format!("{n}s")),
        Yaml::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn translate(file: &str, text: &str, draft: &mut Draft, report: &mut Report) -> Result<()> {
    let root: Yaml = serde_yaml::from_str(text).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        Error::Syntax { file: file.to_string(), line, col, message: format!("YAML: {e}") }
    })?;
    let mut ctx = Ctx { file, text, draft, report };
    // A modules.d file is a list of modules at the top.
    if let Yaml::Sequence(modules) = &root {
        let lines: Vec<usize> =
            text.lines().enumerate().filter(|(_, l)| l.starts_with("- module")).map(|(i, _)| i + 1).collect();
        for (i, m) in modules.iter().enumerate() {
            module(&mut ctx, &expand(m.clone()), lines.get(i).copied().unwrap_or(1));
        }
        return Ok(());
    }
    if !matches!(root, Yaml::Mapping(_)) {
        return Err(Error::Syntax {
            file: file.to_string(),
            line: 1,
            col: 1,
            message: "expected a filebeat.yml mapping (filebeat.inputs, output.kafka, ...)".into(),
        });
    }
    let root = expand(root);
    let input_lines = ctx.item_lines("filebeat.inputs");
    let input_lines = if input_lines.is_empty() { ctx.item_lines("inputs") } else { input_lines };
    let first_input = ctx.draft.agent_inputs.len();
    if let Some(inputs) = get(&root, "filebeat.inputs").or_else(|| get(&root, "filebeat.prospectors")) {
        match inputs {
            Yaml::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let line = input_lines.get(i).copied().unwrap_or(1);
                    input(&mut ctx, item, line);
                }
            }
            _ => {
                let line = ctx.line_of("filebeat.inputs", 1);
                return Err(Error::Syntax {
                    file: file.to_string(),
                    line,
                    col: 1,
                    message: "filebeat.inputs: expected a list of inputs (`- type: filestream`)".into(),
                });
            }
        }
    }
    if let Some(Yaml::Sequence(modules)) = get(&root, "filebeat.modules") {
        let lines = ctx.item_lines("filebeat.modules");
        for (i, m) in modules.iter().enumerate() {
            module(&mut ctx, m, lines.get(i).copied().unwrap_or(1));
        }
    }
    if get(&root, "filebeat.config.modules").is_some() {
        let line = ctx.line_of("filebeat.config.modules", 1).max(ctx.line_of("config.modules", 1));
        ctx.report.warn(
            Origin::new(file, line),
            "filebeat.config.modules: the modules.d files are not read from here; import the enabled ones too \
             (`logpipe import filebeat.yml modules.d/nginx.yml ...`)",
        );
    }
    if let Some(Yaml::Sequence(processors)) = root.get("processors") {
        let line = ctx.line_of("processors:", 1);
        let first = first_input;
        for p in processors {
            global_processor(&mut ctx, p, line, first);
        }
    }
    output(&mut ctx, &root);
    Ok(())
}

fn input(ctx: &mut Ctx, item: &Yaml, line: usize) {
    let origin = Origin::new(ctx.file, line);
    let kind = item.get("type").and_then(text).unwrap_or_else(|| "log".into());
    if !truthy(item.get("enabled"), true) {
        ctx.report.info(origin, format!("{kind} input disabled (enabled: false): not imported"));
        return;
    }
    let mut table = Table::from(&origin, &format!("filebeat {kind} input"));
    match kind.as_str() {
        "log" | "filestream" => table.set("type", "file"),
        "stdin" => table.set("type", "stdin"),
        other => {
            return ctx.left_out(
                origin,
                format!("filebeat `{other}` input"),
                "no equivalent in logpipe's agent (inputs: log and filestream as `file`, stdin)",
            )
        }
    }
    let Yaml::Mapping(map) = item else {
        return ctx.left_out(origin, "filebeat input", "expected a mapping");
    };
    let mut fields: toml::map::Map<String, Toml> = toml::map::Map::new();
    let mut added_fields: toml::map::Map<String, Toml> = toml::map::Map::new();
    let mut tags: Vec<String> = Vec::new();
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        let at = Origin::new(ctx.file, ctx.line_of(&format!("{key}:"), line));
        match key {
            "type" | "enabled" | "id" | "pipeline" | "index" => {}
            "paths" | "exclude_files" | "include_lines" | "exclude_lines" => match texts(v) {
                Some(list) => table.set(key, strings(list)),
                None => ctx.left_out(at, format!("filebeat input `{key}`"), "expected a list of strings"),
            },
            "tags" => match texts(v) {
                Some(list) => tags.extend(list),
                None => ctx.left_out(at, "filebeat input `tags`", "expected a list of strings"),
            },
            "fields" => match to_toml(v) {
                Toml::Table(m) => fields.extend(m),
                _ => ctx.left_out(at, "filebeat input `fields`", "expected a mapping"),
            },
            "fields_under_root" => table.set("fields_under_root", truthy(Some(v), false)),
            "multiline" => {
                if let Some(ml) = multiline(ctx, v, at) {
                    table.set("multiline", ml);
                }
            }
            "parsers" => {
                for parser in v.as_sequence().into_iter().flatten() {
                    if let Some(ml) = parser.get("multiline") {
                        if let Some(ml) = multiline(ctx, ml, at.clone()) {
                            table.set("multiline", ml);
                        }
                    } else {
                        let name = parser.as_mapping().and_then(|m| m.keys().next()).and_then(text).unwrap_or_default();
                        ctx.left_out(at.clone(), format!("filestream parser `{name}`"), "only the multiline parser translates");
                    }
                }
            }
            "close_inactive" => {
                if let Some(d) = duration(v) {
                    table.set("close_inactive", d);
                }
            }
            "close" => {
                if let Some(d) = get(v, "on_state_change.inactive").and_then(duration) {
                    table.set("close_inactive", d);
                }
                if get(v, "on_state_change.removed").is_some() || get(v, "on_state_change.renamed").is_some() {
                    ctx.report.info(at, "close.on_state_change.removed/renamed: logpipe keeps a removed or renamed file open until it is read to the end and inactive");
                }
            }
            "scan_frequency" => {
                if let Some(d) = duration(v) {
                    table.set("scan_frequency", d);
                }
            }
            "prospector" => {
                if let Some(d) = get(v, "scanner.check_interval").and_then(duration) {
                    table.set("scan_frequency", d);
                }
            }
            "tail_files" => {
                if truthy(Some(v), false) {
                    table.set("start_position", "end");
                }
            }
            "max_bytes" => {
                if let Some(n) = v.as_u64() {
                    table.set("max_line_bytes", n as i64);
                }
            }
            "message_max_bytes" => {
                if let Some(n) = v.as_u64() {
                    table.set("max_line_bytes", n as i64);
                }
            }
            "close_removed" | "close_renamed" | "close_eof" | "clean_removed" => ctx.report.info(
                at,
                format!("{key}: logpipe reads removed and renamed files to the end, and forgets files gone for [agent] clean_removed (24h)"),
            ),
            "clean_inactive" | "ignore_older" | "close_timeout" => ctx.report.warn(
                at,
                format!("{key} is not translated: logpipe reads every matching file, whatever its age, to the end"),
            ),
            "encoding" => {
                let e = text(v).unwrap_or_default();
                if e != "utf-8" && e != "plain" && e != "utf8" {
                    ctx.left_out(at, format!("encoding {e}"), "logpipe reads UTF-8 (invalid bytes are replaced)");
                }
            }
            "processors" => {
                for p in v.as_sequence().into_iter().flatten() {
                    input_processor(ctx, p, at.clone(), &mut tags, &mut added_fields);
                }
            }
            "harvester_buffer_size" | "backoff" | "max_backoff" | "backoff_factor" | "symlinks" | "harvester_limit"
            | "file_identity" | "clean" | "rotation" => {
                ctx.report.info(at, format!("{key}: handled by logpipe's agent itself (ignored)"))
            }
            other => ctx.report.warn(at, format!("filebeat input `{other}` is not translated")),
        }
    }
    if !tags.is_empty() {
        table.set("tags", strings(tags));
    }
    add_processor_fields(&mut fields, added_fields, under_root(&table));
    if !fields.is_empty() {
        table.set("fields", Toml::Table(fields));
    }
    ctx.draft.agent_inputs.push(table);
}

fn under_root(input: &Table) -> bool {
    input.get("fields_under_root").and_then(Toml::as_bool).unwrap_or(false)
}

/// Merges what an `add_fields` processor adds into an input's `fields`. Filebeat's `add_fields` writes
/// under `fields.` whatever the input's `fields_under_root` says, so under a root input they nest in a
/// `fields` table of their own (which the agent then puts at the top, as `fields`).
fn add_processor_fields(
    fields: &mut toml::map::Map<String, Toml>,
    added: toml::map::Map<String, Toml>,
    under_root: bool,
) {
    if added.is_empty() {
        return;
    }
    if !under_root {
        return fields.extend(added);
    }
    match fields.entry("fields").or_insert_with(|| Toml::Table(toml::map::Map::new())) {
        Toml::Table(nested) => nested.extend(added),
        other => *other = Toml::Table(added),
    }
}

fn multiline(ctx: &mut Ctx, v: &Yaml, at: Origin) -> Option<Toml> {
    let kind = v.get("type").and_then(text).unwrap_or_else(|| "pattern".into());
    if kind != "pattern" {
        ctx.left_out(at, format!("multiline type {kind}"), "logpipe's multiline joins by pattern only");
        return None;
    }
    let Some(pattern) = v.get("pattern").and_then(text) else {
        ctx.left_out(at, "multiline", "it has no pattern");
        return None;
    };
    let mut pairs: Vec<(String, Toml)> = vec![("pattern".into(), Toml::String(pattern))];
    pairs.push(("negate".into(), Toml::Boolean(truthy(v.get("negate"), false))));
    if let Some(m) = v.get("match").and_then(text) {
        pairs.push(("match".into(), Toml::String(m)));
    }
    if let Some(n) = v.get("max_lines").and_then(|n| n.as_i64()) {
        pairs.push(("max_lines".into(), Toml::Integer(n)));
    }
    if let Some(d) = v.get("timeout").and_then(duration) {
        pairs.push(("timeout".into(), Toml::String(d)));
    }
    if v.get("flush_pattern").is_some() {
        ctx.report.warn(at, "multiline flush_pattern is not translated");
    }
    Some(inline(pairs))
}

/// add_fields → fields; add_tags → tags (per input).
fn input_processor(
    ctx: &mut Ctx,
    p: &Yaml,
    at: Origin,
    tags: &mut Vec<String>,
    fields: &mut toml::map::Map<String, Toml>,
) {
    let Some((name, body)) = p.as_mapping().and_then(|m| m.iter().next()) else { return };
    let name = text(name).unwrap_or_default();
    match name.as_str() {
        "add_tags" => match body.get("tags").and_then(texts) {
            Some(t) if body.get("target").is_none() => tags.extend(t),
            _ => ctx.left_out(at, "add_tags with a target", "logpipe's tags are the event's `tags`"),
        },
        "add_fields" => {
            let target = body.get("target").and_then(text).unwrap_or_else(|| "fields".into());
            match (target.as_str(), body.get("fields").map(to_toml)) {
                ("fields", Some(Toml::Table(m))) => fields.extend(m),
                _ => ctx.left_out(
                    at,
                    format!("add_fields with target {target:?}"),
                    "logpipe's agent adds fields under `fields` (or at the top with fields_under_root)",
                ),
            }
        }
        other => processor_unsupported(ctx, other, at),
    }
}

fn processor_unsupported(ctx: &mut Ctx, name: &str, at: Origin) {
    match name {
        "add_host_metadata" => {
            ctx.report.info(at, "add_host_metadata: logpipe sets host.name (not the other host.* fields)")
        }
        "add_cloud_metadata" | "add_docker_metadata" | "add_kubernetes_metadata" | "add_locale" | "add_id" => {
            ctx.left_out(at, format!("processor {name}"), "no equivalent in logpipe")
        }
        other => ctx.left_out(
            at,
            format!("processor {other}"),
            "no equivalent in logpipe (translated: add_fields, add_tags, drop_fields)",
        ),
    }
}

/// Top-level processors apply to every event: add_fields/add_tags to every input of this file,
/// drop_fields as an indexer mutate.
fn global_processor(ctx: &mut Ctx, p: &Yaml, line: usize, first_input: usize) {
    let Some((name, body)) = p.as_mapping().and_then(|m| m.iter().next()) else { return };
    let name = text(name).unwrap_or_default();
    let at = Origin::new(ctx.file, ctx.line_of(&format!("{name}:"), line));
    match name.as_str() {
        "add_tags" | "add_fields" => {
            let count = ctx.draft.agent_inputs.len();
            for i in first_input..count {
                let mut tags = Vec::new();
                let mut fields = toml::map::Map::new();
                input_processor(ctx, p, at.clone(), &mut tags, &mut fields);
                let input = &mut ctx.draft.agent_inputs[i];
                if !tags.is_empty() {
                    let mut all: Vec<Toml> = input.get("tags").and_then(|t| t.as_array()).cloned().unwrap_or_default();
                    all.extend(tags.into_iter().map(Toml::String));
                    input.set("tags", Toml::Array(all));
                }
                if !fields.is_empty() {
                    let mut all = input.get("fields").and_then(|t| t.as_table()).cloned().unwrap_or_default();
                    add_processor_fields(&mut all, fields, under_root(input));
                    input.set("fields", Toml::Table(all));
                }
            }
        }
        "drop_fields" => match body.get("fields").and_then(texts) {
            Some(list) => {
                let mut table = Table::from(&at, "filebeat drop_fields processor");
                table.set("type", "mutate");
                if body.get("when").is_some() {
                    return ctx.left_out(at, "drop_fields with `when`", "processor conditions are not translated");
                }
                table.set("remove_field", strings(list));
                ctx.draft.beat_filters.push((at, table));
            }
            None => ctx.left_out(at, "drop_fields", "expected `fields: [...]`"),
        },
        other => processor_unsupported(ctx, other, at),
    }
}

/// `- module: nginx` with `access` and `error` filesets.
fn module(ctx: &mut Ctx, m: &Yaml, line: usize) {
    let origin = Origin::new(ctx.file, line);
    let name = m.get("module").and_then(text).unwrap_or_default();
    if name != "nginx" {
        return ctx.left_out(origin, format!("filebeat module `{name}`"), "logpipe translates the nginx module only");
    }
    for (fileset, default_path, filter) in [
        ("access", "/var/log/nginx/access.log*", "nginx_access"),
        ("error", "/var/log/nginx/error.log*", "nginx_error"),
    ] {
        let Some(set) = m.get(fileset) else { continue };
        if !truthy(set.get("enabled"), true) {
            continue;
        }
        let at = Origin::new(ctx.file, ctx.line_of(&format!("{fileset}:"), line));
        let paths = get(set, "var.paths").and_then(texts).unwrap_or_else(|| vec![default_path.into()]);
        let mut input = Table::from(&at, &format!("filebeat module nginx, fileset {fileset}"));
        input.set("type", "file");
        input.set("paths", strings(paths));
        input.set("exclude_files", strings([r"\.gz$"]));
        input.set_noted("tags", strings([fileset]), Some("the fileset, for the indexer's nginx filter and routes"));
        if fileset == "error" {
            input.set(
                "multiline",
                inline([
                    ("pattern", Toml::String(r"^\d{4}/\d{2}/\d{2} ".into())),
                    ("negate", Toml::Boolean(true)),
                    ("match", Toml::String("after".into())),
                ]),
            );
        }
        ctx.draft.agent_inputs.push(input);
        let mut f = Table::from(&at, &format!("the nginx module's {fileset} ingest pipeline"));
        f.set("type", filter);
        f.set("when", When::Tag(fileset.into()).to_value());
        ctx.draft.beat_filters.push((at.clone(), f));
        ctx.report.info(
            at,
            format!(
                "module nginx {fileset}: a file input tagged `{fileset}`, parsed by the indexer's {filter} filter \
                 (ECS fields, @timestamp from the line) instead of the module's Elasticsearch ingest pipeline"
            ),
        );
    }
}

fn output(ctx: &mut Ctx, root: &Yaml) {
    let Some(Yaml::Mapping(outputs)) = root.get("output") else { return };
    for (name, body) in outputs {
        let name = text(name).unwrap_or_default();
        // `output.kafka:` or `kafka:` under `output:`.
        let dotted = format!("output.{name}");
        let line = if ctx.text.lines().any(|l| l.trim_start().starts_with(&dotted)) {
            ctx.line_of(&dotted, 1)
        } else {
            ctx.line_of(&format!("{name}:"), ctx.line_of("output:", 1))
        };
        let origin = Origin::new(ctx.file, line);
        if !truthy(body.get("enabled"), true) {
            continue;
        }
        match name.as_str() {
            "kafka" => kafka(ctx, body, origin),
            "logstash" => {
                let mut table = Table::from(&origin, "filebeat output.logstash (through logpipe's broker)");
                table.set("brokers", strings(["127.0.0.1:9092"]));
                table.set("topic", "beats");
                ctx.draft.agent_output = Some(table);
                ctx.draft.beats_output = Some(origin.clone());
                ctx.report.info(
                    origin,
                    "output.logstash: the agent ships to the embedded broker's topic `beats`, which the indexer \
                     (the Logstash beats input) reads",
                );
            }
            other => ctx.left_out(
                origin,
                format!("output.{other}"),
                "logpipe's agent ships to Kafka (output.kafka) or, with a Logstash beats input, to the indexer",
            ),
        }
    }
}

fn kafka(ctx: &mut Ctx, body: &Yaml, origin: Origin) {
    let mut table = Table::from(&origin, "filebeat output.kafka");
    let at = |ctx: &Ctx, key: &str| Origin::new(ctx.file, ctx.line_of(&format!("{key}:"), origin.line));
    let mut librdkafka: Vec<(String, Toml)> = Vec::new();
    let Yaml::Mapping(map) = body else {
        return ctx.left_out(origin, "output.kafka", "expected a mapping");
    };
    // Filebeat's defaults where they differ from logpipe's.
    table.set_noted("acks", 1, Some("Filebeat's default required_acks; \"all\" waits for the broker's fsync"));
    table.set_noted("compression", "gzip", Some("Filebeat's default"));
    table.set_noted("client_id", "beats", Some("Filebeat's default"));
    let ssl = truthy(get(body, "ssl.enabled"), get(body, "ssl").is_some());
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        let here = at(ctx, key);
        match key {
            "enabled" => {}
            "hosts" => match texts(v) {
                Some(h) => table.set("brokers", strings(h)),
                None => ctx.left_out(here, "output.kafka hosts", "expected a list of host:port"),
            },
            "topic" => {
                let topic = text(v).unwrap_or_default();
                if let Some(field) = topic.strip_prefix("%{[").and_then(|t| t.strip_suffix("]}")) {
                    topic_from_field(ctx, &mut table, field, here);
                } else if topic.contains("%{") {
                    ctx.left_out(
                        here,
                        format!("topic {topic:?}"),
                        "a topic from event fields translates only as %{[fields.NAME]}",
                    );
                } else {
                    table.set("topic", topic);
                }
            }
            "topics" => ctx.left_out(
                here,
                "output.kafka topics (rules)",
                "set each input's topic by hand (`topic` in [[agent.inputs]])",
            ),
            "required_acks" => match v.as_i64() {
                Some(-1) => table.set("acks", "all"),
                Some(n @ (0 | 1)) => table.set("acks", n),
                _ => ctx.left_out(here, "required_acks", "expected -1, 0 or 1"),
            },
            "compression" => match text(v).as_deref() {
                Some(c @ ("none" | "gzip" | "snappy" | "lz4" | "zstd")) => table.set("compression", c),
                other => {
                    ctx.left_out(here, format!("compression {other:?}"), "expected none, gzip, snappy, lz4 or zstd")
                }
            },
            "compression_level" => ctx.report.info(here, "compression_level: the codec's default level is used"),
            "partition" => {
                if let Some(hash) = v.get("hash") {
                    table.set("partitioner", "hash");
                    match hash.get("hash").and_then(texts).as_deref() {
                        Some([field]) => table.set("key", field.as_str()),
                        Some(_) => {
                            ctx.left_out(here, "partition.hash with several fields", "logpipe keys by one field")
                        }
                        None => table.set_noted(
                            "key",
                            "host.name",
                            Some("Filebeat hashes the event; logpipe needs a field"),
                        ),
                    }
                } else {
                    table.set("partitioner", "round_robin");
                }
            }
            "version" => ctx.report.info(here, "version: the agent negotiates the protocol version with the broker"),
            "client_id" => table.set("client_id", text(v).unwrap_or_default()),
            "max_message_bytes" => {
                if let Some(n) = v.as_i64() {
                    table.set("max_message_bytes", n);
                }
            }
            "bulk_flush_frequency" => {
                if let Some(d) = duration(v) {
                    let ms = logpipe_duration_ms(&d);
                    table.set("linger_ms", ms);
                }
            }
            "username" => librdkafka.push(("sasl.username".into(), Toml::String(text(v).unwrap_or_default()))),
            "password" => {
                let p = text(v).unwrap_or_default();
                if p.contains("${") {
                    ctx.report.warn(
                        here,
                        format!(
                            "password is the reference {p}: set sasl.password in the librdkafka table of [agent.output]"
                        ),
                    );
                } else {
                    ctx.report.warn(
                        here,
                        "password is written into the pipeline file (sasl.password in [agent.output]): keep it mode 0600",
                    );
                    librdkafka.push(("sasl.password".into(), Toml::String(p)));
                }
            }
            "sasl" => {
                if let Some(m) = v.get("mechanism").and_then(text) {
                    librdkafka.push(("sasl.mechanism".into(), Toml::String(m)));
                }
            }
            "ssl" => {
                if let Some(ca) = v.get("certificate_authorities").and_then(texts) {
                    if let Some(first) = ca.first() {
                        librdkafka.push(("ssl.ca.location".into(), Toml::String(first.clone())));
                    }
                }
                if let Some(c) = v.get("certificate").and_then(text) {
                    librdkafka.push(("ssl.certificate.location".into(), Toml::String(c)));
                }
                if let Some(k) = v.get("key").and_then(text) {
                    librdkafka.push(("ssl.key.location".into(), Toml::String(k)));
                }
                if v.get("verification_mode").and_then(text).as_deref() == Some("none") {
                    librdkafka.push(("enable.ssl.certificate.verification".into(), Toml::String("false".into())));
                    ctx.report.warn(
                        here,
                        "ssl.verification_mode none: the broker's certificate is not verified, as in the source",
                    );
                }
            }
            "codec" => ctx.left_out(here, "output.kafka codec", "logpipe sends the JSON event"),
            "headers" => ctx.left_out(here, "output.kafka headers", "logpipe sends no record headers"),
            "key" => ctx.left_out(here, "output.kafka key format string", "use partition.hash with one field"),
            _ => ctx.report.info(here, format!("output.kafka `{key}` has no logpipe equivalent (ignored)")),
        }
    }
    let has_user = librdkafka.iter().any(|(k, _)| k == "sasl.username");
    if has_user || ssl {
        let protocol = match (has_user, ssl) {
            (true, true) => "sasl_ssl",
            (true, false) => "sasl_plaintext",
            _ => "ssl",
        };
        librdkafka.insert(0, ("security.protocol".into(), Toml::String(protocol.into())));
        if has_user && !librdkafka.iter().any(|(k, _)| k == "sasl.mechanism") {
            librdkafka.push(("sasl.mechanism".into(), Toml::String("PLAIN".into())));
        }
    }
    table.set_agent_kafka_properties(librdkafka);
    // brokers first, for the reader.
    if let Some(pos) = table.entries.iter().position(|(k, _, _)| k == "brokers") {
        let b = table.entries.remove(pos);
        table.entries.insert(0, b);
    }
    ctx.draft.agent_output = Some(table);
}

fn logpipe_duration_ms(d: &str) -> i64 {
    let d = d.trim();
    let (num, unit) = d.split_at(d.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(d.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    (n * match unit {
        "ms" => 1.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => 1000.0,
    }) as i64
}

/// `topic: '%{[fields.log_topic]}'`: each input's topic is its own `fields.log_topic`.
fn topic_from_field(ctx: &mut Ctx, table: &mut Table, field: &str, at: Origin) {
    let Some(name) = field.strip_prefix("fields.") else {
        return ctx.left_out(
            at,
            format!("topic %{{[{field}]}}"),
            "a topic from event fields translates only as %{[fields.NAME]}",
        );
    };
    let mut missing = 0;
    for input in &mut ctx.draft.agent_inputs {
        match input.get("fields").and_then(|f| f.get(name)).and_then(|v| v.as_str()).map(str::to_string) {
            Some(topic) => input.set("topic", topic),
            None => missing += 1,
        }
    }
    if missing > 0 {
        ctx.report.warn(
            at,
            format!(
                "topic %{{[{field}]}}: {missing} input(s) have no fields.{name}; they use the output's topic `logs`"
            ),
        );
    } else {
        ctx.report.info(at, format!("topic %{{[{field}]}}: each input's topic is its fields.{name}"));
    }
    table.set("topic", "logs");
}
