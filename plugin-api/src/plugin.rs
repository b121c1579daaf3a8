//! The trait plugin authors implement, and the typed operation table.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Access, CallContext, Event, Host, Manifest, OperationDecl, PluginError};

/// A system plugin, written as ordinary synchronous Rust.
///
/// Export it with [`export_plugin!`](crate::export_plugin). The host calls
/// [`Plugin::activate`] once (after every hard dependency is active), then
/// serves operations concurrently from several threads, delivers events to
/// [`Plugin::on_event`], and finally calls [`Plugin::shutdown`].
///
/// Plugins must not start async runtimes or depend on tokio: the host owns
/// the only runtime and runs every plugin call on a blocking thread (an
/// operation declared [`inline`](Operations::inline) possibly on an async
/// worker first, where everything that could block is refused).
pub trait Plugin: Sized + Send + Sync + 'static {
    /// Identity, dependencies, permissions and subscriptions. Operations are
    /// added automatically from [`Plugin::operations`].
    fn manifest() -> Manifest;

    /// The operations this plugin serves, with their access rules.
    fn operations() -> Operations<Self>;

    /// Creates the running instance. Seed defaults here; return an error to
    /// mark the plugin `failed` (its hard dependents become `blocked`).
    fn activate(host: Host) -> Result<Self, PluginError>;

    /// Receives events matching the manifest's subscriptions.
    fn on_event(&self, _event: &Event) -> Result<(), PluginError> {
        Ok(())
    }

    /// Called once on host shutdown, in reverse activation order.
    fn shutdown(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A request type for operations that take no input. Accepts `{}`, `null`
/// or an empty body; rejects unknown fields.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

type Handler<P> =
    Box<dyn Fn(&P, &str, &CallContext) -> Result<String, PluginError> + Send + Sync + 'static>;

/// The operation table of a plugin: name → access rule, doc and typed handler.
pub struct Operations<P> {
    decls: Vec<OperationDecl>,
    handlers: BTreeMap<String, Handler<P>>,
}

impl<P: Plugin> Default for Operations<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> Operations<P> {
    /// An empty table.
    pub fn new() -> Self {
        Operations {
            decls: Vec::new(),
            handlers: BTreeMap::new(),
        }
    }

    /// Adds a state-changing operation. The handler receives the decoded
    /// request and the caller context and returns a serializable response.
    ///
    /// The JSON Schemas of `Req` and `Resp` (derive [`schemars::JsonSchema`]
    /// on them and on every type they contain) are recorded in the
    /// operation's [`OperationDecl`] for the host's OpenAPI document.
    pub fn op<Req, Resp, F>(self, name: &str, access: Access, doc: &str, handler: F) -> Self
    where
        Req: DeserializeOwned + JsonSchema + 'static,
        Resp: Serialize + JsonSchema + 'static,
        F: Fn(&P, Req, &CallContext) -> Result<Resp, PluginError> + Send + Sync + 'static,
    {
        self.add(name, access, doc, true, handler)
    }

    /// Adds a read-only operation (no state change; safe to retry). Its
    /// request and response schemas are recorded as for [`Operations::op`].
    pub fn query<Req, Resp, F>(self, name: &str, access: Access, doc: &str, handler: F) -> Self
    where
        Req: DeserializeOwned + JsonSchema + 'static,
        Resp: Serialize + JsonSchema + 'static,
        F: Fn(&P, Req, &CallContext) -> Result<Resp, PluginError> + Send + Sync + 'static,
    {
        self.add(name, access, doc, false, handler)
    }

    fn add<Req, Resp, F>(
        mut self,
        name: &str,
        access: Access,
        doc: &str,
        mutates: bool,
        handler: F,
    ) -> Self
    where
        Req: DeserializeOwned + JsonSchema + 'static,
        Resp: Serialize + JsonSchema + 'static,
        F: Fn(&P, Req, &CallContext) -> Result<Resp, PluginError> + Send + Sync + 'static,
    {
        let op_name = name.to_string();
        let wrapped = move |plugin: &P, payload: &str, ctx: &CallContext| {
            let request: Req = decode_request(&op_name, payload)?;
            let response = handler(plugin, request, ctx)?;
            serde_json::to_string(&response).map_err(PluginError::from)
        };
        self.decls.push(OperationDecl {
            name: name.to_string(),
            access,
            doc: doc.to_string(),
            mutates,
            throttle: None,
            inline: false,
            request_schema: schema_of::<Req>(),
            response_schema: schema_of::<Resp>(),
        });
        self.handlers.insert(name.to_string(), Box::new(wrapped));
        self
    }

    /// Adds a page operation: a read-only operation that takes a
    /// [`PageRequest`](crate::view::PageRequest) and returns a
    /// [`View`](crate::view::View). Declare the page itself in the manifest
    /// with [`Manifest::page`](crate::Manifest::page), naming this operation.
    /// `access` decides who may see the page, exactly as for API calls.
    pub fn page<F>(self, name: &str, access: Access, doc: &str, handler: F) -> Self
    where
        F: Fn(&P, crate::view::PageRequest, &CallContext) -> Result<crate::view::View, PluginError>
            + Send
            + Sync
            + 'static,
    {
        self.add(name, access, doc, false, handler)
    }

    /// Puts the operation added last into the host's per-client-address
    /// rate-limit class `class` (use `"auth"` for login, registration,
    /// password resets and code entry).
    pub fn throttled(mut self, class: &str) -> Self {
        if let Some(last) = self.decls.last_mut() {
            last.throttle = Some(class.to_string());
        }
        self
    }

    /// Declares the operation added last [`inline`](OperationDecl::inline):
    /// it answers from memory, so the host may run it on an async worker.
    /// While it runs inline the host refuses store access, events, mail and
    /// calls to operations that are not inline with `would_block`; pass
    /// that error on and the host repeats the call on a blocking thread.
    pub fn inline(mut self) -> Self {
        if let Some(last) = self.decls.last_mut() {
            last.inline = true;
        }
        self
    }

    /// The declarations, in the order added.
    pub fn declarations(&self) -> &[OperationDecl] {
        &self.decls
    }

    /// Runs operation `name`.
    pub fn dispatch(
        &self,
        plugin: &P,
        name: &str,
        payload: &str,
        ctx: &CallContext,
    ) -> Result<String, PluginError> {
        match self.handlers.get(name) {
            Some(handler) => handler(plugin, payload, ctx),
            None => Err(PluginError::new(
                crate::codes::UNKNOWN_OPERATION,
                format!("unknown operation '{name}'"),
            )),
        }
    }
}

/// The JSON Schema (draft 2020-12, as generated by schemars) of `T`, or `None`
/// if it cannot be represented as JSON.
fn schema_of<T: JsonSchema>() -> Option<serde_json::Value> {
    serde_json::to_value(schemars::schema_for!(T)).ok()
}

/// Decodes a JSON request, treating an empty body as `{}` and naming the
/// operation and the offending field in the error.
fn decode_request<Req: DeserializeOwned>(op: &str, payload: &str) -> Result<Req, PluginError> {
    let trimmed = payload.trim();
    let body = if trimmed.is_empty() || trimmed == "null" {
        "{}"
    } else {
        trimmed
    };
    // Fast path: plain serde_json. Only a request that fails to decode is
    // decoded again with path tracking, to name the offending field.
    if let Ok(request) = serde_json::from_str::<Req>(body) {
        return Ok(request);
    }
    let mut de = serde_json::Deserializer::from_str(body);
    let request: Req = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            PluginError::invalid(format!("invalid request for '{op}': {inner}"))
        } else {
            PluginError::invalid_field(
                &path,
                format!("invalid request for '{op}': {path}: {inner}"),
            )
        }
    })?;
    de.end()
        .map_err(|e| PluginError::invalid(format!("invalid request for '{op}': {e}")))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[allow(dead_code)]
        email: String,
    }

    #[test]
    fn decode_names_missing_field() {
        let err = decode_request::<Req>("create", "{}").unwrap_err();
        assert_eq!(err.code, crate::codes::INVALID_INPUT);
        assert!(
            err.message.contains("create") && err.message.contains("email"),
            "{err}"
        );
    }

    #[test]
    fn decode_names_the_field_with_the_wrong_type() {
        let err = decode_request::<Req>("create", r#"{"email": 5}"#).unwrap_err();
        assert!(
            err.message.contains("email") && err.message.contains("create"),
            "{err}"
        );
        assert_eq!(err.details, Some(serde_json::json!({ "field": "email" })));
        assert!(decode_request::<Req>("create", r#"{"email": "a"} x"#).is_err());
    }

    #[test]
    fn decode_no_input_accepts_empty_bodies() {
        for body in ["", "  ", "null", "{}"] {
            decode_request::<NoInput>("ping", body).unwrap();
        }
        assert!(decode_request::<NoInput>("ping", r#"{"x":1}"#).is_err());
        assert!(decode_request::<NoInput>("ping", "[").is_err());
    }

    /// A minimal plugin to build an operation table for.
    struct Probe;

    impl Plugin for Probe {
        fn manifest() -> Manifest {
            Manifest::new("probe", "0.1.0")
        }
        fn operations() -> Operations<Self> {
            Operations::new()
        }
        fn activate(_host: Host) -> Result<Self, PluginError> {
            Ok(Probe)
        }
    }

    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct CreateReq {
        #[allow(dead_code)]
        email: String,
        #[allow(dead_code)]
        #[serde(default)]
        nickname: Option<String>,
    }

    #[derive(Serialize, schemars::JsonSchema)]
    struct CreateResp {
        id: String,
        active: bool,
    }

    #[test]
    fn declarations_carry_request_and_response_schemas() {
        let ops = Operations::<Probe>::new()
            .op(
                "create",
                Access::System,
                "Creates",
                |_: &Probe, r: CreateReq, _: &CallContext| {
                    Ok(CreateResp {
                        id: r.email,
                        active: true,
                    })
                },
            )
            .query(
                "ping",
                Access::Public,
                "Pings",
                |_: &Probe, _: NoInput, _: &CallContext| Ok(NoInput {}),
            );
        let decls = ops.declarations();
        let create = &decls[0];
        let req = create.request_schema.as_ref().expect("request schema");
        let resp = create.response_schema.as_ref().expect("response schema");
        assert_eq!(req["type"], "object", "{req}");
        assert_eq!(req["properties"]["email"]["type"], "string", "{req}");
        assert!(req["properties"].get("nickname").is_some(), "{req}");
        assert_eq!(req["required"], serde_json::json!(["email"]), "{req}");
        assert_eq!(req["additionalProperties"], false, "{req}");
        assert_eq!(resp["properties"]["id"]["type"], "string", "{resp}");
        assert_eq!(resp["properties"]["active"]["type"], "boolean", "{resp}");

        let ping = &decls[1];
        assert!(!ping.mutates);
        let req = ping.request_schema.as_ref().expect("request schema");
        assert_eq!(req["type"], "object", "{req}");
        assert!(ping.response_schema.is_some());
    }
}
