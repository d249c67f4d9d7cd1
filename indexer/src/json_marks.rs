//! One pass over a record's bytes, sixteen at a time, before the split walks it: whether it has a control
//! byte, how many `{` and `[` it has, and where its `"` and `\` bytes are, one bit per byte. The walk
//! then finds the end of each string from those bits instead of scanning the string again.
//!
//! Why: the split's walk skipped each string eight bytes at a time (`quote_or_backslash`), about 25
//! strings per agent envelope, and with its set-up per string that was a third of the split's
//! instructions (callgrind). The vectors are SSE2's, through the `wide` crate's safe types (this
//! workspace forbids `unsafe`); on a machine without them `wide` falls back to plain code, which gives the
//! same answers.

use wide::u8x16;

/// The longest record whose marks are kept (in [`Marks::words`], on the stack); the walk over a longer
/// one finds each string's end with [`quote_or_backslash`] instead.
const MAX_MARKED: usize = 2048;
const WORDS: usize = MAX_MARKED / 64;

/// Where the `"` and `\` bytes of a record are, as bits, when it is no longer than [`MAX_MARKED`].
pub(crate) struct Marks {
    words: [u64; WORDS],
    /// Whether `words` covers the whole record.
    covered: bool,
}

impl Marks {
    /// No marks: every search scans the bytes (for texts the survey did not see).
    pub(crate) const NONE: Marks = Marks { words: [0; WORDS], covered: false };

    /// The marks of `b`, or `None` when `b` has a control byte or more than `max_brackets` bytes that are
    /// `{` or `[` (counted anywhere, in strings too).
    pub(crate) fn survey(b: &[u8], max_brackets: u32) -> Option<Marks> {
        if b.len() > MAX_MARKED {
            return plain_and_shallow(b, max_brackets).then_some(Marks::NONE);
        }
        let (quote, backslash) = (u8x16::splat(b'"'), u8x16::splat(b'\\'));
        let (brace, bracket, highest_control) = (u8x16::splat(b'{'), u8x16::splat(b'['), u8x16::splat(0x1f));
        let mut marks = Marks { words: [0; WORDS], covered: true };
        // Per lane: a control byte seen (all ones), and brackets counted (a match is -1, so subtracting
        // counts it; at most 2048 / 16 = 128 per lane, which a byte holds).
        let (mut controls, mut brackets) = (u8x16::splat(0), u8x16::splat(0));
        let mut block = |block: &[u8; 64]| {
            let mut word = 0;
            for (i, bytes) in block.chunks_exact(16).enumerate() {
                let v = u8x16::new(bytes.try_into().expect("sixteen bytes"));
                word |= u64::from((v.cmp_eq(quote) | v.cmp_eq(backslash)).move_mask() as u16) << (16 * i);
                controls |= v.min(highest_control).cmp_eq(v);
                brackets -= v.cmp_eq(brace) | v.cmp_eq(bracket);
            }
            word
        };
        let mut blocks = b.chunks_exact(64);
        for (word, bytes) in marks.words.iter_mut().zip(&mut blocks) {
            *word = block(bytes.try_into().expect("64 bytes"));
        }
        let tail = blocks.remainder();
        if !tail.is_empty() {
            // Padded with spaces: neither marked, nor a control byte, nor a bracket.
            let mut last = [b' '; 64];
            last[..tail.len()].copy_from_slice(tail);
            marks.words[b.len() / 64] = block(&last);
        }
        let brackets: u32 = brackets.to_array().iter().map(|&n| u32::from(n)).sum();
        (controls.move_mask() == 0 && brackets <= max_brackets).then_some(marks)
    }

    /// The first `"` or `\` of `b` at or after `pos`.
    #[inline]
    pub(crate) fn next(&self, b: &[u8], pos: usize) -> Option<usize> {
        if !self.covered {
            return Some(pos + quote_or_backslash(b.get(pos..)?)?);
        }
        let mut word = pos / 64;
        let mut bits = *self.words.get(word)? & (!0u64 << (pos % 64));
        while bits == 0 {
            word += 1;
            bits = *self.words.get(word)?;
        }
        let at = word * 64 + bits.trailing_zeros() as usize;
        (at < b.len()).then_some(at)
    }
}

/// Where the first `"` or `\` of `b` is. Eight bytes at a time in a `u64`: most strings of a record are
/// keys and short values, for which `memchr2`'s set-up cost more than its vector search saved (with
/// `simdutf8` for the UTF-8 check, this took the split from 6,800 to 6,200 instructions per agent
/// envelope).
pub(crate) fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);
    // The high bit of each byte of `x` that is zero, and of no other (no carry crosses a byte).
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x) & !LOW7;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        let found = zero_bytes(x ^ (ONES * u64::from(b'"'))) | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'"' || c == b'\\').map(|i| at + i)
}

/// Whether `value` has no control byte and at most `max_brackets` opening brackets (counted anywhere,
/// in strings too). Counted in chunks of 64 bytes with byte-sized counters and no branch, which the
/// compiler turns into vector instructions.
pub(crate) fn plain_and_shallow(value: &[u8], max_brackets: u32) -> bool {
    fn count(chunk: &[u8]) -> (u8, u8) {
        chunk.iter().fold((0, 0), |(controls, brackets), &b| {
            (controls | u8::from(b < 0x20), brackets + u8::from(b == b'{' || b == b'['))
        })
    }
    let (mut controls, mut brackets) = (0u8, 0u32);
    let chunks = value.chunks_exact(64);
    let rest = count(chunks.remainder());
    for (c, b) in chunks.map(count).chain(std::iter::once(rest)) {
        controls |= c;
        brackets += u32::from(b);
    }
    controls == 0 && brackets <= max_brackets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search finds what `memchr2` finds, for the byte at every position of strings of every
    /// length around a chunk's eight, and next to every other byte value (none may be taken for one).
    #[test]
    fn quote_or_backslash_finds_what_memchr2_finds() {
        for len in 0..40 {
            for at in 0..=len {
                for other in 0..=255u8 {
                    for special in [b'"', b'\\'] {
                        let mut b = vec![other; len];
                        if at < len {
                            b[at] = special;
                        }
                        assert_eq!(quote_or_backslash(&b), memchr::memchr2(b'"', b'\\', &b), "{b:?}");
                    }
                }
            }
        }
    }

    /// The marks find what `memchr2` finds from positions around the special byte, and the survey refuses
    /// what `plain_and_shallow` refuses, for texts of every length around the chunks' sixteen and the
    /// words' sixty-four bytes and at the longest marked, with the special byte anywhere, among bytes of
    /// each kind (a letter, a space, a closing brace, UTF-8's high bytes).
    #[test]
    fn marks_find_what_memchr2_finds() {
        let longest = [MAX_MARKED - 1, MAX_MARKED, MAX_MARKED + 1];
        for len in (0..140).chain(longest) {
            let ats: Vec<usize> = (0..=len).filter(|at| len < 140 || at % 61 == 0 || at + 2 >= len).collect();
            for (at, other, special) in
                itertools_product(&ats, &[b'a', b' ', b'}', 0x80, 0xff], &[b'"', b'\\', b'{', 0x1f])
            {
                let mut b = vec![other; len];
                if at < len {
                    b[at] = special;
                }
                let marks = Marks::survey(&b, 3);
                assert_eq!(marks.is_some(), plain_and_shallow(&b, 3), "{len} {at} {other} {special}");
                let Some(marks) = marks else { continue };
                for pos in [0, at.saturating_sub(1), at, at + 1, len].into_iter().filter(|&p| p <= len) {
                    let expected = memchr::memchr2(b'"', b'\\', &b[pos..]).map(|i| pos + i);
                    assert_eq!(marks.next(&b, pos), expected, "{len} {at} {other} {special} {pos}");
                }
            }
        }
    }

    fn itertools_product(a: &[usize], b: &[u8], c: &[u8]) -> Vec<(usize, u8, u8)> {
        a.iter().flat_map(|&x| b.iter().flat_map(move |&y| c.iter().map(move |&z| (x, y, z)))).collect()
    }
}
