//! `failure_burst`: a spike of `denied`/`error` outcomes in the recent window beyond what
//! this identity's usual failure rate explains (permission probing with stolen or
//! over-reaching credentials). Only fires on a failing event, so the burst is now. Not
//! muted while learning (a brand-new key probing permissions is exactly this), but
//! needs a few dozen events of outcome history. Fleet-wide incidents (every controller
//! erroring for ten minutes) are discounted by the engine's fleet pulse.
//!
//! A refusal of something this identity never did before (a new action or a new
//! destination container) counts on its own as a weak sign even without a burst: that is
//! what trying a permission one does not have looks like, one call at a time.

use super::{lin_ramp, Context, Finding};

const MIN_HISTORY: u64 = 20;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if !ctx.obs.failure || ctx.state.events < MIN_HISTORY {
        return None;
    }
    let w = ctx.state.window(ctx.obs.time_ms, ctx.params);
    let fails = f64::from(w.fails) + 1.0;
    let count = f64::from(w.count) + 1.0;
    let rate = f64::from(ctx.state.fail_rate);
    let expected = rate * count;
    // Poisson-style slack: two standard deviations plus two calls.
    let excess = fails - expected - 2.0 * expected.sqrt();
    let burst = lin_ramp(excess, 2.0, 14.0);
    let novel = !ctx.learning && (ctx.novelty.action || ctx.novelty.class);
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
    use crate::event::Outcome;

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
        // A refusal on an action it never used is a weak sign on its own.
        e.action = "iam:ListRoles".into();
        e.destination = "arn:aws:iam::1:role".into();
        let probe = h.ask(&e, FleetView::default(), detect).expect("probe");
        assert!(probe.strength < 0.5, "{probe:?}");
        let mut last = None;
        for k in 0..20 {
            let mut e = e.clone();
            e.time_ms += k * 3000;
            last = h.ask(&e, FleetView::default(), detect);
            h.feed(&e);
        }
        assert!(last.expect("fires").strength > 0.9);
    }
}
