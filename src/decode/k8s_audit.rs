//! Kubernetes audit (`audit.k8s.io/v1` `Event`, one per line) → activity events
//! (design §2).
//!
//! The API server writes one audit event per stage of a request (`RequestReceived`,
//! `ResponseStarted`, `ResponseComplete`, `Panic`); only `ResponseComplete` is counted,
//! so a request is one activity, and the others are `Skipped("audit_stage")` rather than
//! rejected (they are well-formed, just not activities).
//!
//! Mapping: identity `user.username`; kind `system:serviceaccount:*` → service_account,
//! other `system:*` (nodes, controllers) → workload, `system:anonymous` and everyone
//! else → unknown (`impersonatedUser` is kept as the `impersonated_user` attribute); action
//! `<verb> <resource>[/<subresource>]` (no `objectRef`: `<verb> <path>` from
//! `requestURI`); destination `namespace/resource/name`, `resource/name` when cluster
//! scoped, `namespace/resource` without a name; outcome from `responseStatus.code`
//! (401/403 denied, ≥ 400 error); time `stageTimestamp`, else `requestReceivedTimestamp`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::util::{is_ip, parse_rfc3339, quote, serde_rejection, value_kind, Obj};
use super::{Decoded, RejectReason, Rejection};
use crate::event::{ActivityEvent, IdentityKind, Outcome};

/// The only stage that becomes an activity.
pub const FINAL_STAGE: &str = "ResponseComplete";

/// `Skipped` label for audit events at other stages.
pub const SKIP_STAGE: &str = "audit_stage";

/// Decodes one audit event that already passed the size, encoding and depth bounds.
pub(crate) fn decode_str(text: &str) -> Decoded {
    match decode_inner(text) {
        Ok(Some(ev)) => Decoded::Event(Box::new(ev)),
        Ok(None) => Decoded::Skipped(SKIP_STAGE),
        Err(r) => Decoded::Rejected(r),
    }
}

fn decode_inner(text: &str) -> Result<Option<ActivityEvent>, Rejection> {
    let value: Value = serde_json::from_str(text).map_err(|e| serde_rejection(&e))?;
    let Value::Object(map) = &value else {
        return Err(Rejection::new(
            RejectReason::NotAnObject,
            format!(
                "expected an audit.k8s.io Event object, found {}",
                value_kind(&value)
            ),
        ));
    };
    let ev = Obj { map, path: "" };

    if let Some(api) = ev.opt_nonempty("apiVersion")? {
        if !api.starts_with("audit.k8s.io/") {
            return Err(Rejection::new(
                RejectReason::InvalidValue,
                format!("field `apiVersion`: {} is not audit.k8s.io/*", quote(api)),
            ));
        }
    }
    if let Some(kind) = ev.opt_nonempty("kind")? {
        if kind != "Event" {
            return Err(Rejection::new(
                RejectReason::InvalidValue,
                format!("field `kind`: {} is not `Event`", quote(kind)),
            ));
        }
    }
    // Stage before everything else: earlier stages are skipped even when they lack
    // fields only the final stage carries (responseStatus, stageTimestamp).
    if ev.req_str("stage")? != FINAL_STAGE {
        return Ok(None);
    }

    let time_ms = match ev.opt_nonempty("stageTimestamp")? {
        Some(t) => parse_rfc3339("stageTimestamp", t)?,
        None => match ev.opt_nonempty("requestReceivedTimestamp")? {
            Some(t) => parse_rfc3339("requestReceivedTimestamp", t)?,
            None => {
                return Err(Rejection::new(
                    RejectReason::MissingField,
                    "field `stageTimestamp` (or `requestReceivedTimestamp`) is missing",
                ))
            }
        },
    };

    let identity = match ev.opt_obj("user", "user")? {
        Some(user) => user.req_str("username")?,
        None => {
            return Err(Rejection::new(
                RejectReason::MissingField,
                "field `user.username` is missing",
            ))
        }
    };
    // `system:anonymous` (and its group `system:unauthenticated`) is nobody: an
    // unauthenticated caller, not a control-plane workload.
    let identity_kind = if identity.starts_with("system:serviceaccount:") {
        IdentityKind::ServiceAccount
    } else if identity == "system:anonymous" || identity == "system:unauthenticated" {
        IdentityKind::Unknown
    } else if identity.starts_with("system:") {
        IdentityKind::Workload
    } else {
        IdentityKind::Unknown
    };

    let verb = ev.req_str("verb")?;
    let object_ref = ev.opt_obj("objectRef", "objectRef")?;
    let request_path = ev
        .opt_nonempty("requestURI")?
        .map(|uri| uri.split('?').next().unwrap_or(uri));
    let mut attributes = BTreeMap::new();
    // `kubectl --as=…`: the caller acts as another user. The caller stays the identity
    // (its behaviour is what is judged); whom it acted as is kept for the reasons and
    // for policy.
    if let Some(as_user) = ev
        .lenient_obj("impersonatedUser", "impersonatedUser")
        .and_then(|u| u.opt_nonempty("username").ok().flatten())
    {
        attributes.insert("impersonated_user".to_string(), as_user.to_string());
    }

    let (action, destination) = match object_ref
        .as_ref()
        .map(|o| o.opt_nonempty("resource"))
        .transpose()?
        .flatten()
    {
        Some(resource) => {
            // `object_ref` is Some whenever `resource` is.
            let (namespace, name, subresource) = match &object_ref {
                Some(o) => (
                    o.opt_nonempty("namespace")?,
                    o.opt_nonempty("name")?,
                    o.opt_nonempty("subresource")?,
                ),
                None => (None, None, None),
            };
            let action = match subresource {
                Some(sub) => format!("{verb} {resource}/{sub}"),
                None => format!("{verb} {resource}"),
            };
            let destination = match (namespace, name) {
                (Some(ns), Some(n)) => format!("{ns}/{resource}/{n}"),
                (None, Some(n)) => format!("{resource}/{n}"),
                (Some(ns), None) => format!("{ns}/{resource}"),
                (None, None) => resource.to_string(),
            };
            if let Some(ns) = namespace {
                attributes.insert("namespace".to_string(), ns.to_string());
            }
            (action, destination)
        }
        None => match request_path {
            // Non-resource requests (`/healthz`, `/apis`) have no objectRef.
            Some(path) => (format!("{verb} {path}"), path.to_string()),
            None => {
                return Err(Rejection::new(
                    RejectReason::MissingField,
                    "field `objectRef.resource` (or `requestURI`) is missing",
                ))
            }
        },
    };

    let outcome = match ev.opt_obj("responseStatus", "responseStatus")? {
        None => Outcome::Success,
        Some(status) => match status.map.get("code") {
            None | Some(Value::Null) => Outcome::Success,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(401 | 403) => Outcome::Denied,
                Some(code) if code >= 400 => Outcome::Error,
                Some(_) => Outcome::Success,
                None => {
                    return Err(Rejection::new(
                        RejectReason::InvalidValue,
                        format!("field `responseStatus.code`: {n} is not an HTTP status"),
                    ))
                }
            },
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::WrongType,
                    format!(
                        "field `responseStatus.code`: expected an integer, found {}",
                        value_kind(other)
                    ),
                ))
            }
        },
    };

    let source_ip = match ev.map.get("sourceIPs") {
        Some(Value::Array(ips)) => ips
            .first()
            .and_then(Value::as_str)
            .filter(|ip| is_ip(ip))
            .map(str::to_string),
        _ => None,
    };

    Ok(Some(ActivityEvent {
        time_ms,
        identity: identity.to_string(),
        action,
        destination,
        event_id: ev.opt_nonempty("auditID")?.map(str::to_string),
        identity_kind,
        environment: None,
        source_ip,
        source_network: None,
        user_agent: ev.opt_nonempty("userAgent")?.map(str::to_string),
        outcome,
        bytes: None,
        records: None,
        sensitivity: None,
        attributes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(overrides: serde_json::Value) -> serde_json::Value {
        let mut base = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": "a-1",
            "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/prod/secrets/db?x=1",
            "verb": "get",
            "user": {"username": "system:serviceaccount:prod:api", "groups": ["system:serviceaccounts"]},
            "sourceIPs": ["10.1.2.3", "10.0.0.1"],
            "userAgent": "client-go/1.29",
            "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2023-01-27T18:28:08.100000Z",
            "stageTimestamp": "2023-01-27T18:28:08.129781Z"
        });
        if let (Some(b), Some(o)) = (base.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        base
    }

    fn ok(v: serde_json::Value) -> ActivityEvent {
        match decode_str(&v.to_string()) {
            Decoded::Event(ev) => *ev,
            other => panic!("{v}: {other:?}"),
        }
    }

    fn bad(v: serde_json::Value) -> Rejection {
        match decode_str(&v.to_string()) {
            Decoded::Rejected(r) => {
                assert!(!r.detail.is_empty());
                r
            }
            other => panic!("{v}: expected rejection, got {other:?}"),
        }
    }

    #[test]
    fn full_mapping() {
        let ev = ok(event(json!({})));
        assert_eq!(ev.identity, "system:serviceaccount:prod:api");
        assert_eq!(ev.identity_kind, IdentityKind::ServiceAccount);
        assert_eq!(ev.action, "get secrets");
        assert_eq!(ev.destination, "prod/secrets/db");
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(ev.time_ms, 1_674_844_088_129);
        assert_eq!(ev.source_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(ev.user_agent.as_deref(), Some("client-go/1.29"));
        assert_eq!(ev.event_id.as_deref(), Some("a-1"));
        assert_eq!(
            ev.attributes.get("namespace").map(String::as_str),
            Some("prod")
        );
    }

    #[test]
    fn other_stages_are_skipped_even_when_incomplete() {
        for stage in ["RequestReceived", "ResponseStarted", "Panic"] {
            let out = decode_str(&json!({"kind": "Event", "stage": stage}).to_string());
            assert_eq!(out, Decoded::Skipped(SKIP_STAGE), "{stage}");
        }
        let e = bad(event(json!({"stage": null})));
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("`stage`"));
    }

    #[test]
    fn identity_kinds() {
        for (user, kind) in [
            ("system:serviceaccount:ns:sa", IdentityKind::ServiceAccount),
            ("system:node:worker-1", IdentityKind::Workload),
            ("system:kube-scheduler", IdentityKind::Workload),
            ("alice@example.com", IdentityKind::Unknown),
            ("system:anonymous", IdentityKind::Unknown),
        ] {
            let ev = ok(event(json!({"user": {"username": user}})));
            assert_eq!((ev.identity.as_str(), ev.identity_kind), (user, kind));
        }
        // `kubectl --as`: the caller is the identity; whom it acted as is kept.
        let ev = ok(event(json!({
            "user": {"username": "alice@example.com"},
            "impersonatedUser": {"username": "system:serviceaccount:kube-system:admin"}
        })));
        assert_eq!(ev.identity, "alice@example.com");
        assert_eq!(
            ev.attributes.get("impersonated_user").map(String::as_str),
            Some("system:serviceaccount:kube-system:admin")
        );
    }

    #[test]
    fn actions_and_destinations() {
        let ev = ok(event(
            json!({"verb": "create", "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "prod", "name": "web-1"}}),
        ));
        assert_eq!(
            (ev.action.as_str(), ev.destination.as_str()),
            ("create pods/exec", "prod/pods/web-1")
        );
        let ev = ok(event(
            json!({"verb": "delete", "objectRef": {"resource": "clusterroles", "name": "admin"}}),
        ));
        assert_eq!(
            (ev.action.as_str(), ev.destination.as_str()),
            ("delete clusterroles", "clusterroles/admin")
        );
        assert!(ev.attributes.is_empty());
        let ev = ok(event(
            json!({"verb": "list", "objectRef": {"resource": "pods", "namespace": "prod"}}),
        ));
        assert_eq!(ev.destination, "prod/pods");
        let ev = ok(event(
            json!({"verb": "list", "objectRef": {"resource": "nodes"}}),
        ));
        assert_eq!(ev.destination, "nodes");
        let ev = ok(event(
            json!({"verb": "get", "objectRef": null, "requestURI": "/healthz?verbose=1"}),
        ));
        assert_eq!(
            (ev.action.as_str(), ev.destination.as_str()),
            ("get /healthz", "/healthz")
        );
        let e = bad(event(json!({"objectRef": null, "requestURI": null})));
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("objectRef.resource"));
        let e = bad(event(json!({"objectRef": {"resource": 5}})));
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("`objectRef.resource`"), "{}", e.detail);
        let e = bad(event(json!({"objectRef": []})));
        assert_eq!(e.reason, RejectReason::WrongType);
    }

    #[test]
    fn outcomes_from_status_code() {
        for (code, want) in [
            (200, Outcome::Success),
            (201, Outcome::Success),
            (302, Outcome::Success),
            (401, Outcome::Denied),
            (403, Outcome::Denied),
            (404, Outcome::Error),
            (409, Outcome::Error),
            (500, Outcome::Error),
        ] {
            let ev = ok(event(json!({"responseStatus": {"code": code}})));
            assert_eq!(ev.outcome, want, "{code}");
        }
        assert_eq!(
            ok(event(json!({"responseStatus": null}))).outcome,
            Outcome::Success
        );
        assert_eq!(
            ok(event(json!({"responseStatus": {"status": "Success"}}))).outcome,
            Outcome::Success
        );
        let e = bad(event(json!({"responseStatus": {"code": "403"}})));
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("responseStatus.code"));
        assert_eq!(
            bad(event(json!({"responseStatus": {"code": -1}}))).reason,
            RejectReason::InvalidValue
        );
    }

    #[test]
    fn time_fallback_and_errors() {
        let ev = ok(event(json!({"stageTimestamp": null})));
        assert_eq!(ev.time_ms, 1_674_844_088_100);
        let e = bad(event(
            json!({"stageTimestamp": null, "requestReceivedTimestamp": null}),
        ));
        assert_eq!(e.reason, RejectReason::MissingField);
        let e = bad(event(json!({"stageTimestamp": "now"})));
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("`stageTimestamp`") && e.detail.contains("`now`"));
    }

    #[test]
    fn user_and_verb_required() {
        let e = bad(event(json!({"user": null})));
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("user.username"));
        let e = bad(event(json!({"user": {"username": ""}})));
        assert_eq!(e.reason, RejectReason::MissingField);
        let e = bad(event(json!({"user": {"username": ["a"]}})));
        assert_eq!(e.reason, RejectReason::WrongType);
        assert!(e.detail.contains("`user.username`"), "{}", e.detail);
        let e = bad(event(json!({"verb": null})));
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.contains("`verb`"));
    }

    #[test]
    fn foreign_kinds_and_versions_are_invalid() {
        let e = bad(event(json!({"apiVersion": "v1"})));
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("`apiVersion`"));
        let e = bad(event(json!({"kind": "Pod"})));
        assert_eq!(e.reason, RejectReason::InvalidValue);
        assert!(e.detail.contains("`Pod`"));
        assert_eq!(bad(json!([1])).reason, RejectReason::NotAnObject);
        match decode_str("{\"stage\":") {
            Decoded::Rejected(r) => assert_eq!(r.reason, RejectReason::InvalidJson),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_ip_source_is_dropped() {
        let ev = ok(event(json!({"sourceIPs": ["not-an-ip"]})));
        assert_eq!(ev.source_ip, None);
        let ev = ok(event(json!({"sourceIPs": "10.0.0.1"})));
        assert_eq!(ev.source_ip, None);
    }
}
