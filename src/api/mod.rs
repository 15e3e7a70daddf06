//! The HTTP API (design §6): risk lookups, decisions, Envoy ext_authz, health and metrics.
//!
//! MINIMAL until the enforcement API issue lands: only `/healthz`, `/readyz` and
//! `/metrics`. The `serve` signature is the contract `riskd run` and `riskd demo` use.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::risk_table::SharedRiskTable;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot bind the API on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("API server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct AppState {
    table: SharedRiskTable,
}

/// Binds `config.api.listen`.
pub async fn bind(config: &Config) -> Result<TcpListener, ApiError> {
    TcpListener::bind(&config.api.listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: config.api.listen.clone(),
            source,
        })
}

/// Serves the API on `listener` until `shutdown` is cancelled, reading `table`.
pub async fn serve(
    listener: TcpListener,
    table: SharedRiskTable,
    config: &Config,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    let _ = config;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { crate::metrics::metrics().render() }),
        )
        .with_state(AppState { table });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ApiError::Serve)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.table.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "restoring state")
    }
}
