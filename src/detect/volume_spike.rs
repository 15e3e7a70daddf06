//! `volume_spike`: the event rate in the recent window far above this identity's
//! baseline. Two references, because real traffic has rhythm: the decayed maximum of
//! its hourly peak windows (exceeding anything it did recently is strong), and the
//! seasonal hour-of-day peak (exceeding what it does at this hour is moderate: busy day,
//! quiet night). Peaks rather than averages, so a cron job that fires 100 calls in one
//! minute every hour is not a spike every hour. A third reference catches sustained
//! excess that never shows as a short peak (an agent reading twenty times its usual
//! volume, spread over an hour): the last hour's total against the decayed maximum of
//! its hourly totals.

use super::{log_ramp, Context, Finding};

/// Below this many events per window nothing is a spike (1 → 5 calls is not an attack).
const FLOOR: f64 = 10.0;
/// The same per hour.
const HOUR_FLOOR: f64 = 30.0;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning {
        return None;
    }
    let count = f64::from(ctx.state.window(ctx.obs.time_ms, ctx.params).count) + 1.0;
    let hour_count = ctx.state.last_hour(ctx.obs.time_ms).0 + 1.0;
    if count < FLOOR * 3.0 && hour_count < HOUR_FLOOR * 3.0 {
        return None;
    }
    let (peak, _) = ctx.state.peak_max(ctx.obs.hour());
    let (hour_max, _) = ctx.state.hour_max(ctx.obs.hour());
    let global = log_ramp(count / peak.max(FLOOR), 2.5, 15.0);
    let hourly = log_ramp(hour_count / hour_max.max(HOUR_FLOOR), 2.5, 15.0);
    let season = ctx.state.seasonal(ctx.obs.hour_of_day());
    let seasonal = season.map_or(0.0, |(mean, dev)| {
        0.5 * log_ramp(count / (mean + 3.0 * dev).max(FLOOR), 3.0, 30.0)
    });
    let usual = move || {
        season.map_or_else(String::new, |(mean, dev)| {
            format!(", this hour {mean:.0}±{dev:.0}")
        })
    };
    let strength = global.max(seasonal).max(hourly);
    Finding::lazy(strength, || {
        format!(
            "{count:.0} events/{} vs usual peak {peak:.0}{}; {hour_count:.0} in the last hour vs usual max {hour_max:.0}",
            ctx.window_label,
            usual()
        )
    })
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
