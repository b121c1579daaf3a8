//! `cargo +nightly fuzz run manifest`: see `syshost_fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    syshost_fuzz::run("manifest", data);
});
