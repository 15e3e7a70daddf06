//! Stable hashing: seen-set entries are persisted in the changelog, so their hashes must
//! not change between runs, processes or Rust versions (std's `DefaultHasher` promises
//! none of that, and `RandomState` would also make map iteration order, and so output,
//! differ between runs).

use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// A fixed 64-bit hash of `bytes` under `seed` (word-at-a-time multiply-rotate with a
/// final avalanche). Not cryptographic: inputs are not adversarial for correctness, only
/// for memory, which the per-identity bounds cap regardless of collisions.
pub fn stable_hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ K.wrapping_mul(bytes.len() as u64 + 1);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = (h.rotate_left(5) ^ tail_word(bytes, rest)).wrapping_mul(K);
    }
    mix(h)
}

/// The last 1–7 bytes of `bytes` (`rest`) as a little-endian word, zero above them: the
/// same value as copying them into a zeroed `[u8; 8]`, which compiled to a `memcpy`
/// call of variable length on every hash (several per event). Read as whole words that
/// end at the text's end instead, shifted down; `rest` ends there too.
fn tail_word(bytes: &[u8], rest: &[u8]) -> u64 {
    let r = rest.len();
    debug_assert!((1..=7).contains(&r) && bytes.ends_with(rest));
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |w, &x| (w << 8) | u64::from(x));
    if let Some(last8) = bytes
        .len()
        .checked_sub(8)
        .and_then(|from| <[u8; 8]>::try_from(&bytes[from..]).ok())
    {
        // `rest` is the top `r` bytes of the last eight.
        return u64::from_le_bytes(last8) >> (8 * (8 - r));
    }
    // A text shorter than a word: two overlapping halves (equal bytes land on equal
    // positions, so OR is exact).
    match r {
        4..=7 => le(&rest[..4]) | (le(&rest[r - 4..]) << (8 * (r - 4))),
        2..=3 => le(&rest[..2]) | (le(&rest[r - 2..]) << (8 * (r - 2))),
        _ => le(rest),
    }
}

/// A fast 64-bit hash of `bytes` under `seed`, for in-memory indexes only (the identity
/// table, the generalisation memos): deterministic within a build, but not promised
/// across versions, so never for anything persisted or compared between runs.
pub fn memory_hash(seed: u64, bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(seed).hash_one(bytes)
}

/// [`crate::state::Observation::failure_key`] of a failing call: its action and exact
/// (not generalised) destination, since a retry repeats the call byte for byte while
/// probing tries other resources. Never 0, which means "no failure".
pub fn failure_key(action: &str, destination: &str) -> u32 {
    let h = stable_hash(
        stable_hash(0x6661_696c, action.as_bytes()),
        destination.as_bytes(),
    );
    ((h >> 32) as u32).max(1)
}

/// Final avalanche (from splitmix64) so every input bit affects the high bits we keep.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic, fast hasher for the engine's in-memory maps (identity table, fleet
/// tracker): same input order → same iteration order → byte-identical output.
#[derive(Default, Clone, Copy)]
pub struct StableBuildHasher;

impl BuildHasher for StableBuildHasher {
    type Hasher = StableHasher;
    fn build_hasher(&self) -> StableHasher {
        StableHasher(K)
    }
}

pub struct StableHasher(u64);

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        mix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = stable_hash(self.0, bytes);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub type StableMap<K, V> = std::collections::HashMap<K, V, StableBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    const PINNED: u64 = 12_018_424_613_051_363_694;

    #[test]
    fn hash_is_stable_and_seeded() {
        // Pinned value: changing the hash silently invalidates every stored snapshot.
        assert_eq!(
            stable_hash(0, b"s3:GetObject"),
            stable_hash(0, b"s3:GetObject")
        );
        assert_ne!(
            stable_hash(0, b"s3:GetObject"),
            stable_hash(1, b"s3:GetObject")
        );
        assert_ne!(stable_hash(0, b"a"), stable_hash(0, b"a\0"));
        assert_eq!(stable_hash(7, b"riskd"), PINNED);
    }

    /// The hash as first written (the tail copied into a zeroed word): persisted hashes
    /// must not change, whatever way the tail is read.
    fn stable_hash_reference(seed: u64, bytes: &[u8]) -> u64 {
        let mut h = seed ^ K.wrapping_mul(bytes.len() as u64 + 1);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        mix(h)
    }

    #[test]
    fn tail_read_gives_the_reference_hash_at_every_length() {
        let mut x: u64 = 0x1234_5678;
        for len in 0..=80 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (x >> 56) as u8
                    })
                    .collect();
                assert_eq!(
                    stable_hash(x, &bytes),
                    stable_hash_reference(x, &bytes),
                    "{bytes:?}"
                );
            }
        }
    }
}
