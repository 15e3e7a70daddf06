//! Decisions: `POST /v1/decide` and the Envoy HTTP `ext_authz` check.
//!
//! Both read the identity's latest signal and evaluate the policy at the current wall
//! clock (time windows are about when the request happens, not event time).

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{error, AppState};
use crate::event::Sensitivity;
use crate::policy::{Decision, DecisionInput, Verdict};
use crate::signal::{IdentityState, Level, Reason, Signal};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DecideRequest {
    identity: String,
    action: String,
    destination: String,
    /// Free context: `identity_kind`, `source_ip`, `environment`, `sensitivity`,
    /// `approval_id`, ... Values must be strings, numbers or booleans.
    #[serde(default)]
    context: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct DecideResponse {
    pub decision: Decision,
    pub rule: String,
    /// `null` for an identity never seen.
    pub score: Option<f64>,
    pub level: Option<Level>,
    pub state: IdentityState,
    pub reasons: Vec<Reason>,
    pub sensitivity: Sensitivity,
    /// Why the decision is what it is, one line per rule condition that did not hold.
    pub explanation: Vec<String>,
}

/// Looks the identity up, evaluates the policy, counts the decision.
fn decide_for(state: &AppState, input: &DecisionInput<'_>) -> (Verdict, Option<Signal>) {
    let risk = state.table.get(input.identity).map(|e| e.signal);
    let verdict = state.policy.evaluate(input, risk.as_ref(), Utc::now());
    crate::metrics::metrics()
        .decisions
        .with_label_values(&[verdict.decision.as_str()])
        .inc();
    (verdict, risk)
}

pub(super) async fn decide(
    State(state): State<AppState>,
    body: Result<Json<DecideRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    for (field, value) in [
        ("identity", &req.identity),
        ("action", &req.action),
        ("destination", &req.destination),
    ] {
        if value.trim().is_empty() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{field}` must not be empty"),
            );
        }
    }
    let mut context = BTreeMap::new();
    for (key, value) in req.context {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("context `{key}` must be a string, number or boolean"),
                )
            }
        };
        context.insert(key, text);
    }
    if let Some(message) = bad_identity_kind(&context) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    let input = DecisionInput {
        identity: &req.identity,
        action: &req.action,
        destination: &req.destination,
        context: &context,
    };
    let (verdict, risk) = decide_for(&state, &input);
    Json(response(verdict, risk)).into_response()
}

/// The Host as rules name it: lower case, without a port or a trailing dot. The same
/// server answers `Payments.Internal:443` and `payments.internal.`, and an exact rule
/// must not be dodged by either spelling.
fn normalise_host(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: `[::1]:443`.
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The path as rules name it (RFC 3986 normalisation, as backends resolve it):
/// percent-encoded unreserved characters decoded, `.` and `..` segments resolved, empty
/// segments and a trailing `/` dropped. `/v1/payments/%65xport/` and
/// `/v1//payments/./export` are the export a rule names as `/v1/payments/export`.
fn normalise_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(c) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                    decoded.push(char::from(c));
                    i += 3;
                    continue;
                }
            }
        }
        // Multi-byte characters are copied whole (`path` is a valid `str`).
        let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
        decoded.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

/// A context `identity_kind` no rule can select (`API_KEY`, `api-key`): decided as
/// `unknown`, it would slip past every rule that selects on the kind, deny rules
/// included. Refused instead, naming the value.
fn bad_identity_kind(context: &BTreeMap<String, String>) -> Option<String> {
    let kind = context.get("identity_kind")?.trim();
    (!crate::policy::is_identity_kind(kind)).then(|| {
        format!(
            "context `identity_kind` is `{kind}`, not one of {}",
            crate::policy::identity_kinds()
        )
    })
}

fn response(verdict: Verdict, risk: Option<Signal>) -> DecideResponse {
    let (score, level, state, reasons) = match risk {
        Some(s) => (Some(s.score), Some(s.level), s.state, s.reasons),
        None => (None, None, IdentityState::Unknown, Vec::new()),
    };
    DecideResponse {
        decision: verdict.decision,
        rule: verdict.rule,
        score,
        level,
        state,
        reasons,
        sensitivity: verdict.sensitivity,
        explanation: verdict.explanation,
    }
}

/// Request headers with this prefix become decision context: `x-riskd-context-approval-id`
/// → `approval_id`. Envoy must set them itself and strip any the client sent (see
/// `config/envoy.yaml`), or a client could forge its own approval.
pub const CONTEXT_HEADER_PREFIX: &str = "x-riskd-context-";

const PATH_PREFIX: &str = "/ext_authz";

/// Envoy HTTP `ext_authz`: Envoy replays the original request's method, path (after
/// `path_prefix`) and allowed headers here. Identity from `api.identity_header`, action
/// `METHOD /path` (query string dropped), destination the `Host`, `source_ip` from the
/// *last* `x-forwarded-for` hop (else `x-envoy-external-address`): with
/// `use_remote_address`, Envoy appends the address it saw, and every hop before it is
/// whatever the client wrote. Never from a context header, which a client can send.
///
/// 200 allows; 403 denies, and also answers step_up (with `x-riskd-decision: step_up`) so
/// a proxy that knows nothing about step-up still fails closed.
pub(super) async fn ext_authz(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let identity = headers
        .get(&state.identity_header)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let Some(identity) = identity else {
        crate::metrics::metrics()
            .decisions
            .with_label_values(&[Decision::Deny.as_str()])
            .inc();
        let mut resp = error(
            StatusCode::FORBIDDEN,
            format!("missing identity header `{}`", state.identity_header),
        );
        set(&mut resp, "x-riskd-decision", Decision::Deny.as_str());
        set(&mut resp, "x-riskd-rule", "missing_identity");
        return resp;
    };
    let path = uri.path().strip_prefix(PATH_PREFIX).unwrap_or(uri.path());
    let action = format!("{} {}", method.as_str(), normalise_path(path));
    let destination = normalise_host(
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );

    let mut context = BTreeMap::new();
    for (name, value) in &headers {
        let Some(key) = name.as_str().strip_prefix(CONTEXT_HEADER_PREFIX) else {
            continue;
        };
        // Only `-` spellings: a proxy strips the client's `x-riskd-context-approval-id`
        // by exact name, and `…-approval_id` would otherwise become the same key.
        if key.contains('_') || key == "source-ip" {
            continue;
        }
        if let Ok(v) = value.to_str() {
            context.insert(key.replace('-', "_"), v.to_string());
        }
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .or_else(|| {
            headers
                .get("x-envoy-external-address")
                .and_then(|v| v.to_str().ok())
        })
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(ip) = forwarded {
        context.insert("source_ip".to_string(), ip.to_string());
    }
    if let Some(message) = bad_identity_kind(&context) {
        // Fail closed: the proxy set a kind no rule knows.
        crate::metrics::metrics()
            .decisions
            .with_label_values(&[Decision::Deny.as_str()])
            .inc();
        let mut resp = error(StatusCode::FORBIDDEN, message);
        set(&mut resp, "x-riskd-decision", Decision::Deny.as_str());
        set(&mut resp, "x-riskd-rule", "invalid_context");
        return resp;
    }

    let input = DecisionInput {
        identity,
        action: &action,
        destination: &destination,
        context: &context,
    };
    let (verdict, risk) = decide_for(&state, &input);
    let status = if verdict.decision == Decision::Allow {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    let decision = verdict.decision.as_str();
    let rule = verdict.rule.clone();
    let body = response(verdict, risk);
    let score = body.score;
    let level = body.level;
    let state_text = body.state.as_str();
    let mut resp = if status == StatusCode::OK {
        StatusCode::OK.into_response()
    } else {
        (status, Json(body)).into_response()
    };
    set(&mut resp, "x-riskd-decision", decision);
    set(&mut resp, "x-riskd-rule", &rule);
    set(&mut resp, "x-riskd-state", state_text);
    // Omitted, not zeroed, for an unknown identity.
    if let Some(score) = score {
        set(&mut resp, "x-riskd-score", &format!("{score:.1}"));
    }
    if let Some(level) = level {
        set(&mut resp, "x-riskd-level", level.as_str());
    }
    resp
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths_are_compared_as_servers_resolve_them() {
        for (raw, want) in [
            ("Payments.Internal:443", "payments.internal"),
            ("payments.internal.", "payments.internal"),
            ("[::1]:8443", "::1"),
            ("10.0.0.1", "10.0.0.1"),
            ("", ""),
        ] {
            assert_eq!(normalise_host(raw), want, "{raw}");
        }
        for (raw, want) in [
            ("/v1/payments/export", "/v1/payments/export"),
            ("/v1/payments/export/", "/v1/payments/export"),
            ("/v1//payments/./export", "/v1/payments/export"),
            ("/v1/x/../payments/%65xport", "/v1/payments/export"),
            ("/v1/a%2Fb", "/v1/a%2Fb"),
            ("/v1/caf\u{e9}%", "/v1/caf\u{e9}%"),
            ("", "/"),
            ("/", "/"),
        ] {
            assert_eq!(normalise_path(raw), want, "{raw}");
        }
    }
}
