//! Input validation, id generation and paging for the license operations:
//! the shared helpers of [`syshost_plugin_api::validate`] plus URLs.

pub use syshost_plugin_api::validate::*;
use syshost_plugin_api::PluginError;

/// Longest accepted URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// An optional link: empty, or an `http://` / `https://` URL with a host,
/// without whitespace or control characters, of at most [`MAX_URL_LEN`] bytes.
pub fn clean_url(field: &str, value: &str) -> Result<String, PluginError> {
    let url = value.trim();
    if url.is_empty() {
        return Ok(String::new());
    }
    if url.len() > MAX_URL_LEN {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} is longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty()
    });
    if !host_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PluginError::invalid_field(
            field,
            format!(
                "{field} '{}' is not an http:// or https:// URL",
                preview(url)
            ),
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(clean_url("url", " ").unwrap(), "");
        assert_eq!(
            clean_url("url", "https://example.com/x").unwrap(),
            "https://example.com/x"
        );
        for bad in [
            "example.com",
            "ftp://x",
            "https://",
            "https:///x",
            "http://a b",
        ] {
            assert!(clean_url("url", bad).is_err(), "{bad}");
        }
    }
}
