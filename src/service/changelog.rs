//! The state changelog record (design §7): key = identity, value = a small riskd header
//! followed by the engine's opaque snapshot bytes. No IO.
//!
//! The header records the input offset of the last event folded into that state. After
//! a crash, the consumer resumes from the last *committed* offset, which may be behind
//! the state already in the changelog (state is flushed before offsets are committed);
//! events at or below the recorded offset are already in the restored state and are
//! skipped instead of being counted twice. This is what keeps `events_seen` exact
//! across `kill -9`, beyond what the `event_id` window can do.
//!
//! Layout: `[version: u8 = 1][last input offset: i64 big-endian][engine snapshot]`.
//! A tombstone (no value) means the identity was evicted.

/// Current header version.
const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog value is {0} bytes, shorter than its header")]
    Truncated(usize),
    #[error("changelog value has version {0}; this riskd reads version 1")]
    Version(u8),
}

/// Encodes a changelog value.
pub fn encode(last_offset: i64, snapshot: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + snapshot.len());
    value.push(VERSION);
    value.extend_from_slice(&last_offset.to_be_bytes());
    value.extend_from_slice(snapshot);
    value
}

/// Splits a changelog value into (last input offset, engine snapshot).
pub fn decode(value: &[u8]) -> Result<(i64, &[u8]), ChangelogError> {
    if value.len() < HEADER_LEN {
        return Err(ChangelogError::Truncated(value.len()));
    }
    if value[0] != VERSION {
        return Err(ChangelogError::Version(value[0]));
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&value[1..HEADER_LEN]);
    Ok((i64::from_be_bytes(offset), &value[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let value = encode(1234567, b"state");
        assert_eq!(decode(&value), Ok((1234567, &b"state"[..])));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(b"\x01abc"), Err(ChangelogError::Truncated(4)));
        assert_eq!(
            decode(&[9, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ChangelogError::Version(9))
        );
    }
}
