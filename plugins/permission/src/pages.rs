//! The admin-center page of the permission system (`/ui/admin/permissions`):
//! a read-only, searchable list of every declared permission, grouped by
//! the system that declares it. Permissions are defined in code, so the
//! page offers nothing to edit.

use syshost_plugin_api::view::{Block, Cell, Layout, PageRequest, Row, Table, View};
use syshost_plugin_api::{CallContext, PluginError};

use crate::{ListRequest, PermissionInfo, PermissionSystem};

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/permissions";

impl PermissionSystem {
    /// `admin_permissions_page` (permission `permission.read`): every
    /// permission matching the `search` parameter, one table per system.
    pub(crate) fn admin_permissions_page(
        &self,
        req: PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let search = req.param("search").unwrap_or("").to_string();
        let mut all: Vec<PermissionInfo> = Vec::new();
        loop {
            let page = self.list(
                ListRequest {
                    plugin: None,
                    search: Some(search.clone()),
                    offset: all.len() as u64,
                    limit: Some(500),
                },
                caller,
            )?;
            let done = page.items.is_empty() || all.len() + page.items.len() >= page.total;
            all.extend(page.items);
            if done {
                break;
            }
        }
        all.sort_by(|a, b| (&a.plugin, &a.id).cmp(&(&b.plugin, &b.id)));
        let mut view = View::new("Permissions")
            .subtitle(
                "Every permission the active systems declare. They are defined in code: grant them through roles or directly to users.",
            )
            .layout(Layout::Wide);
        // The search box sits on the first table; an empty result still shows it.
        let mut first = true;
        let mut groups: Vec<(String, Vec<PermissionInfo>)> = Vec::new();
        for p in all {
            match groups.last_mut() {
                Some((plugin, items)) if *plugin == p.plugin => items.push(p),
                _ => groups.push((p.plugin.clone(), vec![p])),
            }
        }
        if groups.is_empty() {
            return Ok(view.push(
                Table::new(["Permission", "Name", "Description"])
                    .id("permissions")
                    .search(search, "Search permissions")
                    .empty("No permission matches."),
            ));
        }
        for (plugin, items) in groups {
            let mut table = Table::new(["Permission", "Name", "Description"])
                .id(format!("permissions-{plugin}"));
            if first {
                table = table.search(search.clone(), "Search permissions");
                first = false;
            }
            for p in items {
                table = table.row(Row::new([
                    Cell::new(p.id),
                    Cell::new(p.name),
                    Cell {
                        muted: true,
                        ..Cell::new(p.description)
                    },
                ]));
            }
            view = view.push(Block::section(
                format!("System: {plugin}"),
                vec![table.into()],
            ));
        }
        Ok(view)
    }
}
