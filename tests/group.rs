//! The `group` system through the real host and the real plugin library:
//! the built-in `system` group, every operation's happy path, validation,
//! authorization, events (observed with the event-log example plugin),
//! list order/search/paging and concurrent writers.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject, UserSubject};
use syshost_test_support::{library, PluginDir};

/// A running host with `group` and `audit` active, and its directories.
struct Env {
    host: Host,
    group: SystemHandle,
    audit: SystemHandle,
    _plugins: PluginDir,
    _data: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.host.shutdown();
    }
}

fn plugins() -> PluginDir {
    PluginDir::systems_and(&[library("syshost-example-event-log")])
}

fn boot(plugins: &PluginDir, data: &std::path::Path) -> (Host, SystemHandle, SystemHandle) {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let report = host.activate_all(&["eventlog".into(), "group".into()]);
    assert!(report.is_ok(), "{report:?}");
    let group = host.system("group").unwrap();
    let audit = host.system("eventlog").unwrap();
    (host, group, audit)
}

fn start() -> Env {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, group, audit) = boot(&plugins, data.path());
    Env {
        host,
        group,
        audit,
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

/// Everything observable: all groups in list order plus the event count.
fn snapshot(env: &Env) -> (Value, usize) {
    (
        call(&env.group, "list", json!({ "limit": 500 })),
        events(&env.audit).len(),
    )
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_system_group_is_seeded_once_and_can_never_be_deleted() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let created_at;
    {
        let (host, group, audit) = boot(&plugins, data.path());
        let system = call(&group, "get", json!({ "id": "system" }));
        assert_eq!(system["name"], "System");
        assert_eq!(system["builtin"], true);
        assert!(system["created_at"].as_i64().unwrap() > 0);
        created_at = system["created_at"].clone();
        let seeded = events(&audit);
        assert_eq!(seeded.len(), 1, "{seeded:?}");
        assert_eq!(seeded[0].0, "group.created");
        assert_eq!(seeded[0].1["group"], system);

        let err = fail(&group, "delete", json!({ "id": "system" }));
        assert_eq!(err.code, codes::CONFLICT);
        assert!(err.message.contains("built-in"), "{err}");
        let err = fail(&group, "create", json!({ "id": "system", "name": "Mine" }));
        assert_eq!(err.code, codes::CONFLICT);
        assert_eq!(call(&group, "get", json!({ "id": "system" })), system);
        assert_eq!(events(&audit).len(), 1);

        // It may be renamed, and the rename survives re-seeding.
        call(
            &group,
            "update",
            json!({ "id": "system", "name": "Platform" }),
        );
        host.shutdown();
    }
    // A second activation on the same data seeds nothing new.
    let (host, group, audit) = boot(&plugins, data.path());
    let system = call(&group, "get", json!({ "id": "system" }));
    assert_eq!(system["created_at"], created_at);
    assert_eq!(system["name"], "Platform");
    assert_eq!(system["builtin"], true);
    let list = call(&group, "list", json!({}));
    assert_eq!(list["total"], 1);
    let created = events(&audit)
        .iter()
        .filter(|(t, _)| t == "group.created")
        .count();
    assert_eq!(created, 1);
    host.shutdown();
}

#[test]
fn create_get_list_update_delete_round_trip_with_events() {
    let env = start();
    let g = &env.group;
    let created = call(
        g,
        "create",
        json!({ "id": "sales", "name": "  Sales  ", "description": "The sales team" }),
    );
    assert_eq!(created["id"], "sales");
    assert_eq!(created["name"], "Sales", "names are trimmed");
    assert_eq!(created["description"], "The sales team");
    assert_eq!(created["builtin"], false);
    assert_eq!(created["created_at"], created["updated_at"]);
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
            "builtin",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(call(g, "get", json!({ "id": "sales" })), created);

    // Description is optional.
    let ops = call(g, "create", json!({ "id": "ops", "name": "Operations" }));
    assert_eq!(ops["description"], "");

    let list = call(g, "list", json!({}));
    assert_eq!(list["total"], 3);
    assert_eq!(names(&list), ["Operations", "Sales", "System"]);

    let updated = call(g, "update", json!({ "id": "sales", "name": "Sales EMEA" }));
    assert_eq!(updated["name"], "Sales EMEA");
    assert_eq!(updated["description"], "The sales team", "kept");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated["updated_at"].as_i64() >= created["updated_at"].as_i64());
    let updated = call(g, "update", json!({ "id": "sales", "description": "" }));
    assert_eq!(updated["description"], "");
    assert_eq!(updated["name"], "Sales EMEA");
    assert_eq!(call(g, "get", json!({ "id": "sales" })), updated);
    assert_eq!(
        names(&call(g, "list", json!({}))),
        ["Operations", "Sales EMEA", "System"]
    );

    assert_eq!(
        call(g, "delete", json!({ "id": "sales" })),
        json!({ "deleted": true })
    );
    let err = fail(g, "get", json!({ "id": "sales" }));
    assert_eq!(err.code, codes::NOT_FOUND);
    let list = call(g, "list", json!({}));
    assert_eq!(list["total"], 2);
    assert_eq!(names(&list), ["Operations", "System"]);
    // The id is free again.
    call(g, "create", json!({ "id": "sales", "name": "Sales again" }));

    let seen: Vec<(String, Value)> = events(&env.audit).into_iter().skip(1).collect();
    let topics: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "group.created",
            "group.created",
            "group.updated",
            "group.updated",
            "group.deleted",
            "group.created"
        ]
    );
    assert_eq!(seen[0].1, json!({ "group": created }));
    assert_eq!(seen[1].1, json!({ "group": ops }));
    assert_eq!(seen[3].1, json!({ "group": updated }));
    assert_eq!(seen[4].1, json!({ "id": "sales" }));
}

#[test]
fn a_group_without_an_id_gets_a_random_one() {
    let env = start();
    let a = call(&env.group, "create", json!({ "name": "A" }));
    let b = call(&env.group, "create", json!({ "name": "A" }));
    for g in [&a, &b] {
        let id = g["id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(call(&env.group, "get", json!({ "id": id })), *g);
    }
    assert_ne!(a["id"], b["id"]);
    // Names need not be unique; ids tell them apart.
    assert_eq!(call(&env.group, "list", json!({}))["total"], 3);
}

#[test]
fn invalid_input_is_rejected_naming_the_field_and_changes_nothing() {
    let env = start();
    call(
        &env.group,
        "create",
        json!({ "id": "sales", "name": "Sales" }),
    );
    let before = snapshot(&env);
    let long = "x".repeat(201);
    let very_long = "d".repeat(4001);
    let id65 = "a".repeat(65);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        // (operation, request, error code, field named in the message)
        (
            "create",
            json!({ "name": "" }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create",
            json!({ "name": "   " }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create",
            json!({ "name": long }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create",
            json!({ "name": "a\u{7}b" }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "create",
            json!({ "name": "A", "description": very_long }),
            codes::INVALID_INPUT,
            "description",
        ),
        (
            "create",
            json!({ "name": "A", "description": "a\u{0}b" }),
            codes::INVALID_INPUT,
            "description",
        ),
        (
            "create",
            json!({ "id": "Sales", "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create",
            json!({ "id": "", "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create",
            json!({ "id": "-x", "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create",
            json!({ "id": "a b", "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create",
            json!({ "id": "a/b", "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create",
            json!({ "id": id65, "name": "A" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "create",
            json!({ "id": "sales", "name": "Dup" }),
            codes::CONFLICT,
            "sales",
        ),
        ("create", json!({}), codes::INVALID_INPUT, "name"),
        (
            "create",
            json!({ "name": 5 }),
            codes::INVALID_INPUT,
            "expected a string",
        ),
        (
            "create",
            json!({ "name": "A", "builtin": true }),
            codes::INVALID_INPUT,
            "builtin",
        ),
        ("get", json!({}), codes::INVALID_INPUT, "id"),
        ("get", json!({ "id": "Nope!" }), codes::INVALID_INPUT, "id"),
        ("get", json!({ "id": "nope" }), codes::NOT_FOUND, "nope"),
        (
            "get",
            json!({ "id": "sales", "x": 1 }),
            codes::INVALID_INPUT,
            "x",
        ),
        ("list", json!({ "limit": 0 }), codes::INVALID_INPUT, "limit"),
        (
            "list",
            json!({ "limit": 501 }),
            codes::INVALID_INPUT,
            "limit",
        ),
        // serde names no field for type errors (see the report): code only.
        ("list", json!({ "offset": -1 }), codes::INVALID_INPUT, "-1"),
        (
            "list",
            json!({ "search": long }),
            codes::INVALID_INPUT,
            "search",
        ),
        (
            "list",
            json!({ "sort": "name" }),
            codes::INVALID_INPUT,
            "sort",
        ),
        (
            "update",
            json!({ "id": "sales", "name": "" }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "update",
            json!({ "id": "sales", "name": long }),
            codes::INVALID_INPUT,
            "name",
        ),
        (
            "update",
            json!({ "id": "sales", "name": "ok", "description": very_long }),
            codes::INVALID_INPUT,
            "description",
        ),
        (
            "update",
            json!({ "id": "sales", "builtin": true }),
            codes::INVALID_INPUT,
            "builtin",
        ),
        ("update", json!({ "name": "x" }), codes::INVALID_INPUT, "id"),
        (
            "update",
            json!({ "id": "BAD", "name": "x" }),
            codes::INVALID_INPUT,
            "id",
        ),
        (
            "update",
            json!({ "id": "nope", "name": "x" }),
            codes::NOT_FOUND,
            "nope",
        ),
        ("delete", json!({}), codes::INVALID_INPUT, "id"),
        ("delete", json!({ "id": "BAD" }), codes::INVALID_INPUT, "id"),
        ("delete", json!({ "id": "nope" }), codes::NOT_FOUND, "nope"),
        (
            "delete",
            json!({ "id": "system" }),
            codes::CONFLICT,
            "system",
        ),
        ("check", json!({}), codes::INVALID_INPUT, "ids"),
        (
            "check",
            json!({ "ids": "sales" }),
            codes::INVALID_INPUT,
            "expected a sequence",
        ),
    ];
    for (op, req, code, field) in cases {
        let err = fail(&env.group, op, req.clone());
        assert_eq!(err.code, code, "{op} {req}: {err}");
        assert!(err.message.contains(field), "{op} {req}: {err}");
    }
    // Field-level validation errors carry the field in their details.
    let err = fail(&env.group, "create", json!({ "name": " " }));
    assert_eq!(err.details, Some(json!({ "field": "name" })));
    assert_eq!(snapshot(&env), before);
}

#[test]
fn callers_without_the_permission_are_refused_and_nothing_changes() {
    let env = start();
    call(
        &env.group,
        "create",
        json!({ "id": "sales", "name": "Sales" }),
    );
    let before = snapshot(&env);
    let all = ["group.read", "group.create", "group.update", "group.delete"];
    let cases = [
        ("create", json!({ "id": "x", "name": "X" }), "group.create"),
        ("get", json!({ "id": "sales" }), "group.read"),
        ("list", json!({}), "group.read"),
        (
            "update",
            json!({ "id": "sales", "name": "X" }),
            "group.update",
        ),
        ("delete", json!({ "id": "sales" }), "group.delete"),
    ];
    for (op, req, permission) in &cases {
        // Every other group permission, but not this one.
        let others: Vec<&str> = all.iter().copied().filter(|p| p != permission).collect();
        let err = env
            .group
            .call_as::<_, Value>(&user(&others), op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}: {err}");
        assert!(err.message.contains(permission), "{op}: {err}");
        let err = env
            .group
            .call_as::<_, Value>(&CallContext::default(), op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err}");
    }
    // `check` is for the host and other plugins only, whatever a user holds.
    let err = env
        .group
        .call_as::<_, Value>(&user(&all), "check", &json!({ "ids": ["sales"] }))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert_eq!(snapshot(&env), before);

    // With exactly the right permission each operation works for a user.
    let ctx = |p: &str| user(&[p]);
    let got: Value = env
        .group
        .call_as(&ctx("group.read"), "get", &json!({ "id": "sales" }))
        .unwrap();
    assert_eq!(got["id"], "sales");
    let _: Value = env
        .group
        .call_as(
            &ctx("group.create"),
            "create",
            &json!({ "id": "x", "name": "X" }),
        )
        .unwrap();
    let _: Value = env
        .group
        .call_as(
            &ctx("group.update"),
            "update",
            &json!({ "id": "x", "name": "Y" }),
        )
        .unwrap();
    let _: Value = env
        .group
        .call_as(&ctx("group.delete"), "delete", &json!({ "id": "x" }))
        .unwrap();
    // `ping` stays public.
    let pong: Value = env
        .group
        .call_as(&CallContext::default(), "ping", &json!({}))
        .unwrap();
    assert_eq!(pong["system"], "group");
}

#[test]
fn list_sorts_by_name_then_id_searches_and_pages() {
    let env = start();
    let g = &env.group;
    for (id, name, description) in [
        ("b2", "beta", ""),
        ("b1", "Beta", ""),
        ("a1", "alpha", "first letter"),
        ("z1", "Zulu", "Alphabet end"),
        ("m1", "Mid", ""),
    ] {
        call(
            g,
            "create",
            json!({ "id": id, "name": name, "description": description }),
        );
    }
    let all = call(g, "list", json!({}));
    assert_eq!(all["total"], 6);
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    // Case-insensitive by name, ties broken by id.
    assert_eq!(ids, ["a1", "b1", "b2", "m1", "system", "z1"]);

    let page = call(g, "list", json!({ "offset": 2, "limit": 2 }));
    assert_eq!(page["total"], 6);
    assert_eq!(names(&page), ["beta", "Mid"]);
    let past_end = call(g, "list", json!({ "offset": 100 }));
    assert_eq!(past_end["total"], 6);
    assert_eq!(past_end["items"], json!([]));

    // Search: case-insensitive substring of id, name or description.
    let found = call(g, "list", json!({ "search": "ALPHA" }));
    assert_eq!(found["total"], 2);
    assert_eq!(names(&found), ["alpha", "Zulu"]);
    let found = call(
        g,
        "list",
        json!({ "search": "bet", "limit": 1, "offset": 1 }),
    );
    assert_eq!(found["total"], 3, "beta, Beta and 'Alphabet end'");
    assert_eq!(names(&found), ["beta"]);
    let found = call(g, "list", json!({ "search": "system" }));
    assert_eq!(names(&found), ["System"]);
    assert_eq!(call(g, "list", json!({ "search": "nothing" }))["total"], 0);
    // A blank search lists everything.
    assert_eq!(call(g, "list", json!({ "search": "  " }))["total"], 6);
    // The index follows renames.
    call(g, "update", json!({ "id": "z1", "name": "Aardvark" }));
    let ids: Vec<String> = call(g, "list", json!({ "limit": 2 }))["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["z1", "a1"]);
    assert_eq!(call(g, "list", json!({}))["total"], 6);
}

#[test]
fn check_reports_unknown_ids_sorted_and_without_duplicates() {
    let env = start();
    call(
        &env.group,
        "create",
        json!({ "id": "sales", "name": "Sales" }),
    );
    let out = call(
        &env.group,
        "check",
        json!({ "ids": ["zeta", "sales", "system", "alpha", "zeta", "Not A Slug"] }),
    );
    assert_eq!(out, json!({ "unknown": ["Not A Slug", "alpha", "zeta"] }));
    assert_eq!(
        call(&env.group, "check", json!({ "ids": [] })),
        json!({ "unknown": [] })
    );
}

#[test]
fn an_update_that_changes_nothing_writes_nothing() {
    let env = start();
    let created = call(
        &env.group,
        "create",
        json!({ "id": "sales", "name": "Sales", "description": "d" }),
    );
    let before = snapshot(&env);
    for req in [
        json!({ "id": "sales" }),
        json!({ "id": "sales", "name": "Sales" }),
        json!({ "id": "sales", "name": " Sales ", "description": "d" }),
    ] {
        assert_eq!(call(&env.group, "update", req), created);
    }
    assert_eq!(snapshot(&env), before);
}

#[test]
fn parallel_creates_of_one_id_succeed_exactly_once() {
    let env = start();
    let results: Vec<Result<Value, PluginError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let g = env.group.clone();
                s.spawn(move || {
                    g.call::<_, Value>(
                        "create",
                        &json!({ "id": "race", "name": format!("Racer {i}") }),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code, codes::CONFLICT, "{r}");
    }
    let list = call(&env.group, "list", json!({}));
    assert_eq!(list["total"], 2);
    let created = events(&env.audit)
        .iter()
        .filter(|(t, p)| t == "group.created" && p["group"]["id"] == "race")
        .count();
    assert_eq!(created, 1);
}

#[test]
fn parallel_renames_keep_record_and_index_consistent() {
    let env = start();
    call(
        &env.group,
        "create",
        json!({ "id": "team", "name": "Team" }),
    );
    std::thread::scope(|s| {
        for i in 0..8 {
            let g = env.group.clone();
            s.spawn(move || {
                for j in 0..5 {
                    let _: Value = g
                        .call(
                            "update",
                            &json!({ "id": "team", "name": format!("Team {i}-{j}") }),
                        )
                        .unwrap();
                }
            });
        }
    });
    let record = call(&env.group, "get", json!({ "id": "team" }));
    let list = call(&env.group, "list", json!({}));
    // Exactly one index entry per group, and it carries the final name.
    assert_eq!(list["total"], 2);
    assert!(list["items"].as_array().unwrap().contains(&record));
    let found = call(
        &env.group,
        "list",
        json!({ "search": record["name"].as_str().unwrap() }),
    );
    assert_eq!(found["items"], json!([record]));
    let updates = events(&env.audit)
        .iter()
        .filter(|(t, _)| t == "group.updated")
        .count();
    assert_eq!(updates, 40);
}
