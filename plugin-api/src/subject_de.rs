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
//!
//! Both orders decode through one derived decoder, [`Wire`]: `kind` is
//! handed to it as the variant name of an externally tagged enum and the
//! rest of the object as the variant's content ([`KindThenRest`]). So the
//! variants and their fields are listed once here (a user's fields not at
//! all: they are `UserSubject`'s own derived decoder), and the conversions
//! to and from [`Subject`] stop compiling when a variant or a field is
//! added there and not here.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::value::{EnumAccessDeserializer, MapAccessDeserializer, MapDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess,
    Visitor,
};
use serde::Deserialize;

use crate::context::{Subject, UserSubject};

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SubjectVisitor)
    }
}

/// [`Subject`]'s variants with serde's default (external) tagging, whose
/// derived decoder needs no buffering.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Wire {
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

impl From<Wire> for Subject {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::System => Subject::System,
            Wire::Plugin { id } => Subject::Plugin { id },
            Wire::Anonymous { permissions } => Subject::Anonymous { permissions },
            Wire::User(u) => Subject::User(u),
        }
    }
}

/// The other direction, so that a variant or field added to [`Subject`]
/// but not to [`Wire`] fails to compile (the tests use it).
#[cfg(test)]
impl From<Subject> for Wire {
    fn from(subject: Subject) -> Self {
        match subject {
            Subject::System => Wire::System,
            Subject::Plugin { id } => Wire::Plugin { id },
            Subject::Anonymous { permissions } => Wire::Anonymous { permissions },
            Subject::User(u) => Wire::User(u),
        }
    }
}

/// An object whose `kind` has been read, as an externally tagged enum:
/// `kind` is the variant name, the object's other members its content.
struct KindThenRest<M> {
    kind: String,
    rest: M,
}

impl<'de, M: MapAccess<'de>> KindThenRest<M> {
    /// Decodes the object as a [`Subject`].
    fn decode(self) -> Result<Subject, M::Error> {
        Wire::deserialize(EnumAccessDeserializer::new(self)).map(Subject::from)
    }
}

impl<'de, M: MapAccess<'de>> EnumAccess<'de> for KindThenRest<M> {
    type Error = M::Error;
    type Variant = Rest<M>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Rest<M>), M::Error> {
        let variant = seed.deserialize(self.kind.into_deserializer())?;
        Ok((variant, Rest(self.rest)))
    }
}

/// The members after `kind`: a variant's content.
struct Rest<M>(M);

impl<'de, M: MapAccess<'de>> VariantAccess<'de> for Rest<M> {
    type Error = M::Error;

    fn unit_variant(self) -> Result<(), M::Error> {
        // Other members are ignored, as by a derived decoder.
        de::IgnoredAny::deserialize(MapAccessDeserializer::new(self.0)).map(drop)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, M::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, M::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Map, &visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, M::Error> {
        visitor.visit_map(self.0)
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
                let kind = map.next_value::<String>()?;
                return KindThenRest { kind, rest: map }.decode();
            }
            Key::Other(name) => name,
        };
        // Slow path: `kind` comes later; collect the other members as JSON
        // values, then decode them the same way.
        let mut object = serde_json::Map::new();
        let mut kind = None;
        object.insert(first_name, map.next_value()?);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Kind => kind = Some(map.next_value::<String>()?),
                Key::Other(name) => {
                    object.insert(name, map.next_value()?);
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let rest = MapDeserializer::<_, serde_json::Error>::new(object.into_iter());
        KindThenRest { kind, rest }
            .decode()
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallContext;

    /// A user with every field set to something other than its default.
    fn user() -> Subject {
        Subject::User(UserSubject {
            id: "u1".into(),
            email: "a@example.com".into(),
            name: "A \"quoted\" name".into(),
            permissions: ["a.b".to_string(), "c.d".to_string()].into(),
            roles: ["admin".to_string()].into(),
            groups: ["staff".to_string()].into(),
            licenses: ["l1".to_string()].into(),
            session_id: Some("s1".into()),
            must_change_password: true,
        })
    }

    /// `subject`'s JSON with `kind` as the last member (the slow path).
    fn kind_last(subject: &Subject) -> String {
        let serde_json::Value::Object(mut members) = serde_json::to_value(subject).unwrap() else {
            panic!("not an object: {subject:?}")
        };
        let kind = members.remove("kind").unwrap();
        if members.is_empty() {
            return format!("{{\"kind\":{kind}}}");
        }
        let others = serde_json::to_string(&members).unwrap();
        format!("{},\"kind\":{kind}}}", &others[..others.len() - 1])
    }

    #[test]
    fn every_variant_round_trips_with_kind_first_or_last() {
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
            // Fails to compile when `Subject` gains a variant or a field
            // that `Wire` lacks.
            assert_eq!(Subject::from(Wire::from(subject.clone())), subject);
            let json = serde_json::to_string(&subject).unwrap();
            assert!(json.starts_with("{\"kind\":"), "{json}");
            let fast: Subject = serde_json::from_str(&json).unwrap();
            assert_eq!(fast, subject, "{json}");
            let reordered = kind_last(&subject);
            let slow: Subject = serde_json::from_str(&reordered).unwrap();
            assert_eq!(slow, subject, "{reordered}");
            // Inside a call context too (also from a `Value`).
            let ctx = CallContext::for_subject(subject.clone());
            let text = serde_json::to_string(&ctx).unwrap();
            assert_eq!(serde_json::from_str::<CallContext>(&text).unwrap(), ctx);
            let value = serde_json::to_value(&ctx).unwrap();
            assert_eq!(serde_json::from_value::<CallContext>(value).unwrap(), ctx);
        }
    }

    #[test]
    fn every_user_field_is_decoded() {
        let Subject::User(full) = user() else {
            unreachable!()
        };
        // Names every field, so a new one fails to compile here until it is
        // set (non-default) in `user()` and so checked below.
        let UserSubject {
            id,
            email,
            name,
            permissions,
            roles,
            groups,
            licenses,
            session_id,
            must_change_password,
        } = &full;
        let defaults = UserSubject::default();
        assert!(
            *id != defaults.id
                && *email != defaults.email
                && *name != defaults.name
                && *permissions != defaults.permissions
                && *roles != defaults.roles
                && *groups != defaults.groups
                && *licenses != defaults.licenses
                && *session_id != defaults.session_id
                && *must_change_password != defaults.must_change_password
        );
        let subject = Subject::User(full.clone());
        for json in [
            serde_json::to_string(&subject).unwrap(),
            kind_last(&subject),
        ] {
            let Subject::User(decoded) = serde_json::from_str(&json).unwrap() else {
                panic!("not a user: {json}")
            };
            assert_eq!(decoded, full, "{json}");
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
            (r#"{"id":"x"}"#, "kind"),
            (r#"{"id":"x","kind":7}"#, "string"),
        ] {
            let err = serde_json::from_str::<Subject>(json).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
    }
}
