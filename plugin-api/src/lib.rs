//! # syshost-plugin-api
//!
//! The only crate a syshost plugin depends on. It holds two things:
//!
//! * **the stable ABI** ([`abi`]): a root module with `manifest()` and
//!   `instantiate(host services)`, a plugin object with `call`, `on_event`
//!   and `shutdown`, and the host-services object. It is built on
//!   `abi_stable` and layout-checked at load time. It is small and frozen;
//!   everything that evolves travels as JSON with serde defaults.
//! * **the SDK** plugin authors write against: [`Plugin`], [`Operations`],
//!   [`Host`], [`Store`], [`Manifest`], [`PluginError`] and
//!   [`export_plugin!`].
//!
//! ## A whole plugin
//!
//! ```
//! use serde::Serialize;
//! use syshost_plugin_api::{export_plugin, Access, CallContext, Host, Manifest,
//!     NoInput, Operations, Plugin, PluginError};
//!
//! pub struct Hello { host: Host }
//!
//! // Request and response types also derive `JsonSchema`: their schemas go
//! // into the manifest (and the host's OpenAPI document).
//! #[derive(Serialize, syshost_plugin_api::schemars::JsonSchema)]
//! #[schemars(crate = "syshost_plugin_api::schemars")]
//! pub struct Greeting { text: String }
//!
//! impl Plugin for Hello {
//!     fn manifest() -> Manifest {
//!         Manifest::new("hello", env!("CARGO_PKG_VERSION"))
//!             .describe("Says hello.")
//!             .permission("hello.greet", "Greet", "May ask for a greeting")
//!     }
//!     fn operations() -> Operations<Self> {
//!         Operations::new().query("greet", Access::permission("hello.greet"),
//!             "Returns a greeting", Self::greet)
//!     }
//!     fn activate(host: Host) -> Result<Self, PluginError> { Ok(Hello { host }) }
//! }
//!
//! impl Hello {
//!     fn greet(&self, _: NoInput, ctx: &CallContext) -> Result<Greeting, PluginError> {
//!         Ok(Greeting { text: format!("hello, {}", ctx.subject.label()) })
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! ## Rules for plugin code
//! * Synchronous only; never depend on tokio. The host runs calls on its
//!   blocking thread pool and owns the one runtime.
//! * Store state only through [`Host::store`]: the namespace is private to the
//!   plugin and survives restarts.
//! * Call other plugins only through [`Host::call`], and only those declared in
//!   `requires` or `wants`.
//! * Never log secrets (passwords, tokens, codes).
//!
//! ## Compatibility
//! The host checks, at load time, that a library was built with the same
//! `abi_stable` line and a compatible plugin-api version, and that every type
//! crossing the boundary has the same layout. `abi_stable` accepts a *newer*
//! plugin in an *older* host but rejects an *older* plugin in a newer host
//! whose ABI grew, so rebuild plugins when the host's plugin-api changes.

#![allow(non_local_definitions)]
#![warn(missing_docs)]

pub mod abi;
mod context;
mod error;
pub mod export;
mod host;
mod manifest;
mod plugin;
mod subject_de;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
pub mod timefmt;
pub mod validate;
pub mod view;

pub use context::{
    CallContext, Event, Mail, PermissionRegistryAnswer, PermissionRegistryRequest,
    RegisteredPermission, ResolveSubjectRequest, ResolveTokenRequest, ResolvedSubject,
    ResolvedToken, Subject, UserSubject,
};
pub use error::{codes, PluginError};
pub use host::{prefix_end, Batch, BatchResult, Entry, Host, Level, PermissionRegistry, Store};
pub use manifest::{
    is_valid_ident, is_valid_permission_id, topic_matches, Access, Dependency, Manifest,
    OperationDecl, PermissionDecl, SubjectProvider, TokenResolver,
};
pub use plugin::{NoInput, Operations, Plugin};
pub use view::{Area, PageDecl, PageRequest, View};

/// The JSON Schema generator used for operation request/response schemas.
/// Plugins derive `schemars::JsonSchema` on their request and response types
/// (add `schemars = "1"` to the plugin's dependencies so the derive can name
/// the crate, or use `#[schemars(crate = "syshost_plugin_api::schemars")]`).
pub use schemars;

/// Re-exports used by [`export_plugin!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{instantiate, manifest_json, root_module};
    pub use abi_stable;
    pub use abi_stable::std_types::{RResult, RString};
}
