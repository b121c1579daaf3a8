//! The role record and the request/response types of every operation.

use serde::{Deserialize, Serialize};

/// A role: a named set of permission ids that users hold.
///
/// Stored as JSON under `role/<id>`; the same shape is returned by every
/// operation that answers with a role and carried by `role.created` and
/// `role.updated` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Role {
    /// Slug id (`^[a-z0-9][a-z0-9_-]{0,63}$`), caller-given or 32 random hex digits.
    pub id: String,
    /// Display name, 1-100 characters, unique case-insensitively.
    pub name: String,
    /// Free text, at most 1000 characters (may be empty).
    pub description: String,
    /// Permission ids granted by the role, sorted and without duplicates.
    /// For the built-in administrator role: every permission any active
    /// system declares, computed when it is read.
    pub permissions: Vec<String>,
    /// The built-in administrator role: cannot be deleted, and its
    /// permissions are always all permissions (including those of systems
    /// activated later).
    #[serde(default)]
    pub builtin: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change, ms since the Unix epoch.
    pub updated_at: i64,
}

/// Request of `create`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Slug id; generated (32 random hex digits) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Description (absent or `null`: empty).
    #[serde(default)]
    pub description: Option<String>,
    /// Initial permission ids (absent or `null`: none); every id must be
    /// declared by an active plugin.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// Request of `get` and `delete`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    /// Role id.
    pub id: String,
}

/// Request of `list`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Case-insensitive substring of id, name or description.
    #[serde(default)]
    pub search: Option<String>,
    /// Items to skip (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Page size (1-500, default 50).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A page of roles.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// The roles on this page, sorted by name (case-insensitively), then id.
    pub items: Vec<Role>,
    /// How many roles match in total.
    pub total: u64,
}

/// Request of `update`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Role id.
    pub id: String,
    /// New display name (unchanged when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// New description (unchanged when absent).
    #[serde(default)]
    pub description: Option<String>,
}

/// Request of `set_permissions`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPermissionsRequest {
    /// Role id.
    pub id: String,
    /// The complete new set of permission ids (replaces the old set).
    pub permissions: Vec<String>,
}

/// Response of `delete`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeleteResponse {
    /// Always `true`: a missing role is a `not_found` error.
    pub deleted: bool,
}

/// Request of `check` and `permissions_of`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdsRequest {
    /// Role ids.
    pub ids: Vec<String>,
}

/// Response of `check`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckResponse {
    /// The given ids that name no existing role, sorted and deduplicated.
    pub unknown: Vec<String>,
}

/// Response of `permissions_of`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PermissionsOfResponse {
    /// Union of the permissions of every existing role among the ids, sorted.
    pub permissions: Vec<String>,
    /// The given ids that name no existing role, sorted and deduplicated.
    pub unknown: Vec<String>,
}

/// Payload of `role.created` and `role.updated`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RoleEvent<'a> {
    /// The role as stored after the change.
    pub role: &'a Role,
}

/// Payload of `role.deleted`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeletedEvent<'a> {
    /// Id of the deleted role.
    pub id: &'a str,
}

/// Response of `ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pong {
    /// The system that answered.
    pub system: &'static str,
    /// Its version.
    pub version: &'static str,
}

/// Request of `permission.check` (called on the permission system).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct PermissionCheckRequest<'a> {
    pub ids: &'a [String],
}

/// Response of `permission.check`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct PermissionCheckResponse {
    pub unknown: Vec<String>,
}
