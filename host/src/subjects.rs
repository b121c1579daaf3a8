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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use syshost_plugin_api::Subject;

/// A resolved subject with its permissions in a hash set.
#[derive(Debug, Clone)]
pub struct CachedSubject {
    subject: Subject,
    permissions: HashSet<String>,
    valid_until: Option<i64>,
}

impl CachedSubject {
    /// Wraps a resolved subject.
    pub fn new(subject: Subject, valid_until: Option<i64>) -> Self {
        let permissions = match &subject {
            Subject::User(u) => u.permissions.iter().cloned().collect(),
            Subject::Anonymous { permissions } => permissions.iter().cloned().collect(),
            Subject::System | Subject::Plugin { .. } => HashSet::new(),
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

/// Cache key: `None` is the anonymous subject.
pub type SubjectKey = Option<String>;

/// The cache itself.
#[derive(Default)]
pub struct SubjectCache {
    entries: RwLock<HashMap<SubjectKey, Arc<CachedSubject>>>,
    generation: AtomicU64,
}

impl SubjectCache {
    /// A cached, unexpired entry.
    pub fn get(&self, key: &SubjectKey, now_ms: i64) -> Option<Arc<CachedSubject>> {
        let entries = self.entries.read().ok()?;
        entries.get(key).filter(|e| !e.is_expired(now_ms)).cloned()
    }

    /// The generation to pass to [`SubjectCache::insert`] for a resolution
    /// starting now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `entry` unless an invalidation happened since `generation`.
    pub fn insert(&self, key: SubjectKey, entry: Arc<CachedSubject>, generation: u64) {
        if let Ok(mut entries) = self.entries.write() {
            if self.generation.load(Ordering::SeqCst) == generation {
                entries.insert(key, entry);
            }
        }
    }

    /// Drops one user's entry.
    pub fn invalidate_user(&self, user_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.remove(&Some(user_id.to_string()));
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.clear();
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
        cache.insert(Some("u1".into()), user("u1", &["a.b"]), before);
        assert!(cache.get(&Some("u1".into()), 0).is_none());
        let now = cache.generation();
        cache.insert(Some("u1".into()), user("u1", &["a.b"]), now);
        let hit = cache.get(&Some("u1".into()), 0).unwrap();
        assert!(hit.has_permission("a.b") && !hit.has_permission("a.c"));
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn expired_entries_are_misses() {
        let cache = SubjectCache::default();
        let entry = Arc::new(CachedSubject::new(Subject::default(), Some(100)));
        cache.insert(None, entry, cache.generation());
        assert!(cache.get(&None, 99).is_some());
        assert!(cache.get(&None, 100).is_none());
    }
}
