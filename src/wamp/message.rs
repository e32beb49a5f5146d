//! The WAMP messages (Basic and Advanced Profile) as typed data, their decoding from a
//! `Value` list and their encoding through any serde serializer.
//!
//! Decoding checks structure and types only (codes, arity, ids in range, dict/list/string
//! fields). Whether a URI is valid or a message is allowed in the current phase is decided by
//! the session and the router, which answer with the spec's error URIs.

use super::ids::{is_valid_id, Id};
use super::value::{Dict, DictRef, List, ListRef, Value};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use std::sync::Arc;

pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
}

/// Positional and keyword arguments of PUBLISH, EVENT, CALL, INVOCATION, YIELD, RESULT, ERROR.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    pub args: Option<List>,
    pub kwargs: Option<Dict>,
}

impl Payload {
    pub fn args(args: List) -> Payload {
        Payload {
            args: Some(args),
            kwargs: None,
        }
    }

    /// A single readable message as the only positional argument (how errors explain themselves).
    pub fn message(text: impl Into<String>) -> Payload {
        Payload::args(vec![Value::Str(text.into())])
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Hello {
        realm: String,
        details: Dict,
    },
    Welcome {
        session: Id,
        details: Dict,
    },
    Abort {
        details: Dict,
        reason: String,
    },
    Challenge {
        authmethod: String,
        extra: Dict,
    },
    Authenticate {
        signature: String,
        extra: Dict,
    },
    Goodbye {
        details: Dict,
        reason: String,
    },
    Error {
        request_type: u64,
        request: Id,
        details: Dict,
        error: String,
        payload: Payload,
    },
    Publish {
        request: Id,
        options: Dict,
        topic: String,
        payload: Payload,
    },
    Published {
        request: Id,
        publication: Id,
    },
    Subscribe {
        request: Id,
        options: Dict,
        topic: String,
    },
    Subscribed {
        request: Id,
        subscription: Id,
    },
    Unsubscribe {
        request: Id,
        subscription: Id,
    },
    Unsubscribed {
        request: Id,
        details: Option<Dict>,
    },
    Event {
        subscription: Id,
        publication: Id,
        details: Dict,
        payload: Arc<Payload>,
    },
    Call {
        request: Id,
        options: Dict,
        procedure: String,
        payload: Payload,
    },
    Cancel {
        request: Id,
        options: Dict,
    },
    Result {
        request: Id,
        details: Dict,
        payload: Payload,
    },
    Register {
        request: Id,
        options: Dict,
        procedure: String,
    },
    Registered {
        request: Id,
        registration: Id,
    },
    Unregister {
        request: Id,
        registration: Id,
    },
    Unregistered {
        request: Id,
        details: Option<Dict>,
    },
    Invocation {
        request: Id,
        registration: Id,
        details: Dict,
        payload: Payload,
    },
    Interrupt {
        request: Id,
        options: Dict,
    },
    Yield {
        request: Id,
        options: Dict,
        payload: Payload,
    },
}

impl Message {
    pub fn code(&self) -> u64 {
        use code::*;
        match self {
            Message::Hello { .. } => HELLO,
            Message::Welcome { .. } => WELCOME,
            Message::Abort { .. } => ABORT,
            Message::Challenge { .. } => CHALLENGE,
            Message::Authenticate { .. } => AUTHENTICATE,
            Message::Goodbye { .. } => GOODBYE,
            Message::Error { .. } => ERROR,
            Message::Publish { .. } => PUBLISH,
            Message::Published { .. } => PUBLISHED,
            Message::Subscribe { .. } => SUBSCRIBE,
            Message::Subscribed { .. } => SUBSCRIBED,
            Message::Unsubscribe { .. } => UNSUBSCRIBE,
            Message::Unsubscribed { .. } => UNSUBSCRIBED,
            Message::Event { .. } => EVENT,
            Message::Call { .. } => CALL,
            Message::Cancel { .. } => CANCEL,
            Message::Result { .. } => RESULT,
            Message::Register { .. } => REGISTER,
            Message::Registered { .. } => REGISTERED,
            Message::Unregister { .. } => UNREGISTER,
            Message::Unregistered { .. } => UNREGISTERED,
            Message::Invocation { .. } => INVOCATION,
            Message::Interrupt { .. } => INTERRUPT,
            Message::Yield { .. } => YIELD,
        }
    }

    /// The message's name as the spec writes it, for error texts.
    pub fn name(&self) -> &'static str {
        code_name(self.code())
    }
}

pub fn code_name(code: u64) -> &'static str {
    use code::*;
    match code {
        HELLO => "HELLO",
        WELCOME => "WELCOME",
        ABORT => "ABORT",
        CHALLENGE => "CHALLENGE",
        AUTHENTICATE => "AUTHENTICATE",
        GOODBYE => "GOODBYE",
        ERROR => "ERROR",
        PUBLISH => "PUBLISH",
        PUBLISHED => "PUBLISHED",
        SUBSCRIBE => "SUBSCRIBE",
        SUBSCRIBED => "SUBSCRIBED",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBSCRIBED => "UNSUBSCRIBED",
        EVENT => "EVENT",
        CALL => "CALL",
        CANCEL => "CANCEL",
        RESULT => "RESULT",
        REGISTER => "REGISTER",
        REGISTERED => "REGISTERED",
        UNREGISTER => "UNREGISTER",
        UNREGISTERED => "UNREGISTERED",
        INVOCATION => "INVOCATION",
        INTERRUPT => "INTERRUPT",
        YIELD => "YIELD",
        _ => "unknown",
    }
}

/// Why a message could not be decoded; the session answers with `protocol_violation`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

struct Fields {
    name: &'static str,
    items: std::vec::IntoIter<Value>,
    index: usize,
}

impl Fields {
    fn next(&mut self, what: &str) -> Result<Value, DecodeError> {
        self.index += 1;
        match self.items.next() {
            Some(v) => Ok(v),
            None => err(format!(
                "{}: missing {} (element {})",
                self.name, what, self.index
            )),
        }
    }
    fn id(&mut self, what: &str) -> Result<Id, DecodeError> {
        let v = self.next(what)?;
        match v.as_u64() {
            Some(id) if is_valid_id(id) => Ok(id),
            _ => err(format!(
                "{}: {} must be an id in [1, 2^53], got {}",
                self.name,
                what,
                describe(&v)
            )),
        }
    }
    fn int(&mut self, what: &str) -> Result<u64, DecodeError> {
        let v = self.next(what)?;
        match v.as_u64() {
            Some(i) => Ok(i),
            None => err(format!(
                "{}: {} must be an integer, got {}",
                self.name,
                what,
                describe(&v)
            )),
        }
    }
    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        match self.next(what)? {
            Value::Str(s) => Ok(s),
            v => err(format!(
                "{}: {} must be a string, got {}",
                self.name,
                what,
                describe(&v)
            )),
        }
    }
    fn dict(&mut self, what: &str) -> Result<Dict, DecodeError> {
        match self.next(what)? {
            Value::Dict(d) => Ok(d),
            v => err(format!(
                "{}: {} must be a dict, got {}",
                self.name,
                what,
                describe(&v)
            )),
        }
    }
    /// Optional trailing `Arguments|list, ArgumentsKw|dict`.
    fn payload(&mut self) -> Result<Payload, DecodeError> {
        let args = match self.items.next() {
            None => return Ok(Payload::default()),
            Some(Value::List(l)) => l,
            Some(v) => {
                return err(format!(
                    "{}: Arguments must be a list, got {}",
                    self.name,
                    describe(&v)
                ))
            }
        };
        let kwargs = match self.items.next() {
            None => None,
            Some(Value::Dict(d)) => Some(d),
            Some(v) => {
                return err(format!(
                    "{}: ArgumentsKw must be a dict, got {}",
                    self.name,
                    describe(&v)
                ))
            }
        };
        Ok(Payload {
            args: Some(args),
            kwargs,
        })
    }
    fn optional_dict(&mut self) -> Result<Option<Dict>, DecodeError> {
        match self.items.next() {
            None => Ok(None),
            Some(Value::Dict(d)) => Ok(Some(d)),
            Some(v) => err(format!(
                "{}: Details must be a dict, got {}",
                self.name,
                describe(&v)
            )),
        }
    }
    fn end(mut self) -> Result<(), DecodeError> {
        if self.items.next().is_some() {
            return err(format!("{}: too many elements", self.name));
        }
        Ok(())
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::Int(i) => format!("integer {i}"),
        Value::UInt(u) => format!("integer {u}"),
        other => other.kind().to_owned(),
    }
}

impl Message {
    /// Decodes a message from its list form.
    pub fn from_value(v: Value) -> Result<Message, DecodeError> {
        let items = match v {
            Value::List(items) => items,
            other => {
                return err(format!(
                    "a message must be a list, got {}",
                    describe(&other)
                ))
            }
        };
        let mut items = items.into_iter();
        let code = match items.next() {
            Some(c) => match c.as_u64() {
                Some(c) => c,
                None => {
                    return err(format!(
                        "message type must be an integer, got {}",
                        describe(&c)
                    ))
                }
            },
            None => return err("empty message"),
        };
        let name = code_name(code);
        if name == "unknown" {
            return err(format!("unknown message type {code}"));
        }
        let mut f = Fields {
            name,
            items,
            index: 1,
        };
        use code::*;
        let m = match code {
            HELLO => Message::Hello {
                realm: f.string("Realm")?,
                details: f.dict("Details")?,
            },
            WELCOME => Message::Welcome {
                session: f.id("Session")?,
                details: f.dict("Details")?,
            },
            ABORT => Message::Abort {
                details: f.dict("Details")?,
                reason: f.string("Reason")?,
            },
            CHALLENGE => Message::Challenge {
                authmethod: f.string("AuthMethod")?,
                extra: f.dict("Extra")?,
            },
            AUTHENTICATE => Message::Authenticate {
                signature: f.string("Signature")?,
                extra: f.dict("Extra")?,
            },
            GOODBYE => Message::Goodbye {
                details: f.dict("Details")?,
                reason: f.string("Reason")?,
            },
            ERROR => Message::Error {
                request_type: f.int("REQUEST.Type")?,
                request: f.id("REQUEST.Request")?,
                details: f.dict("Details")?,
                error: f.string("Error")?,
                payload: f.payload()?,
            },
            PUBLISH => Message::Publish {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                topic: f.string("Topic")?,
                payload: f.payload()?,
            },
            PUBLISHED => Message::Published {
                request: f.id("Request")?,
                publication: f.id("Publication")?,
            },
            SUBSCRIBE => Message::Subscribe {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                topic: f.string("Topic")?,
            },
            SUBSCRIBED => Message::Subscribed {
                request: f.id("Request")?,
                subscription: f.id("Subscription")?,
            },
            UNSUBSCRIBE => Message::Unsubscribe {
                request: f.id("Request")?,
                subscription: f.id("Subscription")?,
            },
            UNSUBSCRIBED => Message::Unsubscribed {
                request: f.int("Request")?,
                details: f.optional_dict()?,
            },
            EVENT => Message::Event {
                subscription: f.id("Subscription")?,
                publication: f.id("Publication")?,
                details: f.dict("Details")?,
                payload: Arc::new(f.payload()?),
            },
            CALL => Message::Call {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                procedure: f.string("Procedure")?,
                payload: f.payload()?,
            },
            CANCEL => Message::Cancel {
                request: f.id("Request")?,
                options: f.dict("Options")?,
            },
            RESULT => Message::Result {
                request: f.id("Request")?,
                details: f.dict("Details")?,
                payload: f.payload()?,
            },
            REGISTER => Message::Register {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                procedure: f.string("Procedure")?,
            },
            REGISTERED => Message::Registered {
                request: f.id("Request")?,
                registration: f.id("Registration")?,
            },
            UNREGISTER => Message::Unregister {
                request: f.id("Request")?,
                registration: f.id("Registration")?,
            },
            UNREGISTERED => Message::Unregistered {
                request: f.int("Request")?,
                details: f.optional_dict()?,
            },
            INVOCATION => Message::Invocation {
                request: f.id("Request")?,
                registration: f.id("Registration")?,
                details: f.dict("Details")?,
                payload: f.payload()?,
            },
            INTERRUPT => Message::Interrupt {
                request: f.id("Request")?,
                options: f.dict("Options")?,
            },
            YIELD => Message::Yield {
                request: f.id("Request")?,
                options: f.dict("Options")?,
                payload: f.payload()?,
            },
            _ => return err(format!("unknown message type {code}")),
        };
        f.end()?;
        Ok(m)
    }
}

/// Serializes a message in its list form; `JSON` selects the binary convention.
pub struct Wire<'a, const JSON: bool>(pub &'a Message);

struct PayloadFields<'a>(&'a Payload);

impl PayloadFields<'_> {
    fn len(&self) -> usize {
        match (&self.0.args, &self.0.kwargs) {
            (_, Some(kw)) if !kw.is_empty() => 2,
            (Some(a), _) if !a.is_empty() => 1,
            _ => 0,
        }
    }
    fn write<S: SerializeSeq, const JSON: bool>(&self, seq: &mut S) -> Result<(), S::Error> {
        let n = self.len();
        if n >= 1 {
            let empty: &[Value] = &[];
            let args = self.0.args.as_deref().unwrap_or(empty);
            seq.serialize_element(&ListRef::<JSON>(args))?;
        }
        if n == 2 {
            if let Some(kw) = &self.0.kwargs {
                seq.serialize_element(&DictRef::<JSON>(kw))?;
            }
        }
        Ok(())
    }
}

impl<const JSON: bool> Serialize for Wire<'_, JSON> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let code = m.code();
        macro_rules! seq {
            ($n:expr) => {{
                let mut seq = s.serialize_seq(Some($n))?;
                seq.serialize_element(&code)?;
                seq
            }};
        }
        match m {
            Message::Hello {
                realm: a,
                details: d,
            }
            | Message::Challenge {
                authmethod: a,
                extra: d,
            }
            | Message::Authenticate {
                signature: a,
                extra: d,
            } => {
                let mut seq = seq!(3);
                seq.serialize_element(a)?;
                seq.serialize_element(&DictRef::<JSON>(d))?;
                seq.end()
            }
            Message::Welcome { session, details } => {
                let mut seq = seq!(3);
                seq.serialize_element(session)?;
                seq.serialize_element(&DictRef::<JSON>(details))?;
                seq.end()
            }
            Message::Abort { details, reason } | Message::Goodbye { details, reason } => {
                let mut seq = seq!(3);
                seq.serialize_element(&DictRef::<JSON>(details))?;
                seq.serialize_element(reason)?;
                seq.end()
            }
            Message::Error {
                request_type,
                request,
                details,
                error,
                payload,
            } => {
                let p = PayloadFields(payload);
                let mut seq = seq!(5 + p.len());
                seq.serialize_element(request_type)?;
                seq.serialize_element(request)?;
                seq.serialize_element(&DictRef::<JSON>(details))?;
                seq.serialize_element(error)?;
                p.write::<_, JSON>(&mut seq)?;
                seq.end()
            }
            Message::Publish {
                request,
                options,
                topic: uri,
                payload,
            }
            | Message::Call {
                request,
                options,
                procedure: uri,
                payload,
            } => {
                let p = PayloadFields(payload);
                let mut seq = seq!(4 + p.len());
                seq.serialize_element(request)?;
                seq.serialize_element(&DictRef::<JSON>(options))?;
                seq.serialize_element(uri)?;
                p.write::<_, JSON>(&mut seq)?;
                seq.end()
            }
            Message::Published {
                request: a,
                publication: b,
            }
            | Message::Subscribed {
                request: a,
                subscription: b,
            }
            | Message::Unsubscribe {
                request: a,
                subscription: b,
            }
            | Message::Registered {
                request: a,
                registration: b,
            }
            | Message::Unregister {
                request: a,
                registration: b,
            } => {
                let mut seq = seq!(3);
                seq.serialize_element(a)?;
                seq.serialize_element(b)?;
                seq.end()
            }
            Message::Subscribe {
                request,
                options,
                topic: uri,
            }
            | Message::Register {
                request,
                options,
                procedure: uri,
            } => {
                let mut seq = seq!(4);
                seq.serialize_element(request)?;
                seq.serialize_element(&DictRef::<JSON>(options))?;
                seq.serialize_element(uri)?;
                seq.end()
            }
            Message::Unsubscribed { request, details }
            | Message::Unregistered { request, details } => {
                let mut seq = seq!(if details.is_some() { 3 } else { 2 });
                seq.serialize_element(request)?;
                if let Some(d) = details {
                    seq.serialize_element(&DictRef::<JSON>(d))?;
                }
                seq.end()
            }
            Message::Event {
                subscription,
                publication,
                details,
                payload,
            } => {
                let p = PayloadFields(payload);
                let mut seq = seq!(4 + p.len());
                seq.serialize_element(subscription)?;
                seq.serialize_element(publication)?;
                seq.serialize_element(&DictRef::<JSON>(details))?;
                p.write::<_, JSON>(&mut seq)?;
                seq.end()
            }
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } => {
                let p = PayloadFields(payload);
                let mut seq = seq!(4 + p.len());
                seq.serialize_element(request)?;
                seq.serialize_element(registration)?;
                seq.serialize_element(&DictRef::<JSON>(details))?;
                p.write::<_, JSON>(&mut seq)?;
                seq.end()
            }
            Message::Cancel { request, options } | Message::Interrupt { request, options } => {
                let mut seq = seq!(3);
                seq.serialize_element(request)?;
                seq.serialize_element(&DictRef::<JSON>(options))?;
                seq.end()
            }
            Message::Result {
                request,
                details: d,
                payload,
            }
            | Message::Yield {
                request,
                options: d,
                payload,
            } => {
                let p = PayloadFields(payload);
                let mut seq = seq!(3 + p.len());
                seq.serialize_element(request)?;
                seq.serialize_element(&DictRef::<JSON>(d))?;
                p.write::<_, JSON>(&mut seq)?;
                seq.end()
            }
        }
    }
}
