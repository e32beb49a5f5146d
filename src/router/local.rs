//! `LocalClient`: an in-process WAMP session attached to a realm like any remote client.
//!
//! Router-side components (the dynamic authenticator and authorizer callers today; the chat
//! service later) use it to CALL procedures that remote workers registered. It is a real
//! session in the realm — it has a session id, its calls go through the dealer with the same
//! timeouts and cancellation — but its outbox is drained by a task in this process instead of
//! a socket: the frames the dealer queues for it are decoded and complete the matching call.

use super::peer::Peer;
use super::realm::Realm;
use crate::auth::Principal;
use crate::outbox::Outbox;
use crate::wamp::message::code;
use crate::wamp::value::{Dict, List, Value};
use crate::wamp::{Id, Message, Payload, Serializer};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How a local CALL failed: an error URI (the callee's, or the router's) and what came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    pub uri: String,
    pub payload: Payload,
}

impl CallFailure {
    pub fn new(uri: &str, message: impl Into<String>) -> CallFailure {
        CallFailure {
            uri: uri.to_owned(),
            payload: Payload::message(message),
        }
    }

    /// The first positional argument when it is a string (how ApplicationErrors explain
    /// themselves), else the URI.
    pub fn message(&self) -> String {
        match self.payload.args.as_deref() {
            Some([Value::Str(s), ..]) => s.clone(),
            _ => self.uri.clone(),
        }
    }
}

type Reply = Result<Payload, CallFailure>;

pub struct LocalClient {
    realm: Arc<Realm>,
    peer: Arc<Peer>,
    pending: Mutex<HashMap<Id, oneshot::Sender<Reply>>>,
    next_request: AtomicU64,
}

/// Bytes that may wait for the drain task; replies to a handful of calls never come close.
const QUEUE_LIMIT: usize = 16 << 20;

impl LocalClient {
    /// Joins `realm` as `principal` (trusted: the realm does not check its permissions when
    /// `trusted`) and starts the task that receives its messages. Needs a Tokio runtime.
    pub fn attach(realm: Arc<Realm>, principal: Principal, trusted: bool) -> Arc<LocalClient> {
        let outbox = Arc::new(Outbox::new(QUEUE_LIMIT));
        let peer = realm.join_local(principal, outbox.clone(), trusted);
        let client = Arc::new(LocalClient {
            realm,
            peer,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&client);
        tokio::spawn(async move {
            let mut frames = VecDeque::new();
            loop {
                let closing = outbox.take(&mut frames);
                let written: usize = frames.iter().map(|f| f.len()).sum();
                outbox.written(written);
                let Some(client) = weak.upgrade() else { return };
                for frame in frames.drain(..) {
                    // RawSocket framing: a 4-byte length prefix, then the JSON message.
                    match frame.get(4..).map(|b| Serializer::Json.decode(b)) {
                        Some(Ok(msg)) => client.receive(msg),
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "local session got an undecodable frame")
                        }
                        None => {}
                    }
                }
                if closing.is_some() {
                    client.fail_all("the router's local session was closed");
                    return;
                }
                drop(client);
                outbox.notified().await;
            }
        });
        client
    }

    pub fn session(&self) -> Id {
        self.peer.session
    }

    fn receive(&self, msg: Message) {
        let (request, reply) = match msg {
            Message::Result {
                request,
                details,
                payload,
            } => {
                if crate::wamp::value::dict_get(&details, "progress")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    return;
                }
                (request, Ok(payload))
            }
            Message::Error {
                request_type: code::CALL,
                request,
                error,
                payload,
                ..
            } => (
                request,
                Err(CallFailure {
                    uri: error,
                    payload,
                }),
            ),
            _ => return,
        };
        if let Some(tx) = self.pending.lock().remove(&request) {
            let _ = tx.send(reply);
        }
    }

    fn fail_all(&self, why: &str) {
        for (_, tx) in self.pending.lock().drain() {
            let _ = tx.send(Err(CallFailure::new(crate::wamp::uris::CANCELED, why)));
        }
    }

    /// Calls `procedure` and waits for its result, at most `timeout` (the dealer cancels the
    /// invocation then, and the error is `wamp.error.timeout`).
    pub async fn call(
        &self,
        procedure: &str,
        args: List,
        kwargs: Dict,
        timeout: Duration,
    ) -> Result<Payload, CallFailure> {
        let request = crate::wamp::ids::next_in_session_scope(&self.next_request);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(request, tx);
        let ms = timeout.as_millis().max(1) as u64;
        let options = vec![("timeout".to_owned(), Value::UInt(ms))];
        let payload = Payload {
            args: Some(args),
            kwargs: (!kwargs.is_empty()).then_some(kwargs),
        };
        let routed = self
            .realm
            .call_local(&self.peer, request, &options, procedure, payload);
        if let Err(e) = routed {
            self.pending.lock().remove(&request);
            return Err(CallFailure::new(e.uri, e.message));
        }
        // The dealer's timer answers first; this one only guards against a lost reply.
        match tokio::time::timeout(timeout + Duration::from_millis(500), rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(CallFailure::new(
                crate::wamp::uris::CANCELED,
                "the local session went away",
            )),
            Err(_) => {
                self.pending.lock().remove(&request);
                let _ = self.realm.cancel(
                    &self.peer,
                    request,
                    &vec![("mode".to_owned(), Value::Str("killnowait".into()))],
                );
                Err(CallFailure::new(
                    crate::wamp::uris::TIMEOUT,
                    format!("'{procedure}' did not answer within {ms} ms"),
                ))
            }
        }
    }
}

impl Drop for LocalClient {
    fn drop(&mut self) {
        self.realm.leave(self.peer.session);
    }
}

/// The principal of a router-internal session acting as `role`.
pub fn internal_principal(role: &str) -> Principal {
    Principal {
        authid: "switchboard".into(),
        authrole: role.to_owned(),
        authmethod: "internal".into(),
        authprovider: "internal".into(),
        authextra: Dict::new(),
    }
}

/// Local sessions speak JSON in RawSocket frames (the simplest framing to strip).
pub(super) const LOCAL_SERIALIZER: Serializer = Serializer::Json;
pub(super) const LOCAL_FRAMING: crate::framing::Framing = crate::framing::Framing::RawSocket;
