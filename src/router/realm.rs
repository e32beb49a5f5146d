//! `Realm`: one routing namespace — its sessions, broker, dealer and permissions.
//!
//! Every method is synchronous and takes locks only for the duration of a table update or a
//! fan-out; nothing here awaits. Errors are `RouteError`s that the session turns into ERROR.

use super::broker::{Audience, Broker};
use super::dealer::{CallOptions, CancelMode, Dealer, InvokePolicy};
use super::peer::{ClientFeatures, Peer};
use super::RouteError;
use crate::auth::authorizer::DecisionCache;
use crate::auth::permissions::{Action, Decision, Permissions};
use crate::auth::Principal;
use crate::config::RealmConfig;
use crate::framing::Framing;
use crate::outbox::Outbox;
use crate::wamp::ids::{is_valid_id, random_id};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::uris;
use crate::wamp::value::{dict_get, Dict, Value};
use crate::wamp::{Id, Message, Payload, Serializer};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub struct Realm {
    pub config: RealmConfig,
    permissions: Permissions,
    /// Decisions dynamic authorizers asked to cache.
    decisions: DecisionCache,
    sessions: RwLock<HashMap<Id, Arc<Peer>>>,
    broker: RwLock<Broker>,
    dealer: Mutex<Dealer>,
    me: Weak<Realm>,
}

/// Whether an action may proceed: known now, or to be asked of the role's authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Decided(Decision),
    /// Call this procedure (the role's dynamic authorizer) to decide.
    Ask(String),
}

const ALLOWED: Decision = Decision {
    allowed: true,
    disclose: false,
};

/// Figures for the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RealmStats {
    pub name: String,
    pub sessions: usize,
    pub subscriptions: usize,
    pub registrations: usize,
}

fn bad(uri: &'static str, message: impl Into<String>) -> RouteError {
    RouteError::new(uri, message)
}

/// Reads an optional option of a given shape; a wrong type is `invalid_argument`.
fn opt_bool(options: &Dict, key: &str) -> Result<Option<bool>, RouteError> {
    match dict_get(options, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(
            uris::INVALID_ARGUMENT,
            format!("option '{key}' must be a bool, got {}", v.kind()),
        )),
    }
}

fn opt_str<'a>(options: &'a Dict, key: &str) -> Result<Option<&'a str>, RouteError> {
    match dict_get(options, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(v) => Err(bad(
            uris::INVALID_ARGUMENT,
            format!("option '{key}' must be a string, got {}", v.kind()),
        )),
    }
}

fn opt_ids(options: &Dict, key: &str) -> Result<Option<Vec<Id>>, RouteError> {
    match dict_get(options, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| match v.as_u64() {
                Some(id) if is_valid_id(id) => Ok(id),
                _ => Err(bad(
                    uris::INVALID_ARGUMENT,
                    format!("option '{key}' must be a list of session ids"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(bad(
            uris::INVALID_ARGUMENT,
            format!("option '{key}' must be a list, got {}", v.kind()),
        )),
    }
}

fn opt_strings(options: &Dict, key: &str) -> Result<Option<Vec<String>>, RouteError> {
    match dict_get(options, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    bad(
                        uris::INVALID_ARGUMENT,
                        format!("option '{key}' must be a list of strings"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(bad(
            uris::INVALID_ARGUMENT,
            format!("option '{key}' must be a list, got {}", v.kind()),
        )),
    }
}

fn match_policy(options: &Dict) -> Result<MatchPolicy, RouteError> {
    match opt_str(options, "match")? {
        None => Ok(MatchPolicy::Exact),
        Some(s) => MatchPolicy::parse(s).ok_or_else(|| {
            bad(
                uris::INVALID_ARGUMENT,
                format!("option 'match' must be 'exact', 'prefix' or 'wildcard', got '{s}'"),
            )
        }),
    }
}

fn check_uri(uri: &str, policy: MatchPolicy, what: &str) -> Result<(), RouteError> {
    if uri::is_valid(uri, policy) {
        Ok(())
    } else {
        Err(bad(
            uris::INVALID_URI,
            format!(
                "invalid {what} URI '{}' for match policy '{}'",
                truncate(uri),
                policy.as_str()
            ),
        ))
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Realm {
    /// PUBLISH from a router-internal session (no authorizer is asked on its behalf).
    pub fn publish_local(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        topic: &str,
        payload: Payload,
    ) -> Result<(), RouteError> {
        let d = self.decide_now(peer, Action::Publish, topic);
        self.publish(peer, request, options, topic, payload, d)
    }

    /// SUBSCRIBE from a router-internal session.
    pub fn subscribe_local(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        topic: &str,
    ) -> Result<(), RouteError> {
        let d = self.decide_now(peer, Action::Subscribe, topic);
        self.subscribe(peer, request, options, topic, d)
    }

    /// CALL from a router-internal session (no authorizer is asked on its behalf).
    pub fn call_local(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        procedure: &str,
        payload: Payload,
    ) -> Result<(), RouteError> {
        let d = self.decide_now(peer, Action::Call, procedure);
        self.call(peer, request, options, procedure, payload, d)
    }

    pub fn new(config: RealmConfig) -> Arc<Realm> {
        let permissions = Permissions::from_config(&config);
        Arc::new_cyclic(|me| Realm {
            config,
            permissions,
            decisions: DecisionCache::default(),
            sessions: RwLock::new(HashMap::new()),
            broker: RwLock::new(Broker::default()),
            dealer: Mutex::new(Dealer::default()),
            me: me.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn stats(&self) -> RealmStats {
        RealmStats {
            name: self.config.name.clone(),
            sessions: self.sessions.read().len(),
            subscriptions: self.broker.read().subscription_count(),
            registrations: self.dealer.lock().registration_count(),
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    /// Admits an authenticated session; returns its handle.
    /// `preferred` is the session id the client was promised (dynamic authenticators see it);
    /// another is chosen only if it is taken.
    pub fn join(
        &self,
        preferred: Id,
        principal: Principal,
        serializer: Serializer,
        framing: Framing,
        features: ClientFeatures,
        outbox: Arc<Outbox>,
    ) -> Result<Arc<Peer>, RouteError> {
        if !self.permissions.has_role(&principal.authrole) {
            return Err(bad(
                uris::NO_SUCH_ROLE,
                format!(
                    "role '{}' does not exist on realm '{}'",
                    principal.authrole, self.config.name
                ),
            ));
        }
        let mut sessions = self.sessions.write();
        let mut id = preferred;
        while !is_valid_id(id) || sessions.contains_key(&id) {
            id = random_id();
        }
        let peer = Arc::new(Peer::new(
            id, principal, serializer, framing, features, outbox,
        ));
        sessions.insert(id, peer.clone());
        Ok(peer)
    }

    /// Admits a router-internal session (see `local::LocalClient`). A trusted one is not
    /// permission-checked; its role need not exist in the realm.
    pub fn join_local(
        &self,
        principal: Principal,
        outbox: Arc<Outbox>,
        trusted: bool,
    ) -> Arc<Peer> {
        let mut sessions = self.sessions.write();
        let mut id = random_id();
        while sessions.contains_key(&id) {
            id = random_id();
        }
        let mut peer = Peer::new(
            id,
            principal,
            super::local::LOCAL_SERIALIZER,
            super::local::LOCAL_FRAMING,
            ClientFeatures::default(),
            outbox,
        );
        peer.trusted = trusted;
        let peer = Arc::new(peer);
        sessions.insert(id, peer.clone());
        peer
    }

    /// Removes a session and everything it owned. Idempotent.
    pub fn leave(&self, session: Id) {
        if self.sessions.write().remove(&session).is_none() {
            return;
        }
        self.broker.write().remove_session(session);
        let mut dealer = self.dealer.lock();
        dealer.remove_session(session);
        self.forget_orphaned_decisions(&dealer);
    }

    /// Cached decisions live only as long as the authorizer that made them is registered.
    fn forget_orphaned_decisions(&self, dealer: &Dealer) {
        if self.decisions.is_empty() {
            return;
        }
        for (role, procedure) in self.permissions.authorizers() {
            if !dealer.serves(procedure) {
                self.decisions.clear_role(role);
            }
        }
    }

    /// Whether `peer` may do `action` on `uri`: static rules first, then the decisions its
    /// role's authorizer asked to cache; otherwise the authorizer must be asked.
    pub fn authorization(&self, peer: &Peer, action: Action, uri: &str) -> Authorization {
        if peer.trusted {
            return Authorization::Decided(ALLOWED);
        }
        let role = peer.principal.authrole.as_str();
        let d = self.permissions.authorize(role, action, uri);
        if d.allowed {
            return Authorization::Decided(d);
        }
        match self.permissions.authorizer(role) {
            None => Authorization::Decided(d),
            Some(procedure) => match self.decisions.get(role, uri, action) {
                Some(cached) => Authorization::Decided(cached),
                None => Authorization::Ask(procedure.to_owned()),
            },
        }
    }

    /// Whether sessions of `role` are subject to a dynamic authorizer.
    pub fn has_authorizer(&self, role: &str) -> bool {
        self.permissions.authorizer(role).is_some()
    }

    /// Remembers an authorizer's decision that asked to be cached.
    pub fn cache_decision(&self, role: &str, uri: &str, action: Action, decision: Decision) {
        // Only while the authorizer is still there, or the cache would outlive it.
        let dealer = self.dealer.lock();
        if let Some(procedure) = self.permissions.authorizer(role) {
            if dealer.serves(procedure) {
                self.decisions.put(role, uri, action, decision);
            }
        }
    }

    /// The decision when no authorizer may be asked (router-internal callers).
    fn decide_now(&self, peer: &Peer, action: Action, uri: &str) -> Decision {
        match self.authorization(peer, action, uri) {
            Authorization::Decided(d) => d,
            Authorization::Ask(_) => Decision {
                allowed: false,
                disclose: false,
            },
        }
    }

    fn require(
        &self,
        peer: &Peer,
        d: Decision,
        action: Action,
        uri: &str,
    ) -> Result<bool, RouteError> {
        if d.allowed {
            Ok(d.disclose)
        } else {
            Err(bad(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to {} '{}' (role '{}')",
                    action.verb(),
                    truncate(uri),
                    peer.principal.authrole
                ),
            ))
        }
    }

    pub fn subscribe(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        topic: &str,
        decision: Decision,
    ) -> Result<(), RouteError> {
        let policy = match_policy(options)?;
        check_uri(topic, policy, "topic")?;
        self.require(peer, decision, Action::Subscribe, topic)?;
        let id = self.broker.write().subscribe(peer, topic, policy);
        let _ = peer.send(&Message::Subscribed {
            request,
            subscription: id,
        });
        Ok(())
    }

    pub fn unsubscribe(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        subscription: Id,
    ) -> Result<(), RouteError> {
        if !self.broker.write().unsubscribe(peer.session, subscription) {
            return Err(bad(
                uris::NO_SUCH_SUBSCRIPTION,
                format!("this session has no subscription {subscription}"),
            ));
        }
        let _ = peer.send(&Message::Unsubscribed {
            request,
            details: None,
        });
        Ok(())
    }

    /// PUBLISH: validate, authorize, deliver locally, acknowledge if asked.
    pub fn publish(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        topic: &str,
        payload: Payload,
        decision: Decision,
    ) -> Result<(), RouteError> {
        check_uri(topic, MatchPolicy::Exact, "topic")?;
        if uri::is_reserved(topic) {
            return Err(bad(
                uris::INVALID_URI,
                format!(
                    "topic '{}' is in the reserved 'wamp.' namespace",
                    truncate(topic)
                ),
            ));
        }
        let role_disclose = self.require(peer, decision, Action::Publish, topic)?;
        let acknowledge = opt_bool(options, "acknowledge")?.unwrap_or(false);
        let audience = Audience {
            publisher: peer.session,
            exclude_me: opt_bool(options, "exclude_me")?.unwrap_or(true),
            exclude: opt_ids(options, "exclude")?,
            exclude_authid: opt_strings(options, "exclude_authid")?,
            exclude_authrole: opt_strings(options, "exclude_authrole")?,
            eligible: opt_ids(options, "eligible")?,
            eligible_authid: opt_strings(options, "eligible_authid")?,
            eligible_authrole: opt_strings(options, "eligible_authrole")?,
        };
        let mut details = Dict::new();
        if opt_bool(options, "disclose_me")?.unwrap_or(false) || role_disclose {
            details.push(("publisher".into(), Value::UInt(peer.session)));
            details.push((
                "publisher_authid".into(),
                peer.principal.authid.clone().into(),
            ));
            details.push((
                "publisher_authrole".into(),
                peer.principal.authrole.clone().into(),
            ));
        }
        let publication = random_id();
        let payload = Arc::new(payload);
        self.broker
            .read()
            .publish(topic, publication, &details, &payload, &audience);
        if acknowledge {
            let _ = peer.send(&Message::Published {
                request,
                publication,
            });
        }
        Ok(())
    }

    pub fn register(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        procedure: &str,
        decision: Decision,
    ) -> Result<(), RouteError> {
        let policy = match_policy(options)?;
        check_uri(procedure, policy, "procedure")?;
        if uri::is_reserved(procedure) {
            return Err(bad(
                uris::INVALID_URI,
                format!(
                    "procedure '{}' is in the reserved 'wamp.' namespace",
                    truncate(procedure)
                ),
            ));
        }
        let invoke = match opt_str(options, "invoke")? {
            None => InvokePolicy::Single,
            Some(s) => InvokePolicy::parse(s).ok_or_else(|| {
                bad(
                    uris::INVALID_ARGUMENT,
                    format!("option 'invoke' must be one of single, roundrobin, random, first, last; got '{s}'"),
                )
            })?,
        };
        let disclose_caller = opt_bool(options, "disclose_caller")?.unwrap_or(false);
        self.require(peer, decision, Action::Register, procedure)?;
        let id = self
            .dealer
            .lock()
            .register(peer, procedure, policy, invoke, disclose_caller)?;
        let _ = peer.send(&Message::Registered {
            request,
            registration: id,
        });
        Ok(())
    }

    pub fn unregister(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        registration: Id,
    ) -> Result<(), RouteError> {
        {
            let mut dealer = self.dealer.lock();
            dealer.unregister(peer.session, registration)?;
            self.forget_orphaned_decisions(&dealer);
        }
        let _ = peer.send(&Message::Unregistered {
            request,
            details: None,
        });
        Ok(())
    }

    pub fn call(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        procedure: &str,
        payload: Payload,
        decision: Decision,
    ) -> Result<(), RouteError> {
        check_uri(procedure, MatchPolicy::Exact, "procedure")?;
        let role_disclose = self.require(peer, decision, Action::Call, procedure)?;
        let timeout_ms = match dict_get(options, "timeout") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                bad(
                    uris::INVALID_ARGUMENT,
                    "option 'timeout' must be a non-negative integer (milliseconds)",
                )
            })?,
        };
        let opts = CallOptions {
            receive_progress: opt_bool(options, "receive_progress")?.unwrap_or(false),
            timeout_ms,
            disclose_me: opt_bool(options, "disclose_me")?.unwrap_or(false),
        };
        let mut dealer = self.dealer.lock();
        let key = dealer.call(peer, request, opts, procedure, payload, role_disclose)?;
        if timeout_ms > 0 {
            let realm = self.me.clone();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
                if let Some(realm) = realm.upgrade() {
                    realm.dealer.lock().timeout(key, timeout_ms);
                }
            });
            dealer.set_timer(key, timer.abort_handle());
        }
        Ok(())
    }

    pub fn cancel(&self, peer: &Arc<Peer>, request: Id, options: &Dict) -> Result<(), RouteError> {
        let mode = match opt_str(options, "mode")? {
            None => CancelMode::Kill,
            Some(s) => CancelMode::parse(s).ok_or_else(|| {
                bad(
                    uris::INVALID_ARGUMENT,
                    format!("option 'mode' must be skip, kill or killnowait; got '{s}'"),
                )
            })?,
        };
        self.dealer.lock().cancel(peer.session, request, mode);
        Ok(())
    }

    pub fn yield_(&self, peer: &Arc<Peer>, request: Id, options: &Dict, payload: Payload) {
        self.dealer
            .lock()
            .yield_(peer.session, request, options, payload);
    }

    pub fn invocation_error(&self, peer: &Arc<Peer>, request: Id, error: String, payload: Payload) {
        self.dealer
            .lock()
            .invocation_error(peer.session, request, error, payload);
    }
}
