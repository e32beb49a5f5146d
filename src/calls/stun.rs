//! The STUN server (RFC 8489 Binding): answers a Binding request with the address it came
//! from (XOR-MAPPED-ADDRESS), so a browser learns its public address. Built on `stun-types`
//! (parsing and writing STUN messages); anything that is not a well-formed Binding request is
//! dropped without an answer, as the RFC asks of a server.

use std::net::SocketAddr;
use stun_types::attribute::{Software, XorMappedAddress};
use stun_types::message::{
    Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec, BINDING,
};

/// The answer to one datagram from `from`, if it deserves one.
pub fn respond(packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let msg = Message::from_bytes(packet).ok()?;
    if !msg.has_class(MessageClass::Request) || !msg.has_method(BINDING) {
        return None;
    }
    let mut out = Message::builder_success(&msg, MessageWriteVec::new());
    out.add_attribute(&XorMappedAddress::new(from, msg.transaction_id()))
        .ok()?;
    out.add_attribute(&Software::new("switchboard").ok()?)
        .ok()?;
    out.add_fingerprint().ok()?;
    Some(out.finish())
}

/// Serves Binding requests on `socket` until the task is aborted.
pub async fn serve(socket: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "stun: receive failed");
                continue;
            }
        };
        if let Some(answer) = buf.get(..n).and_then(|p| respond(p, from)) {
            let _ = socket.send_to(&answer, from).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request written by hand (RFC 8489 §5): type 0x0001, length 0, magic cookie,
    /// a 96-bit transaction id.
    fn request(tid: [u8; 12]) -> Vec<u8> {
        let mut r = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        r.extend_from_slice(&tid);
        r
    }

    /// XOR-MAPPED-ADDRESS (0x0020) decoded by hand from a success response.
    fn mapped(resp: &[u8]) -> Option<SocketAddr> {
        let mut i = 20;
        while i + 4 <= resp.len() {
            let t = u16::from_be_bytes([resp[i], resp[i + 1]]);
            let len = u16::from_be_bytes([resp[i + 2], resp[i + 3]]) as usize;
            let v = resp.get(i + 4..i + 4 + len)?;
            if t == 0x0020 && v[1] == 0x01 {
                let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
                let ip = [v[4] ^ 0x21, v[5] ^ 0x12, v[6] ^ 0xA4, v[7] ^ 0x42];
                return Some(SocketAddr::from((ip, port)));
            }
            i += 4 + len.div_ceil(4) * 4;
        }
        None
    }

    #[test]
    fn binding_request_gets_the_mapped_address() {
        let from: SocketAddr = "203.0.113.7:54321".parse().unwrap();
        let tid = [7u8; 12];
        let resp = respond(&request(tid), from).expect("an answer");
        assert_eq!(&resp[0..2], &[0x01, 0x01], "Binding success response");
        assert_eq!(&resp[8..20], &tid, "same transaction id");
        assert_eq!(mapped(&resp), Some(from));
    }

    #[test]
    fn everything_else_is_ignored() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(respond(&[], from).is_none());
        assert!(respond(&[0u8; 19], from).is_none());
        assert!(respond(b"GET / HTTP/1.1\r\n\r\n", from).is_none());
        let mut indication = request([1; 12]);
        indication[1] = 0x11; // Binding indication
        assert!(respond(&indication, from).is_none());
        let mut bad_cookie = request([1; 12]);
        bad_cookie[4] = 0;
        assert!(respond(&bad_cookie, from).is_none());
        let mut too_long = request([1; 12]);
        too_long[3] = 40; // claims attributes that are not there
        assert!(respond(&too_long, from).is_none());
    }
}
