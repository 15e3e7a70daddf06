//! `off_hours`: activity in an hour-of-week slot where this identity is almost never
//! active. The profile counts active minutes per hour of week; with at least two weeks
//! of history the hour-of-week slot decides (a weekday-only job on a Saturday), before
//! that the same hour on every day of the week (hour of day) does, since unseen weekdays
//! are not evidence. Neighbouring hours smooth jitter at hour boundaries.
//!
//! A thin profile (a short daily job's few active minutes) is judged only together with
//! a new container or action, or a write to a new destination, after three days: the
//! job running at the wrong hour and reaching somewhere new. Its slot is then judged
//! without the activity of that hour and the hour before it, so the run's own first
//! minutes are not taken for a habit.
//!
//! How telling an empty slot is depends on the identity's rhythm: a CI runner active in a
//! quarter of the week with a dozen active minutes per working hour has truly dead
//! nights; an API key used a few times a day at random hours leaves empty slots by
//! chance. So the strength is scaled by the confidence that the slot is really dead (its
//! usual per-slot activity, Poisson) and by how much of the week it leaves dark.
//!
//! The longest silence of all, an identity returning after it was evicted as idle, is
//! reported under this detector's name too, by the engine (`judge_return`), since the
//! returning identity's profile is gone (see [`crate::state::dormant`]).

use super::{Context, Finding};

/// Active buckets in the profile below which the rhythm is thin: a short daily job (a
/// four-minute run) needs ten days to reach it.
const MIN_ACTIVE: u32 = 40;
/// Active buckets below which the rhythm is unknown. Between this and [`MIN_ACTIVE`],
/// after [`THIN_MIN_HISTORY_MS`], an empty slot is judged only for a call that also
/// meets a new container or action, or writes to a new destination: a job running at
/// the wrong hour and reaching somewhere new is the pattern, while a thin profile alone
/// (a rerun, a backfill) is weak evidence.
const THIN_MIN_ACTIVE: u32 = 12;
/// History a thin profile needs: three days, so a job's hour has come round three
/// times (a young identity meets new things all the time).
const THIN_MIN_HISTORY_MS: i64 = 3 * 86_400_000;
/// A slot at this fraction of the identity's usual active-slot level or less is "off".
const OFF_FRACTION: f64 = 0.25;
const TWO_WEEKS_MS: i64 = 14 * 86_400_000;

/// Smoothed activity of `slot`, times 4 (an integer: the caller divides, so the value
/// is exactly the float `(prev + 2·slot + next) / 4` without float work per slot).
fn smoothed4(profile: &[u8], slot: usize) -> u32 {
    let at = |i: usize| u32::from(profile[i % 168]);
    at(slot + 167) + 2 * at(slot) + at(slot + 1)
}

/// (coverage: share of `slots` slots with any activity, mean activity of the active
/// slots), from the count of active slots and their summed activity. Counts are
/// integers, summed exactly, so this gives the same floats as summing them as `f64`.
fn rhythm(slots: u32, active: u32, sum: u32) -> (f64, f64) {
    if active == 0 {
        return (0.0, 0.0);
    }
    (
        f64::from(active) / f64::from(slots),
        f64::from(sum) / f64::from(active),
    )
}

/// Activity of hour `h` (taken modulo 24) summed over the seven days.
fn column(profile: &[u8; 168], h: usize) -> u32 {
    let h = h % 24;
    (0..7).map(|day| u32::from(profile[day * 24 + h])).sum()
}

/// Activity summed over the week. Summed in 16 bits, which hold any profile's total
/// (checked below): widening each byte to 32 bits cost an instruction per byte, and this
/// runs on every event.
fn week_total(profile: &[u8; 168]) -> u32 {
    u32::from(profile.iter().map(|&c| u16::from(c)).sum::<u16>())
}
const _: () = assert!(168 * u8::MAX as usize <= u16::MAX as usize);

/// Slots of the week with any activity, counted in a byte (there are 168) for the same
/// reason as [`week_total`].
fn active_slots(profile: &[u8; 168]) -> u32 {
    u32::from(profile.iter().map(|&c| u8::from(c != 0)).sum::<u8>())
}

/// Hours of the day with activity on any day of the week. A column's sum is non-zero
/// exactly when one of its bytes is, so the seven days are ORed a day at a time (a loop
/// the compiler vectorises) rather than summed column by column: this runs on every
/// event in an identity's first two weeks, and 24 column sums cost ~300 instructions.
fn active_hours(profile: &[u8; 168]) -> u32 {
    let mut any = [0u8; 24];
    for day in profile.chunks_exact(24) {
        for (a, &c) in any.iter_mut().zip(day) {
            *a |= c;
        }
    }
    u32::from(any.iter().map(|&a| u8::from(a != 0)).sum::<u8>())
}

/// Hour `h` on every day, smoothed with its neighbours ([`smoothed4`] summed over the
/// seven days): over the whole cyclic week the slot before hour 0 of each day is hour
/// 23 of the day before, so the neighbours' sums are simply the neighbouring columns.
fn by_hour4(profile: &[u8; 168], h: usize) -> u32 {
    column(profile, h + 23) + 2 * column(profile, h) + column(profile, h + 1)
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning {
        return None;
    }
    let Ok(profile) = <&[u8; 168]>::try_from(ctx.state.profile()) else {
        return None;
    };
    // This runs on every event: whole-profile sums as simple loops over the bytes in
    // narrow integers (the compiler vectorises them), and per-hour sums only for the
    // hours the branch taken needs (all 24 only in an identity's first two weeks).
    // Summing all 24 hour columns on every event was a tenth of an event's processing.
    let total = week_total(profile);
    let before;
    let (profile, total) = if total < MIN_ACTIVE {
        // Somewhere new: a new container or action, or a write to something new where it
        // works (a deployer updating a function beside its own); not a first read of
        // one more object, which a job meets on every run.
        let novel = ctx.novelty.class
            || ctx.novelty.action
            || (ctx.novelty.dest && crate::engine::is_write(&ctx.event.action));
        let history = ctx.state.history_ms(ctx.obs.time_ms);
        if total < THIN_MIN_ACTIVE || !novel || history < THIN_MIN_HISTORY_MS {
            return None;
        }
        // A thin profile is judged only at a call that meets something new, often a few
        // minutes into the run: by then the run's own minutes are in this hour's slot,
        // and one or two minutes are a quarter of a short job's usual level. So the slot
        // is judged as it stood before the hour began, and before the hour before it (a
        // run that began at 02:55 and meets something new at 03:02 has minutes in the
        // 02:00 slot, which smoothing counts for 03:00). (A full profile is judged from
        // the run's first call; that a run goes on in that hour is then a weak sign it
        // is meant to, and its later calls are judged with its minutes in.)
        before = ctx.state.profile_before_this_hour(ctx.obs.hour())?;
        let total = week_total(&before);
        // The run's own minutes must not carry a profile past "rhythm unknown" either.
        if total < THIN_MIN_ACTIVE {
            return None;
        }
        (&*before, total)
    } else {
        (profile, total)
    };
    let how = ctx.obs.hour_of_week();
    let hod = ctx.obs.hour_of_day();
    // Sums of quarter-integers this small are exact, so dividing the integer sum once
    // equals summing the smoothed floats.
    let by_hour = |h: usize| f64::from(by_hour4(profile, h)) / 4.0;
    let weekly = ctx.state.history_ms(ctx.obs.time_ms) >= TWO_WEEKS_MS;
    let (level, (coverage, usual)) = if weekly {
        (
            f64::from(smoothed4(profile, how)) / 4.0,
            rhythm(168, active_slots(profile), total),
        )
    } else {
        (by_hour(hod), rhythm(24, active_hours(profile), total))
    };
    let dead = 1.0 - level / (OFF_FRACTION * usual);
    let dark = ((0.85 - coverage) / 0.45).clamp(0.0, 1.0);
    // A slot at its usual level, or a week too lit to have dead hours, gives a strength
    // of zero or less whatever the confidence (never negative, as `usual`, a ratio of
    // counts, is not): most events stop here, without the `exp`.
    if !(dead > 0.0 && dark > 0.0) {
        return None;
    }
    let confidence = 1.0 - (-usual / 3.0).exp();
    let mut strength = dead * confidence * dark;
    if weekly && by_hour(hod) / 7.0 >= OFF_FRACTION * usual {
        // Usual hour, unusual day: half as telling as an hour it never works.
        strength *= 0.5;
    }
    Finding::lazy(strength, || {
        // Only when there is a finding to describe: built on every event, the array
        // cost more than the test.
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        format!(
            "active {} {:02}:00 UTC, a slot at {:.0}% of its usual level (active {:.0}% of the week)",
            DAYS[how / 24],
            hod,
            100.0 * level / usual.max(1e-9),
            100.0 * coverage
        )
    })
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
    fn hour_sums_give_the_slot_by_slot_smoothing() {
        // Pseudo-random profiles, including empty slots and wrap-around at the week's end.
        // Sparse ones too (most slots empty), so some hours are empty on every day.
        let mut x: u32 = 12345;
        for round in 0..100 {
            let empty_below = if round % 2 == 0 { 100 } else { 250 };
            let profile: [u8; 168] = std::array::from_fn(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let v = (x >> 16) as u8;
                if v < empty_below {
                    0
                } else {
                    v
                }
            });
            for h in 0..24 {
                let slot_by_slot: u32 = (0..7).map(|d| smoothed4(&profile, d * 24 + h)).sum();
                assert_eq!(by_hour4(&profile, h), slot_by_slot, "hour {h}");
                let hour_sum: u32 = profile
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 24 == h)
                    .map(|(_, &c)| u32::from(c))
                    .sum();
                assert_eq!(column(&profile, h), hour_sum, "hour {h}");
                assert_eq!(column(&profile, h + 24), hour_sum, "hour {h} + 24");
            }
            let nonzero = profile.iter().filter(|&&c| c > 0).count();
            assert_eq!(active_slots(&profile) as usize, nonzero);
            let sum: u32 = profile.iter().map(|&c| u32::from(c)).sum();
            assert_eq!(week_total(&profile), sum);
            let hours_used = (0..24)
                .filter(|&h| (0..7).any(|d| profile[d * 24 + h] > 0))
                .count();
            assert_eq!(active_hours(&profile) as usize, hours_used);
        }
    }

    #[test]
    fn narrow_sums_hold_a_full_profile() {
        // Every slot at its ceiling: the largest total and count the narrow sums take.
        let full = [u8::MAX; 168];
        assert_eq!(week_total(&full), 168 * 255);
        assert_eq!(active_slots(&full), 168);
        assert_eq!(active_hours(&full), 24);
        let empty = [0u8; 168];
        assert_eq!(
            (
                week_total(&empty),
                active_slots(&empty),
                active_hours(&empty)
            ),
            (0, 0, 0)
        );
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

    /// A job's usual write at `t`.
    fn job_write(t: i64, dest: &str) -> crate::event::ActivityEvent {
        event(t, "s3:PutObject", dest, "10.20.1.1", "Boto3/1.34")
    }

    /// A job writing its usual output at each of `times`.
    fn job(times: impl Iterator<Item = i64>) -> Harness {
        let mut h = Harness::new();
        for t in times {
            h.feed(&job_write(t, "arn:aws:s3:::etl-output/daily.parquet"));
        }
        h
    }

    #[test]
    fn a_short_daily_job_writing_somewhere_new_at_another_hour_fires() {
        // Four minutes at 03:00 every day for six days: 24 active minutes, a thin
        // profile (under MIN_ACTIVE) of a very regular job. Three calls a minute (the
        // harness learns for 50 events).
        let at_three = T0 + 3 * 3_600_000;
        let h =
            job((0..6)
                .flat_map(|day| (0..12).map(move |k| at_three + day * 86_400_000 + k * 20_000)));
        let afternoon = T0 + 6 * 86_400_000 + 15 * 3_600_000;
        // Its usual call at the wrong hour (a rerun): too little rhythm to judge alone.
        let rerun = job_write(afternoon, "arn:aws:s3:::etl-output/daily.parquet");
        assert_eq!(h.ask(&rerun, FleetView::default(), detect), None);
        // A write into a bucket it never used, at an hour it never runs: judged.
        let new_bucket = "arn:aws:s3:::release-artifacts/bootstrap.sh";
        let f = h
            .ask(
                &job_write(afternoon, new_bucket),
                FleetView::default(),
                detect,
            )
            .expect("fires");
        assert!(f.strength > 0.8, "{f:?}");
        // So is a write to something new in the bucket it uses (as a Terraform role
        // updating a function beside its own at night does).
        let new_object = job_write(afternoon, "arn:aws:s3:::etl-output/bootstrap.sh");
        let f = h
            .ask(&new_object, FleetView::default(), detect)
            .expect("fires");
        assert!(f.strength > 0.8, "{f:?}");
        // The same write at the job's own hour is its work: judged, and not flagged.
        let own_hour = job_write(
            at_three + 6 * 86_400_000 + 60_000,
            "arn:aws:s3:::etl-output/bootstrap.sh",
        );
        assert_eq!(h.ask(&own_hour, FleetView::default(), detect), None);
        // With barely any history (two five-minute runs a day apart, a call every ten
        // seconds: 10 active minutes), not even then; nor with enough active minutes in
        // under three days (two 15-minute runs).
        let later = job_write(T0 + 86_400_000 + 15 * 3_600_000, new_bucket);
        let young = job((0..30).chain(8_640..8_670).map(|k| at_three + k * 10_000));
        assert_eq!(young.ask(&later, FleetView::default(), detect), None);
        let busy = job((0..90).chain(8_640..8_730).map(|k| at_three + k * 10_000));
        assert_eq!(busy.ask(&later, FleetView::default(), detect), None);
    }

    #[test]
    fn a_job_at_the_wrong_hour_is_not_judged_against_its_own_first_minutes() {
        // The same thin daily job; on day seven it runs at 15:00, a few minutes with its
        // usual write, then writes somewhere new. Its minutes are in the 15:00 slot by
        // then, or in 14:00 (a neighbour of 15:00) for a run that began before the hour,
        // and with them the slot would look used: a quarter of the job's usual level is
        // a few minutes.
        let at_three = T0 + 3 * 3_600_000;
        let job_at = |start: i64, calls: i64| {
            job((0..6)
                .flat_map(|day| (0..12).map(move |k| at_three + day * 86_400_000 + k * 20_000))
                .chain((0..calls).map(move |k| start + k * 20_000)))
        };
        let fifteen = T0 + 6 * 86_400_000 + 15 * 3_600_000;
        let new_write = |t: i64| job_write(t, "arn:aws:s3:::release-artifacts/bootstrap.sh");
        // 14:56 to 15:00, judged at 15:02 (the state's latest hour is 14:00).
        let before_the_hour = job_at(fifteen - 240_000, 12);
        // 14:57 to 15:03, judged at 15:04 (minutes in both slots).
        let across_the_hour = job_at(fifteen - 180_000, 18);
        for (h, at) in [
            (&before_the_hour, fifteen + 120_000),
            (&across_the_hour, fifteen + 240_000),
        ] {
            let f = h
                .ask(&new_write(at), FleetView::default(), detect)
                .expect("fires");
            assert!(f.strength > 0.8, "{f:?}");
        }
        // A day later those minutes are history: 15:00 is an hour the job has run at.
        let later = across_the_hour.ask(
            &new_write(fifteen + 86_400_000),
            FleetView::default(),
            detect,
        );
        let strength = later.as_ref().map_or(0.0, |f| f.strength);
        assert!(strength < 0.6, "{later:?}");
    }

    #[test]
    fn random_hours_identity_is_quiet() {
        let mut h = Harness::new();
        // A key used ~25 times a day at scattered hours for three weeks.
        for k in 0..(21 * 25) {
            let t = T0 + k * 3_456_000 + (k * 7919 % 13) * 600_000;
            h.feed(&at(t));
        }
        let t = T0 + 21 * 86_400_000 + 3 * 3_600_000;
        let f = h.ask(&at(t), FleetView::default(), detect);
        assert!(f.as_ref().map_or(0.0, |f| f.strength) < 0.2, "{f:?}");
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
