//! Dynamic authentication, as Crossbar does it: the router calls a procedure that a back end
//! registered, `authenticator(realm, authid, details)`, and continues with what it returns —
//! a role, or a dict with `role` and optionally `authid`, `realm`, `extra` and what the method
//! needs to check the client (`secret`/`salt`/`iterations`/`keylen` for WAMP-CRA, `pubkey` for
//! cryptosign). An error the authenticator raises becomes the ABORT reason.
//!
//! This module builds the call's arguments and reads its answer; the session makes the call.

use super::{
    cra_challenge, cryptosign, cryptosign_challenge, denied, principal, random_authid, scram,
    scram_challenge, AuthError, Outcome, TransportInfo,
};
use crate::config::{CraSalt, CraUser, DynamicAuth, Secret};
use crate::wamp::uris;
use crate::wamp::value::{dict_get, Dict, List, Value};
use crate::wamp::Payload;

/// Where in the method's exchange the authenticator is asked.
pub enum Step {
    Anonymous,
    /// After AUTHENTICATE: `details.ticket` carries the ticket to judge.
    Ticket,
    /// Before the challenge: the answer carries the secret.
    Cra,
    /// Before the challenge: the answer must name the key the HELLO offered.
    Cryptosign([u8; 32]),
    /// Before the challenge: the answer carries the stored SCRAM credential; the HELLO (its
    /// client nonce) is kept for the challenge.
    Scram(Box<Dict>),
}

/// A question for a dynamic authenticator.
pub struct Ask {
    /// The authenticator procedure.
    pub procedure: String,
    /// The realm it is registered in (`authenticator-realm`; else the client's realm).
    pub realm: String,
    /// `authenticator-role`: the role of the router session that calls.
    pub role: Option<String>,
    hello_realm: String,
    authid: Option<String>,
    details: Dict,
    step: Step,
}

impl Ask {
    /// The question about a HELLO: Crossbar's `details` are `session` (the id the client will
    /// get), `authmethod`, `authid`, `authrole` (what the client asked for), `authextra` (the
    /// HELLO's, or null) and `transport`.
    pub fn new(
        d: &DynamicAuth,
        realm: &str,
        authid: Option<&str>,
        hello: &Dict,
        session: crate::wamp::Id,
        transport: &TransportInfo,
        step: Step,
    ) -> Ask {
        let from_hello = |key: &str| dict_get(hello, key).cloned().unwrap_or(Value::Null);
        let details: Dict = vec![
            ("session".into(), Value::UInt(session)),
            ("authmethod".into(), step_method(&step).into()),
            (
                "authid".into(),
                authid
                    .map(|s| Value::Str(s.to_owned()))
                    .unwrap_or(Value::Null),
            ),
            ("authrole".into(), from_hello("authrole")),
            ("authextra".into(), from_hello("authextra")),
            ("transport".into(), transport.to_value()),
        ];
        Ask {
            procedure: d.authenticator.clone(),
            realm: d.realm.clone().unwrap_or_else(|| realm.to_owned()),
            role: d.role.clone(),
            hello_realm: realm.to_owned(),
            authid: authid.map(str::to_owned),
            details,
            step,
        }
    }

    /// Adds the ticket the client sent in AUTHENTICATE.
    pub fn with_ticket(mut self, ticket: &str) -> Ask {
        self.details
            .push(("ticket".into(), Value::Str(ticket.to_owned())));
        self
    }

    /// `(realm, authid, details)`.
    pub fn args(&self) -> List {
        vec![
            Value::Str(self.hello_realm.clone()),
            self.authid
                .as_ref()
                .map(|s| Value::Str(s.clone()))
                .unwrap_or(Value::Null),
            Value::Dict(self.details.clone()),
        ]
    }

    /// The authentication method the question is about.
    pub fn method(&self) -> &'static str {
        step_method(&self.step)
    }

    /// Continues with the authenticator's answer — its result, or the error URI and message it
    /// raised. `realm` in the result is the realm the client joins (the authenticator may move
    /// it to another).
    ///
    /// `has_role(realm, role)` says whether a realm has a role: a role it lacks is refused
    /// before anything method-specific is looked at, as Crossbar does.
    pub fn answered(
        self,
        reply: Result<Payload, (String, String)>,
        has_role: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Answered, AuthError> {
        let method = self.method();
        let payload = match reply {
            Ok(p) => p,
            Err((uri, message)) => {
                let router_side = [
                    uris::TIMEOUT,
                    uris::CANCELED,
                    uris::NO_SUCH_PROCEDURE,
                    uris::PAYLOAD_SIZE_EXCEEDED,
                ];
                return Err(if router_side.contains(&uri.as_str()) {
                    denied(
                        uris::AUTHENTICATION_FAILED,
                        format!("the authenticator '{}' failed: {message}", self.procedure),
                    )
                } else {
                    AuthError {
                        uri: uri.into(),
                        message,
                        method: Some(method),
                    }
                });
            }
        };
        let garbage = |why: String| {
            tracing::warn!(authenticator = %self.procedure, "{why}");
            denied(uris::AUTHENTICATION_FAILED, why)
        };
        let answer = match payload.args.as_deref() {
            Some([v, ..]) => v.clone(),
            _ => return Err(garbage("the authenticator returned nothing".into())),
        };
        let empty = Dict::new();
        let (role, d) = match &answer {
            Value::Str(role) => (role.clone(), &empty),
            Value::Dict(d) => match dict_get(d, "role") {
                Some(Value::Str(r)) => (r.clone(), d),
                // As Crossbar: a role that is not a name is a role the realm does not have.
                Some(other) => {
                    return Err(denied(
                        uris::NO_SUCH_ROLE,
                        format!(
                            "the authenticator returned role {}, which realm '{}' does not have",
                            match other {
                                Value::UInt(n) => n.to_string(),
                                Value::Int(n) => n.to_string(),
                                v => format!("of type {}", v.kind()),
                            },
                            self.hello_realm
                        ),
                    ))
                }
                None => return Err(garbage("the authenticator's answer has no 'role'".into())),
            },
            other => {
                return Err(garbage(format!(
                    "the authenticator returned {}, expected a role or a dict",
                    other.kind()
                )))
            }
        };
        let text = |key: &str| -> Result<Option<String>, AuthError> {
            match dict_get(d, key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Str(s)) => Ok(Some(s.clone())),
                Some(v) => Err(garbage(format!(
                    "the authenticator's '{key}' must be a string, got {}",
                    v.kind()
                ))),
            }
        };
        let authid = match (text("authid")?, self.authid.clone()) {
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) if matches!(self.step, Step::Anonymous) => random_authid(),
            (None, None) => {
                return Err(garbage(
                    "the authenticator returned no authid and the client sent none".into(),
                ))
            }
        };
        let realm = text("realm")?;
        let joining = realm.as_deref().unwrap_or(&self.hello_realm);
        if !has_role(joining, &role) {
            return Err(denied(
                uris::NO_SUCH_ROLE,
                format!("the authenticator returned role '{role}', which realm '{joining}' does not have"),
            ));
        }
        let mut p = principal(authid, role, method, "dynamic");
        match dict_get(d, "extra") {
            None | Some(Value::Null) => {}
            Some(Value::Dict(x)) => p.authextra = x.clone(),
            Some(v) => {
                return Err(garbage(format!(
                    "the authenticator's 'extra' must be a dict, got {}",
                    v.kind()
                )))
            }
        }
        let outcome = match self.step {
            Step::Anonymous | Step::Ticket => Outcome::Welcome(p),
            Step::Cra => {
                let Some(secret) = text("secret")? else {
                    return Err(garbage(
                        "for wampcra the authenticator must return a dict with 'secret'".into(),
                    ));
                };
                let number = |key: &str, default: u32| -> Result<u32, AuthError> {
                    match dict_get(d, key) {
                        None | Some(Value::Null) => Ok(default),
                        Some(v) => v
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                garbage(format!(
                                    "the authenticator's '{key}' must be a positive integer"
                                ))
                            }),
                    }
                };
                let salt = match text("salt")? {
                    None => None,
                    Some(salt) => Some(CraSalt {
                        salt,
                        iterations: number("iterations", 1000)?,
                        keylen: number("keylen", 32)?,
                    }),
                };
                let user = CraUser {
                    secret: Secret(secret),
                    role: p.authrole.clone(),
                    salt,
                };
                cra_challenge(p, &user)
            }
            Step::Cryptosign(offered) => {
                let keys: Vec<String> = match dict_get(d, "pubkey") {
                    Some(Value::Str(k)) => vec![k.clone()],
                    Some(Value::List(l)) => l
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    _ => {
                        return Err(garbage(
                            "for cryptosign the authenticator must return a dict with 'pubkey'"
                                .into(),
                        ))
                    }
                };
                if !keys
                    .iter()
                    .filter_map(|k| cryptosign::parse_key(k))
                    .any(|k| k == offered)
                {
                    return Err(denied(
                        uris::NOT_AUTHORIZED,
                        format!("the public key is not authorized for '{}'", p.authid),
                    ));
                }
                cryptosign_challenge(p, offered)
            }
            Step::Scram(hello) => {
                let field = |key: &str| text(key);
                let (Some(kdf), Some(salt), Some(stored), Some(server)) = (
                    field("kdf")?,
                    field("salt")?,
                    field("stored-key")?,
                    field("server-key")?,
                ) else {
                    return Err(garbage(
                        "for scram the authenticator must return kdf, iterations, salt, stored-key and server-key"
                            .into(),
                    ));
                };
                let iterations = dict_get(d, "iterations")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let memory = dict_get(d, "memory").and_then(Value::as_u64);
                let credential = scram::Credential::from_fields(
                    &kdf, iterations, memory, &salt, &stored, &server,
                )
                .map_err(garbage)?;
                scram_challenge(p, &credential, &hello)?
            }
        };
        Ok(Answered { outcome, realm })
    }
}

fn step_method(step: &Step) -> &'static str {
    match step {
        Step::Anonymous => "anonymous",
        Step::Ticket => "ticket",
        Step::Cra => "wampcra",
        Step::Cryptosign(_) => "cryptosign",
        Step::Scram(_) => scram::AUTHMETHOD,
    }
}

/// What the authenticator's answer leads to.
pub struct Answered {
    pub outcome: Outcome,
    /// The realm to join instead of the one in HELLO.
    pub realm: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(step: Step, authid: Option<&str>) -> Ask {
        let d = DynamicAuth {
            authenticator: "com.auth".into(),
            realm: None,
            role: None,
        };
        let transport = TransportInfo {
            framing: crate::framing::Framing::WebSocket,
            peer: Some("10.0.0.1:4242".parse().unwrap()),
            protocol: Some("wamp.2.json"),
            http_headers: Some(Box::new(vec![("Cookie".into(), "sid=1".into())])),
        };
        let hello = vec![(
            "authextra".to_owned(),
            Value::Dict(vec![("k".into(), Value::UInt(1))]),
        )];
        Ask::new(&d, "realm1", authid, &hello, 7, &transport, step)
    }

    impl Ask {
        fn answered_any(
            self,
            reply: Result<Payload, (String, String)>,
        ) -> Result<Answered, AuthError> {
            self.answered(reply, &|_, role| role != "ghost")
        }
    }

    fn welcome(a: Result<Answered, AuthError>) -> super::super::Principal {
        match a.map(|a| a.outcome) {
            Ok(Outcome::Welcome(p)) => p,
            Ok(_) => panic!("expected a welcome"),
            Err(e) => panic!("refused: {e:?}"),
        }
    }

    #[test]
    fn arguments_are_realm_authid_details() {
        let a = ask(Step::Ticket, Some("joe")).with_ticket("t0p");
        let args = a.args();
        assert_eq!(args[0], Value::Str("realm1".into()));
        assert_eq!(args[1], Value::Str("joe".into()));
        let d = args[2].as_dict().unwrap();
        assert_eq!(dict_get(d, "ticket"), Some(&Value::Str("t0p".into())));
        assert_eq!(dict_get(d, "session"), Some(&Value::UInt(7)));
        let t = dict_get(d, "transport").and_then(Value::as_dict).unwrap();
        assert_eq!(
            dict_get(t, "peer"),
            Some(&Value::Str("tcp4:10.0.0.1:4242".into()))
        );
        let h = dict_get(t, "http_headers_received")
            .and_then(Value::as_dict)
            .unwrap();
        assert_eq!(dict_get(h, "cookie"), Some(&Value::Str("sid=1".into())));
        assert_eq!(dict_get(d, "authrole"), Some(&Value::Null));
    }

    #[test]
    fn a_role_or_a_dict() {
        let p = welcome(
            ask(Step::Ticket, Some("joe"))
                .answered_any(Ok(Payload::args(vec![Value::Str("user".into())]))),
        );
        assert_eq!((p.authid.as_str(), p.authrole.as_str()), ("joe", "user"));
        assert_eq!(p.authprovider, "dynamic");
        let d = Value::Dict(vec![
            ("role".into(), "admin".into()),
            ("authid".into(), "joseph".into()),
            (
                "extra".into(),
                Value::Dict(vec![("tier".into(), "gold".into())]),
            ),
        ]);
        let p = welcome(ask(Step::Ticket, Some("joe")).answered_any(Ok(Payload::args(vec![d]))));
        assert_eq!(
            (p.authid.as_str(), p.authrole.as_str()),
            ("joseph", "admin")
        );
        assert_eq!(p.authextra.len(), 1);
    }

    #[test]
    fn raised_errors_become_the_abort_reason() {
        let e = ask(Step::Ticket, Some("joe"))
            .answered_any(Err(("com.example.invalid_ticket".into(), "bad".into())))
            .err()
            .unwrap();
        assert_eq!(e.uri, "com.example.invalid_ticket");
        let e = ask(Step::Ticket, Some("joe"))
            .answered_any(Err((uris::TIMEOUT.into(), "slow".into())))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::AUTHENTICATION_FAILED);
    }

    #[test]
    fn garbage_is_authentication_failed() {
        let e = ask(Step::Ticket, Some("joe"))
            .answered_any(Ok(Payload::args(vec![Value::Dict(vec![(
                "role".into(),
                Value::UInt(5),
            )])])))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::NO_SUCH_ROLE);
        for v in [
            Value::UInt(5),
            Value::Dict(vec![("nothing".into(), Value::UInt(5))]),
            Value::Dict(vec![
                ("role".into(), "x".into()),
                ("authid".into(), Value::Bool(true)),
            ]),
            Value::Dict(vec![
                ("role".into(), "x".into()),
                ("extra".into(), Value::UInt(1)),
            ]),
            Value::List(vec![]),
        ] {
            let e = ask(Step::Ticket, Some("joe"))
                .answered_any(Ok(Payload::args(vec![v.clone()])))
                .err()
                .unwrap_or_else(|| panic!("{v:?} accepted"));
            assert_eq!(e.uri, uris::AUTHENTICATION_FAILED, "{v:?}");
        }
        let e = ask(Step::Ticket, Some("joe"))
            .answered_any(Ok(Payload::default()))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::AUTHENTICATION_FAILED);
        // WAMP-CRA needs the secret; cryptosign the key.
        let e = ask(Step::Cra, Some("joe"))
            .answered_any(Ok(Payload::args(vec!["user".into()])))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::AUTHENTICATION_FAILED);
        let e = ask(Step::Cryptosign([1; 32]), Some("joe"))
            .answered_any(Ok(Payload::args(vec!["user".into()])))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::AUTHENTICATION_FAILED);
    }

    #[test]
    fn cryptosign_key_must_match_the_hello() {
        let answer = |key: &str| {
            Ok(Payload::args(vec![Value::Dict(vec![
                ("role".into(), "user".into()),
                ("pubkey".into(), key.into()),
            ])]))
        };
        let mine = cryptosign::to_hex(&[1; 32]);
        let other = cryptosign::to_hex(&[2; 32]);
        assert!(matches!(
            ask(Step::Cryptosign([1; 32]), Some("d"))
                .answered_any(answer(&mine))
                .map(|a| a.outcome),
            Ok(Outcome::Challenge {
                authmethod: "cryptosign",
                ..
            })
        ));
        let e = ask(Step::Cryptosign([1; 32]), Some("d"))
            .answered_any(answer(&other))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::NOT_AUTHORIZED);
    }

    #[test]
    fn unknown_roles_are_refused_first() {
        let e = ask(Step::Cra, Some("joe"))
            .answered_any(Ok(Payload::args(vec!["ghost".into()])))
            .err()
            .unwrap();
        assert_eq!(e.uri, uris::NO_SUCH_ROLE);
        assert!(e.message.contains("ghost"));
    }

    #[test]
    fn anonymous_without_authid_gets_one() {
        let p = welcome(
            ask(Step::Anonymous, None).answered_any(Ok(Payload::args(vec!["guest".into()]))),
        );
        assert_eq!(p.authid.len(), 14);
        assert!(ask(Step::Ticket, None)
            .answered_any(Ok(Payload::args(vec!["guest".into()])))
            .is_err());
    }
}
