//! The three WAMP serializers: `wamp.2.json`, `wamp.2.msgpack`, `wamp.2.cbor`.

use super::message::{DecodeError, Message, Wire};
use super::value::{JsonValueOwned, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    Json,
    MsgPack,
    Cbor,
}

impl Serializer {
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    /// The WebSocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    pub fn from_subprotocol(name: &str) -> Option<Serializer> {
        Serializer::ALL
            .into_iter()
            .find(|s| s.subprotocol() == name)
    }

    /// A short name for logs and status figures.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }

    /// Index into per-serializer caches.
    pub fn index(self) -> usize {
        match self {
            Serializer::Json => 0,
            Serializer::MsgPack => 1,
            Serializer::Cbor => 2,
        }
    }

    /// JSON travels in WebSocket text frames, the others in binary frames.
    pub fn is_text(self) -> bool {
        self == Serializer::Json
    }

    /// Appends the encoded message to `out`.
    pub fn encode_into(self, msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Serializer::Json => serde_json::to_writer(&mut *out, &Wire::<true>(msg))
                .map_err(|e| EncodeError(e.to_string())),
            Serializer::MsgPack => {
                let mut ser = rmp_serde::Serializer::new(&mut *out);
                serde::Serialize::serialize(&Wire::<false>(msg), &mut ser)
                    .map_err(|e| EncodeError(e.to_string()))
            }
            Serializer::Cbor => ciborium::into_writer(&Wire::<false>(msg), &mut *out)
                .map_err(|e| EncodeError(e.to_string())),
        }
    }

    pub fn encode(self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(msg, &mut out)?;
        Ok(out)
    }

    /// Decodes one message; structural problems are `DecodeError`s.
    pub fn decode(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        let value: Value = match self {
            Serializer::Json => serde_json::from_slice::<JsonValueOwned>(bytes)
                .map(|v| v.0)
                .map_err(|e| DecodeError(format!("invalid JSON: {e}")))?,
            Serializer::MsgPack => rmp_serde::from_slice::<Value>(bytes)
                .map_err(|e| DecodeError(format!("invalid MessagePack: {e}")))?,
            Serializer::Cbor => ciborium::from_reader::<Value, _>(bytes)
                .map_err(|e| DecodeError(format!("invalid CBOR: {e}")))?,
        };
        Message::from_value(value)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::message::Payload;
    use crate::wamp::value::dict;
    use bytes::Bytes;
    use std::sync::Arc;

    /// Found by the `wamp_json` fuzz target: without serde_json's `float_roundtrip` a number
    /// parsed from JSON could come out one ULP off, so re-encoding changed it (a float a JSON
    /// peer sent reached other peers altered).
    #[test]
    fn json_floats_survive_decode_encode_decode() {
        for text in [
            "[16,1,{},\"a.b\",[88888888888888888888886666688888888888888888888888888888888888888888881]]",
            "[16,1,{},\"a.b\",[8.8888888888888891e70, 0.30000000000000004, 2.2250738585072014e-308]]",
        ] {
            let first = Serializer::Json.decode(text.as_bytes()).unwrap();
            let bytes = Serializer::Json.encode(&first).unwrap();
            let again = Serializer::Json.decode(&bytes).unwrap();
            assert_eq!(first, again, "{}", String::from_utf8_lossy(&bytes));
            assert_eq!(Serializer::Json.encode(&again).unwrap(), bytes);
        }
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                realm: "realm1".into(),
                details: dict([("roles", Value::Dict(vec![]))]),
            },
            Message::Publish {
                request: 1,
                options: vec![],
                topic: "a.b".into(),
                payload: Payload {
                    args: Some(vec![
                        Value::Bytes(Bytes::from_static(b"\x00\xff")),
                        Value::Int(-1),
                    ]),
                    kwargs: Some(dict([("x", Value::Float(0.25))])),
                },
            },
            Message::Event {
                subscription: 5,
                publication: 6,
                details: vec![],
                payload: Arc::new(Payload::default()),
            },
            Message::Unsubscribed {
                request: 0,
                details: Some(dict([("reason", "x".into())])),
            },
            Message::Yield {
                request: 3,
                options: vec![],
                payload: Payload {
                    args: None,
                    kwargs: Some(dict([("k", Value::Null)])),
                },
            },
        ]
    }

    #[test]
    fn every_serializer_round_trips() {
        for s in Serializer::ALL {
            for m in samples() {
                let bytes = s.encode(&m).unwrap();
                let back = s.decode(&bytes).unwrap();
                // kwargs without args encode an empty args list.
                let expect = match m.clone() {
                    Message::Yield {
                        request,
                        options,
                        payload,
                    } if payload.args.is_none() => Message::Yield {
                        request,
                        options,
                        payload: Payload {
                            args: Some(vec![]),
                            kwargs: payload.kwargs,
                        },
                    },
                    other => other,
                };
                assert_eq!(back, expect, "{s:?}");
            }
        }
    }

    #[test]
    fn structural_errors_are_reported() {
        let j = Serializer::Json;
        assert!(j.decode(b"{").is_err());
        assert!(j.decode(b"{}").unwrap_err().0.contains("must be a list"));
        assert!(j
            .decode(b"[999]")
            .unwrap_err()
            .0
            .contains("unknown message type"));
        assert!(j
            .decode(b"[1, 5, {}]")
            .unwrap_err()
            .0
            .contains("Realm must be a string"));
        assert!(j
            .decode(b"[32, 0, {}, \"a\"]")
            .unwrap_err()
            .0
            .contains("id in [1, 2^53]"));
        assert!(j
            .decode(b"[32, 1, {}, \"a\", 5]")
            .unwrap_err()
            .0
            .contains("too many"));
        assert!(j
            .decode(b"[16, 1, {}, \"a\", {}]")
            .unwrap_err()
            .0
            .contains("Arguments must be a list"));
        assert!(j
            .decode(b"[16, 1, {}, \"a\", [], []]")
            .unwrap_err()
            .0
            .contains("ArgumentsKw must be a dict"));
    }

    /// Random and mutated input never panics a decoder; it decodes or returns an error.
    #[test]
    fn arbitrary_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5b);
        let seeds: Vec<Vec<u8>> = samples()
            .iter()
            .flat_map(|m| Serializer::ALL.map(|s| s.encode(m).unwrap()))
            .collect();
        for round in 0..20_000 {
            let mut input = if round % 2 == 0 {
                seeds[rng.random_range(0..seeds.len())].clone()
            } else {
                (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
            };
            for _ in 0..rng.random_range(0..4) {
                if input.is_empty() {
                    break;
                }
                let i = rng.random_range(0..input.len());
                input[i] = rng.random();
            }
            if rng.random_bool(0.2) && !input.is_empty() {
                let cut = rng.random_range(0..input.len());
                input.truncate(cut);
            }
            for s in Serializer::ALL {
                let _ = s.decode(&input);
            }
        }
    }
}
