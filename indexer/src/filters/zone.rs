//! The zone of a local time that carries none (nginx error lines, `date` formats without an offset):
//! the filter's configured zone when it has one (as Logstash's `date { timezone }`: a zone written in the
//! config is meant), else the event's own `event.timezone` (the agent records the host's zone there, as
//! Filebeat's `add_locale` does: `"+08:00"`; an IANA name such as `"Asia/Shanghai"` works too), else UTC.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::event::Event;

/// `event.timezone`.
pub const EVENT_TIMEZONE: [&str; 2] = ["event", "timezone"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl Zone {
    /// `+08:00`, `-0500`, `+8`, `Z`, `UTC` or an IANA name.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s == "Z" {
            return Some(Self::Named(Tz::UTC));
        }
        if let Some(rest) = s.strip_prefix('+').map(|r| (1, r)).or_else(|| s.strip_prefix('-').map(|r| (-1, r))) {
            let (sign, digits) = rest;
            let digits: String = digits.chars().filter(|c| *c != ':').collect();
            let (h, m) = match digits.len() {
                1 | 2 => (digits.parse::<i32>().ok()?, 0),
                4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
                _ => return None,
            };
            if h > 18 || m > 59 {
                return None;
            }
            return FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(Self::Fixed);
        }
        s.parse::<Tz>().ok().map(Self::Named)
    }

    /// The zone for `event`: `configured` if set, else its `event.timezone` if that parses, else UTC.
    pub fn for_event(event: &Event, configured: Option<Tz>) -> Self {
        if let Some(tz) = configured {
            return Self::Named(tz);
        }
        event.get_path(&EVENT_TIMEZONE).and_then(|v| v.as_str()).and_then(Self::parse).unwrap_or(Self::Named(Tz::UTC))
    }

    /// The instant of a local time here. A time in a DST gap does not exist (`None`); one in the repeated
    /// hour takes the earlier instant.
    pub fn to_utc(self, local: &NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            Self::Fixed(offset) => offset.from_local_datetime(local).single().map(|t| t.with_timezone(&Utc)),
            Self::Named(tz) => tz.from_local_datetime(local).earliest().map(|t| t.with_timezone(&Utc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offsets_names_and_the_event_field() {
        let local = NaiveDateTime::parse_from_str("2026-11-21 00:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let utc = |z: &str| Zone::parse(z).unwrap().to_utc(&local).unwrap().to_rfc3339();
        assert_eq!(utc("+08:00"), "2026-11-20T16:30:00+00:00");
        assert_eq!(utc("-0500"), "2026-11-21T05:30:00+00:00");
        assert_eq!(utc("+5"), "2026-11-20T19:30:00+00:00");
        assert_eq!(utc("Z"), "2026-11-21T00:30:00+00:00");
        assert_eq!(utc("Asia/Shanghai"), "2026-11-20T16:30:00+00:00");
        for bad in ["", "+25:00", "+08:61", "Mars/Base", "+123"] {
            assert_eq!(Zone::parse(bad), None, "{bad}");
        }
        let e = Event::from_map(json!({"event": {"timezone": "-05:00"}}).as_object().unwrap().clone());
        assert_eq!(Zone::for_event(&e, None), Zone::parse("-05:00").unwrap());
        // A zone written in the config wins over the host's, as in Logstash.
        assert_eq!(Zone::for_event(&e, Some(Tz::UTC)), Zone::Named(Tz::UTC));
        let e = Event::from_map(json!({"event": {"timezone": "nonsense"}}).as_object().unwrap().clone());
        assert_eq!(Zone::for_event(&e, None), Zone::Named(Tz::UTC));
    }
}
