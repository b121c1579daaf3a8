//! The admin-center pages of User Management (`/ui/admin/users`).
//!
//! One page operation, `admin_users_page` (permission `user.read`):
//!
//! * `/ui/admin/users`: the user table — search, status filter, paging (50
//!   a page), bulk select with "Enable", "Disable", "Delete" and "Export"
//!   (CSV / JSON download), and the "Add user" dialog. Role and group
//!   filters come from the `role` / `group` query parameters (the group
//!   editor links its members that way).
//! * `/ui/admin/users/<id>?tab=…`: the user editor with the tabs Contact
//!   (profile, avatar), Roles, Groups, Permissions (direct grants, and the
//!   effective set), Consents (history), Licenses (assign / revoke with seat
//!   usage) and Other (status, verification, forced password change, set
//!   password, change email, sessions, delete).
//!
//! Every form calls an ordinary operation — of this system, or of the role,
//! group, license and session systems — which the host authorizes exactly
//! like an API call. Forms the caller could not use are not shown, and data
//! of other systems is read **on behalf of the caller**, so a page never
//! shows what the caller could not read through the API.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::view::{
    Block, BulkAction, ButtonStyle, Cell, Choice, Download, Field, FieldKind, Form, Image, Layout,
    PageRequest, Pager, PasswordRules, Row, Table, Tone, View, PAGE_SIZE,
};
use syshost_plugin_api::{
    codes, timefmt, Access, CallContext, Manifest, NoInput, Operations, PluginError,
};

use super::{language_choices, PROFILE_FIELDS};
use crate::admin::{self, check_id};
use crate::avatar;
use crate::model::{
    latest_consent, Ctx, IdRequest, ListRequest, SortKey, SortOrder, Status, StatusFilter, User,
};
use crate::UserSystem;

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/users";

/// The editor's tabs: `(query value, label)`.
const TABS: [(&str, &str); 7] = [
    ("contact", "Contact"),
    ("roles", "Roles"),
    ("groups", "Groups"),
    ("permissions", "Permissions"),
    ("consents", "Consents"),
    ("licenses", "Licenses"),
    ("other", "Other"),
];

/// Adds the admin page (with its admin-center card) to the manifest.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest.page(
        PageDecl::new(PATH, "Users", "admin_users_page")
            .area(Area::Admin)
            .card(
                "Users",
                "Manage the accounts: contact data, roles, groups and permissions, licenses, status and sessions.",
                Some("user.read"),
            )
            .nav()
            .order(10),
    )
}

/// Adds the admin page operation.
pub fn operations(ops: Operations<UserSystem>) -> Operations<UserSystem> {
    ops.page(
        "admin_users_page",
        Access::permission("user.read"),
        "Admin page: the user table, or one user's editor (tab from the `tab` parameter).",
        |s: &UserSystem, req, caller: &CallContext| admin_users_page(&s.ctx, req, caller),
    )
}

fn can(caller: &CallContext, permission: &str) -> bool {
    caller.subject.has_permission(permission)
}

/// Calls another system on behalf of the caller; `None` when the caller may
/// not (or the system is not active), so the page leaves that part out.
fn read_on_behalf<T: DeserializeOwned>(
    ctx: &Ctx,
    target: &str,
    operation: &str,
    request: &Value,
) -> Result<Option<T>, PluginError> {
    match ctx.host.call_on_behalf(target, operation, request) {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.code.as_str(),
                codes::PERMISSION_DENIED
                    | codes::UNAUTHENTICATED
                    | codes::UNAVAILABLE
                    | codes::CALL_REFUSED
                    | codes::UNKNOWN_OPERATION
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A role or group as the pickers need it.
#[derive(Debug, Deserialize)]
struct Named {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
}

/// A page of roles or groups.
#[derive(Debug, Deserialize)]
struct NamedPage {
    items: Vec<Named>,
}

/// One entry of the host's permission registry.
#[derive(Debug, Deserialize)]
struct PermissionEntry {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    plugin: String,
}

/// A user license with its seat usage (`license.list_user_licenses`).
#[derive(Debug, Deserialize)]
struct LicenseEntry {
    id: String,
    name: String,
    max_users: u64,
    used: u64,
}

/// A page of user licenses.
#[derive(Debug, Deserialize)]
struct LicensePage {
    items: Vec<LicenseEntry>,
}

/// A session as `session.list_for_user` shows it.
#[derive(Debug, Deserialize)]
struct SessionEntry {
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    #[serde(default)]
    client_addr: Option<String>,
    #[serde(default)]
    current: bool,
}

/// The sessions of a user.
#[derive(Debug, Deserialize)]
struct SessionPage {
    items: Vec<SessionEntry>,
}

/// Status text and badge tone of a user.
fn status_badge(user: &User) -> (String, Tone) {
    match user.status {
        Status::Disabled => ("Disabled".to_string(), Tone::Danger),
        Status::EnabledUntil { until } if !user.active => {
            (format!("Expired {}", timefmt::utc(until)), Tone::Warning)
        }
        Status::EnabledUntil { until } => (
            format!("Active until {}", timefmt::utc(until)),
            Tone::Success,
        ),
        Status::Enabled => ("Active".to_string(), Tone::Success),
    }
}

fn display_name(user: &User) -> String {
    user.profile.display_name(&user.email)
}

/// Password rules for the live feedback of new-password fields.
fn password_rules(ctx: &Ctx) -> Option<PasswordRules> {
    super::password_rules(ctx).ok()
}

/// `admin_users_page` (permission `user.read`): the user table, or the
/// editor of the user named by the rest of the path.
pub fn admin_users_page(
    ctx: &Ctx,
    req: PageRequest,
    caller: &CallContext,
) -> Result<View, PluginError> {
    if req.rest.is_empty() {
        list_view(ctx, &req, caller)
    } else {
        editor_view(ctx, &req, caller)
    }
}

// ---------------------------------------------------------------------------
// The user table
// ---------------------------------------------------------------------------

fn list_view(ctx: &Ctx, req: &PageRequest, caller: &CallContext) -> Result<View, PluginError> {
    let search = req.param("search").unwrap_or("").to_string();
    let status = match req.param("status") {
        Some("active") => Some(StatusFilter::Active),
        Some("disabled") => Some(StatusFilter::Disabled),
        Some("expired") => Some(StatusFilter::Expired),
        _ => None,
    };
    let role = req.param("role").map(str::to_string);
    let group = req.param("group").map(str::to_string);
    let requested = req.page_number();
    let list = |offset: u64| {
        admin::list(
            ctx,
            ListRequest {
                search: Some(search.clone()),
                status,
                role: role.clone(),
                group: group.clone(),
                sort: Some(SortKey::Email),
                order: Some(SortOrder::Asc),
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

    let mut view = View::new("Users")
        .subtitle("The accounts of the platform.")
        .layout(Layout::Wide);
    if can(caller, "user.create") {
        view = view.push(add_user_dialog(ctx));
    }
    let filter = req.param("status").unwrap_or("");
    let mut filter_tabs = Vec::new();
    for (value, label) in [
        ("", "All"),
        ("active", "Active"),
        ("disabled", "Disabled"),
        ("expired", "Expired"),
    ] {
        let href = if value.is_empty() {
            format!("/ui/{PATH}")
        } else {
            format!("/ui/{PATH}?status={value}")
        };
        filter_tabs.push((label, href, value == filter));
    }
    view = view.push(Block::tabs(filter_tabs));
    if role.is_some() || group.is_some() {
        let what = match (&role, &group) {
            (Some(r), Some(g)) => format!("holders of role '{r}' in group '{g}'"),
            (Some(r), None) => format!("holders of role '{r}'"),
            (None, Some(g)) => format!("members of group '{g}'"),
            (None, None) => String::new(),
        };
        view = view.push(Block::notice(Tone::Info, format!("Showing only {what}.")));
    }

    let own_id = caller.subject.user_id().unwrap_or("");
    let mut table = Table::new(["Name", "Email", "Status", "Verified", "Last login"])
        .id("users")
        .empty("No users match.")
        .search(search, "Search by name or email")
        .pager(pager);
    let mut bulk = Vec::new();
    if can(caller, "user.update") {
        bulk.push(BulkAction {
            label: "Disable".into(),
            action: "user.bulk_set_status".into(),
            values: BTreeMap::from([("state".to_string(), json!("disabled"))]),
            style: ButtonStyle::Secondary,
            confirm: Some("Disable the selected users? They are logged out.".into()),
            download: None,
            success: Some("The selected users are disabled.".into()),
        });
        bulk.push(BulkAction {
            label: "Enable".into(),
            action: "user.bulk_set_status".into(),
            values: BTreeMap::from([("state".to_string(), json!("enabled"))]),
            style: ButtonStyle::Secondary,
            confirm: None,
            download: None,
            success: Some("The selected users are enabled.".into()),
        });
    }
    if can(caller, "user.export") {
        for (format, label, content_type) in [
            ("csv", "Export CSV", "text/csv"),
            ("json", "Export JSON", "application/json"),
        ] {
            bulk.push(BulkAction {
                label: label.into(),
                action: "user.export".into(),
                values: BTreeMap::from([("format".to_string(), json!(format))]),
                style: ButtonStyle::Secondary,
                confirm: Some(
                    "The export contains personal data. Store and share it carefully.".into(),
                ),
                download: Some(Download {
                    filename: format!("users.{format}"),
                    content_type: Some(content_type.into()),
                    field: Some("content".into()),
                }),
                success: None,
            });
        }
    }
    if can(caller, "user.delete") {
        bulk.push(BulkAction {
            label: "Delete".into(),
            action: "user.bulk_delete".into(),
            values: BTreeMap::new(),
            style: ButtonStyle::Danger,
            confirm: Some(
                "Delete the selected users with all their data? This cannot be undone.".into(),
            ),
            download: None,
            success: Some("The selected users are deleted.".into()),
        });
    }
    let selectable = !bulk.is_empty();
    for action in bulk {
        table = table.bulk(action);
    }
    for user in &page.items {
        let (status_text, tone) = status_badge(user);
        let mut row = Row::new([
            Cell::new(display_name(user)),
            Cell::new(user.email.clone()),
            Cell::badge(status_text, tone),
            Cell::new(if user.email_verified { "yes" } else { "no" }),
            Cell {
                muted: true,
                ..Cell::new(timefmt::utc_or(user.last_login_at, "never"))
            },
        ])
        .href(format!("/ui/{PATH}/{}", user.id));
        if selectable && user.id != own_id {
            row = row.select(user.id.clone());
        }
        table = table.row(row);
    }
    Ok(view.push(table))
}

/// The "Add user" dialog (a disclosure with the `user.create` form).
fn add_user_dialog(ctx: &Ctx) -> Block {
    let form = Form::new("add-user", "user.create")
        .field(Field::email("email", "Email").required())
        .field(Field::text("profile.first_name", "First name").autocomplete("off"))
        .field(Field::text("profile.last_name", "Last name").autocomplete("off"))
        .field(
            Field::new_password("password", "Initial password", password_rules(ctx))
                .omit_empty()
                .help("Leave empty to let the user set a password with a mailed code."),
        )
        .field(Field::checkbox(
            "verified",
            "The address is confirmed",
            false,
        ))
        .field(Field::checkbox(
            "notify",
            "Send the user a mail about the new account",
            true,
        ))
        .submit("Add user")
        .next(format!("/ui/{PATH}/{{id}}"))
        .success("User added.");
    Block::details("Add user", false, vec![form.into()])
}

// ---------------------------------------------------------------------------
// The user editor
// ---------------------------------------------------------------------------

fn editor_view(ctx: &Ctx, req: &PageRequest, caller: &CallContext) -> Result<View, PluginError> {
    let id = req.rest.clone();
    check_id("id", &id)?;
    let user = admin::get(ctx, IdRequest { id: id.clone() }, caller)?;
    let tab = req
        .param("tab")
        .filter(|t| TABS.iter().any(|(v, _)| v == t))
        .unwrap_or("contact");
    let base = format!("/ui/{PATH}/{}", user.id);
    let (status_text, tone) = status_badge(&user);
    let mut view = View::new(display_name(&user))
        .subtitle(user.email.clone())
        .breadcrumb("Users", format!("/ui/{PATH}"));
    let mut header = Vec::new();
    if user.avatar.is_some() {
        if let Ok(image) = avatar::get_avatar(ctx, IdRequest { id: id.clone() }, caller) {
            header.push(Block::Image(Image {
                alt: format!("Avatar of {}", display_name(&user)),
                content_type: image.content_type,
                data: image.data,
                size: Some(64),
                round: true,
            }));
        }
    }
    header.push(Block::key_values([
        ("Status", status_text),
        (
            "Email confirmed",
            if user.email_verified { "yes" } else { "no" }.to_string(),
        ),
    ]));
    if tone == Tone::Danger {
        header.push(Block::notice(
            Tone::Warning,
            "This account is disabled: the user cannot log in.",
        ));
    }
    for block in header {
        view = view.push(block);
    }
    view = view.push(Block::tabs(TABS.iter().map(|(value, label)| {
        (*label, format!("{base}?tab={value}"), *value == tab)
    })));
    let blocks = match tab {
        "roles" => roles_tab(ctx, &user, caller)?,
        "groups" => groups_tab(ctx, &user, caller)?,
        "permissions" => permissions_tab(ctx, &user, caller)?,
        "consents" => consents_tab(ctx, &user)?,
        "licenses" => licenses_tab(ctx, &user, caller)?,
        "other" => other_tab(ctx, &user, caller)?,
        _ => contact_tab(&user, caller),
    };
    for block in blocks {
        view = view.push(block);
    }
    Ok(view)
}

fn contact_tab(user: &User, caller: &CallContext) -> Vec<Block> {
    let mut out = Vec::new();
    if can(caller, "user.update") {
        let mut form = Form::new("contact", "user.update_contact")
            .hidden("id", user.id.clone())
            .submit("Save contact details")
            .success("Contact details saved.");
        for (name, label) in PROFILE_FIELDS {
            let value = user.profile.get(name).unwrap_or("").to_string();
            let field_name = format!("profile.{name}");
            let field = match name {
                "preferred_language" => {
                    Field::select(field_name, label, language_choices(&value)).value(value)
                }
                "about_me" => Field::new(FieldKind::Textarea, field_name, label).value(value),
                _ => Field::text(field_name, label).value(value),
            };
            form = form.field(field);
        }
        out.push(Block::section("Contact details", vec![form.into()]));
        let mut avatar_blocks = vec![Form::new("avatar", "user.set_avatar")
            .hidden("id", user.id.clone())
            .field(Field {
                accept: Some("image/png,image/jpeg,image/webp".into()),
                required: true,
                help: "PNG, JPEG or WebP, at most 256 KiB.".into(),
                ..Field::new(FieldKind::File, "data", "Image")
            })
            .submit("Upload avatar")
            .success("Avatar saved.")
            .into()];
        if user.avatar.is_some() {
            avatar_blocks.push(
                Form::button("avatar-delete", "user.delete_avatar", "Remove avatar")
                    .hidden("id", user.id.clone())
                    .success("Avatar removed.")
                    .into(),
            );
        }
        out.push(Block::section("Avatar", avatar_blocks));
    } else {
        let items: Vec<(String, String)> = PROFILE_FIELDS
            .iter()
            .filter_map(|(name, label)| {
                let v = user.profile.get(name)?;
                Some((label.to_string(), v.to_string()))
            })
            .collect();
        if items.is_empty() {
            out.push(Block::text("No contact details."));
        } else {
            out.push(Block::key_values(items));
        }
    }
    out
}

/// The Roles or Groups tab: a checkbox list when the caller may assign and
/// read the catalogue, else the held ids (with names when readable).
fn membership_tab(
    ctx: &Ctx,
    user: &User,
    caller: &CallContext,
    system: &str,
    held: &BTreeSet<String>,
    what: &str,
) -> Result<Vec<Block>, PluginError> {
    let catalogue: Option<NamedPage> =
        read_on_behalf(ctx, system, "list", &json!({ "limit": 500 }))?;
    let field = format!("{what}s");
    let title = match what {
        "role" => "Roles",
        _ => "Groups",
    };
    let mut out = Vec::new();
    match catalogue {
        Some(page) if can(caller, "user.assign") => {
            let mut known: BTreeSet<String> = BTreeSet::new();
            let mut choices: Vec<Choice> = page
                .items
                .into_iter()
                .map(|n| {
                    known.insert(n.id.clone());
                    Choice::new(n.id, n.name).describe(n.description)
                })
                .collect();
            // Held ids beyond the first 500 stay selected.
            for id in held.iter().filter(|id| !known.contains(*id)) {
                choices.push(Choice::new(id.clone(), id.clone()));
            }
            let selected: Vec<String> = held.iter().cloned().collect();
            let help = if what == "role" {
                "The user holds every permission of every ticked role."
            } else {
                "Groups organise users; they grant no permissions."
            };
            out.push(
                Form::new(format!("set-{field}"), format!("user.set_{field}"))
                    .hidden("id", user.id.clone())
                    .field(
                        Field::checkboxes(field.clone(), title, choices, &selected)
                            .searchable()
                            .help(help),
                    )
                    .submit(format!("Save {field}"))
                    .success(format!("{title} saved."))
                    .into(),
            );
        }
        catalogue => {
            let names: BTreeMap<String, String> = catalogue
                .map(|p| p.items.into_iter().map(|n| (n.id, n.name)).collect())
                .unwrap_or_default();
            let mut table = Table::new([title])
                .id(field.clone())
                .empty(format!("The user holds no {field}."));
            for id in held {
                let label = names.get(id).cloned().unwrap_or_else(|| id.clone());
                table = table.row(Row::new([Cell::link(
                    label,
                    format!("/ui/admin/{field}/{id}"),
                )]));
            }
            out.push(table.into());
        }
    }
    Ok(out)
}

fn roles_tab(ctx: &Ctx, user: &User, caller: &CallContext) -> Result<Vec<Block>, PluginError> {
    membership_tab(ctx, user, caller, "role", &user.roles, "role")
}

fn groups_tab(ctx: &Ctx, user: &User, caller: &CallContext) -> Result<Vec<Block>, PluginError> {
    membership_tab(ctx, user, caller, "group", &user.groups, "group")
}

fn permissions_tab(
    ctx: &Ctx,
    user: &User,
    caller: &CallContext,
) -> Result<Vec<Block>, PluginError> {
    let mut registry: Vec<PermissionEntry> = ctx.host.service("permissions", &NoInput {})?;
    registry.sort_by(|a, b| (&a.plugin, &a.id).cmp(&(&b.plugin, &b.id)));
    let mut out = Vec::new();
    let direct: Vec<String> = user.permissions.iter().cloned().collect();
    if can(caller, "user.assign") {
        let choices: Vec<Choice> = registry
            .iter()
            .map(|p| {
                Choice::new(p.id.clone(), format!("{} ({})", p.name, p.id))
                    .describe(p.description.clone())
                    .group(p.plugin.clone())
            })
            .collect();
        out.push(
            Form::new("set-permissions", "user.set_permissions")
                .hidden("id", user.id.clone())
                .field(
                    Field::checkboxes("permissions", "Direct permissions", choices, &direct)
                        .searchable()
                        .help("Granted to this user directly, in addition to the permissions of their roles. Prefer roles."),
                )
                .submit("Save permissions")
                .success("Permissions saved.")
                .into(),
        );
    } else {
        let mut table = Table::new(["Direct permission"])
            .id("direct-permissions")
            .empty("No permissions are granted directly.");
        for p in &direct {
            table = table.row(Row::new([p.clone()]));
        }
        out.push(table.into());
    }
    // The effective set: direct grants and the roles' permissions.
    let ids: Vec<&String> = user.roles.iter().collect();
    let from_roles: Value = ctx
        .host
        .call("role", "permissions_of", &json!({ "ids": ids }))?;
    let mut effective: BTreeSet<String> = user.permissions.clone();
    if let Some(list) = from_roles.get("permissions").and_then(Value::as_array) {
        effective.extend(list.iter().filter_map(|v| v.as_str().map(str::to_string)));
    }
    let mut table = Table::new(["Permission", "Name", "From"]).id("effective-permissions");
    for p in registry.iter().filter(|p| effective.contains(&p.id)) {
        let from = if user.permissions.contains(&p.id) {
            "direct grant"
        } else {
            "role"
        };
        table = table.row(Row::new([p.id.clone(), p.name.clone(), from.to_string()]));
    }
    out.push(Block::details(
        format!("Effective permissions ({})", effective.len()),
        false,
        vec![table.into()],
    ));
    Ok(out)
}

fn consents_tab(ctx: &Ctx, user: &User) -> Result<Vec<Block>, PluginError> {
    let settings = ctx.settings()?;
    let options = settings
        .get("consent_options")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut table = Table::new(["Consent", "Required", "State", "Since", "Version"])
        .id("consents")
        .empty("No consent options are configured (Settings → user).");
    let mut seen = BTreeSet::new();
    for option in &options {
        let id = option.get("id").and_then(Value::as_str).unwrap_or("");
        seen.insert(id.to_string());
        let title = option.get("title").and_then(Value::as_str).unwrap_or(id);
        let required = option
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let history = user.consents.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let (state, since, version) = match latest_consent(history) {
            Some(e) => (
                Cell::badge(
                    e.action.as_str(),
                    if e.action == crate::model::ConsentAction::Accepted {
                        Tone::Success
                    } else {
                        Tone::Neutral
                    },
                ),
                timefmt::utc(e.at),
                e.version.clone(),
            ),
            None => (Cell::new("not given"), String::new(), String::new()),
        };
        table = table.row(Row::new([
            Cell::new(title),
            Cell::new(if required { "yes" } else { "no" }),
            state,
            Cell::new(since),
            Cell::new(version),
        ]));
    }
    let mut out = vec![table.into()];
    // The full history, including options removed from the settings since.
    let mut history = Table::new(["Consent", "Action", "At", "Version"])
        .id("consent-history")
        .empty("No consent was ever given or revoked.");
    for (id, entries) in &user.consents {
        let label = if seen.contains(id) {
            id.clone()
        } else {
            format!("{id} (no longer offered)")
        };
        for e in entries {
            history = history.row(Row::new([
                label.clone(),
                e.action.as_str().to_string(),
                timefmt::utc(e.at),
                e.version.clone(),
            ]));
        }
    }
    out.push(Block::details("History", false, vec![history.into()]));
    out.push(Block::Text {
        text: "Users accept and revoke optional consents on their own profile page.".into(),
        muted: true,
    });
    Ok(out)
}

fn licenses_tab(ctx: &Ctx, user: &User, caller: &CallContext) -> Result<Vec<Block>, PluginError> {
    let catalogue: Option<LicensePage> = read_on_behalf(
        ctx,
        "license",
        "list_user_licenses",
        &json!({ "limit": 500 }),
    )?;
    let held: Value = ctx
        .host
        .call("license", "licenses_of", &json!({ "user_id": user.id }))?;
    let held: BTreeSet<String> = held
        .get("licenses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let Some(catalogue) = catalogue else {
        let mut table = Table::new(["License"])
            .id("licenses")
            .empty("The user holds no license.");
        for id in &held {
            table = table.row(Row::new([id.clone()]));
        }
        return Ok(vec![table.into()]);
    };
    let assign = can(caller, "user.assign");
    let mut table = Table::new(["License", "Seats", "Held"])
        .id("licenses")
        .empty("There are no user licenses.");
    for l in &catalogue.items {
        let seats = if l.max_users == 0 {
            format!("{} used (unlimited)", l.used)
        } else {
            format!("{} of {} used", l.used, l.max_users)
        };
        let holds = held.contains(&l.id);
        let mut row = Row::new([
            Cell::link(l.name.clone(), format!("/ui/admin/licenses/{}", l.id)),
            Cell::new(seats),
            if holds {
                Cell::badge("held", Tone::Success)
            } else {
                Cell::new("")
            },
        ]);
        if assign {
            let form = if holds {
                Form::button(format!("revoke-{}", l.id), "user.revoke_license", "Revoke")
                    .success("License revoked.")
            } else {
                Form::button(format!("assign-{}", l.id), "user.assign_license", "Assign")
                    .success("License assigned.")
            };
            row = row.action(
                form.hidden("id", user.id.clone())
                    .hidden("license_id", l.id.clone()),
            );
        }
        table = table.row(row);
    }
    Ok(vec![table.into()])
}

fn other_tab(ctx: &Ctx, user: &User, caller: &CallContext) -> Result<Vec<Block>, PluginError> {
    let mut out = vec![Block::key_values([
        ("Id", user.id.clone()),
        ("Created", timefmt::utc(user.created_at)),
        ("Last change", timefmt::utc(user.updated_at)),
        ("Last login", timefmt::utc_or(user.last_login_at, "never")),
        (
            "Password set",
            timefmt::utc_or(user.password_changed_at, "no password yet"),
        ),
        (
            "Must change password",
            if user.require_password_change {
                "yes"
            } else {
                "no"
            }
            .to_string(),
        ),
    ])];
    let own = caller.subject.user_id() == Some(user.id.as_str());
    if can(caller, "user.update") {
        let (state, until_help) = match user.status {
            Status::Disabled => ("disabled", String::new()),
            Status::Enabled => ("enabled", String::new()),
            Status::EnabledUntil { until } => (
                "enabled_until",
                format!("Currently enabled until {}. ", timefmt::utc(until)),
            ),
        };
        let mut status_form = Form::new("status", "user.set_status")
            .hidden("id", user.id.clone())
            .field(
                Field::select(
                    "status.state",
                    "Account status",
                    vec![
                        Choice::new("enabled", "Enabled"),
                        Choice::new("disabled", "Disabled (cannot log in)"),
                        Choice::new("enabled_until", "Enabled until a date"),
                    ],
                )
                .value(state),
            )
            .field(
                Field::new(FieldKind::Date, "status.until_date", "Enabled until")
                    .omit_empty()
                    .help(format!(
                        "{until_help}Only for \"Enabled until a date\": the account expires at 00:00 UTC of that day."
                    )),
            )
            .submit("Save status")
            .success("Status saved.");
        if own {
            status_form =
                status_form.confirm("This is your own account. Disabling it logs you out.");
        }
        out.push(Block::section("Status", vec![status_form.into()]));
        out.push(Block::section(
            "Verification and password",
            vec![
                Form::new("verified", "user.set_verified")
                    .hidden("id", user.id.clone())
                    .field(Field::checkbox(
                        "verified",
                        "The email address is confirmed",
                        user.email_verified,
                    ))
                    .submit("Save")
                    .success("Verification saved.")
                    .into(),
                Form::new("require-password-change", "user.require_password_change")
                    .hidden("id", user.id.clone())
                    .field(Field::checkbox(
                        "required",
                        "Require a new password at the next login",
                        user.require_password_change,
                    ))
                    .submit("Save")
                    .success("Saved.")
                    .into(),
            ],
        ));
        out.push(Block::details(
            "Set password",
            false,
            vec![Form::new("set-password", "user.set_password")
                .hidden("id", user.id.clone())
                .field(
                    Field::new_password("password", "New password", password_rules(ctx)).required(),
                )
                .submit("Set password")
                .success("Password set; the user's other sessions ended.")
                .into()],
        ));
        out.push(Block::details(
            "Change email",
            false,
            vec![Form::new("change-email", "user.change_email")
                .hidden("id", user.id.clone())
                .field(
                    Field::email("email", "New email")
                        .value(user.email.clone())
                        .required(),
                )
                .field(Field::checkbox(
                    "notify",
                    "Mail a confirmation code to the new address (and a notice to the old one)",
                    true,
                ))
                .submit("Change email")
                .success("Email changed; the address is unconfirmed until the user confirms it.")
                .into()],
        ));
    }
    out.extend(sessions_section(ctx, user, caller)?);
    if can(caller, "user.delete") && !own {
        out.push(Block::details(
            "Delete this user",
            false,
            vec![
                Block::notice(
                    Tone::Warning,
                    "The account and all its data (profile, consents, avatar, memberships, license seats, sessions) are removed. This cannot be undone.",
                ),
                Form::new("delete-user", "user.delete")
                    .hidden("id", user.id.clone())
                    .submit("Delete user")
                    .style(ButtonStyle::Danger)
                    .confirm(format!("Delete {} with all their data?", user.email))
                    .next(format!("/ui/{PATH}"))
                    .success("User deleted.")
                    .into(),
            ],
        ));
    }
    Ok(out)
}

/// The user's live sessions (`session.list_for_user`, permission
/// `session.read`) and "End all sessions" (`session.revoke_all_for_user`,
/// `session.manage`); nothing when the caller may not read sessions or the
/// session system is not active.
fn sessions_section(
    ctx: &Ctx,
    user: &User,
    caller: &CallContext,
) -> Result<Vec<Block>, PluginError> {
    let Some(sessions): Option<SessionPage> = read_on_behalf(
        ctx,
        "session",
        "list_for_user",
        &json!({ "user_id": user.id }),
    )?
    else {
        return Ok(Vec::new());
    };
    let mut table = Table::new(["Started", "Last seen", "Ends", "Client"])
        .id("sessions")
        .empty("No live sessions.");
    for s in &sessions.items {
        let client = s.client_addr.clone().unwrap_or_default();
        let client = if s.current {
            format!("{client} (this session)")
        } else {
            client
        };
        table = table.row(Row::new([
            timefmt::utc(s.created_at),
            timefmt::utc(s.last_seen_at),
            timefmt::utc(s.expires_at),
            client,
        ]));
    }
    let mut blocks = vec![table.into()];
    if can(caller, "session.manage") && !sessions.items.is_empty() {
        blocks.push(
            Form::button(
                "end-sessions",
                "session.revoke_all_for_user",
                "End all sessions",
            )
            .hidden("user_id", user.id.clone())
            .style(ButtonStyle::Danger)
            .confirm("Log this user out everywhere?")
            .success("Sessions ended.")
            .into(),
        );
    }
    Ok(vec![Block::section("Sessions", blocks)])
}
