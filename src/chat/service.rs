//! The chat service's procedures, its group-commit writer and its presence feed.

use super::access::{ChatPolicy, Threads};
use super::presence::{Change, Presence};
use super::{ChatConfig, PREFIX};
use crate::metrics::{ChatSender, Metrics};
use crate::router::local::{CallFailure, Handler, LocalClient, LocalInvocation};
use crate::router::realm::{Realm, SessionChange};
use crate::router::Router;
use crate::store::chat::{CallRecord, ChatMessage, ChatStore, FileRef, Thread, ThreadStatus};
use crate::wamp::uris;
use crate::wamp::value::{dict_get, Dict, Value};
use crate::wamp::Payload;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub const NO_SUCH_THREAD: &str = "switchboard.chat.error.no_such_thread";
pub const OVERLOADED: &str = "switchboard.chat.error.overloaded";
pub const STORAGE: &str = "switchboard.chat.error.storage";
pub const RATE_LIMITED: &str = "switchboard.chat.error.rate_limited";

/// Writes waiting for the writer, at most (then senders are told to retry).
const QUEUE: usize = 65_536;
const BATCH: usize = 1024;

/// One durable change: a thread record (and maybe a message), then what to publish once it is
/// on disk, in order.
struct Job {
    thread: Thread,
    message: Option<ChatMessage>,
    events: Vec<(String, Payload)>,
    ack: oneshot::Sender<Result<(), String>>,
}

type PendingKey = (u64, String, String);

/// Resolves when a queued change is on disk (or could not be stored).
type Durable = oneshot::Receiver<Result<(), String>>;

pub struct Chat {
    cfg: ChatConfig,
    store: ChatStore,
    client: Arc<LocalClient>,
    realm: Arc<Realm>,
    /// The current record of every thread (seq allocation happens here, under the lock).
    threads: Threads,
    /// Sends numbered but not yet durable, by (thread, sender, client id) → (seq, ts).
    pending: Mutex<HashMap<PendingKey, (u64, u64)>>,
    writer: mpsc::Sender<Job>,
    pub presence: Arc<Presence>,
    next_thread: AtomicU64,
    /// Messages per visitor per minute.
    message_rate: super::rate::RateLimit,
    /// New threads per client address per hour.
    thread_rate: super::rate::RateLimit,
    /// Signals per member per 10 s.
    signal_rate: super::rate::RateLimit,
    /// The call of each thread that has one, by thread id.
    calls: Mutex<HashMap<u64, calls::CallState>>,
    /// STUN/TURN settings for `ice_servers`.
    router_calls: crate::calls::CallsConfig,
    /// Email to staff (offline messages), when configured.
    mailer: Option<super::email::Mailer>,
    /// The router's counters (messages sent and acknowledged).
    metrics: Arc<Metrics>,
    /// Attachments (shared with the HTTP side, which takes uploads and serves downloads).
    pub files: Arc<super::files::Files>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fail(uri: &str, message: impl Into<String>) -> CallFailure {
    CallFailure::new(uri, message)
}

fn kwargs_only(d: Dict) -> Payload {
    Payload {
        args: Some(Vec::new()),
        kwargs: Some(d),
    }
}

/// A message as members see it; an attachment carries a download link signed for an hour.
fn message_value(m: &ChatMessage, files: &super::files::Files) -> Value {
    let file = match &m.file {
        None => Value::Null,
        Some(f) => Value::Dict(vec![
            ("id".into(), Value::UInt(f.id)),
            ("name".into(), f.name.clone().into()),
            ("content_type".into(), f.content_type.clone().into()),
            ("size".into(), Value::UInt(f.size)),
            (
                "inline".into(),
                Value::Bool(super::files::is_inline(&f.content_type)),
            ),
            ("url".into(), files.link(m.thread, f.id).into()),
        ]),
    };
    Value::Dict(vec![
        ("type".into(), "message".into()),
        ("thread".into(), Value::UInt(m.thread)),
        ("seq".into(), Value::UInt(m.seq)),
        ("ts".into(), crate::clock::rfc3339_ms(m.ts_ms).into()),
        ("ts_ms".into(), Value::UInt(m.ts_ms)),
        ("sender".into(), m.sender.clone().into()),
        ("sender_role".into(), m.sender_role.clone().into()),
        (
            "sender_name".into(),
            m.sender_name.clone().map(Value::Str).unwrap_or(Value::Null),
        ),
        ("text".into(), m.text.clone().into()),
        (
            "client_id".into(),
            m.client_id.clone().map(Value::Str).unwrap_or(Value::Null),
        ),
        // What the UIs render: a person's text, a note of the service, or a call's outcome.
        (
            "kind".into(),
            if m.call.is_some() {
                "call"
            } else if m.sender_role == SYSTEM_ROLE && m.sender == SYSTEM_AUTHID {
                "system"
            } else {
                "text"
            }
            .into(),
        ),
        (
            "call".into(),
            m.call
                .as_ref()
                .map(|c| {
                    Value::Dict(vec![
                        ("video".into(), Value::Bool(c.video)),
                        ("outcome".into(), c.outcome.clone().into()),
                        ("duration_ms".into(), Value::UInt(c.duration_ms)),
                    ])
                })
                .unwrap_or(Value::Null),
        ),
        ("file".into(), file),
    ])
}

/// The authid and role of the service's own messages.
const SYSTEM_AUTHID: &str = "switchboard";
const SYSTEM_ROLE: &str = "system";

fn as_dict(v: Value) -> Dict {
    match v {
        Value::Dict(d) => d,
        _ => Dict::new(),
    }
}

mod calls;

/// Who is calling.
struct Caller {
    /// The caller's session (none for the service's own messages: 0).
    session: crate::wamp::ids::Id,
    authid: String,
    role: String,
    name: Option<String>,
    /// The client's address (none for router-internal or Unix-socket sessions).
    addr: Option<std::net::IpAddr>,
}

impl Chat {
    fn thread_topic(id: u64) -> String {
        format!("{PREFIX}thread.{id}")
    }

    fn is_staff(&self, c: &Caller) -> bool {
        self.cfg.roles.is_staff(&c.role)
    }

    fn caller(&self, inv: &LocalInvocation) -> Result<Caller, CallFailure> {
        let (session, authid, role) = inv
            .caller()
            .ok_or_else(|| fail(uris::NOT_AUTHORIZED, "the caller is not identified"))?;
        let peer = self.realm.session(session);
        let name = peer.as_ref().and_then(|p| {
            dict_get(&p.principal.authextra, "name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let addr = peer.as_ref().and_then(|p| p.transport.as_ref()?.ip());
        Ok(Caller {
            session,
            authid: authid.to_owned(),
            role: role.to_owned(),
            name,
            addr,
        })
    }

    /// The thread, if the caller may use it.
    fn member_thread(&self, c: &Caller, id: u64) -> Result<Thread, CallFailure> {
        let t = self
            .threads
            .lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| fail(NO_SUCH_THREAD, format!("no thread {id}")))?;
        if self.is_staff(c) || t.visitor == c.authid {
            Ok(t)
        } else {
            // The same answer as for a thread that does not exist: nothing leaks.
            Err(fail(NO_SUCH_THREAD, format!("no thread {id}")))
        }
    }

    /// Unread messages for `reader` after `read`: what others sent (at most the last 1,000
    /// messages are looked at).
    fn unread(&self, t: &Thread, reader: &str, read: u64) -> u64 {
        if t.last_seq <= read {
            return 0;
        }
        let from = read.max(t.last_seq.saturating_sub(1000)) + 1;
        self.store
            .messages(t.id, from..=t.last_seq, 1000, false)
            .map(|ms| ms.iter().filter(|m| m.sender != reader).count() as u64)
            .unwrap_or(0)
    }

    fn thread_summary(&self, t: &Thread, reader: &str) -> Value {
        let reads = self.store.reads_of(t.id).unwrap_or_default();
        let read = reads
            .iter()
            .find(|(m, _)| m == reader)
            .map(|(_, s)| *s)
            .unwrap_or(0);
        // What the other side has read: for the visitor, the furthest any staff member got;
        // for staff, the visitor's.
        let others_read = reads
            .iter()
            .filter(|(m, _)| m != reader && (reader == t.visitor || *m == t.visitor))
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        Value::Dict(vec![
            ("thread".into(), Value::UInt(t.id)),
            ("topic".into(), Self::thread_topic(t.id).into()),
            (
                "status".into(),
                match t.status {
                    ThreadStatus::Open => "open",
                    ThreadStatus::Resolved => "resolved",
                }
                .into(),
            ),
            ("visitor".into(), t.visitor.clone().into()),
            (
                "visitor_name".into(),
                t.visitor_name
                    .clone()
                    .map(Value::Str)
                    .unwrap_or(Value::Null),
            ),
            (
                "visitor_online".into(),
                Value::Bool(self.presence.is_online(&t.visitor)),
            ),
            (
                "assignee".into(),
                t.assignee.clone().map(Value::Str).unwrap_or(Value::Null),
            ),
            ("last_seq".into(), Value::UInt(t.last_seq)),
            (
                "last_text".into(),
                self.store
                    .messages(t.id, t.last_seq.max(1)..=t.last_seq.max(1), 1, false)
                    .ok()
                    .and_then(|m| m.into_iter().next())
                    .map(|m| Value::Str(m.text.chars().take(200).collect()))
                    .unwrap_or(Value::Null),
            ),
            ("last_ts_ms".into(), Value::UInt(t.last_ms)),
            ("read".into(), Value::UInt(read)),
            ("others_read".into(), Value::UInt(others_read)),
            ("unread".into(), Value::UInt(self.unread(t, reader, read))),
            ("created_ms".into(), Value::UInt(t.created_ms)),
        ])
    }

    /// A thread's summary for everyone on the inbox topic: without the per-reader fields
    /// (`read`, `unread`, `others_read`), which only `threads()` can give for its caller.
    fn public_summary(&self, t: &Thread) -> Value {
        match self.thread_summary(t, "") {
            Value::Dict(mut d) => {
                d.retain(|(k, _)| !matches!(k.as_str(), "read" | "unread" | "others_read"));
                Value::Dict(d)
            }
            other => other,
        }
    }

    /// Queues a durable change; resolves once it is on disk (and its events published).
    fn commit(
        &self,
        thread: Thread,
        message: Option<ChatMessage>,
        events: Vec<(String, Payload)>,
    ) -> Result<Durable, CallFailure> {
        let (ack, done) = oneshot::channel();
        self.writer
            .try_send(Job {
                thread,
                message,
                events,
                ack,
            })
            .map_err(|_| fail(OVERLOADED, "the chat service is overloaded; retry shortly"))?;
        Ok(done)
    }

    async fn durable(done: Durable) -> Result<(), CallFailure> {
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(fail(STORAGE, format!("could not store: {e}"))),
            Err(_) => Err(fail(STORAGE, "the chat writer stopped")),
        }
    }

    /// The visitor's latest thread, created (and announced to the inbox) if it has none.
    async fn ensure_thread(&self, c: &Caller, p: &Payload) -> Result<Thread, CallFailure> {
        if self.is_staff(c) {
            return Err(fail(
                uris::INVALID_ARGUMENT,
                "staff answer threads; visitors open them",
            ));
        }
        let name = p
            .kwargs
            .as_ref()
            .and_then(|k| dict_get(k, "name"))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(100).collect::<String>())
            .or_else(|| c.name.clone());
        let existing = {
            let threads = self.threads.lock();
            threads
                .values()
                .filter(|t| t.visitor == c.authid)
                .max_by_key(|t| t.id)
                .cloned()
        };
        let t = match existing {
            Some(t) => t,
            None => {
                if let Some(ip) = c.addr.filter(|a| !a.is_loopback()) {
                    self.thread_rate.hit(&ip.to_string()).map_err(|wait| {
                        fail(
                            RATE_LIMITED,
                            format!(
                                "too many new conversations from this address; retry in {wait} s"
                            ),
                        )
                    })?;
                }
                let t = Thread {
                    id: self.next_thread.fetch_add(1, Ordering::Relaxed),
                    created_ms: now_ms(),
                    visitor: c.authid.clone(),
                    visitor_name: name,
                    status: ThreadStatus::Open,
                    assignee: None,
                    last_seq: 0,
                    last_ms: 0,
                };
                self.threads.lock().insert(t.id, t.clone());
                let note = kwargs_only(as_dict(Value::Dict(vec![
                    ("type".into(), "thread".into()),
                    ("thread".into(), self.public_summary(&t)),
                ])));
                let done = self.commit(t.clone(), None, vec![(format!("{PREFIX}inbox"), note)])?;
                Self::durable(done).await?;
                t
            }
        };
        Ok(t)
    }

    async fn open(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let t = self.ensure_thread(c, p).await?;
        Ok(Payload::args(vec![self.thread_summary(&t, &c.authid)]))
    }

    async fn send(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let args = p.args.as_deref().unwrap_or(&[]);
        let id = args.first().and_then(Value::as_u64).ok_or_else(|| {
            fail(
                uris::INVALID_ARGUMENT,
                "send(thread, text): thread id missing",
            )
        })?;
        let text = args
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "send(thread, text): text missing"))?;
        let file_id = match p.kwargs.as_ref().and_then(|k| dict_get(k, "file")) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                fail(
                    uris::INVALID_ARGUMENT,
                    "file must be the id that upload() returned",
                )
            })?),
        };
        let chars = text.chars().count();
        if text.trim().is_empty() && file_id.is_none() {
            return Err(fail(uris::INVALID_ARGUMENT, "the message is empty"));
        }
        if chars > self.cfg.max_text {
            return Err(fail(
                uris::INVALID_ARGUMENT,
                format!(
                    "the message has {chars} characters; at most {} are allowed",
                    self.cfg.max_text
                ),
            ));
        }
        let client_id = match p.kwargs.as_ref().and_then(|k| dict_get(k, "client_id")) {
            None | Some(Value::Null) => None,
            Some(Value::Str(s)) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
            Some(_) => {
                return Err(fail(
                    uris::INVALID_ARGUMENT,
                    "client_id must be a string of 1 to 128 bytes",
                ))
            }
        };
        self.member_thread(c, id)?;
        if !self.is_staff(c) {
            self.message_rate.hit(&c.authid).map_err(|wait| {
                fail(
                    RATE_LIMITED,
                    format!("too many messages; retry in {wait} s"),
                )
            })?;
        }
        let answer = |seq: u64, ts: u64| {
            Payload::args(vec![Value::Dict(vec![
                ("thread".into(), Value::UInt(id)),
                ("seq".into(), Value::UInt(seq)),
                ("ts".into(), crate::clock::rfc3339_ms(ts).into()),
                ("ts_ms".into(), Value::UInt(ts)),
            ])])
        };
        // A retry of a send we have seen: the first result, no second message.
        if let Some(cid) = &client_id {
            let key = (id, c.authid.clone(), cid.clone());
            if let Some((seq, ts)) = self.pending.lock().get(&key).copied() {
                return Ok(answer(seq, ts));
            }
            if let Ok(Some(m)) = self.store.deduplicated(id, &c.authid, cid) {
                return Ok(answer(m.seq, m.ts_ms));
            }
        }
        let file = match file_id {
            None => None,
            Some(f) => Some(
                self.files
                    .uploaded_by(id, f, &c.authid)
                    .map_err(|e| fail(STORAGE, e))?
                    .ok_or_else(|| {
                        fail(
                            uris::INVALID_ARGUMENT,
                            format!("no file {f} uploaded by you in thread {id}"),
                        )
                    })?,
            ),
        };
        let (done, seq, ts) = self.append(id, c, text, client_id.clone(), None, file)?;
        self.metrics.chat_sent(self.sender(c));
        let result = Self::durable(done).await;
        if let Some(cid) = client_id {
            self.pending.lock().remove(&(id, c.authid.clone(), cid));
        }
        result?;
        self.metrics.chat_acknowledged(self.sender(c));
        Ok(answer(seq, ts))
    }

    /// Numbers a message from `c` in thread `id` and queues it for the group commit (the
    /// receiver resolves once it is durable). A visitor writing into a resolved thread reopens
    /// it.
    fn append(
        &self,
        id: u64,
        c: &Caller,
        text: &str,
        client_id: Option<String>,
        call: Option<CallRecord>,
        file: Option<FileRef>,
    ) -> Result<(Durable, u64, u64), CallFailure> {
        let mut threads = self.threads.lock();
        let t = threads
            .get_mut(&id)
            .ok_or_else(|| fail(NO_SUCH_THREAD, format!("no thread {id}")))?;
        let ts = now_ms().max(t.last_ms);
        let m = ChatMessage {
            thread: id,
            seq: t.last_seq + 1,
            ts_ms: ts,
            sender: c.authid.clone(),
            sender_role: c.role.clone(),
            sender_name: c.name.clone().or_else(|| {
                (t.visitor == c.authid)
                    .then(|| t.visitor_name.clone())
                    .flatten()
            }),
            text: text.to_owned(),
            client_id: client_id.clone(),
            call,
            file,
        };
        let mut next = t.clone();
        next.last_seq = m.seq;
        next.last_ms = ts;
        let mut events = vec![
            (
                Self::thread_topic(id),
                kwargs_only(as_dict(message_value(&m, &self.files))),
            ),
            (
                format!("{PREFIX}inbox"),
                kwargs_only(as_dict(message_value(&m, &self.files))),
            ),
        ];
        if next.status == ThreadStatus::Resolved && next.visitor == c.authid {
            next.status = ThreadStatus::Open;
            events.extend(self.status_events(&next));
        }
        let done = self.commit(next.clone(), Some(m.clone()), events)?;
        *t = next;
        if let Some(cid) = client_id {
            self.pending
                .lock()
                .insert((id, c.authid.clone(), cid), (m.seq, ts));
        }
        Ok((done, m.seq, ts))
    }

    /// `leave_message(text)` kwargs {email, name?}: a visitor leaves a message while no staff
    /// member is online; it is stored in the visitor's thread like any message, followed by a
    /// note with the address to answer, and emailed to staff when email is configured.
    async fn leave_message(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        if c.role != self.cfg.roles.visitor {
            return Err(fail(uris::NOT_AUTHORIZED, "only visitors leave messages"));
        }
        let text = p
            .args
            .as_deref()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.chars().count() <= self.cfg.max_text)
            .ok_or_else(|| {
                fail(
                    uris::INVALID_ARGUMENT,
                    format!("leave_message(text): 1 to {} characters", self.cfg.max_text),
                )
            })?
            .to_owned();
        let email = p
            .kwargs
            .as_ref()
            .and_then(|k| dict_get(k, "email"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|e| plausible_email(e))
            .ok_or_else(|| {
                fail(
                    uris::INVALID_ARGUMENT,
                    "leave_message needs kwargs {email: a valid address}",
                )
            })?
            .to_owned();
        self.message_rate.hit(&c.authid).map_err(|wait| {
            fail(
                RATE_LIMITED,
                format!("too many messages; retry in {wait} s"),
            )
        })?;
        let client_id = p
            .kwargs
            .as_ref()
            .and_then(|k| dict_get(k, "client_id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(str::to_owned);
        let t = self.ensure_thread(c, p).await?;
        // A retry (same client_id) finds the first result: nothing is stored or emailed twice.
        if let Some(cid) = &client_id {
            let seen = self
                .pending
                .lock()
                .get(&(t.id, c.authid.clone(), cid.clone()))
                .map(|(seq, _)| *seq)
                .or_else(|| {
                    self.store
                        .deduplicated(t.id, &c.authid, cid)
                        .ok()
                        .flatten()
                        .map(|m| m.seq)
                });
            if let Some(seq) = seen {
                return Ok(Payload::args(vec![Value::Dict(vec![
                    ("thread".into(), Value::UInt(t.id)),
                    ("seq".into(), Value::UInt(seq)),
                    ("duplicate".into(), Value::Bool(true)),
                ])]));
            }
        }
        let (done, seq, _) = self.append(t.id, c, &text, client_id.clone(), None, None)?;
        let stored = Self::durable(done).await;
        if let Some(cid) = client_id {
            self.pending.lock().remove(&(t.id, c.authid.clone(), cid));
        }
        stored?;
        self.post_system(
            t.id,
            &format!("Left while no one was online; answer by email to {email}"),
            None,
        )
        .await?;
        let who = t
            .visitor_name
            .clone()
            .or_else(|| c.name.clone())
            .unwrap_or_else(|| c.authid.clone());
        let emailed = self.mailer.as_ref().is_some_and(|m| {
            m.send(super::email::Notice {
                subject: format!("Chat message from {who}"),
                body: format!(
                    "{who} <{email}> left a message while no one was online:\n\n{text}\n\nConversation {} in the staff inbox; reply to this email to answer by email.\n",
                    t.id
                ),
                reply_to: Some(email.clone()),
            })
        });
        Ok(Payload::args(vec![Value::Dict(vec![
            ("thread".into(), Value::UInt(t.id)),
            ("seq".into(), Value::UInt(seq)),
            ("emailed".into(), Value::Bool(emailed)),
        ])]))
    }

    /// A message from the service itself (call outcomes), numbered like any other.
    async fn post_system(
        &self,
        id: u64,
        text: &str,
        call: Option<CallRecord>,
    ) -> Result<(), CallFailure> {
        let me = Caller {
            session: 0,
            authid: SYSTEM_AUTHID.into(),
            role: SYSTEM_ROLE.into(),
            name: None,
            addr: None,
        };
        let (done, _, _) = self.append(id, &me, text, None, call, None)?;
        Self::durable(done).await
    }

    /// `ice_servers()`: what a browser passes as `RTCConfiguration.iceServers` — the STUN URIs,
    /// and TURN with time-limited REST credentials when a TURN secret is configured.
    fn ice_servers(&self, c: &Caller) -> Payload {
        let calls = &self.router_calls;
        let (stun, turn): (Vec<&String>, Vec<&String>) = calls
            .ice_uris
            .iter()
            .partition(|u| u.starts_with("stun:") || u.starts_with("stuns:"));
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(Value::Dict(vec![(
                "urls".into(),
                Value::List(stun.into_iter().map(|u| u.clone().into()).collect()),
            )]));
        }
        if let (false, Some(secret)) = (turn.is_empty(), &calls.turn_secret) {
            let expiry = now_ms() / 1000 + calls.credential_ttl;
            let (username, credential) =
                crate::calls::credentials::issue(&secret.0, &c.authid, expiry);
            servers.push(Value::Dict(vec![
                (
                    "urls".into(),
                    Value::List(turn.into_iter().map(|u| u.clone().into()).collect()),
                ),
                ("username".into(), username.into()),
                ("credential".into(), credential.into()),
            ]));
        }
        Payload::args(vec![Value::List(servers)])
    }

    fn sender(&self, c: &Caller) -> ChatSender {
        if self.is_staff(c) {
            ChatSender::Staff
        } else {
            ChatSender::Visitor
        }
    }

    fn history(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let id = p
            .args
            .as_deref()
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "history(thread): thread id missing"))?;
        let t = self.member_thread(c, id)?;
        let kw = |key: &str| {
            p.kwargs
                .as_ref()
                .and_then(|k| dict_get(k, key))
                .and_then(Value::as_u64)
        };
        let limit = kw("limit").unwrap_or(50).clamp(1, 500) as usize;
        let found = match (kw("after"), kw("before")) {
            (Some(after), _) => {
                self.store
                    .messages(id, after + 1..=t.last_seq.max(after + 1), limit, false)
            }
            (None, Some(before)) if before > 1 => {
                self.store.messages(id, 1..=before - 1, limit, true)
            }
            (None, Some(_)) => Ok(Vec::new()),
            (None, None) => self.store.messages(id, 1..=t.last_seq.max(1), limit, true),
        }
        .map_err(|e| fail(STORAGE, e.to_string()))?;
        Ok(Payload::args(vec![Value::List(
            found
                .iter()
                .map(|m| message_value(m, &self.files))
                .collect(),
        )]))
    }

    async fn read(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let args = p.args.as_deref().unwrap_or(&[]);
        let (Some(id), Some(seq)) = (
            args.first().and_then(Value::as_u64),
            args.get(1).and_then(Value::as_u64),
        ) else {
            return Err(fail(uris::INVALID_ARGUMENT, "read(thread, seq)"));
        };
        let t = self.member_thread(c, id)?;
        let seq = seq.min(t.last_seq);
        self.store
            .set_read(id, &c.authid, seq)
            .map_err(|e| fail(STORAGE, e.to_string()))?;
        let _ = self.client.publish_now(
            &Self::thread_topic(id),
            kwargs_only(vec![
                ("type".into(), "read".into()),
                ("thread".into(), Value::UInt(id)),
                ("member".into(), c.authid.clone().into()),
                ("seq".into(), Value::UInt(seq)),
            ]),
        );
        Ok(Payload::default())
    }

    fn typing(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let id = p
            .args
            .as_deref()
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "typing(thread)"))?;
        self.member_thread(c, id)?;
        let _ = self.client.publish_now(
            &Self::thread_topic(id),
            kwargs_only(vec![
                ("type".into(), "typing".into()),
                ("thread".into(), Value::UInt(id)),
                ("member".into(), c.authid.clone().into()),
                (
                    "name".into(),
                    c.name.clone().map(Value::Str).unwrap_or(Value::Null),
                ),
            ]),
        );
        Ok(Payload::default())
    }

    /// A thread's status or assignee changed: the inbox gets the summary, the thread's members
    /// a `status` event.
    fn status_events(&self, t: &Thread) -> Vec<(String, Payload)> {
        vec![
            (
                format!("{PREFIX}inbox"),
                kwargs_only(vec![
                    ("type".into(), "thread".into()),
                    ("thread".into(), self.public_summary(t)),
                ]),
            ),
            (
                Self::thread_topic(t.id),
                kwargs_only(vec![
                    ("type".into(), "status".into()),
                    ("thread".into(), Value::UInt(t.id)),
                    (
                        "status".into(),
                        match t.status {
                            ThreadStatus::Open => "open",
                            ThreadStatus::Resolved => "resolved",
                        }
                        .into(),
                    ),
                    (
                        "assignee".into(),
                        t.assignee.clone().map(Value::Str).unwrap_or(Value::Null),
                    ),
                ]),
            ),
        ]
    }

    fn list(&self, c: &Caller) -> Payload {
        let staff = self.is_staff(c);
        let mut threads: Vec<Thread> = self
            .threads
            .lock()
            .values()
            .filter(|t| staff || t.visitor == c.authid)
            .cloned()
            .collect();
        threads.sort_by_key(|t| std::cmp::Reverse(t.last_ms.max(t.created_ms)));
        Payload::args(vec![Value::List(
            threads
                .iter()
                .map(|t| self.thread_summary(t, &c.authid))
                .collect(),
        )])
    }

    async fn staff_update(
        &self,
        c: &Caller,
        p: &Payload,
        change: impl FnOnce(&mut Thread, &Payload) -> Result<(), CallFailure>,
    ) -> Result<Payload, CallFailure> {
        if !self.is_staff(c) {
            return Err(fail(uris::NOT_AUTHORIZED, "only staff may do this"));
        }
        let id = p
            .args
            .as_deref()
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "thread id missing"))?;
        let (next, done) = {
            let mut threads = self.threads.lock();
            let t = threads
                .get_mut(&id)
                .ok_or_else(|| fail(NO_SUCH_THREAD, format!("no thread {id}")))?;
            let mut next = t.clone();
            change(&mut next, p)?;
            let done = self.commit(next.clone(), None, self.status_events(&next))?;
            *t = next.clone();
            (next, done)
        };
        Self::durable(done).await?;
        Ok(Payload::args(vec![self.thread_summary(&next, &c.authid)]))
    }

    fn presence_view(&self, c: &Caller) -> Payload {
        let staff_online = !self
            .presence
            .online(|r| self.cfg.roles.is_staff(r))
            .is_empty();
        if !self.is_staff(c) {
            return Payload::args(vec![Value::Dict(vec![(
                "staff_online".into(),
                Value::Bool(staff_online),
            )])]);
        }
        let people = |pred: &dyn Fn(&str) -> bool| -> Value {
            Value::List(
                self.presence
                    .online(pred)
                    .into_iter()
                    .map(|p| {
                        let (url, title) = p.page.unwrap_or_default();
                        Value::Dict(vec![
                            ("authid".into(), p.authid.into()),
                            ("role".into(), p.role.into()),
                            ("sessions".into(), Value::UInt(p.sessions as u64)),
                            ("page_url".into(), url.into()),
                            ("page_title".into(), title.into()),
                        ])
                    })
                    .collect(),
            )
        };
        let visitor_role = self.cfg.roles.visitor.clone();
        Payload::args(vec![Value::Dict(vec![
            ("staff_online".into(), Value::Bool(staff_online)),
            ("visitors".into(), people(&|r| r == visitor_role)),
            ("staff".into(), people(&|r| self.cfg.roles.is_staff(r))),
        ])])
    }

    async fn dispatch(
        self: &Arc<Self>,
        name: &str,
        inv: LocalInvocation,
    ) -> Result<Payload, CallFailure> {
        let c = self.caller(&inv)?;
        let p = &inv.payload;
        match name {
            "open" => self.open(&c, p).await,
            "send" => self.send(&c, p).await,
            "history" => self.history(&c, p),
            "read" => self.read(&c, p).await,
            "typing" => self.typing(&c, p),
            "threads" => Ok(self.list(&c)),
            "resolve" => {
                self.staff_update(&c, p, |t, _| {
                    t.status = ThreadStatus::Resolved;
                    Ok(())
                })
                .await
            }
            "reopen" => {
                self.staff_update(&c, p, |t, _| {
                    t.status = ThreadStatus::Open;
                    Ok(())
                })
                .await
            }
            "assign" => {
                self.staff_update(&c, p, |t, p| {
                    // A name assigns, null unassigns.
                    t.assignee = match p.args.as_deref().and_then(|a| a.get(1)) {
                        Some(Value::Str(who)) if !who.is_empty() => Some(who.clone()),
                        Some(Value::Null) => None,
                        _ => {
                            return Err(fail(
                                uris::INVALID_ARGUMENT,
                                "assign(thread, authid or null)",
                            ))
                        }
                    };
                    Ok(())
                })
                .await
            }
            "page" => {
                let args = p.args.as_deref().unwrap_or(&[]);
                let text = |i: usize| {
                    args.get(i)
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(500).collect::<String>())
                        .unwrap_or_default()
                };
                let (url, title) = (text(0), text(1));
                self.presence
                    .set_page(&c.authid, url.clone(), title.clone());
                let _ = self.client.publish_now(
                    &format!("{PREFIX}presence"),
                    kwargs_only(vec![
                        ("authid".into(), c.authid.clone().into()),
                        ("role".into(), c.role.clone().into()),
                        ("online".into(), Value::Bool(true)),
                        ("page_url".into(), url.into()),
                        ("page_title".into(), title.into()),
                    ]),
                );
                Ok(Payload::default())
            }
            "presence" => Ok(self.presence_view(&c)),
            "search" => self.search(&c, p),
            "signal" => self.signal(&c, p),
            "call_start" => self.call_start(&c, c.session, p).await,
            "call_accept" => self.call_accept(&c, c.session, p),
            "call_decline" => self.call_decline(&c, p).await,
            "call_hangup" => self.call_hangup(&c, p).await,
            "call_state" => self.call_state(&c, p),
            "call_resume" => self.call_resume(&c, c.session, p),
            "leave_message" => self.leave_message(&c, p).await,
            "ice_servers" => {
                if self.is_staff(&c) || c.role == self.cfg.roles.visitor {
                    Ok(self.ice_servers(&c))
                } else {
                    Err(fail(uris::NOT_AUTHORIZED, "only chat members make calls"))
                }
            }
            "export" => self.export(&c, p),
            "forget" => self.forget(&c, p).await,
            "upload" => self.upload(&c, p),
            "file_url" => self.file_url(&c, p),
            other => Err(fail(
                uris::NO_SUCH_PROCEDURE,
                format!("the chat service has no procedure '{other}'"),
            )),
        }
    }

    /// `upload(thread, name, content_type, size)` → {file, url, max_bytes}: an upload slot for
    /// a member; the bytes go to `url` by HTTP PUT or POST within ten minutes.
    fn upload(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let args = p.args.as_deref().unwrap_or(&[]);
        let usage = "upload(thread, name, content_type, size)";
        let id = args
            .first()
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, usage))?;
        let name = args
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, usage))?;
        let declared = args.get(2).and_then(Value::as_str).unwrap_or("");
        let size = args
            .get(3)
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, format!("{usage}: size in bytes")))?;
        self.member_thread(c, id)?;
        let slot = self
            .files
            .open_slot(id, &c.authid, name, declared, size, !self.is_staff(c))
            .map_err(|r| {
                let uri = match r.status {
                    429 => RATE_LIMITED,
                    507 | 503 => OVERLOADED,
                    _ => uris::INVALID_ARGUMENT,
                };
                fail(uri, r.reason)
            })?;
        Ok(Payload::args(vec![Value::Dict(vec![
            ("file".into(), Value::UInt(slot.id)),
            ("url".into(), slot.url.into()),
            (
                "max_bytes".into(),
                Value::UInt(self.files.config().max_bytes),
            ),
        ])]))
    }

    /// `file_url(thread, file)` → a download link valid for an hour, for a member.
    fn file_url(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let args = p.args.as_deref().unwrap_or(&[]);
        let (Some(id), Some(file)) = (
            args.first().and_then(Value::as_u64),
            args.get(1).and_then(Value::as_u64),
        ) else {
            return Err(fail(uris::INVALID_ARGUMENT, "file_url(thread, file)"));
        };
        self.member_thread(c, id)?;
        Ok(Payload::args(vec![self.files.link(id, file).into()]))
    }

    fn search(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        if !self.is_staff(c) {
            return Err(fail(uris::NOT_AUTHORIZED, "only staff may search"));
        }
        let query = p
            .args
            .as_deref()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty() && q.chars().count() <= 200)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "search(query): 1 to 200 characters"))?;
        let limit = p
            .kwargs
            .as_ref()
            .and_then(|k| dict_get(k, "limit"))
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .clamp(1, 500) as usize;
        let found = self
            .store
            .search(&query.to_lowercase(), limit)
            .map_err(|e| fail(STORAGE, e.to_string()))?;
        Ok(Payload::args(vec![Value::List(
            found
                .iter()
                .map(|m| message_value(m, &self.files))
                .collect(),
        )]))
    }

    fn export(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let id = p
            .args
            .as_deref()
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| fail(uris::INVALID_ARGUMENT, "export(thread)"))?;
        let t = self.member_thread(c, id)?;
        let all = self
            .store
            .messages(id, 1..=t.last_seq.max(1), usize::MAX, false)
            .map_err(|e| fail(STORAGE, e.to_string()))?;
        Ok(Payload::args(vec![Value::Dict(vec![
            ("thread".into(), self.thread_summary(&t, &c.authid)),
            (
                "messages".into(),
                Value::List(all.iter().map(|m| message_value(m, &self.files)).collect()),
            ),
        ])]))
    }

    /// Deletes every thread of a visitor (staff: anyone; a visitor: itself).
    async fn forget(&self, c: &Caller, p: &Payload) -> Result<Payload, CallFailure> {
        let visitor = match p.args.as_deref().and_then(|a| a.first()) {
            Some(Value::Str(v)) if self.is_staff(c) || *v == c.authid => v.clone(),
            Some(Value::Str(_)) => {
                return Err(fail(
                    uris::NOT_AUTHORIZED,
                    "a visitor may only forget itself",
                ))
            }
            None | Some(Value::Null) if !self.is_staff(c) => c.authid.clone(),
            _ => return Err(fail(uris::INVALID_ARGUMENT, "forget(visitor authid)")),
        };
        let n = self.delete_threads(|t| t.visitor == visitor).await?;
        Ok(Payload::args(vec![Value::Dict(vec![(
            "threads".into(),
            Value::UInt(n as u64),
        )])]))
    }

    /// Deletes every thread of `visitor` (the admin socket's `chat.forget`); returns how many.
    pub async fn forget_visitor(&self, visitor: &str) -> Result<usize, String> {
        self.delete_threads(|t| t.visitor == visitor)
            .await
            .map_err(|e| e.message())
    }

    /// The store the service writes to.
    pub fn store(&self) -> &ChatStore {
        &self.store
    }

    /// Deletes the threads `doomed` selects, durably; returns how many.
    async fn delete_threads(&self, doomed: impl Fn(&Thread) -> bool) -> Result<usize, CallFailure> {
        let gone: Vec<Thread> = {
            let mut threads = self.threads.lock();
            let ids: Vec<u64> = threads
                .values()
                .filter(|t| doomed(t))
                .map(|t| t.id)
                .collect();
            ids.iter().filter_map(|id| threads.remove(id)).collect()
        };
        for t in &gone {
            self.store
                .delete_thread(t)
                .map_err(|e| fail(STORAGE, e.to_string()))?;
        }
        self.store
            .flush()
            .await
            .map_err(|e| fail(STORAGE, e.to_string()))?;
        if !gone.is_empty() {
            self.files.recount();
        }
        for t in &gone {
            let _ = self.client.publish_now(
                &format!("{PREFIX}inbox"),
                kwargs_only(vec![
                    ("type".into(), "deleted".into()),
                    ("thread".into(), Value::UInt(t.id)),
                ]),
            );
        }
        Ok(gone.len())
    }

    /// Deletes threads whose last activity is older than the retention period.
    pub async fn apply_retention(&self) -> Result<usize, String> {
        let Some(days) = self.cfg.retention_days else {
            return Ok(0);
        };
        let cutoff = now_ms().saturating_sub(days * 86_400_000);
        self.delete_threads(|t| t.last_ms.max(t.created_ms) < cutoff)
            .await
            .map_err(|e| e.message())
    }

    fn presence_changed(&self, change: Change) {
        let (online, person) = match change {
            Change::Online(p) => (true, p),
            Change::Offline(p) => (false, p),
        };
        let _ = self.client.publish_now(
            &format!("{PREFIX}presence"),
            kwargs_only(vec![
                ("authid".into(), person.authid.clone().into()),
                ("role".into(), person.role.clone().into()),
                ("online".into(), Value::Bool(online)),
                ("last_seen_ms".into(), Value::UInt(person.last_seen_ms)),
            ]),
        );
        if self.cfg.roles.is_staff(&person.role) {
            let staff_online = !self
                .presence
                .online(|r| self.cfg.roles.is_staff(r))
                .is_empty();
            let _ = self.client.publish_now(
                &format!("{PREFIX}status"),
                kwargs_only(vec![("staff_online".into(), Value::Bool(staff_online))]),
            );
        }
    }
}

const PROCEDURES: &[&str] = &[
    "open",
    "send",
    "history",
    "read",
    "typing",
    "threads",
    "resolve",
    "reopen",
    "assign",
    "page",
    "presence",
    "search",
    "export",
    "forget",
    "signal",
    "call_start",
    "call_accept",
    "call_decline",
    "call_hangup",
    "call_state",
    "call_resume",
    "ice_servers",
    "leave_message",
    "upload",
    "file_url",
];

/// An address worth sending to: one `@`, something on both sides, a dot in the domain, no
/// spaces, angle brackets or control characters, at most 254 bytes.
fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '<' || ch == '>')
}

/// Starts the chat service on its realm: loads the threads, installs the access policy, the
/// writer and the presence feed, registers the procedures.
pub async fn start(
    router: Arc<Router>,
    mut store: ChatStore,
    cfg: ChatConfig,
) -> Result<Arc<Chat>, String> {
    store.time_flushes(router.metrics.flush_timer("chat"));
    let realm = router
        .realm(&cfg.realm)
        .ok_or_else(|| format!("chat: realm '{}' does not exist", cfg.realm))?;
    let client = router
        .local_client(&cfg.realm, None)
        .ok_or_else(|| format!("chat: realm '{}' does not exist", cfg.realm))?;
    let all = store.threads().map_err(|e| format!("chat: {e}"))?;
    let next = all.iter().map(|t| t.id).max().unwrap_or(0) + 1;
    let threads: Threads = Arc::new(Mutex::new(all.into_iter().map(|t| (t.id, t)).collect()));
    realm.set_policy(
        PREFIX,
        Arc::new(ChatPolicy {
            prefix: PREFIX.to_owned(),
            roles: cfg.roles.clone(),
            threads: threads.clone(),
        }),
    );
    let mailer = match cfg.email.clone() {
        Some(e) => Some(super::email::Mailer::start(e)?),
        None => None,
    };
    let files = Arc::new(super::files::Files::new(store.clone(), cfg.files.clone())?);
    let (tx, rx) = mpsc::channel(QUEUE);
    let minute = std::time::Duration::from_secs(60);
    let message_rate = super::rate::RateLimit::new(cfg.messages_per_minute, minute);
    let thread_rate = super::rate::RateLimit::new(cfg.threads_per_hour, minute * 60);
    let chat = Arc::new(Chat {
        cfg,
        store: store.clone(),
        client: client.clone(),
        realm,
        threads,
        pending: Mutex::new(HashMap::new()),
        writer: tx,
        presence: Arc::new(Presence::default()),
        next_thread: AtomicU64::new(next),
        message_rate,
        thread_rate,
        signal_rate: super::rate::RateLimit::new(200, std::time::Duration::from_secs(10)),
        calls: Mutex::new(HashMap::new()),
        router_calls: router.config.calls.clone(),
        mailer,
        metrics: router.metrics.clone(),
        files,
    });
    tokio::spawn(write_loop(store, client.clone(), rx));
    for name in PROCEDURES {
        let c = chat.clone();
        let handler: Handler = Arc::new(move |inv| {
            let c = c.clone();
            Box::pin(async move { c.dispatch(name, inv).await })
        });
        client
            .register(&format!("{PREFIX}{name}"), Dict::new(), handler)
            .await
            .map_err(|e| format!("chat: cannot register {PREFIX}{name}: {}", e.message()))?;
    }
    // Presence straight from the realm's session lifecycle (a synchronous hook: a visitor is
    // online before its WELCOME is even read, and non-chat sessions cost one role check).
    let weak = Arc::downgrade(&chat);
    chat.realm.add_session_hook(Arc::new(move |change| {
        let Some(chat) = weak.upgrade() else { return };
        let outcome = match change {
            SessionChange::Joined(peer) => {
                let role = peer.principal.authrole.as_str();
                if role == chat.cfg.roles.visitor || chat.cfg.roles.is_staff(role) {
                    chat.presence
                        .joined(peer.session, &peer.principal.authid, role)
                } else {
                    None
                }
            }
            SessionChange::Left(peer) => {
                chat.call_session_left(peer.session);
                chat.presence.left(peer.session)
            }
        };
        if let Some(change) = outcome {
            chat.presence_changed(change);
        }
    }));
    if chat.cfg.retention_days.is_some() {
        let chat = chat.clone();
        tokio::spawn(async move {
            loop {
                match chat.apply_retention().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(threads = n, "chat retention: old threads deleted"),
                    Err(e) => tracing::error!(error = %e, "chat retention failed"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
        });
    }
    Ok(chat)
}

/// Group commit: applies each batch in order, flushes once, publishes what the batch asked to
/// publish (in order, so subscribers see messages in sequence), then acknowledges.
async fn write_loop(store: ChatStore, client: Arc<LocalClient>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut result = Ok(());
        for job in &batch {
            let applied = store.apply(&job.thread, job.message.as_ref());
            if let Err(e) = applied {
                result = Err(e.to_string());
                break;
            }
        }
        if result.is_ok() {
            result = store.flush().await.map_err(|e| e.to_string());
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "chat write failed");
        }
        for job in batch.drain(..) {
            if result.is_ok() {
                for (topic, payload) in job.events {
                    let _ = client.publish_now(&topic, payload);
                }
            }
            let _ = job.ack.send(result.clone());
        }
    }
}
