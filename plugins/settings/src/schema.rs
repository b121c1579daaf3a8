//! The schema language of settings sections: a small, strict subset of JSON
//! Schema that this plugin implements itself.
//!
//! A schema is parsed once into a [`Schema`] tree (rejecting unknown or
//! misplaced keywords with the path of the offending keyword), then used to
//!
//! * [`Schema::validate`] a document, collecting every error with the path of
//!   the field (`password_policy.min_length`, `consent_options[1].id`);
//! * [`Schema::merge_defaults`] fill the declared properties a `put` left out
//!   from the section's defaults;
//! * [`Schema::migrate`] carry a stored document over to a new schema on
//!   re-registration (keep valid values, take defaults for new or invalid
//!   fields, drop fields the schema no longer has);
//! * [`Schema::collect_refs`] find every `x-ref` value (role or group ids) to
//!   check against the owning system, and [`Schema::remove_ref`] drop a
//!   deleted id from a document.
//!
//! Supported keywords (every node must name its `type`):
//!
//! | type | keywords |
//! |---|---|
//! | any | `type`, `enum`, `title`, `description` |
//! | `object` | `properties`, `required`, `additionalProperties` (`false` = default, `true`, or a schema for the values), `x-less-or-equal` (pairs of numeric properties, `[["min_length","max_length"]]`) |
//! | `array` | `items` (required), `minItems`, `maxItems`, `uniqueItems`, `x-unique-by` (items are objects whose property of that name is unique) |
//! | `string` | `minLength`, `maxLength` (in characters), `format` (`domain`, `slug`), `x-ref` (`role` or `group`) |
//! | `integer`, `number` | `minimum`, `maximum` (inclusive) |
//! | `boolean` | – |

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused in schemas (documents are bounded by
/// their schema).
const MAX_SCHEMA_DEPTH: usize = 32;

/// At most this many validation errors are collected for one document.
const MAX_ERRORS: usize = 50;

/// One problem found in a schema or a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The path of the field, for example `password_policy.min_length` or
    /// `consent_options[1].id`; empty for the document itself.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A path inside a JSON value, rendered as `a.b[2].c`.
#[derive(Debug, Clone, Default)]
struct Path(Vec<Segment>);

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Path {
    fn key(&self, key: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_string()));
        p
    }

    fn index(&self, index: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Segment::Index(index));
        p
    }

    fn error(&self, message: impl Into<String>) -> FieldError {
        FieldError {
            path: self.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Which system an `x-ref` string refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefKind {
    /// A role id, checked with `role.check`.
    Role,
    /// A group id, checked with `group.check`.
    Group,
}

impl RefKind {
    /// The system (plugin id) that owns ids of this kind.
    pub fn system(self) -> &'static str {
        match self {
            RefKind::Role => "role",
            RefKind::Group => "group",
        }
    }

    fn parse(s: &str) -> Option<RefKind> {
        match s {
            "role" => Some(RefKind::Role),
            "group" => Some(RefKind::Group),
            _ => None,
        }
    }
}

/// A reference found in a document: its kind, the field path and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Role or group.
    pub kind: RefKind,
    /// Where it is, for example `default_roles[0]`.
    pub path: String,
    /// The referenced id.
    pub id: String,
}

/// Named string formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// A lowercase DNS name or suffix: `example.com`, `mail.example.org`.
    Domain,
    /// `^[a-z0-9][a-z0-9_-]{0,63}$`.
    Slug,
}

/// A parsed schema node.
#[derive(Debug, Clone)]
pub struct Schema {
    kind: Kind,
    enum_values: Option<Vec<Value>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Object(ObjectSchema),
    Array(ArraySchema),
    String(StringSchema),
    Integer(NumberSchema),
    Number(NumberSchema),
    Boolean,
}

#[derive(Debug, Clone)]
struct ObjectSchema {
    properties: BTreeMap<String, Schema>,
    required: Vec<String>,
    additional: Additional,
    less_or_equal: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum Additional {
    Forbidden,
    Any,
    Schema(Box<Schema>),
}

#[derive(Debug, Clone)]
struct ArraySchema {
    items: Box<Schema>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    unique_by: Option<String>,
}

#[derive(Debug, Clone)]
struct StringSchema {
    min_length: Option<u64>,
    max_length: Option<u64>,
    format: Option<Format>,
    x_ref: Option<RefKind>,
}

#[derive(Debug, Clone)]
struct NumberSchema {
    minimum: Option<Number>,
    maximum: Option<Number>,
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

const COMMON_KEYWORDS: &[&str] = &["type", "enum", "title", "description"];
const OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "additionalProperties",
    "x-less-or-equal",
];
const ARRAY_KEYWORDS: &[&str] = &[
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "x-unique-by",
];
const STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "format", "x-ref"];
const NUMBER_KEYWORDS: &[&str] = &["minimum", "maximum"];

impl Schema {
    /// Parses a schema. Errors name the path of the offending keyword
    /// relative to the schema root (for example
    /// `properties.password_policy.properties.min_length.minimum`).
    pub fn parse(value: &Value) -> Result<Schema, FieldError> {
        parse_node(value, &Path::default(), 0)
    }

    /// Whether this node is an object schema (a section's root must be).
    pub fn is_object(&self) -> bool {
        matches!(self.kind, Kind::Object(_))
    }

    /// Validates `value`, returning every problem found (at most 50), each
    /// with the path of the field. Does not check `x-ref` targets.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.validate_at(value, &Path::default(), &mut errors);
        errors
    }

    /// Fills the declared object properties missing from `given` with the
    /// corresponding values of `default`, recursively through nested objects
    /// present in both. Arrays and scalars given are kept as they are.
    pub fn merge_defaults(&self, default: Option<&Value>, given: Value) -> Value {
        let (Kind::Object(obj), Some(Value::Object(defaults))) = (&self.kind, default) else {
            return given;
        };
        let mut map = match given {
            Value::Object(map) => map,
            other => return other,
        };
        for (key, sub) in &obj.properties {
            match map.remove(key) {
                Some(v) => {
                    let merged = sub.merge_defaults(defaults.get(key), v);
                    map.insert(key.clone(), merged);
                }
                None => {
                    if let Some(d) = defaults.get(key) {
                        map.insert(key.clone(), d.clone());
                    }
                }
            }
        }
        Value::Object(map)
    }

    /// Carries a stored value over to this (new) schema: valid values are
    /// kept, object properties the schema no longer declares are dropped,
    /// new or now-invalid ones take the default. Returns `None` when neither
    /// the old value nor a default fits (the property is then left out).
    pub fn migrate(&self, old: Option<&Value>, default: Option<&Value>) -> Option<Value> {
        let candidate = match (&self.kind, old) {
            (_, None) => None,
            (Kind::Object(obj), Some(Value::Object(old_map))) => {
                let defaults = default.and_then(Value::as_object);
                let mut out = Map::new();
                for (key, sub) in &obj.properties {
                    if let Some(v) =
                        sub.migrate(old_map.get(key), defaults.and_then(|d| d.get(key)))
                    {
                        out.insert(key.clone(), v);
                    }
                }
                match &obj.additional {
                    Additional::Forbidden => {}
                    Additional::Any => {
                        for (key, v) in old_map {
                            if !obj.properties.contains_key(key) {
                                out.insert(key.clone(), v.clone());
                            }
                        }
                    }
                    Additional::Schema(sub) => {
                        for (key, v) in old_map {
                            if !obj.properties.contains_key(key) && sub.validate(v).is_empty() {
                                out.insert(key.clone(), v.clone());
                            }
                        }
                    }
                }
                Some(Value::Object(out))
            }
            (_, Some(v)) => Some(v.clone()),
        };
        match candidate {
            Some(c) if self.validate(&c).is_empty() => Some(c),
            _ => default.cloned(),
        }
    }

    /// Every `x-ref` string in `value` (which must already be valid).
    pub fn collect_refs(&self, value: &Value) -> Vec<Reference> {
        let mut out = Vec::new();
        self.refs_at(value, &Path::default(), &mut out);
        out
    }

    /// Removes `id` from every `x-ref` field of kind `kind` in `value`:
    /// array elements are dropped; a single string field takes its default
    /// (from `default`, the matching part of the section's defaults) unless
    /// that is the deleted id too, otherwise the property is removed.
    /// Returns whether anything changed.
    pub fn remove_ref(
        &self,
        value: &mut Value,
        default: Option<&Value>,
        kind: RefKind,
        id: &str,
    ) -> bool {
        match (&self.kind, value) {
            (Kind::Object(obj), Value::Object(map)) => {
                let defaults = default.and_then(Value::as_object);
                let mut changed = false;
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let (sub, sub_default) = match obj.properties.get(&key) {
                        Some(sub) => (sub, defaults.and_then(|d| d.get(&key))),
                        None => match &obj.additional {
                            Additional::Schema(sub) => (sub.as_ref(), None),
                            _ => continue,
                        },
                    };
                    if sub.is_ref_to(kind) {
                        if map.get(&key).and_then(Value::as_str) == Some(id) {
                            match sub_default {
                                Some(d) if d.as_str() != Some(id) => {
                                    map.insert(key, d.clone());
                                }
                                _ => {
                                    map.remove(&key);
                                }
                            }
                            changed = true;
                        }
                    } else if let Some(v) = map.get_mut(&key) {
                        changed |= sub.remove_ref(v, sub_default, kind, id);
                    }
                }
                changed
            }
            (Kind::Array(arr), Value::Array(items)) => {
                if arr.items.is_ref_to(kind) {
                    let before = items.len();
                    items.retain(|v| v.as_str() != Some(id));
                    items.len() != before
                } else {
                    let mut changed = false;
                    for item in items.iter_mut() {
                        changed |= arr.items.remove_ref(item, None, kind, id);
                    }
                    changed
                }
            }
            _ => false,
        }
    }

    fn is_ref_to(&self, kind: RefKind) -> bool {
        matches!(&self.kind, Kind::String(s) if s.x_ref == Some(kind))
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Object(_) => "object",
            Kind::Array(_) => "array",
            Kind::String(_) => "string",
            Kind::Integer(_) => "integer",
            Kind::Number(_) => "number",
            Kind::Boolean => "boolean",
        }
    }

    fn validate_at(&self, value: &Value, path: &Path, errors: &mut Vec<FieldError>) {
        if errors.len() >= MAX_ERRORS {
            return;
        }
        if !self.type_matches(value) {
            errors.push(path.error(format!(
                "must be {} {}, got {}",
                article(self.type_name()),
                self.type_name(),
                describe(value)
            )));
            return;
        }
        if let Some(allowed) = &self.enum_values {
            if !allowed.contains(value) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                errors.push(path.error(format!(
                    "must be one of {}, got {}",
                    list.join(", "),
                    value
                )));
                return;
            }
        }
        match (&self.kind, value) {
            (Kind::Object(obj), Value::Object(map)) => obj.validate(map, path, errors),
            (Kind::Array(arr), Value::Array(items)) => arr.validate(items, path, errors),
            (Kind::String(s), Value::String(text)) => s.validate(text, path, errors),
            (Kind::Integer(n) | Kind::Number(n), Value::Number(num)) => {
                n.validate(num, path, errors)
            }
            _ => {}
        }
    }

    fn type_matches(&self, value: &Value) -> bool {
        match (&self.kind, value) {
            (Kind::Object(_), Value::Object(_))
            | (Kind::Array(_), Value::Array(_))
            | (Kind::String(_), Value::String(_))
            | (Kind::Boolean, Value::Bool(_)) => true,
            (Kind::Integer(_), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Number(_), Value::Number(_)) => true,
            _ => false,
        }
    }

    fn refs_at(&self, value: &Value, path: &Path, out: &mut Vec<Reference>) {
        match (&self.kind, value) {
            (Kind::Object(obj), Value::Object(map)) => {
                for (key, v) in map {
                    let sub = match obj.properties.get(key) {
                        Some(sub) => sub,
                        None => match &obj.additional {
                            Additional::Schema(sub) => sub.as_ref(),
                            _ => continue,
                        },
                    };
                    sub.refs_at(v, &path.key(key), out);
                }
            }
            (Kind::Array(arr), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    arr.items.refs_at(item, &path.index(i), out);
                }
            }
            (Kind::String(s), Value::String(id)) => {
                if let Some(kind) = s.x_ref {
                    out.push(Reference {
                        kind,
                        path: path.to_string(),
                        id: id.clone(),
                    });
                }
            }
            _ => {}
        }
    }
}

impl ObjectSchema {
    fn validate(&self, map: &Map<String, Value>, path: &Path, errors: &mut Vec<FieldError>) {
        for key in &self.required {
            if !map.contains_key(key) {
                errors.push(path.key(key).error("is required"));
            }
        }
        for (key, v) in map {
            match self.properties.get(key) {
                Some(sub) => sub.validate_at(v, &path.key(key), errors),
                None => match &self.additional {
                    Additional::Forbidden => {
                        errors.push(path.key(key).error("is not a known field"));
                    }
                    Additional::Any => {}
                    Additional::Schema(sub) => sub.validate_at(v, &path.key(key), errors),
                },
            }
        }
        for (low, high) in &self.less_or_equal {
            if let (Some(Value::Number(a)), Some(Value::Number(b))) = (map.get(low), map.get(high))
            {
                if compare_numbers(a, b) == Ordering::Greater {
                    errors.push(
                        path.key(low)
                            .error(format!("must not be greater than {high} ({b}), got {a}")),
                    );
                }
            }
        }
    }
}

impl ArraySchema {
    fn validate(&self, items: &[Value], path: &Path, errors: &mut Vec<FieldError>) {
        let n = items.len() as u64;
        if let Some(min) = self.min_items {
            if n < min {
                errors.push(path.error(format!("must have at least {min} items, got {n}")));
            }
        }
        if let Some(max) = self.max_items {
            if n > max {
                errors.push(path.error(format!("must have at most {max} items, got {n}")));
            }
        }
        let before = errors.len();
        for (i, item) in items.iter().enumerate() {
            self.items.validate_at(item, &path.index(i), errors);
        }
        if errors.len() > before {
            // Uniqueness is only meaningful among valid items.
            return;
        }
        if self.unique_items {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(first) = seen.insert(canonical(item), i) {
                    errors.push(path.index(i).error(format!(
                        "duplicates {} (items must be unique)",
                        path.index(first)
                    )));
                    seen.insert(canonical(item), first);
                }
            }
        }
        if let Some(key) = &self.unique_by {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                let Some(v) = item.get(key) else { continue };
                if let Some(first) = seen.get(&canonical(v)) {
                    errors.push(path.index(i).key(key).error(format!(
                        "duplicate {key} {v} (also at {})",
                        path.index(*first).key(key)
                    )));
                } else {
                    seen.insert(canonical(v), i);
                }
            }
        }
    }
}

impl StringSchema {
    fn validate(&self, text: &str, path: &Path, errors: &mut Vec<FieldError>) {
        let len = text.chars().count() as u64;
        if let Some(min) = self.min_length {
            if len < min {
                errors
                    .push(path.error(format!("must be at least {min} characters long, got {len}")));
            }
        }
        if let Some(max) = self.max_length {
            if len > max {
                errors
                    .push(path.error(format!("must be at most {max} characters long, got {len}")));
            }
        }
        match self.format {
            Some(Format::Domain) => {
                if let Err(why) = check_domain(text) {
                    errors.push(path.error(format!("must be a domain like example.com: {why}")));
                }
            }
            Some(Format::Slug) if !is_slug(text) => {
                errors.push(path.error(
                    "must be 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
                ));
            }
            Some(Format::Slug) | None => {}
        }
        if self.x_ref.is_some() && text.is_empty() {
            errors.push(path.error("must not be empty"));
        }
    }
}

impl NumberSchema {
    fn validate(&self, num: &Number, path: &Path, errors: &mut Vec<FieldError>) {
        if let Some(min) = &self.minimum {
            if compare_numbers(num, min) == Ordering::Less {
                errors.push(path.error(format!("must be at least {min}, got {num}")));
            }
        }
        if let Some(max) = &self.maximum {
            if compare_numbers(num, max) == Ordering::Greater {
                errors.push(path.error(format!("must be at most {max}, got {num}")));
            }
        }
    }
}

fn parse_node(value: &Value, path: &Path, depth: usize) -> Result<Schema, FieldError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(path.error(format!(
            "schemas may nest at most {MAX_SCHEMA_DEPTH} levels"
        )));
    }
    let Value::Object(map) = value else {
        return Err(path.error(format!(
            "a schema must be an object, got {}",
            describe(value)
        )));
    };
    let type_name = match map.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(other) => {
            return Err(path
                .key("type")
                .error(format!("must be a string, got {}", describe(other))))
        }
        None => {
            return Err(path
                .key("type")
                .error("is required (object, array, string, integer, number or boolean)"))
        }
    };
    let specific: &[&str] = match type_name {
        "object" => OBJECT_KEYWORDS,
        "array" => ARRAY_KEYWORDS,
        "string" => STRING_KEYWORDS,
        "integer" | "number" => NUMBER_KEYWORDS,
        "boolean" => &[],
        other => {
            return Err(path.key("type").error(format!(
                "unknown type '{other}' (use object, array, string, integer, number or boolean)"
            )))
        }
    };
    for key in map.keys() {
        if !COMMON_KEYWORDS.contains(&key.as_str()) && !specific.contains(&key.as_str()) {
            return Err(path
                .key(key)
                .error(format!("is not a supported keyword for type {type_name}")));
        }
    }
    for key in ["title", "description"] {
        if let Some(v) = map.get(key) {
            if !v.is_string() {
                return Err(path.key(key).error("must be a string"));
            }
        }
    }
    let kind = match type_name {
        "object" => Kind::Object(parse_object(map, path, depth)?),
        "array" => Kind::Array(parse_array(map, path, depth)?),
        "string" => Kind::String(parse_string(map, path)?),
        "integer" => Kind::Integer(parse_number(map, path, true)?),
        "number" => Kind::Number(parse_number(map, path, false)?),
        _ => Kind::Boolean,
    };
    let mut schema = Schema {
        kind,
        enum_values: None,
    };
    if let Some(e) = map.get("enum") {
        let enum_path = path.key("enum");
        let Value::Array(values) = e else {
            return Err(enum_path.error("must be an array of allowed values"));
        };
        if values.is_empty() {
            return Err(enum_path.error("must list at least one value"));
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(err) = schema.validate(v).into_iter().next() {
                return Err(enum_path
                    .index(i)
                    .error(format!("does not fit the schema: {err}")));
            }
        }
        schema.enum_values = Some(values.clone());
    }
    Ok(schema)
}

fn parse_object(
    map: &Map<String, Value>,
    path: &Path,
    depth: usize,
) -> Result<ObjectSchema, FieldError> {
    let mut properties = BTreeMap::new();
    match map.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            let props_path = path.key("properties");
            for (name, sub) in props {
                if name.is_empty() {
                    return Err(props_path.error("property names must not be empty"));
                }
                properties.insert(
                    name.clone(),
                    parse_node(sub, &props_path.key(name), depth + 1)?,
                );
            }
        }
        Some(_) => {
            return Err(path
                .key("properties")
                .error("must be an object mapping property names to schemas"))
        }
    }
    let mut required = Vec::new();
    if let Some(r) = map.get("required") {
        let req_path = path.key("required");
        let Value::Array(names) = r else {
            return Err(req_path.error("must be an array of property names"));
        };
        let mut seen = BTreeSet::new();
        for (i, n) in names.iter().enumerate() {
            let Some(name) = n.as_str() else {
                return Err(req_path.index(i).error("must be a string"));
            };
            if !properties.contains_key(name) {
                return Err(req_path
                    .index(i)
                    .error(format!("'{name}' is not a declared property")));
            }
            if seen.insert(name) {
                required.push(name.to_string());
            }
        }
    }
    let additional = match map.get("additionalProperties") {
        None | Some(Value::Bool(false)) => Additional::Forbidden,
        Some(Value::Bool(true)) => Additional::Any,
        Some(v @ Value::Object(_)) => Additional::Schema(Box::new(parse_node(
            v,
            &path.key("additionalProperties"),
            depth + 1,
        )?)),
        Some(_) => {
            return Err(path
                .key("additionalProperties")
                .error("must be true, false or a schema"))
        }
    };
    let mut less_or_equal = Vec::new();
    if let Some(v) = map.get("x-less-or-equal") {
        let lp = path.key("x-less-or-equal");
        let Value::Array(pairs) = v else {
            return Err(lp.error("must be an array of [lower, upper] property name pairs"));
        };
        for (i, pair) in pairs.iter().enumerate() {
            let names: Option<Vec<&str>> = pair
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| a.iter().map(Value::as_str).collect());
            let Some(names) = names else {
                return Err(lp.index(i).error("must be a pair of property names"));
            };
            for name in &names {
                let numeric = properties
                    .get(*name)
                    .is_some_and(|s| matches!(s.kind, Kind::Integer(_) | Kind::Number(_)));
                if !numeric {
                    return Err(lp.index(i).error(format!(
                        "'{name}' is not a declared integer or number property"
                    )));
                }
            }
            less_or_equal.push((names[0].to_string(), names[1].to_string()));
        }
    }
    Ok(ObjectSchema {
        properties,
        required,
        additional,
        less_or_equal,
    })
}

fn parse_array(
    map: &Map<String, Value>,
    path: &Path,
    depth: usize,
) -> Result<ArraySchema, FieldError> {
    let Some(items_value) = map.get("items") else {
        return Err(path
            .key("items")
            .error("is required for arrays (the schema of every item)"));
    };
    let items = parse_node(items_value, &path.key("items"), depth + 1)?;
    let min_items = parse_count(map, path, "minItems")?;
    let max_items = parse_count(map, path, "maxItems")?;
    if let (Some(min), Some(max)) = (min_items, max_items) {
        if min > max {
            return Err(path.key("minItems").error("must not exceed maxItems"));
        }
    }
    let unique_items = match map.get("uniqueItems") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(path.key("uniqueItems").error("must be a boolean")),
    };
    let unique_by = match map.get("x-unique-by") {
        None => None,
        Some(Value::String(key)) => {
            let ok = matches!(&items.kind, Kind::Object(o) if o.properties.contains_key(key));
            if !ok {
                return Err(path.key("x-unique-by").error(format!(
                    "items must be objects declaring the property '{key}'"
                )));
            }
            Some(key.clone())
        }
        Some(_) => return Err(path.key("x-unique-by").error("must be a property name")),
    };
    Ok(ArraySchema {
        items: Box::new(items),
        min_items,
        max_items,
        unique_items,
        unique_by,
    })
}

fn parse_string(map: &Map<String, Value>, path: &Path) -> Result<StringSchema, FieldError> {
    let min_length = parse_count(map, path, "minLength")?;
    let max_length = parse_count(map, path, "maxLength")?;
    if let (Some(min), Some(max)) = (min_length, max_length) {
        if min > max {
            return Err(path.key("minLength").error("must not exceed maxLength"));
        }
    }
    let format = match map.get("format") {
        None => None,
        Some(Value::String(f)) if f == "domain" => Some(Format::Domain),
        Some(Value::String(f)) if f == "slug" => Some(Format::Slug),
        Some(_) => {
            return Err(path
                .key("format")
                .error("unknown format (supported: domain, slug)"))
        }
    };
    let x_ref = match map.get("x-ref") {
        None => None,
        Some(v) => match v.as_str().and_then(RefKind::parse) {
            Some(kind) => Some(kind),
            None => return Err(path.key("x-ref").error("must be \"role\" or \"group\"")),
        },
    };
    Ok(StringSchema {
        min_length,
        max_length,
        format,
        x_ref,
    })
}

fn parse_number(
    map: &Map<String, Value>,
    path: &Path,
    integer: bool,
) -> Result<NumberSchema, FieldError> {
    let bound = |key: &str| -> Result<Option<Number>, FieldError> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                if integer && !(n.is_i64() || n.is_u64()) {
                    return Err(path.key(key).error("must be an integer"));
                }
                Ok(Some(n.clone()))
            }
            Some(_) => Err(path.key(key).error("must be a number")),
        }
    };
    let minimum = bound("minimum")?;
    let maximum = bound("maximum")?;
    if let (Some(min), Some(max)) = (&minimum, &maximum) {
        if compare_numbers(min, max) == Ordering::Greater {
            return Err(path.key("minimum").error("must not exceed maximum"));
        }
    }
    Ok(NumberSchema { minimum, maximum })
}

fn parse_count(
    map: &Map<String, Value>,
    path: &Path,
    key: &str,
) -> Result<Option<u64>, FieldError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| path.key(key).error("must be a non-negative integer")),
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Compares two JSON numbers exactly when both are integers.
fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    let as_int = |n: &Number| -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let x = a.as_f64().unwrap_or(f64::NAN);
            let y = b.as_f64().unwrap_or(f64::NAN);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// A canonical text form (object keys sorted) for uniqueness checks.
fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(k) {
                        write(v, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Whether `s` matches `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn check_domain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("1 to 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err("empty label (leading, trailing or double dot)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        {
            return Err("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Schema {
        Schema::parse(&v).unwrap()
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    fn policy() -> Schema {
        schema(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "policy": {
                    "type": "object",
                    "properties": {
                        "min_length": {"type": "integer", "minimum": 8, "maximum": 128},
                        "max_length": {"type": "integer", "minimum": 64, "maximum": 4096},
                        "flag": {"type": "boolean"}
                    },
                    "x-less-or-equal": [["min_length", "max_length"]]
                },
                "ratio": {"type": "number", "minimum": 0, "maximum": 1},
                "roles": {"type": "array", "items": {"type": "string", "x-ref": "role"},
                          "uniqueItems": true, "maxItems": 3},
                "owner_group": {"type": "string", "x-ref": "group"},
                "options": {
                    "type": "array",
                    "x-unique-by": "id",
                    "items": {
                        "type": "object",
                        "required": ["id", "title"],
                        "properties": {
                            "id": {"type": "string", "format": "slug"},
                            "title": {"type": "string"},
                            "group": {"type": "string", "x-ref": "group"}
                        }
                    }
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string", "x-ref": "role"}},
                "domains": {"type": "array", "items": {"type": "string", "format": "domain"}}
            }
        }))
    }

    #[test]
    fn a_valid_document_has_no_errors() {
        let doc = json!({
            "name": "abc", "mode": "a", "policy": {"min_length": 12, "max_length": 256, "flag": true},
            "ratio": 0.5, "roles": ["r1", "r2"], "owner_group": "g",
            "options": [{"id": "gtc", "title": "T"}, {"id": "dp", "title": "D", "group": "g2"}],
            "labels": {"x": "r3"}, "domains": ["example.com", "mail.example-x.org"]
        });
        assert_eq!(policy().validate(&doc), vec![]);
    }

    #[test]
    fn errors_name_the_field_path() {
        let s = policy();
        let cases = [
            (json!({"name": 5}), "name", "must be a string"),
            (json!({"name": ""}), "name", "at least 1 characters"),
            (json!({"name": "abcdef"}), "name", "at most 5 characters"),
            (json!({"mode": "c"}), "mode", "one of"),
            (
                json!({"policy": {"min_length": 7}}),
                "policy.min_length",
                "at least 8",
            ),
            (
                json!({"policy": {"min_length": 129}}),
                "policy.min_length",
                "at most 128",
            ),
            (
                json!({"policy": {"min_length": 12.5}}),
                "policy.min_length",
                "must be an integer",
            ),
            (
                json!({"policy": {"flag": "yes"}}),
                "policy.flag",
                "must be a boolean",
            ),
            (
                json!({"policy": {"extra": 1}}),
                "policy.extra",
                "not a known field",
            ),
            (
                json!({"policy": {"min_length": 100, "max_length": 64}}),
                "policy.min_length",
                "greater than max_length",
            ),
            (json!({"ratio": 2}), "ratio", "at most 1"),
            (json!({"ratio": "x"}), "ratio", "must be a number"),
            (
                json!({"roles": ["a", "a"]}),
                "roles[1]",
                "duplicates roles[0]",
            ),
            (
                json!({"roles": ["a", "b", "c", "d"]}),
                "roles",
                "at most 3 items",
            ),
            (json!({"roles": [1]}), "roles[0]", "must be a string"),
            (json!({"roles": [""]}), "roles[0]", "must not be empty"),
            (
                json!({"options": [{"id": "a"}]}),
                "options[0].title",
                "is required",
            ),
            (
                json!({"options": [{"id": "a", "title": "x"}, {"id": "a", "title": "y"}]}),
                "options[1].id",
                "duplicate id",
            ),
            (
                json!({"options": [{"id": "Bad Id", "title": "x"}]}),
                "options[0].id",
                "a-z",
            ),
            (json!({"labels": {"k": 3}}), "labels.k", "must be a string"),
            (
                json!({"domains": ["Example.com"]}),
                "domains[0]",
                "lowercase",
            ),
            (
                json!({"domains": [".example.com"]}),
                "domains[0]",
                "empty label",
            ),
            (json!({"unknown": true}), "unknown", "not a known field"),
        ];
        for (doc, path, needle) in cases {
            let errors = s.validate(&doc);
            assert_eq!(errors.len(), 1, "{doc}: {errors:?}");
            assert_eq!(errors[0].path, path, "{doc}: {errors:?}");
            assert!(errors[0].message.contains(needle), "{doc}: {errors:?}");
        }
        let errors = s.validate(&json!([]));
        assert_eq!(paths(&errors), [""]);
        assert!(errors[0].to_string().contains("must be an object"));
    }

    #[test]
    fn every_error_is_collected() {
        let errors = policy().validate(&json!({"name": 1, "mode": "z", "x": 1}));
        assert_eq!(paths(&errors), ["mode", "name", "x"]);
    }

    #[test]
    fn bad_schemas_are_rejected_with_the_keyword_path() {
        let cases = [
            (json!({"type": "thing"}), "type"),
            (json!({}), "type"),
            (json!("string"), ""),
            (json!({"type": "string", "minimum": 1}), "minimum"),
            (
                json!({"type": "object", "properties": {"a": {"type": "integer", "pattern": "x"}}}),
                "properties.a.pattern",
            ),
            (json!({"type": "object", "required": ["a"]}), "required[0]"),
            (json!({"type": "array"}), "items"),
            (json!({"type": "string", "x-ref": "user"}), "x-ref"),
            (json!({"type": "string", "format": "email"}), "format"),
            (json!({"type": "string", "enum": ["a", 1]}), "enum[1]"),
            (
                json!({"type": "integer", "minimum": 5, "maximum": 1}),
                "minimum",
            ),
            (json!({"type": "integer", "minimum": 1.5}), "minimum"),
            (json!({"type": "string", "minLength": -1}), "minLength"),
            (
                json!({"type": "array", "items": {"type": "string"}, "x-unique-by": "id"}),
                "x-unique-by",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "x-less-or-equal": [["a", "b"]]}),
                "x-less-or-equal[0]",
            ),
            (
                json!({"type": "object", "additionalProperties": 3}),
                "additionalProperties",
            ),
        ];
        for (s, path) in cases {
            let err = Schema::parse(&s).unwrap_err();
            assert_eq!(err.path, path, "{s}: {err}");
        }
        let mut deep = json!({"type": "boolean"});
        for _ in 0..40 {
            deep = json!({"type": "array", "items": deep});
        }
        assert!(Schema::parse(&deep).unwrap_err().message.contains("nest"));
    }

    #[test]
    fn merge_fills_declared_properties_from_defaults() {
        let s = policy();
        let defaults = json!({"name": "n", "policy": {"min_length": 12, "max_length": 256, "flag": true}, "roles": ["x"]});
        let merged = s.merge_defaults(
            Some(&defaults),
            json!({"policy": {"min_length": 20}, "roles": []}),
        );
        assert_eq!(
            merged,
            json!({"name": "n", "policy": {"min_length": 20, "max_length": 256, "flag": true}, "roles": []})
        );
    }

    #[test]
    fn migrate_keeps_valid_values_adds_defaults_and_drops_removed_fields() {
        let new_schema = schema(json!({
            "type": "object",
            "properties": {
                "keep": {"type": "integer", "maximum": 10},
                "narrowed": {"type": "integer", "maximum": 10},
                "added": {"type": "boolean"},
                "nested": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
            }
        }));
        let defaults = json!({"keep": 1, "narrowed": 2, "added": true, "nested": {"a": 1, "b": 2}});
        let old = json!({"keep": 5, "narrowed": 50, "gone": "x", "nested": {"a": 9, "c": 3}});
        let migrated = new_schema.migrate(Some(&old), Some(&defaults)).unwrap();
        assert_eq!(
            migrated,
            json!({"keep": 5, "narrowed": 2, "added": true, "nested": {"a": 9, "b": 2}})
        );
        assert_eq!(new_schema.validate(&migrated), vec![]);
    }

    #[test]
    fn refs_are_collected_with_paths() {
        let doc = json!({"roles": ["r1"], "owner_group": "g", "options": [{"id": "a", "title": "t", "group": "g2"}], "labels": {"k": "r2"}});
        let refs = policy().collect_refs(&doc);
        let got: Vec<(RefKind, &str, &str)> = refs
            .iter()
            .map(|r| (r.kind, r.path.as_str(), r.id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (RefKind::Role, "labels.k", "r2"),
                (RefKind::Group, "options[0].group", "g2"),
                (RefKind::Group, "owner_group", "g"),
                (RefKind::Role, "roles[0]", "r1"),
            ]
        );
    }

    #[test]
    fn remove_ref_drops_the_id_everywhere() {
        let s = policy();
        let defaults = json!({"owner_group": "fallback"});
        let mut doc = json!({"roles": ["r1", "gone", "r2"], "owner_group": "gone",
            "options": [{"id": "a", "title": "t", "group": "gone"}], "labels": {"k": "gone", "j": "r1"}});
        assert!(!s.remove_ref(&mut doc.clone(), Some(&defaults), RefKind::Role, "absent"));
        assert!(s.remove_ref(&mut doc, Some(&defaults), RefKind::Role, "gone"));
        assert_eq!(doc["roles"], json!(["r1", "r2"]));
        assert_eq!(doc["labels"], json!({"j": "r1"}));
        assert_eq!(
            doc["owner_group"], "gone",
            "a group field is untouched by role deletion"
        );
        assert!(s.remove_ref(&mut doc, Some(&defaults), RefKind::Group, "gone"));
        assert_eq!(doc["owner_group"], "fallback");
        assert_eq!(doc["options"], json!([{"id": "a", "title": "t"}]));
        // The default itself deleted: the property goes.
        assert!(s.remove_ref(&mut doc, Some(&defaults), RefKind::Group, "fallback"));
        assert!(doc.get("owner_group").is_none());
        assert_eq!(s.validate(&doc), vec![]);
    }

    #[test]
    fn slugs_and_domains() {
        assert!(is_slug("gtc") && is_slug("a_b-1") && is_slug(&"a".repeat(64)));
        assert!(!is_slug("") && !is_slug("-a") && !is_slug("A") && !is_slug(&"a".repeat(65)));
        assert!(check_domain("example.com").is_ok() && check_domain("com").is_ok());
        for bad in [
            "",
            "a..b",
            "a.",
            "-a.com",
            "a-.com",
            "ex ample.com",
            "@example.com",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_compare_exactly() {
        let s = schema(json!({"type": "integer", "maximum": 9007199254740993u64}));
        assert!(s.validate(&json!(9007199254740993u64)).is_empty());
        assert!(!s.validate(&json!(9007199254740994u64)).is_empty());
        assert!(!s.validate(&json!(-1.5)).is_empty());
    }
}
