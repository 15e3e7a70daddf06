//! Linear, allocation-light byte scanners that run before (or instead of) a full parse.
//!
//! Three jobs: bound nesting depth without building a tree (so a hostile `[[[[…` cannot
//! exhaust the stack or the heap), split a CloudTrail envelope into per-record byte
//! spans so each record can be size-checked and parsed on its own instead of building one
//! tree for a 64 MiB document, and find newlines and string ends eight bytes at a time
//! for the native fast path and replay's line splitting.
//!
//! The splitters assume their input already passed a syntax check (serde_json with
//! `IgnoredAny`); on anything unexpected they return `None` rather than panic.

use super::{RejectReason, Rejection};

/// Rejects input nested deeper than `max_depth` (objects and arrays), ignoring brackets
/// inside strings. Invalid JSON is not diagnosed here; the parser does that.
pub(crate) fn check_depth(input: &[u8], max_depth: usize) -> Result<(), Rejection> {
    // Fast path for the hot path: if there are no more openers in total than allowed,
    // no nesting can exceed the bound. This count vectorises; the string-aware walk
    // below does not, and typical events have two or three openers.
    let openers = input
        .iter()
        .fold(0usize, |n, &b| n + usize::from(b == b'{' || b == b'['));
    if openers <= max_depth {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(Rejection::new(
                        RejectReason::TooDeep,
                        format!("nesting deeper than {max_depth} levels at byte {i}"),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of each byte) the bytes of `word` that are zero. The lowest flag is
/// always exact: a borrow only starts at a byte that is zero, so flags above a true zero
/// can be spurious but none below it can. That holds for the "below n" form in
/// [`find_string_stop`] too (for n ≤ 0x80: its `& !w` drops bytes ≥ 0x80, which above
/// that would drop real matches), and for an OR of such tests (its lowest flag is the lowest
/// of theirs), which is all "first match" searches need.
#[inline]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Index of the first byte in `bytes` for which the word-at-a-time test `hit` (see
/// [`zero_bytes`]) flags, `is` being the same test byte by byte (for the tail shorter
/// than a word). Eight bytes per step instead of one: the hot loops (line splitting,
/// string ends) scan ~400 bytes per event, in strings of a few words each, so the
/// per-word and per-call work is what counts.
#[inline]
fn find_by(bytes: &[u8], hit: impl Fn(u64) -> u64, is: impl Fn(u8) -> bool) -> Option<usize> {
    let mut offset = 0usize;
    while let Some(chunk) = bytes.get(offset..offset + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let flags = hit(u64::from_le_bytes(word));
        if flags != 0 {
            // The lowest flag is exact (see `zero_bytes`): no bytewise confirmation.
            let at = offset + (flags.trailing_zeros() / 8) as usize;
            debug_assert!(bytes.get(at).is_some_and(|&b| is(b)));
            return Some(at);
        }
        offset += 8;
    }
    bytes
        .get(offset..)?
        .iter()
        .position(|&b| is(b))
        .map(|i| offset + i)
}

/// First byte that ends the plain part of a JSON string: `"`, `\\` or a control
/// character (below 0x20). Inlined: the native fast path calls it for every string.
#[inline]
pub(crate) fn find_string_stop(bytes: &[u8]) -> Option<usize> {
    find_by(
        bytes,
        |w| {
            // `"` (0x22) and the control characters in one test: flipping bit 1 maps
            // `"` to 0x20 and keeps every byte below 0x20 below it (and every other
            // byte at 0x21 or above), so the stops other than `\\` are the bytes of
            // `w ^ 0x02..` below 0x21. `x - 0x21` borrows into the high bit; masking
            // with `!x` drops bytes that had it set already (>= 0x80).
            let x = w ^ (ONES * 0x02);
            zero_bytes(w ^ (ONES * u64::from(b'\\'))) | (x.wrapping_sub(ONES * 0x21) & !x & HIGHS)
        },
        |b| b == b'"' || b == b'\\' || b < 0x20,
    )
}

/// One member of a JSON object: the key as written (quotes included, escapes not
/// decoded) and the raw value text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    pub key_quoted: &'a str,
    pub value: &'a str,
}

impl<'a> Member<'a> {
    /// The key with escapes decoded; keys almost never contain escapes, so this borrows.
    pub fn key(&self) -> std::borrow::Cow<'a, str> {
        let inner = self
            .key_quoted
            .get(1..self.key_quoted.len().saturating_sub(1))
            .unwrap_or("");
        if inner.contains('\\') {
            match serde_json::from_str::<String>(self.key_quoted) {
                Ok(s) => std::borrow::Cow::Owned(s),
                Err(_) => std::borrow::Cow::Borrowed(inner),
            }
        } else {
            std::borrow::Cow::Borrowed(inner)
        }
    }

    /// The value decoded as a string, if it is one.
    pub fn string_value(&self) -> Option<std::borrow::Cow<'a, str>> {
        serde_json::from_str::<std::borrow::Cow<'a, str>>(self.value).ok()
    }
}

/// The kind of the top-level JSON value, for `not_an_object` details.
pub(crate) fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(_) => "number",
        None => "nothing",
    }
}

/// Members of the top-level object in `text` (which must be syntactically valid JSON).
/// `None` when the top-level value is not an object.
pub(crate) fn object_members(text: &str) -> Option<Vec<Member<'_>>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut members = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        let key_end = skip_string(b, i)?;
        let key_quoted = text.get(i..key_end)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_end = skip_value(b, i)?;
        members.push(Member {
            key_quoted,
            value: text.get(i..value_end)?,
        });
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

/// Elements of the array in `text` (syntactically valid JSON), as raw slices. `None`
/// when `text` is not an array.
pub(crate) fn array_elements(text: &str) -> Option<Vec<&str>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut elements = Vec::new();
    if b.get(i) == Some(&b']') {
        return Some(elements);
    }
    loop {
        let end = skip_value(b, i)?;
        elements.push(text.get(i..end)?);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some(elements),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` must be `"`; returns the index just past the closing quote.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// Returns the index just past the value starting at `b[i]`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(&c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_within_bound_passes() {
        assert!(check_depth(br#"{"a":[{"b":[1]}]}"#, 4).is_ok());
    }

    #[test]
    fn depth_over_bound_is_too_deep() {
        let e = check_depth(br#"{"a":[{"b":[1]}]}"#, 3).expect_err("too deep");
        assert_eq!(e.reason, RejectReason::TooDeep);
        assert!(e.detail.contains("deeper than 3"), "{}", e.detail);
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = br#"{"a":"[[[[[[[[[[{{{{{{{{\"[[[["}"#;
        assert!(check_depth(s, 1).is_ok());
    }

    #[test]
    fn members_and_elements_split_valid_json() {
        let text = r#" { "Records" : [ {"a":"}"} , 2, "x]" ,[1,[2]] ], "k\"q": null } "#;
        let m = object_members(text).expect("object");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].key(), "Records");
        assert_eq!(m[1].key(), "k\"q");
        assert_eq!(m[1].value, "null");
        let e = array_elements(m[0].value).expect("array");
        assert_eq!(e, vec![r#"{"a":"}"}"#, "2", r#""x]""#, "[1,[2]]"]);
    }

    #[test]
    fn splitters_refuse_non_containers_and_garbage() {
        assert!(object_members("[1]").is_none());
        assert!(array_elements("{}").is_none());
        assert!(object_members(r#"{"a" 1}"#).is_none());
        assert!(array_elements("[1,").is_none());
        assert!(object_members(r#"{"a":"unterminated"#).is_none());
        assert_eq!(object_members("{}").map(|m| m.len()), Some(0));
        assert_eq!(array_elements("[ ]").map(|e| e.len()), Some(0));
    }

    #[test]
    fn word_searches_match_bytewise_searches() {
        let mut text: Vec<u8> = (0u8..=255).collect();
        text.extend_from_slice(br#"plain ascii "quoted" back\slash"#);
        text.extend((0u8..=255).rev());
        for start in 0..text.len() {
            for end in start..text.len().min(start + 40) {
                let s = &text[start..end];
                assert_eq!(
                    find_string_stop(s),
                    s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20),
                    "{s:?}"
                );
            }
        }
        let long = [b"x".repeat(100), b"\n".to_vec()].concat();
        assert_eq!(find_string_stop(&long), Some(100));
        assert_eq!(find_string_stop(b"no stop at all, long enough"), None);
    }

    proptest::proptest! {
        /// The word searches trust the lowest flag of a word without checking the byte:
        /// random words dense in matches and near-matches (borrows) must agree with the
        /// bytewise search.
        #[test]
        fn word_searches_agree_on_dense_random_bytes(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![
                    0u8, 1, 0x02, 0x03, 0x09, 0x0a, 0x0b, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d,
                    0x7f, 0x80, 0x9f, 0xa0, 0xa2, 0xdc, 0xff, b'a', b'0',
                ]),
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(
                find_string_stop(&bytes),
                bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            );
        }
    }

    #[test]
    fn json_kind_names_top_level() {
        assert_eq!(json_kind(" [1]"), "array");
        assert_eq!(json_kind("12"), "number");
        assert_eq!(json_kind("\"s\""), "string");
        assert_eq!(json_kind("true"), "boolean");
        assert_eq!(json_kind("null"), "null");
    }
}
