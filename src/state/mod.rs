//! Per-identity behavioural state (design §3), no IO: the identity table with TTL and
//! capacity eviction, the per-identity baselines and seen-sets ([`identity`]), the
//! generalisation of raw fields ([`generalize`]), fleet-wide change tracking ([`fleet`])
//! and stable hashing ([`hash`]). Everything advances in event time.

pub mod fleet;
pub mod generalize;
pub mod hash;
pub mod identity;

pub use identity::{Identity, Novelty, Observation, SeenKind, StateParams};

use hash::StableMap;

/// All tracked identities, bounded by a hard cap and an idle TTL in event time.
pub struct IdentityTable {
    map: StableMap<Box<str>, Identity>,
    max: usize,
    ttl_ms: i64,
    next_sweep_ms: i64,
}

impl IdentityTable {
    pub fn new(max: usize, ttl_ms: i64) -> Self {
        IdentityTable {
            map: StableMap::default(),
            max: max.max(1),
            ttl_ms: ttl_ms.max(1),
            next_sweep_ms: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, identity: &str) -> Option<&Identity> {
        self.map.get(identity)
    }

    pub fn get_mut(&mut self, identity: &str) -> Option<&mut Identity> {
        self.map.get_mut(identity)
    }

    pub fn remove(&mut self, identity: &str) -> Option<Identity> {
        self.map.remove(identity)
    }

    /// Makes room for one more identity if the cap is reached: evicts the least recently
    /// active ~1% (ties broken by name, so the choice is deterministic). Batching keeps
    /// the amortised cost per insert constant. Returns the evicted names.
    pub fn make_room(&mut self) -> Vec<Box<str>> {
        if self.map.len() < self.max {
            return Vec::new();
        }
        let batch = (self.max / 100).max(1).min(self.map.len());
        let mut all: Vec<(i64, &Box<str>)> = self.map.iter().map(|(k, v)| (v.last_ms, k)).collect();
        all.select_nth_unstable(batch - 1);
        let victims: Vec<Box<str>> = all[..batch].iter().map(|(_, k)| (*k).clone()).collect();
        for v in &victims {
            self.map.remove(v);
        }
        victims
    }

    pub fn insert(&mut self, identity: &str, state: Identity) {
        self.map.insert(identity.into(), state);
    }

    /// Evicts identities idle longer than the TTL as of `watermark_ms`. Sweeps at most
    /// every TTL/16 of event time, so the scan is rare. Returns the evicted names.
    pub fn sweep_idle(&mut self, watermark_ms: i64) -> Vec<Box<str>> {
        if watermark_ms < self.next_sweep_ms {
            return Vec::new();
        }
        self.next_sweep_ms = watermark_ms.saturating_add((self.ttl_ms / 16).max(60_000));
        let cutoff = watermark_ms.saturating_sub(self.ttl_ms);
        let mut gone: Vec<Box<str>> = self
            .map
            .iter()
            .filter(|(_, v)| v.last_ms < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        gone.sort();
        for k in &gone {
            self.map.remove(k);
        }
        gone
    }

    /// Identities in name order (deterministic iteration for callers that need it).
    pub fn names_sorted(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.map.keys().map(|k| &**k).collect();
        v.sort_unstable();
        v
    }

    /// Estimated heap bytes of the table: per-entry state, key and hash-table slot.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, Identity)>() + 1;
        self.map.capacity() * slot
            + self
                .map
                .iter()
                .map(|(k, v)| k.len() + v.heap_bytes())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> StateParams {
        StateParams {
            bucket_ms: 60_000,
            window_buckets: 5,
            max_seen_entries: 8,
            learning_min_events: 5,
            learning_min_span_ms: 1,
        }
    }

    #[test]
    fn cap_evicts_least_recently_active() {
        let p = params();
        let mut t = IdentityTable::new(10, 1_000_000);
        for i in 0..10 {
            t.insert(&format!("id{i}"), Identity::new(i * 1000, &p));
        }
        let gone = t.make_room();
        assert_eq!(gone, vec![Box::<str>::from("id0")]);
        assert_eq!(t.len(), 9);
    }

    #[test]
    fn ttl_evicts_idle() {
        let p = params();
        let mut t = IdentityTable::new(10, 100_000);
        t.insert("old", Identity::new(0, &p));
        t.insert("new", Identity::new(150_000, &p));
        let gone = t.sweep_idle(200_000);
        assert_eq!(gone, vec![Box::<str>::from("old")]);
        assert!(t.get("new").is_some());
    }
}
