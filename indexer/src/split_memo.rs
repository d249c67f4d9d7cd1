//! What the split remembers of the last records it read on this thread, to do less for the next ones:
//! the short objects and arrays it checked, and the order of their keys. The records of one input are
//! alike: the same keys in the same order, and most of their objects the same text (`host`, `input`,
//! `agent`, `tags`, often `log`). Each batch worker keeps its own, in a fixed table.
//!
//! **Checked values** ([`CheckedValues`]), by their place among the record's entries: a record whose entry
//! in that place has the same value text is not checked again. Checking each such object as `serde_json`
//! would (every bracket, key, colon and string) was about a third of the split's instructions
//! (callgrind); comparing it with the one kept costs a few instructions per sixteen bytes. Sound because
//! the check of an object or array reads nothing past its closing bracket, and its marks
//! ([`crate::json_marks::Marks`]) are those of its own bytes: the same bytes end at the same place, and
//! are valid, wherever they stand. Only objects and arrays are kept (a number's end depends on the byte
//! after it), and only short ones. They are kept by place rather than by key: a place has a slot of its
//! own, where keys would share slots.
//!
//! **Key order** ([`KeyOrder`]): where each entry goes once sorted by key, for a record whose keys have
//! the same prefixes ([`KeyPrefix`]) in the same places as the last one sorted, all different. Such keys
//! are ordered by their prefixes alone, so the entries are moved into place without comparing a key;
//! sorting them cost 450 instructions per agent envelope (callgrind).

use std::cell::RefCell;

use crate::raw_entries::KeyPrefix;

/// The longest value kept: the envelope's constant objects are a few dozen bytes.
const LONGEST: usize = 119;
/// Places kept: an envelope has eight to a dozen entries.
pub(crate) const PLACES: usize = 16;

thread_local! {
    static MEMO: RefCell<SplitMemo> = const { RefCell::new(SplitMemo::EMPTY) };
}

/// Runs `split` with this thread's memo.
pub(crate) fn with_split_memo<T>(split: impl FnOnce(&mut SplitMemo) -> T) -> T {
    MEMO.with_borrow_mut(split)
}

pub(crate) struct SplitMemo {
    pub values: CheckedValues,
    pub order: KeyOrder,
}

impl SplitMemo {
    const EMPTY: Self = Self { values: CheckedValues::EMPTY, order: KeyOrder::EMPTY };
}

/// The last object or array checked in each of the first [`PLACES`] places.
pub(crate) struct CheckedValues {
    slots: [Slot; PLACES],
}

#[derive(Clone, Copy)]
struct Slot {
    /// 0: none kept.
    len: u8,
    text: [u8; LONGEST],
}

impl CheckedValues {
    pub(crate) const EMPTY: Self = Self { slots: [Slot { len: 0, text: [0; LONGEST] }; PLACES] };

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

/// The prefixes of the last record's keys whose order was kept, in the record's order, and the places of
/// its entries in key order.
pub(crate) struct KeyOrder {
    /// 0: none kept.
    len: u8,
    prefixes: [KeyPrefix; PLACES],
    sorted: [u8; PLACES],
}

impl KeyOrder {
    pub(crate) const EMPTY: Self = Self { len: 0, prefixes: [KeyPrefix::literal(""); PLACES], sorted: [0; PLACES] };

    /// The places of the entries in key order, for a record whose keys have `prefixes` (in the record's
    /// order), when they are those kept.
    #[inline]
    pub(crate) fn known(&self, prefixes: impl ExactSizeIterator<Item = KeyPrefix>) -> Option<&[u8]> {
        let len = usize::from(self.len);
        (len > 0 && prefixes.len() == len && prefixes.zip(&self.prefixes).all(|(p, kept)| p == *kept))
            .then(|| &self.sorted[..len])
    }

    /// Keeps the order of a record whose keys have `prefixes` (in its order) and whose entries are in key
    /// order at `sorted` (places, as [`KeyOrder::known`] gives them), when the prefixes are all different
    /// and the places fit.
    pub(crate) fn remember(&mut self, prefixes: &[KeyPrefix], sorted: &[u8]) {
        let fits = prefixes.len() <= PLACES && sorted.len() == prefixes.len();
        if fits && sorted.windows(2).all(|w| prefixes[usize::from(w[0])] < prefixes[usize::from(w[1])]) {
            self.len = prefixes.len() as u8;
            self.prefixes[..prefixes.len()].copy_from_slice(prefixes);
            self.sorted[..sorted.len()].copy_from_slice(sorted);
        } else {
            self.len = 0;
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
        checked.remember(PLACES, b"[]");
        assert_eq!(checked.known(PLACES, b"[]"), None);
    }

    #[test]
    fn an_order_is_known_for_the_same_prefixes_in_the_same_places() {
        let p = |keys: &[&str]| keys.iter().map(|k| KeyPrefix::literal(k)).collect::<Vec<_>>();
        let mut order = KeyOrder::EMPTY;
        let envelope = p(&["message", "@timestamp", "tags"]);
        assert_eq!(order.known(envelope.iter().copied()), None);
        order.remember(&envelope, &[1, 0, 2]);
        assert_eq!(order.known(envelope.iter().copied()), Some(&[1, 0, 2][..]));
        assert_eq!(order.known(p(&["message", "@timestamp", "tag"]).into_iter()), None);
        assert_eq!(order.known(p(&["message", "@timestamp"]).into_iter()), None);
        assert_eq!(order.known(p(&["message", "@timestamp", "tags", "x"]).into_iter()), None);
        // Keys with the same prefix are not ordered by it: nothing is kept for them.
        let alike = p(&["timestamp_a", "timestamp_b"]);
        order.remember(&alike, &[0, 1]);
        assert_eq!(order.known(alike.iter().copied()), None);
        assert_eq!(order.known(envelope.iter().copied()), None, "the last order was dropped");
    }
}
