//! Slows down password guessing: failed authentications are counted per authid (within a
//! realm) and per client address in a fixed window; past the limit, attempts for that key are
//! refused without checking credentials until the window ends.
//!
//! Policy (documented in the README): 5 failures per authid and 20 per client address per
//! 60 seconds. The table is bounded; expired entries are dropped when it fills.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);
pub const PER_AUTHID: u32 = 5;
pub const PER_ADDRESS: u32 = 20;
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    failures: u32,
    since: Instant,
}

#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// `Err(wait)` if `key` is locked out (with the time until its window ends).
    pub fn check(&self, key: &str, limit: u32) -> Result<(), Duration> {
        let map = self.entries.lock();
        match map.get(key) {
            Some(e) if e.since.elapsed() < WINDOW && e.failures >= limit => {
                Err(WINDOW.saturating_sub(e.since.elapsed()))
            }
            _ => Ok(()),
        }
    }

    pub fn fail(&self, key: &str) {
        let mut map = self.entries.lock();
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            map.retain(|_, e| e.since.elapsed() < WINDOW);
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        let e = map.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            since: Instant::now(),
        });
        if e.since.elapsed() >= WINDOW {
            *e = Entry {
                failures: 0,
                since: Instant::now(),
            };
        }
        e.failures += 1;
    }

    pub fn reset(&self, key: &str) {
        self.entries.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_the_limit_and_resets_on_success() {
        let t = Throttle::default();
        for _ in 0..PER_AUTHID {
            assert!(t.check("joe", PER_AUTHID).is_ok());
            t.fail("joe");
        }
        let wait = t.check("joe", PER_AUTHID).unwrap_err();
        assert!(wait <= WINDOW && wait > Duration::from_secs(50));
        assert!(t.check("ann", PER_AUTHID).is_ok(), "other keys unaffected");
        t.reset("joe");
        assert!(t.check("joe", PER_AUTHID).is_ok());
    }
}
