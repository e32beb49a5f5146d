//! One WAMP session's state machine: HELLO → WELCOME, then dispatch of each message to the
//! realm, GOODBYE and ABORT.
//!
//! This is the only place that maps refusals to ERROR/ABORT messages and decides when a
//! protocol violation ends a session. It is transport-agnostic: it gets complete message bytes
//! and answers through the connection's outbox.

use crate::auth;
use crate::config::TransportAuth;
use crate::framing::{frame_message, Framing};
use crate::outbox::{close_code, CloseRequest, Outbox};
use crate::router::peer::{ClientFeatures, Peer};
use crate::router::realm::Realm;
use crate::router::{RouteError, Router};
use crate::wamp::message::code;
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::uris;
use crate::wamp::value::{dict, dict_get, Dict, Value};
use crate::wamp::{Id, Message, Payload, Serializer};
use std::sync::Arc;

/// Whether the connection should keep reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

enum Phase {
    /// Waiting for HELLO (a fresh connection, or after GOODBYE).
    Idle,
    Joined {
        realm: Arc<Realm>,
        peer: Arc<Peer>,
    },
    /// CHALLENGE sent; waiting for AUTHENTICATE.
    Challenging {
        realm: Arc<Realm>,
        details: Box<Dict>,
        pending: Box<auth::Pending>,
    },
    /// ABORTed or closing: further input is ignored.
    Closed,
}

pub struct Session {
    router: Arc<Router>,
    outbox: Arc<Outbox>,
    serializer: Serializer,
    framing: Framing,
    /// What the transport this session came in on accepts.
    auth: Arc<TransportAuth>,
    /// The client's address (none for Unix sockets), for throttling failed authentication.
    peer_addr: Option<std::net::IpAddr>,
    phase: Phase,
}

/// The roles and features the router announces in WELCOME — only what works.
fn router_roles() -> Value {
    let features = |names: &[&str]| {
        Value::Dict(vec![(
            "features".into(),
            Value::Dict(
                names
                    .iter()
                    .map(|n| ((*n).to_owned(), Value::Bool(true)))
                    .collect(),
            ),
        )])
    };
    Value::Dict(vec![
        (
            "broker".into(),
            features(&[
                "publisher_exclusion",
                "subscriber_blackwhite_listing",
                "publisher_identification",
                "pattern_based_subscription",
            ]),
        ),
        (
            "dealer".into(),
            features(&[
                "progressive_call_results",
                "call_timeout",
                "call_canceling",
                "caller_identification",
                "pattern_based_registration",
                "shared_registration",
            ]),
        ),
    ])
}

impl Session {
    pub fn new(
        router: Arc<Router>,
        outbox: Arc<Outbox>,
        serializer: Serializer,
        framing: Framing,
        auth: Arc<TransportAuth>,
        peer_addr: Option<std::net::IpAddr>,
    ) -> Session {
        Session {
            router,
            outbox,
            serializer,
            framing,
            auth,
            peer_addr,
            phase: Phase::Idle,
        }
    }

    pub fn is_waiting_for_hello(&self) -> bool {
        matches!(self.phase, Phase::Idle | Phase::Challenging { .. })
    }

    fn send(&self, msg: &Message) {
        match frame_message(self.serializer, self.framing, msg) {
            Ok(frame) => {
                if self.outbox.push(frame) == Err(crate::outbox::PushError::TooLarge) {
                    tracing::warn!(
                        message = msg.name(),
                        "reply larger than the peer accepts was not sent"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode reply"),
        }
    }

    /// Sends ABORT and asks the connection to close once it is written.
    fn abort(&mut self, reason: &str, message: String) -> Flow {
        tracing::debug!(reason, %message, "aborting session");
        self.send(&Message::Abort {
            details: dict([("message", Value::Str(message.clone()))]),
            reason: reason.to_owned(),
        });
        self.leave();
        self.phase = Phase::Closed;
        self.outbox.close(CloseRequest {
            code: close_code::NORMAL,
            reason: String::new(),
            flush_first: true,
        });
        Flow::Close
    }

    fn protocol_violation(&mut self, message: String) -> Flow {
        self.abort(uris::PROTOCOL_VIOLATION, message)
    }

    fn leave(&mut self) {
        if let Phase::Joined { realm, peer } = &self.phase {
            realm.leave(peer.session);
        }
    }

    /// The transport is gone: leave the realm.
    pub fn on_transport_closed(&mut self) {
        self.leave();
        self.phase = Phase::Closed;
    }

    /// Handles one complete message from the peer.
    pub fn handle(&mut self, bytes: &[u8]) -> Flow {
        if matches!(self.phase, Phase::Closed) {
            return Flow::Close;
        }
        self.router.count_in();
        let msg = match self.serializer.decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.protocol_violation(format!("could not decode message: {e}")),
        };
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Idle => self.handle_idle(msg),
            Phase::Joined { realm, peer } => {
                self.phase = Phase::Joined {
                    realm: realm.clone(),
                    peer: peer.clone(),
                };
                self.handle_joined(&realm, &peer, msg)
            }
            Phase::Challenging {
                realm,
                details,
                pending,
            } => match msg {
                Message::Authenticate { signature, extra } => {
                    self.authenticate(realm, &details, *pending, &signature, &extra)
                }
                Message::Abort { .. } => {
                    self.phase = Phase::Closed;
                    Flow::Close
                }
                other => self.protocol_violation(format!(
                    "received {} while a CHALLENGE is pending (expected AUTHENTICATE)",
                    other.name()
                )),
            },
            Phase::Closed => Flow::Close,
        }
    }

    fn handle_idle(&mut self, msg: Message) -> Flow {
        self.phase = Phase::Idle;
        match msg {
            Message::Hello { realm, details } => self.hello(&realm, &details),
            Message::Abort { .. } => {
                self.phase = Phase::Closed;
                Flow::Close
            }
            Message::Authenticate { .. } => {
                self.protocol_violation("received AUTHENTICATE, but no CHALLENGE was sent".into())
            }
            other => self.protocol_violation(format!(
                "received {} before the session was established (expected HELLO)",
                other.name()
            )),
        }
    }

    fn hello(&mut self, realm_name: &str, details: &Dict) -> Flow {
        if !uri::is_valid(realm_name, MatchPolicy::Exact) {
            return self.abort(
                uris::INVALID_URI,
                format!("'{realm_name}' is not a valid realm URI"),
            );
        }
        let Some(realm) = self.router.realm(realm_name).cloned() else {
            return self.abort(
                uris::NO_SUCH_REALM,
                format!("no realm named '{realm_name}' exists on this router"),
            );
        };
        match auth::hello(&realm.config, &self.auth, details) {
            Ok(auth::Outcome::Welcome(principal)) => self.welcome(realm, principal, details),
            Ok(auth::Outcome::Challenge {
                authmethod,
                extra,
                pending,
            }) => {
                if let Err(wait) = self.throttled(realm.name(), pending.authid()) {
                    return self.abort(
                        uris::NOT_AUTHORIZED,
                        format!(
                            "too many failed authentication attempts; retry in {} s",
                            wait.as_secs().max(1)
                        ),
                    );
                }
                self.send(&Message::Challenge {
                    authmethod: authmethod.to_owned(),
                    extra,
                });
                self.phase = Phase::Challenging {
                    realm,
                    details: Box::new(details.clone()),
                    pending: Box::new(pending),
                };
                Flow::Continue
            }
            Err(e) => {
                if e.uri == uris::NO_SUCH_PRINCIPAL {
                    self.record_failure(realm.name(), None);
                }
                self.abort(e.uri, e.message)
            }
        }
    }

    fn authid_key(realm: &str, authid: &str) -> String {
        format!("authid {realm} {authid}")
    }

    fn addr_key(&self) -> Option<String> {
        self.peer_addr
            .filter(|a| !a.is_loopback())
            .map(|a| format!("addr {a}"))
    }

    /// Whether this authid or this client address is locked out after failed attempts.
    fn throttled(&self, realm: &str, authid: &str) -> Result<(), std::time::Duration> {
        use auth::throttle::{PER_ADDRESS, PER_AUTHID};
        let t = &self.router.throttle;
        t.check(&Self::authid_key(realm, authid), PER_AUTHID)?;
        match self.addr_key() {
            Some(k) => t.check(&k, PER_ADDRESS),
            None => Ok(()),
        }
    }

    fn record_failure(&self, realm: &str, authid: Option<&str>) {
        if let Some(id) = authid {
            self.router.throttle.fail(&Self::authid_key(realm, id));
        }
        if let Some(k) = self.addr_key() {
            self.router.throttle.fail(&k);
        }
    }

    fn authenticate(
        &mut self,
        realm: Arc<Realm>,
        details: &Dict,
        pending: auth::Pending,
        signature: &str,
        extra: &Dict,
    ) -> Flow {
        let authid = pending.authid().to_owned();
        match auth::verify(pending, signature, extra) {
            Ok(principal) => {
                self.router
                    .throttle
                    .reset(&Self::authid_key(realm.name(), &authid));
                self.welcome(realm, principal, details)
            }
            Err(e) => {
                tracing::info!(reason = e.uri, authid = %authid, "authentication failed");
                self.record_failure(realm.name(), Some(&authid));
                self.abort(e.uri, e.message)
            }
        }
    }

    /// Joins the realm and sends WELCOME.
    fn welcome(&mut self, realm: Arc<Realm>, principal: auth::Principal, details: &Dict) -> Flow {
        let realm_name = realm.name().to_owned();
        let realm_name = realm_name.as_str();
        let features = ClientFeatures::from_hello(details);
        let peer = match realm.join(
            principal,
            self.serializer,
            self.framing,
            features,
            self.outbox.clone(),
        ) {
            Ok(p) => p,
            Err(e) => return self.abort(e.uri, e.message),
        };
        let p = &peer.principal;
        let mut details = vec![
            ("realm".into(), realm_name.into()),
            ("authid".into(), p.authid.clone().into()),
            ("authrole".into(), p.authrole.clone().into()),
            ("authmethod".into(), p.authmethod.clone().into()),
            ("authprovider".into(), p.authprovider.clone().into()),
            ("roles".into(), router_roles()),
            (
                "agent".into(),
                concat!("switchboard/", env!("CARGO_PKG_VERSION")).into(),
            ),
        ];
        if !p.authextra.is_empty() {
            details.push(("authextra".into(), Value::Dict(p.authextra.clone())));
        }
        self.send(&Message::Welcome {
            session: peer.session,
            details,
        });
        tracing::debug!(session = peer.session, realm = realm_name, authid = %p.authid, "session joined");
        self.phase = Phase::Joined { realm, peer };
        Flow::Continue
    }

    fn error(&self, request_type: u64, request: Id, e: RouteError) {
        self.send(&Message::Error {
            request_type,
            request,
            details: Dict::new(),
            error: e.uri.to_owned(),
            payload: Payload::message(e.message),
        });
    }

    fn handle_joined(&mut self, realm: &Arc<Realm>, peer: &Arc<Peer>, msg: Message) -> Flow {
        let result = match msg {
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => {
                if let Err(e) = realm.publish(peer, request, &options, &topic, payload) {
                    // The spec answers a failed PUBLISH only when it asked for acknowledgement.
                    if dict_get(&options, "acknowledge").and_then(Value::as_bool) == Some(true) {
                        self.error(code::PUBLISH, request, e);
                    }
                }
                return Flow::Continue;
            }
            Message::Subscribe {
                request,
                options,
                topic,
            } => realm
                .subscribe(peer, request, &options, &topic)
                .map_err(|e| (code::SUBSCRIBE, request, e)),
            Message::Unsubscribe {
                request,
                subscription,
            } => realm
                .unsubscribe(peer, request, subscription)
                .map_err(|e| (code::UNSUBSCRIBE, request, e)),
            Message::Call {
                request,
                options,
                procedure,
                payload,
            } => realm
                .call(peer, request, &options, &procedure, payload)
                .map_err(|e| (code::CALL, request, e)),
            Message::Cancel { request, options } => realm
                .cancel(peer, request, &options)
                .map_err(|e| (code::CANCEL, request, e)),
            Message::Register {
                request,
                options,
                procedure,
            } => realm
                .register(peer, request, &options, &procedure)
                .map_err(|e| (code::REGISTER, request, e)),
            Message::Unregister {
                request,
                registration,
            } => realm
                .unregister(peer, request, registration)
                .map_err(|e| (code::UNREGISTER, request, e)),
            Message::Yield {
                request,
                options,
                payload,
            } => {
                realm.yield_(peer, request, &options, payload);
                Ok(())
            }
            Message::Error {
                request_type,
                request,
                error,
                payload,
                ..
            } => {
                if request_type != code::INVOCATION {
                    return self.protocol_violation(format!(
                        "a client may send ERROR only for INVOCATION (68), not for message type {request_type}"
                    ));
                }
                if !uri::is_valid(&error, MatchPolicy::Exact) {
                    return self.protocol_violation(format!(
                        "ERROR carries an invalid error URI '{error}'"
                    ));
                }
                realm.invocation_error(peer, request, error, payload);
                Ok(())
            }
            Message::Goodbye { .. } => {
                self.send(&Message::Goodbye {
                    details: Dict::new(),
                    reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
                });
                realm.leave(peer.session);
                self.phase = Phase::Idle;
                return Flow::Continue;
            }
            Message::Abort { .. } => {
                realm.leave(peer.session);
                self.phase = Phase::Closed;
                return Flow::Close;
            }
            Message::Hello { .. } => {
                return self.protocol_violation(
                    "received HELLO, but the session is already established".into(),
                )
            }
            other => {
                return self.protocol_violation(format!(
                    "a client must not send {} to a router",
                    other.name()
                ))
            }
        };
        if let Err((request_type, request, e)) = result {
            self.error(request_type, request, e);
        }
        Flow::Continue
    }
}
