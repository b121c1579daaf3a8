//! `POST|GET /api/v1/{plugin}/{operation}`: one route for every declared
//! operation of every active system.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject};

use super::auth::{self, TokenSource};
use super::errors::{ApiError, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE};
use super::{AppState, RequestId, SubjectLabel};

/// What the blocking part of a call hands back.
struct Answer {
    body: String,
    replacement_token: Option<String>,
}

/// Serves one operation call.
pub(super) async fn call_operation(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Response {
    let mut label = SubjectLabel("anonymous".to_string());
    let result = serve(&state, path, req, &mut label).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(label);
    response
}

async fn serve(
    state: &Arc<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    req: Request,
    label: &mut SubjectLabel,
) -> Result<Response, ApiError> {
    let Path((plugin, operation)) =
        path.map_err(|e| ApiError::new(codes::UNKNOWN_OPERATION, format!("bad path: {e}")))?;
    let host = &state.host;
    if !host.is_active(&plugin) {
        return Err(if host.manifest(&plugin).is_some() {
            ApiError::new(
                codes::UNAVAILABLE,
                format!("system '{plugin}' is not active"),
            )
            .with_status(StatusCode::NOT_FOUND)
        } else {
            ApiError::new(codes::UNKNOWN_OPERATION, format!("no system '{plugin}'"))
        });
    }
    let decl = host
        .manifest(&plugin)
        .and_then(|m| m.operation(&operation).cloned())
        .ok_or_else(|| {
            ApiError::new(
                codes::UNKNOWN_OPERATION,
                format!("system '{plugin}' has no operation '{operation}'"),
            )
        })?;
    let is_post = req.method() == Method::POST;
    if !(is_post || req.method() == Method::GET && !decl.mutates) {
        return Err(ApiError::new(
            METHOD_NOT_ALLOWED,
            format!(
                "{plugin}.{operation} takes POST{}",
                if decl.mutates { "" } else { " or GET" }
            ),
        ));
    }
    let client_ip = auth::client_ip(&req, state.opts.trust_proxy_headers);
    if decl.throttle.as_deref() == Some("auth") {
        if let Some(ip) = client_ip {
            state
                .auth_limiter
                .check(ip)
                .map_err(ApiError::rate_limited)?;
        }
    }
    let token = auth::extract_token(req.headers(), state.opts.tls_proxy)?;
    if is_post && matches!(token, Some((_, TokenSource::Cookie))) {
        auth::check_csrf(req.headers(), &state.opts.public_origin)?;
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let payload = if is_post {
        read_json_body(req, state.opts.max_body_bytes).await?
    } else {
        "{}".to_string()
    };

    let blocking_host = host.clone();
    let client_addr = client_ip.map(|ip| ip.to_string());
    let token_text = token.as_ref().map(|(t, _)| t.clone());
    let (plugin_id, op_name) = (plugin.clone(), operation.clone());
    let (answer, subject_label) = tokio::task::spawn_blocking(move || {
        let (ctx, replacement_token) = match context(
            &blocking_host,
            token_text.as_deref(),
            client_addr,
            request_id,
        ) {
            Ok(c) => c,
            Err(e) => return (Err(e), "anonymous".to_string()),
        };
        let label = ctx.subject.label();
        let result = blocking_host
            .call_raw(&plugin_id, &op_name, &payload, &ctx)
            .map(|body| Answer {
                body,
                replacement_token,
            })
            .map_err(ApiError::from);
        (result, label)
    })
    .await
    .map_err(|e| ApiError::new(codes::INTERNAL, format!("request task failed: {e}")))?;
    label.0 = subject_label;
    let answer = answer?;

    let tls = state.opts.tls_proxy;
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(answer.body.clone()),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(new_token) = &answer.replacement_token {
        if let Ok(v) = HeaderValue::from_str(new_token) {
            headers.insert("x-session-token", v);
        }
        if matches!(token, Some((_, TokenSource::Cookie))) {
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(new_token, tls)) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&answer.body) {
        if let Some(new_token) = value.get("session_token").and_then(|v| v.as_str()) {
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(new_token, tls)) {
                headers.append(header::SET_COOKIE, v);
            }
        } else if value.get("session_ended") == Some(&serde_json::Value::Bool(true)) {
            if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(tls)) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
    Ok(response)
}

/// The call context for a request: anonymous without a token, else the
/// session's user (with session id and restrictions). Also returns the
/// resolver's replacement token, if any.
fn context(
    host: &crate::Host,
    token: Option<&str>,
    client_addr: Option<String>,
    request_id: String,
) -> Result<(CallContext, Option<String>), ApiError> {
    let (mut ctx, replacement) = match token {
        None => (host.context_for(None).map_err(ApiError::from)?, None),
        Some(token) => {
            let resolved = host
                .resolve_token(token, client_addr.as_deref())
                .map_err(ApiError::from)?;
            let mut ctx = host
                .context_for(Some(&resolved.user_id))
                .map_err(|e| session_error(e, &resolved.user_id))?;
            match &mut ctx.subject {
                Subject::User(user) => user.session_id = Some(resolved.session_id.clone()),
                _ => return Err(ApiError::unauthenticated("session expired or unknown")),
            }
            ctx.restricted_to = resolved.allowed_operations;
            (ctx, resolved.replacement_token)
        }
    };
    ctx.client_addr = client_addr;
    ctx.request_id = Some(request_id);
    Ok((ctx, replacement))
}

/// A session whose user can no longer be resolved is simply not valid.
fn session_error(e: PluginError, user_id: &str) -> ApiError {
    if e.is(codes::NOT_FOUND) || e.is(codes::UNAUTHENTICATED) || e.is(codes::PERMISSION_DENIED) {
        tracing::debug!(user_id, "session user not resolvable: {e}");
        ApiError::unauthenticated("session expired or unknown")
    } else {
        ApiError::from(e)
    }
}

/// Reads the body (empty = `{}`), enforcing the size limit, the JSON
/// content type and JSON syntax.
async fn read_json_body(req: Request, limit: usize) -> Result<String, ApiError> {
    let too_large = || {
        ApiError::new(
            PAYLOAD_TOO_LARGE,
            format!("request body exceeds {limit} bytes"),
        )
    };
    let headers = req.headers();
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            if is_length_limit(&e) {
                too_large()
            } else {
                ApiError::invalid(format!("cannot read the request body: {e}"))
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok("{}".to_string());
    }
    if let Some(ct) = content_type {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::invalid(format!(
                "Content-Type must be application/json, not '{ct}'"
            ))
            .with_details(serde_json::json!({ "field": "content-type" })));
        }
    } else {
        return Err(ApiError::invalid(
            "a request body needs Content-Type: application/json",
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::invalid("the request body is not UTF-8"))?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid("the request body must be a JSON object"));
    }
    Ok(text.to_string())
}

/// Whether a body error (or one of its sources) is the length limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.to_string().contains("length limit") {
            return true;
        }
        current = err.source();
    }
    false
}
