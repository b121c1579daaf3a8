//! # audit-log: an example third-party syshost plugin
//!
//! Subscribes to every event any plugin publishes and stores it in its own
//! store namespace, under keys that sort by time:
//! `event/<publish time, 16 hex digits>/<sequence, 8 hex digits>`.
//! It serves two operations, both requiring the `audit.read` permission it
//! declares: `list` (newest first, paged) and `count`.
//!
//! This crate depends on nothing from syshost but `syshost-plugin-api`; read
//! it top to bottom to learn how a plugin is put together.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use syshost_plugin_api::{
    export_plugin, Access, CallContext, Event, Host, Manifest, NoInput, Operations, Plugin,
    PluginError,
};

/// 1. The plugin's state: the host services handle plus anything in memory.
pub struct AuditLog {
    host: Host,
    seq: AtomicU32,
}

/// 2. Request and response types are plain serde structs.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Page size (1-500, default 50).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Continue below this cursor (the `next` of the previous page).
    #[serde(default)]
    pub before: Option<String>,
}

fn default_limit() -> usize {
    50
}

/// One page of recorded events, newest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// The events.
    pub events: Vec<Event>,
    /// Cursor for the next (older) page, if there is one.
    pub next: Option<String>,
}

/// How many events are stored.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CountResponse {
    /// Number of stored events.
    pub count: usize,
}

impl Plugin for AuditLog {
    /// 3. The manifest: id, version, what it needs, what it declares.
    fn manifest() -> Manifest {
        Manifest::new("audit", env!("CARGO_PKG_VERSION"))
            .name("Audit log")
            .describe("Records every event published by any plugin.")
            .permission(
                "audit.read",
                "Read the audit log",
                "May list recorded events",
            )
            .subscribe("*")
    }

    /// 4. The operations, each with its access rule and a one-line doc.
    fn operations() -> Operations<Self> {
        Operations::new()
            .query(
                "list",
                Access::permission("audit.read"),
                "Lists recorded events, newest first.",
                Self::list,
            )
            .query(
                "count",
                Access::permission("audit.read"),
                "Counts recorded events.",
                Self::count,
            )
    }

    /// 5. Activation: called once, after everything in `requires` is active.
    fn activate(host: Host) -> Result<Self, PluginError> {
        host.info("audit log ready");
        Ok(AuditLog {
            host,
            seq: AtomicU32::new(0),
        })
    }

    /// 6. Events arrive after the call that published them has returned.
    fn on_event(&self, event: &Event) -> Result<(), PluginError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let key = format!("event/{:016x}/{seq:08x}", event.at_unix_ms.max(0));
        self.host.store().put_json(key, event)
    }
}

impl AuditLog {
    fn list(&self, req: ListRequest, _ctx: &CallContext) -> Result<ListResponse, PluginError> {
        if req.limit == 0 || req.limit > 500 {
            return Err(PluginError::invalid_field(
                "limit",
                "limit must be between 1 and 500",
            ));
        }
        let end = match &req.before {
            Some(cursor) if cursor.starts_with("event/") => cursor.clone().into_bytes(),
            Some(_) => {
                return Err(PluginError::invalid_field(
                    "before",
                    "not a cursor from a previous page",
                ))
            }
            None => b"event0".to_vec(),
        };
        let mut pairs = self
            .host
            .store()
            .range_rev(b"event/", Some(&end), req.limit + 1)?;
        // One extra pair tells whether an older page exists.
        let has_more = pairs.len() > req.limit;
        pairs.truncate(req.limit);
        let next = if has_more {
            pairs
                .last()
                .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
        } else {
            None
        };
        let events = pairs
            .into_iter()
            .map(|(_, value)| {
                serde_json::from_slice(&value)
                    .map_err(|e| PluginError::storage(format!("corrupt audit record: {e}")))
            })
            .collect::<Result<Vec<Event>, _>>()?;
        Ok(ListResponse { events, next })
    }

    fn count(&self, _: NoInput, _ctx: &CallContext) -> Result<CountResponse, PluginError> {
        Ok(CountResponse {
            count: self.host.store().scan_prefix(b"event/")?.len(),
        })
    }
}

// 7. Export the plugin: generates the stable-ABI root module.
export_plugin!(AuditLog);
