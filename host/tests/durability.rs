//! Data-directory safety and backups, against the real binary: damaged,
//! foreign and newer data directories and a second `syshost` on the same
//! directory each fail with a clear error and exit code 1 (never a panic);
//! `syshost backup` works offline and through a running host's admin
//! socket; `syshost restore` fills only an empty data directory and
//! round-trips every tree of the store.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{admin_token, call, client, data_dir, run, text, Server};
use serde_json::json;
use syshost::store::{SledStore, Store, TreeDump, FORMAT_VERSION};
use syshost_test_support::PluginDir;

/// Exit code 1, the expected message, and no panic.
fn assert_clean_failure(out: &Output, expected: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected '{expected}' in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Every tree of the stopped store in `data`.
fn dump(data: &Path) -> Vec<TreeDump> {
    SledStore::open(data).unwrap().export().unwrap()
}

#[test]
fn damaged_foreign_and_newer_data_directories_are_refused() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let data = data_dir(cwd.path());
    let store = data.join("store");

    // Garbage in the store directory: refused, and left untouched.
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("conf"), b"this is not sled").unwrap();
    std::fs::write(store.join("db"), b"nor is this").unwrap();
    for args in [&["run"][..], &["systems"], &["backup", "x.bak"]] {
        let out = run(cwd.path(), plugins.path(), args, &[]);
        assert_clean_failure(&out, "is not a readable syshost store");
    }
    assert_eq!(std::fs::read(store.join("db")).unwrap(), b"nor is this");

    // Files of some other program, without sled's settings file.
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("notes.txt"), b"hello").unwrap();
    let out = run(cwd.path(), plugins.path(), &["run"], &[]);
    assert_clean_failure(&out, "no readable sled 'conf' file");

    // The data directory is a file.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::write(&data, b"a file").unwrap();
    let out = run(cwd.path(), plugins.path(), &["run"], &[]);
    assert_clean_failure(&out, "is not a readable syshost store");
    std::fs::remove_file(&data).unwrap();

    // A store stamped by a newer syshost.
    {
        let s = SledStore::open(&data).unwrap();
        s.host_namespace("meta")
            .unwrap()
            .put(b"format_version", &(FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        s.flush().unwrap();
    }
    let out = run(cwd.path(), plugins.path(), &["run"], &[]);
    assert_clean_failure(&out, "written by a newer syshost");
    let out = run(cwd.path(), plugins.path(), &["backup", "x.bak"], &[]);
    assert_clean_failure(&out, "written by a newer syshost");
}

#[test]
fn a_second_syshost_on_the_same_data_directory_is_refused() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), plugins.path(), &[]);
    let out = run(cwd.path(), plugins.path(), &["run"], &[]);
    assert_clean_failure(&out, "is in use by another syshost process");
    let out = run(cwd.path(), plugins.path(), &["systems"], &[]);
    assert_clean_failure(&out, "is in use by another syshost process");
    // The first one is unharmed.
    let c = client();
    admin_token(&c, &server);
    server.stop();
}

/// Writes something into every plugin namespace and leaves mail queued
/// (the SMTP server is unreachable).
fn populate(server: &Server) {
    let c = client();
    let token = admin_token(&c, server);
    let t = Some(token.as_str());
    for (op, req) in [
        ("role/create", json!({"id": "editor", "name": "Editor"})),
        ("group/create", json!({"id": "staff", "name": "Staff"})),
        (
            "license/create_user_license",
            json!({"id": "pro", "name": "Pro", "max_users": 5}),
        ),
        (
            "settings/put",
            json!({"section": "user", "document": {"self_registration": true}}),
        ),
    ] {
        let (status, v) = call(&c, server, op, t, &req);
        assert_eq!(status, 200, "{op}: {v}");
    }
    // No password: the account gets a mailed code, which stays queued.
    let (status, v) = call(
        &c,
        server,
        "user/create",
        t,
        &json!({"email": "kept@example.test", "roles": ["editor"], "groups": ["staff"]}),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (status, v) = call(
        &c,
        server,
        "user/assign_license",
        t,
        &json!({"id": id, "license_id": "pro"}),
    );
    assert_eq!(status, 200, "{v}");
}

fn backup(cwd: &Path, plugins: &PluginDir, file: &str) -> String {
    let out = run(cwd, plugins.path(), &["backup", file], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mode = std::fs::metadata(cwd.join(file))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "backups hold password hashes");
    text(&out.stdout)
}

fn restore_into(file: &Path, plugins: &PluginDir) -> tempfile::TempDir {
    let target = tempfile::tempdir().unwrap();
    let out = run(
        target.path(),
        plugins.path(),
        &["restore", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    target
}

#[test]
fn backup_and_restore_round_trip_every_tree_offline_and_through_the_socket() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let unreachable_smtp = [("SYSHOST_SMTP_URL", "smtp://127.0.0.1:9")];
    let server = Server::start(cwd.path(), plugins.path(), &unreachable_smtp);
    populate(&server);

    // Running: the admin socket is owner-only, in an owner-only directory.
    let admin = data_dir(cwd.path()).join("admin");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&admin), 0o700);
    assert_eq!(mode(&admin.join("admin.sock")), 0o600);
    let said = backup(cwd.path(), &plugins, "online.bak");
    assert!(said.contains("from the running host"), "{said}");
    server.stop();
    assert!(!admin.join("admin.sock").exists());

    let said = backup(cwd.path(), &plugins, "offline.bak");
    assert!(said.contains("from the stopped data directory"), "{said}");

    let original = dump(&data_dir(cwd.path()));
    let names: Vec<&str> = original.iter().map(|t| t.name.as_str()).collect();
    for tree in [
        "host/mail_queue",
        "host/meta",
        "plugin/group",
        "plugin/license",
        "plugin/role",
        "plugin/session",
        "plugin/settings",
        "plugin/user",
    ] {
        let t = original.iter().find(|t| t.name == tree);
        assert!(
            t.is_some_and(|t| !t.pairs.is_empty()),
            "{tree} should hold data; trees: {names:?}"
        );
    }

    // Offline backup: an exact copy.
    let restored = restore_into(&cwd.path().join("offline.bak"), &plugins);
    assert_eq!(dump(&data_dir(restored.path())), original);

    // Through the socket: exact too, except that the mail worker may have
    // counted another delivery attempt since.
    let restored = restore_into(&cwd.path().join("online.bak"), &plugins);
    let copy = dump(&data_dir(restored.path()));
    assert_eq!(copy.len(), original.len());
    for (a, b) in copy.iter().zip(&original) {
        assert_eq!(a.name, b.name);
        if a.name == "host/mail_queue" {
            let keys = |t: &TreeDump| t.pairs.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b));
        } else {
            assert_eq!(a, b, "tree {} differs", a.name);
        }
    }

    // The restored host serves the restored accounts.
    let server = Server::start(restored.path(), plugins.path(), &unreachable_smtp);
    let c = client();
    let token = admin_token(&c, &server);
    let (status, v) = call(
        &c,
        &server,
        "user/list",
        Some(&token),
        &json!({"search": "kept@example.test"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    server.stop();
}

#[test]
fn restore_refuses_a_non_empty_data_directory_and_a_damaged_file() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let out = run(cwd.path(), plugins.path(), &["systems"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    backup(cwd.path(), &plugins, "full.bak");
    let before = dump(&data_dir(cwd.path()));

    // Into the data directory it came from: refused, nothing changes.
    let out = run(cwd.path(), plugins.path(), &["restore", "full.bak"], &[]);
    assert_clean_failure(&out, "is not empty");
    assert_eq!(dump(&data_dir(cwd.path())), before);

    // A damaged copy is refused before anything is created.
    let mut bytes = std::fs::read(cwd.path().join("full.bak")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(cwd.path().join("damaged.bak"), &bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    let damaged = cwd.path().join("damaged.bak");
    let out = run(
        target.path(),
        plugins.path(),
        &["restore", damaged.to_str().unwrap()],
        &[],
    );
    assert_clean_failure(&out, "checksum mismatch");
    assert!(!data_dir(target.path()).exists());

    // Not a backup at all.
    let out = run(
        target.path(),
        plugins.path(),
        &["restore", "/etc/hostname"],
        &[],
    );
    assert_clean_failure(&out, "not a syshost backup file");

    // Backing up a data directory that does not exist.
    let out = run(target.path(), plugins.path(), &["backup", "x.bak"], &[]);
    assert_clean_failure(&out, "there is no syshost store");
}

#[test]
fn backups_taken_under_write_load_are_consistent() {
    // Writers create accounts and take license seats while backups are
    // taken through the socket; every restored copy must have seat counters
    // equal to its seats and a holder for every seat.
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), plugins.path(), &[]);
    let c = client();
    let token = admin_token(&c, &server);
    let (status, v) = call(
        &c,
        &server,
        "license/create_user_license",
        Some(&token),
        &json!({"id": "seat", "name": "Seat", "max_users": 0}),
    );
    assert_eq!(status, 200, "{v}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (addr, token, stop) = (server.addr.clone(), token.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let email = format!("w{w}-{n}@example.test");
                    let (status, v) = common::call_addr(
                        &c,
                        &addr,
                        "user/create",
                        Some(&token),
                        &json!({"email": email, "verified": true}),
                    )
                    .unwrap();
                    assert_eq!(status, 200, "{v}");
                    let id = v["id"].as_str().unwrap().to_string();
                    let (status, v) = common::call_addr(
                        &c,
                        &addr,
                        "user/assign_license",
                        Some(&token),
                        &json!({"id": id, "license_id": "seat"}),
                    )
                    .unwrap();
                    assert_eq!(status, 200, "{v}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut files = Vec::new();
    for i in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let name = format!("load{i}.bak");
        backup(cwd.path(), &plugins, &name);
        files.push(cwd.path().join(name));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(written > 0);
    server.stop();

    let mut seen = Vec::new();
    for file in &files {
        let restored = restore_into(file, &plugins);
        let s = Server::start(restored.path(), plugins.path(), &[]);
        let token = admin_token(&c, &s);
        let t = Some(token.as_str());
        let (_, seats) = call(&c, &s, "license/seats", t, &json!({"license_id": "seat"}));
        let (_, holders) = call(
            &c,
            &s,
            "license/assignees",
            t,
            &json!({"license_id": "seat", "limit": 500}),
        );
        let used = seats["items"][0]["used"].as_u64().unwrap();
        assert_eq!(holders["total"].as_u64(), Some(used), "{seats} {holders}");
        for holder in holders["items"].as_array().unwrap() {
            let (status, v) = call(&c, &s, "user/get", t, &json!({"id": holder}));
            assert_eq!(status, 200, "seat without its holder: {v}");
        }
        seen.push(used);
        // Restoring the same file never trips the start-up repairs.
        assert!(!s.log_text().contains("freed"), "{}", s.log_text());
        s.stop();
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "backups went back in time: {seen:?}"
    );
}
