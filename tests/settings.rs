//! The `settings` system through the real host with the real plugin
//! libraries: registration, get/list/schema/put, validation, authorization,
//! events (observed with the event-log example plugin) and the clean-up of
//! deleted role and group references.

use serde_json::{json, Value};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject, UserSubject};
use syshost_test_support::{library, system_library, PluginDir};

const USER_SECTION: &str = include_str!("../plugins/user/settings-section.json");

/// A running host with the eight systems and the event log; `settings` and
/// `audit` active (and, through `wants`, `role` and `group`).
struct Env {
    host: Host,
    settings: SystemHandle,
    audit: SystemHandle,
    _plugins: PluginDir,
    _data: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let plugins = PluginDir::systems_and(&[library("syshost-example-event-log")]);
        Env::start_with(plugins, tempfile::tempdir().unwrap())
    }

    fn start_with(plugins: PluginDir, data: tempfile::TempDir) -> Env {
        let host = Host::builder()
            .data_dir(data.path())
            .plugin_dir(plugins.path())
            .build()
            .unwrap();
        let report = host.activate_all(&["settings".into(), "eventlog".into()]);
        assert!(report.failed.is_empty(), "{report:?}");
        Env {
            settings: host.system("settings").unwrap(),
            audit: host.system("eventlog").unwrap(),
            host,
            _plugins: plugins,
            _data: data,
        }
    }

    /// Shuts the host down and hands back its data directory.
    fn stop(self) -> tempfile::TempDir {
        self.host.shutdown();
        self._data
    }

    /// Registers the `user` section as the system subject.
    fn register_user_section(&self) -> Value {
        let section: Value = serde_json::from_str(USER_SECTION).unwrap();
        self.settings
            .call(
                "register",
                &json!({
                    "section": "user",
                    "defaults": section["defaults"],
                    "schema": section["schema"],
                }),
            )
            .unwrap()
    }

    fn get(&self, section: &str) -> Value {
        let got: Value = self
            .settings
            .call("get", &json!({ "section": section }))
            .unwrap();
        got["document"].clone()
    }

    fn put(&self, section: &str, document: Value) -> Result<Value, PluginError> {
        self.settings
            .call("put", &json!({ "section": section, "document": document }))
    }

    /// Payloads of every recorded `settings.updated` event, oldest first.
    fn updated_events(&self) -> Vec<Value> {
        let page: Value = self.audit.call("list", &json!({ "limit": 500 })).unwrap();
        let mut events: Vec<Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["topic"] == "settings.updated")
            .inspect(|e| assert_eq!(e["source"], "settings"))
            .map(|e| e["payload"].clone())
            .collect();
        events.reverse();
        events
    }
}

fn user_section_defaults() -> Value {
    let section: Value = serde_json::from_str(USER_SECTION).unwrap();
    section["defaults"].clone()
}

fn user_with(permissions: &[&str]) -> CallContext {
    CallContext::for_subject(Subject::User(UserSubject {
        id: "u1".into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }))
}

/// A changed, valid `user` document (fields left out take their defaults).
fn changed_user_document() -> Value {
    json!({
        "self_registration": true,
        "allowed_domains": ["example.com", "mail.example.org"],
        "consent_options": [
            {"id": "gtc", "title": "Terms", "text": "You agree.", "version": "1", "required": true},
            {"id": "newsletter", "title": "Newsletter", "text": "", "version": "2024-01", "required": false}
        ],
        "password_policy": {"min_length": 16},
        "registration_fields": {"phone": "required", "about_me": "hidden"}
    })
}

#[test]
fn register_then_get_list_and_schema_return_the_defaults() {
    let env = Env::start();
    let defaults = user_section_defaults();
    let registered = env.register_user_section();
    assert_eq!(
        registered,
        json!({ "section": "user", "document": defaults })
    );

    let got: Value = env
        .settings
        .call("get", &json!({ "section": "user" }))
        .unwrap();
    assert_eq!(
        got,
        json!({ "section": "user", "owner": "system", "document": defaults })
    );

    let list: Value = env.settings.call("list", &json!({})).unwrap();
    assert_eq!(
        list,
        json!({ "items": [{ "section": "user", "owner": "system", "document": defaults }] })
    );

    let section: Value = serde_json::from_str(USER_SECTION).unwrap();
    let schema: Value = env
        .settings
        .call("schema", &json!({ "section": "user" }))
        .unwrap();
    assert_eq!(
        schema,
        json!({ "section": "user", "schema": section["schema"], "defaults": defaults })
    );

    // The documented defaults of the user section.
    assert_eq!(defaults["self_registration"], false);
    assert_eq!(defaults["self_password_reset"], true);
    assert_eq!(defaults["allowed_domains"], json!([]));
    for key in [
        "default_roles",
        "default_groups",
        "anonymous_roles",
        "anonymous_groups",
        "consent_options",
    ] {
        assert_eq!(defaults[key], json!([]), "{key}");
    }
    assert_eq!(
        defaults["password_policy"],
        json!({"min_length": 12, "max_length": 256, "reject_common": true})
    );
    let fields = defaults["registration_fields"].as_object().unwrap();
    assert_eq!(fields.len(), 17);
    for (field, rule) in fields {
        let expected = if field == "first_name" || field == "last_name" {
            "required"
        } else {
            "optional"
        };
        assert_eq!(rule, expected, "{field}");
    }
    env.host.shutdown();
}

#[test]
fn put_stores_a_valid_document_fills_defaults_and_publishes_settings_updated() {
    let env = Env::start();
    env.register_user_section();
    let before = env.updated_events().len();

    let out = env.put("user", changed_user_document()).unwrap();
    assert_eq!(out["section"], "user");
    assert_eq!(out["changed"], true);
    let doc = out["document"].clone();
    assert_eq!(doc["self_registration"], true);
    assert_eq!(doc["self_password_reset"], true, "left out: default");
    assert_eq!(
        doc["password_policy"],
        json!({"min_length": 16, "max_length": 256, "reject_common": true}),
        "nested objects are completed from the defaults"
    );
    assert_eq!(doc["registration_fields"]["phone"], "required");
    assert_eq!(doc["registration_fields"]["first_name"], "required");
    assert_eq!(doc["registration_fields"]["city"], "optional");
    assert_eq!(doc["consent_options"][1]["id"], "newsletter");
    assert_eq!(env.get("user"), doc);

    let events = env.updated_events();
    assert_eq!(events.len(), before + 1, "{events:?}");
    assert_eq!(events.last().unwrap(), &json!({ "section": "user" }));

    // A put replaces the document: what is left out goes back to its default.
    let out = env
        .put("user", json!({ "self_password_reset": false }))
        .unwrap();
    assert_eq!(out["changed"], true);
    let mut expected = user_section_defaults();
    expected["self_password_reset"] = json!(false);
    assert_eq!(env.get("user"), expected);
    assert_eq!(env.updated_events().len(), before + 2);
    env.host.shutdown();
}

#[test]
fn an_unchanged_put_writes_nothing_and_publishes_nothing() {
    let env = Env::start();
    env.register_user_section();
    let before = env.updated_events().len();

    // The defaults themselves, or an empty document (= all defaults).
    for doc in [user_section_defaults(), json!({})] {
        let out = env.put("user", doc).unwrap();
        assert_eq!(out["changed"], false);
        assert_eq!(out["document"], user_section_defaults());
    }
    assert_eq!(env.updated_events().len(), before);

    // Changed once, then the same document again.
    assert_eq!(
        env.put("user", changed_user_document()).unwrap()["changed"],
        true
    );
    let stored = env.get("user");
    for doc in [changed_user_document(), stored.clone()] {
        let out = env.put("user", doc).unwrap();
        assert_eq!(out["changed"], false);
        assert_eq!(out["document"], stored);
    }
    assert_eq!(env.updated_events().len(), before + 1);
    env.host.shutdown();
}

#[test]
fn every_validation_error_names_the_field_and_stores_nothing() {
    let env = Env::start();
    env.register_user_section();
    env.put("user", changed_user_document()).unwrap();
    let stored = env.get("user");
    let events = env.updated_events().len();

    let consent = |over: Value| {
        let mut c =
            json!({"id": "gtc", "title": "Terms", "text": "t", "version": "1", "required": true});
        for (k, v) in over.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        // type
        (
            "type",
            json!({"self_registration": "yes"}),
            "self_registration",
            "must be a boolean",
        ),
        (
            "type",
            json!({"password_policy": {"min_length": "12"}}),
            "password_policy.min_length",
            "must be an integer",
        ),
        (
            "type",
            json!({"password_policy": {"min_length": 12.5}}),
            "password_policy.min_length",
            "must be an integer",
        ),
        (
            "type",
            json!({"allowed_domains": "example.com"}),
            "allowed_domains",
            "must be an array",
        ),
        (
            "type",
            json!({"password_policy": true}),
            "password_policy",
            "must be an object",
        ),
        (
            "type",
            json!({"consent_options": [consent(json!({"required": "yes"}))]}),
            "consent_options[0].required",
            "must be a boolean",
        ),
        (
            "type",
            json!(["not", "an", "object"]),
            "document",
            "must be an object",
        ),
        // range
        (
            "range",
            json!({"password_policy": {"min_length": 7}}),
            "password_policy.min_length",
            "at least 8",
        ),
        (
            "range",
            json!({"password_policy": {"min_length": 129}}),
            "password_policy.min_length",
            "at most 128",
        ),
        (
            "range",
            json!({"password_policy": {"max_length": 63}}),
            "password_policy.max_length",
            "at least 64",
        ),
        (
            "range",
            json!({"password_policy": {"max_length": 4097}}),
            "password_policy.max_length",
            "at most 4096",
        ),
        (
            "range",
            json!({"password_policy": {"min_length": 100, "max_length": 64}}),
            "password_policy.min_length",
            "greater than max_length",
        ),
        // length
        (
            "length",
            json!({"consent_options": [consent(json!({"title": ""}))]}),
            "consent_options[0].title",
            "at least 1 characters",
        ),
        (
            "length",
            json!({"consent_options": [consent(json!({"version": "v".repeat(65)}))]}),
            "consent_options[0].version",
            "at most 64 characters",
        ),
        (
            "length",
            json!({"consent_options": [consent(json!({"id": "x".repeat(65)}))]}),
            "consent_options[0].id",
            "1-64 characters",
        ),
        // enum
        (
            "enum",
            json!({"registration_fields": {"city": "mandatory"}}),
            "registration_fields.city",
            "must be one of \"hidden\", \"optional\", \"required\"",
        ),
        // unknown field
        (
            "unknown",
            json!({"colour": "blue"}),
            "colour",
            "not a known field",
        ),
        (
            "unknown",
            json!({"password_policy": {"min_digits": 1}}),
            "password_policy.min_digits",
            "not a known field",
        ),
        (
            "unknown",
            json!({"registration_fields": {"shoe_size": "optional"}}),
            "registration_fields.shoe_size",
            "not a known field",
        ),
        (
            "unknown",
            json!({"consent_options": [consent(json!({"extra": 1}))]}),
            "consent_options[0].extra",
            "not a known field",
        ),
        // required
        (
            "required",
            json!({"consent_options": [consent(json!({"version": null}))]}),
            "consent_options[0].version",
            "is required",
        ),
        (
            "required",
            json!({"consent_options": [consent(json!({"id": null}))]}),
            "consent_options[0].id",
            "is required",
        ),
        // duplicates
        (
            "duplicate consent id",
            json!({"consent_options": [consent(json!({})), consent(json!({"title": "Other"}))]}),
            "consent_options[1].id",
            "duplicate id \"gtc\" (also at consent_options[0].id)",
        ),
        (
            "duplicate item",
            json!({"allowed_domains": ["example.com", "example.com"]}),
            "allowed_domains[1]",
            "duplicates allowed_domains[0]",
        ),
        (
            "duplicate item",
            json!({"default_roles": ["a", "a"]}),
            "default_roles[1]",
            "duplicates default_roles[0]",
        ),
        // format
        (
            "format",
            json!({"allowed_domains": ["@example.com"]}),
            "allowed_domains[0]",
            "must be a domain",
        ),
        (
            "format",
            json!({"allowed_domains": ["Example.COM"]}),
            "allowed_domains[0]",
            "lowercase",
        ),
        (
            "format",
            json!({"consent_options": [consent(json!({"id": "Not A Slug"}))]}),
            "consent_options[0].id",
            "a-z",
        ),
        (
            "empty reference",
            json!({"default_groups": [""]}),
            "default_groups[0]",
            "must not be empty",
        ),
    ];
    for (kind, doc, field, needle) in cases {
        let err = env.put("user", doc.clone()).unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT, "{kind} {doc}: {err}");
        let details = err.details.clone().unwrap_or_default();
        assert_eq!(details["field"], field, "{kind} {doc}: {err}");
        assert!(
            err.message.contains(field) && err.message.contains(needle),
            "{kind} {doc}: {err}"
        );
        assert_eq!(env.get("user"), stored, "{kind}: nothing stored");
    }

    // Several problems at once: the first is named, all are listed.
    let err = env
        .put(
            "user",
            json!({"self_registration": 1, "password_policy": {"min_length": 1}, "x": 0}),
        )
        .unwrap_err();
    assert!(err.message.contains("and 2 more problems"), "{err}");
    let listed: Vec<&str> = err.details.as_ref().unwrap()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["password_policy.min_length", "self_registration", "x"]
    );

    // Malformed requests.
    let err = env
        .settings
        .call::<_, Value>("put", &json!({"section": "user"}))
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("document"), "{err}");
    let err = env
        .settings
        .call::<_, Value>(
            "put",
            &json!({"section": "user", "document": {}, "extra": 1}),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT);
    assert!(err.message.contains("extra"), "{err}");

    assert_eq!(env.get("user"), stored);
    assert_eq!(env.updated_events().len(), events, "no event for a failure");
    env.host.shutdown();
}

#[test]
fn unknown_and_malformed_sections() {
    let env = Env::start();
    for op in ["get", "schema"] {
        let err = env
            .settings
            .call::<_, Value>(op, &json!({ "section": "nope" }))
            .unwrap_err();
        assert_eq!(err.code, codes::NOT_FOUND, "{op}");
        assert!(err.message.contains("'nope'"), "{err}");
    }
    let err = env.put("nope", json!({})).unwrap_err();
    assert_eq!(err.code, codes::NOT_FOUND);
    for bad in ["", "User", "a/b", "../user", "user."] {
        let err = env
            .settings
            .call::<_, Value>("get", &json!({ "section": bad }))
            .unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT, "{bad:?}");
        assert_eq!(err.details.unwrap()["field"], "section");
    }
    let list: Value = env.settings.call("list", &json!({})).unwrap();
    assert_eq!(list, json!({ "items": [] }));
    env.host.shutdown();
}

#[test]
fn reading_needs_settings_read_and_writing_needs_settings_put() {
    let env = Env::start();
    env.register_user_section();
    env.put("user", changed_user_document()).unwrap();
    let stored = env.get("user");
    let events = env.updated_events().len();
    let section = json!({ "section": "user" });
    let new_doc = json!({ "self_registration": false });
    let put = json!({ "section": "user", "document": new_doc });

    // Anonymous: nothing.
    let anonymous = CallContext::default();
    for (op, req) in [
        ("get", &section),
        ("schema", &section),
        ("list", &json!({})),
        ("put", &put),
    ] {
        let err = env
            .settings
            .call_as::<_, Value>(&anonymous, op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}");
    }

    // A user without settings.read may not read.
    let nobody = user_with(&["role.read"]);
    for (op, req) in [
        ("get", &section),
        ("schema", &section),
        ("list", &json!({})),
    ] {
        let err = env
            .settings
            .call_as::<_, Value>(&nobody, op, req)
            .unwrap_err();
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{op}");
        assert!(err.message.contains("settings.read"), "{err}");
    }

    // settings.read alone: reads, but may not put.
    let reader = user_with(&["settings.read"]);
    let got: Value = env.settings.call_as(&reader, "get", &section).unwrap();
    assert_eq!(got["document"], stored);
    let _: Value = env.settings.call_as(&reader, "list", &json!({})).unwrap();
    let _: Value = env.settings.call_as(&reader, "schema", &section).unwrap();
    let err = env
        .settings
        .call_as::<_, Value>(&reader, "put", &put)
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);
    assert!(err.message.contains("settings.put"), "{err}");
    assert_eq!(env.get("user"), stored, "a denied put changes nothing");
    assert_eq!(env.updated_events().len(), events);

    // Nobody but the host and plugins registers sections.
    let admin = user_with(&["settings.read", "settings.put"]);
    let err = env
        .settings
        .call_as::<_, Value>(
            &admin,
            "register",
            &json!({"section": "evil", "defaults": {}, "schema": {"type": "object"}}),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::PERMISSION_DENIED);

    // settings.put: allowed.
    let out: Value = env.settings.call_as(&admin, "put", &put).unwrap();
    assert_eq!(out["changed"], true);
    assert_eq!(env.get("user")["self_registration"], false);
    assert_eq!(env.updated_events().len(), events + 1);
    env.host.shutdown();
}

#[test]
fn invalid_schemas_and_defaults_are_refused_at_registration() {
    let env = Env::start();
    let cases = [
        (json!({"type": "string"}), json!(""), "schema.type"),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "pattern": "x"}}}),
            json!({}),
            "schema.properties.n.pattern",
        ),
        (
            json!({"type": "object", "properties": {"r": {"type": "string", "x-ref": "user"}}}),
            json!({}),
            "schema.properties.r.x-ref",
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 8}}}),
            json!({"n": 1}),
            "defaults.n",
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
            json!({}),
            "defaults.n",
        ),
        (
            json!({"type": "object"}),
            json!({"surprise": true}),
            "defaults.surprise",
        ),
    ];
    for (schema, defaults, field) in cases {
        let err = env
            .settings
            .call::<_, Value>(
                "register",
                &json!({"section": "demo", "defaults": defaults, "schema": schema}),
            )
            .unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT, "{schema}: {err}");
        assert_eq!(err.details.clone().unwrap()["field"], field, "{err}");
        assert!(err.message.contains(field), "{err}");
    }
    let list: Value = env.settings.call("list", &json!({})).unwrap();
    assert_eq!(list["items"], json!([]), "nothing registered");
    env.host.shutdown();
}

#[test]
fn re_registration_keeps_values_adds_new_defaults_and_drops_removed_fields() {
    let env = Env::start();
    let v1 = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "minimum": 0, "maximum": 100},
        "label": {"type": "string"},
        "old": {"type": "boolean"}
    }});
    let register = |schema: &Value, defaults: Value| -> Value {
        env.settings
            .call(
                "register",
                &json!({"section": "demo", "defaults": defaults, "schema": schema}),
            )
            .unwrap()
    };
    register(&v1, json!({"limit": 10, "label": "x", "old": false}));
    env.put("demo", json!({"limit": 50, "label": "mine", "old": true}))
        .unwrap();
    let events = env.updated_events().len();

    // Same registration again (every activation): nothing changes.
    let out = register(&v1, json!({"limit": 10, "label": "x", "old": false}));
    assert_eq!(
        out["document"],
        json!({"limit": 50, "label": "mine", "old": true})
    );
    assert_eq!(env.updated_events().len(), events);

    // v2: `old` removed, `flag` added, `limit` narrowed but 50 still fits.
    let v2 = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "minimum": 0, "maximum": 60},
        "label": {"type": "string"},
        "flag": {"type": "boolean"}
    }});
    let out = register(&v2, json!({"limit": 10, "label": "x", "flag": true}));
    let expected = json!({"limit": 50, "label": "mine", "flag": true});
    assert_eq!(out["document"], expected);
    assert_eq!(env.get("demo"), expected);
    assert_eq!(env.updated_events().len(), events + 1);
    let schema: Value = env
        .settings
        .call("schema", &json!({"section": "demo"}))
        .unwrap();
    assert_eq!(schema["schema"], v2);

    // v3: the stored limit no longer fits: it takes the new default.
    let v3 = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "minimum": 0, "maximum": 20},
        "label": {"type": "string"},
        "flag": {"type": "boolean"}
    }});
    let out = register(&v3, json!({"limit": 5, "label": "x", "flag": true}));
    assert_eq!(
        out["document"],
        json!({"limit": 5, "label": "mine", "flag": true})
    );
    // The new schema is the one puts are validated against.
    let err = env.put("demo", json!({"limit": 30})).unwrap_err();
    assert_eq!(err.details.unwrap()["field"], "limit");
    let err = env.put("demo", json!({"old": true})).unwrap_err();
    assert_eq!(err.details.unwrap()["field"], "old");
    env.host.shutdown();
}

#[test]
fn documents_survive_a_restart_and_re_registration() {
    let audit = || PluginDir::systems_and(&[library("syshost-example-event-log")]);
    let env = Env::start_with(audit(), tempfile::tempdir().unwrap());
    env.register_user_section();
    env.put("user", changed_user_document()).unwrap();
    let stored = env.get("user");
    let data = env.stop();

    let env = Env::start_with(audit(), data);
    assert_eq!(env.get("user"), stored);
    let out = env.register_user_section();
    assert_eq!(out["document"], stored, "re-registration keeps the values");
    assert_eq!(env.get("user"), stored);
    env.host.shutdown();
}

#[test]
fn concurrent_puts_each_publish_exactly_when_they_changed_something() {
    let env = Env::start();
    env.register_user_section();
    let before = env.updated_events().len();
    let changed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let env = &env;
                scope.spawn(move || {
                    let mut changed = 0;
                    for i in 0..10 {
                        let min = 8 + ((t * 10 + i) % 5) as u64;
                        let out = env
                            .put("user", json!({"password_policy": {"min_length": min}}))
                            .unwrap();
                        if out["changed"] == true {
                            changed += 1;
                        }
                    }
                    changed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!(changed >= 1);
    assert_eq!(env.updated_events().len(), before + changed);
    let min = env.get("user")["password_policy"]["min_length"]
        .as_u64()
        .unwrap();
    assert!((8..13).contains(&min));
    env.host.shutdown();
}

#[test]
fn references_are_not_checked_when_role_and_group_are_not_active() {
    let plugins = PluginDir::with(&[
        system_library("settings"),
        library("syshost-example-event-log"),
    ]);
    let env = Env::start_with(plugins, tempfile::tempdir().unwrap());
    assert!(!env.host.is_active("role") && !env.host.is_active("group"));
    env.register_user_section();
    let out = env
        .put(
            "user",
            json!({"default_roles": ["anything"], "anonymous_groups": ["whatever"]}),
        )
        .unwrap();
    assert_eq!(out["changed"], true);
    assert_eq!(out["document"]["default_roles"], json!(["anything"]));
    env.host.shutdown();
}

// ---------------------------------------------------------------------------
// Against the role and group systems (their `create`, `delete` and `check`
// operations as fixed by the cross-plugin contract).
// ---------------------------------------------------------------------------

fn start_with_role_and_group() -> Env {
    let env = Env::start();
    let report = env
        .host
        .activate_all(&["settings".into(), "role".into(), "group".into()]);
    assert!(report.is_ok(), "{report:?}");
    env
}

fn create(env: &Env, system: &str, id: &str) {
    let _: Value = env
        .host
        .system(system)
        .unwrap()
        .call("create", &json!({ "id": id, "name": id.to_uppercase() }))
        .unwrap_or_else(|e| panic!("{system}.create {id}: {e}"));
}

fn delete(env: &Env, system: &str, id: &str) {
    let out: Value = env
        .host
        .system(system)
        .unwrap()
        .call("delete", &json!({ "id": id }))
        .unwrap_or_else(|e| panic!("{system}.delete {id}: {e}"));
    assert_eq!(out, json!({ "deleted": true }));
}

#[test]
fn references_must_name_existing_roles_and_groups() {
    let env = start_with_role_and_group();
    env.register_user_section();
    create(&env, "role", "editors");
    create(&env, "role", "viewers");
    create(&env, "group", "staff");

    let good = json!({
        "default_roles": ["editors"],
        "anonymous_roles": ["viewers"],
        "default_groups": ["staff"],
        "anonymous_groups": ["staff"]
    });
    let out = env.put("user", good.clone()).unwrap();
    assert_eq!(out["changed"], true);
    let stored = env.get("user");
    let events = env.updated_events().len();

    let cases = [
        (
            json!({"default_roles": ["editors", "ghost"]}),
            "default_roles[1]",
            "no role 'ghost' exists",
        ),
        (
            json!({"anonymous_roles": ["staff"]}),
            "anonymous_roles[0]",
            "no role 'staff' exists",
        ),
        (
            json!({"default_groups": ["nope"]}),
            "default_groups[0]",
            "no group 'nope' exists",
        ),
        (
            json!({"anonymous_groups": ["editors"]}),
            "anonymous_groups[0]",
            "no group 'editors' exists",
        ),
    ];
    for (doc, field, needle) in cases {
        let err = env.put("user", doc.clone()).unwrap_err();
        assert_eq!(err.code, codes::INVALID_INPUT, "{doc}: {err}");
        assert_eq!(err.details.clone().unwrap()["field"], field, "{err}");
        assert!(err.message.contains(needle), "{err}");
        assert_eq!(env.get("user"), stored, "nothing stored");
    }
    assert_eq!(env.updated_events().len(), events);
    env.host.shutdown();
}

#[test]
fn deleting_a_role_or_group_removes_it_from_every_document() {
    let env = start_with_role_and_group();
    env.register_user_section();
    // A second section referring to roles and groups, one reference a single string.
    env.settings
        .call::<_, Value>(
            "register",
            &json!({
                "section": "demo",
                "defaults": {"owner_role": "keep", "groups": []},
                "schema": {"type": "object", "properties": {
                    "owner_role": {"type": "string", "x-ref": "role"},
                    "groups": {"type": "array", "items": {"type": "string", "x-ref": "group"}}
                }}
            }),
        )
        .unwrap();
    for role in ["keep", "r1", "r2"] {
        create(&env, "role", role);
    }
    for group in ["g1", "g2"] {
        create(&env, "group", group);
    }
    env.put(
        "user",
        json!({
            "default_roles": ["r1", "r2"],
            "anonymous_roles": ["r1"],
            "default_groups": ["g1", "g2"],
            "anonymous_groups": ["g2"]
        }),
    )
    .unwrap();
    env.put("demo", json!({"owner_role": "r1", "groups": ["g2"]}))
        .unwrap();
    let before = env.updated_events().len();

    delete(&env, "role", "r1");
    let user = env.get("user");
    assert_eq!(user["default_roles"], json!(["r2"]));
    assert_eq!(user["anonymous_roles"], json!([]));
    assert_eq!(
        user["default_groups"],
        json!(["g1", "g2"]),
        "groups untouched"
    );
    assert_eq!(
        env.get("demo"),
        json!({"owner_role": "keep", "groups": ["g2"]}),
        "a single reference falls back to its default"
    );
    let events = env.updated_events();
    assert_eq!(
        events[before..],
        [json!({"section": "demo"}), json!({"section": "user"})]
    );

    delete(&env, "group", "g2");
    let user = env.get("user");
    assert_eq!(user["default_groups"], json!(["g1"]));
    assert_eq!(user["anonymous_groups"], json!([]));
    assert_eq!(env.get("demo")["groups"], json!([]));
    assert_eq!(env.updated_events().len(), before + 4);

    // An id no document refers to: no change, no event.
    delete(&env, "group", "g1");
    assert_eq!(env.get("user")["default_groups"], json!([]));
    create(&env, "role", "unused");
    let count = env.updated_events().len();
    delete(&env, "role", "unused");
    assert_eq!(env.updated_events().len(), count);

    // The cleaned document is still valid: storing it again is a no-op.
    let out = env.put("user", env.get("user")).unwrap();
    assert_eq!(out["changed"], false);
    env.host.shutdown();
}
