//! Calls in a thread: the service keeps one call per thread from its ring to its end (who
//! started it, who answered, when), relays the WebRTC signalling between the two people in it
//! (and nobody else), rings out after the configured timeout, and writes the outcome into the
//! thread as a durable `call` message ("Video call, 4 min", "Missed call", "Call declined").
//!
//! - `call_start(thread)` kwargs {video} → the call (ringing), or busy when the other side is
//!   in another call; a start while the other side's call is ringing answers it (both pressed
//!   "call" at once);
//! - `call_accept(thread, call)`, `call_decline(thread, call)` kwargs {busy?} — the called side;
//! - `call_hangup(thread, call)` — either person in the call (the caller before an answer);
//! - `call_state(thread)` → the thread's call or null (after a reconnect);
//! - `call_resume(thread, call)` kwargs {fresh?} — a person in the call is back on a new session;
//! - `signal(thread, kind, payload)` kwargs {call} — `offer`, `answer`, `candidate`, relayed to
//!   the other person's session only.
//!
//! Events on the thread topic: {type: `call`, event: `ring`|`accept`|`end`|`resume`, call, …}
//! (rings and answers also on the inbox topic, so every staff inbox rings and stops ringing) and
//! {type: `signal`, kind, call, from, from_role, payload} (eligible: the other person only).

use super::{as_dict, fail, kwargs_only, now_ms, Caller, Chat, NO_SUCH_THREAD};
use crate::router::local::CallFailure;
use crate::store::chat::CallRecord;
use crate::wamp::ids::Id;
use crate::wamp::uris;
use crate::wamp::value::{dict_get, Dict, Value};
use crate::wamp::{Payload, Serializer};
use std::sync::Arc;

pub const BUSY: &str = "switchboard.chat.error.call_busy";
pub const NO_SUCH_CALL: &str = "switchboard.chat.error.no_such_call";

/// Signal kinds the relay passes on (the description's type, or an ICE candidate).
const SIGNALS: &[&str] = &["offer", "answer", "candidate"];
/// Largest signal payload (an SDP offer is a few KiB).
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;

/// A person in a call, and the session its signals go to.
#[derive(Clone, Debug)]
pub struct Party {
    authid: String,
    role: String,
    name: Option<String>,
    session: Id,
    /// Since when its session is gone (it may come back with `call_resume`).
    lost_ms: Option<u64>,
}

/// The call of a thread.
#[derive(Debug)]
pub struct CallState {
    id: String,
    thread: u64,
    video: bool,
    caller: Party,
    /// Who answered (none while ringing).
    callee: Option<Party>,
    started_ms: u64,
    answered_ms: Option<u64>,
    /// The ring timeout's task (aborted on the answer or the end).
    ring: Option<tokio::task::AbortHandle>,
}

impl CallState {
    fn party_of(&self, authid: &str) -> Option<&Party> {
        std::iter::once(&self.caller)
            .chain(self.callee.as_ref())
            .find(|p| p.authid == authid)
    }

    fn view(&self, me: &str) -> Value {
        let party = |p: &Party| {
            Value::Dict(vec![
                ("authid".into(), p.authid.clone().into()),
                ("role".into(), p.role.clone().into()),
                (
                    "name".into(),
                    p.name.clone().map(Value::Str).unwrap_or(Value::Null),
                ),
            ])
        };
        Value::Dict(vec![
            ("call".into(), self.id.clone().into()),
            ("thread".into(), Value::UInt(self.thread)),
            ("video".into(), Value::Bool(self.video)),
            (
                "state".into(),
                if self.answered_ms.is_some() {
                    "active"
                } else {
                    "ringing"
                }
                .into(),
            ),
            ("caller".into(), party(&self.caller)),
            (
                "callee".into(),
                self.callee.as_ref().map(party).unwrap_or(Value::Null),
            ),
            ("started_ms".into(), Value::UInt(self.started_ms)),
            (
                "answered_ms".into(),
                self.answered_ms.map(Value::UInt).unwrap_or(Value::Null),
            ),
            (
                "me".into(),
                if self.caller.authid == me {
                    "caller".into()
                } else if self.callee.as_ref().is_some_and(|p| p.authid == me) {
                    "callee".into()
                } else {
                    Value::Null
                },
            ),
        ])
    }
}

/// How a call ended, for its event and its line in the history.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    /// Hung up after the answer (or the connection of one side was lost for good).
    Completed,
    /// Not answered: the ring timed out, or the caller gave up.
    Missed,
    Declined,
    Busy,
}

impl End {
    fn outcome(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Missed => "missed",
            End::Declined => "declined",
            End::Busy => "busy",
        }
    }
}

/// "Video call, 4 min", "Audio call, 35 s", "Missed call", …
fn history_line(video: bool, end: End, duration_ms: u64) -> String {
    let what = if video { "Video call" } else { "Audio call" };
    match end {
        End::Completed => {
            let s = duration_ms / 1000;
            if s < 60 {
                format!("{what}, {s} s")
            } else {
                format!("{what}, {} min", (s + 30) / 60)
            }
        }
        End::Missed => "Missed call".to_owned(),
        End::Declined => "Call declined".to_owned(),
        End::Busy => format!("{what} not answered: busy"),
    }
}

fn thread_arg(p: &Payload, usage: &str) -> Result<u64, CallFailure> {
    p.args
        .as_deref()
        .and_then(|a| a.first())
        .and_then(Value::as_u64)
        .ok_or_else(|| fail(uris::INVALID_ARGUMENT, usage.to_owned()))
}

fn call_arg(p: &Payload, usage: &str) -> Result<String, CallFailure> {
    p.args
        .as_deref()
        .and_then(|a| a.get(1))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .map(str::to_owned)
        .ok_or_else(|| fail(uris::INVALID_ARGUMENT, usage.to_owned()))
}

fn kwarg_bool(p: &Payload, key: &str) -> Option<bool> {
    p.kwargs
        .as_ref()
        .and_then(|k| dict_get(k, key))
        .and_then(Value::as_bool)
}

impl Chat {
    fn staff_side(&self, role: &str) -> bool {
        self.cfg.roles.is_staff(role)
    }

    /// Whether `authid` is in a call other than the one of `thread` (ringing as its caller, or
    /// answered).
    fn in_other_call(&self, authid: &str, thread: u64) -> bool {
        self.calls
            .lock()
            .values()
            .any(|c| c.thread != thread && c.party_of(authid).is_some())
    }

    fn publish_call(&self, thread: u64, event: &str, fields: Dict, to_inbox: bool) {
        let mut kw: Dict = vec![
            ("type".into(), "call".into()),
            ("event".into(), event.into()),
            ("thread".into(), Value::UInt(thread)),
        ];
        kw.extend(fields);
        if to_inbox {
            let _ = self
                .client
                .publish_now(&format!("{}inbox", super::PREFIX), kwargs_only(kw.clone()));
        }
        let _ = self
            .client
            .publish_now(&Self::thread_topic(thread), kwargs_only(kw));
    }

    /// `call_start(thread)` kwargs {video}.
    pub(super) async fn call_start(
        self: &Arc<Self>,
        c: &Caller,
        session: Id,
        p: &Payload,
    ) -> Result<Payload, CallFailure> {
        let id = thread_arg(p, "call_start(thread) kwargs {video}")?;
        let t = self.member_thread(c, id)?;
        // Each call writes a line into the thread: a visitor's calls count as its messages.
        if !self.staff_side(&c.role) {
            self.message_rate.hit(&c.authid).map_err(|wait| {
                fail(
                    super::RATE_LIMITED,
                    format!("too many calls; retry in {wait} s"),
                )
            })?;
        }
        let video = kwarg_bool(p, "video").unwrap_or(true);
        // Both sides pressed "call" at once: the second start answers the first.
        let ringing_from_other_side = self.calls.lock().get(&id).and_then(|call| {
            (call.answered_ms.is_none()
                && self.staff_side(&call.caller.role) != self.staff_side(&c.role))
            .then(|| call.id.clone())
        });
        if let Some(call) = ringing_from_other_side {
            return self.accept(c, session, id, &call);
        }
        if let Some(call) = self.calls.lock().get(&id) {
            return Err(fail(
                BUSY,
                format!("thread {id} already has a call ({})", call.id),
            ));
        }
        // Busy: the visitor is in another call, or (a visitor calling) every staff member
        // online is.
        let busy = if self.staff_side(&c.role) {
            self.in_other_call(&t.visitor, id)
        } else {
            let staff = self.presence.online(|r| self.cfg.roles.is_staff(r));
            !staff.is_empty() && staff.iter().all(|s| self.in_other_call(&s.authid, id))
        };
        let call_id = format!("{id}-{:016x}", rand::random::<u64>());
        if busy {
            self.publish_call(
                id,
                "end",
                vec![
                    ("call".into(), call_id.clone().into()),
                    ("reason".into(), "busy".into()),
                    ("video".into(), Value::Bool(video)),
                ],
                false,
            );
            self.record(id, video, End::Busy, 0).await?;
            return Ok(Payload::args(vec![Value::Dict(vec![
                ("call".into(), call_id.into()),
                ("thread".into(), Value::UInt(id)),
                ("state".into(), "busy".into()),
            ])]));
        }
        let state = CallState {
            id: call_id.clone(),
            thread: id,
            video,
            caller: Party {
                authid: c.authid.clone(),
                role: c.role.clone(),
                name: c.name.clone().or_else(|| {
                    (t.visitor == c.authid)
                        .then(|| t.visitor_name.clone())
                        .flatten()
                }),
                session,
                lost_ms: None,
            },
            callee: None,
            started_ms: now_ms(),
            answered_ms: None,
            ring: None,
        };
        let view = {
            let mut calls = self.calls.lock();
            if calls.contains_key(&id) {
                return Err(fail(BUSY, format!("thread {id} already has a call")));
            }
            let view = state.view(&c.authid);
            calls.insert(id, state);
            view
        };
        // Rings out after the timeout: a missed call.
        let weak = Arc::downgrade(self);
        let ring_for = self.cfg.ring_timeout;
        let cid = call_id.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(ring_for).await;
            if let Some(chat) = weak.upgrade() {
                let _ = chat.end(id, &cid, End::Missed, "timeout", None).await;
            }
        });
        if let Some(s) = self.calls.lock().get_mut(&id).filter(|s| s.id == call_id) {
            s.ring = Some(task.abort_handle());
        }
        let mut fields = as_dict(view.clone());
        fields.retain(|(k, _)| k != "me" && k != "thread");
        fields.push(("from".into(), c.authid.clone().into()));
        fields.push(("from_role".into(), c.role.clone().into()));
        // Staff hear a visitor's call wherever their inbox is.
        self.publish_call(id, "ring", fields, !self.staff_side(&c.role));
        Ok(Payload::args(vec![view]))
    }

    /// Answers the ringing call `call` of thread `id` as `c`.
    fn accept(&self, c: &Caller, session: Id, id: u64, call: &str) -> Result<Payload, CallFailure> {
        let view = {
            let mut calls = self.calls.lock();
            let s = calls
                .get_mut(&id)
                .filter(|s| s.id == call)
                .ok_or_else(|| fail(NO_SUCH_CALL, format!("no call {call} in thread {id}")))?;
            if self.staff_side(&s.caller.role) == self.staff_side(&c.role) {
                return Err(fail(
                    uris::INVALID_ARGUMENT,
                    "a call is answered by the other side",
                ));
            }
            if s.answered_ms.is_some() {
                return Err(fail(BUSY, "the call was already answered"));
            }
            s.answered_ms = Some(now_ms());
            s.callee = Some(Party {
                authid: c.authid.clone(),
                role: c.role.clone(),
                name: c.name.clone(),
                session,
                lost_ms: None,
            });
            if let Some(r) = s.ring.take() {
                r.abort();
            }
            s.view(&c.authid)
        };
        self.publish_call(
            id,
            "accept",
            vec![
                ("call".into(), call.into()),
                ("by".into(), c.authid.clone().into()),
                ("by_role".into(), c.role.clone().into()),
                (
                    "by_name".into(),
                    c.name.clone().map(Value::Str).unwrap_or(Value::Null),
                ),
            ],
            true,
        );
        Ok(Payload::args(vec![view]))
    }

    pub(super) fn call_accept(
        &self,
        c: &Caller,
        session: Id,
        p: &Payload,
    ) -> Result<Payload, CallFailure> {
        let id = thread_arg(p, "call_accept(thread, call)")?;
        let call = call_arg(p, "call_accept(thread, call)")?;
        self.member_thread(c, id)?;
        self.accept(c, session, id, &call)
    }

    pub(super) async fn call_decline(
        &self,
        c: &Caller,
        p: &Payload,
    ) -> Result<Payload, CallFailure> {
        let id = thread_arg(p, "call_decline(thread, call) kwargs {busy}")?;
        let call = call_arg(p, "call_decline(thread, call) kwargs {busy}")?;
        self.member_thread(c, id)?;
        {
            let calls = self.calls.lock();
            let s = calls
                .get(&id)
                .filter(|s| s.id == call)
                .ok_or_else(|| fail(NO_SUCH_CALL, format!("no call {call} in thread {id}")))?;
            if s.answered_ms.is_some()
                || self.staff_side(&s.caller.role) == self.staff_side(&c.role)
            {
                return Err(fail(
                    uris::INVALID_ARGUMENT,
                    "only the called side declines a ringing call (hang up instead)",
                ));
            }
        }
        let busy = kwarg_bool(p, "busy").unwrap_or(false);
        let (end, reason) = if busy {
            (End::Busy, "busy")
        } else {
            (End::Declined, "declined")
        };
        self.end(id, &call, end, reason, Some(c)).await?;
        Ok(Payload::default())
    }

    pub(super) async fn call_hangup(
        &self,
        c: &Caller,
        p: &Payload,
    ) -> Result<Payload, CallFailure> {
        let id = thread_arg(p, "call_hangup(thread, call)")?;
        let call = call_arg(p, "call_hangup(thread, call)")?;
        self.member_thread(c, id)?;
        let answered = {
            let calls = self.calls.lock();
            let s = calls
                .get(&id)
                .filter(|s| s.id == call)
                .ok_or_else(|| fail(NO_SUCH_CALL, format!("no call {call} in thread {id}")))?;
            if s.party_of(&c.authid).is_none() {
                return Err(fail(uris::NOT_AUTHORIZED, "you are not in this call"));
            }
            s.answered_ms.is_some()
        };
        let end = if answered {
            End::Completed
        } else {
            End::Missed
        };
        self.end(id, &call, end, "hangup", Some(c)).await?;
        Ok(Payload::default())
    }

    pub(super) fn call_state(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let id = thread_arg(p, "call_state(thread)")?;
        self.member_thread(c, id)?;
        let view = self
            .calls
            .lock()
            .get(&id)
            .map(|s| s.view(&c.authid))
            .unwrap_or(Value::Null);
        Ok(Payload::args(vec![view]))
    }

    /// `call_resume(thread, call)` kwargs {fresh}: a person in the call is back (a new session
    /// after a reconnect, or a reloaded page with `fresh`): its signals go to the new session,
    /// and the other side is told to negotiate again.
    pub(super) fn call_resume(
        &self,
        c: &Caller,
        session: Id,
        p: &Payload,
    ) -> Result<Payload, CallFailure> {
        let id = thread_arg(p, "call_resume(thread, call) kwargs {fresh}")?;
        let call = call_arg(p, "call_resume(thread, call) kwargs {fresh}")?;
        self.member_thread(c, id)?;
        let view = {
            let mut calls = self.calls.lock();
            let s = calls
                .get_mut(&id)
                .filter(|s| s.id == call)
                .ok_or_else(|| fail(NO_SUCH_CALL, format!("no call {call} in thread {id}")))?;
            let party = if s.caller.authid == c.authid {
                &mut s.caller
            } else {
                s.callee
                    .as_mut()
                    .filter(|p| p.authid == c.authid)
                    .ok_or_else(|| fail(uris::NOT_AUTHORIZED, "you are not in this call"))?
            };
            party.session = session;
            party.lost_ms = None;
            s.view(&c.authid)
        };
        self.publish_call(
            id,
            "resume",
            vec![
                ("call".into(), call.into()),
                ("by".into(), c.authid.clone().into()),
                (
                    "fresh".into(),
                    Value::Bool(kwarg_bool(p, "fresh").unwrap_or(false)),
                ),
            ],
            false,
        );
        Ok(Payload::args(vec![view]))
    }

    /// `signal(thread, kind, payload)` kwargs {call}: relayed to the other person in the call.
    pub(super) fn signal(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let args = p.args.as_deref().unwrap_or(&[]);
        let id = args
            .first()
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "signal(thread, kind, payload)"))?;
        let kind = args.get(1).and_then(Value::as_str).unwrap_or("");
        if !SIGNALS.contains(&kind) {
            return Err(fail(
                uris::INVALID_ARGUMENT,
                format!("signal kind must be one of {}", SIGNALS.join(", ")),
            ));
        }
        let payload = match args.get(2) {
            Some(v @ Value::Dict(_)) => v.clone(),
            _ => {
                return Err(fail(
                    uris::INVALID_ARGUMENT,
                    "the signal payload must be a dict",
                ))
            }
        };
        let size = Serializer::Json
            .encode(&crate::wamp::Message::Yield {
                request: 0,
                options: Dict::new(),
                payload: Payload::args(vec![payload.clone()]),
            })
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SIGNAL_BYTES {
            return Err(fail(
                uris::INVALID_ARGUMENT,
                format!("a signal may carry at most {MAX_SIGNAL_BYTES} bytes"),
            ));
        }
        let call = p
            .kwargs
            .as_ref()
            .and_then(|k| dict_get(k, "call"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .ok_or_else(|| {
                fail(
                    uris::INVALID_ARGUMENT,
                    "signal needs kwargs {call: id} (1-64 characters)",
                )
            })?
            .to_owned();
        self.member_thread(c, id)?;
        self.signal_rate
            .hit(&format!("{}/{call}", c.authid))
            .map_err(|wait| {
                fail(
                    super::RATE_LIMITED,
                    format!("too many signals; retry in {wait} s"),
                )
            })?;
        let to = {
            let calls = self.calls.lock();
            let s = calls
                .get(&id)
                .filter(|s| s.id == call)
                .ok_or_else(|| fail(NO_SUCH_CALL, format!("no call {call} in thread {id}")))?;
            let callee = s
                .callee
                .as_ref()
                .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "the call is not answered yet"))?;
            if s.caller.authid == c.authid {
                callee.session
            } else if callee.authid == c.authid {
                s.caller.session
            } else {
                return Err(fail(uris::NOT_AUTHORIZED, "you are not in this call"));
            }
        };
        let options: Dict = vec![("eligible".into(), Value::List(vec![Value::UInt(to)]))];
        let _ = self.client.publish_with(
            &Self::thread_topic(id),
            &options,
            kwargs_only(vec![
                ("type".into(), "signal".into()),
                ("thread".into(), Value::UInt(id)),
                ("kind".into(), kind.into()),
                ("call".into(), call.into()),
                ("from".into(), c.authid.clone().into()),
                ("from_role".into(), c.role.clone().into()),
                ("payload".into(), payload),
            ]),
        );
        Ok(Payload::default())
    }

    /// Ends call `call` of thread `id` (if it is still that thread's call): tells both sides,
    /// writes the outcome into the thread.
    async fn end(
        &self,
        id: u64,
        call: &str,
        end: End,
        reason: &str,
        by: Option<&Caller>,
    ) -> Result<(), CallFailure> {
        let Some(state) = ({
            let mut calls = self.calls.lock();
            if calls.get(&id).is_some_and(|s| s.id == call) {
                calls.remove(&id)
            } else {
                None
            }
        }) else {
            return Ok(());
        };
        if let Some(r) = &state.ring {
            r.abort();
        }
        let duration = match (end, state.answered_ms) {
            (End::Completed, Some(t)) => now_ms().saturating_sub(t),
            _ => 0,
        };
        self.publish_call(
            id,
            "end",
            vec![
                ("call".into(), call.into()),
                ("reason".into(), reason.into()),
                ("outcome".into(), end.outcome().into()),
                ("duration_ms".into(), Value::UInt(duration)),
                (
                    "by".into(),
                    by.map(|c| Value::Str(c.authid.clone()))
                        .unwrap_or(Value::Null),
                ),
            ],
            // A ring the inboxes heard must stop there too.
            state.answered_ms.is_none() && !self.staff_side(&state.caller.role),
        );
        self.record(id, state.video, end, duration).await
    }

    async fn record(
        &self,
        id: u64,
        video: bool,
        end: End,
        duration_ms: u64,
    ) -> Result<(), CallFailure> {
        if !self.threads.lock().contains_key(&id) {
            return Err(fail(NO_SUCH_THREAD, format!("no thread {id}")));
        }
        self.post_system(
            id,
            &history_line(video, end, duration_ms),
            Some(CallRecord {
                video,
                outcome: end.outcome().to_owned(),
                duration_ms,
            }),
        )
        .await
    }

    /// A session left: a call it was in ends unless that person comes back (`call_resume`)
    /// within the grace period.
    pub(super) fn call_session_left(self: &Arc<Self>, session: Id) {
        let now = now_ms();
        let mut affected = Vec::new();
        for s in self.calls.lock().values_mut() {
            for p in std::iter::once(&mut s.caller).chain(s.callee.as_mut()) {
                if p.session == session {
                    p.lost_ms = Some(now);
                    affected.push((s.thread, s.id.clone()));
                }
            }
        }
        for (thread, call) in affected {
            let weak = Arc::downgrade(self);
            let grace = self.cfg.call_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let Some(chat) = weak.upgrade() else { return };
                let end = {
                    let calls = chat.calls.lock();
                    calls.get(&thread).filter(|s| s.id == call).and_then(|s| {
                        let lost = std::iter::once(&s.caller)
                            .chain(s.callee.as_ref())
                            .any(|p| p.session == session && p.lost_ms.is_some());
                        lost.then_some(if s.answered_ms.is_some() {
                            End::Completed
                        } else {
                            End::Missed
                        })
                    })
                };
                if let Some(end) = end {
                    let _ = chat.end(thread, &call, end, "lost", None).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines() {
        assert_eq!(
            history_line(true, End::Completed, 4 * 60_000 + 5_000),
            "Video call, 4 min"
        );
        assert_eq!(
            history_line(false, End::Completed, 35_000),
            "Audio call, 35 s"
        );
        assert_eq!(history_line(true, End::Missed, 0), "Missed call");
        assert_eq!(history_line(true, End::Declined, 0), "Call declined");
        assert_eq!(
            history_line(false, End::Busy, 0),
            "Audio call not answered: busy"
        );
    }
}
