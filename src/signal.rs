//! The risk signal (design §5): what riskd publishes about an identity. Its JSON shape is
//! final; enforcement points, the signals topic and the API all carry it unchanged.

use serde::{Deserialize, Serialize};

use crate::event::IdentityKind;

/// Risk level derived from the score with the configured thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Normal,
    Elevated,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Normal, Level::Elevated, Level::High, Level::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Elevated => "elevated",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(Level::Normal),
            "elevated" => Some(Level::Elevated),
            "high" => Some(Level::High),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }

    /// True for the levels that count as an alert (evaluation, paging).
    pub fn is_alert(self) -> bool {
        self >= Level::High
    }
}

/// Lifecycle of an identity as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityState {
    /// Too little history: novelty detectors are muted.
    Learning,
    Active,
    /// Never seen by this instance (only the API produces this).
    Unknown,
}

impl IdentityState {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityState::Learning => "learning",
            IdentityState::Active => "active",
            IdentityState::Unknown => "unknown",
        }
    }
}

/// One detector's contribution to a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub detector: String,
    /// In [0, 1].
    pub strength: f64,
    pub detail: String,
}

/// A published risk signal, serialised exactly as design §5 shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub identity: String,
    /// RFC 3339 event time (UTC, millisecond precision) of the event or watermark that
    /// produced this signal.
    pub time: String,
    pub score: f64,
    pub level: Level,
    pub state: IdentityState,
    /// The kind the identity's events last named (`identity_kind`); left out while none
    /// did. An enforcement point that does not know the caller's kind (an Envoy check)
    /// is judged with it.
    #[serde(default, skip_serializing_if = "IdentityKind::is_unknown")]
    pub identity_kind: IdentityKind,
    pub events_seen: u64,
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub model: String,
}

/// `riskd/<crate version>`: lets consumers tell which scorer produced a signal.
pub const MODEL_NAME: &str = concat!("riskd/", env!("CARGO_PKG_VERSION"));

/// [`MODEL_NAME`] as an owned string, for building a [`Signal`].
pub fn model_name() -> String {
    MODEL_NAME.to_string()
}

/// Formats event-time milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_time_ms(time_ms: i64) -> String {
    use chrono::{SecondsFormat, TimeZone, Utc};
    match Utc.timestamp_millis_opt(time_ms) {
        chrono::LocalResult::Single(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        // Out-of-range times are rejected by decoders; this keeps the function total.
        _ => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Parses an RFC 3339 string back to epoch milliseconds.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        let t = 1_689_000_000_123;
        assert_eq!(format_time_ms(t), "2023-07-10T14:40:00.123Z");
        assert_eq!(parse_time_ms(&format_time_ms(t)), Some(t));
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Level::Critical > Level::High && Level::High > Level::Elevated);
        assert!(Level::High.is_alert() && !Level::Elevated.is_alert());
    }
}
