//! Validation helpers shared by the systems: slug ids, names and
//! descriptions, random ids, paging with a search needle, and name-sorted
//! index keys. Every error is `invalid_input` naming the field.
//!
//! Everything here is pure except [`random_id`], which reads the operating
//! system's random source.

use std::io::Read;

use crate::PluginError;

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Longest accepted search string, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Page size when the caller gives none.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size.
pub const MAX_LIMIT: u64 = 500;

/// Whether `s` matches `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Rejects `value` unless it is a slug, naming `field`.
pub fn check_slug(field: &str, value: &str) -> Result<(), PluginError> {
    if is_slug(value) {
        Ok(())
    } else {
        Err(PluginError::invalid_field(
            field,
            format!(
                "{field} '{}' is not a valid id: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
                preview(value)
            ),
        ))
    }
}

/// A fresh random id: 128 bits from `/dev/urandom` as 32 lowercase hex digits.
pub fn random_id() -> Result<String, PluginError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            PluginError::internal(format!("cannot read random bytes for a new id: {e}"))
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A trimmed, non-empty name of at most [`MAX_NAME_CHARS`] characters
/// without control characters.
pub fn clean_name(field: &str, value: &str) -> Result<String, PluginError> {
    let name = value.trim();
    if name.is_empty() {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(name.to_string())
}

/// A trimmed description of at most [`MAX_DESCRIPTION_CHARS`] characters;
/// line breaks and tabs are allowed, other control characters are not.
pub fn clean_description(field: &str, value: &str) -> Result<String, PluginError> {
    let text = value.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} must not contain control characters other than line breaks and tabs"),
        ));
    }
    Ok(text.to_string())
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Lowercased search needle; `None` lists everything.
    pub search: Option<String>,
    /// Items to skip.
    pub offset: usize,
    /// Items to return.
    pub limit: usize,
}

impl Page {
    /// Validates `limit` (1..=[`MAX_LIMIT`]) and `search` (at most
    /// [`MAX_SEARCH_CHARS`]); a blank search lists everything.
    pub fn new(search: Option<String>, offset: u64, limit: u64) -> Result<Page, PluginError> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(PluginError::invalid_field(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
            ));
        }
        let search = match search {
            Some(s) if s.chars().count() > MAX_SEARCH_CHARS => {
                return Err(PluginError::invalid_field(
                    "search",
                    format!("search is longer than {MAX_SEARCH_CHARS} characters"),
                ))
            }
            Some(s) if !s.trim().is_empty() => Some(s.trim().to_lowercase()),
            _ => None,
        };
        Ok(Page {
            search,
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        })
    }

    /// Whether any of `fields` contains the search needle (case-insensitive).
    pub fn matches(&self, fields: &[&str]) -> bool {
        match &self.search {
            None => true,
            Some(needle) => fields.iter().any(|f| f.to_lowercase().contains(needle)),
        }
    }
}

/// The default page size, for serde.
pub fn default_limit() -> u64 {
    DEFAULT_LIMIT
}

/// The key of a name-sort index entry: `<prefix><lowercased name>\0<id>`.
/// Names never contain control characters, so `\0` sorts a name before
/// every longer name it is a prefix of.
pub fn name_index_key(prefix: &str, name: &str, id: &str) -> Vec<u8> {
    let mut key = prefix.as_bytes().to_vec();
    key.extend_from_slice(name.to_lowercase().as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The ordering of list results: lowercased name, then name, then id.
pub fn name_order(a_name: &str, a_id: &str, b_name: &str, b_id: &str) -> std::cmp::Ordering {
    (a_name.to_lowercase(), a_id).cmp(&(b_name.to_lowercase(), b_id))
}

/// At most 70 characters of `value`, for error messages.
pub fn preview(value: &str) -> String {
    let mut out: String = value.chars().take(70).collect();
    if value.chars().count() > 70 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "0", "sales-team", "a_b", &"x".repeat(64)] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "A", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn random_ids_are_slugs_and_distinct() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(is_slug(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn index_keys_sort_by_name_then_id() {
        let mut keys = [
            name_index_key("n/", "ab", "1"),
            name_index_key("n/", "A", "2"),
            name_index_key("n/", "a", "1"),
        ];
        keys.sort();
        assert_eq!(keys[0], name_index_key("n/", "a", "1"));
        assert_eq!(keys[1], name_index_key("n/", "A", "2"));
        assert_eq!(keys[2], name_index_key("n/", "ab", "1"));
    }

    #[test]
    fn pages() {
        assert!(Page::new(None, 0, 0).is_err());
        assert!(Page::new(None, 0, 501).is_err());
        assert_eq!(Page::new(Some("  ".into()), 0, 1).unwrap().search, None);
        let p = Page::new(Some(" SaLes ".into()), 3, 500).unwrap();
        assert!(p.matches(&["x", "Big Sales"]));
        assert!(!p.matches(&["x"]));
    }
}
