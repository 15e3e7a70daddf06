//! `new_destination`: a generalised destination this identity never touched. A new item
//! inside a container it already uses (another object in its bucket, another route
//! under its API) is weak; a new container (bucket, host, resource type) is strong. Both
//! are scaled by the identity's own rate of meeting new ones and discounted when other
//! identities met the same thing recently (a release). Sensitivity is applied by the
//! score; the detail names it.

use super::{fleet_discount, rarity, Context, Finding};
use crate::event::Sensitivity;
use crate::state::SeenKind;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning || !ctx.novelty.dest {
        return None;
    }
    let now = ctx.obs.time_ms;
    let (base, kind, others, what) = if ctx.novelty.class {
        (0.8, SeenKind::DestinationClass, ctx.fleet.class, "new")
    } else {
        (0.25, SeenKind::Destination, ctx.fleet.destination, "known")
    };
    let rate = ctx.state.novelty_rate_per_day(kind, now, ctx.params);
    let strength = base * rarity(rate) * fleet_discount(others);
    let sensitivity = match ctx.sensitivity {
        Sensitivity::Internal => String::new(),
        s => format!(" ({})", s.as_str()),
    };
    let fleet = if others > 0 {
        format!(", {others} other identities too")
    } else {
        String::new()
    };
    Finding::new(
        strength,
        format!(
            "first access to {}{sensitivity} in {what} {}; {rate:.1} new/day usual{fleet}",
            ctx.texts.destination, ctx.texts.class
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    fn ask(h: &Harness, dest: &str, fleet: FleetView) -> Option<Finding> {
        let e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            dest,
            "10.20.1.1",
            "GitHubActionsRunner/2.1 Linux",
        );
        h.ask(&e, fleet, detect)
    }

    #[test]
    fn new_bucket_fires() {
        let h = ci_runner();
        let f = ask(
            &h,
            "arn:aws:s3:::payroll-exports/2026/11/report.csv",
            FleetView::default(),
        )
        .expect("fires");
        assert!(f.strength > 0.6, "{f:?}");
        assert!(f.detail.contains("payroll-exports"), "{}", f.detail);
    }

    #[test]
    fn new_build_hash_in_known_bucket_is_quiet() {
        let h = ci_runner();
        // Every build writes a new hashed key: generalised, it is the same destination.
        assert_eq!(
            ask(
                &h,
                "arn:aws:s3:::ci-artifacts/builds/77aa99bbcc1/out.tar",
                FleetView::default()
            ),
            None
        );
    }

    #[test]
    fn fleet_wide_new_destination_is_weak() {
        let h = ci_runner();
        let alone = ask(&h, "https://new-api.internal/v2/x", FleetView::default()).expect("fires");
        let fleet = FleetView {
            class: 20,
            destination: 20,
            ..FleetView::default()
        };
        let many = ask(&h, "https://new-api.internal/v2/x", fleet).expect("fires");
        assert!(
            many.strength < alone.strength / 5.0,
            "{many:?} vs {alone:?}"
        );
    }

    #[test]
    fn learning_identity_is_quiet() {
        let mut h = Harness::new();
        for k in 0..10 {
            h.feed(&event(
                T0 + k * 1000,
                "s3:GetObject",
                "arn:aws:s3:::a/b",
                "10.0.0.1",
                "x/1",
            ));
        }
        assert_eq!(
            ask(&h, "arn:aws:s3:::payroll/x", FleetView::default()),
            None
        );
    }
}
