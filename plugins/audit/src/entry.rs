//! Audit entries: how an event becomes one, and how entries are keyed.
//!
//! Store layout (all keys in the audit namespace):
//!
//! | key | value |
//! |---|---|
//! | `e/<id>` | the [`AuditEntry`] as JSON |
//! | `a/<actor>\0<id>` | empty: index by actor |
//! | `t/<target>\0<id>` | empty: index by target |
//!
//! `<id>` is 32 lowercase hex digits: the entry's time (ms since the Unix
//! epoch, 16 digits) then a sequence number (16 digits), so every index sorts
//! by time and a reverse range scan lists newest first.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use syshost_plugin_api::Event;

/// Primary key prefix.
pub const ENTRY_PREFIX: &str = "e/";
/// Actor index prefix.
pub const ACTOR_PREFIX: &str = "a/";
/// Target index prefix.
pub const TARGET_PREFIX: &str = "t/";
/// Separates an indexed value from the entry id in index keys.
pub const SEPARATOR: char = '\0';
/// The longest actor or target stored (characters).
pub const MAX_LABEL_CHARS: usize = 300;

/// Payload keys never copied into an entry (compared lowercased; any key
/// containing one of these words is dropped).
const SECRET_WORDS: [&str; 6] = ["password", "token", "secret", "code", "hash", "credential"];

/// One recorded security-relevant event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// 32 hex digits: time then sequence; also the paging cursor.
    pub id: String,
    /// When it happened (ms since the Unix epoch).
    pub at: i64,
    /// What happened: the event topic, e.g. `session.login_failed`.
    pub action: String,
    /// `success`, `failure` (e.g. a failed login, a plugin that failed to
    /// activate) or `denied` (refused without checking, e.g. throttled).
    pub outcome: String,
    /// Who did it: `user:<id>`, `anonymous`, `system` or `plugin:<id>`.
    pub actor: String,
    /// What it was done to: `user:<id>`, `email:<address>`, `role:<id>`,
    /// `group:<id>`, `license:<id>`, `settings:<section>`, `plugin:<id>`.
    pub target: String,
    /// Network address of the client, when the event came from a request.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// The event's payload without any field that could hold a secret.
    #[serde(default)]
    pub details: Value,
}

/// The entry id for a time and a sequence number.
pub fn entry_id(at: i64, seq: u64) -> String {
    format!("{:016x}{seq:016x}", at.max(0))
}

/// The smallest id at time `at` (inclusive lower bound of a time range).
pub fn time_floor(at: i64) -> String {
    format!("{:016x}{:016x}", at.max(0), 0)
}

/// Whether `s` has the shape of an entry id.
pub fn is_entry_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sequence part of an entry id.
pub fn seq_of(id: &str) -> Option<u64> {
    id.get(16..32).and_then(|s| u64::from_str_radix(s, 16).ok())
}

/// The primary key of an entry.
pub fn entry_key(id: &str) -> String {
    format!("{ENTRY_PREFIX}{id}")
}

/// The index key prefix for `value` under `prefix` (`a/` or `t/`).
pub fn index_prefix(prefix: &str, value: &str) -> String {
    format!("{prefix}{value}{SEPARATOR}")
}

/// A label as stored: no NUL characters, at most [`MAX_LABEL_CHARS`].
pub fn clean_label(s: &str) -> String {
    s.chars()
        .filter(|c| *c != SEPARATOR)
        .take(MAX_LABEL_CHARS)
        .collect()
}

/// Removes every object field whose name suggests a secret, recursively.
pub fn scrub(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let lower = k.to_lowercase();
                if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                    continue;
                }
                out.insert(k.clone(), scrub(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(scrub).collect()),
        other => other.clone(),
    }
}

fn str_field<'a>(payload: &'a Value, field: &str) -> Option<&'a str> {
    payload.get(field).and_then(Value::as_str)
}

fn labelled(kind: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{kind}:{id}"),
        None => kind.to_string(),
    }
}

/// Builds the entry for `event` (without its id), or `None` when the event
/// is not security-relevant.
pub fn from_event(event: &Event) -> Option<AuditEntry> {
    let p = &event.payload;
    let actor = event.actor.clone().unwrap_or_else(|| "system".to_string());
    let mut outcome = "success";
    let (actor, target) = match event.topic.as_str() {
        // A login's actor is the user who logged in.
        "session.created" => {
            let user = str_field(p, "user_id");
            (labelled("user", user), labelled("user", user))
        }
        "session.login_failed" => {
            outcome = "failure";
            (actor, labelled("email", str_field(p, "email")))
        }
        "session.login_throttled" => {
            outcome = "denied";
            (actor, labelled("email", str_field(p, "email")))
        }
        "host.plugin_failed" => {
            outcome = "failure";
            (actor, labelled("plugin", str_field(p, "plugin")))
        }
        "settings.updated" => (actor, labelled("settings", str_field(p, "section"))),
        "license.assigned" | "license.revoked" => {
            (actor, labelled("user", str_field(p, "user_id")))
        }
        topic => {
            let (system, _) = topic.split_once('.')?;
            let id = str_field(p, "user_id")
                .map(|u| ("user", u))
                .or_else(|| {
                    // `{"role": {...}}`, `{"group": {...}}`, `{"license": {...}}`.
                    p.get(system)
                        .and_then(|o| str_field(o, "id"))
                        .map(|id| (system, id))
                })
                .or_else(|| str_field(p, "id").map(|id| (system, id)));
            match id {
                Some((kind, id)) => (actor, labelled(kind, Some(id))),
                None => (actor, system.to_string()),
            }
        }
    };
    Some(AuditEntry {
        id: String::new(),
        at: event.at_unix_ms,
        action: clean_label(&event.topic),
        outcome: outcome.to_string(),
        actor: clean_label(&actor),
        target: clean_label(&target),
        client_addr: event.client_addr.as_deref().map(clean_label),
        details: scrub(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(topic: &str, payload: Value) -> Event {
        Event {
            topic: topic.into(),
            source: topic.split('.').next().unwrap().into(),
            payload,
            at_unix_ms: 5,
            actor: Some("user:admin".into()),
            client_addr: Some("192.0.2.1".into()),
        }
    }

    #[test]
    fn ids_sort_by_time_then_sequence() {
        assert!(entry_id(1, 99) < entry_id(2, 0));
        assert!(entry_id(2, 0) < entry_id(2, 1));
        assert!(is_entry_id(&entry_id(7, 3)));
        assert_eq!(seq_of(&entry_id(7, 3)), Some(3));
        assert!(!is_entry_id("zz"));
        assert_eq!(entry_id(-5, 0), time_floor(0));
    }

    #[test]
    fn secrets_are_scrubbed_recursively() {
        let v = json!({"user_id": "u", "password": "p", "nested": [{"session_token": "t", "Code": "c", "ok": 1}]});
        assert_eq!(scrub(&v), json!({"user_id": "u", "nested": [{"ok": 1}]}));
    }

    #[test]
    fn targets_and_outcomes() {
        let e = from_event(&event("role.updated", json!({"role": {"id": "editors"}}))).unwrap();
        assert_eq!(
            (e.actor.as_str(), e.target.as_str()),
            ("user:admin", "role:editors")
        );
        let e = from_event(&event(
            "user.updated",
            json!({"user_id": "u1", "changes": ["email"]}),
        ))
        .unwrap();
        assert_eq!(e.target, "user:u1");
        let e = from_event(&event("group.deleted", json!({"id": "g"}))).unwrap();
        assert_eq!(e.target, "group:g");
        let e = from_event(&event("session.login_failed", json!({"email": "a@b"}))).unwrap();
        assert_eq!(
            (e.outcome.as_str(), e.target.as_str()),
            ("failure", "email:a@b")
        );
        let e = from_event(&event("session.created", json!({"user_id": "u2"}))).unwrap();
        assert_eq!(e.actor, "user:u2");
        let e = from_event(&event(
            "license.assigned",
            json!({"license_id": "l", "user_id": "u3"}),
        ))
        .unwrap();
        assert_eq!(e.target, "user:u3");
        assert!(from_event(&event("notopic", json!({}))).is_none());
    }
}
