//! The json, kv, dissect, geoip, useragent filters and mutate's convert/gsub/lowercase/uppercase become
//! logpipe's filters of the same meaning (tests/import/logstash/text-filters.conf).

mod support;

use support::*;

fn toml(s: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {s}")).unwrap()["v"].clone()
}

#[test]
fn text_and_enrichment_filters_translate() {
    let imported = logpipe_import::import(&[fixtures().join("logstash/text-filters.conf")]).unwrap();
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let p = parse_toml(&imported.pipeline);
    let filters = p["indexer"]["filters"].as_array().unwrap();
    let of =
        |kind: &str| -> Vec<&toml::Value> { filters.iter().filter(|f| f["type"].as_str() == Some(kind)).collect() };

    let dissect = of("dissect")[0];
    assert_eq!(dissect["mapping"], toml(r#"{ message = "%{ts} %{+ts} %{+ts} %{src} %{} %{prog}[%{pid}]: %{msg}" }"#));
    // convert_datatype: a mutate convert, only when the pattern fit.
    let convert_pid = of("mutate").into_iter().find(|m| m.get("convert").is_some_and(|c| c.get("pid").is_some()));
    let convert_pid = convert_pid.expect("a mutate converting pid");
    assert_eq!(convert_pid["convert"], toml(r#"{ pid = "integer" }"#));
    assert_eq!(convert_pid["when"], toml(r#"{ not = { tag = "_dissectfailure" } }"#));

    let json = of("json")[0];
    assert_eq!((json["source"].as_str(), json["target"].as_str()), (Some("msg"), Some("doc")));
    assert_eq!(json["skip_on_invalid_json"].as_bool(), Some(true));

    let kv = of("kv")[0];
    assert_eq!(kv["source"].as_str(), Some("[doc][query]"));
    assert_eq!(kv["field_split"].as_str(), Some("&?"));
    assert_eq!(kv["include_keys"], toml(r#"["from", "to"]"#));
    assert_eq!(kv["trim_value"].as_str(), Some(r"<>\[\],"));
    assert_eq!(kv["prefix"].as_str(), Some("arg_"));

    let geoip = of("geoip")[0];
    assert_eq!((geoip["source"].as_str(), geoip["target"].as_str()), (Some("[client][ip]"), Some("[client]")));
    assert_eq!(
        p["indexer"]["enrichment"]["geoip_city"],
        toml(r#"["/usr/share/GeoIP/GeoLite2-City.mmdb"]"#),
        "{}",
        imported.pipeline
    );

    let ua = of("user_agent")[0];
    assert_eq!((ua["source"].as_str(), ua["target"].as_str()), (Some("agent"), Some("ua")));

    let mutate = of("mutate").into_iter().find(|m| m.get("gsub").is_some()).expect("the mutate filter");
    assert_eq!(mutate["convert"], toml(r#"{ fieldname = "integer", booleanfield = "boolean" }"#));
    assert_eq!(mutate["gsub"], toml(r#"[["fieldname", "/", "_"], ["fieldname2", '[\\?#-]', "."]]"#));
    assert_eq!(mutate["lowercase"], toml(r#"["fieldname"]"#));
    assert_eq!(mutate["uppercase"], toml(r#"["prog"]"#));
}

#[test]
fn what_does_not_map_is_reported() {
    let dir = std::env::temp_dir().join(format!("logpipe-import-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("partial.conf");
    std::fs::write(
        &path,
        r#"input { kafka { } }
filter {
  kv { field_split_pattern => ", " }
  mutate { convert => { "n" => "float_eu" } gsub => [ "m", "(?<=a)b", "c", "m", "x", "%{host}" ] capitalize => ["m"] }
  geoip { source => "ip" fields => ["city_name"] }
  useragent { source => "ua" prefix => "ua_" }
  json { target => "x" }
}
"#,
    )
    .unwrap();
    let imported = logpipe_import::import(std::slice::from_ref(&path)).unwrap();
    let report = imported.report.to_string();
    for (at, what) in [
        ("partial.conf:3:8", "kv `field_split_pattern` is not translated"),
        ("partial.conf:4:12", "mutate convert `n` to float_eu"),
        ("partial.conf:4:45", "look-around"),
        ("partial.conf:4:45", "%{field} references"),
        ("partial.conf:4:98", "mutate `capitalize`"),
        ("partial.conf:5:26", "geoip `fields`"),
        ("partial.conf:6:30", "useragent `prefix` is not translated"),
        ("partial.conf:7:3", "json filter: it has no `source`"),
    ] {
        assert!(report.lines().any(|l| l.contains(at) && l.contains(what)), "no {at} {what}:\n{report}");
    }
    // No filter is "unsupported" as a whole: each is translated with what maps.
    assert!(unsupported(&imported.report).is_empty(), "{report}");
    let p = parse_toml(&imported.pipeline);
    let filters = p["indexer"]["filters"].as_array().unwrap();
    let geoip = filters.iter().find(|f| f["type"].as_str() == Some("geoip")).unwrap();
    assert_eq!(geoip["target"].as_str(), Some("geoip"), "legacy mode's target for a source not named [..][ip]");
    std::fs::remove_dir_all(&dir).unwrap();
}
