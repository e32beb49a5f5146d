//! Static permissions: per role, URI rules (exact/prefix/wildcard) granting call, register,
//! publish and subscribe. The most specific rule decides (exact, then longest prefix, then the
//! most specific wildcard); everything not granted is denied.

use crate::config::{Allow, Disclose, RealmConfig};
use crate::wamp::pattern::PatternIndex;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Register => "register",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule asks for caller (on call) or publisher (on publish) disclosure.
    pub disclose: bool,
}

#[derive(Clone, Copy)]
struct Grant {
    allow: Allow,
    disclose: Disclose,
}

pub struct Permissions {
    roles: HashMap<String, PatternIndex<Grant>>,
    /// Roles with a dynamic authorizer: role → procedure.
    authorizers: HashMap<String, String>,
}

impl Permissions {
    pub fn from_config(realm: &RealmConfig) -> Permissions {
        let mut roles = HashMap::new();
        let mut authorizers = HashMap::new();
        for role in &realm.roles {
            if let Some(a) = &role.authorizer {
                authorizers.insert(role.name.clone(), a.clone());
            }
            let mut idx = PatternIndex::new();
            for p in &role.permissions {
                idx.insert(
                    &p.uri,
                    p.policy,
                    Grant {
                        allow: p.allow,
                        disclose: p.disclose,
                    },
                );
            }
            roles.insert(role.name.clone(), idx);
        }
        Permissions { roles, authorizers }
    }

    /// The procedure that decides for `role` what its static rules do not grant.
    pub fn authorizer(&self, role: &str) -> Option<&str> {
        self.authorizers.get(role).map(String::as_str)
    }

    /// Every (role, authorizer procedure).
    pub fn authorizers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.authorizers
            .iter()
            .map(|(r, a)| (r.as_str(), a.as_str()))
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    pub fn authorize(&self, role: &str, action: Action, uri: &str) -> Decision {
        let Some(grant) = self
            .roles
            .get(role)
            .and_then(|idx| idx.best_match(uri))
            .map(|(g, _)| *g)
        else {
            return Decision {
                allowed: false,
                disclose: false,
            };
        };
        let (allowed, disclose) = match action {
            Action::Call => (grant.allow.call, grant.disclose.caller),
            Action::Register => (grant.allow.register, false),
            Action::Publish => (grant.allow.publish, grant.disclose.publisher),
            Action::Subscribe => (grant.allow.subscribe, false),
        };
        Decision { allowed, disclose }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PermissionConfig, RoleConfig};
    use crate::wamp::uri::MatchPolicy;

    fn perms() -> Permissions {
        let rule = |uri: &str, policy, allow| PermissionConfig {
            uri: uri.into(),
            policy,
            allow,
            disclose: Disclose {
                caller: true,
                publisher: false,
            },
        };
        Permissions::from_config(&RealmConfig {
            name: "r".into(),
            history: Vec::new(),
            roles: vec![RoleConfig {
                name: "user".into(),
                permissions: vec![
                    rule(
                        "com.app.",
                        MatchPolicy::Prefix,
                        Allow {
                            call: true,
                            subscribe: true,
                            ..Allow::default()
                        },
                    ),
                    rule("com.app.admin", MatchPolicy::Prefix, Allow::default()),
                    rule(
                        "com.app.admin.ping",
                        MatchPolicy::Exact,
                        Allow {
                            call: true,
                            ..Allow::default()
                        },
                    ),
                ],
                authorizer: None,
            }],
        })
    }

    #[test]
    fn most_specific_rule_decides() {
        let p = perms();
        assert!(p.authorize("user", Action::Call, "com.app.x").allowed);
        assert!(p.authorize("user", Action::Call, "com.app.x").disclose);
        assert!(!p.authorize("user", Action::Publish, "com.app.x").allowed);
        assert!(
            !p.authorize("user", Action::Call, "com.app.admin.kill")
                .allowed
        );
        assert!(
            p.authorize("user", Action::Call, "com.app.admin.ping")
                .allowed
        );
        assert!(
            !p.authorize("user", Action::Call, "org.other").allowed,
            "not granted is denied"
        );
        assert!(!p.authorize("nobody", Action::Call, "com.app.x").allowed);
    }
}
