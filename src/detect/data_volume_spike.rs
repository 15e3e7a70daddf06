//! `data_volume_spike`: bytes/records moved far above this identity's baseline: the
//! recent window against the decayed maximum of its hourly peak windows, and the last
//! hour against the decayed maximum of its hourly totals (no seasonal slots for data, to
//! keep state small; peaks already absorb a nightly batch). Exfiltration often keeps the
//! call rate and moves far more data per call, so this is separate from the event rate.

use super::{log_ramp, Context, Finding};

/// Below this much data per window nothing is a spike (units: bytes, records × 256).
const FLOOR: f64 = 1_048_576.0;
/// The same per hour.
const HOUR_FLOOR: f64 = 4_194_304.0;

fn human(x: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = x;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning || ctx.obs.data == 0 {
        return None;
    }
    let data = ctx.window().data as f64 + ctx.obs.data as f64;
    let hour_data = ctx.state.last_hour(ctx.obs.time_ms).1 + ctx.obs.data as f64;
    if data < FLOOR * 3.0 && hour_data < HOUR_FLOOR * 3.0 {
        return None;
    }
    let (_, peak) = ctx.state.peak_max(ctx.obs.hour());
    let (_, hour_max) = ctx.state.hour_max(ctx.obs.hour());
    let global = log_ramp(data / peak.max(FLOOR), 3.0, 20.0);
    let hourly = log_ramp(hour_data / hour_max.max(HOUR_FLOOR), 3.0, 20.0);
    Finding::lazy(global.max(hourly), || {
        format!(
            "{} moved in {} vs usual peak {}; {} in the last hour vs usual max {}",
            human(data),
            ctx.window_label,
            human(peak),
            human(hour_data),
            human(hour_max)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    #[test]
    fn bulk_download_fires_and_usual_size_is_quiet() {
        let mut h = ci_runner();
        let mut e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "10.20.1.1",
            "GitHubActionsRunner/2.1 Linux",
        );
        e.bytes = Some(12_000);
        assert_eq!(h.ask(&e, FleetView::default(), detect), None);
        let mut last = None;
        for k in 0..20 {
            let mut e = e.clone();
            e.time_ms += k * 1000;
            e.bytes = Some(50_000_000);
            last = h.ask(&e, FleetView::default(), detect);
            h.feed(&e);
        }
        let f = last.expect("fires");
        assert!(f.strength > 0.9, "{f:?}");
    }
}
