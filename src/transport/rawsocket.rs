//! WAMP RawSocket (spec "RawSocket Transport") over TCP and Unix-domain sockets: the 4-octet
//! handshake (magic 0x7F, serializer, maximum message length each side accepts), then
//! length-prefixed frames — type 0 message, 1 PING, 2 PONG — with a 24-bit length.
//!
//! After the handshake a RawSocket connection runs the same connection loop, session and
//! outbox as a WebSocket one; only the `FrameCodec` differs.

use super::connection::{self, Handler};
use super::connections::Connections;
use super::frames::{FrameCodec, FrameError, FrameEvent, Parsed};
use super::socket::Socket;
use crate::config::WampEndpoint;
use crate::framing::Framing;
use crate::outbox::Outbox;
use crate::router::Router;
use crate::session::Session;
use crate::wamp::Serializer;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAGIC: u8 = 0x7F;
const TYPE_MESSAGE: u8 = 0;
const TYPE_PING: u8 = 1;
const TYPE_PONG: u8 = 2;

/// Handshake error codes (upper nibble of the reply's second octet).
const ERR_SERIALIZER: u8 = 1;
const ERR_RESERVED: u8 = 3;
/// "Maximum connection count reached".
pub const ERR_CONNECTION_COUNT: u8 = 4;

/// Reads the client's handshake (so closing does not reset the reply away) and answers it with
/// handshake error `code`, then closes.
pub async fn refuse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    code: u8,
) {
    let mut h = [0u8; 4];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(2), stream.read_exact(&mut h)).await;
    if matches!(read, Ok(Ok(_))) && h[0] == MAGIC {
        let _ = stream.write_all(&[MAGIC, code << 4, 0, 0]).await;
    }
    let _ = stream.shutdown().await;
}

/// A RawSocket frame of `kind` carrying `payload`.
pub fn raw_frame(kind: u8, payload: &[u8]) -> Bytes {
    let len = (payload.len().min((1 << 24) - 1) as u32).to_be_bytes();
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&[kind, len[1], len[2], len[3]]);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The RawSocket frame reader.
pub struct RawReader {
    max_message: usize,
}

impl RawReader {
    pub fn new(max_message: usize) -> RawReader {
        RawReader { max_message }
    }
}

impl FrameCodec for RawReader {
    fn parse(&mut self, buf: &mut BytesMut) -> Result<Parsed, FrameError> {
        if buf.len() < 4 {
            return Ok(Parsed::NeedMore(4 - buf.len()));
        }
        let head = buf[0];
        if head & 0xF8 != 0 {
            return Err(FrameError::Protocol(
                "reserved bits set in a RawSocket frame header",
            ));
        }
        let kind = head & 0x07;
        let len = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_message {
            return Err(FrameError::TooBig(self.max_message));
        }
        if kind > TYPE_PONG {
            return Err(FrameError::Protocol("unknown RawSocket frame type"));
        }
        if buf.len() < 4 + len {
            return Ok(Parsed::NeedMore(4 + len - buf.len()));
        }
        buf.advance(4);
        let payload = buf.split_to(len).freeze();
        Ok(Parsed::Event(match kind {
            TYPE_MESSAGE => FrameEvent::Message {
                text: false,
                data: payload,
            },
            TYPE_PING => FrameEvent::Ping(payload),
            _ => FrameEvent::Pong,
        }))
    }
    fn ping(&self) -> Bytes {
        raw_frame(TYPE_PING, b"")
    }
    fn pong(&self, payload: &[u8]) -> Bytes {
        raw_frame(TYPE_PONG, payload)
    }
    fn close(&self, _code: Option<u16>, _reason: &str) -> Option<Bytes> {
        None
    }
    fn echo(&self, _text: bool, data: &[u8]) -> Bytes {
        raw_frame(TYPE_MESSAGE, data)
    }
}

/// The length exponent (0..=15, meaning 2^(9+n) octets) that covers `max`.
pub fn length_exponent(max: usize) -> u8 {
    (0..=15u8)
        .find(|n| (1usize << (9 + n)) >= max)
        .unwrap_or(15)
}

/// The outcome of reading a client's handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Accepted: serializer and the largest message the client accepts.
    Accept {
        serializer: Serializer,
        client_max: usize,
    },
    /// Refused with a handshake error code (reply, then close).
    Refuse(u8),
    /// Not RawSocket at all (close without a reply).
    NotRawSocket,
}

pub fn read_handshake(h: [u8; 4]) -> Handshake {
    if h[0] != MAGIC {
        return Handshake::NotRawSocket;
    }
    if h[2] != 0 || h[3] != 0 {
        return Handshake::Refuse(ERR_RESERVED);
    }
    let serializer = match h[1] & 0x0F {
        1 => Serializer::Json,
        2 => Serializer::MsgPack,
        3 => Serializer::Cbor,
        _ => return Handshake::Refuse(ERR_SERIALIZER),
    };
    Handshake::Accept {
        serializer,
        client_max: 1usize << (9 + (h[1] >> 4)),
    }
}

fn serializer_code(s: Serializer) -> u8 {
    match s {
        Serializer::Json => 1,
        Serializer::MsgPack => 2,
        Serializer::Cbor => 3,
    }
}

/// Serves one accepted RawSocket connection (TCP or Unix): handshake, then the connection loop.
pub async fn serve<S: Socket + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    router: Arc<Router>,
    conns: Arc<Connections>,
    endpoint: WampEndpoint,
    peer: Option<std::net::SocketAddr>,
) {
    serve_with(stream, |s| (s, Bytes::new()), router, conns, endpoint, peer).await
}

/// Serves a RawSocket connection over TLS (after the TLS handshake).
pub async fn serve_tls(
    stream: crate::tls::ServerStream,
    router: Arc<Router>,
    conns: Arc<Connections>,
    endpoint: WampEndpoint,
    peer: Option<std::net::SocketAddr>,
) {
    let into = |s| crate::tls::into_socket(s, &[]);
    serve_with(stream, into, router, conns, endpoint, peer).await
}

/// The handshake over `stream`, then the connection loop over what `into_socket` makes of it
/// (the socket and any bytes already read past the handshake).
/// (A plain function returning an `async move` block: see `connection::serve` for why.)
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn serve_with<S, T>(
    mut stream: S,
    into_socket: impl FnOnce(S) -> (T, Bytes),
    router: Arc<Router>,
    conns: Arc<Connections>,
    endpoint: WampEndpoint,
    peer: Option<std::net::SocketAddr>,
) -> impl std::future::Future<Output = ()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: Socket,
{
    async move {
        // The few figures needed, not a clone of all the limits: what is held across the await
        // below sizes every RawSocket session's task.
        let (hello_timeout, max_message_size, max_queue_bytes) = {
            let limits = conns.limits();
            (
                limits.hello_timeout,
                limits.max_message_size,
                limits.max_queue_bytes,
            )
        };
        let mut h = [0u8; 4];
        match tokio::time::timeout(hello_timeout, stream.read_exact(&mut h)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let (serializer, client_max) = match read_handshake(h) {
            Handshake::Accept { serializer, .. } if !endpoint.serializers.contains(&serializer) => {
                let _ = stream.write_all(&[MAGIC, ERR_SERIALIZER << 4, 0, 0]).await;
                let _ = stream.shutdown().await;
                return;
            }
            Handshake::Accept {
                serializer,
                client_max,
            } => (serializer, client_max),
            Handshake::Refuse(code) => {
                let _ = stream.write_all(&[MAGIC, code << 4, 0, 0]).await;
                let _ = stream.shutdown().await;
                return;
            }
            Handshake::NotRawSocket => return,
        };
        let ours = length_exponent(max_message_size);
        if stream
            .write_all(&[MAGIC, (ours << 4) | serializer_code(serializer), 0, 0])
            .await
            .is_err()
        {
            return;
        }
        if !conns.is_accepting() {
            return;
        }
        let outbox = Arc::new(Outbox::with_max_frame(max_queue_bytes, client_max + 4));
        let session = Session::new(
            router.clone(),
            outbox.clone(),
            serializer,
            endpoint.auth.clone(),
            crate::auth::TransportInfo {
                framing: Framing::RawSocket,
                peer,
                protocol: None,
                http_headers: None,
            },
        );
        // Our advertised maximum is a power of two at or above the configured limit; enforce the limit.
        let reader = RawReader::new(max_message_size);
        let (socket, leftover) = into_socket(stream);
        connection::serve(
            socket,
            leftover,
            reader,
            Handler::Wamp(session),
            outbox,
            conns,
            router.counters.clone(),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_parsing() {
        assert_eq!(
            read_handshake([0x7F, 0xF1, 0, 0]),
            Handshake::Accept {
                serializer: Serializer::Json,
                client_max: 1 << 24
            }
        );
        assert_eq!(
            read_handshake([0x7F, 0x02, 0, 0]),
            Handshake::Accept {
                serializer: Serializer::MsgPack,
                client_max: 512
            }
        );
        assert_eq!(
            read_handshake([0x7F, 0x14, 0, 0]),
            Handshake::Refuse(ERR_SERIALIZER)
        );
        assert_eq!(
            read_handshake([0x7F, 0x11, 0, 1]),
            Handshake::Refuse(ERR_RESERVED)
        );
        assert_eq!(
            read_handshake([b'G', b'E', b'T', b' ']),
            Handshake::NotRawSocket
        );
        assert_eq!(length_exponent(1 << 20), 11);
        assert_eq!(length_exponent(100), 0);
        assert_eq!(length_exponent(usize::MAX), 15);
    }

    #[test]
    fn frames() {
        let mut r = RawReader::new(100);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&raw_frame(TYPE_PING, b"hi"));
        buf.extend_from_slice(&raw_frame(TYPE_MESSAGE, b"[1]"));
        buf.extend_from_slice(&raw_frame(TYPE_MESSAGE, b"[2")[..5]);
        assert!(
            matches!(r.parse(&mut buf), Ok(Parsed::Event(FrameEvent::Ping(p))) if &p[..] == b"hi")
        );
        assert!(
            matches!(r.parse(&mut buf), Ok(Parsed::Event(FrameEvent::Message { data, .. })) if &data[..] == b"[1]")
        );
        assert!(matches!(r.parse(&mut buf), Ok(Parsed::NeedMore(1))));
        assert_eq!(
            r.parse(&mut BytesMut::from(&[0u8, 0, 1, 0][..])).err(),
            Some(FrameError::TooBig(100))
        );
        assert!(matches!(
            r.parse(&mut BytesMut::from(&[3u8, 0, 0, 0][..])),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            r.parse(&mut BytesMut::from(&[0x10u8, 0, 0, 0][..])),
            Err(FrameError::Protocol(_))
        ));
    }
}
