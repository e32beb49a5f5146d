//! HTTP bridge request bodies (`http::bridge::read_request`): the JSON a web app POSTs to a
//! publisher or caller path, read as both.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = switchboard::http::bridge::read_request(data, false);
    let _ = switchboard::http::bridge::read_request(data, true);
});
