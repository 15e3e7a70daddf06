//! Decoders: turn raw records (native JSON, AWS CloudTrail, Kubernetes audit) into
//! [`ActivityEvent`]s (design §2). No IO here: callers hand in bytes and get back one
//! [`Decoded`] per record, so a bad record is a value to count and dead-letter, never a
//! reason to stop.
//!
//! Hostile input is bounded before parsing: records over `max_record_bytes` or nested
//! deeper than `max_depth` are rejected without building a tree.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::ActivityEvent;

/// Input formats accepted by `riskd replay --format` and `kafka.input_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Native,
    Cloudtrail,
    K8sAudit,
    /// Sniff each record.
    Auto,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Cloudtrail => "cloudtrail",
            Format::K8sAudit => "k8s-audit",
            Format::Auto => "auto",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(Format::Native),
            "cloudtrail" => Ok(Format::Cloudtrail),
            "k8s-audit" => Ok(Format::K8sAudit),
            "auto" => Ok(Format::Auto),
            other => Err(format!(
                "unknown format `{other}`; expected native, cloudtrail, k8s-audit or auto"
            )),
        }
    }
}

/// Bounds applied before any parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_record_bytes: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

impl From<&crate::config::DecodeConfig> for Limits {
    fn from(c: &crate::config::DecodeConfig) -> Self {
        Limits {
            max_record_bytes: c.max_record_bytes,
            max_depth: c.max_depth,
        }
    }
}

/// Why a record was rejected. The snake_case names are stable: they label
/// `riskd_events_rejected_total{reason}`, dead-letter headers and replay summaries, so
/// the set is small and fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Larger than `decode.max_record_bytes`.
    TooLarge,
    /// Nested deeper than `decode.max_depth`.
    TooDeep,
    /// Not UTF-8.
    InvalidEncoding,
    /// Not syntactically valid JSON.
    InvalidJson,
    /// Valid JSON but not an object of the expected shape.
    NotAnObject,
    /// A required field is absent or empty.
    MissingField,
    /// A field has the wrong JSON type (e.g. `bytes` as a string).
    WrongType,
    /// A field has the right type but an unusable value (bad time, unknown outcome).
    InvalidValue,
    /// `auto` could not tell which format the record is.
    UnknownFormat,
    /// Event time too far behind the watermark (`decode.max_lateness`).
    TooLate,
    /// Event time too far ahead of the watermark (`decode.max_lookahead`).
    TooFarAhead,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::TooLarge,
        RejectReason::TooDeep,
        RejectReason::InvalidEncoding,
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::InvalidValue,
        RejectReason::UnknownFormat,
        RejectReason::TooLate,
        RejectReason::TooFarAhead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::TooDeep => "too_deep",
            RejectReason::InvalidEncoding => "invalid_encoding",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::UnknownFormat => "unknown_format",
            RejectReason::TooLate => "too_late",
            RejectReason::TooFarAhead => "too_far_ahead",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: the reason class plus a precise, human-readable detail that names
/// the field (e.g. "field `time`: `yesterday` is neither RFC 3339 nor epoch milliseconds").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// The result of decoding one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(Box<ActivityEvent>),
    /// Well-formed but deliberately not an activity (e.g. a Kubernetes audit event at a
    /// stage other than `ResponseComplete`). Counted, not dead-lettered.
    Skipped(&'static str),
    Rejected(Rejection),
}

/// Decodes one input record (one line, one Kafka message, or one CloudTrail
/// `{"Records":[...]}` document) and appends one [`Decoded`] per activity record to `out`.
///
/// PLACEHOLDER until the decoders land: rejects everything.
pub fn decode(format: Format, input: &[u8], limits: &Limits, out: &mut Vec<Decoded>) {
    let _ = (format, limits);
    if input.len() > limits.max_record_bytes {
        out.push(Decoded::Rejected(Rejection::new(
            RejectReason::TooLarge,
            "record too large",
        )));
        return;
    }
    out.push(Decoded::Rejected(Rejection::new(
        RejectReason::UnknownFormat,
        "decoders not implemented yet",
    )));
}
