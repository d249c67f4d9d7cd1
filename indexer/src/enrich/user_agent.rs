//! User-agent parsing with the `ua-parser` crate on uap-core's `regexes.yaml` (Debian's `uap-core`
//! package installs it at `/usr/share/uap-core/regexes.yaml`), the rules Elasticsearch's `user_agent`
//! ingest processor uses. Results are cached by the user-agent string: real traffic repeats a few
//! thousand agents, and a cached answer costs a hash lookup instead of a regex scan.
//!
//! Fields, as ECS and the `user_agent` processor name them: `name`, `version`, `os.name`,
//! `os.version`, `os.full`, `device.name` (uap-core's "Other" for an unknown family is left out, as
//! Elasticsearch leaves out `name`, and kept for `device.name`, as it does).

use std::path::Path;
use std::sync::Arc;

use quick_cache::sync::Cache;
use serde_json::{Map, Value};

use super::Answer;

/// A compiled uap-core rule set with its cache.
pub struct UserAgentParser {
    extractor: ua_parser::Extractor<'static>,
    cache: Cache<Box<str>, Arc<Answer>>,
}

impl std::fmt::Debug for UserAgentParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgentParser").field("cached", &self.cache.len()).finish()
    }
}

impl UserAgentParser {
    /// Loads and compiles `regexes.yaml`. The error says which file and what is wrong.
    pub fn load(path: &Path, cache_size: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_yaml(&text, cache_size).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_yaml(text: &str, cache_size: usize) -> Result<Self, String> {
        // The rules' fields are `Cow`s that serde fills owned, so the extractor borrows nothing.
        let regexes: ua_parser::Regexes<'static> =
            serde_yaml::from_str(text).map_err(|e| format!("not a uap-core regexes.yaml: {e}"))?;
        let extractor = ua_parser::Extractor::try_from(regexes).map_err(|e| format!("bad rule: {e}"))?;
        Ok(Self { extractor, cache: Cache::new(cache_size.max(1)) })
    }

    /// The ECS `user_agent` fields for `original` (without `original` itself).
    pub fn parse(&self, original: &str) -> Arc<Answer> {
        if let Some(hit) = self.cache.get(original) {
            return hit;
        }
        let fields = Answer::new(self.extract(original));
        self.cache.insert(original.into(), fields.clone());
        fields
    }

    fn extract(&self, original: &str) -> Map<String, Value> {
        let (ua, os, device) = self.extractor.extract(original);
        let mut out = Map::new();
        if let Some(ua) = ua.filter(|u| u.family != "Other") {
            out.insert("name".into(), Value::String(ua.family.to_string()));
            if let Some(version) = join_version([ua.major, ua.minor, ua.patch]) {
                out.insert("version".into(), Value::String(version));
            }
        }
        if let Some(os) = os.filter(|o| o.os != "Other") {
            let mut o = Map::new();
            let version = join_version([os.major.as_deref(), os.minor.as_deref(), os.patch.as_deref()]);
            let full = match &version {
                Some(v) => format!("{} {v}", os.os),
                None => os.os.to_string(),
            };
            o.insert("name".into(), Value::String(os.os.to_string()));
            if let Some(v) = version {
                o.insert("version".into(), Value::String(v));
            }
            o.insert("full".into(), Value::String(full));
            out.insert("os".into(), Value::Object(o));
        }
        let device = device.map(|d| d.device.to_string()).unwrap_or_else(|| "Other".into());
        let mut d = Map::new();
        d.insert("name".into(), Value::String(device));
        out.insert("device".into(), Value::Object(d));
        out
    }
}

/// `major.minor.patch`, as far as the parts go (empty parts end it).
fn join_version(parts: [Option<&str>; 3]) -> Option<String> {
    let parts: Vec<&str> = parts.into_iter().map_while(|p| p.filter(|s| !s.is_empty())).collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A few rules in uap-core's shape, enough to check the mapping to ECS.
    const RULES: &str = r#"
user_agent_parsers:
  - regex: '(Firefox)/(\d+)\.(\d+)'
  - regex: '(curl)/(\d+)\.(\d+)\.(\d+)'
os_parsers:
  - regex: 'Windows NT 10\.0'
    os_replacement: 'Windows'
    os_v1_replacement: '10'
  - regex: '(Ubuntu)'
device_parsers:
  - regex: '(iPhone)'
    device_replacement: 'iPhone'
    brand_replacement: 'Apple'
"#;

    #[test]
    fn ecs_fields_from_rules() {
        let p = UserAgentParser::from_yaml(RULES, 16).unwrap();
        let ff = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0";
        assert_eq!(
            Value::Object(p.parse(ff).fields().clone()),
            json!({"name": "Firefox", "version": "120.0", "os": {"name": "Windows", "version": "10", "full": "Windows 10"},
                   "device": {"name": "Other"}})
        );
        assert_eq!(p.parse("curl/8.5.0").fields()["version"], "8.5.0");
        assert_eq!(Value::Object(p.parse("x").fields().clone()), json!({"device": {"name": "Other"}}));
        // Cached: the same Arc comes back.
        assert!(Arc::ptr_eq(&p.parse(ff), &p.parse(ff)));
    }

    #[test]
    fn bad_rules_are_errors() {
        assert!(UserAgentParser::from_yaml("a: [", 1).is_err());
        assert!(UserAgentParser::from_yaml(
            "user_agent_parsers: []\nos_parsers: []\ndevice_parsers:\n  - regex: '('\n",
            1
        )
        .is_err());
    }
}
