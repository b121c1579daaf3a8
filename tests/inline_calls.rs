//! Inline calls (`OperationDecl::inline`, `Host::run_inline`): the real host
//! and the real plugin libraries, a controllable clock, and the `inliner`
//! fixture, which tries everything inline mode refuses.
//!
//! What must hold: an inline attempt answers exactly what the blocking path
//! answers, or is refused as a whole (`None`) without having written
//! anything, so the caller can run it again; sessions that end, expire or
//! must be written are never answered inline; operations not declared
//! inline are never called inline.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use syshost::Host;
use syshost_plugin_api::{codes, CallContext, PluginError, ResolvedToken, Subject};
use syshost_test_support::{fixture_library, PluginDir, TestClock};

const PASSWORD: &str = "Tr0ub4dor&3-horse";
const NEW_PASSWORD: &str = "Another-Secret-99x";
const CLIENT: &str = "192.0.2.7";

struct Env {
    host: Host,
    clock: TestClock,
    _data: tempfile::TempDir,
    _plugins: PluginDir,
}

/// Which path answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Inline,
    Pool,
}

impl Env {
    fn start() -> Env {
        let plugins = PluginDir::systems_and(&[fixture_library("inliner")]);
        let data = tempfile::tempdir().unwrap();
        let clock = TestClock::new();
        let host = Host::builder()
            .data_dir(data.path())
            .plugin_dir(plugins.path())
            .clock(clock.source())
            .build()
            .unwrap();
        let report = host.activate_all(&["user".into(), "session".into(), "inliner".into()]);
        assert!(report.is_ok(), "{report:?}");
        Env {
            host,
            clock,
            _data: data,
            _plugins: plugins,
        }
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn ok(&self, system: &str, op: &str, req: Value) -> Value {
        self.host
            .system(system)
            .unwrap()
            .call(op, &req)
            .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
    }

    fn as_ctx(&self, ctx: &CallContext, system: &str, op: &str, req: Value) -> Value {
        self.host
            .system(system)
            .unwrap()
            .call_as(ctx, op, &req)
            .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
    }

    fn create_user(&self, email: &str) -> String {
        self.ok(
            "user",
            "create",
            json!({ "email": email, "password": PASSWORD, "verified": true }),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn token(&self, email: &str) -> String {
        let anon = self.host.context_for(None).unwrap();
        self.as_ctx(
            &anon,
            "session",
            "login",
            json!({ "email": email, "password": PASSWORD }),
        )["session_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The call context the HTTP layer builds for `token` (on the host).
    fn context(host: &Host, token: &str) -> Result<(CallContext, ResolvedToken), PluginError> {
        let resolved = host.resolve_token(token, Some(CLIENT))?;
        let mut ctx = host.context_for(Some(&resolved.user_id))?;
        if let Subject::User(u) = &mut ctx.subject {
            u.session_id = Some(resolved.session_id.clone());
        }
        ctx.restricted_to = resolved.allowed_operations.clone();
        ctx.client_addr = Some(CLIENT.into());
        Ok((ctx, resolved))
    }

    /// Resolves `token` and calls `system.op` as that session the way the
    /// HTTP layer does: inline first, on this thread again if refused.
    fn call(
        &self,
        token: &str,
        system: &str,
        op: &str,
    ) -> (Path, Result<(String, ResolvedToken), PluginError>) {
        let attempt = |host: &Host| {
            let (ctx, resolved) = Env::context(host, token)?;
            let answer = host.call_raw(system, op, "{}", &ctx)?;
            Ok((answer, resolved))
        };
        match self.host.run_inline(attempt) {
            Some(answer) => (Path::Inline, answer),
            None => (Path::Pool, attempt(&self.host)),
        }
    }

    /// Only an inline attempt: `None` when it was refused.
    fn resolve_inline(&self, token: &str) -> Option<Result<ResolvedToken, PluginError>> {
        self.host
            .run_inline(|host| host.resolve_token(token, Some(CLIENT)))
    }

    fn last_seen(&self, user_id: &str, session_id: &str) -> i64 {
        let list = self.ok("session", "list_for_user", json!({ "user_id": user_id }));
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == session_id)
            .unwrap_or_else(|| panic!("no session {session_id} in {list}"))["last_seen_at"]
            .as_i64()
            .unwrap()
    }

    fn inliner(&self, op: &str, req: Value) -> Value {
        self.ok("inliner", op, req)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.host.shutdown();
    }
}

/// Neither path answers the token with a session.
fn assert_dead(env: &Env, token: &str) {
    if let Some(inline) = env.resolve_inline(token) {
        let err = inline.expect_err("an ended session answered inline");
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{err:?}");
    }
    let (_, answer) = env.call(token, "session", "whoami");
    let err = answer.expect_err("an ended session answered");
    assert_eq!(err.code, codes::UNAUTHENTICATED, "{err:?}");
}

/// Calls whoami twice: the second answer comes inline (a session the
/// token cache does not know yet is read from the store, on the blocking
/// path) and equals the first; returns it.
fn warm(env: &Env, token: &str) -> Value {
    let (_, first) = env.call(token, "session", "whoami");
    let (second_path, second) = env.call(token, "session", "whoami");
    assert_eq!(second_path, Path::Inline, "a cached session answers inline");
    let (first, first_resolved) = first.unwrap();
    let (second, second_resolved) = second.unwrap();
    assert_eq!(first, second, "both paths answer the same");
    assert_eq!(first_resolved, second_resolved);
    assert_eq!(second_resolved.replacement_token, None);
    serde_json::from_str(&second).unwrap()
}

#[test]
fn the_session_system_declares_resolution_and_whoami_inline() {
    let env = Env::start();
    let manifest = env.host.manifest("session").unwrap();
    let inline: BTreeSet<&str> = manifest
        .operations
        .iter()
        .filter(|op| op.inline)
        .map(|op| op.name.as_str())
        .collect();
    assert_eq!(inline, BTreeSet::from(["resolve_token", "whoami"]));
}

#[test]
fn whoami_answers_the_same_inline_and_on_the_blocking_path() {
    let env = Env::start();
    let id = env.create_user("ann@example.com");
    let token = env.token("ann@example.com");
    // Cold: the token cache is empty, the resolution reads the store, which
    // refuses an inline attempt.
    assert!(env.resolve_inline(&token).is_none());
    assert_eq!(env.call(&token, "session", "whoami").0, Path::Pool);
    let whoami = warm(&env, &token);
    assert_eq!(whoami["user_id"], json!(id));
    assert_eq!(whoami["email"], json!("ann@example.com"));
    assert!(whoami["session_id"].is_string(), "{whoami}");
    // Malformed and unknown tokens: refused the same way on both paths.
    for bad in ["not a token", "A".repeat(43).as_str()] {
        let (_, answer) = env.call(bad, "session", "whoami");
        assert_eq!(answer.unwrap_err().code, codes::UNAUTHENTICATED);
    }
    // A subject the host has not cached (dropped by an event of the user
    // system) is resolved on the blocking path, then inline again.
    env.ok(
        "user",
        "update_contact",
        json!({ "id": id, "profile": { "first_name": "Ann" } }),
    );
    let (path, answer) = env.call(&token, "session", "whoami");
    assert_eq!(path, Path::Pool, "the subject was dropped from the cache");
    assert!(answer.is_ok());
    assert_eq!(env.call(&token, "session", "whoami").0, Path::Inline);
}

#[test]
fn resolutions_that_must_write_run_on_the_blocking_path_and_record_the_use() {
    let env = Env::start();
    let id = env.create_user("bo@example.com");
    let token = env.token("bo@example.com");
    let session = warm(&env, &token)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = env.last_seen(&id, &session);
    // 31 s later `last_seen_at` is due: the inline attempt is refused (it
    // would write), the blocking path writes it.
    env.advance(Duration::from_secs(31));
    assert!(env.resolve_inline(&token).is_none());
    assert_eq!(
        env.last_seen(&id, &session),
        before,
        "the refused attempt wrote nothing"
    );
    let (path, answer) = env.call(&token, "session", "whoami");
    assert_eq!(path, Path::Pool);
    assert!(answer.is_ok());
    assert!(env.last_seen(&id, &session) >= before + 31_000);
    // Recorded, so the next requests are answered inline again.
    assert_eq!(env.call(&token, "session", "whoami").0, Path::Inline);

    // Idle expiry (30 minutes by default) and the absolute lifetime (12 h)
    // end cached sessions on both paths.
    env.advance(Duration::from_secs(31 * 60));
    assert_dead(&env, &token);
    let token = env.token("bo@example.com");
    warm(&env, &token);
    // 24 × (29 s + 29 min) ≈ 11 h 48 min of steady use, then 13 minutes.
    for _ in 0..24 {
        env.advance(Duration::from_secs(29));
        env.call(&token, "session", "whoami").1.unwrap();
        env.advance(Duration::from_secs(29 * 60));
        env.call(&token, "session", "whoami").1.unwrap();
    }
    assert_eq!(env.call(&token, "session", "whoami").0, Path::Inline);
    env.advance(Duration::from_secs(13 * 60));
    assert_dead(&env, &token);

    // A changed session setting is read on the blocking path (the settings
    // system's `get` is not inline), then inline again.
    let token = env.token("bo@example.com");
    warm(&env, &token);
    env.ok(
        "settings",
        "put",
        json!({ "section": "session", "document": {
            "idle_timeout_minutes": 5, "absolute_lifetime_hours": 12,
            "lockout_threshold": 3, "lockout_base_delay_ms": 1000,
            "lockout_max_delay_ms": 300000 } }),
    );
    assert!(env.resolve_inline(&token).is_none());
    assert_eq!(env.call(&token, "session", "whoami").0, Path::Pool);
    assert_eq!(env.call(&token, "session", "whoami").0, Path::Inline);
    // The shorter idle timeout applies at once.
    env.advance(Duration::from_secs(6 * 60));
    assert_dead(&env, &token);
}

#[test]
fn ended_sessions_are_never_answered_inline() {
    let env = Env::start();
    let ann = env.create_user("ann@example.com");
    env.create_user("bob@example.com");

    // Logout.
    let token = env.token("ann@example.com");
    warm(&env, &token);
    let (ctx, _) = Env::context(&env.host, &token).unwrap();
    env.as_ctx(&ctx, "session", "logout", json!({}));
    assert_dead(&env, &token);

    // Revocation of one own session from another.
    let current = env.token("ann@example.com");
    let other = env.token("ann@example.com");
    let other_id = warm(&env, &other)["session_id"].clone();
    let (ctx, _) = Env::context(&env.host, &current).unwrap();
    env.as_ctx(
        &ctx,
        "session",
        "revoke_mine",
        json!({ "session_id": other_id }),
    );
    assert_dead(&env, &other);

    // Revocation of every session by the host.
    warm(&env, &current);
    env.ok("session", "revoke_all_for_user", json!({ "user_id": ann }));
    assert_dead(&env, &current);

    // A password change ends the other sessions and rotates the current
    // one: the rotation writes, so it is handed out on the blocking path.
    let current = env.token("ann@example.com");
    let other = env.token("ann@example.com");
    warm(&env, &current);
    warm(&env, &other);
    let (ctx, _) = Env::context(&env.host, &current).unwrap();
    env.as_ctx(
        &ctx,
        "user",
        "change_my_password",
        json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
    );
    assert_dead(&env, &other);
    assert!(env.resolve_inline(&current).is_none(), "a rotation writes");
    let (path, answer) = env.call(&current, "session", "whoami");
    assert_eq!(path, Path::Pool);
    let rotated = answer.unwrap().1.replacement_token.expect("a new token");
    assert_dead(&env, &current);
    warm(&env, &rotated);

    // Disabling the account.
    env.ok(
        "user",
        "set_status",
        json!({ "id": ann, "status": { "state": "disabled" } }),
    );
    assert_dead(&env, &rotated);

    // Deleting the account.
    let bob_token = env.token("bob@example.com");
    let bob = warm(&env, &bob_token)["user_id"].clone();
    env.ok("user", "delete", json!({ "id": bob }));
    assert_dead(&env, &bob_token);
}

#[test]
fn inline_attempts_write_nothing_and_a_retry_runs_once() {
    let env = Env::start();
    let system = CallContext::system();
    // `remember` writes: refused inline (the plugin passed the error on);
    // the retry on this thread writes exactly once.
    let attempt = |host: &Host| host.call_raw("inliner", "remember", r#"{"key":"a"}"#, &system);
    let refused = env.host.run_inline(attempt);
    assert!(refused.is_none(), "{refused:?}");
    assert_eq!(env.inliner("keys", json!({})), json!([]));
    let answer: Value = serde_json::from_str(&attempt(&env.host).unwrap()).unwrap();
    assert_eq!(answer["run"], 2, "the refused attempt was run 1");
    assert_eq!(env.inliner("keys", json!({})), json!(["a#2"]));

    // `swallow` ignores every refusal and answers as if it had worked: the
    // host still discards the answer, and the write, the event and the mail
    // of the inline attempt never happened.
    let attempt = |host: &Host| host.call_raw("inliner", "swallow", r#"{"key":"b"}"#, &system);
    assert!(env.host.run_inline(attempt).is_none());
    let answer: Value = serde_json::from_str(&attempt(&env.host).unwrap()).unwrap();
    assert_eq!(answer, json!({ "run": 2, "refused": [] }));
    assert_eq!(env.inliner("keys", json!({})), json!(["a#2", "b#2"]));
    let stats = env.host.mail_stats().unwrap();
    assert_eq!(
        env.host.mail_pending() as u64 + stats.delivered,
        1,
        "{stats:?}"
    );

    // An operation that needs nothing refused answers inline.
    let peek = env
        .host
        .run_inline(|host| host.call_raw("inliner", "peek", "{}", &system))
        .expect("peek answers from memory")
        .unwrap();
    let peek: Value = serde_json::from_str(&peek).unwrap();
    assert_eq!(peek, json!({ "remember": 2, "swallow": 2, "count": 0 }));
}

#[test]
fn operations_not_declared_inline_are_never_called_inline() {
    let env = Env::start();
    let system = CallContext::system();
    for _ in 0..3 {
        let attempt = env
            .host
            .run_inline(|host| host.call_raw("inliner", "count", "{}", &system));
        assert!(attempt.is_none(), "{attempt:?}");
    }
    // The plugin never ran: its counter is untouched.
    assert_eq!(env.inliner("count", json!({})), json!(1));
    let peek = env.inliner("peek", json!({}));
    assert_eq!(peek["count"], 1);
    // The same for token resolution when no inline resolver is active is
    // covered by the resolver itself: a resolver that is not declared
    // inline is refused like any other operation.
    let token = {
        env.create_user("cy@example.com");
        env.token("cy@example.com")
    };
    warm(&env, &token);
    let answer = env
        .host
        .run_inline(|host| host.call_raw("user", "get", r#"{"id":"nobody"}"#, &system));
    assert!(answer.is_none(), "user.get is not inline: {answer:?}");
}
