//! The admin-center page of the audit system (`/ui/admin/audit`): the
//! audit trail, newest first, filterable by outcome (tabs), action prefix
//! (search box), actor and target (links in the table), paged by cursor.

use syshost_plugin_api::view::{Block, Cell, Layout, Link, PageRequest, Row, Table, Tone, View};
use syshost_plugin_api::{CallContext, PluginError};

use crate::{AuditSystem, ListRequest};

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/audit";

/// `/ui/admin/audit` with the given filters (empty values left out).
fn href(filters: &[(&str, &str)]) -> String {
    let query: Vec<String> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if query.is_empty() {
        format!("/ui/{PATH}")
    } else {
        format!("/ui/{PATH}?{}", query.join("&"))
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2026-11-28 03:14:15 UTC` for ms since the Unix epoch.
fn when(ms: i64) -> String {
    syshost_plugin_api::timefmt::utc(ms)
}

impl AuditSystem {
    /// `admin_audit_page` (permission `audit.read`).
    pub(crate) fn admin_audit_page(
        &self,
        req: PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let actor = req.param("actor").unwrap_or("").to_string();
        let target = req.param("target").unwrap_or("").to_string();
        let action = req.param("search").unwrap_or("").to_string();
        let outcome = req.param("outcome").unwrap_or("").to_string();
        let outcome = if ["success", "failure", "denied"].contains(&outcome.as_str()) {
            outcome
        } else {
            String::new()
        };
        let cursor = req.param("cursor").map(str::to_string);
        let filters = [
            ("actor", actor.as_str()),
            ("target", target.as_str()),
            ("search", action.as_str()),
            ("outcome", outcome.as_str()),
        ];
        let mut view = View::new("Audit trail")
            .subtitle(
                "Security-relevant events, newest first: who did what to whom, and how it ended.",
            )
            .breadcrumb("Admin center", "/ui/admin")
            .layout(Layout::Wide);
        let tabs: Vec<(String, String, bool)> = [
            ("", "All"),
            ("failure", "Failures"),
            ("denied", "Denied"),
            ("success", "Successes"),
        ]
        .iter()
        .map(|(o, label)| {
            let mut f = filters;
            f[3] = ("outcome", o);
            (label.to_string(), href(&f), *o == outcome)
        })
        .collect();
        view = view.push(Block::tabs(tabs));
        if !actor.is_empty() || !target.is_empty() {
            let mut parts = Vec::new();
            if !actor.is_empty() {
                parts.push(format!("actor {actor}"));
            }
            if !target.is_empty() {
                parts.push(format!("target {target}"));
            }
            view = view.push(Block::notice(
                Tone::Info,
                format!("Showing only entries with {}.", parts.join(" and ")),
            ));
            view = view.push(Block::links(vec![Link::new(
                "Show all entries",
                href(&[("search", &action), ("outcome", &outcome)]),
            )]));
        }
        let page = self.list(
            ListRequest {
                actor: (!actor.is_empty()).then(|| actor.clone()),
                target: (!target.is_empty()).then(|| target.clone()),
                action: (!action.is_empty()).then(|| action.clone()),
                outcome: (!outcome.is_empty()).then(|| outcome.clone()),
                limit: Some(50),
                cursor,
                ..Default::default()
            },
            caller,
        );
        let page = match page {
            Ok(p) => p,
            Err(e) if e.is(syshost_plugin_api::codes::INVALID_INPUT) => {
                return Ok(view.push(Block::notice(Tone::Danger, e.message)));
            }
            Err(e) => return Err(e),
        };
        let mut table = Table::new([
            "Time (UTC)",
            "Action",
            "Outcome",
            "Actor",
            "Target",
            "Client",
            "Details",
        ])
        .id("audit")
        .search(action.clone(), "Action starts with… (e.g. session.)")
        .empty("No entries match.");
        for e in &page.items {
            let tone = match e.outcome.as_str() {
                "success" => Tone::Success,
                "denied" => Tone::Warning,
                _ => Tone::Danger,
            };
            let details = e.details.to_string();
            let details: String = details.chars().take(160).collect();
            table = table.row(Row::new([
                Cell::new(when(e.at)),
                Cell::new(e.action.clone()),
                Cell::badge(e.outcome.clone(), tone),
                Cell::link(
                    e.actor.clone(),
                    href(&[("actor", &e.actor), ("outcome", &outcome)]),
                ),
                Cell::link(
                    e.target.clone(),
                    href(&[("target", &e.target), ("outcome", &outcome)]),
                ),
                Cell::new(e.client_addr.clone().unwrap_or_default()),
                Cell {
                    text: details,
                    muted: true,
                    ..Default::default()
                },
            ]));
        }
        view = view.push(table);
        if let Some(next) = page.next_cursor {
            let mut f: Vec<(&str, &str)> = filters.to_vec();
            f.push(("cursor", &next));
            view = view.push(Block::links(vec![Link::new("Older entries", href(&f))]));
        }
        Ok(view)
    }
}
