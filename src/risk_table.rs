//! The read side: latest risk signal per identity, shared between the pipeline that
//! writes it and the HTTP API that reads it concurrently (design §6, §7).
//!
//! In `riskd run` it is fed both by this instance's own signals and by following the
//! signals topic, so any instance can answer for every identity.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::hash::{BuildHasher, Hasher};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::decode::canonical_rfc3339_ms;
use crate::event::IdentityKind;
use crate::signal::{
    format_time_ms, parse_time_ms, IdentityState, Level, Reason, Signal, MODEL_NAME,
};

/// What the API knows about one identity.
#[derive(Debug, Clone)]
pub struct RiskEntry {
    pub signal: Signal,
    /// Wall-clock time (epoch ms) this instance received the signal; the API reports the
    /// signal's age from it.
    pub received_ms: i64,
}

/// `Stored::score_tenths` when the score is not a whole number of tenths in 0-100.
const NOT_TENTHS: u16 = u16::MAX;

/// One identity's latest signal as the table stores it: 32 bytes for the common case
/// (riskd's own signal of a normal identity), the identity only as a 128-bit key
/// ([`IdentityKey`]). At a million identities every byte here is a megabyte, so:
/// - the name is kept (in [`Extra`]) only for entries the riskiest-first list can show:
///   a signal with reasons or above `normal`. A quiet identity's name was a 64-byte
///   allocation for an ARN, more than the entry itself, and only the list reads it;
/// - the time is kept as epoch milliseconds, with the text only when it is not the form
///   riskd writes (`2026-11-25T17:04:05.123Z`), so answers repeat any other text exactly;
/// - the score in tenths, as riskd rounds it, with the value itself only when it is not;
/// - reasons (empty for normal identities) and a model name other than this build's go
///   to one optional box;
/// - the event count in 32 bits, with a larger one in the box;
/// - the state and the identity kind share a byte;
/// - the event id is not kept: no reader uses it (lookups, decisions and the demo report
///   score, level, state, reasons and times).
#[derive(Debug)]
struct Stored {
    /// Event time of the signal in epoch ms; `i64::MIN` when its text does not parse.
    time_ms: i64,
    received_ms: i64,
    extra: Option<Box<Extra>>,
    /// [`COUNT_IN_EXTRA`] when the count does not fit.
    events_seen: u32,
    score_tenths: u16,
    level: Level,
    /// [`IdentityKind::code`] in the low four bits, the [`IdentityState`] above them.
    state_kind: u8,
}

/// `Stored::events_seen` when the count is in `Extra::events_seen`.
const COUNT_IN_EXTRA: u32 = u32::MAX;

const STATES: [IdentityState; 3] = [
    IdentityState::Learning,
    IdentityState::Active,
    IdentityState::Unknown,
];

fn pack_state_kind(state: IdentityState, kind: IdentityKind) -> u8 {
    let state = STATES.iter().position(|s| *s == state).unwrap_or(0) as u8;
    state << 4 | kind.code()
}

fn unpack_state_kind(packed: u8) -> (IdentityState, IdentityKind) {
    let state = STATES
        .get(usize::from(packed >> 4))
        .copied()
        .unwrap_or(IdentityState::Unknown);
    (state, IdentityKind::from_code(packed & 0x0f))
}

/// The uncommon parts of a stored signal.
#[derive(Debug, Default)]
struct Extra {
    /// The identity, for the riskiest-first list: `None` for a quiet identity (no
    /// reasons, level `normal`), which the list leaves out.
    identity: Option<Box<str>>,
    reasons: Box<[Reason]>,
    /// `None` when the signal's model is [`MODEL_NAME`].
    model: Option<Box<str>>,
    /// The time text, when it is not what `format_time_ms(time_ms)` writes.
    time: Option<Box<str>>,
    /// The score, when it is not a whole number of tenths in 0-100.
    score: Option<f64>,
    /// The event count, when it is [`COUNT_IN_EXTRA`] or more.
    events_seen: Option<u64>,
}

/// Epoch ms of a signal's time text, and whether the text is the form riskd writes
/// (then `format_time_ms` gives it back). `i64::MIN` (older than anything) when it does
/// not parse, so any parseable signal replaces it.
fn parse_time(text: &str) -> (i64, bool) {
    // The decoder's fixed-form parser: a restore applies a million signals, and
    // chrono's general one would be most of that work.
    match (text.len(), canonical_rfc3339_ms(text)) {
        (24, Some(ms)) => (ms, true),
        _ => (parse_time_ms(text).unwrap_or(i64::MIN), false),
    }
}

impl Stored {
    fn new(signal: Signal, (time_ms, canonical_time): (i64, bool), received_ms: i64) -> Self {
        let tenths = (signal.score * 10.0).round();
        let score_tenths = if (0.0..=1000.0).contains(&tenths) && tenths / 10.0 == signal.score {
            tenths as u16
        } else {
            NOT_TENTHS
        };
        let listed = !signal.reasons.is_empty() || signal.level > Level::Normal;
        let extra = Extra {
            identity: listed.then(|| signal.identity.into_boxed_str()),
            reasons: signal.reasons.into_boxed_slice(),
            model: (signal.model != MODEL_NAME).then(|| signal.model.into_boxed_str()),
            time: (!canonical_time).then(|| signal.time.into_boxed_str()),
            score: (score_tenths == NOT_TENTHS).then_some(signal.score),
            events_seen: (signal.events_seen >= u64::from(COUNT_IN_EXTRA))
                .then_some(signal.events_seen),
        };
        let plain = extra.identity.is_none()
            && extra.reasons.is_empty()
            && extra.model.is_none()
            && extra.time.is_none()
            && extra.score.is_none()
            && extra.events_seen.is_none();
        Stored {
            time_ms,
            received_ms,
            // u32::MAX itself also goes to the box: it is the marker.
            events_seen: u32::try_from(signal.events_seen).unwrap_or(COUNT_IN_EXTRA),
            score_tenths,
            level: signal.level,
            state_kind: pack_state_kind(signal.state, signal.identity_kind),
            extra: (!plain).then(|| Box::new(extra)),
        }
    }

    fn score(&self) -> f64 {
        match self.extra.as_ref().and_then(|e| e.score) {
            Some(score) => score,
            None => f64::from(self.score_tenths) / 10.0,
        }
    }

    fn entry(&self, identity: &str) -> RiskEntry {
        let extra = self.extra.as_deref();
        let (state, identity_kind) = unpack_state_kind(self.state_kind);
        let events_seen = match extra.and_then(|e| e.events_seen) {
            Some(count) => count,
            None => u64::from(self.events_seen),
        };
        RiskEntry {
            signal: Signal {
                identity: identity.to_string(),
                time: match extra.and_then(|e| e.time.as_deref()) {
                    Some(text) => text.to_string(),
                    None => format_time_ms(self.time_ms),
                },
                score: self.score(),
                level: self.level,
                state,
                identity_kind,
                events_seen,
                reasons: extra.map(|e| e.reasons.to_vec()).unwrap_or_default(),
                event_id: None,
                model: extra
                    .and_then(|e| e.model.as_deref())
                    .unwrap_or(MODEL_NAME)
                    .to_string(),
            },
            received_ms: self.received_ms,
        }
    }
}

/// An identity as the table files it: 128 bits of two keyed SipHash-1-3 hashes of its
/// name, under keys drawn at random per process. Not the name itself, which would be
/// one more allocation per identity. Two names sharing a key would read each other's
/// score, so the key is wide and keyed: at ten million identities the chance that any
/// two share one is about 10^-25, and without the process's keys nobody can aim names
/// at each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct IdentityKey {
    // Two u64s rather than a u128: 8-byte alignment, so a map slot (48 bytes) needs no
    // padding whatever the entry's size.
    high: u64,
    low: u64,
}

/// Turns names into [`IdentityKey`]s: one random SipHash key, two domain-separated
/// inputs (two `RandomState`s made on one thread would share most of their key).
#[derive(Debug, Default)]
struct Keyer(std::hash::RandomState);

impl Keyer {
    fn key(&self, identity: &str) -> IdentityKey {
        IdentityKey {
            high: self.0.hash_one((0u8, identity)),
            low: self.0.hash_one((1u8, identity)),
        }
    }
}

/// The map's hasher: the key is already a keyed hash, so its low word is used as it
/// is rather than hashed again.
#[derive(Debug, Default, Clone, Copy)]
struct KeyIsHash;

impl BuildHasher for KeyIsHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached if `IdentityKey`'s derived `Hash` stops writing its words one
        // by one; fold whatever comes so the map still works.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, word: u64) {
        // `high` then `low`: the last word written is kept.
        self.0 = word;
    }
}

/// Concurrent identity → latest signal map, plus what `/readyz` reports: the readiness
/// flag and the pipeline's heartbeats.
#[derive(Debug, Default)]
pub struct RiskTable {
    entries: DashMap<IdentityKey, Stored, KeyIsHash>,
    keyer: Keyer,
    ready: AtomicBool,
    heartbeats: Heartbeats,
}

/// Pipeline stages that beat ([`RiskTable::beat`]): scoring, and repartitioning when
/// `kafka.repartition_topic` is set.
pub const STAGES: usize = 2;

/// When each pipeline stage last went round its loop, in ms since `epoch` (monotonic);
/// `u64::MAX` for a stage that is not running.
#[derive(Debug)]
struct Heartbeats {
    epoch: Instant,
    last_ms: [AtomicU64; STAGES],
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats {
            epoch: Instant::now(),
            last_ms: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        }
    }
}

pub type SharedRiskTable = Arc<RiskTable>;

pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl RiskTable {
    pub fn new() -> SharedRiskTable {
        Arc::new(RiskTable::default())
    }

    /// Records a signal unless an entry with a later event time is already there: signals
    /// from the topic and from this instance can arrive out of order.
    pub fn apply(&self, signal: Signal) {
        let received_ms = wall_clock_ms();
        let (time_ms, canonical_time) = parse_time(&signal.time);
        let key = self.keyer.key(&signal.identity);
        match self.entries.entry(key) {
            Entry::Occupied(mut existing) => {
                if existing.get().time_ms <= time_ms {
                    existing.insert(Stored::new(signal, (time_ms, canonical_time), received_ms));
                }
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Stored::new(signal, (time_ms, canonical_time), received_ms));
            }
        }
    }

    /// The latest signal for `identity`, as applied except for its `event_id` (not
    /// kept, see [`Stored`]).
    pub fn get(&self, identity: &str) -> Option<RiskEntry> {
        self.entries
            .get(&self.keyer.key(identity))
            .map(|e| e.value().entry(identity))
    }

    pub fn remove(&self, identity: &str) {
        self.entries.remove(&self.keyer.key(identity));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Identities at or above `min_level`, riskiest first (ties by identity for a stable
    /// order), at most `limit`. Quiet identities (level `normal` and no reasons) are
    /// not listed: their names are not kept (see [`Stored`]).
    pub fn top(&self, min_level: Level, limit: usize) -> Vec<RiskEntry> {
        let mut hits: Vec<RiskEntry> = self
            .entries
            .iter()
            .filter(|e| e.level >= min_level)
            .filter_map(|e| {
                let extra = e.value().extra.as_deref()?;
                Some(e.value().entry(extra.identity.as_deref()?))
            })
            .collect();
        hits.sort_by(|a, b| {
            b.signal
                .score
                .total_cmp(&a.signal.score)
                .then_with(|| a.signal.identity.cmp(&b.signal.identity))
        });
        hits.truncate(limit);
        hits
    }

    /// Counts of identities per level, for the live view and `/v1/stats`.
    pub fn level_counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for e in self.entries.iter() {
            counts[e.level as usize] += 1;
        }
        counts
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Pipeline stage `stage` (< [`STAGES`]) went round its loop: it is alive, polling
    /// and scoring. Once per poll (at least every 100 ms), so a relaxed store is plenty.
    pub fn beat(&self, stage: usize) {
        let ms = u64::try_from(self.heartbeats.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        if let Some(last) = self.heartbeats.last_ms.get(stage) {
            last.store(ms, Ordering::Relaxed);
        }
    }

    /// How long the most silent running stage has gone without a beat; `None` when no
    /// stage is running (the demo, a test, or before the pipeline starts).
    pub fn since_last_beat(&self) -> Option<Duration> {
        let now =
            u64::try_from(self.heartbeats.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.heartbeats
            .last_ms
            .iter()
            .map(|last| last.load(Ordering::Relaxed))
            .filter(|&last| last != u64::MAX)
            .map(|last| Duration::from_millis(now.saturating_sub(last)))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_report_the_most_silent_running_stage() {
        let table = RiskTable::new();
        assert_eq!(table.since_last_beat(), None, "no stage runs yet");
        table.beat(0);
        let first = table.since_last_beat().expect("stage 0 runs");
        assert!(first < Duration::from_secs(1), "{first:?}");
        std::thread::sleep(Duration::from_millis(300));
        table.beat(1);
        // Stage 0 is the more silent one.
        assert!(table.since_last_beat() >= Some(Duration::from_millis(300)));
        table.beat(0);
        assert!(table.since_last_beat() < Some(Duration::from_millis(300)));
        // A stage that does not exist is ignored, not a panic.
        table.beat(STAGES);
    }
    use crate::signal::model_name;

    fn signal(identity: &str, time: &str, score: f64, level: Level) -> Signal {
        Signal {
            identity: identity.into(),
            time: time.into(),
            score,
            level,
            state: IdentityState::Active,
            identity_kind: IdentityKind::Unknown,
            events_seen: 1,
            reasons: vec![],
            event_id: None,
            model: model_name(),
        }
    }

    #[test]
    fn get_gives_back_the_signal_applied_without_its_event_id() {
        let table = RiskTable::new();
        let mut full = signal("svc-a", "2026-01-01T00:00:02.000Z", 72.5, Level::High);
        full.reasons = vec![Reason {
            detector: "new_destination".into(),
            strength: 0.8,
            detail: "first use of bucket `payroll`".into(),
        }];
        full.event_id = Some("evt-1".into());
        full.events_seen = 41;
        // A signal from another producer: a different model and a time text riskd would
        // not write (offset form, no milliseconds) come back as they were.
        let mut foreign = signal("svc-b", "2026-01-01T01:00:02+01:00", 3.0, Level::Normal);
        foreign.model = "riskd/0.0.1-old".into();
        foreign.state = IdentityState::Learning;
        // A score riskd would not write (not in tenths), and one out of range.
        let odd = signal("svc-c", "2026-01-01T00:00:03.000Z", 33.333, Level::Elevated);
        let wild = signal("svc-d", "not a time", 250.0, Level::Critical);
        let plain = signal("svc-e", "2026-01-01T00:00:04.500Z", 12.3, Level::Normal);
        for s in [&full, &foreign, &odd, &wild, &plain] {
            table.apply(s.clone());
            let expected = Signal {
                event_id: None,
                ..s.clone()
            };
            assert_eq!(table.get(&s.identity).map(|e| e.signal), Some(expected));
        }
        assert_eq!(table.len(), 5);
        table.remove("svc-a");
        assert!(table.get("svc-a").is_none());
    }

    #[test]
    fn packed_fields_come_back_whole() {
        let table = RiskTable::new();
        let kinds = (0..=7).map(IdentityKind::from_code);
        for (i, kind) in kinds.enumerate() {
            for state in STATES {
                for events_seen in [0, 7, u64::from(u32::MAX) - 1, u64::from(u32::MAX), u64::MAX] {
                    let mut s = signal(
                        &format!("id-{i}"),
                        "2026-01-01T00:00:00.000Z",
                        1.0,
                        Level::Normal,
                    );
                    s.identity_kind = kind;
                    s.state = state;
                    s.events_seen = events_seen;
                    table.apply(s.clone());
                    assert_eq!(table.get(&s.identity).map(|e| e.signal), Some(s));
                }
            }
        }
    }

    #[test]
    fn older_signal_does_not_overwrite_newer() {
        let table = RiskTable::new();
        table.apply(signal("a", "2026-01-01T00:00:02.000Z", 70.0, Level::High));
        table.apply(signal("a", "2026-01-01T00:00:01.000Z", 10.0, Level::Normal));
        assert_eq!(table.get("a").map(|e| e.signal.score), Some(70.0));
        // Times compare as instants, not as text: this one is 00:00:01Z.
        table.apply(signal(
            "a",
            "2026-01-01T01:00:01+01:00",
            10.0,
            Level::Normal,
        ));
        assert_eq!(table.get("a").map(|e| e.signal.score), Some(70.0));
        table.apply(signal(
            "a",
            "2026-01-01T01:00:03+01:00",
            20.0,
            Level::Normal,
        ));
        assert_eq!(table.get("a").map(|e| e.signal.score), Some(20.0));
    }

    #[test]
    fn a_normal_identitys_entry_is_small() {
        // 32 bytes plus the key: the table holds one per identity, a million or more.
        assert!(std::mem::size_of::<Stored>() <= 32);
        let table = RiskTable::new();
        table.apply(signal("a", "2026-01-01T00:00:02.000Z", 12.3, Level::Normal));
        let key = table.keyer.key("a");
        assert!(table.entries.get(&key).is_some_and(|e| e.extra.is_none()));
    }

    #[test]
    fn quiet_identities_answer_lookups_but_are_not_listed() {
        let table = RiskTable::new();
        let mut reasoned = signal("reasoned", "2026-01-01T00:00:00.000Z", 21.0, Level::Normal);
        reasoned.reasons = vec![Reason {
            detector: "new_action".into(),
            strength: 0.3,
            detail: "first use of s3:ListBuckets".into(),
        }];
        table.apply(reasoned);
        table.apply(signal(
            "quiet",
            "2026-01-01T00:00:00.000Z",
            25.0,
            Level::Normal,
        ));
        table.apply(signal(
            "warm",
            "2026-01-01T00:00:00.000Z",
            45.0,
            Level::Elevated,
        ));
        // The quiet one still answers, under its own name, with its own score.
        let quiet = table.get("quiet").expect("quiet answers");
        assert_eq!(
            (quiet.signal.identity.as_str(), quiet.signal.score),
            ("quiet", 25.0)
        );
        assert!(table.get("Quiet").is_none(), "names are exact");
        let listed: Vec<String> = table
            .top(Level::Normal, 10)
            .into_iter()
            .map(|e| e.signal.identity)
            .collect();
        assert_eq!(listed, ["warm", "reasoned"]);
        // Turning quiet drops the name, turning elevated brings it back.
        table.apply(signal(
            "warm",
            "2026-01-01T00:01:00.000Z",
            5.0,
            Level::Normal,
        ));
        table.apply(signal(
            "quiet",
            "2026-01-01T00:01:00.000Z",
            41.0,
            Level::Elevated,
        ));
        let listed: Vec<String> = table
            .top(Level::Normal, 10)
            .into_iter()
            .map(|e| e.signal.identity)
            .collect();
        assert_eq!(listed, ["quiet", "reasoned"]);
        assert_eq!(table.level_counts(), [2, 1, 0, 0]);
    }

    #[test]
    fn many_names_keep_apart() {
        // 200k similar names (ARNs differing in a few digits) each find their own entry.
        let table = RiskTable::new();
        let name = |i: usize| format!("arn:aws:iam::123456789012:role/svc-{i:06}");
        for i in 0..200_000 {
            let score = (i % 1000) as f64 / 10.0;
            table.apply(signal(
                &name(i),
                "2026-01-01T00:00:00.000Z",
                score,
                Level::Normal,
            ));
        }
        assert_eq!(table.len(), 200_000);
        for i in (0..200_000).step_by(997) {
            let got = table.get(&name(i)).map(|e| e.signal.score);
            assert_eq!(got, Some((i % 1000) as f64 / 10.0), "{}", name(i));
        }
        assert!(table.get(&name(200_000)).is_none());
    }

    #[test]
    fn top_is_riskiest_first_and_filtered() {
        let table = RiskTable::new();
        table.apply(signal(
            "low",
            "2026-01-01T00:00:00.000Z",
            5.0,
            Level::Normal,
        ));
        table.apply(signal("mid", "2026-01-01T00:00:00.000Z", 65.0, Level::High));
        table.apply(signal(
            "top",
            "2026-01-01T00:00:00.000Z",
            90.0,
            Level::Critical,
        ));
        let top: Vec<String> = table
            .top(Level::High, 10)
            .into_iter()
            .map(|e| e.signal.identity)
            .collect();
        assert_eq!(top, vec!["top", "mid"]);
        assert_eq!(table.top(Level::Normal, 1).len(), 1);
    }
}
