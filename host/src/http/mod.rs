//! The HTTP frontend (axum on the host's tokio runtime).
//!
//! Routes: `GET /healthz` (liveness), `GET /readyz` (every enabled system
//! active), `GET /api/v1/systems` (the systems listing; plugin routes always
//! have two segments after `/api/v1/`, so a system named `systems` does not
//! collide with it), `GET /api/openapi.json`, and
//! `POST /api/v1/{system}/{operation}` (plus `GET` for read-only operations)
//! for every declared operation of every active system.
//!
//! The web frontend's `/ui` routes come from [`crate::web`].
//!
//! Submodules: [`api`] (the operation route), `call` (the request → call
//! pipeline the API and the web frontend share), [`auth`] (tokens, cookies,
//! CSRF, client address), [`errors`] (error shape and statuses),
//! [`limits`] (per-address rate limit), [`openapi`] (the document).

pub mod api;
pub mod auth;
pub(crate) mod call;
pub mod errors;
pub mod limits;
pub mod openapi;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use syshost_plugin_api::codes;

use crate::runtime::{Host, SystemState};
use errors::{ApiError, TIMEOUT};

/// HTTP settings (from the `http.*` config keys and `public_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The systems `/readyz` waits for.
    pub enabled: Vec<String>,
    /// The public URL (`public_url`, default `http://<bound addr>`); its
    /// origin is what cookie-authenticated POSTs must send as `Origin`.
    pub public_url: String,
    /// `scheme://host[:port]` of `public_url`.
    pub public_origin: String,
    /// Behind a TLS proxy: `__Host-` cookie name and `Secure` cookies.
    pub tls_proxy: bool,
    /// Client address from `X-Forwarded-For`.
    pub trust_proxy_headers: bool,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// Per-address limit for `auth`-throttled operations (per minute, and burst).
    pub auth_rate_limit_per_minute: u32,
}

impl HttpOptions {
    /// Options for `enabled` systems served at `public_url`, with the
    /// defaults of the `http.*` config keys.
    pub fn new(enabled: Vec<String>, public_url: &str) -> Self {
        HttpOptions {
            enabled,
            public_url: public_url.to_string(),
            public_origin: auth::origin_of(public_url),
            tls_proxy: false,
            trust_proxy_headers: false,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            auth_rate_limit_per_minute: 20,
        }
    }

    /// Options from the host configuration and the public URL in use.
    pub fn from_config(config: &crate::Config, public_url: &str) -> Self {
        HttpOptions {
            tls_proxy: config.http.tls_proxy,
            trust_proxy_headers: config.http.trust_proxy_headers,
            max_body_bytes: usize::try_from(config.http.max_body_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(config.http.request_timeout_secs),
            auth_rate_limit_per_minute: config.http.auth_rate_limit_per_minute,
            ..HttpOptions::new(config.enable.clone(), public_url)
        }
    }
}

/// What every handler shares (the API's and the web frontend's).
pub(crate) struct AppState {
    pub(crate) host: Host,
    pub(crate) opts: HttpOptions,
    pub(crate) auth_limiter: limits::RateLimiter,
    pub(crate) web: crate::web::WebState,
    /// Calls still running past the time budget, per system.
    pub(crate) overdue: Arc<call::Overdue>,
    /// Operations no longer tried inline (an attempt was too slow).
    pub(crate) inline: call::InlinePolicy,
}

/// The request id of the current request (set by the middleware).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The subject label a handler reports for the access log.
#[derive(Debug, Clone)]
pub(crate) struct SubjectLabel(pub(crate) String);

/// Set on a response whose call ran inline on the async worker (the
/// access log reports `inline=true`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RanInline;

/// Builds the router for `host`.
pub fn router(host: Host, opts: HttpOptions) -> Router {
    let state = Arc::new(AppState {
        host,
        auth_limiter: limits::RateLimiter::per_minute(opts.auth_rate_limit_per_minute),
        opts,
        web: crate::web::WebState::new(),
        overdue: Arc::default(),
        inline: call::InlinePolicy::default(),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/systems", get(systems))
        .route("/api/openapi.json", get(openapi_json))
        .route(
            "/api/v1/{plugin}/{operation}",
            post(api::call_operation).get(api::call_operation),
        )
        .merge(crate::web::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), hygiene))
        .with_state(state)
}

/// Request ids: process-unique, unpredictable enough for correlation (not secrets).
fn new_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(nanos);
        h.write_usize(i);
        *part = h.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

/// Request id, timeout, security headers and the access log, for every route.
async fn hygiene(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: never the query string.
    let path = req.uri().path().to_string();
    let request_id = new_request_id();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut response = match tokio::time::timeout(state.opts.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            TIMEOUT,
            format!(
                "the request took longer than {} s",
                state.opts.request_timeout.as_secs()
            ),
        )
        .into_response(),
    };
    let subject = response
        .extensions_mut()
        .remove::<SubjectLabel>()
        .map(|s| s.0)
        .unwrap_or_else(|| "anonymous".to_string());
    let inline = response.extensions_mut().remove::<RanInline>().is_some();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if path.starts_with("/api") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if path == "/ui" || path.starts_with("/ui/") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::web::CSP),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    tracing::info!(
        target: "syshost::http::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        subject = %subject,
        inline,
        request_id = %request_id,
        "request"
    );
    response
}

async fn not_found() -> Response {
    ApiError::new(codes::NOT_FOUND, "no such route").into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_active: Vec<String> = state
        .opts
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

async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    Json(openapi::document(
        &state.host,
        &state.opts.public_url,
        auth::cookie_name(state.opts.tls_proxy),
    ))
    .into_response()
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and the
/// address actually bound.
pub async fn bind(addr: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` on `listener` (with peer addresses for rate limiting)
/// until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
