//! The composable index template the indexer installs for its routes' index patterns: ECS mappings for
//! what the filters write (`ecs-mappings.json`: `source.ip` as `ip`, `source.geo.location` as
//! `geo_point`, `http.response.status_code` as `long`, `message` as `text`, other strings `keyword`, as
//! Filebeat's template maps them) and the index settings the config sets.
//!
//! The template carries a `version` (bumped with every change of the mappings) and, in `_meta`, a hash of
//! its whole body, so installing at every start is idempotent: an equal template is left alone, an older
//! or different one is replaced, and a newer one (from a newer logpipe) is kept with a warning.
//!
//! References: Elasticsearch "Create or update index template API" (`PUT _index_template/<name>`,
//! `version`, `priority`, `_meta`), OpenSearch "Index templates" (same API).

use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::ElasticsearchConfig;

/// Goes up by one whenever `ecs-mappings.json` or the template's shape changes.
pub const TEMPLATE_VERSION: u64 = 2;

const ECS_MAPPINGS: &str = include_str!("ecs-mappings.json");

/// What to do with the template found on the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Install {
    /// None there, or an older or different one: put ours.
    Put,
    /// Ours is already there.
    UpToDate,
    /// A newer logpipe installed a higher version; keep it.
    Newer(u64),
}

/// The template's name: `template_name`, or `<template_name>-data-streams` for the data streams' one.
pub fn name(config: &ElasticsearchConfig, data_stream: bool) -> String {
    if data_stream {
        format!("{}-data-streams", config.template_name)
    } else {
        config.template_name.clone()
    }
}

/// The template body for `index_patterns` with the settings of `config`; with `data_stream`, writes to
/// those names create data streams (and `create` is then the only action they take, as the indexer sends).
pub fn body(index_patterns: &[String], config: &ElasticsearchConfig, data_stream: bool) -> Value {
    let mappings: Value = serde_json::from_str(ECS_MAPPINGS).expect("ecs-mappings.json is valid JSON");
    let mut body = json!({
        "index_patterns": index_patterns,
        "priority": 200,
        "version": TEMPLATE_VERSION,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": config.number_of_shards,
                    "number_of_replicas": config.number_of_replicas,
                    "refresh_interval": config.refresh_interval,
                }
            },
            "mappings": mappings,
        },
        "_meta": { "managed_by": "logpipe" },
    });
    if data_stream {
        body["data_stream"] = json!({});
    }
    let hash = format!("{:016x}", xxh3_64(body.to_string().as_bytes()));
    body["_meta"]["hash"] = Value::String(hash);
    body
}

/// Decides from the answer to `GET _index_template/<name>` (`None` for 404) whether to put `ours`.
pub fn decide(existing: Option<&Value>, ours: &Value) -> Install {
    let Some(found) = existing
        .and_then(|v| v.get("index_templates"))
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(|t| t.get("index_template"))
    else {
        return Install::Put;
    };
    let version = found.get("version").and_then(Value::as_u64).unwrap_or(0);
    if version > TEMPLATE_VERSION {
        return Install::Newer(version);
    }
    if found.pointer("/_meta/hash") == ours.pointer("/_meta/hash") {
        Install::UpToDate
    } else {
        Install::Put
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ElasticsearchConfig {
        ElasticsearchConfig { number_of_replicas: 0, ..ElasticsearchConfig::default() }
    }

    #[test]
    fn body_has_ecs_types_and_settings() {
        let b = body(&["nginx_access-*".into()], &config(), false);
        let p = &b["template"]["mappings"]["properties"];
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(p["source"]["properties"]["geo"]["properties"]["location"]["type"], "geo_point");
        assert_eq!(p["http"]["properties"]["response"]["properties"]["status_code"]["type"], "long");
        assert_eq!(p["message"]["type"], "text");
        assert_eq!(p["@timestamp"]["type"], "date");
        assert_eq!(b["template"]["settings"]["index"]["number_of_replicas"], 0);
        assert_eq!(b["template"]["settings"]["index"]["refresh_interval"], "5s");
        assert_eq!(b["version"], TEMPLATE_VERSION);
        assert!(b.get("data_stream").is_none());
        let ds = body(&["logs-nginx.access-default".into()], &config(), true);
        assert_eq!(ds["data_stream"], json!({}));
        assert_ne!(ds["_meta"]["hash"], b["_meta"]["hash"]);
        assert_eq!(name(&config(), true), "logpipe-data-streams");
    }

    #[test]
    fn installs_only_when_missing_older_or_different() {
        let ours = body(&["a-*".into()], &config(), false);
        let wrap = |t: Value| json!({"index_templates": [{"name": "logpipe", "index_template": t}]});
        assert_eq!(decide(None, &ours), Install::Put);
        assert_eq!(decide(Some(&wrap(ours.clone())), &ours), Install::UpToDate);
        let other_patterns = body(&["a-*".into(), "b-*".into()], &config(), false);
        assert_eq!(decide(Some(&wrap(other_patterns)), &ours), Install::Put);
        let mut old = ours.clone();
        old["version"] = json!(1);
        old["_meta"]["hash"] = json!("old");
        assert_eq!(decide(Some(&wrap(old)), &ours), Install::Put);
        let mut newer = ours.clone();
        newer["version"] = json!(TEMPLATE_VERSION + 1);
        assert_eq!(decide(Some(&wrap(newer)), &ours), Install::Newer(TEMPLATE_VERSION + 1));
    }
}
