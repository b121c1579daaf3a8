//! # The `group` system
//!
//! Groups organise users (and, later, resource sharing). A group has an id,
//! a name and a description and carries **no permissions**. Memberships are
//! held by the `user` system, which drops them when it sees `group.deleted`.
//!
//! The built-in group `system` ("System") is seeded on every activation
//! (idempotently: an existing record is left alone) and can never be deleted.
//!
//! ## Store layout (the plugin's private namespace)
//! * `group/<id>` → the [`Group`] record as JSON (lookups by id are one
//!   O(log n) read);
//! * `name/<lowercased name>\0<id>` → `<id>`: the sort index that `list`
//!   pages through (name, then id).
//!
//! Every change of a record and its index entry is one atomic batch: a create
//! expects the record key to be absent (ids are unique without locks), and an
//! update or delete expects the record bytes it read (optimistic concurrency,
//! retried when another writer got there first).

use serde::{Deserialize, Serialize};
use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::{
    export_plugin, Access, BatchResult, CallContext, Host, Manifest, NoInput, Operations, Plugin,
    PluginError, Store,
};

pub mod pages;
mod util;

use util::{check_slug, clean_description, clean_name, default_limit, name_index_key, Page};

/// Id of the built-in group.
pub const SYSTEM_GROUP_ID: &str = "system";
/// Name the built-in group is seeded with.
pub const SYSTEM_GROUP_NAME: &str = "System";
/// Description the built-in group is seeded with.
pub const SYSTEM_GROUP_DESCRIPTION: &str =
    "Built-in group for the platform itself; not meant for real users.";

/// How often an update or delete re-reads and retries after a concurrent change.
const MAX_ATTEMPTS: usize = 1_000;

const RECORD_PREFIX: &str = "group/";
const NAME_INDEX_PREFIX: &str = "name/";

fn record_key(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

/// The running `group` system.
pub struct GroupSystem {
    host: Host,
}

/// A group as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Group {
    /// Slug id (`^[a-z0-9][a-z0-9_-]{0,63}$`).
    pub id: String,
    /// Display name (trimmed, 1-200 characters).
    pub name: String,
    /// Free text (at most 4000 characters).
    pub description: String,
    /// Whether this is a built-in group (only `system`); built-in groups cannot be deleted.
    pub builtin: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change, ms since the Unix epoch.
    pub updated_at: i64,
}

/// Request of `create`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Slug id; generated (32 hex digits) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
}

/// Request of `get` and `delete`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    /// The group id.
    pub id: String,
}

/// Request of `list`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Case-insensitive substring of the id, name or description.
    #[serde(default)]
    pub search: Option<String>,
    /// Items to skip (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Page size, 1-500 (default 50).
    #[serde(default = "default_limit")]
    pub limit: u64,
}

/// Request of `update`; absent fields keep their value.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The group id.
    pub id: String,
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Request of `check`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Group ids to look up.
    pub ids: Vec<String>,
}

/// One page of groups, sorted by name (case-insensitive), then id.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListResponse {
    /// The groups of this page.
    pub items: Vec<Group>,
    /// How many groups match in total.
    pub total: u64,
}

/// Response of `delete`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeleteResponse {
    /// Always `true` (a missing group is `not_found`).
    pub deleted: bool,
}

/// Response of `check`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckResponse {
    /// The requested ids that name no group, sorted and without duplicates.
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

impl Plugin for GroupSystem {
    fn manifest() -> Manifest {
        Manifest::new("group", env!("CARGO_PKG_VERSION"))
            .name("Groups")
            .describe("Groups that organise users; the built-in `system` group always exists.")
            .permission(
                "group.read",
                "Read groups",
                "May look up and list groups.",
            )
            .permission(
                "group.create",
                "Create groups",
                "May create new groups.",
            )
            .permission(
                "group.update",
                "Edit groups",
                "May change the name and description of groups.",
            )
            .permission(
                "group.delete",
                "Delete groups",
                "May delete groups (never the built-in `system` group); their memberships are removed.",
            )
            .page(
                PageDecl::new(pages::PATH, "Groups", "admin_groups_page")
                    .area(Area::Admin)
                    .card(
                        "Groups",
                        "Organise users in groups, independently of their roles.",
                        Some("group.read"),
                    )
                    .nav()
                    .order(30),
            )
    }

    fn operations() -> Operations<Self> {
        Operations::new()
            .page(
                "admin_groups_page",
                Access::permission("group.read"),
                "Admin page: the group list, or one group's editor.",
                Self::admin_groups_page,
            )
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .op(
                "create",
                Access::permission("group.create"),
                "Creates a group; publishes group.created.",
                Self::create,
            )
            .query(
                "get",
                Access::permission("group.read"),
                "Returns one group by id.",
                Self::get,
            )
            .query(
                "list",
                Access::permission("group.read"),
                "Lists groups by name, with search and paging.",
                Self::list,
            )
            .op(
                "update",
                Access::permission("group.update"),
                "Changes a group's name and/or description; publishes group.updated.",
                Self::update,
            )
            .op(
                "delete",
                Access::permission("group.delete"),
                "Deletes a group (not the built-in one); publishes group.deleted.",
                Self::delete,
            )
            .query(
                "check",
                Access::System,
                "Returns which of the given group ids do not exist.",
                Self::check,
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        let system = GroupSystem { host };
        system.seed_system_group()?;
        Ok(system)
    }
}

impl GroupSystem {
    /// Creates the built-in `system` group unless it already exists.
    fn seed_system_group(&self) -> Result<(), PluginError> {
        let store = self.host.store();
        let key = record_key(SYSTEM_GROUP_ID);
        if store.get(&key)?.is_some() {
            return Ok(());
        }
        let now = self.host.now_unix_ms();
        let group = Group {
            id: SYSTEM_GROUP_ID.to_string(),
            name: SYSTEM_GROUP_NAME.to_string(),
            description: SYSTEM_GROUP_DESCRIPTION.to_string(),
            builtin: true,
            created_at: now,
            updated_at: now,
        };
        let result = store
            .batch()
            .expect_absent(&key)
            .put_json(&key, &group)?
            .put(
                name_index_key(NAME_INDEX_PREFIX, &group.name, &group.id),
                &group.id,
            )
            .commit()?;
        if result == BatchResult::Committed {
            self.host.info("seeded the built-in group 'system'");
            self.host
                .publish("group.created", &serde_json::json!({ "group": group }))?;
        }
        Ok(())
    }

    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "group",
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    fn create(&self, req: CreateRequest, _: &CallContext) -> Result<Group, PluginError> {
        let id = match req.id {
            Some(id) => {
                check_slug("id", &id)?;
                id
            }
            None => util::random_id()?,
        };
        let name = clean_name("name", &req.name)?;
        let description = clean_description("description", &req.description)?;
        let now = self.host.now_unix_ms();
        let group = Group {
            id,
            name,
            description,
            builtin: false,
            created_at: now,
            updated_at: now,
        };
        let key = record_key(&group.id);
        let result = self
            .host
            .store()
            .batch()
            .expect_absent(&key)
            .put_json(&key, &group)?
            .put(
                name_index_key(NAME_INDEX_PREFIX, &group.name, &group.id),
                &group.id,
            )
            .commit()?;
        if let BatchResult::PreconditionFailed(_) = result {
            return Err(
                PluginError::conflict(format!("group '{}' already exists", group.id))
                    .with_details(serde_json::json!({ "field": "id" })),
            );
        }
        self.host
            .publish("group.created", &serde_json::json!({ "group": group }))?;
        Ok(group)
    }

    fn get(&self, req: IdRequest, _: &CallContext) -> Result<Group, PluginError> {
        check_slug("id", &req.id)?;
        load(&self.host.store(), &req.id)?
            .map(|(group, _)| group)
            .ok_or_else(|| not_found(&req.id))
    }

    fn list(&self, req: ListRequest, _: &CallContext) -> Result<ListResponse, PluginError> {
        let page = Page::new(req.search, req.offset, req.limit)?;
        let store = self.host.store();
        if page.search.is_none() {
            // Page through the name index; fetch only the records shown.
            let index = store.scan_prefix(NAME_INDEX_PREFIX)?;
            let total = index.len() as u64;
            let mut items = Vec::new();
            for (_, id) in index.iter().skip(page.offset).take(page.limit) {
                let id = String::from_utf8_lossy(id);
                if let Some((group, _)) = load(&store, &id)? {
                    items.push(group);
                }
            }
            return Ok(ListResponse { items, total });
        }
        let mut matching = Vec::new();
        for (key, bytes) in store.scan_prefix(RECORD_PREFIX)? {
            let group = decode(&key, &bytes)?;
            if page.matches(&[&group.id, &group.name, &group.description]) {
                matching.push(group);
            }
        }
        matching.sort_by(|a, b| util::name_order(&a.name, &a.id, &b.name, &b.id));
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(page.offset)
            .take(page.limit)
            .collect();
        Ok(ListResponse { items, total })
    }

    fn update(&self, req: UpdateRequest, _: &CallContext) -> Result<Group, PluginError> {
        check_slug("id", &req.id)?;
        let name = req
            .name
            .as_deref()
            .map(|n| clean_name("name", n))
            .transpose()?;
        let description = req
            .description
            .as_deref()
            .map(|d| clean_description("description", d))
            .transpose()?;
        let store = self.host.store();
        let key = record_key(&req.id);
        for _ in 0..MAX_ATTEMPTS {
            let (old, old_bytes) = load(&store, &req.id)?.ok_or_else(|| not_found(&req.id))?;
            let mut new = old.clone();
            if let Some(name) = &name {
                new.name = name.clone();
            }
            if let Some(description) = &description {
                new.description = description.clone();
            }
            if new == old {
                return Ok(old);
            }
            new.updated_at = self.host.now_unix_ms().max(old.updated_at);
            let result = store
                .batch()
                .expect(&key, &old_bytes)
                .delete(name_index_key(NAME_INDEX_PREFIX, &old.name, &old.id))
                .put(
                    name_index_key(NAME_INDEX_PREFIX, &new.name, &new.id),
                    &new.id,
                )
                .put_json(&key, &new)?
                .commit()?;
            if result == BatchResult::Committed {
                self.host
                    .publish("group.updated", &serde_json::json!({ "group": new }))?;
                return Ok(new);
            }
            std::thread::yield_now();
        }
        Err(busy(&req.id))
    }

    fn delete(&self, req: IdRequest, _: &CallContext) -> Result<DeleteResponse, PluginError> {
        check_slug("id", &req.id)?;
        let store = self.host.store();
        let key = record_key(&req.id);
        for _ in 0..MAX_ATTEMPTS {
            let (old, old_bytes) = load(&store, &req.id)?.ok_or_else(|| not_found(&req.id))?;
            if old.builtin {
                return Err(PluginError::conflict(format!(
                    "the built-in group '{}' cannot be deleted",
                    old.id
                ))
                .with_details(serde_json::json!({ "field": "id" })));
            }
            let result = store
                .batch()
                .expect(&key, &old_bytes)
                .delete(&key)
                .delete(name_index_key(NAME_INDEX_PREFIX, &old.name, &old.id))
                .commit()?;
            if result == BatchResult::Committed {
                self.host
                    .publish("group.deleted", &serde_json::json!({ "id": old.id }))?;
                return Ok(DeleteResponse { deleted: true });
            }
            std::thread::yield_now();
        }
        Err(busy(&req.id))
    }

    fn check(&self, req: CheckRequest, _: &CallContext) -> Result<CheckResponse, PluginError> {
        let store = self.host.store();
        let mut unknown = Vec::new();
        for id in req.ids {
            // Ids that are not even slugs cannot exist.
            if !util::is_slug(&id) || store.get(record_key(&id))?.is_none() {
                unknown.push(id);
            }
        }
        unknown.sort();
        unknown.dedup();
        Ok(CheckResponse { unknown })
    }
}

/// Reads a group and the exact bytes it is stored as (for `expect`).
fn load(store: &Store, id: &str) -> Result<Option<(Group, Vec<u8>)>, PluginError> {
    let key = record_key(id);
    match store.get(&key)? {
        None => Ok(None),
        Some(bytes) => Ok(Some((decode(key.as_bytes(), &bytes)?, bytes))),
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Group, PluginError> {
    serde_json::from_slice(bytes).map_err(|e| {
        PluginError::storage(format!(
            "stored group under {} is not valid: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

fn not_found(id: &str) -> PluginError {
    PluginError::not_found(format!("group '{id}' does not exist"))
        .with_details(serde_json::json!({ "field": "id" }))
}

fn busy(id: &str) -> PluginError {
    PluginError::conflict(format!(
        "group '{id}' is being changed concurrently; try again"
    ))
}

export_plugin!(GroupSystem);
