//! The resolved-token cache: the sessions the last resolutions found, by
//! token hash, so that a resolution that changes nothing reads no key.
//!
//! An entry is a copy of the stored [`SessionRecord`] and is exact: every
//! write of this system to a session (end, rotation, `last_seen_at`,
//! restriction) calls [`TokenCache::forget`] for its token hash after the
//! write committed, and an entry is only stored by a reader whose store
//! reads started after the last `forget` ([`TokenCache::generation`]), so a
//! read racing an end or a change is never cached. Only this system writes
//! its namespace, and one process holds the store, so nothing else can make
//! an entry stale. Expiry is still checked on every resolution against the
//! entry and the current settings; the idle bookkeeping is unchanged
//! (`last_seen_at` is written when it is [`crate::LAST_SEEN_GRANULARITY_MS`]
//! old, which sends the resolution to the store).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::model::SessionRecord;

/// Entries kept at most; when full, the cache starts over (ended and
/// expired sessions leave it only through `forget` or that reset).
pub const MAX_ENTRIES: usize = 50_000;

/// Resolved sessions by token hash (see the module documentation).
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, Arc<SessionRecord>>>,
    generation: AtomicU64,
}

impl TokenCache {
    /// The cached session of `token_hash`, if any.
    pub fn get(&self, token_hash: &str) -> Option<Arc<SessionRecord>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token_hash)
            .cloned()
    }

    /// The current generation; take it before reading the store for an
    /// entry to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `record` (read or written after `generation` was taken)
    /// unless a [`forget`](Self::forget) happened since.
    pub fn insert(&self, generation: u64, record: SessionRecord) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(record.token_hash.clone(), Arc::new(record));
    }

    /// Drops the entry of `token_hash`; call it after every committed write
    /// to that session (or its token).
    pub fn forget(&self, token_hash: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(token_hash);
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str) -> SessionRecord {
        SessionRecord {
            id: "s".into(),
            user_id: "u".into(),
            token_hash: hash.into(),
            created_at: 0,
            last_seen_at: 0,
            expires_at: 1,
            client_addr: None,
            restricted: false,
            rotate: false,
        }
    }

    #[test]
    fn a_read_older_than_a_forget_is_not_cached() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.forget("other");
        cache.insert(before, record("h"));
        assert!(cache.get("h").is_none());
        cache.insert(cache.generation(), record("h"));
        assert_eq!(cache.get("h").unwrap().token_hash, "h");
        cache.forget("h");
        assert!(cache.get("h").is_none() && cache.is_empty());
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = TokenCache::default();
        for i in 0..MAX_ENTRIES {
            cache.insert(cache.generation(), record(&i.to_string()));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert(cache.generation(), record("last"));
        assert_eq!(cache.len(), 1);
        assert!(cache.get("last").is_some());
    }
}
