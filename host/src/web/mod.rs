//! The web frontend under `/ui`: pages the plugins describe as data
//! ([`syshost_plugin_api::view`]), rendered by the host inside its frame.
//!
//! Routes (mounted by [`crate::http::router`]):
//! - `GET /ui` → the signed-in user's first account page (or the login page);
//! - `GET /ui/admin` → the admin center: one card per page that declares one,
//!   shown only to subjects holding the card's permission;
//! - `GET /ui/{path}` → the page whose declared path is the longest prefix of
//!   `{path}`; its operation is called (through the same call pipeline and
//!   authorization as the API, [`crate::http::call`]) with a
//!   [`PageRequest`] and answers a [`View`];
//! - `POST /ui/do/{system}/{operation}` → a form submission: CSRF checks,
//!   form → JSON ([`form`]), the operation call, then a redirect with a flash
//!   message, a download, or the page re-shown with the error;
//! - `POST /ui/logout` → the token resolver's logout operation;
//! - `GET /ui/static/app.css`, `/ui/static/app.js`.
//!
//! Submodules: [`render`] (HTML, escaping), [`form`] (coercion).

pub mod form;
pub mod render;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use syshost_plugin_api::view::{Area, Block, CardLink, Download, PageDecl, Tone, View};
use syshost_plugin_api::{codes, CallContext, PageRequest, Subject};

use crate::http::auth;
use crate::http::call::{self, Caller};
use crate::http::errors::{ApiError, CSRF_REJECTED};
use crate::http::{AppState, SubjectLabel};
use form::{Submission, Upload};
use render::{is_local_path, url_encode, Account, Frame, NavItem};

/// The stylesheet served at `/ui/static/app.css`.
pub const APP_CSS: &str = include_str!("static/app.css");
/// The progressive-enhancement script served at `/ui/static/app.js`.
pub const APP_JS: &str = include_str!("static/app.js");

/// The Content-Security-Policy of every `/ui` response: scripts and styles
/// only from this origin, images also inline (`data:` avatars).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The flash-message cookie (one message, read once).
const FLASH_COOKIE: &str = "syshost_flash";

/// Web state: the key the per-session CSRF tokens are derived with, and
/// the page table of the active systems.
pub struct WebState {
    csrf_key: [u8; 32],
    /// The page table and the active systems (in activation order) it was
    /// built for; rebuilt only when that list changes (an activation).
    pages: std::sync::RwLock<Option<PageTable>>,
}

/// The active systems (in activation order) and the pages they declare.
type PageTable = (Vec<String>, Arc<[Page]>);

impl WebState {
    /// A fresh random CSRF key (forms rendered before a restart stop working
    /// after it; the user reloads the page).
    pub fn new() -> Self {
        let mut csrf_key = [0u8; 32];
        if getrandom::fill(&mut csrf_key).is_err() {
            // No OS randomness: fall back to a per-process hash seed so the
            // key is at least not constant.
            use std::hash::{BuildHasher, Hasher};
            for chunk in csrf_key.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(std::process::id() as u64);
                chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
            }
        }
        WebState {
            csrf_key,
            pages: std::sync::RwLock::new(None),
        }
    }

    /// Every page of every active system, sorted (see [`build_pages`]);
    /// built once per set of active systems, not per request.
    fn pages(&self, host: &crate::Host) -> Arc<[Page]> {
        let active = host.active_systems();
        if let Some((built_for, pages)) = &*self.pages.read().unwrap_or_else(|e| e.into_inner()) {
            if *built_for == active {
                return pages.clone();
            }
        }
        let pages: Arc<[Page]> = build_pages(host, &active).into();
        *self.pages.write().unwrap_or_else(|e| e.into_inner()) = Some((active, pages.clone()));
        pages
    }
}

impl Default for WebState {
    fn default() -> Self {
        Self::new()
    }
}

/// The CSRF token of a session: HMAC-SHA256(key, session id), hex.
fn csrf_token(key: &[u8; 32], session_id: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(b"syshost-ui-csrf\0");
    mac.update(session_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Constant-time comparison of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `/ui` routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/static/app.css", get(css))
        .route("/ui/static/app.js", get(js))
        .route("/ui/admin", get(admin_center))
        .route("/ui/logout", post(logout))
        .route("/ui/do/{system}/{operation}", post(submit))
        .route("/ui/{*path}", get(show_page))
}

async fn css() -> Response {
    static_file(APP_CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    static_file(APP_JS, "text/javascript; charset=utf-8")
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A page some active plugin declares.
#[derive(Debug, Clone)]
struct Page {
    plugin: String,
    decl: PageDecl,
    access: syshost_plugin_api::Access,
}

impl Page {
    fn full_operation(&self) -> String {
        format!("{}.{}", self.plugin, self.decl.operation)
    }

    fn href(&self) -> String {
        format!("/ui/{}", self.decl.path)
    }

    /// Whether `ctx` may open it (access rule and session restriction).
    fn visible_to(&self, ctx: &CallContext) -> bool {
        crate::runtime::authorize(&self.access, &ctx.subject).is_ok()
            && ctx
                .restricted_to
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&self.full_operation()))
    }
}

/// Every page of the `active` systems, sorted by area order and title.
fn build_pages(host: &crate::Host, active: &[String]) -> Vec<Page> {
    let mut out = Vec::new();
    for id in active {
        host.with_manifest(id, |m| {
            for decl in &m.pages {
                if let Some(op) = m.operation(&decl.operation) {
                    out.push(Page {
                        plugin: id.clone(),
                        decl: decl.clone(),
                        access: op.access.clone(),
                    });
                }
            }
        });
    }
    out.sort_by(|a, b| {
        (a.decl.order, &a.decl.title, &a.decl.path).cmp(&(
            b.decl.order,
            &b.decl.title,
            &b.decl.path,
        ))
    });
    out
}

/// The page serving `path` (longest declared prefix, on segment
/// boundaries) and the rest of the path.
fn find_page<'a>(pages: &'a [Page], path: &str) -> Option<(&'a Page, String)> {
    pages
        .iter()
        .filter_map(|p| {
            let decl = p.decl.path.as_str();
            if path == decl {
                Some((p, String::new()))
            } else {
                path.strip_prefix(decl)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(|rest| (p, rest.to_string()))
            }
        })
        .max_by_key(|(p, _)| p.decl.path.len())
}

/// A submitted form to re-show with its error.
#[derive(Debug, Clone)]
struct Overlay {
    form_id: String,
    error: String,
    field: Option<String>,
    values: BTreeMap<String, Vec<String>>,
}

/// What the blocking part of a page request decided.
enum Outcome {
    View(Box<View>),
    Redirect(String),
    Error(ApiError),
}

/// A resolved visitor: the context, the pages, and whether a stale cookie
/// must be cleared.
struct Visit<T> {
    value: T,
    ctx: CallContext,
    pages: Arc<[Page]>,
    clear_cookie: bool,
    replacement_token: Option<String>,
}

/// Resolves the caller (a stale or malformed session cookie counts as
/// anonymous and is cleared) and runs `f` on the blocking pool with the
/// context and the active pages.
async fn visit<T, F>(state: &Arc<AppState>, caller: Caller, f: F) -> Result<Visit<T>, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&crate::Host, &CallContext, &[Page]) -> T + Send + 'static,
{
    let web = state.clone();
    let resolved = call::with_context(state, &caller, move |host, ctx| {
        let pages = web.web.pages(host);
        let value = f(host, ctx, &pages);
        (value, pages)
    })
    .await?;
    let (value, pages) = resolved.value;
    Ok(Visit {
        value,
        ctx: resolved.ctx,
        pages,
        clear_cookie: resolved.stale_token,
        replacement_token: resolved.replacement_token,
    })
}

/// The caller of a web request; a malformed cookie is ignored (the visitor
/// is anonymous and the cookie gets cleared).
fn web_caller(state: &AppState, req: &Request) -> (Caller, bool) {
    match Caller::from_request(state, req) {
        Ok(c) => (c, false),
        Err(_) => {
            let mut stripped = Request::new(Body::empty());
            *stripped.extensions_mut() = req.extensions().clone();
            let c = Caller::from_request(state, &stripped).unwrap_or(Caller {
                token: None,
                client_ip: None,
                request_id: String::new(),
            });
            (c, true)
        }
    }
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn login_redirect(pages: &[Page], target: &str) -> Option<String> {
    pages
        .iter()
        .any(|p| p.decl.path == "login")
        .then(|| format!("/ui/login?next={}", url_encode(target)))
}

/// The page a session restricted to some operations may open.
fn restricted_page(ctx: &CallContext, pages: &[Page]) -> Option<String> {
    ctx.restricted_to.as_ref()?;
    pages
        .iter()
        .find(|p| p.decl.area != Area::Public && p.visible_to(ctx))
        .map(Page::href)
}

/// Finishes a web response: subject label, cookies.
fn finish<T>(mut response: Response, visit: &Visit<T>, caller: &Caller, tls: bool) -> Response {
    response
        .extensions_mut()
        .insert(SubjectLabel(visit.ctx.subject.label()));
    let headers = response.headers_mut();
    if visit.clear_cookie {
        if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(tls)) {
            headers.append(header::SET_COOKIE, v);
        }
    } else if let Some(token) = &visit.replacement_token {
        if caller.uses_cookie() {
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(token, tls)) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
    response
}

async fn home(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (caller, _) = web_caller(&state, &req);
    let tls = state.opts.tls_proxy;
    let visit = match visit(&state, caller.clone(), |_, _, _| ()).await {
        Ok(v) => v,
        Err(e) => return error_page(&state, None, &e),
    };
    let target = if let Some(p) = restricted_page(&visit.ctx, &visit.pages) {
        Some(p)
    } else if visit.ctx.subject.is_authenticated() {
        visit
            .pages
            .iter()
            .find(|p| p.decl.area == Area::Account && p.decl.nav && p.visible_to(&visit.ctx))
            .map(Page::href)
            .or_else(|| Some("/ui/admin".to_string()))
    } else {
        login_redirect(&visit.pages, "/ui")
    };
    let response = match target {
        Some(t) => redirect(&t),
        None => error_page(
            &state,
            Some((&visit.ctx, &visit.pages)),
            &ApiError::new(codes::NOT_FOUND, "no pages are available"),
        ),
    };
    finish(response, &visit, &caller, tls)
}

async fn admin_center(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (caller, _) = web_caller(&state, &req);
    let flashes = read_flash(req.headers());
    let tls = state.opts.tls_proxy;
    let visit = match visit(&state, caller.clone(), |_, _, _| ()).await {
        Ok(v) => v,
        Err(e) => return error_page(&state, None, &e),
    };
    let ctx = &visit.ctx;
    let response = if let Some(p) = restricted_page(ctx, &visit.pages) {
        redirect(&p)
    } else if !ctx.subject.is_authenticated() {
        match login_redirect(&visit.pages, "/ui/admin") {
            Some(to) => redirect(&to),
            None => error_page(&state, None, &ApiError::unauthenticated("log in first")),
        }
    } else {
        let cards = admin_cards(ctx, &visit.pages);
        if cards.is_empty() {
            error_page(
                &state,
                Some((ctx, &visit.pages)),
                &ApiError::new(codes::PERMISSION_DENIED, "you may not manage anything here"),
            )
        } else {
            let view = View::new("Admin center")
                .subtitle("Everything you may manage.")
                .push(Block::Cards { cards });
            let frame = frame(&state, ctx, &visit.pages, "/ui/admin", flashes);
            html(StatusCode::OK, render::page(&frame, &view), true)
        }
    };
    finish(response, &visit, &caller, tls)
}

/// The admin-center cards `ctx` may see.
fn admin_cards(ctx: &CallContext, pages: &[Page]) -> Vec<CardLink> {
    pages
        .iter()
        .filter(|p| p.visible_to(ctx))
        .filter_map(|p| {
            let card = p.decl.card.as_ref()?;
            let allowed = match &card.permission {
                Some(perm) => ctx.subject.has_permission(perm),
                None => ctx.subject.is_authenticated(),
            };
            allowed.then(|| CardLink {
                title: card.title.clone(),
                description: card.description.clone(),
                href: p.href(),
                action: "Open".to_string(),
            })
        })
        .collect()
}

/// Builds the frame for `ctx`.
fn frame(
    state: &AppState,
    ctx: &CallContext,
    pages: &[Page],
    current: &str,
    flashes: Vec<(Tone, String)>,
) -> Frame {
    let current_path = current.split('?').next().unwrap_or(current);
    let restricted = ctx.restricted_to.is_some();
    let mut top = Vec::new();
    if ctx.subject.is_authenticated() && !restricted && !admin_cards(ctx, pages).is_empty() {
        top.push(NavItem {
            label: "Admin center".to_string(),
            href: "/ui/admin".to_string(),
            active: current_path.starts_with("/ui/admin"),
        });
    }
    let account_pages: Vec<&Page> = pages
        .iter()
        .filter(|p| p.decl.area == Area::Account && p.decl.nav && p.visible_to(ctx))
        .collect();
    let side = if current_path.starts_with("/ui/admin") || !ctx.subject.is_authenticated() {
        Vec::new()
    } else {
        account_pages
            .iter()
            .map(|p| NavItem {
                label: p.decl.title.clone(),
                href: p.href(),
                active: current_path == p.href()
                    || current_path.starts_with(&format!("{}/", p.href())),
            })
            .collect()
    };
    let account = match &ctx.subject {
        Subject::User(u) => Some(Account {
            name: if u.name.is_empty() {
                u.email.clone()
            } else {
                u.name.clone()
            },
            email: u.email.clone(),
            profile_href: account_pages.first().map(|p| p.href()),
            can_logout: logout_operation(&state.host).is_some(),
        }),
        _ => None,
    };
    let csrf = session_id(ctx)
        .map(|sid| csrf_token(&state.web.csrf_key, sid))
        .unwrap_or_default();
    Frame {
        site: state.host.site_info().product_name.clone(),
        account,
        top,
        side,
        flashes,
        csrf,
        page: current.to_string(),
    }
}

fn session_id(ctx: &CallContext) -> Option<&str> {
    match &ctx.subject {
        Subject::User(u) => u.session_id.as_deref(),
        _ => None,
    }
}

/// `(plugin, operation)` of the token resolver's logout operation.
fn logout_operation(host: &crate::Host) -> Option<(String, String)> {
    host.active_systems().into_iter().find_map(|id| {
        let op = host.with_manifest(&id, |m| m.token_resolver.as_ref()?.logout.clone())??;
        Some((id, op))
    })
}

fn html(status: StatusCode, body: String, no_store: bool) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if no_store {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// An error page inside the frame (404, 403, 500, …). Internal errors are
/// shown without their details.
fn error_page(state: &AppState, who: Option<(&CallContext, &[Page])>, e: &ApiError) -> Response {
    let status = e.status;
    let (title, text) = match status.as_u16() {
        404 => ("Page not found", "There is no such page.".to_string()),
        403 => ("Not allowed", e.message.clone()),
        401 => ("Please log in", e.message.clone()),
        400 | 409 | 413 | 429 => ("Something is not right", e.message.clone()),
        _ => {
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(code = %e.code, "internal error rendering a page: {}", e.message);
            }
            (
                "Something went wrong",
                "The page could not be shown. Please try again later.".to_string(),
            )
        }
    };
    let view = View::new(title)
        .push(Block::notice(Tone::Danger, text))
        .push(Block::links(vec![syshost_plugin_api::view::Link::new(
            "Go to the start page",
            "/ui",
        )]));
    let anon = CallContext::default();
    let (ctx, pages) = who.unwrap_or((&anon, &[]));
    let frame = frame(state, ctx, pages, "/ui", Vec::new());
    html(status, render::page(&frame, &view), true)
}

async fn show_page(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    let (caller, bad_cookie) = web_caller(&state, &req);
    let query = req.uri().query().unwrap_or("").to_string();
    let flashes = read_flash(req.headers());
    let had_flash = !flashes.is_empty();
    let mut response = render_path(&state, caller, &path, &query, None, flashes).await;
    if bad_cookie {
        if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(state.opts.tls_proxy)) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if had_flash {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("syshost_flash=; Path=/ui; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
    }
    response
}

/// Renders `/ui/{path}?{query}` for `caller`, optionally re-showing a
/// failed form submission.
async fn render_path(
    state: &Arc<AppState>,
    caller: Caller,
    path: &str,
    query: &str,
    overlay: Option<Overlay>,
    mut flashes: Vec<(Tone, String)>,
) -> Response {
    let tls = state.opts.tls_proxy;
    let path = path.trim_matches('/').to_string();
    let current = if query.is_empty() {
        format!("/ui/{path}")
    } else {
        format!("/ui/{path}?{query}")
    };
    let mut query_map = BTreeMap::new();
    for (k, v) in render::parse_pairs(query) {
        query_map.entry(k).or_insert(v);
    }
    let target = current.clone();
    let status_on_overlay = overlay.as_ref().map(|_| StatusCode::UNPROCESSABLE_ENTITY);
    let visit = match visit(state, caller.clone(), move |host, ctx, pages| {
        let Some((page, rest)) = find_page(pages, &path) else {
            return Outcome::Error(ApiError::new(codes::NOT_FOUND, "no such page"));
        };
        if let Some(allowed) = &ctx.restricted_to {
            if !allowed.contains(&page.full_operation()) {
                return match restricted_page(ctx, pages) {
                    Some(p) => Outcome::Redirect(p),
                    None => Outcome::Error(ApiError::new(
                        codes::PASSWORD_CHANGE_REQUIRED,
                        "this session may not open pages",
                    )),
                };
            }
        }
        if page.decl.area != Area::Public && !ctx.subject.is_authenticated() {
            return match login_redirect(pages, &target) {
                Some(to) => Outcome::Redirect(to),
                None => Outcome::Error(ApiError::unauthenticated("log in first")),
            };
        }
        let request = PageRequest {
            rest,
            query: query_map.clone(),
        };
        let payload = match serde_json::to_string(&request) {
            Ok(p) => p,
            Err(e) => return Outcome::Error(ApiError::new(codes::INTERNAL, e.to_string())),
        };
        match host.call_raw(&page.plugin, &page.decl.operation, &payload, ctx) {
            Ok(body) => match serde_json::from_str::<View>(&body) {
                Ok(mut view) => {
                    if view.title.is_empty() {
                        view.title = page.decl.title.clone();
                    }
                    if page.decl.area == Area::Admin && view.breadcrumbs.is_empty() {
                        view = view.breadcrumb("Admin center", "/ui/admin");
                    }
                    Outcome::View(Box::new(view))
                }
                Err(e) => Outcome::Error(ApiError::new(
                    codes::INTERNAL,
                    format!(
                        "page operation {}.{} answered no view: {e}",
                        page.plugin, page.decl.operation
                    ),
                )),
            },
            Err(e) if e.is(codes::UNAUTHENTICATED) && !ctx.subject.is_authenticated() => {
                match login_redirect(pages, &target) {
                    Some(to) => Outcome::Redirect(to),
                    None => Outcome::Error(ApiError::from(e)),
                }
            }
            Err(e) => Outcome::Error(ApiError::from(e)),
        }
    })
    .await
    {
        Ok(v) => v,
        Err(e) => return error_page(state, None, &e),
    };
    let response = match &visit.value {
        Outcome::Redirect(to) => redirect(to),
        Outcome::Error(e) => error_page(state, Some((&visit.ctx, &visit.pages)), e),
        Outcome::View(view) => {
            let mut view = (**view).clone();
            if let Some(o) = &overlay {
                apply_overlay(&mut view, o);
                if !view.forms_mut().iter().any(|f| f.id == o.form_id) {
                    flashes.push((Tone::Danger, o.error.clone()));
                }
            }
            let frame = frame(state, &visit.ctx, &visit.pages, &current, flashes);
            html(
                status_on_overlay.unwrap_or(StatusCode::OK),
                render::page(&frame, &view),
                true,
            )
        }
    };
    finish(response, &visit, &caller, tls)
}

/// Puts a failed submission's error and values into its form.
fn apply_overlay(view: &mut View, o: &Overlay) {
    for form in view.forms_mut() {
        if form.id != o.form_id {
            continue;
        }
        let mut field_named = false;
        for field in &mut form.fields {
            if o.field.as_deref() == Some(field.name.as_str()) {
                field.error = Some(o.error.clone());
                field_named = true;
            }
            if field.is_secret()
                || field.readonly
                || field.kind == syshost_plugin_api::view::FieldKind::Hidden
                || field.kind == syshost_plugin_api::view::FieldKind::File
            {
                continue;
            }
            let submitted = o.values.get(&field.name);
            use syshost_plugin_api::view::FieldKind as K;
            field.value = match field.kind {
                K::Checkbox => serde_json::Value::Bool(
                    submitted.is_some_and(|v| v.iter().any(|x| x == "true" || x == "on")),
                ),
                K::Checkboxes => serde_json::Value::Array(
                    submitted
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(serde_json::Value::String)
                        .collect(),
                ),
                _ => match submitted.and_then(|v| v.first()) {
                    Some(v) => serde_json::Value::String(v.clone()),
                    None => continue,
                },
            };
        }
        form.error = Some(if field_named {
            "Please correct the marked field.".to_string()
        } else {
            o.error.clone()
        });
        return;
    }
}

/// Reads (and URL-decodes) the flash cookie.
fn read_flash(headers: &HeaderMap) -> Vec<(Tone, String)> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.trim() == FLASH_COOKIE && !v.trim().is_empty() {
                    let decoded = render::url_decode(v.trim());
                    let (tone, msg) = match decoded.split_once(':') {
                        Some(("e", m)) => (Tone::Danger, m.to_string()),
                        Some(("s", m)) => (Tone::Success, m.to_string()),
                        _ => (Tone::Info, decoded.clone()),
                    };
                    let msg: String = msg.chars().take(300).collect();
                    if !msg.is_empty() {
                        return vec![(tone, msg)];
                    }
                }
            }
        }
    }
    Vec::new()
}

fn set_flash(response: &mut Response, tone: Tone, message: &str) {
    let prefix = if tone == Tone::Danger { "e" } else { "s" };
    let msg: String = message.chars().take(300).collect();
    let value = format!(
        "{FLASH_COOKIE}={}; Path=/ui; HttpOnly; SameSite=Lax; Max-Age=60",
        url_encode(&format!("{prefix}:{msg}"))
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A local `/ui` target, or `None`.
fn local_ui(target: Option<&str>) -> Option<String> {
    let t = target?.trim();
    (is_local_path(t) && (t == "/ui" || t.starts_with("/ui/") || t.starts_with("/ui?")))
        .then(|| t.to_string())
}

/// Fills `{field}` placeholders from the top-level fields of `response`,
/// else from the submitted form fields (never secret ones: only names the
/// form sent as plain values).
fn fill_next(next: &str, response: &serde_json::Value, sub: &Submission) -> String {
    let mut out = String::with_capacity(next.len());
    let mut rest = next;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                let value = match response.get(key) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    Some(serde_json::Value::Bool(b)) => b.to_string(),
                    _ if !key.starts_with('_') && !key.contains("password") => {
                        sub.get(key).unwrap_or("").to_string()
                    }
                    _ => String::new(),
                };
                out.push_str(&url_encode(&value));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads a form body: urlencoded or multipart, within the size limit.
async fn read_form(req: Request, limit: usize) -> Result<Submission, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let too_large = || {
        ApiError::new(
            crate::http::errors::PAYLOAD_TOO_LARGE,
            format!("the form is larger than {limit} bytes"),
        )
    };
    if essence == "multipart/form-data" {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|e| ApiError::invalid(format!("bad multipart form: {e}")))?;
        let stream = req.into_body().into_data_stream();
        let constraints = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
        let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
        let mut sub = Submission::default();
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(multer::Error::StreamSizeExceeded { .. }) => return Err(too_large()),
                Err(e) => return Err(ApiError::invalid(format!("bad multipart form: {e}"))),
            };
            let name = field.name().unwrap_or("").to_string();
            let is_file = field.file_name().is_some();
            let ct = field
                .content_type()
                .map(|m| m.essence_str().to_string())
                .unwrap_or_default();
            let bytes = field.bytes().await.map_err(|e| match e {
                multer::Error::StreamSizeExceeded { .. } => too_large(),
                e => ApiError::invalid(format!("bad multipart form: {e}")),
            })?;
            if is_file {
                if !bytes.is_empty() {
                    sub.files.push(Upload {
                        name,
                        content_type: ct,
                        bytes: bytes.to_vec(),
                    });
                }
            } else {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::invalid(format!("form field '{name}' is not UTF-8")))?;
                sub.fields.push((name, text));
            }
        }
        Ok(sub)
    } else if essence == "application/x-www-form-urlencoded" || essence.is_empty() {
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        let text =
            std::str::from_utf8(&bytes).map_err(|_| ApiError::invalid("the form is not UTF-8"))?;
        Ok(Submission {
            fields: render::parse_pairs(text),
            files: Vec::new(),
        })
    } else {
        Err(ApiError::invalid(format!(
            "a form needs Content-Type application/x-www-form-urlencoded or multipart/form-data, not '{content_type}'"
        )))
    }
}

/// The result of the blocking part of a submission.
enum Submitted {
    Done(String),
    Failed(ApiError),
    Csrf,
}

async fn submit(
    State(state): State<Arc<AppState>>,
    Path((system, operation)): Path<(String, String)>,
    req: Request,
) -> Response {
    let tls = state.opts.tls_proxy;
    if let Err(e) = auth::check_csrf(req.headers(), &state.opts.public_origin) {
        return error_page(&state, None, &e);
    }
    let (caller, _) = web_caller(&state, &req);
    let decl = match call::find_operation(&state.host, &system, &operation) {
        Ok(d) => d,
        Err(e) => return error_page(&state, None, &e),
    };
    let sub = match read_form(req, state.opts.max_body_bytes).await {
        Ok(s) => s,
        Err(e) => return error_page(&state, None, &e),
    };
    let page = local_ui(sub.get("_page")).unwrap_or_else(|| "/ui".to_string());
    let form_id = sub.get("_form").unwrap_or("").to_string();
    let throttled = call::throttle(&state, decl, &caller);
    let payload = form::to_json(&sub, decl.request_schema.as_ref());
    let csrf_sent = sub.get("_csrf").unwrap_or("").to_string();
    let key = state.web.csrf_key;
    let (sys, op) = (system.clone(), operation.clone());
    let outcome = match (throttled, payload) {
        (Err(e), _) => Err(e),
        (_, Err((field, message))) => {
            Err(ApiError::invalid(message).with_details(serde_json::json!({ "field": field })))
        }
        (Ok(()), Ok(payload)) => Ok(payload),
    };
    let payload = match outcome {
        Ok(p) => p,
        Err(e) => {
            return reshow(&state, caller, &page, &form_id, &sub, &e).await;
        }
    };
    let visit = match visit(&state, caller.clone(), move |host, ctx, _| {
        if let Some(sid) = session_id(ctx) {
            if !same_token(&csrf_token(&key, sid), &csrf_sent) {
                return Submitted::Csrf;
            }
        }
        match host.call_raw(&sys, &op, &payload.to_string(), ctx) {
            Ok(body) => Submitted::Done(body),
            Err(e) => Submitted::Failed(ApiError::from(e)),
        }
    })
    .await
    {
        Ok(v) => v,
        Err(e) => return error_page(&state, None, &e),
    };
    match &visit.value {
        Submitted::Csrf => {
            let e = ApiError::new(
                CSRF_REJECTED,
                "the form has expired or did not come from this site; reload the page and try again",
            );
            finish(
                error_page(&state, Some((&visit.ctx, &visit.pages)), &e),
                &visit,
                &caller,
                tls,
            )
        }
        Submitted::Failed(e) => {
            if e.code == codes::PASSWORD_CHANGE_REQUIRED {
                if let Some(p) = restricted_page(&visit.ctx, &visit.pages) {
                    return finish(redirect(&p), &visit, &caller, tls);
                }
            }
            if e.status == StatusCode::INTERNAL_SERVER_ERROR {
                return finish(
                    error_page(&state, Some((&visit.ctx, &visit.pages)), e),
                    &visit,
                    &caller,
                    tls,
                );
            }
            let caller = if visit.clear_cookie {
                Caller {
                    token: None,
                    ..caller.clone()
                }
            } else {
                caller.clone()
            };
            let e = e.clone();
            reshow(&state, caller, &page, &form_id, &sub, &e).await
        }
        Submitted::Done(body) => {
            let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let bulk: Option<serde_json::Value> =
                sub.get("_bulk").and_then(|b| serde_json::from_str(b).ok());
            let download: Option<Download> = sub
                .get("_download")
                .and_then(|d| serde_json::from_str(d).ok())
                .or_else(|| {
                    bulk.as_ref()
                        .and_then(|b| b.get("download"))
                        .and_then(|d| serde_json::from_value(d.clone()).ok())
                });
            let mut response = if let Some(d) = download {
                download_response(&d, body, &value)
            } else {
                let next = sub
                    .get("_next")
                    .map(|n| fill_next(n, &value, &sub))
                    .and_then(|n| local_ui(Some(&n)))
                    .unwrap_or_else(|| page.clone());
                let mut r = redirect(&next);
                let success = sub.get("_success").map(str::to_string).or_else(|| {
                    bulk.as_ref()
                        .and_then(|b| b.get("success"))
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                });
                if let Some(msg) = success.filter(|m| !m.trim().is_empty()) {
                    set_flash(&mut r, Tone::Success, &msg);
                }
                r
            };
            call::session_cookies(
                response.headers_mut(),
                &caller,
                if visit.clear_cookie {
                    None
                } else {
                    visit.replacement_token.as_deref()
                },
                body,
                tls,
            );
            response
                .extensions_mut()
                .insert(SubjectLabel(visit.ctx.subject.label()));
            response
        }
    }
}

/// Re-shows the page a form came from with the error and the values.
async fn reshow(
    state: &Arc<AppState>,
    caller: Caller,
    page: &str,
    form_id: &str,
    sub: &Submission,
    e: &ApiError,
) -> Response {
    let (path, query) = page.split_once('?').unwrap_or((page, ""));
    let path = path.strip_prefix("/ui").unwrap_or(path).trim_matches('/');
    let field = e
        .details
        .as_ref()
        .and_then(|d| d.get("field"))
        .and_then(|f| f.as_str())
        .map(str::to_string);
    let overlay = Overlay {
        form_id: form_id.to_string(),
        error: e.message.clone(),
        field,
        values: sub.echo(),
    };
    if path.is_empty() || path == "admin" {
        let mut r = redirect(if path.is_empty() { "/ui" } else { "/ui/admin" });
        set_flash(&mut r, Tone::Danger, &e.message);
        return r;
    }
    let mut r = render_path(state, caller, path, query, Some(overlay), Vec::new()).await;
    if e.status == StatusCode::TOO_MANY_REQUESTS {
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    }
    r
}

/// Serves an operation's response as a file.
fn download_response(d: &Download, body: &str, value: &serde_json::Value) -> Response {
    let filename: String = d
        .filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(100)
        .collect();
    let filename = if filename.is_empty() || filename.starts_with('.') {
        "download".to_string()
    } else {
        filename
    };
    let content_type = match d.content_type.as_deref() {
        Some("text/csv") => "text/csv; charset=utf-8",
        Some("text/plain") => "text/plain; charset=utf-8",
        _ => "application/json",
    };
    let content = match d.field.as_deref().and_then(|f| value.get(f)) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        None => serde_json::to_string_pretty(value).unwrap_or_else(|_| body.to_string()),
    };
    let mut r = (StatusCode::OK, content).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn logout(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let tls = state.opts.tls_proxy;
    if let Err(e) = auth::check_csrf(req.headers(), &state.opts.public_origin) {
        return error_page(&state, None, &e);
    }
    let (caller, _) = web_caller(&state, &req);
    let sub = read_form(req, 64 * 1024).await.unwrap_or_default();
    let csrf_sent = sub.get("_csrf").unwrap_or("").to_string();
    let key = state.web.csrf_key;
    let target = logout_operation(&state.host);
    let visit = match visit(&state, caller.clone(), move |host, ctx, _| {
        let Some(sid) = session_id(ctx) else {
            return Ok(());
        };
        if !same_token(&csrf_token(&key, sid), &csrf_sent) {
            return Err(ApiError::new(
                CSRF_REJECTED,
                "the form has expired; reload the page and try again",
            ));
        }
        if let Some((plugin, op)) = &target {
            host.call_raw(plugin, op, "{}", ctx)
                .map_err(ApiError::from)?;
        }
        Ok(())
    })
    .await
    {
        Ok(v) => v,
        Err(e) => return error_page(&state, None, &e),
    };
    if let Err(e) = &visit.value {
        return error_page(&state, Some((&visit.ctx, &visit.pages)), e);
    }
    let to = login_redirect(&visit.pages, "/ui")
        .map(|_| "/ui/login".to_string())
        .unwrap_or_else(|| "/ui".to_string());
    let mut r = redirect(&to);
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(tls)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    set_flash(&mut r, Tone::Success, "You are logged out.");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_placeholders_are_filled_and_encoded() {
        let v = serde_json::json!({"id": "r 1", "n": 5});
        let sub = Submission {
            fields: vec![
                ("email".into(), "a+b@x.org".into()),
                ("new_password".into(), "secret".into()),
            ],
            files: Vec::new(),
        };
        assert_eq!(
            fill_next("/ui/admin/roles/{id}", &v, &sub),
            "/ui/admin/roles/r%201"
        );
        assert_eq!(fill_next("/ui/x/{n}/{missing}", &v, &sub), "/ui/x/5/");
        assert_eq!(fill_next("/ui/{open", &v, &sub), "/ui/{open");
        assert_eq!(
            fill_next("/ui/c?email={email}&p={new_password}", &v, &sub),
            "/ui/c?email=a%2Bb%40x.org&p="
        );
    }

    #[test]
    fn only_local_ui_targets() {
        assert_eq!(local_ui(Some("/ui/account")), Some("/ui/account".into()));
        assert_eq!(local_ui(Some("/ui")), Some("/ui".into()));
        for bad in [
            "//evil.example",
            "https://evil.example/ui",
            "/api/v1/x",
            "/ui\\x",
            "/uix",
        ] {
            assert_eq!(local_ui(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn csrf_tokens_depend_on_key_and_session() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let t = csrf_token(&k1, "s1");
        assert_eq!(t.len(), 64);
        assert_eq!(t, csrf_token(&k1, "s1"));
        assert_ne!(t, csrf_token(&k1, "s2"));
        assert_ne!(t, csrf_token(&k2, "s1"));
        assert!(same_token(&t, &t.clone()));
        assert!(!same_token(&t, ""));
    }

    fn page(path: &str) -> Page {
        Page {
            plugin: "p".into(),
            decl: PageDecl::new(path, path, "op"),
            access: syshost_plugin_api::Access::Public,
        }
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let pages = vec![page("admin"), page("admin/roles"), page("admin/roles-x")];
        let (p, rest) = find_page(&pages, "admin/roles/r1").unwrap();
        assert_eq!((p.decl.path.as_str(), rest.as_str()), ("admin/roles", "r1"));
        let (p, rest) = find_page(&pages, "admin/roles-x").unwrap();
        assert_eq!((p.decl.path.as_str(), rest.as_str()), ("admin/roles-x", ""));
        let (p, _) = find_page(&pages, "admin/rolesx").unwrap();
        assert_eq!(p.decl.path, "admin");
        assert!(find_page(&pages, "login").is_none());
    }
}
