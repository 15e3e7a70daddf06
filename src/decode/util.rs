//! Helpers shared by the decoders: quoting values into rejection details, event-time
//! parsing and range checks, IP recognition, and mapping serde_json errors to reasons.

use std::net::IpAddr;

use super::{RejectReason, Rejection};

/// Longest quoted value in a rejection detail: details go into metrics-adjacent logs and
/// dead-letter headers, so an attacker-controlled megabyte must not be echoed back.
pub(crate) const MAX_QUOTED_CHARS: usize = 80;

/// Earliest and latest accepted event times (2000-01-01 and 2200-01-01 UTC, epoch ms).
/// Anything outside is a unit mix-up (seconds vs ms) or garbage, and would poison the
/// event-time watermark.
pub(crate) const MIN_TIME_MS: i64 = 946_684_800_000;
pub(crate) const MAX_TIME_MS: i64 = 7_258_118_400_000;

/// `value` in backquotes, cut to [`MAX_QUOTED_CHARS`] characters.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("`{}…`", &value[..cut]),
        None => format!("`{value}`"),
    }
}

/// Longest value accepted per field, in bytes. Values flow into every signal (the
/// identity is also its Kafka key), into reasons and into the state record: unbounded,
/// one event with a half-megabyte identity made a first signal over the producer's
/// message limit, retried for ever with every commit behind it. Real values are far
/// shorter (an IAM role ARN is at most about 600 bytes, a Kubernetes user about 340, an
/// S3 object ARN about 1,100).
pub(crate) const FIELD_LIMITS: [(&str, usize); 6] = [
    ("identity", MAX_IDENTITY_BYTES),
    ("action", MAX_ACTION_BYTES),
    ("destination", MAX_DESTINATION_BYTES),
    ("event_id", MAX_EVENT_ID_BYTES),
    ("environment", MAX_ENVIRONMENT_BYTES),
    ("source_network", MAX_SOURCE_NETWORK_BYTES),
];
// Named one by one for the native fast path, which checks each value as it reads it.
pub(crate) const MAX_IDENTITY_BYTES: usize = 2048;
pub(crate) const MAX_ACTION_BYTES: usize = 1024;
pub(crate) const MAX_DESTINATION_BYTES: usize = 4096;
pub(crate) const MAX_EVENT_ID_BYTES: usize = 512;
pub(crate) const MAX_ENVIRONMENT_BYTES: usize = 256;
pub(crate) const MAX_SOURCE_NETWORK_BYTES: usize = 256;
/// A longer user agent is cut (on a character boundary), not refused: only its family
/// is used, and real clients do send long ones.
pub(crate) const MAX_USER_AGENT_BYTES: usize = 1024;

/// Refuses an event with an over-long field (naming it), and cuts an over-long user
/// agent; see [`FIELD_LIMITS`].
pub(crate) fn check_lengths(event: &mut crate::event::ActivityEvent) -> Result<(), Rejection> {
    let values = [
        Some(event.identity.as_str()),
        Some(event.action.as_str()),
        Some(event.destination.as_str()),
        event.event_id.as_deref(),
        event.environment.as_deref(),
        event.source_network.as_deref(),
    ];
    for ((field, max), value) in FIELD_LIMITS.iter().zip(values) {
        let len = value.map_or(0, str::len);
        if len > *max {
            return Err(Rejection::new(
                RejectReason::InvalidValue,
                format!("field `{field}` is {len} bytes, over the limit of {max}"),
            ));
        }
    }
    if let Some(ua) = event.user_agent.as_mut() {
        if ua.len() > MAX_USER_AGENT_BYTES {
            let mut cut = MAX_USER_AGENT_BYTES;
            while !ua.is_char_boundary(cut) {
                cut -= 1;
            }
            ua.truncate(cut);
        }
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp into epoch ms, range-checked.
pub(crate) fn parse_rfc3339(field: &str, text: &str) -> Result<i64, Rejection> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        Rejection::new(
            RejectReason::InvalidValue,
            format!(
                "field `{field}`: {} is neither RFC 3339 nor epoch milliseconds ({e})",
                quote(text)
            ),
        )
    })?;
    check_time_range(field, parsed.timestamp_millis())
}

/// Rejects event times outside [`MIN_TIME_MS`, `MAX_TIME_MS`).
pub(crate) fn check_time_range(field: &str, ms: i64) -> Result<i64, Rejection> {
    if in_time_range(ms) {
        Ok(ms)
    } else {
        Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("field `{field}`: {ms} ms is outside 2000-01-01..2200-01-01"),
        ))
    }
}

/// Whether [`check_time_range`] accepts `ms`; inlined where no rejection is built.
#[inline]
pub(crate) fn in_time_range(ms: i64) -> bool {
    (MIN_TIME_MS..MAX_TIME_MS).contains(&ms)
}

/// True when `text` is a literal IPv4 or IPv6 address.
pub(crate) fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

/// Maps a serde_json error that escaped the lenient field types. Those types accept any
/// JSON value, so what remains is syntax, a non-object top level, or a duplicate key.
pub(crate) fn serde_rejection(e: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            let msg = e.to_string();
            // serde_json's own nesting limit (128) is a depth problem, not bad syntax.
            if msg.starts_with("recursion limit exceeded") {
                Rejection::new(RejectReason::TooDeep, msg)
            } else {
                Rejection::new(RejectReason::InvalidJson, msg)
            }
        }
        Category::Data => {
            let msg = e.to_string();
            if msg.starts_with("duplicate field") {
                Rejection::new(RejectReason::InvalidValue, msg)
            } else if msg.starts_with("invalid type") {
                Rejection::new(RejectReason::NotAnObject, msg)
            } else {
                Rejection::new(RejectReason::WrongType, msg)
            }
        }
    }
}

/// Short name of a `serde_json::Value`'s type, for details.
pub(crate) fn value_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Tree-based accessors for the log-format adapters (CloudTrail, Kubernetes audit): these
/// records are bounded by `max_record_bytes` and `max_depth` before parsing, and their
/// shapes are too wide for a borrowed struct to pay off off the hot path.
pub(crate) struct Obj<'v> {
    pub map: &'v serde_json::Map<String, serde_json::Value>,
    /// Dotted path of this object, for details (`userIdentity.sessionContext`).
    pub path: &'static str,
}

impl<'v> Obj<'v> {
    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Optional string; null and absent are `None`, other types are `wrong_type`.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'v str>, Rejection> {
        match self.map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(Rejection::new(
                RejectReason::WrongType,
                format!(
                    "field `{}`: expected a string, found {}",
                    self.name(key),
                    value_kind(other)
                ),
            )),
        }
    }

    /// Optional non-empty string; empty strings are treated as absent.
    pub fn opt_nonempty(&self, key: &str) -> Result<Option<&'v str>, Rejection> {
        Ok(self.opt_str(key)?.filter(|s| !s.is_empty()))
    }

    /// Required non-empty string.
    pub fn req_str(&self, key: &str) -> Result<&'v str, Rejection> {
        self.opt_nonempty(key)?.ok_or_else(|| {
            Rejection::new(
                RejectReason::MissingField,
                format!("field `{}` is missing or empty", self.name(key)),
            )
        })
    }

    /// Optional nested object; other types are `wrong_type`.
    pub fn opt_obj(&self, key: &str, path: &'static str) -> Result<Option<Obj<'v>>, Rejection> {
        match self.map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Object(map)) => Ok(Some(Obj { map, path })),
            Some(other) => Err(Rejection::new(
                RejectReason::WrongType,
                format!(
                    "field `{}`: expected an object, found {}",
                    self.name(key),
                    value_kind(other)
                ),
            )),
        }
    }

    /// Optional nested object, ignoring any other type (for context we only mine).
    pub fn lenient_obj(&self, key: &str, path: &'static str) -> Option<Obj<'v>> {
        match self.map.get(key) {
            Some(serde_json::Value::Object(map)) => Some(Obj { map, path }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_truncates_long_values_on_char_boundary() {
        let long = "é".repeat(200);
        let q = quote(&long);
        assert_eq!(q.chars().count(), MAX_QUOTED_CHARS + 3);
        assert!(q.ends_with("…`"));
        assert_eq!(quote("abc"), "`abc`");
    }

    #[test]
    fn rfc3339_parses_with_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339("t", "2023-07-10T11:42:36Z").expect("ok"),
            1_688_989_356_000
        );
        assert_eq!(
            parse_rfc3339("t", "2023-07-10T13:42:36.5+02:00").expect("ok"),
            1_688_989_356_500
        );
    }

    #[test]
    fn time_range_bounds() {
        assert!(check_time_range("t", MIN_TIME_MS).is_ok());
        assert!(check_time_range("t", MIN_TIME_MS - 1).is_err());
        assert!(check_time_range("t", MAX_TIME_MS).is_err());
        let e = parse_rfc3339("time", "1999-12-31T23:59:59Z").expect_err("too old");
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("`time`"));
    }

    #[test]
    fn bad_time_text_names_field_and_value() {
        let e = parse_rfc3339("eventTime", "yesterday").expect_err("bad");
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("`eventTime`") && e.detail.contains("`yesterday`"));
    }
}
