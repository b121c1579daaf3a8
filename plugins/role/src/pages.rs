//! The admin-center pages of the role system (`/ui/admin/roles`).
//!
//! One page operation, `admin_roles_page` (permission `role.read`), renders
//! the role list (search, paging, "Create role") and, for
//! `/ui/admin/roles/<id>`, the role editor (name and description, the
//! permission picker with search and select-all, delete with confirmation).
//! Every form calls an ordinary role operation, which the host authorizes
//! like an API call; forms the caller could not use are not shown at all.

use syshost_plugin_api::view::{
    Block, ButtonStyle, Cell, Choice, Field, Form, Layout, PageRequest, Pager, Row, Table, Tone,
    View, PAGE_SIZE,
};
use syshost_plugin_api::{timefmt, CallContext, NoInput, PluginError};

use crate::model::{IdRequest, ListRequest, Role};
use crate::RoleSystem;

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/roles";

/// One entry of the host's permission registry, as the picker shows it.
#[derive(serde::Deserialize)]
struct PermissionEntry {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    plugin: String,
}

fn can(caller: &CallContext, permission: &str) -> bool {
    caller.subject.has_permission(permission)
}

impl RoleSystem {
    /// `admin_roles_page` (permission `role.read`): the role list, or the
    /// editor of the role named by the rest of the path.
    pub(crate) fn admin_roles_page(
        &self,
        req: PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        if req.rest.is_empty() {
            self.roles_list_view(&req, caller)
        } else {
            self.role_editor_view(&req.rest, caller)
        }
    }

    /// Every declared permission as a grouped, described choice.
    fn permission_choices(&self) -> Result<Vec<Choice>, PluginError> {
        let mut registry: Vec<PermissionEntry> = self.host.service("permissions", &NoInput {})?;
        registry.sort_by(|a, b| (&a.plugin, &a.id).cmp(&(&b.plugin, &b.id)));
        Ok(registry
            .into_iter()
            .map(|p| {
                Choice::new(p.id.clone(), format!("{} ({})", p.name, p.id))
                    .describe(p.description)
                    .group(p.plugin)
            })
            .collect())
    }

    fn roles_list_view(
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
                    limit: Some(PAGE_SIZE),
                },
                caller,
            )
        };
        let mut page = list((requested - 1) * PAGE_SIZE)?;
        let pager = Pager::new(requested, PAGE_SIZE, page.total);
        if pager.page != requested {
            page = list(pager.offset(PAGE_SIZE))?;
        }
        let mut view = View::new("Roles")
            .subtitle("Roles bundle permissions; users hold roles.")
            .layout(Layout::Wide);
        if can(caller, "role.create") {
            let form = Form::new("create-role", "role.create")
                .field(Field::text("name", "Name").required())
                .field(Field::new(
                    syshost_plugin_api::view::FieldKind::Textarea,
                    "description",
                    "Description",
                ))
                .field(
                    Field::checkboxes(
                        "permissions",
                        "Permissions",
                        self.permission_choices()?,
                        &[],
                    )
                    .searchable(),
                )
                .submit("Create role")
                .next(format!("/ui/{PATH}/{{id}}"))
                .success("Role created.");
            view = view.push(Block::details("Create role", false, vec![form.into()]));
        }
        let mut table = Table::new(["Name", "Description", "Permissions", "Kind"])
            .id("roles")
            .empty("No roles match.")
            .search(search, "Search roles")
            .pager(pager);
        for role in &page.items {
            let count = if role.builtin {
                "all".to_string()
            } else {
                role.permissions.len().to_string()
            };
            let kind = if role.builtin {
                Cell::badge("built-in", Tone::Info)
            } else {
                Cell::new("")
            };
            table = table.row(
                Row::new([
                    Cell::new(role.name.clone()),
                    Cell {
                        muted: true,
                        ..Cell::new(role.description.clone())
                    },
                    Cell::new(count),
                    kind,
                ])
                .href(format!("/ui/{PATH}/{}", role.id)),
            );
        }
        Ok(view.push(table))
    }

    fn role_editor_view(&self, id: &str, caller: &CallContext) -> Result<View, PluginError> {
        let role: Role = self.get(IdRequest { id: id.to_string() }, caller)?;
        let mut view = View::new(role.name.clone())
            .subtitle(format!("Role {}", role.id))
            .breadcrumb("Roles", format!("/ui/{PATH}"));
        if role.builtin {
            view = view.push(Block::notice(
                Tone::Info,
                "The built-in administrator role always holds every permission of every active system. It can be renamed but not deleted.",
            ));
        }
        view = view.push(Block::key_values([
            ("Id", role.id.clone()),
            ("Created", timefmt::utc(role.created_at)),
            ("Last change", timefmt::utc(role.updated_at)),
        ]));

        // Name and description.
        if can(caller, "role.update") {
            view = view.push(Block::section(
                "Details",
                vec![Form::new("role-details", "role.update")
                    .hidden("id", role.id.clone())
                    .field(
                        Field::text("name", "Name")
                            .value(role.name.clone())
                            .required(),
                    )
                    .field(
                        Field::new(
                            syshost_plugin_api::view::FieldKind::Textarea,
                            "description",
                            "Description",
                        )
                        .value(role.description.clone()),
                    )
                    .submit("Save details")
                    .success("Role saved.")
                    .into()],
            ));
        } else {
            view = view.push(Block::section(
                "Details",
                vec![Block::key_values([
                    ("Name", role.name.clone()),
                    ("Description", role.description.clone()),
                ])],
            ));
        }

        // Permissions.
        let choices = self.permission_choices()?;
        if can(caller, "role.set_permissions") && !role.builtin {
            view = view.push(Block::section(
                "Permissions",
                vec![Form::new("role-permissions", "role.set_permissions")
                    .hidden("id", role.id.clone())
                    .field(
                        Field::checkboxes("permissions", "Permissions", choices, &role.permissions)
                            .searchable()
                            .help("Users holding this role get every ticked permission."),
                    )
                    .submit("Save permissions")
                    .success("Permissions saved.")
                    .into()],
            ));
        } else {
            let mut table = Table::new(["Permission", "Name", "System"])
                .id("role-permissions")
                .empty("This role grants no permissions.");
            for choice in choices
                .into_iter()
                .filter(|c| role.permissions.contains(&c.value))
            {
                table = table.row(Row::new([
                    Cell::new(choice.value.clone()),
                    Cell::new(choice.label.clone()),
                    Cell::new(choice.group.clone()),
                ]));
            }
            view = view.push(Block::section("Permissions", vec![table.into()]));
        }

        // Delete, behind a confirmation step.
        if can(caller, "role.delete") && !role.builtin {
            let form = Form::new("delete-role", "role.delete")
                .hidden("id", role.id.clone())
                .submit("Delete role")
                .style(ButtonStyle::Danger)
                .confirm(format!("Delete the role '{}'?", role.name))
                .next(format!("/ui/{PATH}"))
                .success("Role deleted.");
            view = view.push(Block::details(
                "Delete this role",
                false,
                vec![
                    Block::notice(
                        Tone::Warning,
                        "Every user loses this role and the permissions it grants. This cannot be undone.",
                    ),
                    form.into(),
                ],
            ));
        }
        Ok(view)
    }
}
