//! Activation through the real host with the real plugin libraries.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use syshost::{Host, SystemState};
use syshost_plugin_api::{codes, CallContext, NoInput};
use syshost_test_support::{fixture_library, library, PluginDir, SYSTEMS};

fn host(plugins: &PluginDir, data: &std::path::Path) -> Host {
    Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds")
}

#[test]
fn enabling_user_activates_all_eight_in_dependency_order() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    assert!(
        host.discovery().errors.is_empty(),
        "{:?}",
        host.discovery().errors
    );

    let user = host.activate("user").expect("user activates");
    let rows = host.systems();
    assert_eq!(rows.len(), 8);
    for row in &rows {
        assert_eq!(row.state, SystemState::Active, "{row:?}");
    }
    let order: BTreeMap<&str, usize> = rows
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.order.expect("active systems have an order"),
            )
        })
        .collect();
    // Every hard requirement is activated before its dependent.
    for dep in ["license", "role", "permission", "group", "settings"] {
        assert!(
            order[dep] < order["user"],
            "{dep} must precede user: {order:?}"
        );
    }
    assert!(order["user"] < order["session"], "{order:?}");
    assert!(order["settings"] < order["audit"], "{order:?}");
    assert_eq!(order["user"], 6);
    assert_eq!(order["session"], 7);
    // Ties break alphabetically, so the order is deterministic.
    assert_eq!(
        host.active_systems(),
        [
            "group",
            "license",
            "permission",
            "role",
            "settings",
            "audit",
            "user",
            "session"
        ]
    );
    let reasons: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(reasons["user"], "enabled");
    assert_eq!(reasons["license"], "required by user");
    assert_eq!(reasons["session"], "wanted by user");
    assert_eq!(reasons["audit"], "wanted by user");

    // A typed call through the handle.
    let pong: Value = user.call("ping", &NoInput {}).unwrap();
    assert_eq!(pong, json!({ "system": "user", "version": "0.1.0" }));

    // Activating again is a no-op returning an equivalent handle.
    let again = host.activate("user").unwrap();
    assert_eq!(again.id(), "user");
    assert_eq!(host.active_systems().len(), 8);
    assert!(host.shutdown().is_empty());
    assert!(host.active_systems().is_empty());
}

#[test]
fn activating_a_leaf_activates_only_what_it_needs() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    host.activate("role").unwrap();
    // role requires permission (to validate permission ids).
    assert_eq!(host.active_systems(), ["permission", "role"]);
    host.activate("session").unwrap();
    // session requires user, which requires the other five, and session comes last.
    assert_eq!(
        host.active_systems(),
        [
            "permission",
            "role",
            "group",
            "license",
            "settings",
            "audit",
            "user",
            "session"
        ]
    );
    host.shutdown();
}

#[test]
fn a_panicking_plugin_fails_blocks_its_dependents_and_the_host_survives() {
    let plugins = PluginDir::systems_and(&[
        fixture_library("panicking"),
        fixture_library("needs-panicky"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    let report = host.activate_all(&["needs_panicky".into(), "user".into()]);
    assert!(!report.is_ok());
    let rows: BTreeMap<String, _> = host
        .systems()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    assert_eq!(rows["panicky"].state, SystemState::Failed);
    assert!(
        rows["panicky"].reason.contains("activation exploded"),
        "{:?}",
        rows["panicky"]
    );
    assert_eq!(rows["needs_panicky"].state, SystemState::Blocked);
    assert!(
        rows["needs_panicky"].reason.contains("panicky"),
        "{:?}",
        rows["needs_panicky"]
    );
    for id in SYSTEMS {
        assert_eq!(rows[id].state, SystemState::Active, "{id}");
    }
    // Still serving.
    let pong: Value = host
        .system("role")
        .unwrap()
        .call("ping", &NoInput {})
        .unwrap();
    assert_eq!(pong["system"], "role");
    // Asking for the failed system names the failure.
    let err = host
        .activate("needs_panicky")
        .err()
        .expect("blocked system cannot activate");
    assert!(err.to_string().contains("panicky"), "{err}");
    host.shutdown();
}

#[test]
fn a_panicking_operation_is_an_error_not_an_abort() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    let intruder = host.activate("intruder").unwrap();
    let err = intruder.call::<_, Value>("boom", &NoInput {}).unwrap_err();
    assert_eq!(err.code, codes::PLUGIN_PANICKED);
    assert!(err.message.contains("operation exploded"), "{err}");
    // The plugin and the host keep working.
    let who: Value = intruder.call("whoami", &NoInput {}).unwrap();
    assert_eq!(who["subject"], "system");
    host.shutdown();
}

#[test]
fn events_reach_subscribers_after_the_publishing_call() {
    let plugins = PluginDir::systems_and(&[
        fixture_library("intruder"),
        library("syshost-example-event-log"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    host.activate_all(&["intruder".into(), "eventlog".into()]);
    let intruder = host.system("intruder").unwrap();
    let _: Value = intruder
        .call("put", &json!({ "key": "k", "value": "v" }))
        .unwrap();
    let seen: Vec<String> = intruder.call("events", &NoInput {}).unwrap();
    assert_eq!(seen, ["intruder.written"]);
    let audit = host.system("eventlog").unwrap();
    let page: Value = audit.call("list", &json!({})).unwrap();
    // Newest first; earlier events come from activation (the role system
    // seeding its built-in administrator role).
    let events: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "intruder")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["topic"], "intruder.written");
    assert_eq!(events[0]["source"], "intruder");
    assert_eq!(events[0]["payload"], json!({ "key": "k" }));
    // The audit plugin's own permission guards its operations.
    let anonymous = CallContext::default();
    let err = audit
        .call_as::<_, Value>(&anonymous, "count", &NoInput {})
        .unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
    host.shutdown();
}

#[test]
fn writes_survive_a_restart_and_a_second_host_on_the_same_data_dir_is_refused() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    {
        let host = host(&plugins, data.path());
        let intruder = host.activate("intruder").unwrap();
        let _: Value = intruder
            .call("put", &json!({ "key": "greeting", "value": "hello" }))
            .unwrap();
        let second = Host::builder()
            .data_dir(data.path())
            .plugin_dir(plugins.path())
            .build();
        let err = second
            .err()
            .expect("second host on the same data dir must fail");
        assert!(
            err.to_string().contains("in use by another syshost"),
            "{err}"
        );
        assert!(host.shutdown().is_empty());
    }
    let host = host(&plugins, data.path());
    let intruder = host.activate("intruder").unwrap();
    let value: Option<String> = intruder.call("get", &json!({ "key": "greeting" })).unwrap();
    assert_eq!(value.as_deref(), Some("hello"));
    host.shutdown();
}

#[test]
fn activating_user_registers_its_settings_section() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    host.activate("user").unwrap();
    let settings = host.system("settings").unwrap();
    let section: Value = settings.call("get", &json!({ "section": "user" })).unwrap();
    assert_eq!(section["owner"], "user");
    let doc = &section["document"];
    assert_eq!(doc["self_registration"], false);
    assert_eq!(doc["password_policy"]["min_length"], 12);
    assert_eq!(doc["password_policy"]["max_length"], 256);
    assert_eq!(doc["registration_fields"]["first_name"], "required");
    // The schema guards it: an out-of-range policy names the field.
    let err = settings
        .call::<_, Value>(
            "put",
            &json!({ "section": "user", "document": { "password_policy": { "min_length": 3 } } }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("password_policy.min_length"), "{err}");
    host.shutdown();
}
