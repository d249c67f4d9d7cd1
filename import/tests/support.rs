//! Shared by the import tests: the fixture directory and the report's unsupported plugins.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use logpipe_import::{Report, Severity};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/import")
}

/// `section name` of every Error that names a plugin with no equivalent.
pub fn unsupported(report: &Report) -> BTreeSet<String> {
    let re = regex::Regex::new(r"^(input|filter|output) `([^`]+)`").unwrap();
    report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .filter_map(|d| re.captures(&d.message).map(|c| format!("{} {}", &c[1], &c[2])))
        .collect()
}

/// The `# unsupported: a b, c d` header of a corpus file.
pub fn expected_unsupported(text: &str) -> BTreeSet<String> {
    let first = text.lines().next().unwrap_or_default();
    let list = first.strip_prefix("# unsupported:").unwrap_or_else(|| panic!("no `# unsupported:` header: {first}"));
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub fn parse_toml(text: &str) -> toml::Value {
    toml::from_str(text).unwrap_or_else(|e| panic!("the pipeline is not TOML: {e}\n{text}"))
}
