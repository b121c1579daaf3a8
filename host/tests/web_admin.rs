//! The admin center in a real browser: headless Chromium (chromedriver)
//! against the real `syshost run` binary with the real plugins and a real
//! SMTP sink. An administrator creates a role with permissions, a user,
//! assigns the role, disables the user, bulk-disables users and saves the
//! allowed domains in the settings form; a user holding only some
//! permissions sees only those cards and no forms. Without a browser, the
//! bulk actions work as plain form posts (CSV export download, disable, the
//! refusals). Screenshots of the admin pages go to
//! `target/screenshots/admin-*.png`.

use serde_json::{json, Value};
use syshost_test_support::browser::{Browser, WebServer};
use syshost_test_support::{PluginDir, SmtpSink};

const PASSWORD: &str = "a long enough passphrase 7";

fn server(smtp: &SmtpSink, plugins: &PluginDir) -> WebServer {
    WebServer::start(env!("CARGO_BIN_EXE_syshost").as_ref(), plugins, smtp, &[])
}

/// Calls the API as the first administrator; asserts success.
fn admin_api(server: &WebServer, token: &str, system: &str, op: &str, body: Value) -> Value {
    let (status, resp) = server.api(Some(token), system, op, body.clone());
    assert_eq!(status, 200, "{system}.{op}({body}): {resp}");
    resp
}

/// Clicks a submit button that asks for confirmation and accepts the dialog.
async fn click_confirmed(browser: &Browser, css: &str) {
    browser.click(css).await;
    // The script asks with window.confirm; accept it (without the script the
    // form submits directly and there is no dialog).
    let _ = browser.client.accept_alert().await;
}

/// The `<main>` text, waiting until it contains `needle`.
async fn wait_for_text(browser: &Browser, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = browser.main_text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "'{needle}' never appeared on {}: {text}",
            browser.path().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_manages_roles_users_and_settings() {
    let smtp = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[]);
    let server = server(&smtp, &plugins);
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let browser = Browser::start().await;
    browser
        .login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD)
        .await;

    // The admin center: one card per system page.
    browser.goto(&server.url("/ui/admin")).await;
    let text = browser.main_text().await;
    for card in [
        "Users",
        "Roles",
        "Groups",
        "Permissions",
        "Licenses",
        "Settings",
    ] {
        assert!(text.contains(card), "card {card} missing: {text}");
    }
    browser.screenshot("admin-center-cards").await;

    // A role with two permissions, picked in the searchable checkbox list.
    browser.goto(&server.url("/ui/admin/roles")).await;
    browser.click_text("Create role").await;
    browser
        .fill("#form-create-role input[name=name]", "Editors")
        .await;
    browser
        .click("#form-create-role input[name=permissions][value='user.read']")
        .await;
    browser
        .click("#form-create-role input[name=permissions][value='user.update']")
        .await;
    browser.screenshot("admin-roles-create").await;
    browser.submit("create-role").await;
    browser.wait_for_path("/ui/admin/roles/").await;
    wait_for_text(&browser, "Role created.").await;
    let role_id = browser
        .path()
        .await
        .trim_start_matches("/ui/admin/roles/")
        .to_string();
    let role = admin_api(&server, &token, "role", "get", json!({ "id": role_id }));
    assert_eq!(role["name"], "Editors");
    assert_eq!(role["permissions"], json!(["user.read", "user.update"]));
    browser.screenshot("admin-role-editor").await;

    // A user, through the "Add user" dialog.
    browser.goto(&server.url("/ui/admin/users")).await;
    browser.click_text("Add user").await;
    browser
        .fill("#form-add-user input[name=email]", "ann@example.com")
        .await;
    browser
        .fill("#form-add-user input[name='profile.first_name']", "Ann")
        .await;
    browser
        .fill("#form-add-user input[name='profile.last_name']", "Lee")
        .await;
    browser
        .fill("#form-add-user input[name=password]", PASSWORD)
        .await;
    browser.click("#form-add-user input[name=verified]").await;
    browser.submit("add-user").await;
    browser.wait_for_path("/ui/admin/users/").await;
    wait_for_text(&browser, "User added.").await;
    let user_id = browser
        .path()
        .await
        .trim_start_matches("/ui/admin/users/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    browser.screenshot("admin-user-editor").await;
    server.api_login("ann@example.com", PASSWORD);

    // Assign the role in the Roles tab.
    browser.click_text("Roles").await;
    browser
        .wait_for_path(&format!("/ui/admin/users/{user_id}?tab=roles"))
        .await;
    browser
        .click(&format!(
            "#form-set-roles input[name=roles][value='{role_id}']"
        ))
        .await;
    browser.submit("set-roles").await;
    wait_for_text(&browser, "Roles saved.").await;
    let ann = admin_api(&server, &token, "user", "get", json!({ "id": user_id }));
    assert_eq!(ann["roles"], json!([role_id]));

    // Disable the account in the Other tab.
    browser
        .goto(&server.url(&format!("/ui/admin/users/{user_id}?tab=other")))
        .await;
    browser.screenshot("admin-user-other").await;
    browser
        .find("#form-status select[name='status.state'] option[value=disabled]")
        .await
        .click()
        .await
        .expect("choose disabled");
    browser.submit("status").await;
    wait_for_text(&browser, "Status saved.").await;
    let ann = admin_api(&server, &token, "user", "get", json!({ "id": user_id }));
    assert_eq!(ann["status"], json!({ "state": "disabled" }));
    let (status, _) = server.api(
        None,
        "session",
        "login",
        json!({ "email": "ann@example.com", "password": PASSWORD }),
    );
    assert_eq!(status, 401, "a disabled user cannot log in");

    // Bulk disable: tick three users in the table, "Disable".
    let mut ids = Vec::new();
    for i in 0..3 {
        let u = admin_api(
            &server,
            &token,
            "user",
            "create",
            json!({ "email": format!("bulk{i}@example.com"), "password": PASSWORD }),
        );
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    admin_api(
        &server,
        &token,
        "user",
        "create",
        json!({ "email": "bulk-keep@example.com", "password": PASSWORD }),
    );
    browser
        .goto(&server.url("/ui/admin/users?search=bulk"))
        .await;
    for id in &ids {
        browser
            .click(&format!("input[name=ids][value='{id}']"))
            .await;
    }
    browser.screenshot("admin-users-table").await;
    click_confirmed(&browser, "#bulk-users button[data-bulk='0']").await;
    wait_for_text(&browser, "The selected users are disabled.").await;
    for id in &ids {
        let u = admin_api(&server, &token, "user", "get", json!({ "id": id }));
        assert_eq!(u["status"], json!({ "state": "disabled" }), "{id}");
    }
    let page = admin_api(
        &server,
        &token,
        "user",
        "list",
        json!({ "search": "bulk-keep" }),
    );
    assert_eq!(
        page["items"][0]["active"], true,
        "unselected users are untouched"
    );
    let text = browser.main_text().await;
    assert!(text.matches("Disabled").count() >= 3, "{text}");

    // Settings: allowed domains, one per line.
    browser.goto(&server.url("/ui/admin/settings")).await;
    browser
        .fill(
            "#form-settings-user textarea[name='document.allowed_domains']",
            "example.com\nexample.org",
        )
        .await;
    browser.screenshot("admin-settings").await;
    browser.submit("settings-user").await;
    wait_for_text(&browser, "Settings saved.").await;
    let doc = admin_api(
        &server,
        &token,
        "settings",
        "get",
        json!({ "section": "user" }),
    );
    assert_eq!(
        doc["document"]["allowed_domains"],
        json!(["example.com", "example.org"])
    );
    // A bad value is refused with the field named, and nothing changes.
    browser
        .fill(
            "#form-settings-user textarea[name='document.allowed_domains']",
            "not a domain",
        )
        .await;
    browser.submit("settings-user").await;
    let text = wait_for_text(&browser, "allowed_domains").await;
    assert!(text.contains("invalid settings"), "{text}");
    let doc = admin_api(
        &server,
        &token,
        "settings",
        "get",
        json!({ "section": "user" }),
    );
    assert_eq!(
        doc["document"]["allowed_domains"],
        json!(["example.com", "example.org"])
    );

    // The remaining admin pages render (screenshots for the README).
    for (path, name) in [
        ("/ui/admin/permissions", "admin-permissions"),
        ("/ui/admin/groups", "admin-groups"),
        ("/ui/admin/licenses?kind=user", "admin-licenses"),
    ] {
        browser.goto(&server.url(path)).await;
        browser.find("main table").await;
        browser.screenshot(name).await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_some_permissions_sees_only_those_cards_and_no_forms() {
    let smtp = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[]);
    let server = server(&smtp, &plugins);
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    admin_api(
        &server,
        &token,
        "role",
        "create",
        json!({ "id": "viewers", "name": "Viewers", "permissions": ["role.read", "group.read"] }),
    );
    admin_api(
        &server,
        &token,
        "user",
        "create",
        json!({ "email": "viv@example.com", "password": PASSWORD, "verified": true,
                "roles": ["viewers"] }),
    );
    let browser = Browser::start().await;
    browser.login(&server, "viv@example.com", PASSWORD).await;
    browser.goto(&server.url("/ui/admin")).await;
    let text = browser.main_text().await;
    assert!(text.contains("Roles") && text.contains("Groups"), "{text}");
    for hidden in ["Users", "Permissions", "Licenses", "Settings"] {
        assert!(!text.contains(hidden), "card {hidden} shown: {text}");
    }
    browser.screenshot("admin-center-limited").await;

    // Read-only: the roles list and editor show no form at all.
    browser.goto(&server.url("/ui/admin/roles")).await;
    wait_for_text(&browser, "Viewers").await;
    assert!(!browser.exists("main form.form").await, "no create form");
    browser.goto(&server.url("/ui/admin/roles/viewers")).await;
    let text = wait_for_text(&browser, "role.read").await;
    assert!(
        !browser.exists("main form.form").await,
        "no edit forms: {text}"
    );

    // A page the user may not see is refused, exactly like the API.
    browser.goto(&server.url("/ui/admin/users")).await;
    let text = browser.main_text().await;
    assert!(text.contains("user.read"), "{text}");
    browser.close().await;
}

// ---------------------------------------------------------------------------
// Without a browser (no JavaScript): plain form posts of the bulk actions
// ---------------------------------------------------------------------------

const FORM: &str = "application/x-www-form-urlencoded";

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Logs in through the login form; returns the session cookie `name=value`.
fn form_login(server: &WebServer, email: &str, password: &str) -> String {
    let origin = server.origin();
    let (status, headers, body) = server.request(
        "POST",
        "/ui/do/session/login",
        &[("Content-Type", FORM), ("Origin", &origin)],
        form_body(&[
            ("_form", "login"),
            ("_page", "/ui/login"),
            ("_next", "/ui"),
            ("email", email),
            ("password", password),
        ])
        .as_bytes(),
    );
    assert_eq!(status, 303, "{body}");
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("syshost_session=") && c.len() > "syshost_session=".len())
        .map(str::to_string)
        .expect("login sets the session cookie")
}

#[test]
fn bulk_actions_work_as_plain_form_posts() {
    let smtp = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[]);
    let server = server(&smtp, &plugins);
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let mut ids = Vec::new();
    for (email, first) in [
        ("x1@example.com", "=HYPERLINK(1)"),
        ("x2@example.com", "Bo"),
    ] {
        let u = admin_api(
            &server,
            &token,
            "user",
            "create",
            json!({ "email": email, "password": PASSWORD, "profile": { "first_name": first } }),
        );
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    admin_api(
        &server,
        &token,
        "user",
        "create",
        json!({ "email": "not-selected@example.com", "password": PASSWORD }),
    );

    // Anonymous visitors are sent to the login page.
    let (status, headers, _) = server.request("GET", "/ui/admin/users", &[], b"");
    assert_eq!(status, 303);
    assert!(header(&headers, "location")
        .unwrap()
        .starts_with("/ui/login?next="));

    let cookie = form_login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let (status, _, html) = server.request("GET", "/ui/admin/users", &[("Cookie", &cookie)], b"");
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"bulk-users\""),
        "the bulk form is rendered"
    );
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("_csrf") + marker.len();
    let csrf = html[start..].split('"').next().unwrap().to_string();
    let origin = server.origin();
    let post = |op: &str, bulk: &str, ids: &[&str]| {
        let mut pairs = vec![
            ("_csrf", csrf.as_str()),
            ("_form", "users-bulk"),
            ("_page", "/ui/admin/users"),
            ("_kinds", r#"{"ids":"checkboxes"}"#),
            ("_bulk", bulk),
        ];
        for id in ids {
            pairs.push(("ids", id));
        }
        server.request(
            "POST",
            &format!("/ui/do/user/{op}"),
            &[
                ("Content-Type", FORM),
                ("Origin", &origin),
                ("Cookie", &cookie),
            ],
            form_body(&pairs).as_bytes(),
        )
    };

    // Export CSV of the two selected users: a download, formula-safe.
    let spec = json!({ "values": { "format": "csv" },
        "download": { "filename": "users.csv", "content_type": "text/csv", "field": "content" } })
    .to_string();
    let (status, headers, body) = post("export", &spec, &[&ids[0], &ids[1]]);
    assert_eq!(status, 200, "{body}");
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/csv"));
    assert!(header(&headers, "content-disposition")
        .unwrap()
        .contains("users.csv"));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(lines[1].contains("x1@example.com") && lines[1].contains("'=HYPERLINK(1)"));
    assert!(!body.contains("not-selected"));

    // Disable both: a redirect back with the flash message.
    let spec = json!({ "values": { "state": "disabled" }, "success": "Disabled." }).to_string();
    let (status, headers, _) = post("bulk_set_status", &spec, &[&ids[0], &ids[1]]);
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/ui/admin/users"));
    for id in &ids {
        let u = admin_api(&server, &token, "user", "get", json!({ "id": id }));
        assert_eq!(u["active"], false);
    }

    // The caller's own account is refused with the reason; nothing changes.
    let me = admin_api(
        &server,
        &token,
        "user",
        "list",
        json!({ "search": "root@" }),
    );
    let own = me["items"][0]["id"].as_str().unwrap().to_string();
    let spec = json!({ "values": {} }).to_string();
    let (status, _, html) = post("bulk_delete", &spec, &[&ids[0], &own]);
    assert_eq!(status, 422);
    assert!(html.contains("your own account"), "{html}");
    admin_api(&server, &token, "user", "get", json!({ "id": ids[0] }));
    // Nothing selected: the reason, not a crash.
    let (status, _, html) = post("bulk_delete", &spec, &[]);
    assert_eq!(status, 422);
    assert!(html.contains("at least one user"), "{html}");
}
