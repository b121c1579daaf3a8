//! Request and response types of the `settings` operations (the JSON
//! contract), and the stored record.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Request of `register`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Section id: `^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$`, at most 128
    /// characters. A plugin may register only its own id or `<id>.<name>`.
    pub section: String,
    /// The default document; must be valid against `schema`.
    pub defaults: Value,
    /// The section's schema (its root must be of type `object`).
    pub schema: Value,
}

/// Response of `register`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RegisterResponse {
    /// The section id.
    pub section: String,
    /// The effective document after registration.
    pub document: Value,
}

/// Request naming one section (`get`, `schema`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionRequest {
    /// The section id.
    pub section: String,
}

/// One section's document, as returned by `get` and in `list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SectionView {
    /// The section id.
    pub section: String,
    /// The plugin that registered it (`system` for the host).
    pub owner: String,
    /// The effective document (stored values over defaults).
    pub document: Value,
}

/// Response of `list`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// Every registered section, sorted by id.
    pub items: Vec<SectionView>,
}

/// Response of `schema`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SchemaResponse {
    /// The section id.
    pub section: String,
    /// The schema the section was registered with.
    pub schema: Value,
    /// Its defaults.
    pub defaults: Value,
}

/// Request of `put`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// The section id.
    pub section: String,
    /// The new document. Declared properties left out take their defaults.
    pub document: Value,
}

/// Response of `put`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PutResponse {
    /// The section id.
    pub section: String,
    /// The effective document now stored.
    pub document: Value,
    /// Whether anything changed (`false`: nothing written, no event).
    pub changed: bool,
}

/// Payload of `settings.updated`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UpdatedEvent {
    /// The section whose document changed.
    pub section: String,
}

/// Payload of `role.deleted` and `group.deleted`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct DeletedEvent {
    /// The deleted role or group id.
    pub id: String,
}

/// Request of `role.check` and `group.check`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CheckRequest {
    /// The ids to look up.
    pub ids: Vec<String>,
}

/// Response of `role.check` and `group.check`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct CheckResponse {
    /// The ids that do not exist.
    #[serde(default)]
    pub unknown: Vec<String>,
}

/// What is stored under `section/<id>`: registration and document together,
/// so every change is one compare-and-swap of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SectionRecord {
    /// The section id.
    pub section: String,
    /// The registering plugin, or `system`.
    pub owner: String,
    /// The schema as registered (re-parsed on use).
    pub schema: Value,
    /// The defaults as registered.
    pub defaults: Value,
    /// The effective document (always complete: defaults filled in).
    pub document: Value,
    /// First registration (ms since the Unix epoch).
    pub created_at: i64,
    /// Last change of the document (ms since the Unix epoch).
    pub updated_at: i64,
}
