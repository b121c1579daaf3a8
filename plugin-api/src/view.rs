//! The web contract: pages a plugin contributes, described as data.
//!
//! A plugin never emits HTML. It declares pages in its manifest
//! ([`PageDecl`], via [`Manifest::page`](crate::Manifest::page)) and serves
//! each with an ordinary operation that takes a [`PageRequest`] and returns
//! a [`View`] (add it with [`Operations::page`](crate::Operations::page)).
//! The host renders the view inside its frame (layout, navigation, account
//! menu), **escapes every string**, and turns every form into a call of an
//! ordinary operation through the same authorization as the HTTP API. So a
//! page can only show what its operation returned to the caller, and a form
//! can only do what the caller may do through the API.
//!
//! ```
//! use syshost_plugin_api::view::{Block, Field, Form, PageRequest, View};
//!
//! fn profile_page(req: PageRequest) -> View {
//!     View::new("My profile")
//!         .push(Block::text("Your contact details."))
//!         .push(
//!             Form::new("profile", "user.update_my_contact")
//!                 .field(Field::text("profile.first_name", "First name").value("Ada"))
//!                 .field(Field::text("profile.city", "City"))
//!                 .submit("Save")
//!                 .success("Profile saved."),
//!         )
//! }
//! # let _ = profile_page(PageRequest::default());
//! ```
//!
//! Everything here is JSON with serde defaults, so the contract can grow
//! without breaking plugins built against an older version.
//!
//! ## Links
//! Every `href` is a local path (`/ui/...`, starting with one `/`), a
//! fragment (`#...`), or an `http(s)://` / `mailto:` URL; the host renders
//! anything else as `#`. Row links and `next` targets may contain
//! `{field}` placeholders (see [`Form::next`]).
//!
//! ## Form fields and the request JSON
//! The host builds the operation's request from the submitted fields: a
//! dotted name (`profile.phone`) builds nested objects; values are coerced
//! by the operation's request JSON Schema (numbers, booleans, arrays) and by
//! the field's [`FieldKind`] (an unchecked checkbox is `false`, an empty
//! checkbox list `[]`, [`FieldKind::Lines`] one string per line, a
//! [`FieldKind::File`] becomes base64 text plus a sibling `content_type`
//! when the schema has one; a blank [`Field::omit_empty`] field is left
//! out). Names starting with `_` are reserved for the host and never reach
//! an operation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a page lives and who reaches it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Reachable without a session (login, registration, resets).
    Public,
    /// Self-service pages of the signed-in user (listed in the account
    /// navigation). Anonymous visitors are sent to the login page.
    #[default]
    Account,
    /// Admin-center pages. Anonymous visitors are sent to the login page.
    Admin,
}

/// An admin-center card linking to a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Card {
    /// Card heading, for example `Users`.
    pub title: String,
    /// One or two sentences on what the page manages.
    #[serde(default)]
    pub description: String,
    /// The card is shown only to subjects holding this permission
    /// (`None`: to every signed-in user).
    #[serde(default)]
    pub permission: Option<String>,
}

/// A page a plugin contributes, declared in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PageDecl {
    /// Path under `/ui/`, for example `admin/roles`, `account/profile` or
    /// `login`: segments of `[a-z0-9_-]`, separated by `/`. A request for a
    /// longer path (`/ui/admin/roles/r_1`) is served by the page with the
    /// longest matching path; the rest (`r_1`) is [`PageRequest::rest`].
    pub path: String,
    /// Title shown in navigation and the browser tab.
    pub title: String,
    /// The operation of the same plugin that renders it: takes a
    /// [`PageRequest`], returns a [`View`]. Its declared access decides who
    /// may see the page.
    pub operation: String,
    /// Public, account (self-service) or admin.
    #[serde(default)]
    pub area: Area,
    /// An admin-center card for this page.
    #[serde(default)]
    pub card: Option<Card>,
    /// Listed in its area's navigation.
    #[serde(default)]
    pub nav: bool,
    /// Sort key within the navigation and the admin center (then title).
    #[serde(default)]
    pub order: i32,
}

impl PageDecl {
    /// A page at `path` titled `title`, rendered by `operation`
    /// (area [`Area::Account`], no card, not in navigation).
    pub fn new(
        path: impl Into<String>,
        title: impl Into<String>,
        operation: impl Into<String>,
    ) -> Self {
        PageDecl {
            path: path.into(),
            title: title.into(),
            operation: operation.into(),
            area: Area::Account,
            card: None,
            nav: false,
            order: 0,
        }
    }

    /// Sets the area.
    pub fn area(mut self, area: Area) -> Self {
        self.area = area;
        self
    }

    /// Adds an admin-center card shown to holders of `permission`.
    pub fn card(
        mut self,
        title: impl Into<String>,
        description: impl Into<String>,
        permission: Option<&str>,
    ) -> Self {
        self.card = Some(Card {
            title: title.into(),
            description: description.into(),
            permission: permission.map(str::to_string),
        });
        self
    }

    /// Lists the page in its area's navigation.
    pub fn nav(mut self) -> Self {
        self.nav = true;
        self
    }

    /// Sets the sort key within navigation and the admin center.
    pub fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// Whether `path` is a well-formed page path (`[a-z0-9_-]` segments
    /// separated by single `/`, no leading or trailing `/`, at most 200 bytes).
    pub fn is_valid_path(path: &str) -> bool {
        !path.is_empty()
            && path.len() <= 200
            && path.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
            })
    }
}

/// The request a page operation receives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// The path after the page's own path, without the leading `/`
    /// (`r_1` for `/ui/admin/roles/r_1` on page `admin/roles`); empty when
    /// the page itself was requested.
    #[serde(default)]
    pub rest: String,
    /// The URL query parameters (first value of each).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

impl PageRequest {
    /// A query parameter, if present and not blank.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// The 1-based page number from the `page` parameter (1 when absent or bad).
    pub fn page_number(&self) -> u64 {
        self.param("page")
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1)
    }
}

/// How the host lays a view out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// The normal page width.
    #[default]
    Normal,
    /// A narrow centered column (login, registration).
    Narrow,
    /// The full width (wide tables).
    Wide,
}

/// A page: a title and blocks, rendered by the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct View {
    /// The page heading and browser-tab title.
    pub title: String,
    /// A line under the title.
    #[serde(default)]
    pub subtitle: String,
    /// Links shown above the title (for example back to a list).
    #[serde(default)]
    pub breadcrumbs: Vec<Link>,
    /// The content, top to bottom.
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// Page width.
    #[serde(default)]
    pub layout: Layout,
}

impl View {
    /// An empty view titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        View {
            title: title.into(),
            ..Default::default()
        }
    }

    /// Appends a block (anything convertible into one: a [`Form`], a
    /// [`Table`], or a [`Block`]).
    pub fn push(mut self, block: impl Into<Block>) -> Self {
        self.blocks.push(block.into());
        self
    }

    /// Sets the subtitle.
    pub fn subtitle(mut self, text: impl Into<String>) -> Self {
        self.subtitle = text.into();
        self
    }

    /// Adds a breadcrumb link.
    pub fn breadcrumb(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.breadcrumbs.push(Link::new(label, href));
        self
    }

    /// Sets the layout.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Every form in the view, depth first (including forms inside
    /// sections, details and table rows).
    pub fn forms_mut(&mut self) -> Vec<&mut Form> {
        let mut out = Vec::new();
        for block in &mut self.blocks {
            block.collect_forms(&mut out);
        }
        out
    }
}

/// Colour/meaning of a notice, badge or button.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// Neutral.
    #[default]
    Neutral,
    /// Informational.
    Info,
    /// Something worked.
    Success,
    /// Needs attention.
    Warning,
    /// Failed or destructive.
    Danger,
}

/// How a link or button looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    /// A plain text link.
    #[default]
    Link,
    /// A secondary (outlined) button.
    Secondary,
    /// The main action.
    Primary,
    /// A destructive action.
    Danger,
}

/// A link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Link {
    /// Visible text.
    pub label: String,
    /// Target (see the module docs for what is allowed).
    pub href: String,
    /// Look.
    #[serde(default)]
    pub style: ButtonStyle,
}

impl Link {
    /// A plain link.
    pub fn new(label: impl Into<String>, href: impl Into<String>) -> Self {
        Link {
            label: label.into(),
            href: href.into(),
            style: ButtonStyle::Link,
        }
    }

    /// Sets the look.
    pub fn style(mut self, style: ButtonStyle) -> Self {
        self.style = style;
        self
    }
}

/// One key/value line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyValue {
    /// The label.
    pub key: String,
    /// The value (plain text).
    pub value: String,
}

/// One tab of a tab bar (each tab is a link to a page or query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tab {
    /// Visible text.
    pub label: String,
    /// Target.
    pub href: String,
    /// The tab being shown.
    #[serde(default)]
    pub active: bool,
}

/// An image given inline (for example an avatar).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Image {
    /// Text alternative.
    pub alt: String,
    /// `image/png`, `image/jpeg`, `image/webp` or `image/gif`; anything
    /// else is not shown.
    pub content_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub data: String,
    /// Displayed width and height in CSS pixels (default 96).
    #[serde(default)]
    pub size: Option<u32>,
    /// Show as a circle (avatars).
    #[serde(default)]
    pub round: bool,
}

/// A content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// A heading (`level` 2–4; default 2).
    Heading {
        /// The text.
        text: String,
        /// 2, 3 or 4.
        #[serde(default)]
        level: Option<u8>,
    },
    /// A paragraph of plain text (line breaks kept).
    Text {
        /// The text.
        text: String,
        /// Smaller, muted text.
        #[serde(default)]
        muted: bool,
    },
    /// A highlighted message.
    Notice {
        /// Meaning.
        tone: Tone,
        /// The message.
        text: String,
    },
    /// A row of links or link buttons.
    Links {
        /// The links.
        links: Vec<Link>,
    },
    /// A list of labelled values.
    KeyValues {
        /// The lines.
        items: Vec<KeyValue>,
    },
    /// A tab bar.
    Tabs {
        /// The tabs.
        tabs: Vec<Tab>,
    },
    /// A table.
    Table(Table),
    /// A form.
    Form(Form),
    /// A card-like group of blocks with an optional heading.
    Section {
        /// Heading (empty: none).
        #[serde(default)]
        title: String,
        /// The content.
        blocks: Vec<Block>,
    },
    /// A collapsible group ("Add user" dialogs, confirmations).
    Details {
        /// The always-visible summary line.
        summary: String,
        /// Shown expanded initially.
        #[serde(default)]
        open: bool,
        /// The content.
        blocks: Vec<Block>,
    },
    /// An inline image.
    Image(Image),
    /// Admin-center style cards, each linking somewhere.
    Cards {
        /// The cards.
        cards: Vec<CardLink>,
    },
}

/// A card of a [`Block::Cards`] grid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CardLink {
    /// Heading.
    pub title: String,
    /// Body text.
    #[serde(default)]
    pub description: String,
    /// Target of the card's button.
    pub href: String,
    /// Button text (default "Open").
    #[serde(default)]
    pub action: String,
}

impl Block {
    /// A level-2 heading.
    pub fn heading(text: impl Into<String>) -> Self {
        Block::Heading {
            text: text.into(),
            level: None,
        }
    }

    /// A paragraph.
    pub fn text(text: impl Into<String>) -> Self {
        Block::Text {
            text: text.into(),
            muted: false,
        }
    }

    /// A muted (secondary) paragraph.
    pub fn muted(text: impl Into<String>) -> Self {
        Block::Text {
            text: text.into(),
            muted: true,
        }
    }

    /// A notice.
    pub fn notice(tone: Tone, text: impl Into<String>) -> Self {
        Block::Notice {
            tone,
            text: text.into(),
        }
    }

    /// A row of links.
    pub fn links(links: Vec<Link>) -> Self {
        Block::Links { links }
    }

    /// Labelled values from `(key, value)` pairs.
    pub fn key_values<K: Into<String>, V: Into<String>>(
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Block::KeyValues {
            items: items
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k.into(),
                    value: v.into(),
                })
                .collect(),
        }
    }

    /// A tab bar from `(label, href, active)` triples.
    pub fn tabs<L: Into<String>, H: Into<String>>(
        tabs: impl IntoIterator<Item = (L, H, bool)>,
    ) -> Self {
        Block::Tabs {
            tabs: tabs
                .into_iter()
                .map(|(label, href, active)| Tab {
                    label: label.into(),
                    href: href.into(),
                    active,
                })
                .collect(),
        }
    }

    /// A card-like section.
    pub fn section(title: impl Into<String>, blocks: Vec<Block>) -> Self {
        Block::Section {
            title: title.into(),
            blocks,
        }
    }

    /// A collapsible group.
    pub fn details(summary: impl Into<String>, open: bool, blocks: Vec<Block>) -> Self {
        Block::Details {
            summary: summary.into(),
            open,
            blocks,
        }
    }

    fn collect_forms<'a>(&'a mut self, out: &mut Vec<&'a mut Form>) {
        match self {
            Block::Form(form) => out.push(form),
            Block::Section { blocks, .. } | Block::Details { blocks, .. } => {
                for b in blocks {
                    b.collect_forms(out);
                }
            }
            Block::Table(table) => {
                for row in &mut table.rows {
                    out.extend(row.actions.iter_mut());
                }
            }
            _ => {}
        }
    }
}

impl From<Form> for Block {
    fn from(form: Form) -> Self {
        Block::Form(form)
    }
}

impl From<Table> for Block {
    fn from(table: Table) -> Self {
        Block::Table(table)
    }
}

impl From<Image> for Block {
    fn from(image: Image) -> Self {
        Block::Image(image)
    }
}

/// A table column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    /// Header text.
    pub label: String,
}

/// A table cell: text, optionally a link or a badge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cell {
    /// The text.
    pub text: String,
    /// Makes the text a link.
    #[serde(default)]
    pub href: Option<String>,
    /// Shows the text as a badge of this tone.
    #[serde(default)]
    pub badge: Option<Tone>,
    /// Smaller, muted text.
    #[serde(default)]
    pub muted: bool,
}

impl Cell {
    /// A plain text cell.
    pub fn new(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            ..Default::default()
        }
    }

    /// A linked cell.
    pub fn link(text: impl Into<String>, href: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            href: Some(href.into()),
            ..Default::default()
        }
    }

    /// A badge cell.
    pub fn badge(text: impl Into<String>, tone: Tone) -> Self {
        Cell {
            text: text.into(),
            badge: Some(tone),
            ..Default::default()
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::new(text)
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::new(text)
    }
}

/// A table row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    /// One cell per column.
    pub cells: Vec<Cell>,
    /// Where clicking the row's first cell goes (rendered as a link there).
    #[serde(default)]
    pub href: Option<String>,
    /// The value this row contributes to a bulk action when its checkbox is
    /// ticked (usually the record id); `None`: no checkbox.
    #[serde(default)]
    pub select: Option<String>,
    /// Per-row buttons, each a small form (for example "Revoke").
    #[serde(default)]
    pub actions: Vec<Form>,
}

impl Row {
    /// A row of cells.
    pub fn new<C: Into<Cell>>(cells: impl IntoIterator<Item = C>) -> Self {
        Row {
            cells: cells.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Links the row.
    pub fn href(mut self, href: impl Into<String>) -> Self {
        self.href = Some(href.into());
        self
    }

    /// Gives the row a bulk-select checkbox with `value`.
    pub fn select(mut self, value: impl Into<String>) -> Self {
        self.select = Some(value.into());
        self
    }

    /// Adds a per-row action.
    pub fn action(mut self, form: Form) -> Self {
        self.actions.push(form);
        self
    }
}

/// An action applied to the selected rows of a table: submits
/// `{<table.select_name>: [selected values], ..values}` to `action`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkAction {
    /// Button text.
    pub label: String,
    /// `<system>.<operation>`.
    pub action: String,
    /// Extra request fields sent with the selection.
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    /// Look.
    #[serde(default)]
    pub style: ButtonStyle,
    /// Ask this question before submitting (a confirmation step).
    #[serde(default)]
    pub confirm: Option<String>,
    /// Serve the response as a file instead of redirecting.
    #[serde(default)]
    pub download: Option<Download>,
    /// Flash message on success.
    #[serde(default)]
    pub success: Option<String>,
}

/// A search box above a table: a GET form that reloads the page with
/// `param=<text>` (and page 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Search {
    /// The query parameter (default `search`).
    #[serde(default)]
    pub param: Option<String>,
    /// The current text.
    #[serde(default)]
    pub value: String,
    /// Placeholder text.
    #[serde(default)]
    pub placeholder: String,
}

/// Paging under a table: links to `?page=N` (other query parameters kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pager {
    /// The current page, 1-based.
    pub page: u64,
    /// Number of pages (at least 1).
    pub pages: u64,
    /// Number of matching records.
    pub total: u64,
}

impl Pager {
    /// The pager for `total` records at `per_page` a page, on `page`.
    pub fn new(page: u64, per_page: u64, total: u64) -> Self {
        let per_page = per_page.max(1);
        let pages = total.div_ceil(per_page).max(1);
        Pager {
            page: page.clamp(1, pages),
            pages,
            total,
        }
    }

    /// The offset of the current page's first record.
    pub fn offset(&self, per_page: u64) -> u64 {
        (self.page - 1) * per_page
    }
}

/// The default page size of admin tables.
pub const PAGE_SIZE: u64 = 50;

/// A table with optional search, paging, bulk selection and row actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Table {
    /// Unique within the view (names the bulk form); default `table`.
    #[serde(default)]
    pub id: String,
    /// Header cells.
    pub columns: Vec<Column>,
    /// The rows.
    #[serde(default)]
    pub rows: Vec<Row>,
    /// Text shown when there are no rows.
    #[serde(default)]
    pub empty: String,
    /// A search box.
    #[serde(default)]
    pub search: Option<Search>,
    /// Paging links.
    #[serde(default)]
    pub pager: Option<Pager>,
    /// Actions on the selected rows.
    #[serde(default)]
    pub bulk: Vec<BulkAction>,
    /// The request field the selected values go to (default `ids`).
    #[serde(default)]
    pub select_name: Option<String>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Table {
            columns: columns
                .into_iter()
                .map(|label| Column {
                    label: label.into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Sets the id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Adds a row.
    pub fn row(mut self, row: Row) -> Self {
        self.rows.push(row);
        self
    }

    /// Sets the empty-table text.
    pub fn empty(mut self, text: impl Into<String>) -> Self {
        self.empty = text.into();
        self
    }

    /// Adds a search box with the current `value`.
    pub fn search(mut self, value: impl Into<String>, placeholder: impl Into<String>) -> Self {
        self.search = Some(Search {
            param: None,
            value: value.into(),
            placeholder: placeholder.into(),
        });
        self
    }

    /// Adds paging.
    pub fn pager(mut self, pager: Pager) -> Self {
        self.pager = Some(pager);
        self
    }

    /// Adds a bulk action.
    pub fn bulk(mut self, action: BulkAction) -> Self {
        self.bulk.push(action);
        self
    }
}

/// Serve an operation's response as a file download.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Download {
    /// The file name offered to the browser (`[A-Za-z0-9._-]`, else `download`).
    pub filename: String,
    /// The content type: `application/json` (default), `text/csv` or `text/plain`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Serve this top-level string field of the response (for example the
    /// `content` of a CSV export) instead of the whole JSON response.
    #[serde(default)]
    pub field: Option<String>,
}

/// A form that calls one operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Form {
    /// Unique within the view (used to re-show it with the error after a
    /// failed submission).
    pub id: String,
    /// The operation to call: `<system>.<operation>`.
    pub action: String,
    /// The fields.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Submit-button text (default "Save").
    #[serde(default)]
    pub submit: String,
    /// Submit-button look (default primary).
    #[serde(default)]
    pub style: Option<ButtonStyle>,
    /// Ask this question before submitting (a confirm dialog with
    /// JavaScript; without it the form submits directly, so put
    /// destructive forms inside a [`Block::Details`] as a confirmation step).
    #[serde(default)]
    pub confirm: Option<String>,
    /// Where to go on success: a local path; `{field}` placeholders are
    /// filled from the top-level fields of the JSON response
    /// (`/ui/admin/roles/{id}`). Default: back to the page.
    #[serde(default)]
    pub next: Option<String>,
    /// Flash message shown after success.
    #[serde(default)]
    pub success: Option<String>,
    /// Serve the response as a file instead of redirecting.
    #[serde(default)]
    pub download: Option<Download>,
    /// An error shown above the fields (the host sets it when re-showing a
    /// failed submission).
    #[serde(default)]
    pub error: Option<String>,
    /// Render the submit button only, inline (row actions, "Log out").
    #[serde(default)]
    pub inline: bool,
    /// Extra links shown next to the submit button (for example "Forgot password?").
    #[serde(default)]
    pub links: Vec<Link>,
}

impl Form {
    /// A form `id` calling `action` (`<system>.<operation>`).
    pub fn new(id: impl Into<String>, action: impl Into<String>) -> Self {
        Form {
            id: id.into(),
            action: action.into(),
            ..Default::default()
        }
    }

    /// A one-click button calling `action` with hidden `values`.
    pub fn button(
        id: impl Into<String>,
        action: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Form {
            id: id.into(),
            action: action.into(),
            submit: label.into(),
            inline: true,
            style: Some(ButtonStyle::Secondary),
            ..Default::default()
        }
    }

    /// Adds a field.
    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// Adds a hidden field with a JSON value.
    pub fn hidden(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.fields.push(Field::hidden(name, value));
        self
    }

    /// Sets the submit-button text.
    pub fn submit(mut self, label: impl Into<String>) -> Self {
        self.submit = label.into();
        self
    }

    /// Sets the submit-button look.
    pub fn style(mut self, style: ButtonStyle) -> Self {
        self.style = Some(style);
        self
    }

    /// Asks `question` before submitting.
    pub fn confirm(mut self, question: impl Into<String>) -> Self {
        self.confirm = Some(question.into());
        self
    }

    /// Where to go on success (see [`Form::next`] field docs).
    pub fn next(mut self, next: impl Into<String>) -> Self {
        self.next = Some(next.into());
        self
    }

    /// Flash message on success.
    pub fn success(mut self, message: impl Into<String>) -> Self {
        self.success = Some(message.into());
        self
    }

    /// Serves the response as a download.
    pub fn download(mut self, download: Download) -> Self {
        self.download = Some(download);
        self
    }

    /// Adds a link next to the submit button.
    pub fn link(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.links.push(Link::new(label, href));
        self
    }

    /// The `(system, operation)` pair of [`Form::action`], if well-formed.
    pub fn target(&self) -> Option<(&str, &str)> {
        split_action(&self.action)
    }
}

/// Splits `<system>.<operation>` into its parts.
pub fn split_action(action: &str) -> Option<(&str, &str)> {
    let (system, op) = action.split_once('.')?;
    (crate::is_valid_ident(system) && crate::is_valid_ident(op)).then_some((system, op))
}

/// The kind of input a field renders as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// One line of text.
    #[default]
    Text,
    /// An email address.
    Email,
    /// An existing password (never re-shown).
    Password,
    /// A new password, with live feedback on [`Field::rules`] (never re-shown).
    NewPassword,
    /// A number.
    Number,
    /// A date (`YYYY-MM-DD` string).
    Date,
    /// A single checkbox → `true`/`false`.
    Checkbox,
    /// A drop-down of [`Field::options`] → the chosen value.
    Select,
    /// Radio buttons of [`Field::options`] → the chosen value.
    Radio,
    /// Checkboxes of [`Field::options`] → an array of the ticked values
    /// (`searchable` adds a filter box and "select all").
    Checkboxes,
    /// Multi-line text.
    Textarea,
    /// Multi-line text → an array of the non-blank lines, trimmed.
    Lines,
    /// A file upload → base64 text (plus a sibling `content_type`).
    File,
    /// Not shown; sent as is.
    Hidden,
}

/// One choice of a select, radio or checkbox list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Choice {
    /// The submitted value.
    pub value: String,
    /// The visible text.
    pub label: String,
    /// A secondary line (for example a permission's description).
    #[serde(default)]
    pub description: String,
    /// Shown as a group heading before this choice when it differs from the
    /// previous choice's group (for example the plugin of a permission).
    #[serde(default)]
    pub group: String,
    /// Shown but not changeable.
    #[serde(default)]
    pub disabled: bool,
}

impl Choice {
    /// A choice whose label is its value.
    pub fn new(value: impl Into<String>, label: impl Into<String>) -> Self {
        Choice {
            value: value.into(),
            label: label.into(),
            ..Default::default()
        }
    }

    /// Sets the secondary line.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the group heading.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }
}

/// Password rules for live feedback in the browser (the operation still
/// checks the policy; this only helps typing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordRules {
    /// Minimum length in characters.
    #[serde(default)]
    pub min_length: u32,
    /// Needs a lower-case letter.
    #[serde(default)]
    pub lowercase: bool,
    /// Needs an upper-case letter.
    #[serde(default)]
    pub uppercase: bool,
    /// Needs a digit.
    #[serde(default)]
    pub digit: bool,
    /// Needs a character that is not a letter or digit.
    #[serde(default)]
    pub symbol: bool,
}

/// A form field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Field {
    /// The request field it fills; dots build nested objects (`profile.phone`).
    pub name: String,
    /// The visible label.
    #[serde(default)]
    pub label: String,
    /// Input kind.
    #[serde(default)]
    pub kind: FieldKind,
    /// Initial value: a string, number, bool, or an array of strings for
    /// checkbox lists and lines.
    #[serde(default)]
    pub value: serde_json::Value,
    /// Must be filled in.
    #[serde(default)]
    pub required: bool,
    /// Help text under the field.
    #[serde(default)]
    pub help: String,
    /// Placeholder text.
    #[serde(default)]
    pub placeholder: String,
    /// The HTML `autocomplete` token (`email`, `current-password`, `new-password`, …).
    #[serde(default)]
    pub autocomplete: Option<String>,
    /// Choices for select, radio and checkboxes.
    #[serde(default)]
    pub options: Vec<Choice>,
    /// A checkbox list gets a filter box and "select all".
    #[serde(default)]
    pub searchable: bool,
    /// Rules for live feedback on a new password.
    #[serde(default)]
    pub rules: Option<PasswordRules>,
    /// Shown but not changeable (and not submitted).
    #[serde(default)]
    pub readonly: bool,
    /// Accepted file types for a file field (`image/png,image/jpeg`).
    #[serde(default)]
    pub accept: Option<String>,
    /// Leave the field out of the request when it is submitted blank (the
    /// operation's default applies) instead of sending `""`: for optional
    /// inputs such as an initial password or a caller-chosen id.
    #[serde(default)]
    pub omit_empty: bool,
    /// An error for this field (set by the host when re-showing a failed
    /// submission whose error named this field).
    #[serde(default)]
    pub error: Option<String>,
}

impl Field {
    /// A field of `kind`.
    pub fn new(kind: FieldKind, name: impl Into<String>, label: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            label: label.into(),
            kind,
            ..Default::default()
        }
    }

    /// A text field.
    pub fn text(name: impl Into<String>, label: impl Into<String>) -> Self {
        Field::new(FieldKind::Text, name, label)
    }

    /// An email field (`autocomplete=email`).
    pub fn email(name: impl Into<String>, label: impl Into<String>) -> Self {
        Field::new(FieldKind::Email, name, label).autocomplete("email")
    }

    /// A current-password field.
    pub fn password(name: impl Into<String>, label: impl Into<String>) -> Self {
        Field::new(FieldKind::Password, name, label).autocomplete("current-password")
    }

    /// A new-password field with live feedback on `rules`.
    pub fn new_password(
        name: impl Into<String>,
        label: impl Into<String>,
        rules: Option<PasswordRules>,
    ) -> Self {
        let mut f = Field::new(FieldKind::NewPassword, name, label).autocomplete("new-password");
        f.rules = rules;
        f
    }

    /// A single checkbox.
    pub fn checkbox(name: impl Into<String>, label: impl Into<String>, checked: bool) -> Self {
        Field::new(FieldKind::Checkbox, name, label).value(checked)
    }

    /// A drop-down.
    pub fn select(name: impl Into<String>, label: impl Into<String>, options: Vec<Choice>) -> Self {
        let mut f = Field::new(FieldKind::Select, name, label);
        f.options = options;
        f
    }

    /// A checkbox list; `selected` are ticked.
    pub fn checkboxes(
        name: impl Into<String>,
        label: impl Into<String>,
        options: Vec<Choice>,
        selected: &[String],
    ) -> Self {
        let mut f = Field::new(FieldKind::Checkboxes, name, label).value(selected.to_vec());
        f.options = options;
        f
    }

    /// A hidden field.
    pub fn hidden(name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Field::new(FieldKind::Hidden, name, "").value(value)
    }

    /// Sets the initial value.
    pub fn value(mut self, value: impl Into<serde_json::Value>) -> Self {
        self.value = value.into();
        self
    }

    /// Marks the field required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Sets the help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }

    /// Sets the placeholder.
    pub fn placeholder(mut self, placeholder: impl Into<String>) -> Self {
        self.placeholder = placeholder.into();
        self
    }

    /// Sets the `autocomplete` token.
    pub fn autocomplete(mut self, token: impl Into<String>) -> Self {
        self.autocomplete = Some(token.into());
        self
    }

    /// Sets the choices.
    pub fn options(mut self, options: Vec<Choice>) -> Self {
        self.options = options;
        self
    }

    /// Gives a checkbox list a filter box and "select all".
    pub fn searchable(mut self) -> Self {
        self.searchable = true;
        self
    }

    /// Makes the field read-only (shown, not submitted).
    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }

    /// Leaves the field out of the request when it is submitted blank
    /// (see [`Field::omit_empty`]).
    pub fn omit_empty(mut self) -> Self {
        self.omit_empty = true;
        self
    }

    /// Whether the field's value must never be sent back to the browser.
    pub fn is_secret(&self) -> bool {
        matches!(self.kind, FieldKind::Password | FieldKind::NewPassword)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn page_paths() {
        for ok in ["login", "admin/roles", "account/my-profile", "a_1/b"] {
            assert!(PageDecl::is_valid_path(ok), "{ok}");
        }
        for bad in [
            "", "/login", "login/", "a//b", "Admin", "a b", "a/../b", "a.b",
        ] {
            assert!(!PageDecl::is_valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn blocks_are_tagged_and_round_trip() {
        let view = View::new("Roles")
            .push(Block::heading("All roles"))
            .push(
                Table::new(["Name"])
                    .row(Row::new(["Admin"]).href("/ui/admin/roles/admin"))
                    .pager(Pager::new(3, 50, 120)),
            )
            .push(
                Form::new("create", "role.create")
                    .field(Field::text("name", "Name").required())
                    .hidden("kind", "x"),
            );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["blocks"][0]["type"], "heading");
        assert_eq!(json["blocks"][1]["type"], "table");
        assert_eq!(
            json["blocks"][1]["pager"],
            json!({"page": 3, "pages": 3, "total": 120})
        );
        assert_eq!(json["blocks"][2]["type"], "form");
        assert_eq!(json["blocks"][2]["fields"][1]["kind"], "hidden");
        let back: View = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
        // Minimal JSON from an older or non-Rust plugin decodes with defaults.
        let minimal: View = serde_json::from_value(json!({
            "title": "T",
            "blocks": [{"type": "form", "id": "f", "action": "a.b",
                        "fields": [{"name": "x"}]}]
        }))
        .unwrap();
        assert_eq!(minimal.layout, Layout::Normal);
    }

    #[test]
    fn pager_clamps_and_offsets() {
        let p = Pager::new(9, 50, 120);
        assert_eq!((p.page, p.pages), (3, 3));
        assert_eq!(p.offset(50), 100);
        assert_eq!(Pager::new(0, 50, 0).pages, 1);
    }

    #[test]
    fn forms_are_found_everywhere() {
        let mut view = View::new("x")
            .push(Block::details(
                "Delete",
                false,
                vec![Form::new("del", "role.delete").into()],
            ))
            .push(Table::new(["a"]).row(Row::new(["1"]).action(Form::button("r", "s.o", "Go"))));
        let ids: Vec<String> = view.forms_mut().iter().map(|f| f.id.clone()).collect();
        assert_eq!(ids, ["del", "r"]);
    }

    #[test]
    fn actions_split() {
        assert_eq!(split_action("role.create"), Some(("role", "create")));
        assert_eq!(split_action("role"), None);
        assert_eq!(split_action("Role.x"), None);
        assert_eq!(split_action("a.b.c"), None);
    }
}
