//! The `user` system: accounts, registration and verification, profiles and
//! consents, passwords, and role/group/permission/license assignment.
//!
//! It is the host's **subject provider**: the host resolves every user (and
//! the anonymous caller) through the `subject` operation and caches the
//! answer until one of the events listed in the manifest makes it stale.
//!
//! Modules: [`model`] (records, views, requests), [`store`] (key layout and
//! atomic write helpers), [`admin`] (administrative operations),
//! [`bulk`] (bulk delete / enable / disable for the admin table),
//! [`index`] (the in-memory index `list` answers from),
//! [`subject`] (`subject`, `authenticate`), [`cleanup`] (reactions to
//! `role.deleted` / `group.deleted`), [`selfservice`] (registration,
//! confirmation, resets, own profile and consents), [`avatar`],
//! [`bootstrap`] (the first administrator), [`mails`] (templates), and the
//! primitives [`email`], [`password`], [`codes`], [`profile`].
//!
//! At activation the plugin registers the `user` settings section and
//! creates its secret code key (`secret/code_key`, 32 random bytes) once.

pub mod admin;
pub mod avatar;
pub mod bootstrap;
pub mod bulk;
pub mod cleanup;
pub mod codes;
pub mod email;
pub mod import;
pub mod index;
pub mod mails;
pub mod model;
pub mod pages;
pub mod password;
pub mod profile;
pub mod selfservice;
pub mod store;
pub mod subject;

use std::sync::Arc;

use serde::Serialize;
use syshost_plugin_api::{
    export_plugin, Access, BatchResult, CallContext, Event, Host, Manifest, NoInput, Operations,
    Plugin, PluginError,
};

use crate::model::{Ctx, IdPayload};

/// The running `user` system.
pub struct UserSystem {
    ctx: Ctx,
}

/// Response of `ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pong {
    /// The system that answered.
    pub system: &'static str,
    /// Its version.
    pub version: &'static str,
}

/// Wraps a `fn(&Ctx, Req, &CallContext)` handler as an operation handler.
macro_rules! handler {
    ($f:path) => {
        |s: &UserSystem, req, caller: &CallContext| $f(&s.ctx, req, caller)
    };
}

impl Plugin for UserSystem {
    fn manifest() -> Manifest {
        pages::declare(Manifest::new("user", env!("CARGO_PKG_VERSION")))
            .name("User Management")
            .describe("Accounts, registration and verification, profiles and consents, passwords, and role/group/permission/license assignment.")
            .requires("license", "^0.1")
            .requires("role", "^0.1")
            .requires("permission", "^0.1")
            .requires("group", "^0.1")
            .requires("settings", "^0.1")
            .wants("session", "^0.1")
            // Soft: `enable = ["user"]` brings the audit trail along.
            .wants("audit", "^0.1")
            .permission(
                "user.read",
                "View users",
                "List and view user accounts, their profiles, roles, groups and permissions.",
            )
            .permission(
                "user.create",
                "Create users",
                "Create user accounts, with or without an initial password.",
            )
            .permission(
                "user.update",
                "Edit users",
                "Change other users' contact data, avatar, status, verification, email address and password, and require a password change.",
            )
            .permission(
                "user.delete",
                "Delete users",
                "Delete user accounts with all their data.",
            )
            .permission(
                "user.export",
                "Export users",
                "Export user accounts with their personal data as JSON or CSV.",
            )
            .permission(
                "user.assign",
                "Assign roles, groups, permissions and licenses",
                "Set the roles, groups and direct permissions of users, and assign or revoke their licenses.",
            )
            .subject_provider(
                "subject",
                &[
                    "role.updated",
                    "role.deleted",
                    "group.deleted",
                    "license.assigned",
                    "license.revoked",
                    "license.deleted",
                    "settings.updated",
                    "user.*",
                ],
            )
            .subscribe("role.deleted")
            .subscribe("group.deleted")
    }

    fn operations() -> Operations<Self> {
        let read = || Access::permission("user.read");
        let update = || Access::permission("user.update");
        let assign = || Access::permission("user.assign");
        pages::operations(Operations::new())
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .op(
                "create",
                Access::permission("user.create"),
                "Creates an account (without a password the user sets one with a mailed code).",
                handler!(admin::create),
            )
            .op(
                "import",
                Access::permission("user.create"),
                "Creates up to 1000 accounts with pre-hashed passwords in one atomic batch.",
                handler!(import::import),
            )
            .query("get", read(), "Returns one user.", handler!(admin::get))
            .query(
                "list",
                read(),
                "Lists users filtered by search text, status, role and group; sorted and paged.",
                handler!(admin::list),
            )
            .op(
                "update_contact",
                update(),
                "Replaces a user's profile (contact data).",
                handler!(admin::update_contact),
            )
            .op(
                "set_status",
                update(),
                "Enables or disables an account, or enables it until a time.",
                handler!(admin::set_status),
            )
            .op(
                "set_verified",
                update(),
                "Marks a user's email address as confirmed or not.",
                handler!(admin::set_verified),
            )
            .op(
                "change_email",
                update(),
                "Changes a user's login address (unique; the account becomes unverified).",
                handler!(admin::change_email),
            )
            .op(
                "set_password",
                update(),
                "Sets a user's password (policy-checked) and clears the password-change requirement.",
                handler!(admin::set_password),
            )
            .op(
                "require_password_change",
                update(),
                "Requires (or no longer requires) a user to set a new password.",
                handler!(admin::require_password_change),
            )
            .op(
                "delete",
                Access::permission("user.delete"),
                "Deletes an account and every piece of its data.",
                handler!(admin::delete),
            )
            .op(
                "set_roles",
                assign(),
                "Replaces a user's roles.",
                handler!(admin::set_roles),
            )
            .op(
                "set_groups",
                assign(),
                "Replaces a user's groups.",
                handler!(admin::set_groups),
            )
            .op(
                "set_permissions",
                assign(),
                "Replaces a user's directly granted permissions.",
                handler!(admin::set_permissions),
            )
            .op(
                "assign_license",
                assign(),
                "Gives a user a seat of a user license.",
                handler!(admin::assign_license),
            )
            .op(
                "revoke_license",
                assign(),
                "Frees a user's seat of a user license.",
                handler!(admin::revoke_license),
            )
            .op(
                "bulk_delete",
                Access::permission("user.delete"),
                "Deletes many accounts (up to 500; never the caller's own).",
                handler!(bulk::bulk_delete),
            )
            .op(
                "bulk_set_status",
                update(),
                "Enables or disables many accounts (up to 500; never the caller's own).",
                handler!(bulk::bulk_set_status),
            )
            .query(
                "export",
                Access::permission("user.export"),
                "Exports users as JSON or CSV.",
                handler!(admin::export),
            )
            .query(
                "subject",
                Access::System,
                "Resolves a user's (or the anonymous) subject for the host.",
                handler!(subject::subject),
            )
            .op(
                "authenticate",
                Access::System,
                "Checks an email address and password; records the login.",
                handler!(subject::authenticate),
            )
            .op(
                "register",
                Access::Public,
                "Self-registration (when the settings allow it); mails a confirmation code.",
                handler!(selfservice::register),
            )
            .throttled("auth")
            .op(
                "confirm_email",
                Access::Public,
                "Confirms an email address with the mailed code.",
                handler!(selfservice::confirm_email),
            )
            .throttled("auth")
            .op(
                "resend_verification",
                Access::Public,
                "Mails a new confirmation code to an unconfirmed address.",
                handler!(selfservice::resend_verification),
            )
            .throttled("auth")
            .op(
                "request_password_reset",
                Access::Public,
                "Mails a password-reset code (when the settings allow it).",
                handler!(selfservice::request_password_reset),
            )
            .throttled("auth")
            .op(
                "reset_password",
                Access::Public,
                "Sets a new password with a mailed code; also confirms the address.",
                handler!(selfservice::reset_password),
            )
            .throttled("auth")
            .query(
                "me",
                Access::Authenticated,
                "The caller's account with effective permissions and licenses.",
                handler!(selfservice::me),
            )
            .op(
                "update_my_contact",
                Access::Authenticated,
                "Replaces the caller's profile.",
                handler!(selfservice::update_my_contact),
            )
            .op(
                "change_my_password",
                Access::Authenticated,
                "Changes the caller's password (current password required).",
                handler!(selfservice::change_my_password),
            )
            .op(
                "set_my_consent",
                Access::Authenticated,
                "Accepts or revokes one of the caller's optional consents.",
                handler!(selfservice::set_my_consent),
            )
            .query(
                "export_my_data",
                Access::Authenticated,
                "Everything stored about the caller, as JSON.",
                handler!(selfservice::export_my_data),
            )
            .op(
                "set_my_avatar",
                Access::Authenticated,
                "Sets the caller's avatar (PNG, JPEG or WebP, base64, at most 256 KiB).",
                handler!(avatar::set_my_avatar),
            )
            .op(
                "delete_my_avatar",
                Access::Authenticated,
                "Removes the caller's avatar.",
                handler!(avatar::delete_my_avatar),
            )
            .op(
                "set_avatar",
                update(),
                "Sets a user's avatar (PNG, JPEG or WebP, base64, at most 256 KiB).",
                handler!(avatar::set_avatar),
            )
            .op(
                "delete_avatar",
                update(),
                "Removes a user's avatar.",
                handler!(avatar::delete_avatar),
            )
            .query(
                "get_avatar",
                Access::Authenticated,
                "A user's avatar image (content type, base64 data, size).",
                handler!(avatar::get_avatar),
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        register_settings_section(&host)?;
        let code_key = load_or_create_code_key(&host)?;
        let ctx = Ctx {
            host,
            code_key: Arc::new(code_key),
            users: Arc::new(index::UserIndex::new()),
        };
        store::note_greatest_id(&ctx.store())?;
        bootstrap::ensure_first_admin(&ctx)?;
        cleanup::release_orphaned_seats(&ctx)?;
        cleanup::drop_dangling_memberships(&ctx)?;
        Ok(UserSystem { ctx })
    }

    fn shutdown(&self) -> Result<(), PluginError> {
        // A user index build still running must not outlive the system.
        self.ctx.users.stop_build();
        Ok(())
    }

    fn on_event(&self, event: &Event) -> Result<(), PluginError> {
        match event.topic.as_str() {
            "role.deleted" => {
                let payload: IdPayload = event.payload_as()?;
                cleanup::role_deleted(&self.ctx, &payload.id)?;
            }
            "group.deleted" => {
                let payload: IdPayload = event.payload_as()?;
                cleanup::group_deleted(&self.ctx, &payload.id)?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl UserSystem {
    /// The shared state handlers work with.
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "user",
            version: env!("CARGO_PKG_VERSION"),
        })
    }
}

/// Reads the secret code key, creating it (32 random bytes) on first
/// activation. Racing activations agree: the write expects the key absent,
/// and the loser reads the winner's key.
fn load_or_create_code_key(host: &Host) -> Result<[u8; 32], PluginError> {
    let store = host.store();
    for _ in 0..store::MAX_ATTEMPTS {
        if let Some(bytes) = store.get(store::CODE_KEY_KEY)? {
            return <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                PluginError::storage(format!(
                    "{} holds {} bytes, expected 32",
                    store::CODE_KEY_KEY,
                    bytes.len()
                ))
            });
        }
        let fresh = codes::random_bytes::<32>()?;
        let result = store
            .batch()
            .expect_absent(store::CODE_KEY_KEY)
            .put(store::CODE_KEY_KEY, fresh)
            .commit()?;
        if result == BatchResult::Committed {
            return Ok(fresh);
        }
    }
    Err(PluginError::internal(
        "could not create the secret code key",
    ))
}

/// The `user` settings section: `{"defaults": {...}, "schema": {...}}`.
pub const SETTINGS_SECTION_JSON: &str = include_str!("../settings-section.json");

/// Registers (or re-registers) the `user` section with the settings system.
fn register_settings_section(host: &Host) -> Result<(), PluginError> {
    let section: serde_json::Value = serde_json::from_str(SETTINGS_SECTION_JSON).map_err(|e| {
        PluginError::internal(format!(
            "the built-in user settings section is not JSON: {e}"
        ))
    })?;
    let request = serde_json::json!({
        "section": "user",
        "defaults": section.get("defaults").cloned().unwrap_or_default(),
        "schema": section.get("schema").cloned().unwrap_or_default(),
    });
    let _: serde_json::Value = host.call("settings", "register", &request)?;
    Ok(())
}

export_plugin!(UserSystem);
