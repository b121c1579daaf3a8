//! The session system's web pages (see `syshost_plugin_api::view`): the
//! login page and "My sessions".

use serde_json::json;
use syshost_plugin_api::view::{
    Area, Block, ButtonStyle, Cell, Field, Form, Layout, Link, PageDecl, PageRequest, Row, Table,
    Tone, View,
};
use syshost_plugin_api::{timefmt, CallContext, Manifest, PluginError};

use crate::model::{Empty, SessionList};
use crate::SessionSystem;

/// Adds the page declarations to the manifest.
pub fn declare(manifest: Manifest) -> Manifest {
    manifest
        .page(PageDecl::new("login", "Log in", "page_login").area(Area::Public))
        .page(
            PageDecl::new("account/sessions", "My sessions", "page_sessions")
                .nav()
                .order(40),
        )
}

impl SessionSystem {
    /// `page_login` (public): the login form, with "Forgot password?" and
    /// "Register" links when the `user` settings enable them.
    pub(crate) fn page_login(
        &self,
        req: PageRequest,
        ctx: &CallContext,
    ) -> Result<View, PluginError> {
        let user_settings: serde_json::Value = self
            .host
            .call("settings", "get", &json!({ "section": "user" }))
            .unwrap_or_default();
        let doc = &user_settings["document"];
        let flag = |key: &str| doc.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
        let next = req
            .param("next")
            .filter(|n| n.starts_with("/ui") && !n.starts_with("//"))
            .unwrap_or("/ui")
            .to_string();
        let mut form = Form::new("login", "session.login")
            .field(
                Field::email("email", "Email address")
                    .required()
                    .value(req.param("email").unwrap_or_default()),
            )
            .field(Field::password("password", "Password").required())
            .submit("Log in")
            .next(next);
        if flag("self_password_reset") {
            form = form.link("Forgot password?", "/ui/forgot-password");
        }
        let mut view = View::new("Log in").layout(Layout::Narrow);
        if ctx.subject.is_authenticated() {
            view = view.push(Block::notice(
                Tone::Info,
                "You are already logged in. Logging in again starts a new session.",
            ));
        }
        view = view.push(form);
        if flag("self_registration") {
            view = view.push(Block::links(vec![Link::new(
                "No account yet? Register",
                "/ui/register",
            )]));
        }
        Ok(view)
    }

    /// `page_sessions` (authenticated): the caller's sessions with "End".
    pub(crate) fn page_sessions(
        &self,
        _req: PageRequest,
        ctx: &CallContext,
    ) -> Result<View, PluginError> {
        let list: SessionList = self.list_mine(Empty {}, ctx)?;
        let mut table = Table::new(["Started", "Last active", "Expires", "Address", "Current"])
            .id("sessions")
            .empty("No sessions.");
        for s in &list.items {
            let mut row = Row::new([
                Cell::new(timefmt::utc(s.created_at)),
                Cell::new(timefmt::utc(s.last_seen_at)),
                Cell::new(timefmt::utc(s.expires_at.min(s.idle_expires_at))),
                Cell::new(s.client_addr.clone().unwrap_or_else(|| "–".to_string())),
                if s.current {
                    Cell::badge("This session", Tone::Success)
                } else {
                    Cell::new("")
                },
            ]);
            if !s.current {
                row = row.action(
                    Form::button(format!("revoke-{}", s.id), "session.revoke_mine", "End")
                        .hidden("session_id", s.id.clone())
                        .style(ButtonStyle::Danger)
                        .confirm("End this session?")
                        .success("The session has ended."),
                );
            }
            table = table.row(row);
        }
        Ok(View::new("My sessions")
            .subtitle("Where you are logged in. End any session you do not recognise.")
            .push(table))
    }
}
