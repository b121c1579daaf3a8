//! The `user` system's web pages (see `syshost_plugin_api::view`): the
//! public account pages ([`public`]), the self-service pages
//! ([`account`]) and the admin-center user management ([`admin`]). Each
//! page is one operation returning a `View`.

pub mod account;
pub mod admin;
pub mod public;

use syshost_plugin_api::view::{Choice, PasswordRules};
use syshost_plugin_api::{Manifest, Operations, PluginError};

use crate::model::Ctx;
use crate::UserSystem;

/// Adds the page declarations to the manifest.
pub fn declare(manifest: Manifest) -> Manifest {
    admin::declare(account::declare(public::declare(manifest)))
}

/// Adds the page operations.
pub fn operations(ops: Operations<UserSystem>) -> Operations<UserSystem> {
    admin::operations(account::operations(public::operations(ops)))
}

/// The password rules for live feedback, from the policy in the settings.
pub fn password_rules(ctx: &Ctx) -> Result<PasswordRules, PluginError> {
    let policy = crate::admin::password_policy(ctx)?;
    Ok(PasswordRules {
        min_length: u32::try_from(policy.min_length).unwrap_or(u32::MAX),
        ..Default::default()
    })
}

/// The profile fields in form order: `(field, label)`.
pub const PROFILE_FIELDS: [(&str, &str); 17] = [
    ("salutation", "Salutation"),
    ("title", "Title"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("phone", "Phone"),
    ("mobile", "Mobile"),
    ("company", "Company"),
    ("position", "Position"),
    ("professional_group", "Professional group"),
    ("street", "Street"),
    ("postal_code", "Postal code"),
    ("city", "City"),
    ("state", "State"),
    ("country", "Country"),
    ("preferred_language", "Preferred language"),
    ("website", "Website"),
    ("about_me", "About me"),
];

/// Language choices for `preferred_language` (BCP 47 tags), keeping
/// `current` selectable even when it is not in the list.
pub fn language_choices(current: &str) -> Vec<Choice> {
    let mut out = vec![Choice::new("", "Not set")];
    for (tag, name) in [
        ("en", "English"),
        ("de", "Deutsch"),
        ("fr", "Français"),
        ("es", "Español"),
        ("it", "Italiano"),
        ("nl", "Nederlands"),
        ("pl", "Polski"),
        ("pt", "Português"),
    ] {
        out.push(Choice::new(tag, name));
    }
    if !current.is_empty() && !out.iter().any(|c| c.value == current) {
        out.push(Choice::new(current, current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_keep_the_current_tag() {
        assert!(
            language_choices("de")
                .iter()
                .filter(|c| c.value == "de")
                .count()
                == 1
        );
        assert!(language_choices("sv-SE").iter().any(|c| c.value == "sv-SE"));
    }
}
