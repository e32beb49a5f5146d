//! Persistence in embedded sled — the only module that names sled.
//!
//! sled 0.34.7 is opened with an explicit, small page cache (its 1 GB default does not fit a
//! 512 MB VPS) and flushed before anything is acknowledged as durable and on close.

pub mod codec;

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
}

const NODE_KEY: &[u8] = b"node";

impl Store {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .open()?;
        let meta = db.open_tree("meta")?;
        Ok(Store { db, meta })
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
