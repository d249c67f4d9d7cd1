//! filebeat.yml and Flume properties as agent inputs and outputs.

mod support;

use support::*;

fn import(names: &[&str]) -> (toml::Value, logpipe_import::Imported) {
    let paths: Vec<_> = names.iter().map(|n| fixtures().join(n)).collect();
    let imported = logpipe_import::import(&paths).unwrap_or_else(|e| panic!("{e}"));
    (parse_toml(&imported.pipeline), imported)
}

#[test]
fn filebeat_inputs_tags_multiline_and_kafka() {
    let (p, imported) = import(&["filebeat/nginx-tags.yml"]);
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let inputs = p["agent"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0]["paths"][0].as_str(), Some("/var/log/nginx/access.log*"));
    assert_eq!(inputs[0]["tags"][0].as_str(), Some("access"));
    assert_eq!(inputs[0]["exclude_files"][0].as_str(), Some(r"\.gz$"));
    assert_eq!(inputs[1]["multiline"]["pattern"].as_str(), Some(r"^\d{4}/\d{2}/\d{2} "));
    assert_eq!(inputs[1]["multiline"]["negate"].as_bool(), Some(true));
    assert_eq!(inputs[1]["multiline"]["match"].as_str(), Some("after"));
    let out = &p["agent"]["output"];
    assert_eq!(out["brokers"][0].as_str(), Some("127.0.0.1:9092"));
    assert_eq!(out["topic"].as_str(), Some("nginx"));
    assert_eq!(out["acks"].as_str(), Some("all"));
    assert_eq!(out["compression"].as_str(), Some("gzip"));
    assert!(imported.pipeline.contains("filebeat/nginx-tags.yml:3"), "{}", imported.pipeline);
    assert!(imported.pipeline.contains("filebeat/nginx-tags.yml:10"), "{}", imported.pipeline);
    assert!(p.get("indexer").is_none());
}

#[test]
fn filestream_parsers_processors_topic_per_input_and_sasl() {
    let (p, imported) = import(&["filebeat/multiline-kafka.yml"]);
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let inputs = p["agent"]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["topic"].as_str(), Some("payments"));
    assert_eq!(inputs[1]["topic"].as_str(), Some("search"));
    assert_eq!(inputs[0]["multiline"]["pattern"].as_str(), Some(r"^\["));
    assert_eq!(inputs[0]["multiline"]["max_lines"].as_integer(), Some(200));
    assert_eq!(inputs[0]["scan_frequency"].as_str(), Some("5s"));
    assert_eq!(inputs[0]["close_inactive"].as_str(), Some("10m"));
    assert_eq!(inputs[0]["tags"][0].as_str(), Some("java"));
    assert_eq!(inputs[0]["fields"]["env"].as_str(), Some("prod"));
    assert_eq!(inputs[1]["fields"]["env"].as_str(), Some("prod"));
    assert_eq!(inputs[1]["start_position"].as_str(), Some("end"));
    assert_eq!(inputs[1]["include_lines"].as_array().unwrap().len(), 3);
    let out = &p["agent"]["output"];
    assert_eq!(out["partitioner"].as_str(), Some("hash"));
    assert_eq!(out["key"].as_str(), Some("fields.service"));
    assert_eq!(out["compression"].as_str(), Some("lz4"));
    // Files and secrets of the source's host stay librdkafka properties, read where the pipeline runs.
    assert_eq!(out["client"].as_str(), Some("librdkafka"));
    let rdk = &out["librdkafka"];
    assert_eq!(rdk["security.protocol"].as_str(), Some("sasl_ssl"));
    assert_eq!(rdk["sasl.mechanism"].as_str(), Some("SCRAM-SHA-256"));
    assert_eq!(rdk["ssl.ca.location"].as_str(), Some("/etc/filebeat/kafka-ca.pem"));
    assert!(rdk.get("sasl.password").is_none(), "a ${{}} reference is not written as a password");
    // drop_fields needs an indexer; without one it is a warning.
    assert!(imported.report.to_string().contains("drop_fields"), "{}", imported.report);
}

#[test]
fn add_fields_stay_under_fields_when_the_inputs_fields_are_at_the_root() {
    let (p, imported) = import(&["filebeat/fields-under-root.yml"]);
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let inputs = p["agent"]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["fields_under_root"].as_bool(), Some(true));
    let root = &inputs[0]["fields"];
    assert_eq!(root["team"].as_str(), Some("security"));
    assert_eq!(root["fields"]["origin"].as_str(), Some("auditd"), "{root}");
    assert_eq!(root["fields"]["env"].as_str(), Some("prod"), "{root}");
    assert!(root.get("origin").is_none() && root.get("env").is_none(), "{root}");
    let nested = &inputs[1]["fields"];
    assert_eq!(nested["team"].as_str(), Some("app"));
    assert_eq!(nested["env"].as_str(), Some("prod"));
}

#[test]
fn reference_filebeat_reports_what_does_not_translate() {
    let (p, imported) = import(&["filebeat/reference.yml"]);
    let report = imported.report.to_string();
    assert_eq!(p["agent"]["inputs"].as_array().unwrap().len(), 1, "{}", imported.pipeline);
    for expected in
        ["`container` input", "add_cloud_metadata", "add_docker_metadata", "add_kubernetes_metadata", "modules.d"]
    {
        assert!(report.contains(expected), "{expected} not in:\n{report}");
    }
    assert!(report.contains("reference.yml:29"), "the container input's line: {report}");
}

#[test]
fn nginx_module_and_the_issue_pipeline() {
    let (p, imported) = import(&["filebeat/nginx-module.yml", "logstash/issue-nginx.conf"]);
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let inputs = p["agent"]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["tags"][0].as_str(), Some("access"));
    assert_eq!(inputs[1]["tags"][0].as_str(), Some("error"));
    let filters = p["indexer"]["filters"].as_array().unwrap();
    assert_eq!(filters[0]["type"].as_str(), Some("nginx_access"));
    assert_eq!(filters[1]["type"].as_str(), Some("nginx_error"));
    assert_eq!(p["agent"]["output"]["topic"].as_str(), Some("nginx"));
    assert_eq!(p["indexer"]["input"]["topics"][0].as_str(), Some("nginx"));
}

#[test]
fn flume_exec_and_the_old_kafka_sink() {
    let (p, imported) = import(&["flume/issue.properties"]);
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let input = &p["agent"]["inputs"][0];
    assert_eq!(input["type"].as_str(), Some("exec"));
    assert_eq!(input["command"].as_str(), Some("tail -F /home/xdl/logs/test.log"));
    assert_eq!(input["topic"].as_str(), Some("test-topic"));
    let out = &p["agent"]["output"];
    assert_eq!(out["brokers"][0].as_str(), Some("127.0.0.1:9092"));
    assert_eq!(out["acks"].as_str(), Some("all"));
    assert_eq!(out["topic"].as_str(), Some("test-topic"));
    let report = imported.report.to_string();
    assert!(report.contains("(Warning) ") && report.contains("loses data on restart"), "{report}");
    assert!(report.contains("type = \"file\", paths = [\"/home/xdl/logs/test.log\"]"), "{report}");
    assert!(report.contains("issue.properties:7"), "{report}");
    assert!(report.contains("memory channel"), "{report}");
}

#[test]
fn flume_taildir_spooldir_and_the_new_kafka_sink() {
    let (p, imported) = import(&["flume/taildir.properties"]);
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let inputs = p["agent"]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["paths"][0].as_str(), Some("/var/log/test1/example.log"));
    assert_eq!(inputs[0]["fields"]["headerKey1"].as_str(), Some("value1"));
    assert_eq!(inputs[0]["fields"]["datacenter"].as_str(), Some("NEW_YORK"));
    assert_eq!(inputs[1]["paths"][0].as_str(), Some("/var/log/test2/*log*"));
    assert_eq!(inputs[2]["paths"][0].as_str(), Some("/var/log/apache/flumeSpool/*"));
    assert!(inputs.iter().all(|i| i["topic"].as_str() == Some("mytopic")));
    let out = &p["agent"]["output"];
    assert_eq!(out["brokers"].as_array().unwrap().len(), 2);
    assert_eq!(out["acks"].as_integer(), Some(1));
    assert_eq!(out["compression"].as_str(), Some("snappy"));
    assert_eq!(out["linger_ms"].as_integer(), Some(1));
}

#[test]
fn filebeat_output_logstash_meets_the_beats_input_through_the_broker() {
    let dir = std::env::temp_dir().join(format!("logpipe-import-beats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let filebeat = dir.join("filebeat.yml");
    let logstash = dir.join("beats.conf");
    std::fs::write(&filebeat, "filebeat.inputs:\n- type: filestream\n  id: app\n  paths: [/var/log/app/*.log]\noutput:\n  logstash:\n    hosts: [\"ls:5044\"]\n").unwrap();
    std::fs::write(&logstash, "input { beats { port => 5044 } }\noutput { elasticsearch { hosts => [\"es:9200\"] index => \"app-%{+YYYY.MM.dd}\" } }\n").unwrap();
    let imported = logpipe_import::import(&[filebeat.clone(), logstash.clone()]).unwrap();
    assert!(!imported.report.has_errors(), "{}", imported.report);
    let p = parse_toml(&imported.pipeline);
    assert_eq!(p["broker"]["listeners"][0].as_str(), Some("127.0.0.1:9092"));
    assert_eq!(p["agent"]["output"]["topic"].as_str(), Some("beats"));
    assert_eq!(p["indexer"]["input"]["topics"][0].as_str(), Some("beats"));
    assert_eq!(p["indexer"]["routes"][0]["index"].as_str(), Some("app-%{+YYYY.MM.dd}"));
    assert!(imported.pipeline.contains("filebeat.yml:6"), "{}", imported.pipeline);
    // Alone, the beats input has nothing to listen with.
    let alone = logpipe_import::import(&[logstash]).unwrap();
    assert!(unsupported(&alone.report).contains("input beats"), "{}", alone.report);
    std::fs::remove_dir_all(&dir).unwrap();
}
