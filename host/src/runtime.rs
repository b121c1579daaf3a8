//! The running host: activation, call dispatch, authorization, events,
//! shutdown. This is the library integrators embed; the CLI is a thin layer
//! over it.
//!
//! Invariants:
//! * a plugin is activated only after every hard requirement is active, and
//!   deactivated in reverse activation order;
//! * a plugin that fails (error or panic) is `failed`, its hard dependents
//!   `blocked`; nothing else is affected;
//! * every call goes through [`HostInner::dispatch`], which checks that the
//!   operation is declared and that the caller satisfies its access rule
//!   before the plugin runs;
//! * events published during a call are delivered after the outermost call
//!   returns, so subscribers observe the write that caused them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use abi_stable::sabi_trait::TD_Opaque;
use serde::{de::DeserializeOwned, Serialize};
use syshost_plugin_api::abi::{HostObj_TO, PluginBox};
use syshost_plugin_api::{
    codes, Access, CallContext, Event, Manifest, OperationDecl, PluginError, Subject,
};
use thiserror::Error;

use crate::discovery::{discover, discover_files, Discovery, DiscoveryError};
use crate::mail::{MailService, MailSettings, MailStats, Mailer};
use crate::resolver::{self, Outcome, Plan, Reason};
use crate::services::PluginServices;
use crate::store::{SledStore, Store, StoreError, StoreOptions, TreeDump};
use crate::subjects::{CachedSubject, SubjectCache};

/// The deepest chain of nested cross-plugin calls allowed.
const MAX_CALL_DEPTH: usize = 32;
/// The most events one outermost call may cause (guards against loops).
const MAX_EVENTS_PER_CALL: usize = 10_000;
/// Default per-call time budget (config `limits.call_budget_ms`).
pub const DEFAULT_CALL_BUDGET_MS: u64 = 10_000;
/// Default largest response a plugin may hand to the host (config
/// `limits.max_response_bytes`).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Milliseconds since the Unix epoch from the system clock.
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Errors building or driving the host.
#[derive(Debug, Error)]
pub enum HostError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mail service could not start (bad sender or SMTP URL).
    #[error("{0}")]
    Mail(String),
    /// A system could not be activated.
    #[error("cannot activate '{id}': {reason}")]
    Activation {
        /// The requested system.
        id: String,
        /// Why (resolution failure, failed or blocked).
        reason: String,
    },
}

/// Lifecycle state of a discovered system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemState {
    /// Activated and serving calls.
    Active,
    /// Discovered but not requested by anything.
    Available,
    /// Resolution or activation failed (or it panicked).
    Failed,
    /// A hard requirement failed, so it was not activated.
    Blocked,
}

/// One row of the systems listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SystemStatus {
    /// Plugin id.
    pub id: String,
    /// Plugin version.
    pub version: String,
    /// Lifecycle state.
    pub state: SystemState,
    /// Activation index (0-based) when active.
    pub order: Option<usize>,
    /// `enabled`, `required by <id>`, `wanted by <id>`, or the error.
    pub reason: String,
    /// The library file.
    pub path: PathBuf,
}

pub use syshost_plugin_api::RegisteredPermission;

/// The permission registry as of one generation: rebuilt when a system is
/// activated or deactivated, read by every registry lookup.
#[derive(Debug, Default)]
pub(crate) struct PermissionSnapshot {
    /// Bumped with every rebuild; plugins cache the registry per generation.
    pub(crate) generation: u64,
    /// Every permission of every active system, sorted by id.
    pub(crate) list: Vec<RegisteredPermission>,
}

/// What plugins may know about the installation (host service `site`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SiteInfo {
    /// Product name used in mail and pages.
    pub product_name: String,
    /// Public base URL for links, without a trailing slash.
    pub public_url: String,
}

impl Default for SiteInfo {
    fn default() -> Self {
        SiteInfo {
            product_name: "syshost".to_string(),
            public_url: "http://127.0.0.1:8080".to_string(),
        }
    }
}

/// Credentials for the first administrator (host service `bootstrap_admin`).
/// Only `syshost run` enables it; the user system creates the account when
/// its store holds no user yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BootstrapAdmin {
    /// Login email (default `admin@localhost`).
    pub email: Option<String>,
    /// Password; when absent a one-time password is generated and logged once.
    pub password: Option<String>,
}

/// Builds a [`Host`].
#[derive(Default)]
pub struct HostBuilder {
    data_dir: Option<PathBuf>,
    plugin_dirs: Vec<PathBuf>,
    plugin_files: Vec<PathBuf>,
    temporary_store: bool,
    mailer: Option<Arc<dyn Mailer>>,
    mail: Option<MailSettings>,
    site: SiteInfo,
    bootstrap_admin: Option<BootstrapAdmin>,
    clock: Option<Arc<dyn Fn() -> i64 + Send + Sync>>,
    store_options: StoreOptions,
    relaxed_durability: bool,
    call_budget: Option<std::time::Duration>,
    max_response_bytes: Option<usize>,
}

impl HostBuilder {
    /// sled tuning (background flush interval).
    pub fn store_options(mut self, options: StoreOptions) -> Self {
        self.store_options = options;
        self
    }

    /// `true` (the default): every outermost call flushes the store before
    /// it returns, so an acknowledged write is on disk. `false`: writes
    /// reach disk with sled's background flush only (config
    /// `store.sync_writes = false`).
    pub fn sync_writes(mut self, sync: bool) -> Self {
        self.relaxed_durability = !sync;
        self
    }

    /// The time one call may take before the host reports it (config
    /// `limits.call_budget_ms`; default 10 s).
    pub fn call_budget(mut self, budget: std::time::Duration) -> Self {
        self.call_budget = Some(budget);
        self
    }

    /// The largest response a plugin may return (config
    /// `limits.max_response_bytes`; default 16 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// Uses `dir` for the store and other state (created if missing).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Adds a directory to scan for plugin libraries.
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dirs.push(dir.into());
        self
    }

    /// Adds several plugin directories.
    pub fn plugin_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.plugin_dirs.extend(dirs);
        self
    }

    /// Adds one plugin library file (in addition to the directories).
    pub fn plugin_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.plugin_files.push(file.into());
        self
    }

    /// Uses a throwaway in-memory store instead of a data directory.
    pub fn temporary_store(mut self) -> Self {
        self.temporary_store = true;
        self
    }

    /// Replaces the built-in mail service with a custom mailer.
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Configures the built-in mail service (default: `.eml` files in
    /// `<data dir>/outbox`).
    pub fn mail(mut self, settings: MailSettings) -> Self {
        self.mail = Some(settings);
        self
    }

    /// Sets the product name and public base URL plugins use in links.
    pub fn site(mut self, site: SiteInfo) -> Self {
        self.site = SiteInfo {
            public_url: site.public_url.trim_end_matches('/').to_string(),
            ..site
        };
        self
    }

    /// Lets the user system create the first administrator on an empty store.
    pub fn bootstrap_admin(mut self, admin: BootstrapAdmin) -> Self {
        self.bootstrap_admin = Some(admin);
        self
    }

    /// Replaces the system clock (milliseconds since the Unix epoch).
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Opens the store and discovers plugins. Nothing is activated yet.
    pub fn build(self) -> Result<Host, HostError> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./syshost-data"));
        let store: Arc<dyn Store> = if self.temporary_store {
            Arc::new(SledStore::temporary()?)
        } else {
            Arc::new(SledStore::open_with(&data_dir, self.store_options)?)
        };
        let (mailer, mail_service): (Arc<dyn Mailer>, Option<Arc<MailService>>) = match self.mailer
        {
            Some(custom) => (custom, None),
            None => {
                let settings = self.mail.unwrap_or_else(|| {
                    MailSettings::outbox(if self.temporary_store {
                        std::env::temp_dir().join(format!("syshost-outbox-{}", std::process::id()))
                    } else {
                        data_dir.join("outbox")
                    })
                });
                let service = Arc::new(
                    MailService::start(
                        settings,
                        store.host_namespace("mail_queue")?,
                        store.host_namespace("mail_dead")?,
                        store.host_namespace("mail_key")?,
                    )
                    .map_err(HostError::Mail)?,
                );
                (service.clone(), Some(service))
            }
        };
        let mut discovery = discover(&self.plugin_dirs);
        if !self.plugin_files.is_empty() {
            let extra = discover_files(&self.plugin_files);
            merge_discovery(&mut discovery, extra);
        }
        for e in &discovery.errors {
            tracing::warn!("{e}");
        }
        Ok(Host {
            inner: Arc::new(HostInner {
                store,
                mailer,
                mail_service,
                site: self.site,
                bootstrap_admin: self.bootstrap_admin,
                clock: self.clock,
                data_dir,
                discovery,
                state: Mutex::new(State::default()),
                token_resolver: RwLock::new(None),
                resolutions: Default::default(),
                active: RwLock::new(HashMap::default()),
                subjects: SubjectCache::default(),
                permissions: RwLock::new(Arc::default()),
                permission_generation: AtomicU64::new(0),
                sync_writes: !self.relaxed_durability,
                call_budget: self
                    .call_budget
                    .unwrap_or(std::time::Duration::from_millis(DEFAULT_CALL_BUDGET_MS)),
                max_response_bytes: self
                    .max_response_bytes
                    .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            }),
        })
    }
}

fn merge_discovery(into: &mut Discovery, extra: Discovery) {
    into.errors.extend(extra.errors);
    for (id, plugin) in extra.plugins {
        match into.plugins.remove(&id) {
            Some(existing) => into.errors.push(DiscoveryError::DuplicateId {
                id,
                paths: vec![existing.path, plugin.path],
            }),
            None => {
                into.plugins.insert(id, plugin);
            }
        }
    }
}

/// Maps keyed by plugin ids and operation names, which come from loaded
/// manifests (a caller's string is only ever looked up, never inserted).
type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// A running plugin.
pub(crate) struct ActivePlugin {
    /// Its id (shared with the call frames that name it).
    id: Arc<str>,
    pub(crate) manifest: Arc<Manifest>,
    object: PluginBox,
    operations: FastMap<OperationDecl>,
}

#[derive(Default)]
struct State {
    records: BTreeMap<String, Record>,
    order: Vec<String>,
}

#[derive(Clone)]
struct Record {
    state: SystemState,
    order: Option<usize>,
    reason: String,
}

/// Shared host internals (plugins hold a weak reference through their services).
pub(crate) struct HostInner {
    store: Arc<dyn Store>,
    pub(crate) mailer: Arc<dyn Mailer>,
    mail_service: Option<Arc<MailService>>,
    pub(crate) site: SiteInfo,
    pub(crate) bootstrap_admin: Option<BootstrapAdmin>,
    clock: Option<Arc<dyn Fn() -> i64 + Send + Sync>>,
    data_dir: PathBuf,
    discovery: Discovery,
    /// Lifecycle bookkeeping; held for the whole of an activation.
    state: Mutex<State>,
    /// Active plugins by id; read on every call.
    active: RwLock<FastMap<Arc<ActivePlugin>>>,
    /// The id of the session-token resolver: the first system in activation
    /// order that declares a `token_resolver`. Kept apart from `state` so a
    /// resolution (every authenticated request) never contends for the
    /// lifecycle lock; written only when a system activates or at shutdown.
    token_resolver: RwLock<Option<Arc<str>>>,
    /// The resolver's recent answers, invalidated by its events.
    resolutions: crate::resolutions::ResolutionCache,
    /// Resolved subjects, invalidated by the provider's events.
    subjects: SubjectCache,
    /// The permission registry, rebuilt when the active set changes.
    permissions: RwLock<Arc<PermissionSnapshot>>,
    /// The generation of `permissions`, stored after each new snapshot is
    /// in place: read (without the lock) by every call, whose context
    /// carries it to the plugin (`CallContext::permission_generation`).
    permission_generation: AtomicU64,
    /// Flush the store after every outermost call.
    sync_writes: bool,
    /// A call taking longer is reported.
    call_budget: std::time::Duration,
    /// A plugin response larger than this is refused.
    max_response_bytes: usize,
}

/// One frame of the per-thread call stack.
///
/// The frame borrows the caller's context instead of cloning it (a user
/// context carries every permission, role and group: cloning it was ~7 %
/// of an authenticated request). Read it only through [`Frame::ctx`].
struct Frame {
    plugin: Arc<str>,
    /// Points at the `&CallContext` given to [`enter`]. Sound because a
    /// frame lives on this thread's stack only while its [`FrameGuard`]
    /// lives, the guard borrows that context for its whole life, guards
    /// are dropped in reverse order of creation (each one inside the
    /// `dispatch` that made it, also on unwind), and the type is private
    /// to this module (never leaked or sent to another thread).
    ctx: std::ptr::NonNull<CallContext>,
}

impl Frame {
    fn ctx(&self) -> &CallContext {
        // SAFETY: see the field: the context outlives the frame.
        unsafe { self.ctx.as_ref() }
    }
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static PENDING_EVENTS: RefCell<VecDeque<Event>> = const { RefCell::new(VecDeque::new()) };
    /// While an event is being delivered: its actor and client address, so
    /// that events its handlers publish are attributed to the same cause.
    static DELIVERING: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Who caused what this thread is doing now: the actor and client address
/// of the event being delivered, else the subject of the outermost call,
/// else the host itself (`system`).
pub(crate) fn current_cause() -> (String, Option<String>) {
    if let Some(cause) = DELIVERING.with(|d| d.borrow().clone()) {
        return cause;
    }
    FRAMES.with(|f| match f.borrow().first() {
        Some(frame) => (frame.ctx().subject.label(), frame.ctx().client_addr.clone()),
        None => ("system".to_string(), None),
    })
}

/// Restores the previous delivery cause when an event handler returns.
struct CauseGuard(Option<(String, Option<String>)>);

impl Drop for CauseGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        DELIVERING.with(|d| *d.borrow_mut() = previous);
    }
}

fn set_cause(event: &Event) -> CauseGuard {
    let cause = (
        event.actor.clone().unwrap_or_else(|| "system".to_string()),
        event.client_addr.clone(),
    );
    CauseGuard(DELIVERING.with(|d| d.borrow_mut().replace(cause)))
}

/// The plugin and context of the call this thread is currently serving.
pub(crate) fn current_frame() -> Option<(String, CallContext)> {
    FRAMES.with(|f| {
        f.borrow()
            .last()
            .map(|frame| (frame.plugin.to_string(), frame.ctx().clone()))
    })
}

/// Pops the frame pushed by [`enter`] even if the plugin call unwinds; it
/// borrows the frame's context for as long as the frame exists.
struct FrameGuard<'a>(std::marker::PhantomData<&'a CallContext>);

impl Drop for FrameGuard<'_> {
    fn drop(&mut self) {
        FRAMES.with(|f| {
            f.borrow_mut().pop();
        });
    }
}

fn enter(plugin: Arc<str>, ctx: &CallContext) -> Result<(FrameGuard<'_>, bool), PluginError> {
    FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        if frames.len() >= MAX_CALL_DEPTH {
            return Err(PluginError::internal(format!(
                "cross-plugin calls nested deeper than {MAX_CALL_DEPTH} (a call loop?)"
            )));
        }
        let outermost = frames.is_empty();
        frames.push(Frame {
            plugin,
            ctx: std::ptr::NonNull::from(ctx),
        });
        Ok((FrameGuard(std::marker::PhantomData), outermost))
    })
}

impl HostInner {
    pub(crate) fn now_unix_ms(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock(),
            None => system_now_ms(),
        }
    }

    /// Every permission declared by an active plugin, sorted by id.
    pub(crate) fn permission_registry(&self) -> Vec<RegisteredPermission> {
        self.permission_snapshot().list.clone()
    }

    /// The current registry (an `Arc` clone, no copy of the list).
    pub(crate) fn permission_snapshot(&self) -> Arc<PermissionSnapshot> {
        match self.permissions.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Records `id` as the token resolver if it declares one and no system
    /// activated before it does (the first in activation order wins).
    fn note_token_resolver(&self, id: &str) {
        let declares = self
            .discovery
            .plugins
            .get(id)
            .is_some_and(|p| p.manifest.token_resolver.is_some());
        if !declares {
            return;
        }
        let mut resolver = self
            .token_resolver
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if resolver.is_none() {
            *resolver = Some(Arc::from(id));
        }
    }

    /// Rebuilds the registry from the active systems (after an activation
    /// or deactivation) under a new generation.
    fn refresh_permissions(&self) {
        // Held while the list is built, so racing rebuilds publish in order.
        let mut slot = match self.permissions.write() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        let mut list: Vec<RegisteredPermission> = match self.active.read() {
            Ok(active) => active
                .iter()
                .flat_map(|(id, p)| {
                    p.manifest
                        .permissions
                        .iter()
                        .map(move |decl| RegisteredPermission {
                            id: decl.id.clone(),
                            name: decl.name.clone(),
                            description: decl.description.clone(),
                            plugin: id.clone(),
                        })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        list.sort_by(|a, b| a.id.cmp(&b.id));
        let generation = slot.generation + 1;
        *slot = Arc::new(PermissionSnapshot { generation, list });
        // After the snapshot: a call that reads this generation finds a
        // registry at least this new behind `permission_registry`.
        self.permission_generation
            .store(generation, Ordering::Release);
    }

    fn active_plugin(&self, id: &str) -> Result<Arc<ActivePlugin>, PluginError> {
        let active = self
            .active
            .read()
            .map_err(|_| PluginError::internal("host state lock poisoned"))?;
        active.get(id).cloned().ok_or_else(|| {
            let known = self.discovery.plugins.contains_key(id);
            PluginError::new(
                codes::UNAVAILABLE,
                if known {
                    format!("system '{id}' is not active")
                } else {
                    format!("no system '{id}' is installed")
                },
            )
        })
    }

    /// Routes one call: existence, declared operation, access rule, then the plugin.
    pub(crate) fn dispatch(
        &self,
        target: &str,
        operation: &str,
        payload: &str,
        ctx: &CallContext,
    ) -> Result<String, PluginError> {
        let plugin = self.active_plugin(target)?;
        let Some(decl) = plugin.operations.get(operation) else {
            return Err(PluginError::new(
                codes::UNKNOWN_OPERATION,
                format!("system '{target}' has no operation '{operation}'"),
            ));
        };
        authorize(&decl.access, &ctx.subject)?;
        if !decl.inline && crate::inline::active() {
            // Refused before the plugin runs: it never promised to answer
            // from memory.
            return Err(crate::inline::refuse(&format!(
                "{target}.{operation} (not declared inline)"
            )));
        }
        if let Some(allowed) = &ctx.restricted_to {
            let full = format!("{target}.{operation}");
            // Cross-plugin calls made while serving an allowed operation
            // are the serving plugin's business, not the caller's.
            if ctx.via.is_none() && !allowed.contains(&full) {
                return Err(PluginError::new(
                    codes::PASSWORD_CHANGE_REQUIRED,
                    format!(
                        "this session may only call {} until the password is changed",
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if payload.len() > self.max_response_bytes {
            return Err(PluginError::invalid(format!(
                "the payload for {target}.{operation} is {} bytes; calls carry at most {} bytes (limits.max_response_bytes)",
                payload.len(),
                self.max_response_bytes
            )));
        }
        let ctx_json = context_json(ctx, self.permission_generation.load(Ordering::Acquire))?;
        let started = budget_clock();
        let (guard, outermost) = enter(plugin.id.clone(), ctx)?;
        let result = plugin
            .object
            .call(operation.into(), payload.into(), ctx_json.as_ref().into())
            .into_result()
            .map_err(PluginError::from)
            .and_then(|out| {
                if out.len() > self.max_response_bytes {
                    tracing::warn!(
                        plugin = target,
                        operation,
                        bytes = out.len(),
                        limit = self.max_response_bytes,
                        "plugin response exceeds limits.max_response_bytes; refused"
                    );
                    Err(PluginError::internal(format!(
                        "{target}.{operation} returned {} bytes, more than the {} allowed (limits.max_response_bytes)",
                        out.len(),
                        self.max_response_bytes
                    )))
                } else {
                    Ok(out.into_string())
                }
            });
        drop(guard);
        let elapsed = budget_clock().saturating_sub(started);
        if elapsed > self.call_budget {
            tracing::warn!(
                plugin = target,
                operation,
                ms = elapsed.as_millis() as u64,
                budget_ms = self.call_budget.as_millis() as u64,
                "plugin call exceeded its time budget (limits.call_budget_ms)"
            );
        }
        if let Err(e) = &result {
            if e.is(codes::PLUGIN_PANICKED) {
                tracing::error!(plugin = target, operation, "{}", e.message);
            }
        }
        if outermost {
            self.deliver_pending_events();
        }
        result
    }

    /// The active subject provider: its id and declaration.
    fn subject_provider(&self) -> Option<(String, syshost_plugin_api::SubjectProvider)> {
        let active = self.active.read().ok()?;
        let mut providers: Vec<(String, syshost_plugin_api::SubjectProvider)> = active
            .iter()
            .filter_map(|(id, p)| {
                p.manifest
                    .subject_provider
                    .clone()
                    .map(|sp| (id.clone(), sp))
            })
            .collect();
        providers.sort_by(|a, b| a.0.cmp(&b.0));
        providers.into_iter().next()
    }

    /// Drops cached subjects made stale by `event`.
    fn invalidate_subjects(&self, event: &Event) {
        if self.subjects.is_empty() {
            return;
        }
        let Some((_, provider)) = self.subject_provider() else {
            return;
        };
        if !provider
            .invalidate_on
            .iter()
            .any(|pattern| syshost_plugin_api::topic_matches(pattern, &event.topic))
        {
            return;
        }
        match event.payload.get("user_id").and_then(|v| v.as_str()) {
            Some(user_id) => self.subjects.invalidate_user(user_id),
            None => self.subjects.clear(),
        }
    }

    /// The subject for `user_id` (`None`: anonymous), from the cache or the provider.
    pub(crate) fn resolve_subject(
        &self,
        user_id: Option<&str>,
    ) -> Result<Arc<CachedSubject>, PluginError> {
        if let Some(hit) = self.subjects.get(user_id, || self.now_unix_ms()) {
            return Ok(hit);
        }
        crate::inline::check("resolving a subject that is not cached")?;
        let generation = self.subjects.generation();
        let Some((provider_id, provider)) = self.subject_provider() else {
            return match user_id {
                None => Ok(Arc::new(CachedSubject::new(Subject::default(), None))),
                Some(_) => Err(PluginError::new(
                    codes::UNAVAILABLE,
                    "no active system resolves users (enable the user system)",
                )),
            };
        };
        let request = serde_json::to_string(&syshost_plugin_api::ResolveSubjectRequest {
            user_id: user_id.map(str::to_string),
        })?;
        let out = self.dispatch(
            &provider_id,
            &provider.operation,
            &request,
            &CallContext::system(),
        )?;
        let resolved: syshost_plugin_api::ResolvedSubject =
            serde_json::from_str(&out).map_err(|e| {
                PluginError::internal(format!(
                    "subject provider {provider_id}.{} returned an unreadable subject: {e}",
                    provider.operation
                ))
            })?;
        let consistent = match (&resolved.subject, user_id) {
            (Subject::User(u), Some(id)) => u.id == id,
            (Subject::Anonymous { .. }, None) => true,
            _ => false,
        };
        if !consistent {
            return Err(PluginError::internal(format!(
                "subject provider {provider_id} answered with a different subject than requested"
            )));
        }
        let entry = Arc::new(CachedSubject::new(resolved.subject, resolved.valid_until));
        self.subjects.insert(user_id, entry.clone(), generation);
        Ok(entry)
    }

    /// Queues an event; it is delivered when the outermost call returns (or
    /// at once when no call is in progress on this thread).
    pub(crate) fn publish(&self, event: Event) {
        PENDING_EVENTS.with(|q| q.borrow_mut().push_back(event));
        let idle = FRAMES.with(|f| f.borrow().is_empty());
        if idle {
            self.deliver_pending_events();
        }
    }

    fn deliver_pending_events(&self) {
        let mut delivered = 0usize;
        while let Some(event) = PENDING_EVENTS.with(|q| q.borrow_mut().pop_front()) {
            delivered += 1;
            if delivered > MAX_EVENTS_PER_CALL {
                let dropped = PENDING_EVENTS.with(|q| {
                    let mut q = q.borrow_mut();
                    let n = q.len();
                    q.clear();
                    n
                });
                tracing::error!(
                    dropped = dropped + 1,
                    "more than {MAX_EVENTS_PER_CALL} events caused by one call; dropping the rest (event loop between plugins?)"
                );
                // What the dropped events would have invalidated is unknown.
                self.subjects.clear();
                self.resolutions.clear();
                break;
            }
            let subscribers: Vec<(String, Arc<ActivePlugin>)> = match self.active.read() {
                Ok(active) => active
                    .iter()
                    .filter(|(_, p)| p.manifest.is_subscribed(&event.topic))
                    .map(|(id, p)| (id.clone(), p.clone()))
                    .collect(),
                Err(_) => return,
            };
            self.invalidate_subjects(&event);
            let mut subscribers = subscribers;
            subscribers.sort_by(|a, b| a.0.cmp(&b.0));
            let json = match serde_json::to_string(&event) {
                Ok(j) => j,
                Err(_) => continue,
            };
            let _cause = set_cause(&event);
            for (id, plugin) in subscribers {
                let ctx = CallContext::system();
                let Ok((guard, _)) = enter(plugin.id.clone(), &ctx) else {
                    continue;
                };
                let result = plugin.object.on_event(json.as_str().into()).into_result();
                drop(guard);
                if let Err(e) = result {
                    let e = PluginError::from(e);
                    tracing::warn!(plugin = %id, topic = %event.topic, "event handler failed: {e}");
                }
            }
            // After the subscribers: the resolver may update its own state
            // in its handler (for example re-read its settings), and a
            // resolution answered from the old state before then is dropped.
            self.invalidate_resolutions(&event);
        }
    }

    /// Drops the cached token resolutions `event` makes stale, when the
    /// resolver names its topic in `invalidate_on`.
    fn invalidate_resolutions(&self, event: &Event) {
        if self.resolutions.is_empty() {
            return;
        }
        let resolver = self
            .token_resolver
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(declaration) = resolver.and_then(|id| {
            self.discovery
                .plugins
                .get(&*id)
                .and_then(|p| p.manifest.token_resolver.clone())
        }) else {
            return;
        };
        if declaration
            .invalidate_on
            .iter()
            .any(|pattern| syshost_plugin_api::topic_matches(pattern, &event.topic))
        {
            self.resolutions.invalidate_for(&event.payload);
        }
    }
}

/// The monotonic clock the per-call budget is measured with: on Linux the
/// coarse clock (a memory read instead of a TSC read; resolution one
/// scheduler tick, at most 4 ms, against budgets of at least 10 ms that
/// only decide whether a call is logged as slow).
fn budget_clock() -> std::time::Duration {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        std::time::Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(std::time::Instant::now).elapsed()
    }
}

thread_local! {
    /// The JSON of the bare system context for one registry generation
    /// (the JSON depends on nothing else), reused by every call the host
    /// makes itself while the generation stays.
    static SYSTEM_CONTEXT: RefCell<Option<(u64, Rc<str>)>> = const { RefCell::new(None) };
}

/// The JSON of a call context as a plugin receives it.
enum ContextJson {
    /// The cached bare system context.
    System(Rc<str>),
    /// Encoded for this call.
    Encoded(String),
}

impl AsRef<str> for ContextJson {
    fn as_ref(&self) -> &str {
        match self {
            ContextJson::System(json) => json,
            ContextJson::Encoded(json) => json,
        }
    }
}

/// The JSON of `ctx` as plugins receive it: `ctx` with the host's registry
/// `generation` as `permission_generation` (whatever the caller put there
/// is replaced). The bare system context (every call the host makes
/// itself) is encoded once per generation and thread.
fn context_json(ctx: &CallContext, generation: u64) -> Result<ContextJson, PluginError> {
    // Every field by name: a field added to `CallContext` must be added
    // here too (this does not compile otherwise).
    let CallContext {
        subject,
        via,
        request_id,
        client_addr,
        restricted_to,
        permission_generation: _,
    } = ctx;
    /// `CallContext` with borrowed parts (no clone per call).
    #[derive(Serialize)]
    struct Wire<'a> {
        subject: &'a Subject,
        via: &'a Option<String>,
        client_addr: &'a Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        restricted_to: &'a Option<std::collections::BTreeSet<String>>,
        permission_generation: u64,
        // Last, as in `CallContext` (the SDK finds it at the end).
        request_id: &'a Option<String>,
    }
    let wire = Wire {
        subject,
        via,
        request_id,
        client_addr,
        restricted_to,
        permission_generation: generation,
    };
    let bare_system = matches!(subject, Subject::System)
        && via.is_none()
        && request_id.is_none()
        && client_addr.is_none()
        && restricted_to.is_none();
    if !bare_system {
        return Ok(ContextJson::Encoded(serde_json::to_string(&wire)?));
    }
    let cached = SYSTEM_CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, json)| json.clone())
    });
    if let Some(json) = cached {
        return Ok(ContextJson::System(json));
    }
    let json: Rc<str> = Rc::from(serde_json::to_string(&wire)?);
    SYSTEM_CONTEXT.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            *c = Some((generation, json.clone()));
        }
    });
    Ok(ContextJson::System(json))
}

/// Checks a caller against an operation's access rule.
pub fn authorize(access: &Access, subject: &Subject) -> Result<(), PluginError> {
    let denied = |what: &str| {
        if subject.is_authenticated() {
            Err(PluginError::permission_denied(what))
        } else {
            Err(PluginError::unauthenticated(format!(
                "log in first: this operation requires '{what}'"
            ))
            .with_details(serde_json::json!({ "permission": what })))
        }
    };
    match access {
        Access::Public => Ok(()),
        Access::Authenticated => {
            if subject.is_authenticated() {
                Ok(())
            } else {
                Err(PluginError::unauthenticated("log in first"))
            }
        }
        Access::Permission(p) => {
            if subject.has_permission(p) {
                Ok(())
            } else {
                denied(p)
            }
        }
        Access::SelfOrPermission(p) => {
            if subject.is_authenticated() {
                Ok(())
            } else {
                denied(p)
            }
        }
        Access::System => {
            if subject.is_internal() {
                Ok(())
            } else if subject.is_authenticated() {
                Err(PluginError::permission_denied("system"))
            } else {
                Err(PluginError::unauthenticated(
                    "this operation is reserved for the host and other systems",
                ))
            }
        }
    }
}

/// The embeddable host. Cheap to clone; all clones share one runtime state.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

/// The outcome of one activation request.
#[derive(Debug, Clone, Default)]
pub struct ActivationReport {
    /// Systems activated by this request, in order, with their reason.
    pub activated: Vec<(String, String)>,
    /// Systems that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Systems blocked by a failed requirement, with the blocker.
    pub blocked: Vec<(String, String)>,
    /// Resolution problems (unknown systems, missing dependencies, cycles).
    pub problems: Vec<String>,
    /// Non-fatal notes (for example a wanted plugin that is missing).
    pub warnings: Vec<String>,
}

impl ActivationReport {
    /// Whether everything requested is active.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty() && self.blocked.is_empty() && self.problems.is_empty()
    }
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Product name and public URL (for mail and pages).
    pub fn site_info(&self) -> &SiteInfo {
        &self.inner.site
    }

    /// What discovery found (plugins and per-file errors).
    pub fn discovery(&self) -> &Discovery {
        &self.inner.discovery
    }

    /// Activates `id` and everything it requires (plus present wants), in
    /// dependency order, and returns a handle to call it. Activating an
    /// already active system is a no-op returning an equivalent handle.
    pub fn activate(&self, id: &str) -> Result<SystemHandle, HostError> {
        if self.is_active(id) {
            return Ok(self.handle(id));
        }
        let report = self.activate_all(&[id.to_string()]);
        if self.is_active(id) {
            return Ok(self.handle(id));
        }
        let reason = report
            .failed
            .iter()
            .find(|(f, _)| f == id)
            .map(|(_, r)| r.clone())
            .or_else(|| {
                report
                    .blocked
                    .iter()
                    .find(|(b, _)| b == id)
                    .map(|(_, by)| format!("blocked because '{by}' failed"))
            })
            .or_else(|| report.problems.first().cloned())
            .unwrap_or_else(|| "it could not be activated".to_string());
        Err(HostError::Activation {
            id: id.to_string(),
            reason,
        })
    }

    /// Activates every system in `enabled` with its requirements and reports
    /// what happened. Failures never stop unrelated systems.
    pub fn activate_all(&self, enabled: &[String]) -> ActivationReport {
        let mut state = match self.inner.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let candidates = self.inner.discovery.candidates();
        let plan = resolver::resolve(&candidates, enabled);
        let mut report = ActivationReport {
            problems: plan.problems.iter().map(ToString::to_string).collect(),
            warnings: plan
                .warnings
                .iter()
                .map(|w| format!("{}: {}", w.plugin, w.message))
                .collect(),
            ..Default::default()
        };
        // Record resolution outcomes for plugins that will not be activated.
        for (id, outcome) in &plan.outcomes {
            if self.is_active(id) {
                continue;
            }
            match outcome {
                Outcome::Failed(e) => {
                    set_record(&mut state, id, SystemState::Failed, None, e.to_string());
                    report.failed.push((id.clone(), e.to_string()));
                }
                Outcome::Blocked { by } => {
                    set_record(
                        &mut state,
                        id,
                        SystemState::Blocked,
                        None,
                        format!("blocked: requires '{by}', which failed"),
                    );
                    report.blocked.push((id.clone(), by.clone()));
                }
                Outcome::Planned { .. } => {}
            }
        }
        let mut failed_now: Vec<String> = Vec::new();
        for id in &plan.order {
            if self.is_active(id) {
                if enabled.contains(id) {
                    if let Some(r) = state.records.get_mut(id) {
                        r.reason = Reason::Enabled.to_string();
                    }
                }
                continue;
            }
            if let Some(by) = failed_now
                .iter()
                .find(|f| plan.dependents_of(f).contains(id))
            {
                set_record(
                    &mut state,
                    id,
                    SystemState::Blocked,
                    None,
                    format!("blocked: requires '{by}', which failed"),
                );
                report.blocked.push((id.clone(), by.clone()));
                continue;
            }
            let reason = plan
                .reasons
                .get(id)
                .map(ToString::to_string)
                .unwrap_or_else(|| "enabled".into());
            match self.instantiate(id) {
                Ok(plugin) => {
                    let order = state.order.len();
                    state.order.push(id.clone());
                    set_record(
                        &mut state,
                        id,
                        SystemState::Active,
                        Some(order),
                        reason.clone(),
                    );
                    if let Ok(mut active) = self.inner.active.write() {
                        active.insert(id.clone(), plugin);
                    }
                    self.inner.note_token_resolver(id);
                    self.inner.refresh_permissions();
                    // A new system can add permissions (the administrator
                    // role holds all of them) or change who resolves users.
                    self.inner.subjects.clear();
                    self.inner.resolutions.clear();
                    tracing::debug!(system = %id, %reason, "activated");
                    report.activated.push((id.clone(), reason));
                    // Events published while activating are delivered now
                    // that the plugin is registered.
                    self.inner.deliver_pending_events();
                }
                Err(e) => {
                    tracing::error!(system = %id, "activation failed: {e}");
                    set_record(&mut state, id, SystemState::Failed, None, e.to_string());
                    report.failed.push((id.clone(), e.to_string()));
                    failed_now.push(id.clone());
                }
            }
        }
        drop(state);
        self.publish_activation_failures(&report);
        // Activation writes (first administrator, settings sections, audit
        // entries) are durable once the host reports the systems active.
        if let Err(e) = self.inner.store.sync() {
            tracing::error!("flushing the store after activation failed: {e}");
        }
        report
    }

    /// Publishes `host.plugin_failed` for every system this activation
    /// request left failed or blocked, once everything that could start has
    /// started (so an audit system activated in the same request hears it).
    fn publish_activation_failures(&self, report: &ActivationReport) {
        let failed = report
            .failed
            .iter()
            .map(|(id, error)| (id, "failed", error.clone()));
        let blocked = report
            .blocked
            .iter()
            .map(|(id, by)| (id, "blocked", format!("requires '{by}', which failed")));
        for (id, state, error) in failed.chain(blocked) {
            self.inner.publish(Event {
                topic: "host.plugin_failed".to_string(),
                source: "host".to_string(),
                payload: serde_json::json!({ "plugin": id, "state": state, "error": error }),
                at_unix_ms: self.inner.now_unix_ms(),
                actor: Some("system".to_string()),
                client_addr: None,
            });
        }
    }

    fn instantiate(&self, id: &str) -> Result<Arc<ActivePlugin>, PluginError> {
        let plugin = self
            .inner
            .discovery
            .plugins
            .get(id)
            .ok_or_else(|| PluginError::not_found(format!("no system '{id}' is installed")))?;
        let manifest = plugin.manifest.clone();
        self.check_operation_permissions(&manifest)?;
        self.check_permission_ids_unique(&manifest)?;
        if manifest.subject_provider.is_some() {
            if let Some((other, _)) = self.inner.subject_provider() {
                return Err(PluginError::conflict(format!(
                    "both '{other}' and '{id}' declare themselves subject provider; only one may be active"
                )));
            }
        }
        let namespace = self
            .inner
            .store
            .plugin_namespace(id)
            .map_err(|e| PluginError::storage(e.to_string()))?;
        let services = PluginServices {
            plugin_id: id.to_string(),
            namespace,
            allowed_targets: manifest
                .declared_dependencies()
                .map(str::to_string)
                .collect(),
            host: Arc::downgrade(&self.inner),
        };
        let host_box = HostObj_TO::from_value(services, TD_Opaque);
        let ctx = CallContext::system();
        let (guard, _) = enter(Arc::from(id), &ctx)?;
        let instantiate = plugin.module.instantiate();
        let object = instantiate(host_box)
            .into_result()
            .map_err(PluginError::from);
        drop(guard);
        let object = object.map_err(|e| {
            PluginError::new(e.code.clone(), format!("activation failed: {}", e.message))
        })?;
        let operations = manifest
            .operations
            .iter()
            .map(|op| (op.name.clone(), op.clone()))
            .collect();
        Ok(Arc::new(ActivePlugin {
            id: Arc::from(id),
            manifest: Arc::new(manifest),
            object,
            operations,
        }))
    }

    /// Every permission an operation requires must be declared by the plugin
    /// itself or by one of its (transitive) hard requirements.
    fn check_operation_permissions(&self, manifest: &Manifest) -> Result<(), PluginError> {
        let mut declared: std::collections::BTreeSet<String> =
            manifest.permissions.iter().map(|p| p.id.clone()).collect();
        let mut stack: Vec<&str> = manifest.requires.iter().map(|d| d.id.as_str()).collect();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(dep) = stack.pop() {
            if !seen.insert(dep.to_string()) {
                continue;
            }
            if let Some(p) = self.inner.discovery.plugins.get(dep) {
                declared.extend(p.manifest.permissions.iter().map(|p| p.id.clone()));
                stack.extend(p.manifest.requires.iter().map(|d| d.id.as_str()));
            }
        }
        for op in &manifest.operations {
            if let Some(p) = op.access.permission_id() {
                if !declared.contains(p) {
                    return Err(PluginError::invalid(format!(
                        "operation '{}' requires permission '{p}', which neither this plugin nor its requirements declare",
                        op.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// A permission id may be declared by one plugin only.
    fn check_permission_ids_unique(&self, manifest: &Manifest) -> Result<(), PluginError> {
        let registry = self.inner.permission_snapshot();
        for decl in &manifest.permissions {
            if let Some(existing) = registry.list.iter().find(|p| p.id == decl.id) {
                return Err(PluginError::conflict(format!(
                    "permission '{}' is declared by both '{}' and '{}'; permission ids must be unique",
                    decl.id, existing.plugin, manifest.id
                )));
            }
        }
        Ok(())
    }

    /// The resolved subject of user `user_id` (`None`: the anonymous
    /// subject), cached until an event of the subject provider makes it stale.
    pub fn subject(&self, user_id: Option<&str>) -> Result<Arc<CachedSubject>, PluginError> {
        self.inner.resolve_subject(user_id)
    }

    /// A call context for user `user_id` (`None`: anonymous).
    pub fn context_for(&self, user_id: Option<&str>) -> Result<CallContext, PluginError> {
        Ok(CallContext::for_subject(
            self.subject(user_id)?.subject().clone(),
        ))
    }

    /// Resolves a session token (bearer or cookie) through the active
    /// system that declares a [`token_resolver`](syshost_plugin_api::Manifest::token_resolver),
    /// calling it as the host itself. `unauthenticated` for unknown or
    /// expired tokens; `unavailable` when no active system resolves tokens.
    pub fn resolve_token(
        &self,
        token: &str,
        client_addr: Option<&str>,
    ) -> Result<syshost_plugin_api::ResolvedToken, PluginError> {
        // An unchanged session's recent answer, when the resolver allowed
        // it (see `crate::resolutions`): no call.
        let key = crate::resolutions::digest(token);
        let now = self.inner.now_unix_ms();
        if let Some(hit) = self.inner.resolutions.get(&key, now) {
            return Ok(hit);
        }
        let generation = self.inner.resolutions.generation();
        // The resolver recorded at activation (see `token_resolver`); its
        // operation name is borrowed from discovery (no clone per request).
        // A writer holds the lock only for an instant at activation or
        // shutdown: an inline resolution does not wait for it.
        let guard = if crate::inline::active() {
            match self.inner.token_resolver.try_read() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(crate::inline::refuse(
                        "reading the token resolver while a system activates",
                    ))
                }
            }
        } else {
            self.inner
                .token_resolver
                .read()
                .unwrap_or_else(|p| p.into_inner())
        };
        let resolver = guard.as_deref().and_then(|id| {
            let manifest = &self.inner.discovery.plugins.get(id)?.manifest;
            let resolver = manifest.token_resolver.as_ref()?;
            Some((manifest.id.as_str(), resolver.operation.as_str()))
        });
        drop(guard);
        let Some((id, operation)) = resolver else {
            return Err(PluginError::new(
                codes::UNAVAILABLE,
                "no active system resolves session tokens",
            ));
        };
        /// [`syshost_plugin_api::ResolveTokenRequest`], borrowed.
        #[derive(Serialize)]
        struct Request<'a> {
            token: &'a str,
            client_addr: Option<&'a str>,
        }
        let payload = serde_json::to_string(&Request { token, client_addr })?;
        let out = self.call_raw(id, operation, &payload, &CallContext::system())?;
        let resolved: syshost_plugin_api::ResolvedToken =
            serde_json::from_str(&out).map_err(|e| {
                PluginError::internal(format!(
                    "response of {id}.{operation} is not a resolved token: {e}"
                ))
            })?;
        self.inner
            .resolutions
            .insert(key, &resolved, generation, now);
        Ok(resolved)
    }

    /// Drops every cached subject.
    pub fn invalidate_subjects(&self) {
        self.inner.subjects.clear();
    }

    /// Every permission declared by an active plugin, with its plugin.
    pub fn permissions(&self) -> Vec<RegisteredPermission> {
        self.inner.permission_registry()
    }

    /// Whether `id` is active.
    pub fn is_active(&self, id: &str) -> bool {
        self.inner
            .active
            .read()
            .map(|a| a.contains_key(id))
            .unwrap_or(false)
    }

    fn handle(&self, id: &str) -> SystemHandle {
        SystemHandle {
            host: self.clone(),
            id: id.to_string(),
        }
    }

    /// A handle to an active system.
    pub fn system(&self, id: &str) -> Option<SystemHandle> {
        self.is_active(id).then(|| self.handle(id))
    }

    /// Active systems in activation order.
    pub fn active_systems(&self) -> Vec<String> {
        match self.inner.state.lock() {
            Ok(s) => s.order.clone(),
            Err(p) => p.into_inner().order.clone(),
        }
    }

    /// Runs `f` on the manifest of a discovered system without cloning it
    /// (manifests carry every operation's JSON Schemas, so a clone per
    /// request is not free).
    pub fn with_manifest<R>(&self, id: &str, f: impl FnOnce(&Manifest) -> R) -> Option<R> {
        self.inner.discovery.plugins.get(id).map(|p| f(&p.manifest))
    }

    /// The manifest of a discovered system.
    pub fn manifest(&self, id: &str) -> Option<Manifest> {
        self.inner
            .discovery
            .plugins
            .get(id)
            .map(|p| p.manifest.clone())
    }

    /// Every discovered system with its state: active ones in activation
    /// order first, then the rest by id.
    pub fn systems(&self) -> Vec<SystemStatus> {
        let state = match self.inner.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut rows: Vec<SystemStatus> = self
            .inner
            .discovery
            .plugins
            .values()
            .map(|p| {
                let record = state
                    .records
                    .get(&p.manifest.id)
                    .cloned()
                    .unwrap_or(Record {
                        state: SystemState::Available,
                        order: None,
                        reason: "not requested".to_string(),
                    });
                SystemStatus {
                    id: p.manifest.id.clone(),
                    version: p.manifest.version.clone(),
                    state: record.state,
                    order: record.order,
                    reason: record.reason,
                    path: p.path.clone(),
                }
            })
            .collect();
        rows.sort_by(|a, b| match (a.order, b.order) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.id.cmp(&b.id),
        });
        rows
    }

    /// Calls `operation` of system `id` with a raw JSON payload.
    ///
    /// Unless the host was built with `sync_writes(false)`, every write the
    /// call caused (its own, its nested calls', its events' handlers' and
    /// queued mail) is flushed to disk before this returns; a failed flush
    /// turns the answer into a `storage` error.
    pub fn call_raw(
        &self,
        id: &str,
        operation: &str,
        payload: &str,
        ctx: &CallContext,
    ) -> Result<String, PluginError> {
        let result = self.inner.dispatch(id, operation, payload, ctx);
        // An inline call cannot write (the store refuses it), so there is
        // nothing of its own to flush.
        if self.inner.sync_writes && !crate::inline::active() {
            if let Err(e) = self.inner.store.sync() {
                tracing::error!(plugin = id, operation, "flushing the store failed: {e}");
                return Err(PluginError::storage(format!(
                    "the change may not be durable: flushing the store failed: {e}"
                )));
            }
        }
        result
    }

    /// Runs `f` in inline mode on this thread ([`crate::inline`]): every
    /// host service that could block (store access, events, mail, calls to
    /// operations not declared `inline`, subject resolutions that miss the
    /// cache) is refused at once with `would_block`. Answers `None` when
    /// anything was refused — the attempt wrote nothing, so the caller runs
    /// `f` again normally (on a thread that may block) — else `f`'s result.
    ///
    /// Meant for callers on an async worker that must never wait on the
    /// disk: the HTTP layer answers cached sessions this way.
    pub fn run_inline<R>(&self, f: impl FnOnce(&Host) -> R) -> Option<R> {
        let guard = crate::inline::enter();
        let result = f(self);
        if guard.refused() {
            None
        } else {
            Some(result)
        }
    }

    /// The per-call time budget (`limits.call_budget_ms`).
    pub fn call_budget(&self) -> std::time::Duration {
        self.inner.call_budget
    }

    /// A point-in-time copy of every tree of the store (for backups).
    pub fn export_store(&self) -> Result<Vec<TreeDump>, StoreError> {
        self.inner.store.export()
    }

    /// Deactivates every active system in reverse activation order and
    /// flushes the store. Returns the shutdown errors (already logged).
    pub fn shutdown(&self) -> Vec<(String, PluginError)> {
        let mut errors = Vec::new();
        let order = {
            let mut state = match self.inner.state.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            let order = std::mem::take(&mut state.order);
            *self
                .inner
                .token_resolver
                .write()
                .unwrap_or_else(|p| p.into_inner()) = None;
            self.inner.resolutions.clear();
            for id in &order {
                if let Some(r) = state.records.get_mut(id) {
                    r.state = SystemState::Available;
                    r.order = None;
                    r.reason = "shut down".into();
                }
            }
            order
        };
        for id in order.iter().rev() {
            let plugin = match self.inner.active.write() {
                Ok(mut active) => active.remove(id),
                Err(_) => None,
            };
            self.inner.refresh_permissions();
            if let Some(plugin) = plugin {
                let ctx = CallContext::system();
                let guard = enter(plugin.id.clone(), &ctx);
                let result = plugin.object.shutdown().into_result();
                drop(guard);
                if let Err(e) = result {
                    let e = PluginError::from(e);
                    tracing::warn!(system = %id, "shutdown failed: {e}");
                    errors.push((id.clone(), e));
                }
                tracing::debug!(system = %id, "deactivated");
            }
        }
        self.inner.subjects.clear();
        if let Some(mail) = &self.inner.mail_service {
            mail.stop();
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::error!("flushing the store failed: {e}");
            errors.push(("host".into(), PluginError::storage(e.to_string())));
        }
        errors
    }

    /// Delivery counters of the built-in mail service (None with a custom mailer).
    pub fn mail_stats(&self) -> Option<MailStats> {
        self.inner.mail_service.as_ref().map(|m| m.stats())
    }

    /// Mails waiting in the durable queue.
    pub fn mail_pending(&self) -> usize {
        self.inner.mail_service.as_ref().map_or(0, |m| m.pending())
    }

    /// Flushes the store to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.store.flush()
    }

    /// The resolver plan for `enabled` without activating anything.
    pub fn plan(&self, enabled: &[String]) -> Plan {
        resolver::resolve(&self.inner.discovery.candidates(), enabled)
    }
}

fn set_record(state: &mut State, id: &str, s: SystemState, order: Option<usize>, reason: String) {
    state.records.insert(
        id.to_string(),
        Record {
            state: s,
            order,
            reason,
        },
    );
}

/// A handle to one active system.
#[derive(Clone)]
pub struct SystemHandle {
    host: Host,
    id: String,
}

impl SystemHandle {
    /// The system id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Calls an operation as the host itself (subject `system`), with typed
    /// request and response.
    pub fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, PluginError> {
        self.call_as(&CallContext::system(), operation, request)
    }

    /// Calls an operation on behalf of the subject in `ctx`.
    pub fn call_as<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, PluginError> {
        let payload = serde_json::to_string(request)?;
        let out = self.host.call_raw(&self.id, operation, &payload, ctx)?;
        serde_json::from_str(&out).map_err(|e| {
            PluginError::internal(format!(
                "response of {}.{operation} did not match the expected type: {e}",
                self.id
            ))
        })
    }

    /// The system's manifest.
    pub fn manifest(&self) -> Option<Manifest> {
        self.host.manifest(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_json_is_the_context_with_the_hosts_generation_and_the_system_one_is_cached() {
        let encoded = |ctx: &CallContext, generation: u64| {
            serde_json::to_string(&CallContext {
                permission_generation: Some(generation),
                ..ctx.clone()
            })
            .unwrap()
        };
        let system = CallContext::system();
        let first = context_json(&system, 7).unwrap();
        assert_eq!(first.as_ref(), encoded(&system, 7));
        let ContextJson::System(first_rc) = &first else {
            panic!("the bare system context is cached");
        };
        let ContextJson::System(again) = context_json(&system, 7).unwrap() else {
            panic!("the bare system context is cached");
        };
        assert!(Rc::ptr_eq(first_rc, &again), "reused within a generation");
        // A new generation: new JSON; a caller's own generation is replaced.
        let claimed = CallContext {
            permission_generation: Some(99),
            ..CallContext::system()
        };
        let next = context_json(&claimed, 8).unwrap();
        assert_eq!(next.as_ref(), encoded(&system, 8));
        // Anything that differs from the bare system context is encoded as
        // is, every field included.
        let user = CallContext {
            subject: Subject::User(syshost_plugin_api::UserSubject {
                id: "u1".into(),
                permissions: ["a.b".to_string()].into(),
                ..Default::default()
            }),
            via: Some("role".into()),
            request_id: Some("r1".into()),
            client_addr: Some("10.0.0.1".into()),
            restricted_to: Some(["user.change_password".to_string()].into()),
            permission_generation: Some(1),
        };
        let traced = CallContext {
            request_id: Some("r1".into()),
            ..CallContext::system()
        };
        for ctx in [user, traced] {
            let json = context_json(&ctx, 8).unwrap();
            assert!(matches!(json, ContextJson::Encoded(_)));
            assert_eq!(json.as_ref(), encoded(&ctx, 8));
            let back: CallContext = serde_json::from_str(json.as_ref()).unwrap();
            assert_eq!(
                back,
                CallContext {
                    permission_generation: Some(8),
                    ..ctx
                }
            );
        }
    }
}
