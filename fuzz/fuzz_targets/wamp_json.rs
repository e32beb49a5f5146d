//! WAMP message decoding, json: what a WebSocket or RawSocket peer sends with this serializer.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use switchboard::wamp::codec::Serializer;

fuzz_target!(|data: &[u8]| common::wamp_round_trip(Serializer::Json, data));
