//! How encoded WAMP messages are framed on the wire: WebSocket frames (server side, unmasked) or
//! RawSocket length prefixes. Frames are built once and shared, so fan-out copies no bytes.

use crate::wamp::codec::EncodeError;
use crate::wamp::{Message, Serializer};
use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    WebSocket,
    RawSocket,
}

impl Framing {
    pub fn index(self) -> usize {
        match self {
            Framing::WebSocket => 0,
            Framing::RawSocket => 1,
        }
    }

    /// The transport's name in metrics and in authenticators' `transport` details.
    pub fn name(self) -> &'static str {
        match self {
            Framing::WebSocket => "websocket",
            Framing::RawSocket => "rawsocket",
        }
    }
}

/// Room left in front of the payload for the longest header (WebSocket, 64-bit length).
const HEADROOM: usize = 10;

/// A server-to-client WebSocket frame header for a final frame of `opcode` and `len` bytes.
pub fn ws_header(opcode: u8, len: usize) -> ([u8; HEADROOM], usize) {
    let mut h = [0u8; HEADROOM];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A complete WebSocket frame (FIN set) carrying `payload`.
pub fn ws_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let (h, n) = ws_header(opcode, payload.len());
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Encodes and frames a message in one buffer, without copying the payload.
pub fn frame_message(
    serializer: Serializer,
    framing: Framing,
    msg: &Message,
) -> Result<Bytes, EncodeError> {
    let mut buf = Vec::with_capacity(128);
    buf.resize(HEADROOM, 0);
    serializer.encode_into(msg, &mut buf)?;
    let len = buf.len() - HEADROOM;
    let start = match framing {
        Framing::WebSocket => {
            let opcode = if serializer.is_text() {
                OP_TEXT
            } else {
                OP_BINARY
            };
            let (h, n) = ws_header(opcode, len);
            buf[HEADROOM - n..HEADROOM].copy_from_slice(&h[..n]);
            HEADROOM - n
        }
        Framing::RawSocket => {
            if len >= 1 << 24 {
                return Err(EncodeError(format!(
                    "message of {len} bytes exceeds the RawSocket maximum"
                )));
            }
            let l = (len as u32).to_be_bytes();
            buf[HEADROOM - 4] = 0;
            buf[HEADROOM - 3..HEADROOM].copy_from_slice(&l[1..4]);
            HEADROOM - 4
        }
    };
    Ok(Bytes::from(buf).slice(start..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_form() {
        assert_eq!(&ws_header(1, 5).0[..2], &[0x81, 5]);
        assert_eq!(&ws_header(2, 126).0[..4], &[0x82, 126, 0, 126]);
        assert_eq!(
            &ws_header(2, 70_000).0[..10],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }

    #[test]
    fn framed_message_has_header_then_payload() {
        let m = Message::Published {
            request: 1,
            publication: 2,
        };
        let f = frame_message(Serializer::Json, Framing::WebSocket, &m).unwrap();
        assert_eq!(&f[..], b"\x81\x08[17,1,2]");
        let r = frame_message(Serializer::Json, Framing::RawSocket, &m).unwrap();
        assert_eq!(&r[..], b"\x00\x00\x00\x08[17,1,2]");
    }
}
