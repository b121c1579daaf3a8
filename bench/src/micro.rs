//! The micro figures — the cross-plugin call round trip and the permission
//! check on a cached subject, each next to its direct limit — shared by the
//! driver (`--only micro`, which times them into its table and baseline) and
//! the criterion benches (`benches/micro.rs`), so both measure exactly the
//! same operations.

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
pub struct CheckResponse {
    /// The ids the registry does not know.
    pub unknown: Vec<String>,
}

/// The payload of the call figure: three ids, one unknown.
pub const PAYLOAD: &str = r#"{"ids":["user.read","role.read","no.such"]}"#;

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

/// A host with the plugin libraries active and an administrator whose
/// subject is cached: the operations each micro figure times.
pub struct Fixture {
    host: Host,
    user_id: String,
    registry: HashSet<String>,
    system: CallContext,
}

impl Fixture {
    /// Activates `user` (and what it needs) from `plugins` on a fresh store
    /// in `data`, creates an administrator and checks that the host path and
    /// the direct path answer alike.
    pub fn new(plugins: &Path, data: &Path) -> Result<Fixture, String> {
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
        let user_id = created["id"]
            .as_str()
            .ok_or("user.create answered without an id")?
            .to_string();
        let registry = host.permissions().into_iter().map(|p| p.id).collect();
        let f = Fixture {
            host,
            user_id,
            registry,
            system: CallContext::system(),
        };
        let via_host = f.round_trip().ok_or("permission.check failed")?;
        let direct = f.direct().ok_or("the direct path failed")?;
        if via_host.unknown != direct.unknown {
            return Err(format!(
                "permission.check answered {:?}, the direct path {:?}",
                via_host.unknown, direct.unknown
            ));
        }
        if !f.cached_subject() {
            return Err("the administrator's subject lacks user.read".into());
        }
        Ok(f)
    }

    /// `Host::call_raw("permission", "check", …)` + decoding the answer.
    pub fn round_trip(&self) -> Option<CheckResponse> {
        let out = self
            .host
            .call_raw("permission", "check", black_box(PAYLOAD), &self.system)
            .ok()?;
        serde_json::from_str(&out).ok()
    }

    /// The same serde work and a set lookup, called directly.
    pub fn direct(&self) -> Option<CheckResponse> {
        let out = direct_check(black_box(PAYLOAD), &self.registry).ok()?;
        serde_json::from_str(&out).ok()
    }

    /// `Host::subject(id)` from the cache + `has_permission("user.read")`.
    pub fn cached_subject(&self) -> bool {
        self.host
            .subject(Some(black_box(&self.user_id)))
            .is_ok_and(|s| s.has_permission(black_box("user.read")))
    }

    /// `has_permission` on a subject already held (no cache lookup).
    pub fn held_subject(&self) -> impl Fn() -> bool + '_ {
        let subject = self.host.subject(Some(&self.user_id)).ok();
        move || {
            subject
                .as_ref()
                .is_some_and(|s| s.has_permission(black_box("user.read")))
        }
    }

    /// `HashSet<String>::contains`, the limit of the permission check.
    pub fn hash_set(&self) -> bool {
        self.registry.contains(black_box("user.read"))
    }

    /// Stops the host.
    pub fn shutdown(self) {
        self.host.shutdown();
    }
}

/// Nanoseconds per operation of each micro figure.
pub struct MicroFigures {
    /// [`Fixture::round_trip`].
    pub call_round_trip_ns: f64,
    /// [`Fixture::direct`].
    pub call_direct_ns: f64,
    /// [`Fixture::cached_subject`].
    pub cached_subject_ns: f64,
    /// [`Fixture::hash_set`].
    pub hash_set_ns: f64,
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

/// Times every micro figure against the plugin libraries in `plugins`, with
/// a fresh store under `data`; `d` is the time per figure.
pub fn measure(plugins: &Path, data: &Path, d: Duration) -> Result<MicroFigures, String> {
    let f = Fixture::new(plugins, data)?;
    let figures = MicroFigures {
        call_round_trip_ns: time_ns(d, || {
            black_box(f.round_trip());
        }),
        call_direct_ns: time_ns(d, || {
            black_box(f.direct());
        }),
        cached_subject_ns: time_ns(d, || {
            black_box(f.cached_subject());
        }),
        hash_set_ns: time_ns(d, || {
            black_box(f.hash_set());
        }),
    };
    f.shutdown();
    Ok(figures)
}
