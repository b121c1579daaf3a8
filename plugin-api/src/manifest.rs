//! The plugin manifest: identity, dependencies, permissions, operations.
//!
//! The manifest crosses the ABI as JSON, so new fields are added with serde
//! defaults and old plugins keep loading. The host validates it on discovery
//! (id and permission-id patterns, semver version and ranges, unique names).

use serde::{Deserialize, Serialize};

use crate::view::PageDecl;

/// What a plugin is and what it needs. Build one with [`Manifest::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Plugin id: `^[a-z][a-z0-9_]*$`, for example `user`.
    pub id: String,
    /// Semver version of the plugin, for example `0.1.0`.
    pub version: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// One-paragraph description.
    #[serde(default)]
    pub description: String,
    /// The plugin-api version the library was built against (set by
    /// [`export_plugin!`](crate::export_plugin)).
    #[serde(default)]
    pub api_version: String,
    /// Hard dependencies: activated first; missing or incompatible ones fail this plugin.
    #[serde(default)]
    pub requires: Vec<Dependency>,
    /// Soft dependencies: activated if present, never ordering or cycle sources.
    #[serde(default)]
    pub wants: Vec<Dependency>,
    /// Permissions this plugin defines.
    #[serde(default)]
    pub permissions: Vec<PermissionDecl>,
    /// Operations this plugin serves (filled from [`Operations`](crate::Operations)).
    #[serde(default)]
    pub operations: Vec<OperationDecl>,
    /// Event topic patterns delivered to this plugin: an exact topic, a
    /// prefix ending in `.*` (for example `role.*`), or `*` for all.
    #[serde(default)]
    pub subscribes: Vec<String>,
    /// Set by the one plugin that resolves user subjects for the host
    /// (User Management). See [`SubjectProvider`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_provider: Option<SubjectProvider>,
    /// Set by the one plugin that resolves session tokens for the host's
    /// HTTP layer (the session system). See [`TokenResolver`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_resolver: Option<TokenResolver>,
    /// Web pages this plugin contributes (see [`crate::view`]); each names
    /// one of its operations that returns a [`View`](crate::view::View).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageDecl>,
}

/// How the host's HTTP layer turns a bearer or cookie token into a caller.
///
/// The host calls `operation` (declared with [`Access::System`]) with a
/// [`ResolveTokenRequest`](crate::ResolveTokenRequest) on every
/// authenticated request and expects a
/// [`ResolvedToken`](crate::ResolvedToken) or `unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResolver {
    /// The operation that resolves one token.
    pub operation: String,
    /// The operation (declared with [`Access::Authenticated`]) that ends the
    /// caller's own session; the web frontend's "Log out" calls it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout: Option<String>,
    /// Event topic patterns that make the host's cached resolutions (see
    /// [`ResolvedToken::cache_until`](crate::ResolvedToken::cache_until))
    /// stale: the host drops the entries of the event payload's
    /// `session_id` string, else of its `user_id` string, else all of them.
    /// A resolver that answers with `cache_until` must publish a matching
    /// event whenever a session it answered for changes or ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalidate_on: Vec<String>,
}

/// How the host resolves and caches subjects through a plugin.
///
/// The host calls `operation` (declared with [`Access::System`]) with a
/// [`ResolveSubjectRequest`](crate::ResolveSubjectRequest) and expects a
/// [`ResolvedSubject`](crate::ResolvedSubject). It caches the answer and
/// drops cached subjects when an event matching `invalidate_on` is
/// delivered: only that user's entry when the event payload carries a
/// `user_id` string, every entry otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectProvider {
    /// The operation that resolves one subject.
    pub operation: String,
    /// Event topic patterns that make cached subjects stale.
    #[serde(default)]
    pub invalidate_on: Vec<String>,
}

/// A dependency on another plugin by id and semver range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The other plugin's id.
    pub id: String,
    /// Semver range, for example `^0.1` (cargo syntax; a bare `0.1` means `^0.1`).
    pub version: String,
}

/// A permission a plugin defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDecl {
    /// Id matching `^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`, for example `user.manage`.
    pub id: String,
    /// Short human name.
    pub name: String,
    /// What holding it allows.
    #[serde(default)]
    pub description: String,
}

/// Who may call an operation. The host enforces it before the plugin runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone, including anonymous callers.
    Public,
    /// Any authenticated user (and the system).
    Authenticated,
    /// Callers holding this permission.
    Permission(String),
    /// Any authenticated user acting on their own data, or holders of the
    /// permission for anyone's; the plugin performs the "own data" check.
    SelfOrPermission(String),
    /// Only the host itself and other plugins (never end users).
    System,
}

impl Access {
    /// Shorthand for [`Access::Permission`].
    pub fn permission(id: impl Into<String>) -> Self {
        Access::Permission(id.into())
    }

    /// Shorthand for [`Access::SelfOrPermission`].
    pub fn self_or_permission(id: impl Into<String>) -> Self {
        Access::SelfOrPermission(id.into())
    }

    /// The permission this access rule names, if any.
    pub fn permission_id(&self) -> Option<&str> {
        match self {
            Access::Permission(p) | Access::SelfOrPermission(p) => Some(p),
            _ => None,
        }
    }
}

/// A declared operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationDecl {
    /// Operation name, `^[a-z][a-z0-9_]*$`, unique within the plugin.
    pub name: String,
    /// Who may call it.
    pub access: Access,
    /// One-line description.
    #[serde(default)]
    pub doc: String,
    /// Whether the operation changes state (frontends use it to pick HTTP
    /// methods and CSRF rules). Defaults to `true`, the safe assumption.
    #[serde(default = "default_true")]
    pub mutates: bool,
    /// Rate-limit class the host applies per client address (for example
    /// `auth` for login, registration, resets and code entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<String>,
    /// The operation answers from the plugin's memory and may be run
    /// *inline*, on one of the host's async workers, instead of on a
    /// blocking thread. Defaults to `false`.
    ///
    /// The contract: while an inline call runs, the host refuses at once,
    /// with [`codes::WOULD_BLOCK`](crate::codes::WOULD_BLOCK), every service
    /// that could wait on the disk or on a long-held lock — store reads and
    /// writes, `publish`, `send_mail`, and calls to operations that are not
    /// declared `inline` themselves. The operation must pass that error on
    /// (`?`) and must not do anything slow of its own (no hashing, no
    /// sleeping, no locks held across slow work). The host then runs the
    /// whole call again on a blocking thread as usual; because every write
    /// was refused, the first attempt changed nothing in the store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inline: bool,
    /// JSON Schema of the request body, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_schema: Option<serde_json::Value>,
    /// JSON Schema of the response body, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<serde_json::Value>,
}

fn default_true() -> bool {
    true
}

impl Manifest {
    /// A manifest for plugin `id` at `version` (usually `env!("CARGO_PKG_VERSION")`).
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            id: id.into(),
            version: version.into(),
            name: String::new(),
            description: String::new(),
            api_version: String::new(),
            requires: Vec::new(),
            wants: Vec::new(),
            permissions: Vec::new(),
            operations: Vec::new(),
            subscribes: Vec::new(),
            subject_provider: None,
            token_resolver: None,
            pages: Vec::new(),
        }
    }

    /// Declares a web page (see [`crate::view`]).
    pub fn page(mut self, page: PageDecl) -> Self {
        self.pages.push(page);
        self
    }

    /// Declares this plugin the host's token resolver (see [`TokenResolver`]).
    pub fn token_resolver(mut self, operation: impl Into<String>) -> Self {
        self.token_resolver = Some(TokenResolver {
            operation: operation.into(),
            logout: None,
            invalidate_on: Vec::new(),
        });
        self
    }

    /// Names the event topic patterns that make the host's cached token
    /// resolutions stale (set after [`Manifest::token_resolver`]; see
    /// [`TokenResolver::invalidate_on`]).
    pub fn token_resolutions_invalidated_on(mut self, patterns: &[&str]) -> Self {
        if let Some(resolver) = &mut self.token_resolver {
            resolver.invalidate_on = patterns.iter().map(|s| s.to_string()).collect();
        }
        self
    }

    /// Names the operation that ends the caller's own session (set after
    /// [`Manifest::token_resolver`]; see [`TokenResolver::logout`]).
    pub fn logout_operation(mut self, operation: impl Into<String>) -> Self {
        if let Some(resolver) = &mut self.token_resolver {
            resolver.logout = Some(operation.into());
        }
        self
    }

    /// Declares this plugin the host's subject provider: `operation` resolves
    /// a subject; events matching `invalidate_on` make cached ones stale.
    pub fn subject_provider(
        mut self,
        operation: impl Into<String>,
        invalidate_on: &[&str],
    ) -> Self {
        self.subject_provider = Some(SubjectProvider {
            operation: operation.into(),
            invalidate_on: invalidate_on.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Sets the human-readable name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the description.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a hard dependency on plugin `id` within semver range `version`.
    pub fn requires(mut self, id: impl Into<String>, version: impl Into<String>) -> Self {
        self.requires.push(Dependency {
            id: id.into(),
            version: version.into(),
        });
        self
    }

    /// Adds a soft dependency on plugin `id` within semver range `version`.
    pub fn wants(mut self, id: impl Into<String>, version: impl Into<String>) -> Self {
        self.wants.push(Dependency {
            id: id.into(),
            version: version.into(),
        });
        self
    }

    /// Declares a permission.
    pub fn permission(
        mut self,
        id: impl Into<String>,
        name: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.permissions.push(PermissionDecl {
            id: id.into(),
            name: name.into(),
            description: description.into(),
        });
        self
    }

    /// Subscribes to an event topic pattern (`role.deleted`, `role.*` or `*`).
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.subscribes.push(pattern.into());
        self
    }

    /// Whether `topic` matches one of this plugin's subscriptions.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscribes
            .iter()
            .any(|pattern| topic_matches(pattern, topic))
    }

    /// Finds a declared operation by name.
    pub fn operation(&self, name: &str) -> Option<&OperationDecl> {
        self.operations.iter().find(|op| op.name == name)
    }

    /// Every plugin id this plugin may call (`requires` and `wants`).
    pub fn declared_dependencies(&self) -> impl Iterator<Item = &str> {
        self.requires
            .iter()
            .chain(self.wants.iter())
            .map(|d| d.id.as_str())
    }
}

/// Whether an event `topic` matches a subscription `pattern`.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => topic
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == topic,
    }
}

/// Whether `id` is a valid plugin id or operation name: `^[a-z][a-z0-9_]*$`.
pub fn is_valid_ident(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Whether `id` is a valid permission id: `^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`.
pub fn is_valid_permission_id(id: &str) -> bool {
    let mut parts = id.split('.');
    let first_ok = parts.next().is_some_and(is_valid_ident);
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        !p.is_empty() && p.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    });
    first_ok && rest_ok && rest > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_ids() {
        for ok in ["user.manage", "a.b", "user.self.read", "role.x_1", "a1.2"] {
            assert!(is_valid_permission_id(ok), "{ok}");
        }
        for bad in [
            "user",
            "User.manage",
            "user.",
            ".user",
            "user..x",
            "1a.b",
            "a.B",
            "a-b.c",
        ] {
            assert!(!is_valid_permission_id(bad), "{bad}");
        }
    }

    #[test]
    fn idents() {
        assert!(is_valid_ident("user"));
        assert!(is_valid_ident("audit_log2"));
        assert!(!is_valid_ident(""));
        assert!(!is_valid_ident("2fa"));
        assert!(!is_valid_ident("user-x"));
        assert!(!is_valid_ident("User"));
    }

    #[test]
    fn topics() {
        assert!(topic_matches("*", "role.deleted"));
        assert!(topic_matches("role.*", "role.deleted"));
        assert!(!topic_matches("role.*", "roles.deleted"));
        assert!(!topic_matches("role.*", "role"));
        assert!(topic_matches("role.deleted", "role.deleted"));
        assert!(!topic_matches("role.deleted", "role.updated"));
    }

    #[test]
    fn access_json_shape() {
        let json = serde_json::to_string(&Access::permission("user.manage")).unwrap();
        assert_eq!(json, r#"{"permission":"user.manage"}"#);
        assert_eq!(
            serde_json::to_string(&Access::Public).unwrap(),
            r#""public""#
        );
        let back: Access = serde_json::from_str(r#"{"self_or_permission":"x.y"}"#).unwrap();
        assert_eq!(back, Access::self_or_permission("x.y"));
    }

    #[test]
    fn manifest_defaults_for_missing_fields() {
        let m: Manifest = serde_json::from_str(r#"{"id":"x","version":"1.0.0"}"#).unwrap();
        assert!(m.requires.is_empty() && m.operations.is_empty());
    }
}
