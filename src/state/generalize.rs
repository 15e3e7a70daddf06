//! Generalisation of raw event fields into the granularity novelty is judged at (design
//! §3, "What real NHI traffic looks like"): ids, hashes, UUIDs, dates and random tokens
//! become placeholders so a copilot reading a different customer record on every call, or
//! a pod name that changes with every rollout, is not "new" each time; source addresses
//! become private/public network prefixes; user agents become their family.

use std::net::IpAddr;

use super::hash::memory_hash;

/// Longest destination prefix considered: keeps the work per event bounded on hostile
/// input, and nothing past it distinguishes resources in practice.
const MAX_DEST_LEN: usize = 512;

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Byte classes for the token scan, one table lookup per byte instead of four range
/// checks: this runs on every byte of every destination, and destinations with ids in
/// them (most) miss the engine's memo.
const ALNUM: u8 = 1;
const DIGIT: u8 = 2;
const HEX: u8 = 4;
/// `a e i o u y` in either case.
const VOWEL: u8 = 8;
const UPPER: u8 = 16;
const LOWER: u8 = 32;

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric() {
            k |= ALNUM;
        }
        if c.is_ascii_digit() {
            k |= DIGIT;
        }
        if c.is_ascii_hexdigit() {
            k |= HEX;
        }
        if c.is_ascii_alphabetic() && matches!(c | 0x20, b'a' | b'e' | b'i' | b'o' | b'u' | b'y') {
            k |= VOWEL;
        }
        if c.is_ascii_uppercase() {
            k |= UPPER;
        }
        if c.is_ascii_lowercase() {
            k |= LOWER;
        }
        t[b] = k;
        b += 1;
    }
    t
};

fn is_alnum(b: u8) -> bool {
    CLASSES[usize::from(b)] & ALNUM != 0
}

/// What [`placeholder_of`] needs to know about a token, gathered while scanning it:
/// only what every token needs. Letter counts by case are taken by [`LetterCounts`] only
/// for the tokens whose judgement depends on them: 24 characters or more, or mixed case
/// and 8 or more. Whether it has vowels, or both capital and small letters, is read
/// from the lane sums when a rule asks (most tokens are settled before either is).
struct TokenShape {
    len: usize,
    digits: usize,
    all_hex: bool,
    /// The token's [`SUMS`] added up.
    sums: u64,
}

impl TokenShape {
    fn lane(&self, at: u32) -> usize {
        ((self.sums >> at) & LANE_MASK) as usize
    }

    fn vowel(&self) -> bool {
        self.lane(SUM_VOWEL) != 0
    }

    /// Has both capital and small letters.
    fn both_cases(&self) -> bool {
        self.lane(SUM_UPPER) != 0 && self.lane(SUM_LOWER) != 0
    }
}

/// Letters of a token by case, and vowels among them.
struct LetterCounts {
    upper: usize,
    lower: usize,
    vowels: usize,
}

impl LetterCounts {
    fn of(token: &[u8]) -> Self {
        let mut counts = LetterCounts {
            upper: 0,
            lower: 0,
            vowels: 0,
        };
        for &b in token {
            let c = CLASSES[usize::from(b)];
            counts.upper += usize::from(c & UPPER != 0);
            counts.lower += usize::from(c & LOWER != 0);
            counts.vowels += usize::from(c & VOWEL != 0);
        }
        counts
    }
}

/// Counts the irregular runs of a token. Camel-case words are
/// capitals each followed by two or more small letters, with an acronym now and then
/// (`ListBucketVersions`, `XMLHttpRequest`): at most one run of two or more capitals,
/// no lone small letter between capitals, no digits inside. Random mixed-case ids break
/// these rules several times over.
struct RunTally {
    kind: u8,
    run: usize,
    runs: usize,
    irregular: usize,
}

impl RunTally {
    fn new() -> Self {
        RunTally {
            kind: 0,
            run: 0,
            runs: 0,
            irregular: 0,
        }
    }

    /// Adds one byte of class `kind` (`UPPER`, `LOWER` or `DIGIT`).
    fn push(&mut self, kind: u8) {
        if kind == self.kind {
            self.run += 1;
            return;
        }
        self.close(false);
        self.kind = kind;
        self.run = 1;
    }

    /// Ends the current run; `last` when it ends the token.
    fn close(&mut self, last: bool) {
        if self.run == 0 {
            return;
        }
        let inner = self.runs > 0;
        self.irregular += usize::from(match self.kind {
            UPPER => self.run >= 2,
            LOWER => self.run == 1 && inner,
            _ => inner && !last,
        });
        self.runs += 1;
    }
}

/// Per-byte counts [`scan_token`] adds up, one 10-bit lane each: digits, hex digits,
/// vowels, capitals, small letters, and alphanumeric bytes. Every alphanumeric byte is a
/// digit, a capital or a small letter, so exactly the bytes that end a token have no bit
/// set. One load and one add per byte instead of a class lookup, a test and four
/// updates: this loop runs on most bytes of every destination that misses the engine's
/// memo. A lane cannot carry into the next: a token is at most `MAX_DEST_LEN` (512)
/// bytes, under 1024. The alphanumeric lane is the top one, so a sum shifted by it is
/// that count.
const LANE: u32 = 10;
const LANE_MASK: u64 = (1 << LANE) - 1;
// The lanes hold any token `scan_token` reads, and all six fit in the word.
const _: () = assert!(MAX_DEST_LEN < 1 << LANE && 6 * LANE <= 64);
const SUM_DIGIT: u32 = 0;
const SUM_HEX: u32 = LANE;
const SUM_VOWEL: u32 = 2 * LANE;
const SUM_UPPER: u32 = 3 * LANE;
const SUM_LOWER: u32 = 4 * LANE;
const SUM_ALNUM: u32 = 5 * LANE;

const SUMS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let c = CLASSES[b];
        let mut v = 0u64;
        if c & DIGIT != 0 {
            v |= 1 << SUM_DIGIT;
        }
        if c & HEX != 0 {
            v |= 1 << SUM_HEX;
        }
        if c & VOWEL != 0 {
            v |= 1 << SUM_VOWEL;
        }
        if c & UPPER != 0 {
            v |= 1 << SUM_UPPER;
        }
        if c & LOWER != 0 {
            v |= 1 << SUM_LOWER;
        }
        if c & ALNUM != 0 {
            v |= 1 << SUM_ALNUM;
        }
        t[b] = v;
        b += 1;
    }
    t
};

/// Scans the alphanumeric token at the start of `s` (at most `MAX_DEST_LEN` bytes are
/// read, which is all a destination keeps). This loop runs on most bytes of every
/// destination that misses the engine's memo, so it only adds each byte's [`SUMS`]
/// entry; the rest is computed per token, and only when needed.
#[inline(always)]
fn scan_token(s: &[u8]) -> TokenShape {
    // The lanes hold counts up to 1023: never more bytes than that.
    let s = &s[..s.len().min(MAX_DEST_LEN)];
    let mut len = 0usize;
    let mut sums = 0u64;
    // Four bytes a step while all four are alphanumeric (their alphanumeric lane sums to
    // 4): one test per four bytes instead of one per byte, for ids and hashes, and for
    // the words before them. The byte loop below takes the token's last bytes.
    while let Some(&[a, b, c, d]) = s.get(len..len + 4) {
        let v = SUMS[usize::from(a)]
            + SUMS[usize::from(b)]
            + SUMS[usize::from(c)]
            + SUMS[usize::from(d)];
        if v >> SUM_ALNUM != 4 {
            break;
        }
        sums += v;
        len += 4;
    }
    while let Some(&b) = s.get(len) {
        let v = SUMS[usize::from(b)];
        if v == 0 {
            break;
        }
        sums += v;
        len += 1;
    }
    let lane = |at: u32| ((sums >> at) & LANE_MASK) as usize;
    TokenShape {
        len,
        digits: lane(SUM_DIGIT),
        all_hex: lane(SUM_HEX) == len,
        sums,
    }
}

/// Irregular runs of `token` (see [`RunTally`]). A second pass, taken only for the
/// long mixed-case tokens the cheap counts cannot settle: most tokens never need it.
fn irregular_runs(token: &[u8]) -> usize {
    let mut runs = RunTally::new();
    for &b in token {
        runs.push(CLASSES[usize::from(b)] & (UPPER | LOWER | DIGIT));
    }
    runs.close(true);
    runs.irregular
}

/// A mixed-case token of 8+ characters that is not camel-case words: three irregular
/// runs, or two when vowels are scarce (under 35 % of letters; words have about 40 %).
/// Random base62 ids of 12–14 characters without two digits (a third of them, which the
/// digit rules miss) are caught at 96–98 %; tokens of the real CloudTrail and Kubernetes
/// audit sets it catches are all random strings, none are words.
fn random_mixed_case(t: &LetterCounts, irregular: usize) -> bool {
    let letters = t.upper + t.lower;
    irregular >= 3 || (irregular >= 2 && t.vowels * 100 < letters * 35)
}

/// Long names made of words (`OrganizationAccountAccessRole`, a role every AWS
/// organisation has): letters with at most two digits, vowels like words have, and
/// camel case without irregular runs beyond one acronym.
fn made_of_words(t: &TokenShape, letters: &LetterCounts, irregular: usize) -> bool {
    let count = letters.upper + letters.lower;
    t.digits <= 2 && letters.vowels * 100 >= count * 30 && irregular <= 1
}

/// What a variable token becomes. Written by [`Placeholder::push`] as one constant
/// string per kind: a `&str` chosen at run time is copied by a call to `memcpy`, a
/// constant one by a store or two, and most destinations have a few placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    /// `{n}`: digits only.
    Number,
    /// `{n}Z`: the seconds of an ISO time.
    Seconds,
    /// `{hex}`
    Hex,
    /// `{id}`
    Id,
    /// `{uuid}`
    Uuid,
    /// `v{n}`: a Helm release revision.
    Revision,
}

impl Placeholder {
    fn push(self, out: &mut String) {
        match self {
            Placeholder::Number => out.push_str("{n}"),
            Placeholder::Seconds => out.push_str("{n}Z"),
            Placeholder::Hex => out.push_str("{hex}"),
            Placeholder::Id => out.push_str("{id}"),
            Placeholder::Uuid => out.push_str("{uuid}"),
            Placeholder::Revision => out.push_str("v{n}"),
        }
    }
}

/// Classifies a scanned alphanumeric `token`; `None` keeps it verbatim. Inlined into
/// the scan: its inputs are then the scan's registers, not a structure in memory.
#[inline(always)]
fn placeholder_of(t: &TokenShape, token: &[u8]) -> Option<Placeholder> {
    let TokenShape {
        len,
        digits,
        all_hex,
        ..
    } = *t;
    // Short words (`json`, `data`, `api`), which most tokens are: no rule below takes a
    // token without digits under 6 characters.
    if digits == 0 && len < 6 {
        return None;
    }
    if digits == len {
        return Some(Placeholder::Number);
    }
    // The seconds of an ISO time (`…T08:00:37Z`, `…:37.345Z`): one placeholder, or every
    // second of a timestamped object name would be another destination.
    if len >= 2 && digits == len - 1 && token[len - 1] == b'Z' {
        return Some(Placeholder::Seconds);
    }
    let letters = len - digits;
    if len >= 6 && digits >= 1 && all_hex {
        return Some(Placeholder::Hex);
    }
    if len >= 16 && digits >= 1 && letters >= 1 {
        return Some(Placeholder::Id);
    }
    // Short mixed tokens with several digits (`x2k4q`, `cus9f3`) are generated suffixes.
    if len >= 5 && digits >= 2 && letters >= 1 {
        return Some(Placeholder::Id);
    }
    // Long tokens without vowels are random strings, not words (`bqxztkw`), and so are
    // shorter ones with a digit among them (`fdb8v`, a Kubernetes pod's suffix).
    if (len >= 6 || (len == 5 && digits >= 1)) && !t.vowel() {
        return Some(Placeholder::Id);
    }
    if (len >= 24 || (len >= 8 && t.both_cases())) && long_token_is_random(t, token) {
        return Some(Placeholder::Id);
    }
    None
}

/// The last rule of [`placeholder_of`], for tokens of 24 characters or more, or mixed
/// case and 8 or more: a second pass over the token. Out of line, so the rules before
/// it, which settle almost every token, stay small where they are inlined.
#[inline(never)]
fn long_token_is_random(t: &TokenShape, token: &[u8]) -> bool {
    let len = t.len;
    let letters = LetterCounts::of(token);
    let mixed_case = len >= 8 && letters.upper >= 2 && letters.lower >= 2;
    let irregular = irregular_runs(token);
    (len >= 24 && !made_of_words(t, &letters, irregular))
        || (mixed_case && random_mixed_case(&letters, irregular))
}

/// Length of a UUID (8-4-4-4-12 hex) at the start of `s`, if there is one.
fn uuid_at(s: &[u8]) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    // Cheap necessary conditions first: most tokens are not UUIDs.
    if s.len() < 36 || s[8] != b'-' {
        return None;
    }
    let mut i = 0;
    for (g, &n) in GROUPS.iter().enumerate() {
        if s.len() < i + n || !s[i..i + n].iter().all(|&b| is_hex(b)) {
            return None;
        }
        i += n;
        if g < 4 {
            if s.get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
        }
    }
    if s.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(i)
}

/// Writes the generalised form of `dest` into `out` (cleared first): separators and
/// words are kept, variable tokens become `{n}`, `{hex}`, `{uuid}` or `{id}`.
///
/// `arn:aws:s3:::payroll-exports/2026/11/25/run-8f3a9c2e.csv` →
/// `arn:aws:s3:::payroll-exports/{n}/{n}/{n}/run-{hex}.csv`
pub fn generalise_destination(dest: &str, out: &mut String) {
    out.clear();
    let bytes = &dest.as_bytes()[..dest.len().min(MAX_DEST_LEN)];
    // An ARN's partition, service, region and account are names, not ids: a role of
    // another account (`arn:aws:iam::222222222222:role/OrganizationAccountAccessRole`)
    // or another region is another place. Only the resource part is generalised.
    let header = arn_header_len(bytes);
    generalise_from(dest, without_secret_suffix(bytes, header), header, 0, out);
}

/// The token scan of [`generalise_destination`] from byte `i` of `bytes` (`dest`, cut
/// to `MAX_DEST_LEN` and without a secret's suffix), appending to `out`: the bytes from
/// `verbatim` to `i` are copied as they are, then every token from `i` on is judged.
/// Starts as after a separator that is not a single `-`, which is how the scan stands
/// at the end of an ARN header and after any `/` ([`PrefixMemo`] resumes there).
fn generalise_from(dest: &str, bytes: &[u8], mut i: usize, mut verbatim: usize, out: &mut String) {
    // What is kept verbatim (the header, separators, words) is copied in spans, once per
    // placeholder and at the end, not token by token: most of a destination is kept, and
    // a copy per token cost more than judging the tokens. `verbatim` is where the span
    // not yet copied starts; spans start and end at ASCII bytes except at the very end.
    // The last token became a placeholder and a single `-` followed it: Kubernetes names
    // a pod `<deployment>-<replica set hash>-<5 random characters>`, both random parts
    // from an alphabet without vowels, so a 5-character suffix without vowels there is
    // random too (`reco-api-nwplmdqwph-gmgtd`), where elsewhere it may be a word.
    let mut after_placeholder = false;
    let mut dash_after_placeholder = false;
    loop {
        // A run of separators (bytes without counts: not alphanumeric).
        let separators = i;
        while bytes.get(i).is_some_and(|&b| SUMS[usize::from(b)] == 0) {
            i += 1;
        }
        if i > separators {
            dash_after_placeholder = after_placeholder && &bytes[separators..i] == b"-";
        }
        if i >= bytes.len() {
            break;
        }
        // The token first: a UUID starts with a token of 8 hex digits and an address
        // with one of 1 to 3 digits, each followed by its separator, so the token's
        // counts rule both out for most tokens without reading them again.
        let start = i;
        let shape = scan_token(&bytes[start..]);
        i += shape.len;
        // Short words (`json`, `data`) take no placeholder and are not the first part
        // of a UUID, an address or a revision: settled before any of those is tried.
        // (Five letters are not settled here: the Kubernetes pod suffix rule below
        // judges a 5-character token after a placeholder and a `-`.)
        if shape.digits == 0 && shape.len < 5 {
            dash_after_placeholder = false;
            after_placeholder = false;
            continue;
        }
        let next = bytes.get(i).copied();
        if shape.len == 8 && shape.all_hex && next == Some(b'-') {
            if let Some(n) = uuid_at(&bytes[start..]) {
                push_span(dest, bytes, verbatim..start, out);
                Placeholder::Uuid.push(out);
                i = start + n;
                verbatim = i;
                after_placeholder = true;
                continue;
            }
        }
        // An address's first octet is one to three digits and a `.`, and starts a token
        // (not after `.`, `-` or `_`, as in a version `v1.2.3.4` or `build-1.2.3.4`).
        if shape.len <= 3
            && shape.digits == shape.len
            && next == Some(b'.')
            && (start == 0 || !matches!(bytes[start - 1], b'.' | b'-' | b'_'))
        {
            if let Some(address) = ipv4_literal_at(&bytes[start..]) {
                push_span(dest, bytes, verbatim..start, out);
                push_ipv4_place(&address, &bytes[start..], out);
                i = start + address.len;
                verbatim = i;
                after_placeholder = true;
                continue;
            }
        }
        // Helm keeps each release revision as a secret `sh.helm.release.v1.<app>.v<k>`:
        // a revision number ending a dotted name is a counter, not a new resource.
        let revision = next.is_none()
            && start > 0
            && bytes[start - 1] == b'.'
            && shape.len >= 2
            && bytes[start] == b'v'
            && shape.digits == shape.len - 1;
        let placeholder = match placeholder_of(&shape, &bytes[start..i]) {
            _ if revision => Some(Placeholder::Revision),
            None if dash_after_placeholder && shape.len == 5 && !shape.vowel() => {
                Some(Placeholder::Id)
            }
            p => p,
        };
        dash_after_placeholder = false;
        after_placeholder = placeholder.is_some();
        if let Some(p) = placeholder {
            push_span(dest, bytes, verbatim..start, out);
            p.push(out);
            verbatim = i;
        }
    }
    push_span(dest, bytes, verbatim..bytes.len(), out);
}

/// Slots of a [`PrefixMemo`] (a power of two).
const PREFIX_SLOTS: usize = 2048;
/// Seed of the prefix memo's index hash (not a persisted hash space).
const SEED_PREFIX: u64 = 0x7072_6566;

/// One remembered prefix: its raw text and its generalised form.
#[derive(Default)]
struct PrefixSlot {
    filled: bool,
    raw: String,
    general: String,
    /// Whether the generalised prefix without its `/` is the destination's class
    /// ([`destination_class`]) whatever follows.
    is_class: bool,
}

/// A direct-mapped memo of the generalised form of ARN prefixes up to the `/` that ends
/// their resource type (`arn:aws:s3:::payroll-exports/`, `arn:aws:iam::123:role/`).
/// Destinations with ids in them miss the engine's memo of whole destinations, but
/// their container repeats: with its prefix remembered, only the part after it is
/// scanned. A pure cache: a hit gives exactly the text scanning the prefix gives, and
/// the scan of the rest resumes in the state the prefix leaves it in (see
/// [`prefix_cut`]), so output does not depend on it. Bounded: `PREFIX_SLOTS` entries of
/// at most `MAX_DEST_LEN` bytes each, a collision overwrites.
pub struct PrefixMemo {
    slots: Vec<PrefixSlot>,
}

impl Default for PrefixMemo {
    fn default() -> Self {
        PrefixMemo {
            slots: (0..PREFIX_SLOTS).map(|_| PrefixSlot::default()).collect(),
        }
    }
}

/// Where [`generalise_destination_with`] may cut `dest` into a remembered prefix and a
/// scanned rest: just after the `/` ending an ARN's resource type, when a token starts
/// right after it. The scan of the prefix alone then reads nothing past it and leaves
/// the state a scan of the rest starts in ([`generalise_from`]): no token, UUID or
/// address crosses a `/`, no token before it ends the text (so none is a trailing Helm
/// revision), and the separator run ending at the cut is not a lone `-`. `None` (scan
/// it all) for what this does not hold for, or what depends on the end of the text:
/// no ARN header, a Secrets Manager suffix, anything longer than `MAX_DEST_LEN`.
fn prefix_cut(dest: &str) -> Option<(usize, usize)> {
    let bytes = dest.as_bytes();
    if bytes.len() > MAX_DEST_LEN {
        return None;
    }
    let header = arn_header_len(bytes);
    if header == 0 || without_secret_suffix(bytes, header).len() != bytes.len() {
        return None;
    }
    let end = header + first_slash_or_colon(&bytes[header..])?;
    let starts_token = bytes.get(end + 1).is_some_and(|&b| is_alnum(b));
    (bytes[end] == b'/' && starts_token).then_some((header, end + 1))
}

/// Where the first `/` or `:` of `s` is. Eight bytes a step: a word's bytes equal to
/// either are found at once by the exact zero-byte test on the word xor-ed with each.
/// This runs on the resource type of every ARN destination that misses the engine's
/// memo, which a byte loop testing two values per byte read at eight instructions a byte.
fn first_slash_or_colon(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Bit 7 of each byte of `x` that is zero, and no other bit: `(y & 0x7f) + 0x7f`
    // has bit 7 set exactly when y's low bits are not all zero, and carries no further.
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hits =
            zero_bytes(x ^ (ONES * u64::from(b'/'))) | zero_bytes(x ^ (ONES * u64::from(b':')));
        if hits != 0 {
            // Little-endian: the lowest set bit is in the first matching byte.
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s.get(i..)?
        .iter()
        .position(|&b| b == b'/' || b == b':')
        .map(|k| i + k)
}

/// [`generalise_destination`], with the generalised form of the destination's ARN
/// prefix taken from `memo` when it is there (and put there when not). Returns the
/// length of the result's [`destination_class`] when the prefix alone settles it.
///
/// The class of an ARN ends at the first `/` or `:` after its header, which is the `/`
/// ending the prefix: the header is kept as it is, and between it and that `/` the
/// prefix has no `/` or `:` (placeholders write neither; an address writes a `:` only
/// for a port it had). Unless it is a secret's or a parameter's type, whose class takes
/// the first segment of the name after it too.
pub fn generalise_destination_with(
    dest: &str,
    out: &mut String,
    memo: &mut PrefixMemo,
) -> Option<usize> {
    let Some((header, cut)) = prefix_cut(dest) else {
        generalise_destination(dest, out);
        return None;
    };
    // `cut` is just after an ASCII `/`, so a char boundary.
    let Some(prefix) = dest.get(..cut) else {
        generalise_destination(dest, out);
        return None;
    };
    let hash = memory_hash(SEED_PREFIX, prefix.as_bytes());
    let slot = &mut memo.slots[hash as usize & (PREFIX_SLOTS - 1)];
    if !(slot.filled && slot.raw == prefix) {
        // Empty until filled: a slot half rewritten is never a hit.
        slot.filled = false;
        slot.raw.clear();
        slot.raw.push_str(prefix);
        slot.general.clear();
        generalise_from(prefix, prefix.as_bytes(), header, 0, &mut slot.general);
        let class = &slot.general[..slot.general.len() - 1];
        slot.is_class = !(class.ends_with(":secret") || class.ends_with(":parameter"));
        slot.filled = true;
    }
    out.clear();
    out.push_str(&slot.general);
    let class_len = slot.is_class.then(|| slot.general.len() - 1);
    generalise_from(dest, dest.as_bytes(), cut, cut, out);
    class_len
}

/// Appends `bytes[span]`, the verbatim part of `dest` (of which `bytes` is a prefix).
/// Only a span cut at `MAX_DEST_LEN` can end inside a character: that one is copied
/// lossily (which only affects display), every other as the `str` slice it is.
/// Inlined (a few spans per destination, each a call that saved and restored registers
/// around a copy of a few bytes), with the lossy copy out of line.
#[inline(always)]
fn push_span(dest: &str, bytes: &[u8], span: std::ops::Range<usize>, out: &mut String) {
    if span.is_empty() {
        return;
    }
    match dest.get(span.clone()) {
        Some(run) => out.push_str(run),
        None => push_lossy(&bytes[span], out),
    }
}

#[cold]
#[inline(never)]
fn push_lossy(bytes: &[u8], out: &mut String) {
    out.push_str(&String::from_utf8_lossy(bytes));
}

/// `bytes` without the `-` and six random characters Secrets Manager appends to a
/// secret's name in its ARN (`…:secret:prod/db-password-AbC12x`). The name is the
/// secret; the suffix is noise of the same kind as an object's id, and it may be
/// mistaken for a word (`-master`) or for an id, so it is dropped rather than judged.
/// `header` is the ARN header's length ([`arn_header_len`]).
fn without_secret_suffix(bytes: &[u8], header: usize) -> &[u8] {
    const SUFFIX: usize = 7;
    let is_secret = header > 0
        && bytes[..header]
            .windows(16)
            .any(|w| w == b":secretsmanager:")
        && bytes[header..].starts_with(b"secret:");
    let name_len = bytes.len().saturating_sub(header + b"secret:".len());
    if !is_secret || name_len <= SUFFIX {
        return bytes;
    }
    let (name, suffix) = bytes.split_at(bytes.len() - SUFFIX);
    // Callers may name a secret by a partial ARN without the suffix (`…:prod/app-config`,
    // `…:prod/api-token1`): only a mixed-case suffix is taken for random. One random
    // suffix in 26 has no capital and is kept, which costs nothing: it is the same on
    // every call for the same secret.
    let random = suffix[1..].iter().all(u8::is_ascii_alphanumeric)
        && suffix[1..].iter().any(u8::is_ascii_uppercase)
        && suffix[1..].iter().any(|b| !b.is_ascii_uppercase());
    if suffix[0] == b'-' && random {
        name
    } else {
        bytes
    }
}

/// Length of `arn:<partition>:<service>:<region>:<account>:` at the start of `bytes`, or
/// 0 when it is not an ARN.
fn arn_header_len(bytes: &[u8]) -> usize {
    if !bytes.starts_with(b"arn:") {
        return 0;
    }
    let mut colons = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            colons += 1;
            if colons == 5 {
                return i + 1;
            }
        }
    }
    0
}

/// A dotted IPv4 address at the start of a destination, with its port if one follows.
struct Ipv4Literal {
    octets: [u8; 4],
    /// Digits of the port (after a `:`), 0 without one.
    port_digits: usize,
    /// Bytes taken, port included.
    len: usize,
}

/// Four dot-separated decimal octets at the start of `s`, each of one to three digits
/// and at most 255: the octets, the bytes taken, and whether an octet had a leading
/// zero (`01`). Stops after the fourth octet's third digit, whatever follows.
fn leading_octets(s: &[u8]) -> Option<([u8; 4], usize, bool)> {
    // Digits as values through one range test each (this runs on every source address).
    let digit = |i: usize| s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|&d| d < 10);
    let mut octets = [0u8; 4];
    let mut i = 0;
    let mut leading_zero = false;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let first = digit(i)?;
        let mut value = u32::from(first);
        let mut len = 1;
        while len < 3 {
            let Some(d) = digit(i + len) else {
                break;
            };
            value = value * 10 + u32::from(d);
            len += 1;
        }
        leading_zero |= len > 1 && first == 0;
        *octet = u8::try_from(value).ok()?;
        i += len;
    }
    Some((octets, i, leading_zero))
}

/// The dotted IPv4 address at the start of `s` (octets of up to three digits, each at
/// most 255), with its port; `None` when there is none.
fn ipv4_literal_at(s: &[u8]) -> Option<Ipv4Literal> {
    let (octets, mut i, _) = leading_octets(s)?;
    // A longer dotted number (a version `1.2.3.4.5`, an OID) is not an address.
    if s.get(i).is_some_and(|&b| is_alnum(b) || b == b'.') {
        return None;
    }
    let mut port_digits = 0;
    if s.get(i) == Some(&b':') {
        let digits = s[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if (1..=5).contains(&digits) && !s.get(i + 1 + digits).is_some_and(|&b| is_alnum(b)) {
            port_digits = digits;
            i += 1 + digits;
        }
    }
    Some(Ipv4Literal {
        octets,
        port_digits,
        len: i,
    })
}

/// Writes the generalised form of an address literal `s` starts with. A call to an
/// address rather than a name keeps its place: private space by its /16 (pod and node
/// addresses churn inside it), public space by its /24 (a new public address is a new
/// place, the shape of exfiltration to a bare IP), and the port, which says what is
/// spoken there.
fn push_ipv4_place(address: &Ipv4Literal, s: &[u8], out: &mut String) {
    let octets = address.octets;
    push_u8(out, octets[0]);
    out.push('.');
    push_u8(out, octets[1]);
    if is_private(IpAddr::V4(std::net::Ipv4Addr::from(octets))) {
        out.push_str(".{n}.{n}");
    } else {
        out.push('.');
        push_u8(out, octets[2]);
        out.push_str(".{n}");
    }
    if address.port_digits > 0 {
        out.push(':');
        for &d in &s[address.len - address.port_digits..address.len] {
            out.push(char::from(d));
        }
    }
}

/// The destination's class: the part that names the resource container, so a new object
/// in a known bucket is weaker evidence than a new bucket. Works on the generalised form.
///
/// - S3 ARN: the bucket (`arn:aws:s3:::payroll-exports`);
/// - Secrets Manager secrets and SSM parameters named as paths: the type and the first
///   segment (`arn:aws:secretsmanager:us-east-1:123:secret:payments`,
///   `arn:aws:ssm:us-east-1:123:parameter/payments`). Their names are hierarchies by
///   convention, with the application or environment first, and policies grant them by
///   that prefix: another application's secrets are another container;
/// - other ARNs: service, region, account and resource type (`arn:aws:iam::123:role`);
///   SQS queues and SNS topics, whose ARNs have no type, by their account
///   (`arn:aws:sqs:us-east-1:123`); other ARNs without a type are their own class;
/// - URLs: scheme and host;
/// - `host/path...`: the host and the first two path segments (`github.com/acme/web`:
///   the repository; `api.example.com/v1/orders`: the resource type), without a
///   revision after `@` (`github.com/acme/web@refs/heads/main`);
/// - other paths (`ns/resource/name`, `/v1/payments/{n}`): the first two segments.
pub fn destination_class(general: &str) -> &str {
    if let Some(rest) = general.strip_prefix("arn:") {
        // arn:partition:service:region:account:resource; the type ends at the first `/`
        // or `:` after the account's colon. Two vector searches (memchr) rather than a
        // loop testing every byte: this runs on every destination that misses the
        // engine's memo, a third of the events of a fleet that names objects.
        let bytes = rest.as_bytes();
        let account_colon = memchr::memchr_iter(b':', bytes).nth(3);
        let type_end = account_colon
            .and_then(|at| memchr::memchr2(b'/', b':', &bytes[at + 1..]).map(|k| at + 1 + k));
        if let Some(i) = type_end {
            let class = &general[..4 + i];
            return path_named_container(general, class).unwrap_or(class);
        }
        // No resource type. An SQS queue or an SNS topic (`arn:aws:sqs:us-east-1:123:
        // orders`) is one of the account's queues, as CloudTrail's queue URLs
        // (`https://sqs.us-east-1.amazonaws.com/123/orders`, classed by host) also say.
        // Anything else (an S3 bucket, a CodeCommit repository) is its own container.
        let mut fields = rest.splitn(4, ':');
        let service = fields.nth(1);
        if matches!(service, Some("sqs" | "sns")) {
            // `rest` is `partition:service:region:account:name`: end at the account.
            let account_end = memchr::memchr_iter(b':', bytes).nth(3);
            if let Some(end) = account_end.filter(|&end| end + 1 < rest.len()) {
                return &general[..4 + end];
            }
        }
        return general;
    }
    // Vector searches for the delimiters (all ASCII), not byte loops: most destinations
    // have no `:` at all, and the rest of the work stops at the class's end.
    let bytes = general.as_bytes();
    let scheme = memchr::memchr_iter(b':', bytes).find(|&i| bytes.get(i + 1..i + 3) == Some(b"//"));
    if let Some(pos) = scheme {
        let after = pos + 3;
        return match memchr::memchr(b'/', &bytes[after..]) {
            Some(slash) => &general[..after + slash],
            None => general,
        };
    }
    // The first non-empty segment between `/` and `:` separators.
    let start = bytes
        .iter()
        .position(|&b| b != b'/' && b != b':')
        .unwrap_or(bytes.len());
    let end = memchr::memchr2(b'/', b':', &bytes[start..]).map_or(bytes.len(), |k| start + k);
    let first = &bytes[start..end];
    let levels = if memchr::memchr(b'.', first).is_some() && !general.starts_with('/') {
        3
    } else {
        2
    };
    let mut seps = 0;
    // Only these three bytes change anything below.
    for i in memchr::memchr3_iter(b'/', b':', b'@', bytes) {
        let b = bytes[i];
        if (b == b'/' || b == b':') && i > 0 {
            seps += 1;
            if seps == levels {
                return &general[..i];
            }
        } else if b == b'@' && levels == 3 && seps == 2 {
            // A revision of a host's last class segment (`github.com/acme/web@refs/
            // heads/main`, an image `registry.io/team/app@sha256:…`) is inside it, as
            // `…/web/refs/heads/main` would be: pushing to a repository one cloned is not
            // a second container. (Not in two-level paths: `smtp/alice@example.com`.)
            return &general[..i];
        }
    }
    general
}

/// The class of a secret or parameter whose name is a path: `class` (the ARN up to its
/// resource type) and the name's first segment. `None` for other ARNs and for names
/// without a `/` after their first segment.
fn path_named_container<'a>(general: &'a str, class: &str) -> Option<&'a str> {
    let secret = class.ends_with(":secret") && class.contains(":secretsmanager:");
    let parameter = class.ends_with(":parameter") && class.contains(":ssm:");
    if !(secret || parameter) {
        return None;
    }
    // Past the separator after the type, and past a parameter name's leading `/`
    // (`parameter//prod/db` when the ARN keeps it).
    let name_start = class.len() + 1;
    let name = general.get(name_start..)?;
    let lead = name.len() - name.trim_start_matches('/').len();
    let first_end = name[lead..].find('/')?;
    general.get(..name_start + lead + first_end)
}

/// Where a call came from, at the granularity novelty is judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceClass {
    /// Producer-named network (VPC, runner pool): compared by name.
    Named,
    /// RFC 1918 / ULA / loopback / link-local / CGNAT: churns with every pod and runner.
    Private,
    /// Routable address: a new one is meaningful.
    Public,
}

/// Key of the source network: the named network if given, else the IP's /24 (v4) or /64
/// (v6) prefix, written into `out`. Returns the class, or `None` with no usable source.
pub fn source_network(
    named: Option<&str>,
    ip: Option<&str>,
    out: &mut String,
) -> Option<SourceClass> {
    use std::fmt::Write as _;
    out.clear();
    if named.filter(|n| !n.is_empty()).is_none() {
        if let Some(class) = ip.and_then(|text| quad_network(text, out)) {
            return Some(class);
        }
    }
    // An IPv4 client of a dual-stack listener is logged as `::ffff:a.b.c.d`: judged as
    // the IPv4 address it is, or every such client would share one /64.
    let parsed = ip.and_then(|s| parse_ip(s.trim())).map(|a| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    });
    let class = parsed.map(|a| {
        if is_private(a) {
            SourceClass::Private
        } else {
            SourceClass::Public
        }
    });
    if let Some(name) = named.filter(|n| !n.is_empty()) {
        out.push_str("net:");
        out.push_str(name);
        // A named network is what we compare, but a public caller address still counts
        // as public: stolen credentials keep the label of no network.
        return Some(match class {
            Some(SourceClass::Public) => SourceClass::Public,
            _ => SourceClass::Named,
        });
    }
    let addr = parsed?;
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            // Written digit by digit: `write!` costs more than the rest of the function.
            push_u8(out, o[0]);
            out.push('.');
            push_u8(out, o[1]);
            out.push('.');
            // `class` is this address's, as `addr` is `parsed`.
            if class == Some(SourceClass::Private) {
                // Private space churns inside large ranges (runner pools, pod CIDRs): the
                // /16 is the stable unit there.
                out.push_str("0.0/16");
            } else {
                push_u8(out, o[2]);
                out.push_str(".0/24");
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let _ = write!(out, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
        }
    }
    class
}

/// [`source_network`] of a source without a named network whose address is a plain
/// dotted quad (most sources): `None`, having written nothing, for anything else. The
/// quad's text has no leading zeros, so its first two or three octets and their dots
/// are already the prefix's text, as the general path writes it digit by digit.
fn quad_network(text: &str, out: &mut String) -> Option<SourceClass> {
    let (octets, dots) = dotted_quad(text.as_bytes())?;
    let (keep, rest, class) = if is_private(IpAddr::V4(std::net::Ipv4Addr::from(octets))) {
        (dots[1], "0.0/16", SourceClass::Private)
    } else {
        (dots[2], "0/24", SourceClass::Public)
    };
    // A dot is ASCII, so this cut is a char boundary.
    out.push_str(text.get(..=keep)?);
    out.push_str(rest);
    Some(class)
}

/// `text` as an address. Plain dotted IPv4 (most sources) is read by hand: the
/// standard parser tries several grammars and cost as much as the rest of
/// [`source_network`]. Anything else, including any IPv4 form the hand-read refuses,
/// goes to the standard parser, so the result is always the one it gives.
fn parse_ip(text: &str) -> Option<IpAddr> {
    match dotted_quad(text.as_bytes()) {
        Some((octets, _)) => Some(IpAddr::V4(std::net::Ipv4Addr::from(octets))),
        None => text.parse().ok(),
    }
}

/// Exactly four decimal octets of one to three digits, without leading zeros (which the
/// standard parser refuses), each at most 255, separated by dots: the octets and where
/// the three dots are. This runs on every source address: the text (7 to 15 bytes, or
/// it is not one) is copied into a zero-padded block of 16 as two words, and read an
/// octet at a time with its digits at fixed offsets, without a bounds check or a state
/// to test per byte. The zeros past the text are neither digits nor dots, so the text
/// ends there as it would at its end.
fn dotted_quad(s: &[u8]) -> Option<([u8; 4], [usize; 3])> {
    let n = s.len();
    if !(7..=15).contains(&n) {
        return None;
    }
    let mut block = [0u8; 16];
    // Fixed-length copies (no call): the first and last eight bytes, overlapping on the
    // same bytes when the text is shorter than 16; the shortest text is seven.
    if n >= 8 {
        block[..8].copy_from_slice(s.get(..8)?);
        block[n - 8..n].copy_from_slice(s.get(n - 8..)?);
    } else {
        block[..7].copy_from_slice(s.get(..7)?);
    }
    // Octets start at most at byte 12 (three of three digits and their dots), so the
    // reads below stay inside the block without the mask ever wrapping.
    let digit = |j: usize| block[j & 15].wrapping_sub(b'0');
    let mut octets = [0u8; 4];
    let mut dots = [0usize; 3];
    let mut i = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        let d0 = digit(i);
        if d0 > 9 {
            return None;
        }
        // A leading `0` is the whole octet: a digit after it is then refused as not a
        // `.` (or the end), as the standard parser refuses it.
        let (value, len) = if d0 == 0 {
            (0, 1)
        } else {
            let d1 = digit(i + 1);
            let d2 = digit(i + 2);
            if d1 > 9 {
                (u32::from(d0), 1)
            } else if d2 > 9 {
                (u32::from(d0) * 10 + u32::from(d1), 2)
            } else {
                (u32::from(d0) * 100 + u32::from(d1) * 10 + u32::from(d2), 3)
            }
        };
        *octet = u8::try_from(value).ok()?;
        i += len;
        if let Some(dot) = dots.get_mut(k) {
            if block[i & 15] != b'.' {
                return None;
            }
            *dot = i;
            i += 1;
        }
    }
    (i == n).then_some((octets, dots))
}

/// Appends `n` in decimal (as `{}` would).
fn push_u8(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

/// Whether `ip` is an address in private space (see [`SourceClass::Private`]); `false`
/// for anything that does not parse as an address (`AWS Internal`, a host name).
pub fn is_private_address(ip: &str) -> bool {
    ip.trim().parse::<IpAddr>().is_ok_and(is_private)
}

fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s0 = v6.segments()[0];
            v6.is_loopback() || (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfe80
        }
    }
}

/// The user agent's family: product tokens without versions, so an SDK upgrade across
/// the fleet is not a new client. `aws-cli/2.15.1 Python/3.11.6 Linux/6.1` →
/// `aws-cli python linux`; `Boto3/1.34.2 md/Botocore#1.34.2` → `boto3`.
pub fn user_agent_family(ua: &str, out: &mut String) {
    out.clear();
    // Byte scans throughout: every delimiter is ASCII, so slicing at them keeps `str`
    // boundaries, and this runs on every event.
    let bytes = ua.as_bytes();
    let mut words = 0;
    let mut from = 0;
    while from <= bytes.len() && words < 3 {
        let end = bytes[from..]
            .iter()
            .position(|b| matches!(b, b' ' | b';' | b'(' | b')' | b','))
            .map_or(bytes.len(), |p| from + p);
        let part = &ua[from..end];
        from = end + 1;
        // `md/...`, `os/...`, `exec-env/...` and similar metadata after the product are
        // detail, not family.
        let product = match part.as_bytes().iter().position(|&b| b == b'/') {
            Some(slash) => &part[..slash],
            None => part,
        };
        let pb = product.as_bytes();
        if pb.len() < 2
            || pb[0].is_ascii_digit()
            || matches!(
                product,
                "md" | "ua" | "os" | "lang" | "cfg" | "api" | "exec-env" | "m"
            )
        {
            continue;
        }
        // Version-like tails glued to the name (`python3.11`, `Boto3`), after at least
        // two bytes of name.
        let cut = pb
            .iter()
            .skip(2)
            .position(|&b| b.is_ascii_digit() || b == b'.' || b == b'_')
            .map_or(pb.len(), |p| p + 2);
        let name = product[..cut].trim_end_matches(['-', '.', '_']);
        if name.len() < 2 {
            continue;
        }
        if words > 0 {
            out.push(' ');
        }
        let start = out.len();
        out.push_str(name);
        if let Some(written) = out.get_mut(start..) {
            written.make_ascii_lowercase();
        }
        words += 1;
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> String {
        let mut out = String::new();
        generalise_destination(s, &mut out);
        // Every case also through the prefix memo, missing and then hitting it.
        let mut memo = PrefixMemo::default();
        for _ in 0..2 {
            let mut with = String::from("stale");
            let class_len = generalise_destination_with(s, &mut with, &mut memo);
            assert_eq!(with, out, "{s}");
            if let Some(len) = class_len {
                assert_eq!(len, destination_class(&out).len(), "{s}");
            }
        }
        out
    }

    /// Fragments the memo-cut tests build destinations from: headers, separators, and
    /// tokens that become each placeholder or stay (UUIDs, addresses with ports, Helm
    /// revisions, Kubernetes suffixes, long words), so cuts land next to all of them.
    const FRAGMENTS: [&str; 32] = [
        "arn:aws:s3:::",
        "arn:aws:iam::123456789012:",
        "arn:aws:secretsmanager:us-east-1:1:secret:",
        "arn:aws:ssm:us-east-1:1:parameter",
        "role",
        "/",
        "/",
        ":",
        "-",
        ".",
        "_",
        "//",
        "payroll",
        "2026",
        "8f3a9c2e",
        "0f8b7c6d-1a2b-4c3d-9e8f-001122334455",
        "10.1.2.3",
        "8.8.4.4:443",
        "v12",
        "gmgtd",
        "x2k4q",
        "bqxztkw",
        "OrganizationAccountAccessRole",
        "aB3dE5fG7hJ9kL",
        "37Z",
        "data",
        "AbC12x",
        "é",
        "sh.helm.release.v1.app.v3",
        "nwplmdqwph",
        "1.2.3.4.5",
        "",
    ];

    proptest::proptest! {
        /// The prefix memo changes nothing: destinations sharing prefixes (so the memo
        /// hits with other rests) generalise as a full scan does.
        #[test]
        fn prefix_memo_generalises_as_a_full_scan(
            picks in proptest::collection::vec(
                proptest::collection::vec(0..FRAGMENTS.len(), 1..12),
                1..8,
            )
        ) {
            let mut memo = PrefixMemo::default();
            for (n, pick) in picks.iter().enumerate() {
                // The first fragments of each destination come from the first one, so
                // prefixes repeat.
                let shared = picks[0].iter().take(n % 4);
                let dest: String = shared.chain(pick).map(|&k| FRAGMENTS[k]).collect();
                let mut full = String::new();
                generalise_destination(&dest, &mut full);
                let mut with = String::new();
                let class_len = generalise_destination_with(&dest, &mut with, &mut memo);
                proptest::prop_assert_eq!(&with, &full, "{}", dest);
                if let Some(len) = class_len {
                    proptest::prop_assert_eq!(len, destination_class(&full).len(), "{}", dest);
                }
            }
        }
    }

    #[test]
    fn prefix_memo_cuts_after_the_resource_type() {
        fn cut(d: &str) -> Option<&str> {
            prefix_cut(d).map(|(_, c)| &d[..c])
        }
        assert_eq!(
            cut("arn:aws:s3:::team-7-data/records/1/ab12.json"),
            Some("arn:aws:s3:::team-7-data/")
        );
        assert_eq!(
            cut("arn:aws:iam::123:role/admin"),
            Some("arn:aws:iam::123:role/")
        );
        // No token right after the `/`, a `:` type, no ARN header, a secret: no cut.
        assert_eq!(cut("arn:aws:s3:::bucket//x"), None);
        assert_eq!(cut("arn:aws:s3:::bucket/"), None);
        assert_eq!(cut("arn:aws:lambda:us-east-1:123:function:f"), None);
        assert_eq!(cut("https://api.example.com/v1/orders"), None);
        assert_eq!(
            cut("arn:aws:secretsmanager:us-east-1:1:secret:prod/db-password-AbC12x"),
            None
        );
        let long = format!("arn:aws:s3:::b/{}", "x".repeat(MAX_DEST_LEN));
        assert_eq!(cut(&long), None);
    }

    /// The word-at-a-time search against a plain byte search, on every length and
    /// position around the word size and with bytes that differ from `/` and `:` by one
    /// bit (`.`, `;`, `o`, `z`, `\xaf`, `\xba`).
    #[test]
    fn first_slash_or_colon_matches_the_byte_search() {
        let fillers = [b'a', b'.', b';', b'o', b'z', 0xaf, 0xba, 0, 0xff];
        for len in 0..20 {
            for &fill in &fillers {
                let base = vec![fill; len];
                let plain = |s: &[u8]| s.iter().position(|&b| b == b'/' || b == b':');
                assert_eq!(first_slash_or_colon(&base), plain(&base), "{len} {fill}");
                for at in 0..len {
                    for hit in [b'/', b':'] {
                        let mut s = base.clone();
                        s[at] = hit;
                        assert_eq!(first_slash_or_colon(&s), Some(at), "{len} {fill} {at}");
                        if at + 1 < len {
                            s[at + 1] = b'/';
                            assert_eq!(first_slash_or_colon(&s), Some(at), "{len} {at}");
                        }
                    }
                }
            }
        }
    }

    /// The UUID and address tests run after the token scan, only on tokens that can
    /// start one (8 hex digits before a `-`; 1 to 3 digits before a `.`): near misses of
    /// both read as they always did.
    #[test]
    fn uuids_and_addresses_are_found_from_the_first_token() {
        for (raw, general) in [
            ("deadbeef-0000-1111-2222-333344445555", "{uuid}"),
            ("abcdefab-0000-1111-2222-333344445555/obj", "{uuid}/obj"),
            (
                "deadbeef-0000-1111-2222-33334444555",
                "deadbeef-{n}-{n}-{n}-{n}",
            ),
            (
                "deadbeef-0000-1111-2222-333344445555x",
                "deadbeef-{n}-{n}-{n}-{id}",
            ),
            ("x/deadbeef-abcd/y", "x/deadbeef-abcd/y"),
            ("1234.5.6.7", "{n}.{n}.{n}.{n}"),
            ("v1.2.3.4", "v1.{n}.{n}.{n}"),
            ("build-1.2.3.4", "build-{n}.{n}.{n}.{n}"),
            ("1.2.3.4:8080/x", "1.2.3.{n}:8080/x"),
            ("api/1.2/v3", "api/{n}.{n}/v3"),
            ("a/b/json", "a/b/json"),
            ("reco-api-nwplmdqwph-gmgtd", "reco-api-{id}-{id}"),
            ("reco-api-nwplmdqwph-gmgt", "reco-api-{id}-gmgt"),
            ("sh.helm.release.v1.app.v12", "sh.helm.release.v1.app.v{n}"),
            // Capitals, a UUID after a separator that does not start a token, one inside
            // a longer token; an address inside a token, with a leading zero (as
            // before: its place is read from the octets), with a trailing dot.
            ("DEADBEEF-0000-1111-2222-333344445555", "{uuid}"),
            ("a.deadbeef-0000-1111-2222-333344445555", "a.{uuid}"),
            ("a_deadbeef-0000-1111-2222-333344445555", "a_{uuid}"),
            (
                "xdeadbeef-0000-1111-2222-333344445555",
                "xdeadbeef-{n}-{n}-{n}-{n}",
            ),
            ("a10.0.0.1", "a10.{n}.{n}.{n}"),
            ("010.1.2.3", "10.1.{n}.{n}"),
            ("1.2.3.4.", "{n}.{n}.{n}.{n}."),
        ] {
            assert_eq!(g(raw), general, "{raw}");
        }
    }

    #[test]
    fn byte_classes_match_the_ascii_predicates() {
        for b in 0..=255u8 {
            let c = CLASSES[usize::from(b)];
            assert_eq!(c & ALNUM != 0, b.is_ascii_alphanumeric(), "{b}");
            assert_eq!(c & DIGIT != 0, b.is_ascii_digit(), "{b}");
            assert_eq!(c & HEX != 0, b.is_ascii_hexdigit(), "{b}");
            let vowel = b.is_ascii_alphanumeric()
                && matches!(b | 0x20, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
            assert_eq!(c & VOWEL != 0, vowel, "{b}");
            assert_eq!(c & UPPER != 0, b.is_ascii_uppercase(), "{b}");
            assert_eq!(c & LOWER != 0, b.is_ascii_lowercase(), "{b}");
        }
    }

    /// The summed scan against the byte-by-byte reading it replaced: token ends (every
    /// byte with no count is exactly a non-alphanumeric one) and each count.
    #[test]
    fn summed_token_scan_matches_the_bytewise_reading() {
        for b in 0..=255u8 {
            let v = SUMS[usize::from(b)];
            assert_eq!(v != 0, b.is_ascii_alphanumeric(), "{b}");
            assert_eq!(v >> SUM_ALNUM, u64::from(b.is_ascii_alphanumeric()), "{b}");
        }
        let long = "a1".repeat(400);
        for token in [
            "",
            "a",
            "Z",
            "0",
            "8f3a9c2e",
            "ListBucketVersions",
            "bqxztkw",
            "x2k4q",
            "37Z",
            "FFFFFF",
            "aAeEiIoOuUyY",
            "run-8f3a",
            "v12.json",
            "abc",
            "abcd",
            "abcd-",
            "abcde",
            "abcdefgh.",
            "abcdefghi",
            "abc-defgh",
            long.as_str(),
        ] {
            let bytes = token.as_bytes();
            let t = scan_token(bytes);
            let len = bytes
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            let len = len.min(MAX_DEST_LEN);
            let word = &bytes[..len];
            assert_eq!(t.len, len, "{token}");
            assert_eq!(t.digits, word.iter().filter(|b| b.is_ascii_digit()).count());
            assert_eq!(t.all_hex, word.iter().all(u8::is_ascii_hexdigit), "{token}");
            assert_eq!(
                t.vowel(),
                word.iter().any(|&b| CLASSES[usize::from(b)] & VOWEL != 0)
            );
            let both =
                word.iter().any(u8::is_ascii_uppercase) && word.iter().any(u8::is_ascii_lowercase);
            assert_eq!(t.both_cases(), both, "{token}");
        }
    }

    #[test]
    fn random_mixed_case_ids_become_placeholders_and_camel_case_words_stay() {
        // Stripe-style ids with few or no digits: the digit rules alone miss these.
        for (raw, general) in [
            (
                "api.acme-pay.com/v1/orders/ord_REXahEZHwvTGgk",
                "api.acme-pay.com/v1/orders/ord_{id}",
            ),
            ("crm/customers/cus_u0Hibds4Kw2UZo", "crm/customers/cus_{id}"),
            ("orders/ord_3g650yitywPNMf", "orders/ord_{id}"),
            ("v1/payments/pay_09yw6I7kM4UDVA", "v1/payments/pay_{id}"),
            ("media/dQw4w9WgXcQ/thumb", "media/{id}/thumb"),
        ] {
            assert_eq!(g(raw), general, "{raw}");
        }
        // Names made of words keep their identity.
        for word in [
            "iam/role/aws-service-role/AWSServiceRoleForECS",
            "iam/role/OrganizationAccountAccessRole",
            "arn:aws:iam::aws:policy/AWSLambdaFullAccess",
            "reports/MonthlyReport/ListBucketVersions",
            "XMLHttpRequest/NoSuchCORSConfiguration/mapPublicIpOnLaunch",
            "stacks/MyAppStackLambdaFunction/PayrollExports",
            "github.com/acme/GitHubActions/getHTTPResponseCode",
        ] {
            assert_eq!(g(word), word, "{word}");
        }
    }

    #[test]
    fn kubernetes_pod_names_lose_their_random_parts() {
        for (raw, general) in [
            (
                "log-group:/eks/prod/reco-api:log-stream:reco-api-nwplmdqwph-gmgtd",
                "log-group:/eks/prod/reco-api:log-stream:reco-api-{id}-{id}",
            ),
            (
                "prod/pods/reco-api-5bvcpbxjbb-fdb8v",
                "prod/pods/reco-api-{id}-{id}",
            ),
            (
                "prod/pods/coredns-5d78c9869d-x2k4q",
                "prod/pods/coredns-{hex}-{id}",
            ),
            (
                "kube-system/pods/kube-proxy-hswbv",
                "kube-system/pods/kube-proxy-hswbv",
            ),
        ] {
            assert_eq!(g(raw), general, "{raw}");
        }
        // Short words keep their identity, even without vowels, where no random part
        // precedes them.
        for word in [
            "https://api.acme.com/v1",
            "db/pgsql-main",
            "docs/index.xhtml",
        ] {
            assert_eq!(g(word), word, "{word}");
        }
    }

    #[test]
    fn ids_hashes_and_dates_become_placeholders() {
        assert_eq!(
            g("arn:aws:s3:::build-artifacts/2026-11-25/app-3f9a2c1e7b.tar.gz"),
            "arn:aws:s3:::build-artifacts/{n}-{n}-{n}/app-{hex}.tar.gz"
        );
        assert_eq!(
            g("/v1/customers/8d2f1c3a-1b2c-4d5e-8f90-123456789abc/orders/99812"),
            "/v1/customers/{uuid}/orders/{n}"
        );
        assert_eq!(
            g("prod/pods/checkout-7d9f8c6b5-x2k4q"),
            "prod/pods/checkout-{hex}-{id}"
        );
        assert_eq!(
            g("api.github.com/repos/acme/web"),
            "api.github.com/repos/acme/web"
        );
        assert_eq!(g("tok_9aZkQ2mN7pL4xW8vR3"), "tok_{id}");
    }

    #[test]
    fn arn_accounts_and_regions_are_places() {
        // The same role in two accounts is two destinations (lateral movement through
        // every member account's `OrganizationAccountAccessRole`).
        assert_eq!(
            g("arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"),
            "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"
        );
        assert_ne!(
            g("arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"),
            g("arn:aws:iam::222222222222:role/OrganizationAccountAccessRole")
        );
        // Another region is another place; the resource part is still generalised.
        assert_eq!(
            g("arn:aws:kms:us-east-2:123456789012:key/0b9e6c1e-5a9f-4a57-8d0e-3f1c2b7a9d10"),
            "arn:aws:kms:us-east-2:123456789012:key/{uuid}"
        );
        assert_eq!(
            destination_class(&g("arn:aws:iam::111111111111:role/admin")),
            "arn:aws:iam::111111111111:role"
        );
        // A colon-poor "ARN" is generalised like anything else.
        assert_eq!(g("arn:x-{n}"), "arn:x-{n}");
    }

    #[test]
    fn addresses_times_and_revisions_in_destinations() {
        // A bare address keeps its place and port; pod addresses churn inside a /16.
        assert_eq!(
            g("https://10.0.0.5:8443/v1/x"),
            "https://10.0.{n}.{n}:8443/v1/x"
        );
        assert_eq!(
            g("https://10.0.9.77:8443/v1/x"),
            g("https://10.0.0.5:8443/v1/x")
        );
        assert_eq!(
            g("https://198.51.100.7:443/upload"),
            "https://198.51.100.{n}:443/upload"
        );
        assert_ne!(g("https://198.51.100.7/"), g("https://203.0.113.7/"));
        assert_ne!(g("https://10.0.0.5:8443/"), g("https://198.51.100.7:8443/"));
        // Version numbers and dotted names are not addresses.
        assert_eq!(
            g("pkg/lib-1.2.3.4.5.tar"),
            "pkg/lib-{n}.{n}.{n}.{n}.{n}.tar"
        );
        assert_eq!(g("app-1.2.3.4"), "app-{n}.{n}.{n}.{n}");
        // The seconds of a timestamped name are one placeholder.
        assert_eq!(
            g("logs/2026-11-25T08:00:37Z.json"),
            g("logs/2026-11-25T08:00:59Z.json")
        );
        assert_eq!(
            g("logs/2026-11-25T08:00:37.345Z.json"),
            g("logs/2026-11-25T09:12:07.001Z.json")
        );
        // Helm's release revisions are one secret; API versions stay.
        assert_eq!(
            g("payments/secrets/sh.helm.release.v1.checkout.v12"),
            "payments/secrets/sh.helm.release.v1.checkout.v{n}"
        );
        assert_eq!(
            g("payments/secrets/sh.helm.release.v1.checkout.v3"),
            g("payments/secrets/sh.helm.release.v1.checkout.v12")
        );
        assert_eq!(g("https://api.acme.com/v2"), "https://api.acme.com/v2");
    }

    #[test]
    fn secrets_lose_the_random_suffix_of_their_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret";
        assert_eq!(
            g(&format!("{arn}:prod/db-password-AbC12x")),
            format!("{arn}:prod/db-password")
        );
        assert_eq!(
            g(&format!("{arn}:prod/db-password-AbC12x")),
            g(&format!("{arn}:prod/db-password-9ZqTTw"))
        );
        // A name ending in a six-letter word loses only the suffix after it, and a
        // partial ARN without the suffix keeps its last word.
        assert_eq!(
            g(&format!("{arn}:prod/db-master-Qw3rTy")),
            format!("{arn}:prod/db-master")
        );
        assert_eq!(
            g(&format!("{arn}:prod/app-config")),
            format!("{arn}:prod/app-config")
        );
        assert_eq!(
            g(&format!("{arn}:prod/api-token1")),
            format!("{arn}:prod/api-token1")
        );
        // Not a suffix: too short a name, another shape, another service.
        assert_eq!(g(&format!("{arn}:-AbC12x")), format!("{arn}:-{{id}}"));
        assert_eq!(
            g(&format!("{arn}:prod/api_key")),
            format!("{arn}:prod/api_key")
        );
        assert_eq!(
            g("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db-master"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db-master"
        );
    }

    /// An ARN's type end found by two searches, against the byte loop it replaced.
    #[test]
    fn arn_type_end_matches_the_colon_counting_loop() {
        fn type_end_by_loop(rest: &str) -> Option<usize> {
            let mut colons = 0;
            for (i, b) in rest.bytes().enumerate() {
                if b == b':' {
                    colons += 1;
                }
                if colons >= 4 && (b == b'/' || (b == b':' && colons >= 5)) {
                    return Some(i);
                }
            }
            None
        }
        for general in [
            "arn:aws:s3:::payroll-exports/{n}/x.csv",
            "arn:aws:s3:::payroll-exports",
            "arn:aws:iam::123:role/admin",
            "arn:aws:iam::123:role",
            "arn:aws:logs:us-east-1:123:log-group:/aws/lambda/x:*",
            "arn:a/b:c/d:e:f/g",
            "arn:a:b:c:d:",
            "arn:a:b:c:d/",
            "arn:::::",
            "arn::::",
            "arn:",
            "arn:a:b:c:d:e:f:g",
        ] {
            let rest = &general[4..];
            let expected = type_end_by_loop(rest).map(|i| &general[..4 + i]);
            if let Some(class) = expected {
                let class = path_named_container(general, class).unwrap_or(class);
                assert_eq!(destination_class(general), class, "{general}");
            } else {
                assert_ne!(destination_class(general), "", "{general}");
            }
        }
    }

    #[test]
    fn classes_keep_container_structure() {
        assert_eq!(
            destination_class("arn:aws:s3:::payroll-exports/{n}/x.csv"),
            "arn:aws:s3:::payroll-exports"
        );
        assert_eq!(
            destination_class("arn:aws:iam::123:role/admin"),
            "arn:aws:iam::123:role"
        );
        assert_eq!(
            destination_class("https://api.stripe.com/v1/charges"),
            "https://api.stripe.com"
        );
        assert_eq!(destination_class("/v1/payments/export/{n}"), "/v1/payments");
        assert_eq!(destination_class("prod/secrets/db"), "prod/secrets");
        // Secrets and parameters by their name's first segment, when it has one.
        let secrets = "arn:aws:secretsmanager:us-east-1:123:secret";
        assert_eq!(
            destination_class(&format!("{secrets}:payments/stripe-live")),
            format!("{secrets}:payments")
        );
        assert_eq!(
            destination_class(&format!("{secrets}:payments/stripe/live")),
            format!("{secrets}:payments")
        );
        assert_eq!(
            destination_class(&format!("{secrets}:db-password")),
            secrets
        );
        let parameters = "arn:aws:ssm:eu-west-1:123:parameter";
        assert_eq!(
            destination_class(&format!("{parameters}/prod/db/password")),
            format!("{parameters}/prod")
        );
        assert_eq!(
            destination_class(&format!("{parameters}/password")),
            parameters
        );
        // Queues and topics have no resource type in their ARN: the account's queues.
        assert_eq!(
            destination_class("arn:aws:sqs:us-east-1:123:orders-events"),
            "arn:aws:sqs:us-east-1:123"
        );
        assert_eq!(
            destination_class("arn:aws:sns:us-east-1:123:alerts"),
            "arn:aws:sns:us-east-1:123"
        );
        assert_eq!(
            destination_class("arn:aws:s3:::payroll-exports"),
            "arn:aws:s3:::payroll-exports"
        );
        assert_eq!(
            destination_class("arn:aws-cn:s3:::payroll-exports"),
            "arn:aws-cn:s3:::payroll-exports"
        );
        assert_eq!(
            destination_class("arn:aws:codecommit:us-east-1:123:payments-core"),
            "arn:aws:codecommit:us-east-1:123:payments-core"
        );
        assert_eq!(
            destination_class("arn:aws:sqs:us-east-1:123:"),
            "arn:aws:sqs:us-east-1:123:"
        );
        assert_eq!(
            destination_class("arn:aws:iam::123:role/service-role/x"),
            "arn:aws:iam::123:role"
        );
        assert_eq!(
            destination_class("github.com/acme/web/refs/heads/main"),
            "github.com/acme/web"
        );
        assert_eq!(
            destination_class("github.com/acme/web@refs/heads/agent/fix-{n}"),
            "github.com/acme/web"
        );
        assert_eq!(
            destination_class("smtp/external/someone@example.com"),
            "smtp/external"
        );
        assert_eq!(
            destination_class("smtp/alice@example.com"),
            "smtp/alice@example.com"
        );
        assert_eq!(
            destination_class("inventory.prod.acme.internal/v1/items/{n}"),
            "inventory.prod.acme.internal/v1/items"
        );
        // Odd separators: the segment that decides the depth may come after the
        // separators that are counted, and a leading one is not counted.
        assert_eq!(destination_class(":/:/a.b/c"), ":/:");
        assert_eq!(destination_class("///a.b/c"), "//");
        assert_eq!(destination_class("a.b/c/d@e/f"), "a.b/c/d");
        assert_eq!(destination_class("a.b/c@d/e"), "a.b/c@d/e");
        assert_eq!(destination_class("a/c@d/e"), "a/c@d");
        assert_eq!(destination_class("x:y//z/w"), "x:y");
        assert_eq!(destination_class("arn:aws:s3:::b"), "arn:aws:s3:::b");
    }

    #[test]
    fn sources_by_space_and_prefix() {
        let mut s = String::new();
        assert_eq!(
            source_network(None, Some("10.4.17.200"), &mut s),
            Some(SourceClass::Private)
        );
        assert_eq!(s, "10.4.0.0/16");
        assert_eq!(
            source_network(None, Some("203.0.113.9"), &mut s),
            Some(SourceClass::Public)
        );
        assert_eq!(s, "203.0.113.0/24");
        assert_eq!(
            source_network(None, Some("2001:db8:1:2:3::4"), &mut s),
            Some(SourceClass::Public)
        );
        assert_eq!(s, "2001:db8:1:2::/64");
        assert_eq!(
            source_network(Some("runners"), Some("10.0.0.1"), &mut s),
            Some(SourceClass::Named)
        );
        assert_eq!(source_network(None, Some("not-an-ip"), &mut s), None);
        // IPv4 clients of a dual-stack listener are their IPv4 address.
        assert_eq!(
            source_network(None, Some("::ffff:203.0.113.9"), &mut s),
            Some(SourceClass::Public)
        );
        assert_eq!(s, "203.0.113.0/24");
        assert_eq!(
            source_network(None, Some("::ffff:10.1.2.3"), &mut s),
            Some(SourceClass::Private)
        );
        assert_eq!(s, "10.1.0.0/16");
    }

    /// Plain dotted quads without a named network take a shortcut that writes the kept
    /// octets' text: the same prefixes as the general path, and the same refusals.
    #[test]
    fn plain_quads_get_the_prefixes_the_general_path_gives() {
        let mut s = String::from("stale");
        for (named, ip, class, text) in [
            (None, "0.0.0.0", Some(SourceClass::Public), "0.0.0.0/24"),
            (
                Some(""),
                "172.16.5.4",
                Some(SourceClass::Private),
                "172.16.0.0/16",
            ),
            (
                None,
                "172.32.5.4",
                Some(SourceClass::Public),
                "172.32.5.0/24",
            ),
            (
                None,
                "100.64.0.1",
                Some(SourceClass::Private),
                "100.64.0.0/16",
            ),
            (
                None,
                "169.254.1.1",
                Some(SourceClass::Private),
                "169.254.0.0/16",
            ),
            (
                None,
                "127.0.0.1",
                Some(SourceClass::Private),
                "127.0.0.0/16",
            ),
            (
                None,
                "255.255.255.255",
                Some(SourceClass::Public),
                "255.255.255.0/24",
            ),
            (None, " 10.1.2.3", Some(SourceClass::Private), "10.1.0.0/16"),
            (None, "8.8.4.4 ", Some(SourceClass::Public), "8.8.4.0/24"),
            (Some("vpn"), "8.8.4.4", Some(SourceClass::Public), "net:vpn"),
            (None, "010.1.2.3", None, ""),
            (None, "1.2.3.256", None, ""),
            (None, "1.2.3", None, ""),
            (None, "1.2.3.4.5", None, ""),
            (None, "1.2.3.4:80", None, ""),
        ] {
            assert_eq!(source_network(named, Some(ip), &mut s), class, "{ip:?}");
            assert_eq!(s, text, "{ip:?}");
        }
    }

    #[test]
    fn user_agent_family_strips_versions() {
        let mut s = String::new();
        user_agent_family("aws-cli/2.15.1 Python/3.11.6 Linux/6.1", &mut s);
        assert_eq!(s, "aws-cli python linux");
        let mut t = String::new();
        user_agent_family("aws-cli/2.16.0 Python/3.12.1 Linux/6.5", &mut t);
        assert_eq!(s, t);
        user_agent_family("Boto3/1.34.2 md/Botocore#1.34.2", &mut s);
        assert_eq!(s, "boto");
        user_agent_family("curl/7.68.0", &mut s);
        assert_eq!(s, "curl");
        user_agent_family("", &mut s);
        assert_eq!(s, "unknown");
    }

    /// The hand-read dotted quad is only a shortcut: every text gets the address the
    /// standard parser gives, including the forms it refuses (leading zeros, a fourth
    /// digit, a fifth octet, a port).
    #[test]
    fn hand_read_addresses_agree_with_the_standard_parser() {
        for text in [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.02.3.4",
            "1.2.3.0",
            "1.2.3.00",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..3.4",
            ".1.2.3",
            "1.2.3.4:80",
            "1000.1.1.1",
            "1.2.3.4 ",
            "",
            "::ffff:1.2.3.4",
            "2001:db8::1",
            // The block read: the shortest and longest texts, a wrong byte at each end
            // of the two overlapping words (bytes 7 and 8), zeros, a sixteenth byte.
            "1.2.3.4",
            "1.2.3.4\0",
            "123.123.123.123",
            "123.123x123.123",
            "123.123.x23.123",
            "123.123.123.1234",
            "123.123.123.12\0",
            "199.199.199.199",
            "12.1.1.1",
            "1.1.1.12",
            "0.0.0.00",
        ] {
            assert_eq!(parse_ip(text), text.parse().ok(), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hand_read_addresses_agree_on_any_dotted_text(text in "[0-9.:a]{0,18}") {
            proptest::prop_assert_eq!(parse_ip(&text), text.parse().ok());
        }
    }

    /// Verbatim parts are copied in spans between placeholders: the header, words and
    /// separators come through whole, and a cut character at the length bound only at
    /// the very end.
    #[test]
    fn verbatim_spans_between_placeholders_are_kept_whole() {
        assert_eq!(
            g("arn:aws:s3:::team-123-data/records/456789/abcdef0123456789.json"),
            "arn:aws:s3:::team-{n}-data/records/{n}/{hex}.json"
        );
        assert_eq!(g("10.1.2.3:8443/é/ü"), "10.1.{n}.{n}:8443/é/ü");
        assert_eq!(g("/api/naïve/x"), "/api/naïve/x");
        let long = format!("{}é", "a/".repeat(255) + "b");
        assert_eq!(long.len(), MAX_DEST_LEN + 1);
        let general = g(&long);
        assert!(general.ends_with("a/b\u{fffd}"), "{general}");
        assert_eq!(general.chars().filter(|&c| c == '/').count(), 255);
    }
}
