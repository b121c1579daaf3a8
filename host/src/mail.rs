//! The mailer plugins send through. The embedded default writes each mail as
//! a JSON file into `<data dir>/outbox/`, so no mail server is needed to
//! start; an SMTP transport is configured in a later release.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use syshost_plugin_api::{Mail, PluginError};

/// Delivers mail on behalf of plugins. Implementations must not log bodies
/// (they carry codes and links).
pub trait Mailer: Send + Sync {
    /// Delivers (or durably queues) `mail` sent by plugin `from_plugin`.
    fn send(&self, from_plugin: &str, mail: &Mail) -> Result<(), PluginError>;
}

/// Checks the fields every transport needs.
pub fn validate(mail: &Mail) -> Result<(), PluginError> {
    if mail.to.is_empty() {
        return Err(PluginError::invalid_field("to", "mail has no recipient"));
    }
    for to in &mail.to {
        let ok = to
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !to.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(PluginError::invalid_field(
                "to",
                format!("'{to}' is not a mail address"),
            ));
        }
    }
    if mail.subject.trim().is_empty() || mail.subject.contains(['\r', '\n']) {
        return Err(PluginError::invalid_field(
            "subject",
            "mail subject must be one non-empty line",
        ));
    }
    Ok(())
}

/// Writes each mail as `<unix ms>-<seq>.json` into a directory.
pub struct OutboxMailer {
    dir: PathBuf,
    seq: AtomicU64,
}

impl OutboxMailer {
    /// A mailer writing into `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        OutboxMailer {
            dir,
            seq: AtomicU64::new(0),
        }
    }
}

impl Mailer for OutboxMailer {
    fn send(&self, from_plugin: &str, mail: &Mail) -> Result<(), PluginError> {
        validate(mail)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| PluginError::internal(format!("cannot create the mail outbox: {e}")))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{seq:06}.json", crate::runtime::system_now_ms());
        let record = serde_json::json!({ "from_plugin": from_plugin, "mail": mail });
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&record)?)
            .and_then(|_| std::fs::rename(&tmp, self.dir.join(&name)))
            .map_err(|e| PluginError::internal(format!("cannot write to the mail outbox: {e}")))?;
        tracing::info!(plugin = from_plugin, kind = %mail.kind, recipients = mail.to.len(), "mail queued in outbox");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_writes_one_file_per_mail_and_rejects_bad_mail() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = OutboxMailer::new(dir.path().join("outbox"));
        let mail = Mail {
            to: vec!["a@example.test".into()],
            subject: "Hi".into(),
            text: "body".into(),
            ..Default::default()
        };
        mailer.send("user", &mail).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1);
        let bad = Mail {
            to: vec!["nobody".into()],
            ..mail.clone()
        };
        assert!(mailer
            .send("user", &bad)
            .unwrap_err()
            .message
            .contains("nobody"));
        let bad = Mail {
            subject: "a\r\nBcc: x@y".into(),
            ..mail
        };
        assert!(mailer.send("user", &bad).is_err());
    }
}
