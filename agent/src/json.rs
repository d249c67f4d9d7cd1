//! Writing the envelope's JSON text, the agent's per-line hot path.
//!
//! [`string`] escapes with `sonic-rs`, exactly as `serde_json` does (`"`, `\`, and control bytes; `\n`,
//! `\t` and friends by name, the rest as `\u00XX`), thirty-two bytes at a time (sixteen on ARM), copying
//! them to the output as it scans. A log line holds a handful of bytes to escape at most; escaping the
//! message was an eighth of the agent's CPU with a hand-written loop over eight-byte words, and takes 0.7
//! of that loop's time with `sonic-rs` (docs/PERFORMANCE.md, "The agent").

/// Appends `s` as a JSON string literal.
pub(crate) fn string(buf: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    sonic_rs::to_writer(buf, s).expect("a string serializes");
}

/// Appends `value` as `serde_json` writes it (numbers, maps of configured `fields`).
pub(crate) fn value<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail, and these values have string keys.
    serde_json::to_writer(buf, value).expect("JSON value serializes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> String {
        let mut buf = Vec::new();
        string(&mut buf, s);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn escapes_as_serde_json_does() {
        for s in [
            "",
            "plain",
            r#"1.2.3.4 - - [21/Nov/2026:08:15:30 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8""#,
            "a\0b\u{1f}c\u{7f}d\\e\"f\n\r\t\u{8}\u{c}",
            "\"\"\"\"\"\"\"\"\"",
            "é日本語\"🙂\\",
            "seven b\"",
            "exactly8\"",
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        // Every ASCII byte, and an escape on each side of the 16- and 32-byte steps.
        let ascii: String = (0u8..0x80).map(char::from).collect();
        assert_eq!(ours(&ascii), serde_json::to_string(&ascii).unwrap());
        for at in 0..70 {
            let s = format!("{}\"{}", "x".repeat(at), "y".repeat(70 - at));
            assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_does(
            s in proptest::collection::vec(prop_oneof![
                Just('"'), Just('\\'), Just('\n'), Just('\0'), Just('\u{1f}'), Just('\u{7f}'), Just('é'),
                Just('🙂'), proptest::char::range('a', 'z'), proptest::char::range(' ', '~')
            ], 0..80).prop_map(|cs| cs.into_iter().collect::<String>())
        ) {
            prop_assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
