//! `Realm`: one routing namespace — its sessions, broker, dealer and permissions.
//!
//! Every method is synchronous and takes locks only for the duration of a table update or a
//! fan-out; nothing here awaits. Errors are `RouteError`s that the session turns into ERROR.

use super::broker::{Audience, Broker, Delivery};
use super::dealer::{CallOptions, CancelMode, Dealer, InvokePolicy};
use super::peer::{ClientFeatures, Peer};
use super::RouteError;
use crate::auth::authorizer::DecisionCache;
use crate::auth::permissions::{Action, Decision, Permissions};
use crate::auth::Principal;
use crate::config::RealmConfig;
use crate::metrics::{AuthorizerCounts, Limit, Metrics};
use crate::outbox::Outbox;
use crate::wamp::ids::{is_valid_id, random_id};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::uris;
use crate::wamp::value::{dict_get, Dict, Value};
use crate::wamp::{Id, Message, Payload};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub struct Realm {
    name: String,
    /// The realm's config as last loaded (roles change on reload; see `reconfigure`).
    config: arc_swap::ArcSwap<RealmConfig>,
    /// Compiled from `config`'s roles, swapped with it.
    permissions: arc_swap::ArcSwap<Permissions>,
    /// Decisions dynamic authorizers asked to cache.
    decisions: DecisionCache,
    /// Built-in components following session joins and departures.
    session_hooks: RwLock<Vec<SessionHook>>,
    /// A built-in component's policy for URIs under its prefix.
    policy: std::sync::OnceLock<(String, Arc<dyn AccessPolicy>)>,
    /// Event history (when the realm's config keeps any).
    history: Option<super::history::RealmHistory>,
    retained: super::history::RetainedEvents,
    sessions: RwLock<HashMap<Id, Arc<Peer>>>,
    broker: RwLock<Broker>,
    dealer: Mutex<Dealer>,
    me: Weak<Realm>,
    /// The router's counters (messages out by type); client sessions get them at join.
    metrics: Arc<Metrics>,
    /// What this realm's authorizers decided, and the decisions taken from the cache.
    pub authorizer_counts: AuthorizerCounts,
    /// What one client session may hold here.
    limits: crate::config::SessionLimits,
}

/// A built-in component's say over a URI prefix it owns (the chat service decides who may
/// subscribe to a thread). `None` leaves the decision to the role's rules.
pub trait AccessPolicy: Send + Sync {
    fn decide(&self, peer: &Peer, action: Action, uri: &str) -> Option<Decision>;
}

/// A client session joined or left (for built-in components that follow sessions).
pub enum SessionChange<'a> {
    Joined(&'a Peer),
    Left(&'a Peer),
}

/// Called synchronously on every client session's join and departure; must be quick and
/// must not call back into the realm's session table.
pub type SessionHook = Arc<dyn Fn(SessionChange<'_>) + Send + Sync>;

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

/// Who receives a publication by `publisher` with these PUBLISH options.
pub(super) fn audience_of(publisher: Id, options: &Dict) -> Result<Audience, RouteError> {
    Ok(Audience {
        publisher,
        exclude_me: opt_bool(options, "exclude_me")?.unwrap_or(true),
        exclude: opt_ids(options, "exclude")?,
        exclude_authid: opt_strings(options, "exclude_authid")?,
        exclude_authrole: opt_strings(options, "exclude_authrole")?,
        eligible: opt_ids(options, "eligible")?,
        eligible_authid: opt_strings(options, "eligible_authid")?,
        eligible_authrole: opt_strings(options, "eligible_authrole")?,
    })
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

    /// REGISTER from a router-internal session.
    pub fn register_local(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        options: &Dict,
        procedure: &str,
    ) -> Result<(), RouteError> {
        let d = self.decide_now(peer, Action::Register, procedure);
        self.register(peer, request, options, procedure, d)
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
        Self::with_history(config, None, Arc::default(), Default::default())
    }

    /// A realm whose history rules (if any) write through `writer`, counting into `metrics`.
    pub fn with_history(
        config: RealmConfig,
        writer: Option<super::history::Writer>,
        metrics: Arc<Metrics>,
        limits: crate::config::SessionLimits,
    ) -> Arc<Realm> {
        let permissions = Permissions::from_config(&config);
        let history = writer.and_then(|w| super::history::RealmHistory::new(&config.history, w));
        Arc::new_cyclic(|me| Realm {
            name: config.name.clone(),
            config: arc_swap::ArcSwap::from_pointee(config),
            permissions: arc_swap::ArcSwap::from_pointee(permissions),
            decisions: DecisionCache::default(),
            policy: std::sync::OnceLock::new(),
            session_hooks: RwLock::new(Vec::new()),
            history,
            retained: Default::default(),
            sessions: RwLock::new(HashMap::new()),
            broker: RwLock::new(Broker::default()),
            dealer: Mutex::new(Dealer::default()),
            me: me.clone(),
            metrics,
            authorizer_counts: AuthorizerCounts::default(),
            limits,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The realm's config as last loaded.
    pub fn config(&self) -> Arc<RealmConfig> {
        self.config.load_full()
    }

    /// Whether `role` is one of the realm's configured roles.
    pub fn has_role(&self, role: &str) -> bool {
        self.permissions.load().has_role(role)
    }

    /// Whether any role here has a dynamic authorizer.
    pub fn has_authorizers(&self) -> bool {
        self.permissions.load().authorizers().next().is_some()
    }

    /// Takes new roles and permissions (a reload): every check from now on uses them, and
    /// decisions cached from authorizers are forgotten. Sessions stay; a session whose role
    /// is gone is refused everything (its role no longer exists).
    pub fn reconfigure(&self, config: &RealmConfig) {
        let permissions = Permissions::from_config(config);
        self.permissions.store(Arc::new(permissions));
        self.config.store(Arc::new(config.clone()));
        self.decisions.clear();
    }

    /// Closes every session (a reload removed the realm).
    pub fn close_all(&self, reason: &str, message: &str) {
        for s in self.sessions() {
            self.kill_quietly(s.session, reason, Some(message));
        }
    }

    /// Figures of what clients did: router-internal sessions (the chat service, the
    /// authenticator callers) and what only they own are left out.
    pub fn stats(&self) -> RealmStats {
        RealmStats {
            name: self.name.clone(),
            sessions: self.session_count(),
            subscriptions: self
                .broker
                .read()
                .all()
                .filter(|s| s.subscribers.values().any(|p| !p.trusted))
                .count(),
            registrations: self
                .dealer
                .lock()
                .all()
                .filter(|r| r.has_client_callee())
                .count(),
        }
    }

    /// Client sessions (router-internal ones are not counted).
    pub fn session_count(&self) -> usize {
        self.sessions.read().values().filter(|p| !p.trusted).count()
    }

    /// Client sessions by `[Framing::index()][Serializer::index()]` (router-internal ones are
    /// not counted). Counted under the read lock, without copying the table.
    pub fn session_mix(&self) -> [[u64; 3]; 2] {
        let mut mix = [[0u64; 3]; 2];
        for p in self
            .sessions
            .read()
            .values()
            .filter(|p| p.transport.is_some())
        {
            mix[p.framing.index()][p.serializer.index()] += 1;
        }
        mix
    }

    /// Counts the EVENTs a fan-out queued for client sessions.
    fn count_events(&self, d: Delivery) {
        self.metrics
            .messages_out
            .add(crate::wamp::message::code::EVENT, d.counted as u64);
    }

    /// Admits an authenticated session; returns its handle.
    /// `preferred` is the session id the client was promised (dynamic authenticators see it);
    /// another is chosen only if it is taken.
    pub fn join(
        &self,
        preferred: Id,
        principal: Principal,
        link: super::peer::Attachment,
    ) -> Result<Arc<Peer>, RouteError> {
        if !self.has_role(&principal.authrole) {
            return Err(bad(
                uris::NO_SUCH_ROLE,
                format!(
                    "role '{}' does not exist on realm '{}'",
                    principal.authrole, self.name
                ),
            ));
        }
        let mut sessions = self.sessions.write();
        let mut id = preferred;
        while !is_valid_id(id) || sessions.contains_key(&id) {
            id = random_id();
        }
        let mut peer = Peer::new(
            id,
            principal,
            link.serializer,
            link.framing,
            link.features,
            link.outbox,
        );
        peer.transport = link.transport;
        peer.metrics = Some(self.metrics.clone());
        let peer = Arc::new(peer);
        sessions.insert(id, peer.clone());
        Ok(peer)
    }

    /// Tells `wamp.session.on_join` subscribers about a session that joined (after its WELCOME).
    pub fn announce_join(&self, peer: &Peer) {
        if !peer.trusted {
            for hook in self.session_hooks.read().iter() {
                hook(SessionChange::Joined(peer));
            }
            self.meta_event(super::meta::ON_JOIN, || {
                vec![super::meta::session_details(self.name(), peer)]
            });
        }
    }

    /// Publishes a meta event, built only if someone listens.
    pub(super) fn meta_event(&self, topic: &str, args: impl FnOnce() -> crate::wamp::value::List) {
        let broker = self.broker.read();
        if !broker.has_subscribers(topic) {
            return;
        }
        let payload = Arc::new(Payload::args(args()));
        let d = broker.publish(
            topic,
            random_id(),
            &Dict::new(),
            &payload,
            &Audience::default(),
        );
        self.count_events(d);
    }

    /// The broker, for reading (meta API).
    pub fn broker(&self) -> parking_lot::RwLockReadGuard<'_, Broker> {
        self.broker.read()
    }

    /// The dealer, locked (meta API).
    pub fn dealer(&self) -> parking_lot::MutexGuard<'_, Dealer> {
        self.dealer.lock()
    }

    /// Whether `peer` may subscribe to `topic` without asking an authorizer.
    pub fn may_subscribe_now(&self, peer: &Peer, topic: &str) -> bool {
        self.decide_now(peer, Action::Subscribe, topic).allowed
    }

    /// Whether `peer` may publish to `topic` without asking an authorizer.
    pub fn may_publish_now(&self, peer: &Peer, topic: &str) -> bool {
        self.decide_now(peer, Action::Publish, topic).allowed
    }

    /// The stored events a subscription (uri, policy) may read, oldest first per topic; `None`
    /// when the realm keeps no history for it.
    pub fn stored_events(
        &self,
        uri: &str,
        policy: MatchPolicy,
    ) -> Option<Result<Vec<crate::store::history::StoredEvent>, crate::store::StoreError>> {
        let h = self.history.as_ref().filter(|h| h.covers(uri, policy))?;
        let store = h.store();
        Some((|| {
            if policy == MatchPolicy::Exact {
                return store.read(self.name(), uri);
            }
            let mut all = Vec::new();
            for t in store.topics(self.name())? {
                if uri::matches(uri, policy, &t) {
                    all.extend(store.read(self.name(), &t)?);
                }
            }
            all.sort_by_key(|e| e.timestamp_ms);
            Ok(all)
        })())
    }

    /// A session by id.
    pub fn session(&self, id: Id) -> Option<Arc<Peer>> {
        self.sessions.read().get(&id).cloned()
    }

    /// Every session except router-internal ones.
    pub fn sessions(&self) -> Vec<Arc<Peer>> {
        self.sessions
            .read()
            .values()
            .filter(|p| !p.trusted)
            .cloned()
            .collect()
    }

    /// Ends a session from the router's side (`wamp.session.kill*`): GOODBYE with `reason` and
    /// `message`, then its transport closes. False if there is no such session.
    pub fn kill(&self, session: Id, reason: &str, message: Option<&str>) -> bool {
        self.end(session, reason, message, true)
    }

    /// `kill` without meta or testament events (`wamp.session.kill_all`).
    pub fn kill_quietly(&self, session: Id, reason: &str, message: Option<&str>) -> bool {
        self.end(session, reason, message, false)
    }

    fn end(&self, session: Id, reason: &str, message: Option<&str>, announce: bool) -> bool {
        let Some(peer) = self.session(session) else {
            return false;
        };
        let details = match message {
            Some(m) => vec![("message".to_owned(), Value::Str(m.to_owned()))],
            None => Dict::new(),
        };
        let _ = peer.send(&Message::Goodbye {
            details,
            reason: reason.to_owned(),
        });
        peer.outbox.close(crate::outbox::CloseRequest {
            code: crate::outbox::close_code::NORMAL,
            reason: String::new(),
            flush_first: true,
        });
        self.depart(session, announce);
        true
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

    /// Removes a session and everything it owned, publishes its testaments and the meta
    /// events. Idempotent.
    pub fn leave(&self, session: Id) {
        self.depart(session, true);
    }

    fn depart(&self, session: Id, announce: bool) {
        let Some(peer) = self.sessions.write().remove(&session) else {
            return;
        };
        // From here on nothing may be added for it (checked under the broker/dealer locks).
        peer.mark_gone();
        let subscriptions = self.broker.write().remove_session(session);
        let registrations = {
            let mut dealer = self.dealer.lock();
            let r = dealer.remove_session(session);
            self.forget_orphaned_decisions(&dealer);
            r
        };
        if peer.trusted {
            return;
        }
        // Followers learn of every departure, even a quiet one (kill_all).
        for hook in self.session_hooks.read().iter() {
            hook(SessionChange::Left(&peer));
        }
        if !announce {
            return;
        }
        self.publish_testaments(&peer);
        use super::meta::{
            ids, REG_ON_DELETE, REG_ON_UNREGISTER, SUB_ON_DELETE, SUB_ON_UNSUBSCRIBE,
        };
        for (id, deleted, meta_topic) in subscriptions {
            if meta_topic {
                continue;
            }
            self.meta_event(SUB_ON_UNSUBSCRIBE, || ids(session, id));
            if deleted {
                self.meta_event(SUB_ON_DELETE, || ids(session, id));
            }
        }
        for (id, deleted) in registrations {
            self.meta_event(REG_ON_UNREGISTER, || ids(session, id));
            if deleted {
                self.meta_event(REG_ON_DELETE, || ids(session, id));
            }
        }
        self.meta_event(super::meta::ON_LEAVE, || {
            vec![
                Value::UInt(session),
                peer.principal.authid.clone().into(),
                peer.principal.authrole.clone().into(),
            ]
        });
    }

    /// Publishes what a departed session left behind: `detached` testaments, then `destroyed`
    /// ones (there is no session resumption, so both happen now), each in the order added.
    fn publish_testaments(&self, peer: &Peer) {
        use super::peer::TestamentScope;
        let testaments = std::mem::take(&mut *peer.testaments.lock());
        for scope in [TestamentScope::Detached, TestamentScope::Destroyed] {
            for t in testaments.iter().filter(|t| t.scope == scope) {
                let audience = audience_of(0, &t.options).unwrap_or_default();
                let payload = Arc::new(t.payload.clone());
                let d = self.broker.read().publish(
                    &t.topic,
                    random_id(),
                    &Dict::new(),
                    &payload,
                    &audience,
                );
                self.count_events(d);
            }
        }
    }

    /// Cached decisions live only as long as the authorizer that made them is registered.
    fn forget_orphaned_decisions(&self, dealer: &Dealer) {
        if self.decisions.is_empty() {
            return;
        }
        let permissions = self.permissions.load();
        for (role, procedure) in permissions.authorizers() {
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
        if let Some((prefix, policy)) = self.policy.get() {
            if uri.starts_with(prefix.as_str()) {
                if let Some(d) = policy.decide(peer, action, uri) {
                    return Authorization::Decided(d);
                }
            }
        }
        let role = peer.principal.authrole.as_str();
        let permissions = self.permissions.load();
        let d = permissions.authorize(role, action, uri);
        if d.allowed {
            return Authorization::Decided(d);
        }
        match permissions.authorizer(role) {
            None => Authorization::Decided(d),
            Some(procedure) => match self.decisions.get(role, uri, action) {
                Some(cached) => {
                    self.authorizer_counts.cache_hit();
                    Authorization::Decided(cached)
                }
                None => Authorization::Ask(procedure.to_owned()),
            },
        }
    }

    /// Follows client sessions' joins and departures.
    pub fn add_session_hook(&self, hook: SessionHook) {
        self.session_hooks.write().push(hook);
    }

    /// Gives a built-in component the say over URIs starting with `prefix` (once per realm).
    pub fn set_policy(&self, prefix: &str, policy: Arc<dyn AccessPolicy>) -> bool {
        self.policy.set((prefix.to_owned(), policy)).is_ok()
    }

    /// Whether sessions of `role` are subject to a dynamic authorizer.
    pub fn has_authorizer(&self, role: &str) -> bool {
        self.permissions.load().authorizer(role).is_some()
    }

    /// Remembers an authorizer's decision that asked to be cached.
    pub fn cache_decision(&self, role: &str, uri: &str, action: Action, decision: Decision) {
        // Only while the authorizer is still there, or the cache would outlive it.
        let dealer = self.dealer.lock();
        if let Some(procedure) = self.permissions.load().authorizer(role) {
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

    /// Counts a refusal by `limit` and words the error for the client.
    fn limit_reached(&self, limit: Limit) -> RouteError {
        self.metrics.limit_refused(limit);
        let (what, n) = match limit {
            Limit::Subscriptions => ("subscriptions per session", self.limits.subscriptions),
            Limit::Registrations => ("registrations per session", self.limits.registrations),
            Limit::CallsInFlight => ("calls in flight per session", self.limits.calls_in_flight),
            Limit::TopicsPerRealm => (
                "subscribed topics in this realm",
                self.limits.topics_per_realm,
            ),
            Limit::Connections | Limit::ConnectionsPerAddress => ("connections", 0),
        };
        bad(
            uris::LIMIT_EXCEEDED,
            format!("limit reached: at most {n} {what} ({})", limit.label()),
        )
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
        let done = {
            let mut broker = self.broker.write();
            if peer.is_gone() {
                return Ok(());
            }
            if !peer.trusted {
                broker
                    .within_limits(peer.session, topic, policy, &self.limits)
                    .map_err(|l| self.limit_reached(l))?;
            }
            broker.subscribe(peer, topic, policy)
        };
        let _ = peer.send(&Message::Subscribed {
            request,
            subscription: done.id,
        });
        if opt_bool(options, "get_retained")?.unwrap_or(false) {
            for (t, e) in self.retained.matching(topic, policy) {
                if !e.audience.admits(peer) {
                    continue;
                }
                let mut details = e.details.clone();
                details.push(("retained".into(), Value::Bool(true)));
                if policy != MatchPolicy::Exact {
                    details.push(("topic".into(), t.into()));
                }
                let _ = peer.send(&Message::Event {
                    subscription: done.id,
                    publication: e.publication,
                    details,
                    payload: e.payload.clone(),
                });
            }
        }
        if !peer.trusted && !uri::is_reserved(topic) {
            use super::meta::{ids, SUB_ON_CREATE, SUB_ON_SUBSCRIBE};
            if done.created {
                self.meta_event(SUB_ON_CREATE, || {
                    let broker = self.broker.read();
                    let details = broker
                        .get(done.id)
                        .map(super::meta::subscription_details)
                        .unwrap_or(Value::Null);
                    vec![Value::UInt(peer.session), details]
                });
            }
            if done.added {
                self.meta_event(SUB_ON_SUBSCRIBE, || ids(peer.session, done.id));
            }
        }
        Ok(())
    }

    pub fn unsubscribe(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        subscription: Id,
    ) -> Result<(), RouteError> {
        let Some((deleted, meta_topic)) =
            self.broker.write().unsubscribe(peer.session, subscription)
        else {
            return Err(bad(
                uris::NO_SUCH_SUBSCRIPTION,
                format!("this session has no subscription {subscription}"),
            ));
        };
        let _ = peer.send(&Message::Unsubscribed {
            request,
            details: None,
        });
        use super::meta::{ids, SUB_ON_DELETE, SUB_ON_UNSUBSCRIBE};
        if meta_topic || peer.trusted {
            return Ok(());
        }
        self.meta_event(SUB_ON_UNSUBSCRIBE, || ids(peer.session, subscription));
        if deleted {
            self.meta_event(SUB_ON_DELETE, || ids(peer.session, subscription));
        }
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
        let audience = audience_of(peer.session, options)?;
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
        let retain = opt_bool(options, "retain")?.unwrap_or(false);
        let publication = random_id();
        let payload = Arc::new(payload);
        let d = self
            .broker
            .read()
            .publish(topic, publication, &details, &payload, &audience);
        self.count_events(d);
        if retain {
            self.retained.keep(
                topic,
                super::history::Retained {
                    publication,
                    details: details.clone(),
                    payload: payload.clone(),
                    audience: audience.clone(),
                },
            );
        }
        // With history, PUBLISHED waits until the event is durable (the writer sends it).
        let mut answered = false;
        if let Some(h) = &self.history {
            if let Some(limit) = h.limit(topic).filter(|_| !audience.has_lists()) {
                let ack = acknowledge.then(|| super::history::Ack {
                    peer: peer.clone(),
                    request,
                    publication,
                });
                match h.record(self.name(), limit, topic, publication, &payload, ack) {
                    Ok(()) => answered = acknowledge,
                    Err(Some(ack)) => {
                        let _ = ack.peer.send(&Message::Error {
                            request_type: crate::wamp::message::code::PUBLISH,
                            request,
                            details: Dict::new(),
                            error: super::history::STORAGE_FAILED.to_owned(),
                            payload: Payload::message(
                                "the event was delivered but the history writer is overloaded; it was not stored",
                            ),
                        });
                        answered = true;
                    }
                    Err(None) => {}
                }
            }
        }
        if acknowledge && !answered {
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
        let (id, created) = {
            let mut dealer = self.dealer.lock();
            if peer.is_gone() {
                return Ok(());
            }
            if !peer.trusted && dealer.registrations_of(peer.session) >= self.limits.registrations {
                return Err(self.limit_reached(Limit::Registrations));
            }
            dealer.register(peer, procedure, policy, invoke, disclose_caller)?
        };
        let _ = peer.send(&Message::Registered {
            request,
            registration: id,
        });
        if !peer.trusted {
            use super::meta::{ids, REG_ON_CREATE, REG_ON_REGISTER};
            if created {
                self.meta_event(REG_ON_CREATE, || {
                    let dealer = self.dealer.lock();
                    let details = dealer
                        .get(id)
                        .map(super::meta::registration_details)
                        .unwrap_or(Value::Null);
                    vec![Value::UInt(peer.session), details]
                });
            }
            self.meta_event(REG_ON_REGISTER, || ids(peer.session, id));
        }
        Ok(())
    }

    pub fn unregister(
        &self,
        peer: &Arc<Peer>,
        request: Id,
        registration: Id,
    ) -> Result<(), RouteError> {
        let deleted = {
            let mut dealer = self.dealer.lock();
            let deleted = dealer.unregister(peer.session, registration)?;
            self.forget_orphaned_decisions(&dealer);
            deleted
        };
        let _ = peer.send(&Message::Unregistered {
            request,
            details: None,
        });
        use super::meta::{ids, REG_ON_DELETE, REG_ON_UNREGISTER};
        self.meta_event(REG_ON_UNREGISTER, || ids(peer.session, registration));
        if deleted {
            self.meta_event(REG_ON_DELETE, || ids(peer.session, registration));
        }
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
        if uri::is_reserved(procedure) {
            // The router's own procedures (the meta API).
            let reply = super::meta::call(self, peer, procedure, &payload)?;
            let _ = peer.send(&Message::Result {
                request,
                details: Dict::new(),
                payload: reply,
            });
            return Ok(());
        }
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
        if peer.is_gone() {
            return Ok(());
        }
        if !peer.trusted && dealer.calls_in_flight(peer.session) >= self.limits.calls_in_flight {
            return Err(self.limit_reached(Limit::CallsInFlight));
        }
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
