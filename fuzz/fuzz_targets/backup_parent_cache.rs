#![no_main]
//! libFuzzer entry point for `arca::fuzz_targets::backup_parent_cache`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| arca::fuzz_targets::backup_parent_cache(data));
