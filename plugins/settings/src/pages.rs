//! The admin-center page of the settings system (`/ui/admin/settings`) and
//! the form operation behind it.
//!
//! **Every registered section gets a form generated from its schema**, so a
//! plugin that registers a section needs no page code of its own:
//!
//! | schema | field |
//! |---|---|
//! | `boolean` | checkbox |
//! | `integer`, `number` | number input |
//! | `string` with `enum` | drop-down |
//! | `string` with `x-ref` (`role`/`group`) | drop-down of the roles / groups |
//! | other `string` | text input |
//! | `array` of `x-ref` strings | checkbox list of the roles / groups (with search) |
//! | `array` of `enum` strings | checkbox list |
//! | other `array` of strings | text area, one value per line |
//! | `object` with `properties` | a titled section of its properties (dotted names) |
//! | anything else (arrays of objects, free maps) | a JSON text area |
//!
//! Labels are the schema's `title` (else the property name), help texts its
//! `description`. The form submits to `put_form` (permission
//! `settings.put`), which converts the submitted values back by the same
//! schema (numbers, booleans, lines, JSON) and then runs the ordinary `put`
//! (validation, reference checks, `settings.updated`), so the form can do
//! exactly what the API can. Roles and groups for the pickers are read on
//! behalf of the caller; without `role.read` / `group.read` the picker falls
//! back to ids, one per line.

use serde::Deserialize;
use serde_json::{Map, Value};
use syshost_plugin_api::view::{
    Block, Choice, Field, FieldKind, Form, Layout, PageRequest, Tone, View,
};
use syshost_plugin_api::{timefmt, CallContext, NoInput, PluginError};

use crate::api::{PutRequest, PutResponse};
use crate::{SettingsSystem, PERM_PUT};

/// The page's path under `/ui/`.
pub const PATH: &str = "admin/settings";

/// Prefix of every generated field name: the form builds `document`.
const DOC: &str = "document";

/// Request of `put_form`: a section document as a browser form submits it
/// (numbers and booleans possibly as text, string lists possibly as one
/// text with one value per line, nested arrays of objects as JSON text).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutFormRequest {
    /// The section id.
    pub section: String,
    /// The submitted document; converted by the section's schema, then
    /// handled exactly like `put`'s `document`.
    pub document: Value,
}

/// A role or group as the pickers need it.
#[derive(Debug, Deserialize)]
struct Named {
    id: String,
    name: String,
}

/// A page of roles or groups.
#[derive(Debug, Deserialize)]
struct NamedPage {
    items: Vec<Named>,
}

/// Role and group choices for `x-ref` fields (`None`: the caller may not
/// read them, or the system is not active).
struct RefChoices {
    role: Option<Vec<Choice>>,
    group: Option<Vec<Choice>>,
}

impl SettingsSystem {
    /// `admin_settings_page` (permission `settings.read`): one tab per
    /// section; the chosen section (the rest of the path, default `user`
    /// or the first one) as a generated form, or read-only without
    /// `settings.put`.
    pub(crate) fn admin_settings_page(
        &self,
        req: PageRequest,
        caller: &CallContext,
    ) -> Result<View, PluginError> {
        let sections = self.list(NoInput {}, caller)?.items;
        let chosen = if !req.rest.is_empty() {
            req.rest.clone()
        } else if sections.iter().any(|s| s.section == "user") {
            "user".to_string()
        } else {
            sections
                .first()
                .map(|s| s.section.clone())
                .unwrap_or_default()
        };
        let mut view = View::new("Settings")
            .subtitle("Each system's settings, validated against the schema it registered.")
            .layout(Layout::Wide);
        if sections.is_empty() {
            return Ok(view.push(Block::text("No system has registered settings.")));
        }
        view = view.push(Block::tabs(sections.iter().map(|s| {
            (
                s.section.clone(),
                format!("/ui/{PATH}/{}", s.section),
                s.section == chosen,
            )
        })));
        let record = self.require(&chosen)?.1;
        let title = record
            .schema
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or(&chosen)
            .to_string();
        let mut blocks = Vec::new();
        if let Some(d) = record.schema.get("description").and_then(Value::as_str) {
            blocks.push(Block::text(d));
        }
        blocks.push(Block::key_values([
            ("Section", record.section.clone()),
            ("Owner", record.owner.clone()),
            ("Last change", timefmt::utc(record.updated_at)),
        ]));
        if caller.subject.has_permission(PERM_PUT) {
            let refs = self.ref_choices(&record.schema);
            let mut form = Form::new(format!("settings-{}", record.section), "settings.put_form")
                .hidden("section", record.section.clone())
                .submit("Save settings")
                .success("Settings saved.");
            for field in fields_for(&record.schema, &record.document, DOC, "", &refs) {
                form = form.field(field);
            }
            blocks.push(form.into());
        } else {
            blocks.push(Block::notice(
                Tone::Info,
                "You may view these settings but not change them.",
            ));
            let mut lines = Vec::new();
            flatten(&record.schema, &record.document, "", &mut lines);
            blocks.push(Block::key_values(lines));
        }
        Ok(view.push(Block::section(title, blocks)))
    }

    /// `put_form` (permission `settings.put`): converts a submitted form by
    /// the section's schema, then stores it exactly like `put`.
    pub(crate) fn put_form(
        &self,
        req: PutFormRequest,
        caller: &CallContext,
    ) -> Result<PutResponse, PluginError> {
        crate::check_section_id(&req.section)?;
        let record = self.require(&req.section)?.1;
        let document = coerce(&record.schema, req.document, DOC)?;
        self.put(
            PutRequest {
                section: req.section,
                document,
            },
            caller,
        )
    }

    fn ref_choices(&self, schema: &Value) -> RefChoices {
        let text = schema.to_string();
        let fetch = |system: &str| -> Option<Vec<Choice>> {
            if !text.contains(&format!("\"x-ref\":\"{system}\"")) {
                return None;
            }
            let page: NamedPage = self
                .host
                .call_on_behalf(system, "list", &serde_json::json!({ "limit": 500 }))
                .ok()?;
            Some(
                page.items
                    .into_iter()
                    .map(|n| Choice::new(n.id.clone(), n.name).describe(n.id))
                    .collect(),
            )
        };
        RefChoices {
            role: fetch("role"),
            group: fetch("group"),
        }
    }
}

fn label_of(schema: &Value, name: &str) -> String {
    schema
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let spaced = name.replace('_', " ");
            let mut chars = spaced.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
                None => String::new(),
            }
        })
}

fn type_of(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

fn enum_choices(schema: &Value) -> Option<Vec<Choice>> {
    let values = schema.get("enum")?.as_array()?;
    Some(
        values
            .iter()
            .map(|v| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Choice::new(s.clone(), s)
            })
            .collect(),
    )
}

fn x_ref<'a>(schema: &Value, refs: &'a RefChoices) -> Option<&'a Option<Vec<Choice>>> {
    match schema.get("x-ref").and_then(Value::as_str) {
        Some("role") => Some(&refs.role),
        Some("group") => Some(&refs.group),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An object schema's properties in form order: checkboxes first, then
/// single values, lists, JSON values and nested objects (alphabetically
/// within each group; JSON objects keep no declaration order).
fn ordered_properties(schema: &Value) -> Vec<(&String, &Value)> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let rank = |prop: &Value| match type_of(prop) {
        "boolean" => 0,
        "string" | "integer" | "number" => 1,
        "array" if type_of(prop.get("items").unwrap_or(&Value::Null)) == "string" => 2,
        "object" if prop.get("properties").is_some() => 4,
        _ => 3,
    };
    let mut out: Vec<(&String, &Value)> = props.iter().collect();
    out.sort_by_key(|(name, prop)| (rank(prop), name.as_str()));
    out
}

/// The form fields for an object schema's properties, named `prefix.<prop>`;
/// labels of nested objects' fields start with the object's label
/// (`label_prefix`).
fn fields_for(
    schema: &Value,
    value: &Value,
    prefix: &str,
    label_prefix: &str,
    refs: &RefChoices,
) -> Vec<Field> {
    let mut out = Vec::new();
    for (name, prop) in ordered_properties(schema) {
        let path = format!("{prefix}.{name}");
        let current = value.get(name).cloned().unwrap_or(Value::Null);
        let label = format!("{label_prefix}{}", label_of(prop, name));
        let help = prop
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let field = match type_of(prop) {
            "boolean" => Field::checkbox(&path, &label, current.as_bool().unwrap_or(false)),
            "integer" | "number" => Field::new(FieldKind::Number, &path, &label).value(current),
            "string" => {
                if let Some(choices) = enum_choices(prop) {
                    Field::select(&path, &label, choices).value(current)
                } else if let Some(Some(choices)) = x_ref(prop, refs) {
                    let mut choices = choices.clone();
                    choices.insert(0, Choice::new("", "(none)"));
                    Field::select(&path, &label, choices).value(current)
                } else {
                    Field::text(&path, &label).value(current)
                }
            }
            "array" => {
                let items = prop.get("items").cloned().unwrap_or(Value::Null);
                let selected = strings(&current);
                if type_of(&items) == "string" {
                    if let Some(Some(choices)) = x_ref(&items, refs) {
                        Field::checkboxes(&path, &label, choices.clone(), &selected).searchable()
                    } else if let Some(choices) = enum_choices(&items) {
                        Field::checkboxes(&path, &label, choices, &selected)
                    } else {
                        Field::new(FieldKind::Lines, &path, &label)
                            .value(selected)
                            .placeholder("one per line")
                    }
                } else {
                    json_field(&path, &label, &current)
                }
            }
            "object" if prop.get("properties").is_some() => {
                let nested = format!("{label} — ");
                out.extend(fields_for(prop, &current, &path, &nested, refs));
                continue;
            }
            _ => json_field(&path, &label, &current),
        };
        out.push(field.help(help));
    }
    out
}

/// The document as `(label, text)` lines for read-only display.
fn flatten(schema: &Value, value: &Value, label_prefix: &str, out: &mut Vec<(String, String)>) {
    for (name, prop) in ordered_properties(schema) {
        let label = format!("{label_prefix}{}", label_of(prop, name));
        let current = value.get(name).cloned().unwrap_or(Value::Null);
        if type_of(prop) == "object" && prop.get("properties").is_some() {
            flatten(prop, &current, &format!("{label} — "), out);
            continue;
        }
        let text = match &current {
            Value::String(s) => s.clone(),
            Value::Bool(true) => "yes".to_string(),
            Value::Bool(false) => "no".to_string(),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                if items.is_empty() {
                    "(none)".to_string()
                } else {
                    strings(&current).join(", ")
                }
            }
            other => other.to_string(),
        };
        out.push((label, text));
    }
}

fn json_field(path: &str, label: &str, current: &Value) -> Field {
    let text = serde_json::to_string_pretty(current).unwrap_or_default();
    Field::new(FieldKind::Textarea, path, label)
        .value(text)
        .placeholder("JSON")
}

/// Converts a submitted value back by its schema (`path` names the field
/// in errors, with the `document.` prefix the form uses).
pub fn coerce(schema: &Value, value: Value, path: &str) -> Result<Value, PluginError> {
    let bad = |what: &str| PluginError::invalid_field(path, format!("{path}: {what}"));
    match (type_of(schema), value) {
        (_, Value::Null) => Ok(Value::Null),
        ("object", Value::String(text)) => {
            let parsed: Value =
                serde_json::from_str(&text).map_err(|e| bad(&format!("is not valid JSON: {e}")))?;
            coerce(schema, parsed, path)
        }
        ("object", Value::Object(map)) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for (k, v) in map {
                let child = props
                    .and_then(|p| p.get(&k))
                    .cloned()
                    .unwrap_or(Value::Null);
                let converted = coerce(&child, v, &format!("{path}.{k}"))?;
                if !converted.is_null() {
                    out.insert(k, converted);
                }
            }
            Ok(Value::Object(out))
        }
        ("array", Value::String(text)) => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            if type_of(&items) == "string" && !text.trim_start().starts_with('[') {
                let lines: Vec<Value> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect();
                return Ok(Value::Array(lines));
            }
            if text.trim().is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            let parsed: Value =
                serde_json::from_str(&text).map_err(|e| bad(&format!("is not valid JSON: {e}")))?;
            coerce(schema, parsed, path)
        }
        ("array", Value::Array(items)) => {
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| coerce(&item_schema, v, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        ("integer", Value::String(text)) => {
            let t = text.trim();
            if t.is_empty() {
                return Ok(Value::Null);
            }
            t.parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad(&format!("'{t}' is not a whole number")))
        }
        ("integer", Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ok(Value::from(i)),
            (_, Some(u), _) => Ok(Value::from(u)),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
            _ => Err(bad(&format!("{n} is not a whole number"))),
        },
        ("number", Value::String(text)) => {
            let t = text.trim();
            if t.is_empty() {
                return Ok(Value::Null);
            }
            t.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| bad(&format!("'{t}' is not a number")))
        }
        ("boolean", Value::String(text)) => Ok(Value::Bool(matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "true" | "on" | "1" | "yes"
        ))),
        ("string", Value::String(text)) if text.is_empty() && schema.get("x-ref").is_some() => {
            // "(none)" in a reference drop-down: leave the field out (default).
            Ok(Value::Null)
        }
        (_, other) => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn section() -> Value {
        json!({
            "type": "object",
            "properties": {
                "flag": {"type": "boolean"},
                "n": {"type": "integer"},
                "x": {"type": "number"},
                "domains": {"type": "array", "items": {"type": "string"}},
                "roles": {"type": "array", "items": {"type": "string", "x-ref": "role"}},
                "policy": {"type": "object", "properties": {"min": {"type": "integer"}}},
                "options": {"type": "array", "items": {"type": "object",
                    "properties": {"id": {"type": "string"}}}},
                "name": {"type": "string"}
            }
        })
    }

    #[test]
    fn form_values_become_typed_json() {
        let submitted = json!({
            "flag": "on",
            "n": "12",
            "x": 1.5,
            "domains": "example.com\n\n  b.example.org \n",
            "roles": ["a", "b"],
            "policy": {"min": 8.0},
            "options": "[{\"id\": \"tos\"}]",
            "name": "  kept as is "
        });
        let out = coerce(&section(), submitted, DOC).unwrap();
        assert_eq!(
            out,
            json!({
                "flag": true,
                "n": 12,
                "x": 1.5,
                "domains": ["example.com", "b.example.org"],
                "roles": ["a", "b"],
                "policy": {"min": 8},
                "options": [{"id": "tos"}],
                "name": "  kept as is "
            })
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = coerce(&section(), json!({"n": "twelve"}), DOC).unwrap_err();
        assert_eq!(err.details.unwrap()["field"], "document.n");
        let err = coerce(&section(), json!({"options": "[{"}), DOC).unwrap_err();
        assert!(err.message.contains("document.options"), "{err}");
        let err = coerce(&section(), json!({"policy": {"min": 1.5}}), DOC).unwrap_err();
        assert_eq!(err.details.unwrap()["field"], "document.policy.min");
        // An empty number is left out (the default applies).
        assert_eq!(
            coerce(&section(), json!({"n": " "}), DOC).unwrap(),
            json!({})
        );
    }

    #[test]
    fn every_schema_kind_gets_a_field() {
        let refs = RefChoices {
            role: Some(vec![Choice::new("editors", "Editors")]),
            group: None,
        };
        let doc = json!({"flag": true, "n": 3, "domains": ["a.com"], "roles": ["editors"],
                         "policy": {"min": 8}, "options": [], "name": "x"});
        let fields: Vec<(String, FieldKind)> = fields_for(&section(), &doc, DOC, "", &refs)
            .iter()
            .map(|f| (f.name.clone(), f.kind))
            .collect();
        let kind = |n: &str| fields.iter().find(|(name, _)| name == n).map(|(_, k)| *k);
        assert_eq!(kind("document.flag"), Some(FieldKind::Checkbox));
        assert_eq!(kind("document.n"), Some(FieldKind::Number));
        assert_eq!(kind("document.domains"), Some(FieldKind::Lines));
        assert_eq!(kind("document.roles"), Some(FieldKind::Checkboxes));
        assert_eq!(kind("document.policy.min"), Some(FieldKind::Number));
        assert_eq!(kind("document.options"), Some(FieldKind::Textarea));
        assert_eq!(kind("document.name"), Some(FieldKind::Text));
    }
}
