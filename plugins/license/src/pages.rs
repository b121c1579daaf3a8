//! The admin-center page of the license system (`/ui/admin/licenses`).
//!
//! One page operation, `admin_licenses_page` (permission `license.read`):
//! the license list as two tabs — app licenses (enabled or not) and user
//! licenses with their seat usage — each with search and paging and a
//! "Create" dialog, and for `/ui/admin/licenses/<id>` the editor of that
//! license (details, enable/disable, seat limit, the assignees with
//! "Revoke", delete with confirmation). Every form calls an ordinary
//! license operation, which the host authorizes like an API call; forms the
//! caller could not use are not shown.

use syshost_plugin_api::view::{
    Block, ButtonStyle, Cell, Field, FieldKind, Form, Layout, Link, PageRequest, Pager, Row, Table,
    Tone, View, PAGE_SIZE,
};
use syshost_plugin_api::{codes, timefmt, CallContext, PluginError};

use crate::{AppLicense, AssigneesRequest, IdRequest, LicenseSystem, ListRequest, UserLicenseView};

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/licenses";

fn can(caller: &CallContext, permission: &str) -> bool {
    caller.subject.has_permission(permission)
}

/// "3 of 10 seats" / "3 seats (unlimited)".
fn seats_text(used: u64, max_users: u64) -> String {
    if max_users == 0 {
        format!("{used} used (unlimited)")
    } else {
        format!("{used} of {max_users} used")
    }
}

/// The badge of a user license's seat usage: full licenses are a warning.
fn seats_cell(used: u64, max_users: u64) -> Cell {
    let tone = if max_users != 0 && used >= max_users {
        Tone::Warning
    } else {
        Tone::Neutral
    };
    Cell::badge(seats_text(used, max_users), tone)
}

impl LicenseSystem {
    /// `admin_licenses_page` (permission `license.read`): the license
    /// lists, or the editor of the license named by the rest of the path.
    pub(crate) fn admin_licenses_page(
        &self,
        req: PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        if req.rest.is_empty() {
            self.licenses_list_view(&req, caller)
        } else {
            self.license_editor_view(&req, caller)
        }
    }

    fn licenses_list_view(
        &self,
        req: &PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let user_tab = req.param("kind") == Some("user");
        let search = req.param("search").unwrap_or("").to_string();
        let requested = req.page_number();
        let list_req = |offset: u64| ListRequest {
            search: Some(search.clone()),
            offset,
            limit: PAGE_SIZE,
        };
        let mut view = View::new("Licenses")
            .subtitle("App licenses switch features on; user licenses are seats assigned to users.")
            .layout(Layout::Wide)
            .push(Block::tabs([
                ("App licenses", format!("/ui/{PATH}"), !user_tab),
                ("User licenses", format!("/ui/{PATH}?kind=user"), user_tab),
            ]));
        let manage = can(caller, "license.manage");
        if user_tab {
            if manage {
                let form = Form::new("create-user-license", "license.create_user_license")
                    .field(Field::text("name", "Name").required())
                    .field(Field::new(
                        FieldKind::Textarea,
                        "description",
                        "Description",
                    ))
                    .field(
                        Field::new(FieldKind::Number, "max_users", "Seats")
                            .value(0)
                            .required()
                            .help("How many users may hold it; 0 = unlimited."),
                    )
                    .submit("Create user license")
                    .next(format!("/ui/{PATH}/{{id}}"))
                    .success("User license created.");
                view = view.push(Block::details(
                    "Create user license",
                    false,
                    vec![form.into()],
                ));
            }
            let mut page =
                self.list_user_licenses(list_req((requested - 1) * PAGE_SIZE), caller)?;
            let pager = Pager::new(requested, PAGE_SIZE, page.total);
            if pager.page != requested {
                page = self.list_user_licenses(list_req(pager.offset(PAGE_SIZE)), caller)?;
            }
            let mut table = Table::new(["Name", "Description", "Seats"])
                .id("user-licenses")
                .empty("No user licenses match.")
                .search(search, "Search user licenses")
                .pager(pager);
            for l in &page.items {
                table = table.row(
                    Row::new([
                        Cell::new(l.license.name.clone()),
                        Cell {
                            muted: true,
                            ..Cell::new(l.license.description.clone())
                        },
                        seats_cell(l.used, l.license.max_users),
                    ])
                    .href(format!("/ui/{PATH}/{}", l.license.id)),
                );
            }
            view = view.push(table);
        } else {
            if manage {
                let form = Form::new("create-app-license", "license.create_app_license")
                    .field(Field::text("name", "Name").required())
                    .field(Field::new(
                        FieldKind::Textarea,
                        "description",
                        "Description",
                    ))
                    .field(Field::text("url", "Link").placeholder("https://…"))
                    .field(Field::checkbox("enabled", "Enabled", false))
                    .submit("Create app license")
                    .next(format!("/ui/{PATH}/{{id}}"))
                    .success("App license created.");
                view = view.push(Block::details(
                    "Create app license",
                    false,
                    vec![form.into()],
                ));
            }
            let mut page = self.list_app_licenses(list_req((requested - 1) * PAGE_SIZE), caller)?;
            let pager = Pager::new(requested, PAGE_SIZE, page.total);
            if pager.page != requested {
                page = self.list_app_licenses(list_req(pager.offset(PAGE_SIZE)), caller)?;
            }
            let mut table = Table::new(["Name", "Description", "State"])
                .id("app-licenses")
                .empty("No app licenses match.")
                .search(search, "Search app licenses")
                .pager(pager);
            for l in &page.items {
                let state = if l.enabled {
                    Cell::badge("enabled", Tone::Success)
                } else {
                    Cell::badge("disabled", Tone::Neutral)
                };
                let mut row = Row::new([
                    Cell::new(l.name.clone()),
                    Cell {
                        muted: true,
                        ..Cell::new(l.description.clone())
                    },
                    state,
                ])
                .href(format!("/ui/{PATH}/{}", l.id));
                if manage {
                    row = row.action(enable_button(l, "list"));
                }
                table = table.row(row);
            }
            view = view.push(table);
        }
        Ok(view)
    }

    fn license_editor_view(
        &self,
        req: &PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let id = req.rest.clone();
        match self.get_app_license(IdRequest { id: id.clone() }, caller) {
            Ok(app) => return Ok(app_editor(&app, caller)),
            Err(e) if e.code == codes::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        let license = self.get_user_license(IdRequest { id: id.clone() }, caller)?;
        self.user_license_editor(&license, req, caller)
    }

    fn user_license_editor(
        &self,
        view_of: &UserLicenseView,
        req: &PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let l = &view_of.license;
        let mut view = View::new(l.name.clone())
            .subtitle(format!("User license {}", l.id))
            .breadcrumb("Licenses", format!("/ui/{PATH}?kind=user"))
            .push(Block::key_values([
                ("Id", l.id.clone()),
                ("Seats", seats_text(view_of.used, l.max_users)),
                ("Created", timefmt::utc(l.created_at)),
                ("Last change", timefmt::utc(l.updated_at)),
            ]));
        let manage = can(caller, "license.manage");
        if manage {
            view = view.push(Block::section(
                "Details",
                vec![
                    Form::new("user-license-details", "license.update_user_license")
                        .hidden("id", l.id.clone())
                        .field(Field::text("name", "Name").value(l.name.clone()).required())
                        .field(
                            Field::new(FieldKind::Textarea, "description", "Description")
                                .value(l.description.clone()),
                        )
                        .field(
                            Field::new(FieldKind::Number, "max_users", "Seats")
                                .value(l.max_users)
                                .required()
                                .help("0 = unlimited; never below the seats in use."),
                        )
                        .submit("Save")
                        .success("License saved.")
                        .into(),
                ],
            ));
        } else {
            view = view.push(Block::section(
                "Details",
                vec![Block::key_values([
                    ("Name", l.name.clone()),
                    ("Description", l.description.clone()),
                ])],
            ));
        }

        // Assignees, paged; revoking needs license.assign.
        let requested = req.page_number();
        let assignees_req = |offset: u64| AssigneesRequest {
            license_id: l.id.clone(),
            offset,
            limit: PAGE_SIZE,
        };
        let mut page = self.assignees(assignees_req((requested - 1) * PAGE_SIZE), caller)?;
        let pager = Pager::new(requested, PAGE_SIZE, page.total);
        if pager.page != requested {
            page = self.assignees(assignees_req(pager.offset(PAGE_SIZE)), caller)?;
        }
        let assign = can(caller, "license.assign");
        let mut table = Table::new(["User"])
            .id("assignees")
            .empty("Nobody holds this license. Assign it in a user's Licenses tab.")
            .pager(pager);
        for user_id in &page.items {
            let mut row = Row::new([Cell::link(
                user_id.clone(),
                format!("/ui/admin/users/{user_id}?tab=licenses"),
            )]);
            if assign {
                row = row.action(
                    Form::button(format!("revoke-{user_id}"), "license.revoke", "Revoke")
                        .hidden("license_id", l.id.clone())
                        .hidden("user_id", user_id.clone())
                        .confirm("Revoke this user's seat?")
                        .success("Seat revoked."),
                );
            }
            table = table.row(row);
        }
        view = view.push(Block::section("Assigned to", vec![table.into()]));

        if manage {
            view = view.push(delete_block(
                "delete-user-license",
                "license.delete_user_license",
                &l.id,
                &l.name,
                "Every assignment of this license ends. This cannot be undone.",
                "/ui/admin/licenses?kind=user",
            ));
        }
        Ok(view)
    }
}

/// The enable/disable button of an app license (`place` keeps form ids unique).
fn enable_button(l: &AppLicense, place: &str) -> Form {
    let (label, enabled) = if l.enabled {
        ("Disable", false)
    } else {
        ("Enable", true)
    };
    Form::button(
        format!("{place}-enable-{}", l.id),
        "license.set_app_license_enabled",
        label,
    )
    .hidden("id", l.id.clone())
    .hidden("enabled", enabled)
    .success(if enabled {
        "License enabled."
    } else {
        "License disabled."
    })
}

/// A "Delete …" disclosure with a warning and a danger button.
fn delete_block(
    form_id: &str,
    action: &str,
    id: &str,
    name: &str,
    warning: &str,
    next: &str,
) -> Block {
    Block::details(
        "Delete this license",
        false,
        vec![
            Block::notice(Tone::Warning, warning),
            Form::new(form_id, action)
                .hidden("id", id.to_string())
                .submit("Delete license")
                .style(ButtonStyle::Danger)
                .confirm(format!("Delete the license '{name}'?"))
                .next(next.to_string())
                .success("License deleted.")
                .into(),
        ],
    )
}

fn app_editor(l: &AppLicense, caller: &CallContext) -> View {
    let mut view = View::new(l.name.clone())
        .subtitle(format!("App license {}", l.id))
        .breadcrumb("Licenses", format!("/ui/{PATH}"))
        .push(Block::key_values([
            ("Id", l.id.clone()),
            (
                "State",
                if l.enabled { "enabled" } else { "disabled" }.to_string(),
            ),
            ("Created", timefmt::utc(l.created_at)),
            ("Last change", timefmt::utc(l.updated_at)),
        ]));
    if !l.url.is_empty() {
        view = view.push(Block::links(vec![Link::new(
            "More information",
            l.url.clone(),
        )]));
    }
    if can(caller, "license.manage") {
        view = view
            .push(enable_button(l, "editor"))
            .push(Block::section(
                "Details",
                vec![Form::new("app-license-details", "license.update_app_license")
                    .hidden("id", l.id.clone())
                    .field(Field::text("name", "Name").value(l.name.clone()).required())
                    .field(
                        Field::new(FieldKind::Textarea, "description", "Description")
                            .value(l.description.clone()),
                    )
                    .field(
                        Field::text("url", "Link")
                            .value(l.url.clone())
                            .placeholder("https://…"),
                    )
                    .submit("Save")
                    .success("License saved.")
                    .into()],
            ))
            .push(delete_block(
                "delete-app-license",
                "license.delete_app_license",
                &l.id,
                &l.name,
                "The feature this license switches on is no longer licensed. This cannot be undone.",
                "/ui/admin/licenses",
            ));
    } else {
        view = view.push(Block::section(
            "Details",
            vec![Block::key_values([
                ("Name", l.name.clone()),
                ("Description", l.description.clone()),
            ])],
        ));
    }
    view
}
