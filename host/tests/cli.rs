//! The `syshost` binary, run as a process: exit codes, output formats,
//! config errors, and a real `run` that serves and shuts down on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use syshost_test_support::{fixture_library, PluginDir};

/// A `syshost` command in a fresh working directory with a clean
/// `SYSHOST_*` environment.
fn syshost(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syshost"));
    cmd.current_dir(cwd).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("SYSHOST_") {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    syshost(cwd, args, env).output().expect("syshost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn systems_json_with_no_config_lists_all_eight_active_in_a_valid_order() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let out = run(
        cwd.path(),
        &["systems", "--json"],
        &[("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 8);
    let mut order = std::collections::BTreeMap::new();
    for row in &rows {
        for field in ["id", "version", "state", "order", "reason", "path"] {
            assert!(row.get(field).is_some(), "missing {field} in {row}");
        }
        assert_eq!(row["state"], "active", "{row}");
        order.insert(
            row["id"].as_str().unwrap().to_string(),
            row["order"].as_u64().unwrap(),
        );
    }
    for dep in ["license", "role", "permission", "group", "settings"] {
        assert!(order[dep] < order["user"]);
    }
    assert!(order["user"] < order["session"]);
    assert_eq!(rows[5]["id"], "audit");
    assert_eq!(rows[5]["reason"], "wanted by user");
    assert_eq!(rows[6]["reason"], "enabled");
    assert_eq!(rows[7]["reason"], "wanted by user");
    // The embedded default data dir was used (relative to the working dir).
    assert!(cwd.path().join("syshost-data/store").is_dir());
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let plugins = PluginDir::systems_and(&[
        fixture_library("not-a-plugin"),
        fixture_library("bad-manifest"),
    ]);
    let cwd = tempfile::tempdir().unwrap();
    let out = run(
        cwd.path(),
        &["check"],
        &[
            ("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap()),
            ("SYSHOST_ENABLE", "user,nonesuch"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("libsyshost_fixture_not_a_plugin.so: not a syshost plugin"),
        "{err}"
    );
    assert!(
        err.contains("libsyshost_fixture_bad_manifest.so: invalid manifest"),
        "{err}"
    );
    assert!(
        err.contains("enabled system 'nonesuch' was not found"),
        "{err}"
    );
    assert!(err.contains("3 problem(s) found"), "{err}");
    // `check` never opens the store.
    assert!(!cwd.path().join("syshost-data").exists());
}

#[test]
fn check_passes_on_the_real_systems() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let out = run(
        cwd.path(),
        &["check"],
        &[("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("group → license → permission → role → settings → audit → user → session"),
        "{stdout}"
    );
}

#[test]
fn graph_distinguishes_hard_and_soft_edges() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let dirs = [("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())];
    let out = run(cwd.path(), &["graph", "--dot"], &dirs);
    assert!(out.status.success());
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("\"user\" -> \"session\"") && dot.contains("dashed"),
        "{dot}"
    );
    assert!(dot.contains("\"session\" -> \"user\""), "{dot}");
    let out = run(cwd.path(), &["graph"], &dirs);
    let plain = text(&out.stdout);
    assert!(plain.contains("requires license ^0.1"), "{plain}");
    assert!(plain.contains("wants    session ^0.1"), "{plain}");
}

#[test]
fn usage_errors_exit_2_and_config_errors_exit_1_naming_the_key() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(cwd.path(), &["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(cwd.path(), &["systems", "--bogus"], &[]);
    assert_eq!(out.status.code(), Some(2));

    std::fs::write(cwd.path().join("syshost.toml"), "[http]\nport = 80\n").unwrap();
    let out = run(cwd.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown config key 'http.port'"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(cwd.path().join("syshost.toml")).unwrap();

    let out = run(cwd.path(), &["check"], &[("SYSHOST_HTTP_ADDR", "nowhere")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("http.addr") && err.contains("SYSHOST_HTTP_ADDR"),
        "{err}"
    );

    let out = run(cwd.path(), &["--config", "missing.toml", "check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.toml"));
}

/// A running `syshost run`, killed on drop if the test fails early.
struct Server {
    child: Child,
    addr: String,
    /// Log lines up to and including "listening on …".
    startup_log: String,
    log: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(cwd: &Path, plugins: &PluginDir) -> Server {
    start_server_with(cwd, plugins, &[])
}

fn start_server_with(cwd: &Path, plugins: &PluginDir, extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap()),
        ("SYSHOST_HTTP_ADDR", "127.0.0.1:0"),
    ];
    env.extend_from_slice(extra_env);
    let mut child = syshost(cwd, &["run"], &env)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn syshost run");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.trim().to_string();
                    return Server {
                        child,
                        addr,
                        startup_log: seen,
                        log: rx,
                    };
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("syshost run never listened; log:\n{seen}");
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn run_serves_until_sigterm_then_shuts_down_cleanly() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let mut server = start_server(cwd.path(), &plugins);
    // An empty store gets a first administrator with a one-time password,
    // shown once in the startup log.
    assert!(
        server
            .startup_log
            .contains("created the first administrator admin@localhost with the one-time password"),
        "{}",
        server.startup_log
    );
    let (status, body) = http_get(&server.addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&server.addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");
    let (status, body) = http_get(&server.addr, "/api/v1/systems");
    assert_eq!(status, 200);
    assert_eq!(body.matches("\"state\":\"active\"").count(), 8, "{body}");

    // A second process on the same data dir is refused with a clear error.
    let out = run(
        cwd.path(),
        &["systems"],
        &[("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use by another syshost"),
        "{}",
        text(&out.stderr)
    );

    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "syshost did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let log: Vec<String> = server.log.try_iter().collect();
    let log = log.join("\n");
    assert!(
        log.contains("shutting down") && log.contains("stopped cleanly"),
        "{log}"
    );
    // The store was released: the data dir can be opened again at once.
    let out = run(
        cwd.path(),
        &["systems", "--json"],
        &[("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn admin_create(cwd: &Path, plugins: &PluginDir, email: &str, stdin: &str) -> Output {
    let mut child = syshost(
        cwd,
        &["admin", "create", "--email", email],
        &[("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn syshost admin create");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn admin_create_reads_the_password_from_stdin() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let out = admin_create(
        cwd.path(),
        &plugins,
        "Root@Example.test",
        "a long admin passphrase\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("created administrator Root@example.test"),
        "{}",
        text(&out.stdout)
    );
    let out = admin_create(
        cwd.path(),
        &plugins,
        "root@example.test",
        "another passphrase here\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("email"), "{}", text(&out.stderr));
    let out = admin_create(cwd.path(), &plugins, "other@example.test", "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no password on standard input"),
        "{}",
        text(&out.stderr)
    );
    let out = admin_create(cwd.path(), &plugins, "weak@example.test", "short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("too short"),
        "{}",
        text(&out.stderr)
    );
    // A store with accounts gets no bootstrap administrator.
    let server = start_server(cwd.path(), &plugins);
    assert!(
        !server
            .startup_log
            .contains("created the first administrator"),
        "{}",
        server.startup_log
    );
}

#[test]
fn the_first_administrator_can_come_from_the_environment() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let server = start_server_with(
        cwd.path(),
        &plugins,
        &[
            ("SYSHOST_ADMIN_EMAIL", "boss@example.test"),
            ("SYSHOST_ADMIN_PASSWORD", "the configured admin passphrase"),
        ],
    );
    assert!(
        server.startup_log.contains(
            "created the first administrator boss@example.test with the configured password"
        ),
        "{}",
        server.startup_log
    );
    assert!(!server
        .startup_log
        .contains("the configured admin passphrase"));
}

#[test]
fn import_reads_json_lines_atomically_per_batch_and_dev_seed_fills_a_store() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let env = [("SYSHOST_PLUGIN_DIRS", plugins.path().to_str().unwrap())];
    let file = cwd.path().join("users.jsonl");
    std::fs::write(
        &file,
        "# two good lines, then one the batch of two cannot take\n\
         {\"email\": \"a@example.com\", \"verified\": true}\n\
         {\"email\": \"b@example.com\", \"profile\": {\"first_name\": \"Bea\"}}\n\
         {\"email\": \"c@example.com\"}\n\
         {\"email\": \"a@example.com\"}\n",
    )
    .unwrap();
    let out = run(
        cwd.path(),
        &["import", "users.jsonl", "--batch-size", "2"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 5") && err.contains("already in use"),
        "{err}"
    );
    assert!(
        err.contains("2 user(s) in 1 earlier batch(es) were imported"),
        "{err}"
    );

    // The good rest imports; the counts add up.
    std::fs::write(&file, "{\"email\": \"c@example.com\"}\n").unwrap();
    let out = run(cwd.path(), &["import", "users.jsonl"], &env);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("imported 1 user(s) in 1 batch(es)"));

    let out = run(cwd.path(), &["import", "missing.jsonl"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot open missing.jsonl"));
    let out = run(
        cwd.path(),
        &["import", "users.jsonl", "--batch-size", "0"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));

    let out = run(
        cwd.path(),
        &["dev", "seed", "--users", "1500", "--seed", "3"],
        &env,
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("seeded 1500 user(s) (dataset 3)"));
    // The seeded store stays usable by the other offline commands.
    let mut admin = syshost(
        cwd.path(),
        &["admin", "create", "--email", "root@example.com"],
        &env,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    admin
        .stdin
        .take()
        .unwrap()
        .write_all(b"root-password-2026\n")
        .unwrap();
    assert!(admin.wait().unwrap().success());
    let out = run(cwd.path(), &["systems", "--json"], &env);
    assert!(out.status.success());
}
