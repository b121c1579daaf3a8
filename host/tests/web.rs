//! The web frontend without a browser (and so without JavaScript): plain
//! HTTP requests against the real `syshost run` binary with the real plugin
//! libraries. Pages render, forms work as ordinary form posts, anonymous
//! visitors are sent to the login page, CSRF is refused.

use serde_json::json;
use syshost_test_support::server::WebServer;
use syshost_test_support::{library, PluginDir, SmtpSink};

const FORM: &str = "application/x-www-form-urlencoded";

fn start() -> (WebServer, SmtpSink, PluginDir) {
    let smtp = SmtpSink::start();
    let plugins = PluginDir::systems_and(&[library("syshost-example-event-log")]);
    let server = WebServer::start(
        env!("CARGO_BIN_EXE_syshost").as_ref(),
        &plugins,
        &smtp,
        &[("SYSHOST_ENABLE", "user,eventlog")],
    );
    (server, smtp, plugins)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

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

/// The session cookie a response sets (`name=value`), if any.
fn session_cookie(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("syshost_session=") && c.len() > "syshost_session=".len())
        .map(str::to_string)
}

/// The `_csrf` value of the first form on a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("a form with _csrf") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Logs in through the login form; returns the session cookie.
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
    assert_eq!(header(&headers, "location"), Some("/ui"));
    session_cookie(&headers).expect("login sets the session cookie")
}

fn create_user(server: &WebServer, email: &str, password: &str) -> String {
    let token = server.api_login(WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let (status, body) = server.api(
        Some(&token),
        "user",
        "create",
        json!({ "email": email, "password": password, "verified": true,
                "profile": {"first_name": "Bea", "last_name": "<b>Bold</b>"} }),
    );
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[test]
fn pages_and_plain_form_posts_work_without_javascript() {
    let (server, _smtp, _plugins) = start();
    let origin = server.origin();

    // The login page: a plain form, "Forgot password?" (on by default), no
    // "Register" link (self-registration is off by default), the CSP.
    let (status, headers, html) = server.request("GET", "/ui/login", &[], b"");
    assert_eq!(status, 200);
    assert!(html.contains("action=\"/ui/do/session/login\""), "{html}");
    assert!(html.contains("href=\"/ui/forgot-password\""));
    assert!(!html.contains("href=\"/ui/register\""));
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));

    // Anonymous visitors of an account page are sent to the login page.
    let (status, headers, _) = server.request("GET", "/ui/account/profile", &[], b"");
    assert_eq!(status, 303);
    assert_eq!(
        header(&headers, "location"),
        Some("/ui/login?next=%2Fui%2Faccount%2Fprofile")
    );

    // A wrong password re-shows the form with the error and the address,
    // never the password.
    let (status, _, html) = server.request(
        "POST",
        "/ui/do/session/login",
        &[("Content-Type", FORM), ("Origin", &origin)],
        form_body(&[
            ("_form", "login"),
            ("_page", "/ui/login"),
            ("email", "bea@example.test"),
            ("password", "wrong-password-123"),
        ])
        .as_bytes(),
    );
    assert_eq!(status, 422);
    assert!(html.contains("value=\"bea@example.test\""), "{html}");
    assert!(!html.contains("wrong-password-123"));
    assert!(html.contains("tone-danger"));

    create_user(&server, "bea@example.test", "a long enough password 1");
    let cookie = form_login(&server, "bea@example.test", "a long enough password 1");

    // The profile page shows the account (escaped) in the frame.
    let (status, _, html) =
        server.request("GET", "/ui/account/profile", &[("Cookie", &cookie)], b"");
    assert_eq!(status, 200);
    assert!(html.contains("Bea &lt;b&gt;Bold&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>Bold</b>"));
    assert!(html.contains("bea@example.test"));
    assert!(html.contains(">Log out</button>"));

    // A plain form post changes the profile and redirects with a flash.
    let csrf = csrf_of(&html);
    let (status, headers, _) = server.request(
        "POST",
        "/ui/do/user/update_my_contact",
        &[
            ("Content-Type", FORM),
            ("Origin", &origin),
            ("Cookie", &cookie),
        ],
        form_body(&[
            ("_csrf", &csrf),
            ("_form", "contact"),
            ("_page", "/ui/account/profile"),
            ("_success", "Saved."),
            ("profile.first_name", "Beatrix"),
            ("profile.city", "Basel"),
        ])
        .as_bytes(),
    );
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/ui/account/profile"));
    let token = server.api_login("bea@example.test", "a long enough password 1");
    let (_, me) = server.api(Some(&token), "user", "me", json!({}));
    assert_eq!(me["user"]["profile"]["first_name"], "Beatrix");
    assert_eq!(me["user"]["profile"]["city"], "Basel");

    // A bad value re-shows the page with the error at the field.
    let (status, _, html) = server.request(
        "POST",
        "/ui/do/user/update_my_contact",
        &[
            ("Content-Type", FORM),
            ("Origin", &origin),
            ("Cookie", &cookie),
        ],
        form_body(&[
            ("_csrf", &csrf),
            ("_form", "contact"),
            ("_page", "/ui/account/profile"),
            ("profile.website", "not a url"),
        ])
        .as_bytes(),
    );
    assert_eq!(status, 422);
    assert!(html.contains("field-error"), "{html}");
    assert!(html.contains("value=\"not a url\""));

    // Logging out through the frame's form ends the session.
    let (status, headers, _) = server.request(
        "POST",
        "/ui/logout",
        &[
            ("Content-Type", FORM),
            ("Origin", &origin),
            ("Cookie", &cookie),
        ],
        form_body(&[("_csrf", &csrf)]).as_bytes(),
    );
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/ui/login"));
    let (status, headers, _) =
        server.request("GET", "/ui/account/profile", &[("Cookie", &cookie)], b"");
    assert_eq!(status, 303, "the old cookie no longer works");
    assert!(header(&headers, "location")
        .unwrap()
        .starts_with("/ui/login"));
}

#[test]
fn cross_site_posts_and_missing_tokens_are_refused() {
    let (server, _smtp, _plugins) = start();
    create_user(&server, "cy@example.test", "a long enough password 2");
    let cookie = form_login(&server, "cy@example.test", "a long enough password 2");
    let (_, _, html) = server.request("GET", "/ui/account/profile", &[("Cookie", &cookie)], b"");
    let csrf = csrf_of(&html);
    let attempt = |origin: Option<&str>, csrf: &str| {
        let mut headers = vec![("Content-Type", FORM), ("Cookie", cookie.as_str())];
        if let Some(o) = origin {
            headers.push(("Origin", o));
        }
        server
            .request(
                "POST",
                "/ui/do/user/update_my_contact",
                &headers,
                form_body(&[
                    ("_csrf", csrf),
                    ("_form", "contact"),
                    ("_page", "/ui/account/profile"),
                    ("profile.city", "Evil"),
                ])
                .as_bytes(),
            )
            .0
    };
    let origin = server.origin();
    assert_eq!(attempt(Some("http://evil.example"), &csrf), 403);
    assert_eq!(attempt(None, &csrf), 403);
    assert_eq!(attempt(Some(&origin), ""), 403);
    assert_eq!(attempt(Some(&origin), "00"), 403);
    let token = server.api_login("cy@example.test", "a long enough password 2");
    let (_, me) = server.api(Some(&token), "user", "me", json!({}));
    assert!(me["user"]["profile"].get("city").is_none(), "{me}");
}

#[test]
fn a_third_party_plugin_adds_an_admin_page_and_card() {
    let (server, _smtp, _plugins) = start();
    create_user(&server, "eve@example.test", "a long enough password 4");

    // The administrator sees the example plugin's card and page.
    let admin = form_login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let (status, _, html) = server.request("GET", "/ui/admin", &[("Cookie", &admin)], b"");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h2>Event log</h2>"), "{html}");
    assert!(html.contains("href=\"/ui/admin/events\""));
    assert!(
        html.contains(">Admin center</a>"),
        "top navigation links the admin center"
    );
    let (status, _, html) = server.request("GET", "/ui/admin/events", &[("Cookie", &admin)], b"");
    assert_eq!(status, 200);
    assert!(
        html.contains("user.created"),
        "the recorded events are listed: {html}"
    );
    assert!(
        html.contains("href=\"/ui/admin\""),
        "breadcrumb back to the admin center"
    );

    // A user without `eventlog.read` gets 403 for the page and sees no card.
    let eve = form_login(&server, "eve@example.test", "a long enough password 4");
    let (status, _, html) = server.request("GET", "/ui/admin/events", &[("Cookie", &eve)], b"");
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("eventlog.read"));
    let (status, _, html) = server.request("GET", "/ui/admin", &[("Cookie", &eve)], b"");
    assert_eq!(status, 403);
    assert!(!html.contains("/ui/admin/events"));
    assert!(!html.contains(">Admin center</a>"));

    // Anonymous visitors are sent to the login page.
    let (status, headers, _) = server.request("GET", "/ui/admin/events", &[], b"");
    assert_eq!(status, 303);
    assert_eq!(
        header(&headers, "location"),
        Some("/ui/login?next=%2Fui%2Fadmin%2Fevents")
    );
}

#[test]
fn the_admin_center_is_forbidden_without_permissions() {
    let (server, _smtp, _plugins) = start();
    create_user(&server, "dee@example.test", "a long enough password 3");
    let cookie = form_login(&server, "dee@example.test", "a long enough password 3");
    let (status, _, html) = server.request("GET", "/ui/admin", &[("Cookie", &cookie)], b"");
    assert_eq!(status, 403);
    assert!(html.contains("Not allowed"));
    assert!(
        html.contains("dee@example.test"),
        "the error page has the frame"
    );
    let (status, _, html) = server.request("GET", "/ui/no/such/page", &[("Cookie", &cookie)], b"");
    assert_eq!(status, 404);
    assert!(html.contains("Page not found"));
    let (status, headers, _) = server.request("GET", "/ui/static/app.css", &[], b"");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/css"));
}

#[test]
fn registration_errors_and_the_data_export_as_plain_form_posts() {
    let (server, smtp, _plugins) = start();
    let origin = server.origin();
    server.update_settings(
        "user",
        json!({ "self_registration": true, "consent_options": [
            {"id": "terms", "title": "Terms of use", "text": "The terms.", "version": "1", "required": true}
        ]}),
    );
    let (status, _, html) = server.request("GET", "/ui/register", &[], b"");
    assert_eq!(status, 200);
    assert!(html.contains("Terms of use (required)"), "{html}");
    assert!(html.contains("class=\"pw-rules\""), "live password rules");
    let register = |consents: &[&str]| {
        let mut pairs = vec![
            ("_form", "register"),
            ("_page", "/ui/register"),
            ("_next", "/ui/confirm-email?email={email}"),
            ("_kinds", r#"{"consents":"checkboxes"}"#),
            ("email", "fay@example.test"),
            ("password", "a long enough password 5"),
            ("profile.first_name", "Fay"),
            ("profile.last_name", "Wray"),
        ];
        for c in consents {
            pairs.push(("consents", c));
        }
        server.request(
            "POST",
            "/ui/do/user/register",
            &[("Content-Type", FORM), ("Origin", &origin)],
            form_body(&pairs).as_bytes(),
        )
    };
    // Without the required consent: the page again, with the error at the
    // consents and the values kept (not the password).
    let (status, _, html) = register(&[]);
    assert_eq!(status, 422);
    assert!(
        html.contains("consent &#39;terms&#39; is required"),
        "{html}"
    );
    assert!(html.contains("value=\"fay@example.test\""));
    assert!(!html.contains("a long enough password 5"));
    // With it: on to the confirmation page, and the mail links there.
    let (status, headers, _) = register(&["terms"]);
    assert_eq!(status, 303);
    assert_eq!(
        header(&headers, "location"),
        Some("/ui/confirm-email?email=fay%40example.test")
    );
    let mail = smtp.wait_for_to("fay@example.test", 1, std::time::Duration::from_secs(15));
    assert!(
        mail.contains(&format!(
            "{origin}/ui/confirm-email?email=fay%40example.test&code="
        )),
        "{mail}"
    );

    // "Export my data" answers a JSON file download.
    let cookie = form_login(&server, WebServer::ADMIN_EMAIL, WebServer::ADMIN_PASSWORD);
    let (_, _, html) = server.request("GET", "/ui/account/export", &[("Cookie", &cookie)], b"");
    let download =
        "{\"filename\":\"my-data.json\",\"content_type\":\"application/json\",\"field\":null}";
    assert!(html.contains("name=\"_download\""), "{html}");
    let (status, headers, body) = server.request(
        "POST",
        "/ui/do/user/export_my_data",
        &[
            ("Content-Type", FORM),
            ("Origin", &origin),
            ("Cookie", &cookie),
        ],
        form_body(&[
            ("_csrf", &csrf_of(&html)),
            ("_form", "export"),
            ("_page", "/ui/account/export"),
            ("_download", download),
        ])
        .as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("attachment; filename=\"my-data.json\"")
    );
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["user"]["email"], WebServer::ADMIN_EMAIL);
}
