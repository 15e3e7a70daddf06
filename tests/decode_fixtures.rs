//! Decoders against the checked-in fixtures (`tests/fixtures/`): real CloudTrail records,
//! Kubernetes audit events derived from a real dataset, and native NDJSON. Each test pins
//! the mapping rules of design §2 on real shapes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use riskd::decode::{decode, Decoded, Format, Limits, RejectReason};
use riskd::event::{ActivityEvent, IdentityKind, Outcome, Sensitivity};

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if rel.ends_with(".gz") {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut text)
            .expect("gunzip fixture");
        text
    } else {
        bytes
    }
}

fn decode_all(format: Format, input: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    decode(format, input, &Limits::default(), &mut out);
    out
}

fn one_event(format: Format, rel: &str) -> ActivityEvent {
    let out = decode_all(format, &fixture(rel));
    assert_eq!(out.len(), 1, "{rel}: {out:?}");
    // auto must pick the same decoder.
    assert_eq!(
        decode_all(Format::Auto, &fixture(rel)),
        out,
        "auto on {rel}"
    );
    match out.into_iter().next() {
        Some(Decoded::Event(ev)) => *ev,
        other => panic!("{rel}: expected an event, got {other:?}"),
    }
}

fn lines(rel: &str, format: Format) -> Vec<Decoded> {
    let text = fixture(rel);
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        decode(format, line, &Limits::default(), &mut out);
    }
    out
}

const ACCOUNT: &str = "123837392027";

#[test]
fn cloudtrail_assumed_role_maps_to_role_and_session() {
    let ev = one_event(Format::Cloudtrail, "cloudtrail/assumed_role_denied.json");
    assert_eq!(
        ev.identity,
        format!("arn:aws:iam::{ACCOUNT}:role/stratus-red-team-ec2-get-password-data-role")
    );
    assert_eq!(ev.identity_kind, IdentityKind::Workload);
    assert_eq!(
        ev.attributes.get("session").map(String::as_str),
        Some("aws-go-sdk-1688990082523310002")
    );
    assert_eq!(ev.action, "ec2:GetPasswordData");
    assert_eq!(ev.destination, "ec2:instanceId/i-durz4ux740gjqvcm");
    assert_eq!(ev.outcome, Outcome::Denied);
    assert_eq!(
        ev.attributes.get("error_code").map(String::as_str),
        Some("Client.UnauthorizedOperation")
    );
    assert_eq!(ev.source_ip.as_deref(), Some("192.168.10.20"));
    assert_eq!(ev.source_network, None);
    assert_eq!(
        ev.user_agent.as_deref(),
        Some("stratus-red-team_39f95f43-cd2f-4beb-b69e-be60b6fe1f57")
    );
    assert_eq!(
        ev.event_id.as_deref(),
        Some("fbd91225-39aa-4c00-822c-9f0b96e7758f")
    );
    // 2023-07-10T11:54:48Z
    assert_eq!(ev.time_ms, 1_688_990_088_000);
    assert_eq!(
        ev.attributes.get("aws_region").map(String::as_str),
        Some("us-east-1")
    );
    assert_eq!(
        ev.attributes
            .get("recipient_account_id")
            .map(String::as_str),
        Some(ACCOUNT)
    );
    assert_eq!(
        ev.attributes.get("event_type").map(String::as_str),
        Some("AwsApiCall")
    );
    assert_eq!(
        ev.attributes.get("read_only").map(String::as_str),
        Some("true")
    );
}

#[test]
fn cloudtrail_iam_user_with_key_is_api_key_and_secret_arn_is_destination() {
    let ev = one_event(Format::Cloudtrail, "cloudtrail/iam_user_get_secret.json");
    assert!(
        ev.identity
            .starts_with(&format!("arn:aws:iam::{ACCOUNT}:user/")),
        "{}",
        ev.identity
    );
    assert_eq!(ev.identity_kind, IdentityKind::ApiKey);
    assert_eq!(ev.action, "secretsmanager:GetSecretValue");
    assert!(
        ev.destination.starts_with("arn:aws:secretsmanager:"),
        "{}",
        ev.destination
    );
    assert_eq!(ev.outcome, Outcome::Success);
    assert!(!ev.attributes.contains_key("session"));
    assert!(!ev.attributes.contains_key("error_code"));
}

#[test]
fn cloudtrail_aws_service_uses_invoked_by_and_resource_arn() {
    let ev = one_event(
        Format::Cloudtrail,
        "cloudtrail/aws_service_assume_role.json",
    );
    assert_eq!(ev.identity, "inspector2.amazonaws.com");
    assert_eq!(ev.identity_kind, IdentityKind::ServiceAccount);
    assert_eq!(ev.action, "sts:AssumeRole");
    assert_eq!(
        ev.destination,
        format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/inspector2.amazonaws.com/AWSServiceRoleForAmazonInspector2")
    );
    // A service host is not an IP: it is a named network.
    assert_eq!(ev.source_ip, None);
    assert_eq!(
        ev.source_network.as_deref(),
        Some("inspector2.amazonaws.com")
    );
}

#[test]
fn cloudtrail_untyped_service_event_uses_invoked_by() {
    let ev = one_event(Format::Cloudtrail, "cloudtrail/service_event_untyped.json");
    assert_eq!(ev.identity, "secretsmanager.amazonaws.com");
    assert_eq!(ev.identity_kind, IdentityKind::ServiceAccount);
    assert_eq!(ev.action, "secretsmanager:StartSecretVersionDelete");
    assert!(
        ev.destination.starts_with("arn:aws:secretsmanager:"),
        "{}",
        ev.destination
    );
    assert_eq!(
        ev.attributes.get("event_type").map(String::as_str),
        Some("AwsServiceEvent")
    );
}

#[test]
fn cloudtrail_error_codes() {
    let ev = one_event(Format::Cloudtrail, "cloudtrail/error_throttling.json");
    assert_eq!(ev.outcome, Outcome::Error);
    assert_eq!(
        ev.destination, "ssm.amazonaws.com",
        "no request parameters: service host"
    );
    let ev = one_event(Format::Cloudtrail, "cloudtrail/iam_user_access_denied.json");
    assert_eq!(ev.outcome, Outcome::Denied);
    let ev = one_event(
        Format::Cloudtrail,
        "cloudtrail/cloudtrail_stop_logging.json",
    );
    assert_eq!(ev.outcome, Outcome::Error);
    assert_eq!(ev.action, "cloudtrail:StopLogging");
    assert_eq!(
        ev.destination,
        "cloudtrail:name/stratus-red-team-ct-stop-trail-qzbgnfqisx"
    );
}

#[test]
fn cloudtrail_ec2_instance_set_and_s3_bucket() {
    let ev = one_event(Format::Cloudtrail, "cloudtrail/ec2_instances_set.json");
    assert_eq!(ev.action, "ec2:TerminateInstances");
    assert_eq!(ev.destination, "ec2:instanceId/i-0dbc91f429e48eeed");
    let ev = one_event(Format::Cloudtrail, "cloudtrail/s3_create_bucket.json");
    assert_eq!(ev.action, "s3:CreateBucket");
    assert_eq!(
        ev.destination,
        "arn:aws:s3:::stratus-red-team-ctlr-bucket-zqfsvooxqj"
    );
    assert_eq!(ev.bytes, Some(0));
}

#[test]
fn cloudtrail_envelope_plain_and_gzipped() {
    for rel in ["cloudtrail/envelope.json", "cloudtrail/envelope.json.gz"] {
        let out = decode_all(Format::Cloudtrail, &fixture(rel));
        assert_eq!(out.len(), 5, "{rel}");
        let identities: Vec<String> = out
            .iter()
            .map(|d| match d {
                Decoded::Event(ev) => ev.identity.clone(),
                other => panic!("{rel}: {other:?}"),
            })
            .collect();
        assert_eq!(identities[2], "inspector2.amazonaws.com");
        assert_eq!(decode_all(Format::Auto, &fixture(rel)), out);
    }
}

#[test]
fn cloudtrail_oversized_record_inside_envelope_is_rejected_alone() {
    let text = String::from_utf8(fixture("cloudtrail/envelope.json")).expect("utf8");
    let limits = Limits {
        max_record_bytes: 1_500,
        max_depth: 64,
    };
    let mut out = Vec::new();
    decode(Format::Cloudtrail, text.as_bytes(), &limits, &mut out);
    assert_eq!(out.len(), 5);
    let too_large: Vec<&Decoded> = out
        .iter()
        .filter(|d| matches!(d, Decoded::Rejected(r) if r.reason == RejectReason::TooLarge))
        .collect();
    assert!(!too_large.is_empty() && too_large.len() < 5, "{out:?}");
    assert!(out.iter().any(|d| matches!(d, Decoded::Event(_))));
}

#[test]
fn k8s_audit_fixture_counts_and_mappings() {
    let out = lines("k8s/audit.jsonl", Format::K8sAudit);
    assert_eq!(out.len(), 15);
    assert_eq!(lines("k8s/audit.jsonl", Format::Auto), out, "auto agrees");
    let events: Vec<&ActivityEvent> = out
        .iter()
        .filter_map(|d| match d {
            Decoded::Event(ev) => Some(ev.as_ref()),
            _ => None,
        })
        .collect();
    let skipped = out
        .iter()
        .filter(|d| matches!(d, Decoded::Skipped("audit_stage")))
        .count();
    assert_eq!((events.len(), skipped), (13, 2), "{out:?}");

    let by_action: BTreeMap<&str, &ActivityEvent> =
        events.iter().map(|e| (e.action.as_str(), *e)).collect();
    let binding = by_action["create pods/binding"];
    assert_eq!(binding.identity, "system:kube-scheduler");
    assert_eq!(binding.identity_kind, IdentityKind::Workload);
    assert_eq!(
        binding.destination,
        "kube-prometheus-stack/pods/my-kube-prometheus-stack-admission-create-48n9x"
    );
    assert_eq!(
        binding.attributes.get("namespace").map(String::as_str),
        Some("kube-prometheus-stack")
    );
    assert_eq!(
        binding.event_id.as_deref(),
        Some("2c3961ba-57c2-4cef-9289-bd537cbe5a08")
    );
    assert_eq!(binding.source_ip.as_deref(), Some("192.168.56.10"));
    assert!(binding.user_agent.is_some());
    assert!(by_action.contains_key("patch pods/status"));
    assert!(by_action.contains_key("create serviceaccounts/token"));

    let crd = by_action["create customresourcedefinitions"];
    assert_eq!(
        crd.destination,
        "customresourcedefinitions/alertmanagerconfigs.monitoring.coreos.com"
    );
    assert_eq!(crd.outcome, Outcome::Error, "409");
    assert_eq!(crd.identity_kind, IdentityKind::Unknown);

    let denied_pods = by_action["create pods"];
    assert_eq!(denied_pods.outcome, Outcome::Denied);
    assert_eq!(denied_pods.destination, "kube-system/pods");
    assert_eq!(denied_pods.identity_kind, IdentityKind::ServiceAccount);

    let csi = by_action["list csidrivers"];
    assert_eq!(
        (csi.outcome, csi.destination.as_str()),
        (Outcome::Denied, "csidrivers")
    );

    assert_eq!(
        by_action["watch nodes"].destination,
        "nodes/k8s-master-perfspec"
    );
    assert_eq!(by_action["get /readyz"].destination, "/readyz");
    assert_eq!(by_action["get /api"].destination, "/api");
    assert_eq!(by_action["list secrets"].time_ms, 1_674_844_127_834);

    let outcomes = events.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.outcome.as_str()).or_insert(0) += 1;
        m
    });
    assert_eq!(outcomes.get("denied"), Some(&2));
    assert_eq!(outcomes.get("error"), Some(&3));
}

#[test]
fn native_sample_all_decode() {
    let out = lines("native/sample.ndjson", Format::Native);
    assert_eq!(out.len(), 5);
    assert_eq!(lines("native/sample.ndjson", Format::Auto), out);
    let evs: Vec<&ActivityEvent> = out
        .iter()
        .map(|d| match d {
            Decoded::Event(ev) => ev.as_ref(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(evs[1].sensitivity, Some(Sensitivity::Restricted));
    assert_eq!(evs[1].time_ms, 1_795_593_601_000);
    assert_eq!(evs[3].time_ms, 1_795_590_003_500, "+01:00 offset applied");
    assert_eq!(evs[4].outcome, Outcome::Error);
}

#[test]
fn native_mixed_matches_its_readme() {
    let out = lines("native/mixed.ndjson", Format::Native);
    assert_eq!(out.len(), 15);
    assert_eq!(lines("native/mixed.ndjson", Format::Auto).len(), 15);
    let mut rejected = BTreeMap::new();
    let mut events = 0;
    for (i, d) in out.iter().enumerate() {
        match d {
            Decoded::Event(_) => events += 1,
            Decoded::Rejected(r) => {
                assert!(!r.detail.is_empty());
                rejected.insert(i + 1, r.reason);
            }
            Decoded::Skipped(s) => panic!("line {}: skipped {s}", i + 1),
        }
    }
    assert_eq!(events, 10);
    let expected = BTreeMap::from([
        (6, RejectReason::InvalidJson),
        (7, RejectReason::MissingField),
        (9, RejectReason::WrongType),
        (11, RejectReason::InvalidValue),
        (13, RejectReason::NotAnObject),
    ]);
    assert_eq!(rejected, expected);
}
