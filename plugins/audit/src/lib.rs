//! The `audit` system: a durable trail of security-relevant events.
//!
//! It subscribes to the events of the other systems (logins and their
//! failures, throttling, account, role, group, license and settings changes)
//! and to the host's `host.plugin_failed`, turns each into an
//! [`entry::AuditEntry`] (time, actor, target, action, outcome, details
//! without secrets) and stores it with an index by actor and by target, so
//! `list` stays a short range scan however many entries there are. Entries
//! older than the `audit` settings section's `retention_days` are pruned.
//!
//! Store layout: see [`entry`].

pub mod entry;
pub mod pages;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::json;
use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::{
    export_plugin, Access, BatchResult, CallContext, Event, Host, Manifest, Operations, Plugin,
    PluginError, Store,
};

use crate::entry::{
    entry_id, entry_key, from_event, index_prefix, is_entry_id, seq_of, time_floor, AuditEntry,
    ACTOR_PREFIX, ENTRY_PREFIX, MAX_LABEL_CHARS, TARGET_PREFIX,
};

/// The settings section this system registers and reads.
pub const SETTINGS_SECTION: &str = "audit";
/// Default retention (days).
pub const DEFAULT_RETENTION_DAYS: i64 = 365;
/// The most expired entries removed per recorded event (keeps writes short).
const PRUNE_PER_EVENT: usize = 64;
/// Index keys read per store scan while filtering.
const SCAN_CHUNK: usize = 256;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The running `audit` system.
pub struct AuditSystem {
    host: Host,
    /// Next sequence number (unique within this store).
    seq: AtomicU64,
    /// Current `retention_days`.
    retention_days: AtomicI64,
}

/// `list` request: every filter is optional and they combine with AND.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only entries at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub from: Option<i64>,
    /// Only entries at or before this time (ms since the Unix epoch).
    #[serde(default)]
    pub to: Option<i64>,
    /// Only entries by this actor (exact, e.g. `user:u-1`, `anonymous`).
    #[serde(default)]
    pub actor: Option<String>,
    /// Only entries about this target (exact, e.g. `user:u-1`, `email:a@b.example`).
    #[serde(default)]
    pub target: Option<String>,
    /// Only entries whose action starts with this (e.g. `session.` or `user.updated`).
    #[serde(default)]
    pub action: Option<String>,
    /// Only entries with this outcome: `success`, `failure` or `denied`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Page size (1–500, default 50).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Continue after this entry (the previous page's `next_cursor`).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One page of entries, newest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// The entries.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `ping` response.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pong {
    /// Always `audit`.
    pub system: String,
    /// The plugin version.
    pub version: String,
}

/// An empty request.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl Plugin for AuditSystem {
    fn manifest() -> Manifest {
        Manifest::new("audit", env!("CARGO_PKG_VERSION"))
            .name("Audit trail")
            .describe("Durable, filterable record of security-relevant events.")
            .requires("settings", "^0.1")
            .permission(
                "audit.read",
                "Read the audit trail",
                "List and filter recorded security events.",
            )
            .subscribe("session.*")
            .subscribe("user.*")
            .subscribe("role.*")
            .subscribe("group.*")
            .subscribe("license.*")
            .subscribe("settings.updated")
            .subscribe("host.*")
            .page(
                PageDecl::new(pages::PATH, "Audit trail", "admin_audit_page")
                    .area(Area::Admin)
                    .card(
                        "Audit trail",
                        "Logins and failures, lockouts, account, role, license and settings changes: who, what, when, how it ended.",
                        Some("audit.read"),
                    )
                    .nav()
                    .order(80),
            )
    }

    fn operations() -> Operations<Self> {
        Operations::new()
            .page(
                "admin_audit_page",
                Access::permission("audit.read"),
                "Admin page: the audit trail, filterable by outcome, action, actor and target.",
                Self::admin_audit_page,
            )
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .query(
                "list",
                Access::permission("audit.read"),
                "Lists audit entries, newest first, filtered by time, actor, target, action prefix and outcome.",
                Self::list,
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        register_settings_section(&host)?;
        let store = host.store();
        let next_seq = store
            .range_rev(ENTRY_PREFIX.as_bytes(), Some(b"e0"), 1)?
            .first()
            .and_then(|(k, _)| {
                std::str::from_utf8(&k[ENTRY_PREFIX.len()..])
                    .ok()
                    .and_then(seq_of)
            })
            .map_or(0, |s| s.saturating_add(1));
        let system = AuditSystem {
            host,
            seq: AtomicU64::new(next_seq),
            retention_days: AtomicI64::new(DEFAULT_RETENTION_DAYS),
        };
        system.reload_retention()?;
        system.prune(usize::MAX)?;
        Ok(system)
    }

    fn on_event(&self, event: &Event) -> Result<(), PluginError> {
        if event.topic == "settings.updated"
            && event.payload.get("section").and_then(|s| s.as_str()) == Some(SETTINGS_SECTION)
        {
            self.reload_retention()?;
        }
        if let Some(entry) = from_event(event) {
            self.record(entry)?;
        }
        self.prune(PRUNE_PER_EVENT)?;
        Ok(())
    }
}

impl AuditSystem {
    fn store(&self) -> Store {
        self.host.store()
    }

    fn ping(&self, _: Empty, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "audit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Reads `retention_days` from the settings section.
    fn reload_retention(&self) -> Result<(), PluginError> {
        let resp: serde_json::Value =
            self.host
                .call("settings", "get", &json!({ "section": SETTINGS_SECTION }))?;
        let days = resp["document"]["retention_days"]
            .as_i64()
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        self.retention_days.store(days, Ordering::Relaxed);
        Ok(())
    }

    /// Stores one entry with its two index keys in one batch.
    fn record(&self, mut entry: AuditEntry) -> Result<(), PluginError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        entry.id = entry_id(entry.at, seq);
        let key = entry_key(&entry.id);
        let outcome = self
            .store()
            .batch()
            .expect_absent(&key)
            .put_json(&key, &entry)?
            .put(actor_key(&entry), b"")
            .put(target_key(&entry), b"")
            .commit()?;
        match outcome {
            BatchResult::Committed => Ok(()),
            BatchResult::PreconditionFailed(_) => Err(PluginError::conflict(format!(
                "audit entry {} already exists",
                entry.id
            ))),
        }
    }

    /// Deletes up to `max` entries older than the retention period.
    fn prune(&self, max: usize) -> Result<usize, PluginError> {
        let days = self.retention_days.load(Ordering::Relaxed).max(1);
        let cutoff = self
            .host
            .now_unix_ms()
            .saturating_sub(days.saturating_mul(DAY_MS));
        if cutoff <= 0 {
            return Ok(0);
        }
        let store = self.store();
        let end = entry_key(&time_floor(cutoff));
        let mut removed = 0;
        while removed < max {
            let chunk = store.range(
                ENTRY_PREFIX.as_bytes(),
                Some(end.as_bytes()),
                (max - removed).min(SCAN_CHUNK),
            )?;
            if chunk.is_empty() {
                break;
            }
            let mut batch = store.batch();
            for (key, value) in &chunk {
                batch = batch.delete(key);
                if let Ok(entry) = serde_json::from_slice::<AuditEntry>(value) {
                    batch = batch.delete(actor_key(&entry)).delete(target_key(&entry));
                }
            }
            batch.commit()?;
            removed += chunk.len();
        }
        Ok(removed)
    }

    /// `list` (`audit.read`).
    fn list(&self, req: ListRequest, _: &CallContext) -> Result<ListResponse, PluginError> {
        let limit = match req.limit {
            None => 50,
            Some(n @ 1..=500) => n as usize,
            Some(_) => {
                return Err(PluginError::invalid_field(
                    "limit",
                    "limit must be between 1 and 500",
                ))
            }
        };
        if let (Some(from), Some(to)) = (req.from, req.to) {
            if from > to {
                return Err(PluginError::invalid_field(
                    "from",
                    "from must not be later than to",
                ));
            }
        }
        for (field, value) in [("actor", &req.actor), ("target", &req.target)] {
            if let Some(v) = value {
                if v.is_empty() || v.chars().count() > MAX_LABEL_CHARS || v.contains('\0') {
                    return Err(PluginError::invalid_field(
                        field,
                        format!("{field} must be 1 to {MAX_LABEL_CHARS} characters without NUL"),
                    ));
                }
            }
        }
        if let Some(o) = &req.outcome {
            if !["success", "failure", "denied"].contains(&o.as_str()) {
                return Err(PluginError::invalid_field(
                    "outcome",
                    "outcome must be one of success, failure, denied",
                ));
            }
        }
        if let Some(c) = &req.cursor {
            if !is_entry_id(c) {
                return Err(PluginError::invalid_field(
                    "cursor",
                    "not a cursor from a previous page",
                ));
            }
        }
        // The narrowest index: actor, else target, else the time-ordered entries.
        let (prefix, by_index) = match (&req.actor, &req.target) {
            (Some(actor), _) => (index_prefix(ACTOR_PREFIX, actor), true),
            (None, Some(target)) => (index_prefix(TARGET_PREFIX, target), true),
            (None, None) => (ENTRY_PREFIX.to_string(), false),
        };
        let lower = format!("{prefix}{}", time_floor(req.from.unwrap_or(0)));
        let mut upper = match req.to {
            Some(to) if to < i64::MAX => format!("{prefix}{}", time_floor(to.saturating_add(1))),
            _ => format!("{prefix}g"),
        };
        if let Some(cursor) = &req.cursor {
            upper = upper.min(format!("{prefix}{cursor}"));
        }
        let store = self.store();
        let mut items = Vec::new();
        let mut more = false;
        let mut upper = upper.into_bytes();
        'scan: loop {
            let chunk = store.range_rev(lower.as_bytes(), Some(&upper), SCAN_CHUNK)?;
            let got = chunk.len();
            for (key, value) in chunk {
                let entry: Option<AuditEntry> = if by_index {
                    let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                    store.get_json(entry_key(&id))?
                } else {
                    serde_json::from_slice(&value).ok()
                };
                upper = key;
                let Some(entry) = entry else { continue };
                if !matches(&req, &entry) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break 'scan;
                }
                items.push(entry);
            }
            if got < SCAN_CHUNK {
                break;
            }
        }
        let next_cursor = if more {
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(ListResponse { items, next_cursor })
    }
}

fn matches(req: &ListRequest, e: &AuditEntry) -> bool {
    req.actor.as_ref().is_none_or(|a| *a == e.actor)
        && req.target.as_ref().is_none_or(|t| *t == e.target)
        && req
            .action
            .as_ref()
            .is_none_or(|p| e.action.starts_with(p.as_str()))
        && req.outcome.as_ref().is_none_or(|o| *o == e.outcome)
}

fn actor_key(e: &AuditEntry) -> String {
    format!("{}{}", index_prefix(ACTOR_PREFIX, &e.actor), e.id)
}

fn target_key(e: &AuditEntry) -> String {
    format!("{}{}", index_prefix(TARGET_PREFIX, &e.target), e.id)
}

/// The `audit` settings section: defaults and schema.
pub fn settings_section() -> serde_json::Value {
    json!({
        "defaults": { "retention_days": DEFAULT_RETENTION_DAYS },
        "schema": {
            "type": "object",
            "title": "Audit trail",
            "properties": {
                "retention_days": {
                    "type": "integer",
                    "title": "Retention (days)",
                    "description": "Entries older than this are deleted.",
                    "minimum": 1,
                    "maximum": 3650,
                }
            },
            "required": ["retention_days"],
        }
    })
}

fn register_settings_section(host: &Host) -> Result<(), PluginError> {
    let section = settings_section();
    let request = json!({
        "section": SETTINGS_SECTION,
        "defaults": section["defaults"],
        "schema": section["schema"],
    });
    let _: serde_json::Value = host.call("settings", "register", &request)?;
    Ok(())
}

export_plugin!(AuditSystem);
