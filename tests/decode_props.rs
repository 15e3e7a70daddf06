//! Property tests for the decoders: no input may panic, every input gets an answer, and
//! every rejection carries a detail (design §2: a bad record is never fatal).

use proptest::prelude::*;
use serde_json::{json, Value};

use riskd::decode::{decode, decode_native, Decoded, Format, Limits, RejectReason};

const FORMATS: [Format; 4] = [
    Format::Native,
    Format::Cloudtrail,
    Format::K8sAudit,
    Format::Auto,
];

fn limits() -> Limits {
    Limits {
        max_record_bytes: 64 * 1024,
        max_depth: 32,
    }
}

/// Decodes with every format and checks the invariants that hold for any input.
fn check_all(input: &[u8]) -> Result<(), TestCaseError> {
    for format in FORMATS {
        let mut out = Vec::new();
        decode(format, input, &limits(), &mut out);
        // Only a CloudTrail envelope with an empty `Records` may yield nothing.
        if out.is_empty() {
            prop_assert!(
                matches!(format, Format::Cloudtrail | Format::Auto),
                "{format:?} produced nothing"
            );
        }
        for d in &out {
            if let Decoded::Rejected(r) = d {
                prop_assert!(!r.detail.is_empty(), "{format:?}: empty detail {r:?}");
                prop_assert!(r.detail.len() < 2_000, "{format:?}: detail too long");
                prop_assert!(
                    !matches!(r.reason, RejectReason::TooLate | RejectReason::TooFarAhead),
                    "watermark reasons belong to the engine"
                );
            }
        }
        if format == Format::Native {
            let direct = decode_native(input, &limits());
            match (&out[..], direct) {
                ([Decoded::Event(a)], Ok(b)) => prop_assert_eq!(a.as_ref(), &b),
                ([Decoded::Rejected(a)], Err(b)) => prop_assert_eq!(a, &b),
                (o, d) => prop_assert!(false, "decode {o:?} vs decode_native {d:?}"),
            }
        }
    }
    Ok(())
}

/// Tokens that make JSON-ish text likely to reach deep into the parsers.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"",
            "\\",
            "null",
            "true",
            "false",
            "0",
            "-1",
            "1e999",
            "-0.0",
            "18446744073709551616",
            "1700000000000",
            "\"\\u00e9\"",
            "\"\\ud800\"",
            "\"Records\"",
            "\"identity\"",
            "\"time\"",
            "\"action\"",
            "\"destination\"",
            "\"attributes\"",
            "\"bytes\"",
            "\"eventSource\"",
            "\"eventName\"",
            "\"userIdentity\"",
            "\"type\"",
            "\"AssumedRole\"",
            "\"apiVersion\"",
            "\"audit.k8s.io/v1\"",
            "\"stage\"",
            "\"ResponseComplete\"",
            "\"objectRef\"",
            "\"user\"",
            "\"username\"",
            "\"responseStatus\"",
            "\"code\"",
            "\"2023-07-10T11:42:36Z\"",
            " ",
            "\n",
        ])
        .prop_map(str::to_string),
        "[a-z]{0,6}".prop_map(|s| format!("\"{s}\"")),
    ]
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| json!(x)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "identity",
                    "time",
                    "action",
                    "destination",
                    "bytes",
                    "records",
                    "outcome",
                    "attributes",
                    "Records",
                    "eventSource",
                    "eventName",
                    "eventTime",
                    "userIdentity",
                    "type",
                    "arn",
                    "stage",
                    "user",
                    "username",
                    "objectRef",
                    "resource",
                    "verb",
                    "apiVersion",
                    "kind",
                    "auditID",
                    "responseStatus",
                    "code",
                    "requestParameters",
                    "resources",
                    "x",
                ])
                .prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..512)) {
        check_all(&input)?;
    }

    #[test]
    fn json_ish_token_soup_never_panics(tokens in prop::collection::vec(token(), 0..64)) {
        check_all(tokens.concat().as_bytes())?;
    }

    #[test]
    fn arbitrary_json_values_never_panic(v in json_value()) {
        check_all(v.to_string().as_bytes())?;
        // The same value as a CloudTrail envelope and as a record list.
        check_all(json!({"Records": [v.clone(), v.clone()]}).to_string().as_bytes())?;
    }

    #[test]
    fn native_fields_with_arbitrary_values_never_panic(
        field in prop::sample::select(vec![
            "time", "identity", "action", "destination", "event_id", "identity_kind",
            "outcome", "bytes", "records", "sensitivity", "attributes", "source_ip",
        ]),
        v in json_value(),
    ) {
        let mut ev = json!({"time": 1_700_000_000_000_i64, "identity": "i", "action": "a", "destination": "d"});
        ev[field] = v;
        check_all(ev.to_string().as_bytes())?;
    }

    #[test]
    fn deep_nesting_is_bounded(depth in 0usize..3_000, object in any::<bool>()) {
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        let text = format!(
            "{{\"identity\":\"i\",\"x\":{}1{}}}",
            open.repeat(depth),
            close.repeat(depth)
        );
        check_all(text.as_bytes())?;
        let mut out = Vec::new();
        decode(Format::Native, text.as_bytes(), &limits(), &mut out);
        let too_deep = matches!(&out[..], [Decoded::Rejected(r)] if r.reason == RejectReason::TooDeep);
        // The outer object is one level.
        prop_assert_eq!(too_deep, depth + 1 > limits().max_depth);
    }

    #[test]
    fn huge_numbers_are_rejected_not_wrapped(digits in "[1-9][0-9]{18,40}", exp in 0u32..400) {
        for num in [digits.clone(), format!("{digits}e{exp}"), format!("-{digits}")] {
            for field in ["time", "bytes", "records"] {
                let text = format!(
                    r#"{{"time":1700000000000,"identity":"i","action":"a","destination":"d","{field}":{num}}}"#
                );
                check_all(text.as_bytes())?;
                if let Ok(ev) = decode_native(text.as_bytes(), &limits()) {
                    // Anything accepted must be the exact value written.
                    let n: u64 = num.parse().map_err(|_| TestCaseError::fail(format!("accepted {num} for {field}")))?;
                    prop_assert!(ev.bytes == Some(n) || ev.records == Some(n));
                }
            }
        }
    }

    #[test]
    fn valid_native_events_round_trip(
        identity in ".{1,40}",
        action in ".{1,20}",
        destination in ".{1,60}",
        time_ms in 946_684_800_000i64..7_258_118_400_000,
        bytes in proptest::option::of(any::<u64>()),
        attrs in prop::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
    ) {
        let mut v = json!({"time": time_ms, "identity": identity, "action": action, "destination": destination, "attributes": attrs});
        if let Some(b) = bytes {
            v["bytes"] = json!(b);
        }
        let ev = decode_native(v.to_string().as_bytes(), &limits())
            .map_err(|e| TestCaseError::fail(format!("{v}: {e}")))?;
        prop_assert_eq!(ev.time_ms, time_ms);
        prop_assert_eq!(&ev.identity, &identity);
        prop_assert_eq!(&ev.action, &action);
        prop_assert_eq!(&ev.destination, &destination);
        prop_assert_eq!(ev.bytes, bytes);
        prop_assert_eq!(ev.attributes, attrs);
    }

    #[test]
    fn envelope_yields_one_result_per_element(values in prop::collection::vec(json_value(), 0..8)) {
        let text = json!({"Records": values}).to_string();
        let mut out = Vec::new();
        decode(Format::Cloudtrail, text.as_bytes(), &limits(), &mut out);
        prop_assert_eq!(out.len(), values.len());
    }
}
