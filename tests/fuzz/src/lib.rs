//! Fuzz targets for syshost and a stable-toolchain driver for them.
//!
//! Every target is a plain `fn(&[u8])` that panics when it finds a bug and
//! returns normally for every input the code handles (accepted or refused
//! with a clear error). The same functions run under two drivers:
//!
//! - `cargo +nightly fuzz run <target>` (libFuzzer, coverage-guided): the
//!   `fuzz/` directory at the workspace root has one `fuzz_targets/<target>.rs`
//!   per target that only calls [`run`];
//! - the stable harness (`tests/fuzz.rs`, part of `cargo test`): [`driver`]
//!   mutates each target's [`seeds`] and replays every file in
//!   `fuzz/regressions/<target>/` for a bounded time.
//!
//! Targets: [`config`] (TOML + `SYSHOST_*` overlay), [`manifest`] (manifest
//! JSON → validation → resolver), [`email`] (address normalisation),
//! [`token`] (bearer header, session cookie, CSRF origin, client address)
//! and [`operations`] (every declared operation of every system, called
//! through the real host with the real plugins).

pub mod config;
pub mod driver;
pub mod email;
pub mod input;
pub mod manifest;
pub mod operations;
pub mod token;

/// The target names, as used by `cargo fuzz` and the harness.
pub const TARGETS: [&str; 5] = ["config", "manifest", "email", "token", "operations"];

/// Runs target `name` on `data` and returns the outcome class of the input
/// (what the driver uses as feedback). Panics on a finding; unknown names
/// panic too.
pub fn run(name: &str, data: &[u8]) -> String {
    match name {
        "config" => config::fuzz(data),
        "manifest" => manifest::fuzz(data),
        "email" => email::fuzz(data),
        "token" => token::fuzz(data),
        "operations" => operations::fuzz(data),
        other => panic!("unknown fuzz target '{other}'"),
    }
}

/// Seed inputs of target `name`: the starting points of the stable driver
/// (cargo fuzz starts from its own corpus directory, or from these after
/// `cargo test -p syshost-fuzz --test fuzz -- --ignored write_seed_corpus`).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "config" => config::seeds(),
        "manifest" => manifest::seeds(),
        "email" => email::seeds(),
        "token" => token::seeds(),
        "operations" => operations::seeds(),
        _ => Vec::new(),
    }
}

/// Tokens the driver splices into inputs of target `name`.
pub fn dictionary(name: &str) -> Vec<Vec<u8>> {
    let words: &[&str] = match name {
        "config" => config::DICTIONARY,
        "manifest" => manifest::DICTIONARY,
        "email" => email::DICTIONARY,
        "token" => token::DICTIONARY,
        "operations" => operations::DICTIONARY,
        _ => &[],
    };
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}
