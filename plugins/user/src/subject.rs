//! The subject provider (`subject`) and password login (`authenticate`),
//! both callable only by the host and other plugins (`Access::System`).

use std::collections::BTreeSet;

use serde::Deserialize;
use syshost_plugin_api::{CallContext, PluginError, ResolvedSubject, Subject, UserSubject};

use crate::email;
use crate::model::{AuthenticateRequest, AuthenticateResponse, Ctx, SubjectRequest};
use crate::password::{self, Verification};
use crate::store::{self, Op};

/// Answer of `role.permissions_of`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct PermissionsOf {
    permissions: Vec<String>,
    #[serde(default)]
    unknown: Vec<String>,
}

/// Answer of `license.licenses_of`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct LicensesOf {
    licenses: Vec<String>,
}

/// The union of the permissions of `roles` and the roles among them that
/// exist (`role.permissions_of`, one call).
fn role_permissions(
    ctx: &Ctx,
    roles: &BTreeSet<String>,
) -> Result<(BTreeSet<String>, BTreeSet<String>), PluginError> {
    if roles.is_empty() {
        return Ok((BTreeSet::new(), BTreeSet::new()));
    }
    let resp: PermissionsOf = ctx.host.call(
        "role",
        "permissions_of",
        &serde_json::json!({ "ids": roles }),
    )?;
    let unknown: BTreeSet<&String> = resp.unknown.iter().collect();
    let known = roles
        .iter()
        .filter(|r| !unknown.contains(r))
        .cloned()
        .collect();
    Ok((resp.permissions.into_iter().collect(), known))
}

/// `subject` (system only): resolves a user's subject for the host, or the
/// anonymous subject for `user_id: null`.
///
/// A user must exist (`not_found`) and be active (`unauthenticated`). Its
/// permissions are the direct grants ∪ the permissions of its roles; roles
/// (only those that exist), groups, licenses, email and the must-change-
/// password flag come along; `valid_until` is the end of an `enabled_until`
/// status. Anonymous callers hold the permissions of the settings'
/// `anonymous_roles`.
pub fn subject(
    ctx: &Ctx,
    req: SubjectRequest,
    _: &CallContext,
) -> Result<ResolvedSubject, PluginError> {
    let Some(user_id) = req.user_id else {
        return anonymous(ctx);
    };
    if !crate::admin::is_slug(&user_id) {
        return Err(store::not_found(&user_id));
    }
    let (_, record) = store::load_existing(&ctx.store(), &user_id)?;
    let now = ctx.now();
    if !record.status.is_active(now) {
        let why = if record.status.is_expired(now) {
            "account has expired"
        } else {
            "account is disabled"
        };
        return Err(PluginError::unauthenticated(why));
    }
    let (mut permissions, roles) = role_permissions(ctx, &record.roles)?;
    permissions.extend(record.permissions.iter().cloned());
    let licenses: LicensesOf = ctx.host.call(
        "license",
        "licenses_of",
        &serde_json::json!({ "user_id": user_id }),
    )?;
    Ok(ResolvedSubject {
        subject: Subject::User(UserSubject {
            id: record.id.clone(),
            email: record.email.clone(),
            name: record.profile.display_name(&record.email),
            permissions,
            roles,
            groups: record.groups.clone(),
            licenses: licenses.licenses.into_iter().collect(),
            session_id: None,
            must_change_password: record.require_password_change,
        }),
        valid_until: record.status.until(),
    })
}

/// The anonymous subject: the permissions of the `anonymous_roles` setting.
fn anonymous(ctx: &Ctx) -> Result<ResolvedSubject, PluginError> {
    let settings = ctx.settings()?;
    let roles: BTreeSet<String> = settings
        .get("anonymous_roles")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let (permissions, _) = role_permissions(ctx, &roles)?;
    Ok(ResolvedSubject {
        subject: Subject::Anonymous { permissions },
        valid_until: None,
    })
}

/// The one error every failed login gets, whatever the reason.
fn invalid_login() -> PluginError {
    PluginError::unauthenticated("invalid email or password")
}

/// Burns a verify's time, then fails like every other failed login.
fn fail_slowly(password: &str) -> PluginError {
    password::verify_dummy(password);
    invalid_login()
}

/// `authenticate` (system only; the session system calls it): checks an
/// address and password.
///
/// Unknown or malformed addresses, accounts without a password, wrong
/// passwords and inactive accounts all fail with the same `unauthenticated`
/// "invalid email or password", after the same amount of hashing work (no
/// account enumeration). On success `last_login_at` is set, and a hash made
/// with outdated parameters is replaced by a fresh one.
pub fn authenticate(
    ctx: &Ctx,
    req: AuthenticateRequest,
    _: &CallContext,
) -> Result<AuthenticateResponse, PluginError> {
    if req.password.len() > crate::admin::MAX_PASSWORD_BYTES {
        return Err(invalid_login());
    }
    let store = ctx.store();
    let Ok(address) = email::normalize(&req.email) else {
        return Err(fail_slowly(&req.password));
    };
    let Some(id) = store::id_by_email(&store, &address)? else {
        return Err(fail_slowly(&req.password));
    };
    let Some((_, record)) = store::load(&store, &id)? else {
        return Err(fail_slowly(&req.password));
    };
    let cred_key = store::cred_key(&id);
    let Some(phc_bytes) = store.get(&cred_key)? else {
        return Err(fail_slowly(&req.password));
    };
    let phc = String::from_utf8(phc_bytes.clone())
        .map_err(|_| PluginError::internal("stored password hash is not text"))?;
    let needs_rehash = match password::verify(&req.password, &phc)? {
        Verification::Mismatch => return Err(invalid_login()),
        Verification::Verified { needs_rehash } => needs_rehash,
    };
    let now = ctx.now();
    if !record.status.is_active(now) {
        return Err(invalid_login());
    }
    let fresh = if needs_rehash {
        Some(password::hash(&req.password)?)
    } else {
        None
    };
    let modified = store::modify_with(ctx, &id, false, |r, ops| {
        r.last_login_at = Some(now.max(r.last_login_at.unwrap_or(i64::MIN)));
        if let Some(fresh) = &fresh {
            // Only while the credential is still the one just verified (a
            // password change rewrites the record too, so this batch would
            // not apply after one).
            if store.get(&cred_key)?.as_deref() == Some(phc_bytes.as_slice()) {
                ops.push(Op::Put(cred_key.clone(), fresh.as_bytes().to_vec()));
            }
        }
        Ok(())
    });
    let record = match modified {
        Ok(m) => m.after,
        // Deleted between the check and now: the login fails like any other.
        Err(e) if e.is(syshost_plugin_api::codes::NOT_FOUND) => return Err(invalid_login()),
        Err(e) => return Err(e),
    };
    if !record.status.is_active(now) {
        return Err(invalid_login());
    }
    Ok(AuthenticateResponse {
        user_id: record.id,
        require_password_change: record.require_password_change,
    })
}
