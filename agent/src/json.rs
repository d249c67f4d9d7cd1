//! Writing JSON text by hand for the envelope, the agent's per-line hot path.
//!
//! [`string`] escapes exactly as `serde_json` does (`"`, `\`, and control bytes; `\n`, `\t` and friends
//! by name, the rest as `\u00XX`), but looks at eight bytes at a time and copies the runs between the
//! bytes that need escaping: a log line holds a handful of those at most, and serde_json's byte-by-byte
//! loop was about a tenth of the agent's CPU.

/// Appends `s` as a JSON string literal.
pub(crate) fn string(buf: &mut Vec<u8>, s: &str) {
    string_bytes(buf, s.as_bytes());
}

/// Appends `bytes` as a JSON string literal, escaping as [`string`] does, and says whether they were all
/// ASCII. Only ASCII bytes are ever escaped, so for bytes that are valid UTF-8 this is [`string`]'s
/// text; the caller checks UTF-8 only when this returns false, instead of in a pass of its own.
pub(crate) fn string_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let mut high = 0u64;
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    // `bytes[run..i]` needs no escaping and is not copied yet.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let special = match bytes.get(i..i + 8) {
            Some(word) => {
                let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                high |= word;
                let mask = needs_escape(word);
                if mask == 0 {
                    i += 8;
                    continue;
                }
                // The lowest flagged byte is exact: a false flag only ever sits above a true one.
                i + (mask.trailing_zeros() / 8) as usize
            }
            None if is_special(bytes[i]) => i,
            None => {
                high |= u64::from(bytes[i]);
                i += 1;
                continue;
            }
        };
        buf.extend_from_slice(&bytes[run..special]);
        escape(buf, bytes[special]);
        i = special + 1;
        run = i;
    }
    buf.extend_from_slice(&bytes[run..]);
    buf.push(b'"');
    high & HIGHS == 0
}

/// Appends `value` as `serde_json` writes it (numbers, maps of configured `fields`).
pub(crate) fn value<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail, and these values have string keys.
    serde_json::to_writer(buf, value).expect("JSON value serializes");
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A word with the high bit set in (at least) the lowest byte of `word` that JSON must escape, and
/// zero when no byte must be: the bit tricks for "has a zero byte" and "has a byte less than n".
fn needs_escape(word: u64) -> u64 {
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    control | zero_byte(word ^ (ONES * u64::from(b'"'))) | zero_byte(word ^ (ONES * u64::from(b'\\')))
}

fn is_special(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn escape(buf: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let named = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            buf.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            return;
        }
    };
    buf.extend_from_slice(&[b'\\', named]);
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
    }

    #[test]
    fn string_bytes_says_whether_the_bytes_were_ascii() {
        for (bytes, ascii) in [
            (&b""[..], true),
            (b"plain \"quoted\" line of some length", true),
            (b"caf\xc3\xa9 in a line longer than a word", false),
            (b"tail \xff", false),
            (b"\xff", false),
            (b"\x7f\x00\x1f", true),
        ] {
            let mut buf = Vec::new();
            assert_eq!(string_bytes(&mut buf, bytes), ascii, "{bytes:?}");
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
