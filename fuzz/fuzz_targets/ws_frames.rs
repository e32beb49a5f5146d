//! The WebSocket frame layer we own (`transport::frames::WsReader`): masking, control frames,
//! fragment reassembly with the total-size cap, fail-fast UTF-8, close codes. The input is fed
//! in chunks of a size taken from its first byte, as a socket would deliver it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard::transport::frames::{FrameEvent, Parsed, WsReader};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = WsReader::new(MAX);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match reader.parse(&mut buf) {
                Ok(Parsed::Event(ev)) => match ev {
                    FrameEvent::Message { text, data } => {
                        assert!(data.len() <= MAX, "a message over the cap got through");
                        if text {
                            assert!(std::str::from_utf8(&data).is_ok(), "invalid UTF-8 text");
                        }
                    }
                    FrameEvent::Ping(p) => assert!(p.len() <= 125),
                    FrameEvent::Pong => {}
                    FrameEvent::Close { reason, .. } => assert!(reason.len() <= 123),
                },
                Ok(Parsed::NeedMore(n)) => {
                    assert!(n > 0);
                    break;
                }
                Err(_) => return,
            }
        }
    }
});
