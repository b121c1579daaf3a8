//! The `settings` system: Typed, validated settings sections owned by the systems.
//!
//! **Skeleton.** This release carries the real manifest (id, version and
//! dependency declarations) so the host resolves and activates the real
//! graph; the only operation is `ping`, a placeholder liveness probe. The
//! domain operations arrive in the following releases.

use serde::Serialize;
use syshost_plugin_api::{
    export_plugin, Access, CallContext, Host, Manifest, NoInput, Operations, Plugin, PluginError,
};

/// The running `settings` system.
pub struct SettingsSystem {
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

impl Plugin for SettingsSystem {
    fn manifest() -> Manifest {
        Manifest::new("settings", env!("CARGO_PKG_VERSION"))
            .name("Settings")
            .describe("Typed, validated settings sections owned by the systems.")
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
        Ok(SettingsSystem { host })
    }
}

impl SettingsSystem {
    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "settings",
            version: env!("CARGO_PKG_VERSION"),
        })
    }
}

export_plugin!(SettingsSystem);
