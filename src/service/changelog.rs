//! The state changelog record (design §7): key = identity, value = a small riskd header
//! followed by the engine's opaque snapshot bytes and the reasons behind the identity's
//! current score. No IO.
//!
//! The header records the input offset of the last event folded into that state. After
//! a crash, the consumer resumes from the last *committed* offset, which may be behind
//! the state already in the changelog (state is flushed before offsets are committed);
//! events at or below the recorded offset are already in the restored state and are
//! skipped instead of being counted twice. This is what keeps `events_seen` exact
//! across `kill -9`, beyond what the `event_id` window can do.
//!
//! The reasons travel with the state so that an instance that restores an elevated
//! identity keeps explaining it: the decay signals it emits after a restart or a
//! rebalance carry the same reasons as before, instead of a bare score.
//!
//! Layouts (a tombstone, no value, means riskd keeps nothing of the identity):
//! - version 3, a dormant identity (evicted for idleness, remembered so its return is
//!   scored; see [`crate::state::dormant`]): `[3][last event time: i64 BE, epoch ms]
//!   [flags: u8, bit 0 = it used a public network][events: u32 BE, saturating]`;
//! - version 2: `[2][last input offset: i64 BE][snapshot length: u32 BE][snapshot]
//!   [reasons: JSON array, empty when there are none]`;
//! - version 1 (read only, written before reasons were kept):
//!   `[1][last input offset: i64 BE][snapshot]`.

use crate::signal::Reason;
use crate::state::dormant::DormantMark;

/// Version written for a state.
const VERSION: u8 = 2;
/// Version of a dormant identity's marker.
const VERSION_DORMANT: u8 = 3;
const DORMANT_LEN: usize = 1 + 8 + 1 + 4;
/// Latest last-event time a marker may carry (9999-12-31): anything later is corrupt,
/// and would never expire.
const DORMANT_MAX_MS: i64 = 253_402_300_799_999;
const DORMANT_PUBLIC: u8 = 1;
const VERSION_1: u8 = 1;
const OFFSET_END: usize = 1 + 8;
const HEADER_LEN: usize = OFFSET_END + 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog value is {0} bytes, shorter than its header")]
    Truncated(usize),
    #[error("changelog value has version {0}; this riskd reads versions 1 to 3")]
    Version(u8),
    #[error("changelog value says its snapshot is {declared} bytes but only {available} follow")]
    SnapshotLength { declared: usize, available: usize },
    #[error("dormant marker's last event time {0} ms is not between 1970 and 9999")]
    DormantTime(i64),
}

/// One decoded changelog value.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangelogValue<'a> {
    /// Input offset of the last event folded into the state.
    pub last_offset: i64,
    /// The engine's snapshot bytes.
    pub snapshot: &'a [u8],
    /// Reasons behind the current score (empty when none were stored, or unreadable:
    /// the state itself is still good then).
    pub reasons: Vec<Reason>,
}

/// Encodes a changelog value.
pub fn encode(last_offset: i64, snapshot: &[u8], reasons: &[Reason]) -> Vec<u8> {
    let reasons_json = if reasons.is_empty() {
        Vec::new()
    } else {
        // Serialising plain strings and floats cannot fail.
        serde_json::to_vec(reasons).unwrap_or_default()
    };
    let mut value = Vec::with_capacity(HEADER_LEN + snapshot.len() + reasons_json.len());
    value.push(VERSION);
    value.extend_from_slice(&last_offset.to_be_bytes());
    let len = u32::try_from(snapshot.len()).unwrap_or(u32::MAX);
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(snapshot);
    value.extend_from_slice(&reasons_json);
    value
}

/// What a changelog record holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    State(ChangelogValue<'a>),
    Dormant(DormantMark),
}

/// Encodes a dormant identity's marker.
pub fn encode_dormant(mark: DormantMark) -> Vec<u8> {
    let mut value = Vec::with_capacity(DORMANT_LEN);
    value.push(VERSION_DORMANT);
    value.extend_from_slice(&mark.last_ms.to_be_bytes());
    value.push(if mark.public { DORMANT_PUBLIC } else { 0 });
    value.extend_from_slice(&mark.events.to_be_bytes());
    value
}

/// Decodes any changelog value: a state or a dormant marker.
pub fn decode_record(value: &[u8]) -> Result<Record<'_>, ChangelogError> {
    if value.first() == Some(&VERSION_DORMANT) {
        if value.len() < DORMANT_LEN {
            return Err(ChangelogError::Truncated(value.len()));
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&value[1..9]);
        let last_ms = i64::from_be_bytes(time);
        if !(0..=DORMANT_MAX_MS).contains(&last_ms) {
            return Err(ChangelogError::DormantTime(last_ms));
        }
        let mut events = [0u8; 4];
        events.copy_from_slice(&value[10..14]);
        return Ok(Record::Dormant(DormantMark {
            last_ms,
            public: value[9] & DORMANT_PUBLIC != 0,
            events: u32::from_be_bytes(events),
        }));
    }
    decode(value).map(Record::State)
}

/// Splits a state's changelog value into its parts.
pub fn decode(value: &[u8]) -> Result<ChangelogValue<'_>, ChangelogError> {
    if value.len() < OFFSET_END {
        return Err(ChangelogError::Truncated(value.len()));
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&value[1..OFFSET_END]);
    let last_offset = i64::from_be_bytes(offset);
    match value[0] {
        VERSION_1 => Ok(ChangelogValue {
            last_offset,
            snapshot: &value[OFFSET_END..],
            reasons: Vec::new(),
        }),
        VERSION => {
            if value.len() < HEADER_LEN {
                return Err(ChangelogError::Truncated(value.len()));
            }
            let mut len = [0u8; 4];
            len.copy_from_slice(&value[OFFSET_END..HEADER_LEN]);
            let declared = u32::from_be_bytes(len) as usize;
            let rest = &value[HEADER_LEN..];
            if declared > rest.len() {
                return Err(ChangelogError::SnapshotLength {
                    declared,
                    available: rest.len(),
                });
            }
            let (snapshot, reasons) = rest.split_at(declared);
            let reasons = if reasons.is_empty() {
                Vec::new()
            } else {
                serde_json::from_slice(reasons).unwrap_or_default()
            };
            Ok(ChangelogValue {
                last_offset,
                snapshot,
                reasons,
            })
        }
        other => Err(ChangelogError::Version(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(detector: &str) -> Reason {
        Reason {
            detector: detector.to_string(),
            strength: 0.75,
            detail: "first use of iam:CreateAccessKey".to_string(),
        }
    }

    #[test]
    fn dormant_markers_round_trip_and_are_not_states() {
        for mark in [
            DormantMark {
                last_ms: 1_790_000_000_123,
                public: true,
                events: u32::MAX,
            },
            DormantMark {
                last_ms: 0,
                public: false,
                events: 1,
            },
        ] {
            let value = encode_dormant(mark);
            assert_eq!(decode_record(&value), Ok(Record::Dormant(mark)));
            assert_eq!(decode(&value), Err(ChangelogError::Version(3)));
        }
        assert_eq!(decode_record(&[3, 0, 0]), Err(ChangelogError::Truncated(3)));
        for bad in [-5, DORMANT_MAX_MS + 1, i64::MAX] {
            let value = encode_dormant(DormantMark {
                last_ms: bad,
                public: false,
                events: 1,
            });
            assert_eq!(decode_record(&value), Err(ChangelogError::DormantTime(bad)));
        }
        let state = encode(7, b"st", &[]);
        assert!(matches!(decode_record(&state), Ok(Record::State(v)) if v.last_offset == 7));
    }

    #[test]
    fn round_trips_with_and_without_reasons() {
        let value = encode(1234567, b"state", &[]);
        let decoded = decode(&value).expect("decodes");
        assert_eq!(decoded.last_offset, 1234567);
        assert_eq!(decoded.snapshot, b"state");
        assert!(decoded.reasons.is_empty());

        let reasons = vec![reason("new_action"), reason("new_source")];
        let value = encode(-1, b"st", &reasons);
        let decoded = decode(&value).expect("decodes");
        assert_eq!((decoded.last_offset, decoded.snapshot), (-1, &b"st"[..]));
        assert_eq!(decoded.reasons, reasons);
    }

    #[test]
    fn reads_version_1_values() {
        let mut value = vec![1u8];
        value.extend_from_slice(&42i64.to_be_bytes());
        value.extend_from_slice(b"old state");
        let decoded = decode(&value).expect("decodes");
        assert_eq!(
            (decoded.last_offset, decoded.snapshot),
            (42, &b"old state"[..])
        );
        assert!(decoded.reasons.is_empty());
    }

    #[test]
    fn rejects_garbage_and_keeps_state_when_only_reasons_are_bad() {
        assert_eq!(decode(b"\x01abc"), Err(ChangelogError::Truncated(4)));
        assert_eq!(
            decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ChangelogError::Version(9))
        );
        let mut value = encode(7, b"state", &[]);
        assert_eq!(
            decode(&value[..HEADER_LEN + 2]),
            Err(ChangelogError::SnapshotLength {
                declared: 5,
                available: 2
            })
        );
        value.extend_from_slice(b"{not json");
        let decoded = decode(&value).expect("state still decodes");
        assert_eq!(decoded.snapshot, b"state");
        assert!(decoded.reasons.is_empty());
    }
}
