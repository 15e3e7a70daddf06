//! The native activity event (design §2): one JSON object per Kafka message or NDJSON
//! line. This is the hot path, so it deserializes straight into a borrowed struct (no
//! `serde_json::Value` tree): strings without escapes are borrowed from the input.
//!
//! Every field is read as a [`Loose`] value that accepts any JSON type, and validated
//! afterwards. That is what lets a rejection name the field and the bad value precisely
//! (serde's own type errors only carry a line and column), and keeps the set of errors
//! serde can raise down to syntax, top-level shape and duplicate keys.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::util::{check_time_range, parse_rfc3339, quote, serde_rejection};
use super::{RejectReason, Rejection};
use crate::event::{ActivityEvent, IdentityKind, Outcome, Sensitivity};

/// Any JSON value, keeping only what validation needs; containers are skipped unbuilt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loose<'a> {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Loose<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Loose::Bool(_) => "boolean",
            Loose::U64(_) | Loose::I64(_) | Loose::F64(_) => "number",
            Loose::Str(_) => "string",
            Loose::Array => "array",
            Loose::Object => "object",
        }
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Object)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

/// `attributes`: an object is collected (values still loose, checked later); anything
/// else is remembered by kind so the rejection can say what was found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LooseMap<'a> {
    Map(Vec<(Cow<'a, str>, Option<Loose<'a>>)>),
    Other(&'static str),
}

struct LooseMapVisitor;

impl<'de> Visitor<'de> for LooseMapVisitor {
    type Value = LooseMap<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(LooseMap::Other("boolean"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(LooseMap::Other("number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(LooseMap::Other("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(LooseMap::Other("number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(LooseMap::Other("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LooseMap::Other("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value = map.next_value::<Option<Loose<'de>>>()?;
            entries.push((key, value));
        }
        Ok(LooseMap::Map(entries))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LooseMap<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseMapVisitor)
    }
}

/// The wire shape. `Option` makes JSON `null` read as absent; unknown fields are skipped
/// by serde without being built.
#[derive(Deserialize)]
struct RawNative<'a> {
    #[serde(borrow, default)]
    time: Option<Loose<'a>>,
    #[serde(borrow, default)]
    identity: Option<Loose<'a>>,
    #[serde(borrow, default)]
    action: Option<Loose<'a>>,
    #[serde(borrow, default)]
    destination: Option<Loose<'a>>,
    #[serde(borrow, default)]
    event_id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    identity_kind: Option<Loose<'a>>,
    #[serde(borrow, default)]
    environment: Option<Loose<'a>>,
    #[serde(borrow, default)]
    source_ip: Option<Loose<'a>>,
    #[serde(borrow, default)]
    source_network: Option<Loose<'a>>,
    #[serde(borrow, default)]
    user_agent: Option<Loose<'a>>,
    #[serde(borrow, default)]
    outcome: Option<Loose<'a>>,
    #[serde(borrow, default)]
    bytes: Option<Loose<'a>>,
    #[serde(borrow, default)]
    records: Option<Loose<'a>>,
    #[serde(borrow, default)]
    sensitivity: Option<Loose<'a>>,
    #[serde(borrow, default)]
    attributes: Option<LooseMap<'a>>,
}

fn wrong_type(field: &str, expected: &str, found: &Loose) -> Rejection {
    Rejection::new(
        RejectReason::WrongType,
        format!(
            "field `{field}`: expected {expected}, found {}",
            found.kind()
        ),
    )
}

fn required(field: &str, v: Option<Loose<'_>>) -> Result<String, Rejection> {
    match v {
        Some(Loose::Str(s)) if !s.is_empty() => Ok(s.into_owned()),
        Some(Loose::Str(_)) => Err(Rejection::new(
            RejectReason::MissingField,
            format!("field `{field}` is empty"),
        )),
        None => Err(Rejection::new(
            RejectReason::MissingField,
            format!("field `{field}` is missing or null"),
        )),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

fn optional(field: &str, v: Option<Loose<'_>>) -> Result<Option<String>, Rejection> {
    match v {
        None => Ok(None),
        Some(Loose::Str(s)) if s.is_empty() => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

fn count(field: &str, v: Option<Loose<'_>>) -> Result<Option<u64>, Rejection> {
    match v {
        None => Ok(None),
        Some(Loose::U64(n)) => Ok(Some(n)),
        Some(Loose::I64(n)) => Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("field `{field}`: {n} is negative"),
        )),
        // serde_json reads integers beyond u64 as floats.
        Some(Loose::F64(x)) if x.is_finite() && x.fract() == 0.0 => Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("field `{field}`: {x} is out of range for a count"),
        )),
        Some(Loose::F64(x)) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("field `{field}`: expected a non-negative integer, found {x}"),
        )),
        Some(other) => Err(wrong_type(field, "a non-negative integer", &other)),
    }
}

fn time(v: Option<Loose<'_>>) -> Result<i64, Rejection> {
    match v {
        None => Err(Rejection::new(
            RejectReason::MissingField,
            "field `time` is missing or null",
        )),
        Some(Loose::Str(s)) => parse_rfc3339("time", &s),
        Some(Loose::U64(n)) => check_time_range("time", i64::try_from(n).unwrap_or(i64::MAX)),
        Some(Loose::I64(n)) => check_time_range("time", n),
        Some(Loose::F64(x)) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("field `time`: expected RFC 3339 or integer epoch milliseconds, found {x}"),
        )),
        Some(other) => Err(wrong_type(
            "time",
            "an RFC 3339 string or integer epoch milliseconds",
            &other,
        )),
    }
}

fn attributes(v: Option<LooseMap<'_>>) -> Result<BTreeMap<String, String>, Rejection> {
    let mut out = BTreeMap::new();
    match v {
        None => {}
        Some(LooseMap::Other(kind)) => {
            return Err(Rejection::new(
                RejectReason::WrongType,
                format!("field `attributes`: expected an object of strings, found {kind}"),
            ))
        }
        Some(LooseMap::Map(entries)) => {
            for (key, value) in entries {
                match value {
                    Some(Loose::Str(s)) => {
                        out.insert(key.into_owned(), s.into_owned());
                    }
                    None => {
                        return Err(Rejection::new(
                            RejectReason::WrongType,
                            format!("field `attributes.{key}`: expected a string, found null"),
                        ))
                    }
                    Some(other) => {
                        return Err(wrong_type(&format!("attributes.{key}"), "a string", &other))
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Decodes one native record that already passed the size, encoding and depth bounds.
pub(crate) fn decode_str(text: &str) -> Result<ActivityEvent, Rejection> {
    if !text.trim_start().starts_with('{') {
        if text.trim().is_empty() {
            return Err(Rejection::new(RejectReason::InvalidJson, "empty record"));
        }
        // Distinguish "valid JSON, wrong shape" from garbage.
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => Rejection::new(
                RejectReason::NotAnObject,
                format!(
                    "expected a JSON object, found {}",
                    super::scan::json_kind(text)
                ),
            ),
            Err(e) => serde_rejection(&e),
        });
    }
    let raw: RawNative = serde_json::from_str(text).map_err(|e| serde_rejection(&e))?;

    let time_ms = time(raw.time)?;
    let identity = required("identity", raw.identity)?;
    let action = required("action", raw.action)?;
    let destination = required("destination", raw.destination)?;

    let identity_kind = match optional("identity_kind", raw.identity_kind)? {
        Some(k) => IdentityKind::parse(&k),
        None => IdentityKind::Unknown,
    };
    let outcome = match optional("outcome", raw.outcome)? {
        None => Outcome::Success,
        Some(o) => Outcome::parse(&o).ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidValue,
                format!(
                    "field `outcome`: {} is not one of success, denied, error",
                    quote(&o)
                ),
            )
        })?,
    };
    let sensitivity = match optional("sensitivity", raw.sensitivity)? {
        None => None,
        Some(s) => Some(Sensitivity::parse(&s).ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidValue,
                format!(
                    "field `sensitivity`: {} is not one of public, internal, confidential, restricted",
                    quote(&s)
                ),
            )
        })?),
    };

    Ok(ActivityEvent {
        time_ms,
        identity,
        action,
        destination,
        event_id: optional("event_id", raw.event_id)?,
        identity_kind,
        environment: optional("environment", raw.environment)?,
        source_ip: optional("source_ip", raw.source_ip)?,
        source_network: optional("source_network", raw.source_network)?,
        user_agent: optional("user_agent", raw.user_agent)?,
        outcome,
        bytes: count("bytes", raw.bytes)?,
        records: count("records", raw.records)?,
        sensitivity,
        attributes: attributes(raw.attributes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> ActivityEvent {
        decode_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn bad(text: &str) -> Rejection {
        match decode_str(text) {
            Ok(ev) => panic!("expected rejection for {text}, got {ev:?}"),
            Err(e) => {
                assert!(!e.detail.is_empty());
                e
            }
        }
    }

    const MIN: &str =
        r#""identity":"svc-a","action":"s3:GetObject","destination":"arn:aws:s3:::b""#;

    #[test]
    fn minimal_event_with_rfc3339_time() {
        let ev = ok(&format!(r#"{{"time":"2026-11-25T08:00:00.120Z",{MIN}}}"#));
        assert_eq!(ev.time_ms, 1_795_593_600_120);
        assert_eq!(ev.identity, "svc-a");
        assert_eq!(ev.action, "s3:GetObject");
        assert_eq!(ev.destination, "arn:aws:s3:::b");
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.identity_kind, IdentityKind::Unknown);
        assert_eq!(ev.sensitivity, None);
        assert!(ev.attributes.is_empty());
    }

    #[test]
    fn epoch_millis_time() {
        assert_eq!(
            ok(&format!(r#"{{"time":1700000000000,{MIN}}}"#)).time_ms,
            1_700_000_000_000
        );
    }

    #[test]
    fn all_optional_fields_are_typed() {
        let ev = ok(&format!(
            r#"{{"time":1700000000000,{MIN},"event_id":"e1","identity_kind":"ai_agent",
            "environment":"prod","source_ip":"10.0.0.1","source_network":"vpc-1",
            "user_agent":"sdk/1","outcome":"denied","bytes":12,"records":3,
            "sensitivity":"restricted","attributes":{{"ticket":"T-1","session":"s"}},
            "unknown_field":{{"deep":[1,2,{{"x":null}}]}}}}"#
        ));
        assert_eq!(ev.event_id.as_deref(), Some("e1"));
        assert_eq!(ev.identity_kind, IdentityKind::AiAgent);
        assert_eq!(ev.environment.as_deref(), Some("prod"));
        assert_eq!(ev.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(ev.source_network.as_deref(), Some("vpc-1"));
        assert_eq!(ev.user_agent.as_deref(), Some("sdk/1"));
        assert_eq!(ev.outcome, Outcome::Denied);
        assert_eq!(ev.bytes, Some(12));
        assert_eq!(ev.records, Some(3));
        assert_eq!(ev.sensitivity, Some(Sensitivity::Restricted));
        assert_eq!(ev.attributes.get("ticket").map(String::as_str), Some("T-1"));
        assert_eq!(ev.attributes.len(), 2);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let ev =
            ok(r#"{"time":1700000000000,"identity":"a\"b\u00e9","action":"x","destination":"y"}"#);
        assert_eq!(ev.identity, "a\"bé");
    }

    #[test]
    fn unknown_identity_kind_maps_to_unknown() {
        let ev = ok(&format!(
            r#"{{"time":1700000000000,{MIN},"identity_kind":"robot-overlord"}}"#
        ));
        assert_eq!(ev.identity_kind, IdentityKind::Unknown);
    }

    #[test]
    fn nulls_and_empty_optionals_are_absent() {
        let ev = ok(&format!(
            r#"{{"time":1700000000000,{MIN},"event_id":null,"outcome":null,"bytes":null,"source_ip":""}}"#
        ));
        assert_eq!(ev.event_id, None);
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.bytes, None);
        assert_eq!(ev.source_ip, None);
    }

    #[test]
    fn missing_required_fields() {
        for field in ["identity", "action", "destination"] {
            let text = r#"{"time":1700000000000,"identity":"i","action":"a","destination":"d"}"#
                .replace(&format!(r#""{field}":"#), r#""other":"#);
            let e = bad(&text);
            assert_eq!(e.reason, RejectReason::MissingField, "{field}");
            assert!(e.detail.contains(&format!("`{field}`")), "{}", e.detail);
        }
        let e = bad(&format!("{{{MIN}}}"));
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("`time`"));
    }

    #[test]
    fn empty_required_string_is_missing() {
        let e = bad(r#"{"time":1700000000000,"identity":"","action":"a","destination":"d"}"#);
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("`identity` is empty"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (r#""identity":7,"action":"a","destination":"d""#, "identity"),
            (
                r#""identity":"i","action":["a"],"destination":"d""#,
                "action",
            ),
            (
                r#""identity":"i","action":"a","destination":{}"#,
                "destination",
            ),
            (r#"MIN,"bytes":"12""#, "bytes"),
            (r#"MIN,"records":1.5"#, "records"),
            (r#"MIN,"outcome":true"#, "outcome"),
            (r#"MIN,"attributes":[1]"#, "attributes"),
            (r#"MIN,"attributes":{"k":1}"#, "attributes.k"),
            (r#"MIN,"attributes":{"k":null}"#, "attributes.k"),
            (r#"MIN,"event_id":5"#, "event_id"),
        ];
        for (body, field) in cases {
            let body = body.replace("MIN", MIN);
            let e = bad(&format!(r#"{{"time":1700000000000,{body}}}"#));
            assert_eq!(e.reason, RejectReason::WrongType, "{body}: {e}");
            assert!(e.detail.contains(&format!("`{field}`")), "{}", e.detail);
        }
        let e = bad(&format!(r#"{{"time":true,{MIN}}}"#));
        assert_eq!(e.reason, RejectReason::WrongType);
        let e = bad(&format!(r#"{{"time":1.7e12,{MIN}}}"#));
        assert_eq!(e.reason, RejectReason::WrongType);
    }

    #[test]
    fn invalid_values_name_field_and_value() {
        let cases = [
            (r#""time":"yesterday""#, "time", "`yesterday`"),
            (r#""time":946684799999"#, "time", "946684799999"),
            (r#""time":"2200-01-01T00:00:00Z""#, "time", "outside"),
            (r#""time":-5"#, "time", "-5"),
            (
                r#""time":1700000000000,"outcome":"maybe""#,
                "outcome",
                "`maybe`",
            ),
            (
                r#""time":1700000000000,"sensitivity":"secret""#,
                "sensitivity",
                "`secret`",
            ),
            (r#""time":1700000000000,"bytes":-1"#, "bytes", "-1"),
            (
                r#""time":1700000000000,"records":1e30"#,
                "records",
                "out of range",
            ),
        ];
        for (body, field, needle) in cases {
            let e = bad(&format!("{{{body},{MIN}}}"));
            assert_eq!(e.reason, RejectReason::InvalidValue, "{body}: {e}");
            assert!(e.detail.contains(&format!("`{field}`")), "{}", e.detail);
            assert!(e.detail.contains(needle), "{}", e.detail);
        }
    }

    #[test]
    fn long_bad_values_are_truncated() {
        let long = "x".repeat(10_000);
        let e = bad(&format!(r#"{{"time":"{long}",{MIN}}}"#));
        assert!(e.detail.len() < 400, "{}", e.detail.len());
    }

    #[test]
    fn syntax_and_shape_errors() {
        assert_eq!(bad("{\"time\":").reason, RejectReason::InvalidJson);
        assert_eq!(bad("not json").reason, RejectReason::InvalidJson);
        assert_eq!(bad("").reason, RejectReason::InvalidJson);
        assert_eq!(bad("   ").reason, RejectReason::InvalidJson);
        assert_eq!(
            bad(&format!("{{{MIN}}} trailing")).reason,
            RejectReason::InvalidJson
        );
        let e = bad("[1,2]");
        assert_eq!(e.reason, RejectReason::NotAnObject);
        assert!(e.detail.contains("array"));
        assert_eq!(bad("\"str\"").reason, RejectReason::NotAnObject);
        assert_eq!(bad("42").reason, RejectReason::NotAnObject);
    }

    #[test]
    fn duplicate_field_is_invalid_value() {
        let e = bad(&format!(r#"{{"time":1700000000000,{MIN},"identity":"x"}}"#));
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("identity"), "{}", e.detail);
    }

    #[test]
    fn plain_strings_are_borrowed_not_copied() {
        let text = format!(r#"{{"time":1,{MIN}}}"#);
        let raw: RawNative = serde_json::from_str(&text).expect("parse");
        assert!(matches!(raw.identity, Some(Loose::Str(Cow::Borrowed(_)))));
    }
}
