//! The STUN Binding server (`calls::stun::respond`): one UDP datagram from anyone. An answer,
//! if any, must itself parse as a STUN success response.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for from in ["192.0.2.1:3478", "[2001:db8::1]:50000"] {
        let from = from.parse().expect("address");
        if let Some(answer) = switchboard::calls::stun::respond(data, from) {
            assert!(answer.len() >= 20 && answer.len() % 4 == 0);
        }
    }
});
