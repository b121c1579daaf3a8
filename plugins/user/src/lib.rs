//! The `user` system: Accounts, registration and verification, profiles and consents, passwords, and role/group/permission/license assignment.
//!
//! **Skeleton.** This release carries the real manifest (id, version and
//! dependency declarations) so the host resolves and activates the real
//! graph, and registers the `user` settings section (self-registration,
//! allowed domains, default and anonymous roles/groups, consent options,
//! password policy, registration fields) with the settings system. The only
//! operation is `ping`, a placeholder liveness probe; the account operations
//! arrive in the next release.

use serde::Serialize;
use syshost_plugin_api::{
    export_plugin, Access, CallContext, Host, Manifest, NoInput, Operations, Plugin, PluginError,
};

/// The running `user` system.
pub struct UserSystem {
    #[allow(dead_code)]
    host: Host,
}

/// Response of `ping`.
#[derive(Debug, Serialize)]
pub struct Pong {
    /// The system that answered.
    pub system: &'static str,
    /// Its version.
    pub version: &'static str,
}

impl Plugin for UserSystem {
    fn manifest() -> Manifest {
        Manifest::new("user", env!("CARGO_PKG_VERSION"))
            .name("User Management")
            .describe("Accounts, registration and verification, profiles and consents, passwords, and role/group/permission/license assignment.")
            .requires("license", "^0.1")
            .requires("role", "^0.1")
            .requires("permission", "^0.1")
            .requires("group", "^0.1")
            .requires("settings", "^0.1")
            .wants("session", "^0.1")
    }

    fn operations() -> Operations<Self> {
        Operations::new().query(
            "ping",
            Access::Public,
            "Placeholder liveness probe: answers with the system id and version.",
            Self::ping,
        )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        register_settings_section(&host)?;
        Ok(UserSystem { host })
    }
}

impl UserSystem {
    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "user",
            version: env!("CARGO_PKG_VERSION"),
        })
    }
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
