//! Glob matching (`*` any run, `?` one character) for the rules operators write:
//! sensitivity rules, `score.impair_defences` and policy rules.
//!
//! The matching is `wildmatch`'s, exactly: a [`Glob`] is a `WildMatch` plus a faster
//! path for the shapes rules are written in. Sensitivity rules are matched on every call
//! that meets something new, and with `wildmatch`'s char-by-char backtracking a dozen
//! `*secret*`-style rules cost ~800 instructions per event on replayed traffic, more
//! than generalising the destination. A pattern of literal pieces between `*`s (no `?`)
//! is matched by plain substring searches instead, which gives the same answer: greedy
//! leftmost placement of each piece is optimal when the only wildcard is `*`. Anything
//! else (a `?`, or case-insensitive matching of non-ASCII text, where characters are
//! compared by their Unicode lowercase forms) goes to `wildmatch`.

use memchr::memmem::Finder;
use wildmatch::WildMatch;

/// A compiled glob; see the module header.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: WildMatch,
    fast: Option<StarPieces>,
}

/// A pattern that is literal pieces separated by `*` (ASCII only when case-insensitive).
#[derive(Debug, Clone)]
struct StarPieces {
    /// The pattern split at `*`: at least one piece; the first is anchored at the start
    /// and the last at the end (an empty one anchors nothing).
    pieces: Vec<String>,
    /// Searchers for the pieces between the first and the last; empty when
    /// case-insensitive (those pieces are compared ignoring ASCII case instead).
    finders: Vec<Finder<'static>>,
    case_insensitive: bool,
}

impl Glob {
    /// A case-sensitive glob.
    pub fn new(pattern: &str) -> Self {
        Self::compile(pattern, false)
    }

    /// A case-insensitive glob: characters compared by their Unicode lowercase forms, as
    /// `wildmatch` does it (one character to one, not full case folding: `ß` is not `ss`).
    pub fn new_case_insensitive(pattern: &str) -> Self {
        Self::compile(pattern, true)
    }

    fn compile(pattern: &str, case_insensitive: bool) -> Self {
        let matcher = if case_insensitive {
            WildMatch::new_case_insensitive(pattern)
        } else {
            WildMatch::new(pattern)
        };
        let fast =
            (!pattern.contains('?') && (!case_insensitive || pattern.is_ascii())).then(|| {
                let pieces: Vec<String> = pattern.split('*').map(str::to_owned).collect();
                let middle = pieces.get(1..pieces.len().saturating_sub(1)).unwrap_or(&[]);
                let finders = if case_insensitive {
                    Vec::new()
                } else {
                    middle
                        .iter()
                        .map(|p| Finder::new(p.as_bytes()).into_owned())
                        .collect()
                };
                StarPieces {
                    finders,
                    pieces,
                    case_insensitive,
                }
            });
        Glob { matcher, fast }
    }

    /// Whether the whole of `input` matches.
    pub fn matches(&self, input: &str) -> bool {
        match &self.fast {
            // Case-insensitive text that is not all ASCII may fold in ways bytes cannot
            // see (the Kelvin sign folds to `k`).
            Some(star) if !star.case_insensitive || input.is_ascii() => star.matches(input),
            _ => self.matcher.matches(input),
        }
    }
}

impl StarPieces {
    fn matches(&self, input: &str) -> bool {
        let input = input.as_bytes();
        let eq = |a: &[u8], b: &[u8]| {
            if self.case_insensitive {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let Some((first, rest)) = self.pieces.split_first() else {
            return input.is_empty();
        };
        let first = first.as_bytes();
        let Some((last, middle)) = rest.split_last() else {
            // No `*`: the whole input.
            return eq(first, input);
        };
        let last = last.as_bytes();
        // The anchored ends must fit without overlapping.
        if input.len() < first.len() + last.len()
            || !eq(&input[..first.len()], first)
            || !eq(&input[input.len() - last.len()..], last)
        {
            return false;
        }
        let mut between = &input[first.len()..input.len() - last.len()];
        for (i, piece) in middle.iter().enumerate() {
            let found = match self.finders.get(i) {
                Some(finder) => finder.find(between),
                None => find_ignoring_ascii_case(between, piece.as_bytes()),
            };
            match found {
                Some(at) => between = &between[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The first position of `needle` in `haystack`, ASCII case ignored (both are ASCII
/// here). Case-sensitive pieces use a [`Finder`]: on valid UTF-8 a match of one can only
/// start on a character boundary, so bytes and chars agree.
fn find_ignoring_ascii_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let last_start = haystack.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| haystack[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both ways of building, each checked against `wildmatch` itself.
    fn agree(pattern: &str, input: &str) {
        let sensitive = Glob::new(pattern).matches(input);
        assert_eq!(
            sensitive,
            WildMatch::new(pattern).matches(input),
            "case-sensitive {pattern:?} on {input:?}"
        );
        let insensitive = Glob::new_case_insensitive(pattern).matches(input);
        assert_eq!(
            insensitive,
            WildMatch::new_case_insensitive(pattern).matches(input),
            "case-insensitive {pattern:?} on {input:?}"
        );
    }

    #[test]
    fn rule_shapes_match_as_wildmatch_does() {
        let patterns = [
            "",
            "*",
            "**",
            "*secret*",
            "*/cards/*",
            "secret*",
            "*secret",
            "a*b*c",
            "a**b",
            "ab*ba",
            "aa*aa",
            "iam:CreateAccessKey",
            "s3:*",
            "*:Delete*",
            "a?c",
            "*?",
            "K*",
        ];
        let inputs = [
            "",
            "a",
            "aa",
            "aaa",
            "aba",
            "abba",
            "abcabc",
            "secret",
            "my-secret-store",
            "SECRET",
            "arn:aws:s3:::bucket/cards/1",
            "/cards/",
            "iam:createaccesskey",
            "IAM:CREATEACCESSKEY",
            "s3:GetObject",
            "ec2:DeleteVpc",
            "\u{212a}elvin",
            "kelvin",
            "naïve-secret",
            "é",
        ];
        for p in patterns {
            for i in inputs {
                agree(p, i);
            }
        }
    }

    #[test]
    fn anchored_ends_do_not_overlap() {
        // `aa*aa` needs four characters: the start and the end cannot share one.
        assert!(!Glob::new("aa*aa").matches("aaa"));
        assert!(Glob::new("aa*aa").matches("aaaa"));
        assert!(!Glob::new("ab*ba").matches("aba"));
    }

    #[test]
    fn case_insensitive_non_ascii_folds_as_unicode() {
        // The Kelvin sign folds to `k`: only Unicode folding sees it.
        assert!(Glob::new_case_insensitive("kelvin").matches("\u{212a}elvin"));
        assert!(!Glob::new("kelvin").matches("\u{212a}elvin"));
        // Lowercase forms, not full case folding: `ß` folds to `ss` but lowercases to
        // itself, and the long s lowercases to itself though it folds to `s`.
        assert!(!Glob::new_case_insensitive("ss").matches("ß"));
        assert!(!Glob::new_case_insensitive("*s*").matches("\u{17f}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Small alphabets, so pieces repeat and overlap and backtracking matters.
        #[test]
        fn agrees_with_wildmatch(
            pattern in "[ab*?K]{0,7}",
            input in "[abAB\u{212a}é]{0,9}",
        ) {
            agree(&pattern, &input);
        }

        #[test]
        fn agrees_with_wildmatch_on_longer_text(
            pattern in "[a-c/:*]{0,10}",
            input in "[a-cA-C/:]{0,24}",
        ) {
            agree(&pattern, &input);
        }
    }
}
