//! `GET /api/openapi.json`: an OpenAPI 3.1 document generated from the
//! manifests of the active systems.

use serde_json::{json, Map, Value};
use syshost_plugin_api::{Access, OperationDecl};

use crate::Host;

/// The error statuses every operation may answer, with a description.
const ERROR_RESPONSES: &[(&str, &str)] = &[
    (
        "400",
        "Invalid input (malformed JSON, wrong types, unknown fields, failed validation)",
    ),
    (
        "401",
        "Not authenticated, or the session token is expired or unknown",
    ),
    (
        "403",
        "Permission denied, password change required, or CSRF check failed",
    ),
    ("404", "Unknown operation or object not found"),
    ("409", "Conflict with the current state"),
    ("413", "Request body too large"),
    ("429", "Rate limited; see Retry-After"),
    ("500", "Internal error"),
    ("503", "System unavailable or request timed out"),
];

/// The OpenAPI 3.1 document for the active systems of `host`.
pub fn document(host: &Host, server_url: &str, cookie_name: &str) -> Value {
    let mut paths = Map::new();
    let mut defs = Map::new();
    for id in host.active_systems() {
        let Some(manifest) = host.manifest(&id) else {
            continue;
        };
        for op in &manifest.operations {
            let mut item = Map::new();
            item.insert("post".into(), operation(&id, op, true, &mut defs));
            if !op.mutates {
                item.insert("get".into(), operation(&id, op, false, &mut defs));
            }
            paths.insert(format!("/api/v1/{id}/{}", op.name), Value::Object(item));
        }
    }
    let mut error_responses = Map::new();
    for (status, description) in ERROR_RESPONSES {
        error_responses.insert(
            format!("E{status}"),
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            }),
        );
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "syshost API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every declared operation of every active system, as POST /api/v1/{system}/{operation} with a JSON body (GET too for read-only operations, without a body)."
        },
        "servers": [{ "url": server_url }],
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": { "type": "string", "description": "Stable machine-readable code, e.g. invalid_input" },
                                "message": { "type": "string" },
                                "details": { "description": "Optional structured details, e.g. {\"field\": \"email\"}" }
                            }
                        }
                    }
                }
            },
            "responses": error_responses,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "Session token from session.login" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": cookie_name, "description": "Session cookie set by session.login (POSTs need a same-origin Origin)" }
            }
        }
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(defs);
    }
    doc
}

/// Makes a schemars schema usable inside OpenAPI: drops `$schema`, moves
/// its `$defs` into `components.schemas` as `<plugin>.<Name>`, and points
/// every `#/$defs/…` reference there (in OpenAPI a `#/…` reference is
/// resolved against the whole document).
fn lift(schema: &Value, plugin: &str, defs: &mut Map<String, Value>) -> Value {
    fn rewrite(v: &mut Value, plugin: &str) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref") {
                    if let Some(name) = r.strip_prefix("#/$defs/") {
                        *r = format!("#/components/schemas/{plugin}.{name}");
                    }
                }
                for child in map.values_mut() {
                    rewrite(child, plugin);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| rewrite(i, plugin)),
            _ => {}
        }
    }
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        if let Some(Value::Object(local)) = map.remove("$defs") {
            for (name, mut def) in local {
                rewrite(&mut def, plugin);
                defs.insert(format!("{plugin}.{name}"), def);
            }
        }
    }
    rewrite(&mut schema, plugin);
    schema
}

fn operation(plugin: &str, op: &OperationDecl, post: bool, defs: &mut Map<String, Value>) -> Value {
    let object = json!({ "type": "object" });
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The operation's result",
            "content": { "application/json": { "schema": op.response_schema.as_ref().map(|s| lift(s, plugin, defs)).unwrap_or_else(|| object.clone()) } }
        }),
    );
    for (status, _) in ERROR_RESPONSES {
        responses.insert(
            (*status).to_string(),
            json!({ "$ref": format!("#/components/responses/E{status}") }),
        );
    }
    let operation_id = if post {
        format!("{plugin}.{}", op.name)
    } else {
        format!("{plugin}.{}.get", op.name)
    };
    let mut out = json!({
        "operationId": operation_id,
        "summary": op.doc,
        "tags": [plugin],
        "responses": responses,
        "x-syshost-access": op.access,
        "x-syshost-mutates": op.mutates,
    });
    if let Some(throttle) = &op.throttle {
        out["x-syshost-throttle"] = json!(throttle);
    }
    if op.access != Access::Public {
        out["security"] = json!([{ "bearer": [] }, { "cookie": [] }]);
    }
    if post {
        out["requestBody"] = json!({
            "required": false,
            "content": { "application/json": { "schema": op.request_schema.as_ref().map(|s| lift(s, plugin, defs)).unwrap_or(object) } }
        });
    }
    out
}
