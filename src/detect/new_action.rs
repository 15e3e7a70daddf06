//! `new_action`: an action this identity never performed, judged against its own rate
//! of picking up new actions and discounted when many identities picked up the same one
//! recently (a release rolling out a new API call). Discovery and privilege verbs
//! (MITRE ATT&CK TA0007 Discovery, TA0004/TA0003 privilege and persistence: listing,
//! describing, "who am I", key creation, policy changes, secrets) are the usual first
//! moves with stolen credentials and weigh more.

use super::{fleet_discount, rarity, Context, Finding};
use crate::state::SeenKind;

const SENSITIVE_VERBS: [&str; 14] = [
    "getcalleridentity",
    "list",
    "describe",
    "getaccountauthorization",
    "createaccesskey",
    "createuser",
    "createloginprofile",
    "attach",
    "putuserpolicy",
    "putrolepolicy",
    "passrole",
    "assumerole",
    "getsecretvalue",
    "decrypt",
];

fn is_sensitive(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    SENSITIVE_VERBS.iter().any(|v| lower.contains(v)) || lower.contains("secret")
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    if ctx.learning || !ctx.novelty.action {
        return None;
    }
    let sensitive = is_sensitive(&ctx.event.action);
    let base = if sensitive { 0.85 } else { 0.65 };
    let rate = ctx
        .state
        .novelty_rate_per_day(SeenKind::Action, ctx.obs.time_ms, ctx.params);
    let others = ctx.fleet.action;
    let strength = base * rarity(rate) * fleet_discount(others);
    let kind = if sensitive {
        " (discovery/privilege)"
    } else {
        ""
    };
    let fleet = if others > 0 {
        format!(", {others} other identities too")
    } else {
        String::new()
    };
    Finding::new(
        strength,
        format!(
            "first use of {}{kind}; {rate:.1} new actions/day usual{fleet}",
            ctx.event.action
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    fn ask(h: &Harness, action: &str, fleet: FleetView) -> Option<Finding> {
        let e = event(
            WEEK3_WORKDAY,
            action,
            "arn:aws:s3:::ci-artifacts/x",
            "10.20.1.1",
            "GitHubActionsRunner/2.1 Linux",
        );
        h.ask(&e, fleet, detect)
    }

    #[test]
    fn never_used_action_fires_and_recon_weighs_more() {
        let h = ci_runner();
        let plain = ask(&h, "s3:DeleteObject", FleetView::default()).expect("fires");
        let recon = ask(&h, "iam:ListUsers", FleetView::default()).expect("fires");
        assert!(
            plain.strength > 0.5 && recon.strength > plain.strength,
            "{plain:?} {recon:?}"
        );
    }

    #[test]
    fn known_action_and_fleet_rollout_are_quiet_or_weak() {
        let h = ci_runner();
        assert_eq!(ask(&h, "s3:GetObject", FleetView::default()), None);
        let fleet = FleetView {
            action: 30,
            ..FleetView::default()
        };
        let f = ask(&h, "s3:PutObjectTagging", fleet).expect("weak");
        assert!(f.strength < 0.1, "{f:?}");
    }
}
