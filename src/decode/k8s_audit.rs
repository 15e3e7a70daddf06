//! Kubernetes audit (`audit.k8s.io/v1` `Event`, one per line) → activity events
//! (design §2).
//!
//! The API server writes one audit event per stage of a request (`RequestReceived`,
//! `ResponseStarted`, `ResponseComplete`, `Panic`); only `ResponseComplete` is counted,
//! so a request is one activity, and the others are `Skipped("audit_stage")` rather than
//! rejected (they are well-formed, just not activities).
//!
//! Mapping: identity `user.username`; kind `system:serviceaccount:*` → service_account,
//! other `system:*` (nodes, controllers) → workload, else unknown; action
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
    let identity_kind = if identity.starts_with("system:serviceaccount:") {
        IdentityKind::ServiceAccount
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
