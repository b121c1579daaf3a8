//! The `license` system through the real host and the real plugin library:
//! app and user licenses, seats, validation, authorization, events (observed
//! with the event-log example plugin), clean-up on delete, and exact seat
//! accounting under concurrency.
//!
//! The `user.deleted` handler cannot be reached from here (only the `user`
//! plugin may publish `user.*`); it is unit-tested in
//! `plugins/license/src/tests.rs`.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject, UserSubject};
use syshost_test_support::{library, PluginDir};

/// A running host with `license` and `audit` active, and its directories.
struct Env {
    host: Host,
    license: SystemHandle,
    audit: SystemHandle,
    _plugins: PluginDir,
    _data: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.host.shutdown();
    }
}

fn start() -> Env {
    let plugins = PluginDir::systems_and(&[library("syshost-example-event-log")]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let report = host.activate_all(&["eventlog".into(), "license".into()]);
    assert!(report.is_ok(), "{report:?}");
    Env {
        license: host.system("license").unwrap(),
        audit: host.system("eventlog").unwrap(),
        host,
        _plugins: plugins,
        _data: data,
    }
}

fn user(permissions: &[&str]) -> CallContext {
    CallContext::for_subject(Subject::User(UserSubject {
        id: "u1".into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }))
}

fn call(h: &SystemHandle, op: &str, req: Value) -> Value {
    h.call(op, &req)
        .unwrap_or_else(|e| panic!("{op} {req}: {e}"))
}

fn fail(h: &SystemHandle, op: &str, req: Value) -> PluginError {
    match h.call::<_, Value>(op, &req) {
        Ok(v) => panic!("{op} {req} should fail, got {v}"),
        Err(e) => e,
    }
}

/// Every recorded event, oldest first, as (topic, payload).
fn events(audit: &SystemHandle) -> Vec<(String, Value)> {
    let page: Value = call(audit, "list", json!({ "limit": 500 }));
    let mut out: Vec<(String, Value)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["topic"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn event_count(audit: &SystemHandle) -> u64 {
    call(audit, "count", json!({}))["count"].as_u64().unwrap()
}

/// Everything observable: both lists, the seats, every assignee list and
/// the number of events.
fn snapshot(env: &Env) -> Value {
    let l = &env.license;
    let users = call(l, "list_user_licenses", json!({ "limit": 500 }));
    let assignees: Vec<Value> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            call(
                l,
                "assignees",
                json!({ "license_id": u["id"], "limit": 500 }),
            )
        })
        .collect();
    json!({
        "apps": call(l, "list_app_licenses", json!({ "limit": 500 })),
        "users": users,
        "seats": call(l, "seats", json!({})),
        "assignees": assignees,
        "events": event_count(&env.audit),
    })
}

fn create_user_license(l: &SystemHandle, id: &str, max_users: u64) -> Value {
    call(
        l,
        "create_user_license",
        json!({ "id": id, "name": id.to_uppercase(), "max_users": max_users }),
    )
}

fn assign(l: &SystemHandle, license: &str, user: &str) -> Value {
    call(
        l,
        "assign",
        json!({ "license_id": license, "user_id": user }),
    )
}

fn licenses_of(l: &SystemHandle, user: &str) -> Value {
    call(l, "licenses_of", json!({ "user_id": user }))["licenses"].clone()
}

fn seats_of(l: &SystemHandle, license: &str) -> Value {
    call(l, "seats", json!({ "license_id": license }))["items"][0].clone()
}

fn assignees(l: &SystemHandle, license: &str) -> Vec<String> {
    let page = call(
        l,
        "assignees",
        json!({ "license_id": license, "limit": 500 }),
    );
    let items: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(page["total"], items.len());
    items
}

#[test]
fn app_licenses_round_trip_with_events() {
    let env = start();
    let l = &env.license;
    let created = call(
        l,
        "create_app_license",
        json!({
            "id": "reports",
            "name": " Reports ",
            "description": "The reporting module",
            "url": "https://example.com/reports"
        }),
    );
    assert_eq!(created["id"], "reports");
    assert_eq!(created["name"], "Reports");
    assert_eq!(created["url"], "https://example.com/reports");
    assert_eq!(created["enabled"], false, "disabled unless asked");
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
            "url",
            "enabled",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(
        call(l, "get_app_license", json!({ "id": "reports" })),
        created
    );
    let chat = call(
        l,
        "create_app_license",
        json!({ "id": "chat", "name": "Chat", "enabled": true }),
    );
    assert_eq!(chat["enabled"], true);
    assert_eq!(chat["url"], "");
    assert_eq!(chat["description"], "");

    let list = call(l, "list_app_licenses", json!({}));
    assert_eq!(list, json!({ "items": [chat, created], "total": 2 }));

    let enabled = call(
        l,
        "set_app_license_enabled",
        json!({ "id": "reports", "enabled": true }),
    );
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["created_at"], created["created_at"]);
    // Setting the same state again changes nothing and announces nothing.
    let events_before = event_count(&env.audit);
    assert_eq!(
        call(
            l,
            "set_app_license_enabled",
            json!({ "id": "reports", "enabled": true })
        ),
        enabled
    );
    assert_eq!(event_count(&env.audit), events_before);

    let updated = call(
        l,
        "update_app_license",
        json!({ "id": "reports", "name": "Reporting", "url": "" }),
    );
    assert_eq!(updated["name"], "Reporting");
    assert_eq!(updated["url"], "");
    assert_eq!(updated["description"], "The reporting module");
    assert_eq!(updated["enabled"], true);
    assert_eq!(
        call(l, "get_app_license", json!({ "id": "reports" })),
        updated
    );
    let search = call(l, "list_app_licenses", json!({ "search": "REPORTING" }));
    assert_eq!(search, json!({ "items": [updated], "total": 1 }));

    assert_eq!(
        call(l, "delete_app_license", json!({ "id": "reports" })),
        json!({ "deleted": true })
    );
    let err = fail(l, "get_app_license", json!({ "id": "reports" }));
    assert_eq!(err.code, codes::NOT_FOUND);
    assert_eq!(
        call(l, "list_app_licenses", json!({})),
        json!({ "items": [chat], "total": 1 })
    );

    let seen = events(&env.audit);
    assert_eq!(
        seen,
        [
            (
                "license.updated".to_string(),
                json!({ "license": created, "kind": "app" })
            ),
            (
                "license.updated".to_string(),
                json!({ "license": chat, "kind": "app" })
            ),
            (
                "license.updated".to_string(),
                json!({ "license": enabled, "kind": "app" })
            ),
            (
                "license.updated".to_string(),
                json!({ "license": updated, "kind": "app" })
            ),
            (
                "license.deleted".to_string(),
                json!({ "id": "reports", "kind": "app" })
            ),
        ]
    );
}

#[test]
fn user_licenses_round_trip_with_events() {
    let env = start();
    let l = &env.license;
    let created = call(
        l,
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "description": "Pro seats", "max_users": 5 }),
    );
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
            "max_users",
            "used",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(created["max_users"], 5);
    assert_eq!(created["used"], 0);
    assert_eq!(call(l, "get_user_license", json!({ "id": "pro" })), created);
    let basic = call(
        l,
        "create_user_license",
        json!({ "name": "Basic", "max_users": 0 }),
    );
    let basic_id = basic["id"].as_str().unwrap().to_string();
    assert_eq!(basic_id.len(), 32, "generated id");

    assign(l, "pro", "alice");
    let list = call(l, "list_user_licenses", json!({}));
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0], basic);
    assert_eq!(list["items"][1]["id"], "pro");
    assert_eq!(list["items"][1]["used"], 1);

    let updated = call(
        l,
        "update_user_license",
        json!({ "id": "pro", "name": "Professional", "max_users": 7 }),
    );
    assert_eq!(updated["name"], "Professional");
    assert_eq!(updated["max_users"], 7);
    assert_eq!(updated["used"], 1);
    assert_eq!(updated["description"], "Pro seats");
    assert_eq!(call(l, "get_user_license", json!({ "id": "pro" })), updated);
    // No change, no event.
    let before = event_count(&env.audit);
    assert_eq!(
        call(
            l,
            "update_user_license",
            json!({ "id": "pro", "max_users": 7 })
        ),
        updated
    );
    assert_eq!(event_count(&env.audit), before);

    assert_eq!(
        call(l, "delete_user_license", json!({ "id": "pro" })),
        json!({ "deleted": true })
    );
    assert_eq!(
        fail(l, "get_user_license", json!({ "id": "pro" })).code,
        codes::NOT_FOUND
    );

    let seen = events(&env.audit);
    assert_eq!(
        seen,
        [
            (
                "license.updated".to_string(),
                json!({ "license": created, "kind": "user" })
            ),
            (
                "license.updated".to_string(),
                json!({ "license": basic, "kind": "user" })
            ),
            (
                "license.assigned".to_string(),
                json!({ "license_id": "pro", "user_id": "alice" })
            ),
            (
                "license.updated".to_string(),
                json!({ "license": updated, "kind": "user" })
            ),
            (
                "license.deleted".to_string(),
                json!({ "id": "pro", "kind": "user" })
            ),
        ]
    );
}

#[test]
fn assign_revoke_seats_assignees_and_licenses_of() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 3);
    create_user_license(l, "basic", 0);
    assert_eq!(
        assign(l, "pro", "bob"),
        json!({ "assigned": true, "used": 1, "max_users": 3 })
    );
    assert_eq!(
        assign(l, "pro", "alice"),
        json!({ "assigned": true, "used": 2, "max_users": 3 })
    );
    // Assigning again is a no-op.
    let before = snapshot(&env);
    assert_eq!(
        assign(l, "pro", "alice"),
        json!({ "assigned": false, "used": 2, "max_users": 3 })
    );
    assert_eq!(snapshot(&env), before);
    assign(l, "basic", "alice");

    assert_eq!(
        call(l, "seats", json!({})),
        json!({ "items": [
            { "license_id": "basic", "name": "BASIC", "used": 1, "max_users": 0 },
            { "license_id": "pro", "name": "PRO", "used": 2, "max_users": 3 },
        ] })
    );
    assert_eq!(
        seats_of(l, "pro"),
        json!({ "license_id": "pro", "name": "PRO", "used": 2, "max_users": 3 })
    );
    assert_eq!(assignees(l, "pro"), ["alice", "bob"]);
    assert_eq!(
        call(
            l,
            "assignees",
            json!({ "license_id": "pro", "offset": 1, "limit": 1 })
        ),
        json!({ "items": ["bob"], "total": 2 })
    );
    assert_eq!(licenses_of(l, "alice"), json!(["basic", "pro"]));
    assert_eq!(licenses_of(l, "bob"), json!(["pro"]));
    assert_eq!(licenses_of(l, "nobody"), json!([]));

    assert_eq!(
        call(
            l,
            "revoke",
            json!({ "license_id": "pro", "user_id": "alice" })
        ),
        json!({ "revoked": true })
    );
    let before = snapshot(&env);
    assert_eq!(
        call(
            l,
            "revoke",
            json!({ "license_id": "pro", "user_id": "alice" })
        ),
        json!({ "revoked": false })
    );
    assert_eq!(snapshot(&env), before);
    assert_eq!(licenses_of(l, "alice"), json!(["basic"]));
    assert_eq!(assignees(l, "pro"), ["bob"]);
    assert_eq!(seats_of(l, "pro")["used"], 1);
    assert_eq!(
        call(l, "get_user_license", json!({ "id": "pro" }))["used"],
        1
    );

    let seen: Vec<(String, Value)> = events(&env.audit)
        .into_iter()
        .filter(|(t, _)| t != "license.updated")
        .collect();
    assert_eq!(
        seen,
        [
            (
                "license.assigned".to_string(),
                json!({ "license_id": "pro", "user_id": "bob" })
            ),
            (
                "license.assigned".to_string(),
                json!({ "license_id": "pro", "user_id": "alice" })
            ),
            (
                "license.assigned".to_string(),
                json!({ "license_id": "basic", "user_id": "alice" })
            ),
            (
                "license.revoked".to_string(),
                json!({ "license_id": "pro", "user_id": "alice" })
            ),
        ]
    );
}

#[test]
fn a_full_license_refuses_naming_the_license_and_its_seats() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 2);
    assign(l, "pro", "u1");
    assign(l, "pro", "u2");
    let before = snapshot(&env);
    let err = fail(l, "assign", json!({ "license_id": "pro", "user_id": "u3" }));
    assert_eq!(err.code, codes::CONFLICT);
    assert!(err.message.contains("'PRO' (pro)"), "{err}");
    assert!(err.message.contains("2 of 2 seats used"), "{err}");
    assert_eq!(
        err.details,
        Some(json!({ "license_id": "pro", "used": 2, "max_users": 2 }))
    );
    assert_eq!(snapshot(&env), before);
    // A holder assigning again still gets the no-op answer.
    assert_eq!(assign(l, "pro", "u1")["assigned"], false);
    // Freeing a seat makes room.
    call(l, "revoke", json!({ "license_id": "pro", "user_id": "u1" }));
    assert_eq!(assign(l, "pro", "u3")["assigned"], true);
}

#[test]
fn max_users_zero_means_unlimited() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "free", 0);
    for i in 0..25 {
        let r = assign(l, "free", &format!("user-{i:02}"));
        assert_eq!(r["used"], i + 1);
        assert_eq!(r["max_users"], 0);
    }
    assert_eq!(seats_of(l, "free")["used"], 25);
    assert_eq!(assignees(l, "free").len(), 25);
}

#[test]
fn lowering_max_users_below_the_used_count_is_refused() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 5);
    for u in ["a", "b", "c"] {
        assign(l, "pro", u);
    }
    let before = snapshot(&env);
    let err = fail(
        l,
        "update_user_license",
        json!({ "id": "pro", "name": "Renamed", "max_users": 2 }),
    );
    assert_eq!(err.code, codes::CONFLICT);
    assert!(
        err.message.contains("to 2") && err.message.contains("3 seats are in use"),
        "{err}"
    );
    assert_eq!(
        err.details,
        Some(json!({ "field": "max_users", "max_users": 2, "used": 3 }))
    );
    assert_eq!(snapshot(&env), before, "the rename was not applied either");
    // Down to exactly the used count, to unlimited, and back up all work.
    for max in [3, 0, 10] {
        let r = call(
            l,
            "update_user_license",
            json!({ "id": "pro", "max_users": max }),
        );
        assert_eq!(r["max_users"], max);
        assert_eq!(r["used"], 3);
    }
    call(
        l,
        "update_user_license",
        json!({ "id": "pro", "max_users": 3 }),
    );
    let err = fail(l, "assign", json!({ "license_id": "pro", "user_id": "d" }));
    assert!(err.message.contains("3 of 3 seats used"), "{err}");
}

#[test]
fn deleting_a_user_license_leaves_no_assignment() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 10);
    create_user_license(l, "basic", 10);
    for u in ["u1", "u2", "u3"] {
        assign(l, "pro", u);
    }
    assign(l, "basic", "u1");
    call(l, "delete_user_license", json!({ "id": "pro" }));

    assert_eq!(licenses_of(l, "u1"), json!(["basic"]));
    assert_eq!(licenses_of(l, "u2"), json!([]));
    assert_eq!(licenses_of(l, "u3"), json!([]));
    assert_eq!(
        call(l, "seats", json!({})),
        json!({ "items": [{ "license_id": "basic", "name": "BASIC", "used": 1, "max_users": 10 }] })
    );
    for (op, req) in [
        ("assignees", json!({ "license_id": "pro" })),
        ("seats", json!({ "license_id": "pro" })),
        ("assign", json!({ "license_id": "pro", "user_id": "u9" })),
        ("revoke", json!({ "license_id": "pro", "user_id": "u1" })),
    ] {
        let err = fail(l, op, req);
        assert_eq!(err.code, codes::NOT_FOUND, "{op}: {err}");
    }
    // A new license under the old id starts empty.
    let again = create_user_license(l, "pro", 1);
    assert_eq!(again["used"], 0);
    assert!(assignees(l, "pro").is_empty());
    assert_eq!(assign(l, "pro", "u4")["used"], 1);
    let deleted: Vec<Value> = events(&env.audit)
        .into_iter()
        .filter(|(t, _)| t == "license.deleted")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(deleted, [json!({ "id": "pro", "kind": "user" })]);
}

#[test]
fn app_and_user_licenses_share_one_id_space() {
    let env = start();
    let l = &env.license;
    call(l, "create_app_license", json!({ "id": "x", "name": "X" }));
    create_user_license(l, "y", 1);
    let before = snapshot(&env);
    let err = fail(
        l,
        "create_user_license",
        json!({ "id": "x", "name": "X", "max_users": 1 }),
    );
    assert_eq!(err.code, codes::CONFLICT);
    assert!(err.message.contains("app license"), "{err}");
    let err = fail(l, "create_app_license", json!({ "id": "y", "name": "Y" }));
    assert_eq!(err.code, codes::CONFLICT);
    assert!(err.message.contains("user license"), "{err}");
    let err = fail(l, "create_app_license", json!({ "id": "x", "name": "X2" }));
    assert_eq!(err.code, codes::CONFLICT);
    let err = fail(
        l,
        "create_user_license",
        json!({ "id": "y", "name": "Y2", "max_users": 2 }),
    );
    assert_eq!(err.code, codes::CONFLICT);
    // An app license is not assignable, and the kinds do not mix.
    assert_eq!(
        fail(l, "assign", json!({ "license_id": "x", "user_id": "u1" })).code,
        codes::NOT_FOUND
    );
    assert_eq!(
        fail(l, "get_user_license", json!({ "id": "x" })).code,
        codes::NOT_FOUND
    );
    assert_eq!(
        fail(l, "delete_app_license", json!({ "id": "y" })).code,
        codes::NOT_FOUND
    );
    assert_eq!(snapshot(&env), before);
}

#[test]
fn invalid_input_is_rejected_naming_the_field_and_changes_nothing() {
    let env = start();
    let l = &env.license;
    call(
        l,
        "create_app_license",
        json!({ "id": "app", "name": "App" }),
    );
    create_user_license(l, "pro", 1);
    assign(l, "pro", "u1");
    let before = snapshot(&env);
    let long = "x".repeat(201);
    let very_long = "d".repeat(4001);
    let url_too_long = format!("https://example.com/{}", "p".repeat(2048));
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        // (operation, request, error code, text the message must contain)
        (
            "create_app_license",
            json!({ "name": "" }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create_app_license",
            json!({ "name": long }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create_app_license",
            json!({ "name": "A\u{1b}" }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "description": very_long }),
            codes::INVALID_INPUT,
            "description",
        ),
        (
            "create_app_license",
            json!({ "id": "Bad Id", "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "url": "example.com" }),
            codes::INVALID_INPUT,
            "url",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "url": "javascript:alert(1)" }),
            codes::INVALID_INPUT,
            "url",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "url": "https://a b" }),
            codes::INVALID_INPUT,
            "url",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "url": url_too_long }),
            codes::INVALID_INPUT,
            "url",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "enabled": "yes" }),
            codes::INVALID_INPUT,
            "expected a boolean",
        ),
        (
            "create_app_license",
            json!({ "name": "A", "max_users": 1 }),
            codes::INVALID_INPUT,
            "max_users",
        ),
        (
            "create_app_license",
            json!({ "id": "app", "name": "A" }),
            codes::CONFLICT,
            "app",
        ),
        (
            "get_app_license",
            json!({ "id": "nope" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "get_app_license",
            json!({ "id": "NOPE" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "list_app_licenses",
            json!({ "limit": 0 }),
            codes::INVALID_INPUT,
            "limit",
        ),
        (
            "list_app_licenses",
            json!({ "limit": 501 }),
            codes::INVALID_INPUT,
            "limit",
        ),
        (
            "list_app_licenses",
            json!({ "search": long }),
            codes::INVALID_INPUT,
            "search",
        ),
        (
            "list_app_licenses",
            json!({ "kind": "app" }),
            codes::INVALID_INPUT,
            "kind",
        ),
        (
            "update_app_license",
            json!({ "id": "app", "name": " " }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "update_app_license",
            json!({ "id": "app", "url": "ftp://x" }),
            codes::INVALID_INPUT,
            "url",
        ),
        (
            "update_app_license",
            json!({ "id": "app", "enabled": true }),
            codes::INVALID_INPUT,
            "enabled",
        ),
        (
            "update_app_license",
            json!({ "id": "nope", "name": "X" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "set_app_license_enabled",
            json!({ "id": "app" }),
            codes::INVALID_INPUT,
            "enabled",
        ),
        (
            "set_app_license_enabled",
            json!({ "id": "pro", "enabled": true }),
            codes::NOT_FOUND,
            "pro",
        ),
        (
            "set_app_license_enabled",
            json!({ "id": "-", "enabled": true }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "delete_app_license",
            json!({ "id": "nope" }),
            codes::NOT_FOUND,
            "nope",
        ),
        ("delete_app_license", json!({}), codes::INVALID_INPUT, "id"),
        (
            "create_user_license",
            json!({ "name": "P" }),
            codes::INVALID_INPUT,
            "max_users",
        ),
        (
            "create_user_license",
            json!({ "name": "P", "max_users": -1 }),
            codes::INVALID_INPUT,
            "-1",
        ),
        (
            "create_user_license",
            json!({ "name": "P", "max_users": 1.5 }),
            codes::INVALID_INPUT,
            "1.5",
        ),
        (
            "create_user_license",
            json!({ "name": "", "max_users": 1 }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create_user_license",
            json!({ "id": "UP", "name": "P", "max_users": 1 }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create_user_license",
            json!({ "name": "P", "max_users": 1, "url": "" }),
            codes::INVALID_INPUT,
            "url",
        ),
        (
            "create_user_license",
            json!({ "id": "pro", "name": "P", "max_users": 1 }),
            codes::CONFLICT,
            "pro",
        ),
        (
            "get_user_license",
            json!({ "id": "nope" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "list_user_licenses",
            json!({ "limit": 0 }),
            codes::INVALID_INPUT,
            "limit",
        ),
        (
            "update_user_license",
            json!({ "id": "pro", "max_users": "2" }),
            codes::INVALID_INPUT,
            "expected u64",
        ),
        (
            "update_user_license",
            json!({ "id": "pro", "description": very_long }),
            codes::INVALID_INPUT,
            "description",
        ),
        (
            "update_user_license",
            json!({ "id": "nope", "max_users": 2 }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "update_user_license",
            json!({ "id": "pro", "used": 0 }),
            codes::INVALID_INPUT,
            "used",
        ),
        (
            "delete_user_license",
            json!({ "id": "nope" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "delete_user_license",
            json!({ "id": "app" }),
            codes::NOT_FOUND,
            "app",
        ),
        (
            "assign",
            json!({ "license_id": "pro" }),
            codes::INVALID_INPUT,
            "user_id",
        ),
        (
            "assign",
            json!({ "user_id": "u2" }),
            codes::INVALID_INPUT,
            "license_id",
        ),
        (
            "assign",
            json!({ "license_id": "pro", "user_id": "U 2" }),
            codes::INVALID_INPUT,
            "user_id",
        ),
        (
            "assign",
            json!({ "license_id": "P/RO", "user_id": "u2" }),
            codes::INVALID_INPUT,
            "license_id",
        ),
        (
            "assign",
            json!({ "license_id": "nope", "user_id": "u2" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "assign",
            json!({ "license_id": "pro", "user_id": "u2" }),
            codes::CONFLICT,
            "1 of 1 seats used",
        ),
        (
            "revoke",
            json!({ "license_id": "pro", "user_id": "" }),
            codes::INVALID_INPUT,
            "user_id",
        ),
        (
            "revoke",
            json!({ "license_id": "nope", "user_id": "u1" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "seats",
            json!({ "license_id": "nope" }),
            codes::NOT_FOUND,
            "nope",
        ),
        (
            "seats",
            json!({ "license_id": "No" }),
            codes::INVALID_INPUT,
            "license_id",
        ),
        ("seats", json!({ "id": "pro" }), codes::INVALID_INPUT, "id"),
        ("assignees", json!({}), codes::INVALID_INPUT, "license_id"),
        (
            "assignees",
            json!({ "license_id": "pro", "limit": 501 }),
            codes::INVALID_INPUT,
            "limit",
        ),
        (
            "assignees",
            json!({ "license_id": "nope" }),
            codes::NOT_FOUND,
            "nope",
        ),
        ("licenses_of", json!({}), codes::INVALID_INPUT, "user_id"),
        (
            "licenses_of",
            json!({ "user_id": "U1" }),
            codes::INVALID_INPUT,
            "user_id",
        ),
    ];
    for (op, req, code, text) in cases {
        let err = fail(l, op, req.clone());
        assert_eq!(err.code, code, "{op} {req}: {err}");
        assert!(err.message.contains(text), "{op} {req}: {err}");
    }
    let err = fail(
        l,
        "assign",
        json!({ "license_id": "pro", "user_id": "U 2" }),
    );
    assert_eq!(err.details, Some(json!({ "field": "user_id" })));
    assert_eq!(snapshot(&env), before);
}

#[test]
fn callers_without_the_permission_are_refused_and_nothing_changes() {
    let env = start();
    let l = &env.license;
    call(
        l,
        "create_app_license",
        json!({ "id": "app", "name": "App" }),
    );
    create_user_license(l, "pro", 5);
    assign(l, "pro", "u1");
    let before = snapshot(&env);
    let all = ["license.read", "license.manage", "license.assign"];
    let cases = [
        (
            "create_app_license",
            json!({ "id": "a2", "name": "A" }),
            "license.manage",
        ),
        ("get_app_license", json!({ "id": "app" }), "license.read"),
        ("list_app_licenses", json!({}), "license.read"),
        (
            "update_app_license",
            json!({ "id": "app", "name": "B" }),
            "license.manage",
        ),
        (
            "set_app_license_enabled",
            json!({ "id": "app", "enabled": true }),
            "license.manage",
        ),
        (
            "delete_app_license",
            json!({ "id": "app" }),
            "license.manage",
        ),
        (
            "create_user_license",
            json!({ "name": "U", "max_users": 1 }),
            "license.manage",
        ),
        ("get_user_license", json!({ "id": "pro" }), "license.read"),
        ("list_user_licenses", json!({}), "license.read"),
        (
            "update_user_license",
            json!({ "id": "pro", "max_users": 9 }),
            "license.manage",
        ),
        (
            "delete_user_license",
            json!({ "id": "pro" }),
            "license.manage",
        ),
        (
            "assign",
            json!({ "license_id": "pro", "user_id": "u2" }),
            "license.assign",
        ),
        (
            "revoke",
            json!({ "license_id": "pro", "user_id": "u1" }),
            "license.assign",
        ),
        ("seats", json!({}), "license.read"),
        ("assignees", json!({ "license_id": "pro" }), "license.read"),
    ];
    for (op, req, permission) in &cases {
        let others: Vec<&str> = all.iter().copied().filter(|p| p != permission).collect();
        let err = l.call_as::<_, Value>(&user(&others), op, req).unwrap_err();
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}: {err}");
        assert!(err.message.contains(permission), "{op}: {err}");
        let err = l
            .call_as::<_, Value>(&CallContext::default(), op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err}");
    }
    // `licenses_of` is for the host and other plugins only.
    let err = l
        .call_as::<_, Value>(&user(&all), "licenses_of", &json!({ "user_id": "u1" }))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert_eq!(snapshot(&env), before);

    // With exactly the right permission a user gets through.
    let r: Value = l
        .call_as(
            &user(&["license.assign"]),
            "assign",
            &json!({ "license_id": "pro", "user_id": "u2" }),
        )
        .unwrap();
    assert_eq!(r["assigned"], true);
    let r: Value = l
        .call_as(&user(&["license.read"]), "seats", &json!({}))
        .unwrap();
    assert_eq!(r["items"][0]["used"], 2);
    let r: Value = l
        .call_as(
            &user(&["license.manage"]),
            "set_app_license_enabled",
            &json!({ "id": "app", "enabled": true }),
        )
        .unwrap();
    assert_eq!(r["enabled"], true);
    let pong: Value = l
        .call_as(&CallContext::default(), "ping", &json!({}))
        .unwrap();
    assert_eq!(pong["system"], "license");
}

#[test]
fn fifty_parallel_assignments_against_ten_seats_leave_exactly_ten() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 10);
    let results: Vec<(String, Result<Value, PluginError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let l = l.clone();
                s.spawn(move || {
                    let user = format!("user-{i:02}");
                    let r = l.call::<_, Value>(
                        "assign",
                        &json!({ "license_id": "pro", "user_id": user }),
                    );
                    (user, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: BTreeSet<String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(u, _)| u.clone())
        .collect();
    assert_eq!(winners.len(), 10, "{results:?}");
    let mut used_seen: Vec<u64> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|v| {
            assert_eq!(v["assigned"], true);
            assert_eq!(v["max_users"], 10);
            v["used"].as_u64().unwrap()
        })
        .collect();
    used_seen.sort();
    assert_eq!(used_seen, (1..=10).collect::<Vec<u64>>(), "each seat once");
    let conflicts: Vec<&PluginError> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert_eq!(conflicts.len(), 40);
    for err in conflicts {
        assert_eq!(err.code, codes::CONFLICT, "{err}");
        assert!(err.message.contains("10 of 10 seats used"), "{err}");
    }
    assert_eq!(
        seats_of(l, "pro"),
        json!({ "license_id": "pro", "name": "PRO", "used": 10, "max_users": 10 })
    );
    let holders: BTreeSet<String> = assignees(l, "pro").into_iter().collect();
    assert_eq!(holders, winners);
    for (user, r) in &results {
        let expected = if r.is_ok() { json!(["pro"]) } else { json!([]) };
        assert_eq!(licenses_of(l, user), expected, "{user}");
    }
    let assigned = events(&env.audit)
        .iter()
        .filter(|(t, _)| t == "license.assigned")
        .count();
    assert_eq!(assigned, 10);
}

#[test]
fn parallel_assigns_and_revokes_keep_the_count_exact() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pool", 6);
    std::thread::scope(|s| {
        for t in 0..8 {
            let l = l.clone();
            s.spawn(move || {
                for round in 0..15 {
                    let user = format!("u{}", (t * 7 + round) % 12);
                    let req = json!({ "license_id": "pool", "user_id": user });
                    let op = if (t + round) % 3 == 0 {
                        "revoke"
                    } else {
                        "assign"
                    };
                    match l.call::<_, Value>(op, &req) {
                        Ok(_) => {}
                        Err(e) => assert_eq!(e.code, codes::CONFLICT, "{op}: {e}"),
                    }
                }
            });
        }
    });
    let holders = assignees(l, "pool");
    let used = seats_of(l, "pool")["used"].as_u64().unwrap();
    assert_eq!(used as usize, holders.len(), "{holders:?}");
    assert!(used <= 6);
    for i in 0..12 {
        let user = format!("u{i}");
        let expected = if holders.contains(&user) {
            json!(["pool"])
        } else {
            json!([])
        };
        assert_eq!(licenses_of(l, &user), expected, "{user}");
    }
}

#[test]
fn assignments_racing_a_lower_limit_never_exceed_it() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 40);
    std::thread::scope(|s| {
        for i in 0..30 {
            let l = l.clone();
            s.spawn(move || {
                let _ = l.call::<_, Value>(
                    "assign",
                    &json!({ "license_id": "pro", "user_id": format!("u{i}") }),
                );
            });
        }
        let l = l.clone();
        s.spawn(move || {
            for max in (5..=40).rev().step_by(5) {
                let _ = l.call::<_, Value>(
                    "update_user_license",
                    &json!({ "id": "pro", "max_users": max }),
                );
            }
        });
    });
    let seats = seats_of(l, "pro");
    let used = seats["used"].as_u64().unwrap();
    let max = seats["max_users"].as_u64().unwrap();
    assert!(used <= max, "{seats}");
    assert_eq!(assignees(l, "pro").len() as u64, used);
}

#[test]
fn deleting_a_license_while_it_is_being_assigned_leaves_nothing_behind() {
    let env = start();
    let l = &env.license;
    create_user_license(l, "pro", 0);
    for i in 0..5 {
        assign(l, "pro", &format!("early{i}"));
    }
    std::thread::scope(|s| {
        for t in 0..6 {
            let l = l.clone();
            s.spawn(move || {
                for i in 0..10 {
                    let r = l.call::<_, Value>(
                        "assign",
                        &json!({ "license_id": "pro", "user_id": format!("t{t}-{i}") }),
                    );
                    if let Err(e) = r {
                        assert_eq!(e.code, codes::NOT_FOUND, "{e}");
                    }
                }
            });
        }
        let l = l.clone();
        s.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let _: Value = l
                .call("delete_user_license", &json!({ "id": "pro" }))
                .unwrap();
        });
    });
    for user in (0..5)
        .map(|i| format!("early{i}"))
        .chain((0..6).flat_map(|t| (0..10).map(move |i| format!("t{t}-{i}"))))
    {
        assert_eq!(licenses_of(l, &user), json!([]), "{user}");
    }
    let again = create_user_license(l, "pro", 0);
    assert_eq!(again["used"], 0);
    assert!(assignees(l, "pro").is_empty());
}
