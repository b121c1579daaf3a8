//! The `permission` system: the read-only registry of every permission
//! declared by the active plugins.
//!
//! Permissions are defined in code, in each plugin's manifest; nothing here
//! is editable at run time. The host owns the registry (it sees every
//! manifest and refuses to activate a plugin that redeclares another
//! plugin's permission id); this plugin serves it to callers through the
//! host's `permissions` service.

use serde::{Deserialize, Serialize};
use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::{
    export_plugin, Access, CallContext, Host, Manifest, NoInput, Operations, Plugin, PluginError,
};

pub mod pages;

/// Default and maximum page sizes for `list`.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

/// The running `permission` system.
pub struct PermissionSystem {
    host: Host,
}

/// One registered permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PermissionInfo {
    /// Permission id, e.g. `role.create`.
    pub id: String,
    /// Short human name.
    pub name: String,
    /// What holding it allows.
    pub description: String,
    /// The plugin that declares it.
    pub plugin: String,
}

/// Request of `list`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only permissions declared by this plugin.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Case-insensitive substring of id, name or description.
    #[serde(default)]
    pub search: Option<String>,
    /// Items to skip.
    #[serde(default)]
    pub offset: u64,
    /// Page size (1-500, default 50).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A page of permissions.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// The permissions on this page, sorted by id.
    pub items: Vec<PermissionInfo>,
    /// How many match in total.
    pub total: usize,
}

/// Request of `get`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRequest {
    /// Permission id.
    pub id: String,
}

/// Request of `check`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Permission ids to check.
    pub ids: Vec<String>,
}

/// Response of `check`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckResponse {
    /// The ids no active plugin declares, sorted and deduplicated.
    pub unknown: Vec<String>,
}

/// Response of `ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pong {
    /// The system that answered.
    pub system: &'static str,
    /// Its version.
    pub version: &'static str,
}

impl Plugin for PermissionSystem {
    fn manifest() -> Manifest {
        Manifest::new("permission", env!("CARGO_PKG_VERSION"))
            .name("Permissions")
            .describe("Registry of every permission declared by the active plugins.")
            .permission(
                "permission.read",
                "Read permissions",
                "List and view the permissions every active system declares.",
            )
            .page(
                PageDecl::new(pages::PATH, "Permissions", "admin_permissions_page")
                    .area(Area::Admin)
                    .card(
                        "Permissions",
                        "Every permission the systems declare, grouped by system. Defined in code, so read-only.",
                        Some("permission.read"),
                    )
                    .nav()
                    .order(40),
            )
    }

    fn operations() -> Operations<Self> {
        Operations::new()
            .page(
                "admin_permissions_page",
                Access::permission("permission.read"),
                "Admin page: every permission, grouped by system, searchable.",
                Self::admin_permissions_page,
            )
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .query(
                "list",
                Access::permission("permission.read"),
                "Lists registered permissions, filtered by plugin or search text, paged.",
                Self::list,
            )
            .query(
                "get",
                Access::permission("permission.read"),
                "Returns one permission.",
                Self::get,
            )
            .query(
                "check",
                Access::System,
                "Returns which of the given ids no active plugin declares.",
                Self::check,
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        Ok(PermissionSystem { host })
    }
}

impl PermissionSystem {
    fn registry(&self) -> Result<Vec<PermissionInfo>, PluginError> {
        Ok(self
            .host
            .permissions()?
            .permissions()
            .iter()
            .map(|p| PermissionInfo {
                id: p.id.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                plugin: p.plugin.clone(),
            })
            .collect())
    }

    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "permission",
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    fn list(&self, req: ListRequest, _: &CallContext) -> Result<ListResponse, PluginError> {
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(PluginError::invalid_field(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let search = req.search.as_deref().map(str::to_lowercase);
        let matching: Vec<PermissionInfo> = self
            .registry()?
            .into_iter()
            .filter(|p| {
                req.plugin
                    .as_deref()
                    .is_none_or(|plugin| p.plugin == plugin)
            })
            .filter(|p| {
                search.as_deref().is_none_or(|s| {
                    p.id.to_lowercase().contains(s)
                        || p.name.to_lowercase().contains(s)
                        || p.description.to_lowercase().contains(s)
                })
            })
            .collect();
        let total = matching.len();
        let items = matching
            .into_iter()
            .skip(usize::try_from(req.offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .collect();
        Ok(ListResponse { items, total })
    }

    fn get(&self, req: GetRequest, _: &CallContext) -> Result<PermissionInfo, PluginError> {
        self.registry()?
            .into_iter()
            .find(|p| p.id == req.id)
            .ok_or_else(|| {
                PluginError::not_found(format!("no permission '{}' is declared", req.id))
            })
    }

    fn check(&self, req: CheckRequest, _: &CallContext) -> Result<CheckResponse, PluginError> {
        // The cached registry: a set lookup per id, no copy of the list
        // (and no host round trip while it is as new as the call).
        let known = self.host.permissions()?;
        // Reuses the request's vector: usually nothing or little is left
        // to sort.
        let mut unknown = req.ids;
        unknown.retain(|id| !known.contains(id));
        unknown.sort_unstable();
        unknown.dedup();
        Ok(CheckResponse { unknown })
    }
}

export_plugin!(PermissionSystem);
