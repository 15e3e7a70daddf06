//! Regression tests for decoder bugs and near-misses, one test per bug, named after it
//! (ripgrep style). Crash inputs found by `cargo fuzz` (fuzz/artifacts/<target>/) go here
//! as byte literals with the target and date in a comment.
//!
//! Fuzzing so far (5 targets, 1–4 min each, ~13 M executions) found no crash; the cases
//! below are gaps met while building the decoders against real data (the untyped service
//! identity, the BOM) plus edge cases pinned so a refactor cannot reopen them.

use riskd::decode::{decode, decode_native, Decoded, Format, Limits, RejectReason};
use riskd::event::IdentityKind;

fn run(format: Format, input: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    decode(format, input, &Limits::default(), &mut out);
    out
}

fn rejected(format: Format, input: &[u8]) -> RejectReason {
    match &run(format, input)[..] {
        [Decoded::Rejected(r)] => r.reason,
        other => panic!("expected one rejection, got {other:?}"),
    }
}

const NATIVE: &str = r#"{"time":1700000000000,"identity":"i","action":"a","destination":"d"}"#;

/// Stratus data: 42 `AwsServiceEvent` records have a type-less `{accountId, invokedBy}`
/// identity; the first mapping rejected them all as missing_field.
#[test]
fn untyped_service_event_identity_is_not_missing() {
    let rec = r#"{"eventTime":"2023-07-10T12:08:07Z","eventSource":"secretsmanager.amazonaws.com","eventName":"EndSecretVersionDelete","userIdentity":{"accountId":"123837392027","invokedBy":"secretsmanager.amazonaws.com"}}"#;
    match &run(Format::Cloudtrail, rec.as_bytes())[..] {
        [Decoded::Event(ev)] => {
            assert_eq!(ev.identity, "secretsmanager.amazonaws.com");
            assert_eq!(ev.identity_kind, IdentityKind::ServiceAccount);
        }
        other => panic!("{other:?}"),
    }
}

/// serde_json's own recursion limit (128) would surface as invalid_json when `max_depth`
/// is configured above it; `util::serde_rejection` maps it to too_deep.
#[test]
fn serde_recursion_limit_is_too_deep_not_invalid_json() {
    let limits = Limits {
        max_record_bytes: 1 << 20,
        max_depth: 10_000,
    };
    let deep = format!(r#"{{"eventName":{}1{}}}"#, "[".repeat(500), "]".repeat(500));
    let mut out = Vec::new();
    decode(Format::Cloudtrail, deep.as_bytes(), &limits, &mut out);
    assert!(
        matches!(&out[..], [Decoded::Rejected(r)] if r.reason == RejectReason::TooDeep),
        "{out:?}"
    );
}

/// A byte-order mark in front of a line made an otherwise valid record invalid_json.
#[test]
fn utf8_bom_is_ignored() {
    let with_bom = format!("\u{feff}{NATIVE}");
    assert!(decode_native(with_bom.as_bytes(), &Limits::default()).is_ok());
    assert!(matches!(
        &run(Format::Auto, with_bom.as_bytes())[..],
        [Decoded::Event(_)]
    ));
}

/// An escaped key (`"Rec\u006frds"`) is still the `Records` envelope.
#[test]
fn escaped_records_key_is_still_an_envelope() {
    let rec = r#"{"eventTime":"2023-07-10T12:08:07Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"}}"#;
    let doc = format!(r#"{{"Rec\u006frds":[{rec},{rec}]}}"#);
    for format in [Format::Cloudtrail, Format::Auto] {
        let out = run(format, doc.as_bytes());
        assert_eq!(out.len(), 2, "{format:?}: {out:?}");
    }
}

/// Lone surrogate escapes are not valid Unicode: invalid_json, not a panic or a lossy
/// identity.
#[test]
fn lone_surrogate_escape_is_invalid_json() {
    let text = r#"{"time":1700000000000,"identity":"\ud800","action":"a","destination":"d"}"#;
    assert_eq!(
        rejected(Format::Native, text.as_bytes()),
        RejectReason::InvalidJson
    );
}

/// Brackets and quotes inside strings must not fool the depth scan or the envelope
/// splitter.
#[test]
fn brackets_and_escaped_quotes_inside_strings() {
    let limits = Limits {
        max_record_bytes: 1 << 20,
        max_depth: 2,
    };
    let text = r#"{"time":1700000000000,"identity":"[[[[\"{{{{","action":"a","destination":"d"}"#;
    assert!(decode_native(text.as_bytes(), &limits).is_ok());
}

/// NUL bytes and control characters outside strings are syntax errors, not panics.
#[test]
fn control_bytes_are_invalid_json() {
    for format in [
        Format::Native,
        Format::Cloudtrail,
        Format::K8sAudit,
        Format::Auto,
    ] {
        assert_eq!(
            rejected(format, b"{\0}"),
            RejectReason::InvalidJson,
            "{format:?}"
        );
    }
}
