//! Shared by the WAMP decoder targets.

use switchboard::wamp::codec::Serializer;

/// Decodes `data` as `ser` would for a peer; whatever decodes must encode again with every
/// serializer and decode back, and re-encoding must be stable (encode ∘ decode ∘ encode =
/// encode).
///
/// One exception, the spec's own: a MessagePack/CBOR string that starts with NUL has no JSON
/// form (JSON reserves `"\u0000…"` for base64 bytes), so its JSON encoding may not decode.
#[allow(dead_code)]
pub fn wamp_round_trip(ser: Serializer, data: &[u8]) {
    let Ok(msg) = ser.decode(data) else {
        return;
    };
    let _ = msg.code();
    for other in [Serializer::Json, Serializer::MsgPack, Serializer::Cbor] {
        let bytes = other.encode(&msg).expect("a decoded message encodes");
        let again = match other.decode(&bytes) {
            Ok(m) => m,
            Err(_) if other == Serializer::Json && contains(&bytes, b"\"\\u0000") => continue,
            Err(e) => panic!("{} encoding does not decode: {e}", other.name()),
        };
        let twice = other.encode(&again).expect("re-encodes");
        assert_eq!(bytes, twice, "{} encoding is not stable", other.name());
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
