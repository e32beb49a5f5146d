//! Who is online, from the router's own session lifecycle (`wamp.session.on_join` and
//! `on_leave`, which also fire when keep-alive finds a connection dead): a person is online while
//! at least one of their sessions is joined — several tabs count once — and "last seen" is when
//! the last one left. Visitors report the page they are on.

use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub authid: String,
    pub role: String,
    pub sessions: usize,
    pub last_seen_ms: u64,
    /// (URL, title) of the page the visitor's widget last reported.
    pub page: Option<(String, String)>,
}

#[derive(Default)]
pub struct Presence {
    people: Mutex<HashMap<String, Person>>,
    /// session id → authid.
    sessions: Mutex<HashMap<u64, String>>,
}

/// What changed, for the presence events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Online(Person),
    Offline(Person),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Presence {
    /// A session joined; `Some` when its person just came online.
    pub fn joined(&self, session: u64, authid: &str, role: &str) -> Option<Change> {
        self.sessions.lock().insert(session, authid.to_owned());
        let mut people = self.people.lock();
        let p = people.entry(authid.to_owned()).or_insert_with(|| Person {
            authid: authid.to_owned(),
            role: role.to_owned(),
            sessions: 0,
            last_seen_ms: 0,
            page: None,
        });
        p.sessions += 1;
        p.last_seen_ms = now_ms();
        (p.sessions == 1).then(|| Change::Online(p.clone()))
    }

    /// A session left; `Some` when its person just went offline.
    pub fn left(&self, session: u64) -> Option<Change> {
        let authid = self.sessions.lock().remove(&session)?;
        let mut people = self.people.lock();
        let p = people.get_mut(&authid)?;
        p.sessions = p.sessions.saturating_sub(1);
        p.last_seen_ms = now_ms();
        (p.sessions == 0).then(|| Change::Offline(p.clone()))
    }

    pub fn set_page(&self, authid: &str, url: String, title: String) {
        if let Some(p) = self.people.lock().get_mut(authid) {
            p.page = Some((url, title));
        }
    }

    pub fn is_online(&self, authid: &str) -> bool {
        self.people
            .lock()
            .get(authid)
            .is_some_and(|p| p.sessions > 0)
    }

    /// Everyone online with one of `roles`.
    pub fn online(&self, roles: impl Fn(&str) -> bool) -> Vec<Person> {
        let mut v: Vec<Person> = self
            .people
            .lock()
            .values()
            .filter(|p| p.sessions > 0 && roles(&p.role))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.authid.cmp(&b.authid));
        v
    }

    pub fn last_seen(&self, authid: &str) -> Option<u64> {
        self.people.lock().get(authid).map(|p| p.last_seen_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_tabs_count_once() {
        let p = Presence::default();
        assert!(matches!(
            p.joined(1, "ann", "visitor"),
            Some(Change::Online(_))
        ));
        assert_eq!(p.joined(2, "ann", "visitor"), None, "second tab");
        assert!(p.is_online("ann"));
        assert_eq!(p.left(1), None, "one tab still open");
        assert!(p.is_online("ann"));
        assert!(matches!(p.left(2), Some(Change::Offline(_))));
        assert!(!p.is_online("ann"));
        assert!(p.last_seen("ann").is_some_and(|t| t > 0));
        assert_eq!(p.left(2), None, "unknown session");
        assert!(p.online(|_| true).is_empty());
    }
}
