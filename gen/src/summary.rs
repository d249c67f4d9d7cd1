//! What a run wrote, as the one line of JSON a test compares with the broker's offsets and the
//! Elasticsearch index counts:
//!
//! ```text
//! {"access":9503,"error":497,"total":10000,"last_seq":10000,"per_day":{"access":{"2026.11.20":5702,"2026.11.21":3801},"error":{...}}}
//! ```
//!
//! `per_day` is keyed like the daily indices (`logstash-%{+YYYY.MM.dd}`), by each line's UTC date.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::generator::{Kind, Line};

/// Counts of the lines written, per log and per daily index.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Lines in access.log (and its rotations).
    pub access: u64,
    /// Lines in error.log (and its rotations).
    pub error: u64,
    /// `access + error`.
    pub total: u64,
    /// The last line's sequence number (0 if none); equal to `total` within one run.
    pub last_seq: u64,
    pub per_day: PerDay,
    /// The last line's date and its key, so a key is formatted once per day, not once per line.
    #[serde(skip)]
    last_day: Option<(NaiveDate, String)>,
}

/// Line counts per Elasticsearch daily index date, `YYYY.MM.dd` in UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PerDay {
    pub access: BTreeMap<String, u64>,
    pub error: BTreeMap<String, u64>,
}

impl Summary {
    /// Counts a line that has been handed to its log file.
    pub fn record(&mut self, line: &Line) {
        match line.kind {
            Kind::Access => self.access += 1,
            Kind::Error => self.error += 1,
        }
        self.total += 1;
        self.last_seq = line.seq;
        let day = day_key(&mut self.last_day, &line.time);
        let per_day = match line.kind {
            Kind::Access => &mut self.per_day.access,
            Kind::Error => &mut self.per_day.error,
        };
        match per_day.get_mut(day) {
            Some(count) => *count += 1,
            None => {
                per_day.insert(day.to_string(), 1);
            }
        }
    }

    /// The summary as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a summary is plain counts and strings")
    }

    /// Writes the JSON (and a newline) to `path` atomically (`logpipe_durable::write_atomic`), so a
    /// reader sees the old summary or the whole new one.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let err = |source| Error::Summary { path: path.to_path_buf(), source };
        logpipe_durable::write_atomic(path, format!("{}\n", self.to_json()).as_bytes()).map_err(err)
    }
}

/// The daily index date of `time`, from `cache` when it is the same day as the previous line.
fn day_key<'a>(cache: &'a mut Option<(NaiveDate, String)>, time: &DateTime<Utc>) -> &'a str {
    let date = time.date_naive();
    if cache.as_ref().is_none_or(|(last, _)| *last != date) {
        *cache = Some((date, date.format("%Y.%m.%d").to_string()));
    }
    &cache.as_ref().expect("set above").1
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn line(kind: Kind, seq: u64, time: &str) -> Line {
        Line { kind, seq, time: time.parse().unwrap(), text: String::new() }
    }

    fn sample() -> Summary {
        let mut summary = Summary::default();
        summary.record(&line(Kind::Access, 1, "2026-11-20T23:59:59.990Z"));
        summary.record(&line(Kind::Error, 2, "2026-11-20T23:59:59.999Z"));
        summary.record(&line(Kind::Access, 3, "2026-11-21T00:00:00Z"));
        summary
    }

    #[test]
    fn json_shape() {
        assert_eq!(
            sample().to_json(),
            r#"{"access":2,"error":1,"total":3,"last_seq":3,"per_day":{"access":{"2026.11.20":1,"2026.11.21":1},"error":{"2026.11.20":1}}}"#
        );
        assert_eq!(
            Summary::default().to_json(),
            r#"{"access":0,"error":0,"total":0,"last_seq":0,"per_day":{"access":{},"error":{}}}"#
        );
    }

    #[test]
    fn write_to_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        fs::write(&path, "old").unwrap();
        sample().write_to(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", sample().to_json()));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
}
