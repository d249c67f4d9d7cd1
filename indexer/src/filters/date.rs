//! The `date` filter: sets `@timestamp` (or another target) from a field, trying formats in order:
//! `ISO8601`, `UNIX` (seconds, fractions allowed), `UNIX_MS`, or a chrono strftime format such as
//! `%d/%b/%Y:%H:%M:%S %z`. A format without a zone is read in the filter's time zone if the config sets
//! one, else in the event's `event.timezone`, else in UTC.
//! Setting `@timestamp` moves the agent's read time to `event.created`. No format matching tags the event
//! `_dateparsefailure` and leaves it otherwise unchanged.
//!
//! References: Logstash date filter; chrono `format::strftime`.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::zone::Zone;
use super::{Filter, DATE_PARSE_FAILURE};
use crate::error::{Error, Result};
use crate::event::{format_timestamp, Event, FieldRef, TIMESTAMP};

/// One accepted input format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    Iso8601,
    Unix,
    UnixMs,
    Strftime(String),
}

impl DateFormat {
    /// `ISO8601`, `UNIX`, `UNIX_MS`, or a strftime format (checked here, at load).
    pub fn parse(format: &str) -> Result<Self> {
        Ok(match format {
            "ISO8601" => Self::Iso8601,
            "UNIX" => Self::Unix,
            "UNIX_MS" => Self::UnixMs,
            other => {
                if other.is_empty() || StrftimeItems::new(other).any(|i| matches!(i, Item::Error)) {
                    return Err(Error::Config(format!(
                        "date format {other:?} is not ISO8601, UNIX, UNIX_MS or a valid strftime format"
                    )));
                }
                Self::Strftime(other.to_string())
            }
        })
    }

    fn read(&self, value: &Value, zone: Zone) -> Option<DateTime<Utc>> {
        let local = |naive: NaiveDateTime| zone.to_utc(&naive);
        match (self, value) {
            (Self::Unix, Value::Number(n)) => from_millis((n.as_f64()? * 1000.0).round()),
            (Self::Unix, Value::String(s)) => from_millis((s.trim().parse::<f64>().ok()? * 1000.0).round()),
            (Self::UnixMs, Value::Number(n)) => from_millis(n.as_f64()?.round()),
            (Self::UnixMs, Value::String(s)) => from_millis(s.trim().parse::<f64>().ok()?.round()),
            (Self::Iso8601, Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z").ok().map(|t| t.with_timezone(&Utc)))
                .or_else(|| {
                    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S,%3f"]
                        .iter()
                        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                        .and_then(local)
                }),
            (Self::Strftime(f), Value::String(s)) => DateTime::parse_from_str(s, f)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| NaiveDateTime::parse_from_str(s, f).ok().and_then(local)),
            _ => None,
        }
    }
}

fn from_millis(ms: f64) -> Option<DateTime<Utc>> {
    (ms.is_finite() && ms.abs() < 1e17).then(|| DateTime::from_timestamp_millis(ms as i64)).flatten()
}

/// A compiled date filter.
#[derive(Debug, Clone)]
pub struct DateFilter {
    pub source: FieldRef,
    pub formats: Vec<DateFormat>,
    /// Default `@timestamp`.
    pub target: FieldRef,
    /// Zone for formats without one. Default: the event's `event.timezone`, else UTC.
    pub time_zone: Option<Tz>,
    /// Default `["_dateparsefailure"]`.
    pub tag_on_failure: Vec<String>,
}

impl DateFilter {
    pub fn new(source: FieldRef, formats: Vec<DateFormat>) -> Self {
        Self {
            source,
            formats,
            target: FieldRef::parse(TIMESTAMP).expect("static"),
            time_zone: None,
            tag_on_failure: vec![DATE_PARSE_FAILURE.into()],
        }
    }
}

impl Filter for DateFilter {
    /// It writes its target (and, for `@timestamp`, `event.created`) and tags.
    fn may_change_event_id(&self) -> bool {
        self.target.covers_event_id()
    }

    fn apply(&self, event: &mut Event) {
        let zone = Zone::for_event(event, self.time_zone);
        let time = event.get(&self.source).and_then(|v| self.formats.iter().find_map(|f| f.read(v, zone)));
        match time {
            Some(t) if self.target.parts() == [TIMESTAMP] => event.set_timestamp(t),
            Some(t) => event.insert(&self.target, Value::String(format_timestamp(t))),
            None => self.tag_on_failure.iter().for_each(|t| event.add_tag(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(formats: &[&str], tz: Tz, value: Value) -> Event {
        let mut filter = DateFilter::new(
            FieldRef::parse("t").unwrap(),
            formats.iter().map(|f| DateFormat::parse(f).unwrap()).collect(),
        );
        filter.time_zone = Some(tz);
        let mut e =
            Event::from_map(json!({"@timestamp": "2026-11-23T10:00:00.000Z", "t": value}).as_object().unwrap().clone());
        filter.apply(&mut e);
        e
    }

    fn ts(e: &Event) -> &Value {
        e.get_path(&["@timestamp"]).expect("every event has one")
    }

    #[test]
    fn formats() {
        let e = run(&["%d/%b/%Y:%H:%M:%S %z"], Tz::UTC, json!("21/Nov/2026:08:15:30 +0200"));
        assert_eq!(ts(&e), &json!("2026-11-21T06:15:30.000Z"));
        assert_eq!(e.as_map()["event"]["created"], json!("2026-11-23T10:00:00.000Z"));
        let e = run(&["%Y/%m/%d %H:%M:%S"], Tz::America__New_York, json!("2026/11/21 08:15:30"));
        assert_eq!(ts(&e), &json!("2026-11-21T13:15:30.000Z"));
        assert_eq!(
            ts(&run(&["ISO8601"], Tz::UTC, json!("2026-11-21T08:15:30.5+01:00"))),
            &json!("2026-11-21T07:15:30.500Z")
        );
        assert_eq!(
            ts(&run(&["ISO8601"], Tz::UTC, json!("2026-11-21 08:15:30,250"))),
            &json!("2026-11-21T08:15:30.250Z")
        );
        assert_eq!(ts(&run(&["UNIX"], Tz::UTC, json!(1795250130.25))), &json!("2026-11-21T08:35:30.250Z"));
        assert_eq!(ts(&run(&["UNIX"], Tz::UTC, json!("1795250130"))), &json!("2026-11-21T08:35:30.000Z"));
        assert_eq!(ts(&run(&["UNIX_MS"], Tz::UTC, json!(1795250130123_u64))), &json!("2026-11-21T08:35:30.123Z"));
        assert_eq!(
            ts(&run(&["UNIX", "ISO8601"], Tz::UTC, json!("2026-11-21T08:15:30Z"))),
            &json!("2026-11-21T08:15:30.000Z")
        );
    }

    #[test]
    fn failures_are_tagged_and_keep_the_read_time() {
        for (fmt, v) in [
            ("UNIX", json!("soon")),
            ("ISO8601", json!(12)),
            ("%Y", json!("x")),
            ("UNIX_MS", json!(1e300)),
            ("UNIX", json!(null)),
        ] {
            let e = run(&[fmt], Tz::UTC, v);
            assert!(e.has_tag(DATE_PARSE_FAILURE), "{fmt}");
            assert_eq!(ts(&e), &json!("2026-11-23T10:00:00.000Z"));
            assert!(e.as_map().get("event").is_none());
        }
        assert!(DateFormat::parse("%Q").is_err());
        assert!(DateFormat::parse("").is_err());
    }

    #[test]
    fn other_target() {
        let mut f = DateFilter::new(FieldRef::parse("t").unwrap(), vec![DateFormat::Iso8601]);
        f.target = FieldRef::parse("[event][start]").unwrap();
        let mut e = Event::from_map(json!({"t": "2026-11-21T08:15:30Z"}).as_object().unwrap().clone());
        f.apply(&mut e);
        assert_eq!(e.as_map()["event"]["start"], json!("2026-11-21T08:15:30.000Z"));
    }
}
