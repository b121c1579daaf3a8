//! Self-service pages: profile (contact details, avatar, language), change
//! password (also the forced change after login), consents, data export.

use syshost_plugin_api::view::{
    Block, ButtonStyle, Cell, Download, Field, FieldKind, Form, Image, PageDecl, PageRequest, Row,
    Table, Tone, View,
};
use syshost_plugin_api::{
    timefmt, Access, CallContext, Manifest, NoInput, Operations, PluginError, Subject,
};

use super::{language_choices, password_rules, PROFILE_FIELDS};
use crate::model::{ConsentAction, IdRequest};
use crate::{avatar, selfservice, UserSystem};

/// Adds the self-service page declarations.
pub fn declare(m: Manifest) -> Manifest {
    m.page(
        PageDecl::new("account/profile", "My profile", "page_profile")
            .nav()
            .order(10),
    )
    .page(
        PageDecl::new(
            "account/password",
            "Change password",
            "page_change_password",
        )
        .nav()
        .order(20),
    )
    .page(
        PageDecl::new("account/consents", "My consents", "page_consents")
            .nav()
            .order(30),
    )
    .page(
        PageDecl::new("account/export", "Export my data", "page_export")
            .nav()
            .order(50),
    )
}

/// Adds the self-service page operations.
pub fn operations(ops: Operations<UserSystem>) -> Operations<UserSystem> {
    ops.page(
        "page_profile",
        Access::Authenticated,
        "Web page: the caller's profile and avatar.",
        |s: &UserSystem, req, ctx: &CallContext| profile(s, req, ctx),
    )
    .page(
        "page_change_password",
        Access::Authenticated,
        "Web page: change the caller's password (also the forced change after login).",
        |s: &UserSystem, req, ctx: &CallContext| change_password(s, req, ctx),
    )
    .page(
        "page_consents",
        Access::Authenticated,
        "Web page: the caller's consents and their history.",
        |s: &UserSystem, req, ctx: &CallContext| consents(s, req, ctx),
    )
    .page(
        "page_export",
        Access::Authenticated,
        "Web page: download everything stored about the caller.",
        |s: &UserSystem, req, ctx: &CallContext| export(s, req, ctx),
    )
}

/// `page_profile`: account facts, avatar upload/removal and the contact form.
fn profile(s: &UserSystem, _: PageRequest, caller: &CallContext) -> Result<View, PluginError> {
    let ctx = s.ctx();
    let me = selfservice::me(ctx, NoInput {}, caller)?;
    let user = &me.user;
    let mut view = View::new("My profile").subtitle("Your contact details and picture.");
    view = view.push(Block::key_values([
        ("Email address", user.email.clone()),
        (
            "Email confirmed",
            if user.email_verified { "Yes" } else { "No" }.to_string(),
        ),
        ("Member since", timefmt::utc(user.created_at)),
    ]));
    let mut avatar_blocks = Vec::new();
    if user.avatar.is_some() {
        if let Ok(data) = avatar::get_avatar(
            ctx,
            IdRequest {
                id: user.id.clone(),
            },
            caller,
        ) {
            avatar_blocks.push(Block::Image(Image {
                alt: "Your picture".to_string(),
                content_type: data.content_type,
                data: data.data,
                size: Some(96),
                round: true,
            }));
        }
    } else {
        avatar_blocks.push(Block::muted("No picture yet."));
    }
    avatar_blocks.push(
        Form::new("avatar", "user.set_my_avatar")
            .field(
                Field::new(FieldKind::File, "data", "Upload a picture")
                    .help("PNG, JPEG or WebP, at most 256 KiB.")
                    .required(),
            )
            .submit("Upload")
            .style(ButtonStyle::Secondary)
            .success("Your picture is saved.")
            .into(),
    );
    if let Some(field) = avatar_blocks.last_mut().and_then(|b| match b {
        Block::Form(f) => f.fields.first_mut(),
        _ => None,
    }) {
        field.accept = Some("image/png,image/jpeg,image/webp".to_string());
    }
    if user.avatar.is_some() {
        avatar_blocks.push(
            Form::button("avatar-delete", "user.delete_my_avatar", "Remove picture")
                .confirm("Remove your picture?")
                .success("Your picture is removed.")
                .into(),
        );
    }
    view = view.push(Block::section("Picture", avatar_blocks));

    let values = serde_json::to_value(&user.profile).unwrap_or_default();
    let mut form = Form::new("contact", "user.update_my_contact")
        .submit("Save")
        .success("Your profile is saved.");
    for (name, label) in PROFILE_FIELDS {
        let current = values
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let field_name = format!("profile.{name}");
        let field = match name {
            "preferred_language" => {
                Field::select(field_name, label, language_choices(&current)).value(current)
            }
            "about_me" => Field::new(FieldKind::Textarea, field_name, label).value(current),
            _ => Field::text(field_name, label).value(current),
        };
        form = form.field(field);
    }
    Ok(view.push(Block::section("Contact details", vec![form.into()])))
}

/// `page_change_password`: current and new password. When the account must
/// change its password, this is the one page its session may open.
fn change_password(
    s: &UserSystem,
    _: PageRequest,
    caller: &CallContext,
) -> Result<View, PluginError> {
    let rules = password_rules(s.ctx())?;
    let forced = match &caller.subject {
        Subject::User(u) => u.must_change_password || caller.restricted_to.is_some(),
        _ => false,
    };
    let mut view = View::new("Change password");
    if forced {
        view = view.push(Block::notice(
            Tone::Warning,
            "You must set a new password before you continue.",
        ));
    }
    let form = Form::new("password", "user.change_my_password")
        .field(Field::password("current_password", "Current password").required())
        .field(Field::new_password("new_password", "New password", Some(rules)).required())
        .submit("Change password")
        .next(if forced {
            "/ui"
        } else {
            "/ui/account/password"
        })
        .success("Your password is changed.");
    Ok(view.push(form))
}

/// `page_consents`: every consent option with its state (optional ones can
/// be accepted or revoked) and the caller's history.
fn consents(s: &UserSystem, _: PageRequest, caller: &CallContext) -> Result<View, PluginError> {
    let ctx = s.ctx();
    let me = selfservice::me(ctx, NoInput {}, caller)?;
    let settings = ctx.settings()?;
    let options: Vec<serde_json::Value> = settings
        .get("consent_options")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut table = Table::new(["Consent", "Version", "State"])
        .id("consents")
        .empty("There is nothing to consent to.");
    for o in &options {
        let Some(id) = o.get("id").and_then(|v| v.as_str()) else {
            continue;
        };
        let title = o.get("title").and_then(|t| t.as_str()).unwrap_or(id);
        let version = o.get("version").and_then(|t| t.as_str()).unwrap_or("");
        let required = o.get("required").and_then(|r| r.as_bool()).unwrap_or(false);
        let last = me.user.consents.get(id).and_then(|h| h.last());
        let accepted = last.is_some_and(|e| e.action == ConsentAction::Accepted);
        let current = last.is_some_and(|e| e.version == version);
        let state = match (accepted, current) {
            (true, true) => Cell::badge("Accepted", Tone::Success),
            (true, false) => Cell::badge("Accepted an older version", Tone::Warning),
            (false, _) if last.is_some() => Cell::badge("Revoked", Tone::Neutral),
            _ => Cell::badge("Not given", Tone::Neutral),
        };
        let mut row = Row::new([
            Cell::new(if required {
                format!("{title} (required)")
            } else {
                title.to_string()
            }),
            Cell::new(version),
            state,
        ]);
        if !accepted || !current {
            row = row.action(
                Form::button(format!("accept-{id}"), "user.set_my_consent", "Accept")
                    .hidden("option_id", id)
                    .hidden("accept", true)
                    .success("Consent given."),
            );
        }
        if accepted && !required {
            row = row.action(
                Form::button(format!("revoke-{id}"), "user.set_my_consent", "Revoke")
                    .hidden("option_id", id)
                    .hidden("accept", false)
                    .style(ButtonStyle::Danger)
                    .confirm("Revoke this consent?")
                    .success("Consent revoked."),
            );
        }
        table = table.row(row);
    }
    let mut history = Table::new(["When", "Consent", "Action", "Version"])
        .id("history")
        .empty("No consents recorded yet.");
    let mut entries: Vec<(&String, &crate::model::ConsentEntry)> = me
        .user
        .consents
        .iter()
        .flat_map(|(id, h)| h.iter().map(move |e| (id, e)))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.1.at));
    let title_of = |id: &str| {
        options
            .iter()
            .find(|o| o.get("id").and_then(|v| v.as_str()) == Some(id))
            .and_then(|o| o.get("title").and_then(|t| t.as_str()))
            .unwrap_or(id)
            .to_string()
    };
    for (id, e) in entries {
        history = history.row(Row::new([
            timefmt::utc(e.at),
            title_of(id),
            match e.action {
                ConsentAction::Accepted => "Accepted".to_string(),
                ConsentAction::Revoked => "Revoked".to_string(),
            },
            e.version.clone(),
        ]));
    }
    Ok(View::new("My consents")
        .subtitle("What you agreed to. Optional consents can be revoked at any time.")
        .push(table)
        .push(Block::heading("History"))
        .push(history))
}

/// `page_export`: a button that downloads `export_my_data` as JSON.
fn export(_: &UserSystem, _: PageRequest, _: &CallContext) -> Result<View, PluginError> {
    Ok(View::new("Export my data")
        .subtitle("Everything stored about you, as one JSON file.")
        .push(Block::text(
            "The file contains your account, profile, consents, roles, groups, permissions and licenses.",
        ))
        .push(
            Form::new("export", "user.export_my_data")
                .submit("Download my data")
                .download(Download {
                    filename: "my-data.json".to_string(),
                    content_type: Some("application/json".to_string()),
                    field: None,
                }),
        ))
}
