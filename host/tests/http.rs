//! The HTTP API, black-box against the real `syshost run` binary with the
//! real system plugins: routes, errors, authentication (bearer and cookie),
//! CSRF, limits, security headers, OpenAPI, and restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use syshost_test_support::PluginDir;

/// Starts the server (see [`start`]) and logs the administrator in: the
/// server, a client and the administrator's session token.
fn server_with_admin(
    cwd: &Path,
    plugins: &PluginDir,
    env: &[(&str, &str)],
) -> (Server, Client, String) {
    let server = start(cwd, plugins, env);
    let c = client();
    let admin = login(&c, &server, ADMIN_EMAIL, ADMIN_PASSWORD);
    (server, c, admin)
}

/// Creates a user with a confirmed `email` and `password` as the
/// administrator (asserting success) and returns its id.
fn create_user(c: &Client, s: &Server, admin: &str, email: &str, password: &str) -> String {
    let (status, _, user) = body(post(
        c,
        s,
        "/api/v1/user/create",
        Some(admin),
        &json!({"email": email, "password": password, "verified": true}),
    ));
    assert_eq!(status, 200, "{user}");
    user["id"].as_str().expect("user id").to_string()
}

/// A user the administrator created, logged in.
struct TestUser {
    /// Its id.
    id: String,
    /// Its session token.
    token: String,
}

/// [`server_with_admin`] plus a user with `email` and `password` that the
/// administrator created and that is logged in: the server, a client, the
/// administrator's token and the user.
fn server_with_user(
    cwd: &Path,
    plugins: &PluginDir,
    env: &[(&str, &str)],
    email: &str,
    password: &str,
) -> (Server, Client, String, TestUser) {
    let (server, c, admin) = server_with_admin(cwd, plugins, env);
    let id = create_user(&c, &server, &admin, email, password);
    let token = login(&c, &server, email, password);
    (server, c, admin, TestUser { id, token })
}

#[test]
fn health_openapi_and_security_headers() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let server = start(cwd.path(), &plugins, &[]);
    let c = client();

    let r = c.get(server.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(r.headers()[h], v, "{h}");
    }
    assert_eq!(r.text().unwrap(), "ok");
    let (status, _, v) = body(c.get(server.url("/readyz")).send().unwrap());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ready"], true);
    let (status, _, systems) = body(c.get(server.url("/api/v1/systems")).send().unwrap());
    assert_eq!(status, 200);
    let active: Vec<String> = systems
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(active.len(), 8, "{systems}");

    let (status, headers, doc) = body(c.get(server.url("/api/openapi.json")).send().unwrap());
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(doc["openapi"], "3.1.0");
    // Every reference resolves inside the document, and no schema keeps a
    // dangling `$defs` reference.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "{}", refs.len());
    for r in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        let pointer = pointer.replace("~1", "/");
        assert!(doc.pointer(&pointer).is_some(), "dangling reference {r}");
    }
    assert!(
        doc["components"]["schemas"]["user.Profile"].is_object(),
        "nested types are lifted into components"
    );
    assert!(doc["components"]["schemas"]["Error"].is_object());
    // Every operation of every active system, with its operationId; GET too
    // for read-only ones. The manifests come from the same plugin libraries.
    let data = tempfile::tempdir().unwrap();
    let host = syshost::Host::builder()
        .data_dir(data.path())
        .plugin_dir(plugins.path())
        .build()
        .unwrap();
    let mut count = 0;
    for id in &active {
        let manifest = host.manifest(id).unwrap();
        assert!(!manifest.operations.is_empty(), "{id}");
        for op in &manifest.operations {
            let path = &doc["paths"][format!("/api/v1/{id}/{}", op.name)];
            assert_eq!(
                path["post"]["operationId"],
                format!("{id}.{}", op.name),
                "{id}.{}",
                op.name
            );
            assert_eq!(path["post"]["tags"], json!([id]));
            assert_eq!(path["post"]["summary"], op.doc.as_str());
            assert_eq!(path["post"]["x-syshost-access"], json!(op.access));
            assert_eq!(path["get"].is_object(), !op.mutates, "{id}.{}", op.name);
            assert!(path["post"]["responses"]["200"].is_object());
            assert!(path["post"]["responses"]["403"].is_object());
            let secured = path["post"]["security"].is_array();
            assert_eq!(
                secured,
                op.access != syshost_plugin_api::Access::Public,
                "{id}.{}",
                op.name
            );
            count += 1;
        }
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), count);
    host.shutdown();
    server.stop();
}

#[test]
fn bad_requests_get_4xx_with_the_error_shape_and_auth_calls_are_rate_limited() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let server = start(
        cwd.path(),
        &plugins,
        &[
            ("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "3"),
            ("SYSHOST_HTTP_MAX_BODY_BYTES", "2048"),
        ],
    );
    let c = client();

    // A public query works anonymously, by POST and by GET.
    let (status, headers, v) = body(post(&c, &server, "/api/v1/user/ping", None, &json!({})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let (status, _, v) = body(c.get(server.url("/api/v1/user/ping")).send().unwrap());
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = body(c.post(server.url("/api/v1/user/ping")).send().unwrap());
    assert_eq!(status, 200, "empty body = {{}}: {v}");

    // Anonymous call to a permission-guarded operation: 401.
    let (status, headers, v) = body(post(
        &c,
        &server,
        "/api/v1/user/create",
        None,
        &json!({"email": "x@example.test"}),
    ));
    assert_eq!(status, 401, "{v}");
    assert_eq!(error_code(status, &v), "unauthenticated");
    assert_eq!(headers["www-authenticate"], "Bearer");

    // An invalid token is 401, never anonymous.
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/ping",
        Some("0000000000000000000000000000000000000000000000000000000000000000"),
        &json!({}),
    ));
    assert_eq!(status, 401, "{v}");
    assert_eq!(error_code(status, &v), "unauthenticated");
    let (status, _, v) = body(
        c.post(server.url("/api/v1/user/ping"))
            .header("authorization", "Basic eDp5")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status.as_u16(), error_code(status, &v).as_str()),
        (401, "unauthenticated")
    );

    // Unknown system / operation: 404.
    let (status, _, v) = body(post(&c, &server, "/api/v1/nonesuch/op", None, &json!({})));
    assert_eq!(status, 404, "{v}");
    assert_eq!(error_code(status, &v), "unknown_operation");
    let (status, _, v) = body(post(&c, &server, "/api/v1/user/nonesuch", None, &json!({})));
    assert_eq!(status, 404, "{v}");
    assert_eq!(error_code(status, &v), "unknown_operation");
    let (status, _, v) = body(c.get(server.url("/nope")).send().unwrap());
    assert_eq!(status, 404, "{v}");
    error_code(status, &v);
    // GET on a state-changing operation: 405.
    let (status, headers, v) = body(c.get(server.url("/api/v1/user/create")).send().unwrap());
    assert_eq!(status, 405, "{v}");
    assert_eq!(headers["allow"], "POST");
    error_code(status, &v);

    // Malformed JSON, non-objects, wrong content type: rejected by the host.
    let malformed = [
        ("application/json", "{\"email\": "),
        ("application/json", "[1, 2]"),
        ("application/json", "\u{0}\u{1}"),
        ("text/plain", "{}"),
    ];
    for (ct, text) in malformed {
        let (status, _, v) = body(
            c.post(server.url("/api/v1/user/ping"))
                .header("content-type", ct)
                .body(text)
                .send()
                .unwrap(),
        );
        assert_eq!(status, 400, "{ct} {text:?}: {v}");
        assert_eq!(error_code(status, &v), "invalid_input", "{v}");
    }
    let (status, _, v) = body(
        c.post(server.url("/api/v1/user/ping"))
            .header("content-type", "application/xml")
            .body("<x/>")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400, "{v}");
    error_code(status, &v);
    // Oversized body: 413 with the error shape.
    let big = json!({"email": "a".repeat(4096)});
    let (status, _, v) = body(post(&c, &server, "/api/v1/user/ping", None, &big));
    assert_eq!(status, 413, "{v}");
    assert_eq!(error_code(status, &v), "payload_too_large");

    // The per-address limit for `auth` operations: 3 per minute, then 429.
    let throttled = "/api/v1/user/confirm_email";
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let (status, headers, v) = body(post(
            &c,
            &server,
            throttled,
            None,
            &json!({"email": "nobody@example.test", "code": "123456"}),
        ));
        statuses.push(status.as_u16());
        last = Some((status, headers, v));
    }
    assert!(statuses[..3].iter().all(|s| *s != 429), "{statuses:?}");
    let (status, headers, v) = last.unwrap();
    assert_eq!(status, 429, "{statuses:?} {v}");
    assert_eq!(error_code(status, &v), "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Other operations are not throttled.
    let (status, _, _) = body(post(&c, &server, "/api/v1/user/ping", None, &json!({})));
    assert_eq!(status, 200);
    server.stop();
}

#[test]
fn sessions_over_bearer_and_cookie_with_csrf_logout_and_restart() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let (server, c, admin) = server_with_admin(cwd.path(), &plugins, &[]);

    // Admin over Bearer: create a role and a user, assign, list.
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/role/create",
        Some(&admin),
        &json!({"id": "viewer", "name": "Viewer", "permissions": ["user.read"]}),
    ));
    assert_eq!(status, 200, "{v}");
    let ann_id = create_user(
        &c,
        &server,
        &admin,
        "ann@example.test",
        "ann's long passphrase 1",
    );
    // Wrong types and unknown fields: 400 naming the problem, nothing created.
    for bad in [
        json!({"email": 5}),
        json!({"email": "bob@example.test", "bogus": 1}),
        json!({"email": "bob@example.test", "roles": "admin"}),
    ] {
        let (status, _, v) = body(post(&c, &server, "/api/v1/user/create", Some(&admin), &bad));
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(error_code(status, &v), "invalid_input", "{v}");
    }
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/set_roles",
        Some(&admin),
        &json!({"id": ann_id, "roles": ["viewer"]}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, _, list) = body(post(
        &c,
        &server,
        "/api/v1/user/list",
        Some(&admin),
        &json!({}),
    ));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 2, "{list}");

    // Ann may read but not create: 403, and nothing changed.
    let ann = login(&c, &server, "ann@example.test", "ann's long passphrase 1");
    let (status, _, v) = body(
        c.get(server.url("/api/v1/user/list"))
            .bearer_auth(&ann)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/create",
        Some(&ann),
        &json!({"email": "mallory@example.test"}),
    ));
    assert_eq!(status, 403, "{v}");
    assert_eq!(error_code(status, &v), "permission_denied");
    let (_, _, list) = body(post(
        &c,
        &server,
        "/api/v1/user/list",
        Some(&admin),
        &json!({"search": "mallory"}),
    ));
    assert_eq!(list["total"], 0, "{list}");

    // A role change rotates Ann's token: the next response hands over the
    // new one in X-Session-Token, and the old one is dead.
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/set_roles",
        Some(&admin),
        &json!({"id": ann_id, "roles": []}),
    ));
    assert_eq!(status, 200, "{v}");
    let r = c
        .get(server.url("/api/v1/user/me"))
        .bearer_auth(&ann)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let old = ann;
    let ann = r.headers()["x-session-token"].to_str().unwrap().to_string();
    assert_eq!(ann.len(), 64);
    assert_ne!(ann, old);
    let (status, _, v) = body(
        c.get(server.url("/api/v1/user/me"))
            .bearer_auth(&old)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401, "the replaced token is dead: {v}");
    let (status, _, v) = body(
        c.get(server.url("/api/v1/user/list"))
            .bearer_auth(&ann)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403, "viewer role gone: {v}");
    assert_eq!(error_code(status, &v), "permission_denied");
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/set_roles",
        Some(&admin),
        &json!({"id": ann_id, "roles": ["viewer"]}),
    ));
    assert_eq!(status, 200, "{v}");

    // A session created while a password change is required may only
    // change the password (and a few more): others → 403.
    let bob_id = create_user(
        &c,
        &server,
        &admin,
        "bob@example.test",
        "bob's long passphrase 1",
    );
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/require_password_change",
        Some(&admin),
        &json!({"id": bob_id, "required": true}),
    ));
    assert_eq!(status, 200, "{v}");
    let bob_token = login(&c, &server, "bob@example.test", "bob's long passphrase 1");
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/update_my_contact",
        Some(&bob_token),
        &json!({}),
    ));
    assert_eq!(status, 403, "{v}");
    assert_eq!(error_code(status, &v), "password_change_required");
    let (status, _, v) = body(
        c.get(server.url("/api/v1/user/me"))
            .bearer_auth(&bob_token)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");

    // Cookie login (a browser): the client keeps the HttpOnly cookie.
    let browser = Client::builder().cookie_store(true).build().unwrap();
    let (status, headers, v) = body(post(
        &browser,
        &server,
        "/api/v1/session/login",
        None,
        &json!({"email": "ann@example.test", "password": "ann's long passphrase 1"}),
    ));
    assert_eq!(status, 200, "{v}");
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    // A read-only GET with the cookie needs no Origin.
    let (status, _, me) = body(browser.get(server.url("/api/v1/user/me")).send().unwrap());
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["id"], ann_id.as_str(), "{me}");
    // A cookie POST without Origin (or from elsewhere) is refused.
    let (status, _, v) = body(browser.post(server.url("/api/v1/user/me")).send().unwrap());
    assert_eq!(status, 403, "{v}");
    assert_eq!(error_code(status, &v), "csrf_rejected");
    let (status, _, v) = body(
        browser
            .post(server.url("/api/v1/user/me"))
            .header("origin", "http://evil.example")
            .send()
            .unwrap(),
    );
    assert_eq!(error_code(status, &v), "csrf_rejected");
    let (status, _, v) = body(
        browser
            .post(server.url("/api/v1/user/me"))
            .header("origin", server.origin())
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = body(
        browser
            .post(server.url("/api/v1/user/me"))
            .header("sec-fetch-site", "same-origin")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    // Logout through the cookie clears it; afterwards the browser is anonymous.
    let (status, headers, v) = body(
        browser
            .post(server.url("/api/v1/session/logout"))
            .header("origin", server.origin())
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["session_ended"], true);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "{headers:?}"
    );
    let (status, _, v) = body(browser.get(server.url("/api/v1/user/me")).send().unwrap());
    assert_eq!(status, 401, "{v}");

    // Bearer logout: the token is rejected afterwards.
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/session/logout",
        Some(&ann),
        &json!({}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = body(
        c.get(server.url("/api/v1/user/me"))
            .bearer_auth(&ann)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401, "{v}");
    assert_eq!(error_code(status, &v), "unauthenticated");

    // Restart on the same data dir: users and sessions survive.
    server.stop();
    let server = start(cwd.path(), &plugins, &[]);
    let (status, _, me) = body(
        c.get(server.url("/api/v1/user/me"))
            .bearer_auth(&admin)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["email"], ADMIN_EMAIL, "{me}");
    let (_, _, list) = body(post(
        &c,
        &server,
        "/api/v1/user/list",
        Some(&admin),
        &json!({}),
    ));
    assert_eq!(list["total"], 3, "{list}");
    server.stop();
}

#[test]
fn every_endpoint_refuses_callers_without_a_session_or_permission_and_changes_nothing() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let (s, c, admin, plain) = server_with_user(
        cwd.path(),
        &plugins,
        &[("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "1000")],
        "nobody@example.test",
        "an unprivileged passphrase",
    );
    let snapshot = |token: &str| {
        let users = body(post(&c, &s, "/api/v1/user/list", Some(token), &json!({}))).2;
        let roles = body(post(&c, &s, "/api/v1/role/list", Some(token), &json!({}))).2;
        let groups = body(post(&c, &s, "/api/v1/group/list", Some(token), &json!({}))).2;
        (users, roles, groups)
    };
    let before = snapshot(&admin);
    let mut checked = 0;
    for (path, access) in operations(&c, &s) {
        if access == "\"public\"" {
            continue;
        }
        // No session: 401 with the error shape, whatever the body.
        let (status, headers, v) = body(post(&c, &s, &path, None, &json!({})));
        assert_eq!(status, 401, "{path} {access}: {v}");
        assert_eq!(error_code(status, &v), "unauthenticated", "{path}");
        assert!(headers.get("www-authenticate").is_some(), "{path}");
        // A session without the permission: 403 (permission and system rules).
        if access.contains("permission") && !access.contains("self_or_permission")
            || access == "\"system\""
        {
            let (status, _, v) = body(post(&c, &s, &path, Some(&plain.token), &json!({})));
            assert_eq!(status, 403, "{path} {access}: {v}");
            assert_eq!(error_code(status, &v), "permission_denied", "{path}");
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked}");
    assert_eq!(snapshot(&admin), before, "refused calls changed nothing");
}

#[test]
fn malformed_input_to_every_operation_is_a_4xx_never_a_5xx() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let (s, c, admin) = server_with_admin(
        cwd.path(),
        &plugins,
        &[
            ("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "10000"),
            ("SYSHOST_HTTP_MAX_BODY_BYTES", "65536"),
        ],
    );
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(70_000));
    let bodies: Vec<(&str, String)> = vec![
        ("application/json", "{".to_string()),
        ("application/json", "[]".to_string()),
        ("application/json", "\"text\"".to_string()),
        ("application/json", "42".to_string()),
        ("application/json", "null".to_string()),
        (
            "application/json",
            "{\"id\": {\"$ne\": 1}, \"email\": 7, \"roles\": \"x\"}".to_string(),
        ),
        ("application/json", deep),
        ("text/plain", "{}".to_string()),
        ("application/json", "{\"a\":\"\\ud800\"}".to_string()),
    ];
    for (path, _) in operations(&c, &s) {
        for (content_type, raw) in &bodies {
            let response = c
                .post(s.url(&path))
                .bearer_auth(&admin)
                .header("content-type", *content_type)
                .body(raw.clone())
                .send()
                .unwrap();
            let (status, _, v) = body(response);
            assert!(
                status.is_client_error(),
                "{path} with {content_type} {:?}: {status} {v}",
                &raw[..raw.len().min(40)]
            );
            error_code(status, &v);
        }
    }
    // An oversized body is refused with 413 as soon as its length is known;
    // the server may close the connection before the client finished
    // sending, which the client then sees as a transport error.
    match c
        .post(s.url("/api/v1/user/create"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
    {
        Ok(response) => {
            let (status, _, v) = body(response);
            assert_eq!(status, 413, "{v}");
            assert_eq!(error_code(status, &v), "payload_too_large");
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    // The admin session and the host are still fine (a fresh client: the
    // server closed the connection that carried the oversized body).
    let c = client();
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/session/whoami",
        Some(&admin),
        &json!({}),
    ));
    assert_eq!(status, 200, "{v}");
}

#[test]
fn register_confirm_login_change_password_and_logout_over_http_with_real_mail() {
    let sink = syshost_test_support::SmtpSink::start();
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let (s, c, admin) = server_with_admin(
        cwd.path(),
        &plugins,
        &[
            ("SYSHOST_SMTP_URL", &sink.url()),
            ("SYSHOST_PRODUCT_NAME", "Acme"),
        ],
    );
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/settings/put",
        Some(&admin),
        &json!({"section": "user", "document": {"self_registration": true}}),
    ));
    assert_eq!(status, 200, "{v}");

    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/user/register",
        None,
        &json!({"email": "zoe@example.test", "password": "zoe's first passphrase",
                "profile": {"first_name": "Zoe", "last_name": "Quinn"}}),
    ));
    assert_eq!(status, 200, "{v}");
    let mail = sink.wait_for_to("zoe@example.test", 1, Duration::from_secs(20));
    let code = syshost_test_support::code_in(&mail);
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/user/confirm_email",
        None,
        &json!({"email": "zoe@example.test", "code": code}),
    ));
    assert_eq!(status, 200, "{v}");

    // Two sessions; changing the password from one ends the other.
    let first = login(&c, &s, "zoe@example.test", "zoe's first passphrase");
    let second = login(&c, &s, "zoe@example.test", "zoe's first passphrase");
    let (status, _, me) = body(post(&c, &s, "/api/v1/user/me", Some(&first), &json!({})));
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["email"], "zoe@example.test");
    assert_eq!(me["user"]["email_verified"], true);
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/user/change_my_password",
        Some(&first),
        &json!({"current_password": "zoe's first passphrase", "new_password": "zoe's second passphrase"}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/session/whoami",
        Some(&second),
        &json!({}),
    ));
    assert_eq!(status, 401, "the other session ended: {v}");
    // The session that changed it is rotated: the next answer carries the new token.
    let (status, headers, v) = body(post(
        &c,
        &s,
        "/api/v1/session/whoami",
        Some(&first),
        &json!({}),
    ));
    assert_eq!(status, 200, "{v}");
    let rotated = headers
        .get("x-session-token")
        .expect("rotated token")
        .to_str()
        .unwrap()
        .to_string();
    let (status, _, _) = body(post(
        &c,
        &s,
        "/api/v1/session/whoami",
        Some(&first),
        &json!({}),
    ));
    assert_eq!(status, 401, "the pre-rotation token is dead");
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/session/logout",
        Some(&rotated),
        &json!({}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, _, _) = body(post(
        &c,
        &s,
        "/api/v1/session/whoami",
        Some(&rotated),
        &json!({}),
    ));
    assert_eq!(status, 401);
    // The old password is gone, the new one works.
    let (status, _, v) = body(post(
        &c,
        &s,
        "/api/v1/session/login",
        None,
        &json!({"email": "zoe@example.test", "password": "zoe's first passphrase"}),
    ));
    assert_eq!(status, 401, "{v}");
    login(&c, &s, "zoe@example.test", "zoe's second passphrase");
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            for child in map.values() {
                collect_refs(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

#[test]
fn administrators_manage_groups_licenses_and_settings_over_http() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let (s, c, admin) = server_with_admin(cwd.path(), &plugins, &[]);
    let call = |path: &str, req: Value| {
        let (status, _, v) = body(post(&c, &s, path, Some(&admin), &req));
        (status, v)
    };
    let id = create_user(&c, &s, &admin, "pat@example.test", "pat's long passphrase");
    let (status, v) = call(
        "/api/v1/group/create",
        json!({"id": "staff", "name": "Staff"}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        "/api/v1/user/set_groups",
        json!({"id": id, "groups": ["staff"]}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["groups"], json!(["staff"]));
    let (status, v) = call(
        "/api/v1/license/create_user_license",
        json!({"id": "pro", "name": "Pro", "max_users": 1}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        "/api/v1/user/assign_license",
        json!({"id": id, "license_id": "pro"}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call("/api/v1/license/seats", json!({"license_id": "pro"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"][0]["used"], 1);
    // The seat is taken: assigning it to the administrator is a 409.
    let me = call("/api/v1/session/whoami", json!({})).1;
    let (status, v) = call(
        "/api/v1/user/assign_license",
        json!({"id": me["user_id"], "license_id": "pro"}),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(error_code(status, &v), "conflict");
    // Settings: invalid documents are 400 naming the field; valid ones apply.
    let (status, v) = call(
        "/api/v1/settings/put",
        json!({"section": "session", "document": {"idle_timeout_minutes": 0}}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("idle_timeout_minutes"),
        "{v}"
    );
    let (status, v) = call(
        "/api/v1/settings/put",
        json!({"section": "session", "document": {"idle_timeout_minutes": 45}}),
    );
    assert_eq!(status, 200, "{v}");
    // The user's own view shows the group and the license.
    let pat = login(&c, &s, "pat@example.test", "pat's long passphrase");
    let (status, _, whoami) = body(post(
        &c,
        &s,
        "/api/v1/session/whoami",
        Some(&pat),
        &json!({}),
    ));
    assert_eq!(status, 200, "{whoami}");
    assert_eq!(whoami["groups"], json!(["staff"]));
    assert_eq!(whoami["licenses"], json!(["pro"]));
}

/// The access-log line of the request with id `request_id`.
fn access_line<'a>(log: &'a str, request_id: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains("syshost::http::access") && l.contains(request_id))
        .unwrap_or_else(|| panic!("no access line for {request_id} in:\n{log}"))
}

#[test]
fn cached_sessions_are_answered_inline_with_the_same_answers() {
    let plugins = PluginDir::systems_and(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let (server, c, admin, user) = server_with_user(
        cwd.path(),
        &plugins,
        &[],
        "ann@example.test",
        "ann's long passphrase 1",
    );
    let ann = user.token;
    // (request id, whether it must have run inline)
    let mut expected: Vec<(String, bool)> = Vec::new();
    let mut whoami = |token: &str, inline: bool| {
        let r = post(
            &c,
            &server,
            "/api/v1/session/whoami",
            Some(token),
            &json!({}),
        );
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let (status, headers, v) = body(r);
        expected.push((id, inline));
        (status, headers, v)
    };

    // The first request reads the session from the store (blocking pool);
    // the next ones are answered inline, identically, with the same headers.
    let (status, first_headers, first) = whoami(&ann, false);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["email"], "ann@example.test");
    for _ in 0..2 {
        let (status, headers, v) = whoami(&ann, true);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v, first);
        for h in ["content-type", "cache-control", "content-security-policy"] {
            assert_eq!(headers[h], first_headers[h], "{h}");
        }
        assert!(headers.get("x-session-token").is_none());
        assert!(headers.get("set-cookie").is_none());
    }
    // GET answers the same.
    let (status, _, v) = body(
        c.get(server.url("/api/v1/session/whoami"))
            .bearer_auth(&ann)
            .send()
            .unwrap(),
    );
    assert_eq!((status.as_u16(), &v), (200, &first));

    // A role change marks the session for rotation: the resolution writes,
    // so it runs on the pool and hands over the new token; the old one is
    // dead on both paths.
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/role/create",
        Some(&admin),
        &json!({"id": "viewer", "name": "Viewer", "permissions": ["user.read"]}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/user/set_roles",
        Some(&admin),
        &json!({"id": user.id, "roles": ["viewer"]}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, headers, v) = whoami(&ann, false);
    assert_eq!(status, 200, "{v}");
    let rotated = headers["x-session-token"].to_str().unwrap().to_string();
    assert_ne!(rotated, ann);
    for _ in 0..2 {
        let (status, _, v) = whoami(&ann, false);
        assert_eq!(status, 401, "the replaced token is dead: {v}");
        assert_eq!(error_code(status, &v), "unauthenticated");
    }
    // The rotating resolution cached the new token: inline at once, with
    // the new role's permission.
    for _ in 0..2 {
        let (status, _, v) = whoami(&rotated, true);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["roles"], json!(["viewer"]), "{v}");
    }

    // Logout ends it at once: the cached entry is gone, 401 again.
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/session/logout",
        Some(&rotated),
        &json!({}),
    ));
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = whoami(&rotated, false);
    assert_eq!(status, 401, "{v}");
    // No token at all: 401 from the host, answered inline (the anonymous
    // subject is cached by then).
    let (status, _, v) = body(post(
        &c,
        &server,
        "/api/v1/session/whoami",
        None,
        &json!({}),
    ));
    assert_eq!(status, 401, "{v}");

    let log = server.stop_with_log();
    for (id, inline) in &expected {
        let line = access_line(&log, id);
        assert!(
            line.contains(&format!("inline={inline}")),
            "request {id} should have run with inline={inline}: {line}"
        );
    }
}
