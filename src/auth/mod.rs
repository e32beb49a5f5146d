//! Who a session is and what it may do. Never imports the router.

pub mod cryptosign;
pub mod permissions;
pub mod scram;
pub mod throttle;
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
    pub uri: &'static str,
    pub message: String,
}

/// What a HELLO leads to: a session at once, or a CHALLENGE to answer.
pub enum Outcome {
    Welcome(Principal),
    Challenge {
        authmethod: &'static str,
        extra: Dict,
        pending: Pending,
    },
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
    Cra {
        challenge: String,
        keys: Vec<Vec<u8>>,
    },
    Cryptosign {
        challenge: [u8; 32],
        pubkey: [u8; 32],
    },
}

fn denied(uri: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        uri,
        message: message.into(),
    }
}

/// Finds a static principal by the HELLO's authid, for `method`.
fn lookup<'a, T>(
    table: &'a std::collections::HashMap<String, T>,
    authid: Option<&str>,
    method: &str,
    role: impl Fn(&T) -> &String,
) -> Result<(&'a T, Principal), AuthError> {
    let id = authid.ok_or_else(|| {
        denied(
            crate::wamp::uris::NO_SUCH_PRINCIPAL,
            format!("{method} authentication needs HELLO.Details.authid"),
        )
    })?;
    let entry = table.get(id).ok_or_else(|| {
        denied(
            crate::wamp::uris::NO_SUCH_PRINCIPAL,
            format!("no principal with authid '{id}'"),
        )
    })?;
    let principal = Principal {
        authid: id.to_owned(),
        authrole: role(entry).clone(),
        authmethod: method.to_owned(),
        authprovider: "static".into(),
        authextra: Dict::new(),
    };
    Ok((entry, principal))
}

/// Starts authenticating a HELLO for a realm with the methods its transport accepts, taking
/// the client's `authmethods` in its order of preference.
pub fn hello(
    realm: &RealmConfig,
    auth: &TransportAuth,
    details: &Dict,
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
        match *method {
            "anonymous" => {
                if let Some(role) = &auth.anonymous {
                    return Ok(Outcome::Welcome(Principal {
                        authid: random_authid(),
                        authrole: role.clone(),
                        authmethod: "anonymous".into(),
                        authprovider: "static".into(),
                        authextra: Dict::new(),
                    }));
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
                    let (u, principal) = lookup(users, authid, "wampcra", |u| &u.role)?;
                    let challenge = wampcra::challenge(&principal);
                    let mut extra = vec![("challenge".to_owned(), Value::Str(challenge.clone()))];
                    if let Some(s) = &u.salt {
                        extra.push(("salt".into(), Value::Str(s.salt.clone())));
                        extra.push(("iterations".into(), Value::UInt(u64::from(s.iterations))));
                        extra.push(("keylen".into(), Value::UInt(u64::from(s.keylen))));
                    }
                    let keys = wampcra::candidate_keys(u);
                    return Ok(Outcome::Challenge {
                        authmethod: "wampcra",
                        extra,
                        pending: Pending {
                            principal,
                            expect: Expect::Cra { challenge, keys },
                        },
                    });
                }
            }
            "cryptosign" => {
                if let Some(principals) = &auth.cryptosign {
                    // Without a usable public key this method cannot apply: try the next one.
                    let Some(pubkey) = dict_get(details, "authextra")
                        .and_then(Value::as_dict)
                        .and_then(|x| dict_get(x, "pubkey"))
                        .and_then(Value::as_str)
                        .and_then(cryptosign::parse_key)
                    else {
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
                    let principal = Principal {
                        authid: id,
                        authrole: p.role.clone(),
                        authmethod: "cryptosign".into(),
                        authprovider: "static".into(),
                        authextra: Dict::new(),
                    };
                    let challenge = cryptosign::challenge();
                    let extra = vec![
                        (
                            "challenge".to_owned(),
                            Value::Str(cryptosign::to_hex(&challenge)),
                        ),
                        ("channel_binding".to_owned(), Value::Null),
                    ];
                    return Ok(Outcome::Challenge {
                        authmethod: "cryptosign",
                        extra,
                        pending: Pending {
                            principal,
                            expect: Expect::Cryptosign { challenge, pubkey },
                        },
                    });
                }
            }
            _ => {}
        }
    }
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

/// Checks the AUTHENTICATE signature (and its `extra`) against the pending challenge.
pub fn verify(pending: Pending, signature: &str, _extra: &Dict) -> Result<Principal, AuthError> {
    use subtle::ConstantTimeEq;
    let ok = match &pending.expect {
        Expect::Ticket(t) => t.0.as_bytes().ct_eq(signature.as_bytes()).into(),
        Expect::Cra { challenge, keys } => wampcra::verify(keys, challenge, signature),
        Expect::Cryptosign { challenge, pubkey } => {
            cryptosign::verify(pubkey, challenge, signature)
        }
    };
    if ok {
        Ok(pending.principal)
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
