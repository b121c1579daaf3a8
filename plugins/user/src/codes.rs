//! Random ids and one-time codes (e-mail verification, password reset).
//!
//! Codes are short human-typable strings (`XXXX-XXXX`, 40 bits of entropy).
//! They are never stored in clear: the store keeps a [`CodeRecord`] holding
//! an HMAC-SHA256 of the code under the plugin's secret code key, bound to
//! the purpose and the user id, an expiry time and an attempt budget. A code
//! checked against the record is compared in constant time, and every wrong
//! guess spends one of the [`MAX_ATTEMPTS`] attempts.

use std::sync::{Mutex, PoisonError};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use syshost_plugin_api::PluginError;

/// The alphabet of human codes: upper-case letters and digits without the
/// easily confused `I`, `O`, `0` and `1` (32 symbols, 5 bits each).
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Number of symbols in a human code (shown as two groups of four).
pub const CODE_LENGTH: usize = 8;

/// Wrong guesses a fresh [`CodeRecord`] allows before it is exhausted.
pub const MAX_ATTEMPTS: u32 = 5;

/// `N` random bytes from the operating system's CSPRNG (getrandom).
///
/// A failing random source is reported as `PluginError::internal`.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], PluginError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| {
        PluginError::internal(format!("the operating system random generator failed: {e}"))
    })?;
    Ok(buf)
}

/// Lower-case hexadecimal encoding of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The alphabet of time-ordered ids: Crockford's base32 in lower case
/// (no `i`, `l`, `o`, `u`), in ascending byte order, so the encoded ids
/// sort like the numbers they encode.
pub const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Length of a time-ordered id.
pub const ID_LENGTH: usize = 26;

/// Bits of randomness in a time-ordered id (below the 48-bit time).
const ID_RANDOM_BITS: u32 = 80;

/// The greatest id value issued (or seen in the store, see [`note_id`]) in
/// this process: every new id is strictly greater.
static LAST_ID: Mutex<u128> = Mutex::new(0);

/// A new user id that sorts after every id this process issued or
/// [noted](note_id): 26 characters of [`ID_ALPHABET`] encoding a 128-bit
/// value (48 bits of `now_ms`, then 80 random bits), behind a marker bit
/// that makes the first character `g`..`z` — never a hex digit, so a
/// time-ordered id never equals (and always sorts after) a 32-hex-digit id
/// of older stores.
///
/// Ids issued later sort later: keys by id (`user/<id>`, `cred/<id>`,
/// membership keys) of new accounts are appended at the end of their
/// range instead of landing at random places, which is what makes bulk
/// imports fast. Within one millisecond (or when the clock stepped back)
/// the value continues from the last one plus a random step of up to 2^32,
/// so ids are **unique by construction** in a process whose store's
/// greatest id was noted at start-up ([`note_id`]).
pub fn new_id(now_ms: i64) -> Result<String, PluginError> {
    let random = u128::from_be_bytes(random_bytes::<16>()?);
    let time = u128::try_from(now_ms.clamp(0, (1 << 48) - 1)).unwrap_or(0);
    let fresh = (time << ID_RANDOM_BITS) | (random >> (128 - ID_RANDOM_BITS));
    let mut last = LAST_ID.lock().unwrap_or_else(PoisonError::into_inner);
    let value = if fresh > *last {
        fresh
    } else {
        let step = 1 + (random & 0xffff_ffff);
        last.checked_add(step)
            .ok_or_else(|| PluginError::internal("the user id space is exhausted"))?
    };
    *last = value;
    Ok(encode_id(value))
}

/// Raises the id generator above `id` when it is a time-ordered id (others,
/// such as the 32-hex-digit ids of older stores, cannot collide with
/// time-ordered ones and are ignored). Called at activation with the
/// store's greatest user id.
pub fn note_id(id: &str) {
    if let Some(value) = decode_id(id) {
        let mut last = LAST_ID.lock().unwrap_or_else(PoisonError::into_inner);
        *last = (*last).max(value);
    }
}

/// The 26-character form of `value`: the marker bit and the top 3 bits of
/// `value` in the first character, then 5 bits per character.
fn encode_id(value: u128) -> String {
    let mut out = String::with_capacity(ID_LENGTH);
    out.push(char::from(ID_ALPHABET[16 | (value >> 125) as usize]));
    for i in (0..ID_LENGTH - 1).rev() {
        out.push(char::from(ID_ALPHABET[((value >> (5 * i)) & 31) as usize]));
    }
    out
}

/// The value of a time-ordered id, `None` for any other string.
pub fn decode_id(id: &str) -> Option<u128> {
    let bytes = id.as_bytes();
    if bytes.len() != ID_LENGTH {
        return None;
    }
    let digit = |b: u8| ID_ALPHABET.iter().position(|a| *a == b);
    let first = digit(bytes[0])?;
    if !(16..24).contains(&first) {
        return None;
    }
    let mut value = (first as u128) & 7;
    for b in &bytes[1..] {
        value = (value << 5) | digit(*b)? as u128;
    }
    Some(value)
}

/// The creation time (ms since the Unix epoch) a time-ordered id carries.
pub fn id_time_ms(id: &str) -> Option<i64> {
    decode_id(id).and_then(|v| i64::try_from(v >> ID_RANDOM_BITS).ok())
}

/// A new human code: [`CODE_LENGTH`] symbols from [`CODE_ALPHABET`], shown as
/// `XXXX-XXXX`. Each symbol takes the low 5 bits of one random byte, so the
/// choice is uniform (256 is a multiple of 32).
pub fn new_code() -> Result<String, PluginError> {
    let bytes = random_bytes::<CODE_LENGTH>()?;
    let mut out = String::with_capacity(CODE_LENGTH + 1);
    for (i, b) in bytes.iter().enumerate() {
        if i == CODE_LENGTH / 2 {
            out.push('-');
        }
        out.push(char::from(CODE_ALPHABET[usize::from(b & 0x1f)]));
    }
    Ok(out)
}

/// Normalises user input of a code: strips whitespace and `-`, upper-cases
/// (so `abcd-efgh`, ` ABCD EFGH ` and `ABCDEFGH` are the same code).
pub fn normalize_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// HMAC-SHA256 under `key` of `purpose || 0x00 || user_id || 0x00 ||
/// normalize_code(code)`, as lower-case hex. Binding purpose and user id
/// means a code issued for one purpose or user never matches another.
pub fn keyed_hash(key: &[u8], purpose: &str, user_id: &str, code: &str) -> String {
    // HMAC accepts keys of every length, so this constructor cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(purpose.as_bytes());
    mac.update(&[0]);
    mac.update(user_id.as_bytes());
    mac.update(&[0]);
    mac.update(normalize_code(code).as_bytes());
    to_hex(&mac.finalize().into_bytes())
}

/// Stored state of one outstanding code (`code/<user id>/<purpose>`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct CodeRecord {
    /// [`keyed_hash`] of the code (hex).
    pub hash: String,
    /// Expiry, milliseconds since the Unix epoch; the code is expired from
    /// this instant on.
    pub expires_at: i64,
    /// Wrong guesses still allowed; 0 = exhausted.
    pub attempts_left: u32,
}

/// Outcome of [`CodeRecord::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// The input is the code, it is not expired and attempts remain. The
    /// caller consumes the code (deletes the record).
    Valid,
    /// The input is wrong; `attempts_left` (≥ 1) further guesses remain. The
    /// caller persists the decremented record.
    Invalid {
        /// Wrong guesses still allowed after this one.
        attempts_left: u32,
    },
    /// The code's lifetime is over (nothing was decremented). The caller
    /// deletes the record.
    Expired,
    /// No attempts remain: this guess was the last wrong one allowed, or the
    /// record was already exhausted (then even the right code is refused).
    /// The caller deletes the record.
    Exhausted,
}

impl CodeRecord {
    /// A record for `code`, valid for `lifetime_ms` from `now` (ms since the
    /// epoch), with [`MAX_ATTEMPTS`] attempts.
    pub fn new(
        key: &[u8],
        purpose: &str,
        user_id: &str,
        code: &str,
        now: i64,
        lifetime_ms: i64,
    ) -> Self {
        CodeRecord {
            hash: keyed_hash(key, purpose, user_id, code),
            expires_at: now.saturating_add(lifetime_ms),
            attempts_left: MAX_ATTEMPTS,
        }
    }

    /// Checks `input` (normalised with [`normalize_code`]) against the
    /// record at time `now`.
    ///
    /// Order: an exhausted record gives [`CodeCheck::Exhausted`], an expired
    /// one [`CodeCheck::Expired`]; otherwise the keyed hashes are compared in
    /// constant time. A mismatch decrements `attempts_left` (the caller
    /// persists the record) and gives [`CodeCheck::Invalid`], or
    /// [`CodeCheck::Exhausted`] when that was the last attempt.
    pub fn check(
        &mut self,
        key: &[u8],
        purpose: &str,
        user_id: &str,
        input: &str,
        now: i64,
    ) -> CodeCheck {
        if self.attempts_left == 0 {
            return CodeCheck::Exhausted;
        }
        if now >= self.expires_at {
            return CodeCheck::Expired;
        }
        let candidate = keyed_hash(key, purpose, user_id, input);
        if bool::from(candidate.as_bytes().ct_eq(self.hash.as_bytes())) {
            return CodeCheck::Valid;
        }
        self.attempts_left -= 1;
        if self.attempts_left == 0 {
            CodeCheck::Exhausted
        } else {
            CodeCheck::Invalid {
                attempts_left: self.attempts_left,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const KEY: &[u8] = &[7u8; 32];

    #[test]
    fn random_bytes_differ() {
        let a = random_bytes::<32>().unwrap();
        let b = random_bytes::<32>().unwrap();
        assert_ne!(a, b);
        assert_eq!(random_bytes::<0>().unwrap(), [0u8; 0]);
    }

    #[test]
    fn hex_encoding() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(to_hex(&[]), "");
    }

    #[test]
    fn ids_are_slugs_that_sort_in_issue_order() {
        let mut previous = String::new();
        for i in 0..2000 {
            // Same millisecond for many ids, and a clock that steps back.
            let now = 1_790_000_000_000 + (i / 500) * 7 - (i % 3);
            let id = new_id(now).unwrap();
            assert_eq!(id.len(), ID_LENGTH, "{id}");
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
            assert!(id.starts_with(|c: char| ('g'..='z').contains(&c)), "{id}");
            assert!(id > previous, "{id} after {previous}");
            assert_eq!(encode_id(decode_id(&id).unwrap()), id);
            previous = id;
        }
    }

    #[test]
    fn ids_carry_their_time_and_never_look_like_old_ids() {
        let id = new_id(4_102_444_800_000).unwrap();
        // Unless an earlier test issued a later id, the time is the given one.
        assert!(id_time_ms(&id).unwrap() >= 4_102_444_800_000);
        let old = to_hex(&random_bytes::<16>().unwrap());
        assert_eq!(decode_id(&old), None);
        assert!(id > old, "a time-ordered id sorts after every hex id");
        assert_eq!(decode_id("g0000000000000000000000000"), Some(0));
        assert_eq!(decode_id("z0000000000000000000000000"), None);
        assert_eq!(decode_id("g000000000000000000000000i"), None);
        assert_eq!(decode_id("g00"), None);
    }

    #[test]
    fn noted_ids_raise_the_generator() {
        // An id from the far future (as a store written under another clock
        // could hold): every id issued afterwards sorts after it.
        let future = encode_id((((1u128 << 47) - 5) << ID_RANDOM_BITS) | 12345);
        note_id(&future);
        note_id("0123456789abcdef0123456789abcdef");
        let next = new_id(1_790_000_000_000).unwrap();
        assert!(next > future, "{next} after {future}");
    }

    #[test]
    fn code_format() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), 9, "{code}");
            assert_eq!(&code[4..5], "-");
            for (i, c) in code.bytes().enumerate() {
                if i != 4 {
                    assert!(CODE_ALPHABET.contains(&c), "{code}");
                }
            }
            seen.insert(code);
        }
        // 40 bits: 1000 codes practically never collide.
        assert!(seen.len() > 990);
    }

    #[test]
    fn code_symbols_cover_the_alphabet() {
        let mut used = HashSet::new();
        for _ in 0..500 {
            used.extend(new_code().unwrap().bytes().filter(|b| *b != b'-'));
        }
        assert_eq!(used.len(), 32);
    }

    #[test]
    fn normalize_strips_and_uppercases() {
        assert_eq!(normalize_code("abcd-efgh"), "ABCDEFGH");
        assert_eq!(normalize_code("  AbCd EfGh \n"), "ABCDEFGH");
        assert_eq!(normalize_code("AB-CD--EF GH"), "ABCDEFGH");
        assert_eq!(normalize_code(""), "");
    }

    #[test]
    fn keyed_hash_binds_key_purpose_user_and_normalises() {
        let h = keyed_hash(KEY, "reset", "u1", "ABCD-EFGH");
        assert_eq!(h.len(), 64);
        assert_eq!(h, keyed_hash(KEY, "reset", "u1", "abcdefgh"));
        assert_eq!(h, keyed_hash(KEY, "reset", "u1", " abcd efgh "));
        assert_ne!(h, keyed_hash(KEY, "verify", "u1", "ABCD-EFGH"));
        assert_ne!(h, keyed_hash(KEY, "reset", "u2", "ABCD-EFGH"));
        assert_ne!(h, keyed_hash(&[8u8; 32], "reset", "u1", "ABCD-EFGH"));
        assert_ne!(h, keyed_hash(KEY, "reset", "u1", "ABCD-EFGJ"));
        // The separators keep field boundaries apart.
        assert_ne!(
            keyed_hash(KEY, "ab", "c", "X"),
            keyed_hash(KEY, "a", "bc", "X")
        );
    }

    #[test]
    fn keyed_hash_known_answer() {
        // The primitive: RFC 4231 test case 2.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            to_hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The framing: purpose 0x00 user 0x00 normalised code.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
        mac.update(b"verify\0u1\0ABCDEFGH");
        assert_eq!(
            to_hex(&mac.finalize().into_bytes()),
            keyed_hash(KEY, "verify", "u1", "abcd-efgh")
        );
    }

    #[test]
    fn check_valid() {
        let mut r = CodeRecord::new(KEY, "verify", "u1", "ABCD-EFGH", 1_000, 60_000);
        assert_eq!(r.expires_at, 61_000);
        assert_eq!(r.attempts_left, MAX_ATTEMPTS);
        assert_eq!(
            r.check(KEY, "verify", "u1", "abcd efgh", 60_999),
            CodeCheck::Valid
        );
        assert_eq!(r.attempts_left, MAX_ATTEMPTS);
    }

    #[test]
    fn check_invalid_decrements() {
        let mut r = CodeRecord::new(KEY, "verify", "u1", "ABCD-EFGH", 0, 60_000);
        assert_eq!(
            r.check(KEY, "verify", "u1", "ABCD-EFGJ", 1),
            CodeCheck::Invalid { attempts_left: 4 }
        );
        assert_eq!(r.attempts_left, 4);
        // Right code, wrong purpose or user: also a wrong guess.
        assert_eq!(
            r.check(KEY, "reset", "u1", "ABCD-EFGH", 1),
            CodeCheck::Invalid { attempts_left: 3 }
        );
        assert_eq!(
            r.check(KEY, "verify", "u2", "ABCD-EFGH", 1),
            CodeCheck::Invalid { attempts_left: 2 }
        );
        // The right code still works while attempts remain.
        assert_eq!(
            r.check(KEY, "verify", "u1", "ABCD-EFGH", 1),
            CodeCheck::Valid
        );
    }

    #[test]
    fn check_expired() {
        let mut r = CodeRecord::new(KEY, "reset", "u1", "ABCD-EFGH", 0, 1_000);
        assert_eq!(
            r.check(KEY, "reset", "u1", "ABCD-EFGH", 1_000),
            CodeCheck::Expired
        );
        assert_eq!(
            r.check(KEY, "reset", "u1", "WRONGWRO", 5_000),
            CodeCheck::Expired
        );
        assert_eq!(r.attempts_left, MAX_ATTEMPTS);
    }

    #[test]
    fn check_exhausted_after_five_wrong() {
        let mut r = CodeRecord::new(KEY, "reset", "u1", "ABCD-EFGH", 0, 60_000);
        for left in (1..MAX_ATTEMPTS).rev() {
            assert_eq!(
                r.check(KEY, "reset", "u1", "ZZZZ-ZZZZ", 10),
                CodeCheck::Invalid {
                    attempts_left: left
                }
            );
        }
        // The fifth wrong guess uses up the budget.
        assert_eq!(
            r.check(KEY, "reset", "u1", "ZZZZ-ZZZZ", 10),
            CodeCheck::Exhausted
        );
        assert_eq!(r.attempts_left, 0);
        // From then on even the right code is refused.
        assert_eq!(
            r.check(KEY, "reset", "u1", "ABCD-EFGH", 10),
            CodeCheck::Exhausted
        );
        assert_eq!(r.attempts_left, 0);
    }

    #[test]
    fn record_round_trips_as_json() {
        let r = CodeRecord::new(KEY, "reset", "u1", "ABCD-EFGH", 5, 10);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["expires_at"], 15);
        assert_eq!(json["attempts_left"], 5);
        let back: CodeRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn lifetime_overflow_saturates() {
        let r = CodeRecord::new(KEY, "reset", "u1", "X", i64::MAX - 1, 10);
        assert_eq!(r.expires_at, i64::MAX);
    }
}
