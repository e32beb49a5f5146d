//! The WAMP meta API of a realm: the procedures the router itself answers (`wamp.session.*`,
//! `wamp.subscription.*`, `wamp.registration.*`) and the shapes of the meta events the realm
//! publishes. Argument and result shapes follow the spec (Advanced Profile, "Session Meta API",
//! "Subscription Meta API", "Registration Meta API", "Testament").
//!
//! Meta procedures are ordinary URIs for permissions: the realm checks `call` on them before
//! they get here.

use super::broker::Subscription;
use super::dealer::Registration;
use super::peer::{Peer, Testament, TestamentScope};
use super::realm::Realm;
use super::RouteError;
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::uris;
use crate::wamp::value::{dict_get, Dict, List, Value};
use crate::wamp::{Id, Payload};
use std::sync::Arc;

pub const ON_JOIN: &str = "wamp.session.on_join";
pub const ON_LEAVE: &str = "wamp.session.on_leave";
pub const SUB_ON_CREATE: &str = "wamp.subscription.on_create";
pub const SUB_ON_SUBSCRIBE: &str = "wamp.subscription.on_subscribe";
pub const SUB_ON_UNSUBSCRIBE: &str = "wamp.subscription.on_unsubscribe";
pub const SUB_ON_DELETE: &str = "wamp.subscription.on_delete";
pub const REG_ON_CREATE: &str = "wamp.registration.on_create";
pub const REG_ON_REGISTER: &str = "wamp.registration.on_register";
pub const REG_ON_UNREGISTER: &str = "wamp.registration.on_unregister";
pub const REG_ON_DELETE: &str = "wamp.registration.on_delete";

/// `[session, id]`, the arguments of most subscription/registration meta events.
pub fn ids(session: Id, id: Id) -> List {
    vec![Value::UInt(session), Value::UInt(id)]
}

fn timestamp(t: std::time::SystemTime) -> Value {
    Value::Str(crate::clock::rfc3339(t))
}

/// A session as `wamp.session.on_join` and `wamp.session.get` describe it.
pub fn session_details(realm: &str, peer: &Peer) -> Value {
    let p = &peer.principal;
    let mut d: Dict = vec![
        ("session".into(), Value::UInt(peer.session)),
        ("realm".into(), realm.into()),
        ("authid".into(), p.authid.clone().into()),
        ("authrole".into(), p.authrole.clone().into()),
        ("authmethod".into(), p.authmethod.clone().into()),
        ("authprovider".into(), p.authprovider.clone().into()),
        ("authextra".into(), Value::Dict(p.authextra.clone())),
        ("serializer".into(), peer.serializer.name().into()),
        ("joined".into(), timestamp(peer.joined_at)),
        ("resumed".into(), Value::Bool(false)),
        ("resumable".into(), Value::Bool(false)),
        // Not in the spec: messages received from / queued for the session since it joined.
        ("messages_in".into(), Value::UInt(peer.messages_in())),
        ("messages_out".into(), Value::UInt(peer.messages_out())),
    ];
    if let Some(t) = &peer.transport {
        // (Peers keep no HTTP headers: those are for authenticators and authorizers only.)
        d.push(("transport".into(), t.to_value()));
    }
    Value::Dict(d)
}

pub fn subscription_details(s: &Subscription) -> Value {
    Value::Dict(vec![
        ("id".into(), Value::UInt(s.id)),
        ("created".into(), timestamp(s.created)),
        ("uri".into(), s.uri.clone().into()),
        ("match".into(), s.policy.as_str().into()),
    ])
}

pub fn registration_details(r: &Registration) -> Value {
    Value::Dict(vec![
        ("id".into(), Value::UInt(r.id)),
        ("created".into(), timestamp(r.created)),
        ("uri".into(), r.uri.clone().into()),
        ("match".into(), r.policy.as_str().into()),
        ("invoke".into(), r.invoke.as_str().into()),
    ])
}

fn bad(uri: &'static str, message: impl Into<String>) -> RouteError {
    RouteError::new(uri, message)
}

/// Positional argument `i`, if present.
fn arg(p: &Payload, i: usize) -> Option<&Value> {
    p.args.as_ref().and_then(|a| a.get(i))
}

fn kwarg<'a>(p: &'a Payload, key: &str) -> Option<&'a Value> {
    p.kwargs.as_ref().and_then(|k| dict_get(k, key))
}

fn id_arg(p: &Payload, i: usize, what: &str) -> Result<Id, RouteError> {
    arg(p, i).and_then(Value::as_u64).ok_or_else(|| {
        bad(
            uris::INVALID_ARGUMENT,
            format!("argument {i} must be the {what} id"),
        )
    })
}

fn str_arg<'a>(p: &'a Payload, i: usize, what: &str) -> Result<&'a str, RouteError> {
    arg(p, i).and_then(Value::as_str).ok_or_else(|| {
        bad(
            uris::INVALID_ARGUMENT,
            format!("argument {i} must be the {what} (a string)"),
        )
    })
}

/// The optional `filter_authroles` list of `count` and `list`.
fn role_filter(p: &Payload) -> Result<Option<Vec<&str>>, RouteError> {
    match arg(p, 0) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    bad(
                        uris::INVALID_ARGUMENT,
                        "filter_authroles must be a list of strings",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(
            uris::INVALID_ARGUMENT,
            "filter_authroles must be a list of strings",
        )),
    }
}

/// `reason` and `message` of the kill procedures.
fn kill_reason(p: &Payload) -> Result<(String, Option<String>), RouteError> {
    let reason = match kwarg(p, "reason") {
        // The spec: "if not provided the reason defaults to wamp.close.normal".
        None | Some(Value::Null) => uris::CLOSE_NORMAL.to_owned(),
        Some(Value::Str(r)) if uri::is_valid(r, MatchPolicy::Exact) => r.clone(),
        Some(_) => {
            return Err(bad(
                uris::INVALID_URI,
                "the kill reason must be a valid URI",
            ))
        }
    };
    let message = match kwarg(p, "message") {
        None | Some(Value::Null) => None,
        Some(Value::Str(m)) => Some(m.clone()),
        Some(_) => {
            return Err(bad(
                uris::INVALID_ARGUMENT,
                "the kill message must be a string",
            ))
        }
    };
    Ok((reason, message))
}

fn one(v: Value) -> Payload {
    Payload::args(vec![v])
}

fn ids_value(ids: impl IntoIterator<Item = Id>) -> Value {
    Value::List(ids.into_iter().map(Value::UInt).collect())
}

fn optional_id(id: Option<Id>) -> Value {
    id.map(Value::UInt).unwrap_or(Value::Null)
}

fn policy_option(p: &Payload, i: usize) -> Result<MatchPolicy, RouteError> {
    let policy = arg(p, i)
        .and_then(Value::as_dict)
        .and_then(|o| dict_get(o, "match"))
        .and_then(Value::as_str);
    match policy {
        None => Ok(MatchPolicy::Exact),
        Some(s) => MatchPolicy::parse(s).ok_or_else(|| {
            bad(
                uris::INVALID_ARGUMENT,
                format!("match must be exact, prefix or wildcard, got '{s}'"),
            )
        }),
    }
}

/// Answers a meta procedure called by `caller`.
pub fn call(
    realm: &Realm,
    caller: &Arc<Peer>,
    procedure: &str,
    p: &Payload,
) -> Result<Payload, RouteError> {
    match procedure {
        "wamp.session.count" | "wamp.session.list" => {
            let filter = role_filter(p)?;
            let sessions: Vec<Id> = realm
                .sessions()
                .iter()
                .filter(|s| {
                    filter
                        .as_ref()
                        .is_none_or(|f| f.contains(&s.principal.authrole.as_str()))
                })
                .map(|s| s.session)
                .collect();
            Ok(if procedure.ends_with("count") {
                one(Value::UInt(sessions.len() as u64))
            } else {
                one(ids_value(sessions))
            })
        }
        "wamp.session.get" => {
            let id = id_arg(p, 0, "session")?;
            match realm.session(id).filter(|s| !s.trusted) {
                Some(s) => Ok(one(session_details(realm.name(), &s))),
                None => Err(no_such_session(id)),
            }
        }
        "wamp.session.kill" => {
            let id = id_arg(p, 0, "session")?;
            let (reason, message) = kill_reason(p)?;
            if id == caller.session {
                return Err(bad(
                    uris::NO_SUCH_SESSION,
                    "a session cannot kill itself (send GOODBYE instead)",
                ));
            }
            match realm.session(id).filter(|s| !s.trusted) {
                Some(_) => {
                    realm.kill(id, &reason, message.as_deref());
                    Ok(Payload::default())
                }
                None => Err(no_such_session(id)),
            }
        }
        "wamp.session.kill_by_authid" | "wamp.session.kill_by_authrole" => {
            let by_role = procedure.ends_with("authrole");
            let who = str_arg(p, 0, if by_role { "authrole" } else { "authid" })?;
            let (reason, message) = kill_reason(p)?;
            let victims: Vec<Id> = realm
                .sessions()
                .iter()
                .filter(|s| s.session != caller.session)
                .filter(|s| {
                    if by_role {
                        s.principal.authrole == who
                    } else {
                        s.principal.authid == who
                    }
                })
                .map(|s| s.session)
                .collect();
            for v in &victims {
                realm.kill(*v, &reason, message.as_deref());
            }
            Ok(if by_role {
                one(Value::UInt(victims.len() as u64))
            } else {
                one(ids_value(victims))
            })
        }
        "wamp.session.kill_all" => {
            let (reason, message) = kill_reason(p)?;
            let victims: Vec<Id> = realm
                .sessions()
                .iter()
                .filter(|s| s.session != caller.session)
                .map(|s| s.session)
                .collect();
            // The spec: closing all sessions generates no session meta or testament events
            // (no subscriber would remain to receive them).
            for v in &victims {
                realm.kill_quietly(*v, &reason, message.as_deref());
            }
            Ok(one(Value::UInt(victims.len() as u64)))
        }
        "wamp.session.add_testament" => add_testament(realm, caller, p),
        "wamp.session.flush_testaments" => {
            let scope = scope(p)?;
            caller.testaments.lock().retain(|t| t.scope != scope);
            Ok(Payload::default())
        }
        "wamp.subscription.list" => {
            let (mut exact, mut prefix, mut wildcard) = (Vec::new(), Vec::new(), Vec::new());
            for s in realm.broker().all().filter(|s| !uri::is_reserved(&s.uri)) {
                match s.policy {
                    MatchPolicy::Exact => exact.push(s.id),
                    MatchPolicy::Prefix => prefix.push(s.id),
                    MatchPolicy::Wildcard => wildcard.push(s.id),
                }
            }
            Ok(one(by_policy(exact, prefix, wildcard)))
        }
        "wamp.subscription.lookup" => {
            let topic = str_arg(p, 0, "topic")?;
            let policy = policy_option(p, 1)?;
            let found = (!uri::is_reserved(topic))
                .then(|| realm.broker().lookup(topic, policy))
                .flatten();
            Ok(one(optional_id(found)))
        }
        "wamp.subscription.match" => {
            let topic = str_arg(p, 0, "topic")?;
            let ids = if uri::is_reserved(topic) {
                Vec::new()
            } else {
                realm.broker().matching(topic)
            };
            Ok(one(if ids.is_empty() {
                Value::Null
            } else {
                ids_value(ids)
            }))
        }
        "wamp.subscription.get"
        | "wamp.subscription.list_subscribers"
        | "wamp.subscription.count_subscribers" => {
            let id = id_arg(p, 0, "subscription")?;
            let broker = realm.broker();
            // Subscriptions to the meta topics are the router's business, as in Crossbar.
            let s = broker
                .get(id)
                .filter(|s| !uri::is_reserved(&s.uri))
                .ok_or_else(|| {
                    bad(
                        uris::NO_SUCH_SUBSCRIPTION,
                        format!("no subscription {id} in this realm"),
                    )
                })?;
            Ok(one(match procedure {
                "wamp.subscription.get" => subscription_details(s),
                "wamp.subscription.list_subscribers" => ids_value(s.subscribers.keys().copied()),
                _ => Value::UInt(s.subscribers.len() as u64),
            }))
        }
        "wamp.subscription.get_events" => get_events(realm, caller, p),
        "wamp.registration.list" => {
            let (mut exact, mut prefix, mut wildcard) = (Vec::new(), Vec::new(), Vec::new());
            for r in realm.dealer().all() {
                match r.policy {
                    MatchPolicy::Exact => exact.push(r.id),
                    MatchPolicy::Prefix => prefix.push(r.id),
                    MatchPolicy::Wildcard => wildcard.push(r.id),
                }
            }
            Ok(one(by_policy(exact, prefix, wildcard)))
        }
        "wamp.registration.lookup" => {
            let procedure = str_arg(p, 0, "procedure")?;
            let policy = policy_option(p, 1)?;
            Ok(one(optional_id(realm.dealer().lookup(procedure, policy))))
        }
        "wamp.registration.match" => {
            let procedure = str_arg(p, 0, "procedure")?;
            Ok(one(optional_id(realm.dealer().best_match(procedure))))
        }
        "wamp.registration.get"
        | "wamp.registration.list_callees"
        | "wamp.registration.count_callees" => {
            let id = id_arg(p, 0, "registration")?;
            let dealer = realm.dealer();
            let r = dealer.get(id).ok_or_else(|| {
                bad(
                    uris::NO_SUCH_REGISTRATION,
                    format!("no registration {id} in this realm"),
                )
            })?;
            Ok(one(match procedure {
                "wamp.registration.get" => registration_details(r),
                "wamp.registration.list_callees" => ids_value(r.callee_sessions()),
                _ => Value::UInt(r.callee_sessions().count() as u64),
            }))
        }
        other => Err(bad(
            uris::NO_SUCH_PROCEDURE,
            format!("the router has no procedure '{other}'"),
        )),
    }
}

fn no_such_session(id: Id) -> RouteError {
    bad(
        uris::NO_SUCH_SESSION,
        format!("no session {id} in this realm"),
    )
}

fn by_policy(exact: Vec<Id>, prefix: Vec<Id>, wildcard: Vec<Id>) -> Value {
    Value::Dict(vec![
        ("exact".into(), ids_value(exact)),
        ("prefix".into(), ids_value(prefix)),
        ("wildcard".into(), ids_value(wildcard)),
    ])
}

fn scope(p: &Payload) -> Result<TestamentScope, RouteError> {
    match kwarg(p, "scope") {
        None | Some(Value::Null) => Ok(TestamentScope::Destroyed),
        Some(Value::Str(s)) if s == "destroyed" => Ok(TestamentScope::Destroyed),
        Some(Value::Str(s)) if s == "detached" => Ok(TestamentScope::Detached),
        Some(_) => Err(bad(
            uris::INVALID_ARGUMENT,
            "scope must be 'destroyed' or 'detached'",
        )),
    }
}

/// Testaments a session may leave behind, at most.
const MAX_TESTAMENTS: usize = 64;

/// `wamp.session.add_testament(topic, args, kwargs, publish_options=, scope=)`.
fn add_testament(realm: &Realm, caller: &Arc<Peer>, p: &Payload) -> Result<Payload, RouteError> {
    let topic = str_arg(p, 0, "topic")?;
    if !uri::is_valid(topic, MatchPolicy::Exact) || uri::is_reserved(topic) {
        return Err(bad(
            uris::INVALID_URI,
            format!("'{topic}' is not a topic a testament can be published to"),
        ));
    }
    if !realm.may_publish_now(caller, topic) {
        return Err(bad(
            uris::NOT_AUTHORIZED,
            format!("session is not authorized to publish to '{topic}'"),
        ));
    }
    let args = match arg(p, 1) {
        None | Some(Value::Null) => None,
        Some(Value::List(l)) => Some(l.clone()),
        Some(_) => return Err(bad(uris::INVALID_ARGUMENT, "args must be a list")),
    };
    let kwargs = match arg(p, 2) {
        None | Some(Value::Null) => None,
        Some(Value::Dict(d)) => Some(d.clone()),
        Some(_) => return Err(bad(uris::INVALID_ARGUMENT, "kwargs must be a dict")),
    };
    let options = match kwarg(p, "publish_options") {
        None | Some(Value::Null) => Dict::new(),
        Some(Value::Dict(d)) => d.clone(),
        Some(_) => {
            return Err(bad(
                uris::INVALID_ARGUMENT,
                "publish_options must be a dict",
            ))
        }
    };
    super::realm::audience_of(0, &options)?;
    let scope = scope(p)?;
    let mut testaments = caller.testaments.lock();
    if testaments.len() >= MAX_TESTAMENTS {
        return Err(bad(
            uris::INVALID_ARGUMENT,
            format!("a session may leave at most {MAX_TESTAMENTS} testaments"),
        ));
    }
    testaments.push(Testament {
        topic: topic.to_owned(),
        payload: Payload { args, kwargs },
        options,
        scope,
    });
    Ok(Payload::default())
}

/// `wamp.subscription.get_events`: Crossbar's positional `(subscription, limit=10)` or the
/// spec's keywords (`limit`, `reverse`, `topic`, `from_time`/`after_time`/`before_time`/
/// `until_time`, `from_publication`/`after_publication`/`before_publication`/
/// `until_publication`). Newest first unless `reverse: false`. The caller must be allowed to
/// subscribe to the subscription's URI.
fn get_events(realm: &Realm, caller: &Arc<Peer>, p: &Payload) -> Result<Payload, RouteError> {
    let id = id_arg(p, 0, "subscription")?;
    let (uri, policy) = {
        let broker = realm.broker();
        let s = broker.get(id).ok_or_else(|| {
            bad(
                uris::NO_SUCH_SUBSCRIPTION,
                format!("no subscription {id} in this realm"),
            )
        })?;
        (s.uri.clone(), s.policy)
    };
    if !realm.may_subscribe_now(caller, &uri) {
        return Err(bad(
            uris::NOT_AUTHORIZED,
            format!("session is not authorized to subscribe to '{uri}'"),
        ));
    }
    let number = |v: Option<&Value>, what: &str| -> Result<Option<u64>, RouteError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                bad(
                    uris::INVALID_ARGUMENT,
                    format!("'{what}' must be a non-negative integer"),
                )
            }),
        }
    };
    let limit = number(arg(p, 1).or_else(|| kwarg(p, "limit")), "limit")?.unwrap_or(10) as usize;
    let reverse = match kwarg(p, "reverse") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(uris::INVALID_ARGUMENT, "'reverse' must be a bool")),
    };
    let topic = match kwarg(p, "topic") {
        None | Some(Value::Null) => None,
        Some(Value::Str(t)) => Some(t.as_str()),
        Some(_) => return Err(bad(uris::INVALID_ARGUMENT, "'topic' must be a string")),
    };
    let time = |key: &str| -> Result<Option<u64>, RouteError> {
        match kwarg(p, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => crate::clock::parse_rfc3339_ms(s).map(Some).ok_or_else(|| {
                bad(
                    uris::INVALID_ARGUMENT,
                    format!("'{key}' must be an RFC 3339 timestamp"),
                )
            }),
            Some(_) => Err(bad(
                uris::INVALID_ARGUMENT,
                format!("'{key}' must be an RFC 3339 timestamp"),
            )),
        }
    };
    let (from_t, after_t, before_t, until_t) = (
        time("from_time")?,
        time("after_time")?,
        time("before_time")?,
        time("until_time")?,
    );
    let publication = |key: &str| number(kwarg(p, key), key);
    let (from_p, after_p, before_p, until_p) = (
        publication("from_publication")?,
        publication("after_publication")?,
        publication("before_publication")?,
        publication("until_publication")?,
    );
    let Some(stored) = realm.stored_events(&uri, policy) else {
        return Err(bad(
            HISTORY_UNAVAILABLE,
            format!("this realm keeps no event history for '{uri}'"),
        ));
    };
    let stored = stored.map_err(|e| {
        tracing::error!(error = %e, "reading event history failed");
        bad(HISTORY_UNAVAILABLE, "the event history cannot be read")
    })?;
    // Publication bounds refer to positions in the (chronological) history.
    let position = |publication: Option<u64>| {
        publication.and_then(|id| stored.iter().position(|e| e.publication == id))
    };
    let (from_i, after_i, before_i, until_i) = (
        position(from_p),
        position(after_p),
        position(before_p),
        position(until_p),
    );
    let mut events: Vec<Value> = stored
        .iter()
        .enumerate()
        .filter(|(_, e)| topic.is_none_or(|t| t == e.topic))
        .filter(|(_, e)| from_t.is_none_or(|t| e.timestamp_ms >= t))
        .filter(|(_, e)| after_t.is_none_or(|t| e.timestamp_ms > t))
        .filter(|(_, e)| before_t.is_none_or(|t| e.timestamp_ms < t))
        .filter(|(_, e)| until_t.is_none_or(|t| e.timestamp_ms <= t))
        .filter(|(i, _)| from_i.is_none_or(|b| *i >= b))
        .filter(|(i, _)| after_i.is_none_or(|b| *i > b))
        .filter(|(i, _)| before_i.is_none_or(|b| *i < b))
        .filter(|(i, _)| until_i.is_none_or(|b| *i <= b))
        .map(|(_, e)| {
            let payload = super::history::decode_payload(&e.payload);
            let mut d: Dict = vec![
                (
                    "timestamp".into(),
                    crate::clock::rfc3339_ms(e.timestamp_ms).into(),
                ),
                ("subscription".into(), Value::UInt(id)),
                ("publication".into(), Value::UInt(e.publication)),
                ("topic".into(), e.topic.clone().into()),
            ];
            d.push((
                "args".into(),
                payload.args.map(Value::List).unwrap_or(Value::List(vec![])),
            ));
            d.push((
                "kwargs".into(),
                payload.kwargs.map(Value::Dict).unwrap_or(Value::Null),
            ));
            Value::Dict(d)
        })
        .collect();
    if reverse {
        events.reverse();
    }
    events.truncate(limit);
    Ok(one(Value::List(events)))
}

/// The realm keeps no history for what was asked (Crossbar's URI for it).
pub const HISTORY_UNAVAILABLE: &str = "wamp.error.history_unavailable";
