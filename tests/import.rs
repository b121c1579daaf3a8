//! Bulk import (`user.import`) and the shared dataset generator
//! (`syshost::dataset`), through the real host with the real plugin
//! libraries and a real sled store.

use std::path::Path;

use serde_json::{json, Value};
use syshost::dataset;
use syshost::store::{BatchOp, SledStore, Store};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError, Subject};
use syshost_test_support::PluginDir;

const PASSWORD: &str = "imported-password-2026";

fn start(plugins: &PluginDir, data: &Path) -> (Host, SystemHandle) {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let user = host.activate("user").expect("user activates");
    (host, user)
}

fn total(user: &SystemHandle) -> u64 {
    let list: Value = user.call("list", &json!({"limit": 1})).expect("list");
    list["total"].as_u64().expect("total")
}

fn import(user: &SystemHandle, users: Value) -> Result<Value, PluginError> {
    user.call("import", &json!({ "users": users }))
}

fn field(e: &PluginError) -> &str {
    e.details
        .as_ref()
        .and_then(|d| d.get("field"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn authenticate(user: &SystemHandle, email: &str, password: &str) -> Result<Value, PluginError> {
    user.call(
        "authenticate",
        &json!({"email": email, "password": password}),
    )
}

#[test]
fn imported_users_keep_every_field_and_log_in_with_their_hash() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    dataset::prepare_references(&host).unwrap();
    let phc = dataset::hash_password(PASSWORD).unwrap();
    let created_at = 1_700_000_000_000i64;
    let answer = import(
        &user,
        json!([
            {
                "email": "Ada.Lovelace@Example.com",
                "password_hash": phc,
                "verified": true,
                "profile": {"first_name": "Ada", "last_name": "Lovelace", "city": "London"},
                "roles": ["editor"],
                "groups": ["sales", "finance"],
                "permissions": ["user.read"],
                "consents": {"terms": [{"action": "accepted", "at": created_at, "version": "1"}]},
                "created_at": created_at
            },
            {"email": "no.password@example.com", "status": {"state": "disabled"}}
        ]),
    )
    .unwrap();
    assert_eq!(answer["imported"], 2);
    let ids = answer["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);

    let ada: Value = user.call("get", &json!({"id": ids[0]})).unwrap();
    // The domain is lowercased; the local part keeps its case.
    assert_eq!(ada["email"], "Ada.Lovelace@example.com");
    assert_eq!(ada["email_verified"], true);
    assert_eq!(ada["require_password_change"], false);
    assert_eq!(ada["created_at"], created_at);
    assert_eq!(ada["password_changed_at"], created_at);
    assert_eq!(ada["profile"]["city"], "London");
    assert_eq!(ada["roles"], json!(["editor"]));
    assert_eq!(ada["groups"], json!(["finance", "sales"]));
    assert_eq!(ada["permissions"], json!(["user.read"]));
    assert_eq!(ada["consents"]["terms"][0]["action"], "accepted");
    // The hash was stored as given: the password works, another does not.
    let login = authenticate(&user, "ada.lovelace@example.com", PASSWORD).unwrap();
    assert_eq!(login["user_id"], ids[0]);
    assert!(authenticate(&user, "ada.lovelace@example.com", "wrong-password-123").is_err());
    // Membership indexes were written with the record.
    let sales: Value = user.call("list", &json!({"group": "sales"})).unwrap();
    assert_eq!(sales["total"], 1);

    let other: Value = user.call("get", &json!({"id": ids[1]})).unwrap();
    assert_eq!(other["status"]["state"], "disabled");
    assert_eq!(other["require_password_change"], true);
    assert_eq!(other["password_changed_at"], Value::Null);

    // Stored durably: a new host on the same directory sees both.
    host.shutdown();
    drop(user);
    drop(host);
    let (host, user) = start(&plugins, data.path());
    assert_eq!(total(&user), 2);
    host.shutdown();
}

#[test]
fn one_bad_item_rejects_the_whole_batch_naming_it() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let phc = dataset::hash_password(PASSWORD).unwrap();
    let good = |i: u32| json!({"email": format!("u{i}@example.com"), "password_hash": phc});

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!([good(1), good(2), {"email": "not an address"}]),
            codes::INVALID_INPUT,
            "users[2].email",
        ),
        (
            json!([good(1), {"email": "U1@example.com"}]),
            codes::INVALID_INPUT,
            "users[1].email",
        ),
        (
            json!([good(1), {"email": "x@example.com", "password_hash": "$2b$12$notargon2hashatall"}]),
            codes::INVALID_INPUT,
            "users[1].password_hash",
        ),
        (
            json!([good(1), {"email": "x@example.com", "roles": ["no-such-role"]}]),
            codes::INVALID_INPUT,
            "roles",
        ),
        (
            json!([{"email": "x@example.com", "consents": {"unknown": []}}]),
            codes::INVALID_INPUT,
            "users[0].consents",
        ),
        (
            json!([{"email": "x@example.com", "created_at": 99_999_999_999_999i64}]),
            codes::INVALID_INPUT,
            "users[0].created_at",
        ),
        (
            json!([{"email": "x@example.com", "profile": {"phone": "call me"}}]),
            codes::INVALID_INPUT,
            "users[0].profile.phone",
        ),
        (json!([]), codes::INVALID_INPUT, "users"),
    ];
    for (users, code, expected) in cases {
        let e = import(&user, users.clone()).unwrap_err();
        assert_eq!(e.code, code, "{users}: {e:?}");
        assert!(
            field(&e).ends_with(expected),
            "{users}: field {} should name {expected}: {e:?}",
            field(&e)
        );
        assert!(!e.message.contains("$2b$"), "no hash echoed: {e:?}");
        assert_eq!(total(&user), 0, "nothing stored for {users}");
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"email": format!("m{i}@example.com")}))
        .collect();
    let e = import(&user, json!(too_many)).unwrap_err();
    assert_eq!(field(&e), "users");

    // A taken address is a conflict naming the item; nothing of the batch
    // is stored.
    import(&user, json!([good(1)])).unwrap();
    let e = import(&user, json!([good(5), good(6), good(1)])).unwrap_err();
    assert_eq!(e.code, codes::CONFLICT, "{e:?}");
    assert_eq!(field(&e), "users[2].email");
    assert_eq!(total(&user), 1);
    host.shutdown();
}

#[test]
fn one_import_is_one_summary_event_that_the_audit_trail_records() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let audit = host.activate("audit").expect("audit activates");
    let audit_entries = |action: &str| -> Vec<Value> {
        let page: Value = audit
            .call("list", &json!({"action": action, "limit": 500}))
            .expect("audit list");
        page["items"].as_array().expect("items").clone()
    };
    let phc = dataset::hash_password(PASSWORD).unwrap();
    let batch = |from: u32, n: u32| -> Value {
        (from..from + n)
            .map(|i| json!({"email": format!("i{i}@example.com"), "password_hash": phc}))
            .collect()
    };
    let first = import(&user, batch(0, 3)).unwrap();
    let second = import(&user, batch(3, 2)).unwrap();

    // One `user.imported` entry per call, naming every new id in request
    // order; no per-user `user.created`.
    let imported = audit_entries("user.imported");
    assert_eq!(imported.len(), 2, "{imported:?}");
    // Newest first.
    assert_eq!(imported[0]["details"]["user_ids"], second["ids"]);
    assert_eq!(imported[0]["details"]["count"], 2);
    assert_eq!(imported[1]["details"]["user_ids"], first["ids"]);
    assert_eq!(imported[1]["details"]["count"], 3);
    assert_eq!(imported[1]["outcome"], "success");
    assert_eq!(imported[1]["actor"], "system");
    assert!(audit_entries("user.created").is_empty());

    // A refused batch publishes nothing and stores nothing: the duplicate
    // (in another letter case) is named by its row.
    let e = import(
        &user,
        json!([
            {"email": "fresh@example.com"},
            {"email": "I1@EXAMPLE.com", "password_hash": phc}
        ]),
    )
    .unwrap_err();
    assert_eq!(e.code, codes::CONFLICT, "{e:?}");
    assert_eq!(field(&e), "users[1].email");
    assert!(e.message.contains("already in use"), "{e:?}");
    assert_eq!(total(&user), 5);
    assert_eq!(audit_entries("user.imported").len(), 2);
    let fresh: Value = user
        .call("list", &json!({"search": "fresh@", "limit": 1}))
        .unwrap();
    assert_eq!(fresh["total"], 0, "nothing of the refused batch: {fresh}");

    // Subjects of imported users resolve at once (the event cleared any
    // cached answer), and imported users log in.
    let id = first["ids"][1].as_str().unwrap();
    let subject = host.subject(Some(id)).expect("subject");
    assert!(
        matches!(subject.subject(), Subject::User(u) if u.id == id),
        "{:?}",
        subject.subject()
    );
    authenticate(&user, "i1@example.com", PASSWORD).unwrap();

    // Everything survives a restart: records, indexes, audit entries.
    host.shutdown();
    drop((user, audit, host));
    let (host, user) = start(&plugins, data.path());
    assert_eq!(total(&user), 5);
    let by_email: Value = user
        .call("list", &json!({"search": "i4@example.com"}))
        .unwrap();
    assert_eq!(by_email["items"][0]["id"], second["ids"][1]);
    authenticate(&user, "i4@example.com", PASSWORD).unwrap();
    let audit = host.activate("audit").expect("audit activates");
    let page: Value = audit
        .call("list", &json!({"action": "user.imported"}))
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    host.shutdown();
}

/// The keys of the user namespace, straight from the store (host stopped).
fn user_keys(data: &Path, prefix: &str) -> Vec<String> {
    let store = SledStore::open(data).unwrap();
    let ns = store.plugin_namespace("user").unwrap();
    let end = format!("{prefix}\u{7f}");
    ns.scan(prefix.as_bytes(), Some(end.as_bytes()), false, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect()
}

#[test]
fn new_ids_are_time_ordered_and_stores_from_before_them_keep_working() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    dataset::prepare_references(&host).unwrap();
    let phc = dataset::hash_password(PASSWORD).unwrap();
    let batch = |from: u32, n: u32| -> Value {
        (from..from + n)
            .map(|i| json!({"email": format!("t{i}@example.com"), "password_hash": phc, "groups": ["sales"]}))
            .collect()
    };
    let first = import(&user, batch(0, 3)).unwrap();
    let created: Value = user
        .call(
            "create",
            &json!({"email": "single@example.com", "password": PASSWORD}),
        )
        .unwrap();
    let second = import(&user, batch(3, 2)).unwrap();
    // Ids sort in the order they were issued, across calls and operations.
    let mut issued: Vec<String> = first["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    issued.push(created["id"].as_str().expect("created id").to_string());
    issued.extend(
        second["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string()),
    );
    for pair in issued.windows(2) {
        assert!(pair[0] < pair[1], "{pair:?}");
    }
    for id in &issued {
        assert_eq!(id.len(), 26, "{id}");
    }
    let template: Value = user.call("get", &json!({"id": issued[0]})).unwrap();
    host.shutdown();
    drop((user, host));

    // New accounts get no creation-order key.
    assert_eq!(user_keys(data.path(), "created/"), Vec::<String>::new());
    // An account as older versions stored it: a 32-hex-digit id, a
    // `created/` key, created before everyone else; and an account whose
    // time-ordered id lies far in the future (a clock that was ahead).
    let old_id = "00ff00ff00ff00ff00ff00ff00ff00ff";
    let future_id = "k000000000000000000000000a";
    let old_created = 1_600_000_000_000i64;
    {
        let store = SledStore::open(data.path()).unwrap();
        let ns = store.plugin_namespace("user").unwrap();
        let cred = ns
            .get(format!("cred/{}", issued[0]).as_bytes())
            .unwrap()
            .unwrap();
        for (id, email, at) in [
            (old_id, "old@example.com", old_created),
            (future_id, "future@example.com", old_created + 1),
        ] {
            let mut record = template.clone();
            let record = record.as_object_mut().unwrap();
            record.remove("active");
            record.insert("id".into(), json!(id));
            record.insert("email".into(), json!(email));
            record.insert("created_at".into(), json!(at));
            record.insert("updated_at".into(), json!(at));
            record.insert("rev".into(), json!(0));
            let ops = vec![
                BatchOp::Put(
                    format!("user/{id}").into_bytes(),
                    serde_json::to_vec(record).unwrap(),
                ),
                BatchOp::Put(
                    format!("email/{email}").into_bytes(),
                    id.as_bytes().to_vec(),
                ),
                BatchOp::Put(format!("created/{at:016x}/{id}").into_bytes(), Vec::new()),
                BatchOp::Put(format!("group/sales/{id}").into_bytes(), Vec::new()),
                BatchOp::Put(format!("cred/{id}").into_bytes(), cred.clone()),
            ];
            assert_eq!(ns.batch(&ops).unwrap(), None);
        }
        store.flush().unwrap();
    }

    let (host, user) = start(&plugins, data.path());
    assert_eq!(total(&user), 8);
    // The old account lists, sorts by creation time, logs in and exports.
    let oldest: Value = user
        .call("list", &json!({"sort": "created_at", "limit": 2}))
        .unwrap();
    assert_eq!(oldest["items"][0]["id"], old_id, "{oldest}");
    assert_eq!(oldest["items"][1]["id"], future_id, "{oldest}");
    let sales: Value = user.call("list", &json!({"group": "sales"})).unwrap();
    assert_eq!(sales["total"], 7);
    assert_eq!(
        authenticate(&user, "old@example.com", PASSWORD).unwrap()["user_id"],
        old_id
    );
    let export: Value = user.call("export", &json!({"format": "json"})).unwrap();
    assert_eq!(export["count"], 8);
    // The generator continues above the greatest stored id.
    let third = import(&user, batch(5, 2)).unwrap();
    let next = third["ids"][0].as_str().unwrap();
    assert!(next > future_id, "{next} after {future_id}");
    // Deleting the old account removes its legacy key too.
    let _: Value = user.call("delete", &json!({"id": old_id})).unwrap();
    assert_eq!(total(&user), 9);
    host.shutdown();
    drop((user, host));
    assert_eq!(
        user_keys(data.path(), "created/"),
        vec![format!("created/{:016x}/{future_id}", old_created + 1)]
    );
}

#[test]
fn import_needs_the_create_permission() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let users = json!({"users": [{"email": "a@example.com"}]});
    let anonymous = CallContext::for_subject(Subject::Anonymous {
        permissions: Default::default(),
    });
    let e = user
        .call_as::<_, Value>(&anonymous, "import", &users)
        .unwrap_err();
    assert_eq!(e.code, codes::UNAUTHENTICATED, "{e:?}");
    assert_eq!(total(&user), 0);
    host.shutdown();
}

#[test]
fn the_generator_is_deterministic_realistic_and_imports_in_batches() {
    let first = dataset::generated_user(7, 42, 1_800_000_000_000, "h");
    assert_eq!(
        first,
        dataset::generated_user(7, 42, 1_800_000_000_000, "h")
    );
    assert_ne!(
        first,
        dataset::generated_user(8, 42, 1_800_000_000_000, "h")
    );
    for key in [
        "email",
        "profile",
        "roles",
        "groups",
        "consents",
        "created_at",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }

    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    // 2 500 users: three import batches (1000 + 1000 + 500).
    let report = dataset::seed(&host, 2_500, 7, PASSWORD).unwrap();
    assert_eq!(report.imported, 2_500);
    assert_eq!(report.batches, 3);
    assert_eq!(total(&user), 2_500);

    let viewers: Value = user
        .call("list", &json!({"role": "viewer", "limit": 1}))
        .unwrap();
    assert_eq!(viewers["total"], 2_500, "every generated user is a viewer");
    let editors: Value = user
        .call("list", &json!({"role": "editor", "limit": 1}))
        .unwrap();
    let editors = editors["total"].as_u64().unwrap();
    assert!((50..1_000).contains(&editors), "some editors: {editors}");
    let disabled: Value = user
        .call("list", &json!({"status": "disabled", "limit": 1}))
        .unwrap();
    assert!(disabled["total"].as_u64().unwrap() > 0);
    let page: Value = user
        .call(
            "list",
            &json!({"search": "smith", "sort": "name", "limit": 5}),
        )
        .unwrap();
    assert!(page["total"].as_u64().unwrap() > 10, "{page}");
    assert_eq!(
        page["items"][0]["consents"]["terms"][0]["action"],
        "accepted"
    );

    // Every generated user logs in with the seed password.
    let email = dataset::generated_user(7, 1_234, 0, "h")["email"]
        .as_str()
        .unwrap()
        .to_string();
    authenticate(&user, &email, PASSWORD).unwrap();

    // Seeding the same dataset again collides on the first address: the
    // first batch is refused whole and nothing more is stored.
    let e = dataset::seed(&host, 10, 7, PASSWORD).unwrap_err();
    assert!(e.contains("line 1") && e.contains("already in use"), "{e}");
    assert_eq!(total(&user), 2_500);
    host.shutdown();
}

#[test]
fn import_files_are_read_line_by_line_with_line_numbers() {
    let text = "# comment\n{\"email\": \"a@example.com\"}\n\n[1]\n";
    let items: Vec<Result<(usize, Value), String>> =
        dataset::read_lines(std::io::Cursor::new(text)).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().0, 2);
    assert!(items[1].as_ref().unwrap_err().starts_with("line 4:"));

    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    let lines = "{\"email\": \"a@example.com\"}\n{\"email\": \"b@example.com\"}\n{\"email\": \"c@example.com\"}\n{\"email\": \"bad\"}\n";
    // Batches of 2: lines 1-2 are stored, the batch with line 4 is not.
    let e = dataset::import_items(&user, dataset::read_lines(std::io::Cursor::new(lines)), 2)
        .unwrap_err();
    assert_eq!(e.done.imported, 2);
    assert!(e.message.starts_with("line 4:"), "{e}");
    assert_eq!(total(&user), 2);
    host.shutdown();
}
