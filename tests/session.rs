//! The session system end to end: the real host, the real plugin libraries
//! (all eight systems plus the event-log example to observe events), a
//! controllable clock, and call contexts built from resolved tokens exactly
//! as the HTTP layer builds them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use syshost::Host;
use syshost_plugin_api::{codes, CallContext, PluginError, Subject, UserSubject};
use syshost_test_support::{library, PluginDir, TestClock};

const PASSWORD: &str = "Tr0ub4dor&3-horse";
const NEW_PASSWORD: &str = "Another-Secret-99x";

struct Env {
    host: Host,
    clock: TestClock,
    _data: tempfile::TempDir,
    _plugins: PluginDir,
}

impl Env {
    fn start() -> Env {
        let plugins = PluginDir::systems_and(&[library("syshost-example-event-log")]);
        let data = tempfile::tempdir().unwrap();
        let clock = TestClock::new();
        let host = Host::builder()
            .data_dir(data.path())
            .plugin_dir(plugins.path())
            .clock(clock.source())
            .build()
            .unwrap();
        let report = host.activate_all(&["user".into(), "session".into(), "eventlog".into()]);
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

    /// `system.op` as the host.
    fn sys(&self, system: &str, op: &str, req: Value) -> Result<Value, PluginError> {
        self.host.system(system).unwrap().call(op, &req)
    }

    /// `system.op` as the host, panicking on failure.
    fn ok(&self, system: &str, op: &str, req: Value) -> Value {
        self.sys(system, op, req.clone())
            .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
    }

    /// `system.op` in `ctx`.
    fn as_ctx(
        &self,
        ctx: &CallContext,
        system: &str,
        op: &str,
        req: Value,
    ) -> Result<Value, PluginError> {
        self.host.system(system).unwrap().call_as(ctx, op, &req)
    }

    /// Creates a user with a password (and optional direct permissions).
    fn create_user(&self, email: &str, permissions: &[&str]) -> String {
        self.ok(
            "user",
            "create",
            json!({ "email": email, "password": PASSWORD, "verified": true, "permissions": permissions }),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `session.login` as an anonymous caller.
    fn login(&self, email: &str, password: &str) -> Result<Value, PluginError> {
        let anon = self.host.context_for(None).unwrap();
        self.as_ctx(
            &anon,
            "session",
            "login",
            json!({ "email": email, "password": password }),
        )
    }

    /// Logs in and returns the token.
    fn token(&self, email: &str) -> String {
        let resp = self
            .login(email, PASSWORD)
            .unwrap_or_else(|e| panic!("login {email}: {e:?}"));
        resp["session_token"].as_str().unwrap().to_string()
    }

    /// Resolves `token` the way the HTTP layer does ([`Host::resolve_token`]:
    /// the host's cache of resolutions, else `session.resolve_token`).
    fn resolve(&self, token: &str) -> Result<Value, PluginError> {
        let resolved = self.host.resolve_token(token, Some("192.0.2.7"))?;
        Ok(serde_json::to_value(resolved).unwrap())
    }

    /// The call context the HTTP layer builds for `token`.
    fn ctx(&self, token: &str) -> Result<CallContext, PluginError> {
        let resolved = self.resolve(token)?;
        let user_id = resolved["user_id"].as_str().unwrap();
        let mut ctx = self.host.context_for(Some(user_id))?;
        if let Subject::User(u) = &mut ctx.subject {
            u.session_id = Some(resolved["session_id"].as_str().unwrap().to_string());
        }
        ctx.restricted_to = resolved["allowed_operations"].as_array().map(|ops| {
            ops.iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect::<BTreeSet<_>>()
        });
        ctx.client_addr = Some("192.0.2.7".into());
        Ok(ctx)
    }

    /// Every recorded event with `topic`, oldest first.
    fn events(&self, topic: &str) -> Vec<Value> {
        let page = self.ok("eventlog", "list", json!({ "limit": 500 }));
        let mut out: Vec<Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["topic"] == topic)
            .map(|e| e["payload"].clone())
            .collect();
        out.reverse();
        out
    }

    fn put_settings(&self, doc: Value) {
        self.ok(
            "settings",
            "put",
            json!({ "section": "session", "document": doc }),
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.host.shutdown();
    }
}

fn user_ctx(id: &str, permissions: &[&str]) -> CallContext {
    CallContext::for_subject(Subject::User(UserSubject {
        id: id.into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }))
}

fn assert_dead(env: &Env, token: &str) {
    let err = env.resolve(token).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED, "{err:?}");
    assert_eq!(err.message, "session expired or unknown");
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[test]
fn manifest_declares_resolver_permissions_and_subscriptions() {
    let env = Env::start();
    let m = env.host.manifest("session").unwrap();
    assert_eq!(
        m.token_resolver.as_ref().unwrap().operation,
        "resolve_token"
    );
    let perms: Vec<&str> = m.permissions.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(perms, ["session.read", "session.manage"]);
    for topic in ["user.deleted", "user.updated", "user.password_changed"] {
        assert!(m.subscribes.iter().any(|s| s == topic), "{topic}");
    }
    assert_eq!(
        m.operation("login").unwrap().throttle.as_deref(),
        Some("auth")
    );
    assert!(!m.operation("whoami").unwrap().mutates);
    let anon = env.host.context_for(None).unwrap();
    let pong = env.as_ctx(&anon, "session", "ping", json!({})).unwrap();
    assert_eq!(pong["system"], "session");
    let doc = env.ok("settings", "get", json!({ "section": "session" }));
    assert_eq!(
        doc["document"],
        json!({
            "idle_timeout_minutes": 30,
            "absolute_lifetime_hours": 12,
            "lockout_threshold": 3,
            "lockout_base_delay_ms": 1000,
            "lockout_max_delay_ms": 300000
        })
    );
    let bad = env
        .sys(
            "settings",
            "put",
            json!({ "section": "session", "document": { "idle_timeout_minutes": 0 } }),
        )
        .unwrap_err();
    assert_eq!(bad.code, codes::INVALID_INPUT, "{bad:?}");
}

#[test]
fn login_succeeds_and_failures_look_alike() {
    let env = Env::start();
    let id = env.create_user("ann@example.com", &[]);
    let resp = env.login("Ann@Example.com", PASSWORD).unwrap();
    let token = resp["session_token"].as_str().unwrap();
    assert!(is_hex(token, 64), "{resp}");
    assert_eq!(resp["require_password_change"], false);
    let session = &resp["session"];
    assert!(is_hex(session["id"].as_str().unwrap(), 32));
    assert_eq!(session["user_id"], id.as_str());
    assert_eq!(session["current"], true);
    let created = session["created_at"].as_i64().unwrap();
    assert_eq!(session["last_seen_at"].as_i64().unwrap(), created);
    assert_eq!(
        session["expires_at"].as_i64().unwrap(),
        created + 12 * 3_600_000
    );
    assert_eq!(
        session["idle_expires_at"].as_i64().unwrap(),
        created + 30 * 60_000
    );
    assert!(!resp.to_string().contains("token_hash"));
    assert!(!session.to_string().contains(token));

    let resolved = env.resolve(token).unwrap();
    assert_eq!(resolved["user_id"], id.as_str());
    assert_eq!(resolved["session_id"], session["id"]);
    assert_eq!(resolved["allowed_operations"], Value::Null);
    assert_eq!(resolved["replacement_token"], Value::Null);

    // Wrong password and unknown account: the same error.
    let wrong = env.login("ann@example.com", "nope-nope-nope").unwrap_err();
    let unknown = env.login("nobody@example.com", PASSWORD).unwrap_err();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.code, codes::UNAUTHENTICATED);
    assert_eq!(wrong.message, "invalid email or password");

    // Malformed requests are rejected naming the field and change nothing.
    let anon = env.host.context_for(None).unwrap();
    let err = env
        .as_ctx(
            &anon,
            "session",
            "login",
            json!({ "email": "ann@example.com", "password": PASSWORD, "remember": true }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("remember"), "{err:?}");
    let err = env
        .as_ctx(
            &anon,
            "session",
            "login",
            json!({ "email": "ann@example.com" }),
        )
        .unwrap_err();
    assert!(err.message.contains("password"), "{err:?}");

    // Each login is a new session with a new token.
    let again = env.login("ann@example.com", PASSWORD).unwrap();
    assert_ne!(again["session_token"], resp["session_token"]);
    let created_events = env.events("session.created");
    assert_eq!(created_events.len(), 2, "{created_events:?}");
    assert_eq!(created_events[0]["user_id"], id.as_str());
    assert_eq!(created_events[0]["session_id"], session["id"]);

    // Garbage tokens are unknown, not invalid input.
    for bad in ["", "abc", &"Z".repeat(64), &token.to_uppercase()] {
        assert_dead(&env, bad);
    }
}

#[test]
fn resolve_token_is_for_the_host_only() {
    let env = Env::start();
    let id = env.create_user("bo@example.com", &[]);
    let token = env.token("bo@example.com");
    let ctx = env.ctx(&token).unwrap();
    let err = env
        .as_ctx(&ctx, "session", "resolve_token", json!({ "token": token }))
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED, "{err:?}");
    let anon = env.host.context_for(None).unwrap();
    assert!(env
        .as_ctx(&anon, "session", "resolve_token", json!({ "token": token }))
        .is_err());
    // Anonymous callers cannot use the authenticated operations.
    for op in ["logout", "whoami", "list_mine"] {
        let err = env.as_ctx(&anon, "session", op, json!({})).unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err:?}");
    }
    let who = env.as_ctx(&ctx, "session", "whoami", json!({})).unwrap();
    assert_eq!(who["user_id"], id.as_str());
    assert_eq!(who["email"], "bo@example.com");
    assert_eq!(
        who["session_id"],
        env.resolve(&token).unwrap()["session_id"]
    );
    assert_eq!(who["must_change_password"], false);
    for list in ["permissions", "roles", "groups", "licenses"] {
        assert!(who[list].is_array(), "{who}");
    }
}

#[test]
fn throttling_delays_logins_per_account_without_checking_the_password() {
    let env = Env::start();
    env.create_user("cy@example.com", &[]);
    for _ in 0..3 {
        let err = env.login("cy@example.com", "wrong-password-1").unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED);
    }
    // The threshold (3) is reached: even the right password is refused.
    let err = env.login("cy@example.com", PASSWORD).unwrap_err();
    assert_eq!(err.code, codes::RATE_LIMITED, "{err:?}");
    let wait = err.details.as_ref().unwrap()["retry_after_ms"]
        .as_i64()
        .unwrap();
    assert!(wait > 0 && wait <= 1000, "{wait}");
    assert!(err.message.contains("try again in"), "{err:?}");
    // Another address spelling hits the same account key.
    let err = env.login(" CY@example.com", PASSWORD).unwrap_err();
    assert_eq!(err.code, codes::RATE_LIMITED);
    // Other accounts are unaffected.
    env.create_user("dee@example.com", &[]);
    env.token("dee@example.com");

    // After the delay one more failure doubles it (2 s).
    env.advance(Duration::from_millis(1001));
    env.login("cy@example.com", "wrong-password-2").unwrap_err();
    let err = env.login("cy@example.com", PASSWORD).unwrap_err();
    let wait = err.details.as_ref().unwrap()["retry_after_ms"]
        .as_i64()
        .unwrap();
    assert!(wait > 1000 && wait <= 2000, "{wait}");

    // Once the delay passed, the right password works and resets the count.
    env.advance(Duration::from_millis(2001));
    env.token("cy@example.com");
    let err = env.login("cy@example.com", "wrong-password-3").unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
    env.token("cy@example.com");

    // Unknown accounts are throttled the same way.
    for _ in 0..3 {
        let err = env.login("ghost@example.com", PASSWORD).unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED);
    }
    let err = env.login("ghost@example.com", PASSWORD).unwrap_err();
    assert_eq!(err.code, codes::RATE_LIMITED);
    // Never a permanent lock: the delay is capped by lockout_max_delay_ms.
    env.put_settings(json!({ "lockout_max_delay_ms": 1000 }));
    env.advance(Duration::from_millis(1001));
    let err = env.login("ghost@example.com", PASSWORD).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
}

#[test]
fn idle_and_absolute_expiry_end_sessions() {
    let env = Env::start();
    let id = env.create_user("eve@example.com", &[]);
    let token = env.token("eve@example.com");
    // Used every 29 minutes, the session stays alive past the idle timeout.
    for _ in 0..3 {
        env.advance(Duration::from_secs(29 * 60));
        env.resolve(&token).unwrap();
    }
    let ctx = env.ctx(&token).unwrap();
    let mine = env.as_ctx(&ctx, "session", "list_mine", json!({})).unwrap();
    let view = &mine["items"][0];
    assert!(view["last_seen_at"].as_i64().unwrap() > view["created_at"].as_i64().unwrap());
    assert_eq!(
        view["client_addr"],
        Value::Null,
        "login came without an address"
    );
    // 31 idle minutes end it.
    env.advance(Duration::from_secs(31 * 60));
    assert_dead(&env, &token);
    let ended = env.events("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["user_id"], id.as_str());
    assert_eq!(ended[0]["reason"], "expired");
    assert_eq!(
        env.ok("session", "list_for_user", json!({ "user_id": id }))["items"],
        json!([])
    );

    // Absolute lifetime: 1 hour, however busy the session is.
    env.put_settings(json!({ "idle_timeout_minutes": 1440, "absolute_lifetime_hours": 1 }));
    let token = env.token("eve@example.com");
    env.advance(Duration::from_secs(59 * 60));
    env.resolve(&token).unwrap();
    env.advance(Duration::from_secs(60));
    assert_dead(&env, &token);
}

#[test]
fn logout_ends_the_callers_session() {
    let env = Env::start();
    let id = env.create_user("fay@example.com", &[]);
    let token = env.token("fay@example.com");
    let other = env.token("fay@example.com");
    let ctx = env.ctx(&token).unwrap();
    let out = env.as_ctx(&ctx, "session", "logout", json!({})).unwrap();
    assert_eq!(out, json!({ "session_ended": true }));
    assert_dead(&env, &token);
    env.resolve(&other).unwrap();
    let ended = env.events("session.ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["user_id"], id.as_str());
    assert_eq!(ended[0]["session_id"], ctx.subject_session());
    assert_eq!(ended[0]["reason"], "logout");
    // A context without a session cannot log out.
    let err = env
        .as_ctx(&user_ctx(&id, &[]), "session", "logout", json!({}))
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
}

trait SessionOf {
    fn subject_session(&self) -> Value;
}

impl SessionOf for CallContext {
    fn subject_session(&self) -> Value {
        match &self.subject {
            Subject::User(u) => json!(u.session_id),
            _ => Value::Null,
        }
    }
}

#[test]
fn users_list_and_revoke_only_their_own_sessions() {
    let env = Env::start();
    let gil = env.create_user("gil@example.com", &[]);
    env.create_user("hal@example.com", &[]);
    let first = env.token("gil@example.com");
    let second = env.token("gil@example.com");
    let hals = env.token("hal@example.com");
    let ctx = env.ctx(&first).unwrap();
    let mine = env.as_ctx(&ctx, "session", "list_mine", json!({})).unwrap();
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{mine}");
    assert!(items.iter().all(|s| s["user_id"] == gil.as_str()));
    let current: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], ctx.subject_session());
    assert!(!mine.to_string().contains(&first) && !mine.to_string().contains(&second));

    // Another user's session is not found (and survives).
    let hal_session = env.resolve(&hals).unwrap()["session_id"].clone();
    let err = env
        .as_ctx(
            &ctx,
            "session",
            "revoke_mine",
            json!({ "session_id": hal_session }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::NOT_FOUND, "{err:?}");
    env.resolve(&hals).unwrap();
    for bad in ["nope", "../x"] {
        let err = env
            .as_ctx(&ctx, "session", "revoke_mine", json!({ "session_id": bad }))
            .unwrap_err();
        assert_eq!(err.code, codes::NOT_FOUND, "{err:?}");
    }

    // Revoking the other own session ends it.
    let second_id = env.resolve(&second).unwrap()["session_id"].clone();
    let out = env
        .as_ctx(
            &ctx,
            "session",
            "revoke_mine",
            json!({ "session_id": second_id }),
        )
        .unwrap();
    assert_eq!(out, json!({ "revoked": true }));
    assert_dead(&env, &second);
    env.resolve(&first).unwrap();
    let mine = env.as_ctx(&ctx, "session", "list_mine", json!({})).unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let err = env
        .as_ctx(
            &ctx,
            "session",
            "revoke_mine",
            json!({ "session_id": second_id }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::NOT_FOUND);
}

#[test]
fn administrators_list_and_revoke_with_permissions() {
    let env = Env::start();
    let ivy = env.create_user("ivy@example.com", &[]);
    let reader = env.create_user("reader@example.com", &["session.read"]);
    let manager = env.create_user("manager@example.com", &["session.manage"]);
    let a = env.token("ivy@example.com");
    let b = env.token("ivy@example.com");

    let nobody = env.ctx(&a).unwrap();
    let err = env
        .as_ctx(
            &nobody,
            "session",
            "list_for_user",
            json!({ "user_id": ivy }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    let anon = env.host.context_for(None).unwrap();
    let err = env
        .as_ctx(
            &anon,
            "session",
            "revoke_all_for_user",
            json!({ "user_id": ivy }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);

    let reader_ctx = env.host.context_for(Some(&reader)).unwrap();
    let list = env
        .as_ctx(
            &reader_ctx,
            "session",
            "list_for_user",
            json!({ "user_id": ivy }),
        )
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["current"] == false));
    let err = env
        .as_ctx(
            &reader_ctx,
            "session",
            "revoke_all_for_user",
            json!({ "user_id": ivy }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    env.resolve(&a).unwrap();

    let err = env
        .as_ctx(
            &reader_ctx,
            "session",
            "list_for_user",
            json!({ "user_id": "Not A Slug" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert_eq!(err.details, Some(json!({ "field": "user_id" })));

    let manager_ctx = env.host.context_for(Some(&manager)).unwrap();
    let out = env
        .as_ctx(
            &manager_ctx,
            "session",
            "revoke_all_for_user",
            json!({ "user_id": ivy }),
        )
        .unwrap();
    assert_eq!(out, json!({ "revoked": 2 }));
    assert_dead(&env, &a);
    assert_dead(&env, &b);
    let out = env.ok("session", "revoke_all_for_user", json!({ "user_id": ivy }));
    assert_eq!(out, json!({ "revoked": 0 }));
    assert_eq!(env.events("session.ended").len(), 2);
}

#[test]
fn disabling_or_deleting_a_user_ends_their_sessions() {
    let env = Env::start();
    let jo = env.create_user("jo@example.com", &[]);
    let kim = env.create_user("kim@example.com", &[]);
    let jo_token = env.token("jo@example.com");
    let kim_token = env.token("kim@example.com");

    // A change that leaves the account active keeps the session.
    env.ok(
        "user",
        "set_status",
        json!({ "id": jo, "status": { "state": "enabled_until", "until": 4102444800000i64 } }),
    );
    env.resolve(&jo_token).unwrap();
    env.ok(
        "user",
        "set_status",
        json!({ "id": jo, "status": { "state": "disabled" } }),
    );
    assert_dead(&env, &jo_token);
    assert_eq!(env.events("session.ended")[0]["reason"], "user_disabled");

    env.ok("user", "delete", json!({ "id": kim }));
    assert_dead(&env, &kim_token);
    let ended = env.events("session.ended");
    assert_eq!(ended.len(), 2);
    assert_eq!(ended[1]["user_id"], kim.as_str());
    assert_eq!(ended[1]["reason"], "user_deleted");
    assert_eq!(
        env.ok("session", "list_for_user", json!({ "user_id": kim }))["items"],
        json!([])
    );
}

#[test]
fn password_change_keeps_and_rotates_the_current_session_and_ends_the_others() {
    let env = Env::start();
    let id = env.create_user("lou@example.com", &[]);
    let current = env.token("lou@example.com");
    let other = env.token("lou@example.com");
    let ctx = env.ctx(&current).unwrap();
    env.as_ctx(
        &ctx,
        "user",
        "change_my_password",
        json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
    )
    .unwrap();
    assert_dead(&env, &other);
    let resolved = env.resolve(&current).unwrap();
    assert_eq!(resolved["session_id"], ctx.subject_session());
    let replacement = resolved["replacement_token"].as_str().unwrap().to_string();
    assert!(is_hex(&replacement, 64) && replacement != current);
    assert_dead(&env, &current);
    let again = env.resolve(&replacement).unwrap();
    assert_eq!(again["replacement_token"], Value::Null);
    assert_eq!(again["session_id"], ctx.subject_session());
    let ended = env.events("session.ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["reason"], "password_changed");

    // An administrator's password reset ends every session.
    env.ok(
        "user",
        "set_password",
        json!({ "id": id, "password": PASSWORD }),
    );
    assert_dead(&env, &replacement);
}

#[test]
fn role_and_permission_changes_rotate_the_token() {
    let env = Env::start();
    let id = env.create_user("max@example.com", &[]);
    let token = env.token("max@example.com");
    env.ok(
        "role",
        "create",
        json!({ "id": "readers", "name": "Readers", "permissions": ["user.read"] }),
    );
    env.ok(
        "user",
        "set_roles",
        json!({ "id": id, "roles": ["readers"] }),
    );
    let resolved = env.resolve(&token).unwrap();
    let rotated = resolved["replacement_token"].as_str().unwrap().to_string();
    assert_dead(&env, &token);
    let ctx = env.ctx(&rotated).unwrap();
    assert!(ctx.subject.has_permission("user.read"));

    env.ok(
        "user",
        "set_permissions",
        json!({ "id": id, "permissions": ["session.read"] }),
    );
    let next = env.resolve(&rotated).unwrap()["replacement_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A group change does not rotate.
    env.ok("group", "create", json!({ "id": "team", "name": "Team" }));
    env.ok(
        "user",
        "set_groups",
        json!({ "id": id, "groups": ["team"] }),
    );
    assert_eq!(
        env.resolve(&next).unwrap()["replacement_token"],
        Value::Null
    );
    // Each rotation mark was announced (the host drops its cached
    // resolutions of the session on it).
    let updated = env.events("session.updated");
    assert_eq!(updated.len(), 2, "{updated:?}");
    for event in &updated {
        assert_eq!(event["user_id"], id.as_str());
        assert_eq!(event["reason"], "access_changed");
    }
}

#[test]
fn resolutions_say_until_when_the_host_may_reuse_them() {
    let env = Env::start();
    let id = env.create_user("di@example.com", &[]);
    env.put_settings(json!({ "idle_timeout_minutes": 1440, "absolute_lifetime_hours": 1 }));
    let token = env.token("di@example.com");
    let direct = |env: &Env| env.ok("session", "resolve_token", json!({ "token": token }));
    let session = |env: &Env| {
        env.ok("session", "list_for_user", json!({ "user_id": id }))["items"][0].clone()
    };
    // Usually until the next due `last_seen_at` write, 30 s after the last.
    let seen = session(&env)["last_seen_at"].as_i64().unwrap();
    assert_eq!(direct(&env)["cache_until"], seen + 30_000);
    // Never past the absolute expiry.
    env.advance(Duration::from_secs(59 * 60 + 50));
    let answer = direct(&env);
    let expires = session(&env)["expires_at"].as_i64().unwrap();
    assert_eq!(answer["cache_until"], expires);
    // (The idle expiry, at least a minute away, never comes first.)
    env.put_settings(json!({ "idle_timeout_minutes": 1440, "absolute_lifetime_hours": 24 }));
    let token = env.token("di@example.com");
    // A rotation is never reused.
    env.ok(
        "user",
        "set_permissions",
        json!({ "id": id, "permissions": ["session.read"] }),
    );
    let rotated = env.ok("session", "resolve_token", json!({ "token": token }));
    assert!(rotated["replacement_token"].is_string());
    assert_eq!(rotated.get("cache_until"), None);
}

#[test]
fn sessions_of_accounts_that_must_change_the_password_are_restricted() {
    let env = Env::start();
    let id = env.create_user("ned@example.com", &[]);
    env.ok(
        "user",
        "require_password_change",
        json!({ "id": id, "required": true }),
    );
    let resp = env.login("ned@example.com", PASSWORD).unwrap();
    assert_eq!(resp["require_password_change"], true);
    let token = resp["session_token"].as_str().unwrap().to_string();
    let resolved = env.resolve(&token).unwrap();
    assert_eq!(
        resolved["allowed_operations"],
        json!([
            "session.logout",
            "session.whoami",
            "user.change_my_password",
            "user.me",
            "user.page_change_password"
        ])
    );
    let ctx = env.ctx(&token).unwrap();
    let err = env
        .as_ctx(
            &ctx,
            "user",
            "update_my_contact",
            json!({ "profile": { "first_name": "Ned", "last_name": "Kay" } }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PASSWORD_CHANGE_REQUIRED, "{err:?}");
    let err = env
        .as_ctx(&ctx, "session", "list_mine", json!({}))
        .unwrap_err();
    assert_eq!(err.code, codes::PASSWORD_CHANGE_REQUIRED);
    let who = env.as_ctx(&ctx, "session", "whoami", json!({})).unwrap();
    assert_eq!(who["must_change_password"], true);
    env.as_ctx(&ctx, "user", "me", json!({})).unwrap();

    // Changing the password lifts the restriction and rotates the token.
    env.as_ctx(
        &ctx,
        "user",
        "change_my_password",
        json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
    )
    .unwrap();
    let resolved = env.resolve(&token).unwrap();
    assert_eq!(resolved["allowed_operations"], Value::Null);
    let fresh = resolved["replacement_token"].as_str().unwrap().to_string();
    let ctx = env.ctx(&fresh).unwrap();
    assert!(ctx.restricted_to.is_none());
    env.as_ctx(
        &ctx,
        "user",
        "update_my_contact",
        json!({ "profile": { "first_name": "Ned", "last_name": "Kay" } }),
    )
    .unwrap();
    env.as_ctx(&ctx, "session", "logout", json!({})).unwrap();
    assert_dead(&env, &fresh);
}

/// Resolves `token` twice (the second answer comes from the resolved-token
/// cache) and returns the session id.
fn warm(env: &Env, token: &str) -> Value {
    let first = env.resolve(token).unwrap();
    let second = env.resolve(token).unwrap();
    assert_eq!(first["session_id"], second["session_id"]);
    assert_eq!(second["replacement_token"], Value::Null);
    second["session_id"].clone()
}

#[test]
fn cached_resolutions_end_with_logout_revocation_and_account_changes() {
    let env = Env::start();
    let ann = env.create_user("ann@example.com", &[]);
    env.create_user("bob@example.com", &[]);
    let admin = user_ctx("root", &["session.manage"]);

    // Logout.
    let token = env.token("ann@example.com");
    warm(&env, &token);
    let ctx = env.ctx(&token).unwrap();
    env.as_ctx(&ctx, "session", "logout", json!({})).unwrap();
    assert_dead(&env, &token);

    // Revocation of one own session from another.
    let current = env.token("ann@example.com");
    let other = env.token("ann@example.com");
    let other_id = warm(&env, &other);
    let ctx = env.ctx(&current).unwrap();
    env.as_ctx(
        &ctx,
        "session",
        "revoke_mine",
        json!({ "session_id": other_id }),
    )
    .unwrap();
    assert_dead(&env, &other);

    // Revocation of every session by an administrator.
    warm(&env, &current);
    let out = env
        .as_ctx(
            &admin,
            "session",
            "revoke_all_for_user",
            json!({ "user_id": ann }),
        )
        .unwrap();
    assert_eq!(out, json!({ "revoked": 1 }));
    assert_dead(&env, &current);

    // A password change ends the other sessions and rotates the current one.
    let current = env.token("ann@example.com");
    let other = env.token("ann@example.com");
    warm(&env, &current);
    warm(&env, &other);
    let ctx = env.ctx(&current).unwrap();
    env.as_ctx(
        &ctx,
        "user",
        "change_my_password",
        json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
    )
    .unwrap();
    assert_dead(&env, &other);
    let rotated = env.resolve(&current).unwrap()["replacement_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_dead(&env, &current);
    warm(&env, &rotated);

    // A role change rotates a cached session's token.
    env.ok(
        "role",
        "create",
        json!({ "id": "auditors", "name": "Auditors", "permissions": ["user.read"] }),
    );
    env.ok(
        "user",
        "set_roles",
        json!({ "id": ann, "roles": ["auditors"] }),
    );
    let next = env.resolve(&rotated).unwrap()["replacement_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_dead(&env, &rotated);
    warm(&env, &next);

    // Disabling the account.
    env.ok(
        "user",
        "set_status",
        json!({ "id": ann, "status": { "state": "disabled" } }),
    );
    assert_dead(&env, &next);

    // Deleting the account.
    let bob_token = env.token("bob@example.com");
    let bob = env.resolve(&bob_token).unwrap()["user_id"].clone();
    warm(&env, &bob_token);
    env.ok("user", "delete", json!({ "id": bob }));
    assert_dead(&env, &bob_token);
}

#[test]
fn cached_resolutions_still_expire_and_keep_the_idle_bookkeeping() {
    let env = Env::start();
    let id = env.create_user("cy@example.com", &[]);
    let token = env.token("cy@example.com");
    let session = warm(&env, &token);
    let last_seen = |env: &Env| {
        env.ok("session", "list_for_user", json!({ "user_id": id }))["items"][0]["last_seen_at"]
            .as_i64()
            .unwrap()
    };
    let login_seen = last_seen(&env);

    // Within the 30-second granularity nothing is written...
    env.advance(Duration::from_secs(10));
    warm(&env, &token);
    assert_eq!(last_seen(&env), login_seen);
    // ...after it, a cached session's use is recorded.
    env.advance(Duration::from_secs(25 * 60));
    assert_eq!(warm(&env, &token), session);
    assert!(last_seen(&env) >= login_seen + 25 * 60 * 1000);
    // So 25 more minutes (50 since login) do not end it; 31 idle ones do.
    env.advance(Duration::from_secs(25 * 60));
    warm(&env, &token);
    env.advance(Duration::from_secs(31 * 60));
    assert_dead(&env, &token);
    let ended = env.events("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "expired");

    // A shorter idle timeout applies to cached sessions at once.
    let token = env.token("cy@example.com");
    warm(&env, &token);
    env.put_settings(json!({ "idle_timeout_minutes": 1 }));
    env.advance(Duration::from_secs(61));
    assert_dead(&env, &token);

    // So does the absolute lifetime, however busy the session is.
    env.put_settings(json!({ "idle_timeout_minutes": 1440, "absolute_lifetime_hours": 1 }));
    let token = env.token("cy@example.com");
    for _ in 0..3 {
        env.advance(Duration::from_secs(19 * 60));
        warm(&env, &token);
    }
    env.advance(Duration::from_secs(4 * 60));
    assert_dead(&env, &token);
}
