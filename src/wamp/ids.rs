//! WAMP identifiers and their scopes (spec "Identifiers").
//!
//! * global scope (session ids, publication ids): drawn at random from [1, 2^53];
//! * router scope (subscription and registration ids): random as well, so they cannot be guessed;
//! * session scope (request ids): the client's own, and for router-originated requests
//!   (INVOCATION, INTERRUPT) a per-session counter starting at 1.

use rand::Rng;

/// The largest id the spec allows: 2^53, so ids survive a trip through a JavaScript number.
pub const MAX_ID: u64 = 1 << 53;

pub type Id = u64;

/// A random id from the global/router scope.
pub fn random_id() -> Id {
    rand::rng().random_range(1..=MAX_ID)
}

/// Whether an id received from a peer is in the spec's range.
pub fn is_valid_id(id: u64) -> bool {
    (1..=MAX_ID).contains(&id)
}

/// A session-scope id sequence: 1, 2, 3, ... wrapping back to 1 after 2^53.
#[derive(Debug, Default)]
pub struct SessionScope(u64);

impl SessionScope {
    pub fn next_id(&mut self) -> Id {
        self.0 = if self.0 >= MAX_ID { 1 } else { self.0 + 1 };
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_in_range() {
        for _ in 0..1000 {
            assert!(is_valid_id(random_id()));
        }
        assert!(!is_valid_id(0));
        assert!(!is_valid_id(MAX_ID + 1));
    }

    #[test]
    fn session_scope_counts_from_one_and_wraps() {
        let mut s = SessionScope::default();
        assert_eq!(s.next_id(), 1);
        assert_eq!(s.next_id(), 2);
        s.0 = MAX_ID;
        assert_eq!(s.next_id(), 1);
    }
}
