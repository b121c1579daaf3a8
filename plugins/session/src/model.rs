//! Request, response, stored-record and settings types of the session system.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request without fields: accepts `{}`, `null` or an empty body and
/// rejects unknown fields.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Response of `ping`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Pong {
    /// The system that answered (`session`).
    pub system: String,
    /// Its version.
    pub version: String,
}

/// Request of `login`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The login address (case-insensitive).
    pub email: String,
    /// The password.
    pub password: String,
}

/// Response of `login`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LoginResponse {
    /// The new session's bearer token: 64 lowercase hex digits. Shown once;
    /// only its SHA-256 is stored.
    pub session_token: String,
    /// The new session.
    pub session: SessionView,
    /// The account must change its password first; until it has, the
    /// session may only call a few operations.
    pub require_password_change: bool,
}

/// A session as the operations show it (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionView {
    /// Session id: 32 lowercase hex digits.
    pub id: String,
    /// The user the session belongs to.
    pub user_id: String,
    /// Login time (ms since the Unix epoch).
    pub created_at: i64,
    /// Last use as recorded (updated at most every 30 seconds).
    pub last_seen_at: i64,
    /// Absolute end of the session, whatever its use.
    pub expires_at: i64,
    /// When the session ends unless it is used before (never after `expires_at`).
    pub idle_expires_at: i64,
    /// The client's network address at login, when known.
    pub client_addr: Option<String>,
    /// Whether this is the caller's own session.
    pub current: bool,
}

/// Response of `logout`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogoutResponse {
    /// Always `true`: the caller's session no longer exists.
    pub session_ended: bool,
}

/// Response of `whoami`: the caller as the host resolved it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WhoamiResponse {
    /// The user's id.
    pub user_id: String,
    /// The session the call came through, if any.
    pub session_id: Option<String>,
    /// Login address.
    pub email: String,
    /// Effective permissions, sorted.
    pub permissions: Vec<String>,
    /// Role ids, sorted.
    pub roles: Vec<String>,
    /// Group ids, sorted.
    pub groups: Vec<String>,
    /// License ids, sorted.
    pub licenses: Vec<String>,
    /// The account must change its password before anything else.
    pub must_change_password: bool,
}

/// A list of sessions.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SessionList {
    /// The sessions, newest first.
    pub items: Vec<SessionView>,
}

/// Request of `revoke_mine`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeMineRequest {
    /// The id of one of the caller's own sessions.
    pub session_id: String,
}

/// Response of `revoke_mine`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RevokeMineResponse {
    /// Whether this call ended the session (`false`: it ended concurrently).
    pub revoked: bool,
}

/// Request of `list_for_user` and `revoke_all_for_user`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIdRequest {
    /// The user's id.
    pub user_id: String,
}

/// Response of `revoke_all_for_user`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RevokeAllResponse {
    /// How many sessions were ended.
    pub revoked: usize,
}

/// Request of `resolve_token` (same shape as the SDK's `ResolveTokenRequest`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveTokenRequest {
    /// The bearer or cookie token as the client sent it.
    pub token: String,
    /// The client's network address, when known.
    #[serde(default)]
    pub client_addr: Option<String>,
}

/// Response of `resolve_token` (same shape as the SDK's `ResolvedToken`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ResolvedToken {
    /// The user the session belongs to.
    pub user_id: String,
    /// The session id.
    pub session_id: String,
    /// When set, the only operations (`<plugin>.<operation>`) the session may call.
    pub allowed_operations: Option<BTreeSet<String>>,
    /// A new token replacing the presented one, which no longer works.
    pub replacement_token: Option<String>,
    /// Until when the host may reuse this answer for the same token without
    /// asking (absent with a replacement token); a change to the session
    /// before then publishes `session.updated` or `session.ended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_until: Option<i64>,
}

/// A session as stored under `session/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// SHA-256 of the current token, lowercase hex (the `token/` key suffix).
    pub token_hash: String,
    /// Login time.
    pub created_at: i64,
    /// Last recorded use.
    pub last_seen_at: i64,
    /// Absolute end.
    pub expires_at: i64,
    /// Client address at login.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// Created while the account had to change its password.
    #[serde(default)]
    pub restricted: bool,
    /// The next resolution hands out a new token.
    #[serde(default)]
    pub rotate: bool,
}

/// Failed logins of one account key, stored under `throttle/<key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleRecord {
    /// Consecutive failures since the last success.
    pub count: u32,
    /// Time of the last failure (ms since the Unix epoch).
    pub last_failure_at: i64,
}

/// The `session` settings section, as read from the settings system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SessionSettings {
    /// Minutes of inactivity after which a session ends.
    #[serde(default = "default_idle")]
    pub idle_timeout_minutes: i64,
    /// Hours after login after which a session ends in any case.
    #[serde(default = "default_lifetime")]
    pub absolute_lifetime_hours: i64,
    /// Failures of one account before logins are delayed.
    #[serde(default = "default_threshold")]
    pub lockout_threshold: u32,
    /// First delay once the threshold is reached, in ms.
    #[serde(default = "default_base_delay")]
    pub lockout_base_delay_ms: i64,
    /// Upper bound of the doubling delay, in ms.
    #[serde(default = "default_max_delay")]
    pub lockout_max_delay_ms: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_minutes: default_idle(),
            absolute_lifetime_hours: default_lifetime(),
            lockout_threshold: default_threshold(),
            lockout_base_delay_ms: default_base_delay(),
            lockout_max_delay_ms: default_max_delay(),
        }
    }
}

impl SessionSettings {
    /// Idle timeout in ms.
    pub fn idle_ms(&self) -> i64 {
        self.idle_timeout_minutes.max(1).saturating_mul(60_000)
    }

    /// Absolute lifetime in ms.
    pub fn lifetime_ms(&self) -> i64 {
        self.absolute_lifetime_hours
            .max(1)
            .saturating_mul(3_600_000)
    }

    /// How long after the last failure a login of an account with `count`
    /// consecutive failures is refused (0: not throttled).
    pub fn delay_ms(&self, count: u32) -> i64 {
        if count < self.lockout_threshold.max(1) {
            return 0;
        }
        let exponent = (count - self.lockout_threshold.max(1)).min(40);
        self.lockout_base_delay_ms
            .max(0)
            .saturating_mul(1i64 << exponent)
            .min(self.lockout_max_delay_ms.max(0))
    }
}

fn default_idle() -> i64 {
    30
}
fn default_lifetime() -> i64 {
    12
}
fn default_threshold() -> u32 {
    3
}
fn default_base_delay() -> i64 {
    1000
}
fn default_max_delay() -> i64 {
    300_000
}

/// Answer of `settings.get`.
#[derive(Debug, Deserialize)]
pub struct SettingsGetResponse {
    /// The complete document.
    pub document: SessionSettings,
}

/// Answer of `user.authenticate`.
#[derive(Debug, Deserialize)]
pub struct AuthenticateResponse {
    /// The authenticated user.
    pub user_id: String,
    /// The account must change its password first.
    #[serde(default)]
    pub require_password_change: bool,
}

/// The part of a `user.get` answer the session system needs.
#[derive(Debug, Deserialize)]
pub struct UserActive {
    /// Whether the account may be used now.
    #[serde(default)]
    pub active: bool,
}

/// Payload of `user.deleted`.
#[derive(Debug, Deserialize)]
pub struct UserDeletedEvent {
    /// The deleted user's id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The same id (older payload field).
    #[serde(default)]
    pub id: Option<String>,
}

/// Payload of `user.updated`.
#[derive(Debug, Deserialize)]
pub struct UserUpdatedEvent {
    /// The changed user.
    pub user_id: String,
    /// Names of the changed fields.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// Payload of `user.password_changed`.
#[derive(Debug, Deserialize)]
pub struct PasswordChangedEvent {
    /// The user whose password changed.
    pub user_id: String,
    /// The session the change was made through (kept, rotated).
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Payload of `session.created` and `session.ended`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionEvent<'a> {
    /// The session's user.
    pub user_id: &'a str,
    /// The session.
    pub session_id: &'a str,
    /// For `session.ended`: `logout`, `revoked`, `expired`,
    /// `user_deleted`, `user_disabled` or `password_changed`; for
    /// `session.updated`: `access_changed` or `password_changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}
