//! Decoding a [`Subject`] without serde's buffering of internally tagged
//! enums.
//!
//! `#[serde(tag = "kind")]`'s derived `Deserialize` cannot know where the
//! tag is, so it first copies the whole object into an intermediate tree
//! (`Content`: every permission, role and group string allocated twice)
//! and then decodes the variant from that. Every call context carries a
//! subject, and a user's has dozens of strings, so this was a visible share
//! of each authenticated request. The host and serde write `kind` first:
//! then the variant is decoded straight from the input. Any other order
//! still works (through a `serde_json::Value`), with the same result.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::context::{Subject, UserSubject};

const VARIANTS: &[&str] = &["system", "plugin", "anonymous", "user"];

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SubjectVisitor)
    }
}

/// The fields of `Subject::Plugin`.
#[derive(Deserialize)]
struct PluginFields {
    id: String,
}

/// The fields of `Subject::Anonymous`.
#[derive(Deserialize)]
struct AnonymousFields {
    #[serde(default)]
    permissions: BTreeSet<String>,
}

/// The same enum with serde's derived (buffering) decoder, for objects
/// whose `kind` is not the first member.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Tagged {
    System,
    Plugin {
        id: String,
    },
    Anonymous {
        #[serde(default)]
        permissions: BTreeSet<String>,
    },
    User(UserSubject),
}

impl From<Tagged> for Subject {
    fn from(t: Tagged) -> Self {
        match t {
            Tagged::System => Subject::System,
            Tagged::Plugin { id } => Subject::Plugin { id },
            Tagged::Anonymous { permissions } => Subject::Anonymous { permissions },
            Tagged::User(u) => Subject::User(u),
        }
    }
}

/// A map key: whether it is `kind`, else its text (kept for the slow path).
enum Key {
    Kind,
    Other(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(if v == "kind" {
            Key::Kind
        } else {
            Key::Other(v.to_string())
        })
    }
}

/// The variant name, borrowed when the input allows it.
struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        String::deserialize(deserializer)
    }
}

struct SubjectVisitor;

impl<'de> Visitor<'de> for SubjectVisitor {
    type Value = Subject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a subject object with a \"kind\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Subject, A::Error> {
        let first = match map.next_key_seed(KeySeed)? {
            Some(key) => key,
            None => return Err(de::Error::missing_field("kind")),
        };
        let first_name = match first {
            Key::Kind => {
                let kind = map.next_value_seed(KindSeed)?;
                return variant(&kind, map);
            }
            Key::Other(name) => name,
        };
        // Slow path: `kind` comes later; decode through a JSON value.
        let mut object = serde_json::Map::new();
        let value: serde_json::Value = map.next_value()?;
        object.insert(first_name, value);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let name = match key {
                Key::Kind => "kind".to_string(),
                Key::Other(name) => name,
            };
            let value: serde_json::Value = map.next_value()?;
            object.insert(name, value);
        }
        serde_json::from_value::<Tagged>(serde_json::Value::Object(object))
            .map(Subject::from)
            .map_err(de::Error::custom)
    }
}

/// Decodes the rest of the object as variant `kind`.
fn variant<'de, A: MapAccess<'de>>(kind: &str, map: A) -> Result<Subject, A::Error> {
    let rest = MapAccessDeserializer::new(map);
    match kind {
        "system" => {
            de::IgnoredAny::deserialize(rest)?;
            Ok(Subject::System)
        }
        "plugin" => PluginFields::deserialize(rest).map(|p| Subject::Plugin { id: p.id }),
        "anonymous" => AnonymousFields::deserialize(rest).map(|a| Subject::Anonymous {
            permissions: a.permissions,
        }),
        "user" => UserSubject::deserialize(rest).map(Subject::User),
        other => Err(de::Error::unknown_variant(other, VARIANTS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallContext;

    fn user() -> Subject {
        Subject::User(UserSubject {
            id: "u1".into(),
            email: "a@example.com".into(),
            name: "A \"quoted\" name".into(),
            permissions: ["a.b".to_string(), "c.d".to_string()].into(),
            roles: ["admin".to_string()].into(),
            groups: BTreeSet::new(),
            licenses: ["l1".to_string()].into(),
            session_id: Some("s1".into()),
            must_change_password: true,
        })
    }

    #[test]
    fn every_variant_round_trips_and_matches_the_derived_decoder() {
        let subjects = [
            Subject::System,
            Subject::Plugin { id: "role".into() },
            Subject::default(),
            Subject::Anonymous {
                permissions: ["x.y".to_string()].into(),
            },
            user(),
        ];
        for subject in subjects {
            let json = serde_json::to_string(&subject).unwrap();
            assert!(json.starts_with("{\"kind\":"), "{json}");
            let fast: Subject = serde_json::from_str(&json).unwrap();
            assert_eq!(fast, subject, "{json}");
            let derived: Tagged = serde_json::from_str(&json).unwrap();
            assert_eq!(Subject::from(derived), subject, "{json}");
            // Inside a call context too (also from a `Value`).
            let ctx = CallContext::for_subject(subject.clone());
            let text = serde_json::to_string(&ctx).unwrap();
            assert_eq!(serde_json::from_str::<CallContext>(&text).unwrap(), ctx);
            let value = serde_json::to_value(&ctx).unwrap();
            assert_eq!(serde_json::from_value::<CallContext>(value).unwrap(), ctx);
        }
    }

    #[test]
    fn kind_may_come_anywhere_and_defaults_apply() {
        let s: Subject = serde_json::from_str(r#"{"id":"u1","kind":"user"}"#).unwrap();
        assert_eq!(
            s,
            Subject::User(UserSubject {
                id: "u1".into(),
                ..Default::default()
            })
        );
        let s: Subject = serde_json::from_str(r#"{"kind":"anonymous"}"#).unwrap();
        assert_eq!(s, Subject::default());
        let s: Subject = serde_json::from_str(r#"{"id":"p","kind":"plugin"}"#).unwrap();
        assert_eq!(s, Subject::Plugin { id: "p".into() });
        // Unknown members are ignored, as by the derived decoder.
        let s: Subject = serde_json::from_str(r#"{"kind":"system","extra":[1]}"#).unwrap();
        assert_eq!(s, Subject::System);
    }

    #[test]
    fn bad_subjects_are_refused_with_a_clear_error() {
        for (json, needle) in [
            (r#"{}"#, "kind"),
            (r#"{"kind":"root"}"#, "root"),
            (r#"{"id":"x","kind":"wizard"}"#, "wizard"),
            (r#"{"kind":"plugin"}"#, "id"),
            (r#"{"kind":"user","permissions":"all"}"#, "sequence"),
            (r#"[]"#, "subject"),
            (r#"{"kind":7}"#, "string"),
        ] {
            let err = serde_json::from_str::<Subject>(json).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
    }
}
