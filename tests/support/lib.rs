//! Shared test support: find the plugin libraries cargo built, assemble
//! plugin directories from them, and run the `syshost` binary.
//!
//! `cargo test` builds the plugin and fixture crates (dev-dependencies of the
//! test packages) as cdylibs into `target/<profile>/deps`, next to the test
//! executables; `cargo build` puts them in `target/<profile>`. We look in both.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod browser;
pub mod server;

/// The eight systems User Management consists of (`audit` comes along
/// because `user` wants it).
pub const SYSTEMS: [&str; 8] = [
    "license",
    "role",
    "permission",
    "group",
    "settings",
    "session",
    "user",
    "audit",
];

/// Directories where cargo leaves cdylibs for this test run.
pub fn build_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(parent) = dir.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
    }
    dirs
}

/// The path of the cdylib of crate `crate_name` (for example
/// `syshost-plugin-user`). Panics with a hint when it was not built.
pub fn library(crate_name: &str) -> PathBuf {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    for dir in build_dirs() {
        let candidate = dir.join(&file);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{file} was not built; run the tests with `cargo test --workspace` (searched {:?})",
        build_dirs()
    )
}

/// The library of system plugin `id`.
pub fn system_library(id: &str) -> PathBuf {
    library(&format!("syshost-plugin-{id}"))
}

/// The library of fixture `name`.
pub fn fixture_library(name: &str) -> PathBuf {
    library(&format!("syshost-fixture-{name}"))
}

/// A temporary plugin directory holding symlinks to the given libraries.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// A directory with exactly these libraries.
    pub fn with(libraries: &[PathBuf]) -> PluginDir {
        let dir = tempfile::tempdir().expect("create temp plugin dir");
        for lib in libraries {
            let name = lib.file_name().expect("library has a file name");
            link_or_copy(lib, &dir.path().join(name));
        }
        PluginDir { dir }
    }

    /// A directory with the eight systems plus these extra libraries.
    pub fn systems_and(extra: &[PathBuf]) -> PluginDir {
        let mut libs: Vec<PathBuf> = SYSTEMS.iter().map(|id| system_library(id)).collect();
        libs.extend(extra.iter().cloned());
        PluginDir::with(&libs)
    }

    /// Adds a *copy* of a library under another file name: a distinct file
    /// claiming the same plugin id (for duplicate-id tests). Symlinks would
    /// not do: discovery counts a file reached through two paths once.
    pub fn add_copy_as(&self, library: &Path, file_name: &str) {
        std::fs::copy(library, self.dir.path().join(file_name)).expect("copy plugin library");
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn link_or_copy(from: &Path, to: &Path) {
    #[cfg(unix)]
    {
        if std::os::unix::fs::symlink(from, to).is_ok() {
            return;
        }
    }
    std::fs::copy(from, to).expect("copy plugin library");
}

/// A real SMTP server process (Python's aiosmtpd) on 127.0.0.1 that stores
/// every message in a Maildir. Killed on drop.
///
/// The interpreter is `$AIOSMTPD_PYTHON`, else `target/test-venv/bin/python`
/// (created by `.ci/run`), else `python3`; it must be able to import aiosmtpd.
pub struct SmtpSink {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts a server on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(free_port())
    }

    /// Starts a server on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> SmtpSink {
        let maildir = tempfile::tempdir().expect("maildir");
        let python = smtp_python();
        let child = std::process::Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A path that does not exist yet: Python's Maildir only creates
            // its new/cur/tmp folders when it creates the Maildir itself.
            .arg(maildir.path().join("Maildir"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start aiosmtpd with {python:?}: {e}; run .ci/run once or set AIOSMTPD_PYTHON")
            });
        let mut sink = SmtpSink {
            child,
            port,
            maildir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("aiosmtpd exited with {status}; is aiosmtpd installed for {python:?}?");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not listen on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        sink
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.path().join("Maildir").join(sub)) {
                let mut paths: Vec<PathBuf> =
                    entries.filter_map(Result::ok).map(|e| e.path()).collect();
                // Maildir names start `<seconds>.M<microseconds>P…`; the
                // microseconds are not zero-padded, so sort numerically.
                paths.sort_by_key(|p| maildir_order(p));
                for p in paths {
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        out.push(decode_quoted_printable(&text));
                    }
                }
            }
        }
        out
    }

    /// Waits until at least `n` messages arrived (panics after `timeout`).
    pub fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} message(s), got {} within {timeout:?}",
                messages.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn smtp_python() -> PathBuf {
    if let Some(p) = std::env::var_os("AIOSMTPD_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

impl SmtpSink {
    /// Messages addressed to `to` (by the envelope recipient header the
    /// sink adds, or the `To:` header).
    pub fn messages_to(&self, to: &str) -> Vec<String> {
        let needle = to.to_lowercase();
        self.messages()
            .into_iter()
            .filter(|m| {
                m.lines().take_while(|l| !l.is_empty()).any(|l| {
                    let lower = l.to_lowercase();
                    (lower.starts_with("to:") || lower.starts_with("x-rcptto:"))
                        && lower.contains(&needle)
                })
            })
            .collect()
    }

    /// Waits for the `n`-th message to `to` and returns it.
    pub fn wait_for_to(&self, to: &str, n: usize, timeout: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let messages = self.messages_to(to);
            if messages.len() >= n {
                return messages[n - 1].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} message(s) to {to}, got {} within {timeout:?}",
                messages.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// The one-time code in a mail (`Code: XXXX-XXXX` in its text part).
pub fn code_in(mail: &str) -> String {
    mail.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("Code: ")?;
            let code: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (code.len() == 9).then_some(code)
        })
        .unwrap_or_else(|| panic!("no code in mail:\n{mail}"))
}

/// The `Subject:` header of a raw mail.
pub fn subject_of(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_string()
}

/// Undoes quoted-printable transfer encoding (soft line breaks and `=XX`
/// escapes) so tests can search mail bodies as plain text. Sequences that
/// are not valid escapes are kept as they are.
pub fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn maildir_order(path: &Path) -> (u64, u64, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = name.splitn(2, '.');
    let secs = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let micros = parts
        .next()
        .and_then(|rest| rest.strip_prefix('M'))
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    (secs, micros, name)
}

/// A clock for `HostBuilder::clock`: the wall clock plus an offset that a
/// test moves forward with [`TestClock::advance`] (expiry, lifetimes,
/// retention). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// A clock at the wall clock's time.
    pub fn new() -> TestClock {
        TestClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// The time source to hand to `HostBuilder::clock` (ms since the epoch).
    pub fn source(&self) -> impl Fn() -> i64 + Send + Sync + 'static {
        let offset = self.0.clone();
        move || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            now + offset.load(Ordering::SeqCst)
        }
    }
}
