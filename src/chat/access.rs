//! Who may touch what under the chat prefix — enforced by the router for every session, not by
//! the UI: a visitor subscribes only to its own threads, staff to all of them and to the inbox;
//! nobody but the chat service publishes or registers there; the procedures are callable by
//! visitors and staff (each checks membership of the thread it is given).

use super::Roles;
use crate::auth::permissions::{Action, Decision};
use crate::router::peer::Peer;
use crate::router::realm::AccessPolicy;
use crate::store::chat::Thread;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The chat service's current threads by id (shared with it: one table, one truth).
pub type Threads = Arc<Mutex<HashMap<u64, Thread>>>;

pub struct ChatPolicy {
    pub prefix: String,
    pub roles: Roles,
    pub threads: Threads,
}

const ALLOW: Decision = Decision {
    allowed: true,
    disclose: false,
};
const DENY: Decision = Decision {
    allowed: false,
    disclose: false,
};

impl AccessPolicy for ChatPolicy {
    fn decide(&self, peer: &Peer, action: Action, uri: &str) -> Option<Decision> {
        let role = peer.principal.authrole.as_str();
        let staff = self.roles.is_staff(role);
        let visitor = role == self.roles.visitor;
        let rest = &uri[self.prefix.len()..];
        let d = match action {
            Action::Call if staff || visitor => ALLOW,
            Action::Subscribe => match rest.strip_prefix("thread.") {
                // Staff may follow every thread at once (a prefix subscription to `thread.`).
                Some(_) if staff => ALLOW,
                Some(id) => match id.parse::<u64>() {
                    Ok(id) if visitor => {
                        let owns = self
                            .threads
                            .lock()
                            .get(&id)
                            .is_some_and(|t| t.visitor == peer.principal.authid);
                        if owns {
                            ALLOW
                        } else {
                            DENY
                        }
                    }
                    _ => DENY,
                },
                None => match rest {
                    "inbox" | "presence" if staff => ALLOW,
                    "status" if staff || visitor => ALLOW,
                    _ => DENY,
                },
            },
            _ => DENY,
        };
        Some(d)
    }
}
