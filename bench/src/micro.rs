//! In-process micro figures: the cross-plugin call round trip and the
//! permission check on a cached subject, each next to its direct limit.
//!
//! The same measurements as the criterion benches (`benches/micro.rs`), run
//! by the driver so they land in its table and in the regression baseline.
//! Each figure is the median of many timed batches (nanoseconds per
//! operation), taken against the release plugin libraries.

use std::collections::HashSet;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syshost::{CallContext, Host};

/// The request shape `permission.check` decodes.
#[derive(Serialize, Deserialize)]
struct CheckRequest {
    ids: Vec<String>,
}

/// The response shape `permission.check` encodes.
#[derive(Serialize, Deserialize)]
struct CheckResponse {
    unknown: Vec<String>,
}

/// The payload of the call figure: three ids, one unknown.
const PAYLOAD: &str = r#"{"ids":["user.read","role.read","no.such"]}"#;

/// Nanoseconds per operation of each micro figure.
pub struct MicroFigures {
    /// `Host::call_raw("permission", "check", …)` + decoding the answer.
    pub call_round_trip_ns: f64,
    /// The same serde work and a set lookup, called directly.
    pub call_direct_ns: f64,
    /// `Host::subject(id)` from the cache + `has_permission`.
    pub cached_subject_ns: f64,
    /// `HashSet<String>::contains`.
    pub hash_set_ns: f64,
}

/// The direct call: the serde work of the round trip and a set lookup
/// standing in for the registry.
#[inline(never)]
fn direct_check(payload: &str, registry: &HashSet<String>) -> Result<String, serde_json::Error> {
    let req: CheckRequest = serde_json::from_str(payload)?;
    let unknown = req
        .ids
        .into_iter()
        .filter(|id| !registry.contains(id))
        .collect();
    serde_json::to_string(&CheckResponse { unknown })
}

/// Median nanoseconds per call of `f`, over batches for about `d`.
fn time_ns(d: Duration, mut f: impl FnMut()) -> f64 {
    // Size a batch to ~1 ms so the clock's own cost disappears.
    let t = Instant::now();
    let mut calib = 0u64;
    while t.elapsed() < Duration::from_millis(20) {
        f();
        calib += 1;
    }
    let batch = (calib / 20).max(1);
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < d || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Runs both micro figures against the plugin libraries in `plugins`, with
/// a fresh store under `data`; `d` is the time per figure.
pub fn measure(plugins: &Path, data: &Path, d: Duration) -> Result<MicroFigures, String> {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins)
        .build()
        .map_err(|e| format!("host: {e}"))?;
    let user = host
        .activate("user")
        .map_err(|e| format!("activate user: {e}"))?;
    let created: serde_json::Value = user
        .call(
            "create",
            &serde_json::json!({"email": "micro@example.com", "roles": ["admin"], "verified": true}),
        )
        .map_err(|e| format!("user.create: {e}"))?;
    let id = created["id"]
        .as_str()
        .ok_or("user.create answered without an id")?
        .to_string();
    let system = CallContext::system();
    let registry: HashSet<String> = host.permissions().into_iter().map(|p| p.id).collect();
    // Check once that the call answers what the direct path answers.
    let out = host
        .call_raw("permission", "check", PAYLOAD, &system)
        .map_err(|e| format!("permission.check: {e}"))?;
    let via_host: CheckResponse =
        serde_json::from_str(&out).map_err(|e| format!("permission.check answer: {e}"))?;
    let direct: CheckResponse = serde_json::from_str(
        &direct_check(PAYLOAD, &registry).map_err(|e| format!("direct: {e}"))?,
    )
    .map_err(|e| format!("direct answer: {e}"))?;
    if via_host.unknown != direct.unknown {
        return Err(format!(
            "permission.check answered {:?}, the direct path {:?}",
            via_host.unknown, direct.unknown
        ));
    }
    let subject = host
        .subject(Some(&id))
        .map_err(|e| format!("subject: {e}"))?;
    if !subject.has_permission("user.read") {
        return Err("the administrator's subject lacks user.read".into());
    }

    let call_round_trip_ns = time_ns(d, || {
        if let Ok(out) = host.call_raw("permission", "check", black_box(PAYLOAD), &system) {
            black_box(serde_json::from_str::<CheckResponse>(&out).ok());
        }
    });
    let call_direct_ns = time_ns(d, || {
        if let Ok(out) = direct_check(black_box(PAYLOAD), &registry) {
            black_box(serde_json::from_str::<CheckResponse>(&out).ok());
        }
    });
    let cached_subject_ns = time_ns(d, || {
        if let Ok(s) = host.subject(Some(black_box(&id))) {
            black_box(s.has_permission(black_box("user.read")));
        }
    });
    let hash_set_ns = time_ns(d, || {
        black_box(registry.contains(black_box("user.read")));
    });
    host.shutdown();
    Ok(MicroFigures {
        call_round_trip_ns,
        call_direct_ns,
        cached_subject_ns,
        hash_set_ns,
    })
}
