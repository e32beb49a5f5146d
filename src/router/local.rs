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
use crate::wamp::value::{Dict, List, Value};
use crate::wamp::{Id, Message, Payload, Serializer};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// An EVENT delivered to a local subscription.
#[derive(Debug, Clone)]
pub struct LocalEvent {
    pub publication: Id,
    /// The topic it was published to (from the details of a pattern subscription, else the
    /// subscribed URI).
    pub topic: String,
    pub details: Dict,
    pub payload: Payload,
}

/// An INVOCATION for a procedure a local session registered.
#[derive(Debug, Clone)]
pub struct LocalInvocation {
    pub procedure: String,
    pub details: Dict,
    pub payload: Payload,
}

impl LocalInvocation {
    /// The caller's session id, authid and authrole (registrations of local sessions always
    /// ask the dealer to disclose the caller).
    pub fn caller(&self) -> Option<(Id, &str, &str)> {
        use crate::wamp::value::dict_get;
        Some((
            dict_get(&self.details, "caller")?.as_u64()?,
            dict_get(&self.details, "caller_authid")?.as_str()?,
            dict_get(&self.details, "caller_authrole")?.as_str()?,
        ))
    }
}

/// What answers a local registration.
pub type Handler = Arc<
    dyn Fn(
            LocalInvocation,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Payload, CallFailure>> + Send>,
        > + Send
        + Sync,
>;

struct LocalRegistration {
    procedure: String,
    handler: Handler,
}

struct LocalSubscription {
    topic: String,
    tx: tokio::sync::mpsc::Sender<LocalEvent>,
}

pub struct LocalClient {
    realm: Arc<Realm>,
    peer: Arc<Peer>,
    /// Requests waiting for RESULT, PUBLISHED, SUBSCRIBED or ERROR.
    pending: Mutex<HashMap<Id, oneshot::Sender<Reply>>>,
    subscriptions: Mutex<HashMap<Id, LocalSubscription>>,
    registrations: Mutex<HashMap<Id, LocalRegistration>>,
    /// Handlers of REGISTERs not answered yet, by request id (installed before the REGISTERED
    /// reply is passed on, so no INVOCATION can find its registration without a handler).
    registering: Mutex<HashMap<Id, LocalRegistration>>,
    next_request: AtomicU64,
    /// Events dropped because a subscription's channel was full.
    dropped: AtomicU64,
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
            subscriptions: Mutex::new(HashMap::new()),
            registrations: Mutex::new(HashMap::new()),
            registering: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
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

    /// Events this session's subscriptions dropped because their channels were full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
            Message::Published {
                request,
                publication,
            } => (request, Ok(Payload::args(vec![Value::UInt(publication)]))),
            Message::Subscribed {
                request,
                subscription,
            } => (request, Ok(Payload::args(vec![Value::UInt(subscription)]))),
            Message::Registered {
                request,
                registration,
            } => {
                if let Some(r) = self.registering.lock().remove(&request) {
                    self.registrations.lock().insert(registration, r);
                }
                (request, Ok(Payload::args(vec![Value::UInt(registration)])))
            }
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } => {
                self.invoke(request, registration, details, payload);
                return;
            }
            Message::Error {
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
            Message::Event {
                subscription,
                publication,
                details,
                payload,
            } => {
                let subs = self.subscriptions.lock();
                if let Some(s) = subs.get(&subscription) {
                    let topic = crate::wamp::value::dict_get(&details, "topic")
                        .and_then(Value::as_str)
                        .unwrap_or(&s.topic)
                        .to_owned();
                    let event = LocalEvent {
                        publication,
                        topic,
                        details,
                        payload: Arc::unwrap_or_clone(payload),
                    };
                    if s.tx.try_send(event).is_err() {
                        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        // Logged at 1, 2, 4, 8, … drops: visible without flooding the log.
                        if n.is_power_of_two() {
                            tracing::warn!(
                                subscription,
                                dropped = n,
                                "local subscriber is behind; events dropped"
                            );
                        }
                    }
                }
                return;
            }
            _ => return,
        };
        if let Some(tx) = self.pending.lock().remove(&request) {
            let _ = tx.send(reply);
        }
    }

    /// Runs the handler of a local registration in its own task and answers with YIELD or
    /// ERROR.
    fn invoke(&self, request: Id, registration: Id, details: Dict, payload: Payload) {
        let found = self
            .registrations
            .lock()
            .get(&registration)
            .map(|r| (r.procedure.clone(), r.handler.clone()));
        let (realm, peer) = (self.realm.clone(), self.peer.clone());
        let Some((procedure, handler)) = found else {
            realm.invocation_error(
                &peer,
                request,
                crate::wamp::uris::NO_SUCH_REGISTRATION.to_owned(),
                Payload::message("the registration is gone"),
            );
            return;
        };
        tokio::spawn(async move {
            let inv = LocalInvocation {
                procedure,
                details,
                payload,
            };
            match handler(inv).await {
                Ok(result) => realm.yield_(&peer, request, &Dict::new(), result),
                Err(f) => realm.invocation_error(&peer, request, f.uri, f.payload),
            }
        });
    }

    /// Registers `procedure` (with `options`, e.g. a match policy); `handler` answers each
    /// call. The caller is always disclosed to it.
    pub async fn register(
        &self,
        procedure: &str,
        mut options: Dict,
        handler: Handler,
    ) -> Result<Id, CallFailure> {
        options.retain(|(k, _)| k != "disclose_caller");
        options.push(("disclose_caller".into(), Value::Bool(true)));
        let reg = LocalRegistration {
            procedure: procedure.to_owned(),
            handler,
        };
        let reply = self
            .request(
                "REGISTER",
                Duration::from_secs(10),
                |request| {
                    self.registering.lock().insert(request, reg);
                    let r = self
                        .realm
                        .register_local(&self.peer, request, &options, procedure);
                    if r.is_err() {
                        self.registering.lock().remove(&request);
                    }
                    r
                },
                |request| {
                    self.registering.lock().remove(&request);
                },
            )
            .await?;
        first_id(&reply)
    }

    /// Sends a request with `send(request_id)` and waits up to `timeout` for its answer.
    async fn request(
        &self,
        what: &str,
        timeout: Duration,
        send: impl FnOnce(Id) -> Result<(), super::RouteError>,
        on_timeout: impl FnOnce(Id),
    ) -> Reply {
        let request = crate::wamp::ids::next_in_session_scope(&self.next_request);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(request, tx);
        if let Err(e) = send(request) {
            self.pending.lock().remove(&request);
            return Err(CallFailure::new(e.uri, e.message));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(CallFailure::new(
                crate::wamp::uris::CANCELED,
                "the local session went away",
            )),
            Err(_) => {
                self.pending.lock().remove(&request);
                on_timeout(request);
                Err(CallFailure::new(
                    crate::wamp::uris::TIMEOUT,
                    format!("{what} was not answered within {} ms", timeout.as_millis()),
                ))
            }
        }
    }

    /// Publishes with acknowledgement; returns the publication id. Permissions are those of
    /// the session's role (a role with a dynamic authorizer is denied what its static rules
    /// and cached decisions do not grant: local sessions do not wait for authorizers).
    pub async fn publish(
        &self,
        topic: &str,
        args: List,
        kwargs: Dict,
        mut options: Dict,
    ) -> Result<Id, CallFailure> {
        options.retain(|(k, _)| k != "acknowledge");
        options.push(("acknowledge".into(), Value::Bool(true)));
        let payload = Payload {
            args: Some(args),
            kwargs: (!kwargs.is_empty()).then_some(kwargs),
        };
        let reply = self
            .request(
                "PUBLISH",
                Duration::from_secs(10),
                |request| {
                    self.realm
                        .publish_local(&self.peer, request, &options, topic, payload)
                },
                |_| {},
            )
            .await?;
        first_id(&reply)
    }

    /// Publishes without waiting for anything (no acknowledgement is asked for).
    pub fn publish_now(&self, topic: &str, payload: Payload) -> Result<(), CallFailure> {
        self.realm
            .publish_local(&self.peer, 0, &Dict::new(), topic, payload)
            .map_err(|e| CallFailure::new(e.uri, e.message))
    }

    /// Publishes with PUBLISH options (e.g. `eligible` sessions), at once.
    pub fn publish_with(
        &self,
        topic: &str,
        options: &Dict,
        payload: Payload,
    ) -> Result<(), CallFailure> {
        self.realm
            .publish_local(&self.peer, 0, options, topic, payload)
            .map_err(|e| CallFailure::new(e.uri, e.message))
    }

    /// Subscribes; events arrive on the returned channel (at most `capacity` waiting; more are
    /// dropped with a warning rather than growing memory).
    pub async fn subscribe(
        &self,
        topic: &str,
        options: Dict,
        capacity: usize,
    ) -> Result<(Id, tokio::sync::mpsc::Receiver<LocalEvent>), CallFailure> {
        let reply = self
            .request(
                "SUBSCRIBE",
                Duration::from_secs(10),
                |request| {
                    self.realm
                        .subscribe_local(&self.peer, request, &options, topic)
                },
                |_| {},
            )
            .await?;
        let id = first_id(&reply)?;
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.subscriptions.lock().insert(
            id,
            LocalSubscription {
                topic: topic.to_owned(),
                tx,
            },
        );
        Ok((id, rx))
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
        let ms = timeout.as_millis().max(1) as u64;
        let options = vec![("timeout".to_owned(), Value::UInt(ms))];
        let payload = Payload {
            args: Some(args),
            kwargs: (!kwargs.is_empty()).then_some(kwargs),
        };
        // The dealer's timer answers first; the local one only guards against a lost reply.
        self.request(
            &format!("'{procedure}'"),
            timeout + Duration::from_millis(500),
            |request| {
                self.realm
                    .call_local(&self.peer, request, &options, procedure, payload)
            },
            |request| {
                let kill = vec![("mode".to_owned(), Value::Str("killnowait".into()))];
                let _ = self.realm.cancel(&self.peer, request, &kill);
            },
        )
        .await
    }
}

fn first_id(p: &Payload) -> Result<Id, CallFailure> {
    match p.args.as_deref() {
        Some([v, ..]) => v.as_u64().ok_or_else(|| {
            CallFailure::new(crate::wamp::uris::INVALID_ARGUMENT, "reply without an id")
        }),
        _ => Err(CallFailure::new(
            crate::wamp::uris::INVALID_ARGUMENT,
            "reply without an id",
        )),
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
