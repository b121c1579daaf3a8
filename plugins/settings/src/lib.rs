//! The `settings` system: typed, validated settings sections owned by the
//! systems.
//!
//! A *section* is one JSON document per owning system (for example `user`).
//! The owner registers it during its activation with `register` (defaults and
//! a schema in the small schema language of [`schema`]); administrators read
//! it with `get`/`list`/`schema` (`settings.read`) and replace it with `put`
//! (`settings.put`). A `put` is validated against the schema, including
//! `x-ref` references to roles and groups (checked with `role.check` and
//! `group.check` when those systems are active); an invalid document is
//! rejected naming the field path and nothing is stored. An unchanged
//! document is not written and publishes nothing; a changed one is stored
//! and then `settings.updated {"section"}` is published.
//!
//! When a role or group is deleted (`role.deleted`, `group.deleted`), its id
//! is removed from every `x-ref` field of every stored document, and
//! `settings.updated` is published for each section that changed.
//!
//! Store layout (one key per section, so every change is a single
//! compare-and-swap): `section/<id>` → [`api::SectionRecord`] as JSON.

pub mod api;
pub mod pages;
pub mod schema;

use serde::Serialize;
use serde_json::{json, Value};
use syshost_plugin_api::view::{Area, PageDecl};
use syshost_plugin_api::{
    codes, export_plugin, Access, CallContext, Event, Host, Manifest, NoInput, Operations, Plugin,
    PluginError, Subject,
};

use api::{
    CheckRequest, CheckResponse, DeletedEvent, ListResponse, PutRequest, PutResponse,
    RegisterRequest, RegisterResponse, SchemaResponse, SectionRecord, SectionRequest, SectionView,
    UpdatedEvent,
};
use schema::{FieldError, RefKind, Reference, Schema};

/// Permission to read sections, their schemas and defaults.
pub const PERM_READ: &str = "settings.read";
/// Permission to replace section documents.
pub const PERM_PUT: &str = "settings.put";
/// The topic published after a section's document changed.
pub const TOPIC_UPDATED: &str = "settings.updated";

/// Largest accepted document, defaults or schema, serialized.
const MAX_JSON_BYTES: usize = 256 * 1024;
/// Longest section id.
const MAX_SECTION_LEN: usize = 128;
/// Compare-and-swap attempts before a write gives up with `conflict`.
const MAX_ATTEMPTS: usize = 32;
/// Key prefix of section records.
const SECTION_PREFIX: &str = "section/";

/// The running `settings` system.
pub struct SettingsSystem {
    host: Host,
}

/// Response of `ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Pong {
    /// The system that answered.
    pub system: &'static str,
    /// Its version.
    pub version: &'static str,
}

impl Plugin for SettingsSystem {
    fn manifest() -> Manifest {
        Manifest::new("settings", env!("CARGO_PKG_VERSION"))
            .name("Settings")
            .describe("Typed, validated settings sections owned by the systems.")
            .wants("role", "^0.1")
            .wants("group", "^0.1")
            .permission(
                PERM_READ,
                "Read settings",
                "May read every settings section with its schema and defaults",
            )
            .permission(
                PERM_PUT,
                "Change settings",
                "May replace the document of any settings section",
            )
            .subscribe("role.deleted")
            .subscribe("group.deleted")
            .page(
                PageDecl::new(pages::PATH, "Settings", "admin_settings_page")
                    .area(Area::Admin)
                    .card(
                        "Settings",
                        "Registration, passwords, consents, sessions: every system's settings as a form.",
                        Some(PERM_READ),
                    )
                    .nav()
                    .order(60),
            )
    }

    fn operations() -> Operations<Self> {
        Operations::new()
            .query(
                "ping",
                Access::Public,
                "Liveness probe: answers with the system id and version.",
                Self::ping,
            )
            .op(
                "register",
                Access::System,
                "Registers (or re-registers) a section with its defaults and schema; the caller owns it.",
                Self::register,
            )
            .query(
                "get",
                Access::permission(PERM_READ),
                "Returns a section's effective document.",
                Self::get,
            )
            .query(
                "list",
                Access::permission(PERM_READ),
                "Lists every section with its owner and document.",
                Self::list,
            )
            .query(
                "schema",
                Access::permission(PERM_READ),
                "Returns a section's schema and defaults (for forms).",
                Self::schema,
            )
            .page(
                "admin_settings_page",
                Access::permission(PERM_READ),
                "Admin page: one section's settings as a form generated from its schema.",
                Self::admin_settings_page,
            )
            .op(
                "put_form",
                Access::permission(PERM_PUT),
                "Like put, for browser forms: converts text values (numbers, booleans, lines, JSON) by the section's schema first.",
                Self::put_form,
            )
            .op(
                "put",
                Access::permission(PERM_PUT),
                "Replaces a section's document after validating it; publishes settings.updated when it changed.",
                Self::put,
            )
    }

    fn activate(host: Host) -> Result<Self, PluginError> {
        Ok(SettingsSystem { host })
    }

    fn on_event(&self, event: &Event) -> Result<(), PluginError> {
        let kind = match event.topic.as_str() {
            "role.deleted" => RefKind::Role,
            "group.deleted" => RefKind::Group,
            _ => return Ok(()),
        };
        let deleted: DeletedEvent = event.payload_as()?;
        self.remove_references(kind, &deleted.id)
    }
}

impl SettingsSystem {
    fn ping(&self, _: NoInput, _: &CallContext) -> Result<Pong, PluginError> {
        Ok(Pong {
            system: "settings",
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    fn register(
        &self,
        req: RegisterRequest,
        ctx: &CallContext,
    ) -> Result<RegisterResponse, PluginError> {
        check_section_id(&req.section)?;
        let plugin_owner = registering_plugin(&ctx.subject, &req.section)?;
        check_size("schema", &req.schema)?;
        check_size("defaults", &req.defaults)?;
        let schema = Schema::parse(&req.schema).map_err(|e| {
            let path = join_path("schema", &e.path);
            PluginError::invalid_field(&path, format!("invalid schema: {path}: {}", e.message))
        })?;
        if !schema.is_object() {
            return Err(PluginError::invalid_field(
                "schema.type",
                "invalid schema: schema.type: a section's schema must be of type object",
            ));
        }
        let errors = schema.validate(&req.defaults);
        if !errors.is_empty() {
            return Err(invalid_document("defaults", "invalid defaults", errors));
        }

        let store = self.host.store();
        let key = section_key(&req.section);
        for _ in 0..MAX_ATTEMPTS {
            let existing = self.load(&req.section)?;
            let now = self.host.now_unix_ms();
            let (old_bytes, old) = match &existing {
                Some((bytes, record)) => (Some(bytes.as_slice()), Some(record)),
                None => (None, None),
            };
            let owner = match (&plugin_owner, old) {
                (Some(id), _) => id.clone(),
                (None, Some(record)) => record.owner.clone(),
                (None, None) => "system".to_string(),
            };
            let document = match old {
                Some(record) => schema
                    .migrate(Some(&record.document), Some(&req.defaults))
                    .unwrap_or_else(|| req.defaults.clone()),
                None => req.defaults.clone(),
            };
            let doc_changed = old.is_none_or(|r| r.document != document);
            let record = SectionRecord {
                section: req.section.clone(),
                owner,
                schema: req.schema.clone(),
                defaults: req.defaults.clone(),
                document: document.clone(),
                created_at: old.map_or(now, |r| r.created_at),
                updated_at: match old {
                    Some(r) if !doc_changed => r.updated_at,
                    _ => now,
                },
            };
            if old == Some(&record) {
                return Ok(RegisterResponse {
                    section: req.section,
                    document,
                });
            }
            let bytes = serde_json::to_vec(&record)?;
            if store
                .compare_and_swap(&key, old_bytes, Some(&bytes))?
                .is_ok()
            {
                if doc_changed {
                    self.publish_updated(&req.section);
                }
                return Ok(RegisterResponse {
                    section: req.section,
                    document,
                });
            }
        }
        Err(too_busy(&req.section))
    }

    fn get(&self, req: SectionRequest, _: &CallContext) -> Result<SectionView, PluginError> {
        check_section_id(&req.section)?;
        let (_, record) = self.require(&req.section)?;
        Ok(view(record))
    }

    fn list(&self, _: NoInput, _: &CallContext) -> Result<ListResponse, PluginError> {
        let items = self
            .host
            .store()
            .scan_prefix(SECTION_PREFIX)?
            .into_iter()
            .map(|(key, bytes)| decode_record(&key, &bytes).map(view))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListResponse { items })
    }

    fn schema(&self, req: SectionRequest, _: &CallContext) -> Result<SchemaResponse, PluginError> {
        check_section_id(&req.section)?;
        let (_, record) = self.require(&req.section)?;
        Ok(SchemaResponse {
            section: record.section,
            schema: record.schema,
            defaults: record.defaults,
        })
    }

    fn put(&self, req: PutRequest, _: &CallContext) -> Result<PutResponse, PluginError> {
        check_section_id(&req.section)?;
        check_size("document", &req.document)?;
        let store = self.host.store();
        let key = section_key(&req.section);
        for _ in 0..MAX_ATTEMPTS {
            let (old_bytes, record) = self.require(&req.section)?;
            let schema = stored_schema(&record)?;
            let what = format!("invalid settings for section '{}'", req.section);
            let errors = schema.validate(&req.document);
            if !errors.is_empty() {
                return Err(invalid_document("", &what, errors));
            }
            let document = schema.merge_defaults(Some(&record.defaults), req.document.clone());
            let errors = schema.validate(&document);
            if !errors.is_empty() {
                return Err(invalid_document("", &what, errors));
            }
            let errors = self.check_refs(&schema.collect_refs(&req.document))?;
            if !errors.is_empty() {
                return Err(invalid_document("", &what, errors));
            }
            if document == record.document {
                return Ok(PutResponse {
                    section: req.section,
                    document,
                    changed: false,
                });
            }
            let updated = SectionRecord {
                document: document.clone(),
                updated_at: self.host.now_unix_ms(),
                ..record
            };
            let bytes = serde_json::to_vec(&updated)?;
            if store
                .compare_and_swap(&key, Some(&old_bytes), Some(&bytes))?
                .is_ok()
            {
                self.publish_updated(&req.section);
                return Ok(PutResponse {
                    section: req.section,
                    document,
                    changed: true,
                });
            }
        }
        Err(too_busy(&req.section))
    }

    /// Looks every reference up in its system (one `check` call per kind).
    /// A system that is not active is skipped.
    fn check_refs(&self, refs: &[Reference]) -> Result<Vec<FieldError>, PluginError> {
        let mut errors = Vec::new();
        for kind in [RefKind::Role, RefKind::Group] {
            let mut ids: Vec<String> = refs
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            if ids.is_empty() {
                continue;
            }
            let system = kind.system();
            let unknown =
                match self
                    .host
                    .call::<_, CheckResponse>(system, "check", &CheckRequest { ids })
                {
                    Ok(resp) => resp.unknown,
                    Err(e) if e.is(codes::UNAVAILABLE) => continue,
                    Err(e) => {
                        return Err(PluginError::new(
                            e.code,
                            format!(
                                "could not check {system} references with {system}.check: {}",
                                e.message
                            ),
                        ))
                    }
                };
            for r in refs.iter().filter(|r| r.kind == kind) {
                if unknown.contains(&r.id) {
                    errors.push(FieldError {
                        path: r.path.clone(),
                        message: format!("no {system} '{}' exists", r.id),
                    });
                }
            }
        }
        errors.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(errors)
    }

    /// Removes a deleted role or group id from every stored document.
    fn remove_references(&self, kind: RefKind, id: &str) -> Result<(), PluginError> {
        let store = self.host.store();
        let mut first_error = None;
        for (key, bytes) in store.scan_prefix(SECTION_PREFIX)? {
            if let Err(e) = self.remove_reference_in(&key, bytes, kind, id) {
                self.host.warn(format!(
                    "removing {} '{id}' from {}: {e}",
                    kind.system(),
                    String::from_utf8_lossy(&key)
                ));
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn remove_reference_in(
        &self,
        key: &[u8],
        mut bytes: Vec<u8>,
        kind: RefKind,
        id: &str,
    ) -> Result<(), PluginError> {
        let store = self.host.store();
        for _ in 0..MAX_ATTEMPTS {
            let record = decode_record(key, &bytes)?;
            let schema = stored_schema(&record)?;
            let mut document = record.document.clone();
            if !schema.remove_ref(&mut document, Some(&record.defaults), kind, id) {
                return Ok(());
            }
            let section = record.section.clone();
            let updated = SectionRecord {
                document,
                updated_at: self.host.now_unix_ms(),
                ..record
            };
            let new_bytes = serde_json::to_vec(&updated)?;
            match store.compare_and_swap(key, Some(&bytes), Some(&new_bytes))? {
                Ok(()) => {
                    self.publish_updated(&section);
                    return Ok(());
                }
                Err(Some(current)) => bytes = current,
                Err(None) => return Ok(()),
            }
        }
        Err(PluginError::conflict(
            "the section kept changing while a reference was removed",
        ))
    }

    fn publish_updated(&self, section: &str) {
        let payload = UpdatedEvent {
            section: section.to_string(),
        };
        if let Err(e) = self.host.publish(TOPIC_UPDATED, &payload) {
            self.host.warn(format!(
                "publishing {TOPIC_UPDATED} for '{section}' failed: {e}"
            ));
        }
    }

    fn load(&self, section: &str) -> Result<Option<(Vec<u8>, SectionRecord)>, PluginError> {
        let key = section_key(section);
        match self.host.store().get(&key)? {
            None => Ok(None),
            Some(bytes) => {
                let record = decode_record(key.as_bytes(), &bytes)?;
                Ok(Some((bytes, record)))
            }
        }
    }

    fn require(&self, section: &str) -> Result<(Vec<u8>, SectionRecord), PluginError> {
        self.load(section)?.ok_or_else(|| {
            PluginError::not_found(format!("no settings section '{section}' is registered"))
                .with_details(json!({ "section": section }))
        })
    }
}

/// Who may register `section`: `Ok(Some(plugin))` for a plugin registering
/// its own id or `<id>.<name>`, `Ok(None)` for the system subject (owner
/// `system`, or the existing owner on re-registration); anything else is
/// refused.
fn registering_plugin(subject: &Subject, section: &str) -> Result<Option<String>, PluginError> {
    match subject {
        Subject::Plugin { id } => {
            let own = section == id
                || section
                    .strip_prefix(id.as_str())
                    .is_some_and(|rest| rest.starts_with('.'));
            if own {
                Ok(Some(id.clone()))
            } else {
                Err(PluginError::invalid_field(
                    "section",
                    format!(
                        "plugin '{id}' may register only the section '{id}' or '{id}.<name>', not '{section}'"
                    ),
                ))
            }
        }
        Subject::System => Ok(None),
        _ => Err(PluginError::permission_denied("system")),
    }
}

fn section_key(section: &str) -> String {
    format!("{SECTION_PREFIX}{section}")
}

fn decode_record(key: &[u8], bytes: &[u8]) -> Result<SectionRecord, PluginError> {
    serde_json::from_slice(bytes).map_err(|e| {
        PluginError::storage(format!(
            "stored settings record {} is not valid: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

fn stored_schema(record: &SectionRecord) -> Result<Schema, PluginError> {
    Schema::parse(&record.schema).map_err(|e| {
        PluginError::internal(format!(
            "the stored schema of section '{}' is not valid: {e}",
            record.section
        ))
    })
}

fn view(record: SectionRecord) -> SectionView {
    SectionView {
        section: record.section,
        owner: record.owner,
        document: record.document,
    }
}

/// Section ids: `^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$`, at most 128 characters.
pub fn is_valid_section_id(id: &str) -> bool {
    id.len() <= MAX_SECTION_LEN
        && id.split('.').enumerate().all(|(i, part)| {
            let mut bytes = part.bytes();
            match bytes.next() {
                None => false,
                Some(first) => {
                    (if i == 0 {
                        first.is_ascii_lowercase()
                    } else {
                        matches!(first, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
                    }) && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
                }
            }
        })
}

fn check_section_id(id: &str) -> Result<(), PluginError> {
    if is_valid_section_id(id) {
        Ok(())
    } else {
        Err(PluginError::invalid_field(
            "section",
            format!(
                "section must match ^[a-z][a-z0-9_-]*(\\.[a-z0-9_-]+)*$ and be at most {MAX_SECTION_LEN} characters, got {id:?}"
            ),
        ))
    }
}

fn check_size(field: &str, value: &Value) -> Result<(), PluginError> {
    let size = serde_json::to_vec(value)?.len();
    if size > MAX_JSON_BYTES {
        return Err(PluginError::invalid_field(
            field,
            format!("{field} is {size} bytes; at most {MAX_JSON_BYTES} are accepted"),
        ));
    }
    Ok(())
}

fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, true) => "document".to_string(),
        (true, false) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// `invalid_input` naming the first field; details list every error as
/// `{"field", "message"}`.
fn invalid_document(prefix: &str, what: &str, errors: Vec<FieldError>) -> PluginError {
    let listed: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "field": join_path(prefix, &e.path), "message": e.message }))
        .collect();
    let first = &errors[0];
    let field = join_path(prefix, &first.path);
    let more = match errors.len() {
        1 => String::new(),
        2 => " (and 1 more problem)".to_string(),
        n => format!(" (and {} more problems)", n - 1),
    };
    PluginError::invalid(format!("{what}: {field}: {}{more}", first.message))
        .with_details(json!({ "field": field, "errors": listed }))
}

fn too_busy(section: &str) -> PluginError {
    PluginError::conflict(format!(
        "section '{section}' kept changing concurrently; try again"
    ))
}

export_plugin!(SettingsSystem);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_ids() {
        for ok in ["user", "user.consents", "a_b-c", "x.1", "user.a.b"] {
            assert!(is_valid_section_id(ok), "{ok}");
        }
        for bad in ["", "User", "1user", "user.", ".user", "a..b", "a/b", "a b"] {
            assert!(!is_valid_section_id(bad), "{bad}");
        }
        assert!(!is_valid_section_id(&"a".repeat(129)));
    }

    #[test]
    fn plugins_register_only_their_own_sections() {
        let user = Subject::Plugin { id: "user".into() };
        assert_eq!(
            registering_plugin(&user, "user").unwrap(),
            Some("user".into())
        );
        assert_eq!(
            registering_plugin(&user, "user.consents").unwrap(),
            Some("user".into())
        );
        for other in ["users", "session", "role.user", "user_x"] {
            let err = registering_plugin(&user, other).unwrap_err();
            assert_eq!(err.code, codes::INVALID_INPUT, "{other}");
            assert!(err.message.contains("may register only"), "{err}");
        }
        assert_eq!(
            registering_plugin(&Subject::System, "anything").unwrap(),
            None
        );
        let err = registering_plugin(&Subject::default(), "user").unwrap_err();
        assert_eq!(err.code, codes::PERMISSION_DENIED);
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("", ""), "document");
        assert_eq!(join_path("", "a.b"), "a.b");
        assert_eq!(join_path("defaults", ""), "defaults");
        assert_eq!(join_path("defaults", "a[0]"), "defaults.a[0]");
        assert_eq!(join_path("defaults", "[0]"), "defaults[0]");
    }

    /// The `user` section is owned by the user system; its schema must be
    /// one this validator accepts.
    const USER_SECTION_JSON: &str = include_str!("../../user/settings-section.json");

    #[test]
    fn the_user_section_is_valid() {
        let section: Value = serde_json::from_str(USER_SECTION_JSON).unwrap();
        let obj = section.as_object().unwrap();
        assert_eq!(obj.len(), 2, "only defaults and schema");
        let schema = Schema::parse(&section["schema"]).unwrap();
        assert!(schema.is_object());
        assert_eq!(schema.validate(&section["defaults"]), vec![]);
        let d = &section["defaults"];
        assert_eq!(d["self_registration"], false);
        assert_eq!(d["self_password_reset"], true);
        assert_eq!(d["password_policy"]["min_length"], 12);
        assert_eq!(d["password_policy"]["max_length"], 256);
        assert_eq!(d["registration_fields"]["first_name"], "required");
        assert_eq!(d["registration_fields"]["about_me"], "optional");
        assert_eq!(d["registration_fields"].as_object().unwrap().len(), 17);
    }

    #[test]
    fn invalid_document_lists_every_error() {
        let err = invalid_document(
            "",
            "bad",
            vec![
                FieldError {
                    path: "a.b".into(),
                    message: "x".into(),
                },
                FieldError {
                    path: "c".into(),
                    message: "y".into(),
                },
            ],
        );
        assert_eq!(err.code, codes::INVALID_INPUT);
        assert_eq!(err.message, "bad: a.b: x (and 1 more problem)");
        assert_eq!(err.details.as_ref().unwrap()["field"], "a.b");
        assert_eq!(err.details.as_ref().unwrap()["errors"][1]["field"], "c");
    }
}
