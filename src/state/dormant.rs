//! Identities that went quiet: what riskd still knows of an identity after its state was
//! evicted for being idle longer than `state.idle_ttl`, so that its return is noticed.
//!
//! A credential nobody used for weeks that suddenly acts again is one of the classic
//! ways a forgotten key is abused (the seed's "permissions granted long ago"). Without
//! this memory an evicted identity came back as a brand-new one and learned quietly for
//! a day. Kept per dormant identity: its name (the changelog key, to write a tombstone
//! when the memory expires), its changelog partition, the time of its last event, its
//! event count, and whether it ever called from a public network. About 100 bytes,
//! against ~700 for a live state. No IO; the engine persists entries as small changelog
//! records.

use std::collections::HashMap;
use std::hash::RandomState;

/// What is remembered of an identity that went quiet, as the changelog's dormant
/// marker carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DormantMark {
    /// Event time of its last event before it went quiet.
    pub last_ms: i64,
    /// Whether it ever called from a public network.
    pub public: bool,
    /// Events it had made (saturating): when the memory is full, identities with the
    /// least history (a one-off job's, a sprayed input's) are dropped first.
    pub events: u32,
}

/// One dormant identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dormant {
    pub name: Box<str>,
    /// Changelog partition of its state; -1 when none (replay, the demo).
    pub partition: i32,
    pub mark: DormantMark,
}

/// What is kept per name (the name is the map key).
#[derive(Debug, Clone, Copy)]
struct Kept {
    partition: i32,
    mark: DormantMark,
}

/// Dormant identities by name, bounded in number and in age (`state.dormant_memory`).
/// Keyed by the name itself, under a per-process random hasher: a fixed hash would let
/// whoever names identities aim one at another's entry and erase its dormancy.
#[derive(Debug, Default)]
pub struct DormantMemory {
    entries: HashMap<Box<str>, Kept, RandomState>,
    /// How long after its last event an identity is remembered; 0 = not at all.
    keep_ms: i64,
    max: usize,
}

impl DormantMemory {
    pub fn new(keep_ms: i64, max: usize) -> Self {
        DormantMemory {
            entries: HashMap::default(),
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
    /// the cap (a tenth when full: least history first, then the oldest), whose
    /// changelog records must go.
    pub fn remember(&mut self, dormant: Dormant) -> Vec<Dormant> {
        if !self.is_enabled() {
            return Vec::new();
        }
        let mut dropped = Vec::new();
        if self.entries.len() >= self.max && !self.entries.contains_key(&dormant.name) {
            let batch = (self.max / 10).max(1).min(self.entries.len());
            let mut rank: Vec<(u32, i64, &str)> = self
                .entries
                .iter()
                .map(|(name, k)| (k.mark.events, k.mark.last_ms, &**name))
                .collect();
            rank.select_nth_unstable(batch - 1);
            let mut victims: Vec<Box<str>> = rank[..batch].iter().map(|r| r.2.into()).collect();
            // Deterministic output order (the map's is not).
            victims.sort_unstable();
            dropped.extend(victims.into_iter().filter_map(|name| self.remove(name)));
        }
        let kept = Kept {
            partition: dormant.partition,
            mark: dormant.mark,
        };
        self.entries.insert(dormant.name, kept);
        dropped
    }

    fn remove(&mut self, name: Box<str>) -> Option<Dormant> {
        let (name, k) = self.entries.remove_entry(&name)?;
        Some(Dormant {
            name,
            partition: k.partition,
            mark: k.mark,
        })
    }

    /// The identity `name` is active again (or forgotten): what was remembered of it.
    pub fn take(&mut self, name: &str) -> Option<Dormant> {
        if self.entries.is_empty() {
            return None;
        }
        self.remove(name.into())
    }

    /// Forgets identities whose last event is more than `state.dormant_memory` before
    /// `watermark_ms`, and returns them (oldest first, then by name) so their changelog
    /// records can be deleted.
    pub fn expire(&mut self, watermark_ms: i64) -> Vec<Dormant> {
        let cutoff = watermark_ms.saturating_sub(self.keep_ms);
        let gone: Vec<Box<str>> = self
            .entries
            .iter()
            .filter(|(_, k)| k.mark.last_ms < cutoff)
            .map(|(name, _)| name.clone())
            .collect();
        let mut out: Vec<Dormant> = gone.into_iter().filter_map(|n| self.remove(n)).collect();
        out.sort_by(|a, b| (a.mark.last_ms.cmp(&b.mark.last_ms)).then_with(|| a.name.cmp(&b.name)));
        out
    }

    /// Forgets, without deleting anything, the identities of the partitions `drop`
    /// matches (revoked: the next owner restores them from the changelog).
    pub fn forget_partitions(&mut self, drop: impl Fn(i32) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, k| !drop(k.partition));
        before - self.entries.len()
    }

    /// Heap bytes held (map slots and names), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * (std::mem::size_of::<(Box<str>, Kept)>() + 1)
            + self.entries.keys().map(|name| name.len()).sum::<usize>()
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
            mark: DormantMark {
                last_ms,
                public: false,
                events: 100,
            },
        }
    }

    #[test]
    fn remembers_until_taken() {
        let mut m = DormantMemory::new(400 * DAY, 10);
        assert!(m.remember(dormant("svc-a", DAY)).is_empty());
        assert_eq!(m.take("svc-b"), None);
        assert_eq!(m.take("svc-a"), Some(dormant("svc-a", DAY)));
        assert_eq!(m.take("svc-a"), None, "taken once");
        assert!(m.is_empty());
    }

    #[test]
    fn disabled_memory_keeps_nothing() {
        let mut m = DormantMemory::new(0, 10);
        assert!(!m.is_enabled());
        assert!(m.remember(dormant("a", 0)).is_empty());
        assert_eq!(m.take("a"), None);
    }

    #[test]
    fn expires_by_age_oldest_first() {
        let mut m = DormantMemory::new(100 * DAY, 10);
        m.remember(dormant("young", 50 * DAY));
        m.remember(dormant("old-b", 2 * DAY));
        m.remember(dormant("old-a", DAY));
        let gone: Vec<Box<str>> = m.expire(120 * DAY).into_iter().map(|d| d.name).collect();
        assert_eq!(gone, vec![Box::from("old-a"), Box::from("old-b")]);
        assert_eq!(m.len(), 1);
        assert!(m.expire(149 * DAY).is_empty());
        assert_eq!(m.expire(151 * DAY).len(), 1);
    }

    #[test]
    fn the_cap_drops_a_tenth_least_history_first() {
        let mut m = DormantMemory::new(400 * DAY, 20);
        for i in 0..20 {
            let mut d = dormant(&format!("id-{i:02}"), i * DAY);
            // Two one-off identities, among the newest.
            if i >= 18 {
                d.mark.events = 1;
            }
            assert!(m.remember(d).is_empty());
        }
        // Full: remembering a known name again replaces it, dropping nothing.
        assert!(m.remember(dormant("id-05", 30 * DAY)).is_empty());
        assert_eq!(m.len(), 20);
        let dropped = m.remember(dormant("newest", 31 * DAY));
        let names: Vec<&str> = dropped.iter().map(|d| &*d.name).collect();
        assert_eq!(names, ["id-18", "id-19"], "the one-off identities go first");
        assert_eq!(m.len(), 19);
        // Among equal histories, the oldest goes.
        let dropped = m.remember(dormant("newer", 32 * DAY));
        assert!(dropped.is_empty(), "room was made");
        let dropped = m.remember(dormant("newest-2", 33 * DAY));
        let names: Vec<&str> = dropped.iter().map(|d| &*d.name).collect();
        assert_eq!(names, ["id-00", "id-01"]);
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut m = DormantMemory::new(400 * DAY, 10);
        m.remember(dormant("a", 0));
        m.remember(Dormant {
            partition: 5,
            ..dormant("b", 0)
        });
        assert_eq!(m.forget_partitions(|p| p == 3), 1);
        assert!(m.take("b").is_some());
    }
}
