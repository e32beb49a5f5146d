//! Fixed-window rate limits by key (a visitor's authid, a client address).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct RateLimit {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys tracked at most; beyond, the table is cleared (a flood of distinct keys cannot grow
/// memory without bound; it only resets the windows).
const MAX_KEYS: usize = 100_000;

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> RateLimit {
        RateLimit {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key`; Err(seconds to wait) when over the limit.
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut counts = self.counts.lock();
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_window() {
        let r = RateLimit::new(2, Duration::from_millis(50));
        assert!(r.hit("a").is_ok());
        assert!(r.hit("a").is_ok());
        assert!(r.hit("a").is_err());
        assert!(r.hit("b").is_ok(), "keys are separate");
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.hit("a").is_ok(), "a new window");
    }
}
