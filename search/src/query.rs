//! The search box's language, a subset of Lucene's query string syntax as Kibana users type it:
//!
//! - `error` or `"connection refused"`: the word or phrase anywhere in the document (its raw JSON);
//! - `url.path:/api/users` or `url.path:"/api/users"`: the field (dotted path) equals the value;
//!   `*` in a value matches any run of characters (`url.path:/api/*`);
//! - `http.response.status_code:[500 TO 599]`, `{a TO b}` (exclusive), `>=500`, `<1000`, `*` as an open
//!   end; numbers compare as numbers, RFC 3339 dates as instants, anything else as text;
//! - `AND`, `OR`, `NOT` (or `-term`), parentheses; terms side by side mean AND.
//!
//! Matching is case-sensitive, as on Elasticsearch `keyword` fields. [`Query::literals`] are strings
//! every matching line must contain, so a scan can skip most lines with a byte search before parsing.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    All,
    /// A word or phrase anywhere in the raw document.
    Text(String),
    /// `field:value`, with `*` wildcards.
    Equals {
        field: String,
        value: String,
    },
    /// `field:[lo TO hi]`; `None` is open.
    Range {
        field: String,
        lo: Option<(String, bool)>,
        hi: Option<(String, bool)>,
    },
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Phrase(String),
    Open,
    Close,
    And,
    Or,
    Not,
}

/// Parses `text`; an empty query matches everything. Errors say where the query is wrong.
pub fn parse(text: &str) -> Result<Query, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Ok(Query::All);
    }
    let mut parser = Parser { tokens, at: 0 };
    let query = parser.or()?;
    if parser.at < parser.tokens.len() {
        return Err(format!("unexpected {:?} at token {}", parser.tokens[parser.at], parser.at + 1));
    }
    Ok(query)
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                tokens.push(Token::Phrase(quoted(&mut chars).ok_or_else(|| format!("unclosed quote at {i}"))?));
            }
            '-' if tokens.last().is_none_or(|t| !matches!(t, Token::Word(w) if w.ends_with(':'))) => {
                chars.next();
                tokens.push(Token::Not);
            }
            _ => {
                let mut word = String::new();
                let mut depth = 0;
                while let Some(&(_, c)) = chars.peek() {
                    if c == '[' || c == '{' {
                        depth += 1;
                    } else if (c == ']' || c == '}') && depth > 0 {
                        depth -= 1;
                        word.push(c);
                        chars.next();
                        continue;
                    }
                    if depth == 0 && (c.is_whitespace() || c == '(' || c == ')') {
                        break;
                    }
                    if depth == 0 && c == '"' && word.ends_with(':') {
                        chars.next();
                        let phrase = quoted(&mut chars).ok_or_else(|| format!("unclosed quote after {word}"))?;
                        word.push('"');
                        word.push_str(&phrase);
                        word.push('"');
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                if depth > 0 {
                    return Err(format!("unclosed range in {word}"));
                }
                tokens.push(match word.as_str() {
                    "AND" | "&&" => Token::And,
                    "OR" | "||" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Word(word),
                });
            }
        }
    }
    Ok(tokens)
}

fn quoted(chars: &mut std::iter::Peekable<std::str::CharIndices>) -> Option<String> {
    let mut out = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Query, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().unwrap_or(Query::All) } else { Query::Or(parts) })
    }

    fn and(&mut self) -> Result<Query, String> {
        let mut parts = vec![self.not()?];
        loop {
            match self.peek() {
                Some(Token::And) => {
                    self.at += 1;
                    parts.push(self.not()?);
                }
                Some(Token::Or | Token::Close) | None => break,
                Some(_) => parts.push(self.not()?),
            }
        }
        Ok(if parts.len() == 1 { parts.pop().unwrap_or(Query::All) } else { Query::And(parts) })
    }

    fn not(&mut self) -> Result<Query, String> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Ok(Query::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Query, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("the query ends where a term was expected")?;
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err("a ( is not closed".into());
                }
                self.at += 1;
                Ok(inner)
            }
            Token::Phrase(p) => Ok(Query::Text(p)),
            Token::Word(w) => term(&w),
            other => Err(format!("unexpected {other:?} where a term was expected")),
        }
    }
}

fn term(word: &str) -> Result<Query, String> {
    let Some((field, value)) = word.split_once(':') else { return Ok(Query::Text(word.to_owned())) };
    if field.is_empty() {
        return Err(format!("{word}: no field before ':'"));
    }
    let field = field.to_owned();
    if let Some(phrase) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return Ok(Query::Equals { field, value: phrase.replace('*', "\\*") });
    }
    if let Some(range) = range(value)? {
        let (lo, hi) = range;
        return Ok(Query::Range { field, lo, hi });
    }
    for (op, lo_side, inclusive) in [(">=", true, true), ("<=", false, true), (">", true, false), ("<", false, false)] {
        if let Some(bound) = value.strip_prefix(op) {
            let bound = Some((bound.to_owned(), inclusive));
            return Ok(if lo_side {
                Query::Range { field, lo: bound, hi: None }
            } else {
                Query::Range { field, lo: None, hi: bound }
            });
        }
    }
    if value.is_empty() {
        return Err(format!("{word}: no value after ':'"));
    }
    Ok(Query::Equals { field, value: value.to_owned() })
}

type Bound = Option<(String, bool)>;

fn range(value: &str) -> Result<Option<(Bound, Bound)>, String> {
    let (lo_inclusive, rest) = match value.chars().next() {
        Some('[') => (true, &value[1..]),
        Some('{') => (false, &value[1..]),
        _ => return Ok(None),
    };
    let (body, hi_inclusive) = match rest.chars().last() {
        Some(']') => (&rest[..rest.len() - 1], true),
        Some('}') => (&rest[..rest.len() - 1], false),
        _ => return Err(format!("{value}: a range ends with ] or }}")),
    };
    let (lo, hi) = body.split_once(" TO ").ok_or_else(|| format!("{value}: a range is [LOW TO HIGH]"))?;
    let bound = |s: &str, inclusive| (s.trim() != "*").then(|| (s.trim().to_owned(), inclusive));
    Ok(Some((bound(lo, lo_inclusive), bound(hi, hi_inclusive))))
}

impl Query {
    /// Whether the document (`raw` JSON text, parsed `doc`) matches.
    pub fn matches(&self, raw: &str, doc: &Value) -> bool {
        match self {
            Query::All => true,
            Query::Text(t) => raw.contains(t.as_str()),
            Query::Equals { field, value } => values(doc, field).iter().any(|v| equals(v, value)),
            Query::Range { field, lo, hi } => values(doc, field).iter().any(|v| in_range(v, lo, hi)),
            Query::And(parts) => parts.iter().all(|q| q.matches(raw, doc)),
            Query::Or(parts) => parts.iter().any(|q| q.matches(raw, doc)),
            Query::Not(q) => !q.matches(raw, doc),
        }
    }

    /// Strings every matching document's raw JSON contains (as JSON writes them), for a byte prefilter.
    pub fn literals(&self) -> Vec<String> {
        match self {
            Query::Text(t) => json_literal(t).into_iter().collect(),
            Query::Equals { value, .. } => value
                .split('*')
                .filter(|piece| !piece.contains('\\'))
                .max_by_key(|piece| piece.len())
                .and_then(json_literal)
                .into_iter()
                .collect(),
            Query::And(parts) => parts.iter().flat_map(Query::literals).collect(),
            _ => Vec::new(),
        }
    }
}

/// `s` as it appears inside a JSON string, if that is `s` itself (no character JSON escapes).
fn json_literal(s: &str) -> Option<String> {
    (!s.is_empty() && !s.chars().any(|c| c == '"' || c == '\\' || c.is_control())).then(|| s.to_owned())
}

/// The values at a dotted path: `url.path` is `{"url":{"path":…}}` or a flat `{"url.path":…}`; arrays
/// on the way contribute each element.
fn values<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect(doc, path, &mut out);
    out
}

fn collect<'a>(doc: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match doc {
        Value::Array(items) => items.iter().for_each(|item| collect(item, path, out)),
        Value::Object(map) => {
            if let Some(v) = map.get(path) {
                match v {
                    Value::Array(items) => out.extend(items.iter()),
                    v => out.push(v),
                }
            }
            let mut split = path.char_indices().filter(|(_, c)| *c == '.').map(|(i, _)| i);
            for dot in split.by_ref() {
                if let Some(inner) = map.get(&path[..dot]) {
                    collect(inner, &path[dot + 1..], out);
                }
            }
        }
        _ => {}
    }
}

fn text_of(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

fn equals(v: &Value, pattern: &str) -> bool {
    let Some(text) = text_of(v) else { return false };
    if !pattern.contains('*') {
        return text == pattern;
    }
    if pattern.contains("\\*") {
        return text == pattern.replace("\\*", "*");
    }
    wildcard(&text, pattern)
}

fn wildcard(text: &str, pattern: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

fn compare(v: &Value, bound: &str) -> Option<Ordering> {
    if let (Some(n), Ok(b)) = (v.as_f64(), bound.parse::<f64>()) {
        return n.partial_cmp(&b);
    }
    let text = text_of(v)?;
    if let (Some(a), Some(b)) = (instant_ms(&text), instant_ms(bound)) {
        return Some(a.cmp(&b));
    }
    if let (Ok(a), Ok(b)) = (text.parse::<f64>(), bound.parse::<f64>()) {
        return a.partial_cmp(&b);
    }
    Some(text.as_ref().cmp(bound))
}

fn in_range(v: &Value, lo: &Bound, hi: &Bound) -> bool {
    let lo_ok = lo.as_ref().is_none_or(|(b, inclusive)| {
        matches!(compare(v, b), Some(Ordering::Greater)) || (*inclusive && compare(v, b) == Some(Ordering::Equal))
    });
    let hi_ok = hi.as_ref().is_none_or(|(b, inclusive)| {
        matches!(compare(v, b), Some(Ordering::Less)) || (*inclusive && compare(v, b) == Some(Ordering::Equal))
    });
    lo_ok && hi_ok
}

/// Milliseconds since the epoch of an RFC 3339 time, or of a bare date (`2026-12-04`, midnight UTC).
pub fn instant_ms(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(q: &str, doc: &Value) -> bool {
        parse(q).unwrap().matches(&doc.to_string(), doc)
    }

    #[test]
    fn fields_phrases_and_boolean_operators() {
        let doc = json!({"url": {"path": "/api/users"}, "http.response.status_code": 503, "message": "GET /api/users x",
                         "tags": ["access", "web"], "@timestamp": "2026-12-04T10:00:00.000Z"});
        assert!(hit("url.path:/api/users", &doc));
        assert!(hit("url.path:\"/api/users\"", &doc));
        assert!(!hit("url.path:/api", &doc));
        assert!(hit("url.path:/api/*", &doc));
        assert!(hit("tags:web AND url.path:/api/users", &doc));
        assert!(hit("tags:nope OR \"GET /api\"", &doc));
        assert!(!hit("NOT tags:web", &doc));
        assert!(!hit("-tags:web", &doc));
        assert!(hit("GET users", &doc));
        assert!(hit("(tags:nope OR tags:access) url.path:/api/users", &doc));
        assert!(hit("http.response.status_code:[500 TO 599]", &doc));
        assert!(!hit("http.response.status_code:{503 TO 599]", &doc));
        assert!(hit("http.response.status_code:>=503", &doc));
        assert!(!hit("http.response.status_code:<503", &doc));
        assert!(hit("@timestamp:[2026-12-04 TO *]", &doc));
        assert!(!hit("@timestamp:<2026-12-04T09:59:00Z", &doc));
        assert!(hit("", &doc));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(parse("\"open").unwrap_err().contains("quote"));
        assert!(parse("(a OR b").unwrap_err().contains("not closed"));
        assert!(parse("x:[1 TO").unwrap_err().contains("range"));
        assert!(parse(":v").unwrap_err().contains("no field"));
    }

    #[test]
    fn literals_only_for_required_terms() {
        assert_eq!(parse("url.path:/a/b* AND x").unwrap().literals(), vec!["/a/b", "x"]);
        assert!(parse("a OR b").unwrap().literals().is_empty());
        assert!(parse("NOT a").unwrap().literals().is_empty());
    }
}
