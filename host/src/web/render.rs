//! HTML rendering of [`View`]s and the host frame.
//!
//! Invariant: every string that came from a plugin or a request goes through
//! [`esc`] (text and attribute values alike) and every URL through
//! [`safe_href`]; nothing a plugin returns is ever emitted as markup.

use std::collections::BTreeMap;
use std::fmt::Write;

use syshost_plugin_api::view::{
    Block, ButtonStyle, Cell, Field, FieldKind, Form, Image, Layout, Link, Table, Tone, View,
};

/// Escapes text for HTML text and (double- or single-quoted) attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `href` is a local path (one leading `/`, no backslash).
pub fn is_local_path(href: &str) -> bool {
    href.starts_with('/')
        && !href.starts_with("//")
        && !href.contains('\\')
        && !href.chars().any(char::is_control)
}

/// `href` if it is a local path, a fragment, or an `http(s)://`/`mailto:`
/// URL; `#` otherwise (so `javascript:` and friends never reach the page).
pub fn safe_href(href: &str) -> String {
    let h = href.trim();
    let lower = h.to_ascii_lowercase();
    let ok = is_local_path(h)
        || (h.starts_with('#') && !h.chars().any(char::is_control))
        || ((lower.starts_with("https://") || lower.starts_with("http://"))
            && !h.chars().any(|c| c.is_control() || c.is_whitespace()))
        || lower.starts_with("mailto:");
    if ok {
        h.to_string()
    } else {
        "#".to_string()
    }
}

/// Percent-encodes a query or path component.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string or urlencoded body into ordered pairs.
pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

/// Initials for an avatar: first letters of the first two words of the
/// name (or the email's local part), upper-cased.
pub fn initials(name: &str, email: &str) -> String {
    let source = if name.trim().is_empty() || name == email {
        email
            .split('@')
            .next()
            .unwrap_or("")
            .replace(['.', '_', '-'], " ")
    } else {
        name.to_string()
    };
    let letters: String = source
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if letters.is_empty() {
        "?".to_string()
    } else {
        letters
    }
}

/// One entry of a navigation list.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Text.
    pub label: String,
    /// Target.
    pub href: String,
    /// The current page.
    pub active: bool,
}

/// The signed-in user, for the account menu.
#[derive(Debug, Clone)]
pub struct Account {
    /// Display name.
    pub name: String,
    /// Login email.
    pub email: String,
    /// "Manage profile" target.
    pub profile_href: Option<String>,
    /// Whether a logout action exists.
    pub can_logout: bool,
}

/// Everything the frame needs besides the view.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Product name (brand and title suffix).
    pub site: String,
    /// The signed-in user, if any.
    pub account: Option<Account>,
    /// Top-bar links (for example the admin center).
    pub top: Vec<NavItem>,
    /// Side navigation (the account area's pages).
    pub side: Vec<NavItem>,
    /// Flash messages `(tone, text)` shown above the content.
    pub flashes: Vec<(Tone, String)>,
    /// The per-session CSRF token for forms (empty for anonymous visitors).
    pub csrf: String,
    /// The current path and query (forms come back here on errors).
    pub page: String,
}

/// Renders a whole page: the frame around `view`.
pub fn page(frame: &Frame, view: &View) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let title = if view.title.is_empty() {
        esc(&frame.site)
    } else {
        format!("{} · {}", esc(&view.title), esc(&frame.site))
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/ui/static/app.css\">\
         <script src=\"/ui/static/app.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>"
    );
    topbar(&mut h, frame);
    let layout = match view.layout {
        Layout::Normal => "normal",
        Layout::Narrow => "narrow",
        Layout::Wide => "wide",
    };
    let with_side = !frame.side.is_empty() && view.layout != Layout::Narrow;
    let _ = write!(
        h,
        "<div class=\"shell layout-{layout}{}\">",
        if with_side { " with-side" } else { "" }
    );
    if with_side {
        h.push_str("<nav class=\"side\" aria-label=\"Account\"><ul>");
        for item in &frame.side {
            nav_link(&mut h, item);
        }
        h.push_str("</ul></nav>");
    }
    h.push_str("<main id=\"main\" tabindex=\"-1\">");
    for (tone, text) in &frame.flashes {
        notice(&mut h, *tone, text, true);
    }
    if !view.breadcrumbs.is_empty() {
        h.push_str("<nav class=\"crumbs\" aria-label=\"Breadcrumb\">");
        for (i, link) in view.breadcrumbs.iter().enumerate() {
            if i > 0 {
                h.push_str("<span aria-hidden=\"true\"> › </span>");
            }
            let _ = write!(
                h,
                "<a href=\"{}\">{}</a>",
                esc(&safe_href(&link.href)),
                esc(&link.label)
            );
        }
        h.push_str("</nav>");
    }
    if !view.title.is_empty() {
        let _ = write!(h, "<h1>{}</h1>", esc(&view.title));
    }
    if !view.subtitle.is_empty() {
        let _ = write!(h, "<p class=\"subtitle\">{}</p>", esc(&view.subtitle));
    }
    let ctx = Ctx { frame };
    for block in &view.blocks {
        ctx.block(&mut h, block);
    }
    h.push_str("</main></div></body></html>");
    h
}

fn nav_link(h: &mut String, item: &NavItem) {
    let _ = write!(
        h,
        "<li><a href=\"{}\"{}>{}</a></li>",
        esc(&safe_href(&item.href)),
        if item.active {
            " aria-current=\"page\""
        } else {
            ""
        },
        esc(&item.label)
    );
}

fn topbar(h: &mut String, frame: &Frame) {
    let _ = write!(
        h,
        "<header class=\"topbar\"><a class=\"brand\" href=\"/ui\">{}</a><nav class=\"top\" aria-label=\"Main\"><ul>",
        esc(&frame.site)
    );
    for item in &frame.top {
        nav_link(h, item);
    }
    h.push_str("</ul></nav>");
    match &frame.account {
        Some(account) => {
            let initials = initials(&account.name, &account.email);
            let _ = write!(
                h,
                "<details class=\"account\"><summary aria-label=\"Account menu\"><span class=\"avatar\" aria-hidden=\"true\">{}</span></summary>\
                 <div class=\"account-panel\"><div class=\"avatar avatar-lg\" aria-hidden=\"true\">{}</div>\
                 <p class=\"account-name\">{}</p><p class=\"account-email\">{}</p>",
                esc(&initials),
                esc(&initials),
                esc(&account.name),
                esc(&account.email)
            );
            if let Some(href) = &account.profile_href {
                let _ = write!(
                    h,
                    "<a class=\"btn btn-secondary block\" href=\"{}\">Manage profile</a>",
                    esc(&safe_href(href))
                );
            }
            if account.can_logout {
                let _ = write!(
                    h,
                    "<form method=\"post\" action=\"/ui/logout\"><input type=\"hidden\" name=\"_csrf\" value=\"{}\">\
                     <button class=\"btn btn-link block\" type=\"submit\">Log out</button></form>",
                    esc(&frame.csrf)
                );
            }
            h.push_str("</div></details>");
        }
        None if frame.page.starts_with("/ui/login") => {}
        None => {
            h.push_str("<a class=\"btn btn-secondary\" href=\"/ui/login\">Log in</a>");
        }
    }
    h.push_str("</header>");
}

fn notice(h: &mut String, tone: Tone, text: &str, flash: bool) {
    let role = if matches!(tone, Tone::Danger | Tone::Warning) {
        "alert"
    } else {
        "status"
    };
    let _ = write!(
        h,
        "<div class=\"notice tone-{}{}\" role=\"{role}\">{}</div>",
        tone_name(tone),
        if flash { " flash" } else { "" },
        multiline(text)
    );
}

fn tone_name(tone: Tone) -> &'static str {
    match tone {
        Tone::Neutral => "neutral",
        Tone::Info => "info",
        Tone::Success => "success",
        Tone::Warning => "warning",
        Tone::Danger => "danger",
    }
}

fn button_class(style: ButtonStyle) -> &'static str {
    match style {
        ButtonStyle::Link => "btn btn-link",
        ButtonStyle::Secondary => "btn btn-secondary",
        ButtonStyle::Primary => "btn btn-primary",
        ButtonStyle::Danger => "btn btn-danger",
    }
}

/// Escaped text with line breaks as `<br>`.
fn multiline(text: &str) -> String {
    esc(text).replace('\n', "<br>")
}

/// A string for an `id` attribute: `[a-z0-9_-]`, everything else `-`.
fn dom_id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn link(h: &mut String, l: &Link) {
    let class = match l.style {
        ButtonStyle::Link => "link",
        other => button_class(other),
    };
    let _ = write!(
        h,
        "<a class=\"{class}\" href=\"{}\">{}</a>",
        esc(&safe_href(&l.href)),
        esc(&l.label)
    );
}

struct Ctx<'a> {
    frame: &'a Frame,
}

impl Ctx<'_> {
    fn block(&self, h: &mut String, block: &Block) {
        match block {
            Block::Heading { text, level } => {
                let level = level.unwrap_or(2).clamp(2, 4);
                let _ = write!(h, "<h{level}>{}</h{level}>", esc(text));
            }
            Block::Text { text, muted } => {
                let _ = write!(
                    h,
                    "<p{}>{}</p>",
                    if *muted { " class=\"muted\"" } else { "" },
                    multiline(text)
                );
            }
            Block::Notice { tone, text } => notice(h, *tone, text, false),
            Block::Links { links } => {
                h.push_str("<div class=\"links\">");
                for l in links {
                    link(h, l);
                }
                h.push_str("</div>");
            }
            Block::KeyValues { items } => {
                h.push_str("<dl class=\"kv\">");
                for kv in items {
                    let _ = write!(
                        h,
                        "<div><dt>{}</dt><dd>{}</dd></div>",
                        esc(&kv.key),
                        multiline(&kv.value)
                    );
                }
                h.push_str("</dl>");
            }
            Block::Tabs { tabs } => {
                h.push_str("<nav class=\"tabs\" aria-label=\"Tabs\"><ul>");
                for t in tabs {
                    let _ = write!(
                        h,
                        "<li><a href=\"{}\"{}>{}</a></li>",
                        esc(&safe_href(&t.href)),
                        if t.active {
                            " aria-current=\"page\" class=\"active\""
                        } else {
                            ""
                        },
                        esc(&t.label)
                    );
                }
                h.push_str("</ul></nav>");
            }
            Block::Table(table) => self.table(h, table),
            Block::Form(form) => self.form(h, form),
            Block::Section { title, blocks } => {
                h.push_str("<section class=\"card\">");
                if !title.is_empty() {
                    let _ = write!(h, "<h2>{}</h2>", esc(title));
                }
                for b in blocks {
                    self.block(h, b);
                }
                h.push_str("</section>");
            }
            Block::Details {
                summary,
                open,
                blocks,
            } => {
                let _ = write!(
                    h,
                    "<details class=\"disclosure\"{}><summary>{}</summary><div class=\"disclosure-body\">",
                    if *open { " open" } else { "" },
                    esc(summary)
                );
                for b in blocks {
                    self.block(h, b);
                }
                h.push_str("</div></details>");
            }
            Block::Image(image) => render_image(h, image),
            Block::Cards { cards } => {
                h.push_str("<div class=\"cards\">");
                for c in cards {
                    let action = if c.action.is_empty() {
                        "Open"
                    } else {
                        &c.action
                    };
                    let _ = write!(
                        h,
                        "<section class=\"card admin-card\"><h2>{}</h2><p>{}</p>\
                         <div class=\"card-foot\"><a class=\"btn btn-secondary\" href=\"{}\">{} <span class=\"sr-only\">{}</span></a></div></section>",
                        esc(&c.title),
                        multiline(&c.description),
                        esc(&safe_href(&c.href)),
                        esc(action),
                        esc(&c.title)
                    );
                }
                h.push_str("</div>");
            }
        }
    }

    fn table(&self, h: &mut String, table: &Table) {
        let id = if table.id.is_empty() {
            "table".to_string()
        } else {
            dom_id(&table.id)
        };
        let bulk_form = format!("bulk-{id}");
        let selectable = !table.bulk.is_empty() && table.rows.iter().any(|r| r.select.is_some());
        h.push_str("<div class=\"table-block\">");
        if let Some(search) = &table.search {
            let param = search.param.as_deref().unwrap_or("search");
            let _ = write!(
                h,
                "<form class=\"table-search\" method=\"get\" role=\"search\">\
                 <label class=\"sr-only\" for=\"{id}-search\">Search</label>\
                 <input id=\"{id}-search\" type=\"search\" name=\"{}\" value=\"{}\" placeholder=\"{}\">\
                 <button class=\"btn btn-secondary\" type=\"submit\">Search</button></form>",
                esc(param),
                esc(&search.value),
                esc(if search.placeholder.is_empty() {
                    "Search"
                } else {
                    &search.placeholder
                })
            );
        }
        if selectable {
            let select_name = table.select_name.as_deref().unwrap_or("ids");
            let (first_sys, first_op) = table.bulk[0].action.split_once('.').unwrap_or(("", ""));
            let _ = write!(
                h,
                "<form id=\"{bulk_form}\" class=\"bulk\" method=\"post\" action=\"/ui/do/{}/{}\">",
                esc(&url_encode(first_sys)),
                esc(&url_encode(first_op))
            );
            self.hidden_common(h, &format!("{id}-bulk"), None, None);
            let mut kinds = BTreeMap::new();
            kinds.insert(select_name.to_string(), "checkboxes");
            let _ = write!(
                h,
                "<input type=\"hidden\" name=\"_kinds\" value=\"{}\">",
                esc(&serde_json::to_string(&kinds).unwrap_or_default())
            );
            h.push_str("<div class=\"bulk-actions\"><span class=\"muted\">With selected:</span>");
            for (i, action) in table.bulk.iter().enumerate() {
                let (sys, op) = action.action.split_once('.').unwrap_or(("", ""));
                let mut extra = serde_json::Map::new();
                for (k, v) in &action.values {
                    extra.insert(k.clone(), v.clone());
                }
                let mut spec = serde_json::json!({ "values": extra });
                if let Some(d) = &action.download {
                    spec["download"] = serde_json::to_value(d).unwrap_or_default();
                }
                if let Some(s) = &action.success {
                    spec["success"] = serde_json::Value::String(s.clone());
                }
                let _ = write!(
                    h,
                    "<button class=\"{}\" type=\"submit\" name=\"_bulk\" value=\"{}\" formaction=\"/ui/do/{}/{}\"{} data-bulk=\"{i}\">{}</button>",
                    button_class(if action.style == ButtonStyle::Link {
                        ButtonStyle::Secondary
                    } else {
                        action.style
                    }),
                    esc(&spec.to_string()),
                    esc(&url_encode(sys)),
                    esc(&url_encode(op)),
                    action
                        .confirm
                        .as_ref()
                        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
                        .unwrap_or_default(),
                    esc(&action.label)
                );
            }
            h.push_str("</div></form>");
        }
        h.push_str("<div class=\"table-scroll\"><table><thead><tr>");
        if selectable {
            let _ = write!(
                h,
                "<th class=\"sel\"><input type=\"checkbox\" class=\"select-all\" data-form=\"{bulk_form}\" aria-label=\"Select all rows\" hidden></th>"
            );
        }
        for c in &table.columns {
            let _ = write!(h, "<th scope=\"col\">{}</th>", esc(&c.label));
        }
        let has_actions = table.rows.iter().any(|r| !r.actions.is_empty());
        if has_actions {
            h.push_str("<th scope=\"col\"><span class=\"sr-only\">Actions</span></th>");
        }
        h.push_str("</tr></thead><tbody>");
        if table.rows.is_empty() {
            let span = table.columns.len() + usize::from(selectable) + usize::from(has_actions);
            let _ = write!(
                h,
                "<tr><td class=\"empty\" colspan=\"{span}\">{}</td></tr>",
                esc(if table.empty.is_empty() {
                    "Nothing here yet."
                } else {
                    &table.empty
                })
            );
        }
        let select_name = table.select_name.as_deref().unwrap_or("ids");
        for row in &table.rows {
            h.push_str("<tr>");
            if selectable {
                match &row.select {
                    Some(v) => {
                        let label = row.cells.first().map(|c| c.text.as_str()).unwrap_or(v);
                        let _ = write!(
                            h,
                            "<td class=\"sel\"><input type=\"checkbox\" form=\"{bulk_form}\" name=\"{}\" value=\"{}\" aria-label=\"Select {}\"></td>",
                            esc(select_name),
                            esc(v),
                            esc(label)
                        );
                    }
                    None => h.push_str("<td class=\"sel\"></td>"),
                }
            }
            for (i, cell) in row.cells.iter().enumerate() {
                let href = if i == 0 && cell.href.is_none() {
                    row.href.as_deref()
                } else {
                    cell.href.as_deref()
                };
                h.push_str("<td>");
                render_cell(h, cell, href);
                h.push_str("</td>");
            }
            if has_actions {
                h.push_str("<td class=\"row-actions\">");
                for form in &row.actions {
                    self.form(h, form);
                }
                h.push_str("</td>");
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table></div>");
        if let Some(p) = &table.pager {
            self.pager(h, p.page, p.pages, p.total);
        }
        h.push_str("</div>");
    }

    fn pager(&self, h: &mut String, page: u64, pages: u64, total: u64) {
        // Keep the other query parameters of the current page.
        let (path, query) = self
            .frame
            .page
            .split_once('?')
            .unwrap_or((&self.frame.page, ""));
        let others: Vec<(String, String)> = parse_pairs(query)
            .into_iter()
            .filter(|(k, _)| k != "page")
            .collect();
        let href = |n: u64| {
            let mut q: Vec<String> = others
                .iter()
                .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
                .collect();
            q.push(format!("page={n}"));
            format!("{path}?{}", q.join("&"))
        };
        let _ = write!(
            h,
            "<nav class=\"pager\" aria-label=\"Pages\"><span class=\"muted\">{total} total · page {page} of {pages}</span>"
        );
        if page > 1 {
            let _ = write!(
                h,
                "<a class=\"btn btn-secondary\" rel=\"prev\" href=\"{}\">Previous</a>",
                esc(&href(page - 1))
            );
        }
        if page < pages {
            let _ = write!(
                h,
                "<a class=\"btn btn-secondary\" rel=\"next\" href=\"{}\">Next</a>",
                esc(&href(page + 1))
            );
        }
        h.push_str("</nav>");
    }

    /// The hidden fields every form carries.
    fn hidden_common(
        &self,
        h: &mut String,
        form_id: &str,
        next: Option<&str>,
        success: Option<&str>,
    ) {
        let _ = write!(
            h,
            "<input type=\"hidden\" name=\"_csrf\" value=\"{}\"><input type=\"hidden\" name=\"_form\" value=\"{}\">\
             <input type=\"hidden\" name=\"_page\" value=\"{}\">",
            esc(&self.frame.csrf),
            esc(form_id),
            esc(&self.frame.page)
        );
        if let Some(next) = next {
            let _ = write!(
                h,
                "<input type=\"hidden\" name=\"_next\" value=\"{}\">",
                esc(next)
            );
        }
        if let Some(s) = success {
            let _ = write!(
                h,
                "<input type=\"hidden\" name=\"_success\" value=\"{}\">",
                esc(s)
            );
        }
    }

    fn form(&self, h: &mut String, form: &Form) {
        let Some((sys, op)) = form.target() else {
            let _ = write!(
                h,
                "<div class=\"notice tone-danger\" role=\"alert\">This form names no valid operation ('{}').</div>",
                esc(&form.action)
            );
            return;
        };
        let multipart = form.fields.iter().any(|f| f.kind == FieldKind::File);
        let fid = dom_id(&form.id);
        let _ = write!(
            h,
            "<form class=\"form{}\" id=\"form-{fid}\" method=\"post\" action=\"/ui/do/{}/{}\"{}{}>",
            if form.inline { " inline" } else { "" },
            esc(sys),
            esc(op),
            if multipart {
                " enctype=\"multipart/form-data\""
            } else {
                ""
            },
            form.confirm
                .as_ref()
                .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
                .unwrap_or_default()
        );
        self.hidden_common(h, &form.id, form.next.as_deref(), form.success.as_deref());
        if let Some(d) = &form.download {
            let _ = write!(
                h,
                "<input type=\"hidden\" name=\"_download\" value=\"{}\">",
                esc(&serde_json::to_string(d).unwrap_or_default())
            );
        }
        let mut kinds = BTreeMap::new();
        for f in &form.fields {
            if f.readonly {
                continue;
            }
            let kind = match f.kind {
                FieldKind::Checkbox => "checkbox",
                FieldKind::Checkboxes => "checkboxes",
                FieldKind::Lines => "lines",
                FieldKind::File => "file",
                FieldKind::Number => "number",
                FieldKind::Hidden if !f.value.is_string() && !f.value.is_null() => "json",
                _ if f.omit_empty => "optional",
                _ => continue,
            };
            kinds.insert(f.name.clone(), kind);
        }
        if !kinds.is_empty() {
            let _ = write!(
                h,
                "<input type=\"hidden\" name=\"_kinds\" value=\"{}\">",
                esc(&serde_json::to_string(&kinds).unwrap_or_default())
            );
        }
        if let Some(err) = &form.error {
            notice(h, Tone::Danger, err, false);
        }
        for f in &form.fields {
            field(h, &fid, f);
        }
        let style = form.style.unwrap_or(if form.inline {
            ButtonStyle::Secondary
        } else {
            ButtonStyle::Primary
        });
        let _ = write!(
            h,
            "<div class=\"form-actions\"><button class=\"{}\" type=\"submit\">{}</button>",
            button_class(style),
            esc(if form.submit.is_empty() {
                "Save"
            } else {
                &form.submit
            })
        );
        for l in &form.links {
            link(h, l);
        }
        h.push_str("</div></form>");
    }
}

fn render_cell(h: &mut String, cell: &Cell, href: Option<&str>) {
    let text = if let Some(tone) = cell.badge {
        format!(
            "<span class=\"badge tone-{}\">{}</span>",
            tone_name(tone),
            esc(&cell.text)
        )
    } else if cell.muted {
        format!("<span class=\"muted\">{}</span>", esc(&cell.text))
    } else {
        esc(&cell.text)
    };
    match href {
        Some(href) => {
            let _ = write!(h, "<a href=\"{}\">{text}</a>", esc(&safe_href(href)));
        }
        None => h.push_str(&text),
    }
}

fn render_image(h: &mut String, image: &Image) {
    let allowed = ["image/png", "image/jpeg", "image/webp", "image/gif"];
    let ct = image.content_type.trim().to_ascii_lowercase();
    let b64_ok = !image.data.is_empty()
        && image
            .data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !allowed.contains(&ct.as_str()) || !b64_ok {
        return;
    }
    let size = image.size.unwrap_or(96).clamp(16, 1024);
    let _ = write!(
        h,
        "<img class=\"image{}\" src=\"data:{ct};base64,{}\" alt=\"{}\" width=\"{size}\" height=\"{size}\">",
        if image.round { " round" } else { "" },
        image.data,
        esc(&image.alt)
    );
}

/// The value of a field as text for an input.
fn text_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(text_value).collect::<Vec<_>>().join("\n")
        }
        other => other.to_string(),
    }
}

fn selected_values(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(items) => items.iter().map(text_value).collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![text_value(other)],
    }
}

fn field(h: &mut String, form_id: &str, f: &Field) {
    let id = format!("f-{form_id}-{}", dom_id(&f.name));
    let name_attr = if f.readonly {
        String::new()
    } else {
        format!(" name=\"{}\"", esc(&f.name))
    };
    let ro = if f.readonly { " disabled" } else { "" };
    let req = if f.required && !f.readonly {
        " required"
    } else {
        ""
    };
    let described = if f.help.is_empty() && f.error.is_none() {
        String::new()
    } else {
        format!(" aria-describedby=\"{id}-help\"")
    };
    let invalid = if f.error.is_some() {
        " aria-invalid=\"true\""
    } else {
        ""
    };
    let label = |h: &mut String| {
        let _ = write!(
            h,
            "<label for=\"{id}\">{}{}</label>",
            esc(&f.label),
            if f.required {
                " <span class=\"req\" aria-hidden=\"true\">*</span>"
            } else {
                ""
            }
        );
    };
    let help = |h: &mut String| {
        if f.help.is_empty() && f.error.is_none() {
            return;
        }
        let _ = write!(h, "<div id=\"{id}-help\">");
        if let Some(e) = &f.error {
            let _ = write!(h, "<p class=\"field-error\">{}</p>", esc(e));
        }
        if !f.help.is_empty() {
            let _ = write!(h, "<p class=\"help\">{}</p>", multiline(&f.help));
        }
        h.push_str("</div>");
    };
    let common = format!(
        "{name_attr}{ro}{req}{described}{invalid}{}{}",
        if f.placeholder.is_empty() {
            String::new()
        } else {
            format!(" placeholder=\"{}\"", esc(&f.placeholder))
        },
        f.autocomplete
            .as_ref()
            .map(|a| format!(" autocomplete=\"{}\"", esc(a)))
            .unwrap_or_default()
    );
    match f.kind {
        FieldKind::Hidden => {
            if !f.readonly {
                let _ = write!(
                    h,
                    "<input type=\"hidden\"{name_attr} value=\"{}\">",
                    esc(&match &f.value {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    })
                );
            }
        }
        FieldKind::Text
        | FieldKind::Email
        | FieldKind::Password
        | FieldKind::NewPassword
        | FieldKind::Number
        | FieldKind::Date
        | FieldKind::File => {
            let ty = match f.kind {
                FieldKind::Email => "email",
                FieldKind::Password | FieldKind::NewPassword => "password",
                FieldKind::Number => "number",
                FieldKind::Date => "date",
                FieldKind::File => "file",
                _ => "text",
            };
            let value = if f.is_secret() || f.kind == FieldKind::File {
                String::new()
            } else {
                format!(" value=\"{}\"", esc(&text_value(&f.value)))
            };
            let accept = f
                .accept
                .as_ref()
                .map(|a| format!(" accept=\"{}\"", esc(a)))
                .unwrap_or_default();
            h.push_str("<div class=\"field\">");
            label(h);
            let _ = write!(
                h,
                "<input id=\"{id}\" type=\"{ty}\"{value}{accept}{common}{}>",
                if f.kind == FieldKind::NewPassword {
                    " class=\"new-password\""
                } else {
                    ""
                }
            );
            if let (FieldKind::NewPassword, Some(rules)) = (f.kind, &f.rules) {
                let _ = write!(
                    h,
                    "<ul class=\"pw-rules\" data-for=\"{id}\" aria-live=\"polite\">"
                );
                let mut rule = |key: &str, text: String| {
                    let _ = write!(h, "<li data-rule=\"{}\">{}</li>", esc(key), esc(&text));
                };
                if rules.min_length > 0 {
                    rule(
                        &format!("min:{}", rules.min_length),
                        format!("At least {} characters", rules.min_length),
                    );
                }
                if rules.lowercase {
                    rule("lower", "A lower-case letter".into());
                }
                if rules.uppercase {
                    rule("upper", "An upper-case letter".into());
                }
                if rules.digit {
                    rule("digit", "A digit".into());
                }
                if rules.symbol {
                    rule("symbol", "A symbol (not a letter or digit)".into());
                }
                h.push_str("</ul>");
            }
            help(h);
            h.push_str("</div>");
        }
        FieldKind::Textarea | FieldKind::Lines => {
            h.push_str("<div class=\"field\">");
            label(h);
            let _ = write!(
                h,
                "<textarea id=\"{id}\" rows=\"{}\"{common}>{}</textarea>",
                if f.kind == FieldKind::Lines { 5 } else { 4 },
                esc(&text_value(&f.value))
            );
            help(h);
            h.push_str("</div>");
        }
        FieldKind::Checkbox => {
            let checked = matches!(f.value, serde_json::Value::Bool(true))
                || f.value.as_str() == Some("true");
            let _ = write!(
                h,
                "<div class=\"field check\"><input id=\"{id}\" type=\"checkbox\" value=\"true\"{}{common}>",
                if checked { " checked" } else { "" }
            );
            label(h);
            help(h);
            h.push_str("</div>");
        }
        FieldKind::Select => {
            let current = text_value(&f.value);
            h.push_str("<div class=\"field\">");
            label(h);
            let _ = write!(h, "<select id=\"{id}\"{common}>");
            let mut group = "";
            let mut open_group = false;
            for c in &f.options {
                if c.group != group {
                    if open_group {
                        h.push_str("</optgroup>");
                    }
                    group = &c.group;
                    open_group = !group.is_empty();
                    if open_group {
                        let _ = write!(h, "<optgroup label=\"{}\">", esc(group));
                    }
                }
                let _ = write!(
                    h,
                    "<option value=\"{}\"{}{}>{}</option>",
                    esc(&c.value),
                    if c.value == current { " selected" } else { "" },
                    if c.disabled { " disabled" } else { "" },
                    esc(&c.label)
                );
            }
            if open_group {
                h.push_str("</optgroup>");
            }
            h.push_str("</select>");
            help(h);
            h.push_str("</div>");
        }
        FieldKind::Radio | FieldKind::Checkboxes => {
            let is_radio = f.kind == FieldKind::Radio;
            let selected = selected_values(&f.value);
            let _ = write!(
                h,
                "<fieldset class=\"field choices{}\" id=\"{id}\"{described}><legend>{}{}</legend>",
                if f.searchable && !is_radio {
                    " checklist"
                } else {
                    ""
                },
                esc(&f.label),
                if f.required {
                    " <span class=\"req\" aria-hidden=\"true\">*</span>"
                } else {
                    ""
                }
            );
            if f.searchable && !is_radio {
                let _ = write!(
                    h,
                    "<div class=\"checklist-tools\" hidden><input type=\"search\" class=\"checklist-filter\" placeholder=\"Filter\" aria-label=\"Filter {}\">\
                     <label class=\"choice\"><input type=\"checkbox\" class=\"checklist-all\"> Select all shown</label></div>",
                    esc(&f.label)
                );
            }
            h.push_str("<div class=\"choice-list\">");
            let mut group = "";
            for (i, c) in f.options.iter().enumerate() {
                if c.group != group {
                    group = &c.group;
                    if !group.is_empty() {
                        let _ = write!(h, "<p class=\"choice-group\">{}</p>", esc(group));
                    }
                }
                let checked = selected.iter().any(|s| s == &c.value);
                let _ = write!(
                    h,
                    "<label class=\"choice\" for=\"{id}-{i}\"><input id=\"{id}-{i}\" type=\"{}\"{name_attr} value=\"{}\"{}{}{}> <span>{}",
                    if is_radio { "radio" } else { "checkbox" },
                    esc(&c.value),
                    if checked { " checked" } else { "" },
                    if c.disabled || f.readonly { " disabled" } else { "" },
                    if is_radio && f.required { " required" } else { "" },
                    esc(&c.label)
                );
                if !c.description.is_empty() {
                    let _ = write!(h, " <small class=\"muted\">{}</small>", esc(&c.description));
                }
                h.push_str("</span></label>");
            }
            h.push_str("</div>");
            help(h);
            h.push_str("</fieldset>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syshost_plugin_api::view::{Choice, Row};

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn unsafe_links_become_fragments() {
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,x",
            "//evil.example/x",
            "/\\evil.example",
            "vbscript:x",
        ] {
            assert_eq!(safe_href(bad), "#", "{bad}");
        }
        for ok in ["/ui/a?b=c", "#top", "https://example.org/x", "mailto:a@b.c"] {
            assert_eq!(safe_href(ok), ok);
        }
    }

    #[test]
    fn a_hostile_view_renders_inert() {
        let evil = "<img src=x onerror=alert(1)>\"'";
        let view = View::new(evil)
            .push(Block::text(evil))
            .push(Block::links(vec![Link::new(evil, "javascript:alert(1)")]))
            .push(
                Table::new([evil])
                    .row(Row::new([evil]).href("javascript:x").select(evil))
                    .bulk(syshost_plugin_api::view::BulkAction {
                        label: evil.into(),
                        action: "a.b".into(),
                        ..Default::default()
                    }),
            )
            .push(
                Form::new(evil, "a.b")
                    .field(Field::text(evil, evil).value(evil).help(evil))
                    .field(
                        Field::checkboxes("c", evil, vec![Choice::new(evil, evil)], &[])
                            .searchable(),
                    ),
            );
        let html = page(&Frame::default(), &view);
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("onerror=alert(1)>"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;"));
    }

    #[test]
    fn passwords_are_never_echoed() {
        let form = Form::new("f", "a.b").field(Field::password("pw", "Password").value("secret"));
        let html = page(&Frame::default(), &View::new("x").push(form));
        assert!(!html.contains("secret"));
    }

    #[test]
    fn initials_from_names_and_emails() {
        assert_eq!(initials("Ada Lovelace", "ada@x.org"), "AL");
        assert_eq!(initials("", "grace.hopper@x.org"), "GH");
        assert_eq!(initials("x@y.z", "x@y.z"), "X");
        assert_eq!(initials("", ""), "?");
    }

    #[test]
    fn url_coding_round_trips() {
        let text = "a b&c=d/é+%";
        assert_eq!(url_decode(&url_encode(text)), text);
        assert_eq!(
            parse_pairs("a=1&b=x+y&c=%ZZ&d"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "%ZZ".into()),
                ("d".into(), "".into())
            ]
        );
    }
}
