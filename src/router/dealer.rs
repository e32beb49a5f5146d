//! `Dealer`: registrations of one realm and the calls in flight.
//!
//! Invariant: the dealer never waits on a peer. INVOCATION, RESULT, ERROR and INTERRUPT are
//! pushed to outboxes; a caller or callee that cannot take them is cut off by its outbox.
//! Boundary: this is "route to a local callee"; routing a call to another node is a separate
//! seam in `Realm::call`.

use super::peer::Peer;
use super::RouteError;
use crate::outbox::PushError;
use crate::wamp::ids::random_id;
use crate::wamp::message::code;
use crate::wamp::pattern::PatternIndex;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::uris;
use crate::wamp::value::{Dict, Value};
use crate::wamp::{Id, Message, Payload};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokePolicy {
    Single,
    RoundRobin,
    Random,
    First,
    Last,
}

impl InvokePolicy {
    pub fn parse(s: &str) -> Option<InvokePolicy> {
        Some(match s {
            "single" => InvokePolicy::Single,
            "roundrobin" => InvokePolicy::RoundRobin,
            "random" => InvokePolicy::Random,
            "first" => InvokePolicy::First,
            "last" => InvokePolicy::Last,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelMode {
    Skip,
    Kill,
    KillNoWait,
}

impl CancelMode {
    pub fn parse(s: &str) -> Option<CancelMode> {
        Some(match s {
            "skip" => CancelMode::Skip,
            "kill" => CancelMode::Kill,
            "killnowait" => CancelMode::KillNoWait,
            _ => return None,
        })
    }
}

struct Callee {
    peer: Arc<Peer>,
    disclose_caller: bool,
}

pub struct Registration {
    pub id: Id,
    pub uri: String,
    pub policy: MatchPolicy,
    pub invoke: InvokePolicy,
    pub created: std::time::SystemTime,
    callees: Vec<Callee>,
    next: usize,
}

impl Registration {
    /// Whether a client (not a router-internal session) is among the callees.
    pub fn has_client_callee(&self) -> bool {
        self.callees.iter().any(|c| !c.peer.trusted)
    }

    /// The sessions registered as callees, in invocation order.
    pub fn callee_sessions(&self) -> impl Iterator<Item = Id> + '_ {
        self.callees.iter().map(|c| c.peer.session)
    }
}

struct Invocation {
    caller: Arc<Peer>,
    call_request: Id,
    callee: Arc<Peer>,
    receive_progress: bool,
    /// A `kill` cancel is waiting for the callee's answer.
    killing: bool,
    timer: Option<tokio::task::AbortHandle>,
}

/// What the caller asked for in CALL.Options.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallOptions {
    pub receive_progress: bool,
    pub timeout_ms: u64,
    pub disclose_me: bool,
}

#[derive(Default)]
pub struct Dealer {
    index: PatternIndex<Id>,
    registrations: HashMap<Id, Registration>,
    by_session: HashMap<Id, Vec<Id>>,
    /// Keyed by (callee session, INVOCATION request id).
    invocations: HashMap<(Id, Id), Invocation>,
    /// (caller session, CALL request id) → invocation key.
    calls: HashMap<(Id, Id), (Id, Id)>,
    /// Calls in flight per caller session (for the per-session cap).
    in_flight: HashMap<Id, usize>,
}

fn error(uri: &'static str, message: impl Into<String>) -> RouteError {
    RouteError::new(uri, message)
}

fn error_msg(request_type: u64, request: Id, uri: &str, payload: Payload) -> Message {
    Message::Error {
        request_type,
        request,
        details: Dict::new(),
        error: uri.to_owned(),
        payload,
    }
}

impl Dealer {
    /// Registrations `session` holds.
    pub fn registrations_of(&self, session: Id) -> usize {
        self.by_session.get(&session).map_or(0, Vec::len)
    }

    /// Calls `session` has waiting for their result.
    pub fn calls_in_flight(&self, session: Id) -> usize {
        self.in_flight.get(&session).copied().unwrap_or(0)
    }

    pub fn register(
        &mut self,
        peer: &Arc<Peer>,
        uri: &str,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        disclose_caller: bool,
    ) -> Result<(Id, bool), RouteError> {
        if let Some(id) = self.index.get(uri, policy).copied() {
            let Some(reg) = self.registrations.get_mut(&id) else {
                return Err(error(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    "registration index out of step",
                ));
            };
            if reg.callees.iter().any(|c| c.peer.session == peer.session) {
                return Err(error(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    format!("this session has already registered '{uri}'"),
                ));
            }
            if reg.invoke == InvokePolicy::Single || reg.invoke != invoke {
                return Err(error(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    format!(
                        "'{uri}' is already registered with invoke policy '{}' (requested '{}')",
                        reg.invoke.as_str(),
                        invoke.as_str()
                    ),
                ));
            }
            reg.callees.push(Callee {
                peer: peer.clone(),
                disclose_caller,
            });
            self.by_session.entry(peer.session).or_default().push(id);
            return Ok((id, false));
        }
        let id = random_id();
        self.index.insert(uri, policy, id);
        self.registrations.insert(
            id,
            Registration {
                id,
                uri: uri.to_owned(),
                policy,
                invoke,
                created: std::time::SystemTime::now(),
                callees: vec![Callee {
                    peer: peer.clone(),
                    disclose_caller,
                }],
                next: 0,
            },
        );
        self.by_session.entry(peer.session).or_default().push(id);
        Ok((id, true))
    }

    /// Removes the session's callee entry; Ok(true) when that deleted the registration.
    pub fn unregister(&mut self, session: Id, id: Id) -> Result<bool, RouteError> {
        let Some(reg) = self.registrations.get_mut(&id) else {
            return Err(error(
                uris::NO_SUCH_REGISTRATION,
                format!("no registration with id {id}"),
            ));
        };
        let before = reg.callees.len();
        reg.callees.retain(|c| c.peer.session != session);
        if reg.callees.len() == before {
            return Err(error(
                uris::NO_SUCH_REGISTRATION,
                format!("registration {id} does not belong to this session"),
            ));
        }
        if let Some(list) = self.by_session.get_mut(&session) {
            list.retain(|r| *r != id);
        }
        Ok(self.drop_if_empty(id))
    }

    fn drop_if_empty(&mut self, id: Id) -> bool {
        if let Some(reg) = self.registrations.get(&id) {
            if reg.callees.is_empty() {
                self.index.remove(&reg.uri, reg.policy);
                self.registrations.remove(&id);
                return true;
            }
        }
        false
    }

    pub fn get(&self, id: Id) -> Option<&Registration> {
        self.registrations.get(&id)
    }

    /// Every registration, for `wamp.registration.list`.
    pub fn all(&self) -> impl Iterator<Item = &Registration> {
        self.registrations.values()
    }

    /// The registration for exactly (uri, policy).
    pub fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<Id> {
        self.index.get(uri, policy).copied()
    }

    /// The registration a CALL to `procedure` would go to.
    pub fn best_match(&self, procedure: &str) -> Option<Id> {
        self.index.best_match(procedure).map(|(id, _)| *id)
    }

    /// Whether some callee would receive a CALL to `procedure` now.
    pub fn serves(&self, procedure: &str) -> bool {
        self.index.best_match(procedure).is_some()
    }

    pub fn registration_count(&self) -> usize {
        self.registrations.len()
    }

    /// Routes a CALL to one callee. Returns the invocation key, so the realm can arm a timer.
    pub fn call(
        &mut self,
        caller: &Arc<Peer>,
        request: Id,
        opts: CallOptions,
        procedure: &str,
        payload: Payload,
        role_discloses_caller: bool,
    ) -> Result<(Id, Id), RouteError> {
        if self.calls.contains_key(&(caller.session, request)) {
            return Err(error(
                uris::INVALID_ARGUMENT,
                format!("request id {request} is already used by a call in flight"),
            ));
        }
        let Some((reg_id, policy)) = self.index.best_match(procedure).map(|(id, p)| (*id, p))
        else {
            return Err(error(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered procedure '{procedure}'"),
            ));
        };
        let Some(reg) = self.registrations.get_mut(&reg_id) else {
            return Err(error(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered procedure '{procedure}'"),
            ));
        };
        let n = reg.callees.len();
        if n == 0 {
            return Err(error(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered procedure '{procedure}'"),
            ));
        }
        let pick = match reg.invoke {
            InvokePolicy::Single | InvokePolicy::First => 0,
            InvokePolicy::Last => n - 1,
            InvokePolicy::Random => rand::rng().random_range(0..n),
            InvokePolicy::RoundRobin => {
                let i = reg.next % n;
                reg.next = (i + 1) % n;
                i
            }
        };
        let callee = &reg.callees[pick];
        let callee_peer = callee.peer.clone();
        let mut details = Dict::new();
        if policy != MatchPolicy::Exact {
            details.push(("procedure".into(), procedure.into()));
        }
        let receive_progress =
            opts.receive_progress && callee_peer.features.callee_progressive_results;
        if receive_progress {
            details.push(("receive_progress".into(), Value::Bool(true)));
        }
        if opts.disclose_me || callee.disclose_caller || role_discloses_caller {
            details.push(("caller".into(), Value::UInt(caller.session)));
            details.push((
                "caller_authid".into(),
                caller.principal.authid.clone().into(),
            ));
            details.push((
                "caller_authrole".into(),
                caller.principal.authrole.clone().into(),
            ));
        }
        let inv_request = callee_peer.next_request_id();
        let msg = Message::Invocation {
            request: inv_request,
            registration: reg_id,
            details,
            payload,
        };
        if callee_peer.send(&msg).is_err() {
            return Err(error(
                uris::CANCELED,
                "the callee could not take the invocation (its connection is closing)",
            ));
        }
        let key = (callee_peer.session, inv_request);
        self.invocations.insert(
            key,
            Invocation {
                caller: caller.clone(),
                call_request: request,
                callee: callee_peer,
                receive_progress: opts.receive_progress,
                killing: false,
                timer: None,
            },
        );
        self.calls.insert((caller.session, request), key);
        *self.in_flight.entry(caller.session).or_default() += 1;
        Ok(key)
    }

    /// Attaches the timeout timer to a call in flight (so it is stopped when the call ends).
    pub fn set_timer(&mut self, key: (Id, Id), timer: tokio::task::AbortHandle) {
        match self.invocations.get_mut(&key) {
            Some(inv) => inv.timer = Some(timer),
            None => timer.abort(),
        }
    }

    fn finish(&mut self, key: (Id, Id)) -> Option<Invocation> {
        let inv = self.invocations.remove(&key)?;
        self.calls.remove(&(inv.caller.session, inv.call_request));
        if let std::collections::hash_map::Entry::Occupied(mut n) =
            self.in_flight.entry(inv.caller.session)
        {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
        if let Some(t) = &inv.timer {
            t.abort();
        }
        Some(inv)
    }

    /// A YIELD from a callee: forward as RESULT (progressive results keep the call open).
    pub fn yield_(&mut self, callee: Id, request: Id, options: &Dict, payload: Payload) {
        let key = (callee, request);
        let progress = crate::wamp::value::dict_get(options, "progress")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(inv) = self.invocations.get(&key) else {
            return; // canceled, timed out or unknown: discarded as the spec says
        };
        if progress {
            if inv.receive_progress {
                let msg = Message::Result {
                    request: inv.call_request,
                    details: vec![("progress".into(), Value::Bool(true))],
                    payload,
                };
                let _ = inv.caller.send(&msg);
            }
            return;
        }
        if let Some(inv) = self.finish(key) {
            let result = Message::Result {
                request: inv.call_request,
                details: Dict::new(),
                payload,
            };
            if inv.caller.send(&result) == Err(PushError::TooLarge) {
                let _ = inv.caller.send(&error_msg(
                    code::CALL,
                    inv.call_request,
                    uris::PAYLOAD_SIZE_EXCEEDED,
                    Payload::message("the result is larger than the caller's transport accepts"),
                ));
            }
        }
    }

    /// An ERROR for an INVOCATION: forward to the caller.
    pub fn invocation_error(
        &mut self,
        callee: Id,
        request: Id,
        error_uri: String,
        payload: Payload,
    ) {
        if let Some(inv) = self.finish((callee, request)) {
            let _ = inv.caller.send(&error_msg(
                code::CALL,
                inv.call_request,
                &error_uri,
                payload,
            ));
        }
    }

    /// A CANCEL from a caller.
    pub fn cancel(&mut self, caller: Id, request: Id, mode: CancelMode) {
        let Some(key) = self.calls.get(&(caller, request)).copied() else {
            return; // already answered: nothing to cancel
        };
        let Some(inv) = self.invocations.get_mut(&key) else {
            return;
        };
        let mode = if inv.callee.features.callee_call_canceling {
            mode
        } else {
            CancelMode::Skip
        };
        match mode {
            CancelMode::Kill => {
                if !inv.killing {
                    inv.killing = true;
                    let _ = inv.callee.send(&Message::Interrupt {
                        request: key.1,
                        options: vec![("mode".into(), "kill".into())],
                    });
                }
            }
            CancelMode::Skip | CancelMode::KillNoWait => {
                if let Some(inv) = self.finish(key) {
                    let _ = inv.caller.send(&error_msg(
                        code::CALL,
                        inv.call_request,
                        uris::CANCELED,
                        Payload::message("the call was canceled by the caller"),
                    ));
                    if mode == CancelMode::KillNoWait {
                        let _ = inv.callee.send(&Message::Interrupt {
                            request: key.1,
                            options: vec![("mode".into(), "killnowait".into())],
                        });
                    }
                }
            }
        }
    }

    /// The router's call timeout fired: cancel the invocation, answer `wamp.error.timeout`.
    pub fn timeout(&mut self, key: (Id, Id), timeout_ms: u64) {
        if let Some(inv) = self.finish(key) {
            let _ = inv.caller.send(&error_msg(
                code::CALL,
                inv.call_request,
                uris::TIMEOUT,
                Payload::message(format!("the call did not finish within {timeout_ms} ms")),
            ));
            if inv.callee.features.callee_call_canceling {
                let _ = inv.callee.send(&Message::Interrupt {
                    request: key.1,
                    options: vec![
                        ("mode".into(), "killnowait".into()),
                        ("reason".into(), uris::TIMEOUT.into()),
                    ],
                });
            }
        }
    }

    /// A session left: drop its registrations, fail the calls it was serving, interrupt the
    /// invocations it was waiting for. Returns (registration, deleted) for the meta events.
    pub fn remove_session(&mut self, session: Id) -> Vec<(Id, bool)> {
        let mut removed = Vec::new();
        for id in self.by_session.remove(&session).unwrap_or_default() {
            if let Some(reg) = self.registrations.get_mut(&id) {
                reg.callees.retain(|c| c.peer.session != session);
            }
            removed.push((id, self.drop_if_empty(id)));
        }
        let keys: Vec<(Id, Id)> = self
            .invocations
            .iter()
            .filter(|(k, inv)| k.0 == session || inv.caller.session == session)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(inv) = self.finish(key) else {
                continue;
            };
            if key.0 == session {
                let _ = inv.caller.send(&error_msg(
                    code::CALL,
                    inv.call_request,
                    uris::CANCELED,
                    Payload::message("the callee left before answering"),
                ));
            } else if inv.callee.features.callee_call_canceling {
                let _ = inv.callee.send(&Message::Interrupt {
                    request: key.1,
                    options: vec![
                        ("mode".into(), "killnowait".into()),
                        ("reason".into(), "wamp.error.canceled".into()),
                    ],
                });
            }
        }
        removed
    }
}
