//! Frame codecs: the `FrameCodec` contract the connection loop drives, and the WebSocket frame
//! reader (RFC 6455, server side) with the limits fastwebsockets 0.10 lacks: a cap on the total
//! size of a message, fragments included, checked from the frame header before the payload is
//! buffered; UTF-8 checked fail-fast across fragments; close codes checked.
//!
//! Pure: codecs parse frames out of a buffer the connection owns, so the connection can release
//! that buffer whenever it is empty (idle connections hold no read buffer at all).

use crate::framing::{ws_frame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    Message { text: bool, data: Bytes },
    Ping(Bytes),
    Pong,
    Close { code: Option<u16>, reason: String },
}

/// What a connection needs from a transport's framing.
pub trait FrameCodec {
    /// Parses the next event out of `buf`, consuming what it used.
    fn parse(&mut self, buf: &mut BytesMut) -> Result<Parsed, FrameError>;
    /// The keep-alive ping frame.
    fn ping(&self) -> Bytes;
    /// The frame answering a peer's ping.
    fn pong(&self, payload: &[u8]) -> Bytes;
    /// The frame that closes the connection, with a code or empty (`None`: the transport has no
    /// close frame and just closes the socket).
    fn close(&self, code: Option<u16>, reason: &str) -> Option<Bytes>;
    /// A data frame carrying `data` back (the echo endpoint).
    fn echo(&self, text: bool, data: &[u8]) -> Bytes;
}

impl FrameCodec for WsReader {
    fn parse(&mut self, buf: &mut BytesMut) -> Result<Parsed, FrameError> {
        WsReader::parse(self, buf)
    }
    fn ping(&self) -> Bytes {
        ws_frame(OP_PING, b"")
    }
    fn pong(&self, payload: &[u8]) -> Bytes {
        ws_frame(OP_PONG, payload)
    }
    fn close(&self, code: Option<u16>, reason: &str) -> Option<Bytes> {
        Some(match code {
            Some(code) => ws_frame(OP_CLOSE, &close_payload(code, reason)),
            None => ws_frame(OP_CLOSE, b""),
        })
    }
    fn echo(&self, text: bool, data: &[u8]) -> Bytes {
        ws_frame(if text { OP_TEXT } else { OP_BINARY }, data)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message larger than {0} bytes")]
    TooBig(usize),
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
}

pub struct WsReader {
    max_message: usize,
    /// Opcode and collected payload of a fragmented message in progress.
    fragments: Option<(u8, BytesMut)>,
    /// How much of a fragmented text message is known to be valid UTF-8 (fail fast on the rest).
    utf8_checked: usize,
}

pub enum Parsed {
    Event(FrameEvent),
    /// Not a whole frame yet; at least this many more bytes are needed.
    NeedMore(usize),
}

fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_ne_bytes(w) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Close codes a peer may send (RFC 6455 §7.4, IANA registry).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl WsReader {
    pub fn new(max_message: usize) -> WsReader {
        WsReader {
            max_message,
            fragments: None,
            utf8_checked: 0,
        }
    }

    /// Parses the next event out of `buf`, consuming what it used.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Parsed, FrameError> {
        loop {
            if buf.len() < 2 {
                return Ok(Parsed::NeedMore(2 - buf.len()));
            }
            let b0 = buf[0];
            let b1 = buf[1];
            let fin = b0 & 0x80 != 0;
            if b0 & 0x70 != 0 {
                return Err(FrameError::Protocol(
                    "reserved bits set without a negotiated extension",
                ));
            }
            let opcode = b0 & 0x0f;
            if b1 & 0x80 == 0 {
                return Err(FrameError::Protocol("client frames must be masked"));
            }
            let (len, header) = match b1 & 0x7f {
                126 => {
                    if buf.len() < 4 {
                        return Ok(Parsed::NeedMore(4 - buf.len()));
                    }
                    (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
                }
                127 => {
                    if buf.len() < 10 {
                        return Ok(Parsed::NeedMore(10 - buf.len()));
                    }
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&buf[2..10]);
                    let l = u64::from_be_bytes(l);
                    if l >> 63 != 0 {
                        return Err(FrameError::Protocol(
                            "frame length has the most significant bit set",
                        ));
                    }
                    (l, 10)
                }
                n => (n as u64, 2),
            };
            let is_control = opcode & 0x8 != 0;
            if is_control {
                if !fin {
                    return Err(FrameError::Protocol(
                        "control frames must not be fragmented",
                    ));
                }
                if len > 125 {
                    return Err(FrameError::Protocol(
                        "control frame payload longer than 125 bytes",
                    ));
                }
            } else {
                let so_far = self.fragments.as_ref().map_or(0, |(_, d)| d.len()) as u64;
                if so_far + len > self.max_message as u64 {
                    return Err(FrameError::TooBig(self.max_message));
                }
            }
            match opcode {
                0x0 if self.fragments.is_none() => {
                    return Err(FrameError::Protocol(
                        "continuation frame without a message in progress",
                    ))
                }
                0x1 | 0x2 if self.fragments.is_some() => {
                    return Err(FrameError::Protocol(
                        "new data frame while a fragmented message is in progress",
                    ))
                }
                0x0..=0x2 | 0x8..=0xA => {}
                _ => return Err(FrameError::Protocol("reserved opcode")),
            }
            let total = header + 4 + len as usize;
            if buf.len() < total {
                return Ok(Parsed::NeedMore(total - buf.len()));
            }
            let mask = [
                buf[header],
                buf[header + 1],
                buf[header + 2],
                buf[header + 3],
            ];
            buf.advance(header + 4);
            let mut payload = buf.split_to(len as usize);
            unmask(&mut payload, mask);
            match opcode {
                0x8 => return parse_close(&payload).map(Parsed::Event),
                0x9 => return Ok(Parsed::Event(FrameEvent::Ping(payload.freeze()))),
                0xA => return Ok(Parsed::Event(FrameEvent::Pong)),
                0x1 | 0x2 if fin => return finish(opcode, payload).map(Parsed::Event),
                0x1 | 0x2 => {
                    self.fragments = Some((opcode, payload));
                    self.utf8_checked = 0;
                    self.check_partial_utf8()?;
                }
                _ => {
                    // continuation
                    if let Some((_, data)) = self.fragments.as_mut() {
                        data.extend_from_slice(&payload);
                    }
                    self.check_partial_utf8()?;
                    if fin {
                        if let Some((op, data)) = self.fragments.take() {
                            return finish(op, data).map(Parsed::Event);
                        }
                    }
                }
            }
        }
    }
}

impl WsReader {
    /// Validates the new part of a fragmented text message; an incomplete character at the
    /// end is fine until the next fragment, anything else fails at once.
    fn check_partial_utf8(&mut self) -> Result<(), FrameError> {
        let Some((0x1, data)) = self.fragments.as_ref() else {
            return Ok(());
        };
        match simdutf8::compat::from_utf8(&data[self.utf8_checked..]) {
            Ok(_) => self.utf8_checked = data.len(),
            Err(e) if e.error_len().is_none() => self.utf8_checked += e.valid_up_to(),
            Err(_) => return Err(FrameError::InvalidUtf8),
        }
        Ok(())
    }
}

fn finish(opcode: u8, data: BytesMut) -> Result<FrameEvent, FrameError> {
    let text = opcode == 0x1;
    if text && simdutf8::basic::from_utf8(&data).is_err() {
        return Err(FrameError::InvalidUtf8);
    }
    Ok(FrameEvent::Message {
        text,
        data: data.freeze(),
    })
}

fn parse_close(payload: &[u8]) -> Result<FrameEvent, FrameError> {
    match payload.len() {
        0 => Ok(FrameEvent::Close {
            code: None,
            reason: String::new(),
        }),
        1 => Err(FrameError::Protocol("close frame with a one-byte payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !valid_close_code(code) {
                return Err(FrameError::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| FrameError::InvalidUtf8)?;
            Ok(FrameEvent::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

/// A close frame's payload: code and a reason cut to fit a control frame.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![b0];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn event(r: &mut WsReader, buf: &mut BytesMut) -> Result<FrameEvent, FrameError> {
        match r.parse(buf)? {
            Parsed::Event(e) => Ok(e),
            Parsed::NeedMore(n) => panic!("need {n} more"),
        }
    }

    #[test]
    fn reassembles_fragments_and_interleaved_pings() {
        let mut r = WsReader::new(100);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&masked(0x01, b"hel"));
        buf.extend_from_slice(&masked(0x89, b"p"));
        buf.extend_from_slice(&masked(0x80, "lo wörld, a longer text".as_bytes()));
        assert_eq!(
            event(&mut r, &mut buf).unwrap(),
            FrameEvent::Ping(Bytes::from_static(b"p"))
        );
        assert_eq!(
            event(&mut r, &mut buf).unwrap(),
            FrameEvent::Message {
                text: true,
                data: Bytes::from("hello wörld, a longer text")
            }
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn total_size_of_fragments_is_capped() {
        let mut r = WsReader::new(10);
        let mut buf = BytesMut::new();
        for _ in 0..3 {
            buf.extend_from_slice(&masked(
                if r.fragments.is_none() { 0x02 } else { 0x00 },
                b"abcd",
            ));
            let _ = r.parse(&mut buf);
        }
        let mut buf = BytesMut::new();
        let mut r = WsReader::new(10);
        buf.extend_from_slice(&masked(0x02, b"abcd"));
        buf.extend_from_slice(&masked(0x00, b"abcd"));
        buf.extend_from_slice(&masked(0x00, b"abcd"));
        assert_eq!(r.parse(&mut buf).err(), Some(FrameError::TooBig(10)));
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let mut r = WsReader::new(10);
        let mut buf = BytesMut::from(&[0x82u8, 0x80 | 126, 0x10, 0x00][..]);
        assert_eq!(r.parse(&mut buf).err(), Some(FrameError::TooBig(10)));
    }

    #[test]
    fn protocol_errors() {
        let bad = |bytes: Vec<u8>| {
            WsReader::new(100)
                .parse(&mut BytesMut::from(&bytes[..]))
                .err()
        };
        assert!(
            matches!(bad(vec![0x81, 0x01, b'x']), Some(FrameError::Protocol(_))),
            "unmasked"
        );
        assert!(
            matches!(bad(masked(0xC1, b"x")), Some(FrameError::Protocol(_))),
            "rsv1"
        );
        assert!(
            matches!(bad(masked(0x83, b"x")), Some(FrameError::Protocol(_))),
            "opcode 3"
        );
        assert!(
            matches!(bad(masked(0x09, b"x")), Some(FrameError::Protocol(_))),
            "fragmented ping"
        );
        assert!(
            matches!(bad(masked(0x80, b"x")), Some(FrameError::Protocol(_))),
            "lone continuation"
        );
        assert!(
            matches!(
                bad(masked(0x88, &[0x03, 0xEC])),
                Some(FrameError::Protocol(_))
            ),
            "close 1004"
        );
        assert_eq!(bad(masked(0x81, &[0xff])), Some(FrameError::InvalidUtf8));
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let mut r = WsReader::new(100);
        let full = masked(0x82, b"abcdef");
        let mut buf = BytesMut::from(&full[..5]);
        assert!(matches!(r.parse(&mut buf), Ok(Parsed::NeedMore(7))));
        buf.extend_from_slice(&full[5..]);
        assert!(matches!(
            r.parse(&mut buf),
            Ok(Parsed::Event(FrameEvent::Message { text: false, .. }))
        ));
    }
}
