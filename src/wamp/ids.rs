//! WAMP identifiers and their scopes (spec "Identifiers").
//!
//! * global scope (session ids, publication ids): drawn at random from [1, 2^53];
//! * router scope (subscription and registration ids): random as well, so they cannot be guessed;
//! * session scope (request ids): the client's own, and for router-originated requests
//!   (INVOCATION, INTERRUPT) a per-session counter starting at 1.

use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The next id of a session-scope sequence kept in `counter`: 1, 2, 3, ... wrapping back to 1
/// after 2^53. Lock-free, so any thread routing to the session may draw one.
pub fn next_in_session_scope(counter: &AtomicU64) -> Id {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    n % MAX_ID + 1
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
        let c = AtomicU64::new(0);
        assert_eq!(next_in_session_scope(&c), 1);
        assert_eq!(next_in_session_scope(&c), 2);
        c.store(MAX_ID - 1, Ordering::Relaxed);
        assert_eq!(next_in_session_scope(&c), MAX_ID);
        assert_eq!(next_in_session_scope(&c), 1);
    }
}
