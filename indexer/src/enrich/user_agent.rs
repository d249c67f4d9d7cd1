//! User-agent parsing with the `ua-parser` crate on uap-core's `regexes.yaml` (Debian's `uap-core`
//! package installs it at `/usr/share/uap-core/regexes.yaml`), the rules Elasticsearch's `user_agent`
//! ingest processor uses. Results are cached by the user-agent string: real traffic repeats a few
//! thousand agents, and a cached answer costs a hash lookup instead of a regex scan.
//!
//! Fields, as ECS and the `user_agent` processor name them: `name`, `version`, `os.name`,
//! `os.version`, `os.full`, `device.name` (uap-core's "Other" for an unknown family is left out, as
//! Elasticsearch leaves out `name`, and kept for `device.name`, as it does).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use quick_cache::sync::Cache;
use serde_json::{Map, Value};

use super::Answer;

/// A compiled uap-core rule set with its cache.
pub struct UserAgentParser {
    /// Set once the rules are compiled: at once by `from_yaml`, on a thread of its own by `load`. None when
    /// a rule did not compile there (logged once); `parse` then adds nothing.
    extractor: Arc<OnceLock<Option<ua_parser::Extractor<'static>>>>,
    cache: Cache<Box<str>, Arc<Answer>>,
}

impl std::fmt::Debug for UserAgentParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgentParser").field("cached", &self.cache.len()).finish()
    }
}

impl UserAgentParser {
    /// Reads and parses `regexes.yaml` (the error says which file and what is wrong), then compiles the
    /// rules in the background: compiling uap-core's ~1,000 regexes takes 3–5 s on the 2-core development
    /// machine, and held `logpipe run` back from being ready for that long (scripts/bench-startup.sh). The
    /// first `parse` waits for the compilation; the broker, the agent and the consumer start meanwhile.
    pub fn load(path: &Path, cache_size: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let regexes = parse_rules(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let extractor = Arc::new(OnceLock::new());
        let (slot, rules) = (extractor.clone(), path.to_owned());
        std::thread::Builder::new()
            .name("uap-compile".into())
            .spawn(move || {
                let compiled = ua_parser::Extractor::try_from(regexes)
                    .map_err(|e| {
                        tracing::warn!("user-agent parsing off: {}: bad rule: {e}; fix the file or set indexer.enrichment.user_agent_regexes", rules.display());
                    })
                    .ok();
                let _ = slot.set(compiled);
            })
            .map_err(|e| format!("cannot start the thread compiling {}: {e}", path.display()))?;
        Ok(Self { extractor, cache: Cache::new(cache_size.max(1)) })
    }

    /// Parses and compiles the rules before returning.
    pub fn from_yaml(text: &str, cache_size: usize) -> Result<Self, String> {
        let extractor = ua_parser::Extractor::try_from(parse_rules(text)?).map_err(|e| format!("bad rule: {e}"))?;
        Ok(Self { extractor: Arc::new(OnceLock::from(Some(extractor))), cache: Cache::new(cache_size.max(1)) })
    }

    /// The ECS `user_agent` fields for `original` (without `original` itself).
    pub fn parse(&self, original: &str) -> Arc<Answer> {
        if let Some(hit) = self.cache.get(original) {
            return hit;
        }
        let Some(extractor) = self.extractor.wait() else { return Answer::new(Map::new()) };
        let fields = Answer::new(extract(extractor, original));
        self.cache.insert(original.into(), fields.clone());
        fields
    }
}

/// The rules as `ua-parser` takes them. Their fields are `Cow`s that serde fills owned, so the extractor
/// borrows nothing.
fn parse_rules(text: &str) -> Result<ua_parser::Regexes<'static>, String> {
    serde_yaml::from_str(text).map_err(|e| format!("not a uap-core regexes.yaml: {e}"))
}

fn extract(extractor: &ua_parser::Extractor<'static>, original: &str) -> Map<String, Value> {
    let (ua, os, device) = extractor.extract(original);
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
    fn load_compiles_in_the_background_and_parse_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regexes.yaml");
        std::fs::write(&path, RULES).unwrap();
        let p = UserAgentParser::load(&path, 16).unwrap();
        assert_eq!(p.parse("curl/8.5.0").fields()["name"], "curl");

        // A rule that does not compile turns parsing off (logged), it does not fail the start.
        std::fs::write(&path, "user_agent_parsers: []\nos_parsers: []\ndevice_parsers:\n  - regex: '('\n").unwrap();
        let p = UserAgentParser::load(&path, 16).unwrap();
        assert!(p.parse("curl/8.5.0").fields().is_empty());
        // Unreadable or not YAML: still an error at once, naming the file.
        std::fs::write(&path, "a: [").unwrap();
        assert!(UserAgentParser::load(&path, 16).unwrap_err().contains("regexes.yaml"));
        assert!(UserAgentParser::load(&dir.path().join("missing.yaml"), 16).unwrap_err().contains("missing.yaml"));
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
