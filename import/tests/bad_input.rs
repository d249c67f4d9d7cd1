//! Bad input fails with the file, line and column, and what was expected there.

mod support;

use support::fixtures;

fn import_error(name: &str) -> String {
    let path = fixtures().join("bad").join(name);
    match logpipe_import::import(&[path]) {
        Err(e) => e.to_string(),
        Ok(imported) => imported.report.errors().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"),
    }
}

#[test]
fn unbalanced_braces() {
    let err = import_error("unbalanced.conf");
    assert!(err.contains("unbalanced.conf:5:1:"), "{err}");
    assert!(err.contains("expected") && err.contains("`}`") && err.contains("the end of the file"), "{err}");
}

#[test]
fn missing_arrow() {
    let err = import_error("missing-arrow.conf");
    assert!(err.contains("missing-arrow.conf:2:"), "{err}");
    assert!(err.contains("`=>`"), "{err}");
    assert!(err.contains("found `\"x\" }`"), "{err}");
}

#[test]
fn unknown_plugin() {
    let err = import_error("unknown-plugin.conf");
    assert!(err.starts_with("(Error)"), "{err}");
    assert!(err.contains("unknown-plugin.conf:3:3: filter `grokk`: unknown filter plugin"), "{err}");
    assert!(err.contains("expected grok, date, mutate"), "{err}");
}

#[test]
fn wrong_value_type() {
    let err = import_error("wrong-type.conf");
    assert!(
        err.contains("wrong-type.conf:3:5: kafka input `topics`: expected an array of strings, found a hash"),
        "{err}"
    );
}

#[test]
fn yaml_error() {
    let err = import_error("tabs.yml");
    assert!(err.contains("tabs.yml:4:"), "{err}");
    assert!(err.contains("YAML"), "{err}");
}

#[test]
fn a_file_that_is_not_there() {
    let err = logpipe_import::import(&[fixtures().join("bad/nope.conf")]).unwrap_err().to_string();
    assert!(err.contains("cannot read") && err.contains("nope.conf"), "{err}");
}
