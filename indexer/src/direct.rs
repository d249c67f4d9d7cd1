//! The nginx access pipeline written straight into the bulk body: for the pipeline most users run (the
//! `json` codec, an `nginx_access` filter, other filters such as `nginx_error` only on other tags, routes
//! by tag to dated indices), each access record's document is written from the record's own entries and
//! the parsed line, in one pass, without building an [`Event`] the filter writes into and the bulk
//! encoder then walks.
//!
//! Why: through the event, the indexer's core cost about 30,000 instructions per agent envelope, and
//! most of them went to the event model, not to the work: inserting the nginx fields as entries of the
//! record's text and merging them into `event` (7,500), sharing the enrichment's cached objects (2,300),
//! writing the document by merging three kinds of entries (1,850), reading `@timestamp` back for the
//! index name (1,500). Here the line is parsed by the filter's own code ([`ParsedAccess`]), in place in
//! the record's JSON string when it can be; its objects are written from their literal parts
//! ([`Objects`]: the same text as the filter's `NewFields` writes for the event path, the list of paths
//! it groups back into objects cost 3,300 instructions per document); and only their placement among
//! the record's entries is done here.
//!
//! It takes only records it writes exactly as the filter and the bulk encoder would, byte for byte, and
//! declines any other (the caller then runs the event path): a record the split did not keep as text, one
//! whose `when` does not hold or that another filter's `when` holds for, a line that does not parse or
//! whose time does not read, a record that has one of the objects the filter writes (`http`, `source`,
//! ...) or an `event` whose members the filter would not merge as text, and an enrichment answer not
//! shared by reference. The tests compare both paths on the same records, those it takes and those it
//! declines.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};
use xxhash_rust::xxh3::xxh3_64;

use crate::batch::Record;
use crate::bulk::{BulkRequest, DocId};
use crate::condition::Condition;
use crate::event::{format_timestamp, Event, SharedObject, TIMESTAMP};
use crate::filters::nginx::objects::{Object, Objects, EVENT_MEMBERS};
use crate::filters::nginx::{parse_time_local, NginxAccess, ParsedAccess};
use crate::json_text;
use crate::raw_entries::RawEntries;
use crate::route::{RouteTable, Routed};

/// `nginx_access` on `message`, gated by a condition on tags, written straight into bulk bodies.
#[derive(Debug)]
pub struct DirectNginx {
    when: Option<Condition>,
    /// The conditions of the pipeline's other filters: a record one of them holds for is not taken.
    others: Vec<Condition>,
    nginx: NginxAccess,
}

impl DirectNginx {
    /// The encoder for the filter `nginx` run when `when` holds and none of `others` does, or `None`
    /// when it would not write what the filter writes: a source other than `message`, or a condition
    /// that reads more than tags (the record is checked before any filter runs).
    pub fn new(when: Option<Condition>, others: Vec<Condition>, nginx: NginxAccess) -> Option<Self> {
        let plain = matches!(nginx.source.parts(), [message] if message == "message");
        let on_tags = when.iter().chain(&others).all(Condition::reads_only_tags);
        (plain && on_tags).then_some(Self { when, others, nginx })
    }

    /// Whether the filter runs on `event` and no other filter does.
    fn runs_alone(&self, event: &Event) -> bool {
        self.when.as_ref().is_none_or(|c| c.matches(event)) && !self.others.iter().any(|c| c.matches(event))
    }

    /// Appends the document of `record`, decoded as `event`, as the filter and `routes` would make it,
    /// to `bulk` (its index name in `memo`); or `None`, with nothing appended, when the record is one to
    /// leave to the event path (see the module's doc). `routes` must
    /// [`read only tags and time`](RouteTable::reads_only_tags_and_time).
    pub fn encode(
        &self,
        event: &Event,
        record: &Record<'_>,
        routes: &RouteTable,
        memo: &mut Memo,
        shared: &mut SharedObjects,
        bulk: &mut BulkRequest,
    ) -> Option<Encoded> {
        let raw = event.raw_only()?;
        let (taken, routed) = memo.by_tags(raw.json("tags"), || (self.runs_alone(event), routes.pick(event)));
        if !taken || raw.keys().any(|k| Object::OTHER_KEYS.contains(&k)) {
            return None;
        }
        let message = raw.json("message")?;
        let unescaped;
        let parsed = match ParsedAccess::in_json_string(message) {
            Some(parsed) => parsed,
            None => {
                unescaped = json_text::string(message)?;
                ParsedAccess::of(&unescaped)?
            }
        };
        let time = memo.time_local(parsed.time_local())?;
        // The agent's `event` object, its members in key order; the filter moves the old `@timestamp`
        // to `event.created` unless it has one.
        let old_event = match raw.json("event") {
            Some(text) => Some(sorted_members(text)?),
            None => None,
        };
        let kept_created = old_event.as_ref().is_some_and(|m| m.iter().any(|(k, ..)| *k == "created"));
        let created = if kept_created { None } else { Some(raw.json(TIMESTAMP)?) };
        let source = match parsed.client_ip {
            Some(ip) if self.nginx.looks_up_addresses() => {
                Some(shared.sources.get(parsed.client, || self.nginx.shared_source(parsed.client, ip))?)
            }
            _ => None,
        };
        let user_agent = match parsed.user_agent() {
            Some(original) if self.nginx.parses_user_agents() => {
                Some(shared.user_agents.get(original, || self.nginx.shared_user_agent(original))?)
            }
            _ => None,
        };
        if routed == Routed::Dropped {
            return Some(Encoded::Dropped);
        }
        // `event.id` read from the members found above rather than walked to again (as `DocId::of` would).
        let event_id = old_event.as_ref().and_then(|members| members.iter().find(|(k, ..)| *k == "id"));
        let event_id = event_id.and_then(|(.., value)| json_text::string(value));
        DocId::with_event_id(event_id, record).write_into(&mut memo.id);
        memo.set(routes, routed, time);
        let objects = Objects::new(&parsed, created, source, user_agent);
        let document = Document { raw, time: &memo.timestamp, old_event: old_event.as_deref(), objects };
        bulk.push_written(&memo.index, &memo.id, |out| document.write(out));
        Some(Encoded::Document)
    }
}

/// What [`DirectNginx::encode`] did with a record it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// No route takes it and such records are dropped; nothing was appended.
    Dropped,
    /// Its document was appended, with the id and into the index the memo holds ([`Memo::id`],
    /// [`Memo::index`]).
    Document,
}

/// What consecutive documents share: their `@timestamp` and index name, written when the second changes
/// (1,000 and 1,500 instructions per event otherwise; a busy server logs many lines per second), and then
/// mostly in part (see [`Memo::set`]); and what the filter's `when` and the routes make of their `tags`.
/// Also the last document's id.
#[derive(Debug, Default)]
pub struct Memo {
    /// The second and route these are for.
    key: Option<(DateTime<Utc>, Routed)>,
    timestamp: String,
    index: String,
    /// The last document's id (written here rather than into a new string for each document).
    id: String,
    /// The UTC minute (in seconds since the epoch, over 60) and route `index` holds for all of, when it
    /// does (see [`RouteTable::same_for_the_minute`]).
    index_minute: Option<(i64, Routed)>,
    /// The last `$time_local` read, and what it reads as.
    time_local: Option<(String, Option<DateTime<Utc>>)>,
    /// The last record's `tags` as JSON text (`None`: it had none), whether the filter's `when` held
    /// and which route took it.
    tags: Option<(Option<Box<str>>, bool, Routed)>,
}

impl Memo {
    /// The last document's index name.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The last document's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `$time_local` read with [`parse_time_local`], or the last line's answer when it has the same
    /// text: a second's lines share it, and reading it cost 250 instructions.
    fn time_local(&mut self, text: &str) -> Option<DateTime<Utc>> {
        match &mut self.time_local {
            Some((last, time)) if last == text => *time,
            _ => {
                let time = parse_time_local(text);
                self.time_local = Some((text.to_string(), time));
                time
            }
        }
    }

    /// Whether the filter's `when` holds and which route takes a record whose `tags` has the JSON text
    /// `tags`: `decide`'s answer, kept for the next record with the same text. Both read nothing but
    /// tags, and the records of one source carry the same ones: deciding cost about 1,100 instructions
    /// per event (finding `tags` and looking for the tag, once for each), comparing a dozen bytes.
    fn by_tags(&mut self, tags: Option<&str>, decide: impl FnOnce() -> (bool, Routed)) -> (bool, Routed) {
        match &self.tags {
            Some((seen, taken, routed)) if seen.as_deref() == tags => (*taken, *routed),
            _ => {
                let (taken, routed) = decide();
                self.tags = Some((tags.map(Box::from), taken, routed));
                (taken, routed)
            }
        }
    }

    /// Makes `timestamp` and `index` those of `time` and `routed`. A new second of the same minute only
    /// has its seconds written, and a daily index is rendered once a minute: at a few lines a second,
    /// formatting both for each second cost 300 instructions per event.
    fn set(&mut self, routes: &RouteTable, routed: Routed, time: DateTime<Utc>) {
        if self.key == Some((time, routed)) {
            return;
        }
        match self.key {
            Some((last, _)) if last == time => {}
            Some((last, _)) if same_minute_whole_seconds(last, time) && self.timestamp.len() == 24 => {
                // `2026-11-21T08:15:30.000Z`: the seconds are bytes 17 and 18.
                let second = time.second();
                let digits = [b'0' + (second / 10) as u8, b'0' + (second % 10) as u8];
                self.timestamp.replace_range(17..19, std::str::from_utf8(&digits).expect("ASCII digits"));
            }
            _ => self.timestamp = format_timestamp(time),
        }
        let minute = time.timestamp().div_euclid(60);
        if self.index_minute != Some((minute, routed)) {
            routes.render_at(routed, time, &mut self.index);
            self.index_minute = routes.same_for_the_minute(routed, time).then_some((minute, routed));
        }
        self.key = Some((time, routed));
    }
}

/// Whether `a` and `b` are of the same UTC minute, each a whole second, as `format_timestamp` writes them
/// with the same text but for the seconds: in years 0 to 9999, and no leap second.
fn same_minute_whole_seconds(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    let plain = |t: DateTime<Utc>| t.nanosecond() == 0 && (0..=9999).contains(&t.year());
    a.timestamp().div_euclid(60) == b.timestamp().div_euclid(60) && plain(a) && plain(b)
}

/// The enrichments' finished objects a worker has seen, by the text they were made from: `user_agent` by
/// the agent's text, `source` by the client's address. Most documents take theirs from here rather than
/// from the enrichment's shared cache, whose look-up takes a shard lock and counts references to the
/// answer and to its object: with both workers on the same addresses and agents, each of those moved a
/// cache line from one core to the other (perf put 6 % of the indexer's CPU in the `source` look-up
/// alone). An object depends only on its text, so the documents are the same either way. Kept from one
/// batch to the next in the batch's `Scratch` (see `Processor`).
#[derive(Debug, Default)]
pub struct SharedObjects {
    user_agents: ByText,
    sources: ByText,
}

/// Objects' JSON by text in a fixed table of [`ByText::BUCKETS`] buckets of two, the one used last first:
/// a new text takes the place of the other. A look-up is a hash and at most two comparisons, and the
/// table keeps at most `2 × BUCKETS` objects' JSON whatever the traffic.
#[derive(Debug, Default)]
struct ByText {
    /// Empty until the first look-up. Each keeps its object's [`SharedObject::entry_json`], all that is
    /// written of it: read through the object, it was a cache miss more per document (perf put half of
    /// the time `Objects::write` took on its own on loading that field).
    slots: Vec<Option<(Text, Arc<[u8]>)>>,
}

/// A text [`ByText`] keeps: in its slot when it is as short as an address, so that finding it reads no
/// other memory (kept apart, comparing the addresses cost 2 % of the indexer's CPU in cache misses).
#[derive(Debug, Clone)]
enum Text {
    Short { len: u8, bytes: [u8; Text::SHORT] },
    Long(Box<str>),
}

impl Text {
    /// The longest text of an IPv6 address in hex groups; a longer one (an IPv4 tail, a user agent) is
    /// kept in an allocation of its own.
    const SHORT: usize = 39;

    fn new(text: &str) -> Self {
        match text.len() {
            len @ 0..=Self::SHORT => {
                let mut bytes = [0; Self::SHORT];
                bytes[..len].copy_from_slice(text.as_bytes());
                Self::Short { len: len as u8, bytes }
            }
            _ => Self::Long(text.into()),
        }
    }

    fn is(&self, text: &str) -> bool {
        match self {
            Self::Short { len, bytes } => bytes[..usize::from(*len)] == *text.as_bytes(),
            Self::Long(long) => **long == *text,
        }
    }
}

impl ByText {
    /// 4,096 buckets: a busy site's addresses mostly fit, and the table is 512 KiB (a slot is 64 bytes).
    /// The JSON it keeps is recently used, so with the default `cache_size` (100,000 answers) nearly all
    /// of it is in the enrichment's shared cache as well; with a `cache_size` below 8,192 these tables
    /// keep more objects' JSON alive than the cache does.
    const BUCKETS: usize = 4096;

    /// The JSON of the object for `text`, from `share` when it is not kept (`None` when `share` gives
    /// none, which is not kept).
    fn get(&mut self, text: &str, share: impl FnOnce() -> Option<Arc<SharedObject>>) -> Option<&[u8]> {
        if self.slots.is_empty() {
            self.slots.resize_with(2 * Self::BUCKETS, || None);
        }
        let at = 2 * (xxh3_64(text.as_bytes()) as usize % Self::BUCKETS);
        let bucket = &mut self.slots[at..at + 2];
        let kept = |slot: &Option<(Text, Arc<[u8]>)>| slot.as_ref().is_some_and(|(t, _)| t.is(text));
        if !kept(&bucket[0]) {
            if !kept(&bucket[1]) {
                bucket[1] = Some((Text::new(text), share()?.shared_entry_json()));
            }
            bucket.swap(0, 1);
        }
        bucket[0].as_ref().map(|(_, entry_json)| &**entry_json)
    }
}

/// The members of the object `text` as `(key, "key":value, value)`, sorted by key, or `None` when the
/// filter would not merge its members as text: not an object, a repeated key, or one of the members it
/// writes.
fn sorted_members(text: &str) -> Option<json_text::Members<'_>> {
    json_text::sorted_members(text).filter(|members| !members.iter().any(|(k, ..)| EVENT_MEMBERS.contains(k)))
}

/// What one document is written from.
struct Document<'a, 'l> {
    raw: &'a RawEntries,
    /// The line's objects.
    objects: Objects<'a, 'l>,
    /// The new `@timestamp`, formatted.
    time: &'a str,
    /// The record's `event` members, sorted.
    old_event: Option<&'a [(&'a str, &'a str, &'a str)]>,
}

impl Document<'_, '_> {
    /// Writes the document: the record's entries and the line's objects, in key order, as
    /// `Event::write_json` writes the event the filter leaves.
    fn write(&self, out: &mut Vec<u8>) {
        let mut added = self.objects.present().peekable();
        let mut separator = b'{';
        for (prefix, key, member) in self.raw.members_with_prefixes() {
            while let Some(new) = added.next_if(|a| a.prefix().order(a.key(), prefix, key).is_lt()) {
                out.push(std::mem::replace(&mut separator, b','));
                self.write_added(out, new);
            }
            out.push(std::mem::replace(&mut separator, b','));
            if key == TIMESTAMP {
                out.extend_from_slice(br#""@timestamp":""#);
                out.extend_from_slice(self.time.as_bytes());
                out.push(b'"');
            } else if key == "event" {
                match added.next() {
                    Some(Object::Event) => self.write_event(out),
                    _ => unreachable!("the filter always writes `event`"),
                }
            } else {
                out.extend_from_slice(member.as_bytes());
            }
        }
        for new in added {
            out.push(std::mem::replace(&mut separator, b','));
            self.write_added(out, new);
        }
        if separator == b'{' {
            out.push(b'{');
        }
        out.push(b'}');
    }

    fn write_added(&self, out: &mut Vec<u8>, object: Object) {
        match object {
            Object::Event => self.write_event(out),
            object => self.objects.write(object, out),
        }
    }

    /// `"event":{...}`: the record's members (sorted, none of them new) and the line's, in key order.
    fn write_event(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#""event":"#);
        self.objects.write_event(out, self.old_event.unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use figment::providers::{Format, Toml};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::batch::{Batch, Processor, Record, Scratch};
    use crate::config::{Compiled, IndexerConfig};
    use crate::enrich::{Enrichment, GeoIp, UserAgentParser};

    const ROUTES: &str = r#"
        [[filters]]
        type = "nginx_access"
        when = { tag = "access" }
        [[routes]]
        when = { tag = "access" }
        index = "nginx_access-%{+YYYY.MM.dd}"
        [[routes]]
        when = { not = { tag = "error" } }
        index = "tokyo-%{+YYYY.MM.dd.HH}"
        time_zone = "Asia/Tokyo"
    "#;

    const COMBINED: &str = r#"203.0.113.9 - alice [21/Nov/2026:08:15:30 +0100] "GET /shop/cart?id=7 HTTP/1.1" 200 5316 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0""#;

    /// Rules for two browsers, and an ASN table of two ranges (no city database): enough for shared
    /// and unshared answers of both enrichments.
    fn enrichment(dir: &std::path::Path) -> Enrichment {
        let rules =
            "user_agent_parsers:\n  - regex: '(Firefox)/(\\d+)\\.(\\d+)'\n  - regex: '(curl)/(\\d+)\\.(\\d+)'\n\
                     os_parsers:\n  - regex: '(Linux)'\ndevice_parsers: []\n";
        let asn = dir.join("asn-ipv4.csv");
        std::fs::write(
            &asn,
            "203.0.113.0,203.0.113.255,64500,\"Example, Inc.\"\n198.51.100.0,198.51.100.255,64501,Doc\n",
        )
        .unwrap();
        Enrichment {
            user_agent: Some(Arc::new(UserAgentParser::from_yaml(rules, 64).unwrap())),
            geoip: Some(Arc::new(GeoIp::open(&[], &[asn], 64).unwrap())),
        }
    }

    fn compiled(toml: &str, enrichment: &Enrichment) -> Compiled {
        let config: IndexerConfig = figment::Figment::from(Toml::string(toml)).extract().unwrap();
        Compiled::with_enrichment(&config, enrichment).unwrap()
    }

    /// The batch of `values`, with the same `now` for both paths (it fills a missing `@timestamp`).
    fn batch(processor: &Processor, values: &[Vec<u8>]) -> Batch {
        let topic: Arc<str> = "nginx".into();
        let (mut batch, mut scratch) = (Batch::new(1), Scratch::default());
        for (offset, value) in values.iter().enumerate() {
            let record =
                Record { topic: &topic, partition: 0, offset: offset as i64, timestamp: -1, value: Some(value) };
            processor.process(&record, now(), &mut scratch, &mut batch);
        }
        batch
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// Each text's own object, asked for once while it is kept; a third text of a bucket takes the place
    /// of the one of its two used longest ago; nothing kept for a text without one.
    #[test]
    fn shared_objects_are_kept_by_text_two_to_a_bucket() {
        fn get(kept: &mut ByText, asked: &mut usize, text: &str) -> Option<String> {
            let object = kept.get(text, || {
                *asked += 1;
                Some(SharedObject::new("user_agent", json!({ "original": text }).as_object().unwrap().clone()))
            });
            let entry: Option<Value> = object.map(|o| serde_json::from_slice(&[b"{", o, b"}"].concat()).unwrap());
            entry.map(|e| e["user_agent"]["original"].as_str().unwrap().to_string())
        }
        let (mut kept, mut asked) = (ByText::default(), 0);
        let bucket = |text: &str| xxh3_64(text.as_bytes()) as usize % ByText::BUCKETS;
        let texts: Vec<String> = (0..100).map(|i| format!("agent {i}")).collect();
        assert!(texts.iter().all(|t| texts.iter().filter(|u| bucket(u) == bucket(t)).count() <= 2));
        for round in 0..2 {
            for text in &texts {
                assert_eq!(get(&mut kept, &mut asked, text).as_deref(), Some(text.as_str()), "round {round}");
            }
        }
        assert_eq!(asked, texts.len(), "each text asked for once");
        // Three texts of one bucket, a, b and c: c takes the place of a, used longest ago.
        let first = bucket(&texts[0]);
        let mut same = (0..).map(|i| format!("other {i}")).filter(|t| bucket(t) == first);
        let (a, b, c) = (same.next().unwrap(), same.next().unwrap(), same.next().unwrap());
        for text in [&a, &b, &a, &b, &c] {
            assert_eq!(get(&mut kept, &mut asked, text).as_deref(), Some(text.as_str()));
        }
        let before = asked;
        for text in [&b, &c, &b] {
            get(&mut kept, &mut asked, text);
        }
        assert_eq!(asked, before, "b and c kept");
        get(&mut kept, &mut asked, &a);
        assert_eq!(asked, before + 1, "a asked for again");
        assert!(kept.get("none", || None).is_none());
        assert!(!kept.slots.iter().flatten().any(|(text, _)| text.is("none")));
        // Texts short and long, and one of them but longer.
        for text in ["", "1.2.3.4", &"f".repeat(Text::SHORT), &"f".repeat(Text::SHORT + 1)] {
            assert!(Text::new(text).is(text), "{text}");
            assert!(!Text::new(text).is(&format!("{text}x")), "{text}");
        }
    }

    /// Whether the direct encoder takes `value` (and what it writes, which the comparison checks).
    fn takes(compiled: &Compiled, value: &[u8]) -> bool {
        let direct = compiled.direct.as_ref().expect("the pipeline is encoded directly");
        let event = compiled.codec.decode(value, now());
        let record = Record { topic: &"t".into(), partition: 0, offset: 0, timestamp: -1, value: Some(value) };
        let mut bulk = BulkRequest::new();
        let (mut memo, mut shared) = (Memo::default(), SharedObjects::default());
        direct.encode(&event, &record, &compiled.routes, &mut memo, &mut shared, &mut bulk).is_some()
    }

    /// Processes `values` (twice over, so that enrichment answers are seen first and then cached) with
    /// and without the direct encoder, and checks that the bodies and items are the same; returns how
    /// many of `values` the direct encoder took.
    fn same_both_ways(toml: &str, enrichment: &Enrichment, values: &[Vec<u8>]) -> usize {
        let direct = compiled(toml, enrichment);
        let mut event_path = compiled(toml, enrichment);
        event_path.direct = None;
        let taken = values.iter().filter(|v| takes(&direct, v)).count();
        let (direct, event_path) = (Processor::new(direct), Processor::new(event_path));
        for _ in 0..2 {
            let (a, b) = (batch(&direct, values), batch(&event_path, values));
            assert_eq!(String::from_utf8_lossy(a.bulk.body()), String::from_utf8_lossy(b.bulk.body()));
            assert_eq!((a.records, a.dropped), (b.records, b.dropped));
            assert!(a.items().eq(b.items()));
        }
        taken
    }

    fn envelope(line: &str, extra: Value) -> Vec<u8> {
        let mut record = json!({"@timestamp": "2026-11-23T10:00:00.123Z", "message": line, "tags": ["access"],
                                "host": {"name": "web-01"}, "event": {"id": "e1"}});
        for (k, v) in extra.as_object().unwrap() {
            match v {
                Value::Null => record.as_object_mut().unwrap().remove(k),
                v => record.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        serde_json::to_vec(&record).unwrap()
    }

    /// Records the direct encoder takes, with every optional part of the line on and off.
    fn taken_records() -> Vec<Vec<u8>> {
        let lines = [
            COMBINED.to_string(),
            r#"10.0.0.1 - bob [21/Nov/2026:08:15:30 +0000] "POST /a\\b?q=\xC3\xA9 HTTP/2.0" 503 0 "-" "curl/8.4.0" "198.51.100.7, 10.0.0.2""#.into(),
            r#"10.0.0.1 - - [21/Nov/2026:23:59:59 -0900] "\x16\x03\x01" 400 157 "-" "-""#.into(),
            r#"2001:db8::7 - - [01/Jan/2026:00:00:00 +0000] "GET /? HTTP/1.0" 304 0 "-" "Firefox/121.0" "-""#.into(),
            r#"198.51.100.3 - - [21/Nov/2026:08:15:30 +0000] "GET /é/ü?x= HTTP/1.1" 200 1 "https://ex.com/?a=\x22b\x22" "Zoë/1.0 \\o/""#
                .into(),
            r#"unknown - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 1 "-" "Firefox/121.0 (tab	tab)""#.into(),
        ];
        let extras = [
            json!({}),
            json!({"event": null}),
            json!({"event": {}}),
            json!({"event": {"id": "e2", "created": "2026-11-01T00:00:00.000Z", "zone": {"a": [1, 2]}}}),
            json!({"event": {"action": "a", "code": 1, "id": "e4", "ingested": "x", "provider": "p", "severity": 2,
                             "url": "u"}}),
            json!({"event": {"timezone": "UTC", "id": "e3"}, "0first": 1, "ev": true, "eventual": null,
                   "user_agentx": "y", "zz": {"k": [{}]}}),
            json!({"tags": ["x", "access"]}),
            // Ids that are not used as they are: empty, not a string, escaped.
            json!({"event": {"id": ""}}),
            json!({"event": {"id": 7}}),
            json!({"event": {"id": "a\"b\\c/é"}}),
        ];
        lines.iter().flat_map(|l| extras.iter().map(|e| envelope(l, e.clone()))).collect()
    }

    /// Records it leaves to the event path: each for one of the reasons it declines.
    fn declined_records() -> Vec<Vec<u8>> {
        vec![
            envelope("junk", json!({})),
            envelope(&COMBINED.replace("21/Nov", "21/Nox"), json!({})),
            envelope(COMBINED, json!({"tags": ["error"]})),
            envelope(COMBINED, json!({"tags": null})),
            envelope(COMBINED, json!({"http": {"version": "1.0"}})),
            envelope(COMBINED, json!({"source": {"port": 1}})),
            envelope(COMBINED, json!({"event": {"kind": "alert"}})),
            envelope(COMBINED, json!({"event": "flat"})),
            envelope(COMBINED, json!({"message": 7})),
            envelope(COMBINED, json!({"@timestamp": null})),
            // Not a time: it moves to `_@timestamp` and the event is tagged, which the filter's objects don't say.
            envelope(COMBINED, json!({"@timestamp": 1700000000})),
            br#"{"message":"203.0.113.9 - - [21/Nov/2026:08:15:30 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"","tags":["access"],"@timestamp":"2026-11-23T10:00:00.000Z","event":{"id":"a","id":"b"}}"#.to_vec(),
            b"not json".to_vec(),
            br#"{"a":"\u00e9"}"#.to_vec(),
        ]
    }

    #[test]
    fn both_paths_write_the_same_documents() {
        let dir = tempfile::tempdir().unwrap();
        let enrichment = enrichment(dir.path());
        let no_filter_when = ROUTES.replace("when = { tag = \"access\" }\n        [[routes]]", "[[routes]]");
        let drop = format!("drop_unmatched = true\n{}", ROUTES.replace("not = { tag = \"error\" }", "tag = \"never\""));
        // Without the filter's `when`, the two records tagged otherwise are the filter's too.
        for (toml, also_taken) in [(ROUTES, 0), (&no_filter_when, 2), (&drop, 0)] {
            for enrichment in [&enrichment, &Enrichment::none()] {
                let taken = taken_records();
                assert_eq!(same_both_ways(toml, enrichment, &taken), taken.len(), "{toml}");
                assert_eq!(same_both_ways(toml, enrichment, &declined_records()), also_taken, "{toml}");
                // Taken and declined records in turn: what one record's tags decided is not carried on.
                let mixed: Vec<Vec<u8>> =
                    taken.iter().cloned().zip(declined_records()).flat_map(|(t, d)| [t, d]).collect();
                same_both_ways(toml, enrichment, &mixed);
            }
        }
    }

    /// The nginx pipeline's other filter (`nginx_error` on tag `error`) and any other filter that runs
    /// only on other tags leave the access records to the direct encoder, and take theirs to the event
    /// path; a filter that would also run on an access record takes that record to the event path.
    #[test]
    fn other_filters_on_other_tags_leave_the_access_records_direct() {
        let dir = tempfile::tempdir().unwrap();
        let enrichment = enrichment(dir.path());
        let error_line = "2026/11/21 08:15:30 [error] 7#7: *1 open() failed, client: 203.0.113.9";
        let error = || envelope(error_line, json!({"tags": ["error"]}));
        let with_errors: Vec<Vec<u8>> = taken_records().into_iter().flat_map(|t| [t, error()]).collect();
        let access = taken_records().len();
        let nginx_error = "[[filters]]\ntype = \"nginx_error\"\nwhen = { tag = \"error\" }\n";
        // After the access filter, before it, and one that could change `event.id` (on other records).
        let rename_id =
            "[[filters]]\ntype = \"mutate\"\nwhen = { tag = \"error\" }\nrename = { \"event.id\" = \"x\" }\n";
        for toml in [format!("{ROUTES}{nginx_error}"), format!("{nginx_error}{ROUTES}"), format!("{ROUTES}{rename_id}")]
        {
            assert_eq!(same_both_ways(&toml, &enrichment, &with_errors), access, "{toml}");
        }
        let also_on_access = "[[filters]]\ntype = \"mutate\"\nwhen = { tag = \"access\" }\nadd_tag = [\"seen\"]\n";
        let toml = format!("{ROUTES}{also_on_access}");
        assert_eq!(same_both_ways(&toml, &enrichment, &with_errors), 0, "{toml}");
    }

    /// A user agent or client whose cached answer was first built for an event whose object held more
    /// is not shared, and records with it are left to the event path.
    #[test]
    fn unshared_answers_are_left_to_the_event_path() {
        let dir = tempfile::tempdir().unwrap();
        let enrichment = enrichment(dir.path());
        let c = compiled(ROUTES, &enrichment);
        let first = [envelope(COMBINED, json!({"user_agent": {"device": {"name": "x"}}, "source": {"port": 1}}))];
        batch(&Processor::new(compiled(ROUTES, &enrichment)), &first);
        let plain = envelope(COMBINED, json!({}));
        assert!(!takes(&c, &plain));
        assert_eq!(same_both_ways(ROUTES, &enrichment, &[plain]), 0);
        let other_client = envelope(&COMBINED.replace("203.0.113.9", "203.0.113.10"), json!({}));
        assert_eq!(same_both_ways(ROUTES, &enrichment, &[other_client]), 0, "the user agent is still unshared");
        let addresses_only = Enrichment { user_agent: None, ..enrichment };
        assert_eq!(
            same_both_ways(ROUTES, &addresses_only, &[envelope(COMBINED, json!({}))]),
            0,
            "the client is unshared"
        );
    }

    /// The memo's `@timestamp` and index name are those formatted afresh, second after second across
    /// minutes, days and years, backwards too, for daily, hourly, per-minute and per-second templates, in
    /// zones with whole-hour, half-hour and seconds-long (Monrovia's until 1972) offsets and across a
    /// change of summer time, with the route changing every five records.
    #[test]
    fn the_memo_writes_what_formatting_afresh_writes() {
        let toml = r#"
            [[routes]]
            when = { tag = "a" }
            index = "daily-%{+YYYY.MM.dd}"
            [[routes]]
            when = { tag = "b" }
            index = "hourly-%{+YYYY.MM.dd.HH}"
            time_zone = "Asia/Kolkata"
            [[routes]]
            when = { tag = "c" }
            index = "seconds-%{+YYYY.MM.dd.HH.mm.ss}"
            [[routes]]
            when = { tag = "d" }
            index = "amsterdam-%{+YYYY.MM.dd.HH.mm}"
            time_zone = "Europe/Amsterdam"
            [[routes]]
            when = { tag = "e" }
            index = "monrovia-%{+YYYY.MM.dd.HH.mm}"
            time_zone = "Africa/Monrovia"
        "#;
        let routes = compiled(toml, &Enrichment::none()).routes;
        let starts = ["2026-12-31T23:58:57Z", "2026-11-21T18:29:58Z", "1950-01-01T00:00:00Z", "2026-03-29T00:59:58Z"];
        let mut memo = Memo::default();
        for (n, start) in starts.iter().enumerate() {
            let start = DateTime::parse_from_rfc3339(start).unwrap().with_timezone(&Utc);
            for step in (0..200i64).chain((0..130).rev()) {
                let time = start + chrono::TimeDelta::seconds(step * 13 % 197);
                let routed = Routed::Route((step as usize / 5 + n) % 5);
                memo.set(&routes, routed, time);
                let mut index = String::new();
                routes.render_at(routed, time, &mut index);
                assert_eq!((memo.timestamp.as_str(), memo.index()), (format_timestamp(time).as_str(), index.as_str()));
            }
        }
    }

    /// A slot of the objects' tables is one cache line, as `ByText::BUCKETS` says.
    #[test]
    fn a_by_text_slot_is_a_cache_line() {
        assert_eq!(std::mem::size_of::<Option<(Text, Arc<[u8]>)>>(), 64);
    }

    #[test]
    fn other_pipelines_are_not_encoded_directly() {
        let none = Enrichment::none();
        for toml in [
            "",
            "[[filters]]\ntype = \"nginx_access\"\nsource = \"line\"\n",
            "[[filters]]\ntype = \"nginx_access\"\nwhen = { field = \"a\", equals = 1 }\n",
            "[[filters]]\ntype = \"nginx_access\"\n[[filters]]\ntype = \"mutate\"\nadd_tag = [\"x\"]\n",
            "[[filters]]\ntype = \"nginx_access\"\n[[filters]]\ntype = \"nginx_error\"\nwhen = { exists = \"a\" }\n",
            "[[filters]]\ntype = \"nginx_access\"\n[[routes]]\nwhen = { exists = \"source\" }\nindex = \"a\"\n",
            "[[filters]]\ntype = \"nginx_access\"\n[[routes]]\nindex = \"a-%{[host][name]}\"\n",
            "default_index = \"a-%{[host][name]}\"\n[[filters]]\ntype = \"nginx_access\"\n",
            "[[filters]]\ntype = \"nginx_access\"\n[[routes]]\ndata_stream = { type = \"logs\", dataset = \"nginx.access\", namespace = \"default\" }\n",
            "[input]\ncodec = \"plain\"\n[[filters]]\ntype = \"nginx_access\"\n",
        ] {
            assert!(compiled(toml, &none).direct.is_none(), "{toml}");
        }
        assert!(compiled("[[filters]]\ntype = \"nginx_access\"\n", &none).direct.is_some());
    }

    fn line() -> impl Strategy<Value = String> {
        let ip =
            prop::sample::select(vec!["203.0.113.9", "10.0.0.1", "198.51.100.7", "::1", "2001:db8::1", "-", "x y"]);
        let text = "[ -~éü\u{7f}\t\\\\\"]{0,12}";
        (ip.clone(), "[a-z\\\\\"-]{1,4}", 0u8..4, text, 100u16..600, text, text, prop::option::of((ip, text)))
            .prop_map(|(ip, user, day, path, status, referrer, ua, forwarded)| {
                let forwarded = forwarded.map(|(a, b)| format!(" \"{a}, {b}\"")).unwrap_or_default();
                format!(
                    "{ip} - {user} [2{day}/Nov/2026:08:15:30 +0000] \"GET /{path} HTTP/1.1\" {status} 12 \"{referrer}\" \"{ua}\"{forwarded}"
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Generated lines, the quotes and backslashes of the text included: both paths agree, whether
        /// the direct encoder takes the record or not.
        #[test]
        fn generated_lines_give_the_same_documents(lines in prop::collection::vec(line(), 1..8)) {
            let dir = tempfile::tempdir().unwrap();
            let enrichment = enrichment(dir.path());
            let values: Vec<Vec<u8>> = lines.iter().map(|l| envelope(l, json!({}))).collect();
            same_both_ways(ROUTES, &enrichment, &values);
        }
    }
}
