//! Crossbar-style node config files (`config::crossbar::parse`), read as JSON and as TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::config::{crossbar, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crossbar::parse(text, false, "fuzz.json", Limits::default());
    let _ = crossbar::parse(text, true, "fuzz.toml", Limits::default());
});
