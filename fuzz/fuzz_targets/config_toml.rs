//! Fuzz target: `Config::from_toml_str` must return Ok or an error naming the problem,
//! never panic, for any text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = riskd::config::Config::from_toml_str(text) {
            assert!(!e.to_string().is_empty());
        }
    }
});
