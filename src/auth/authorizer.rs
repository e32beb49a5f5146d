//! Dynamic authorization, Crossbar style: a role names a procedure (`authorizer`) that the
//! router calls with `(session, uri, action, options)` to decide each action it has no static
//! answer for. This module holds what does not depend on the router: the call's arguments,
//! reading the answer, and the decision cache.
//!
//! The cache is keyed per (role, uri, action) as Crossbar keys it (the realm is implied: each
//! realm has its own cache) and holds only answers that asked to be cached. Looking up a
//! cached decision takes a read lock and hashes borrowed strings: no allocation.

use super::permissions::{Action, Decision};
use super::Principal;
use crate::wamp::value::{dict_get, Dict, List, Value};
use crate::wamp::{Id, Payload};
use parking_lot::RwLock;
use std::collections::HashMap;

/// Cached decisions per role before the role's cache is dropped and refilled (a bound against
/// a client probing many distinct URIs).
const MAX_PER_ROLE: usize = 10_000;

/// Per URI, a decision slot for each action.
type ByUri = HashMap<String, [Option<Decision>; 4]>;

#[derive(Default)]
pub struct DecisionCache {
    roles: RwLock<HashMap<String, ByUri>>,
}

fn slot(action: Action) -> usize {
    match action {
        Action::Call => 0,
        Action::Register => 1,
        Action::Publish => 2,
        Action::Subscribe => 3,
    }
}

impl DecisionCache {
    pub fn get(&self, role: &str, uri: &str, action: Action) -> Option<Decision> {
        self.roles.read().get(role)?.get(uri)?[slot(action)]
    }

    pub fn put(&self, role: &str, uri: &str, action: Action, decision: Decision) {
        let mut roles = self.roles.write();
        let per_role = roles.entry(role.to_owned()).or_default();
        if per_role.len() >= MAX_PER_ROLE && !per_role.contains_key(uri) {
            per_role.clear();
        }
        per_role.entry(uri.to_owned()).or_default()[slot(action)] = Some(decision);
    }

    /// Forgets every cached decision for `role` (its authorizer went away).
    pub fn clear_role(&self, role: &str) {
        self.roles.write().remove(role);
    }

    /// Forgets every cached decision (the permissions were reloaded).
    pub fn clear(&self) {
        self.roles.write().clear();
    }

    pub fn len(&self) -> usize {
        self.roles.read().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.roles.read().is_empty()
    }
}

/// The session description an authorizer receives as its first argument (Crossbar's shape).
pub fn session_details(session: Id, principal: &Principal, transport: Value) -> Value {
    let mut d: Dict = vec![
        ("session".into(), Value::UInt(session)),
        ("authid".into(), principal.authid.clone().into()),
        ("authrole".into(), principal.authrole.clone().into()),
        ("authmethod".into(), principal.authmethod.clone().into()),
        ("authprovider".into(), principal.authprovider.clone().into()),
    ];
    if !principal.authextra.is_empty() {
        d.push(("authextra".into(), Value::Dict(principal.authextra.clone())));
    }
    d.push(("transport".into(), transport));
    Value::Dict(d)
}

/// `(session, uri, action, options)`, the authorizer's positional arguments.
pub fn request_args(
    session: Id,
    principal: &Principal,
    transport: Value,
    uri: &str,
    action: Action,
    options: &Dict,
) -> List {
    vec![
        session_details(session, principal, transport),
        Value::Str(uri.to_owned()),
        Value::Str(action.verb().to_owned()),
        Value::Dict(options.clone()),
    ]
}

/// What an authorizer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub decision: Decision,
    pub cache: bool,
}

/// Reads an authorizer's result: `true`/`false`, or `{allow, disclose, cache}`. Anything else
/// is an error (and the action is denied).
pub fn parse_answer(result: &Payload) -> Result<Answer, String> {
    let first = match result.args.as_deref() {
        Some([v]) => v,
        Some([]) | None => return Err("the authorizer returned nothing".into()),
        Some(_) => return Err("the authorizer returned several values".into()),
    };
    let flag = |d: &Dict, key: &str| -> Result<bool, String> {
        match dict_get(d, key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!(
                "the authorizer's '{key}' must be a bool, got {}",
                v.kind()
            )),
        }
    };
    match first {
        Value::Bool(allowed) => Ok(Answer {
            decision: Decision {
                allowed: *allowed,
                disclose: false,
            },
            cache: false,
        }),
        Value::Dict(d) => {
            if !matches!(dict_get(d, "allow"), Some(Value::Bool(_))) {
                return Err("the authorizer's answer has no boolean 'allow'".into());
            }
            Ok(Answer {
                decision: Decision {
                    allowed: flag(d, "allow")?,
                    disclose: flag(d, "disclose")?,
                },
                cache: flag(d, "cache")?,
            })
        }
        other => Err(format!(
            "the authorizer must return a bool or a dict, got {}",
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: Value) -> Result<Answer, String> {
        parse_answer(&Payload::args(vec![v]))
    }

    #[test]
    fn answers_in_both_shapes() {
        assert_eq!(
            answer(Value::Bool(true)).unwrap(),
            Answer {
                decision: Decision {
                    allowed: true,
                    disclose: false
                },
                cache: false
            }
        );
        let d = Value::Dict(vec![
            ("allow".into(), Value::Bool(true)),
            ("disclose".into(), Value::Bool(true)),
            ("cache".into(), Value::Bool(true)),
        ]);
        let a = answer(d).unwrap();
        assert!(a.decision.allowed && a.decision.disclose && a.cache);
        let deny = Value::Dict(vec![("allow".into(), Value::Bool(false))]);
        assert!(!answer(deny).unwrap().decision.allowed);
    }

    #[test]
    fn garbage_answers_are_errors() {
        assert!(answer(Value::UInt(1)).is_err());
        assert!(answer(Value::Str("yes".into())).is_err());
        assert!(answer(Value::Dict(vec![])).is_err());
        assert!(answer(Value::Dict(vec![("allow".into(), Value::UInt(1))])).is_err());
        assert!(answer(Value::Dict(vec![
            ("allow".into(), Value::Bool(true)),
            ("cache".into(), Value::Str("x".into()))
        ]))
        .is_err());
        assert!(parse_answer(&Payload::default()).is_err());
        assert!(parse_answer(&Payload::args(vec![Value::Bool(true), Value::Bool(true)])).is_err());
    }

    #[test]
    fn cache_is_per_role_uri_and_action() {
        let c = DecisionCache::default();
        let yes = Decision {
            allowed: true,
            disclose: false,
        };
        c.put("r", "com.a", Action::Call, yes);
        assert_eq!(c.get("r", "com.a", Action::Call), Some(yes));
        assert_eq!(c.get("r", "com.a", Action::Publish), None);
        assert_eq!(c.get("r2", "com.a", Action::Call), None);
        assert_eq!(c.get("r", "com.b", Action::Call), None);
        c.clear_role("r");
        assert_eq!(c.get("r", "com.a", Action::Call), None);
        assert!(c.is_empty());
    }

    #[test]
    fn cache_is_bounded_per_role() {
        let c = DecisionCache::default();
        let d = Decision {
            allowed: true,
            disclose: false,
        };
        for i in 0..MAX_PER_ROLE + 5 {
            c.put("r", &format!("u{i}"), Action::Call, d);
        }
        assert!(c.len() <= MAX_PER_ROLE);
    }
}
