//! Plugins see only their own namespace, call only what they declared, and
//! every call is authorized against the operation's declared access rule.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use syshost::store::{SledStore, Store};
use syshost::Host;
use syshost_plugin_api::{codes, CallContext, NoInput, Subject, UserSubject};
use syshost_test_support::{fixture_library, PluginDir};

fn start(data: &std::path::Path, plugins: &PluginDir) -> Host {
    Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .unwrap()
}

#[test]
fn a_plugin_cannot_read_another_plugins_keys() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    // Plant a secret in the role system's namespace before the host starts.
    {
        let store = SledStore::open(data.path()).unwrap();
        store
            .plugin_namespace("role")
            .unwrap()
            .put(b"secret", b"role-only")
            .unwrap();
        store.flush().unwrap();
    }
    let host = start(data.path(), &plugins);
    let intruder = host.activate("intruder").unwrap();
    for key in [
        "secret",
        "../role/secret",
        "plugin/role/secret",
        "role/secret",
        "/secret",
    ] {
        let got: Option<String> = intruder.call("get", &json!({ "key": key })).unwrap();
        assert_eq!(got, None, "{key}");
    }
    let _: Value = intruder
        .call("put", &json!({ "key": "mine", "value": "1" }))
        .unwrap();
    let keys: Vec<String> = intruder.call("keys", &NoInput {}).unwrap();
    assert_eq!(keys, ["mine"]);
    host.shutdown();
    // Handles share the host; the store closes when the last one is gone.
    drop(intruder);
    drop(host);
    // On disk: the intruder's write is in its own tree only.
    let store = SledStore::open(data.path()).unwrap();
    assert_eq!(
        store
            .plugin_namespace("intruder")
            .unwrap()
            .get(b"mine")
            .unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        store
            .plugin_namespace("role")
            .unwrap()
            .get(b"mine")
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .plugin_namespace("role")
            .unwrap()
            .get(b"secret")
            .unwrap(),
        Some(b"role-only".to_vec())
    );
}

#[test]
fn calls_reach_only_declared_plugins() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = start(data.path(), &plugins);
    host.activate_all(&["user".into(), "intruder".into()]);
    let intruder = host.system("intruder").unwrap();
    // Declared (requires role): allowed.
    let pong: Value = intruder
        .call("call", &json!({ "target": "role", "operation": "ping" }))
        .unwrap();
    assert_eq!(pong["system"], "role");
    // Active but undeclared: refused, naming both plugins.
    let err = intruder
        .call::<_, Value>("call", &json!({ "target": "user", "operation": "ping" }))
        .unwrap_err();
    assert_eq!(err.code, codes::CALL_REFUSED);
    assert!(
        err.message.contains("'intruder'") && err.message.contains("'user'"),
        "{err}"
    );
    // Undeclared operation of a declared plugin.
    let err = intruder
        .call::<_, Value>(
            "call",
            &json!({ "target": "role", "operation": "drop_everything" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::UNKNOWN_OPERATION);
    host.shutdown();
}

#[test]
fn a_plugin_cannot_publish_another_plugins_events() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = start(data.path(), &plugins);
    let intruder = host.activate("intruder").unwrap();
    for topic in ["role.deleted", "intruder", "intruder.", "intruderx.y"] {
        let err = intruder
            .call::<_, Value>("publish", &json!({ "topic": topic }))
            .unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT, "{topic}");
    }
    let _: Value = intruder
        .call("publish", &json!({ "topic": "intruder.ok" }))
        .unwrap();
    let seen: Vec<String> = intruder.call("events", &NoInput {}).unwrap();
    assert_eq!(seen, ["intruder.ok"]);
    host.shutdown();
}

#[test]
fn the_host_enforces_declared_access_before_the_plugin_runs() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = start(data.path(), &plugins);
    let intruder = host.activate("intruder").unwrap();
    let user = |perms: &[&str]| {
        CallContext::for_subject(Subject::User(UserSubject {
            id: "u1".into(),
            permissions: perms.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>(),
            ..Default::default()
        }))
    };
    let err = intruder
        .call_as::<_, Value>(&CallContext::default(), "secret", &NoInput {})
        .unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
    let err = intruder
        .call_as::<_, Value>(&user(&["role.read"]), "secret", &NoInput {})
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert!(err.message.contains("intruder.secret"), "{err}");
    let who: Value = intruder
        .call_as(&user(&["intruder.secret"]), "secret", &NoInput {})
        .unwrap();
    assert_eq!(who["subject"], "user:u1");
    // Public operations are open to anonymous callers.
    let who: Value = intruder
        .call_as(&CallContext::default(), "whoami", &NoInput {})
        .unwrap();
    assert_eq!(who["subject"], "anonymous");
    // Unknown operations and inactive systems are refused by the host.
    let err = host
        .call_raw("intruder", "nope", "{}", &CallContext::system())
        .unwrap_err();
    assert_eq!(err.code, codes::UNKNOWN_OPERATION);
    let err = host
        .call_raw("ghost", "ping", "{}", &CallContext::system())
        .unwrap_err();
    assert_eq!(err.code, codes::UNAVAILABLE);
    // Malformed payloads name the problem and change nothing.
    let err = host
        .call_raw("intruder", "put", "{\"key\": 5}", &CallContext::system())
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("put"), "{err}");
    let keys: Vec<String> = intruder.call("keys", &NoInput {}).unwrap();
    assert!(keys.is_empty());
    host.shutdown();
}

#[test]
fn conditional_batches_are_atomic() {
    let plugins = PluginDir::systems_and(&[fixture_library("intruder")]);
    let data = tempfile::tempdir().unwrap();
    let host = start(data.path(), &plugins);
    let intruder = host.activate("intruder").unwrap();
    let first: bool = intruder
        .call(
            "insert_unique",
            &json!({ "key": "email/a@x", "value": "1" }),
        )
        .unwrap();
    let second: bool = intruder
        .call(
            "insert_unique",
            &json!({ "key": "email/a@x", "value": "2" }),
        )
        .unwrap();
    assert!(first);
    assert!(!second);
    let value: Option<String> = intruder
        .call("get", &json!({ "key": "email/a@x" }))
        .unwrap();
    assert_eq!(value.as_deref(), Some("1"));
    host.shutdown();
}
