//! Authorization through the real host: the permission registry, the
//! resolved-subject cache and its invalidation, and denied calls changing
//! nothing. The cache mechanics are observed through the `directory`
//! fixture (a provider that counts its resolutions); the rest uses the real
//! provider, User Management.

use serde_json::{json, Value};
use syshost::Host;
use syshost_plugin_api::{codes, NoInput};
use syshost_test_support::{fixture_library, PluginDir};

fn start(plugins: &PluginDir, data: &std::path::Path) -> Host {
    start_with(plugins, data, &["directory", "group"])
}

fn start_with(plugins: &PluginDir, data: &std::path::Path, enable: &[&str]) -> Host {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let enable: Vec<String> = enable.iter().map(|s| s.to_string()).collect();
    let report = host.activate_all(&enable);
    assert!(report.is_ok(), "{report:?}");
    host
}

fn system(host: &Host, id: &str, op: &str, req: Value) -> Value {
    host.system(id)
        .unwrap()
        .call(op, &req)
        .unwrap_or_else(|e| panic!("{id}.{op}: {e}"))
}

fn resolutions(host: &Host) -> u64 {
    host.system("directory")
        .unwrap()
        .call("resolutions", &NoInput {})
        .unwrap()
}

#[test]
fn the_registry_lists_every_declared_permission_with_its_plugin() {
    let plugins = PluginDir::systems_and(&[fixture_library("directory")]);
    let data = tempfile::tempdir().unwrap();
    let host = start(&plugins, data.path());
    let page = system(&host, "permission", "list", json!({ "limit": 500 }));
    let items = page["items"].as_array().unwrap();
    assert_eq!(page["total"].as_u64().unwrap() as usize, items.len());
    let find = |id: &str| items.iter().find(|p| p["id"] == id).cloned();
    assert_eq!(find("role.create").unwrap()["plugin"], "role");
    assert_eq!(find("permission.read").unwrap()["plugin"], "permission");
    assert_eq!(find("directory.manage").unwrap()["plugin"], "directory");
    let only_role = system(&host, "permission", "list", json!({ "plugin": "role" }));
    assert!(only_role["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["plugin"] == "role"));
    let one = system(&host, "permission", "get", json!({ "id": "role.delete" }));
    assert_eq!(one["plugin"], "role");
    let err = host
        .system("permission")
        .unwrap()
        .call::<_, Value>("get", &json!({ "id": "role.nope" }))
        .unwrap_err();
    assert_eq!(err.code, codes::NOT_FOUND);
    let unknown = system(
        &host,
        "permission",
        "check",
        json!({ "ids": ["role.create", "x.y", "x.y"] }),
    );
    assert_eq!(unknown, json!({ "unknown": ["x.y"] }));
    host.shutdown();
}

/// Plugins keep the decoded registry per host generation
/// (`Host::permissions` in plugin-api): a system activated later must show
/// up in `permission.check` and in the administrator role at once.
#[test]
fn the_cached_registry_follows_later_activations() {
    let plugins = PluginDir::systems_and(&[fixture_library("directory")]);
    let data = tempfile::tempdir().unwrap();
    let host = start_with(&plugins, data.path(), &["permission", "role"]);
    let check = || {
        system(
            &host,
            "permission",
            "check",
            json!({ "ids": ["directory.manage", "role.create"] }),
        )
    };
    let admin_holds = |id: &str| {
        system(&host, "role", "get", json!({ "id": "admin" }))["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == id)
    };
    // Twice: the second answer comes from the plugins' cached registry.
    for _ in 0..2 {
        assert_eq!(check(), json!({ "unknown": ["directory.manage"] }));
        assert!(admin_holds("role.create") && !admin_holds("directory.manage"));
    }
    host.activate("directory").unwrap();
    assert_eq!(check(), json!({ "unknown": [] }));
    assert!(admin_holds("directory.manage"));
    let listed = system(
        &host,
        "permission",
        "get",
        json!({ "id": "directory.manage" }),
    );
    assert_eq!(listed["plugin"], "directory");
    host.shutdown();
}

/// The host hands every call its registry generation and plugins skip the
/// registry round trip while their copy is that new: a plugin must still
/// see a permission of a system activated just before the call, and no
/// longer see one of a system deactivated before the call. Checked from
/// another plugin (`directory` asks `permission.check`), before and after
/// `intruder` is activated, and in `directory`'s shutdown hook, which runs
/// after `intruder` (activated later) was deactivated.
#[test]
fn a_plugin_sees_the_registry_of_the_moment_it_is_called() {
    let plugins =
        PluginDir::systems_and(&[fixture_library("directory"), fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = start_with(&plugins, data.path(), &["directory"]);
    let ids = json!({ "ids": ["intruder.secret", "role.create", "intruder.secret"] });
    let ask = |host: &Host| system(host, "directory", "unknown_permissions", ids.clone());
    // Twice: the second answer comes from the permission plugin's copy.
    for _ in 0..2 {
        assert_eq!(ask(&host), json!({ "unknown": ["intruder.secret"] }));
    }
    host.activate("intruder").unwrap();
    for _ in 0..2 {
        assert_eq!(ask(&host), json!({ "unknown": [] }));
    }
    // Shutdown deactivates intruder first, then directory, whose shutdown
    // hook asks again and keeps the answer in its store.
    let errors = host.shutdown();
    assert!(errors.is_empty(), "{errors:?}");
    drop(host);
    let host = start_with(&plugins, data.path(), &["directory"]);
    assert_eq!(
        system(&host, "directory", "unknown_at_shutdown", json!({})),
        json!({ "unknown": ["intruder.secret"] })
    );
    host.shutdown();
}

#[test]
fn a_permission_declared_twice_is_an_activation_error_naming_both_plugins() {
    let plugins = PluginDir::systems_and(&[fixture_library("impostor")]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let err = host
        .activate("impostor")
        .err()
        .expect("impostor must not activate");
    let text = err.to_string();
    assert!(
        text.contains("'role.create'") && text.contains("'role'") && text.contains("'impostor'"),
        "{text}"
    );
    assert!(host.is_active("role"));
    host.shutdown();
}

#[test]
fn cached_permissions_follow_role_changes_immediately() {
    let plugins = PluginDir::systems_and(&[fixture_library("directory")]);
    let data = tempfile::tempdir().unwrap();
    let host = start(&plugins, data.path());
    system(
        &host,
        "role",
        "create",
        json!({ "id": "viewer", "name": "Viewer", "permissions": ["group.read"] }),
    );
    system(
        &host,
        "directory",
        "set_user",
        json!({ "user_id": "u1", "roles": ["viewer"] }),
    );

    let subject = host.subject(Some("u1")).unwrap();
    assert!(subject.has_permission("group.read"));
    assert!(!subject.has_permission("group.create"));
    let group = host.system("group").unwrap();
    let ctx = host.context_for(Some("u1")).unwrap();
    let _: Value = group.call_as(&ctx, "list", &json!({})).unwrap();

    // Cached: no further resolution while nothing changes.
    let before = resolutions(&host);
    for _ in 0..10 {
        assert!(host
            .subject(Some("u1"))
            .unwrap()
            .has_permission("group.read"));
    }
    assert_eq!(resolutions(&host), before);

    // role.set_permissions takes effect on the next check.
    system(
        &host,
        "role",
        "set_permissions",
        json!({ "id": "viewer", "permissions": ["group.create"] }),
    );
    let subject = host.subject(Some("u1")).unwrap();
    assert!(!subject.has_permission("group.read"));
    assert!(subject.has_permission("group.create"));
    let ctx = host.context_for(Some("u1")).unwrap();
    let err = group
        .call_as::<_, Value>(&ctx, "list", &json!({}))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert!(err.message.contains("group.read"), "{err}");

    // role.delete too.
    system(&host, "role", "delete", json!({ "id": "viewer" }));
    assert!(!host
        .subject(Some("u1"))
        .unwrap()
        .has_permission("group.create"));
    host.shutdown();
}

#[test]
fn anonymous_permissions_follow_the_settings() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = start_with(&plugins, data.path(), &["user"]);
    system(
        &host,
        "role",
        "create",
        json!({ "id": "guest", "name": "Guest", "permissions": ["group.read"] }),
    );
    let group = host.system("group").unwrap();
    let anonymous = host.context_for(None).unwrap();
    let err = group
        .call_as::<_, Value>(&anonymous, "list", &json!({}))
        .unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);

    system(
        &host,
        "settings",
        "put",
        json!({ "section": "user", "document": { "anonymous_roles": ["guest"] } }),
    );
    let anonymous = host.context_for(None).unwrap();
    let _: Value = group.call_as(&anonymous, "list", &json!({})).unwrap();

    system(
        &host,
        "settings",
        "put",
        json!({ "section": "user", "document": { "anonymous_roles": [] } }),
    );
    assert!(!host.subject(None).unwrap().has_permission("group.read"));
    host.shutdown();
}

#[test]
fn a_denied_call_changes_nothing() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = start_with(&plugins, data.path(), &["user"]);
    let created = system(
        &host,
        "user",
        "create",
        json!({ "email": "reader@example.test", "password": "a long enough passphrase", "permissions": ["group.read"] }),
    );
    let id = created["id"].as_str().unwrap().to_string();
    let ctx = host.context_for(Some(&id)).unwrap();
    assert!(host
        .subject(Some(&id))
        .unwrap()
        .has_permission("group.read"));
    let role = host.system("role").unwrap();
    let err = role
        .call_as::<_, Value>(&ctx, "create", &json!({ "id": "sneaky", "name": "Sneaky" }))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert!(err.message.contains("role.create"), "{err}");
    let err = role
        .call::<_, Value>("get", &json!({ "id": "sneaky" }))
        .unwrap_err();
    assert_eq!(err.code, codes::NOT_FOUND);
    let group = host.system("group").unwrap();
    let err = group
        .call_as::<_, Value>(&ctx, "delete", &json!({ "id": "system" }))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    let _: Value = group.call("get", &json!({ "id": "system" })).unwrap();
    // Unknown users are not authenticated.
    assert!(host.context_for(Some("ghost")).is_err());
    host.shutdown();
}

#[test]
fn without_a_subject_provider_anonymous_holds_nothing_and_users_are_unavailable() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    host.activate("role").unwrap();
    assert!(!host.subject(None).unwrap().has_permission("role.read"));
    let err = host.subject(Some("u1")).unwrap_err();
    assert_eq!(err.code, codes::UNAVAILABLE);
    host.shutdown();
}
