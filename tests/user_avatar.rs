//! User avatars through the real host with the real plugin libraries:
//! setting, reading and removing avatars for oneself and as an
//! administrator, the image checks (type, magic number, size, base64),
//! authorization, `user.updated` events, and clean-up on user deletion.

use std::path::Path;

use serde_json::{json, Value};
use syshost::store::{SledStore, Store};
use syshost::{Host, SystemHandle};
use syshost_plugin_api::{codes, CallContext, PluginError};
use syshost_test_support::{library, PluginDir};

const PASSWORD: &str = "Tr0ub4dor&3-horse";
const MAX_BYTES: usize = 256 * 1024;

struct Env {
    host: Host,
    user: SystemHandle,
    _plugins: PluginDir,
}

fn start(data: &Path) -> Env {
    let plugins = PluginDir::systems_and(&[library("syshost-example-event-log")]);
    let host = Host::builder()
        .data_dir(data)
        .plugin_dir(plugins.path())
        .build()
        .expect("host builds");
    let report = host.activate_all(&["user".into(), "eventlog".into()]);
    assert!(report.is_ok(), "{report:?}");
    let user = host.system("user").expect("user is active");
    Env {
        host,
        user,
        _plugins: plugins,
    }
}

impl Env {
    /// Creates an account (as the host) holding `permissions` directly.
    fn create(&self, email: &str, permissions: &[&str]) -> String {
        let created: Value = self
            .user
            .call(
                "create",
                &json!({ "email": email, "password": PASSWORD, "permissions": permissions }),
            )
            .unwrap_or_else(|e| panic!("create {email}: {e:?}"));
        created["id"].as_str().unwrap().to_string()
    }

    fn ctx(&self, id: &str) -> CallContext {
        self.host.context_for(Some(id)).unwrap()
    }

    /// `user.op` as user `id` (`None`: anonymous).
    fn call_as(&self, id: Option<&str>, op: &str, req: Value) -> Result<Value, PluginError> {
        let ctx = match id {
            Some(id) => self.ctx(id),
            None => CallContext::default(),
        };
        self.user.call_as(&ctx, op, &req)
    }

    fn ok_as(&self, id: &str, op: &str, req: Value) -> Value {
        self.call_as(Some(id), op, req.clone())
            .unwrap_or_else(|e| panic!("user.{op}({req}) as {id}: {e:?}"))
    }

    fn fails_as(&self, id: Option<&str>, op: &str, req: Value) -> PluginError {
        match self.call_as(id, op, req.clone()) {
            Ok(v) => panic!("user.{op}({req}) as {id:?} succeeded: {v}"),
            Err(e) => e,
        }
    }

    /// `user.op` as the host.
    fn ok(&self, op: &str, req: Value) -> Value {
        self.user
            .call(op, &req)
            .unwrap_or_else(|e| panic!("user.{op}({req}): {e:?}"))
    }

    fn fails(&self, op: &str, req: Value) -> PluginError {
        match self.user.call::<_, Value>(op, &req) {
            Ok(v) => panic!("user.{op}({req}) succeeded: {v}"),
            Err(e) => e,
        }
    }

    fn get_user(&self, id: &str) -> Value {
        self.ok("get", json!({ "id": id }))
    }

    /// The `changes` of every `user.updated` event about `id`, oldest first.
    fn updates_of(&self, id: &str) -> Vec<Value> {
        let page: Value = self
            .host
            .system("eventlog")
            .unwrap()
            .call("list", &json!({ "limit": 500 }))
            .unwrap();
        let mut events = page["events"].as_array().unwrap().clone();
        events.reverse();
        events
            .into_iter()
            .filter(|e| e["topic"] == "user.updated" && e["payload"]["user_id"] == id)
            .map(|e| e["payload"]["changes"].clone())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.host.shutdown();
    }
}

// ---------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------

/// Standard base64 with padding (the tests' own encoder).
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn png() -> Vec<u8> {
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    b.extend_from_slice(b"\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0");
    b
}

fn jpeg() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend_from_slice(b"\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    b
}

fn webp() -> Vec<u8> {
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&26u32.to_le_bytes());
    b.extend_from_slice(b"WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0");
    b
}

/// A PNG of exactly `len` bytes.
fn png_of_len(len: usize) -> Vec<u8> {
    let mut b = png();
    b.resize(len, 0x42);
    b
}

fn set_req(content_type: &str, bytes: &[u8]) -> Value {
    json!({ "content_type": content_type, "data": b64(bytes) })
}

fn field(err: &PluginError) -> Option<&str> {
    err.details.as_ref()?.get("field")?.as_str()
}

fn assert_field(err: &PluginError, expected: &str) {
    assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
    assert_eq!(field(err), Some(expected), "{err:?}");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn own_avatar_set_get_delete() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    let bob = env.create("bob@example.com", &[]);
    assert_eq!(env.get_user(&ann)["avatar"], Value::Null);
    let before = env.get_user(&ann)["updated_at"].as_i64().unwrap();

    let user = env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    let info = json!({ "content_type": "image/png", "size": png().len() });
    assert_eq!(user["id"], ann);
    assert_eq!(user["avatar"], info);
    assert!(user["updated_at"].as_i64().unwrap() >= before);
    assert_eq!(env.get_user(&ann)["avatar"], info);
    assert_eq!(env.get_user(&bob)["avatar"], Value::Null);
    assert_eq!(env.ok_as(&ann, "me", json!({}))["user"]["avatar"], info);

    let expected = json!({ "content_type": "image/png", "data": b64(&png()), "size": png().len() });
    // The owner, any other logged-in user, and the host may read it.
    assert_eq!(
        env.ok_as(&ann, "get_avatar", json!({ "id": ann })),
        expected
    );
    assert_eq!(
        env.ok_as(&bob, "get_avatar", json!({ "id": ann })),
        expected
    );
    assert_eq!(env.ok("get_avatar", json!({ "id": ann })), expected);
    assert_eq!(env.updates_of(&ann), vec![json!(["avatar"])]);

    let user = env.ok_as(&ann, "delete_my_avatar", json!({}));
    assert_eq!(user["avatar"], Value::Null);
    assert_eq!(env.get_user(&ann)["avatar"], Value::Null);
    let err = env.fails_as(Some(&bob), "get_avatar", json!({ "id": ann }));
    assert_eq!(err.code, codes::NOT_FOUND, "{err:?}");
    assert!(err.message.contains("no avatar"), "{err:?}");
    assert_eq!(
        env.updates_of(&ann),
        vec![json!(["avatar"]), json!(["avatar"])]
    );

    // Deleting a missing avatar changes nothing and publishes nothing.
    let rev_before = env.get_user(&ann);
    let user = env.ok_as(&ann, "delete_my_avatar", json!({}));
    assert_eq!(user, rev_before);
    assert_eq!(env.updates_of(&ann).len(), 2);
    // Bob never had one.
    assert_eq!(
        env.fails_as(Some(&ann), "get_avatar", json!({ "id": bob }))
            .code,
        codes::NOT_FOUND
    );
}

#[test]
fn admin_sets_and_deletes_avatars_of_others() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let admin = env.create("admin@example.com", &["user.update"]);
    let ann = env.create("ann@example.com", &[]);

    let user = env.ok_as(
        &admin,
        "set_avatar",
        json!({ "id": ann, "content_type": "image/jpeg", "data": b64(&jpeg()) }),
    );
    assert_eq!(user["id"], ann);
    assert_eq!(
        user["avatar"],
        json!({ "content_type": "image/jpeg", "size": jpeg().len() })
    );
    assert_eq!(env.get_user(&admin)["avatar"], Value::Null);
    let got = env.ok_as(&ann, "get_avatar", json!({ "id": ann }));
    assert_eq!(got["data"], b64(&jpeg()));
    assert_eq!(got["content_type"], "image/jpeg");

    let user = env.ok_as(&admin, "delete_avatar", json!({ "id": ann }));
    assert_eq!(user["avatar"], Value::Null);
    assert_eq!(
        env.fails_as(Some(&ann), "get_avatar", json!({ "id": ann }))
            .code,
        codes::NOT_FOUND
    );

    // The host (system subject) may too.
    let user = env.ok(
        "set_avatar",
        json!({ "id": ann, "content_type": "image/webp", "data": b64(&webp()) }),
    );
    assert_eq!(user["avatar"]["content_type"], "image/webp");
    env.ok("delete_avatar", json!({ "id": ann }));
    assert_eq!(
        env.updates_of(&ann),
        vec![
            json!(["avatar"]),
            json!(["avatar"]),
            json!(["avatar"]),
            json!(["avatar"])
        ]
    );

    // Unknown users and malformed ids.
    let missing = "0123456789abcdef0123456789abcdef";
    for (op, req) in [
        (
            "set_avatar",
            json!({ "id": missing, "content_type": "image/png", "data": b64(&png()) }),
        ),
        ("delete_avatar", json!({ "id": missing })),
        ("get_avatar", json!({ "id": missing })),
    ] {
        assert_eq!(env.fails(op, req).code, codes::NOT_FOUND, "{op}");
    }
    assert_field(
        &env.fails(
            "set_avatar",
            json!({ "id": "Not An Id", "content_type": "image/png", "data": b64(&png()) }),
        ),
        "id",
    );
    assert_field(&env.fails("get_avatar", json!({ "id": "../x" })), "id");
    assert_field(&env.fails("delete_avatar", json!({ "id": "" })), "id");
}

#[test]
fn png_jpeg_and_webp_are_accepted_with_canonical_types() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    for (given, canonical, bytes) in [
        ("image/png", "image/png", png()),
        ("IMAGE/JPEG", "image/jpeg", jpeg()),
        (" image/webp ; q=1", "image/webp", webp()),
    ] {
        let user = env.ok_as(&ann, "set_my_avatar", set_req(given, &bytes));
        assert_eq!(
            user["avatar"],
            json!({ "content_type": canonical, "size": bytes.len() }),
            "{given}"
        );
        let got = env.ok_as(&ann, "get_avatar", json!({ "id": ann }));
        assert_eq!(
            got,
            json!({ "content_type": canonical, "data": b64(&bytes), "size": bytes.len() })
        );
    }
    // MIME-style line breaks in the base64 text are ignored.
    let encoded = b64(&png());
    let wrapped = format!("{}\n{}\r\n", &encoded[..12], &encoded[12..]);
    let user = env.ok_as(
        &ann,
        "set_my_avatar",
        json!({ "content_type": "image/png", "data": wrapped }),
    );
    assert_eq!(user["avatar"]["content_type"], "image/png");
    assert_eq!(env.updates_of(&ann).len(), 4);
}

#[test]
fn the_same_image_again_writes_nothing_and_a_new_one_of_equal_size_is_a_change() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    let first = env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    let again = env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    assert_eq!(first, again);
    assert_eq!(env.updates_of(&ann).len(), 1);

    // Same type and size, other pixels: stored and announced.
    let mut other = png();
    let last = other.len() - 1;
    other[last] ^= 0xFF;
    assert_eq!(other.len(), png().len());
    let user = env.ok_as(&ann, "set_my_avatar", set_req("image/png", &other));
    assert_eq!(user["avatar"], first["avatar"]);
    assert_eq!(
        env.ok_as(&ann, "get_avatar", json!({ "id": ann }))["data"],
        b64(&other)
    );
    assert_eq!(
        env.updates_of(&ann),
        vec![json!(["avatar"]), json!(["avatar"])]
    );
}

/// Sets Ann's avatar to a PNG, runs `check` (which must fail), and asserts
/// that nothing changed.
fn rejected_changes_nothing(env: &Env, ann: &str, check: impl FnOnce()) {
    let before = env.get_user(ann);
    let events = env.updates_of(ann).len();
    check();
    assert_eq!(env.get_user(ann), before);
    assert_eq!(
        env.ok_as(ann, "get_avatar", json!({ "id": ann }))["data"],
        b64(&png())
    );
    assert_eq!(env.updates_of(ann).len(), events);
}

#[test]
fn wrong_magic_number_is_rejected() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    rejected_changes_nothing(&env, &ann, || {
        for (ty, bytes) in [
            ("image/jpeg", png()),
            ("image/png", jpeg()),
            ("image/webp", png()),
            (
                "image/png",
                b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            ),
            ("image/webp", b"RIFF\0\0\0\0WAVEfmt ".to_vec()),
            ("image/jpeg", vec![0xFF, 0xD8]),
        ] {
            let err = env.fails_as(Some(&ann), "set_my_avatar", set_req(ty, &bytes));
            assert_field(&err, "data");
            assert!(err.message.contains(ty), "{err:?}");
            let err = env.fails(
                "set_avatar",
                json!({ "id": ann, "content_type": ty, "data": b64(&bytes) }),
            );
            assert_field(&err, "data");
        }
    });
}

#[test]
fn unsupported_content_types_are_rejected() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    rejected_changes_nothing(&env, &ann, || {
        for (ty, bytes) in [
            ("image/gif", b"GIF89a\x01\0\x01\0\0\0\0;".to_vec()),
            (
                "text/html",
                b"<html><script>alert(1)</script></html>".to_vec(),
            ),
            ("image/svg+xml", b"<svg/>".to_vec()),
            ("", png()),
            ("image/png2", png()),
        ] {
            let err = env.fails_as(Some(&ann), "set_my_avatar", set_req(ty, &bytes));
            assert_field(&err, "content_type");
            assert!(err.message.contains("image/png"), "{err:?}");
        }
    });
}

#[test]
fn images_over_256_kib_are_rejected() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    rejected_changes_nothing(&env, &ann, || {
        for len in [MAX_BYTES + 1, MAX_BYTES + 3, 2 * MAX_BYTES] {
            let err = env.fails_as(
                Some(&ann),
                "set_my_avatar",
                set_req("image/png", &png_of_len(len)),
            );
            assert_field(&err, "data");
            assert!(err.message.contains("262144"), "{err:?}");
        }
    });
    // Exactly 256 KiB is fine.
    let user = env.ok_as(
        &ann,
        "set_my_avatar",
        set_req("image/png", &png_of_len(MAX_BYTES)),
    );
    assert_eq!(user["avatar"]["size"], MAX_BYTES);
    let got = env.ok_as(&ann, "get_avatar", json!({ "id": ann }));
    assert_eq!(got["size"], MAX_BYTES);
    assert_eq!(got["data"], b64(&png_of_len(MAX_BYTES)));
}

#[test]
fn bad_base64_and_malformed_requests_are_rejected() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    rejected_changes_nothing(&env, &ann, || {
        let valid = b64(&png());
        for bad in [
            "not base64!".to_string(),
            format!("{valid}*"),
            valid.replace('=', ""),
            format!("{}-_", &valid[..valid.len() - 4]),
            "====".to_string(),
        ] {
            let err = env.fails_as(
                Some(&ann),
                "set_my_avatar",
                json!({ "content_type": "image/png", "data": bad }),
            );
            assert_field(&err, "data");
        }
        let err = env.fails_as(
            Some(&ann),
            "set_my_avatar",
            json!({ "content_type": "image/png", "data": "" }),
        );
        assert_field(&err, "data");
        assert!(err.message.contains("empty"), "{err:?}");
        let err = env.fails(
            "set_avatar",
            json!({ "id": ann, "content_type": "image/png", "data": "%%%" }),
        );
        assert_field(&err, "data");
        assert!(err.message.contains("base64"), "{err:?}");

        // Unknown, missing and mistyped fields.
        for req in [
            json!({ "content_type": "image/png", "data": valid, "id": ann }),
            json!({ "content_type": "image/png" }),
            json!({ "data": valid }),
            json!({ "content_type": "image/png", "data": 5 }),
        ] {
            let err = env.fails_as(Some(&ann), "set_my_avatar", req);
            assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
        }
        let err = env.fails_as(Some(&ann), "delete_my_avatar", json!({ "id": ann }));
        assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
        let err = env.fails_as(Some(&ann), "get_avatar", json!({}));
        assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
    });
}

#[test]
fn anonymous_callers_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    rejected_changes_nothing(&env, &ann, || {
        for (op, req) in [
            ("set_my_avatar", set_req("image/png", &jpeg())),
            ("delete_my_avatar", json!({})),
            ("get_avatar", json!({ "id": ann })),
            (
                "set_avatar",
                json!({ "id": ann, "content_type": "image/jpeg", "data": b64(&jpeg()) }),
            ),
            ("delete_avatar", json!({ "id": ann })),
        ] {
            let err = env.fails_as(None, op, req);
            assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err:?}");
        }
        // The host has no account of its own.
        for (op, req) in [
            ("set_my_avatar", set_req("image/jpeg", &jpeg())),
            ("delete_my_avatar", json!({})),
        ] {
            let err = env.fails(op, req);
            assert_eq!(err.code, codes::UNAUTHENTICATED, "{op}: {err:?}");
        }
    });
}

#[test]
fn users_without_user_update_cannot_change_other_avatars() {
    let data = tempfile::tempdir().unwrap();
    let env = start(data.path());
    let ann = env.create("ann@example.com", &[]);
    let eve = env.create("eve@example.com", &["user.read"]);
    env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
    rejected_changes_nothing(&env, &ann, || {
        let err = env.fails_as(
            Some(&eve),
            "set_avatar",
            json!({ "id": ann, "content_type": "image/jpeg", "data": b64(&jpeg()) }),
        );
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{err:?}");
        assert_eq!(
            err.details.as_ref().unwrap()["permission"],
            "user.update",
            "{err:?}"
        );
        let err = env.fails_as(Some(&eve), "delete_avatar", json!({ "id": ann }));
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{err:?}");
        // Not even their own through the admin operations.
        let err = env.fails_as(Some(&eve), "delete_avatar", json!({ "id": eve }));
        assert_eq!(err.code, codes::PERMISSION_DENIED, "{err:?}");
        // Reading is for every logged-in user.
        env.ok_as(&eve, "get_avatar", json!({ "id": ann }));
    });
    // Their own avatar is theirs to change.
    let user = env.ok_as(&eve, "set_my_avatar", set_req("image/jpeg", &jpeg()));
    assert_eq!(user["id"], eve);
    assert_eq!(
        env.ok_as(&ann, "get_avatar", json!({ "id": ann }))["data"],
        b64(&png())
    );
}

#[test]
fn deleting_a_user_removes_the_avatar_bytes() {
    let data = tempfile::tempdir().unwrap();
    let (ann, bob) = {
        let env = start(data.path());
        let ann = env.create("ann@example.com", &[]);
        let bob = env.create("bob@example.com", &[]);
        env.ok_as(&ann, "set_my_avatar", set_req("image/png", &png()));
        env.ok_as(&bob, "set_my_avatar", set_req("image/webp", &webp()));
        env.ok("delete", json!({ "id": ann }));
        let err = env.fails_as(Some(&bob), "get_avatar", json!({ "id": ann }));
        assert_eq!(err.code, codes::NOT_FOUND, "{err:?}");
        assert_eq!(
            env.ok_as(&bob, "get_avatar", json!({ "id": bob }))["data"],
            b64(&webp())
        );
        (ann, bob)
    };
    let store = SledStore::open(data.path()).unwrap();
    let ns = store.plugin_namespace("user").unwrap();
    let keys: Vec<String> = ns
        .scan(b"avatar/", None, false, 100)
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .filter(|k| k.starts_with("avatar/"))
        .collect();
    assert_eq!(keys, vec![format!("avatar/{bob}")]);
    assert!(ns
        .get(format!("avatar/{ann}").as_bytes())
        .unwrap()
        .is_none());
}

#[test]
fn avatars_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let ann = {
        let env = start(data.path());
        let ann = env.create("ann@example.com", &[]);
        env.ok_as(&ann, "set_my_avatar", set_req("image/jpeg", &jpeg()));
        ann
    };
    let env = start(data.path());
    assert_eq!(
        env.get_user(&ann)["avatar"],
        json!({ "content_type": "image/jpeg", "size": jpeg().len() })
    );
    assert_eq!(
        env.ok_as(&ann, "get_avatar", json!({ "id": ann })),
        json!({ "content_type": "image/jpeg", "data": b64(&jpeg()), "size": jpeg().len() })
    );
}

#[test]
fn the_test_encoder_is_standard_base64() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"f"), "Zg==");
    assert_eq!(b64(b"fo"), "Zm8=");
    assert_eq!(b64(b"foo"), "Zm9v");
    assert_eq!(b64(b"foob"), "Zm9vYg==");
    assert_eq!(b64(&[0xFB, 0xFF]), "+/8=");
}
