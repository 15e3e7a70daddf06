//! `new_destination`: a generalised destination, or a class of them, this identity never
//! touched. A new item
//! inside a container it already uses (another object in its bucket, another route
//! under its API) is weak; a new container (bucket, host, repository, resource type) is
//! moderate; crossing into an environment this identity never worked in (a staging
//! account calling prod) is strong on its own, because non-human identities are bound to
//! their environment. All are scaled by the identity's own rate of meeting new ones and discounted when other
//! identities met the same thing recently (a release). Sensitivity is applied by the
//! score; the detail names it.

use super::{fleet_discount, rarity, Context, Finding};
use crate::event::Sensitivity;
use crate::state::SeenKind;

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    // A new class counts even when the destination reads as seen: once an identity's
    // destinations overflow into the sketch (a coding agent reads thousands of files),
    // the sketch answers "seen" for nearly anything, and a first read of another
    // repository must still count. Classes are fewer; an identity whose classes also
    // overflow `state.max_seen_entries` shares the full sketch and is quiet here too.
    let new = ctx.novelty.dest || ctx.novelty.class || ctx.novelty.environment;
    if ctx.learning || !new {
        return None;
    }
    let now = ctx.obs.time_ms;
    if ctx.novelty.environment {
        let rate = ctx
            .state
            .novelty_rate_per_day(SeenKind::Environment, now, ctx.params);
        return Finding::lazy(rarity(rate), || {
            format!(
                "first call into environment `{}`: {}",
                ctx.event.environment.as_deref().unwrap_or(""),
                ctx.texts.destination
            )
        });
    }
    let (base, kind, others, what) = if ctx.novelty.class {
        (0.6, SeenKind::DestinationClass, ctx.fleet.class, "new")
    } else {
        (0.2, SeenKind::Destination, ctx.fleet.destination, "known")
    };
    let rate = ctx.state.novelty_rate_per_day(kind, now, ctx.params);
    // Its first data at this level: the rate of meeting new things says nothing about
    // meeting new secrets (see `Context::first_at_level`).
    let usual = if ctx.first_at_level.is_some() {
        0.0
    } else {
        rate
    };
    let strength = base * rarity(usual) * fleet_discount(others);
    let sensitivity = match ctx.sensitivity {
        Sensitivity::Internal => String::new(),
        s => format!(" ({})", s.as_str()),
    };
    let first = match ctx.first_at_level {
        Some(level) => format!(", but never anything {} before", level.as_str()),
        None => String::new(),
    };
    let fleet = if others > 0 {
        format!(", {others} other identities too")
    } else {
        String::new()
    };
    Finding::lazy(strength, || {
        format!(
            "first access to {}{sensitivity} in {what} {}; {rate:.1} new/day usual{first}{fleet}",
            ctx.texts.destination,
            ctx.texts.class()
        )
    })
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
    fn a_new_repository_fires_after_thousands_of_files() {
        let mut h = Harness::new();
        // A coding agent reading thousands of files of one repository: its destinations
        // overflow into the sketch, which then calls almost any destination seen.
        // File names made of syllables, which generalisation keeps as words.
        let word = |mut k: usize| {
            let mut w = String::new();
            for _ in 0..3 {
                w.push(b"bdfgklmnprstvz"[k % 14] as char);
                w.push(b"aeiou"[(k / 14) % 5] as char);
                k /= 70;
            }
            w
        };
        for k in 0..3_000usize {
            h.feed(&event(
                T0 + k as i64 * 60_000,
                "tool:fs.read",
                &format!("github.com/acme/web/src/{}.py", word(k)),
                "10.60.1.1",
                "codegen-agent/0.11",
            ));
        }
        let e = event(
            T0 + 3_001 * 60_000,
            "tool:fs.read",
            "github.com/acme/infra-secrets/k8s/secrets.yaml",
            "10.60.1.1",
            "codegen-agent/0.11",
        );
        // The saturated sketch calls the file seen; its repository is new all the same.
        let mut texts = super::super::Texts::default();
        let novelty = h.state.novelty(&observe(&e, &mut texts));
        assert!(!novelty.dest && novelty.class, "{novelty:?}");
        let f = h.ask(&e, FleetView::default(), detect).expect("fires");
        assert!(
            f.detail.contains("in new github.com/acme/infra-secrets"),
            "{f:?}"
        );
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
        assert!(f.strength > 0.5, "{f:?}");
        assert!(f.detail.contains("payroll-exports"), "{}", f.detail);
    }

    #[test]
    fn crossing_into_another_environment_is_strong() {
        let mut h = ci_runner();
        let mut e = event(
            WEEK3_WORKDAY - 3_600_000,
            "GET /v1/items/{id}",
            "inventory.staging.acme.internal/v1/items/5",
            "10.20.1.1",
            "GitHubActionsRunner/2.1 Linux",
        );
        e.environment = Some("staging".into());
        h.feed(&e);
        e.time_ms = WEEK3_WORKDAY;
        e.environment = Some("prod".into());
        e.destination = "inventory.prod.acme.internal/v1/items/77".into();
        let f = h.ask(&e, FleetView::default(), detect).expect("fires");
        assert!(f.strength > 0.9 && f.detail.contains("prod"), "{f:?}");
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
        let many = ask(&h, "https://new-api.internal/v2/x", fleet);
        let weak = many.as_ref().map_or(0.0, |f| f.strength);
        assert!(weak < alone.strength / 5.0, "{many:?} vs {alone:?}");
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
