//! Logstash sprintf templates, used for index names and `mutate` values: `%{[field][sub]}` (or
//! `%{field.sub}`) takes a field's value, and `%{+YYYY.MM.dd}` formats `@timestamp` with Joda-style tokens
//! in a time zone (UTC unless the route sets one). A template is parsed once, at load; rendering writes
//! into a caller's reused `String`.
//!
//! As in Logstash, a reference that cannot be resolved (missing field, no `@timestamp`) is left in the
//! output as written, so the event is still indexed somewhere visible rather than lost.
//!
//! References: Logstash "Accessing event data and fields" (sprintf format); Joda-Time `DateTimeFormat`.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{Event, FieldRef};

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    /// The reference and its raw text (`%{...}`), written back when unresolved.
    Field(FieldRef, String),
    Date(Vec<DateToken>, String),
}

#[derive(Debug, Clone, PartialEq)]
enum DateToken {
    /// `yyyy`/`YYYY` (zero-padded to the count); `yy`/`YY` is the two-digit year.
    Year(usize),
    YearTwoDigit,
    /// `xxxx`: ISO week-based year; `ww`: ISO week.
    WeekYear(usize),
    Week(usize),
    Month(usize),
    MonthShortName,
    MonthName,
    Day(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    /// `S`..: fraction of a second, that many digits.
    Fraction(usize),
    Literal(String),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Template {
    /// Parses `source`. Errors name the template and say what is wrong.
    pub fn parse(source: &str) -> Result<Self> {
        let bad = |why: String| Error::Template { template: source.to_string(), why };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(start) = rest.find("%{") {
            literal.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                bad(format!("'%{{' at byte {} is not closed by '}}'", source.len() - rest.len() + start))
            })?;
            let inner = &after[..end];
            let raw = format!("%{{{inner}}}");
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            if let Some(pattern) = inner.strip_prefix('+') {
                parts.push(Part::Date(parse_joda(pattern).map_err(bad)?, raw));
            } else {
                let field = FieldRef::parse(inner).map_err(|e| bad(e.to_string()))?;
                parts.push(Part::Field(field, raw));
            }
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { source: source.to_string(), parts })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Appends the rendering for `event` to `out`; dates are taken from `@timestamp` in `time_zone`.
    pub fn render(&self, event: &Event, time_zone: Tz, out: &mut String) {
        self.render_with(|field| event.get(field), || event.timestamp(), time_zone, out);
    }

    /// Whether the template names a field (`%{[host][name]}`), not only the time.
    pub fn reads_fields(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Field(..)))
    }

    /// Whether the rendering for a time can differ from that for another time of the same minute (in
    /// `time_zone`): a second or a fraction of one is written.
    pub fn reads_seconds(&self) -> bool {
        let seconds = |t: &DateToken| matches!(t, DateToken::Second(_) | DateToken::Fraction(_));
        self.parts.iter().any(|part| matches!(part, Part::Date(tokens, _) if tokens.iter().any(seconds)))
    }

    /// [`Template::render`] for an event whose `@timestamp` is `time`, of a template that reads no
    /// field (see [`Template::reads_fields`]; a field would render as unresolved).
    pub fn render_at(&self, time: DateTime<Utc>, time_zone: Tz, out: &mut String) {
        debug_assert!(!self.reads_fields(), "{} reads a field", self.source);
        self.render_with(|_| None, || Some(time), time_zone, out);
    }

    fn render_with<'v>(
        &self,
        field: impl Fn(&FieldRef) -> Option<&'v Value>,
        timestamp: impl FnOnce() -> Option<DateTime<Utc>>,
        time_zone: Tz,
        out: &mut String,
    ) {
        // Read at most once per render, only if a date part needs it.
        let mut timestamp = Some(timestamp);
        let mut time = None;
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Field(f, raw) => match field(f) {
                    None | Some(Value::Null) => out.push_str(raw),
                    Some(value) => write_value(value, out),
                },
                Part::Date(tokens, raw) => {
                    if let Some(read) = timestamp.take() {
                        time = read().map(|t| t.with_timezone(&time_zone));
                    }
                    match time {
                        Some(t) => tokens.iter().for_each(|token| write_date(token, &t, out)),
                        None => out.push_str(raw),
                    }
                }
            }
        }
    }

    /// Convenience for tests and one-off use: the rendering as a new `String`.
    pub fn render_to_string(&self, event: &Event, time_zone: Tz) -> String {
        let mut out = String::new();
        self.render(event, time_zone, &mut out);
        out
    }
}

/// How a template's rendered names can be read back: which names it makes and the time in each, for
/// retention (`nginx_access-%{+YYYY.MM.dd}` made `nginx_access-2026.11.21`, a day from 2026-11-21 00:00).
#[derive(Debug, Clone)]
pub struct DatedNames {
    regex: regex::Regex,
    /// The date token of each capture group, in order.
    fields: Vec<DateToken>,
}

/// The unit a dated name covers, from its finest date token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Template {
    /// The names this template renders and the dates in them; `None` if it has no date part or a date
    /// token that cannot be read back (a month name, say), so such indices are never judged by date.
    pub fn dated_names(&self) -> Option<DatedNames> {
        let mut pattern = String::from("^");
        let mut fields = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => pattern.push_str(&regex::escape(s)),
                Part::Field(..) => pattern.push_str(".+?"),
                Part::Date(tokens, _) => {
                    for token in tokens {
                        let re = match token {
                            DateToken::Year(w) | DateToken::WeekYear(w) => format!("(\\d{{{}}})", (*w).max(4)),
                            DateToken::Month(_) | DateToken::Day(_) | DateToken::Hour(_) | DateToken::Week(_) => {
                                "(\\d{1,2})".to_string()
                            }
                            DateToken::Literal(s) => {
                                pattern.push_str(&regex::escape(s));
                                continue;
                            }
                            _ => return None,
                        };
                        pattern.push_str(&re);
                        fields.push(token.clone());
                    }
                }
            }
        }
        pattern.push('$');
        if fields.is_empty() {
            return None;
        }
        let regex = regex::Regex::new(&pattern).ok()?;
        Some(DatedNames { regex, fields })
    }
}

impl DatedNames {
    /// The start of the period `name` covers (read in `time_zone`, as the route wrote it) and the period,
    /// if this template made the name.
    pub fn parse(&self, name: &str, time_zone: Tz) -> Option<(chrono::DateTime<chrono::Utc>, Period)> {
        use chrono::{NaiveDate, TimeZone};
        let caps = self.regex.captures(name)?;
        let (mut year, mut month, mut day, mut hour, mut week) = (None, None, None, None, None);
        for (token, m) in self.fields.iter().zip(caps.iter().skip(1)) {
            let n: u32 = m?.as_str().parse().ok()?;
            match token {
                DateToken::Year(_) | DateToken::WeekYear(_) => year = Some(n as i32),
                DateToken::Month(_) => month = Some(n),
                DateToken::Day(_) => day = Some(n),
                DateToken::Hour(_) => hour = Some(n),
                DateToken::Week(_) => week = Some(n),
                _ => {}
            }
        }
        let year = year?;
        let (date, period) = match (month, day, week) {
            (Some(m), Some(d), _) => {
                (NaiveDate::from_ymd_opt(year, m, d)?, if hour.is_some() { Period::Hour } else { Period::Day })
            }
            (Some(m), None, _) => (NaiveDate::from_ymd_opt(year, m, 1)?, Period::Month),
            (None, None, Some(w)) => (NaiveDate::from_isoywd_opt(year, w, chrono::Weekday::Mon)?, Period::Week),
            (None, None, None) => (NaiveDate::from_ymd_opt(year, 1, 1)?, Period::Year),
            _ => return None,
        };
        let local = date.and_hms_opt(hour.unwrap_or(0), 0, 0)?;
        let start = time_zone.from_local_datetime(&local).earliest()?.with_timezone(&chrono::Utc);
        Some((start, period))
    }
}

impl Period {
    /// The end of the period that starts at `start`.
    pub fn end(self, start: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        use chrono::Months;
        match self {
            Period::Hour => start + chrono::Duration::hours(1),
            Period::Day => start + chrono::Duration::days(1),
            Period::Week => start + chrono::Duration::weeks(1),
            Period::Month => start.checked_add_months(Months::new(1)).unwrap_or(start),
            Period::Year => start.checked_add_months(Months::new(12)).unwrap_or(start),
        }
    }
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn write_date<T: Datelike + Timelike>(token: &DateToken, t: &T, out: &mut String) {
    match *token {
        DateToken::Year(w) => push_padded(out, t.year().into(), w),
        DateToken::YearTwoDigit => push_padded(out, t.year().rem_euclid(100).into(), 2),
        DateToken::WeekYear(w) => push_padded(out, t.iso_week().year().into(), w),
        DateToken::Week(w) => push_padded(out, t.iso_week().week().into(), w),
        DateToken::Month(w) => push_padded(out, t.month().into(), w),
        DateToken::MonthShortName => out.push_str(&MONTHS[t.month0() as usize][..3]),
        DateToken::MonthName => out.push_str(MONTHS[t.month0() as usize]),
        DateToken::Day(w) => push_padded(out, t.day().into(), w),
        DateToken::Hour(w) => push_padded(out, t.hour().into(), w),
        DateToken::Minute(w) => push_padded(out, t.minute().into(), w),
        DateToken::Second(w) => push_padded(out, t.second().into(), w),
        DateToken::Fraction(n) => {
            let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
            out.push_str(&nanos[..n.min(9)]);
        }
        DateToken::Literal(ref s) => out.push_str(s),
    }
}

/// `n` in decimal, zero-padded to `width` digits, as `{:0width$}` writes it (a sign counts in the
/// width). By hand, because `fmt` was half of rendering a daily index name, once per event.
fn push_padded(out: &mut String, n: i64, width: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let sign = usize::from(n < 0);
    if n < 0 {
        out.push('-');
    }
    for _ in (digits.len() - at + sign)..width {
        out.push('0');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Parses a Joda pattern: runs of one letter are fields, `'text'` is literal (`''` is a quote), and
/// anything else is literal.
fn parse_joda(pattern: &str) -> Result<Vec<DateToken>, String> {
    if pattern.is_empty() {
        return Err("empty date pattern after '+'".into());
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let mut j = i + 1;
            if chars.get(j) == Some(&'\'') {
                literal.push('\'');
                i = j + 1;
                continue;
            }
            loop {
                match chars.get(j) {
                    None => return Err(format!("unclosed quote in date pattern {pattern:?}")),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        literal.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&ch) => {
                        literal.push(ch);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal.push(c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let token = match (c, n) {
            ('y' | 'Y', 2) => DateToken::YearTwoDigit,
            ('y' | 'Y', _) => DateToken::Year(n),
            ('x', _) => DateToken::WeekYear(n),
            ('w', _) => DateToken::Week(n),
            ('M', 1 | 2) => DateToken::Month(n),
            ('M', 3) => DateToken::MonthShortName,
            ('M', _) => DateToken::MonthName,
            ('d', _) => DateToken::Day(n),
            ('H', _) => DateToken::Hour(n),
            ('m', _) => DateToken::Minute(n),
            ('s', _) => DateToken::Second(n),
            ('S', _) => DateToken::Fraction(n),
            _ => {
                return Err(format!(
                    "unsupported date token {:?}; use yyyy/YYYY, yy, xxxx, ww, MM, MMM, dd, HH, mm, ss, SSS or 'quoted text'",
                    c.to_string().repeat(n)
                ))
            }
        };
        if !literal.is_empty() {
            tokens.push(DateToken::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(token);
        i += n;
    }
    if !literal.is_empty() {
        tokens.push(DateToken::Literal(literal));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Event {
        Event::from_map(v.as_object().unwrap().clone())
    }

    fn render(template: &str, e: &Event, tz: Tz) -> String {
        Template::parse(template).unwrap().render_to_string(e, tz)
    }

    #[test]
    fn daily_index_in_utc_and_other_zones() {
        let e = event(json!({"@timestamp": "2026-11-21T23:30:00.000Z"}));
        assert_eq!(render("nginx_access-%{+YYYY.MM.dd}", &e, Tz::UTC), "nginx_access-2026.11.21");
        assert_eq!(render("nginx_access-%{+yyyy.MM.dd}", &e, Tz::Europe__Berlin), "nginx_access-2026.11.22");
        assert_eq!(render("x-%{+YYYY.MM.dd}", &e, Tz::America__New_York), "x-2026.11.21");
        let e = event(json!({"@timestamp": "2026-11-21T02:30:00.000Z"}));
        assert_eq!(render("x-%{+YYYY.MM.dd}", &e, Tz::America__New_York), "x-2026.11.20");
        assert_eq!(render("x-%{+YYYY.MM.dd.HH}", &e, Tz::Asia__Kolkata), "x-2026.11.21.08");
        assert_eq!(render("%{+HH:mm:ss.SSS}", &e, Tz::UTC), "02:30:00.000");
        assert_eq!(render("%{+yy-M-d MMM MMMM}", &e, Tz::UTC), "26-11-21 Nov November");
        assert_eq!(render("w-%{+xxxx.ww}", &e, Tz::UTC), "w-2026.47");
        assert_eq!(render("%{+'week'ww''}", &e, Tz::UTC), "week47'");
    }

    #[test]
    fn padded_numbers_as_fmt_writes_them() {
        for n in [0i64, 7, -7, 42, 2026, -2026, 123_456, i64::MIN, i64::MAX] {
            for width in [0, 1, 2, 4, 6] {
                let mut out = String::from("x");
                push_padded(&mut out, n, width);
                assert_eq!(out, format!("x{n:0width$}"), "{n} in {width}");
            }
        }
    }

    #[test]
    fn fields_and_literals() {
        let e = event(
            json!({"@timestamp": "2026-11-21T08:00:00Z", "fields": {"service": "shop", "n": 3, "l": ["a", "b"]}}),
        );
        assert_eq!(render("%{[fields][service]}-%{+YYYY.MM}", &e, Tz::UTC), "shop-2026.11");
        assert_eq!(render("%{fields.n}/%{[fields][l]}", &e, Tz::UTC), "3/a,b");
        assert_eq!(render("static", &e, Tz::UTC), "static");
        assert_eq!(render("a%b{c}", &e, Tz::UTC), "a%b{c}");
        assert_eq!(render("logs-%{[fields][missing]}", &e, Tz::UTC), "logs-%{[fields][missing]}");
        let no_time = event(json!({"message": "x"}));
        assert_eq!(render("logs-%{+YYYY}", &no_time, Tz::UTC), "logs-%{+YYYY}");
    }

    #[test]
    fn bad_templates_are_rejected_at_load() {
        for bad in ["x-%{+YYYY.qq}", "x-%{[a]", "x-%{+}", "x-%{}", "x-%{+'open}", "%{[a][}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let err = Template::parse("nginx-%{+YYYY.MM.DD}").unwrap_err().to_string();
        assert!(err.contains("\"DD\"") && err.contains("nginx-%{+YYYY.MM.DD}"), "{err}");
    }

    #[test]
    fn dated_names_are_read_back() {
        let t = Template::parse("nginx_access-%{+YYYY.MM.dd}").unwrap().dated_names().unwrap();
        let (start, period) = t.parse("nginx_access-2026.11.21", Tz::UTC).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-11-21T00:00:00+00:00");
        assert_eq!(period, Period::Day);
        assert_eq!(period.end(start).to_rfc3339(), "2026-11-22T00:00:00+00:00");
        for other in
            ["nginx_access-2026.11", "nginx_error-2026.11.21", "nginx_access-2026.13.01", "xnginx_access-2026.11.21"]
        {
            assert!(t.parse(other, Tz::UTC).is_none(), "{other}");
        }
        let (start, _) = t.parse("nginx_access-2026.11.21", Tz::Asia__Tokyo).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-11-20T15:00:00+00:00");
        let m = Template::parse("%{[service]}-%{+YYYY.MM}").unwrap().dated_names().unwrap();
        assert_eq!(m.parse("shop-2026.11", Tz::UTC).unwrap().1, Period::Month);
        let w = Template::parse("w-%{+xxxx.ww}").unwrap().dated_names().unwrap();
        assert_eq!(w.parse("w-2026.47", Tz::UTC).unwrap().0.to_rfc3339(), "2026-11-16T00:00:00+00:00");
        assert!(Template::parse("static").unwrap().dated_names().is_none());
        assert!(Template::parse("x-%{+MMM}").unwrap().dated_names().is_none());
    }

    proptest::proptest! {
        #[test]
        fn parser_and_renderer_never_panic(s in "\\PC{0,40}", t in "(%\\{[+\\[\\]a-zA-Z.'%{}]{0,12}\\}?|[a-z.\\-]{0,5}){0,6}") {
            let e = event(json!({"@timestamp": "2026-11-21T08:00:00Z", "a": {"b": 1}}));
            for input in [s.as_str(), t.as_str()] {
                if let Ok(tpl) = Template::parse(input) {
                    let _ = tpl.render_to_string(&e, Tz::UTC);
                }
            }
        }
    }
}
