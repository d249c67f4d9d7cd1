//! The baseline of `scripts/bench-indexer.sh`: what serde_json alone costs on the record values the
//! indexer consumed (the file `bench_events.rs` wrote, one value per line), on one thread.
//!
//! - `serde_json::from_slice::<Value>` of each value (the indexer's `json` codec does exactly this);
//! - `serde_json::to_vec` of each parsed value (timed apart from parsing, chunk by chunk);
//! - with `--config`, the indexer's own core on the same values: [`Processor::process`] (decode,
//!   filters, route, bulk encode) into batches of the config's `batch_max_events`, with no Kafka and no
//!   HTTP; then, to show where the time goes, passes over the first 200,000 values that stop after
//!   decode, filters, route and encode, whose differences are the stages' costs. The passes take the
//!   event path; the nginx pipeline's records mostly take the direct encoder (`indexer/src/direct.rs`),
//!   which has no such stages, so for that pipeline they show what the event path costs.
//!
//! Each phase reports wall time and this thread's CPU time (`/proc/thread-self/schedstat`): on a shared
//! machine the wall time also counts other processes' turns on the CPU, the CPU time does not.
//!
//! Prints a readable summary and one `RESULT key=value ...` line for scripts.
//!
//! ```text
//! cargo run --release -p logpipe-indexer --example json_baseline -- --file /tmp/values.ndjson \
//!     --config indexer.toml
//! ```

use std::hint::black_box;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use figment::providers::{Format, Toml};
use serde_json::Value;

use logpipe_indexer::benchmarking::{BulkRequest, Compiled, DocId, Enrichment, Processor, Record, RecordBatch, Routed};

/// The allocator the `logpipe` binary uses, so the core's figures are the indexer's. (glibc's malloc,
/// after the enrichment databases are loaded, page-faults on every multi-megabyte batch body: its
/// dynamic mmap threshold rises and freed tops are trimmed.)
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use logpipe_indexer::IndexerConfig;

/// The Kafka timestamp of every record: a record from a broker has one, and it is part of a fallback `_id`.
const RECORD_TIME: i64 = 1_795_250_130_123;

const USAGE: &str = "\
usage: json_baseline --file FILE [--config PIPELINE.toml] [--partitions N]
                     [--parse-only | --decode-only | --core-only]
  --file FILE        record values, one per line (bench_events --out)
  --config FILE      a pipeline file with an [indexer] section: also time the indexer's core
  --partitions N     partitions the records are spread over for the core's batches (3)
  --parse-only       time only serde_json's parse (the baseline bench-indexer.sh takes again beside
                     each indexer run when it repeats them)
  --decode-only      with --config: time only serde_json's parse and the codec's decode of every
                     value, once each (for a profiler: `valgrind --tool=callgrind
                     --toggle-collect='*Codec*decode*' --toggle-collect='json_baseline::parse'`)
  --core-only        with --config: time only the indexer's core, Processor::process (for `perf record`,
                     or `valgrind --tool=callgrind --toggle-collect='*Processor*build*'`)";

/// Record values, as slices of one buffer.
struct Records {
    data: Vec<u8>,
    lines: Vec<Range<usize>>,
}

impl Records {
    fn load(path: &str) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, b) in data.iter().enumerate() {
            if *b == b'\n' {
                if i > start {
                    lines.push(start..i);
                }
                start = i + 1;
            }
        }
        if start < data.len() {
            lines.push(start..data.len());
        }
        Ok(Self { data, lines })
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|r| &self.data[r.clone()])
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn bytes(&self) -> usize {
        self.lines.iter().map(|r| r.len()).sum()
    }
}

/// This thread's time on a CPU so far (the first field of `/proc/thread-self/schedstat`, in ns). On a
/// shared machine wall time also counts other processes' turns; CPU time does not.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Wall and CPU time of a phase.
#[derive(Clone, Copy)]
struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Self {
        Self { wall: Instant::now(), cpu: thread_cpu() }
    }

    /// (wall, cpu) since `start`.
    fn elapsed(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), thread_cpu().saturating_sub(self.cpu))
    }
}

struct Rate {
    seconds: f64,
    cpu_seconds: f64,
    records: usize,
    bytes: usize,
}

impl Rate {
    fn new((wall, cpu): (Duration, Duration), records: usize, bytes: usize) -> Self {
        Self { seconds: wall.as_secs_f64(), cpu_seconds: cpu.as_secs_f64(), records, bytes }
    }
    fn rps(&self) -> f64 {
        self.records as f64 / self.seconds
    }
    fn mibs(&self) -> f64 {
        self.bytes as f64 / 1048576.0 / self.seconds
    }
    /// CPU microseconds per record.
    fn cpu_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.records as f64
    }
    fn line(&self, what: &str) -> String {
        format!(
            "{what:<58} {:>10.0} records/s {:>7.1} MiB/s ({:.2} s; {:.2} CPU us/record)",
            self.rps(),
            self.mibs(),
            self.seconds,
            self.cpu_us()
        )
    }
    fn result(&self, key: &str) -> String {
        format!(
            " {key}_s={:.3} {key}_rps={:.0} {key}_mibs={:.1} {key}_cpu_us={:.3}",
            self.seconds,
            self.rps(),
            self.mibs(),
            self.cpu_us()
        )
    }
}

/// Not inlined, so that a profiler can count it apart.
#[inline(never)]
fn parse(records: &Records) -> Result<Rate, String> {
    let clock = Clock::start();
    for value in records.iter() {
        let v: Value = serde_json::from_slice(value).map_err(|e| format!("record is not JSON: {e}"))?;
        black_box(&v);
    }
    Ok(Rate::new(clock.elapsed(), records.len(), records.bytes()))
}

fn serialize(records: &Records) -> Rate {
    const CHUNK: usize = 10_000;
    let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
    let mut out_bytes = 0;
    let mut parsed: Vec<Value> = Vec::with_capacity(CHUNK);
    let values: Vec<&[u8]> = records.iter().collect();
    for chunk in values.chunks(CHUNK) {
        parsed.clear();
        parsed.extend(chunk.iter().map(|v| serde_json::from_slice::<Value>(v).unwrap_or(Value::Null)));
        let clock = Clock::start();
        for v in &parsed {
            let out = serde_json::to_vec(v).expect("a Value serializes");
            out_bytes += out.len();
            black_box(out);
        }
        let (w, c) = clock.elapsed();
        (wall, cpu) = (wall + w, cpu + c);
    }
    Rate::new((wall, cpu), records.len(), out_bytes)
}

fn load_config(path: &str) -> Result<IndexerConfig, String> {
    let config: IndexerConfig =
        figment::Figment::from(Toml::file(path)).extract_inner("indexer").map_err(|e| format!("{path}: {e}"))?;
    logpipe_config::Validate::validate(&config).map_err(|e| format!("{path}: {e}"))?;
    Ok(config)
}

fn batch_events(config: &IndexerConfig) -> usize {
    config.output.elasticsearch.as_ref().map_or(5000, |es| es.batch_max_events)
}

/// [`Processor::build`] over every record, a fresh batch every `batch_events` records as in the
/// indexer's flow (the finished batch is dropped, as it is after delivery, and its body's buffer reused
/// as the indexer's `concurrency` allows). Copying the values into a [`RecordBatch`] is part of the figure,
/// as the consumer thread does it.
fn processor(records: &Records, config: &IndexerConfig, partitions: i32) -> Result<(Rate, usize), String> {
    let compiled =
        Compiled::with_enrichment(config, &Enrichment::load(&config.enrichment)).map_err(|e| e.to_string())?;
    let concurrency = config.output.elasticsearch.as_ref().map_or(1, |es| es.concurrency);
    let processor = Processor::new(compiled).reusing_bodies(concurrency);
    let max = batch_events(config);
    let topic: Arc<str> = "nginx".into();
    let (mut raw, mut id, mut documents) = (RecordBatch::default(), 0, 0);
    let clock = Clock::start();
    for (i, value) in records.iter().enumerate() {
        let (partition, offset) = ((i as i32) % partitions, (i as i64) / i64::from(partitions));
        raw.push(&topic, partition, offset, RECORD_TIME, Some(value));
        if raw.len() >= max {
            id += 1;
            let next = raw.next();
            documents += processor.build(id, std::mem::replace(&mut raw, next)).items().len();
        }
    }
    documents += processor.build(id + 1, raw).items().len();
    Ok((Rate::new(clock.elapsed(), records.len(), records.bytes()), documents))
}

/// CPU time of each of the core's stages, over `records` records. Each includes freeing what it
/// allocated (the event is dropped at the end of each record, as in the indexer).
struct Stages {
    records: usize,
    decode: Duration,
    filters: Duration,
    /// What `[indexer.enrichment]` (user agent, GeoIP, ASN, with their caches) adds to the filters.
    enrich: Duration,
    route: Duration,
    /// Document id and bulk encoding (with the batch's per-item bookkeeping).
    encode: Duration,
}

/// How far [`pass`] takes each record.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Depth {
    Decode,
    Filters,
    Route,
    Encode,
}

/// Runs `sample` through the core's stages up to `depth` with the public pieces; returns the CPU time.
fn pass(sample: &[&[u8]], compiled: &Compiled, max: usize, depth: Depth) -> Result<Duration, String> {
    let mut index = String::new();
    let topic: Arc<str> = "nginx".into();
    let mut bulk = BulkRequest::new();
    let mut items: Vec<(String, String)> = Vec::new();
    let clock = Clock::start();
    for (i, value) in sample.iter().enumerate() {
        let mut event = compiled.codec.decode(value, Utc::now());
        if depth >= Depth::Filters {
            compiled.filters.apply(&mut event);
        }
        if depth >= Depth::Route
            && compiled.routes.route(&event, &mut index) != Routed::Dropped
            && depth >= Depth::Encode
        {
            let record = Record { topic: &topic, partition: 0, offset: i as i64, timestamp: RECORD_TIME, value: None };
            let id = DocId::of(&event, &record).to_string();
            bulk.push(&index, &id, &event).map_err(|e| e.to_string())?;
            items.push((index.clone(), id));
            if items.len() >= max {
                // A fresh body per batch, as the flow makes one.
                (bulk, items) = (BulkRequest::new(), Vec::new());
            }
        }
        black_box(&event);
    }
    Ok(clock.elapsed().1)
}

/// The stages of [`Processor::process`] as differences between passes that stop after each stage,
/// on CPU time, over the first 200,000 records at most.
fn stages(records: &Records, config: &IndexerConfig) -> Result<Stages, String> {
    let plain = Compiled::try_from(config).map_err(|e| e.to_string())?;
    let enrichment = Enrichment::load(&config.enrichment);
    let compiled = Compiled::with_enrichment(config, &enrichment).map_err(|e| e.to_string())?;
    let max = batch_events(config);
    let sample: Vec<&[u8]> = records.iter().take(200_000).collect();
    let decode = pass(&sample, &compiled, max, Depth::Decode)?;
    let filters_plain = pass(&sample, &plain, max, Depth::Filters)?;
    let filters = pass(&sample, &compiled, max, Depth::Filters)?;
    let route = pass(&sample, &compiled, max, Depth::Route)?;
    let encode = pass(&sample, &compiled, max, Depth::Encode)?;
    Ok(Stages {
        records: sample.len(),
        decode,
        filters: filters_plain.saturating_sub(decode),
        enrich: filters.saturating_sub(filters_plain),
        route: route.saturating_sub(filters),
        encode: encode.saturating_sub(route),
    })
}

fn run() -> Result<(), String> {
    let (mut file, mut config, mut partitions) = (None, None, 3i32);
    let (mut parse_only, mut decode_only, mut core_only) = (false, false, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--parse-only" => parse_only = true,
            "--decode-only" => decode_only = true,
            "--core-only" => core_only = true,
            _ => match (flag.as_str(), it.next()) {
                ("--file", Some(v)) => file = Some(v),
                ("--config", Some(v)) => config = Some(v),
                ("--partitions", Some(v)) => partitions = v.parse().map_err(|e| format!("--partitions {v}: {e}"))?,
                _ => return Err(USAGE.into()),
            },
        }
    }
    let file = file.ok_or(USAGE)?;
    let config = config.as_deref().map(load_config).transpose()?;
    let records = Records::load(&file)?;
    if records.len() == 0 {
        return Err(format!("{file} holds no records"));
    }
    let n = records.len();
    let bytes = records.bytes();
    println!("{n} records, {:.1} MiB of values, {} B average", bytes as f64 / 1048576.0, bytes / n);

    // Warm the allocator and caches on a slice first.
    for value in records.iter().take(20_000) {
        black_box(serde_json::from_slice::<Value>(value).ok());
    }

    if let (true, Some(config)) = (core_only, &config) {
        let (c, _) = processor(&records, config, partitions)?;
        println!("{}", c.line("Processor::process (decode, filters, route, bulk encode)"));
        println!("RESULT records={n} bytes={bytes}{}", c.result("core"));
        return Ok(());
    }
    let p = parse(&records)?;
    println!("{}", p.line("serde_json::from_slice::<Value>"));
    if parse_only {
        println!("RESULT records={n} bytes={bytes}{}", p.result("parse"));
        return Ok(());
    }
    if let (true, Some(config)) = (decode_only, &config) {
        let compiled = Compiled::try_from(config).map_err(|e| e.to_string())?;
        let sample: Vec<&[u8]> = records.iter().collect();
        let decode = pass(&sample, &compiled, batch_events(config), Depth::Decode)?;
        let ns = decode.as_nanos() as f64 / n as f64;
        println!("  decode CPU ns/record {ns:.0}");
        println!("RESULT records={n} bytes={bytes}{} decode_ns={ns:.0}", p.result("parse"));
        return Ok(());
    }
    let w = serialize(&records);
    println!("{}", w.line("serde_json::to_vec(&Value) (MiB/s of output)"));
    let mut result = format!("RESULT records={n} bytes={bytes}{}{}", p.result("parse"), w.result("to_vec"));

    if let Some(config) = &config {
        let (c, documents) = processor(&records, config, partitions)?;
        println!("{}", c.line("Processor::process (decode, filters, route, bulk encode)"));
        if documents != n {
            println!("  note: {documents} of {n} records became documents");
        }
        let s = stages(&records, config)?;
        let ns = |d: Duration| d.as_nanos() as f64 / s.records as f64;
        println!(
            "  CPU ns/record by stage of the event path (each with its frees; records the direct encoder takes skip the stages): decode {:.0}, filters {:.0}, enrichment {:.0}, route {:.0}, doc id + bulk encode {:.0}",
            ns(s.decode),
            ns(s.filters),
            ns(s.enrich),
            ns(s.route),
            ns(s.encode)
        );
        result += &c.result("core");
        result += &format!(
            " decode_ns={:.0} filters_ns={:.0} enrich_ns={:.0} route_ns={:.0} encode_ns={:.0}",
            ns(s.decode),
            ns(s.filters),
            ns(s.enrich),
            ns(s.route),
            ns(s.encode)
        );
    }
    println!("{result}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("json_baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
