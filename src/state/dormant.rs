//! Identities that went quiet: what riskd still knows of an identity after its state was
//! evicted for being idle longer than `state.idle_ttl`, so that its return is noticed.
//!
//! A credential nobody used for weeks that suddenly acts again is one of the classic
//! ways a forgotten key is abused (the seed's "permissions granted long ago"). Without
//! this memory an evicted identity came back as a brand-new one and learned quietly for
//! a day. Kept per dormant identity: its name (the changelog key, to write a tombstone
//! when the memory expires), its changelog partition, the time of its last event, and
//! whether it ever called from a public network. About 100 bytes, against ~700 for a
//! live state. No IO; the engine persists entries as small changelog records.

use crate::state::hash::StableMap;

/// What is remembered of one dormant identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dormant {
    pub name: Box<str>,
    /// Changelog partition of its state; -1 when none (replay, the demo).
    pub partition: i32,
    /// Event time of its last event before it went quiet.
    pub last_ms: i64,
    /// Whether it ever called from a public network.
    pub public: bool,
}

/// Dormant identities keyed by the identity table's name hash, bounded in number and in
/// age (`state.dormant_memory`).
#[derive(Debug, Default)]
pub struct DormantMemory {
    entries: StableMap<u64, Dormant>,
    /// How long after its last event an identity is remembered; 0 = not at all.
    keep_ms: i64,
    max: usize,
}

impl DormantMemory {
    pub fn new(keep_ms: i64, max: usize) -> Self {
        DormantMemory {
            entries: StableMap::default(),
            keep_ms: keep_ms.max(0),
            max: max.max(1),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.keep_ms > 0
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers an identity that went quiet. Returns the entries dropped to stay under
    /// the cap (the oldest tenth when full), whose changelog records must go.
    pub fn remember(&mut self, hash: u64, dormant: Dormant) -> Vec<Dormant> {
        if !self.is_enabled() {
            return Vec::new();
        }
        let mut dropped = Vec::new();
        if self.entries.len() >= self.max && !self.entries.contains_key(&hash) {
            let batch = (self.max / 10).max(1).min(self.entries.len());
            let mut by_age: Vec<(i64, u64)> =
                self.entries.iter().map(|(h, d)| (d.last_ms, *h)).collect();
            by_age.select_nth_unstable(batch - 1);
            let mut oldest: Vec<u64> = by_age[..batch].iter().map(|(_, h)| *h).collect();
            // Deterministic output order (the map's is not).
            oldest.sort_unstable();
            dropped.extend(oldest.iter().filter_map(|h| self.entries.remove(h)));
        }
        self.entries.insert(hash, dormant);
        dropped
    }

    /// The identity hashed `hash` is active again: what was remembered of it, if any.
    /// `name` guards against a hash shared by two names.
    pub fn take(&mut self, hash: u64, name: &str) -> Option<Dormant> {
        match self.entries.get(&hash) {
            Some(d) if &*d.name == name => self.entries.remove(&hash),
            _ => None,
        }
    }

    /// Forgets identities whose last event is more than `state.dormant_memory` before
    /// `watermark_ms`, and returns them (oldest first, then by name) so their changelog
    /// records can be deleted.
    pub fn expire(&mut self, watermark_ms: i64) -> Vec<Dormant> {
        let cutoff = watermark_ms.saturating_sub(self.keep_ms);
        let mut gone: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, d)| d.last_ms < cutoff)
            .map(|(h, _)| *h)
            .collect();
        gone.sort_unstable();
        let mut out: Vec<Dormant> = gone.iter().filter_map(|h| self.entries.remove(h)).collect();
        out.sort_by(|a, b| a.last_ms.cmp(&b.last_ms).then_with(|| a.name.cmp(&b.name)));
        out
    }

    /// Forgets, without deleting anything, the identities of the partitions `drop`
    /// matches (revoked: the next owner restores them from the changelog).
    pub fn forget_partitions(&mut self, drop: impl Fn(i32) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, d| !drop(d.partition));
        before - self.entries.len()
    }

    /// Heap bytes held (map slots and names), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * (std::mem::size_of::<(u64, Dormant)>() + 1)
            + self.entries.values().map(|d| d.name.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn dormant(name: &str, last_ms: i64) -> Dormant {
        Dormant {
            name: name.into(),
            partition: 3,
            last_ms,
            public: false,
        }
    }

    #[test]
    fn remembers_until_taken_and_checks_the_name() {
        let mut m = DormantMemory::new(400 * DAY, 10);
        assert!(m.remember(7, dormant("svc-a", DAY)).is_empty());
        assert_eq!(m.take(7, "svc-b"), None, "same hash, another name");
        assert_eq!(m.take(7, "svc-a"), Some(dormant("svc-a", DAY)));
        assert_eq!(m.take(7, "svc-a"), None, "taken once");
        assert!(m.is_empty());
    }

    #[test]
    fn disabled_memory_keeps_nothing() {
        let mut m = DormantMemory::new(0, 10);
        assert!(!m.is_enabled());
        assert!(m.remember(1, dormant("a", 0)).is_empty());
        assert_eq!(m.take(1, "a"), None);
    }

    #[test]
    fn expires_by_age_oldest_first() {
        let mut m = DormantMemory::new(100 * DAY, 10);
        m.remember(1, dormant("young", 50 * DAY));
        m.remember(2, dormant("old-b", 2 * DAY));
        m.remember(3, dormant("old-a", DAY));
        let gone: Vec<Box<str>> = m.expire(120 * DAY).into_iter().map(|d| d.name).collect();
        assert_eq!(gone, vec![Box::from("old-a"), Box::from("old-b")]);
        assert_eq!(m.len(), 1);
        assert!(m.expire(149 * DAY).is_empty());
        assert_eq!(m.expire(151 * DAY).len(), 1);
    }

    #[test]
    fn the_cap_drops_the_oldest_tenth() {
        let mut m = DormantMemory::new(400 * DAY, 20);
        for i in 0..20u64 {
            assert!(m
                .remember(i, dormant(&format!("id-{i}"), i as i64 * DAY))
                .is_empty());
        }
        let dropped = m.remember(99, dormant("newest", 30 * DAY));
        let names: Vec<&str> = dropped.iter().map(|d| &*d.name).collect();
        assert_eq!(names, ["id-0", "id-1"]);
        assert_eq!(m.len(), 19);
        // Remembering a known hash again replaces it without dropping anything.
        for i in 2..20u64 {
            assert!(m
                .remember(i, dormant(&format!("id-{i}"), 40 * DAY))
                .is_empty());
        }
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut m = DormantMemory::new(400 * DAY, 10);
        m.remember(1, dormant("a", 0));
        m.remember(
            2,
            Dormant {
                partition: 5,
                ..dormant("b", 0)
            },
        );
        assert_eq!(m.forget_partitions(|p| p == 3), 1);
        assert!(m.take(2, "b").is_some());
    }
}
