//! Persistence in embedded sled — the only module that names sled.
//!
//! sled 0.34.7 is opened with an explicit, small page cache (its 1 GB default does not fit a
//! 512 MB VPS) and flushed before anything is acknowledged as durable and on close.

pub mod chat;
pub mod chat_files;
pub mod codec;
pub mod history;
pub mod principals;

use serde::{Deserialize, Serialize};
use std::path::Path;
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

pub struct Store {
    db: sled::Db,
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
        chat::ChatStore::open(&self.db)
    }

    /// Event history (`store.event-history` in a realm's config).
    pub fn history(&self) -> history::History {
        history::History::new(self.db.clone(), self.history.clone())
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
        self.meta.insert(NODE_KEY, codec::encode(&record)?)?;
        self.db.flush_async().await?;
        Ok(record)
    }

    /// Flushes everything; called on shutdown before the process exits.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}
