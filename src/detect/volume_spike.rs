//! `volume_spike`: the event rate in the recent window far above this identity's
//! baseline. Two references, because real traffic has rhythm: the decayed maximum of
//! its hourly peak windows (exceeding anything it did recently is strong), and the
//! seasonal hour-of-day peak (exceeding what it does at this hour is moderate: busy day,
//! quiet night). Peaks rather than averages, so a cron job that fires 100 calls in one
//! minute every hour is not a spike every hour.

use super::{log_ramp, Context, Finding};

/// Below this many events per window nothing is a spike (1 → 5 calls is not an attack).
const FLOOR: f64 = 10.0;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning {
        return None;
    }
    let count = f64::from(ctx.state.window(ctx.obs.time_ms, ctx.params).count) + 1.0;
    if count < FLOOR * 3.0 {
        return None;
    }
    let (peak, _) = ctx.state.peak_max(ctx.obs.hour());
    let global = log_ramp(count / peak.max(FLOOR), 3.0, 20.0);
    let (seasonal, usual) = match ctx.state.seasonal(ctx.obs.hour_of_day()) {
        Some(((mean, dev), _)) => {
            let expected = (mean + 3.0 * dev).max(FLOOR);
            (
                0.5 * log_ramp(count / expected, 3.0, 30.0),
                format!(", this hour {mean:.0}±{dev:.0}"),
            )
        }
        None => (0.0, String::new()),
    };
    let strength = global.max(seasonal);
    Finding::new(
        strength,
        format!(
            "{count:.0} events/{} vs usual peak {peak:.0}{usual}",
            ctx.window_label
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    #[test]
    fn twenty_times_the_usual_rate_fires() {
        let mut h = ci_runner();
        let t = WEEK3_WORKDAY;
        let mut last = None;
        for k in 0..300 {
            let e = event(
                t + k * 500,
                "s3:GetObject",
                "arn:aws:s3:::ci-artifacts/x",
                "10.20.1.1",
                "GitHubActionsRunner/2.1 Linux",
            );
            last = h.ask(&e, FleetView::default(), detect);
            h.feed(&e);
        }
        let f = last.expect("fires");
        assert!(f.strength > 0.8, "{f:?}");
        assert!(f.detail.contains("events/5m"), "{}", f.detail);
    }

    #[test]
    fn usual_rate_is_quiet() {
        let h = ci_runner();
        let e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "10.20.1.1",
            "GitHubActionsRunner/2.1 Linux",
        );
        assert_eq!(h.ask(&e, FleetView::default(), detect), None);
    }
}
