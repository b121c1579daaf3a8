//! Unit tests for the `user.deleted` handler, which the integration tests
//! cannot reach yet (only the `user` plugin may publish `user.*` topics).
//!
//! They run the plugin on `TestHost`, plugin-api's in-memory stand-in for
//! the host services (feature `testing`); everything else is tested
//! through the real host in `tests/license.rs`.

use serde_json::{json, Value};
use syshost_plugin_api::testing::TestHost;
use syshost_plugin_api::{CallContext, Event, Plugin};

use crate::{CreateUserRequest, IdRequest, LicenseSystem, LicensesOfRequest, SeatRequest};

fn start() -> (LicenseSystem, TestHost) {
    let fake = TestHost::new();
    (LicenseSystem::activate(fake.host()).unwrap(), fake)
}

fn user_deleted(id: &str) -> Event {
    Event {
        topic: "user.deleted".into(),
        source: "user".into(),
        payload: json!({ "id": id }),
        at_unix_ms: 0,
        actor: None,
        client_addr: None,
    }
}

fn create(plugin: &LicenseSystem, id: &str, max_users: u64) {
    plugin
        .create_user_license(
            CreateUserRequest {
                id: Some(id.into()),
                name: id.to_uppercase(),
                description: String::new(),
                max_users,
            },
            &CallContext::system(),
        )
        .unwrap();
}

fn assign(plugin: &LicenseSystem, license_id: &str, user_id: &str) {
    let r = plugin
        .assign(
            SeatRequest {
                license_id: license_id.into(),
                user_id: user_id.into(),
            },
            &CallContext::system(),
        )
        .unwrap();
    assert!(r.assigned);
}

fn licenses_of(plugin: &LicenseSystem, user_id: &str) -> Vec<String> {
    plugin
        .licenses_of(
            LicensesOfRequest {
                user_id: user_id.into(),
            },
            &CallContext::system(),
        )
        .unwrap()
        .licenses
}

fn used(plugin: &LicenseSystem, id: &str) -> u64 {
    plugin
        .get_user_license(IdRequest { id: id.into() }, &CallContext::system())
        .unwrap()
        .used
}

#[test]
fn user_deleted_frees_every_seat_of_that_user_only() {
    let (plugin, fake) = start();
    create(&plugin, "pro", 2);
    create(&plugin, "basic", 0);
    assign(&plugin, "pro", "u1");
    assign(&plugin, "basic", "u1");
    assign(&plugin, "pro", "u2");
    assert_eq!(licenses_of(&plugin, "u1"), ["basic", "pro"]);
    fake.state().published.clear();

    plugin.on_event(&user_deleted("u1")).unwrap();

    assert!(licenses_of(&plugin, "u1").is_empty());
    assert_eq!(licenses_of(&plugin, "u2"), ["pro"]);
    assert_eq!(used(&plugin, "pro"), 1);
    assert_eq!(used(&plugin, "basic"), 0);
    // The freed seat is usable again.
    assign(&plugin, "pro", "u3");
    let published: Vec<(String, Value)> = fake.state().published.drain(..).collect();
    assert_eq!(
        published[..2],
        [
            (
                "license.revoked".to_string(),
                json!({ "license_id": "basic", "user_id": "u1" })
            ),
            (
                "license.revoked".to_string(),
                json!({ "license_id": "pro", "user_id": "u1" })
            ),
        ]
    );
    // No key of u1 is left anywhere.
    let state = fake.state();
    assert!(
        !state
            .kv
            .keys()
            .any(|k| String::from_utf8_lossy(k).contains("/u1")),
        "{:?}",
        state
            .kv
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    );
}

#[test]
fn user_deleted_for_an_unknown_or_odd_user_changes_nothing() {
    let (plugin, fake) = start();
    create(&plugin, "pro", 1);
    assign(&plugin, "pro", "u1");
    let before = fake.state().kv.clone();
    fake.state().published.clear();
    plugin.on_event(&user_deleted("nobody")).unwrap();
    plugin.on_event(&user_deleted("Not A Slug/..")).unwrap();
    assert_eq!(fake.state().kv, before);
    assert!(fake.state().published.is_empty());
    // A malformed payload is an error (logged by the host), not a panic.
    let bad = Event {
        payload: json!({ "user": "u1" }),
        ..user_deleted("u1")
    };
    assert!(plugin.on_event(&bad).is_err());
    assert_eq!(fake.state().kv, before);
}

#[test]
fn other_events_are_ignored() {
    let (plugin, fake) = start();
    create(&plugin, "pro", 1);
    assign(&plugin, "pro", "u1");
    let before = fake.state().kv.clone();
    let other = Event {
        topic: "user.updated".into(),
        ..user_deleted("u1")
    };
    plugin.on_event(&other).unwrap();
    assert_eq!(fake.state().kv, before);
}
