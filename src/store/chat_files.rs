//! Chat attachments in sled: `chat_files` (thread ‖ file id → `FileRecord`) and
//! `chat_file_data` (thread ‖ file id → version byte ‖ the bytes). Keyed by thread first, so
//! deleting a thread deletes its files with one prefix scan (`ChatStore::delete_thread`).

use super::chat::ChatStore;
use super::codec;
use super::StoreError;
use serde::{Deserialize, Serialize};

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub id: u64,
    pub thread: u64,
    /// The authid of the member who uploaded it (only they may attach it to a message).
    pub uploader: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub created_ms: u64,
}

fn file_key(thread: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&thread.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

impl ChatStore {
    /// Stores a file and its bytes (not yet durable: `flush`).
    pub fn put_file(&self, f: &FileRecord, bytes: &[u8]) -> Result<(), StoreError> {
        let key = file_key(f.thread, f.id);
        // A backup sees a file with its bytes or not at all.
        let _shared = self.barrier.read();
        let mut data = Vec::with_capacity(bytes.len() + 1);
        data.push(codec::SCHEMA_VERSION);
        data.extend_from_slice(bytes);
        self.file_data.insert(key, data)?;
        self.files.insert(key, codec::encode(f)?)?;
        Ok(())
    }

    pub fn file(&self, thread: u64, id: u64) -> Result<Option<FileRecord>, StoreError> {
        match self.files.get(file_key(thread, id))? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// A file's bytes (a view of the stored value, without copying).
    pub fn file_bytes(&self, thread: u64, id: u64) -> Result<Option<sled::IVec>, StoreError> {
        match self.file_data.get(file_key(thread, id))? {
            None => Ok(None),
            Some(v) => match v.first() {
                Some(&codec::SCHEMA_VERSION) => Ok(Some(v.subslice(1, v.len() - 1))),
                Some(&other) => Err(codec::CodecError::Version(other).into()),
                None => Err(codec::CodecError::Empty.into()),
            },
        }
    }

    /// The bytes of every stored file (for the storage quota).
    pub fn files_total_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for kv in self.files.iter() {
            let f: FileRecord = codec::decode(&kv?.1)?;
            total += f.size;
        }
        Ok(total)
    }
}
