//! `cargo +nightly fuzz run config`: see `syshost_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    syshost_fuzz::run("config", data);
});
