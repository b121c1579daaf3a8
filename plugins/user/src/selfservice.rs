//! Self-service: registration and email confirmation, password reset and
//! change, own profile, consents, and data export.
//!
//! Enumeration safety: `register`, `resend_verification` and
//! `request_password_reset` answer exactly the same whether or not the
//! address has an account (and do comparable hashing work), and codes fail
//! with one message whatever the reason. The owner of an address that
//! someone tries to register again gets a mail instead.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use syshost_plugin_api::{CallContext, NoInput, PluginError, Subject};

use crate::admin::{self, code_lifetimes, issue_code, publish_updated, NewAccount};
use crate::codes::{self, CodeCheck, CodeRecord};
use crate::mails::{self, Site};
use crate::model::{ConsentAction, ConsentEntry, Ctx, PasswordChangedEvent, User, UserRecord};
use crate::password::{self, Verification};
use crate::profile::Profile;
use crate::store::{self, Modified, Op, PURPOSE_RESET, PURPOSE_VERIFY};
use crate::{email, model};

/// The one message every failed code check gives.
const BAD_CODE: &str = "the code is invalid or has expired; request a new one";

/// Request of `register`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Login email.
    pub email: String,
    /// Password (checked against the password policy).
    pub password: String,
    /// Profile fields (checked against the registration field rules).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Consent option ids the user accepts (every required one must be here).
    #[serde(default)]
    pub consents: Vec<String>,
}

/// The answer of `register`, `resend_verification` and
/// `request_password_reset`: the same whether or not the address has an
/// account.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Accepted {
    /// `"verification_sent"` or `"reset_sent"`.
    pub status: &'static str,
    /// A sentence for the user.
    pub message: String,
}

/// Request of `confirm_email`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEmailRequest {
    /// The address the code was sent to.
    pub email: String,
    /// The code from the mail (spaces and dashes ignored, any case).
    pub code: String,
}

/// Request of `resend_verification` and `request_password_reset`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// The address.
    pub email: String,
}

/// Request of `reset_password`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The address the code was sent to.
    pub email: String,
    /// The code from the mail.
    pub code: String,
    /// The new password.
    pub new_password: String,
}

/// Request of `change_my_password`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeMyPasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password (must differ and pass the policy).
    pub new_password: String,
}

/// Request of `update_my_contact`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMyContactRequest {
    /// The new profile (replaces the old one).
    pub profile: Profile,
}

/// Request of `set_my_consent`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMyConsentRequest {
    /// A consent option id from the user settings.
    pub option_id: String,
    /// `true` accepts, `false` revokes (required options cannot be revoked).
    pub accept: bool,
}

/// Answer of `confirm_email` and `reset_password`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// Answer of `me`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Me {
    /// The account.
    pub user: User,
    /// Effective permissions (direct grants and role permissions).
    pub effective_permissions: BTreeSet<String>,
    /// Licenses assigned to the account.
    pub licenses: BTreeSet<String>,
}

/// Answer of `export_my_data`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MyData {
    /// When the export was made.
    pub exported_at: i64,
    /// The account with profile, roles, groups, permissions and consents.
    pub user: User,
    /// Effective permissions.
    pub effective_permissions: BTreeSet<String>,
    /// Licenses assigned to the account.
    pub licenses: BTreeSet<String>,
    /// The avatar, base64-free: type and size only (download it separately).
    pub avatar: Option<model::AvatarInfo>,
}

/// The calling user's id, or `unauthenticated`.
fn my_id(caller: &CallContext) -> Result<String, PluginError> {
    match &caller.subject {
        Subject::User(u) => Ok(u.id.clone()),
        _ => Err(PluginError::unauthenticated("log in first")),
    }
}

fn setting_bool(settings: &serde_json::Value, key: &str, default: bool) -> bool {
    settings
        .get(key)
        .and_then(|v| v.as_bool())
        .unwrap_or(default)
}

fn setting_strings(settings: &serde_json::Value, key: &str) -> Vec<String> {
    settings
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A consent option from the settings.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
struct ConsentOption {
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    required: bool,
}

fn consent_options(settings: &serde_json::Value) -> Vec<ConsentOption> {
    settings
        .get("consent_options")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn send(ctx: &Ctx, mail: &syshost_plugin_api::Mail) -> Result<(), PluginError> {
    ctx.host.send_mail(mail)
}

/// `register` (public, when `self_registration` is on).
pub fn register(
    ctx: &Ctx,
    req: RegisterRequest,
    call: &CallContext,
) -> Result<Accepted, PluginError> {
    in_uniform_time(|| register_now(ctx, req, call))
}

fn register_now(ctx: &Ctx, req: RegisterRequest, _: &CallContext) -> Result<Accepted, PluginError> {
    let settings = ctx.settings()?;
    if !setting_bool(&settings, "self_registration", false) {
        return Err(PluginError::new(
            syshost_plugin_api::codes::PERMISSION_DENIED,
            "self-registration is disabled",
        ));
    }
    // Every check on the input itself comes first and answers the same for
    // taken and free addresses.
    let address = email::normalize(&req.email)?;
    let allowed = setting_strings(&settings, "allowed_domains");
    if !email::domain_allowed(&address, &allowed) {
        return Err(PluginError::invalid_field(
            "email",
            format!(
                "registration is open only to addresses at {}",
                allowed.join(", ")
            ),
        ));
    }
    admin::check_password(
        &admin::password_policy_in(&settings),
        &req.password,
        &address,
    )?;
    let profile = req.profile.unwrap_or_default().validated()?;
    if let Some(rules) = settings.get("registration_fields") {
        profile.check_registration_rules(rules)?;
    }
    let options = consent_options(&settings);
    let accepted: BTreeSet<String> = req.consents.into_iter().collect();
    if let Some(unknown) = accepted
        .iter()
        .find(|id| !options.iter().any(|o| &o.id == *id))
    {
        return Err(PluginError::invalid_field(
            "consents",
            format!("unknown consent option '{unknown}'"),
        ));
    }
    if let Some(missing) = options
        .iter()
        .find(|o| o.required && !accepted.contains(&o.id))
    {
        return Err(PluginError::invalid_field(
            "consents",
            format!("consent '{}' is required to register", missing.id),
        ));
    }
    let now = ctx.now();
    let consents: BTreeMap<String, Vec<ConsentEntry>> = options
        .iter()
        .filter(|o| accepted.contains(&o.id))
        .map(|o| {
            (
                o.id.clone(),
                vec![ConsentEntry {
                    action: ConsentAction::Accepted,
                    at: now,
                    version: o.version.clone(),
                }],
            )
        })
        .collect();
    let site = Site::from_host(&ctx.host)?;
    let answer = Accepted {
        status: "verification_sent",
        message: format!("If {address} can be registered, a confirmation code is on its way."),
    };
    if store::id_by_email(&ctx.store(), &address)?.is_some() {
        // Same work as a real registration, then tell the owner.
        let _ = password::hash(&req.password)?;
        send(ctx, &mails::registration_attempt(&site, &address))?;
        return Ok(answer);
    }
    let created = admin::create_account(
        ctx,
        NewAccount {
            email: address.clone(),
            password: Some(req.password),
            verified: false,
            issue_verify_code: true,
            profile,
            roles: setting_strings(&settings, "default_roles"),
            groups: setting_strings(&settings, "default_groups"),
            permissions: Vec::new(),
            consents,
        },
        &settings,
    );
    match created {
        Ok(created) => {
            if let Some(code) = &created.verify_code {
                send(
                    ctx,
                    &mails::verify_email(
                        &site,
                        &created.user.email,
                        code,
                        admin::code_lifetimes_in(&settings).verify_hours(),
                    ),
                )?;
            }
            Ok(answer)
        }
        // Lost a race against another registration of the same address.
        Err(e) if e.is(syshost_plugin_api::codes::CONFLICT) => {
            send(ctx, &mails::registration_attempt(&site, &address))?;
            Ok(answer)
        }
        Err(e) => Err(e),
    }
}

/// What a code check found (kept outside the retried closure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Valid,
    Rejected,
}

/// Checks `input` against user `id`'s code for `purpose` and, when valid,
/// applies `apply` and consumes the code in the same atomic batch. A wrong
/// guess is persisted (one attempt fewer); an expired or exhausted code is
/// removed. Every failure is the same `invalid_input`.
fn use_code<F>(
    ctx: &Ctx,
    id: &str,
    purpose: &str,
    input: &str,
    mut apply: F,
) -> Result<Modified, PluginError>
where
    F: FnMut(&mut UserRecord, &mut Vec<Op>) -> Result<(), PluginError>,
{
    let store = ctx.store();
    let key = store::code_key(id, purpose);
    let normalized = codes::normalize_code(input);
    let mut outcome = Outcome::Rejected;
    let modified = store::modify_with(ctx, id, true, |r, ops| {
        outcome = Outcome::Rejected;
        let Some(bytes) = store.get(&key)? else {
            return Ok(());
        };
        let Ok(mut record) = serde_json::from_slice::<CodeRecord>(&bytes) else {
            ops.push(Op::Delete(key.clone()));
            return Ok(());
        };
        match record.check(ctx.code_key.as_slice(), purpose, id, &normalized, ctx.now()) {
            CodeCheck::Valid => {
                ops.push(Op::Expect(key.clone(), bytes));
                ops.push(Op::Delete(key.clone()));
                apply(r, ops)?;
                outcome = Outcome::Valid;
            }
            CodeCheck::Invalid { .. } => {
                ops.push(Op::Put(key.clone(), serde_json::to_vec(&record)?));
            }
            CodeCheck::Expired | CodeCheck::Exhausted => ops.push(Op::Delete(key.clone())),
        }
        Ok(())
    })?;
    match outcome {
        Outcome::Valid => Ok(modified),
        Outcome::Rejected => Err(PluginError::invalid_field("code", BAD_CODE)),
    }
}

/// The id of the account with `address`, or the uniform code error.
fn account_for_code(ctx: &Ctx, address: &str) -> Result<String, PluginError> {
    let address =
        email::normalize(address).map_err(|_| PluginError::invalid_field("code", BAD_CODE))?;
    store::id_by_email(&ctx.store(), &address)?
        .ok_or_else(|| PluginError::invalid_field("code", BAD_CODE))
}

/// `confirm_email` (public): confirms the address with the mailed code.
pub fn confirm_email(
    ctx: &Ctx,
    req: ConfirmEmailRequest,
    _: &CallContext,
) -> Result<Done, PluginError> {
    let id = account_for_code(ctx, &req.email)?;
    let modified = use_code(ctx, &id, PURPOSE_VERIFY, &req.code, |r, _| {
        r.email_verified = true;
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(Done { ok: true })
}

/// The least time `register`, `resend_verification` and
/// `request_password_reset` take (ms). Their work differs between known and
/// unknown addresses (a new account and its indexes versus a mail to the
/// owner; a code and a mail versus nothing) by a few ms; answering no sooner
/// than this hides the difference, so timing does not reveal who has an
/// account. It covers the password hashing `register` does for both.
pub const UNIFORM_ANSWER_MS: u64 = 100;

/// Runs `work`, then waits until [`UNIFORM_ANSWER_MS`] have passed since it
/// started, whatever the outcome.
fn in_uniform_time<T>(work: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = work();
    let floor = std::time::Duration::from_millis(UNIFORM_ANSWER_MS);
    if let Some(rest) = floor.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    out
}

/// `resend_verification` (public): a fresh code for an unconfirmed address.
pub fn resend_verification(
    ctx: &Ctx,
    req: EmailRequest,
    call: &CallContext,
) -> Result<Accepted, PluginError> {
    in_uniform_time(|| resend_verification_now(ctx, req, call))
}

fn resend_verification_now(
    ctx: &Ctx,
    req: EmailRequest,
    _: &CallContext,
) -> Result<Accepted, PluginError> {
    let address = email::normalize(&req.email)?;
    let answer = Accepted {
        status: "verification_sent",
        message: format!("If {address} waits for confirmation, a new code is on its way."),
    };
    let Some(id) = store::id_by_email(&ctx.store(), &address)? else {
        return Ok(answer);
    };
    let lifetimes = code_lifetimes(ctx)?;
    let (modified, code) =
        reissue_code(ctx, &id, PURPOSE_VERIFY, lifetimes.verify_ms, |r, now| {
            !r.email_verified && r.status.is_active(now)
        })?;
    if let Some(code) = code {
        let site = Site::from_host(&ctx.host)?;
        send(
            ctx,
            &mails::verify_email(
                &site,
                &modified.after.email,
                &code,
                lifetimes.verify_hours(),
            ),
        )?;
    }
    Ok(answer)
}

/// Issues a new `purpose` code for user `id` (replacing the old one) when
/// `eligible` holds for the account now; returns the write and the plain
/// code to mail (`None` when the account is not eligible).
fn reissue_code(
    ctx: &Ctx,
    id: &str,
    purpose: &str,
    lifetime_ms: i64,
    eligible: fn(&UserRecord, i64) -> bool,
) -> Result<(Modified, Option<String>), PluginError> {
    let mut code = None;
    let modified = store::modify_with(ctx, id, false, |r, ops| {
        code = None;
        if !eligible(r, ctx.now()) {
            return Ok(());
        }
        let (plain, record) = issue_code(ctx, &r.id, purpose, lifetime_ms)?;
        ops.push(Op::Put(
            store::code_key(&r.id, purpose),
            serde_json::to_vec(&record)?,
        ));
        code = Some(plain);
        Ok(())
    })?;
    Ok((modified, code))
}

/// `request_password_reset` (public, when `self_password_reset` is on).
pub fn request_password_reset(
    ctx: &Ctx,
    req: EmailRequest,
    call: &CallContext,
) -> Result<Accepted, PluginError> {
    in_uniform_time(|| request_password_reset_now(ctx, req, call))
}

fn request_password_reset_now(
    ctx: &Ctx,
    req: EmailRequest,
    _: &CallContext,
) -> Result<Accepted, PluginError> {
    let settings = ctx.settings()?;
    if !setting_bool(&settings, "self_password_reset", true) {
        return Err(PluginError::new(
            syshost_plugin_api::codes::PERMISSION_DENIED,
            "password reset by mail is disabled; ask an administrator",
        ));
    }
    let address = email::normalize(&req.email)?;
    let answer = Accepted {
        status: "reset_sent",
        message: format!("If {address} has an account, a reset code is on its way."),
    };
    let Some(id) = store::id_by_email(&ctx.store(), &address)? else {
        return Ok(answer);
    };
    let lifetimes = code_lifetimes(ctx)?;
    let (modified, code) = reissue_code(ctx, &id, PURPOSE_RESET, lifetimes.reset_ms, |r, now| {
        r.status.is_active(now)
    })?;
    if let Some(code) = code {
        let site = Site::from_host(&ctx.host)?;
        send(
            ctx,
            &mails::password_reset(
                &site,
                &modified.after.email,
                &code,
                lifetimes.reset_minutes(),
            ),
        )?;
    }
    Ok(answer)
}

/// `reset_password` (public): sets a new password with a mailed code (also
/// confirms the address, which the code proves).
pub fn reset_password(
    ctx: &Ctx,
    req: ResetPasswordRequest,
    _: &CallContext,
) -> Result<Done, PluginError> {
    let id = account_for_code(ctx, &req.email)?;
    let (_, record) = store::load_existing(&ctx.store(), &id)?;
    if req.new_password.len() > admin::MAX_PASSWORD_BYTES {
        return Err(PluginError::invalid_field(
            "new_password",
            "password is too long",
        ));
    }
    admin::password_policy(ctx)?
        .check(&req.new_password, &record.email)
        .map_err(rename_password_field)?;
    let phc = password::hash(&req.new_password)?;
    let modified = use_code(ctx, &id, PURPOSE_RESET, &req.code, |r, ops| {
        r.password_changed_at = Some(ctx.now());
        r.require_password_change = false;
        r.email_verified = true;
        ops.push(Op::Put(store::cred_key(&r.id), phc.as_bytes().to_vec()));
        Ok(())
    })?;
    ctx.host.publish(
        "user.password_changed",
        &PasswordChangedEvent {
            user_id: id.clone(),
            session_id: None,
        },
    )?;
    publish_updated(ctx, &modified)?;
    Ok(Done { ok: true })
}

fn rename_password_field(e: PluginError) -> PluginError {
    if e.details
        .as_ref()
        .and_then(|d| d.get("field"))
        .and_then(|f| f.as_str())
        == Some("password")
    {
        PluginError::invalid_field("new_password", e.message)
    } else {
        e
    }
}

/// `me` (authenticated): the caller's account, effective permissions and licenses.
pub fn me(ctx: &Ctx, _: NoInput, caller: &CallContext) -> Result<Me, PluginError> {
    let id = my_id(caller)?;
    let (_, record) = store::load_existing(&ctx.store(), &id)?;
    let (effective_permissions, licenses) = match &caller.subject {
        Subject::User(u) => (u.permissions.clone(), u.licenses.clone()),
        _ => Default::default(),
    };
    Ok(Me {
        user: User::from_record(&record, ctx.now()),
        effective_permissions,
        licenses,
    })
}

/// `update_my_contact` (authenticated): replaces the caller's profile.
pub fn update_my_contact(
    ctx: &Ctx,
    req: UpdateMyContactRequest,
    caller: &CallContext,
) -> Result<User, PluginError> {
    let id = my_id(caller)?;
    let profile = req.profile.validated()?;
    let modified = store::modify(ctx, &id, |r, _| {
        r.profile = profile.clone();
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(User::from_record(&modified.after, ctx.now()))
}

/// `change_my_password` (authenticated): needs the current password; the
/// new one must differ and pass the policy. Clears a forced change.
pub fn change_my_password(
    ctx: &Ctx,
    req: ChangeMyPasswordRequest,
    caller: &CallContext,
) -> Result<Done, PluginError> {
    let id = my_id(caller)?;
    let store = ctx.store();
    let (_, record) = store::load_existing(&store, &id)?;
    if req.current_password.len() > admin::MAX_PASSWORD_BYTES
        || req.new_password.len() > admin::MAX_PASSWORD_BYTES
    {
        return Err(PluginError::invalid_field(
            "new_password",
            "password is too long",
        ));
    }
    let cred = store.get(store::cred_key(&id))?;
    let current_ok = match cred {
        Some(bytes) => {
            let phc = String::from_utf8(bytes)
                .map_err(|_| PluginError::internal("stored password hash is not text"))?;
            matches!(
                password::verify(&req.current_password, &phc)?,
                Verification::Verified { .. }
            )
        }
        None => {
            password::verify_dummy(&req.current_password);
            false
        }
    };
    if !current_ok {
        return Err(PluginError::invalid_field(
            "current_password",
            "the current password is not correct",
        ));
    }
    if req.new_password == req.current_password {
        return Err(PluginError::invalid_field(
            "new_password",
            "the new password must differ from the current one",
        ));
    }
    admin::password_policy(ctx)?
        .check(&req.new_password, &record.email)
        .map_err(rename_password_field)?;
    let phc = password::hash(&req.new_password)?;
    let modified = store::modify(ctx, &id, |r, ops| {
        r.password_changed_at = Some(ctx.now());
        r.require_password_change = false;
        ops.push(Op::Put(store::cred_key(&r.id), phc.as_bytes().to_vec()));
        Ok(())
    })?;
    ctx.host.publish(
        "user.password_changed",
        &PasswordChangedEvent {
            user_id: id.clone(),
            session_id: match &caller.subject {
                Subject::User(u) => u.session_id.clone(),
                _ => None,
            },
        },
    )?;
    publish_updated(ctx, &modified)?;
    Ok(Done { ok: true })
}

/// `set_my_consent` (authenticated): accepts or revokes a consent option;
/// the history keeps every action with its time and text version.
pub fn set_my_consent(
    ctx: &Ctx,
    req: SetMyConsentRequest,
    caller: &CallContext,
) -> Result<User, PluginError> {
    let id = my_id(caller)?;
    let settings = ctx.settings()?;
    let option = consent_options(&settings)
        .into_iter()
        .find(|o| o.id == req.option_id)
        .ok_or_else(|| {
            PluginError::invalid_field(
                "option_id",
                format!("unknown consent option '{}'", req.option_id),
            )
        })?;
    if option.required && !req.accept {
        return Err(PluginError::invalid_field(
            "accept",
            format!(
                "consent '{}' is required and cannot be revoked; delete the account instead",
                option.id
            ),
        ));
    }
    let action = if req.accept {
        ConsentAction::Accepted
    } else {
        ConsentAction::Revoked
    };
    let modified = store::modify(ctx, &id, |r, _| {
        let history = r.consents.entry(option.id.clone()).or_default();
        let same = model::latest_consent(history)
            .is_some_and(|l| l.action == action && l.version == option.version);
        if !same {
            history.push(ConsentEntry {
                action,
                at: ctx.now(),
                version: option.version.clone(),
            });
        }
        Ok(())
    })?;
    publish_updated(ctx, &modified)?;
    Ok(User::from_record(&modified.after, ctx.now()))
}

/// `export_my_data` (authenticated): everything stored about the caller.
pub fn export_my_data(ctx: &Ctx, _: NoInput, caller: &CallContext) -> Result<MyData, PluginError> {
    let me = me(ctx, NoInput {}, caller)?;
    Ok(MyData {
        exported_at: ctx.now(),
        avatar: me.user.avatar.clone(),
        user: me.user,
        effective_permissions: me.effective_permissions,
        licenses: me.licenses,
    })
}
