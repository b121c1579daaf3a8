//! Unit tests for the `user.deleted` handler, which the integration tests
//! cannot reach yet (only the `user` plugin may publish `user.*` topics).
//!
//! They run the plugin against a small in-memory implementation of the
//! host-services ABI; everything else is tested through the real host in
//! `tests/license.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RString, RVec};
use serde_json::{json, Value};
use syshost_plugin_api::abi::{
    AbiError, CallMode, CasOutcome, HostObj, HostObj_TO, KvOp, KvOpKind, KvPair, ScanRequest,
};
use syshost_plugin_api::{CallContext, Event, Host, Plugin, PluginError};

use crate::{CreateUserRequest, IdRequest, LicenseSystem, LicensesOfRequest, SeatRequest};

#[derive(Default)]
struct State {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    published: Vec<(String, Value)>,
}

/// An in-memory host: one namespace, recorded events, nothing else.
#[derive(Clone, Default)]
struct FakeHost(Arc<Mutex<State>>);

impl FakeHost {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }
}

fn unsupported<T>(what: &str) -> RResult<T, AbiError> {
    RResult::RErr(PluginError::internal(format!("fake host: {what} unsupported")).into())
}

impl HostObj for FakeHost {
    fn kv_get(&self, key: RSlice<'_, u8>) -> RResult<ROption<RVec<u8>>, AbiError> {
        let v = self.state().kv.get(key.as_slice()).cloned();
        RResult::ROk(v.map(RVec::from).into())
    }

    fn kv_put(&self, key: RSlice<'_, u8>, value: RSlice<'_, u8>) -> RResult<(), AbiError> {
        self.state().kv.insert(key.to_vec(), value.to_vec());
        RResult::ROk(())
    }

    fn kv_delete(&self, key: RSlice<'_, u8>) -> RResult<bool, AbiError> {
        RResult::ROk(self.state().kv.remove(key.as_slice()).is_some())
    }

    fn kv_scan(&self, request: ScanRequest) -> RResult<RVec<KvPair>, AbiError> {
        let state = self.state();
        let start = request.start.to_vec();
        let end = request.end.into_option().map(RVec::into_vec);
        let mut pairs: Vec<KvPair> = state
            .kv
            .range(start..)
            .filter(|(k, _)| end.as_ref().is_none_or(|e| *k < e))
            .map(|(k, v)| KvPair {
                key: RVec::from(k.clone()),
                value: RVec::from(v.clone()),
            })
            .collect();
        if request.reverse {
            pairs.reverse();
        }
        pairs.truncate(request.limit as usize);
        RResult::ROk(pairs.into())
    }

    fn kv_batch(&self, ops: RVec<KvOp>) -> RResult<ROption<u32>, AbiError> {
        let mut state = self.state();
        for (i, op) in ops.iter().enumerate() {
            if op.kind == KvOpKind::EXPECT {
                let current = state.kv.get(op.key.as_slice());
                let expected = op.value.as_ref().map(|v| v.as_slice()).into_option();
                if current.map(Vec::as_slice) != expected {
                    return RResult::ROk(RSome(i as u32));
                }
            }
        }
        for op in ops.iter() {
            if op.kind == KvOpKind::PUT {
                let value = op.value.as_ref().map(|v| v.to_vec()).unwrap_or_default();
                state.kv.insert(op.key.to_vec(), value);
            } else if op.kind == KvOpKind::DELETE {
                state.kv.remove(op.key.as_slice());
            }
        }
        RResult::ROk(RNone)
    }

    fn kv_cas(
        &self,
        _key: RSlice<'_, u8>,
        _expected: ROption<RVec<u8>>,
        _new: ROption<RVec<u8>>,
    ) -> RResult<CasOutcome, AbiError> {
        unsupported("kv_cas")
    }

    fn call(
        &self,
        _target: RStr<'_>,
        _operation: RStr<'_>,
        _payload: RStr<'_>,
        _mode: CallMode,
    ) -> RResult<RString, AbiError> {
        unsupported("call")
    }

    fn publish(&self, topic: RStr<'_>, payload: RStr<'_>) -> RResult<(), AbiError> {
        let payload = serde_json::from_str(payload.as_str()).unwrap_or(Value::Null);
        self.state()
            .published
            .push((topic.as_str().to_string(), payload));
        RResult::ROk(())
    }

    fn send_mail(&self, _mail: RStr<'_>) -> RResult<(), AbiError> {
        unsupported("send_mail")
    }

    fn now_unix_ms(&self) -> i64 {
        1_700_000_000_000
    }

    fn log(&self, _level: u8, _message: RStr<'_>) {}

    fn service(&self, _name: RStr<'_>, _request: RStr<'_>) -> RResult<RString, AbiError> {
        unsupported("service")
    }
}

fn start() -> (LicenseSystem, FakeHost) {
    let fake = FakeHost::default();
    let host = Host::from_abi(HostObj_TO::from_value(fake.clone(), TD_Opaque));
    (LicenseSystem::activate(host).unwrap(), fake)
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
