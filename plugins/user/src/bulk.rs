//! Bulk operations for the admin user table: delete, enable or disable many
//! accounts in one call (export of many is `export` with `ids`).
//!
//! The whole request is validated first (every id an id, at most
//! [`MAX_BULK_IDS`], every user existing, not the caller's own account), so
//! a rejected request changes nothing. Then each user is changed in its own
//! atomic batch, exactly like the single-user operation does it, with the
//! same events; a user deleted concurrently in between is skipped and not
//! counted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use syshost_plugin_api::{CallContext, PluginError};

use crate::admin::{check_id, publish_updated};
use crate::model::{Ctx, DeletedEvent, Status};
use crate::store;

/// The most users one bulk request may name.
pub const MAX_BULK_IDS: usize = 500;

/// Request of `bulk_delete`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteRequest {
    /// The users to delete (1 to 500 ids; duplicates count once).
    pub ids: Vec<String>,
}

/// Response of `bulk_delete`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BulkDeleteResponse {
    /// How many accounts were deleted.
    pub deleted: u64,
}

/// The states `bulk_set_status` can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkState {
    /// Enable the accounts (without an end date).
    Enabled,
    /// Disable the accounts: no login, sessions end.
    Disabled,
}

/// Request of `bulk_set_status`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkStatusRequest {
    /// The users to change (1 to 500 ids; duplicates count once).
    pub ids: Vec<String>,
    /// The new state: `enabled` or `disabled`.
    pub state: BulkState,
}

/// Response of `bulk_set_status`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BulkStatusResponse {
    /// How many accounts actually changed (those already in the state do
    /// not count).
    pub changed: u64,
}

/// Validates the id list of a bulk request: non-empty, at most
/// [`MAX_BULK_IDS`], every entry an id of an existing user other than the
/// caller. `verb` names the action in the self-protection message.
fn checked_ids(
    ctx: &Ctx,
    ids: Vec<String>,
    caller: &CallContext,
    verb: &str,
) -> Result<BTreeSet<String>, PluginError> {
    if ids.is_empty() {
        return Err(PluginError::invalid_field(
            "ids",
            "ids must name at least one user",
        ));
    }
    let set: BTreeSet<String> = ids.into_iter().collect();
    if set.len() > MAX_BULK_IDS {
        return Err(PluginError::invalid_field(
            "ids",
            format!(
                "ids may name at most {MAX_BULK_IDS} users at once, got {}",
                set.len()
            ),
        ));
    }
    for id in &set {
        check_id("ids", id)?;
    }
    if let Some(own) = caller.subject.user_id() {
        if set.contains(own) {
            return Err(PluginError::invalid_field(
                "ids",
                format!("ids include your own account: you cannot {verb} it in a bulk action; deselect it"),
            ));
        }
    }
    let store = ctx.store();
    let mut unknown = Vec::new();
    for id in &set {
        if store::load(&store, id)?.is_none() {
            unknown.push(id.clone());
        }
    }
    if !unknown.is_empty() {
        let listed: Vec<String> = unknown.iter().map(|id| format!("'{id}'")).collect();
        return Err(
            PluginError::not_found(format!("unknown user ids: {}", listed.join(", ")))
                .with_details(serde_json::json!({ "field": "ids", "unknown": unknown })),
        );
    }
    Ok(set)
}

/// `bulk_delete` (permission `user.delete`): deletes every named account
/// as `delete` does, publishing `user.deleted` for each.
pub fn bulk_delete(
    ctx: &Ctx,
    req: BulkDeleteRequest,
    caller: &CallContext,
) -> Result<BulkDeleteResponse, PluginError> {
    let ids = checked_ids(ctx, req.ids, caller, "delete")?;
    let mut deleted = 0;
    for id in &ids {
        let record = match store::delete_user(ctx, id) {
            Ok(record) => record,
            Err(e) if e.code == syshost_plugin_api::codes::NOT_FOUND => continue,
            Err(e) => return Err(e),
        };
        ctx.host.publish(
            "user.deleted",
            &DeletedEvent {
                id: record.id.clone(),
                user_id: record.id,
            },
        )?;
        deleted += 1;
    }
    Ok(BulkDeleteResponse { deleted })
}

/// `bulk_set_status` (permission `user.update`): enables or disables every
/// named account as `set_status` does, publishing `user.updated` for each
/// one that changed.
pub fn bulk_set_status(
    ctx: &Ctx,
    req: BulkStatusRequest,
    caller: &CallContext,
) -> Result<BulkStatusResponse, PluginError> {
    let verb = match req.state {
        BulkState::Enabled => "enable",
        BulkState::Disabled => "disable",
    };
    let ids = checked_ids(ctx, req.ids, caller, verb)?;
    let status = match req.state {
        BulkState::Enabled => Status::Enabled,
        BulkState::Disabled => Status::Disabled,
    };
    let mut changed = 0;
    for id in &ids {
        let modified = match store::modify(ctx, id, |r, _| {
            r.status = status;
            Ok(())
        }) {
            Ok(modified) => modified,
            Err(e) if e.code == syshost_plugin_api::codes::NOT_FOUND => continue,
            Err(e) => return Err(e),
        };
        if modified.written && modified.before.status != modified.after.status {
            changed += 1;
        }
        publish_updated(ctx, &modified)?;
    }
    Ok(BulkStatusResponse { changed })
}
