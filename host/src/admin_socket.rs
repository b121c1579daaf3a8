//! The local admin socket: how CLI commands reach a running host that holds
//! the store lock (today: `syshost backup`).
//!
//! The socket is `<data_dir>/admin/admin.sock`. The `admin` directory is
//! created owner-only (0700) and the socket is owner-only (0600), so only
//! the account running syshost (and root) can connect; there is no other
//! authentication. A stale socket left by a killed host is replaced: the
//! host owns the data directory because it holds the store lock.
//!
//! Protocol: the client sends one JSON line (`{"command":"backup"}`); the
//! host answers one JSON line, `{"ok":true,"bytes":N}` followed by exactly
//! `N` bytes (a backup file, see [`crate::backup`]), or
//! `{"ok":false,"error":"…"}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::Host;

/// The socket path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin").join("admin.sock")
}

/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 4096;
/// A client that sends nothing for this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A request over the socket.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    command: String,
}

/// The answer header.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The running socket server; dropping it stops accepting and removes the
/// socket file.
pub struct AdminSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl AdminSocket {
    /// Binds the socket of `host`'s data directory and serves it on a
    /// background thread.
    pub fn start(host: Host) -> Result<AdminSocket, String> {
        let dir = host.data_dir().join("admin");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // An existing directory keeps its mode from before: enforce it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
        let path = socket_path(host.data_dir());
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!("removed a stale admin socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove stale {}: {e}", path.display())),
        }
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("cannot bind the admin socket {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("syshost-admin".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    match conn {
                        Ok(stream) => {
                            let host = host.clone();
                            let _ = std::thread::Builder::new()
                                .name("syshost-admin-conn".into())
                                .spawn(move || {
                                    if let Err(e) = serve(&host, stream) {
                                        tracing::warn!("admin socket client: {e}");
                                    }
                                });
                        }
                        Err(e) => tracing::warn!("admin socket accept failed: {e}"),
                    }
                }
            })
            .map_err(|e| format!("cannot start the admin socket thread: {e}"))?;
        tracing::info!(socket = %path.display(), "admin socket ready");
        Ok(AdminSocket { path, stop })
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(host: &Host, stream: UnixStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    if line.is_empty() {
        return Ok(());
    }
    let mut out = &stream;
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(r) if r.command == "backup" => match backup_bytes(host) {
            Ok(bytes) => {
                write_header(
                    &mut out,
                    &Answer {
                        ok: true,
                        bytes: Some(bytes.len() as u64),
                        error: None,
                    },
                )?;
                out.write_all(&bytes)?;
                return out.flush();
            }
            Err(e) => e,
        },
        Ok(r) => format!("unknown command '{}' (known: backup)", r.command),
        Err(e) => format!("request is not JSON {{\"command\": …}}: {e}"),
    };
    write_header(
        &mut out,
        &Answer {
            ok: false,
            bytes: None,
            error: Some(answer),
        },
    )
}

fn write_header(out: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// A backup file of `host`'s store, taken now.
pub fn backup_bytes(host: &Host) -> Result<Vec<u8>, String> {
    let trees = host
        .export_store()
        .map_err(|e| format!("cannot read the store: {e}"))?;
    crate::backup::encode(&trees, crate::runtime::system_now_ms()).map_err(|e| e.to_string())
}

/// Asks the host serving `data_dir` for a backup file.
pub fn request_backup(data_dir: &Path) -> Result<Vec<u8>, String> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path).map_err(|e| {
        format!(
            "the data directory {} is in use by a running syshost, but its admin socket {} does not answer ({e})",
            data_dir.display(),
            path.display()
        )
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(|e| e.to_string())?;
    (&stream)
        .write_all(b"{\"command\":\"backup\"}\n")
        .map_err(|e| format!("cannot talk to the admin socket: {e}"))?;
    let mut reader = BufReader::new(&stream);
    let mut header = String::new();
    reader
        .read_line(&mut header)
        .map_err(|e| format!("no answer on the admin socket: {e}"))?;
    let answer: Answer = serde_json::from_str(&header)
        .map_err(|e| format!("unreadable answer on the admin socket: {e}"))?;
    if !answer.ok {
        return Err(format!(
            "the running host refused the backup: {}",
            answer.error.unwrap_or_default()
        ));
    }
    let len = answer
        .bytes
        .ok_or("the running host's answer gave no length")?;
    let mut bytes = Vec::new();
    reader
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the backup stream broke off: {e}"))?;
    if bytes.len() as u64 != len {
        return Err(format!(
            "the backup stream broke off after {} of {len} bytes",
            bytes.len()
        ));
    }
    Ok(bytes)
}
