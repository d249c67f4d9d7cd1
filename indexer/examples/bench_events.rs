//! Loads the indexer benchmark's input, driven by `scripts/bench-indexer.sh`: N agent envelopes
//! (DESIGN.md "Event envelope") around realistic nginx `combined` access lines, tagged `access`, each
//! with a unique `event.id`, produced into a topic with librdkafka and also written, one value per line,
//! to a file so the serde_json baseline (`json_baseline.rs`) reads exactly the same bytes.
//!
//! Log times advance 150 ms per event from 2026-11-20T12:00:00Z, so 1,000,000 events span three UTC
//! days and the indexer's daily route writes three indices. The agent's `@timestamp` (read time) is a
//! few hundred milliseconds later than the line's `$time_local`, as it would be in production.
//!
//! Prints a readable summary and one `RESULT key=value ...` line for scripts.
//!
//! ```text
//! cargo run --release -p logpipe-indexer --example bench_events -- \
//!     --bootstrap 127.0.0.1:9092 --topic nginx --records 1000000 --out /tmp/values.ndjson
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

const USAGE: &str = "\
usage: bench_events [options]
  --bootstrap HOST:PORT   broker address; without it nothing is produced (only --out is written)
  --topic NAME            topic, which must exist (nginx)
  --records N             events (1000000)
  --out FILE              also write the record values there, one per line
  --compression CODEC     producer compression.codec (lz4)
  --linger-ms MS          producer linger.ms (20)
  --batch-num N           producer batch.num.messages (10000)
  --seed N                random seed (42)";

struct Args {
    bootstrap: Option<String>,
    topic: String,
    records: u64,
    out: Option<String>,
    compression: String,
    linger_ms: u64,
    batch_num: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bootstrap: None,
        topic: "nginx".into(),
        records: 1_000_000,
        out: None,
        compression: "lz4".into(),
        linger_ms: 20,
        batch_num: 10_000,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--bootstrap" => a.bootstrap = Some(value),
            "--topic" => a.topic = value,
            "--records" => a.records = number(&value)?,
            "--out" => a.out = Some(value),
            "--compression" => a.compression = value,
            "--linger-ms" => a.linger_ms = number(&value)?,
            "--batch-num" => a.batch_num = number(&value)?,
            "--seed" => a.seed = number(&value)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/api/v1/users",
    "/api/v1/orders?page=2",
    "/static/app.3f9a1c.js",
    "/static/style.8c1d.css",
    "/images/logo.png",
    "/login",
    "/search?q=rust+kafka&lang=en",
    "/health",
    "/api/v1/items/12345",
    "/wp-login.php",
    "/favicon.ico",
    "/robots.txt",
    "/cart",
    "/checkout/step-2",
    "/api/v1/cart/items",
    "/category/shoes?sort=price_asc&page=3",
    "/product/trail-runner-gtx-42",
    "/sitemap.xml",
];

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "curl/7.88.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "python-requests/2.31.0",
];

const REFERRERS: &[&str] =
    &["-", "https://www.example.com/", "https://www.google.com/search?q=trail+shoes", "https://shop.example.com/cart"];

const HOSTS: &[&str] = &["web-01", "web-02", "web-03"];

/// One envelope, as `agent/src/envelope.rs` writes it for a file input with `tags = ["access"]`.
struct Generator {
    rng: StdRng,
    ips: Vec<String>,
    log_time: DateTime<Utc>,
    offsets: [u64; 3],
    line: String,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ips = (0..2000)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    rng.gen_range(1..224),
                    rng.gen_range(0..256),
                    rng.gen_range(0..256),
                    rng.gen_range(1..255)
                )
            })
            .collect();
        let log_time = DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z").expect("static").with_timezone(&Utc);
        Self { rng, ips, log_time, offsets: [0; 3], line: String::with_capacity(512) }
    }

    /// Writes the `seq`th envelope into `out` (cleared first).
    fn envelope(&mut self, seq: u64, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let rng = &mut self.rng;
        let t = self.log_time;
        self.log_time += TimeDelta::milliseconds(150);
        let method = if rng.gen_ratio(9, 10) { "GET" } else { ["POST", "PUT", "DELETE", "HEAD"][rng.gen_range(0..4)] };
        let status = match rng.gen_range(0..100) {
            0..=84 => 200,
            85..=88 => 304,
            89..=91 => 301,
            92..=96 => 404,
            97 => 499,
            98 => 500,
            _ => 502,
        };
        let bytes = if status == 304 { 0 } else { rng.gen_range(0..80_000) };
        self.line.clear();
        let _ = write!(
            self.line,
            "{ip} - {user} [{d:02}/{mon}/{y}:{h:02}:{mi:02}:{s:02} +0000] \"{method} {path} HTTP/1.1\" {status} {bytes} \"{referrer}\" \"{agent}\"",
            ip = self.ips[rng.gen_range(0..self.ips.len())],
            user = if rng.gen_ratio(1, 50) { "alice" } else { "-" },
            d = t.day(),
            mon = MONTHS[t.month0() as usize],
            y = t.year(),
            h = t.hour(),
            mi = t.minute(),
            s = t.second(),
            path = PATHS[rng.gen_range(0..PATHS.len())],
            referrer = REFERRERS[rng.gen_range(0..REFERRERS.len())],
            agent = AGENTS[rng.gen_range(0..AGENTS.len())],
        );
        let host = (seq % 3) as usize;
        let offset = self.offsets[host];
        self.offsets[host] += self.line.len() as u64 + 1;
        let read = t + TimeDelta::milliseconds(rng.gen_range(50..900));

        out.clear();
        let _ = write!(Bytes(out), "{{\"@timestamp\":\"{}\",\"message\":", read.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        serde_json::to_writer(&mut *out, &self.line).expect("a string serializes");
        let _ = write!(
            Bytes(out),
            concat!(
                ",\"tags\":[\"access\"],\"log\":{{\"file\":{{\"path\":\"/var/log/nginx/access.log\"}},\"offset\":{offset}}},",
                "\"host\":{{\"name\":\"{host}\"}},\"input\":{{\"type\":\"file\"}},",
                "\"agent\":{{\"type\":\"logpipe\",\"version\":\"0.1.0\"}},\"event\":{{\"id\":\"{id:032x}\"}}}}"
            ),
            offset = offset,
            host = HOSTS[host],
            id = event_id(seq),
        );
    }
}

/// A 128-bit id unique per `seq` (two rounds of splitmix64), standing in for the agent's hash.
fn event_id(seq: u64) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    // `mix` is a bijection, so distinct `seq` give distinct high halves.
    (u128::from(mix(seq)) << 64) | u128::from(mix(seq ^ 0x5555_5555_5555_5555))
}

/// `fmt::Write` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Counts delivery reports; failures are fatal for a benchmark input.
#[derive(Default)]
struct Reports {
    delivered: AtomicU64,
    failed: AtomicU64,
}

struct Context(Arc<Reports>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Relaxed),
            Err((e, _)) => {
                if self.0.failed.fetch_add(1, Relaxed) == 0 {
                    eprintln!("delivery failed: {e}");
                }
                0
            }
        };
    }
}

fn run(args: &Args) -> Result<(), String> {
    let reports = Arc::new(Reports::default());
    let producer: Option<ThreadedProducer<Context>> = match &args.bootstrap {
        Some(bootstrap) => Some(
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("acks", "all")
                .set("compression.codec", &args.compression)
                .set("linger.ms", args.linger_ms.to_string())
                .set("batch.num.messages", args.batch_num.to_string())
                .set("batch.size", "4000000")
                .set("queue.buffering.max.messages", "1000000")
                .set("queue.buffering.max.kbytes", "1048576")
                .set("allow.auto.create.topics", "false")
                .create_with_context(Context(reports.clone()))
                .map_err(|e| format!("producer: {e}"))?,
        ),
        None => None,
    };
    let mut file = match &args.out {
        Some(path) => Some(BufWriter::with_capacity(1 << 20, File::create(path).map_err(|e| format!("{path}: {e}"))?)),
        None => None,
    };

    let mut generator = Generator::new(args.seed);
    let mut value = Vec::with_capacity(1024);
    let mut bytes = 0u64;
    let started = Instant::now();
    for seq in 0..args.records {
        generator.envelope(seq, &mut value);
        bytes += value.len() as u64;
        if let Some(f) = &mut file {
            f.write_all(&value).and_then(|_| f.write_all(b"\n")).map_err(|e| format!("writing values: {e}"))?;
        }
        if let Some(p) = &producer {
            let mut record = BaseRecord::<(), [u8]>::to(&args.topic).payload(&value[..]);
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(format!("send: {e}")),
                }
            }
        }
    }
    if let Some(f) = &mut file {
        f.flush().map_err(|e| format!("writing values: {e}"))?;
    }
    if let Some(p) = &producer {
        p.flush(Duration::from_secs(120)).map_err(|e| format!("flush: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (delivered, failed) = (reports.delivered.load(Relaxed), reports.failed.load(Relaxed));
    if producer.is_some() && (failed > 0 || delivered != args.records) {
        return Err(format!("{delivered} of {} records delivered, {failed} failed", args.records));
    }
    println!(
        "{} events, {:.1} MiB of record values ({} B average){} in {seconds:.2} s",
        args.records,
        bytes as f64 / 1048576.0,
        bytes / args.records.max(1),
        if producer.is_some() {
            format!(", produced to {} (acks=all, {})", args.topic, args.compression)
        } else {
            String::new()
        },
    );
    println!("RESULT records={} bytes={bytes} seconds={seconds:.3}", args.records);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_events: {e}");
            ExitCode::FAILURE
        }
    }
}
