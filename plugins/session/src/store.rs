//! Store layout, token and id generation, and the atomic session writes.
//!
//! | key | value |
//! |---|---|
//! | `session/<id>` | [`SessionRecord`] as JSON |
//! | `token/<sha256(token) hex>` | the session id |
//! | `user/<user id>/<session id>` | empty (index of a user's sessions) |
//! | `throttle/<sha256(lowercased email) hex>` | [`ThrottleRecord`] as JSON |

use sha2::{Digest, Sha256};
use syshost_plugin_api::{BatchResult, PluginError, Store};

use crate::model::{SessionRecord, ThrottleRecord};

/// Attempts of an optimistic read-modify-write before giving up.
pub const MAX_ATTEMPTS: usize = 32;

/// `session/<id>`.
pub fn session_key(id: &str) -> String {
    format!("session/{id}")
}

/// `token/<hash>`.
pub fn token_key(hash: &str) -> String {
    format!("token/{hash}")
}

/// `user/<user id>/` (prefix of one user's index).
pub fn user_prefix(user_id: &str) -> String {
    format!("user/{user_id}/")
}

/// `user/<user id>/<session id>`.
pub fn user_key(user_id: &str, session_id: &str) -> String {
    format!("user/{user_id}/{session_id}")
}

/// `throttle/<account key>`.
pub fn throttle_key(account: &str) -> String {
    format!("throttle/{account}")
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], PluginError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| {
        PluginError::internal(format!("the operating system random generator failed: {e}"))
    })?;
    Ok(buf)
}

/// Lowercase hexadecimal encoding.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// SHA-256 of `data` as 64 lowercase hex digits.
pub fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

/// A fresh token: 32 random bytes as 64 lowercase hex digits.
pub fn new_token() -> Result<String, PluginError> {
    Ok(to_hex(&random_bytes::<32>()?))
}

/// A fresh session id: 16 random bytes as 32 lowercase hex digits.
pub fn new_session_id() -> Result<String, PluginError> {
    Ok(to_hex(&random_bytes::<16>()?))
}

/// Whether `token` looks like a token this system issues.
pub fn is_token_shaped(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `id` looks like a session id.
pub fn is_session_id_shaped(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub use syshost_plugin_api::validate::is_slug;

/// The throttle key of a login address: sha256 of the trimmed, lowercased
/// address (the same scheme for existing and unknown accounts).
pub fn account_key(email: &str) -> String {
    sha256_hex(email.trim().to_lowercase().as_bytes())
}

/// Reads a session with its raw bytes (for conditional writes).
pub fn load(store: &Store, id: &str) -> Result<Option<(Vec<u8>, SessionRecord)>, PluginError> {
    let key = session_key(id);
    match store.get(&key)? {
        None => Ok(None),
        Some(bytes) => {
            let record = serde_json::from_slice(&bytes).map_err(|e| {
                PluginError::storage(format!("stored value under {key} is not valid: {e}"))
            })?;
            Ok(Some((bytes, record)))
        }
    }
}

/// The ids of every session of `user_id` (index order).
pub fn session_ids_of(store: &Store, user_id: &str) -> Result<Vec<String>, PluginError> {
    let prefix = user_prefix(user_id);
    Ok(store
        .scan_prefix(prefix.as_bytes())?
        .into_iter()
        .filter_map(|(key, _)| {
            key.strip_prefix(prefix.as_bytes())
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .map(str::to_string)
        })
        .collect())
}

/// Every stored session of `user_id`.
pub fn sessions_of(store: &Store, user_id: &str) -> Result<Vec<SessionRecord>, PluginError> {
    let mut out = Vec::new();
    for id in session_ids_of(store, user_id)? {
        // A session removed between the scan and the read is skipped.
        if let Some((_, record)) = load(store, &id)? {
            out.push(record);
        }
    }
    Ok(out)
}

/// Stores a new session and its token and index keys in one batch.
pub fn insert(store: &Store, record: &SessionRecord) -> Result<(), PluginError> {
    let result = store
        .batch()
        .expect_absent(session_key(&record.id))
        .expect_absent(token_key(&record.token_hash))
        .put_json(session_key(&record.id), record)?
        .put(token_key(&record.token_hash), record.id.as_bytes())
        .put(user_key(&record.user_id, &record.id), b"")
        .commit()?;
    match result {
        BatchResult::Committed => Ok(()),
        // 128/256 random bits colliding: the random source is broken.
        BatchResult::PreconditionFailed(_) => Err(PluginError::internal(
            "a freshly generated session id or token already exists",
        )),
    }
}

/// Removes session `id` (record, token and index keys) atomically; returns
/// the removed record, or `None` when it did not exist.
pub fn remove(store: &Store, id: &str) -> Result<Option<SessionRecord>, PluginError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some((bytes, record)) = load(store, id)? else {
            return Ok(None);
        };
        let result = store
            .batch()
            .expect(session_key(id), &bytes)
            .delete(session_key(id))
            .delete(token_key(&record.token_hash))
            .delete(user_key(&record.user_id, id))
            .commit()?;
        if result == BatchResult::Committed {
            return Ok(Some(record));
        }
    }
    Err(busy(id))
}

/// Applies `change` to session `id` with an optimistic retry loop. `change`
/// returns `false` to leave the record as it is. Returns the record after
/// the change (`None`: the session does not exist).
pub fn modify(
    store: &Store,
    id: &str,
    mut change: impl FnMut(&mut SessionRecord) -> bool,
) -> Result<Option<SessionRecord>, PluginError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some((bytes, mut record)) = load(store, id)? else {
            return Ok(None);
        };
        if !change(&mut record) {
            return Ok(Some(record));
        }
        let result = store
            .batch()
            .expect(session_key(id), &bytes)
            .put_json(session_key(id), &record)?
            .commit()?;
        if result == BatchResult::Committed {
            return Ok(Some(record));
        }
    }
    Err(busy(id))
}

/// Replaces the token of the session stored as `bytes`/`record` with
/// `new_hash` and applies the record change, atomically. Returns whether it
/// committed (`false`: the session changed concurrently).
pub fn replace_token(
    store: &Store,
    bytes: &[u8],
    old: &SessionRecord,
    new: &SessionRecord,
) -> Result<bool, PluginError> {
    let result = store
        .batch()
        .expect(session_key(&old.id), bytes)
        .expect_absent(token_key(&new.token_hash))
        .delete(token_key(&old.token_hash))
        .put(token_key(&new.token_hash), new.id.as_bytes())
        .put_json(session_key(&new.id), new)?
        .commit()?;
    Ok(result == BatchResult::Committed)
}

/// Reads the throttle record of an account key.
pub fn load_throttle(
    store: &Store,
    account: &str,
) -> Result<Option<(Vec<u8>, ThrottleRecord)>, PluginError> {
    let key = throttle_key(account);
    match store.get(&key)? {
        None => Ok(None),
        Some(bytes) => {
            let record = serde_json::from_slice(&bytes).map_err(|e| {
                PluginError::storage(format!("stored value under {key} is not valid: {e}"))
            })?;
            Ok(Some((bytes, record)))
        }
    }
}

/// Counts one failed login of `account` at `now` (compare-and-swap loop).
pub fn record_failure(store: &Store, account: &str, now: i64) -> Result<u32, PluginError> {
    let key = throttle_key(account);
    for _ in 0..MAX_ATTEMPTS {
        let current = load_throttle(store, account)?;
        let next = ThrottleRecord {
            count: current
                .as_ref()
                .map_or(0, |(_, r)| r.count)
                .saturating_add(1),
            last_failure_at: now.max(
                current
                    .as_ref()
                    .map_or(i64::MIN, |(_, r)| r.last_failure_at),
            ),
        };
        let new_bytes = serde_json::to_vec(&next)?;
        let swapped = store.compare_and_swap(
            &key,
            current.as_ref().map(|(b, _)| b.as_slice()),
            Some(&new_bytes),
        )?;
        if swapped.is_ok() {
            return Ok(next.count);
        }
    }
    Err(PluginError::conflict(
        "too many concurrent logins for this account; try again",
    ))
}

/// Forgets the failures of `account` (after a successful login).
pub fn reset_failures(store: &Store, account: &str) -> Result<(), PluginError> {
    store.delete(throttle_key(account))?;
    Ok(())
}

fn busy(id: &str) -> PluginError {
    PluginError::conflict(format!(
        "session {id} kept changing concurrently; try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_hashes() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(account_key(" A@Example.COM "), account_key("a@example.com"));
    }

    #[test]
    fn tokens_and_ids_are_random_hex() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(is_token_shaped(&a) && is_token_shaped(&b) && a != b);
        let id = new_session_id().unwrap();
        assert!(is_session_id_shaped(&id));
        assert!(!is_token_shaped("ABC"));
        assert!(!is_session_id_shaped(&a));
    }

    #[test]
    fn slugs() {
        assert!(is_slug("u1") && is_slug("a-b_c"));
        assert!(!is_slug("") && !is_slug("A") && !is_slug("-a") && !is_slug("a/b"));
    }
}
