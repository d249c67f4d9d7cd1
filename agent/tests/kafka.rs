//! End to end with the real broker (in process) and the Kafka output: lines written to files arrive in
//! the topic as envelopes, and the registry advances once the broker acknowledged them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use logpipe_agent::config::{AgentConfig, InputConfig, OutputConfig};
use logpipe_broker::{BrokerConfig, Server};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use tokio_util::sync::CancellationToken;

mod common;
use common::{holds, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_arrive_in_kafka_with_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let broker_token = CancellationToken::new();
    let server = Server::bind(BrokerConfig {
        listeners: vec!["127.0.0.1:0".into()],
        log_dirs: dir.path().join("broker"),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.local_addrs()[0].to_string();
    let broker = tokio::spawn(server.run(broker_token.clone()));

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("nested/deeper")).unwrap();
    let mut expected = HashSet::new();
    for (name, n) in [("access.log", 300), ("nested/deeper/error.log", 200)] {
        let mut body = String::new();
        for i in 0..n {
            let line = format!("{name} line {i} {}", "y".repeat(i % 50));
            body.push_str(&line);
            body.push('\n');
            expected.insert(line);
        }
        std::fs::write(logs.join(name), body).unwrap();
    }
    std::fs::write(logs.join("skip.log.gz"), "not shipped\n").unwrap();

    let config = AgentConfig {
        registry: dir.path().join("agent/registry.json"),
        registry_flush: Duration::from_millis(50),
        host_name: Some("itest-host".into()),
        output: OutputConfig { brokers: vec![addr.clone()], topic: "agent-itest".into(), ..Default::default() },
        inputs: vec![InputConfig {
            paths: vec![format!("{}/**/*.log*", logs.display())],
            exclude_files: vec![r"\.gz$".into()],
            tags: vec!["access".into()],
            scan_frequency: Duration::from_millis(50),
            ..Default::default()
        }],
        ..Default::default()
    };
    let agent_token = CancellationToken::new();
    let agent = tokio::spawn(logpipe_agent::run(config.clone(), agent_token.clone()));

    let consumed = tokio::task::spawn_blocking(move || consume(&addr, "agent-itest", expected.len())).await.unwrap();

    let mut seen = HashSet::new();
    for v in &consumed {
        assert_eq!(v["host"]["name"], "itest-host");
        assert_eq!(v["input"]["type"], "file");
        assert_eq!(v["agent"]["type"], "logpipe");
        assert_eq!(v["tags"], serde_json::json!(["access"]));
        assert_eq!(v["event"]["id"].as_str().unwrap().len(), 32);
        assert!(v["@timestamp"].as_str().unwrap().ends_with('Z'));
        let path = v["log"]["file"]["path"].as_str().unwrap();
        assert!(path.ends_with("access.log") || path.ends_with("error.log"), "{path}");
        assert!(v["log"]["offset"].is_u64());
        seen.insert(v["message"].as_str().unwrap().to_string());
    }
    let expected_count = seen.len();
    assert_eq!(expected_count, 500, "every line arrives; nothing from the excluded file");

    // The registry reaches the end of both files once acknowledged.
    let registry = config.registry.clone();
    tokio::task::spawn_blocking(move || {
        poll_until("the registry to reach the end of both files", Duration::from_secs(30), || {
            let registry =
                std::fs::read(&registry).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            let at_end = registry.as_ref().is_some_and(|r| {
                let entries = r["entries"].as_array().cloned().unwrap_or_default();
                entries.len() == 2
                    && entries.iter().all(|e| {
                        let size = std::fs::metadata(e["path"].as_str().unwrap()).unwrap().len();
                        e["offset"].as_u64() == Some(size)
                    })
            });
            holds(at_end, || format!("registry {registry:?}"))
        })
    })
    .await
    .unwrap();

    agent_token.cancel();
    agent.await.unwrap().unwrap();
    broker_token.cancel();
    broker.await.unwrap().unwrap();
}

/// Reads `topic` from the beginning until `want` records arrived (or 60 s passed).
fn consume(addr: &str, topic: &str, want: usize) -> Vec<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "agent-itest")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for the topic (auto-created by the agent's first produce) before assigning.
    let partitions = poll_until(&format!("topic {topic}"), Duration::from_secs(60), || {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).map_err(|e| e.to_string())?;
        match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
            t => Err(format!("metadata {:?}", t.map(|t| t.error()))),
        }
    });
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    while out.len() < want {
        assert!(Instant::now() < deadline, "only {} of {want} records arrived", out.len());
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.unwrap();
            out.push(serde_json::from_slice(msg.payload().unwrap()).unwrap());
        }
    }
    out
}
