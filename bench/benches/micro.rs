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
//! The operations are `syshost_bench::micro::Fixture`'s, which the driver's
//! `--only micro` times too. Run: `cargo bench -p syshost-bench --bench
//! micro` (release profile; the plugin libraries come from the same build).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use syshost_bench::micro::Fixture;
use syshost_test_support::PluginDir;

fn benches(c: &mut Criterion) {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().expect("temp dir");
    let f = Fixture::new(plugins.path(), data.path()).expect("micro fixture");

    let mut call = c.benchmark_group("call");
    call.bench_function("host_round_trip", |b| b.iter(|| black_box(f.round_trip())));
    call.bench_function("direct_serde", |b| b.iter(|| black_box(f.direct())));
    call.finish();

    let held = f.held_subject();
    let mut perm = c.benchmark_group("permission");
    perm.bench_function("cached_subject", |b| {
        b.iter(|| black_box(f.cached_subject()))
    });
    perm.bench_function("cached_subject_set_only", |b| b.iter(|| black_box(held())));
    perm.bench_function("hash_set", |b| b.iter(|| black_box(f.hash_set())));
    perm.finish();
    drop(held);
    f.shutdown();
}

criterion_group!(micro, benches);
criterion_main!(micro);
