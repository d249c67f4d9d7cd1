//! Built-in nginx parsers writing Elastic Common Schema fields, hand-written for speed (one pass over the
//! line, no regex, fields borrowed until the line is known to match, so a failed line is left untouched).
//!
//! - [`NginxAccess`]: the `combined` log format, and `main` (combined + `"$http_x_forwarded_for"`);
//!   trailing fields of custom formats are ignored. `$time_local` becomes `@timestamp`. The fields are
//!   those of Filebeat's nginx module (`filebeat/module/nginx/access/ingest/pipeline.yml`): the client is
//!   the first public address of `X-Forwarded-For` then `$remote_addr` (`source.address`, `source.ip`),
//!   `url.path`/`url.query`, `event.*`, `related.*`; then, when their databases are loaded, the user agent
//!   (`user_agent.*`) and GeoIP/ASN (`source.geo.*`, `source.as.*`).
//! - [`NginxError`]: `2026/11/21 08:15:30 [error] 1234#5678: *9 message`. Error log times carry no zone, so
//!   the filter reads them in the event's `event.timezone` if it has one, else in its own (UTC by default).
//!
//! References: nginx `ngx_http_log_module` (`log_format combined`), ECS field reference, Filebeat's nginx
//! module (`nginx.access.remote_ip_list`, `nginx.error.connection_id`).

pub(crate) mod objects;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use smallvec::SmallVec;

use super::new_fields::{Leaf, NewFields};
use super::zone::Zone;
use super::{Filter, GeoIp, UserAgent, DATE_PARSE_FAILURE, GROK_PARSE_FAILURE};
use crate::enrich::geoip::is_private;
use crate::event::{Event, FieldRef, SharedObject};

/// Parses nginx access lines from `source` (default `message`), then enriches the event with `user_agent`
/// and `geoip` when they are set (and their databases loaded).
#[derive(Debug, Clone)]
pub struct NginxAccess {
    pub source: FieldRef,
    pub user_agent: Option<UserAgent>,
    pub geoip: Option<GeoIp>,
}

impl Default for NginxAccess {
    fn default() -> Self {
        Self { source: FieldRef::parse("message").expect("static"), user_agent: None, geoip: None }
    }
}

/// Parses nginx error lines from `source` (default `message`), times read in `time_zone` if set, else in
/// the event's `event.timezone`, else UTC.
#[derive(Debug, Clone)]
pub struct NginxError {
    pub source: FieldRef,
    pub time_zone: Option<Tz>,
}

impl Default for NginxError {
    fn default() -> Self {
        Self { source: FieldRef::parse("message").expect("static"), time_zone: None }
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
    /// Up to the ASCII `delim` (found with `memchr`: `split_once` on a `char` searches through a
    /// general pattern, a tenth of the parse).
    fn until(&mut self, delim: u8) -> Option<&'a str> {
        let at = memchr::memchr(delim, self.0.as_bytes())?;
        let field = &self.0[..at];
        self.0 = &self.0[at + 1..];
        Some(field)
    }
    /// [`Cursor::until`] in a line `written` as it is; in one written in JSON, a field with an escape is
    /// refused.
    fn field(&mut self, delim: u8, written: Written) -> Option<&'a str> {
        match written {
            Written::Plain => self.until(delim),
            Written::InJson => {
                let at = memchr::memchr2(delim, b'\\', self.0.as_bytes())?;
                (self.0.as_bytes()[at] == delim).then(|| self.take(at, 1))
            }
        }
    }
    /// The opening quote of a quoted field.
    fn open_quote(&mut self, written: Written) -> Option<()> {
        self.lit(match written {
            Written::Plain => "\"",
            Written::InJson => "\\\"",
        })
    }
    /// Up to the closing quote (nginx escapes `"` inside variables as `\x22`, so the next quote ends the
    /// field); in JSON, a field with an escape of its own is refused.
    fn quoted(&mut self, written: Written) -> Option<&'a str> {
        match written {
            Written::Plain => self.until(b'"'),
            Written::InJson => {
                let at = memchr::memchr(b'\\', self.0.as_bytes())?;
                (self.0.as_bytes().get(at + 1) == Some(&b'"')).then(|| self.take(at, 2))
            }
        }
    }
    /// The first `len` bytes, then `skip` more skipped.
    fn take(&mut self, len: usize, skip: usize) -> &'a str {
        let field = &self.0[..len];
        self.0 = &self.0[len + skip..];
        field
    }
    /// The digits here as a number; `None` for none, or more than a `u64` holds (as `str::parse`,
    /// which took twice as long for the three to five digits of a status or a size).
    fn number(&mut self) -> Option<u64> {
        let end = self.0.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(self.0.len());
        let digits = &self.0.as_bytes()[..end];
        let n = digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')));
        self.0 = &self.0[end..];
        n.filter(|_| end > 0)
    }
}

/// How an access line's text is written.
#[derive(Debug, Clone, Copy)]
enum Written {
    /// As it is.
    Plain,
    /// As the contents of a JSON string, its quotes `\"`, read only while no field has an escape: a
    /// field without one is the same text escaped or not, and the quotes around the fields are where the
    /// line has them.
    InJson,
}

/// The line's fields.
fn parse_access(line: &str, written: Written) -> Option<Access<'_>> {
    let mut c = Cursor(line);
    let remote_addr = c.field(b' ', written)?;
    c.lit("- ")?;
    let remote_user = c.field(b' ', written)?;
    c.lit("[")?;
    let time = c.field(b']', written)?;
    c.lit(" ")?;
    c.open_quote(written)?;
    let request = c.quoted(written)?;
    c.lit(" ")?;
    let status = c.number()?;
    c.lit(" ")?;
    let bytes = c.number()?;
    c.lit(" ")?;
    c.open_quote(written)?;
    let referrer = c.quoted(written)?;
    c.lit(" ")?;
    c.open_quote(written)?;
    let user_agent = c.quoted(written)?;
    let forwarded_for = match c.lit(" ").and_then(|()| c.open_quote(written)) {
        Some(()) => Some(c.quoted(written)?),
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
    /// It writes fixed ECS fields (none under `event.id`), tags, and what its user agent and GeoIP steps
    /// write.
    fn may_change_event_id(&self) -> bool {
        self.user_agent.as_ref().is_some_and(|f| f.may_change_event_id())
            || self.geoip.as_ref().is_some_and(|f| f.may_change_event_id())
    }

    fn apply(&self, event: &mut Event) {
        // A copy, as the fields borrow from it while they are written into the event.
        let Some(line) = event.get_str_path(self.source.parts()).map(Cow::into_owned) else {
            event.add_tag(GROK_PARSE_FAILURE);
            return;
        };
        let Some(parsed) = ParsedAccess::of(&line) else {
            event.add_tag(GROK_PARSE_FAILURE);
            return;
        };
        // The enrichments' cached objects go in by reference when the event had no such object before.
        let source_shared = match parsed.client_ip {
            Some(ip) if !event.contains_key("source") => {
                self.shared_source(parsed.client, ip).map(|s| event.insert_shared(s)).is_some()
            }
            _ => false,
        };
        let user_agent_shared = match parsed.user_agent() {
            Some(original) if !event.contains_key("user_agent") => {
                self.shared_user_agent(original).map(|s| event.insert_shared(s)).is_some()
            }
            _ => false,
        };
        // The agent's read time, when it moves to `event.created`, goes in with the other `event` fields.
        let created = match parse_time_local(parsed.time_local()) {
            Some(t) => event.replace_timestamp(t),
            None => {
                event.add_tag(DATE_PARSE_FAILURE);
                None
            }
        };
        parsed.fields(created.as_deref(), source_shared, user_agent_shared).insert_into(event);
        if let Some(f) = self.user_agent.as_ref().filter(|_| !user_agent_shared) {
            f.apply(event);
        }
        if let Some(f) = self.geoip.as_ref().filter(|_| !source_shared) {
            f.apply(event);
        }
    }
}

/// An access line parsed, with what the filter derives from it before writing anything: shared by the
/// filter and by [`crate::direct::DirectNginx`], which writes the same fields straight into the bulk body.
pub(crate) struct ParsedAccess<'a> {
    access: Access<'a>,
    /// `X-Forwarded-For`'s entries, when it has any.
    forwarded: Vec<&'a str>,
    /// The addresses among the candidates, in order, each once, with their text. Mostly just the client,
    /// so kept in place rather than allocated for each line.
    related: SmallVec<[(&'a str, IpAddr); 2]>,
    /// The client: the first public address of `X-Forwarded-For`, then `$remote_addr` (Filebeat's rule).
    pub client: &'a str,
    pub client_ip: Option<IpAddr>,
    method: Option<&'a str>,
    version: Option<&'a str>,
    url: Option<&'a str>,
    /// Whether it was read in the line's JSON string ([`ParsedAccess::in_json_string`]).
    in_json: bool,
}

impl<'a> ParsedAccess<'a> {
    /// `None` when `line` is not an access line.
    pub fn of(line: &'a str) -> Option<Self> {
        Self::from(parse_access(line, Written::Plain)?, false)
    }

    /// [`ParsedAccess::of`] the line whose JSON string is `text` (valid JSON, quotes included), read in
    /// place (see [`Written::InJson`]). `None` when a field has an escape or it is not an access line;
    /// the caller then unescapes it and calls `of`.
    ///
    /// Why: unescaping the agent's `message` into a new string, only to parse it, was 1,100 instructions
    /// per nginx event, half the parse.
    pub fn in_json_string(text: &'a str) -> Option<Self> {
        let inner = text.strip_prefix('"')?.strip_suffix('"')?;
        Self::from(parse_access(inner, Written::InJson)?, true)
    }

    fn from(a: Access<'a>, in_json: bool) -> Option<Self> {
        let forwarded: Vec<&str> =
            a.forwarded_for.filter(|x| *x != "-").map(|x| x.split(',').map(str::trim).collect()).unwrap_or_default();
        // Each candidate parsed once.
        let mut related: SmallVec<[(&str, IpAddr); 2]> = SmallVec::new();
        for c in forwarded.iter().copied().chain(std::iter::once(a.remote_addr)) {
            if let Ok(ip) = c.parse::<IpAddr>() {
                if !related.iter().any(|(r, _)| *r == c) {
                    related.push((c, ip));
                }
            }
        }
        let (client, client_ip) = match related.iter().find(|(_, ip)| !is_private(*ip)) {
            Some(&(c, ip)) => (c, Some(ip)),
            None => (a.remote_addr, related.iter().find(|(r, _)| *r == a.remote_addr).map(|(_, ip)| *ip)),
        };
        // `METHOD URI HTTP/x.y`; nginx logs junk request lines (TLS on a plain port, scanners) as they came,
        // and those just keep no method/url.
        let (mut method, mut version, mut url) = (None, None, None);
        // Split at spaces found with `memchr`: `str::split_once` searches for a `char` through a general
        // pattern, slower on these short strings.
        let split_at = |s: &'a str, at: Option<usize>| at.map(|i| (&s[..i], &s[i + 1..]));
        if let Some((m, rest)) = split_at(a.request, memchr::memchr(b' ', a.request.as_bytes())) {
            if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) {
                method = Some(m);
                url = Some(match split_at(rest, memchr::memrchr(b' ', rest.as_bytes())) {
                    Some((u, v)) if v.starts_with("HTTP/") => {
                        version = Some(&v[5..]);
                        u
                    }
                    _ => rest,
                });
            }
        }
        Some(Self { access: a, forwarded, related, client, client_ip, method, version, url, in_json })
    }

    /// `$time_local`, as the line has it (see [`parse_time_local`]).
    pub fn time_local(&self) -> &'a str {
        self.access.time
    }

    /// `$http_user_agent`, unless nginx logged none (`-`).
    pub fn user_agent(&self) -> Option<&'a str> {
        Some(self.access.user_agent).filter(|ua| *ua != "-")
    }

    /// The ECS fields, in path order. `created` is the JSON of `event.created` when the filter sets it
    /// (the agent's read time); `source` and `user_agent` are left out where an enrichment's shared
    /// object stands for them.
    pub fn fields<'f>(
        &'f self,
        created: Option<&'f str>,
        source_shared: bool,
        user_agent_shared: bool,
    ) -> NewFields<'f> {
        let a = &self.access;
        let mut fields = NewFields::with_capacity(24);
        fields.push(&["event", "category"], Leaf::Json(r#"["web"]"#));
        if let Some(old) = created {
            fields.push(&["event", "created"], Leaf::Json(old));
        }
        fields.push(&["event", "dataset"], Leaf::Json(r#""nginx.access""#));
        fields.push(&["event", "kind"], Leaf::Json(r#""event""#));
        fields.push(&["event", "module"], Leaf::Json(r#""nginx""#));
        let outcome = if a.status >= 400 { r#""failure""# } else { r#""success""# };
        fields.push(&["event", "outcome"], Leaf::Json(outcome));
        fields.push(&["event", "type"], Leaf::Json(r#"["access"]"#));
        if let Some(m) = self.method {
            fields.push(&["http", "request", "method"], Leaf::Str(m));
        }
        if a.referrer != "-" {
            fields.push(&["http", "request", "referrer"], Leaf::Str(a.referrer));
        }
        fields.push(&["http", "response", "body", "bytes"], Leaf::U64(a.bytes));
        fields.push(&["http", "response", "status_code"], Leaf::U64(a.status));
        if let Some(v) = self.version {
            fields.push(&["http", "version"], Leaf::Str(v));
        }
        if !self.forwarded.is_empty() {
            fields.push(&["nginx", "access", "remote_ip_list"], Leaf::Strs(self.forwarded.clone()));
        }
        if !self.related.is_empty() {
            fields.push(&["related", "ip"], Leaf::Strs(self.related.iter().map(|(c, _)| *c).collect()));
        }
        if a.remote_user != "-" {
            fields.push(&["related", "user"], Leaf::Strs(vec![a.remote_user]));
        }
        if !source_shared {
            fields.push(&["source", "address"], Leaf::Str(self.client));
            if self.client_ip.is_some() {
                fields.push(&["source", "ip"], Leaf::Str(self.client));
            }
        }
        if let Some(u) = self.url {
            fields.push(&["url", "original"], Leaf::Str(u));
            let (path, query) = u.split_once('?').map_or((u, None), |(p, q)| (p, Some(q)));
            fields.push(&["url", "path"], Leaf::Str(path));
            if let Some(q) = query.filter(|q| !q.is_empty()) {
                fields.push(&["url", "query"], Leaf::Str(q));
            }
        }
        if a.remote_user != "-" {
            fields.push(&["user", "name"], Leaf::Str(a.remote_user));
        }
        if let Some(ua) = self.user_agent().filter(|_| !user_agent_shared) {
            fields.push(&["user_agent", "original"], Leaf::Str(ua));
        }
        fields
    }
}

impl NginxAccess {
    /// What the `user_agent` step puts in an event without a `user_agent` object: the cached answer's
    /// finished object, shared by reference, without writing `{"original": ...}` first and parsing it
    /// back. `None` when that does not apply (the step then runs as for any event).
    pub(crate) fn shared_user_agent(&self, original: &str) -> Option<Arc<SharedObject>> {
        let parser = self.user_agent.as_ref()?.parser.as_ref()?;
        parser.parse(original).shared_if_before_strings("user_agent", &[("original", original)])
    }

    /// The same for the `geoip` step and the `source` object (`address` and `ip`, both the client).
    pub(crate) fn shared_source(&self, client: &str, ip: IpAddr) -> Option<Arc<SharedObject>> {
        let db = self.geoip.as_ref()?.databases.as_ref()?;
        db.lookup(ip).shared_if_before_strings("source", &[("address", client), ("ip", client)])
    }

    /// Whether the `user_agent` step, when the line has one, would parse it (its rules are loaded).
    pub(crate) fn parses_user_agents(&self) -> bool {
        self.user_agent.as_ref().is_some_and(|f| f.parser.is_some())
    }

    /// Whether the `geoip` step would look the client up (its databases are loaded).
    pub(crate) fn looks_up_addresses(&self) -> bool {
        self.geoip.as_ref().is_some_and(|f| f.databases.is_some())
    }
}

impl Filter for NginxError {
    /// It writes fixed ECS fields (none under `event.id`), tags, and the message back into its source.
    fn may_change_event_id(&self) -> bool {
        self.source.covers_event_id()
    }

    fn apply(&self, event: &mut Event) {
        let parsed = event.get_str(&self.source).and_then(|line| {
            let mut c = Cursor(line);
            let time = c.0.get(..19)?;
            c.0 = &c.0[19..];
            c.lit(" [")?;
            let level = c.until(b']')?;
            c.lit(" ")?;
            let pid: u64 = c.until(b'#')?.parse().ok()?;
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
        event.insert_path(&["event", "kind"], string("event"));
        event.insert_path(&["event", "category"], json!(["web"]));
        event.insert_path(&["event", "type"], json!(["error"]));
        event.insert_path(&["event", "module"], string("nginx"));
        event.insert_path(&["event", "dataset"], string("nginx.error"));
        // A local time in a DST gap does not exist; one in the repeated hour takes the earlier instant.
        let zone = Zone::for_event(event, self.time_zone);
        match parse_error_time(&time).and_then(|t| zone.to_utc(&t)) {
            Some(t) => event.set_timestamp(t),
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

    /// A record kept as JSON text and the same record parsed give the same event and the same document,
    /// for the first event of a user agent (merged) and the next ones (its cached object by reference).
    #[test]
    fn text_and_parsed_records_give_the_same_document() {
        use crate::enrich::UserAgentParser;
        use crate::event::CREATED as CREATED_PATH;
        use std::sync::Arc;
        let rules = "user_agent_parsers:\n  - regex: '(Firefox)/(\\d+)\\.(\\d+)'\nos_parsers: []\ndevice_parsers: []\n";
        let parser = Arc::new(UserAgentParser::from_yaml(rules, 16).unwrap());
        let filter = NginxAccess { user_agent: Some(UserAgent::ecs(Some(parser))), ..NginxAccess::default() };
        let main_format = r#"10.0.0.1 - bob [21/Nov/2026:08:15:30 +0000] "POST /a\\b?q=\xC3\xA9 HTTP/2.0" 503 0 "-" "Firefox/121.0" "198.51.100.7, 10.0.0.2""#;
        // `event` as the agent sends it, one that already has `created` (kept), and none.
        let events = [json!({"id": "abc"}), json!({"created": "2026-11-01T00:00:00.000Z", "id": "abc"}), Value::Null];
        for (line, event) in
            [COMBINED, main_format, "junk"].into_iter().flat_map(|l| events.iter().map(move |e| (l, e)))
        {
            let mut record = json!({"@timestamp": "2026-11-23T10:00:00.000Z", "message": line, "tags": ["access"],
                                    "host": {"name": "web-01"}});
            if !event.is_null() {
                record["event"] = event.clone();
            }
            let bytes = serde_json::to_vec(&record).unwrap();
            for _ in 0..2 {
                let mut text = Event::from_json_text(&bytes).expect("kept as text");
                let mut parsed = Event::from_map(record.as_object().unwrap().clone());
                filter.apply(&mut text);
                filter.apply(&mut parsed);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                text.write_json(&mut a).unwrap();
                parsed.write_json(&mut b).unwrap();
                assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap(), "{line}");
                assert_eq!(text, parsed, "{line}");
                let created = match (line, event.get("created")) {
                    (_, Some(kept)) => Some(kept.clone()),
                    ("junk", None) => None,
                    (_, None) => Some(json!("2026-11-23T10:00:00.000Z")),
                };
                assert_eq!(text.get_path(&CREATED_PATH).cloned(), created, "{line} {event}");
            }
        }
    }

    #[test]
    fn combined_line_to_ecs() {
        let mut e = envelope("access", COMBINED);
        NginxAccess::default().apply(&mut e);
        let m = e.as_map();
        assert_eq!(m["source"], json!({"address": "203.0.113.9", "ip": "203.0.113.9"}));
        assert_eq!(m["user"], json!({"name": "alice"}));
        assert_eq!(m["related"], json!({"ip": ["203.0.113.9"], "user": ["alice"]}));
        assert_eq!(
            m["http"],
            json!({"request": {"method": "GET", "referrer": "https://example.com/"}, "version": "1.1",
                   "response": {"status_code": 200, "body": {"bytes": 5316}}})
        );
        assert_eq!(m["url"], json!({"original": "/shop/cart?id=7", "path": "/shop/cart", "query": "id=7"}));
        assert_eq!(m["user_agent"], json!({"original": "Mozilla/5.0 (X11; Linux x86_64)"}));
        assert_eq!(m["@timestamp"], json!("2026-11-21T07:15:30.000Z"));
        assert_eq!(
            m["event"],
            json!({"created": "2026-11-23T10:00:00.000Z", "kind": "event", "category": ["web"], "type": ["access"],
                   "outcome": "success", "module": "nginx", "dataset": "nginx.access"})
        );
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
        // The client is the first public address of X-Forwarded-For, not the proxy in $remote_addr.
        assert_eq!(m["source"], json!({"address": "198.51.100.7", "ip": "198.51.100.7"}));
        assert_eq!(m["related"]["ip"], json!(["198.51.100.7", "10.0.0.2", "10.0.0.1"]));
        assert_eq!(m["event"]["outcome"], json!("failure"));
        assert_eq!(m["url"], json!({"original": "/api", "path": "/api"}));
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

    /// A line read in its JSON string, escaped quotes and all, gives what the line itself gives; one with
    /// other escapes, or a quote in a field that is not quoted, is left to be unescaped first.
    #[test]
    fn lines_read_in_their_json_string() {
        let fields = |p: &ParsedAccess| {
            let summary = (p.time_local(), p.client, p.client_ip, p.user_agent());
            format!("{summary:?} {:?}", p.fields(Some("\"t\""), false, false))
        };
        let read_in_place = [
            r#"203.0.113.9 - alice [21/Nov/2026:08:15:30 +0100] "GET /a?b=c HTTP/1.1" 200 5316 "https://ex.com/" "Mozilla/5.0 (X11)""#,
            r#"10.0.0.1 - - [21/Nov/2026:08:15:30 +0000] "POST /é HTTP/2.0" 503 0 "-" "curl/8.4.0" "198.51.100.7, 10.0.0.2""#,
            r#"10.0.0.1 - - [21/Nov/2026:08:15:30 +0000] "" 400 0 "" """#,
            r#"::1 - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 1 "-" "-" "-" trailing"#,
        ];
        for line in read_in_place {
            let json = serde_json::to_string(line).unwrap();
            let in_place = ParsedAccess::in_json_string(&json).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(fields(&in_place), fields(&ParsedAccess::of(line).unwrap()), "{line}");
        }
        let unescaped_first = [
            r#"10.0.0.1 - - [21/Nov/2026:08:15:30 +0000] "GET /\x22 HTTP/1.1" 200 1 "-" "a\\b""#,
            r#"10.0.0.1 - a"b [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#,
            "10.0.0.1 - - [21/Nov/2026:08:15:30 +0000] \"GET /\t HTTP/1.1\" 200 1 \"-\" \"-\"",
            "not an access line",
        ];
        for line in unescaped_first {
            let json = serde_json::to_string(line).unwrap();
            assert!(ParsedAccess::in_json_string(&json).is_none(), "{line}");
        }
        assert!(ParsedAccess::of(unescaped_first[1]).is_some(), "a quote in the user is read once unescaped");
        // Sizes up to what a u64 holds, and not beyond.
        let sized =
            |bytes: &str| format!(r#"::1 - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 {bytes} "-" "-""#);
        assert!(ParsedAccess::of(&sized(&u64::MAX.to_string())).is_some());
        assert!(ParsedAccess::of(&sized("18446744073709551616")).is_none());
        assert!(ParsedAccess::of(&sized("")).is_none());
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

        assert_eq!(m["event"]["dataset"], json!("nginx.error"));
        assert_eq!(m["event"]["type"], json!(["error"]));

        let mut e = envelope("error", "2026/07/01 23:30:00 [emerg] 1#1: bind() failed\n  second line");
        NginxError { time_zone: Some(Tz::Europe__Berlin), ..NginxError::default() }.apply(&mut e);
        assert_eq!(e.as_map()["message"], json!("bind() failed\n  second line"));
        assert_eq!(e.as_map()["@timestamp"], json!("2026-07-01T21:30:00.000Z"));
        assert!(e.as_map().get("nginx").is_none());

        let mut e = envelope("error", "2026/03/29 02:30:00 [warn] 1#1: in the DST gap");
        NginxError { time_zone: Some(Tz::Europe__Berlin), ..NginxError::default() }.apply(&mut e);
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
            data_stream: None,
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

    #[test]
    fn error_times_follow_the_hosts_event_timezone_around_midnight() {
        // Hosts on UTC+8 and UTC-5 log local times; the route's day is the event's UTC day.
        let route = Route {
            when: None,
            index: Template::parse("nginx_error-%{+YYYY.MM.dd}").unwrap(),
            time_zone: Tz::UTC,
            data_stream: None,
        };
        let table = RouteTable::new(vec![route], Unmatched::Drop);
        let mut index = String::new();
        for (zone, line, utc, day) in [
            ("+08:00", "2026/11/21 07:59:59 [error] 1#1: a", "2026-11-20T23:59:59.000Z", "2026.11.20"),
            ("+08:00", "2026/11/21 08:00:00 [error] 1#1: b", "2026-11-21T00:00:00.000Z", "2026.11.21"),
            ("-05:00", "2026/11/20 18:59:59 [error] 1#1: c", "2026-11-20T23:59:59.000Z", "2026.11.20"),
            ("-05:00", "2026/11/20 19:00:00 [error] 1#1: d", "2026-11-21T00:00:00.000Z", "2026.11.21"),
        ] {
            let mut e = envelope("error", line);
            e.insert_path(&["event", "timezone"], json!(zone));
            let mut configured = e.clone();
            NginxError::default().apply(&mut e);
            assert_eq!(e.as_map()["@timestamp"], json!(utc), "{zone} {line}");
            table.route(&e, &mut index);
            assert_eq!(index, format!("nginx_error-{day}"));
            // A zone written in the filter's config wins over the host's.
            NginxError { time_zone: Some(Tz::UTC), ..NginxError::default() }.apply(&mut configured);
            let local = line[..19].replace('/', "-").replace(' ', "T");
            assert_eq!(configured.as_map()["@timestamp"], json!(format!("{local}.000Z")), "{zone} {line}");
        }
    }

    #[test]
    fn user_agent_and_geoip_when_loaded() {
        let rules = "user_agent_parsers:\n  - regex: '(Firefox)/(\\d+)\\.(\\d+)'\nos_parsers:\n  - regex: '(Ubuntu)'\ndevice_parsers: []\n";
        let parser = std::sync::Arc::new(crate::enrich::UserAgentParser::from_yaml(rules, 8).unwrap());
        let filter = NginxAccess {
            user_agent: Some(UserAgent::ecs(Some(parser))),
            geoip: Some(GeoIp::ecs(None)),
            ..NginxAccess::default()
        };
        let line = r#"8.8.8.8 - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 1 "-" "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0""#;
        let mut e = envelope("access", line);
        filter.apply(&mut e);
        let ua = &e.as_map()["user_agent"];
        assert_eq!(ua["name"], json!("Firefox"));
        assert_eq!(ua["version"], json!("120.0"));
        assert_eq!(ua["os"], json!({"name": "Ubuntu", "full": "Ubuntu"}));
        assert_eq!(ua["device"], json!({"name": "Other"}));
        assert!(ua["original"].as_str().unwrap().starts_with("Mozilla/5.0"));
        // No GeoIP database loaded: nothing added, nothing broken.
        assert_eq!(e.as_map()["source"], json!({"address": "8.8.8.8", "ip": "8.8.8.8"}));
    }
}
