//! The read side: latest risk signal per identity, shared between the pipeline that
//! writes it and the HTTP API that reads it concurrently (design §6, §7).
//!
//! In `riskd run` it is fed both by this instance's own signals and by following the
//! signals topic, so any instance can answer for every identity.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::signal::{IdentityState, Level, Reason, Signal, MODEL_NAME};

/// What the API knows about one identity.
#[derive(Debug, Clone)]
pub struct RiskEntry {
    pub signal: Signal,
    /// Wall-clock time (epoch ms) this instance received the signal; the API reports the
    /// signal's age from it.
    pub received_ms: i64,
}

/// A signal's time text, inline when it has the canonical length (what riskd writes:
/// `2026-11-25T17:04:05.123Z`, 24 bytes), so a million entries do not each hold a small
/// heap string. Any other text is kept as it came, so answers repeat it exactly.
#[derive(Debug, Clone)]
enum TimeText {
    Canonical([u8; 24]),
    Other(Box<str>),
}

impl TimeText {
    fn new(text: String) -> Self {
        match <[u8; 24]>::try_from(text.as_bytes()) {
            Ok(bytes) => TimeText::Canonical(bytes),
            Err(_) => TimeText::Other(text.into_boxed_str()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Built from a `String`'s whole bytes, so always valid UTF-8.
            TimeText::Canonical(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            TimeText::Other(text) => text,
        }
    }
}

/// One identity's latest signal as the table stores it: the signal's fields without the
/// identity (it is the map key), without the model name when it is this build's (nearly
/// always) and without the event id, which no reader uses (lookups, decisions and the
/// demo report score, level, state, reasons and times) and which would add a heap
/// string per identity. At a million identities this is several hundred megabytes less
/// than keeping whole [`Signal`]s.
#[derive(Debug)]
struct Stored {
    time: TimeText,
    received_ms: i64,
    score: f64,
    events_seen: u64,
    level: Level,
    state: IdentityState,
    /// Empty (no allocation) for the normal identities that make up most of the table.
    reasons: Box<[Reason]>,
    /// `None` when the signal's model is [`MODEL_NAME`].
    model: Option<Box<str>>,
}

impl Stored {
    fn new(signal: Signal, received_ms: i64) -> Self {
        Stored {
            time: TimeText::new(signal.time),
            received_ms,
            score: signal.score,
            events_seen: signal.events_seen,
            level: signal.level,
            state: signal.state,
            reasons: signal.reasons.into_boxed_slice(),
            model: (signal.model != MODEL_NAME).then(|| signal.model.into_boxed_str()),
        }
    }

    fn entry(&self, identity: &str) -> RiskEntry {
        RiskEntry {
            signal: Signal {
                identity: identity.to_string(),
                time: self.time.as_str().to_string(),
                score: self.score,
                level: self.level,
                state: self.state,
                events_seen: self.events_seen,
                reasons: self.reasons.to_vec(),
                event_id: None,
                model: self.model.as_deref().unwrap_or(MODEL_NAME).to_string(),
            },
            received_ms: self.received_ms,
        }
    }
}

/// Concurrent identity → latest signal map, plus the readiness flag `/readyz` reports.
#[derive(Debug, Default)]
pub struct RiskTable {
    entries: DashMap<Box<str>, Stored, foldhash::fast::RandomState>,
    ready: AtomicBool,
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
    /// from the topic and from this instance can arrive out of order. Times compare as
    /// text, which orders riskd's fixed-width UTC times correctly.
    pub fn apply(&self, signal: Signal) {
        let received_ms = wall_clock_ms();
        match self.entries.get_mut(signal.identity.as_str()) {
            Some(mut existing) => {
                if existing.time.as_str() <= signal.time.as_str() {
                    *existing = Stored::new(signal, received_ms);
                }
            }
            None => {
                let identity = signal.identity.as_str().into();
                self.entries
                    .insert(identity, Stored::new(signal, received_ms));
            }
        }
    }

    /// The latest signal for `identity`, as applied except for its `event_id` (not
    /// kept, see [`Stored`]).
    pub fn get(&self, identity: &str) -> Option<RiskEntry> {
        self.entries.get(identity).map(|e| e.value().entry(e.key()))
    }

    pub fn remove(&self, identity: &str) {
        self.entries.remove(identity);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Identities at or above `min_level`, riskiest first (ties by identity for a stable
    /// order), at most `limit`.
    pub fn top(&self, min_level: Level, limit: usize) -> Vec<RiskEntry> {
        let mut hits: Vec<RiskEntry> = self
            .entries
            .iter()
            .filter(|e| e.level >= min_level)
            .map(|e| e.value().entry(e.key()))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::model_name;

    fn signal(identity: &str, time: &str, score: f64, level: Level) -> Signal {
        Signal {
            identity: identity.into(),
            time: time.into(),
            score,
            level,
            state: IdentityState::Active,
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
        for s in [&full, &foreign] {
            table.apply(s.clone());
            let expected = Signal {
                event_id: None,
                ..s.clone()
            };
            assert_eq!(table.get(&s.identity).map(|e| e.signal), Some(expected));
        }
        assert_eq!(table.len(), 2);
        table.remove("svc-a");
        assert!(table.get("svc-a").is_none());
    }

    #[test]
    fn older_signal_does_not_overwrite_newer() {
        let table = RiskTable::new();
        table.apply(signal("a", "2026-01-01T00:00:02.000Z", 70.0, Level::High));
        table.apply(signal("a", "2026-01-01T00:00:01.000Z", 10.0, Level::Normal));
        assert_eq!(table.get("a").map(|e| e.signal.score), Some(70.0));
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
