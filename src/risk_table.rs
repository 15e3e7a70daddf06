//! The read side: latest risk signal per identity, shared between the pipeline that
//! writes it and the HTTP API that reads it concurrently (design §6, §7).
//!
//! In `riskd run` it is fed both by this instance's own signals and by following the
//! signals topic, so any instance can answer for every identity.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::signal::{Level, Signal};

/// What the API knows about one identity.
#[derive(Debug, Clone)]
pub struct RiskEntry {
    pub signal: Signal,
    /// Wall-clock time (epoch ms) this instance received the signal; the API reports the
    /// signal's age from it.
    pub received_ms: i64,
}

/// Concurrent identity → latest signal map, plus the readiness flag `/readyz` reports.
#[derive(Debug, Default)]
pub struct RiskTable {
    entries: DashMap<String, RiskEntry, foldhash::fast::RandomState>,
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
    /// from the topic and from this instance can arrive out of order.
    pub fn apply(&self, signal: Signal) {
        let received_ms = wall_clock_ms();
        match self.entries.get_mut(&signal.identity) {
            Some(mut existing) => {
                if existing.signal.time <= signal.time {
                    *existing = RiskEntry {
                        signal,
                        received_ms,
                    };
                }
            }
            None => {
                self.entries.insert(
                    signal.identity.clone(),
                    RiskEntry {
                        signal,
                        received_ms,
                    },
                );
            }
        }
    }

    pub fn get(&self, identity: &str) -> Option<RiskEntry> {
        self.entries.get(identity).map(|e| e.value().clone())
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
            .filter(|e| e.signal.level >= min_level)
            .map(|e| e.value().clone())
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
            counts[e.signal.level as usize] += 1;
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
    use crate::signal::{model_name, IdentityState};

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
