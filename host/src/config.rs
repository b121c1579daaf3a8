//! Host configuration: embedded defaults, an optional TOML file, and
//! `SYSHOST_*` environment overrides, in that order of precedence.
//!
//! Every key can be set in the file or through its environment variable
//! (dots become underscores, upper-cased: `http.addr` → `SYSHOST_HTTP_ADDR`).
//! Unknown keys, unknown `SYSHOST_*` variables and bad values are rejected
//! with an error naming the key and where it came from; nothing starts with a
//! half-understood configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The file read when neither `--config` nor `SYSHOST_CONFIG` names one
/// (optional: when absent, the embedded defaults apply).
pub const DEFAULT_CONFIG_FILE: &str = "syshost.toml";

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "SYSHOST_CONFIG";

/// The complete host configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store and other state live. Default `./syshost-data`.
    pub data_dir: PathBuf,
    /// Directories scanned for plugin libraries. Empty (the default) means
    /// the directory of the `syshost` executable, where `cargo build` puts them.
    pub plugin_dirs: Vec<PathBuf>,
    /// The systems to activate; their requirements are activated too.
    pub enable: Vec<String>,
    /// A `tracing` filter, for example `info` or `syshost=debug,warn`.
    pub log: String,
    /// The HTTP frontend.
    pub http: HttpConfig,
    /// Outbound mail.
    pub mail: MailConfig,
    /// The public base URL of this installation (for links in mail), e.g.
    /// `https://accounts.example.com`. Links are never built from a request's
    /// Host header.
    pub public_url: Option<String>,
    /// Product name used in mail and pages.
    pub product_name: String,
    /// The first administrator, created by `syshost run` on an empty store.
    pub admin: AdminConfig,
    /// Durability of the store.
    pub store: StoreConfig,
    /// Limits on what one plugin call may take.
    pub limits: LimitsConfig,
}

/// Store durability settings (see README "Durability").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Flush (write and fsync) the store before a call's answer is sent, so
    /// an acknowledged write is on disk. Default true. `false` trades that
    /// for throughput: up to `flush_every_ms` of acknowledged writes can be
    /// lost in a crash.
    pub sync_writes: bool,
    /// sled's background flush interval in milliseconds (default 500;
    /// 0 turns the background flush off).
    pub flush_every_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            sync_writes: true,
            flush_every_ms: 500,
        }
    }
}

/// Per-call limits (see README "Isolation").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The time one plugin call may take, in milliseconds (default 10000).
    /// A slower call is logged as a warning, and an HTTP caller gets 503
    /// `timeout` once it is exceeded.
    pub call_budget_ms: u64,
    /// The largest payload or response one call may carry between plugins
    /// and the host, in bytes (default 16 MiB).
    pub max_response_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            call_budget_ms: crate::runtime::DEFAULT_CALL_BUDGET_MS,
            max_response_bytes: crate::runtime::DEFAULT_MAX_RESPONSE_BYTES as u64,
        }
    }
}

/// First-administrator settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Login email of the first administrator (default `admin@localhost`).
    pub email: Option<String>,
    /// Its password; unset: a one-time password is generated and logged once.
    pub password: Option<String>,
}

/// Outbound mail settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// SMTP server URL: `smtp://host:port` (plain), `smtp://host?tls=required`
    /// (STARTTLS), `smtps://host` (implicit TLS); credentials as
    /// `smtp://user:password@host`. Unset: mail goes to `<data_dir>/outbox/`.
    pub smtp_url: Option<String>,
    /// The `From:` mailbox.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            from: crate::mail::DEFAULT_FROM.to_string(),
        }
    }
}

/// HTTP frontend settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on; port 0 picks a free port (it is logged).
    pub addr: String,
    /// The host runs behind a TLS-terminating proxy: the session cookie is
    /// named `__Host-syshost_session` and marked `Secure`. Default false.
    pub tls_proxy: bool,
    /// Take the client address from the first `X-Forwarded-For` entry
    /// instead of the peer address (only behind a proxy that sets it).
    pub trust_proxy_headers: bool,
    /// Largest accepted request body in bytes (default 1 MiB); larger → 413.
    pub max_body_bytes: u64,
    /// Per-request time limit in seconds (default 30); over it → 503 `timeout`.
    pub request_timeout_secs: u64,
    /// Calls per minute (and burst) per client address for operations
    /// throttled as `auth` (login, registration, resets). Default 20.
    pub auth_rate_limit_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./syshost-data"),
            plugin_dirs: Vec::new(),
            enable: vec!["user".to_string()],
            log: "info".to_string(),
            http: HttpConfig::default(),
            mail: MailConfig::default(),
            public_url: None,
            product_name: "syshost".to_string(),
            admin: AdminConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:8080".to_string(),
            tls_proxy: false,
            trust_proxy_headers: false,
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            auth_rate_limit_per_minute: 20,
        }
    }
}

/// How an environment variable's text becomes a config value.
#[derive(Debug, Clone, Copy)]
enum EnvKind {
    /// Taken verbatim.
    Text,
    /// Split on a separator; empty items dropped.
    List(char),
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// A non-negative decimal integer.
    Integer,
}

/// Every config key, its environment variable, and how to parse the latter.
const KEYS: &[(&str, &str, EnvKind)] = &[
    ("data_dir", "SYSHOST_DATA_DIR", EnvKind::Text),
    ("plugin_dirs", "SYSHOST_PLUGIN_DIRS", EnvKind::List(':')),
    ("enable", "SYSHOST_ENABLE", EnvKind::List(',')),
    ("log", "SYSHOST_LOG", EnvKind::Text),
    ("http.addr", "SYSHOST_HTTP_ADDR", EnvKind::Text),
    ("http.tls_proxy", "SYSHOST_HTTP_TLS_PROXY", EnvKind::Bool),
    (
        "http.trust_proxy_headers",
        "SYSHOST_HTTP_TRUST_PROXY_HEADERS",
        EnvKind::Bool,
    ),
    (
        "http.max_body_bytes",
        "SYSHOST_HTTP_MAX_BODY_BYTES",
        EnvKind::Integer,
    ),
    (
        "http.request_timeout_secs",
        "SYSHOST_HTTP_REQUEST_TIMEOUT_SECS",
        EnvKind::Integer,
    ),
    (
        "http.auth_rate_limit_per_minute",
        "SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE",
        EnvKind::Integer,
    ),
    ("mail.smtp_url", "SYSHOST_SMTP_URL", EnvKind::Text),
    ("mail.from", "SYSHOST_MAIL_FROM", EnvKind::Text),
    ("public_url", "SYSHOST_PUBLIC_URL", EnvKind::Text),
    ("product_name", "SYSHOST_PRODUCT_NAME", EnvKind::Text),
    ("admin.email", "SYSHOST_ADMIN_EMAIL", EnvKind::Text),
    ("admin.password", "SYSHOST_ADMIN_PASSWORD", EnvKind::Text),
    (
        "store.sync_writes",
        "SYSHOST_STORE_SYNC_WRITES",
        EnvKind::Bool,
    ),
    (
        "store.flush_every_ms",
        "SYSHOST_STORE_FLUSH_EVERY_MS",
        EnvKind::Integer,
    ),
    (
        "limits.call_budget_ms",
        "SYSHOST_LIMITS_CALL_BUDGET_MS",
        EnvKind::Integer,
    ),
    (
        "limits.max_response_bytes",
        "SYSHOST_LIMITS_MAX_RESPONSE_BYTES",
        EnvKind::Integer,
    ),
];

/// Every config key with its environment variable, for docs and `--help`.
pub fn keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter().map(|(key, env, _)| (*key, *env))
}

/// A configuration problem, naming the key and its source.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The named config file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A key that does not exist.
    #[error("unknown config key '{key}' ({source_name}); known keys: {known}")]
    UnknownKey {
        /// The dotted key.
        key: String,
        /// Where it was set.
        source_name: String,
        /// The known keys, comma-separated.
        known: String,
    },
    /// A `SYSHOST_*` variable that maps to no key.
    #[error("unknown environment variable {var}; known: {known}")]
    UnknownEnv {
        /// The variable.
        var: String,
        /// The known variables, comma-separated.
        known: String,
    },
    /// A key with a value of the wrong type or out of range.
    #[error("invalid value for '{key}' ({source_name}): {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// Where it was set.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Loads the configuration.
    ///
    /// `file` is the `--config` argument; without it `SYSHOST_CONFIG` is used,
    /// and without that `./syshost.toml` if it exists. `env` supplies the
    /// environment (pass `std::env::vars()`).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SYSHOST_"))
            .collect();
        let explicit = file
            .map(Path::to_path_buf)
            .or_else(|| env.get(CONFIG_ENV).map(PathBuf::from));
        let (table, file_path) = match explicit {
            Some(path) => (read_table(&path)?, Some(path)),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                if default.is_file() {
                    (read_table(&default)?, Some(default))
                } else {
                    (toml::Table::new(), None)
                }
            }
        };
        Self::from_parts(table, file_path.as_deref(), &env)
    }

    /// Parses a TOML document with no environment overrides (for tests and tools).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::from_sources(text, None, std::iter::empty())
    }

    /// Parses `text` as if it were the config file `file` (relative paths
    /// follow it), overlaid with the `SYSHOST_*` variables of `env`, without
    /// touching the file system. [`Config::load`] minus the file read; the
    /// config fuzz target drives this.
    pub fn from_sources(
        text: &str,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: file.map_or_else(|| PathBuf::from("<string>"), Path::to_path_buf),
                    reason: e.message().to_string(),
                })?;
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SYSHOST_"))
            .collect();
        Self::from_parts(table, file, &env)
    }

    fn from_parts(
        mut table: toml::Table,
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file_label = match file {
            Some(p) => format!("in {}", p.display()),
            None => "in config".to_string(),
        };
        let mut sources: BTreeMap<String, String> = BTreeMap::new();
        for key in leaf_keys(&table, "") {
            sources.insert(key, file_label.clone());
        }
        // Reject unknown keys first, so a typo is reported as a typo.
        for (key, source_name) in &sources {
            if !KEYS.iter().any(|(k, _, _)| k == key) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    source_name: source_name.clone(),
                    known: known_keys(),
                });
            }
        }
        // Relative paths in a file are relative to the file.
        if let Some(dir) = file.and_then(Path::parent) {
            resolve_relative(&mut table, "data_dir", dir);
            resolve_relative(&mut table, "plugin_dirs", dir);
        }
        for (var, value) in env {
            if var == CONFIG_ENV {
                continue;
            }
            let Some((key, _, kind)) = KEYS.iter().find(|(_, e, _)| e == var) else {
                return Err(ConfigError::UnknownEnv {
                    var: var.clone(),
                    known: std::iter::once(CONFIG_ENV)
                        .chain(KEYS.iter().map(|(_, e, _)| *e))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let value = match kind {
                EnvKind::Text => toml::Value::String(value.clone()),
                EnvKind::List(sep) => toml::Value::Array(
                    value
                        .split(*sep)
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ),
                EnvKind::Bool => match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                    "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.to_string(),
                            source_name: format!("from {var}"),
                            reason: format!("'{value}' is not a boolean (true or false)"),
                        })
                    }
                },
                EnvKind::Integer => match value.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => toml::Value::Integer(n),
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.to_string(),
                            source_name: format!("from {var}"),
                            reason: format!("'{value}' is not a non-negative integer"),
                        })
                    }
                },
            };
            set_path(&mut table, key, value);
            sources.insert(key.to_string(), format!("from {var}"));
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let source_name = sources
                    .iter()
                    .find(|(k, _)| key.starts_with(k.as_str()))
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| file_label.clone());
                ConfigError::Invalid {
                    key,
                    source_name,
                    reason: e.into_inner().message().to_string(),
                }
            })?;
        config.validate(&sources)?;
        Ok(config)
    }

    fn validate(&self, sources: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_string(),
            source_name: sources
                .get(key)
                .cloned()
                .unwrap_or_else(|| "default".to_string()),
            reason,
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        if self.enable.is_empty() {
            return Err(invalid(
                "enable",
                "must name at least one system, for example [\"user\"]".into(),
            ));
        }
        for id in &self.enable {
            if !syshost_plugin_api::is_valid_ident(id) {
                return Err(invalid(
                    "enable",
                    format!("'{id}' is not a system id (lowercase letters, digits, '_', starting with a letter)"),
                ));
            }
        }
        validate_addr(&self.http.addr).map_err(|reason| invalid("http.addr", reason))?;
        if !(1024..=1024 * 1024 * 1024).contains(&self.http.max_body_bytes) {
            return Err(invalid(
                "http.max_body_bytes",
                format!(
                    "{} is out of range (1024 to 1073741824 bytes)",
                    self.http.max_body_bytes
                ),
            ));
        }
        if !(1..=3600).contains(&self.http.request_timeout_secs) {
            return Err(invalid(
                "http.request_timeout_secs",
                format!(
                    "{} is out of range (1 to 3600 seconds)",
                    self.http.request_timeout_secs
                ),
            ));
        }
        if !(1..=100_000).contains(&self.http.auth_rate_limit_per_minute) {
            return Err(invalid(
                "http.auth_rate_limit_per_minute",
                format!(
                    "{} is out of range (1 to 100000 per minute)",
                    self.http.auth_rate_limit_per_minute
                ),
            ));
        }
        if self.store.flush_every_ms > 60_000 {
            return Err(invalid(
                "store.flush_every_ms",
                format!(
                    "{} is out of range (0 to 60000 milliseconds)",
                    self.store.flush_every_ms
                ),
            ));
        }
        if !(10..=3_600_000).contains(&self.limits.call_budget_ms) {
            return Err(invalid(
                "limits.call_budget_ms",
                format!(
                    "{} is out of range (10 to 3600000 milliseconds)",
                    self.limits.call_budget_ms
                ),
            ));
        }
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&self.limits.max_response_bytes) {
            return Err(invalid(
                "limits.max_response_bytes",
                format!(
                    "{} is out of range (65536 to 1073741824 bytes)",
                    self.limits.max_response_bytes
                ),
            ));
        }
        if self.log.chars().any(char::is_control) {
            return Err(invalid(
                "log",
                "contains a control character; a tracing filter is one line of `target=level` directives".to_string(),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(tidy_log_filter(&self.log))
            .map_err(|e| invalid("log", format!("not a tracing filter: {e}")))?;
        if let Some(url) = &self.mail.smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(invalid(
                    "mail.smtp_url",
                    format!(
                        "'{}' must start with smtp:// or smtps://",
                        crate::mail::redact_url(url)
                    ),
                ));
            }
        }
        self.mail
            .from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| {
                invalid(
                    "mail.from",
                    format!("'{}' is not a mailbox: {e}", self.mail.from),
                )
            })?;
        if self.product_name.trim().is_empty() || self.product_name.chars().any(char::is_control) {
            return Err(invalid("product_name", "must be one non-empty line".into()));
        }
        if let Some(url) = &self.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                return Err(invalid(
                    "public_url",
                    format!("'{url}' must be an absolute http(s) URL, e.g. https://accounts.example.com"),
                ));
            }
        }
        Ok(())
    }

    /// The mail service settings this config describes.
    pub fn mail_settings(&self) -> crate::mail::MailSettings {
        let mut settings = crate::mail::MailSettings::outbox(self.data_dir.join("outbox"));
        if let Some(url) = &self.mail.smtp_url {
            settings.transport = crate::mail::MailTransportConfig::Smtp(url.clone());
        }
        settings.from = self.mail.from.clone();
        settings
    }

    /// The store options these settings describe.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            flush_every_ms: (self.store.flush_every_ms > 0).then_some(self.store.flush_every_ms),
        }
    }

    /// The plugin directories to scan: the configured ones, or the
    /// executable's directory when none are configured.
    pub fn effective_plugin_dirs(&self) -> Vec<PathBuf> {
        if self.plugin_dirs.is_empty() {
            default_plugin_dirs()
        } else {
            self.plugin_dirs.clone()
        }
    }
}

/// The default plugin directory: where the running executable lives (cargo
/// puts the plugin libraries next to the `syshost` binary).
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .into_iter()
        .collect()
}

/// Checks `host:port` (host non-empty; IPv6 in brackets; port 0-65535).
/// `filter` without the whitespace around its comma-separated directives
/// (the same filter to tracing). tracing-subscriber 0.3 parses a directive
/// after trimming it but slices the untrimmed text with the trimmed text's
/// offsets, which panics on leading whitespace followed by non-ASCII text
/// (`"info, é=debug"`); every filter goes through this first.
pub fn tidy_log_filter(filter: &str) -> String {
    filter
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

fn validate_addr(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!(
            "'{addr}' is not host:port, for example 127.0.0.1:8080"
        ));
    };
    if host.is_empty() {
        return Err(format!(
            "'{addr}' has no host; use 127.0.0.1:{port} or 0.0.0.0:{port}"
        ));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "'{addr}': write IPv6 hosts in brackets, for example [::1]:8080"
        ));
    }
    port.parse::<u16>()
        .map_err(|_| format!("'{addr}' has an invalid port '{port}' (0-65535)"))?;
    Ok(())
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            reason: e.to_string().trim().to_string(),
        })
}

fn known_keys() -> String {
    KEYS.iter()
        .map(|(k, _, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Dotted paths of every non-table value in `table`, and of every empty
/// table that is not a known section (so `[htpp]` alone is an unknown key).
fn leaf_keys(table: &toml::Table, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if !KEYS.iter().any(|(key, _, _)| *key == path) => {
                let inner = leaf_keys(t, &path);
                let section = format!("{path}.");
                if inner.is_empty() && !KEYS.iter().any(|(key, _, _)| key.starts_with(&section)) {
                    out.push(path);
                } else {
                    out.extend(inner);
                }
            }
            _ => out.push(path),
        }
    }
    out
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        current = next;
    }
    current.insert(last.to_string(), value);
}

fn resolve_relative(table: &mut toml::Table, key: &str, base: &Path) {
    let fix = |v: &mut toml::Value| {
        if let toml::Value::String(s) = v {
            let p = Path::new(s.as_str());
            if p.is_relative() {
                *s = base.join(p).to_string_lossy().into_owned();
            }
        }
    };
    match table.get_mut(key) {
        Some(toml::Value::Array(items)) => items.iter_mut().for_each(fix),
        Some(v) => fix(v),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().unwrap();
        let vars: BTreeMap<String, String> = env(vars).into_iter().collect();
        Config::from_parts(table, Some(Path::new("syshost.toml")), &vars)
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.http.addr, "127.0.0.1:8080");
        assert_eq!(c.enable, vec!["user"]);
        assert_eq!(c.data_dir, PathBuf::from("./syshost-data"));
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            "enable = [\"role\"]\n[http]\naddr = \"127.0.0.1:9000\"\n",
            &[
                ("SYSHOST_HTTP_ADDR", "127.0.0.1:0"),
                ("SYSHOST_ENABLE", "user, audit"),
                ("SYSHOST_PLUGIN_DIRS", "/a:/b"),
                ("SYSHOST_DATA_DIR", "/tmp/x"),
                ("SYSHOST_LOG", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.addr, "127.0.0.1:0");
        assert_eq!(c.enable, vec!["user", "audit"]);
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log, "debug");
    }

    #[test]
    fn log_filters_with_spaced_non_ascii_directives_are_accepted_not_a_panic() {
        // Found by the config fuzz target: tracing-subscriber panicked on a
        // directive with leading whitespace followed by non-ASCII text.
        let c = load_str("log = \"info, é=debug\"\n", &[]).unwrap();
        assert_eq!(c.log, "info, é=debug");
        assert_eq!(tidy_log_filter(&c.log), "info,é=debug");
        assert_eq!(
            tidy_log_filter(" warn ,  syshost = debug "),
            "warn,syshost = debug"
        );
        let e = load_str("", &[("SYSHOST_LOG", "info,\r\u{e9}=x")]).unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
        // What the filter accepts did not change.
        assert!(load_str("log = \"info,nope==x\"\n", &[]).is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load_str("[http]\nadr = \"x\"\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::UnknownKey { key, .. } if key == "http.adr"),
            "{e}"
        );
        assert!(e.to_string().contains("http.adr") && e.to_string().contains("syshost.toml"));
        let e = load_str("colour = 1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("'colour'"), "{e}");
    }

    #[test]
    fn empty_unknown_tables_are_unknown_keys() {
        // Found by the config fuzz target: `[htpp]` alone used to pass the
        // unknown-key check and fail later as an "invalid value".
        for text in ["[htpp]\n", "htpp = {}\n", "[http.extra]\n"] {
            match Config::from_toml_str(text) {
                Err(ConfigError::UnknownKey { key, .. }) => {
                    assert!(key == "htpp" || key == "http.extra", "{key}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(Config::from_toml_str("[http]\n[mail]\n[admin]\n").is_ok());
    }

    #[test]
    fn unknown_env_is_named() {
        let e = load_str("", &[("SYSHOST_HTTP_ADR", "x")]).unwrap_err();
        assert!(e.to_string().contains("SYSHOST_HTTP_ADR"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_source() {
        let e = load_str("", &[("SYSHOST_HTTP_ADDR", "localhost")]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("http.addr") && text.contains("SYSHOST_HTTP_ADDR"),
            "{text}"
        );
        let e = load_str("[http]\naddr = \"127.0.0.1:99999\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("invalid port"), "{e}");
        let e = load_str("enable = \"user\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("'enable'"), "{e}");
        let e = load_str("enable = [\"User!\"]\n", &[]).unwrap_err();
        assert!(e.to_string().contains("not a system id"), "{e}");
        let e = load_str("", &[("SYSHOST_ENABLE", " , ")]).unwrap_err();
        assert!(e.to_string().contains("at least one system"), "{e}");
        let e = load_str("log = \"=[\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("'log'"), "{e}");
    }

    #[test]
    fn mail_and_public_url_are_validated() {
        let c = load_str(
            "public_url = \"https://accounts.example.com\"\n[mail]\nfrom = \"Accounts <no-reply@example.com>\"\n",
            &[("SYSHOST_SMTP_URL", "smtp://user:pw@127.0.0.1:2525")],
        )
        .unwrap();
        assert_eq!(
            c.mail.smtp_url.as_deref(),
            Some("smtp://user:pw@127.0.0.1:2525")
        );
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://accounts.example.com")
        );
        let e = load_str("", &[("SYSHOST_SMTP_URL", "http://user:pw@mail")]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("mail.smtp_url") && !text.contains("pw@"),
            "{text}"
        );
        let e = load_str("", &[("SYSHOST_MAIL_FROM", "not a mailbox")]).unwrap_err();
        assert!(e.to_string().contains("mail.from"), "{e}");
        let e = load_str("", &[("SYSHOST_PUBLIC_URL", "accounts.example.com")]).unwrap_err();
        assert!(e.to_string().contains("public_url"), "{e}");
    }

    #[test]
    fn http_bool_and_integer_keys_parse_from_env_and_file() {
        let c = load_str(
            "[http]\nmax_body_bytes = 4096\n",
            &[
                ("SYSHOST_HTTP_TLS_PROXY", "true"),
                ("SYSHOST_HTTP_TRUST_PROXY_HEADERS", "0"),
                ("SYSHOST_HTTP_REQUEST_TIMEOUT_SECS", "5"),
                ("SYSHOST_HTTP_AUTH_RATE_LIMIT_PER_MINUTE", "3"),
            ],
        )
        .unwrap();
        assert!(c.http.tls_proxy && !c.http.trust_proxy_headers);
        assert_eq!(c.http.max_body_bytes, 4096);
        assert_eq!(c.http.request_timeout_secs, 5);
        assert_eq!(c.http.auth_rate_limit_per_minute, 3);
        let d = Config::default();
        assert_eq!(d.http.max_body_bytes, 1_048_576);
        assert_eq!(d.http.request_timeout_secs, 30);
        assert_eq!(d.http.auth_rate_limit_per_minute, 20);
        let e = load_str("", &[("SYSHOST_HTTP_TLS_PROXY", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("SYSHOST_HTTP_TLS_PROXY"), "{e}");
        let e = load_str("", &[("SYSHOST_HTTP_MAX_BODY_BYTES", "-1")]).unwrap_err();
        assert!(e.to_string().contains("SYSHOST_HTTP_MAX_BODY_BYTES"), "{e}");
        let e = load_str("", &[("SYSHOST_HTTP_REQUEST_TIMEOUT_SECS", "0")]).unwrap_err();
        assert!(e.to_string().contains("http.request_timeout_secs"), "{e}");
        let e = load_str("[http]\ntls_proxy = \"yes\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("http.tls_proxy"), "{e}");
    }

    #[test]
    fn relative_paths_in_file_follow_the_file() {
        let table: toml::Table = "data_dir = \"data\"\nplugin_dirs = [\"p\", \"/abs\"]\n"
            .parse()
            .unwrap();
        let c = Config::from_parts(
            table,
            Some(Path::new("/etc/syshost/syshost.toml")),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/syshost/data"));
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/etc/syshost/p"), PathBuf::from("/abs")]
        );
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let e = Config::load(Some(Path::new("/nonexistent/syshost.toml")), env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "enable = [").unwrap();
        let e = Config::load(None, env(&[("SYSHOST_CONFIG", path.to_str().unwrap())])).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
    }
}
