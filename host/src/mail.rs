//! Outbound mail: a durable queue in the host's own store, drained by a
//! background worker through `lettre`.
//!
//! `Mailer::send` only validates and enqueues (one store write), so a plugin
//! call never waits for a mail server, and a server that is down loses
//! nothing: the worker retries with exponential backoff, across restarts.
//! The transport is SMTP (`smtp://` with optional STARTTLS, `smtps://` for
//! implicit TLS, optional credentials in the URL) when configured, otherwise
//! an outbox directory of `.eml` files so no mail server is needed to start.
//! Bodies and codes are never logged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{FileTransport, Message, SmtpTransport, Transport};
use serde::{Deserialize, Serialize};
use syshost_plugin_api::{Mail, PluginError};

use crate::store::Namespace;

/// Delivers mail on behalf of plugins. Implementations must not log bodies
/// (they carry codes and links).
pub trait Mailer: Send + Sync {
    /// Durably accepts `mail` sent by plugin `from_plugin` for delivery.
    fn send(&self, from_plugin: &str, mail: &Mail) -> Result<(), PluginError>;
}

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransportConfig {
    /// An SMTP server URL, e.g. `smtp://user:pass@mail.example.com:587?tls=required`
    /// (STARTTLS), `smtps://mail.example.com` (implicit TLS) or
    /// `smtp://127.0.0.1:2525` (plain, for local relays and tests).
    Smtp(String),
    /// Write each mail as an `.eml` file into this directory.
    Outbox(PathBuf),
}

/// Mail settings for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The transport.
    pub transport: MailTransportConfig,
    /// The `From:` mailbox, e.g. `syshost <noreply@example.com>`.
    pub from: String,
    /// First retry delay; doubles per failed attempt.
    pub retry_base: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
    /// Attempts before a mail is moved to the dead-letter list.
    pub max_attempts: u32,
}

impl MailSettings {
    /// Outbox delivery into `dir` with the default sender and retry policy.
    pub fn outbox(dir: PathBuf) -> Self {
        MailSettings {
            transport: MailTransportConfig::Outbox(dir),
            from: DEFAULT_FROM.to_string(),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            max_attempts: 30,
        }
    }
}

/// The default sender.
pub const DEFAULT_FROM: &str = "syshost <noreply@localhost>";

/// Checks the fields every transport needs.
pub fn validate(mail: &Mail) -> Result<(), PluginError> {
    if mail.to.is_empty() {
        return Err(PluginError::invalid_field("to", "mail has no recipient"));
    }
    for to in &mail.to {
        if to.parse::<lettre::Address>().is_err() || to.chars().any(char::is_control) {
            return Err(PluginError::invalid_field(
                "to",
                format!("'{to}' is not a mail address"),
            ));
        }
    }
    if mail.subject.trim().is_empty() || mail.subject.chars().any(char::is_control) {
        return Err(PluginError::invalid_field(
            "subject",
            "mail subject must be one non-empty line",
        ));
    }
    Ok(())
}

/// One queued mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueuedMail {
    from_plugin: String,
    mail: Mail,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    next_attempt_ms: i64,
    #[serde(default)]
    last_error: Option<String>,
}

/// Counters for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MailStats {
    /// Mails delivered since start.
    pub delivered: u64,
    /// Failed delivery attempts since start.
    pub failed_attempts: u64,
    /// Mails given up on since start.
    pub dead: u64,
}

struct Shared {
    queue: Arc<dyn Namespace>,
    dead: Arc<dyn Namespace>,
    sealer: Sealer,
    settings: MailSettings,
    from: Mailbox,
    stop: AtomicBool,
    wake: (Mutex<bool>, Condvar),
    seq: AtomicU64,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dead_count: AtomicU64,
}

/// The durable mail queue and its delivery worker.
pub struct MailService {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl MailService {
    /// Starts the service over the host's `queue` and `dead` namespaces.
    /// Mails left in the queue by an earlier run are delivered too.
    pub fn start(
        settings: MailSettings,
        queue: Arc<dyn Namespace>,
        dead: Arc<dyn Namespace>,
        keys: Arc<dyn Namespace>,
    ) -> Result<Self, String> {
        let sealer = Sealer::load_or_create(keys.as_ref())?;
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("mail.from '{}' is not a mailbox: {e}", settings.from))?;
        let transport = build_transport(&settings.transport)?;
        match &settings.transport {
            MailTransportConfig::Smtp(url) => {
                tracing::info!(server = %redact_url(url), "mail is delivered over SMTP")
            }
            MailTransportConfig::Outbox(dir) => tracing::info!(
                outbox = %dir.display(),
                "no SMTP server configured: mail is written as .eml files to the outbox"
            ),
        }
        let shared = Arc::new(Shared {
            queue,
            dead,
            sealer,
            settings,
            from,
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
            seq: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            dead_count: AtomicU64::new(0),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("syshost-mail".into())
            .spawn(move || worker_loop(&worker_shared, &transport))
            .map_err(|e| format!("cannot start the mail worker: {e}"))?;
        Ok(MailService {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Delivery counters since start.
    pub fn stats(&self) -> MailStats {
        MailStats {
            delivered: self.shared.delivered.load(Ordering::SeqCst),
            failed_attempts: self.shared.failed_attempts.load(Ordering::SeqCst),
            dead: self.shared.dead_count.load(Ordering::SeqCst),
        }
    }

    /// How many mails wait for delivery.
    pub fn pending(&self) -> usize {
        self.shared
            .queue
            .scan(b"", None, false, usize::MAX)
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Stops the worker (queued mail stays queued for the next start).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.notify();
        let handle = match self.worker.lock() {
            Ok(mut w) => w.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for MailService {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Mailer for MailService {
    fn send(&self, from_plugin: &str, mail: &Mail) -> Result<(), PluginError> {
        validate(mail)?;
        // Build once now so a mail that can never be sent is refused to the
        // plugin instead of sitting in the queue.
        build_message(&self.shared.from, mail)
            .map_err(|e| PluginError::invalid(format!("mail cannot be built: {e}")))?;
        let now = crate::runtime::system_now_ms();
        let seq = self.shared.seq.fetch_add(1, Ordering::SeqCst);
        let key = format!("{:016x}-{seq:08x}-{:08x}", now.max(0), std::process::id());
        let entry = QueuedMail {
            from_plugin: from_plugin.to_string(),
            mail: mail.clone(),
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
        };
        let bytes = self.shared.sealer.seal(&serde_json::to_vec(&entry)?)?;
        self.shared
            .queue
            .put(key.as_bytes(), &bytes)
            .map_err(|e| PluginError::storage(e.to_string()))?;
        tracing::info!(plugin = from_plugin, kind = %mail.kind, recipients = mail.to.len(), "mail queued");
        self.shared.notify();
        Ok(())
    }
}

/// Encrypts queued mail at rest: mail bodies carry one-time codes and
/// links, and the queue lives in the data directory. ChaCha20 keystream
/// under a random per-installation key (kept in the host namespace
/// `mail_key`) with a random 64-bit nonce per write; stored as
/// `b"SM1" ‖ nonce ‖ ciphertext`. This keeps secrets out of the store's
/// files in plain text (copies, backups, greps); it does not protect against
/// someone who holds the whole data directory, key included.
pub(crate) struct Sealer {
    key: [u8; 32],
}

const SEALED_MAGIC: &[u8] = b"SM1";
const MAIL_KEY: &[u8] = b"mail_queue_key";

impl Sealer {
    /// Loads the installation's key, or creates and stores one.
    pub(crate) fn load_or_create(keys: &dyn Namespace) -> Result<Self, String> {
        match keys.get(MAIL_KEY).map_err(|e| e.to_string())? {
            Some(bytes) => {
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| "the stored mail queue key is damaged".to_string())?;
                Ok(Sealer { key })
            }
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| format!("the OS random generator failed: {e}"))?;
                keys.put(MAIL_KEY, &key).map_err(|e| e.to_string())?;
                Ok(Sealer { key })
            }
        }
    }

    fn keystream(&self, nonce: u64, data: &mut [u8]) {
        use chacha20::rand_core::{Rng, SeedableRng};
        let mut stream = chacha20::ChaCha20Rng::from_seed(self.key);
        stream.set_stream(nonce);
        let mut pad = vec![0u8; data.len()];
        stream.fill_bytes(&mut pad);
        for (byte, key) in data.iter_mut().zip(pad) {
            *byte ^= key;
        }
    }

    /// Encrypts `plain` under a fresh nonce.
    pub(crate) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, PluginError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| PluginError::internal(format!("the OS random generator failed: {e}")))?;
        let mut body = plain.to_vec();
        self.keystream(u64::from_le_bytes(nonce), &mut body);
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + 8 + body.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`Sealer::seal`] wrote; plain JSON written by older
    /// versions is returned as it is. `None`: neither.
    pub(crate) fn open(&self, stored: &[u8]) -> Option<Vec<u8>> {
        if stored.first() == Some(&b'{') {
            return Some(stored.to_vec());
        }
        let rest = stored.strip_prefix(SEALED_MAGIC)?;
        let (nonce, body) = rest.split_at_checked(8)?;
        let nonce = u64::from_le_bytes(nonce.try_into().ok()?);
        let mut body = body.to_vec();
        self.keystream(nonce, &mut body);
        Some(body)
    }
}

impl Shared {
    /// The queue entry as stored (sealed), `None` when it cannot be.
    fn seal_entry(&self, entry: &QueuedMail) -> Option<Vec<u8>> {
        let json = serde_json::to_vec(entry).ok()?;
        self.sealer.seal(&json).ok()
    }

    fn notify(&self) {
        let (lock, cvar) = &self.wake;
        if let Ok(mut woken) = lock.lock() {
            *woken = true;
            cvar.notify_all();
        }
    }

    fn wait(&self, timeout: Duration) {
        let (lock, cvar) = &self.wake;
        if let Ok(mut woken) = lock.lock() {
            if !*woken {
                if let Ok((guard, _)) = cvar.wait_timeout(woken, timeout) {
                    woken = guard;
                } else {
                    return;
                }
            }
            *woken = false;
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.settings
            .retry_base
            .saturating_mul(factor)
            .min(self.settings.retry_max)
    }
}

enum Transporter {
    Smtp(SmtpTransport),
    Outbox(FileTransport, PathBuf),
}

fn build_transport(config: &MailTransportConfig) -> Result<Transporter, String> {
    match config {
        MailTransportConfig::Smtp(url) => SmtpTransport::from_url(url)
            .map(|b| Transporter::Smtp(b.timeout(Some(Duration::from_secs(30))).build()))
            .map_err(|e| format!("mail.smtp_url '{}' is not usable: {e}", redact_url(url))),
        MailTransportConfig::Outbox(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the mail outbox {}: {e}", dir.display()))?;
            Ok(Transporter::Outbox(FileTransport::new(dir), dir.clone()))
        }
    }
}

/// Hides the password of `scheme://user:password@host`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn build_message(from: &Mailbox, mail: &Mail) -> Result<Message, String> {
    let mut builder = Message::builder().from(from.clone()).subject(&mail.subject);
    for to in &mail.to {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|e| format!("bad recipient '{to}': {e}"))?;
        builder = builder.to(mailbox);
    }
    let result = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(mail.text.clone()),
        ),
    };
    result.map_err(|e| e.to_string())
}

fn deliver(shared: &Shared, transport: &Transporter, mail: &Mail) -> Result<(), String> {
    let message = build_message(&shared.from, mail)?;
    match transport {
        Transporter::Smtp(smtp) => smtp.send(&message).map(|_| ()).map_err(|e| e.to_string()),
        Transporter::Outbox(file, dir) => file
            .send(&message)
            .map(|id| tracing::info!(file = %dir.join(format!("{id}.eml")).display(), "mail written to the outbox"))
            .map_err(|e| e.to_string()),
    }
}

fn worker_loop(shared: &Shared, transport: &Transporter) {
    while !shared.stop.load(Ordering::SeqCst) {
        let next_due = drain_due(shared, transport);
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let now = crate::runtime::system_now_ms();
        let sleep = match next_due {
            Some(due) if due > now => Duration::from_millis((due - now) as u64),
            Some(_) => Duration::from_millis(0),
            None => Duration::from_secs(60),
        };
        shared.wait(sleep.min(Duration::from_secs(60)));
    }
}

/// Delivers every due mail; returns when the next pending one is due.
fn drain_due(shared: &Shared, transport: &Transporter) -> Option<i64> {
    let entries = match shared.queue.scan(b"", None, false, 1_000) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!("reading the mail queue failed: {e}");
            return Some(crate::runtime::system_now_ms() + 1_000);
        }
    };
    let mut next_due: Option<i64> = None;
    for (key, bytes) in entries {
        if shared.stop.load(Ordering::SeqCst) {
            return next_due;
        }
        let opened = shared.sealer.open(&bytes);
        let Some(Ok(mut entry)) = opened.map(|b| serde_json::from_slice::<QueuedMail>(&b)) else {
            tracing::error!("dropping an unreadable mail queue entry");
            let _ = shared.dead.put(&key, &bytes);
            let _ = shared.queue.delete(&key);
            continue;
        };
        let now = crate::runtime::system_now_ms();
        if entry.next_attempt_ms > now {
            next_due =
                Some(next_due.map_or(entry.next_attempt_ms, |d| d.min(entry.next_attempt_ms)));
            continue;
        }
        match deliver(shared, transport, &entry.mail) {
            Ok(()) => {
                shared.delivered.fetch_add(1, Ordering::SeqCst);
                tracing::info!(plugin = %entry.from_plugin, kind = %entry.mail.kind, attempts = entry.attempts + 1, "mail delivered");
                if let Err(e) = shared.queue.delete(&key) {
                    tracing::error!("removing a delivered mail from the queue failed: {e}");
                }
            }
            Err(error) => {
                shared.failed_attempts.fetch_add(1, Ordering::SeqCst);
                entry.attempts += 1;
                entry.last_error = Some(error.clone());
                if entry.attempts >= shared.settings.max_attempts {
                    shared.dead_count.fetch_add(1, Ordering::SeqCst);
                    tracing::error!(plugin = %entry.from_plugin, kind = %entry.mail.kind, attempts = entry.attempts, "giving up on a mail: {error}");
                    if let Some(bytes) = shared.seal_entry(&entry) {
                        let _ = shared.dead.put(&key, &bytes);
                    }
                    let _ = shared.queue.delete(&key);
                } else {
                    let delay = shared.backoff(entry.attempts);
                    entry.next_attempt_ms =
                        now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                    tracing::warn!(plugin = %entry.from_plugin, kind = %entry.mail.kind, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, "mail delivery failed: {error}");
                    if let Some(bytes) = shared.seal_entry(&entry) {
                        let _ = shared.queue.put(&key, &bytes);
                    }
                    next_due = Some(
                        next_due.map_or(entry.next_attempt_ms, |d| d.min(entry.next_attempt_ms)),
                    );
                }
            }
        }
    }
    next_due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_mail_is_sealed_with_a_stored_key() {
        use crate::store::{SledStore, Store};
        let store = SledStore::temporary().unwrap();
        let keys = store.host_namespace("mail_key").unwrap();
        let sealer = Sealer::load_or_create(keys.as_ref()).unwrap();
        let plain = br#"{"text": "Code: ABCD-EFGH"}"#;
        let sealed = sealer.seal(plain).unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"ABCD-EFGH"));
        assert_ne!(
            sealer.seal(plain).unwrap(),
            sealed,
            "a fresh nonce per write"
        );
        // The same key is found again; older plain entries still open.
        let again = Sealer::load_or_create(keys.as_ref()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), plain);
        assert_eq!(again.open(plain).unwrap(), plain);
        assert!(again.open(b"garbage").is_none());
        assert!(again.open(b"SM1abc").is_none());
    }

    #[test]
    fn validation_rejects_bad_addresses_and_header_injection() {
        let mail = Mail {
            to: vec!["a@example.test".into()],
            subject: "Hi".into(),
            text: "body".into(),
            ..Default::default()
        };
        validate(&mail).unwrap();
        let bad = Mail {
            to: vec!["nobody".into()],
            ..mail.clone()
        };
        assert!(validate(&bad).unwrap_err().message.contains("nobody"));
        let bad = Mail {
            subject: "a\r\nBcc: x@y".into(),
            ..mail.clone()
        };
        assert!(validate(&bad).is_err());
        let bad = Mail { to: vec![], ..mail };
        assert!(validate(&bad).is_err());
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("smtp://user:secret@mail.example.com:587"),
            "smtp://user:***@mail.example.com:587"
        );
        assert_eq!(redact_url("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }
}
