#![no_main]
//! libFuzzer entry point for `arca::fuzz_targets::serve`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| arca::fuzz_targets::serve(data));
