//! Micro benchmarks (criterion), each next to its limit:
//!
//! * `call/host_round_trip` — a small JSON call through the host
//!   (`Host::call_raw`: dispatch, authorization, ABI crossing, the plugin's
//!   decode/handle/encode) vs `call/direct_serde` — a direct Rust function
//!   doing the same serde work (decode the request, build and encode the
//!   response, decode it). Target ≤ 2× and < 5 µs.
//! * `permission/cached_subject` — the host's check on a cached subject
//!   (cache lookup + hash-set lookup) vs `permission/hash_set` — a bare
//!   `HashSet<String>::contains`. Target < 100 ns.
//!
//! Run: `cargo bench -p syshost-bench --bench micro` (release profile; the
//! plugin libraries come from the same build).

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};
use syshost::{CallContext, Host};
use syshost_test_support::PluginDir;

/// The same request shape `permission.check` decodes.
#[derive(Serialize, Deserialize)]
struct CheckRequest {
    ids: Vec<String>,
}

/// The same response shape `permission.check` encodes.
#[derive(Serialize, Deserialize)]
struct CheckResponse {
    unknown: Vec<String>,
}

/// The direct call: the same serde work as the round trip, and a set lookup
/// standing in for the registry.
#[inline(never)]
fn direct_check(payload: &str, registry: &HashSet<String>) -> String {
    let req: CheckRequest = serde_json::from_str(payload).expect("valid request");
    let unknown = req
        .ids
        .into_iter()
        .filter(|id| !registry.contains(id))
        .collect();
    serde_json::to_string(&CheckResponse { unknown }).expect("encodable")
}

fn setup() -> (PluginDir, tempfile::TempDir, Host, String) {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().expect("temp dir");
    let host = Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .expect("host");
    let user = host.activate("user").expect("activate user");
    let created: serde_json::Value = user
        .call(
            "create",
            &serde_json::json!({"email": "bench@example.com", "roles": ["admin"], "verified": true}),
        )
        .expect("create user");
    let id = created["id"].as_str().expect("id").to_string();
    (plugins, data, host, id)
}

fn benches(c: &mut Criterion) {
    let (_plugins, _data, host, user_id) = setup();
    let payload = r#"{"ids":["user.read","role.read","no.such"]}"#;
    let system = CallContext::system();
    let registry: HashSet<String> = host.permissions().into_iter().map(|p| p.id).collect();

    let mut call = c.benchmark_group("call");
    call.bench_function("host_round_trip", |b| {
        b.iter(|| {
            let out = host
                .call_raw("permission", "check", black_box(payload), &system)
                .expect("call");
            let resp: CheckResponse = serde_json::from_str(&out).expect("response");
            black_box(resp)
        })
    });
    call.bench_function("direct_serde", |b| {
        b.iter(|| {
            let out = direct_check(black_box(payload), &registry);
            let resp: CheckResponse = serde_json::from_str(&out).expect("response");
            black_box(resp)
        })
    });
    call.finish();

    // Warm the cache once, then measure the lookups only.
    let subject = host.subject(Some(&user_id)).expect("subject");
    assert!(subject.has_permission("user.read"));
    let mut perm = c.benchmark_group("permission");
    perm.bench_function("cached_subject", |b| {
        b.iter(|| {
            let s = host.subject(Some(black_box(&user_id))).expect("cached");
            black_box(s.has_permission(black_box("user.read")))
        })
    });
    perm.bench_function("cached_subject_set_only", |b| {
        b.iter(|| black_box(subject.has_permission(black_box("user.read"))))
    });
    perm.bench_function("hash_set", |b| {
        b.iter(|| black_box(registry.contains(black_box("user.read"))))
    });
    perm.finish();
    host.shutdown();
}

criterion_group!(micro, benches);
criterion_main!(micro);
