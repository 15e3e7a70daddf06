//! `new_action`: an action this identity never performed, judged against its own rate
//! of picking up new actions and discounted when many identities picked up the same one
//! recently (a release rolling out a new API call). Discovery, privilege and
//! defence-evasion verbs (MITRE ATT&CK TA0007 Discovery, TA0004/TA0003 privilege and
//! persistence, T1562 Impair Defenses: listing, describing, "who am I", key creation,
//! policy changes, secrets, disabling protections or logging) are the usual moves with
//! stolen or misused credentials and weigh more.

use super::{fleet_discount, rarity, Context, Finding};
use crate::state::SeenKind;

/// Lower-case fragments of actions that attackers use and routine work rarely starts
/// doing out of the blue, grouped by MITRE ATT&CK tactic. Matched as substrings of the
/// lower-cased action, so they cover AWS (`iam:CreateAccessKey`), Kubernetes
/// (`create pods/exec`) and HTTP or git verbs alike. Only a *new* action is judged, so an
/// identity that does these as its job (a deployer creating roles) is not affected.
const SENSITIVE_VERBS: [&str; 53] = [
    // Discovery (TA0007): enumeration and "who am I".
    "list",
    "describe",
    "getcalleridentity",
    "getaccountauthorization",
    // Credential access (TA0006): see CREDENTIAL_VERBS.
    // Privilege escalation and persistence (TA0004, TA0003).
    "createaccesskey",
    "createuser",
    "createloginprofile",
    "updateloginprofile",
    "attach",
    "putuserpolicy",
    "putrolepolicy",
    "passrole",
    "createrole",
    "updateassumerolepolicy",
    "createpolicyversion",
    "setdefaultpolicyversion",
    "addusertogroup",
    "createtrustanchor",
    "addpermission",
    "publishlayerversion",
    "updatefunctioncode",
    "updatefunctionconfiguration",
    "impersonate",
    "escalate",
    "rolebindings",
    // Defence evasion (TA0005, T1562 Impair Defenses).
    "protection",
    "stoplogging",
    "deletetrail",
    "puteventselectors",
    "disable",
    "deleteflowlogs",
    "deletedetector",
    "deleteloggroup",
    "deleteresolverquerylogconfig",
    "leaveorganization",
    "deactivatemfadevice",
    // Exfiltration by sharing or opening up (TA0010).
    "modifysnapshotattribute",
    "modifyimageattribute",
    "modifydbsnapshotattribute",
    "modifydbclustersnapshotattribute",
    "putbucketpolicy",
    "putbucketacl",
    "deletepublicaccessblock",
    "deletebucketpublicaccessblock",
    "authorizesecuritygroupingress",
    // Execution and lateral movement (TA0002, TA0008).
    "sendcommand",
    "startsession",
    "sshpublickey",
    "modifyinstanceattribute",
    "pods/exec",
    "pods/portforward",
    "nodes/proxy",
    // Impact (TA0040): bulk deletion.
    "deleteobjects",
];

/// Lower-case fragments of actions that obtain credentials or secrets (MITRE ATT&CK
/// TA0006 Credential Access, and taking on another role's credentials): a read that
/// hands out a key is never "only a read".
const CREDENTIAL_VERBS: [&str; 9] = [
    "secret",
    "decrypt",
    "getpassworddata",
    "getparameter",
    "getsessiontoken",
    "getfederationtoken",
    "serviceaccounts/token",
    "certificatesigningrequests",
    "assumerole",
];

pub(crate) fn is_sensitive(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    contains_any(&lower, &SENSITIVE_VERBS) || contains_any(&lower, &CREDENTIAL_VERBS)
}

/// Whether `action` obtains credentials or secrets (see [`CREDENTIAL_VERBS`]).
pub(crate) fn obtains_credentials(action: &str) -> bool {
    contains_any(&action.to_ascii_lowercase(), &CREDENTIAL_VERBS)
}

fn contains_any(lower: &str, fragments: &[&str]) -> bool {
    fragments.iter().any(|v| lower.contains(v))
}

/// Weight of a plain new action that `peers` other identities took up on earlier days
/// (within `score.fleet_peer_memory`, two weeks by default): one other is coincidence;
/// from two on it falls, to 0.7 at four or more. Milder than [`fleet_discount`] (a
/// rollout within the day): spread out over weeks, the peers are weaker evidence that
/// this identity's change is theirs.
fn peer_discount(peers: u32) -> f64 {
    1.0 / (1.0 + 0.15 * f64::from(peers.saturating_sub(1).min(3)))
}

pub fn detect(ctx: &Context<'_>) -> Option<Finding> {
    // The few actions operators list as never acceptable unnoticed (impairing logging
    // and detection) are judged on their own, whatever the identity's history: no
    // baseline makes a first `StopLogging` routine, and a novelty-rate or fleet discount
    // would let it hide among an identity's other new actions. (The engine sets it only
    // for a matching call this identity never made: judged by the entry, since the
    // seen-sets of a broad identity may answer "seen" from their overflow sketch.)
    if ctx.impairs_defences {
        return Finding::lazy(1.0, || {
            if ctx.novelty.action || !ctx.novelty.dest {
                format!(
                    "first use of {}, which impairs logging or detection (score.impair_defences)",
                    ctx.event.action
                )
            } else {
                format!(
                    "first {} of {}, which impairs logging or detection (score.impair_defences)",
                    ctx.event.action, ctx.event.destination
                )
            }
        });
    }
    if !ctx.novelty.action {
        return None;
    }
    if ctx.learning {
        return None;
    }
    let sensitive = is_sensitive(&ctx.event.action);
    let base = if sensitive { 0.85 } else { 0.65 };
    let rate = ctx
        .state
        .novelty_rate_per_day(SeenKind::Action, ctx.obs.time_ms, ctx.params);
    let others = ctx.fleet.action;
    // Peers that took up this action on earlier days (Terraform roles of one
    // team after another starting to create cache clusters) make a plain new action a
    // platform change more than one identity's departure. Not for sensitive actions:
    // that other identities list buckets or create keys is no reason for this one to.
    let peers = if sensitive { 0 } else { ctx.fleet.action_peers };
    // Its first call at this sensitivity (an access key minted by a job that never
    // touched a credential): not judged against its rate of taking up routine actions.
    let usual = if ctx.first_at_level.is_some() {
        0.0
    } else {
        rate
    };
    let strength = base * rarity(usual) * fleet_discount(others) * peer_discount(peers);
    let first = match ctx.first_at_level {
        Some(level) => format!(", but never anything {} before", level.as_str()),
        None => String::new(),
    };
    let kind = if sensitive {
        " (discovery/privilege)"
    } else {
        ""
    };
    // Both discounts can apply (same-day adopters and earlier ones are counted apart),
    // and the detail names each that weighed in.
    let peers_text = (peer_discount(peers) < 1.0)
        .then(|| format!("taken up on earlier days by {peers} other identities"));
    let fleet = match (others, peers_text) {
        (0, None) => String::new(),
        (0, Some(p)) => format!(", {p}"),
        (o, None) => format!(", {o} other identities too"),
        (o, Some(p)) => format!(", {o} other identities too; {p}"),
    };
    Finding::lazy(strength, || {
        format!(
            "first use of {}{kind}; {rate:.1} new actions/day usual{first}{fleet}",
            ctx.event.action
        )
    })
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
    fn a_learning_identity_is_judged_only_on_listed_actions() {
        let mut h = Harness::new();
        h.feed(&event(
            T0,
            "s3:ListBuckets",
            "s3",
            "198.51.100.7",
            "aws-cli/2.15",
        ));
        let stop = event(
            T0 + 60_000,
            "cloudtrail:StopLogging",
            "arn:aws:cloudtrail:us-east-1:1:trail/org",
            "198.51.100.7",
            "aws-cli/2.15",
        );
        assert!(!h.state.is_active());
        // Not listed (the engine's lookup said no): quiet, as any learning identity.
        assert_eq!(h.ask(&stop, FleetView::default(), detect), None);
        // Listed: judged, and strong enough to stand on its own.
        h.impairs_defences = true;
        let f = h
            .ask(&stop, FleetView::default(), detect)
            .expect("judged while learning");
        assert_eq!(f.strength, 1.0);
        assert!(f.detail.contains("cloudtrail:StopLogging"), "{f:?}");
        // Once done, it is no longer new: the second call says nothing more.
        h.feed(&stop);
        let mut again = stop.clone();
        again.time_ms += 60_000;
        assert_eq!(h.ask(&again, FleetView::default(), detect), None);
    }

    #[test]
    fn impairing_defences_is_strong_for_an_active_identity_too() {
        // A plain new action of a busy identity, met by other identities too, is
        // discounted; a first `StopLogging` is not.
        let mut h = ci_runner();
        h.impairs_defences = true;
        let fleet = FleetView {
            action: 5,
            ..FleetView::default()
        };
        let f = ask(&h, "cloudtrail:StopLogging", fleet).expect("fires");
        assert_eq!(f.strength, 1.0, "{f:?}");
        assert!(f.detail.contains("impairs logging"), "{f:?}");
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
    fn peers_on_earlier_days_soften_a_plain_new_action_only() {
        let h = ci_runner();
        let peers = |n| FleetView {
            action_peers: n,
            ..FleetView::default()
        };
        let strength = |action, n| ask(&h, action, peers(n)).expect("fires").strength;
        let alone = strength("elasticache:CreateReplicationGroup", 0);
        // One other is coincidence; from two on it weighs less, at most down to 0.7.
        assert_eq!(strength("elasticache:CreateReplicationGroup", 1), alone);
        let two = strength("elasticache:CreateReplicationGroup", 2);
        let many = strength("elasticache:CreateReplicationGroup", 40);
        assert!(two < alone && many < two, "{alone} {two} {many}");
        assert!((many / alone - 1.0 / 1.45).abs() < 1e-9, "{alone} {many}");
        let f = ask(&h, "elasticache:CreateReplicationGroup", peers(3)).expect("fires");
        assert!(
            f.detail
                .contains("taken up on earlier days by 3 other identities"),
            "{f:?}"
        );
        // Adopters today and earlier ones both weigh in, and both are named.
        let both = FleetView {
            action: 2,
            ..peers(3)
        };
        let f = ask(&h, "elasticache:CreateReplicationGroup", both).expect("fires");
        assert!(
            f.detail
                .contains("2 other identities too; taken up on earlier days by 3 other identities"),
            "{f:?}"
        );
        // A sensitive action is judged as if alone, however many others use it.
        let key = strength("iam:CreateAccessKey", 0);
        assert_eq!(strength("iam:CreateAccessKey", 40), key);
    }

    #[test]
    fn attack_verbs_across_sources_are_sensitive_and_routine_ones_are_not() {
        for action in [
            "cloudtrail:StopLogging",
            "ec2:ModifySnapshotAttribute",
            "s3:PutBucketPolicy",
            "iam:UpdateAssumeRolePolicy",
            "ssm:SendCommand",
            "ec2-instance-connect:SendSSHPublicKey",
            "create pods/exec",
            "create serviceaccounts/token",
            "create clusterrolebindings",
            "github:branches.update_protection",
        ] {
            assert!(is_sensitive(action), "{action}");
        }
        for action in [
            "s3:GetObject",
            "s3:PutObject",
            "get pods",
            "update deployments",
            "git:push",
            "POST /v1/payments",
        ] {
            assert!(!is_sensitive(action), "{action}");
        }
    }

    #[test]
    fn known_action_and_fleet_rollout_are_quiet_or_weak() {
        let h = ci_runner();
        assert_eq!(ask(&h, "s3:GetObject", FleetView::default()), None);
        let fleet = FleetView {
            action: 30,
            ..FleetView::default()
        };
        // Weak enough to fall under the noise floor.
        let f = ask(&h, "s3:PutObjectTagging", fleet);
        assert!(f.as_ref().map_or(0.0, |f| f.strength) < 0.1, "{f:?}");
    }
}
