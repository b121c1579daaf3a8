//! Target `manifest`: manifest JSON as a plugin library reports it, the
//! host's validation, and dependency resolution over the valid ones.
//!
//! Input: one manifest object, or an array of them. Checks: decoding and
//! validation never panic and name the problem; an accepted manifest obeys
//! the documented patterns; the resolver orders every planned system after
//! its hard requirements.

use std::collections::BTreeSet;
use std::path::Path;

use syshost::discovery::{validate_manifest, DiscoveryError};
use syshost::loader::parse_manifest;
use syshost::resolver::{resolve, Candidate};
use syshost_plugin_api::{is_valid_ident, is_valid_permission_id};

/// Tokens worth splicing into manifest inputs.
pub const DICTIONARY: &[&str] = &[
    "{\"id\":\"a\",\"version\":\"0.1.0\"}",
    "\"id\"",
    "\"version\"",
    "\"requires\"",
    "\"wants\"",
    "\"permissions\"",
    "\"operations\"",
    "\"subscribes\"",
    "\"subject_provider\"",
    "\"token_resolver\"",
    "\"invalidate_on\"",
    "\"operation\"",
    "\"access\"",
    "\"public\"",
    "\"system\"",
    "\"authenticated\"",
    "{\"permission\":\"a.b\"}",
    "{\"self_or_permission\":\"a.read\"}",
    "\"name\"",
    "\"mutates\"",
    "\"throttle\"",
    "\"request_schema\"",
    "\"response_schema\"",
    "\"^0.1\"",
    "\">=1.0, <2\"",
    "\"*\"",
    "\"1.0.0-alpha+build\"",
    "\"role.*\"",
    "\"role.deleted\"",
    "\"a.b\"",
    "\"A\"",
    "\"\"",
    "null",
    "true",
    "[]",
    "{}",
    ",",
    ":",
    "[",
    "]",
    "{",
    "}",
    "\"\\u0000\"",
    "\"99999999999999999999.0.0\"",
];

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{"id":"a","version":"0.1.0"}"#,
        r#"{"id":"user","version":"0.1.0","name":"User","requires":[{"id":"role","version":"^0.1"}],"wants":[{"id":"session","version":"^0.1"}],"permissions":[{"id":"user.read","name":"Read"}],"operations":[{"name":"get","access":{"permission":"user.read"},"mutates":false},{"name":"subject","access":"system"}],"subscribes":["role.*","group.deleted"],"subject_provider":{"operation":"subject","invalidate_on":["role.*"]}}"#,
        r#"[{"id":"a","version":"1.0.0","requires":[{"id":"b","version":"^1"}]},{"id":"b","version":"1.2.0","requires":[{"id":"a","version":"*"}]},{"id":"c","version":"0.0.1","wants":[{"id":"a","version":"^1"}]}]"#,
        r#"[{"id":"x","version":"2.0.0","requires":[{"id":"y","version":"^1"}]},{"id":"y","version":"2.0.0"}]"#,
        r#"{"id":"s","version":"0.1.0","operations":[{"name":"resolve","access":"system"}],"token_resolver":{"operation":"resolve"}}"#,
        r#"{"id":"Bad","version":"x"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Runs the target; returns the outcome class.
pub fn fuzz(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/plugins/libfuzzed.so");
    let documents: Vec<String> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(items)) => items.iter().map(|v| v.to_string()).collect(),
        _ => vec![text.to_string()],
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut outcome = String::new();
    for doc in documents.iter().take(16) {
        let manifest = match parse_manifest(path, doc) {
            Ok(m) => m,
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("libfuzzed.so"), "{message}");
                outcome.push_str("|json");
                continue;
            }
        };
        match validate_manifest(path, &manifest) {
            Ok(checked) => {
                assert!(is_valid_ident(&manifest.id), "{:?}", manifest.id);
                assert!(!checked.version.to_string().is_empty());
                let mut names = BTreeSet::new();
                for op in &manifest.operations {
                    assert!(is_valid_ident(&op.name), "{:?}", op.name);
                    assert!(names.insert(op.name.clone()), "duplicate {}", op.name);
                    if let Some(p) = op.access.permission_id() {
                        assert!(is_valid_permission_id(p), "{p:?}");
                    }
                }
                for dep in checked.requires.iter().chain(&checked.wants) {
                    assert!(is_valid_ident(&dep.id) && dep.id != manifest.id);
                }
                outcome.push_str("|valid");
                candidates.push(Candidate {
                    id: manifest.id.clone(),
                    version: checked.version,
                    requires: checked.requires,
                    wants: checked.wants,
                });
            }
            Err(e) => {
                let message = e.to_string();
                assert!(matches!(e, DiscoveryError::BadManifest { .. }), "{message}");
                // The reason up to its first quote or colon is the class.
                let class: String = match e {
                    DiscoveryError::BadManifest { reason, .. } => {
                        reason.split(['\'', ':']).next().unwrap_or("").to_string()
                    }
                    _ => String::new(),
                };
                outcome.push_str(&format!("|bad:{class}"));
            }
        }
    }
    if !candidates.is_empty() {
        let enabled: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        let plan = resolve(&candidates, &enabled);
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        for id in &plan.order {
            let candidate = candidates
                .iter()
                .find(|c| &c.id == id)
                .unwrap_or_else(|| panic!("planned '{id}' is no candidate"));
            for dep in &candidate.requires {
                assert!(
                    placed.contains(dep.id.as_str()),
                    "'{id}' planned before its requirement '{}': {:?}",
                    dep.id,
                    plan.order
                );
            }
            assert!(placed.insert(id), "'{id}' planned twice");
        }
        outcome.push_str(&format!(
            "|plan{}:{}",
            plan.order.len(),
            plan.problems.len()
        ));
    }
    outcome
}
