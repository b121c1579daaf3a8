//! The real `syshost run` binary as a test server ([`WebServer`]): its own
//! data directory, mail to a real SMTP sink, a known first administrator,
//! and a dependency-free HTTP/1.1 client for API and form requests.
//!
//! Tests that start it live in `host/tests/` because only there cargo
//! provides the binary's path (`env!("CARGO_BIN_EXE_syshost")`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::{PluginDir, SmtpSink};

/// A running `syshost run` process with its own data directory; killed on drop.
pub struct WebServer {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
}

impl WebServer {
    /// The first administrator's address (created on the empty store).
    pub const ADMIN_EMAIL: &'static str = "root@example.test";
    /// The first administrator's password.
    pub const ADMIN_PASSWORD: &'static str = "correct horse battery staple 42";

    /// Starts `bin run` on a free port with a fresh data directory, the
    /// plugins in `plugins`, mail to `smtp`, the first administrator above,
    /// and `extra_env` (`SYSHOST_*` variables); waits until it listens.
    pub fn start(
        bin: &Path,
        plugins: &PluginDir,
        smtp: &SmtpSink,
        extra_env: &[(&str, &str)],
    ) -> WebServer {
        let data = tempfile::tempdir().expect("data dir");
        let mut cmd = Command::new(bin);
        cmd.current_dir(data.path()).arg("run");
        for (key, _) in std::env::vars() {
            if key.starts_with("SYSHOST_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SYSHOST_PLUGIN_DIRS", plugins.path())
            .env("SYSHOST_DATA_DIR", data.path().join("data"))
            .env("SYSHOST_HTTP_ADDR", "127.0.0.1:0")
            .env("SYSHOST_SMTP_URL", smtp.url())
            .env("SYSHOST_ADMIN_EMAIL", Self::ADMIN_EMAIL)
            .env("SYSHOST_ADMIN_PASSWORD", Self::ADMIN_PASSWORD)
            // Browser tests log in and submit forms quickly from one address.
            .env("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "1000");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => WebServer {
                child,
                addr,
                log,
                _data: data,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let seen = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                panic!("syshost run never listened; log:\n{seen}");
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// A raw HTTP/1.1 request (no client library): returns the status, the
    /// headers (lower-cased names) and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body).expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    }

    /// Calls `POST /api/v1/{system}/{op}` with a bearer token (or none).
    pub fn api(
        &self,
        token: Option<&str>,
        system: &str,
        op: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let (status, _, text) = self.request(
            "POST",
            &format!("/api/v1/{system}/{op}"),
            &headers,
            body.to_string().as_bytes(),
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Logs in over the API and returns the bearer token.
    pub fn api_login(&self, email: &str, password: &str) -> String {
        let (status, body) = self.api(
            None,
            "session",
            "login",
            serde_json::json!({ "email": email, "password": password }),
        );
        assert_eq!(status, 200, "login of {email} failed: {body}");
        body["session_token"]
            .as_str()
            .expect("session_token")
            .to_string()
    }

    /// Changes top-level keys of a settings section as the first
    /// administrator (for example `("user", {"self_registration": true})`).
    pub fn update_settings(&self, section: &str, changes: serde_json::Value) {
        let token = self.api_login(Self::ADMIN_EMAIL, Self::ADMIN_PASSWORD);
        let (status, current) = self.api(
            Some(&token),
            "settings",
            "get",
            serde_json::json!({ "section": section }),
        );
        assert_eq!(status, 200, "settings get failed: {current}");
        let mut document = current["document"].clone();
        if let (Some(doc), Some(changes)) = (document.as_object_mut(), changes.as_object()) {
            for (k, v) in changes {
                doc.insert(k.clone(), v.clone());
            }
        }
        let (status, body) = self.api(
            Some(&token),
            "settings",
            "put",
            serde_json::json!({ "section": section, "document": document }),
        );
        assert_eq!(status, 200, "settings put failed: {body}");
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
