//! Input validation: every failure is an `invalid_input` naming the field.

use std::collections::BTreeSet;
use std::io::Read;

use syshost_plugin_api::PluginError;

/// Longest accepted role name, in characters (after trimming).
pub const MAX_NAME_CHARS: usize = 100;
/// Longest accepted description, in characters (after trimming).
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Default page size of `list`.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size of `list`.
pub const MAX_LIMIT: u64 = 500;

pub use syshost_plugin_api::validate::is_slug;

/// Checks a role id given by the caller.
pub fn id(id: &str) -> Result<(), PluginError> {
    if is_slug(id) {
        Ok(())
    } else {
        Err(PluginError::invalid_field(
            "id",
            format!(
                "id '{}' is not a valid role id: use 1-64 characters a-z, 0-9, '_' or '-', \
                 starting with a letter or digit",
                shorten(id)
            ),
        ))
    }
}

/// Checks and normalizes (trims) a role name.
pub fn name(name: &str) -> Result<String, PluginError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(PluginError::invalid_field("name", "name must not be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(PluginError::invalid_field(
            "name",
            format!("name must be at most {MAX_NAME_CHARS} characters long (got {chars})"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(PluginError::invalid_field(
            "name",
            "name must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// Checks and normalizes (trims) a description.
pub fn description(description: &str) -> Result<String, PluginError> {
    let description = description.trim();
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(PluginError::invalid_field(
            "description",
            format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters long (got {chars})"
            ),
        ));
    }
    if description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(PluginError::invalid_field(
            "description",
            "description must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(description.to_string())
}

/// The page size of a list request.
pub fn limit(limit: Option<u64>) -> Result<u64, PluginError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(PluginError::invalid_field(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT} (got {limit})"),
        ));
    }
    Ok(limit)
}

/// Sorts and deduplicates permission ids.
pub fn permission_set(ids: Vec<String>) -> Vec<String> {
    ids.into_iter()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

/// The error for permission ids that no active plugin declares.
pub fn unknown_permissions(unknown: &[String]) -> PluginError {
    let listed: Vec<String> = unknown
        .iter()
        .map(|p| format!("'{}'", shorten(p)))
        .collect();
    PluginError::invalid_field(
        "permissions",
        format!("unknown permission ids: {}", listed.join(", ")),
    )
    .with_details(serde_json::json!({ "field": "permissions", "unknown": unknown }))
}

/// A fresh random id: 16 bytes from the OS, as 32 lowercase hex digits.
pub fn generate_id() -> Result<String, PluginError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PluginError::internal(format!("cannot read random bytes for an id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Caller input echoed in messages, cut to a readable length.
pub fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "0", "admin", "role_1", "a-b", &"a".repeat(64)] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a b",
            "a/b",
            "ä",
            "a.b",
            &"a".repeat(65),
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Admins ").unwrap(), "Admins");
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(100)).is_ok());
        assert!(name(&"x".repeat(101)).is_err());
        assert!(name(&"ü".repeat(100)).is_ok());
        assert!(name("a\u{0}b").is_err());
    }

    #[test]
    fn generated_ids_are_slugs() {
        let a = generate_id().unwrap();
        let b = generate_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(is_slug(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn permission_sets_are_sorted_and_unique() {
        let set = permission_set(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(set, ["a", "b"]);
    }
}
