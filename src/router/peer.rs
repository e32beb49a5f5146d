//! `Peer`: what the router knows about one joined session — identity, announced features,
//! serializer and framing, and the outbox that reaches its connection. No socket types here.

use crate::auth::Principal;
use crate::framing::{frame_message, Framing};
use crate::outbox::{Outbox, PushError};
use crate::wamp::value::{dict_get, Dict, Value};
use crate::wamp::{Id, Message, Serializer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// How a joining session is reached: everything `Realm::join` needs besides who it is.
pub struct Attachment {
    pub serializer: Serializer,
    pub framing: Framing,
    pub features: ClientFeatures,
    pub outbox: Arc<Outbox>,
    pub transport: Option<crate::auth::TransportInfo>,
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
    /// How the client is connected (none for router-internal sessions).
    pub transport: Option<crate::auth::TransportInfo>,
    pub joined_at: std::time::SystemTime,
    /// Session-scope ids for router-originated requests (INVOCATION).
    next_request: AtomicU64,
    /// Set when the session leaves its realm: nothing may be added for it afterwards.
    gone: AtomicBool,
    /// Events to publish when the session goes away (`wamp.session.add_testament`).
    pub testaments: parking_lot::Mutex<Vec<Testament>>,
    /// Messages received from the session since it joined (`Session::handle`).
    messages_in: AtomicU64,
    /// The outbox's frame count when the session joined (the connection may have had a
    /// session before this one).
    frames_before: u64,
    /// Where the messages queued for a client session are counted by type; `None` for
    /// router-internal sessions (and peers made outside a realm).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// When a testament is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestamentScope {
    /// When the session is detached from its transport (before `Destroyed`; no resumption yet).
    Detached,
    Destroyed,
}

/// A publication left behind by a session.
#[derive(Clone, Debug)]
pub struct Testament {
    pub topic: String,
    pub payload: crate::wamp::Payload,
    pub options: crate::wamp::value::Dict,
    pub scope: TestamentScope,
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
        let frames_before = outbox.frames();
        Peer {
            session,
            principal,
            serializer,
            framing,
            features,
            outbox,
            trusted: false,
            transport: None,
            joined_at: std::time::SystemTime::now(),
            next_request: AtomicU64::new(0),
            gone: AtomicBool::new(false),
            testaments: parking_lot::Mutex::new(Vec::new()),
            messages_in: AtomicU64::new(0),
            frames_before,
            metrics: None,
        }
    }

    /// Counts a message received from the session.
    pub fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages received from the session since it joined.
    pub fn messages_in(&self) -> u64 {
        self.messages_in.load(Ordering::Relaxed)
    }

    /// Messages queued for the session since it joined (WELCOME included, pings not).
    pub fn messages_out(&self) -> u64 {
        self.outbox.frames().saturating_sub(self.frames_before)
    }

    /// Marks the session as having left (before its subscriptions and registrations go).
    pub fn mark_gone(&self) {
        self.gone.store(true, Ordering::SeqCst);
    }

    /// Whether the session has left its realm.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// The next INVOCATION request id for this session: 1, 2, 3, ...
    pub fn next_request_id(&self) -> Id {
        crate::wamp::ids::next_in_session_scope(&self.next_request)
    }

    /// Encodes and queues a message. A full outbox closes the connection (slow consumer);
    /// the caller never waits.
    pub fn send(&self, msg: &Message) -> Result<(), PushError> {
        match frame_message(self.serializer, self.framing, msg) {
            Ok(frame) => {
                self.outbox.push(frame)?;
                if let Some(m) = &self.metrics {
                    m.messages_out.count(msg.code());
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(session = self.session, error = %e, "cannot encode message");
                Err(PushError::Closed)
            }
        }
    }
}
