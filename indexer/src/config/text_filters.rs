//! Config of the filters that take text apart (`json`, `kv`, `dissect`) and of mutate's value
//! operations (`convert`, `gsub`, `uppercase`, `lowercase`), with their compilation. Names and defaults
//! follow Logstash's plugins; errors name the key, e.g. `indexer.filters[2].mapping.message`.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use super::{MutateConfig, WhenConfig};
use crate::error::{Error, Result};
use crate::event::FieldRef;
use crate::filters::dissect::DISSECT_FAILURE;
use crate::filters::json::JSON_PARSE_FAILURE;
use crate::filters::{Conversion, Dissect, Dissection, Gsub, Json, Kv, MutateValues};

fn bad(key: String, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{key}: {why}"))
}

fn field(key: String, s: &str) -> Result<FieldRef> {
    FieldRef::parse(s).map_err(|e| bad(key, e))
}

fn chars(key: String, s: &str) -> Result<Vec<char>> {
    if s.is_empty() {
        return Err(bad(key, "needs at least one character"));
    }
    Ok(s.chars().collect())
}

/// `type = "json"`: parse JSON text in a field (Logstash's `json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Field holding the JSON text. Default `"message"`.
    pub source: String,
    /// Where the parsed value goes. Default: none, the object's keys go to the top level.
    pub target: Option<String>,
    /// Leave text that is not JSON alone, without a tag. Default `false`.
    pub skip_on_invalid_json: bool,
    /// Tags added when the text is not JSON. Default `["_jsonparsefailure"]`.
    pub tag_on_failure: Vec<String>,
}

impl Default for JsonConfig {
    fn default() -> Self {
        Self {
            when: None,
            source: "message".into(),
            target: None,
            skip_on_invalid_json: false,
            tag_on_failure: vec![JSON_PARSE_FAILURE.into()],
        }
    }
}

impl JsonConfig {
    pub(super) fn compile(&self, key: &str) -> Result<Json> {
        Ok(Json {
            target: self.target.as_deref().map(|t| field(format!("{key}.target"), t)).transpose()?,
            skip_on_invalid_json: self.skip_on_invalid_json,
            tag_on_failure: self.tag_on_failure.clone(),
            ..Json::new(field(format!("{key}.source"), &self.source)?)
        })
    }
}

/// `type = "kv"`: `key=value` pairs in a field (Logstash's `kv`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Default `"message"`.
    pub source: String,
    /// Where the keys go. Default: none, the top level.
    pub target: Option<String>,
    /// Characters that separate pairs. Default `" "`.
    pub field_split: String,
    /// Characters that separate a key from its value. Default `"="`.
    pub value_split: String,
    /// Keep only these keys. Default: all.
    pub include_keys: Vec<String>,
    /// Drop these keys. Default none.
    pub exclude_keys: Vec<String>,
    /// Characters stripped from both ends of keys. Default none.
    pub trim_key: String,
    /// Characters stripped from both ends of values. Default none.
    pub trim_value: String,
    /// Put before every key. Default none.
    pub prefix: String,
    /// Take a value in `(…)`, `[…]` or `<…>` whole, without the brackets. Default `true`.
    pub include_brackets: bool,
    /// A repeated key keeps every value (`false`: only distinct ones). Default `true`.
    pub allow_duplicate_values: bool,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            when: None,
            source: "message".into(),
            target: None,
            field_split: " ".into(),
            value_split: "=".into(),
            include_keys: Vec::new(),
            exclude_keys: Vec::new(),
            trim_key: String::new(),
            trim_value: String::new(),
            prefix: String::new(),
            include_brackets: true,
            allow_duplicate_values: true,
        }
    }
}

impl KvConfig {
    pub(super) fn compile(&self, key: &str) -> Result<Kv> {
        let field_split = chars(format!("{key}.field_split"), &self.field_split)?;
        let value_split = chars(format!("{key}.value_split"), &self.value_split)?;
        if let Some(c) = field_split.iter().find(|c| value_split.contains(c)) {
            return Err(bad(format!("{key}.value_split"), format!("{c:?} is also in field_split")));
        }
        Ok(Kv {
            target: self.target.as_deref().map(|t| field(format!("{key}.target"), t)).transpose()?,
            field_split,
            value_split,
            include_keys: self.include_keys.clone(),
            exclude_keys: self.exclude_keys.clone(),
            trim_key: self.trim_key.chars().collect(),
            trim_value: self.trim_value.chars().collect(),
            prefix: self.prefix.clone(),
            include_brackets: self.include_brackets,
            allow_duplicate_values: self.allow_duplicate_values,
            ..Kv::new(field(format!("{key}.source"), &self.source)?)
        })
    }
}

/// `type = "dissect"`: split a field by the text between `%{…}` fields (Logstash's `dissect`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DissectConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Field → pattern, e.g. `{ message = "%{ts} %{+ts} %{level} %{msg}" }`. Required.
    pub mapping: BTreeMap<String, String>,
    /// Between the parts of `%{+field}`. Default `" "`.
    pub append_separator: String,
    /// Tags added when a pattern does not fit. Default `["_dissectfailure"]`.
    pub tag_on_failure: Vec<String>,
}

impl Default for DissectConfig {
    fn default() -> Self {
        Self {
            when: None,
            mapping: BTreeMap::new(),
            append_separator: " ".into(),
            tag_on_failure: vec![DISSECT_FAILURE.into()],
        }
    }
}

impl DissectConfig {
    pub(super) fn compile(&self, key: &str) -> Result<Dissect> {
        if self.mapping.is_empty() {
            return Err(bad(
                format!("{key}.mapping"),
                "needs at least one field, e.g. mapping = { message = \"%{ts} %{level} %{msg}\" }",
            ));
        }
        let dissections = self
            .mapping
            .iter()
            .map(|(source, pattern)| {
                let k = format!("{key}.mapping.{source}");
                Dissection::new(field(k.clone(), source)?, pattern).map_err(|e| bad(k, e))
            })
            .collect::<Result<_>>()?;
        Ok(Dissect {
            append_separator: self.append_separator.clone(),
            tag_on_failure: self.tag_on_failure.clone(),
            ..Dissect::new(dissections)
        })
    }
}

impl MutateConfig {
    /// `convert`, `gsub`, `uppercase` and `lowercase`, compiled.
    pub(super) fn values(&self, key: &str) -> Result<MutateValues> {
        let convert = self
            .convert
            .iter()
            .map(|(f, to)| {
                let k = format!("{key}.convert.{f}");
                let to = Conversion::parse(to)
                    .ok_or_else(|| bad(k.clone(), format!("{to:?} is not integer, float, string or boolean")))?;
                Ok((field(k, f)?, to))
            })
            .collect::<Result<_>>()?;
        let gsub = self
            .gsub
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let k = format!("{key}.gsub[{i}]");
                let [f, pattern, replacement] = rule.as_slice() else {
                    return Err(bad(k, "needs [field, regex, replacement], e.g. [\"message\", \"\\\\s+\", \" \"]"));
                };
                Ok(Gsub {
                    field: field(k.clone(), f)?,
                    pattern: Regex::new(pattern).map_err(|e| bad(format!("{k}[1]"), e))?,
                    replacement: replacement.clone(),
                })
            })
            .collect::<Result<_>>()?;
        let list = |name: &str, fields: &[String]| -> Result<Vec<FieldRef>> {
            fields.iter().enumerate().map(|(i, f)| field(format!("{key}.{name}[{i}]"), f)).collect()
        };
        Ok(MutateValues {
            convert,
            gsub,
            uppercase: list("uppercase", &self.uppercase)?,
            lowercase: list("lowercase", &self.lowercase)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use logpipe_config::Valid;

    use super::super::tests::load;
    use super::super::Compiled;
    use crate::event::Event;
    use serde_json::json;

    #[test]
    fn the_text_filters_load_and_run_in_order() {
        let cfg = load(
            r#"
            [[indexer.filters]]
            type = "json"
            target = "doc"
            [[indexer.filters]]
            type = "kv"
            source = "[doc][query]"
            field_split = "&"
            target = "q"
            [[indexer.filters]]
            type = "dissect"
            mapping = { "[doc][line]" = "%{ts} %{+ts} %{level->} %{msg}" }
            [[indexer.filters]]
            type = "mutate"
            convert = { "[q][n]" = "integer" }
            gsub = [["msg", "\\s+", " "]]
            lowercase = ["level"]
            "#,
        )
        .unwrap();
        let compiled = Compiled::try_from(&cfg).unwrap();
        let mut e = Event::from_map(
            json!({"message": r#"{"query": "n=5&x=y", "line": "2026-12-04 10:00 WARN   disk   full"}"#})
                .as_object()
                .unwrap()
                .clone(),
        );
        compiled.filters.apply(&mut e);
        let m = e.as_map();
        assert_eq!(m["q"], json!({"n": 5, "x": "y"}));
        assert_eq!(
            (&m["ts"], &m["level"], &m["msg"]),
            (&json!("2026-12-04 10:00"), &json!("warn"), &json!("disk full"))
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (toml, key) in [
            ("[[indexer.filters]]\ntype = \"json\"\ntarget = \"[a\"\n", "indexer.filters[0].target"),
            ("[[indexer.filters]]\ntype = \"kv\"\nfield_split = \"\"\n", "indexer.filters[0].field_split"),
            ("[[indexer.filters]]\ntype = \"kv\"\nvalue_split = \" \"\n", "indexer.filters[0].value_split"),
            ("[[indexer.filters]]\ntype = \"dissect\"\n", "indexer.filters[0].mapping"),
            (
                "[[indexer.filters]]\ntype = \"dissect\"\nmapping = { message = \"%{a}%{b}\" }\n",
                "indexer.filters[0].mapping.message",
            ),
            ("[[indexer.filters]]\ntype = \"mutate\"\nconvert = { n = \"int\" }\n", "indexer.filters[0].convert.n"),
            ("[[indexer.filters]]\ntype = \"mutate\"\ngsub = [[\"m\", \"x\"]]\n", "indexer.filters[0].gsub[0]"),
            (
                "[[indexer.filters]]\ntype = \"mutate\"\ngsub = [[\"m\", \"(\", \"\"]]\n",
                "indexer.filters[0].gsub[0][1]",
            ),
            ("[[indexer.filters]]\ntype = \"mutate\"\nuppercase = [\"a]\"]\n", "indexer.filters[0].uppercase[0]"),
        ] {
            let cfg = load(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
            let err = Valid::new(cfg).and_then(crate::Indexer::new).expect_err(toml).to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let err = load("[[indexer.filters]]\ntype = \"kv\"\nsplit = \"&\"\n").unwrap_err().to_string();
        assert!(err.contains("split"), "{err}");
    }
}
