//! Detection quality: recall, false alerts per 1,000 identity-days and time to detect,
//! from risk signals and the generator's labels (`riskd eval`).
//!
//! The rules, so that numbers from different scorers compare:
//!
//! - an **alert** is a signal that *enters* `high` or `critical` from a lower level (a
//!   move from high to critical is the same alert);
//! - an attack is **detected** when its identity gets a signal at `high` or above between
//!   the attack's start and its end plus a grace period (default 1 h), or is already at
//!   `high` or above when the attack starts (its last earlier signal says so: that is the
//!   level an enforcement point reads); the **time to detect** is the first such signal's
//!   time minus the attack start, 0 for a level carried in;
//! - a **false alert** is an alert on an identity that was never attacked; the rate is per
//!   1,000 identity-days of those identities, each identity counting its labelled active
//!   span. Alerts on attacked identities outside every attack window are reported apart,
//!   since they may be real follow-on activity or noise and the labels cannot tell;
//! - medians of an even count are the mean of the two middle values; p90 is nearest-rank.
//!
//! A naive first-seen baseline ([`NaiveFirstSeen`]) turns events into signals by the rule
//! "alert on any never-seen destination, source IP or action after a warm-up", scored by
//! exactly the same rules, so the report shows how much noise riskd removes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::{ActivityEvent, IdentityKind};
use crate::signal::{format_time_ms, parse_time_ms, IdentityState, Level, Reason, Signal};
use crate::source::generator::{Labels, LabelsError};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Grace period after an attack's last event in which a signal still counts.
pub const DEFAULT_GRACE_MS: i64 = HOUR_MS;

/// Errors of `riskd eval` (bad signal lines are not errors: they are counted).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a labels file")]
    LabelsJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error("cannot encode the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the report: {0}")]
    Write(std::io::Error),
}

/// Result for one labelled attack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackResult {
    pub id: String,
    pub kind: String,
    pub identity: String,
    pub archetype: String,
    pub start: String,
    pub detected: bool,
    /// Seconds from the attack start to the first alert-level signal in the window.
    pub ttd_s: Option<f64>,
    /// Highest score the identity reached in the window (any level).
    pub max_score: Option<f64>,
    /// Detectors named by the detecting signal (possibly one just before the start).
    pub reasons: Vec<String>,
}

/// Recall and time to detect for one attack kind (or all of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindReport {
    pub kind: String,
    pub attacks: usize,
    pub detected: usize,
    pub recall: f64,
    pub ttd_median_s: Option<f64>,
    pub ttd_p90_s: Option<f64>,
}

/// Alerts on never-attacked identities of one archetype.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchetypeNoise {
    pub archetype: String,
    pub identities: usize,
    pub identity_days: f64,
    pub false_alerts: u64,
    pub per_1000_identity_days: f64,
}

/// One false alert, for debugging a scorer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalseAlert {
    pub identity: String,
    pub archetype: String,
    pub time: String,
    pub score: f64,
    pub reasons: Vec<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// `model` of the signals (or `naive-first-seen`).
    pub model: String,
    pub grace_s: f64,
    pub signals: u64,
    /// Signals whose `time` does not parse (ignored).
    pub signals_bad_time: u64,
    /// Signals for identities the labels do not list (ignored).
    pub signals_unknown_identity: u64,
    pub identities: usize,
    pub attacked_identities: usize,
    /// Active identity-days of never-attacked identities (the false-alert denominator).
    pub benign_identity_days: f64,
    pub overall: KindReport,
    pub per_kind: Vec<KindReport>,
    pub false_alerts: u64,
    pub false_alerts_per_1000_identity_days: f64,
    /// Alerts on attacked identities outside all their attack windows (+grace).
    pub alerts_outside_attack_windows: u64,
    /// Alerts (all identities) per detector named in the alerting signal.
    pub false_alert_reasons: BTreeMap<String, u64>,
    pub noise_by_archetype: Vec<ArchetypeNoise>,
    pub attacks: Vec<AttackResult>,
    /// The first false alerts, in time order (at most 25).
    pub false_alert_examples: Vec<FalseAlert>,
}

struct Obs {
    time_ms: i64,
    seq: u64,
    level: Level,
    score: f64,
    reasons: Vec<String>,
}

/// Evaluates `signals` against `labels` with the default grace period.
pub fn evaluate(labels: &Labels, signals: impl Iterator<Item = Signal>) -> EvalReport {
    evaluate_with(labels, signals, DEFAULT_GRACE_MS)
}

/// Evaluates with an explicit grace period. Labels are assumed validated
/// ([`Labels::validate`]); an unparsable label time counts as the fleet start.
pub fn evaluate_with(
    labels: &Labels,
    signals: impl Iterator<Item = Signal>,
    grace_ms: i64,
) -> EvalReport {
    let index: HashMap<&str, usize> = labels
        .identities
        .iter()
        .enumerate()
        .map(|(i, l)| (l.identity.as_str(), i))
        .collect();
    let mut per_identity: Vec<Vec<Obs>> =
        (0..labels.identities.len()).map(|_| Vec::new()).collect();
    let mut model = String::new();
    let (mut count, mut bad_time, mut unknown) = (0u64, 0u64, 0u64);
    for s in signals {
        count += 1;
        if model.is_empty() {
            model.clone_from(&s.model);
        }
        let Some(t) = parse_time_ms(&s.time) else {
            bad_time += 1;
            continue;
        };
        let Some(&i) = index.get(s.identity.as_str()) else {
            unknown += 1;
            continue;
        };
        per_identity[i].push(Obs {
            time_ms: t,
            seq: count,
            level: s.level,
            score: s.score,
            reasons: s.reasons.into_iter().map(|r| r.detector).collect(),
        });
    }
    for obs in &mut per_identity {
        obs.sort_by_key(|o| (o.time_ms, o.seq));
    }

    let span = |i: usize| {
        let (s, e) = labels.identities[i].span_ms().unwrap_or((0, 0));
        (e - s).max(0) as f64 / DAY_MS as f64
    };
    let mut attacks_of: BTreeMap<usize, Vec<(i64, i64)>> = BTreeMap::new();
    let mut results = Vec::new();
    for a in &labels.attacks {
        let Some(&i) = index.get(a.identity.as_str()) else {
            continue;
        };
        let (start, end) = a.span_ms().unwrap_or((0, 0));
        attacks_of
            .entry(i)
            .or_default()
            .push((start, end + grace_ms));
        let window = per_identity[i]
            .iter()
            .filter(|o| o.time_ms >= start && o.time_ms <= end + grace_ms);
        let max_score = window.clone().map(|o| o.score).reduce(f64::max);
        let carried = per_identity[i]
            .iter()
            .take_while(|o| o.time_ms < start)
            .last()
            .filter(|o| o.level.is_alert());
        let first = carried.or_else(|| window.clone().find(|o| o.level.is_alert()));
        results.push(AttackResult {
            id: a.id.clone(),
            kind: a.kind.clone(),
            identity: a.identity.clone(),
            archetype: labels.identities[i].archetype.clone(),
            start: a.start.clone(),
            detected: first.is_some(),
            ttd_s: first.map(|o| (o.time_ms - start).max(0) as f64 / 1000.0),
            max_score,
            reasons: first.map(|o| o.reasons.clone()).unwrap_or_default(),
        });
    }

    let mut false_alerts = 0u64;
    let mut outside = 0u64;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples = Vec::new();
    let mut noise: BTreeMap<&str, (usize, f64, u64)> = BTreeMap::new();
    let mut benign_days = 0.0;
    for (i, obs) in per_identity.iter().enumerate() {
        let archetype = labels.identities[i].archetype.as_str();
        let windows = attacks_of.get(&i);
        if windows.is_none() {
            benign_days += span(i);
            let n = noise.entry(archetype).or_default();
            n.0 += 1;
            n.1 += span(i);
        }
        let mut level = Level::Normal;
        for o in obs {
            let entered = o.level.is_alert() && !level.is_alert();
            level = o.level;
            if !entered {
                continue;
            }
            match windows {
                None => {
                    false_alerts += 1;
                    noise.entry(archetype).or_default().2 += 1;
                    for r in &o.reasons {
                        *reasons.entry(r.clone()).or_default() += 1;
                    }
                    if examples.len() < 25 {
                        examples.push((o.time_ms, i, o.score, o.reasons.clone()));
                    }
                }
                Some(ws) => {
                    if !ws.iter().any(|&(s, e)| o.time_ms >= s && o.time_ms <= e) {
                        outside += 1;
                    }
                }
            }
        }
    }
    examples.sort_by_key(|e| (e.0, e.1));
    let per_1000 = |alerts: u64, days: f64| {
        if days > 0.0 {
            alerts as f64 * 1000.0 / days
        } else {
            0.0
        }
    };

    let mut kinds: BTreeSet<&str> = BTreeSet::new();
    for r in &results {
        kinds.insert(r.kind.as_str());
    }
    let per_kind = kinds
        .iter()
        .map(|k| kind_report(k, results.iter().filter(|r| r.kind == *k)))
        .collect();
    EvalReport {
        model: if model.is_empty() {
            "(no signals)".into()
        } else {
            model
        },
        grace_s: grace_ms as f64 / 1000.0,
        signals: count,
        signals_bad_time: bad_time,
        signals_unknown_identity: unknown,
        identities: labels.identities.len(),
        attacked_identities: attacks_of.len(),
        benign_identity_days: benign_days,
        overall: kind_report("all", results.iter()),
        per_kind,
        false_alerts,
        false_alerts_per_1000_identity_days: per_1000(false_alerts, benign_days),
        alerts_outside_attack_windows: outside,
        false_alert_reasons: reasons,
        noise_by_archetype: noise
            .into_iter()
            .map(|(a, (n, days, alerts))| ArchetypeNoise {
                archetype: a.to_string(),
                identities: n,
                identity_days: days,
                false_alerts: alerts,
                per_1000_identity_days: per_1000(alerts, days),
            })
            .collect(),
        attacks: results,
        false_alert_examples: examples
            .into_iter()
            .map(|(t, i, score, reasons)| FalseAlert {
                identity: labels.identities[i].identity.clone(),
                archetype: labels.identities[i].archetype.clone(),
                time: format_time_ms(t),
                score,
                reasons,
            })
            .collect(),
    }
}

fn kind_report<'a>(kind: &str, results: impl Iterator<Item = &'a AttackResult>) -> KindReport {
    let mut attacks = 0;
    let mut ttds = Vec::new();
    for r in results {
        attacks += 1;
        if let Some(t) = r.ttd_s {
            ttds.push(t);
        }
    }
    ttds.sort_by(f64::total_cmp);
    KindReport {
        kind: kind.to_string(),
        attacks,
        detected: ttds.len(),
        recall: if attacks == 0 {
            0.0
        } else {
            ttds.len() as f64 / attacks as f64
        },
        ttd_median_s: median(&ttds),
        ttd_p90_s: nearest_rank(&ttds, 0.9),
    }
}

/// Median of sorted values; the mean of the middle two for an even count.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Nearest-rank percentile of sorted values (`q` in (0, 1]).
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The naive first-seen rule as a scorer: after `warmup_ms` of an identity's history,
/// any destination, source IP or action it never used raises it to `high`; it drops back
/// to `normal` after `quiet_ms` without novelty. Generous to the baseline: one alert per
/// noisy period rather than one per new value.
pub struct NaiveFirstSeen {
    warmup_ms: i64,
    quiet_ms: i64,
    identities: HashMap<String, NaiveState>,
}

#[derive(Default)]
struct NaiveState {
    first_ms: i64,
    seen: HashSet<String>,
    alert_until_ms: Option<i64>,
    events: u64,
}

impl Default for NaiveFirstSeen {
    fn default() -> Self {
        NaiveFirstSeen::new(DAY_MS, HOUR_MS)
    }
}

impl NaiveFirstSeen {
    pub fn new(warmup_ms: i64, quiet_ms: i64) -> Self {
        NaiveFirstSeen {
            warmup_ms,
            quiet_ms,
            identities: HashMap::new(),
        }
    }

    /// Folds one event (event-time order) and appends any signal it causes.
    pub fn observe(&mut self, e: &ActivityEvent, out: &mut Vec<Signal>) {
        let st = self
            .identities
            .entry(e.identity.clone())
            .or_insert_with(|| NaiveState {
                first_ms: e.time_ms,
                ..NaiveState::default()
            });
        st.events += 1;
        let learning = e.time_ms - st.first_ms < self.warmup_ms;
        let mut new = Vec::new();
        let keys = [
            ("new_destination", format!("d:{}", e.destination)),
            ("new_action", format!("a:{}", e.action)),
            (
                "new_source",
                format!("s:{}", e.source_ip.as_deref().unwrap_or("-")),
            ),
        ];
        for (detector, key) in keys {
            if st.seen.insert(key) && !learning {
                new.push(detector);
            }
        }
        if let Some(until) = st.alert_until_ms {
            if e.time_ms > until {
                st.alert_until_ms = None;
                out.push(naive_signal(
                    &e.identity,
                    until,
                    Level::Normal,
                    st,
                    Vec::new(),
                ));
            }
        }
        if !new.is_empty() {
            let was_alert = st.alert_until_ms.is_some();
            st.alert_until_ms = Some(e.time_ms + self.quiet_ms);
            if !was_alert {
                let reasons = new
                    .iter()
                    .map(|d| Reason {
                        detector: (*d).to_string(),
                        strength: 1.0,
                        detail: "never seen for this identity".into(),
                    })
                    .collect();
                out.push(naive_signal(
                    &e.identity,
                    e.time_ms,
                    Level::High,
                    st,
                    reasons,
                ));
            }
        }
    }
}

fn naive_signal(
    identity: &str,
    t: i64,
    level: Level,
    st: &NaiveState,
    reasons: Vec<Reason>,
) -> Signal {
    Signal {
        identity: identity.to_string(),
        time: format_time_ms(t),
        score: if level.is_alert() { 100.0 } else { 0.0 },
        level,
        state: IdentityState::Active,
        identity_kind: IdentityKind::Unknown,
        events_seen: st.events,
        reasons,
        event_id: None,
        model: "naive-first-seen".into(),
    }
}

/// Runs the naive baseline over events and evaluates it.
pub fn evaluate_naive(labels: &Labels, events: impl Iterator<Item = ActivityEvent>) -> EvalReport {
    let mut naive = NaiveFirstSeen::default();
    let mut signals = Vec::new();
    for e in events {
        naive.observe(&e, &mut signals);
    }
    evaluate(labels, signals.into_iter())
}

/// Reads and validates a labels file.
pub fn read_labels(path: &Path) -> Result<Labels, EvalError> {
    let text = std::fs::read(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let labels: Labels = serde_json::from_slice(&text).map_err(|source| EvalError::LabelsJson {
        path: path.to_path_buf(),
        source,
    })?;
    labels.validate()?;
    Ok(labels)
}

/// Lines of an input file that could not be used, with their line numbers.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct BadLines {
    pub count: u64,
    /// `(line number, reason)` of the first few.
    pub first: Vec<(u64, String)>,
}

impl BadLines {
    fn add(&mut self, line: u64, reason: String) {
        self.count += 1;
        if self.first.len() < 10 {
            self.first.push((line, reason));
        }
    }
}

/// Reads a signals NDJSON file; blank lines are skipped, bad lines counted.
pub fn read_signals(path: &Path) -> Result<(Vec<Signal>, BadLines), EvalError> {
    let read_err = |source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut signals = Vec::new();
    let mut bad = BadLines::default();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Signal>(&line) {
            Ok(s) => signals.push(s),
            Err(e) => bad.add(n as u64 + 1, e.to_string()),
        }
    }
    Ok((signals, bad))
}

/// Streams native NDJSON events through `f` with the project's decoder, in file order
/// (files from `riskd generate` are in event-time order); rejects counted by line.
pub fn for_each_event(
    path: &Path,
    mut f: impl FnMut(&ActivityEvent),
) -> Result<BadLines, EvalError> {
    use crate::decode::{decode, Decoded, Format, Limits};
    let read_err = |source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bad = BadLines::default();
    let limits = Limits::default();
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        out.clear();
        decode(Format::Native, line.as_bytes(), &limits, &mut out);
        for d in out.drain(..) {
            match d {
                Decoded::Event(e) => f(&e),
                Decoded::Skipped(_) => {}
                Decoded::Rejected(r) => bad.add(n as u64 + 1, r.to_string()),
            }
        }
    }
    Ok(bad)
}

/// What `riskd eval` should compute and print.
#[derive(Debug, Clone, Default)]
pub struct EvalCli {
    pub labels: PathBuf,
    pub signals: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub naive: bool,
    pub json: bool,
    pub grace_ms: Option<i64>,
}

/// `riskd eval`: prints the report(s) as a table, or JSON with `json`.
pub fn run_cli(opts: &EvalCli) -> Result<(), EvalError> {
    let labels = read_labels(&opts.labels)?;
    let grace = opts.grace_ms.unwrap_or(DEFAULT_GRACE_MS);
    let mut reports = Vec::new();
    let mut bad_inputs = Vec::new();
    if let Some(path) = &opts.signals {
        let (signals, bad) = read_signals(path)?;
        reports.push(evaluate_with(&labels, signals.into_iter(), grace));
        bad_inputs.push((path.clone(), bad));
    }
    if opts.naive {
        if let Some(path) = &opts.events {
            let mut naive = NaiveFirstSeen::default();
            let mut signals = Vec::new();
            let bad = for_each_event(path, |e| naive.observe(e, &mut signals))?;
            reports.push(evaluate_with(&labels, signals.into_iter(), grace));
            bad_inputs.push((path.clone(), bad));
        }
    }
    let text = if opts.json {
        #[derive(Serialize)]
        struct Out<'a> {
            reports: &'a [EvalReport],
            bad_lines: BTreeMap<String, &'a BadLines>,
        }
        let out = Out {
            reports: &reports,
            bad_lines: bad_inputs
                .iter()
                .map(|(p, b)| (p.display().to_string(), b))
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&out)?;
        text.push('\n');
        text
    } else {
        render_all(&reports, &bad_inputs)
    };
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `riskd eval ... | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(EvalError::Write(e)),
        _ => Ok(()),
    }
}

fn render_all(reports: &[EvalReport], bad_inputs: &[(PathBuf, BadLines)]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for (path, bad) in bad_inputs {
        if bad.count > 0 {
            let _ = writeln!(s, "{}: {} unusable lines", path.display(), bad.count);
            for (n, why) in &bad.first {
                let _ = writeln!(s, "  line {n}: {why}");
            }
        }
    }
    for r in reports {
        s.push_str(&render(r));
    }
    if let [a, b] = reports {
        let _ = writeln!(
            s,
            "riskd vs naive first-seen: recall {:.3} vs {:.3}; false alerts {} vs {} \
             ({:.2} vs {:.2} per 1,000 identity-days)",
            a.overall.recall,
            b.overall.recall,
            a.false_alerts,
            b.false_alerts,
            a.false_alerts_per_1000_identity_days,
            b.false_alerts_per_1000_identity_days
        );
    }
    s
}

fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) => format!("{:.1}m", s / 60.0),
    }
}

/// The human-readable report.
pub fn render(r: &EvalReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== {} ==  {} signals ({} bad time, {} unknown identity), {} identities, {} attacked, \
         grace {:.0}s",
        r.model,
        r.signals,
        r.signals_bad_time,
        r.signals_unknown_identity,
        r.identities,
        r.attacked_identities,
        r.grace_s
    );
    let _ = writeln!(
        s,
        "{:<32} {:>7} {:>8} {:>7} {:>9} {:>9}",
        "attack kind", "attacks", "detected", "recall", "ttd p50", "ttd p90"
    );
    for k in r.per_kind.iter().chain(std::iter::once(&r.overall)) {
        let _ = writeln!(
            s,
            "{:<32} {:>7} {:>8} {:>7.3} {:>9} {:>9}",
            k.kind,
            k.attacks,
            k.detected,
            k.recall,
            secs(k.ttd_median_s),
            secs(k.ttd_p90_s)
        );
    }
    let _ = writeln!(
        s,
        "false alerts: {} on never-attacked identities over {:.1} identity-days = {:.2} per \
         1,000 identity-days; {} more on attacked identities outside their windows",
        r.false_alerts,
        r.benign_identity_days,
        r.false_alerts_per_1000_identity_days,
        r.alerts_outside_attack_windows
    );
    let noisy: Vec<String> = r
        .noise_by_archetype
        .iter()
        .filter(|n| n.false_alerts > 0)
        .map(|n| {
            format!(
                "{} {} ({:.1}/1k)",
                n.archetype, n.false_alerts, n.per_1000_identity_days
            )
        })
        .collect();
    if !noisy.is_empty() {
        let _ = writeln!(s, "  by archetype: {}", noisy.join(", "));
    }
    if !r.false_alert_reasons.is_empty() {
        let reasons: Vec<String> = r
            .false_alert_reasons
            .iter()
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        let _ = writeln!(s, "  detectors in false alerts: {}", reasons.join(", "));
    }
    let missed: Vec<&AttackResult> = r.attacks.iter().filter(|a| !a.detected).collect();
    for a in missed {
        let _ = writeln!(
            s,
            "  missed {} {} on {} ({}) at {}, max score {}",
            a.id,
            a.kind,
            a.identity,
            a.archetype,
            a.start,
            a.max_score.map_or("-".to_string(), |m| format!("{m:.1}"))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::generator::{AttackLabel, IdentityLabel};

    const T0: i64 = 1_793_577_600_000;
    const MIN: i64 = 60_000;

    fn ident(name: &str, days: i64) -> IdentityLabel {
        IdentityLabel {
            identity: name.into(),
            archetype: "ci_bot".into(),
            kind: "bot".into(),
            first_active: format_time_ms(T0),
            last_active: format_time_ms(T0 + days * DAY_MS),
        }
    }

    fn attack(id: &str, kind: &str, who: &str, start: i64, end: i64) -> AttackLabel {
        AttackLabel {
            id: id.into(),
            kind: kind.into(),
            identity: who.into(),
            start: format_time_ms(start),
            end: format_time_ms(end),
            description: String::new(),
        }
    }

    fn labels() -> Labels {
        Labels {
            generator: "test".into(),
            seed: 0,
            fleet_start: format_time_ms(T0),
            fleet_end: format_time_ms(T0 + 10 * DAY_MS),
            fleet_changes: Vec::new(),
            // 10 + 10 + 5 benign identity-days; "a" and "b" are attacked.
            identities: vec![
                ident("a", 10),
                ident("b", 10),
                ident("c", 10),
                ident("d", 10),
                ident("e", 5),
            ],
            attacks: vec![
                attack("atk-1", "probe", "a", T0 + DAY_MS, T0 + DAY_MS + 10 * MIN),
                attack(
                    "atk-2",
                    "probe",
                    "b",
                    T0 + 2 * DAY_MS,
                    T0 + 2 * DAY_MS + 10 * MIN,
                ),
                attack("atk-3", "exfil", "a", T0 + 5 * DAY_MS, T0 + 6 * DAY_MS),
            ],
        }
    }

    fn sig(who: &str, t: i64, level: Level) -> Signal {
        Signal {
            identity: who.into(),
            time: format_time_ms(t),
            score: match level {
                Level::Normal => 10.0,
                Level::Elevated => 40.0,
                Level::High => 70.0,
                Level::Critical => 90.0,
            },
            level,
            state: IdentityState::Active,
            identity_kind: IdentityKind::Unknown,
            events_seen: 100,
            reasons: vec![Reason {
                detector: "new_source".into(),
                strength: 0.9,
                detail: String::new(),
            }],
            event_id: None,
            model: "test/1".into(),
        }
    }

    #[test]
    fn recall_false_alerts_and_ttd_are_exact() {
        let l = labels();
        let signals = vec![
            // atk-1: elevated first (does not count), high 3 minutes in.
            sig("a", T0 + DAY_MS + MIN, Level::Elevated),
            sig("a", T0 + DAY_MS + 3 * MIN, Level::High),
            sig("a", T0 + DAY_MS + 4 * MIN, Level::Critical),
            sig("a", T0 + DAY_MS + 30 * MIN, Level::Normal),
            // atk-2: critical 50 minutes after its end: inside the 1 h grace.
            sig("b", T0 + 2 * DAY_MS + 60 * MIN, Level::Critical),
            // atk-3 missed (only elevated). An alert on "a" at day 8: outside windows.
            sig("a", T0 + 5 * DAY_MS + 60 * MIN, Level::Elevated),
            sig("a", T0 + 8 * DAY_MS, Level::High),
            // Benign: "c" enters high twice (high->critical is the same alert), "e" once.
            sig("c", T0 + 3 * DAY_MS, Level::High),
            sig("c", T0 + 3 * DAY_MS + MIN, Level::Critical),
            sig("c", T0 + 3 * DAY_MS + 90 * MIN, Level::Normal),
            sig("c", T0 + 4 * DAY_MS, Level::High),
            sig("e", T0 + 4 * DAY_MS, Level::High),
            sig("d", T0 + 4 * DAY_MS, Level::Elevated),
            // Unknown identity and a bad time are counted, not fatal.
            sig("zz", T0, Level::Critical),
            Signal {
                time: "yesterday".into(),
                ..sig("d", T0, Level::High)
            },
        ];
        let r = evaluate(&l, signals.into_iter());
        assert_eq!(r.signals, 15);
        assert_eq!(r.signals_unknown_identity, 1);
        assert_eq!(r.signals_bad_time, 1);
        assert_eq!(r.overall.attacks, 3);
        assert_eq!(r.overall.detected, 2);
        assert!((r.overall.recall - 2.0 / 3.0).abs() < 1e-12);
        // TTDs: 180 s and 3,600 s; median is their mean, p90 the larger.
        assert_eq!(r.overall.ttd_median_s, Some(1890.0));
        assert_eq!(r.overall.ttd_p90_s, Some(3600.0));
        let probe = r
            .per_kind
            .iter()
            .find(|k| k.kind == "probe")
            .expect("probe");
        assert_eq!((probe.attacks, probe.detected), (2, 2));
        let exfil = r
            .per_kind
            .iter()
            .find(|k| k.kind == "exfil")
            .expect("exfil");
        assert_eq!((exfil.attacks, exfil.detected, exfil.recall), (1, 0, 0.0));
        assert_eq!(r.false_alerts, 3);
        assert_eq!(r.benign_identity_days, 25.0);
        assert!((r.false_alerts_per_1000_identity_days - 120.0).abs() < 1e-9);
        assert_eq!(r.alerts_outside_attack_windows, 1);
        assert_eq!(r.false_alert_reasons.get("new_source"), Some(&3));
        let a1 = &r.attacks[0];
        assert_eq!((a1.id.as_str(), a1.ttd_s), ("atk-1", Some(180.0)));
        assert_eq!(r.attacks[2].max_score, Some(40.0));
        assert!(render(&r).contains("missed atk-3 exfil"));
    }

    #[test]
    fn signals_out_of_order_are_sorted_per_identity() {
        let l = labels();
        let signals = vec![
            sig("c", T0 + 3 * DAY_MS + MIN, Level::Normal),
            sig("c", T0 + 3 * DAY_MS, Level::High),
        ];
        let r = evaluate(&l, signals.into_iter());
        assert_eq!(r.false_alerts, 1);
    }

    #[test]
    fn a_level_carried_into_the_attack_window_detects_it_at_once() {
        let l = labels();
        let start = T0 + 2 * DAY_MS;
        let signals = vec![
            sig("b", start - 5 * MIN, Level::High),
            sig("b", start + 20 * MIN, Level::Critical),
            sig("a", T0 + DAY_MS - MIN, Level::High),
            sig("a", T0 + DAY_MS - MIN / 2, Level::Elevated),
        ];
        let r = evaluate(&l, signals.into_iter());
        let by_id = |id: &str| r.attacks.iter().find(|a| a.id == id).expect("attack");
        assert_eq!(by_id("atk-2").ttd_s, Some(0.0));
        // Dropped back below high before the start: not detected.
        assert!(!by_id("atk-1").detected);
    }

    #[test]
    fn bad_signal_lines_are_counted_with_their_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signals.ndjson");
        let good = serde_json::to_string(&sig("c", T0, Level::High)).expect("json");
        let text = format!("{good}\nnot json\n\n{{\"identity\":\"c\"}}\n{good}\n");
        std::fs::write(&path, text).expect("write");
        let (signals, bad) = read_signals(&path).expect("read");
        assert_eq!(signals.len(), 2);
        assert_eq!(bad.count, 2);
        let lines: Vec<u64> = bad.first.iter().map(|b| b.0).collect();
        assert_eq!(lines, vec![2, 4]);
        let missing = read_signals(&dir.path().join("nope"));
        assert!(matches!(missing, Err(EvalError::Read { .. })));
    }

    #[test]
    fn percentiles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(
            nearest_rank(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9),
            Some(9.0)
        );
        assert_eq!(nearest_rank(&[4.0], 0.9), Some(4.0));
    }

    #[test]
    fn naive_baseline_alerts_on_novelty_after_warmup_only() {
        let mut naive = NaiveFirstSeen::new(DAY_MS, HOUR_MS);
        let ev = |t: i64, dest: &str| ActivityEvent {
            time_ms: t,
            identity: "c".into(),
            action: "s3:GetObject".into(),
            destination: dest.into(),
            source_ip: Some("10.0.0.1".into()),
            ..ActivityEvent::default()
        };
        let mut out = Vec::new();
        naive.observe(&ev(T0, "x"), &mut out);
        naive.observe(&ev(T0 + HOUR_MS, "y"), &mut out); // warm-up: silent
        assert!(out.is_empty());
        naive.observe(&ev(T0 + 2 * DAY_MS, "z"), &mut out); // alert
        naive.observe(&ev(T0 + 2 * DAY_MS + MIN, "w"), &mut out); // same alert
        naive.observe(&ev(T0 + 3 * DAY_MS, "x"), &mut out); // back to normal
        naive.observe(&ev(T0 + 3 * DAY_MS + MIN, "v"), &mut out); // second alert
        let levels: Vec<Level> = out.iter().map(|s| s.level).collect();
        assert_eq!(levels, vec![Level::High, Level::Normal, Level::High]);
        let r = evaluate(&labels(), out.into_iter());
        assert_eq!(r.false_alerts, 2);
    }
}
