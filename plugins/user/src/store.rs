//! The key layout of the user namespace and the atomic write helpers.
//!
//! | key | value |
//! |---|---|
//! | `user/<id>` | [`UserRecord`] as JSON |
//! | `email/<email::key(address)>` | the user id (unique index) |
//! | `cred/<id>` | the password's PHC string |
//! | `code/<id>/<purpose>` | a [`CodeRecord`] as JSON (`verify`, `reset`) |
//! | `avatar/<id>` | the avatar image bytes |
//! | `role/<role id>/<user id>` | empty (membership index) |
//! | `group/<group id>/<user id>` | empty (membership index) |
//! | `created/<created_at, 16 hex digits>/<id>` | empty; legacy, see below |
//! | `secret/code_key` | 32 random bytes (created at first activation) |
//!
//! **Atomicity.** Every change of a user is ONE conditional batch that
//! expects the record's current bytes and writes the record again (with
//! `rev` incremented) together with every index or side key it touches, so
//! the indexes never disagree with the record. A batch whose expectation
//! failed was not applied; the helpers re-read and retry (at most
//! [`MAX_ATTEMPTS`] times). Because every write bumps `rev`, a batch that
//! expects the record also proves that no other key of that user changed
//! since it was read (which makes `delete`'s scan of `code/<id>/` exact).
//!
//! **Ids and key order.** New ids are time-ordered ([`codes::new_id`]), so
//! the keys by id of new accounts (`user/`, `cred/`, membership keys) are
//! appended at the end of their ranges; ids of older stores (32 hex digits)
//! keep working and sort before every time-ordered id. Ids are unique by
//! construction (the generator starts above the store's greatest id, see
//! [`note_greatest_id`]); single creations still expect the record key
//! absent, `import` does not read 1 000 keys to re-check that.
//!
//! **No creation index.** Stores written before time-ordered ids also hold
//! a `created/<created_at>/<id>` key per user. Nothing reads them (the
//! creation order `list` sorts by comes from the records' `created_at`),
//! new accounts get none, and a user's deletion removes its key, so old
//! stores need no migration and no start-up scan.
//!
//! **The user index.** Every commit that writes a `user/<id>` record runs
//! through [`crate::index::UserIndex::write`] (here and in `import`), which
//! keeps the in-memory index `list` answers from equal to the store.

use std::collections::BTreeSet;

use syshost_plugin_api::{BatchResult, PluginError, Store};

use crate::codes::{self, CodeRecord};
use crate::email;
use crate::index::Change;
use crate::model::{Ctx, UserRecord};

/// How often a conditional write is retried when a concurrent change won.
pub const MAX_ATTEMPTS: usize = 32;

/// Prefix of user records.
pub const USER_PREFIX: &str = "user/";
/// Prefix of the legacy creation-order keys (no longer written).
pub const CREATED_PREFIX: &str = "created/";
/// The first key after every `user/<id>` key.
pub const USER_END: &str = "user0";
/// Key of the secret code key.
pub const CODE_KEY_KEY: &str = "secret/code_key";

/// `user/<id>`.
pub fn user_key(id: &str) -> String {
    format!("{USER_PREFIX}{id}")
}

/// `email/<key>` where `key` is [`email::key`] of the normalized address.
pub fn email_index_key(address: &str) -> String {
    format!("email/{}", email::key(address))
}

/// `cred/<id>`.
pub fn cred_key(id: &str) -> String {
    format!("cred/{id}")
}

/// `code/<id>/<purpose>`.
pub fn code_key(id: &str, purpose: &str) -> String {
    format!("code/{id}/{purpose}")
}

/// `code/<id>/`: every outstanding code of a user.
pub fn code_prefix(id: &str) -> String {
    format!("code/{id}/")
}

/// `avatar/<id>`.
pub fn avatar_key(id: &str) -> String {
    format!("avatar/{id}")
}

/// `role/<role>/<user>`.
pub fn role_member_key(role: &str, user: &str) -> String {
    format!("role/{role}/{user}")
}

/// `role/<role>/`: every holder of a role.
pub fn role_members_prefix(role: &str) -> String {
    format!("role/{role}/")
}

/// `group/<group>/<user>`.
pub fn group_member_key(group: &str, user: &str) -> String {
    format!("group/{group}/{user}")
}

/// `group/<group>/`: every member of a group.
pub fn group_members_prefix(group: &str) -> String {
    format!("group/{group}/")
}

/// `created/<created_at as 16 hex digits>/<id>` (legacy: only deleted).
pub fn created_key(created_at: i64, id: &str) -> String {
    format!("{CREATED_PREFIX}{:016x}/{id}", created_at.max(0))
}

/// Purpose of e-mail verification codes.
pub const PURPOSE_VERIFY: &str = "verify";
/// Purpose of password (re)set codes.
pub const PURPOSE_RESET: &str = "reset";

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write a value.
    Put(String, Vec<u8>),
    /// Remove a key.
    Delete(String),
    /// Require the key to hold exactly these bytes.
    Expect(String, Vec<u8>),
    /// Require the key to be absent.
    ExpectAbsent(String),
}

/// Commits `ops` as one atomic batch.
pub fn commit(store: &Store, ops: Vec<Op>) -> Result<BatchResult, PluginError> {
    let mut batch = store.batch();
    for op in ops {
        batch = match op {
            Op::Put(k, v) => batch.put(k, v),
            Op::Delete(k) => batch.delete(k),
            Op::Expect(k, v) => batch.expect(k, v),
            Op::ExpectAbsent(k) => batch.expect_absent(k),
        };
    }
    batch.commit()
}

/// `change` when the batch committed, nothing otherwise (the index
/// follows only applied batches).
pub fn committed<'a>(outcome: &BatchResult, change: Change<'a>) -> Vec<Change<'a>> {
    match outcome {
        BatchResult::Committed => vec![change],
        BatchResult::PreconditionFailed(_) => Vec::new(),
    }
}

/// The error for an unknown user id.
pub fn not_found(id: &str) -> PluginError {
    PluginError::not_found(format!("user '{}' does not exist", shorten(id)))
        .with_details(serde_json::json!({ "id": id }))
}

/// The error for an address another account already uses.
pub fn email_taken(address: &str) -> PluginError {
    PluginError::conflict(format!(
        "the email address '{address}' is already in use (addresses are compared case-insensitively)"
    ))
    .with_details(serde_json::json!({ "field": "email" }))
}

/// The error after [`MAX_ATTEMPTS`] lost races.
pub fn contention(id: &str) -> PluginError {
    PluginError::conflict(format!(
        "user '{}' was changed concurrently too often; try again",
        shorten(id)
    ))
}

/// At most 64 characters of `s`, for messages echoing caller input.
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(61).collect();
        out.push_str("...");
        out
    }
}

/// Decodes a stored record.
pub fn decode(id: &str, bytes: &[u8]) -> Result<UserRecord, PluginError> {
    serde_json::from_slice(bytes).map_err(|e| {
        PluginError::storage(format!(
            "stored record of user '{}' is not valid: {e}",
            shorten(id)
        ))
    })
}

/// The stored bytes and decoded record of user `id`, if it exists.
pub fn load(store: &Store, id: &str) -> Result<Option<(Vec<u8>, UserRecord)>, PluginError> {
    let Some(bytes) = store.get(user_key(id))? else {
        return Ok(None);
    };
    let record = decode(id, &bytes)?;
    Ok(Some((bytes, record)))
}

/// Like [`load`], but `not_found` when the user does not exist.
pub fn load_existing(store: &Store, id: &str) -> Result<(Vec<u8>, UserRecord), PluginError> {
    load(store, id)?.ok_or_else(|| not_found(id))
}

/// The id of the user with this (normalized) address, if any.
pub fn id_by_email(store: &Store, address: &str) -> Result<Option<String>, PluginError> {
    Ok(store
        .get(email_index_key(address))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Every user record, in id order.
pub fn all_records(store: &Store) -> Result<Vec<UserRecord>, PluginError> {
    store
        .scan_prefix(USER_PREFIX)?
        .into_iter()
        .map(|(k, v)| decode(&String::from_utf8_lossy(&k[USER_PREFIX.len()..]), &v))
        .collect()
}

/// Starts the id generator above the greatest stored user id (one read of
/// the last `user/` key: time-ordered ids sort after every older id), so
/// every id issued afterwards is new. Called at activation.
pub fn note_greatest_id(store: &Store) -> Result<(), PluginError> {
    if let Some((key, _)) = store
        .range_rev(USER_PREFIX.as_bytes(), Some(USER_END.as_bytes()), 1)?
        .first()
    {
        codes::note_id(&String::from_utf8_lossy(&key[USER_PREFIX.len()..]));
    }
    Ok(())
}

/// The user ids indexed under `prefix` (`role/<r>/` or `group/<g>/`).
pub fn member_ids(store: &Store, prefix: &str) -> Result<Vec<String>, PluginError> {
    Ok(store
        .scan_prefix(prefix)?
        .into_iter()
        .filter_map(|(k, _)| last_segment(&k))
        .collect())
}

/// The part of a key after its last `/`.
pub fn last_segment(key: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(key).ok()?;
    text.rsplit('/').next().map(str::to_string)
}

/// Adds the puts and deletes that move the membership indexes of `user`
/// from `before` to `after` (`key_of(member id, user id)`).
fn index_diff(
    ops: &mut Vec<Op>,
    user: &str,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
    key_of: fn(&str, &str) -> String,
) {
    for gone in before.difference(after) {
        ops.push(Op::Delete(key_of(gone, user)));
    }
    for new in after.difference(before) {
        ops.push(Op::Put(key_of(new, user), Vec::new()));
    }
}

/// The ops that store a brand-new user: the record, the unique email index,
/// the membership indexes, the credential and codes. The first two ops are
/// `expect_absent(user/<id>)` and `expect_absent(email/<key>)`, in that
/// order.
pub fn insert_ops(
    record: &UserRecord,
    credential: Option<&str>,
    codes: &[(&str, CodeRecord)],
) -> Result<Vec<Op>, PluginError> {
    let mut ops = vec![Op::ExpectAbsent(user_key(&record.id))];
    push_new_user_ops(&mut ops, record, credential, codes)?;
    Ok(ops)
}

/// Like [`insert_ops`] without the `expect_absent(user/<id>)` (for ids
/// fresh from [`codes::new_id`], unique by construction): the first op
/// is `expect_absent(email/<key>)`. Appends to `ops`.
pub fn push_new_user_ops(
    ops: &mut Vec<Op>,
    record: &UserRecord,
    credential: Option<&str>,
    codes: &[(&str, CodeRecord)],
) -> Result<(), PluginError> {
    let id = &record.id;
    let email_key = email_index_key(&record.email);
    ops.push(Op::ExpectAbsent(email_key.clone()));
    ops.push(Op::Put(user_key(id), serde_json::to_vec(record)?));
    ops.push(Op::Put(email_key, id.as_bytes().to_vec()));
    index_diff(ops, id, &BTreeSet::new(), &record.roles, role_member_key);
    index_diff(ops, id, &BTreeSet::new(), &record.groups, group_member_key);
    if let Some(phc) = credential {
        ops.push(Op::Put(cred_key(id), phc.as_bytes().to_vec()));
    }
    for (purpose, code) in codes {
        ops.push(Op::Put(code_key(id, purpose), serde_json::to_vec(code)?));
    }
    Ok(())
}

/// Commits `ops`, a batch creating the users `records` (such as
/// [`insert_ops`] of each), and adds them to the user index when it
/// committed.
pub fn commit_new_users<'a>(
    ctx: &Ctx,
    store: &Store,
    ops: Vec<Op>,
    records: impl Iterator<Item = &'a UserRecord> + Clone,
) -> Result<BatchResult, PluginError> {
    let ids: Vec<&str> = records.clone().map(|r| r.id.as_str()).collect();
    ctx.users.write(
        &ids,
        || commit(store, ops),
        |outcome| match outcome {
            BatchResult::Committed => records.map(Change::Put).collect(),
            BatchResult::PreconditionFailed(_) => Vec::new(),
        },
    )
}

/// What [`insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The user is stored.
    Committed,
    /// A user with this id exists already (generate another id).
    IdTaken,
    /// Another account uses the address.
    EmailTaken,
}

/// Stores a brand-new user atomically (see [`insert_ops`]) and adds it to
/// the user index.
pub fn insert(
    ctx: &Ctx,
    record: &UserRecord,
    credential: Option<&str>,
    codes: &[(&str, CodeRecord)],
) -> Result<Inserted, PluginError> {
    let ops = insert_ops(record, credential, codes)?;
    let store = ctx.store();
    let outcome = ctx.users.write(
        &[record.id.as_str()],
        || commit(&store, ops),
        |outcome| committed(outcome, Change::Put(record)),
    )?;
    Ok(match outcome {
        BatchResult::Committed => Inserted::Committed,
        BatchResult::PreconditionFailed(0) => Inserted::IdTaken,
        BatchResult::PreconditionFailed(_) => Inserted::EmailTaken,
    })
}

/// The outcome of [`modify`].
#[derive(Debug, Clone)]
pub struct Modified {
    /// The record before the change.
    pub before: UserRecord,
    /// The record after the change (equal to `before` when nothing changed).
    pub after: UserRecord,
    /// Whether anything was written.
    pub written: bool,
}

/// Changes user `id` atomically, with optimistic concurrency.
///
/// `change` receives a copy of the current record and a list of extra ops
/// (side keys such as `cred/<id>` or `code/<id>/<purpose>`). When it leaves
/// the record unchanged and adds no op, nothing is written. Otherwise one
/// batch expects the record's current bytes, moves the email index (with
/// `expect_absent` on the new address: a taken address is `conflict`
/// naming `email`) and the role/group membership indexes, applies the extra
/// ops and stores the record with `rev + 1` and, when `touch` is set and a
/// visible field changed, a new `updated_at`. When another change won the
/// race, `change` runs again on the fresh record (so it must not have side
/// effects outside the ops it returns). An error from `change` aborts
/// without writing.
pub fn modify_with<F>(
    ctx: &Ctx,
    id: &str,
    touch: bool,
    mut change: F,
) -> Result<Modified, PluginError>
where
    F: FnMut(&mut UserRecord, &mut Vec<Op>) -> Result<(), PluginError>,
{
    let store = ctx.store();
    for _ in 0..MAX_ATTEMPTS {
        let (old_bytes, before) = load_existing(&store, id)?;
        let mut after = before.clone();
        let mut extra = Vec::new();
        change(&mut after, &mut extra)?;
        // The id and the bookkeeping fields are not the closure's to change.
        after.id.clone_from(&before.id);
        after.rev = before.rev;
        after.created_at = before.created_at;
        if after == before && extra.is_empty() {
            return Ok(Modified {
                after: before.clone(),
                before,
                written: false,
            });
        }
        if touch && after != before {
            after.updated_at = ctx.now().max(before.updated_at);
        }
        after.rev = before.rev.wrapping_add(1);

        let mut ops = vec![Op::Expect(user_key(id), old_bytes)];
        let mut email_check = None;
        let old_email = email_index_key(&before.email);
        let new_email = email_index_key(&after.email);
        if old_email != new_email {
            email_check = Some(ops.len());
            ops.push(Op::ExpectAbsent(new_email.clone()));
            ops.push(Op::Delete(old_email));
            ops.push(Op::Put(new_email, id.as_bytes().to_vec()));
        }
        index_diff(&mut ops, id, &before.roles, &after.roles, role_member_key);
        index_diff(
            &mut ops,
            id,
            &before.groups,
            &after.groups,
            group_member_key,
        );
        ops.extend(extra);
        ops.push(Op::Put(user_key(id), serde_json::to_vec(&after)?));
        let outcome = ctx.users.write(
            &[id],
            || commit(&store, ops),
            |outcome| committed(outcome, Change::Put(&after)),
        )?;
        match outcome {
            BatchResult::Committed => {
                return Ok(Modified {
                    before,
                    after,
                    written: true,
                })
            }
            BatchResult::PreconditionFailed(i) if Some(i) == email_check => {
                return Err(email_taken(&after.email))
            }
            BatchResult::PreconditionFailed(_) => continue,
        }
    }
    Err(contention(id))
}

/// [`modify_with`] with `touch = true` (the usual case).
pub fn modify<F>(ctx: &Ctx, id: &str, change: F) -> Result<Modified, PluginError>
where
    F: FnMut(&mut UserRecord, &mut Vec<Op>) -> Result<(), PluginError>,
{
    modify_with(ctx, id, true, change)
}

/// Removes every key of user `id` in one batch: the record, the email
/// index, the credential, every code, the avatar, the membership and
/// creation indexes. Returns the record as it was.
pub fn delete_user(ctx: &Ctx, id: &str) -> Result<UserRecord, PluginError> {
    let store = ctx.store();
    for _ in 0..MAX_ATTEMPTS {
        let (old_bytes, record) = load_existing(&store, id)?;
        // Exact: every write of a code also rewrites the record, which this
        // batch expects unchanged.
        let codes = store.scan_prefix(code_prefix(id))?;
        let mut ops = vec![
            Op::Expect(user_key(id), old_bytes),
            Op::Delete(user_key(id)),
            Op::Delete(email_index_key(&record.email)),
            Op::Delete(cred_key(id)),
            Op::Delete(avatar_key(id)),
            Op::Delete(created_key(record.created_at, id)),
        ];
        for (key, _) in codes {
            ops.push(Op::Delete(String::from_utf8_lossy(&key).into_owned()));
        }
        for purpose in [PURPOSE_VERIFY, PURPOSE_RESET] {
            ops.push(Op::Delete(code_key(id, purpose)));
        }
        index_diff(
            &mut ops,
            id,
            &record.roles,
            &BTreeSet::new(),
            role_member_key,
        );
        index_diff(
            &mut ops,
            id,
            &record.groups,
            &BTreeSet::new(),
            group_member_key,
        );
        let outcome = ctx.users.write(
            &[id],
            || commit(&store, ops),
            |outcome| committed(outcome, Change::Remove(id)),
        )?;
        match outcome {
            BatchResult::Committed => return Ok(record),
            BatchResult::PreconditionFailed(_) => continue,
        }
    }
    Err(contention(id))
}
