//! `Peer`: what the router knows about one joined session — identity, announced features,
//! serializer and framing, and the outbox that reaches its connection. No socket types here.

use crate::auth::Principal;
use crate::framing::{frame_message, Framing};
use crate::outbox::{Outbox, PushError};
use crate::wamp::value::{dict_get, Dict, Value};
use crate::wamp::{Id, Message, Serializer};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Client features the router acts on, from `HELLO.Details.roles`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFeatures {
    pub callee_progressive_results: bool,
    pub callee_call_canceling: bool,
}

impl ClientFeatures {
    pub fn from_hello(details: &Dict) -> ClientFeatures {
        let feature = |role: &str, name: &str| -> bool {
            dict_get(details, "roles")
                .and_then(Value::as_dict)
                .and_then(|r| dict_get(r, role))
                .and_then(Value::as_dict)
                .and_then(|r| dict_get(r, "features"))
                .and_then(Value::as_dict)
                .and_then(|f| dict_get(f, name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        ClientFeatures {
            callee_progressive_results: feature("callee", "progressive_call_results"),
            callee_call_canceling: feature("callee", "call_canceling"),
        }
    }
}

pub struct Peer {
    pub session: Id,
    pub principal: Principal,
    pub serializer: Serializer,
    pub framing: Framing,
    pub features: ClientFeatures,
    pub outbox: Arc<Outbox>,
    /// A router-internal session whose actions are not permission-checked.
    pub trusted: bool,
    /// Session-scope ids for router-originated requests (INVOCATION).
    next_request: AtomicU64,
}

impl Peer {
    pub fn new(
        session: Id,
        principal: Principal,
        serializer: Serializer,
        framing: Framing,
        features: ClientFeatures,
        outbox: Arc<Outbox>,
    ) -> Peer {
        Peer {
            session,
            principal,
            serializer,
            framing,
            features,
            outbox,
            trusted: false,
            next_request: AtomicU64::new(0),
        }
    }

    /// The next INVOCATION request id for this session: 1, 2, 3, ...
    pub fn next_request_id(&self) -> Id {
        crate::wamp::ids::next_in_session_scope(&self.next_request)
    }

    /// Encodes and queues a message. A full outbox closes the connection (slow consumer);
    /// the caller never waits.
    pub fn send(&self, msg: &Message) -> Result<(), PushError> {
        match frame_message(self.serializer, self.framing, msg) {
            Ok(frame) => self.outbox.push(frame),
            Err(e) => {
                tracing::error!(session = self.session, error = %e, "cannot encode message");
                Err(PushError::Closed)
            }
        }
    }
}
