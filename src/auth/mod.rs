//! Who a session is and what it may do. Never imports the router.

pub mod permissions;

use crate::config::{RealmConfig, TransportAuth};
use crate::wamp::value::{dict_get, Dict, Value};
use rand::Rng;

/// The authenticated identity of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
}

/// Why a HELLO was refused: an ABORT reason URI and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub uri: &'static str,
    pub message: String,
}

/// Authenticates a HELLO for a realm with the methods its transport accepts. Only anonymous
/// authentication exists so far.
pub fn authenticate(
    realm: &RealmConfig,
    auth: &TransportAuth,
    details: &Dict,
) -> Result<Principal, AuthError> {
    let offered: Vec<&str> = match dict_get(details, "authmethods") {
        None => vec!["anonymous"],
        Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
        Some(other) => {
            return Err(AuthError {
                uri: crate::wamp::uris::INVALID_ARGUMENT,
                message: format!(
                    "HELLO.Details.authmethods must be a list of strings, got {}",
                    other.kind()
                ),
            })
        }
    };
    let anonymous_ok = offered.is_empty() || offered.contains(&"anonymous");
    match (&auth.anonymous, anonymous_ok) {
        (Some(role), true) => Ok(Principal {
            authid: random_authid(),
            authrole: role.clone(),
            authmethod: "anonymous".into(),
            authprovider: "static".into(),
        }),
        _ => Err(AuthError {
            uri: crate::wamp::uris::NO_AUTH_METHOD,
            message: format!(
                "none of the offered authentication methods [{}] is enabled for realm '{}' on this transport",
                offered.join(", "),
                realm.name
            ),
        }),
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
