//! One identity's behavioural state (design §3): rate window, seasonal peak baseline,
//! hour-of-week profile, outcome rate, seen-sets with learned novelty rates, lifecycle and
//! score. Everything advances in event time; the struct is the changelog value, encoded
//! compactly by [`Identity::encode`].
//!
//! Memory is the design constraint (< 1 KiB on average, millions of identities), so:
//! the six seen-sets share one `Vec<u32>` of 32-bit fingerprints, one sorted run per
//! kind; seasonal baselines are log-quantised to `u16`; the hour-of-week profile is one
//! byte per slot.

use serde::{Deserialize, Serialize};

use super::generalize::SourceClass;
use super::reads::{Excess, SensitiveReads};
use crate::event::{IdentityKind, Sensitivity};

/// Seen-set kinds. The discriminant is stored in snapshots: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenKind {
    Destination = 0,
    DestinationClass = 1,
    Action = 2,
    Network = 3,
    UserAgent = 4,
    Environment = 5,
}

pub const SEEN_KINDS: usize = 6;

/// Bits of the key a seen hash is remembered by in the overflow sketch (and was, before
/// snapshot version 6, in the exact set): kind (3) | hash (37).
const HASH_BITS: u32 = 37;
/// Before version 6 an exact entry was that key above 24 bits of first-seen time.
const V5_FIRST_SEEN_BITS: u32 = 24;
/// Bloom sketch words once a set overflows `max_seen_entries` (512 bits, 3 probes).
const SKETCH_WORDS: usize = 8;

const PEAK_HALF_LIFE_HOURS: f64 = 7.0 * 24.0;
/// EWMA weight of one day's sample in an hour-of-day slot (~4 days of memory).
const SLOT_ALPHA: f64 = 0.25;
const HOUR_MS: i64 = 3_600_000;
const PROFILE_SLOTS: usize = 168;
/// Hour-of-day baseline: (mean, deviation) per hour.
const SLOTS: usize = 48;

/// Upper nibble of [`Identity::sensitivity_marks`]: the sensitivity ceiling, as
/// `Sensitivity as u8 + 2`, or one of these.
const CEILING_UNKNOWN: u8 = 0;
const CEILING_NOTHING_MET: u8 = 1;

/// A sensitivity from its code in [`Identity::sensitivity_marks`]'s lower nibble
/// (`Sensitivity as u8 + 1`; 0 or anything else: none).
fn sensitivity_from_code(code: u8) -> Option<Sensitivity> {
    match code {
        1 => Some(Sensitivity::Public),
        2 => Some(Sensitivity::Internal),
        3 => Some(Sensitivity::Confidential),
        4 => Some(Sensitivity::Restricted),
        _ => None,
    }
}

pub const FLAG_PRIVATE: u8 = 1;
pub const FLAG_PUBLIC: u8 = 2;
pub const FLAG_NAMED: u8 = 4;
pub const FLAG_ACTIVE: u8 = 8;
/// The upper four bits of `flags` hold the identity's kind as its events last named it
/// ([`IdentityKind::code`]; 0 while none did).
const KIND_SHIFT: u8 = 4;

/// Counts of one rate bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub count: u32,
    /// Narrow counters (saturating) keep a bucket at 16 bytes.
    pub fails: u16,
    /// Generalised destinations first met in this bucket (enumeration, exfiltration).
    pub new_dests: u16,
    /// Data moved: bytes, plus records at a nominal 256 bytes each when given (one
    /// consistent per-identity measure; only its ratio to the baseline matters).
    pub data: u64,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.count = self.count.saturating_add(o.count);
        self.fails = self.fails.saturating_add(o.fails);
        self.new_dests = self.new_dests.saturating_add(o.new_dests);
        self.data = self.data.saturating_add(o.data);
    }
}

/// The event as the state sees it: hashes of generalised fields plus time keys. Built
/// once per event by the engine, read by detectors and by [`Identity::fold`].
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub time_ms: i64,
    pub dest: u64,
    pub class: u64,
    pub action: u64,
    pub network: Option<(u64, SourceClass)>,
    pub user_agent: Option<u64>,
    pub environment: Option<u64>,
    pub failure: bool,
    /// For a failing call: a fingerprint of its action and exact destination (never 0),
    /// to tell a client's retries of one call from failures of different calls.
    pub failure_key: u32,
    pub data: u64,
    /// A successful read of confidential or restricted data (see [`SensitiveReads`]).
    pub sensitive_read: bool,
}

impl Observation {
    pub fn hour(&self) -> i64 {
        self.time_ms.div_euclid(HOUR_MS)
    }
    pub fn hour_of_day(&self) -> usize {
        hour_of_day(self.hour())
    }
    pub fn hour_of_week(&self) -> usize {
        hour_of_week(self.hour())
    }
}

pub fn hour_of_day(hour: i64) -> usize {
    hour.rem_euclid(24) as usize
}

/// 0 = Monday 00:00 UTC (1970-01-01 was a Thursday).
pub fn hour_of_week(hour: i64) -> usize {
    (hour + 72).rem_euclid(168) as usize
}

/// Which seen-sets the event is new to, computed before folding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Novelty {
    pub dest: bool,
    pub class: bool,
    pub action: bool,
    pub network: bool,
    pub user_agent: bool,
    /// An environment label this identity never carried, when it carried one before
    /// (the first label is learned silently).
    pub environment: bool,
}

/// Config the state needs, resolved to milliseconds once.
#[derive(Debug, Clone, Copy)]
pub struct StateParams {
    pub bucket_ms: i64,
    pub window_buckets: usize,
    pub max_seen_entries: usize,
    pub learning_min_events: u64,
    pub learning_min_span_ms: i64,
    /// See `state.learning_sparse_span`; 0 turns it off.
    pub learning_sparse_span_ms: i64,
    /// Novelty-rate memory: a new thing last week still says this identity churns.
    pub novelty_half_life_ms: f64,
}

impl StateParams {
    pub fn from_config(c: &crate::config::StateConfig) -> Self {
        let bucket_ms = c.bucket.as_millis_i64().max(1);
        StateParams {
            bucket_ms,
            window_buckets: (c.window.as_millis_i64() / bucket_ms).clamp(1, 60) as usize,
            max_seen_entries: c.max_seen_entries,
            learning_min_events: c.learning_min_events,
            learning_min_span_ms: c.learning_min_span.as_millis_i64(),
            learning_sparse_span_ms: c.learning_sparse_span.as_millis_i64(),
            novelty_half_life_ms: c.novelty_half_life.as_millis_i64().max(1) as f64,
        }
    }
}

/// `x.round()` for `x` in [0, 2⁵²), and for NaN and negative `x` the same after the
/// callers' clamp to a non-negative range, without the library call `round` is on
/// baseline x86-64 (it ran several times per event). Adding the largest double below ½
/// and truncating (the caller's `as`) rounds halves up as `round` does; adding ½ itself
/// would round 0.5 − 2⁻⁵⁴ up to 1.
pub fn round_half_up(x: f64) -> f64 {
    x + (0.5 - f64::EPSILON / 4.0)
}

/// Whether an identity with `events` events over `span_ms` of history has learned its
/// baseline. Either the full count over the minimum span, or half of it over the
/// longer sparse span: a partner's report key calling three times a day would otherwise
/// stay unjudged for a week, and a leaked key is used in that week as in any other.
/// Half the events over days of history say more about its habits (one address, one
/// client, two routes) than the full count in one busy hour.
/// The sparse span is never shorter than `learning_min_span`: a deployment that asks for
/// a week of history is not cut to three days by this default.
fn learned_enough(events: u64, span_ms: i64, params: &StateParams) -> bool {
    (events >= params.learning_min_events && span_ms >= params.learning_min_span_ms)
        || (params.learning_sparse_span_ms > 0
            && span_ms
                >= params
                    .learning_sparse_span_ms
                    .max(params.learning_min_span_ms)
            && events >= params.learning_min_events.div_ceil(2))
}

/// Log quantiser for non-negative magnitudes: 0.05% resolution over [0, 7e13] in 16 bits.
pub fn q16(x: f64) -> u16 {
    round_half_up(x.max(0.0).ln_1p() * 2048.0).clamp(0.0, 65535.0) as u16
}
pub fn dq16(q: u16) -> f64 {
    // Every value, computed once: an hour's close dequantises several of them, and a
    // load from this table (its hot entries stay in cache) is cheaper than `exp_m1`.
    static TABLE: std::sync::OnceLock<Box<[f64]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(dq16_computed).collect())[usize::from(q)]
}

fn dq16_computed(q: u16) -> f64 {
    (f64::from(q) / 2048.0).exp_m1()
}

/// A fixed-size array kept inside the state, empty until first use. It encodes exactly
/// like the `Vec` it replaced (a length, then the elements), so snapshots are unchanged,
/// but costs no heap allocation of its own: with more identities than fit in the cache,
/// each separate allocation was one more dependent cache miss per event.
#[derive(Debug, Clone, PartialEq)]
pub struct Inline<T, const N: usize> {
    /// [`EMPTY`], [`FILLED`] (`N` elements), or [`MISFIT`]: a decoded snapshot with
    /// another length, which [`Identity::decode`] rejects (the data is then all
    /// default). One byte, not a `usize`: this is in every identity.
    fill: u8,
    data: [T; N],
}

const EMPTY: u8 = 0;
const FILLED: u8 = 1;
const MISFIT: u8 = 2;

impl<T: Copy + Default, const N: usize> Default for Inline<T, N> {
    fn default() -> Self {
        Inline {
            fill: EMPTY,
            data: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> Inline<T, N> {
    /// The stored length: 0, `N`, or `usize::MAX` for a decoded length that was neither
    /// (what [`Identity::decode`] checks; the slice view is then empty).
    pub fn len(&self) -> usize {
        match self.fill {
            EMPTY => 0,
            FILLED => N,
            _ => usize::MAX,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fill == EMPTY
    }

    /// Makes it `N` default elements.
    fn reset_filled(&mut self) {
        self.data = [T::default(); N];
        self.fill = FILLED;
    }
}

impl<T, const N: usize> std::ops::Deref for Inline<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        if self.fill == FILLED {
            &self.data
        } else {
            &[]
        }
    }
}

impl<T, const N: usize> std::ops::DerefMut for Inline<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        if self.fill == FILLED {
            &mut self.data
        } else {
            &mut []
        }
    }
}

impl<T: Serialize, const N: usize> Serialize for Inline<T, N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As `Vec<T>` serialises itself.
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de> + Copy + Default, const N: usize> Deserialize<'de> for Inline<T, N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        let mut out = Inline::default();
        if v.len() == N {
            out.data.copy_from_slice(&v);
            out.fill = FILLED;
        } else if !v.is_empty() {
            out.fill = MISFIT;
        }
        Ok(out)
    }
}

/// Buckets of the rate window kept inside the state (the default 5-minute window of
/// 1-minute buckets); longer windows go to the heap.
const RING_INLINE: usize = 5;

/// The rate window's buckets. Inline up to [`RING_INLINE`] so the common configuration
/// costs no allocation of its own (one dependent cache miss per event fewer with more
/// identities than fit in the cache); encodes exactly like the `Vec<Bucket>` it replaced.
/// An enum rather than both fields side by side: 16 bytes less in every identity.
#[derive(Debug, Clone)]
pub enum Ring {
    Inline {
        len: u8,
        buckets: [Bucket; RING_INLINE],
    },
    /// When the window has more buckets.
    Heap(Box<[Bucket]>),
}

impl Ring {
    /// `n` empty buckets.
    pub fn new(n: usize) -> Self {
        if n <= RING_INLINE {
            Ring::Inline {
                len: n as u8,
                buckets: [Bucket::default(); RING_INLINE],
            }
        } else {
            Ring::Heap(vec![Bucket::default(); n].into_boxed_slice())
        }
    }

    fn from_vec(v: Vec<Bucket>) -> Self {
        if v.len() <= RING_INLINE {
            let mut buckets = [Bucket::default(); RING_INLINE];
            buckets[..v.len()].copy_from_slice(&v);
            Ring::Inline {
                len: v.len() as u8,
                buckets,
            }
        } else {
            Ring::Heap(v.into_boxed_slice())
        }
    }

    /// Heap bytes owned (zero when inline).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Ring::Inline { .. } => 0,
            Ring::Heap(b) => b.len() * std::mem::size_of::<Bucket>(),
        }
    }
}

impl std::ops::Deref for Ring {
    type Target = [Bucket];
    fn deref(&self) -> &[Bucket] {
        match self {
            Ring::Inline { len, buckets } => &buckets[..usize::from(*len).min(RING_INLINE)],
            Ring::Heap(b) => b,
        }
    }
}

impl std::ops::DerefMut for Ring {
    fn deref_mut(&mut self) -> &mut [Bucket] {
        match self {
            Ring::Inline { len, buckets } => &mut buckets[..usize::from(*len).min(RING_INLINE)],
            Ring::Heap(b) => b,
        }
    }
}

impl PartialEq for Ring {
    fn eq(&self, other: &Ring) -> bool {
        **self == **other
    }
}

impl Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As `Vec<Bucket>` serialises itself.
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Ring {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Bucket>::deserialize(d).map(Ring::from_vec)
    }
}

/// Per-identity state. Field order is the snapshot layout (postcard, varints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub first_ms: i64,
    pub last_ms: i64,
    pub events: u64,
    pub flags: u8,
    /// Absolute index (time / bucket) of the newest bucket in `ring`.
    pub ring_head: i64,
    /// `window_buckets` buckets, newest at `ring_head % len`.
    pub ring: Ring,
    /// Absolute hour currently being measured, and its peak window totals so far.
    pub hour: i64,
    pub hour_peak_count: u32,
    pub hour_peak_data: u64,
    /// Totals of the hour in progress and of the one before it (zero after a gap).
    pub hour_count: u32,
    pub hour_data: u64,
    pub prev_hour_count: u32,
    pub prev_hour_data: u64,
    /// Decayed maximum of completed hourly totals (half-life a week): sustained
    /// excess over an hour that never shows as a 5-minute peak (20× reads, spread out).
    pub hour_max_count: f32,
    pub hour_max_data: f32,
    /// Per hour of day: peak-window count mean and its mean absolute deviation,
    /// `q16`-quantised. Empty until the first hour completes. (Data has no seasonal
    /// slots: its hourly and peak references carry it, and 96 bytes per identity matter.)
    pub slots: Inline<u16, SLOTS>,
    /// Decayed maximum of hourly peak window count and data (half-life a week).
    pub peak_max_count: f32,
    pub peak_max_data: f32,
    /// Active buckets per hour of week (halved when one saturates).
    pub profile: Inline<u8, PROFILE_SLOTS>,
    /// EWMA of the failure indicator per event.
    pub fail_rate: f32,
    /// Exact seen-sets: the top 32 bits of each hash ([`seen_entry`]), one sorted run
    /// per kind in kind order, run lengths in `seen_counts`. With at most
    /// `state.max_seen_entries` per kind (32 by default, at most 4,096), a new hash is
    /// taken for a seen one about once in 130 million lookups at the default, once in a
    /// million at the most (and then only makes riskd quieter).
    #[serde(with = "le_words")]
    pub seen: Vec<u32>,
    pub seen_counts: [u16; SEEN_KINDS],
    pub sketch: Sketch,
    /// Decayed count of novelties per kind (see [`Identity::novelty_rate_per_day`]).
    pub novelty: [f32; SEEN_KINDS],
    pub novelty_ms: i64,
    /// Score state: value at `score_ms`, and what the last signal said.
    pub score: f32,
    pub score_ms: i64,
    /// Strongest recent finding per detector (×255) as of `recent_ms`, decaying with the
    /// score's half-life: signs spread over one session (a public address first,
    /// reconnaissance a minute later) combine like signs on one event.
    pub recent: [u8; 8],
    pub recent_ms: i64,
    pub emitted_score: f32,
    /// `Level as u8`, or `u8::MAX` before the first signal.
    pub emitted_level: u8,
    pub emitted_active: bool,
    /// Fleet pulse bookkeeping: window index and detectors already counted in it. Held
    /// in 32 bits, its low half (only compared for equality with the pulse's current
    /// window; see [`narrow_time`] for the snapshot).
    #[serde(with = "narrow_time")]
    pub pulse_window: i32,
    pub pulse_bits: u8,
    /// Hours in which this identity was elevated on fresh evidence (the engine's
    /// sustained-anomaly rule): the absolute hour of bit 0, and bit i = hour − i. Part of
    /// the snapshot, so a restart remembers them like everything else. 32 bits, as
    /// `pulse_window`.
    #[serde(with = "narrow_time")]
    pub elevated_hour: i32,
    pub elevated_hours: u16,
    /// The last sensitive novelty this identity met on its own (not with the fleet), for
    /// the lingering-novelty rule: part of its hash, the hour it was met in and the hours
    /// it has been used in since. 0 when none. See [`Identity::linger`].
    pub lingering: u64,
    /// Bit `k` set: kind `k` overflowed its exact set into `sketch`. Only those kinds
    /// ask the sketch: an identity meeting hundreds of new destinations fills it, and
    /// then it answers "seen" to anything; asked about actions too, it made such an
    /// identity blind to its first `StopLogging`.
    pub overflowed: u8,
    /// The failing calls of the current clock hour, as a 64-bit Bloom filter of their
    /// [`Observation::failure_key`]s (two bits each). SDKs and controllers retry a
    /// throttled or refused call with backoff, often cycling over the few objects they
    /// are reconciling, so one misconfigured key policy or one throttled table shows up
    /// as tens of identical failures; permission probing is failures of *different*
    /// calls. A repeat within the hour is not counted as a new failure. (Twelve keys
    /// fill a tenth of the bits: a probe is rarely taken for a retry.)
    pub failed_this_hour: u64,
    /// Bit `i` set: this identity has made a call matching `score.impair_defences[i]`.
    /// Judged apart from the seen-sets, whose overflow sketch can answer "seen" for an
    /// action never made: a broad identity (a cluster's controller manager meets a
    /// hundred actions) would otherwise be blind to its first `StopLogging`.
    pub impaired: u64,
    /// The destination and class seen-sets were filled by an older generalisation
    /// ([`GENERALISATION`]): their hashes may name destinations differently now (a
    /// secret without its ARN suffix, a queue's class), so new ones are remembered
    /// without being judged or counted for a learning span of event time from this
    /// identity's first event after the upgrade. The clock hours of that span still to
    /// run (0: not relearning; [`RELEARN_NOT_STARTED`]: decoded from an older snapshot,
    /// no event since; see [`Identity::relearning`]). Persisted, so a restart inside the
    /// span neither restarts nor forgets it.
    pub relearn_hours: u8,
    /// Active buckets entered in the current clock hour ([`Identity::hour`]), which
    /// [`Identity::profile`] already counts: `off_hours` judges an hour's slot without
    /// the activity it is judging, or a job running at a dead hour would make the slot
    /// look used within its first minutes (see [`Identity::profile_before_this_hour`]).
    /// Saturating; cleared when the hour closes.
    pub hour_buckets: u8,
    /// The same for the clock hour before [`Identity::hour`] (0 unless it was the hour
    /// just before): a run that started at 02:55 has its first minutes in the 02:00 slot,
    /// which smoothing counts as a neighbour of 03:00.
    pub prev_hour_buckets: u8,
    /// Two sensitivities, a nibble each (see [`Identity::session_sensitivity`] and
    /// [`Identity::above_sensitivity_ceiling`]). Snapshots before the ceiling existed
    /// hold 0 in the upper nibble: ceiling unknown, never exceeded.
    pub sensitivity_marks: u8,
    /// The share of calls that read sensitive data, and the evidence that it is running
    /// above it (low-and-slow exfiltration; see [`SensitiveReads`]). Snapshots before
    /// version 9 start it unlearned.
    pub sensitive_reads: SensitiveReads,
    /// Changed since the last changelog flush (engine bookkeeping, not persisted).
    #[serde(skip)]
    pub dirty: bool,
}

/// The Bloom sketch a seen-set overflows into: absent until the first overflow, then
/// [`SKETCH_WORDS`] words on the heap. A boxed array, not a `Vec`: 8 bytes in every
/// identity instead of 24. Encodes as the `Vec<u64>` it replaced did (little-endian
/// bytes, empty when absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch(Option<Box<[u64; SKETCH_WORDS]>>);

impl Sketch {
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn fill(&mut self) {
        self.0.get_or_insert_with(|| Box::new([0; SKETCH_WORDS]));
    }

    pub fn words(&self) -> &[u64] {
        self.0.as_deref().map_or(&[], |w| w)
    }

    fn words_mut(&mut self) -> &mut [u64] {
        self.0.as_deref_mut().map_or(&mut [], |w| w)
    }

    fn heap_bytes(&self) -> usize {
        self.words().len() * 8
    }
}

impl Serialize for Sketch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        le_words::serialize(self.words(), s)
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let words = le_words::deserialize(d)?;
        if words.is_empty() {
            return Ok(Sketch(None));
        }
        let words: [u64; SKETCH_WORDS] = words.try_into().map_err(|_| {
            serde::de::Error::custom("inconsistent snapshot: sketch is not 512 bits")
        })?;
        Ok(Sketch(Some(Box::new(words))))
    }
}

/// An hour or window index kept in 32 bits in memory (8 bytes per identity matter at a
/// million identities) and written as the `i64` it was before, so snapshots are
/// unchanged both ways (it is serialised as an `i64`). A value out of range saturates:
/// an older snapshot's "never" (`i64::MIN`) reads as `i32::MIN`.
pub mod narrow_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn saturate(value: i64) -> i32 {
        i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
    }

    pub fn serialize<S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::from(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        i64::deserialize(d).map(saturate)
    }
}

/// Word arrays written as their little-endian bytes (a byte array in the snapshot).
/// Seen-set fingerprints and sketch words use all their bits, so varints would take 5
/// bytes per `u32` and 10 per `u64`; this takes 4 and 8.
mod le_words {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub trait Word: Copy {
        const BYTES: usize;
        fn put(self, out: &mut Vec<u8>);
        /// `bytes` is exactly [`Word::BYTES`] long.
        fn get(bytes: &[u8]) -> Self;
    }

    macro_rules! word {
        ($t:ty) => {
            impl Word for $t {
                const BYTES: usize = std::mem::size_of::<$t>();
                fn put(self, out: &mut Vec<u8>) {
                    out.extend_from_slice(&self.to_le_bytes());
                }
                fn get(bytes: &[u8]) -> Self {
                    let mut w = [0u8; std::mem::size_of::<$t>()];
                    w.copy_from_slice(bytes);
                    <$t>::from_le_bytes(w)
                }
            }
        };
    }
    word!(u32);
    word!(u64);

    pub fn serialize<W: Word, S: Serializer>(words: &[W], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(words.len() * W::BYTES);
        for w in words {
            w.put(&mut bytes);
        }
        bytes.serialize(s)
    }

    pub fn deserialize<'de, W: Word, D: Deserializer<'de>>(d: D) -> Result<Vec<W>, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        if bytes.len() % W::BYTES != 0 {
            return Err(serde::de::Error::custom(format!(
                "word array length not a multiple of {}",
                W::BYTES
            )));
        }
        Ok(bytes.chunks_exact(W::BYTES).map(W::get).collect())
    }
}

/// Snapshot format version, first byte of every encoded identity. Version 2 appended
/// the elevated-hours memory; version 1 snapshots are still read (see
/// [`Identity::decode`]).
pub const SNAPSHOT_VERSION: u8 = 9;
/// The generalisation of destinations and classes ([`crate::state::generalize`]) that
/// snapshots of [`SNAPSHOT_VERSION`] were written with. A change to it that renames
/// destinations or classes bumps the snapshot version, and older snapshots are decoded
/// with [`Identity::relearn_hours`] set. Generalisation 2: Secrets Manager ARNs
/// without their random suffix, secrets and parameters classed by their path's first
/// segment, SQS and SNS by account, `repo@ref` inside the repository.
pub const GENERALISATION: u8 = 2;
/// [`Identity::relearn_hours`] of a state decoded from an older snapshot.
pub const RELEARN_NOT_STARTED: u8 = u8::MAX;
/// Most `score.impair_defences` entries an identity can remember meeting
/// ([`Identity::impaired`]).
pub const MAX_IMPAIR_ENTRIES: usize = 64;
const SNAPSHOT_VERSION_1: u8 = 1;
const SNAPSHOT_VERSION_2: u8 = 2;
const SNAPSHOT_VERSION_3: u8 = 3;
const SNAPSHOT_VERSION_4: u8 = 4;
const SNAPSHOT_VERSION_5: u8 = 5;
const SNAPSHOT_VERSION_6: u8 = 6;
const SNAPSHOT_VERSION_7: u8 = 7;
const SNAPSHOT_VERSION_8: u8 = 8;
/// What version 2 appended, as version 1 would have said it: nothing elevated (postcard
/// encodes a zero `i64` and a zero `u16` as one byte each).
const V1_TO_V2_SUFFIX: [u8; 2] = [0, 0];
/// What version 3 appended (the lingering novelty), as version 2 would have said it:
/// none (a zero `u64` is one byte).
const V2_TO_V3_SUFFIX: [u8; 1] = [0];
/// What version 4 appended (the overflowed kinds), as version 3 would have said it;
/// [`Identity::decode`] then derives the mask from the set sizes.
const V3_TO_V4_SUFFIX: [u8; 1] = [0];
/// What version 5 appended (the failing calls of the hour and the impair entries met),
/// as version 4 would have said it: none (two zero `u64`s).
const V4_TO_V5_SUFFIX: [u8; 2] = [0, 0];
/// What version 7 appended, as version 6 and older would have said it: written by
/// generalisation 1, so destinations are relearned ([`RELEARN_NOT_STARTED`]).
const V6_TO_V7_SUFFIX: [u8; 1] = [RELEARN_NOT_STARTED];
/// What version 8 appended (the active buckets of the current and the previous clock
/// hour, the carried signs' sensitivity), as version 7 and older would have said it:
/// none. For the rest of those hours `off_hours` then judges their slots as it did
/// before version 8, with their own activity in them, and carried signs are scaled by
/// the current call's sensitivity, as before.
const V7_TO_V8_SUFFIX: [u8; 3] = [0, 0, 0];
/// What version 9 appended (the sensitive reads), as version 8 and older would have
/// said it: six zero fields, nothing learned, no evidence.
const V8_TO_V9_SUFFIX: [u8; 6] = [0; 6];
/// The two bits of [`Identity::failed_this_hour`] a failure key sets.
fn failure_bits(key: u32) -> u64 {
    (1 << (key & 63)) | (1 << ((key >> 6) & 63))
}

/// Layout of [`Identity::lingering`]: the first-met hour (low 16 bits of the absolute
/// hour), the last counted hour as an offset from it (4 bits), the distinct hours of use
/// (4 bits), and the top 40 bits of the novelty's hash.
const LINGER_HOUR_MASK: u64 = 0xffff;
const LINGER_LAST_SHIFT: u32 = 16;
const LINGER_USED_SHIFT: u32 = 20;
const LINGER_HASH_MASK: u64 = !0 << 24;
/// Hours the elevated-hours memory can look back over (its bits; the window in use is
/// `score.sustained_window`, validated to fit).
pub const MAX_SUSTAINED_HOURS: u32 = 15;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty snapshot")]
    Empty,
    #[error("unsupported snapshot version {0}")]
    Version(u8),
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(&'static str),
}

/// Decodes a snapshot body that must be exactly one [`Identity`]: bytes left over mean a
/// value that was cut, spliced or written by something else, not a state to trust.
fn whole(body: &[u8]) -> Result<Identity, DecodeError> {
    let (id, rest) = postcard::take_from_bytes::<Identity>(body)?;
    if rest.is_empty() {
        Ok(id)
    } else {
        Err(DecodeError::Inconsistent("trailing bytes after the state"))
    }
}

fn seen_key(kind: SeenKind, hash: u64) -> u64 {
    ((kind as u64) << HASH_BITS) | (hash >> (64 - HASH_BITS))
}

/// The exact seen-set's entry for `hash`: its top 32 bits (the kind is the run).
fn seen_entry(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// Rewrites a seen-set of snapshot versions 1–5 (64-bit entries: kind, 37 bits of hash,
/// first-seen hours; read as pairs of 32-bit words) as 32-bit entries. Two entries that
/// differ only in the five hash bits dropped merge. Checks what the old decoder checked:
/// sorted entries of known kinds, in the counts given.
fn upgrade_v5_seen(
    words: &[u32],
    counts: [u16; SEEN_KINDS],
) -> Result<(Vec<u32>, [u16; SEEN_KINDS]), DecodeError> {
    if words.len() % 2 != 0 {
        return Err(DecodeError::Inconsistent("seen entries"));
    }
    let entries: Vec<u64> = words
        .chunks_exact(2)
        .map(|p| u64::from(p[0]) | (u64::from(p[1]) << 32))
        .collect();
    if entries
        .windows(2)
        .any(|w| w[0] >> V5_FIRST_SEEN_BITS >= w[1] >> V5_FIRST_SEEN_BITS)
    {
        return Err(DecodeError::Inconsistent("seen entries not sorted"));
    }
    let mut seen = Vec::with_capacity(entries.len());
    let mut given = [0u16; SEEN_KINDS];
    let mut kept = [0usize; SEEN_KINDS];
    let mut last: Option<(usize, u32)> = None;
    for e in entries {
        let key = e >> V5_FIRST_SEEN_BITS;
        let kind = (key >> HASH_BITS) as usize;
        let c = given
            .get_mut(kind)
            .ok_or(DecodeError::Inconsistent("seen kind"))?;
        *c = c.saturating_add(1);
        // The key holds the hash's top 37 bits; the entry is its top 32.
        let entry = ((key & ((1 << HASH_BITS) - 1)) >> (HASH_BITS - 32)) as u32;
        if last != Some((kind, entry)) {
            seen.push(entry);
            kept[kind] += 1;
            last = Some((kind, entry));
        }
    }
    if given != counts {
        return Err(DecodeError::Inconsistent("seen counts"));
    }
    let mut counts = [0u16; SEEN_KINDS];
    for (count, kept) in counts.iter_mut().zip(kept) {
        *count = u16::try_from(kept).map_err(|_| DecodeError::Inconsistent("seen counts"))?;
    }
    Ok((seen, counts))
}

/// Buckets a ring of `n` opens when its newest bucket moves from `head` to `b` (`b >
/// head`): the distance, at most `n`. A distance wider than i64 (times 2^63 ms apart,
/// which only direct library use can give: decoders keep times within 2000-2200) is
/// wider than the ring too.
fn buckets_opened(head: i64, b: i64, n: i64) -> usize {
    b.checked_sub(head).map_or(n, |d| d.min(n)) as usize
}

impl Identity {
    pub fn new(time_ms: i64, params: &StateParams) -> Self {
        Identity {
            first_ms: time_ms,
            last_ms: time_ms,
            events: 0,
            flags: 0,
            ring_head: time_ms.div_euclid(params.bucket_ms),
            ring: Ring::new(params.window_buckets),
            hour: time_ms.div_euclid(HOUR_MS),
            hour_peak_count: 0,
            hour_peak_data: 0,
            hour_count: 0,
            hour_data: 0,
            prev_hour_count: 0,
            prev_hour_data: 0,
            hour_max_count: 0.0,
            hour_max_data: 0.0,
            slots: Inline::default(),
            peak_max_count: 0.0,
            peak_max_data: 0.0,
            profile: Inline::default(),
            fail_rate: 0.0,
            seen: Vec::new(),
            seen_counts: [0; SEEN_KINDS],
            sketch: Sketch::default(),
            novelty: [0.0; SEEN_KINDS],
            novelty_ms: time_ms,
            score: 0.0,
            score_ms: time_ms,
            recent: [0; 8],
            recent_ms: time_ms,
            emitted_score: 0.0,
            emitted_level: u8::MAX,
            emitted_active: false,
            pulse_window: i32::MIN,
            pulse_bits: 0,
            elevated_hour: 0,
            elevated_hours: 0,
            lingering: 0,
            overflowed: 0,
            failed_this_hour: 0,
            impaired: 0,
            relearn_hours: 0,
            hour_buckets: 0,
            prev_hour_buckets: 0,
            sensitivity_marks: CEILING_NOTHING_MET << 4,
            sensitive_reads: SensitiveReads::default(),
            dirty: false,
        }
    }

    /// Marks this identity elevated (on fresh evidence) at `t`; returns in how many
    /// *other* hours of the last `window_hours` (at most [`MAX_SUSTAINED_HOURS`]) it was
    /// elevated too.
    pub fn mark_elevated(&mut self, t: i64, window_hours: u32) -> u32 {
        let hour = t.div_euclid(HOUR_MS);
        let shift = hour - i64::from(self.elevated_hour);
        if shift > 0 {
            self.elevated_hours = if shift >= 16 {
                0
            } else {
                self.elevated_hours << shift
            };
            self.elevated_hour = narrow_time::saturate(hour);
        } else if shift < 0 {
            // An older event (within the lateness bound): count it where it belongs.
            let back = -shift;
            if back < 16 {
                self.elevated_hours |= 1 << back;
            }
            return 0;
        }
        let window = (1u16 << window_hours.min(MAX_SUSTAINED_HOURS)) - 1;
        let others = (self.elevated_hours & window & !1).count_ones();
        self.elevated_hours |= 1;
        others
    }

    /// Remembers `hash`, a sensitive novelty met alone at `t`, for the lingering-novelty
    /// rule (replacing any earlier one).
    pub fn remember_lingering(&mut self, hash: u64, t: i64) {
        let hour = t.div_euclid(HOUR_MS) as u64 & LINGER_HOUR_MASK;
        self.lingering = (hash & LINGER_HASH_MASK) | (1 << LINGER_USED_SHIFT) | hour;
    }

    /// Forgets the remembered sensitive novelty (once it has been reported).
    pub fn forget_lingering(&mut self) {
        self.lingering = 0;
    }

    /// When this event's `hash` is the remembered sensitive novelty, first met more than
    /// an hour ago (by the clock hour) and at most `window_hours` ago: that many hours,
    /// and in how many distinct clock hours the identity has used it, this one included.
    /// A novelty older than the window is forgotten.
    pub fn linger(&mut self, hash: u64, t: i64, window_hours: u32) -> Option<(u32, u32)> {
        if self.lingering == 0 || (self.lingering ^ hash) & LINGER_HASH_MASK != 0 {
            return None;
        }
        let hour = t.div_euclid(HOUR_MS) as u64 & LINGER_HOUR_MASK;
        // Hours wrap at 2^16 (7.5 years); the rule only looks back a few hours.
        let since =
            (hour.wrapping_sub(self.lingering & LINGER_HOUR_MASK) & LINGER_HOUR_MASK) as u32;
        if since > window_hours.min(MAX_SUSTAINED_HOURS) {
            // Older than the window, or an event from before the meeting (within the
            // lateness bound) that wrapped: either way not continued use.
            if since < u32::from(u16::MAX) / 2 {
                self.lingering = 0;
            }
            return None;
        }
        if since == 0 {
            return None;
        }
        let last = ((self.lingering >> LINGER_LAST_SHIFT) & 0xf) as u32;
        let mut used = ((self.lingering >> LINGER_USED_SHIFT) & 0xf) as u32;
        if since > last {
            used = (used + 1).min(15);
            self.lingering = (self.lingering & (LINGER_HASH_MASK | LINGER_HOUR_MASK))
                | (u64::from(used) << LINGER_USED_SHIFT)
                | (u64::from(since) << LINGER_LAST_SHIFT);
        }
        Some((since, used))
    }

    /// Reads one word from every cache line of the state and of its seen-set and
    /// sketch, folded together (the caller passes the result to `black_box`).
    ///
    /// Why: with more identities than fit in the cache, an event's work met ~14 cache
    /// misses on this state one after another, as the code reached each field (~100 ns
    /// each). These loads do not depend on each other, so the CPU has them all in flight
    /// at once and the work that follows finds the lines in cache: ×0.78 per event at
    /// 100k identities (`cargo bench --bench hot_path`, BENCHMARKS.md). Fields are read rather
    /// than bytes at fixed offsets (no `unsafe`), picked so every line of the layout is
    /// covered: the scalars, and arrays at strides under a line.
    pub fn touch(&self) -> u64 {
        /// Elements of each array read: one per 32 bytes, under any line alignment.
        const RING_STRIDE: usize = 2; // 16-byte buckets
        const SLOT_STRIDE: usize = 16; // u16
        const PROFILE_STRIDE: usize = 32; // u8
        const WORD_STRIDE: usize = 4; // u64
        const HALF_WORD_STRIDE: usize = 8; // u32
        let mut x = self.first_ms as u64
            ^ self.last_ms as u64
            ^ self.events
            ^ u64::from(self.flags)
            ^ self.ring_head as u64
            ^ self.hour as u64
            ^ u64::from(self.hour_peak_count)
            ^ self.hour_peak_data
            ^ u64::from(self.hour_count)
            ^ self.hour_data
            ^ u64::from(self.prev_hour_count)
            ^ self.prev_hour_data
            ^ u64::from(self.hour_max_count.to_bits())
            ^ u64::from(self.hour_max_data.to_bits())
            ^ u64::from(self.peak_max_count.to_bits())
            ^ u64::from(self.peak_max_data.to_bits())
            ^ u64::from(self.fail_rate.to_bits())
            ^ u64::from(self.seen_counts[0])
            ^ u64::from(self.novelty[0].to_bits())
            ^ u64::from(self.novelty[SEEN_KINDS - 1].to_bits())
            ^ self.novelty_ms as u64
            ^ u64::from(self.score.to_bits())
            ^ self.score_ms as u64
            ^ u64::from(self.recent[0])
            ^ self.recent_ms as u64
            ^ u64::from(self.emitted_score.to_bits())
            ^ u64::from(self.emitted_level)
            ^ self.pulse_window as u64
            ^ u64::from(self.pulse_bits)
            ^ self.elevated_hour as u64
            ^ u64::from(self.elevated_hours)
            ^ self.lingering
            ^ u64::from(self.overflowed)
            ^ self.failed_this_hour
            ^ self.impaired;
        for b in self.ring.iter().step_by(RING_STRIDE) {
            x ^= u64::from(b.count);
        }
        for v in self.slots.iter().step_by(SLOT_STRIDE) {
            x ^= u64::from(*v);
        }
        for v in self.profile.iter().step_by(PROFILE_STRIDE) {
            x ^= u64::from(*v);
        }
        for w in self.seen.iter().step_by(HALF_WORD_STRIDE) {
            x ^= u64::from(*w);
        }
        for w in self.sketch.words().iter().step_by(WORD_STRIDE) {
            x ^= w;
        }
        x
    }

    /// Hints the cache to load the state's heap blocks, its seen-set and sketch (the
    /// event path's third level of misses, see [`crate::state::hints`]).
    pub fn prefetch_heap(&self) {
        super::hints::prefetch_slice(&self.seen, 16);
        if let Some(words) = self.sketch.0.as_deref() {
            super::hints::prefetch_object(words, 1);
        }
    }
    /// The highest sensitivity among the calls whose signs [`Identity::recent`] carries
    /// (`None`: none known). A carried sign is combined at its own call's scale, not the
    /// current call's: a restricted secret read followed by an internal clone is not
    /// marked down by the clone.
    pub fn session_sensitivity(&self) -> Option<Sensitivity> {
        sensitivity_from_code(self.sensitivity_marks & 0x0f)
    }

    pub fn set_session_sensitivity(&mut self, level: Option<Sensitivity>) {
        self.sensitivity_marks = (self.sensitivity_marks & 0xf0) | level.map_or(0, |s| s as u8 + 1);
    }

    /// Whether `level` is above every sensitivity this identity met something new at
    /// (destinations, containers and actions, each met once, so in effect everything it
    /// ever touched): its first secret, its first customer data. A ceiling unknown
    /// (state restored from before it was kept) is never exceeded.
    pub fn above_sensitivity_ceiling(&self, level: Sensitivity) -> bool {
        match self.sensitivity_marks >> 4 {
            CEILING_UNKNOWN => false,
            CEILING_NOTHING_MET => true,
            code => level as u8 + 2 > code,
        }
    }

    /// Whether meeting something new can still raise the ceiling: not when it is
    /// unknown or already at restricted (so the engine skips the rule lookup).
    pub fn sensitivity_ceiling_can_rise(&self) -> bool {
        let code = self.sensitivity_marks >> 4;
        code != CEILING_UNKNOWN && code < Sensitivity::Restricted as u8 + 2
    }

    /// Records that this identity met something new at `level`.
    pub fn raise_sensitivity_ceiling(&mut self, level: Sensitivity) {
        let code = self.sensitivity_marks >> 4;
        if code != CEILING_UNKNOWN && level as u8 + 2 > code {
            self.sensitivity_marks = (self.sensitivity_marks & 0x0f) | ((level as u8 + 2) << 4);
        }
    }

    pub fn is_active(&self) -> bool {
        self.flags & FLAG_ACTIVE != 0
    }

    /// The kind this identity's events last named (`Unknown` while none did): what an
    /// enforcement point asking about it without saying its kind is told.
    pub fn kind(&self) -> IdentityKind {
        IdentityKind::from_code(self.flags >> KIND_SHIFT)
    }

    /// Remembers the kind an event named; an event that names none changes nothing.
    pub fn note_kind(&mut self, kind: IdentityKind) {
        if !kind.is_unknown() {
            self.flags = (self.flags & ((1 << KIND_SHIFT) - 1)) | (kind.code() << KIND_SHIFT);
        }
    }

    /// Whether `hash` of `kind` has been seen (exactly, or probably, once the set
    /// overflowed into the sketch: a false "seen" only makes us quieter).
    pub fn has_seen(&self, kind: SeenKind, hash: u64) -> bool {
        let (_, run) = self.seen_run(kind);
        self.has_seen_in(Some(run), kind, hash)
    }

    /// [`Identity::has_seen`] with the exact entries of `kind` located: `run` is the
    /// run, or `None` when the counts do not fit the entries (then the whole set is
    /// searched, as [`Identity::seen_run`] does).
    fn has_seen_in(&self, run: Option<&[u32]>, kind: SeenKind, hash: u64) -> bool {
        if run
            .unwrap_or(&self.seen)
            .binary_search(&seen_entry(hash))
            .is_ok()
        {
            return true;
        }
        self.overflowed & (1 << kind as u8) != 0 && self.sketch_contains(seen_key(kind, hash))
    }

    /// The entries of `kind` and where they start in `seen`. Entries sort by kind first,
    /// so each kind is one run, located from the per-kind counts: searching only the run
    /// touches fewer cache lines than searching the whole set (same answer).
    fn seen_run(&self, kind: SeenKind) -> (usize, &[u32]) {
        let k = kind as usize;
        let start: usize = self.seen_counts[..k].iter().map(|&c| usize::from(c)).sum();
        let end = start + usize::from(self.seen_counts[k]);
        match self.seen.get(start..end) {
            Some(run) => (start, run),
            // Counts and entries agree (decode checks it); the whole set is still a
            // correct place to search if they ever did not.
            None => (0, &self.seen),
        }
    }

    fn sketch_probes(key: u64) -> [usize; 3] {
        let h = super::hash::mix(key);
        let bits = (SKETCH_WORDS * 64) as u64;
        [
            (h % bits) as usize,
            ((h >> 21) % bits) as usize,
            ((h >> 42) % bits) as usize,
        ]
    }

    fn sketch_contains(&self, key: u64) -> bool {
        Self::sketch_probes(key).iter().all(|&b| {
            self.sketch
                .words()
                .get(b / 64)
                .is_some_and(|w| w & (1 << (b % 64)) != 0)
        })
    }

    fn remember(&mut self, kind: SeenKind, hash: u64, max_entries: usize) {
        let k = kind as usize;
        if usize::from(self.seen_counts[k]) < max_entries {
            let entry = seen_entry(hash);
            let (start, run) = self.seen_run(kind);
            if let Err(pos) = run.binary_search(&entry) {
                let pos = start + pos;
                // Exact growth: inserts are rare after learning, and doubling would leave
                // up to half the set's memory unused on every identity.
                self.seen.reserve_exact(1);
                self.seen.insert(pos, entry);
                self.seen_counts[k] += 1;
            }
        } else {
            self.sketch.fill();
            self.overflowed |= 1 << k;
            for b in Self::sketch_probes(seen_key(kind, hash)) {
                if let Some(w) = self.sketch.words_mut().get_mut(b / 64) {
                    *w |= 1 << (b % 64);
                }
            }
        }
    }

    pub fn seen_count(&self, kind: SeenKind) -> usize {
        usize::from(self.seen_counts[kind as usize])
    }

    /// Novelty of `obs` against this state (before folding).
    pub fn novelty(&self, obs: &Observation) -> Novelty {
        // The same answers as `has_seen` for each kind, with the runs located in one pass
        // over the counts rather than by summing the counts before each kind (this runs
        // on every event).
        let mut runs = [(0usize, 0usize); SEEN_KINDS];
        let mut start = 0;
        for (run, &count) in runs.iter_mut().zip(&self.seen_counts) {
            *run = (start, start + usize::from(count));
            start = run.1;
        }
        let seen = |kind: SeenKind, hash: u64| {
            let (start, end) = runs[kind as usize];
            self.has_seen_in(self.seen.get(start..end), kind, hash)
        };
        Novelty {
            dest: !seen(SeenKind::Destination, obs.dest),
            class: !seen(SeenKind::DestinationClass, obs.class),
            action: !seen(SeenKind::Action, obs.action),
            network: obs
                .network
                .is_some_and(|(h, _)| !seen(SeenKind::Network, h)),
            user_agent: obs
                .user_agent
                .is_some_and(|h| !seen(SeenKind::UserAgent, h)),
            environment: obs.environment.is_some_and(|h| {
                self.seen_count(SeenKind::Environment) > 0 && !seen(SeenKind::Environment, h)
            }),
        }
    }

    /// Learned rate at which this identity meets new things of `kind`, per day.
    ///
    /// Novelties are counted from the middle of the learning span on (first contact
    /// while the sets fill is not churn), with exponential forgetting; dividing by the
    /// effective observation time makes it a Poisson rate estimate.
    pub fn novelty_rate_per_day(&self, kind: SeenKind, now_ms: i64, params: &StateParams) -> f64 {
        let start = self.first_ms + params.learning_min_span_ms / 2;
        let t = (now_ms - start) as f64;
        if t <= 0.0 {
            return 0.0;
        }
        let decayed = f64::from(self.novelty[kind as usize])
            * 0.5f64.powf((now_ms - self.novelty_ms).max(0) as f64 / params.novelty_half_life_ms);
        let h = params.novelty_half_life_ms / std::f64::consts::LN_2;
        // Effective window; at least half a day so two novelties in the first hour do not
        // read as 48 per day.
        let effective_days = ((1.0 - (-t / h).exp()) * h / 86_400_000.0).max(0.5);
        decayed / effective_days
    }

    /// Window totals (before this event), over the ring as of `time_ms`.
    pub fn window(&self, time_ms: i64, params: &StateParams) -> Bucket {
        self.window_of_bucket(time_ms.div_euclid(params.bucket_ms))
    }

    /// [`Identity::window`] for the absolute bucket `b` (the caller has divided already).
    fn window_of_bucket(&self, b: i64) -> Bucket {
        let ring: &[Bucket] = &self.ring;
        let n = ring.len() as i64;
        let mut total = Bucket::default();
        if n == 0 {
            return total;
        }
        // Buckets older than `b - n + 1` have left the window.
        let (first, last) = (
            (b - n + 1).max(self.ring_head - n + 1),
            self.ring_head.min(b),
        );
        if last < first {
            return total;
        }
        // At most `n` buckets (`first` is at least `ring_head - n + 1`). The sums
        // saturate and nothing is negative, so any order gives the same totals: with
        // every bucket in the window (an event in the newest bucket, as each fold asks)
        // the ring is summed as it lies, without locating the oldest bucket first.
        let count = (last - first + 1) as usize;
        if count >= ring.len() {
            for bucket in ring {
                total.add(bucket);
            }
            return total;
        }
        // Otherwise from the oldest, wrapping once: one division for the first bucket
        // instead of one per bucket (this runs up to twice on every event).
        let (before, from) = ring.split_at(first.rem_euclid(n) as usize);
        for bucket in from.iter().chain(before).take(count) {
            total.add(bucket);
        }
        total
    }

    /// Seasonal expectation of the peak window count for `hour_of_day`: (mean,
    /// deviation), or `None` before the first hour completes.
    pub fn seasonal(&self, hour_of_day: usize) -> Option<(f64, f64)> {
        if self.slots.len() != SLOTS {
            return None;
        }
        let s = &self.slots[hour_of_day * 2..hour_of_day * 2 + 2];
        Some((dq16(s[0]), dq16(s[1])))
    }

    /// Decayed recent maxima of the hourly peak window (count, data) over completed
    /// hours, as of `hour`. The hour in progress is left out: a spike must not be
    /// measured against itself.
    pub fn peak_max(&self, hour: i64) -> (f64, f64) {
        let f = 0.5f64.powf((hour - self.hour).max(0) as f64 / PEAK_HALF_LIFE_HOURS);
        (
            f64::from(self.peak_max_count) * f,
            f64::from(self.peak_max_data) * f,
        )
    }

    /// Where this identity's sensitive reads stand at `obs` (a sensitive read or not),
    /// before it is folded: see [`SensitiveReads::excess`]. `None` for a late call (its
    /// hour is closed) and while the share is not learned.
    pub fn sensitive_excess(&self, obs: &Observation) -> Option<Excess> {
        let hour = obs.hour();
        let (pending, calls) = match hour.cmp(&self.hour) {
            std::cmp::Ordering::Less => return None,
            std::cmp::Ordering::Equal => (None, self.hour_count.saturating_add(1)),
            std::cmp::Ordering::Greater => (Some((self.hour_count, hour - self.hour)), 1),
        };
        self.sensitive_reads
            .excess(pending, calls, obs.sensitive_read)
    }

    /// [`Identity::sensitive_excess`] after the call is folded in (the engine asks, to
    /// mark an alert as reporting the excess under way).
    pub fn sensitive_excess_folded(&self) -> Option<Excess> {
        self.sensitive_reads.excess(None, self.hour_count, false)
    }

    /// Totals over the last hour as of `time_ms` (before this event): the hour in
    /// progress plus the unexpired share of the previous one (sliding approximation).
    pub fn last_hour(&self, time_ms: i64) -> (f64, f64) {
        let hour = time_ms.div_euclid(HOUR_MS);
        if hour > self.hour + 1 {
            return (0.0, 0.0);
        }
        if hour == self.hour + 1 {
            let keep = 1.0 - time_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
            return (
                f64::from(self.hour_count) * keep,
                self.hour_data as f64 * keep,
            );
        }
        let keep = 1.0 - time_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
        (
            f64::from(self.hour_count) + f64::from(self.prev_hour_count) * keep,
            self.hour_data as f64 + self.prev_hour_data as f64 * keep,
        )
    }

    /// Decayed maxima of completed hourly totals (count, data), as of `hour`.
    pub fn hour_max(&self, hour: i64) -> (f64, f64) {
        let f = 0.5f64.powf((hour - self.hour).max(0) as f64 / PEAK_HALF_LIFE_HOURS);
        (
            f64::from(self.hour_max_count) * f,
            f64::from(self.hour_max_data) * f,
        )
    }

    /// Active-bucket counts per hour of week (empty before any activity).
    pub fn profile(&self) -> &[u8] {
        &self.profile
    }

    /// The profile as it stood before the clock hour before `hour` (the hour of an event
    /// about to be judged) began: the active buckets of `hour` and of the hour before it
    /// taken out of their slots, so a run that began at 02:55 and is judged at 03:02 is
    /// judged on neither hour's minutes. Borrowed as it is when there are none, copied
    /// otherwise.
    pub fn profile_before_this_hour(&self, hour: i64) -> Option<std::borrow::Cow<'_, [u8; 168]>> {
        let profile = <&[u8; 168]>::try_from(self.profile()).ok()?;
        // The state is read before the event is folded: its hour may be the state's
        // latest, or the one after it (the state's latest is then the hour before).
        let (own, before_it) = if hour == self.hour {
            (self.hour_buckets, self.prev_hour_buckets)
        } else if hour == self.hour + 1 {
            (0, self.hour_buckets)
        } else {
            (0, 0)
        };
        if own == 0 && before_it == 0 {
            return Some(std::borrow::Cow::Borrowed(profile));
        }
        let mut before = *profile;
        // The profile halves when a slot saturates: an hour's count may then exceed what
        // is left of its slot.
        for (slot, count) in [(hour, own), (hour - 1, before_it)] {
            let slot = hour_of_week(slot);
            before[slot] -= count.min(before[slot]);
        }
        Some(std::borrow::Cow::Owned(before))
    }

    /// Span of history covered by the profile, in whole weeks (for off-hours confidence).
    pub fn history_ms(&self, now_ms: i64) -> i64 {
        (now_ms - self.first_ms).max(0)
    }

    /// Whether new destinations and classes are only remembered at `t` (see
    /// [`Identity::relearn_hours`]), before `t` is folded: the span starts at this
    /// identity's first event after an upgrade and counts down the clock hours its
    /// events move on (event time; a late event moves nothing).
    pub fn relearning(&mut self, t: i64, span_ms: i64) -> bool {
        const HOUR_MS: i64 = 3_600_000;
        let hour = t.div_euclid(HOUR_MS);
        if self.relearn_hours == RELEARN_NOT_STARTED {
            // The hour this starts in is one of the span's, hence the one more.
            let hours = (span_ms + HOUR_MS - 1) / HOUR_MS + 1;
            self.relearn_hours = u8::try_from(hours.clamp(1, 254)).unwrap_or(254);
        } else if hour > self.hour {
            let passed = u8::try_from(hour - self.hour).unwrap_or(u8::MAX);
            self.relearn_hours = self.relearn_hours.saturating_sub(passed);
        }
        self.relearn_hours != 0
    }

    /// Whether `obs` fails the same call as one of the last two failures did: a client
    /// retrying, not a new failure (see [`Identity::last_failures`]).
    pub fn is_retry(&self, obs: &Observation) -> bool {
        let bits = failure_bits(obs.failure_key);
        obs.failure
            && obs.failure_key != 0
            && obs.hour() == self.hour
            && self.failed_this_hour & bits == bits
    }

    /// Whether `obs` fails with no *other* failing call in its clock hour so far (a
    /// client retrying that one call is still one failure). A late event of an hour
    /// already closed is not: that hour's failures are no longer known.
    pub fn is_only_failure_this_hour(&self, obs: &Observation) -> bool {
        obs.failure
            && (obs.hour() > self.hour
                || (obs.hour() == self.hour
                    && self.failed_this_hour & !failure_bits(obs.failure_key) == 0))
    }

    /// Whether this identity has made a call matching `score.impair_defences[entry]`.
    pub fn has_impaired(&self, entry: usize) -> bool {
        entry < MAX_IMPAIR_ENTRIES && self.impaired & (1 << entry) != 0
    }

    /// Remembers a call matching `score.impair_defences[entry]`.
    pub fn mark_impaired(&mut self, entry: usize) {
        if entry < MAX_IMPAIR_ENTRIES {
            self.impaired |= 1 << entry;
        }
    }

    /// Folds `obs` into the state. `novelty` is what [`Identity::novelty`] returned for it.
    pub fn fold(&mut self, obs: &Observation, novelty: &Novelty, params: &StateParams) {
        self.fold_knowing_window(obs, novelty, params, None);
    }

    /// [`Identity::fold`] for a caller that already summed the window as it stood before
    /// this event (`window_before`: [`Identity::window`] at `obs.time_ms`, on this state,
    /// unchanged since), as the engine's detectors do on most events. The window after
    /// the event is then that plus the event, without summing the ring again.
    pub fn fold_knowing_window(
        &mut self,
        obs: &Observation,
        novelty: &Novelty,
        params: &StateParams,
        window_before: Option<Bucket>,
    ) {
        let t = obs.time_ms;
        let fresh_failure = obs.failure && !self.is_retry(obs);
        self.events += 1;
        self.last_ms = self.last_ms.max(t);
        let hour = obs.hour();
        if hour > self.hour {
            self.roll_hours(hour);
        }
        // Rate window.
        let b = t.div_euclid(params.bucket_ms);
        let ring: &mut [Bucket] = &mut self.ring;
        let n = ring.len() as i64;
        let mut entered_bucket = false;
        // Whether the event went into a bucket of the window (not one already left).
        let mut counted = false;
        if n > 0 {
            // One division for the event's bucket; the buckets it opens are the ones
            // before it, wrapping once.
            let newest = b.rem_euclid(n) as usize;
            if b > self.ring_head {
                let gap = buckets_opened(self.ring_head, b, n);
                let (to_newest, after) = ring.split_at_mut(newest + 1);
                let unwrapped = gap.min(to_newest.len());
                let opened_from = to_newest.len() - unwrapped;
                to_newest[opened_from..].fill(Bucket::default());
                let wrapped_from = after.len() - (gap - unwrapped);
                after[wrapped_from..].fill(Bucket::default());
                self.ring_head = b;
                entered_bucket = true;
            }
            if b > self.ring_head - n {
                counted = true;
                let slot = &mut ring[newest];
                slot.count = slot.count.saturating_add(1);
                slot.fails = slot.fails.saturating_add(u16::from(fresh_failure));
                let judged = novelty.dest && self.relearn_hours == 0;
                slot.new_dests = slot.new_dests.saturating_add(u16::from(judged));
                slot.data = slot.data.saturating_add(obs.data);
            }
        }
        if hour == self.hour {
            self.hour_count = self.hour_count.saturating_add(1);
            self.hour_data = self.hour_data.saturating_add(obs.data);
            if obs.sensitive_read {
                self.sensitive_reads.note_read();
            }
            // The window at `b` covers the same buckets before and after the event: a
            // later bucket only opens buckets that had left it, all zero now. So it is
            // the window before plus the event, when the event was counted in it; the
            // sums saturate and nothing is negative, so adding in another order gives
            // the same totals.
            let w = match window_before {
                Some(before) if counted => Bucket {
                    count: before.count.saturating_add(1),
                    data: before.data.saturating_add(obs.data),
                    ..before
                },
                _ => self.window_of_bucket(b),
            };
            debug_assert!(
                window_before.is_none() || {
                    let summed = self.window_of_bucket(b);
                    (summed.count, summed.data) == (w.count, w.data)
                }
            );
            self.hour_peak_count = self.hour_peak_count.max(w.count);
            self.hour_peak_data = self.hour_peak_data.max(w.data);
        }
        // Profile counts active buckets, not events, so one busy minute does not
        // outweigh a regular schedule.
        if entered_bucket || self.events == 1 {
            if self.profile.len() != PROFILE_SLOTS {
                self.profile.reset_filled();
            }
            let how = obs.hour_of_week();
            if self.profile[how] == u8::MAX {
                for c in self.profile.iter_mut() {
                    *c /= 2;
                }
            }
            self.profile[how] += 1;
            if hour == self.hour {
                self.hour_buckets = self.hour_buckets.saturating_add(1);
            }
        }
        // Outcomes: a running mean at first, then an EWMA with ~200 events of memory.
        let alpha = (1.0 / self.events as f32).max(0.005);
        self.fail_rate += alpha * (f32::from(u8::from(fresh_failure)) - self.fail_rate);
        if fresh_failure && hour == self.hour {
            self.failed_this_hour |= failure_bits(obs.failure_key);
        }
        // Seen-sets and novelty rates.
        // Decay at most once a minute: the rate changes slowly and powf is not free. Rates
        // that are all zero (an identity that never met anything new once it was
        // counting) stay zero, so they skip the powf.
        if t - self.novelty_ms >= 60_000 {
            if self.novelty.iter().any(|&v| v != 0.0) {
                let decay =
                    0.5f32.powf((t - self.novelty_ms) as f32 / params.novelty_half_life_ms as f32);
                for v in &mut self.novelty {
                    *v *= decay;
                }
            }
            self.novelty_ms = t;
        }
        // The first environment label is learned, not counted as churn.
        let first_env = obs
            .environment
            .is_some_and(|_| self.seen_count(SeenKind::Environment) == 0);
        // Most events meet nothing new: nothing to remember or count.
        if novelty.dest
            || novelty.class
            || novelty.action
            || novelty.network
            || novelty.user_agent
            || novelty.environment
            || first_env
        {
            self.remember_novelties(obs, novelty, first_env, params);
        }
        if let Some((_, class)) = obs.network {
            self.flags |= match class {
                SourceClass::Private => FLAG_PRIVATE,
                SourceClass::Public => FLAG_PUBLIC,
                SourceClass::Named => FLAG_NAMED,
            };
        }
        if !self.is_active() && learned_enough(self.events, t - self.first_ms, params) {
            self.flags |= FLAG_ACTIVE;
        }
    }

    /// Remembers what `obs` met that was new (see [`Identity::fold`]), and counts it in
    /// the novelty rates once they are counting.
    fn remember_novelties(
        &mut self,
        obs: &Observation,
        novelty: &Novelty,
        first_env: bool,
        params: &StateParams,
    ) {
        let counting = obs.time_ms >= self.first_ms + params.learning_min_span_ms / 2
            && self.events * 2 >= params.learning_min_events;
        let items = [
            (
                SeenKind::Destination,
                Some(obs.dest),
                novelty.dest,
                novelty.dest,
            ),
            (
                SeenKind::DestinationClass,
                Some(obs.class),
                novelty.class,
                novelty.class,
            ),
            (
                SeenKind::Action,
                Some(obs.action),
                novelty.action,
                novelty.action,
            ),
            (
                SeenKind::Network,
                obs.network.map(|n| n.0),
                novelty.network,
                novelty.network,
            ),
            (
                SeenKind::UserAgent,
                obs.user_agent,
                novelty.user_agent,
                novelty.user_agent,
            ),
            (
                SeenKind::Environment,
                obs.environment,
                novelty.environment || first_env,
                novelty.environment,
            ),
        ];
        for (kind, hash, remember, count) in items {
            if let (Some(h), true) = (hash, remember) {
                self.remember(kind, h, params.max_seen_entries);
                let relearned = self.relearn_hours != 0
                    && matches!(kind, SeenKind::Destination | SeenKind::DestinationClass);
                if counting && count && !relearned {
                    self.novelty[kind as usize] += 1.0;
                }
            }
        }
    }

    /// Closes the measured hour(s) up to `hour`: their peaks (zero for idle hours) go into
    /// the hour-of-day slots and the decayed maximum.
    fn roll_hours(&mut self, hour: i64) {
        if self.slots.len() != SLOTS {
            self.slots.reset_filled();
            // Seed each slot with the first hour's peak as a level, so a new identity's
            // first day is not measured against zeros.
            let c = q16(f64::from(self.hour_peak_count));
            for s in self.slots.chunks_exact_mut(2) {
                s[0] = c;
                s[1] = c;
            }
        }
        let elapsed = hour - self.hour;
        // After a week of idle hours every slot has been folded with zeros once; more
        // iterations change little, so the work per event stays bounded.
        let steps = elapsed.min(168);
        for k in 0..steps {
            let h = self.hour + k;
            let x = if k == 0 {
                f64::from(self.hour_peak_count)
            } else {
                0.0
            };
            let i = hour_of_day(h) * 2;
            let s = &mut self.slots[i..i + 2];
            let mean = dq16(s[0]);
            let dev = dq16(s[1]);
            s[0] = q16(mean + SLOT_ALPHA * (x - mean));
            s[1] = q16(dev + SLOT_ALPHA * ((x - mean).abs() - dev));
        }
        // An hour that spiked raises the reference at most to twice the previous one
        // (plus a floor), so an attack does not become the baseline for the next one,
        // while real growth (a sale day) is absorbed within hours.
        let f = 0.5f64.powf(elapsed as f64 / PEAK_HALF_LIFE_HOURS);
        // While learning there is no reference to protect yet: take peaks as they come.
        let clip = self.is_active();
        let grow = |prev: f64, peak: f64, floor: f64| {
            let peak = if clip {
                peak.min(2.0 * prev + floor)
            } else {
                peak
            };
            (prev * f).max(peak)
        };
        self.peak_max_count = grow(
            f64::from(self.peak_max_count),
            f64::from(self.hour_peak_count),
            10.0,
        ) as f32;
        self.peak_max_data = grow(
            f64::from(self.peak_max_data),
            self.hour_peak_data as f64,
            1_048_576.0,
        ) as f32;
        self.hour_max_count = grow(
            f64::from(self.hour_max_count),
            f64::from(self.hour_count),
            30.0,
        ) as f32;
        self.hour_max_data = grow(
            f64::from(self.hour_max_data),
            self.hour_data as f64,
            4_194_304.0,
        ) as f32;
        self.sensitive_reads.close_hour(self.hour_count, elapsed);
        (self.prev_hour_count, self.prev_hour_data) = if elapsed == 1 {
            (self.hour_count, self.hour_data)
        } else {
            (0, 0)
        };
        self.hour_count = 0;
        self.hour_data = 0;
        self.hour = hour;
        self.hour_peak_count = 0;
        self.hour_peak_data = 0;
        self.failed_this_hour = 0;
        self.prev_hour_buckets = if elapsed == 1 { self.hour_buckets } else { 0 };
        self.hour_buckets = 0;
    }

    /// Compact binary encoding for the changelog: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_VERSION];
        // Serialising plain data into a Vec cannot fail; keep the byte on the off chance.
        if let Ok(body) = postcard::to_stdvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Decodes [`Identity::encode`] output, checking what later code relies on.
    pub fn decode(bytes: &[u8], params: &StateParams) -> Result<Self, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        let mut id: Identity = match version {
            SNAPSHOT_VERSION => whole(body)?,
            SNAPSHOT_VERSION_8 => {
                let mut upgraded = Vec::with_capacity(body.len() + V8_TO_V9_SUFFIX.len());
                upgraded.extend_from_slice(body);
                upgraded.extend_from_slice(&V8_TO_V9_SUFFIX);
                whole(&upgraded)?
            }
            SNAPSHOT_VERSION_7 => {
                let mut upgraded = Vec::with_capacity(body.len() + 9);
                upgraded.extend_from_slice(body);
                upgraded.extend_from_slice(&V7_TO_V8_SUFFIX);
                upgraded.extend_from_slice(&V8_TO_V9_SUFFIX);
                whole(&upgraded)?
            }
            SNAPSHOT_VERSION_6 | SNAPSHOT_VERSION_5 => {
                let mut upgraded = Vec::with_capacity(body.len() + 10);
                upgraded.extend_from_slice(body);
                upgraded.extend_from_slice(&V6_TO_V7_SUFFIX);
                upgraded.extend_from_slice(&V7_TO_V8_SUFFIX);
                upgraded.extend_from_slice(&V8_TO_V9_SUFFIX);
                whole(&upgraded)?
            }
            SNAPSHOT_VERSION_4 => {
                let mut upgraded = Vec::with_capacity(body.len() + 12);
                upgraded.extend_from_slice(body);
                upgraded.extend_from_slice(&V4_TO_V5_SUFFIX);
                upgraded.extend_from_slice(&V6_TO_V7_SUFFIX);
                upgraded.extend_from_slice(&V7_TO_V8_SUFFIX);
                upgraded.extend_from_slice(&V8_TO_V9_SUFFIX);
                whole(&upgraded)?
            }
            SNAPSHOT_VERSION_1 | SNAPSHOT_VERSION_2 | SNAPSHOT_VERSION_3 => {
                let mut upgraded = Vec::with_capacity(body.len() + 13);
                upgraded.extend_from_slice(body);
                if version == SNAPSHOT_VERSION_1 {
                    upgraded.extend_from_slice(&V1_TO_V2_SUFFIX);
                }
                if version <= SNAPSHOT_VERSION_2 {
                    upgraded.extend_from_slice(&V2_TO_V3_SUFFIX);
                }
                upgraded.extend_from_slice(&V3_TO_V4_SUFFIX);
                upgraded.extend_from_slice(&V4_TO_V5_SUFFIX);
                upgraded.extend_from_slice(&V6_TO_V7_SUFFIX);
                upgraded.extend_from_slice(&V7_TO_V8_SUFFIX);
                upgraded.extend_from_slice(&V8_TO_V9_SUFFIX);
                let mut id: Identity = whole(&upgraded)?;
                // Older states did not say which kinds overflowed: those whose exact set
                // is full did (a kind only spills into the sketch when its set is full).
                if !id.sketch.is_empty() {
                    for (k, &count) in id.seen_counts.iter().enumerate() {
                        if usize::from(count) >= params.max_seen_entries {
                            id.overflowed |= 1 << k;
                        }
                    }
                }
                id
            }
            other => return Err(DecodeError::Version(other)),
        };
        if version < SNAPSHOT_VERSION_6 {
            (id.seen, id.seen_counts) = upgrade_v5_seen(&id.seen, id.seen_counts)?;
        }
        if !id.slots.is_empty() && id.slots.len() != SLOTS {
            return Err(DecodeError::Inconsistent("slots"));
        }
        if !id.profile.is_empty() && id.profile.len() != PROFILE_SLOTS {
            return Err(DecodeError::Inconsistent("profile"));
        }
        let mut start = 0;
        for &count in &id.seen_counts {
            let end = start + usize::from(count);
            let run = id
                .seen
                .get(start..end)
                .ok_or(DecodeError::Inconsistent("seen counts"))?;
            if run.windows(2).any(|w| w[0] >= w[1]) {
                return Err(DecodeError::Inconsistent("seen entries not sorted"));
            }
            start = end;
        }
        if start != id.seen.len() {
            return Err(DecodeError::Inconsistent("seen counts"));
        }
        // Numbers the engine divides by, takes logarithms of and schedules from: a
        // corrupt or foreign value (an infinite score made a decay signal due every
        // millisecond) must not get in.
        let floats = [
            id.hour_max_count,
            id.hour_max_data,
            id.peak_max_count,
            id.peak_max_data,
            id.fail_rate,
            id.score,
            id.emitted_score,
        ];
        if floats
            .iter()
            .chain(&id.novelty)
            .any(|x| !x.is_finite() || *x < 0.0)
        {
            return Err(DecodeError::Inconsistent("negative or non-finite number"));
        }
        if id.score > 100.0 || id.emitted_score > 100.0 || id.fail_rate > 1.0 {
            return Err(DecodeError::Inconsistent("score or rate out of range"));
        }
        // A changed `state.window`/`state.bucket` invalidates the ring, not the baseline.
        // The head is in bucket units: after a change of width it no longer matches the
        // newest event (kept, the ring would never count an event again).
        let head = id.last_ms.div_euclid(params.bucket_ms);
        if id.ring.len() != params.window_buckets || id.ring_head != head {
            id.ring = Ring::new(params.window_buckets);
            id.ring_head = head;
        }
        Ok(id)
    }

    /// Estimated heap bytes owned by this state (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes() + self.seen.capacity() * 4 + self.sketch.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_up_truncated_is_round() {
        let below_half = 0.5 - f64::EPSILON / 4.0;
        let mut values = vec![0.0, below_half, 0.5, 1.5, 2.5, 254.5, 65534.5, 1e15 + 0.5];
        // Pseudo-random values, and each one's neighbours in floating point.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << 53) as f64 * 70_000.0;
            values.extend([v, v.next_down(), v.next_up(), v.floor() + 0.5]);
        }
        for v in values {
            assert_eq!(round_half_up(v).trunc(), v.round(), "{v:e}");
        }
        // NaN stays NaN (the callers' clamp and cast turn it into 0, as before).
        assert!(round_half_up(f64::NAN).is_nan());
    }

    pub(crate) fn params() -> StateParams {
        StateParams {
            bucket_ms: 60_000,
            window_buckets: 5,
            max_seen_entries: 4,
            learning_min_events: 10,
            learning_min_span_ms: 3_600_000,
            learning_sparse_span_ms: 0,
            novelty_half_life_ms: 7.0 * 86_400_000.0,
        }
    }

    fn obs(t: i64, dest: u64, action: u64) -> Observation {
        use crate::state::hash::mix;
        Observation {
            time_ms: t,
            dest: mix(dest),
            class: mix(dest / 10),
            action: mix(action),
            network: Some((7, SourceClass::Private)),
            user_agent: Some(9),
            environment: None,
            failure: false,
            failure_key: 0,
            data: 100,
            sensitive_read: false,
        }
    }

    fn fold(id: &mut Identity, o: &Observation, p: &StateParams) -> Novelty {
        let n = id.novelty(o);
        id.fold(o, &n, p);
        n
    }

    #[test]
    fn narrowed_times_are_written_as_the_64_bit_values_they_were() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Wide(i64, i64);
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Narrow(
            #[serde(with = "narrow_time")] i32,
            #[serde(with = "narrow_time")] i32,
        );
        fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
            postcard::to_stdvec(value).expect("encodes")
        }
        // The same bytes for the values both can hold.
        let narrow = Narrow(i32::MIN, 493_000);
        assert_eq!(bytes(&narrow), bytes(&Wide(i64::from(i32::MIN), 493_000)));
        // An older snapshot's "never" and a value beyond 32 bits saturate.
        let old = bytes(&Wide(i64::MIN, i64::MAX));
        let back: Narrow = postcard::from_bytes(&old).expect("decodes");
        assert_eq!(back, Narrow(i32::MIN, i32::MAX));
    }

    #[test]
    fn the_state_stays_small_and_misfit_snapshots_are_refused() {
        // Every identity carries this inline (design: under 1 KiB each with its heap and
        // table slot): a field added here should be a decision, not an accident.
        // 616: version 8's byte for the hour's own active buckets took 8 with alignment;
        // 624: version 9's sensitive reads (11 bytes, 8 with the padding they filled);
        // 616 again with the pulse window and the elevated hour in 32 bits.
        let size = std::mem::size_of::<Identity>();
        assert!(size <= 616, "Identity is {size} bytes inline");
        assert!(std::mem::size_of::<Ring>() <= 88);
        assert_eq!(std::mem::size_of::<Sketch>(), 8);
        // A sketch or a profile of the wrong length is refused, not truncated or padded.
        let sketch = |bytes: usize| postcard::to_stdvec(&vec![0u8; bytes]).expect("encodes");
        let decode = |b: Vec<u8>| postcard::from_bytes::<Sketch>(&b);
        assert!(decode(sketch(0)).is_ok_and(|s| s.is_empty()));
        assert!(decode(sketch(64)).is_ok_and(|s| s.words() == [0; SKETCH_WORDS]));
        assert!(decode(sketch(56)).is_err());
        let profile = |n: usize| {
            postcard::from_bytes::<Inline<u8, PROFILE_SLOTS>>(
                &postcard::to_stdvec(&vec![1u8; n]).expect("encodes"),
            )
            .expect("decodes")
        };
        assert_eq!((profile(0).len(), profile(0).is_empty()), (0, true));
        assert_eq!(profile(PROFILE_SLOTS).len(), PROFILE_SLOTS);
        let misfit = profile(100);
        assert!(!misfit.is_empty() && misfit.len() != PROFILE_SLOTS);
        assert!(misfit.iter().next().is_none(), "a misfit shows no data");
    }

    #[test]
    fn only_failure_of_the_hour_ignores_retries_but_not_other_calls_or_late_events() {
        let p = params();
        let hour = 3_600_000;
        let t = 100 * hour + 60_000;
        let mut id = Identity::new(t, &p);
        fold(&mut id, &obs(t, 1, 1), &p);
        let failing = |at: i64, key: u32| Observation {
            failure: true,
            failure_key: key,
            ..obs(at, 2, 2)
        };
        assert!(id.is_only_failure_this_hour(&failing(t + 1_000, 0x0105)));
        fold(&mut id, &failing(t + 1_000, 0x0105), &p);
        // The same call retried is still the only failure ...
        assert!(id.is_only_failure_this_hour(&failing(t + 2_000, 0x0105)));
        // ... another one is not, nor is a call that succeeds.
        assert!(!id.is_only_failure_this_hour(&failing(t + 2_000, 0x0209)));
        assert!(!id.is_only_failure_this_hour(&obs(t + 2_000, 2, 2)));
        // A late event of the hour before: its failures are no longer known.
        assert!(!id.is_only_failure_this_hour(&failing(t - hour, 0x0209)));
        // The next hour starts afresh.
        assert!(id.is_only_failure_this_hour(&failing(t + hour, 0x0209)));
    }

    #[test]
    fn a_wider_bucket_after_a_restart_still_counts_events() {
        // Regression: the ring's head is in bucket units. Restored with 2-minute buckets
        // after 1-minute ones (same 5 buckets), the head pointed twice as far ahead as
        // any new event, and the window stayed empty for good: the volume detectors
        // went blind for every restored identity.
        let p = params();
        let start = 1_795_593_600_000;
        let mut id = Identity::new(start, &p);
        for k in 0..10 {
            fold(&mut id, &obs(start + k * 30_000, 1 << 40, 1), &p);
        }
        let wider = StateParams {
            bucket_ms: 120_000,
            ..p
        };
        let mut restored = Identity::decode(&id.encode(), &wider).expect("decodes");
        let t = start + 10 * 30_000;
        fold(&mut restored, &obs(t, 1 << 40, 1), &wider);
        assert!(restored.window(t, &wider).count >= 1);
    }

    #[test]
    fn a_snapshot_with_an_impossible_score_is_refused() {
        let p = params();
        let id = Identity::new(0, &p);
        for score in [f32::INFINITY, f32::NAN, -1.0, 100.5] {
            let mut bad = id.clone();
            bad.score = score;
            assert!(Identity::decode(&bad.encode(), &p).is_err(), "{score}");
        }
        assert!(Identity::decode(&id.encode(), &p).is_ok());
    }

    #[test]
    fn a_full_sketch_of_destinations_leaves_other_kinds_judged_exactly() {
        let p = params();
        let mut id = Identity::new(0, &p);
        // A log shipper writing to a new log stream on every call: hundreds of
        // destinations fill the sketch until it answers "seen" to almost anything.
        for d in 0..2_000u64 {
            fold(&mut id, &obs(d as i64 * 1000, (d + 1) << 40, 1), &p);
        }
        let unseen = (0..100u64)
            .filter(|a| {
                !id.has_seen(
                    SeenKind::Destination,
                    crate::state::hash::mix((a + 1) << 50),
                )
            })
            .count();
        assert!(
            unseen < 10,
            "the sketch is full: {unseen} of 100 read as new"
        );
        // Its one action is exact, and a first `StopLogging` is still new.
        let first = obs(2_000_000, 1 << 40, 77);
        assert!(id.novelty(&first).action);
        // A state written before the mask existed gets it from the set sizes.
        let v5 = encode_v5(&id);
        let mut v3 = v5[..v5.len() - V4_TO_V5_SUFFIX.len() - V3_TO_V4_SUFFIX.len()].to_vec();
        v3[0] = SNAPSHOT_VERSION_3;
        let back = Identity::decode(&v3, &p).expect("v3 decodes");
        assert_eq!(back.overflowed, id.overflowed);
        assert_eq!(back.overflowed & (1 << SeenKind::Action as u8), 0);
        assert!(back.novelty(&first).action);
    }

    #[test]
    fn seen_sets_are_exact_then_sketched() {
        let p = params();
        let mut id = Identity::new(0, &p);
        for d in 0..10u64 {
            let n = fold(&mut id, &obs(d as i64 * 1000, d << 40, 1), &p);
            assert!(n.dest, "{d} new");
        }
        assert_eq!(id.seen_count(SeenKind::Destination), 4);
        assert!(!id.sketch.is_empty());
        for d in 0..10u64 {
            assert!(
                id.has_seen(SeenKind::Destination, crate::state::hash::mix(d << 40)),
                "{d} remembered"
            );
        }
        assert!(!id.has_seen(SeenKind::Action, crate::state::hash::mix(2)));
        // Destinations (and, in this test, their classes) overflowed; actions did not.
        let dests_and_classes =
            1 << SeenKind::Destination as u8 | 1 << SeenKind::DestinationClass as u8;
        assert_eq!(id.overflowed, dests_and_classes);
    }

    #[test]
    fn window_slides_in_event_time() {
        let p = params();
        let mut id = Identity::new(0, &p);
        for k in 0..10 {
            fold(&mut id, &obs(k * 10_000, 1, 1), &p);
        }
        assert_eq!(id.window(100_000, &p).count, 10);
        // Six minutes later the first two buckets have left the 5-minute window.
        assert_eq!(id.window(360_000, &p).count, 0);
        assert_eq!(id.window(300_000, &p).count, 4);
    }

    #[test]
    fn the_ring_opens_and_sums_buckets_as_indexing_each_by_its_absolute_bucket_did() {
        // Against a model keeping each absolute bucket's count: gaps of every size, late
        // events, and windows asked at times around the newest bucket, for rings inline
        // and on the heap.
        for window_buckets in [1, 3, 5, 7] {
            let p = StateParams {
                window_buckets,
                ..params()
            };
            let n = window_buckets as i64;
            let mut id = Identity::new(0, &p);
            let mut counts = std::collections::BTreeMap::<i64, u32>::new();
            let mut head = 0i64;
            let mut t = 0i64;
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..400 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let step = (seed >> 33) as i64 % (9 * 60_000) - 60_000 * 2;
                t = (t + step).max(0);
                let b = t / 60_000;
                fold(&mut id, &obs(t, 1, 1), &p);
                head = head.max(b);
                if b > head - n {
                    *counts.entry(b).or_default() += 1;
                }
                for asked in [b - n - 1, b - 2, b - 1, b, b + 1, b + 3, b + n + 1] {
                    let (first, last) = ((asked - n + 1).max(head - n + 1), asked.min(head));
                    let expected: u32 = if first <= last {
                        counts.range(first..=last).map(|(_, c)| c).sum()
                    } else {
                        0
                    };
                    let got = id.window(asked * 60_000 + 30_000, &p).count;
                    assert_eq!(got, expected, "n {n}, newest {head}, asked {asked}");
                }
            }
        }
    }

    #[test]
    fn a_gap_wider_than_i64_opens_the_whole_ring() {
        assert_eq!(buckets_opened(10, 12, 5), 2);
        assert_eq!(buckets_opened(10, 99, 5), 5);
        // The distance overflows i64: every bucket is opened, not an index past the ring.
        assert_eq!(buckets_opened(i64::MIN + 97, i64::MAX - 5, 46), 46);
        assert_eq!(buckets_opened(-1, i64::MAX, 3), 3);
    }

    #[test]
    fn novelty_answers_as_has_seen_does_for_each_kind() {
        let p = params();
        let t = 1_700_000_000_000;
        let mut id = Identity::new(t, &p);
        let with_all = |k: u64| Observation {
            network: Some((k % 3, SourceClass::Private)),
            user_agent: Some(k % 2),
            environment: Some(k % 4),
            ..obs(t + k as i64 * 60_000, k << 40, k % 5)
        };
        for k in 0..12 {
            fold(&mut id, &with_all(k), &p);
        }
        let agree = |id: &Identity| {
            for k in 0..24 {
                let o = with_all(k);
                let n = id.novelty(&o);
                let network = o.network.map_or(0, |n| n.0);
                assert_eq!(
                    [n.dest, n.class, n.action, n.network, n.user_agent],
                    [
                        !id.has_seen(SeenKind::Destination, o.dest),
                        !id.has_seen(SeenKind::DestinationClass, o.class),
                        !id.has_seen(SeenKind::Action, o.action),
                        !id.has_seen(SeenKind::Network, network),
                        !id.has_seen(SeenKind::UserAgent, k % 2),
                    ],
                    "{k}"
                );
                assert_eq!(n.environment, !id.has_seen(SeenKind::Environment, k % 4));
            }
        };
        agree(&id);
        // Counts that do not fit the entries: the whole set is searched, both ways.
        id.seen_counts[SeenKind::Action as usize] += 40;
        agree(&id);
    }

    #[test]
    fn lifecycle_needs_events_and_span() {
        let p = params();
        let mut id = Identity::new(0, &p);
        for k in 0..20 {
            fold(&mut id, &obs(k * 1000, 1, 1), &p);
        }
        assert!(!id.is_active(), "enough events but not enough span");
        fold(&mut id, &obs(3_600_000, 1, 1), &p);
        assert!(id.is_active());
    }

    #[test]
    fn seasonal_baseline_learns_hourly_peaks() {
        let p = params();
        let mut id = Identity::new(0, &p);
        // 30 events in one minute at the top of every hour for three days.
        for h in 0..240 {
            for k in 0..30 {
                fold(&mut id, &obs(h * HOUR_MS + k * 1000, 1, 1), &p);
            }
        }
        let (mean, dev) = id.seasonal(5).expect("a day of history");
        assert!((mean - 30.0).abs() < 3.0, "mean {mean}");
        assert!(dev < 5.0, "dev {dev}");
        assert!((id.peak_max(240).0 - 30.0).abs() < 1.0);
    }

    #[test]
    fn novelty_rate_tracks_churn() {
        let p = params();
        let mut stable = Identity::new(0, &p);
        let mut churn = Identity::new(0, &p);
        for k in 0..(48 * 6) {
            let t = k * 600_000;
            fold(&mut stable, &obs(t, 1 << 40, 1), &p);
            fold(&mut churn, &obs(t, (k as u64 / 6) << 40, 1), &p);
        }
        let now = 48 * HOUR_MS;
        let r0 = stable.novelty_rate_per_day(SeenKind::Destination, now, &p);
        let r1 = churn.novelty_rate_per_day(SeenKind::Destination, now, &p);
        assert!(r0 < 0.01, "stable {r0}");
        assert!(r1 > 10.0, "churn {r1}");
    }

    #[test]
    fn encoding_round_trips_and_is_compact() {
        let p = params();
        let mut id = Identity::new(1_700_000_000_000, &p);
        for k in 0..500 {
            fold(
                &mut id,
                &obs(
                    1_700_000_000_000 + k * 120_000,
                    (k as u64 % 3) << 40,
                    k as u64 % 2,
                ),
                &p,
            );
        }
        let bytes = id.encode();
        let back = Identity::decode(&bytes, &p).expect("decodes");
        assert_eq!(back, id);
        assert!(bytes.len() < 700, "{} bytes", bytes.len());
        assert!(Identity::decode(&bytes[..bytes.len() / 2], &p).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        let err = Identity::decode(&longer, &p).expect_err("a byte too many");
        assert!(err.to_string().contains("trailing bytes"), "{err}");
        assert!(Identity::decode(&[9, 1, 2], &p).is_err());
        assert!(Identity::decode(&[], &p).is_err());
    }

    /// Bytes versions 7, 8 and 9 appended to version 6's (version 9's when nothing is
    /// learned: see [`encode_unlearned`]).
    const SINCE_V6: usize = V6_TO_V7_SUFFIX.len() + V7_TO_V8_SUFFIX.len() + V8_TO_V9_SUFFIX.len();

    /// `id` encoded with its sensitive reads unlearned, as an older snapshot decodes:
    /// what version 9 appended is then six zero bytes, and each older version's bytes
    /// are a prefix of these.
    fn encode_unlearned(id: &Identity) -> Vec<u8> {
        let mut old = id.clone();
        old.sensitive_reads = SensitiveReads::default();
        old.encode()
    }

    /// `id` as snapshot version 5 wrote it: each seen entry 64 bits (kind, the hash's top
    /// 37 bits, first-seen hours), here with the five bits version 6 drops at 0 and a
    /// first-seen time of 3 h.
    fn encode_v5(id: &Identity) -> Vec<u8> {
        let mut old = id.clone();
        old.seen.clear();
        let mut start = 0;
        for (kind, &count) in id.seen_counts.iter().enumerate() {
            for &entry in &id.seen[start..start + usize::from(count)] {
                let key = ((kind as u64) << HASH_BITS) | (u64::from(entry) << (HASH_BITS - 32));
                let word = (key << V5_FIRST_SEEN_BITS) | 3;
                old.seen.extend([word as u32, (word >> 32) as u32]);
            }
            start += usize::from(count);
        }
        let mut bytes = encode_unlearned(&old);
        bytes[0] = SNAPSHOT_VERSION_5;
        // Without what versions 7, 8 and 9 appended (`relearn_hours`; `hour_buckets`,
        // `prev_hour_buckets` and `session_sensitivity`, a byte each; the sensitive
        // reads, unlearned).
        bytes.truncate(bytes.len() - SINCE_V6);
        bytes
    }

    #[test]
    fn version_5_seen_entries_become_32_bit_fingerprints() {
        let p = params();
        let t = 1_700_000_000_000;
        let mut id = Identity::new(t, &p);
        for k in 0..6u64 {
            fold(&mut id, &obs(t + k as i64 * 60_000, k << 40, k % 2), &p);
        }
        let mut back = Identity::decode(&encode_v5(&id), &p).expect("v5 decodes");
        assert_eq!(back.relearn_hours, RELEARN_NOT_STARTED);
        assert_eq!(
            (
                back.hour_buckets,
                back.prev_hour_buckets,
                back.sensitivity_marks
            ),
            (0, 0, 0)
        );
        back.relearn_hours = 0;
        back.hour_buckets = id.hour_buckets;
        back.prev_hour_buckets = id.prev_hour_buckets;
        back.sensitivity_marks = id.sensitivity_marks;
        assert_eq!(back.sensitive_reads, SensitiveReads::default());
        back.sensitive_reads = id.sensitive_reads;
        assert_eq!(back, id);
        assert_eq!(back.encode(), id.encode());
        // Two version-5 entries that differ only in the dropped bits are one now.
        let mut twins = Identity::new(t, &p);
        let word = |low: u64| (((7u64 << 5) | low) << V5_FIRST_SEEN_BITS) | 1;
        twins.seen = [word(1), word(2)]
            .iter()
            .flat_map(|w| [*w as u32, (*w >> 32) as u32])
            .collect();
        twins.seen_counts = [2, 0, 0, 0, 0, 0];
        let mut bytes = twins.encode();
        bytes[0] = SNAPSHOT_VERSION_5;
        bytes.truncate(bytes.len() - SINCE_V6);
        let back = Identity::decode(&bytes, &p).expect("v5 decodes");
        assert_eq!(
            (back.seen.as_slice(), back.seen_counts[0]),
            (&[7u32][..], 1)
        );
        assert!(back.has_seen(SeenKind::Destination, 7 << 32));
        // Out of order, or of a kind that does not exist, is refused as before.
        let v5_of = |words: &[u64], counts: [u16; SEEN_KINDS]| {
            let mut old = twins.clone();
            old.seen = words
                .iter()
                .flat_map(|w| [*w as u32, (*w >> 32) as u32])
                .collect();
            old.seen_counts = counts;
            let mut bytes = old.encode();
            bytes[0] = SNAPSHOT_VERSION_5;
            bytes.truncate(bytes.len() - SINCE_V6);
            Identity::decode(&bytes, &p)
        };
        assert!(v5_of(&[word(2), word(1)], [2, 0, 0, 0, 0, 0]).is_err());
        let kind_7 = (7u64 << (HASH_BITS + V5_FIRST_SEEN_BITS)) | word(1);
        assert!(v5_of(&[kind_7], [1, 0, 0, 0, 0, 0]).is_err());
        assert!(v5_of(&[word(1)], [1, 0, 0, 0, 0, 0]).is_ok());
        // And a version-6 run out of order or counts that do not add up.
        let mut bad = id.clone();
        bad.seen.swap(0, 1);
        assert!(Identity::decode(&bad.encode(), &p).is_err());
        let mut bad = id.clone();
        bad.seen_counts[0] += 1;
        assert!(Identity::decode(&bad.encode(), &p).is_err());
    }

    #[test]
    fn older_snapshots_still_decode_with_nothing_elevated_or_lingering() {
        let p = params();
        let mut id = Identity::new(1_700_000_000_000, &p);
        for k in 0..200 {
            fold(
                &mut id,
                &obs(1_700_000_000_000 + k * 120_000, (k as u64 % 3) << 40, 1),
                &p,
            );
        }
        // Version 5 kept 64-bit seen entries; version 4 is the same bytes without the
        // last failing calls, version 3 without the overflowed kinds too, version 2
        // without the lingering novelty too, and version 1 without the elevated hours too.
        assert_eq!(id.encode()[0], SNAPSHOT_VERSION);
        assert_eq!(Identity::decode(&id.encode(), &p).expect("decodes"), id);
        // Version 7 is version 8 without the last two hours' active buckets: they read as
        // none.
        assert!(id.hour_buckets > 0, "the last hour had activity");
        let id_written = id.clone();
        // Version 8 is version 9 without the sensitive reads: they read as unlearned.
        assert_ne!(
            id.sensitive_reads,
            SensitiveReads::default(),
            "learning its share"
        );
        id.sensitive_reads = SensitiveReads::default();
        let mut v8 = encode_unlearned(&id_written);
        v8.truncate(v8.len() - V8_TO_V9_SUFFIX.len());
        v8[0] = SNAPSHOT_VERSION_8;
        assert_eq!(Identity::decode(&v8, &p).expect("v8 decodes"), id);
        id.hour_buckets = 0;
        id.prev_hour_buckets = 0;
        id.sensitivity_marks = 0;
        let mut v7 = encode_unlearned(&id_written);
        v7.truncate(v7.len() - V7_TO_V8_SUFFIX.len() - V8_TO_V9_SUFFIX.len());
        v7[0] = SNAPSHOT_VERSION_7;
        assert_eq!(Identity::decode(&v7, &p).expect("v7 decodes"), id);
        // Every older version was written by an older generalisation: its destinations
        // are relearned. Version 6 is version 7 without that flag.
        id.relearn_hours = RELEARN_NOT_STARTED;
        let mut v6 = encode_unlearned(&id_written);
        v6.truncate(v6.len() - SINCE_V6);
        v6[0] = SNAPSHOT_VERSION_6;
        assert_eq!(Identity::decode(&v6, &p).expect("v6 decodes"), id);
        let v5 = encode_v5(&id_written);
        assert_eq!(Identity::decode(&v5, &p).expect("v5 decodes"), id);
        assert!(
            v5.ends_with(&[0, 0, 0, 0, 0, 0]),
            "nothing elevated, lingering, overflowed or failed yet"
        );
        let mut v4 = v5[..v5.len() - V4_TO_V5_SUFFIX.len()].to_vec();
        v4[0] = SNAPSHOT_VERSION_4;
        assert_eq!(Identity::decode(&v4, &p).expect("v4 decodes"), id);
        let mut v3 = v4[..v4.len() - V3_TO_V4_SUFFIX.len()].to_vec();
        v3[0] = SNAPSHOT_VERSION_3;
        assert_eq!(Identity::decode(&v3, &p).expect("v3 decodes"), id);
        let mut v2 = v3[..v3.len() - V2_TO_V3_SUFFIX.len()].to_vec();
        v2[0] = SNAPSHOT_VERSION_2;
        assert_eq!(Identity::decode(&v2, &p).expect("v2 decodes"), id);
        let mut v1 = v2[..v2.len() - V1_TO_V2_SUFFIX.len()].to_vec();
        v1[0] = SNAPSHOT_VERSION_1;
        assert_eq!(Identity::decode(&v1, &p).expect("v1 decodes"), id);
        // And the appended fields do round-trip when set.
        let t = 1_700_000_000_000 + 200 * 120_000;
        id.mark_elevated(t, 12);
        id.remember_lingering(0xabcd_ef01_2345_6789, t);
        id.failed_this_hour = 0xdead_beef;
        id.impaired = 1 << 40;
        let back = Identity::decode(&id.encode(), &p).expect("decodes");
        assert_eq!(
            (back.elevated_hour, back.elevated_hours, back.lingering),
            (id.elevated_hour, 1, id.lingering)
        );
        assert_eq!(
            (back.failed_this_hour, back.impaired),
            (id.failed_this_hour, id.impaired)
        );
    }

    #[test]
    fn the_sensitivity_ceiling_rises_and_is_persisted_beside_the_session_level() {
        let p = params();
        let mut id = Identity::new(1_700_000_000_000, &p);
        // A new identity met nothing yet: anything is above.
        assert!(id.above_sensitivity_ceiling(Sensitivity::Public));
        id.raise_sensitivity_ceiling(Sensitivity::Internal);
        assert!(!id.above_sensitivity_ceiling(Sensitivity::Internal));
        assert!(id.above_sensitivity_ceiling(Sensitivity::Confidential));
        id.set_session_sensitivity(Some(Sensitivity::Public));
        id.raise_sensitivity_ceiling(Sensitivity::Confidential);
        // Never lowered.
        id.raise_sensitivity_ceiling(Sensitivity::Public);
        assert!(!id.above_sensitivity_ceiling(Sensitivity::Confidential));
        assert!(id.above_sensitivity_ceiling(Sensitivity::Restricted));
        // The two levels share a byte without touching each other.
        assert_eq!(id.session_sensitivity(), Some(Sensitivity::Public));
        id.set_session_sensitivity(None);
        assert!(id.above_sensitivity_ceiling(Sensitivity::Restricted));
        let back = Identity::decode(&id.encode(), &p).expect("decodes");
        assert_eq!(back.sensitivity_marks, id.sensitivity_marks);
        assert!(back.above_sensitivity_ceiling(Sensitivity::Restricted));
        assert!(!back.above_sensitivity_ceiling(Sensitivity::Confidential));
        assert!(back.sensitivity_ceiling_can_rise());
        let mut top = back.clone();
        top.raise_sensitivity_ceiling(Sensitivity::Restricted);
        assert!(!top.sensitivity_ceiling_can_rise());
        // A state from before the ceiling was kept (upper nibble 0): never above, and
        // it stays unknown.
        id.sensitivity_marks = 0;
        id.raise_sensitivity_ceiling(Sensitivity::Internal);
        assert!(!id.above_sensitivity_ceiling(Sensitivity::Restricted));
        assert!(!id.sensitivity_ceiling_can_rise());
    }

    #[test]
    fn a_sparse_identity_learns_with_half_the_events_over_the_longer_span() {
        let mut p = params();
        p.learning_min_events = 20;
        p.learning_min_span_ms = 86_400_000;
        p.learning_sparse_span_ms = 3 * 86_400_000;
        let t0 = 1_700_000_000_000;
        // Ten events over three days: active only with the sparse span.
        let run = |p: &StateParams, events: u64| {
            let mut id = Identity::new(t0, p);
            for k in 0..events {
                let t = t0 + (k as i64) * (3 * 86_400_000) / (events as i64 - 1);
                fold(&mut id, &obs(t, 1 << 40, 1), p);
            }
            id.is_active()
        };
        assert!(run(&p, 10));
        assert!(!run(&p, 9), "fewer than half the events");
        let mut off = p;
        off.learning_sparse_span_ms = 0;
        assert!(!run(&off, 10), "0s turns it off");
        assert!(!run(&off, 19));
        assert!(run(&off, 20));
        // Never shorter than the minimum span: a week asked for is a week.
        let mut week = p;
        week.learning_min_span_ms = 7 * 86_400_000;
        assert!(!run(&week, 10));
    }

    #[test]
    fn the_kind_named_last_is_kept_beside_the_flags_and_persisted() {
        let p = params();
        let t = 1_700_000_000_000;
        let mut id = Identity::new(t, &p);
        assert_eq!(id.kind(), IdentityKind::Unknown);
        fold(&mut id, &obs(t, 1, 1), &p);
        let flags = id.flags;
        id.note_kind(IdentityKind::AiAgent);
        assert_eq!(id.kind(), IdentityKind::AiAgent);
        // An event naming no kind changes nothing; another kind replaces it.
        id.note_kind(IdentityKind::Unknown);
        assert_eq!(id.kind(), IdentityKind::AiAgent);
        id.note_kind(IdentityKind::Human);
        assert_eq!(id.kind(), IdentityKind::Human);
        assert_eq!(id.flags & 0x0f, flags & 0x0f, "the other flags stay");
        let back = Identity::decode(&id.encode(), &p).expect("decodes");
        assert_eq!(back.kind(), IdentityKind::Human);
        assert_eq!(back.is_active(), id.is_active());
    }

    #[test]
    fn a_lingering_novelty_counts_the_hours_it_is_used_in_within_the_window() {
        let p = params();
        let t = 1_700_000_000_000;
        let hour = 3_600_000;
        let mut id = Identity::new(t, &p);
        let hash = 0xabcd_ef01_2345_6789;
        assert_eq!(id.linger(hash, t + hour, 12), None, "nothing remembered");
        id.remember_lingering(hash, t);
        assert_eq!(
            id.linger(hash, t + 60_000, 12),
            None,
            "same hour is no lingering"
        );
        assert_eq!(id.linger(hash, t + hour, 12), Some((1, 2)));
        assert_eq!(
            id.linger(hash, t + hour + 60_000, 12),
            Some((1, 2)),
            "counted once"
        );
        // Another hash is another novelty (only the low bits may differ).
        assert_eq!(id.linger(hash ^ (1 << 40), t + hour, 12), None);
        assert_eq!(id.linger(hash ^ 0xff, t + 3 * hour, 12), Some((3, 3)));
        // Past the window it is forgotten.
        assert_eq!(id.linger(hash, t + 13 * hour, 12), None);
        assert_eq!(id.lingering, 0);
        // Remembering another replaces it; forgetting clears it.
        id.remember_lingering(hash, t);
        id.remember_lingering(7 << 50, t);
        assert_eq!(id.linger(hash, t + hour, 12), None);
        assert_eq!(id.linger(7 << 50, t + hour, 12), Some((1, 2)));
        id.forget_lingering();
        assert_eq!(id.linger(7 << 50, t + 2 * hour, 12), None);
    }

    #[test]
    fn inline_arrays_encode_like_vecs_and_reject_bad_lengths() {
        let p = params();
        let mut id = Identity::new(0, &p);
        id.profile.reset_filled();
        id.profile[3] = 7;
        let as_vec = id.profile.to_vec();
        assert_eq!(
            postcard::to_stdvec(&as_vec).expect("encodes"),
            postcard::to_stdvec(&id.profile).expect("encodes")
        );
        let bytes = id.encode();
        assert_eq!(Identity::decode(&bytes, &p).expect("decodes"), id);
        // The same snapshot with a profile one entry too long (varint 168 → 169, one
        // more byte) must be rejected, not truncated.
        let at = bytes
            .windows(6)
            .position(|w| w == [0xA8, 0x01, 0, 0, 0, 7])
            .expect("profile in snapshot");
        let mut long = bytes.clone();
        long[at] = 0xA9;
        long.insert(at + 2, 0);
        assert!(matches!(
            Identity::decode(&long, &p),
            Err(DecodeError::Inconsistent("profile"))
        ));
    }

    #[test]
    fn quantiser_is_precise() {
        for x in [0.0, 1.0, 3.5, 40.0, 1e6, 3e9] {
            let y = dq16(q16(x));
            assert!((y - x).abs() <= x * 0.001 + 1e-3, "{x} -> {y}");
        }
    }

    #[test]
    fn dequantiser_table_holds_the_computed_values() {
        for q in 0..=u16::MAX {
            assert_eq!(dq16(q).to_bits(), dq16_computed(q).to_bits(), "{q}");
        }
    }
}
