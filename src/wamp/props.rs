//! Property tests: every WAMP message, with arbitrary payload values, survives
//! encode → decode unchanged through JSON, MessagePack and CBOR, and through a chain of all
//! three (what the router does when a MessagePack publisher reaches a JSON subscriber).
//!
//! What the generators leave out, and why:
//! - **Strings starting with NUL, for JSON**: the spec reserves `"\u0000" + base64` in JSON for
//!   bytes, so such a string has no JSON form (MessagePack and CBOR carry it, and are tested
//!   with it; the chain through JSON leaves it out too).
//! - **NaN** everywhere (`NaN != NaN`, so equality cannot show a round trip) and **±infinity for
//!   JSON** (JSON has no such number; serde_json writes `null`).
//! - **Non-negative `Value::Int`**: every decoder reads a non-negative integer as `UInt` (one
//!   form per number), so the generator makes `Int` only for negatives.
//! - Integers are otherwise the full `i64`/`u64` range: our JSON codec is exact over it
//!   (JavaScript peers are exact only to 2^53, which is why ids stay in [1, 2^53]).
//! - **Payload shapes the wire cannot tell apart**: `args: Some([])` without kwargs is
//!   written as no arguments at all, and kwargs without args gets `[]` args; the generator
//!   makes the canonical form the decoder returns.
//! - Nesting stops at depth 4 (the decoder accepts 64; depth adds nothing here but time).

use super::codec::Serializer;
use super::message::{Message, Payload};
use super::value::{Dict, List, Value};
use bytes::Bytes;
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
struct Gen {
    /// The values must have a JSON form.
    json: bool,
}

fn string(g: Gen) -> BoxedStrategy<String> {
    let s = any::<String>();
    if g.json {
        s.prop_filter("no JSON form", |s| !s.starts_with('\0'))
            .boxed()
    } else {
        s.boxed()
    }
}

fn float(g: Gen) -> BoxedStrategy<f64> {
    if g.json {
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .boxed()
    } else {
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).boxed()
    }
}

fn value(g: Gen) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (i64::MIN..0).prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        float(g).prop_map(Value::Float),
        string(g).prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Bytes::from(b))),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((any::<String>(), inner), 0..6).prop_map(Value::Dict),
        ]
    })
    .boxed()
}

fn list(g: Gen) -> BoxedStrategy<List> {
    proptest::collection::vec(value(g), 0..5).boxed()
}

fn dict(g: Gen) -> BoxedStrategy<Dict> {
    proptest::collection::vec((any::<String>(), value(g)), 0..5).boxed()
}

/// The canonical payload for the wire's three shapes: none, args, args + kwargs.
fn payload(g: Gen) -> BoxedStrategy<Payload> {
    (list(g), dict(g))
        .prop_map(|(args, kwargs)| {
            if !kwargs.is_empty() {
                Payload {
                    args: Some(args),
                    kwargs: Some(kwargs),
                }
            } else if !args.is_empty() {
                Payload {
                    args: Some(args),
                    kwargs: None,
                }
            } else {
                Payload::default()
            }
        })
        .boxed()
}

fn id() -> impl Strategy<Value = u64> {
    1..=(1u64 << 53)
}

fn message(g: Gen) -> BoxedStrategy<Message> {
    let s = move || string(g);
    let d = move || dict(g);
    let p = move || payload(g);
    prop_oneof![
        (s(), d()).prop_map(|(realm, details)| Message::Hello { realm, details }),
        (id(), d()).prop_map(|(session, details)| Message::Welcome { session, details }),
        (d(), s()).prop_map(|(details, reason)| Message::Abort { details, reason }),
        (s(), d()).prop_map(|(authmethod, extra)| Message::Challenge { authmethod, extra }),
        (s(), d()).prop_map(|(signature, extra)| Message::Authenticate { signature, extra }),
        (d(), s()).prop_map(|(details, reason)| Message::Goodbye { details, reason }),
        (any::<u64>(), id(), d(), s(), p()).prop_map(
            |(request_type, request, details, error, payload)| {
                Message::Error {
                    request_type,
                    request,
                    details,
                    error,
                    payload,
                }
            }
        ),
        (id(), d(), s(), p()).prop_map(|(request, options, topic, payload)| Message::Publish {
            request,
            options,
            topic,
            payload
        }),
        (id(), id()).prop_map(|(request, publication)| Message::Published {
            request,
            publication
        }),
        (id(), d(), s()).prop_map(|(request, options, topic)| Message::Subscribe {
            request,
            options,
            topic
        }),
        (id(), id()).prop_map(|(request, subscription)| Message::Subscribed {
            request,
            subscription
        }),
        (id(), id()).prop_map(|(request, subscription)| Message::Unsubscribe {
            request,
            subscription
        }),
        (any::<u64>(), proptest::option::of(d()))
            .prop_map(|(request, details)| Message::Unsubscribed { request, details }),
        (id(), id(), d(), p()).prop_map(|(subscription, publication, details, payload)| {
            Message::Event {
                subscription,
                publication,
                details,
                payload: Arc::new(payload),
            }
        }),
        (id(), d(), s(), p()).prop_map(|(request, options, procedure, payload)| Message::Call {
            request,
            options,
            procedure,
            payload
        }),
        (id(), d()).prop_map(|(request, options)| Message::Cancel { request, options }),
        (id(), d(), p()).prop_map(|(request, details, payload)| Message::Result {
            request,
            details,
            payload
        }),
        (id(), d(), s()).prop_map(|(request, options, procedure)| Message::Register {
            request,
            options,
            procedure
        }),
        (id(), id()).prop_map(|(request, registration)| Message::Registered {
            request,
            registration
        }),
        (id(), id()).prop_map(|(request, registration)| Message::Unregister {
            request,
            registration
        }),
        (any::<u64>(), proptest::option::of(d()))
            .prop_map(|(request, details)| Message::Unregistered { request, details }),
        (id(), id(), d(), p()).prop_map(|(request, registration, details, payload)| {
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            }
        }),
        (id(), d()).prop_map(|(request, options)| Message::Interrupt { request, options }),
        (id(), d(), p()).prop_map(|(request, options, payload)| Message::Yield {
            request,
            options,
            payload
        }),
    ]
    .boxed()
}

fn round_trip(ser: Serializer, m: &Message) -> Message {
    let bytes = ser.encode(m).expect("encodes");
    ser.decode(&bytes)
        .unwrap_or_else(|e| panic!("{} does not decode its own encoding: {e}", ser.name()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn json_round_trips(m in message(Gen { json: true })) {
        prop_assert_eq!(round_trip(Serializer::Json, &m), m);
    }

    #[test]
    fn msgpack_round_trips(m in message(Gen { json: false })) {
        prop_assert_eq!(round_trip(Serializer::MsgPack, &m), m);
    }

    #[test]
    fn cbor_round_trips(m in message(Gen { json: false })) {
        prop_assert_eq!(round_trip(Serializer::Cbor, &m), m);
    }

    /// A message relayed across serializers (MessagePack → CBOR → JSON → MessagePack) is the
    /// message that was sent.
    #[test]
    fn chains_across_serializers(m in message(Gen { json: true })) {
        let mut at = m.clone();
        for ser in [Serializer::MsgPack, Serializer::Cbor, Serializer::Json, Serializer::MsgPack] {
            at = round_trip(ser, &at);
        }
        prop_assert_eq!(at, m);
    }

    /// Payload values alone (args of a PUBLISH): bytes stay bytes through JSON's convention.
    #[test]
    fn binary_values_survive_json(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let m = Message::Publish {
            request: 1,
            options: Dict::new(),
            topic: "t".into(),
            payload: Payload::args(vec![Value::Bytes(Bytes::from(bytes))]),
        };
        prop_assert_eq!(round_trip(Serializer::Json, &m), m);
    }
}
