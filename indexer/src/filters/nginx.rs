//! Built-in nginx parsers writing Elastic Common Schema fields, hand-written for speed (one pass over the
//! line, no regex, fields borrowed until the line is known to match, so a failed line is left untouched).
//!
//! - [`NginxAccess`]: the `combined` log format, and `main` (combined + `"$http_x_forwarded_for"`);
//!   trailing fields of custom formats are ignored. `$time_local` becomes `@timestamp`.
//! - [`NginxError`]: `2026/11/21 08:15:30 [error] 1234#5678: *9 message`. Error log times carry no zone, so
//!   the filter takes one (UTC by default).
//!
//! References: nginx `ngx_http_log_module` (`log_format combined`), ECS field reference, Filebeat's nginx
//! module (`nginx.access.remote_ip_list`, `nginx.error.connection_id`).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::{Filter, DATE_PARSE_FAILURE, GROK_PARSE_FAILURE};
use crate::event::{Event, FieldRef};

/// Parses nginx access lines from `source` (default `message`).
#[derive(Debug, Clone)]
pub struct NginxAccess {
    pub source: FieldRef,
}

impl Default for NginxAccess {
    fn default() -> Self {
        Self { source: FieldRef::parse("message").expect("static") }
    }
}

/// Parses nginx error lines from `source` (default `message`), times read in `time_zone`.
#[derive(Debug, Clone)]
pub struct NginxError {
    pub source: FieldRef,
    pub time_zone: Tz,
}

impl Default for NginxError {
    fn default() -> Self {
        Self { source: FieldRef::parse("message").expect("static"), time_zone: Tz::UTC }
    }
}

struct Access<'a> {
    remote_addr: &'a str,
    remote_user: &'a str,
    time: &'a str,
    request: &'a str,
    status: u64,
    bytes: u64,
    referrer: &'a str,
    user_agent: &'a str,
    forwarded_for: Option<&'a str>,
}

/// A cursor over the line: each step consumes an expected literal or a field up to a delimiter.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn lit(&mut self, s: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(s)?;
        Some(())
    }
    fn until(&mut self, delim: char) -> Option<&'a str> {
        let (field, rest) = self.0.split_once(delim)?;
        self.0 = rest;
        Some(field)
    }
    fn number(&mut self) -> Option<u64> {
        let end = self.0.find(|c: char| !c.is_ascii_digit()).unwrap_or(self.0.len());
        let n = self.0[..end].parse().ok()?;
        self.0 = &self.0[end..];
        Some(n)
    }
}

fn parse_access(line: &str) -> Option<Access<'_>> {
    let mut c = Cursor(line);
    let remote_addr = c.until(' ')?;
    c.lit("- ")?;
    let remote_user = c.until(' ')?;
    c.lit("[")?;
    let time = c.until(']')?;
    c.lit(" \"")?;
    // nginx escapes `"` inside variables as `\x22`, so the next quote ends the field.
    let request = c.until('"')?;
    c.lit(" ")?;
    let status = c.number()?;
    c.lit(" ")?;
    let bytes = c.number()?;
    c.lit(" \"")?;
    let referrer = c.until('"')?;
    c.lit(" \"")?;
    let user_agent = c.until('"')?;
    let forwarded_for = match c.lit(" \"") {
        Some(()) => Some(c.until('"')?),
        None => None,
    };
    Some(Access { remote_addr, remote_user, time, request, status, bytes, referrer, user_agent, forwarded_for })
}

fn two(b: &[u8], at: usize) -> Option<u32> {
    let (h, l) = (*b.get(at)?, *b.get(at + 1)?);
    (h.is_ascii_digit() && l.is_ascii_digit()).then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
}

fn four(b: &[u8], at: usize) -> Option<i32> {
    Some((two(b, at)? * 100 + two(b, at + 2)?) as i32)
}

fn month(name: &[u8]) -> Option<u32> {
    const NAMES: [&[u8]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    NAMES.iter().position(|n| *n == name).map(|i| i as u32 + 1)
}

/// `$time_local`: `21/Nov/2026:08:15:30 +0100` (strftime `%d/%b/%Y:%H:%M:%S %z`).
pub fn parse_time_local(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' || b[17] != b':' || b[20] != b' '
    {
        return None;
    }
    let naive = NaiveDate::from_ymd_opt(four(b, 7)?, month(&b[3..6])?, two(b, 0)?)?.and_hms_opt(
        two(b, 12)?,
        two(b, 15)?,
        two(b, 18)?,
    )?;
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (two(b, 22)?, two(b, 24)?);
    let offset = FixedOffset::east_opt(sign * (oh * 3600 + om * 60) as i32)?;
    Some(offset.from_local_datetime(&naive).single()?.with_timezone(&Utc))
}

/// Error log time: `2026/11/21 08:15:30`, local time without a zone.
fn parse_error_time(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    NaiveDate::from_ymd_opt(four(b, 0)?, two(b, 5)?, two(b, 8)?)?.and_hms_opt(two(b, 11)?, two(b, 14)?, two(b, 17)?)
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

impl Filter for NginxAccess {
    fn apply(&self, event: &mut Event) {
        let Some(line) = event.get_str(&self.source) else {
            event.add_tag(GROK_PARSE_FAILURE);
            return;
        };
        let Some(a) = parse_access(line) else {
            event.add_tag(GROK_PARSE_FAILURE);
            return;
        };
        // Copy out of the borrowed line before writing into the event.
        let time = parse_time_local(a.time);
        let mut fields: Vec<(&[&str], Value)> = Vec::with_capacity(11);
        fields.push((&["source", "ip"], string(a.remote_addr)));
        if a.remote_user != "-" {
            fields.push((&["user", "name"], string(a.remote_user)));
        }
        // `METHOD URI HTTP/x.y`; nginx logs junk request lines (TLS on a plain port, scanners) as they came,
        // and those just keep no method/url.
        let mut words = a.request.splitn(2, ' ');
        if let (Some(method), Some(rest)) = (words.next(), words.next()) {
            if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) {
                fields.push((&["http", "request", "method"], string(method)));
                let url = match rest.rsplit_once(' ') {
                    Some((url, version)) if version.starts_with("HTTP/") => {
                        fields.push((&["http", "version"], string(&version[5..])));
                        url
                    }
                    _ => rest,
                };
                fields.push((&["url", "original"], string(url)));
            }
        }
        fields.push((&["http", "response", "status_code"], Value::from(a.status)));
        fields.push((&["http", "response", "body", "bytes"], Value::from(a.bytes)));
        if a.referrer != "-" {
            fields.push((&["http", "request", "referrer"], string(a.referrer)));
        }
        if a.user_agent != "-" {
            fields.push((&["user_agent", "original"], string(a.user_agent)));
        }
        if let Some(xff) = a.forwarded_for.filter(|x| *x != "-") {
            let list = xff.split(',').map(|ip| string(ip.trim())).collect();
            fields.push((&["nginx", "access", "remote_ip_list"], Value::Array(list)));
        }
        for (path, value) in fields {
            event.insert_path(path, value);
        }
        match time {
            Some(t) => event.set_timestamp(t),
            None => event.add_tag(DATE_PARSE_FAILURE),
        }
    }
}

impl Filter for NginxError {
    fn apply(&self, event: &mut Event) {
        let parsed = event.get_str(&self.source).and_then(|line| {
            let mut c = Cursor(line);
            let time = c.0.get(..19)?;
            c.0 = &c.0[19..];
            c.lit(" [")?;
            let level = c.until(']')?;
            c.lit(" ")?;
            let pid: u64 = c.until('#')?.parse().ok()?;
            let tid = c.number()?;
            c.lit(": ")?;
            let connection = match c.lit("*") {
                Some(()) => {
                    let n = c.number()?;
                    c.lit(" ")?;
                    Some(n)
                }
                None => None,
            };
            Some((time.to_string(), string(level), pid, tid, connection, string(c.0)))
        });
        let Some((time, level, pid, tid, connection, message)) = parsed else {
            event.add_tag(GROK_PARSE_FAILURE);
            return;
        };
        event.insert_path(&["log", "level"], level);
        event.insert_path(&["process", "pid"], Value::from(pid));
        event.insert_path(&["process", "thread", "id"], Value::from(tid));
        if let Some(n) = connection {
            event.insert_path(&["nginx", "error", "connection_id"], Value::from(n));
        }
        event.insert(&self.source, message);
        // A local time in a DST gap does not exist; one in the repeated hour takes the earlier instant.
        match parse_error_time(&time).and_then(|t| self.time_zone.from_local_datetime(&t).earliest()) {
            Some(t) => event.set_timestamp(t.with_timezone(&Utc)),
            None => event.add_tag(DATE_PARSE_FAILURE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Condition;
    use crate::route::{Route, RouteTable, Routed, Unmatched};
    use crate::template::Template;
    use serde_json::json;

    fn envelope(tag: &str, line: &str) -> Event {
        let v = json!({"@timestamp": "2026-11-23T10:00:00.000Z", "message": line, "tags": [tag]});
        Event::from_map(v.as_object().unwrap().clone())
    }

    const COMBINED: &str = r#"203.0.113.9 - alice [21/Nov/2026:08:15:30 +0100] "GET /shop/cart?id=7 HTTP/1.1" 200 5316 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)""#;

    #[test]
    fn combined_line_to_ecs() {
        let mut e = envelope("access", COMBINED);
        NginxAccess::default().apply(&mut e);
        let m = e.as_map();
        assert_eq!(m["source"], json!({"ip": "203.0.113.9"}));
        assert_eq!(m["user"], json!({"name": "alice"}));
        assert_eq!(
            m["http"],
            json!({"request": {"method": "GET", "referrer": "https://example.com/"}, "version": "1.1",
                   "response": {"status_code": 200, "body": {"bytes": 5316}}})
        );
        assert_eq!(m["url"], json!({"original": "/shop/cart?id=7"}));
        assert_eq!(m["user_agent"], json!({"original": "Mozilla/5.0 (X11; Linux x86_64)"}));
        assert_eq!(m["@timestamp"], json!("2026-11-21T07:15:30.000Z"));
        assert_eq!(m["event"], json!({"created": "2026-11-23T10:00:00.000Z"}));
        assert_eq!(m["message"], json!(COMBINED));
        assert_eq!(e.tags().collect::<Vec<_>>(), ["access"]);
    }

    #[test]
    fn main_format_with_forwarded_for_and_dashes() {
        let line =
            r#"10.0.0.1 - - [22/Nov/2026:00:00:01 +0000] "POST /api HTTP/2.0" 502 0 "-" "-" "198.51.100.7, 10.0.0.2""#;
        let mut e = envelope("access", line);
        NginxAccess::default().apply(&mut e);
        let m = e.as_map();
        assert_eq!(m["nginx"]["access"]["remote_ip_list"], json!(["198.51.100.7", "10.0.0.2"]));
        assert_eq!(m["http"]["version"], json!("2.0"));
        assert!(m.get("user").is_none() && m.get("user_agent").is_none());
        assert!(m["http"]["request"].get("referrer").is_none());
        assert_eq!(m["http"]["response"]["status_code"], json!(502));
        // A junk request line keeps no method/url but the line still parses.
        let line = r#"10.0.0.1 - - [22/Nov/2026:00:00:01 +0000] "\x16\x03\x01" 400 157 "-" "-" "-""#;
        let mut e = envelope("access", line);
        NginxAccess::default().apply(&mut e);
        assert!(!e.has_tag(GROK_PARSE_FAILURE));
        assert!(e.as_map()["http"].get("request").is_none());
        assert!(e.as_map().get("nginx").is_none());
    }

    #[test]
    fn failures_are_tagged_and_kept() {
        for line in ["", "garbage", r#"1.2.3.4 - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" abc 1 "-" "-""#] {
            let mut e = envelope("access", line);
            NginxAccess::default().apply(&mut e);
            assert!(e.has_tag(GROK_PARSE_FAILURE), "{line}");
            assert_eq!(e.as_map()["message"], json!(line));
            assert!(e.as_map().get("source").is_none());
            assert_eq!(e.as_map()["@timestamp"], json!("2026-11-23T10:00:00.000Z"));
        }
        let line = r#"1.2.3.4 - - [31/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#;
        let mut e = envelope("access", line);
        NginxAccess::default().apply(&mut e);
        assert!(e.has_tag(DATE_PARSE_FAILURE) && !e.has_tag(GROK_PARSE_FAILURE));
        assert_eq!(e.as_map()["source"]["ip"], json!("1.2.3.4"));
        assert_eq!(e.as_map()["@timestamp"], json!("2026-11-23T10:00:00.000Z"));
        let mut e = Event::new();
        NginxAccess::default().apply(&mut e);
        assert!(e.has_tag(GROK_PARSE_FAILURE));
    }

    #[test]
    fn time_local_parsing() {
        let t = |s| parse_time_local(s).map(crate::event::format_timestamp);
        assert_eq!(t("21/Nov/2026:08:15:30 +0000").as_deref(), Some("2026-11-21T08:15:30.000Z"));
        assert_eq!(t("01/Jan/2027:00:30:00 +0530").as_deref(), Some("2026-12-31T19:00:00.000Z"));
        assert_eq!(t("21/Nov/2026:20:00:00 -0800").as_deref(), Some("2026-11-22T04:00:00.000Z"));
        for bad in [
            "21/Foo/2026:08:15:30 +0000",
            "21/Nov/2026:25:15:30 +0000",
            "21/Nov/2026:08:15:30 0000",
            "21/Nov/2026",
            "2é/Nov/2026:08:15:30 +0000",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn error_line_to_ecs() {
        let line = "2026/11/21 08:15:30 [error] 1234#5678: *9 open() \"/srv/x\" failed (2: No such file or directory), client: 1.2.3.4";
        let mut e = envelope("error", line);
        NginxError::default().apply(&mut e);
        let m = e.as_map();
        assert_eq!(m["log"], json!({"level": "error"}));
        assert_eq!(m["process"], json!({"pid": 1234, "thread": {"id": 5678}}));
        assert_eq!(m["nginx"]["error"]["connection_id"], json!(9));
        assert_eq!(m["message"], json!("open() \"/srv/x\" failed (2: No such file or directory), client: 1.2.3.4"));
        assert_eq!(m["@timestamp"], json!("2026-11-21T08:15:30.000Z"));
        assert_eq!(m["event"]["created"], json!("2026-11-23T10:00:00.000Z"));

        let mut e = envelope("error", "2026/07/01 23:30:00 [emerg] 1#1: bind() failed\n  second line");
        NginxError { time_zone: Tz::Europe__Berlin, ..NginxError::default() }.apply(&mut e);
        assert_eq!(e.as_map()["message"], json!("bind() failed\n  second line"));
        assert_eq!(e.as_map()["@timestamp"], json!("2026-07-01T21:30:00.000Z"));
        assert!(e.as_map().get("nginx").is_none());

        let mut e = envelope("error", "2026/03/29 02:30:00 [warn] 1#1: in the DST gap");
        NginxError { time_zone: Tz::Europe__Berlin, ..NginxError::default() }.apply(&mut e);
        assert!(e.has_tag(DATE_PARSE_FAILURE));
        let mut e = envelope("error", "not an error line");
        NginxError::default().apply(&mut e);
        assert!(e.has_tag(GROK_PARSE_FAILURE));
        assert_eq!(e.as_map()["message"], json!("not an error line"));
    }

    #[test]
    fn two_days_land_in_their_own_daily_indices() {
        let lines = [
            (
                "access",
                r#"1.1.1.1 - - [20/Nov/2026:23:59:59 +0000] "GET /a HTTP/1.1" 200 1 "-" "-""#,
                "nginx_access-2026.11.20",
            ),
            (
                "access",
                r#"1.1.1.1 - - [21/Nov/2026:00:00:00 +0000] "GET /b HTTP/1.1" 200 1 "-" "-""#,
                "nginx_access-2026.11.21",
            ),
            (
                "access",
                r#"1.1.1.1 - - [21/Nov/2026:00:30:00 +0100] "GET /c HTTP/1.1" 200 1 "-" "-" "-""#,
                "nginx_access-2026.11.20",
            ),
            ("error", "2026/11/20 12:00:00 [error] 7#7: *1 upstream timed out", "nginx_error-2026.11.20"),
            ("error", "2026/11/21 00:00:01 [crit] 7#7: disk full", "nginx_error-2026.11.21"),
            ("error", "junk", "nginx_error-2026.11.23"),
        ];
        let routes = ["access", "error"].map(|t| Route {
            when: Some(Condition::Tag(t.into())),
            index: Template::parse(&format!("nginx_{t}-%{{+YYYY.MM.dd}}")).unwrap(),
            time_zone: Tz::UTC,
        });
        let table = RouteTable::new(routes.to_vec(), Unmatched::Drop);
        let mut index = String::new();
        for (tag, line, want) in lines {
            let mut e = envelope(tag, line);
            if tag == "access" {
                NginxAccess::default().apply(&mut e);
            } else {
                NginxError::default().apply(&mut e);
            }
            assert!(matches!(table.route(&e, &mut index), Routed::Route(_)));
            assert_eq!(index, want, "{line}");
        }
    }
}
