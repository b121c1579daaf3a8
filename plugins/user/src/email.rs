//! E-mail addresses: validation, normalisation, the uniqueness key and the
//! domain allow-list.
//!
//! Accepted form: `local@domain` with exactly one `@`, no quoted local parts
//! and no address literals. The local part may hold the RFC 5322 `atext`
//! characters (`A-Z a-z 0-9 ! # $ % & ' * + - / = ? ^ _ \` { | } ~`), dots
//! between them, and any non-ASCII character that is not a control,
//! whitespace or invisible formatting character (RFC 6531, e.g. `jürgen`).
//! The domain is a dot-separated list of labels of letters (ASCII or
//! Unicode), digits and hyphens, with at least one dot unless it is
//! `localhost`.

use syshost_plugin_api::PluginError;
use unicode_normalization::UnicodeNormalization;

/// Longest local part, in bytes (RFC 5321).
pub const MAX_LOCAL_BYTES: usize = 64;
/// Longest address, in bytes (RFC 5321 path limit less the angle brackets).
pub const MAX_TOTAL_BYTES: usize = 254;
/// Longest domain label, in characters.
pub const MAX_LABEL_CHARS: usize = 63;

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::invalid_field("email", message)
}

/// Invisible formatting characters that make two addresses look alike
/// (zero-width characters, bidirectional controls, soft hyphen, BOM).
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

fn local_char_ok(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
    } else {
        !c.is_control() && !c.is_whitespace() && !is_invisible(c)
    }
}

fn label_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
}

/// Trims, NFC-normalises, lower-cases the domain (not the local part) and
/// maps it to its compatibility form (NFKC, as IDNA does), and validates
/// (see the module docs for the accepted form).
///
/// Rejects (as `invalid_field("email", ..)`): whitespace or control or
/// invisible characters inside, a missing or second `@`, an empty local part
/// or domain, a local part over 64 bytes or an address over 254 bytes,
/// dots at the start or end of the local part or doubled, and bad domain
/// labels (empty, over 63 characters, characters other than letters, digits
/// and hyphens, starting or ending with `-`, an all-numeric top-level label),
/// and a domain without a dot other than `localhost`.
pub fn normalize(input: &str) -> Result<String, PluginError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid("email address is empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace()) {
        return Err(invalid("email address must not contain spaces"));
    }
    if trimmed.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(invalid(
            "email address must not contain control or invisible characters",
        ));
    }
    let nfc: String = trimmed.nfc().collect();
    let mut parts = nfc.split('@');
    let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => (local, domain),
        (_, None, _) => return Err(invalid("email address must contain an '@'")),
        _ => return Err(invalid("email address must contain exactly one '@'")),
    };
    if local.is_empty() {
        return Err(invalid(
            "email address has an empty local part (before '@')",
        ));
    }
    if domain.is_empty() {
        return Err(invalid("email address has an empty domain (after '@')"));
    }
    if local.len() > MAX_LOCAL_BYTES {
        return Err(invalid(format!(
            "the local part (before '@') is longer than {MAX_LOCAL_BYTES} bytes"
        )));
    }
    if let Some(c) = local.chars().find(|c| !local_char_ok(*c)) {
        return Err(invalid(format!(
            "the local part (before '@') must not contain {c:?}"
        )));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(invalid(
            "the local part (before '@') must not start or end with a dot or contain '..'",
        ));
    }
    let domain = fold_domain(domain);
    check_domain(&domain)?;
    let normalized = format!("{local}@{domain}");
    if normalized.len() > MAX_TOTAL_BYTES {
        return Err(invalid(format!(
            "email address is longer than {MAX_TOTAL_BYTES} bytes"
        )));
    }
    Ok(normalized)
}

/// Lower-cases a domain and applies Unicode compatibility normalisation
/// (NFKC), as IDNA's mapping does, so `ﬁ.example` and `fi.example` (one
/// domain in DNS) are one domain here too. Repeated until stable, because
/// lower-casing can undo NFKC and the reverse (at most a few rounds). The
/// final sigma `ς` folds to `σ` (as Unicode case folding and IDNA's
/// transitional mapping do): otherwise `Σ` and `Ϲ`, whose lower-case and
/// NFKC forms are `σ` and `ς`, would name one domain with two keys.
fn fold_domain(domain: &str) -> String {
    let mut current = domain.to_string();
    for _ in 0..4 {
        let next: String = current
            .to_lowercase()
            .nfkc()
            .map(|c| if c == 'ς' { 'σ' } else { c })
            .collect();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn check_domain(domain: &str) -> Result<(), PluginError> {
    if domain == "localhost" {
        return Ok(());
    }
    if !domain.contains('.') {
        return Err(invalid(format!(
            "the domain {domain:?} must contain a dot (e.g. example.com)"
        )));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(invalid(format!(
                "the domain {domain:?} has an empty label (leading, trailing or doubled dot)"
            )));
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err(invalid(format!(
                "the domain label {label:?} is longer than {MAX_LABEL_CHARS} characters"
            )));
        }
        if let Some(c) = label.chars().find(|c| !label_char_ok(*c)) {
            return Err(invalid(format!(
                "the domain {domain:?} must not contain {c:?}; only letters, digits, '-' and '.'"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(format!(
                "the domain label {label:?} must not start or end with '-'"
            )));
        }
    }
    if let Some(tld) = labels.last() {
        if tld.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(format!(
                "the domain {domain:?} must end in a name, not a number"
            )));
        }
    }
    Ok(())
}

/// The uniqueness key of a [`normalize`]d address: the address with the
/// local part lower-cased too, so `Ann@x.org` and `ann@x.org` are one account.
pub fn key(normalized: &str) -> String {
    normalized.to_lowercase()
}

/// The domain of a normalised address (after the last `@`).
pub fn domain(normalized: &str) -> &str {
    normalized.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Whether `normalized`'s domain equals one of `allowed` or ends with `.` +
/// one of them (case-insensitive; an entry may carry a leading `@` or `.`
/// and a trailing dot, and blank entries match nothing). An empty list
/// allows every address.
pub fn domain_allowed(normalized: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let domain = domain(normalized).to_lowercase();
    allowed.iter().any(|entry| {
        let suffix = entry
            .trim()
            .trim_start_matches(['@', '.'])
            .trim_end_matches('.')
            .to_lowercase();
        if suffix.is_empty() {
            return false;
        }
        domain == suffix
            || domain
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        normalize(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"))
    }

    fn bad(input: &str) -> String {
        let e = normalize(input).expect_err(input);
        assert!(e.is("invalid_input"), "{e:?}");
        assert_eq!(e.details, Some(serde_json::json!({"field": "email"})));
        e.message
    }

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(ok("a+tag@Example.COM"), "a+tag@example.com");
        assert_eq!(ok("  Ann.Lee@example.org \n"), "Ann.Lee@example.org");
        assert_eq!(ok("jürgen@example.com"), "jürgen@example.com");
        assert_eq!(ok("admin@localhost"), "admin@localhost");
        assert_eq!(ok("x@LOCALHOST"), "x@localhost");
        assert_eq!(ok("o'brien@sub.example.co.uk"), "o'brien@sub.example.co.uk");
        assert_eq!(
            ok("a_b-c@x-y.allfinanzberatung"),
            "a_b-c@x-y.allfinanzberatung"
        );
        assert_eq!(ok("user@MÜNCHEN.de"), "user@münchen.de");
        assert_eq!(ok("用户@例子.广告"), "用户@例子.广告");
        assert_eq!(ok("a@1.example"), "a@1.example");
    }

    #[test]
    fn nfc_folds_decomposed_characters() {
        // "u" + combining diaeresis becomes the precomposed "ü".
        assert_eq!(ok("ju\u{0308}rgen@example.com"), "jürgen@example.com");
    }

    #[test]
    fn greek_sigma_spellings_of_a_domain_are_one_domain() {
        // Found by the fuzzer: `Ϲ` (lunate capital sigma) lower-cases to
        // `ϲ`, whose NFKC form is the final sigma `ς`; `Σ` gives `σ`.
        let lunate = normalize("a@b-b.\u{3f9}c").expect("valid");
        let capital = normalize("a@b-b.\u{3a3}c").expect("valid");
        let final_sigma = normalize("a@b-b.\u{3c2}c").expect("valid");
        assert_eq!(key(&lunate), key(&capital));
        assert_eq!(key(&final_sigma), key(&capital));
    }

    #[test]
    fn key_lowercases_local_part() {
        let n = ok("Ann.LEE+X@Example.com");
        assert_eq!(n, "Ann.LEE+X@example.com");
        assert_eq!(key(&n), "ann.lee+x@example.com");
        assert_eq!(key(&ok("JÜRGEN@example.com")), "jürgen@example.com");
        assert_eq!(key(&ok("ann@x.org")), key(&ok("ANN@X.ORG")));
    }

    #[test]
    fn rejects_missing_or_extra_at() {
        assert!(bad("ann.example.com").contains("'@'"));
        assert!(bad("a@b@example.com").contains("exactly one"));
        assert!(bad("").contains("empty"));
        assert!(bad("   ").contains("empty"));
    }

    #[test]
    fn rejects_spaces_and_control_chars() {
        assert!(bad("ann lee@example.com").contains("spaces"));
        assert!(bad("ann@exa mple.com").contains("spaces"));
        assert!(bad("ann\u{0}@example.com").contains("control"));
        assert!(bad("ann\u{7}@example.com").contains("control"));
        assert!(bad("ann@example.com\u{1b}x").contains("control"));
        assert!(bad("ad\u{200B}min@example.com").contains("invisible"));
        assert!(bad("admin\u{202E}@example.com").contains("invisible"));
    }

    #[test]
    fn rejects_empty_parts() {
        assert!(bad("@example.com").contains("local part"));
        assert!(bad("ann@").contains("domain"));
        assert!(bad("@").contains("local part"));
    }

    #[test]
    fn rejects_long_local_part_and_address() {
        let local64 = "a".repeat(64);
        assert_eq!(ok(&format!("{local64}@example.com")).len(), 76);
        let local65 = "a".repeat(65);
        assert!(bad(&format!("{local65}@example.com")).contains("64"));
        // 64-byte local part counts bytes: 33 two-byte characters are too many.
        assert!(bad(&format!("{}@example.com", "ü".repeat(33))).contains("64"));

        // Exactly 254 bytes: 64 + 1 + 189 (labels of 63 + dots).
        let domain254 = format!("{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
        let addr = format!("{local64}@{domain254}");
        assert_eq!(addr.len(), 254);
        assert_eq!(ok(&addr), addr);
        let domain255 = format!("{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(62));
        let addr = format!("{local64}@{domain255}");
        assert_eq!(addr.len(), 255);
        assert!(bad(&addr).contains("254"));
    }

    #[test]
    fn rejects_bad_domains() {
        assert!(bad("ann@example").contains("dot"));
        assert!(bad("ann@-example.com").contains("'-'"));
        assert!(bad("ann@example-.com").contains("'-'"));
        assert!(bad("ann@example.com.").contains("empty label"));
        assert!(bad("ann@.example.com").contains("empty label"));
        assert!(bad("ann@example..com").contains("empty label"));
        assert!(bad("ann@exa_mple.com").contains("'_'"));
        assert!(bad("ann@[127.0.0.1]").contains("'['"));
        assert!(bad("ann@127.0.0.1").contains("number"));
        assert!(bad(&format!("ann@{}.com", "x".repeat(64))).contains("63"));
        assert_eq!(
            ok(&format!("ann@{}.com", "x".repeat(63))),
            format!("ann@{}.com", "x".repeat(63))
        );
    }

    #[test]
    fn compatibility_forms_of_a_domain_are_one_domain() {
        // Found by the email fuzz target: the ligature ﬁ (U+FB01) is "fi"
        // in DNS, so both spellings must give one address and one key.
        assert_eq!(ok("aa@f.\u{FB01}c"), "aa@f.fic");
        assert_eq!(key(&ok("aa@F.FIC")), key(&ok("aa@f.\u{FB01}c")));
        assert_eq!(ok("ann@example\u{FF0E}com"), "ann@example.com");
        assert!(bad("ann@b\u{FF20}c.com").contains("'@'"));
        assert_eq!(ok(&ok("x@B\u{DC}cher.ch")), "x@bücher.ch");
    }

    #[test]
    fn rejects_bad_local_parts() {
        assert!(bad(".ann@example.com").contains("dot"));
        assert!(bad("ann.@example.com").contains("dot"));
        assert!(bad("an..n@example.com").contains("'..'"));
        assert!(bad("\"ann\"@example.com").contains("'\"'"));
        assert!(bad("ann<x>@example.com").contains("'<'"));
        assert!(bad("a,b@example.com").contains("','"));
    }

    #[test]
    fn domain_allow_list() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let addr = ok("Ann@Sub.Example.com");
        assert!(domain_allowed(&addr, &[]));
        assert!(domain_allowed(&addr, &list(&["example.com"])));
        assert!(domain_allowed(&addr, &list(&["EXAMPLE.COM"])));
        assert!(domain_allowed(&addr, &list(&["sub.example.com"])));
        assert!(domain_allowed(&addr, &list(&["@sub.example.com"])));
        assert!(domain_allowed(&addr, &list(&[".example.com."])));
        assert!(domain_allowed(&addr, &list(&["other.org", "example.com"])));
        assert!(!domain_allowed(&addr, &list(&["ample.com"])));
        assert!(!domain_allowed(&addr, &list(&["other.example.com"])));
        assert!(!domain_allowed(&addr, &list(&["com.evil"])));
        assert!(!domain_allowed(
            &ok("a@example.com.evil.org"),
            &list(&["example.com"])
        ));
        assert!(!domain_allowed(
            &ok("a@notexample.com"),
            &list(&["example.com"])
        ));
        assert!(!domain_allowed(&addr, &list(&["", "  "])));
        assert!(domain_allowed(&ok("a@münchen.de"), &list(&["MÜNCHEN.DE"])));
    }
}
