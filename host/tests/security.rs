//! Security promises, checked black-box against the real `syshost run`
//! binary with the real system plugins over HTTP: no user enumeration
//! (answers and timing), no secret in logs, errors, exports or the data
//! directory, no session fixation, the documented cookie flags, and the
//! authorization matrix of every operation the OpenAPI document lists.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};
use syshost_test_support::{code_in, PluginDir, SmtpSink};

/// POSTs and returns status and body only.
fn call(
    c: &Client,
    s: &Server,
    path: &str,
    token: Option<&str>,
    req: &Value,
) -> (StatusCode, Value) {
    let (status, _, v) = body(post(c, s, path, token, req));
    (status, v)
}

/// POSTs and asserts 200.
fn ok(c: &Client, s: &Server, path: &str, token: Option<&str>, req: &Value) -> Value {
    let (status, v) = call(c, s, path, token, req);
    assert_eq!(status, 200, "{path} {req}: {v}");
    v
}

/// The tests of this file run one at a time, so that the timing
/// measurement does not compete with the other servers for the CPU.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds the i-th request payload of a measurement.
type Payloads<'a> = Box<dyn Fn(usize) -> Value + 'a>;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One interleaved measurement: 50 requests for known addresses and 50 for
/// unknown ones, alternating. Returns (known median, unknown median), after
/// asserting that every pair of answers is identical in status and body.
fn measure(
    c: &Client,
    s: &Server,
    path: &str,
    known: &dyn Fn(usize) -> Value,
    unknown: &dyn Fn(usize) -> Value,
) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..50 {
        let mut answers = Vec::new();
        // Alternate which one goes first, so drift hits both alike.
        let order: [(bool, Value); 2] = if i % 2 == 0 {
            [(true, known(i)), (false, unknown(i))]
        } else {
            [(false, unknown(i)), (true, known(i))]
        };
        for (is_known, req) in order {
            let started = Instant::now();
            let (status, v) = call(c, s, path, None, &req);
            let took = started.elapsed();
            // An answer may echo the address it was given; nothing else.
            let address = req["email"].as_str().unwrap_or_default();
            let v: Value =
                serde_json::from_str(&v.to_string().replace(address, "<address>")).unwrap();
            if is_known {
                a.push(took);
            } else {
                b.push(took);
            }
            answers.push((status, v));
        }
        assert_eq!(answers[0], answers[1], "{path}: answers differ");
    }
    (median(a), median(b))
}

fn relative_difference(a: Duration, b: Duration) -> f64 {
    let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
    (a - b).abs() / a.min(b)
}

#[test]
fn login_register_and_reset_do_not_reveal_whether_an_address_has_an_account() {
    let _serial = serial();
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let s = start(
        cwd.path(),
        &plugins,
        &[("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "100000")],
    );
    let c = client();
    let admin = login(&c, &s, ADMIN_EMAIL, ADMIN_PASSWORD);
    ok(
        &c,
        &s,
        "/api/v1/settings/put",
        Some(&admin),
        &json!({"section": "user", "document": {"self_registration": true}}),
    );
    // Stay below the per-account login throttle: every address fails at
    // most 10 times (15 accounts and 15 unknown addresses for up to 3
    // rounds of 50).
    ok(
        &c,
        &s,
        "/api/v1/settings/put",
        Some(&admin),
        &json!({"section": "session", "document": {"lockout_threshold": 20}}),
    );
    let known_addr = |i: usize| format!("member{}@example.test", i % 15);
    for i in 0..15 {
        ok(
            &c,
            &s,
            "/api/v1/user/create",
            Some(&admin),
            &json!({"email": known_addr(i), "password": "a members' passphrase", "verified": true}),
        );
    }
    // Warm up every path once.
    for path in [
        "session/login",
        "user/register",
        "user/request_password_reset",
    ] {
        let _ = call(
            &c,
            &s,
            &format!("/api/v1/{path}"),
            None,
            &json!({"email": "warmup@example.test", "password": "warm up passphrase 1"}),
        );
    }
    let mut report = BTreeMap::new();
    let fresh = AtomicUsize::new(0);
    let known_logins = AtomicUsize::new(0);
    let unknown_logins = AtomicUsize::new(0);
    let cases: [(&str, Payloads, Payloads); 3] = [
        (
            "/api/v1/session/login",
            Box::new(|_| {
                let n = known_logins.fetch_add(1, Ordering::Relaxed) / 10;
                json!({"email": known_addr(n), "password": "not the passphrase"})
            }),
            Box::new(|_| {
                let n = unknown_logins.fetch_add(1, Ordering::Relaxed) / 10;
                json!({"email": format!("stranger{n}@example.test"), "password": "not the passphrase"})
            }),
        ),
        (
            "/api/v1/user/register",
            Box::new(|i| {
                json!({"email": known_addr(i), "password": "a new members' passphrase",
                                "profile": {"first_name": "Max", "last_name": "Muster"}})
            }),
            // A new address every time, also across rounds.
            Box::new(|_| {
                json!({"email": format!("newcomer{}@example.test", fresh.fetch_add(1, Ordering::Relaxed)),
                                "password": "a new members' passphrase",
                                "profile": {"first_name": "Max", "last_name": "Muster"}})
            }),
        ),
        (
            "/api/v1/user/request_password_reset",
            Box::new(|i| json!({"email": known_addr(i)})),
            Box::new(|i| json!({"email": format!("nobody{i}@example.test")})),
        ),
    ];
    for (path, known, unknown) in &cases {
        // Timing on a shared machine is noisy: a real difference shows in
        // every round, noise rarely in three in a row.
        let mut rounds = Vec::new();
        for _ in 0..3 {
            let (k, u) = measure(&c, &s, path, known.as_ref(), unknown.as_ref());
            rounds.push((k, u, relative_difference(k, u)));
            if relative_difference(k, u) < 0.10 {
                break;
            }
        }
        let best = rounds.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
        report.insert(*path, format!("{rounds:?}"));
        assert!(
            best < 0.10,
            "{path}: median latency differs by more than 10 % between known and unknown addresses: {rounds:?}"
        );
    }
    eprintln!("enumeration timing (known median, unknown median, difference): {report:#?}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_never_reach_the_log_errors_exports_or_the_data_directory() {
    let _serial = serial();
    let sink = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let mut secrets: Vec<String> = vec![ADMIN_PASSWORD.to_string()];
    let s = start(
        cwd.path(),
        &plugins,
        &[
            ("SYSHOST_SMTP_URL", &sink.url()),
            ("SYSHOST_LOG", "debug"),
            ("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "1000"),
        ],
    );
    let c = client();
    // Answers that must not carry a secret (everything but the login
    // answers, which hand out the session token by design).
    let mut answers: Vec<Value> = Vec::new();
    let mut check = |status: StatusCode, v: Value| {
        answers.push(json!({"status": status.as_u16(), "body": v}));
    };
    let admin = login(&c, &s, ADMIN_EMAIL, ADMIN_PASSWORD);
    secrets.push(admin.clone());
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/settings/put",
        Some(&admin),
        &json!({"section": "user", "document": {"self_registration": true}}),
    );
    check(st, v);

    // Register and confirm.
    let first = "Registration Passphrase 1";
    secrets.push(first.into());
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/register",
        None,
        &json!({"email": "sam@example.test", "password": first,
                "profile": {"first_name": "Sam", "last_name": "Secret"}}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);
    let code = code_in(&sink.wait_for_to("sam@example.test", 1, Duration::from_secs(20)));
    secrets.push(code.clone());
    // A wrong code first: the error must not echo it.
    let wrong_code = "ZZZZ-ZZZZ";
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/confirm_email",
        None,
        &json!({"email": "sam@example.test", "code": wrong_code}),
    );
    assert_eq!(st, 400, "{v}");
    assert!(!v.to_string().contains(wrong_code), "{v}");
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/confirm_email",
        None,
        &json!({"email": "sam@example.test", "code": code}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);

    // Log in (and fail once), change the password, a weak one refused.
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/session/login",
        None,
        &json!({"email": "sam@example.test", "password": "Wrong Passphrase 9"}),
    );
    assert_eq!(st, 401);
    secrets.push("Wrong Passphrase 9".into());
    check(st, v);
    let sam = login(&c, &s, "sam@example.test", first);
    secrets.push(sam.clone());
    let second = "Changed Passphrase 2";
    secrets.push(second.into());
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/change_my_password",
        Some(&sam),
        &json!({"current_password": first, "new_password": "short"}),
    );
    assert_eq!(st, 400, "{v}");
    check(st, v);
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/change_my_password",
        Some(&sam),
        &json!({"current_password": first, "new_password": second}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);

    // Reset by mail.
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/request_password_reset",
        None,
        &json!({"email": "sam@example.test"}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);
    let reset_code = code_in(&sink.wait_for_to("sam@example.test", 2, Duration::from_secs(20)));
    secrets.push(reset_code.clone());
    let third = "Reset Passphrase 3";
    secrets.push(third.into());
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/reset_password",
        None,
        &json!({"email": "sam@example.test", "code": reset_code, "new_password": third}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);
    let sam = login(&c, &s, "sam@example.test", third);
    secrets.push(sam.clone());

    // The administrator creates an account and looks at sessions.
    let created = "Admin Made Passphrase 4";
    secrets.push(created.into());
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/user/create",
        Some(&admin),
        &json!({"email": "kim@example.test", "password": created, "verified": true}),
    );
    assert_eq!(st, 200, "{v}");
    let kim_id = v["id"].as_str().unwrap().to_string();
    check(st, v);
    let kim = login(&c, &s, "kim@example.test", created);
    secrets.push(kim.clone());
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/session/list_for_user",
        Some(&admin),
        &json!({"user_id": kim_id}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);
    for who in [&sam, &kim] {
        let (st, v) = call(&c, &s, "/api/v1/session/list_mine", Some(who), &json!({}));
        check(st, v);
        let (st, v) = call(&c, &s, "/api/v1/user/export_my_data", Some(who), &json!({}));
        check(st, v);
    }
    for format in ["json", "csv"] {
        let (st, v) = call(
            &c,
            &s,
            "/api/v1/user/export",
            Some(&admin),
            &json!({"format": format}),
        );
        assert_eq!(st, 200, "{v}");
        assert!(!v.to_string().contains("argon2"), "no hash in exports: {v}");
        check(st, v);
    }
    let (st, v) = call(
        &c,
        &s,
        "/api/v1/audit/list",
        Some(&admin),
        &json!({"limit": 500}),
    );
    assert_eq!(st, 200, "{v}");
    check(st, v);
    let (st, v) = call(&c, &s, "/api/v1/session/logout", Some(&kim), &json!({}));
    check(st, v);
    // A dead token in a request: the error does not echo it.
    let (st, v) = call(&c, &s, "/api/v1/user/me", Some(&kim), &json!({}));
    assert_eq!(st, 401);
    check(st, v);
    let log = s.stop_with_log();

    // An offline administrator created from standard input.
    let offline = "Offline Admin Passphrase 5";
    secrets.push(offline.into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_syshost"))
        .current_dir(cwd.path())
        .args(["admin", "create", "--email", "ops@example.test"])
        .env("SYSHOST_PLUGIN_DIRS", plugins.path())
        .env("SYSHOST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{offline}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_output = [out.stdout, out.stderr].concat();

    assert!(
        log.contains("DEBUG"),
        "the server logged at debug level: {}",
        &log[..log.len().min(3000)]
    );
    let answers = serde_json::to_string(&answers).unwrap();
    let mut files = Vec::new();
    files_under(cwd.path(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("db")), "{files:?}");
    let data: Vec<(std::path::PathBuf, Vec<u8>)> = files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect();
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "'{secret}' in the log");
        assert!(
            !contains(&cli_output, secret),
            "'{secret}' in the CLI output"
        );
        assert!(
            !answers.contains(secret.as_str()),
            "'{secret}' in an answer"
        );
        for (file, bytes) in &data {
            assert!(!contains(bytes, secret), "'{secret}' in {}", file.display());
        }
    }
    eprintln!(
        "checked {} secrets against {} log bytes and {} files",
        secrets.len(),
        log.len(),
        data.len()
    );
}

fn set_cookies(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_token_planted_before_login_is_never_reused_and_cookies_carry_the_documented_flags() {
    let _serial = serial();
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let s = start(cwd.path(), &plugins, &[]);
    let c = client();
    let admin = login(&c, &s, ADMIN_EMAIL, ADMIN_PASSWORD);
    ok(
        &c,
        &s,
        "/api/v1/user/create",
        Some(&admin),
        &json!({"email": "vic@example.test", "password": "victim's passphrase", "verified": true}),
    );
    let whoami = |token: &str| call(&c, &s, "/api/v1/session/whoami", Some(token), &json!({}));

    // 1. A made-up token planted as the cookie: login ignores it, issues a
    //    new one, and the planted one never works.
    let planted = "ab".repeat(32);
    let r = c
        .post(s.url("/api/v1/session/login"))
        .header("cookie", format!("syshost_session={planted}"))
        .header("origin", s.origin())
        .json(&json!({"email": "vic@example.test", "password": "victim's passphrase"}))
        .send()
        .unwrap();
    let (status, headers, v) = body(r);
    // A planted (dead) cookie does not block the login: it runs
    // anonymously and the answer replaces the cookie with a new token.
    assert_eq!(status, 200, "{v}");
    let token = v["session_token"].as_str().unwrap();
    assert_ne!(token, planted);
    assert_eq!(
        set_cookies(&headers),
        [format!(
            "syshost_session={token}; HttpOnly; SameSite=Lax; Path=/"
        )]
    );
    // Any other public operation with the dead cookie runs anonymously and
    // clears it; a dead bearer token is still refused.
    let r = c
        .post(s.url("/api/v1/user/request_password_reset"))
        .header("cookie", format!("syshost_session={planted}"))
        .header("origin", s.origin())
        .json(&json!({"email": "nobody@example.test"}))
        .send()
        .unwrap();
    let (status, headers, v) = body(r);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        set_cookies(&headers),
        ["syshost_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"]
    );
    let (status, _) = call(
        &c,
        &s,
        "/api/v1/user/request_password_reset",
        Some(&planted),
        &json!({"email": "nobody@example.test"}),
    );
    assert_eq!(status, 401);
    assert_eq!(whoami(&planted).0, 401);

    // 2. An attacker's own valid session token planted in the victim's
    //    browser: the victim's login gets a fresh token, and the planted one
    //    still belongs to the attacker (it never becomes the victim's).
    let attacker = login(&c, &s, ADMIN_EMAIL, ADMIN_PASSWORD);
    let r = c
        .post(s.url("/api/v1/session/login"))
        .header("cookie", format!("syshost_session={attacker}"))
        .header("origin", s.origin())
        .json(&json!({"email": "vic@example.test", "password": "victim's passphrase"}))
        .send()
        .unwrap();
    let (status, headers, v) = body(r);
    assert_eq!(status, 200, "{v}");
    let victim = v["session_token"].as_str().unwrap().to_string();
    assert_ne!(victim, attacker);
    assert_eq!(
        set_cookies(&headers),
        [format!(
            "syshost_session={victim}; HttpOnly; SameSite=Lax; Path=/"
        )]
    );
    let (_, me) = whoami(&attacker);
    assert_eq!(me["email"], ADMIN_EMAIL, "{me}");
    let (_, me) = whoami(&victim);
    assert_eq!(me["email"], "vic@example.test", "{me}");
    // Every login is a new session with a new token.
    let again = login(&c, &s, "vic@example.test", "victim's passphrase");
    assert_ne!(again, victim);

    // Logout clears the cookie with the same attributes.
    let r = c
        .post(s.url("/api/v1/session/logout"))
        .header("cookie", format!("syshost_session={victim}"))
        .header("origin", s.origin())
        .send()
        .unwrap();
    let (status, headers, v) = body(r);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        set_cookies(&headers),
        ["syshost_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"]
    );
    assert_eq!(whoami(&victim).0, 401);
    s.stop();

    // Behind a TLS proxy: __Host- prefix and Secure; the plain name is ignored.
    let cwd = tempfile::tempdir().unwrap();
    let s = start(cwd.path(), &plugins, &[("SYSHOST_HTTP_TLS_PROXY", "true")]);
    let (status, headers, v) = body(post(
        &c,
        &s,
        "/api/v1/session/login",
        None,
        &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    ));
    assert_eq!(status, 200, "{v}");
    let token = v["session_token"].as_str().unwrap();
    assert_eq!(
        set_cookies(&headers),
        [format!(
            "__Host-syshost_session={token}; HttpOnly; SameSite=Lax; Path=/; Secure"
        )]
    );
    let r = c
        .get(s.url("/api/v1/session/whoami"))
        .header("cookie", format!("syshost_session={token}"))
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the non-prefixed cookie does not count behind TLS"
    );
    let r = c
        .get(s.url("/api/v1/session/whoami"))
        .header("cookie", format!("__Host-syshost_session={token}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(s.url("/api/v1/session/logout"))
        .header("cookie", format!("__Host-syshost_session={token}"))
        .header("origin", s.origin())
        .send()
        .unwrap();
    let (status, headers, v) = body(r);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        set_cookies(&headers),
        ["__Host-syshost_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Secure"]
    );
    s.stop();
}

/// The access rule of an operation, from `x-syshost-access`.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Public,
    Authenticated,
    Permission(String),
    SelfOrPermission(String),
    System,
}

fn rule_of(access: &Value) -> Rule {
    match access {
        Value::String(s) if s == "public" => Rule::Public,
        Value::String(s) if s == "authenticated" => Rule::Authenticated,
        Value::String(s) if s == "system" => Rule::System,
        Value::Object(o) if o.contains_key("permission") => {
            Rule::Permission(o["permission"].as_str().unwrap().to_string())
        }
        Value::Object(o) if o.contains_key("self_or_permission") => {
            Rule::SelfOrPermission(o["self_or_permission"].as_str().unwrap().to_string())
        }
        other => panic!("unknown access rule {other}"),
    }
}

/// Every read-only operation that answers the administrator's `{}`: the
/// observable state of every system (sessions excluded: using a token
/// updates its `last_seen_at`).
fn snapshot(c: &Client, s: &Server, admin: &str, reads: &[String]) -> BTreeMap<String, Value> {
    reads
        .iter()
        .map(|path| {
            let (status, v) = call(c, s, path, Some(admin), &json!({"limit": 500}));
            let mut v = if status == 200 {
                v
            } else {
                call(c, s, path, Some(admin), &json!({})).1
            };
            // The time of the answer itself is not state.
            if let Some(o) = v.as_object_mut() {
                o.remove("exported_at");
            }
            (path.clone(), v)
        })
        .collect()
}

#[test]
fn every_operation_refuses_anonymous_and_unprivileged_callers_and_serves_permitted_ones() {
    let _serial = serial();
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let s = start(
        cwd.path(),
        &plugins,
        &[("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "100000")],
    );
    let c = client();
    let admin = login(&c, &s, ADMIN_EMAIL, ADMIN_PASSWORD);
    // Public operations are then callable by anyone (registration included).
    ok(
        &c,
        &s,
        "/api/v1/settings/put",
        Some(&admin),
        &json!({"section": "user", "document": {"self_registration": true}}),
    );
    let (status, _, doc) = body(c.get(s.url("/api/openapi.json")).send().unwrap());
    assert_eq!(status, 200);
    let mut ops: Vec<(String, Rule, bool)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if let Some(op) = item.get("post") {
            let mutates = op["x-syshost-mutates"].as_bool().unwrap_or(true);
            ops.push((path.clone(), rule_of(&op["x-syshost-access"]), mutates));
        }
    }
    assert!(ops.len() > 50, "{}", ops.len());
    assert!(ops.iter().any(|(p, _, _)| p == "/api/v1/audit/list"));
    let permissions: std::collections::BTreeSet<String> = ops
        .iter()
        .filter_map(|(_, r, _)| match r {
            Rule::Permission(p) | Rule::SelfOrPermission(p) => Some(p.clone()),
            _ => None,
        })
        .collect();

    // One user without any permission, one user per permission holding only it.
    let password = "matrix member passphrase";
    let make = |email: &str, permissions: &[&str]| {
        ok(
            &c,
            &s,
            "/api/v1/user/create",
            Some(&admin),
            &json!({"email": email, "password": password, "verified": true, "permissions": permissions}),
        );
        login(&c, &s, email, password)
    };
    let plain = make("plain@example.test", &[]);
    let holders: BTreeMap<String, String> = permissions
        .iter()
        .map(|p| {
            let email = format!("{}@example.test", p.replace(['.', '_'], "-"));
            (p.clone(), make(&email, &[p.as_str()]))
        })
        .collect();
    let reads: Vec<String> = ops
        .iter()
        .filter(|(p, r, m)| !m && *r != Rule::System && !p.starts_with("/api/v1/session/"))
        .map(|(p, _, _)| p.clone())
        .collect();
    let before = snapshot(&c, &s, &admin, &reads);

    // Denied calls: anonymous on everything not public, users without the
    // permission on permission and system operations. Each with an empty
    // and with a plausible payload.
    let mut denied = 0;
    for (path, rule, _) in &ops {
        for payload in [
            json!({}),
            json!({"id": "admin", "user_id": "x", "email": "plain@example.test"}),
        ] {
            if *rule != Rule::Public {
                let (status, headers, v) = body(post(&c, &s, path, None, &payload));
                assert_eq!(status, 401, "anonymous {path}: {v}");
                assert_eq!(error_code(status, &v), "unauthenticated", "{path}");
                assert!(headers.get("www-authenticate").is_some(), "{path}");
                denied += 1;
            }
            if matches!(rule, Rule::Permission(_) | Rule::System) {
                let (status, v) = call(&c, &s, path, Some(&plain), &payload);
                assert_eq!(status, 403, "unprivileged {path}: {v}");
                assert_eq!(error_code(status, &v), "permission_denied", "{path}");
                denied += 1;
            }
            // A holder of another permission is refused the same way.
            if let Rule::Permission(p) = rule {
                let other = holders
                    .iter()
                    .find(|(q, _)| *q != p)
                    .map(|(_, t)| t)
                    .unwrap();
                let (status, v) = call(&c, &s, path, Some(other), &payload);
                assert_eq!(status, 403, "other permission {path}: {v}");
                denied += 1;
            }
        }
    }
    let after = snapshot(&c, &s, &admin, &reads);
    let changed: Vec<&String> = reads.iter().filter(|p| before[*p] != after[*p]).collect();
    assert!(changed.is_empty(), "denied calls changed {changed:?}");

    // Permitted calls: never 401/403; an empty payload may be a 4xx
    // validation error, never a 5xx.
    let mut permitted = 0;
    let mut plain = plain;
    for (path, rule, _) in &ops {
        let token = match rule {
            Rule::Public => None,
            Rule::Authenticated | Rule::SelfOrPermission(_) => Some(plain.clone()),
            Rule::Permission(p) => Some(holders[p].clone()),
            Rule::System => continue,
        };
        let (status, v) = call(&c, &s, path, token.as_deref(), &json!({}));
        assert!(
            status != 401 && status != 403 && !status.is_server_error(),
            "permitted {path} ({rule:?}): {status} {v}"
        );
        if status.is_client_error() {
            let code = error_code(status, &v);
            assert!(
                ["invalid_input", "not_found", "conflict", "rate_limited"].contains(&code.as_str()),
                "{path}: {code} {v}"
            );
        }
        if path == "/api/v1/session/logout" {
            plain = login(&c, &s, "plain@example.test", password);
        }
        permitted += 1;
    }
    // System operations are refused to every user, administrators included.
    for (path, rule, _) in &ops {
        if *rule == Rule::System {
            let (status, v) = call(&c, &s, path, Some(&admin), &json!({}));
            assert_eq!(status, 403, "{path}: {v}");
        }
    }
    eprintln!(
        "{} operations: {denied} denied calls, {permitted} permitted calls",
        ops.len()
    );
    s.stop();
}
