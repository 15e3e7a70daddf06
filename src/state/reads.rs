//! The share of an identity's calls that read confidential or restricted data, and the
//! running evidence that it reads more of them than that: low-and-slow exfiltration.
//!
//! A thief holding a partner's API key who reads a few customer records an hour for a
//! day stays under every volume floor, and each record is of a kind the key reads
//! anyway, so nothing is new. What changes is the mix: hour after hour, most of the
//! key's calls are sensitive reads, where a quarter were before. The test is on the
//! *share* of the hour's calls, given their number (binomial), not on their count: a
//! sale day that triples a key's traffic keeps its mix, and is no evidence.
//!
//! The evidence is a one-sided CUSUM over clock hours of the log-likelihood ratio of a
//! share lifted halfway to all ([`LIFT`]) against the learned share. Each hour adds at
//! most [`HOUR_CAP`], so one hour of excess (a nightly export, a backfill's first hour)
//! cannot reach [`THRESHOLD`] alone: it takes hours. An identity whose mix swings
//! every day (a report job reading customer tables three hours each night) learns the
//! peak its evidence usually reaches, and is judged above that.
//!
//! Eleven bytes per identity, quantised; no IO, event time only.

use serde::{Deserialize, Serialize};

use super::identity::{dq16, q16};

/// What an hour keeps of the learned share's calls: a half-life of a week, slow enough
/// that a day of theft does not become the habit it is judged against. (`0.5^(1/168)`;
/// raised to whole hours with `powi`, which is cheaper than `powf` and runs at every
/// hour an identity closes.)
const KEEP_PER_HOUR: f64 = 0.995_882_623_658_297_4;
/// What an hour keeps of the usual peak: a half-life of four weeks (`0.5^(1/672)`), so a
/// weekly job's swing is still its usual one a week later (a week's half-life left half
/// of it, under the `1/PEAK_FACTOR` it needs).
const PEAK_KEEP_PER_HOUR: f64 = 0.998_969_062_762_623_5;
/// What an idle hour (no calls) keeps of the evidence: a half-life of twelve hours. An
/// excess is hours of reading in a row; evidence left from before a long silence must
/// not make one hour after it a finding.
const EVIDENCE_KEEP_PER_IDLE_HOUR: f64 = 0.943_874_312_681_693_5;
/// How much an hour's calls count towards the share while the evidence is past the
/// threshold: a tenth, so hours of theft hardly move the share they are judged against,
/// while a lasting change of the mix is still learned, over weeks.
const EXCESS_LEARNING: f64 = 0.1;
/// Calls the share must be learned from before it is judged.
const MIN_CALLS: f64 = 40.0;
/// The alternative share: the learned one lifted this far towards "every call".
const LIFT: f64 = 0.5;
/// Most evidence one hour adds (nats).
pub const HOUR_CAP: f64 = 4.0;
/// Sensitive reads an hour needs before it counts as evidence for (not against) a
/// shift: one or two reads at a quiet hour are a share of 100 % by chance.
const MIN_HOUR_READS: u32 = 3;
/// Evidence (nats) at which the excess is a finding: three hours at the cap, or more
/// hours of a smaller excess.
pub const THRESHOLD: f64 = 12.0;
/// The evidence must also exceed the identity's usual peak by this factor.
pub const PEAK_FACTOR: f64 = 1.5;
/// The most a peak teaches (nats): a daily swing of a few hours reaches 16 at most, but a
/// day-long theft reaches the cap, and must not hide the next one for months.
const PEAK_LEARNED_AT_MOST: f64 = 1.5 * THRESHOLD;
/// The most evidence there is (nats): a finding's strength is full at twice the
/// threshold, and evidence beyond that would only take days to drain once the excess
/// ends, during which a reported excess stays reported.
const EVIDENCE_CAP: f64 = 3.0 * THRESHOLD;
/// Fixed-point scale of the evidence and its usual peak (nats × 256, up to 256 nats).
const EVIDENCE_SCALE: f64 = 256.0;

/// See the module documentation. The fields are quantised to keep the state small;
/// [`SensitiveReads::excess`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensitiveReads {
    /// Calls behind `share`, decayed with [`KEEP_PER_HOUR`], on the log scale of
    /// [`q16`] (exact to 0.05 %, up to far more calls than a week holds).
    calls: u16,
    /// Share of those calls that were sensitive reads, × 65,535.
    share: u16,
    /// Sensitive reads in the clock hour in progress (the identity's `hour`).
    hour_reads: u16,
    /// The CUSUM, nats × [`EVIDENCE_SCALE`].
    evidence: u16,
    /// The highest the evidence reached before falling back, decayed with
    /// [`PEAK_KEEP_PER_HOUR`]; same scale.
    usual_peak: u16,
    /// Clock hours closed since the evidence last was zero (low seven bits, saturating),
    /// and [`REPORTED`].
    hours: u8,
}

/// Bit of [`SensitiveReads::hours`]: this excess made the identity alert already.
const REPORTED: u8 = 0x80;

/// Where an identity's sensitive reads stand at one call: see
/// [`SensitiveReads::excess`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Excess {
    /// The evidence with the hour so far counted (nats).
    pub evidence: f64,
    /// The usual peak of the evidence (nats).
    pub usual_peak: f64,
    /// The learned share of sensitive reads, 0-1.
    pub share: f64,
    /// Sensitive reads of the hour so far.
    pub hour_reads: u32,
    /// Calls of the hour so far.
    pub hour_calls: u32,
    /// Hours with calls the evidence has been building over, this one included.
    pub hours: u32,
    /// This excess made the identity alert already (see [`SensitiveReads::mark_reported`]).
    pub reported: bool,
}

impl SensitiveReads {
    /// Remembers that the excess under way made the identity alert, so hours of
    /// continued reading do not alert again every hour. Forgotten when the evidence is
    /// back to zero.
    pub fn mark_reported(&mut self) {
        self.hours |= REPORTED;
    }

    /// Counts one sensitive read in the hour in progress.
    pub fn note_read(&mut self) {
        self.hour_reads = self.hour_reads.saturating_add(1);
    }

    fn learned_share(&self) -> Option<f64> {
        self.learned_share_of(dq16(self.calls))
    }

    /// [`SensitiveReads::learned_share`] with `calls` (what `self.calls` stands for)
    /// already dequantised: closing an hour needs it twice, and it is a library call.
    fn learned_share_of(&self, calls: f64) -> Option<f64> {
        (calls >= MIN_CALLS).then(|| {
            let reads = f64::from(self.share) / 65_535.0 * calls;
            // A half read of prior keeps a share learned as 0 from making one read
            // infinitely surprising.
            (reads + 0.5) / (calls + 1.0)
        })
    }

    /// Closes the hour in progress, which had `calls` calls, `elapsed` hours before the
    /// next one opens. The evidence runs while the identity learns too (only findings
    /// wait for it to be active), so the peak a daily swing of its mix reaches is known
    /// before it is judged.
    pub fn close_hour(&mut self, calls: u32, elapsed: i64) {
        let reads = u32::from(self.hour_reads).min(calls);
        // With no evidence and too few reads to add any, the evidence stays at zero: the
        // usual case (most identities read nothing sensitive), without the logarithms.
        let idle = self.evidence == 0 && reads < MIN_HOUR_READS;
        let in_excess = self.evidence() >= THRESHOLD;
        let learned_calls = dq16(self.calls);
        match self.learned_share_of(learned_calls) {
            Some(share) if !idle => {
                let before = self.evidence();
                let after = (before + hour_evidence(share, calls, reads)).clamp(0.0, EVIDENCE_CAP);
                // Falling back: the peak just left is the kind of swing this identity
                // makes, up to [`PEAK_LEARNED_AT_MOST`].
                if after < before {
                    let peak = self.evidence.min(quantise(PEAK_LEARNED_AT_MOST));
                    self.usual_peak = self.usual_peak.max(peak);
                }
                self.evidence = quantise(after);
                self.hours =
                    ((self.hours & !REPORTED) + 1).min(!REPORTED) | (self.hours & REPORTED);
            }
            _ => {}
        }
        // Hours without calls before the next one: the evidence fades.
        let idle_hours = elapsed.clamp(1, 24 * 70) - 1;
        if idle_hours > 0 && self.evidence != 0 {
            let kept =
                f64::from(self.evidence) * EVIDENCE_KEEP_PER_IDLE_HOUR.powi(idle_hours as i32);
            self.evidence = to_u16(kept);
        }
        if self.evidence == 0 {
            // No excess under way: nothing building, nothing reported.
            self.hours = 0;
        }
        let hours = elapsed.clamp(1, 24 * 70) as i32;
        if self.usual_peak != 0 {
            self.usual_peak = to_u16(f64::from(self.usual_peak) * PEAK_KEEP_PER_HOUR.powi(hours));
        }
        let weight = if in_excess { EXCESS_LEARNING } else { 1.0 };
        let old_calls = learned_calls * KEEP_PER_HOUR.powi(hours);
        let new_calls = f64::from(calls) * weight;
        let total = old_calls + new_calls;
        // An identity that never read anything sensitive keeps a share of zero.
        if (self.share != 0 || reads != 0) && total > 0.0 {
            let old_reads = f64::from(self.share) / 65_535.0 * old_calls;
            let new_reads = f64::from(reads) * weight;
            self.share = to_u16((old_reads + new_reads) / total * 65_535.0);
        }
        self.calls = q16(total);
        self.hour_reads = 0;
    }

    /// The evidence as it stands at a call that is the `hour_calls`-th of its clock hour
    /// with `hour_reads` sensitive reads so far (this call included), or `None` while
    /// the share is not learned. `pending`: when the call opens a later hour, the calls
    /// of the identity's hour still open and the hours from it to the call's (that hour's
    /// evidence is counted first, as closing it will).
    pub fn excess(
        &self,
        pending: Option<(u32, i64)>,
        hour_calls: u32,
        read_now: bool,
    ) -> Option<Excess> {
        let mut now = *self;
        if let Some((calls, elapsed)) = pending {
            now.close_hour(calls, elapsed);
        }
        let share = now.learned_share()?;
        let hour_reads = (u32::from(now.hour_reads) + u32::from(read_now)).min(hour_calls);
        let evidence = (now.evidence() + hour_evidence(share, hour_calls, hour_reads)).max(0.0);
        Some(Excess {
            evidence,
            usual_peak: f64::from(now.usual_peak) / EVIDENCE_SCALE,
            share,
            hour_reads,
            hour_calls,
            hours: u32::from(now.hours & !REPORTED) + 1,
            reported: now.hours & REPORTED != 0,
        })
    }

    fn evidence(&self) -> f64 {
        f64::from(self.evidence) / EVIDENCE_SCALE
    }
}

impl Excess {
    /// Whether the evidence is a finding: past [`THRESHOLD`] and well past the usual peak.
    pub fn is_finding(&self) -> bool {
        self.evidence >= THRESHOLD && self.evidence >= PEAK_FACTOR * self.usual_peak
    }
}

/// One hour's log-likelihood ratio, `reads` of `calls` sensitive, of the lifted share
/// against `share`; at most [`HOUR_CAP`], and never for the shift with fewer than
/// [`MIN_HOUR_READS`] reads.
fn hour_evidence(share: f64, calls: u32, reads: u32) -> f64 {
    let lifted = share + (1.0 - share) * LIFT;
    let reads_f = f64::from(reads);
    let others = f64::from(calls.saturating_sub(reads));
    let llr = reads_f * (lifted / share).ln() + others * ((1.0 - lifted) / (1.0 - share)).ln();
    let llr = llr.min(HOUR_CAP);
    if reads < MIN_HOUR_READS {
        llr.min(0.0)
    } else {
        llr
    }
}

fn quantise(nats: f64) -> u16 {
    to_u16(nats * EVIDENCE_SCALE)
}

/// `x` (not negative) rounded to the nearest `u16`, saturating (`as` saturates; adding a
/// half and truncating is cheaper than `round`, which is a library call on baseline
/// x86-64).
fn to_u16(x: f64) -> u16 {
    (x + 0.5) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hours` hours with `calls` calls each, `reads` of them sensitive; returns the
    /// largest evidence seen.
    fn run(r: &mut SensitiveReads, hours: usize, calls: u32, reads: u32) -> f64 {
        let mut most: f64 = 0.0;
        for _ in 0..hours {
            for _ in 0..reads {
                r.note_read();
            }
            if let Some(x) = r.excess(None, calls, false) {
                most = most.max(x.evidence);
            }
            r.close_hour(calls, 1);
        }
        most
    }

    /// A week of 8 calls an hour, 2 of them sensitive reads: the usual mix most tests
    /// start from.
    fn usual_week() -> SensitiveReads {
        let mut r = SensitiveReads::default();
        run(&mut r, 168, 8, 2);
        r
    }

    #[test]
    fn a_sustained_shift_of_the_mix_builds_evidence() {
        let mut r = usual_week();
        assert!(r.evidence() < 2.0, "{r:?}");
        // Then 5 more customer reads an hour for 6 hours.
        let most = run(&mut r, 6, 13, 7);
        assert!(most >= THRESHOLD, "{most} {r:?}");
        let x = r.excess(None, 1, true).expect("learned");
        assert!(x.is_finding(), "{x:?}");
        assert!(x.hours >= 6, "{x:?}");
    }

    #[test]
    fn a_reported_excess_is_remembered_until_it_ends() {
        let mut r = usual_week();
        run(&mut r, 4, 13, 7);
        r.mark_reported();
        run(&mut r, 3, 13, 7);
        let x = r.excess(None, 1, true).expect("learned");
        assert!(x.is_finding() && x.reported && x.hours == 8, "{x:?}");
        // Back to the usual mix: the evidence drains, and the next excess is news, but
        // judged against the peak the last one reached.
        run(&mut r, 48, 8, 2);
        assert_eq!(r.evidence, 0);
        assert!(r.excess(None, 1, false).expect("learned").usual_peak > THRESHOLD * 0.75);
        run(&mut r, 14, 13, 7);
        let x = r.excess(None, 1, true).expect("learned");
        assert!(x.is_finding() && !x.reported, "{x:?}");
    }

    #[test]
    fn an_alert_with_no_excess_under_way_reports_nothing_later() {
        let mut r = usual_week();
        // Alerted on something else at a sensitive read, with the mix as usual.
        r.mark_reported();
        run(&mut r, 1, 8, 2);
        run(&mut r, 8, 13, 7);
        let x = r.excess(None, 1, true).expect("learned");
        assert!(x.is_finding() && !x.reported, "{x:?}");
    }

    #[test]
    fn the_usual_mix_stays_quiet_and_more_calls_of_it_too() {
        let mut r = usual_week();
        // A sale day: three times the calls, the same mix.
        let most = run(&mut r, 12, 24, 6);
        assert!(most < 1.0, "{most} {r:?}");
    }

    #[test]
    fn one_hour_of_excess_is_not_enough() {
        let mut r = SensitiveReads::default();
        run(&mut r, 168, 8, 1);
        let most = run(&mut r, 1, 40, 40);
        assert!(most <= HOUR_CAP + 1e-9, "{most}");
        assert!(!r.excess(None, 1, true).expect("learned").is_finding());
    }

    #[test]
    fn a_daily_swing_becomes_the_usual_peak() {
        // A report job: 20 hours of 10 calls with one read, then 4 hours of reads.
        let (first, quiet, r) = swings(20, 13);
        assert!(first >= THRESHOLD, "the first swing is news: {first}");
        assert!(quiet, "{r:?}");
    }

    /// A job whose mix swings: `usual_hours` of 10 calls with one read, then 4 hours of
    /// reads only; then `again` more such rounds. The first swing's evidence, and
    /// whether every later one stayed below a finding.
    fn swings(usual_hours: usize, again: usize) -> (f64, bool, SensitiveReads) {
        let mut r = SensitiveReads::default();
        run(&mut r, usual_hours, 10, 1);
        let first = run(&mut r, 4, 10, 10);
        let mut quiet = true;
        for _ in 0..again {
            run(&mut r, usual_hours, 10, 1);
            for _ in 0..4 {
                for _ in 0..10 {
                    r.note_read();
                }
                quiet &= !r.excess(None, 10, false).expect("learned").is_finding();
                r.close_hour(10, 1);
            }
        }
        (first, quiet, r)
    }

    #[test]
    fn a_share_of_all_calls_is_no_excess() {
        let mut r = SensitiveReads::default();
        run(&mut r, 48, 8, 8);
        // The prior's half read keeps the learned share a hair under 1: a little drift.
        assert!(r.evidence() < 1.0, "{r:?}");
        let share = r.learned_share().expect("learned");
        assert!(share > 0.95, "{share}");
        assert!(r.excess(None, 5, true).expect("learned").evidence < 1e-9);
    }

    #[test]
    fn the_hourly_keeps_are_the_half_lives_they_say() {
        assert!((KEEP_PER_HOUR.powi(168) - 0.5).abs() < 1e-12);
        assert!((PEAK_KEEP_PER_HOUR.powi(672) - 0.5).abs() < 1e-12);
        assert!((EVIDENCE_KEEP_PER_IDLE_HOUR.powi(12) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_weekly_swing_becomes_the_usual_peak_too() {
        // 10 calls an hour with one read, and once a week four hours of reads only.
        let (first, quiet, r) = swings(164, 5);
        assert!(first >= THRESHOLD, "the first is news: {first}");
        assert!(quiet, "{r:?}");
    }

    #[test]
    fn evidence_fades_over_a_silence() {
        let mut r = usual_week();
        run(&mut r, 3, 13, 7);
        let before = r.evidence();
        assert!(before > HOUR_CAP, "{r:?}");
        // Three weeks without a call, then one hour of reads: not a finding.
        r.close_hour(0, 21 * 24);
        assert!(r.evidence() < 0.01, "{r:?}");
        run(&mut r, 1, 5, 4);
        assert!(!r.excess(None, 1, true).expect("learned").is_finding());
    }

    #[test]
    fn days_of_theft_hardly_move_the_share_and_the_peak_they_are_judged_against() {
        let mut r = usual_week();
        run(&mut r, 75, 13, 7);
        // Counted in full, 75 hours of 7 reads in 13 calls would take the share from
        // 0.25 to 0.35.
        let share = r.excess(None, 1, false).expect("learned").share;
        assert!(share < 0.30, "{share}");
        // Four days later the same theft is found again within a day.
        run(&mut r, 96, 8, 2);
        let most = run(&mut r, 24, 13, 7);
        let x = r.excess(None, 1, true).expect("learned");
        assert!(x.is_finding(), "{most} {x:?}");
    }

    #[test]
    fn a_busy_identity_remembers_its_share_for_a_week() {
        let mut r = SensitiveReads::default();
        // 20,000 calls an hour, a quarter of them reads, for a week: then a day of half.
        run(&mut r, 168, 20_000, 5_000);
        run(&mut r, 24, 20_000, 10_000);
        let share = r.excess(None, 1, false).expect("learned").share;
        assert!(share < 0.30, "{share}");
    }

    #[test]
    fn too_few_calls_are_not_judged() {
        let mut r = SensitiveReads::default();
        run(&mut r, 3, 10, 1);
        assert!(r.excess(None, 10, true).is_none());
    }

    #[test]
    fn a_pending_hour_is_counted_before_the_next() {
        let mut r = usual_week();
        run(&mut r, 3, 13, 7);
        for _ in 0..7 {
            r.note_read();
        }
        let open = r.excess(None, 13, false).expect("learned").evidence;
        let next = r.excess(Some((13, 1)), 1, true).expect("learned").evidence;
        // Closing the hour keeps its evidence; one read in the next adds nothing yet.
        assert!((open - next).abs() < 0.01, "{open} {next}");
    }
}
