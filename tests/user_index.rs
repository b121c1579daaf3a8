//! `user.list` answers from the user plugin's in-memory index. These tests
//! drive the real host with the real plugin libraries through every kind of
//! write (create, import, contact/status/address/role/group changes, bulk
//! operations, deletes, role and group deletion) and compare every `list`
//! answer with the list semantics computed here from `user.export` (which
//! reads the store, not the index) — before and after the index is built,
//! after a restart (rebuild), and with writers racing the build.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use syshost::{Host, SystemHandle};
use syshost_test_support::PluginDir;

fn start(plugins: &PluginDir, data: &Path) -> (Host, SystemHandle) {
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let report = host.activate_all(&["user".into()]);
    assert!(report.is_ok(), "{report:?}");
    let user = host.system("user").expect("user is active");
    (host, user)
}

/// The wall clock in ms since the epoch (the host's clock).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn call(host: &Host, system: &str, op: &str, req: Value) -> Value {
    host.system(system)
        .unwrap()
        .call(op, &req)
        .unwrap_or_else(|e| panic!("{system}.{op}({req}): {e:?}"))
}

fn ok(user: &SystemHandle, op: &str, req: Value) -> Value {
    user.call(op, &req)
        .unwrap_or_else(|e| panic!("user.{op}({req}): {e:?}"))
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

const FIRST: &[&str] = &[
    "Anna", "Ölaf", "Jo", "Sofia", "Smithers", "Mia-Lou", "Émile",
];
const LAST: &[&str] = &["Smith", "Meyer", "Özdemir", "Ng", "Goldsmith", "Schmidt"];
const DOMAIN: &[&str] = &["example.com", "Example.ORG", "smith.io", "mail.de"];
const ROLES: &[&str] = &["editors", "viewers", "auditors"];
const GROUPS: &[&str] = &["berlin", "paris", "remote"];

/// Every user as `export` reads them from the store.
fn all_users(user: &SystemHandle) -> Vec<Value> {
    let out = ok(user, "export", json!({ "format": "json" }));
    serde_json::from_str(out["content"].as_str().unwrap()).unwrap()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_lowercase()
}

fn ids_of(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `list`'s documented semantics over `users`: (ids of the page, total).
fn expected(users: &[Value], req: &Value, now: i64) -> (Vec<String>, u64) {
    let search = req["search"]
        .as_str()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let mut matches: Vec<&Value> = users
        .iter()
        .filter(|u| {
            search.as_deref().is_none_or(|n| {
                text(&u["email"]).contains(n)
                    || text(&u["profile"]["first_name"]).contains(n)
                    || text(&u["profile"]["last_name"]).contains(n)
            })
        })
        .filter(|u| {
            let state = u["status"]["state"].as_str().unwrap();
            let until = u["status"]["until"].as_i64().unwrap_or(i64::MAX);
            match req["status"].as_str() {
                None => true,
                Some("enabled") => state != "disabled",
                Some("disabled") => state == "disabled",
                Some("expired") => state == "enabled_until" && now >= until,
                Some("active") => state != "disabled" && now < until,
                Some(other) => panic!("status {other}"),
            }
        })
        .filter(|u| {
            req["role"]
                .as_str()
                .is_none_or(|r| ids_of(&u["roles"]).contains(r))
        })
        .filter(|u| {
            req["group"]
                .as_str()
                .is_none_or(|g| ids_of(&u["groups"]).contains(g))
        })
        .collect();
    type Key = (String, String, String, i64, String);
    let key = |u: &Value| -> Key {
        (
            text(&u["profile"]["last_name"]),
            text(&u["profile"]["first_name"]),
            text(&u["email"]),
            u["created_at"].as_i64().unwrap(),
            u["id"].as_str().unwrap().to_string(),
        )
    };
    match req["sort"].as_str().unwrap_or("email") {
        "email" => matches.sort_by_cached_key(|u| {
            let k = key(u);
            (k.2, k.4)
        }),
        "name" => matches.sort_by_cached_key(|u| {
            let k = key(u);
            (k.0, k.1, k.2, k.4)
        }),
        "created_at" => matches.sort_by_cached_key(|u| {
            let k = key(u);
            (k.3, k.4)
        }),
        other => panic!("sort {other}"),
    }
    if req["order"] == "desc" {
        matches.reverse();
    }
    let offset = req["offset"].as_u64().unwrap_or(0) as usize;
    let limit = req["limit"].as_u64().unwrap_or(50) as usize;
    (
        matches
            .iter()
            .skip(offset)
            .take(limit)
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect(),
        matches.len() as u64,
    )
}

/// A random `list` request over the vocabulary the users are made of.
fn random_request(rng: &mut Rng) -> Value {
    let mut req = serde_json::Map::new();
    let search = [
        "", "", "smith", "SMITH", "ö", "a", "ex", " mey ", "@mail.", "o.z", "ém", "xyz", "mi",
    ];
    let s = rng.pick(&search);
    if !s.is_empty() {
        req.insert("search".into(), json!(s));
    }
    if rng.below(3) == 0 {
        let status = ["enabled", "disabled", "expired", "active"];
        req.insert("status".into(), json!(rng.pick(&status)));
    }
    if rng.below(4) == 0 {
        req.insert("role".into(), json!(rng.pick(ROLES)));
    }
    if rng.below(4) == 0 {
        req.insert("group".into(), json!(rng.pick(GROUPS)));
    }
    if rng.below(4) > 0 {
        let sorts = ["email", "name", "created_at"];
        req.insert("sort".into(), json!(rng.pick(&sorts)));
    }
    if rng.below(2) == 0 {
        req.insert("order".into(), json!(rng.pick(&["asc", "desc"])));
    }
    req.insert("offset".into(), json!([0, 0, 0, 2, 7, 40][rng.below(6)]));
    req.insert("limit".into(), json!([1, 3, 10, 50][rng.below(4)]));
    Value::Object(req)
}

/// Compares `n` random requests (and a fixed set) with the semantics.
fn compare(user: &SystemHandle, rng: &mut Rng, n: usize) {
    let users = all_users(user);
    let now = now_ms();
    let mut requests: Vec<Value> = (0..n).map(|_| random_request(rng)).collect();
    requests.push(json!({}));
    requests.push(json!({ "sort": "created_at", "order": "desc" }));
    requests.push(json!({ "sort": "name", "limit": 500 }));
    requests.push(json!({ "search": "smith", "sort": "email", "limit": 50 }));
    for req in requests {
        let page = ok(user, "list", req.clone());
        let got: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        let (want, total) = expected(&users, &req, now);
        assert_eq!(
            (got, page["total"].as_u64().unwrap()),
            (want, total),
            "list({req})"
        );
    }
}

fn random_profile(rng: &mut Rng) -> Value {
    let mut p = serde_json::Map::new();
    if rng.below(5) > 0 {
        p.insert("first_name".into(), json!(rng.pick(FIRST)));
    }
    if rng.below(5) > 0 {
        p.insert("last_name".into(), json!(rng.pick(LAST)));
    }
    Value::Object(p)
}

fn random_email(rng: &mut Rng, n: usize) -> String {
    let first = rng.pick(&["anna", "Olaf", "jo", "SMITH", "meyer", "x"]);
    format!("{first}.{n}@{}", rng.pick(DOMAIN))
}

fn random_set(rng: &mut Rng, from: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = (0..rng.below(3))
        .map(|_| rng.pick(from).to_string())
        .collect();
    set.into_iter().collect()
}

/// One random write through a real operation; `n` numbers new addresses.
fn random_write(user: &SystemHandle, rng: &mut Rng, n: &mut usize) {
    let users = all_users(user);
    let ids: Vec<String> = users
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    let some_id = |rng: &mut Rng| ids[rng.below(ids.len())].clone();
    *n += 1;
    match rng.below(12) {
        0 | 1 => {
            ok(
                user,
                "create",
                json!({
                    "email": random_email(rng, *n),
                    "profile": random_profile(rng),
                    "roles": random_set(rng, ROLES),
                    "groups": random_set(rng, GROUPS),
                }),
            );
        }
        2 => {
            let batch: Vec<Value> = (0..1 + rng.below(5))
                .map(|i| {
                    let status = match rng.below(4) {
                        0 => json!({ "state": "disabled" }),
                        // Imported accounts may have expired already.
                        2 => json!({ "state": "enabled_until", "until": 1_000 }),
                        1 => json!({ "state": "enabled_until", "until": now_ms() + 86_400_000 }),
                        _ => json!({ "state": "enabled" }),
                    };
                    json!({
                        "email": random_email(rng, *n * 10 + i),
                        "profile": random_profile(rng),
                        "status": status,
                        "roles": random_set(rng, ROLES),
                        "groups": random_set(rng, GROUPS),
                        "created_at": 1_000 + rng.below(5) as i64,
                    })
                })
                .collect();
            ok(user, "import", json!({ "users": batch }));
        }
        _ if ids.is_empty() => {}
        3 => {
            let id = some_id(rng);
            ok(
                user,
                "update_contact",
                json!({ "id": id, "profile": random_profile(rng) }),
            );
        }
        4 => {
            let status = match rng.below(3) {
                0 => json!({ "state": "disabled" }),
                1 => json!({ "state": "enabled_until", "until": now_ms() + 3_600_000 }),
                _ => json!({ "state": "enabled" }),
            };
            ok(
                user,
                "set_status",
                json!({ "id": some_id(rng), "status": status }),
            );
        }
        5 => {
            ok(
                user,
                "change_email",
                json!({ "id": some_id(rng), "email": random_email(rng, *n) }),
            );
        }
        6 => {
            ok(
                user,
                "set_roles",
                json!({ "id": some_id(rng), "roles": random_set(rng, ROLES) }),
            );
        }
        7 => {
            ok(
                user,
                "set_groups",
                json!({ "id": some_id(rng), "groups": random_set(rng, GROUPS) }),
            );
        }
        8 => {
            ok(user, "delete", json!({ "id": some_id(rng) }));
        }
        9 => {
            let pick: BTreeSet<String> = (0..3).map(|_| some_id(rng)).collect();
            ok(
                user,
                "bulk_set_status",
                json!({ "ids": pick, "state": rng.pick(&["enabled", "disabled"]) }),
            );
        }
        10 => {
            let pick: BTreeSet<String> = (0..2).map(|_| some_id(rng)).collect();
            ok(user, "bulk_delete", json!({ "ids": pick }));
        }
        _ => {
            // A failed write changes nothing: a taken address.
            let a = some_id(rng);
            let b = users[rng.below(users.len())]["email"].clone();
            let _ = user.call::<_, Value>("change_email", &json!({ "id": a, "email": b }));
        }
    }
}

fn setup_refs(host: &Host) {
    for id in ROLES {
        call(host, "role", "create", json!({ "id": id, "name": id }));
    }
    for id in GROUPS {
        call(host, "group", "create", json!({ "id": id, "name": id }));
    }
}

#[test]
fn list_follows_every_kind_of_write_and_a_restart() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut n = 0;
    {
        let (host, user) = start(&plugins, data.path());
        setup_refs(&host);
        // Writes before the first list (the index is not built yet).
        for _ in 0..25 {
            random_write(&user, &mut rng, &mut n);
        }
        compare(&user, &mut rng, 40);
        // Writes after it is built keep it current.
        for round in 0..12 {
            for _ in 0..8 {
                random_write(&user, &mut rng, &mut n);
            }
            compare(&user, &mut rng, 15);
            if round == 6 {
                // Deleting a role or group removes it from every holder.
                call(&host, "role", "delete", json!({ "id": "auditors" }));
                call(&host, "group", "delete", json!({ "id": "paris" }));
                compare(&user, &mut rng, 15);
                call(
                    &host,
                    "role",
                    "create",
                    json!({ "id": "auditors", "name": "A" }),
                );
                call(
                    &host,
                    "group",
                    "create",
                    json!({ "id": "paris", "name": "P" }),
                );
            }
        }
    }
    // A restart rebuilds the index from the store.
    let (_host, user) = start(&plugins, data.path());
    compare(&user, &mut rng, 60);
    for _ in 0..10 {
        random_write(&user, &mut rng, &mut n);
    }
    compare(&user, &mut rng, 20);
}

#[test]
fn writers_racing_the_first_list_leave_it_exact() {
    let plugins = PluginDir::systems_and(&[]);
    let data = tempfile::tempdir().unwrap();
    let (host, user) = start(&plugins, data.path());
    setup_refs(&host);
    let batch: Vec<Value> = (0..600)
        .map(|i| {
            json!({
                "email": format!("user{i}@example.com"),
                "profile": { "first_name": FIRST[i % FIRST.len()], "last_name": LAST[i % LAST.len()] },
                "roles": [ROLES[i % ROLES.len()]],
            })
        })
        .collect();
    let ids: Vec<String> = ok(&user, "import", json!({ "users": batch }))["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ids = Arc::new(ids);
    let host = Arc::new(host);
    // Writers change names, statuses and roles while readers trigger and
    // use the lazy build.
    let mut threads = Vec::new();
    for t in 0..4usize {
        let host = host.clone();
        let ids = ids.clone();
        threads.push(std::thread::spawn(move || {
            let user = host.system("user").unwrap();
            let mut rng = Rng(0x1234_5678 + t as u64 * 7919);
            for i in 0..60 {
                let id = &ids[rng.below(ids.len())];
                let req = match i % 3 {
                    0 => (
                        "update_contact",
                        json!({ "id": id, "profile": { "last_name": format!("Racer{t}x{i}") } }),
                    ),
                    1 => (
                        "set_status",
                        json!({ "id": id, "status": { "state": "disabled" } }),
                    ),
                    _ => (
                        "set_roles",
                        json!({ "id": id, "roles": [ROLES[i % ROLES.len()]] }),
                    ),
                };
                ok(&user, req.0, req.1);
            }
        }));
    }
    for t in 0..2u64 {
        let host = host.clone();
        threads.push(std::thread::spawn(move || {
            let user = host.system("user").unwrap();
            let mut rng = Rng(0xabc + t);
            for _ in 0..30 {
                let page = ok(&user, "list", random_request(&mut rng));
                assert!(page["total"].as_u64().is_some());
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let user = host.system("user").unwrap();
    let mut rng = Rng(99);
    compare(&user, &mut rng, 60);
    let racers = ok(&user, "list", json!({ "search": "racer", "limit": 500 }));
    assert!(racers["total"].as_u64().unwrap() > 0);
}
