//! `cargo +nightly fuzz run email`: see `syshost_fuzz::email`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    syshost_fuzz::run("email", data);
});
