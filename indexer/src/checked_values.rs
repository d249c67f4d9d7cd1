//! The split's memory of the short objects and arrays it has lately checked, by their place among the
//! record's entries: a record whose entry in that place has the same value text is not checked again.
//!
//! Why: most of an agent envelope's objects are the same in every record of an input (`host`, `input`,
//! `agent`, `tags`, often `log`), and checking each one as `serde_json` would (every bracket, key, colon
//! and string) was about a third of the split's instructions (callgrind). Comparing a value with the one
//! kept costs a few instructions per sixteen bytes.
//!
//! Sound because the check of an object or array reads nothing past its closing bracket, and its marks
//! ([`crate::json_marks::Marks`]) are those of its own bytes: the same bytes end at the same place, and are
//! valid, wherever they stand. Only objects and arrays are kept (a number's end depends on the byte after
//! it), and only short ones, in a fixed table on each thread (each batch worker reuses its own). They are
//! kept by place rather than by key: the records of one input have their keys in the same order, and a
//! place has one slot of its own, where keys would share slots.

use std::cell::RefCell;

/// The longest value kept: the envelope's constant objects are a few dozen bytes.
const LONGEST: usize = 119;
/// Places kept: an envelope has eight to a dozen entries.
const SLOTS: usize = 16;

thread_local! {
    static CHECKED: RefCell<CheckedValues> = const { RefCell::new(CheckedValues::EMPTY) };
}

/// Runs `walk` with this thread's table.
pub(crate) fn with_checked_values<T>(walk: impl FnOnce(&mut CheckedValues) -> T) -> T {
    CHECKED.with_borrow_mut(walk)
}

/// The last object or array checked in each of the first [`SLOTS`] places.
pub(crate) struct CheckedValues {
    slots: [Slot; SLOTS],
}

#[derive(Clone, Copy)]
struct Slot {
    /// 0: none kept.
    len: u8,
    text: [u8; LONGEST],
}

impl CheckedValues {
    pub(crate) const EMPTY: Self = Self { slots: [Slot { len: 0, text: [0; LONGEST] }; SLOTS] };

    /// The length of the value at the start of `rest` when it is the one kept for place `place`.
    #[inline]
    pub(crate) fn known(&self, place: usize, rest: &[u8]) -> Option<usize> {
        let slot = self.slots.get(place)?;
        let kept = &slot.text[..usize::from(slot.len)];
        (slot.len > 0 && rest.starts_with(kept)).then_some(kept.len())
    }

    /// Keeps `value`, checked, as the value in place `place`, when it is a short object or array.
    #[inline]
    pub(crate) fn remember(&mut self, place: usize, value: &[u8]) {
        if let Some(slot) = self.slots.get_mut(place) {
            if value.len() <= LONGEST && matches!(value.first(), Some(b'{' | b'[')) {
                slot.len = value.len() as u8;
                slot.text[..value.len()].copy_from_slice(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_text_in_the_same_place_is_known() {
        let mut checked = CheckedValues::EMPTY;
        let (host, agent) = (4, 5);
        assert_eq!(checked.known(host, br#"{"name":"web-01"},"#), None);
        checked.remember(host, br#"{"name":"web-01"}"#);
        assert_eq!(checked.known(host, br#"{"name":"web-01"},"input":{}"#), Some(17));
        assert_eq!(checked.known(host, br#"{"name":"web-02"},"#), None);
        assert_eq!(checked.known(host, br#"{"name":"web-01""#), None, "cut short");
        assert_eq!(checked.known(agent, br#"{"name":"web-01"},"#), None);
        // Strings, numbers and long values are not kept, nor places past the table's.
        for value in [&br#""text""#[..], b"12", &[b'['; LONGEST + 1]] {
            checked.remember(agent, value);
            assert_eq!(checked.known(agent, value), None);
        }
        checked.remember(SLOTS, b"[]");
        assert_eq!(checked.known(SLOTS, b"[]"), None);
    }
}
