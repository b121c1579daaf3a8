//! `import` (permission `user.create`): bulk creation of accounts with
//! pre-hashed passwords, for migrations and test data.
//!
//! One call stores up to [`MAX_IMPORT_BATCH`] users **atomically**: every
//! item is validated first (the error names the item, e.g. field
//! `users[17].email`, and details carry its `index`), the role, group and
//! permission ids of the whole batch are checked with one `check` call per
//! system, and then every key of every user goes into ONE conditional batch
//! (each user's address expected absent; the new ids are time-ordered and
//! unique by construction, see [`codes::new_id`]). Either all users of the
//! call exist afterwards or none does; the host commits (and, under a
//! flush-per-write durability policy, flushes) once per call, not per user.
//! The call publishes ONE `user.imported` event naming every new id (not a
//! `user.created` per account): subscribers get the same information with
//! one delivery per batch.
//! No password is hashed here: `password_hash` is stored as given after
//! [`password::check_stored`] accepted it, and rehashed with the current
//! parameters at the user's next login if they differ.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use syshost_plugin_api::{BatchResult, CallContext, PluginError};

use crate::admin;
use crate::codes;
use crate::email;
use crate::model::{ConsentEntry, Ctx, ImportedEvent, Status, UserRecord};
use crate::password;
use crate::profile::Profile;
use crate::store;

/// The most users one `import` call takes.
pub const MAX_IMPORT_BATCH: usize = 1000;

/// One account to import.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportUser {
    /// The login address (normalized and unique, like `create`'s).
    pub email: String,
    /// The password as an Argon2 PHC string
    /// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`); without one the
    /// account has no password and must set one (password reset).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Whether the address is confirmed (default `false`).
    #[serde(default)]
    pub verified: bool,
    /// Account status (default enabled).
    #[serde(default)]
    pub status: Option<Status>,
    /// Contact and profile data (validated like `update_contact`'s).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Role ids (must exist).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Group ids (must exist).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Directly granted permission ids (must be declared).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Consent history per consent option id (options must exist in the
    /// `user` settings).
    #[serde(default)]
    pub consents: BTreeMap<String, Vec<ConsentEntry>>,
    /// Creation time in ms since the Unix epoch (default: now); not in the
    /// future.
    #[serde(default)]
    pub created_at: Option<i64>,
}

/// Request of `import`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// 1 to [`MAX_IMPORT_BATCH`] accounts.
    pub users: Vec<ImportUser>,
}

/// Response of `import`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportResponse {
    /// How many accounts were created (all of the request).
    pub imported: u64,
    /// Their new ids, in request order.
    pub ids: Vec<String>,
}

/// Prefixes an item's validation error with its position: the field
/// becomes `users[<i>].<field>` and details gain `index`.
fn at(index: usize, e: PluginError) -> PluginError {
    let inner = e
        .details
        .as_ref()
        .and_then(|d| d.get("field"))
        .and_then(|f| f.as_str())
        .map(str::to_string);
    let field = match inner {
        Some(f) => format!("users[{index}].{f}"),
        None => format!("users[{index}]"),
    };
    let mut details = match e.details {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    details.insert("field".into(), serde_json::Value::String(field.clone()));
    details.insert("index".into(), serde_json::json!(index));
    PluginError {
        code: e.code,
        message: format!("{field}: {}", e.message),
        details: Some(serde_json::Value::Object(details)),
    }
}

/// The consent option ids of the current settings.
fn consent_option_ids(settings: &serde_json::Value) -> BTreeSet<String> {
    settings
        .get("consent_options")
        .and_then(|v| v.as_array())
        .map(|options| {
            options
                .iter()
                .filter_map(|o| o.get("id").and_then(|id| id.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Validates one item into a record (without id) and its credential.
fn validate_item(
    item: ImportUser,
    now: i64,
    options: &BTreeSet<String>,
) -> Result<(UserRecord, Option<String>), PluginError> {
    let address = email::normalize(&item.email)?;
    if let Some(phc) = &item.password_hash {
        password::check_stored(phc).map_err(|why| {
            PluginError::invalid_field(
                "password_hash",
                format!("password_hash is not a usable Argon2 PHC string: {why}"),
            )
        })?;
    }
    let profile = item.profile.unwrap_or_default().validated()?;
    let roles = admin::id_set("roles", item.roles)?;
    let groups = admin::id_set("groups", item.groups)?;
    let permissions = admin::id_set("permissions", item.permissions)?;
    for (option, history) in &item.consents {
        if !options.contains(option) {
            return Err(PluginError::invalid_field(
                "consents",
                format!(
                    "unknown consent option '{}' (not in the user settings)",
                    store::shorten(option)
                ),
            ));
        }
        if history.len() > 100 {
            return Err(PluginError::invalid_field(
                "consents",
                "a consent history holds at most 100 entries",
            ));
        }
        for entry in history {
            if entry.version.is_empty() || entry.version.chars().count() > 64 {
                return Err(PluginError::invalid_field(
                    "consents",
                    "a consent version must be 1-64 characters",
                ));
            }
            if entry.at < 0 || entry.at > now {
                return Err(PluginError::invalid_field(
                    "consents",
                    "a consent time must lie between the epoch and now",
                ));
            }
        }
    }
    let created_at = match item.created_at {
        None => now,
        Some(t) if (0..=now).contains(&t) => t,
        Some(_) => {
            return Err(PluginError::invalid_field(
                "created_at",
                "created_at must lie between the epoch and now",
            ))
        }
    };
    let has_password = item.password_hash.is_some();
    let record = UserRecord {
        id: String::new(),
        email: address,
        status: item.status.unwrap_or(Status::Enabled),
        email_verified: item.verified,
        require_password_change: !has_password,
        created_at,
        updated_at: created_at,
        password_changed_at: has_password.then_some(created_at),
        last_login_at: None,
        profile,
        avatar: None,
        roles,
        groups,
        permissions,
        consents: item.consents,
        rev: 0,
    };
    Ok((record, item.password_hash))
}

/// `import` (permission `user.create`): creates up to [`MAX_IMPORT_BATCH`]
/// accounts with pre-hashed passwords in one atomic batch, then publishes
/// one `user.imported` naming them all. Any invalid item, an address used twice in the
/// request (`invalid_input`) or already taken (`conflict`) rejects the
/// whole request and stores nothing.
pub fn import(
    ctx: &Ctx,
    req: ImportRequest,
    _: &CallContext,
) -> Result<ImportResponse, PluginError> {
    if req.users.is_empty() || req.users.len() > MAX_IMPORT_BATCH {
        return Err(PluginError::invalid_field(
            "users",
            format!(
                "users must hold 1 to {MAX_IMPORT_BATCH} accounts (got {})",
                req.users.len()
            ),
        ));
    }
    let now = ctx.now();
    let options = consent_option_ids(&ctx.settings()?);
    let store = ctx.store();
    let mut records = Vec::with_capacity(req.users.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in req.users.into_iter().enumerate() {
        let (record, credential) = validate_item(item, now, &options).map_err(|e| at(i, e))?;
        let key = email::key(&record.email);
        if let Some(first) = seen.insert(key, i) {
            return Err(at(
                i,
                PluginError::invalid_field(
                    "email",
                    format!(
                        "the address '{}' appears twice in this request (also users[{first}])",
                        record.email
                    ),
                ),
            ));
        }
        records.push((record, credential));
    }
    // One check per referenced system for the whole batch.
    let union = |f: fn(&UserRecord) -> &BTreeSet<String>| -> BTreeSet<String> {
        records
            .iter()
            .flat_map(|(r, _)| f(r).iter().cloned())
            .collect()
    };
    admin::check_refs(ctx, "role", "roles", "role", &union(|r| &r.roles))?;
    admin::check_refs(ctx, "group", "groups", "group", &union(|r| &r.groups))?;
    admin::check_refs(
        ctx,
        "permission",
        "permissions",
        "permission",
        &union(|r| &r.permissions),
    )?;

    // Ids from the time-ordered generator are unique by construction (it
    // starts above the store's greatest id), so the batch expects only the
    // addresses absent: no read per id, and the keys by id of the whole
    // batch are appended at the end of their ranges.
    let mut ops = Vec::with_capacity(records.len() * 7);
    // Op index of each user's `expect_absent(email/<key>)`.
    let mut starts = Vec::with_capacity(records.len());
    for (record, credential) in records.iter_mut() {
        record.id = codes::new_id(now)?;
        starts.push(ops.len());
        store::push_new_user_ops(&mut ops, record, credential.as_deref(), &[])?;
    }
    match store::commit_new_users(ctx, &store, ops, records.iter().map(|(r, _)| r))? {
        BatchResult::Committed => {
            let ids: Vec<String> = records.into_iter().map(|(r, _)| r.id).collect();
            ctx.host.publish(
                "user.imported",
                &ImportedEvent {
                    count: ids.len() as u64,
                    user_ids: ids.clone(),
                },
            )?;
            Ok(ImportResponse {
                imported: ids.len() as u64,
                ids,
            })
        }
        BatchResult::PreconditionFailed(op) => {
            let user = starts.partition_point(|&s| s <= op).saturating_sub(1);
            let address = &records[user].0.email;
            Err(at(user, store::email_taken(address)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_errors_name_the_item_and_field() {
        let e = at(
            3,
            PluginError::invalid_field("email", "bad address")
                .with_details(serde_json::json!({ "field": "email", "unknown": ["x"] })),
        );
        let details = e.details.unwrap();
        assert_eq!(details["field"], "users[3].email");
        assert_eq!(details["index"], 3);
        assert_eq!(details["unknown"][0], "x");
        assert!(e.message.starts_with("users[3].email: "), "{}", e.message);
    }

    #[test]
    fn stored_hash_check_accepts_argon2_and_refuses_the_rest() {
        let phc = password::hash("correct horse battery staple").unwrap();
        assert!(password::check_stored(&phc).is_ok());
        assert!(password::check_stored("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(password::check_stored("plain text").is_err());
        assert!(password::check_stored("$argon2id$v=19$m=19456,t=2,p=1").is_err());
        let huge = phc.replace("m=19456", "m=99999999");
        assert!(password::check_stored(&huge).is_err());
    }
}
