//! The `role` system through the real host with the real plugin libraries:
//! operations, validation, authorization, events (observed with the
//! event-log example plugin), the name index under renames and races, and
//! the built-in administrator role seeded on activation.
//!
//! Every store starts with that built-in role (id `admin`, name
//! "Administrator"), so listings and totals include it; tests about
//! user-created roles count it explicitly.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Barrier};

use serde_json::{json, Value};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject, UserSubject};
use syshost_test_support::{library, system_library, PluginDir};

/// A host with role (and the permission system it requires) plus event-log.
struct Env {
    host: Host,
    role: SystemHandle,
    audit: SystemHandle,
    _plugins: PluginDir,
    _data: tempfile::TempDir,
}

fn plugin_dir() -> PluginDir {
    PluginDir::with(&[
        system_library("role"),
        system_library("permission"),
        library("syshost-example-event-log"),
    ])
}

fn start_on(plugins: &PluginDir, data: &Path) -> (Host, SystemHandle, SystemHandle) {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let role = host.activate("role").expect("role activates");
    let audit = host.activate("eventlog").expect("eventlog activates");
    (host, role, audit)
}

fn start() -> Env {
    let plugins = plugin_dir();
    let data = tempfile::tempdir().unwrap();
    let (host, role, audit) = start_on(&plugins, data.path());
    Env {
        host,
        role,
        audit,
        _plugins: plugins,
        _data: data,
    }
}

fn ok(role: &SystemHandle, op: &str, req: Value) -> Value {
    role.call(op, &req)
        .unwrap_or_else(|e| panic!("role.{op} {req} failed: {e}"))
}

fn fail(role: &SystemHandle, op: &str, req: Value) -> PluginError {
    match role.call::<Value, Value>(op, &req) {
        Ok(v) => panic!("role.{op} {req} should fail but returned {v}"),
        Err(e) => e,
    }
}

fn fail_as(role: &SystemHandle, ctx: &CallContext, op: &str, req: Value) -> PluginError {
    match role.call_as::<Value, Value>(ctx, op, &req) {
        Ok(v) => panic!("role.{op} {req} should fail but returned {v}"),
        Err(e) => e,
    }
}

/// Asserts an `invalid_input` error naming `field`.
fn assert_invalid(err: &PluginError, field: &str) {
    assert_eq!(err.code, codes::INVALID_INPUT, "{err}");
    let named = err
        .details
        .as_ref()
        .and_then(|d| d.get("field"))
        .and_then(Value::as_str)
        == Some(field)
        || err.message.contains(field);
    assert!(named, "error should name field '{field}': {err:?}");
}

fn user(permissions: &[&str]) -> CallContext {
    CallContext::for_subject(Subject::User(UserSubject {
        id: "u1".into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }))
}

/// Every role in the store, as system (for "nothing changed" checks).
fn all_roles(role: &SystemHandle) -> Value {
    ok(role, "list", json!({ "limit": 500 }))
}

/// The events published by `role`, oldest first, as `(topic, payload)`.
fn role_events(audit: &SystemHandle) -> Vec<(String, Value)> {
    let page: Value = audit.call("list", &json!({ "limit": 500 })).unwrap();
    let mut events: Vec<(String, Value)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "role")
        .map(|e| {
            (
                e["topic"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect();
    events.reverse();
    events
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// Id of the built-in administrator role.
const ADMIN: &str = "admin";
/// Its name as seeded.
const ADMIN_NAME: &str = "Administrator";

/// The item of a `list` page with id `id`.
fn item<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no role '{id}' in {list}"))
}

/// The built-in roles of a `list` page.
fn builtin_roles(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["builtin"] == true)
        .cloned()
        .collect()
}

/// Every permission id the active systems declare, sorted, as
/// `permission.list` reports them.
fn declared_permissions(host: &Host) -> Vec<String> {
    let permission = host.system("permission").expect("permission is active");
    let page: Value = permission
        .call("list", &json!({ "limit": 500 }))
        .expect("permission.list");
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(page["total"], ids.len(), "one page holds every permission");
    ids.sort();
    ids
}

/// The permission ids of a role response.
fn permissions(role: &Value) -> Vec<String> {
    role["permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("no permissions in {role}"))
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn role_requires_the_permission_system() {
    let env = start();
    let active: BTreeSet<String> = env.host.active_systems().into_iter().collect();
    assert!(active.contains("permission"), "{active:?}");
    let pong = ok(&env.role, "ping", json!({}));
    assert_eq!(pong, json!({ "system": "role", "version": "0.1.0" }));
    env.host.shutdown();
}

#[test]
fn create_get_list_update_set_permissions_delete_round_trip() {
    let env = start();
    let role = &env.role;

    let created = ok(
        role,
        "create",
        json!({
            "id": "editors",
            "name": "  Editors ",
            "description": "May edit roles",
            "permissions": ["role.update", "role.read", "role.read"]
        }),
    );
    assert_eq!(created["id"], "editors");
    assert_eq!(created["name"], "Editors", "names are trimmed");
    assert_eq!(created["description"], "May edit roles");
    assert_eq!(created["permissions"], json!(["role.read", "role.update"]));
    assert_eq!(created["builtin"], false, "created roles are not built in");
    let created_at = created["created_at"].as_i64().unwrap();
    assert!(created_at > 1_600_000_000_000, "{created}");
    assert_eq!(created["updated_at"], created["created_at"]);
    let keys: BTreeSet<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "name",
            "description",
            "permissions",
            "builtin",
            "created_at",
            "updated_at"
        ])
    );

    assert_eq!(ok(role, "get", json!({ "id": "editors" })), created);
    // "Administrator" sorts before "Editors".
    let admin = ok(role, "get", json!({ "id": ADMIN }));
    let list = ok(role, "list", json!({}));
    assert_eq!(
        list,
        json!({ "items": [admin.clone(), created.clone()], "total": 2 })
    );

    let updated = ok(
        role,
        "update",
        json!({ "id": "editors", "name": "Senior editors", "description": "" }),
    );
    assert_eq!(updated["name"], "Senior editors");
    assert_eq!(updated["description"], "");
    assert_eq!(updated["permissions"], created["permissions"]);
    assert_eq!(updated["builtin"], false);
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated["updated_at"].as_i64().unwrap() >= created_at);

    // Only the given fields change.
    let renamed_only = ok(
        role,
        "update",
        json!({ "id": "editors", "name": "Editors" }),
    );
    assert_eq!(renamed_only["description"], "");
    let described_only = ok(
        role,
        "update",
        json!({ "id": "editors", "description": "back" }),
    );
    assert_eq!(described_only["name"], "Editors");
    assert_eq!(described_only["description"], "back");

    let with_perms = ok(
        role,
        "set_permissions",
        json!({ "id": "editors", "permissions": ["role.delete", "eventlog.read", "role.delete"] }),
    );
    assert_eq!(
        with_perms["permissions"],
        json!(["eventlog.read", "role.delete"])
    );
    assert_eq!(ok(role, "get", json!({ "id": "editors" })), with_perms);
    let cleared = ok(
        role,
        "set_permissions",
        json!({ "id": "editors", "permissions": [] }),
    );
    assert_eq!(cleared["permissions"], json!([]));

    assert_eq!(
        ok(role, "delete", json!({ "id": "editors" })),
        json!({ "deleted": true })
    );
    assert_eq!(
        ok(role, "list", json!({})),
        json!({ "items": [admin], "total": 1 }),
        "only the built-in role is left"
    );
    env.host.shutdown();
}

#[test]
fn create_generates_a_random_id_when_none_is_given() {
    let env = start();
    let a = ok(&env.role, "create", json!({ "name": "A" }));
    let b = ok(
        &env.role,
        "create",
        json!({ "name": "B", "id": null, "description": null, "permissions": null }),
    );
    for r in [&a, &b] {
        let id = r["id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{id}"
        );
        assert_eq!(r["description"], "");
        assert_eq!(r["permissions"], json!([]));
        assert_eq!(r["builtin"], false);
        assert_eq!(ok(&env.role, "get", json!({ "id": id })), *r);
    }
    assert_ne!(a["id"], b["id"]);
    env.host.shutdown();
}

#[test]
fn names_and_descriptions_are_validated_and_nothing_is_stored() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "base", "name": "Base" }));
    let before = all_roles(role);

    for bad in ["", "   ", "\t\n"] {
        let err = fail(role, "create", json!({ "name": bad }));
        assert_invalid(&err, "name");
        assert!(err.message.contains("empty"), "{err}");
    }
    let err = fail(role, "create", json!({ "name": "x".repeat(101) }));
    assert_invalid(&err, "name");
    assert!(err.message.contains("100"), "{err}");
    let err = fail(role, "create", json!({ "name": "bad\u{7}name" }));
    assert_invalid(&err, "name");
    let err = fail(role, "create", json!({}));
    assert_invalid(&err, "name");
    let err = fail(role, "create", json!({ "name": 5 }));
    assert_eq!(err.code, codes::INVALID_INPUT);
    let err = fail(
        role,
        "create",
        json!({ "name": "Long text", "description": "d".repeat(1001) }),
    );
    assert_invalid(&err, "description");

    // The same rules apply to update.
    for bad in [json!(""), json!("y".repeat(101))] {
        let err = fail(role, "update", json!({ "id": "base", "name": bad }));
        assert_invalid(&err, "name");
    }
    let err = fail(
        role,
        "update",
        json!({ "id": "base", "description": "d".repeat(1001) }),
    );
    assert_invalid(&err, "description");
    assert_eq!(all_roles(role), before);

    // Boundaries that are fine: exactly 100 characters (not bytes).
    let long = "ü".repeat(100);
    let created = ok(role, "create", json!({ "name": long }));
    assert_eq!(created["name"], long);
    let described = ok(
        role,
        "create",
        json!({ "name": "Described", "description": "line 1\nline 2\t".to_string() + &"d".repeat(985) }),
    );
    assert_eq!(
        described["description"].as_str().unwrap().chars().count(),
        999
    );
    env.host.shutdown();
}

#[test]
fn duplicate_names_are_rejected_case_insensitively() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "admins", "name": "Admins" }));
    let before = all_roles(role);
    for dup in ["Admins", "admins", "ADMINS", "  aDmInS  "] {
        let err = fail(role, "create", json!({ "name": dup }));
        assert_eq!(err.code, codes::CONFLICT, "{dup}: {err}");
        assert!(err.message.contains("already exists"), "{err}");
        assert_eq!(err.details.as_ref().unwrap()["field"], "name");
    }
    ok(role, "create", json!({ "id": "other", "name": "Other" }));
    let err = fail(role, "update", json!({ "id": "other", "name": "ADMINS" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert_eq!(ok(role, "get", json!({ "id": "other" }))["name"], "Other");
    let after = all_roles(role);
    assert_eq!(after["total"], 3, "Administrator, Admins and Other");
    assert_eq!(names(&after), [ADMIN_NAME, "Admins", "Other"]);
    assert_eq!(item(&after, "admins"), item(&before, "admins"));
    assert_eq!(item(&after, ADMIN), item(&before, ADMIN));
    env.host.shutdown();
}

#[test]
fn ids_are_validated_and_unique() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "admins", "name": "Admins" }));
    let before = all_roles(role);
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "Admins",
        "-admins",
        "_admins",
        "ad mins",
        "ad/mins",
        "ädmins",
        "a.b",
        too_long.as_str(),
    ] {
        let err = fail(role, "create", json!({ "id": bad, "name": "New" }));
        assert_invalid(&err, "id");
        for op in ["get", "delete"] {
            assert_invalid(&fail(role, op, json!({ "id": bad })), "id");
        }
        assert_invalid(
            &fail(role, "update", json!({ "id": bad, "name": "X" })),
            "id",
        );
        assert_invalid(
            &fail(
                role,
                "set_permissions",
                json!({ "id": bad, "permissions": [] }),
            ),
            "id",
        );
    }
    ok(
        role,
        "create",
        json!({ "id": "a".repeat(64), "name": "Longest id" }),
    );
    ok(role, "create", json!({ "id": "0-x_y", "name": "Digits" }));

    let err = fail(role, "create", json!({ "id": "admins", "name": "Another" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert!(err.message.contains("admins"), "{err}");
    assert_eq!(err.details.as_ref().unwrap()["field"], "id");
    assert_eq!(ok(role, "get", json!({ "id": "admins" }))["name"], "Admins");
    let after = all_roles(role);
    assert_eq!(
        after["total"], 4,
        "the built-in role and three created ones"
    );
    assert_eq!(item(&after, "admins"), item(&before, "admins"));
    assert_eq!(
        ok(role, "list", json!({ "search": "another" }))["total"],
        0,
        "the failed create must not leave its name behind"
    );
    env.host.shutdown();
}

#[test]
fn unknown_permission_ids_are_rejected() {
    let env = start();
    let role = &env.role;
    ok(
        role,
        "create",
        json!({ "id": "r", "name": "R", "permissions": ["role.read"] }),
    );
    let before = all_roles(role);

    let err = fail(
        role,
        "create",
        json!({ "name": "New", "permissions": ["role.read", "nope.zzz", "also.missing", "nope.zzz"] }),
    );
    assert_invalid(&err, "permissions");
    assert!(
        err.message.contains("'also.missing', 'nope.zzz'"),
        "message lists the unknown ids, sorted: {err}"
    );
    assert!(!err.message.contains("role.read"), "{err}");
    assert_eq!(
        err.details.as_ref().unwrap()["unknown"],
        json!(["also.missing", "nope.zzz"])
    );
    let err = fail(
        role,
        "set_permissions",
        json!({ "id": "r", "permissions": ["role.read", "Not A Permission"] }),
    );
    assert_invalid(&err, "permissions");
    assert_eq!(
        err.details.as_ref().unwrap()["unknown"],
        json!(["Not A Permission"])
    );
    assert_eq!(all_roles(role), before);
    assert!(role_events(&env.audit)
        .iter()
        .all(|(topic, _)| topic == "role.created"));

    // set_permissions on a missing role is not_found.
    let err = fail(
        role,
        "set_permissions",
        json!({ "id": "ghost", "permissions": ["role.read"] }),
    );
    assert_eq!(err.code, codes::NOT_FOUND, "{err}");

    // Permissions of any active plugin are accepted.
    let r = ok(
        role,
        "set_permissions",
        json!({ "id": "r", "permissions": ["eventlog.read", "permission.read"] }),
    );
    assert_eq!(
        r["permissions"],
        json!(["eventlog.read", "permission.read"])
    );
    env.host.shutdown();
}

#[test]
fn unknown_fields_are_rejected() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "r", "name": "R" }));
    let before = all_roles(role);
    let cases = [
        ("create", json!({ "name": "X", "colour": "red" })),
        (
            "create",
            json!({ "name": "X", "permission": ["role.read"] }),
        ),
        ("get", json!({ "id": "r", "extra": 1 })),
        ("list", json!({ "page": 2 })),
        (
            "update",
            json!({ "id": "r", "name": "Y", "permissions": [] }),
        ),
        (
            "set_permissions",
            json!({ "id": "r", "permissions": [], "name": "Z" }),
        ),
        ("delete", json!({ "id": "r", "force": true })),
        ("check", json!({ "ids": [], "x": 1 })),
        ("permissions_of", json!({ "ids": [], "x": 1 })),
    ];
    for (op, req) in cases {
        let err = fail(role, op, req.clone());
        assert_eq!(err.code, codes::INVALID_INPUT, "{op} {req}: {err}");
        assert!(err.message.contains("unknown field"), "{op}: {err}");
    }
    assert_eq!(all_roles(role), before);
    assert_eq!(role_events(&env.audit).len(), 1);
    env.host.shutdown();
}

#[test]
fn list_sorts_by_name_pages_and_searches() {
    let env = start();
    let role = &env.role;
    for (id, name, description) in [
        ("r1", "charlie", "third"),
        ("r2", "Alpha", "first one"),
        ("r3", "bravo", "second"),
        ("r4", "Delta", "fourth, FIRST-class"),
        ("r5", "echo", ""),
    ] {
        ok(
            role,
            "create",
            json!({ "id": id, "name": name, "description": description }),
        );
    }
    // The built-in "Administrator" sorts first ("ad" < "al").
    let all = ok(role, "list", json!({}));
    assert_eq!(all["total"], 6);
    assert_eq!(
        names(&all),
        [ADMIN_NAME, "Alpha", "bravo", "charlie", "Delta", "echo"],
        "sorted by name, case-insensitively"
    );

    let page = ok(role, "list", json!({ "offset": 2, "limit": 2 }));
    assert_eq!(page["total"], 6);
    assert_eq!(names(&page), ["bravo", "charlie"]);
    let head = ok(role, "list", json!({ "offset": 0, "limit": 2 }));
    assert_eq!(names(&head), [ADMIN_NAME, "Alpha"]);
    let tail = ok(role, "list", json!({ "offset": 5, "limit": 2 }));
    assert_eq!(names(&tail), ["echo"]);
    let past = ok(role, "list", json!({ "offset": 99 }));
    assert_eq!(past, json!({ "items": [], "total": 6 }));
    let huge = ok(role, "list", json!({ "offset": u64::MAX }));
    assert_eq!(huge["total"], 6);

    // Search matches id, name or description, case-insensitively.
    let first = ok(role, "list", json!({ "search": "first" }));
    assert_eq!(names(&first), ["Alpha", "Delta"]);
    assert_eq!(first["total"], 2);
    assert_eq!(
        names(&ok(role, "list", json!({ "search": "ECH" }))),
        ["echo"]
    );
    assert_eq!(
        names(&ok(role, "list", json!({ "search": "r3" }))),
        ["bravo"]
    );
    // The built-in role is searchable like any other (id, name, description).
    for needle in ["ADMIN", "administ", "every active"] {
        assert_eq!(
            names(&ok(role, "list", json!({ "search": needle }))),
            [ADMIN_NAME],
            "{needle}"
        );
    }
    let paged = ok(
        role,
        "list",
        json!({ "search": "first", "offset": 1, "limit": 1 }),
    );
    assert_eq!(names(&paged), ["Delta"]);
    assert_eq!(paged["total"], 2);
    assert_eq!(
        ok(role, "list", json!({ "search": "zzz" })),
        json!({ "items": [], "total": 0 })
    );
    assert_eq!(ok(role, "list", json!({ "search": "  " }))["total"], 6);

    // Bad limits.
    for limit in [json!(0), json!(501), json!(100000)] {
        let err = fail(role, "list", json!({ "limit": limit }));
        assert_invalid(&err, "limit");
    }
    for bad in [json!(-1), json!("ten"), json!(1.5)] {
        let err = fail(role, "list", json!({ "limit": bad }));
        assert_eq!(err.code, codes::INVALID_INPUT, "{err}");
        let err = fail(role, "list", json!({ "offset": bad }));
        assert_eq!(err.code, codes::INVALID_INPUT, "{err}");
    }
    assert_eq!(ok(role, "list", json!({ "limit": 500 }))["total"], 6);
    assert_eq!(
        names(&ok(role, "list", json!({ "limit": 1 }))),
        [ADMIN_NAME]
    );
    env.host.shutdown();
}

#[test]
fn more_than_a_page_of_roles_is_listed_completely() {
    let env = start();
    for i in 0..120 {
        ok(
            &env.role,
            "create",
            json!({ "id": format!("r{i:03}"), "name": format!("Role {i:03}") }),
        );
    }
    // 120 created roles plus the built-in "Administrator", which sorts first.
    let first = ok(&env.role, "list", json!({}));
    assert_eq!(first["total"], 121);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    let mut seen = Vec::new();
    for offset in (0..121).step_by(50) {
        let page = ok(&env.role, "list", json!({ "offset": offset }));
        seen.extend(names(&page));
    }
    let expected: Vec<String> = std::iter::once(ADMIN_NAME.to_string())
        .chain((0..120).map(|i| format!("Role {i:03}")))
        .collect();
    assert_eq!(seen, expected);
    env.host.shutdown();
}

#[test]
fn renames_keep_the_name_index_consistent() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "a", "name": "Readers" }));
    ok(role, "create", json!({ "id": "b", "name": "Writers" }));

    // Rename frees the old name and takes the new one.
    ok(role, "update", json!({ "id": "a", "name": "Viewers" }));
    ok(role, "create", json!({ "id": "c", "name": "readers" }));
    let err = fail(role, "create", json!({ "name": "VIEWERS" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");

    // A case-only rename of the same role is allowed and keeps the name taken.
    let renamed = ok(role, "update", json!({ "id": "a", "name": "VIEWERS" }));
    assert_eq!(renamed["name"], "VIEWERS");
    let err = fail(role, "create", json!({ "name": "viewers" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");

    // Renaming onto another role's name fails and changes nothing.
    let err = fail(role, "update", json!({ "id": "b", "name": "viewers" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert_eq!(ok(role, "get", json!({ "id": "b" }))["name"], "Writers");
    ok(role, "create", json!({ "name": "Editors" }));

    // Swapping names through a temporary name works.
    ok(role, "update", json!({ "id": "b", "name": "tmp" }));
    ok(role, "update", json!({ "id": "a", "name": "Writers" }));
    ok(role, "update", json!({ "id": "b", "name": "Viewers" }));
    let list = ok(role, "list", json!({}));
    assert_eq!(
        names(&list),
        [ADMIN_NAME, "Editors", "readers", "Viewers", "Writers"]
    );
    // The temporary name was released again.
    ok(role, "create", json!({ "name": "TMP" }));
    env.host.shutdown();
}

#[test]
fn subjects_without_the_permission_are_refused_and_nothing_changes() {
    let env = start();
    let role = &env.role;
    ok(
        role,
        "create",
        json!({ "id": "admins", "name": "Admins", "permissions": ["role.read"] }),
    );
    let before = all_roles(role);
    let events_before = role_events(&env.audit);

    // A user holding every role permission except the one each op needs.
    let all = [
        "role.create",
        "role.read",
        "role.update",
        "role.set_permissions",
        "role.delete",
    ];
    let cases = [
        ("create", "role.create", json!({ "name": "New" })),
        ("get", "role.read", json!({ "id": "admins" })),
        ("list", "role.read", json!({})),
        (
            "update",
            "role.update",
            json!({ "id": "admins", "name": "Hacked" }),
        ),
        (
            "set_permissions",
            "role.set_permissions",
            json!({ "id": "admins", "permissions": ["role.delete"] }),
        ),
        ("delete", "role.delete", json!({ "id": "admins" })),
    ];
    for (op, needed, req) in cases {
        let others: Vec<&str> = all.iter().copied().filter(|p| *p != needed).collect();
        for ctx in [user(&[]), user(&others)] {
            let err = fail_as(role, &ctx, op, req.clone());
            assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}: {err}");
            assert!(err.message.contains(needed), "{op}: {err}");
        }
        let err = fail_as(role, &CallContext::default(), op, req.clone());
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err}");
    }
    assert_eq!(all_roles(role), before);
    assert_eq!(
        ok(role, "get", json!({ "id": "admins" })),
        *item(&before, "admins")
    );
    assert_eq!(role_events(&env.audit), events_before);

    // With the permission, the same user succeeds.
    let reader = user(&["role.read"]);
    let got: Value = role
        .call_as(&reader, "get", &json!({ "id": "admins" }))
        .unwrap();
    assert_eq!(got["name"], "Admins");
    let listed: Value = role.call_as(&reader, "list", &json!({})).unwrap();
    assert_eq!(listed["total"], 2, "Administrator and Admins");
    let creator = user(&["role.create"]);
    let created: Value = role
        .call_as(&creator, "create", &json!({ "name": "By user" }))
        .unwrap();
    assert_eq!(created["name"], "By user");
    let updater = user(&["role.update"]);
    let _: Value = role
        .call_as(
            &updater,
            "update",
            &json!({ "id": "admins", "name": "Admins 2" }),
        )
        .unwrap();
    let granter = user(&["role.set_permissions"]);
    let _: Value = role
        .call_as(
            &granter,
            "set_permissions",
            &json!({ "id": "admins", "permissions": ["role.read", "role.create"] }),
        )
        .unwrap();
    let deleter = user(&["role.delete"]);
    let _: Value = role
        .call_as(&deleter, "delete", &json!({ "id": "admins" }))
        .unwrap();
    // Anonymous callers holding the permission are allowed too.
    let anon_reader = CallContext::for_subject(Subject::Anonymous {
        permissions: ["role.read".to_string()].into_iter().collect(),
    });
    let listed: Value = role.call_as(&anon_reader, "list", &json!({})).unwrap();
    assert_eq!(names(&listed), [ADMIN_NAME, "By user"]);
    env.host.shutdown();
}

#[test]
fn check_and_permissions_of_are_for_the_system_and_plugins_only() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "r", "name": "R" }));
    let everything = user(&[
        "role.create",
        "role.read",
        "role.update",
        "role.set_permissions",
        "role.delete",
        "system",
    ]);
    for op in ["check", "permissions_of"] {
        let err = fail_as(role, &everything, op, json!({ "ids": ["r"] }));
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}: {err}");
        // Anonymous callers are told to authenticate (HTTP 401), users that
        // they lack the right (403); neither may call system operations.
        let err = fail_as(role, &CallContext::default(), op, json!({ "ids": ["r"] }));
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err}");
        let as_plugin = CallContext::for_subject(Subject::Plugin { id: "user".into() });
        let _: Value = role
            .call_as(&as_plugin, op, &json!({ "ids": ["r"] }))
            .unwrap();
    }
    env.host.shutdown();
}

#[test]
fn check_reports_missing_roles() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "a", "name": "A" }));
    ok(role, "create", json!({ "id": "b", "name": "B" }));
    assert_eq!(
        ok(role, "check", json!({ "ids": ["b", "a", "a"] })),
        json!({ "unknown": [] })
    );
    assert_eq!(
        ok(
            role,
            "check",
            json!({ "ids": ["zz", "a", "Not/A Slug", "c", "zz", ""] })
        ),
        json!({ "unknown": ["", "Not/A Slug", "c", "zz"] })
    );
    assert_eq!(
        ok(role, "check", json!({ "ids": [] })),
        json!({ "unknown": [] })
    );
    ok(role, "delete", json!({ "id": "a" }));
    assert_eq!(
        ok(role, "check", json!({ "ids": ["a", "b"] })),
        json!({ "unknown": ["a"] })
    );
    let err = fail(role, "check", json!({}));
    assert_invalid(&err, "ids");
    env.host.shutdown();
}

#[test]
fn permissions_of_returns_the_union_and_reports_unknown_roles() {
    let env = start();
    let role = &env.role;
    ok(
        role,
        "create",
        json!({ "id": "readers", "name": "Readers", "permissions": ["role.read", "permission.read"] }),
    );
    ok(
        role,
        "create",
        json!({ "id": "writers", "name": "Writers", "permissions": ["role.read", "role.update", "role.create"] }),
    );
    ok(role, "create", json!({ "id": "empty", "name": "Empty" }));

    assert_eq!(
        ok(
            role,
            "permissions_of",
            json!({ "ids": ["writers", "readers", "empty", "ghost", "readers", "Bad Id"] })
        ),
        json!({
            "permissions": ["permission.read", "role.create", "role.read", "role.update"],
            "unknown": ["Bad Id", "ghost"]
        })
    );
    assert_eq!(
        ok(role, "permissions_of", json!({ "ids": ["readers"] })),
        json!({ "permissions": ["permission.read", "role.read"], "unknown": [] })
    );
    assert_eq!(
        ok(role, "permissions_of", json!({ "ids": [] })),
        json!({ "permissions": [], "unknown": [] })
    );

    // Follows changes: new permission sets and deletions.
    ok(
        role,
        "set_permissions",
        json!({ "id": "readers", "permissions": ["eventlog.read"] }),
    );
    ok(role, "delete", json!({ "id": "writers" }));
    assert_eq!(
        ok(
            role,
            "permissions_of",
            json!({ "ids": ["readers", "writers"] })
        ),
        json!({ "permissions": ["eventlog.read"], "unknown": ["writers"] })
    );
    env.host.shutdown();
}

#[test]
fn events_carry_the_expected_payloads() {
    let env = start();
    let role = &env.role;
    let created = ok(
        role,
        "create",
        json!({ "id": "ops", "name": "Ops", "permissions": ["role.read"] }),
    );
    let updated = ok(
        role,
        "update",
        json!({ "id": "ops", "name": "Operations", "description": "Runs things" }),
    );
    let granted = ok(
        role,
        "set_permissions",
        json!({ "id": "ops", "permissions": ["role.read", "role.update"] }),
    );
    ok(role, "delete", json!({ "id": "ops" }));

    let events = role_events(&env.audit);
    assert_eq!(
        events,
        vec![
            ("role.created".to_string(), json!({ "role": created })),
            ("role.updated".to_string(), json!({ "role": updated })),
            ("role.updated".to_string(), json!({ "role": granted })),
            ("role.deleted".to_string(), json!({ "id": "ops" })),
        ]
    );
    env.host.shutdown();
}

#[test]
fn failed_and_unchanged_changes_publish_nothing() {
    let env = start();
    let role = &env.role;
    let created = ok(
        role,
        "create",
        json!({ "id": "ops", "name": "Ops", "description": "d", "permissions": ["role.read"] }),
    );
    ok(role, "create", json!({ "id": "other", "name": "Other" }));
    assert_eq!(role_events(&env.audit).len(), 2);

    // No-op changes return the role unchanged and write nothing.
    assert_eq!(ok(role, "update", json!({ "id": "ops" })), created);
    assert_eq!(
        ok(
            role,
            "update",
            json!({ "id": "ops", "name": " Ops ", "description": "d" })
        ),
        created
    );
    assert_eq!(
        ok(
            role,
            "set_permissions",
            json!({ "id": "ops", "permissions": ["role.read", "role.read"] })
        ),
        created
    );
    // Failures.
    fail(role, "create", json!({ "name": "ops" }));
    fail(role, "create", json!({ "id": "ops", "name": "Fresh" }));
    fail(role, "update", json!({ "id": "ops", "name": "OTHER" }));
    fail(role, "update", json!({ "id": "ghost", "name": "Ghost" }));
    fail(role, "delete", json!({ "id": "ghost" }));
    fail(
        role,
        "set_permissions",
        json!({ "id": "ops", "permissions": ["no.such"] }),
    );
    assert_eq!(role_events(&env.audit).len(), 2);
    assert_eq!(ok(role, "get", json!({ "id": "ops" })), created);
    env.host.shutdown();
}

#[test]
fn delete_then_get_is_not_found_and_the_name_is_free_again() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "temp", "name": "Temporary" }));
    ok(role, "create", json!({ "id": "keep", "name": "Keep" }));
    assert_eq!(
        ok(role, "delete", json!({ "id": "temp" })),
        json!({ "deleted": true })
    );

    let err = fail(role, "get", json!({ "id": "temp" }));
    assert_eq!(err.code, codes::NOT_FOUND, "{err}");
    assert!(err.message.contains("temp"), "{err}");
    for (op, req) in [
        ("delete", json!({ "id": "temp" })),
        ("update", json!({ "id": "temp", "name": "X" })),
        (
            "set_permissions",
            json!({ "id": "temp", "permissions": [] }),
        ),
    ] {
        let err = fail(role, op, req);
        assert_eq!(err.code, codes::NOT_FOUND, "{op}: {err}");
    }
    assert_eq!(names(&ok(role, "list", json!({}))), [ADMIN_NAME, "Keep"]);

    // Both the name (any case) and the id can be used again.
    let again = ok(role, "create", json!({ "id": "temp", "name": "TEMPORARY" }));
    assert_eq!(again["name"], "TEMPORARY");
    assert_eq!(again["permissions"], json!([]));
    assert_eq!(
        names(&ok(role, "list", json!({}))),
        [ADMIN_NAME, "Keep", "TEMPORARY"]
    );
    env.host.shutdown();
}

#[test]
fn roles_survive_a_restart() {
    let plugins = plugin_dir();
    let data = tempfile::tempdir().unwrap();
    let created = {
        let (host, role, audit) = start_on(&plugins, data.path());
        let created = ok(
            &role,
            "create",
            json!({ "id": "persist", "name": "Persistent", "permissions": ["role.read"] }),
        );
        assert!(host.shutdown().is_empty());
        drop((role, audit));
        drop(host);
        created
    };
    let (host, role, _audit) = start_on(&plugins, data.path());
    assert_eq!(ok(&role, "get", json!({ "id": "persist" })), created);
    let err = fail(&role, "create", json!({ "name": "persistent" }));
    assert_eq!(err.code, codes::CONFLICT, "the name index persisted: {err}");
    host.shutdown();
}

#[test]
fn concurrent_creates_of_one_name_yield_exactly_one_role() {
    let env = start();
    const THREADS: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let results: Vec<Result<Value, PluginError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let role = env.role.clone();
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    let name = if i % 2 == 0 { "Racers" } else { "RACERS" };
                    role.call::<Value, Value>("create", &json!({ "name": name }))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(err.code, codes::CONFLICT, "{err}");
    }
    let list = ok(&env.role, "list", json!({}));
    assert_eq!(list["total"], 2, "the built-in role and the one winner");
    let winner = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    assert_eq!(names(&list), [ADMIN_NAME, winner["name"].as_str().unwrap()]);
    env.host.shutdown();
}

#[test]
fn concurrent_changes_are_all_applied_and_the_index_stays_consistent() {
    let env = start();
    let role = &env.role;
    ok(role, "create", json!({ "id": "shared", "name": "Shared" }));
    for i in 0..4 {
        ok(
            role,
            "create",
            json!({ "id": format!("x{i}"), "name": format!("X{i}") }),
        );
    }
    const THREADS: usize = 4;
    let barrier = Arc::new(Barrier::new(THREADS));
    // Each thread renames its own role onto the same target name (one wins)
    // and, interleaved, changes the shared role's description and
    // permissions (every change must apply on top of the others).
    let outcomes: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let role = env.role.clone();
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    let won = role
                        .call::<Value, Value>(
                            "update",
                            &json!({ "id": format!("x{i}"), "name": "Target" }),
                        )
                        .is_ok();
                    for round in 0..5 {
                        let _: Value = role
                            .call(
                                "update",
                                &json!({ "id": "shared", "description": format!("t{i} r{round}") }),
                            )
                            .unwrap();
                        let perms = if (i + round) % 2 == 0 {
                            json!(["role.read"])
                        } else {
                            json!(["role.read", "role.update"])
                        };
                        let _: Value = role
                            .call(
                                "set_permissions",
                                &json!({ "id": "shared", "permissions": perms }),
                            )
                            .unwrap();
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|w| **w).count(), 1, "{outcomes:?}");

    let list = ok(role, "list", json!({}));
    assert_eq!(list["total"], 6, "the built-in role and five created ones");
    let listed = names(&list);
    assert_eq!(listed[0], ADMIN_NAME);
    assert_eq!(listed.iter().filter(|n| *n == "Target").count(), 1);
    assert!(listed.contains(&"Shared".to_string()));
    // Every old name of the renamed role is free, every current name taken.
    for i in 0..4 {
        let current = ok(role, "get", json!({ "id": format!("x{i}") }));
        let old = format!("X{i}");
        if current["name"] == "Target" {
            ok(role, "create", json!({ "name": old }));
        } else {
            let err = fail(role, "create", json!({ "name": old }));
            assert_eq!(err.code, codes::CONFLICT, "{err}");
        }
    }
    let err = fail(role, "create", json!({ "name": "target" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    env.host.shutdown();
}

#[test]
fn the_builtin_admin_role_exists_and_holds_every_permission() {
    let env = start();
    let role = &env.role;
    let declared = declared_permissions(&env.host);
    for p in [
        "role.read",
        "role.delete",
        "role.set_permissions",
        "permission.read",
        "eventlog.read",
    ] {
        assert!(declared.contains(&p.to_string()), "{p}: {declared:?}");
    }

    let admin = ok(role, "get", json!({ "id": ADMIN }));
    assert_eq!(admin["id"], ADMIN);
    assert_eq!(admin["name"], ADMIN_NAME);
    assert_eq!(
        admin["description"],
        "Holds every permission of every active system."
    );
    assert_eq!(admin["builtin"], true);
    assert_eq!(permissions(&admin), declared, "every declared id, sorted");
    assert!(admin["created_at"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(admin["updated_at"], admin["created_at"]);

    // Listed (with the same filled-in permissions) like any other role.
    assert_eq!(
        ok(role, "list", json!({})),
        json!({ "items": [admin.clone()], "total": 1 })
    );
    // It exists for `check` and resolves to every permission.
    assert_eq!(
        ok(role, "check", json!({ "ids": [ADMIN] })),
        json!({ "unknown": [] })
    );
    assert_eq!(
        ok(role, "permissions_of", json!({ "ids": [ADMIN] })),
        json!({ "permissions": declared, "unknown": [] })
    );
    // Combined with other roles and unknown ids: still all of them, once.
    ok(
        role,
        "create",
        json!({ "id": "readers", "name": "Readers", "permissions": ["role.read"] }),
    );
    assert_eq!(
        ok(
            role,
            "permissions_of",
            json!({ "ids": ["readers", ADMIN, "ghost", ADMIN] })
        ),
        json!({ "permissions": declared, "unknown": ["ghost"] })
    );
    assert_eq!(
        ok(role, "permissions_of", json!({ "ids": ["readers"] })),
        json!({ "permissions": ["role.read"], "unknown": [] }),
        "other roles do not gain every permission"
    );

    // Its id and name are taken like those of any role.
    let before = all_roles(role);
    let err = fail(role, "create", json!({ "id": ADMIN, "name": "Second" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert_eq!(err.details.as_ref().unwrap()["field"], "id");
    let err = fail(role, "create", json!({ "name": "ADMINISTRATOR" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert_eq!(err.details.as_ref().unwrap()["field"], "name");
    let err = fail(
        role,
        "update",
        json!({ "id": "readers", "name": "administrator" }),
    );
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert_eq!(all_roles(role), before);
    env.host.shutdown();
}

#[test]
fn the_builtin_admin_role_cannot_be_deleted_or_have_its_permissions_set() {
    let env = start();
    let role = &env.role;
    let admin = ok(role, "get", json!({ "id": ADMIN }));
    let before = all_roles(role);
    let events_before = role_events(&env.audit);
    let declared = declared_permissions(&env.host);

    let err = fail(role, "delete", json!({ "id": ADMIN }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    assert!(err.message.contains("built-in"), "{err}");
    assert!(err.message.contains(ADMIN), "{err}");
    // Also for a caller holding `role.delete`: authorized, still refused.
    let err = fail_as(
        role,
        &user(&["role.delete"]),
        "delete",
        json!({ "id": ADMIN }),
    );
    assert_eq!(err.code, codes::CONFLICT, "{err}");

    // Any new permission set is refused: fewer, none, or even the same.
    for perms in [json!([]), json!(["role.read"]), json!(declared.clone())] {
        let err = fail(
            role,
            "set_permissions",
            json!({ "id": ADMIN, "permissions": perms }),
        );
        assert_eq!(err.code, codes::CONFLICT, "{perms}: {err}");
        assert!(err.message.contains("built-in"), "{err}");
    }
    let err = fail_as(
        role,
        &user(&["role.set_permissions"]),
        "set_permissions",
        json!({ "id": ADMIN, "permissions": [] }),
    );
    assert_eq!(err.code, codes::CONFLICT, "{err}");

    // Still present and unchanged; nothing was published.
    assert_eq!(ok(role, "get", json!({ "id": ADMIN })), admin);
    assert_eq!(all_roles(role), before);
    assert_eq!(
        ok(role, "permissions_of", json!({ "ids": [ADMIN] })),
        json!({ "permissions": declared, "unknown": [] })
    );
    assert_eq!(role_events(&env.audit), events_before);
    env.host.shutdown();
}

#[test]
fn the_builtin_admin_role_can_be_renamed() {
    let env = start();
    let role = &env.role;
    let admin = ok(role, "get", json!({ "id": ADMIN }));
    let declared = declared_permissions(&env.host);

    let renamed = ok(
        role,
        "update",
        json!({ "id": ADMIN, "name": "Superusers", "description": "May do anything" }),
    );
    assert_eq!(renamed["id"], ADMIN);
    assert_eq!(renamed["name"], "Superusers");
    assert_eq!(renamed["description"], "May do anything");
    assert_eq!(
        renamed["builtin"], true,
        "a renamed built-in role stays built in"
    );
    assert_eq!(permissions(&renamed), declared);
    assert_eq!(renamed["created_at"], admin["created_at"]);
    assert!(renamed["updated_at"].as_i64() >= admin["updated_at"].as_i64());
    assert_eq!(ok(role, "get", json!({ "id": ADMIN })), renamed);

    let events = role_events(&env.audit);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "role.updated");
    let payload = &events[0].1["role"];
    assert_eq!(payload["id"], ADMIN);
    assert_eq!(payload["name"], "Superusers");
    assert_eq!(payload["builtin"], true);

    // The old name is free, the new one taken; the rename changed nothing else.
    let reused = ok(role, "create", json!({ "name": "administrator" }));
    assert_eq!(reused["builtin"], false);
    assert_eq!(reused["permissions"], json!([]));
    let err = fail(role, "create", json!({ "name": "SUPERUSERS" }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    let list = ok(role, "list", json!({}));
    assert_eq!(names(&list), ["administrator", "Superusers"]);
    assert_eq!(builtin_roles(&list), std::slice::from_ref(&renamed));
    assert_eq!(
        ok(role, "permissions_of", json!({ "ids": [ADMIN] }))["permissions"],
        json!(declared)
    );
    // Description-only change and renaming back work too; still not deletable.
    let described = ok(role, "update", json!({ "id": ADMIN, "description": "" }));
    assert_eq!(described["description"], "");
    assert_eq!(described["name"], "Superusers");
    ok(role, "delete", json!({ "id": reused["id"] }));
    let back = ok(role, "update", json!({ "id": ADMIN, "name": ADMIN_NAME }));
    assert_eq!(back["name"], ADMIN_NAME);
    assert_eq!(back["builtin"], true);
    let err = fail(role, "delete", json!({ "id": ADMIN }));
    assert_eq!(err.code, codes::CONFLICT, "{err}");
    env.host.shutdown();
}

#[test]
fn the_admin_role_is_seeded_once_across_restarts() {
    let plugins = plugin_dir();
    let data = tempfile::tempdir().unwrap();
    let restart = |check: &dyn Fn(&Host, &SystemHandle)| {
        let (host, role, audit) = start_on(&plugins, data.path());
        check(&host, &role);
        assert!(host.shutdown().is_empty());
        drop((role, audit));
        drop(host);
    };

    let seeded = std::cell::RefCell::new(Value::Null);
    restart(&|_, role| {
        let list = all_roles(role);
        let builtin = builtin_roles(&list);
        assert_eq!(builtin.len(), 1, "{list}");
        assert_eq!(builtin[0]["id"], ADMIN);
        ok(role, "create", json!({ "id": "custom", "name": "Custom" }));
        *seeded.borrow_mut() = builtin[0].clone();
    });
    let seeded = seeded.into_inner();

    // Second start: the same single built-in role, not seeded again.
    restart(&|_, role| {
        let list = all_roles(role);
        assert_eq!(list["total"], 2, "{list}");
        assert_eq!(builtin_roles(&list), std::slice::from_ref(&seeded));
        let admin = ok(role, "get", json!({ "id": ADMIN }));
        assert_eq!(admin["created_at"], seeded["created_at"]);
        assert_eq!(admin, seeded);
        // Rename it: a later start must not seed a new "Administrator".
        ok(role, "update", json!({ "id": ADMIN, "name": "Root" }));
    });

    restart(&|_, role| {
        let list = all_roles(role);
        assert_eq!(names(&list), ["Custom", "Root"]);
        let builtin = builtin_roles(&list);
        assert_eq!(builtin.len(), 1, "{list}");
        assert_eq!(builtin[0]["id"], ADMIN);
        assert_eq!(builtin[0]["created_at"], seeded["created_at"]);
        assert_eq!(builtin[0]["permissions"], seeded["permissions"]);
    });
}

#[test]
fn the_admin_role_gains_permissions_of_systems_activated_later() {
    let plugins = PluginDir::with(&[
        system_library("role"),
        system_library("permission"),
        system_library("license"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let role = host.activate("role").expect("role activates");
    assert!(!host.is_active("license"));

    let before = permissions(&ok(&role, "get", json!({ "id": ADMIN })));
    assert_eq!(before, declared_permissions(&host));
    assert!(before.contains(&"role.read".to_string()), "{before:?}");
    assert!(
        !before.iter().any(|p| p.starts_with("license.")),
        "{before:?}"
    );

    host.activate("license").expect("license activates");
    let declared = declared_permissions(&host);
    for p in ["license.read", "license.manage", "license.assign"] {
        assert!(declared.contains(&p.to_string()), "{p}: {declared:?}");
    }
    let admin = ok(&role, "get", json!({ "id": ADMIN }));
    let after = permissions(&admin);
    assert_eq!(after, declared);
    assert!(after.contains(&"license.read".to_string()), "{after:?}");
    assert!(
        before.iter().all(|p| after.contains(p)),
        "{before:?} ⊄ {after:?}"
    );
    assert_eq!(builtin_roles(&ok(&role, "list", json!({}))), [admin]);
    assert_eq!(
        ok(&role, "permissions_of", json!({ "ids": [ADMIN] })),
        json!({ "permissions": declared, "unknown": [] })
    );
    // A created role may now hold the new permission; only admin holds all.
    let r = ok(
        &role,
        "create",
        json!({ "id": "auditors", "name": "Auditors", "permissions": ["license.read"] }),
    );
    assert_eq!(r["permissions"], json!(["license.read"]));
    host.shutdown();
}
