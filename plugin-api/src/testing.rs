//! A stand-in for the host services, for unit tests of plugin code that
//! the integration tests (real host, real plugin libraries) cannot reach.
//!
//! Built only for this crate's own tests and with the cargo feature
//! `testing`, which crates enable in their `[dev-dependencies]` only; no
//! plugin library contains it. Not a stable API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RString, RVec};
use serde_json::Value;

use crate::abi::{
    AbiError, CallMode, CasOutcome, HostObj, HostObj_TO, KvOp, KvOpKind, KvPair, ScanRequest,
};
use crate::{Host, PluginError};

/// The host clock of a [`TestHost`] until a test sets
/// [`TestState::now_unix_ms`].
pub const TEST_NOW_UNIX_MS: i64 = 1_700_000_000_000;

/// What a [`TestHost`] holds; tests read and change it through
/// [`TestHost::state`].
#[derive(Debug)]
pub struct TestState {
    /// The plugin's namespace.
    pub kv: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every published event: topic and payload (`null` if it was not JSON).
    pub published: Vec<(String, Value)>,
    /// What `now_unix_ms` answers.
    pub now_unix_ms: i64,
}

impl Default for TestState {
    fn default() -> Self {
        TestState {
            kv: BTreeMap::new(),
            published: Vec::new(),
            now_unix_ms: TEST_NOW_UNIX_MS,
        }
    }
}

/// Answers a host service call: service name and request JSON in, answer
/// JSON out.
pub type ServiceHandler = dyn Fn(&str, &str) -> Result<String, PluginError> + Send + Sync;

/// An in-memory host for one plugin: one namespace (with batches, scans and
/// compare-and-swap as the host does them), recorded events, a fixed clock
/// and, when a test provides one, a host-service handler. Cross-plugin
/// calls and mail are refused. Clones share the state.
#[derive(Clone, Default)]
pub struct TestHost {
    state: Arc<Mutex<TestState>>,
    service: Option<Arc<ServiceHandler>>,
}

impl TestHost {
    /// A host with an empty namespace and no host services.
    pub fn new() -> Self {
        TestHost::default()
    }

    /// Answers host service calls ([`Host::service`]) with `handler`.
    pub fn with_service(
        mut self,
        handler: impl Fn(&str, &str) -> Result<String, PluginError> + Send + Sync + 'static,
    ) -> Self {
        self.service = Some(Arc::new(handler));
        self
    }

    /// The [`Host`] a plugin under test receives (one per call: each has
    /// its own id and permission-registry copy, all share this state).
    pub fn host(&self) -> Host {
        Host::from_abi(HostObj_TO::from_value(self.clone(), TD_Opaque))
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, TestState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unsupported<T>(what: &str) -> RResult<T, AbiError> {
    RResult::RErr(PluginError::internal(format!("test host: {what} is not supported")).into())
}

impl HostObj for TestHost {
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
        let in_range = state
            .kv
            .range(start..)
            .filter(|(k, _)| end.as_ref().is_none_or(|e| *k < e));
        let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| KvPair {
            key: RVec::from(k.clone()),
            value: RVec::from(v.clone()),
        };
        let limit = request.limit as usize;
        let pairs: Vec<KvPair> = if request.reverse {
            in_range.rev().take(limit).map(pair).collect()
        } else {
            in_range.take(limit).map(pair).collect()
        };
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
        key: RSlice<'_, u8>,
        expected: ROption<RVec<u8>>,
        new: ROption<RVec<u8>>,
    ) -> RResult<CasOutcome, AbiError> {
        let mut state = self.state();
        let current = state.kv.get(key.as_slice());
        if current.map(Vec::as_slice) != expected.as_ref().map(|v| v.as_slice()).into_option() {
            return RResult::ROk(CasOutcome {
                swapped: false,
                current: current.cloned().map(RVec::from).into(),
            });
        }
        match new.into_option() {
            Some(value) => state.kv.insert(key.to_vec(), value.into_vec()),
            None => state.kv.remove(key.as_slice()),
        };
        RResult::ROk(CasOutcome {
            swapped: true,
            current: RNone,
        })
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
        self.state().now_unix_ms
    }

    fn log(&self, _level: u8, _message: RStr<'_>) {}

    fn service(&self, name: RStr<'_>, request: RStr<'_>) -> RResult<RString, AbiError> {
        match &self.service {
            Some(handler) => match handler(name.as_str(), request.as_str()) {
                Ok(answer) => RResult::ROk(answer.into()),
                Err(e) => RResult::RErr(e.into()),
            },
            None => unsupported("service"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchResult;

    #[test]
    fn the_namespace_behaves_like_the_hosts() {
        let test_host = TestHost::new();
        let store = test_host.host().store();
        for key in ["a", "b1", "b2", "b3", "c"] {
            store.put(key, key.to_uppercase()).unwrap();
        }
        let keys = |pairs: Vec<crate::Entry>| -> Vec<String> {
            pairs
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        assert_eq!(keys(store.scan_prefix("b").unwrap()), ["b1", "b2", "b3"]);
        assert_eq!(
            keys(store.range(b"b", Some(b"c"), 2).unwrap()),
            ["b1", "b2"]
        );
        assert_eq!(
            keys(store.range_rev(b"a", Some(b"c"), 2).unwrap()),
            ["b3", "b2"]
        );
        // A failed precondition applies nothing.
        let batch = store.batch().put("d", "D").expect("a", "not A");
        assert_eq!(batch.commit().unwrap(), BatchResult::PreconditionFailed(1));
        assert_eq!(store.get("d").unwrap(), None);
        let batch = store
            .batch()
            .expect("a", "A")
            .expect_absent("d")
            .delete("a");
        assert_eq!(batch.commit().unwrap(), BatchResult::Committed);
        assert_eq!(store.get("a").unwrap(), None);
        // Compare-and-swap answers the current value when it differs.
        assert_eq!(
            store.compare_and_swap("c", Some(b"x"), None).unwrap(),
            Err(Some(b"C".to_vec()))
        );
        assert_eq!(
            store.compare_and_swap("c", Some(b"C"), None).unwrap(),
            Ok(())
        );
        assert_eq!(
            store.compare_and_swap("e", None, Some(b"E")).unwrap(),
            Ok(())
        );
        assert_eq!(store.get("c").unwrap(), None);
        assert_eq!(store.get("e").unwrap(), Some(b"E".to_vec()));
        // Clones share one state; events are recorded; the clock is fixed.
        let host = test_host.clone().host();
        host.publish("p.done", &serde_json::json!({"n": 1}))
            .unwrap();
        assert_eq!(host.now_unix_ms(), TEST_NOW_UNIX_MS);
        let state = test_host.state();
        assert_eq!(
            state.published,
            [("p.done".into(), serde_json::json!({"n": 1}))]
        );
        assert!(state.kv.contains_key(b"e".as_slice()));
    }

    #[test]
    fn services_answer_only_when_the_test_provides_them() {
        let err = TestHost::new()
            .host()
            .service::<_, serde_json::Value>("anything", &())
            .unwrap_err();
        assert!(err.message.contains("not supported"), "{err:?}");
        let host = TestHost::new()
            .with_service(|name, request| Ok(format!("[\"{name}\",{request}]")))
            .host();
        let answer: serde_json::Value = host.service("echo", &[1]).unwrap();
        assert_eq!(answer, serde_json::json!(["echo", [1]]));
    }
}
