//! The account data model: the stored record, the public [`User`] view,
//! account [`Status`], the shared handler context [`Ctx`], and the request
//! and response types of the admin and system operations.
//!
//! The stored [`UserRecord`] never leaves the plugin as it is: operations
//! answer with [`User`], which adds the computed `active` flag and drops the
//! internal revision counter. Credentials (`cred/<id>`) and one-time codes
//! (`code/<id>/<purpose>`) live under their own keys and never appear in
//! either (see [`crate::store`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use syshost_plugin_api::{Host, PluginError};

use crate::profile::Profile;

/// Everything an operation handler needs: the host services and the secret
/// key one-time codes are hashed with.
#[derive(Clone)]
pub struct Ctx {
    /// The host services bound to the `user` plugin.
    pub host: Host,
    /// HMAC key for one-time codes (`secret/code_key`, 32 random bytes).
    pub code_key: Arc<[u8; 32]>,
    /// The in-memory index `list` answers from; every write of a user
    /// record goes through [`crate::index::UserIndex::write`].
    pub users: Arc<crate::index::UserIndex>,
}

/// The id of the settings section the user system owns.
pub const SETTINGS_SECTION: &str = "user";

/// Answer of `settings.get`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SettingsGetResponse {
    /// The complete settings document.
    document: serde_json::Value,
}

impl Ctx {
    /// The host clock in ms since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.host.now_unix_ms()
    }

    /// The plugin's store namespace.
    pub fn store(&self) -> syshost_plugin_api::Store {
        self.host.store()
    }

    /// The current `user` settings document (always complete: stored values
    /// over the defaults).
    pub fn settings(&self) -> Result<serde_json::Value, PluginError> {
        let resp: SettingsGetResponse = self.host.call(
            "settings",
            "get",
            &serde_json::json!({ "section": SETTINGS_SECTION }),
        )?;
        Ok(resp.document)
    }
}

/// Whether an account may be used: always, never, or until a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// The account is enabled.
    Enabled,
    /// The account is disabled: no login, no subject.
    Disabled,
    /// The account is enabled until `until` (ms since the Unix epoch,
    /// exclusive) and expired afterwards.
    EnabledUntil {
        /// End of validity, ms since the Unix epoch.
        until: i64,
    },
}

impl Status {
    /// Whether the account is usable at `now` (ms since the Unix epoch).
    pub fn is_active(&self, now: i64) -> bool {
        match self {
            Status::Enabled => true,
            Status::Disabled => false,
            Status::EnabledUntil { until } => now < *until,
        }
    }

    /// Whether this is an `enabled_until` status whose time has passed.
    pub fn is_expired(&self, now: i64) -> bool {
        matches!(self, Status::EnabledUntil { until } if now >= *until)
    }

    /// The end of validity, for `enabled_until`.
    pub fn until(&self) -> Option<i64> {
        match self {
            Status::EnabledUntil { until } => Some(*until),
            _ => None,
        }
    }

    /// The state name: `enabled`, `disabled` or `enabled_until`.
    pub fn state(&self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
            Status::EnabledUntil { .. } => "enabled_until",
        }
    }
}

/// What a user did with a consent option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    /// The user gave the consent.
    Accepted,
    /// The user withdrew (or declined) the consent.
    Revoked,
}

impl ConsentAction {
    /// `accepted` or `revoked`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsentAction::Accepted => "accepted",
            ConsentAction::Revoked => "revoked",
        }
    }
}

/// One entry of a user's consent history for one option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsentEntry {
    /// Accepted or revoked.
    pub action: ConsentAction,
    /// When, ms since the Unix epoch.
    pub at: i64,
    /// The version of the option's text the action refers to.
    pub version: String,
}

/// The latest action of a consent history: the entry with the greatest `at`
/// (the later entry wins a tie).
pub fn latest_consent(history: &[ConsentEntry]) -> Option<&ConsentEntry> {
    history
        .iter()
        .enumerate()
        .max_by_key(|(i, e)| (e.at, *i))
        .map(|(_, e)| e)
}

/// Metadata of a stored avatar image (the bytes live under `avatar/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AvatarInfo {
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A user account as stored under `user/<id>` (JSON).
///
/// Every write of any key belonging to a user goes through
/// [`crate::store::modify`] (or create/delete), which expects this record's
/// current bytes and stores it again with `rev` incremented, so a write that
/// raced another change of the same user is retried instead of lost.
/// Empty and default fields (`false` flags, `None`, empty sets) are left out
/// of the stored JSON and read back as their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserRecord {
    /// 32 lowercase hex digits; never changes.
    pub id: String,
    /// The normalized address (see [`crate::email::normalize`]).
    pub email: String,
    /// Enabled, disabled or enabled until a time.
    pub status: Status,
    /// Whether the address was confirmed (or an administrator said so).
    #[serde(default, skip_serializing_if = "is_false")]
    pub email_verified: bool,
    /// The user must set a new password before anything else.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_password_change: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change of a visible field, ms since the Unix epoch.
    pub updated_at: i64,
    /// When the password was last set; `None` while the account has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed_at: Option<i64>,
    /// Time of the last successful `authenticate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<i64>,
    /// Contact and profile data.
    #[serde(default)]
    pub profile: Profile,
    /// The avatar's metadata, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<AvatarInfo>,
    /// Role ids held (each also indexed under `role/<role>/<user>`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub roles: BTreeSet<String>,
    /// Group ids (each also indexed under `group/<group>/<user>`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub groups: BTreeSet<String>,
    /// Directly granted permission ids.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub permissions: BTreeSet<String>,
    /// Consent history per consent option id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consents: BTreeMap<String, Vec<ConsentEntry>>,
    /// Revision: incremented by every write to any of this user's keys.
    #[serde(default)]
    pub rev: u64,
}

/// `skip_serializing_if` helper: stored records leave out `false` flags
/// (absent reads back as `false`), which keeps every record smaller on
/// disk.
fn is_false(b: &bool) -> bool {
    !*b
}

/// A user account as every operation returns it. Never contains credentials
/// or codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    /// 32 lowercase hex digits.
    pub id: String,
    /// The normalized address.
    pub email: String,
    /// `{"state": "enabled"}`, `{"state": "disabled"}` or
    /// `{"state": "enabled_until", "until": ms}`.
    pub status: Status,
    /// Enabled, or enabled until a time that has not come yet.
    pub active: bool,
    /// Whether the address is confirmed.
    pub email_verified: bool,
    /// The user must set a new password before anything else.
    pub require_password_change: bool,
    /// Creation time, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// When the password was last set, ms; `null` while there is none.
    pub password_changed_at: Option<i64>,
    /// Last successful login, ms; `null` if never.
    pub last_login_at: Option<i64>,
    /// Contact and profile data.
    pub profile: Profile,
    /// Avatar metadata or `null`.
    pub avatar: Option<AvatarInfo>,
    /// Role ids, sorted.
    pub roles: BTreeSet<String>,
    /// Group ids, sorted.
    pub groups: BTreeSet<String>,
    /// Directly granted permission ids, sorted.
    pub permissions: BTreeSet<String>,
    /// Consent history per option id.
    pub consents: BTreeMap<String, Vec<ConsentEntry>>,
}

impl User {
    /// The public view of `record` at time `now`.
    pub fn from_record(record: &UserRecord, now: i64) -> User {
        User {
            id: record.id.clone(),
            email: record.email.clone(),
            status: record.status,
            active: record.status.is_active(now),
            email_verified: record.email_verified,
            require_password_change: record.require_password_change,
            created_at: record.created_at,
            updated_at: record.updated_at,
            password_changed_at: record.password_changed_at,
            last_login_at: record.last_login_at,
            profile: record.profile.clone(),
            avatar: record.avatar.clone(),
            roles: record.roles.clone(),
            groups: record.groups.clone(),
            permissions: record.permissions.clone(),
            consents: record.consents.clone(),
        }
    }
}

/// The names `user.updated` uses in its `changes` list.
pub mod change {
    /// The profile (contact data) changed.
    pub const PROFILE: &str = "profile";
    /// The account status changed.
    pub const STATUS: &str = "status";
    /// The email address changed.
    pub const EMAIL: &str = "email";
    /// The role set changed.
    pub const ROLES: &str = "roles";
    /// The group set changed.
    pub const GROUPS: &str = "groups";
    /// The directly granted permissions changed.
    pub const PERMISSIONS: &str = "permissions";
    /// `email_verified` changed.
    pub const VERIFICATION: &str = "verification";
    /// `require_password_change` changed.
    pub const PASSWORD_REQUIRED: &str = "password_required";
    /// The consents changed.
    pub const CONSENTS: &str = "consents";
    /// The avatar changed.
    pub const AVATAR: &str = "avatar";
}

/// Payload of `user.created`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedEvent {
    /// The new user's id.
    pub user_id: String,
}

/// Payload of `user.imported`: one event per `import` call (one atomic
/// batch) instead of one `user.created` per account.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportedEvent {
    /// How many accounts the batch created.
    pub count: u64,
    /// Their ids, in request order.
    pub user_ids: Vec<String>,
}

/// Payload of `user.updated`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpdatedEvent {
    /// The changed user's id.
    pub user_id: String,
    /// What changed (names from [`change`]).
    pub changes: Vec<String>,
}

/// Payload of `user.password_changed`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PasswordChangedEvent {
    /// The user whose password was set.
    pub user_id: String,
    /// The session the user changed it from (`change_my_password`); the
    /// session system keeps that one and ends the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Payload of `user.deleted`: both keys carry the id (the license system
/// reads `id`; the host's subject cache reads `user_id`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeletedEvent {
    /// The deleted user's id.
    pub id: String,
    /// The deleted user's id, again.
    pub user_id: String,
}

/// What the user plugin learns from `role.deleted` / `group.deleted`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct IdPayload {
    /// The deleted role's or group's id.
    pub id: String,
}

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

fn default_limit() -> u64 {
    50
}

/// Request of `create`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The login address.
    pub email: String,
    /// The initial password; without one the user sets it with a mailed code.
    #[serde(default)]
    pub password: Option<String>,
    /// Mark the address as confirmed.
    #[serde(default)]
    pub verified: bool,
    /// Tell the user about the new account by mail.
    #[serde(default)]
    pub notify: bool,
    /// Contact and profile data.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Initial role ids.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Initial group ids.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Initial directly granted permission ids.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// A request naming one user.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    /// The user id.
    pub id: String,
}

/// Status filter of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// State `enabled` or `enabled_until` (expired or not).
    Enabled,
    /// State `disabled`.
    Disabled,
    /// State `enabled_until` with the time passed.
    Expired,
    /// Usable now (`active: true`).
    Active,
}

/// Sort key of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// By address (case-insensitively).
    #[default]
    Email,
    /// By last name, then first name (case-insensitively), then address.
    Name,
    /// By creation time, then id.
    CreatedAt,
}

/// Sort direction of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// Request of `list`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Case-insensitive substring of the address, first or last name
    /// (at most 200 characters; blank = no filter).
    #[serde(default)]
    pub search: Option<String>,
    /// Only users in this status.
    #[serde(default)]
    pub status: Option<StatusFilter>,
    /// Only holders of this role.
    #[serde(default)]
    pub role: Option<String>,
    /// Only members of this group.
    #[serde(default)]
    pub group: Option<String>,
    /// Sort key (default `email`).
    #[serde(default)]
    pub sort: Option<SortKey>,
    /// Sort direction (default `asc`).
    #[serde(default)]
    pub order: Option<SortOrder>,
    /// Items to skip.
    #[serde(default)]
    pub offset: u64,
    /// Page size, 1..=500 (default 50).
    #[serde(default = "default_limit")]
    pub limit: u64,
}

/// A page of users.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// The users of this page.
    pub items: Vec<User>,
    /// How many users match in total.
    pub total: u64,
}

/// Request of `update_contact`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactRequest {
    /// The user id.
    pub id: String,
    /// The new profile (replaces the whole profile).
    pub profile: Profile,
}

/// The state names a status request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// `enabled`.
    Enabled,
    /// `disabled`.
    Disabled,
    /// `enabled_until` (needs `until`).
    EnabledUntil,
}

/// A status as a request gives it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// The state.
    pub state: StateName,
    /// End of validity for `enabled_until` (ms, in the future).
    #[serde(default)]
    pub until: Option<i64>,
    /// End of validity for `enabled_until` as a date `YYYY-MM-DD`: the
    /// account expires at 00:00 UTC of that day (what a date input sends;
    /// instead of `until`).
    #[serde(default)]
    pub until_date: Option<String>,
}

/// Request of `set_status`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatusRequest {
    /// The user id.
    pub id: String,
    /// The new status.
    pub status: StatusInput,
}

/// Request of `set_verified`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVerifiedRequest {
    /// The user id.
    pub id: String,
    /// Whether the address counts as confirmed.
    pub verified: bool,
}

/// Request of `change_email`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The user id.
    pub id: String,
    /// The new address.
    pub email: String,
    /// Tell the user (old and new address) by mail.
    #[serde(default)]
    pub notify: bool,
}

/// Request of `set_password`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    /// The user id.
    pub id: String,
    /// The new password (checked against the password policy).
    pub password: String,
}

/// An empty JSON object response (`{}`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Empty {}

/// Request of `require_password_change`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirePasswordChangeRequest {
    /// The user id.
    pub id: String,
    /// Whether the user must set a new password.
    pub required: bool,
}

/// Request of `delete`.
pub type DeleteRequest = IdRequest;

/// Response of `delete`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeleteResponse {
    /// Always `true` (an unknown user is `not_found`).
    pub deleted: bool,
}

/// Request of `set_roles`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The user id.
    pub id: String,
    /// The complete new set of role ids.
    pub roles: Vec<String>,
}

/// Request of `set_groups`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGroupsRequest {
    /// The user id.
    pub id: String,
    /// The complete new set of group ids.
    pub groups: Vec<String>,
}

/// Request of `set_permissions`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPermissionsRequest {
    /// The user id.
    pub id: String,
    /// The complete new set of directly granted permission ids.
    pub permissions: Vec<String>,
}

/// Request of `assign_license` and `revoke_license`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseRequest {
    /// The user id.
    pub id: String,
    /// The user license id.
    pub license_id: String,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// A JSON array of users.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Request of `export`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The users to export; absent = all.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// `json` or `csv`.
    pub format: ExportFormat,
}

/// Response of `export`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportResponse {
    /// The format of `content`.
    pub format: ExportFormat,
    /// The exported document.
    pub content: String,
    /// How many users it holds.
    pub count: u64,
}

/// Request of `subject` (sent by the host).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    /// The user to resolve; `null`/absent = the anonymous subject.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Request of `authenticate`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    /// The login address.
    pub email: String,
    /// The password.
    pub password: String,
}

/// Response of `authenticate`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthenticateResponse {
    /// The authenticated user.
    pub user_id: String,
    /// The user must set a new password before anything else.
    pub require_password_change: bool,
}
