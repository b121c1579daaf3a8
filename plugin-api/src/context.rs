//! JSON contracts that accompany calls: who is calling, events, mail.
//!
//! All of these cross the ABI as JSON; every field that may be added later
//! has a serde default so older and newer plugins understand each other.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Who a call is made by, as the host established it.
///
/// `Deserialize` is written by hand (`subject_de.rs`): the same JSON as
/// the derive, without buffering the object when `kind` comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// The host itself or an offline CLI command: allowed everything.
    System,
    /// Another plugin acting as itself (it declared the dependency).
    Plugin {
        /// The calling plugin's id.
        id: String,
    },
    /// No session: holds only the permissions configured for anonymous users.
    Anonymous {
        /// Effective permissions of anonymous callers.
        #[serde(default)]
        permissions: BTreeSet<String>,
    },
    /// An authenticated user.
    User(UserSubject),
}

impl Default for Subject {
    fn default() -> Self {
        Subject::Anonymous {
            permissions: BTreeSet::new(),
        }
    }
}

/// An authenticated user as resolved by the host for one call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserSubject {
    /// The user's id.
    pub id: String,
    /// Login email, if known.
    #[serde(default)]
    pub email: String,
    /// Display name, if the subject provider knows one (for the web
    /// frontend's account menu).
    #[serde(default)]
    pub name: String,
    /// Effective permissions (direct grants ∪ role permissions).
    #[serde(default)]
    pub permissions: BTreeSet<String>,
    /// Role ids held.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// Group ids the user belongs to.
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// License ids assigned.
    #[serde(default)]
    pub licenses: BTreeSet<String>,
    /// The session this call came through, if any.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The account must change its password before anything else.
    #[serde(default)]
    pub must_change_password: bool,
}

impl Subject {
    /// Whether this subject holds `permission`. The system and plugins hold all.
    pub fn has_permission(&self, permission: &str) -> bool {
        match self {
            Subject::System | Subject::Plugin { .. } => true,
            Subject::Anonymous { permissions } => permissions.contains(permission),
            Subject::User(u) => u.permissions.contains(permission),
        }
    }

    /// Whether this subject is an authenticated user, the system or a plugin.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Subject::Anonymous { .. })
    }

    /// Whether this is the host itself or a plugin (trusted internal caller).
    pub fn is_internal(&self) -> bool {
        matches!(self, Subject::System | Subject::Plugin { .. })
    }

    /// The user id, when the subject is a user.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Subject::User(u) => Some(&u.id),
            _ => None,
        }
    }

    /// A short label for logs: `system`, `plugin:role`, `anonymous`, `user:<id>`.
    pub fn label(&self) -> String {
        match self {
            Subject::System => "system".into(),
            Subject::Plugin { id } => format!("plugin:{id}"),
            Subject::Anonymous { .. } => "anonymous".into(),
            Subject::User(u) => format!("user:{}", u.id),
        }
    }
}

/// Everything a plugin knows about the call it is serving.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CallContext {
    /// Who is calling.
    #[serde(default)]
    pub subject: Subject,
    /// The plugin that forwarded this call, when it is a cross-plugin call.
    #[serde(default)]
    pub via: Option<String>,
    /// Network address of the originating client, when known.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// When set, the caller may only call these operations
    /// (`<plugin>.<operation>`), for example while a password change is
    /// required. The host enforces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_to: Option<BTreeSet<String>>,
    /// The host's permission registry generation when it dispatched this
    /// call, set by the host (whatever a caller put here is replaced). A
    /// plugin whose cached registry is at least this new needs no
    /// `permission_registry` round trip ([`Host::permissions`](crate::Host::permissions));
    /// absent (older hosts) means "unknown": the plugin asks the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_generation: Option<u64>,
    /// Correlation id of the originating request, for logs. Declared (so
    /// serialized) last: the one member that differs between the requests
    /// of a session sits at a known place (the SDK reuses a decoded context
    /// when only it changed).
    #[serde(default)]
    pub request_id: Option<String>,
}

impl CallContext {
    /// A context for the host itself.
    pub fn system() -> Self {
        CallContext {
            subject: Subject::System,
            ..Default::default()
        }
    }

    /// A context for `subject`.
    pub fn for_subject(subject: Subject) -> Self {
        CallContext {
            subject,
            ..Default::default()
        }
    }
}

/// An event published by a plugin after a change it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// Topic, always `<publisher id>.<name>`, for example `role.deleted`.
    pub topic: String,
    /// The publishing plugin's id.
    pub source: String,
    /// Event data.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// When it was published (ms since the Unix epoch).
    #[serde(default)]
    pub at_unix_ms: i64,
    /// Who caused it, as the host saw it: the subject label of the outermost
    /// call (`user:<id>`, `anonymous`, `system`, `plugin:<id>`); for events
    /// published while handling another event, that event's actor. Filled
    /// by the host, never by the publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Network address of the client whose request caused it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
}

impl Event {
    /// Decodes the payload into a typed struct.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::PluginError> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            crate::PluginError::invalid(format!(
                "event {} has an unexpected payload: {e}",
                self.topic
            ))
        })
    }
}

/// A mail to deliver through the host's mailer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Mail {
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Optional HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// A tag naming the kind of mail (`verify_email`, `password_reset`, …), for logs and tests.
    #[serde(default)]
    pub kind: String,
}

/// The request the host sends to the subject provider's operation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResolveSubjectRequest {
    /// The user to resolve; `None` resolves the anonymous subject.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The subject provider's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResolvedSubject {
    /// The resolved subject (`User` for a user, `Anonymous` for anonymous).
    pub subject: Subject,
    /// When the host must resolve it again at the latest (for example when
    /// an `enabled_until` account expires), in ms since the Unix epoch.
    #[serde(default)]
    pub valid_until: Option<i64>,
}

/// The request the host's HTTP layer sends to the token resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResolveTokenRequest {
    /// The bearer or cookie token as the client sent it.
    pub token: String,
    /// The client's network address, when known.
    #[serde(default)]
    pub client_addr: Option<String>,
}

/// The token resolver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResolvedToken {
    /// The user the session belongs to.
    pub user_id: String,
    /// The session id (never the token).
    pub session_id: String,
    /// When set, the session may only call these operations
    /// (`<plugin>.<operation>`), e.g. until the password is changed.
    #[serde(default)]
    pub allowed_operations: Option<BTreeSet<String>>,
    /// A new token that replaces the presented one (after a privilege
    /// change); the HTTP layer hands it to the client (cookie and the
    /// `X-Session-Token` response header). The old token no longer works.
    #[serde(default)]
    pub replacement_token: Option<String>,
    /// Until when (ms since the Unix epoch, host clock) the host may answer
    /// this same token with this same resolution without asking again,
    /// unless an event matching the resolver's
    /// [`invalidate_on`](crate::TokenResolver::invalidate_on) is delivered
    /// first. Absent (the default, and what older resolvers send): ask on
    /// every request. Ignored on an answer with a `replacement_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_until: Option<i64>,
}

/// A permission in the host's registry: declared by an active plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegisteredPermission {
    /// Permission id, e.g. `role.create`.
    pub id: String,
    /// Short human name.
    pub name: String,
    /// What holding it allows.
    pub description: String,
    /// The declaring plugin.
    pub plugin: String,
}

/// Request of the host service `permission_registry`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PermissionRegistryRequest {
    /// The registry generation the caller already holds; when it is still
    /// current the host answers without the list.
    #[serde(default)]
    pub known_generation: Option<u64>,
}

/// Answer of the host service `permission_registry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PermissionRegistryAnswer {
    /// The current generation; it changes whenever a system is activated or
    /// deactivated.
    pub generation: u64,
    /// Every registered permission sorted by id; absent when the caller's
    /// `known_generation` is current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<RegisteredPermission>>,
}
