//! Score combination, decay, levels and the emission rule (design §4, §5).
//!
//! Detector strengths are weighted (`[detectors]`) and scaled by the destination's
//! sensitivity (`[sensitivity]`), then combined with a noisy-OR: each finding is an
//! independent chance that something is wrong, so two or three moderate signs together
//! reach `high` while one weak sign stays low. The one pair that is not independent is
//! the two volume detectors: a bigger batch (a backfill, a month-end run) raises the
//! event count and the bytes moved together, so the weaker of the two counts at
//! [`SECOND_VOLUME_SHARE`]. The identity's score is the maximum of
//! that and its previous score decayed with `score.half_life` in event time; it is never
//! renormalised afterwards, so the same history always gives the same answer.

use crate::config::{Config, SensitivityRules};
use crate::detect::{Finding, COUNT, DATA_VOLUME_SPIKE, NAMES, OFF_HOURS, VOLUME_SPIKE};
use crate::event::{ActivityEvent, Sensitivity};
use crate::glob::Glob;
use crate::signal::{Level, Reason};

/// Highest probability one finding may contribute: keeps the noisy-OR below 100 unless
/// several signs agree.
const MAX_P: f64 = 0.95;

/// Share of the weaker volume sign (events or bytes) that adds to the stronger: both
/// measure how much the identity does, so counting each in full made a job's bigger
/// run look like two findings (a 10x month-end batch alone reached `high`). Exfiltration
/// still gets the stronger sign in full, and the rest of its evidence (new
/// destinations, off hours) from the other detectors.
const SECOND_VOLUME_SHARE: f64 = 0.5;

/// The `score.impair_defences` entry an event matched: its position in the list, and
/// whether it names a destination (then the call is new when its action or its
/// destination is; an action entry, when its action is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpairMatch {
    pub entry: usize,
    pub targeted: bool,
}

pub struct Scorer {
    weights: [f64; COUNT],
    rules: SensitivityRules,
    /// `score.impair_defences`, case-insensitive: action, and destination for targets.
    impair_defences: Vec<(Glob, Option<Glob>)>,
    default: Sensitivity,
    scales: [f64; 4],
    half_life_ms: f64,
    pub emit_step: f64,
    thresholds: [f64; 3],
    /// `score.level_hold`.
    level_hold: f64,
    /// `score.off_hours_write_weight`.
    off_hours_write_weight: f64,
}

impl Scorer {
    pub fn new(config: &Config) -> Self {
        let mut weights = [0.0; COUNT];
        for (i, (_, w)) in config.detectors.weights().iter().enumerate() {
            weights[i] = *w;
        }
        let s = &config.sensitivity;
        Scorer {
            weights,
            rules: SensitivityRules::new(&s.rules),
            impair_defences: config
                .score
                .impair_defences
                .iter()
                .map(|p| {
                    let (action, destination) = p.globs();
                    (
                        Glob::new_case_insensitive(action.trim()),
                        destination.map(|d| Glob::new_case_insensitive(d.trim())),
                    )
                })
                .collect(),
            default: s.default,
            scales: [
                s.scale_public,
                s.scale_internal,
                s.scale_confidential,
                s.scale_restricted,
            ],
            half_life_ms: config.score.half_life.as_millis_i64().max(1) as f64,
            emit_step: config.score.emit_step,
            level_hold: config.score.level_hold,
            off_hours_write_weight: config.score.off_hours_write_weight,
            thresholds: [
                config.score.elevated,
                config.score.high,
                config.score.critical,
            ],
        }
    }

    /// The event's own sensitivity, else the first matching rule, else the default.
    pub fn sensitivity(&self, event: &ActivityEvent) -> Sensitivity {
        if let Some(s) = event.sensitivity {
            return s;
        }
        self.rules
            .classify(&event.action, &event.destination)
            .unwrap_or(self.default)
    }

    /// Whether any `score.impair_defences` entry's action glob matches `action` (the
    /// destination left aside): the cheap pre-check before [`Scorer::impairs_defences`].
    pub fn may_impair_defences(&self, action: &str) -> bool {
        self.impair_defences.iter().any(|(a, _)| a.matches(action))
    }

    /// Whether an event impairs logging or detection (`score.impair_defences`): by its
    /// action alone, or by its action on a listed destination. A destination entry that
    /// matches wins over an action entry.
    pub fn impairs_defences(&self, action: &str, destination: &str) -> Option<ImpairMatch> {
        let mut found = None;
        for (entry, (a, d)) in self.impair_defences.iter().enumerate() {
            if !a.matches(action) {
                continue;
            }
            match d {
                None => {
                    found = found.or(Some(ImpairMatch {
                        entry,
                        targeted: false,
                    }))
                }
                Some(d) if d.matches(destination) => {
                    return Some(ImpairMatch {
                        entry,
                        targeted: true,
                    })
                }
                Some(_) => {}
            }
        }
        found
    }

    fn scale(&self, s: Sensitivity) -> f64 {
        self.scales[s as usize]
    }

    /// Instantaneous risk in [0, 100] from the findings (noisy-OR of weighted, scaled
    /// strengths).
    pub fn combine(&self, findings: &[Option<Finding>; COUNT], sensitivity: Sensitivity) -> f64 {
        self.combine_with(findings, sensitivity, false)
    }

    /// [`Scorer::combine`]; `off_hours_write`: the call writes somewhere new at an hour
    /// the identity does not work, and its off-hours sign weighs
    /// `score.off_hours_write_weight` when that is more than the detector's own weight.
    pub fn combine_with(
        &self,
        findings: &[Option<Finding>; COUNT],
        sensitivity: Sensitivity,
        off_hours_write: bool,
    ) -> f64 {
        self.combine_scaled(findings, &[sensitivity; COUNT], off_hours_write)
    }

    /// [`Scorer::combine_with`] with a sensitivity per finding: the engine scales a
    /// finding that holds a sign carried from earlier in the session by the highest
    /// sensitivity among the session's calls whose signs are carried, when that is
    /// higher than the current call's, so a restricted read followed by an internal
    /// call is not marked down.
    pub fn combine_scaled(
        &self,
        findings: &[Option<Finding>; COUNT],
        sensitivities: &[Sensitivity; COUNT],
        off_hours_write: bool,
    ) -> f64 {
        let mut keep = 1.0;
        let mut p_of = [0.0; COUNT];
        for (i, f) in findings.iter().enumerate() {
            if let Some(f) = f {
                let mut weight = self.weights[i];
                if off_hours_write && i == OFF_HOURS && weight > 0.0 {
                    weight = weight.max(self.off_hours_write_weight);
                }
                let scale = self.scale(sensitivities[i]);
                p_of[i] = (weight * f.strength * scale).clamp(0.0, MAX_P);
            }
        }
        let (pv, pd) = (p_of[VOLUME_SPIKE], p_of[DATA_VOLUME_SPIKE]);
        p_of[VOLUME_SPIKE] = pv.max(pd);
        p_of[DATA_VOLUME_SPIKE] = pv.min(pd) * SECOND_VOLUME_SHARE;
        for p in p_of {
            keep *= 1.0 - p;
        }
        round1((1.0 - keep) * 100.0).clamp(0.0, 100.0)
    }

    /// Reasons for a signal: non-zero-weight findings, strongest first (name breaks ties).
    pub fn reasons(&self, findings: &[Option<Finding>; COUNT]) -> Vec<Reason> {
        let mut out: Vec<Reason> = findings
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let f = f.as_ref()?;
                (self.weights[i] > 0.0).then(|| Reason {
                    detector: NAMES[i].to_string(),
                    strength: (f.strength * 100.0).round() / 100.0,
                    detail: f.detail.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.strength
                .total_cmp(&a.strength)
                .then_with(|| a.detector.cmp(&b.detector))
        });
        out
    }

    /// Whether detector `i` counts (weight above zero).
    pub fn enabled(&self, i: usize) -> bool {
        self.weights[i] > 0.0
    }

    /// `score` set at `from_ms`, decayed to `to_ms` (never grows; earlier times return
    /// the score unchanged).
    pub fn decayed(&self, score: f64, from_ms: i64, to_ms: i64) -> f64 {
        // Most identities sit at zero: skip the `powf` (a zero times a factor in (0, 1]
        // is that same zero, sign included).
        if score == 0.0 {
            return score;
        }
        let dt = (to_ms - from_ms).max(0) as f64;
        score * 0.5f64.powf(dt / self.half_life_ms)
    }

    /// The lowest score at level `high`.
    pub fn high_threshold(&self) -> f64 {
        self.thresholds[1]
    }

    pub fn level(&self, score: f64) -> Level {
        if score >= self.thresholds[2] {
            Level::Critical
        } else if score >= self.thresholds[1] {
            Level::High
        } else if score >= self.thresholds[0] {
            Level::Elevated
        } else {
            Level::Normal
        }
    }

    /// The level to publish for `score` when `published` was published last: a level
    /// is held until the score falls `score.level_hold` below its threshold, so a score
    /// hovering at a threshold does not leave and re-enter the level with every call.
    pub fn held_level(&self, score: f64, published: Option<Level>) -> Level {
        let plain = self.level(score);
        match published {
            Some(before) if before > plain => before.min(self.level(score + self.level_hold)),
            _ => plain,
        }
    }

    /// `score.level_hold`.
    pub fn level_hold(&self) -> f64 {
        self.level_hold
    }

    /// Lower bound of `level`'s band.
    fn floor_of(&self, level: Level) -> f64 {
        match level {
            Level::Normal => 0.0,
            Level::Elevated => self.thresholds[0],
            Level::High => self.thresholds[1],
            Level::Critical => self.thresholds[2],
        }
    }

    /// When the decay of `score` (set at `score_ms`, last published as `emitted` at
    /// `level`) next warrants a signal: it drops `emit_step` below `emitted` or leaves
    /// `level` (its floor minus `score.level_hold`). `None` once the level is `normal`
    /// (decay within `normal` is not published).
    pub fn next_decay_due(
        &self,
        score: f64,
        score_ms: i64,
        emitted: f64,
        level: Level,
    ) -> Option<i64> {
        // Not finite: nothing sensible to schedule (and `as i64` would saturate).
        if level == Level::Normal || score <= 0.0 || !score.is_finite() || !emitted.is_finite() {
            return None;
        }
        // Just below where the level is left, or one step below the published value.
        let target = (emitted - self.emit_step).max(self.floor_of(level) - self.level_hold - 0.05);
        if target <= 0.0 {
            return None;
        }
        let dt = self.half_life_ms * (score / target).log2().max(0.0);
        Some(score_ms.saturating_add(dt.ceil() as i64).saturating_add(1))
    }
}

/// Scores are published with one decimal, and compared as published.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> Scorer {
        Scorer::new(&Config::default_config().expect("defaults"))
    }

    fn finding(s: f64) -> Option<Finding> {
        Finding::new(s, "x".into())
    }

    fn with(pairs: &[(usize, f64)]) -> [Option<Finding>; COUNT] {
        let mut f: [Option<Finding>; COUNT] = Default::default();
        for &(i, s) in pairs {
            f[i] = finding(s);
        }
        f
    }

    #[test]
    fn no_decay_is_scheduled_from_a_score_that_is_not_a_number() {
        let s = scorer();
        assert_eq!(
            s.next_decay_due(f64::INFINITY, 0, 50.0, Level::Elevated),
            None
        );
        assert_eq!(s.next_decay_due(f64::NAN, 0, 50.0, Level::Elevated), None);
        assert_eq!(
            s.next_decay_due(50.0, i64::MAX - 1, 50.0, Level::Elevated),
            Some(i64::MAX)
        );
    }

    #[test]
    fn single_weak_sign_stays_below_high_and_combination_reaches_it() {
        let s = scorer();
        use crate::detect::*;
        for (i, name) in NAMES.iter().enumerate() {
            let one = s.combine(&with(&[(i, 0.6)]), Sensitivity::Internal);
            assert!(one < 60.0, "{name} alone at 0.6 gives {one}");
        }
        let attack = with(&[(NEW_SOURCE, 0.9), (NEW_ACTION, 0.6), (OFF_HOURS, 0.6)]);
        let score = s.combine(&attack, Sensitivity::Internal);
        assert!(score >= 60.0, "{score}");
        let two = with(&[(NEW_DESTINATION, 0.7), (OFF_HOURS, 0.8)]);
        assert!(s.combine(&two, Sensitivity::Internal) >= 55.0);
    }

    #[test]
    fn a_published_level_is_held_until_the_score_falls_clearly_below_it() {
        let s = scorer();
        assert_eq!(
            s.held_level(59.9, None),
            Level::Elevated,
            "nothing held yet"
        );
        assert_eq!(s.held_level(59.9, Some(Level::High)), Level::High);
        assert_eq!(s.held_level(55.0, Some(Level::High)), Level::High);
        assert_eq!(s.held_level(54.9, Some(Level::High)), Level::Elevated);
        assert_eq!(s.held_level(79.9, Some(Level::Critical)), Level::High);
        assert_eq!(s.held_level(81.0, Some(Level::Critical)), Level::Critical);
        // Rising is never held back.
        assert_eq!(s.held_level(60.0, Some(Level::Elevated)), Level::High);
        assert_eq!(s.held_level(90.0, Some(Level::Normal)), Level::Critical);
        // Decay is scheduled to where the held level is left.
        let due = s
            .next_decay_due(60.0, 0, 60.0, Level::High)
            .expect("scheduled");
        // (Published scores have one decimal: just past the step, 55.0.)
        let stepped = round1(s.decayed(60.0, 0, due));
        assert_eq!(
            s.held_level(stepped, Some(Level::High)),
            Level::High,
            "{stepped}"
        );
        let due = s
            .next_decay_due(55.0, 0, 55.0, Level::High)
            .expect("scheduled");
        assert_eq!(
            s.held_level(round1(s.decayed(55.0, 0, due)), Some(Level::High)),
            Level::Elevated
        );
        // Off: the plain thresholds.
        let mut config = Config::default_config().expect("defaults");
        config.score.level_hold = 0.0;
        let off = Scorer::new(&config);
        assert_eq!(off.held_level(59.9, Some(Level::High)), Level::Elevated);
    }

    #[test]
    fn the_two_volume_signs_count_as_one_and_a_half() {
        use crate::detect::*;
        let s = scorer();
        let events = s.combine(&with(&[(VOLUME_SPIKE, 0.8)]), Sensitivity::Internal);
        let bytes = s.combine(&with(&[(DATA_VOLUME_SPIKE, 0.8)]), Sensitivity::Internal);
        let both = s.combine(
            &with(&[(VOLUME_SPIKE, 0.8), (DATA_VOLUME_SPIKE, 0.8)]),
            Sensitivity::Internal,
        );
        // More than either alone, less than two independent signs.
        let independent = 100.0 * (1.0 - (1.0 - events / 100.0) * (1.0 - bytes / 100.0));
        assert!(both > events.max(bytes), "{both} vs {events}, {bytes}");
        assert!(both < independent - 5.0, "{both} vs {independent}");
        // Two moderate volume signs used to page on their own (69.8); no longer.
        let moderate = with(&[(VOLUME_SPIKE, 0.6), (DATA_VOLUME_SPIKE, 0.6)]);
        let moderate = s.combine(&moderate, Sensitivity::Internal);
        assert!(moderate < 60.0, "a bigger batch alone pages: {moderate}");
        // The stronger counts in full, whichever it is.
        for (strong, weak) in [
            (VOLUME_SPIKE, DATA_VOLUME_SPIKE),
            (DATA_VOLUME_SPIKE, VOLUME_SPIKE),
        ] {
            let alone = s.combine(&with(&[(strong, 0.9)]), Sensitivity::Internal);
            let pair = s.combine(&with(&[(strong, 0.9), (weak, 0.3)]), Sensitivity::Internal);
            assert!(pair > alone, "{pair} vs {alone}");
        }
        // Another detector still adds as an independent sign.
        let with_dest = s.combine(
            &with(&[
                (VOLUME_SPIKE, 0.8),
                (DATA_VOLUME_SPIKE, 0.8),
                (NEW_DESTINATION, 0.6),
            ]),
            Sensitivity::Internal,
        );
        assert!(with_dest > both + 10.0, "{with_dest} vs {both}");
    }

    #[test]
    fn sensitivity_scales_and_rules_match() {
        let s = scorer();
        let f = with(&[(crate::detect::NEW_DESTINATION, 0.8)]);
        assert!(s.combine(&f, Sensitivity::Restricted) > s.combine(&f, Sensitivity::Internal));
        let e = ActivityEvent {
            destination: "arn:aws:s3:::payroll-exports/x".into(),
            ..ActivityEvent::default()
        };
        assert_eq!(s.sensitivity(&e), Sensitivity::Restricted);
        // Minting a credential is restricted by its action, whatever the user's name;
        // other calls on the same user are not.
        let on_user = |action: &str| ActivityEvent {
            action: action.into(),
            destination: "arn:aws:iam::123456789012:user/backup-admin".into(),
            ..ActivityEvent::default()
        };
        for action in [
            "iam:CreateAccessKey",
            "iam:CreateLoginProfile",
            "iam:UpdateLoginProfile",
            "iam:CreateServiceSpecificCredential",
            "iam:ResetServiceSpecificCredential",
        ] {
            assert_eq!(
                s.sensitivity(&on_user(action)),
                Sensitivity::Restricted,
                "{action}"
            );
        }
        for action in ["iam:GetUser", "iam:DeleteServiceSpecificCredential"] {
            assert_eq!(
                s.sensitivity(&on_user(action)),
                Sensitivity::Internal,
                "{action}"
            );
        }
    }

    #[test]
    fn decay_halves_per_half_life_and_schedules() {
        let s = scorer();
        let hl = 30 * 60_000;
        assert!((s.decayed(80.0, 0, hl) - 40.0).abs() < 1e-9);
        assert_eq!(s.decayed(80.0, 100, 0), 80.0);
        let due = s
            .next_decay_due(80.0, 0, 80.0, Level::High)
            .expect("scheduled");
        assert!((s.decayed(80.0, 0, due) - 75.0).abs() < 0.01);
        assert_eq!(s.next_decay_due(20.0, 0, 20.0, Level::Normal), None);
        // Elevated at 32: next due is leaving the band (just under 30), not 27.
        let due = s
            .next_decay_due(32.0, 0, 32.0, Level::Elevated)
            .expect("scheduled");
        assert!(s.decayed(32.0, 0, due) < 30.0);
    }

    #[test]
    fn reasons_sorted_by_strength() {
        let s = scorer();
        let r = s.reasons(&with(&[(0, 0.3), (5, 0.9), (2, 0.3)]));
        let names: Vec<&str> = r.iter().map(|r| r.detector.as_str()).collect();
        assert_eq!(names, ["new_source", "new_destination", "volume_spike"]);
    }
}
