//! Durations: `"500ms"`, `"1.5s"`, `"24h"`, or a bare number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `"500ms"`, `"10s"`, `"1.5s"`, `"5m"`, `"24h"`, `"7d"` or `"7"` (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// For `#[serde(deserialize_with = "duration")]`: a duration string or an integer of seconds.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
        Raw::Text(s) => parse_duration(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid duration {s:?}; use e.g. \"500ms\", \"10s\", \"5m\", \"24h\""))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_numbers() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("7x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn deserializes_strings_and_integers() {
        #[derive(Deserialize)]
        struct S {
            #[serde(deserialize_with = "duration")]
            d: Duration,
        }
        let parse = |json: &str| serde_json::from_str::<S>(json).map(|s| s.d);
        assert_eq!(parse(r#"{"d":"250ms"}"#).unwrap(), Duration::from_millis(250));
        assert_eq!(parse(r#"{"d":30}"#).unwrap(), Duration::from_secs(30));
        assert!(parse(r#"{"d":"1 fortnight"}"#).unwrap_err().to_string().contains("invalid duration"));
    }
}
