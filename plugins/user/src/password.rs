//! Passwords: the policy, argon2id hashing and verification, and one-time
//! password generation.
//!
//! * Passwords are NFKC-normalised before they are measured, compared with
//!   the common-password list, hashed or verified (NIST SP 800-63B), so the
//!   same password typed through different keyboards or input methods
//!   verifies. Nothing else is changed: no trimming, no case folding.
//! * Hashes are argon2id v19 with m = 19456 KiB, t = 2, p = 1, a 16-byte
//!   random salt and a 32-byte output, stored as a PHC string
//!   (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//! * At most `std::thread::available_parallelism()` hash computations
//!   (hash, verify, verify_dummy) run at once in the process; further callers
//!   wait. Each computation needs 19 MiB of memory and ~20-30 ms of CPU.
//! * The 19 MiB block buffers are pooled: a computation takes a buffer from
//!   the pool (allocating and pre-faulting one only when the pool is empty),
//!   and gives it back zeroed. Since the gate bounds the concurrent
//!   computations, the pool never holds more than
//!   `available_parallelism()` buffers; they stay allocated for the life of
//!   the process. Allocating and faulting fresh memory per hash cost ~25 % of
//!   the hash time. A stored hash whose parameters need more memory than a
//!   pooled buffer gets a fresh allocation.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use syshost_plugin_api::PluginError;
use unicode_normalization::UnicodeNormalization;

use crate::codes;

/// Default minimum length (characters after NFKC).
pub const DEFAULT_MIN_LENGTH: usize = 12;
/// Default maximum length (characters after NFKC).
pub const DEFAULT_MAX_LENGTH: usize = 256;
/// Passwords longer than this many bytes (after NFKC) are never hashed:
/// [`hash`] rejects them and [`verify`] treats them as a mismatch. Far above
/// any length the policy allows (4096 characters of at most 4 bytes).
pub const MAX_PASSWORD_BYTES: usize = 64 * 1024;

/// Argon2 memory cost in KiB.
pub const ARGON2_M_COST: u32 = 19_456;
/// Argon2 iterations.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2 lanes.
pub const ARGON2_P_COST: u32 = 1;
/// Argon2 output length in bytes.
pub const ARGON2_OUTPUT_LEN: usize = 32;

/// Upper bounds on the cost parameters of a stored hash that [`verify`] will
/// compute; a stored hash above them is treated as malformed rather than
/// allowed to tie up memory or CPU (1 GiB, 64 iterations, 16 lanes).
const MAX_STORED_M_COST: u32 = 1024 * 1024;
const MAX_STORED_T_COST: u32 = 64;
const MAX_STORED_P_COST: u32 = 16;

/// The shipped list of common passwords (see its header for the source).
pub const COMMON_PASSWORDS_TXT: &str = include_str!("../data/common-passwords.txt");

/// The rules every new password must meet (the `password_policy` object of
/// the `user` settings section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (after NFKC).
    pub min_length: usize,
    /// Maximum length in characters (after NFKC).
    pub max_length: usize,
    /// Reject passwords found in the shipped common-password list.
    pub reject_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: DEFAULT_MIN_LENGTH,
            max_length: DEFAULT_MAX_LENGTH,
            reject_common: true,
        }
    }
}

impl PasswordPolicy {
    /// From the `password_policy` object of the user settings section
    /// (the whole section, with a `password_policy` member, is accepted too).
    /// Missing or mistyped fields take the defaults 12 / 256 / true; the
    /// minimum is at least 1 and the maximum at least the minimum.
    pub fn from_settings(v: &serde_json::Value) -> Self {
        let v = match v.get("password_policy") {
            Some(inner) if inner.is_object() => inner,
            _ => v,
        };
        let number = |name: &str, default: usize| {
            v.get(name)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(default)
        };
        let min_length = number("min_length", DEFAULT_MIN_LENGTH).max(1);
        let max_length = number("max_length", DEFAULT_MAX_LENGTH).max(min_length);
        let reject_common = v
            .get("reject_common")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        PasswordPolicy {
            min_length,
            max_length,
            reject_common,
        }
    }

    /// Checks `password` for an account with address `email` (may be empty
    /// when unknown). Rules, in this order: length in characters after NFKC
    /// between `min_length` and `max_length`; not equal (case-insensitively)
    /// to the email address or its local part; not in the common-password
    /// list (case-insensitively) when `reject_common`.
    ///
    /// Error: `invalid_field("password", "<which rule failed>")`.
    pub fn check(&self, password: &str, email: &str) -> Result<(), PluginError> {
        let normalized = nfkc(password);
        let length = normalized.chars().count();
        if length < self.min_length {
            return Err(PluginError::invalid_field(
                "password",
                format!(
                    "password is too short: it must be at least {} characters long",
                    self.min_length
                ),
            ));
        }
        if length > self.max_length {
            return Err(PluginError::invalid_field(
                "password",
                format!(
                    "password is too long: it must be at most {} characters long",
                    self.max_length
                ),
            ));
        }
        let folded = normalized.to_lowercase();
        let email = nfkc(email.trim()).to_lowercase();
        if !email.is_empty() {
            let local = email.rsplit_once('@').map_or(email.as_str(), |(l, _)| l);
            if folded == email {
                return Err(PluginError::invalid_field(
                    "password",
                    "password must not be the email address",
                ));
            }
            if !local.is_empty() && folded == local {
                return Err(PluginError::invalid_field(
                    "password",
                    "password must not be the name part of the email address",
                ));
            }
        }
        if self.reject_common && common_passwords().contains(folded.as_str()) {
            return Err(PluginError::invalid_field(
                "password",
                "password is too common: it appears in a list of frequently used passwords",
            ));
        }
        Ok(())
    }
}

fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// The common-password list, lower-cased, built once (on the start-up path
/// when the first administrator is created). Lines that are already
/// lower-case ASCII, where NFKC and lower-casing change nothing, are
/// borrowed from the embedded text instead of normalized and copied.
fn common_passwords() -> &'static HashSet<Cow<'static, str>> {
    static SET: OnceLock<HashSet<Cow<'static, str>>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS_TXT
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                if l.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                    Cow::Borrowed(l)
                } else {
                    Cow::Owned(nfkc(l).to_lowercase())
                }
            })
            .collect()
    })
}

/// Whether `password` (NFKC, case-insensitive) is in the shipped
/// common-password list.
pub fn is_common(password: &str) -> bool {
    common_passwords().contains(nfkc(password).to_lowercase().as_str())
}

// ---------------------------------------------------------------------------
// Concurrency gate: a process-wide counting semaphore that also owns the pool
// of block buffers.

struct GateState {
    running: usize,
    peak: usize,
    /// Zeroed block buffers of [`pool_blocks`] blocks, ready for reuse.
    spare: Vec<Vec<Block>>,
    /// Buffers allocated so far (at most `limit`).
    allocated: usize,
}

struct Gate {
    limit: usize,
    state: Mutex<GateState>,
    freed: Condvar,
}

/// Held while one hash computation runs; releases its slot (and gives its
/// buffer back to the pool, zeroed) on drop.
struct Permit {
    gate: &'static Gate,
    blocks: Option<Vec<Block>>,
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate {
            limit,
            state: Mutex::new(GateState {
                running: 0,
                peak: 0,
                spare: Vec::new(),
                allocated: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn get() -> &'static Gate {
        static GATE: OnceLock<Gate> = OnceLock::new();
        GATE.get_or_init(|| Gate::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        // The state is counters and a list of buffers that are never left
        // half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acquire(&'static self) -> Permit {
        let mut state = self.lock();
        while state.running >= self.limit {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.running += 1;
        state.peak = state.peak.max(state.running);
        let blocks = state.spare.pop();
        Permit { gate: self, blocks }
    }
}

impl Permit {
    /// The permit's block buffer (a pooled one, or a fresh, pre-faulted one
    /// when the pool was empty).
    fn memory(&mut self) -> &mut [Block] {
        let gate = self.gate;
        self.blocks.get_or_insert_with(|| {
            gate.lock().allocated += 1;
            // `vec!` writes every block, so the pages are faulted in here
            // once, not during every computation.
            vec![Block::default(); pool_blocks()]
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(mut blocks) = self.blocks.take() {
            // The blocks are derived from the password; do not keep them.
            blocks.fill(Block::default());
            std::hint::black_box(&mut blocks);
            let mut state = self.gate.lock();
            if state.spare.len() < self.gate.limit {
                state.spare.push(blocks);
            }
            state.running -= 1;
        } else {
            self.gate.lock().running -= 1;
        }
        self.gate.freed.notify_one();
    }
}

/// How many hash computations may run at once (the available parallelism).
pub fn max_concurrent_hashes() -> usize {
    Gate::get().limit
}

// ---------------------------------------------------------------------------
// Hashing and verification.

/// The current parameters.
fn current_params() -> Params {
    // The constants are valid parameters; keep the library defaults (the
    // same values) should that ever change.
    Params::new(
        ARGON2_M_COST,
        ARGON2_T_COST,
        ARGON2_P_COST,
        Some(ARGON2_OUTPUT_LEN),
    )
    .unwrap_or_default()
}

/// Blocks in a pooled buffer: what the current parameters need.
fn pool_blocks() -> usize {
    current_params().block_count()
}

/// Computes the raw argon2 output for `password`/`salt` into `out` (its
/// length is the output length), in a pooled block buffer when `params`
/// fit one, else in fresh memory. Waits for a gate slot.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut permit = Gate::get().acquire();
    if needed <= pool_blocks() {
        argon2.hash_password_into_with_memory(password, salt, out, permit.memory())
    } else {
        argon2.hash_password_into(password, salt, out)
    }
}

/// Hashes `password` (after NFKC) with argon2id m=19456 KiB, t=2, p=1 and a
/// fresh random salt; returns the PHC string. Waits for a free slot when
/// [`max_concurrent_hashes`] computations are already running.
///
/// Errors: `invalid_field("password", ..)` above [`MAX_PASSWORD_BYTES`];
/// `internal` when the random source or the hash fails.
pub fn hash(password: &str) -> Result<String, PluginError> {
    let normalized = nfkc(password);
    if normalized.len() > MAX_PASSWORD_BYTES {
        return Err(PluginError::invalid_field(
            "password",
            "password is too long",
        ));
    }
    let salt = codes::random_bytes::<16>()?;
    let failed = |e: String| PluginError::internal(format!("password hashing failed: {e}"));
    let params = current_params();
    let mut out = [0u8; ARGON2_OUTPUT_LEN];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        normalized.as_bytes(),
        &salt,
        &mut out,
    )
    .map_err(|e| failed(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(u32::from(Version::V0x13)),
        params: ParamsString::try_from(&params).map_err(|e| failed(e.to_string()))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(e.to_string()))?),
        hash: Some(Output::new(&out).map_err(|e| failed(e.to_string()))?),
    };
    Ok(phc.to_string())
}

/// Outcome of [`verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. `needs_rehash` is true when the stored hash
    /// uses other parameters than the current ones (algorithm, version, m, t,
    /// p, output length); the caller then stores [`hash`] of the password.
    Verified {
        /// Whether the stored hash should be replaced by a current one.
        needs_rehash: bool,
    },
    /// The password does not match.
    Mismatch,
}

/// Verifies `password` (after NFKC) against the stored PHC string with the
/// stored parameters; the final comparison is constant-time. Waits for a
/// free slot like [`hash`].
///
/// A malformed stored hash (unparsable, not argon2, no salt or output,
/// absurd cost parameters) is an `internal` error. A password above
/// [`MAX_PASSWORD_BYTES`] is a [`Verification::Mismatch`] (after the same
/// work as a real verification).
pub fn verify(password: &str, phc: &str) -> Result<Verification, PluginError> {
    let malformed = |why: String| {
        PluginError::internal(format!("the stored password hash is malformed: {why}"))
    };
    let (parsed, algorithm, params) = parse_stored(phc).map_err(malformed)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(malformed("it has no salt or no hash".into()));
    };
    // As the argon2 crate reads PHC strings: no `v=` means the current version.
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| malformed(e.to_string()))?,
        None => Version::default(),
    };
    let normalized = nfkc(password);
    if normalized.len() > MAX_PASSWORD_BYTES {
        verify_dummy("");
        return Ok(Verification::Mismatch);
    }
    let mut out = vec![0u8; expected.len()];
    compute(
        algorithm,
        version,
        params.clone(),
        normalized.as_bytes(),
        salt.as_ref(),
        &mut out,
    )
    .map_err(|e| malformed(e.to_string()))?;
    let computed = Output::new(&out).map_err(|e| malformed(e.to_string()))?;
    // `Output`'s equality is constant-time.
    if computed != *expected {
        return Ok(Verification::Mismatch);
    }
    let needs_rehash = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || params.m_cost() != ARGON2_M_COST
        || params.t_cost() != ARGON2_T_COST
        || params.p_cost() != ARGON2_P_COST
        || expected.len() != ARGON2_OUTPUT_LEN;
    Ok(Verification::Verified { needs_rehash })
}

/// Parses a stored (or imported) PHC string the way [`verify`] will: an
/// Argon2 variant, with salt and hash, cost parameters within the bounds
/// [`verify`] accepts. The error says what is wrong, never the string.
fn parse_stored(phc: &str) -> Result<(PasswordHash, Algorithm, Params), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| format!("{e}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("it has no salt or no hash".into());
    }
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    if params.m_cost() > MAX_STORED_M_COST
        || params.t_cost() > MAX_STORED_T_COST
        || params.p_cost() > MAX_STORED_P_COST
    {
        return Err("its cost parameters are out of range".into());
    }
    Ok((parsed, algorithm, params))
}

/// Checks a pre-hashed password given for import: it must be a PHC string
/// [`verify`] can use (argon2id, argon2i or argon2d with salt, hash and
/// bounded costs). Hashes with other parameters than ours are accepted and
/// rehashed at the next login. `Err` carries the reason (never the string).
pub fn check_stored(phc: &str) -> Result<(), String> {
    if phc.len() > 512 {
        return Err("it is longer than 512 bytes".into());
    }
    parse_stored(phc).map(|_| ())
}

/// Burns the same time as a real [`verify`] against a current hash (one
/// argon2id computation with the current parameters, through the same
/// concurrency gate and buffer pool), so that a login for an unknown account
/// cannot be told apart by timing.
pub fn verify_dummy(password: &str) {
    const DUMMY_SALT: &[u8; 16] = b"syshost-dummy-sa";
    let normalized = nfkc(password);
    let input = if normalized.len() > MAX_PASSWORD_BYTES {
        &[][..]
    } else {
        normalized.as_bytes()
    };
    let mut out = [0u8; ARGON2_OUTPUT_LEN];
    let result = compute(
        Algorithm::Argon2id,
        Version::V0x13,
        current_params(),
        input,
        DUMMY_SALT,
        &mut out,
    );
    std::hint::black_box((&result, &out));
}

// ---------------------------------------------------------------------------
// Generation.

/// Length of a [`generate`]d password.
pub const GENERATED_LENGTH: usize = 20;
const UPPER: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijkmnopqrstuvwxyz";
const DIGITS: &str = "23456789";
const SYMBOLS: &str = "!#$%&*+-=?@^_~";

/// A random one-time password: [`GENERATED_LENGTH`] characters from
/// upper- and lower-case letters, digits and symbols (look-alikes such as
/// `I l 1 O 0` left out), with at least one of each class; passes the default
/// policy. Errors only when the OS random source fails (`internal`).
pub fn try_generate() -> Result<String, PluginError> {
    let alphabet: Vec<char> = UPPER
        .chars()
        .chain(LOWER.chars())
        .chain(DIGITS.chars())
        .chain(SYMBOLS.chars())
        .collect();
    // Rejection sampling keeps every symbol equally likely.
    let n = alphabet.len();
    let accept_below = 256 - 256 % n;
    loop {
        let mut out = String::with_capacity(GENERATED_LENGTH);
        while out.chars().count() < GENERATED_LENGTH {
            for b in codes::random_bytes::<32>()? {
                let b = usize::from(b);
                if b < accept_below && out.chars().count() < GENERATED_LENGTH {
                    out.push(alphabet[b % n]);
                }
            }
        }
        let has = |class: &str| out.chars().any(|c| class.contains(c));
        if has(UPPER) && has(LOWER) && has(DIGITS) && has(SYMBOLS) && !is_common(&out) {
            return Ok(out);
        }
    }
}

/// A random one-time password (see [`try_generate`]).
///
/// # Panics
/// Only when the operating system's random source fails; use
/// [`try_generate`] to get that as an error instead.
pub fn generate() -> String {
    match try_generate() {
        Ok(password) => password,
        Err(e) => panic!("cannot generate a password: {}", e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    use serde_json::json;
    use std::time::Instant;

    fn rejected(policy: &PasswordPolicy, password: &str, email: &str) -> String {
        let e = policy.check(password, email).expect_err(password);
        assert!(e.is("invalid_input"));
        assert_eq!(e.details, Some(json!({"field": "password"})));
        e.message
    }

    #[test]
    fn list_is_loaded() {
        let set = common_passwords();
        assert!(set.len() >= 10_000, "{}", set.len());
        assert!(set.contains("123456"));
        assert!(set.contains("password"));
        assert!(!set.iter().any(|p| p.starts_with('#')));
        // Borrowed or normalized, every entry is in the folded form lookups use.
        assert!(set.iter().all(|p| nfkc(p).to_lowercase() == **p));
        assert!(is_common("PassWord"));
        assert!(!is_common("correct horse battery staple x9"));
    }

    #[test]
    fn policy_defaults_and_settings() {
        let d = PasswordPolicy::default();
        assert_eq!(
            (d.min_length, d.max_length, d.reject_common),
            (12, 256, true)
        );
        assert_eq!(PasswordPolicy::from_settings(&json!({})), d);
        assert_eq!(PasswordPolicy::from_settings(&json!(null)), d);
        let p = PasswordPolicy::from_settings(
            &json!({"min_length": 8, "max_length": 64, "reject_common": false}),
        );
        assert_eq!(
            (p.min_length, p.max_length, p.reject_common),
            (8, 64, false)
        );
        // Partial and mistyped fields fall back to the defaults.
        let p = PasswordPolicy::from_settings(&json!({"min_length": 20, "max_length": "x"}));
        assert_eq!(
            (p.min_length, p.max_length, p.reject_common),
            (20, 256, true)
        );
        // The whole section works too.
        let p = PasswordPolicy::from_settings(&json!({"password_policy": {"min_length": 9}}));
        assert_eq!(p.min_length, 9);
        // Nonsense is clamped.
        let p = PasswordPolicy::from_settings(&json!({"min_length": 0, "max_length": 5}));
        assert_eq!((p.min_length, p.max_length), (1, 5));
        let p = PasswordPolicy::from_settings(&json!({"min_length": 30, "max_length": 10}));
        assert_eq!((p.min_length, p.max_length), (30, 30));
    }

    #[test]
    fn length_rules() {
        let p = PasswordPolicy::default();
        assert!(rejected(&p, "Xy7!short", "").contains("at least 12"));
        assert!(rejected(&p, "", "").contains("at least 12"));
        assert!(p.check("Xy7!abcdefgh", "").is_ok()); // exactly 12
        assert!(p.check(&"v".repeat(256), "").is_ok());
        assert!(rejected(&p, &"v".repeat(257), "").contains("at most 256"));

        let p = PasswordPolicy::from_settings(&json!({"min_length": 8, "max_length": 64}));
        assert!(p.check("Xy7!abcd", "").is_ok());
        assert!(rejected(&p, "Xy7!abc", "").contains("at least 8"));
        assert!(rejected(&p, &"v".repeat(65), "").contains("at most 64"));
    }

    #[test]
    fn length_counts_chars_after_nfkc() {
        let p = PasswordPolicy::default();
        // 12 characters of two bytes each: fine.
        assert!(p.check(&"ä".repeat(12), "").is_ok());
        // "e" + combining acute composes into one character: 11 × 2 code
        // points are 11 characters after NFKC.
        assert!(rejected(&p, &"e\u{301}".repeat(11), "").contains("at least 12"));
        assert!(p.check(&"e\u{301}".repeat(12), "").is_ok());
        // The "ﬃ" ligature expands to three characters: 4 of them are 12.
        assert!(p.check(&"\u{FB03}".repeat(4), "").is_ok());
        assert!(rejected(&p, &"\u{FB03}".repeat(3), "").contains("at least 12"));
    }

    #[test]
    fn common_passwords_rejected_in_any_case() {
        let p = PasswordPolicy::from_settings(&json!({"min_length": 8}));
        assert!(rejected(&p, "password", "").contains("too common"));
        assert!(rejected(&p, "PassWord", "").contains("too common"));
        assert!(rejected(&p, "QWERTYUIOP", "").contains("too common"));
        let p = PasswordPolicy::default();
        assert!(rejected(&p, "qwerty123456", "").contains("too common"));
        assert!(rejected(&p, "1Qaz2Wsx3Edc", "").contains("too common"));
        // Full-width letters normalise to ASCII and are caught as well.
        assert!(rejected(&p, "ｑｗｅｒｔｙ１２３４５６", "").contains("too common"));
        // Turned off: allowed.
        let p = PasswordPolicy::from_settings(&json!({"reject_common": false}));
        assert!(p.check("qwerty123456", "").is_ok());
    }

    #[test]
    fn email_and_local_part_rejected() {
        let p = PasswordPolicy::default();
        let email = "Long.Name.Here@Example.com";
        assert!(rejected(&p, "long.name.here@example.com", email).contains("email address"));
        assert!(rejected(&p, "LONG.NAME.HERE@EXAMPLE.COM", email).contains("email address"));
        assert!(rejected(&p, "long.name.here", email).contains("name part"));
        assert!(rejected(&p, "Long.Name.HERE", email).contains("name part"));
        assert!(p.check("long.name.here!", email).is_ok());
        assert!(p.check("long.name.here", "").is_ok());
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            verify("correct horse battery", &phc).unwrap(),
            Verification::Verified {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify("correct horse batterY", &phc).unwrap(),
            Verification::Mismatch
        );
        assert_eq!(verify("", &phc).unwrap(), Verification::Mismatch);
        // Fresh salt each time.
        assert_ne!(phc, hash("correct horse battery").unwrap());
    }

    #[test]
    fn verify_normalises_like_hash() {
        let phc = hash("caf\u{e9} au lait").unwrap();
        assert_eq!(
            verify("cafe\u{301} au lait", &phc).unwrap(),
            Verification::Verified {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn weaker_params_need_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"old password 1", b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert!(weak.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"), "{weak}");
        assert_eq!(
            verify("old password 1", &weak).unwrap(),
            Verification::Verified { needs_rehash: true }
        );
        assert_eq!(
            verify("old password 2", &weak).unwrap(),
            Verification::Mismatch
        );
        // Another variant (argon2i) verifies but needs a rehash too.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None).unwrap(),
        )
        .hash_password_with_salt(b"old password 1", b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert_eq!(
            verify("old password 1", &argon2i).unwrap(),
            Verification::Verified { needs_rehash: true }
        );
    }

    #[test]
    fn malformed_hash_is_internal_error() {
        let good = hash("some password x").unwrap();
        let cases = [
            String::new(),
            "not a hash".to_string(),
            "$argon2id$v=19$m=19456,t=2,p=1$".to_string(),
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_string(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0".to_string(),
            "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA".to_string(),
            good.replace("m=19456", "m=x"),
            good[..good.len() - 10].to_string() + "!!!!!!!!!!",
        ];
        for phc in &cases {
            let e = verify("some password x", phc).expect_err(phc);
            assert!(e.is("internal"), "{phc}: {e:?}");
            assert!(e.message.contains("malformed"), "{phc}: {e:?}");
        }
    }

    #[test]
    fn oversized_password() {
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let e = hash(&huge).unwrap_err();
        assert_eq!(e.details, Some(json!({"field": "password"})));
        let phc = hash("some password x").unwrap();
        assert_eq!(verify(&huge, &phc).unwrap(), Verification::Mismatch);
    }

    #[test]
    fn verify_dummy_costs_like_verify() {
        let phc = hash("timing password").unwrap();
        // The fastest of several runs of each: preemption by other tests on
        // a shared machine only ever makes a run slower, never faster.
        let fastest = |f: &dyn Fn()| {
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed()
                })
                .min()
                .unwrap()
        };
        let real = fastest(&|| {
            let _ = verify("wrong password", &phc).unwrap();
        });
        let dummy = fastest(&|| verify_dummy("wrong password"));
        eprintln!("fastest verify: {real:?}, fastest verify_dummy: {dummy:?}");
        assert!(dummy * 3 > real, "dummy {dummy:?} vs real {real:?}");
        assert!(real * 3 > dummy, "dummy {dummy:?} vs real {real:?}");
    }

    #[test]
    fn generated_passwords_pass_default_policy_and_differ() {
        let policy = PasswordPolicy::default();
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let p = generate();
            assert_eq!(p.chars().count(), GENERATED_LENGTH);
            policy.check(&p, "someone@example.com").unwrap();
            assert!(p.chars().any(|c| UPPER.contains(c)));
            assert!(p.chars().any(|c| LOWER.contains(c)));
            assert!(p.chars().any(|c| DIGITS.contains(c)));
            assert!(p.chars().any(|c| SYMBOLS.contains(c)));
            assert!(seen.insert(p));
        }
    }

    #[test]
    fn concurrency_is_bounded() {
        let limit = max_concurrent_hashes();
        assert!(limit >= 1);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let phc = hash(&format!("parallel password {i}")).unwrap();
                    verify(&format!("parallel password {i}"), &phc).unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(
                t.join().unwrap(),
                Verification::Verified {
                    needs_rehash: false
                }
            );
        }
        let state = Gate::get().lock();
        assert!(state.peak >= 1);
        assert!(
            state.peak <= limit,
            "peak {} above limit {limit}",
            state.peak
        );
    }

    #[test]
    fn gate_blocks_beyond_limit() {
        // A private gate with one slot: a second acquire waits until the
        // first permit is dropped.
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(1)));
        let first = gate.acquire();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _second = gate.acquire();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        assert_eq!(gate.lock().peak, 1);
        assert_eq!(gate.lock().running, 0);
    }

    #[test]
    fn pooled_buffers_are_reused_and_zeroed() {
        // A private gate with two slots, used like the real one.
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(2)));
        let params = current_params();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut outputs = Vec::new();
        for _ in 0..3 {
            let mut a = gate.acquire();
            let mut b = gate.acquire();
            let mut out_a = [0u8; ARGON2_OUTPUT_LEN];
            let mut out_b = [0u8; ARGON2_OUTPUT_LEN];
            argon2
                .hash_password_into_with_memory(
                    b"pool password",
                    b"0123456789abcdef",
                    &mut out_a,
                    a.memory(),
                )
                .unwrap();
            argon2
                .hash_password_into_with_memory(
                    b"pool password",
                    b"0123456789abcdef",
                    &mut out_b,
                    b.memory(),
                )
                .unwrap();
            // A reused buffer gives the same answer as fresh memory.
            assert_eq!(out_a, out_b);
            outputs.push(out_a);
        }
        let mut fresh = [0u8; ARGON2_OUTPUT_LEN];
        argon2
            .hash_password_into(b"pool password", b"0123456789abcdef", &mut fresh)
            .unwrap();
        assert!(outputs.iter().all(|o| *o == fresh));
        let state = gate.lock();
        // Two buffers served six computations; both are back, zeroed.
        assert_eq!(state.allocated, 2);
        assert_eq!(state.spare.len(), 2);
        assert_eq!(state.running, 0);
        for buffer in &state.spare {
            assert_eq!(buffer.len(), pool_blocks());
            assert!(buffer
                .iter()
                .all(|block| block.as_ref().iter().all(|word| *word == 0)));
        }
    }

    #[test]
    fn hashes_needing_more_memory_than_a_pooled_buffer_still_verify() {
        let big = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2 * ARGON2_M_COST, 1, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"big password 1", b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert_eq!(
            verify("big password 1", &big).unwrap(),
            Verification::Verified { needs_rehash: true }
        );
        assert_eq!(
            verify("big password 2", &big).unwrap(),
            Verification::Mismatch
        );
        // A 16-byte output and no `v=` (version 0x13 by default) verify too.
        let short = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, Some(16)).unwrap(),
        )
        .hash_password_with_salt(b"short output 1", b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert_eq!(
            verify("short output 1", &short).unwrap(),
            Verification::Verified { needs_rehash: true }
        );
        let unversioned = phc_without_version(&hash("no version 1").unwrap());
        assert_eq!(
            verify("no version 1", &unversioned).unwrap(),
            Verification::Verified {
                needs_rehash: false
            }
        );
    }

    fn phc_without_version(phc: &str) -> String {
        phc.replacen("$v=19", "", 1)
    }

    #[test]
    fn our_hashes_verify_with_the_crate_and_back() {
        // The PHC string we build is the one the crate builds.
        let ours = hash("interop password").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"interop password", &parsed)
            .is_ok());
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params())
            .hash_password_with_salt(b"interop password", b"0123456789abcdef")
            .unwrap()
            .to_string();
        assert_eq!(
            verify("interop password", &theirs).unwrap(),
            Verification::Verified {
                needs_rehash: false
            }
        );
    }

    #[test]
    #[ignore = "timing report; run with --ignored --nocapture"]
    fn hash_timing() {
        let _ = hash("warm up password");
        let n = 10;
        let start = Instant::now();
        for i in 0..n {
            let _ = hash(&format!("timing password {i}")).unwrap();
        }
        eprintln!("argon2id hash: {:?} per hash", start.elapsed() / n);
    }
}
