//! Enforcement decisions from the live score and a small declarative policy (design §6).
//!
//! A policy is an ordered list of rules in TOML (`api.policy_file`; the semantics are
//! documented in `config/policy.example.toml`). The first rule whose *selectors* match the
//! request (identity kind, identity, action, destination, sensitivity) decides; its
//! *conditions* (level, lifecycle state, detectors, required context, time window, source
//! networks, environments) are all checked and the most severe outcome wins, so the
//! answer does not depend on the order conditions are written in and the caller is told
//! every reason at once.
//!
//! No IO and no wall clock here: [`Policy::evaluate`] takes the signal and `now`, so the
//! seed examples are tested without a server or sleeping (`tests/policy_examples.rs`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Datelike, Timelike, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{SensitivityConfig, SensitivityRules};
use crate::event::{IdentityKind, Sensitivity};
use crate::glob::Glob as GlobMatcher;
use crate::signal::{IdentityState, Level, Signal};

/// What an enforcement point should do. Ordered by severity, so combining outcomes is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    /// Ask for more assurance (MFA, human approval, re-authentication) before allowing.
    StepUp,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::StepUp => "step_up",
            Decision::Deny => "deny",
        }
    }
}

/// Name reported when no rule matched and `no_match` decided.
pub const NO_MATCH_RULE: &str = "no_match";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {message}")]
    Read { path: String, message: String },
    #[error("policy is not valid TOML: {0}")]
    Syntax(String),
    #[error("invalid policy at `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Phase one: what the file says (serde, unknown keys refused).

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    name: String,
    identity_kind: Option<Vec<String>>,
    identity: Option<Vec<String>>,
    action: Option<Vec<String>>,
    destination: Option<Vec<String>>,
    sensitivity: Option<Vec<Sensitivity>>,
    effect: Option<Decision>,
    on_fail: Option<Decision>,
    unknown: Option<Decision>,
    learning: Option<Decision>,
    max_level: Option<Level>,
    step_up_level: Option<Level>,
    block_detectors: Option<Vec<String>>,
    block_min_strength: Option<f64>,
    require_context: Option<Vec<String>>,
    context_match: Option<BTreeMap<String, Vec<String>>>,
    context_max: Option<BTreeMap<String, f64>>,
    time_window: Option<RawTimeWindow>,
    source_networks: Option<Vec<String>>,
    environments: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeWindow {
    days: Option<Vec<String>>,
    start: String,
    end: String,
}

// ---------------------------------------------------------------------------------------
// Phase two: validated, compiled rules.

/// A glob (`*` any run, `?` one character), case-sensitive, kept with its source text.
#[derive(Debug, Clone)]
struct Glob {
    text: String,
    matcher: GlobMatcher,
}

impl Glob {
    fn new(key: &str, text: &str) -> Result<Self, PolicyError> {
        if text.is_empty() {
            return Err(invalid(key, "empty pattern (use \"*\" to match anything)"));
        }
        Ok(Glob {
            text: text.to_string(),
            matcher: GlobMatcher::new(text),
        })
    }

    fn matches(&self, value: &str) -> bool {
        self.matcher.matches(value)
    }
}

fn globs(key: &str, texts: &[String]) -> Result<Vec<Glob>, PolicyError> {
    if texts.is_empty() {
        return Err(invalid(key, "empty list (omit the key to match anything)"));
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Glob::new(&format!("{key}[{i}]"), t))
        .collect()
}

fn any_glob(globs: &[Glob], value: &str) -> bool {
    globs.iter().any(|g| g.matches(value))
}

/// Days and UTC minutes of day; `start > end` wraps past midnight.
#[derive(Debug, Clone)]
struct TimeWindow {
    /// Bit `d` set for `chrono::Weekday::num_days_from_monday() == d`.
    days: u8,
    start_min: u32,
    end_min: u32,
    text: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_hhmm(key: &str, text: &str) -> Result<u32, PolicyError> {
    let bad = || {
        invalid(
            key,
            format!("`{text}` is not a time of day such as \"09:00\""),
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    // 24:00 is allowed as an end meaning "until midnight".
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl TimeWindow {
    fn new(key: &str, raw: &RawTimeWindow) -> Result<Self, PolicyError> {
        let mut days = 0u8;
        let names = raw
            .days
            .clone()
            .unwrap_or_else(|| DAY_NAMES.iter().map(|d| d.to_string()).collect());
        if names.is_empty() {
            return Err(invalid(format!("{key}.days"), "empty list"));
        }
        for (i, name) in names.iter().enumerate() {
            let lower = name.to_ascii_lowercase();
            let d = DAY_NAMES
                .iter()
                .position(|d| lower.starts_with(d))
                .ok_or_else(|| {
                    invalid(
                        format!("{key}.days[{i}]"),
                        format!("`{name}` is not a weekday (mon, tue, ... sun)"),
                    )
                })?;
            days |= 1 << d;
        }
        let start_min = parse_hhmm(&format!("{key}.start"), &raw.start)?;
        let end_min = parse_hhmm(&format!("{key}.end"), &raw.end)?;
        if start_min == end_min {
            return Err(invalid(
                format!("{key}.end"),
                "equals start: the window would be empty",
            ));
        }
        let day_text: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(TimeWindow {
            days,
            start_min,
            end_min,
            text: format!("{} {}-{} UTC", day_text.join(","), raw.start, raw.end),
        })
    }

    fn contains(&self, now: DateTime<Utc>) -> bool {
        let minute = now.hour() * 60 + now.minute();
        let today = now.weekday().num_days_from_monday();
        if self.start_min < self.end_min {
            self.days & (1 << today) != 0 && minute >= self.start_min && minute < self.end_min
        } else {
            // Overnight window: the part after midnight belongs to the day it started on.
            let yesterday = (today + 6) % 7;
            (self.days & (1 << today) != 0 && minute >= self.start_min)
                || (self.days & (1 << yesterday) != 0 && minute < self.end_min)
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    identity_kind: Option<Vec<IdentityKind>>,
    identity: Option<Vec<Glob>>,
    action: Option<Vec<Glob>>,
    destination: Option<Vec<Glob>>,
    sensitivity: Option<Vec<Sensitivity>>,
    effect: Decision,
    on_fail: Decision,
    unknown: Decision,
    learning: Decision,
    max_level: Option<Level>,
    step_up_level: Option<Level>,
    block_detectors: Vec<String>,
    block_min_strength: f64,
    require_context: Vec<String>,
    context_match: Vec<(String, Vec<Glob>)>,
    context_max: Vec<(String, f64)>,
    time_window: Option<TimeWindow>,
    source_networks: Option<Vec<IpNet>>,
    environments: Option<Vec<Glob>>,
}

/// Whether `kind` is one of the identity kinds rules can select (`unknown` included).
pub fn is_identity_kind(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// The identity kinds rules can select, for error messages.
pub fn identity_kinds() -> String {
    KINDS.join(", ")
}

const KINDS: [&str; 7] = [
    "ai_agent",
    "service_account",
    "api_key",
    "workload",
    "bot",
    "human",
    "unknown",
];

impl Rule {
    fn compile(key: &str, raw: RawRule) -> Result<Self, PolicyError> {
        if raw.name.trim().is_empty() {
            return Err(invalid(format!("{key}.name"), "every rule needs a name"));
        }
        let identity_kind = match raw.identity_kind {
            None => None,
            Some(kinds) => {
                if kinds.is_empty() {
                    return Err(invalid(format!("{key}.identity_kind"), "empty list"));
                }
                let mut out = Vec::new();
                for (i, k) in kinds.iter().enumerate() {
                    if !KINDS.contains(&k.as_str()) {
                        return Err(invalid(
                            format!("{key}.identity_kind[{i}]"),
                            format!("`{k}` is not one of {}", KINDS.join(", ")),
                        ));
                    }
                    out.push(IdentityKind::parse(k));
                }
                Some(out)
            }
        };
        let opt_globs = |field: &str, v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|t| globs(&format!("{key}.{field}"), t))
                .transpose()
        };
        let block_min_strength = raw.block_min_strength.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&block_min_strength) {
            return Err(invalid(
                format!("{key}.block_min_strength"),
                format!("{block_min_strength} is outside [0, 1]"),
            ));
        }
        let block_detectors = raw.block_detectors.unwrap_or_default();
        for (i, d) in block_detectors.iter().enumerate() {
            if !crate::metrics::DETECTORS.contains(&d.as_str()) {
                return Err(invalid(
                    format!("{key}.block_detectors[{i}]"),
                    format!(
                        "`{d}` is not a detector ({})",
                        crate::metrics::DETECTORS.join(", ")
                    ),
                ));
            }
        }
        let require_context = raw.require_context.unwrap_or_default();
        for (i, k) in require_context.iter().enumerate() {
            if k.is_empty() {
                return Err(invalid(format!("{key}.require_context[{i}]"), "empty key"));
            }
        }
        let mut context_match = Vec::new();
        for (k, texts) in raw.context_match.unwrap_or_default() {
            let g = globs(&format!("{key}.context_match.{k}"), &texts)?;
            context_match.push((k, g));
        }
        let mut context_max = Vec::new();
        for (k, max) in raw.context_max.unwrap_or_default() {
            if !max.is_finite() {
                return Err(invalid(
                    format!("{key}.context_max.{k}"),
                    "must be a finite number",
                ));
            }
            context_max.push((k, max));
        }
        let time_window = raw
            .time_window
            .as_ref()
            .map(|w| TimeWindow::new(&format!("{key}.time_window"), w))
            .transpose()?;
        let source_networks = match raw.source_networks {
            None => None,
            Some(nets) => {
                if nets.is_empty() {
                    return Err(invalid(format!("{key}.source_networks"), "empty list"));
                }
                let mut out = Vec::new();
                for (i, n) in nets.iter().enumerate() {
                    out.push(parse_net(n).ok_or_else(|| {
                        invalid(
                            format!("{key}.source_networks[{i}]"),
                            format!("`{n}` is not a CIDR such as 10.0.0.0/8 or an address"),
                        )
                    })?);
                }
                Some(out)
            }
        };
        Ok(Rule {
            identity: opt_globs("identity", &raw.identity)?,
            action: opt_globs("action", &raw.action)?,
            destination: opt_globs("destination", &raw.destination)?,
            environments: opt_globs("environments", &raw.environments)?,
            name: raw.name,
            identity_kind,
            sensitivity: raw.sensitivity,
            effect: raw.effect.unwrap_or(Decision::Allow),
            on_fail: raw.on_fail.unwrap_or(Decision::Deny),
            unknown: raw.unknown.unwrap_or(Decision::Allow),
            learning: raw.learning.unwrap_or(Decision::Allow),
            max_level: raw.max_level,
            step_up_level: raw.step_up_level,
            block_detectors,
            block_min_strength,
            require_context,
            context_match,
            context_max,
            time_window,
            source_networks,
        })
    }

    /// True when no selector narrows it: it matches every request.
    fn selects_all(&self) -> bool {
        self.identity_kind.is_none()
            && self.identity.is_none()
            && self.action.is_none()
            && self.destination.is_none()
            && self.sensitivity.is_none()
    }

    fn matches(&self, req: &Request<'_>) -> bool {
        self.identity_kind
            .as_ref()
            .map_or(true, |kinds| kinds.contains(&req.kind))
            && self
                .identity
                .as_ref()
                .map_or(true, |g| any_glob(g, req.input.identity))
            && self
                .action
                .as_ref()
                .map_or(true, |g| any_glob(g, req.input.action))
            && self
                .destination
                .as_ref()
                .map_or(true, |g| any_glob(g, req.input.destination))
            && self
                .sensitivity
                .as_ref()
                .map_or(true, |s| s.contains(&req.sensitivity))
    }

    /// Every condition that does not hold, with the decision it asks for.
    fn failures(
        &self,
        req: &Request<'_>,
        risk: Option<&Signal>,
        now: DateTime<Utc>,
    ) -> Vec<(Decision, String)> {
        let mut out = Vec::new();
        let ctx = req.input.context;
        match risk {
            None => {
                if self.unknown > Decision::Allow {
                    out.push((
                        self.unknown,
                        "identity has never been seen (state unknown)".to_string(),
                    ));
                }
            }
            Some(signal) => {
                if signal.state == IdentityState::Learning && self.learning > Decision::Allow {
                    out.push((
                        self.learning,
                        "identity is still learning its baseline".to_string(),
                    ));
                }
                if let Some(max) = self.max_level {
                    if signal.level > max {
                        out.push((
                            self.on_fail,
                            format!(
                                "risk level {} is above max_level {}",
                                signal.level.as_str(),
                                max.as_str()
                            ),
                        ));
                    }
                }
                if let Some(at) = self.step_up_level {
                    if signal.level >= at {
                        out.push((
                            Decision::StepUp,
                            format!(
                                "risk level {} is at or above step_up_level {}",
                                signal.level.as_str(),
                                at.as_str()
                            ),
                        ));
                    }
                }
                for reason in &signal.reasons {
                    if reason.strength >= self.block_min_strength
                        && self.block_detectors.contains(&reason.detector)
                    {
                        out.push((
                            self.on_fail,
                            format!(
                                "blocked by detector {} ({:.2}): {}",
                                reason.detector, reason.strength, reason.detail
                            ),
                        ));
                    }
                }
            }
        }
        for key in &self.require_context {
            if ctx.get(key).map_or(true, |v| v.trim().is_empty()) {
                out.push((self.on_fail, format!("missing required context `{key}`")));
            }
        }
        for (key, globs) in &self.context_match {
            match ctx.get(key) {
                Some(v) if any_glob(globs, v) => {}
                Some(v) => out.push((
                    self.on_fail,
                    format!(
                        "context `{key}` = `{v}` matches none of {}",
                        glob_list(globs)
                    ),
                )),
                None => out.push((self.on_fail, format!("missing required context `{key}`"))),
            }
        }
        for (key, max) in &self.context_max {
            match ctx.get(key).map(|v| v.trim().parse::<f64>()) {
                Some(Ok(v)) if v <= *max => {}
                Some(Ok(v)) => out.push((
                    self.on_fail,
                    format!("context `{key}` = {v} is above the maximum {max}"),
                )),
                Some(Err(_)) => {
                    out.push((self.on_fail, format!("context `{key}` is not a number")))
                }
                None => out.push((self.on_fail, format!("missing required context `{key}`"))),
            }
        }
        if let Some(window) = &self.time_window {
            if !window.contains(now) {
                out.push((
                    self.on_fail,
                    format!("outside the time window {}", window.text),
                ));
            }
        }
        if let Some(nets) = &self.source_networks {
            match ctx.get("source_ip").map(|s| s.trim().parse::<IpAddr>()) {
                Some(Ok(ip)) if nets.iter().any(|n| n.contains(&ip)) => {}
                Some(Ok(ip)) => out.push((
                    self.on_fail,
                    format!("source address {ip} is outside the allowed networks"),
                )),
                Some(Err(_)) => out.push((
                    self.on_fail,
                    "context `source_ip` is not an IP address".to_string(),
                )),
                None => out.push((
                    self.on_fail,
                    "missing required context `source_ip`".to_string(),
                )),
            }
        }
        if let Some(envs) = &self.environments {
            match ctx.get("environment") {
                Some(e) if any_glob(envs, e) => {}
                Some(e) => out.push((
                    self.on_fail,
                    format!("environment `{e}` is not one of {}", glob_list(envs)),
                )),
                None => out.push((
                    self.on_fail,
                    "missing required context `environment`".to_string(),
                )),
            }
        }
        out
    }
}

fn glob_list(globs: &[Glob]) -> String {
    let texts: Vec<&str> = globs.iter().map(|g| g.text.as_str()).collect();
    texts.join(", ")
}

/// A CIDR, or a bare address meaning just that host.
fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

// ---------------------------------------------------------------------------------------
// Evaluation.

/// What the caller asks about. `context` values are strings; the API converts JSON
/// numbers and booleans to their text.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub identity: &'a str,
    pub action: &'a str,
    pub destination: &'a str,
    pub context: &'a BTreeMap<String, String>,
}

/// The outcome, with the rule that decided and every reason that pushed it above allow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    pub rule: String,
    pub sensitivity: Sensitivity,
    pub explanation: Vec<String>,
}

struct Request<'a> {
    input: &'a DecisionInput<'a>,
    kind: IdentityKind,
    sensitivity: Sensitivity,
}

/// A loaded, validated policy. Cheap to share behind an `Arc`; evaluation allocates only
/// the explanation strings.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    no_match: Decision,
    sensitivity_rules: SensitivityRules,
    sensitivity_default: Sensitivity,
}

/// The policy used when `api.policy_file` is empty: deny critical, step up high, allow the
/// rest (unknown and learning identities included).
pub const DEFAULT_POLICY_TOML: &str = r#"
no_match = "allow"

[[rules]]
name = "default"
max_level = "high"
step_up_level = "high"
on_fail = "deny"
"#;

impl Policy {
    /// `api.policy_file` if set, else [`DEFAULT_POLICY_TOML`].
    pub fn load(path: &str, sensitivity: &SensitivityConfig) -> Result<Self, PolicyError> {
        if path.trim().is_empty() {
            return Self::from_toml(DEFAULT_POLICY_TOML, sensitivity);
        }
        let text = std::fs::read_to_string(Path::new(path)).map_err(|e| PolicyError::Read {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text, sensitivity)
    }

    pub fn from_toml(text: &str, sensitivity: &SensitivityConfig) -> Result<Self, PolicyError> {
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| PolicyError::Syntax(e.to_string()))?;
        let explicit_no_match = doc.contains_key("no_match");
        let no_match = match doc.remove("no_match") {
            None => Decision::Allow,
            Some(v) => v
                .try_into::<Decision>()
                .map_err(|e| invalid("no_match", strip_toml(&e)))?,
        };
        let raw_rules = match doc.remove("rules") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items,
            Some(_) => return Err(invalid("rules", "must be an array of tables ([[rules]])")),
        };
        if let Some(key) = doc.keys().next() {
            return Err(invalid(
                key.as_str(),
                "unknown key (expected no_match or rules)",
            ));
        }
        let mut rules = Vec::with_capacity(raw_rules.len());
        for (i, value) in raw_rules.into_iter().enumerate() {
            let key = format!("rules[{i}]");
            let raw = deserialize_rule(&key, value)?;
            let rule = Rule::compile(&key, raw)?;
            if rules.iter().any(|r: &Rule| r.name == rule.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("duplicate rule name `{}`", rule.name),
                ));
            }
            // First match wins: behind a rule that selects every request, this one
            // could never apply, and the operator would believe it does.
            if let Some((j, open)) = rules.iter().enumerate().find(|(_, r)| r.selects_all()) {
                return Err(invalid(
                    key,
                    format!(
                        "rule `{}` can never match: rules[{j}] (`{}`) before it selects every request",
                        rule.name, open.name
                    ),
                ));
            }
            rules.push(rule);
        }
        // An empty (or comments-only) file would allow everything, even a critical
        // identity: weaker than the built-in policy riskd uses with no file at all.
        if rules.is_empty() && !explicit_no_match {
            return Err(invalid(
                "rules",
                "the policy has no rules: every request would be allowed (set no_match to \
                 decide requests without rules explicitly)",
            ));
        }
        let sensitivity_rules = SensitivityRules::new(&sensitivity.rules);
        Ok(Policy {
            rules,
            no_match,
            sensitivity_rules,
            sensitivity_default: sensitivity.default,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Sensitivity of the request: the configured classification of its action and
    /// destination (`[sensitivity]` rules) raised, never lowered, by
    /// `context.sensitivity`, so a caller cannot talk a restricted destination down to
    /// public.
    pub fn sensitivity_of(
        &self,
        action: &str,
        destination: &str,
        context: &BTreeMap<String, String>,
    ) -> Sensitivity {
        let configured = self.sensitivity_rules.classify(action, destination);
        let declared = context
            .get("sensitivity")
            .and_then(|s| Sensitivity::parse(s.trim()));
        match (configured, declared) {
            (Some(c), Some(d)) => c.max(d),
            (Some(c), None) => c,
            (None, Some(d)) => d,
            (None, None) => self.sensitivity_default,
        }
    }

    /// Decides `input` given the identity's latest signal (`None`: never seen) at `now`.
    pub fn evaluate(
        &self,
        input: &DecisionInput<'_>,
        risk: Option<&Signal>,
        now: DateTime<Utc>,
    ) -> Verdict {
        // The caller's word first (a gateway knows its agent is an agent, where the
        // audit log only says "assumed role"); else the kind riskd saw on the identity's
        // events, so a proxy that sends no kind still meets the rules that select on it.
        let kind = input
            .context
            .get("identity_kind")
            .map(|k| IdentityKind::parse(k.trim()))
            .or_else(|| risk.map(|s| s.identity_kind))
            .unwrap_or(IdentityKind::Unknown);
        let req = Request {
            input,
            kind,
            sensitivity: self.sensitivity_of(input.action, input.destination, input.context),
        };
        let Some(rule) = self.rules.iter().find(|r| r.matches(&req)) else {
            return Verdict {
                decision: self.no_match,
                rule: NO_MATCH_RULE.to_string(),
                sensitivity: req.sensitivity,
                explanation: vec![format!(
                    "no rule matched; no_match = {}",
                    self.no_match.as_str()
                )],
            };
        };
        let failures = rule.failures(&req, risk, now);
        let mut decision = rule.effect;
        let mut explanation = Vec::new();
        if rule.effect > Decision::Allow {
            explanation.push(format!("rule effect is {}", rule.effect.as_str()));
        }
        for (d, why) in failures {
            decision = decision.max(d);
            explanation.push(why);
        }
        if explanation.is_empty() {
            explanation.push("all conditions hold".to_string());
        }
        Verdict {
            decision,
            rule: rule.name.clone(),
            sensitivity: req.sensitivity,
            explanation,
        }
    }
}

/// Deserialises one rule; on failure finds the offending key by trying each key alone, so
/// the error says `rules[3].max_level`, not just "invalid type".
fn deserialize_rule(key: &str, value: toml::Value) -> Result<RawRule, PolicyError> {
    let table = match value {
        toml::Value::Table(t) => t,
        _ => return Err(invalid(key, "each rule must be a table")),
    };
    match toml::Value::Table(table.clone()).try_into::<RawRule>() {
        Ok(rule) => Ok(rule),
        Err(whole) => {
            for (field, v) in &table {
                let mut single = toml::Table::new();
                single.insert(field.clone(), v.clone());
                if let Err(e) = toml::Value::Table(single).try_into::<RawRule>() {
                    return Err(invalid(format!("{key}.{field}"), strip_toml(&e)));
                }
            }
            Err(invalid(key, strip_toml(&whole)))
        }
    }
}

/// toml's error text without its trailing newline.
fn strip_toml(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use chrono::TimeZone;

    fn sens() -> SensitivityConfig {
        Config::default_config().expect("defaults").sensitivity
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn errors_name_rule_index_and_key() {
        let err = Policy::from_toml(
            "[[rules]]\nname = \"a\"\n[[rules]]\nname = \"b\"\nmax_level = \"purple\"\n",
            &sens(),
        )
        .expect_err("bad level");
        assert!(err.to_string().contains("rules[1].max_level"), "{err}");

        let err = Policy::from_toml("[[rules]]\nname = \"a\"\nfoo = 1\n", &sens())
            .expect_err("unknown key");
        assert!(err.to_string().contains("rules[0].foo"), "{err}");

        let err = Policy::from_toml(
            "[[rules]]\nname = \"a\"\nsource_networks = [\"10.0.0/8\"]\n",
            &sens(),
        )
        .expect_err("bad cidr");
        assert!(
            err.to_string().contains("rules[0].source_networks[0]"),
            "{err}"
        );

        let err = Policy::from_toml(
            "[[rules]]\nname = \"a\"\ntime_window = { start = \"25:00\", end = \"10:00\" }\n",
            &sens(),
        )
        .expect_err("bad time");
        assert!(
            err.to_string().contains("rules[0].time_window.start"),
            "{err}"
        );

        let err =
            Policy::from_toml("[[rules]]\nmax_level = \"high\"\n", &sens()).expect_err("no name");
        assert!(err.to_string().contains("rules[0].name"), "{err}");
    }

    #[test]
    fn overnight_window_wraps() {
        let w = TimeWindow::new(
            "w",
            &RawTimeWindow {
                days: Some(vec!["fri".into()]),
                start: "22:00".into(),
                end: "02:00".into(),
            },
        )
        .expect("valid");
        // 2026-11-27 is a Friday.
        assert!(w.contains(at(2026, 11, 27, 23, 0)));
        assert!(w.contains(at(2026, 11, 28, 1, 59)));
        assert!(!w.contains(at(2026, 11, 28, 2, 0)));
        assert!(!w.contains(at(2026, 11, 27, 21, 59)));
    }

    #[test]
    fn a_policy_that_allows_everything_by_accident_is_refused() {
        for text in ["", "# nothing yet\n"] {
            let err = Policy::from_toml(text, &sens()).expect_err("no rules");
            assert!(err.to_string().contains("no rules"), "{err}");
        }
        assert!(Policy::from_toml("no_match = \"deny\"\n", &sens()).is_ok());
        let err = Policy::from_toml(
            "[[rules]]\nname = \"a\"\n[[rules]]\nname = \"b\"\naction = [\"x\"]\n",
            &sens(),
        )
        .expect_err("shadowed");
        assert!(err.to_string().contains("rules[1]"), "{err}");
        assert!(err.to_string().contains("never match"), "{err}");
    }

    #[test]
    fn context_cannot_lower_configured_sensitivity() {
        let policy = Policy::from_toml("no_match = \"allow\"\n", &sens()).expect("empty policy");
        let mut ctx = BTreeMap::new();
        ctx.insert("sensitivity".to_string(), "public".to_string());
        assert_eq!(
            policy.sensitivity_of("s3:GetObject", "s3://payroll-exports", &ctx),
            Sensitivity::Restricted
        );
        ctx.insert("sensitivity".to_string(), "restricted".to_string());
        assert_eq!(
            policy.sensitivity_of("s3:GetObject", "docs", &ctx),
            Sensitivity::Restricted
        );
    }
}
