//! A bounded window of recently seen `event_id`s for one input partition, so an event a
//! producer wrote twice (a retry on its side) is folded into state once. No IO.
//!
//! Ids are kept as 64-bit hashes: a window of 100k ids costs about 2.4 MB instead of
//! holding the strings, and a false "duplicate" needs a 64-bit collision inside the
//! window. The oldest id leaves when the window is full (FIFO), so memory is fixed by
//! `kafka.dedupe_window` whatever the input does.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Identity hasher for the set of already-hashed ids.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Copy, Default)]
struct BuildPassThrough;

impl BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough::default()
    }
}

/// The last `capacity` event ids seen on one partition.
pub struct DedupeWindow {
    capacity: usize,
    /// SipHash with random keys: ids come from the input, so an attacker must not be
    /// able to craft an id that collides with someone else's and gets it dropped. The
    /// window lives only in memory, so hashes never need to be stable across restarts.
    hasher: RandomState,
    order: VecDeque<u64>,
    seen: HashSet<u64, BuildPassThrough>,
}

impl DedupeWindow {
    pub fn new(capacity: usize) -> Self {
        DedupeWindow {
            capacity,
            hasher: RandomState::new(),
            order: VecDeque::new(),
            seen: HashSet::default(),
        }
    }

    /// Returns true if `event_id` is in the window (a duplicate); otherwise remembers it.
    pub fn check_and_insert(&mut self, event_id: &str) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let hash = self.hasher.hash_one(event_id);
        if !self.seen.insert(hash) {
            return true;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        false
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_inside_the_window_are_duplicates() {
        let mut w = DedupeWindow::new(3);
        assert!(!w.check_and_insert("a"));
        assert!(!w.check_and_insert("b"));
        assert!(w.check_and_insert("a"));
    }

    #[test]
    fn the_window_is_bounded_and_forgets_the_oldest() {
        let mut w = DedupeWindow::new(2);
        assert!(!w.check_and_insert("a"));
        assert!(!w.check_and_insert("b"));
        assert!(!w.check_and_insert("c"));
        assert_eq!(w.len(), 2);
        assert!(!w.check_and_insert("a"), "a left the window");
        assert!(w.check_and_insert("c"));
    }

    #[test]
    fn zero_capacity_disables_dedupe() {
        let mut w = DedupeWindow::new(0);
        assert!(!w.check_and_insert("a"));
        assert!(!w.check_and_insert("a"));
        assert!(w.is_empty());
    }
}
