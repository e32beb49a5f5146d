//! The WAMP protocol as data: values, messages, serializers, URIs and ids.
//!
//! Invariant: no I/O, no tokio, no locks — pure functions over data, so every other layer can
//! rely on it and it can be tested and fuzzed alone.

pub mod codec;
pub mod ids;
pub mod message;
pub mod pattern;
#[cfg(test)]
mod props;
pub mod uri;
pub mod uris;
pub mod value;

pub use codec::Serializer;
pub use ids::Id;
pub use message::{Message, Payload};
pub use value::{Dict, List, Value};
