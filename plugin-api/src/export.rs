//! The glue [`export_plugin!`](crate::export_plugin) generates: the root
//! module, and an adapter that turns a [`Plugin`] into the FFI plugin object.
//!
//! Every entry point runs inside `catch_unwind`. `abi_stable` aborts the whole
//! process when a panic crosses the FFI boundary, so catching here is what
//! keeps one faulty plugin from taking the host down: a panic becomes an
//! `AbiError` with code `plugin_panicked`.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString},
};

use crate::abi::{AbiError, HostBox, PluginBox, PluginMod, PluginModRef, PluginObj, PluginObj_TO};
use crate::host::ServingCall;
use crate::{codes, CallContext, Event, Host, Operations, Plugin, PluginError};

/// Runs `f`, converting both errors and panics into an [`AbiError`].
/// `what` names the entry point; it is only formatted when `f` panics.
fn guard<T>(
    what: impl std::fmt::Display,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> RResult<T, AbiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(panic) => RResult::RErr(
            PluginError::new(
                codes::PLUGIN_PANICKED,
                format!("plugin panicked in {what}: {}", panic_message(&*panic)),
            )
            .into(),
        ),
    }
}

/// The contexts this thread decoded last (most recent first), with their
/// JSON. Two: a request's calls alternate between the host's own context
/// (token resolution) and the caller's.
const CONTEXT_SLOTS: usize = 2;

thread_local! {
    /// The last call contexts this thread decoded, with their JSON: calls
    /// made by the host and by other plugins repeat the same context, and
    /// the requests of one session repeat it except for the request id, so
    /// most calls skip decoding it.
    static LAST_CONTEXTS: RefCell<Vec<(String, Rc<CallContext>)>> = const { RefCell::new(Vec::new()) };
}

/// The member every request changes: `CallContext::request_id`, which
/// every encoder of a context (the derived one and the host's) writes last.
const REQUEST_ID_MEMBER: &str = ",\"request_id\":";

/// Where the value of the `request_id` member is in `json` (byte range),
/// when it is the object's last member and a string or `null`. Found from
/// the end, without scanning the context: the final `}` of an object
/// closes the top-level one, so the member just before it is top level.
/// Only ever trusted together with a byte-for-byte match of everything
/// else against a context decoded before (see [`decode_context`]).
fn request_id_span(json: &str) -> Option<(usize, usize)> {
    let body = json.strip_suffix('}')?;
    let end = body.len();
    let start = if body.ends_with("null") {
        end - 4
    } else if body.ends_with('"') && end >= 2 {
        // The opening quote: the previous quote that is not escaped (not
        // preceded by an odd number of backslashes).
        let bytes = body.as_bytes();
        let mut before = end - 1;
        loop {
            let quote = bytes[..before].iter().rposition(|&b| b == b'"')?;
            let backslashes = bytes[..quote]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            if backslashes % 2 == 0 {
                break quote;
            }
            before = quote;
        }
    } else {
        return None;
    };
    body[..start]
        .ends_with(REQUEST_ID_MEMBER)
        .then_some((start, end))
}

/// The decoded call context for `json`, reusing one of this thread's last
/// contexts when the JSON is byte-for-byte the same, or the same except
/// for the request id (then only the id is decoded, and the context is
/// updated in place when nothing else holds it).
fn decode_context(json: &str) -> Result<Rc<CallContext>, PluginError> {
    let reused = LAST_CONTEXTS.with(|slots| {
        // Not while a handler holds a borrow: handlers never touch it.
        let mut slots = slots.try_borrow_mut().ok()?;
        if let Some(i) = slots.iter().position(|(seen, _)| seen == json) {
            let hit = slots.remove(i);
            let ctx = hit.1.clone();
            slots.insert(0, hit);
            return Some(ctx);
        }
        let (start, end) = request_id_span(json)?;
        for i in 0..slots.len() {
            let (seen, ctx) = &mut slots[i];
            let Some((seen_start, seen_end)) = request_id_span(seen) else {
                continue;
            };
            if seen[..seen_start] != json[..start] || seen[seen_end..] != json[end..] {
                continue;
            }
            // Only the request id differs; nothing else may hold the
            // context while it changes (a nested call's caller does).
            let Some(owned) = Rc::get_mut(ctx) else {
                continue;
            };
            let Ok(request_id) = serde_json::from_str::<Option<String>>(&json[start..end]) else {
                return None;
            };
            owned.request_id = request_id;
            seen.clear();
            seen.push_str(json);
            let hit = slots.remove(i);
            let ctx = hit.1.clone();
            slots.insert(0, hit);
            return Some(ctx);
        }
        None
    });
    if let Some(ctx) = reused {
        return Ok(ctx);
    }
    let ctx: Rc<CallContext> = Rc::new(serde_json::from_str(json).map_err(|e| {
        PluginError::internal(format!("host sent an unreadable call context: {e}"))
    })?);
    LAST_CONTEXTS.with(|slots| {
        if let Ok(mut slots) = slots.try_borrow_mut() {
            slots.truncate(CONTEXT_SLOTS - 1);
            slots.insert(0, (json.to_string(), ctx.clone()));
        }
    });
    Ok(ctx)
}

/// Names an operation in a panic message without formatting it up front.
struct OperationName<'a>(&'a str);

impl std::fmt::Display for OperationName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "operation '{}'", self.0)
    }
}

/// Extracts the message of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The manifest of `P` as JSON, with its operations and api version filled in.
pub fn manifest_json<P: Plugin>() -> RResult<RString, AbiError> {
    guard("manifest", || {
        let mut manifest = P::manifest();
        manifest.operations = P::operations().declarations().to_vec();
        manifest.api_version = crate::abi::API_VERSION.to_string();
        Ok(RString::from(serde_json::to_string(&manifest)?))
    })
}

/// Activates `P` with the given host services and boxes it for the host.
pub fn instantiate<P: Plugin>(host: HostBox) -> RResult<PluginBox, AbiError> {
    guard("activate", || {
        let operations = P::operations();
        let host = Host::from_abi(host);
        let host_id = host.id();
        let plugin = {
            let _serving = ServingCall::enter(host_id, None);
            P::activate(host)?
        };
        Ok(PluginObj_TO::from_value(
            Adapter {
                plugin,
                operations,
                host_id,
            },
            TD_Opaque,
        ))
    })
}

/// Builds the root module from the two entry points.
pub fn root_module(
    manifest: extern "C" fn() -> RResult<RString, AbiError>,
    instantiate: extern "C" fn(HostBox) -> RResult<PluginBox, AbiError>,
) -> PluginModRef {
    PluginMod {
        manifest,
        instantiate,
    }
    .leak_into_prefix()
}

/// Wraps a [`Plugin`] as the FFI plugin object.
struct Adapter<P: Plugin> {
    plugin: P,
    operations: Operations<P>,
    /// The id of the plugin's [`Host`], to mark the calls it serves.
    host_id: u64,
}

impl<P: Plugin> PluginObj for Adapter<P> {
    fn call(
        &self,
        operation: RStr<'_>,
        payload: RStr<'_>,
        context: RStr<'_>,
    ) -> RResult<RString, AbiError> {
        let op = operation.as_str();
        guard(OperationName(op), || {
            let ctx = decode_context(context.as_str())?;
            // The registry generation the host sent: `Host::permissions`
            // needs no round trip while its copy is at least this new.
            let _serving = ServingCall::enter(self.host_id, ctx.permission_generation);
            self.operations
                .dispatch(&self.plugin, op, payload.as_str(), &ctx)
                .map(RString::from)
        })
    }

    fn on_event(&self, event: RStr<'_>) -> RResult<(), AbiError> {
        guard("on_event", || {
            let _serving = ServingCall::enter(self.host_id, None);
            let event: Event = serde_json::from_str(event.as_str()).map_err(|e| {
                PluginError::internal(format!("host sent an unreadable event: {e}"))
            })?;
            self.plugin.on_event(&event)
        })
    }

    fn shutdown(&self) -> RResult<(), AbiError> {
        guard("shutdown", || {
            let _serving = ServingCall::enter(self.host_id, None);
            self.plugin.shutdown()
        })
    }
}

/// Exports a [`Plugin`] type as a syshost plugin library.
///
/// Put this once in the crate root of a `cdylib` crate:
///
/// ```ignore
/// syshost_plugin_api::export_plugin!(MyPlugin);
/// ```
///
/// It generates the `abi_stable` root module (`manifest` + `instantiate`)
/// and wraps every entry point in `catch_unwind`, so a panic in plugin code
/// becomes a `plugin_panicked` error instead of aborting the host.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[$crate::__private::abi_stable::export_root_module]
        pub fn syshost_plugin_root_module() -> $crate::abi::PluginModRef {
            extern "C" fn manifest(
            ) -> $crate::__private::RResult<$crate::__private::RString, $crate::abi::AbiError> {
                $crate::__private::manifest_json::<$plugin>()
            }
            extern "C" fn instantiate(
                host: $crate::abi::HostBox,
            ) -> $crate::__private::RResult<$crate::abi::PluginBox, $crate::abi::AbiError> {
                $crate::__private::instantiate::<$plugin>(host)
            }
            $crate::__private::root_module(manifest, instantiate)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Subject, UserSubject};

    #[test]
    fn contexts_arrive_intact_and_a_repeated_one_is_reused() {
        let user = CallContext {
            subject: Subject::User(UserSubject {
                id: "u1".into(),
                permissions: ["a.b".to_string()].into(),
                session_id: Some("s1".into()),
                ..Default::default()
            }),
            request_id: Some("r1".into()),
            client_addr: Some("10.0.0.1".into()),
            restricted_to: Some(["user.change_password".to_string()].into()),
            permission_generation: Some(3),
            ..Default::default()
        };
        let user_json = serde_json::to_string(&user).unwrap();
        let first = decode_context(&user_json).unwrap();
        assert_eq!(*first, user);
        let again = decode_context(&user_json).unwrap();
        assert!(
            Rc::ptr_eq(&first, &again),
            "same JSON reuses the decoded context"
        );

        // A different context (one field differs) is decoded afresh.
        let other = CallContext {
            request_id: Some("r2".into()),
            ..user.clone()
        };
        let decoded = decode_context(&serde_json::to_string(&other).unwrap()).unwrap();
        assert_eq!(*decoded, other);
        let system = decode_context(&serde_json::to_string(&CallContext::system()).unwrap());
        assert_eq!(*system.unwrap(), CallContext::system());
        assert_eq!(*decode_context(&user_json).unwrap(), user);

        // A host that predates `permission_generation` sends none: unknown.
        let old = decode_context(r#"{"subject":{"kind":"system"},"via":null}"#).unwrap();
        assert_eq!(*old, CallContext::system());
        assert_eq!(old.permission_generation, None);

        let err = decode_context("{not json").unwrap_err();
        assert_eq!(err.code, codes::INTERNAL);
    }

    #[test]
    fn contexts_differing_only_in_the_request_id_are_updated_not_decoded() {
        let user = CallContext {
            subject: Subject::User(UserSubject {
                id: "u9".into(),
                name: "say \",\"request_id\":\"x\"".into(),
                permissions: ["a.b".to_string(), "c.d".to_string()].into(),
                session_id: Some("s9".into()),
                ..Default::default()
            }),
            request_id: Some("req-1".into()),
            client_addr: Some("10.0.0.9".into()),
            ..Default::default()
        };
        let first_json = serde_json::to_string(&user).unwrap();
        let first = decode_context(&first_json).unwrap();
        assert_eq!(*first, user);
        let first_ptr = Rc::as_ptr(&first);
        drop(first);
        // The host's own context in between (the other slot).
        let system = decode_context(&serde_json::to_string(&CallContext::system()).unwrap());
        assert_eq!(*system.unwrap(), CallContext::system());

        // Same session, next request: the context is updated in place.
        for id in [Some("req-2"), None, Some("r\"3")] {
            let next = CallContext {
                request_id: id.map(str::to_string),
                ..user.clone()
            };
            let json = serde_json::to_string(&next).unwrap();
            let got = decode_context(&json).unwrap();
            assert_eq!(*got, next);
            assert_eq!(Rc::as_ptr(&got), first_ptr, "updated in place");
        }

        // Held by a caller (a nested call): decoded afresh, the held one
        // is left alone.
        let held = decode_context(&first_json).unwrap();
        let other = CallContext {
            request_id: Some("req-4".into()),
            ..user.clone()
        };
        let got = decode_context(&serde_json::to_string(&other).unwrap()).unwrap();
        assert_eq!(*got, other);
        assert_eq!(*held, user);
        drop((held, got));

        // Anything else that differs is decoded afresh.
        let moved = CallContext {
            client_addr: Some("10.0.0.10".into()),
            request_id: Some("req-5".into()),
            ..user.clone()
        };
        let got = decode_context(&serde_json::to_string(&moved).unwrap()).unwrap();
        assert_eq!(*got, moved);
    }

    #[test]
    fn the_request_id_member_is_found_at_the_end_only() {
        fn span(json: &str) -> Option<&str> {
            request_id_span(json).map(|(a, b)| &json[a..b])
        }
        assert_eq!(span(r#"{"a":1,"request_id":"x\"y"}"#), Some(r#""x\"y""#));
        assert_eq!(span(r#"{"a":1,"request_id":"x\\"}"#), Some(r#""x\\""#));
        assert_eq!(span(r#"{"a":"q\"","request_id":""}"#), Some(r#""""#));
        assert_eq!(span(r#"{"a":1,"request_id":null}"#), Some("null"));
        assert_eq!(span(r#"{"a":1}"#), None);
        // Not the last member, nested, or not a string.
        assert_eq!(span(r#"{"request_id":"x","b":2}"#), None);
        assert_eq!(span(r#"{"a":{"request_id":"x"}}"#), None);
        assert_eq!(span(r#"{"a":1,"b":"c","request_id":5}"#), None);
        assert_eq!(span(r#"{"a":"x","b":"y"}"#), None);
        assert_eq!(span(r#"{"a":1,"request_id":"unterminated"#), None);
        assert_eq!(span(r#""}"#), None);
        // The encoders put it last.
        let ctx = CallContext {
            request_id: Some("r-1".into()),
            restricted_to: Some(["a.b".to_string()].into()),
            permission_generation: Some(3),
            ..CallContext::system()
        };
        assert_eq!(
            span(&serde_json::to_string(&ctx).unwrap()),
            Some(r#""r-1""#)
        );
    }
}
