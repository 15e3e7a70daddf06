//! Fast path of the native decoder (design §11): a hand-written parser for the shape
//! producers actually send — one flat object of plain strings and small integers, with
//! an optional `attributes` object of plain strings — that decodes straight into a
//! caller's [`ActivityEvent`], reusing its string buffers.
//!
//! It accepts a strict subset of what the serde path (`native::decode_str`) accepts and
//! gives up on anything else: escapes, control characters, floats, negative numbers,
//! booleans in known fields, containers in unknown fields, duplicate fields, every
//! value the serde path would reject, and values over `check_lengths`' limits (a user
//! agent it would cut included). Giving up is cheap and the caller then runs the
//! bounded serde path, so every rejection and its detail still comes from exactly one
//! place, and a fast-path success is always the event the serde path would have built.
//!
//! Because it only accepts objects it has walked completely, it also knows their depth
//! (1, or 2 with `attributes`), which is what lets the caller skip the separate depth
//! pre-scan on success.

use crate::event::{ActivityEvent, IdentityKind, Outcome, Sensitivity};

use super::util::{in_time_range, parse_rfc3339};

const TIME: usize = 0;
const IDENTITY: usize = 1;
const ACTION: usize = 2;
const DESTINATION: usize = 3;
const EVENT_ID: usize = 4;
const IDENTITY_KIND: usize = 5;
const ENVIRONMENT: usize = 6;
const SOURCE_IP: usize = 7;
const SOURCE_NETWORK: usize = 8;
const USER_AGENT: usize = 9;
const OUTCOME: usize = 10;
const BYTES: usize = 11;
const RECORDS: usize = 12;
const SENSITIVITY: usize = 13;
const ATTRIBUTES: usize = 14;
/// Not a known field: the value is walked (it must be a scalar) and dropped.
const UNKNOWN: usize = 15;

fn field_index(key: &str) -> Option<usize> {
    Some(match key {
        "time" => TIME,
        "identity" => IDENTITY,
        "action" => ACTION,
        "destination" => DESTINATION,
        "event_id" => EVENT_ID,
        "identity_kind" => IDENTITY_KIND,
        "environment" => ENVIRONMENT,
        "source_ip" => SOURCE_IP,
        "source_network" => SOURCE_NETWORK,
        "user_agent" => USER_AGENT,
        "outcome" => OUTCOME,
        "bytes" => BYTES,
        "records" => RECORDS,
        "sensitivity" => SENSITIVITY,
        "attributes" => ATTRIBUTES,
        _ => return None,
    })
}

/// The known field whose key `rest` (the text after a key's opening quote) starts with,
/// and the length of that key with its closing quote. A byte or two picks the only
/// candidate, which is then compared whole: scanning each key for its end and matching
/// the result cost ~10 % of decoding. Anything else (an unknown key, a longer one, one
/// with escapes) is `None` and takes the general way, the key's whole text through
/// [`field_index`], which gives the same field for every key this accepts.
fn known_key(rest: &[u8]) -> Option<(usize, usize)> {
    let (field, quoted): (usize, &[u8]) = match *rest.first()? {
        b't' => (TIME, b"time\""),
        b'i' if rest.get(8) == Some(&b'"') => (IDENTITY, b"identity\""),
        b'i' => (IDENTITY_KIND, b"identity_kind\""),
        b'a' if rest.get(1) == Some(&b'c') => (ACTION, b"action\""),
        b'a' => (ATTRIBUTES, b"attributes\""),
        b'd' => (DESTINATION, b"destination\""),
        b'e' if rest.get(1) == Some(&b'v') => (EVENT_ID, b"event_id\""),
        b'e' => (ENVIRONMENT, b"environment\""),
        b's' => match rest.get(7) {
            Some(b'i') => (SOURCE_IP, b"source_ip\""),
            Some(b'n') => (SOURCE_NETWORK, b"source_network\""),
            _ => (SENSITIVITY, b"sensitivity\""),
        },
        b'u' => (USER_AGENT, b"user_agent\""),
        b'o' => (OUTCOME, b"outcome\""),
        b'b' => (BYTES, b"bytes\""),
        b'r' => (RECORDS, b"records\""),
        _ => return None,
    };
    short_prefix_eq(rest, quoted).then_some((field, quoted.len()))
}

/// Whether `rest` starts with `quoted`, one of the keys above or an `identity_kind` or
/// `outcome` name (4 to 16 bytes with its quote): two overlapping word compares instead
/// of a call to `memcmp`, which for ten keys per event cost ~25 instructions each. Any
/// other length compares plainly.
/// Always inlined: a call, with the lengths unknown, costs more than the compares.
#[inline(always)]
fn short_prefix_eq(rest: &[u8], quoted: &[u8]) -> bool {
    let n = quoted.len();
    let Some(head) = rest.get(..n) else {
        return false;
    };
    let word8 = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let word4 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_le_bytes)
    };
    match n {
        8..=16 => word8(head, 0) == word8(quoted, 0) && word8(head, n - 8) == word8(quoted, n - 8),
        4..=7 => word4(head, 0) == word4(quoted, 0) && word4(head, n - 4) == word4(quoted, n - 4),
        _ => head == quoted,
    }
}

/// Byte cursor over text that is already known to be UTF-8. Every method returns
/// `None` on anything outside the fast path's grammar; nothing here can panic.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// A string without escapes or control characters (both legal or diagnosable only
    /// by the serde path). Slicing at the ASCII quotes keeps `get` on char boundaries.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let len = string_len(self.text.as_bytes().get(start..)?)?;
        self.pos = start + len + 1;
        self.text.get(start..start + len)
    }

    /// After a member: `,` (true, more follow) or `}` (false, object done).
    fn member_end(&mut self) -> Option<bool> {
        self.skip_ws();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.skip_ws();
                Some(true)
            }
            b'}' => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// `key :` with whitespace around the colon; leaves the cursor on the value.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.colon()?;
        Some(key)
    }

    /// The `:` after a key, with whitespace around it.
    fn colon(&mut self) -> Option<()> {
        self.skip_ws();
        self.eat(b':')?;
        self.skip_ws();
        Some(())
    }
}

/// Largest buffer a reused string keeps when the new value is small. Without this, one
/// hostile megabyte-long value would leave a megabyte in a recycled event for good, and
/// a stream of them could grow every circulating event that way.
const MAX_KEPT_CAPACITY: usize = 4096;

/// Always inlined (as [`set_opt`]): a call per field cost ~15 instructions, more than
/// the test and the copy's setup.
#[inline(always)]
fn set(slot: &mut String, value: &str) {
    if slot.capacity() > MAX_KEPT_CAPACITY && value.len() <= MAX_KEPT_CAPACITY {
        return shrink_to(slot, value);
    }
    slot.clear();
    slot.push_str(value);
}

/// The rare branch of [`set`], out of line so the common one stays small.
#[cold]
#[inline(never)]
fn shrink_to(slot: &mut String, value: &str) {
    *slot = value.to_owned();
}

/// Fills an optional field, reusing the buffer already there.
#[inline(always)]
fn set_opt(slot: &mut Option<String>, value: Option<&str>) {
    match (slot.as_mut(), value) {
        (Some(s), Some(v)) => set(s, v),
        (None, Some(v)) => *slot = Some(v.to_owned()),
        (_, None) => *slot = None,
    }
}

/// Length of the plain string starting at `rest` (just after its opening quote): the
/// index of its closing quote. `None` for an escape, a control character or no end
/// (legal or diagnosable only by the serde path).
#[inline(always)]
fn string_len(rest: &[u8]) -> Option<usize> {
    let len = super::scan::find_string_stop(rest)?;
    (rest.get(len) == Some(&b'"')).then_some(len)
}

/// A non-negative integer that serde_json would read as `u64`, starting at `b[i]` (a
/// digit): no leading zero, no fraction or exponent, no overflow (serde_json turns that
/// into a float). Returns it and the index after it.
fn integer(b: &[u8], mut i: usize) -> Option<(u64, usize)> {
    let start = i;
    let mut n: u64 = 0;
    // Nineteen digits cannot overflow; only longer numbers need the checked steps.
    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10) {
        if i - start == 19 {
            break;
        }
        n = n * 10 + u64::from(d);
        i += 1;
    }
    while let Some(d) = b.get(i).filter(|b| b.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    let digits = i - start;
    if digits == 0 || (digits > 1 && b.get(start) == Some(&b'0')) {
        return None;
    }
    if matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((n, i))
}

/// Skips JSON whitespace from `b[i]`. Producers rarely write any, so one compare (all
/// four are at most `b' '`) decides most calls; the loop is out of line.
#[inline(always)]
fn skip_ws(b: &[u8], i: usize) -> usize {
    if b.get(i).is_some_and(|&c| c <= b' ') {
        skip_ws_loop(b, i)
    } else {
        i
    }
}

fn skip_ws_loop(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A canonical timestamp string ([`canonical_ms`]) starting at `b[i]` (its opening
/// quote): its epoch ms and the index after its closing quote. Its bytes are digits and
/// punctuation, none of them a string stop, so the quote right after them ends the
/// string exactly as a scan would find; this skips that scan.
#[inline(always)]
fn canonical_time_at(b: &[u8], i: usize) -> Option<(i64, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    [24, 20].into_iter().find_map(|len| {
        let end = i + 1 + len;
        if b.get(end) != Some(&b'"') {
            return None;
        }
        Some((canonical_ms(b.get(i + 1..end)?)?, end + 1))
    })
}

/// The value at `b[i]` of `field` when it is in one of the shapes read without a string
/// scan (a canonical `time`, an `identity_kind` or `outcome` spelt as producers write
/// them): stored in `event`, and the index after it. `Some(None)` leaves the value to
/// the general way; `None` gives up (a time out of range).
#[inline(always)]
fn in_place(field: usize, b: &[u8], i: usize, event: &mut ActivityEvent) -> Option<Option<usize>> {
    match field {
        TIME => match canonical_time_at(b, i) {
            Some((ms, next)) => {
                if !in_time_range(ms) {
                    return None;
                }
                event.time_ms = ms;
                Some(Some(next))
            }
            None => Some(None),
        },
        IDENTITY_KIND => Some(quoted_word(b, i, identity_kind_value).map(|(kind, next)| {
            event.identity_kind = kind;
            next
        })),
        OUTCOME => Some(quoted_word(b, i, outcome_value).map(|(outcome, next)| {
            event.outcome = outcome;
            next
        })),
        _ => Some(None),
    }
}

/// A string at `b[i]` (its opening quote) that `value` recognises from its text and
/// closing quote: what `value` gives and the index after the string. Such values are
/// plain letters, so the quote `value` checks is the string's end a scan would find.
#[inline(always)]
fn quoted_word<T>(
    b: &[u8],
    i: usize,
    value: fn(&[u8]) -> Option<(T, usize)>,
) -> Option<(T, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let (v, len) = value(b.get(i + 1..)?)?;
    Some((v, i + 1 + len))
}

/// The identity kind whose name (and closing quote) `rest` starts with, as
/// [`IdentityKind::parse`] reads it, and that length; `None` for any other text (which
/// the general way reads, `Unknown` included).
#[inline(always)]
fn identity_kind_value(rest: &[u8]) -> Option<(IdentityKind, usize)> {
    let (kind, quoted): (IdentityKind, &[u8]) = match *rest.first()? {
        b's' => (IdentityKind::ServiceAccount, b"service_account\""),
        b'a' if rest.get(1) == Some(&b'p') => (IdentityKind::ApiKey, b"api_key\""),
        b'a' => (IdentityKind::AiAgent, b"ai_agent\""),
        b'w' => (IdentityKind::Workload, b"workload\""),
        b'h' => (IdentityKind::Human, b"human\""),
        b'b' => (IdentityKind::Bot, b"bot\""),
        b'u' => (IdentityKind::Unknown, b"unknown\""),
        _ => return None,
    };
    short_prefix_eq(rest, quoted).then_some((kind, quoted.len()))
}

/// [`identity_kind_value`] for [`Outcome::parse`]'s names.
#[inline(always)]
fn outcome_value(rest: &[u8]) -> Option<(Outcome, usize)> {
    let (outcome, quoted): (Outcome, &[u8]) = match *rest.first()? {
        b's' => (Outcome::Success, b"success\""),
        b'd' => (Outcome::Denied, b"denied\""),
        b'e' => (Outcome::Error, b"error\""),
        _ => return None,
    };
    short_prefix_eq(rest, quoted).then_some((outcome, quoted.len()))
}

/// A scalar value as the fast path understands it; anything else gives up.
#[derive(Clone, Copy)]
enum Val<'a> {
    Null,
    Str(&'a str),
    U64(u64),
}

/// An optional string field: null and empty read as `None`; a number gives up.
#[inline(always)]
fn optional(v: Val<'_>) -> Option<Option<&str>> {
    match v {
        Val::Null => Some(None),
        Val::Str(s) => Some((!s.is_empty()).then_some(s)),
        Val::U64(_) => None,
    }
}

/// A required string field, present and non-empty, of at most `max` bytes (longer is
/// a rejection, which [`util::check_lengths`](super::util::check_lengths) words on the
/// serde path).
#[inline(always)]
fn required(v: Val<'_>, max: usize) -> Option<&str> {
    match v {
        Val::Str(s) if !s.is_empty() && s.len() <= max => Some(s),
        _ => None,
    }
}

/// Fills an optional string field of at most `max` bytes, reusing the buffer there.
#[inline(always)]
fn set_optional(slot: &mut Option<String>, v: Val<'_>, max: usize) -> Option<()> {
    let value = optional(v)?;
    if value.map_or(0, str::len) > max {
        return None;
    }
    set_opt(slot, value);
    Some(())
}

/// Decodes `text` into `event` if it is in the fast path's subset and would decode
/// without rejection, nested no deeper than `max_depth`, with every field within the
/// length limits of [`check_lengths`](super::util::check_lengths) (and a user agent
/// short enough not to be cut), so the caller needs no further checks. On `false` the
/// event holds an unspecified (but valid) mix of old and new values and the caller must
/// run the full path.
pub(crate) fn decode_into(text: &str, max_depth: usize, event: &mut ActivityEvent) -> bool {
    parse(text, max_depth, event).is_some()
}

/// One pass that writes each value straight into `event` as it is read: the defaults
/// of the fields that may be absent are written first (plain stores) or, for the
/// optional strings, after the walk for those not seen (so their buffers survive), and
/// a line that turns out to be outside the subset leaves a mix the caller overwrites.
fn parse(text: &str, max_depth: usize, event: &mut ActivityEvent) -> Option<()> {
    use super::util::{
        MAX_ACTION_BYTES, MAX_DESTINATION_BYTES, MAX_ENVIRONMENT_BYTES, MAX_EVENT_ID_BYTES,
        MAX_IDENTITY_BYTES, MAX_SOURCE_NETWORK_BYTES, MAX_USER_AGENT_BYTES,
    };
    let b = text.as_bytes();
    let mut seen = 0u32;
    let mut depth = 1usize;
    let mut has_attributes = false;
    event.identity_kind = IdentityKind::Unknown;
    event.outcome = Outcome::Success;
    event.sensitivity = None;
    event.bytes = None;
    event.records = None;

    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    // `{}` lacks the required fields: only the serde path words that.
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        let field = match b.get(i..).and_then(known_key) {
            Some((field, len)) => {
                i += len;
                field
            }
            None => {
                let end = i + string_len(b.get(i..)?)?;
                let key = text.get(i..end)?;
                i = end + 1;
                field_index(key).unwrap_or(UNKNOWN)
            }
        };
        if b.get(i) != Some(&b':') {
            i = skip_ws(b, i);
            if b.get(i) != Some(&b':') {
                return None;
            }
        }
        i = skip_ws(b, i + 1);
        if field != UNKNOWN {
            // serde rejects a repeated known field, even one that was null.
            if seen & (1 << field) != 0 {
                return None;
            }
            seen |= 1 << field;
        }
        if field == ATTRIBUTES {
            if b.get(i) == Some(&b'{') {
                depth = 2;
                has_attributes = true;
                let mut c = Cursor { text, pos: i };
                attributes(&mut c, event)?;
                i = c.pos;
            } else if b.get(i..i + 4) == Some(b"null") {
                // Only `null` means "no attributes"; anything else is a rejection.
                i += 4;
            } else {
                return None;
            }
        } else if let Some(next) = in_place(field, b, i, event)? {
            i = next;
        } else {
            let val = match *b.get(i)? {
                b'"' => {
                    let start = i + 1;
                    let end = start + string_len(b.get(start..)?)?;
                    i = end + 1;
                    Val::Str(text.get(start..end)?)
                }
                b'n' if b.get(i..i + 4) == Some(b"null") => {
                    i += 4;
                    Val::Null
                }
                b'0'..=b'9' => {
                    let (n, next) = integer(b, i)?;
                    i = next;
                    Val::U64(n)
                }
                _ => return None,
            };
            match field {
                TIME => {
                    event.time_ms = match val {
                        Val::Str(s) => match canonical_rfc3339_ms(s) {
                            Some(ms) => in_time_range(ms).then_some(ms)?,
                            None => parse_rfc3339("time", s).ok()?,
                        },
                        Val::U64(n) => {
                            let ms = i64::try_from(n).unwrap_or(i64::MAX);
                            in_time_range(ms).then_some(ms)?
                        }
                        Val::Null => return None,
                    }
                }
                IDENTITY => set(&mut event.identity, required(val, MAX_IDENTITY_BYTES)?),
                ACTION => set(&mut event.action, required(val, MAX_ACTION_BYTES)?),
                DESTINATION => set(
                    &mut event.destination,
                    required(val, MAX_DESTINATION_BYTES)?,
                ),
                EVENT_ID => set_optional(&mut event.event_id, val, MAX_EVENT_ID_BYTES)?,
                ENVIRONMENT => set_optional(&mut event.environment, val, MAX_ENVIRONMENT_BYTES)?,
                SOURCE_IP => set_optional(&mut event.source_ip, val, usize::MAX)?,
                SOURCE_NETWORK => {
                    set_optional(&mut event.source_network, val, MAX_SOURCE_NETWORK_BYTES)?
                }
                // A longer one is cut on the serde path; giving up leaves that to it.
                USER_AGENT => set_optional(&mut event.user_agent, val, MAX_USER_AGENT_BYTES)?,
                IDENTITY_KIND => {
                    if let Some(k) = optional(val)? {
                        event.identity_kind = IdentityKind::parse(k);
                    }
                }
                OUTCOME => {
                    if let Some(o) = optional(val)? {
                        event.outcome = Outcome::parse(o)?;
                    }
                }
                SENSITIVITY => {
                    if let Some(s) = optional(val)? {
                        event.sensitivity = Some(Sensitivity::parse(s)?);
                    }
                }
                BYTES | RECORDS => {
                    let n = match val {
                        Val::Null => None,
                        Val::U64(n) => Some(n),
                        Val::Str(_) => return None,
                    };
                    if field == BYTES {
                        event.bytes = n;
                    } else {
                        event.records = n;
                    }
                }
                // Unknown fields are skipped by the serde path; only scalars are walked
                // here, so depth stays known.
                _ => {}
            }
        }
        // After a member: `,` (more follow) or `}` (object done).
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    if skip_ws(b, i + 1) != b.len() || depth > max_depth {
        return None;
    }
    const REQUIRED: u32 = 1 << TIME | 1 << IDENTITY | 1 << ACTION | 1 << DESTINATION;
    if seen & REQUIRED != REQUIRED {
        return None;
    }
    if !has_attributes && !event.attributes.is_empty() {
        event.attributes.clear();
    }
    // Optional strings that were absent; those seen were set above.
    let unseen = !seen;
    for (field, slot) in [
        (EVENT_ID, &mut event.event_id),
        (ENVIRONMENT, &mut event.environment),
        (SOURCE_IP, &mut event.source_ip),
        (SOURCE_NETWORK, &mut event.source_network),
        (USER_AGENT, &mut event.user_agent),
    ] {
        if unseen & (1 << field) != 0 {
            *slot = None;
        }
    }
    Some(())
}

/// Epoch milliseconds of a timestamp in the one RFC 3339 form producers nearly always
/// write, `YYYY-MM-DDTHH:MM:SS.mmmZ` (or without `.mmm`), for a real calendar date;
/// `None` for anything else, which chrono then parses (or rejects) as before. chrono
/// costs ~500 instructions per event here, this ~50.
pub(crate) fn canonical_rfc3339_ms(s: &str) -> Option<i64> {
    canonical_ms(s.as_bytes())
}

/// [`canonical_rfc3339_ms`] on bytes, for the fast path's timestamps read in place.
///
/// A word at a time: each eight bytes are checked against their template (digits where
/// digits go, the exact punctuation elsewhere) and their two-digit fields combined in
/// one multiply, instead of a loop and bounds checks per digit (~200 instructions per
/// event before, most of the time parse).
fn canonical_ms(b: &[u8]) -> Option<i64> {
    let word = |at: usize| {
        b.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    // Little-endian templates: `0` where a digit goes, the punctuation elsewhere. The
    // short form's last word is `:SSZ` and four zero bytes, which `tail` pads it with.
    const fn template(text: &[u8; 8]) -> (u64, u64) {
        let word = u64::from_le_bytes(*text);
        (word, digit_bytes(word))
    }
    const DATE: (u64, u64) = template(b"0000-00-");
    const TIME: (u64, u64) = template(b"00T00:00");
    const SECONDS_MS: (u64, u64) = template(b":00.000Z");
    const SECONDS: (u64, u64) = template(b":00Z\0\0\0\0");
    let (date, time) = (word(0)?, word(8)?);
    let (tail, tail_template) = match b.len() {
        24 => (word(16)?, SECONDS_MS),
        20 => {
            let short = b.get(16..20).and_then(|w| <[u8; 4]>::try_from(w).ok())?;
            (u64::from(u32::from_le_bytes(short)), SECONDS)
        }
        _ => return None,
    };
    let date = template_digits(date, DATE)?;
    let time = template_digits(time, TIME)?;
    let tail = template_digits(tail, tail_template)?;
    // Byte k of `pairs(x)` is the two-digit number of bytes k and k + 1 of `x`.
    let pairs = |x: u64| x * 10 + (x >> 8);
    let byte = |x: u64, k: u32| (x >> (8 * k)) & 0xff;
    let (date2, time2, tail2) = (pairs(date), pairs(time), pairs(tail));
    let year = byte(date2, 0) * 100 + byte(date2, 2);
    let month = byte(date2, 5);
    let day = byte(time2, 0);
    let (hour, minute) = (byte(time2, 3), byte(time2, 6));
    let second = byte(tail2, 1);
    // Zero for the short form, whose bytes 4 to 6 are zero.
    let ms = byte(tail2, 4) * 10 + byte(tail, 6);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    // Days in the month and days before it in a common year.
    const MONTHS: [(u64, u64); 12] = [
        (31, 0),
        (28, 31),
        (31, 59),
        (30, 90),
        (31, 120),
        (30, 151),
        (31, 181),
        (31, 212),
        (30, 243),
        (31, 273),
        (30, 304),
        (31, 334),
    ];
    let (month_days, before) = *MONTHS.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    let month_days = month_days + u64::from(leap && month == 2);
    // Second 60 (a leap second) is chrono's to interpret.
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 0000-01-01, counted from 400 years later (the same calendar) so that
    // nothing goes below zero for years 0000 to 9999: whole years, the leap days before
    // this year, then this year's days.
    let y = year + 400;
    let leap_days = (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400;
    let days = y * 365 + leap_days + before + u64::from(leap && month > 2) + day - 1;
    // The same count for 1970-01-01.
    const EPOCH: u64 = 2370 * 365 + 2369 / 4 - 2369 / 100 + 2369 / 400;
    let days = i64::try_from(days).ok()? - i64::try_from(EPOCH).ok()?;
    let in_day = ((hour * 60 + minute) * 60 + second) * 1000 + ms;
    Some(days * 86_400_000 + i64::try_from(in_day).ok()?)
}

/// The digits of `word` (eight bytes of a timestamp) in the bytes where `template` has
/// `0` (`digits`, from [`digit_bytes`]), as numbers 0-9, and zero in the others, which
/// must equal `template`'s; `None` if any byte does not fit its template.
#[inline(always)]
fn template_digits(word: u64, (template, digits): (u64, u64)) -> Option<u64> {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let x = word ^ template;
    // Outside the digit bytes nothing may differ; in them only the low nibble may (so
    // each is 0x30 to 0x3f and `x` holds its value, 0 to 15).
    if x & !(digits & LOW_NIBBLES) != 0 {
        return None;
    }
    // Values of 10 to 15 carry into the high nibble when 6 is added (no byte can carry
    // into the next: each is at most 15 + 6).
    if x.wrapping_add(digits & (ONES * 6)) & (digits & !LOW_NIBBLES) != 0 {
        return None;
    }
    Some(x)
}

/// 0xff in each byte of `template` that is `0`, 0 in the others.
#[inline(always)]
const fn digit_bytes(template: u64) -> u64 {
    let bytes = template.to_le_bytes();
    let mut mask = 0u64;
    let mut k = 0;
    while k < 8 {
        if bytes[k] == b'0' {
            mask |= 0xff << (8 * k);
        }
        k += 1;
    }
    mask
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Attribute pairs handled without a temporary vector; more go through `insert`.
const MAX_INLINE_ATTRIBUTES: usize = 8;

/// `attributes`: an object of plain strings; the last of repeated keys wins, as in the
/// serde path (which collects the entries and inserts them in order).
///
/// Rebuilding the map would cost two strings and a node per event. When the recycled
/// event already has the same keys (common: producers send fixed attribute sets) only
/// the values are overwritten; otherwise the old strings are reused for the new ones.
fn attributes(c: &mut Cursor<'_>, event: &mut ActivityEvent) -> Option<()> {
    c.eat(b'{')?;
    c.skip_ws();
    let mut pairs: [(&str, &str); MAX_INLINE_ATTRIBUTES] = [("", ""); MAX_INLINE_ATTRIBUTES];
    let mut n = 0usize;
    let mut overflow = false;
    if c.peek()? == b'}' {
        c.pos += 1;
    } else {
        loop {
            let key = c.key()?;
            let value = c.string()?;
            match pairs.get_mut(n) {
                Some(slot) if !overflow => {
                    *slot = (key, value);
                    n += 1;
                }
                _ => {
                    if !overflow {
                        // Too many for the array: fall back to plain inserts, in order.
                        overflow = true;
                        event.attributes.clear();
                        for (k, v) in pairs.iter().take(n) {
                            event.attributes.insert((*k).to_owned(), (*v).to_owned());
                        }
                    }
                    event.attributes.insert(key.to_owned(), value.to_owned());
                }
            }
            if !c.member_end()? {
                break;
            }
        }
    }
    if overflow {
        return Some(());
    }
    let pairs = pairs.get_mut(..n)?;
    // Sorted by key, later duplicates after earlier ones (stable), then keep the last.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut unique = 0usize;
    for i in 0..pairs.len() {
        let last_of_key = match (pairs.get(i), pairs.get(i + 1)) {
            (Some(this), Some(next)) => this.0 != next.0,
            _ => true,
        };
        if last_of_key {
            pairs.swap(unique, i);
            unique += 1;
        }
    }
    let pairs = pairs.get(..unique)?;
    if event.attributes.len() == pairs.len()
        && event.attributes.keys().zip(pairs).all(|(k, p)| k == p.0)
    {
        for (value, p) in event.attributes.values_mut().zip(pairs) {
            set(value, p.1);
        }
        return Some(());
    }
    // Old strings, kept for their buffers (empty `String`s cost nothing).
    let mut spare: [String; 2 * MAX_INLINE_ATTRIBUTES] = Default::default();
    let mut spares = 0usize;
    while let Some((k, v)) = event.attributes.pop_first() {
        for old in [k, v] {
            if let Some(slot) = spare.get_mut(spares) {
                *slot = old;
                spares += 1;
            }
        }
    }
    let mut take = || {
        spares = spares.saturating_sub(1);
        spare
            .get_mut(spares)
            .map(std::mem::take)
            .unwrap_or_default()
    };
    for (k, v) in pairs {
        let mut key = take();
        let mut value = take();
        set(&mut key, k);
        set(&mut value, v);
        event.attributes.insert(key, value);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::native::decode_str;

    /// The native format's known keys, in `field_index` order.
    const KNOWN_KEYS: [&str; 15] = [
        "time",
        "identity",
        "action",
        "destination",
        "event_id",
        "identity_kind",
        "environment",
        "source_ip",
        "source_network",
        "user_agent",
        "outcome",
        "bytes",
        "records",
        "sensitivity",
        "attributes",
    ];

    /// The word compares against a plain prefix test: every known key, whole, cut
    /// short, and with each of its bytes changed.
    #[test]
    fn short_prefix_compare_matches_starts_with() {
        let check = |rest: &[u8], quoted: &[u8]| {
            assert_eq!(
                short_prefix_eq(rest, quoted),
                rest.starts_with(quoted),
                "{rest:?} {quoted:?}"
            );
        };
        for name in KNOWN_KEYS.iter().chain(&["a", "abc", "seventeen_bytes_k"]) {
            let quoted = format!("{name}\"");
            let quoted = quoted.as_bytes();
            let mut rest = quoted.to_vec();
            rest.extend_from_slice(b": \"value\"");
            check(&rest, quoted);
            for cut in 0..quoted.len() {
                check(&rest[..cut], quoted);
            }
            for at in 0..quoted.len() {
                let mut changed = rest.clone();
                changed[at] ^= 0x20;
                check(&changed, quoted);
            }
        }
    }

    const LINES: [&str; 6] = [
        r#"{"time":"2026-11-02T00:00:11.919Z","identity":"system:serviceaccount:kube-system:replicaset-controller-c98","action":"get pods","destination":"growth/pods/accounts-4vkzhh6hjh-42zdz","event_id":"evt_bcda4680438a5951","identity_kind":"service_account","environment":"prod","source_ip":"10.0.2.111","source_network":"eks-control-plane","user_agent":"kube-controller-manager/v1.29.6 (linux/amd64) kubernetes/2d8f8e2","outcome":"success"}"#,
        r#"{"time":"2026-11-02T00:00:13.181Z","identity":"key_live_xdydowLZK19rb4i4idCwY3Lr","action":"POST /v1/charges/{id}/capture","destination":"api.pay.acme.com/v1/charges/ch_7BWza41pumGDoD6z8fuTPa1h/capture","event_id":"evt_1a3eaa3c25c3a340","identity_kind":"api_key","environment":"prod","source_ip":"3.96.71.250","user_agent":"acme-pay-python/5.4.0 python/3.11.6","outcome":"success","bytes":1860,"attributes":{"account":"acct_V3acjBhOx4s2PFH3"}}"#,
        r#" { "time" : 1700000000000 , "identity" : "é😀" , "action":"a", "destination":"d", "records":0, "sensitivity":"restricted", "outcome":"denied", "extra":"x", "n":null, "m":12, "attributes":{"b":"2","a":"1","b":"3"} } "#,
        r#"{"time":1700000000000,"identity":"i","action":"a","destination":"d","event_id":"","source_ip":null,"attributes":null,"identity_kind":"robot"}"#,
        r#"{"time":1700000000000,"identity":"i","action":"a","destination":"d","attributes":{"k9":"9","k1":"1","k2":"2","k3":"3","k4":"4","k5":"5","k1":"x","k6":"6","k7":"7","k8":"8","k0":"0","k9":"y"}}"#,
        r#"{"time":1700000000000,"identity":"i","action":"a","destination":"d","attributes":{"z":"1","account":"2","z":"3","a":"","account":"4"}}"#,
    ];

    /// What the fast path says about `text` must match the serde path whenever the
    /// fast path answers at all, also when decoding into a previously used event.
    fn agree(text: &str, max_depth: usize) -> bool {
        let mut reused = decode_str(LINES[1]).expect("sample decodes");
        let mut fresh = ActivityEvent::default();
        let fast_reused = decode_into(text, max_depth, &mut reused);
        let fast_fresh = decode_into(text, max_depth, &mut fresh);
        assert_eq!(fast_reused, fast_fresh, "{text}");
        if fast_fresh {
            let slow = decode_str(text).unwrap_or_else(|e| panic!("{text}: fast ok, slow {e}"));
            assert_eq!(fresh, slow, "{text}");
            assert_eq!(reused, slow, "{text}");
        }
        fast_fresh
    }

    #[test]
    fn key_dispatch_agrees_with_field_index() {
        let mut keys: Vec<String> = Vec::new();
        for name in KNOWN_KEYS {
            // Every known key takes the quick way.
            assert_eq!(
                known_key(format!("{name}\":1").as_bytes()),
                Some((field_index(name).unwrap_or(UNKNOWN), name.len() + 1)),
                "{name}"
            );
            for cut in 0..name.len() {
                keys.push(name[..cut].to_string());
                keys.push(format!("{}x{}", &name[..cut], &name[cut + 1..]));
            }
            keys.push(format!("{name}x"));
            keys.push(format!("{name}\\"));
            keys.push(format!("{name}_kind"));
        }
        // Anything else either agrees with the general way or is left to it.
        for key in keys {
            let text = format!("{key}\":1");
            if let Some((field, len)) = known_key(text.as_bytes()) {
                assert_eq!(Some(field), field_index(&key), "{key}");
                assert_eq!(len, key.len() + 1, "{key}");
            }
        }
    }

    #[test]
    fn samples_take_the_fast_path_and_match_serde() {
        for line in LINES {
            assert!(agree(line, 64), "{line}");
        }
    }

    #[test]
    fn attributes_reuse_buffers_and_keep_the_last_duplicate() {
        // Decode every sample into an event that held every other sample before.
        for before in LINES {
            for line in LINES {
                let mut event = ActivityEvent::default();
                assert!(decode_into(before, 64, &mut event), "{before}");
                assert!(decode_into(line, 64, &mut event), "{line}");
                assert_eq!(
                    event,
                    decode_str(line).expect("decodes"),
                    "{before} then {line}"
                );
            }
        }
    }

    #[test]
    fn canonical_timestamps_match_chrono() {
        let mut cases = vec![
            "2026-11-02T00:00:11.919Z".to_string(),
            "2000-02-29T23:59:59.999Z".to_string(),
            "1900-02-29T00:00:00Z".to_string(),
            "2100-02-29T00:00:00Z".to_string(),
            "2024-02-30T00:00:00Z".to_string(),
            "2024-13-01T00:00:00Z".to_string(),
            "2024-00-01T00:00:00Z".to_string(),
            "2024-01-00T00:00:00Z".to_string(),
            "2024-01-01T24:00:00Z".to_string(),
            "2024-01-01T00:60:00Z".to_string(),
            "2016-12-31T23:59:60Z".to_string(),
            "2024-01-01t00:00:00Z".to_string(),
            "2024-01-01 00:00:00Z".to_string(),
            "2024-01-01T00:00:00.5Z".to_string(),
            "2024-01-01T00:00:00.123456Z".to_string(),
            "2024-01-01T00:00:00+00:00".to_string(),
            "2024-01-01T00:00:00.12xZ".to_string(),
            "+024-01-01T00:00:00Z".to_string(),
            "0000-03-01T00:00:00Z".to_string(),
            "9999-12-31T23:59:59.999Z".to_string(),
        ];
        // Every month end and start over a 400-year cycle's interesting years.
        for year in [1969, 1970, 1999, 2000, 2001, 2023, 2024, 2100, 2199, 2400] {
            for month in 1..=12 {
                for day in [1, 28, 29, 30, 31, 32] {
                    cases.push(format!("{year:04}-{month:02}-{day:02}T12:34:56.789Z"));
                    cases.push(format!("{year:04}-{month:02}-{day:02}T00:00:00Z"));
                }
            }
        }
        for case in &cases {
            let chrono = chrono::DateTime::parse_from_rfc3339(case)
                .ok()
                .map(|t| t.timestamp_millis());
            if let Some(fast) = canonical_rfc3339_ms(case) {
                assert_eq!(Some(fast), chrono, "{case}");
            }
        }
        assert!(canonical_rfc3339_ms("2026-11-02T00:00:11.919Z").is_some());
        assert!(canonical_rfc3339_ms("2026-11-02T00:00:11Z").is_some());
    }

    /// The word-at-a-time checks against chrono: every byte value at every position of
    /// both forms (digits out of range, the bytes just above `9`, punctuation that
    /// differs in one bit), and every day of years where the calendar turns.
    #[test]
    fn every_byte_of_a_timestamp_is_checked() {
        let chrono = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis())
        };
        for stamp in ["2024-02-29T23:59:58.999Z", "2024-02-29T23:59:58Z"] {
            assert_eq!(canonical_rfc3339_ms(stamp), chrono(stamp), "{stamp}");
            for at in 0..stamp.len() {
                for byte in 0..=255u8 {
                    let mut b = stamp.as_bytes().to_vec();
                    b[at] = byte;
                    let Ok(s) = String::from_utf8(b) else {
                        continue;
                    };
                    let fast = canonical_rfc3339_ms(&s);
                    if fast.is_some() {
                        assert_eq!(fast, chrono(&s), "{s}");
                    }
                    // A digit where one goes gives a valid stamp here but for the
                    // tens of the fields and the 29th of February.
                    let digit_place = !matches!(at, 4 | 7 | 10 | 13 | 16 | 19 | 23);
                    if !(digit_place && byte.is_ascii_digit()) && byte != stamp.as_bytes()[at] {
                        assert_eq!(fast, None, "{s}");
                    }
                }
            }
        }
        for year in [
            0, 1, 4, 99, 100, 399, 400, 1600, 1969, 1970, 2000, 2100, 2400, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for s in [
                        format!("{year:04}-{month:02}-{day:02}T00:00:00.000Z"),
                        format!("{year:04}-{month:02}-{day:02}T23:59:59Z"),
                    ] {
                        assert_eq!(canonical_rfc3339_ms(&s), chrono(&s), "{s}");
                    }
                }
            }
        }
    }

    /// `identity_kind` and `outcome` names are read in place; near misses (cut, extended,
    /// capitalised, escaped, non-ASCII) take the general way and agree with serde too.
    #[test]
    fn kind_and_outcome_names_read_in_place_agree_with_serde() {
        let min = r#""time":1700000000000,"identity":"i","action":"a","destination":"d""#;
        let names = [
            "service_account",
            "api_key",
            "ai_agent",
            "workload",
            "human",
            "bot",
            "unknown",
            "success",
            "denied",
            "error",
        ];
        for field in ["identity_kind", "outcome"] {
            for name in names {
                let values = [
                    name.to_string(),
                    format!("{name}x"),
                    format!("{name} "),
                    name.to_uppercase(),
                    name[..name.len() - 1].to_string(),
                    format!("{}é", &name[..name.len() - 1]),
                    format!("{}\\u{:04x}{}", &name[..1], name.as_bytes()[1], &name[2..]),
                ];
                for value in values {
                    let text = format!(r#"{{{min},"{field}":"{value}"}}"#);
                    let fast = agree(&text, 64);
                    if value == name {
                        // Each name of its own field is read; of the other, outcome's
                        // are rejected and identity kinds' are `Unknown`.
                        let read = field == "identity_kind" || names[7..].contains(&name);
                        assert_eq!(fast, read, "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn reused_events_do_not_keep_huge_buffers() {
        let big = "x".repeat(100_000);
        // Over-long required fields never pass the fast path, but a rejected serde decode
        // can leave them in a recycled event; the unbounded fields can pass.
        let huge = format!(
            r#"{{"time":1700000000000,"identity":"i","action":"a","destination":"d","source_ip":"{big}","attributes":{{"k":"{big}"}}}}"#
        );
        let mut event = ActivityEvent {
            identity: big.clone(),
            user_agent: Some(big.clone()),
            ..ActivityEvent::default()
        };
        assert!(decode_into(&huge, 64, &mut event));
        assert!(decode_into(LINES[1], 64, &mut event));
        assert!(event.identity.capacity() <= MAX_KEPT_CAPACITY);
        let agent = event.user_agent.as_ref().map_or(0, String::capacity);
        assert!((1..=MAX_KEPT_CAPACITY).contains(&agent), "{agent}");
        let ip = event.source_ip.as_ref().map_or(0, String::capacity);
        assert!((1..=MAX_KEPT_CAPACITY).contains(&ip), "{ip}");
        assert!(event
            .attributes
            .iter()
            .all(|(k, v)| k.capacity() <= MAX_KEPT_CAPACITY && v.capacity() <= MAX_KEPT_CAPACITY));
    }

    /// The fast path takes values up to each field's length limit and gives up beyond
    /// it (so the serde path's rejection, or its cut of a user agent, is what callers
    /// get); `decode_native_into` then answers as serde plus `check_lengths` would.
    #[test]
    fn length_limits_are_checked_as_values_are_read() {
        use crate::decode::util::{FIELD_LIMITS, MAX_USER_AGENT_BYTES};
        use crate::decode::{decode_native, Limits};
        // Every limit `check_lengths` knows, so one added there is tested here too.
        let limits = FIELD_LIMITS
            .into_iter()
            .chain([("user_agent", MAX_USER_AGENT_BYTES)]);
        for (field, max) in limits {
            for len in [max - 1, max, max + 1] {
                // A two-byte character across the limit, for the user agent's cut.
                let value = format!("{}é", "v".repeat(len - 2));
                let mut fields = vec![
                    ("time", "1700000000000".to_string()),
                    ("identity", "\"i\"".to_string()),
                    ("action", "\"a\"".to_string()),
                    ("destination", "\"d\"".to_string()),
                ];
                fields.retain(|(k, _)| *k != field);
                fields.push((field, format!("\"{value}\"")));
                let body: Vec<String> =
                    fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                let text = format!("{{{}}}", body.join(","));
                let mut event = ActivityEvent::default();
                assert_eq!(
                    decode_into(&text, 64, &mut event),
                    len <= max,
                    "{field} {len}"
                );
                let mut expected = decode_str(&text).map_err(|e| e.detail);
                if let Ok(e) = expected.as_mut() {
                    if let Err(r) = crate::decode::util::check_lengths(e) {
                        expected = Err(r.detail);
                    }
                }
                let got = decode_native(text.as_bytes(), &Limits::default()).map_err(|e| e.detail);
                assert_eq!(got, expected, "{field} {len}");
                assert_eq!(
                    got.is_ok(),
                    len <= max || field == "user_agent",
                    "{field} {len}"
                );
            }
        }
    }

    /// Timestamps read in place (without the string scan) and integers around the
    /// nineteen digits that cannot overflow agree with the serde path, taken or not.
    #[test]
    fn in_place_timestamps_and_long_integers_agree_with_serde() {
        let min = r#""identity":"i","action":"a","destination":"d""#;
        for (time, fast) in [
            (r#""2026-11-02T00:00:11.919Z""#, true),
            (r#""2026-11-02T00:00:11Z""#, true),
            (r#""2026-11-02T00:00:11Z" "#, true),
            (r#""2026-11-02T00:00:11.9Z""#, true),
            (r#""2026-11-02T00:00:11.919+00:00""#, true),
            (r#""2026-11-02T00:00:11Z\"x""#, false),
            (r#""2026-11-02T00:00:11.919Z\""#, false),
            (r#""2026-11-02T00:00:11.91\u0039Z""#, false),
            (r#""2026-02-30T00:00:11.919Z""#, false),
            (r#""1999-12-31T23:59:59.999Z""#, false),
            ("1700000000000", true),
            ("1000000000000000000", false),
            ("18446744073709551615", false),
            ("18446744073709551616", false),
            ("0000000000000000001", false),
        ] {
            let text = format!(r#"{{"time":{time},{min}}}"#);
            assert_eq!(agree(&text, 64), fast, "{text}");
            let text = format!(r#"{{{min},"time":{time}}}"#);
            assert_eq!(agree(&text, 64), fast, "{text}");
        }
        for (bytes, fast) in [
            ("9999999999999999999", true),
            ("10000000000000000000", true),
            ("18446744073709551615", true),
            ("18446744073709551616", false),
            ("184467440737095516150", false),
        ] {
            let text = format!(r#"{{"time":1700000000000,{min},"bytes":{bytes}}}"#);
            assert_eq!(agree(&text, 64), fast, "{text}");
        }
    }

    #[test]
    fn depth_bound_is_respected() {
        assert!(agree(LINES[0], 1));
        assert!(!agree(LINES[1], 1));
        assert!(agree(LINES[1], 2));
        assert!(!agree(LINES[0], 0));
    }

    #[test]
    fn outside_the_subset_gives_up() {
        let min = r#""identity":"i","action":"a","destination":"d""#;
        for body in [
            r#""time":1700000000000,"identity":"a\"b","action":"a","destination":"d""#,
            r#""time":1.7e12,MIN"#,
            r#""time":-1,MIN"#,
            r#""time":01700000000000,MIN"#,
            r#""time":99999999999999999999999,MIN"#,
            r#""time":1700000000000,MIN,"identity":"x""#,
            r#""time":1700000000000,MIN,"time":null"#,
            r#""time":1700000000000,MIN,"x":[1]"#,
            r#""time":1700000000000,MIN,"x":true"#,
            r#""time":1700000000000,MIN,"bytes":"1""#,
            r#""time":1700000000000,MIN,"outcome":"maybe""#,
            r#""time":1700000000000,MIN,"attributes":{"k":1}"#,
            r#""time":1700000000000,MIN,"attributes":[]"#,
            r#""time":"yesterday",MIN"#,
            r#""time":1,MIN"#,
            r#""time":1700000000000,"identity":"","action":"a","destination":"d""#,
            "\"time\":1700000000000,MIN,\"event_id\":\"a\tb\"",
        ] {
            let text = format!("{{{}}}", body.replace("MIN", min));
            assert!(!agree(&text, 64), "{text}");
        }
        for text in ["", "{", "[]", "{}", "nul", "{\"time\":1}x", "\u{a0}{}"] {
            assert!(!agree(text, 64), "{text}");
        }
    }

    #[test]
    fn every_truncation_and_byte_flip_agrees_with_serde() {
        for line in LINES {
            for cut in (0..line.len()).filter(|&i| line.is_char_boundary(i)) {
                agree(&line[..cut], 64);
                let spliced = format!("{}{}", &line[..cut], &line[cut..].replacen('"', "", 1));
                agree(&spliced, 64);
            }
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                for b in [b'"', b',', b'{', b'}', b':', b'\\', b' ', b'0', b'n', 0x01] {
                    let mut v = bytes.to_vec();
                    v[i] = b;
                    if let Ok(text) = String::from_utf8(v) {
                        agree(&text, 64);
                    }
                }
            }
        }
    }

    mod generated {
        //! Structured random records (field order, duplicates, nulls, escapes, non-ASCII,
        //! numbers of every shape, nested unknown fields): whenever the fast path takes
        //! one, it must build exactly the serde path's event.

        use super::{agree, KNOWN_KEYS};
        use proptest::prelude::*;

        fn json_string() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9:/._ -]{0,12}".prop_map(|s| format!("\"{s}\"")),
                // Escapes, unicode escapes, raw non-ASCII and controls.
                "[a\\\\\"\\u{e9}\\u{1f600}\\n\\t]{0,6}"
                    .prop_map(|s| { serde_json::to_string(&s).unwrap_or_default() }),
                Just("\"\\u00e9\\n\"".to_string()),
                Just("\"2026-11-02T00:00:11.919Z\"".to_string()),
                Just("\"2024-02-30T00:00:00Z\"".to_string()),
            ]
        }

        fn json_value() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => json_string(),
                1 => Just("null".to_string()),
                1 => Just("true".to_string()),
                1 => any::<u64>().prop_map(|n| n.to_string()),
                1 => any::<i64>().prop_map(|n| n.to_string()),
                1 => Just("1.5".to_string()),
                1 => Just("1e3".to_string()),
                1 => Just("012".to_string()),
                1 => Just("1700000000000".to_string()),
                1 => Just("{\"k\":[1,{\"x\":\"y\"}]}".to_string()),
                1 => Just("[]".to_string()),
                1 => prop::collection::vec((json_string(), json_string()), 0..4).prop_map(|kv| {
                    let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        }

        /// The known keys, an unknown one, and a known one spelt with an escape.
        fn keys() -> Vec<&'static str> {
            KNOWN_KEYS
                .iter()
                .copied()
                .chain(["extra", "t\\u0069me"])
                .collect()
        }

        fn record() -> impl Strategy<Value = String> {
            let base = vec![
                "\"time\":1700000000000".to_string(),
                "\"identity\":\"i\"".to_string(),
                "\"action\":\"a\"".to_string(),
                "\"destination\":\"d\"".to_string(),
            ];
            (
                prop::collection::vec((prop::sample::select(keys()), json_value()), 0..6),
                any::<prop::sample::Index>(),
                prop::sample::select(vec!["", " ", "\n\t "]),
            )
                .prop_map(move |(extra, at, ws)| {
                    let mut fields = base.clone();
                    for (k, v) in extra {
                        let pos = at.index(fields.len() + 1);
                        fields.insert(pos, format!("\"{k}\"{ws}:{ws}{v}"));
                    }
                    format!("{ws}{{{ws}{}{ws}}}{ws}", fields.join(&format!(",{ws}")))
                })
        }

        #[test]
        fn generated_records_exercise_both_paths() {
            // The property below is only worth something if the fast path takes a good
            // share of the records and gives up on a good share.
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let strategy = record();
            let mut fast = 0;
            for _ in 0..1000 {
                let text = strategy
                    .new_tree(&mut runner)
                    .map(|t| proptest::strategy::ValueTree::current(&t))
                    .unwrap_or_default();
                fast += usize::from(agree(&text, 64));
            }
            assert!((100..900).contains(&fast), "fast path took {fast} of 1000");
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            #[test]
            fn fast_path_agrees_with_serde_on_structured_records(text in record()) {
                agree(&text, 64);
                agree(&text, 1);
            }
        }
    }
}
