//! `off_hours`: activity in an hour-of-week slot where this identity is almost never
//! active. The profile counts active minutes per hour of week; with at least two weeks
//! of history the hour-of-week slot decides (a weekday-only job on a Saturday), before
//! that the same hour on every day of the week (hour of day) does, since unseen weekdays
//! are not evidence. Neighbouring hours smooth jitter at hour boundaries. Identities with
//! too little profile to know their rhythm say nothing.

use super::{Context, Finding};

/// Active buckets in the profile below which the rhythm is unknown.
const MIN_ACTIVE: u32 = 40;
/// A slot at this fraction of the identity's mean slot activity or less is "off".
const OFF_FRACTION: f64 = 0.25;
const TWO_WEEKS_MS: i64 = 14 * 86_400_000;

fn smoothed(profile: &[u8], slot: usize) -> f64 {
    let at = |i: usize| f64::from(profile[i % 168]);
    (at(slot + 167) + 2.0 * at(slot) + at(slot + 1)) / 4.0
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    let profile = ctx.state.profile();
    if ctx.learning || profile.len() != 168 {
        return None;
    }
    let total: u32 = profile.iter().map(|&c| u32::from(c)).sum();
    if total < MIN_ACTIVE {
        return None;
    }
    let mean = f64::from(total) / 168.0;
    let how = ctx.obs.hour_of_week();
    let hod = ctx.obs.hour_of_day();
    let day_level = (0..7).map(|d| smoothed(profile, d * 24 + hod)).sum::<f64>() / 7.0;
    let weekly = ctx.state.history_ms(ctx.obs.time_ms) >= TWO_WEEKS_MS;
    let level = if weekly {
        smoothed(profile, how)
    } else {
        day_level
    };
    let mut strength = 1.0 - level / (OFF_FRACTION * mean);
    if weekly && day_level >= OFF_FRACTION * mean {
        // Usual hour, unusual day: half as telling as an hour it never works.
        strength *= 0.5;
    }
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    Finding::new(
        strength,
        format!(
            "active {} {:02}:00 UTC, a slot with {:.1}% of its usual activity",
            days[how / 24],
            hod,
            100.0 * level / mean.max(1e-9)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    fn at(t: i64) -> crate::event::ActivityEvent {
        event(
            t,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "10.20.1.1",
            "GitHubActionsRunner/2.1 Linux",
        )
    }

    #[test]
    fn three_am_fires_for_a_working_hours_runner() {
        let h = ci_runner();
        let f = h
            .ask(
                &at(WEEK3_WORKDAY - 7 * 3_600_000),
                FleetView::default(),
                detect,
            )
            .expect("fires");
        assert!(f.strength > 0.9, "{f:?}");
    }

    #[test]
    fn working_hours_are_quiet_and_saturday_is_moderate() {
        let h = ci_runner();
        assert_eq!(
            h.ask(&at(WEEK3_WORKDAY), FleetView::default(), detect),
            None
        );
        let saturday = WEEK3_WORKDAY + 5 * 86_400_000;
        let f = h
            .ask(&at(saturday), FleetView::default(), detect)
            .expect("weekend");
        assert!(f.strength <= 0.5, "{f:?}");
    }
}
