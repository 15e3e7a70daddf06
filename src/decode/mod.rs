//! Decoders: turn raw records (native JSON, AWS CloudTrail, Kubernetes audit) into
//! [`ActivityEvent`]s (design §2). No IO here: callers hand in bytes and get back one
//! [`Decoded`] per record, so a bad record is a value to count and dead-letter, never a
//! reason to stop.
//!
//! Hostile input is bounded before parsing: records over `max_record_bytes` or nested
//! deeper than `max_depth` are rejected without building a tree.
//!
//! # Layout
//!
//! - [`native`]: riskd's own event, the hot path (borrowed serde struct, no tree),
//!   behind `native_fast`, a hand-written parser for the common shape that falls back
//!   to it on anything unusual.
//! - [`cloudtrail`]: AWS CloudTrail envelopes and single records.
//! - [`k8s_audit`]: Kubernetes `audit.k8s.io/v1` events.
//! - `scan`: the depth pre-scan, the envelope splitter and word-at-a-time byte searches
//!   (also used by `replay` to split lines); `util`: shared helpers.
//!
//! Decompression (`.gz`) and line splitting are the caller's job (`source`): a decoder
//! sees exactly one record or one CloudTrail document. `too_late` / `too_far_ahead` are
//! never produced here: they need the identity's latest event time and the wall-clock
//! bound, which the engine and the runtime own.

use std::fmt;

pub mod cloudtrail;
pub mod k8s_audit;
pub mod native;
mod native_fast;
pub(crate) use native_fast::canonical_rfc3339_ms;
pub(crate) mod scan;
mod util;

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
    /// Event time too far behind the identity's latest event (`decode.max_lateness`).
    TooLate,
    /// Event time too far ahead of the wall clock (`decode.max_lookahead`).
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
/// Bounds come first: size (`too_large`; a CloudTrail envelope may be
/// [`cloudtrail::ENVELOPE_FACTOR`] × `max_record_bytes`, each record inside still bounded
/// by `max_record_bytes`), then UTF-8 (`invalid_encoding`), then a linear nesting scan
/// (`too_deep`). Never panics; every input yields at least one `Decoded` except an empty
/// `Records` array, which yields none.
pub fn decode(format: Format, input: &[u8], limits: &Limits, out: &mut Vec<Decoded>) {
    if format == Format::Native {
        out.push(match decode_native(input, limits) {
            Ok(ev) => Decoded::Event(Box::new(ev)),
            Err(r) => Decoded::Rejected(r),
        });
        return;
    }
    let max = match format {
        Format::Cloudtrail | Format::Auto => limits
            .max_record_bytes
            .saturating_mul(cloudtrail::ENVELOPE_FACTOR),
        Format::Native | Format::K8sAudit => limits.max_record_bytes,
    };
    let text = match preflight(input, max, limits) {
        Ok(text) => text,
        Err(r) => {
            out.push(Decoded::Rejected(r));
            return;
        }
    };
    let format = match format {
        Format::Auto => match sniff(text) {
            Ok(f) => f,
            Err(r) => {
                out.push(Decoded::Rejected(r));
                return;
            }
        },
        f => f,
    };
    if format != Format::Cloudtrail && text.len() > limits.max_record_bytes {
        out.push(Decoded::Rejected(too_large(
            text.len(),
            limits.max_record_bytes,
        )));
        return;
    }
    let from = out.len();
    match format {
        Format::Native => out.push(match native::decode_str(text) {
            Ok(ev) => Decoded::Event(Box::new(ev)),
            Err(r) => Decoded::Rejected(r),
        }),
        Format::K8sAudit => out.push(k8s_audit::decode_str(text)),
        // `Auto` was resolved by `sniff` above; listed only to keep the match total.
        Format::Cloudtrail | Format::Auto => cloudtrail::decode_into(text, limits, out),
    }
    for item in &mut out[from..] {
        if let Decoded::Event(event) = item {
            if let Err(rejection) = util::check_lengths(event) {
                *item = Decoded::Rejected(rejection);
            }
        }
    }
}

/// Decodes one native event: the hot path (design §11), with no intermediate tree and no
/// output vector. Same bounds and rejections as [`decode`] with [`Format::Native`].
pub fn decode_native(input: &[u8], limits: &Limits) -> Result<ActivityEvent, Rejection> {
    let mut event = ActivityEvent::default();
    decode_native_into(input, limits, &mut event)?;
    Ok(event)
}

/// [`decode_native`] into an existing event, reusing its string buffers: a caller that
/// recycles events (replay) then allocates almost nothing per event. On `Err` the event
/// holds an unspecified but valid mix of old and new values.
pub fn decode_native_into(
    input: &[u8],
    limits: &Limits,
    event: &mut ActivityEvent,
) -> Result<(), Rejection> {
    let text = size_and_encoding(input, limits.max_record_bytes)?;
    // The fast path walks every byte of what it accepts, so it also bounds depth, and
    // it checks each value's length as it reads it; only when it gives up do the depth
    // pre-scan (still before any serde parsing) and the length checks run.
    if !native_fast::decode_into(strip_bom(text), limits.max_depth, event) {
        scan::check_depth(input, limits.max_depth)?;
        *event = native::decode_str(strip_bom(text))?;
        util::check_lengths(event)?;
    } else {
        // The fast path's own length checks must agree with `check_lengths`: a limit
        // added there and not to the fast path would otherwise pass silently.
        debug_assert!({
            let mut checked = event.clone();
            util::check_lengths(&mut checked).is_ok() && checked == *event
        });
    }
    Ok(())
}

fn too_large(len: usize, max: usize) -> Rejection {
    Rejection::new(
        RejectReason::TooLarge,
        format!("record is {len} bytes, over the limit of {max}"),
    )
}

/// Size, encoding and depth checks, in that order (cheapest and most hostile first).
fn preflight<'a>(input: &'a [u8], max_bytes: usize, limits: &Limits) -> Result<&'a str, Rejection> {
    let text = size_and_encoding(input, max_bytes)?;
    scan::check_depth(input, limits.max_depth)?;
    Ok(strip_bom(text))
}

/// The first two preflight checks: size, then UTF-8.
fn size_and_encoding(input: &[u8], max_bytes: usize) -> Result<&str, Rejection> {
    if input.len() > max_bytes {
        return Err(too_large(input.len(), max_bytes));
    }
    std::str::from_utf8(input).map_err(|e| {
        Rejection::new(
            RejectReason::InvalidEncoding,
            format!(
                "not UTF-8: invalid byte sequence at byte {}",
                e.valid_up_to()
            ),
        )
    })
}

/// Files written by Windows tools often start with a byte-order mark; it is not JSON
/// whitespace, and rejecting a whole export over it helps nobody.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Picks a format for one record from its top-level keys (design: `auto`).
fn sniff(text: &str) -> Result<Format, Rejection> {
    let Some(members) = scan::object_members(text) else {
        // Either not JSON or not an object; let the syntax check say which.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => util::serde_rejection(&e),
            Ok(_) => Rejection::new(
                RejectReason::NotAnObject,
                format!("expected a JSON object, found {}", scan::json_kind(text)),
            ),
        });
    };
    let has = |name: &str| members.iter().any(|m| m.key() == name);
    let string_of = |name: &str| {
        members
            .iter()
            .find(|m| m.key() == name)
            .and_then(|m| m.string_value())
    };
    // A native event may carry CloudTrail's names among its own fields (a gateway that
    // copies `eventSource`/`eventName` through); its `identity` says what it is. A
    // CloudTrail record names its caller in `userIdentity` instead.
    if has("Records") || (has("eventSource") && has("eventName") && !has("identity")) {
        return Ok(Format::Cloudtrail);
    }
    let k8s_api = string_of("apiVersion").is_some_and(|v| v.starts_with("audit.k8s.io/"));
    let k8s_kind = string_of("kind").is_some_and(|v| v == "Event") && has("auditID");
    if k8s_api || k8s_kind {
        return Ok(Format::K8sAudit);
    }
    if has("identity") {
        return Ok(Format::Native);
    }
    let keys: Vec<String> = members
        .iter()
        .take(8)
        .map(|m| util::quote(&m.key()))
        .collect();
    Err(Rejection::new(
        RejectReason::UnknownFormat,
        format!(
            "no `Records`, `eventSource`+`eventName`, audit.k8s.io `apiVersion` or `identity`; top-level keys: [{}]{}",
            keys.join(", "),
            if members.len() > 8 { ", …" } else { "" }
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATIVE: &str = r#"{"time":1700000000000,"identity":"i","action":"a","destination":"d"}"#;
    const CLOUDTRAIL: &str = r#"{"eventTime":"2023-07-10T11:42:36Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"}}"#;
    const K8S: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":"list","user":{"username":"u"},"objectRef":{"resource":"pods"},"stageTimestamp":"2023-01-27T18:28:08Z"}"#;

    fn run(format: Format, input: &[u8], limits: &Limits) -> Vec<Decoded> {
        let mut out = Vec::new();
        decode(format, input, limits, &mut out);
        out
    }

    fn reason(format: Format, input: &[u8], limits: &Limits) -> RejectReason {
        match &run(format, input, limits)[..] {
            [Decoded::Rejected(r)] => {
                assert!(!r.detail.is_empty());
                r.reason
            }
            other => panic!("{format:?}: expected one rejection, got {other:?}"),
        }
    }

    /// The fast path writes values as it reads them; when it then gives up (an over-long
    /// user agent, an escape in the last member), the serde path must overwrite the
    /// whole recycled event: nothing of the previous record or of the abandoned walk
    /// may leak into the result.
    #[test]
    fn a_recycled_event_is_whole_after_the_fast_path_gives_up() {
        let limits = Limits::default();
        let full = r#"{"time":"2026-11-27T01:02:03.456Z","identity":"old","action":"old-a","destination":"old-d","event_id":"e1","identity_kind":"ai_agent","environment":"prod","source_ip":"10.0.0.1","source_network":"corp","user_agent":"old-ua","outcome":"denied","bytes":5,"records":6,"sensitivity":"restricted","attributes":{"k":"v"}}"#;
        let long_agent = format!(
            r#"{{"time":1700000000000,"identity":"new","action":"a","destination":"d","user_agent":"{}"}}"#,
            "u".repeat(util::MAX_USER_AGENT_BYTES + 10)
        );
        let escape_last = r#"{"time":1700000000000,"identity":"new","action":"a","destination":"d","source_ip":"10.9.9.9","environment":"stage"}"#;
        for line in [long_agent.as_str(), escape_last] {
            let mut recycled = ActivityEvent::default();
            decode_native_into(full.as_bytes(), &limits, &mut recycled).expect("full line");
            decode_native_into(line.as_bytes(), &limits, &mut recycled).expect("decodes");
            let mut fresh = ActivityEvent::default();
            decode_native_into(line.as_bytes(), &limits, &mut fresh).expect("decodes");
            assert_eq!(recycled, fresh, "{line}");
            assert_eq!(
                fresh,
                decode_native(line.as_bytes(), &limits).expect("decodes")
            );
        }
    }

    const ALL: [Format; 4] = [
        Format::Native,
        Format::Cloudtrail,
        Format::K8sAudit,
        Format::Auto,
    ];

    #[test]
    fn each_format_decodes_its_sample() {
        let limits = Limits::default();
        for (format, text) in [
            (Format::Native, NATIVE),
            (Format::Cloudtrail, CLOUDTRAIL),
            (Format::K8sAudit, K8S),
        ] {
            let out = run(format, text.as_bytes(), &limits);
            assert!(
                matches!(&out[..], [Decoded::Event(_)]),
                "{format:?}: {out:?}"
            );
            assert_eq!(
                run(Format::Auto, text.as_bytes(), &limits),
                out,
                "auto {format:?}"
            );
        }
    }

    #[test]
    fn too_large_before_anything_else() {
        let limits = Limits {
            max_record_bytes: 10,
            max_depth: 64,
        };
        // Invalid UTF-8 and deep nesting too, to show size is checked first.
        let mut input = vec![b'['; 11];
        input.push(0xff);
        for format in [Format::Native, Format::K8sAudit] {
            assert_eq!(reason(format, &input, &limits), RejectReason::TooLarge);
        }
        // Envelope formats allow 64x, but a non-envelope record is still bounded.
        assert_eq!(
            reason(Format::Auto, NATIVE.as_bytes(), &limits),
            RejectReason::TooLarge
        );
        assert_eq!(
            reason(Format::Cloudtrail, CLOUDTRAIL.as_bytes(), &limits),
            RejectReason::TooLarge
        );
        let huge = vec![b' '; 10 * 64 + 1];
        assert_eq!(
            reason(Format::Cloudtrail, &huge, &limits),
            RejectReason::TooLarge
        );
        assert_eq!(reason(Format::Auto, &huge, &limits), RejectReason::TooLarge);
    }

    #[test]
    fn envelope_may_exceed_record_limit() {
        let limits = Limits {
            max_record_bytes: CLOUDTRAIL.len(),
            max_depth: 64,
        };
        let envelope = format!(r#"{{"Records":[{CLOUDTRAIL},{CLOUDTRAIL},{CLOUDTRAIL}]}}"#);
        for format in [Format::Cloudtrail, Format::Auto] {
            let out = run(format, envelope.as_bytes(), &limits);
            assert_eq!(out.len(), 3);
            assert!(
                out.iter().all(|d| matches!(d, Decoded::Event(_))),
                "{out:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_invalid_encoding() {
        let mut bytes = NATIVE.as_bytes().to_vec();
        bytes[20] = 0xc3; // lone lead byte inside a string
        for format in ALL {
            assert_eq!(
                reason(format, &bytes, &Limits::default()),
                RejectReason::InvalidEncoding
            );
        }
        let e = decode_native(&bytes, &Limits::default()).expect_err("bad utf8");
        assert!(e.detail.contains("byte 20"), "{}", e.detail);
    }

    /// A record whose `x` is `depth` nested arrays around `1`.
    fn nested_record(depth: usize) -> String {
        format!(
            r#"{{"identity":"i","x":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn deep_nesting_is_too_deep_for_every_format() {
        let limits = Limits {
            max_record_bytes: 1 << 20,
            max_depth: 8,
        };
        let deep = nested_record(20);
        for format in ALL {
            assert_eq!(
                reason(format, deep.as_bytes(), &limits),
                RejectReason::TooDeep
            );
        }
        // A million openers: rejected by the linear scan, no stack overflow.
        let hostile = "[".repeat(1_000_000);
        assert_eq!(
            reason(Format::Native, hostile.as_bytes(), &Limits::default()),
            RejectReason::TooDeep
        );
    }

    #[test]
    fn serde_recursion_limit_maps_to_too_deep() {
        // max_depth above serde_json's own limit of 128.
        let limits = Limits {
            max_record_bytes: 1 << 20,
            max_depth: 1000,
        };
        let deep = nested_record(200);
        // The tree-building decoders hit serde_json's limit: too_deep, not invalid_json.
        assert_eq!(
            reason(Format::Cloudtrail, deep.as_bytes(), &limits),
            RejectReason::TooDeep
        );
        assert_eq!(
            reason(Format::K8sAudit, deep.as_bytes(), &limits),
            RejectReason::TooDeep
        );
        // The native decoder skips unknown fields without recursing, so it just goes on
        // to report what is missing.
        assert_eq!(
            reason(Format::Native, deep.as_bytes(), &limits),
            RejectReason::MissingField
        );
    }

    #[test]
    fn auto_sniffing() {
        let limits = Limits::default();
        assert_eq!(
            reason(Format::Auto, br#"{"foo":1,"bar":2}"#, &limits),
            RejectReason::UnknownFormat
        );
        let out = run(Format::Auto, br#"{"foo":1,"bar":2}"#, &limits);
        let Decoded::Rejected(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(
            r.detail.contains("`foo`") && r.detail.contains("`bar`"),
            "{}",
            r.detail
        );
        assert_eq!(
            reason(Format::Auto, b"[1]", &limits),
            RejectReason::NotAnObject
        );
        assert_eq!(
            reason(Format::Auto, b"{\"a\":", &limits),
            RejectReason::InvalidJson
        );
        assert_eq!(
            reason(Format::Auto, b"", &limits),
            RejectReason::InvalidJson
        );
        // kind=Event with auditID but no apiVersion is still k8s.
        let k8s = r#"{"kind":"Event","auditID":"x","stage":"RequestReceived"}"#;
        assert_eq!(
            run(Format::Auto, k8s.as_bytes(), &limits),
            vec![Decoded::Skipped("audit_stage")]
        );
        // eventSource alone is not enough for CloudTrail; with identity it is native.
        let native_like = r#"{"eventSource":"x","identity":"i","time":1700000000000,"action":"a","destination":"d"}"#;
        assert!(matches!(
            &run(Format::Auto, native_like.as_bytes(), &limits)[..],
            [Decoded::Event(_)]
        ));
        // With both CloudTrail names, `identity` still makes it native.
        let gateway = r#"{"eventSource":"x","eventName":"y","identity":"i","time":1700000000000,"action":"a","destination":"d"}"#;
        assert!(matches!(
            &run(Format::Auto, gateway.as_bytes(), &limits)[..],
            [Decoded::Event(_)]
        ));
        // Records wins even when empty.
        assert!(run(Format::Auto, br#"{"Records":[]}"#, &limits).is_empty());
        // Trailing garbage after a sniffable object is still invalid JSON.
        assert_eq!(
            reason(Format::Auto, format!("{NATIVE} x").as_bytes(), &limits),
            RejectReason::InvalidJson
        );
    }

    #[test]
    fn decode_native_matches_decode() {
        let limits = Limits::default();
        for input in [NATIVE, "{}", "[]", "{\"time\":", K8S] {
            let via_decode = run(Format::Native, input.as_bytes(), &limits);
            let direct = match decode_native(input.as_bytes(), &limits) {
                Ok(ev) => Decoded::Event(Box::new(ev)),
                Err(r) => Decoded::Rejected(r),
            };
            assert_eq!(via_decode, vec![direct], "{input}");
        }
    }

    #[test]
    fn over_long_fields_are_refused_by_name_and_long_clients_cut() {
        // Regression: a half-megabyte identity decoded fine, and its first signal (the
        // identity is also the Kafka key) was over the producer's message limit.
        let limits = Limits::default();
        let long = "i".repeat(3000);
        let native = format!(
            r#"{{"time":1700000000000,"identity":"{long}","action":"a","destination":"d"}}"#
        );
        for format in [Format::Native, Format::Auto] {
            match &run(format, native.as_bytes(), &limits)[..] {
                [Decoded::Rejected(r)] => {
                    assert_eq!(r.reason, RejectReason::InvalidValue);
                    assert!(
                        r.detail.contains("`identity` is 3000 bytes"),
                        "{}",
                        r.detail
                    );
                }
                other => panic!("{format:?}: {other:?}"),
            }
        }
        let k8s = K8S.replace(
            r#""verb":"list""#,
            &format!(r#""verb":"list","userAgent":"{}""#, "é".repeat(2000)),
        );
        match &run(Format::K8sAudit, k8s.as_bytes(), &limits)[..] {
            [Decoded::Event(e)] => {
                let ua = e.user_agent.as_deref().unwrap_or_default();
                assert!(ua.len() <= 1024 && ua.starts_with('é'), "{}", ua.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watermark_reasons_are_not_decoder_reasons() {
        // too_late / too_far_ahead need the event-time watermark, which lives in the
        // engine; decoders never produce them. Pin that so the metric docs stay true.
        let limits = Limits::default();
        let far =
            r#"{"time":"2199-12-31T23:59:59Z","identity":"i","action":"a","destination":"d"}"#;
        assert!(decode_native(far.as_bytes(), &limits).is_ok());
    }
}
