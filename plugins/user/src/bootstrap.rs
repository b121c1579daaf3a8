//! The first administrator.
//!
//! There are no default credentials. When the host enables bootstrapping
//! (`syshost run` does) and the store holds no account yet, one account is
//! created that holds the built-in `admin` role (every permission of every
//! active system): with `SYSHOST_ADMIN_EMAIL` / `SYSHOST_ADMIN_PASSWORD`
//! when set, otherwise `admin@localhost` with a generated one-time password
//! that is logged exactly once and must be changed at the first login.

use serde::Deserialize;
use syshost_plugin_api::PluginError;

use crate::admin::{self, NewAccount};
use crate::model::Ctx;
use crate::{password, store};

/// The id of the role the first administrator holds.
pub const ADMIN_ROLE: &str = "admin";

/// The address used when none is configured.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct BootstrapAnswer {
    enabled: bool,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Creates the first administrator if the host asks for it and no account
/// exists. Returns the new administrator's email when one was created.
pub fn ensure_first_admin(ctx: &Ctx) -> Result<Option<String>, PluginError> {
    let answer: BootstrapAnswer = ctx
        .host
        .service("bootstrap_admin", &serde_json::json!({}))?;
    if !answer.enabled {
        return Ok(None);
    }
    let any = ctx
        .store()
        .range(store::USER_PREFIX.as_bytes(), Some(b"user0"), 1)?;
    if !any.is_empty() {
        return Ok(None);
    }
    let email = answer
        .email
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_string());
    let (secret, generated) = match answer.password {
        Some(p) if !p.is_empty() => (p, false),
        _ => (password::generate(), true),
    };
    let created = ctx
        .settings()
        .and_then(|settings| {
            admin::create_account(
                ctx,
                NewAccount {
                    email: email.clone(),
                    password: Some(secret.clone()),
                    verified: true,
                    issue_verify_code: false,
                    roles: vec![ADMIN_ROLE.to_string()],
                    ..Default::default()
                },
                &settings,
            )
        })
        .map_err(|e| {
            PluginError::new(
                e.code.clone(),
                format!(
                    "cannot create the first administrator {email}: {}",
                    e.message
                ),
            )
        })?;
    if generated {
        let id = created.user.id.clone();
        let modified = store::modify(ctx, &id, |r, _| {
            r.require_password_change = true;
            Ok(())
        })?;
        admin::publish_updated(ctx, &modified)?;
        // The one deliberate exception to "no secrets in logs": there is no
        // other channel for a generated first password. It is shown once and
        // must be changed at the first login.
        ctx.host.warn(format!(
            "created the first administrator {} with the one-time password {secret} (shown only now; it must be changed at the first login)",
            created.user.email
        ));
    } else {
        ctx.host.info(format!(
            "created the first administrator {} with the configured password",
            created.user.email
        ));
    }
    Ok(Some(created.user.email))
}
