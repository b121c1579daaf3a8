//! The HTTP error shape `{"error": {"code", "message", "details"?}}` and the
//! mapping from error codes to statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use syshost_plugin_api::{codes, PluginError};

/// `csrf_rejected`: a cookie-authenticated state change without a matching origin.
pub const CSRF_REJECTED: &str = "csrf_rejected";
/// `payload_too_large`: the body exceeds `http.max_body_bytes`.
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// `timeout`: the request took longer than `http.request_timeout_secs`.
pub const TIMEOUT: &str = "timeout";
/// `method_not_allowed`: GET on a state-changing operation, or another method.
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";

/// The HTTP status for an error code. Unknown codes are the system's fault (500).
pub fn status_for_code(code: &str) -> StatusCode {
    match code {
        codes::INVALID_INPUT => StatusCode::BAD_REQUEST,
        codes::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        codes::PERMISSION_DENIED
        | codes::PASSWORD_CHANGE_REQUIRED
        | codes::CALL_REFUSED
        | CSRF_REJECTED => StatusCode::FORBIDDEN,
        codes::NOT_FOUND | codes::UNKNOWN_OPERATION => StatusCode::NOT_FOUND,
        METHOD_NOT_ALLOWED => StatusCode::METHOD_NOT_ALLOWED,
        codes::CONFLICT => StatusCode::CONFLICT,
        PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        codes::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        codes::UNAVAILABLE | TIMEOUT => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answered over HTTP.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The response status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: String,
    /// Message for humans.
    pub message: String,
    /// Optional structured details.
    pub details: Option<serde_json::Value>,
    /// `Retry-After` in seconds, for 429.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `code` and the status that code maps to.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: status_for_code(code),
            code: code.to_string(),
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    /// `invalid_input` (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_INPUT, message)
    }

    /// `unauthenticated` (401).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(codes::UNAUTHENTICATED, message)
    }

    /// `rate_limited` (429) with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        let mut e = Self::new(
            codes::RATE_LIMITED,
            format!("too many attempts from this address; retry in {secs} s"),
        );
        e.details = Some(serde_json::json!({ "retry_after_ms": secs * 1000 }));
        e.retry_after_secs = Some(secs);
        e
    }

    /// Overrides the status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Attaches details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let retry_after_secs = if e.code == codes::RATE_LIMITED {
            let ms = e
                .details
                .as_ref()
                .and_then(|d| d.get("retry_after_ms"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(1000);
            Some(ms.div_ceil(1000).max(1))
        } else {
            None
        };
        ApiError {
            status: status_for_code(&e.code),
            code: e.code,
            message: e.message,
            details: e.details,
            retry_after_secs,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ApiError {
            status,
            mut code,
            mut message,
            mut details,
            retry_after_secs,
        } = self;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Logged in full, answered without internals.
            tracing::error!(code = %code, "internal error answering a request: {message}");
            code = codes::INTERNAL.to_string();
            message = "internal error".to_string();
            details = None;
        }
        let mut error = serde_json::json!({ "code": code, "message": message });
        if let Some(d) = details {
            error["details"] = d;
        }
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": error }).to_string(),
        )
            .into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        for (code, status) in [
            ("invalid_input", 400),
            ("unauthenticated", 401),
            ("permission_denied", 403),
            ("password_change_required", 403),
            ("call_refused", 403),
            ("csrf_rejected", 403),
            ("not_found", 404),
            ("unknown_operation", 404),
            ("conflict", 409),
            ("payload_too_large", 413),
            ("rate_limited", 429),
            ("unavailable", 503),
            ("timeout", 503),
            ("storage_error", 500),
            ("plugin_panicked", 500),
            ("whatever", 500),
        ] {
            assert_eq!(status_for_code(code).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let e = ApiError::from(
            PluginError::new("rate_limited", "wait")
                .with_details(serde_json::json!({"retry_after_ms": 1001})),
        );
        assert_eq!(e.retry_after_secs, Some(2));
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let r =
            ApiError::from(PluginError::storage("sled exploded at /secret/path")).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
