//! The STUN server for calls: a Binding request written by hand over real UDP gets the
//! sender's address back.

use crate::support::*;
use std::time::Duration;

#[tokio::test]
async fn stun_binding_returns_the_mapped_address() {
    let srv = TestServer::with(|o| {
        o.node.router.calls.stun_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let stun = srv
        .running
        .as_ref()
        .and_then(|r| r.stun_addr)
        .expect("STUN server running");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let me = sock.local_addr().expect("addr");
    let tid = [9u8; 12];
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&tid);
    // Garbage first: no answer, and the server keeps serving.
    sock.send_to(b"hello?", stun).await.expect("send");
    sock.send_to(&req, stun).await.expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer in time")
        .expect("recv");
    let resp = &buf[..n];
    assert_eq!(&resp[0..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&resp[8..20], &tid);
    // XOR-MAPPED-ADDRESS, decoded by hand.
    let mut i = 20;
    let mut mapped = None;
    while i + 4 <= resp.len() {
        let t = u16::from_be_bytes([resp[i], resp[i + 1]]);
        let len = u16::from_be_bytes([resp[i + 2], resp[i + 3]]) as usize;
        let v = &resp[i + 4..i + 4 + len];
        if t == 0x0020 {
            let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
            let ip = [v[4] ^ 0x21, v[5] ^ 0x12, v[6] ^ 0xA4, v[7] ^ 0x42];
            mapped = Some(std::net::SocketAddr::from((ip, port)));
        }
        i += 4 + len.div_ceil(4) * 4;
    }
    assert_eq!(mapped, Some(me));
}
