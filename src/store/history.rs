//! Event history: the last N events of each topic a realm keeps history for, in the `history`
//! sled tree, so late joiners can fetch them (`wamp.subscription.get_events`) and they survive
//! restarts.
//!
//! Keys are `realm \0 topic \0 seq` (seq big-endian, so a topic's events are contiguous and in
//! publication order); values go through `codec`. Each topic's (first, next) sequence is
//! cached in memory after its first use and the oldest events are trimmed on append.

use super::codec;
use super::StoreError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const TREE: &str = "history";

/// One stored event. The payload is kept as MessagePack of `[args, kwargs]` (self-describing,
/// binary-safe), opaque to this module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub publication: u64,
    /// Unix milliseconds when the router received it.
    pub timestamp_ms: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// An event to append: where, how many to keep, what.
#[derive(Debug, Clone)]
pub struct Append {
    pub realm: String,
    pub limit: usize,
    pub event: StoredEvent,
}

/// (realm, topic) → (first seq kept, next seq).
type Bounds = HashMap<(String, String), (u64, u64)>;

#[derive(Clone)]
pub struct History {
    db: sled::Db,
    tree: sled::Tree,
    bounds: std::sync::Arc<Mutex<Bounds>>,
    barrier: super::Barrier,
    flushes: Option<crate::metrics::FlushTimer>,
}

fn prefix(realm: &str, topic: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(realm.len() + topic.len() + 10);
    k.extend_from_slice(realm.as_bytes());
    k.push(0);
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k
}

fn key(realm: &str, topic: &str, seq: u64) -> Vec<u8> {
    let mut k = prefix(realm, topic);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(k: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = k.get(k.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

impl History {
    pub(super) fn new(db: sled::Db, tree: sled::Tree, barrier: super::Barrier) -> History {
        History {
            db,
            barrier,
            tree,
            bounds: Default::default(),
            flushes: None,
        }
    }

    /// Times every flush with `timer` from now on.
    pub fn time_flushes(&mut self, timer: crate::metrics::FlushTimer) {
        self.flushes = Some(timer);
    }

    /// The (first, next) sequence of a topic, read from disk the first time.
    fn bounds_of(&self, realm: &str, topic: &str) -> Result<(u64, u64), StoreError> {
        let p = prefix(realm, topic);
        let first = match self.tree.scan_prefix(&p).next() {
            Some(kv) => seq_of(&kv?.0).unwrap_or(0),
            None => 0,
        };
        let next = match self.tree.scan_prefix(&p).next_back() {
            Some(kv) => seq_of(&kv?.0).map(|s| s + 1).unwrap_or(0),
            None => 0,
        };
        Ok((first, next))
    }

    /// Appends events (in order) and trims each topic to its limit; durable when this returns.
    pub async fn append(&self, events: &[Append]) -> Result<(), StoreError> {
        {
            let _shared = self.barrier.read();
            let mut bounds = self.bounds.lock();
            for a in events {
                let id = (a.realm.clone(), a.event.topic.clone());
                let (mut first, mut next) = match bounds.get(&id) {
                    Some(b) => *b,
                    None => self.bounds_of(&a.realm, &a.event.topic)?,
                };
                self.tree.insert(
                    key(&a.realm, &a.event.topic, next),
                    codec::encode(&a.event)?,
                )?;
                next += 1;
                while next - first > a.limit as u64 {
                    self.tree.remove(key(&a.realm, &a.event.topic, first))?;
                    first += 1;
                }
                bounds.insert(id, (first, next));
            }
        }
        let start = std::time::Instant::now();
        let flushed = self.db.flush_async().await;
        if let Some(t) = &self.flushes {
            t.done(start);
        }
        flushed?;
        Ok(())
    }

    /// The kept events of a topic, oldest first.
    pub fn read(&self, realm: &str, topic: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(prefix(realm, topic)) {
            let (_, v) = kv?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    /// The topics of a realm that have stored events.
    pub fn topics(&self, realm: &str) -> Result<Vec<String>, StoreError> {
        let mut p = realm.as_bytes().to_vec();
        p.push(0);
        let mut topics: Vec<String> = Vec::new();
        for kv in self.tree.scan_prefix(&p) {
            let (k, _) = kv?;
            let rest = &k[p.len()..];
            let Some(end) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let topic = String::from_utf8_lossy(&rest[..end]);
            if topics.last().map(String::as_str) != Some(&topic) {
                topics.push(topic.into_owned());
            }
        }
        Ok(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree(TREE).unwrap();
        (dir, History::new(db, tree, Default::default()))
    }

    fn ev(topic: &str, n: u64) -> Append {
        Append {
            realm: "r".into(),
            limit: 3,
            event: StoredEvent {
                publication: n,
                timestamp_ms: n,
                topic: topic.into(),
                payload: vec![n as u8],
            },
        }
    }

    #[tokio::test]
    async fn keeps_the_last_n_per_topic_in_order() {
        let (_d, h) = history();
        let batch: Vec<Append> = (1..=5).map(|n| ev("a.b", n)).collect();
        h.append(&batch).await.unwrap();
        h.append(&[ev("a.bc", 9), ev("a.b", 6)]).await.unwrap();
        let kept: Vec<u64> = h
            .read("r", "a.b")
            .unwrap()
            .iter()
            .map(|e| e.publication)
            .collect();
        assert_eq!(kept, [4, 5, 6]);
        assert_eq!(h.read("r", "a.bc").unwrap().len(), 1, "topics do not mix");
        assert!(
            h.read("other", "a.b").unwrap().is_empty(),
            "realms do not mix"
        );
        assert_eq!(h.topics("r").unwrap(), ["a.b", "a.bc"]);
    }

    #[tokio::test]
    async fn sequence_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let h = History::new(db.clone(), db.open_tree(TREE).unwrap(), Default::default());
            h.append(&[ev("t", 1), ev("t", 2)]).await.unwrap();
        }
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let h = History::new(db.clone(), db.open_tree(TREE).unwrap(), Default::default());
        h.append(&[ev("t", 3), ev("t", 4)]).await.unwrap();
        let kept: Vec<u64> = h
            .read("r", "t")
            .unwrap()
            .iter()
            .map(|e| e.publication)
            .collect();
        assert_eq!(kept, [2, 3, 4]);
    }
}
