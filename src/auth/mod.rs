//! Who a session is and what it may do. Never imports the router.

pub mod authorizer;
pub mod cryptosign;
pub mod dynamic;
pub mod permissions;
pub mod scram;
pub mod throttle;
pub mod visitor;
pub mod wampcra;

use crate::config::{RealmConfig, TransportAuth};
use crate::wamp::value::{dict_get, Dict, Value};
use rand::Rng;

/// The authenticated identity of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
    /// Sent to the client in `WELCOME.Details.authextra` (e.g. a SCRAM server signature, or
    /// the `extra` a dynamic authenticator returned).
    pub authextra: Dict,
}

/// Why a HELLO was refused: an ABORT reason URI and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// A spec URI, or the error URI a dynamic authenticator raised.
    pub uri: std::borrow::Cow<'static, str>,
    pub message: String,
    /// The authentication method that refused, when one applied (the auth-failure metric's
    /// label; `None` when no offered method was enabled or the HELLO was malformed).
    pub method: Option<&'static str>,
}

/// What a HELLO (or an AUTHENTICATE) leads to.
pub enum Outcome {
    /// Join now.
    Welcome(Principal),
    /// Send CHALLENGE and wait for AUTHENTICATE.
    Challenge {
        authmethod: &'static str,
        extra: Dict,
        pending: Pending,
    },
    /// Ask the dynamic authenticator, then continue with `Ask::answered`.
    Ask(dynamic::Ask),
}

/// A challenge sent, waiting for AUTHENTICATE.
pub struct Pending {
    principal: Principal,
    expect: Expect,
}

impl Pending {
    /// Who is being authenticated.
    pub fn authid(&self) -> &str {
        &self.principal.authid
    }
}

enum Expect {
    Ticket(crate::config::Secret),
    /// A visitor token or an app-signed JWT (the chat widget).
    Visitor(Box<visitor::VisitorAuth>),
    /// The authenticator judges the ticket (the call waits for AUTHENTICATE).
    TicketDynamic(dynamic::Ask),
    Cra {
        challenge: String,
        keys: Vec<Vec<u8>>,
    },
    Cryptosign {
        challenge: [u8; 32],
        pubkey: [u8; 32],
    },
    Scram(Box<scram::Exchange>),
}

/// The SCRAM challenge for `principal` holding `credential`, answering the HELLO's nonce.
fn scram_challenge(
    principal: Principal,
    credential: &scram::Credential,
    hello: &Dict,
) -> Result<Outcome, AuthError> {
    let empty = Dict::new();
    let authextra = dict_get(hello, "authextra")
        .and_then(Value::as_dict)
        .unwrap_or(&empty);
    let (extra, exchange) = scram::challenge(credential, &principal.authid, authextra)
        .map_err(|e| denied(crate::wamp::uris::INVALID_ARGUMENT, e))?;
    Ok(Outcome::Challenge {
        authmethod: scram::AUTHMETHOD,
        extra,
        pending: Pending {
            principal,
            expect: Expect::Scram(Box::new(exchange)),
        },
    })
}

/// A principal of the built-in store (`switchboard user`), for `realm`.
fn stored(
    store: Option<&crate::store::principals::Principals>,
    realm: &str,
    authid: Option<&str>,
    method: &str,
) -> Result<crate::store::principals::PrincipalRecord, AuthError> {
    let id = authid.ok_or_else(|| needs_authid(method))?;
    let found = match store {
        Some(s) => s.get(realm, id).map_err(|e| {
            tracing::error!(error = %e, "principal store lookup failed");
            denied(
                crate::wamp::uris::AUTHENTICATION_FAILED,
                "the principal store is unavailable",
            )
        })?,
        None => None,
    };
    found.ok_or_else(|| {
        denied(
            crate::wamp::uris::NO_SUCH_PRINCIPAL,
            format!("no principal with authid '{id}'"),
        )
    })
}

fn denied(uri: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        uri: uri.into(),
        message: message.into(),
        method: None,
    }
}

fn principal(authid: String, authrole: String, method: &str, provider: &str) -> Principal {
    Principal {
        authid,
        authrole,
        authmethod: method.to_owned(),
        authprovider: provider.to_owned(),
        authextra: Dict::new(),
    }
}

/// Finds a static principal by the HELLO's authid, for `method`.
fn lookup<'a, T>(
    table: &'a std::collections::HashMap<String, T>,
    authid: Option<&str>,
    method: &str,
    role: impl Fn(&T) -> &String,
) -> Result<(&'a T, Principal), AuthError> {
    let id = authid.ok_or_else(|| needs_authid(method))?;
    let entry = table.get(id).ok_or_else(|| {
        denied(
            crate::wamp::uris::NO_SUCH_PRINCIPAL,
            format!("no principal with authid '{id}'"),
        )
    })?;
    let p = principal(id.to_owned(), role(entry).clone(), method, "static");
    Ok((entry, p))
}

fn needs_authid(method: &str) -> AuthError {
    denied(
        crate::wamp::uris::NO_SUCH_PRINCIPAL,
        format!("{method} authentication needs HELLO.Details.authid"),
    )
}

/// The WAMP-CRA challenge for `principal` with `user`'s secret.
fn cra_challenge(principal: Principal, user: &crate::config::CraUser) -> Outcome {
    cra_challenge_with(principal, user.salt.as_ref(), wampcra::candidate_keys(user))
}

/// The WAMP-CRA challenge telling the client `salt` (if the key is derived), answered by a
/// signature with one of `keys`.
fn cra_challenge_with(
    principal: Principal,
    salt: Option<&crate::config::CraSalt>,
    keys: Vec<Vec<u8>>,
) -> Outcome {
    let challenge = wampcra::challenge(&principal);
    let mut extra = vec![("challenge".to_owned(), Value::Str(challenge.clone()))];
    if let Some(s) = salt {
        extra.push(("salt".into(), Value::Str(s.salt.clone())));
        extra.push(("iterations".into(), Value::UInt(u64::from(s.iterations))));
        extra.push(("keylen".into(), Value::UInt(u64::from(s.keylen))));
    }
    Outcome::Challenge {
        authmethod: "wampcra",
        extra,
        pending: Pending {
            principal,
            expect: Expect::Cra { challenge, keys },
        },
    }
}

/// The cryptosign challenge for `principal` holding `pubkey`.
fn cryptosign_challenge(principal: Principal, pubkey: [u8; 32]) -> Outcome {
    let challenge = cryptosign::challenge();
    let extra = vec![
        (
            "challenge".to_owned(),
            Value::Str(cryptosign::to_hex(&challenge)),
        ),
        ("channel_binding".to_owned(), Value::Null),
    ];
    Outcome::Challenge {
        authmethod: "cryptosign",
        extra,
        pending: Pending {
            principal,
            expect: Expect::Cryptosign { challenge, pubkey },
        },
    }
}

/// The Ed25519 public key a cryptosign HELLO offers, if well-formed.
fn hello_pubkey(details: &Dict) -> Option<[u8; 32]> {
    dict_get(details, "authextra")
        .and_then(Value::as_dict)
        .and_then(|x| dict_get(x, "pubkey"))
        .and_then(Value::as_str)
        .and_then(cryptosign::parse_key)
}

/// What the transport knows about a client: what dynamic authenticators and authorizers are
/// told (Crossbar's `transport` details) and what failed attempts are counted against.
#[derive(Clone, Debug)]
pub struct TransportInfo {
    pub framing: crate::framing::Framing,
    /// The client's address; `None` on a Unix socket.
    pub peer: Option<std::net::SocketAddr>,
    /// The WebSocket subprotocol.
    pub protocol: Option<&'static str>,
    /// The upgrade request's headers, kept only where a dynamic authenticator or authorizer
    /// may be told them.
    pub http_headers: Option<Box<Vec<(String, String)>>>,
}

impl TransportInfo {
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.peer.map(|a| a.ip())
    }

    /// Crossbar's shape: `channel_type`, `channel_framing`, `peer` (`tcp4:IP:PORT`), `is_secure`,
    /// `websocket_protocol`, `http_headers_received` (lower-case names).
    pub fn to_value(&self) -> Value {
        let (channel, peer) = match self.peer {
            Some(a) => (
                "tcp",
                format!(
                    "{}:{}:{}",
                    if a.is_ipv4() { "tcp4" } else { "tcp6" },
                    a.ip(),
                    a.port()
                ),
            ),
            None => ("unix", "unix".to_owned()),
        };
        let mut d: Dict = vec![
            ("type".into(), self.framing.name().into()),
            ("channel_type".into(), channel.into()),
            ("channel_framing".into(), self.framing.name().into()),
            ("peer".into(), peer.into()),
            ("is_secure".into(), Value::Bool(false)),
        ];
        if let Some(p) = self.protocol {
            d.push(("websocket_protocol".into(), p.into()));
        }
        if let Some(h) = &self.http_headers {
            let headers = h
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), Value::Str(v.clone())))
                .collect();
            d.push(("http_headers_received".into(), Value::Dict(headers)));
        }
        Value::Dict(d)
    }
}

/// Starts authenticating a HELLO for a realm with the methods its transport accepts, taking
/// the client's `authmethods` in its order of preference. A refusal names the method that
/// refused (`AuthError::method`).
pub fn hello(
    realm: &RealmConfig,
    auth: &TransportAuth,
    details: &Dict,
    session: crate::wamp::Id,
    transport: &TransportInfo,
    store: Option<&crate::store::principals::Principals>,
) -> Result<Outcome, AuthError> {
    let mut trying = None;
    try_methods(realm, auth, details, session, transport, store, &mut trying).map_err(|e| {
        AuthError {
            method: e.method.or(trying),
            ..e
        }
    })
}

/// `hello`, telling in `trying` which method it is trying (left `None` when none applies).
fn try_methods(
    realm: &RealmConfig,
    auth: &TransportAuth,
    details: &Dict,
    session: crate::wamp::Id,
    transport: &TransportInfo,
    store: Option<&crate::store::principals::Principals>,
    trying: &mut Option<&'static str>,
) -> Result<Outcome, AuthError> {
    let offered: Vec<&str> = match dict_get(details, "authmethods") {
        None => vec!["anonymous"],
        Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
        Some(other) => {
            return Err(denied(
                crate::wamp::uris::INVALID_ARGUMENT,
                format!(
                    "HELLO.Details.authmethods must be a list of strings, got {}",
                    other.kind()
                ),
            ))
        }
    };
    let authid = match dict_get(details, "authid") {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(denied(
                crate::wamp::uris::INVALID_ARGUMENT,
                format!(
                    "HELLO.Details.authid must be a string, got {}",
                    other.kind()
                ),
            ))
        }
    };
    let offered = if offered.is_empty() {
        vec!["anonymous"]
    } else {
        offered
    };
    let mut skipped: Vec<&str> = Vec::new();
    for method in &offered {
        *trying = Some(crate::metrics::auth_method_label(method));
        if let Some(dyn_auth) = auth.dynamic.get(*method) {
            let ask = |step| {
                dynamic::Ask::new(
                    dyn_auth,
                    &realm.name,
                    authid,
                    details,
                    session,
                    transport,
                    step,
                )
            };
            match *method {
                "anonymous" => return Ok(Outcome::Ask(ask(dynamic::Step::Anonymous))),
                "ticket" => {
                    // Crossbar asks for the ticket first and lets the authenticator judge it.
                    return Ok(Outcome::Challenge {
                        authmethod: "ticket",
                        extra: Dict::new(),
                        pending: Pending {
                            principal: principal(
                                authid.unwrap_or_default().to_owned(),
                                String::new(),
                                "ticket",
                                "dynamic",
                            ),
                            expect: Expect::TicketDynamic(ask(dynamic::Step::Ticket)),
                        },
                    });
                }
                "wampcra" => {
                    if authid.is_none() {
                        return Err(needs_authid("wampcra"));
                    }
                    return Ok(Outcome::Ask(ask(dynamic::Step::Cra)));
                }
                "scram" => {
                    if authid.is_none() {
                        return Err(needs_authid(scram::AUTHMETHOD));
                    }
                    return Ok(Outcome::Ask(ask(dynamic::Step::Scram(Box::new(
                        details.clone(),
                    )))));
                }
                "cryptosign" => match hello_pubkey(details) {
                    Some(pubkey) => {
                        return Ok(Outcome::Ask(ask(dynamic::Step::Cryptosign(pubkey))))
                    }
                    None => {
                        skipped.push(
                            "cryptosign needs HELLO.Details.authextra.pubkey (64 hex digits)",
                        );
                        continue;
                    }
                },
                _ => continue,
            }
        }
        match *method {
            "anonymous" => {
                if let Some(role) = &auth.anonymous {
                    return Ok(Outcome::Welcome(principal(
                        random_authid(),
                        role.clone(),
                        "anonymous",
                        "static",
                    )));
                }
            }
            "ticket" if auth.visitor.is_some() => {
                if let Some(v) = &auth.visitor {
                    return Ok(Outcome::Challenge {
                        authmethod: "ticket",
                        extra: Dict::new(),
                        pending: Pending {
                            // Visitors are throttled by address only: who they are is
                            // known from the ticket, and a shared authid would let one
                            // bad ticket lock every visitor out.
                            principal: principal(
                                String::new(),
                                v.role.clone(),
                                "ticket",
                                "visitor",
                            ),
                            expect: Expect::Visitor(Box::new(v.clone())),
                        },
                    });
                }
            }
            "ticket" => {
                if let Some(principals) = &auth.ticket {
                    let (p, principal) = lookup(principals, authid, "ticket", |p| &p.role)?;
                    return Ok(Outcome::Challenge {
                        authmethod: "ticket",
                        extra: Dict::new(),
                        pending: Pending {
                            principal,
                            expect: Expect::Ticket(p.ticket.clone()),
                        },
                    });
                }
            }
            "wampcra" => {
                if let Some(users) = &auth.wampcra {
                    if let Some(u) = authid.and_then(|id| users.get(id)) {
                        let (_, principal) = lookup(users, authid, "wampcra", |u| &u.role)?;
                        return Ok(cra_challenge(principal, u));
                    }
                    // Not in the config: the built-in store.
                    let rec = stored(store, &realm.name, authid, "wampcra")?;
                    let Some(cra) = rec.wampcra else {
                        return Err(denied(
                            crate::wamp::uris::NO_SUCH_PRINCIPAL,
                            format!("'{}' has no WAMP-CRA credential", rec.authid),
                        ));
                    };
                    let p = principal(rec.authid, rec.role, "wampcra", "static");
                    let salt = crate::config::CraSalt {
                        salt: cra.salt,
                        iterations: cra.iterations,
                        keylen: cra.keylen,
                    };
                    return Ok(cra_challenge_with(
                        p,
                        Some(&salt),
                        vec![cra.key.into_bytes()],
                    ));
                }
            }
            "scram" => {
                if let Some(principals) = &auth.scram {
                    if let Some(p) = authid.and_then(|id| principals.get(id)) {
                        let who = principal(
                            authid.unwrap_or_default().to_owned(),
                            p.role.clone(),
                            scram::AUTHMETHOD,
                            "static",
                        );
                        return scram_challenge(who, &p.credential, details);
                    }
                    let rec = stored(store, &realm.name, authid, scram::AUTHMETHOD)?;
                    let who = principal(rec.authid, rec.role, scram::AUTHMETHOD, "static");
                    return scram_challenge(who, &rec.scram, details);
                }
            }
            "cryptosign" => {
                if let Some(principals) = &auth.cryptosign {
                    // Without a usable public key this method cannot apply: try the next one.
                    let Some(pubkey) = hello_pubkey(details) else {
                        skipped.push(
                            "cryptosign needs HELLO.Details.authextra.pubkey (64 hex digits)",
                        );
                        continue;
                    };
                    // By authid, or else by the key itself.
                    let found = match authid {
                        Some(id) => principals.get(id).map(|p| (id.to_owned(), p)),
                        None => principals
                            .iter()
                            .find(|(_, p)| p.authorized_keys.contains(&pubkey))
                            .map(|(id, p)| (id.clone(), p)),
                    };
                    let (id, p) = found.ok_or_else(|| {
                        denied(
                            crate::wamp::uris::NO_SUCH_PRINCIPAL,
                            "no principal for this authid or public key",
                        )
                    })?;
                    if !p.authorized_keys.contains(&pubkey) {
                        return Err(denied(
                            crate::wamp::uris::NOT_AUTHORIZED,
                            format!("the public key is not authorized for '{id}'"),
                        ));
                    }
                    if p.realm.as_deref().is_some_and(|r| r != realm.name) {
                        return Err(denied(
                            crate::wamp::uris::NOT_AUTHORIZED,
                            format!("'{id}' may not join realm '{}'", realm.name),
                        ));
                    }
                    let principal = principal(id, p.role.clone(), "cryptosign", "static");
                    return Ok(cryptosign_challenge(principal, pubkey));
                }
            }
            _ => {}
        }
    }
    *trying = None;
    Err(denied(
        crate::wamp::uris::NO_AUTH_METHOD,
        format!(
            "none of the offered authentication methods [{}] is enabled for realm '{}' on this transport{}",
            offered.join(", "),
            realm.name,
            if skipped.is_empty() { String::new() } else { format!(" ({})", skipped.join("; ")) }
        ),
    ))
}

/// Checks the AUTHENTICATE signature (and its `extra`) against the pending challenge: a
/// principal to welcome, or (dynamic ticket) a question for the authenticator.
pub fn verify(pending: Pending, signature: &str, extra: &Dict) -> Result<Outcome, AuthError> {
    use subtle::ConstantTimeEq;
    let ok = match pending.expect {
        Expect::Ticket(t) => t.0.as_bytes().ct_eq(signature.as_bytes()).into(),
        Expect::TicketDynamic(ask) => return Ok(Outcome::Ask(ask.with_ticket(signature))),
        Expect::Visitor(v) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return match visitor::identify(&v, signature, now) {
                Ok((authid, authextra)) => {
                    let mut p = pending.principal;
                    p.authid = authid;
                    p.authextra = authextra;
                    Ok(Outcome::Welcome(p))
                }
                Err(why) => Err(denied(crate::wamp::uris::NOT_AUTHORIZED, why)),
            };
        }
        Expect::Cra { challenge, keys } => wampcra::verify(&keys, &challenge, signature),
        Expect::Cryptosign { challenge, pubkey } => {
            cryptosign::verify(&pubkey, &challenge, signature)
        }
        Expect::Scram(exchange) => match scram::verify(&exchange, signature, extra) {
            Ok(authextra) => {
                let mut p = pending.principal;
                p.authextra = authextra;
                return Ok(Outcome::Welcome(p));
            }
            Err(()) => false,
        },
    };
    if ok {
        Ok(Outcome::Welcome(pending.principal))
    } else {
        Err(denied(
            crate::wamp::uris::NOT_AUTHORIZED,
            format!(
                "{} authentication failed for authid '{}'",
                pending.principal.authmethod, pending.principal.authid
            ),
        ))
    }
}

/// A random authid for anonymous sessions, e.g. `QJ7C-RKNX-3M9P`.
fn random_authid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(14);
    for i in 0..12 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}
