//! User Management self-service end to end: the real host, the real
//! plugins, and a real SMTP server whose mails the tests read and follow.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use syshost::mail::{MailSettings, MailTransportConfig};
use syshost::{BootstrapAdmin, CallContext, Host, SiteInfo};
use syshost_plugin_api::codes;
use syshost_test_support::{code_in, subject_of, PluginDir, SmtpSink, TestClock};

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    host: Host,
    sink: SmtpSink,
    clock: TestClock,
    _data: tempfile::TempDir,
    _plugins: PluginDir,
}

impl Env {
    fn start() -> Env {
        Env::start_with(None)
    }

    fn start_with(bootstrap: Option<BootstrapAdmin>) -> Env {
        let sink = SmtpSink::start();
        let plugins = PluginDir::systems_and(&[]);
        let data = tempfile::tempdir().unwrap();
        let clock = TestClock::new();
        let mut mail = MailSettings::outbox(data.path().join("outbox"));
        mail.transport = MailTransportConfig::Smtp(sink.url());
        mail.from = "Acme Accounts <accounts@acme.test>".into();
        mail.retry_base = Duration::from_millis(100);
        let mut builder = Host::builder()
            .data_dir(data.path())
            .plugin_dir(plugins.path())
            .mail(mail)
            .site(SiteInfo {
                product_name: "Acme".into(),
                public_url: "https://id.acme.test".into(),
            })
            .clock(clock.source());
        if let Some(b) = bootstrap {
            builder = builder.bootstrap_admin(b);
        }
        let host = builder.build().unwrap();
        let report = host.activate_all(&["user".into()]);
        assert!(report.is_ok(), "{report:?}");
        Env {
            host,
            sink,
            clock,
            _data: data,
            _plugins: plugins,
        }
    }

    fn user(&self, op: &str, req: Value) -> Result<Value, syshost::PluginError> {
        self.host.system("user").unwrap().call(op, &req)
    }

    fn anon(&self, op: &str, req: Value) -> Result<Value, syshost::PluginError> {
        let ctx = self.host.context_for(None).unwrap();
        self.host.system("user").unwrap().call_as(&ctx, op, &req)
    }

    fn as_user(&self, id: &str, op: &str, req: Value) -> Result<Value, syshost::PluginError> {
        let ctx: CallContext = self.host.context_for(Some(id)).unwrap();
        self.host.system("user").unwrap().call_as(&ctx, op, &req)
    }

    fn settings(&self, doc: Value) {
        let _: Value = self
            .host
            .system("settings")
            .unwrap()
            .call("put", &json!({ "section": "user", "document": doc }))
            .unwrap();
    }

    fn id_of(&self, email: &str) -> String {
        let page = self.user("list", json!({ "search": email })).unwrap();
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        items[0]["id"].as_str().unwrap().to_string()
    }

    fn login(&self, email: &str, password: &str) -> Result<Value, syshost::PluginError> {
        self.user(
            "authenticate",
            json!({ "email": email, "password": password }),
        )
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.host.shutdown();
    }
}

fn open_registration(env: &Env) {
    let _: Value = env
        .host
        .system("role")
        .unwrap()
        .call(
            "create",
            &json!({ "id": "member", "name": "Member", "permissions": ["group.read"] }),
        )
        .unwrap();
    let _: Value = env
        .host
        .system("group")
        .unwrap()
        .call("create", &json!({ "id": "customers", "name": "Customers" }))
        .unwrap();
    env.settings(json!({
        "self_registration": true,
        "default_roles": ["member"],
        "default_groups": ["customers"],
        "consent_options": [
            { "id": "terms", "title": "Terms", "text": "The terms.", "version": "2", "required": true },
            { "id": "news", "title": "Newsletter", "text": "News.", "version": "1", "required": false }
        ]
    }));
}

fn register(env: &Env, email: &str) -> Result<Value, syshost::PluginError> {
    env.anon(
        "register",
        json!({
            "email": email,
            "password": PASSWORD,
            "profile": { "first_name": "Alice", "last_name": "Liddell" },
            "consents": ["terms"]
        }),
    )
}

#[test]
fn register_mail_confirm_then_login() {
    let env = Env::start();
    open_registration(&env);
    let answer = register(&env, "Alice@Example.TEST").unwrap();
    assert_eq!(answer["status"], "verification_sent");
    let mail = env.sink.wait_for_to("alice@example.test", 1, WAIT);
    assert!(
        subject_of(&mail).contains("Confirm your email address for Acme"),
        "{mail}"
    );
    assert!(
        mail.contains("https://id.acme.test/ui/confirm-email?email=Alice%40example.test"),
        "{mail}"
    );
    let id = env.id_of("alice@example.test");
    let before = env.user("get", json!({ "id": id })).unwrap();
    assert_eq!(before["email"], "Alice@example.test");
    assert_eq!(before["email_verified"], false);
    assert_eq!(before["roles"], json!(["member"]));
    assert_eq!(before["groups"], json!(["customers"]));
    assert_eq!(before["consents"]["terms"][0]["action"], "accepted");
    assert_eq!(before["consents"]["terms"][0]["version"], "2");
    assert!(before["consents"].get("news").is_none());

    let code = code_in(&mail);
    let ok = env
        .anon(
            "confirm_email",
            json!({ "email": "alice@example.test", "code": code.to_lowercase() }),
        )
        .unwrap();
    assert_eq!(ok["ok"], true);
    let after = env.user("get", json!({ "id": id })).unwrap();
    assert_eq!(after["email_verified"], true);
    // Single use.
    let err = env
        .anon(
            "confirm_email",
            json!({ "email": "alice@example.test", "code": code }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    // Login-ready, and the default role's permissions are effective.
    let login = env.login("alice@example.test", PASSWORD).unwrap();
    assert_eq!(login["user_id"], id.as_str());
    let me = env.as_user(&id, "me", json!({})).unwrap();
    assert!(me["effective_permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("group.read")));
}

#[test]
fn registration_rules_are_enforced_and_change_nothing() {
    let env = Env::start();
    let err = register(&env, "bob@example.test").unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED, "{err}");
    open_registration(&env);
    env.settings(json!({
        "self_registration": true,
        "allowed_domains": ["acme.test"],
        "consent_options": [
            { "id": "terms", "title": "Terms", "text": "The terms.", "version": "2", "required": true }
        ]
    }));
    let err = register(&env, "bob@example.test").unwrap_err();
    assert_eq!(err.details.as_ref().unwrap()["field"], "email", "{err}");
    assert!(err.message.contains("acme.test"), "{err}");
    // Subdomains of an allowed domain are allowed.
    register(&env, "bob@eu.acme.test").unwrap();
    let err = env
        .anon(
            "register",
            json!({ "email": "carol@acme.test", "password": PASSWORD, "profile": { "first_name": "C", "last_name": "D" }, "consents": [] }),
        )
        .unwrap_err();
    assert!(err.message.contains("terms"), "{err}");
    let err = env
        .anon(
            "register",
            json!({ "email": "carol@acme.test", "password": "short", "profile": { "first_name": "C", "last_name": "D" }, "consents": ["terms"] }),
        )
        .unwrap_err();
    assert_eq!(err.details.as_ref().unwrap()["field"], "password", "{err}");
    let err = env
        .anon(
            "register",
            json!({ "email": "carol@acme.test", "password": "password1234", "profile": { "first_name": "C", "last_name": "D" }, "consents": ["terms"] }),
        )
        .unwrap_err();
    assert!(err.message.to_lowercase().contains("common"), "{err}");
    let total = env.user("list", json!({})).unwrap()["total"]
        .as_u64()
        .unwrap();
    assert_eq!(total, 1, "only bob@eu.acme.test was registered");
}

#[test]
fn registration_applies_the_configured_policy_fields_and_code_lifetime() {
    let env = Env::start();
    env.settings(json!({
        "self_registration": true,
        "password_policy": { "min_length": 30 },
        "registration_fields": { "phone": "required" },
        "code_lifetimes": { "verification_hours": 2 }
    }));
    let attempt = |email: &str, password: &str, profile: Value| {
        env.anon(
            "register",
            json!({ "email": email, "password": password, "profile": profile }),
        )
    };
    let profile = json!({ "first_name": "Lee", "last_name": "Park", "phone": "+1 555 0100" });
    let long = "a passphrase longer than thirty characters";
    // 28 characters pass the default policy (12), not the configured one.
    let err = attempt(
        "lee@example.test",
        "a passphrase of 28 chars....",
        profile.clone(),
    )
    .unwrap_err();
    assert_eq!(err.details.as_ref().unwrap()["field"], "password", "{err}");
    assert!(err.message.contains("at least 30 characters"), "{err}");
    let err = attempt(
        "lee@example.test",
        long,
        json!({ "first_name": "Lee", "last_name": "Park" }),
    )
    .unwrap_err();
    assert_eq!(
        err.details.as_ref().unwrap()["field"],
        "profile.phone",
        "{err}"
    );
    assert_eq!(env.user("list", json!({})).unwrap()["total"], 0);
    // The mail names the configured lifetime and the code ends with it
    // (the default would be 24 hours).
    attempt("lee@example.test", long, profile.clone()).unwrap();
    let mail = env.sink.wait_for_to("lee@example.test", 1, WAIT);
    assert!(mail.contains("valid for 2 hours"), "{mail}");
    env.advance(Duration::from_secs(2 * 3600 + 60));
    let err = env
        .anon(
            "confirm_email",
            json!({ "email": "lee@example.test", "code": code_in(&mail) }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT, "{err}");
    // Closed again: refused, nothing created.
    env.settings(json!({ "self_registration": false }));
    let err = attempt("max@example.test", long, profile).unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED, "{err}");
    assert_eq!(env.user("list", json!({})).unwrap()["total"], 1);
}

#[test]
fn taken_addresses_and_unknown_addresses_answer_like_the_ordinary_case() {
    let env = Env::start();
    open_registration(&env);
    let first = register(&env, "dave@example.test").unwrap();
    env.sink.wait_for_to("dave@example.test", 1, WAIT);
    let again = register(&env, "DAVE@example.test").unwrap();
    assert_eq!(
        first,
        json!({ "status": "verification_sent", "message": first["message"] })
    );
    assert_eq!(again["status"], first["status"]);
    // The owner is told instead.
    let notice = env.sink.wait_for_to("dave@example.test", 2, WAIT);
    assert!(
        subject_of(&notice).contains("Registration attempt"),
        "{notice}"
    );
    assert_eq!(env.user("list", json!({})).unwrap()["total"], 1);

    let known = env
        .anon(
            "request_password_reset",
            json!({ "email": "dave@example.test" }),
        )
        .unwrap();
    let unknown = env
        .anon(
            "request_password_reset",
            json!({ "email": "nobody@example.test" }),
        )
        .unwrap();
    assert_eq!(known["status"], unknown["status"]);
    assert_eq!(
        known["message"].as_str().unwrap().replace("dave", "X"),
        unknown["message"].as_str().unwrap().replace("nobody", "X")
    );
    let err_known = env
        .login("dave@example.test", "wrong password 123")
        .unwrap_err();
    let err_unknown = env
        .login("nobody@example.test", "wrong password 123")
        .unwrap_err();
    assert_eq!(err_known, err_unknown);
}

#[test]
fn password_reset_codes_are_single_use_limited_and_expire() {
    let env = Env::start();
    open_registration(&env);
    register(&env, "erin@example.test").unwrap();
    env.sink.wait_for_to("erin@example.test", 1, WAIT);

    env.anon(
        "request_password_reset",
        json!({ "email": "erin@example.test" }),
    )
    .unwrap();
    let mail = env.sink.wait_for_to("erin@example.test", 2, WAIT);
    assert!(
        subject_of(&mail).contains("Reset your Acme password"),
        "{mail}"
    );
    let code = code_in(&mail);
    // Five wrong guesses exhaust the code; then even the right one fails.
    for _ in 0..5 {
        let err = env
            .anon(
                "reset_password",
                json!({ "email": "erin@example.test", "code": "AAAA-AAAA", "new_password": "a brand new passphrase" }),
            )
            .unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT);
    }
    let err = env
        .anon(
            "reset_password",
            json!({ "email": "erin@example.test", "code": code, "new_password": "a brand new passphrase" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);

    // A new code replaces the old one; it expires after an hour.
    env.anon(
        "request_password_reset",
        json!({ "email": "erin@example.test" }),
    )
    .unwrap();
    let code = code_in(&env.sink.wait_for_to("erin@example.test", 3, WAIT));
    env.advance(Duration::from_secs(61 * 60));
    let err = env
        .anon(
            "reset_password",
            json!({ "email": "erin@example.test", "code": code, "new_password": "a brand new passphrase" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);

    env.anon(
        "request_password_reset",
        json!({ "email": "erin@example.test" }),
    )
    .unwrap();
    let code = code_in(&env.sink.wait_for_to("erin@example.test", 4, WAIT));
    env.anon(
        "reset_password",
        json!({ "email": "erin@example.test", "code": code, "new_password": "a brand new passphrase" }),
    )
    .unwrap();
    // The reset also confirms the address; the old password is gone; reuse fails.
    let id = env.id_of("erin@example.test");
    assert_eq!(
        env.user("get", json!({ "id": id })).unwrap()["email_verified"],
        true
    );
    assert!(env.login("erin@example.test", PASSWORD).is_err());
    env.login("erin@example.test", "a brand new passphrase")
        .unwrap();
    let err = env
        .anon(
            "reset_password",
            json!({ "email": "erin@example.test", "code": code, "new_password": "another new passphrase" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
}

#[test]
fn an_account_created_without_password_sets_one_with_the_mailed_code() {
    let env = Env::start();
    let created = env
        .user(
            "create",
            json!({ "email": "frank@example.test", "notify": true }),
        )
        .unwrap();
    assert_eq!(created["require_password_change"], true);
    let mail = env.sink.wait_for_to("frank@example.test", 1, WAIT);
    assert!(subject_of(&mail).contains("Your Acme account"), "{mail}");
    let code = code_in(&mail);
    assert!(env
        .login("frank@example.test", "anything at all 1")
        .is_err());
    env.anon(
        "reset_password",
        json!({ "email": "frank@example.test", "code": code, "new_password": "frank's first passphrase" }),
    )
    .unwrap();
    let login = env
        .login("frank@example.test", "frank's first passphrase")
        .unwrap();
    assert_eq!(login["require_password_change"], false);
}

#[test]
fn forced_and_voluntary_password_changes() {
    let env = Env::start();
    let created = env
        .user(
            "create",
            json!({ "email": "gina@example.test", "password": PASSWORD, "verified": true }),
        )
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    env.user(
        "require_password_change",
        json!({ "id": id, "required": true }),
    )
    .unwrap();
    assert_eq!(
        env.login("gina@example.test", PASSWORD).unwrap()["require_password_change"],
        true
    );
    let err = env
        .as_user(&id, "change_my_password", json!({ "current_password": "not it at all", "new_password": "something else entirely" }))
        .unwrap_err();
    assert_eq!(err.details.as_ref().unwrap()["field"], "current_password");
    let err = env
        .as_user(
            &id,
            "change_my_password",
            json!({ "current_password": PASSWORD, "new_password": PASSWORD }),
        )
        .unwrap_err();
    assert_eq!(err.details.as_ref().unwrap()["field"], "new_password");
    let err = env
        .as_user(
            &id,
            "change_my_password",
            json!({ "current_password": PASSWORD, "new_password": "gina@example.test" }),
        )
        .unwrap_err();
    assert_eq!(
        err.details.as_ref().unwrap()["field"],
        "new_password",
        "{err}"
    );
    env.as_user(
        &id,
        "change_my_password",
        json!({ "current_password": PASSWORD, "new_password": "gina's new passphrase" }),
    )
    .unwrap();
    assert!(env.login("gina@example.test", PASSWORD).is_err());
    assert_eq!(
        env.login("gina@example.test", "gina's new passphrase")
            .unwrap()["require_password_change"],
        false
    );
}

#[test]
fn change_email_notifies_both_addresses_and_needs_confirmation() {
    let env = Env::start();
    let created = env
        .user(
            "create",
            json!({ "email": "hank@example.test", "password": PASSWORD, "verified": true }),
        )
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    env.user(
        "change_email",
        json!({ "id": id, "email": "henry@example.test", "notify": true }),
    )
    .unwrap();
    let old = env.sink.wait_for_to("hank@example.test", 1, WAIT);
    assert!(subject_of(&old).contains("login email changed"), "{old}");
    let new = env.sink.wait_for_to("henry@example.test", 1, WAIT);
    let user = env.user("get", json!({ "id": id })).unwrap();
    assert_eq!(user["email"], "henry@example.test");
    assert_eq!(user["email_verified"], false);
    env.anon(
        "confirm_email",
        json!({ "email": "henry@example.test", "code": code_in(&new) }),
    )
    .unwrap();
    assert_eq!(
        env.user("get", json!({ "id": id })).unwrap()["email_verified"],
        true
    );
    env.login("henry@example.test", PASSWORD).unwrap();
    assert!(env.login("hank@example.test", PASSWORD).is_err());
}

#[test]
fn profile_consents_and_data_export_are_self_service() {
    let env = Env::start();
    open_registration(&env);
    register(&env, "ivy@example.test").unwrap();
    let id = env.id_of("ivy@example.test");
    let updated = env
        .as_user(&id, "update_my_contact", json!({ "profile": { "first_name": "Ivy", "last_name": "Green", "city": "Bonn", "preferred_language": "de-DE" } }))
        .unwrap();
    assert_eq!(updated["profile"]["city"], "Bonn");
    let err = env
        .as_user(
            &id,
            "update_my_contact",
            json!({ "profile": { "website": "javascript:alert(1)" } }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    let err = env
        .as_user(
            &id,
            "set_my_consent",
            json!({ "option_id": "terms", "accept": false }),
        )
        .unwrap_err();
    assert!(err.message.contains("required"), "{err}");
    env.as_user(
        &id,
        "set_my_consent",
        json!({ "option_id": "news", "accept": true }),
    )
    .unwrap();
    let user = env
        .as_user(
            &id,
            "set_my_consent",
            json!({ "option_id": "news", "accept": false }),
        )
        .unwrap();
    let history = user["consents"]["news"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["action"], "revoked");
    let err = env
        .as_user(
            &id,
            "set_my_consent",
            json!({ "option_id": "ghost", "accept": true }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    let data = env.as_user(&id, "export_my_data", json!({})).unwrap();
    assert_eq!(data["user"]["email"], "ivy@example.test");
    assert_eq!(data["user"]["profile"]["last_name"], "Green");
    assert!(data["effective_permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("group.read")));
    // Self-service needs a logged-in user.
    let err = env.anon("me", json!({})).unwrap_err();
    assert_eq!(err.code, codes::UNAUTHENTICATED);
}

#[test]
fn parallel_registrations_of_one_address_create_one_account() {
    let env = Arc::new(Env::start());
    open_registration(&env);
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let env = env.clone();
            std::thread::spawn(move || {
                let email = if i % 2 == 0 {
                    "Jo@Example.test"
                } else {
                    "jo@example.TEST"
                };
                register(&env, email).unwrap()["status"].clone()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "verification_sent");
    }
    assert_eq!(env.user("list", json!({})).unwrap()["total"], 1);
}

#[test]
fn the_first_run_creates_one_administrator_with_every_permission() {
    let env = Env::start_with(Some(BootstrapAdmin {
        email: Some("root@acme.test".into()),
        password: Some("the administrator passphrase".into()),
    }));
    let login = env
        .login("root@acme.test", "the administrator passphrase")
        .unwrap();
    let id = login["user_id"].as_str().unwrap().to_string();
    assert_eq!(login["require_password_change"], false);
    let subject = env.host.subject(Some(&id)).unwrap();
    for p in [
        "user.delete",
        "role.create",
        "license.assign",
        "settings.put",
        "permission.read",
    ] {
        assert!(subject.has_permission(p), "{p}");
    }
    assert_eq!(env.user("list", json!({})).unwrap()["total"], 1);

    // Without configured credentials a one-time password must be changed.
    let env = Env::start_with(Some(BootstrapAdmin::default()));
    let page = env.user("list", json!({})).unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["email"], "admin@localhost");
    assert_eq!(page["items"][0]["require_password_change"], true);
    assert_eq!(page["items"][0]["roles"], json!(["admin"]));
}

#[test]
fn code_lifetimes_come_from_the_settings() {
    let env = Env::start();
    let created = env
        .user(
            "create",
            json!({ "email": "kim@example.test", "password": PASSWORD, "verified": true }),
        )
        .unwrap();
    assert_eq!(created["email_verified"], true);
    env.settings(json!({ "code_lifetimes": { "verification_hours": 24, "reset_minutes": 5 } }));
    env.anon(
        "request_password_reset",
        json!({ "email": "kim@example.test" }),
    )
    .unwrap();
    let mail = env.sink.wait_for_to("kim@example.test", 1, WAIT);
    assert!(mail.contains("valid for 5 minutes"), "{mail}");
    env.advance(Duration::from_secs(6 * 60));
    let err = env
        .anon(
            "reset_password",
            json!({ "email": "kim@example.test", "code": code_in(&mail), "new_password": "kim's new passphrase" }),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    // Out-of-range lifetimes are refused by the settings schema.
    let err = env
        .host
        .system("settings")
        .unwrap()
        .call::<_, Value>(
            "put",
            &json!({ "section": "user", "document": { "code_lifetimes": { "reset_minutes": 1 } } }),
        )
        .unwrap_err();
    assert!(
        err.message.contains("code_lifetimes.reset_minutes"),
        "{err}"
    );
}
