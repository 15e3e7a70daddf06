//! `volume_spike`: the event rate in the recent window far above this identity's
//! baseline. Two references, because real traffic has rhythm: the decayed maximum of
//! its hourly peak windows (exceeding anything it did recently is strong), and the
//! seasonal hour-of-day peak (exceeding what it does at this hour is moderate: busy day,
//! quiet night). Peaks rather than averages, so a cron job that fires 100 calls in one
//! minute every hour is not a spike every hour. A third reference catches sustained
//! excess that never shows as a short peak (an agent reading twenty times its usual
//! volume, spread over an hour): the last hour's total against the decayed maximum of
//! its hourly totals.
//!
//! The volume of sensitive reads is judged apart, as their share of the identity's
//! calls hour by hour ([`crate::state::reads`]): a thief reading a few customer records
//! an hour with a key that reads some anyway stays far below every volume floor, but
//! after a few hours most of the key's calls are such reads. That finding lands on the
//! reads themselves.

use super::{lin_ramp, log_ramp, Context, Finding};
use crate::state::reads::THRESHOLD;

/// Below this many events per window nothing is a spike (1 → 5 calls is not an attack).
const FLOOR: f64 = 10.0;
/// The same per hour.
const HOUR_FLOOR: f64 = 30.0;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning {
        return None;
    }
    let mix = sensitive_mix(ctx);
    match (calls(ctx), mix) {
        (Some(a), Some(b)) => Some(if b.strength > a.strength { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Strength of a share of sensitive reads at [`THRESHOLD`] of evidence, reached at twice
/// that: elevated on its own at first, high after a few more hours of it.
const MIX_STRENGTH: (f64, f64) = (0.6, 0.95);

/// The share of sensitive reads running above its usual level for hours, judged at a
/// sensitive read.
fn sensitive_mix(ctx: &Context<'_>) -> Option<Finding> {
    if !ctx.obs.sensitive_read {
        return None;
    }
    let x = ctx.state.sensitive_excess(ctx.obs)?;
    // Once an alert reported the excess under way, hours more of it would only raise
    // the same alert again every hour (as for a lingering novelty).
    if !x.is_finding() || x.reported {
        return None;
    }
    let (lo, hi) = MIX_STRENGTH;
    let strength = lo + (hi - lo) * lin_ramp(x.evidence, THRESHOLD, 2.0 * THRESHOLD);
    Finding::lazy(strength, || {
        format!(
            "sensitive reads are {} of {} calls this hour against {:.0}% of its calls usually; \
             above that share over its last {} hours of calls",
            x.hour_reads,
            x.hour_calls,
            100.0 * x.share,
            x.hours
        )
    })
}

/// The call rate against its references.
fn calls(ctx: &Context<'_>) -> Option<Finding> {
    let count = f64::from(ctx.window().count) + 1.0;
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
    use crate::event::Sensitivity;

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

    /// A partner's API key: for two weeks, eight calls an hour, one in four of them a
    /// customer record; then `extra` more customer reads an hour for `hours` hours. The
    /// first and the strongest finding at a read, if any.
    fn partner_key(extra: i64, hours: i64) -> Option<(Finding, Finding)> {
        let mut h = Harness::new();
        let call = |t: i64, customer: bool, k: i64| {
            let mut e = if customer {
                event(
                    t,
                    "GET /v1/customers/{id}",
                    &format!("api.acme-pay.com/v1/customers/cus_{k:014}"),
                    "203.0.113.7",
                    "okhttp/4.12.0",
                )
            } else {
                event(
                    t,
                    "POST /v1/payments",
                    "api.acme-pay.com/v1/payments",
                    "203.0.113.7",
                    "okhttp/4.12.0",
                )
            };
            e.sensitivity = Some(if customer {
                Sensitivity::Confidential
            } else {
                Sensitivity::Internal
            });
            e
        };
        let hour = 3_600_000;
        let mut k = 0;
        for hr in 0..14 * 24 {
            for i in 0..8 {
                k += 1;
                h.feed(&call(T0 + hr * hour + i * 450_000, i % 4 == 0, k));
            }
        }
        let start = T0 + 14 * 24 * hour;
        let mut found: Option<(Finding, Finding)> = None;
        for hr in 0..hours {
            for i in 0..8 + extra {
                k += 1;
                let customer = i >= 8 || i % 4 == 0;
                let e = call(start + hr * hour + i * 200_000, customer, k);
                if let Some(f) = h.ask(&e, FleetView::default(), detect) {
                    match &mut found {
                        None => found = Some((f.clone(), f)),
                        Some((_, strongest)) if strongest.strength < f.strength => *strongest = f,
                        Some(_) => {}
                    }
                }
                h.feed(&e);
            }
        }
        found
    }

    #[test]
    fn hours_of_extra_sensitive_reads_fire_far_below_the_volume_floors() {
        // Five more customer reads an hour: 13 calls an hour, nowhere near a spike.
        let (first, strongest) = partner_key(5, 12).expect("fires");
        assert!(first.strength >= 0.6, "{first:?}");
        assert!(strongest.strength >= 0.8, "{strongest:?}");
        // The usual share is learned over a week: the hours of theft hardly move it.
        let usual: u32 = first
            .detail
            .split_once("against ")
            .and_then(|(_, rest)| rest.split_once("% of its calls usually"))
            .and_then(|(share, _)| share.parse().ok())
            .expect("says the usual share");
        assert!((25..=28).contains(&usual), "{}", first.detail);
        assert!(
            first.detail.starts_with("sensitive reads are"),
            "{}",
            first.detail
        );
        // Two hours of it are not enough.
        assert_eq!(partner_key(5, 2), None);
    }

    #[test]
    fn the_usual_mix_is_quiet_for_a_day() {
        assert_eq!(partner_key(0, 24), None);
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
