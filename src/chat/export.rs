//! One visitor's data as JSON, for `switchboard chat export` (data-subject requests): every
//! thread of the visitor with all its messages, read straight from the store.

use crate::store::chat::{ChatMessage, ChatStore, ThreadStatus};
use crate::store::StoreError;
use serde_json::{json, Value};

fn message(m: &ChatMessage) -> Value {
    json!({
        "seq": m.seq,
        "ts": crate::clock::rfc3339_ms(m.ts_ms),
        "sender": m.sender,
        "sender_role": m.sender_role,
        "sender_name": m.sender_name,
        "text": m.text,
        "call": m.call.as_ref().map(|c| json!({
            "video": c.video, "outcome": c.outcome, "duration_ms": c.duration_ms,
        })),
        "file": m.file.as_ref().map(|f| json!({
            "id": f.id, "name": f.name, "content_type": f.content_type, "size": f.size,
        })),
    })
}

/// `{visitor, threads: [{thread, created, status, visitor_name, assignee, messages}]}`.
pub fn visitor(store: &ChatStore, visitor: &str) -> Result<Value, StoreError> {
    let mut threads = Vec::new();
    for id in store.threads_of(visitor)? {
        let Some(t) = store.thread(id)? else { continue };
        let messages = store.messages(id, 1..=t.last_seq.max(1), usize::MAX, false)?;
        threads.push(json!({
            "thread": t.id,
            "created": crate::clock::rfc3339_ms(t.created_ms),
            "status": match t.status { ThreadStatus::Open => "open", ThreadStatus::Resolved => "resolved" },
            "visitor_name": t.visitor_name,
            "assignee": t.assignee,
            "messages": messages.iter().map(message).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({"visitor": visitor, "threads": threads}))
}

/// Deletes a visitor's threads from a store no server holds (the offline `forget`).
pub async fn forget_offline(store: &ChatStore, visitor: &str) -> Result<usize, StoreError> {
    let mut n = 0;
    for id in store.threads_of(visitor)? {
        if let Some(t) = store.thread(id)? {
            store.delete_thread(&t)?;
            n += 1;
        }
    }
    store.flush().await?;
    Ok(n)
}
