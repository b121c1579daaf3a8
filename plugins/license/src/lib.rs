//! # The `license` system
//!
//! Two kinds of licenses:
//!
//! * **App licenses** say whether the platform has a feature at all: id,
//!   name, description, url and an `enabled` flag. They are not assigned to
//!   anybody.
//! * **User licenses** are seats assignable to users: id, name, description
//!   and `max_users` (`0` = unlimited). A user's licenses are part of its
//!   subject; the `user` system asks for them with `licenses_of`.
//!
//! Both kinds share one id space, so a license id always names exactly one
//! license.
//!
//! ## Store layout (the plugin's private namespace)
//! * `app/<id>` → [`AppLicense`] JSON; `user/<id>` → [`UserLicense`] JSON;
//! * `seats/<id>` → [`SeatCounter`] JSON `{"used", "rev"}` of a user license;
//! * `seat/<license id>/<user id>` → `{"assigned_at"}`: one assignment;
//! * `holder/<user id>/<license id>` → the same, the reverse index behind
//!   `licenses_of` and the `user.deleted` clean-up;
//! * `name/app/<lowercased name>\0<id>` and `name/user/…` → `<id>`: the sort
//!   indexes the list operations page through.
//!
//! ## Exact seat accounting
//! An assignment changes the counter, the assignment key and its reverse key
//! in **one** conditional batch that expects the counter's current bytes,
//! the license record's current bytes and the assignment key to be absent;
//! when another writer got there first the batch is not applied and the
//! operation re-reads and retries. Revocations and deletions do the same,
//! and every seat change bumps the counter's `rev`, so a batch that expects
//! the counter also proves that no assignment appeared or vanished since it
//! was read. Parallel assignments therefore never exceed `max_users`, and
//! `update_user_license` cannot lower `max_users` below a count that is
//! changing under it.

use serde::{Deserialize, Serialize};
use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::{
    export_plugin, Access, Batch, CallContext, Event, Host, Manifest, NoInput, Operations, Plugin,
    PluginError, Store,
};

mod app;
pub mod pages;
mod user_license;
mod util;

#[cfg(test)]
mod tests;

use util::default_limit;

/// How often a write re-reads and retries after a concurrent change.
const MAX_ATTEMPTS: usize = 10_000;

const APP_PREFIX: &str = "app/";
const USER_PREFIX: &str = "user/";
const COUNTER_PREFIX: &str = "seats/";
const SEAT_PREFIX: &str = "seat/";
const HOLDER_PREFIX: &str = "holder/";
const APP_NAME_PREFIX: &str = "name/app/";
const USER_NAME_PREFIX: &str = "name/user/";

fn app_key(id: &str) -> String {
    format!("{APP_PREFIX}{id}")
}

fn user_key(id: &str) -> String {
    format!("{USER_PREFIX}{id}")
}

fn counter_key(id: &str) -> String {
    format!("{COUNTER_PREFIX}{id}")
}

fn seat_prefix(license_id: &str) -> String {
    format!("{SEAT_PREFIX}{license_id}/")
}

fn seat_key(license_id: &str, user_id: &str) -> String {
    format!("{SEAT_PREFIX}{license_id}/{user_id}")
}

fn holder_prefix(user_id: &str) -> String {
    format!("{HOLDER_PREFIX}{user_id}/")
}

fn holder_key(user_id: &str, license_id: &str) -> String {
    format!("{HOLDER_PREFIX}{user_id}/{license_id}")
}

/// The running `license` system.
pub struct LicenseSystem {
    host: Host,
}

/// An app license: whether the platform has a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppLicense {
    /// Slug id, unique across app and user licenses.
    pub id: String,
    /// Display name (trimmed, 1-200 characters).
    pub name: String,
    /// Free text (at most 4000 characters).
    pub description: String,
    /// An http(s) link with more information, or empty.
    pub url: String,
    /// Whether the feature is licensed.
    pub enabled: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change, ms since the Unix epoch.
    pub updated_at: i64,
}

/// A user license: seats assignable to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserLicense {
    /// Slug id, unique across app and user licenses.
    pub id: String,
    /// Display name (trimmed, 1-200 characters).
    pub name: String,
    /// Free text (at most 4000 characters).
    pub description: String,
    /// Seat limit; `0` means unlimited.
    pub max_users: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change, ms since the Unix epoch.
    pub updated_at: i64,
}

/// A user license as returned by the operations: the record plus its seat count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct UserLicenseView {
    /// The stored record.
    #[serde(flatten)]
    pub license: UserLicense,
    /// Seats currently assigned.
    pub used: u64,
}

/// The seat counter of a user license, stored under `seats/<id>`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct SeatCounter {
    /// Seats currently assigned.
    pub used: u64,
    /// Bumped by every seat change, so equal bytes mean "no seat changed".
    pub rev: u64,
}

/// Request of `create_app_license`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// Slug id; generated (32 hex digits) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// http(s) link (default empty).
    #[serde(default)]
    pub url: String,
    /// Whether the feature is licensed (default `false`).
    #[serde(default)]
    pub enabled: bool,
}

/// Request of `update_app_license`; absent fields keep their value.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAppRequest {
    /// The license id.
    pub id: String,
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New link (empty string clears it).
    #[serde(default)]
    pub url: Option<String>,
}

/// Request of `set_app_license_enabled`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnabledRequest {
    /// The app license id.
    pub id: String,
    /// The new state.
    pub enabled: bool,
}

/// Request of `create_user_license`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Slug id; generated (32 hex digits) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// Seat limit; `0` means unlimited.
    pub max_users: u64,
}

/// Request of `update_user_license`; absent fields keep their value.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// The license id.
    pub id: String,
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New seat limit (`0` = unlimited); never below the seats in use.
    #[serde(default)]
    pub max_users: Option<u64>,
}

/// Request of operations that address one license by id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    /// The license id.
    pub id: String,
}

/// Request of the list operations.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Case-insensitive substring of the id, name or description.
    #[serde(default)]
    pub search: Option<String>,
    /// Items to skip (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Page size, 1-500 (default 50).
    #[serde(default = "default_limit")]
    pub limit: u64,
}

/// Request of `assign` and `revoke`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatRequest {
    /// The user license.
    pub license_id: String,
    /// The user.
    pub user_id: String,
}

/// Request of `seats`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatsRequest {
    /// One user license; absent: every user license.
    #[serde(default)]
    pub license_id: Option<String>,
}

/// Request of `assignees`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssigneesRequest {
    /// The user license.
    pub license_id: String,
    /// Items to skip (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Page size, 1-500 (default 50).
    #[serde(default = "default_limit")]
    pub limit: u64,
}

/// Request of `licenses_of`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LicensesOfRequest {
    /// The user.
    pub user_id: String,
}

/// Payload of the `user.deleted` event this plugin subscribes to.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UserDeleted {
    /// The deleted user's id.
    pub id: String,
}

/// A page of items with the total number of matches.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListResponse<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match in total.
    pub total: u64,
}

/// Response of the delete operations.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeleteResponse {
    /// Always `true` (a missing license is `not_found`).
    pub deleted: bool,
}

/// Response of `assign`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AssignResponse {
    /// `false` when the user already held a seat (nothing changed).
    pub assigned: bool,
    /// Seats in use afterwards.
    pub used: u64,
    /// The license's seat limit (`0` = unlimited).
    pub max_users: u64,
}

/// Response of `revoke`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RevokeResponse {
    /// `false` when the user held no seat (nothing changed).
    pub revoked: bool,
}

/// Seat usage of one user license.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SeatInfo {
    /// The user license.
    pub license_id: String,
    /// Its display name.
    pub name: String,
    /// Seats in use.
    pub used: u64,
    /// Seat limit (`0` = unlimited).
    pub max_users: u64,
}

/// Response of `seats`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SeatsResponse {
    /// One entry per user license, by name then id.
    pub items: Vec<SeatInfo>,
}

/// Response of `licenses_of`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LicensesOfResponse {
    /// The user's user-license ids, sorted.
    pub licenses: Vec<String>,
}

/// Response of `ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pong {
    /// The system that answered.
    pub system: &'static str,
    /// Its version.
    pub version: &'static str,
}

impl Plugin for LicenseSystem {
    fn manifest() -> Manifest {
        Manifest::new("license", env!("CARGO_PKG_VERSION"))
            .name("Licenses")
            .describe("App and user licenses with seat limits.")
            .permission(
                "license.read",
                "Read licenses",
                "May list app and user licenses, their seat usage and assignees.",
            )
            .permission(
                "license.manage",
                "Manage licenses",
                "May create, change, enable, disable and delete app and user licenses.",
            )
            .permission(
                "license.assign",
                "Assign licenses",
                "May assign user licenses to users and revoke them.",
            )
            .subscribe("user.deleted")
            .page(
                PageDecl::new(pages::PATH, "Licenses", "admin_licenses_page")
                    .area(Area::Admin)
                    .card(
                        "Licenses",
                        "App licenses that switch features on, and user licenses with their seat usage.",
                        Some("license.read"),
                    )
                    .nav()
                    .order(50),
            )
    }

    fn operations() -> Operations<Self> {
        let read = || Access::permission("license.read");
        let manage = || Access::permission("license.manage");
        let assign = || Access::permission("license.assign");
        Operations::new()
            .page(
                "admin_licenses_page",
                read(),
                "Admin page: app and user licenses with seat usage, or one license's editor.",
                Self::admin_licenses_page,
            )
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .op(
                "create_app_license",
                manage(),
                "Creates an app license; publishes license.updated.",
                Self::create_app_license,
            )
            .query(
                "get_app_license",
                read(),
                "Returns one app license by id.",
                Self::get_app_license,
            )
            .query(
                "list_app_licenses",
                read(),
                "Lists app licenses by name, with search and paging.",
                Self::list_app_licenses,
            )
            .op(
                "update_app_license",
                manage(),
                "Changes an app license's name, description or url; publishes license.updated.",
                Self::update_app_license,
            )
            .op(
                "set_app_license_enabled",
                manage(),
                "Enables or disables an app license; publishes license.updated.",
                Self::set_app_license_enabled,
            )
            .op(
                "delete_app_license",
                manage(),
                "Deletes an app license; publishes license.deleted.",
                Self::delete_app_license,
            )
            .op(
                "create_user_license",
                manage(),
                "Creates a user license with a seat limit; publishes license.updated.",
                Self::create_user_license,
            )
            .query(
                "get_user_license",
                read(),
                "Returns one user license by id, with its used seats.",
                Self::get_user_license,
            )
            .query(
                "list_user_licenses",
                read(),
                "Lists user licenses by name with their used seats, with search and paging.",
                Self::list_user_licenses,
            )
            .op(
                "update_user_license",
                manage(),
                "Changes a user license; refuses a seat limit below the seats in use; publishes license.updated.",
                Self::update_user_license,
            )
            .op(
                "delete_user_license",
                manage(),
                "Deletes a user license and all its assignments; publishes license.deleted.",
                Self::delete_user_license,
            )
            .op(
                "assign",
                assign(),
                "Assigns a seat of a user license to a user; publishes license.assigned.",
                Self::assign,
            )
            .op(
                "revoke",
                assign(),
                "Revokes a user's seat of a user license; publishes license.revoked.",
                Self::revoke,
            )
            .query(
                "seats",
                read(),
                "Seat usage (used / max) of one or every user license.",
                Self::seats,
            )
            .query(
                "assignees",
                read(),
                "The users holding a seat of a user license, by id, paged.",
                Self::assignees,
            )
            .query(
                "licenses_of",
                Access::System,
                "The user licenses assigned to a user (for building its subject).",
                Self::licenses_of,
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        Ok(LicenseSystem { host })
    }

    fn on_event(&self, event: &Event) -> Result<(), PluginError> {
        if event.topic == "user.deleted" {
            let deleted: UserDeleted = event.payload_as()?;
            self.release_seats_of(&deleted.id)?;
        }
        Ok(())
    }
}

impl LicenseSystem {
    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "license",
            version: env!("CARGO_PKG_VERSION"),
        })
    }
}

/// Reads a JSON record and the exact bytes it is stored as (for `expect`).
fn load<T: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
) -> Result<Option<(T, Vec<u8>)>, PluginError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => Ok(Some((decode(key.as_bytes(), &bytes)?, bytes))),
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, PluginError> {
    serde_json::from_slice(bytes).map_err(|e| {
        PluginError::storage(format!(
            "stored value under {} is not valid: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// Adds a precondition that `key` holds `bytes` (`None`: is absent).
fn expect_state(batch: Batch, key: &str, bytes: Option<&[u8]>) -> Batch {
    match bytes {
        Some(b) => batch.expect(key, b),
        None => batch.expect_absent(key),
    }
}

/// The conflict returned when retries are exhausted by concurrent writers.
fn busy(what: &str) -> PluginError {
    PluginError::conflict(format!("{what} is being changed concurrently; try again"))
}

export_plugin!(LicenseSystem);
