//! One WAMP session's state machine: HELLO → WELCOME, then dispatch of each message to the
//! realm, GOODBYE and ABORT.
//!
//! This is the only place that maps refusals to ERROR/ABORT messages and decides when a
//! protocol violation ends a session. It is transport-agnostic: it gets complete message bytes
//! and answers through the connection's outbox.

use crate::auth;
use crate::auth::authorizer;
use crate::auth::permissions::{Action, Decision};
use crate::config::TransportAuth;
use crate::framing::frame_message;
use crate::outbox::{close_code, CloseRequest, Outbox};
use crate::router::local::CallFailure;
use crate::router::peer::{ClientFeatures, Peer};
use crate::router::realm::Authorization;
use crate::router::realm::Realm;
use crate::router::{RouteError, Router};
use crate::wamp::message::code;
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::uris;
use crate::wamp::value::{dict, dict_get, Dict, Value};
use crate::wamp::{Id, Message, Payload, Serializer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Whether the connection should keep reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
    /// The session waits for an authenticator or authorizer: stop reading and call `resume`
    /// until it returns something else (messages are handled strictly in order).
    Wait,
}

/// What a wait for a router-internal call ended with.
enum Resumed {
    /// The dynamic authenticator answered (or failed).
    Authenticated {
        ask: auth::dynamic::Ask,
        reply: Result<Payload, (String, String)>,
    },
    /// The authenticator is not registered and did not appear in time.
    AuthenticatorMissing { procedure: String },
    /// The role's authorizer answered (or failed) about `msg`.
    Authorized {
        msg: Message,
        action: Action,
        uri: String,
        procedure: String,
        reply: Result<Payload, CallFailure>,
    },
}

type Waiting = Pin<Box<dyn Future<Output = Resumed> + Send>>;

/// How often a held HELLO retries an authenticator that is not registered yet.
const AUTHENTICATOR_RETRY: Duration = Duration::from_millis(200);

enum Phase {
    /// Waiting for HELLO (a fresh connection, or after GOODBYE).
    Idle,
    Joined {
        realm: Arc<Realm>,
        peer: Arc<Peer>,
    },
    /// Waiting for the dynamic authenticator (the HELLO is held).
    Authenticating {
        realm: Arc<Realm>,
        details: Box<Dict>,
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
    /// What the transport this session came in on accepts.
    auth: Arc<TransportAuth>,
    /// How the client is connected (framing, address, headers for dynamic auth).
    transport: auth::TransportInfo,
    phase: Phase,
    /// The session id promised to the client during authentication.
    session_id: Id,
    /// A router-internal call the session waits for before handling anything else.
    waiting: Option<Waiting>,
    /// The authentication method in progress (CHALLENGE sent or authenticator asked), for
    /// counting a refusal.
    attempt: Option<&'static str>,
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
                "session_meta_api",
                "subscription_meta_api",
                "event_history",
                "event_retention",
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
                "session_meta_api",
                "registration_meta_api",
                "testament_meta_api",
            ]),
        ),
    ])
}

impl Session {
    pub fn new(
        router: Arc<Router>,
        outbox: Arc<Outbox>,
        serializer: Serializer,
        auth: Arc<TransportAuth>,
        transport: auth::TransportInfo,
    ) -> Session {
        Session {
            router,
            outbox,
            serializer,
            auth,
            transport,
            phase: Phase::Idle,
            session_id: 0,
            waiting: None,
            attempt: None,
        }
    }

    pub fn is_waiting_for_hello(&self) -> bool {
        matches!(
            self.phase,
            Phase::Idle | Phase::Challenging { .. } | Phase::Authenticating { .. }
        )
    }

    /// Whether `handle` must not be called until `resume` returns.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Waits for the pending router-internal call and carries on with its answer. Cancel-safe:
    /// the call lives in the session, and a cancelled `resume` leaves it pending.
    pub async fn resume(&mut self) -> Flow {
        let Some(fut) = self.waiting.as_mut() else {
            return Flow::Continue;
        };
        let resumed = fut.await;
        self.waiting = None;
        match resumed {
            Resumed::Authenticated { ask, reply } => self.authenticated(ask, reply),
            Resumed::AuthenticatorMissing { procedure } => {
                // No ABORT: Autobahn|JS never reconnects after one. Closing the transport lets
                // it retry once the back end has registered its authenticator.
                tracing::warn!(session = self.session_id, peer = ?self.transport.peer, %procedure, "dynamic authenticator not registered; closing the connection");
                self.phase = Phase::Closed;
                self.outbox.close(CloseRequest {
                    code: close_code::TRY_AGAIN_LATER,
                    reason: format!(
                        "authenticator '{procedure}' is not available; try again later"
                    ),
                    flush_first: true,
                });
                Flow::Close
            }
            Resumed::Authorized {
                msg,
                action,
                uri,
                procedure,
                reply,
            } => self.authorized(msg, action, &uri, &procedure, reply),
        }
    }

    fn send(&self, msg: &Message) {
        match frame_message(self.serializer, self.transport.framing, msg) {
            Ok(frame) => match self.outbox.push(frame) {
                Ok(()) => self.router.metrics.messages_out.count(msg.code()),
                Err(crate::outbox::PushError::TooLarge) => tracing::warn!(
                    session = self.session_id,
                    message = msg.name(),
                    "reply larger than the peer accepts was not sent"
                ),
                Err(_) => {}
            },
            Err(e) => tracing::error!(session = self.session_id, error = %e, "cannot encode reply"),
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
        let received = &self.router.metrics.messages_in;
        let msg = match self.serializer.decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                received.count(crate::metrics::UNDECODABLE);
                return self.protocol_violation(format!("could not decode message: {e}"));
            }
        };
        received.count(msg.code());
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Idle => self.handle_idle(msg),
            Phase::Authenticating { .. } => self.protocol_violation(format!(
                "received {} while authentication is in progress",
                msg.name()
            )),
            Phase::Joined { realm, peer } => {
                peer.count_in();
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
                    self.authenticate(realm, details, *pending, &signature, &extra)
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
        let Some(realm) = self.router.realm(realm_name) else {
            return self.abort(
                uris::NO_SUCH_REALM,
                format!("no realm named '{realm_name}' exists on this router"),
            );
        };
        self.session_id = crate::wamp::ids::random_id();
        self.attempt = None;
        let outcome = auth::hello(
            &realm.config(),
            &self.auth,
            details,
            self.session_id,
            &self.transport,
            self.router.principals.as_ref(),
        );
        self.proceed(realm, Box::new(details.clone()), outcome, None)
    }

    /// Carries on with what authentication decided: welcome, challenge, ask the authenticator,
    /// or abort. `authid` is who failed, for throttling, when known.
    fn proceed(
        &mut self,
        realm: Arc<Realm>,
        details: Box<Dict>,
        outcome: Result<auth::Outcome, auth::AuthError>,
        authid: Option<&str>,
    ) -> Flow {
        match outcome {
            Ok(auth::Outcome::Welcome(principal)) => {
                if let Some(id) = authid {
                    self.router
                        .throttle
                        .reset(&Self::authid_key(realm.name(), id));
                }
                self.welcome(realm, principal, &details)
            }
            Ok(auth::Outcome::Challenge {
                authmethod,
                extra,
                pending,
            }) => {
                self.attempt = Some(authmethod);
                if let Err(wait) = self.throttled(realm.name(), pending.authid()) {
                    self.router
                        .metrics
                        .auth_failed(authmethod, crate::metrics::THROTTLED);
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
                    details,
                    pending: Box::new(pending),
                };
                Flow::Continue
            }
            Ok(auth::Outcome::Ask(ask)) => {
                self.attempt = Some(ask.method());
                self.phase = Phase::Authenticating { realm, details };
                self.waiting = Some(Box::pin(ask_authenticator(self.router.clone(), ask)));
                Flow::Wait
            }
            Err(e) => {
                self.router.metrics.auth_failed(
                    e.method.or(self.attempt).unwrap_or("none"),
                    crate::metrics::auth_reason_label(&e.uri),
                );
                if authid.is_some() {
                    tracing::info!(session = self.session_id, peer = ?self.transport.peer, reason = %e.uri, authid = ?authid, "authentication failed");
                }
                if e.uri == uris::NO_SUCH_PRINCIPAL || authid.is_some() {
                    self.record_failure(realm.name(), authid);
                }
                self.abort(&e.uri, e.message)
            }
        }
    }

    /// The dynamic authenticator answered.
    fn authenticated(
        &mut self,
        ask: auth::dynamic::Ask,
        reply: Result<Payload, (String, String)>,
    ) -> Flow {
        let Phase::Authenticating { realm, details } =
            std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return Flow::Close;
        };
        let authid = dict_get(&details, "authid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let router = self.router.clone();
        let has_role =
            move |realm: &str, role: &str| router.realm(realm).is_some_and(|r| r.has_role(role));
        match ask.answered(reply, &has_role) {
            Ok(answered) => {
                let realm = match answered.realm {
                    Some(name) if name != realm.name() => match self.router.realm(&name) {
                        Some(r) => r,
                        None => {
                            return self.abort(
                                uris::NO_SUCH_REALM,
                                format!(
                                "the authenticator assigned realm '{name}', which does not exist"
                            ),
                            )
                        }
                    },
                    _ => realm,
                };
                self.proceed(realm, details, Ok(answered.outcome), authid.as_deref())
            }
            Err(e) => {
                let key = authid.as_deref().or(Some(""));
                self.proceed(realm, details, Err(e), key)
            }
        }
    }

    fn authid_key(realm: &str, authid: &str) -> String {
        format!("authid {realm} {authid}")
    }

    fn addr_key(&self) -> Option<String> {
        self.transport
            .ip()
            .filter(|a| !a.is_loopback())
            .map(|a| format!("addr {a}"))
    }

    /// Whether this authid or this client address is locked out after failed attempts.
    fn throttled(&self, realm: &str, authid: &str) -> Result<(), std::time::Duration> {
        use auth::throttle::{PER_ADDRESS, PER_AUTHID};
        let t = &self.router.throttle;
        if !authid.is_empty() {
            t.check(&Self::authid_key(realm, authid), PER_AUTHID)?;
        }
        match self.addr_key() {
            Some(k) => t.check(&k, PER_ADDRESS),
            None => Ok(()),
        }
    }

    fn record_failure(&self, realm: &str, authid: Option<&str>) {
        if let Some(id) = authid.filter(|id| !id.is_empty()) {
            self.router.throttle.fail(&Self::authid_key(realm, id));
        }
        if let Some(k) = self.addr_key() {
            self.router.throttle.fail(&k);
        }
    }

    fn authenticate(
        &mut self,
        realm: Arc<Realm>,
        details: Box<Dict>,
        pending: auth::Pending,
        signature: &str,
        extra: &Dict,
    ) -> Flow {
        let authid = pending.authid().to_owned();
        let outcome = auth::verify(pending, signature, extra);
        self.proceed(realm, details, outcome, Some(&authid))
    }

    /// Joins the realm and sends WELCOME.
    fn welcome(&mut self, realm: Arc<Realm>, principal: auth::Principal, details: &Dict) -> Flow {
        let realm_name = realm.name().to_owned();
        let realm_name = realm_name.as_str();
        let features = ClientFeatures::from_hello(details);
        let link = crate::router::peer::Attachment {
            serializer: self.serializer,
            framing: self.transport.framing,
            features,
            outbox: self.outbox.clone(),
            transport: Some(auth::TransportInfo {
                http_headers: None,
                ..self.transport.clone()
            }),
        };
        let peer = match realm.join(self.session_id, principal, link) {
            Ok(p) => p,
            Err(e) => return self.abort(e.uri, e.message),
        };
        let p = &peer.principal;
        if !realm.has_authorizer(&p.authrole) {
            // Only an authorizer is ever told the headers again.
            self.transport.http_headers = None;
        }
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
        tracing::Span::current().record("session", peer.session);
        tracing::debug!(session = peer.session, realm = realm_name, authid = %p.authid, "session joined");
        realm.announce_join(&peer);
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
        let decision = match authorization_target(&msg) {
            None => DENIED,
            Some((action, uri)) => match realm.authorization(peer, action, uri) {
                Authorization::Decided(d) => d,
                Authorization::Ask(procedure) => {
                    let uri = uri.to_owned();
                    return self.ask_authorizer(realm, peer, msg, action, uri, procedure);
                }
            },
        };
        self.perform(realm, peer, msg, decision)
    }

    /// Holds `msg` until the role's authorizer has decided about it.
    fn ask_authorizer(
        &mut self,
        realm: &Arc<Realm>,
        peer: &Arc<Peer>,
        msg: Message,
        action: Action,
        uri: String,
        procedure: String,
    ) -> Flow {
        let options = match &msg {
            Message::Publish { options, .. }
            | Message::Subscribe { options, .. }
            | Message::Register { options, .. }
            | Message::Call { options, .. } => options.clone(),
            _ => Dict::new(),
        };
        let args = authorizer::request_args(
            peer.session,
            &peer.principal,
            self.transport.to_value(),
            &uri,
            action,
            &options,
        );
        let router = self.router.clone();
        let realm_name = realm.name().to_owned();
        let timeout = router.config.limits.auth_timeout;
        self.waiting = Some(Box::pin(async move {
            let reply = match router.local_client(&realm_name, None) {
                Some(c) => c.call(&procedure, args, Dict::new(), timeout).await,
                None => Err(CallFailure::new(uris::NO_SUCH_REALM, "the realm is gone")),
            };
            Resumed::Authorized {
                msg,
                action,
                uri,
                procedure,
                reply,
            }
        }));
        Flow::Wait
    }

    /// The authorizer answered about `msg`: carry it out, or refuse it.
    fn authorized(
        &mut self,
        msg: Message,
        action: Action,
        uri: &str,
        procedure: &str,
        reply: Result<Payload, CallFailure>,
    ) -> Flow {
        let Phase::Joined { realm, peer } = &self.phase else {
            return Flow::Close;
        };
        let (realm, peer) = (realm.clone(), peer.clone());
        let answer = reply
            .map_err(|f| format!("{} ({})", f.message(), f.uri))
            .and_then(|p| authorizer::parse_answer(&p));
        match answer {
            Ok(a) => {
                realm.authorizer_counts.answered(a.decision.allowed);
                if a.cache {
                    realm.cache_decision(&peer.principal.authrole, uri, action, a.decision);
                }
                self.perform(&realm, &peer, msg, a.decision)
            }
            Err(why) => {
                realm.authorizer_counts.failed();
                // A failing authorizer denies, with Crossbar's URI for it.
                tracing::warn!(session = self.session_id, authorizer = procedure, error = %why, "authorizer failed; denying");
                if let Some((request_type, request, answer)) = request_of(&msg) {
                    if answer {
                        self.error(
                            request_type,
                            request,
                            RouteError::new(
                                uris::AUTHORIZATION_FAILED,
                                format!(
                                    "failed to authorize session to {} '{uri}': {why}",
                                    action.verb()
                                ),
                            ),
                        );
                    }
                }
                Flow::Continue
            }
        }
    }

    /// Carries out a message of a joined session; `decision` is what the permission check
    /// decided for PUBLISH, SUBSCRIBE, REGISTER and CALL.
    fn perform(
        &mut self,
        realm: &Arc<Realm>,
        peer: &Arc<Peer>,
        msg: Message,
        decision: Decision,
    ) -> Flow {
        let result = match msg {
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => {
                if let Err(e) = realm.publish(peer, request, &options, &topic, payload, decision) {
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
                .subscribe(peer, request, &options, &topic, decision)
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
                .call(peer, request, &options, &procedure, payload, decision)
                .map_err(|e| (code::CALL, request, e)),
            Message::Cancel { request, options } => realm
                .cancel(peer, request, &options)
                .map_err(|e| (code::CANCEL, request, e)),
            Message::Register {
                request,
                options,
                procedure,
            } => realm
                .register(peer, request, &options, &procedure, decision)
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

const DENIED: Decision = Decision {
    allowed: false,
    disclose: false,
};

/// The action and URI a message needs permission for.
fn authorization_target(msg: &Message) -> Option<(Action, &str)> {
    match msg {
        Message::Publish { topic, .. } => Some((Action::Publish, topic)),
        Message::Subscribe { topic, .. } => Some((Action::Subscribe, topic)),
        Message::Register { procedure, .. } => Some((Action::Register, procedure)),
        Message::Call { procedure, .. } => Some((Action::Call, procedure)),
        _ => None,
    }
}

/// (request type, request id, whether a refusal is answered) of a request message.
fn request_of(msg: &Message) -> Option<(u64, Id, bool)> {
    match msg {
        Message::Publish {
            request, options, ..
        } => Some((
            code::PUBLISH,
            *request,
            dict_get(options, "acknowledge").and_then(Value::as_bool) == Some(true),
        )),
        Message::Subscribe { request, .. } => Some((code::SUBSCRIBE, *request, true)),
        Message::Register { request, .. } => Some((code::REGISTER, *request, true)),
        Message::Call { request, .. } => Some((code::CALL, *request, true)),
        _ => None,
    }
}

/// Calls the dynamic authenticator. While it is not registered, the HELLO is held and the
/// call retried, for half the HELLO timeout; then the connection is closed (not aborted).
async fn ask_authenticator(router: Arc<Router>, ask: auth::dynamic::Ask) -> Resumed {
    let limits = &router.config.limits;
    let timeout = limits.auth_timeout;
    let hold_until = tokio::time::Instant::now() + limits.hello_timeout / 2;
    loop {
        let Some(client) = router.local_client(&ask.realm, ask.role.as_deref()) else {
            let why = format!("the authenticator's realm '{}' does not exist", ask.realm);
            return Resumed::Authenticated {
                ask,
                reply: Err((uris::AUTHENTICATION_FAILED.into(), why)),
            };
        };
        match client
            .call(&ask.procedure, ask.args(), Dict::new(), timeout)
            .await
        {
            Err(f) if f.uri == uris::NO_SUCH_PROCEDURE => {
                if tokio::time::Instant::now() + AUTHENTICATOR_RETRY >= hold_until {
                    return Resumed::AuthenticatorMissing {
                        procedure: ask.procedure,
                    };
                }
                tokio::time::sleep(AUTHENTICATOR_RETRY).await;
            }
            reply => {
                return Resumed::Authenticated {
                    reply: reply.map_err(|f| (f.uri.clone(), f.message())),
                    ask,
                }
            }
        }
    }
}
