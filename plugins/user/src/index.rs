//! The in-memory user index behind `list`.
//!
//! `list` filters by a search text, status, role and group, sorts by
//! address, name or creation time and pages. Answering that from the store
//! means decoding every user record per request; this index holds, per user,
//! only what `list` needs — the lower-cased address, first and last name
//! (the sort keys and the searched text), creation time, status and the
//! role and group ids — and answers with the ids of one page.
//!
//! **Structure.** Rows live in slots (`Vec<Option<Row>>`); a row is never
//! changed in place: a changed user gets a new slot and its old slot becomes
//! empty (dead). Posting lists name slots in ascending order: one per byte
//! trigram of the three searched fields (never across fields), one per role
//! and one per group. A dead slot stays in its posting lists and is skipped
//! when read; when dead slots outnumber live ones (plus 4096) everything is
//! rebuilt densely. Three ordered sets (`(address, id)`, `(last, first,
//! address, id)`, `(created_at, id)`) answer unfiltered pages in
//! O(offset + page).
//!
//! **Queries.** A search term of 3+ bytes reads the shortest posting list of
//! its trigrams (or of the role/group filter), every other filtered query
//! reads the role/group list or every row; each candidate is verified
//! exactly (substring of a field, status at `now`, membership), and the
//! requested page is picked by a partial selection over the matches.
//!
//! **Invariant: the index equals the store.** It is built lazily, on a
//! background thread the first `list` starts (never at activation), by
//! paging through `user/` and decoding only the indexed fields. The call
//! that started the build waits for it at most [`FIRST_PATIENCE`], others
//! at most [`BUILD_PATIENCE`]; a build still running then is answered
//! `unavailable` (503, "being indexed") well inside the host's call budget
//! while the build goes on, so a first list at a million users never
//! becomes an overdue call. Deactivation stops a running build. Every write of a user record goes
//! through [`UserIndex::write`]: it holds a per-user stripe lock around the
//! store commit and the index update, so index updates of one user happen in
//! the order of the commits; a failed commit (precondition) changes nothing;
//! a commit that errored (outcome unknown) drops the index, which the next
//! `list` rebuilds. Writes during a build are remembered by id and re-read
//! from the store before the built index is published.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use syshost_plugin_api::{codes, Host, PluginError, Store};

use crate::model::{SortKey, SortOrder, Status, StatusFilter, UserRecord};
use crate::store;

/// Number of per-user write locks.
const STRIPES: usize = 64;
/// Pairs read per store scan while building.
const BUILD_PAGE: usize = 2048;
/// First key after every `user/<id>` key.
const USER_END: &[u8] = b"user0";
/// Dead slots tolerated beyond the live ones before a compaction.
const DEAD_SLACK: usize = 4096;
/// How long a `list` waits for a build another call is running before it
/// answers `unavailable`: well inside the host's per-call budget, so callers
/// arriving during a long first build (about 7 s at 1 M users) never become
/// overdue calls that would make the host refuse every call of the system.
const BUILD_PATIENCE: Duration = Duration::from_secs(2);
/// How long the `list` that starts a build waits for it (the build runs on
/// its own thread): ~1 s per 100 000 users on a quiet machine, so stores up
/// to several hundred thousand users answer their first list with a page;
/// half the host's default call budget (10 s).
const FIRST_PATIENCE: Duration = Duration::from_secs(5);

/// Whether `status` passes the `list` status filter at `now`.
pub fn matches_status(filter: StatusFilter, status: &Status, now: i64) -> bool {
    match filter {
        StatusFilter::Enabled => !matches!(status, Status::Disabled),
        StatusFilter::Disabled => matches!(status, Status::Disabled),
        StatusFilter::Expired => status.is_expired(now),
        StatusFilter::Active => status.is_active(now),
    }
}

/// One `list` query (already validated; `search` trimmed and lower-cased,
/// `None` when blank).
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Lower-cased substring of the address, first or last name.
    pub search: Option<&'a str>,
    /// Status filter.
    pub status: Option<StatusFilter>,
    /// Only holders of this role.
    pub role: Option<&'a str>,
    /// Only members of this group.
    pub group: Option<&'a str>,
    /// Sort key.
    pub sort: SortKey,
    /// Sort direction.
    pub order: SortOrder,
    /// Matches to skip.
    pub offset: usize,
    /// Page size.
    pub limit: usize,
    /// The time status filters are evaluated at (ms since the epoch).
    pub now: i64,
}

/// The answer of a query: the ids of one page and the number of matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's user ids, in order.
    pub ids: Vec<String>,
    /// How many users match in total.
    pub total: u64,
}

/// A change of the store the index must follow.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// The user now has this record (created or changed).
    Put(&'a UserRecord),
    /// The user with this id no longer exists.
    Remove(&'a str),
}

impl Change<'_> {
    fn id(&self) -> &str {
        match self {
            Change::Put(record) => &record.id,
            Change::Remove(id) => id,
        }
    }
}

/// The index and its lifecycle; shared by every handler thread (see the
/// module docs for the invariant).
pub struct UserIndex {
    state: RwLock<State>,
    /// The running (or finished, not yet joined) build thread.
    builder: Mutex<Option<JoinHandle<()>>>,
    /// The error of the last build, for the next `list` to report.
    failure: Mutex<Option<PluginError>>,
    /// Set by [`UserIndex::stop_build`]: a running build gives up.
    stopping: AtomicBool,
    stripes: Vec<Mutex<()>>,
}

enum State {
    /// Not built (or dropped): writes need not be recorded.
    Absent,
    /// A build is scanning the store: writes record the ids they touched.
    Building {
        pending: HashSet<String>,
        poisoned: bool,
    },
    /// Built and current.
    Ready(Box<Index>),
}

impl Default for UserIndex {
    fn default() -> Self {
        UserIndex::new()
    }
}

impl UserIndex {
    /// An index that is not built yet.
    pub fn new() -> Self {
        UserIndex {
            state: RwLock::new(State::Absent),
            builder: Mutex::new(None),
            failure: Mutex::new(None),
            stopping: AtomicBool::new(false),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn lock_read(&self) -> RwLockReadGuard<'_, State> {
        if self.state.is_poisoned() {
            // A panic while the index was changed: it may be inexact.
            drop(self.lock_write());
        }
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_write(&self) -> RwLockWriteGuard<'_, State> {
        match self.state.write() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                *guard = State::Absent;
                self.state.clear_poison();
                guard
            }
        }
    }

    /// Whether the index is built (for tests and logs).
    pub fn is_built(&self) -> bool {
        matches!(&*self.lock_read(), State::Ready(_))
    }

    /// Drops the index; the next `list` rebuilds it.
    pub fn invalidate(&self) {
        let mut state = self.lock_write();
        match &mut *state {
            State::Building { poisoned, .. } => *poisoned = true,
            _ => *state = State::Absent,
        }
    }

    /// Runs `commit` — a store write of the users `ids` — under those users'
    /// write locks, then applies `changes(&outcome)` to the index. When
    /// `commit` errs the outcome is unknown and the index is dropped.
    pub fn write<'a, T>(
        &self,
        ids: &[&str],
        commit: impl FnOnce() -> Result<T, PluginError>,
        changes: impl FnOnce(&T) -> Vec<Change<'a>>,
    ) -> Result<T, PluginError> {
        let _locks = self.lock_stripes(ids);
        let outcome = commit();
        match &outcome {
            Ok(value) => {
                let changes = changes(value);
                if !changes.is_empty() {
                    self.apply(&changes);
                }
            }
            Err(_) => self.invalidate(),
        }
        outcome
    }

    fn lock_stripes(&self, ids: &[&str]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids
            .iter()
            .map(|id| {
                let mut h = DefaultHasher::new();
                id.hash(&mut h);
                (h.finish() % STRIPES as u64) as usize
            })
            .collect();
        // Ascending order: two writers never wait for each other in a cycle.
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|i| {
                self.stripes[i]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            })
            .collect()
    }

    fn apply(&self, changes: &[Change<'_>]) {
        let mut state = self.lock_write();
        match &mut *state {
            State::Absent => {}
            State::Building { pending, .. } => {
                pending.extend(changes.iter().map(|c| c.id().to_string()));
            }
            State::Ready(index) => {
                for change in changes {
                    match change {
                        Change::Put(record) => index.put(Fields::of_record(record)),
                        Change::Remove(id) => index.remove(id),
                    }
                }
                index.compact_if_needed();
            }
        }
    }

    /// Answers `query`, building the index first when it is not built: the
    /// build runs on its own thread; this call waits for it at most
    /// [`FIRST_PATIENCE`] (a build another call started: [`BUILD_PATIENCE`])
    /// and answers `unavailable` (503) if it is still running then, so no
    /// `list` outlives the host's call budget.
    pub fn list(self: &Arc<Self>, host: &Host, query: &Query<'_>) -> Result<Page, PluginError> {
        let host = host.clone();
        self.list_with(query, FIRST_PATIENCE, BUILD_PATIENCE, move |users| {
            std::thread::Builder::new()
                .name("syshost-user-index".into())
                .spawn(move || users.build_in_background(&host))
        })
    }

    /// [`UserIndex::list`] with the patiences and the way a build thread is
    /// started (`start` runs a build of the given index) as parameters.
    fn list_with<F>(
        self: &Arc<Self>,
        query: &Query<'_>,
        first_patience: Duration,
        patience: Duration,
        start: F,
    ) -> Result<Page, PluginError>
    where
        F: FnOnce(Arc<Self>) -> std::io::Result<JoinHandle<()>>,
    {
        let mut start = Some(start);
        for _ in 0..3 {
            if let State::Ready(index) = &*self.lock_read() {
                return Ok(index.query(query));
            }
            let wait = if self.start_build(&mut start)? {
                first_patience
            } else {
                patience
            };
            if !self.await_other_build(wait) {
                return Err(PluginError::new(
                    codes::UNAVAILABLE,
                    "the user list is being indexed (the first list since the start); try again in a few seconds",
                ));
            }
            let failure = self
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Err(PluginError::conflict(
            "the user list changed while it was being indexed; try again",
        ))
    }

    /// Starts a build thread with `start` (taken at most once) unless the
    /// index is built or a build runs; true when this call started one.
    fn start_build<F>(self: &Arc<Self>, start: &mut Option<F>) -> Result<bool, PluginError>
    where
        F: FnOnce(Arc<Self>) -> std::io::Result<JoinHandle<()>>,
    {
        let mut builder = self.builder.lock().unwrap_or_else(PoisonError::into_inner);
        if builder.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(done) = builder.take() {
                // A panic in the build already left the state `Absent`.
                let _ = done.join();
            }
        }
        if self.stopping.load(AtomicOrdering::SeqCst) {
            return Err(PluginError::new(
                codes::UNAVAILABLE,
                "the user system is shutting down",
            ));
        }
        if builder.is_some() {
            return Ok(false);
        }
        let Some(start) = start.take() else {
            return Ok(false);
        };
        {
            let mut state = self.lock_write();
            if matches!(&*state, State::Ready(_)) {
                return Ok(false);
            }
            *state = State::Building {
                pending: HashSet::new(),
                poisoned: false,
            };
        }
        match start(Arc::clone(self)) {
            Ok(handle) => {
                *builder = Some(handle);
                Ok(true)
            }
            Err(e) => {
                *self.lock_write() = State::Absent;
                Err(PluginError::internal(format!(
                    "cannot start the user index build: {e}"
                )))
            }
        }
    }

    /// Stops a running build and waits for its thread (deactivation).
    pub fn stop_build(&self) {
        self.stopping.store(true, AtomicOrdering::SeqCst);
        let running = self
            .builder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = running {
            let _ = handle.join();
        }
    }

    /// Waits up to `patience` while another call builds the index; false if
    /// that build is still running then (true when built or not started).
    fn await_other_build(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        loop {
            if !matches!(&*self.lock_read(), State::Building { .. }) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The body of a build thread: builds, and records an error for the
    /// next `list` (the state is then `Absent` again).
    fn build_in_background(&self, host: &Host) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.build(host)));
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => {
                *self.lock_write() = State::Absent;
                PluginError::internal("building the user index panicked")
            }
        };
        if error.code != codes::UNAVAILABLE {
            host.warn(format!("building the user index failed: {}", error.message));
        }
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// Builds the index from the store; the state is `Building` (set by
    /// [`UserIndex::start_build`]) and ends `Ready`, or `Absent` on an
    /// error.
    fn build(&self, host: &Host) -> Result<(), PluginError> {
        let started = Instant::now();
        let store = host.store();
        let scanned = scan(&store, &self.stopping);
        let mut state = self.lock_write();
        let State::Building { pending, poisoned } = std::mem::replace(&mut *state, State::Absent)
        else {
            return Ok(());
        };
        let mut index = scanned?;
        if poisoned {
            return Ok(());
        }
        for id in &pending {
            match store.get(store::user_key(id))? {
                Some(bytes) => index.put(Fields::of_stored(&decode_fields(&bytes)?)),
                None => index.remove(id),
            }
        }
        index.compact_if_needed();
        host.info(format!(
            "user index built: {} users in {} ms, ~{} MiB",
            index.live(),
            started.elapsed().as_millis(),
            index.approx_bytes() >> 20
        ));
        *state = State::Ready(Box::new(index));
        Ok(())
    }
}

/// Reads every user record, page by page, decoding only the indexed fields.
/// Gives up (`unavailable`) when `stop` is set.
fn scan(store: &Store, stop: &AtomicBool) -> Result<Index, PluginError> {
    let mut rows = Vec::new();
    let mut interner = Interner::default();
    let mut start = store::USER_PREFIX.as_bytes().to_vec();
    loop {
        if stop.load(AtomicOrdering::SeqCst) {
            return Err(PluginError::new(
                codes::UNAVAILABLE,
                "the user system is shutting down",
            ));
        }
        let page = store.range(&start, Some(USER_END), BUILD_PAGE)?;
        for (_, value) in &page {
            rows.push(Row::new(
                Fields::of_stored(&decode_fields(value)?),
                &mut interner,
            ));
        }
        match page.last() {
            Some((last, _)) if page.len() == BUILD_PAGE => {
                start.clone_from(last);
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(Index::from_rows(rows, interner))
}

// ---------------------------------------------------------------------------
// Decoding only what the index needs
// ---------------------------------------------------------------------------

/// A string borrowed from the stored JSON unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize, Default)]
struct StoredNames<'a> {
    #[serde(default, borrow)]
    first_name: Option<Text<'a>>,
    #[serde(default, borrow)]
    last_name: Option<Text<'a>>,
}

/// The indexed fields of a stored [`UserRecord`]; every other field is
/// skipped without being decoded into values.
#[derive(Deserialize)]
struct StoredFields<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    email: Text<'a>,
    status: Status,
    created_at: i64,
    #[serde(default, borrow)]
    profile: StoredNames<'a>,
    #[serde(default, borrow)]
    roles: Vec<Text<'a>>,
    #[serde(default, borrow)]
    groups: Vec<Text<'a>>,
}

/// The indexed fields of one user.
struct Fields<'a> {
    id: &'a str,
    email: &'a str,
    status: Status,
    created_at: i64,
    first: Option<&'a str>,
    last: Option<&'a str>,
    roles: Vec<&'a str>,
    groups: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn of_record(r: &'a UserRecord) -> Self {
        Fields {
            id: &r.id,
            email: &r.email,
            status: r.status,
            created_at: r.created_at,
            first: r.profile.first_name.as_deref(),
            last: r.profile.last_name.as_deref(),
            roles: r.roles.iter().map(String::as_str).collect(),
            groups: r.groups.iter().map(String::as_str).collect(),
        }
    }

    fn of_stored(s: &'a StoredFields<'a>) -> Self {
        Fields {
            id: &s.id.0,
            email: &s.email.0,
            status: s.status,
            created_at: s.created_at,
            first: s.profile.first_name.as_ref().map(|t| &*t.0),
            last: s.profile.last_name.as_ref().map(|t| &*t.0),
            roles: s.roles.iter().map(|t| &*t.0).collect(),
            groups: s.groups.iter().map(|t| &*t.0).collect(),
        }
    }
}

/// Decodes the indexed fields of a stored record.
fn decode_fields(bytes: &[u8]) -> Result<StoredFields<'_>, PluginError> {
    serde_json::from_slice(bytes)
        .map_err(|e| PluginError::storage(format!("a stored user record is not valid: {e}")))
}

// ---------------------------------------------------------------------------
// The index proper
// ---------------------------------------------------------------------------

/// A fast hasher for `u32` trigram keys (a multiplicative hash; the keys
/// are not attacker-chosen in a way that matters: at worst a slower map).
#[derive(Default)]
struct GramHasher(u64);

impl Hasher for GramHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type GramMap = HashMap<u32, Vec<u32>, BuildHasherDefault<GramHasher>>;

/// Shares one allocation per distinct role or group id.
#[derive(Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(shared.clone());
        shared
    }
}

/// What the index keeps per user.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: Arc<str>,
    /// Lower-cased address (`email::key`): sort key and searched text.
    email: Arc<str>,
    /// Lower-cased first name ("" when absent).
    first: Arc<str>,
    /// Lower-cased last name ("" when absent).
    last: Arc<str>,
    created_at: i64,
    status: Status,
    roles: Box<[Arc<str>]>,
    groups: Box<[Arc<str>]>,
}

fn lower(s: Option<&str>) -> Arc<str> {
    Arc::from(s.unwrap_or("").to_lowercase())
}

impl Row {
    fn new(f: Fields<'_>, interner: &mut Interner) -> Row {
        Row {
            id: Arc::from(f.id),
            email: Arc::from(f.email.to_lowercase()),
            first: lower(f.first),
            last: lower(f.last),
            created_at: f.created_at,
            status: f.status,
            roles: f.roles.iter().map(|r| interner.get(r)).collect(),
            groups: f.groups.iter().map(|g| interner.get(g)).collect(),
        }
    }

    /// Whether the search needle (lower-cased) is a substring of a field.
    fn matches_text(&self, needle: &str) -> bool {
        let n = needle.as_bytes();
        contains(self.email.as_bytes(), n)
            || contains(self.first.as_bytes(), n)
            || contains(self.last.as_bytes(), n)
    }

    /// Every distinct trigram of the searched fields.
    fn grams(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for field in [&self.email, &self.first, &self.last] {
            out.extend(grams_of(field.as_bytes()));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Whether `needle` (not empty) occurs in `haystack`. For the short fields
/// of a row a plain scan beats `str::contains`, whose searcher set-up
/// dominated the query profile; on UTF-8 a byte match is a character match.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if haystack.len() < needle.len() {
        return false;
    }
    let last_start = haystack.len() - needle.len();
    haystack[..=last_start]
        .iter()
        .enumerate()
        .any(|(i, &b)| b == first && haystack[i + 1..i + needle.len()] == *rest)
}

/// The byte trigrams of `text` (a substring of a field has all its trigrams
/// in that field; UTF-8 makes byte and character substrings agree).
fn grams_of(text: &[u8]) -> impl Iterator<Item = u32> + '_ {
    text.windows(3)
        .map(|w| (u32::from(w[0]) << 16) | (u32::from(w[1]) << 8) | u32::from(w[2]))
}

fn cmp_rows(sort: SortKey, a: &Row, b: &Row) -> Ordering {
    match sort {
        SortKey::Email => (&a.email, &a.id).cmp(&(&b.email, &b.id)),
        SortKey::Name => {
            (&a.last, &a.first, &a.email, &a.id).cmp(&(&b.last, &b.first, &b.email, &b.id))
        }
        SortKey::CreatedAt => (a.created_at, &a.id).cmp(&(b.created_at, &b.id)),
    }
}

/// A number whose order agrees with [`cmp_rows`] wherever the two differ:
/// the first 8 bytes of the address or last name (big-endian, zero-padded;
/// a proper prefix sorts first either way), or the creation time.
fn sort_prefix(sort: SortKey, r: &Row) -> u64 {
    let head = |s: &str| {
        let mut b = [0u8; 8];
        let n = s.len().min(8);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        u64::from_be_bytes(b)
    };
    match sort {
        SortKey::Email => head(&r.email),
        SortKey::Name => head(&r.last),
        SortKey::CreatedAt => (r.created_at as u64) ^ (1 << 63),
    }
}

type NameKey = (Arc<str>, Arc<str>, Arc<str>, Arc<str>);

/// The rows, their posting lists and the ordered sets.
#[derive(Default)]
struct Index {
    rows: Vec<Option<Row>>,
    slot_of: HashMap<Arc<str>, u32>,
    dead: usize,
    grams: GramMap,
    roles: HashMap<Arc<str>, Vec<u32>>,
    groups: HashMap<Arc<str>, Vec<u32>>,
    by_email: BTreeSet<(Arc<str>, Arc<str>)>,
    by_name: BTreeSet<NameKey>,
    by_created: BTreeSet<(i64, Arc<str>)>,
    interner: Interner,
}

fn name_key(r: &Row) -> NameKey {
    (
        r.last.clone(),
        r.first.clone(),
        r.email.clone(),
        r.id.clone(),
    )
}

impl Index {
    /// An index over `rows` (each id at most once; a later duplicate wins).
    fn from_rows(rows: Vec<Row>, interner: Interner) -> Index {
        let mut index = Index {
            interner,
            ..Index::default()
        };
        let mut seen: HashMap<Arc<str>, usize> = HashMap::with_capacity(rows.len());
        let mut dense: Vec<Row> = Vec::with_capacity(rows.len());
        for row in rows {
            match seen.get(&row.id) {
                Some(&i) => dense[i] = row,
                None => {
                    seen.insert(row.id.clone(), dense.len());
                    dense.push(row);
                }
            }
        }
        index.by_email = dense
            .iter()
            .map(|r| (r.email.clone(), r.id.clone()))
            .collect();
        index.by_name = dense.iter().map(name_key).collect();
        index.by_created = dense.iter().map(|r| (r.created_at, r.id.clone())).collect();
        index.slot_of = seen.into_iter().map(|(id, i)| (id, i as u32)).collect();
        for (slot, row) in dense.iter().enumerate() {
            index.post(slot as u32, row);
        }
        index.rows = dense.into_iter().map(Some).collect();
        index
    }

    fn live(&self) -> usize {
        self.slot_of.len()
    }

    /// An estimate of the heap bytes the index holds (allocations counted
    /// by capacity; B-tree nodes as 1.5× their entries).
    fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        let text = |s: &Arc<str>| 2 * size_of::<usize>() + s.len();
        let rows: usize = self
            .rows
            .iter()
            .flatten()
            .map(|r| {
                text(&r.id)
                    + text(&r.email)
                    + text(&r.first)
                    + text(&r.last)
                    + (r.roles.len() + r.groups.len()) * size_of::<Arc<str>>()
            })
            .sum();
        let postings = |m: &HashMap<Arc<str>, Vec<u32>>| -> usize {
            m.values().map(|v| v.capacity() * 4 + 48).sum()
        };
        let grams: usize = self.grams.values().map(|v| v.capacity() * 4 + 40).sum();
        self.rows.capacity() * size_of::<Option<Row>>()
            + rows
            + self.slot_of.capacity() * (size_of::<(Arc<str>, u32)>() + 1)
            + grams
            + postings(&self.roles)
            + postings(&self.groups)
            + 3 * (self.by_email.len() * size_of::<(Arc<str>, Arc<str>)>()
                + self.by_name.len() * size_of::<NameKey>()
                + self.by_created.len() * size_of::<(i64, Arc<str>)>())
                / 2
    }

    /// Adds `slot` to the posting lists of `row`.
    fn post(&mut self, slot: u32, row: &Row) {
        for gram in row.grams() {
            self.grams.entry(gram).or_default().push(slot);
        }
        for role in row.roles.iter() {
            self.roles.entry(role.clone()).or_default().push(slot);
        }
        for group in row.groups.iter() {
            self.groups.entry(group.clone()).or_default().push(slot);
        }
    }

    /// Inserts or replaces the row of one user.
    fn put(&mut self, fields: Fields<'_>) {
        let row = Row::new(fields, &mut self.interner);
        if let Some(&slot) = self.slot_of.get(&row.id) {
            if self.rows[slot as usize].as_ref() == Some(&row) {
                return;
            }
            self.remove(&row.id);
        }
        if self.rows.len() >= u32::MAX as usize {
            // Slot numbers exhausted: renumber (live rows are far fewer).
            self.compact();
        }
        let slot = self.rows.len() as u32;
        self.insert_at(slot, row);
    }

    fn insert_at(&mut self, slot: u32, row: Row) {
        self.post(slot, &row);
        self.by_email.insert((row.email.clone(), row.id.clone()));
        self.by_name.insert(name_key(&row));
        self.by_created.insert((row.created_at, row.id.clone()));
        self.slot_of.insert(row.id.clone(), slot);
        self.rows.push(Some(row));
    }

    /// Removes the row of user `id` (if any); its slot becomes dead.
    fn remove(&mut self, id: &str) {
        let Some(slot) = self.slot_of.remove(id) else {
            return;
        };
        let Some(row) = self.rows.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.by_email.remove(&(row.email.clone(), row.id.clone()));
        self.by_name.remove(&name_key(&row));
        self.by_created.remove(&(row.created_at, row.id.clone()));
        self.dead += 1;
    }

    fn compact_if_needed(&mut self) {
        if self.dead > self.live() + DEAD_SLACK {
            self.compact();
        }
    }

    /// Rebuilds the slots and posting lists without dead slots.
    fn compact(&mut self) {
        let rows: Vec<Row> = std::mem::take(&mut self.rows)
            .into_iter()
            .flatten()
            .collect();
        let interner = std::mem::take(&mut self.interner);
        *self = Index::from_rows(rows, interner);
    }

    /// The page and total of `q`.
    fn query<'a>(&'a self, q: &Query<'_>) -> Page {
        let unfiltered =
            q.search.is_none() && q.status.is_none() && q.role.is_none() && q.group.is_none();
        if unfiltered {
            let ids = match q.sort {
                SortKey::Email => page_of(self.by_email.iter().map(|e| &e.1), q),
                SortKey::Name => page_of(self.by_name.iter().map(|e| &e.3), q),
                SortKey::CreatedAt => page_of(self.by_created.iter().map(|e| &e.1), q),
            };
            return Page {
                ids,
                total: self.live() as u64,
            };
        }
        let empty = Page {
            ids: Vec::new(),
            total: 0,
        };
        // The shortest posting list that every match must be in.
        let mut lists: Vec<Option<&Vec<u32>>> = Vec::new();
        if let Some(needle) = q.search.filter(|n| n.len() >= 3) {
            lists.extend(grams_of(needle.as_bytes()).map(|g| self.grams.get(&g)));
        }
        if let Some(role) = q.role {
            lists.push(self.roles.get(role));
        }
        if let Some(group) = q.group {
            lists.push(self.groups.get(group));
        }
        let mut best: Option<&[u32]> = None;
        for list in lists {
            let Some(list) = list else {
                // A trigram, role or group nobody has: no match.
                return empty;
            };
            if best.is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        let keep = |r: &Row| -> bool {
            q.search.is_none_or(|n| r.matches_text(n))
                && q.status.is_none_or(|f| matches_status(f, &r.status, q.now))
                && q.role
                    .is_none_or(|role| r.roles.iter().any(|x| &**x == role))
                && q.group
                    .is_none_or(|group| r.groups.iter().any(|x| &**x == group))
        };
        // Each match with the first 8 bytes of its sort key, so that most
        // comparisons of the selection touch no row text (rows are scattered
        // in memory; chasing their strings dominated the query profile).
        let keyed = |r: &'a Row| (sort_prefix(q.sort, r), r);
        let mut matches: Vec<(u64, &Row)> = match best {
            Some(slots) => slots
                .iter()
                .filter_map(|s| self.rows.get(*s as usize).and_then(Option::as_ref))
                .filter(|r| keep(r))
                .map(keyed)
                .collect(),
            None => self
                .rows
                .iter()
                .flatten()
                .filter(|r| keep(r))
                .map(keyed)
                .collect(),
        };
        let total = matches.len();
        let end = q.offset.saturating_add(q.limit).min(total);
        if q.offset >= end {
            return Page {
                ids: Vec::new(),
                total: total as u64,
            };
        }
        let cmp = |a: &(u64, &Row), b: &(u64, &Row)| {
            let o = a.0.cmp(&b.0).then_with(|| cmp_rows(q.sort, a.1, b.1));
            match q.order {
                SortOrder::Asc => o,
                SortOrder::Desc => o.reverse(),
            }
        };
        if end < total {
            matches.select_nth_unstable_by(end - 1, cmp);
            matches.truncate(end);
        }
        matches.sort_unstable_by(cmp);
        Page {
            ids: matches[q.offset..end]
                .iter()
                .map(|(_, r)| r.id.to_string())
                .collect(),
            total: total as u64,
        }
    }
}

/// One page of an ordered id sequence (reversed for `desc`).
fn page_of<'a, I>(ids: I, q: &Query<'_>) -> Vec<String>
where
    I: DoubleEndedIterator<Item = &'a Arc<str>> + 'a,
{
    let ids: Box<dyn Iterator<Item = &'a Arc<str>> + 'a> = match q.order {
        SortOrder::Asc => Box::new(ids),
        SortOrder::Desc => Box::new(ids.rev()),
    };
    ids.skip(q.offset)
        .take(q.limit)
        .map(|id| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_list_waits_for_another_calls_build_only_so_long() {
        let users = Arc::new(UserIndex::new());
        // Not built: the caller builds it itself, no waiting.
        assert!(users.await_other_build(Duration::ZERO));
        *users.lock_write() = State::Building {
            pending: HashSet::new(),
            poisoned: false,
        };
        let t = Instant::now();
        assert!(!users.await_other_build(Duration::from_millis(50)));
        assert!(t.elapsed() >= Duration::from_millis(50));
        // A build that finishes while the caller waits lets it through.
        let builder = {
            let users = users.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                *users.lock_write() = State::Ready(Box::default());
            })
        };
        assert!(users.await_other_build(Duration::from_secs(5)));
        builder.join().expect("builder thread");
        assert!(users.is_built());
    }

    /// An index holding one user `id`.
    fn one_user(id: &str) -> Index {
        let mut index = Index::default();
        index.put(Fields {
            id,
            email: "a@example.com",
            status: Status::Enabled,
            created_at: 1,
            first: None,
            last: None,
            roles: Vec::new(),
            groups: Vec::new(),
        });
        index
    }

    fn all_query() -> Query<'static> {
        Query {
            search: None,
            status: None,
            role: None,
            group: None,
            sort: SortKey::Email,
            order: SortOrder::Asc,
            offset: 0,
            limit: 50,
            now: 0,
        }
    }

    /// What `list_with` answers.
    type ListResult = Result<Page, PluginError>;

    /// A user index under test, listed with [`all_query`], and the number
    /// of builds that [`Lists::slow`] started.
    struct Lists {
        users: Arc<UserIndex>,
        started: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Lists {
        fn new() -> Lists {
            Lists {
                users: Arc::new(UserIndex::new()),
                started: Arc::default(),
            }
        }

        /// `list_with` of [`all_query`] with the patiences in ms.
        fn list<F>(&self, first_patience_ms: u64, patience_ms: u64, start: F) -> ListResult
        where
            F: FnOnce(Arc<UserIndex>) -> std::io::Result<JoinHandle<()>>,
        {
            self.users.list_with(
                &all_query(),
                Duration::from_millis(first_patience_ms),
                Duration::from_millis(patience_ms),
                start,
            )
        }

        /// A build thread that publishes `one_user(id)` after `delay_ms`,
        /// counted in `started`.
        fn slow(
            &self,
            delay_ms: u64,
            id: &'static str,
        ) -> impl FnOnce(Arc<UserIndex>) -> std::io::Result<JoinHandle<()>> {
            let started = Arc::clone(&self.started);
            let delay = Duration::from_millis(delay_ms);
            move |users| {
                started.fetch_add(1, AtomicOrdering::SeqCst);
                Ok(std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let mut state = users.lock_write();
                    assert!(matches!(&*state, State::Building { .. }));
                    *state = State::Ready(Box::new(one_user(id)));
                }))
            }
        }

        /// How many builds [`Lists::slow`] started.
        fn started(&self) -> usize {
            self.started.load(AtomicOrdering::SeqCst)
        }
    }

    #[test]
    fn a_quick_first_build_answers_the_first_list_with_its_page() {
        let l = Lists::new();
        let page = l
            .list(5_000, 0, l.slow(20, "u1"))
            .expect("the first list answers");
        assert_eq!(page.ids, vec!["u1".to_string()]);
        assert_eq!(l.started(), 1);
        // Built: later lists start nothing.
        let again = l.list(0, 0, l.slow(0, "other")).unwrap();
        assert_eq!(again.ids, vec!["u1".to_string()]);
        assert_eq!(l.started(), 1);
    }

    #[test]
    fn a_slow_first_build_answers_unavailable_in_time_and_goes_on_in_the_background() {
        let l = Lists::new();
        let t = Instant::now();
        let e = l.list(100, 20, l.slow(600, "u1")).unwrap_err();
        assert_eq!(e.code, codes::UNAVAILABLE, "{e:?}");
        assert!(e.message.contains("being indexed"), "{e:?}");
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_millis(600), "{waited:?}");
        // A list meanwhile waits only its own patience and starts no build.
        let e = l.list(5_000, 20, l.slow(0, "other")).unwrap_err();
        assert_eq!(e.code, codes::UNAVAILABLE);
        assert_eq!(l.started(), 1);
        // The build finishes without any caller; then lists answer at once.
        let page = l.list(0, 5_000, l.slow(0, "other")).unwrap();
        assert_eq!(page.ids, vec!["u1".to_string()]);
        assert_eq!(l.started(), 1);
    }

    #[test]
    fn a_failed_build_is_reported_once_and_the_next_list_builds_again() {
        let l = Lists::new();
        let failing = |users: Arc<UserIndex>| -> std::io::Result<JoinHandle<()>> {
            Ok(std::thread::spawn(move || {
                *users.lock_write() = State::Absent;
                *users.failure.lock().unwrap() = Some(PluginError::storage("disk on fire"));
            }))
        };
        let e = l.list(5_000, 0, failing).unwrap_err();
        assert_eq!(e.code, codes::STORAGE, "{e:?}");
        assert!(!l.users.is_built());
        let page = l.list(5_000, 0, l.slow(0, "u2")).unwrap();
        assert_eq!(page.ids, vec!["u2".to_string()]);
        assert_eq!(l.started(), 1);
    }

    #[test]
    fn stopping_waits_for_the_build_thread_and_refuses_new_builds() {
        let l = Lists::new();
        let until_stopped = |users: Arc<UserIndex>| -> std::io::Result<JoinHandle<()>> {
            Ok(std::thread::spawn(move || {
                while !users.stopping.load(AtomicOrdering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                *users.lock_write() = State::Absent;
            }))
        };
        let e = l.list(20, 0, until_stopped).unwrap_err();
        assert_eq!(e.code, codes::UNAVAILABLE);
        l.users.stop_build();
        assert!(l.users.builder.lock().unwrap().is_none(), "joined");
        assert!(!l.users.is_built());
        let e = l.list(5_000, 0, l.slow(0, "u3")).unwrap_err();
        assert_eq!(e.code, codes::UNAVAILABLE);
        assert_eq!(l.started(), 0);
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    #[derive(Debug, Clone)]
    struct Rec {
        id: String,
        email: String,
        first: Option<String>,
        last: Option<String>,
        created_at: i64,
        status: Status,
        roles: BTreeSet<String>,
        groups: BTreeSet<String>,
    }

    impl Rec {
        fn fields(&self) -> Fields<'_> {
            Fields {
                id: &self.id,
                email: &self.email,
                status: self.status,
                created_at: self.created_at,
                first: self.first.as_deref(),
                last: self.last.as_deref(),
                roles: self.roles.iter().map(String::as_str).collect(),
                groups: self.groups.iter().map(String::as_str).collect(),
            }
        }
    }

    fn low(s: &Option<String>) -> String {
        s.as_deref().unwrap_or("").to_lowercase()
    }

    /// The list semantics written out plainly (what `list` did before the
    /// index: filter every record, sort all matches, reverse, page).
    fn reference(records: &BTreeMap<String, Rec>, q: &Query<'_>) -> Page {
        let mut matches: Vec<&Rec> = records
            .values()
            .filter(|r| {
                q.search.is_none_or(|n| {
                    r.email.to_lowercase().contains(n)
                        || low(&r.first).contains(n)
                        || low(&r.last).contains(n)
                })
            })
            .filter(|r| q.status.is_none_or(|f| matches_status(f, &r.status, q.now)))
            .filter(|r| q.role.is_none_or(|x| r.roles.contains(x)))
            .filter(|r| q.group.is_none_or(|x| r.groups.contains(x)))
            .collect();
        match q.sort {
            SortKey::Email => {
                matches.sort_by_cached_key(|r| (r.email.to_lowercase(), r.id.clone()))
            }
            SortKey::Name => matches.sort_by_cached_key(|r| {
                (
                    low(&r.last),
                    low(&r.first),
                    r.email.to_lowercase(),
                    r.id.clone(),
                )
            }),
            SortKey::CreatedAt => matches.sort_by_cached_key(|r| (r.created_at, r.id.clone())),
        }
        if q.order == SortOrder::Desc {
            matches.reverse();
        }
        Page {
            total: matches.len() as u64,
            ids: matches
                .iter()
                .skip(q.offset)
                .take(q.limit)
                .map(|r| r.id.clone())
                .collect(),
        }
    }

    const FIRST: &[&str] = &["Anna", "Ölaf", "Jo", "ΣΟΦΙΑ", "Smithers", "", "Mia-Lou"];
    const LAST: &[&str] = &["Smith", "Meyer", "Özdemir", "Ng", "Goldsmith", "ΟΔΥΣΣΕΑΣ"];
    const DOMAIN: &[&str] = &["example.com", "Example.ORG", "smith.io", "mail.de"];
    const IDS: &[&str] = &["admins", "editors", "berlin", "x"];
    const NOW: i64 = 1_000_000;

    fn random_rec(rng: &mut Rng, id: String) -> Rec {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let local = match rng.below(3) {
            0 => format!("{}.{}", first, last),
            1 => format!("{}{}", last, rng.below(100)),
            _ => format!("u{}", rng.below(1000)),
        };
        let status = match rng.below(4) {
            0 => Status::Disabled,
            1 => Status::EnabledUntil {
                until: NOW - 10 + rng.below(20) as i64,
            },
            _ => Status::Enabled,
        };
        let set = |rng: &mut Rng| -> BTreeSet<String> {
            (0..rng.below(3))
                .map(|_| rng.pick(IDS).to_string())
                .collect()
        };
        Rec {
            email: format!("{local}@{}", rng.pick(DOMAIN)),
            first: (!first.is_empty() && rng.below(5) > 0).then(|| first.to_string()),
            last: (rng.below(5) > 0).then(|| last.to_string()),
            created_at: rng.below(50) as i64 - 25,
            status,
            roles: set(rng),
            groups: set(rng),
            id,
        }
    }

    fn random_query<'a>(
        rng: &mut Rng,
        records: &BTreeMap<String, Rec>,
        search: &'a mut String,
    ) -> Query<'a> {
        *search = match rng.below(6) {
            0 => String::new(),
            1 => ["smith", "ö", "σ", "ς", "a", ".", "ex", "xyz", "@ma", "zzz"][rng.below(10)]
                .to_string(),
            _ => {
                // A piece of an existing field.
                let all: Vec<&Rec> = records.values().collect();
                if all.is_empty() {
                    String::new()
                } else {
                    let r = all[rng.below(all.len())];
                    let text = match rng.below(3) {
                        0 => r.email.to_lowercase(),
                        1 => low(&r.first),
                        _ => low(&r.last),
                    };
                    let chars: Vec<char> = text.chars().collect();
                    let start = rng.below(chars.len().max(1));
                    let len = 1 + rng.below(6);
                    chars.iter().skip(start).take(len).collect()
                }
            }
        };
        Query {
            search: (!search.is_empty()).then_some(search.as_str()),
            status: [
                None,
                None,
                Some(StatusFilter::Enabled),
                Some(StatusFilter::Disabled),
                Some(StatusFilter::Expired),
                Some(StatusFilter::Active),
            ][rng.below(6)],
            role: [None, None, Some("admins"), Some("editors"), Some("nobody")][rng.below(5)],
            group: [None, None, Some("berlin"), Some("x")][rng.below(4)],
            sort: [SortKey::Email, SortKey::Name, SortKey::CreatedAt][rng.below(3)],
            order: [SortOrder::Asc, SortOrder::Desc][rng.below(2)],
            offset: [0, 0, 1, 3, 10, 1000][rng.below(6)],
            limit: [1, 2, 5, 50][rng.below(4)],
            now: NOW,
        }
    }

    fn check(index: &Index, records: &BTreeMap<String, Rec>, rng: &mut Rng, queries: usize) {
        for _ in 0..queries {
            let mut search = String::new();
            let q = random_query(rng, records, &mut search);
            assert_eq!(index.query(&q), reference(records, &q), "{q:?}");
        }
        assert_eq!(index.live(), records.len());
    }

    #[test]
    fn random_operations_match_the_plain_semantics() {
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut records: BTreeMap<String, Rec> = BTreeMap::new();
            // Start from a built index like the lazy build does.
            let mut interner = Interner::default();
            let initial: Vec<Row> = (0..40)
                .map(|i| {
                    let rec = random_rec(&mut rng, format!("{i:032x}"));
                    let row = Row::new(rec.fields(), &mut interner);
                    records.insert(rec.id.clone(), rec);
                    row
                })
                .collect();
            let mut index = Index::from_rows(initial, interner);
            check(&index, &records, &mut rng, 50);
            let mut next = 40;
            for step in 0..600 {
                let ids: Vec<String> = records.keys().cloned().collect();
                match rng.below(10) {
                    0..=3 => {
                        let rec = random_rec(&mut rng, format!("{next:032x}"));
                        next += 1;
                        index.put(rec.fields());
                        records.insert(rec.id.clone(), rec);
                    }
                    4..=6 if !ids.is_empty() => {
                        // Change some fields of an existing user.
                        let id = &ids[rng.below(ids.len())];
                        let mut rec = random_rec(&mut rng, id.clone());
                        let old = &records[id];
                        if rng.below(2) == 0 {
                            rec.email.clone_from(&old.email);
                            rec.created_at = old.created_at;
                        }
                        index.put(rec.fields());
                        records.insert(id.clone(), rec);
                    }
                    7 if !ids.is_empty() => {
                        // Writing the same record again changes nothing.
                        let rec = records[&ids[rng.below(ids.len())]].clone();
                        index.put(rec.fields());
                    }
                    8 if !ids.is_empty() => {
                        let id = &ids[rng.below(ids.len())];
                        index.remove(id);
                        records.remove(id);
                    }
                    _ => {
                        index.remove("not-there");
                        if step % 50 == 0 {
                            index.compact();
                        }
                    }
                }
                check(&index, &records, &mut rng, 3);
            }
            check(&index, &records, &mut rng, 200);
        }
    }

    #[test]
    fn byte_contains_agrees_with_str_contains() {
        let hay = [
            "",
            "a",
            "smith",
            "goldsmith@smith.io",
            "οδυσσεας",
            "ölaf.özdemir",
        ];
        let needles = [
            "a",
            "smith",
            "th",
            "h@",
            "σσ",
            "ς",
            "ö",
            "z",
            "smithx",
            "οδυσσεας!",
        ];
        for h in hay {
            for n in needles {
                assert_eq!(
                    contains(h.as_bytes(), n.as_bytes()),
                    h.contains(n),
                    "{h} {n}"
                );
            }
        }
    }

    #[test]
    fn many_changes_compact_the_slots() {
        let mut rng = Rng(7);
        let mut records: BTreeMap<String, Rec> = BTreeMap::new();
        let mut index = Index::default();
        for i in 0..20 {
            let rec = random_rec(&mut rng, format!("{i:032x}"));
            index.put(rec.fields());
            records.insert(rec.id.clone(), rec);
        }
        for round in 0..(DEAD_SLACK + 100) {
            let id = format!("{:032x}", round % 20);
            let mut rec = random_rec(&mut rng, id.clone());
            rec.created_at = round as i64; // always a change
            index.put(rec.fields());
            index.compact_if_needed();
            records.insert(id, rec);
        }
        assert!(index.rows.len() <= 2 * records.len() + DEAD_SLACK + 1);
        assert!(index.dead <= records.len() + DEAD_SLACK);
        check(&index, &records, &mut rng, 300);
    }

    #[test]
    fn stored_fields_decode_from_a_full_record() {
        let record = UserRecord {
            id: "ab".repeat(16),
            email: "Ada.Lovelace@Example.org".into(),
            status: Status::EnabledUntil { until: 5 },
            email_verified: true,
            require_password_change: false,
            created_at: 42,
            updated_at: 43,
            password_changed_at: None,
            last_login_at: Some(7),
            profile: crate::profile::Profile {
                first_name: Some("Ada \"the first\"".into()),
                last_name: Some("LOVELACE".into()),
                city: Some("London".into()),
                ..Default::default()
            },
            avatar: None,
            roles: ["admins".to_string()].into(),
            groups: ["a".to_string(), "b".to_string()].into(),
            permissions: ["user.read".to_string()].into(),
            consents: Default::default(),
            rev: 9,
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        let stored = decode_fields(&bytes).unwrap();
        let mut interner = Interner::default();
        let from_bytes = Row::new(Fields::of_stored(&stored), &mut interner);
        let from_record = Row::new(Fields::of_record(&record), &mut interner);
        assert_eq!(from_bytes, from_record);
        assert_eq!(&*from_bytes.first, "ada \"the first\"");
        assert_eq!(&*from_bytes.email, "ada.lovelace@example.org");
        assert!(decode_fields(b"{\"id\": 1}").is_err());
    }
}
