//! Target `operations`: every declared operation of every system, called
//! through the real host (`Host::call_raw`) with the real plugin libraries.
//!
//! Input: byte 0 picks the operation, byte 1 the caller, byte 2 the payload
//! mode; the rest steers the payload: either raw text (JSON decoding of
//! arbitrary bytes) or a value generated from the operation's request
//! schema (known field names, optional fields left out, unknown fields
//! added, wrong types, edge-case numbers and strings, ids seen in earlier
//! responses). Callers: an administrator (holding every permission) for
//! user-facing operations, the host itself for system-only ones, and now
//! and then an anonymous caller.
//!
//! Checks: the host stays up; every answer is either JSON or an error with
//! a caller-side code: never `internal`, `plugin_panicked` or
//! `storage_error`, and never an empty message.

use std::sync::{Mutex, OnceLock};

use serde_json::{json, Map, Value};
use syshost::mail::MailSettings;
use syshost::{BootstrapAdmin, CallContext, Host};
use syshost_plugin_api::{codes, Access};
use syshost_test_support::PluginDir;

use crate::input::Input;

/// Tokens worth splicing into operation inputs (the payload bytes).
pub const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"id\"",
    "\"email\"",
    "\"password\"",
    "\"name\"",
    "\"limit\"",
    "\"offset\"",
    "\"search\"",
    "\"permissions\"",
    "\"roles\"",
    "\"section\"",
    "\"document\"",
    "\"user_id\"",
    "\"license_id\"",
    "\"code\"",
    "\"token\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
];

/// The administrator the target's host is bootstrapped with.
pub const ADMIN_EMAIL: &str = "root@fuzz.test";
const ADMIN_PASSWORD: &str = "fuzzing is fun 1234";

/// Strings the generator prefers: edge cases, and shapes the systems parse.
const STRINGS: &[&str] = &[
    "",
    " ",
    "admin",
    "system",
    "user",
    "a",
    "x-1",
    "ROOT",
    "root@fuzz.test",
    "ann@example.com",
    "Ann@Example.COM",
    "not an email",
    "a@b",
    "ann@localhost",
    "correct horse battery staple",
    "password",
    "123456",
    "https://example.com/x",
    "javascript:alert(1)",
    "user.read",
    "role.create",
    "nope.nope",
    "../../etc/passwd",
    "\u{0}",
    "\u{202e}evil",
    "e\u{301}",
    "İstanbul",
    "🦀",
    "=cmd|' /C calc'!A0",
    "+49 30 1234",
    "de",
    "en-US",
    "Europe/Berlin",
    "1970-01-01",
    "2999-12-31",
    "json",
    "csv",
    "asc",
    "desc",
    "email",
    "created_at",
    "enabled",
    "disabled",
    "expired",
    "active",
    "enabled_until",
    "image/png",
    "iVBORw0KGgo=",
    "AAAA",
    "%%%",
    "0123456789abcdef0123456789abcdef",
];

const NUMBERS: &[f64] = &[
    0.0,
    1.0,
    -1.0,
    2.0,
    50.0,
    499.0,
    500.0,
    501.0,
    1000.0,
    1001.0,
    65536.0,
    1.5,
    -0.0,
    9.007_199_254_740_993e15,
    1.8446744073709552e19,
    1e300,
    -1e300,
];

const INTEGERS: &[i64] = &[
    0,
    1,
    -1,
    2,
    50,
    499,
    500,
    501,
    1000,
    1001,
    65536,
    4_294_967_296,
    i64::MAX,
    i64::MIN,
];

struct World {
    host: Host,
    ops: Vec<Op>,
    admin: CallContext,
    anonymous: CallContext,
    seen: Mutex<Vec<String>>,
    _data: tempfile::TempDir,
    _plugins: Option<PluginDir>,
}

struct Op {
    system: String,
    name: String,
    system_only: bool,
    schema: Option<Value>,
}

static WORLD: OnceLock<World> = OnceLock::new();

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let data = tempfile::tempdir().expect("temp data dir");
        let (plugin_dir, plugins) = match std::env::var_os("SYSHOST_FUZZ_PLUGIN_DIR") {
            Some(dir) => (std::path::PathBuf::from(dir), None),
            None => {
                let dir = find_plugins();
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let host = Host::builder()
            .data_dir(data.path())
            .plugin_dir(plugin_dir)
            .mail(MailSettings::outbox(data.path().join("outbox")))
            .bootstrap_admin(BootstrapAdmin {
                email: Some(ADMIN_EMAIL.to_string()),
                password: Some(ADMIN_PASSWORD.to_string()),
            })
            .build()
            .expect("host builds");
        let report = host.activate_all(&["user".to_string()]);
        assert!(report.is_ok(), "activation failed: {report:?}");
        let found = host
            .call_raw(
                "user",
                "list",
                &json!({ "search": ADMIN_EMAIL }).to_string(),
                &CallContext::system(),
            )
            .expect("list users");
        let found: Value = serde_json::from_str(&found).expect("user list is JSON");
        let admin_id = found["items"][0]["id"]
            .as_str()
            .expect("the bootstrap administrator exists")
            .to_string();
        let admin = host.context_for(Some(&admin_id)).expect("admin context");
        let anonymous = host.context_for(None).expect("anonymous context");
        let mut ops = Vec::new();
        for id in host.active_systems() {
            let manifest = host.manifest(&id).expect("active systems have manifests");
            for op in manifest.operations {
                ops.push(Op {
                    system: id.clone(),
                    name: op.name.clone(),
                    system_only: op.access == Access::System,
                    schema: op.request_schema.clone(),
                });
            }
        }
        ops.sort_by(|a, b| (&a.system, &a.name).cmp(&(&b.system, &b.name)));
        World {
            host,
            ops,
            admin,
            anonymous,
            seen: Mutex::new(vec![admin_id]),
            _data: data,
            _plugins: plugins,
        }
    })
}

/// The system libraries in a plugin directory of their own: the
/// ones `cargo test` built, else those of `cargo build` in the workspace's
/// `target/debug` or `target/release` (for `cargo fuzz`, which builds
/// elsewhere).
fn find_plugins() -> PluginDir {
    let file = |id: &str| {
        format!(
            "{}syshost_plugin_{id}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    };
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = syshost_test_support::build_dirs();
    dirs.push(workspace.join("target/debug"));
    dirs.push(workspace.join("target/release"));
    for dir in dirs {
        let libs: Vec<_> = syshost_test_support::SYSTEMS
            .iter()
            .map(|id| dir.join(file(id)))
            .collect();
        if libs.iter().all(|l| l.is_file()) {
            return PluginDir::with(&libs);
        }
    }
    panic!("the system plugin libraries were not built; run `cargo build` first or set SYSHOST_FUZZ_PLUGIN_DIR")
}

/// The number of operations the target reaches.
pub fn operation_count() -> usize {
    world().ops.len()
}

/// Seed inputs: every operation once with a minimal generated payload.
pub fn seeds() -> Vec<Vec<u8>> {
    let n = operation_count();
    let mut seeds = Vec::new();
    for i in 0..n {
        let mut seed = if n <= 256 {
            vec![i as u8]
        } else {
            vec![(i >> 8) as u8, i as u8]
        };
        seed.extend_from_slice(&[0, 1]);
        seeds.push(seed.clone());
        // The same with every optional field present.
        seed.extend(std::iter::repeat_n(0xc0, 24));
        seeds.push(seed);
    }
    seeds
}

/// Runs the target; returns the outcome class.
pub fn fuzz(data: &[u8]) -> String {
    let w = world();
    let mut input = Input::new(data);
    let op = &w.ops[input.below(w.ops.len())];
    let caller = input.byte();
    let ctx = if op.system_only {
        CallContext::system()
    } else if caller >= 0xf0 {
        w.anonymous.clone()
    } else {
        w.admin.clone()
    };
    let payload = if input.byte() % 8 == 0 {
        String::from_utf8_lossy(input.rest()).into_owned()
    } else {
        let empty = json!({});
        let schema = op.schema.as_ref().unwrap_or(&empty);
        let seen = w.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut g = Generator {
            input: &mut input,
            root: schema,
            seen: &seen,
        };
        g.value(schema, 0).to_string()
    };
    let outcome = match w.host.call_raw(&op.system, &op.name, &payload, &ctx) {
        Ok(body) => {
            let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| {
                panic!(
                    "{}.{} answered non-JSON ({e}) to {payload}: {body}",
                    op.system, op.name
                )
            });
            remember(w, &value);
            "ok".to_string()
        }
        Err(e) => {
            assert!(
                ![codes::INTERNAL, codes::PLUGIN_PANICKED, codes::STORAGE]
                    .contains(&e.code.as_str()),
                "{}.{} failed with {} for payload {payload}: {}",
                op.system,
                op.name,
                e.code,
                e.message
            );
            assert!(
                !e.message.trim().is_empty(),
                "{}.{}: empty message",
                op.system,
                op.name
            );
            e.code
        }
    };
    format!("{}.{}:{outcome}", op.system, op.name)
}

/// Keeps id-like strings of a response for later payloads.
fn remember(w: &World, value: &Value) {
    let mut found = Vec::new();
    collect_ids(value, &mut found, 0);
    if found.is_empty() {
        return;
    }
    if let Ok(mut seen) = w.seen.lock() {
        for id in found {
            if !seen.contains(&id) {
                if seen.len() >= 256 {
                    seen.remove(1);
                }
                seen.push(id);
            }
        }
    }
}

fn collect_ids(value: &Value, out: &mut Vec<String>, depth: u32) {
    if depth > 4 || out.len() > 16 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Value::String(s) = v {
                    if (k == "id" || k.ends_with("_id") || k == "section") && s.len() <= 128 {
                        out.push(s.clone());
                    }
                } else {
                    collect_ids(v, out, depth + 1);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_ids(i, out, depth + 1)),
        _ => {}
    }
}

/// Builds a JSON value from a (schemars-generated) JSON Schema, steered by
/// the fuzz input.
struct Generator<'a, 'b> {
    input: &'a mut Input<'b>,
    root: &'a Value,
    seen: &'a [String],
}

impl Generator<'_, '_> {
    fn value(&mut self, schema: &Value, depth: u32) -> Value {
        if depth > 6 || self.input.chance(3) {
            return self.wild(depth);
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix("#/$defs/")
                .and_then(|name| self.root.get("$defs").and_then(|d| d.get(name)))
                .or_else(|| {
                    r.strip_prefix("#/definitions/")
                        .and_then(|name| self.root.get("definitions").and_then(|d| d.get(name)))
                });
            return match target {
                Some(t) => self.value(t, depth + 1),
                None => self.wild(depth),
            };
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.is_empty() {
                return options[self.input.below(options.len())].clone();
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                if !branches.is_empty() {
                    let pick = &branches[self.input.below(branches.len())];
                    return self.value(pick, depth + 1);
                }
            }
        }
        let ty = match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(types)) if !types.is_empty() => types[self.input.below(types.len())]
                .as_str()
                .unwrap_or("null")
                .to_string(),
            _ if schema.get("properties").is_some() => "object".to_string(),
            _ => return self.wild(depth),
        };
        match ty.as_str() {
            "object" => self.object(schema, depth),
            "array" => {
                let n = self.input.below(4);
                let items = schema.get("items").cloned().unwrap_or(Value::Bool(true));
                Value::Array((0..n).map(|_| self.value(&items, depth + 1)).collect())
            }
            "string" => Value::String(self.string()),
            "integer" => self.integer(),
            "number" => json!(NUMBERS[self.input.below(NUMBERS.len())]),
            "boolean" => Value::Bool(self.input.byte() & 1 == 1),
            _ => Value::Null,
        }
    }

    fn object(&mut self, schema: &Value, depth: u32) -> Value {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, sub) in props {
                let include = if required.contains(&name.as_str()) {
                    !self.input.chance(5)
                } else {
                    self.input.chance(50)
                };
                if include {
                    let v = self.value(sub, depth + 1);
                    out.insert(name.clone(), v);
                }
            }
        }
        if let Some(extra @ Value::Object(_)) = schema.get("additionalProperties") {
            for _ in 0..self.input.below(3) {
                let key = self.string();
                let v = self.value(extra, depth + 1);
                out.insert(key, v);
            }
        }
        if self.input.chance(4) {
            out.insert("unexpected_field".to_string(), json!(1));
        }
        Value::Object(out)
    }

    fn string(&mut self) -> String {
        match self.input.below(8) {
            0 | 1 if !self.seen.is_empty() => self.seen[self.input.below(self.seen.len())].clone(),
            2 => String::from_utf8_lossy(self.input.bytes(48)).into_owned(),
            3 => {
                let unit = STRINGS[self.input.below(STRINGS.len())];
                let n = [2, 65, 101, 201, 1001, 4001][self.input.below(6)];
                unit.repeat(n).chars().take(n.max(1) * 2).collect()
            }
            _ => STRINGS[self.input.below(STRINGS.len())].to_string(),
        }
    }

    fn integer(&mut self) -> Value {
        match self.input.below(8) {
            0 => json!(u64::MAX),
            1 => json!(NUMBERS[self.input.below(NUMBERS.len())]),
            _ => json!(INTEGERS[self.input.below(INTEGERS.len())]),
        }
    }

    /// Any JSON value, ignoring the schema.
    fn wild(&mut self, depth: u32) -> Value {
        match self.input.below(if depth > 6 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.input.byte() & 1 == 1),
            2 => json!(NUMBERS[self.input.below(NUMBERS.len())]),
            3 => Value::String(self.string()),
            4 => self.integer(),
            5 => Value::Array(
                (0..self.input.below(3))
                    .map(|_| self.wild(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = Map::new();
                for _ in 0..self.input.below(3) {
                    let k = self.string();
                    let v = self.wild(depth + 1);
                    m.insert(k, v);
                }
                Value::Object(m)
            }
        }
    }
}
