//! `destination_burst`: many distinct new (generalised) destinations in the recent window,
//! well beyond what this identity's novelty rate predicts: enumeration, scanning,
//! exfiltration sweeping across resources. Failed calls count too: probing routes it
//! never touched is the same sign.

use super::{log_ramp, Context, Finding};
use crate::state::SeenKind;

/// New destinations per window below which nothing is a burst.
const MIN_NEW: f64 = 4.0;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning || !ctx.novelty.dest {
        return None;
    }
    let now = ctx.obs.time_ms;
    let window = ctx.window();
    let fresh = f64::from(window.new_dests) + 1.0;
    if fresh < MIN_NEW {
        return None;
    }
    let window_days =
        (ctx.params.bucket_ms * ctx.params.window_buckets as i64) as f64 / 86_400_000.0;
    let rate = ctx
        .state
        .novelty_rate_per_day(SeenKind::Destination, now, ctx.params);
    // Spread evenly over the day, the rate predicts this many per window...
    let spread = rate * window_days;
    // ...but identities that work in sessions (a coding agent reading a repository it
    // just cloned, a copilot working through a ticket) meet their new destinations
    // while they are busy: per event, at the share of its events that met something new,
    // this window's activity predicts this many. Recon by a key that rarely meets
    // anything new still stands out, as its share per event is small.
    let days = (ctx.state.history_ms(now) as f64 / 86_400_000.0).max(0.5);
    let events_per_day = (ctx.state.events as f64 / days).max(1.0);
    let per_event = (rate / events_per_day).min(1.0);
    let in_session = per_event * (f64::from(window.count) + 1.0);
    let expected = spread.max(in_session);
    let excess = fresh / (expected + 1.0);
    Finding::lazy(log_ramp(excess, MIN_NEW / 2.0, 20.0), || {
        format!(
            "{fresh:.0} new destinations in {} (expected {expected:.1})",
            ctx.window_label
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    #[test]
    fn sweep_across_new_buckets_fires() {
        let mut h = ci_runner();
        let mut last = None;
        for k in 0..20 {
            let e = event(
                WEEK3_WORKDAY + k * 2000,
                "s3:ListBucket",
                &format!(
                    "arn:aws:s3:::bucket-{}",
                    ["alpha", "beta", "gamma", "delta", "omega"][k as usize % 5].to_owned()
                        + &"x".repeat(k as usize)
                ),
                "10.20.1.1",
                "GitHubActionsRunner/2.1 Linux",
            );
            last = h.ask(&e, FleetView::default(), detect);
            h.feed(&e);
        }
        assert!(last.expect("fires").strength > 0.6);
    }

    #[test]
    fn usual_work_is_quiet() {
        let mut h = ci_runner();
        for k in 0..20 {
            let e = event(
                WEEK3_WORKDAY + k * 2000,
                "s3:GetObject",
                &format!(
                    "arn:aws:s3:::ci-artifacts/builds/{:x}/out.tar",
                    0xabc000 + k
                ),
                "10.20.1.1",
                "GitHubActionsRunner/2.1 Linux",
            );
            assert_eq!(h.ask(&e, FleetView::default(), detect), None);
            h.feed(&e);
        }
    }
}
