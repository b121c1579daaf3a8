//! The resolved-token cache: the host's copy of the token resolver's recent
//! answers, so an authenticated request whose session has not changed needs
//! no call to the resolver.
//!
//! The resolver (the session system) decides what may be cached: an answer
//! carries [`cache_until`](syshost_plugin_api::ResolvedToken::cache_until)
//! (the first of the session's expiries and its next due `last_seen_at`
//! write), and every change to a session publishes an event the resolver's
//! manifest names in
//! [`invalidate_on`](syshost_plugin_api::TokenResolver::invalidate_on).
//! The host drops the entries of that event's session (or user, or all of
//! them) once the event's subscribers have run.
//!
//! Consistency: every invalidation bumps a generation counter, and a
//! resolution started before an invalidation is not cached, so a stale
//! answer can never outlive the event that made it stale. Entries are keyed
//! by the SHA-256 of the token, never the token itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use sha2::{Digest, Sha256};
use syshost_plugin_api::ResolvedToken;

/// The hasher of the map: its keys are SHA-256 digests, which no client
/// can choose to collide.
type Fast = foldhash::fast::RandomState;

/// At most this many resolutions are cached; a full cache first drops its
/// expired entries, then refuses new ones until entries expire or are
/// invalidated (a resolution is then asked for each time, as without cache).
pub const MAX_CACHED_RESOLUTIONS: usize = 100_000;

/// The SHA-256 digest of a token: the cache key.
pub type TokenDigest = [u8; 32];

/// The digest of `token`.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    resolved: ResolvedToken,
    until: i64,
}

/// The cache itself.
#[derive(Default)]
pub struct ResolutionCache {
    entries: RwLock<HashMap<TokenDigest, Entry, Fast>>,
    generation: AtomicU64,
}

impl ResolutionCache {
    /// The cached resolution of the token with digest `key`, if any and
    /// still valid at `now_ms`.
    pub fn get(&self, key: &TokenDigest, now_ms: i64) -> Option<ResolvedToken> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (now_ms < entry.until).then(|| entry.resolved.clone())
    }

    /// The generation to pass to [`ResolutionCache::insert`] for a
    /// resolution starting now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `resolved` for the token with digest `key` if the resolver
    /// allowed it (`cache_until` in the future, no replacement token) and
    /// nothing was invalidated since `generation` was read.
    pub fn insert(&self, key: TokenDigest, resolved: &ResolvedToken, generation: u64, now_ms: i64) {
        let Some(until) = resolved.cache_until else {
            return;
        };
        if until <= now_ms || resolved.replacement_token.is_some() {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the write lock: invalidations take it too, so none
        // can slip between this check and the insert.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= MAX_CACHED_RESOLUTIONS {
            entries.retain(|_, e| now_ms < e.until);
            if entries.len() >= MAX_CACHED_RESOLUTIONS {
                return;
            }
        }
        entries.insert(
            key,
            Entry {
                resolved: resolved.clone(),
                until,
            },
        );
    }

    /// Drops what an event with `payload` makes stale: the entries of its
    /// `session_id` string, else of its `user_id` string, else all.
    pub fn invalidate_for(&self, payload: &serde_json::Value) {
        let field = |name: &str| payload.get(name).and_then(|v| v.as_str());
        if let Some(session) = field("session_id") {
            self.retain(|r| r.session_id != session);
        } else if let Some(user) = field("user_id") {
            self.retain(|r| r.user_id != user);
        } else {
            self.clear();
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    /// Number of cached resolutions.
    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn retain(&self, keep: impl Fn(&ResolvedToken) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, e| keep(&e.resolved));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(user: &str, session: &str, until: Option<i64>) -> ResolvedToken {
        ResolvedToken {
            user_id: user.into(),
            session_id: session.into(),
            allowed_operations: None,
            replacement_token: None,
            cache_until: until,
        }
    }

    #[test]
    fn an_answer_is_reused_only_until_its_cache_until_and_only_when_allowed() {
        let cache = ResolutionCache::default();
        let (a, b, c) = (digest("token-a"), digest("token-b"), digest("token-c"));
        cache.insert(a, &answer("u1", "s1", Some(1_000)), cache.generation(), 500);
        assert_eq!(cache.get(&a, 999), Some(answer("u1", "s1", Some(1_000))));
        assert_eq!(cache.get(&a, 1_000), None, "cache_until is exclusive");
        assert_eq!(cache.get(&b, 500), None, "another token");
        // No cache_until, one already past, or a rotation: never cached.
        cache.insert(b, &answer("u1", "s2", None), cache.generation(), 500);
        cache.insert(c, &answer("u1", "s3", Some(500)), cache.generation(), 500);
        let mut rotated = answer("u1", "s4", Some(2_000));
        rotated.replacement_token = Some("new".into());
        cache.insert(digest("token-d"), &rotated, cache.generation(), 500);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn events_drop_their_session_or_user_or_everything_and_void_racing_resolutions() {
        let cache = ResolutionCache::default();
        let fill = |cache: &ResolutionCache| {
            for (token, user, session) in
                [("t1", "u1", "s1"), ("t2", "u1", "s2"), ("t3", "u2", "s3")]
            {
                cache.insert(
                    digest(token),
                    &answer(user, session, Some(10)),
                    cache.generation(),
                    0,
                );
            }
        };
        fill(&cache);
        cache.invalidate_for(&json!({ "user_id": "u1", "session_id": "s2" }));
        assert!(cache.get(&digest("t1"), 0).is_some());
        assert!(cache.get(&digest("t2"), 0).is_none());
        cache.invalidate_for(&json!({ "user_id": "u1" }));
        assert!(cache.get(&digest("t1"), 0).is_none());
        assert!(cache.get(&digest("t3"), 0).is_some());
        cache.invalidate_for(&json!({ "section": "session" }));
        assert!(cache.is_empty());

        // A resolution that started before an invalidation is not cached.
        fill(&cache);
        let started = cache.generation();
        cache.invalidate_for(&json!({ "session_id": "unrelated" }));
        cache.insert(digest("t4"), &answer("u3", "s4", Some(10)), started, 0);
        assert!(cache.get(&digest("t4"), 0).is_none());
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_full_cache_makes_room_from_expired_entries_only() {
        let cache = ResolutionCache::default();
        {
            let mut entries = cache.entries.write().unwrap();
            for i in 0..MAX_CACHED_RESOLUTIONS {
                let until = if i % 2 == 0 { 5 } else { 50 };
                entries.insert(
                    digest(&format!("t{i}")),
                    Entry {
                        resolved: answer("u", &format!("s{i}"), Some(until)),
                        until,
                    },
                );
            }
        }
        // At time 10 half the entries are expired: they make room.
        cache.insert(
            digest("new"),
            &answer("u", "n", Some(60)),
            cache.generation(),
            10,
        );
        assert!(cache.get(&digest("new"), 10).is_some());
        assert_eq!(cache.len(), MAX_CACHED_RESOLUTIONS / 2 + 1);
    }
}
