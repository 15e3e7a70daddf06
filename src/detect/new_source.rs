//! `new_source`: a source network or client family never seen for this identity.
//!
//! Sources churn in real traffic (CI runners and pods get a fresh private address on
//! every start; SDK upgrades change user agents fleet-wide), so: addresses are compared
//! as private /16 or public /24 (v4) and /64 (v6) prefixes, private-space novelty is
//! nearly silent, user agents are compared by family without versions, and a family many
//! identities adopted recently is discounted. The strong case is a *public* network for
//! an identity that only ever called from private space or named networks: credentials
//! used from outside.

use super::{fleet_discount, rarity, Context, Finding};
use crate::state::generalize::SourceClass;
use crate::state::identity::FLAG_PUBLIC;
use crate::state::SeenKind;

/// Words every `new_source` detail (and the dormant return's) uses for a public
/// address, and only for one: the engine reads them back from a carried sign to tell a
/// session that came from outside from one that stayed inside.
pub const PUBLIC_WORDS: &str = "public network";

/// Whether a `new_source` detail (possibly carried, `earlier: …`) names a public
/// address.
pub fn names_public(detail: &str) -> bool {
    detail.contains(PUBLIC_WORDS)
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    // Neither a new network nor a new client family: nothing to weigh (most events).
    if ctx.learning || !(ctx.novelty.network || ctx.novelty.user_agent) {
        return None;
    }
    let now = ctx.obs.time_ms;
    let mut details = Vec::new();
    let mut net = 0.0;
    if ctx.novelty.network {
        let rate = ctx
            .state
            .novelty_rate_per_day(SeenKind::Network, now, ctx.params);
        let outside_first = ctx.state.flags & FLAG_PUBLIC == 0;
        match ctx.source_class() {
            Some(SourceClass::Public) if outside_first => {
                // Rarity still applies, mildly: an identity whose traffic hops networks
                // often is less surprising even the first time it is public.
                net = 0.9 * rarity(rate).sqrt();
                details.push(format!(
                    "first {PUBLIC_WORDS} {} (only private/named before)",
                    ctx.texts.network
                ));
            }
            Some(SourceClass::Public) => {
                net = 0.45 * rarity(rate);
                details.push(format!("new {PUBLIC_WORDS} {}", ctx.texts.network));
            }
            Some(SourceClass::Named) => {
                // An identity anchored to a single network until now (a bot in its
                // runner pool) leaving it is more telling than one that roams.
                let anchored = ctx.state.seen_count(SeenKind::Network) <= 1;
                net = if anchored { 0.8 } else { 0.5 } * rarity(rate);
                details.push(format!(
                    "new network {}{}",
                    ctx.texts.network,
                    if anchored { " (only one before)" } else { "" }
                ));
            }
            Some(SourceClass::Private) => {
                net = 0.1 * rarity(rate);
                details.push(format!("new private range {}", ctx.texts.network));
            }
            None => {}
        }
    }
    let mut ua = 0.0;
    if ctx.novelty.user_agent {
        let rate = ctx
            .state
            .novelty_rate_per_day(SeenKind::UserAgent, now, ctx.params);
        ua = 0.5 * rarity(rate) * fleet_discount(ctx.fleet.user_agent);
        details.push(format!("new client family `{}`", ctx.texts.user_agent));
    }
    let strength = 1.0 - (1.0 - net) * (1.0 - ua);
    Finding::new(strength, details.join("; "))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::FleetView;
    use super::*;

    #[test]
    fn ci_runner_on_fresh_private_ip_with_upgraded_agent_is_quiet() {
        let h = ci_runner();
        let e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "10.21.77.9",
            "GitHubActionsRunner/2.999.0 Linux",
        );
        assert_eq!(h.ask(&e, FleetView::default(), detect), None);
    }

    #[test]
    fn public_ip_with_new_client_family_fires() {
        let h = ci_runner();
        let e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "198.51.100.23",
            "curl/7.58.0",
        );
        let f = h.ask(&e, FleetView::default(), detect).expect("fires");
        assert!(f.strength > 0.9, "{f:?}");
        assert!(
            f.detail.contains("198.51.100.0/24") && f.detail.contains("curl"),
            "{}",
            f.detail
        );
    }

    #[test]
    fn new_private_range_is_weak() {
        let h = ci_runner();
        let e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "192.168.4.4",
            "GitHubActionsRunner/2.1 Linux",
        );
        let f = h
            .ask(&e, FleetView::default(), detect)
            .expect("weak finding");
        assert!(f.strength <= 0.1, "{f:?}");
    }

    #[test]
    fn fleet_wide_new_client_family_is_discounted() {
        let h = ci_runner();
        let e = event(
            WEEK3_WORKDAY,
            "s3:GetObject",
            "arn:aws:s3:::ci-artifacts/x",
            "10.20.1.1",
            "NewRunner/1.0",
        );
        let alone = h.ask(&e, FleetView::default(), detect).expect("fires");
        let fleet = FleetView {
            user_agent: 25,
            ..FleetView::default()
        };
        let many = h.ask(&e, fleet, detect);
        assert!(many.map_or(0.0, |f| f.strength) < alone.strength / 5.0);
    }
}
