//! The admin-center page operations of the system plugins, called through
//! the real host with the real plugin libraries: each page answers the view
//! the caller may see (forms only for what the caller may do; the same
//! permission checks as the API), and the settings form round-trips
//! through `settings.put_form`.

use serde_json::{json, Value};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::view::{Block, FieldKind, Form, Table, View};
use syshost_plugin_api::{codes, CallContext, PluginError};
use syshost_test_support::PluginDir;

const PASSWORD: &str = "Tr0ub4dor&3-horse";

struct Env {
    host: Host,
    _plugins: PluginDir,
    _data: tempfile::TempDir,
}

fn start() -> Env {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let report = host.activate_all(&["user".into()]);
    assert!(report.is_ok(), "{report:?}");
    Env {
        host,
        _plugins: plugins,
        _data: data,
    }
}

impl Env {
    fn system(&self, id: &str) -> SystemHandle {
        self.host.system(id).unwrap()
    }

    /// Calls `system.op` as the host.
    fn call(&self, system: &str, op: &str, req: Value) -> Value {
        self.system(system)
            .call(op, &req)
            .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
    }

    /// A user holding a role with exactly `permissions`; returns its context.
    fn user_with(&self, email: &str, permissions: &[&str]) -> CallContext {
        let role_id = email.split('@').next().unwrap().replace('.', "-");
        self.call(
            "role",
            "create",
            json!({ "id": role_id, "name": format!("Role of {email}"), "permissions": permissions }),
        );
        let user = self.call(
            "user",
            "create",
            json!({ "email": email, "password": PASSWORD, "roles": [role_id] }),
        );
        self.host
            .context_for(Some(user["id"].as_str().unwrap()))
            .unwrap()
    }

    /// Renders page operation `system.op` for `rest` and `query` as `ctx`.
    fn page(
        &self,
        ctx: &CallContext,
        system: &str,
        op: &str,
        rest: &str,
        query: Value,
    ) -> Result<View, PluginError> {
        self.system(system)
            .call_as(ctx, op, &json!({ "rest": rest, "query": query }))
    }

    fn view(&self, ctx: &CallContext, system: &str, op: &str, rest: &str, query: Value) -> View {
        self.page(ctx, system, op, rest, query)
            .unwrap_or_else(|e| panic!("{system}.{op} {rest}: {e:?}"))
    }
}

/// Every form of the view, by id.
fn form_ids(view: &View) -> Vec<String> {
    let mut view = view.clone();
    view.forms_mut().iter().map(|f| f.id.clone()).collect()
}

fn form<'a>(view: &'a View, id: &str) -> Option<&'a Form> {
    fn walk<'a>(blocks: &'a [Block], id: &str) -> Option<&'a Form> {
        for b in blocks {
            let found = match b {
                Block::Form(f) if f.id == id => Some(f),
                Block::Section { blocks, .. } | Block::Details { blocks, .. } => walk(blocks, id),
                Block::Table(t) => t
                    .rows
                    .iter()
                    .flat_map(|r| r.actions.iter())
                    .find(|f| f.id == id),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    walk(&view.blocks, id)
}

fn tables(view: &View) -> Vec<&Table> {
    fn walk<'a>(blocks: &'a [Block], out: &mut Vec<&'a Table>) {
        for b in blocks {
            match b {
                Block::Table(t) => out.push(t),
                Block::Section { blocks, .. } | Block::Details { blocks, .. } => walk(blocks, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&view.blocks, &mut out);
    out
}

fn table<'a>(view: &'a View, id: &str) -> &'a Table {
    tables(view)
        .into_iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no table '{id}' in {view:?}"))
}

/// The text of every cell of a table, row by row.
fn cells(table: &Table) -> Vec<Vec<String>> {
    table
        .rows
        .iter()
        .map(|r| r.cells.iter().map(|c| c.text.clone()).collect())
        .collect()
}

fn denied(result: Result<View, PluginError>, permission: &str) {
    let err = result.expect_err("the page must be refused");
    assert_eq!(err.code, codes::PERMISSION_DENIED, "{err:?}");
    assert_eq!(err.details.unwrap()["permission"], json!(permission));
}

#[test]
fn every_admin_page_is_declared_with_a_card_and_guarded_by_its_permission() {
    let env = start();
    let nobody = env.user_with("nobody@example.com", &[]);
    for (system, op, path, permission) in [
        ("user", "admin_users_page", "admin/users", "user.read"),
        ("role", "admin_roles_page", "admin/roles", "role.read"),
        ("group", "admin_groups_page", "admin/groups", "group.read"),
        (
            "permission",
            "admin_permissions_page",
            "admin/permissions",
            "permission.read",
        ),
        (
            "license",
            "admin_licenses_page",
            "admin/licenses",
            "license.read",
        ),
        (
            "settings",
            "admin_settings_page",
            "admin/settings",
            "settings.read",
        ),
    ] {
        let manifest = env.system(system).manifest().expect("manifest");
        let page = manifest
            .pages
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("{system} declares no page {path}"));
        assert_eq!(page.operation, op);
        assert_eq!(page.area, syshost_plugin_api::view::Area::Admin);
        let card = page.card.as_ref().expect("an admin-center card");
        assert_eq!(card.permission.as_deref(), Some(permission), "{path}");
        denied(env.page(&nobody, system, op, "", json!({})), permission);
        // Anonymous visitors are refused too.
        let err = env
            .page(&CallContext::default(), system, op, "", json!({}))
            .unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{path}");
    }
}

#[test]
fn role_pages_offer_exactly_the_forms_the_caller_may_use() {
    let env = start();
    let admin = env.host.context_for(Some(&admin_id(&env))).unwrap();
    env.call(
        "role",
        "create",
        json!({ "id": "editors", "name": "Editors", "permissions": ["user.read", "group.read"] }),
    );

    let list = env.view(&admin, "role", "admin_roles_page", "", json!({}));
    assert_eq!(form_ids(&list), ["create-role"]);
    let create = form(&list, "create-role").unwrap();
    assert_eq!(create.action, "role.create");
    let picker = create
        .fields
        .iter()
        .find(|f| f.name == "permissions")
        .unwrap();
    assert_eq!(picker.kind, FieldKind::Checkboxes);
    assert!(
        picker.searchable,
        "the permission picker has search and select-all"
    );
    assert!(picker
        .options
        .iter()
        .any(|c| c.value == "role.create" && c.group == "role"));
    let rows = cells(table(&list, "roles"));
    assert!(
        rows.iter().any(|r| r[0] == "Editors" && r[2] == "2"),
        "{rows:?}"
    );
    assert!(rows
        .iter()
        .any(|r| r[0] == "Administrator" && r[3] == "built-in"));
    // Search filters.
    let found = env.view(
        &admin,
        "role",
        "admin_roles_page",
        "",
        json!({ "search": "edit" }),
    );
    assert_eq!(cells(table(&found, "roles")).len(), 1);

    let editor = env.view(&admin, "role", "admin_roles_page", "editors", json!({}));
    assert_eq!(
        form_ids(&editor),
        ["role-details", "role-permissions", "delete-role"]
    );
    let perms = form(&editor, "role-permissions").unwrap();
    let picker = &perms
        .fields
        .iter()
        .find(|f| f.name == "permissions")
        .unwrap();
    assert_eq!(picker.value, json!(["group.read", "user.read"]));
    // The built-in role: no permission picker, no delete.
    let builtin = env.view(&admin, "role", "admin_roles_page", "admin", json!({}));
    assert_eq!(form_ids(&builtin), ["role-details"]);
    // Unknown role: not_found, as from role.get.
    let err = env
        .page(&admin, "role", "admin_roles_page", "nope", json!({}))
        .unwrap_err();
    assert_eq!(err.code, codes::NOT_FOUND);

    // A read-only holder sees the same data without a single form.
    let reader = env.user_with("reader@example.com", &["role.read"]);
    let list = env.view(&reader, "role", "admin_roles_page", "", json!({}));
    assert!(form_ids(&list).is_empty());
    let editor = env.view(&reader, "role", "admin_roles_page", "editors", json!({}));
    assert!(form_ids(&editor).is_empty());
    let rows = cells(table(&editor, "role-permissions"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Only set_permissions: the picker, nothing else.
    let setter = env.user_with("setter@example.com", &["role.read", "role.set_permissions"]);
    let editor = env.view(&setter, "role", "admin_roles_page", "editors", json!({}));
    assert_eq!(form_ids(&editor), ["role-permissions"]);
}

fn admin_id(env: &Env) -> String {
    let page = env.call("user", "list", json!({}));
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["roles"].as_array().unwrap().contains(&json!("admin")))
        .map(|u| u["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| {
            let u = env.call(
                "user",
                "create",
                json!({ "email": "root@example.com", "password": PASSWORD, "roles": ["admin"] }),
            );
            u["id"].as_str().unwrap().to_string()
        })
}

#[test]
fn the_user_table_pages_by_fifty_and_offers_bulk_actions_by_permission() {
    let env = start();
    let admin_user = admin_id(&env);
    let admin = env.host.context_for(Some(&admin_user)).unwrap();
    for i in 0..59 {
        env.call(
            "user",
            "create",
            json!({ "email": format!("u{i:02}@example.com"), "password": PASSWORD }),
        );
    }
    let total = env.call("user", "list", json!({}))["total"]
        .as_u64()
        .unwrap();
    assert!(total >= 60);

    let first = env.view(&admin, "user", "admin_users_page", "", json!({}));
    let users = table(&first, "users");
    assert_eq!(users.rows.len(), 50);
    let pager = users.pager.as_ref().unwrap();
    assert_eq!((pager.page, pager.pages, pager.total), (1, 2, total));
    let second = env.view(
        &admin,
        "user",
        "admin_users_page",
        "",
        json!({ "page": "2" }),
    );
    assert_eq!(table(&second, "users").rows.len() as u64, total - 50);
    // A page past the end shows the last page.
    let past = env.view(
        &admin,
        "user",
        "admin_users_page",
        "",
        json!({ "page": "9" }),
    );
    assert_eq!(table(&past, "users").pager.as_ref().unwrap().page, 2);
    // Search.
    let found = env.view(
        &admin,
        "user",
        "admin_users_page",
        "",
        json!({ "search": "u4" }),
    );
    assert_eq!(cells(table(&found, "users")).len(), 10);

    let bulk: Vec<(String, String)> = users
        .bulk
        .iter()
        .map(|b| (b.label.clone(), b.action.clone()))
        .collect();
    assert_eq!(
        bulk.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>(),
        [
            "user.bulk_set_status",
            "user.bulk_set_status",
            "user.export",
            "user.export",
            "user.bulk_delete"
        ]
    );
    assert_eq!(users.bulk[0].values["state"], json!("disabled"));
    let csv = users.bulk.iter().find(|b| b.label == "Export CSV").unwrap();
    assert_eq!(
        csv.download.as_ref().unwrap().field.as_deref(),
        Some("content")
    );
    // The caller's own row has no checkbox.
    let everyone = env.view(
        &admin,
        "user",
        "admin_users_page",
        "",
        json!({ "search": "root" }),
    );
    assert!(table(&everyone, "users")
        .rows
        .iter()
        .all(|r| r.select.is_none()));
    assert!(table(&first, "users")
        .rows
        .iter()
        .any(|r| r.select.is_some()));
    assert_eq!(form_ids(&first), ["add-user"]);

    // A reader: no dialog, no bulk actions, no checkboxes.
    let reader = env.user_with("reader@example.com", &["user.read"]);
    let view = env.view(&reader, "user", "admin_users_page", "", json!({}));
    assert!(form_ids(&view).is_empty());
    let users = table(&view, "users");
    assert!(users.bulk.is_empty());
    assert!(users.rows.iter().all(|r| r.select.is_none()));
    // Export only.
    let exporter = env.user_with("exporter@example.com", &["user.read", "user.export"]);
    let view = env.view(&exporter, "user", "admin_users_page", "", json!({}));
    let labels: Vec<&str> = table(&view, "users")
        .bulk
        .iter()
        .map(|b| b.label.as_str())
        .collect();
    assert_eq!(labels, ["Export CSV", "Export JSON"]);
}

#[test]
fn the_user_editor_shows_each_tab_with_forms_by_permission() {
    let env = start();
    let admin_user = admin_id(&env);
    let admin = env.host.context_for(Some(&admin_user)).unwrap();
    env.call(
        "role",
        "create",
        json!({ "id": "editors", "name": "Editors", "permissions": ["group.read"] }),
    );
    env.call(
        "license",
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "max_users": 3 }),
    );
    let ann = env.call(
        "user",
        "create",
        json!({ "email": "ann@example.com", "password": PASSWORD, "roles": ["editors"],
                "permissions": ["license.read"], "profile": { "first_name": "Ann", "city": "Bonn" } }),
    );
    let id = ann["id"].as_str().unwrap();
    env.call(
        "user",
        "assign_license",
        json!({ "id": id, "license_id": "pro" }),
    );

    let tab = |ctx: &CallContext, tab: &str| {
        env.view(ctx, "user", "admin_users_page", id, json!({ "tab": tab }))
    };
    let contact = tab(&admin, "contact");
    assert_eq!(contact.title, "Ann");
    assert_eq!(form_ids(&contact), ["contact", "avatar"]);
    let city = form(&contact, "contact")
        .unwrap()
        .fields
        .iter()
        .find(|f| f.name == "profile.city")
        .unwrap();
    assert_eq!(city.value, json!("Bonn"));

    let roles = tab(&admin, "roles");
    let picker = &form(&roles, "set-roles").unwrap().fields[1];
    assert_eq!(picker.name, "roles");
    assert_eq!(picker.value, json!(["editors"]));
    assert!(picker.options.iter().any(|c| c.value == "admin"));
    assert!(form(&tab(&admin, "groups"), "set-groups").is_some());

    let perms = tab(&admin, "permissions");
    assert!(form(&perms, "set-permissions").is_some());
    let effective = cells(table(&perms, "effective-permissions"));
    assert_eq!(
        effective
            .iter()
            .map(|r| (r[0].as_str(), r[2].as_str()))
            .collect::<Vec<_>>(),
        [("group.read", "role"), ("license.read", "direct grant")]
    );

    let licenses = tab(&admin, "licenses");
    let rows = cells(table(&licenses, "licenses"));
    assert_eq!(rows, [["Pro", "1 of 3 used", "held"]]);
    assert!(form(&licenses, "revoke-pro").is_some());

    let other = tab(&admin, "other");
    assert_eq!(
        form_ids(&other),
        [
            "status",
            "verified",
            "require-password-change",
            "set-password",
            "change-email",
            "delete-user"
        ]
    );
    // The admin has no session here (no session system call went through a
    // login), but may read sessions: the table is there and empty.
    assert!(cells(table(&other, "sessions")).is_empty());
    assert!(tab(&admin, "consents")
        .blocks
        .iter()
        .any(|b| matches!(b, Block::Table(_))));

    // A reader of users only: every tab without forms; licenses shown as ids
    // (no license.read), no sessions (no session.read).
    let reader = env.user_with("reader@example.com", &["user.read"]);
    for t in [
        "contact",
        "roles",
        "groups",
        "permissions",
        "consents",
        "licenses",
        "other",
    ] {
        assert!(form_ids(&tab(&reader, t)).is_empty(), "{t}");
    }
    assert_eq!(
        cells(table(&tab(&reader, "licenses"), "licenses")),
        [["pro"]]
    );
    assert!(tables(&tab(&reader, "other"))
        .iter()
        .all(|t| t.id != "sessions"));
}

#[test]
fn the_settings_form_is_generated_from_the_schema_and_saves_typed_values() {
    let env = start();
    let admin = env.host.context_for(Some(&admin_id(&env))).unwrap();
    env.call(
        "role",
        "create",
        json!({ "id": "editors", "name": "Editors" }),
    );
    let view = env.view(&admin, "settings", "admin_settings_page", "", json!({}));
    let f = form(&view, "settings-user").expect("the user section is the default tab");
    assert_eq!(f.action, "settings.put_form");
    let kind = |name: &str| {
        f.fields
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .kind
    };
    assert_eq!(kind("document.self_registration"), FieldKind::Checkbox);
    assert_eq!(kind("document.allowed_domains"), FieldKind::Lines);
    assert_eq!(kind("document.default_roles"), FieldKind::Checkboxes);
    assert_eq!(
        kind("document.password_policy.min_length"),
        FieldKind::Number
    );
    assert_eq!(
        kind("document.registration_fields.phone"),
        FieldKind::Select
    );
    assert_eq!(kind("document.consent_options"), FieldKind::Textarea);
    let roles = f
        .fields
        .iter()
        .find(|x| x.name == "document.default_roles")
        .unwrap();
    assert!(roles.options.iter().any(|c| c.value == "editors"));

    // The session section is another tab with its own form.
    let session = env.view(
        &admin,
        "settings",
        "admin_settings_page",
        "session",
        json!({}),
    );
    assert!(form(&session, "settings-session").is_some());

    // Submitted as a browser sends it: text numbers, lines, JSON text.
    let saved = env
        .system("settings")
        .call_as::<_, Value>(
            &admin,
            "put_form",
            &json!({ "section": "user", "document": {
                "self_registration": true,
                "allowed_domains": "example.com\n  example.org \n",
                "default_roles": ["editors"],
                "password_policy": { "min_length": "14", "max_length": 256.0, "reject_common": "on" },
                "consent_options": "[{\"id\": \"tos\", \"title\": \"Terms\", \"text\": \"…\", \"version\": \"1\", \"required\": true}]"
            }}),
        )
        .unwrap();
    assert_eq!(saved["changed"], true);
    let doc = env.call("settings", "get", json!({ "section": "user" }))["document"].clone();
    assert_eq!(
        doc["allowed_domains"],
        json!(["example.com", "example.org"])
    );
    assert_eq!(doc["default_roles"], json!(["editors"]));
    assert_eq!(doc["password_policy"]["min_length"], json!(14));
    assert_eq!(doc["consent_options"][0]["id"], json!("tos"));
    assert_eq!(doc["self_registration"], true);

    // Bad values name the field and change nothing.
    for (document, field) in [
        (
            json!({ "password_policy": { "min_length": "many" } }),
            "document.password_policy.min_length",
        ),
        (
            json!({ "consent_options": "[{" }),
            "document.consent_options",
        ),
        (
            json!({ "allowed_domains": "Not A Domain" }),
            "allowed_domains[0]",
        ),
        (json!({ "default_roles": ["ghosts"] }), "default_roles[0]"),
    ] {
        let err = env
            .system("settings")
            .call_as::<_, Value>(
                &admin,
                "put_form",
                &json!({ "section": "user", "document": document }),
            )
            .unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
        assert_eq!(
            err.details.as_ref().unwrap()["field"],
            json!(field),
            "{err:?}"
        );
    }
    let after = env.call("settings", "get", json!({ "section": "user" }))["document"].clone();
    assert_eq!(after, doc);

    // A reader sees the values, no form; put_form is refused like put.
    let reader = env.user_with("reader@example.com", &["settings.read"]);
    let view = env.view(
        &reader,
        "settings",
        "admin_settings_page",
        "user",
        json!({}),
    );
    assert!(form_ids(&view).is_empty());
    let err = env
        .system("settings")
        .call_as::<_, Value>(
            &reader,
            "put_form",
            &json!({ "section": "user", "document": {} }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert_eq!(err.details.unwrap()["permission"], json!("settings.put"));
}

#[test]
fn group_permission_and_license_pages() {
    let env = start();
    let admin = env.host.context_for(Some(&admin_id(&env))).unwrap();
    env.call("group", "create", json!({ "id": "staff", "name": "Staff" }));
    let list = env.view(&admin, "group", "admin_groups_page", "", json!({}));
    assert_eq!(form_ids(&list), ["create-group"]);
    let rows = cells(table(&list, "groups"));
    assert!(rows.iter().any(|r| r[0] == "Staff"));
    let editor = env.view(&admin, "group", "admin_groups_page", "staff", json!({}));
    assert_eq!(form_ids(&editor), ["group-details", "delete-group"]);
    let system = env.view(&admin, "group", "admin_groups_page", "system", json!({}));
    assert_eq!(
        form_ids(&system),
        ["group-details"],
        "the built-in group cannot be deleted"
    );

    let perms = env.view(
        &admin,
        "permission",
        "admin_permissions_page",
        "",
        json!({}),
    );
    assert!(form_ids(&perms).is_empty(), "permissions are read-only");
    let role_table = table(&perms, "permissions-role");
    assert!(cells(role_table).iter().any(|r| r[0] == "role.create"));
    let found = env.view(
        &admin,
        "permission",
        "admin_permissions_page",
        "",
        json!({ "search": "SEAT usage" }),
    );
    let found = tables(&found);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, "permissions-license");
    assert_eq!(
        cells(found[0]),
        [[
            "license.read",
            "Read licenses",
            "May list app and user licenses, their seat usage and assignees."
        ]]
    );
    assert!(found[0].search.is_some(), "the search box stays");

    env.call(
        "license",
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "max_users": 1 }),
    );
    env.call(
        "license",
        "create_app_license",
        json!({ "id": "reports", "name": "Reports", "enabled": true }),
    );
    let apps = env.view(&admin, "license", "admin_licenses_page", "", json!({}));
    assert_eq!(
        cells(table(&apps, "app-licenses")),
        [["Reports", "", "enabled"]]
    );
    assert!(form(&apps, "list-enable-reports").is_some());
    let users = env.view(
        &admin,
        "license",
        "admin_licenses_page",
        "",
        json!({ "kind": "user" }),
    );
    assert_eq!(
        cells(table(&users, "user-licenses")),
        [["Pro", "", "0 of 1 used"]]
    );
    let editor = env.view(&admin, "license", "admin_licenses_page", "pro", json!({}));
    assert_eq!(
        form_ids(&editor),
        ["user-license-details", "delete-user-license"]
    );
    let reader = env.user_with("reader@example.com", &["license.read"]);
    for (rest, query) in [
        ("", json!({})),
        ("", json!({ "kind": "user" })),
        ("pro", json!({})),
        ("reports", json!({})),
    ] {
        let v = env.view(&reader, "license", "admin_licenses_page", rest, query);
        assert!(form_ids(&v).is_empty(), "{rest}");
    }
}
