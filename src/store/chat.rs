//! Chat threads and messages in sled.
//!
//! Trees: `chat_threads` (thread id → `Thread`), `chat_messages` (thread ‖ seq → `ChatMessage`,
//! both big-endian so a thread's messages are contiguous and ordered), `chat_dedupe` (thread ‖
//! sender ‖ 0 ‖ client id → seq: a retried send finds its first result), `chat_reads` (thread ‖
//! member → "read up to" seq), `chat_by_visitor` (visitor ‖ 0 ‖ thread → ()).
//!
//! `chat_files` (thread ‖ file id → `FileRecord`) and `chat_file_data` (thread ‖ file id → the
//! bytes, after a version byte) hold attachments (see `chat_files.rs`).
//!
//! Writes are applied by the caller in order and made durable together: `flush` is one
//! `flush_async` for a whole batch (group commit).
//!
//! Message layouts: version 1 (no attachment) is still read; version 2 adds `file`.

use super::codec;
use super::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreadStatus {
    Open,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    pub id: u64,
    pub created_ms: u64,
    /// The visitor's authid (the thread's owner).
    pub visitor: String,
    pub visitor_name: Option<String>,
    pub status: ThreadStatus,
    /// The staff member it is assigned to.
    pub assignee: Option<String>,
    /// The last message's sequence number (0: none yet) and time.
    pub last_seq: u64,
    pub last_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub thread: u64,
    pub seq: u64,
    pub ts_ms: u64,
    pub sender: String,
    pub sender_role: String,
    pub sender_name: Option<String>,
    pub text: String,
    pub client_id: Option<String>,
    /// A call's outcome (the service's "Video call, 4 min" lines): what kind of message this is
    /// for the UIs, which render it as a call line, never as markup.
    pub call: Option<CallRecord>,
    /// An attached file (its bytes are in `chat_file_data`).
    pub file: Option<FileRef>,
}

/// How a call in a thread ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub video: bool,
    /// `completed`, `missed`, `declined` or `busy`.
    pub outcome: String,
    /// From the answer to the hang-up (0 unless completed).
    pub duration_ms: u64,
}

/// What a message says about its attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub id: u64,
    pub name: String,
    /// The content type it is served with (checked against the bytes for images).
    pub content_type: String,
    pub size: u64,
}

/// The layout version of stored messages (`ChatMessageV1` is version 1).
const MESSAGE_VERSION: u8 = 2;

/// A message as version 1 stored it (before call records and attachments).
#[derive(Deserialize)]
struct ChatMessageV1 {
    thread: u64,
    seq: u64,
    ts_ms: u64,
    sender: String,
    sender_role: String,
    sender_name: Option<String>,
    text: String,
    client_id: Option<String>,
}

fn encode_message(m: &ChatMessage) -> Result<Vec<u8>, codec::CodecError> {
    codec::encode_as(MESSAGE_VERSION, m)
}

pub(super) fn decode_message(bytes: &[u8]) -> Result<ChatMessage, codec::CodecError> {
    match codec::split_version(bytes)? {
        (MESSAGE_VERSION, body) => codec::decode_body(body),
        (1, body) => {
            let v: ChatMessageV1 = codec::decode_body(body)?;
            Ok(ChatMessage {
                thread: v.thread,
                seq: v.seq,
                ts_ms: v.ts_ms,
                sender: v.sender,
                sender_role: v.sender_role,
                sender_name: v.sender_name,
                text: v.text,
                client_id: v.client_id,
                call: None,
                file: None,
            })
        }
        (v, _) => Err(codec::CodecError::Version(v)),
    }
}

#[derive(Clone)]
pub struct ChatStore {
    db: sled::Db,
    threads: sled::Tree,
    messages: sled::Tree,
    dedupe: sled::Tree,
    reads: sled::Tree,
    by_visitor: sled::Tree,
    pub(super) files: sled::Tree,
    pub(super) file_data: sled::Tree,
    pub(super) barrier: super::Barrier,
    flushes: Option<crate::metrics::FlushTimer>,
}

fn msg_key(thread: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&thread.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn dedupe_key(thread: u64, sender: &str, client_id: &str) -> Vec<u8> {
    let mut k = thread.to_be_bytes().to_vec();
    k.extend_from_slice(sender.as_bytes());
    k.push(0);
    k.extend_from_slice(client_id.as_bytes());
    k
}

fn member_key(thread: u64, member: &str) -> Vec<u8> {
    let mut k = thread.to_be_bytes().to_vec();
    k.extend_from_slice(member.as_bytes());
    k
}

fn visitor_key(visitor: &str, thread: u64) -> Vec<u8> {
    let mut k = visitor.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&thread.to_be_bytes());
    k
}

impl ChatStore {
    pub(super) fn open(db: &sled::Db, barrier: super::Barrier) -> Result<ChatStore, StoreError> {
        Ok(ChatStore {
            barrier,
            db: db.clone(),
            threads: db.open_tree("chat_threads")?,
            messages: db.open_tree("chat_messages")?,
            dedupe: db.open_tree("chat_dedupe")?,
            reads: db.open_tree("chat_reads")?,
            by_visitor: db.open_tree("chat_by_visitor")?,
            files: db.open_tree("chat_files")?,
            file_data: db.open_tree("chat_file_data")?,
            flushes: None,
        })
    }

    /// Times every flush with `timer` from now on.
    pub fn time_flushes(&mut self, timer: crate::metrics::FlushTimer) {
        self.flushes = Some(timer);
    }

    pub fn thread(&self, id: u64) -> Result<Option<Thread>, StoreError> {
        match self.threads.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn put_thread(&self, t: &Thread) -> Result<(), StoreError> {
        let _shared = self.barrier.read();
        self.put_thread_unguarded(t)
    }

    fn put_thread_unguarded(&self, t: &Thread) -> Result<(), StoreError> {
        self.threads.insert(t.id.to_be_bytes(), codec::encode(t)?)?;
        self.by_visitor.insert(visitor_key(&t.visitor, t.id), &[])?;
        Ok(())
    }

    /// Every thread (the staff inbox), in id order.
    pub fn threads(&self) -> Result<Vec<Thread>, StoreError> {
        let mut out = Vec::new();
        for kv in self.threads.iter() {
            out.push(codec::decode(&kv?.1)?);
        }
        Ok(out)
    }

    /// A visitor's thread ids.
    pub fn threads_of(&self, visitor: &str) -> Result<Vec<u64>, StoreError> {
        let mut p = visitor.as_bytes().to_vec();
        p.push(0);
        let mut out = Vec::new();
        for kv in self.by_visitor.scan_prefix(&p) {
            let (k, _) = kv?;
            if let Some(id) = k.get(p.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                out.push(u64::from_be_bytes(id));
            }
        }
        Ok(out)
    }

    /// Applies a thread's new state and, if any, its new message together: a backup sees both
    /// or neither (not yet durable: `flush`).
    pub fn apply(&self, t: &Thread, m: Option<&ChatMessage>) -> Result<(), StoreError> {
        let _shared = self.barrier.read();
        self.put_thread_unguarded(t)?;
        match m {
            Some(m) => self.put_message_unguarded(m),
            None => Ok(()),
        }
    }

    /// Applies a message (not yet durable: `flush`).
    pub fn put_message(&self, m: &ChatMessage) -> Result<(), StoreError> {
        let _shared = self.barrier.read();
        self.put_message_unguarded(m)
    }

    fn put_message_unguarded(&self, m: &ChatMessage) -> Result<(), StoreError> {
        self.messages
            .insert(msg_key(m.thread, m.seq), encode_message(m)?)?;
        if let Some(c) = &m.client_id {
            self.dedupe
                .insert(dedupe_key(m.thread, &m.sender, c), &m.seq.to_be_bytes())?;
        }
        Ok(())
    }

    /// The message an earlier send with this client id created.
    pub fn deduplicated(
        &self,
        thread: u64,
        sender: &str,
        client_id: &str,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let Some(seq) = self.dedupe.get(dedupe_key(thread, sender, client_id))? else {
            return Ok(None);
        };
        let Ok(seq) = <[u8; 8]>::try_from(&seq[..]) else {
            return Ok(None);
        };
        match self
            .messages
            .get(msg_key(thread, u64::from_be_bytes(seq)))?
        {
            Some(v) => Ok(Some(decode_message(&v)?)),
            None => Ok(None),
        }
    }

    /// Messages of a thread with seq in `range`, oldest first, at most `limit`; with `newest`,
    /// the last `limit` of the range, newest first.
    pub fn messages(
        &self,
        thread: u64,
        range: std::ops::RangeInclusive<u64>,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let iter = self
            .messages
            .range(msg_key(thread, *range.start())..=msg_key(thread, *range.end()));
        let mut out = Vec::new();
        let mut push =
            |kv: Result<(sled::IVec, sled::IVec), sled::Error>| -> Result<bool, StoreError> {
                out.push(decode_message(&kv?.1)?);
                Ok(out.len() < limit)
            };
        if newest {
            for kv in iter.rev() {
                if !push(kv)? {
                    break;
                }
            }
        } else {
            for kv in iter {
                if !push(kv)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn set_read(&self, thread: u64, member: &str, seq: u64) -> Result<(), StoreError> {
        let _shared = self.barrier.read();
        self.reads
            .insert(member_key(thread, member), &seq.to_be_bytes())?;
        Ok(())
    }

    /// Every member's "read up to" of a thread.
    pub fn reads_of(&self, thread: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.reads.scan_prefix(thread.to_be_bytes()) {
            let (k, v) = kv?;
            let member = String::from_utf8_lossy(&k[8..]).into_owned();
            if let Ok(seq) = <[u8; 8]>::try_from(&v[..]) {
                out.push((member, u64::from_be_bytes(seq)));
            }
        }
        Ok(out)
    }

    pub fn read_up_to(&self, thread: u64, member: &str) -> Result<u64, StoreError> {
        Ok(self
            .reads
            .get(member_key(thread, member))?
            .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Messages whose text contains `needle` (already lower-case), newest first, at most
    /// `limit`. A full scan: fine for a business's chat history, not for millions of messages.
    pub fn search(&self, needle: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
        let mut found: Vec<ChatMessage> = Vec::new();
        for kv in self.messages.iter() {
            let m = decode_message(&kv?.1)?;
            if m.text.to_lowercase().contains(needle) {
                found.push(m);
            }
        }
        found.sort_by_key(|m| std::cmp::Reverse((m.ts_ms, m.thread, m.seq)));
        found.truncate(limit);
        Ok(found)
    }

    /// Deletes a thread and everything in it (not yet durable: `flush`).
    pub fn delete_thread(&self, t: &Thread) -> Result<(), StoreError> {
        let _shared = self.barrier.read();
        let prefix = t.id.to_be_bytes();
        for tree in [
            &self.messages,
            &self.dedupe,
            &self.reads,
            &self.files,
            &self.file_data,
        ] {
            let keys: Vec<sled::IVec> =
                tree.scan_prefix(prefix).keys().collect::<Result<_, _>>()?;
            for k in keys {
                tree.remove(k)?;
            }
        }
        self.by_visitor.remove(visitor_key(&t.visitor, t.id))?;
        self.threads.remove(prefix)?;
        Ok(())
    }

    /// Makes everything applied so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let start = std::time::Instant::now();
        let flushed = self.db.flush_async().await;
        if let Some(t) = &self.flushes {
            t.done(start);
        }
        flushed?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct OldMessage<'a> {
        thread: u64,
        seq: u64,
        ts_ms: u64,
        sender: &'a str,
        sender_role: &'a str,
        sender_name: Option<&'a str>,
        text: &'a str,
        client_id: Option<&'a str>,
    }

    #[test]
    fn version_1_messages_are_still_read_and_version_2_round_trips() {
        let old = codec::encode(&OldMessage {
            thread: 3,
            seq: 9,
            ts_ms: 1,
            sender: "visitor:x",
            sender_role: "visitor",
            sender_name: Some("Ann"),
            text: "hi",
            client_id: None,
        })
        .unwrap();
        assert_eq!(old[0], 1, "written as the first layout");
        let m = decode_message(&old).unwrap();
        assert_eq!((m.thread, m.seq, m.text.as_str()), (3, 9, "hi"));
        assert_eq!(m.sender_name.as_deref(), Some("Ann"));
        assert_eq!(m.file, None);
        assert_eq!(m.call, None);
        let with_file = ChatMessage {
            call: Some(CallRecord {
                video: true,
                outcome: "completed".into(),
                duration_ms: 61_000,
            }),
            file: Some(FileRef {
                id: 7,
                name: "a.png".into(),
                content_type: "image/png".into(),
                size: 10,
            }),
            ..m
        };
        let bytes = encode_message(&with_file).unwrap();
        assert_eq!(bytes[0], MESSAGE_VERSION);
        assert_eq!(decode_message(&bytes).unwrap(), with_file);
        assert!(matches!(
            decode_message(&[9, 0]),
            Err(codec::CodecError::Version(9))
        ));
    }
}
