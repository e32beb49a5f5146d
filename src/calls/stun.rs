//! The STUN server (RFC 8489 Binding): answers a Binding request with the address it came
//! from (XOR-MAPPED-ADDRESS), so a browser learns its public address. Built on `stun-types`
//! (parsing and writing STUN messages); anything that is not a well-formed Binding request is
//! dropped without an answer, as the RFC asks of a server.

use std::net::SocketAddr;
use stun_types::attribute::{
    AttributeType, ErrorCode, Software, UnknownAttributes, XorMappedAddress,
};
use stun_types::message::{
    Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec, BINDING,
};

/// The comprehension-required attributes (types below 0x8000) understood here and by the TURN
/// relay: STUN's (RFC 8489) but PASSWORD-ALGORITHM and USERHASH, which the relay does not offer,
/// TURN's (RFC 8656) but DONT-FRAGMENT — the relay does not set DF, and RFC 8656 §7.2 has such
/// a server treat the attribute as unknown —, and ICE's PRIORITY and USE-CANDIDATE (known, so
/// ignored where they are unexpected).
const KNOWN: [u16; 20] = [
    0x0001, // MAPPED-ADDRESS
    0x0006, // USERNAME
    0x0008, // MESSAGE-INTEGRITY
    0x0009, // ERROR-CODE
    0x000A, // UNKNOWN-ATTRIBUTES
    0x000C, // CHANNEL-NUMBER
    0x000D, // LIFETIME
    0x0012, // XOR-PEER-ADDRESS
    0x0013, // DATA
    0x0014, // REALM
    0x0015, // NONCE
    0x0016, // XOR-RELAYED-ADDRESS
    0x0017, // REQUESTED-ADDRESS-FAMILY
    0x0018, // EVEN-PORT
    0x0019, // REQUESTED-TRANSPORT
    0x001C, // MESSAGE-INTEGRITY-SHA256
    0x0020, // XOR-MAPPED-ADDRESS
    0x0022, // RESERVATION-TOKEN
    0x0024, // PRIORITY
    0x0025, // USE-CANDIDATE
];

fn unknown(t: AttributeType) -> bool {
    t.comprehension_required() && !KNOWN.contains(&u16::from(t))
}

/// The comprehension-required attributes of `msg` not understood here, in order, each once: a
/// request with any is answered 420 (Unknown Attribute) listing them in UNKNOWN-ATTRIBUTES
/// (RFC 8489 §6.3.1; RFC 5389 §7.3.1). Comprehension-optional ones are ignored.
pub fn unknown_required(msg: &Message) -> Vec<AttributeType> {
    let mut out: Vec<AttributeType> = Vec::new();
    for (_, a) in msg.iter_attributes() {
        let t = a.header.get_type();
        if unknown(t) && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Whether `msg` has a comprehension-required attribute not understood here: an indication
/// with one is dropped (RFC 8489 §6.3.2). Allocates nothing.
pub fn has_unknown_required(msg: &Message) -> bool {
    msg.iter_attributes()
        .any(|(_, a)| unknown(a.header.get_type()))
}

/// The 420 (Unknown Attribute) answer to `msg`, listing `unknown`, without integrity (the
/// TURN relay signs its own).
fn unknown_attributes(msg: &Message, unknown: &[AttributeType]) -> Option<Vec<u8>> {
    let mut out = Message::builder_error(msg, MessageWriteVec::new());
    out.add_attribute(
        &ErrorCode::builder(ErrorCode::UNKNOWN_ATTRIBUTE)
            .build()
            .ok()?,
    )
    .ok()?;
    out.add_attribute(&UnknownAttributes::new(unknown)).ok()?;
    out.add_attribute(&Software::new("switchboard").ok()?)
        .ok()?;
    out.add_fingerprint().ok()?;
    Some(out.finish())
}

/// The answer to one datagram from `from`, if it deserves one: the mapped address, or 420 for
/// a request with comprehension-required attributes not understood here.
pub fn respond(packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let msg = Message::from_bytes(packet).ok()?;
    if !msg.has_class(MessageClass::Request) || !msg.has_method(BINDING) {
        return None;
    }
    let unknown = unknown_required(&msg);
    if !unknown.is_empty() {
        return unknown_attributes(&msg, &unknown);
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

    /// `request` with attributes of the given types appended by hand (four bytes of value).
    fn with_attributes(tid: [u8; 12], types: &[u16]) -> Vec<u8> {
        let mut r = request(tid);
        for t in types {
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 4, 1, 2, 3, 4]);
        }
        let len = (r.len() - 20) as u16;
        r[2..4].copy_from_slice(&len.to_be_bytes());
        r
    }

    #[test]
    fn unknown_comprehension_required_attributes_get_420() {
        let from: SocketAddr = "203.0.113.7:54321".parse().unwrap();
        // 0x0003 (CHANGE-REQUEST, RFC 5780) and 0x7F00 must be understood; 0x8F00 need not.
        let req = with_attributes([2; 12], &[0x8F00, 0x0003, 0x7F00, 0x0003]);
        let resp = respond(&req, from).expect("an answer");
        let m = Message::from_bytes(&resp).unwrap();
        assert!(m.has_class(MessageClass::Error) && m.has_method(BINDING));
        assert_eq!(
            m.transaction_id(),
            Message::from_bytes(&req).unwrap().transaction_id()
        );
        assert_eq!(m.attribute::<ErrorCode>().unwrap().code(), 420);
        let listed = m.attribute::<UnknownAttributes>().unwrap();
        assert!(listed.has_attribute(AttributeType::new(0x0003)));
        assert!(listed.has_attribute(AttributeType::new(0x7F00)));
        assert!(!listed.has_attribute(AttributeType::new(0x8F00)));
        assert_eq!(
            unknown_required(&Message::from_bytes(&req).unwrap()),
            [AttributeType::new(0x0003), AttributeType::new(0x7F00)],
            "each once"
        );
        // Only comprehension-optional unknowns, or known ones: answered as usual.
        for types in [&[0x8F00u16][..], &[0x0024, 0x0025]] {
            let resp = respond(&with_attributes([3; 12], types), from).expect("an answer");
            assert_eq!(mapped(&resp), Some(from), "{types:x?}");
        }
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
