//! Logstash's date filter formats (Joda-Time patterns such as `dd/MMM/yyyy:HH:mm:ss Z`) as the strftime
//! formats logpipe's date filter reads (`%d/%b/%Y:%H:%M:%S %z`).

/// The strftime equivalent of a Joda pattern; `ISO8601`, `UNIX` and `UNIX_MS` are kept. An error names
/// the letters with no equivalent.
pub fn to_strftime(joda: &str) -> Result<String, String> {
    if matches!(joda, "ISO8601" | "UNIX" | "UNIX_MS") {
        return Ok(joda.to_string());
    }
    if joda == "TAI64N" {
        return Err("TAI64N has no equivalent".into());
    }
    let chars: Vec<char> = joda.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a single quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                push_literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let piece = match (c, n) {
            ('y' | 'Y' | 'u', 2) => "%y",
            ('y' | 'Y' | 'u', _) => "%Y",
            ('x', _) => "%G",
            ('w', _) => "%V",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', _) => "%H",
            ('k', _) => "%H",
            ('h', _) => "%I",
            ('K', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            // Joda reads a fraction of up to nine digits whatever the number of `S`; chrono's `%.f` does the
            // same but takes the dot with it. Without a dot, only exactly 3, 6 or 9 digits translate.
            ('S', _) if out.ends_with('.') => {
                out.pop();
                "%.f"
            }
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('S', _) => {
                return Err(format!(
                    "`{}` (a fraction of a second) translates only after a `.`, or as 3, 6 or 9 digits",
                    "S".repeat(n)
                ))
            }
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('e', _) => "%u",
            ('Z', 1) => "%z",
            ('Z', 2) => "%:z",
            ('Z', _) => return Err(format!("`{}` (a time zone id) has no strftime equivalent", "Z".repeat(n))),
            ('z', _) => return Err(format!("`{}` (a time zone name) has no strftime equivalent", "z".repeat(n))),
            ('G', _) => return Err("`G` (era) has no strftime equivalent".into()),
            ('C', _) => "%C",
            _ => return Err(format!("`{}` has no strftime equivalent", c.to_string().repeat(n))),
        };
        out.push_str(piece);
        i += n;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::to_strftime;

    #[test]
    fn common_logstash_formats() {
        assert_eq!(to_strftime("dd/MMM/yyyy:HH:mm:ss Z").unwrap(), "%d/%b/%Y:%H:%M:%S %z");
        assert_eq!(to_strftime("yyyy-MM-dd HH:mm:ss,SSS").unwrap(), "%Y-%m-%d %H:%M:%S,%3f");
        assert_eq!(to_strftime("yyyy/MM/dd HH:mm:ss").unwrap(), "%Y/%m/%d %H:%M:%S");
        assert_eq!(to_strftime("yyyy-MM-dd'T'HH:mm:ss.SSSZZ").unwrap(), "%Y-%m-%dT%H:%M:%S%.f%:z");
        assert_eq!(to_strftime("HH:mm:ss.SS").unwrap(), "%H:%M:%S%.f");
        assert!(to_strftime("HH:mm:ss,SS").is_err());
        assert_eq!(to_strftime("MMM  d HH:mm:ss").unwrap(), "%b  %d %H:%M:%S");
        assert_eq!(to_strftime("ISO8601").unwrap(), "ISO8601");
        assert!(to_strftime("yyyy-MM-dd ZZZ").is_err());
    }

    /// As Joda reads them: `.S` to `.SSS` are a fraction of a second, whatever the digits given.
    #[test]
    fn fractions_are_fractions_not_nanoseconds() {
        let read = |joda: &str, s: &str| {
            let format = to_strftime(joda).unwrap();
            chrono::NaiveTime::parse_from_str(s, &format).unwrap_or_else(|e| panic!("{joda} {s}: {e}")).to_string()
        };
        assert_eq!(read("HH:mm:ss.SS", "10:00:00.12"), "10:00:00.120");
        assert_eq!(read("HH:mm:ss.S", "10:00:00.5"), "10:00:00.500");
        assert_eq!(read("HH:mm:ss.SSS", "10:00:00.123456"), "10:00:00.123456");
        assert_eq!(read("HH:mm:ss,SSS", "10:00:00,123"), "10:00:00.123");
    }
}
