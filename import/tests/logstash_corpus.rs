//! The corpus of Logstash configs in tests/import/logstash: every file parses, prints and parses again to
//! the same tree, and its report names exactly the plugins its header lists.

mod support;

use std::path::PathBuf;

use logpipe_import::logstash::{parse, print};
use support::*;

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("logstash"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "corpus too small: {files:?}");
    files
}

#[test]
fn every_file_parses_and_prints_back_to_the_same_tree() {
    let mut all = corpus();
    all.extend(std::fs::read_dir(fixtures().join("logstash/conf.d")).unwrap().map(|e| e.unwrap().path()));
    for path in all {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let tree = parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        let printed = print(&tree);
        let again =
            parse("printed", &printed).unwrap_or_else(|e| panic!("{name} printed does not parse: {e}\n{printed}"));
        assert_eq!(tree, again, "{name}: printed and parsed again differs\n{printed}");
    }
}

#[test]
fn the_report_lists_exactly_the_unsupported_plugins() {
    for path in corpus() {
        let text = std::fs::read_to_string(&path).unwrap();
        let imported = logpipe_import::import(std::slice::from_ref(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unsupported(&imported.report),
            expected_unsupported(&text),
            "{}:\n{}",
            path.display(),
            imported.report
        );
        parse_toml(&imported.pipeline);
    }
}

#[test]
fn a_conf_d_directory_is_one_pipeline() {
    let imported = logpipe_import::import(&[fixtures().join("logstash/conf.d")]).unwrap();
    assert!(unsupported(&imported.report).is_empty(), "{}", imported.report);
    let p = parse_toml(&imported.pipeline);
    assert_eq!(p["indexer"]["input"]["topics"][0].as_str(), Some("orders"));
    assert_eq!(
        p["indexer"]["filters"][0]["match"]["message"][0].as_str(),
        Some("order %{INT:[order][id]:int} by %{USERNAME:[user][name]}")
    );
    assert_eq!(p["indexer"]["routes"][0]["index"].as_str(), Some("orders-%{+YYYY.MM.dd}"));
    // The comments point back at each file.
    for file in ["10-input.conf:3", "20-filter.conf:2", "90-output.conf:2"] {
        assert!(imported.pipeline.contains(file), "no reference to {file}:\n{}", imported.pipeline);
    }
    // patterns_dir that is not there is a warning naming it.
    assert!(imported.report.to_string().contains("/nonexistent/patterns"), "{}", imported.report);
}

#[test]
fn the_issue_pipeline_translates_to_routes_by_tag() {
    let imported = logpipe_import::import(&[fixtures().join("logstash/issue-nginx.conf")]).unwrap();
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let p = parse_toml(&imported.pipeline);
    let input = &p["indexer"]["input"];
    assert_eq!(input["brokers"][0].as_str(), Some("127.0.0.1:9092"));
    assert_eq!(input["topics"][0].as_str(), Some("nginx"));
    assert_eq!(input["codec"].as_str(), Some("json"));
    assert_eq!(input["auto_offset_reset"].as_str(), Some("latest"));
    assert_eq!(input["group_id"].as_str(), Some("logstash"));
    let routes = p["indexer"]["routes"].as_array().unwrap();
    assert_eq!(routes[0]["when"]["tag"].as_str(), Some("access"));
    assert_eq!(routes[0]["index"].as_str(), Some("nginx_access-%{+YYYY.MM.dd}"));
    assert_eq!(routes[1]["when"]["tag"].as_str(), Some("error"));
    assert_eq!(p["indexer"]["output"]["elasticsearch"]["hosts"][0].as_str(), Some("http://127.0.0.1:9200"));
    assert_eq!(p["indexer"]["drop_unmatched"].as_bool(), Some(true));
    assert!(imported.pipeline.contains("issue-nginx.conf:5:27"), "{}", imported.pipeline);
}

#[test]
fn a_topics_pattern_matches_whole_names_as_in_the_java_client() {
    let imported = logpipe_import::import(&[fixtures().join("logstash/kafka-secure.conf")]).unwrap();
    let p = parse_toml(&imported.pipeline);
    let topics = p["indexer"]["input"]["topics"].as_array().unwrap();
    assert_eq!(topics, &[toml::Value::String("^(?:logs-.*)$".into())]);
    let pattern = regex::Regex::new(topics[0].as_str().unwrap()).unwrap();
    assert!(pattern.is_match("logs-nginx"));
    assert!(!pattern.is_match("old-logs-nginx"), "Java's matches() wants the whole name");
}

#[test]
fn conditionals_become_when_clauses() {
    let imported = logpipe_import::import(&[fixtures().join("logstash/conditionals.conf")]).unwrap();
    let p = parse_toml(&imported.pipeline);
    let filters = p["indexer"]["filters"].as_array().unwrap();
    let when = |tag: &str| {
        filters
            .iter()
            .find(|f| f.get("add_tag").and_then(|t| t.as_array()).is_some_and(|t| t[0].as_str() == Some(tag)))
            .unwrap_or_else(|| panic!("no filter adding {tag}:\n{}", imported.pipeline))["when"]
            .clone()
    };
    let w = |s: &str| -> toml::Value { toml::from_str::<toml::Table>(&format!("w = {s}")).unwrap()["w"].clone() };
    // else if: the earlier arm's condition is negated.
    assert_eq!(
        when("server_error"),
        w(
            r#"{ and = [{ not = { field = "[type]", equals = "apache" } }, { field = "[status]", matches = '^5\d\d' }] }"#
        )
    );
    assert_eq!(
        when("auth"),
        w(r#"{ or = [{ field = "[action]", equals = "login" }, { field = "[action]", equals = "logout" }] }"#)
    );
    assert_eq!(
        when("not_ok"),
        w(r#"{ not = { or = [{ field = "[status]", equals = 200 }, { field = "[status]", equals = 204 }] } }"#)
    );
    // and binds tighter than or.
    assert_eq!(
        when("precedence"),
        w(
            r#"{ or = [{ field = "[a]", equals = "x" }, { and = [{ field = "[b]", equals = "y" }, { field = "[c]", equals = "z" }] }] }"#
        )
    );
    assert_eq!(
        when("either"),
        w(
            r#"{ or = [{ and = [{ field = "[a]", equals = "x" }, { not = { field = "[b]", equals = "y" } }] }, { and = [{ not = { field = "[a]", equals = "x" } }, { field = "[b]", equals = "y" }] }] }"#
        )
    );
    assert_eq!(
        when("not_both"),
        w(r#"{ not = { and = [{ field = "[a]", equals = "x" }, { field = "[b]", equals = "y" }] } }"#)
    );
    assert_eq!(when("api"), w(r#"{ field = "[url]", matches = "/api/" }"#));
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let routes = p["indexer"]["routes"].as_array().unwrap();
    assert_eq!(routes[1]["when"], w(r#"{ not = { tag = "server_error" } }"#));
}

#[test]
fn unsupported_conditions_leave_out_what_is_under_them() {
    let dir = std::env::temp_dir().join(format!("logpipe-import-cond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cmp.conf");
    std::fs::write(
        &path,
        "input { kafka { } }\nfilter {\n  if [bytes] > 1000 {\n    mutate { add_tag => \"big\" }\n  }\n}\n",
    )
    .unwrap();
    let imported = logpipe_import::import(std::slice::from_ref(&path)).unwrap();
    let errors: Vec<String> = imported.report.errors().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("cmp.conf:4:5") && errors[0].contains("[bytes] > 1000") && errors[0].contains("ordering"),
        "{errors:?}"
    );
    assert!(imported.pipeline.contains("# Left out"), "{}", imported.pipeline);
    std::fs::remove_dir_all(&dir).unwrap();
}
