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
//!   Computations that fit a pooled buffer run on that many dedicated
//!   threads ([`HashPool`]), which take the next queued computation without
//!   sleeping: a caller's own thread, woken for a free slot, started late
//!   whenever the machine had halted that CPU (on the benchmark VM waking a
//!   halted vCPU took milliseconds; login throughput rose 7–15 %).
//! * The 19 MiB block buffers are pooled ([`BlockBuffer`]: 2 MiB-aligned,
//!   advised for transparent huge pages, pre-faulted): a computation takes a
//!   buffer from the pool (allocating one only when the pool is empty). Since
//!   the gate bounds the concurrent computations, the pool never holds more
//!   than `available_parallelism()` buffers; they stay allocated for the life
//!   of the process. Allocating and faulting fresh memory per hash cost ~25 %
//!   of the hash time; 4 KiB pages another ~15 %. A stored hash whose
//!   parameters need more memory than a pooled buffer gets a one-off buffer.
//! * Password-derived blocks do not outlive their use (OWASP ASVS 8.3.6): a
//!   buffer that comes back while nobody waits for a slot is cleared at once;
//!   under load it goes to the next computation, which overwrites every block
//!   in its first pass before reading any (see the gate below for the
//!   argument); one-off buffers are cleared before they are freed.

use std::alloc::Layout;
use std::borrow::Cow;
use std::collections::HashSet;
use std::ptr::NonNull;
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
// Block buffers.

/// Alignment and size granule of a [`BlockBuffer`]: one transparent huge
/// page on x86-64 and aarch64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// A block buffer for argon2, allocated once and reused: aligned to 2 MiB,
/// rounded up to whole 2 MiB pages, advised for transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`, which the kernel may ignore) and pre-faulted
/// by writing zeros over all of it.
///
/// Argon2 reads 1 KiB blocks at data-dependent places all over its 19 MiB;
/// with 4 KiB pages most of those reads miss the TLB. Backed by 2 MiB pages
/// the same hash took 13–19 % less CPU on the benchmark machine (whose
/// `transparent_hugepage` setting is `madvise`, so nothing gets huge pages
/// without asking). Where huge pages are unavailable this is an ordinary
/// pre-faulted buffer.
pub struct BlockBuffer {
    ptr: NonNull<Block>,
    blocks: usize,
    layout: Layout,
}

// SAFETY: `BlockBuffer` owns its allocation exclusively (like a `Box<[Block]>`);
// `Block` is plain data.
unsafe impl Send for BlockBuffer {}

impl BlockBuffer {
    /// A zeroed buffer of `blocks` blocks (at least one); `None` when the
    /// allocation fails or the size overflows.
    pub fn new(blocks: usize) -> Option<BlockBuffer> {
        let blocks = blocks.max(1);
        let bytes = blocks
            .checked_mul(std::mem::size_of::<Block>())?
            .checked_next_multiple_of(HUGE_PAGE)?;
        let layout = Layout::from_size_align(bytes, HUGE_PAGE).ok()?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(raw.cast::<Block>())?;
        #[cfg(target_os = "linux")]
        // SAFETY: the range is the allocation just made, owned by us. The
        // advice only changes how the kernel backs it; a failure (no THP
        // support) is harmless and ignored.
        unsafe {
            libc::madvise(raw.cast(), bytes, libc::MADV_HUGEPAGE);
        }
        // Zeroing writes every page: they are faulted in here, once, and an
        // all-zero `Block` is a valid value. (`Block` is 64-byte aligned,
        // 1 KiB long; `bytes` is a multiple of both.)
        // SAFETY: `raw` points to `bytes` writable bytes.
        unsafe { std::ptr::write_bytes(raw, 0, bytes) };
        Some(BlockBuffer {
            ptr,
            blocks,
            layout,
        })
    }

    /// The blocks.
    pub fn blocks_mut(&mut self) -> &mut [Block] {
        // SAFETY: `ptr` is valid for `blocks` initialized blocks (zeroed at
        // creation, only ever written as `Block`s since), exclusively ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.blocks) }
    }

    /// The blocks (shared).
    pub fn blocks(&self) -> &[Block] {
        // SAFETY: as in `blocks_mut`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.blocks) }
    }

    /// Overwrites `blocks[from..]` with zeros in a way the optimizer cannot
    /// drop (the buffer is still read later, and `black_box` hides that it
    /// is not read before the next write).
    fn clear_from(&mut self, from: usize) {
        if let Some(tail) = self.blocks_mut().get_mut(from..) {
            tail.fill(Block::default());
        }
        std::hint::black_box(self.blocks_mut());
    }
}

impl Drop for BlockBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

// ---------------------------------------------------------------------------
// Concurrency gate: a process-wide counting semaphore that also owns the pool
// of block buffers.
//
// What stays in memory, and for how long. A computation's blocks are derived
// from the password, and the first blocks of a lane are cheap to derive from
// H0, so blocks left behind would let someone who can read the process memory
// test guesses cheaply (OWASP ASVS 8.3.6: overwrite sensitive memory when it
// is no longer needed). Clearing 19 MiB costs ~1.2 ms (6 % of a login under
// load), so a buffer that comes back is cleared in one of two ways:
//
// * If callers are waiting for a slot (the gate is saturated), the buffer
//   goes back *dirty* and the next computation, which is about to start,
//   takes it (dirty buffers are taken first; there are never more dirty
//   buffers in the pool than waiting callers). Argon2's first pass writes
//   every block before it reads it (blocks 0 and 1 from H0, block j from
//   blocks written earlier in the same pass, plain assignment, not XOR), so
//   the old contents never influence the result and are all overwritten
//   before the first pass ends, about half of one computation (~8 ms) later.
//   Blocks the next computation does not use (a stored hash needing less
//   memory) are cleared before it starts. While dirty, a buffer is always
//   owned by a running computation or promised to a waiting one: it never
//   sits idle.
// * Otherwise (nobody waiting), the buffer is cleared before its slot is
//   released, as before.
//
// So under load, password-derived blocks of one computation outlive it by at
// most the first pass of the next one, in memory that a computation is using
// anyway; without load they are cleared at once. Memory that does not fit a
// pooled buffer is a one-off buffer, cleared before it is freed.

/// A pooled block buffer and whether it holds blocks of a past computation.
struct Pooled {
    buffer: BlockBuffer,
    dirty: bool,
}

struct GateState {
    running: usize,
    peak: usize,
    /// Callers blocked in [`Gate::acquire`].
    waiting: usize,
    /// Block buffers of [`pool_blocks`] blocks, ready for reuse: clean ones,
    /// and at most `waiting` dirty ones.
    spare: Vec<Pooled>,
    /// Buffers allocated so far (at most `limit`).
    allocated: usize,
    /// Buffers given back dirty to a waiting caller (a counter for tests).
    handed_over_dirty: u64,
}

impl GateState {
    fn dirty_spares(&self) -> usize {
        self.spare.iter().filter(|p| p.dirty).count()
    }
}

struct Gate {
    limit: usize,
    state: Mutex<GateState>,
    freed: Condvar,
}

/// Held while one hash computation runs; releases its slot (and gives its
/// buffer back to the pool, see above) on drop.
struct Permit {
    gate: &'static Gate,
    pooled: Option<Pooled>,
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate {
            limit,
            state: Mutex::new(GateState {
                running: 0,
                peak: 0,
                waiting: 0,
                spare: Vec::new(),
                allocated: 0,
                handed_over_dirty: 0,
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
        if state.running >= self.limit {
            state.waiting += 1;
            while state.running >= self.limit {
                state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.waiting -= 1;
        }
        state.running += 1;
        state.peak = state.peak.max(state.running);
        // A dirty buffer first: it is overwritten by the computation that is
        // about to start.
        let pooled = match state.spare.iter().position(|p| p.dirty) {
            Some(i) => Some(state.spare.swap_remove(i)),
            None => state.spare.pop(),
        };
        Permit { gate: self, pooled }
    }
}

impl Permit {
    /// The first `needed` blocks of the permit's buffer (a pooled one, or a
    /// fresh one when the pool was empty), for a computation that writes
    /// all of them before reading any; `None` when `needed` is more than a
    /// pooled buffer holds or the allocation fails. Blocks past `needed` of
    /// a dirty buffer are cleared first, since nothing overwrites them.
    fn memory(&mut self, needed: usize) -> Option<&mut [Block]> {
        let size = pool_blocks();
        if needed > size {
            return None;
        }
        if self.pooled.is_none() {
            let buffer = BlockBuffer::new(size)?;
            self.gate.lock().allocated += 1;
            self.pooled = Some(Pooled {
                buffer,
                dirty: false,
            });
        }
        let pooled = self.pooled.as_mut()?;
        if pooled.dirty && needed < size {
            pooled.buffer.clear_from(needed);
        }
        // From here on it holds this computation's blocks (even if it fails
        // halfway).
        pooled.dirty = true;
        pooled.buffer.blocks_mut().get_mut(..needed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let gate = self.gate;
        let Some(mut pooled) = self.pooled.take() else {
            gate.lock().running -= 1;
            gate.freed.notify_one();
            return;
        };
        if pooled.dirty {
            let mut state = gate.lock();
            if state.dirty_spares() < state.waiting && state.spare.len() < gate.limit {
                // A waiting caller takes it next and overwrites it.
                state.handed_over_dirty += 1;
                state.spare.push(pooled);
                state.running -= 1;
                drop(state);
                gate.freed.notify_one();
                return;
            }
            drop(state);
            // Nobody to overwrite it soon: clear it now, still holding the
            // slot (so the pool stays bounded).
            pooled.buffer.clear_from(0);
            pooled.dirty = false;
        }
        let mut state = gate.lock();
        if state.spare.len() < gate.limit {
            state.spare.push(pooled);
        }
        state.running -= 1;
        drop(state);
        gate.freed.notify_one();
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

// ---------------------------------------------------------------------------
// Hashing threads.

/// One queued computation: its inputs (copies, cleared after use) and where
/// the output goes.
struct HashJob {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: Vec<u8>,
    salt: Vec<u8>,
    out_len: usize,
    reply: std::sync::mpsc::SyncSender<Result<Vec<u8>, argon2::Error>>,
}

/// The gate's number of threads, each running queued computations one
/// after the other through [`Gate::acquire`] (so the gate still bounds them,
/// owns the buffers and decides when one is cleared). A queued computation
/// counts as waiting for a slot: a buffer coming back while computations are
/// queued goes to the next one dirty, exactly as to a caller waiting in
/// [`Gate::acquire`]. Threads start at the first computation.
struct HashPool {
    queue: Mutex<std::collections::VecDeque<HashJob>>,
    queued: Condvar,
    /// Threads started (none if the system refused them all: the callers
    /// then compute on their own threads, as before).
    threads: std::sync::atomic::AtomicUsize,
}

impl HashPool {
    fn get() -> &'static HashPool {
        static POOL: OnceLock<HashPool> = OnceLock::new();
        static STARTED: std::sync::Once = std::sync::Once::new();
        let pool = POOL.get_or_init(|| HashPool {
            queue: Mutex::new(std::collections::VecDeque::new()),
            queued: Condvar::new(),
            threads: std::sync::atomic::AtomicUsize::new(0),
        });
        STARTED.call_once(|| {
            for i in 0..Gate::get().limit {
                let spawned = std::thread::Builder::new()
                    .name(format!("argon2-{i}"))
                    .spawn(move || pool.serve());
                if spawned.is_ok() {
                    pool.threads
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        pool
    }

    /// Queues the computation and waits for its output (see [`compute`]).
    fn compute(
        &'static self,
        algorithm: Algorithm,
        version: Version,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        let job = HashJob {
            algorithm,
            version,
            params,
            password: password.to_vec(),
            salt: salt.to_vec(),
            out_len: out.len(),
            reply,
        };
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push_back(job);
            Gate::get().lock().waiting += 1;
        }
        self.queued.notify_one();
        // Every job is answered (a panic included); a closed channel would
        // mean the thread itself ended.
        let mut output = result.recv().map_err(|_| argon2::Error::OutOfMemory)??;
        out.copy_from_slice(output.get(..out.len()).ok_or(argon2::Error::OutOfMemory)?);
        clear_bytes(&mut output);
        Ok(())
    }

    /// A hashing thread: runs queued computations until the process ends.
    fn serve(&'static self) {
        loop {
            let job = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = queue.pop_front() {
                        break job;
                    }
                    queue = self.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            };
            {
                let mut state = Gate::get().lock();
                state.waiting = state.waiting.saturating_sub(1);
            }
            let HashJob {
                algorithm,
                version,
                params,
                mut password,
                mut salt,
                out_len,
                reply,
            } = job;
            // A panic must not take the thread (and its share of the
            // throughput) with it: the caller gets an error instead.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut output = vec![0u8; out_len];
                compute_here(algorithm, version, params, &password, &salt, &mut output)
                    .map(|()| output)
            }))
            .unwrap_or(Err(argon2::Error::OutOfMemory));
            clear_bytes(&mut password);
            clear_bytes(&mut salt);
            let _ = reply.send(outcome);
        }
    }
}

/// Overwrites `bytes` with zeros in a way the optimizer cannot drop.
fn clear_bytes(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// Computes the raw argon2 output for `password`/`salt` into `out` (its
/// length is the output length), in a pooled block buffer when `params`
/// fit one (on a hashing thread, [`HashPool`]), else in a one-off buffer
/// that is cleared before it is freed. Waits for a gate slot.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = params.block_count();
    let pool = HashPool::get();
    if needed <= pool_blocks() && pool.threads.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        return pool.compute(algorithm, version, params, password, salt, out);
    }
    compute_here(algorithm, version, params, password, salt, out)
}

/// [`compute`] on this thread: waits for a gate slot, then computes in a
/// pooled block buffer when `params` fit one, else in a one-off buffer that
/// is cleared before it is freed.
fn compute_here(
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
    if let Some(memory) = permit.memory(needed) {
        return argon2.hash_password_into_with_memory(password, salt, out, memory);
    }
    let mut one_off = BlockBuffer::new(needed).ok_or(argon2::Error::OutOfMemory)?;
    let result = argon2.hash_password_into_with_memory(password, salt, out, one_off.blocks_mut());
    one_off.clear_from(0);
    result
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
    fn the_hashing_threads_compute_what_the_crate_computes() {
        let pool = HashPool::get();
        assert_eq!(
            pool.threads.load(std::sync::atomic::Ordering::SeqCst),
            max_concurrent_hashes()
        );
        for (password, salt) in [
            (&b""[..], b"0123456789abcdef"),
            (b"pw", b"another salt 16b"),
        ] {
            let params = current_params();
            let mut expected = [0u8; ARGON2_OUTPUT_LEN];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into(password, salt, &mut expected)
                .unwrap();
            let mut got = [0u8; ARGON2_OUTPUT_LEN];
            pool.compute(
                Algorithm::Argon2id,
                Version::V0x13,
                params,
                password,
                salt,
                &mut got,
            )
            .unwrap();
            assert_eq!(got, expected);
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

    fn is_clear(blocks: &[Block]) -> bool {
        blocks
            .iter()
            .all(|block| block.as_ref().iter().all(|word| *word == 0))
    }

    /// The raw output of the current parameters in fresh memory.
    fn fresh_output(password: &[u8]) -> [u8; ARGON2_OUTPUT_LEN] {
        let mut out = [0u8; ARGON2_OUTPUT_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params())
            .hash_password_into(password, b"0123456789abcdef", &mut out)
            .unwrap();
        out
    }

    /// Hashes `password` with the current parameters in `permit`'s memory.
    fn hash_in(permit: &mut Permit, password: &[u8]) -> [u8; ARGON2_OUTPUT_LEN] {
        let mut out = [0u8; ARGON2_OUTPUT_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params())
            .hash_password_into_with_memory(
                password,
                b"0123456789abcdef",
                &mut out,
                permit.memory(pool_blocks()).unwrap(),
            )
            .unwrap();
        out
    }

    #[test]
    fn block_buffers_are_aligned_zeroed_and_whole_pages() {
        let mut buffer = BlockBuffer::new(pool_blocks()).unwrap();
        assert_eq!(buffer.blocks().len(), pool_blocks());
        assert_eq!(buffer.blocks().as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(buffer.layout.size() % HUGE_PAGE, 0);
        assert!(buffer.layout.size() >= pool_blocks() * 1024);
        assert!(is_clear(buffer.blocks()));
        buffer.blocks_mut()[7].as_mut()[3] = 42;
        buffer.blocks_mut()[pool_blocks() - 1].as_mut()[0] = 1;
        buffer.clear_from(8);
        assert_eq!(buffer.blocks()[7].as_ref()[3], 42);
        assert!(is_clear(&buffer.blocks()[8..]));
        buffer.clear_from(0);
        assert!(is_clear(buffer.blocks()));
        assert!(BlockBuffer::new(usize::MAX / 2).is_none());
    }

    #[test]
    fn leftover_blocks_never_change_a_result() {
        // The argument for handing a dirty buffer to the next computation:
        // argon2 writes every block before reading it, so memory full of
        // another computation's blocks (or of 0xff) gives the result of fresh
        // memory, for every variant, both versions and several lanes.
        let mut buffer = BlockBuffer::new(pool_blocks()).unwrap();
        let cases = [
            (Algorithm::Argon2id, Version::V0x13, current_params()),
            (Algorithm::Argon2i, Version::V0x13, current_params()),
            (Algorithm::Argon2d, Version::V0x10, current_params()),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8 * 1024, 3, 4, Some(16)).unwrap(),
            ),
        ];
        for (algorithm, version, params) in cases {
            let needed = params.block_count();
            let len = params.output_len().unwrap_or(ARGON2_OUTPUT_LEN);
            let argon2 = Argon2::new(algorithm, version, params);
            let mut fresh = vec![0u8; len];
            argon2
                .hash_password_into(b"leftover 1", b"0123456789abcdef", &mut fresh)
                .unwrap();
            for fill in [u64::MAX, 0x0123_4567_89ab_cdef] {
                for block in buffer.blocks_mut() {
                    block.as_mut().fill(fill);
                }
                let mut out = vec![0u8; len];
                argon2
                    .hash_password_into_with_memory(
                        b"leftover 1",
                        b"0123456789abcdef",
                        &mut out,
                        &mut buffer.blocks_mut()[..needed],
                    )
                    .unwrap();
                assert_eq!(out, fresh, "{algorithm:?} {version:?} {fill:x}");
                // And no block of the leftover pattern survived.
                assert!(buffer.blocks()[..needed]
                    .iter()
                    .all(|b| b.as_ref().iter().any(|w| *w != fill)));
            }
        }
    }

    #[test]
    fn pooled_buffers_are_reused_and_cleared_when_nobody_waits() {
        // A private gate with two slots, used like the real one.
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(2)));
        let fresh = fresh_output(b"pool password");
        for _ in 0..3 {
            let mut a = gate.acquire();
            let mut b = gate.acquire();
            // A reused buffer gives the same answer as fresh memory.
            assert_eq!(hash_in(&mut a, b"pool password"), fresh);
            assert_eq!(hash_in(&mut b, b"pool password"), fresh);
        }
        let state = gate.lock();
        // Two buffers served six computations; both are back, cleared
        // (nobody was waiting when they came back).
        assert_eq!(state.allocated, 2);
        assert_eq!(state.spare.len(), 2);
        assert_eq!((state.running, state.waiting), (0, 0));
        assert_eq!(state.handed_over_dirty, 0);
        for pooled in &state.spare {
            assert!(!pooled.dirty);
            assert_eq!(pooled.buffer.blocks().len(), pool_blocks());
            assert!(is_clear(pooled.buffer.blocks()));
        }
    }

    #[test]
    fn a_dirty_buffer_goes_to_a_waiting_computation_which_overwrites_it() {
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(1)));
        let mut first = gate.acquire();
        let fresh_1 = fresh_output(b"first password");
        assert_eq!(hash_in(&mut first, b"first password"), fresh_1);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut second = gate.acquire();
            let was_dirty = second.pooled.as_ref().map(|p| p.dirty);
            let out = hash_in(&mut second, b"second password");
            tx.send((was_dirty, out)).unwrap();
            drop(second);
        });
        while gate.lock().waiting == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(first);
        let (was_dirty, out) = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
        waiter.join().unwrap();
        // The waiter got the first computation's buffer as it was, and its
        // own result is still right.
        assert_eq!(was_dirty, Some(true));
        assert_eq!(out, fresh_output(b"second password"));
        let state = gate.lock();
        assert_eq!(state.handed_over_dirty, 1);
        assert_eq!(state.allocated, 1);
        // Nobody waited when the second came back: cleared.
        assert_eq!(state.spare.len(), 1);
        assert!(!state.spare[0].dirty);
        assert!(is_clear(state.spare[0].buffer.blocks()));
    }

    #[test]
    fn no_dirty_buffer_is_left_without_a_taker() {
        // Two permits come back while one caller waits: one buffer is handed
        // over dirty, the other is cleared.
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(2)));
        let mut a = gate.acquire();
        let mut b = gate.acquire();
        hash_in(&mut a, b"password a");
        hash_in(&mut b, b"password b");
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let waiter = std::thread::spawn(move || {
            let third = gate.acquire();
            tx.send(third.pooled.as_ref().map(|p| p.dirty)).unwrap();
            // Hold the permit (with its untouched dirty buffer) until told.
            go_rx.recv().unwrap();
            drop(third);
        });
        while gate.lock().waiting == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Both come back before the waiter can run (it needs the lock).
        {
            let state = gate.lock();
            assert_eq!(state.waiting, 1);
        }
        drop(a);
        drop(b);
        let got = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
        assert_eq!(got, Some(true));
        {
            let state = gate.lock();
            // The one left in the pool is clean.
            assert_eq!(state.spare.len(), 1);
            assert!(!state.spare[0].dirty);
            assert!(is_clear(state.spare[0].buffer.blocks()));
            assert!(state.handed_over_dirty >= 1);
        }
        // The waiter's permit comes back unused but dirty (a computation
        // that failed before writing): cleared, since nobody waits.
        go_tx.send(()).unwrap();
        waiter.join().unwrap();
        let state = gate.lock();
        assert_eq!(state.spare.len(), 2);
        assert!(state
            .spare
            .iter()
            .all(|p| !p.dirty && is_clear(p.buffer.blocks())));
        assert_eq!((state.running, state.waiting), (0, 0));
    }

    #[test]
    fn a_smaller_computation_in_a_dirty_buffer_clears_the_blocks_it_does_not_use() {
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(1)));
        let mut permit = gate.acquire();
        hash_in(&mut permit, b"big one");
        let small = Params::new(1024, 1, 1, None).unwrap();
        let needed = small.block_count();
        let memory = permit.memory(needed).unwrap();
        assert_eq!(memory.len(), needed);
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, small.clone())
            .hash_password_into_with_memory(b"small one", b"0123456789abcdef", &mut out, memory)
            .unwrap();
        let mut fresh = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, small)
            .hash_password_into(b"small one", b"0123456789abcdef", &mut fresh)
            .unwrap();
        assert_eq!(out, fresh);
        let pooled = permit.pooled.as_ref().unwrap();
        assert!(pooled.dirty);
        assert!(is_clear(&pooled.buffer.blocks()[needed..]));
        assert!(!is_clear(&pooled.buffer.blocks()[..needed]));
        // More than a pooled buffer holds: no pooled memory.
        assert!(permit.memory(pool_blocks() + 1).is_none());
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
