//! Load generator for `logpipe broker` (or any Kafka-protocol broker), driven by
//! `scripts/bench-broker.sh`.
//!
//! Modes:
//! - `produce`: N records of a fixed size, round-robin over the partitions, through one librdkafka
//!   `ThreadedProducer`. Every record's latency is measured from `send` to its delivery report.
//! - `consume`: everything from the log start, with `assign` (no group) and large fetches.
//! - `both`: produce, then consume.
//! - `group`: a consumer group of `--members` reads the topic, committing every `--commit-every`
//!   records per member; then a further member joins and leaves `--rebalances` times, and the
//!   time until the group is stable again is measured each time.
//!
//! Each mode prints a readable summary and one `RESULT key=value ...` line for scripts.
//!
//! The generator must not be the bottleneck: payloads are slices of one pre-filled buffer (no
//! per-record allocation on our side), partitions are chosen by us (no partitioner work), per
//! record bookkeeping is two relaxed atomic stores, and delivery reports are served by the
//! producer's own polling thread.
//!
//! ```text
//! cargo run --release -p logpipe-console --example broker_load -- \
//!     --bootstrap 127.0.0.1:9092 --topic bench --create-topic --mode both --acks all
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const USAGE: &str = "\
usage: broker_load [options]
  --bootstrap HOST:PORT      broker address (127.0.0.1:9092)
  --topic NAME               topic (bench)
  --mode MODE                produce | consume | both | group (both)
  --create-topic             create the topic first (fails if it exists)
  --partitions N             partitions when creating (3)
  --records N                records to produce (1000000)
  --record-size BYTES        value size (200)
  --acks all|-1|1|0          producer acks (all)
  --linger-ms MS             producer linger.ms (5)
  --batch-size BYTES         producer batch.size (1000000)
  --compression CODEC        none | gzip | snappy | lz4 | zstd (none)
  --rate N                   records/s to offer; 0 = as fast as possible (0)
  -X KEY=VALUE               a librdkafka property for every client (repeatable), e.g.
                             -X security.protocol=SASL_SSL -X ssl.ca.location=ca.pem
  --timeout-s S              give up after this long per phase (600)
  --group ID                 group id for --mode group (bench-group)
  --members N                group members for --mode group (2)
  --commit-every N           commit after this many records per member (5000)
  --rebalances N             joins (and leaves) of one more member to time (10)
  --session-timeout-ms MS    group session.timeout.ms (10000)
  --heartbeat-interval-ms MS group heartbeat.interval.ms (500)";

#[derive(Debug, Clone)]
struct Args {
    bootstrap: String,
    topic: String,
    mode: String,
    create_topic: bool,
    partitions: i32,
    records: u64,
    record_size: usize,
    acks: String,
    linger_ms: u64,
    batch_size: u64,
    compression: String,
    rate: u64,
    timeout: Duration,
    group: String,
    members: usize,
    commit_every: u64,
    rebalances: usize,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    properties: Vec<(String, String)>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "bench".into(),
            mode: "both".into(),
            create_topic: false,
            partitions: 3,
            records: 1_000_000,
            record_size: 200,
            acks: "all".into(),
            linger_ms: 5,
            batch_size: 1_000_000,
            compression: "none".into(),
            rate: 0,
            timeout: Duration::from_secs(600),
            group: "bench-group".into(),
            members: 2,
            commit_every: 5000,
            rebalances: 10,
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 500,
            properties: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--create-topic" {
                a.create_topic = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v}"));
            match flag.as_str() {
                "--bootstrap" => a.bootstrap = value,
                "--topic" => a.topic = value,
                "--mode" => a.mode = value,
                "--partitions" => a.partitions = num(&value)? as i32,
                "--records" => a.records = num(&value)?,
                "--record-size" => a.record_size = num(&value)? as usize,
                "--acks" => a.acks = value,
                "--linger-ms" => a.linger_ms = num(&value)?,
                "--batch-size" => a.batch_size = num(&value)?,
                "--compression" => a.compression = value,
                "--rate" => a.rate = num(&value)?,
                "--timeout-s" => a.timeout = Duration::from_secs(num(&value)?),
                "--group" => a.group = value,
                "--members" => a.members = num(&value)? as usize,
                "--commit-every" => a.commit_every = num(&value)?,
                "--rebalances" => a.rebalances = num(&value)? as usize,
                "--session-timeout-ms" => a.session_timeout_ms = num(&value)?,
                "--heartbeat-interval-ms" => a.heartbeat_interval_ms = num(&value)?,
                "-X" => {
                    let (k, v) = value.split_once('=').ok_or_else(|| format!("-X {value}: expected key=value"))?;
                    a.properties.push((k.to_owned(), v.to_owned()));
                }
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if !matches!(a.mode.as_str(), "produce" | "consume" | "both" | "group") {
            return Err(format!("--mode {}: expected produce, consume, both or group", a.mode));
        }
        if a.acks == "-1" {
            a.acks = "all".into();
        }
        if !matches!(a.acks.as_str(), "all" | "1" | "0") {
            return Err(format!("--acks {}: expected all, -1, 1 or 0", a.acks));
        }
        if a.record_size == 0 || a.partitions < 1 || a.members < 1 {
            return Err("--record-size, --partitions and --members must be positive".into());
        }
        Ok(a)
    }
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match Args::parse() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T, E = String> = std::result::Result<T, E>;

fn run(args: &Args) -> Result<()> {
    if args.create_topic {
        create_topic(args)?;
    }
    match args.mode.as_str() {
        "produce" => produce(args),
        "consume" => consume(args).map(|_| ()),
        "both" => {
            produce(args)?;
            consume(args).map(|_| ())
        }
        "group" => group(args),
        _ => unreachable!(),
    }
}

fn base_config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap);
    for (key, value) in &args.properties {
        c.set(key, value);
    }
    c
}

fn create_topic(args: &Args) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(args).create().map_err(|e| format!("admin client: {e}"))?;
    let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| format!("CreateTopics {}: {e}", args.topic))?;
    for r in results {
        r.map_err(|(name, code)| format!("CreateTopics {name}: {code}"))?;
    }
    // Wait until metadata shows every partition, so the first sends do not race the creation.
    let probe: BaseConsumer = base_config(args).create().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(md) = probe.fetch_metadata(Some(&args.topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == args.topic) {
                if t.error().is_none() && t.partitions().len() == args.partitions as usize {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("topic {} not in metadata 30 s after creation", args.topic));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Produce

/// Delivery reports arrive on the producer's polling thread; the sender thread writes `sent_ns`
/// before `send`, so the report can never see a stale slot (librdkafka's queue is the barrier).
struct LatencyContext {
    start: Instant,
    sent_ns: Vec<AtomicU64>,
    latency_ns: Vec<AtomicU64>,
    acked: AtomicU64,
    failed: AtomicU64,
    last_ack_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, idx: usize) {
        let now = self.start.elapsed().as_nanos() as u64;
        match result {
            Ok(_) => {
                let sent = self.sent_ns[idx].load(Relaxed);
                self.latency_ns[idx].store(now.saturating_sub(sent).max(1), Relaxed);
                self.acked.fetch_add(1, Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Relaxed);
                let mut first = self.first_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
        self.last_ack_ns.fetch_max(now, Relaxed);
    }
}

/// Incompressible-looking bytes from a xorshift generator; records are windows into this.
fn payload_pool(record_size: usize) -> Vec<u8> {
    let len = (record_size * 64).max(1 << 16);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect()
}

fn produce(args: &Args) -> Result<()> {
    let n = args.records as usize;
    let ctx = LatencyContext {
        start: Instant::now(),
        sent_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
        latency_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<LatencyContext> = base_config(args)
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("batch.num.messages", "1000000")
        .set("compression.type", &args.compression)
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "300000")
        .set("enable.idempotence", "false")
        .create_with_context(ctx)
        .map_err(|e| format!("producer: {e}"))?;
    let ctx = producer.context();
    let pool = payload_pool(args.record_size);
    let windows = pool.len() - args.record_size;
    let parts = args.partitions.max(1);

    // Warm up the connection and metadata so the first batch does not pay for them.
    producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata for {}: {e}", args.topic))?;

    println!(
        "produce: {} records x {} B to {} ({} partitions), acks={}, linger.ms={}, batch.size={}, compression={}",
        n, args.record_size, args.topic, parts, args.acks, args.linger_ms, args.batch_size, args.compression
    );
    let t0 = ctx.start.elapsed();
    let deadline = Instant::now() + args.timeout;
    let mut queue_full_waits = 0u64;
    for i in 0..n {
        if args.rate > 0 && i % 64 == 0 {
            let due = t0 + Duration::from_secs_f64(i as f64 / args.rate as f64);
            let now = ctx.start.elapsed();
            if due > now {
                thread::sleep(due - now);
            }
        }
        let off = (i.wrapping_mul(7919)) % windows;
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, i)
            .payload(&pool[off..off + args.record_size])
            .partition(i as i32 % parts);
        loop {
            ctx.sent_ns[i].store(ctx.start.elapsed().as_nanos() as u64, Relaxed);
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    queue_full_waits += 1;
                    if Instant::now() > deadline {
                        return Err("producer queue stayed full until the timeout".into());
                    }
                    thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
    }
    let send_done = ctx.start.elapsed();
    producer
        .flush(deadline.saturating_duration_since(Instant::now()))
        .map_err(|e| format!("flush: {e} ({} of {n} acknowledged)", ctx.acked.load(Relaxed)))?;

    let failed = ctx.failed.load(Relaxed);
    if failed > 0 {
        let first = ctx.first_error.lock().unwrap().clone().unwrap_or_default();
        return Err(format!("{failed} of {n} records failed; first error: {first}"));
    }
    let acked = ctx.acked.load(Relaxed);
    let secs = Duration::from_nanos(ctx.last_ack_ns.load(Relaxed)).saturating_sub(t0).as_secs_f64();
    let mut lat: Vec<u64> = ctx.latency_ns.iter().map(|l| l.load(Relaxed)).filter(|&l| l > 0).collect();
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() - 1) as f64 * q).round() as usize] as f64 / 1e6
    };
    let rps = acked as f64 / secs;
    let mbps = rps * args.record_size as f64 / 1e6;
    println!(
        "  {acked} acknowledged in {secs:.2} s: {rps:.0} records/s, {mbps:.1} MB/s \
         (sending took {:.2} s, {queue_full_waits} queue-full waits)",
        (send_done - t0).as_secs_f64()
    );
    println!(
        "  latency send->ack: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms{}",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        if args.rate == 0 { "  (unthrottled: includes time queued in the client)" } else { "" }
    );
    println!(
        "RESULT mode=produce acks={} records={acked} bytes={} secs={secs:.3} rps={rps:.0} mbps={mbps:.2} \
         p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        args.acks,
        acked * args.record_size as u64,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consume

fn partitions_of(consumer: &BaseConsumer<impl ConsumerContext>, topic: &str) -> Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata for {topic}: {e}"))?;
    let t = md.topics().iter().find(|t| t.name() == topic).ok_or_else(|| format!("topic {topic} not found"))?;
    if let Some(err) = t.error() {
        return Err(format!("topic {topic}: {err:?}"));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// (partition, log start, log end) for every partition of the topic.
fn watermarks(consumer: &BaseConsumer<impl ConsumerContext>, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
    partitions_of(consumer, topic)?
        .into_iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(lo, hi)| (p, lo, hi))
                .map_err(|e| format!("ListOffsets {topic}/{p}: {e}"))
        })
        .collect()
}

fn consume(args: &Args) -> Result<(u64, f64)> {
    let consumer: BaseConsumer = base_config(args)
        // librdkafka wants a group id even for assign(); it is never joined or committed to.
        .set("group.id", "bench-assign")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", "262144")
        // Once a partition's local queue holds `queued.min.messages` (100,000), librdkafka stops fetching
        // it for `fetch.queue.backoff.ms`, 1 s by default: against a broker that answers faster than this
        // loop drains, most of a run was that pause (500,000 records: 1.2–2.2 s, 0.26 s with 10 ms), so
        // the rate measured the client's back-off rather than the broker. The same for both brokers.
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let marks = watermarks(&consumer, &args.topic)?;
    let expected: u64 = marks.iter().map(|(_, lo, hi)| (hi - lo) as u64).sum();
    let mut tpl = TopicPartitionList::new();
    for (p, lo, _) in &marks {
        tpl.add_partition_offset(&args.topic, *p, Offset::Offset(*lo)).map_err(|e| e.to_string())?;
    }
    let end: HashMap<i32, i64> = marks.iter().map(|(p, _, hi)| (*p, *hi)).collect();
    println!("consume: {expected} records from {} ({} partitions), assign from log start", args.topic, marks.len());

    let start = Instant::now();
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let deadline = start + args.timeout;
    while count < expected {
        match consumer.poll(Duration::from_millis(100)) {
            // Records appended after we took the watermarks are not part of the run.
            Some(Ok(m)) if m.offset() < end[&m.partition()] => {
                count += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
        if Instant::now() > deadline {
            return Err(format!("consumed {count} of {expected} before the timeout"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rps = count as f64 / secs;
    let mbps = bytes as f64 / secs / 1e6;
    println!("  {count} records, {bytes} bytes in {secs:.2} s: {rps:.0} records/s, {mbps:.1} MB/s");
    println!("RESULT mode=consume records={count} bytes={bytes} secs={secs:.3} rps={rps:.0} mbps={mbps:.2}");
    Ok((count, secs))
}

// ---------------------------------------------------------------------------------------------
// Consumer group

/// What one member's rebalance callbacks saw, for the main thread to judge group stability.
#[derive(Default)]
struct MemberState {
    assigned: AtomicUsize,
    /// Nanoseconds since the benchmark's epoch of the latest Assign / Revoke.
    last_assign_ns: AtomicU64,
    last_revoke_ns: AtomicU64,
}

struct MemberContext {
    epoch: Instant,
    state: Arc<MemberState>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.state.assigned.store(tpl.count(), Relaxed);
                self.state.last_assign_ns.store(now, Relaxed);
            }
            Rebalance::Revoke(_) => {
                self.state.assigned.store(0, Relaxed);
                self.state.last_revoke_ns.store(now, Relaxed);
            }
            Rebalance::Error(_) => {}
        }
    }
}

struct Shared {
    epoch: Instant,
    /// Next offset to read per partition index, across all members.
    next: Vec<AtomicI64>,
    records: AtomicU64,
    commits: AtomicU64,
    errors: Mutex<Vec<String>>,
}

struct Member {
    state: Arc<MemberState>,
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<()>,
}

fn start_member(args: &Args, shared: &Arc<Shared>, name: String) -> Result<Member> {
    let state = Arc::new(MemberState::default());
    let ctx = MemberContext { epoch: shared.epoch, state: state.clone() };
    let consumer: BaseConsumer<MemberContext> = base_config(args)
        .set("group.id", &args.group)
        .set("client.id", &name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", args.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", args.heartbeat_interval_ms.to_string())
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(ctx)
        .map_err(|e| format!("consumer {name}: {e}"))?;
    consumer.subscribe(&[&args.topic]).map_err(|e| format!("subscribe: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, shared, commit_every) = (stop.clone(), shared.clone(), args.commit_every);
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut since_commit = 0u64;
            while !stop2.load(Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        shared.records.fetch_add(1, Relaxed);
                        if let Some(next) = shared.next.get(m.partition() as usize) {
                            next.fetch_max(m.offset() + 1, Relaxed);
                        }
                        since_commit += 1;
                        if commit_every > 0 && since_commit >= commit_every {
                            // Async: the member keeps fetching while the commit is in flight.
                            if consumer.commit_consumer_state(CommitMode::Async).is_ok() {
                                shared.commits.fetch_add(1, Relaxed);
                            }
                            since_commit = 0;
                        }
                    }
                    Some(Err(e)) => shared.errors.lock().unwrap().push(format!("{name}: {e}")),
                    None => {}
                }
            }
            if commit_every > 0 && since_commit > 0 {
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
            }
            drop(consumer); // close(): LeaveGroup, so the next rebalance starts at once
        })
        .map_err(|e| e.to_string())?;
    Ok(Member { state, stop, handle })
}

impl Member {
    fn leave(self) {
        self.stop.store(true, Relaxed);
        let _ = self.handle.join();
    }
}

/// True once every member got an assignment after `since_ns`, holds it, and together they own
/// every partition: one complete rebalance.
fn stable_since(members: &[&MemberState], since_ns: u64, partitions: usize) -> bool {
    members.iter().all(|m| {
        let a = m.last_assign_ns.load(Relaxed);
        a > since_ns && a >= m.last_revoke_ns.load(Relaxed)
    }) && members.iter().map(|m| m.assigned.load(Relaxed)).sum::<usize>() == partitions
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(start.elapsed())
}

fn group(args: &Args) -> Result<()> {
    let probe: BaseConsumer = base_config(args).create().map_err(|e| e.to_string())?;
    let marks = watermarks(&probe, &args.topic)?;
    drop(probe);
    let partitions = marks.len();
    let expected: u64 = marks.iter().map(|(_, lo, hi)| (hi - lo) as u64).sum();
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        next: (0..partitions).map(|_| AtomicI64::new(0)).collect(),
        records: AtomicU64::new(0),
        commits: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    println!(
        "group: {} members of {} read {expected} records from {} ({partitions} partitions), commit every {}, \
         session.timeout.ms={} heartbeat.interval.ms={}",
        args.members, args.group, args.topic, args.commit_every, args.session_timeout_ms, args.heartbeat_interval_ms
    );

    let members: Vec<Member> =
        (0..args.members).map(|i| start_member(args, &shared, format!("bench-member-{i}"))).collect::<Result<_>>()?;
    let done = || marks.iter().all(|(p, _, hi)| shared.next[*p as usize].load(Relaxed) >= *hi);
    let secs = wait_for("the group to read every record", args.timeout, done)?.as_secs_f64();
    let read = shared.records.load(Relaxed);
    let rps = expected as f64 / secs;
    let mbps = expected as f64 * args.record_size as f64 / secs / 1e6;
    println!(
        "  {expected} records in {secs:.2} s (including the initial join): {rps:.0} records/s, {mbps:.1} MB/s; \
         {read} deliveries ({} re-read), {} commits",
        read.saturating_sub(expected),
        shared.commits.load(Relaxed)
    );
    println!(
        "RESULT mode=group members={} records={expected} secs={secs:.3} rps={rps:.0} redelivered={} commits={}",
        args.members,
        read.saturating_sub(expected),
        shared.commits.load(Relaxed)
    );

    let states: Vec<Arc<MemberState>> = members.iter().map(|m| m.state.clone()).collect();
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for i in 0..args.rebalances {
        let t = shared.epoch.elapsed().as_nanos() as u64;
        let joiner = start_member(args, &shared, format!("bench-joiner-{i}"))?;
        {
            let mut all: Vec<&MemberState> = states.iter().map(|s| s.as_ref()).collect();
            all.push(&joiner.state);
            joins.push(wait_for("the group to rebalance after a join", args.timeout, || {
                stable_since(&all, t, partitions)
            })?);
        }

        let t = shared.epoch.elapsed().as_nanos() as u64;
        let left_at = Instant::now();
        joiner.leave();
        let old: Vec<&MemberState> = states.iter().map(|s| s.as_ref()).collect();
        wait_for("the group to rebalance after a leave", args.timeout, || stable_since(&old, t, partitions))?;
        leaves.push(left_at.elapsed());
    }
    if args.rebalances > 0 {
        let ms = |v: &mut Vec<Duration>| -> (f64, f64, f64) {
            v.sort();
            let f = |d: Duration| d.as_secs_f64() * 1e3;
            (f(v[0]), f(v[v.len() / 2]), f(v[v.len() - 1]))
        };
        let (jmin, jmed, jmax) = ms(&mut joins);
        let (lmin, lmed, lmax) = ms(&mut leaves);
        println!("  {} joins: rebalance min {jmin:.0} ms, median {jmed:.0} ms, max {jmax:.0} ms", args.rebalances);
        println!("  {} leaves: rebalance min {lmin:.0} ms, median {lmed:.0} ms, max {lmax:.0} ms", args.rebalances);
        println!(
            "RESULT mode=rebalance count={} join_min_ms={jmin:.1} join_p50_ms={jmed:.1} join_max_ms={jmax:.1} \
             leave_min_ms={lmin:.1} leave_p50_ms={lmed:.1} leave_max_ms={lmax:.1}",
            args.rebalances
        );
    }

    for m in members {
        m.leave();
    }
    let errors = shared.errors.lock().unwrap();
    if !errors.is_empty() {
        println!("  {} consumer errors, first: {}", errors.len(), errors[0]);
    }
    Ok(())
}
