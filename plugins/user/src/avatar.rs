//! Avatars: one small profile picture per user.
//!
//! The image bytes live under `avatar/<id>`; the record keeps their
//! metadata ([`AvatarInfo`]: canonical content type and size), so every
//! answer with a user shows whether there is an avatar without loading it.
//! Both keys change together in one [`store::modify`] batch (which bumps
//! the record's `rev`), and `delete` removes `avatar/<id>` with the rest of
//! the user.
//!
//! Images travel as standard base64 (RFC 4648 alphabet with `=` padding;
//! ASCII whitespace such as MIME line breaks is ignored) and are checked
//! with [`profile::validate_avatar`]: PNG, JPEG or WebP, at most 256 KiB,
//! with the magic number of the declared type. Every change publishes
//! `user.updated` with `"changes": ["avatar"]`; setting the same image again
//! or deleting a missing avatar writes and publishes nothing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use syshost_plugin_api::{CallContext, NoInput, PluginError, Subject};

use crate::admin::{self, check_id, publish_updated};
use crate::model::{change, AvatarInfo, Ctx, IdRequest, UpdatedEvent, User};
use crate::profile::{self, AVATAR_MAX_BYTES};
use crate::store::{self, Op};

/// Request of `set_my_avatar`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMyAvatarRequest {
    /// `image/png`, `image/jpeg` or `image/webp` (case-insensitive;
    /// parameters after `;` are ignored).
    pub content_type: String,
    /// The image, standard base64.
    pub data: String,
}

/// Request of `set_avatar`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAvatarRequest {
    /// The user id.
    pub id: String,
    /// `image/png`, `image/jpeg` or `image/webp` (case-insensitive;
    /// parameters after `;` are ignored).
    pub content_type: String,
    /// The image, standard base64.
    pub data: String,
}

/// Response of `get_avatar`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AvatarData {
    /// The canonical content type: `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: String,
    /// The image, standard base64 with padding.
    pub data: String,
    /// Size of the image in bytes (decoded).
    pub size: u64,
}

/// A checked avatar, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// The canonical content type.
    pub content_type: &'static str,
    /// The image bytes.
    pub bytes: Vec<u8>,
}

impl Avatar {
    /// The metadata the record keeps.
    pub fn info(&self) -> AvatarInfo {
        AvatarInfo {
            content_type: self.content_type.to_string(),
            size: self.bytes.len() as u64,
        }
    }
}

/// The longest base64 text (whitespace removed) that can hold an image of
/// at most [`AVATAR_MAX_BYTES`] bytes.
const MAX_ENCODED_CHARS: usize = AVATAR_MAX_BYTES.div_ceil(3) * 4;

/// Decodes and checks an avatar given as `content_type` and base64 `data`.
///
/// Errors (`invalid_input`): `content_type` for an unsupported type;
/// `data` for text that is not base64, an empty image, one larger than
/// 256 KiB (refused before decoding when the text alone is too long) or one
/// whose magic number does not match the type.
pub fn decode(content_type: &str, data: &str) -> Result<Avatar, PluginError> {
    let content_type = profile::avatar_content_type(content_type)?;
    let significant = data.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    if significant > MAX_ENCODED_CHARS {
        return Err(PluginError::invalid_field(
            "data",
            format!(
                "avatar image is larger than {AVATAR_MAX_BYTES} bytes (256 KiB): data holds {significant} base64 characters"
            ),
        ));
    }
    let compact: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = STANDARD.decode(&compact).map_err(|e| {
        PluginError::invalid_field(
            "data",
            format!("data is not valid base64 (standard alphabet with '=' padding): {e}"),
        )
    })?;
    profile::validate_avatar(content_type, &bytes).map_err(data_field)?;
    Ok(Avatar {
        content_type,
        bytes,
    })
}

/// `validate_avatar` names the image `avatar`; the request field is `data`.
fn data_field(e: PluginError) -> PluginError {
    let field = e
        .details
        .as_ref()
        .and_then(|d| d.get("field"))
        .and_then(|f| f.as_str());
    if field == Some("avatar") {
        PluginError::invalid_field("data", e.message)
    } else {
        e
    }
}

/// The calling user's id; `unauthenticated` for every other subject.
fn my_id(caller: &CallContext) -> Result<String, PluginError> {
    match &caller.subject {
        Subject::User(u) => Ok(u.id.clone()),
        _ => Err(PluginError::unauthenticated(
            "log in first: only a user has an own avatar",
        )),
    }
}

/// Stores `avatar` as user `id`'s avatar (bytes and metadata in one batch)
/// and publishes `user.updated` (`["avatar"]`) when anything changed.
pub fn store_avatar(ctx: &Ctx, id: &str, avatar: &Avatar) -> Result<User, PluginError> {
    let store = ctx.store();
    let key = store::avatar_key(id);
    let info = avatar.info();
    let mut bytes_replaced = false;
    let modified = store::modify(ctx, id, |r, ops| {
        let current = store.get(&key)?;
        bytes_replaced = current.as_deref() != Some(avatar.bytes.as_slice());
        if bytes_replaced {
            ops.push(Op::Put(key.clone(), avatar.bytes.clone()));
            // A new image of the same type and size still changes the user.
            r.updated_at = ctx.now().max(r.updated_at);
        }
        r.avatar = Some(info.clone());
        Ok(())
    })?;
    publish_avatar_change(ctx, &modified, bytes_replaced)?;
    Ok(User::from_record(&modified.after, ctx.now()))
}

/// Removes user `id`'s avatar (bytes and metadata in one batch) and
/// publishes `user.updated` (`["avatar"]`); a user without one is left
/// alone.
pub fn remove_avatar(ctx: &Ctx, id: &str) -> Result<User, PluginError> {
    let store = ctx.store();
    let key = store::avatar_key(id);
    let mut bytes_removed = false;
    let modified = store::modify(ctx, id, |r, ops| {
        bytes_removed = store.get(&key)?.is_some();
        if bytes_removed {
            ops.push(Op::Delete(key.clone()));
        }
        r.avatar = None;
        Ok(())
    })?;
    publish_avatar_change(ctx, &modified, bytes_removed)?;
    Ok(User::from_record(&modified.after, ctx.now()))
}

/// `user.updated` for an avatar write: through [`publish_updated`] when the
/// metadata changed; with `["avatar"]` alone when only the bytes did.
fn publish_avatar_change(
    ctx: &Ctx,
    modified: &store::Modified,
    bytes_changed: bool,
) -> Result<(), PluginError> {
    if !modified.written {
        return Ok(());
    }
    let changes = admin::changes_between(&modified.before, &modified.after);
    if !bytes_changed || changes.iter().any(|c| c == change::AVATAR) {
        return publish_updated(ctx, modified);
    }
    ctx.host.publish(
        "user.updated",
        &UpdatedEvent {
            user_id: modified.after.id.clone(),
            changes: vec![change::AVATAR.to_string()],
        },
    )
}

/// `set_my_avatar` (authenticated): sets the caller's avatar.
pub fn set_my_avatar(
    ctx: &Ctx,
    req: SetMyAvatarRequest,
    caller: &CallContext,
) -> Result<User, PluginError> {
    let id = my_id(caller)?;
    let avatar = decode(&req.content_type, &req.data)?;
    store_avatar(ctx, &id, &avatar)
}

/// `delete_my_avatar` (authenticated): removes the caller's avatar.
pub fn delete_my_avatar(ctx: &Ctx, _: NoInput, caller: &CallContext) -> Result<User, PluginError> {
    let id = my_id(caller)?;
    remove_avatar(ctx, &id)
}

/// `set_avatar` (permission `user.update`): sets a user's avatar.
pub fn set_avatar(ctx: &Ctx, req: SetAvatarRequest, _: &CallContext) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    let avatar = decode(&req.content_type, &req.data)?;
    store_avatar(ctx, &req.id, &avatar)
}

/// `delete_avatar` (permission `user.update`): removes a user's avatar.
pub fn delete_avatar(ctx: &Ctx, req: IdRequest, _: &CallContext) -> Result<User, PluginError> {
    check_id("id", &req.id)?;
    remove_avatar(ctx, &req.id)
}

/// `get_avatar` (authenticated): a user's avatar image; `not_found` when
/// the user does not exist or has no avatar.
pub fn get_avatar(ctx: &Ctx, req: IdRequest, _: &CallContext) -> Result<AvatarData, PluginError> {
    check_id("id", &req.id)?;
    let store = ctx.store();
    let key = store::avatar_key(&req.id);
    for _ in 0..store::MAX_ATTEMPTS {
        let (record_bytes, record) = store::load_existing(&store, &req.id)?;
        let Some(info) = record.avatar else {
            return Err(no_avatar(&req.id));
        };
        let bytes = store.get(&key)?;
        // Every avatar write rewrites the record with a new `rev`: the same
        // record bytes afterwards mean the image belongs to this metadata.
        match store::load(&store, &req.id)? {
            Some((again, _)) if again == record_bytes => {}
            Some(_) => continue,
            None => return Err(store::not_found(&req.id)),
        }
        let Some(bytes) = bytes else {
            return Err(PluginError::storage(format!(
                "the avatar image of user '{}' is missing",
                store::shorten(&req.id)
            )));
        };
        return Ok(AvatarData {
            content_type: info.content_type,
            size: bytes.len() as u64,
            data: STANDARD.encode(&bytes),
        });
    }
    Err(store::contention(&req.id))
}

/// `not_found` for a user without an avatar.
fn no_avatar(id: &str) -> PluginError {
    PluginError::not_found(format!("user '{}' has no avatar", store::shorten(id)))
        .with_details(serde_json::json!({ "id": id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend_from_slice(b"\0\0\0\rIHDR");
        b
    }

    fn field(e: &PluginError) -> Option<&str> {
        e.details.as_ref()?.get("field")?.as_str()
    }

    #[test]
    fn decodes_and_canonicalises() {
        let data = STANDARD.encode(png());
        let a = decode(" Image/PNG; charset=x ", &data).unwrap();
        assert_eq!(a.content_type, "image/png");
        assert_eq!(a.bytes, png());
        assert_eq!(
            a.info(),
            AvatarInfo {
                content_type: "image/png".into(),
                size: png().len() as u64
            }
        );
        // MIME line breaks are ignored.
        let wrapped = format!("{}\r\n{}", &data[..8], &data[8..]);
        assert_eq!(decode("image/png", &wrapped).unwrap().bytes, png());
    }

    #[test]
    fn errors_name_the_request_fields() {
        let data = STANDARD.encode(png());
        let e = decode("image/gif", &data).unwrap_err();
        assert_eq!(field(&e), Some("content_type"));
        let e = decode("image/png", "not base64!").unwrap_err();
        assert_eq!(field(&e), Some("data"));
        assert!(e.message.contains("base64"), "{e:?}");
        let e = decode("image/png", "").unwrap_err();
        assert_eq!(field(&e), Some("data"));
        let e = decode("image/jpeg", &data).unwrap_err();
        assert_eq!(field(&e), Some("data"));
        let mut big = png();
        big.resize(AVATAR_MAX_BYTES + 1, 0);
        let e = decode("image/png", &STANDARD.encode(&big)).unwrap_err();
        assert_eq!(field(&e), Some("data"));
        let mut max = png();
        max.resize(AVATAR_MAX_BYTES, 0);
        let encoded = STANDARD.encode(&max);
        assert!(encoded.len() <= MAX_ENCODED_CHARS);
        assert_eq!(
            decode("image/png", &encoded).unwrap().bytes.len(),
            AVATAR_MAX_BYTES
        );
    }
}
