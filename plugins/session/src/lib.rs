//! The `session` system: login sessions, bearer tokens and brute-force
//! throttling.
//!
//! `login` checks an address and password through `user.authenticate` and
//! creates a session with a fresh 256-bit token (only its SHA-256 is
//! stored); the host's HTTP layer turns a presented token into a caller with
//! `resolve_token` (the manifest's token resolver). Sessions end on logout,
//! revocation, idle or absolute expiry, and when the user is deleted or
//! disabled or changes the password; a change of roles or permissions makes
//! the next resolution hand out a new token. Failed logins are throttled per
//! account with a doubling delay (never a permanent lock).
//!
//! Resolutions that change nothing are answered from the resolved-token
//! cache ([`cache`]) without reading the store.
//!
//! Store layout: see [`store`]. Settings: the `session` section.

pub mod cache;
pub mod model;
pub mod pages;
pub mod store;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde_json::json;
use syshost_plugin_api::{
    codes, export_plugin, Access, CallContext, Event, Host, Manifest, Operations, Plugin,
    PluginError, Store, Subject,
};

use crate::cache::TokenCache;
use crate::model::{
    AuthenticateResponse, Empty, LoginRequest, LoginResponse, LogoutResponse, PasswordChangedEvent,
    Pong, ResolveTokenRequest, ResolvedToken, RevokeAllResponse, RevokeMineRequest,
    RevokeMineResponse, SessionEvent, SessionList, SessionRecord, SessionSettings, SessionView,
    SettingsGetResponse, UserActive, UserDeletedEvent, UserIdRequest, UserUpdatedEvent,
    WhoamiResponse,
};

/// The settings section this system registers and reads.
pub const SETTINGS_SECTION: &str = "session";

/// Operations a session created while a password change is required may call
/// (`user.page_change_password` is the web page with the change form).
pub const RESTRICTED_OPERATIONS: [&str; 5] = [
    "user.change_my_password",
    "user.page_change_password",
    "user.me",
    "session.logout",
    "session.whoami",
];

/// `last_seen_at` is written only when it is at least this old (ms).
pub const LAST_SEEN_GRANULARITY_MS: i64 = 30_000;

/// The longest accepted login address / password (bytes); longer ones fail
/// like a wrong password.
const MAX_CREDENTIAL_BYTES: usize = 4096;

/// The running `session` system.
pub struct SessionSystem {
    host: Host,
    /// The `session` settings document, read once and kept until
    /// `settings.updated` names the section (token resolution runs on every
    /// authenticated request and must not make a cross-plugin call each time).
    cached_settings: RwLock<Option<SessionSettings>>,
    /// Bumped by every invalidation; a read that started before one is not
    /// cached, so the cache is never staler than the last delivered event.
    settings_generation: AtomicU64,
    /// Resolved sessions by token hash (exact: dropped on every write).
    tokens: TokenCache,
}

impl Plugin for SessionSystem {
    fn manifest() -> Manifest {
        pages::declare(Manifest::new("session", env!("CARGO_PKG_VERSION")))
            .name("Sessions")
            .describe("Login sessions, tokens and brute-force throttling.")
            .requires("user", "^0.1")
            .requires("settings", "^0.1")
            .permission(
                "session.read",
                "View sessions",
                "List the login sessions of any user.",
            )
            .permission(
                "session.manage",
                "End sessions",
                "End every login session of any user.",
            )
            .token_resolver("resolve_token")
            .logout_operation("logout")
            // What makes the host's cached resolutions (`cache_until`) stale.
            .token_resolutions_invalidated_on(&[
                "session.ended",
                "session.updated",
                "settings.updated",
            ])
            .subscribe("user.deleted")
            .subscribe("user.updated")
            .subscribe("user.password_changed")
            .subscribe("settings.updated")
    }

    fn operations() -> Operations<Self> {
        Operations::new()
            .page(
                "page_login",
                Access::Public,
                "Web page: the login form.",
                Self::page_login,
            )
            .page(
                "page_sessions",
                Access::Authenticated,
                "Web page: the caller's sessions.",
                Self::page_sessions,
            )
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .op(
                "login",
                Access::Public,
                "Logs in with email address and password; returns a new session token.",
                Self::login,
            )
            .throttled("auth")
            .op(
                "logout",
                Access::Authenticated,
                "Ends the caller's session.",
                Self::logout,
            )
            .query(
                "whoami",
                Access::Authenticated,
                "Returns the caller: user, session, permissions, roles, groups and licenses.",
                Self::whoami,
            )
            // Answers from the call context alone.
            .inline()
            .query(
                "list_mine",
                Access::Authenticated,
                "Lists the caller's own sessions.",
                Self::list_mine,
            )
            .op(
                "revoke_mine",
                Access::Authenticated,
                "Ends one of the caller's own sessions.",
                Self::revoke_mine,
            )
            .query(
                "list_for_user",
                Access::permission("session.read"),
                "Lists a user's sessions.",
                Self::list_for_user,
            )
            .op(
                "revoke_all_for_user",
                Access::permission("session.manage"),
                "Ends every session of a user.",
                Self::revoke_all_for_user,
            )
            .op(
                "resolve_token",
                Access::System,
                "Resolves a session token for the host (records the use, may rotate the token).",
                Self::resolve_token,
            )
            // A resolution the token cache answers writes nothing and reads
            // no key; any other one reaches the store, which refuses it
            // inline (`would_block`), so the host repeats it on a thread
            // that may block.
            .inline()
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        register_settings_section(&host)?;
        Ok(SessionSystem {
            host,
            cached_settings: RwLock::new(None),
            settings_generation: AtomicU64::new(0),
            tokens: TokenCache::default(),
        })
    }

    fn on_event(&self, event: &Event) -> Result<(), PluginError> {
        match event.topic.as_str() {
            "user.deleted" => {
                let payload: UserDeletedEvent = event.payload_as()?;
                if let Some(user_id) = payload.user_id.or(payload.id) {
                    self.end_all(&user_id, None, "user_deleted")?;
                }
            }
            "user.updated" => {
                let payload: UserUpdatedEvent = event.payload_as()?;
                self.user_updated(&payload)?;
            }
            "user.password_changed" => {
                let payload: PasswordChangedEvent = event.payload_as()?;
                self.password_changed(&payload)?;
            }
            "settings.updated" => {
                let section = event.payload.get("section").and_then(|s| s.as_str());
                if section == Some(SETTINGS_SECTION) {
                    self.settings_generation.fetch_add(1, Ordering::SeqCst);
                    *self
                        .cached_settings
                        .write()
                        .unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SessionSystem {
    fn store(&self) -> Store {
        self.host.store()
    }

    fn now(&self) -> i64 {
        self.host.now_unix_ms()
    }

    /// The `session` settings document (cached until `settings.updated`).
    fn settings(&self) -> Result<SessionSettings, PluginError> {
        if let Some(settings) = *self
            .cached_settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
        {
            return Ok(settings);
        }
        let generation = self.settings_generation.load(Ordering::SeqCst);
        let resp: SettingsGetResponse =
            self.host
                .call("settings", "get", &json!({ "section": SETTINGS_SECTION }))?;
        let mut cached = self
            .cached_settings
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if self.settings_generation.load(Ordering::SeqCst) == generation {
            *cached = Some(resp.document);
        }
        Ok(resp.document)
    }

    // -----------------------------------------------------------------
    // Operations
    // -----------------------------------------------------------------

    /// `ping` (public): liveness probe.
    fn ping(&self, _: Empty, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "session".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// `login` (public, throttled per client address by the host and per
    /// account here).
    fn login(&self, req: LoginRequest, ctx: &CallContext) -> Result<LoginResponse, PluginError> {
        if req.email.len() > MAX_CREDENTIAL_BYTES || req.password.len() > MAX_CREDENTIAL_BYTES {
            self.publish_login_failed(&req.email, "invalid_credentials", None, false)?;
            return Err(PluginError::unauthenticated("invalid email or password"));
        }
        let settings = self.settings()?;
        let store = self.store();
        let account = store::account_key(&req.email);
        let now = self.now();
        if let Some((_, throttle)) = store::load_throttle(&store, &account)? {
            let delay = settings.delay_ms(throttle.count);
            let until = throttle.last_failure_at.saturating_add(delay);
            if delay > 0 && now < until {
                let wait = until - now;
                self.host.publish(
                    "session.login_throttled",
                    &json!({
                        "email": audit_email(&req.email),
                        "failures": throttle.count,
                        "retry_after_ms": wait,
                    }),
                )?;
                return Err(PluginError::new(
                    codes::RATE_LIMITED,
                    format!(
                        "too many failed logins for this account; try again in {} s",
                        (wait + 999) / 1000
                    ),
                )
                .with_details(json!({ "retry_after_ms": wait })));
            }
        }
        let auth: Result<AuthenticateResponse, PluginError> = self.host.call(
            "user",
            "authenticate",
            &json!({ "email": req.email, "password": req.password }),
        );
        let auth = match auth {
            Ok(a) => a,
            Err(e) if e.is(codes::UNAUTHENTICATED) || e.is(codes::INVALID_INPUT) => {
                let failures = store::record_failure(&store, &account, now)?;
                let locked = settings.delay_ms(failures) > 0;
                self.publish_login_failed(
                    &req.email,
                    "invalid_credentials",
                    Some(failures),
                    locked,
                )?;
                return Err(PluginError::unauthenticated("invalid email or password"));
            }
            Err(e) => return Err(e),
        };
        store::reset_failures(&store, &account)?;
        self.purge_expired(&auth.user_id, &settings)?;
        let token = store::new_token()?;
        let record = SessionRecord {
            id: store::new_session_id()?,
            user_id: auth.user_id.clone(),
            token_hash: store::sha256_hex(token.as_bytes()),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(settings.lifetime_ms()),
            client_addr: ctx.client_addr.clone(),
            restricted: auth.require_password_change,
            rotate: false,
        };
        store::insert(&store, &record)?;
        self.host.publish(
            "session.created",
            &SessionEvent {
                user_id: &record.user_id,
                session_id: &record.id,
                reason: None,
            },
        )?;
        Ok(LoginResponse {
            session_token: token,
            session: view(&record, &settings, Some(&record.id)),
            require_password_change: auth.require_password_change,
        })
    }

    /// Publishes `session.login_failed`: the address as typed (trimmed,
    /// lowercased, at most 254 characters), never the password. `locked`:
    /// this failure starts or extends a throttling delay for the account.
    fn publish_login_failed(
        &self,
        email: &str,
        reason: &str,
        failures: Option<u32>,
        locked: bool,
    ) -> Result<(), PluginError> {
        self.host.publish(
            "session.login_failed",
            &json!({
                "email": audit_email(email),
                "reason": reason,
                "failures": failures,
                "locked": locked,
            }),
        )
    }

    /// `logout` (authenticated): ends the caller's session.
    fn logout(&self, _: Empty, ctx: &CallContext) -> Result<LogoutResponse, PluginError> {
        let (_, session_id) = caller(ctx)?;
        let Some(session_id) = session_id else {
            return Err(PluginError::invalid(
                "logout needs a call made through a session",
            ));
        };
        self.end(&session_id, "logout")?;
        Ok(LogoutResponse {
            session_ended: true,
        })
    }

    /// `whoami` (authenticated): the caller's subject.
    fn whoami(&self, _: Empty, ctx: &CallContext) -> Result<WhoamiResponse, PluginError> {
        let Subject::User(user) = &ctx.subject else {
            return Err(PluginError::unauthenticated("log in first"));
        };
        Ok(WhoamiResponse {
            user_id: user.id.clone(),
            session_id: user.session_id.clone(),
            email: user.email.clone(),
            permissions: user.permissions.iter().cloned().collect(),
            roles: user.roles.iter().cloned().collect(),
            groups: user.groups.iter().cloned().collect(),
            licenses: user.licenses.iter().cloned().collect(),
            must_change_password: user.must_change_password,
        })
    }

    /// `list_mine` (authenticated): the caller's live sessions.
    fn list_mine(&self, _: Empty, ctx: &CallContext) -> Result<SessionList, PluginError> {
        let (user_id, session_id) = caller(ctx)?;
        self.list(&user_id, session_id.as_deref())
    }

    /// `revoke_mine` (authenticated): ends one of the caller's sessions.
    fn revoke_mine(
        &self,
        req: RevokeMineRequest,
        ctx: &CallContext,
    ) -> Result<RevokeMineResponse, PluginError> {
        let (user_id, _) = caller(ctx)?;
        let not_found = || PluginError::not_found(format!("session {} not found", req.session_id));
        if !store::is_session_id_shaped(&req.session_id) {
            return Err(not_found());
        }
        match store::load(&self.store(), &req.session_id)? {
            Some((_, record)) if record.user_id == user_id => {}
            _ => return Err(not_found()),
        }
        let revoked = self.end(&req.session_id, "revoked")?;
        Ok(RevokeMineResponse { revoked })
    }

    /// `list_for_user` (`session.read`).
    fn list_for_user(
        &self,
        req: UserIdRequest,
        ctx: &CallContext,
    ) -> Result<SessionList, PluginError> {
        check_user_id(&req.user_id)?;
        let current = match &ctx.subject {
            Subject::User(u) => u.session_id.clone(),
            _ => None,
        };
        self.list(&req.user_id, current.as_deref())
    }

    /// `revoke_all_for_user` (`session.manage`).
    fn revoke_all_for_user(
        &self,
        req: UserIdRequest,
        _: &CallContext,
    ) -> Result<RevokeAllResponse, PluginError> {
        check_user_id(&req.user_id)?;
        let revoked = self.end_all(&req.user_id, None, "revoked")?;
        Ok(RevokeAllResponse { revoked })
    }

    /// `resolve_token` (system only): the token resolver of the host.
    fn resolve_token(
        &self,
        req: ResolveTokenRequest,
        _: &CallContext,
    ) -> Result<ResolvedToken, PluginError> {
        let unknown = || PluginError::unauthenticated("session expired or unknown");
        if !store::is_token_shaped(&req.token) {
            return Err(unknown());
        }
        let hash = store::sha256_hex(req.token.as_bytes());
        let settings = self.settings()?;
        // A resolution that would write nothing (no rotation, not expired,
        // `last_seen_at` recent enough) is answered from the cache. This is
        // the only answer an inline call (host-declared `inline`) can give:
        // everything below reads the store first, which refuses an inline
        // call with `would_block` before anything is written.
        if let Some(cached) = self.tokens.get(&hash) {
            let now = self.now();
            if !cached.rotate
                && !is_expired(&cached, &settings, now)
                && now - cached.last_seen_at < LAST_SEEN_GRANULARITY_MS
            {
                return Ok(resolved(&cached, None, &settings));
            }
        }
        let store = self.store();
        for _ in 0..store::MAX_ATTEMPTS {
            let generation = self.tokens.generation();
            let Some(id_bytes) = store.get(store::token_key(&hash))? else {
                return Err(unknown());
            };
            let session_id = String::from_utf8(id_bytes)
                .map_err(|_| PluginError::storage("a token key holds a non-text session id"))?;
            let Some((bytes, record)) = store::load(&store, &session_id)? else {
                return Err(unknown());
            };
            if record.token_hash != hash {
                // Rotated concurrently; the presented token is dead.
                return Err(unknown());
            }
            let now = self.now();
            if is_expired(&record, &settings, now) {
                self.end(&record.id, "expired")?;
                return Err(unknown());
            }
            let mut next = record.clone();
            if now - record.last_seen_at >= LAST_SEEN_GRANULARITY_MS {
                next.last_seen_at = now;
            }
            let mut replacement = None;
            let committed = if record.rotate {
                let token = store::new_token()?;
                next.token_hash = store::sha256_hex(token.as_bytes());
                next.rotate = false;
                replacement = Some(token);
                store::replace_token(&store, &bytes, &record, &next)?
            } else if next != record {
                let result = store
                    .batch()
                    .expect(store::session_key(&record.id), &bytes)
                    .put_json(store::session_key(&record.id), &next)?
                    .commit()?;
                result == syshost_plugin_api::BatchResult::Committed
            } else {
                true
            };
            if !committed {
                continue;
            }
            let answer = resolved(&next, replacement, &settings);
            if next == record {
                // `next` is what the store holds now, unless a change
                // committed since `generation` (then it is not cached).
                self.tokens.insert(generation, next);
            } else {
                self.tokens.forget(&record.token_hash);
                // That `forget` (ours) voids `generation`. Cache what was
                // written if the store still holds it as of a generation
                // taken now: a change committed after this read forgets the
                // session and bumps the generation, so it is never cached
                // stale; without this, the next request would read the
                // store (and, for an inline caller, take the blocking path).
                let generation = self.tokens.generation();
                if let Ok(Some((_, stored))) = store::load(&store, &next.id) {
                    if stored == next {
                        self.tokens.insert(generation, next);
                    }
                }
            }
            return Ok(answer);
        }
        Err(PluginError::conflict(
            "the session kept changing concurrently; try again",
        ))
    }

    // -----------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------

    /// `user.updated`: a status change may end every session; a change of
    /// roles or permissions marks every session for token rotation.
    fn user_updated(&self, event: &UserUpdatedEvent) -> Result<(), PluginError> {
        let has = |name: &str| event.changes.iter().any(|c| c == name);
        if has("status") {
            let user: Result<UserActive, PluginError> =
                self.host
                    .call("user", "get", &json!({ "id": event.user_id }));
            let active = match user {
                Ok(u) => u.active,
                Err(e) if e.is(codes::NOT_FOUND) => false,
                Err(e) => return Err(e),
            };
            if !active {
                self.end_all(&event.user_id, None, "user_disabled")?;
                return Ok(());
            }
        }
        if has("roles") || has("permissions") {
            let store = self.store();
            for id in store::session_ids_of(&store, &event.user_id)? {
                let changed = store::modify(&store, &id, |r| {
                    let changed = !r.rotate;
                    r.rotate = true;
                    changed
                })?;
                if let Some(record) = changed {
                    self.session_updated(&record, "access_changed")?;
                }
            }
        }
        Ok(())
    }

    /// `user.password_changed`: ends every session of the user except the
    /// one the change was made through, which is no longer restricted and
    /// gets a new token at its next resolution.
    fn password_changed(&self, event: &PasswordChangedEvent) -> Result<(), PluginError> {
        let keep = event.session_id.as_deref();
        self.end_all(&event.user_id, keep, "password_changed")?;
        if let Some(keep) = keep {
            let store = self.store();
            let changed = store::modify(&store, keep, |r| {
                if r.user_id != event.user_id {
                    return false;
                }
                r.restricted = false;
                r.rotate = true;
                true
            })?;
            if let Some(record) = changed {
                self.session_updated(&record, "password_changed")?;
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------

    /// After a committed change to session `record` (other than a recorded
    /// use): drops its cached resolution here and publishes
    /// `session.updated`, which drops the host's.
    fn session_updated(&self, record: &SessionRecord, reason: &str) -> Result<(), PluginError> {
        self.tokens.forget(&record.token_hash);
        self.host.publish(
            "session.updated",
            &SessionEvent {
                user_id: &record.user_id,
                session_id: &record.id,
                reason: Some(reason),
            },
        )
    }

    /// Ends session `id` and publishes `session.ended`; returns whether it
    /// existed.
    fn end(&self, id: &str, reason: &str) -> Result<bool, PluginError> {
        match store::remove(&self.store(), id)? {
            Some(record) => {
                self.tokens.forget(&record.token_hash);
                self.host.publish(
                    "session.ended",
                    &SessionEvent {
                        user_id: &record.user_id,
                        session_id: &record.id,
                        reason: Some(reason),
                    },
                )?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends every session of `user_id` except `keep`; returns how many.
    fn end_all(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
    ) -> Result<usize, PluginError> {
        let mut ended = 0;
        for id in store::session_ids_of(&self.store(), user_id)? {
            if Some(id.as_str()) == keep {
                continue;
            }
            if self.end(&id, reason)? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Removes the expired sessions of `user_id`.
    fn purge_expired(&self, user_id: &str, settings: &SessionSettings) -> Result<(), PluginError> {
        let now = self.now();
        for record in store::sessions_of(&self.store(), user_id)? {
            if is_expired(&record, settings, now) {
                self.end(&record.id, "expired")?;
            }
        }
        Ok(())
    }

    /// The live sessions of `user_id`, newest first.
    fn list(&self, user_id: &str, current: Option<&str>) -> Result<SessionList, PluginError> {
        let settings = self.settings()?;
        let now = self.now();
        let mut items: Vec<SessionView> = store::sessions_of(&self.store(), user_id)?
            .iter()
            .filter(|r| !is_expired(r, &settings, now))
            .map(|r| view(r, &settings, current))
            .collect();
        items.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(SessionList { items })
    }
}

/// The answer of `resolve_token` for the session `record` (as stored).
/// Without a rotation, the host may reuse it until the first of: the
/// absolute expiry, the idle expiry, and the next due `last_seen_at` write.
fn resolved(
    record: &SessionRecord,
    replacement_token: Option<String>,
    settings: &SessionSettings,
) -> ResolvedToken {
    let cache_until = (replacement_token.is_none() && !record.rotate).then(|| {
        // Expired once `now - last_seen_at > idle`: still valid at `+ idle`.
        let idle_end = record
            .last_seen_at
            .saturating_add(settings.idle_ms())
            .saturating_add(1);
        let next_write = record.last_seen_at.saturating_add(LAST_SEEN_GRANULARITY_MS);
        record.expires_at.min(idle_end).min(next_write)
    });
    let allowed_operations = record.restricted.then(|| {
        RESTRICTED_OPERATIONS
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    });
    ResolvedToken {
        user_id: record.user_id.clone(),
        session_id: record.id.clone(),
        allowed_operations,
        replacement_token,
        cache_until,
    }
}

/// The calling user's id and session id, or `unauthenticated`.
fn caller(ctx: &CallContext) -> Result<(String, Option<String>), PluginError> {
    match &ctx.subject {
        Subject::User(u) => Ok((u.id.clone(), u.session_id.clone())),
        _ => Err(PluginError::unauthenticated("log in first")),
    }
}

fn check_user_id(id: &str) -> Result<(), PluginError> {
    if store::is_slug(id) {
        Ok(())
    } else {
        Err(PluginError::invalid_field(
            "user_id",
            "user_id must be a user id (^[a-z0-9][a-z0-9_-]{0,63}$)",
        ))
    }
}

/// Whether the session has passed its idle or absolute end at `now`.
fn is_expired(record: &SessionRecord, settings: &SessionSettings, now: i64) -> bool {
    now >= record.expires_at || now - record.last_seen_at > settings.idle_ms()
}

fn view(record: &SessionRecord, settings: &SessionSettings, current: Option<&str>) -> SessionView {
    SessionView {
        id: record.id.clone(),
        user_id: record.user_id.clone(),
        created_at: record.created_at,
        last_seen_at: record.last_seen_at,
        expires_at: record.expires_at,
        idle_expires_at: record
            .last_seen_at
            .saturating_add(settings.idle_ms())
            .min(record.expires_at),
        client_addr: record.client_addr.clone(),
        current: current == Some(record.id.as_str()),
    }
}

/// The `session` settings section: defaults and schema (settings schema language).
pub fn settings_section() -> serde_json::Value {
    let int = |title: &str, description: &str, min: i64, max: i64| {
        json!({
            "type": "integer",
            "title": title,
            "description": description,
            "minimum": min,
            "maximum": max,
        })
    };
    json!({
        "defaults": {
            "idle_timeout_minutes": 30,
            "absolute_lifetime_hours": 12,
            "lockout_threshold": 3,
            "lockout_base_delay_ms": 1000,
            "lockout_max_delay_ms": 300000,
        },
        "schema": {
            "type": "object",
            "title": "Sessions",
            "description": "Session lifetimes and the throttling of failed logins.",
            "x-less-or-equal": [["lockout_base_delay_ms", "lockout_max_delay_ms"]],
            "properties": {
                "idle_timeout_minutes": int(
                    "Idle timeout",
                    "A session ends after this many minutes without use.",
                    1, 1440),
                "absolute_lifetime_hours": int(
                    "Absolute lifetime",
                    "A session ends this many hours after login, however it is used.",
                    1, 720),
                "lockout_threshold": int(
                    "Failed logins before delay",
                    "After this many consecutive failed logins of one account, further attempts are delayed.",
                    1, 20),
                "lockout_base_delay_ms": int(
                    "First delay (ms)",
                    "The delay after the threshold is reached; it doubles with every further failure.",
                    100, 60000),
                "lockout_max_delay_ms": int(
                    "Longest delay (ms)",
                    "The delay never grows beyond this.",
                    1000, 3600000),
            },
        },
    })
}

/// Registers (or re-registers) the `session` settings section.
/// A login address as events carry it: trimmed, lowercased, at most 254
/// characters.
fn audit_email(email: &str) -> String {
    email.trim().to_lowercase().chars().take(254).collect()
}

fn register_settings_section(host: &Host) -> Result<(), PluginError> {
    let section = settings_section();
    let request = json!({
        "section": SETTINGS_SECTION,
        "defaults": section["defaults"],
        "schema": section["schema"],
    });
    let _: serde_json::Value = host.call("settings", "register", &request)?;
    Ok(())
}

export_plugin!(SessionSystem);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let s = SessionSettings::default();
        assert_eq!(s.delay_ms(0), 0);
        assert_eq!(s.delay_ms(2), 0);
        assert_eq!(s.delay_ms(3), 1000);
        assert_eq!(s.delay_ms(4), 2000);
        assert_eq!(s.delay_ms(5), 4000);
        assert_eq!(s.delay_ms(20), 300_000);
        assert_eq!(s.delay_ms(u32::MAX), 300_000);
    }

    #[test]
    fn expiry() {
        let s = SessionSettings::default();
        let r = SessionRecord {
            id: "a".into(),
            user_id: "u".into(),
            token_hash: "h".into(),
            created_at: 0,
            last_seen_at: 0,
            expires_at: s.lifetime_ms(),
            client_addr: None,
            restricted: false,
            rotate: false,
        };
        assert!(!is_expired(&r, &s, s.idle_ms()));
        assert!(is_expired(&r, &s, s.idle_ms() + 1));
        let busy = SessionRecord {
            last_seen_at: s.lifetime_ms() - 1,
            ..r
        };
        assert!(is_expired(&busy, &s, s.lifetime_ms()));
    }
}
