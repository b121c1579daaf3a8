//! Races that must hold under parallel requests over HTTP, black-box against
//! the real `syshost run` binary with the real system plugins: one account
//! per address, exact license seats, no dangling role grants, single-use
//! reset codes, and session revocation that takes effect at once.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};
use syshost_test_support::{code_in, decode_quoted_printable, PluginDir};

const ADMIN_EMAIL: &str = "root@example.test";
const ADMIN_PASSWORD: &str = "correct horse battery staple 42";
const PASSWORD: &str = "a long enough password 1";

/// A running `syshost run` (killed on drop) with its admin token.
struct Server {
    child: Child,
    addr: String,
    cwd: tempfile::TempDir,
    client: Client,
    admin: String,
    _plugins: PluginDir,
    _log: std::sync::Mutex<mpsc::Receiver<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on a free port (rate limit raised: these tests
    /// send many `auth`-throttled calls from one address) and logs in as
    /// the first administrator.
    fn start() -> Server {
        let plugins = PluginDir::systems_and(&[]);
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_syshost"));
        cmd.current_dir(cwd.path()).arg("run");
        for (key, _) in std::env::vars() {
            if key.starts_with("SYSHOST_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SYSHOST_PLUGIN_DIRS", plugins.path())
            .env("SYSHOST_HTTP_ADDR", "127.0.0.1:0")
            .env("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "100000")
            .env("SYSHOST_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("SYSHOST_ADMIN_PASSWORD", ADMIN_PASSWORD);
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn syshost run");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        let addr = loop {
            assert!(
                Instant::now() < deadline,
                "syshost run never listened; log:\n{seen}"
            );
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        break rest.trim().to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("syshost run exited; log:\n{seen}");
                }
            }
        };
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(128)
            .build()
            .unwrap();
        let mut server = Server {
            child,
            addr,
            cwd,
            client,
            admin: String::new(),
            _plugins: plugins,
            _log: std::sync::Mutex::new(rx),
        };
        server.admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD);
        server
    }

    /// `POST /api/v1/{system}/{op}`: status and JSON body.
    fn call(&self, token: Option<&str>, system: &str, op: &str, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("http://{}/api/v1/{system}/{op}", self.addr))
            .json(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// As the administrator; the call must succeed.
    fn admin(&self, system: &str, op: &str, body: Value) -> Value {
        let (status, v) = self.call(Some(&self.admin), system, op, &body);
        assert_eq!(status, 200, "{system}.{op} {body}: {v}");
        v
    }

    fn login(&self, email: &str, password: &str) -> String {
        let (status, v) = self.call(
            None,
            "session",
            "login",
            &json!({"email": email, "password": password}),
        );
        assert_eq!(status, 200, "login {email}: {v}");
        v["session_token"].as_str().unwrap().to_string()
    }

    fn create_user(&self, email: &str, password: Option<&str>) -> String {
        let mut req = json!({"email": email, "verified": true});
        if let Some(p) = password {
            req["password"] = json!(p);
        }
        self.admin("user", "create", req)["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn set_user_settings(&self, document: Value) {
        self.admin(
            "settings",
            "put",
            json!({"section": "user", "document": document}),
        );
    }

    /// The mails in the outbox addressed to `to` (decoded).
    fn mails_to(&self, to: &str) -> Vec<String> {
        let dir: PathBuf = self.cwd.path().join("syshost-data/outbox");
        let mut mails = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let text = decode_quoted_printable(&text);
            if text
                .lines()
                .any(|l| l.starts_with("To: ") && l.contains(to))
            {
                mails.push(text);
            }
        }
        mails
    }

    fn wait_for_mail(&self, to: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(m) = self.mails_to(to).pop() {
                return m;
            }
            assert!(Instant::now() < deadline, "no mail to {to} in the outbox");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `n` calls at once (all threads start together) and returns their
/// results in order.
fn parallel<T: Send + 'static>(n: usize, f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn one_account_per_address_under_100_parallel_registrations() {
    let server = Arc::new(Server::start());
    server.set_user_settings(json!({"self_registration": true}));
    // The same address in several spellings (letter case, surrounding spaces).
    let spellings = [
        "Race@Example.com",
        "race@example.com",
        "RACE@EXAMPLE.COM",
        " race@Example.COM ",
    ];
    let s = server.clone();
    let results = parallel(100, move |i| {
        s.call(
            None,
            "user",
            "register",
            &json!({
                "email": spellings[i % spellings.len()],
                "password": PASSWORD,
                "profile": {"first_name": "Race", "last_name": "Condition"},
            }),
        )
    });
    let first = &results[0];
    assert_eq!(first.0, 200, "{:?}", first.1);
    for (i, (status, body)) in results.iter().enumerate() {
        // Every registration of one spelling answers the same (the message
        // echoes the address as given).
        let same_spelling = &results[i % spellings.len()];
        assert_eq!((status, body), (&same_spelling.0, &same_spelling.1));
        assert_eq!(body["status"], first.1["status"], "{body}");
    }
    let found = server.admin("user", "list", json!({"search": "race@example.com"}));
    assert_eq!(found["total"], 1, "{found}");
    // The account works with the spelling that won, under every spelling.
    let id = found["items"][0]["id"].as_str().unwrap().to_string();
    let user = server.admin("user", "get", json!({"id": id}));
    assert_eq!(
        user["email"].as_str().unwrap().to_lowercase(),
        "race@example.com"
    );
}

#[test]
fn license_seats_stay_exact_under_parallel_assignments() {
    let server = Arc::new(Server::start());
    let max = 5;
    server.admin(
        "license",
        "create_user_license",
        json!({"id": "pro", "name": "Pro", "max_users": max}),
    );
    let users: Vec<String> = (0..24)
        .map(|i| server.create_user(&format!("seat{i}@example.test"), None))
        .collect();
    let users = Arc::new(users);

    // Round 1: 24 users race for 5 seats.
    let (s, u) = (server.clone(), users.clone());
    let results = parallel(users.len(), move |i| {
        s.call(
            Some(&s.admin),
            "license",
            "assign",
            &json!({"license_id": "pro", "user_id": u[i]}),
        )
    });
    let won: Vec<usize> = (0..users.len())
        .filter(|i| results[*i].0 == 200 && results[*i].1["assigned"] == true)
        .collect();
    for (status, body) in &results {
        assert!(
            *status == 200 || (*status == 409 && body["error"]["code"] == "conflict"),
            "{status} {body}"
        );
    }
    assert_eq!(won.len(), max, "{results:?}");
    let check = |expected: usize| {
        let seats = server.admin("license", "seats", json!({"license_id": "pro"}));
        assert_eq!(seats["items"][0]["used"], expected, "{seats}");
        let holders = server.admin(
            "license",
            "assignees",
            json!({"license_id": "pro", "limit": 500}),
        );
        assert_eq!(holders["total"], expected, "{holders}");
        holders["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let holders = check(max);
    let mut expected: Vec<String> = won.iter().map(|i| users[*i].clone()).collect();
    expected.sort();
    assert_eq!(holders, expected);

    // Round 2: the holders give their seats back while everyone else (and
    // the holders again, through the user system) grab them.
    let (s, u) = (server.clone(), users.clone());
    let won = Arc::new(won);
    let w = won.clone();
    let results = parallel(users.len() + won.len(), move |i| {
        if i < w.len() {
            let r = s.call(
                Some(&s.admin),
                "license",
                "revoke",
                &json!({"license_id": "pro", "user_id": u[w[i]]}),
            );
            ("revoke", r)
        } else {
            let user = &u[i - w.len()];
            let r = s.call(
                Some(&s.admin),
                "user",
                "assign_license",
                &json!({"id": user, "license_id": "pro"}),
            );
            ("assign", r)
        }
    });
    for (kind, (status, body)) in &results {
        assert!(
            *status == 200 || (*kind == "assign" && *status == 409),
            "{kind}: {status} {body}"
        );
    }
    let holders = check_used(&server);
    assert!(holders <= max, "{holders} seats used of {max}");
    check(holders);
}

fn check_used(server: &Server) -> usize {
    let seats = server.admin("license", "seats", json!({"license_id": "pro"}));
    seats["items"][0]["used"].as_u64().unwrap() as usize
}

#[test]
fn role_deletion_concurrent_with_assignment_leaves_no_dangling_grant() {
    let server = Arc::new(Server::start());
    let users: Vec<String> = (0..4)
        .map(|i| server.create_user(&format!("holder{i}@example.test"), None))
        .collect();
    let users = Arc::new(users);
    for round in 0..5 {
        let roles: Vec<String> = (0..6)
            .map(|i| {
                server.admin(
                    "role",
                    "create",
                    json!({"id": format!("r{round}-{i}"), "name": format!("Role {round} {i}")}),
                )["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let roles = Arc::new(roles);
        let (s, u, r) = (server.clone(), users.clone(), roles.clone());
        // At once: every user gets all the roles (set_roles), new users are
        // created holding them (the password hash widens the window between
        // the role check and the write), and every role is deleted.
        let results = parallel(u.len() * 2 + r.len(), move |i| {
            if i < u.len() {
                s.call(
                    Some(&s.admin),
                    "user",
                    "set_roles",
                    &json!({"id": u[i], "roles": *r}),
                )
            } else if i < u.len() * 2 {
                s.call(
                    Some(&s.admin),
                    "user",
                    "create",
                    &json!({
                        "email": format!("new{round}-{i}@example.test"),
                        "password": PASSWORD,
                        "roles": *r,
                    }),
                )
            } else {
                let role = &r[i - u.len() * 2];
                s.call(Some(&s.admin), "role", "delete", &json!({"id": role}))
            }
        });
        for (status, body) in &results {
            // An assignment that lost the race is refused naming the roles.
            assert!(
                *status == 200 || (*status == 400 && body["error"]["details"]["field"] == "roles"),
                "{status} {body}"
            );
        }
        let existing: Vec<String> = server.admin("role", "list", json!({"limit": 500}))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let everyone = server.admin("user", "list", json!({"limit": 500}));
        for record in everyone["items"].as_array().unwrap() {
            for role in record["roles"].as_array().unwrap() {
                assert!(
                    existing.iter().any(|e| e == role),
                    "round {round}: user holds deleted role {role}: {record}"
                );
            }
        }
        // The membership index agrees: nobody is listed under a deleted role.
        for role in roles.iter().filter(|r| !existing.contains(r)) {
            let (status, v) =
                server.call(Some(&server.admin), "user", "list", &json!({"role": role}));
            assert!(
                status != 200 || v["total"] == 0,
                "round {round}: users listed under deleted role {role}: {v}"
            );
        }
    }
}

#[test]
fn a_reset_code_works_once_under_parallel_submissions() {
    let server = Arc::new(Server::start());
    server.set_user_settings(json!({"self_password_reset": true}));
    let email = "reset@example.test";
    server.create_user(email, Some(PASSWORD));
    let (status, v) = server.call(
        None,
        "user",
        "request_password_reset",
        &json!({"email": email}),
    );
    assert_eq!(status, 200, "{v}");
    let code = code_in(&server.wait_for_mail(email));
    let s = server.clone();
    let c = code.clone();
    let results = parallel(24, move |i| {
        let password = format!("the new password number {i}");
        let r = s.call(
            None,
            "user",
            "reset_password",
            &json!({"email": email, "code": c, "new_password": password}),
        );
        (password, r)
    });
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, (status, _))| *status == 200)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, (status, body)) in &results {
        assert!(
            *status == 200 || (*status == 400 && body["error"]["details"]["field"] == "code"),
            "{status} {body}"
        );
    }
    // Only the winner's password logs in (two losers are tried: fewer
    // than the failures that would throttle the account).
    let losers: Vec<&String> = results
        .iter()
        .map(|(p, _)| p)
        .filter(|p| *p != winners[0])
        .take(2)
        .collect();
    for password in losers {
        let (status, v) = server.call(
            None,
            "session",
            "login",
            &json!({"email": email, "password": password}),
        );
        assert_eq!(status, 401, "{password}: {v}");
    }
    server.login(email, winners[0]);
}

/// After a revocation has returned, no request carrying the token succeeds,
/// while requests hammer the session from several threads.
fn revocation_takes_effect_at_once(revoke: fn(&Server, &str, &str)) {
    let server = Arc::new(Server::start());
    let email = "busy@example.test";
    let user = server.create_user(email, Some(PASSWORD));
    for _ in 0..3 {
        let token = server.login(email, PASSWORD);
        let stop = Arc::new(AtomicBool::new(false));
        let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let (s, t, stop, revoked_at) = (
                    server.clone(),
                    token.clone(),
                    stop.clone(),
                    revoked_at.clone(),
                );
                std::thread::spawn(move || {
                    let mut late_successes = Vec::new();
                    let mut calls = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let sent = Instant::now();
                        let (status, body) = s.call(Some(&t), "session", "whoami", &json!({}));
                        calls += 1;
                        let revoked = *revoked_at.lock().unwrap();
                        if status == 200 && revoked.is_some_and(|at| sent > at) {
                            late_successes.push(body);
                        } else {
                            assert!(status == 200 || status == 401, "{status} {body}");
                        }
                    }
                    (calls, late_successes)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150));
        revoke(&server, &token, &user);
        *revoked_at.lock().unwrap() = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            let (calls, late) = w.join().unwrap();
            assert!(calls > 1);
            assert!(
                late.is_empty(),
                "requests sent after the revocation succeeded: {late:?}"
            );
        }
        let (status, _) = server.call(Some(&token), "session", "whoami", &json!({}));
        assert_eq!(status, 401);
    }
}

#[test]
fn logout_takes_effect_at_once_under_concurrent_use() {
    revocation_takes_effect_at_once(|s, token, _| {
        let (status, v) = s.call(Some(token), "session", "logout", &json!({}));
        assert_eq!(status, 200, "{v}");
    });
}

#[test]
fn admin_revocation_takes_effect_at_once_under_concurrent_use() {
    revocation_takes_effect_at_once(|s, _, user| {
        let v = s.admin("session", "revoke_all_for_user", json!({"user_id": user}));
        assert!(v["revoked"].as_u64().unwrap() >= 1, "{v}");
    });
}

#[test]
fn disabling_the_account_takes_effect_at_once_under_concurrent_use() {
    revocation_takes_effect_at_once(|s, _, user| {
        s.admin(
            "user",
            "set_status",
            json!({"id": user, "status": {"state": "disabled"}}),
        );
        s.admin(
            "user",
            "set_status",
            json!({"id": user, "status": {"state": "enabled"}}),
        );
    });
}
