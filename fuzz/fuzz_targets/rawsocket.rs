//! WAMP RawSocket: the 4-byte handshake, then frames through `RawReader` (with a cap taken from
//! the input), each message decoded with the serializer the handshake chose.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard::transport::frames::{FrameCodec, FrameEvent, Parsed};
use switchboard::transport::rawsocket::{read_handshake, Handshake, RawReader};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Handshake::Accept {
        serializer,
        client_max,
    } = read_handshake(*head)
    else {
        return;
    };
    assert!(client_max >= 512 && client_max <= 1 << 24);
    let Some((&cap, rest)) = rest.split_first() else {
        return;
    };
    let mut reader = RawReader::new(64 << (cap % 12));
    let mut buf = BytesMut::from(rest);
    loop {
        match reader.parse(&mut buf) {
            Ok(Parsed::Event(FrameEvent::Message { data, .. })) => {
                common::wamp_round_trip(serializer, &data)
            }
            Ok(Parsed::Event(_)) => {}
            Ok(Parsed::NeedMore(n)) => {
                assert!(n > 0);
                break;
            }
            Err(_) => break,
        }
    }
});
