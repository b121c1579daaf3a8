//! Form submissions → the JSON request of an operation.
//!
//! Fields are coerced by the operation's request JSON Schema (as recorded in
//! its manifest) and by the kind hints the renderer put into `_kinds`: a
//! dotted name builds nested objects, booleans come from checkboxes (absent
//! = `false`), arrays from repeated names or from one-per-line text, numbers
//! are parsed, files become base64 (plus a sibling `content_type` when the
//! schema has one), and a blank field the page marked `omit_empty` (kind
//! hint `optional`) is left out. Names starting with `_` are the host's and
//! never reach the operation.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The field name.
    pub name: String,
    /// The part's content type.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A decoded form submission.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// Text fields in submission order (host fields included).
    pub fields: Vec<(String, String)>,
    /// Uploaded files (non-empty ones only).
    pub files: Vec<Upload>,
}

impl Submission {
    /// The first value of a host field (`_csrf`, `_next`, …).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The submitted values that are not host fields and not secrets, for
    /// re-showing a form after an error.
    pub fn echo(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in &self.fields {
            if !k.starts_with('_') {
                out.entry(k.clone()).or_default().push(v.clone());
            }
        }
        out
    }
}

/// A field-level coercion error: `(field, message)`.
pub type FieldError = (String, String);

/// Builds the request JSON for `schema` from `sub`.
pub fn to_json(sub: &Submission, schema: Option<&Value>) -> Result<Value, FieldError> {
    let empty = Value::Object(Map::new());
    let root = schema.unwrap_or(&empty);
    let kinds: BTreeMap<String, String> = sub
        .get("_kinds")
        .and_then(|k| serde_json::from_str(k).ok())
        .unwrap_or_default();
    // Group values by name, keeping first-seen order.
    let mut names: Vec<&str> = Vec::new();
    let mut values: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in &sub.fields {
        if k.starts_with('_') || k.is_empty() {
            continue;
        }
        if !values.contains_key(k.as_str()) {
            names.push(k);
        }
        values.entry(k).or_default().push(v);
    }
    let mut out = Value::Object(Map::new());
    for name in &names {
        let vals = &values[name];
        let field_schema = property_schema(root, name);
        let kind = kinds.get(*name).map(String::as_str);
        // `omit_empty` fields submitted blank are left out (the default applies).
        if kind == Some("optional") && vals.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        if let Some(v) = coerce(name, vals, kind, field_schema.as_ref(), root)? {
            insert(&mut out, name, v)?;
        }
    }
    // Checkboxes and lists that were not submitted at all.
    for (name, kind) in &kinds {
        if values.contains_key(name.as_str()) {
            continue;
        }
        let v = match kind.as_str() {
            "checkbox" => Value::Bool(false),
            "checkboxes" | "lines" => Value::Array(Vec::new()),
            _ => continue,
        };
        insert(&mut out, name, v)?;
    }
    for file in &sub.files {
        let data = base64::engine::general_purpose::STANDARD.encode(&file.bytes);
        insert(&mut out, &file.name, Value::String(data))?;
        let sibling = match file.name.rsplit_once('.') {
            Some((parent, _)) => format!("{parent}.content_type"),
            None => "content_type".to_string(),
        };
        if property_schema(root, &sibling).is_some() && lookup(&out, &sibling).is_none() {
            insert(&mut out, &sibling, Value::String(file.content_type.clone()))?;
        }
    }
    // Extra values of a bulk action (`_bulk` = {"values": {...}}).
    if let Some(spec) = sub
        .get("_bulk")
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        if let (Some(Value::Object(extra)), Value::Object(obj)) = (spec.get("values"), &mut out) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

fn coerce(
    name: &str,
    vals: &[&str],
    kind: Option<&str>,
    schema: Option<&Value>,
    root: &Value,
) -> Result<Option<Value>, FieldError> {
    let types = schema.map(types_of).unwrap_or_default();
    let has = |t: &str| types.iter().any(|x| x == t);
    let first = vals.first().copied().unwrap_or("");
    if kind == Some("checkbox") || (has("boolean") && !has("string")) {
        let on = vals.iter().any(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "on" | "1" | "yes"
            )
        });
        return Ok(Some(Value::Bool(on)));
    }
    if kind == Some("json") {
        return Ok(Some(
            serde_json::from_str(first).unwrap_or_else(|_| Value::String(first.to_string())),
        ));
    }
    if kind == Some("lines") || kind == Some("checkboxes") || has("array") {
        let items: Vec<&str> = if kind == Some("lines") {
            vals.iter()
                .flat_map(|v| v.lines())
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            vals.iter().copied().filter(|v| !v.is_empty()).collect()
        };
        let item_schema = schema
            .and_then(|s| s.get("items"))
            .map(|i| resolve(root, i));
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(scalar(name, item, item_schema.as_ref())?.unwrap_or(Value::Null));
        }
        return Ok(Some(Value::Array(out)));
    }
    if kind == Some("number") && schema.is_none() {
        if first.trim().is_empty() {
            return Ok(None);
        }
        return first
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .map(Some)
            .ok_or_else(|| {
                (
                    name.to_string(),
                    format!("{name}: '{first}' is not a number"),
                )
            });
    }
    scalar(name, first, schema)
}

/// One value by its (resolved) schema: integers and numbers are parsed;
/// an empty value of a non-string type or of an enum without `""` is left
/// out (`null` when the schema allows null).
fn scalar(name: &str, text: &str, schema: Option<&Value>) -> Result<Option<Value>, FieldError> {
    let types = schema.map(types_of).unwrap_or_default();
    let has = |t: &str| types.iter().any(|x| x == t);
    let nullable = has("null");
    let trimmed = text.trim();
    let enum_without_empty = schema
        .and_then(|s| s.get("enum"))
        .and_then(Value::as_array)
        .is_some_and(|e| !e.iter().any(|v| v.as_str() == Some("")));
    if trimmed.is_empty() && (enum_without_empty || (!types.is_empty() && !has("string"))) {
        return Ok(nullable.then_some(Value::Null));
    }
    if has("integer") && !has("string") {
        return trimmed
            .parse::<i64>()
            .map(|n| Some(Value::from(n)))
            .map_err(|_| {
                (
                    name.to_string(),
                    format!("{name}: '{text}' is not a whole number"),
                )
            });
    }
    if has("number") && !has("string") {
        return trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| {
                (
                    name.to_string(),
                    format!("{name}: '{text}' is not a number"),
                )
            });
    }
    if has("boolean") && !has("string") {
        return Ok(Some(Value::Bool(matches!(
            trimmed.to_ascii_lowercase().as_str(),
            "true" | "on" | "1" | "yes"
        ))));
    }
    Ok(Some(Value::String(text.to_string())))
}

/// The `type`s a (resolved) schema allows (`anyOf`/`oneOf` branches included).
fn types_of(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => {
            out.extend(ts.iter().filter_map(|t| t.as_str().map(String::from)))
        }
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key) {
            for b in branches {
                out.extend(types_of(b));
            }
        }
    }
    if out.is_empty() && schema.get("enum").is_some() {
        out.push("string".to_string());
    }
    out
}

/// Follows `$ref` (`#/$defs/X`, `#/definitions/X`) and, for `anyOf`/`oneOf`
/// whose branches are a reference and `null`, merges in the referenced
/// schema so that property lookups see through `Option<Struct>`.
fn resolve(root: &Value, schema: &Value) -> Value {
    let mut current = schema.clone();
    for _ in 0..16 {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(path) = reference.strip_prefix("#/") else {
            break;
        };
        let mut target = root;
        let mut found = true;
        for seg in path.split('/') {
            match target.get(seg) {
                Some(t) => target = t,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            break;
        }
        let mut merged = target.clone();
        if let (Value::Object(m), Value::Object(c)) = (&mut merged, &current) {
            for (k, v) in c {
                if k != "$ref" {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        current = merged;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = current.get(key).cloned() {
            let resolved: Vec<Value> = branches.iter().map(|b| resolve(root, b)).collect();
            if let Value::Object(m) = &mut current {
                m.insert(key.to_string(), Value::Array(resolved.clone()));
                // Properties of an object branch become visible directly.
                for b in &resolved {
                    if let Some(props) = b.get("properties") {
                        m.entry("properties".to_string())
                            .or_insert_with(|| props.clone());
                    }
                    if let Some(items) = b.get("items") {
                        m.entry("items".to_string())
                            .or_insert_with(|| items.clone());
                    }
                }
            }
        }
    }
    current
}

/// The resolved schema of the (dotted) property `name`, if the schema
/// declares it.
fn property_schema(root: &Value, name: &str) -> Option<Value> {
    let mut current = resolve(root, root);
    for seg in name.split('.') {
        let next = current.get("properties")?.get(seg)?;
        current = resolve(root, next);
    }
    Some(current)
}

fn lookup<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let mut current = value;
    for seg in name.split('.') {
        current = current.get(seg)?;
    }
    Some(current)
}

/// Sets the dotted path `name` in `out`, creating objects on the way.
fn insert(out: &mut Value, name: &str, value: Value) -> Result<(), FieldError> {
    let conflict = || {
        (
            name.to_string(),
            format!("{name}: conflicts with another field"),
        )
    };
    let mut current = out;
    let segs: Vec<&str> = name.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err((name.to_string(), format!("'{name}' is not a field name")));
    }
    for (i, seg) in segs.iter().enumerate() {
        let obj = current.as_object_mut().ok_or_else(conflict)?;
        if i == segs.len() - 1 {
            obj.insert(seg.to_string(), value);
            return Ok(());
        }
        current = obj
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(pairs: &[(&str, &str)]) -> Submission {
        Submission {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            files: Vec::new(),
        }
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "limit": {"type": ["integer", "null"]},
                "ratio": {"type": "number"},
                "enabled": {"type": "boolean"},
                "ids": {"type": "array", "items": {"type": "string"}},
                "domains": {"type": ["array", "null"], "items": {"type": "string"}},
                "profile": {"anyOf": [{"$ref": "#/$defs/Profile"}, {"type": "null"}]},
                "lang": {"type": "string", "enum": ["en", "de"]}
            },
            "$defs": {
                "Profile": {"type": "object", "properties": {
                    "phone": {"type": ["string", "null"]},
                    "age": {"type": "integer"}
                }}
            }
        })
    }

    #[test]
    fn coerces_by_schema_and_kinds() {
        let s = sub(&[
            ("_csrf", "x"),
            (
                "_kinds",
                r#"{"enabled":"checkbox","domains":"lines","ids":"checkboxes","extra":"checkbox"}"#,
            ),
            ("name", "Ada"),
            ("limit", "25"),
            ("ratio", "0.5"),
            ("ids", "a"),
            ("ids", "b"),
            ("domains", "x.org\r\n\r\n  y.org  \n"),
            ("profile.phone", "+1"),
            ("profile.age", "42"),
            ("lang", ""),
        ]);
        let v = to_json(&s, Some(&schema())).unwrap();
        assert_eq!(
            v,
            json!({
                "name": "Ada", "limit": 25, "ratio": 0.5, "ids": ["a", "b"],
                "domains": ["x.org", "y.org"], "profile": {"phone": "+1", "age": 42},
                "enabled": false, "extra": false
            })
        );
    }

    #[test]
    fn empty_lists_and_bad_numbers() {
        let s = sub(&[("_kinds", r#"{"ids":"checkboxes"}"#), ("limit", "")]);
        let v = to_json(&s, Some(&schema())).unwrap();
        assert_eq!(v, json!({"ids": [], "limit": null}));
        let err = to_json(&sub(&[("limit", "ten")]), Some(&schema())).unwrap_err();
        assert_eq!(err.0, "limit");
        assert!(err.1.contains("ten"));
        let err = to_json(&sub(&[("a", "1"), ("a.b", "2")]), None).unwrap_err();
        assert_eq!(err.0, "a.b");
    }

    #[test]
    fn blank_optional_fields_are_left_out() {
        let kinds = r#"{"profile.phone":"optional","name":"optional"}"#;
        let s = sub(&[("_kinds", kinds), ("profile.phone", "  "), ("name", "Ada")]);
        let v = to_json(&s, Some(&schema())).unwrap();
        assert_eq!(v, json!({"name": "Ada"}));
        // Without the hint a blank text is sent as it is.
        let v = to_json(&sub(&[("profile.phone", "")]), Some(&schema())).unwrap();
        assert_eq!(v, json!({"profile": {"phone": ""}}));
    }

    #[test]
    fn files_become_base64_with_content_type() {
        let schema = json!({"type": "object", "properties": {
            "data": {"type": "string"}, "content_type": {"type": "string"}}});
        let mut s = sub(&[]);
        s.files.push(Upload {
            name: "data".into(),
            content_type: "image/png".into(),
            bytes: vec![1, 2, 3],
        });
        let v = to_json(&s, Some(&schema)).unwrap();
        assert_eq!(v, json!({"data": "AQID", "content_type": "image/png"}));
    }

    #[test]
    fn bulk_values_are_merged() {
        let s = sub(&[
            ("ids", "u1"),
            ("_bulk", r#"{"values": {"status": "disabled"}}"#),
        ]);
        let v = to_json(&s, Some(&schema())).unwrap();
        assert_eq!(v, json!({"ids": ["u1"], "status": "disabled"}));
    }
}
