//! `cargo +nightly fuzz run token`: see `syshost_fuzz::token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    syshost_fuzz::run("token", data);
});
