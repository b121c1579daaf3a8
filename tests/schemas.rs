//! Every operation of every system declares JSON Schemas for its request and
//! response (the OpenAPI document is built from them).

use syshost::Host;
use syshost_test_support::{PluginDir, SYSTEMS};

fn host(plugins: &PluginDir, data: &std::path::Path) -> Host {
    Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds")
}

#[test]
fn every_operation_of_every_system_has_request_and_response_schemas() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    host.activate("user").expect("user activates");
    let active = host.active_systems();
    for id in SYSTEMS {
        assert!(
            active.iter().any(|a| a == id),
            "{id} not active: {active:?}"
        );
    }

    let mut checked = 0;
    for id in &active {
        let manifest = host.manifest(id).expect("active systems have a manifest");
        assert!(
            !manifest.operations.is_empty(),
            "{id} declares no operations"
        );
        for op in &manifest.operations {
            for (what, schema) in [
                ("request", &op.request_schema),
                ("response", &op.response_schema),
            ] {
                let schema = schema
                    .as_ref()
                    .unwrap_or_else(|| panic!("{id}.{} has no {what} schema", op.name));
                assert!(
                    schema.is_object(),
                    "{id}.{} {what} schema is not an object: {schema}",
                    op.name
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} operations checked");
}

#[test]
fn user_create_request_schema_requires_email() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let host = host(&plugins, data.path());
    host.activate("user").expect("user activates");
    let manifest = host.manifest("user").expect("user manifest");
    let create = manifest
        .operations
        .iter()
        .find(|op| op.name == "create")
        .expect("user.create is declared");
    let schema = create.request_schema.as_ref().expect("request schema");
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["properties"]["email"]["type"], "string", "{schema}");
    let required = schema["required"]
        .as_array()
        .unwrap_or_else(|| panic!("no required list: {schema}"));
    assert!(
        required.iter().any(|f| f == "email"),
        "email not required: {schema}"
    );
    // Request structs deny unknown fields, and the schema says so.
    assert_eq!(schema["additionalProperties"], false, "{schema}");
    let response = create.response_schema.as_ref().expect("response schema");
    assert!(response.is_object(), "{response}");
}
