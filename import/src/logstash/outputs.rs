//! Logstash outputs: each `elasticsearch` output becomes a route (its conditions, its index) and the one
//! `[indexer.output.elasticsearch]`; `stdout` and `file` map onto the indexer's other outputs.

use base64::Engine;

use super::ast::*;
use super::plugins;
use super::translate::Translator;
use crate::draft::{Table, Value as Toml};
use crate::when::When;

const COMMON: &[&str] = &["id", "enable_metric", "workers", "codec", "ecs_compatibility"];

pub(crate) fn output(t: &mut Translator, p: &Plugin, when: Option<When>) {
    match p.name.as_str() {
        "elasticsearch" | "opensearch" => elasticsearch(t, p, when),
        "stdout" => {
            let origin = t.origin(p.pos);
            let output = t.draft.output.get_or_insert_with(|| Table::from(&origin, "stdout output"));
            output.set("stdout", true);
            if when.is_some() {
                t.report.warn(origin, "stdout under a condition: logpipe prints every stored document");
            } else {
                t.report.info(origin, "stdout: logpipe prints each stored document as one JSON line (codec ignored)");
            }
        }
        "file" => file(t, p, when),
        "kafka" => t.left_out(
            p.pos,
            "output `kafka`",
            "logpipe's indexer writes to Elasticsearch or to files, not back to Kafka; use `logpipe agent` or a Kafka \
             client to produce to another topic",
        ),
        name if plugins::OUTPUTS.contains(&name) => t.left_out(
            p.pos,
            format!("output `{name}`"),
            "no equivalent in logpipe (outputs: elasticsearch, file, stdout)",
        ),
        name => t.left_out(
            p.pos,
            format!("output `{name}`"),
            "unknown output plugin: not one Logstash bundles; expected elasticsearch, file or stdout",
        ),
    }
}

fn url(host: &str, https: bool) -> String {
    if host.contains("://") {
        host.to_string()
    } else {
        let host = if host.contains(':') { host.to_string() } else { format!("{host}:9200") };
        format!("{}://{host}", if https { "https" } else { "http" })
    }
}

fn elasticsearch(t: &mut Translator, p: &Plugin, when: Option<When>) {
    const P: &str = "elasticsearch output";
    let mut es = Table::from(&t.origin(p.pos), P);
    let mut route = Table::from(&t.origin(p.pos), P);
    if let Some(w) = &when {
        route.set("when", w.to_value());
    }
    let https = p
        .get("ssl")
        .or_else(|| p.get("ssl_enabled"))
        .and_then(|a| super::values::boolean(&a.value).ok())
        .unwrap_or(false);
    let mut hosts = vec![url("127.0.0.1:9200", https)];
    let mut index = None;
    let mut data_stream = false;
    let mut password_from_env = false;
    let (mut ds_type, mut ds_dataset, mut ds_namespace) =
        ("logs".to_string(), "generic".to_string(), "default".to_string());
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "hosts" => {
                if let Some(v) = t.attr_list(P, attr) {
                    hosts = v.iter().map(|h| url(h, https)).collect();
                }
            }
            "index" => index = t.attr_text(P, attr),
            "user" => {
                if let Some(v) = t.attr_text(P, attr) {
                    es.set("user", v);
                }
            }
            "password" => match t.secret(P, attr, "LOGPIPE_INDEXER__OUTPUT__ELASTICSEARCH__PASSWORD") {
                Some(v) => es.set("password", v),
                None => password_from_env = true,
            },
            "api_key" => {
                if let Some(v) = t.secret(P, attr, "LOGPIPE_INDEXER__OUTPUT__ELASTICSEARCH__API_KEY (base64 of id:api_key)") {
                    // Logstash takes `id:api_key`; logpipe sends the header value Elasticsearch issues,
                    // base64 of the same.
                    let encoded = if v.contains(':') { base64::engine::general_purpose::STANDARD.encode(&v) } else { v };
                    es.set("api_key", encoded);
                }
            }
            "cloud_id" | "cloud_auth" => t.left_out(
                attr.pos,
                format!("elasticsearch `{}`", attr.name),
                "logpipe connects by URL: set hosts to the deployment's Elasticsearch endpoint and user/password",
            ),
            "ssl" | "ssl_enabled" => {}
            "cacert" | "ssl_certificate_authorities" => {
                if let Some(v) = t.attr_list(P, attr) {
                    if v.len() > 1 {
                        t.report.warn(origin, "several CA files: logpipe reads one ca_file; put them into one PEM bundle");
                    }
                    if let Some(first) = v.into_iter().next() {
                        es.set("ca_file", first);
                    }
                }
            }
            "ssl_certificate_verification" | "ssl_verification_mode" => {
                let off = super::values::text(&attr.value).is_ok_and(|v| v == "false" || v == "none");
                if off {
                    t.left_out(
                        attr.pos,
                        format!("elasticsearch `{}` (verification off)", attr.name),
                        "logpipe always verifies the server certificate; give it the CA with ca_file",
                    );
                }
            }
            "truststore" | "ssl_truststore_path" | "keystore" | "ssl_keystore_path" | "ssl_certificate" | "ssl_key" => {
                t.left_out(
                    attr.pos,
                    format!("elasticsearch `{}`", attr.name),
                    "logpipe takes a PEM CA bundle (ca_file) and no client certificate",
                )
            }
            "truststore_password" | "ssl_truststore_password" | "keystore_password" | "ssl_keystore_password" => {}
            "document_id" => {
                let v = t.attr_text(P, attr).unwrap_or_default();
                if v.contains("[event][id]") {
                    t.report.info(origin, "document_id: logpipe always uses event.id as _id");
                } else {
                    t.report.warn(
                        origin,
                        format!(
                            "document_id {v:?}: logpipe's _id is the event's stable event.id (the agent's), or \
                             topic-partition-offset for events without one"
                        ),
                    );
                }
            }
            "action" => match t.attr_text(P, attr).as_deref() {
                Some("create") => {}
                Some("index") => t.report.info(
                    origin,
                    "action index: logpipe writes with `create`, so a resent event is not indexed twice (409 counts as done)",
                ),
                Some(other) => t.left_out(
                    attr.pos,
                    format!("elasticsearch action `{other}`"),
                    "logpipe only creates documents",
                ),
                None => {}
            },
            "data_stream" => {
                data_stream = super::values::text(&attr.value).is_ok_and(|v| v == "true");
            }
            "data_stream_type" => ds_type = t.attr_text(P, attr).unwrap_or(ds_type),
            "data_stream_dataset" => ds_dataset = t.attr_text(P, attr).unwrap_or(ds_dataset),
            "data_stream_namespace" => ds_namespace = t.attr_text(P, attr).unwrap_or(ds_namespace),
            "data_stream_auto_routing" | "data_stream_sync_fields" => {
                if super::values::text(&attr.value).is_ok_and(|v| v == "true") {
                    t.report.warn(
                        origin,
                        format!("{}: logpipe writes to the data stream named by the settings, not by each event's data_stream.* fields", attr.name),
                    );
                }
            }
            "ilm_enabled" | "ilm_rollover_alias" | "ilm_pattern" | "ilm_policy" => t.report.warn(
                origin,
                format!(
                    "{}: logpipe writes daily indices named by `index` and creates no rollover alias; attach the ILM \
                     policy with an index template (index.lifecycle.name) or delete old daily indices",
                    attr.name
                ),
            ),
            "manage_template" => {
                if let Some(v) = t.attr_bool(P, attr) {
                    es.set("manage_template", v);
                }
            }
            "template_name" => {
                if let Some(v) = t.attr_text(P, attr) {
                    es.set("template_name", v);
                }
            }
            "template" | "template_overwrite" | "template_api" => t.report.warn(
                origin,
                format!("{}: logpipe installs its own template (mapping @timestamp as a date); install yours with the _index_template API", attr.name),
            ),
            "http_compression" => {
                if let Some(v) = t.attr_bool(P, attr) {
                    es.set("compression", v);
                }
            }
            "timeout" => {
                if let Some(v) = t.attr_number(P, attr) {
                    es.set("request_timeout", format!("{}s", v as u64));
                }
            }
            "pipeline" => t.left_out(
                attr.pos,
                "elasticsearch `pipeline` (ingest pipeline)",
                "logpipe does not name an ingest pipeline per request; set index.default_pipeline in an index template",
            ),
            "routing" | "parent" | "join_field" => t.left_out(
                attr.pos,
                format!("elasticsearch `{}`", attr.name),
                "logpipe sets no custom routing",
            ),
            "retry_initial_interval" | "retry_max_interval" | "retry_on_conflict" | "pool_max" | "pool_max_per_route"
            | "resurrect_delay" | "validate_after_inactivity" | "sniffing" | "sniffing_delay" | "healthcheck_path"
            | "dlq_custom_codes" | "dlq_on_failed_indexname_interpolation" | "silence_errors_in_log"
            | "compression_level" | "doc_as_upsert" | "script" | "script_type" | "script_lang" | "script_var_name"
            | "scripted_upsert" | "upsert" | "version" | "version_type" | "path" | "custom_headers" | "parameters" => {
                t.report.info(origin, format!("elasticsearch `{}` is not needed in logpipe (ignored)", attr.name))
            }
            name if COMMON.contains(&name) => {}
            name => t.report.warn(origin, format!("elasticsearch `{name}` is not translated")),
        }
    }
    let index = if data_stream {
        let origin = t.origin(p.pos);
        t.report.info(
            origin,
            "data_stream: logpipe creates documents in the data stream by name; the template that makes it a data \
             stream is Elasticsearch's (logs-*-*), so logpipe's own template is turned off",
        );
        es.set("manage_template", false);
        format!("{ds_type}-{ds_dataset}-{ds_namespace}")
    } else {
        match index {
            Some(i) => i,
            None => {
                let origin = t.origin(p.pos);
                t.report.info(origin, "no index: Logstash's classic default logstash-%{+yyyy.MM.dd}");
                "logstash-%{+yyyy.MM.dd}".to_string()
            }
        }
    };
    if index.contains("@metadata") {
        let origin = t.origin(p.pos);
        t.report.warn(
            origin,
            format!("index {index:?} names [@metadata] fields, which logpipe's events do not have; set the names in the index"),
        );
    }
    if password_from_env {
        // user and password go together: both come from the environment then.
        if let Some(user) = es.get("user").and_then(|u| u.as_str()).map(str::to_string) {
            es.entries.retain(|(k, _, _)| k != "user");
            let origin = t.origin(p.pos);
            t.report.warn(
                origin,
                format!("set LOGPIPE_INDEXER__OUTPUT__ELASTICSEARCH__USER={user} with the password's variable (user and password go together)"),
            );
        }
    }
    route.set("index", index);
    es.set("hosts", crate::draft::strings(&hosts));
    match &t.draft.elasticsearch {
        None => t.draft.elasticsearch = Some(order(es)),
        Some(existing) => {
            let same = ["hosts", "user", "password", "api_key", "ca_file"].iter().all(|k| existing.get(k) == es.get(k));
            if !same {
                return t.left_out(
                    p.pos,
                    "a second elasticsearch output to another cluster or with other credentials",
                    "logpipe's indexer writes to one Elasticsearch cluster; run a second indexer (another group_id) for the other",
                );
            }
        }
    }
    t.draft.routes.push(route);
}

/// `hosts` first, as people read it.
fn order(mut es: Table) -> Table {
    if let Some(pos) = es.entries.iter().position(|(k, _, _)| k == "hosts") {
        let hosts = es.entries.remove(pos);
        es.entries.insert(0, hosts);
    }
    es
}

fn file(t: &mut Translator, p: &Plugin, when: Option<When>) {
    let Some(path) = p.get("path").and_then(|a| super::values::text(&a.value).ok()) else {
        return t.left_out(p.pos, "file output", "it has no `path`");
    };
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) if !dir.contains("%{") => {
            (if dir.is_empty() { "/" } else { dir }.to_string(), name.to_string())
        }
        _ => {
            return t.left_out(
                p.pos,
                "file output",
                "its directory has a %{...} reference; logpipe writes to one directory",
            )
        }
    };
    let index = name.rsplit_once('.').map(|(stem, _)| stem.to_string()).unwrap_or(name.clone());
    let origin = t.origin(p.pos);
    if let Some(existing) = &t.draft.file_output {
        if existing.get("path") != Some(&Toml::String(dir.clone())) {
            return t.left_out(
                p.pos,
                "a second file output in another directory",
                "logpipe writes files to one directory",
            );
        }
    } else {
        let mut table = Table::from(&origin, "file output");
        table.set("path", dir.as_str());
        t.draft.file_output = Some(table);
    }
    t.report.warn(
        origin.clone(),
        format!(
            "file output {path}: logpipe writes NDJSON documents to {dir}/{index}.ndjson (one file per index name)"
        ),
    );
    let mut route = Table::from(&origin, "file output");
    if let Some(w) = &when {
        route.set("when", w.to_value());
    }
    route.set("index", index);
    t.draft.routes.push(route);
}

/// After all outputs: events no output takes are not stored (Logstash drops them too), and what logpipe's
/// first-match routing changes is said.
pub(crate) fn finish(t: &mut Translator) {
    if t.draft.elasticsearch.is_some() && t.draft.file_output.is_some() {
        let origin = t.draft.file_output.as_ref().and_then(|f| f.comments.first()).cloned().unwrap_or_default();
        t.report.error(
            crate::report::Origin::new("(pipeline)", 0),
            format!("both elasticsearch and file outputs ({origin}): logpipe's indexer writes to one of them; the file output is left out"),
        );
        t.draft.file_output = None;
    }
    if t.draft.routes.is_empty() {
        return;
    }
    let indexer = t.draft.indexer.get_or_insert_with(Table::default);
    if indexer.get("drop_unmatched").is_none() {
        indexer.set_noted("drop_unmatched", true, Some("as in Logstash, an event no output takes is not stored"));
    }
    let routes = t.draft.routes.len();
    if let Some(i) = t.draft.routes[..routes - 1].iter().position(|r| r.get("when").is_none()) {
        let origin = t.draft.routes[i].comments.first().cloned().unwrap_or_default();
        t.report.push(
            crate::report::Severity::Warning,
            crate::report::Origin::new("(pipeline)", 0),
            format!(
                "{origin}: an output without a condition before others: Logstash sends each event to every \
                 output it matches, logpipe stores it once, in the first matching route's index"
            ),
        );
    } else if routes > 1 {
        t.report.push(
            crate::report::Severity::Info,
            crate::report::Origin::new("(pipeline)", 0),
            "several outputs became routes: an event both conditions hold for is stored once, by the first route \
             (Logstash would write it to both)",
        );
    }
}
