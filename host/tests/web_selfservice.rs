//! Self-service in a real browser: headless Chromium (through chromedriver)
//! against the real `syshost run` binary, the real plugin libraries and a
//! real SMTP server. Screenshots of the main pages go to `target/screenshots/`.

use std::time::Duration;

use serde_json::json;
use syshost_test_support::browser::{Browser, WebServer};
use syshost_test_support::{decode_quoted_printable, PluginDir, SmtpSink};

fn start(extra_env: &[(&str, &str)]) -> (WebServer, SmtpSink, PluginDir) {
    let smtp = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[]);
    let server = WebServer::start(
        env!("CARGO_BIN_EXE_syshost").as_ref(),
        &plugins,
        &smtp,
        extra_env,
    );
    (server, smtp, plugins)
}

/// The first link in a mail that points at `path` on the server (the
/// plain-text part as sent, else quoted-printable decoded).
fn link_in(mail: &str, server: &WebServer, path: &str) -> String {
    let prefix = server.url(path);
    let find = |text: &str| {
        text.split_whitespace()
            .find(|w| w.starts_with(&prefix) && w.contains("code="))
            .map(|w| w.trim_end_matches(['"', '<', '>']).to_string())
    };
    find(mail)
        .or_else(|| find(&decode_quoted_printable(mail)))
        .unwrap_or_else(|| panic!("no link to {prefix} in mail:\n{mail}"))
}

fn create_user(server: &WebServer, email: &str, password: &str, extra: serde_json::Value) {
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let mut body = json!({ "email": email, "password": password, "verified": true,
        "profile": {"first_name": "Grace", "last_name": "Hopper"} });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let (status, resp) = server.api(Some(&token), "user", "create", body);
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_confirm_login_edit_profile_change_password_log_out() {
    let (server, smtp, _plugins) = start(&[]);
    server.update_settings("user", json!({ "self_registration": true }));
    let browser = Browser::start().await;
    let email = "ada@example.test";
    let password = "analytical engine 1843";

    // The login page links to registration now that it is enabled.
    browser.goto(&server.url("/ui/login")).await;
    browser.screenshot("login").await;
    browser.click_text("Register").await;
    browser.wait_for_path("/ui/register").await;

    // Live password feedback (JavaScript): the length rule turns green.
    browser
        .fill("#form-register input[name=email]", email)
        .await;
    let rule = "#form-register ul.pw-rules li[data-rule^='min:']";
    browser
        .fill("#form-register input[name=password]", "short")
        .await;
    let class = browser.find(rule).await.attr("class").await.unwrap();
    assert!(!class.unwrap_or_default().contains("ok"));
    browser
        .fill("#form-register input[name=password]", password)
        .await;
    let class = browser.find(rule).await.attr("class").await.unwrap();
    assert!(
        class.unwrap_or_default().contains("ok"),
        "rule not met after typing"
    );
    browser
        .fill("#form-register input[name='profile.first_name']", "Ada")
        .await;
    browser
        .fill("#form-register input[name='profile.last_name']", "Lovelace")
        .await;
    browser.screenshot("register").await;
    browser.submit("register").await;
    browser
        .wait_for_path("/ui/confirm-email?email=ada%40example.test")
        .await;
    assert!(browser.main_text().await.contains("Check your mail"));

    // Read the mail, follow its link: the code is filled in.
    let mail = smtp.wait_for_to(email, 1, Duration::from_secs(15));
    let link = link_in(&mail, &server, "/ui/confirm-email?");
    browser.goto(&link).await;
    let code = browser
        .find("#form-confirm input[name=code]")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(code.len(), 9, "code prefilled from the link {link}");
    browser.submit("confirm").await;
    browser.wait_for_path("/ui/login?email=").await;
    assert!(browser
        .main_text()
        .await
        .contains("Your address is confirmed"));

    // Log in: the profile page, with the account menu.
    browser.login(&server, email, password).await;
    browser.wait_for_path("/ui/account/profile").await;
    assert!(browser.main_text().await.contains(email));
    browser
        .fill("#form-contact input[name='profile.city']", "London")
        .await;
    browser
        .find("#form-contact select[name='profile.preferred_language']")
        .await
        .select_by_value("en")
        .await
        .unwrap();
    browser.submit("contact").await;
    browser.wait_for_text("Your profile is saved.").await;
    let city = browser
        .find("#form-contact input[name='profile.city']")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(city.as_deref(), Some("London"));
    browser.screenshot("profile").await;
    browser.click(".account > summary").await;
    let menu = browser.find(".account-panel").await.text().await.unwrap();
    assert!(
        menu.contains("Ada Lovelace") && menu.contains(email) && menu.contains("Manage profile")
    );
    assert_eq!(
        browser.find(".topbar .avatar").await.text().await.unwrap(),
        "AL"
    );
    browser.screenshot("account-menu").await;

    // Change the password.
    browser.goto(&server.url("/ui/account/password")).await;
    let new_password = "difference engine 1822";
    browser
        .fill("#form-password input[name=current_password]", password)
        .await;
    browser
        .fill("#form-password input[name=new_password]", new_password)
        .await;
    browser.submit("password").await;
    browser.wait_for_text("Your password is changed.").await;

    // Log out through the account menu; the new password works.
    browser.click(".account > summary").await;
    browser.click_text("Log out").await;
    browser.wait_for_path("/ui/login").await;
    assert!(browser.main_text().await.contains("You are logged out."));
    browser.goto(&server.url("/ui/account/profile")).await;
    browser.wait_for_path("/ui/login?next=").await;
    browser.login(&server, email, new_password).await;
    browser.wait_for_path("/ui/account/profile").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_with_the_mailed_code() {
    let (server, smtp, _plugins) = start(&[]);
    let email = "grace@example.test";
    create_user(&server, email, "first password 1906", json!({}));
    let browser = Browser::start().await;
    browser.goto(&server.url("/ui/login")).await;
    browser.click_text("Forgot password?").await;
    browser.wait_for_path("/ui/forgot-password").await;
    browser.fill("#form-forgot input[name=email]", email).await;
    browser.submit("forgot").await;
    browser
        .wait_for_path("/ui/reset-password?email=grace%40example.test")
        .await;
    let mail = smtp.wait_for_to(email, 1, Duration::from_secs(15));
    let code = syshost_test_support::code_in(&decode_quoted_printable(&mail));
    browser.fill("#form-reset input[name=code]", &code).await;
    browser
        .fill(
            "#form-reset input[name=new_password]",
            "second password 1992",
        )
        .await;
    browser.screenshot("reset-password").await;
    browser.submit("reset").await;
    browser.wait_for_path("/ui/login?email=").await;
    assert!(browser.main_text().await.contains("Your password is set."));
    browser.login(&server, email, "second password 1992").await;
    browser.wait_for_path("/ui/account/profile").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_password_change_comes_first() {
    let (server, _smtp, _plugins) = start(&[]);
    let email = "kay@example.test";
    create_user(&server, email, "temporary password 1", json!({}));
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let (_, list) = server.api(Some(&token), "user", "list", json!({ "search": "kay" }));
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = server.api(
        Some(&token),
        "user",
        "require_password_change",
        json!({ "id": id, "required": true }),
    );
    assert_eq!(status, 200, "{body}");

    let browser = Browser::start().await;
    browser.login(&server, email, "temporary password 1").await;
    browser.wait_for_path("/ui/account/password").await;
    assert!(browser
        .main_text()
        .await
        .contains("You must set a new password"));
    browser.screenshot("forced-password-change").await;
    // Nothing else opens until the password is changed.
    browser.goto(&server.url("/ui/account/profile")).await;
    browser.wait_for_path("/ui/account/password").await;
    browser
        .fill(
            "#form-password input[name=current_password]",
            "temporary password 1",
        )
        .await;
    browser
        .fill(
            "#form-password input[name=new_password]",
            "a permanent password 2",
        )
        .await;
    browser.submit("password").await;
    browser.wait_for_path("/ui/account/profile").await;
    browser.goto(&server.url("/ui/account/sessions")).await;
    assert!(browser.main_text().await.contains("This session"));
    browser.close().await;
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatar_consents_sessions_and_a_plugin_page_in_the_admin_center() {
    let smtp = SmtpSink::start();
    let plugins =
        PluginDir::systems_and(&[syshost_test_support::library("syshost-example-event-log")]);
    let server = WebServer::start(
        env!("CARGO_BIN_EXE_syshost").as_ref(),
        &plugins,
        &smtp,
        &[("SYSHOST_ENABLE", "user,eventlog")],
    );
    server.update_settings(
        "user",
        json!({ "consent_options": [
            {"id": "terms", "title": "Terms of use", "text": "The terms.", "version": "1", "required": true},
            {"id": "news", "title": "Newsletter", "text": "Monthly news.", "version": "2", "required": false}
        ]}),
    );
    let browser = Browser::start().await;
    browser
        .login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD)
        .await;

    // The admin center shows the example plugin's card; its page opens.
    browser.click_text("Admin center").await;
    browser.wait_for_path("/ui/admin").await;
    assert!(browser.main_text().await.contains("Event log"));
    browser.screenshot("admin-center").await;
    browser.click("a[href='/ui/admin/events']").await;
    browser.wait_for_path("/ui/admin/events").await;
    assert!(browser.main_text().await.contains("settings.updated"));
    browser.screenshot("event-log").await;

    // Avatar upload (a multipart form post).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("me.png");
    std::fs::write(&file, PNG).unwrap();
    browser.goto(&server.url("/ui/account/profile")).await;
    browser
        .find("#form-avatar input[type=file]")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser.submit("avatar").await;
    browser.wait_for_text("Your picture is saved.").await;
    let src = browser
        .find("main img.image.round")
        .await
        .attr("src")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(src.starts_with("data:image/png;base64,iVBOR"), "{src}");

    // Consents: accept the optional one, then revoke it (confirm dialog).
    browser.goto(&server.url("/ui/account/consents")).await;
    browser.submit("accept-news").await;
    browser.wait_for_text("Consent given.").await;
    browser.screenshot("consents").await;
    browser.submit("revoke-news").await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_for_text("Consent revoked.").await;
    let text = browser.main_text().await;
    assert!(
        text.contains("Revoked"),
        "history and state show the revocation"
    );

    // Sessions: a second session can be ended from the list.
    let _other = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    browser.goto(&server.url("/ui/account/sessions")).await;
    let ends = browser
        .client
        .find_all(syshost_test_support::browser::Locator::Css(
            "td.row-actions button",
        ))
        .await
        .unwrap();
    assert!(!ends.is_empty(), "other sessions can be ended");
    browser.screenshot("sessions").await;
    ends[0].click().await.unwrap();
    browser.client.accept_alert().await.unwrap();
    browser.wait_for_text("The session has ended.").await;
    browser.close().await;

    // Phone width, dark mode: the navigation folds above the content and
    // the page follows the system colour scheme.
    let phone = Browser::start_with(390, 844, true).await;
    phone
        .login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD)
        .await;
    phone.wait_for_path("/ui/account/profile").await;
    let side = phone.find("nav.side").await.rectangle().await.unwrap();
    let main = phone.find("main").await.rectangle().await.unwrap();
    assert!(
        side.1 < main.1 && side.2 > 300.0,
        "side nav above main: {side:?} {main:?}"
    );
    let background = phone
        .client
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    let rgb: Vec<u32> = background
        .as_str()
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        rgb.len() >= 3 && rgb[..3].iter().all(|c| *c < 60),
        "dark background: {background}"
    );
    phone.screenshot("profile-phone-dark").await;
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searchable_checkbox_lists_filter_and_select_all_shown() {
    let (server, _smtp, _plugins) = start(&[]);
    let browser = Browser::start().await;
    browser
        .login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD)
        .await;
    browser.goto(&server.url("/ui/admin/roles")).await;
    browser.click_text("Create role").await;
    let list = "#form-create-role fieldset.checklist";
    // The script reveals the tools; the filter hides non-matching choices.
    browser
        .fill(&format!("{list} .checklist-filter"), "group.")
        .await;
    let shown = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' label.choice'))\
             .filter(function (l) { return !l.hidden; })\
             .map(function (l) { return l.querySelector('input').value; });",
            vec![json!(format!("{list} .choice-list"))],
        )
        .await
        .unwrap();
    let shown: Vec<String> = serde_json::from_value(shown).unwrap();
    assert!(!shown.is_empty(), "some group permissions are shown");
    assert!(shown.iter().all(|v| v.starts_with("group.")), "{shown:?}");
    // "Select all shown" ticks exactly the shown ones.
    browser.click(&format!("{list} .checklist-all")).await;
    browser
        .fill("#form-create-role input[name=name]", "Group keepers")
        .await;
    browser.submit("create-role").await;
    browser.wait_for_text("Role created.").await;
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let (_, roles) = server.api(Some(&token), "role", "list", json!({ "search": "keepers" }));
    let mut held: Vec<String> =
        serde_json::from_value(roles["items"][0]["permissions"].clone()).unwrap();
    held.sort();
    let mut expected = shown.clone();
    expected.sort();
    assert_eq!(held, expected);
    browser.close().await;
}
