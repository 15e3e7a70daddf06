//! Risk lookups: one identity, a batch, the riskiest list, and `/v1/stats`.
//!
//! An identity this instance has never seen is reported with `state: "unknown"` and
//! `score`/`level`/`updated`/`age_seconds` set to `null`, never a silent zero: a caller
//! that treats "no data" as "safe" must say so in its own policy.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::stats::{Endpoint, LatencySummary};
use super::{error, AppState};
use crate::event::IdentityKind;
use crate::risk_table::{wall_clock_ms, RiskEntry};
use crate::signal::{IdentityState, Level, Reason};

/// Most identities `GET /v1/risk` returns, whatever `limit` asks for.
pub const MAX_LIST: usize = 1000;
/// `limit` when the query has none.
pub const DEFAULT_LIST: usize = 50;

/// One identity as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RiskView {
    pub identity: String,
    /// 0-100; `null` when the identity is unknown.
    pub score: Option<f64>,
    pub level: Option<Level>,
    pub state: IdentityState,
    /// The kind the identity's events named; left out while none did.
    #[serde(skip_serializing_if = "IdentityKind::is_unknown")]
    pub identity_kind: IdentityKind,
    pub reasons: Vec<Reason>,
    pub events_seen: u64,
    /// Event time of the signal this answer comes from (RFC 3339).
    pub updated: Option<String>,
    /// Wall-clock seconds since this instance received that signal.
    pub age_seconds: Option<f64>,
}

impl RiskView {
    pub fn unknown(identity: &str) -> Self {
        RiskView {
            identity: identity.to_string(),
            score: None,
            level: None,
            state: IdentityState::Unknown,
            identity_kind: IdentityKind::Unknown,
            reasons: Vec::new(),
            events_seen: 0,
            updated: None,
            age_seconds: None,
        }
    }

    pub fn from_entry(entry: RiskEntry, now_ms: i64) -> Self {
        let age_ms = now_ms.saturating_sub(entry.received_ms).max(0);
        let s = entry.signal;
        RiskView {
            identity: s.identity,
            score: Some(s.score),
            level: Some(s.level),
            state: s.state,
            identity_kind: s.identity_kind,
            reasons: s.reasons,
            events_seen: s.events_seen,
            updated: Some(s.time),
            age_seconds: Some(age_ms as f64 / 1000.0),
        }
    }

    fn lookup(state: &AppState, identity: &str, now_ms: i64) -> Self {
        match state.table.get(identity) {
            Some(entry) => Self::from_entry(entry, now_ms),
            None => Self::unknown(identity),
        }
    }
}

pub(super) async fn lookup(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let identity = match path {
        Ok(Path(identity)) => identity,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if identity.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty identity");
    }
    Json(RiskView::lookup(&state, &identity, wall_clock_ms())).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    identities: Vec<String>,
}

#[derive(Serialize)]
struct BatchResponse {
    results: Vec<RiskView>,
}

pub(super) async fn batch(
    State(state): State<AppState>,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    if req.identities.len() > state.max_batch {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch of {} identities exceeds api.max_batch ({})",
                req.identities.len(),
                state.max_batch
            ),
        );
    }
    let now_ms = wall_clock_ms();
    let results = req
        .identities
        .iter()
        .map(|id| RiskView::lookup(&state, id, now_ms))
        .collect();
    Json(BatchResponse { results }).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TopQuery {
    min_level: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct TopResponse {
    identities: Vec<RiskView>,
}

/// `GET /v1/risk?min_level=high&limit=20`: riskiest first; `min_level` defaults to
/// `elevated` so the list is about risk, `limit` to 50 (at most 1000).
pub(super) async fn top(
    State(state): State<AppState>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let min_level = match q.min_level.as_deref() {
        None => Level::Elevated,
        Some(text) => match Level::parse(text) {
            Some(level) => level,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("min_level `{text}` is not one of normal, elevated, high, critical"),
                )
            }
        },
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIST);
    if limit == 0 || limit > MAX_LIST {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_LIST}"),
        );
    }
    let now_ms = wall_clock_ms();
    let identities = state
        .table
        .top(min_level, limit)
        .into_iter()
        .map(|e| RiskView::from_entry(e, now_ms))
        .collect();
    Json(TopResponse { identities }).into_response()
}

#[derive(Serialize)]
struct LatencyView {
    lookup: LatencySummary,
    batch: LatencySummary,
    decide: LatencySummary,
}

#[derive(Serialize)]
struct IdentityCounts {
    total: usize,
    normal: usize,
    elevated: usize,
    high: usize,
    critical: usize,
}

#[derive(Serialize)]
struct StatsResponse {
    /// Microseconds from request routed to response built, per endpoint family, since
    /// start.
    handler_latency_us: LatencyView,
    identities: IdentityCounts,
    ready: bool,
    /// Seconds since the pipeline last went round its loop (`null` when none runs here).
    pipeline_silent_seconds: Option<f64>,
    /// Whether that is past `api.max_pipeline_stall` (`/readyz` then answers 503).
    pipeline_stalled: bool,
}

pub(super) async fn stats(State(state): State<AppState>) -> Response {
    let counts = state.table.level_counts();
    Json(StatsResponse {
        handler_latency_us: LatencyView {
            lookup: state.stats.summary(Endpoint::Lookup),
            batch: state.stats.summary(Endpoint::Batch),
            decide: state.stats.summary(Endpoint::Decide),
        },
        identities: IdentityCounts {
            total: counts.iter().sum(),
            normal: counts[0],
            elevated: counts[1],
            high: counts[2],
            critical: counts[3],
        },
        ready: state.table.is_ready(),
        pipeline_silent_seconds: state
            .table
            .since_last_beat()
            .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        pipeline_stalled: state.stalled().is_some(),
    })
    .into_response()
}
