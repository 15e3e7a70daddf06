//! Per-identity behavioural state (design §3), no IO: the identity table with TTL and
//! capacity eviction, the per-identity baselines and seen-sets ([`identity`]), the
//! generalisation of raw fields ([`generalize`]), fleet-wide change tracking ([`fleet`]),
//! stable hashing ([`hash`]) and the memory hints of the event path ([`hints`]).
//! Everything advances in event time.

pub mod dormant;
pub mod fleet;
pub mod generalize;
pub mod hash;
pub mod hints;
pub mod identity;
pub mod reads;

pub use hash::failure_key;
pub use identity::{Identity, Novelty, Observation, SeenKind, StateParams};

/// Seed of the identity table's name hash (in-memory only, never persisted).
const SEED_TABLE: u64 = 0x0074_6162_6c65;
/// Entries in the first slab chunk; each next chunk doubles, up to [`CHUNK_MAX`].
/// Chunks are allocated whole and never move, so the table grows without copying
/// states and keeps at most one partly used chunk of spare memory (a `Vec` of states
/// would keep up to 2× while growing, a few hundred bytes each).
const CHUNK_FIRST: usize = 1024;
/// Entries in every chunk from the fifth on: about 11 MiB, so that most of each chunk
/// is whole 2 MiB pages the kernel can back with huge pages ([`hints::huge_pages`]).
/// Small tables stay small: the doubling chunks before hold 15,360 entries in all.
const CHUNK_MAX: usize = 16_384;
/// Chunks that double before the size settles at [`CHUNK_MAX`].
const GROWING_CHUNKS: usize = (CHUNK_MAX / CHUNK_FIRST).ilog2() as usize;
/// Slots held by the doubling chunks (1024 + 2048 + 4096 + 8192).
const GROWING_SLOTS: usize = CHUNK_MAX - CHUNK_FIRST;

/// Entries chunk `k` holds.
fn chunk_capacity(k: usize) -> usize {
    if k < GROWING_CHUNKS {
        CHUNK_FIRST << k
    } else {
        CHUNK_MAX
    }
}

/// First slab slot of chunk `k`.
fn chunk_start(k: usize) -> usize {
    if k < GROWING_CHUNKS {
        CHUNK_FIRST * ((1 << k) - 1)
    } else {
        GROWING_SLOTS + (k - GROWING_CHUNKS) * CHUNK_MAX
    }
}

/// Chunk and position in it of slab slot `slot`.
fn locate(slot: usize) -> (usize, usize) {
    if slot < GROWING_SLOTS {
        // Chunk k starts at CHUNK_FIRST·(2^k − 1).
        let k = (slot / CHUNK_FIRST + 1).ilog2() as usize;
        (k, slot - chunk_start(k))
    } else {
        let s = slot - GROWING_SLOTS;
        (GROWING_CHUNKS + s / CHUNK_MAX, s % CHUNK_MAX)
    }
}
/// Names up to this many bytes live inside the entry: a separate allocation per name was
/// one more dependent cache miss per event (identity ARNs and service-account names are
/// typically 30–60 bytes).
const INLINE_NAME: usize = 62;

/// An identity name, inline when short.
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl Name {
    fn new(s: &str) -> Name {
        if s.len() <= INLINE_NAME {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(s.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `&str` in `new`, so always valid UTF-8.
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Name::Heap(s) => s,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Name::Inline { .. } => 0,
            Name::Heap(s) => s.len(),
        }
    }
}

/// Where an identity's state stands in the input, for the Kafka runtime: the input
/// partition its events come from (also its state's changelog partition), the offset of
/// the last record folded in, and the offset up to which records were already in the
/// state restored from the changelog (a redelivery at or below it must not be folded in
/// twice). Kept in the table entry rather than in a second map keyed by name: at a
/// million identities that map cost ≈ 170 bytes per identity and two more lookups per
/// event. [`Origin::NONE`] until the runtime sets it; replay and the demo never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
    pub floor: i64,
}

impl Origin {
    pub const NONE: Origin = Origin {
        partition: -1,
        offset: -1,
        floor: -1,
    };

    /// True once the runtime has recorded a partition.
    pub fn is_set(&self) -> bool {
        self.partition >= 0
    }
}

/// One tracked identity: name, state and origin together, so a lookup touches one
/// place. (No full hash here: the index word's 32 hash bits already make a wasted name
/// comparison rare, and the inline name is next to the state anyway.)
struct Entry {
    name: Name,
    state: Identity,
    origin: Origin,
}

/// An identity evicted for being idle, with what is remembered of it while dormant
/// ([`dormant`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idle {
    pub name: Box<str>,
    pub origin: Origin,
    pub mark: dormant::DormantMark,
}

/// Where an identity's entry lives in the table, valid until the next removal (see
/// [`IdentityTable::removals`]); lets the engine look an identity up once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

/// All tracked identities, bounded by a hard cap and an idle TTL in event time.
///
/// Layout, for lookups that miss the cache as little as possible with 100k+ identities:
/// an open-addressing index of 8-byte words (the high 32 bits of the name's hash, and the
/// entry's slab position) probed linearly, and a slab of entries holding hash, name and
/// state inline. A lookup reads one index word and then one entry, and compares the name
/// only when 32 bits of the hash match. No iteration order leaks out: every caller that
/// iterates sorts or aggregates.
pub struct IdentityTable {
    /// Power-of-two length (or empty), at most half full. 0 = empty word; otherwise
    /// `hash >> 32 << 32 | slot + 1`. The home position is taken from the same high bits,
    /// so the index can be resized and compacted without touching the entries.
    index: Vec<u64>,
    len: usize,
    chunks: Vec<Vec<Option<Entry>>>,
    /// Vacant slab slots, reused before the slab grows.
    free: Vec<u32>,
    /// Removals so far: a [`Slot`] taken before the last removal may be stale.
    removals: u64,
    max: usize,
    ttl_ms: i64,
    next_sweep_ms: i64,
}

impl IdentityTable {
    pub fn new(max: usize, ttl_ms: i64) -> Self {
        IdentityTable {
            index: Vec::new(),
            len: 0,
            chunks: Vec::new(),
            free: Vec::new(),
            removals: 0,
            // Slab positions are 32-bit (with room for the +1 of the index word).
            max: max.clamp(1, u32::MAX as usize - 1),
            ttl_ms: ttl_ms.max(1),
            next_sweep_ms: i64::MIN,
        }
    }

    /// The hash the table files `identity` under (compute once, look up with it).
    pub fn hash(identity: &str) -> u64 {
        hash::memory_hash(SEED_TABLE, identity.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removals so far; a [`Slot`] is valid while this has not changed.
    pub fn removals(&self) -> u64 {
        self.removals
    }

    fn home(&self, word: u64) -> usize {
        (word >> 32) as usize & (self.index.len() - 1)
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.cell(slot)?.as_ref()
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.cell_mut(slot)?.as_mut()
    }

    /// The slab cell of `slot`, occupied or not (finding it reads no entry).
    fn cell(&self, slot: u32) -> Option<&Option<Entry>> {
        let (k, at) = locate(slot as usize);
        self.chunks.get(k)?.get(at)
    }

    fn cell_mut(&mut self, slot: u32) -> Option<&mut Option<Entry>> {
        let (k, at) = locate(slot as usize);
        self.chunks.get_mut(k)?.get_mut(at)
    }

    /// Index position and slab slot of `identity`, whose [`IdentityTable::hash`] is `hash`.
    fn find(&self, hash: u64, identity: &str) -> Option<(usize, u32)> {
        self.find_with(hash, identity, |_| ())
    }

    /// [`IdentityTable::find`], calling `candidate` on each entry whose index tag matches,
    /// before its name is compared.
    fn find_with(
        &self,
        hash: u64,
        identity: &str,
        candidate: impl Fn(&Entry),
    ) -> Option<(usize, u32)> {
        self.tag_matches(hash).find(|&(_, slot)| {
            self.entry(slot).is_some_and(|e| {
                candidate(e);
                e.name.as_bytes() == identity.as_bytes()
            })
        })
    }

    /// Index position and slab slot of every word whose tag matches `hash`, in probe
    /// order, up to the first empty word (which ends every probe: the index is at most
    /// half full). Names are not compared.
    fn tag_matches(&self, hash: u64) -> impl Iterator<Item = (usize, u32)> + '_ {
        let mask = self.index.len().wrapping_sub(1);
        let tag = hash >> 32;
        let mut at = if self.index.is_empty() {
            0
        } else {
            self.home(hash)
        };
        std::iter::from_fn(move || loop {
            // At the end `at` stays on the empty word, so the iterator stays ended. An
            // empty index has no word at 0: the probe ends at once.
            let w = self.index.get(at).copied().unwrap_or(0);
            if w == 0 {
                return None;
            }
            let here = at;
            at = (at + 1) & mask;
            if w >> 32 == tag {
                return Some((here, (w as u32).wrapping_sub(1)));
            }
        })
    }

    /// The slot of `identity` (hashed with [`IdentityTable::hash`]), if tracked.
    pub fn slot(&self, hash: u64, identity: &str) -> Option<Slot> {
        self.find(hash, identity).map(|(_, s)| Slot(s))
    }

    /// [`IdentityTable::slot`] for the event path: once the index names a likely entry,
    /// every cache line of its state is loaded ([`Identity::touch`]) before the name is
    /// compared. Comparing first made the name's line one miss and the state's lines a
    /// second round after it; this way they are in flight together. (A tag rarely
    /// matches a wrong entry, as its low bits are also the home position; the extra
    /// loads are then wasted, nothing else.)
    pub fn slot_touching(&self, hash: u64, identity: &str) -> Option<Slot> {
        self.find_with(hash, identity, |e| {
            std::hint::black_box(e.state.touch());
        })
        .map(|(_, s)| Slot(s))
    }

    /// Event-path prefetch, level 1 of 3: the index word a lookup of `hash` starts at.
    /// Levels 2 and 3 read what the level before loaded, so a driver calls them for an
    /// event on successive events before it (see [`crate::engine::Engine::prefetch_ahead`]).
    pub fn prefetch_index(&self, hash: u64) {
        if !self.index.is_empty() {
            if let Some(word) = self.index.get(self.home(hash)) {
                hints::prefetch_object(word, 1);
            }
        }
    }

    /// Level 2: every line of each entry the index (loaded by level 1) names for `hash`.
    /// Only the index is read; the entries are not.
    pub fn prefetch_entry(&self, hash: u64) {
        self.each_candidate(hash, |cell| hints::prefetch_object(cell, 16));
    }

    /// Level 3: the heap blocks of the state of each entry the index names for `hash`
    /// (their entries loaded by level 2). The name is not compared: a tag rarely
    /// matches another entry, and then only a few loads are wasted.
    pub fn prefetch_heap(&self, hash: u64) {
        self.each_candidate(hash, |cell| {
            if let Some(e) = cell {
                e.state.prefetch_heap();
                if let Name::Heap(name) = &e.name {
                    hints::prefetch_slice(name.as_bytes(), 2);
                }
            }
        });
    }

    /// Calls `visit` with the slab cell of every entry whose index tag matches `hash`,
    /// in probe order (a few at most, bounded by the load factor).
    fn each_candidate(&self, hash: u64, mut visit: impl FnMut(&Option<Entry>)) {
        for (_, slot) in self.tag_matches(hash).take(8) {
            if let Some(cell) = self.cell(slot) {
                visit(cell);
            }
        }
    }

    pub fn at(&self, slot: Slot) -> Option<&Identity> {
        self.entry(slot.0).map(|e| &e.state)
    }

    pub fn at_mut(&mut self, slot: Slot) -> Option<&mut Identity> {
        self.entry_mut(slot.0).map(|e| &mut e.state)
    }

    pub fn get(&self, identity: &str) -> Option<&Identity> {
        let (_, slot) = self.find(Self::hash(identity), identity)?;
        self.entry(slot).map(|e| &e.state)
    }

    pub fn get_mut(&mut self, identity: &str) -> Option<&mut Identity> {
        let (_, slot) = self.find(Self::hash(identity), identity)?;
        self.entry_mut(slot).map(|e| &mut e.state)
    }

    /// The origin recorded for `identity`, if tracked.
    pub fn origin(&self, identity: &str) -> Option<Origin> {
        let (_, slot) = self.find(Self::hash(identity), identity)?;
        self.entry(slot).map(|e| e.origin)
    }

    pub fn origin_mut(&mut self, identity: &str) -> Option<&mut Origin> {
        let (_, slot) = self.find(Self::hash(identity), identity)?;
        self.entry_mut(slot).map(|e| &mut e.origin)
    }

    /// Names of the identities whose origin matches `keep`, in name order.
    pub fn names_with_origin(&self, keep: impl Fn(Origin) -> bool) -> Vec<Box<str>> {
        let mut names: Vec<Box<str>> = self
            .entries()
            .filter(|e| keep(e.origin))
            .map(|e| Box::from(e.name.as_str()))
            .collect();
        names.sort_unstable();
        names
    }

    pub fn remove(&mut self, identity: &str) -> Option<Identity> {
        self.remove_entry(identity).map(|e| e.state)
    }

    fn remove_entry(&mut self, identity: &str) -> Option<Entry> {
        let (mut hole, slot) = self.find(Self::hash(identity), identity)?;
        let entry = self.cell_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        self.removals += 1;
        // Backward-shift deletion: pull later words of the probe run into the hole when
        // their home allows it, so lookups never need tombstones.
        let mask = self.index.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let w = self.index[j];
            if w == 0 {
                break;
            }
            let home = self.home(w);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = w;
                hole = j;
            }
        }
        self.index[hole] = 0;
        Some(entry)
    }

    /// Puts `word` at the first free position of its probe run (it must not be present).
    fn place(&mut self, word: u64) {
        let mask = self.index.len() - 1;
        let mut i = self.home(word);
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = word;
    }

    /// Inserts or replaces `identity`'s state (a replaced state keeps its origin);
    /// returns its slot.
    pub fn insert(&mut self, identity: &str, state: Identity) -> Slot {
        let hash = Self::hash(identity);
        if let Some((_, slot)) = self.find(hash, identity) {
            if let Some(e) = self.entry_mut(slot) {
                e.state = state;
            }
            return Slot(slot);
        }
        if (self.len + 1) * 2 > self.index.len() {
            let words = std::mem::take(&mut self.index);
            self.index = vec![0; (words.len() * 2).max(64)];
            // A lookup's first miss is a random word in here. Only an index larger than
            // 2 MiB (over ~130k identities) holds whole huge pages.
            hints::huge_pages(&self.index);
            for w in words.into_iter().filter(|&w| w != 0) {
                self.place(w);
            }
        }
        let entry = Entry {
            name: Name::new(identity),
            state,
            origin: Origin::NONE,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(cell) = self.cell_mut(slot) {
                    *cell = Some(entry);
                }
                slot
            }
            None => {
                let n = self.chunks.len();
                if n == 0 || self.chunks[n - 1].len() >= chunk_capacity(n - 1) {
                    let mut chunk = Vec::with_capacity(chunk_capacity(n));
                    // Before the first write: pages already backed would wait for the
                    // kernel's background collapse instead.
                    hints::huge_pages(chunk.spare_capacity_mut());
                    self.chunks.push(chunk);
                }
                let k = self.chunks.len() - 1;
                let chunk = &mut self.chunks[k];
                chunk.push(Some(entry));
                (chunk_start(k) + chunk.len() - 1) as u32
            }
        };
        self.place((hash >> 32 << 32) | (u64::from(slot) + 1));
        self.len += 1;
        Slot(slot)
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.iter().flatten().flatten()
    }

    /// Makes room for one more identity if the cap is reached: evicts the least recently
    /// active ~1% (ties broken by name, so the choice is deterministic). Batching keeps
    /// the amortised cost per insert constant. Returns the evicted names, in name order,
    /// with their origins.
    pub fn make_room(&mut self) -> Vec<(Box<str>, Origin)> {
        if self.len < self.max {
            return Vec::new();
        }
        let batch = (self.max / 100).max(1).min(self.len);
        let mut all: Vec<(i64, &str)> = self
            .entries()
            .map(|e| (e.state.last_ms, e.name.as_str()))
            .collect();
        all.select_nth_unstable(batch - 1);
        let mut victims: Vec<Box<str>> = all[..batch].iter().map(|(_, k)| Box::from(*k)).collect();
        victims.sort_unstable();
        self.remove_all(victims)
    }

    /// Removes `names` (all tracked), pairing each with its origin.
    fn remove_all(&mut self, names: Vec<Box<str>>) -> Vec<(Box<str>, Origin)> {
        names
            .into_iter()
            .filter_map(|name| {
                let origin = self.remove_entry(&name)?.origin;
                Some((name, origin))
            })
            .collect()
    }

    /// Evicts identities idle longer than the TTL as of `watermark_ms`. Sweeps at most
    /// every TTL/16 of event time, so the scan is rare. Returns the evicted identities in
    /// name order, with what their dormancy needs remembered.
    pub fn sweep_idle(&mut self, watermark_ms: i64) -> Vec<Idle> {
        if watermark_ms < self.next_sweep_ms {
            return Vec::new();
        }
        self.next_sweep_ms = watermark_ms.saturating_add((self.ttl_ms / 16).max(60_000));
        let cutoff = watermark_ms.saturating_sub(self.ttl_ms);
        let mut gone: Vec<Box<str>> = self
            .entries()
            .filter(|e| e.state.last_ms < cutoff)
            .map(|e| Box::from(e.name.as_str()))
            .collect();
        gone.sort();
        gone.into_iter()
            .filter_map(|name| {
                let entry = self.remove_entry(&name)?;
                Some(Idle {
                    name,
                    origin: entry.origin,
                    mark: dormant::DormantMark {
                        last_ms: entry.state.last_ms,
                        public: entry.state.flags & identity::FLAG_PUBLIC != 0,
                        events: u32::try_from(entry.state.events).unwrap_or(u32::MAX),
                    },
                })
            })
            .collect()
    }

    /// Identities in name order (deterministic iteration for callers that need it).
    pub fn names_sorted(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries().map(|e| e.name.as_str()).collect();
        v.sort_unstable();
        v
    }

    /// Estimated heap bytes of the table: index, slab (including vacant and not yet
    /// used slots of allocated chunks), long names and per-identity heap state.
    pub fn heap_bytes(&self) -> usize {
        self.index.capacity() * 8
            + self.free.capacity() * 4
            + self
                .chunks
                .iter()
                .map(|c| c.capacity() * std::mem::size_of::<Option<Entry>>())
                .sum::<usize>()
            + self
                .entries()
                .map(|e| e.name.heap_bytes() + e.state.heap_bytes())
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
            learning_sparse_span_ms: 0,
            novelty_half_life_ms: 7.0 * 86_400_000.0,
        }
    }

    #[test]
    fn cap_evicts_least_recently_active() {
        let p = params();
        let mut t = IdentityTable::new(10, 1_000_000);
        for i in 0..10 {
            t.insert(&format!("id{i}"), Identity::new(i * 1000, &p));
        }
        if let Some(o) = t.origin_mut("id0") {
            o.partition = 3;
        }
        let gone = t.make_room();
        assert_eq!(gone.len(), 1);
        assert_eq!(&*gone[0].0, "id0");
        assert_eq!(
            gone[0].1.partition, 3,
            "the evicted identity's origin comes along"
        );
        assert_eq!(t.len(), 9);
    }

    /// Every slab slot maps to one chunk cell and back: chunk starts follow the sizes,
    /// and the first and last cell of every chunk, doubling or full-size, are found.
    #[test]
    fn slab_slots_map_to_chunk_cells() {
        assert_eq!(GROWING_CHUNKS, 4);
        let mut start = 0;
        for k in 0..8 {
            assert_eq!(chunk_start(k), start, "chunk {k}");
            let cap = chunk_capacity(k);
            assert_eq!(locate(start), (k, 0));
            assert_eq!(locate(start + cap / 2), (k, cap / 2));
            assert_eq!(locate(start + cap - 1), (k, cap - 1));
            start += cap;
        }
        assert_eq!(chunk_capacity(0), CHUNK_FIRST);
        assert_eq!(chunk_capacity(GROWING_CHUNKS), CHUNK_MAX);
        assert_eq!(locate(GROWING_SLOTS), (GROWING_CHUNKS, 0));
    }

    /// Past the doubling chunks, into the full-size ones, with removals reusing slots:
    /// every identity keeps its own state.
    #[test]
    fn a_table_past_the_doubling_chunks_finds_every_identity() {
        let p = params();
        let mut table = IdentityTable::new(1_000_000, i64::MAX);
        let n = GROWING_SLOTS + 2_000;
        for i in 0..n {
            table.insert(&format!("id-{i}"), Identity::new(i as i64, &p));
        }
        assert_eq!(table.chunks.len(), GROWING_CHUNKS + 1);
        for i in (0..n).step_by(7) {
            assert!(table.remove(&format!("id-{i}")).is_some());
        }
        for i in (0..n).step_by(7) {
            table.insert(&format!("again-{i}"), Identity::new(-(i as i64), &p));
        }
        // Freed slots were reused: no new chunk.
        assert_eq!(table.chunks.len(), GROWING_CHUNKS + 1);
        for i in 0..n {
            let name = format!("id-{i}");
            match table.get(&name) {
                Some(state) => {
                    assert!(i % 7 != 0, "{name} was removed");
                    assert_eq!(state.first_ms, i as i64, "{name}");
                }
                None => assert!(i % 7 == 0, "{name} lost"),
            }
        }
        for i in (0..n).step_by(7) {
            let state = table.get(&format!("again-{i}")).expect("reinserted");
            assert_eq!(state.first_ms, -(i as i64));
        }
    }

    #[test]
    fn index_matches_a_map_through_inserts_and_removals() {
        // Backward-shift deletion and slot reuse against a reference map, with names
        // both inline and on the heap, in a small table so probe runs are long.
        let p = params();
        let mut t = IdentityTable::new(1_000_000, 1_000_000);
        let mut model = std::collections::BTreeMap::new();
        let name = |i: u64| {
            if i % 3 == 0 {
                format!("{}-{i}", "x".repeat(70))
            } else {
                format!("id{i}")
            }
        };
        for round in 0..4u64 {
            for i in 0..2000u64 {
                let k = (i * 7919 + round * 13) % 3000;
                if (i + round) % 3 == 0 {
                    assert_eq!(t.remove(&name(k)).is_some(), model.remove(&k).is_some());
                } else {
                    t.insert(&name(k), Identity::new(k as i64, &p));
                    model.insert(k, ());
                }
            }
            assert_eq!(t.len(), model.len());
            for k in 0..3000u64 {
                let got = t.get(&name(k)).map(|s| s.first_ms);
                assert_eq!(got, model.get(&k).map(|_| k as i64), "{k}");
            }
        }
        let mut names: Vec<String> = model.keys().map(|&k| name(k)).collect();
        names.sort();
        assert_eq!(t.names_sorted(), names);
    }

    #[test]
    fn origin_stays_with_the_state() {
        let p = params();
        let mut t = IdentityTable::new(10, 1_000_000);
        t.insert("a", Identity::new(0, &p));
        t.insert("b", Identity::new(0, &p));
        assert_eq!(
            t.origin("a"),
            Some(Origin::NONE),
            "new identities have no origin"
        );
        assert!(t.origin("zzz").is_none());
        if let Some(o) = t.origin_mut("a") {
            *o = Origin {
                partition: 2,
                offset: 40,
                floor: 30,
            };
        }
        // A restore replaces the state of a tracked identity; its origin stays.
        t.insert("a", Identity::new(5, &p));
        assert_eq!(
            t.origin("a").map(|o| (o.partition, o.offset, o.floor)),
            Some((2, 40, 30))
        );
        assert_eq!(t.get("a").map(|s| s.first_ms), Some(5));
        let on_2: Vec<Box<str>> = t.names_with_origin(|o| o.partition == 2);
        assert_eq!(on_2, vec![Box::<str>::from("a")]);
        t.remove("a");
        assert!(t.names_with_origin(|o| o.partition == 2).is_empty());
    }

    #[test]
    fn ttl_evicts_idle() {
        let p = params();
        let mut t = IdentityTable::new(10, 100_000);
        t.insert("old", Identity::new(0, &p));
        t.insert("new", Identity::new(150_000, &p));
        let gone = t.sweep_idle(200_000);
        assert_eq!(
            gone,
            vec![Idle {
                name: "old".into(),
                origin: Origin::NONE,
                mark: dormant::DormantMark {
                    last_ms: 0,
                    public: false,
                    events: 0,
                },
            }]
        );
        assert!(t.get("new").is_some());
    }
}
