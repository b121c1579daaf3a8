//! The `user` system: Accounts, registration and verification, profiles and consents, passwords, and role/group/permission/license assignment.
//!
//! **Skeleton.** This release carries the real manifest (id, version and
//! dependency declarations) so the host resolves and activates the real
//! graph; the only operation is `ping`, a placeholder liveness probe. The
//! domain operations arrive in the following releases.

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

export_plugin!(UserSystem);
