//! Reactions to deletions in other systems: when a role or a group is
//! deleted, every user holding it loses it.
//!
//! The holders are found through the membership index (`role/<id>/` or
//! `group/<id>/`), so the work is proportional to the number of holders.
//! Each user changes in its own atomic batch (record and index together) and
//! gets its own `user.updated` event (`changes: ["roles"]` / `["groups"]`),
//! which also drops that user's cached subject.

use syshost_plugin_api::{PluginError, Store};

use crate::admin;
use crate::model::Ctx;
use crate::store::{self, Op};

/// Which kind of membership to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// A role.
    Role,
    /// A group.
    Group,
}

/// Removes role `role_id` from every user holding it (on `role.deleted`).
pub fn role_deleted(ctx: &Ctx, role_id: &str) -> Result<usize, PluginError> {
    remove_everywhere(ctx, Membership::Role, role_id)
}

/// Removes group `group_id` from every member (on `group.deleted`).
pub fn group_deleted(ctx: &Ctx, group_id: &str) -> Result<usize, PluginError> {
    remove_everywhere(ctx, Membership::Group, group_id)
}

/// Removes the membership from every user indexed under it; returns how many
/// users changed. Users deleted meanwhile are skipped; a stale index entry
/// (no record behind it) is removed.
pub fn remove_everywhere(ctx: &Ctx, kind: Membership, id: &str) -> Result<usize, PluginError> {
    if !admin::is_slug(id) {
        // Never stored: ids are checked before they become keys.
        return Ok(0);
    }
    let store = ctx.store();
    let (prefix, key_of): (String, fn(&str, &str) -> String) = match kind {
        Membership::Role => (store::role_members_prefix(id), store::role_member_key),
        Membership::Group => (store::group_members_prefix(id), store::group_member_key),
    };
    let mut changed = 0;
    for user_id in store::member_ids(&store, &prefix)? {
        let index_key = key_of(id, &user_id);
        let result = store::modify(ctx, &user_id, |r, ops| {
            let held = match kind {
                Membership::Role => r.roles.remove(id),
                Membership::Group => r.groups.remove(id),
            };
            if !held && store.get(&index_key)?.is_some() {
                // The index names a user that does not hold it: drop it.
                ops.push(Op::Delete(index_key.clone()));
            }
            Ok(())
        });
        match result {
            Ok(modified) => {
                admin::publish_updated(ctx, &modified)?;
                if modified.written {
                    changed += 1;
                }
            }
            Err(e) if e.is(syshost_plugin_api::codes::NOT_FOUND) => {
                // No record behind the entry: it is stale.
                let _ = store.delete(&index_key)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

/// Frees the license seats of users that no longer exist; returns how many
/// seats were freed.
///
/// A user's record and its seats live in different namespaces (`user`,
/// `license`): deleting a user commits the record first and the license
/// system frees the seats when `user.deleted` reaches it. A crash between
/// the two leaves seats held by nobody. This runs at every activation and
/// repairs exactly that, so the host never needs manual repair.
pub fn release_orphaned_seats(ctx: &Ctx) -> Result<usize, PluginError> {
    #[derive(serde::Deserialize)]
    struct Seats {
        items: Vec<SeatItem>,
    }
    #[derive(serde::Deserialize)]
    struct SeatItem {
        license_id: String,
        used: u64,
    }
    #[derive(serde::Deserialize)]
    struct Page {
        items: Vec<String>,
        total: u64,
    }
    let seats: Seats = ctx.host.call("license", "seats", &serde_json::json!({}))?;
    let store = ctx.store();
    let mut freed = 0;
    for license in seats.items.into_iter().filter(|l| l.used > 0) {
        let mut orphans = Vec::new();
        let mut offset = 0u64;
        loop {
            let page: Page = ctx.host.call(
                "license",
                "assignees",
                &serde_json::json!({ "license_id": license.license_id, "offset": offset, "limit": 500 }),
            )?;
            let got = page.items.len() as u64;
            for user_id in page.items {
                if store::load(&store, &user_id)?.is_none() {
                    orphans.push(user_id);
                }
            }
            offset += got;
            if got == 0 || offset >= page.total {
                break;
            }
        }
        for user_id in orphans {
            let _: serde_json::Value = ctx.host.call(
                "license",
                "revoke",
                &serde_json::json!({ "license_id": license.license_id, "user_id": user_id }),
            )?;
            freed += 1;
        }
    }
    if freed > 0 {
        ctx.host.warn(format!(
            "freed {freed} license seat(s) of deleted users (left behind by an interrupted deletion)"
        ));
    }
    Ok(freed)
}

/// The distinct ids `<id>` of the membership index keys
/// `<prefix><id>/<user>`, found by skipping: one one-key range read per
/// distinct id (from `<prefix><id>0`, the first key after every
/// `<prefix><id>/…`), so the cost follows the number of roles or groups in
/// use, never the number of users.
pub fn indexed_ids(store: &Store, prefix: &str) -> Result<Vec<String>, PluginError> {
    let end = syshost_plugin_api::prefix_end(prefix.as_bytes());
    let mut ids = Vec::new();
    let mut from = prefix.as_bytes().to_vec();
    loop {
        let Some((key, _)) = store.range(&from, end.as_deref(), 1)?.into_iter().next() else {
            return Ok(ids);
        };
        let slash = key
            .get(prefix.len()..)
            .and_then(|rest| rest.iter().position(|b| *b == b'/'));
        let Some(slash) = slash.map(|at| prefix.len() + at) else {
            // Not a membership key (never written); step over it.
            from = key;
            from.push(0);
            continue;
        };
        if let Ok(id) = std::str::from_utf8(&key[prefix.len()..slash]) {
            ids.push(id.to_string());
        }
        // `0` is the byte after `/`: the first key past this id's entries.
        from = key[..slash].to_vec();
        from.push(b'0');
    }
}

/// Removes, from every user, role and group ids whose role or group no
/// longer exists; returns how many users changed.
///
/// Like seats, memberships cross namespaces: deleting a role commits in the
/// `role` namespace and users lose it when `role.deleted` reaches this
/// system. A crash between the two would leave users holding the id, and a
/// role created later under the same id would silently grant them its
/// permissions. This runs at every activation and closes that window.
pub fn drop_dangling_memberships(ctx: &Ctx) -> Result<usize, PluginError> {
    #[derive(serde::Deserialize)]
    struct Check {
        unknown: Vec<String>,
    }
    let store = ctx.store();
    let mut changed = 0;
    for (kind, system) in [(Membership::Role, "role"), (Membership::Group, "group")] {
        let ids = indexed_ids(&store, &format!("{system}/"))?;
        let ids: Vec<String> = ids.into_iter().collect();
        for chunk in ids.chunks(100) {
            let check: Check =
                ctx.host
                    .call(system, "check", &serde_json::json!({ "ids": chunk }))?;
            for id in check.unknown {
                changed += remove_everywhere(ctx, kind, &id)?;
            }
        }
    }
    if changed > 0 {
        ctx.host.warn(format!(
            "removed deleted roles or groups from {changed} user(s) (left behind by an interrupted deletion)"
        ));
    }
    Ok(changed)
}
