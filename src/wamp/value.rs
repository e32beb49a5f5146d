//! `Value`: the payload model shared by every serializer.
//!
//! WAMP payloads (`args`, `kwargs`, `Details`, `Options`) are trees of the JSON data model plus
//! byte strings. MessagePack and CBOR carry bytes natively; JSON carries them as the spec's
//! `"\u0000" + base64` string. This module owns both directions of that convention, so a payload
//! round-trips exactly whichever serializer the publisher and the subscriber use.
//!
//! Invariant: no I/O; every conversion is total or returns an error (never panics).

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A dictionary keeps insertion order; WAMP dictionaries are small, so lookups are linear.
pub type Dict = Vec<(String, Value)>;
pub type List = Vec<Value>;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Bytes),
    List(List),
    Dict(Dict),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Non-negative integers, as WAMP ids and counts are.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(u) => Some(*u),
            Value::Int(i) if *i >= 0 => Some(*i as u64),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A short type name for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<u64> for Value {
    fn from(u: u64) -> Self {
        Value::UInt(u)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Looks a key up in a dictionary.
pub fn dict_get<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    dict.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Builds a dictionary from pairs; used for Details the router writes.
pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Dict {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

// ---------------------------------------------------------------------------------------------
// Serialization. `Value` serializes bytes natively (MessagePack `bin`, CBOR byte string);
// `JsonValue` writes them as "\0" + base64 as the WAMP JSON binary convention requires.

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_value::<S, false>(self, s)
    }
}

/// Serializes a `Value` for the JSON serializer.
pub struct JsonValue<'a>(pub &'a Value);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_value::<S, true>(self.0, s)
    }
}

/// Serializes a borrowed value; `JSON` selects the binary convention.
pub struct ValueRef<'a, const JSON: bool>(pub &'a Value);

/// Serializes a borrowed list.
pub struct ListRef<'a, const JSON: bool>(pub &'a [Value]);

impl<const JSON: bool> Serialize for ListRef<'_, JSON> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&ValueRef::<JSON>(item))?;
        }
        seq.end()
    }
}

/// Serializes a borrowed dictionary.
pub struct DictRef<'a, const JSON: bool>(pub &'a Dict);

impl<const JSON: bool> Serialize for DictRef<'_, JSON> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, item) in self.0 {
            map.serialize_entry(k, &ValueRef::<JSON>(item))?;
        }
        map.end()
    }
}

impl<const JSON: bool> Serialize for ValueRef<'_, JSON> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_value::<S, JSON>(self.0, s)
    }
}

fn serialize_value<S: Serializer, const JSON: bool>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Value::Null => s.serialize_unit(),
        Value::Bool(b) => s.serialize_bool(*b),
        Value::Int(i) => s.serialize_i64(*i),
        Value::UInt(u) => s.serialize_u64(*u),
        Value::Float(f) => s.serialize_f64(*f),
        Value::Str(st) => s.serialize_str(st),
        Value::Bytes(b) => {
            if JSON {
                let mut out = String::with_capacity(1 + b.len().div_ceil(3) * 4);
                out.push('\0');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut out);
                s.serialize_str(&out)
            } else {
                s.serialize_bytes(b)
            }
        }
        Value::List(l) => ListRef::<JSON>(l).serialize(s),
        Value::Dict(d) => DictRef::<JSON>(d).serialize(s),
    }
}

// ---------------------------------------------------------------------------------------------
// Deserialization: one visitor, with a flag that turns "\0"-prefixed JSON strings into bytes.

/// Maximum nesting accepted from a peer; deeper input is rejected instead of recursing.
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy)]
struct ValueSeed {
    json: bool,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("payload nested too deeply"));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueSeed {
            json: false,
            depth: 0,
        }
        .deserialize(d)
    }
}

/// Deserializes a `Value` from the JSON serializer (decoding the binary convention).
pub struct JsonValueOwned(pub Value);

impl<'de> Deserialize<'de> for JsonValueOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueSeed {
            json: true,
            depth: 0,
        }
        .deserialize(d)
        .map(JsonValueOwned)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a WAMP value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(if i >= 0 {
            Value::UInt(i as u64)
        } else {
            Value::Int(i)
        })
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::UInt(u))
    }
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        if let Ok(v) = i64::try_from(i) {
            return self.visit_i64(v);
        }
        if let Ok(v) = u64::try_from(i) {
            return Ok(Value::UInt(v));
        }
        Err(E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        u64::try_from(u)
            .map(Value::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        if self.json {
            if let Some(b64) = s.strip_prefix('\0') {
                return base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(|b| Value::Bytes(Bytes::from(b)))
                    .map_err(|_| E::custom("invalid base64 in binary string"));
            }
        }
        Ok(Value::Str(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        if self.json && s.starts_with('\0') {
            return self.visit_str(&s);
        }
        Ok(Value::Str(s))
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(b)))
    }
    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(b)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = ValueSeed {
            json: self.json,
            depth: self.depth + 1,
        };
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = ValueSeed {
            json: self.json,
            depth: self.depth + 1,
        };
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(k) = map.next_key::<KeyString>()? {
            let v = map.next_value_seed(inner)?;
            out.push((k.0, v));
        }
        Ok(Value::Dict(out))
    }
}

/// Dictionary keys must be strings in WAMP.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string dictionary key")
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyString, E> {
                Ok(KeyString(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<KeyString, E> {
                Ok(KeyString(s))
            }
        }
        // `deserialize_string`, not `_str`: ciborium's `deserialize_str` refuses a text string
        // longer than its scratch buffer (4 KiB), so long keys from CBOR peers were refused.
        d.deserialize_string(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::List(vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-5),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Str("héllo".into()),
            Value::Bytes(Bytes::from_static(&[0, 1, 2, 255])),
            Value::Dict(vec![("k".into(), Value::Bytes(Bytes::new()))]),
        ])
    }

    #[test]
    fn json_round_trip_keeps_bytes() {
        let v = sample();
        let text = serde_json::to_string(&JsonValue(&v)).unwrap();
        assert!(text.contains("\"\\u0000AAEC/w==\""), "{text}");
        let back: JsonValueOwned = serde_json::from_str(&text).unwrap();
        assert_eq!(back.0, v);
    }

    #[test]
    fn msgpack_and_cbor_round_trip() {
        let v = sample();
        let mp = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(rmp_serde::from_slice::<Value>(&mp).unwrap(), v);
        let mut cb = Vec::new();
        ciborium::into_writer(&v, &mut cb).unwrap();
        assert_eq!(ciborium::from_reader::<Value, _>(&cb[..]).unwrap(), v);
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(serde_json::from_str::<JsonValueOwned>(&text).is_err());
    }

    /// Found by the `wamp_json` fuzz target: a dictionary key over 4 KiB (accepted from a JSON
    /// peer) did not decode from CBOR, so a CBOR peer could not send it and a message relayed
    /// to CBOR did not decode back.
    #[test]
    fn long_keys_decode_from_every_serializer() {
        let v = Value::Dict(vec![("k".repeat(10_000), Value::Str("v".repeat(10_000)))]);
        let mut cb = Vec::new();
        ciborium::into_writer(&v, &mut cb).unwrap();
        assert_eq!(ciborium::from_reader::<Value, _>(&cb[..]).unwrap(), v);
        let mp = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(rmp_serde::from_slice::<Value>(&mp).unwrap(), v);
        let text = serde_json::to_string(&JsonValue(&v)).unwrap();
        assert_eq!(serde_json::from_str::<JsonValueOwned>(&text).unwrap().0, v);
    }

    #[test]
    fn non_string_keys_are_rejected() {
        let mut cb = Vec::new();
        let m: std::collections::BTreeMap<u8, u8> = [(1, 2)].into_iter().collect();
        ciborium::into_writer(&m, &mut cb).unwrap();
        assert!(ciborium::from_reader::<Value, _>(&cb[..]).is_err());
    }
}
