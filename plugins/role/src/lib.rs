//! The `role` system: named sets of permissions that users hold.
//!
//! A role has a slug id (caller-given or generated), a name that is unique
//! case-insensitively, a description and a set of permission ids, each of
//! which must be declared by an active plugin (checked with
//! `permission.check`). The user system holds role assignments and reacts to
//! `role.deleted`; other systems resolve a subject's effective permissions
//! with one `permissions_of` call.
//!
//! # Store layout
//! * `role/<id>` → the [`Role`] as JSON.
//! * `name/<lowercased name>` → the id of the role with that name: the
//!   case-insensitive unique index, also the listing order.
//!
//! Both keys change together in one conditional batch: creation expects
//! both absent; renames and deletes expect the record's current bytes (and
//! retry when a concurrent change won), so the index never dangles.

use std::collections::BTreeSet;

use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::{
    export_plugin, Access, BatchResult, CallContext, Host, Manifest, NoInput, Operations, Plugin,
    PluginError, Store,
};

pub mod model;
pub mod pages;
mod validate;

pub use model::{
    CheckResponse, CreateRequest, DeleteResponse, DeletedEvent, IdRequest, IdsRequest, ListRequest,
    ListResponse, PermissionsOfResponse, Pong, Role, RoleEvent, SetPermissionsRequest,
    UpdateRequest,
};
use model::{PermissionCheckRequest, PermissionCheckResponse};

/// Prefix of role records.
const ROLE_PREFIX: &str = "role/";
/// Prefix of the case-insensitive name index.
const NAME_PREFIX: &str = "name/";
/// How often a conditional write is retried when a concurrent change won.
const MAX_ATTEMPTS: usize = 32;
/// Id of the built-in administrator role.
pub const ADMIN_ROLE: &str = "admin";

fn role_key(id: &str) -> String {
    format!("{ROLE_PREFIX}{id}")
}

fn name_key(name: &str) -> String {
    format!("{NAME_PREFIX}{}", name.to_lowercase())
}

fn not_found(id: &str) -> PluginError {
    PluginError::not_found(format!("role '{}' does not exist", validate::shorten(id)))
        .with_details(serde_json::json!({ "id": id }))
}

fn name_taken(name: &str) -> PluginError {
    PluginError::conflict(format!(
        "a role named '{name}' already exists (names are compared case-insensitively)"
    ))
    .with_details(serde_json::json!({ "field": "name" }))
}

fn contention(id: &str) -> PluginError {
    PluginError::conflict(format!(
        "role '{id}' was changed concurrently too often; try again"
    ))
}

fn corrupt_index(id: &str) -> PluginError {
    PluginError::storage(format!(
        "the name index entry of role '{id}' does not point to it"
    ))
}

/// The running `role` system.
pub struct RoleSystem {
    host: Host,
}

impl Plugin for RoleSystem {
    fn manifest() -> Manifest {
        Manifest::new("role", env!("CARGO_PKG_VERSION"))
            .name("Roles")
            .describe("Named sets of permissions that users hold.")
            .requires("permission", "^0.1")
            .permission(
                "role.create",
                "Create roles",
                "Create roles with a name, description and initial permissions.",
            )
            .permission(
                "role.read",
                "View roles",
                "List and view roles and their permissions.",
            )
            .permission(
                "role.update",
                "Edit roles",
                "Change the name and description of roles.",
            )
            .permission(
                "role.set_permissions",
                "Set role permissions",
                "Replace the set of permissions a role grants.",
            )
            .permission(
                "role.delete",
                "Delete roles",
                "Delete roles; every user loses the deleted role.",
            )
            .page(
                PageDecl::new(pages::PATH, "Roles", "admin_roles_page")
                    .area(Area::Admin)
                    .card(
                        "Roles",
                        "Bundle permissions into roles and see who may do what. The recommended way to give users permissions.",
                        Some("role.read"),
                    )
                    .nav()
                    .order(20),
            )
    }

    fn operations() -> Operations<Self> {
        Operations::new()
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .op(
                "create",
                Access::permission("role.create"),
                "Creates a role (id generated when absent); unknown permission ids are rejected.",
                Self::create,
            )
            .query(
                "get",
                Access::permission("role.read"),
                "Returns one role.",
                Self::get,
            )
            .query(
                "list",
                Access::permission("role.read"),
                "Lists roles sorted by name, filtered by search text, paged.",
                Self::list,
            )
            .op(
                "update",
                Access::permission("role.update"),
                "Changes a role's name and/or description.",
                Self::update,
            )
            .op(
                "set_permissions",
                Access::permission("role.set_permissions"),
                "Replaces the set of permissions a role grants.",
                Self::set_permissions,
            )
            .op(
                "delete",
                Access::permission("role.delete"),
                "Deletes a role and publishes role.deleted.",
                Self::delete,
            )
            .page(
                "admin_roles_page",
                Access::permission("role.read"),
                "Admin page: the role list, or one role's editor.",
                Self::admin_roles_page,
            )
            .query(
                "check",
                Access::System,
                "Returns which of the given role ids do not exist.",
                Self::check,
            )
            .query(
                "permissions_of",
                Access::System,
                "Returns the union of the permissions of the given roles and the unknown ids.",
                Self::permissions_of,
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        let system = RoleSystem { host };
        system.seed_admin_role()?;
        Ok(system)
    }
}

impl RoleSystem {
    fn store(&self) -> Store {
        self.host.store()
    }

    /// The stored bytes and decoded record of role `id`, if it exists.
    fn load(&self, id: &str) -> Result<Option<(Vec<u8>, Role)>, PluginError> {
        let Some(bytes) = self.store().get(role_key(id))? else {
            return Ok(None);
        };
        let role = serde_json::from_slice(&bytes).map_err(|e| {
            PluginError::storage(format!("stored record of role '{id}' is not valid: {e}"))
        })?;
        Ok(Some((bytes, role)))
    }

    /// Creates the built-in administrator role once (idempotent; racing
    /// activations agree through the batch preconditions).
    fn seed_admin_role(&self) -> Result<(), PluginError> {
        if self.store().get(role_key(ADMIN_ROLE))?.is_some() {
            return Ok(());
        }
        let now = self.host.now_unix_ms();
        let role = Role {
            id: ADMIN_ROLE.to_string(),
            name: "Administrator".to_string(),
            description: "Holds every permission of every active system.".to_string(),
            permissions: Vec::new(),
            builtin: true,
            created_at: now,
            updated_at: now,
        };
        let bytes = serde_json::to_vec(&role)?;
        let result = self
            .store()
            .batch()
            .expect_absent(role_key(ADMIN_ROLE))
            .expect_absent(name_key(&role.name))
            .put(role_key(ADMIN_ROLE), &bytes)
            .put(name_key(&role.name), ADMIN_ROLE.as_bytes())
            .commit()?;
        if result == BatchResult::Committed {
            self.host
                .publish("role.created", &RoleEvent { role: &role })?;
        }
        Ok(())
    }

    /// Every permission id the active systems declare.
    fn all_permissions(&self) -> Result<Vec<String>, PluginError> {
        Ok(self
            .host
            .permissions()?
            .permissions()
            .iter()
            .map(|p| p.id.clone())
            .collect())
    }

    /// The role as callers see it (the administrator role's permission set
    /// is filled in from the registry).
    fn presented(&self, mut role: Role) -> Result<Role, PluginError> {
        if role.builtin {
            role.permissions = self.all_permissions()?;
        }
        Ok(role)
    }

    /// Rejects permission ids that no active plugin declares.
    fn check_permissions(&self, ids: &[String]) -> Result<(), PluginError> {
        if ids.is_empty() {
            return Ok(());
        }
        let resp: PermissionCheckResponse =
            self.host
                .call("permission", "check", &PermissionCheckRequest { ids })?;
        if resp.unknown.is_empty() {
            Ok(())
        } else {
            Err(validate::unknown_permissions(&resp.unknown))
        }
    }

    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "role",
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    fn create(&self, req: CreateRequest, _: &CallContext) -> Result<Role, PluginError> {
        let given_id = match req.id {
            Some(id) => {
                validate::id(&id)?;
                Some(id)
            }
            None => None,
        };
        let name = validate::name(&req.name)?;
        let description = validate::description(req.description.as_deref().unwrap_or(""))?;
        let permissions = validate::permission_set(req.permissions.unwrap_or_default());
        self.check_permissions(&permissions)?;

        let now = self.host.now_unix_ms();
        for _ in 0..MAX_ATTEMPTS {
            let id = match &given_id {
                Some(id) => id.clone(),
                None => validate::generate_id()?,
            };
            let role = Role {
                id: id.clone(),
                name: name.clone(),
                description: description.clone(),
                permissions: permissions.clone(),
                builtin: false,
                created_at: now,
                updated_at: now,
            };
            let bytes = serde_json::to_vec(&role)?;
            let result = self
                .store()
                .batch()
                .expect_absent(role_key(&id))
                .expect_absent(name_key(&name))
                .put(role_key(&id), &bytes)
                .put(name_key(&name), id.as_bytes())
                .commit()?;
            match result {
                BatchResult::Committed => {
                    self.host
                        .publish("role.created", &RoleEvent { role: &role })?;
                    return Ok(role);
                }
                BatchResult::PreconditionFailed(0) if given_id.is_none() => continue,
                BatchResult::PreconditionFailed(0) => {
                    return Err(PluginError::conflict(format!(
                        "a role with id '{id}' already exists"
                    ))
                    .with_details(serde_json::json!({ "field": "id" })))
                }
                BatchResult::PreconditionFailed(_) => return Err(name_taken(&name)),
            }
        }
        Err(PluginError::internal(
            "could not generate an unused role id",
        ))
    }

    fn get(&self, req: IdRequest, _: &CallContext) -> Result<Role, PluginError> {
        validate::id(&req.id)?;
        let role = self
            .load(&req.id)?
            .map(|(_, role)| role)
            .ok_or_else(|| not_found(&req.id))?;
        self.presented(role)
    }

    fn list(&self, req: ListRequest, _: &CallContext) -> Result<ListResponse, PluginError> {
        let limit = validate::limit(req.limit)?;
        let offset = usize::try_from(req.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let search = req
            .search
            .as_deref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        // The name index is the listing order: names are unique
        // case-insensitively, so there are no ties to break by id.
        let index = self.store().scan_prefix(NAME_PREFIX)?;
        let ids = index
            .into_iter()
            .map(|(_, id)| String::from_utf8_lossy(&id).into_owned());
        match search {
            None => {
                let ids: Vec<String> = ids.collect();
                let mut items = Vec::new();
                for id in ids.iter().skip(offset).take(limit) {
                    // A role deleted between the scan and this read is skipped.
                    if let Some((_, role)) = self.load(id)? {
                        items.push(self.presented(role)?);
                    }
                }
                Ok(ListResponse {
                    items,
                    total: ids.len() as u64,
                })
            }
            Some(needle) => {
                let mut items = Vec::new();
                let mut total = 0u64;
                for id in ids {
                    let Some((_, role)) = self.load(&id)? else {
                        continue;
                    };
                    let matches = role.id.to_lowercase().contains(&needle)
                        || role.name.to_lowercase().contains(&needle)
                        || role.description.to_lowercase().contains(&needle);
                    if !matches {
                        continue;
                    }
                    let position = usize::try_from(total).unwrap_or(usize::MAX);
                    if position >= offset && items.len() < limit {
                        items.push(self.presented(role)?);
                    }
                    total += 1;
                }
                Ok(ListResponse { items, total })
            }
        }
    }

    fn update(&self, req: UpdateRequest, _: &CallContext) -> Result<Role, PluginError> {
        validate::id(&req.id)?;
        let name = req.name.as_deref().map(validate::name).transpose()?;
        let description = req
            .description
            .as_deref()
            .map(validate::description)
            .transpose()?;
        let role = self.modify(&req.id, |role| {
            if let Some(name) = &name {
                role.name.clone_from(name);
            }
            if let Some(description) = &description {
                role.description.clone_from(description);
            }
        })?;
        self.presented(role)
    }

    fn set_permissions(
        &self,
        req: SetPermissionsRequest,
        _: &CallContext,
    ) -> Result<Role, PluginError> {
        validate::id(&req.id)?;
        let permissions = validate::permission_set(req.permissions);
        match self.load(&req.id)? {
            None => return Err(not_found(&req.id)),
            Some((_, role)) if role.builtin => {
                return Err(PluginError::conflict(format!(
                    "the permissions of the built-in role '{}' cannot be changed: it always holds every permission",
                    role.id
                )))
            }
            Some(_) => {}
        }
        self.check_permissions(&permissions)?;
        self.modify(&req.id, |role| role.permissions.clone_from(&permissions))
    }

    /// Applies `change` to role `id` with optimistic concurrency: the write
    /// expects the record bytes it read and is retried when another change
    /// won. A rename moves the name index entry in the same batch. When
    /// nothing changes, nothing is written and no event is published.
    fn modify(&self, id: &str, change: impl Fn(&mut Role)) -> Result<Role, PluginError> {
        let store = self.store();
        for _ in 0..MAX_ATTEMPTS {
            let (old_bytes, old) = self.load(id)?.ok_or_else(|| not_found(id))?;
            let mut role = old.clone();
            change(&mut role);
            if role == old {
                return Ok(old);
            }
            role.updated_at = self.host.now_unix_ms().max(old.updated_at);
            let bytes = serde_json::to_vec(&role)?;
            let old_name = name_key(&old.name);
            let new_name = name_key(&role.name);
            let mut batch = store
                .batch()
                .expect(role_key(id), &old_bytes)
                .expect(&old_name, id.as_bytes());
            if old_name != new_name {
                batch = batch
                    .expect_absent(&new_name)
                    .delete(&old_name)
                    .put(&new_name, id.as_bytes());
            }
            match batch.put(role_key(id), &bytes).commit()? {
                BatchResult::Committed => {
                    self.host
                        .publish("role.updated", &RoleEvent { role: &role })?;
                    return Ok(role);
                }
                BatchResult::PreconditionFailed(0) => continue,
                BatchResult::PreconditionFailed(1) => return Err(corrupt_index(id)),
                BatchResult::PreconditionFailed(_) => return Err(name_taken(&role.name)),
            }
        }
        Err(contention(id))
    }

    fn delete(&self, req: IdRequest, _: &CallContext) -> Result<DeleteResponse, PluginError> {
        validate::id(&req.id)?;
        let id = req.id.as_str();
        let store = self.store();
        for _ in 0..MAX_ATTEMPTS {
            let (old_bytes, old) = self.load(id)?.ok_or_else(|| not_found(id))?;
            if old.builtin {
                return Err(PluginError::conflict(format!(
                    "the built-in role '{id}' cannot be deleted"
                )));
            }
            let name = name_key(&old.name);
            let result = store
                .batch()
                .expect(role_key(id), &old_bytes)
                .expect(&name, id.as_bytes())
                .delete(role_key(id))
                .delete(&name)
                .commit()?;
            match result {
                BatchResult::Committed => {
                    self.host.publish("role.deleted", &DeletedEvent { id })?;
                    return Ok(DeleteResponse { deleted: true });
                }
                BatchResult::PreconditionFailed(0) => continue,
                BatchResult::PreconditionFailed(_) => return Err(corrupt_index(id)),
            }
        }
        Err(contention(id))
    }

    fn check(&self, req: IdsRequest, _: &CallContext) -> Result<CheckResponse, PluginError> {
        let mut unknown = BTreeSet::new();
        for id in req.ids.into_iter().collect::<BTreeSet<String>>() {
            if !validate::is_slug(&id) || self.store().get(role_key(&id))?.is_none() {
                unknown.insert(id);
            }
        }
        Ok(CheckResponse {
            unknown: unknown.into_iter().collect(),
        })
    }

    fn permissions_of(
        &self,
        req: IdsRequest,
        _: &CallContext,
    ) -> Result<PermissionsOfResponse, PluginError> {
        let mut permissions = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        let mut all = false;
        for id in req.ids.into_iter().collect::<BTreeSet<String>>() {
            let role = if validate::is_slug(&id) {
                self.load(&id)?
            } else {
                None
            };
            match role {
                Some((_, role)) => {
                    all |= role.builtin;
                    permissions.extend(role.permissions);
                }
                None => {
                    unknown.insert(id);
                }
            }
        }
        if all {
            permissions.extend(self.all_permissions()?);
        }
        Ok(PermissionsOfResponse {
            permissions: permissions.into_iter().collect(),
            unknown: unknown.into_iter().collect(),
        })
    }
}

export_plugin!(RoleSystem);
