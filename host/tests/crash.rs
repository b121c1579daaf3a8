//! Crash durability against the real binary: `syshost run` under write load
//! over HTTP (account creation, role changes, license seat assignments and
//! revocations, deletions) is killed with SIGKILL at random moments, then
//! restarted. After every restart: every acknowledged write is present, a
//! write whose answer never arrived is either fully there or not at all,
//! no deleted user holds a seat, every seat holder exists, the seat counter
//! equals the seats, and the host started without any repair step.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{admin_token, call, call_addr, client, Server};
use serde_json::{json, Value};
use syshost_test_support::PluginDir;

const ROUNDS: usize = 20;
const WORKERS: usize = 3;
const ROLES: [&str; 3] = ["crasha", "crashb", "crashc"];
const LICENSE: &str = "crashseat";

/// What the test knows about one account it created.
#[derive(Debug, Clone, Default)]
struct Known {
    round: usize,
    /// Acknowledged roles.
    roles: Vec<String>,
    /// Roles sent but not acknowledged (the server died).
    roles_maybe: Option<Vec<String>>,
    /// Acknowledged seat.
    seat: bool,
    /// Seat change sent but not acknowledged.
    seat_maybe: Option<bool>,
    /// Deletion acknowledged.
    deleted: bool,
    /// Deletion sent but not acknowledged.
    deleted_maybe: bool,
}

type Model = Arc<Mutex<BTreeMap<String, Known>>>;

/// xorshift64*: reproducible randomness from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One worker's load until the server dies.
fn load(addr: String, token: String, model: Model, worker: usize, round: usize, seed: u64) {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut rng = Rng(seed | 1);
    let call = |op: &str, req: &Value| call_addr(&c, &addr, op, Some(&token), req);
    // Any transport error means the server is gone: stop. Any other
    // non-success answer is a bug.
    macro_rules! expect_ok {
        ($result:expr, $what:expr) => {
            match $result {
                Ok((200, v)) => v,
                Ok((status, v)) => panic!("{} answered {status}: {v}", $what),
                Err(_) => return,
            }
        };
    }
    for i in 0.. {
        let email = format!("w{worker}-r{round}-{i}@example.test");
        let created = expect_ok!(
            call("user/create", &json!({ "email": email, "verified": true })),
            "user/create"
        );
        let id = created["id"].as_str().expect("id").to_string();
        model.lock().unwrap().insert(
            id.clone(),
            Known {
                round,
                ..Default::default()
            },
        );

        let roles: Vec<String> = ROLES
            .iter()
            .filter(|_| rng.below(2) == 0)
            .map(|r| r.to_string())
            .collect();
        model.lock().unwrap().get_mut(&id).unwrap().roles_maybe = Some(roles.clone());
        expect_ok!(
            call("user/set_roles", &json!({ "id": id, "roles": roles })),
            "user/set_roles"
        );
        {
            let mut m = model.lock().unwrap();
            let k = m.get_mut(&id).unwrap();
            k.roles = roles;
            k.roles_maybe = None;
        }

        model.lock().unwrap().get_mut(&id).unwrap().seat_maybe = Some(true);
        expect_ok!(
            call(
                "user/assign_license",
                &json!({ "id": id, "license_id": LICENSE })
            ),
            "user/assign_license"
        );
        {
            let mut m = model.lock().unwrap();
            let k = m.get_mut(&id).unwrap();
            k.seat = true;
            k.seat_maybe = None;
        }

        match rng.below(3) {
            0 => {
                model.lock().unwrap().get_mut(&id).unwrap().deleted_maybe = true;
                expect_ok!(call("user/delete", &json!({ "id": id })), "user/delete");
                let mut m = model.lock().unwrap();
                let k = m.get_mut(&id).unwrap();
                k.deleted = true;
                k.deleted_maybe = false;
            }
            1 => {
                model.lock().unwrap().get_mut(&id).unwrap().seat_maybe = Some(false);
                expect_ok!(
                    call(
                        "user/revoke_license",
                        &json!({ "id": id, "license_id": LICENSE })
                    ),
                    "user/revoke_license"
                );
                let mut m = model.lock().unwrap();
                let k = m.get_mut(&id).unwrap();
                k.seat = false;
                k.seat_maybe = None;
            }
            _ => {}
        }
    }
}

/// Every holder of the license seat, paged.
fn assignees(c: &reqwest::blocking::Client, s: &Server, token: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    loop {
        let (status, v) = call(
            c,
            s,
            "license/assignees",
            Some(token),
            &json!({ "license_id": LICENSE, "offset": out.len(), "limit": 500 }),
        );
        assert_eq!(status, 200, "{v}");
        let items = v["items"].as_array().unwrap();
        if items.is_empty() {
            return out;
        }
        out.extend(items.iter().map(|i| i.as_str().unwrap().to_string()));
        if out.len() as u64 >= v["total"].as_u64().unwrap() {
            return out;
        }
    }
}

/// Checks the known accounts of `rounds` (all when `None`) and the seat
/// invariants, and settles every uncertain write to what is on disk.
fn verify(s: &Server, token: &str, model: &Model, rounds: Option<BTreeSet<usize>>, seed: u64) {
    let c = client();
    let seats = assignees(&c, s, token);
    let mut m = model.lock().unwrap();
    for (id, k) in m.iter_mut() {
        if rounds.as_ref().is_some_and(|r| !r.contains(&k.round)) {
            continue;
        }
        let (status, v) = call(&c, s, "user/get", Some(token), &json!({ "id": id }));
        if status == 404 {
            assert!(
                k.deleted || k.deleted_maybe,
                "seed {seed}: acknowledged account {id} is gone: {k:?}"
            );
            k.deleted = true;
            k.deleted_maybe = false;
            assert!(
                !seats.contains(id),
                "seed {seed}: deleted user {id} still holds a seat"
            );
            continue;
        }
        assert_eq!(status, 200, "{v}");
        assert!(
            !k.deleted,
            "seed {seed}: acknowledged deletion of {id} was lost"
        );
        k.deleted_maybe = false;
        let mut roles: Vec<String> = v["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        roles.sort();
        let mut acked = k.roles.clone();
        acked.sort();
        let maybe = k.roles_maybe.clone().map(|mut r| {
            r.sort();
            r
        });
        assert!(
            roles == acked || Some(&roles) == maybe.as_ref(),
            "seed {seed}: roles of {id} are {roles:?}; acknowledged {acked:?}, in flight {maybe:?}"
        );
        k.roles = roles;
        k.roles_maybe = None;
        let has = seats.contains(id);
        assert!(
            has == k.seat || Some(has) == k.seat_maybe,
            "seed {seed}: seat of {id} is {has}; acknowledged {}, in flight {:?}",
            k.seat,
            k.seat_maybe
        );
        k.seat = has;
        k.seat_maybe = None;
    }
    drop(m);
    // No seat without its holder, and the counter matches the seats.
    for holder in &seats {
        let (status, v) = call(&c, s, "user/get", Some(token), &json!({ "id": holder }));
        assert_eq!(
            status, 200,
            "seed {seed}: seat held by missing user {holder}: {v}"
        );
    }
    let (status, v) = call(
        &c,
        s,
        "license/seats",
        Some(token),
        &json!({ "license_id": LICENSE }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["items"][0]["used"].as_u64(),
        Some(seats.len() as u64),
        "seed {seed}: seat counter disagrees with the seats: {v}"
    );
    for role in ROLES {
        let (status, v) = call(&c, s, "role/get", Some(token), &json!({ "id": role }));
        assert_eq!(status, 200, "seed {seed}: role {role} lost: {v}");
    }
}

#[test]
fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let model: Model = Arc::default();

    // Setup, acknowledged before the first crash.
    let server = Server::start(cwd.path(), plugins.path(), &[]);
    let c = client();
    let token = admin_token(&c, &server);
    for role in ROLES {
        let (status, v) = call(
            &c,
            &server,
            "role/create",
            Some(&token),
            &json!({ "id": role, "name": format!("Role {role}") }),
        );
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = call(
        &c,
        &server,
        "license/create_user_license",
        Some(&token),
        &json!({ "id": LICENSE, "name": "Crash seats", "max_users": 0 }),
    );
    assert_eq!(status, 200, "{v}");

    let mut server = Some(server);
    for round in 0..ROUNDS {
        let s = match server.take() {
            Some(s) => s,
            None => Server::start(cwd.path(), plugins.path(), &[]),
        };
        let token = admin_token(&c, &s);
        if round > 0 {
            verify(&s, &token, &model, Some(BTreeSet::from([round - 1])), seed);
        }
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (addr, token, model) = (s.addr.clone(), token.clone(), model.clone());
                let worker_seed = rng.next();
                std::thread::spawn(move || load(addr, token, model, w, round, worker_seed))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + rng.below(900)));
        s.kill();
        for w in workers {
            w.join().expect("a worker saw a bad answer");
        }
    }
    // Final restart: everything ever acknowledged, all rounds.
    let s = Server::start(cwd.path(), plugins.path(), &[]);
    let token = admin_token(&c, &s);
    verify(&s, &token, &model, None, seed);
    let m = model.lock().unwrap();
    let total = m.len();
    let deleted = m.values().filter(|k| k.deleted).count();
    let seated = m.values().filter(|k| k.seat).count();
    drop(m);
    eprintln!(
        "{ROUNDS} crashes: {total} accounts checked ({deleted} deleted, {seated} holding a seat)"
    );
    assert!(
        total >= ROUNDS,
        "the load made too few writes to mean anything"
    );
    s.stop();
}

#[test]
fn a_seat_left_behind_by_an_interrupted_deletion_is_freed_at_start() {
    // The state a crash between deleting a user and the license system's
    // `user.deleted` handler leaves: a seat whose holder does not exist.
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let s = Server::start(cwd.path(), plugins.path(), &[]);
    let c = client();
    let token = admin_token(&c, &s);
    let (status, v) = call(
        &c,
        &s,
        "license/create_user_license",
        Some(&token),
        &json!({ "id": LICENSE, "name": "Seats", "max_users": 2 }),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        &c,
        &s,
        "license/assign",
        Some(&token),
        &json!({ "license_id": LICENSE, "user_id": "ghost" }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(assignees(&c, &s, &token), BTreeSet::from(["ghost".into()]));
    s.kill();

    let s = Server::start(cwd.path(), plugins.path(), &[]);
    let token = admin_token(&c, &s);
    assert!(assignees(&c, &s, &token).is_empty());
    let (_, v) = call(
        &c,
        &s,
        "license/seats",
        Some(&token),
        &json!({ "license_id": LICENSE }),
    );
    assert_eq!(v["items"][0]["used"], 0, "{v}");
    assert!(
        s.log_text()
            .contains("freed 1 license seat(s) of deleted users"),
        "{}",
        s.log_text()
    );
    s.stop();
}

#[test]
fn a_role_left_on_users_by_an_interrupted_deletion_is_removed_at_start() {
    // The state a crash between deleting a role and the user system's
    // `role.deleted` handler leaves: users still hold the role's id.
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let s = Server::start(cwd.path(), plugins.path(), &[]);
    let c = client();
    let token = admin_token(&c, &s);
    let t = Some(token.as_str());
    // Ids that sort around each other in the membership index
    // (`role/temp-x/…` < `role/temp/…` < `role/temp0…`): start-up finds the
    // distinct ids by skipping from one id to the next.
    for (id, name) in [("temp", "Temp"), ("temp-x", "Temp-x"), ("tempkeep", "Kept")] {
        let (status, v) = call(&c, &s, "role/create", t, &json!({"id": id, "name": name}));
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = call(
        &c,
        &s,
        "user/create",
        t,
        &json!({"email": "holder@example.test", "verified": true, "roles": ["temp", "temp-x", "tempkeep"]}),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (status, v) = call(
        &c,
        &s,
        "user/create",
        t,
        &json!({"email": "other@example.test", "verified": true, "roles": ["temp-x"]}),
    );
    assert_eq!(status, 200, "{v}");
    let other = v["id"].as_str().unwrap().to_string();
    s.stop();
    {
        // The role system's half of the deletion, without the event.
        use syshost::store::{SledStore, Store};
        let store = SledStore::open(&common::data_dir(cwd.path())).unwrap();
        let roles = store.plugin_namespace("role").unwrap();
        for id in ["temp", "temp-x"] {
            assert!(roles.delete(format!("role/{id}").as_bytes()).unwrap());
            assert!(roles.delete(format!("name/{id}").as_bytes()).unwrap());
        }
        store.flush().unwrap();
    }

    let s = Server::start(cwd.path(), plugins.path(), &[]);
    let token = admin_token(&c, &s);
    let t = Some(token.as_str());
    let (_, v) = call(&c, &s, "user/get", t, &json!({ "id": id }));
    assert_eq!(v["roles"], json!(["tempkeep"]), "{v}");
    let (_, v) = call(&c, &s, "user/get", t, &json!({ "id": other }));
    assert_eq!(v["roles"], json!([]), "{v}");
    // A new role under the old id grants nothing to the former holder.
    let (status, v) = call(
        &c,
        &s,
        "role/create",
        t,
        &json!({"id": "temp", "name": "Temp"}),
    );
    assert_eq!(status, 200, "{v}");
    let (_, v) = call(&c, &s, "user/get", t, &json!({ "id": id }));
    assert_eq!(v["roles"], json!(["tempkeep"]), "{v}");
    assert!(
        s.log_text()
            .contains("removed deleted roles or groups from 3 user(s)"),
        "{}",
        s.log_text()
    );
    s.stop();
}
