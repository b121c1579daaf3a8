//! Typed access to the host services a plugin receives at activation.
//!
//! [`Host`] and [`Store`] wrap the FFI object so plugin authors write
//! ordinary Rust: byte slices or serde values in, `Result`s out.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use abi_stable::std_types::{RNone, ROption, RSlice, RSome, RVec};
use serde::{de::DeserializeOwned, Serialize};

use crate::abi::{CallMode, HostBox, KvOp, KvOpKind, ScanRequest};
use crate::{
    Mail, PermissionRegistryAnswer, PermissionRegistryRequest, PluginError, RegisteredPermission,
};

/// The host services bound to one plugin. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostBox>,
    /// Tells this host's services apart from another host's in the same
    /// process (see [`ServingCall`]); shared by every clone.
    id: u64,
    /// The last permission registry fetched (see [`Host::permissions`]),
    /// shared by every clone.
    registry: Arc<Mutex<Option<Arc<PermissionRegistry>>>>,
}

/// The host's permission registry as of one generation (see
/// [`Host::permissions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionRegistry {
    generation: u64,
    permissions: Vec<RegisteredPermission>,
    ids: HashSet<String>,
}

impl PermissionRegistry {
    /// Every registered permission, sorted by id.
    pub fn permissions(&self) -> &[RegisteredPermission] {
        &self.permissions
    }

    /// Whether an active system declares `id` (a set lookup).
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// The registry generation (changes with every activation or
    /// deactivation).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Log severity for [`Host::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something looks wrong.
    Warn = 2,
    /// Normal operation.
    Info = 3,
    /// Detail for debugging.
    Debug = 4,
    /// Very verbose detail.
    Trace = 5,
}

/// Source of [`Host`] ids.
static NEXT_HOST_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The call this thread is serving in this library: its host's id and
    /// the registry generation the host sent with it (see [`ServingCall`]).
    static SERVING: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Marks the thread as serving a call of host `host_id` whose context
/// carried registry generation `generation` (`None`: unknown, or no call),
/// until dropped; then the enclosing call's mark is back. The adapter
/// (`export_plugin!`) sets it around every entry point, so
/// [`Host::permissions`] knows how new its registry must be without asking.
pub(crate) struct ServingCall(Option<(u64, u64)>);

impl ServingCall {
    /// Enters a call (or an event delivery, with `None`).
    pub(crate) fn enter(host_id: u64, generation: Option<u64>) -> ServingCall {
        ServingCall(SERVING.with(|s| s.replace(generation.map(|g| (host_id, g)))))
    }
}

impl Drop for ServingCall {
    fn drop(&mut self) {
        SERVING.with(|s| s.set(self.0));
    }
}

impl Host {
    /// Wraps the FFI host object (done for you by `export_plugin!`).
    pub fn from_abi(inner: HostBox) -> Self {
        Host {
            inner: Arc::new(inner),
            id: NEXT_HOST_ID.fetch_add(1, Ordering::Relaxed),
            registry: Arc::new(Mutex::new(None)),
        }
    }

    /// This host object's id (the adapter marks calls with it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Every permission the active systems declare, never staler than the
    /// host's registry when it dispatched the call being served.
    ///
    /// The decoded registry is kept per generation. Inside a call whose
    /// context carries the host's generation
    /// ([`CallContext::permission_generation`](crate::CallContext::permission_generation)),
    /// a kept registry at least that new is returned without asking the
    /// host. Otherwise (no generation: an older host, an event handler,
    /// another thread; or a newer generation) it asks the host service
    /// `permission_registry`, which answers just the generation while the
    /// kept copy is current and the whole list when it is not.
    pub fn permissions(&self) -> Result<Arc<PermissionRegistry>, PluginError> {
        let held = self
            .registry
            .lock()
            .map_err(|_| PluginError::internal("permission registry cache poisoned"))?
            .clone();
        if let Some(held) = &held {
            let needed = SERVING
                .with(Cell::get)
                .and_then(|(host, generation)| (host == self.id).then_some(generation));
            if needed.is_some_and(|g| held.generation >= g) {
                return Ok(held.clone());
            }
        }
        let answer: PermissionRegistryAnswer = self.service(
            "permission_registry",
            &PermissionRegistryRequest {
                known_generation: held.as_ref().map(|r| r.generation),
            },
        )?;
        match (answer.permissions, held) {
            (None, Some(held)) if held.generation == answer.generation => Ok(held),
            (None, _) => Err(PluginError::internal(
                "host service permission_registry answered without the registry",
            )),
            (Some(permissions), _) => {
                let fresh = Arc::new(PermissionRegistry {
                    generation: answer.generation,
                    ids: permissions.iter().map(|p| p.id.clone()).collect(),
                    permissions,
                });
                if let Ok(mut slot) = self.registry.lock() {
                    // Keep the newest of racing fetches.
                    if slot
                        .as_ref()
                        .is_none_or(|r| r.generation <= fresh.generation)
                    {
                        *slot = Some(fresh.clone());
                    }
                }
                Ok(fresh)
            }
        }
    }

    /// The plugin's own key-value namespace.
    pub fn store(&self) -> Store {
        Store {
            inner: self.inner.clone(),
        }
    }

    /// Calls `operation` of plugin `target` as this plugin (subject
    /// `plugin:<id>`). `target` must be declared in `requires` or `wants`.
    pub fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: &str,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, PluginError> {
        self.call_with_mode(target, operation, request, CallMode::AS_PLUGIN)
    }

    /// Like [`Host::call`], but on behalf of the subject of the call this
    /// plugin is currently serving, so the target sees (and authorizes) the
    /// original caller.
    pub fn call_on_behalf<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: &str,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, PluginError> {
        self.call_with_mode(target, operation, request, CallMode::ON_BEHALF_OF_CALLER)
    }

    fn call_with_mode<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: &str,
        operation: &str,
        request: &Req,
        mode: CallMode,
    ) -> Result<Resp, PluginError> {
        let payload = serde_json::to_string(request)?;
        let out = self
            .inner
            .call(
                target.into(),
                operation.into(),
                payload.as_str().into(),
                mode,
            )
            .into_result()?;
        serde_json::from_str(out.as_str()).map_err(|e| {
            PluginError::internal(format!(
                "response of {target}.{operation} did not match the expected type: {e}"
            ))
        })
    }

    /// Publishes an event. `topic` must be `<this plugin's id>.<name>`.
    /// Subscribers receive it after the outermost call that published it
    /// returns, so they always observe the write that caused it.
    pub fn publish<T: Serialize>(&self, topic: &str, payload: &T) -> Result<(), PluginError> {
        let payload = serde_json::to_string(payload)?;
        self.inner
            .publish(topic.into(), payload.as_str().into())
            .into_result()
            .map_err(Into::into)
    }

    /// Hands a mail to the host's mailer.
    pub fn send_mail(&self, mail: &Mail) -> Result<(), PluginError> {
        let json = serde_json::to_string(mail)?;
        self.inner
            .send_mail(json.as_str().into())
            .into_result()
            .map_err(Into::into)
    }

    /// The host clock in milliseconds since the Unix epoch.
    pub fn now_unix_ms(&self) -> i64 {
        self.inner.now_unix_ms()
    }

    /// Writes a log record attributed to this plugin. Never log secrets.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.inner.log(level as u8, message.as_ref().into());
    }

    /// Logs at info level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Calls a named host service added after the ABI froze.
    pub fn service<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        name: &str,
        request: &Req,
    ) -> Result<Resp, PluginError> {
        let payload = serde_json::to_string(request)?;
        let out = self
            .inner
            .service(name.into(), payload.as_str().into())
            .into_result()?;
        serde_json::from_str(out.as_str()).map_err(|e| {
            PluginError::internal(format!("host service {name} returned unexpected JSON: {e}"))
        })
    }
}

/// The plugin's private, ordered key-value namespace. Keys are bytes and
/// sort lexicographically; no other plugin can see them.
#[derive(Clone)]
pub struct Store {
    inner: Arc<HostBox>,
}

/// A key and its value, as returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The maximum number of pairs fetched per host round trip while scanning.
const SCAN_CHUNK: u32 = 512;

impl Store {
    /// Reads a key.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, PluginError> {
        let v = self
            .inner
            .kv_get(RSlice::from_slice(key.as_ref()))
            .into_result()?;
        Ok(v.into_option().map(RVec::into_vec))
    }

    /// Reads and decodes a JSON value.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<T>, PluginError> {
        let key = key.as_ref();
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                PluginError::storage(format!(
                    "stored value under {} is not valid: {e}",
                    String::from_utf8_lossy(key)
                ))
            }),
        }
    }

    /// Writes a key.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), PluginError> {
        self.inner
            .kv_put(
                RSlice::from_slice(key.as_ref()),
                RSlice::from_slice(value.as_ref()),
            )
            .into_result()
            .map_err(Into::into)
    }

    /// Encodes `value` as JSON and writes it.
    pub fn put_json<T: Serialize>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<(), PluginError> {
        self.put(key, serde_json::to_vec(value)?)
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, PluginError> {
        self.inner
            .kv_delete(RSlice::from_slice(key.as_ref()))
            .into_result()
            .map_err(Into::into)
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<Entry>, PluginError> {
        let prefix = prefix.as_ref();
        self.range(prefix, prefix_end(prefix).as_deref(), usize::MAX)
    }

    /// Up to `limit` pairs with `start <= key < end` (`end = None`: to the
    /// end of the namespace), in ascending key order.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, PluginError> {
        self.scan(start, end, limit, false)
    }

    /// Like [`Store::range`] but in descending key order.
    pub fn range_rev(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, PluginError> {
        self.scan(start, end, limit, true)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Entry>, PluginError> {
        let mut out = Vec::new();
        let mut lower = start.to_vec();
        let mut upper: Option<Vec<u8>> = end.map(<[u8]>::to_vec);
        while out.len() < limit {
            let want = (limit - out.len()).min(SCAN_CHUNK as usize) as u32;
            let chunk = self
                .inner
                .kv_scan(ScanRequest {
                    start: RVec::from_slice(&lower),
                    end: match &upper {
                        Some(u) => RSome(RVec::from_slice(u)),
                        None => RNone,
                    },
                    reverse,
                    limit: want,
                })
                .into_result()?;
            let got = chunk.len();
            for pair in chunk {
                out.push((pair.key.into_vec(), pair.value.into_vec()));
            }
            if got < want as usize {
                break;
            }
            let Some((last, _)) = out.last() else { break };
            if reverse {
                // Next chunk: keys strictly below the last one seen.
                upper = Some(last.clone());
            } else {
                // Next chunk: keys strictly above the last one seen.
                lower = last.clone();
                lower.push(0);
            }
        }
        Ok(out)
    }

    /// Starts an atomic, conditional multi-key batch.
    pub fn batch(&self) -> Batch {
        Batch {
            inner: self.inner.clone(),
            ops: Vec::new(),
        }
    }

    /// Atomically replaces `expected` (`None` = absent) with `new` (`None` =
    /// delete). Returns `Ok(Err(current))` when the key held something else.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>, PluginError> {
        let out = self
            .inner
            .kv_cas(
                RSlice::from_slice(key.as_ref()),
                expected.map(RVec::from_slice).into(),
                new.map(RVec::from_slice).into(),
            )
            .into_result()?;
        if out.swapped {
            Ok(Ok(()))
        } else {
            Ok(Err(out.current.into_option().map(RVec::into_vec)))
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The result of committing a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchResult {
    /// Every operation was applied atomically.
    Committed,
    /// The precondition at this index (in the order ops were added) did not
    /// hold; nothing was applied.
    PreconditionFailed(usize),
}

/// An atomic, conditional multi-key write. Either every op applies or none.
pub struct Batch {
    inner: Arc<HostBox>,
    ops: Vec<KvOp>,
}

impl Batch {
    /// Writes `value` under `key`.
    pub fn put(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(KvOp {
            kind: KvOpKind::PUT,
            key: RVec::from_slice(key.as_ref()),
            value: RSome(RVec::from_slice(value.as_ref())),
        });
        self
    }

    /// Writes `value` as JSON under `key`.
    pub fn put_json<T: Serialize>(
        self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<Self, PluginError> {
        let bytes = serde_json::to_vec(value)?;
        Ok(self.put(key, bytes))
    }

    /// Deletes `key`.
    pub fn delete(mut self, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(KvOp {
            kind: KvOpKind::DELETE,
            key: RVec::from_slice(key.as_ref()),
            value: RNone,
        });
        self
    }

    /// Requires `key` to hold exactly `value` at commit time.
    pub fn expect(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(KvOp {
            kind: KvOpKind::EXPECT,
            key: RVec::from_slice(key.as_ref()),
            value: RSome(RVec::from_slice(value.as_ref())),
        });
        self
    }

    /// Requires `key` to be absent at commit time (unique-index inserts).
    pub fn expect_absent(mut self, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(KvOp {
            kind: KvOpKind::EXPECT,
            key: RVec::from_slice(key.as_ref()),
            value: ROption::RNone,
        });
        self
    }

    /// Applies the batch atomically.
    pub fn commit(self) -> Result<BatchResult, PluginError> {
        let out = self.inner.kv_batch(RVec::from(self.ops)).into_result()?;
        Ok(match out {
            RSome(i) => BatchResult::PreconditionFailed(i as usize),
            RNone => BatchResult::Committed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestHost;
    use std::sync::atomic::AtomicU64;

    /// A host whose only service is `permission_registry` (the SDK's
    /// decisions are what is tested here; the real host is tested in
    /// `tests/`): a registry of one permission per generation, counting the
    /// round trips.
    fn registry_host(generation: Arc<AtomicU64>, asked: Arc<AtomicU64>) -> Host {
        TestHost::new()
            .with_service(move |name, request| {
                assert_eq!(name, "permission_registry");
                asked.fetch_add(1, Ordering::SeqCst);
                let request: PermissionRegistryRequest = serde_json::from_str(request).unwrap();
                let generation = generation.load(Ordering::SeqCst);
                let permissions = (request.known_generation != Some(generation)).then(|| {
                    vec![RegisteredPermission {
                        id: format!("p.g{generation}"),
                        name: "n".into(),
                        description: "d".into(),
                        plugin: "p".into(),
                    }]
                });
                Ok(serde_json::to_string(&PermissionRegistryAnswer {
                    generation,
                    permissions,
                })
                .unwrap())
            })
            .host()
    }

    #[test]
    fn the_registry_is_reused_only_while_it_is_as_new_as_the_call() {
        let generation = Arc::new(AtomicU64::new(1));
        let asked = Arc::new(AtomicU64::new(0));
        let host = registry_host(generation.clone(), asked.clone());
        let asked_now = || asked.load(Ordering::SeqCst);
        // Outside a call (or from an older host: no generation) it asks.
        assert!(host.permissions().unwrap().contains("p.g1"));
        assert!(host.permissions().unwrap().contains("p.g1"));
        assert_eq!(asked_now(), 2);
        {
            let _call = ServingCall::enter(host.id(), None);
            host.permissions().unwrap();
            assert_eq!(asked_now(), 3, "a call without a generation asks");
        }
        {
            // A call at the kept generation: no round trip.
            let _call = ServingCall::enter(host.id(), Some(1));
            assert!(host.permissions().unwrap().contains("p.g1"));
            assert_eq!(asked_now(), 3);
            // Another host's call in the same library does not count.
            let _other = ServingCall::enter(host.id() + 1_000, Some(1));
            host.permissions().unwrap();
            assert_eq!(asked_now(), 4);
        }
        generation.store(2, Ordering::SeqCst);
        {
            // A call dispatched after a (de)activation: fetched afresh.
            let _call = ServingCall::enter(host.id(), Some(2));
            let registry = host.permissions().unwrap();
            assert!(registry.contains("p.g2") && !registry.contains("p.g1"));
            assert_eq!(registry.generation(), 2);
            assert_eq!(asked_now(), 5);
            host.permissions().unwrap();
            assert_eq!(asked_now(), 5);
            {
                // A nested call of an older generation may use the newer copy.
                let _nested = ServingCall::enter(host.id(), Some(1));
                assert!(host.permissions().unwrap().contains("p.g2"));
                assert_eq!(asked_now(), 5);
            }
        }
        // The mark ends with the call.
        host.permissions().unwrap();
        assert_eq!(asked_now(), 6);
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"user/"), Some(b"user0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
