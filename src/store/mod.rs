//! Persistence in embedded sled — the only module that names sled.
//!
//! sled 0.34.7 is opened with an explicit, small page cache (its 1 GB default does not fit a
//! 512 MB VPS) and flushed before anything is acknowledged as durable and on close.

pub mod backup;
pub mod chat;
pub mod chat_files;
pub mod codec;
pub mod history;
pub mod principals;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// sled's page cache; documented in the README.
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data store error: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error(
        "the data directory {0} is in use by another process (a running switchboard server?): \
         stop the server or use another --data-dir"
    )]
    Locked(String),
    #[error("principal '{authid}' ({}) already exists", realm_label(realm.as_deref()))]
    Duplicate {
        authid: String,
        realm: Option<String>,
    },
    #[error("invalid principal: {0}")]
    Invalid(String),
}

/// How a principal's realm reads in messages: `realm 'x'` or `any realm`.
pub fn realm_label(realm: Option<&str>) -> String {
    match realm {
        Some(r) => format!("realm '{r}'"),
        None => "any realm".to_owned(),
    }
}

/// What the node remembers about itself across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Unix seconds of the first start with this data directory.
    pub created_at: u64,
    /// How many times the server has started with this data directory.
    pub starts: u64,
}

/// The store-wide write barrier: writers apply a batch (all its trees) holding it shared; a
/// snapshot holds it exclusively, so it sees each batch whole or not at all. Held only around
/// synchronous sled calls, never across an await (and never taken twice by one thread).
pub(crate) type Barrier = Arc<RwLock<()>>;

pub struct Store {
    db: sled::Db,
    barrier: Barrier,
    meta: sled::Tree,
    principals: sled::Tree,
    history: sled::Tree,
}

const NODE_KEY: &[u8] = b"node";

impl Store {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| match e {
                // sled reports its exclusive file lock held elsewhere as this I/O error.
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked(dir.display().to_string())
                }
                other => StoreError::Sled(other),
            })?;
        let meta = db.open_tree("meta")?;
        let principals = db.open_tree(principals::TREE)?;
        let history = db.open_tree(history::TREE)?;
        Ok(Store {
            db,
            barrier: Barrier::default(),
            meta,
            principals,
            history,
        })
    }

    /// The built-in principal store (`switchboard user …`).
    pub fn principals(&self) -> principals::Principals {
        principals::Principals::new(self.db.clone(), self.principals.clone())
    }

    /// Chat threads and messages.
    pub fn chat(&self) -> Result<chat::ChatStore, StoreError> {
        chat::ChatStore::open(&self.db, self.barrier.clone())
    }

    /// Event history (`store.event-history` in a realm's config).
    pub fn history(&self) -> history::History {
        history::History::new(self.db.clone(), self.history.clone(), self.barrier.clone())
    }

    /// Records one more start and returns the updated record (durable before it returns).
    pub async fn record_start(&self) -> Result<NodeRecord, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = match self.meta.get(NODE_KEY)? {
            Some(bytes) => {
                let old: NodeRecord = codec::decode(&bytes)?;
                NodeRecord {
                    created_at: old.created_at,
                    starts: old.starts + 1,
                }
            }
            None => NodeRecord {
                created_at: now,
                starts: 1,
            },
        };
        {
            let _shared = self.barrier.read();
            self.meta.insert(NODE_KEY, codec::encode(&record)?)?;
        }
        self.db.flush_async().await?;
        Ok(record)
    }

    /// Writes a consistent backup of every tree to `out` (see [`backup`]): takes the write
    /// barrier exclusively, flushes, and copies. Blocking: call it from a blocking thread.
    /// Writers wait while it runs.
    pub fn snapshot(
        &self,
        out: impl std::io::Write,
    ) -> Result<backup::Summary, backup::BackupError> {
        let _exclusive = self.barrier.write();
        self.db.flush()?;
        backup::write(&self.db, out)
    }

    /// Fills this (empty, just created) store from a verified backup's bytes; durable when it
    /// returns.
    pub fn load_backup(&self, bytes: &[u8]) -> Result<backup::Summary, backup::BackupError> {
        let _exclusive = self.barrier.write();
        backup::load(&self.db, bytes)
    }

    /// Whether the store holds nothing yet (no entry in any tree).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        for name in self.db.tree_names() {
            if !self.db.open_tree(name)?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Flushes everything; called on shutdown before the process exits.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::chat::{ChatMessage, Thread, ThreadStatus};
    use super::*;

    /// Snapshots taken while a writer applies (thread, message) pairs see each pair whole: the
    /// thread's `last_seq` always equals the number of its messages in the same snapshot.
    #[test]
    fn snapshots_under_load_are_consistent_across_trees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
        let chat = store.chat().unwrap();
        let writer = std::thread::spawn(move || {
            for seq in 1..=20_000u64 {
                let t = Thread {
                    id: 7,
                    created_ms: 0,
                    visitor: "v".into(),
                    visitor_name: None,
                    status: ThreadStatus::Open,
                    assignee: None,
                    last_seq: seq,
                    last_ms: seq,
                };
                let m = ChatMessage {
                    thread: 7,
                    seq,
                    ts_ms: seq,
                    sender: "v".into(),
                    sender_role: "visitor".into(),
                    sender_name: None,
                    text: format!("m{seq}"),
                    client_id: None,
                    call: None,
                    file: None,
                };
                chat.apply(&t, Some(&m)).unwrap();
            }
        });
        let mut seen = Vec::new();
        while !writer.is_finished() || seen.is_empty() {
            let mut bytes = Vec::new();
            store.snapshot(&mut bytes).unwrap();
            let copy = tempfile::tempdir().unwrap();
            let restored = Store::open(copy.path(), 1 << 20).unwrap();
            restored.load_backup(&bytes).unwrap();
            let c = restored.chat().unwrap();
            let last = c.thread(7).unwrap().map(|t| t.last_seq).unwrap_or(0);
            let n = c
                .messages(7, 1..=u64::MAX, usize::MAX, false)
                .unwrap()
                .len() as u64;
            assert_eq!(last, n, "thread and messages from different moments");
            seen.push(n);
        }
        writer.join().unwrap();
        eprintln!("snapshots saw {seen:?} messages");
        assert!(!seen.is_empty());
    }
}
