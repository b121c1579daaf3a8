//! Storage: one embedded database, one private namespace per plugin.
//!
//! Plugins never see this module. The host hands each plugin a
//! [`Namespace`] bound to its own tree (`plugin/<id>`); nothing a plugin can
//! send names another tree. The [`Store`] trait keeps sled behind a small
//! seam so a second backend can be added without touching plugins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    /// Refused without touching the store: the calling thread runs an
    /// inline call ([`crate::inline`]), and a read may hit the disk and a
    /// write may wait on the write gate.
    #[error("{0}")]
    WouldBlock(String),
}

/// `Err(StoreError::WouldBlock)` (recorded as a refusal) when this thread
/// runs an inline call: checked before any lock, gate or tree is touched.
fn refuse_inline(what: &str) -> Result<(), StoreError> {
    crate::inline::check(what).map_err(|e| StoreError::WouldBlock(e.message))
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
    /// Like [`Namespace::scan`], but stops with `None` as soon as the pairs
    /// collected so far hold more than `max_bytes` of keys and values, so a
    /// caller never buffers more than that.
    fn scan_bounded(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<Vec<Pair>>, StoreError>;
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
    /// Makes every write so far durable (sled `flush`: write out and
    /// fsync), unconditionally.
    fn flush(&self) -> Result<(), StoreError>;
    /// Makes every write that completed before this call durable, sharing
    /// one flush between concurrent callers: returns at once when no write
    /// happened since the last flush, or when a flush that started after
    /// the caller's writes has finished.
    fn sync(&self) -> Result<(), StoreError> {
        self.flush()
    }
    /// Every tree with every pair, as one point-in-time view: writes are
    /// held back while it is copied (see [`SledStore`]).
    fn export(&self) -> Result<Vec<TreeDump>, StoreError>;
    /// Writes `trees` into this store (meant for an empty store) and
    /// flushes.
    fn import(&self, trees: &[TreeDump]) -> Result<(), StoreError>;
}

/// One tree of the store with all its pairs, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeDump {
    /// The tree name (`plugin/<id>`, `host/<name>`).
    pub name: String,
    /// Every pair in ascending key order.
    pub pairs: Vec<Pair>,
}

/// Store tuning (config keys `store.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's background flush interval in milliseconds (`None`: only
    /// explicit flushes).
    pub flush_every_ms: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush_every_ms: Some(500),
        }
    }
}

/// Write bookkeeping shared by every namespace of one store: a sequence
/// number per completed write (for coalesced flushes) and the write gate
/// that [`Store::export`] closes for its point-in-time copy.
#[derive(Default)]
struct WriteLog {
    /// Writes completed so far.
    written: AtomicU64,
    /// `written` as of the start of the last successful flush.
    flushed: AtomicU64,
    /// One flush at a time; latecomers find their writes already covered.
    flushing: Mutex<()>,
    /// Writers hold it shared; an export holds it exclusively.
    gate: RwLock<()>,
    /// One write lock per tree (by name): every write to a tree holds it,
    /// so the expectations a conditional batch checked still hold when it
    /// is applied.
    tree_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl WriteLog {
    /// Runs a write with the gate open and counts it.
    fn write<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.write_if(f, |_| true)
    }

    /// Runs a write with the gate open and counts it unless `wrote` says
    /// its outcome changed nothing (a failed precondition), so that
    /// [`SledStore::sync`] has nothing to flush for it. An error counts: it
    /// may have written part of what it meant to.
    fn write_if<T>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        let _open = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let result = f();
        if result.as_ref().map_or(true, wrote) {
            self.written.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// The write lock of tree `name` (created on first use).
    fn tree_lock(&self, name: &str) -> Arc<Mutex<()>> {
        let mut locks = self.tree_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_string()).or_default().clone()
    }
}

/// Holds a tree's write lock (a poisoned lock is still a lock: the data it
/// guards is sled's, which a panicking writer cannot leave half-written).
fn hold(lock: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

const PLUGIN_TREE_PREFIX: &str = "plugin/";
const META_TREE: &str = "host/meta";
const FORMAT_KEY: &[u8] = b"format_version";

/// The sled-backed store under a data directory.
///
/// Durability: sled makes a write durable when it flushes (writes its log
/// and fsyncs). It flushes in the background every
/// [`StoreOptions::flush_every_ms`]; [`Store::sync`] flushes on demand and
/// coalesces concurrent requests. After a crash sled recovers a prefix of
/// the writes in the order they happened, across all trees.
///
/// Consistency of [`Store::export`]: sled has no snapshot spanning trees,
/// so every write passes a shared gate and an export closes it while it
/// copies: the copy is the state between two writes.
pub struct SledStore {
    db: sled::Db,
    log: Arc<WriteLog>,
}

/// The store directory inside a data directory.
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

impl SledStore {
    /// Opens (or creates) the store in `data_dir/store` with the default
    /// options.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// Opens (or creates) the store in `data_dir/store`.
    ///
    /// An existing store is checked before sled touches it (sled would
    /// silently start an empty database over a damaged or foreign one):
    /// its `conf` file must carry sled's checksum, and once open it must
    /// hold the syshost format marker. A store whose creation was
    /// interrupted (the `CREATING` file is still there) held no data yet
    /// and is created afresh.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let path = store_path(data_dir);
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let sentinel = path.join(CREATING_FILE);
        let existing = match std::fs::read_dir(&path) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(corrupt(format!("cannot read it: {e}"))),
        };
        let fresh = if !existing {
            true
        } else if sentinel.exists() {
            // Never held data: the sentinel goes only after the marker is
            // on disk, before anything else is written.
            std::fs::remove_dir_all(&path)
                .map_err(|e| corrupt(format!("cannot reset an unfinished store: {e}")))?;
            true
        } else {
            check_sled_conf(&path).map_err(corrupt)?;
            false
        };
        if fresh {
            std::fs::create_dir_all(&path)
                .map_err(|e| corrupt(format!("cannot create it: {e}")))?;
            std::fs::write(&sentinel, b"")
                .map_err(|e| corrupt(format!("cannot create it: {e}")))?;
        }
        let db = open_with_lock_retry(&path, options)?;
        let store = SledStore {
            db,
            log: Arc::default(),
        };
        store.check_format(&path, fresh)?;
        if fresh {
            std::fs::remove_file(&sentinel)
                .map_err(|e| corrupt(format!("cannot finish creating it: {e}")))?;
        }
        Ok(store)
    }

    /// A throwaway in-memory store (for tests and dry runs).
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let store = SledStore {
            db,
            log: Arc::default(),
        };
        store.check_format(Path::new("<temporary>"), true)?;
        Ok(store)
    }

    fn namespace(&self, name: &str) -> Result<Arc<dyn Namespace>, StoreError> {
        let tree = self.db.open_tree(name)?;
        Ok(Arc::new(SledNamespace {
            tree,
            lock: self.log.tree_lock(name),
            log: self.log.clone(),
        }))
    }

    fn check_format(&self, path: &Path, fresh: bool) -> Result<(), StoreError> {
        let meta = self.db.open_tree(META_TREE)?;
        match meta.get(FORMAT_KEY)? {
            None if !fresh => Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason:
                    "it holds no syshost format marker: it is damaged or belongs to another program"
                        .into(),
            }),
            None => {
                let foreign = self.db.tree_names().into_iter().any(|name| {
                    name.as_ref() != META_TREE.as_bytes()
                        && self.db.open_tree(&name).is_ok_and(|t| !t.is_empty())
                });
                if foreign {
                    return Err(StoreError::Corrupt {
                        path: path.to_path_buf(),
                        reason: "it holds data but no syshost format marker (a database of another program?)".into(),
                    });
                }
                meta.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes().to_vec())?;
                self.db.flush()?;
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

/// Opens the store in `data_dir` once and closes it again, so that the next
/// start does not have to replay the log of a bulk write.
///
/// sled 0.34 writes its recovery snapshot (the page table) only while it
/// opens a store: it replays the log written since the last snapshot and
/// stores the result. After a bulk import that log holds every imported
/// key, and replaying it costs seconds per million users; calling this at
/// the end of the import pays that once, offline, instead of at the next
/// `syshost run`. The store must not be open elsewhere (a handle that is
/// closing is waited for, as in [`SledStore::open_with`]).
pub fn fold_recovery_log(data_dir: &Path, options: StoreOptions) -> Result<(), StoreError> {
    let store = SledStore::open_with(data_dir, options)?;
    store.flush()?;
    Ok(())
}

/// Present while a new store is being created; see [`SledStore::open_with`].
const CREATING_FILE: &str = "CREATING";

/// Checks sled's `conf` file (its settings plus a CRC-32, little-endian)
/// the way sled should but does not: sled only warns about a bad checksum
/// and replaces a short file.
fn check_sled_conf(path: &Path) -> Result<(), String> {
    let conf = path.join("conf");
    let bytes = std::fs::read(&conf).map_err(|e| {
        format!("it has files but no readable sled 'conf' file ({e}); it is not a syshost store or it is damaged")
    })?;
    if bytes.len() <= 8 {
        return Err("its 'conf' file is empty or truncated; the store is damaged".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != expected {
        return Err(
            "its 'conf' file fails its checksum; it is damaged or not a syshost store".into(),
        );
    }
    if !path.join("db").is_file() {
        return Err("its 'db' file is missing; the store is damaged".into());
    }
    Ok(())
}

/// How long to wait for a lock held by a handle that is closing. sled
/// releases its file lock only when its background flusher thread has
/// exited, which can trail the last handle's drop by one flush interval.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn open_with_lock_retry(path: &Path, options: StoreOptions) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        let config = sled::Config::new()
            .path(path)
            .flush_every_ms(options.flush_every_ms);
        // sled panics on some malformed files instead of returning an
        // error; a foreign or damaged directory must be an error.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|panic| {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the store files are unreadable".to_string());
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason,
                }
            })?;
        match opened {
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
        self.namespace(&format!("{PLUGIN_TREE_PREFIX}{plugin_id}"))
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
        self.namespace(&format!("host/{name}"))
    }

    fn flush(&self) -> Result<(), StoreError> {
        refuse_inline("a store flush")?;
        let covered = self.log.written.load(Ordering::SeqCst);
        self.db.flush()?;
        self.log.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        refuse_inline("a store flush")?;
        let mine = self.log.written.load(Ordering::SeqCst);
        if self.log.flushed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let _turn = self.log.flushing.lock().unwrap_or_else(|p| p.into_inner());
        // A flush that started after our writes may have finished while we
        // waited for the turn.
        if self.log.flushed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        self.flush()
    }

    fn export(&self) -> Result<Vec<TreeDump>, StoreError> {
        refuse_inline("a store export")?;
        let _closed = self.log.gate.write().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter(|n| n != DEFAULT_TREE)
            .collect();
        names.sort();
        let mut trees = Vec::with_capacity(names.len());
        for name in names {
            let tree = self.db.open_tree(&name)?;
            let pairs = tree
                .iter()
                .map(|item| {
                    item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(StoreError::from)
                })
                .collect::<Result<Vec<Pair>, StoreError>>()?;
            trees.push(TreeDump { name, pairs });
        }
        Ok(trees)
    }

    fn import(&self, trees: &[TreeDump]) -> Result<(), StoreError> {
        refuse_inline("a store import")?;
        for dump in trees {
            if dump.name == DEFAULT_TREE {
                continue;
            }
            let tree = self.db.open_tree(&dump.name)?;
            let lock = self.log.tree_lock(&dump.name);
            let mut batch = sled::Batch::default();
            for (k, v) in &dump.pairs {
                batch.insert(k.as_slice(), v.as_slice());
            }
            self.log.write(|| {
                let _held = hold(&lock);
                Ok(tree.apply_batch(batch)?)
            })?;
        }
        self.flush()
    }
}

/// sled's own default tree (unused by syshost, never exported).
const DEFAULT_TREE: &str = "__sled__default";

/// One sled tree.
///
/// Every write holds the tree's write lock (shared by every handle of the
/// tree). A conditional batch checks its expectations and applies its
/// writes as ONE `apply_batch` under that lock: sled applies a batch
/// atomically (readers see all of it or none, and recovery after a crash
/// restores all of it or none), and no other write to the tree can slip in
/// between the check and the apply. This replaced a sled transaction, whose
/// per-operation bookkeeping made large batches (an import of 1000 users is
/// ~6 300 operations) several times slower than the writes themselves.
struct SledNamespace {
    tree: sled::Tree,
    lock: Arc<Mutex<()>>,
    log: Arc<WriteLog>,
}

impl Namespace for SledNamespace {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        refuse_inline("a store read")?;
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        refuse_inline("a store write")?;
        self.log.write(|| {
            let _held = hold(&self.lock);
            self.tree.insert(key, value)?;
            Ok(())
        })
    }

    fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        refuse_inline("a store write")?;
        self.log.write(|| {
            let _held = hold(&self.lock);
            Ok(self.tree.remove(key)?.is_some())
        })
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        Ok(self
            .scan_bounded(start, end, reverse, limit, usize::MAX)?
            .unwrap_or_default())
    }

    fn scan_bounded(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<Vec<Pair>>, StoreError> {
        refuse_inline("a store read")?;
        if let Some(end) = end {
            if end <= start {
                return Ok(Some(Vec::new()));
            }
        }
        let iter = match end {
            Some(end) => self.tree.range(start..end),
            None => self.tree.range(start..),
        };
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in iter.take(limit) {
            let (k, v) = item?;
            bytes = bytes.saturating_add(k.len() + v.len());
            if bytes > max_bytes {
                return Ok(None);
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(Some(out))
    }

    fn batch(&self, ops: &[BatchOp]) -> Result<Option<usize>, StoreError> {
        refuse_inline("a store write")?;
        // A failed precondition writes nothing.
        self.log.write_if(
            || {
                let _held = hold(&self.lock);
                // Every expectation is checked against the state before the
                // batch, as a whole, before anything is written.
                for (index, op) in ops.iter().enumerate() {
                    if let BatchOp::Expect(key, expected) = op {
                        let current = self.tree.get(key.as_slice())?;
                        if current.as_deref() != expected.as_deref() {
                            return Ok(Some(index));
                        }
                    }
                }
                let mut batch = sled::Batch::default();
                for op in ops {
                    match op {
                        BatchOp::Put(key, value) => batch.insert(key.as_slice(), value.as_slice()),
                        BatchOp::Delete(key) => batch.remove(key.as_slice()),
                        BatchOp::Expect(..) => {}
                    }
                }
                self.tree.apply_batch(batch)?;
                Ok(None)
            },
            Option::is_none,
        )
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>, StoreError> {
        refuse_inline("a store write")?;
        // A failed swap writes nothing.
        self.log.write_if(
            || {
                let _held = hold(&self.lock);
                match self.tree.compare_and_swap(key, expected, new)? {
                    Ok(()) => Ok(Ok(())),
                    Err(e) => Ok(Err(e.current.map(|v| v.to_vec()))),
                }
            },
            Result::is_ok,
        )
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
    fn racing_conditional_batches_and_puts_never_break_an_expectation() {
        let store = SledStore::temporary().unwrap();
        const KEYS: u32 = 300;
        // Eight writers race to claim every key with a conditional batch
        // that also writes a twin key; a ninth overwrites unrelated keys
        // with plain puts. Exactly one batch may claim each key, and its
        // twin must carry the same writer.
        let writers: Vec<_> = (0..8u8)
            .map(|writer| {
                let ns = store.plugin_namespace("p").unwrap();
                std::thread::spawn(move || {
                    let mut won = 0u32;
                    for k in 0..KEYS {
                        let key = format!("k{k:04}").into_bytes();
                        let twin = format!("t{k:04}").into_bytes();
                        let ops = [
                            BatchOp::Expect(key.clone(), None),
                            BatchOp::Put(key, vec![writer]),
                            BatchOp::Put(twin, vec![writer]),
                        ];
                        if ns.batch(&ops).unwrap().is_none() {
                            won += 1;
                        }
                    }
                    won
                })
            })
            .collect();
        let noise = {
            let ns = store.plugin_namespace("p").unwrap();
            std::thread::spawn(move || {
                for i in 0..2_000u32 {
                    ns.put(format!("n{}", i % 50).as_bytes(), &i.to_be_bytes())
                        .unwrap();
                }
            })
        };
        let won: u32 = writers.into_iter().map(|h| h.join().unwrap()).sum();
        noise.join().unwrap();
        assert_eq!(won, KEYS, "exactly one winner per key");
        let ns = store.plugin_namespace("p").unwrap();
        for k in 0..KEYS {
            let key = ns.get(format!("k{k:04}").as_bytes()).unwrap();
            let twin = ns.get(format!("t{k:04}").as_bytes()).unwrap();
            assert!(key.is_some());
            assert_eq!(key, twin, "key {k}: the winner wrote both");
        }
    }

    #[test]
    fn folding_the_log_writes_a_newer_snapshot_and_keeps_every_pair() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(store_path(dir.path()))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("snap."))
                .collect();
            names.sort();
            names
        };
        {
            let store = SledStore::open(dir.path()).unwrap();
            let ns = store.plugin_namespace("p").unwrap();
            let ops: Vec<BatchOp> = (0..5_000u32)
                .map(|i| BatchOp::Put(i.to_be_bytes().to_vec(), vec![7; 100]))
                .collect();
            assert_eq!(ns.batch(&ops).unwrap(), None);
            store.flush().unwrap();
        }
        let before = snapshots();
        fold_recovery_log(dir.path(), StoreOptions::default()).unwrap();
        let after = snapshots();
        let newest = after.last().expect("a snapshot after folding");
        assert!(
            before.last().is_none_or(|b| newest > b),
            "{before:?} -> {after:?}"
        );
        let store = SledStore::open(dir.path()).unwrap();
        let ns = store.plugin_namespace("p").unwrap();
        assert_eq!(ns.scan(b"", None, false, usize::MAX).unwrap().len(), 5_000);
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
    fn a_batch_or_swap_whose_precondition_fails_counts_no_write_and_needs_no_flush() {
        let store = SledStore::temporary().unwrap();
        let a = store.plugin_namespace("a").unwrap();
        a.put(b"k", b"1").unwrap();
        store.sync().unwrap();
        let written = store.log.written.load(Ordering::SeqCst);
        let flushed = store.log.flushed.load(Ordering::SeqCst);
        let failed = a
            .batch(&[
                BatchOp::Expect(b"k".to_vec(), Some(b"2".to_vec())),
                BatchOp::Put(b"x".to_vec(), b"1".to_vec()),
            ])
            .unwrap();
        assert_eq!(failed, Some(0));
        let swapped = a.compare_and_swap(b"k", Some(b"2"), Some(b"3")).unwrap();
        assert_eq!(swapped, Err(Some(b"1".to_vec())));
        assert_eq!(store.log.written.load(Ordering::SeqCst), written);
        store.sync().unwrap();
        assert_eq!(
            store.log.flushed.load(Ordering::SeqCst),
            flushed,
            "nothing was written, so nothing is flushed"
        );
        // A batch that commits counts, and the next sync flushes it.
        let committed = a
            .batch(&[
                BatchOp::Expect(b"k".to_vec(), Some(b"1".to_vec())),
                BatchOp::Put(b"x".to_vec(), b"1".to_vec()),
            ])
            .unwrap();
        assert_eq!(committed, None);
        assert_eq!(store.log.written.load(Ordering::SeqCst), written + 1);
        store.sync().unwrap();
        assert!(store.log.flushed.load(Ordering::SeqCst) > flushed);
        assert_eq!(a.get(b"x").unwrap(), Some(b"1".to_vec()));
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

    #[test]
    fn damaged_or_foreign_stores_are_refused_untouched() {
        // Garbage where the store should be: refused, and left as it was.
        let dir = tempfile::tempdir().unwrap();
        let store = store_path(dir.path());
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("conf"), b"not sled's settings at all").unwrap();
        std::fs::write(store.join("db"), b"garbage").unwrap();
        match SledStore::open(dir.path()) {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.contains("checksum"), "{reason}")
            }
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("garbage opened"),
        }
        assert_eq!(std::fs::read(store.join("db")).unwrap(), b"garbage");

        // A sled database of another program: opens, but has no marker.
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(store_path(dir.path())).unwrap();
            db.open_tree("theirs").unwrap().insert("k", "v").unwrap();
            db.flush().unwrap();
        }
        match SledStore::open(dir.path()) {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.contains("marker"), "{reason}")
            }
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("foreign database opened"),
        }
    }

    #[test]
    fn an_interrupted_creation_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_path(dir.path());
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join(CREATING_FILE), b"").unwrap();
        std::fs::write(store.join("conf"), b"half").unwrap();
        let opened = SledStore::open(dir.path()).unwrap();
        opened
            .plugin_namespace("p")
            .unwrap()
            .put(b"k", b"v")
            .unwrap();
        drop(opened);
        assert!(!store.join(CREATING_FILE).exists());
        let reopened = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.plugin_namespace("p").unwrap().get(b"k").unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn export_import_round_trips_every_tree_and_sync_coalesces() {
        let source = SledStore::temporary().unwrap();
        source
            .plugin_namespace("a")
            .unwrap()
            .put(b"k", b"1")
            .unwrap();
        source
            .host_namespace("mail_queue")
            .unwrap()
            .put(b"m", b"2")
            .unwrap();
        source.sync().unwrap();
        let flushed = source.log.flushed.load(Ordering::SeqCst);
        // Nothing written since: no flush at all.
        source.sync().unwrap();
        assert_eq!(source.log.flushed.load(Ordering::SeqCst), flushed);
        let trees = source.export().unwrap();
        let names: Vec<&str> = trees.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["host/mail_queue", "host/meta", "plugin/a"]);
        let dir = tempfile::tempdir().unwrap();
        let target = SledStore::open(dir.path()).unwrap();
        target.import(&trees).unwrap();
        assert_eq!(target.export().unwrap(), trees);
    }

    #[test]
    fn inline_mode_refuses_every_access_at_once_even_while_a_backup_holds_the_gate() {
        let store = SledStore::temporary().unwrap();
        let ns = store.plugin_namespace("p").unwrap();
        ns.put(b"k", b"1").unwrap();
        let written = store.log.written.load(Ordering::SeqCst);
        // What an export holds for its whole copy.
        let backup = store.log.gate.write().unwrap();
        let guard = crate::inline::enter();
        let would_block = |r: Result<(), StoreError>| {
            assert!(matches!(r, Err(StoreError::WouldBlock(_))), "{r:?}");
        };
        would_block(ns.put(b"k", b"2"));
        would_block(ns.delete(b"k").map(drop));
        would_block(
            ns.batch(&[BatchOp::Put(b"n".to_vec(), b"3".to_vec())])
                .map(drop),
        );
        would_block(ns.compare_and_swap(b"k", Some(b"1"), None).map(drop));
        would_block(ns.get(b"k").map(drop));
        would_block(ns.scan(b"", None, false, 10).map(drop));
        would_block(store.sync());
        would_block(store.flush());
        assert!(guard.refused());
        drop(guard);
        drop(backup);
        // Nothing was written or counted.
        assert_eq!(store.log.written.load(Ordering::SeqCst), written);
        assert_eq!(ns.get(b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(ns.get(b"n").unwrap(), None);
    }
}
