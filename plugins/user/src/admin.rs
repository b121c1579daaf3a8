//! Administrative operations: the account lifecycle (create, get, list,
//! contact, status, verification, email, password, delete), role / group /
//! permission / license assignment, and export.
//!
//! Every handler validates its whole request before it writes anything, so
//! a rejected request changes nothing; every write goes through the atomic
//! helpers of [`crate::store`]; events are published after the write.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use syshost_plugin_api::{CallContext, PluginError};

use crate::codes::{self, CodeRecord};
use crate::email;
use crate::index;
use crate::model::{
    change, ChangeEmailRequest, ConsentEntry, CreateRequest, CreatedEvent, Ctx, DeleteRequest,
    DeleteResponse, DeletedEvent, Empty, ExportFormat, ExportRequest, ExportResponse, IdRequest,
    LicenseRequest, ListRequest, ListResponse, PasswordChangedEvent, RequirePasswordChangeRequest,
    SetGroupsRequest, SetPasswordRequest, SetPermissionsRequest, SetRolesRequest, SetStatusRequest,
    SetVerifiedRequest, StateName, Status, UpdateContactRequest, UpdatedEvent, User, UserRecord,
};
use crate::password::{self, PasswordPolicy};
use crate::profile::Profile;
use crate::store::{self, Inserted, Op, PURPOSE_RESET, PURPOSE_VERIFY};

/// Lifetime of the "set your password" code of an account created without
/// a password (24 h).
pub const SETUP_CODE_LIFETIME_MS: i64 = DEFAULT_VERIFY_HOURS * 60 * 60 * 1000;
/// Lifetime of an e-mail verification code (48 h).
pub const VERIFY_CODE_LIFETIME_MS: i64 = DEFAULT_VERIFY_HOURS * 60 * 60 * 1000;
/// Default lifetime of confirmation and first-password codes, in hours.
pub const DEFAULT_VERIFY_HOURS: i64 = 24;
/// Default lifetime of password-reset codes, in minutes.
pub const DEFAULT_RESET_MINUTES: i64 = 60;

/// How long mailed codes stay valid (settings `code_lifetimes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLifetimes {
    /// Confirmation and first-password codes, ms.
    pub verify_ms: i64,
    /// Password-reset codes, ms.
    pub reset_ms: i64,
}

impl CodeLifetimes {
    /// Whole hours of the confirmation lifetime (for mail text).
    pub fn verify_hours(&self) -> i64 {
        self.verify_ms / 3_600_000
    }

    /// Whole minutes of the reset lifetime (for mail text).
    pub fn reset_minutes(&self) -> i64 {
        self.reset_ms / 60_000
    }
}

/// The code lifetimes of the current `user` settings (defaults 24 h / 60 min).
pub fn code_lifetimes(ctx: &Ctx) -> Result<CodeLifetimes, PluginError> {
    Ok(code_lifetimes_in(&ctx.settings()?))
}

/// The code lifetimes of the `user` settings document `settings` (defaults
/// 24 h / 60 min).
pub fn code_lifetimes_in(settings: &serde_json::Value) -> CodeLifetimes {
    let section = settings.get("code_lifetimes");
    let get = |key: &str, default: i64| {
        section
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_i64())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    CodeLifetimes {
        verify_ms: get("verification_hours", DEFAULT_VERIFY_HOURS) * 3_600_000,
        reset_ms: get("reset_minutes", DEFAULT_RESET_MINUTES) * 60_000,
    }
}
/// Most ids a role, group or permission set may hold.
pub const MAX_SET_SIZE: usize = 1000;
/// Longest `search` text of `list`, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Longest password accepted as input at all (bytes), before any policy.
pub const MAX_PASSWORD_BYTES: usize = 16 * 1024;

// ---------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------

pub use syshost_plugin_api::validate::is_slug;

/// Checks that `id` (request field `field`) is a syntactically valid id.
pub fn check_id(field: &str, id: &str) -> Result<(), PluginError> {
    if is_slug(id) {
        Ok(())
    } else {
        Err(PluginError::invalid_field(
            field,
            format!(
                "{field} '{}' is not a valid id (lowercase letters, digits, '_' and '-', at most 64 characters)",
                store::shorten(id)
            ),
        ))
    }
}

/// Deduplicates and sorts a set of ids given in request field `field`.
pub(crate) fn id_set(field: &str, ids: Vec<String>) -> Result<BTreeSet<String>, PluginError> {
    let set: BTreeSet<String> = ids.into_iter().collect();
    if set.len() > MAX_SET_SIZE {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} may hold at most {MAX_SET_SIZE} ids"),
        ));
    }
    Ok(set)
}

/// Response of the `check` operations of role, group and permission.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct CheckResponse {
    unknown: Vec<String>,
}

/// Rejects the ids of `set` that `<system>.check` does not know, naming
/// them (`invalid_input`, details `{"field", "unknown": [..]}`).
pub(crate) fn check_refs(
    ctx: &Ctx,
    system: &str,
    field: &str,
    what: &str,
    set: &BTreeSet<String>,
) -> Result<(), PluginError> {
    if set.is_empty() {
        return Ok(());
    }
    let ids: Vec<&String> = set.iter().collect();
    let resp: CheckResponse = ctx
        .host
        .call(system, "check", &serde_json::json!({ "ids": ids }))?;
    if resp.unknown.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = resp
        .unknown
        .iter()
        .take(20)
        .map(|id| format!("'{}'", store::shorten(id)))
        .collect();
    let more = if resp.unknown.len() > 20 {
        format!(" and {} more", resp.unknown.len() - 20)
    } else {
        String::new()
    };
    Err(PluginError::invalid_field(
        field,
        format!("unknown {what} ids: {}{more}", listed.join(", ")),
    )
    .with_details(serde_json::json!({ "field": field, "unknown": resp.unknown })))
}

/// The ids of `set` that no longer name an object of `system` (via its
/// `check` operation).
fn unknown_refs(
    ctx: &Ctx,
    system: &str,
    set: &BTreeSet<String>,
) -> Result<Vec<String>, PluginError> {
    if set.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&String> = set.iter().collect();
    let resp: CheckResponse = ctx
        .host
        .call(system, "check", &serde_json::json!({ "ids": ids }))?;
    Ok(resp.unknown)
}

/// Closes the race between a reference check and the write it allowed.
///
/// A role (or group) deleted after [`check_refs`] passed, whose clean-up
/// (on `role.deleted`) scanned the membership index before our write
/// committed, would leave a grant of a role that no longer exists. So after
/// writing, the roles and groups the user holds are checked again and the
/// vanished ones removed: a deletion committed before this re-check is seen
/// here, and one committed after it runs its clean-up after our write is
/// visible in the index. Returns the record as it is now (`None`: the user
/// was deleted meanwhile).
pub fn drop_vanished_refs(
    ctx: &Ctx,
    record: &UserRecord,
) -> Result<Option<UserRecord>, PluginError> {
    let roles = unknown_refs(ctx, "role", &record.roles)?;
    let groups = unknown_refs(ctx, "group", &record.groups)?;
    if roles.is_empty() && groups.is_empty() {
        return Ok(Some(record.clone()));
    }
    let result = store::modify(ctx, &record.id, |r, _| {
        for role in &roles {
            r.roles.remove(role);
        }
        for group in &groups {
            r.groups.remove(group);
        }
        Ok(())
    });
    match result {
        Ok(modified) => {
            publish_updated(ctx, &modified)?;
            Ok(Some(modified.after))
        }
        Err(e) if e.is(syshost_plugin_api::codes::NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The password policy of the current `user` settings.
pub fn password_policy(ctx: &Ctx) -> Result<PasswordPolicy, PluginError> {
    Ok(password_policy_in(&ctx.settings()?))
}

/// The password policy of the `user` settings document `settings`.
pub fn password_policy_in(settings: &serde_json::Value) -> PasswordPolicy {
    PasswordPolicy::from_settings(
        settings
            .get("password_policy")
            .unwrap_or(&serde_json::Value::Null),
    )
}

/// Checks `password` against the size limit and then `policy` (for the
/// account `address`).
pub(crate) fn check_password(
    policy: &PasswordPolicy,
    password: &str,
    address: &str,
) -> Result<(), PluginError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PluginError::invalid_field(
            "password",
            "password is too long",
        ));
    }
    policy.check(password, address)
}

/// A new one-time code for `purpose`: the plain code (to mail) and its
/// stored record.
pub fn issue_code(
    ctx: &Ctx,
    user_id: &str,
    purpose: &str,
    lifetime_ms: i64,
) -> Result<(String, CodeRecord), PluginError> {
    let code = codes::new_code()?;
    let record = CodeRecord::new(
        ctx.code_key.as_slice(),
        purpose,
        user_id,
        &codes::normalize_code(&code),
        ctx.now(),
        lifetime_ms,
    );
    Ok((code, record))
}

/// The names of the visible fields that differ between two records, for
/// `user.updated`.
pub fn changes_between(before: &UserRecord, after: &UserRecord) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |changed: bool, name: &str| {
        if changed {
            out.push(name.to_string());
        }
    };
    note(before.profile != after.profile, change::PROFILE);
    note(before.status != after.status, change::STATUS);
    note(before.email != after.email, change::EMAIL);
    note(before.roles != after.roles, change::ROLES);
    note(before.groups != after.groups, change::GROUPS);
    note(before.permissions != after.permissions, change::PERMISSIONS);
    note(
        before.email_verified != after.email_verified,
        change::VERIFICATION,
    );
    note(
        before.require_password_change != after.require_password_change,
        change::PASSWORD_REQUIRED,
    );
    note(before.consents != after.consents, change::CONSENTS);
    note(before.avatar != after.avatar, change::AVATAR);
    out
}

/// Publishes `user.updated` for a written change that altered visible
/// fields (nothing when nothing visible changed).
pub fn publish_updated(ctx: &Ctx, modified: &store::Modified) -> Result<(), PluginError> {
    if !modified.written {
        return Ok(());
    }
    let changes = changes_between(&modified.before, &modified.after);
    if changes.is_empty() {
        return Ok(());
    }
    ctx.host.publish(
        "user.updated",
        &UpdatedEvent {
            user_id: modified.after.id.clone(),
            changes,
        },
    )
}

/// The public view of a record now.
fn view(ctx: &Ctx, record: &UserRecord) -> User {
    User::from_record(record, ctx.now())
}

// ---------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------

/// Everything needed to open an account (admin `create` and, later,
/// self-registration). Every field is validated by [`create_account`].
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// The address as given (normalized and validated here).
    pub email: String,
    /// The initial password (policy-checked); `None`: the account has no
    /// password, must set one, and gets a 24 h `reset` code to do so.
    pub password: Option<String>,
    /// Mark the address as confirmed.
    pub verified: bool,
    /// Issue a 48 h `verify` code (only when not `verified`).
    pub issue_verify_code: bool,
    /// Contact and profile data (validated here).
    pub profile: Profile,
    /// Role ids (checked with `role.check`).
    pub roles: Vec<String>,
    /// Group ids (checked with `group.check`).
    pub groups: Vec<String>,
    /// Permission ids (checked with `permission.check`).
    pub permissions: Vec<String>,
    /// Initial consent history.
    pub consents: BTreeMap<String, Vec<ConsentEntry>>,
}

/// The new account and the plain one-time codes created with it (never
/// serialized: only the user goes back to the caller; the codes are for the
/// mails).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CreatedUser {
    /// The new account.
    #[serde(flatten)]
    pub user: User,
    /// The plain `reset` code of an account created without a password.
    #[serde(skip)]
    pub setup_code: Option<String>,
    /// The plain `verify` code, when one was issued.
    #[serde(skip)]
    pub verify_code: Option<String>,
}

/// Validates and stores a new account atomically, then publishes
/// `user.created`. `settings` is the `user` settings document the caller
/// read (password policy, code lifetimes). A taken address (compared by
/// [`email::key`]) is `conflict` naming `email`; nothing is stored on any
/// error.
pub fn create_account(
    ctx: &Ctx,
    account: NewAccount,
    settings: &serde_json::Value,
) -> Result<CreatedUser, PluginError> {
    let address = email::normalize(&account.email)?;
    if let Some(pw) = &account.password {
        check_password(&password_policy_in(settings), pw, &address)?;
    }
    let profile = account.profile.validated()?;
    let roles = id_set("roles", account.roles)?;
    let groups = id_set("groups", account.groups)?;
    let permissions = id_set("permissions", account.permissions)?;
    // Cheap local rejection before the cross-plugin checks and the hash.
    if store::id_by_email(&ctx.store(), &address)?.is_some() {
        return Err(store::email_taken(&address));
    }
    check_refs(ctx, "role", "roles", "role", &roles)?;
    check_refs(ctx, "group", "groups", "group", &groups)?;
    check_refs(ctx, "permission", "permissions", "permission", &permissions)?;
    let credential = match &account.password {
        Some(pw) => Some(password::hash(pw)?),
        None => None,
    };
    let lifetimes = code_lifetimes_in(settings);

    for _ in 0..store::MAX_ATTEMPTS {
        let now = ctx.now();
        let id = codes::new_id(now)?;
        let record = UserRecord {
            id: id.clone(),
            email: address.clone(),
            status: Status::Enabled,
            email_verified: account.verified,
            require_password_change: credential.is_none(),
            created_at: now,
            updated_at: now,
            password_changed_at: credential.as_ref().map(|_| now),
            last_login_at: None,
            profile: profile.clone(),
            avatar: None,
            roles: roles.clone(),
            groups: groups.clone(),
            permissions: permissions.clone(),
            consents: account.consents.clone(),
            rev: 0,
        };
        let mut code_records = Vec::new();
        let mut setup_code = None;
        let mut verify_code = None;
        if credential.is_none() {
            let (code, rec) = issue_code(ctx, &id, PURPOSE_RESET, lifetimes.verify_ms)?;
            setup_code = Some(code);
            code_records.push((PURPOSE_RESET, rec));
        }
        if account.issue_verify_code && !account.verified {
            let (code, rec) = issue_code(ctx, &id, PURPOSE_VERIFY, lifetimes.verify_ms)?;
            verify_code = Some(code);
            code_records.push((PURPOSE_VERIFY, rec));
        }
        match store::insert(ctx, &record, credential.as_deref(), &code_records)? {
            Inserted::Committed => {
                ctx.host.publish(
                    "user.created",
                    &CreatedEvent {
                        user_id: id.clone(),
                    },
                )?;
                // Roles or groups deleted while the password was hashed.
                let record = drop_vanished_refs(ctx, &record)?.unwrap_or(record);
                return Ok(CreatedUser {
                    user: view(ctx, &record),
                    setup_code,
                    verify_code,
                });
            }
            Inserted::IdTaken => continue,
            Inserted::EmailTaken => return Err(store::email_taken(&address)),
        }
    }
    Err(PluginError::internal(
        "could not generate an unused user id",
    ))
}

/// `create` (permission `user.create`): opens an account.
pub fn create(ctx: &Ctx, req: CreateRequest, _: &CallContext) -> Result<CreatedUser, PluginError> {
    let notify = req.notify;
    let settings = ctx.settings()?;
    let created = create_account(
        ctx,
        NewAccount {
            email: req.email,
            password: req.password,
            verified: req.verified,
            issue_verify_code: notify,
            profile: req.profile.unwrap_or_default(),
            roles: req.roles.unwrap_or_default(),
            groups: req.groups.unwrap_or_default(),
            permissions: req.permissions.unwrap_or_default(),
            consents: BTreeMap::new(),
        },
        &settings,
    )?;
    let site = crate::mails::Site::from_host(&ctx.host)?;
    let lifetimes = code_lifetimes_in(&settings);
    if let Some(code) = &created.setup_code {
        // No password yet: the mail carries the code to choose one.
        ctx.host.send_mail(&crate::mails::account_created(
            &site,
            &created.user.email,
            Some(code),
            lifetimes.verify_hours(),
        ))?;
    } else if notify {
        ctx.host.send_mail(&crate::mails::account_created(
            &site,
            &created.user.email,
            None,
            lifetimes.verify_hours(),
        ))?;
        if let Some(code) = &created.verify_code {
            ctx.host.send_mail(&crate::mails::verify_email(
                &site,
                &created.user.email,
                code,
                lifetimes.verify_hours(),
            ))?;
        }
    }
    Ok(created)
}

// ---------------------------------------------------------------------------
// get / list
// ---------------------------------------------------------------------------

/// `get` (permission `user.read`): one user.
pub fn get(ctx: &Ctx, req: IdRequest, _: &CallContext) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    let (_, record) = store::load_existing(&ctx.store(), &req.id)?;
    Ok(view(ctx, &record))
}

/// `list` (permission `user.read`): users filtered by search text, status,
/// role and group, sorted and paged.
pub fn list(ctx: &Ctx, req: ListRequest, _: &CallContext) -> Result<ListResponse, PluginError> {
    if req.limit == 0 || req.limit > 500 {
        return Err(PluginError::invalid_field(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let search = match req.search.as_deref().map(str::trim) {
        Some(s) if s.chars().count() > MAX_SEARCH_CHARS => {
            return Err(PluginError::invalid_field(
                "search",
                format!("search must be at most {MAX_SEARCH_CHARS} characters"),
            ))
        }
        Some(s) if !s.is_empty() => Some(s.to_lowercase()),
        _ => None,
    };
    if let Some(role) = &req.role {
        check_id("role", role)?;
    }
    if let Some(group) = &req.group {
        check_id("group", group)?;
    }
    let query = index::Query {
        search: search.as_deref(),
        status: req.status,
        role: req.role.as_deref(),
        group: req.group.as_deref(),
        sort: req.sort.unwrap_or_default(),
        order: req.order.unwrap_or_default(),
        offset: usize::try_from(req.offset).unwrap_or(usize::MAX),
        limit: usize::try_from(req.limit).unwrap_or(500),
        now: ctx.now(),
    };
    let page = ctx.users.list(&ctx.host, &query)?;
    let store = ctx.store();
    let mut items = Vec::with_capacity(page.ids.len());
    for id in &page.ids {
        // A user deleted since the index answered is skipped.
        if let Some((_, record)) = store::load(&store, id)? {
            items.push(view(ctx, &record));
        }
    }
    Ok(ListResponse {
        items,
        total: page.total,
    })
}

// ---------------------------------------------------------------------------
// Single-field changes
// ---------------------------------------------------------------------------

/// `update_contact` (permission `user.update`): replaces the profile.
pub fn update_contact(
    ctx: &Ctx,
    req: UpdateContactRequest,
    _: &CallContext,
) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    let profile = req.profile.validated()?;
    let modified = store::modify(ctx, &req.id, |r, _| {
        r.profile.clone_from(&profile);
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(view(ctx, &modified.after))
}

/// `set_status` (permission `user.update`): enables, disables, or enables
/// until a future time.
pub fn set_status(ctx: &Ctx, req: SetStatusRequest, _: &CallContext) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    let field = if req.status.until_date.is_some() {
        "status.until_date"
    } else {
        "status.until"
    };
    let until = match (req.status.until, req.status.until_date.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(PluginError::invalid_field(
                "status.until_date",
                "give either status.until or status.until_date, not both",
            ))
        }
        (_, Some(date)) => Some(syshost_plugin_api::timefmt::parse_date(date).ok_or_else(
            || {
                PluginError::invalid_field(
                    "status.until_date",
                    format!(
                        "status.until_date '{}' is not a date YYYY-MM-DD",
                        store::shorten(date)
                    ),
                )
            },
        )?),
        (until, None) => until,
    };
    let status = match (req.status.state, until) {
        (StateName::Enabled, None) => Status::Enabled,
        (StateName::Disabled, None) => Status::Disabled,
        (StateName::EnabledUntil, Some(until)) => {
            if until <= ctx.now() {
                return Err(PluginError::invalid_field(
                    field,
                    format!("{field} must be in the future"),
                ));
            }
            Status::EnabledUntil { until }
        }
        (StateName::EnabledUntil, None) => {
            return Err(PluginError::invalid_field(
                "status.until",
                "status.until (or status.until_date) is required for the state 'enabled_until'",
            ))
        }
        (_, Some(_)) => {
            return Err(PluginError::invalid_field(
                field,
                format!("{field} is allowed only with the state 'enabled_until'"),
            ))
        }
    };
    let modified = store::modify(ctx, &req.id, |r, _| {
        r.status = status;
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(view(ctx, &modified.after))
}

/// `set_verified` (permission `user.update`): marks the address confirmed
/// or unconfirmed. Marking it confirmed drops an outstanding `verify` code.
pub fn set_verified(
    ctx: &Ctx,
    req: SetVerifiedRequest,
    _: &CallContext,
) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    let store = ctx.store();
    let modified = store::modify(ctx, &req.id, |r, ops| {
        r.email_verified = req.verified;
        let code = store::code_key(&r.id, PURPOSE_VERIFY);
        if req.verified && store.get(&code)?.is_some() {
            ops.push(Op::Delete(code));
        }
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(view(ctx, &modified.after))
}

/// The outcome of a change of address.
#[derive(Debug, Clone)]
pub struct EmailChange {
    /// The account after the change.
    pub user: User,
    /// The address before the change.
    pub old_email: String,
    /// Whether the address changed at all.
    pub changed: bool,
    /// The plain `verify` code issued for the new address (only with
    /// `notify`, and only when the mailbox changed, not just letter case).
    pub verify_code: Option<String>,
}

/// Changes the address of user `id` (see [`change_email`]); `issue_code`
/// issues a `verify` code for the new address.
pub fn change_email_inner(
    ctx: &Ctx,
    id: &str,
    new_email: &str,
    issue_verify_code: bool,
) -> Result<EmailChange, PluginError> {
    check_id("id", id)?;
    let address = email::normalize(new_email)?;
    let store = ctx.store();
    let lifetimes = code_lifetimes(ctx)?;
    let mut verify_code: Option<String> = None;
    let modified = store::modify(ctx, id, |r, ops| {
        verify_code = None;
        if r.email == address {
            return Ok(());
        }
        let same_mailbox = email::key(&r.email) == email::key(&address);
        r.email.clone_from(&address);
        if same_mailbox {
            return Ok(());
        }
        r.email_verified = false;
        for (key, _) in store.scan_prefix(store::code_prefix(&r.id))? {
            ops.push(Op::Delete(String::from_utf8_lossy(&key).into_owned()));
        }
        if issue_verify_code {
            let (code, rec) = issue_code(ctx, &r.id, PURPOSE_VERIFY, lifetimes.verify_ms)?;
            ops.push(Op::Put(
                store::code_key(&r.id, PURPOSE_VERIFY),
                serde_json::to_vec(&rec)?,
            ));
            verify_code = Some(code);
        }
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(EmailChange {
        user: view(ctx, &modified.after),
        changed: modified.before.email != modified.after.email,
        old_email: modified.before.email,
        verify_code,
    })
}

/// `change_email` (permission `user.update`): a new login address. It must
/// be unused (`conflict` naming `email`); the account becomes unverified and
/// every outstanding code is dropped. A change of letter case only keeps
/// verification and codes; the same address changes nothing.
pub fn change_email(
    ctx: &Ctx,
    req: ChangeEmailRequest,
    _: &CallContext,
) -> Result<User, PluginError> {
    let outcome = change_email_inner(ctx, &req.id, &req.email, req.notify)?;
    if req.notify && outcome.changed {
        // The old address hears about the change; the new one gets the
        // confirmation code (or the same notice for a change of case only).
        let site = crate::mails::Site::from_host(&ctx.host)?;
        let lifetimes = code_lifetimes(ctx)?;
        ctx.host.send_mail(&crate::mails::email_changed(
            &site,
            &outcome.old_email,
            &outcome.old_email,
            &outcome.user.email,
        ))?;
        let to_new = match &outcome.verify_code {
            Some(code) => crate::mails::verify_email(
                &site,
                &outcome.user.email,
                code,
                lifetimes.verify_hours(),
            ),
            None => crate::mails::email_changed(
                &site,
                &outcome.user.email,
                &outcome.old_email,
                &outcome.user.email,
            ),
        };
        ctx.host.send_mail(&to_new)?;
    }
    Ok(outcome.user)
}

/// `set_password` (permission `user.update`): sets a new password (policy
/// checked), clears `require_password_change` and drops an outstanding
/// `reset` code. Publishes `user.password_changed`.
pub fn set_password(
    ctx: &Ctx,
    req: SetPasswordRequest,
    _: &CallContext,
) -> Result<Empty, PluginError> {
    check_id("id", &req.id)?;
    let store = ctx.store();
    let (_, record) = store::load_existing(&store, &req.id)?;
    check_password(&password_policy(ctx)?, &req.password, &record.email)?;
    let phc = password::hash(&req.password)?;
    let modified = store::modify(ctx, &req.id, |r, ops| {
        r.password_changed_at = Some(ctx.now());
        r.require_password_change = false;
        ops.push(Op::Put(store::cred_key(&r.id), phc.as_bytes().to_vec()));
        let reset = store::code_key(&r.id, PURPOSE_RESET);
        if store.get(&reset)?.is_some() {
            ops.push(Op::Delete(reset));
        }
        Ok(())
    })?;
    ctx.host.publish(
        "user.password_changed",
        &PasswordChangedEvent {
            user_id: req.id.clone(),
            session_id: None,
        },
    )?;
    publish_updated(ctx, &modified)?;
    Ok(Empty {})
}

/// `require_password_change` (permission `user.update`): sets or clears the
/// flag that forces a new password at the next login.
pub fn require_password_change(
    ctx: &Ctx,
    req: RequirePasswordChangeRequest,
    _: &CallContext,
) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    let modified = store::modify(ctx, &req.id, |r, _| {
        r.require_password_change = req.required;
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(view(ctx, &modified.after))
}

/// `delete` (permission `user.delete`): removes every key of the user in
/// one batch and publishes `user.deleted` (the license system frees the
/// user's seats on it).
pub fn delete(
    ctx: &Ctx,
    req: DeleteRequest,
    _: &CallContext,
) -> Result<DeleteResponse, PluginError> {
    check_id("id", &req.id)?;
    let record = store::delete_user(ctx, &req.id)?;
    ctx.host.publish(
        "user.deleted",
        &DeletedEvent {
            id: record.id.clone(),
            user_id: record.id,
        },
    )?;
    Ok(DeleteResponse { deleted: true })
}

// ---------------------------------------------------------------------------
// Assignments
// ---------------------------------------------------------------------------

/// Replaces one assignment set of user `id` (`system` is the owning system
/// whose `check` validates the ids; `field` names the request field).
fn replace_set(
    ctx: &Ctx,
    id: &str,
    system: &str,
    field: &str,
    ids: Vec<String>,
    set_of: fn(&mut UserRecord) -> &mut BTreeSet<String>,
) -> Result<User, PluginError> {
    check_id("id", id)?;
    let set = id_set(field, ids)?;
    store::load_existing(&ctx.store(), id)?;
    check_refs(ctx, system, field, system, &set)?;
    let modified = store::modify(ctx, id, |r, _| {
        set_of(r).clone_from(&set);
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    let after = if system == "permission" {
        // Permissions are declared in manifests: they never vanish at run time.
        modified.after
    } else {
        drop_vanished_refs(ctx, &modified.after)?.unwrap_or(modified.after)
    };
    Ok(view(ctx, &after))
}

/// `set_roles` (permission `user.assign`): replaces the user's roles.
pub fn set_roles(ctx: &Ctx, req: SetRolesRequest, _: &CallContext) -> Result<User, PluginError> {
    replace_set(ctx, &req.id, "role", "roles", req.roles, |r| &mut r.roles)
}

/// `set_groups` (permission `user.assign`): replaces the user's groups.
pub fn set_groups(ctx: &Ctx, req: SetGroupsRequest, _: &CallContext) -> Result<User, PluginError> {
    replace_set(ctx, &req.id, "group", "groups", req.groups, |r| {
        &mut r.groups
    })
}

/// `set_permissions` (permission `user.assign`): replaces the user's
/// directly granted permissions.
pub fn set_permissions(
    ctx: &Ctx,
    req: SetPermissionsRequest,
    _: &CallContext,
) -> Result<User, PluginError> {
    replace_set(
        ctx,
        &req.id,
        "permission",
        "permissions",
        req.permissions,
        |r| &mut r.permissions,
    )
}

/// `assign_license` (permission `user.assign`): gives the user a seat of a
/// user license; answers with `license.assign`'s result
/// (`{"assigned", "used", "max_users"}`).
pub fn assign_license(
    ctx: &Ctx,
    req: LicenseRequest,
    _: &CallContext,
) -> Result<serde_json::Value, PluginError> {
    check_id("id", &req.id)?;
    check_id("license_id", &req.license_id)?;
    store::load_existing(&ctx.store(), &req.id)?;
    ctx.host.call(
        "license",
        "assign",
        &serde_json::json!({ "license_id": req.license_id, "user_id": req.id }),
    )
}

/// `revoke_license` (permission `user.assign`): frees the user's seat of a
/// user license; answers with `license.revoke`'s result (`{"revoked"}`).
pub fn revoke_license(
    ctx: &Ctx,
    req: LicenseRequest,
    _: &CallContext,
) -> Result<serde_json::Value, PluginError> {
    check_id("id", &req.id)?;
    check_id("license_id", &req.license_id)?;
    store::load_existing(&ctx.store(), &req.id)?;
    ctx.host.call(
        "license",
        "revoke",
        &serde_json::json!({ "license_id": req.license_id, "user_id": req.id }),
    )
}

// ---------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------

/// One CSV cell: a value starting with `=`, `+`, `-`, `@`, tab or carriage
/// return gets a leading `'` (spreadsheets would run it as a formula); a
/// value holding `,`, `"`, CR or LF is quoted with `"` doubled (RFC 4180).
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn csv_row(out: &mut String, cells: &[String]) {
    let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

fn join_set(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// The consent option ids of the `user` settings, in their order.
fn consent_option_ids(ctx: &Ctx) -> Result<Vec<String>, PluginError> {
    let settings = ctx.settings()?;
    Ok(settings
        .get("consent_options")
        .and_then(|v| v.as_array())
        .map(|options| {
            options
                .iter()
                .filter_map(|o| o.get("id").and_then(|id| id.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Renders users as CSV (header row, CRLF line ends).
pub fn to_csv(users: &[User], consent_ids: &[String]) -> String {
    let mut out = String::new();
    let mut header: Vec<String> = [
        "id",
        "email",
        "status",
        "active",
        "email_verified",
        "require_password_change",
        "created_at",
        "last_login_at",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(
        Profile::default()
            .fields()
            .iter()
            .map(|(name, _)| name.to_string()),
    );
    header.extend(["roles", "groups", "permissions"].map(String::from));
    header.extend(consent_ids.iter().map(|id| format!("consent:{id}")));
    csv_row(&mut out, &header);
    for u in users {
        let status = match u.status {
            Status::EnabledUntil { until } => format!("enabled_until:{until}"),
            other => other.state().to_string(),
        };
        let mut row = vec![
            u.id.clone(),
            u.email.clone(),
            status,
            u.active.to_string(),
            u.email_verified.to_string(),
            u.require_password_change.to_string(),
            u.created_at.to_string(),
            u.last_login_at.map(|t| t.to_string()).unwrap_or_default(),
        ];
        row.extend(
            u.profile
                .fields()
                .iter()
                .map(|(_, v)| v.unwrap_or_default().to_string()),
        );
        row.push(join_set(&u.roles));
        row.push(join_set(&u.groups));
        row.push(join_set(&u.permissions));
        for id in consent_ids {
            let latest = u
                .consents
                .get(id)
                .and_then(|h| crate::model::latest_consent(h))
                .map(|e| e.action.as_str())
                .unwrap_or("");
            row.push(latest.to_string());
        }
        csv_row(&mut out, &row);
    }
    out
}

/// `export` (permission `user.export`): the given users (or all), sorted by
/// address, as a JSON array of users or as CSV. Unknown ids are `not_found`
/// naming them.
pub fn export(
    ctx: &Ctx,
    req: ExportRequest,
    _: &CallContext,
) -> Result<ExportResponse, PluginError> {
    let store = ctx.store();
    let mut records = Vec::new();
    match req.ids {
        Some(ids) => {
            let ids: BTreeSet<String> = ids.into_iter().collect();
            let mut unknown = Vec::new();
            for id in &ids {
                check_id("ids", id)?;
                match store::load(&store, id)? {
                    Some((_, record)) => records.push(record),
                    None => unknown.push(id.clone()),
                }
            }
            if !unknown.is_empty() {
                let listed: Vec<String> = unknown.iter().map(|id| format!("'{id}'")).collect();
                return Err(PluginError::not_found(format!(
                    "unknown user ids: {}",
                    listed.join(", ")
                ))
                .with_details(serde_json::json!({ "field": "ids", "unknown": unknown })));
            }
        }
        None => records = store::all_records(&store)?,
    }
    records.sort_by_cached_key(|r| (email::key(&r.email), r.id.clone()));
    let users: Vec<User> = records.iter().map(|r| view(ctx, r)).collect();
    let content = match req.format {
        ExportFormat::Json => serde_json::to_string(&users)?,
        ExportFormat::Csv => to_csv(&users, &consent_option_ids(ctx)?),
    };
    Ok(ExportResponse {
        format: req.format,
        content,
        count: users.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_slug("a"));
        assert!(is_slug("0123456789abcdef0123456789abcdef"));
        assert!(is_slug("a_b-c"));
        assert!(!is_slug(""));
        assert!(!is_slug("-a"));
        assert!(!is_slug("A"));
        assert!(!is_slug("a/b"));
        assert!(!is_slug(&"a".repeat(65)));
    }

    #[test]
    fn csv_cells_are_quoted_and_formula_safe() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("+49 30"), "'+49 30");
        assert_eq!(csv_cell("-x"), "'-x");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            csv_cell("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_cell(""), "");
    }
}
