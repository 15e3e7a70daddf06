//! `failure_burst`: a spike of `denied`/`error` outcomes in the recent window beyond what
//! this identity's usual failure rate explains (permission probing with stolen or
//! over-reaching credentials). Only fires on a failing event, so the burst is now. Not
//! muted while learning (a brand-new key probing permissions is exactly this), but
//! needs a few events of outcome history. Fleet-wide incidents (every controller
//! erroring for ten minutes) are discounted by the engine's fleet pulse.
//!
//! When the failing call was *refused* (denied, the shape of permission probing), the
//! usual failure rate of a young identity leans on a prior (a few percent, worth
//! [`PRIOR_EVENTS`] events) rather than on its own first calls alone: a fresh role whose
//! every call so far was refused (the Stratus `ec2-get-password-data` technique: 29
//! denied calls and nothing else) would otherwise have learned that failing is normal
//! by the time it had history enough to be judged. An established identity's own rate
//! outweighs the prior. Errors (not found, conflict, throttling) are control flow for a
//! young identity as often as not (a Helm install checks for every resource before
//! creating it: real Kubernetes audit data has new service accounts with a third of
//! their first calls failing that way), so they are judged against the identity's own
//! rate, only after [`MIN_HISTORY_ERRORS`] events, and not while it is learning.
//!
//! Only *distinct* failing calls count: SDKs and controllers retry a throttled or
//! refused call with backoff, so one misconfigured key policy shows up as tens of
//! identical refusals (the same `kms:Decrypt` on the same key), where probing fails on
//! one call after another (see [`crate::state::Identity::last_failures`]).
//!
//! A refusal of something this identity never did before (a new action or a new
//! destination container) counts on its own as a weak sign even without a burst: that is
//! what trying a permission one does not have looks like, one call at a time.

use super::{lin_ramp, Context, Finding};
use crate::event::Outcome;

/// Events of history before a burst of refusals is judged.
const MIN_HISTORY: u64 = 10;
/// Events of history before a burst of errors is judged.
const MIN_HISTORY_ERRORS: u64 = 20;
/// Prior failure rate: what a typical service identity sees (throttling, races, the odd
/// missing permission).
const PRIOR_RATE: f64 = 0.05;
/// How many events of evidence the prior is worth.
const PRIOR_EVENTS: f64 = 50.0;

/// The identity's usual failure rate: its own rate (an EWMA over ~200 events, a plain
/// mean before that) pulled toward [`PRIOR_RATE`] in proportion to how little history
/// backs it. While the rate is still a plain mean it holds the recent window's calls
/// exactly, and those are taken out: a burst is judged against the history before it,
/// not against itself.
fn usual_rate(own: f64, events: u64, window_fails: f64, window_calls: f64) -> f64 {
    const EWMA_EVENTS: u64 = 200;
    let n = events.min(EWMA_EVENTS) as f64;
    let (fails, calls) = if events < EWMA_EVENTS {
        let calls = (n - window_calls).max(0.0);
        ((own * n - window_fails).clamp(0.0, calls), calls)
    } else {
        (own * n, n)
    };
    (fails + PRIOR_RATE * PRIOR_EVENTS) / (calls + PRIOR_EVENTS)
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    let denied = ctx.event.outcome == Outcome::Denied;
    let min_history = if denied {
        MIN_HISTORY
    } else {
        MIN_HISTORY_ERRORS
    };
    // A retry of a call that just failed is the same failure again, not a new one.
    if !ctx.obs.failure || ctx.state.events < min_history || ctx.state.is_retry(ctx.obs) {
        return None;
    }
    // Errors are a young identity's control flow (an install asks for each object before
    // creating it): judged only once it has learned what is usual for it. Refusals are
    // judged from the start.
    if !denied && ctx.learning {
        return None;
    }
    let w = ctx.window();
    let fails = f64::from(w.fails) + 1.0;
    let count = f64::from(w.count) + 1.0;
    let own = f64::from(ctx.state.fail_rate);
    let rate = if denied {
        usual_rate(
            own,
            ctx.state.events,
            f64::from(w.fails),
            f64::from(w.count),
        )
    } else {
        own
    };
    let expected = rate * count;
    // Poisson-style slack: two standard deviations plus two calls.
    let excess = fails - expected - 2.0 * expected.sqrt();
    let burst = lin_ramp(excess, 2.0, 14.0);
    let novel = denied && !ctx.learning && (ctx.novelty.action || ctx.novelty.class);
    let probe = if novel { 0.4 } else { 0.0 };
    Finding::lazy(burst.max(probe), || {
        format!(
            "{fails:.0} of {count:.0} calls failed in {} (usual {:.1}%){}",
            ctx.window_label,
            100.0 * rate,
            if novel {
                "; refused on something it never did before"
            } else {
                ""
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;
    use crate::event::ActivityEvent;

    #[test]
    fn burst_of_denials_fires_and_single_error_is_quiet() {
        let mut h = ci_runner();
        let mut e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "10.20.1.1",
            "x/1",
        );
        e.outcome = Outcome::Denied;
        assert_eq!(h.ask(&e, FleetView::default(), detect), None);
        // A refusal on an action it never used is a weak sign on its own ...
        e.action = "iam:ListRoles".into();
        e.destination = "arn:aws:iam::1:role".into();
        let probe = h.ask(&e, FleetView::default(), detect).expect("probe");
        assert!(probe.strength < 0.5, "{probe:?}");
        // ... but a first call that errs (not found, throttled) is not a refusal.
        let mut erred = e.clone();
        erred.outcome = Outcome::Error;
        assert_eq!(h.ask(&erred, FleetView::default(), detect), None);
        // Twenty refusals, each on another role (enumeration, not a retry), are a burst.
        let mut strongest: f64 = 0.0;
        for k in 0..20 {
            let mut e = e.clone();
            e.time_ms += k * 3000;
            e.destination = format!("arn:aws:iam::1:role/r{k}");
            if let Some(f) = h.ask(&e, FleetView::default(), detect) {
                strongest = strongest.max(f.strength);
            }
            h.feed(&e);
        }
        assert!(strongest > 0.9, "{strongest}");
    }

    /// Feeds `calls` copies of `e`, `gap_ms` apart, asking the detector before each;
    /// returns the strongest finding. With `distinct`, each call names its own instance
    /// (`<destination>-<k>`), as probing does; without, each is a retry of the first.
    fn strongest_over(
        h: &mut Harness,
        e: &ActivityEvent,
        calls: i64,
        gap_ms: i64,
        distinct: bool,
    ) -> f64 {
        let mut strongest: f64 = 0.0;
        for k in 0..calls {
            let mut e = e.clone();
            e.time_ms += k * gap_ms;
            if distinct {
                e.destination = format!("{}-{k}", e.destination);
            }
            if let Some(f) = h.ask(&e, FleetView::default(), detect) {
                strongest = strongest.max(f.strength);
            }
            h.feed(&e);
        }
        strongest
    }

    #[test]
    fn a_new_identity_refused_on_every_call_fires() {
        // A fresh role that does nothing but try a call it may not make, on 29 instances
        // in a minute (the shape of Stratus's ec2-get-password-data: each call names
        // another instance id).
        let mut e = event(
            T0,
            "ec2:GetPasswordData",
            "arn:aws:ec2:us-east-1:1:instance/i-0abc",
            "192.168.10.20",
            "aws-sdk-go/1.44",
        );
        e.outcome = Outcome::Denied;
        let strongest = strongest_over(&mut Harness::new(), &e, 29, 2000, true);
        assert!(strongest > 0.6, "strongest {strongest}");
    }

    #[test]
    fn retries_of_one_refused_call_are_one_failure() {
        // A job whose key policy does not let it decrypt: its SDK retries the same
        // `kms:Decrypt` on the same key 30 times. That is one misconfiguration, not 30
        // probes; 30 refusals of *different* calls are.
        let mut h = ci_runner();
        let mut e = event(
            WEEK3_WORKDAY,
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:1:key/0b9e6c1e-5a9f-4a57-8d0e-3f1c2b7a9d10",
            "10.20.1.1",
            "x/1",
        );
        e.outcome = Outcome::Denied;
        let retried = strongest_over(&mut h, &e, 30, 3000, false);
        // The first refusal is new to the identity (the weak probe sign); no burst after.
        assert!(retried <= 0.4, "retries made a burst: {retried}");
        e.action = "secretsmanager:GetSecretValue".into();
        e.destination = "arn:aws:secretsmanager:us-east-1:1:secret:prod/db".into();
        e.time_ms += 10 * 60_000;
        let probed = strongest_over(&mut h, &e, 30, 3000, true);
        assert!(probed > 0.9, "distinct refusals: {probed}");
    }

    #[test]
    fn a_controller_retrying_the_objects_it_reconciles_is_one_failure_each() {
        // After an RBAC change a controller is refused on the three objects it keeps in
        // sync, and requeues each every few seconds: ninety refusals, three failures.
        let mut h = ci_runner();
        let mut strongest: f64 = 0.0;
        for k in 0..90i64 {
            let mut e = event(
                WEEK3_WORKDAY + k * 3000,
                "s3:GetObject",
                &format!("arn:aws:s3:::ci-artifacts/x{}", k % 3),
                "10.20.1.1",
                "x/1",
            );
            e.outcome = Outcome::Denied;
            if let Some(f) = h.ask(&e, FleetView::default(), detect) {
                strongest = strongest.max(f.strength);
            }
            h.feed(&e);
        }
        assert!(strongest < 0.5, "{strongest}");
    }

    #[test]
    fn a_new_identity_with_a_few_refusals_is_quiet() {
        // A new service missing one permission for its first ten calls, then fixed.
        let mut e = event(
            T0,
            "sqs:ReceiveMessage",
            "arn:aws:sqs:us-east-1:1:jobs",
            "10.1.2.3",
            "aws-sdk-go/1.44",
        );
        let mut h = Harness::new();
        e.outcome = Outcome::Denied;
        // Counted as ten different calls, the stricter case.
        assert_eq!(strongest_over(&mut h, &e, 10, 2000, true), 0.0);
        e.outcome = Outcome::Success;
        e.time_ms += 60_000;
        strongest_over(&mut h, &e, 40, 20_000, false);
        // One more refusal later on is not a burst.
        e.outcome = Outcome::Denied;
        e.time_ms += 3_600_000;
        assert!(strongest_over(&mut h, &e, 1, 0, true) < 0.1);
    }

    #[test]
    fn a_new_identity_whose_lookups_find_nothing_is_quiet() {
        // A fresh service account installing a chart: it asks for every resource before
        // creating it, and the first dozen answers are "not found".
        let mut e = event(
            T0,
            "get configmaps",
            "monitoring/configmaps/prometheus-rules",
            "10.1.2.3",
            "helm/3.11",
        );
        e.outcome = Outcome::Error;
        let strongest = strongest_over(&mut Harness::new(), &e, 30, 2000, true);
        assert!(strongest < 0.1, "strongest {strongest}");
    }

    #[test]
    fn usual_rate_leans_on_the_prior_only_while_history_is_short() {
        // Twenty refusals out of twenty calls do not make refusal normal, whether
        // they are the burst being judged or history before it ...
        assert!((usual_rate(1.0, 20, 20.0, 20.0) - PRIOR_RATE).abs() < 1e-9);
        assert!(usual_rate(1.0, 20, 0.0, 0.0) < 0.35);
        // ... but a long history of it does, and a clean long history stays clean.
        assert!(usual_rate(1.0, 5_000, 30.0, 30.0) > 0.75);
        assert!(usual_rate(0.0, 5_000, 0.0, 0.0) < 0.02);
    }

    #[test]
    fn an_identity_that_always_fails_a_little_is_quiet() {
        // One call in five refused, steadily, from its first day: usual for it.
        let mut h = Harness::new();
        let mut last = None;
        for k in 0..300 {
            let mut e = event(
                T0 + k * 20_000,
                "sqs:ReceiveMessage",
                "arn:aws:sqs:us-east-1:1:jobs",
                "10.1.2.3",
                "aws-sdk-go/1.44",
            );
            if k % 5 == 0 {
                e.outcome = Outcome::Error;
                last = h.ask(&e, FleetView::default(), detect);
            }
            h.feed(&e);
        }
        assert!(last.as_ref().map_or(0.0, |f| f.strength) < 0.2, "{last:?}");
    }
}
