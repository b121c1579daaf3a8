//! # syshost (host library)
//!
//! Loads system plugins built against `syshost-plugin-api`, resolves their
//! dependency graph, activates what the enabled systems require, gives each
//! plugin a private store namespace, and routes calls between them.
//!
//! ```no_run
//! use syshost::Host;
//! use syshost_plugin_api::NoInput;
//!
//! let host = Host::builder()
//!     .data_dir("./syshost-data")
//!     .plugin_dir("./target/debug")
//!     .build()?;
//! let user = host.activate("user")?;          // activates all eight systems
//! let pong: serde_json::Value = user.call("ping", &NoInput {})?;
//! host.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Module map: [`config`] (file + env), [`loader`] (one library),
//! [`discovery`] (directories → validated plugins), [`resolver`] (dependency
//! graph), [`store`] (sled namespaces), [`runtime`] (activation, dispatch,
//! events), [`mail`] (outbound mail), [`http`] (axum frontend), [`backup`]
//! (backup file format), [`admin_socket`] (CLI ↔ running host), [`dataset`]
//! (bulk import and the shared dataset generator), [`inline`] (calls run on
//! an async worker when they cannot block), [`cli`].

#![warn(missing_docs)]

pub mod admin_socket;
pub mod backup;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod discovery;
pub mod http;
pub mod inline;
pub mod loader;
pub mod mail;
pub mod resolutions;
pub mod resolver;
pub mod runtime;
mod services;
pub mod store;
pub mod subjects;
pub mod web;

pub use config::Config;
pub use runtime::{
    ActivationReport, BootstrapAdmin, Host, HostBuilder, HostError, RegisteredPermission, SiteInfo,
    SystemHandle, SystemState, SystemStatus,
};
pub use syshost_plugin_api::{CallContext, PluginError, Subject};
