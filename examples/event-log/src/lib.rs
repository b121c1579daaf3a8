//! # event-log: an example third-party syshost plugin
//!
//! Subscribes to every event any plugin publishes and stores it in its own
//! store namespace, under keys that sort by time:
//! `event/<publish time, 16 hex digits>/<sequence, 8 hex digits>`.
//! It serves two operations, both requiring the `eventlog.read` permission it
//! declares: `list` (newest first, paged) and `count`, and one web page,
//! `/ui/admin/events`, with an admin-center card (a page is an operation that
//! returns a `View`; the host renders it, so the plugin writes no HTML).
//!
//! This crate depends on nothing from syshost but `syshost-plugin-api`; read
//! it top to bottom to learn how a plugin is put together.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use syshost_plugin_api::view::{Area, Block, Cell, Link, PageDecl, PageRequest, Row, Table, View};
use syshost_plugin_api::{
    export_plugin, Access, CallContext, Event, Host, Manifest, NoInput, Operations, Plugin,
    PluginError,
};

/// 1. The plugin's state: the host services handle plus anything in memory.
pub struct EventLog {
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

impl Plugin for EventLog {
    /// 3. The manifest: id, version, what it needs, what it declares.
    fn manifest() -> Manifest {
        Manifest::new("eventlog", env!("CARGO_PKG_VERSION"))
            .name("Event log")
            .describe("Records every event published by any plugin.")
            .permission(
                "eventlog.read",
                "Read the event log",
                "May list recorded events",
            )
            .subscribe("*")
            // A web page in the admin center, with a card for readers.
            .page(
                PageDecl::new("admin/events", "Event log", "page_events")
                    .area(Area::Admin)
                    .card(
                        "Event log",
                        "Every event any system published, newest first.",
                        Some("eventlog.read"),
                    )
                    .order(90),
            )
    }

    /// 4. The operations, each with its access rule and a one-line doc.
    fn operations() -> Operations<Self> {
        Operations::new()
            .query(
                "list",
                Access::permission("eventlog.read"),
                "Lists recorded events, newest first.",
                Self::list,
            )
            .query(
                "count",
                Access::permission("eventlog.read"),
                "Counts recorded events.",
                Self::count,
            )
            .page(
                "page_events",
                Access::permission("eventlog.read"),
                "Web page: the recorded events, newest first.",
                Self::page_events,
            )
    }

    /// 5. Activation: called once, after everything in `requires` is active.
    fn activate(host: Host) -> Result<Self, PluginError> {
        host.info("event log ready");
        Ok(EventLog {
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

impl EventLog {
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
                    .map_err(|e| PluginError::storage(format!("corrupt event record: {e}")))
            })
            .collect::<Result<Vec<Event>, _>>()?;
        Ok(ListResponse { events, next })
    }

    /// The page: one table of events, 50 a page, "Older" continues below
    /// the cursor in `?before=`.
    fn page_events(&self, req: PageRequest, ctx: &CallContext) -> Result<View, PluginError> {
        let page = self.list(
            ListRequest {
                limit: 50,
                before: req.param("before").map(str::to_string),
            },
            ctx,
        )?;
        let mut table = Table::new(["Time (ms)", "Topic", "Source", "Payload"])
            .id("events")
            .empty("No events recorded yet.");
        for event in &page.events {
            let payload = event.payload.to_string();
            let short: String = payload.chars().take(120).collect();
            table = table.row(Row::new([
                Cell::new(event.at_unix_ms.to_string()),
                Cell::new(event.topic.clone()),
                Cell::new(event.source.clone()),
                Cell {
                    text: short,
                    muted: true,
                    ..Default::default()
                },
            ]));
        }
        let mut view = View::new("Event log")
            .subtitle("Every event any system published, newest first.")
            .push(table);
        if let Some(next) = page.next {
            view = view.push(Block::links(vec![Link::new(
                "Older events",
                format!("/ui/admin/events?before={next}"),
            )]));
        }
        Ok(view)
    }

    fn count(&self, _: NoInput, _ctx: &CallContext) -> Result<CountResponse, PluginError> {
        Ok(CountResponse {
            count: self.host.store().scan_prefix(b"event/")?.len(),
        })
    }
}

// 7. Export the plugin: generates the stable-ABI root module.
export_plugin!(EventLog);
