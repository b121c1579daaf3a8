//! Shared helpers for the black-box tests that run the real `syshost`
//! binary: against a data directory (crash, durability, backup, limits) and
//! over the HTTP API (`http.rs`, `security.rs`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

/// The first administrator every server here is started with.
pub const ADMIN_EMAIL: &str = "root@example.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple 42";

/// A `syshost` command in `cwd` with no inherited `SYSHOST_*` variables.
pub fn syshost(cwd: &Path, plugins: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syshost"));
    cmd.current_dir(cwd).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("SYSHOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("SYSHOST_PLUGIN_DIRS", plugins)
        .env("SYSHOST_HTTP_ADDR", "127.0.0.1:0")
        .env("SYSHOST_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("SYSHOST_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "100000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a one-shot `syshost` command to completion.
pub fn run(cwd: &Path, plugins: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    syshost(cwd, plugins, args, env)
        .stdin(Stdio::null())
        .output()
        .expect("run syshost")
}

/// Lossy text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `syshost run`.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Every stderr line so far (and on).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `syshost run` in `cwd` and waits until it listens.
    pub fn start(cwd: &Path, plugins: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = syshost(cwd, plugins, &["run"], env)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn syshost run");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Server { child, addr, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "syshost run never listened; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The log so far, one string.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for exit code 0.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "log:\n{}", self.log_text());
                return;
            }
            assert!(Instant::now() < deadline, "syshost did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client with a generous timeout.
pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs `req` to `/api/v1/{op}` (op = `system/operation`) and returns
/// status and JSON body.
pub fn call(c: &Client, s: &Server, op: &str, token: Option<&str>, req: &Value) -> (u16, Value) {
    try_call(c, s, op, token, req).expect("request failed")
}

/// Like [`call`] but returns transport errors (the server may be gone).
pub fn try_call(
    c: &Client,
    s: &Server,
    op: &str,
    token: Option<&str>,
    req: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    call_addr(c, &s.addr, op, token, req)
}

/// [`try_call`] against an address.
pub fn call_addr(
    c: &Client,
    addr: &str,
    op: &str,
    token: Option<&str>,
    req: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let mut b = c.post(format!("http://{addr}/api/v1/{op}")).json(req);
    if let Some(t) = token {
        b = b.bearer_auth(t);
    }
    let r = b.send()?;
    let status = r.status().as_u16();
    let text = r.text()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Logs the administrator in and returns the session token.
pub fn admin_token(c: &Client, s: &Server) -> String {
    let (status, v) = call(
        c,
        s,
        "session/login",
        None,
        &serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    );
    assert_eq!(status, 200, "{v}");
    v["session_token"].as_str().expect("token").to_string()
}

/// The data directory `syshost` uses in `cwd` by default.
pub fn data_dir(cwd: &Path) -> PathBuf {
    cwd.join("syshost-data")
}

// ---------------------------------------------------------------------------
// HTTP API helpers (http.rs, security.rs)
// ---------------------------------------------------------------------------

use reqwest::blocking::Response;
use reqwest::StatusCode;
use serde_json::json;
use syshost_test_support::PluginDir;

/// Starts `syshost run` in `cwd` with the libraries of `plugins`, the
/// documented auth rate limit (20 per minute) unless `extra_env` sets
/// another, and `extra_env`; waits until it listens.
pub fn start(cwd: &Path, plugins: &PluginDir, extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "20")];
    env.extend_from_slice(extra_env);
    Server::start(cwd, plugins.path(), &env)
}

impl Server {
    /// The server's origin (`http://host:port`).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops like [`Server::stop`] and returns everything it logged.
    pub fn stop_with_log(self) -> String {
        let log = self.log.clone();
        self.stop();
        // The reader thread lets go of the log at the end of the output.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&log) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = log.lock().unwrap().join("\n");
        text
    }
}

/// Status, headers and JSON body (a string when it is not JSON).
pub fn body(r: Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

/// Asserts the `{"error": {"code", "message"}}` shape and returns the code.
pub fn error_code(status: StatusCode, v: &Value) -> String {
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status} {v}"
    );
    assert!(v["error"]["message"].is_string(), "{v}");
    v["error"]["code"].as_str().expect("error code").to_string()
}

/// POSTs `req` as JSON, with `token` as Bearer when given.
pub fn post(c: &Client, s: &Server, path: &str, token: Option<&str>, req: &Value) -> Response {
    let mut b = c.post(s.url(path)).json(req);
    if let Some(t) = token {
        b = b.bearer_auth(t);
    }
    b.send().unwrap()
}

/// Logs in (asserting the cookie it sets) and returns the token.
pub fn login(c: &Client, s: &Server, email: &str, password: &str) -> String {
    let (status, headers, v) = body(post(
        c,
        s,
        "/api/v1/session/login",
        None,
        &json!({"email": email, "password": password}),
    ));
    assert_eq!(status, 200, "{v}");
    let token = v["session_token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 64, "{v}");
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_string())
        .find(|c| c.starts_with("syshost_session="))
        .expect("login sets the session cookie");
    assert_eq!(
        cookie,
        format!("syshost_session={token}; HttpOnly; SameSite=Lax; Path=/")
    );
    token
}

/// Every POST path of the OpenAPI document with its access rule.
pub fn operations(c: &Client, s: &Server) -> Vec<(String, String)> {
    let (status, _, doc) = body(c.get(s.url("/api/openapi.json")).send().unwrap());
    assert_eq!(status, 200);
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if let Some(post) = item.get("post") {
            let access = post["x-syshost-access"].to_string();
            out.push((path.clone(), access));
        }
    }
    assert!(out.len() > 40, "{out:?}");
    out
}
