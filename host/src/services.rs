//! The host services object handed to each plugin, bound to that plugin.
//!
//! Invariants enforced here, whatever a plugin sends:
//! * the key-value methods reach only the plugin's own namespace;
//! * `call` reaches only plugins named in the caller's `requires`/`wants`;
//! * `publish` only accepts topics under the publisher's own id.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};

use abi_stable::std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RString, RVec};
use syshost_plugin_api::abi::{
    AbiError, CallMode, CasOutcome, HostObj, KvOp, KvOpKind, KvPair, ScanRequest,
};
use syshost_plugin_api::{
    codes, CallContext, Event, Mail, PermissionRegistryRequest, PluginError, RegisteredPermission,
    Subject,
};

use crate::runtime::HostInner;
use crate::store::{BatchOp, Namespace, StoreError};

/// Largest key a plugin may store.
pub const MAX_KEY_BYTES: usize = 4 * 1024;
/// Largest value a plugin may store.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Most operations in one atomic batch.
pub const MAX_BATCH_OPS: usize = 100_000;
/// Most pairs returned by one scan call (the SDK pages through larger scans).
pub const MAX_SCAN_PAIRS: u32 = 10_000;
/// Most key and value bytes one scan call may return; a scan that would
/// return more fails (ask for fewer pairs per call).
pub const MAX_SCAN_BYTES: usize = 64 * 1024 * 1024;
/// Most key and value bytes in one atomic batch.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Largest event payload a plugin may publish.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Largest mail (as JSON) a plugin may queue.
pub const MAX_MAIL_BYTES: usize = 4 * 1024 * 1024;
/// Longest plugin log message; longer ones are cut.
pub const MAX_LOG_BYTES: usize = 16 * 1024;

/// Host services for one plugin.
pub(crate) struct PluginServices {
    pub(crate) plugin_id: String,
    pub(crate) namespace: Arc<dyn Namespace>,
    pub(crate) allowed_targets: BTreeSet<String>,
    pub(crate) host: Weak<HostInner>,
}

fn err(e: PluginError) -> AbiError {
    e.into()
}

fn store_err(e: StoreError) -> AbiError {
    match e {
        StoreError::WouldBlock(message) => PluginError::new(codes::WOULD_BLOCK, message).into(),
        other => PluginError::storage(other.to_string()).into(),
    }
}

fn check_key(key: &[u8]) -> Result<(), AbiError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(err(PluginError::invalid(format!(
            "store key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        ))));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), AbiError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(err(PluginError::invalid(format!(
            "store value is {} bytes; the limit is {MAX_VALUE_BYTES}",
            value.len()
        ))));
    }
    Ok(())
}

impl PluginServices {
    fn host(&self) -> Result<Arc<HostInner>, AbiError> {
        self.host.upgrade().ok_or_else(|| {
            err(PluginError::new(
                codes::UNAVAILABLE,
                "the host is shutting down",
            ))
        })
    }
}

impl HostObj for PluginServices {
    fn kv_get(&self, key: RSlice<'_, u8>) -> RResult<ROption<RVec<u8>>, AbiError> {
        check_key(key.as_slice())
            .and_then(|_| self.namespace.get(key.as_slice()).map_err(store_err))
            .map(|v| v.map(RVec::from).into())
            .into()
    }

    fn kv_put(&self, key: RSlice<'_, u8>, value: RSlice<'_, u8>) -> RResult<(), AbiError> {
        check_key(key.as_slice())
            .and_then(|_| check_value(value.as_slice()))
            .and_then(|_| {
                self.namespace
                    .put(key.as_slice(), value.as_slice())
                    .map_err(store_err)
            })
            .into()
    }

    fn kv_delete(&self, key: RSlice<'_, u8>) -> RResult<bool, AbiError> {
        check_key(key.as_slice())
            .and_then(|_| self.namespace.delete(key.as_slice()).map_err(store_err))
            .into()
    }

    fn kv_scan(&self, request: ScanRequest) -> RResult<RVec<KvPair>, AbiError> {
        let limit = request.limit.min(MAX_SCAN_PAIRS) as usize;
        let end = request.end.as_ref().map(|e| e.as_slice()).into_option();
        self.namespace
            .scan_bounded(
                request.start.as_slice(),
                end,
                request.reverse,
                limit,
                MAX_SCAN_BYTES,
            )
            .map_err(store_err)
            .and_then(|pairs| {
                pairs.ok_or_else(|| {
                    err(PluginError::invalid(format!(
                        "scan of {limit} pairs would return more than {MAX_SCAN_BYTES} bytes; scan fewer pairs per call"
                    )))
                })
            })
            .map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| KvPair {
                        key: RVec::from(k),
                        value: RVec::from(v),
                    })
                    .collect()
            })
            .into()
    }

    fn kv_batch(&self, ops: RVec<KvOp>) -> RResult<ROption<u32>, AbiError> {
        let run = || -> Result<ROption<u32>, AbiError> {
            if ops.len() > MAX_BATCH_OPS {
                return Err(err(PluginError::invalid(format!(
                    "batch has {} operations; the limit is {MAX_BATCH_OPS}",
                    ops.len()
                ))));
            }
            let total: usize = ops
                .iter()
                .map(|op| op.key.len() + op.value.as_ref().map_or(0, |v| v.len()))
                .fold(0usize, usize::saturating_add);
            if total > MAX_BATCH_BYTES {
                return Err(err(PluginError::invalid(format!(
                    "batch carries {total} bytes; the limit is {MAX_BATCH_BYTES}"
                ))));
            }
            let mut batch = Vec::with_capacity(ops.len());
            for op in ops.iter() {
                check_key(op.key.as_slice())?;
                let key = op.key.to_vec();
                let value = op.value.as_ref().map(|v| v.to_vec()).into_option();
                batch.push(match op.kind {
                    KvOpKind::PUT => {
                        let Some(value) = value else {
                            return Err(err(PluginError::invalid("batch put without a value")));
                        };
                        check_value(&value)?;
                        BatchOp::Put(key, value)
                    }
                    KvOpKind::DELETE => BatchOp::Delete(key),
                    KvOpKind::EXPECT => BatchOp::Expect(key, value),
                    KvOpKind(other) => {
                        return Err(err(PluginError::invalid(format!(
                            "unknown batch operation kind {other}; rebuild the plugin against this host's plugin-api"
                        ))))
                    }
                });
            }
            match self.namespace.batch(&batch).map_err(store_err)? {
                None => Ok(RNone),
                Some(i) => Ok(RSome(u32::try_from(i).unwrap_or(u32::MAX))),
            }
        };
        run().into()
    }

    fn kv_cas(
        &self,
        key: RSlice<'_, u8>,
        expected: ROption<RVec<u8>>,
        new: ROption<RVec<u8>>,
    ) -> RResult<CasOutcome, AbiError> {
        let run = || -> Result<CasOutcome, AbiError> {
            check_key(key.as_slice())?;
            if let RSome(v) = &new {
                check_value(v.as_slice())?;
            }
            let expected = expected.as_ref().map(|v| v.as_slice()).into_option();
            let new = new.as_ref().map(|v| v.as_slice()).into_option();
            match self
                .namespace
                .compare_and_swap(key.as_slice(), expected, new)
                .map_err(store_err)?
            {
                Ok(()) => Ok(CasOutcome {
                    swapped: true,
                    current: RNone,
                }),
                Err(current) => Ok(CasOutcome {
                    swapped: false,
                    current: current.map(RVec::from).into(),
                }),
            }
        };
        run().into()
    }

    fn call(
        &self,
        target: RStr<'_>,
        operation: RStr<'_>,
        payload: RStr<'_>,
        mode: CallMode,
    ) -> RResult<RString, AbiError> {
        let run = || -> Result<RString, AbiError> {
            let target = target.as_str();
            if !self.allowed_targets.contains(target) {
                return Err(err(PluginError::new(
                    codes::CALL_REFUSED,
                    format!(
                        "plugin '{}' may not call '{target}': it is not declared in its requires or wants",
                        self.plugin_id
                    ),
                )));
            }
            let host = self.host()?;
            let current = crate::runtime::current_frame();
            let mut ctx = match (mode, current) {
                (CallMode::ON_BEHALF_OF_CALLER, Some((plugin, ctx))) if plugin == self.plugin_id => ctx,
                (CallMode::ON_BEHALF_OF_CALLER, _) => {
                    return Err(err(PluginError::invalid(format!(
                        "plugin '{}' called '{target}' on behalf of a caller outside of a call it is serving",
                        self.plugin_id
                    ))))
                }
                (_, current) => CallContext {
                    subject: Subject::Plugin {
                        id: self.plugin_id.clone(),
                    },
                    request_id: current.and_then(|(_, c)| c.request_id),
                    ..Default::default()
                },
            };
            ctx.via = Some(self.plugin_id.clone());
            host.dispatch(target, operation.as_str(), payload.as_str(), &ctx)
                .map(RString::from)
                .map_err(AbiError::from)
        };
        run().into()
    }

    fn publish(&self, topic: RStr<'_>, payload: RStr<'_>) -> RResult<(), AbiError> {
        let run = || -> Result<(), AbiError> {
            // Delivering the event runs subscribers, which write.
            crate::inline::check("publishing an event").map_err(err)?;
            let topic = topic.as_str();
            let name = topic
                .strip_prefix(self.plugin_id.as_str())
                .and_then(|rest| rest.strip_prefix('.'));
            if name.is_none_or(str::is_empty) {
                return Err(err(PluginError::invalid(format!(
                    "plugin '{}' may only publish topics '{}.<name>', not '{topic}'",
                    self.plugin_id, self.plugin_id
                ))));
            }
            if payload.len() > MAX_EVENT_BYTES {
                return Err(err(PluginError::invalid(format!(
                    "event payload is {} bytes; the limit is {MAX_EVENT_BYTES}",
                    payload.len()
                ))));
            }
            let payload: serde_json::Value =
                serde_json::from_str(payload.as_str()).map_err(|e| {
                    err(PluginError::invalid(format!(
                        "event payload is not JSON: {e}"
                    )))
                })?;
            let host = self.host()?;
            let (actor, client_addr) = crate::runtime::current_cause();
            let event = Event {
                topic: topic.to_string(),
                source: self.plugin_id.clone(),
                payload,
                at_unix_ms: host.now_unix_ms(),
                actor: Some(actor),
                client_addr,
            };
            host.publish(event);
            Ok(())
        };
        run().into()
    }

    fn send_mail(&self, mail: RStr<'_>) -> RResult<(), AbiError> {
        let run = || -> Result<(), AbiError> {
            // Queueing a mail is a durable store write.
            crate::inline::check("sending mail").map_err(err)?;
            if mail.len() > MAX_MAIL_BYTES {
                return Err(err(PluginError::invalid(format!(
                    "mail is {} bytes; the limit is {MAX_MAIL_BYTES}",
                    mail.len()
                ))));
            }
            let mail: Mail = serde_json::from_str(mail.as_str())
                .map_err(|e| err(PluginError::invalid(format!("mail is not valid: {e}"))))?;
            let host = self.host()?;
            host.mailer
                .send(&self.plugin_id, &mail)
                .map_err(AbiError::from)
        };
        run().into()
    }

    fn now_unix_ms(&self) -> i64 {
        match self.host.upgrade() {
            Some(host) => host.now_unix_ms(),
            None => crate::runtime::system_now_ms(),
        }
    }

    fn log(&self, level: u8, message: RStr<'_>) {
        let plugin = self.plugin_id.as_str();
        let mut message = message.as_str();
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message = &message[..cut];
        }
        match level {
            0 | 1 => tracing::error!(target: "syshost::plugin", plugin, "{message}"),
            2 => tracing::warn!(target: "syshost::plugin", plugin, "{message}"),
            3 => tracing::info!(target: "syshost::plugin", plugin, "{message}"),
            4 => tracing::debug!(target: "syshost::plugin", plugin, "{message}"),
            _ => tracing::trace!(target: "syshost::plugin", plugin, "{message}"),
        }
    }

    fn service(&self, name: RStr<'_>, request: RStr<'_>) -> RResult<RString, AbiError> {
        let run = || -> Result<RString, AbiError> {
            let host = self.host()?;
            match name.as_str() {
                "permissions" => {
                    let json = serde_json::to_string(&host.permission_snapshot().list)
                        .map_err(|e| err(PluginError::from(e)))?;
                    Ok(RString::from(json))
                }
                "permission_registry" => {
                    let request: PermissionRegistryRequest = serde_json::from_str(request.as_str())
                        .map_err(|e| {
                            err(PluginError::invalid(format!(
                                "permission_registry request is not valid: {e}"
                            )))
                        })?;
                    let snapshot = host.permission_snapshot();
                    // Serialized from borrowed parts: no copy of the list.
                    #[derive(serde::Serialize)]
                    struct Answer<'a> {
                        generation: u64,
                        #[serde(skip_serializing_if = "Option::is_none")]
                        permissions: Option<&'a [RegisteredPermission]>,
                    }
                    let current = request.known_generation == Some(snapshot.generation);
                    serde_json::to_string(&Answer {
                        generation: snapshot.generation,
                        permissions: (!current).then_some(snapshot.list.as_slice()),
                    })
                    .map(RString::from)
                    .map_err(|e| err(PluginError::from(e)))
                }
                "site" => serde_json::to_string(&host.site)
                    .map(RString::from)
                    .map_err(|e| err(PluginError::from(e))),
                "bootstrap_admin" => {
                    let answer = match &host.bootstrap_admin {
                        Some(admin) => serde_json::json!({
                            "enabled": true,
                            "email": admin.email,
                            "password": admin.password,
                        }),
                        None => serde_json::json!({ "enabled": false }),
                    };
                    Ok(RString::from(answer.to_string()))
                }
                other => Err(err(PluginError::not_found(format!(
                    "this host offers no service named '{other}' (known: permissions, permission_registry, site, bootstrap_admin)"
                )))),
            }
        };
        run().into()
    }
}
