//! Target `config`: the config file and the `SYSHOST_*` overlay.
//!
//! Input: the TOML text, then (after the first NUL byte) environment lines
//! `NAME=value`. Checks: parsing never panics; an error names what was
//! wrong; an accepted config satisfies the documented invariants and
//! survives a round trip through TOML unchanged.

use std::path::Path;

use syshost::config::{Config, ConfigError};

/// Tokens worth splicing into config inputs.
pub const DICTIONARY: &[&str] = &[
    "data_dir",
    "plugin_dirs",
    "enable",
    "log",
    "[http]",
    "addr",
    "tls_proxy",
    "trust_proxy_headers",
    "max_body_bytes",
    "request_timeout_secs",
    "auth_rate_limit_per_minute",
    "[mail]",
    "smtp_url",
    "from",
    "public_url",
    "product_name",
    "[admin]",
    "email",
    "password",
    " = ",
    "\"",
    "'''",
    "[",
    "]",
    "true",
    "false",
    "0",
    "-1",
    "1024",
    "3600",
    "100000",
    "18446744073709551616",
    "1e400",
    "nan",
    "inf",
    "\"127.0.0.1:0\"",
    "\"[::1]:8080\"",
    "\"smtp://u:p@h:25\"",
    "\"smtps://h\"",
    "\"A <a@b.c>\"",
    "\"https://x.example\"",
    "\"user\"",
    "\"info,syshost=debug\"",
    "\0",
    "\nSYSHOST_",
    "SYSHOST_DATA_DIR=",
    "SYSHOST_PLUGIN_DIRS=",
    "SYSHOST_ENABLE=",
    "SYSHOST_LOG=",
    "SYSHOST_HTTP_ADDR=",
    "SYSHOST_HTTP_TLS_PROXY=",
    "SYSHOST_HTTP_MAX_BODY_BYTES=",
    "SYSHOST_HTTP_REQUEST_TIMEOUT_SECS=",
    "SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE=",
    "SYSHOST_SMTP_URL=",
    "SYSHOST_MAIL_FROM=",
    "SYSHOST_PUBLIC_URL=",
    "SYSHOST_PRODUCT_NAME=",
    "SYSHOST_ADMIN_EMAIL=",
    "SYSHOST_CONFIG=",
    "SYSHOST_NOPE=",
    "\n",
    "{ a = 1 }",
    "[[http]]",
    "..",
    "\\u0000",
    "é",
];

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        "",
        "data_dir = \"./data\"\nenable = [\"user\"]\n",
        "plugin_dirs = [\"plugins\", \"/opt/p\"]\nlog = \"debug\"\n[http]\naddr = \"0.0.0.0:8080\"\ntls_proxy = true\nmax_body_bytes = 2048\nrequest_timeout_secs = 5\nauth_rate_limit_per_minute = 100\n",
        "[mail]\nsmtp_url = \"smtp://mailer:secret@127.0.0.1:2525\"\nfrom = \"Acme <no-reply@acme.test>\"\npublic_url = \"https://id.acme.test\"\nproduct_name = \"Acme\"\n",
        "[admin]\nemail = \"root@example.test\"\npassword = \"pw\"\n",
        "http.addr = \"127.0.0.1:0\"\n\0SYSHOST_HTTP_ADDR=[::1]:9000\nSYSHOST_HTTP_TLS_PROXY=yes\nSYSHOST_ENABLE=user, role\n",
        "\0SYSHOST_DATA_DIR=/tmp/x\nSYSHOST_PLUGIN_DIRS=a::b\nSYSHOST_HTTP_MAX_BODY_BYTES=999999999999\n",
        "enable = []\n",
        "[http]\naddr = 8080\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Runs the target; returns the outcome class.
pub fn fuzz(data: &[u8]) -> String {
    let (text, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let file = Path::new("/srv/syshost/syshost.toml");
    match Config::from_sources(&text, Some(file), env) {
        Ok(config) => {
            check_accepted(&config);
            "ok".to_string()
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty(), "empty error for {text:?}");
            match e {
                ConfigError::Syntax { .. } => "syntax".to_string(),
                ConfigError::UnknownKey { key, .. } => {
                    assert!(message.contains(&key), "{message}");
                    "unknown_key".to_string()
                }
                ConfigError::UnknownEnv { var, .. } => {
                    assert!(message.contains(&var), "{message}");
                    "unknown_env".to_string()
                }
                ConfigError::Invalid { key, .. } => {
                    assert!(message.contains(&key), "{message}");
                    // Only known keys can hold invalid values; anything
                    // else must have been reported as an unknown key.
                    assert!(
                        syshost::config::keys()
                            .any(|(k, _)| key == k || key.starts_with(&format!("{k}["))),
                        "invalid value reported for a key that does not exist: {message}"
                    );
                    format!("invalid:{key}")
                }
                ConfigError::Read { .. } => panic!("from_sources read a file: {message}"),
            }
        }
    }
}

fn check_accepted(config: &Config) {
    assert!(!config.data_dir.as_os_str().is_empty());
    assert!(!config.enable.is_empty());
    assert!(config
        .enable
        .iter()
        .all(|id| syshost_plugin_api::is_valid_ident(id)));
    assert!((1024..=1024 * 1024 * 1024).contains(&config.http.max_body_bytes));
    assert!((1..=3600).contains(&config.http.request_timeout_secs));
    let _ = config.mail_settings();
    let _ = config.effective_plugin_dirs();
    // What the host accepted, written out and read back, is the same config.
    let text = toml::to_string(config).expect("an accepted config serializes");
    let again = Config::from_sources(&text, None, std::iter::empty())
        .unwrap_or_else(|e| panic!("accepted config does not re-parse: {e}\n{text}"));
    assert_eq!(&again, config, "round trip changed the config:\n{text}");
}
