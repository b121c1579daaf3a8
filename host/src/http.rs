//! The HTTP frontend (axum on the host's tokio runtime).
//!
//! Routes today: `GET /healthz` (liveness), `GET /readyz` (every enabled
//! system active), `GET /api/v1/systems` (the systems listing). Plugin
//! operations over HTTP arrive with the session system.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::runtime::{Host, SystemState};

struct AppState {
    host: Host,
    enabled: Vec<String>,
}

/// Builds the router for `host`; `enabled` is what `/readyz` waits for.
pub fn router(host: Host, enabled: Vec<String>) -> Router {
    let state = Arc::new(AppState { host, enabled });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/systems", get(systems))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_active: Vec<String> = state
        .enabled
        .iter()
        .filter(|id| !state.host.is_active(id))
        .cloned()
        .collect();
    if not_active.is_empty() {
        (
            StatusCode::OK,
            Json(serde_json::json!({ "ready": true, "active": state.host.active_systems() })),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "not_active": not_active })),
        )
            .into_response()
    }
}

async fn systems(State(state): State<Arc<AppState>>) -> Response {
    let rows: Vec<serde_json::Value> = state
        .host
        .systems()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "version": s.version,
                "state": s.state,
                "order": s.order,
                "reason": s.reason,
                "active": s.state == SystemState::Active,
            })
        })
        .collect();
    Json(rows).into_response()
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and the
/// address actually bound.
pub async fn bind(addr: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
