//! The error type plugin code returns, with stable machine-readable codes.

use std::fmt;

use abi_stable::std_types::RString;
use serde::{Deserialize, Serialize};

use crate::abi::AbiError;

/// Stable error codes. Frontends map them to statuses (for example
/// `invalid_input` → HTTP 400); the strings never change once released.
pub mod codes {
    /// The request payload was malformed or a field failed validation.
    pub const INVALID_INPUT: &str = "invalid_input";
    /// The addressed object does not exist.
    pub const NOT_FOUND: &str = "not_found";
    /// The request conflicts with the current state (duplicate, race, …).
    pub const CONFLICT: &str = "conflict";
    /// The caller is not authenticated.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// The caller lacks the permission named in the message.
    pub const PERMISSION_DENIED: &str = "permission_denied";
    /// The operation is not declared by the plugin.
    pub const UNKNOWN_OPERATION: &str = "unknown_operation";
    /// The target plugin exists but may not be called by this caller.
    pub const CALL_REFUSED: &str = "call_refused";
    /// The target plugin is not active.
    pub const UNAVAILABLE: &str = "unavailable";
    /// The session may only change its password (and log out) until it has.
    pub const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";
    /// The caller is throttled; retry later.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The plugin panicked; the host contained it.
    pub const PLUGIN_PANICKED: &str = "plugin_panicked";
    /// A storage operation failed.
    pub const STORAGE: &str = "storage_error";
    /// Anything else that is the system's fault rather than the caller's.
    pub const INTERNAL: &str = "internal";
    /// The host refused a service because the call runs inline (on an
    /// async worker) and the service could block: a store read or write,
    /// an event, a mail, or a call to an operation not declared `inline`.
    /// The host runs the call again on a blocking thread; plugins pass this
    /// error on unchanged (see [`OperationDecl::inline`](crate::OperationDecl::inline)).
    pub const WOULD_BLOCK: &str = "would_block";
}

/// An error returned by plugin or host code: a stable [`code`](codes), a
/// message for humans, and optional structured details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginError {
    /// Stable code from [`codes`] (plugins may add their own, snake_case).
    pub code: String,
    /// Human-readable message naming what was wrong.
    pub message: String,
    /// Optional structured details (for example `{"field": "email"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl PluginError {
    /// An error with an arbitrary code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `invalid_input`: the caller sent something wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_INPUT, message)
    }

    /// `invalid_input` for one named field; details carry `{"field": ..}`.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_INPUT, message).with_details(serde_json::json!({ "field": field }))
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND, message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(codes::CONFLICT, message)
    }

    /// `permission_denied` naming the missing permission.
    pub fn permission_denied(permission: &str) -> Self {
        Self::new(
            codes::PERMISSION_DENIED,
            format!("permission denied: requires '{permission}'"),
        )
        .with_details(serde_json::json!({ "permission": permission }))
    }

    /// `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(codes::UNAUTHENTICATED, message)
    }

    /// `internal`: the system's fault, not the caller's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, message)
    }

    /// `storage_error`.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(codes::STORAGE, message)
    }

    /// Whether this error carries `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for PluginError {}

impl From<PluginError> for AbiError {
    fn from(e: PluginError) -> Self {
        AbiError {
            code: RString::from(e.code),
            message: RString::from(e.message),
            details: match e.details {
                Some(v) => RString::from(v.to_string()),
                None => RString::new(),
            },
        }
    }
}

impl From<AbiError> for PluginError {
    fn from(e: AbiError) -> Self {
        let details = if e.details.is_empty() {
            None
        } else {
            serde_json::from_str(e.details.as_str()).ok()
        };
        PluginError {
            code: e.code.into_string(),
            message: e.message.into_string(),
            details,
        }
    }
}

impl From<serde_json::Error> for PluginError {
    fn from(e: serde_json::Error) -> Self {
        PluginError::internal(format!("JSON encoding failed: {e}"))
    }
}
