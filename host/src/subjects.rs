//! The resolved-subject cache.
//!
//! Who a user is (effective permissions, roles, groups, licenses) is domain
//! knowledge the host does not have: one active plugin declares itself the
//! *subject provider* in its manifest and resolves subjects on request. The
//! host caches each answer, so a permission check on a cached subject is a
//! hash-set lookup with no cross-plugin call, and drops entries when an event
//! the provider named in `invalidate_on` is delivered.
//!
//! Consistency: every invalidation bumps a generation counter, and a
//! resolution started before an invalidation is not cached, so a stale
//! answer can never outlive the event that made it stale.
//!
//! Cost of a hit: one uncontended `RwLock` read, one hash of the borrowed
//! user id (foldhash, not SipHash: the keys are ids the host resolved, not
//! attacker-chosen map keys), an `Arc` clone, and a clock read only when
//! the entry has an expiry.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use syshost_plugin_api::Subject;

/// The hasher of the cache and of permission sets.
type Fast = foldhash::fast::RandomState;

/// A resolved subject with its permissions in a hash set.
#[derive(Debug, Clone)]
pub struct CachedSubject {
    subject: Subject,
    permissions: HashSet<String, Fast>,
    valid_until: Option<i64>,
}

impl CachedSubject {
    /// Wraps a resolved subject.
    pub fn new(subject: Subject, valid_until: Option<i64>) -> Self {
        let permissions = match &subject {
            Subject::User(u) => u.permissions.iter().cloned().collect(),
            Subject::Anonymous { permissions } => permissions.iter().cloned().collect(),
            Subject::System | Subject::Plugin { .. } => HashSet::default(),
        };
        CachedSubject {
            subject,
            permissions,
            valid_until,
        }
    }

    /// The subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Whether the subject holds `permission` (a set lookup).
    pub fn has_permission(&self, permission: &str) -> bool {
        match self.subject {
            Subject::System | Subject::Plugin { .. } => true,
            _ => self.permissions.contains(permission),
        }
    }

    /// Whether the entry must be resolved again at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.valid_until.is_some_and(|t| now_ms >= t)
    }
}

/// The cached entries: the anonymous subject and users by id.
#[derive(Default)]
struct Entries {
    anonymous: Option<Arc<CachedSubject>>,
    users: HashMap<String, Arc<CachedSubject>, Fast>,
}

impl Entries {
    fn slot(&self, user_id: Option<&str>) -> Option<&Arc<CachedSubject>> {
        match user_id {
            None => self.anonymous.as_ref(),
            Some(id) => self.users.get(id),
        }
    }

    fn len(&self) -> usize {
        self.users.len() + usize::from(self.anonymous.is_some())
    }
}

/// The cache itself.
#[derive(Default)]
pub struct SubjectCache {
    entries: RwLock<Entries>,
    generation: AtomicU64,
}

impl SubjectCache {
    /// A cached, unexpired entry for `user_id` (`None`: anonymous). The key
    /// is borrowed (no allocation); `now_ms` is called only for an entry
    /// that has an expiry.
    pub fn get(
        &self,
        user_id: Option<&str>,
        now_ms: impl FnOnce() -> i64,
    ) -> Option<Arc<CachedSubject>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.slot(user_id)?;
        if entry.valid_until.is_some() && entry.is_expired(now_ms()) {
            return None;
        }
        Some(entry.clone())
    }

    /// The generation to pass to [`SubjectCache::insert`] for a resolution
    /// starting now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `entry` for `user_id` (`None`: anonymous) unless an
    /// invalidation happened since `generation`.
    pub fn insert(&self, user_id: Option<&str>, entry: Arc<CachedSubject>, generation: u64) {
        if let Ok(mut entries) = self.entries.write() {
            // Checked under the write lock: invalidations bump the counter
            // under the same lock, so none can slip in between.
            if self.generation.load(Ordering::SeqCst) == generation {
                match user_id {
                    None => entries.anonymous = Some(entry),
                    Some(id) => {
                        entries.users.insert(id.to_string(), entry);
                    }
                }
            }
        }
    }

    /// Drops one user's entry.
    pub fn invalidate_user(&self, user_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.users.remove(user_id);
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.anonymous = None;
            entries.users.clear();
        }
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syshost_plugin_api::UserSubject;

    fn user(id: &str, perms: &[&str]) -> Arc<CachedSubject> {
        Arc::new(CachedSubject::new(
            Subject::User(UserSubject {
                id: id.into(),
                permissions: perms.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            }),
            None,
        ))
    }

    #[test]
    fn a_resolution_racing_an_invalidation_is_not_cached() {
        let cache = SubjectCache::default();
        let before = cache.generation();
        cache.invalidate_user("u1");
        cache.insert(Some("u1"), user("u1", &["a.b"]), before);
        assert!(cache.get(Some("u1"), || 0).is_none());
        let now = cache.generation();
        cache.insert(Some("u1"), user("u1", &["a.b"]), now);
        let hit = cache.get(Some("u1"), || 0).unwrap();
        assert!(hit.has_permission("a.b") && !hit.has_permission("a.c"));
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_resolution_racing_a_clear_is_not_cached() {
        let cache = SubjectCache::default();
        let before = cache.generation();
        cache.clear();
        cache.insert(
            None,
            Arc::new(CachedSubject::new(Subject::default(), None)),
            before,
        );
        cache.insert(Some("u1"), user("u1", &[]), before);
        assert!(cache.is_empty());
    }

    #[test]
    fn invalidating_one_user_keeps_the_others_and_anonymous() {
        let cache = SubjectCache::default();
        let g = cache.generation();
        cache.insert(Some("u1"), user("u1", &["a.b"]), g);
        cache.insert(Some("u2"), user("u2", &["a.c"]), g);
        cache.insert(
            None,
            Arc::new(CachedSubject::new(Subject::default(), None)),
            g,
        );
        assert_eq!(cache.len(), 3);
        cache.invalidate_user("u1");
        assert!(cache.get(Some("u1"), || 0).is_none());
        assert!(cache.get(Some("u2"), || 0).unwrap().has_permission("a.c"));
        assert!(cache.get(None, || 0).is_some());
        // An id is never confused with the anonymous entry.
        assert!(cache.get(Some(""), || 0).is_none());
    }

    #[test]
    fn expired_entries_are_misses_and_the_clock_is_read_only_for_them() {
        let cache = SubjectCache::default();
        let entry = Arc::new(CachedSubject::new(Subject::default(), Some(100)));
        cache.insert(None, entry, cache.generation());
        assert!(cache.get(None, || 99).is_some());
        assert!(cache.get(None, || 100).is_none());
        cache.insert(Some("u1"), user("u1", &[]), cache.generation());
        let hit = cache.get(Some("u1"), || {
            panic!("no expiry: the clock must not be read")
        });
        assert!(hit.is_some());
    }
}
