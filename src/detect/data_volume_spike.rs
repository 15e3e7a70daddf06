//! `data_volume_spike`: bytes/records moved in the recent window far above this
//! identity's baseline (same two references as `volume_spike`: decayed recent maximum of
//! hourly peak windows, and the seasonal hour-of-day peak). Exfiltration often keeps the
//! call rate and moves far more data per call, so this is separate from the event rate.

use super::{log_ramp, Context, Finding};

/// Below this much data per window nothing is a spike (units: bytes, records × 256).
const FLOOR: f64 = 1_048_576.0;

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
    let data = ctx.state.window(ctx.obs.time_ms, ctx.params).data as f64 + ctx.obs.data as f64;
    if data < FLOOR * 3.0 {
        return None;
    }
    let (_, peak) = ctx.state.peak_max(ctx.obs.hour());
    let global = log_ramp(data / peak.max(FLOOR), 3.0, 20.0);
    let (seasonal, usual) = match ctx.state.seasonal(ctx.obs.hour_of_day()) {
        Some((_, (mean, dev))) => {
            let expected = (mean + 3.0 * dev).max(FLOOR);
            (
                0.5 * log_ramp(data / expected, 3.0, 30.0),
                format!(", this hour {}", human(mean)),
            )
        }
        None => (0.0, String::new()),
    };
    Finding::new(
        global.max(seasonal),
        format!(
            "{} moved in {} vs usual peak {}{usual}",
            human(data),
            ctx.window_label,
            human(peak)
        ),
    )
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
