//! `cargo +nightly fuzz run operations`: see `syshost_fuzz::operations`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    syshost_fuzz::run("operations", data);
});
