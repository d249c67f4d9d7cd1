//! The fetcher against librdkafka's mock cluster, a Kafka-protocol server in process that fails
//! requests and moves leaders on cue: the group member is a librdkafka consumer, as in the indexer,
//! and the fetcher's values go to a list instead of the flow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use super::{Fetcher, Sink};
use crate::config::{AutoOffsetReset, InputConfig};
use crate::tracker::TopicPartition;

const TOPIC: &str = "t";

/// The values handed on, by partition, with their offsets; full once it holds `room` more.
#[derive(Default)]
struct Taken {
    values: BTreeMap<i32, Vec<(i64, String)>>,
    room: usize,
}

impl Sink for Taken {
    fn is_full(&self) -> bool {
        self.room == 0
    }

    fn add(&mut self, topic: &Arc<str>, partition: i32, offset: i64, _timestamp: i64, value: Option<Bytes>) {
        assert_eq!(&**topic, TOPIC);
        self.room -= 1;
        let value = String::from_utf8(value.unwrap_or_default().to_vec()).unwrap();
        self.values.entry(partition).or_default().push((offset, value));
    }
}

impl Taken {
    fn count(&self) -> usize {
        self.values.values().map(Vec::len).sum()
    }

    /// Whether each partition's values are `p-0`, `p-1`, ... in offset order, with no gap or repeat.
    fn check_in_order(&self) {
        for (partition, values) in &self.values {
            for (i, (offset, value)) in values.iter().enumerate() {
                assert_eq!(*value, format!("{partition}-{offset}"), "partition {partition} value {i}");
                assert_eq!(*offset, values[0].0 + i as i64, "partition {partition}: a gap or a repeat at {i}");
            }
        }
    }
}

struct Mock {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    runtime: tokio::runtime::Runtime,
}

impl Mock {
    fn new(brokers: i32, partitions: i32) -> Mock {
        let cluster = MockCluster::new(brokers).unwrap();
        cluster.create_topic(TOPIC, partitions, brokers).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Mock { cluster, runtime }
    }

    /// Produces `per_partition` values to each partition, `p-<offset>` after `from`.
    fn produce(&self, partitions: i32, from: i64, per_partition: i64) {
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", self.cluster.bootstrap_servers()).create().unwrap();
        for p in 0..partitions {
            for offset in from..from + per_partition {
                let value = format!("{p}-{offset}");
                producer.send(BaseRecord::<(), _>::to(TOPIC).partition(p).payload(&value)).unwrap();
            }
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    fn input(&self, reset: AutoOffsetReset) -> InputConfig {
        InputConfig {
            brokers: vec![self.cluster.bootstrap_servers()],
            topics: vec![TOPIC.into()],
            group_id: "g".into(),
            auto_offset_reset: reset,
            ..InputConfig::default()
        }
    }

    /// A group member that never subscribes: the tests assign partitions to the fetcher themselves.
    fn member(&self, input: &InputConfig) -> BaseConsumer {
        crate::consumer::client_config(input).unwrap().create().unwrap()
    }

    fn fetcher(&self, input: &InputConfig) -> Fetcher {
        Fetcher::new(input, self.runtime.handle().clone()).unwrap()
    }
}

/// Commits `offset` for `partition` in `member`'s group.
fn commit(member: &BaseConsumer, partition: i32, offset: i64) {
    let mut committed = TopicPartitionList::new();
    committed.add_partition_offset(TOPIC, partition, Offset::Offset(offset)).unwrap();
    member.commit(&committed, CommitMode::Sync).unwrap();
}

fn partitions(n: i32) -> Vec<TopicPartition> {
    (0..n).map(|partition| TopicPartition { topic: TOPIC.into(), partition }).collect()
}

/// Runs the consumer loop's fetching part until `done` or 30 s, handing `room` values on per turn.
fn run(fetcher: &mut Fetcher, member: &BaseConsumer, taken: &mut Taken, room: usize, done: impl Fn(&Taken) -> bool) {
    run_until(fetcher, member, taken, room, |_, t| done(t));
}

fn run_until(
    fetcher: &mut Fetcher,
    member: &BaseConsumer,
    taken: &mut Taken,
    room: usize,
    done: impl Fn(&Fetcher, &Taken) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(fetcher, taken) {
        assert!(Instant::now() < deadline, "gave up with {} values", taken.count());
        fetcher.prepare(member).unwrap();
        fetcher.request();
        taken.room = room;
        fetcher.feed(taken);
        fetcher.request();
        fetcher.receive(Duration::from_millis(20));
    }
}

#[test]
fn reads_every_partition_from_the_committed_offset_or_by_the_reset_policy() {
    let mock = Mock::new(1, 3);
    mock.produce(3, 0, 500);
    let input = mock.input(AutoOffsetReset::Earliest);
    let member = mock.member(&input);
    // Partition 1 has a committed offset; the others start by auto_offset_reset.
    commit(&member, 1, 120);

    let mut fetcher = mock.fetcher(&input);
    fetcher.assign(partitions(3));
    let mut taken = Taken::default();
    // A little room per turn, so that answers wait to be handed on and back-pressure counts.
    run(&mut fetcher, &member, &mut taken, 7, |t| t.count() == 500 + 380 + 500);
    taken.check_in_order();
    assert_eq!(taken.values[&0][0].0, 0);
    assert_eq!(taken.values[&1][0].0, 120);
}

#[test]
fn latest_starts_at_the_end_and_none_is_an_error() {
    let mock = Mock::new(1, 2);
    mock.produce(2, 0, 50);
    let input = mock.input(AutoOffsetReset::Latest);
    let member = mock.member(&input);
    let mut fetcher = mock.fetcher(&input);
    fetcher.assign(partitions(2));
    let mut taken = Taken::default();
    // Until both partitions have their position at the end.
    let at_end = |f: &Fetcher, _: &Taken| f.partitions.values().all(|p| p.position == super::Position::At(50));
    run_until(&mut fetcher, &member, &mut taken, 100, at_end);
    mock.produce(2, 50, 10);
    run(&mut fetcher, &member, &mut taken, 100, |t| t.count() == 20);
    taken.check_in_order();
    assert_eq!(taken.values[&0][0].0, 50);

    let input = InputConfig { group_id: "other".into(), ..mock.input(AutoOffsetReset::None) };
    let member = mock.member(&input);
    let mut fetcher = mock.fetcher(&input);
    fetcher.assign(partitions(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        assert!(Instant::now() < deadline, "no error for a group without offsets under none");
        match fetcher.prepare(&member) {
            Ok(()) => std::thread::yield_now(),
            Err(e) => break e.to_string(),
        }
    };
    assert!(error.contains("auto_offset_reset"), "{error}");
}

#[test]
fn an_offset_out_of_range_goes_by_the_reset_policy() {
    let mock = Mock::new(1, 1);
    mock.produce(1, 0, 100);
    let input = mock.input(AutoOffsetReset::Earliest);
    let member = mock.member(&input);
    commit(&member, 0, 1_000_000);
    let mut fetcher = mock.fetcher(&input);
    fetcher.assign(partitions(1));
    let mut taken = Taken::default();
    run(&mut fetcher, &member, &mut taken, 1000, |t| t.count() == 100);
    taken.check_in_order();
    assert_eq!(taken.values[&0][0].0, 0);
}

#[test]
fn goes_on_through_fetch_errors_a_leader_move_and_a_revoke_in_flight() {
    let mock = Mock::new(3, 2);
    mock.produce(2, 0, 300);
    let input = mock.input(AutoOffsetReset::Earliest);
    let member = mock.member(&input);
    let mut fetcher = mock.fetcher(&input);
    fetcher.assign(partitions(2));
    let mut taken = Taken::default();
    run(&mut fetcher, &member, &mut taken, 1000, |t| t.count() == 600);

    // The leader answers NOT_LEADER_OR_FOLLOWER, then the partition moves to another broker.
    mock.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let leader = fetcher.partitions.values().next().unwrap().leader.unwrap();
    mock.cluster.partition_leader(TOPIC, 0, Some(leader % 3 + 1)).unwrap();
    mock.produce(2, 300, 200);
    run(&mut fetcher, &member, &mut taken, 1000, |t| t.count() == 1000);
    taken.check_in_order();

    // Revoked with an order in flight and assigned again at once: the old answer does not count, and
    // the partition is read again from its committed offset, without a gap.
    commit(&member, 1, 500);
    mock.produce(2, 500, 100);
    fetcher.request();
    let in_flight = fetcher.partitions.values().filter(|p| p.in_flight.is_some()).count();
    assert!(in_flight > 0, "an order in flight");
    let both: std::collections::BTreeSet<_> = partitions(2).into_iter().collect();
    fetcher.revoke(&both);
    fetcher.assign(partitions(2));
    let mut again = Taken::default();
    run(&mut fetcher, &member, &mut again, 1000, |t| t.values.get(&1).is_some_and(|v| v.len() == 100));
    again.check_in_order();
    assert_eq!(again.values[&1][0].0, 500);
}

#[test]
fn caught_up_only_once_every_value_there_is_has_been_handed_on() {
    let mock = Mock::new(3, 3);
    mock.produce(3, 0, 400);
    let mut input = mock.input(AutoOffsetReset::Earliest);
    // Answers of a few records each, handed on a few at a time, so reading to the end takes many turns.
    input.librdkafka.insert("max.partition.fetch.bytes".into(), "512".into());
    let member = mock.member(&input);
    let mut fetcher = mock.fetcher(&input);
    fetcher.assign(partitions(3));
    let mut taken = Taken::default();
    let turns_behind = std::cell::Cell::new(0);
    run_until(&mut fetcher, &member, &mut taken, 7, |f, t| {
        if !f.caught_up() {
            turns_behind.set(turns_behind.get() + 1);
            return false;
        }
        assert_eq!(t.count(), 1200, "caught up with values still unread");
        true
    });
    assert!(turns_behind.get() > 10, "behind for {} turns only", turns_behind.get());
    taken.check_in_order();

    // New records: handed on, and caught up again once they are.
    mock.produce(3, 400, 5);
    run_until(&mut fetcher, &member, &mut taken, 7, |f, t| t.count() == 1215 && f.caught_up());
    taken.check_in_order();
}
