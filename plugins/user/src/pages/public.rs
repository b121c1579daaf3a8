//! Public pages: register, confirm email, forgot password, reset password.
//! Each answers a form calling the matching public operation; mails link to
//! `/ui/confirm-email` and `/ui/reset-password` with the address and code.

use syshost_plugin_api::view::{
    Area, Block, Choice, Field, FieldKind, Form, Layout, Link, PageDecl, PageRequest, Tone, View,
};
use syshost_plugin_api::{Access, CallContext, Manifest, Operations, PluginError};

use super::{language_choices, password_rules, PROFILE_FIELDS};
use crate::UserSystem;

/// Adds the public page declarations.
pub fn declare(m: Manifest) -> Manifest {
    m.page(PageDecl::new("register", "Register", "page_register").area(Area::Public))
        .page(
            PageDecl::new(
                "confirm-email",
                "Confirm your email address",
                "page_confirm_email",
            )
            .area(Area::Public),
        )
        .page(
            PageDecl::new("forgot-password", "Forgot password", "page_forgot_password")
                .area(Area::Public),
        )
        .page(
            PageDecl::new(
                "reset-password",
                "Set a new password",
                "page_reset_password",
            )
            .area(Area::Public),
        )
}

/// Adds the public page operations.
pub fn operations(ops: Operations<UserSystem>) -> Operations<UserSystem> {
    ops.page(
        "page_register",
        Access::Public,
        "Web page: self-registration.",
        |s: &UserSystem, req, ctx: &CallContext| register(s, req, ctx),
    )
    .page(
        "page_confirm_email",
        Access::Public,
        "Web page: confirm an email address with the mailed code.",
        |s: &UserSystem, req, ctx: &CallContext| confirm_email(s, req, ctx),
    )
    .page(
        "page_forgot_password",
        Access::Public,
        "Web page: ask for a password-reset code.",
        |s: &UserSystem, req, ctx: &CallContext| forgot_password(s, req, ctx),
    )
    .page(
        "page_reset_password",
        Access::Public,
        "Web page: set a new password with the mailed code.",
        |s: &UserSystem, req, ctx: &CallContext| reset_password(s, req, ctx),
    )
}

fn flag(settings: &serde_json::Value, key: &str) -> bool {
    settings.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn narrow(title: &str) -> View {
    View::new(title).layout(Layout::Narrow)
}

fn back_to_login() -> Block {
    Block::links(vec![Link::new("Back to log in", "/ui/login")])
}

/// `page_register`: email, password, the profile fields the settings ask
/// for, and the consent options (required ones marked).
fn register(s: &UserSystem, req: PageRequest, _: &CallContext) -> Result<View, PluginError> {
    let ctx = s.ctx();
    let settings = ctx.settings()?;
    if !flag(&settings, "self_registration") {
        return Ok(narrow("Register")
            .push(Block::notice(
                Tone::Info,
                "Registration is closed. Ask an administrator for an account.",
            ))
            .push(back_to_login()));
    }
    let mut form = Form::new("register", "user.register")
        .field(
            Field::email("email", "Email address")
                .required()
                .value(req.param("email").unwrap_or_default()),
        )
        .field(Field::new_password("password", "Password", Some(password_rules(ctx)?)).required());
    let rules = settings.get("registration_fields");
    for (name, label) in PROFILE_FIELDS {
        let rule = rules
            .and_then(|r| r.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or("optional");
        if rule == "hidden" {
            continue;
        }
        let field_name = format!("profile.{name}");
        let mut field = match name {
            "preferred_language" => Field::select(field_name, label, language_choices("")),
            "about_me" => Field::new(FieldKind::Textarea, field_name, label),
            "first_name" => Field::text(field_name, label).autocomplete("given-name"),
            "last_name" => Field::text(field_name, label).autocomplete("family-name"),
            "phone" | "mobile" => Field::text(field_name, label).autocomplete("tel"),
            _ => Field::text(field_name, label),
        };
        if rule == "required" {
            field = field.required();
        }
        form = form.field(field);
    }
    let options: Vec<serde_json::Value> = settings
        .get("consent_options")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if !options.is_empty() {
        let choices = options
            .iter()
            .filter_map(|o| {
                let id = o.get("id")?.as_str()?;
                let title = o.get("title").and_then(|t| t.as_str()).unwrap_or(id);
                let required = o.get("required").and_then(|r| r.as_bool()).unwrap_or(false);
                let text = o.get("text").and_then(|t| t.as_str()).unwrap_or("");
                let label = if required {
                    format!("{title} (required)")
                } else {
                    title.to_string()
                };
                Some(Choice::new(id, label).describe(text))
            })
            .collect();
        form = form.field(
            Field::checkboxes("consents", "Consents", choices, &[])
                .help("Consents marked (required) must be given to register."),
        );
    }
    let form = form
        .submit("Register")
        .next("/ui/confirm-email?email={email}")
        .success("Check your mail: we sent you a code to confirm your address.");
    Ok(narrow("Register")
        .subtitle("Create your account.")
        .push(form)
        .push(Block::links(vec![Link::new(
            "Already registered? Log in",
            "/ui/login",
        )])))
}

/// `page_confirm_email`: the code from the mailed link (prefilled) or typed.
fn confirm_email(_: &UserSystem, req: PageRequest, _: &CallContext) -> Result<View, PluginError> {
    let email = req.param("email").unwrap_or_default();
    let form = Form::new("confirm", "user.confirm_email")
        .field(
            Field::email("email", "Email address")
                .required()
                .value(email),
        )
        .field(
            Field::text("code", "Confirmation code")
                .required()
                .value(req.param("code").unwrap_or_default())
                .placeholder("XXXX-XXXX")
                .autocomplete("one-time-code"),
        )
        .submit("Confirm")
        .next("/ui/login?email={email}")
        .success("Your address is confirmed. You can log in now.");
    let resend = Form::new("resend", "user.resend_verification")
        .field(
            Field::email("email", "Email address")
                .required()
                .value(email),
        )
        .submit("Send a new code")
        .style(syshost_plugin_api::view::ButtonStyle::Secondary)
        .next("/ui/confirm-email?email={email}")
        .success("If the address waits for confirmation, a new code is on its way.");
    Ok(narrow("Confirm your email address")
        .subtitle("Enter the code from the mail we sent you.")
        .push(form)
        .push(Block::details(
            "No code received?",
            false,
            vec![resend.into()],
        ))
        .push(back_to_login()))
}

/// `page_forgot_password`: asks for a reset code (when the settings allow it).
fn forgot_password(s: &UserSystem, req: PageRequest, _: &CallContext) -> Result<View, PluginError> {
    let settings = s.ctx().settings()?;
    if !flag(&settings, "self_password_reset") {
        return Ok(narrow("Forgot password")
            .push(Block::notice(
                Tone::Info,
                "Password reset is not available. Ask an administrator.",
            ))
            .push(back_to_login()));
    }
    let form = Form::new("forgot", "user.request_password_reset")
        .field(
            Field::email("email", "Email address")
                .required()
                .value(req.param("email").unwrap_or_default()),
        )
        .submit("Send reset code")
        .next("/ui/reset-password?email={email}")
        .success("If the address has an account, a reset code is on its way.");
    Ok(narrow("Forgot password")
        .subtitle("We mail you a code to set a new password.")
        .push(form)
        .push(back_to_login()))
}

/// `page_reset_password`: address, mailed code and the new password.
fn reset_password(s: &UserSystem, req: PageRequest, _: &CallContext) -> Result<View, PluginError> {
    let rules = password_rules(s.ctx())?;
    let form = Form::new("reset", "user.reset_password")
        .field(
            Field::email("email", "Email address")
                .required()
                .value(req.param("email").unwrap_or_default()),
        )
        .field(
            Field::text("code", "Code from the mail")
                .required()
                .value(req.param("code").unwrap_or_default())
                .placeholder("XXXX-XXXX")
                .autocomplete("one-time-code"),
        )
        .field(Field::new_password("new_password", "New password", Some(rules)).required())
        .submit("Set password")
        .next("/ui/login?email={email}")
        .success("Your password is set. Log in with it.");
    Ok(narrow("Set a new password")
        .push(form)
        .push(back_to_login()))
}
