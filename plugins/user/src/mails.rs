//! The mails User Management sends, one function per kind.
//!
//! Every mail has a plain-text and an HTML part, names the product, and
//! builds its links from the configured public base URL (host service
//! `site`), never from a request. Mails that carry a code show it on a line
//! of its own (`Code: XXXX-XXXX`) and in a link, so it can be typed or
//! clicked.

use serde::Deserialize;
use syshost_plugin_api::{Host, Mail, PluginError};

/// Product name and public base URL, from the host.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct Site {
    /// Product name used in subjects and bodies.
    pub product_name: String,
    /// Public base URL without a trailing slash.
    pub public_url: String,
}

impl Site {
    /// Asks the host.
    pub fn from_host(host: &Host) -> Result<Site, PluginError> {
        host.service("site", &serde_json::json!({}))
    }

    fn link(&self, path: &str, email: &str, code: &str) -> String {
        format!(
            "{}{path}?email={}&code={}",
            self.public_url,
            percent_encode(email),
            percent_encode(code)
        )
    }
}

/// Kind tags (the `kind` field of each mail).
pub mod kinds {
    /// Account created by an administrator.
    pub const ACCOUNT_CREATED: &str = "account_created";
    /// Confirm an email address.
    pub const VERIFY_EMAIL: &str = "verify_email";
    /// Reset a password.
    pub const PASSWORD_RESET: &str = "password_reset";
    /// The login email changed (sent to the old and the new address).
    pub const EMAIL_CHANGED: &str = "email_changed";
    /// Someone tried to register with an address that already has an account.
    pub const REGISTRATION_ATTEMPT: &str = "registration_attempt";
}

fn mail(
    to: &str,
    kind: &str,
    subject: String,
    paragraphs: &[String],
    code: Option<(&str, &str)>,
) -> Mail {
    let mut text = String::new();
    let mut html = String::from("<!doctype html><html><body style=\"font-family:sans-serif\">");
    for p in paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(p)));
    }
    if let Some((code, link)) = code {
        text.push_str(&format!("Code: {code}\n\nOr open this link:\n{link}\n\n"));
        html.push_str(&format!(
            "<p>Code: <strong style=\"font-size:1.3em;letter-spacing:.1em\">{}</strong></p><p><a href=\"{}\">{}</a></p>",
            escape(code),
            escape(link),
            escape(link)
        ));
    }
    text.push_str("If you did not expect this mail, you can ignore it.\n");
    html.push_str("<p style=\"color:#666\">If you did not expect this mail, you can ignore it.</p></body></html>");
    Mail {
        to: vec![to.to_string()],
        subject,
        text,
        html: Some(html),
        kind: kind.to_string(),
    }
}

/// An administrator created the account. With `code`, the recipient must
/// set a password with it (valid for `valid_hours`).
pub fn account_created(site: &Site, to: &str, code: Option<&str>, valid_hours: i64) -> Mail {
    let mut paragraphs = vec![format!(
        "An account for {to} has been created at {}.",
        site.product_name
    )];
    let link;
    let code = match code {
        Some(code) => {
            paragraphs.push(format!(
                "Choose your password with the code below within {valid_hours} hours."
            ));
            link = site.link("/ui/reset-password", to, code);
            Some((code, link.as_str()))
        }
        None => {
            paragraphs.push(format!(
                "You can log in at {}/account/login.",
                site.public_url
            ));
            None
        }
    };
    mail(
        to,
        kinds::ACCOUNT_CREATED,
        format!("Your {} account", site.product_name),
        &paragraphs,
        code,
    )
}

/// Confirm the address with `code` (valid for `valid_hours`).
pub fn verify_email(site: &Site, to: &str, code: &str, valid_hours: i64) -> Mail {
    let link = site.link("/ui/confirm-email", to, code);
    mail(
        to,
        kinds::VERIFY_EMAIL,
        format!("Confirm your email address for {}", site.product_name),
        &[format!(
            "Please confirm that {to} is your address. The code is valid for {valid_hours} hours."
        )],
        Some((code, &link)),
    )
}

/// Reset the password with `code` (valid for `valid_minutes`).
pub fn password_reset(site: &Site, to: &str, code: &str, valid_minutes: i64) -> Mail {
    let link = site.link("/ui/reset-password", to, code);
    mail(
        to,
        kinds::PASSWORD_RESET,
        format!("Reset your {} password", site.product_name),
        &[format!(
            "Someone asked to reset the password of {to}. The code is valid for {valid_minutes} minutes and can be used once."
        )],
        Some((code, &link)),
    )
}

/// The login email changed from `old` to `new`; sent to `to` (either one).
pub fn email_changed(site: &Site, to: &str, old: &str, new: &str) -> Mail {
    mail(
        to,
        kinds::EMAIL_CHANGED,
        format!("Your {} login email changed", site.product_name),
        &[format!(
            "The login email of your {} account changed from {old} to {new}. If you did not ask for this, contact your administrator.",
            site.product_name
        )],
        None,
    )
}

/// Someone tried to register `to`, which already has an account.
pub fn registration_attempt(site: &Site, to: &str) -> Mail {
    mail(
        to,
        kinds::REGISTRATION_ATTEMPT,
        format!("Registration attempt at {}", site.product_name),
        &[
            format!(
                "Someone tried to register a new {} account with {to}, which already has one.",
                site.product_name
            ),
            format!(
                "If it was you: log in at {}/account/login, or reset your password at {}/account/forgot.",
                site.public_url, site.public_url
            ),
        ],
        None,
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            product_name: "Acme".into(),
            public_url: "https://id.acme.test".into(),
        }
    }

    #[test]
    fn codes_appear_as_text_and_link_and_html_is_escaped() {
        let m = verify_email(&site(), "a+b@example.test", "ABCD-EFGH", 24);
        assert_eq!(m.kind, kinds::VERIFY_EMAIL);
        assert!(m.text.contains("Code: ABCD-EFGH"));
        assert!(m.text.contains(
            "https://id.acme.test/ui/confirm-email?email=a%2Bb%40example.test&code=ABCD-EFGH"
        ));
        assert!(m.subject.contains("Acme"));
        let m = registration_attempt(&site(), "<x>@example.test");
        assert!(m.html.unwrap().contains("&lt;x&gt;@example.test"));
    }

    #[test]
    fn account_created_with_and_without_code() {
        let with = account_created(&site(), "a@example.test", Some("WXYZ-2345"), 24);
        assert!(with.text.contains("Code: WXYZ-2345") && with.text.contains("/ui/reset-password?"));
        let without = account_created(&site(), "a@example.test", None, 24);
        assert!(!without.text.contains("Code:"));
        let reset = password_reset(&site(), "a@example.test", "WXYZ-2345", 60);
        assert!(reset.text.contains("60 minutes"));
        let changed = email_changed(
            &site(),
            "old@example.test",
            "old@example.test",
            "new@example.test",
        );
        assert!(
            changed.text.contains("old@example.test") && changed.text.contains("new@example.test")
        );
    }
}
