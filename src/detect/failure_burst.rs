//! `failure_burst`: a spike of `denied`/`error` outcomes in the recent window beyond what
//! this identity's usual failure rate explains (permission probing with stolen or
//! over-reaching credentials). Only fires on a failing event, so the burst is now. Not
//! muted while learning (a brand-new key probing permissions is exactly this), but
//! needs a few dozen events of outcome history. Fleet-wide incidents (every controller
//! erroring for ten minutes) are discounted by the engine's fleet pulse.

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
    Finding::new(
        lin_ramp(excess, 2.0, 14.0),
        format!(
            "{fails:.0} of {count:.0} calls failed in {} (usual {:.1}%)",
            ctx.window_label,
            100.0 * rate
        ),
    )
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
            "iam:ListRoles",
            "arn:aws:iam::1:role",
            "10.20.1.1",
            "x/1",
        );
        e.outcome = Outcome::Denied;
        assert_eq!(h.ask(&e, FleetView::default(), detect), None);
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
