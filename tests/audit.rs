//! The audit system end to end: the real host with the real system plugins
//! (`audit` comes along with `user`), a controllable clock, and callers
//! built as the HTTP layer builds them. Every event class is recorded with
//! the right actor, target and outcome and without secrets; `audit.list`
//! filters, pages and is guarded by `audit.read`; retention prunes.

use std::time::Duration;

use serde_json::{json, Value};
use syshost::Host;
use syshost_plugin_api::{codes, CallContext, PluginError};
use syshost_test_support::{fixture_library, PluginDir, TestClock};

const PASSWORD: &str = "Audit-Trail-Passphrase-1";
const NEW_PASSWORD: &str = "Fresh-Audit-Passphrase-2";
const WRONG_PASSWORD: &str = "Wrong-Guess-Passphrase-3";
const ADMIN_SET_PASSWORD: &str = "Admin-Chosen-Passphrase-4";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

struct Env {
    host: Host,
    clock: TestClock,
    _plugins: PluginDir,
}

fn boot(plugins: &PluginDir, data: &std::path::Path, clock: TestClock) -> Host {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .clock(clock.source())
        .build()
        .unwrap();
    // `user` alone: `audit` comes along because `user` wants it.
    let report = host.activate_all(&["user".into()]);
    assert!(report.is_ok(), "{report:?}");
    assert!(host.is_active("audit"), "{:?}", host.active_systems());
    host
}

impl Env {
    fn start(plugins: PluginDir, data: &std::path::Path) -> Env {
        let clock = TestClock::new();
        Env {
            host: boot(&plugins, data, clock.clone()),
            clock,
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
            .call::<_, Value>(op, &req)
            .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
    }

    fn as_ctx(
        &self,
        ctx: &CallContext,
        system: &str,
        op: &str,
        req: Value,
    ) -> Result<Value, PluginError> {
        self.host.system(system).unwrap().call_as(ctx, op, &req)
    }

    /// A user's context as the HTTP layer builds it (with a client address).
    fn ctx(&self, user_id: Option<&str>) -> CallContext {
        let mut ctx = self.host.context_for(user_id).unwrap();
        ctx.client_addr = Some("198.51.100.9".into());
        ctx
    }

    fn create_user(&self, email: &str, roles: &[&str], permissions: &[&str]) -> String {
        self.ok(
            "user",
            "create",
            json!({ "email": email, "password": PASSWORD, "verified": true,
                    "roles": roles, "permissions": permissions }),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn login(&self, email: &str, password: &str) -> Result<Value, PluginError> {
        self.as_ctx(
            &self.ctx(None),
            "session",
            "login",
            json!({ "email": email, "password": password }),
        )
    }

    /// `audit.list` as the host.
    fn list(&self, req: Value) -> Value {
        self.ok("audit", "list", req)
    }

    /// Every entry, newest first.
    fn all(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = json!({ "limit": 500 });
            if let Some(c) = &cursor {
                req["cursor"] = json!(c);
            }
            let page = self.list(req);
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

/// The one entry with `action` and `target` (panics unless exactly one).
fn find<'a>(entries: &'a [Value], action: &str, target: &str) -> &'a Value {
    let found: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == action && e["target"] == target)
        .collect();
    assert_eq!(found.len(), 1, "{action} {target}: {entries:#?}");
    found[0]
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_event_class_is_recorded_with_actor_target_outcome_and_no_secret() {
    let plugins = PluginDir::systems_and(&[fixture_library("panicking")]);
    let data = tempfile::tempdir().unwrap();
    let env = Env::start(plugins, data.path());
    let admin = env.create_user("admin@example.test", &["admin"], &[]);
    let admin_actor = format!("user:{admin}");
    let admin_ctx = env.ctx(Some(&admin));

    // Logins: success, failures (existing and unknown address), lockout.
    let token = env.login("admin@example.test", PASSWORD).unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        let e = env.login("Admin@Example.test", WRONG_PASSWORD).unwrap_err();
        assert_eq!(e.code, codes::UNAUTHENTICATED);
    }
    let e = env.login("admin@example.test", WRONG_PASSWORD).unwrap_err();
    assert_eq!(e.code, codes::RATE_LIMITED);
    // An unknown address as typed, padded and mixed-case: recorded trimmed
    // and lowercased.
    env.login(" Ghost@Example.TEST ", WRONG_PASSWORD)
        .unwrap_err();

    // Account changes by the administrator.
    let call = |system: &str, op: &str, req: Value| {
        env.as_ctx(&admin_ctx, system, op, req.clone())
            .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
    };
    let ann = call(
        "user",
        "create",
        json!({ "email": "ann@example.test", "password": PASSWORD, "verified": true }),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ann_target = format!("user:{ann}");
    call(
        "user",
        "set_password",
        json!({ "id": ann, "password": ADMIN_SET_PASSWORD }),
    );
    call(
        "user",
        "change_email",
        json!({ "id": ann, "email": "ann.new@example.test" }),
    );
    call(
        "role",
        "create",
        json!({ "id": "auditors", "name": "Auditors", "permissions": ["audit.read"] }),
    );
    call(
        "role",
        "set_permissions",
        json!({ "id": "auditors", "permissions": ["audit.read", "user.read"] }),
    );
    call("group", "create", json!({ "id": "staff", "name": "Staff" }));
    call(
        "user",
        "set_roles",
        json!({ "id": ann, "roles": ["auditors"] }),
    );
    call(
        "user",
        "set_groups",
        json!({ "id": ann, "groups": ["staff"] }),
    );
    call(
        "user",
        "set_permissions",
        json!({ "id": ann, "permissions": ["role.read"] }),
    );
    call(
        "license",
        "create_user_license",
        json!({ "id": "pro", "name": "Pro", "max_users": 2 }),
    );
    call(
        "user",
        "assign_license",
        json!({ "id": ann, "license_id": "pro" }),
    );
    call(
        "settings",
        "put",
        json!({ "section": "audit", "document": { "retention_days": 30 } }),
    );
    call("role", "delete", json!({ "id": "auditors" }));

    // Self-service password change by Ann.
    let ann_ctx = env.ctx(Some(&ann));
    env.as_ctx(
        &ann_ctx,
        "user",
        "change_my_password",
        json!({ "current_password": ADMIN_SET_PASSWORD, "new_password": NEW_PASSWORD }),
    )
    .unwrap();
    call(
        "user",
        "set_status",
        json!({ "id": ann, "status": { "state": "disabled" } }),
    );

    // A plugin that fails to activate.
    let report = env.host.activate_all(&["panicky".into()]);
    assert_eq!(report.failed.len(), 1, "{report:?}");

    let entries = env.all();

    // Logins.
    let e = find(&entries, "session.created", &admin_actor);
    assert_eq!(e["actor"], admin_actor.as_str());
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["client_addr"], "198.51.100.9");
    let failed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "session.login_failed")
        .collect();
    assert_eq!(failed.len(), 4, "{failed:#?}");
    for f in &failed {
        assert_eq!(f["outcome"], "failure");
        assert_eq!(f["actor"], "anonymous");
        assert_eq!(f["client_addr"], "198.51.100.9");
    }
    // Newest first: the unknown address, then the third (locking) failure.
    assert_eq!(failed[0]["target"], "email:ghost@example.test");
    assert_eq!(failed[1]["target"], "email:admin@example.test");
    assert_eq!(failed[1]["details"]["failures"], 3);
    assert_eq!(failed[1]["details"]["locked"], true);
    assert_eq!(failed[3]["details"]["locked"], false);
    let throttled = find(
        &entries,
        "session.login_throttled",
        "email:admin@example.test",
    );
    assert_eq!(throttled["outcome"], "denied");
    assert_eq!(throttled["actor"], "anonymous");

    // Account, role, group, license and settings changes, all by the admin.
    for (action, target) in [
        ("user.created", ann_target.as_str()),
        ("role.created", "role:auditors"),
        ("role.updated", "role:auditors"),
        ("role.deleted", "role:auditors"),
        ("group.created", "group:staff"),
        ("license.updated", "license:pro"),
        ("license.assigned", ann_target.as_str()),
        ("settings.updated", "settings:audit"),
    ] {
        let by_admin: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                e["action"] == action && e["target"] == target && e["actor"] == admin_actor.as_str()
            })
            .collect();
        assert_eq!(by_admin.len(), 1, "{action} {target}: {entries:#?}");
        let e = by_admin[0];
        assert_eq!(e["outcome"], "success", "{action}");
    }
    assert_eq!(
        find(&entries, "license.assigned", &ann_target)["details"]["license_id"],
        "pro"
    );
    let changes_by_admin: Vec<Value> = entries
        .iter()
        .filter(|e| {
            e["action"] == "user.updated"
                && e["target"] == ann_target.as_str()
                && e["actor"] == admin_actor.as_str()
        })
        .map(|e| e["details"]["changes"].clone())
        .collect();
    for change in ["email", "roles", "groups", "permissions", "status"] {
        assert!(
            changes_by_admin
                .iter()
                .any(|c| c.as_array().unwrap().contains(&json!(change))),
            "{change}: {changes_by_admin:?}"
        );
    }
    // Deleting the role removed it from Ann: attributed to the admin too.
    assert!(
        changes_by_admin
            .iter()
            .filter(|c| **c == json!(["roles"]))
            .count()
            >= 2
    );
    // Two password changes: the admin's, then Ann's own.
    let actors: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "user.password_changed" && e["target"] == ann_target.as_str())
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, [format!("user:{ann}"), admin_actor.clone()]);

    // The failed plugin.
    let p = find(&entries, "host.plugin_failed", "plugin:panicky");
    assert_eq!(p["outcome"], "failure");
    assert_eq!(p["actor"], "system");
    assert_eq!(p["details"]["state"], "failed");

    // Every entry has the fields; none contains a secret.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        WRONG_PASSWORD,
        ADMIN_SET_PASSWORD,
        token.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the audit trail");
    }
    for e in &entries {
        for field in ["id", "action", "outcome", "actor", "target"] {
            assert!(e[field].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        }
        assert!(e["at"].as_i64().unwrap() > 0, "{e}");
    }
    env.host.shutdown();
}

#[test]
fn list_filters_pages_newest_first_and_validates_its_input() {
    let data = tempfile::tempdir().unwrap();
    let env = Env::start(PluginDir::systems_and(&[]), data.path());
    let admin = env.create_user("admin@example.test", &["admin"], &[]);
    let admin_ctx = env.ctx(Some(&admin));
    let t0 = env.list(json!({}))["items"][0]["at"].as_i64().unwrap();
    // 120 group changes by the admin, then one hour later 5 by the system.
    for i in 0..120 {
        env.as_ctx(
            &admin_ctx,
            "group",
            "create",
            json!({ "id": format!("g{i}"), "name": format!("Group {i}") }),
        )
        .unwrap();
    }
    env.advance(Duration::from_secs(3600));
    for i in 0..5 {
        env.ok(
            "group",
            "update",
            json!({ "id": format!("g{i}"), "name": format!("Renamed {i}") }),
        );
    }
    // The time of the first of the 5 updates.
    let t1 = env.list(json!({ "action": "group.updated", "limit": 5 }))["items"][4]["at"]
        .as_i64()
        .unwrap();
    assert!(t1 >= t0 + 3_600_000);

    // Paging: newest first, no gaps or repeats, cursor null at the end.
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let mut req = json!({ "limit": 50, "action": "group." });
        if !cursor.is_null() {
            req["cursor"] = cursor.clone();
        }
        let page = env.list(req);
        seen.extend(ids(&page));
        pages += 1;
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(pages, 3);
    // 120 + 5 (the `system` group was seeded before `audit` started).
    assert_eq!(seen.len(), 125);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first without repeats");

    // Actor, target, action prefix, outcome and time range filters.
    let by_admin = env.list(json!({ "actor": format!("user:{admin}"), "limit": 500 }));
    assert_eq!(by_admin["items"].as_array().unwrap().len(), 120);
    let by_system = env.list(json!({ "actor": "system", "action": "group.updated" }));
    assert_eq!(by_system["items"].as_array().unwrap().len(), 5);
    let g3 = env.list(json!({ "target": "group:g3" }));
    let actions: Vec<&str> = g3["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["group.updated", "group.created"]);
    let g3_admin = env.list(json!({ "target": "group:g3", "actor": format!("user:{admin}") }));
    assert_eq!(g3_admin["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.list(json!({ "outcome": "failure" }))["items"],
        json!([])
    );
    let early = env.list(json!({ "to": t1 - 1, "action": "group.", "limit": 500 }));
    assert_eq!(early["items"].as_array().unwrap().len(), 120);
    let late = env.list(json!({ "from": t1, "limit": 500 }));
    assert!(late["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["at"].as_i64().unwrap() >= t1 && e["actor"] == "system"));
    assert_eq!(late["items"].as_array().unwrap().len(), 5);
    let exact = env.list(json!({ "from": t1, "to": t1, "target": "group:g0" }));
    assert!(exact["items"].as_array().unwrap().len() <= 1);
    // The actor index pages too.
    let p1 = env.list(json!({ "actor": format!("user:{admin}"), "limit": 100 }));
    let p2 = env.list(
        json!({ "actor": format!("user:{admin}"), "limit": 100, "cursor": p1["next_cursor"] }),
    );
    assert_eq!(ids(&p1).len() + ids(&p2).len(), 120);
    assert!(p2["next_cursor"].is_null());
    assert!(ids(&p1).last().unwrap() > ids(&p2).first().unwrap());

    // Bad input names the field.
    for (req, field) in [
        (json!({ "limit": 0 }), "limit"),
        (json!({ "limit": 501 }), "limit"),
        (json!({ "cursor": "nope" }), "cursor"),
        (json!({ "from": 5, "to": 4 }), "from"),
        (json!({ "outcome": "maybe" }), "outcome"),
        (json!({ "actor": "" }), "actor"),
        (json!({ "target": "x".repeat(301) }), "target"),
    ] {
        let e = env
            .host
            .system("audit")
            .unwrap()
            .call::<_, Value>("list", &req)
            .unwrap_err();
        assert_eq!(e.code, codes::INVALID_INPUT, "{req}");
        assert_eq!(e.details.as_ref().unwrap()["field"], field, "{req}");
    }
    let e = env
        .host
        .system("audit")
        .unwrap()
        .call::<_, Value>("list", &json!({ "bogus": 1 }))
        .unwrap_err();
    assert_eq!(e.code, codes::INVALID_INPUT);
    env.host.shutdown();
}

#[test]
fn entries_survive_a_restart_and_retention_prunes_old_ones() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let before: Vec<Value>;
    {
        let host = boot(&plugins, data.path(), clock.clone());
        for i in 0..3 {
            host.system("group")
                .unwrap()
                .call::<_, Value>("create", &json!({ "id": format!("old{i}"), "name": "Old" }))
                .unwrap();
        }
        before = host
            .system("audit")
            .unwrap()
            .call::<_, Value>("list", &json!({ "limit": 500 }))
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .clone();
        host.shutdown();
    }
    let env = Env {
        host: boot(&plugins, data.path(), clock.clone()),
        clock,
        _plugins: plugins,
    };
    // Durable: everything is still there; new entries get new ids.
    let after = env.all();
    assert_eq!(after, before);
    env.ok("group", "create", json!({ "id": "new0", "name": "New" }));
    let all = env.all();
    assert_eq!(all.len(), before.len() + 1);
    assert!(all[0]["id"].as_str() > all[1]["id"].as_str());

    // Retention 2 days; 2.5 days later the entries older than 2 days
    // (including the settings change) are pruned by the next recorded event.
    env.ok(
        "settings",
        "put",
        json!({ "section": "audit", "document": { "retention_days": 2 } }),
    );
    env.advance(DAY);
    env.ok("group", "create", json!({ "id": "day1", "name": "Day 1" }));
    assert_eq!(env.all().len(), before.len() + 3, "nothing old enough yet");
    env.advance(DAY + DAY / 2);
    env.ok("group", "create", json!({ "id": "day3", "name": "Day 3" }));
    let left = env.all();
    let targets: Vec<&str> = left.iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["group:day3", "group:day1"], "{left:#?}");
    // The indexes were pruned with the entries.
    assert_eq!(
        env.list(json!({ "target": "group:old0" }))["items"],
        json!([])
    );
    assert_eq!(
        env.list(json!({ "actor": "system", "limit": 500 }))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // An invalid retention is refused and changes nothing.
    let e = env
        .host
        .system("settings")
        .unwrap()
        .call::<_, Value>(
            "put",
            &json!({ "section": "audit", "document": { "retention_days": 0 } }),
        )
        .unwrap_err();
    assert_eq!(e.code, codes::INVALID_INPUT);
    env.host.shutdown();
}

#[test]
fn only_holders_of_audit_read_may_list() {
    let data = tempfile::tempdir().unwrap();
    let env = Env::start(PluginDir::systems_and(&[]), data.path());
    let plain = env.create_user("plain@example.test", &[], &["user.read"]);
    let reader = env.create_user("reader@example.test", &[], &["audit.read"]);
    let admin = env.create_user("admin@example.test", &["admin"], &[]);
    let e = env
        .as_ctx(&env.ctx(None), "audit", "list", json!({}))
        .unwrap_err();
    assert_eq!(e.code, codes::UNAUTHENTICATED);
    let e = env
        .as_ctx(&env.ctx(Some(&plain)), "audit", "list", json!({}))
        .unwrap_err();
    assert_eq!(e.code, codes::PERMISSION_DENIED);
    assert_eq!(e.details.unwrap()["permission"], "audit.read");
    for id in [&reader, &admin] {
        let page = env
            .as_ctx(&env.ctx(Some(id)), "audit", "list", json!({}))
            .unwrap();
        assert!(!page["items"].as_array().unwrap().is_empty());
    }
    // The permission is in the registry, declared by `audit`.
    let p = env.ok("permission", "get", json!({ "id": "audit.read" }));
    assert_eq!(p["plugin"], "audit");
    env.host.shutdown();
}

#[test]
fn the_admin_page_lists_and_filters_the_trail_for_readers_only() {
    let data = tempfile::tempdir().unwrap();
    let env = Env::start(PluginDir::systems_and(&[]), data.path());
    let admin = env.create_user("admin@example.test", &["admin"], &[]);
    let plain = env.create_user("plain@example.test", &[], &[]);
    env.login("plain@example.test", WRONG_PASSWORD).unwrap_err();
    let page = |id: &str, query: Value| {
        env.as_ctx(
            &env.ctx(Some(id)),
            "audit",
            "admin_audit_page",
            json!({ "rest": "", "query": query }),
        )
    };
    let view = page(&admin, json!({})).unwrap();
    assert_eq!(view["title"], "Audit trail");
    let text = view.to_string();
    assert!(text.contains("session.login_failed"), "{text}");
    assert!(text.contains("email:plain@example.test"));
    // Failures only: the failed login, not the account creations.
    let failures = page(&admin, json!({ "outcome": "failure" }))
        .unwrap()
        .to_string();
    assert!(failures.contains("session.login_failed"));
    assert!(!failures.contains("\"user.created\""), "{failures}");
    // An actor filter link from the table narrows the list.
    let by_system = page(&admin, json!({ "actor": "system", "search": "user." }))
        .unwrap()
        .to_string();
    assert!(by_system.contains("user.created"));
    assert!(!by_system.contains("session.login_failed"));
    // A bad cursor is shown as a message, not an error page.
    let bad = page(&admin, json!({ "cursor": "nope" }))
        .unwrap()
        .to_string();
    assert!(bad.contains("not a cursor"), "{bad}");
    // Without audit.read: refused by the host.
    let e = page(&plain, json!({})).unwrap_err();
    assert_eq!(e.code, codes::PERMISSION_DENIED);
    // The page is declared with an admin-center card for audit.read holders.
    let manifest = env.host.discovery().plugins["audit"].manifest.clone();
    let decl = manifest
        .pages
        .iter()
        .find(|p| p.path == "admin/audit")
        .expect("page declared");
    assert_eq!(
        decl.card.as_ref().unwrap().permission.as_deref(),
        Some("audit.read")
    );
    env.host.shutdown();
}
