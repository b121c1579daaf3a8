//! The admin-center pages of the group system (`/ui/admin/groups`).
//!
//! One page operation, `admin_groups_page` (permission `group.read`),
//! renders the group list (search, paging, "Create group") and, for
//! `/ui/admin/groups/<id>`, the group editor (name, description, delete
//! with confirmation, a link to the members in the user table). Every form
//! calls an ordinary group operation, which the host authorizes like an API
//! call; forms the caller could not use are not shown.

use syshost_plugin_api::view::{
    Block, ButtonStyle, Cell, Field, FieldKind, Form, Layout, Link, PageRequest, Pager, Row, Table,
    Tone, View, PAGE_SIZE,
};
use syshost_plugin_api::{timefmt, CallContext, PluginError};

use crate::{GroupSystem, IdRequest, ListRequest};

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/groups";

fn can(caller: &CallContext, permission: &str) -> bool {
    caller.subject.has_permission(permission)
}

impl GroupSystem {
    /// `admin_groups_page` (permission `group.read`): the group list, or
    /// the editor of the group named by the rest of the path.
    pub(crate) fn admin_groups_page(
        &self,
        req: PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        if req.rest.is_empty() {
            self.groups_list_view(&req, caller)
        } else {
            self.group_editor_view(&req.rest, caller)
        }
    }

    fn groups_list_view(
        &self,
        req: &PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let search = req.param("search").unwrap_or("").to_string();
        let requested = req.page_number();
        let list = |offset: u64| {
            self.list(
                ListRequest {
                    search: Some(search.clone()),
                    offset,
                    limit: PAGE_SIZE,
                },
                caller,
            )
        };
        let mut page = list((requested - 1) * PAGE_SIZE)?;
        let pager = Pager::new(requested, PAGE_SIZE, page.total);
        if pager.page != requested {
            page = list(pager.offset(PAGE_SIZE))?;
        }
        let mut view = View::new("Groups")
            .subtitle("Groups organise users independently of their roles.")
            .layout(Layout::Wide);
        if can(caller, "group.create") {
            let form = Form::new("create-group", "group.create")
                .field(Field::text("name", "Name").required())
                .field(Field::new(
                    FieldKind::Textarea,
                    "description",
                    "Description",
                ))
                .submit("Create group")
                .next(format!("/ui/{PATH}/{{id}}"))
                .success("Group created.");
            view = view.push(Block::details("Create group", false, vec![form.into()]));
        }
        let mut table = Table::new(["Name", "Description", "Kind"])
            .id("groups")
            .empty("No groups match.")
            .search(search, "Search groups")
            .pager(pager);
        for group in &page.items {
            let kind = if group.builtin {
                Cell::badge("built-in", Tone::Info)
            } else {
                Cell::new("")
            };
            table = table.row(
                Row::new([
                    Cell::new(group.name.clone()),
                    Cell {
                        muted: true,
                        ..Cell::new(group.description.clone())
                    },
                    kind,
                ])
                .href(format!("/ui/{PATH}/{}", group.id)),
            );
        }
        Ok(view.push(table))
    }

    fn group_editor_view(&self, id: &str, caller: &CallContext) -> Result<View, PluginError> {
        let group = self.get(IdRequest { id: id.to_string() }, caller)?;
        let mut view = View::new(group.name.clone())
            .subtitle(format!("Group {}", group.id))
            .breadcrumb("Groups", format!("/ui/{PATH}"));
        if group.builtin {
            view = view.push(Block::notice(
                Tone::Info,
                "The built-in system group can be renamed but not deleted.",
            ));
        }
        view = view
            .push(Block::key_values([
                ("Id", group.id.clone()),
                ("Created", timefmt::utc(group.created_at)),
                ("Last change", timefmt::utc(group.updated_at)),
            ]))
            .push(Block::links(vec![Link::new(
                "Show members",
                format!("/ui/admin/users?group={}", group.id),
            )]));
        if can(caller, "group.update") {
            view = view.push(Block::section(
                "Details",
                vec![Form::new("group-details", "group.update")
                    .hidden("id", group.id.clone())
                    .field(
                        Field::text("name", "Name")
                            .value(group.name.clone())
                            .required(),
                    )
                    .field(
                        Field::new(FieldKind::Textarea, "description", "Description")
                            .value(group.description.clone()),
                    )
                    .submit("Save")
                    .success("Group saved.")
                    .into()],
            ));
        } else {
            view = view.push(Block::section(
                "Details",
                vec![Block::key_values([
                    ("Name", group.name.clone()),
                    ("Description", group.description.clone()),
                ])],
            ));
        }
        if can(caller, "group.delete") && !group.builtin {
            let form = Form::new("delete-group", "group.delete")
                .hidden("id", group.id.clone())
                .submit("Delete group")
                .style(ButtonStyle::Danger)
                .confirm(format!("Delete the group '{}'?", group.name))
                .next(format!("/ui/{PATH}"))
                .success("Group deleted.");
            view = view.push(Block::details(
                "Delete this group",
                false,
                vec![
                    Block::notice(
                        Tone::Warning,
                        "Every member leaves the group. This cannot be undone.",
                    ),
                    form.into(),
                ],
            ));
        }
        Ok(view)
    }
}
