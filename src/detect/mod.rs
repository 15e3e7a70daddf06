//! Detectors (design §4), one file each, no IO. Each looks at one event against its
//! identity's state *before* the event is folded in and returns a strength in [0, 1]
//! with a readable detail, or `None` when it has nothing to say.
//!
//! Shared principles (design §3, real NHI traffic):
//! - novelty is judged against the identity's own learned novelty rate ([`rarity`]),
//!   at the generalised granularity (see `state::generalize`);
//! - a novelty many other identities met recently is weak evidence ([`fleet_discount`]);
//! - identities still `learning` get no novelty or volume findings, except a first use
//!   of an action `score.impair_defences` names (impairing logging or detection), which
//!   scores high for any identity;
//! - one detector alone rarely reaches `high`: attacks combine weak signs in the score.

pub mod data_volume_spike;
pub mod destination_burst;
pub mod failure_burst;
pub mod new_action;
pub mod new_destination;
pub mod new_source;
pub mod off_hours;
pub mod volume_spike;

use std::cell::OnceCell;

use crate::event::{ActivityEvent, Sensitivity};
use crate::state::generalize::SourceClass;
use crate::state::identity::Bucket;
use crate::state::{Identity, Novelty, Observation, StateParams};

/// Detector indices, in the fixed order of design §4 and `metrics::DETECTORS`.
pub const VOLUME_SPIKE: usize = 0;
pub const DATA_VOLUME_SPIKE: usize = 1;
pub const NEW_DESTINATION: usize = 2;
pub const DESTINATION_BURST: usize = 3;
pub const NEW_ACTION: usize = 4;
pub const NEW_SOURCE: usize = 5;
pub const OFF_HOURS: usize = 6;
pub const FAILURE_BURST: usize = 7;
pub const COUNT: usize = 8;

pub const NAMES: [&str; COUNT] = crate::metrics::DETECTORS;

/// Below this a finding is noise: at most a few points even at full weight and
/// restricted sensitivity, too little to change a level or help a reader, and skipping it
/// keeps most events off the scoring path.
pub const MIN_STRENGTH: f64 = 0.08;

/// What one detector found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub strength: f64,
    pub detail: String,
}

impl Finding {
    pub fn new(strength: f64, detail: String) -> Option<Finding> {
        let strength = if strength.is_finite() {
            strength.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (strength >= MIN_STRENGTH).then_some(Finding { strength, detail })
    }

    /// Like [`Finding::new`], but formats the detail only when the finding is kept:
    /// most calls return nothing, and formatting floats is the dearest step left.
    pub fn lazy(strength: f64, detail: impl FnOnce() -> String) -> Option<Finding> {
        let strength = if strength.is_finite() {
            strength.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (strength >= MIN_STRENGTH).then(|| Finding {
            strength,
            detail: detail(),
        })
    }
}

/// Readable forms of the generalised fields, for details.
#[derive(Debug, Clone, Default)]
pub struct Texts {
    pub destination: String,
    /// Length of the destination's class, which is always a prefix of it
    /// ([`crate::state::generalize::destination_class`]): kept as a length rather than
    /// a second copy, which every event paid for.
    pub class_len: usize,
    pub network: String,
    pub user_agent: String,
}

impl Texts {
    /// The destination's class (see [`Texts::class_len`]).
    pub fn class(&self) -> &str {
        // Always a boundary (the class is cut at an ASCII separator of this very text);
        // checked in debug builds so a future change cannot turn it into a silent "".
        debug_assert!(self.destination.is_char_boundary(self.class_len));
        self.destination.get(..self.class_len).unwrap_or_default()
    }
}

/// Other identities that met the same novelty recently (0 when not new).
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetView {
    pub destination: u32,
    pub class: u32,
    pub action: u32,
    pub user_agent: u32,
    /// Other identities, not alerting now, that took up the same new action on earlier
    /// days within `score.fleet_peer_memory` ([`crate::state::fleet::FleetNovelty::peers`]).
    pub action_peers: u32,
}

/// Everything a detector may look at.
pub struct Context<'a> {
    pub event: &'a ActivityEvent,
    pub obs: &'a Observation,
    /// State before this event.
    pub state: &'a Identity,
    pub novelty: &'a Novelty,
    pub params: &'a StateParams,
    pub learning: bool,
    /// `score.impair_defences` names the call and this identity never made such a call
    /// (the engine's judgement: see `Identity::impaired`): `new_action` scores it high,
    /// learning or not.
    pub impairs_defences: bool,
    pub texts: &'a Texts,
    pub fleet: FleetView,
    pub sensitivity: Sensitivity,
    /// The call's sensitivity, confidential or restricted, when this identity never met
    /// anything at that level before: its first secret or customer record. The novelty
    /// detectors then judge it without the identity's novelty rate, which its routine
    /// churn through less sensitive things sets (a coding agent meets a few new files a
    /// day, but never a secrets file).
    pub first_at_level: Option<Sensitivity>,
    pub window_label: &'a str,
    /// The state's window totals, computed by the first detector that asks
    /// ([`Context::window`]); empty when the context is built.
    pub(crate) window_totals: OnceCell<Bucket>,
}

impl Context<'_> {
    /// Window totals of the state before this event ([`Identity::window`] at the event's
    /// time). Up to four detectors read them; the state cannot change while they run, so
    /// the ring is summed once per event instead of once per detector.
    pub fn window(&self) -> Bucket {
        *self
            .window_totals
            .get_or_init(|| self.state.window(self.obs.time_ms, self.params))
    }

    pub fn source_class(&self) -> Option<SourceClass> {
        self.obs.network.map(|n| n.1)
    }
}

/// Runs every detector in index order.
pub fn run_all(ctx: &Context<'_>) -> [Option<Finding>; COUNT] {
    [
        volume_spike::detect(ctx),
        data_volume_spike::detect(ctx),
        new_destination::detect(ctx),
        destination_burst::detect(ctx),
        new_action::detect(ctx),
        new_source::detect(ctx),
        off_hours::detect(ctx),
        failure_burst::detect(ctx),
    ]
}

/// How surprising one more novelty is for an identity that meets `rate_per_day` new
/// things of this kind a day: 1 for an identity that never changes, 1/2 at one a day,
/// ~0.1 at ten a day.
pub fn rarity(rate_per_day: f64) -> f64 {
    1.0 / (1.0 + rate_per_day.max(0.0))
}

/// Weight of a novelty that `others` identities met recently. One or two others are
/// coincidence (or a campaign), not a fleet-wide change: no discount. From three on it
/// falls: 2/3 at three, 0.4 at five, 0.2 at ten, < 0.1 at twenty-five.
pub fn fleet_discount(others: u32) -> f64 {
    1.0 / (1.0 + f64::from(others.saturating_sub(2)) / 2.0)
}

/// True when a new action and a new destination class are one change, not two: the
/// action's service namespace names the destination's service (`sqs:SendMessage` on
/// `arn:aws:sqs:...:queue`, `cloudwatch:PutMetricData` on `cloudwatch`), or a Kubernetes
/// verb's resource is the destination's resource type (`create configmaps` on
/// `prod/configmaps/app`). Starting to use a service is one piece of evidence; counting
/// it twice made routine adoption (a job that starts publishing metrics) look like an
/// attack's "several weak signs".
pub fn same_service(action: &str, destination: &str) -> bool {
    if let Some((service, verb)) = action.split_once(':') {
        if service.is_empty() || verb.is_empty() || service.contains(' ') {
            return false;
        }
        if let Some(rest) = destination.strip_prefix("arn:") {
            // arn:partition:service:...
            return rest.split(':').nth(1) == Some(service);
        }
        return destination == service
            || destination
                .strip_prefix(service)
                .is_some_and(|r| r.starts_with('.'));
    }
    // Kubernetes: `<verb> <resource>[/<subresource>]` on `<namespace>/<resource>/<name>`
    // or `<resource>/<name>` for cluster-scoped objects.
    let Some((verb, resource)) = action.split_once(' ') else {
        return false;
    };
    if verb.is_empty() || resource.starts_with('/') {
        return false;
    }
    let resource = resource.split('/').next().unwrap_or(resource);
    !resource.is_empty() && destination.split('/').take(2).any(|part| part == resource)
}

/// 0 at `lo`, 1 at `hi`, linear in log space between (ratios).
pub fn log_ramp(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() || x <= lo {
        return 0.0;
    }
    ((x / lo).ln() / (hi / lo).ln()).clamp(0.0, 1.0)
}

/// 0 at `lo`, 1 at `hi`, linear between.
pub fn lin_ramp(x: f64, lo: f64, hi: f64) -> f64 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::same_service;

    #[test]
    fn same_service_pairs_action_and_destination_of_one_call() {
        for (action, dest) in [
            (
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:1:fx-rates-sync-done",
            ),
            ("cloudwatch:PutMetricData", "cloudwatch"),
            ("s3:ListBuckets", "s3.amazonaws.com"),
            ("create configmaps", "prod/configmaps/app"),
            ("create pods/exec", "prod/pods/web-1"),
            ("list namespaces", "namespaces"),
        ] {
            assert!(same_service(action, dest), "{action} on {dest}");
        }
        for (action, dest) in [
            ("s3:PutObject", "arn:aws:kms:us-east-1:1:key/x"),
            ("iam:PassRole", "arn:aws:s3:::bucket/key"),
            ("sts:AssumeRole", "s3"),
            ("git:push", "github.com/acme/repo"),
            ("get secrets", "prod/configmaps/app"),
            ("GET /v1/items", "https://api.internal/v1/items"),
            ("", ""),
        ] {
            assert!(!same_service(action, dest), "{action} on {dest}");
        }
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! A small harness: build an identity from synthetic history, then ask a detector
    //! about one more event.

    use super::*;
    use crate::state::generalize::{
        destination_class, generalise_destination, source_network, user_agent_family,
    };
    use crate::state::hash::stable_hash;

    pub const T0: i64 = 1_763_942_400_000; // Monday 2025-11-24 00:00 UTC

    pub fn params() -> StateParams {
        StateParams {
            bucket_ms: 60_000,
            window_buckets: 5,
            max_seen_entries: 64,
            learning_min_events: 50,
            learning_min_span_ms: 86_400_000,
            learning_sparse_span_ms: 0,
            novelty_half_life_ms: 7.0 * 86_400_000.0,
        }
    }

    pub fn event(t: i64, action: &str, dest: &str, ip: &str, ua: &str) -> ActivityEvent {
        ActivityEvent {
            time_ms: t,
            identity: "test-identity".into(),
            action: action.into(),
            destination: dest.into(),
            source_ip: Some(ip.into()),
            user_agent: Some(ua.into()),
            ..ActivityEvent::default()
        }
    }

    pub fn observe(e: &ActivityEvent, texts: &mut Texts) -> Observation {
        generalise_destination(&e.destination, &mut texts.destination);
        texts.class_len = destination_class(&texts.destination).len();
        let class = source_network(
            e.source_network.as_deref(),
            e.source_ip.as_deref(),
            &mut texts.network,
        );
        if let Some(ua) = &e.user_agent {
            user_agent_family(ua, &mut texts.user_agent);
        }
        Observation {
            time_ms: e.time_ms,
            dest: stable_hash(1, texts.destination.as_bytes()),
            class: stable_hash(2, texts.class().as_bytes()),
            action: stable_hash(3, e.action.as_bytes()),
            network: class.map(|c| (stable_hash(4, texts.network.as_bytes()), c)),
            user_agent: e
                .user_agent
                .as_ref()
                .map(|_| stable_hash(5, texts.user_agent.as_bytes())),
            environment: e.environment.as_ref().map(|v| stable_hash(6, v.as_bytes())),
            failure: e.outcome.is_failure(),
            failure_key: if e.outcome.is_failure() {
                crate::state::failure_key(&e.action, &e.destination)
            } else {
                0
            },
            data: e.bytes.unwrap_or(0) + e.records.unwrap_or(0) * 256,
            // The engine matches the sensitivity rules; tests state the sensitivity.
            sensitive_read: !e.outcome.is_failure()
                && e.sensitivity >= Some(crate::event::Sensitivity::Confidential)
                && crate::engine::is_read(&e.action),
        }
    }

    pub struct Harness {
        pub state: Identity,
        pub params: StateParams,
        /// What the engine's `score.impair_defences` lookup would say.
        pub impairs_defences: bool,
    }

    impl Harness {
        pub fn new() -> Self {
            let params = params();
            Harness {
                state: Identity::new(T0, &params),
                params,
                impairs_defences: false,
            }
        }

        pub fn feed(&mut self, e: &ActivityEvent) {
            let mut texts = Texts::default();
            let obs = observe(e, &mut texts);
            let n = self.state.novelty(&obs);
            self.state.fold(&obs, &n, &self.params);
        }

        /// Runs detector `f` on `e` against the current state (without folding it).
        pub fn ask(
            &self,
            e: &ActivityEvent,
            fleet: FleetView,
            f: fn(&Context<'_>) -> Option<Finding>,
        ) -> Option<Finding> {
            let mut texts = Texts::default();
            let obs = observe(e, &mut texts);
            let novelty = self.state.novelty(&obs);
            let ctx = Context {
                event: e,
                obs: &obs,
                state: &self.state,
                novelty: &novelty,
                params: &self.params,
                learning: !self.state.is_active(),
                // As the engine judges it for an identity whose sets did not overflow:
                // listed, and new by action (or destination).
                impairs_defences: self.impairs_defences && (novelty.action || novelty.dest),
                texts: &texts,
                fleet,
                sensitivity: e.sensitivity.unwrap_or_default(),
                first_at_level: None,
                window_label: "5m",
                window_totals: OnceCell::new(),
            };
            f(&ctx)
        }
    }

    /// Two weeks of a CI runner: weekday working hours, a few events every ten minutes,
    /// a fresh private IP each time, one UA family across versions.
    pub fn ci_runner() -> Harness {
        let mut h = Harness::new();
        let mut n = 0u64;
        for day in 0..14i64 {
            if day % 7 >= 5 {
                continue;
            }
            for slot in 0..(9 * 6) {
                let t = T0 + day * 86_400_000 + 8 * 3_600_000 + slot * 600_000;
                for k in 0..3 {
                    n += 1;
                    let ip = format!("10.{}.{}.{}", 20 + n % 3, n % 250, (n * 7) % 250);
                    let ua = format!("GitHubActionsRunner/2.{}.0 Linux", 300 + day);
                    let dest = format!(
                        "arn:aws:s3:::ci-artifacts/builds/{:x}/out.tar",
                        n * 0x9e3779b9
                    );
                    let action = if k == 0 {
                        "s3:PutObject"
                    } else {
                        "s3:GetObject"
                    };
                    let mut e = event(t + k * 1000, action, &dest, &ip, &ua);
                    e.bytes = Some(10_000 + (n % 7) * 1000);
                    h.feed(&e);
                }
            }
        }
        h
    }

    /// A Monday 10:00 in week three, right after `ci_runner`'s history.
    pub const WEEK3_WORKDAY: i64 = T0 + 14 * 86_400_000 + 10 * 3_600_000;
}
