//! The ids of the most recent documents of one index file, to reject replays in bounded memory.
//!
//! Replays are always recent: the indexer consumes again only what it had not committed (the batches in
//! flight and the one being filled), and an agent resends only what the cluster had not acknowledged (at
//! most its `queue_max_bytes`). So the file output remembers the last `capacity` ids of each file, not
//! every id it ever wrote: a set of every id grew by about 30 bytes per document for as long as the daily
//! file did (1,000,000 documents held 34 MiB, and growing its table briefly held 51).

use std::collections::{HashSet, VecDeque};

/// The last `capacity` distinct ids added, as 128-bit hashes.
pub(super) struct RecentIds {
    capacity: usize,
    order: VecDeque<u128>,
    set: HashSet<u128>,
}

impl RecentIds {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { capacity, order: VecDeque::new(), set: HashSet::new() }
    }

    /// Adds `id`, forgetting the oldest once full. False if `id` is already among the recent ones.
    pub(super) fn insert(&mut self, id: u128) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.order.push_back(id);
        true
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_capacity_ids_and_forgets_older_ones() {
        let mut ids = RecentIds::new(3);
        assert!(ids.insert(1) && ids.insert(2) && ids.insert(3));
        assert!(!ids.insert(1), "a recent id is a replay");
        assert!(ids.insert(4), "a new id pushes the oldest out");
        assert!(ids.insert(1), "1 was the oldest, so it is forgotten");
        assert!(!ids.insert(3) && !ids.insert(4) && !ids.insert(1));
        assert_eq!(ids.set.len(), 3);
        assert_eq!(ids.order.len(), 3);
    }

    #[test]
    fn memory_stays_bounded_however_many_ids_pass() {
        let mut ids = RecentIds::new(1000);
        for id in 0..100_000u128 {
            ids.insert(id);
        }
        assert_eq!(ids.set.len(), 1000);
        assert!(ids.set.capacity() < 4096, "the table does not keep the size it had at its largest");
        assert!(!ids.insert(99_999) && ids.insert(0));
    }
}
