//! The HTTP API (design §6): risk lookups, decisions, Envoy `ext_authz`, health and
//! metrics. Read-only by construction: handlers only read the [`RiskTable`] and the
//! policy, so no request can change what riskd believes about an identity.
//!
//! # Endpoints
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/risk/{identity}` | one identity (percent-encode it; unencoded `/` also works) |
//! | `POST /v1/risk:batch` | `{"identities":[...]}` → `{"results":[...]}`, same order |
//! | `GET /v1/risk?min_level=&limit=` | riskiest identities first (not quiet ones: `normal`, no reasons) |
//! | `GET /v1/stats` | handler latency quantiles, identities per level |
//! | `POST /v1/decide` | allow / step_up / deny from the score and the policy |
//! | `ANY /ext_authz/*` | Envoy HTTP `ext_authz` check: 200 allow, 403 otherwise |
//! | `GET /healthz`, `/readyz`, `/metrics` | liveness, readiness (state restored), Prometheus |
//!
//! `/v1` and `/ext_authz` require `Authorization: Bearer <api.token>` when a token is set.
//! Every error is a JSON `{"error": "..."}` with a 4xx/5xx status.
//!
//! # Layers (outermost first)
//!
//! status-class counting → body size limit → bearer auth (`/v1`, `/ext_authz`) →
//! readiness (503 until state is restored; `/v1/stats` exempt) → batch rate limit
//! (`POST /v1/risk:batch` only) → handler latency (lookup, batch, decide) → handler.
//!
//! # Bounds on what a client can make riskd hold
//!
//! - Bodies: `api.max_body_bytes` (axum `DefaultBodyLimit`, 413 beyond it); batches:
//!   `api.max_batch` identities (413).
//! - Headers: hyper's HTTP/1 parser, which `axum::serve` uses with its defaults (it
//!   exposes no builder): at most 100 headers (431 beyond), and a read buffer of about
//!   400 KiB per connection for the request line and headers (431 or a closed
//!   connection beyond). `tests/hardening.rs` checks both, so a dependency upgrade that
//!   loosened them would be noticed.
//! - Rate: `api.batch_rate_per_second` for the one endpoint whose cost a caller scales
//!   (up to `api.max_batch` lookups per call); 429 with `Retry-After` beyond it. Single
//!   lookups and decisions are cheap and stay unlimited here: they sit on enforcement
//!   points' request paths, where a limit belongs in the proxy in front of riskd.
//! - TLS (`api.tls_cert` / `api.tls_key`, see `tls`): the same router and hyper HTTP/1
//!   defaults; a handshake must finish within 10 s and a request head within 30 s.
//! - Connections are not limited by riskd; deploy behind a proxy or rely on the
//!   listener's loopback/cluster-internal address (the default binds 127.0.0.1).

mod decide;
mod limit;
pub mod probe;
mod risk;
pub mod stats;
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use prometheus::IntCounter;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::policy::{Policy, PolicyError};
use crate::risk_table::SharedRiskTable;

use stats::{ApiStats, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot bind the API on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("API server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot load the decision policy (api.policy_file): {0}")]
    Policy(#[from] PolicyError),
    #[error("invalid value for `{key}`: {message}")]
    Config { key: String, message: String },
    #[error("cannot set up API TLS from {path} (api.tls_cert / api.tls_key): {message}")]
    Tls { path: String, message: String },
}

/// Everything a handler reads; shared, never mutated after start-up (apart from stats).
pub(crate) struct Inner {
    pub(crate) table: SharedRiskTable,
    pub(crate) policy: Policy,
    pub(crate) stats: ApiStats,
    /// `None` disables auth.
    token: Option<Vec<u8>>,
    pub(crate) max_batch: usize,
    /// `api.batch_rate_per_second`; `None` when unlimited.
    batch_limit: Option<limit::RateLimiter>,
    pub(crate) identity_header: HeaderName,
    /// `api.max_pipeline_stall`; `None` when off.
    pub(crate) max_pipeline_stall: Option<Duration>,
    /// Pre-resolved `riskd_api_requests_total{status}` handles: an atomic add per response.
    status_2xx: IntCounter,
    status_4xx: IntCounter,
    status_5xx: IntCounter,
}

pub(crate) type AppState = Arc<Inner>;

/// Binds `config.api.listen`.
pub async fn bind(config: &Config) -> Result<TcpListener, ApiError> {
    TcpListener::bind(&config.api.listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: config.api.listen.clone(),
            source,
        })
}

/// Serves the API on `listener` until `shutdown` is cancelled, reading `table`: over TLS
/// when `api.tls_cert` and `api.tls_key` are set, plain HTTP otherwise.
///
/// The policy (`api.policy_file`) and the TLS files are loaded here, so a broken policy
/// or certificate stops start-up with an error naming it instead of serving without it.
pub async fn serve(
    listener: TcpListener,
    table: SharedRiskTable,
    config: &Config,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    let app = router(table, config)?;
    let acceptor = config
        .api
        .tls_files()
        .map(|(cert, key)| tls::acceptor(cert, key))
        .transpose()?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            auth = !config.api.token.is_empty(),
            tls = acceptor.is_some(),
            "API listening"
        );
    }
    if let Some(acceptor) = acceptor {
        return tls::serve(listener, acceptor, app, shutdown).await;
    }
    let serve = axum::serve(listener, app).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    });
    // Graceful shutdown waits for every open connection to finish; a client that holds
    // one open mid-request (or trickles bytes) would hold the process too. As on the TLS path, the
    // drain gets a grace period, then the remaining connections are dropped.
    tokio::select! {
        result = std::future::IntoFuture::into_future(serve) => result.map_err(ApiError::Serve),
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(tls::SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("API connections still open after the shutdown grace; closing them");
            Ok(())
        }
    }
}

/// The full application, for `serve` and for in-process embedding.
pub fn router(table: SharedRiskTable, config: &Config) -> Result<Router, ApiError> {
    let policy = Policy::load(&config.api.policy_file, &config.sensitivity)?;
    let identity_header = HeaderName::from_bytes(config.api.identity_header.trim().as_bytes())
        .map_err(|e| ApiError::Config {
            key: "api.identity_header".into(),
            message: e.to_string(),
        })?;
    let requests = &crate::metrics::metrics().api_requests;
    let state: AppState = Arc::new(Inner {
        table,
        policy,
        stats: ApiStats::default(),
        token: (!config.api.token.is_empty()).then(|| config.api.token.as_bytes().to_vec()),
        max_batch: config.api.max_batch,
        batch_limit: limit::RateLimiter::per_second(config.api.batch_rate_per_second),
        identity_header,
        // A rebalance callback may hold the pipeline for half the session timeout
        // (revocation drain), then restore state: never call that a stall.
        max_pipeline_stall: Some(config.api.max_pipeline_stall.0)
            .filter(|d| !d.is_zero())
            .map(|d| d.max(config.kafka.session_timeout.0)),
        status_2xx: requests.with_label_values(&["2xx"]),
        status_4xx: requests.with_label_values(&["4xx"]),
        status_5xx: requests.with_label_values(&["5xx"]),
    });

    let timed = |endpoint: Endpoint| {
        middleware::from_fn_with_state((state.clone(), endpoint), record_latency)
    };
    let protected = Router::new()
        .route(
            "/v1/risk/{*identity}",
            get(risk::lookup).route_layer(timed(Endpoint::Lookup)),
        )
        .route(
            "/v1/risk:batch",
            post(risk::batch)
                .route_layer(timed(Endpoint::Batch))
                // Outside the timing (a refusal is not a lookup) and before the body is
                // read and parsed: a refused call costs next to nothing.
                .route_layer(middleware::from_fn_with_state(state.clone(), limit_batch)),
        )
        .route("/v1/risk", get(risk::top))
        .route("/v1/stats", get(risk::stats))
        .route(
            "/v1/decide",
            post(decide::decide).route_layer(timed(Endpoint::Decide)),
        )
        .route(
            "/ext_authz",
            any(decide::ext_authz.layer(timed(Endpoint::Decide))),
        )
        .route(
            "/ext_authz/{*path}",
            any(decide::ext_authz.layer(timed(Endpoint::Decide))),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_ready))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));

    let open = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));

    Ok(open
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(config.api.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state))
}

/// A JSON error body with a reason, the one shape every failure has.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if !state.table.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "restoring state").into_response();
    }
    if let Some(silent) = state.stalled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "pipeline stalled: no progress for {} s (api.max_pipeline_stall)",
                silent.as_secs()
            ),
        )
            .into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let metrics = crate::metrics::metrics();
    if let Some(silent) = state.table.since_last_beat() {
        metrics.pipeline_silent_seconds.set(silent.as_secs_f64());
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        metrics.render(),
    )
        .into_response()
}

impl Inner {
    /// How long the pipeline has been silent, when that is past `api.max_pipeline_stall`.
    pub(crate) fn stalled(&self) -> Option<Duration> {
        let limit = self.max_pipeline_stall?;
        self.table
            .since_last_beat()
            .filter(|&silent| silent >= limit)
    }
}

/// Bearer-token check. The comparison is constant-time in the token's content (its length
/// can still leak, as with any such compare; tokens should be long random strings).
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &state.token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected)));
        if !ok {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token (Authorization: Bearer <token>)",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"riskd\""),
            );
            return resp;
        }
    }
    next.run(req).await
}

/// Until state is restored an absent identity may just not be loaded yet, so answering
/// `unknown` (or deciding on it) would be wrong: 503 lets the caller retry or apply its
/// own failure mode (Envoy: `failure_mode_allow`). `/v1/stats` still answers.
async fn require_ready(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.table.is_ready() && req.uri().path() != "/v1/stats" {
        let mut resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: identity state is still being restored",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    next.run(req).await
}

/// `api.batch_rate_per_second`: over the rate, 429 with the reason and a `Retry-After`
/// (whole seconds, rounded up, as the header requires).
async fn limit_batch(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(limiter) = &state.batch_limit {
        if let Err(wait) = limiter.check() {
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "batch lookups are limited to api.batch_rate_per_second; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            );
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            return resp;
        }
    }
    next.run(req).await
}

async fn record_latency(
    State((state, endpoint)): State<(AppState, Endpoint)>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let resp = next.run(req).await;
    state.stats.record(endpoint, started.elapsed());
    resp
}

async fn count_status(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_server_error() {
        state.status_5xx.inc();
    } else if status.is_client_error() {
        state.status_4xx.inc();
    } else {
        state.status_2xx.inc();
    }
    resp
}
