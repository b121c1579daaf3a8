//! User Management, administrative side, through the real host with the real
//! plugin libraries: the account lifecycle, assignments, export, the subject
//! provider, password login, clean-up on role/group deletion, authorization
//! and races.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use syshost::store::{SledStore, Store};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject, UserSubject};
use syshost_test_support::{library, PluginDir};

const PASSWORD: &str = "Tr0ub4dor&3-horse";
const OTHER_PASSWORD: &str = "Another-Secret-99x";

fn plugins() -> PluginDir {
    PluginDir::systems_and(&[library("syshost-example-event-log")])
}

fn start(plugins: &PluginDir, data: &Path) -> (Host, SystemHandle) {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let report = host.activate_all(&["user".into(), "eventlog".into()]);
    assert!(report.is_ok(), "{report:?}");
    let user = host.system("user").expect("user is active");
    (host, user)
}

/// Calls `system.op` as the host and panics with the error on failure.
fn call(host: &Host, system: &str, op: &str, req: Value) -> Value {
    host.system(system)
        .unwrap()
        .call(op, &req)
        .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
}

/// Calls `user.op` as the host.
fn ok(user: &SystemHandle, op: &str, req: Value) -> Value {
    user.call(op, &req)
        .unwrap_or_else(|e| panic!("user.{op}({req}): {e:?}"))
}

/// Calls `user.op` as the host, expecting an error.
fn fails(user: &SystemHandle, op: &str, req: Value) -> PluginError {
    match user.call::<_, Value>(op, &req) {
        Ok(v) => panic!("user.{op}({req}) succeeded: {v}"),
        Err(e) => e,
    }
}

fn field(err: &PluginError) -> Option<&str> {
    err.details.as_ref()?.get("field")?.as_str()
}

fn assert_field(err: &PluginError, expected: &str) {
    assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
    assert_eq!(field(err), Some(expected), "{err:?}");
    assert!(
        names(&err.message, expected),
        "the message names the field: {err:?}"
    );
}

/// Whether `message` names `field` (its last segment, with `_` as a space
/// also accepted, singular or plural).
fn names(message: &str, field: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    let message = message.to_lowercase();
    let spaced = last.replace('_', " ");
    [last, spaced.as_str()]
        .iter()
        .any(|n| message.contains(n) || message.contains(n.trim_end_matches('s')))
}

fn create(user: &SystemHandle, req: Value) -> Value {
    ok(user, "create", req)
}

fn create_simple(user: &SystemHandle, email: &str) -> String {
    create(user, json!({ "email": email, "password": PASSWORD }))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A user subject holding exactly `permissions`.
fn as_user(permissions: &[&str]) -> CallContext {
    CallContext::for_subject(Subject::User(UserSubject {
        id: "caller".into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }))
}

/// Every event the audit plugin recorded, oldest first.
fn events(host: &Host) -> Vec<Value> {
    let page = call(host, "eventlog", "list", json!({ "limit": 500 }));
    let mut events = page["events"].as_array().unwrap().clone();
    events.reverse();
    events
}

fn events_of(host: &Host, topic: &str) -> Vec<Value> {
    events(host)
        .into_iter()
        .filter(|e| e["topic"] == topic)
        .map(|e| e["payload"].clone())
        .collect()
}

fn authenticate(user: &SystemHandle, email: &str, password: &str) -> Result<Value, PluginError> {
    user.call(
        "authenticate",
        &json!({ "email": email, "password": password }),
    )
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect()
}

fn permissions_of(host: &Host, id: &str) -> BTreeSet<String> {
    match host.subject(Some(id)).unwrap().subject() {
        Subject::User(u) => u.permissions.clone(),
        other => panic!("not a user subject: {other:?}"),
    }
}

fn user_subject(host: &Host, id: &str) -> UserSubject {
    match host.subject(Some(id)).unwrap().subject() {
        Subject::User(u) => u.clone(),
        other => panic!("not a user subject: {other:?}"),
    }
}

/// Every (namespace, key, value) of every plugin namespace on disk.
fn dump_store(data: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let store = SledStore::open(data).unwrap();
    let mut out = Vec::new();
    for ns in store.plugin_namespaces().unwrap() {
        let tree = store.plugin_namespace(&ns).unwrap();
        for (k, v) in tree.scan(b"", None, false, usize::MAX).unwrap() {
            out.push((ns.clone(), k, v));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------

#[test]
fn create_with_and_without_password() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());

    let with = create(
        &user,
        json!({
            "email": "  Ann.Lee@Example.COM ",
            "password": PASSWORD,
            "verified": true,
            "profile": { "first_name": " Ann ", "last_name": "Lee" },
            "roles": ["admin"],
            "groups": ["system"],
            "permissions": ["role.read", "group.read", "role.read"],
        }),
    );
    let id = with["id"].as_str().unwrap();
    // Time-ordered: 26 lower-case base32 characters, the first one g-z.
    assert_eq!(id.len(), 26, "{id}");
    assert!(id.starts_with(|c: char| ('g'..='z').contains(&c)), "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_lowercase() && !"ilou".contains(c))),
        "{id}"
    );
    assert_eq!(with["email"], "Ann.Lee@example.com");
    assert_eq!(with["status"], json!({ "state": "enabled" }));
    assert_eq!(with["active"], true);
    assert_eq!(with["email_verified"], true);
    assert_eq!(with["require_password_change"], false);
    assert!(with["password_changed_at"].is_i64());
    assert!(with["last_login_at"].is_null());
    assert_eq!(
        with["profile"],
        json!({ "first_name": "Ann", "last_name": "Lee" })
    );
    assert_eq!(with["roles"], json!(["admin"]));
    assert_eq!(with["groups"], json!(["system"]));
    assert_eq!(with["permissions"], json!(["group.read", "role.read"]));
    assert_eq!(with["avatar"], Value::Null);
    assert_eq!(with["consents"], json!({}));
    assert!(with.get("rev").is_none() && with.get("password").is_none());
    assert_eq!(ok(&user, "get", json!({ "id": id })), with);
    // The password works at once.
    let login = authenticate(&user, "ann.lee@example.com", PASSWORD).unwrap();
    assert_eq!(login["user_id"], id);
    assert_eq!(login["require_password_change"], false);

    let without = create(&user, json!({ "email": "bob@example.com" }));
    assert_eq!(without["require_password_change"], true);
    assert_eq!(without["email_verified"], false);
    assert!(without["password_changed_at"].is_null());
    assert_eq!(without["profile"], json!({}));
    // No credential: nothing logs in, not even an empty password.
    for pw in ["", PASSWORD] {
        let err = authenticate(&user, "bob@example.com", pw).unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED);
    }
    let bob = without["id"].as_str().unwrap();
    assert!(user_subject(&host, bob).must_change_password);

    let created: Vec<Value> = events_of(&host, "user.created");
    assert_eq!(
        created,
        vec![json!({ "user_id": id }), json!({ "user_id": bob })]
    );
    host.shutdown();
}

#[test]
fn a_duplicate_address_in_another_letter_case_is_a_conflict() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let first = create_simple(&user, "Carla@Example.com");
    for other in [
        "carla@example.com",
        "CARLA@EXAMPLE.COM",
        " carla@EXAMPLE.com",
    ] {
        let err = fails(
            &user,
            "create",
            json!({ "email": other, "password": PASSWORD }),
        );
        assert_eq!(err.code, codes::CONFLICT, "{other}: {err:?}");
        assert_eq!(field(&err), Some("email"));
        assert!(err.message.contains("already in use"), "{err:?}");
    }
    let page = ok(&user, "list", json!({}));
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], first);
    assert_eq!(events_of(&host, "user.created").len(), 1);
    host.shutdown();
}

#[test]
fn every_validation_error_names_its_field_and_changes_nothing() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let id = create_simple(&user, "valid@example.com");
    let before = ok(&user, "get", json!({ "id": id }));
    let events_before = events(&host).len();

    let cases: Vec<(&str, Value, &str)> = vec![
        ("create", json!({ "email": "not an address" }), "email"),
        ("create", json!({ "email": "a@" }), "email"),
        ("create", json!({ "email": "" }), "email"),
        (
            "create",
            json!({ "email": "x@example.com", "password": "short" }),
            "password",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "password": "password1234" }),
            "password",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "password": "x@example.com" }),
            "password",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "profile": { "first_name": "a\u{7}b" } }),
            "profile.first_name",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "profile": { "website": "javascript:alert(1)" } }),
            "profile.website",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "profile": { "phone": "call me" } }),
            "profile.phone",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "profile": { "preferred_language": "english!" } }),
            "profile.preferred_language",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "roles": ["nope"] }),
            "roles",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "groups": ["Not A Slug"] }),
            "groups",
        ),
        (
            "create",
            json!({ "email": "x@example.com", "permissions": ["user.fly"] }),
            "permissions",
        ),
        ("get", json!({ "id": "NOT/AN/ID" }), "id"),
        ("list", json!({ "limit": 0 }), "limit"),
        ("list", json!({ "limit": 501 }), "limit"),
        ("list", json!({ "role": "../x" }), "role"),
        ("list", json!({ "group": "A" }), "group"),
        ("list", json!({ "search": "x".repeat(201) }), "search"),
        (
            "update_contact",
            json!({ "id": id, "profile": { "last_name": "x".repeat(201) } }),
            "profile.last_name",
        ),
        (
            "set_status",
            json!({ "id": id, "status": { "state": "enabled_until", "until": 1 } }),
            "status.until",
        ),
        (
            "set_status",
            json!({ "id": id, "status": { "state": "enabled_until" } }),
            "status.until",
        ),
        (
            "set_status",
            json!({ "id": id, "status": { "state": "disabled", "until": 4102444800000i64 } }),
            "status.until",
        ),
        (
            "change_email",
            json!({ "id": id, "email": "no at sign" }),
            "email",
        ),
        (
            "set_password",
            json!({ "id": id, "password": "tiny" }),
            "password",
        ),
        (
            "set_password",
            json!({ "id": id, "password": "VALID@example.com" }),
            "password",
        ),
        (
            "set_roles",
            json!({ "id": id, "roles": ["admin", "ghost", "phantom"] }),
            "roles",
        ),
        (
            "set_groups",
            json!({ "id": id, "groups": ["ghost"] }),
            "groups",
        ),
        (
            "set_permissions",
            json!({ "id": id, "permissions": ["user.read", "nobody.declares"] }),
            "permissions",
        ),
        (
            "assign_license",
            json!({ "id": id, "license_id": "Bad Id" }),
            "license_id",
        ),
        (
            "export",
            json!({ "ids": ["NOPE!"], "format": "csv" }),
            "ids",
        ),
    ];
    for (op, req, expected) in cases {
        let err = fails(&user, op, req.clone());
        assert_eq!(err.code, codes::INVALID_INPUT, "{op} {req}: {err:?}");
        assert_eq!(field(&err), Some(expected), "{op} {req}: {err:?}");
        assert!(names(&err.message, expected), "{op} {req}: {err:?}");
    }
    // Unknown ids are listed, sorted.
    let err = fails(
        &user,
        "set_roles",
        json!({ "id": id, "roles": ["phantom", "ghost", "admin"] }),
    );
    assert!(err.message.contains("'ghost', 'phantom'"), "{err:?}");
    assert_eq!(
        err.details.as_ref().unwrap()["unknown"],
        json!(["ghost", "phantom"])
    );
    // Malformed requests are rejected by the decoder, naming the field.
    let err = fails(
        &user,
        "create",
        json!({ "email": "y@example.com", "admin": true }),
    );
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("admin"), "{err:?}");
    let err = fails(
        &user,
        "set_status",
        json!({ "id": id, "status": { "state": "frozen" } }),
    );
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("status"), "{err:?}");
    let err = fails(
        &user,
        "create",
        json!({ "email": "y@example.com", "profile": { "shoe_size": "9" } }),
    );
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("shoe_size"), "{err:?}");
    // Unknown users.
    for op in ["get", "delete"] {
        let err = fails(
            &user,
            op,
            json!({ "id": "0123456789abcdef0123456789abcdef" }),
        );
        assert_eq!(err.code, codes::NOT_FOUND, "{op}");
    }

    // Nothing changed.
    assert_eq!(ok(&user, "get", json!({ "id": id })), before);
    assert_eq!(ok(&user, "list", json!({}))["total"], 1);
    assert_eq!(events(&host).len(), events_before);
    host.shutdown();
}

// ---------------------------------------------------------------------------
// get / list
// ---------------------------------------------------------------------------

#[test]
fn list_filters_sorts_and_pages() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    call(
        &host,
        "role",
        "create",
        json!({ "id": "editors", "name": "Editors" }),
    );
    call(
        &host,
        "group",
        "create",
        json!({ "id": "berlin", "name": "Berlin" }),
    );

    let people = [
        (
            "dora@example.com",
            "Dora",
            "Zimmer",
            vec!["editors"],
            vec!["berlin"],
        ),
        ("emil@example.org", "Emil", "Adler", vec![], vec!["berlin"]),
        (
            "frida@example.com",
            "Frida",
            "Meyer",
            vec!["editors"],
            vec![],
        ),
        ("ada@example.net", "Ada", "Meyer", vec![], vec![]),
        ("zed@example.com", "", "", vec![], vec![]),
    ];
    let mut ids = std::collections::BTreeMap::new();
    for (email, first, last, roles, groups) in &people {
        let mut profile = serde_json::Map::new();
        if !first.is_empty() {
            profile.insert("first_name".into(), json!(first));
            profile.insert("last_name".into(), json!(last));
        }
        let u = create(
            &user,
            json!({ "email": email, "password": PASSWORD, "profile": profile,
                    "roles": roles, "groups": groups }),
        );
        ids.insert(*email, u["id"].as_str().unwrap().to_string());
        // Distinct creation times.
        std::thread::sleep(Duration::from_millis(3));
    }
    ok(
        &user,
        "set_status",
        json!({ "id": ids["emil@example.org"], "status": { "state": "disabled" } }),
    );
    ok(
        &user,
        "set_status",
        json!({ "id": ids["ada@example.net"],
                "status": { "state": "enabled_until", "until": 4102444800000i64 } }),
    );

    let list = |req: Value| emails(&ok(&user, "list", req));
    // Default: by email ascending.
    let all = ok(&user, "list", json!({}));
    assert_eq!(all["total"], 5);
    assert_eq!(
        emails(&all),
        [
            "ada@example.net",
            "dora@example.com",
            "emil@example.org",
            "frida@example.com",
            "zed@example.com"
        ]
    );
    assert_eq!(
        list(json!({ "order": "desc" })),
        [
            "zed@example.com",
            "frida@example.com",
            "emil@example.org",
            "dora@example.com",
            "ada@example.net"
        ]
    );
    // By name: last name, then first name; nameless users first.
    assert_eq!(
        list(json!({ "sort": "name" })),
        [
            "zed@example.com",
            "emil@example.org",
            "ada@example.net",
            "frida@example.com",
            "dora@example.com"
        ]
    );
    // By creation time, both ways (the fast path) and with a filter.
    assert_eq!(
        list(json!({ "sort": "created_at" })),
        [
            "dora@example.com",
            "emil@example.org",
            "frida@example.com",
            "ada@example.net",
            "zed@example.com"
        ]
    );
    assert_eq!(
        list(json!({ "sort": "created_at", "order": "desc", "limit": 2 })),
        ["zed@example.com", "ada@example.net"]
    );
    assert_eq!(
        list(json!({ "sort": "created_at", "search": "example.com" })),
        ["dora@example.com", "frida@example.com", "zed@example.com"]
    );
    // Search: case-insensitive in email, first and last name.
    assert_eq!(
        list(json!({ "search": "MEYER" })),
        ["ada@example.net", "frida@example.com"]
    );
    assert_eq!(list(json!({ "search": "dor" })), ["dora@example.com"]);
    assert_eq!(list(json!({ "search": ".ORG" })), ["emil@example.org"]);
    assert_eq!(list(json!({ "search": "  " })).len(), 5);
    // Status filters.
    assert_eq!(list(json!({ "status": "disabled" })), ["emil@example.org"]);
    assert_eq!(list(json!({ "status": "active" })).len(), 4);
    assert_eq!(list(json!({ "status": "enabled" })).len(), 4);
    assert_eq!(list(json!({ "status": "expired" })).len(), 0);
    // Role and group filters, alone and together.
    assert_eq!(
        list(json!({ "role": "editors" })),
        ["dora@example.com", "frida@example.com"]
    );
    assert_eq!(
        list(json!({ "group": "berlin" })),
        ["dora@example.com", "emil@example.org"]
    );
    assert_eq!(
        list(json!({ "role": "editors", "group": "berlin" })),
        ["dora@example.com"]
    );
    assert_eq!(
        list(json!({ "role": "editors", "group": "berlin", "status": "disabled" })).len(),
        0
    );
    assert_eq!(list(json!({ "role": "nobody-has-it" })).len(), 0);
    // Paging: total counts every match.
    let page = ok(&user, "list", json!({ "offset": 1, "limit": 2 }));
    assert_eq!(page["total"], 5);
    assert_eq!(emails(&page), ["dora@example.com", "emil@example.org"]);
    let page = ok(
        &user,
        "list",
        json!({ "offset": 4, "limit": 2, "search": "example" }),
    );
    assert_eq!(page["total"], 5);
    assert_eq!(emails(&page), ["zed@example.com"]);
    let page = ok(&user, "list", json!({ "offset": 50 }));
    assert_eq!(page["total"], 5);
    assert_eq!(emails(&page).len(), 0);
    // get returns what list returns.
    let emil = ok(&user, "get", json!({ "id": ids["emil@example.org"] }));
    assert_eq!(emil["active"], false);
    assert_eq!(emil["status"], json!({ "state": "disabled" }));
    host.shutdown();
}

// ---------------------------------------------------------------------------
// Single-field changes
// ---------------------------------------------------------------------------

#[test]
fn update_contact_replaces_the_whole_profile() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let u = create(
        &user,
        json!({ "email": "gina@example.com", "password": PASSWORD,
                "profile": { "first_name": "Gina", "city": "Bonn" } }),
    );
    let id = u["id"].as_str().unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let updated = ok(
        &user,
        "update_contact",
        json!({ "id": id, "profile": { "last_name": " Lopez ", "website": "https://gina.example",
                                       "about_me": "line one\r\nline two" } }),
    );
    assert_eq!(
        updated["profile"],
        json!({ "last_name": "Lopez", "website": "https://gina.example", "about_me": "line one\nline two" })
    );
    assert!(updated["updated_at"].as_i64() > u["updated_at"].as_i64());
    assert_eq!(
        ok(&user, "get", json!({ "id": id }))["profile"],
        updated["profile"]
    );
    // The same profile again changes nothing and publishes nothing.
    let again = ok(
        &user,
        "update_contact",
        json!({ "id": id, "profile": updated["profile"] }),
    );
    assert_eq!(again, updated);
    assert_eq!(
        events_of(&host, "user.updated"),
        vec![json!({ "user_id": id, "changes": ["profile"] })]
    );
    let err = fails(
        &user,
        "update_contact",
        json!({ "id": "0123456789abcdef0123456789abcdef", "profile": {} }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    host.shutdown();
}

#[test]
fn status_controls_the_subject_and_enabled_until_expires() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let id = create_simple(&user, "hank@example.com");
    ok(
        &user,
        "set_permissions",
        json!({ "id": id, "permissions": ["role.read"] }),
    );
    assert!(permissions_of(&host, &id).contains("role.read"));
    assert!(!host.subject(Some(&id)).unwrap().is_expired(0));

    let disabled = ok(
        &user,
        "set_status",
        json!({ "id": id, "status": { "state": "disabled" } }),
    );
    assert_eq!(disabled["active"], false);
    let err = host.subject(Some(&id)).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
    assert!(err.message.contains("disabled"), "{err:?}");
    assert_eq!(
        authenticate(&user, "hank@example.com", PASSWORD)
            .unwrap_err()
            .code,
        codes::UNAUTHENTICATED
    );

    let enabled = ok(
        &user,
        "set_status",
        json!({ "id": id, "status": { "state": "enabled" } }),
    );
    assert_eq!(enabled["active"], true);
    assert!(permissions_of(&host, &id).contains("role.read"));

    let now = syshost::runtime::system_now_ms();
    let err = fails(
        &user,
        "set_status",
        json!({ "id": id, "status": { "state": "enabled_until", "until": now - 1000 } }),
    );
    assert_eq!(field(&err), Some("status.until"));
    assert_eq!(
        ok(&user, "get", json!({ "id": id }))["status"],
        json!({ "state": "enabled" })
    );

    // The same as a calendar date (what a browser's date input sends).
    let by_date = ok(
        &user,
        "set_status",
        json!({ "id": id, "status": { "state": "enabled_until", "until_date": "2099-12-31" } }),
    );
    assert_eq!(
        by_date["status"],
        json!({ "state": "enabled_until", "until": 4_102_358_400_000i64 })
    );
    for (status, bad) in [
        (
            json!({ "state": "enabled_until", "until_date": "2099-02-30" }),
            "status.until_date",
        ),
        (
            json!({ "state": "enabled_until", "until_date": "2001-01-01" }),
            "status.until_date",
        ),
        (
            json!({ "state": "disabled", "until_date": "2099-01-01" }),
            "status.until_date",
        ),
        (
            json!({ "state": "enabled_until", "until": 4_102_358_400_000i64, "until_date": "2099-12-31" }),
            "status.until_date",
        ),
    ] {
        let err = fails(&user, "set_status", json!({ "id": id, "status": status }));
        assert_field(&err, bad);
    }
    assert_eq!(
        ok(&user, "get", json!({ "id": id }))["status"],
        by_date["status"]
    );

    let until = syshost::runtime::system_now_ms() + 1500;
    let limited = ok(
        &user,
        "set_status",
        json!({ "id": id, "status": { "state": "enabled_until", "until": until } }),
    );
    assert_eq!(
        limited["status"],
        json!({ "state": "enabled_until", "until": until })
    );
    assert_eq!(limited["active"], true);
    let cached = host.subject(Some(&id)).unwrap();
    assert!(cached.has_permission("role.read"));
    assert!(!cached.is_expired(until - 1) && cached.is_expired(until));
    authenticate(&user, "hank@example.com", PASSWORD).unwrap();

    while syshost::runtime::system_now_ms() <= until + 50 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = host.subject(Some(&id)).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
    assert!(err.message.contains("expired"), "{err:?}");
    let expired = ok(&user, "get", json!({ "id": id }));
    assert_eq!(expired["active"], false);
    assert_eq!(
        emails(&ok(&user, "list", json!({ "status": "expired" }))),
        ["hank@example.com"]
    );
    assert_eq!(ok(&user, "list", json!({ "status": "active" }))["total"], 0);
    let err = authenticate(&user, "hank@example.com", PASSWORD).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);

    let changes: Vec<Value> = events_of(&host, "user.updated")
        .into_iter()
        .map(|p| p["changes"].clone())
        .collect();
    assert_eq!(
        changes,
        vec![
            json!(["permissions"]),
            json!(["status"]),
            json!(["status"]),
            json!(["status"]),
            json!(["status"])
        ]
    );
    host.shutdown();
}

#[test]
fn verification_and_password_requirement_flags() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let id = create_simple(&user, "ivy@example.com");
    let v = ok(&user, "set_verified", json!({ "id": id, "verified": true }));
    assert_eq!(v["email_verified"], true);
    let v = ok(&user, "set_verified", json!({ "id": id, "verified": true }));
    assert_eq!(v["email_verified"], true);
    let r = ok(
        &user,
        "require_password_change",
        json!({ "id": id, "required": true }),
    );
    assert_eq!(r["require_password_change"], true);
    assert!(user_subject(&host, &id).must_change_password);
    let login = authenticate(&user, "ivy@example.com", PASSWORD).unwrap();
    assert_eq!(login["require_password_change"], true);
    let r = ok(
        &user,
        "require_password_change",
        json!({ "id": id, "required": false }),
    );
    assert_eq!(r["require_password_change"], false);
    assert!(!user_subject(&host, &id).must_change_password);
    let changes: Vec<Value> = events_of(&host, "user.updated")
        .into_iter()
        .map(|p| p["changes"].clone())
        .collect();
    assert_eq!(
        changes,
        vec![
            json!(["verification"]),
            json!(["password_required"]),
            json!(["password_required"])
        ]
    );
    host.shutdown();
}

#[test]
fn change_email_is_unique_unverifies_and_frees_the_old_address() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let jo = create(
        &user,
        json!({ "email": "jo@example.com", "password": PASSWORD, "verified": true }),
    );
    let id = jo["id"].as_str().unwrap();
    create_simple(&user, "kim@example.com");

    let err = fails(
        &user,
        "change_email",
        json!({ "id": id, "email": "KIM@example.com" }),
    );
    assert_eq!(err.code, codes::CONFLICT);
    assert_eq!(field(&err), Some("email"));
    assert_eq!(ok(&user, "get", json!({ "id": id })), jo);

    // Letter case only: same mailbox, stays verified.
    let cased = ok(
        &user,
        "change_email",
        json!({ "id": id, "email": "Jo@Example.com" }),
    );
    assert_eq!(cased["email"], "Jo@example.com");
    assert_eq!(cased["email_verified"], true);
    // Same address: nothing happens.
    let same = ok(
        &user,
        "change_email",
        json!({ "id": id, "email": "Jo@example.com" }),
    );
    assert_eq!(same, cased);

    let moved = ok(
        &user,
        "change_email",
        json!({ "id": id, "email": "jo.new@example.com", "notify": true }),
    );
    assert_eq!(moved["email"], "jo.new@example.com");
    assert_eq!(moved["email_verified"], false);
    assert_eq!(user_subject(&host, id).email, "jo.new@example.com");
    // Login follows the address.
    authenticate(&user, "JO.NEW@example.com", PASSWORD).unwrap();
    assert_eq!(
        authenticate(&user, "jo@example.com", PASSWORD)
            .unwrap_err()
            .code,
        codes::UNAUTHENTICATED
    );
    // The old address is free again.
    create_simple(&user, "jo@example.com");
    let changes: Vec<Value> = events_of(&host, "user.updated")
        .into_iter()
        .map(|p| p["changes"].clone())
        .collect();
    assert_eq!(
        changes,
        vec![json!(["email"]), json!(["email", "verification"])]
    );
    host.shutdown();
}

#[test]
fn set_password_checks_the_policy_and_replaces_the_login() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let created = create(&user, json!({ "email": "lou@example.com" }));
    let id = created["id"].as_str().unwrap();
    for (bad, why) in [
        ("short", "short"),
        ("Password1234", "common"),
        ("LOU@example.com", "email"),
        ("lou", "short"),
    ] {
        let err = fails(&user, "set_password", json!({ "id": id, "password": bad }));
        assert_field(&err, "password");
        assert!(err.message.contains(why), "{bad}: {err:?}");
    }
    // The policy follows the settings.
    call(
        &host,
        "settings",
        "put",
        json!({ "section": "user", "document": { "password_policy": { "min_length": 20 } } }),
    );
    let err = fails(
        &user,
        "set_password",
        json!({ "id": id, "password": PASSWORD }),
    );
    assert!(err.message.contains("20"), "{err:?}");
    call(
        &host,
        "settings",
        "put",
        json!({ "section": "user", "document": {} }),
    );
    assert_eq!(ok(&user, "get", json!({ "id": id })), created);
    assert!(events_of(&host, "user.password_changed").is_empty());

    assert_eq!(
        ok(
            &user,
            "set_password",
            json!({ "id": id, "password": PASSWORD })
        ),
        json!({})
    );
    let after = ok(&user, "get", json!({ "id": id }));
    assert_eq!(after["require_password_change"], false);
    assert!(after["password_changed_at"].is_i64());
    authenticate(&user, "lou@example.com", PASSWORD).unwrap();

    ok(
        &user,
        "set_password",
        json!({ "id": id, "password": OTHER_PASSWORD }),
    );
    authenticate(&user, "lou@example.com", OTHER_PASSWORD).unwrap();
    let err = authenticate(&user, "lou@example.com", PASSWORD).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
    assert_eq!(
        events_of(&host, "user.password_changed"),
        vec![json!({ "user_id": id }), json!({ "user_id": id })]
    );
    let err = fails(
        &user,
        "set_password",
        json!({ "id": "0123456789abcdef0123456789abcdef", "password": PASSWORD }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    host.shutdown();
}

// ---------------------------------------------------------------------------
// authenticate
// ---------------------------------------------------------------------------

#[test]
fn failed_logins_are_indistinguishable() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let id = create_simple(&user, "max@example.com");
    let off = create_simple(&user, "off@example.com");
    ok(
        &user,
        "set_status",
        json!({ "id": off, "status": { "state": "disabled" } }),
    );
    create(&user, json!({ "email": "nopw@example.com" }));

    let failures = [
        ("nobody@example.com", PASSWORD),
        ("max@example.com", "wrong-password-123"),
        ("max@example.com", ""),
        ("off@example.com", PASSWORD),
        ("nopw@example.com", PASSWORD),
        ("not an address", PASSWORD),
    ];
    let mut seen = BTreeSet::new();
    for (email, password) in failures {
        let err = authenticate(&user, email, password).unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{email}");
        seen.insert((
            err.code.clone(),
            err.message.clone(),
            format!("{:?}", err.details),
        ));
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (_, message, _) = seen.into_iter().next().unwrap();
    assert_eq!(message, "invalid email or password");

    let before = ok(&user, "get", json!({ "id": id }));
    assert!(before["last_login_at"].is_null());
    let updates_before = events_of(&host, "user.updated").len();
    let login = authenticate(&user, "  MAX@EXAMPLE.COM", PASSWORD).unwrap();
    assert_eq!(
        login,
        json!({ "user_id": id, "require_password_change": false })
    );
    let after = ok(&user, "get", json!({ "id": id }));
    assert!(after["last_login_at"].as_i64().unwrap() >= before["created_at"].as_i64().unwrap());
    // A login is not a change of the account.
    assert_eq!(after["updated_at"], before["updated_at"]);
    assert_eq!(events_of(&host, "user.updated").len(), updates_before);
    // Only the host and plugins may authenticate.
    let err = user
        .call_as::<_, Value>(
            &as_user(&["user.read", "user.update"]),
            "authenticate",
            &json!({ "email": "max@example.com", "password": PASSWORD }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    host.shutdown();
}

fn cred_of(data: &Path, id: &str) -> Option<Vec<u8>> {
    let store = SledStore::open(data).unwrap();
    store
        .plugin_namespace("user")
        .unwrap()
        .get(format!("cred/{id}").as_bytes())
        .unwrap()
}

fn code_key_of(data: &Path) -> Option<Vec<u8>> {
    let store = SledStore::open(data).unwrap();
    store
        .plugin_namespace("user")
        .unwrap()
        .get(b"secret/code_key")
        .unwrap()
}

#[test]
fn fresh_hashes_are_kept_and_outdated_ones_are_replaced_on_login() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (fresh_id, stale_id) = {
        let (host, user) = start(&plugins, data.path());
        let fresh = create_simple(&user, "nia@example.com");
        let stale = create_simple(&user, "old@example.com");
        host.shutdown();
        (fresh, stale)
    };
    let fresh_cred = cred_of(data.path(), &fresh_id).unwrap();
    assert!(fresh_cred.starts_with(b"$argon2id$v=19$m=19456,t=2,p=1$"));
    let key = code_key_of(data.path()).unwrap();
    assert_eq!(key.len(), 32);
    // An account whose hash was made with older, weaker parameters.
    const STALE: &str = "$argon2id$v=19$m=8192,t=1,p=1$Zml4ZWQtdGVzdC1zYWx0IQ$Lz4WtN86ZHOEyTDBcxrmvVCvOl39Ig4wXalI5clrY3E";
    const STALE_PASSWORD: &str = "Stale-Params-Passw0rd!";
    {
        let store = SledStore::open(data.path()).unwrap();
        let ns = store.plugin_namespace("user").unwrap();
        ns.put(format!("cred/{stale_id}").as_bytes(), STALE.as_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    {
        let (host, user) = start(&plugins, data.path());
        for _ in 0..2 {
            authenticate(&user, "nia@example.com", PASSWORD).unwrap();
        }
        assert_eq!(
            authenticate(&user, "old@example.com", PASSWORD)
                .unwrap_err()
                .code,
            codes::UNAUTHENTICATED
        );
        authenticate(&user, "old@example.com", STALE_PASSWORD).unwrap();
        host.shutdown();
    }
    assert_eq!(cred_of(data.path(), &fresh_id).unwrap(), fresh_cred);
    let rehashed = cred_of(data.path(), &stale_id).unwrap();
    assert_ne!(rehashed, STALE.as_bytes());
    assert!(rehashed.starts_with(b"$argon2id$v=19$m=19456,t=2,p=1$"));
    // The secret code key survives restarts.
    assert_eq!(code_key_of(data.path()).unwrap(), key);
    let (host, user) = start(&plugins, data.path());
    authenticate(&user, "old@example.com", STALE_PASSWORD).unwrap();
    host.shutdown();
}

// ---------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------

#[test]
fn delete_leaves_nothing_behind_and_frees_license_seats() {
    // No audit plugin here: it would keep the events (and so the id).
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let user = host.activate("user").unwrap();
    call(
        &host,
        "role",
        "create",
        json!({ "id": "staff", "name": "Staff", "permissions": ["role.read"] }),
    );
    call(
        &host,
        "group",
        "create",
        json!({ "id": "team", "name": "Team" }),
    );
    call(
        &host,
        "license",
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "max_users": 1 }),
    );

    let keep = create_simple(&user, "keep@example.com");
    let created = create(
        &user,
        json!({ "email": "Gone@Example.com", "notify": true,
                "profile": { "first_name": "Gone", "city": "Köln" },
                "roles": ["staff"], "groups": ["team", "system"], "permissions": ["group.read"] }),
    );
    let id = created["id"].as_str().unwrap().to_string();
    ok(
        &user,
        "set_password",
        json!({ "id": id, "password": PASSWORD }),
    );
    ok(
        &user,
        "change_email",
        json!({ "id": id, "email": "gone2@example.com", "notify": true }),
    );
    let assigned = ok(
        &user,
        "assign_license",
        json!({ "id": id, "license_id": "pro" }),
    );
    assert_eq!(assigned["assigned"], true);
    assert_eq!(assigned["used"], 1);
    assert!(user_subject(&host, &id).licenses.contains("pro"));
    // The seat is taken: nobody else gets one.
    let err = user
        .call::<_, Value>(
            "assign_license",
            &json!({ "id": keep, "license_id": "pro" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::CONFLICT);

    assert_eq!(
        ok(&user, "delete", json!({ "id": id })),
        json!({ "deleted": true })
    );
    assert_eq!(
        fails(&user, "get", json!({ "id": id })).code,
        codes::NOT_FOUND
    );
    assert_eq!(
        fails(&user, "delete", json!({ "id": id })).code,
        codes::NOT_FOUND
    );
    assert_eq!(host.subject(Some(&id)).unwrap_err().code, codes::NOT_FOUND);
    assert_eq!(
        call(&host, "license", "get_user_license", json!({ "id": "pro" }))["used"],
        0
    );
    // The seat is free again, and the address too.
    let assigned = ok(
        &user,
        "assign_license",
        json!({ "id": keep, "license_id": "pro" }),
    );
    assert_eq!(assigned["assigned"], true);
    create_simple(&user, "gone2@example.com");
    assert_eq!(
        emails(&ok(&user, "list", json!({ "role": "staff" }))).len(),
        0
    );
    assert_eq!(
        emails(&ok(&user, "list", json!({ "group": "team" }))).len(),
        0
    );

    host.shutdown();
    drop(user);
    drop(host);
    let all = dump_store(data.path());
    assert!(all.iter().any(|(ns, _, _)| ns == "user"));
    let needle = id.as_bytes();
    // The audit trail keeps its record of the account (and of its deletion)
    // until its retention period ends; every other namespace forgets it.
    for (ns, k, v) in all.iter().filter(|(ns, _, _)| ns != "audit") {
        assert!(
            !contains(k, needle) && !contains(v, needle),
            "{ns}: {} = {} still mentions the deleted user",
            String::from_utf8_lossy(k),
            String::from_utf8_lossy(v)
        );
    }
    // ... while the kept user is still all there.
    assert!(all.iter().any(|(_, k, _)| contains(k, keep.as_bytes())));
}

// ---------------------------------------------------------------------------
// Assignments
// ---------------------------------------------------------------------------

#[test]
fn set_roles_groups_and_permissions_replace_the_sets() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    for (id, name) in [("r1", "R1"), ("r2", "R2"), ("r3", "R3")] {
        call(&host, "role", "create", json!({ "id": id, "name": name }));
        call(
            &host,
            "group",
            "create",
            json!({ "id": format!("g{}", &id[1..]), "name": name }),
        );
    }
    let id = create_simple(&user, "nora@example.com");
    let u = ok(
        &user,
        "set_roles",
        json!({ "id": id, "roles": ["r2", "r1", "r2"] }),
    );
    assert_eq!(u["roles"], json!(["r1", "r2"]));
    let u = ok(&user, "set_roles", json!({ "id": id, "roles": ["r3"] }));
    assert_eq!(u["roles"], json!(["r3"]));
    assert_eq!(emails(&ok(&user, "list", json!({ "role": "r1" }))).len(), 0);
    assert_eq!(
        emails(&ok(&user, "list", json!({ "role": "r3" }))),
        ["nora@example.com"]
    );
    let u = ok(
        &user,
        "set_groups",
        json!({ "id": id, "groups": ["g1", "g3"] }),
    );
    assert_eq!(u["groups"], json!(["g1", "g3"]));
    let u = ok(&user, "set_groups", json!({ "id": id, "groups": [] }));
    assert_eq!(u["groups"], json!([]));
    assert_eq!(
        emails(&ok(&user, "list", json!({ "group": "g1" }))).len(),
        0
    );
    let u = ok(
        &user,
        "set_permissions",
        json!({ "id": id, "permissions": ["user.read", "group.read"] }),
    );
    assert_eq!(u["permissions"], json!(["group.read", "user.read"]));
    let u = ok(
        &user,
        "set_permissions",
        json!({ "id": id, "permissions": ["user.export"] }),
    );
    assert_eq!(u["permissions"], json!(["user.export"]));
    // The same set again: no change, no event.
    let same = ok(
        &user,
        "set_permissions",
        json!({ "id": id, "permissions": ["user.export"] }),
    );
    assert_eq!(same, u);
    // Unknown ids: rejected, nothing changes.
    for (op, key, value) in [
        ("set_roles", "roles", json!(["r1", "ghost"])),
        ("set_groups", "groups", json!(["ghost"])),
        ("set_permissions", "permissions", json!(["ghost.perm"])),
    ] {
        let err = fails(&user, op, json!({ "id": id, key: value }));
        assert_field(&err, key);
        assert!(err.message.contains("ghost"), "{err:?}");
    }
    assert_eq!(ok(&user, "get", json!({ "id": id })), u);
    // Unknown user.
    let err = fails(
        &user,
        "set_roles",
        json!({ "id": "0123456789abcdef0123456789abcdef", "roles": [] }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    let changes: Vec<Value> = events_of(&host, "user.updated")
        .into_iter()
        .map(|p| p["changes"].clone())
        .collect();
    assert_eq!(
        changes,
        vec![
            json!(["roles"]),
            json!(["roles"]),
            json!(["groups"]),
            json!(["groups"]),
            json!(["permissions"]),
            json!(["permissions"]),
        ]
    );
    host.shutdown();
}

#[test]
fn deleting_a_role_removes_it_from_users_and_their_subjects() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    call(
        &host,
        "role",
        "create",
        json!({ "id": "auditors", "name": "Auditors", "permissions": ["eventlog.read"] }),
    );
    call(
        &host,
        "role",
        "create",
        json!({ "id": "readers", "name": "Readers", "permissions": ["role.read"] }),
    );
    let a = create(
        &user,
        json!({ "email": "olga@example.com", "password": PASSWORD,
                                  "roles": ["auditors", "readers"] }),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = create(
        &user,
        json!({ "email": "pia@example.com", "password": PASSWORD,
                                  "roles": ["auditors"] }),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = create_simple(&user, "quinn@example.com");
    assert!(permissions_of(&host, &a).contains("eventlog.read"));
    assert!(permissions_of(&host, &b).contains("eventlog.read"));
    // The cached subject is used for authorization.
    let ctx = host.context_for(Some(&b)).unwrap();
    call(&host, "eventlog", "count", json!({}));
    host.system("eventlog")
        .unwrap()
        .call_as::<_, Value>(&ctx, "count", &json!({}))
        .unwrap();

    call(&host, "role", "delete", json!({ "id": "auditors" }));

    assert_eq!(
        ok(&user, "get", json!({ "id": a }))["roles"],
        json!(["readers"])
    );
    assert_eq!(ok(&user, "get", json!({ "id": b }))["roles"], json!([]));
    assert!(!permissions_of(&host, &a).contains("eventlog.read"));
    assert!(permissions_of(&host, &a).contains("role.read"));
    assert!(permissions_of(&host, &b).is_empty());
    let ctx = host.context_for(Some(&b)).unwrap();
    let err = host
        .system("eventlog")
        .unwrap()
        .call_as::<_, Value>(&ctx, "count", &json!({}))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert_eq!(ok(&user, "list", json!({ "role": "auditors" }))["total"], 0);
    let mut updated: Vec<Value> = events_of(&host, "user.updated");
    updated.sort_by_key(|p| p["user_id"].as_str().unwrap().to_string());
    let mut expected = vec![
        json!({ "user_id": a, "changes": ["roles"] }),
        json!({ "user_id": b, "changes": ["roles"] }),
    ];
    expected.sort_by_key(|p| p["user_id"].as_str().unwrap().to_string());
    assert_eq!(updated, expected);
    // A new role with the old id is not inherited.
    call(
        &host,
        "role",
        "create",
        json!({ "id": "auditors", "name": "Auditors 2", "permissions": ["eventlog.read"] }),
    );
    assert!(!permissions_of(&host, &b).contains("eventlog.read"));
    assert_eq!(ok(&user, "get", json!({ "id": c }))["roles"], json!([]));
    host.shutdown();
}

#[test]
fn deleting_a_group_removes_the_memberships() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    call(
        &host,
        "group",
        "create",
        json!({ "id": "choir", "name": "Choir" }),
    );
    call(
        &host,
        "group",
        "create",
        json!({ "id": "band", "name": "Band" }),
    );
    let a = create(
        &user,
        json!({ "email": "rita@example.com", "groups": ["choir", "band"] }),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = create(
        &user,
        json!({ "email": "sam@example.com", "groups": ["choir"] }),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(user_subject(&host, &a).groups.contains("choir"));
    call(&host, "group", "delete", json!({ "id": "choir" }));
    assert_eq!(
        ok(&user, "get", json!({ "id": a }))["groups"],
        json!(["band"])
    );
    assert_eq!(ok(&user, "get", json!({ "id": b }))["groups"], json!([]));
    assert!(!user_subject(&host, &a).groups.contains("choir"));
    assert!(user_subject(&host, &a).groups.contains("band"));
    assert_eq!(ok(&user, "list", json!({ "group": "choir" }))["total"], 0);
    assert_eq!(ok(&user, "list", json!({ "group": "band" }))["total"], 1);
    let changes: Vec<Value> = events_of(&host, "user.updated");
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|p| p["changes"] == json!(["groups"])));
    host.shutdown();
}

// ---------------------------------------------------------------------------
// subject
// ---------------------------------------------------------------------------

#[test]
fn a_users_subject_unites_direct_and_role_permissions_with_licenses() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    call(
        &host,
        "role",
        "create",
        json!({ "id": "a", "name": "A", "permissions": ["role.read", "group.read"] }),
    );
    call(
        &host,
        "role",
        "create",
        json!({ "id": "b", "name": "B", "permissions": ["group.read", "license.read"] }),
    );
    call(
        &host,
        "license",
        "create_user_license",
        json!({ "id": "gold", "name": "Gold", "max_users": 0 }),
    );
    call(
        &host,
        "license",
        "create_user_license",
        json!({ "id": "silver", "name": "Silver", "max_users": 0 }),
    );
    let created = create(
        &user,
        json!({ "email": "tess@example.com", "password": PASSWORD, "roles": ["a", "b"],
                "groups": ["system"], "permissions": ["user.read", "role.read"] }),
    );
    let id = created["id"].as_str().unwrap();
    ok(
        &user,
        "assign_license",
        json!({ "id": id, "license_id": "silver" }),
    );
    ok(
        &user,
        "assign_license",
        json!({ "id": id, "license_id": "gold" }),
    );
    let s = user_subject(&host, id);
    assert_eq!(s.id, id);
    assert_eq!(s.email, "tess@example.com");
    assert_eq!(
        s.permissions,
        ["group.read", "license.read", "role.read", "user.read"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(s.roles, ["a", "b"].iter().map(|s| s.to_string()).collect());
    assert_eq!(s.groups, ["system".to_string()].into_iter().collect());
    assert_eq!(
        s.licenses,
        ["gold", "silver"].iter().map(|s| s.to_string()).collect()
    );
    assert!(!s.must_change_password);
    assert!(!host.subject(Some(id)).unwrap().is_expired(i64::MAX));

    // Revoking a license and changing a role's permissions show at once.
    let revoked = ok(
        &user,
        "revoke_license",
        json!({ "id": id, "license_id": "gold" }),
    );
    assert_eq!(revoked, json!({ "revoked": true }));
    assert_eq!(
        user_subject(&host, id).licenses,
        ["silver".to_string()].into_iter().collect()
    );
    call(
        &host,
        "role",
        "set_permissions",
        json!({ "id": "b", "permissions": [] }),
    );
    assert!(!permissions_of(&host, id).contains("license.read"));
    // The built-in administrator role grants everything.
    ok(&user, "set_roles", json!({ "id": id, "roles": ["admin"] }));
    let all = permissions_of(&host, id);
    for p in [
        "user.delete",
        "user.export",
        "license.manage",
        "eventlog.read",
    ] {
        assert!(all.contains(p), "{p}");
    }
    // License operations need an existing user.
    let err = fails(
        &user,
        "assign_license",
        json!({ "id": "0123456789abcdef0123456789abcdef", "license_id": "silver" }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    let err = fails(
        &user,
        "assign_license",
        json!({ "id": id, "license_id": "nope" }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    // The provider answers only the host and plugins.
    let err = user
        .call_as::<_, Value>(
            &as_user(&["user.read"]),
            "subject",
            &json!({ "user_id": id }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    let direct: Value = ok(&user, "subject", json!({ "user_id": id }));
    assert_eq!(direct["subject"]["kind"], "user");
    assert_eq!(direct["valid_until"], Value::Null);
    let err = fails(
        &user,
        "subject",
        json!({ "user_id": "0123456789abcdef0123456789abcdef" }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    host.shutdown();
}

#[test]
fn the_anonymous_subject_follows_the_anonymous_roles_setting() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let anon = |host: &Host| match host.subject(None).unwrap().subject() {
        Subject::Anonymous { permissions } => permissions.clone(),
        other => panic!("{other:?}"),
    };
    assert!(anon(&host).is_empty());
    call(
        &host,
        "role",
        "create",
        json!({ "id": "guests", "name": "Guests", "permissions": ["role.read"] }),
    );
    call(
        &host,
        "role",
        "create",
        json!({ "id": "visitors", "name": "Visitors", "permissions": ["group.read"] }),
    );
    call(
        &host,
        "settings",
        "put",
        json!({ "section": "user", "document": { "anonymous_roles": ["guests", "visitors"] } }),
    );
    assert_eq!(
        anon(&host),
        ["group.read", "role.read"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let ctx = host.context_for(None).unwrap();
    host.system("role")
        .unwrap()
        .call_as::<_, Value>(&ctx, "list", &json!({}))
        .unwrap();
    call(
        &host,
        "role",
        "set_permissions",
        json!({ "id": "guests", "permissions": [] }),
    );
    assert_eq!(
        anon(&host),
        ["group.read".to_string()].into_iter().collect()
    );
    call(&host, "role", "delete", json!({ "id": "visitors" }));
    assert!(anon(&host).is_empty());
    let direct = ok(&user, "subject", json!({ "user_id": null }));
    assert_eq!(direct["subject"]["kind"], "anonymous");
    assert_eq!(ok(&user, "subject", json!({})), direct);
    host.shutdown();
}

// ---------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------

#[test]
fn export_as_json_and_as_safe_csv() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let ids = {
        let (host, user) = start(&plugins, data.path());
        call(
            &host,
            "settings",
            "put",
            json!({ "section": "user", "document": { "consent_options": [
                { "id": "newsletter", "title": "Newsletter", "text": "Mail me", "version": "1", "required": false },
                { "id": "terms", "title": "Terms", "text": "The terms", "version": "2", "required": true }
            ] } }),
        );
        call(
            &host,
            "role",
            "create",
            json!({ "id": "r-one", "name": "R1" }),
        );
        let evil = create(
            &user,
            json!({ "email": "uma@example.com", "password": PASSWORD, "roles": ["r-one", "admin"],
                    "profile": { "first_name": "=HYPERLINK(\"http://evil\",\"x\")", "last_name": "@SUM(A1)",
                                 "company": "ACME, \"Inc\"", "phone": "+49 30 1234",
                                 "about_me": "two\nlines", "city": "-Ulm" } }),
        );
        let plain = create(
            &user,
            json!({ "email": "vic@example.com", "verified": true }),
        );
        let ids = (
            evil["id"].as_str().unwrap().to_string(),
            plain["id"].as_str().unwrap().to_string(),
        );
        host.shutdown();
        ids
    };
    // Consents are recorded by self-service; plant a history directly.
    {
        let store = SledStore::open(data.path()).unwrap();
        let ns = store.plugin_namespace("user").unwrap();
        let key = format!("user/{}", ids.0);
        let mut record: Value =
            serde_json::from_slice(&ns.get(key.as_bytes()).unwrap().unwrap()).unwrap();
        record["consents"] = json!({
            "newsletter": [
                { "action": "accepted", "at": 100, "version": "1" },
                { "action": "revoked", "at": 200, "version": "1" }
            ],
            "terms": [ { "action": "accepted", "at": 100, "version": "2" } ]
        });
        ns.put(key.as_bytes(), &serde_json::to_vec(&record).unwrap())
            .unwrap();
        store.flush().unwrap();
    }
    let (host, user) = start(&plugins, data.path());

    let json_export = ok(&user, "export", json!({ "format": "json" }));
    assert_eq!(json_export["format"], "json");
    assert_eq!(json_export["count"], 2);
    let users: Vec<Value> = serde_json::from_str(json_export["content"].as_str().unwrap()).unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0], ok(&user, "get", json!({ "id": ids.0 })));
    assert_eq!(users[1]["email"], "vic@example.com");
    assert!(!json_export["content"].as_str().unwrap().contains("argon2"));

    let csv = ok(&user, "export", json!({ "format": "csv" }));
    assert_eq!(csv["format"], "csv");
    assert_eq!(csv["count"], 2);
    let content = csv["content"].as_str().unwrap();
    let header = content.split("\r\n").next().unwrap();
    assert_eq!(
        header,
        "id,email,status,active,email_verified,require_password_change,created_at,last_login_at,\
         salutation,title,first_name,last_name,phone,mobile,company,position,professional_group,\
         street,postal_code,city,state,country,preferred_language,website,about_me,\
         roles,groups,permissions,consent:newsletter,consent:terms"
    );
    assert!(content.ends_with("\r\n"));
    let evil_row = content
        .split("\r\n")
        .find(|l| l.starts_with(&ids.0))
        .unwrap();
    assert!(
        evil_row.contains(",uma@example.com,enabled,true,false,false,"),
        "{evil_row}"
    );
    assert!(
        evil_row.contains(r#","'=HYPERLINK(""http://evil"",""x"")","#),
        "formula quoted and neutralised: {evil_row}"
    );
    assert!(evil_row.contains(",'@SUM(A1),'+49 30 1234,,"), "{evil_row}");
    assert!(evil_row.contains(r#","ACME, ""Inc""","#), "{evil_row}");
    assert!(evil_row.contains(",'-Ulm,"), "{evil_row}");
    assert!(
        content.contains("\"two\nlines\""),
        "multi-line cells are quoted"
    );
    assert!(evil_row.contains(",admin r-one,,"), "{evil_row}");
    assert!(
        content.contains(",revoked,accepted\r\n"),
        "latest consent actions: {content}"
    );
    let vic_row = content
        .split("\r\n")
        .find(|l| l.starts_with(&ids.1))
        .unwrap();
    assert!(vic_row.ends_with(",,,,,"), "no consents: {vic_row}");
    assert!(
        vic_row.contains(",vic@example.com,enabled,true,true,true,"),
        "{vic_row}"
    );

    // Only some users; unknown ids are named.
    let one = ok(&user, "export", json!({ "format": "csv", "ids": [ids.1] }));
    assert_eq!(one["count"], 1);
    assert_eq!(one["content"].as_str().unwrap().matches("\r\n").count(), 2);
    let err = fails(
        &user,
        "export",
        json!({ "format": "json", "ids": [ids.1, "0123456789abcdef0123456789abcdef"] }),
    );
    assert_eq!(err.code, codes::NOT_FOUND);
    assert!(
        err.message.contains("0123456789abcdef0123456789abcdef"),
        "{err:?}"
    );
    let err = fails(&user, "export", json!({ "format": "xml" }));
    assert_eq!(err.code, codes::INVALID_INPUT);
    host.shutdown();
}

// ---------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------

#[test]
fn every_admin_operation_needs_its_permission_and_a_refusal_changes_nothing() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    call(
        &host,
        "license",
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "max_users": 0 }),
    );
    let id = create_simple(&user, "walt@example.com");
    let before = ok(&user, "get", json!({ "id": id }));
    let events_before = events(&host).len();
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "create",
            "user.create",
            json!({ "email": "new@example.com", "password": PASSWORD }),
        ),
        ("get", "user.read", json!({ "id": id })),
        ("list", "user.read", json!({})),
        (
            "update_contact",
            "user.update",
            json!({ "id": id, "profile": { "city": "X" } }),
        ),
        (
            "set_status",
            "user.update",
            json!({ "id": id, "status": { "state": "disabled" } }),
        ),
        (
            "set_verified",
            "user.update",
            json!({ "id": id, "verified": true }),
        ),
        (
            "change_email",
            "user.update",
            json!({ "id": id, "email": "w2@example.com" }),
        ),
        (
            "set_password",
            "user.update",
            json!({ "id": id, "password": OTHER_PASSWORD }),
        ),
        (
            "require_password_change",
            "user.update",
            json!({ "id": id, "required": true }),
        ),
        ("delete", "user.delete", json!({ "id": id })),
        (
            "set_roles",
            "user.assign",
            json!({ "id": id, "roles": ["admin"] }),
        ),
        (
            "set_groups",
            "user.assign",
            json!({ "id": id, "groups": ["system"] }),
        ),
        (
            "set_permissions",
            "user.assign",
            json!({ "id": id, "permissions": ["user.read"] }),
        ),
        (
            "assign_license",
            "user.assign",
            json!({ "id": id, "license_id": "pro" }),
        ),
        (
            "revoke_license",
            "user.assign",
            json!({ "id": id, "license_id": "pro" }),
        ),
        ("export", "user.export", json!({ "format": "json" })),
        ("bulk_delete", "user.delete", json!({ "ids": [id] })),
        (
            "bulk_set_status",
            "user.update",
            json!({ "ids": [id], "state": "disabled" }),
        ),
    ];
    let everything_else: Vec<&str> = [
        "user.read",
        "user.create",
        "user.update",
        "user.delete",
        "user.export",
        "user.assign",
    ]
    .to_vec();
    for (op, permission, req) in &cases {
        // A user holding every user permission but this one.
        let others: Vec<&str> = everything_else
            .iter()
            .copied()
            .filter(|p| p != permission)
            .collect();
        let err = user
            .call_as::<_, Value>(&as_user(&others), op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}");
        assert_eq!(
            err.details.as_ref().unwrap()["permission"],
            json!(permission),
            "{op}"
        );
        let err = user
            .call_as::<_, Value>(&CallContext::default(), op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}");
    }
    // System-only operations refuse every user, even with all permissions.
    for (op, req) in [
        ("subject", json!({ "user_id": id })),
        (
            "authenticate",
            json!({ "email": "walt@example.com", "password": PASSWORD }),
        ),
    ] {
        let err = user
            .call_as::<_, Value>(&as_user(&everything_else), op, &req)
            .unwrap_err();
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}");
    }
    // Nothing changed.
    assert_eq!(ok(&user, "get", json!({ "id": id })), before);
    assert_eq!(ok(&user, "list", json!({}))["total"], 1);
    assert_eq!(events(&host).len(), events_before);
    authenticate(&user, "walt@example.com", PASSWORD).unwrap();
    assert_eq!(
        call(&host, "license", "get_user_license", json!({ "id": "pro" }))["used"],
        0
    );

    // With the permission, the same call goes through (as a user).
    let got = user
        .call_as::<_, Value>(&as_user(&["user.read"]), "get", &json!({ "id": id }))
        .unwrap();
    assert_eq!(got["id"], json!(id));
    // Resolved through the provider: a user granted user.read by a role.
    call(
        &host,
        "role",
        "create",
        json!({ "id": "viewers", "name": "Viewers", "permissions": ["user.read"] }),
    );
    let viewer = create(
        &user,
        json!({ "email": "viewer@example.com", "roles": ["viewers"] }),
    );
    let ctx = host
        .context_for(Some(viewer["id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(
        user.call_as::<_, Value>(&ctx, "list", &json!({})).unwrap()["total"],
        2
    );
    let err = user
        .call_as::<_, Value>(&ctx, "delete", &json!({ "id": id }))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    host.shutdown();
}

#[test]
fn bulk_status_and_delete_validate_everything_first_then_change_each_user() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    call(
        &host,
        "license",
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "max_users": 0 }),
    );
    let ids: Vec<String> = (0..4)
        .map(|i| create_simple(&user, &format!("bulk{i}@example.com")))
        .collect();
    ok(
        &user,
        "assign_license",
        json!({ "id": ids[0], "license_id": "pro" }),
    );
    // The fourth user is an administrator: the caller of the bulk actions.
    ok(
        &user,
        "set_roles",
        json!({ "id": ids[3], "roles": ["admin"] }),
    );
    let own = host.context_for(Some(&ids[3])).unwrap();
    let before: Vec<Value> = ids
        .iter()
        .map(|id| ok(&user, "get", json!({ "id": id })))
        .collect();
    let events_before = events(&host).len();

    // Every rejection names `ids` and changes nothing.
    let err = fails(
        &user,
        "bulk_set_status",
        json!({ "ids": [], "state": "disabled" }),
    );
    assert_field(&err, "ids");
    let err = fails(
        &user,
        "bulk_set_status",
        json!({ "ids": [ids[0], "Not An Id"], "state": "disabled" }),
    );
    assert_field(&err, "ids");
    let too_many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let err = fails(&user, "bulk_delete", json!({ "ids": too_many }));
    assert_field(&err, "ids");
    assert!(err.message.contains("500"), "{err:?}");
    let err = fails(
        &user,
        "bulk_delete",
        json!({ "ids": [ids[0], "feedbeef", ids[1]] }),
    );
    assert_eq!(err.code, codes::NOT_FOUND, "{err:?}");
    assert!(err.message.contains("'feedbeef'"), "{err:?}");
    assert_eq!(
        err.details.as_ref().unwrap()["unknown"],
        json!(["feedbeef"])
    );
    let err = fails(
        &user,
        "bulk_set_status",
        json!({ "ids": [ids[0]], "state": "enabled_until" }),
    );
    assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
    // A user never bulk-changes their own account (holding the permissions).
    for (op, req) in [
        ("bulk_delete", json!({ "ids": [ids[2], ids[3]] })),
        (
            "bulk_set_status",
            json!({ "ids": [ids[3]], "state": "disabled" }),
        ),
    ] {
        let err = user.call_as::<_, Value>(&own, op, &req).unwrap_err();
        assert_field(&err, "ids");
        assert!(err.message.contains("your own account"), "{err:?}");
    }
    for (id, was) in ids.iter().zip(&before) {
        assert_eq!(&ok(&user, "get", json!({ "id": id })), was);
    }
    assert_eq!(events(&host).len(), events_before);

    // Disable three (one listed twice): each changes, each publishes.
    let events_before = events(&host).len();
    let resp = user
        .call_as::<_, Value>(
            &own,
            "bulk_set_status",
            &json!({ "ids": [ids[0], ids[1], ids[1], ids[2]], "state": "disabled" }),
        )
        .unwrap();
    assert_eq!(resp, json!({ "changed": 3 }));
    for id in &ids[..3] {
        let u = ok(&user, "get", json!({ "id": id }));
        assert_eq!(u["status"], json!({ "state": "disabled" }));
        assert_eq!(u["active"], false);
        assert!(
            host.subject(Some(id)).is_err(),
            "a disabled user has no subject"
        );
    }
    assert!(authenticate(&user, "bulk0@example.com", PASSWORD).is_err());
    let updated = events_of(&host, "user.updated");
    assert_eq!(events(&host).len(), events_before + 3);
    // The role assignment, then one per disabled user.
    assert_eq!(updated.len(), 1 + 3);
    assert!(updated[1..]
        .iter()
        .all(|e| e["changes"] == json!(["status"])));
    // Again: nothing changes, nothing is published.
    let resp = ok(
        &user,
        "bulk_set_status",
        json!({ "ids": [ids[0], ids[1]], "state": "disabled" }),
    );
    assert_eq!(resp, json!({ "changed": 0 }));
    assert_eq!(events(&host).len(), events_before + 3);
    // Enable one again.
    let resp = ok(
        &user,
        "bulk_set_status",
        json!({ "ids": [ids[1]], "state": "enabled" }),
    );
    assert_eq!(resp, json!({ "changed": 1 }));
    authenticate(&user, "bulk1@example.com", PASSWORD).unwrap();

    // Delete two: gone, events published, the license seat freed.
    let resp = user
        .call_as::<_, Value>(&own, "bulk_delete", &json!({ "ids": [ids[0], ids[1]] }))
        .unwrap();
    assert_eq!(resp, json!({ "deleted": 2 }));
    for id in &ids[..2] {
        assert_eq!(
            fails(&user, "get", json!({ "id": id })).code,
            codes::NOT_FOUND
        );
    }
    let deleted: Vec<Value> = events_of(&host, "user.deleted");
    assert_eq!(deleted.len(), 2);
    assert_eq!(
        call(&host, "license", "get_user_license", json!({ "id": "pro" }))["used"],
        0
    );
    assert_eq!(ok(&user, "list", json!({}))["total"], 2);
    assert_eq!(ok(&user, "get", json!({ "id": ids[3] })), before[3]);
    host.shutdown();
}

// ---------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------

#[test]
fn parallel_creates_of_one_address_make_exactly_one_account() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let user = Arc::new(user);
    let variants: Vec<String> = (0..100u32)
        .map(|i| {
            let local: String = "race.condition"
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if (i >> (j % 8)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let domain = if i % 2 == 0 {
                "example.com"
            } else {
                "EXAMPLE.COM"
            };
            format!("{local}@{domain}")
        })
        .collect();
    let handles: Vec<_> = variants
        .into_iter()
        .map(|email| {
            let user = user.clone();
            std::thread::spawn(move || user.call::<_, Value>("create", &json!({ "email": email })))
        })
        .collect();
    let results: Vec<Result<Value, PluginError>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created: Vec<&Value> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(created.len(), 1, "exactly one create wins");
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.code, codes::CONFLICT, "{e:?}");
            assert_eq!(field(e), Some("email"));
        }
    }
    let page = ok(&user, "list", json!({}));
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], created[0]["id"]);
    assert_eq!(events_of(&host, "user.created").len(), 1);
    host.shutdown();
}

#[test]
fn concurrent_changes_of_one_user_are_all_applied() {
    let plugins = plugins();
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    for i in 0..8 {
        call(
            &host,
            "role",
            "create",
            json!({ "id": format!("c{i}"), "name": format!("C{i}") }),
        );
    }
    let id = create_simple(&user, "xena@example.com");
    let user = Arc::new(user);
    // Writers of different fields race; none may overwrite another's change.
    let mut handles = Vec::new();
    for i in 0..8 {
        let user = user.clone();
        let id = id.clone();
        handles.push(std::thread::spawn(move || {
            user.call::<_, Value>(
                "update_contact",
                &json!({ "id": id, "profile": { "city": format!("City {i}") } }),
            )
            .unwrap();
            user.call::<_, Value>(
                "set_permissions",
                &json!({ "id": id, "permissions": ["user.read"] }),
            )
            .unwrap();
        }));
    }
    {
        let user = user.clone();
        let id = id.clone();
        handles.push(std::thread::spawn(move || {
            user.call::<_, Value>("set_roles", &json!({ "id": id, "roles": ["c1", "c2"] }))
                .unwrap();
            user.call::<_, Value>("set_groups", &json!({ "id": id, "groups": ["system"] }))
                .unwrap();
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let after = ok(&user, "get", json!({ "id": id }));
    assert_eq!(after["roles"], json!(["c1", "c2"]));
    assert_eq!(after["groups"], json!(["system"]));
    assert_eq!(after["permissions"], json!(["user.read"]));
    assert!(after["profile"]["city"]
        .as_str()
        .unwrap()
        .starts_with("City "));
    assert_eq!(
        emails(&ok(&user, "list", json!({ "role": "c1" }))),
        ["xena@example.com"]
    );
    host.shutdown();
}
