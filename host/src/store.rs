//! Storage: one embedded database, one private namespace per plugin.
//!
//! Plugins never see this module. The host hands each plugin a
//! [`Namespace`] bound to its own tree (`plugin/<id>`); nothing a plugin can
//! send names another tree. The [`Store`] trait keeps sled behind a small
//! seam so a second backend can be added without touching plugins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

/// The on-disk format this host writes. A data directory stamped with a
/// newer number is refused rather than misread.
pub const FORMAT_VERSION: u32 = 1;

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process (usually a running `syshost`) holds the database lock.
    #[error("data directory {path} is in use by another syshost process; stop it or point --config/SYSHOST_DATA_DIR elsewhere")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The directory holds something that is not a syshost store.
    #[error("data directory {path} is not a readable syshost store: {reason}")]
    Corrupt {
        /// The data directory.
        path: PathBuf,
        /// What the backend reported.
        reason: String,
    },
    /// The directory was written by a newer syshost.
    #[error("data directory {path} was written by a newer syshost (store format {found}, this build understands up to {supported}); upgrade syshost")]
    NewerFormat {
        /// The data directory.
        path: PathBuf,
        /// The format found on disk.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// Any other backend error.
    #[error("storage error: {0}")]
    Backend(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Write a value.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Vec<u8>),
    /// Require the key to hold this value (`None`: to be absent).
    Expect(Vec<u8>, Option<Vec<u8>>),
}

/// A key-value pair.
pub type Pair = (Vec<u8>, Vec<u8>);

/// A private, ordered key space.
pub trait Namespace: Send + Sync {
    /// Reads a key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a key.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Removes a key; returns whether it existed.
    fn delete(&self, key: &[u8]) -> Result<bool, StoreError>;
    /// Up to `limit` pairs with `start <= key < end`, ascending or descending.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError>;
    /// Applies every op atomically if all `Expect`s hold; otherwise applies
    /// nothing and returns the index of the first failed expectation.
    fn batch(&self, ops: &[BatchOp]) -> Result<Option<usize>, StoreError>;
    /// Atomically swaps `expected` for `new`; `Err(current)` if it differed.
    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>, StoreError>;
}

/// A database holding many namespaces.
pub trait Store: Send + Sync {
    /// The namespace of plugin `plugin_id` (created on first use).
    fn plugin_namespace(&self, plugin_id: &str) -> Result<Arc<dyn Namespace>, StoreError>;
    /// Every plugin id that has a namespace.
    fn plugin_namespaces(&self) -> Result<Vec<String>, StoreError>;
    /// A namespace private to the host itself (`host/<name>`), never
    /// reachable by a plugin.
    fn host_namespace(&self, name: &str) -> Result<Arc<dyn Namespace>, StoreError>;
    /// Makes every acknowledged write durable.
    fn flush(&self) -> Result<(), StoreError>;
}

const PLUGIN_TREE_PREFIX: &str = "plugin/";
const META_TREE: &str = "host/meta";
const FORMAT_KEY: &[u8] = b"format_version";

/// The sled-backed store under a data directory.
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store in `data_dir/store`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("store");
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!("cannot create it: {e}"),
        })?;
        let db = open_with_lock_retry(&path)?;
        let store = SledStore { db };
        store.check_format(&path)?;
        Ok(store)
    }

    /// A throwaway in-memory store (for tests and dry runs).
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let store = SledStore { db };
        store.check_format(Path::new("<temporary>"))?;
        Ok(store)
    }

    fn check_format(&self, path: &Path) -> Result<(), StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        match meta.get(FORMAT_KEY)? {
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes().to_vec())?;
                Ok(())
            }
            Some(v) => {
                let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "format marker is malformed".into(),
                })?;
                let found = u32::from_be_bytes(bytes);
                if found > FORMAT_VERSION {
                    Err(StoreError::NewerFormat {
                        path: path.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// How long to wait for a lock held by a handle that is closing. sled
/// releases its file lock only when its background flusher thread has
/// exited, which can trail the last handle's drop by one flush interval.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn open_with_lock_retry(path: &Path) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(e) => match classify_open_error(path, e) {
                StoreError::Locked { .. } if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                other => return Err(other),
            },
        }
    }
}

fn classify_open_error(path: &Path, e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => StoreError::Locked {
            path: path.to_path_buf(),
        },
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        _ => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

impl Store for SledStore {
    fn plugin_namespace(&self, plugin_id: &str) -> Result<Arc<dyn Namespace>, StoreError> {
        let tree = self
            .db
            .open_tree(format!("{PLUGIN_TREE_PREFIX}{plugin_id}"))?;
        Ok(Arc::new(SledNamespace { tree }))
    }

    fn plugin_namespaces(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|name| {
                std::str::from_utf8(&name)
                    .ok()
                    .and_then(|n| n.strip_prefix(PLUGIN_TREE_PREFIX))
                    .map(str::to_string)
            })
            .collect())
    }

    fn host_namespace(&self, name: &str) -> Result<Arc<dyn Namespace>, StoreError> {
        let tree = self.db.open_tree(format!("host/{name}"))?;
        Ok(Arc::new(SledNamespace { tree }))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// One sled tree.
struct SledNamespace {
    tree: sled::Tree,
}

impl Namespace for SledNamespace {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(key, value)?;
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree.remove(key)?.is_some())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        if let Some(end) = end {
            if end <= start {
                return Ok(Vec::new());
            }
        }
        let iter = match end {
            Some(end) => self.tree.range(start..end),
            None => self.tree.range(start..),
        };
        let collect = |item: sled::Result<(sled::IVec, sled::IVec)>| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        };
        if reverse {
            iter.rev().take(limit).map(collect).collect()
        } else {
            iter.take(limit).map(collect).collect()
        }
    }

    fn batch(&self, ops: &[BatchOp]) -> Result<Option<usize>, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result = self.tree.transaction(|tx| {
            for (index, op) in ops.iter().enumerate() {
                if let BatchOp::Expect(key, expected) = op {
                    let current = tx.get(key.as_slice())?;
                    if current.as_deref() != expected.as_deref() {
                        return Err(ConflictableTransactionError::Abort(index));
                    }
                }
            }
            for op in ops {
                match op {
                    BatchOp::Put(key, value) => {
                        tx.insert(key.as_slice(), value.as_slice())?;
                    }
                    BatchOp::Delete(key) => {
                        tx.remove(key.as_slice())?;
                    }
                    BatchOp::Expect(..) => {}
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(None),
            Err(TransactionError::Abort(index)) => Ok(Some(index)),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>, StoreError> {
        match self.tree.compare_and_swap(key, expected, new)? {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(e.current.map(|v| v.to_vec()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_disjoint_and_batches_atomic() {
        let store = SledStore::temporary().unwrap();
        let a = store.plugin_namespace("a").unwrap();
        let b = store.plugin_namespace("b").unwrap();
        a.put(b"k", b"1").unwrap();
        assert_eq!(b.get(b"k").unwrap(), None);
        let failed = a
            .batch(&[
                BatchOp::Put(b"x".to_vec(), b"1".to_vec()),
                BatchOp::Expect(b"k".to_vec(), Some(b"2".to_vec())),
            ])
            .unwrap();
        assert_eq!(failed, Some(1));
        assert_eq!(a.get(b"x").unwrap(), None);
        let ok = a
            .batch(&[
                BatchOp::Expect(b"u".to_vec(), None),
                BatchOp::Put(b"u".to_vec(), b"1".to_vec()),
                BatchOp::Delete(b"k".to_vec()),
            ])
            .unwrap();
        assert_eq!(ok, None);
        assert_eq!(a.get(b"u").unwrap(), Some(b"1".to_vec()));
        assert_eq!(a.get(b"k").unwrap(), None);
        let mut names = store.plugin_namespaces().unwrap();
        names.sort();
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn scan_orders_and_bounds() {
        let store = SledStore::temporary().unwrap();
        let ns = store.plugin_namespace("p").unwrap();
        for k in ["a1", "a2", "a3", "b1"] {
            ns.put(k.as_bytes(), b"v").unwrap();
        }
        let keys = |v: Vec<Pair>| {
            v.into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(ns.scan(b"a", Some(b"b"), false, 10).unwrap()),
            ["a1", "a2", "a3"]
        );
        assert_eq!(
            keys(ns.scan(b"a", Some(b"b"), true, 2).unwrap()),
            ["a3", "a2"]
        );
        assert_eq!(
            keys(ns.scan(b"a2", None, false, 10).unwrap()),
            ["a2", "a3", "b1"]
        );
        assert!(ns.scan(b"b", Some(b"a"), false, 10).unwrap().is_empty());
    }

    #[test]
    fn cas_reports_current_value() {
        let store = SledStore::temporary().unwrap();
        let ns = store.plugin_namespace("p").unwrap();
        assert_eq!(ns.compare_and_swap(b"k", None, Some(b"1")).unwrap(), Ok(()));
        assert_eq!(
            ns.compare_and_swap(b"k", None, Some(b"2")).unwrap(),
            Err(Some(b"1".to_vec()))
        );
        assert_eq!(ns.compare_and_swap(b"k", Some(b"1"), None).unwrap(), Ok(()));
        assert_eq!(ns.get(b"k").unwrap(), None);
    }

    #[test]
    fn reopening_right_after_close_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        // Writes without an explicit flush leave sled's background I/O
        // running past the drop; that is when the lock lingers.
        for i in 0..5u8 {
            let store = SledStore::open(dir.path()).unwrap();
            let ns = store.plugin_namespace("p").unwrap();
            for n in 0..2_000u32 {
                ns.put(&n.to_be_bytes(), &[i; 64]).unwrap();
            }
            ns.put(b"k", &[i]).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.plugin_namespace("p").unwrap().get(b"k").unwrap(),
            Some(vec![4])
        );
    }

    #[test]
    fn second_open_reports_lock_and_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledStore::open(dir.path()).unwrap();
        match SledStore::open(dir.path()) {
            Err(StoreError::Locked { .. }) => {}
            Err(e) => panic!("expected Locked, got {e}"),
            Ok(_) => panic!("second open succeeded"),
        }
        first
            .db
            .open_tree(META_TREE)
            .unwrap()
            .insert(FORMAT_KEY, (FORMAT_VERSION + 1).to_be_bytes().to_vec())
            .unwrap();
        first.flush().unwrap();
        drop(first);
        match SledStore::open(dir.path()) {
            Err(StoreError::NewerFormat { found, .. }) => assert_eq!(found, FORMAT_VERSION + 1),
            Err(e) => panic!("expected NewerFormat, got {e}"),
            Ok(_) => panic!("newer format accepted"),
        }
    }
}
