//! The event envelope of DESIGN.md, the JSON that Filebeat's Kafka output sends plus `event.id`:
//!
//! ```json
//! {"@timestamp":"2026-11-21T08:15:30.123Z","message":"...","tags":["access"],"fields":{},
//!  "log":{"file":{"path":"/var/log/nginx/access.log"},"offset":123},"host":{"name":"web-01"},
//!  "input":{"type":"file"},"agent":{"type":"logpipe","version":"0.1.0"},
//!  "event":{"id":"<32 hex>","timezone":"+08:00"}}
//! ```
//!
//! Encoding goes straight into a reused buffer. Invalid UTF-8 is replaced lossily (U+FFFD) and control
//! bytes such as NUL are escaped (`\u0000`), so every line becomes valid JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::json;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What is the same for every event of one input.
#[derive(Debug, Clone)]
pub struct InputMeta {
    pub host: String,
    pub input_type: &'static str,
    pub tags: Vec<String>,
    pub fields: BTreeMap<String, serde_json::Value>,
    pub fields_under_root: bool,
    /// exec inputs: `process.command_line` (ECS), the command as configured.
    pub command_line: Option<String>,
    /// `event.timezone`: the input's configured zone, else the host's offset (`"+08:00"`).
    pub timezone: String,
    /// The envelope's parts that are the same for every event of the input, written on first use.
    pub fragments: OnceLock<Fragments>,
}

/// The JSON text around an event's own values, written once per input rather than escaped per event.
#[derive(Debug, Clone)]
pub struct Fragments {
    /// `,"tags":[...]` and the fields, for an event with no tag of its own (not cut, not truncated).
    tags_and_fields: Vec<u8>,
    /// From after `log` (or the message) to the opening quote of `event.id`.
    before_id: Vec<u8>,
    /// From the closing quote of `event.id` to the end.
    after_id: Vec<u8>,
}

impl Fragments {
    fn new(meta: &InputMeta) -> Self {
        let mut tags_and_fields = Vec::new();
        write_tags_and_fields(meta, std::iter::empty(), &mut tags_and_fields);
        let mut before_id = Vec::new();
        if let Some(command) = &meta.command_line {
            before_id.extend_from_slice(br#","process":{"command_line":"#);
            json::string(&mut before_id, command);
            before_id.push(b'}');
        }
        before_id.extend_from_slice(br#","host":{"name":"#);
        json::string(&mut before_id, &meta.host);
        before_id.extend_from_slice(br#"},"input":{"type":"#);
        json::string(&mut before_id, meta.input_type);
        before_id.extend_from_slice(br#"},"agent":{"type":"logpipe","version":"#);
        json::string(&mut before_id, AGENT_VERSION);
        before_id.extend_from_slice(br#"},"event":{"id":""#);
        let mut after_id = br#"","timezone":"#.to_vec();
        json::string(&mut after_id, &meta.timezone);
        after_id.extend_from_slice(b"}}");
        Self { tags_and_fields, before_id, after_id }
    }
}

/// This host's UTC offset now, as Filebeat's `add_locale` writes it: `"+08:00"`, `"-05:00"`, `"+00:00"`.
pub fn host_timezone() -> String {
    chrono::Local::now().offset().to_string()
}

/// The zone an input records: the configured one, else the host's.
pub fn input_timezone(configured: Option<&str>) -> String {
    configured.map(str::to_string).unwrap_or_else(host_timezone)
}

/// `"+08:00"`, `"-0500"`, `"Z"` or an IANA zone name.
pub fn valid_timezone(zone: &str) -> bool {
    let offset = zone.strip_prefix(['+', '-']).map(|rest| {
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        digits.len() == 4
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits[..2].parse::<u32>().is_ok_and(|h| h <= 18)
            && digits[2..].parse::<u32>().is_ok_and(|m| m < 60)
    });
    offset.unwrap_or(zone == "Z" || zone.parse::<chrono_tz::Tz>().is_ok())
}

/// What differs per event.
#[derive(Debug, Clone, Copy)]
pub struct EventParts<'a> {
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T08:15:30.123Z`.
    pub timestamp: &'a str,
    pub message: &'a [u8],
    /// Source file and the offset where the event starts; `None` for exec and stdin.
    pub file: Option<(&'a str, u64)>,
    pub id: &'a [u8; 32],
    /// The line was longer than `max_line_bytes` and was cut.
    pub truncated: bool,
}

/// Encodes events, cutting messages so the record fits the output's size limit.
#[derive(Debug)]
pub struct Encoder {
    limit: usize,
    path: PathCache,
    /// Events whose message was cut to fit `limit`.
    pub message_truncated: u64,
}

impl Encoder {
    /// `limit`: the most bytes an encoded event may take.
    pub fn new(limit: usize) -> Self {
        Self { limit, path: PathCache::default(), message_truncated: 0 }
    }

    /// Encodes into `buf` (cleared first). An event over the limit has its message cut at a character
    /// boundary and gains the tag `message_truncated`; it is never dropped.
    pub fn encode(&mut self, meta: &InputMeta, parts: &EventParts<'_>, buf: &mut Vec<u8>) {
        // A message that is not valid UTF-8 is written lossily (U+FFFD for each bad sequence).
        let message = match simdutf8::basic::from_utf8(parts.message) {
            Ok(message) => Cow::Borrowed(message),
            Err(_) => String::from_utf8_lossy(parts.message),
        };
        write(meta, parts, &message, false, buf, &mut self.path);
        if buf.len() <= self.limit {
            return;
        }
        self.message_truncated += 1;
        // Cut only at character boundaries.
        let mut keep = message.len();
        loop {
            // Escapes make a byte of message take 1 to 6 bytes of JSON: shrink in proportion, a bit more.
            let scaled = (keep as u128 * self.limit as u128 / buf.len() as u128) as usize;
            keep = (scaled - scaled / 16).min(keep.saturating_sub(64));
            while !message.is_char_boundary(keep) {
                keep -= 1;
            }
            write(meta, parts, &message[..keep], true, buf, &mut self.path);
            if buf.len() <= self.limit || keep == 0 {
                return;
            }
        }
    }
}

/// The last file path written and its JSON string: events come in runs from one file.
#[derive(Debug, Default)]
struct PathCache {
    path: String,
    json: Vec<u8>,
}

impl PathCache {
    fn json(&mut self, path: &str) -> &[u8] {
        if self.path != path || self.json.is_empty() {
            self.path.clear();
            self.path.push_str(path);
            self.json.clear();
            json::string(&mut self.json, path);
        }
        &self.json
    }
}

/// Writes the envelope into `buf` (cleared first), by hand rather than through serde: this runs once per
/// line, and a derived `Serialize` escaping every string byte by byte was about a tenth of the agent's
/// CPU. Strings are escaped exactly as `serde_json` escapes them (`json`'s tests compare the two); what
/// is the same for every event of the input comes from its [`Fragments`].
fn write(meta: &InputMeta, parts: &EventParts<'_>, message: &str, cut: bool, buf: &mut Vec<u8>, path: &mut PathCache) {
    let fragments = meta.fragments.get_or_init(|| Fragments::new(meta));
    buf.clear();
    buf.extend_from_slice(br#"{"@timestamp":"#);
    json::string(buf, parts.timestamp);
    buf.extend_from_slice(br#","message":"#);
    json::string(buf, message);
    let flags = [parts.truncated.then_some("truncated"), cut.then_some("message_truncated")];
    if flags == [None, None] {
        buf.extend_from_slice(&fragments.tags_and_fields);
    } else {
        write_tags_and_fields(meta, flags.into_iter().flatten(), buf);
    }
    if let Some((file, offset)) = parts.file {
        buf.extend_from_slice(br#","log":{"file":{"path":"#);
        buf.extend_from_slice(path.json(file));
        buf.extend_from_slice(br#"},"offset":"#);
        json::value(buf, &offset);
        buf.push(b'}');
    }
    buf.extend_from_slice(&fragments.before_id);
    // The id is 32 ASCII hex digits by construction: nothing to escape.
    buf.extend_from_slice(parts.id);
    buf.extend_from_slice(&fragments.after_id);
}

/// `,"tags":[...]` with the input's tags and then `flags`, and the input's fields.
fn write_tags_and_fields<'a>(meta: &'a InputMeta, flags: impl Iterator<Item = &'a str>, buf: &mut Vec<u8>) {
    buf.extend_from_slice(br#","tags":["#);
    for (i, tag) in meta.tags.iter().map(String::as_str).chain(flags).enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json::string(buf, tag);
    }
    buf.push(b']');
    if meta.fields_under_root {
        for (k, v) in &meta.fields {
            buf.push(b',');
            json::string(buf, k);
            buf.push(b':');
            json::value(buf, v);
        }
    } else if !meta.fields.is_empty() {
        buf.extend_from_slice(br#","fields":"#);
        json::value(buf, &meta.fields);
    }
}

/// The event field used as the Kafka record key with `partitioner = "hash"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyField {
    HostName,
    FilePath,
    InputType,
    EventId,
    /// `fields.NAME` (or `NAME` for an input with `fields_under_root`).
    Field(String),
}

impl KeyField {
    pub fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "host.name" => KeyField::HostName,
            "log.file.path" => KeyField::FilePath,
            "input.type" => KeyField::InputType,
            "event.id" => KeyField::EventId,
            other => match other.strip_prefix("fields.") {
                Some(name) if !name.is_empty() => KeyField::Field(name.to_string()),
                _ if !other.is_empty() && !other.contains('.') => KeyField::Field(other.to_string()),
                _ => return None,
            },
        })
    }

    /// The key bytes for an event, or `None` when the event has no such field.
    pub fn value<'a>(&self, meta: &'a InputMeta, parts: &EventParts<'a>) -> Option<Cow<'a, [u8]>> {
        match self {
            KeyField::HostName => Some(Cow::Borrowed(meta.host.as_bytes())),
            KeyField::FilePath => parts.file.map(|(p, _)| Cow::Borrowed(p.as_bytes())),
            KeyField::InputType => Some(Cow::Borrowed(meta.input_type.as_bytes())),
            KeyField::EventId => Some(Cow::Owned(parts.id.to_vec())),
            KeyField::Field(name) => match meta.fields.get(name)? {
                serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_bytes())),
                other => Some(Cow::Owned(other.to_string().into_bytes())),
            },
        }
    }
}

/// Read time as the envelope wants it.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`timestamp_now`] for a given time, in milliseconds since the Unix epoch.
pub fn timestamp_at(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn meta(under_root: bool) -> InputMeta {
        InputMeta {
            host: "web-01".into(),
            input_type: "file",
            tags: vec!["access".into()],
            fields: [("service".to_string(), json!("nginx"))].into_iter().collect(),
            fields_under_root: under_root,
            command_line: None,
            timezone: "+08:00".into(),
            fragments: Default::default(),
        }
    }

    #[test]
    fn timezones() {
        for ok in ["+08:00", "-05:00", "+0530", "Z", "Asia/Shanghai", "UTC"] {
            assert!(valid_timezone(ok), "{ok}");
        }
        for bad in ["", "+8", "+25:00", "+08:60", "Mars/Base", "08:00"] {
            assert!(!valid_timezone(bad), "{bad}");
        }
        let host = host_timezone();
        assert!(valid_timezone(&host) && host.len() == 6, "{host}");
        assert_eq!(input_timezone(Some("-05:00")), "-05:00");
    }

    fn parts<'a>(message: &'a [u8], id: &'a [u8; 32]) -> EventParts<'a> {
        EventParts {
            timestamp: "2026-11-21T08:15:30.123Z",
            message,
            file: Some(("/var/log/nginx/access.log", 123456)),
            id,
            truncated: false,
        }
    }

    #[test]
    fn shape_matches_the_design() {
        let id = crate::identity::event_id("web-01", 1, 123456, 123466);
        let mut buf = Vec::new();
        Encoder::new(1 << 20).encode(&meta(false), &parts(b"GET / 200", &id), &mut buf);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            json!({
                "@timestamp": "2026-11-21T08:15:30.123Z",
                "message": "GET / 200",
                "tags": ["access"],
                "fields": {"service": "nginx"},
                "log": {"file": {"path": "/var/log/nginx/access.log"}, "offset": 123456},
                "host": {"name": "web-01"},
                "input": {"type": "file"},
                "agent": {"type": "logpipe", "version": AGENT_VERSION},
                "event": {"id": std::str::from_utf8(&id).unwrap(), "timezone": "+08:00"},
            })
        );
        assert!(buf.starts_with(br#"{"@timestamp":"#));
    }

    #[test]
    fn fields_under_root() {
        let id = [b'0'; 32];
        let mut buf = Vec::new();
        Encoder::new(1 << 20).encode(&meta(true), &parts(b"x", &id), &mut buf);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["service"], "nginx");
        assert!(v.get("fields").is_none());
    }

    #[test]
    fn nul_and_invalid_utf8_become_valid_json() {
        let id = [b'0'; 32];
        let mut buf = Vec::new();
        Encoder::new(1 << 20).encode(&meta(false), &parts(b"a\0b\xffc", &id), &mut buf);
        assert!(std::str::from_utf8(&buf).unwrap().contains(r"a\u0000b"));
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["message"], "a\u{0}b\u{fffd}c");
    }

    #[test]
    fn oversized_event_is_cut_and_tagged() {
        let id = [b'0'; 32];
        let big = "é\0".repeat(50_000);
        let mut enc = Encoder::new(20_000);
        let mut buf = Vec::new();
        let mut p = parts(big.as_bytes(), &id);
        p.truncated = true;
        enc.encode(&meta(false), &p, &mut buf);
        assert!(buf.len() <= 20_000, "{}", buf.len());
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["tags"], json!(["access", "truncated", "message_truncated"]));
        assert!(big.starts_with(v["message"].as_str().unwrap()));
        assert!(v["message"].as_str().unwrap().len() > 1000);
        assert_eq!(enc.message_truncated, 1);
    }

    #[test]
    fn key_fields() {
        let id = [b'7'; 32];
        let m = meta(false);
        let p = parts(b"x", &id);
        assert_eq!(KeyField::parse("host.name").unwrap().value(&m, &p).unwrap().as_ref(), b"web-01");
        assert_eq!(KeyField::parse("fields.service").unwrap().value(&m, &p).unwrap().as_ref(), b"nginx");
        assert_eq!(
            KeyField::parse("log.file.path").unwrap().value(&m, &p).unwrap().as_ref(),
            b"/var/log/nginx/access.log"
        );
        assert!(KeyField::parse("log.nope.x").is_none());
    }
}
