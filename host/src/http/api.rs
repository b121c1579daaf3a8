//! `POST|GET /api/v1/{plugin}/{operation}`: one route for every declared
//! operation of every active system.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use syshost_plugin_api::{codes, Access};

use super::auth;
use super::call::{self, Caller, StaleToken};
use super::errors::{ApiError, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE};
use super::{AppState, RanInline, SubjectLabel};

/// Serves one operation call.
pub(super) async fn call_operation(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> Response {
    let mut label = SubjectLabel("anonymous".to_string());
    let mut inline = false;
    let result = serve(&state, path, req, &mut label, &mut inline).await;
    let mut response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(label);
    if inline {
        response.extensions_mut().insert(RanInline);
    }
    response
}

async fn serve(
    state: &Arc<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    req: Request,
    label: &mut SubjectLabel,
    inline: &mut bool,
) -> Result<Response, ApiError> {
    let Path((plugin, operation)) =
        path.map_err(|e| ApiError::new(codes::UNKNOWN_OPERATION, format!("bad path: {e}")))?;
    let decl = call::find_operation(&state.host, &plugin, &operation)?;
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
    let caller = Caller::from_request(state, &req)?;
    call::throttle(state, decl, &caller)?;
    if is_post && caller.uses_cookie() {
        auth::check_csrf(req.headers(), &state.opts.public_origin)?;
    }
    let payload = if is_post {
        read_json_body(req, state.opts.max_body_bytes).await?
    } else {
        "{}".to_string()
    };
    // A stale session cookie must not lock a browser out of public
    // operations (login, registration, resets): they run anonymously and
    // the cookie is cleared. A stale bearer token stays a 401.
    let stale = if caller.uses_cookie() && decl.access == Access::Public {
        StaleToken::Anonymous
    } else {
        StaleToken::Refuse
    };
    let resolved = call::call(
        state,
        &caller,
        &plugin,
        &operation,
        payload,
        stale,
        decl.inline,
    )
    .await?;
    label.0 = resolved.ctx.subject.label();
    *inline = resolved.inline;
    let body = resolved.value?;

    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(new_token) = &resolved.replacement_token {
        if let Ok(v) = HeaderValue::from_str(new_token) {
            headers.insert("x-session-token", v);
        }
    }
    call::session_cookies(
        &mut headers,
        &caller,
        resolved.replacement_token.as_deref(),
        &body,
        state.opts.tls_proxy,
    );
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    response.headers_mut().extend(headers);
    let headers = response.headers_mut();
    if resolved.stale_token && !headers.contains_key(header::SET_COOKIE) {
        if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(state.opts.tls_proxy)) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
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
