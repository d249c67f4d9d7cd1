//! Searching the file output's daily NDJSON files (`<index>.ndjson`, one document a line), streaming.
//!
//! The scan reads each picked file in large blocks and splits lines with `memchr`; a line is parsed
//! as JSON only if it contains every literal the query requires ([`Query::literals`], found with a
//! precompiled `memmem` finder), so a term that few lines hold costs little more than `grep -c`.
//! Files are picked by the date in their name (`-YYYY.MM.dd`) against the time range, widened by the
//! largest UTC offset because a route with a `time_zone` names its files by the local day; files without a
//! date are always read. The answer holds the total, a histogram over the time range, and the newest
//! `size` hits, newest first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;
use std::path::{Path, PathBuf};

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::{self, Query};

/// What the search box asks.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    /// The query text ([`crate::query`]).
    #[serde(default)]
    pub q: String,
    /// The time range, milliseconds since the epoch; open when absent.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Newest hits to return. Default 50, at most 500.
    pub size: Option<usize>,
    /// Histogram buckets over the range. Default 60.
    pub buckets: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Answer {
    pub total: u64,
    /// Bucket start (ms) and count, oldest first.
    pub histogram: Vec<(i64, u64)>,
    pub hits: Vec<Hit>,
    /// Files (or `_search` requests) read and bytes scanned.
    pub files: usize,
    pub bytes: u64,
    pub took_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub time_ms: i64,
    pub index: String,
    pub source: String,
}

const BLOCK: usize = 1 << 22;

/// Searches the NDJSON files of `dir`.
pub fn scan_files(dir: &Path, request: &Request) -> Result<Answer, String> {
    let started = std::time::Instant::now();
    let query = query::parse(&request.q)?;
    let literals = query.literals();
    let finders: Vec<Finder<'_>> = literals.iter().map(|l| Finder::new(l.as_bytes())).collect();
    let size = request.size.unwrap_or(50).min(500);
    let mut histogram = Histogram::new(request);
    let mut newest: BinaryHeap<Reverse<Hit>> = BinaryHeap::new();
    let mut answer = Answer::default();
    for (path, index) in pick_files(dir, request.from, request.to)? {
        answer.files += 1;
        let mut file = std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut buf = vec![0u8; BLOCK];
        let mut filled = 0;
        loop {
            let n = file.read(&mut buf[filled..]).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            answer.bytes += n as u64;
            let end = filled + n;
            let complete = if n == 0 { end } else { memchr::memrchr(b'\n', &buf[..end]).map_or(0, |i| i + 1) };
            for line in buf[..complete].split(|b| *b == b'\n') {
                if line.is_empty() || !finders.iter().all(|f| f.find(line).is_some()) {
                    continue;
                }
                let Some((time_ms, raw)) = matching(line, &query, request) else { continue };
                answer.total += 1;
                histogram.add(time_ms);
                let hit = Hit { time_ms, index: index.clone(), source: raw.to_owned() };
                if newest.len() < size {
                    newest.push(Reverse(hit));
                } else if newest.peek().is_some_and(|Reverse(oldest)| oldest.time_ms < time_ms) {
                    newest.pop();
                    newest.push(Reverse(hit));
                }
            }
            if n == 0 {
                break;
            }
            buf.copy_within(complete..end, 0);
            filled = end - complete;
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0); // a line longer than the block
            }
        }
    }
    answer.hits = newest.into_sorted_vec().into_iter().map(|Reverse(h)| h).collect();
    answer.histogram = histogram.finish();
    answer.took_ms = started.elapsed().as_millis() as u64;
    Ok(answer)
}

/// The document's time and text if it matches the query and the time range.
fn matching<'a>(line: &'a [u8], query: &Query, request: &Request) -> Option<(i64, &'a str)> {
    let raw = std::str::from_utf8(line).ok()?;
    let doc: Value = serde_json::from_str(raw).ok()?;
    let time_ms = doc.get("@timestamp").and_then(Value::as_str).and_then(query::instant_ms).unwrap_or(0);
    if request.from.is_some_and(|from| time_ms < from) || request.to.is_some_and(|to| time_ms >= to) {
        return None;
    }
    query.matches(raw, &doc).then_some((time_ms, raw))
}

const DAY_MS: i64 = 86_400_000;
/// The furthest any time zone is from UTC (UTC+14, Kiribati; the furthest behind is UTC-12).
const MAX_UTC_OFFSET_MS: i64 = 14 * 3_600_000;

/// The `.ndjson` files whose name's day, in any time zone, could overlap [from, to), with their index
/// names, oldest first.
fn pick_files(dir: &Path, from: Option<i64>, to: Option<i64>) -> Result<Vec<(PathBuf, String)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list the file output directory {}: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(index) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ndjson")) else {
            continue;
        };
        let keep = match day_of(index) {
            // The day is the route's local day (`time_zone`), which is not known here: the file may hold
            // documents from any time its day covers in some zone. The documents' own times still decide.
            Some(midnight_utc) => {
                let (start, end) = (midnight_utc - MAX_UTC_OFFSET_MS, midnight_utc + DAY_MS + MAX_UTC_OFFSET_MS);
                from.is_none_or(|from| end > from) && to.is_none_or(|to| start < to)
            }
            None => true,
        };
        if keep {
            files.push((day_of(index).unwrap_or(0), index.to_owned(), path.clone()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, index, path)| (path, index)).collect())
}

/// Midnight UTC of the `YYYY.MM.dd` (or `YYYY-MM-dd`) date an index name ends with.
pub fn day_of(index: &str) -> Option<i64> {
    let tail = index.get(index.len().checked_sub(10)?..)?;
    let date = chrono::NaiveDate::parse_from_str(&tail.replace('.', "-"), "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

struct Histogram {
    from: i64,
    width: i64,
    counts: Vec<u64>,
    /// Without a range, the times seen; buckets are made at the end.
    times: Option<Vec<i64>>,
    buckets: usize,
}

impl Histogram {
    fn new(request: &Request) -> Self {
        let buckets = request.buckets.unwrap_or(60).clamp(1, 500);
        match (request.from, request.to) {
            (Some(from), Some(to)) if to > from => {
                let width = ((to - from) / buckets as i64).max(1);
                Self { from, width, counts: vec![0; buckets], times: None, buckets }
            }
            _ => Self { from: 0, width: 1, counts: Vec::new(), times: Some(Vec::new()), buckets },
        }
    }

    fn add(&mut self, time_ms: i64) {
        match &mut self.times {
            Some(times) => times.push(time_ms),
            None => {
                let i = ((time_ms - self.from) / self.width).clamp(0, self.counts.len() as i64 - 1);
                self.counts[i as usize] += 1;
            }
        }
    }

    fn finish(mut self) -> Vec<(i64, u64)> {
        if let Some(times) = self.times.take() {
            let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else { return Vec::new() };
            self.from = lo;
            self.width = ((hi - lo) / self.buckets as i64 + 1).max(1);
            self.counts = vec![0; self.buckets];
            for t in times {
                self.add(t);
            }
        }
        let (from, width) = (self.from, self.width);
        self.counts.into_iter().enumerate().map(|(i, c)| (from + i as i64 * width, c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, t: &str) -> String {
        format!("{{\"_id\":\"x\",\"@timestamp\":\"{t}\",\"url\":{{\"path\":\"{path}\"}}}}\n")
    }

    #[test]
    fn scans_the_picked_days_newest_first_with_a_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let mut day1 = String::new();
        for i in 0..10 {
            day1.push_str(&doc(if i % 2 == 0 { "/a" } else { "/b" }, &format!("2026-12-03T10:00:0{i}Z")));
        }
        std::fs::write(dir.path().join("web-2026.12.03.ndjson"), &day1).unwrap();
        std::fs::write(dir.path().join("web-2026.12.04.ndjson"), doc("/a", "2026-12-04T01:00:00Z")).unwrap();
        std::fs::write(dir.path().join("web-2026.11.01.ndjson"), doc("/a", "2026-11-01T01:00:00Z")).unwrap();

        let from = query::instant_ms("2026-12-03").unwrap();
        let to = query::instant_ms("2026-12-05").unwrap();
        let request =
            Request { q: "url.path:/a".into(), from: Some(from), to: Some(to), size: Some(3), buckets: Some(2) };
        let answer = scan_files(dir.path(), &request).unwrap();
        assert_eq!(answer.total, 6);
        assert_eq!(answer.files, 2, "the November file is not read");
        let times: Vec<i64> = answer.hits.iter().map(|h| h.time_ms).collect();
        assert_eq!(times[0], query::instant_ms("2026-12-04T01:00:00Z").unwrap());
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
        assert_eq!(answer.histogram, vec![(from, 5), (from + 86_400_000, 1)]);

        let all =
            scan_files(dir.path(), &Request { q: String::new(), from: None, to: None, size: None, buckets: None });
        assert_eq!(all.unwrap().total, 12);
    }

    #[test]
    fn a_file_named_by_a_local_day_ahead_of_utc_is_read() {
        // A route with time_zone = "Asia/Tokyo" (UTC+9) writes 05:00 local on 12-05 to the 12.05 file; in
        // UTC that is 20:00 on 12-04, before the file's day starts in UTC.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web-2026.12.05.ndjson"), doc("/a", "2026-12-04T20:00:00Z")).unwrap();
        std::fs::write(dir.path().join("web-2026.12.07.ndjson"), doc("/a", "2026-12-06T20:00:00Z")).unwrap();
        let request = Request {
            q: "url.path:/a".into(),
            from: query::instant_ms("2026-12-04T19:00:00Z"),
            to: query::instant_ms("2026-12-04T21:00:00Z"),
            size: None,
            buckets: None,
        };
        let answer = scan_files(dir.path(), &request).unwrap();
        assert_eq!(answer.total, 1, "{answer:?}");
        assert_eq!(answer.hits[0].time_ms, query::instant_ms("2026-12-04T20:00:00Z").unwrap());
        assert_eq!(answer.files, 1, "the 12.07 file cannot hold that hour in any zone");
    }

    #[test]
    fn a_bad_query_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let request = Request { q: "(".into(), from: None, to: None, size: None, buckets: None };
        assert!(scan_files(dir.path(), &request).is_err());
    }
}
