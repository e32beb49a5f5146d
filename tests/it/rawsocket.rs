//! WAMP RawSocket over TCP and Unix sockets, with a hand-written client (handshake and framing
//! built byte by byte here, not with the crate's code).

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

struct Raw<S> {
    s: S,
    msgpack: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    async fn handshake(mut s: S, byte1: u8) -> Result<(Raw<S>, [u8; 4]), [u8; 4]> {
        s.write_all(&[0x7F, byte1, 0, 0]).await.expect("write");
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).await.expect("handshake reply");
        if reply[1] & 0x0F == 0 {
            return Err(reply);
        }
        Ok((
            Raw {
                s,
                msgpack: byte1 & 0x0F == 2,
            },
            reply,
        ))
    }

    async fn frame(&mut self, kind: u8, payload: &[u8]) {
        let len = (payload.len() as u32).to_be_bytes();
        self.s
            .write_all(&[kind, len[1], len[2], len[3]])
            .await
            .expect("write");
        self.s.write_all(payload).await.expect("write");
    }

    async fn send(&mut self, v: Value) {
        let bytes = if self.msgpack {
            match Ser::MsgPack.encode(&v) {
                tokio_tungstenite::tungstenite::Message::Binary(b) => b.to_vec(),
                _ => unreachable!(),
            }
        } else {
            v.to_string().into_bytes()
        };
        self.frame(0, &bytes).await;
    }

    /// Next frame: (type, payload); None when the router closed the connection.
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 4];
        tokio::time::timeout(TIMEOUT, self.s.read_exact(&mut h))
            .await
            .ok()?
            .ok()?;
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let mut p = vec![0u8; len];
        tokio::time::timeout(TIMEOUT, self.s.read_exact(&mut p))
            .await
            .ok()?
            .ok()?;
        Some((h[0], p))
    }

    async fn recv(&mut self) -> Value {
        loop {
            let (kind, p) = self.next_frame().await.expect("a frame");
            if kind != 0 {
                continue;
            }
            return if self.msgpack {
                Ser::MsgPack.decode(&tokio_tungstenite::tungstenite::Message::Binary(p.into()))
            } else {
                serde_json::from_slice(&p).expect("JSON")
            };
        }
    }
}

async fn server() -> (TestServer, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("wamp.sock");
    let s2 = sock.clone();
    let srv = TestServer::with(move |o| {
        o.rawsocket_tcp = Some("127.0.0.1:0".parse().expect("addr"));
        o.rawsocket_unix = Some(s2);
    })
    .await;
    (srv, sock, dir)
}

async fn tcp(srv: &TestServer) -> tokio::net::TcpStream {
    let addr = srv
        .running
        .as_ref()
        .and_then(|r| r.rawsocket_addr)
        .expect("rawsocket enabled");
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test]
async fn handshake_negotiates_serializer_and_length() {
    let (srv, _sock, _dir) = server().await;
    for (b1, ser) in [(0xF1u8, 1u8), (0x02, 2), (0x73, 3)] {
        let (_raw, reply) = Raw::handshake(tcp(&srv).await, b1).await.expect("accepted");
        assert_eq!(reply[0], 0x7F);
        assert_eq!(reply[1] & 0x0F, ser, "serializer echoed");
        assert_eq!(
            reply[1] >> 4,
            11,
            "router accepts 2^(9+11) = 1 MiB, its --max-message-size"
        );
        assert_eq!(&reply[2..], &[0, 0]);
    }
    // Unknown serializer: error 1; reserved bits: error 3; then the router closes.
    for (hs, err) in [([0x7Fu8, 0x17, 0, 0], 1u8), ([0x7F, 0x11, 1, 0], 3)] {
        let mut s = tcp(&srv).await;
        s.write_all(&hs).await.expect("write");
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).await.expect("reply");
        assert_eq!(reply, [0x7F, err << 4, 0, 0]);
        assert_eq!(
            s.read(&mut reply).await.unwrap_or(0),
            0,
            "closed after the error"
        );
    }
    // Not RawSocket at all: closed without a reply.
    let mut s = tcp(&srv).await;
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn rawsocket_and_websocket_sessions_share_a_realm() {
    let (srv, _sock, _dir) = server().await;
    let (mut raw, _) = Raw::handshake(tcp(&srv).await, 0xF2)
        .await
        .expect("accepted");
    raw.send(json!([1, "realm1", {"roles": {"subscriber": {}, "callee": {}}}]))
        .await;
    assert_eq!(raw.recv().await[0], 2);
    raw.send(json!([32, 1, {}, "com.raw"])).await;
    let sub = raw.recv().await;
    assert_eq!(sub[0], 33);
    raw.send(json!([64, 2, {}, "com.raw.echo"])).await;
    assert_eq!(raw.recv().await[0], 65);

    let mut ws = srv.joined(Ser::Json).await;
    ws.send(json!([16, 1, {}, "com.raw", ["\u{0}AQID", {"k": 1}]]))
        .await;
    let e = raw.recv().await;
    assert_eq!(
        e,
        json!([36, sub[2], e[2], {}, ["\u{0}AQID", {"k": 1}]]),
        "bytes arrive as msgpack binary"
    );
    ws.send(json!([48, 5, {}, "com.raw.echo", [42]])).await;
    let inv = raw.recv().await;
    assert_eq!(inv[0], 68);
    raw.send(json!([70, inv[1], {}, [43]])).await;
    assert_eq!(ws.recv().await, json!([50, 5, {}, [43]]));
}

#[tokio::test]
async fn ping_is_answered_and_oversize_messages_drop_the_connection() {
    let (srv, _sock, _dir) = server().await;
    let (mut raw, _) = Raw::handshake(tcp(&srv).await, 0xF1)
        .await
        .expect("accepted");
    raw.frame(1, b"are you there").await;
    assert_eq!(
        raw.next_frame().await,
        Some((2, b"are you there".to_vec())),
        "PONG echoes the PING payload"
    );
    raw.send(json!([1, "realm1", {}])).await;
    assert_eq!(raw.recv().await[0], 2);
    // A message over the router's 1 MiB limit: the connection is dropped.
    let big = vec![b' '; (1 << 20) + 10];
    let len = (big.len() as u32).to_be_bytes();
    raw.s
        .write_all(&[0, len[1], len[2], len[3]])
        .await
        .expect("write header");
    let _ = raw.s.write_all(&big).await;
    assert_eq!(raw.next_frame().await, None);
    for _ in 0..200 {
        if srv.status().await["sessions"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session not removed");
}

#[tokio::test]
async fn results_larger_than_the_caller_accepts_become_payload_size_exceeded() {
    let (srv, _sock, _dir) = server().await;
    // This caller accepts at most 2^(9+2) = 2048 bytes per message.
    let (mut raw, _) = Raw::handshake(tcp(&srv).await, 0x21)
        .await
        .expect("accepted");
    raw.send(json!([1, "realm1", {}])).await;
    assert_eq!(raw.recv().await[0], 2);
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.big", json!({})).await;
    raw.send(json!([48, 1, {}, "com.big"])).await;
    let inv = callee.recv().await;
    callee
        .send(json!([70, inv[1], {}, ["x".repeat(4000)]]))
        .await;
    let e = raw.recv().await;
    assert_eq!(e[0], 8);
    assert_eq!(e[4], "wamp.error.payload_size_exceeded");
}

#[tokio::test]
async fn unix_socket_transport() {
    let (srv, sock, _dir) = server().await;
    let s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect unix socket");
    let (mut raw, _) = Raw::handshake(s, 0xF1).await.expect("accepted");
    raw.send(json!([1, "realm1", {}])).await;
    let w = raw.recv().await;
    assert_eq!(w[0], 2);
    raw.send(json!([16, 1, {"acknowledge": true}, "com.unix", []]))
        .await;
    assert_eq!(raw.recv().await[0], 17);
    drop(srv);
}
