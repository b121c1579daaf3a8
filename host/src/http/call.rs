//! The one way an HTTP request becomes an operation call, shared by the JSON
//! API ([`super::api`]) and the web frontend ([`crate::web`]): find the
//! declared operation, apply the per-address throttle, resolve the token
//! into a call context, and run the call through
//! [`Host::call_raw`](crate::Host::call_raw) (which authorizes it).
//!
//! Where a call runs: an API call of an operation declared
//! [`inline`](syshost_plugin_api::OperationDecl::inline) is first tried on
//! the async worker itself in inline mode ([`crate::inline`]: token
//! resolution, subject and call together; anything that could block is
//! refused, so a refused attempt wrote nothing). A refused attempt, and
//! every other call, runs on tokio's blocking pool under the per-call
//! budget, exactly as if no attempt had been made.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use syshost_plugin_api::{codes, CallContext, OperationDecl, PluginError, Subject};

use super::auth::{self, TokenSource};
use super::errors::{ApiError, TIMEOUT};
use super::{AppState, RequestId};

/// Who is asking, as far as the HTTP request tells: the token (with its
/// source), the client address and the request id.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The bearer or cookie token, if any.
    pub token: Option<(String, TokenSource)>,
    /// The client address (for throttling and the call context).
    pub client_ip: Option<IpAddr>,
    /// The request id the middleware assigned.
    pub request_id: String,
}

impl Caller {
    /// Reads token, client address and request id from `req`.
    pub fn from_request(state: &AppState, req: &Request) -> Result<Caller, ApiError> {
        Ok(Caller {
            token: auth::extract_token(req.headers(), state.opts.tls_proxy)?,
            client_ip: auth::client_ip(req, state.opts.trust_proxy_headers),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
        })
    }

    /// Whether the token came from the session cookie.
    pub fn uses_cookie(&self) -> bool {
        matches!(self.token, Some((_, TokenSource::Cookie)))
    }
}

/// What resolving the caller produced besides the closure's result.
pub(crate) struct Resolved<R> {
    /// The closure's result.
    pub value: R,
    /// The call context the closure ran with.
    pub ctx: CallContext,
    /// A new token the resolver handed out (rotation), if any.
    pub replacement_token: Option<String>,
    /// The caller's token was stale or unknown and the call ran
    /// anonymously instead ([`StaleToken::Anonymous`]); its cookie should
    /// be cleared.
    pub stale_token: bool,
    /// The call ran inline on the async worker (not on the blocking pool).
    pub inline: bool,
}

/// What a stale or unknown session token means for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaleToken {
    /// Refuse with `unauthenticated` (401).
    Refuse,
    /// Run the call anonymously (the caller clears the cookie).
    Anonymous,
}

/// The declared operation `plugin.operation` of an active system, or the
/// API's error for it (`unknown_operation`, or `unavailable` as 404).
pub(crate) fn find_operation<'h>(
    host: &'h crate::Host,
    plugin: &str,
    operation: &str,
) -> Result<&'h OperationDecl, ApiError> {
    if !host.is_active(plugin) {
        return Err(if host.manifest(plugin).is_some() {
            ApiError::new(
                codes::UNAVAILABLE,
                format!("system '{plugin}' is not active"),
            )
            .with_status(StatusCode::NOT_FOUND)
        } else {
            ApiError::new(codes::UNKNOWN_OPERATION, format!("no system '{plugin}'"))
        });
    }
    // Borrowed from discovery: cloning the manifest, or even the one
    // declaration with its JSON Schemas, on each request cost more than
    // the call.
    host.discovery()
        .plugins
        .get(plugin)
        .and_then(|p| p.manifest.operation(operation))
        .ok_or_else(|| {
            ApiError::new(
                codes::UNKNOWN_OPERATION,
                format!("system '{plugin}' has no operation '{operation}'"),
            )
        })
}

/// Applies the per-address rate limit of the operation's throttle class.
pub(crate) fn throttle(
    state: &AppState,
    decl: &OperationDecl,
    caller: &Caller,
) -> Result<(), ApiError> {
    if decl.throttle.as_deref() == Some("auth") {
        if let Some(ip) = caller.client_ip {
            state
                .auth_limiter
                .check(ip)
                .map_err(ApiError::rate_limited)?;
        }
    }
    Ok(())
}

/// How many calls of one system may run past the time budget at once
/// before further calls to it are refused (each holds a blocking thread).
pub const MAX_OVERDUE_CALLS: usize = 4;

/// Calls still running after their caller got `timeout`, per system.
#[derive(Default)]
pub(crate) struct Overdue {
    running: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Overdue {
    fn running(&self, system: &str) -> usize {
        self.running
            .lock()
            .map(|m| m.get(system).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Counts `task` against `system` until it finishes.
    fn track<T: Send + 'static>(self: &Arc<Self>, system: &str, task: tokio::task::JoinHandle<T>) {
        if let Ok(mut m) = self.running.lock() {
            *m.entry(system.to_string()).or_default() += 1;
        }
        let this = self.clone();
        let system = system.to_string();
        tokio::spawn(async move {
            let _ = task.await;
            if let Ok(mut m) = this.running.lock() {
                if let Some(n) = m.get_mut(&system) {
                    *n = n.saturating_sub(1);
                }
            }
        });
    }
}

/// Resolves the caller into a call context on the blocking pool and runs
/// `f` with it there (plugin calls are synchronous). A stale or unknown
/// token counts as anonymous (see [`Resolved::stale_token`]).
pub(crate) async fn with_context<R, F>(
    state: &Arc<AppState>,
    caller: &Caller,
    f: F,
) -> Result<Resolved<R>, ApiError>
where
    R: Send + 'static,
    F: FnOnce(&crate::Host, &CallContext) -> R + Send + 'static,
{
    with_context_on(state, caller, None, StaleToken::Anonymous, f).await
}

/// `unavailable` while `system` has [`MAX_OVERDUE_CALLS`] calls still
/// running past the time budget.
fn check_overdue(state: &AppState, system: &str) -> Result<(), ApiError> {
    let overdue = state.overdue.running(system);
    if overdue >= MAX_OVERDUE_CALLS {
        return Err(ApiError::new(
            codes::UNAVAILABLE,
            format!(
                "system '{system}' has {overdue} calls still running past the time budget (limits.call_budget_ms); try again later"
            ),
        ));
    }
    Ok(())
}

/// [`with_context`] for a call of `target` (system, operation) when known:
/// answers 503 `timeout` once the per-call budget (`limits.call_budget_ms`)
/// is exceeded, and 503 `unavailable` while the system has
/// [`MAX_OVERDUE_CALLS`] calls still running past it. A plugin call cannot
/// be interrupted; an overdue one keeps its thread until it returns.
async fn with_context_on<R, F>(
    state: &Arc<AppState>,
    caller: &Caller,
    target: Option<(&str, &str)>,
    stale: StaleToken,
    f: F,
) -> Result<Resolved<R>, ApiError>
where
    R: Send + 'static,
    F: FnOnce(&crate::Host, &CallContext) -> R + Send + 'static,
{
    let key = target.map_or("", |(system, _)| system);
    check_overdue(state, key)?;
    let host = state.host.clone();
    let token = caller.token.as_ref().map(|(t, _)| t.clone());
    let client_addr = caller.client_ip.map(|ip| ip.to_string());
    let request_id = caller.request_id.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let (ctx, replacement_token, stale_token) = resolve_caller(
            &host,
            token.as_deref(),
            client_addr.as_deref(),
            &request_id,
            stale,
        )?;
        let value = f(&host, &ctx);
        Ok(Resolved {
            value,
            ctx,
            replacement_token,
            stale_token,
            inline: false,
        })
    });
    let budget = state.host.call_budget();
    match tokio::time::timeout(budget, &mut task).await {
        Ok(joined) => joined
            .map_err(|e| ApiError::new(codes::INTERNAL, format!("request task failed: {e}")))?,
        Err(_) => {
            state.overdue.track(key, task);
            let ms = budget.as_millis() as u64;
            let what = target.map_or_else(
                || "the request".to_string(),
                |(system, operation)| format!("{system}.{operation}"),
            );
            Err(ApiError::new(
                TIMEOUT,
                format!(
                    "{what} exceeded the per-call time budget of {ms} ms (limits.call_budget_ms); its outcome is unknown"
                ),
            )
            .with_details(serde_json::json!({ "budget_ms": ms })))
        }
    }
}

/// Calls `plugin.operation` with a JSON `payload` as `caller` (the host
/// authorizes it); answers the response body and the resolution. `stale`
/// says what a stale or unknown token means. `inline`: the operation is
/// declared [`inline`](syshost_plugin_api::OperationDecl::inline), so the
/// call is first tried on this worker (see the module documentation).
pub(crate) async fn call(
    state: &Arc<AppState>,
    caller: &Caller,
    plugin: &str,
    operation: &str,
    payload: String,
    stale: StaleToken,
    inline: bool,
) -> Result<Resolved<Result<String, ApiError>>, ApiError> {
    if inline && state.inline.allows(plugin, operation) {
        check_overdue(state, plugin)?;
        if let Some(done) = call_inline(state, caller, plugin, operation, &payload, stale) {
            return done;
        }
    }
    let target = (plugin, operation);
    let (plugin, operation) = (plugin.to_string(), operation.to_string());
    with_context_on(state, caller, Some(target), stale, move |host, ctx| {
        host.call_raw(&plugin, &operation, &payload, ctx)
            .map_err(ApiError::from)
    })
    .await
}

/// An inline attempt longer than this means the operation does not keep
/// its promise: it is run on the blocking pool from then on.
pub const INLINE_SLOW: std::time::Duration = std::time::Duration::from_millis(100);

/// Operations the HTTP layer no longer runs inline because an attempt took
/// longer than [`INLINE_SLOW`] (until the process restarts).
#[derive(Default)]
pub(crate) struct InlinePolicy {
    /// (system, operation) pairs; a handful at most, so a scan without
    /// allocating beats hashing a formatted key on every attempt.
    demoted: std::sync::RwLock<Vec<(String, String)>>,
}

impl InlinePolicy {
    /// Whether `plugin.operation` may still be tried inline.
    fn allows(&self, plugin: &str, operation: &str) -> bool {
        let demoted = self.demoted.read().unwrap_or_else(|p| p.into_inner());
        !demoted.iter().any(|(p, o)| p == plugin && o == operation)
    }

    fn demote(&self, plugin: &str, operation: &str) {
        let mut demoted = self.demoted.write().unwrap_or_else(|p| p.into_inner());
        if !demoted.iter().any(|(p, o)| p == plugin && o == operation) {
            demoted.push((plugin.to_string(), operation.to_string()));
        }
    }
}

/// Token resolution, subject and call in inline mode on this worker.
/// `None`: something would have blocked (nothing was written); run the
/// call on the blocking pool instead.
fn call_inline(
    state: &AppState,
    caller: &Caller,
    plugin: &str,
    operation: &str,
    payload: &str,
    stale: StaleToken,
) -> Option<Result<Resolved<Result<String, ApiError>>, ApiError>> {
    let client_addr = caller.client_ip.map(|ip| ip.to_string());
    let started = std::time::Instant::now();
    let outcome = state.host.run_inline(|host| {
        let (ctx, replacement_token, stale_token) = resolve_caller(
            host,
            caller.token.as_ref().map(|(t, _)| t.as_str()),
            client_addr.as_deref(),
            &caller.request_id,
            stale,
        )?;
        let value = host
            .call_raw(plugin, operation, payload, &ctx)
            .map_err(ApiError::from);
        Ok(Resolved {
            value,
            ctx,
            replacement_token,
            stale_token,
            inline: true,
        })
    });
    let elapsed = started.elapsed();
    if elapsed > INLINE_SLOW {
        tracing::warn!(
            plugin,
            operation,
            ms = elapsed.as_millis() as u64,
            "an inline call took longer than {} ms; {plugin}.{operation} runs on the blocking pool from now on",
            INLINE_SLOW.as_millis()
        );
        state.inline.demote(plugin, operation);
    }
    outcome
}

/// The call context for the caller's token; a stale or unknown token runs
/// anonymously when `stale` says so (the third value is then `true`).
fn resolve_caller(
    host: &crate::Host,
    token: Option<&str>,
    client_addr: Option<&str>,
    request_id: &str,
    stale: StaleToken,
) -> Result<(CallContext, Option<String>, bool), ApiError> {
    match context(host, token, client_addr, request_id) {
        Ok((ctx, replacement)) => Ok((ctx, replacement, false)),
        Err(e) if stale == StaleToken::Anonymous && e.code == codes::UNAUTHENTICATED => {
            let (ctx, _) = context(host, None, client_addr, request_id)?;
            Ok((ctx, None, true))
        }
        Err(e) => Err(e),
    }
}

/// The call context for a request: anonymous without a token, else the
/// session's user (with session id and restrictions). Also returns the
/// resolver's replacement token, if any.
fn context(
    host: &crate::Host,
    token: Option<&str>,
    client_addr: Option<&str>,
    request_id: &str,
) -> Result<(CallContext, Option<String>), ApiError> {
    let (mut ctx, replacement) = match token {
        None => (host.context_for(None).map_err(ApiError::from)?, None),
        Some(token) => {
            let resolved = host
                .resolve_token(token, client_addr)
                .map_err(ApiError::from)?;
            let mut ctx = host
                .context_for(Some(&resolved.user_id))
                .map_err(|e| session_error(e, &resolved.user_id))?;
            match &mut ctx.subject {
                Subject::User(user) => user.session_id = Some(resolved.session_id.clone()),
                _ => return Err(ApiError::unauthenticated("session expired or unknown")),
            }
            ctx.restricted_to = resolved.allowed_operations;
            (ctx, resolved.replacement_token)
        }
    };
    ctx.client_addr = client_addr.map(str::to_string);
    ctx.request_id = Some(request_id.to_string());
    Ok((ctx, replacement))
}

/// A session whose user can no longer be resolved is simply not valid.
fn session_error(e: PluginError, user_id: &str) -> ApiError {
    if e.is(codes::NOT_FOUND) || e.is(codes::UNAUTHENTICATED) || e.is(codes::PERMISSION_DENIED) {
        tracing::debug!(user_id, "session user not resolvable: {e}");
        ApiError::unauthenticated("session expired or unknown")
    } else {
        ApiError::from(e)
    }
}

/// Session-cookie headers a call's outcome asks for: the rotated token when
/// the caller used the cookie, a new session's token when the response
/// carries `session_token` (login), or clearing when it says
/// `session_ended` (logout).
pub(crate) fn session_cookies(
    headers: &mut HeaderMap,
    caller: &Caller,
    replacement_token: Option<&str>,
    body: &str,
    tls: bool,
) {
    let mut set = |value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    };
    if let Some(new_token) = replacement_token {
        if caller.uses_cookie() {
            set(auth::set_cookie(new_token, tls));
        }
    }
    // Most answers name neither member: skip decoding them (this runs on
    // every API request).
    let named = body.contains("\"session_token\"") || body.contains("\"session_ended\"");
    if !named || !body.trim_start().starts_with('{') {
        return;
    }
    if let Ok(outcome) = serde_json::from_str::<SessionOutcome>(body) {
        let token = outcome.session_token.as_ref().and_then(|v| v.as_str());
        if let Some(new_token) = token {
            set(auth::set_cookie(new_token, tls));
        } else if outcome.session_ended == Some(serde_json::Value::Bool(true)) {
            set(auth::clear_cookie(tls));
        }
    }
}

/// The two members of an answer object that move the session cookie (every
/// other member is skipped, not decoded).
#[derive(serde::Deserialize)]
struct SessionOutcome {
    #[serde(default)]
    session_token: Option<serde_json::Value>,
    #[serde(default)]
    session_ended: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demoted_operation_is_no_longer_tried_inline_and_the_others_still_are() {
        let policy = InlinePolicy::default();
        assert!(policy.allows("session", "whoami"));
        policy.demote("session", "whoami");
        policy.demote("session", "whoami");
        assert!(!policy.allows("session", "whoami"));
        assert!(policy.allows("session", "resolve_token"));
        assert!(policy.allows("sessio", "nwhoami"));
        assert_eq!(policy.demoted.read().unwrap().len(), 1);
    }
}
