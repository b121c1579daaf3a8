//! The contact/profile data of a user, its validation, the registration
//! field rules of the user settings, and avatar checks.

use serde::{Deserialize, Serialize};
use syshost_plugin_api::PluginError;

/// Longest value of a one-line profile field, in characters.
pub const MAX_FIELD_CHARS: usize = 200;
/// Longest `about_me`, in characters.
pub const MAX_ABOUT_ME_CHARS: usize = 4000;
/// Largest avatar, in bytes (256 KiB).
pub const AVATAR_MAX_BYTES: usize = 256 * 1024;
/// The accepted avatar content types.
pub const AVATAR_TYPES: [&str; 3] = ["image/png", "image/jpeg", "image/webp"];

/// The names of the profile fields, in display and export order.
pub const FIELDS: [&str; 17] = [
    "salutation",
    "title",
    "first_name",
    "last_name",
    "phone",
    "mobile",
    "company",
    "position",
    "professional_group",
    "street",
    "postal_code",
    "city",
    "state",
    "country",
    "preferred_language",
    "website",
    "about_me",
];

/// The contact/profile of a user. Every field is an optional string; absent
/// and empty mean the same ([`Profile::validated`] turns blank values into
/// `None`). Absent fields are left out of the JSON.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Form of address, e.g. "Ms".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salutation: Option<String>,
    /// Official or academic title, e.g. "Dr.".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Landline number: digits, spaces and `+ - ( ) /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Mobile number: digits, spaces and `+ - ( ) /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Company or organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Position or job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Professional group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub professional_group: Option<String>,
    /// Street and number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Preferred language as a BCP 47 tag, e.g. "de" or "en-GB".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    /// Web site, an `http://` or `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Free text about the user (may span lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about_me: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> PluginError {
    PluginError::invalid_field(&format!("profile.{field}"), message)
}

/// Characters that reorder or hide text and so allow spoofed names
/// (bidirectional embeddings, overrides and isolates, BOM).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

impl Profile {
    /// `(name, value)` of every field, in [`FIELDS`] order.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 17] {
        fn v(o: &Option<String>) -> Option<&str> {
            o.as_deref()
        }
        [
            ("salutation", v(&self.salutation)),
            ("title", v(&self.title)),
            ("first_name", v(&self.first_name)),
            ("last_name", v(&self.last_name)),
            ("phone", v(&self.phone)),
            ("mobile", v(&self.mobile)),
            ("company", v(&self.company)),
            ("position", v(&self.position)),
            ("professional_group", v(&self.professional_group)),
            ("street", v(&self.street)),
            ("postal_code", v(&self.postal_code)),
            ("city", v(&self.city)),
            ("state", v(&self.state)),
            ("country", v(&self.country)),
            ("preferred_language", v(&self.preferred_language)),
            ("website", v(&self.website)),
            ("about_me", v(&self.about_me)),
        ]
    }

    fn fields_mut(&mut self) -> [(&'static str, &mut Option<String>); 17] {
        [
            ("salutation", &mut self.salutation),
            ("title", &mut self.title),
            ("first_name", &mut self.first_name),
            ("last_name", &mut self.last_name),
            ("phone", &mut self.phone),
            ("mobile", &mut self.mobile),
            ("company", &mut self.company),
            ("position", &mut self.position),
            ("professional_group", &mut self.professional_group),
            ("street", &mut self.street),
            ("postal_code", &mut self.postal_code),
            ("city", &mut self.city),
            ("state", &mut self.state),
            ("country", &mut self.country),
            ("preferred_language", &mut self.preferred_language),
            ("website", &mut self.website),
            ("about_me", &mut self.about_me),
        ]
    }

    /// The value of the field `name` (one of [`FIELDS`]); `None` when absent
    /// or unknown.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields()
            .into_iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
    }

    /// Whether every field is absent or blank.
    pub fn is_empty(&self) -> bool {
        self.fields()
            .iter()
            .all(|(_, v)| v.is_none_or(|s| s.trim().is_empty()))
    }

    /// The validated, normalised profile. Every value is trimmed and a blank
    /// one becomes `None`. Rules: at most 200 characters (`about_me` 4000);
    /// no control characters (`about_me` may hold line breaks, normalised to
    /// `\n`, and tabs) and no bidirectional-override characters;
    /// `preferred_language` a BCP 47 tag (subtags of 1-8 letters/digits
    /// joined by `-`, the first 2-3 letters; returned in canonical case, e.g.
    /// `en-GB`, `zh-Hant-TW`); `website` an `http://` or `https://` URL with
    /// a host and no spaces or user info; `phone`/`mobile` only digits,
    /// spaces and `+ - ( ) /`, with at least one digit.
    ///
    /// Errors name the field: `invalid_field("profile.first_name", ..)`.
    pub fn validated(mut self) -> Result<Profile, PluginError> {
        for (name, slot) in self.fields_mut() {
            let Some(raw) = slot.take() else { continue };
            let value = if name == "about_me" {
                raw.replace("\r\n", "\n").replace('\r', "\n")
            } else {
                raw
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            *slot = Some(check_field(name, value)?);
        }
        Ok(self)
    }

    /// Checks the `registration_fields` rules of the user settings (an
    /// object mapping field names to `"hidden"`, `"optional"` or
    /// `"required"`; the whole settings section with a `registration_fields`
    /// member is accepted too): required fields must be non-blank, hidden
    /// fields must be blank. Unknown rules and field names are ignored.
    ///
    /// Errors name the field: `invalid_field("profile.last_name", ..)`.
    pub fn check_registration_rules(&self, rules: &serde_json::Value) -> Result<(), PluginError> {
        let rules = match rules.get("registration_fields") {
            Some(inner) if inner.is_object() => inner,
            _ => rules,
        };
        for (name, value) in self.fields() {
            let blank = value.is_none_or(|s| s.trim().is_empty());
            match rules.get(name).and_then(serde_json::Value::as_str) {
                Some("required") if blank => {
                    return Err(invalid(name, format!("{} is required", label(name))));
                }
                Some("hidden") if !blank => {
                    return Err(invalid(name, format!("{} must not be given", label(name))));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// "First Last" (whichever of the two is given), or `email` when both
    /// are blank.
    pub fn display_name(&self, email: &str) -> String {
        let parts: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .filter_map(|o| o.as_deref().map(str::trim))
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            email.to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// The field name for messages ("first name").
fn label(name: &str) -> String {
    name.replace('_', " ")
}

fn check_field(name: &str, value: &str) -> Result<String, PluginError> {
    let multiline = name == "about_me";
    let max = if multiline {
        MAX_ABOUT_ME_CHARS
    } else {
        MAX_FIELD_CHARS
    };
    if value.chars().count() > max {
        return Err(invalid(
            name,
            format!("{} must be at most {max} characters long", label(name)),
        ));
    }
    if value
        .chars()
        .any(|c| (c.is_control() && !(multiline && (c == '\n' || c == '\t'))) || is_bidi_control(c))
    {
        return Err(invalid(
            name,
            if multiline {
                format!(
                    "{} must not contain control characters other than line breaks and tabs",
                    label(name)
                )
            } else {
                format!(
                    "{} must not contain control characters or line breaks",
                    label(name)
                )
            },
        ));
    }
    match name {
        "preferred_language" => language_tag(value),
        "website" => website(value),
        "phone" | "mobile" => phone(name, value),
        _ => Ok(value.to_string()),
    }
}

fn language_tag(value: &str) -> Result<String, PluginError> {
    let bad = || {
        invalid(
            "preferred_language",
            format!(
                "preferred language {value:?} is not a BCP 47 language tag such as \"de\" or \"en-GB\""
            ),
        )
    };
    let subtags: Vec<&str> = value.split('-').collect();
    let primary = subtags.first().copied().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    if subtags
        .iter()
        .any(|s| s.is_empty() || s.len() > 8 || !s.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(bad());
    }
    // Canonical case: language lower, script title, region upper, and
    // everything from the first singleton (extension/private use) on lower.
    let mut out: Vec<String> = Vec::with_capacity(subtags.len());
    let mut in_extension = false;
    for (i, s) in subtags.iter().enumerate() {
        let lower = s.to_ascii_lowercase();
        if i > 0 && s.len() == 1 {
            in_extension = true;
        }
        let alpha = s.chars().all(|c| c.is_ascii_alphabetic());
        let cased = if i == 0 || in_extension {
            lower
        } else if s.len() == 4 && alpha {
            let mut t = lower;
            t[..1].make_ascii_uppercase();
            t
        } else if s.len() == 2 && alpha {
            s.to_ascii_uppercase()
        } else {
            lower
        };
        out.push(cased);
    }
    Ok(out.join("-"))
}

fn website(value: &str) -> Result<String, PluginError> {
    let lower = value.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &value[8..]
    } else if lower.starts_with("http://") {
        &value[7..]
    } else {
        return Err(invalid(
            "website",
            "website must be a URL starting with http:// or https://",
        ));
    };
    if value.chars().any(char::is_whitespace) {
        return Err(invalid("website", "website must not contain spaces"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            "website",
            "website must not contain user information ('@' before the host)",
        ));
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    if host.is_empty() || host.starts_with('.') || host.contains("..") {
        return Err(invalid(
            "website",
            "website must name a host after the scheme",
        ));
    }
    Ok(value.to_string())
}

fn phone(name: &str, value: &str) -> Result<String, PluginError> {
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_digit() || " +-()/".contains(*c)))
    {
        return Err(invalid(
            name,
            format!("{name} must contain only digits, spaces and + - ( ) /, not {c:?}"),
        ));
    }
    if !value.chars().any(|c| c.is_ascii_digit()) {
        return Err(invalid(name, format!("{name} must contain digits")));
    }
    Ok(value.to_string())
}

/// The canonical form (one of [`AVATAR_TYPES`]) of an avatar content type
/// given by a caller: trimmed, ASCII case-insensitive, parameters after `;`
/// ignored. Error: `invalid_field("content_type", ..)`.
pub fn avatar_content_type(content_type: &str) -> Result<&'static str, PluginError> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    AVATAR_TYPES
        .iter()
        .copied()
        .find(|t| *t == essence)
        .ok_or_else(|| {
            PluginError::invalid_field(
                "content_type",
                format!(
                    "unsupported avatar type {content_type:?}: use image/png, image/jpeg or image/webp"
                ),
            )
        })
}

/// Checks an avatar: the content type is one of [`AVATAR_TYPES`] (see
/// [`avatar_content_type`]), the data is non-empty and at most 256 KiB, and
/// its magic number matches the type (PNG signature, JPEG SOI marker
/// `FF D8 FF`, WebP `RIFF....WEBP`).
///
/// Errors: `invalid_field("content_type", ..)` for the type,
/// `invalid_field("avatar", ..)` for the data.
pub fn validate_avatar(content_type: &str, bytes: &[u8]) -> Result<(), PluginError> {
    let ty = avatar_content_type(content_type)?;
    if bytes.is_empty() {
        return Err(PluginError::invalid_field(
            "avatar",
            "avatar image is empty",
        ));
    }
    if bytes.len() > AVATAR_MAX_BYTES {
        return Err(PluginError::invalid_field(
            "avatar",
            format!(
                "avatar image is {} bytes; at most {AVATAR_MAX_BYTES} bytes (256 KiB) are allowed",
                bytes.len()
            ),
        ));
    }
    let matches = match ty {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        _ => false,
    };
    if !matches {
        return Err(PluginError::invalid_field(
            "avatar",
            format!("avatar data is not a {ty} image"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_error(p: Profile, field: &str) -> String {
        let e = p.validated().expect_err(field);
        assert!(e.is("invalid_input"));
        assert_eq!(
            e.details,
            Some(json!({"field": format!("profile.{field}")})),
            "{e:?}"
        );
        e.message
    }

    fn with(field: &str, value: &str) -> Profile {
        serde_json::from_value(json!({ field: value })).unwrap()
    }

    #[test]
    fn json_shape() {
        let p: Profile = serde_json::from_value(json!({"first_name": "Ann"})).unwrap();
        assert_eq!(p.first_name.as_deref(), Some("Ann"));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"first_name": "Ann"})
        );
        assert_eq!(serde_json::to_value(Profile::default()).unwrap(), json!({}));
        let p: Profile = serde_json::from_value(json!({"phone": null})).unwrap();
        assert_eq!(p, Profile::default());
        assert!(serde_json::from_value::<Profile>(json!({"nickname": "x"})).is_err());
        assert!(serde_json::from_value::<Profile>(json!({"city": 5})).is_err());
    }

    #[test]
    fn fields_cover_every_member() {
        let mut v = serde_json::Map::new();
        for f in FIELDS {
            v.insert(f.to_string(), json!(format!("v-{f}")));
        }
        let p: Profile = serde_json::from_value(serde_json::Value::Object(v)).unwrap();
        for (i, (name, value)) in p.fields().into_iter().enumerate() {
            assert_eq!(name, FIELDS[i]);
            assert_eq!(value, Some(format!("v-{name}").as_str()));
            assert_eq!(p.get(name), value);
        }
        assert_eq!(p.get("nope"), None);
        assert!(!p.is_empty());
        assert!(Profile::default().is_empty());
        assert!(with("city", "  ").is_empty());
    }

    #[test]
    fn trims_and_drops_blank_values() {
        let p = Profile {
            first_name: Some("  Ann ".into()),
            last_name: Some("   ".into()),
            city: Some(String::new()),
            about_me: Some("\r\n line one\r\nline two\t\r\n".into()),
            ..Default::default()
        }
        .validated()
        .unwrap();
        assert_eq!(p.first_name.as_deref(), Some("Ann"));
        assert_eq!(p.last_name, None);
        assert_eq!(p.city, None);
        assert_eq!(p.about_me.as_deref(), Some("line one\nline two"));
        assert_eq!(Profile::default().validated().unwrap(), Profile::default());
    }

    #[test]
    fn length_limits() {
        for f in FIELDS {
            if matches!(
                f,
                "phone" | "mobile" | "website" | "preferred_language" | "about_me"
            ) {
                continue;
            }
            assert!(with(f, &"ü".repeat(200)).validated().is_ok(), "{f}");
            assert!(
                field_error(with(f, &"x".repeat(201)), f).contains("200"),
                "{f}"
            );
        }
        assert!(with("about_me", &"x".repeat(4000)).validated().is_ok());
        assert!(field_error(with("about_me", &"x".repeat(4001)), "about_me").contains("4000"));
        let long_url = format!("https://example.com/{}", "a".repeat(181));
        assert!(field_error(with("website", &long_url), "website").contains("200"));
    }

    #[test]
    fn control_characters() {
        assert!(field_error(with("first_name", "An\nn"), "first_name").contains("control"));
        assert!(field_error(with("city", "Ber\tlin"), "city").contains("control"));
        assert!(field_error(with("company", "A\u{0}B"), "company").contains("control"));
        assert!(field_error(with("last_name", "\u{202E}nna"), "last_name").contains("control"));
        assert!(field_error(with("about_me", "a\u{7}b"), "about_me").contains("line breaks"));
        assert!(with("about_me", "a\n\tb").validated().is_ok());
        // Non-Latin scripts and joiners are fine.
        assert!(with("first_name", "Zoë").validated().is_ok());
        assert!(with("last_name", "می\u{200C}خواهم").validated().is_ok());
    }

    #[test]
    fn preferred_language() {
        let lang = |v: &str| {
            with("preferred_language", v)
                .validated()
                .map(|p| p.preferred_language)
        };
        assert_eq!(lang("de").unwrap().as_deref(), Some("de"));
        assert_eq!(lang("EN-gb").unwrap().as_deref(), Some("en-GB"));
        assert_eq!(lang("zh-hant-tw").unwrap().as_deref(), Some("zh-Hant-TW"));
        assert_eq!(lang("es-419").unwrap().as_deref(), Some("es-419"));
        assert_eq!(lang("gsw").unwrap().as_deref(), Some("gsw"));
        assert_eq!(
            lang("de-DE-x-Phonebk").unwrap().as_deref(),
            Some("de-DE-x-phonebk")
        );
        for bad in [
            "e",
            "engl",
            "en_GB",
            "en-",
            "-en",
            "en--GB",
            "12",
            "en-toolongtag",
            "dé",
        ] {
            assert!(
                field_error(with("preferred_language", bad), "preferred_language")
                    .contains("BCP 47"),
                "{bad}"
            );
        }
    }

    #[test]
    fn website() {
        for good in [
            "https://example.com",
            "http://example.com/path?q=1#x",
            "HTTPS://Example.com:8443/",
        ] {
            assert_eq!(
                with("website", good)
                    .validated()
                    .unwrap()
                    .website
                    .as_deref(),
                Some(good)
            );
        }
        assert!(field_error(with("website", "example.com"), "website").contains("http"));
        assert!(field_error(with("website", "javascript:alert(1)"), "website").contains("http"));
        assert!(field_error(with("website", "ftp://example.com"), "website").contains("http"));
        assert!(field_error(with("website", "https://"), "website").contains("host"));
        assert!(field_error(with("website", "https:///path"), "website").contains("host"));
        assert!(field_error(with("website", "https://exa mple.com"), "website").contains("spaces"));
        assert!(
            field_error(with("website", "https://good.com@evil.com"), "website").contains("user")
        );
    }

    #[test]
    fn phone_numbers() {
        for good in ["+49 (0)30 123456-7", "030/1234", "12"] {
            assert!(with("phone", good).validated().is_ok(), "{good}");
            assert!(with("mobile", good).validated().is_ok(), "{good}");
        }
        assert!(field_error(with("phone", "call me"), "phone").contains("only digits"));
        assert!(field_error(with("mobile", "0171 12345 ext. 2"), "mobile").contains("only digits"));
        assert!(field_error(with("phone", "+-()/"), "phone").contains("digits"));
        assert!(field_error(with("phone", "٣٤٥"), "phone").contains("only digits"));
    }

    #[test]
    fn first_error_names_its_field() {
        let p = Profile {
            first_name: Some("x".repeat(300)),
            website: Some("nope".into()),
            ..Default::default()
        };
        field_error(p, "first_name");
    }

    #[test]
    fn registration_rules() {
        let rules = json!({
            "first_name": "required",
            "last_name": "required",
            "phone": "optional",
            "company": "hidden",
            "city": "bogus",
        });
        let ok = Profile {
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            city: Some("Bonn".into()),
            ..Default::default()
        };
        ok.check_registration_rules(&rules).unwrap();
        // The whole settings section works too.
        ok.check_registration_rules(&json!({"registration_fields": rules}))
            .unwrap();

        let missing = Profile {
            first_name: Some("Ann".into()),
            last_name: Some("  ".into()),
            ..Default::default()
        };
        let e = missing.check_registration_rules(&rules).unwrap_err();
        assert_eq!(e.details, Some(json!({"field": "profile.last_name"})));
        assert!(e.message.contains("last name is required"));

        let hidden = Profile {
            company: Some("ACME".into()),
            ..ok.clone()
        };
        let e = hidden.check_registration_rules(&rules).unwrap_err();
        assert_eq!(e.details, Some(json!({"field": "profile.company"})));
        assert!(e.message.contains("must not be given"));

        // No rules: everything goes.
        Profile::default()
            .check_registration_rules(&json!({}))
            .unwrap();
        Profile::default()
            .check_registration_rules(&json!(null))
            .unwrap();
    }

    #[test]
    fn display_name() {
        let p = |f: Option<&str>, l: Option<&str>| Profile {
            first_name: f.map(String::from),
            last_name: l.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            p(Some("Ann"), Some("Lee")).display_name("a@x.org"),
            "Ann Lee"
        );
        assert_eq!(p(Some("Ann"), None).display_name("a@x.org"), "Ann");
        assert_eq!(p(None, Some("Lee")).display_name("a@x.org"), "Lee");
        assert_eq!(p(Some(" "), Some("")).display_name("a@x.org"), "a@x.org");
        assert_eq!(p(None, None).display_name("a@x.org"), "a@x.org");
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";

    #[test]
    fn avatar_types_and_magic() {
        validate_avatar("image/png", PNG).unwrap();
        validate_avatar("image/jpeg", JPEG).unwrap();
        validate_avatar("image/webp", WEBP).unwrap();
        validate_avatar(" Image/PNG; charset=binary", PNG).unwrap();
        assert_eq!(avatar_content_type("IMAGE/WEBP").unwrap(), "image/webp");

        for (ty, data) in [
            ("image/png", JPEG),
            ("image/jpeg", PNG),
            ("image/webp", PNG),
            ("image/webp", b"RIFF\0\0\0\0WAVEfmt "),
            ("image/webp", b"RIFF"),
            ("image/png", b"<svg/>"),
        ] {
            let e = validate_avatar(ty, data).unwrap_err();
            assert_eq!(e.details, Some(json!({"field": "avatar"})), "{ty}");
            assert!(e.message.contains("not a"), "{ty}: {e:?}");
        }
        for ty in ["image/gif", "image/svg+xml", "text/html", "", "image/jpg"] {
            let e = validate_avatar(ty, PNG).unwrap_err();
            assert_eq!(e.details, Some(json!({"field": "content_type"})), "{ty}");
        }
    }

    #[test]
    fn avatar_size() {
        let e = validate_avatar("image/png", b"").unwrap_err();
        assert!(e.message.contains("empty"));
        let mut big = PNG.to_vec();
        big.resize(AVATAR_MAX_BYTES, 0);
        validate_avatar("image/png", &big).unwrap();
        big.push(0);
        let e = validate_avatar("image/png", &big).unwrap_err();
        assert_eq!(e.details, Some(json!({"field": "avatar"})));
        assert!(e.message.contains("256 KiB"));
    }
}
