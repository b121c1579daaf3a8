//! Random ids and one-time codes (e-mail verification, password reset).
//!
//! Codes are short human-typable strings (`XXXX-XXXX`, 40 bits of entropy).
//! They are never stored in clear: the store keeps a [`CodeRecord`] holding
//! an HMAC-SHA256 of the code under the plugin's secret code key, bound to
//! the purpose and the user id, an expiry time and an attempt budget. A code
//! checked against the record is compared in constant time, and every wrong
//! guess spends one of the [`MAX_ATTEMPTS`] attempts.

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

/// A new 128-bit random id as 32 lower-case hex characters.
pub fn new_id() -> Result<String, PluginError> {
    Ok(to_hex(&random_bytes::<16>()?))
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
    fn ids_are_32_lowercase_hex_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let id = new_id().unwrap();
            assert_eq!(id.len(), 32);
            assert!(id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert!(seen.insert(id));
        }
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
