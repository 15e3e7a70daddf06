//! The scoring pipeline for one stream of events: identity state → detectors → score →
//! signals. No IO and no wall clock: callers pass events in event-time order and collect
//! the signals, so `replay`, `run` and `demo` share exactly this code and tests need no
//! sleeping.
//!
//! PLACEHOLDER SCORER: until the baselines/detectors issue lands this only tracks the
//! lifecycle and the failure ratio; the interface below is the contract the runtime,
//! replay and demo build on.

use std::collections::HashMap;

use crate::config::Config;
use crate::decode::{RejectReason, Rejection};
use crate::event::ActivityEvent;
use crate::signal::{format_time_ms, model_name, IdentityState, Level, Reason, Signal};

/// Counters the engine keeps for summaries and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub evicted: u64,
    pub too_late: u64,
    pub too_far_ahead: u64,
    /// Times each detector contributed to a signal, in `metrics::DETECTORS` order.
    pub detector_fired: [u64; 8],
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IdentityEntry {
    first_ms: i64,
    events: u64,
    failures: u64,
    last_score: f64,
    last_level: Level,
}

pub struct Engine {
    config: Config,
    identities: HashMap<String, IdentityEntry>,
    dirty: std::collections::HashSet<String>,
    watermark_ms: i64,
    stats: EngineStats,
}

impl Engine {
    pub fn new(config: &Config) -> Self {
        Engine {
            config: config.clone(),
            identities: HashMap::new(),
            dirty: std::collections::HashSet::new(),
            watermark_ms: i64::MIN,
            stats: EngineStats::default(),
        }
    }

    /// Folds one event into its identity's state and appends any signals to `out`.
    /// Events outside the lateness/lookahead bounds are rejected without touching state.
    pub fn process(
        &mut self,
        event: &ActivityEvent,
        out: &mut Vec<Signal>,
    ) -> Result<(), Rejection> {
        if self.watermark_ms != i64::MIN {
            let late = self.config.decode.max_lateness.as_millis_i64();
            let ahead = self.config.decode.max_lookahead.as_millis_i64();
            if event.time_ms < self.watermark_ms.saturating_sub(late) {
                self.stats.too_late += 1;
                return Err(Rejection::new(
                    RejectReason::TooLate,
                    format!(
                        "event time {} is more than {} behind the watermark",
                        format_time_ms(event.time_ms),
                        self.config.decode.max_lateness
                    ),
                ));
            }
            if event.time_ms > self.watermark_ms.saturating_add(ahead) {
                self.stats.too_far_ahead += 1;
                return Err(Rejection::new(
                    RejectReason::TooFarAhead,
                    format!(
                        "event time {} is more than {} ahead of the watermark",
                        format_time_ms(event.time_ms),
                        self.config.decode.max_lookahead
                    ),
                ));
            }
        }
        self.watermark_ms = self.watermark_ms.max(event.time_ms);
        self.stats.events += 1;
        let entry = self
            .identities
            .entry(event.identity.clone())
            .or_insert(IdentityEntry {
                first_ms: event.time_ms,
                events: 0,
                failures: 0,
                last_score: -1.0,
                last_level: Level::Normal,
            });
        entry.events += 1;
        self.dirty.insert(event.identity.clone());
        if event.outcome.is_failure() {
            entry.failures += 1;
        }
        let ratio = entry.failures as f64 / entry.events as f64;
        let score = (ratio * 100.0).clamp(0.0, 100.0);
        let level = level_for(&self.config, score);
        if entry.last_score < 0.0
            || level != entry.last_level
            || (score - entry.last_score).abs() >= self.config.score.emit_step
        {
            entry.last_score = score;
            entry.last_level = level;
            let state = if entry.events >= self.config.state.learning_min_events
                && event.time_ms - entry.first_ms
                    >= self.config.state.learning_min_span.as_millis_i64()
            {
                IdentityState::Active
            } else {
                IdentityState::Learning
            };
            let mut reasons = Vec::new();
            if entry.failures > 0 {
                self.stats.detector_fired[7] += 1;
                reasons.push(Reason {
                    detector: "failure_burst".into(),
                    strength: ratio,
                    detail: format!("{} of {} calls failed", entry.failures, entry.events),
                });
            }
            out.push(Signal {
                identity: event.identity.clone(),
                time: format_time_ms(event.time_ms),
                score: (score * 10.0).round() / 10.0,
                level,
                state,
                events_seen: entry.events,
                reasons,
                event_id: event.event_id.clone(),
                model: model_name(),
            });
        }
        Ok(())
    }

    /// Advances the event-time watermark with no event (end of input, idle stream) and
    /// appends decay signals.
    pub fn advance_to(&mut self, time_ms: i64, _out: &mut Vec<Signal>) {
        self.watermark_ms = self.watermark_ms.max(time_ms);
    }

    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    pub fn identities(&self) -> usize {
        self.identities.len()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Drains the identities whose state changed since the last call, with their state
    /// encoded for the changelog topic (key = identity, value = these bytes).
    pub fn take_dirty(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut changed = Vec::with_capacity(self.dirty.len());
        for identity in self.dirty.drain() {
            if let Some(entry) = self.identities.get(&identity) {
                if let Ok(bytes) = postcard::to_stdvec(entry) {
                    changed.push((identity, bytes));
                }
            }
        }
        changed
    }

    /// Installs an identity's state from the changelog (restore on partition assignment).
    pub fn restore(&mut self, identity: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        let entry: IdentityEntry =
            postcard::from_bytes(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        self.identities.insert(identity.to_string(), entry);
        Ok(())
    }

    /// Drops an identity's state (partition revoked: another instance owns it now).
    pub fn forget(&mut self, identity: &str) -> bool {
        self.dirty.remove(identity);
        self.identities.remove(identity).is_some()
    }

    /// Events folded into this identity's state so far, if tracked.
    pub fn events_seen(&self, identity: &str) -> Option<u64> {
        self.identities.get(identity).map(|e| e.events)
    }
}

/// A changelog value that cannot be decoded into identity state.
#[derive(Debug, thiserror::Error)]
#[error("corrupt identity state: {0}")]
pub struct SnapshotError(pub String);

/// Maps a score to its level with the configured thresholds.
pub fn level_for(config: &Config, score: f64) -> Level {
    if score >= config.score.critical {
        Level::Critical
    } else if score >= config.score.high {
        Level::High
    } else if score >= config.score.elevated {
        Level::Elevated
    } else {
        Level::Normal
    }
}
